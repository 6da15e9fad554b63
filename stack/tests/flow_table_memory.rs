//! The flow table at the size of a real shard: 1 M connections, like a load generator's (many
//! local ports towards a few servers), with a counting global allocator to show that nothing is
//! allocated after construction. Run with `--nocapture` to see the bytes per entry.

use shardnet::shard::flow_table::{FlowKey, FlowTable, Full};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations (and reallocations) made by this thread's test.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to `System`, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONNECTIONS: usize = 1 << 20;

/// Connection `i`: from one of 16 client addresses (ports 1024..) to one of 4 servers on port 80
/// or 443, as a load generator opens them.
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

#[test]
fn a_million_connections_fit_without_allocating_after_construction() {
    let keys: Vec<FlowKey> = (0..CONNECTIONS).map(flow).collect();
    let mut t = FlowTable::with_capacity(CONNECTIONS, *b"shard-0 flow key");
    let before = ALLOCATIONS.load(Ordering::Relaxed);

    for (i, k) in keys.iter().enumerate() {
        assert_eq!(t.insert(*k, i as u32), Ok(None), "{k:?} is not distinct");
    }
    assert_eq!(t.len(), CONNECTIONS);
    let extra = FlowKey::new(
        SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 1),
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80),
    );
    assert_eq!(t.insert(extra, 0), Err(Full));
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(t.get(k), Some(i as u32));
    }
    assert_eq!(t.get(&extra), None);
    // Churn: connections close and others take their place, many times over the table.
    for (i, k) in keys.iter().enumerate().step_by(3) {
        assert_eq!(t.remove(k), Some(i as u32));
    }
    for (i, k) in keys.iter().enumerate().step_by(3) {
        assert_eq!(t.insert(*k, !(i as u32)), Ok(None));
    }
    for (i, k) in keys.iter().enumerate() {
        let expected = if i % 3 == 0 { !(i as u32) } else { i as u32 };
        assert_eq!(t.get(k), Some(expected));
    }

    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after, before, "the table allocated after construction");

    let per_entry = t.memory_bytes() as f64 / t.capacity() as f64;
    println!(
        "flow table: {} entries of capacity, {} heap bytes, {per_entry:.2} bytes per entry",
        t.capacity(),
        t.memory_bytes()
    );
    assert!(per_entry < 24.0, "{per_entry} bytes per entry");

    // The rest of a connection's memory (the TCB; its buffers are allocated on demand, none
    // when idle) is measured by `connection_memory.rs`.
    println!(
        "tcb: size_of = {} bytes",
        std::mem::size_of::<shardnet::tcp::Tcb>()
    );
}
