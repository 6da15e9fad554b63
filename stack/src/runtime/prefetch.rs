//! Prefetching the next received frame while the stack handles the current one.
//!
//! A frame that just arrived was written by another core (the peer's thread on the memory wire,
//! the kernel's copy into the UMEM on AF_XDP, the NIC by DMA): the stack's first read of each of
//! its cache lines (the Ethernet type, the IP protocol, the TCP checksum over the segment) is a
//! miss. In profiles of the memory-wire and veth `rr` runs the first loads of `handle_frame` and
//! of the checksum loop in `handle_tcp` were the hottest instructions of both. The receive loop
//! asks for frame `i + 1` before it handles frame `i`, as DPDK's l3fwd does with
//! `rte_prefetch0` a few packets ahead and Linux drivers with `net_prefetch` on each received
//! buffer: the next frame's lines arrive while this one is handled. (Prefetching the whole
//! burst at once was tried: the prefetches then stall on the CPU's few outstanding-miss slots,
//! and most of the time moved into the loop that issued them.)

/// How much of a frame is prefetched: the headers (Ethernet, IPv4, TCP with options: up to 114
/// bytes) and the start of the payload. Longer payloads are read sequentially by the checksum
/// loop, which the hardware prefetcher follows.
const PREFETCH_BYTES: usize = 256;

/// The cache line size of the CPUs shardnet runs on (x86-64, most arm64).
const LINE: usize = 64;

/// Asks the CPU to bring the first [`PREFETCH_BYTES`] of `frame` into its cache. A hint only:
/// no effect on what the frame holds, and nothing on architectures other than x86-64.
pub(crate) fn prefetch_frame(frame: &[u8]) {
    let head = frame.get(..PREFETCH_BYTES).unwrap_or(frame);
    for line in head.chunks(LINE) {
        prefetch(line);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch is a hint: it never faults and changes no memory (the address is that
    // of a live slice anyway); SSE, which it needs, is part of the x86-64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch(_bytes: &[u8]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_frame_takes_frames_of_any_length_and_leaves_them_as_they_were() {
        let frame: Vec<u8> = (0..=255u8).cycle().take(1514).collect();
        for len in [0, 1, 63, 64, 65, 130, 255, 256, 257, 1514] {
            let slice = &frame[..len];
            prefetch_frame(slice);
            assert_eq!(slice, &frame[..len]);
        }
    }
}
