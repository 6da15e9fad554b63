//! shardnet's TCP mode of the apps on the in-process memory wire (this module) and on a real
//! interface ([`net`]). The runtimes are generic over the port: [`EchoRuntime`] serves the
//! echo on any ports, and the load generator's runtime runs on any ports too.
//!
//! The memory driver has no NIC: its wire lives in the process. So `loadgen --stack shardnet
//! --driver memory` builds the whole test network itself: a [`ThreadedWire`] with two ports
//! (the client and the server of [`crate::CLIENT`] / [`crate::SERVER`]), one multi-queue port
//! per side with one queue per shard, and two [`Runtime`]s on it: the echo server
//! ([`echo::EchoApp`] on every server shard) and the load generator ([`loadgen::LoadApp`] on
//! every client shard). Both apps drive the socket API with readiness events; the load
//! generator reuses the kernel mode's sans-IO client and reports, so that every response is
//! verified the same way and the tables compare line for line.
//!
//! TIME_WAIT is read from the stacks themselves (their TCP state histograms, sampled every
//! 100 ms by the apps), on both sides.

pub mod echo;
pub mod loadgen;
pub mod net;

use crate::kernel::loadgen::collect_seconds;
use crate::metrics::{ExtraText, LoadgenMetrics};
use crate::report::{Series, ShardnetSide, ShardnetSummary};
use crate::schedule::{Msg, WorkerConfig};
use crate::timewait::TwCounterSample;
use crate::{CLIENT, Host, SERVER};
use echo::{EchoApp, EchoAppConfig, EchoCounters};
use loadgen::LoadApp;
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Batch, Capabilities, PoolStats, Port};
use shardnet::runtime::{App, IdlePolicy, Pinning, Runtime, RuntimeConfig, ShardExit};
use shardnet::shard::timer_wheel::TimerId;
use shardnet::shard::{ShardConfig, Stats};
use shardnet::socket::StateHistogram;
use shardnet::socket::introspect::ALL_STATES;
use shardnet::tcp::State;
use shardnet::tcp::time_wait::TimeWait;
use shardnet_memory::threaded::{ThreadedPort, ThreadedWire, ThreadedWireConfig};
use shardnet_pcap::{Clock, PcapPort};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The echo port of the in-process network.
pub const ECHO_PORT: u16 = 7777;
/// Consecutive ports from [`ECHO_PORT`] the in-process echo listens on, and the load generator
/// spreads its connections over: eight times the 4-tuples for a client-closed crr to cycle
/// through (with TIME-WAIT reuse, each 4-tuple once a second: 8 x 64,512 = 516,096
/// connections/s at most; with four ports the crr of the main job reached that cap, 258,048/s,
/// and reported connects refused with EADDRNOTAVAIL).
pub const MEMORY_ECHO_PORTS: u16 = 8;

/// The most TCP connections (TIME-WAIT included: each holds a flow-table entry) per shard. A
/// client-closed crr on the memory wire keeps every 4-tuple it can cycle through in TIME-WAIT:
/// [`MEMORY_ECHO_PORTS`] x 64,512 ephemeral ports = 516,096, so 2^20 leaves room.
const MAX_CONNECTIONS: usize = 1 << 20;

/// Per-connection state of an app, by socket handle. Hashed with `ahash` rather than std's
/// SipHash: the handles are the stack's slot numbers, not chosen by peers, so a hash-flooding
/// defence buys nothing here, and SipHash was 2 % of a crr profile (three lookups per
/// connection). Fixed seeds: nothing to keep secret.
pub(crate) type HandleMap<V> =
    std::collections::HashMap<shardnet::socket::SocketHandle, V, ahash::RandomState>;

/// An empty [`HandleMap`].
pub(crate) fn handle_map<V>() -> HandleMap<V> {
    HandleMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4))
}

/// TCP sockets by state, published by a shard's app for other threads.
#[derive(Debug, Default)]
pub struct StateGauges {
    counts: [AtomicU64; 11],
}

impl StateGauges {
    /// All zero.
    pub fn new() -> Self {
        StateGauges::default()
    }

    /// Stores `h`.
    pub fn publish(&self, h: &StateHistogram) {
        for (slot, state) in self.counts.iter().zip(ALL_STATES) {
            slot.store(h.get(state) as u64, Ordering::Relaxed);
        }
    }

    /// Sockets in `state` at the last publication.
    pub fn get(&self, state: State) -> u64 {
        ALL_STATES
            .iter()
            .position(|&s| s == state)
            .map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }
}

fn sum_state(gauges: &[Arc<StateGauges>], state: State) -> u64 {
    gauges.iter().map(|g| g.get(state)).sum()
}

/// The shard configuration of `host` on the in-process /24.
pub fn shard_config(host: Host) -> ShardConfig {
    let mut c = ShardConfig::new(InterfaceConfig {
        mac: host.mac,
        cidr: Ipv4Cidr::new(host.ip, 24).unwrap_or_else(|_| unreachable!("24 is a valid prefix")),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    c.max_tcp_connections = MAX_CONNECTIONS;
    c
}

/// How the shard threads wait when idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Busy-poll if the shard threads of both sides fit on the cores with one core to spare,
    /// else as [`Idle::Sleep`].
    Auto {
        /// See [`Idle::Sleep`].
        poll: Duration,
    },
    /// Spin (one core per shard).
    Busy,
    /// Park until a frame, a timer or 1 ms, after polling for `poll` since the last work
    /// ([`RuntimeConfig::busy_poll`]).
    Sleep {
        /// How long to keep polling after the last work before parking.
        poll: Duration,
    },
}

/// The runtime settings an [`Idle`] choice comes to (see [`idle_policy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleChoice {
    /// The runtime's idle policy.
    pub policy: IdlePolicy,
    /// [`RuntimeConfig::busy_poll`].
    pub busy_poll: Duration,
}

impl IdleChoice {
    /// For reports: "busy-poll", "sleep", or "sleep after polling N us".
    pub fn describe(&self) -> String {
        match self.policy {
            IdlePolicy::BusyPoll => "busy-poll".into(),
            _ if self.busy_poll.is_zero() => "sleep".into(),
            _ => format!("sleep after polling {} us", self.busy_poll.as_micros()),
        }
    }

    /// Sets the idle policy and the polling window of `c`.
    pub fn apply(&self, c: &mut RuntimeConfig) {
        c.idle = self.policy;
        c.busy_poll = self.busy_poll;
    }
}

/// One in-process load: the load generator's shards against the echo's shards.
#[derive(Clone, Debug)]
pub struct MemoryLoad {
    /// Template of every client shard's load (conns, quota and rate are totals, split over
    /// the shards; the target is set to the echo).
    pub worker: WorkerConfig,
    /// Client shards.
    pub client_shards: usize,
    /// Server shards.
    pub server_shards: usize,
    /// The echo server's behaviour.
    pub echo: EchoAppConfig,
    /// Idle policy of both runtimes.
    pub idle: Idle,
    /// Capture the client's frames here (one file per client shard beyond the first:
    /// `FILE.1`, `FILE.2`, ...).
    pub pcap: Option<PathBuf>,
    /// Progress lines to stderr (with `--json`).
    pub progress_to_stderr: bool,
}

/// What an in-process load produced.
#[derive(Debug)]
pub struct MemoryResult {
    /// Per-second stats of all client shards, TIME_WAIT of both sides.
    pub series: Series,
    /// From the start of the load to its end (drained).
    pub elapsed: Duration,
    /// Wall-clock start (for the interval log).
    pub start_wall: std::time::SystemTime,
    /// Open-loop sends that never went out.
    pub unsent: u64,
    /// Both stacks.
    pub summary: ShardnetSummary,
    /// The load generator's TIME-WAIT counters at each second.
    pub tw_counters: Vec<TwCounterSample>,
}

/// Bytes of one TIME-WAIT entry in shardnet: the compact entry the shard keeps per connection
/// in TIME-WAIT is the protocol state ([`TimeWait`]) beside its 2*MSL timer ([`TimerId`])
/// (the stack's private `TwSlot`; its test `time_wait_entry_is_at_most_64_bytes` prints the
/// same sum, 52 B on x86-64). The flow-table slot that maps a 4-tuple to it is not counted.
pub fn time_wait_entry_bytes() -> u64 {
    (std::mem::size_of::<TimeWait>() + std::mem::size_of::<TimerId>()) as u64
}

/// The client shards' cumulative `TWRecycled` and `TCPEphemeralPortExhausted`.
fn tw_counters<P, A>(rt: &Runtime<P, A>, second: u64) -> TwCounterSample
where
    P: Port + Send + 'static,
    A: App + 'static,
{
    let mut c = TwCounterSample {
        second,
        ..TwCounterSample::default()
    };
    for snap in snapshots(rt).into_iter().flatten() {
        c.tw_recycled += snap.stats.tcp_ext.tw_recycled;
        c.port_exhausted += snap.stats.tcp_ext.port_exhausted;
    }
    c
}

/// A port whose frames go to a pcap file: a [`PcapPort`] over a buffered file, with the apps'
/// error messages for creating and finishing the capture.
pub struct CapturePort<P: Port> {
    inner: PcapPort<P, BufWriter<std::fs::File>>,
}

impl<P: Port> std::fmt::Debug for CapturePort<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturePort")
            .field("frames_written", &self.inner.frames_written())
            .finish()
    }
}

impl<P: Port> CapturePort<P> {
    /// Captures `port`'s frames into a new file at `path`.
    pub fn create(port: P, path: &Path) -> Result<Self, String> {
        let file =
            std::fs::File::create(path).map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        let inner = PcapPort::new(port, BufWriter::new(file), Clock::System)
            .map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        Ok(CapturePort { inner })
    }

    /// Flushes the capture; returns the frames written.
    pub fn finish(mut self, path: &Path) -> Result<u64, String> {
        if let Some(e) = self.inner.take_error() {
            return Err(format!("--pcap {}: {e}", path.display()));
        }
        let n = self.inner.frames_written();
        let (_, mut w) = self.inner.into_parts();
        w.flush()
            .map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        Ok(n)
    }
}

impl<P: Port> Port for CapturePort<P> {
    type Frame = P::Frame;

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn rx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize {
        self.inner.rx_burst(batch)
    }
    fn alloc_tx(&mut self) -> Option<Self::Frame> {
        self.inner.alloc_tx()
    }
    fn tx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize {
        self.inner.tx_burst(batch)
    }
    fn release(&mut self, frame: Self::Frame) {
        self.inner.release(frame);
    }
    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }
    fn set_rx_waker(&mut self, thread: std::thread::Thread) -> bool {
        self.inner.set_rx_waker(thread)
    }
}

/// Wraps every port in a [`CapturePort`] writing to [`pcap_path`]`(base, i)`.
pub fn capture_ports<P: Port>(ports: Vec<P>, base: &Path) -> Result<Vec<CapturePort<P>>, String> {
    ports
        .into_iter()
        .enumerate()
        .map(|(i, p)| CapturePort::create(p, &pcap_path(base, i)))
        .collect()
}

/// Flushes the captures of [`capture_ports`]; returns the frames written.
pub fn finish_captures<P: Port>(ports: Vec<CapturePort<P>>, base: &Path) -> Result<u64, String> {
    let mut n = 0;
    for (i, p) in ports.into_iter().enumerate() {
        n += p.finish(&pcap_path(base, i))?;
    }
    Ok(n)
}

/// The capture file of client shard `i`.
pub fn pcap_path(base: &Path, i: usize) -> PathBuf {
    if i == 0 {
        base.to_path_buf()
    } else {
        let mut s = base.as_os_str().to_owned();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    }
}

fn split(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts.max(1) as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn runtime_config(host: Host, idle: IdleChoice, first_core: usize, shards: usize) -> RuntimeConfig {
    runtime_config_mtu(host, idle, first_core, shards, 1500)
}

/// [`runtime_config`] on an interface of MTU `mtu` (the TCP MSS follows it).
fn runtime_config_mtu(
    host: Host,
    idle: IdleChoice,
    first_core: usize,
    shards: usize,
    mtu: u16,
) -> RuntimeConfig {
    let mut shard = shard_config(host);
    shard.iface.mtu = mtu;
    let mut c = RuntimeConfig::new(shard);
    idle.apply(&mut c);
    let n = cores();
    // The two runtimes of the process take different cores (as far as there are cores).
    c.pinning = Pinning::Cores((first_core..first_core + shards).map(|i| i % n).collect());
    c
}

fn sum_stats<P, A>(exits: &[ShardExit<P, A>]) -> Stats {
    let mut total = Stats::default();
    for e in exits {
        let mut values = Vec::new();
        let mut s = e.stats;
        s.for_each_mut(|v| values.push(*v));
        let mut k = 0;
        total.for_each_mut(|v| {
            *v += values.get(k).copied().unwrap_or(0);
            k += 1;
        });
    }
    total
}

fn counters_map(s: &Stats) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    s.for_each(|g, n, v| {
        if v != 0 {
            *m.entry(format!("{g}.{n}")).or_insert(0) += v;
        }
    });
    m
}

/// Every shard's exact TCP state histogram, asked for on the shard threads.
fn exact_states<P, A>(rt: &Runtime<P, A>) -> BTreeMap<String, u64>
where
    P: Port + Send + 'static,
    A: App + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let mut asked = 0;
    for i in 0..rt.shard_count() {
        let tx = tx.clone();
        if rt
            .run_on(i, move |shard, now| {
                let h = shard.sockets(now).state_histogram();
                let _ = tx.send(h);
            })
            .is_ok()
        {
            asked += 1;
        }
    }
    let mut m = BTreeMap::new();
    for _ in 0..asked {
        if let Ok(h) = rx.recv_timeout(Duration::from_secs(5)) {
            for (state, n) in h.iter() {
                *m.entry(state.name().to_string()).or_insert(0) += n as u64;
            }
        }
    }
    m
}

/// One side's counters and TCP states, for `--metrics`.
struct MetricsSide<'a> {
    name: &'a str,
    snapshots: Vec<Option<shardnet::runtime::ShardSnapshot>>,
    states: &'a [Arc<StateGauges>],
}

fn render_metrics(sides: &[MetricsSide<'_>]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP shardnet_counter shardnet's per-shard stack counters (netstat -s names).\n# TYPE shardnet_counter counter"
    );
    for side in sides {
        for (i, snap) in side.snapshots.iter().enumerate() {
            if let Some(snap) = snap {
                snap.stats.for_each(|g, n, v| {
                    let _ = writeln!(
                        s,
                        "shardnet_counter{{side=\"{}\",shard=\"{i}\",group=\"{g}\",name=\"{n}\"}} {v}",
                        side.name
                    );
                });
            }
        }
    }
    let _ = writeln!(
        s,
        "# HELP shardnet_tcp_sockets TCP sockets by state (ss -s), sampled every 100 ms.\n# TYPE shardnet_tcp_sockets gauge"
    );
    for side in sides {
        for state in ALL_STATES {
            let _ = writeln!(
                s,
                "shardnet_tcp_sockets{{side=\"{}\",state=\"{}\"}} {}",
                side.name,
                state.name(),
                sum_state(side.states, state)
            );
        }
    }
    s
}

fn snapshots<P, A>(rt: &Runtime<P, A>) -> Vec<Option<shardnet::runtime::ShardSnapshot>>
where
    P: Port + Send + 'static,
    A: App + 'static,
{
    (0..rt.shard_count()).map(|i| rt.stats(i)).collect()
}

/// The runtime's idle settings for `idle` with `threads` busy shard threads in this process
/// (`auto` spins only if they leave a core to spare).
pub fn idle_policy(idle: Idle, threads: usize) -> IdleChoice {
    let busy = IdleChoice {
        policy: IdlePolicy::BusyPoll,
        busy_poll: Duration::ZERO,
    };
    match idle {
        Idle::Busy => busy,
        // Spinning shards need a core each, and the main thread (progress, stats) one more:
        // busy-polling on fewer cores than that starves them all (measured on 2 cores: 17k
        // rr requests/s busy-polling against 158k sleeping).
        Idle::Auto { .. } if threads < cores() => busy,
        Idle::Auto { poll } | Idle::Sleep { poll } => IdleChoice {
            policy: IdlePolicy::Sleep {
                max: Duration::from_millis(1),
            },
            busy_poll: poll,
        },
    }
}

/// A running echo server: [`EchoApp`] on every shard of a runtime, every shard listening.
pub struct EchoRuntime<P: Port + Send + 'static> {
    runtime: Runtime<P, EchoApp>,
    counters: Arc<EchoCounters>,
    states: Vec<Arc<StateGauges>>,
    /// Ports listened on, from the configured one.
    ports: u16,
}

impl<P: Port + Send + 'static> std::fmt::Debug for EchoRuntime<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoRuntime")
            .field("shards", &self.runtime.shard_count())
            .field("counters", &self.counters)
            .finish()
    }
}

impl<P: Port + Send + 'static> EchoRuntime<P> {
    /// Starts the echo on `ports` (one shard each) and waits until every shard listens on
    /// `echo.port` (5 s at most).
    pub fn start(
        config: RuntimeConfig,
        ports: Vec<P>,
        echo: EchoAppConfig,
    ) -> Result<Self, String> {
        let shards = ports.len();
        let counters = Arc::new(EchoCounters::default());
        let states: Vec<Arc<StateGauges>> =
            (0..shards).map(|_| Arc::new(StateGauges::new())).collect();
        let runtime = Runtime::start(
            config,
            ports
                .into_iter()
                .zip(&states)
                .map(|(p, g)| (p, EchoApp::new(echo, Arc::clone(&counters), Arc::clone(g))))
                .collect(),
        )
        .map_err(|e| format!("echo runtime: {e:?}"))?;
        // Every echo shard listens in its first step: wait for all of them.
        let listen_deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ok = counters.listening.load(Ordering::Acquire) as usize;
            let failed = counters.listen_failures.load(Ordering::Acquire);
            if failed > 0 {
                let _ = runtime.stop();
                return Err(format!(
                    "echo: listen on ports {:?} failed on {failed} shard(s)",
                    echo.ports.as_slice()
                ));
            }
            if ok == shards {
                break;
            }
            if Instant::now() > listen_deadline {
                let _ = runtime.stop();
                return Err("echo: the shards did not start listening within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(EchoRuntime {
            ports: echo.ports.as_slice().len() as u16,
            runtime,
            counters,
            states,
        })
    }

    /// The counters of all shards.
    pub fn counters(&self) -> &EchoCounters {
        &self.counters
    }

    /// Shards.
    pub fn shard_count(&self) -> usize {
        self.runtime.shard_count()
    }

    /// TCP sockets in `state` at the shards' last 100 ms sample.
    pub fn sampled(&self, state: State) -> u64 {
        sum_state(&self.states, state)
    }

    /// Every shard's counters and TCP states in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        render_metrics(&[MetricsSide {
            name: "server",
            snapshots: snapshots(&self.runtime),
            states: &self.states,
        }])
    }

    /// Stops the runtime (after reading the exact TCP states); `peak_time_wait` is the caller's.
    pub fn stop(self, peak_time_wait: u64) -> Result<ShardnetSide, String> {
        self.stop_with_ports(peak_time_wait).map(|(side, _)| side)
    }

    /// [`EchoRuntime::stop`], also returning the ports.
    pub fn stop_with_ports(self, peak_time_wait: u64) -> Result<(ShardnetSide, Vec<P>), String> {
        let states = exact_states(&self.runtime);
        let tw = states.get(State::TimeWait.name()).copied().unwrap_or(0);
        let shards = self.runtime.shard_count();
        let exits = self
            .runtime
            .stop()
            .map_err(|e| format!("echo runtime: {e:?}"))?;
        let side = ShardnetSide::new(
            shards,
            peak_time_wait.max(tw),
            states,
            counters_map(&sum_stats(&exits)),
        );
        Ok((side, exits.into_iter().map(|e| e.port).collect()))
    }
}

/// The load generator's side at the end of one second of a load (for [`SoakNet::run`]'s
/// sampler).
#[derive(Clone, Copy, Debug)]
pub struct ClientSecond {
    /// Seconds since the load started.
    pub second: u64,
    /// Client TCP sockets in TIME-WAIT (the shards' last 100 ms sample).
    pub time_wait: u64,
    /// Client TCP sockets in any state.
    pub sockets: u64,
}

/// How long [`SoakNet::run`] keeps the client host up after a load for the connections of
/// both sides to end: FINs lost on the wire are retransmitted with backoff (RTO from 200 ms:
/// six losses in a row take 25 s).
pub const SETTLE: Duration = Duration::from_secs(30);

/// [`SoakNet::run`]'s per-second callback: the client's side, the echo server, and
/// [`SoakNet::wire_losses`].
pub type SoakSampler<'a> = dyn FnMut(ClientSecond, &EchoRuntime<ThreadedPort>, (u64, u64)) + 'a;

/// What [`SoakNet::run`] produced.
#[derive(Debug)]
pub struct SoakRun {
    /// Per-second stats of the load.
    pub series: Series,
    /// The client's side.
    pub client: ShardnetSide,
    /// True if every connection of both sides ended within [`SETTLE`] after the load.
    pub settled: bool,
}

/// A long-lived in-process network for soaks: one [`ThreadedWire`] (with seeded loss) and one
/// echo runtime that live for the whole soak, and a load generator runtime started for each
/// load ([`SoakNet::run`]) on the same client ports, so that rr and crr loads can alternate
/// against the same server.
pub struct SoakNet {
    wire: ThreadedWire,
    server: EchoRuntime<ThreadedPort>,
    client_ports: Vec<ThreadedPort>,
    idle: IdleChoice,
    server_shards: usize,
}

impl std::fmt::Debug for SoakNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoakNet")
            .field("server", &self.server)
            .field("client_shards", &self.client_ports.len())
            .finish()
    }
}

impl SoakNet {
    /// The wire (loss `loss`, seed `seed`), `server_shards` echo shards serving `echo`, and
    /// `client_shards` client ports.
    pub fn start(
        client_shards: usize,
        server_shards: usize,
        loss: f64,
        seed: u64,
        echo: EchoAppConfig,
        idle: Idle,
    ) -> Result<SoakNet, String> {
        let (client_shards, server_shards) = (client_shards.max(1), server_shards.max(1));
        let wire = ThreadedWire::new(ThreadedWireConfig {
            pool_size: 8192,
            ring_size: 8192,
            loss,
            seed,
            ..ThreadedWireConfig::default()
        });
        let server_port = wire.add_port(SERVER.mac, server_shards as u16);
        let client_port = wire.add_port(CLIENT.mac, client_shards as u16);
        let port = |p, q: usize| {
            wire.port(p, q as u16)
                .map_err(|e| format!("memory wire: {e:?}"))
        };
        let client_ports = (0..client_shards)
            .map(|q| port(client_port, q))
            .collect::<Result<Vec<_>, _>>()?;
        let server_ports = (0..server_shards)
            .map(|q| port(server_port, q))
            .collect::<Result<Vec<_>, _>>()?;
        let idle = idle_policy(idle, client_shards + server_shards);
        let server = EchoRuntime::start(
            runtime_config(SERVER, idle, 0, server_shards),
            server_ports,
            echo,
        )?;
        Ok(SoakNet {
            wire,
            server,
            client_ports,
            idle,
            server_shards,
        })
    }

    /// The echo server.
    pub fn server(&self) -> &EchoRuntime<ThreadedPort> {
        &self.server
    }

    /// Frames the wire lost (on purpose) and dropped (no buffer, ring full) so far.
    pub fn wire_losses(&self) -> (u64, u64) {
        wire_losses(&self.wire)
    }

    /// Runs one load of `worker` (its target is set to the echo) on a new load generator
    /// runtime, calling `on_second` at the end of each second with the client's side, the
    /// echo server and [`SoakNet::wire_losses`]. After the load the client runtime stays up
    /// until every connection of both sides has ended (at most [`SETTLE`]). Keeps the client
    /// ports for the next load.
    pub fn run(
        &mut self,
        worker: &WorkerConfig,
        stop: &Arc<AtomicBool>,
        on_second: &mut SoakSampler<'_>,
    ) -> Result<SoakRun, String> {
        let ports = std::mem::take(&mut self.client_ports);
        let shards = ports.len();
        let target = SocketAddrV4::new(SERVER.ip, ECHO_PORT);
        let (server, wire) = (&self.server, &self.wire);
        let mut hook = |c: ClientSecond| on_second(c, server, wire_losses(wire));
        let run = run_client(
            worker,
            target,
            runtime_config(CLIENT, self.idle, self.server_shards, shards),
            ports,
            true,
            stop,
            None,
            Some(&self.server),
            Some(&mut hook),
            Some(SETTLE),
        )?;
        self.client_ports = run.ports;
        Ok(SoakRun {
            series: run.series,
            client: run.side,
            settled: run.settled,
        })
    }

    /// Stops the echo.
    pub fn stop(self) -> Result<ShardnetSide, String> {
        self.server.stop(0)
    }
}

fn wire_losses(wire: &ThreadedWire) -> (u64, u64) {
    let c = wire.total_counters();
    (c.lost, c.rx_nombuf + c.rx_ring_full + c.tx_ring_full)
}

/// What [`run_client`] produced.
struct ClientRun<P> {
    series: Series,
    elapsed: Duration,
    start_wall: std::time::SystemTime,
    unsent: u64,
    side: ShardnetSide,
    peak_server_time_wait: u64,
    tw_counters: Vec<TwCounterSample>,
    ports: Vec<P>,
    /// False if `settle` was asked and the connections did not all end in time.
    settled: bool,
}

/// Runs the load generator on `ports` (one shard each) against `target` until the load ends,
/// with per-second progress; `server` is the in-process echo (memory driver), for TIME_WAIT
/// and `--metrics`.
#[allow(clippy::too_many_arguments)]
fn run_client<P, Q>(
    worker: &WorkerConfig,
    target: SocketAddrV4,
    config: RuntimeConfig,
    ports: Vec<P>,
    progress_to_stderr: bool,
    stop: &Arc<AtomicBool>,
    metrics: Option<(&LoadgenMetrics, &ExtraText)>,
    server: Option<&EchoRuntime<Q>>,
    mut on_second: Option<&mut dyn FnMut(ClientSecond)>,
    settle: Option<Duration>,
) -> Result<ClientRun<P>, String>
where
    P: Port + Send + 'static,
    Q: Port + Send + 'static,
{
    let client_shards = ports.len();
    let client_states: Vec<Arc<StateGauges>> = (0..client_shards)
        .map(|_| Arc::new(StateGauges::new()))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    // Set once the runtime and its settings are in place: the load (and its clock) starts
    // then, not while the shards are still being built.
    let go = Arc::new(std::sync::OnceLock::new());
    let mut apps = Vec::new();
    for (i, (port, gauges)) in ports.into_iter().zip(&client_states).enumerate() {
        let mut w = worker.clone();
        w.index = i;
        w.target = target;
        w.conns = split(worker.conns as u64, client_shards, i) as usize;
        w.quota = worker.quota.map(|q| split(q, client_shards, i));
        w.rate = worker.rate.map(|r| r / client_shards as f64);
        // The in-process echo's ports are the ones to spread over; any other echo server's
        // are the worker's (`--target-ports`).
        w.target_ports = server.map_or(worker.target_ports, |s| s.ports);
        apps.push((
            port,
            LoadApp::new(
                w,
                Arc::clone(&go),
                Arc::clone(stop),
                tx.clone(),
                Arc::clone(gauges),
            ),
        ));
    }
    drop(tx);
    let workers = apps.len();
    let client =
        Runtime::start(config, apps).map_err(|e| format!("load generator runtime: {e:?}"))?;
    // The in-process wire is this host's loopback: reuse TIME-WAIT 4-tuples for new connects
    // when timestamps make it safe, as Linux's default `tcp_tw_reuse = 2` does for loopback (and
    // so for the kernel baseline over 127.0.0.1). A client-closed crr can then open about one
    // connection per ephemeral port per second (Linux reuses a TIME-WAIT tuple once its last
    // timestamp is over a second old), so the client also takes the range load generators are
    // usually given (`ip_local_port_range` 1024-65535) rather than Linux's default 32768-60999.
    // Over a real driver both stay at Linux's defaults unless `--tw-reuse` / `--local-ports`.
    let memory = server.is_some();
    let tw_reuse = worker.tw_reuse || memory;
    let local_ports = worker.local_ports.or(memory.then_some((1024, 65535)));
    if tw_reuse || local_ports.is_some() {
        for i in 0..client.shard_count() {
            client
                .run_on(i, move |shard, _| {
                    let tcp = shard.tcp();
                    if tw_reuse {
                        let mut tw = tcp.time_wait_config();
                        tw.reuse = true;
                        tcp.set_time_wait_config(tw);
                    }
                    if let Some((lo, hi)) = local_ports {
                        tcp.set_ephemeral_range(lo, hi);
                    }
                })
                .map_err(|e| format!("load generator runtime: {e:?}"))?;
        }
    }

    let start = Instant::now();
    let start_wall = std::time::SystemTime::now();
    let _ = go.set(start);
    let (mut peak_client, mut peak_server) = (0u64, 0u64);
    let mut counters = Vec::new();
    let collected = collect_seconds(
        &rx,
        workers,
        start,
        progress_to_stderr,
        metrics.map(|(m, _)| m),
        &mut |second, _| {
            counters.push(tw_counters(&client, second));
            let c = sum_state(&client_states, State::TimeWait);
            let s = server.map_or(0, |s| s.sampled(State::TimeWait));
            if let Some(f) = on_second.as_mut() {
                f(ClientSecond {
                    second,
                    time_wait: c,
                    sockets: ALL_STATES
                        .iter()
                        .map(|st| sum_state(&client_states, *st))
                        .sum(),
                });
            }
            peak_client = peak_client.max(c);
            peak_server = peak_server.max(s);
            if let Some((_, extra)) = metrics {
                let mut sides = vec![MetricsSide {
                    name: "client",
                    snapshots: snapshots(&client),
                    states: &client_states,
                }];
                if let Some(s) = server {
                    sides.push(MetricsSide {
                        name: "server",
                        snapshots: snapshots(&s.runtime),
                        states: &s.states,
                    });
                }
                let text = render_metrics(&sides);
                match extra.lock() {
                    Ok(mut t) => *t = text,
                    Err(p) => *p.into_inner() = text,
                }
            }
            Some(c + s)
        },
    );
    // A soak keeps the client host up after its load until every connection of both sides
    // has ended (a FIN or final ACK lost on the wire is retransmitted and answered), as a
    // host whose process exited keeps its kernel's connections: otherwise the server would
    // keep retransmitting to a vanished peer and the next load would inherit its leftovers.
    let mut settled = true;
    if let Some(limit) = settle {
        let open = |g: &[Arc<StateGauges>]| -> u64 {
            ALL_STATES
                .iter()
                .filter(|s| !matches!(s, State::Listen | State::TimeWait))
                .map(|s| sum_state(g, *s))
                .sum()
        };
        let t0 = Instant::now();
        settled = false;
        while t0.elapsed() < limit {
            // The gauges are published every 100 ms: two quiet samples in a row.
            let quiet =
                |_: ()| open(&client_states) == 0 && server.is_none_or(|s| open(&s.states) == 0);
            if quiet(()) {
                std::thread::sleep(Duration::from_millis(250));
                if quiet(()) {
                    settled = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let client_end = exact_states(&client);
    let tw = |m: &BTreeMap<String, u64>| m.get(State::TimeWait.name()).copied().unwrap_or(0);
    peak_client = peak_client.max(tw(&client_end));
    let client_exits = client
        .stop()
        .map_err(|e| format!("load generator runtime: {e:?}"))?;
    if let Some(e) = collected.errors.into_iter().next() {
        return Err(e);
    }
    let side = ShardnetSide::new(
        client_shards,
        peak_client,
        client_end,
        counters_map(&sum_stats(&client_exits)),
    );
    Ok(ClientRun {
        series: collected.series,
        elapsed: collected.elapsed,
        start_wall,
        unsent: collected.unsent,
        side,
        peak_server_time_wait: peak_server,
        tw_counters: counters,
        ports: client_exits.into_iter().map(|e| e.port).collect(),
        settled,
    })
}

/// How long a load on the in-process memory wire waits, after its last connection closed,
/// for every connection of both sides to have ended (or reached TIME-WAIT) before it reads
/// the end states. A close handshake over the wire takes microseconds; this bounds the wait
/// when something keeps a connection open.
const MEMORY_SETTLE: Duration = Duration::from_secs(2);

/// The IP MTU of loadgen's in-process memory wire: a jumbo frame (9000 bytes, MSS 8960), as a
/// virtual link may have. Linux's loopback, which the kernel baseline runs over, has an MTU of
/// 65536 and segments of up to 64 KiB (GSO); 9000 keeps the wire's pools (2048 buffers per
/// queue) at 18 MiB per queue.
pub const MEMORY_MTU: u16 = 9000;

/// Bytes per frame buffer of that wire: the MTU plus the Ethernet header, rounded up.
const MEMORY_FRAME_SIZE: usize = 9216;

/// Runs `load` on a fresh in-process network: echo runtime, then the load generator's runtime,
/// per-second progress, then both runtimes stopped. `metrics`, if given, also gets shardnet's
/// counters and state histograms through `extra`.
pub fn run_memory(
    load: &MemoryLoad,
    stop: &Arc<AtomicBool>,
    metrics: Option<(&LoadgenMetrics, &ExtraText)>,
) -> Result<MemoryResult, String> {
    let client_shards = load.client_shards.max(1);
    let server_shards = load.server_shards.max(1);
    let wire = ThreadedWire::new(ThreadedWireConfig {
        // 2048 jumbo buffers per queue (18 MiB): the pool is FIFO, so every buffer in it is
        // cycled through, and a larger pool only spreads the frames over more cache and TLB.
        pool_size: 2048,
        ring_size: 8192,
        // Checksum offload as on Linux's loopback, which the kernel baseline runs over (`lo`
        // neither computes nor verifies TCP checksums); off under --pcap, so that the
        // capture's checksums are real.
        checksum_offload: load.pcap.is_none(),
        mtu: MEMORY_MTU,
        frame_size: MEMORY_FRAME_SIZE,
        ..ThreadedWireConfig::default()
    });
    let server_port = wire.add_port(SERVER.mac, server_shards as u16);
    let client_port = wire.add_port(CLIENT.mac, client_shards as u16);
    let mut client_ports = Vec::new();
    for q in 0..client_shards {
        client_ports.push(
            wire.port(client_port, q as u16)
                .map_err(|e| format!("memory wire: {e:?}"))?,
        );
    }
    let mut server_ports = Vec::new();
    for q in 0..server_shards {
        server_ports.push(
            wire.port(server_port, q as u16)
                .map_err(|e| format!("memory wire: {e:?}"))?,
        );
    }
    let drops = |w: &ThreadedWire| {
        let c = w.total_counters();
        c.lost + c.rx_nombuf + c.rx_ring_full + c.tx_ring_full
    };
    let (mut result, captured) = match &load.pcap {
        None => {
            let (r, _) = run_on_ports(load, stop, metrics, client_ports, server_ports)?;
            (r, None)
        }
        Some(base) => {
            let ports = capture_ports(client_ports, base)?;
            let (r, ports) = run_on_ports(load, stop, metrics, ports, server_ports)?;
            (r, Some(finish_captures(ports, base)?))
        }
    };
    result.summary.wire_drops = Some(drops(&wire));
    result.summary.pcap_frames = captured;
    Ok(result)
}

fn run_on_ports<P>(
    load: &MemoryLoad,
    stop: &Arc<AtomicBool>,
    metrics: Option<(&LoadgenMetrics, &ExtraText)>,
    client_ports: Vec<P>,
    server_ports: Vec<ThreadedPort>,
) -> Result<(MemoryResult, Vec<P>), String>
where
    P: Port + Send + 'static,
{
    let client_shards = client_ports.len();
    let server_shards = server_ports.len();
    let idle = idle_policy(load.idle, client_shards + server_shards);
    // Both sides take the wire's MTU (and so their MSS) from the port.
    let mtu = server_ports.first().map_or(1500, |p| p.capabilities().mtu);
    let server = EchoRuntime::start(
        runtime_config_mtu(SERVER, idle, 0, server_shards, mtu),
        server_ports,
        load.echo,
    )?;
    let target = SocketAddrV4::new(SERVER.ip, load.echo.ports.first());
    let run = run_client(
        &load.worker,
        target,
        runtime_config_mtu(CLIENT, idle, server_shards, client_shards, mtu),
        client_ports,
        load.progress_to_stderr,
        stop,
        metrics,
        Some(&server),
        None,
        // Both ends are in this process: the report's end states (TIME_WAIT on the side that
        // closed first) are read once the last close handshakes are through, not while the
        // echo thread may still be answering the last FINs (a loaded machine showed them in
        // FIN-WAIT-1 now and then: the shardnet_e2e TIME_WAIT checks failed). The load's
        // figures are taken before this wait.
        Some(MEMORY_SETTLE),
    );
    let echo_accepted = server.counters.accepted.load(Ordering::Relaxed);
    let echo_errors = server.counters.errors.load(Ordering::Relaxed);
    let echo_sunk = server.counters.sunk.load(Ordering::Relaxed);
    // Stop the echo also when the load failed.
    let server_side = server.stop(0);
    let run = run?;
    let mut server_side = server_side?;
    server_side.peak_time_wait = server_side.peak_time_wait.max(run.peak_server_time_wait);
    let summary = ShardnetSummary {
        driver: "memory".into(),
        idle: idle.describe(),
        client: run.side,
        server: Some(server_side),
        echo_accepted: Some(echo_accepted),
        echo_errors: Some(echo_errors),
        echo_sunk: Some(echo_sunk),
        wire_drops: None,
        interface: None,
        pcap_frames: None,
    };
    Ok((
        MemoryResult {
            series: run.series,
            elapsed: run.elapsed,
            start_wall: run.start_wall,
            unsent: run.unsent,
            summary,
            tw_counters: run.tw_counters,
        },
        run.ports,
    ))
}
