//! Internet checksum throughput (RFC 1071), in bytes per second.
//!
//! - `checksum/shardnet/N`: `shardnet::wire::checksum::checksum` (32-bit native-endian words into
//!   a 64-bit accumulator, one byte swap at the end) over N = 20 (an IPv4 header), 64, 576, 1500
//!   and 9000 bytes;
//! - `checksum/reference/N`: the straightforward loop of RFC 1071 4.1 (big-endian 16-bit words
//!   into a 32-bit sum, folded at the end), in the same run, for the ratio;
//! - `update_u32`: RFC 1624 incremental update of a checksum when a 32-bit field changes (what a
//!   NAT or a sequence-number rewrite costs), per update.
//!
//! The kernel's `csum_partial` cannot be called from user space, so the reference loop is the
//! comparison here.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use shardnet::wire::checksum;
use shardnet_bench::reference_checksum;
use std::hint::black_box;

/// An IPv4 header, a small frame, the classic minimum MTU, Ethernet's MTU, a jumbo frame.
const SIZES: [usize; 5] = [20, 64, 576, 1500, 9000];

fn sums(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for len in SIZES {
        let data: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
        // Both compute the same value, or the comparison means nothing.
        assert_eq!(checksum::checksum(&data), reference_checksum(&data));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("shardnet", len), &data, |b, d| {
            b.iter(|| checksum::checksum(black_box(d)))
        });
        group.bench_with_input(BenchmarkId::new("reference", len), &data, |b, d| {
            b.iter(|| reference_checksum(black_box(d)))
        });
    }
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    group.throughput(Throughput::Elements(1));
    let (csum, old, new) = (0x1c46u16, 0xc612_0001u32, 0xc612_0002u32);
    group.bench_function("update_u32", |b| {
        b.iter(|| checksum::update_u32(black_box(csum), black_box(old), black_box(new)))
    });
    group.finish();
}

// In a private module: `criterion_group!` defines a `pub fn` without documentation.
mod group {
    criterion::criterion_group!(benches, super::sums, super::incremental);
}
criterion_main!(group::benches);
