//! `Impaired` does not allocate on the data path: a counting global allocator watches a port
//! with every fault on, in both directions, over the memory wire.
//!
//! This binary holds a single test so that nothing else runs while the allocator counts (and it
//! counts only on the test's own thread anyway).

use core::cell::Cell;
use shardnet::port::{Batch, Frame, Port};
use shardnet::time::{Duration, Instant};
use shardnet::wire::EthernetAddress;
use shardnet_memory::{Impaired, ImpairedConfig, Impairments, Wire, WireConfig};
use std::alloc::{GlobalAlloc, Layout, System};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    if ARMED.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn send<P: Port>(p: &mut P, from: EthernetAddress, to: EthernetAddress, n: usize) {
    let mut tx = Batch::new();
    for i in 0..n {
        let Some(mut f) = p.alloc_tx() else { break };
        let b = f.buffer_mut();
        b[..6].copy_from_slice(to.as_bytes());
        b[6..12].copy_from_slice(from.as_bytes());
        b[12] = i as u8;
        f.set_len(60);
        tx.push(f);
    }
    while !tx.is_empty() {
        if p.tx_burst(&mut tx) == 0 {
            for f in tx.drain(..) {
                p.release(f);
            }
        }
    }
}

fn receive<P: Port>(p: &mut P) -> usize {
    let mut rx = Batch::new();
    let mut n = 0;
    while p.rx_burst(&mut rx) > 0 {
        for f in rx.drain(..) {
            n += 1;
            p.release(f);
        }
    }
    n
}

#[test]
fn impaired_data_path_never_allocates() {
    let wire = Wire::new(WireConfig {
        pool_size: 256,
        ..WireConfig::default()
    });
    let (mac_a, mac_b) = (
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        EthernetAddress([2, 0, 0, 0, 0, 2]),
    );
    let a = wire.add_port(mac_a, 1);
    let b = wire.add_port(mac_b, 1);
    let faults = Impairments {
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(3),
        corrupt: 0.01,
        delay: Duration::from_micros(500),
        jitter: Duration::from_millis(1),
        ..Impairments::NONE
    };
    let mut pa = Impaired::new(
        wire.port(a, 0).unwrap(),
        ImpairedConfig {
            rx: faults.clone(),
            tx: faults,
            seed: 9,
            hold_capacity: 64,
            ..ImpairedConfig::default()
        },
    )
    .unwrap();
    let mut pb = wire.port(b, 0).unwrap();
    let mut received = 0;
    let mut step = |i: u64, pa: &mut Impaired<_>| {
        let now = Instant::from_micros(i * 100);
        wire.advance_to(now);
        pa.set_now(now);
        send(pa, mac_a, mac_b, 8);
        // B echoes whatever reached it back to A.
        let echoed = receive(&mut pb);
        send(&mut pb, mac_b, mac_a, echoed);
        received += receive(pa);
    };
    // Warm up: every queue reaches its working size.
    for i in 0..500 {
        step(i, &mut pa);
    }
    ARMED.with(|a| a.set(true));
    for i in 500..5000 {
        step(i, &mut pa);
    }
    ARMED.with(|a| a.set(false));
    let allocations = ALLOCATIONS.with(Cell::get);
    let c = pa.counters();
    assert_eq!(allocations, 0, "allocations on the data path; faults {c:?}");
    assert!(received > 10_000, "traffic flowed: {received}");
    for d in [c.rx, c.tx] {
        assert!(d.lost > 0 && d.duplicated > 0 && d.reordered > 0 && d.delayed > 0);
        assert!(d.corrupted > 0, "{d:?}");
    }
}
