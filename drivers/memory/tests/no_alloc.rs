//! The data path does not allocate: a counting global allocator watches a busy, faulty wire.
//!
//! This binary holds a single test so that nothing else runs while the allocator counts (and it
//! counts only on the test's own thread anyway).

mod common;

use common::*;
use core::cell::Cell;
use core::num::NonZeroU64;
use shardnet::port::{Batch, Frame, Port};
use shardnet::time::{Duration, Instant};
use shardnet::wire::EthernetAddress;
use shardnet_memory::{Impairments, Wire, WireConfig};
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

#[test]
fn the_data_path_never_allocates() {
    let wire = Wire::new(WireConfig {
        pool_size: 16,
        tx_ring_size: 8,
        seed: 11,
        impairments: Impairments {
            loss: 0.05,
            duplicate: 0.2,
            reorder: 0.1,
            reorder_delay: Duration::from_micros(300),
            corrupt: 0.1,
            delay: Duration::from_micros(100),
            jitter: Duration::from_micros(50),
            bandwidth: NonZeroU64::new(5_000_000),
        },
        ..WireConfig::default()
    });
    let a = wire.add_port(mac(1), 2);
    let b = wire.add_port(mac(2), 2);
    let c = wire.add_port(mac(3), 1);
    let mut ports = [
        wire.port(a, 0).expect("port"),
        wire.port(a, 1).expect("port"),
        wire.port(b, 0).expect("port"),
        wire.port(b, 1).expect("port"),
        wire.port(c, 0).expect("port"),
    ];
    // Port a's queues send to b, b's to c, c to a.
    let unicast = [1u8, 1, 2, 2, 3].map(|from| {
        let to = from % 3 + 1;
        ipv4_frame(
            mac(to),
            mac(from),
            6,
            ip(from),
            ip(to),
            5000,
            80,
            &[7u8; 600],
        )
    });
    let broadcast = numbered(EthernetAddress::BROADCAST, mac(2), 1, 100);

    ARMED.with(|armed| armed.set(true));
    let mut now = Instant::ZERO;
    let mut received = 0u64;
    for round in 0..3000u32 {
        let sender = (round % 5) as usize;
        let template: &[u8] = if round % 7 == 0 {
            &broadcast
        } else {
            &unicast[sender]
        };
        let mut batch = Batch::new();
        for i in 0..(round % 4) {
            if let Some(mut frame) = ports[sender].alloc_tx() {
                frame.buffer_mut()[..template.len()].copy_from_slice(template);
                // Vary the TCP source port, so flows spread over the queues.
                frame.buffer_mut()[35] = i as u8 ^ round as u8;
                frame.set_len(template.len());
                batch.push(frame);
            }
        }
        ports[sender].tx_burst(&mut batch);
        for frame in batch.drain(..) {
            ports[sender].release(frame);
        }
        now += Duration::from_micros(20);
        ports[sender].set_now(now);
        // Leave queue 3 undrained for a while now and then, so its pool runs dry.
        for (i, port) in ports.iter_mut().enumerate() {
            if i == 3 && round % 1000 < 600 {
                continue;
            }
            let mut rx = Batch::new();
            while port.rx_burst(&mut rx) > 0 {
                for frame in rx.drain(..) {
                    received += 1;
                    port.release(frame);
                }
            }
        }
    }
    ARMED.with(|armed| armed.set(false));

    assert_eq!(
        ALLOCATIONS.with(Cell::get),
        0,
        "allocations on the data path"
    );
    let totals = wire.total_counters();
    assert!(received > 1000, "{received}");
    assert!(
        totals.rx_nombuf > 0
            && totals.tx_ring_full > 0
            && totals.duplicated > 0
            && totals.tx_no_destination == 0,
        "{totals:?}"
    );
}
