//! Frames backed by single-segment mbufs.

use shardnet::port::{Frame, RxOffload};
use shardnet_dpdk_sys as sys;
use std::ptr::NonNull;

const RX_IP_CKSUM_MASK: u64 = sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64;
const RX_IP_CKSUM_GOOD: u64 = sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD as u64;
const RX_L4_CKSUM_MASK: u64 = sys::RTE_MBUF_F_RX_L4_CKSUM_MASK as u64;
const RX_L4_CKSUM_GOOD: u64 = sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD as u64;

/// A frame in one mbuf that this handle owns: received by a port, or allocated for transmit.
///
/// The bytes are read and written in place in the mbuf's data room. Dropping the frame frees
/// the mbuf back to its pool, so a frame cannot leak; handing it to
/// [`shardnet::port::Port::tx_burst`] passes ownership to the device.
#[derive(Debug)]
pub struct DpdkFrame {
    m: NonNull<sys::rte_mbuf>,
}

// SAFETY: the handle owns its mbuf exclusively (reference count 1, one segment); freeing it
// from another thread is safe because mempools are multi-producer/multi-consumer.
unsafe impl Send for DpdkFrame {}

impl DpdkFrame {
    /// Takes ownership of `m`.
    ///
    /// # Safety
    ///
    /// `m` is a valid single-segment mbuf with reference count 1 that nothing else uses or
    /// frees, from a pool that outlives the frame.
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> DpdkFrame {
        DpdkFrame { m }
    }

    /// Gives up ownership: the caller must free or transmit the mbuf.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let m = self.m;
        std::mem::forget(self);
        m
    }

    /// The mbuf, still owned by this frame.
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.m.as_ptr()
    }

    /// The mbuf's offload flags (`ol_flags`).
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: the mbuf is valid and owned by self (from_raw's contract).
        unsafe { (*self.m.as_ptr()).ol_flags }
    }

    fn start(&self) -> *mut u8 {
        // SAFETY: the mbuf is valid; mtod is buf_addr + data_off, inside its data room.
        unsafe { sys::shardnet_pktmbuf_mtod(self.m.as_ptr()).cast() }
    }

    fn len(&self) -> usize {
        // SAFETY: the mbuf is valid and owned by self.
        usize::from(unsafe { (*self.m.as_ptr()).data_len })
    }
}

impl Frame for DpdkFrame {
    fn data(&self) -> &[u8] {
        // SAFETY: the data_len bytes from mtod lie inside the mbuf's buffer (DPDK keeps
        // data_off + data_len <= buf_len), which self owns for the borrow's lifetime.
        unsafe { std::slice::from_raw_parts(self.start(), self.len()) }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.start(), self.len()) }
    }

    fn capacity(&self) -> usize {
        // SAFETY: the mbuf is valid and owned by self.
        let (buf_len, data_off) = unsafe {
            let m = self.m.as_ptr();
            ((*m).buf_len, (*m).data_off)
        };
        usize::from(buf_len.saturating_sub(data_off))
    }

    fn set_len(&mut self, len: usize) {
        let len = len.min(self.capacity());
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        // SAFETY: the mbuf is valid and exclusively owned; a single segment's pkt_len equals
        // its data_len, and len fits the data room (clamped to capacity above).
        unsafe {
            let m = self.m.as_ptr();
            (*m).data_len = len16;
            (*m).pkt_len = u32::from(len16);
        }
    }

    fn buffer_mut(&mut self) -> &mut [u8] {
        // SAFETY: capacity() bytes from mtod end at the end of the mbuf's buffer, which self
        // owns exclusively (&mut self); pool memory is initialised (zeroed at creation).
        unsafe { std::slice::from_raw_parts_mut(self.start(), self.capacity()) }
    }

    fn rx_offload(&self) -> RxOffload {
        let flags = self.ol_flags();
        RxOffload {
            ipv4_checksum_good: flags & RX_IP_CKSUM_MASK == RX_IP_CKSUM_GOOD,
            l4_checksum_good: flags & RX_L4_CKSUM_MASK == RX_L4_CKSUM_GOOD,
        }
    }
}

impl Drop for DpdkFrame {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf (nothing else frees it) and its pool outlives it.
        unsafe { sys::rte_pktmbuf_free(self.m.as_ptr()) }
    }
}
