//! Two shardnet runtimes joined by a pair of `net_ring` devices in one process: every frame
//! goes through DPDK (mbufs from the sender's mempool, `rte_eth_tx_burst` into a ring,
//! `rte_eth_rx_burst` out of it) between two full stacks driven by the socket API.
//!
//! - TCP echo: two shards a side, hundreds of connections from both client shards, each
//!   request echoed and checked byte for byte. The ring PMD does not hash, so the ports report
//!   no RSS and the runtimes steer by software RSS and forward what lands elsewhere.
//! - Bulk: one connection carries 64 MiB (1 GiB in release builds; `SHARDNET_DPDK_BULK_MIB`
//!   overrides) one way; the receiver's CRC-32 of the stream must equal the sender's.
//!
//! Every wait is bounded: a test fails rather than hangs.

mod common;

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::Port;
use shardnet::runtime::{App, AppContext, ExitReason, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::{
    Event, Readiness, RecvError, SendError, Shutdown, SocketHandle, SocketOptions,
};
use shardnet::time::Duration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_dpdk::{DpdkDevice, DpdkPort, PortConfig, ring_pair};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0xd, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0xd, 2]);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const ECHO_PORT: u16 = 7;
const SINK_PORT: u16 = 9;

fn runtime_config(mac: EthernetAddress, ip: Ipv4Addr) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    }));
    // Two to four shard threads share the machine's cores with the test and other builds.
    c.idle = IdlePolicy::Sleep {
        max: Duration::from_millis(1),
    };
    c.pinning = Pinning::None;
    c
}

/// Two devices on a fresh ring pair, `queues` queue pairs each.
fn devices(name: &str, queues: u16) -> ((DpdkDevice, Vec<DpdkPort>), (DpdkDevice, Vec<DpdkPort>)) {
    let eal = common::eal();
    let (a, b) = ring_pair(eal, name, queues, 1024).unwrap();
    let config = |mac| PortConfig {
        queues,
        mac: Some(mac),
        ..PortConfig::default()
    };
    (
        DpdkDevice::open(eal, a, &config(SERVER_MAC)).unwrap(),
        DpdkDevice::open(eal, b, &config(CLIENT_MAC)).unwrap(),
    )
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Echo

const PER_SHARD: usize = 300;
const CONCURRENCY: usize = 50;
const MSG_LEN: usize = 1000;

#[derive(Default)]
struct Progress {
    completed: AtomicU64,
    failures: AtomicU64,
    accepted: AtomicU64,
}

fn payload(id: usize, i: usize) -> u8 {
    (id * 7 + i * 13) as u8
}

struct EchoServer {
    progress: Arc<Progress>,
    events: Vec<Event>,
    buf: Vec<u8>,
    echoed: u64,
}

impl App for EchoServer {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let listeners: Vec<SocketHandle> = ctx
            .listeners
            .iter()
            .map(|&l| SocketHandle::Listener(l))
            .collect();
        let mut s = ctx.sockets();
        self.events.clear();
        s.poll_events(&mut self.events);
        for e in &self.events {
            if listeners.contains(&e.socket) {
                while s.accept(e.socket).is_ok() {
                    self.progress.accepted.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if !(e.readiness.contains(Readiness::READABLE)
                || e.readiness.contains(Readiness::HANGUP)
                || e.readiness.contains(Readiness::ERROR))
            {
                continue;
            }
            loop {
                match s.recv(e.socket, &mut self.buf) {
                    Ok(0) => {
                        let _ = s.close(e.socket);
                        break;
                    }
                    Ok(n) => {
                        if s.send(e.socket, &self.buf[..n]) != Ok(n) {
                            self.progress.failures.fetch_add(1, Ordering::Relaxed);
                        }
                        self.echoed += n as u64;
                    }
                    Err(RecvError::WouldBlock) => break,
                    Err(_) => {
                        self.progress.failures.fetch_add(1, Ordering::Relaxed);
                        let _ = s.close(e.socket);
                        break;
                    }
                }
            }
        }
    }
}

struct Conn {
    id: usize,
    received: usize,
    sent: bool,
}

struct EchoClient {
    progress: Arc<Progress>,
    opened: usize,
    conns: HashMap<SocketHandle, Conn>,
    events: Vec<Event>,
}

impl App for EchoClient {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let index = ctx.index;
        let server = SocketAddrV4::new(SERVER_IP, ECHO_PORT);
        let mut s = ctx.sockets();
        while self.opened < PER_SHARD && self.conns.len() < CONCURRENCY {
            let id = index * PER_SHARD + self.opened;
            self.opened += 1;
            match s.connect(server, &SocketOptions::default()) {
                Ok(h) => {
                    self.conns.insert(
                        h,
                        Conn {
                            id,
                            received: 0,
                            sent: false,
                        },
                    );
                }
                Err(_) => {
                    self.progress.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.events.clear();
        s.poll_events(&mut self.events);
        for e in &self.events {
            let h = e.socket;
            let Some(c) = self.conns.get_mut(&h) else {
                continue;
            };
            if e.readiness.contains(Readiness::ERROR) {
                self.progress.failures.fetch_add(1, Ordering::Relaxed);
                let _ = s.close(h);
                self.conns.remove(&h);
                continue;
            }
            if e.readiness.contains(Readiness::WRITABLE) && !c.sent {
                let msg: Vec<u8> = (0..MSG_LEN).map(|i| payload(c.id, i)).collect();
                if s.send(h, &msg) != Ok(MSG_LEN) {
                    self.progress.failures.fetch_add(1, Ordering::Relaxed);
                }
                c.sent = true;
            }
            let mut done = false;
            let mut bad = false;
            loop {
                let (id, at) = (c.id, c.received);
                let r = s.recv_with(h, |bytes| {
                    bad |= bytes
                        .iter()
                        .enumerate()
                        .any(|(k, &b)| b != payload(id, at + k));
                    bytes.len()
                });
                match r {
                    Ok(0) => {
                        bad |= c.received < MSG_LEN;
                        done = true;
                        break;
                    }
                    Ok(n) => c.received += n,
                    Err(RecvError::WouldBlock) => break,
                    Err(_) => {
                        bad = true;
                        done = true;
                        break;
                    }
                }
            }
            if bad || c.received > MSG_LEN {
                self.progress.failures.fetch_add(1, Ordering::Relaxed);
                done = true;
            } else if c.received == MSG_LEN {
                self.progress.completed.fetch_add(1, Ordering::Relaxed);
                done = true;
            }
            if done {
                let _ = s.close(h);
                self.conns.remove(&h);
            }
        }
    }
}

#[test]
fn tcp_echo_between_two_stacks_over_net_ring_with_two_queues_a_side() {
    const QUEUES: u16 = 2;
    let ((server_dev, server_ports), (client_dev, client_ports)) = devices("echo", QUEUES);
    assert!(server_ports.iter().all(|p| p.capabilities().rss.is_none()));
    let progress = Arc::new(Progress::default());
    let server = Runtime::start(
        runtime_config(SERVER_MAC, SERVER_IP),
        server_ports
            .into_iter()
            .map(|p| {
                let app = EchoServer {
                    progress: progress.clone(),
                    events: Vec::new(),
                    buf: vec![0; 4096],
                    echoed: 0,
                };
                (p, app)
            })
            .collect(),
    )
    .unwrap();
    server.listen(ECHO_PORT, 1024).unwrap();
    let client = Runtime::start(
        runtime_config(CLIENT_MAC, CLIENT_IP),
        client_ports
            .into_iter()
            .map(|p| {
                let app = EchoClient {
                    progress: progress.clone(),
                    opened: 0,
                    conns: HashMap::new(),
                    events: Vec::new(),
                };
                (p, app)
            })
            .collect(),
    )
    .unwrap();
    let total = (PER_SHARD * usize::from(QUEUES)) as u64;
    let started = Instant::now();
    wait_for("the echo connections", 120, || {
        progress.completed.load(Ordering::Relaxed) + progress.failures.load(Ordering::Relaxed)
            >= total
    });
    let elapsed = started.elapsed();
    let (server, client) = std::thread::scope(|s| {
        let sh = s.spawn(|| server.stop());
        let ch = s.spawn(|| client.stop());
        (sh.join().unwrap().unwrap(), ch.join().unwrap().unwrap())
    });
    eprintln!(
        "{total} echo connections of {MSG_LEN} bytes over net_ring in {elapsed:?} ({:.0} connections/s)",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(progress.failures.load(Ordering::Relaxed), 0);
    assert_eq!(progress.completed.load(Ordering::Relaxed), total);
    assert_eq!(progress.accepted.load(Ordering::Relaxed), total);
    let echoed: u64 = server.iter().map(|e| e.app.echoed).sum();
    assert_eq!(echoed, total * MSG_LEN as u64);
    let opens: u64 = client.iter().map(|e| e.stats.tcp.active_opens).sum();
    assert_eq!(opens, total);
    for e in server
        .iter()
        .map(|e| (e.reason, e.active_connections, e.runtime.forward_drops))
    {
        assert_eq!(e, (ExitReason::Drained, 0, 0));
    }
    for e in client
        .iter()
        .map(|e| (e.reason, e.active_connections, e.runtime.forward_drops))
    {
        assert_eq!(e, (ExitReason::Drained, 0, 0));
    }
    // Both server shards received frames (the client's steering spreads flows over queues).
    for e in &server {
        assert!(
            e.runtime.rx_frames > 0,
            "server shard {} got nothing",
            e.index
        );
    }
    // Every mbuf is back in its pool: nothing leaked through DPDK or the stack.
    let ports = server.iter().map(|e| (&e.port, e.index));
    for (port, index) in ports.chain(client.iter().map(|e| (&e.port, e.index))) {
        let p = port.pool_stats();
        assert_eq!(
            p.free,
            p.total,
            "pool of port {} queue {index}",
            port.port_id()
        );
        assert_eq!(port.counters().rx_multi_segment, 0);
    }
    let (ss, cs) = (server_dev.stats().unwrap(), client_dev.stats().unwrap());
    assert_eq!(ss.rx_packets, cs.tx_packets);
    assert_eq!(cs.rx_packets, ss.tx_packets);
    // (The ring PMD counts packets, not bytes.) SYN, request, FIN and ACKs at the least.
    assert!(ss.rx_packets >= 4 * total, "{ss:?}");
}

// ---------------------------------------------------------------------------------------------
// Bulk

/// The stream's byte pattern repeats with this period (prime, so that chunk boundaries drift).
const PERIOD: usize = 65_521;
const CHUNK: usize = 64 * 1024;

fn pattern() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..PERIOD + CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

fn bulk_bytes() -> u64 {
    let mib = std::env::var("SHARDNET_DPDK_BULK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(if cfg!(debug_assertions) { 64 } else { 1024 });
    mib << 20
}

#[derive(Default)]
struct BulkResult {
    done: AtomicBool,
    received: AtomicU64,
    crc: AtomicU64,
    failures: AtomicU64,
}

struct Sink {
    result: Arc<BulkResult>,
    hasher: crc32fast::Hasher,
    received: u64,
    conn: Option<SocketHandle>,
    events: Vec<Event>,
}

impl App for Sink {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let listeners = ctx.listeners;
        // Reads in place in the received mbufs (zero-copy receive).
        let mut s = ctx.sockets();
        self.events.clear();
        s.poll_events(&mut self.events);
        for &l in listeners {
            if let Ok((h, _)) = s.accept(SocketHandle::Listener(l)) {
                self.conn = Some(h);
            }
        }
        let Some(h) = self.conn else { return };
        loop {
            let hasher = &mut self.hasher;
            match s.recv_with(h, |bytes| {
                hasher.update(bytes);
                bytes.len()
            }) {
                Ok(0) => {
                    let crc = std::mem::take(&mut self.hasher).finalize();
                    self.result.crc.store(u64::from(crc), Ordering::Relaxed);
                    self.result.received.store(self.received, Ordering::Relaxed);
                    self.result.done.store(true, Ordering::Release);
                    let _ = s.close(h);
                    self.conn = None;
                    break;
                }
                Ok(n) => self.received += n as u64,
                Err(RecvError::WouldBlock) => break,
                Err(_) => {
                    self.result.failures.fetch_add(1, Ordering::Relaxed);
                    let _ = s.close(h);
                    self.conn = None;
                    break;
                }
            }
        }
    }
}

struct Source {
    total: u64,
    sent: u64,
    pattern: Vec<u8>,
    hasher: crc32fast::Hasher,
    conn: Option<SocketHandle>,
    finished: bool,
    crc: Option<u32>,
    failures: u64,
    events: Vec<Event>,
}

impl App for Source {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        self.events.clear();
        s.poll_events(&mut self.events);
        if self.conn.is_none() && !self.finished {
            match s.connect(
                SocketAddrV4::new(SERVER_IP, SINK_PORT),
                &SocketOptions::default(),
            ) {
                Ok(h) => self.conn = Some(h),
                Err(_) => {
                    self.failures += 1;
                    self.finished = true;
                }
            }
        }
        let Some(h) = self.conn else { return };
        if s.socket_error(h).is_some() {
            self.failures += 1;
            let _ = s.close(h);
            self.conn = None;
            self.finished = true;
            return;
        }
        while self.sent < self.total {
            let off = (self.sent % PERIOD as u64) as usize;
            let len = CHUNK.min((self.total - self.sent) as usize);
            let chunk = &self.pattern[off..off + len];
            match s.send(h, chunk) {
                Ok(n) => {
                    self.hasher.update(&chunk[..n]);
                    self.sent += n as u64;
                }
                Err(SendError::WouldBlock) | Err(SendError::NotConnected) => break,
                Err(_) => {
                    self.failures += 1;
                    break;
                }
            }
        }
        if self.sent == self.total && self.crc.is_none() {
            self.crc = Some(std::mem::take(&mut self.hasher).finalize());
            if s.shutdown(h, Shutdown::Write).is_err() {
                self.failures += 1;
            }
        }
        if self.crc.is_some() {
            // Wait for the sink's FIN, then close.
            match s.recv_with(h, |b| b.len()) {
                Ok(0) => {
                    let _ = s.close(h);
                    self.conn = None;
                    self.finished = true;
                }
                Ok(_) => self.failures += 1,
                Err(_) => {}
            }
        }
    }
}

#[test]
fn bulk_transfer_over_net_ring_arrives_intact() {
    let total = bulk_bytes();
    let ((server_dev, server_ports), (_client_dev, client_ports)) = devices("bulk", 1);
    let result = Arc::new(BulkResult::default());
    let server = Runtime::start(
        runtime_config(SERVER_MAC, SERVER_IP),
        server_ports
            .into_iter()
            .map(|p| {
                let app = Sink {
                    result: result.clone(),
                    hasher: crc32fast::Hasher::new(),
                    received: 0,
                    conn: None,
                    events: Vec::new(),
                };
                (p, app)
            })
            .collect(),
    )
    .unwrap();
    server.listen(SINK_PORT, 16).unwrap();
    let started = Instant::now();
    let client = Runtime::start(
        runtime_config(CLIENT_MAC, CLIENT_IP),
        client_ports
            .into_iter()
            .map(|p| {
                let app = Source {
                    total,
                    sent: 0,
                    pattern: pattern(),
                    hasher: crc32fast::Hasher::new(),
                    conn: None,
                    finished: false,
                    crc: None,
                    failures: 0,
                    events: Vec::new(),
                };
                (p, app)
            })
            .collect(),
    )
    .unwrap();
    // At least 4 MiB/s even in a debug build on a loaded machine.
    let limit = 60 + total / (4 << 20);
    wait_for("the bulk transfer", limit, || {
        result.done.load(Ordering::Acquire) || result.failures.load(Ordering::Relaxed) > 0
    });
    let elapsed = started.elapsed();
    let (server, client) = std::thread::scope(|s| {
        let sh = s.spawn(|| server.stop());
        let ch = s.spawn(|| client.stop());
        (sh.join().unwrap().unwrap(), ch.join().unwrap().unwrap())
    });
    let rate = total as f64 / elapsed.as_secs_f64();
    eprintln!(
        "bulk: {} MiB over net_ring in {elapsed:?}: {:.1} MiB/s ({:.2} Gbit/s), {} build",
        total >> 20,
        rate / f64::from(1 << 20),
        rate * 8.0 / 1e9,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert_eq!(result.failures.load(Ordering::Relaxed), 0);
    // The sink read received data in the mbufs themselves.
    for z in server.iter().map(|e| e.stats.zero_copy) {
        eprintln!("bulk: zero-copy receive on the sink {z:?}");
        assert_eq!(z.lost, 0);
    }
    let delivered: u64 = server
        .iter()
        .map(|e| e.stats.zero_copy.delivered_bytes)
        .sum();
    assert!(delivered > 0, "no byte read in place");
    let source = &client[0].app;
    assert_eq!(source.failures, 0);
    assert!(source.finished, "the sender did not see the close");
    assert_eq!(source.sent, total);
    assert_eq!(result.received.load(Ordering::Relaxed), total);
    assert_eq!(
        result.crc.load(Ordering::Relaxed),
        u64::from(source.crc.unwrap()),
        "the stream arrived corrupted"
    );
    let exits = server
        .iter()
        .map(|e| (e.reason, e.active_connections, &e.port));
    for (reason, active, port) in exits.chain(
        client
            .iter()
            .map(|e| (e.reason, e.active_connections, &e.port)),
    ) {
        assert_eq!((reason, active), (ExitReason::Drained, 0));
        let p = port.pool_stats();
        assert_eq!(p.free, p.total, "an mbuf leaked");
    }
    let stats = server_dev.stats().unwrap();
    // The ring PMD counts packets, not bytes: at least one full segment per 1460 bytes.
    assert!(stats.rx_packets >= total / 1460, "{stats:?}");
}
