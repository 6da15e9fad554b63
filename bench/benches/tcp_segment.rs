//! The per-segment TCP fast path, ESTABLISHED and in order, in ns per segment:
//!
//! - `tcp_rx/{64,1448}`: a data segment arrives at the state machine (`Tcb::on_segment`), the
//!   application reads it (zero-copy `recv_with`), and the delayed ACK that every second
//!   segment triggers is produced (`poll_output`).
//! - `tcp_tx/{64,1448}`: the application writes a segment's worth (`send`), the state machine
//!   produces the segment (`poll_output`, payload copied into a frame-sized buffer as the shard
//!   does), and the peer's ACK for it arrives (`on_segment`), freeing the send buffer.
//! - `shard_tcp_rx/{64,1448}`: the same receive path from the Ethernet frame up (parse and
//!   checksum of Ethernet/IPv4/TCP, flow lookup, state machine, read), through `Shard`.
//!
//! These are micro-benchmarks of one core of whatever machine runs them; the README reports
//! them with the machine and next to the kernel's figures from the scenario benchmarks.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_main};
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{RxOffload, VecTransmit};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::tcp::send_buffer::SendBuffer;
use shardnet::tcp::{Flags, Incoming, Options, Outgoing, SeqNum, Tcb, TcpConfig, Timestamps};
use shardnet::time::Instant;
use shardnet::wire::{self, EthernetAddress, Ipv4Addr};
use std::net::SocketAddrV4;

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
const ISS: u32 = 1000;
const IRS: u32 = 5000;

fn seg(flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> Incoming<'_> {
    let options = Options {
        timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
        ..Options::default()
    };
    Incoming {
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65535,
        options,
        payload,
    }
}

/// A passive connection in ESTABLISHED with timestamps, as Linux peers negotiate.
fn established() -> Tcb {
    let config = TcpConfig {
        nodelay: true,
        ..TcpConfig::default()
    };
    let mut syn = seg(Flags::SYN, IRS, 0, &[]);
    syn.options.mss = Some(1460);
    syn.options.window_scale = Some(7);
    syn.options.sack_permitted = true;
    let mut tcb = Tcb::accept(config, LOCAL, REMOTE, ISS, &syn, Instant::ZERO);
    tcb.poll_output(Instant::ZERO, &mut |_: &Outgoing, _: &SendBuffer| true);
    tcb.on_segment(
        Instant::from_micros(10),
        &seg(Flags::ACK, IRS + 1, ISS + 1, &[]),
    );
    tcb
}

fn tcp_rx(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_rx");
    for size in [64usize, 1448] {
        let payload = vec![7u8; size];
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut tcb = established();
            let mut seq = IRS + 1;
            let mut now = Instant::from_millis(1);
            b.iter(|| {
                now += core::time::Duration::from_micros(1);
                tcb.on_segment(now, &seg(Flags::ACK | Flags::PSH, seq, ISS + 1, &payload));
                seq = seq.wrapping_add(size as u32);
                let n = tcb.recv_with(|d| black_box(d).len()).unwrap_or(0);
                let mut acks = 0;
                tcb.poll_output(now, &mut |s: &Outgoing, _: &SendBuffer| {
                    acks += black_box(s.ack.get()) as usize & 1;
                    true
                });
                black_box((n, acks))
            });
        });
    }
    g.finish();
}

fn tcp_tx(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_tx");
    for size in [64usize, 1448] {
        let data = vec![9u8; size];
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut tcb = established();
            let mut frame = vec![0u8; 2048];
            let mut acked = ISS + 1;
            let mut now = Instant::from_millis(1);
            b.iter(|| {
                now += core::time::Duration::from_micros(1);
                let n = tcb.send(&data).unwrap_or(0);
                tcb.poll_output(now, &mut |s: &Outgoing, buf: &SendBuffer| {
                    buf.copy_out(s.payload_offset, &mut frame[..s.payload_len]);
                    true
                });
                acked = acked.wrapping_add(n as u32);
                tcb.on_segment(now, &seg(Flags::ACK, IRS + 1, acked, &[]));
                black_box(&frame);
            });
        });
    }
    g.finish();
}

fn shard_tcp_rx(c: &mut Criterion) {
    let mac_a = EthernetAddress([2, 0, 0, 0, 0, 1]);
    let mac_b = EthernetAddress([2, 0, 0, 0, 0, 2]);
    let mut g = c.benchmark_group("shard_tcp_rx");
    for size in [64usize, 1448] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            let mut config = ShardConfig::new(InterfaceConfig {
                mac: mac_a,
                cidr: Ipv4Cidr::new(*LOCAL.ip(), 24).unwrap(),
                gateway: None,
                mtu: 1500,
                ttl: 64,
            });
            config.announce = false;
            let mut shard = Shard::new(config);
            let l = shard.tcp().listen(80, 8).unwrap();
            // Handshake through frames built by our own emitters.
            let frame = |seq: u32, ack: Option<u32>, syn: bool, payload: &[u8]| -> Vec<u8> {
                let mut flags = wire::tcp::Flags::empty();
                if syn {
                    flags |= wire::tcp::Flags::SYN;
                }
                let tcp = wire::tcp::Repr {
                    src_port: REMOTE.port(),
                    dst_port: LOCAL.port(),
                    seq_number: seq,
                    ack_number: ack,
                    flags,
                    window_len: 65535,
                    max_seg_size: syn.then_some(1460),
                    payload,
                    ..wire::tcp::Repr::default()
                };
                let ip = wire::ipv4::Repr {
                    src_addr: *REMOTE.ip(),
                    dst_addr: *LOCAL.ip(),
                    protocol: wire::ipv4::Protocol::Tcp,
                    payload_len: tcp.buffer_len(),
                    ttl: 64,
                    ident: 1,
                    dont_frag: true,
                    dscp_ecn: 0,
                };
                let mut f = vec![0u8; 14 + ip.buffer_len()];
                let eth = wire::ethernet::Repr {
                    src_addr: mac_b,
                    dst_addr: mac_a,
                    ethertype: wire::ethernet::EtherType::Ipv4,
                };
                eth.emit(&mut wire::ethernet::Frame::new_unchecked(&mut f[..]));
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
            };
            // B asks for A's MAC: A learns B's (RFC 826), so the SYN-ACK needs no ARP round.
            let arp = wire::arp::Repr {
                operation: wire::arp::Operation::Request,
                source_hardware_addr: mac_b,
                source_protocol_addr: *REMOTE.ip(),
                target_hardware_addr: EthernetAddress::ZERO,
                target_protocol_addr: *LOCAL.ip(),
            };
            let mut arp_frame = vec![0u8; 42];
            let eth = wire::ethernet::Repr {
                src_addr: mac_b,
                dst_addr: EthernetAddress::BROADCAST,
                ethertype: wire::ethernet::EtherType::Arp,
            };
            eth.emit(&mut wire::ethernet::Frame::new_unchecked(
                &mut arp_frame[..],
            ));
            arp.emit(&mut wire::arp::Packet::new_unchecked(&mut arp_frame[14..]));
            shard.handle_frame(Instant::ZERO, &arp_frame, RxOffload::default());
            shard.handle_frame(
                Instant::ZERO,
                &frame(IRS, None, true, &[]),
                RxOffload::default(),
            );
            let mut out = VecTransmit::default();
            shard.poll_transmit(Instant::ZERO, &mut out);
            let synack = out.frames.iter().find(|f| f.len() > 42).expect("a SYN-ACK");
            let iss = u32::from_be_bytes([synack[38], synack[39], synack[40], synack[41]]);
            shard.handle_frame(
                Instant::ZERO,
                &frame(IRS + 1, Some(iss + 1), false, &[]),
                RxOffload::default(),
            );
            let h = shard.tcp().accept(l).unwrap();
            // One data frame, made the next in sequence before each iteration by rewriting its
            // sequence number and updating its checksum incrementally (RFC 1624; a few ns of the
            // measured time).
            let payload = vec![3u8; size];
            let mut data = frame(IRS + 1, Some(iss + 1), false, &payload);
            let mut seq = IRS + 1;
            let mut tx = VecTransmit::default();
            let mut now = Instant::from_millis(1);
            b.iter(|| {
                now += core::time::Duration::from_micros(1);
                shard.handle_frame(now, &data, RxOffload::default());
                let n = shard
                    .tcp()
                    .get_mut(h)
                    .map(|t| t.recv_with(|d| black_box(d).len()).unwrap_or(0));
                tx.frames.clear();
                shard.poll_transmit(now, &mut tx);
                let next = seq.wrapping_add(size as u32);
                let c = u16::from_be_bytes([data[50], data[51]]);
                data[38..42].copy_from_slice(&next.to_be_bytes());
                data[50..52]
                    .copy_from_slice(&wire::checksum::update_u32(c, seq, next).to_be_bytes());
                seq = next;
                black_box(n)
            });
        });
    }
    g.finish();
}

// In a private module: `criterion_group!` defines a `pub fn` without documentation.
mod group {
    criterion::criterion_group!(benches, super::tcp_rx, super::tcp_tx, super::shard_tcp_rx);
}
criterion_main!(group::benches);
