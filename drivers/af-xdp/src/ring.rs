//! The four single-producer/single-consumer rings an AF_XDP socket shares with the kernel.
//!
//! Each ring is an `mmap` of the socket: a producer index, a consumer index, a flags word and a
//! power-of-two array of descriptors. Indices are free-running `u32`s (entry = index & mask).
//! For the fill and TX rings this process produces and the kernel consumes; for the RX and
//! completion rings the kernel produces and this process consumes.
//!
//! Memory ordering (as in the kernel's `xsk_queue.h` and libxdp's `xsk.h`):
//! - a producer writes descriptors, then publishes the new producer index with a *Release*
//!   store; the consumer reads the producer index with an *Acquire* load before reading
//!   descriptors;
//! - a consumer reads descriptors, then publishes the new consumer index with a *Release*
//!   store; the producer reads the consumer index with an *Acquire* load before overwriting
//!   those slots.
//!
//! Indices are cached locally and the shared words re-read only when the cache says the ring is
//! full (producer) or empty (consumer), which keeps cache-line traffic to one read per burst.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One mmapped ring. `T` is the descriptor type: `u64` (a UMEM address) for the fill and
/// completion rings, `libc::xdp_desc` for RX and TX.
#[derive(Debug)]
pub struct Ring<T> {
    map: NonNull<libc::c_void>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    /// Our producer index (producer rings) or the last producer index read (consumer rings).
    cached_prod: u32,
    /// The last consumer index read (producer rings) or our consumer index (consumer rings).
    cached_cons: u32,
}

impl<T: Copy> Ring<T> {
    /// Maps ring `pgoff` of socket `fd`, whose layout `off` gave, with `size` entries (a power
    /// of two, as set with `setsockopt`).
    pub fn map(
        fd: &OwnedFd,
        pgoff: libc::off_t,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> io::Result<Self> {
        let invalid = || io::Error::from(io::ErrorKind::InvalidData);
        let desc_off = usize::try_from(off.desc).map_err(|_| invalid())?;
        let map_len = desc_off + size as usize * size_of::<T>();
        // SAFETY: a fresh shared mapping of the socket's ring at the kernel's page offset; the
        // kernel checks that `map_len` fits the ring it allocated.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(map).ok_or_else(invalid)?;
        let at = |o: u64| -> io::Result<NonNull<u8>> {
            let o = usize::try_from(o).map_err(|_| invalid())?;
            if o >= map_len {
                return Err(invalid());
            }
            // SAFETY: `o` is inside the mapping (checked above).
            Ok(unsafe { map.cast::<u8>().add(o) })
        };
        let ring = Ring {
            map,
            map_len,
            producer: at(off.producer)?.cast(),
            consumer: at(off.consumer)?.cast(),
            flags: at(off.flags)?.cast(),
            descs: at(off.desc)?.cast(),
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
        };
        Ok(ring.with_cached_indices())
    }

    fn with_cached_indices(mut self) -> Self {
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: the producer word is a 4-byte aligned u32 inside the live mapping (the kernel
        // places it at the offset it reported), shared with the kernel only through atomic
        // accesses.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// The ring's flags word (`XDP_RING_NEED_WAKEUP`).
    pub fn flags(&self) -> u32 {
        // SAFETY: as `producer`.
        unsafe { self.flags.as_ref() }.load(Ordering::Acquire)
    }

    /// Whether the kernel asks to be woken up (a syscall) to make progress on this ring.
    pub fn needs_wakeup(&self) -> bool {
        self.flags() & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    // ----- producer side (fill, TX) -----

    /// Free slots, re-reading the kernel's consumer index if fewer than `want` are known free.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Writes `desc` into slot `i` past our producer index (not yet visible to the kernel).
    /// The caller checked with [`Ring::free`] that `i` is a free slot.
    pub fn write(&mut self, i: u32, desc: T) {
        debug_assert!(i < self.size - self.cached_prod.wrapping_sub(self.cached_cons));
        let slot = (self.cached_prod.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `slot <= mask < size`, so the write is inside the descriptor array; the slot
        // is free (the kernel has consumed it: it is at or past the consumer index read with
        // Acquire), so the kernel does not read it concurrently.
        unsafe { self.descs.add(slot).write(desc) };
    }

    /// Publishes `n` written descriptors to the kernel.
    pub fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Descriptors published but not yet consumed by the kernel (re-reads its consumer index).
    pub fn pending(&mut self) -> u32 {
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    // ----- consumer side (RX, completion) -----

    /// Descriptors available (up to `max`), re-reading the kernel's producer index if none is
    /// known.
    pub fn available(&mut self, max: u32) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n == 0 {
            self.cached_prod = self.producer().load(Ordering::Acquire);
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        n.min(max)
    }

    /// Reads the `i`-th available descriptor. The caller checked `i < available()`.
    pub fn read(&self, i: u32) -> T {
        debug_assert!(i < self.cached_prod.wrapping_sub(self.cached_cons));
        let slot = (self.cached_cons.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `slot < size`, inside the descriptor array; the slot is before the producer
        // index read with Acquire, so the kernel finished writing it and will not touch it until
        // we release it.
        unsafe { self.descs.add(slot).read() }
    }

    /// Gives `n` read descriptors' slots back to the kernel.
    pub fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are exactly the mapping made in `Ring::map`, and no reference
        // into it outlives the ring.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}
