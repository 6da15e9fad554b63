//! Frames per second through `Shard::handle_frame`, the whole receive path of one shard.
//!
//! - `shard_rx/udp_to_socket/64`: an Ethernet + IPv4 + UDP frame with 64 payload bytes to a bound
//!   socket, every checksum verified in software, then a zero-copy `recv_with` so that the
//!   socket's queue never fills;
//! - `shard_rx/icmp_echo/56`: an ICMP echo request (ping's 56 data bytes), then `poll_transmit`
//!   of the reply into a reused buffer (the reply built with its checksums, no driver);
//! - `shard_rx/kernel_udp_loopback/64`: for context only, the Linux kernel in the same run:
//!   `send_to` + `recv_from` of a 64-byte datagram between two UDP sockets on 127.0.0.1. It is
//!   NOT like for like: it includes two system calls and the kernel's transmit path as well as
//!   its receive path.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use shardnet::port::RxOffload;
use shardnet_bench::{NOW, OUR_PORT, SinkTransmit, echo_request_frame, shard, udp_frame};
use std::hint::black_box;
use std::net::{SocketAddrV4, UdpSocket};

fn rx(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_rx");
    group.throughput(Throughput::Elements(1));

    let mut s = shard();
    let sock = s.udp().open().expect("socket");
    s.udp_bind(sock, SocketAddrV4::new(shardnet_bench::IP_US, OUR_PORT))
        .expect("bind");
    let frame = udp_frame(64);
    group.bench_function(BenchmarkId::new("udp_to_socket", 64), |b| {
        b.iter(|| {
            s.handle_frame(NOW, black_box(&frame), RxOffload::default());
            s.udp().recv_with(sock, |d, _| d.len()).expect("delivered")
        })
    });
    assert_eq!(s.stats().udp.in_errors, 0);

    let mut s = shard();
    let frame = echo_request_frame(56);
    let mut tx = SinkTransmit::default();
    group.bench_function(BenchmarkId::new("icmp_echo", 56), |b| {
        b.iter(|| {
            s.handle_frame(NOW, black_box(&frame), RxOffload::default());
            s.poll_transmit(NOW, &mut tx)
        })
    });
    assert_eq!(tx.frames, s.stats().icmp.out_echo_reps);

    let a = UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
    let b_sock = UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
    let to = b_sock.local_addr().expect("address");
    let payload = [0x5au8; 64];
    let mut buf = [0u8; 2048];
    group.bench_function(BenchmarkId::new("kernel_udp_loopback", 64), |b| {
        b.iter(|| {
            a.send_to(black_box(&payload), to).expect("send");
            b_sock.recv_from(&mut buf).expect("recv").0
        })
    });
    group.finish();
}

// In a private module: `criterion_group!` defines a `pub fn` without documentation.
mod group {
    criterion::criterion_group!(benches, super::rx);
}
criterion_main!(group::benches);
