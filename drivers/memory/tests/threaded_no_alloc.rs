//! The threaded wire's data path does not allocate: a counting global allocator watches one
//! thread drive several queues through loss, broadcast, pool and ring exhaustion, receive
//! wakeups and a topology change, while another thread sends to it.
//!
//! The allocator counts only on the test's own thread (a thread-local switch), and this binary
//! holds a single test.

mod common;

use common::*;
use core::cell::Cell;
use shardnet::port::{Batch, Frame, Port};
use shardnet_memory::threaded::{ThreadedPort, ThreadedWire, ThreadedWireConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Sends up to a burst of frames from `port`: unicast to `dst` (with varying ports, so RSS
/// spreads them) and every eighth a broadcast.
fn send_burst(port: &mut ThreadedPort, dst: shardnet::wire::EthernetAddress, seq: &mut u64) {
    let src = port.capabilities().mac;
    let mut batch = Batch::new();
    while !batch.is_full() {
        let Some(mut frame) = port.alloc_tx() else {
            break;
        };
        let to = if *seq % 8 == 0 {
            shardnet::wire::EthernetAddress::BROADCAST
        } else {
            dst
        };
        let buf = frame.buffer_mut();
        buf[..6].copy_from_slice(to.as_bytes());
        buf[6..12].copy_from_slice(src.as_bytes());
        buf[12..14].copy_from_slice(&[0x08, 0x00]);
        buf[14] = 0x45;
        buf[23] = 17;
        buf[26..30].copy_from_slice(&ip(1).octets());
        buf[30..34].copy_from_slice(&ip(2).octets());
        buf[34..36].copy_from_slice(&((*seq % 4096) as u16).to_be_bytes());
        buf[36..38].copy_from_slice(&80u16.to_be_bytes());
        frame.set_len(60 + (*seq % 1000) as usize);
        batch.push(frame);
        *seq += 1;
    }
    port.tx_burst(&mut batch);
}

fn receive(port: &mut ThreadedPort) -> usize {
    let mut batch = Batch::new();
    let n = port.rx_burst(&mut batch);
    for frame in batch.drain(..) {
        port.release(frame);
    }
    // As a runtime about to sleep: the next frame for a port with a waker takes the wakeup
    // path.
    port.arm_rx_waker();
    n
}

#[test]
fn the_threaded_data_path_never_allocates() {
    let wire = ThreadedWire::new(ThreadedWireConfig {
        pool_size: 64,
        ring_size: 16,
        seed: 5,
        loss: 0.1,
        ..ThreadedWireConfig::default()
    });
    let a = wire.add_port(mac(1), 2);
    let b = wire.add_port(mac(2), 2);
    let remote = wire.add_port(mac(3), 1);
    let mut ports = [
        wire.port(a, 0).expect("port"),
        wire.port(a, 1).expect("port"),
        wire.port(b, 0).expect("port"),
        wire.port(b, 1).expect("port"),
    ];
    // Queue b/0 wakes this thread, so the wakeup path runs too.
    assert!(ports[2].set_rx_waker(std::thread::current()));
    // Queue b/0 keeps most of its pool aside, so it runs out of buffers before its ring fills.
    let hoard: Vec<_> = (0..56)
        .map(|_| ports[2].alloc_tx().expect("frame"))
        .collect();
    // A port added now makes every port pick up a new topology snapshot on its next burst.
    let late = wire.add_port(mac(4), 1);
    let mut late_port = wire.port(late, 0).expect("port");

    let stop = Arc::new(AtomicBool::new(false));
    let stop_remote = Arc::clone(&stop);
    let mut remote_port = wire.port(remote, 0).expect("port");
    let other = std::thread::spawn(move || {
        let mut seq = 0;
        while !stop_remote.load(Ordering::Relaxed) {
            send_burst(&mut remote_port, mac(2), &mut seq);
            receive(&mut remote_port);
            std::thread::yield_now();
        }
        remote_port
    });

    ARMED.with(|a| a.set(true));
    let mut seq = 0;
    for round in 0..2_000 {
        let (from, to) = match round % 4 {
            0 => (0, mac(2)),
            1 => (2, mac(1)),
            2 => (1, mac(4)),
            _ => (3, mac(1)),
        };
        send_burst(&mut ports[from], to, &mut seq);
        // Receive only every third round, so pools and rings run full.
        if round % 3 == 0 {
            for port in ports.iter_mut() {
                receive(port);
            }
            receive(&mut late_port);
            // The unparks were for this thread; consume the token.
            std::thread::park_timeout(std::time::Duration::ZERO);
        }
    }
    ARMED.with(|a| a.set(false));
    stop.store(true, Ordering::Relaxed);
    let mut remote_port = other.join().expect("remote thread");

    let allocations = ALLOCATIONS.with(Cell::get);
    assert_eq!(
        allocations, 0,
        "the data path allocated {allocations} times"
    );
    let c = wire.total_counters();
    assert!(c.tx_frames > 10_000, "{c:?}");
    assert!(c.lost > 0, "{c:?}");
    assert!(c.rx_nombuf > 0, "{c:?}");
    assert!(c.rx_ring_full > 0, "{c:?}");
    assert!(wire.counters(late, 0).expect("counters").rx_frames > 0);
    for frame in hoard {
        ports[2].release(frame);
    }
    for port in ports.iter_mut() {
        while receive(port) > 0 {}
    }
    while receive(&mut late_port) > 0 {}
    while receive(&mut remote_port) > 0 {}
    assert!(wire.all_pools_full());
}
