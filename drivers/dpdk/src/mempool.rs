//! Packet mbuf pools.

use crate::{Eal, Error};
use shardnet_dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`).
///
/// Dropping the pool frees it only when every mbuf is back in it; otherwise (mbufs still in
/// a device ring or held by a peer) the pool is deliberately leaked, so that no mbuf can
/// outlive the memory it lives in.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    size: u32,
    data_room: u16,
}

// SAFETY: pools made by rte_pktmbuf_pool_create use the multi-producer/multi-consumer ring
// ops, so alloc/free/counts are safe from any thread; the pointer itself is never mutated.
unsafe impl Send for Mempool {}
// SAFETY: as above: every operation through &Mempool is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// A pool of `size` mbufs, each with `data_room` bytes of buffer (headroom included; use
    /// [`Mempool::default_data_room`] for a 2048-byte frame), a per-lcore cache of `cache`
    /// mbufs (only EAL lcores use it; at most 512 and two thirds of `size`) on `socket` (`None`: any NUMA node). `name` must be
    /// unique in the process.
    pub fn new(
        _eal: &Eal,
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: Option<i32>,
    ) -> Result<Mempool, Error> {
        let cname = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("pool name {name:?}")))?;
        // DPDK refuses a cache whose flush threshold (1.5 times its size) exceeds the pool.
        let cache = cache.min(size * 2 / 3).min(512);
        let socket = socket.unwrap_or(sys::SOCKET_ID_ANY);
        // SAFETY: the EAL is initialised (`_eal`); cname is a valid NUL-terminated string that
        // DPDK copies.
        let ptr = unsafe {
            if sys::shardnet_iova_is_va() == 1 {
                // Devices see virtual addresses: an mbuf needs no more than virtual
                // contiguity, so objects may cross page boundaries and the pool is one dense
                // array of equal strides. Without this flag, a pool in 4 KiB pages (`--no-huge`)
                // starts every 2368-byte mbuf on its own page, and net_af_xdp, which registers
                // `populated_size * object size` bytes from the pool's start as its UMEM
                // (DPDK 22.11), leaves the upper 40 % of the mbufs outside it: the kernel
                // rejects their descriptors (`tx_invalid_descs`) and the transfer stalls.
                sys::shardnet_pktmbuf_pool_create_flags(
                    cname.as_ptr(),
                    size,
                    cache,
                    data_room,
                    socket,
                    sys::shardnet_mempool_f_no_iova_contig(),
                )
            } else {
                sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, data_room, socket)
            }
        };
        let ptr =
            NonNull::new(ptr).ok_or_else(|| Error::from_rte_errno("rte_pktmbuf_pool_create"))?;
        Ok(Mempool {
            ptr,
            size,
            data_room,
        })
    }

    /// `RTE_MBUF_DEFAULT_BUF_SIZE`: room for a 2048-byte frame after the headroom.
    pub fn default_data_room() -> u16 {
        // SAFETY: returns a compile-time constant.
        let room = unsafe { sys::shardnet_mbuf_default_buf_size() };
        u16::try_from(room).unwrap_or(u16::MAX)
    }

    /// The raw pool.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Mbufs in the pool in total.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The buffer size of each mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    /// Mbufs currently free (in the pool or its caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for the life of self; the count is a thread-safe read.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs currently taken from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if self.in_use() == 0 {
            // SAFETY: no mbuf of the pool is held anywhere (in_use is 0) and no other handle
            // to the pool exists (this is its only owner), so nothing can touch it afterwards.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        }
    }
}
