//! Helpers shared by the memory wire's integration tests: frame builders and burst loops.

#![allow(dead_code)] // Each test binary uses a different subset.

use shardnet::port::{Batch, Frame, Port};
use shardnet::time::Instant;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::MemoryPort;

/// A locally administered unicast MAC ending in `n`.
pub fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

/// 198.18.0.`n` (RFC 2544 benchmarking range).
pub fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

/// An Ethernet + IPv4 + UDP (or TCP if `protocol` is 6) frame; checksums are left at zero, the
/// wire does not look at them.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_frame(
    dst: EthernetAddress,
    src: EthernetAddress,
    protocol: u8,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = if protocol == 6 { 20 } else { 8 };
    let mut f = Vec::new();
    f.extend_from_slice(dst.as_bytes());
    f.extend_from_slice(src.as_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4_len + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&dst_ip.octets());
    f.extend_from_slice(&src_port.to_be_bytes());
    f.extend_from_slice(&dst_port.to_be_bytes());
    f.extend_from_slice(&vec![0u8; l4_len - 4]);
    f.extend_from_slice(payload);
    f
}

/// A UDP frame from 198.18.0.1:`src_port` to 198.18.0.2:9 carrying `id` (8 bytes) then
/// `extra` zero bytes.
pub fn numbered(dst: EthernetAddress, src: EthernetAddress, id: u64, extra: usize) -> Vec<u8> {
    let mut payload = id.to_be_bytes().to_vec();
    payload.resize(8 + extra, 0);
    ipv4_frame(dst, src, 17, ip(1), ip(2), 4000, 9, &payload)
}

/// The id [`numbered`] put in a frame.
pub fn id_of(frame: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&frame[42..50]);
    u64::from_be_bytes(b)
}

/// Sends one frame with `bytes`; panics if the pool is empty or the wire does not take it.
pub fn send(port: &mut MemoryPort, bytes: &[u8]) {
    assert!(try_send(port, bytes), "frame not sent");
}

/// Sends one frame with `bytes`; false if no buffer or no room (the buffer is given back).
pub fn try_send(port: &mut MemoryPort, bytes: &[u8]) -> bool {
    let Some(mut frame) = port.alloc_tx() else {
        return false;
    };
    frame.buffer_mut()[..bytes.len()].copy_from_slice(bytes);
    frame.set_len(bytes.len());
    let mut batch = Batch::new();
    batch.push(frame);
    let sent = port.tx_burst(&mut batch) == 1;
    for frame in batch.drain(..) {
        port.release(frame);
    }
    sent
}

/// Receives everything visible now, releasing each frame after copying its bytes.
pub fn drain(port: &mut MemoryPort) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch = Batch::new();
    while port.rx_burst(&mut batch) > 0 {
        for frame in batch.drain(..) {
            out.push(frame.data().to_vec());
            port.release(frame);
        }
    }
    out
}

/// Nanoseconds as an [`Instant`].
pub fn at_ns(ns: u64) -> Instant {
    Instant::from_nanos(ns)
}
