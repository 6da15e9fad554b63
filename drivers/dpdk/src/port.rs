//! One queue pair of a DPDK device as a [`shardnet::port::Port`].

use crate::device::DeviceInner;
use crate::{DpdkFrame, Mempool};
use shardnet::port::{BURST, Batch, Capabilities, ChecksumOffload, Frame, PoolStats, Port};
use shardnet_dpdk_sys as sys;
use std::ptr::NonNull;
use std::sync::Arc;

/// Counters of one queue pair, beyond what the device counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Received multi-segment mbufs, dropped (the stack wants one contiguous frame).
    pub rx_multi_segment: u64,
    /// Frames the TX queue accepted.
    pub tx_frames: u64,
    /// `tx_burst` calls that left frames behind (TX ring full).
    pub tx_ring_full: u64,
    /// `alloc_tx` calls that found the pool empty.
    pub alloc_failures: u64,
}

/// One RX/TX queue pair of a started device, owned by one shard. Frames are mbufs of the
/// queue's own pool.
#[derive(Debug)]
pub struct DpdkPort {
    device: Arc<DeviceInner>,
    queue: u16,
    pool: Arc<Mempool>,
    caps: Capabilities,
    counters: PortCounters,
}

const TX_IPV4: u64 = sys::RTE_MBUF_F_TX_IPV4;
const TX_IP_CKSUM: u64 = sys::RTE_MBUF_F_TX_IP_CKSUM;
const TX_TCP_CKSUM: u64 = sys::RTE_MBUF_F_TX_TCP_CKSUM;
const TX_UDP_CKSUM: u64 = sys::RTE_MBUF_F_TX_UDP_CKSUM;

impl DpdkPort {
    pub(crate) fn new(
        device: Arc<DeviceInner>,
        queue: u16,
        pool: Arc<Mempool>,
        caps: Capabilities,
    ) -> DpdkPort {
        DpdkPort {
            device,
            queue,
            pool,
            caps,
            counters: PortCounters::default(),
        }
    }

    /// The DPDK port id of the device.
    pub fn port_id(&self) -> u16 {
        self.device.port_id
    }

    /// This queue pair's counters.
    pub fn counters(&self) -> PortCounters {
        self.counters
    }

    /// The pool transmit frames come from (and RX descriptors are refilled from).
    pub fn pool(&self) -> &Arc<Mempool> {
        &self.pool
    }
}

/// The offload flags a transmitted frame needs for the checksums the stack left to the device
/// (`checksum`, the port's offloads), with the header lengths DPDK wants next to them:
/// `(ol_flags, l2_len, l3_len)`. `None` for frames that are not IPv4 or when nothing is
/// offloaded.
fn tx_offload(checksum: ChecksumOffload, frame: &[u8]) -> Option<(u64, u16, u16)> {
    if !(checksum.tx_ipv4 || checksum.tx_l4) || frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = u16::from(frame[14] & 0x0f) * 4;
    let mut flags = TX_IPV4;
    if checksum.tx_ipv4 {
        flags |= TX_IP_CKSUM;
    }
    if checksum.tx_l4 {
        match frame[23] {
            6 => flags |= TX_TCP_CKSUM,
            17 => flags |= TX_UDP_CKSUM,
            _ => {}
        }
    }
    Some((flags, 14, ihl))
}

impl Port for DpdkPort {
    type Frame = DpdkFrame;

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn rx_burst(&mut self, batch: &mut Batch<DpdkFrame>) -> usize {
        let room = batch.remaining_capacity();
        if room == 0 {
            return 0;
        }
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let want = u16::try_from(room.min(BURST)).unwrap_or(0);
        // SAFETY: the device is started and this port is the only user of its RX queue
        // (ports are not Clone or Sync); bufs has room for `want` pointers.
        let n = unsafe {
            sys::rte_eth_rx_burst(self.device.port_id, self.queue, bufs.as_mut_ptr(), want)
        };
        let mut added = 0;
        for &m in &bufs[..usize::from(n)] {
            let Some(m) = NonNull::new(m) else { continue };
            // SAFETY: the PMD hands over each received mbuf to the caller, who owns it.
            let frame = unsafe { DpdkFrame::from_raw(m) };
            // SAFETY: m is a valid mbuf, owned by `frame`.
            if unsafe { (*m.as_ptr()).nb_segs } != 1 {
                self.counters.rx_multi_segment += 1;
                drop(frame);
                continue;
            }
            batch.push(frame);
            added += 1;
        }
        self.counters.rx_frames += added as u64;
        added
    }

    fn alloc_tx(&mut self) -> Option<DpdkFrame> {
        // SAFETY: the pool is valid (self holds it); rte_pktmbuf_alloc is thread-safe and
        // returns a reset mbuf with reference count 1, or NULL.
        let m = unsafe { sys::rte_pktmbuf_alloc(self.pool.as_ptr()) };
        match NonNull::new(m) {
            // SAFETY: a fresh single-segment mbuf, owned by nobody else, from a pool that
            // outlives it (pools are freed only when every mbuf is back).
            Some(m) => Some(unsafe { DpdkFrame::from_raw(m) }),
            None => {
                self.counters.alloc_failures += 1;
                None
            }
        }
    }

    fn tx_burst(&mut self, batch: &mut Batch<DpdkFrame>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        for (slot, frame) in bufs.iter_mut().zip(batch.iter()) {
            if let Some((flags, l2, l3)) = tx_offload(self.caps.checksum, frame.data()) {
                // SAFETY: the frame owns its mbuf; the shim sets ol_flags and the length
                // bitfields only.
                unsafe { sys::shardnet_mbuf_set_tx_offload(frame.as_ptr(), flags, l2, l3) };
            }
            *slot = frame.as_ptr();
        }
        let count = u16::try_from(batch.len()).unwrap_or(0);
        // SAFETY: the device is started and this port is the only user of its TX queue;
        // bufs holds `count` valid mbufs. The device takes ownership of the first `sent`.
        let sent = unsafe {
            sys::rte_eth_tx_burst(self.device.port_id, self.queue, bufs.as_mut_ptr(), count)
        };
        let sent = usize::from(sent);
        for frame in batch.drain(..sent) {
            // The device owns these mbufs now: forget the handles without freeing.
            let _ = frame.into_raw();
        }
        if !batch.is_empty() {
            self.counters.tx_ring_full += 1;
        }
        self.counters.tx_frames += sent as u64;
        sent
    }

    fn release(&mut self, frame: DpdkFrame) {
        drop(frame);
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            total: self.pool.size() as usize,
            free: self.pool.available() as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + a 24-byte IPv4 header (IHL 6) carrying `proto`.
    fn frame(ethertype: [u8; 2], proto: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&ethertype);
        f[14] = 0x46;
        f[23] = proto;
        f
    }

    const ALL: ChecksumOffload = ChecksumOffload {
        rx_ipv4: true,
        rx_l4: true,
        tx_ipv4: true,
        tx_l4: true,
    };

    #[test]
    fn tcp_and_udp_frames_ask_for_both_checksums_with_their_header_lengths() {
        assert_eq!(
            tx_offload(ALL, &frame([8, 0], 6)),
            Some((TX_IPV4 | TX_IP_CKSUM | TX_TCP_CKSUM, 14, 24))
        );
        assert_eq!(
            tx_offload(ALL, &frame([8, 0], 17)),
            Some((TX_IPV4 | TX_IP_CKSUM | TX_UDP_CKSUM, 14, 24))
        );
        // ICMP: only the IPv4 header checksum is the device's.
        assert_eq!(
            tx_offload(ALL, &frame([8, 0], 1)),
            Some((TX_IPV4 | TX_IP_CKSUM, 14, 24))
        );
    }

    #[test]
    fn only_what_the_port_offloads_is_asked_for() {
        let ip_only = ChecksumOffload {
            tx_l4: false,
            ..ALL
        };
        assert_eq!(
            tx_offload(ip_only, &frame([8, 0], 6)),
            Some((TX_IPV4 | TX_IP_CKSUM, 14, 24))
        );
        let l4_only = ChecksumOffload {
            tx_ipv4: false,
            ..ALL
        };
        assert_eq!(
            tx_offload(l4_only, &frame([8, 0], 6)),
            Some((TX_IPV4 | TX_TCP_CKSUM, 14, 24))
        );
        assert_eq!(
            tx_offload(ChecksumOffload::default(), &frame([8, 0], 6)),
            None
        );
    }

    #[test]
    fn arp_and_runt_frames_get_no_flags() {
        assert_eq!(tx_offload(ALL, &frame([8, 6], 6)), None);
        assert_eq!(tx_offload(ALL, &frame([8, 0], 6)[..33]), None);
    }
}
