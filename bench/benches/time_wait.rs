//! TIME-WAIT through the shard, in ns per connection:
//!
//! - `time_wait/enter`: a connection this side closed first (FIN-WAIT-1, its FIN sent) gets the
//!   peer's FIN|ACK (`Shard::handle_frame`: parse, checksums, flow lookup, state machine) and
//!   the shard sends the last ACK (`poll_transmit`), turning the connection into a compact
//!   TIME-WAIT entry (flow-table entry kept, TCB slot freed, 2*MSL timer armed).
//! - `time_wait/expire`: `Shard::handle_timeout` past 2*MSL, with the shard holding only
//!   TIME-WAIT entries: each entry's timer fires and the entry and its flow-table entry go.
//!
//! Each measurement builds a shard with a batch of 8,192 connections (handshake, accept,
//! close: not timed), then times only the step above for the whole batch; the test checks that
//! the batch really entered (left) TIME-WAIT. The kernel's TIME-WAIT code cannot be timed
//! from user space: the side-by-side comparison is the churn part of the scenario matrix
//! (`scripts/bench.sh`).

use criterion::{Criterion, Throughput, black_box, criterion_main};
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{RxOffload, VecTransmit};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::time::Instant;
use shardnet::wire::{self, EthernetAddress, Ipv4Addr};
use std::time::Duration;

const MAC_US: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_PEER: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const IP_US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 80;
const IRS: u32 = 5000;
/// Connections per shard (well under the default `max_tcp_connections`).
const BATCH: usize = 8192;

/// A TCP segment from the peer's `src_port` to our listening port, as an Ethernet frame.
fn frame(src_port: u16, seq: u32, ack: Option<u32>, flags: wire::tcp::Flags) -> Vec<u8> {
    let syn = flags.contains(wire::tcp::Flags::SYN);
    let tcp = wire::tcp::Repr {
        src_port,
        dst_port: PORT,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: 65535,
        max_seg_size: syn.then_some(1460),
        payload: &[],
        ..wire::tcp::Repr::default()
    };
    let ip = wire::ipv4::Repr {
        src_addr: IP_PEER,
        dst_addr: IP_US,
        protocol: wire::ipv4::Protocol::Tcp,
        payload_len: tcp.buffer_len(),
        ttl: 64,
        ident: 1,
        dont_frag: true,
        dscp_ecn: 0,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len()];
    wire::ethernet::Repr {
        src_addr: MAC_PEER,
        dst_addr: MAC_US,
        ethertype: wire::ethernet::EtherType::Ipv4,
    }
    .emit(&mut wire::ethernet::Frame::new_unchecked(&mut f[..]));
    tcp.emit(
        &mut wire::tcp::Segment::new_unchecked(&mut f[34..]),
        ip.src_addr,
        ip.dst_addr,
        wire::ChecksumMode::Software,
    );
    ip.emit(
        &mut wire::ipv4::Packet::new_unchecked(&mut f[14..]),
        wire::ChecksumMode::Software,
    );
    f
}

/// A shard with `n` connections that it closed first (FIN sent, FIN-WAIT-1), and for each
/// the peer's FIN|ACK that will put it in TIME-WAIT.
fn closing_shard(now: Instant, n: usize) -> (Shard, Vec<Vec<u8>>) {
    let mut config = ShardConfig::new(InterfaceConfig {
        mac: MAC_US,
        cidr: Ipv4Cidr::new(IP_US, 24).expect("a valid prefix"),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    config.announce = false;
    let mut shard = Shard::new(config);
    let l = shard.tcp().listen(PORT, 64).expect("listen");
    // The peer asks for our MAC: we learn its own (RFC 826), so no ARP round is needed.
    let mut arp = vec![0u8; 42];
    wire::ethernet::Repr {
        src_addr: MAC_PEER,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: wire::ethernet::EtherType::Arp,
    }
    .emit(&mut wire::ethernet::Frame::new_unchecked(&mut arp[..]));
    wire::arp::Repr {
        operation: wire::arp::Operation::Request,
        source_hardware_addr: MAC_PEER,
        source_protocol_addr: IP_PEER,
        target_hardware_addr: EthernetAddress::ZERO,
        target_protocol_addr: IP_US,
    }
    .emit(&mut wire::arp::Packet::new_unchecked(&mut arp[14..]));
    shard.handle_frame(now, &arp, RxOffload::default());
    let mut out = VecTransmit::default();
    shard.poll_transmit(now, &mut out);
    let mut fins = Vec::with_capacity(n);
    for i in 0..n {
        let port = 10_000 + i as u16;
        out.frames.clear();
        shard.handle_frame(
            now,
            &frame(port, IRS, None, wire::tcp::Flags::SYN),
            RxOffload::default(),
        );
        shard.poll_transmit(now, &mut out);
        let synack = out.frames.iter().find(|f| f.len() > 42).expect("a SYN-ACK");
        let iss = u32::from_be_bytes([synack[38], synack[39], synack[40], synack[41]]);
        shard.handle_frame(
            now,
            &frame(port, IRS + 1, Some(iss + 1), wire::tcp::Flags::ACK),
            RxOffload::default(),
        );
        let h = shard.tcp().accept(l).expect("an accepted connection");
        shard.tcp().close(now, h);
        out.frames.clear();
        shard.poll_transmit(now, &mut out);
        // Our FIN took sequence number iss + 1: the peer acknowledges it and sends its own.
        fins.push(frame(
            port,
            IRS + 1,
            Some(iss + 2),
            wire::tcp::Flags::FIN | wire::tcp::Flags::ACK,
        ));
    }
    (shard, fins)
}

/// Runs `iters` connections through `step` (timed) in shards of `BATCH` (built untimed).
fn per_connection(
    iters: u64,
    mut step: impl FnMut(&mut Shard, &[Vec<u8>], Instant) -> Duration,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let now = Instant::from_millis(1);
        let n = (left as usize).min(BATCH);
        let (mut shard, fins) = closing_shard(now, n);
        total += step(&mut shard, &fins, now);
        left -= n as u64;
    }
    total
}

fn time_wait(c: &mut Criterion) {
    let mut g = c.benchmark_group("time_wait");
    g.throughput(Throughput::Elements(1));
    g.bench_function("enter", |b| {
        b.iter_custom(|iters| {
            per_connection(iters, |shard, fins, now| {
                let mut tx = VecTransmit::default();
                let start = std::time::Instant::now();
                for f in fins {
                    shard.handle_frame(now, f, RxOffload::default());
                    tx.frames.clear();
                    shard.poll_transmit(now, &mut tx);
                }
                let t = start.elapsed();
                assert_eq!(shard.tcp().time_wait_count(), fins.len());
                black_box(t)
            })
        })
    });
    g.bench_function("expire", |b| {
        b.iter_custom(|iters| {
            per_connection(iters, |shard, fins, now| {
                let mut tx = VecTransmit::default();
                for f in fins {
                    shard.handle_frame(now, f, RxOffload::default());
                    tx.frames.clear();
                    shard.poll_transmit(now, &mut tx);
                }
                assert_eq!(shard.tcp().time_wait_count(), fins.len());
                let later = now + core::time::Duration::from_secs(121);
                let start = std::time::Instant::now();
                shard.handle_timeout(later);
                let t = start.elapsed();
                assert_eq!(shard.tcp().time_wait_count(), 0);
                black_box(t)
            })
        })
    });
    g.finish();
}

// In a private module: `criterion_group!` defines a `pub fn` without documentation.
mod group {
    criterion::criterion_group!(benches, super::time_wait);
}
criterion_main!(group::benches);
