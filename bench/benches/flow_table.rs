//! The per-shard TCP flow table (`shardnet::shard::flow_table::FlowTable`), per operation, at
//! 1 M connections (a load generator's: many local ports towards a few servers):
//!
//! - `flow_table/get_hit`: lookup of a present 4-tuple, keys taken in a random order so that
//!   successive lookups touch unrelated cache lines (the table is 21 MiB: cache-cold-ish);
//! - `flow_table/get_miss`: lookup of an absent 4-tuple (a stray segment or a new SYN);
//! - `flow_table/insert_remove`: a connection opening and closing (insert then remove of a new
//!   key in the full-but-one table);
//! - `std_hashmap/get_hit` and `std_hashmap/get_miss`: the same lookups in the
//!   `std::collections::HashMap<(SocketAddrV4, SocketAddrV4), u32>` (SipHash-1-3) that the shard
//!   uses today, in the same run, for the ratio.

use criterion::{Criterion, criterion_main};
use shardnet::shard::flow_table::{FlowKey, FlowTable};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

const CONNECTIONS: usize = 1 << 20;

/// Connection `i`: one of 16 client addresses, ports from 1024, to one of 4 servers on 80 or 443.
fn flow(i: usize) -> FlowKey {
    let client = (i % 16) as u8;
    let port = 1024 + (i / 16 % 64_000) as u16;
    let server = (i / 16 / 64_000) as u8;
    FlowKey::new(
        SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, client), port),
        SocketAddrV4::new(
            Ipv4Addr::new(192, 0, 2, server % 4 + 1),
            if server < 4 { 80 } else { 443 },
        ),
    )
}

/// A key that is not in the table (clients 10.2.0.x are never inserted).
fn absent(i: usize) -> FlowKey {
    let mut k = flow(i);
    k.local = SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, (i % 16) as u8), k.local.port());
    k
}

/// `0..n` in a fixed pseudo-random order (Fisher-Yates with xorshift).
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

struct Fixture {
    table: FlowTable,
    std: HashMap<(SocketAddrV4, SocketAddrV4), u32>,
    hits: Vec<FlowKey>,
    misses: Vec<FlowKey>,
}

fn fixture() -> Fixture {
    // One slot short of full, so insert_remove always has room.
    let mut table = FlowTable::with_capacity(CONNECTIONS + 1, *b"bench flow table");
    let mut std = HashMap::with_capacity(CONNECTIONS + 1);
    for i in 0..CONNECTIONS {
        let k = flow(i);
        assert_eq!(table.insert(k, i as u32), Ok(None));
        std.insert((k.local, k.remote), i as u32);
    }
    let order = shuffled(CONNECTIONS);
    Fixture {
        table,
        std,
        hits: order.iter().map(|&i| flow(i)).collect(),
        misses: order.iter().map(|&i| absent(i)).collect(),
    }
}

/// Cycles through `keys`, one per iteration.
fn cycle(keys: &[FlowKey]) -> impl FnMut() -> FlowKey + '_ {
    let mut i = 0;
    move || {
        let k = keys[i];
        i = (i + 1) % keys.len();
        k
    }
}

fn lookups(c: &mut Criterion) {
    let mut f = fixture();
    let mut group = c.benchmark_group("flow_table");
    group.bench_function("get_hit", |b| {
        let mut next = cycle(&f.hits);
        b.iter(|| f.table.get(&black_box(next())))
    });
    group.bench_function("get_miss", |b| {
        let mut next = cycle(&f.misses);
        b.iter(|| f.table.get(&black_box(next())))
    });
    group.bench_function("insert_remove", |b| {
        let mut next = cycle(&f.misses);
        let table = &mut f.table;
        b.iter(|| {
            let k = black_box(next());
            let _ = black_box(table.insert(k, 1));
            table.remove(&k)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("std_hashmap");
    group.bench_function("get_hit", |b| {
        let mut next = cycle(&f.hits);
        b.iter(|| {
            let k = black_box(next());
            f.std.get(&(k.local, k.remote)).copied()
        })
    });
    group.bench_function("get_miss", |b| {
        let mut next = cycle(&f.misses);
        b.iter(|| {
            let k = black_box(next());
            f.std.get(&(k.local, k.remote)).copied()
        })
    });
    group.finish();
    // The table is still as it was: every insert_remove pair undid itself.
    assert_eq!(f.table.len(), CONNECTIONS);
}

mod group {
    criterion::criterion_group!(benches, super::lookups);
}
criterion_main!(group::benches);
