//! Parse and emit cost per frame, in nanoseconds (and frames per second).
//!
//! Two frames, each with 64 or 1448 bytes of payload (1448: what a full-size Ethernet TCP
//! segment with timestamps carries, so that the figures compare):
//! - a TCP data segment as Linux sends it on an established connection: Ethernet + IPv4 + TCP
//!   with ACK|PSH and NOP NOP Timestamps (32-byte TCP header);
//! - the Ethernet + IPv4 + UDP equivalent.
//!
//! - `parse_emit/{tcp,udp}_parse/N`: `new_checked` + `Repr::parse` for each layer, every
//!   checksum verified in software (the TCP and UDP ones cover the payload), options parsed;
//! - `parse_emit/{tcp,udp}_emit/N`: writing the same headers (options included) into a buffer
//!   whose payload is already in place (emit-in-place, as a sender writes from its queue),
//!   checksums computed in software.
//!
//! The kernel's equivalents run inside its receive path and cannot be timed alone from user
//! space; the end-to-end comparison with the kernel is the scenario benchmarks' job.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use shardnet::wire::{ChecksumMode, ethernet, ipv4, tcp, udp};
use shardnet_bench::{tcp_frame, udp_frame};
use std::hint::black_box;

const PAYLOADS: [usize; 2] = [64, 1448];
const ETH: usize = ethernet::HEADER_LEN;
const IP: usize = ipv4::HEADER_LEN;

/// The three layers' `Repr`s of a frame, every checksum verified.
fn parse_udp(frame: &[u8]) -> (ethernet::Repr, ipv4::Repr, udp::Repr) {
    let eth = ethernet::Frame::new_checked(frame).expect("bench frame: Ethernet");
    let e = ethernet::Repr::parse(&eth).expect("bench frame: Ethernet repr");
    let ip = ipv4::Packet::new_checked(eth.payload()).expect("bench frame: IPv4");
    let i = ipv4::Repr::parse(&ip, ChecksumMode::Software).expect("bench frame: IPv4 repr");
    let dgram = udp::Packet::new_checked(ip.payload()).expect("bench frame: UDP");
    let u = udp::Repr::parse(&dgram, i.src_addr, i.dst_addr, ChecksumMode::Software)
        .expect("bench frame: UDP repr");
    (e, i, u)
}

fn emit_udp(buf: &mut [u8], e: &ethernet::Repr, i: &ipv4::Repr, u: &udp::Repr) {
    e.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    let mut ip = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
    i.emit(&mut ip, ChecksumMode::Software);
    let mut dgram = udp::Packet::new_unchecked(&mut buf[ETH + IP..]);
    u.emit(&mut dgram, i.src_addr, i.dst_addr, ChecksumMode::Software);
}

/// The three layers' `Repr`s of a TCP frame, every checksum verified, options parsed.
fn parse_tcp(frame: &[u8]) -> (ethernet::Repr, ipv4::Repr, tcp::Repr<'_>) {
    let eth = ethernet::Frame::new_checked(frame).expect("bench frame: Ethernet");
    let e = ethernet::Repr::parse(&eth).expect("bench frame: Ethernet repr");
    let ip = ipv4::Packet::new_checked(&frame[ETH..]).expect("bench frame: IPv4");
    let i = ipv4::Repr::parse(&ip, ChecksumMode::Software).expect("bench frame: IPv4 repr");
    let end = ETH + IP + i.payload_len;
    let seg = tcp::Segment::new_checked(&frame[ETH + IP..end]).expect("bench frame: TCP");
    let t = tcp::Repr::parse(&seg, i.src_addr, i.dst_addr, ChecksumMode::Software)
        .expect("bench frame: TCP repr");
    (e, i, t)
}

fn emit_tcp(buf: &mut [u8], e: &ethernet::Repr, i: &ipv4::Repr, t: &tcp::Repr<'_>) {
    e.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    let mut ip = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
    i.emit(&mut ip, ChecksumMode::Software);
    let mut seg = tcp::Segment::new_unchecked(&mut buf[ETH + IP..]);
    t.emit_header(&mut seg, i.src_addr, i.dst_addr, ChecksumMode::Software);
}

fn tcp(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_emit");
    group.throughput(Throughput::Elements(1));
    for len in PAYLOADS {
        let frame = tcp_frame(len);
        group.bench_with_input(BenchmarkId::new("tcp_parse", len), &frame, |b, f| {
            b.iter(|| {
                let (e, i, t) = parse_tcp(black_box(f));
                black_box((e, i, t.seq_number, t.timestamp, t.payload.len()))
            })
        });

        let original = frame.clone();
        let (e, i, t) = parse_tcp(&original);
        let mut buf = frame.clone();
        buf[..ETH + IP + t.header_len()].fill(0);
        emit_tcp(&mut buf, &e, &i, &t);
        assert_eq!(buf, frame, "emit reproduces the frame");
        group.bench_function(BenchmarkId::new("tcp_emit", len), |b| {
            b.iter(|| emit_tcp(black_box(&mut buf), black_box(&e), &i, &t))
        });
    }
    group.finish();
}

fn udp(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_emit");
    group.throughput(Throughput::Elements(1));
    for len in PAYLOADS {
        let frame = udp_frame(len);
        group.bench_with_input(BenchmarkId::new("udp_parse", len), &frame, |b, f| {
            b.iter(|| parse_udp(black_box(f)))
        });

        let (e, i, u) = parse_udp(&frame);
        // The payload is in place; the emitted frame must be the original one.
        let mut buf = frame.clone();
        buf[..ETH + IP + udp::HEADER_LEN].fill(0);
        emit_udp(&mut buf, &e, &i, &u);
        assert_eq!(buf, frame, "emit reproduces the frame");
        group.bench_function(BenchmarkId::new("udp_emit", len), |b| {
            b.iter(|| emit_udp(black_box(&mut buf), black_box(&e), &i, &u))
        });
    }
    group.finish();
}

// In a private module: `criterion_group!` defines a `pub fn` without documentation.
mod group {
    criterion::criterion_group!(benches, super::tcp, super::udp);
}
criterion_main!(group::benches);
