//! The acceptance test of the multi-core runtime: two runtimes of two shards each on the
//! thread-safe memory wire (`shardnet_memory::threaded`, multi-queue with RSS), thousands of
//! connections opened from both shards of the client through the socket API, driven by
//! readiness events.
//!
//! - Exact RSS: the runtimes believe the RSS the wire really uses. Every connection is owned, on
//!   both sides, by the shard whose queue RSS delivers its frames to (the client's by steered
//!   ephemeral ports, the server's by where the SYN arrived), so no frame is misdirected.
//! - Forced mismatch: the wire swaps every queue of its indirection table while the runtimes
//!   believe the round-robin table. Every TCP frame then lands on the wrong shard and is
//!   forwarded to its owner through the runtime's crossbeam queues, counted, and all
//!   connections still complete.
//!
//! Every wait is bounded: a test fails rather than hangs.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Batch, Capabilities, PoolStats, Port, RssConfig};
use shardnet::runtime::{
    App, AppContext, ExitReason, IdlePolicy, Runtime, RuntimeConfig, ShardExit,
};
use shardnet::shard::ShardConfig;
use shardnet::shard::rss::{
    DEFAULT_KEY, ipv4_tcp_udp_input, queue_for_hash, round_robin_indirection, toeplitz_hash,
};
use shardnet::socket::{Event, Readiness, RecvError, SocketHandle, SocketOptions};
use shardnet::time::Duration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::MemoryFrame;
use shardnet_memory::threaded::{ThreadedPort, ThreadedWire, ThreadedWireConfig};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const QUEUES: u16 = 2;
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const ECHO_PORT: u16 = 7;
/// Connections each client shard opens.
const PER_SHARD: usize = 1000;
/// Connections each client shard keeps open at once.
const CONCURRENCY: usize = 200;
const MSG_LEN: usize = 300;

fn round_robin() -> RssConfig {
    RssConfig {
        key: DEFAULT_KEY.to_vec(),
        indirection: round_robin_indirection(QUEUES, 128),
    }
}

/// The same key with every queue swapped: each flow lands on the other queue.
fn swapped() -> RssConfig {
    let mut rss = round_robin();
    for q in &mut rss.indirection {
        *q = QUEUES - 1 - *q;
    }
    rss
}

/// The queue `rss` puts a TCP segment from `src` to `dst` on.
fn queue_of(rss: &RssConfig, src: SocketAddrV4, dst: SocketAddrV4) -> usize {
    let input = ipv4_tcp_udp_input(*src.ip(), *dst.ip(), src.port(), dst.port());
    usize::from(queue_for_hash(rss, toeplitz_hash(&rss.key, &input)))
}

fn shard_config(mac: EthernetAddress, ip: Ipv4Addr) -> ShardConfig {
    ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    })
}

fn payload(id: usize, i: usize) -> u8 {
    (id * 7 + i * 13) as u8
}

/// What the apps report to the test, readable while the runtimes run.
#[derive(Default)]
struct Progress {
    completed: AtomicU64,
    failures: AtomicU64,
    /// Connections found on a shard other than the one RSS (as the runtime believes it)
    /// assigns their flow to.
    misowned: AtomicU64,
    accepted: AtomicU64,
}

/// Accepts on the listeners the runtime opened and echoes, all through readiness events.
struct EchoServer {
    rss: RssConfig,
    progress: Arc<Progress>,
    events: Vec<Event>,
    buf: Vec<u8>,
    echoed: u64,
}

impl App for EchoServer {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let index = ctx.index;
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
                while let Ok((_, peer)) = s.accept(e.socket) {
                    self.progress.accepted.fetch_add(1, Ordering::Relaxed);
                    let local = SocketAddrV4::new(SERVER_IP, ECHO_PORT);
                    if queue_of(&self.rss, peer, local) != index {
                        self.progress.misowned.fetch_add(1, Ordering::Relaxed);
                    }
                    // The new socket's readiness arrives as an event of its own.
                }
                continue;
            }
            if !(e.readiness.contains(Readiness::READABLE)
                || e.readiness.contains(Readiness::HANGUP)
                || e.readiness.contains(Readiness::ERROR))
            {
                continue;
            }
            // Edge-triggered: drain everything that is readable now.
            loop {
                match s.recv(e.socket, &mut self.buf) {
                    Ok(0) => {
                        let _ = s.close(e.socket);
                        break;
                    }
                    Ok(n) => {
                        // Requests are small: the send buffer always has room for the echo.
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
}

/// Opens `PER_SHARD` connections (`CONCURRENCY` at a time); on each, sends one request when
/// it becomes writable, checks the echo byte for byte, and closes (the client closes first,
/// so TIME-WAIT lands on the client).
struct EchoClient {
    rss: RssConfig,
    progress: Arc<Progress>,
    opened: usize,
    conns: HashMap<SocketHandle, Conn>,
    events: Vec<Event>,
    opened_ports: Vec<u16>,
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
                    let local = s.local_addr(h).unwrap();
                    self.opened_ports.push(local.port());
                    // Steering: the reply's 4-tuple hashes to this shard's queue.
                    if queue_of(&self.rss, server, local) != index {
                        self.progress.misowned.fetch_add(1, Ordering::Relaxed);
                    }
                    self.conns.insert(h, Conn { id, received: 0 });
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
            if e.readiness.contains(Readiness::WRITABLE) && c.received == 0 {
                let msg: Vec<u8> = (0..MSG_LEN).map(|i| payload(c.id, i)).collect();
                if s.send(h, &msg) != Ok(MSG_LEN) {
                    self.progress.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            let mut done = false;
            let mut bad = false;
            loop {
                let id = c.id;
                let at = c.received;
                let r = s.recv_with(h, |bytes| {
                    bad |= bytes
                        .iter()
                        .enumerate()
                        .any(|(k, &b)| b != payload(id, at + k));
                    bytes.len()
                });
                match r {
                    Ok(0) => {
                        // The server closed before echoing everything.
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

/// A threaded-wire port whose capabilities may hide the RSS it really uses (a NIC that does
/// not tell its RSS configuration).
struct TestPort {
    inner: ThreadedPort,
    caps: Capabilities,
}

impl TestPort {
    fn new(inner: ThreadedPort, hide_rss: bool) -> TestPort {
        let mut caps = inner.capabilities().clone();
        if hide_rss {
            caps.rss = None;
        }
        TestPort { inner, caps }
    }
}

impl Port for TestPort {
    type Frame = MemoryFrame;
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    fn rx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        self.inner.rx_burst(batch)
    }
    fn alloc_tx(&mut self) -> Option<MemoryFrame> {
        self.inner.alloc_tx()
    }
    fn tx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        self.inner.tx_burst(batch)
    }
    fn release(&mut self, frame: MemoryFrame) {
        self.inner.release(frame)
    }
    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }
    fn set_rx_waker(&mut self, thread: std::thread::Thread) -> bool {
        self.inner.set_rx_waker(thread)
    }
}

/// What the runtimes are told about the wire's RSS.
enum Belief {
    /// The port's capabilities, which report what the wire really does.
    Port,
    /// This configuration, whatever the wire does (`RuntimeConfig::rss_override`).
    Told(RssConfig),
    /// Nothing: the ports hide their RSS, and the runtimes fall back to software RSS.
    Unknown,
}

type Server = Runtime<TestPort, EchoServer>;
type Client = Runtime<TestPort, EchoClient>;

struct Outcome {
    wire: ThreadedWire,
    progress: Arc<Progress>,
    server: Vec<ShardExit<TestPort, EchoServer>>,
    client: Vec<ShardExit<TestPort, EchoClient>>,
}

fn runtime_config(mac: EthernetAddress, ip: Ipv4Addr, belief: &Belief) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(shard_config(mac, ip));
    // Four shard threads share two cores: sleep when idle (woken by the wire on rx).
    c.idle = IdlePolicy::Sleep {
        max: Duration::from_millis(1),
    };
    if let Belief::Told(rss) = belief {
        c.rss_override = Some(rss.clone());
    }
    c
}

/// Runs the workload with the wire using `truth` while both runtimes believe `belief`.
fn run(truth: RssConfig, belief: Belief) -> Outcome {
    let wire = ThreadedWire::new(ThreadedWireConfig {
        pool_size: 4096,
        ring_size: 4096,
        ..ThreadedWireConfig::default()
    });
    let server_port = wire.add_port_with_rss(SERVER_MAC, QUEUES, truth.clone());
    let client_port = wire.add_port_with_rss(CLIENT_MAC, QUEUES, truth.clone());
    let hide = matches!(belief, Belief::Unknown);
    // The RSS the runtimes steer and forward by, which the apps check ownership against.
    let believed = match &belief {
        Belief::Port => truth,
        Belief::Told(rss) => rss.clone(),
        // The runtime's software RSS: Microsoft's key, round-robin over the queues.
        Belief::Unknown => round_robin(),
    };
    let progress = Arc::new(Progress::default());

    let server: Server = Runtime::start(
        runtime_config(SERVER_MAC, SERVER_IP, &belief),
        (0..QUEUES)
            .map(|q| {
                let app = EchoServer {
                    rss: believed.clone(),
                    progress: progress.clone(),
                    events: Vec::new(),
                    buf: vec![0; 4096],
                    echoed: 0,
                };
                (TestPort::new(wire.port(server_port, q).unwrap(), hide), app)
            })
            .collect(),
    )
    .unwrap();
    server.listen(ECHO_PORT, 1024).unwrap();
    let client: Client = Runtime::start(
        runtime_config(CLIENT_MAC, CLIENT_IP, &belief),
        (0..QUEUES)
            .map(|q| {
                let app = EchoClient {
                    rss: believed.clone(),
                    progress: progress.clone(),
                    opened: 0,
                    conns: HashMap::new(),
                    events: Vec::new(),
                    opened_ports: Vec::new(),
                };
                (TestPort::new(wire.port(client_port, q).unwrap(), hide), app)
            })
            .collect(),
    )
    .unwrap();

    let total = (PER_SHARD * usize::from(QUEUES)) as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let done =
            progress.completed.load(Ordering::Relaxed) + progress.failures.load(Ordering::Relaxed);
        if done >= total {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {total} connections finished (failures {})",
            progress.completed.load(Ordering::Relaxed),
            progress.failures.load(Ordering::Relaxed)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (server, client) = std::thread::scope(|s| {
        let sh = s.spawn(|| server.stop());
        let ch = s.spawn(|| client.stop());
        (sh.join().unwrap().unwrap(), ch.join().unwrap().unwrap())
    });
    Outcome {
        wire,
        progress,
        server,
        client,
    }
}

fn sum<A>(exits: &[ShardExit<TestPort, A>], f: impl Fn(&ShardExit<TestPort, A>) -> u64) -> u64 {
    exits.iter().map(f).sum()
}

/// What holds in every mode: every connection completed and was echoed exactly, each
/// connection lived on the shard RSS assigns it to, both client shards opened their share,
/// the wire lost nothing and every shard drained.
fn check_common(o: &Outcome) {
    let total = (PER_SHARD * usize::from(QUEUES)) as u64;
    assert_eq!(o.progress.failures.load(Ordering::Relaxed), 0);
    assert_eq!(o.progress.completed.load(Ordering::Relaxed), total);
    assert_eq!(o.progress.accepted.load(Ordering::Relaxed), total);
    assert_eq!(o.progress.misowned.load(Ordering::Relaxed), 0);
    assert_eq!(sum(&o.client, |e| e.stats.tcp.active_opens), total);
    assert_eq!(sum(&o.server, |e| e.stats.tcp.passive_opens), total);
    assert_eq!(sum(&o.server, |e| e.app.echoed), total * MSG_LEN as u64);
    for e in &o.client {
        assert_eq!(e.stats.tcp.active_opens, PER_SHARD as u64);
        assert_eq!(e.app.opened_ports.len(), PER_SHARD);
    }
    // Both server shards served connections (RSS spread the SYNs).
    for e in &o.server {
        assert!(e.stats.tcp.passive_opens > 0);
    }
    for (drops, reason, active) in o
        .server
        .iter()
        .map(|e| (e.runtime.forward_drops, e.reason, e.active_connections))
        .chain(
            o.client
                .iter()
                .map(|e| (e.runtime.forward_drops, e.reason, e.active_connections)),
        )
    {
        assert_eq!((drops, reason, active), (0, ExitReason::Drained, 0));
    }
    let w = o.wire.total_counters();
    assert_eq!((w.lost, w.rx_nombuf, w.rx_ring_full), (0, 0, 0));
    assert!(w.rx_frames > 0);
}

#[test]
fn exact_rss_every_connection_stays_on_the_shard_that_opened_it() {
    let o = run(round_robin(), Belief::Port);
    check_common(&o);
    for r in o
        .server
        .iter()
        .map(|e| &e.runtime)
        .chain(o.client.iter().map(|e| &e.runtime))
    {
        assert_eq!((r.misdirected, r.forwarded_out, r.forwarded_in), (0, 0, 0));
    }
}

#[test]
fn forced_rss_mismatch_forwards_frames_and_every_connection_still_works() {
    let o = run(swapped(), Belief::Told(round_robin()));
    check_forwarding(&o);
}

#[test]
fn a_device_without_rss_information_gets_software_rss_and_forwarding() {
    // The wire swaps queues; the runtimes, told nothing, believe round-robin software RSS.
    let o = run(swapped(), Belief::Unknown);
    check_forwarding(&o);
}

/// Every connection completes although every TCP frame arrived on the wrong shard and was
/// forwarded to its owner.
fn check_forwarding(o: &Outcome) {
    check_common(o);
    let out =
        sum(&o.server, |e| e.runtime.forwarded_out) + sum(&o.client, |e| e.runtime.forwarded_out);
    let inn =
        sum(&o.server, |e| e.runtime.forwarded_in) + sum(&o.client, |e| e.runtime.forwarded_in);
    let mis = sum(&o.server, |e| e.runtime.misdirected) + sum(&o.client, |e| e.runtime.misdirected);
    // Every connection's frames arrived on the wrong shard: at least SYN, ACK, data and FIN
    // on the server and SYN-ACK, data and FIN on the client.
    let total = (PER_SHARD * usize::from(QUEUES)) as u64;
    assert!(out >= 6 * total, "forwarded {out}");
    assert_eq!(out, inn);
    assert_eq!(out, mis);
    // Every shard both forwarded and received forwarded frames.
    for r in o
        .server
        .iter()
        .map(|e| &e.runtime)
        .chain(o.client.iter().map(|e| &e.runtime))
    {
        assert!(r.forwarded_out > 0 && r.forwarded_in > 0);
    }
}
