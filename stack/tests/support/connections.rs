//! Memory per TCP connection, measured: two shards on the memory wire (a client and a server),
//! `n` connections opened in batches, each exchanging a small request and reply (so that both
//! send buffers and both receive buffers were used and drained), then left idle in ESTABLISHED.
//! A counting global allocator gives the heap each shard holds; dropping one shard at a time
//! attributes the heap to each side.
//!
//! Shared by the regression test `stack/tests/connection_memory.rs` and the bench binary
//! `bench/src/bin/conn_memory.rs` (which includes this file with `#[path]`); each of them
//! installs [`Counting`] as its global allocator.
#![allow(dead_code)] // each includer uses a different part of it
#![allow(clippy::unwrap_used, clippy::expect_used)] // house rule: tests and benches may unwrap

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::tcp::{State, TcpConfig};
use shardnet::time::Duration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::sim::Simulation;
use shardnet_memory::{Impairments, MemoryPort, Wire, WireConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A global allocator that keeps the number of heap bytes in use (and the peak).
pub struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = IN_USE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: defers to `System`, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Heap bytes in use now (through [`Counting`]).
pub fn heap_in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

/// The most heap bytes in use at once so far.
pub fn heap_peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`), if readable.
pub fn proc_status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What [`measure`] found.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Connections established (on each side).
    pub connections: usize,
    /// Heap a side reserves at `Shard::new` for `max_tcp_connections` (flow table, timer
    /// wheel, ready list): (client, server). What a shard with no connection slot at all
    /// reserves (frame queues, ...) is `fixed`, not counted here.
    pub reserved: (usize, usize),
    /// Heap of a shard created with `max_tcp_connections = 0`.
    pub fixed: usize,
    /// Heap a side holds with all connections idle, less `reserved`: (client, server).
    pub per_side: (usize, usize),
    /// `size_of::<Tcb>()`.
    pub tcb_size: usize,
    /// Wall-clock time to open the connections and exchange the requests.
    pub elapsed: std::time::Duration,
    /// Resident set size with all connections open (from `/proc/self/status`).
    pub rss: Option<usize>,
}

impl Report {
    /// Heap bytes per idle connection on the client side, not counting the reservation.
    pub fn client_per_connection(&self) -> f64 {
        self.per_side.0 as f64 / self.connections as f64
    }

    /// Heap bytes per idle connection on the server side, not counting the reservation.
    pub fn server_per_connection(&self) -> f64 {
        self.per_side.1 as f64 / self.connections as f64
    }

    /// Heap bytes reserved per connection slot (`max_tcp_connections`) by the client shard.
    pub fn client_reserved_per_connection(&self) -> f64 {
        self.reserved.0 as f64 / self.connections as f64
    }

    /// Heap bytes reserved per connection slot by the server shard.
    pub fn server_reserved_per_connection(&self) -> f64 {
        self.reserved.1 as f64 / self.connections as f64
    }
}

const MAC_C: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
const MAC_S: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
const IP_C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_S: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The server listens on ports `BASE_PORT..`; each takes `PER_PORT` connections (the ephemeral
/// range 32768..=60999 gives 28232 source ports per destination).
const BASE_PORT: u16 = 5000;
const PER_PORT: usize = 28_000;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: shardnet\r\n\r\n";

fn stack(mac: EthernetAddress, ip: Ipv4Addr, max_connections: usize) -> Shard {
    let mut config = ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    config.tcp = TcpConfig::default();
    config.max_tcp_connections = max_connections;
    Shard::new(config)
}

/// Opens `n` connections in batches of `batch`, sends a request on each and echoes it back,
/// checks that everything is ESTABLISHED with empty buffers, and measures each side's heap.
/// `progress` is called after each batch with the number of connections open so far.
pub fn measure(n: usize, batch: usize, mut progress: impl FnMut(usize)) -> Report {
    let batch = batch.max(1);
    let wire = Wire::new(WireConfig {
        seed: 1,
        pool_size: 4 * batch + 64,
        tx_ring_size: 2 * batch + 64,
        ..WireConfig::default()
    });
    let (pc, ps) = (wire.add_port(MAC_C, 1), wire.add_port(MAC_S, 1));
    let (port_c, port_s) = (wire.port(pc, 0).unwrap(), wire.port(ps, 0).unwrap());
    let mut sim: Simulation<MemoryPort> = Simulation::new(wire);
    let before = heap_in_use();
    let empty = stack(MAC_C, IP_C, 0);
    let fixed = heap_in_use() - before;
    drop(empty);
    let before = heap_in_use();
    let client = stack(MAC_C, IP_C, n);
    let reserved_c = heap_in_use() - before;
    let before = heap_in_use();
    let server = stack(MAC_S, IP_S, n);
    let reserved_s = heap_in_use() - before;
    sim.add(client, port_c);
    sim.add(server, port_s);
    let now = sim.now();
    sim.nodes[0].shard.ping(now, IP_S, 1, 1, b"arp").unwrap();
    while sim.step().unwrap() {}
    sim.wire.set_impairments(Impairments {
        delay: Duration::from_micros(20),
        ..Impairments::NONE
    });
    let ports = n.div_ceil(PER_PORT);
    let listeners: Vec<_> = (0..ports)
        .map(|p| {
            sim.nodes[1]
                .shard
                .tcp()
                .listen(BASE_PORT + p as u16, batch)
                .unwrap()
        })
        .collect();
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    let mut buf = vec![0u8; 4096];
    let start = std::time::Instant::now();
    let mut opened = 0;
    while opened < n {
        let k = batch.min(n - opened);
        let first = clients.len();
        for i in opened..opened + k {
            let remote = SocketAddrV4::new(IP_S, BASE_PORT + (i / PER_PORT) as u16);
            let now = sim.now();
            clients.push(sim.nodes[0].shard.tcp_connect(now, remote).unwrap());
        }
        // Handshakes; each client sends its request as soon as it is connected.
        let mut sent = vec![false; k];
        let mut echoed = 0;
        let mut replies = 0;
        let first_server = servers.len();
        let deadline = sim.now() + Duration::from_secs(60);
        let done = sim
            .run_until(deadline, |s| {
                for (j, h) in clients[first..].iter().enumerate() {
                    if !sent[j] {
                        let tcb = s.nodes[0].shard.tcp().get_mut(*h).unwrap();
                        if tcb.state() == State::Established {
                            assert_eq!(tcb.send(REQUEST), Ok(REQUEST.len()));
                            sent[j] = true;
                        }
                    }
                }
                for l in &listeners {
                    while let Ok(h) = s.nodes[1].shard.tcp().accept(*l) {
                        servers.push(h);
                    }
                }
                for h in &servers[first_server..] {
                    let tcb = s.nodes[1].shard.tcp().get_mut(*h).unwrap();
                    if let Ok(m) = tcb.recv(&mut buf) {
                        assert_eq!(&buf[..m], REQUEST);
                        assert_eq!(tcb.send(&buf[..m]), Ok(m));
                        echoed += 1;
                    }
                }
                for h in &clients[first..] {
                    let tcb = s.nodes[0].shard.tcp().get_mut(*h).unwrap();
                    if let Ok(m) = tcb.recv(&mut buf) {
                        assert_eq!(&buf[..m], REQUEST);
                        replies += 1;
                    }
                }
                replies == k && echoed == k
            })
            .unwrap();
        assert!(
            done,
            "batch at {opened}: {echoed} echoed, {replies} replies"
        );
        // Let the last ACKs land so that both send buffers drain.
        while sim.step().unwrap() {
            if sim.now() > deadline {
                break;
            }
        }
        opened += k;
        progress(opened);
    }
    let elapsed = start.elapsed();
    for (side, handles) in [(0, &clients), (1, &servers)] {
        assert_eq!(handles.len(), n);
        for h in handles.iter() {
            let tcb = sim.nodes[side].shard.tcp().get(*h).unwrap();
            assert_eq!(tcb.state(), State::Established);
            assert_eq!(
                tcb.buffer_memory(),
                0,
                "an idle connection holds buffer memory"
            );
        }
    }
    let rss = proc_status_bytes("VmRSS:");
    // Dropping a shard frees everything it holds: its heap is the difference.
    let before = heap_in_use();
    drop(sim.nodes.pop());
    let server_total = before - heap_in_use();
    let before = heap_in_use();
    drop(sim.nodes.pop());
    let client_total = before - heap_in_use();
    Report {
        connections: n,
        reserved: (
            reserved_c.saturating_sub(fixed),
            reserved_s.saturating_sub(fixed),
        ),
        fixed,
        per_side: (
            client_total.saturating_sub(reserved_c),
            server_total.saturating_sub(reserved_s),
        ),
        tcb_size: std::mem::size_of::<shardnet::tcp::Tcb>(),
        elapsed,
        rss,
    }
}
