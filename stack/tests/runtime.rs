//! The runtime end to end: two runtimes of two shards each, over an in-test multi-queue
//! loopback wire whose software RSS either matches what the runtimes believe (exact steering:
//! nothing is forwarded) or contradicts it (every TCP frame lands on the wrong shard and is
//! forwarded). Every wait is bounded: a test fails rather than hangs.

use crossbeam::queue::ArrayQueue;
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Batch, Capabilities, ChecksumOffload, Frame, PoolStats, Port, RssConfig};
use shardnet::runtime::{
    App, AppContext, ExitReason, IdlePolicy, PinOutcome, Pinning, Runtime, RuntimeConfig, ShardExit,
};
use shardnet::shard::ShardConfig;
use shardnet::shard::ownership::{Owner, frame_owner};
use shardnet::shard::rss::round_robin_indirection;
use shardnet::shard::tcp::TcpHandle;
use shardnet::tcp::RecvError;
use shardnet::time::Duration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

// ----- the in-test wire -----

const QUEUES: u16 = 2;
const FRAME_CAP: usize = 2048;
const RX_RING: usize = 4096;

const KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

fn round_robin() -> RssConfig {
    RssConfig {
        key: KEY.to_vec(),
        indirection: round_robin_indirection(QUEUES, 128),
    }
}

/// The same key with every queue swapped: each flow lands on the other queue.
fn swapped() -> RssConfig {
    RssConfig {
        key: KEY.to_vec(),
        indirection: round_robin_indirection(QUEUES, 128)
            .into_iter()
            .map(|q| QUEUES - 1 - q)
            .collect(),
    }
}

struct RxQueue {
    ring: ArrayQueue<Vec<u8>>,
    waker: OnceLock<Thread>,
}

/// Two endpoints, each with `QUEUES` receive queues; a frame sent by one endpoint lands on the
/// other's queue chosen by the wire's own RSS (`truth`): ARP and unhashable frames on queue 0.
struct Wire {
    ends: [Vec<RxQueue>; 2],
    truth: RssConfig,
    wakers: bool,
    cut: AtomicBool,
    dropped: AtomicU64,
}

impl Wire {
    fn new(truth: RssConfig, wakers: bool) -> Arc<Wire> {
        let end = || {
            (0..QUEUES)
                .map(|_| RxQueue {
                    ring: ArrayQueue::new(RX_RING),
                    waker: OnceLock::new(),
                })
                .collect()
        };
        Arc::new(Wire {
            ends: [end(), end()],
            truth,
            wakers,
            cut: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        })
    }

    fn deliver(&self, to: usize, frame: &[u8]) {
        if self.cut.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let queue = match frame_owner(&self.truth, frame) {
            Owner::Queue(q) => q % QUEUES,
            Owner::All | Owner::Local => 0,
        };
        let q = &self.ends[to][usize::from(queue)];
        if q.ring.push(frame.to_vec()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(t) = q.waker.get() {
            t.unpark();
        }
    }
}

struct TestFrame {
    buf: Vec<u8>,
    len: usize,
}

impl Frame for TestFrame {
    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
    fn capacity(&self) -> usize {
        self.buf.len()
    }
    fn set_len(&mut self, len: usize) {
        self.len = len.min(self.buf.len());
    }
    fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

struct TestPort {
    wire: Arc<Wire>,
    side: usize,
    caps: Capabilities,
}

impl TestPort {
    fn new(wire: &Arc<Wire>, side: usize, queue: u16, mac: EthernetAddress) -> Self {
        TestPort {
            wire: wire.clone(),
            side,
            caps: Capabilities {
                mac,
                mtu: 1500,
                queue,
                queue_count: QUEUES,
                rss: Some(wire.truth.clone()),
                checksum: ChecksumOffload::default(),
                pool_size: RX_RING,
            },
        }
    }
}

impl Port for TestPort {
    type Frame = TestFrame;

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn rx_burst(&mut self, batch: &mut Batch<TestFrame>) -> usize {
        let q = &self.wire.ends[self.side][usize::from(self.caps.queue)];
        let mut n = 0;
        while !batch.is_full() {
            let Some(mut bytes) = q.ring.pop() else { break };
            let len = bytes.len();
            bytes.resize(FRAME_CAP.max(len), 0);
            batch.push(TestFrame { buf: bytes, len });
            n += 1;
        }
        n
    }

    fn alloc_tx(&mut self) -> Option<TestFrame> {
        Some(TestFrame {
            buf: vec![0; FRAME_CAP],
            len: 0,
        })
    }

    fn tx_burst(&mut self, batch: &mut Batch<TestFrame>) -> usize {
        let n = batch.len();
        for frame in batch.drain(..) {
            self.wire.deliver(1 - self.side, frame.data());
        }
        n
    }

    fn release(&mut self, _frame: TestFrame) {}

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            total: RX_RING,
            free: RX_RING,
        }
    }

    fn set_rx_waker(&mut self, thread: Thread) -> bool {
        if !self.wire.wakers {
            return false;
        }
        self.wire.ends[self.side][usize::from(self.caps.queue)]
            .waker
            .set(thread)
            .is_ok()
    }
}

// ----- the apps -----

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const ECHO_PORT: u16 = 7;
const MSG_LEN: usize = 700;

fn shard_config(mac: EthernetAddress, ip: Ipv4Addr) -> ShardConfig {
    ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    })
}

/// Accepts on every listener of its shard and echoes until the peer closes.
#[derive(Default)]
struct EchoServer {
    conns: Vec<TcpHandle>,
    buf: Vec<u8>,
    /// Bytes echoed.
    echoed: u64,
}

impl App for EchoServer {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        if self.buf.is_empty() {
            self.buf = vec![0; 4096];
        }
        for &l in ctx.listeners {
            while let Ok(h) = ctx.shard.tcp().accept(l) {
                self.conns.push(h);
            }
        }
        let now = ctx.now;
        let buf = &mut self.buf;
        let echoed = &mut self.echoed;
        self.conns.retain(|&h| {
            let tcp = ctx.shard.tcp();
            let Some(tcb) = tcp.get_mut(h) else {
                return false;
            };
            let room = tcb.send_capacity().min(buf.len());
            if room == 0 {
                return true;
            }
            match tcb.recv(&mut buf[..room]) {
                Ok(0) => {
                    tcp.close(now, h);
                    false
                }
                Ok(n) => {
                    // The send buffer had room for all of it.
                    let sent = tcb.send(&buf[..n]);
                    assert_eq!(sent, Ok(n));
                    *echoed += n as u64;
                    true
                }
                Err(RecvError::WouldBlock) => true,
                Err(_) => {
                    tcp.close(now, h);
                    false
                }
            }
        });
    }
}

/// Counters shared between the client apps and the test.
#[derive(Default)]
struct Progress {
    completed: AtomicUsize,
    /// Connections holding after their echo (hold mode).
    holding: AtomicUsize,
    failures: AtomicUsize,
}

struct Conn {
    h: TcpHandle,
    id: usize,
    sent: usize,
    received: usize,
}

/// Opens `target` connections (at most `concurrency` at once), sends `MSG_LEN` bytes on each,
/// checks the echo, then closes (or, in hold mode, keeps the connection open).
struct EchoClient {
    target: usize,
    concurrency: usize,
    hold: bool,
    opened: usize,
    conns: Vec<Conn>,
    progress: Arc<Progress>,
    buf: Vec<u8>,
}

impl EchoClient {
    fn new(target: usize, concurrency: usize, hold: bool, progress: &Arc<Progress>) -> Self {
        EchoClient {
            target,
            concurrency,
            hold,
            opened: 0,
            conns: Vec::new(),
            progress: progress.clone(),
            buf: vec![0; 4096],
        }
    }
}

fn payload_byte(shard: usize, id: usize, i: usize) -> u8 {
    (shard * 131 + id * 7 + i) as u8
}

impl App for EchoClient {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let server = SocketAddrV4::new(SERVER_IP, ECHO_PORT);
        while self.opened < self.target && self.conns.len() < self.concurrency {
            match ctx.shard.tcp_connect(ctx.now, server) {
                Ok(h) => {
                    self.conns.push(Conn {
                        h,
                        id: self.opened,
                        sent: 0,
                        received: 0,
                    });
                    self.opened += 1;
                }
                Err(_) => {
                    self.progress.failures.fetch_add(1, Ordering::Relaxed);
                    self.opened += 1;
                }
            }
        }
        let now = ctx.now;
        let shard_index = ctx.index;
        let hold = self.hold;
        let progress = &self.progress;
        let buf = &mut self.buf;
        self.conns.retain_mut(|c| {
            let tcp = ctx.shard.tcp();
            let Some(tcb) = tcp.get_mut(c.h) else {
                progress.failures.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            if tcb.error().is_some() {
                progress.failures.fetch_add(1, Ordering::Relaxed);
                tcp.close(now, c.h);
                return false;
            }
            if c.sent < MSG_LEN {
                let msg: Vec<u8> = (c.sent..MSG_LEN)
                    .map(|i| payload_byte(shard_index, c.id, i))
                    .collect();
                if let Ok(n) = tcb.send(&msg) {
                    c.sent += n;
                }
            }
            if c.received == MSG_LEN {
                // Hold mode: wait for the peer to go away (or the runtime to stop).
                return true;
            }
            match tcb.recv(buf) {
                Ok(0) => {
                    progress.failures.fetch_add(1, Ordering::Relaxed);
                    tcp.close(now, c.h);
                    false
                }
                Ok(n) => {
                    for (k, &b) in buf[..n].iter().enumerate() {
                        if b != payload_byte(shard_index, c.id, c.received + k) {
                            progress.failures.fetch_add(1, Ordering::Relaxed);
                            tcp.abort(now, c.h);
                            return false;
                        }
                    }
                    c.received += n;
                    if c.received == MSG_LEN {
                        if hold {
                            progress.holding.fetch_add(1, Ordering::Relaxed);
                            return true;
                        }
                        progress.completed.fetch_add(1, Ordering::Relaxed);
                        tcp.close(now, c.h);
                        return false;
                    }
                    true
                }
                Err(RecvError::WouldBlock) => true,
                Err(_) => {
                    progress.failures.fetch_add(1, Ordering::Relaxed);
                    tcp.close(now, c.h);
                    false
                }
            }
        });
    }
}

// ----- the harness -----

struct Setup {
    idle: IdlePolicy,
    pinning: Pinning,
    /// Both runtimes believe round-robin RSS while the wire swaps every queue.
    mismatch: bool,
    wakers: bool,
    per_shard: usize,
    concurrency: usize,
    hold: bool,
    grace: Duration,
    busy_poll: Duration,
}

impl Setup {
    fn new(idle: IdlePolicy) -> Self {
        Setup {
            idle,
            pinning: Pinning::None,
            mismatch: false,
            wakers: true,
            per_shard: 150,
            concurrency: 24,
            hold: false,
            grace: Duration::from_secs(2),
            busy_poll: Duration::ZERO,
        }
    }
}

type Server = Runtime<TestPort, EchoServer>;
type Client = Runtime<TestPort, EchoClient>;

struct Running {
    wire: Arc<Wire>,
    server: Server,
    client: Client,
    progress: Arc<Progress>,
}

fn config(setup: &Setup, mac: EthernetAddress, ip: Ipv4Addr) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(shard_config(mac, ip));
    c.idle = setup.idle;
    c.pinning = setup.pinning.clone();
    c.grace = setup.grace;
    c.busy_poll = setup.busy_poll;
    if setup.mismatch {
        c.rss_override = Some(round_robin());
    }
    c
}

fn start(setup: &Setup) -> Running {
    let truth = if setup.mismatch {
        swapped()
    } else {
        round_robin()
    };
    let wire = Wire::new(truth, setup.wakers);
    let server = Runtime::start(
        config(setup, SERVER_MAC, SERVER_IP),
        (0..QUEUES)
            .map(|q| {
                (
                    TestPort::new(&wire, 0, q, SERVER_MAC),
                    EchoServer::default(),
                )
            })
            .collect(),
    )
    .unwrap();
    server.listen(ECHO_PORT, 256).unwrap();
    let progress = Arc::new(Progress::default());
    let client = Runtime::start(
        config(setup, CLIENT_MAC, CLIENT_IP),
        (0..QUEUES)
            .map(|q| {
                (
                    TestPort::new(&wire, 1, q, CLIENT_MAC),
                    EchoClient::new(setup.per_shard, setup.concurrency, setup.hold, &progress),
                )
            })
            .collect(),
    )
    .unwrap();
    Running {
        wire,
        server,
        client,
        progress,
    }
}

/// Waits until `done` or the deadline; panics with `what` on timeout.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Exits {
    server: Vec<ShardExit<TestPort, EchoServer>>,
    client: Vec<ShardExit<TestPort, EchoClient>>,
    stop_time: Duration,
}

/// Stops both runtimes at once (each keeps serving the other's closing handshakes).
fn stop(r: Running) -> (Arc<Wire>, Arc<Progress>, Exits) {
    let Running {
        wire,
        server,
        client,
        progress,
    } = r;
    let t0 = std::time::Instant::now();
    let (server, client) = std::thread::scope(|s| {
        let sh = s.spawn(|| server.stop());
        let ch = s.spawn(|| client.stop());
        (sh.join().unwrap(), ch.join().unwrap())
    });
    let exits = Exits {
        server: server.unwrap(),
        client: client.unwrap(),
        stop_time: t0.elapsed(),
    };
    assert_eq!(exits.server.len(), usize::from(QUEUES));
    assert_eq!(exits.client.len(), usize::from(QUEUES));
    (wire, progress, exits)
}

fn sum<P, A>(exits: &[ShardExit<P, A>], f: impl Fn(&ShardExit<P, A>) -> u64) -> u64 {
    exits.iter().map(f).sum()
}

/// Runs the echo workload to completion and checks what every mode must hold.
fn echo_to_completion(setup: &Setup) -> Exits {
    let r = start(setup);
    let total = setup.per_shard * usize::from(QUEUES);
    let mut saw_live_stats = false;
    wait_until("every echo to complete", Duration::from_secs(60), || {
        // Counters are readable from here, without stopping or messaging the shards.
        let s = r.server.stats(0).unwrap();
        if s.publications > 0 && s.runtime.rx_frames > 0 && s.stats.tcp.passive_opens > 0 {
            saw_live_stats = true;
        }
        assert_eq!(r.progress.failures.load(Ordering::Relaxed), 0);
        r.progress.completed.load(Ordering::Relaxed) == total
    });
    assert!(saw_live_stats, "published stats never showed traffic");
    let (wire, progress, exits) = stop(r);
    assert_eq!(progress.failures.load(Ordering::Relaxed), 0);
    assert_eq!(wire.dropped.load(Ordering::Relaxed), 0);
    for e in exits
        .server
        .iter()
        .map(|e| (e.reason, e.active_connections))
    {
        assert_eq!(e, (ExitReason::Drained, 0));
    }
    for e in exits
        .client
        .iter()
        .map(|e| (e.reason, e.active_connections))
    {
        assert_eq!(e, (ExitReason::Drained, 0));
    }
    assert_eq!(
        sum(&exits.client, |e| e.stats.tcp.active_opens),
        total as u64
    );
    assert_eq!(
        sum(&exits.server, |e| e.stats.tcp.passive_opens),
        total as u64
    );
    assert_eq!(
        sum(&exits.server, |e| e.app.echoed),
        (total * MSG_LEN) as u64
    );
    // Both client shards opened connections: steering put their replies on their own queue.
    for e in &exits.client {
        assert_eq!(e.stats.tcp.active_opens, setup.per_shard as u64);
    }
    for exits_forward in [
        sum(&exits.server, |e| e.runtime.forward_drops),
        sum(&exits.client, |e| e.runtime.forward_drops),
    ] {
        assert_eq!(exits_forward, 0);
    }
    // ARP arrives on queue 0 only; shard 0 copies it to shard 1, which needs it too.
    assert!(exits.client[0].runtime.arp_replicated_out > 0);
    assert!(exits.client[1].runtime.arp_replicated_in > 0);
    assert!(exits.server[0].runtime.arp_replicated_out > 0);
    exits
}

#[test]
fn exact_rss_forwards_nothing() {
    // Yielding shards, four threads pinned on two cores.
    let mut setup = Setup::new(IdlePolicy::Yield);
    setup.pinning = Pinning::Cores(vec![0, 1]);
    let exits = echo_to_completion(&setup);
    for (m, f) in exits
        .client
        .iter()
        .map(|e| (e.runtime.misdirected, e.runtime.forwarded_out))
        .chain(
            exits
                .server
                .iter()
                .map(|e| (e.runtime.misdirected, e.runtime.forwarded_out)),
        )
    {
        assert_eq!((m, f), (0, 0), "frames forwarded with exact RSS");
    }
    assert_eq!(sum(&exits.client, |e| e.runtime.forwarded_in), 0);
    assert_eq!(sum(&exits.server, |e| e.runtime.forwarded_in), 0);
    // Both server shards served: RSS spread the connections.
    assert!(exits.server.iter().all(|e| e.app.echoed > 0));
}

#[test]
fn mismatched_rss_forwards_and_still_completes() {
    let mut setup = Setup::new(IdlePolicy::BusyPoll);
    setup.mismatch = true;
    let exits = echo_to_completion(&setup);
    let counts = |v: Vec<(u64, u64, u64, u64)>| {
        v.into_iter().fold((0, 0, 0, 0), |a, b| {
            (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3)
        })
    };
    let view = |r: &shardnet::runtime::RuntimeCounters, tcp_in: u64| {
        (r.forwarded_out, r.forwarded_in, r.misdirected, tcp_in)
    };
    let client = counts(
        exits
            .client
            .iter()
            .map(|e| view(&e.runtime, e.stats.tcp.in_segs))
            .collect(),
    );
    let server = counts(
        exits
            .server
            .iter()
            .map(|e| view(&e.runtime, e.stats.tcp.in_segs))
            .collect(),
    );
    for (out, inn, misdirected, tcp_in) in [client, server] {
        assert!(out > 0, "nothing forwarded under a mismatched RSS");
        assert_eq!(out, inn);
        assert_eq!(out, misdirected);
        // The wire swaps every queue: every TCP segment received was on the wrong shard.
        assert_eq!(out, tcp_in);
    }
}

fn check_pinning(outcomes: &[PinOutcome]) {
    for o in outcomes {
        assert!(
            matches!(o, PinOutcome::Pinned(0 | 1) | PinOutcome::Failed(0 | 1)),
            "{o:?}"
        );
    }
}

#[test]
fn sleeping_shards_on_two_cores_do_not_starve_and_sleep_when_idle() {
    let mut setup = Setup::new(IdlePolicy::Sleep {
        max: Duration::from_millis(20),
    });
    // Four shard threads (two per runtime) on two cores.
    setup.pinning = Pinning::Cores(vec![0, 1]);
    setup.per_shard = 100;
    let r = start(&setup);
    check_pinning(r.server.pinning());
    check_pinning(r.client.pinning());
    let total = setup.per_shard * usize::from(QUEUES);
    wait_until("every echo to complete", Duration::from_secs(60), || {
        assert_eq!(r.progress.failures.load(Ordering::Relaxed), 0);
        r.progress.completed.load(Ordering::Relaxed) == total
    });
    // Let the closing handshakes finish, then measure an idle stretch.
    std::thread::sleep(Duration::from_millis(100));
    let before = r.client.collect_stats().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = r.client.collect_stats().unwrap();
    for (b, a) in before.iter().zip(&after) {
        let iterations = a.runtime.iterations - b.runtime.iterations;
        // A busy-polling shard would loop millions of times; a sleeping one a few dozen.
        assert!(iterations < 2_000, "{iterations} iterations while idle");
        assert!(a.runtime.parks > b.runtime.parks);
    }
    let (_, _, exits) = stop(r);
    for e in exits
        .server
        .iter()
        .map(|e| e.reason)
        .chain(exits.client.iter().map(|e| e.reason))
    {
        assert_eq!(e, ExitReason::Drained);
    }
}

#[test]
fn sleeping_shards_keep_polling_for_busy_poll_after_work_then_sleep() {
    let mut setup = Setup::new(IdlePolicy::Sleep {
        max: Duration::from_millis(5),
    });
    setup.busy_poll = Duration::from_secs(1);
    setup.per_shard = 20;
    let r = start(&setup);
    let total = setup.per_shard * usize::from(QUEUES);
    wait_until("every echo to complete", Duration::from_secs(60), || {
        r.progress.completed.load(Ordering::Relaxed) == total
    });
    std::thread::sleep(Duration::from_millis(1500));
    // Answering `collect_stats` is work: each shard then polls for a second without sleeping
    // (Linux SO_BUSY_POLL), and sleeps again once the second has passed with nothing to do.
    let start = r.client.collect_stats().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let polling = r.client.collect_stats().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let idle = r.client.collect_stats().unwrap();
    for ((s, p), i) in start.iter().zip(&polling).zip(&idle) {
        assert_eq!(
            p.runtime.parks, s.runtime.parks,
            "no sleep within the window"
        );
        assert!(p.runtime.idle_iterations > s.runtime.idle_iterations);
        assert!(i.runtime.parks > p.runtime.parks, "asleep after the window");
    }
    stop(r);
}

#[test]
fn sleeping_without_rx_wakers_still_completes() {
    let mut setup = Setup::new(IdlePolicy::Sleep {
        max: Duration::from_millis(50),
    });
    setup.wakers = false;
    setup.per_shard = 40;
    let exits = echo_to_completion(&setup);
    // Sleeps were capped at the short interval, not the 50 ms maximum.
    assert!(exits.client.iter().all(|e| e.runtime.parks > 0));
}

#[test]
fn stopping_with_an_unresponsive_peer_resets_after_the_grace_period() {
    let mut setup = Setup::new(IdlePolicy::Yield);
    setup.per_shard = 10;
    setup.hold = true;
    setup.grace = Duration::from_millis(300);
    let r = start(&setup);
    let total = setup.per_shard * usize::from(QUEUES);
    wait_until("every connection to hold", Duration::from_secs(30), || {
        assert_eq!(r.progress.failures.load(Ordering::Relaxed), 0);
        r.progress.holding.load(Ordering::Relaxed) == total
    });
    let live = r.client.collect_stats().unwrap();
    assert_eq!(
        live.iter().map(|s| s.runtime.connections).sum::<u64>(),
        total as u64
    );
    // The peer vanishes: no FIN will ever be acknowledged.
    r.wire.cut.store(true, Ordering::Relaxed);
    let (wire, _, exits) = stop(r);
    assert!(wire.dropped.load(Ordering::Relaxed) > 0);
    for e in exits
        .client
        .iter()
        .map(|e| (e.reason, e.active_connections))
    {
        assert_eq!(e, (ExitReason::GraceExpired, 0));
    }
    for e in exits
        .server
        .iter()
        .map(|e| (e.reason, e.active_connections))
    {
        assert_eq!(e, (ExitReason::GraceExpired, 0));
    }
    assert!(exits.stop_time >= setup.grace);
    assert!(exits.stop_time < setup.grace + Duration::from_secs(3));
}

#[test]
fn control_messages_reach_every_shard() {
    let setup = Setup::new(IdlePolicy::Sleep {
        max: Duration::from_millis(5),
    });
    let wire = Wire::new(round_robin(), true);
    let rt = Runtime::start(
        config(&setup, SERVER_MAC, SERVER_IP),
        (0..QUEUES)
            .map(|q| (TestPort::new(&wire, 0, q, SERVER_MAC), ()))
            .collect(),
    )
    .unwrap();
    rt.listen(80, 8).unwrap();
    // A second listen on the same port fails on every shard, reported with its shard.
    assert!(matches!(
        rt.listen(80, 8),
        Err(shardnet::runtime::RuntimeError::Listen { .. })
    ));
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..rt.shard_count() {
        let ran = ran.clone();
        rt.run_on(i, move |shard, _now| {
            // The listener from `listen` is there: binding again is EADDRINUSE.
            assert!(shard.tcp().listen(80, 1).is_err());
            ran.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    wait_until("the closures to run", Duration::from_secs(5), || {
        ran.load(Ordering::Relaxed) == rt.shard_count()
    });
    assert!(matches!(
        rt.run_on(9, |_, _| {}),
        Err(shardnet::runtime::RuntimeError::NoSuchShard(9))
    ));
    let stats = rt.collect_stats().unwrap();
    assert!(stats.iter().all(|s| s.runtime.control_messages >= 3));
    let exits = rt.stop().unwrap();
    assert_eq!(exits.len(), usize::from(QUEUES));
    assert!(exits.iter().all(|e| e.reason == ExitReason::Drained));
}

#[test]
fn secrets_rotate_on_schedule_unless_the_key_is_fixed() {
    let setup = Setup::new(IdlePolicy::Sleep {
        max: Duration::from_secs(1),
    });
    let wire = Wire::new(round_robin(), true);
    let mut c = config(&setup, SERVER_MAC, SERVER_IP);
    c.secret_rotation = Some(Duration::from_millis(20));
    let rt = Runtime::start(
        c,
        (0..QUEUES)
            .map(|q| (TestPort::new(&wire, 0, q, SERVER_MAC), ()))
            .collect(),
    )
    .unwrap();
    // Idle shards sleeping up to 1 s still wake for the rotation deadline.
    wait_until(
        "two rotations on every shard",
        Duration::from_secs(5),
        || {
            (0..rt.shard_count())
                .all(|i| rt.stats(i).is_some_and(|s| s.runtime.secret_rotations >= 2))
        },
    );
    rt.stop().unwrap();

    // A fixed key (reproducible runs) keeps every secret fixed.
    let mut c = config(&setup, SERVER_MAC, SERVER_IP);
    c.secret_rotation = Some(Duration::from_millis(20));
    c.isn_key = Some([7; 16]);
    let rt = Runtime::start(
        c,
        (0..QUEUES)
            .map(|q| (TestPort::new(&wire, 0, q, SERVER_MAC), ()))
            .collect(),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    for e in rt.stop().unwrap() {
        assert_eq!(e.runtime.secret_rotations, 0);
    }
}

/// Runs `f` on shard `index` of `rt` and waits for its result (bounded).
fn on_shard<A: App + 'static, R: Send + 'static>(
    rt: &Runtime<TestPort, A>,
    index: usize,
    f: impl FnOnce(&mut shardnet::shard::Shard) -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    rt.run_on(index, move |shard, _now| {
        let _ = tx.send(f(shard));
    })
    .unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the shard ran the closure")
}

/// The shards of one runtime share a bind table (issue 8): a port listened on one shard is
/// taken on the other, `SO_REUSEPORT` listeners on both share theirs, closing frees a port,
/// and the runtime's own listen-on-every-shard counts as one bind.
#[test]
fn the_shards_of_a_runtime_share_one_bind_table() {
    use shardnet::socket::SocketOptions;
    let setup = Setup::new(IdlePolicy::Sleep {
        max: Duration::from_millis(5),
    });
    let wire = Wire::new(round_robin(), true);
    let rt = Runtime::start(
        config(&setup, SERVER_MAC, SERVER_IP),
        (0..QUEUES)
            .map(|q| (TestPort::new(&wire, 0, q, SERVER_MAC), ()))
            .collect(),
    )
    .unwrap();
    assert_eq!(rt.shard_count(), 2);
    // The runtime's listeners on both shards are one bind...
    rt.listen(80, 8).unwrap();
    // Port 81, listened on shard 1 on its own.
    assert!(on_shard(&rt, 1, |s| s.tcp().listen(81, 8).is_ok()));
    let listen = |reuse_port: bool, port: u16| {
        move |s: &mut shardnet::shard::Shard| {
            let opts = SocketOptions {
                reuse_port,
                ..SocketOptions::default()
            };
            let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
            s.sockets(shardnet::time::Instant::ZERO)
                .listen(addr, 8, &opts)
                .map_err(|e| e.errno())
        }
    };
    // The runtime's group is one bind no single shard can join.
    assert_eq!(on_shard(&rt, 0, listen(false, 80)), Err("EADDRINUSE"));
    assert_eq!(on_shard(&rt, 1, listen(true, 80)), Err("EADDRINUSE"));
    // Port 81: EADDRINUSE on shard 0, with or without SO_REUSEPORT.
    assert_eq!(on_shard(&rt, 0, listen(false, 81)), Err("EADDRINUSE"));
    assert_eq!(on_shard(&rt, 0, listen(true, 81)), Err("EADDRINUSE"));
    // SO_REUSEPORT on both shards: shared.
    let a = on_shard(&rt, 0, listen(true, 82)).unwrap();
    let b = on_shard(&rt, 1, listen(true, 82)).unwrap();
    assert_eq!(on_shard(&rt, 1, listen(false, 82)), Err("EADDRINUSE"));
    // After close on both, the port is free for a plain listener on either shard.
    on_shard(&rt, 0, move |s| {
        s.sockets(shardnet::time::Instant::ZERO).close(a).unwrap()
    });
    assert_eq!(on_shard(&rt, 0, listen(false, 82)), Err("EADDRINUSE"));
    on_shard(&rt, 1, move |s| {
        s.sockets(shardnet::time::Instant::ZERO).close(b).unwrap()
    });
    assert!(on_shard(&rt, 0, listen(false, 82)).is_ok());
    let exits = rt.stop().unwrap();
    assert!(exits.iter().all(|e| e.reason == ExitReason::Drained));
}
