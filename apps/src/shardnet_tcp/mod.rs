//! shardnet's TCP mode of the apps on the in-process memory wire.
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

use crate::kernel::loadgen::{Msg, WorkerConfig, collect_seconds};
use crate::metrics::{ExtraText, LoadgenMetrics};
use crate::report::{Series, ShardnetSide, ShardnetSummary};
use crate::{CLIENT, Host, SERVER};
use echo::{EchoApp, EchoAppConfig, EchoCounters};
use loadgen::LoadApp;
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Batch, Capabilities, PoolStats, Port};
use shardnet::runtime::{App, IdlePolicy, Pinning, Runtime, RuntimeConfig, ShardExit};
use shardnet::shard::{ShardConfig, Stats};
use shardnet::socket::StateHistogram;
use shardnet::socket::introspect::ALL_STATES;
use shardnet::tcp::State;
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

/// The most TCP connections (TIME-WAIT included) per shard: a connect/close load at tens of
/// thousands of connections per second keeps that many in TIME-WAIT for 60 s.
const MAX_CONNECTIONS: usize = 1 << 18;

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
    /// else sleep.
    Auto,
    /// Spin (one core per shard).
    Busy,
    /// Park until a frame, a timer or 1 ms.
    Sleep,
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
}

/// A client port whose frames go to a pcap file. Unlike the bare [`PcapPort`], it passes the
/// runtime's rx waker through to the memory wire, so an idle shard still sleeps until a frame
/// arrives instead of polling.
pub struct CapturePort {
    inner: PcapPort<ThreadedPort, BufWriter<std::fs::File>>,
}

impl std::fmt::Debug for CapturePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturePort")
            .field("frames_written", &self.inner.frames_written())
            .finish()
    }
}

impl CapturePort {
    /// Captures `port`'s frames into a new file at `path`.
    pub fn create(port: ThreadedPort, path: &Path) -> Result<Self, String> {
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

impl Port for CapturePort {
    type Frame = <ThreadedPort as Port>::Frame;

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
        self.inner.inner_mut().set_rx_waker(thread)
    }
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

fn runtime_config(host: Host, idle: IdlePolicy, first_core: usize, shards: usize) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(shard_config(host));
    c.idle = idle;
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

fn render_metrics<P, A, Q, B>(
    client: &Runtime<P, A>,
    server: &Runtime<Q, B>,
    client_states: &[Arc<StateGauges>],
    server_states: &[Arc<StateGauges>],
) -> String
where
    P: Port + Send + 'static,
    A: App + 'static,
    Q: Port + Send + 'static,
    B: App + 'static,
{
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP shardnet_counter shardnet's per-shard stack counters (netstat -s names).\n# TYPE shardnet_counter counter"
    );
    let mut side = |name: &str, snaps: Vec<Option<shardnet::runtime::ShardSnapshot>>| {
        for (i, snap) in snaps.into_iter().enumerate() {
            if let Some(snap) = snap {
                snap.stats.for_each(|g, n, v| {
                    let _ = writeln!(
                        s,
                        "shardnet_counter{{side=\"{name}\",shard=\"{i}\",group=\"{g}\",name=\"{n}\"}} {v}"
                    );
                });
            }
        }
    };
    side(
        "client",
        (0..client.shard_count()).map(|i| client.stats(i)).collect(),
    );
    side(
        "server",
        (0..server.shard_count()).map(|i| server.stats(i)).collect(),
    );
    let _ = writeln!(
        s,
        "# HELP shardnet_tcp_sockets TCP sockets by state (ss -s), sampled every 100 ms.\n# TYPE shardnet_tcp_sockets gauge"
    );
    for (name, gauges) in [("client", client_states), ("server", server_states)] {
        for state in ALL_STATES {
            let _ = writeln!(
                s,
                "shardnet_tcp_sockets{{side=\"{name}\",state=\"{}\"}} {}",
                state.name(),
                sum_state(gauges, state)
            );
        }
    }
    s
}

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
        pool_size: 8192,
        ring_size: 8192,
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
            let ports = client_ports
                .into_iter()
                .enumerate()
                .map(|(i, p)| CapturePort::create(p, &pcap_path(base, i)))
                .collect::<Result<Vec<_>, _>>()?;
            let (r, ports) = run_on_ports(load, stop, metrics, ports, server_ports)?;
            let mut n = 0;
            for (i, p) in ports.into_iter().enumerate() {
                n += p.finish(&pcap_path(base, i))?;
            }
            (r, Some(n))
        }
    };
    result.summary.wire_drops = drops(&wire);
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
    let (idle, idle_name) = match load.idle {
        Idle::Busy => (IdlePolicy::BusyPoll, "busy-poll"),
        // Spinning shards need a core each, and the main thread (progress, stats) one more:
        // busy-polling on fewer cores than that starves them all (measured on 2 cores: 17k
        // rr requests/s busy-polling against 158k sleeping).
        Idle::Auto if client_shards + server_shards < cores() => {
            (IdlePolicy::BusyPoll, "busy-poll")
        }
        Idle::Auto | Idle::Sleep => (
            IdlePolicy::Sleep {
                max: shardnet::time::Duration::from_millis(1),
            },
            "sleep",
        ),
    };
    let counters = Arc::new(EchoCounters::default());
    let server_states: Vec<Arc<StateGauges>> = (0..server_shards)
        .map(|_| Arc::new(StateGauges::new()))
        .collect();
    let client_states: Vec<Arc<StateGauges>> = (0..client_shards)
        .map(|_| Arc::new(StateGauges::new()))
        .collect();
    let server = Runtime::start(
        runtime_config(SERVER, idle, 0, server_shards),
        server_ports
            .into_iter()
            .zip(&server_states)
            .map(|(p, g)| {
                (
                    p,
                    EchoApp::new(load.echo, Arc::clone(&counters), Arc::clone(g)),
                )
            })
            .collect(),
    )
    .map_err(|e| format!("echo runtime: {e:?}"))?;
    // Every echo shard listens in its first step: wait for all of them.
    let listen_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ok = counters.listening.load(Ordering::Acquire) as usize;
        let failed = counters.listen_failures.load(Ordering::Acquire);
        if failed > 0 {
            return Err(format!(
                "echo: listen on port {} failed on {failed} shard(s)",
                load.echo.port
            ));
        }
        if ok == server_shards {
            break;
        }
        if Instant::now() > listen_deadline {
            return Err("echo: the shards did not start listening within 5 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    let start = Instant::now();
    let start_wall = std::time::SystemTime::now();
    let target = SocketAddrV4::new(SERVER.ip, load.echo.port);
    let mut apps = Vec::new();
    for (i, (port, gauges)) in client_ports.into_iter().zip(&client_states).enumerate() {
        let mut w = load.worker.clone();
        w.index = i;
        w.target = target;
        w.conns = split(load.worker.conns as u64, client_shards, i) as usize;
        w.quota = load.worker.quota.map(|q| split(q, client_shards, i));
        w.rate = load.worker.rate.map(|r| r / client_shards as f64);
        apps.push((
            port,
            LoadApp::new(w, start, Arc::clone(stop), tx.clone(), Arc::clone(gauges)),
        ));
    }
    drop(tx);
    let workers = apps.len();
    let client = Runtime::start(
        runtime_config(CLIENT, idle, server_shards, client_shards),
        apps,
    )
    .map_err(|e| format!("load generator runtime: {e:?}"))?;

    let (mut peak_client, mut peak_server) = (0u64, 0u64);
    let collected = collect_seconds(
        &rx,
        workers,
        start,
        load.progress_to_stderr,
        metrics.map(|(m, _)| m),
        &mut |_, _| {
            let c = sum_state(&client_states, State::TimeWait);
            let s = sum_state(&server_states, State::TimeWait);
            peak_client = peak_client.max(c);
            peak_server = peak_server.max(s);
            if let Some((_, extra)) = metrics {
                let text = render_metrics(&client, &server, &client_states, &server_states);
                match extra.lock() {
                    Ok(mut t) => *t = text,
                    Err(p) => *p.into_inner() = text,
                }
            }
            Some(c + s)
        },
    );
    let client_end = exact_states(&client);
    let server_end = exact_states(&server);
    let tw = |m: &BTreeMap<String, u64>| m.get(State::TimeWait.name()).copied().unwrap_or(0);
    peak_client = peak_client.max(tw(&client_end));
    peak_server = peak_server.max(tw(&server_end));
    let client_exits = client
        .stop()
        .map_err(|e| format!("load generator runtime: {e:?}"))?;
    let server_exits = server.stop().map_err(|e| format!("echo runtime: {e:?}"))?;
    if let Some(e) = collected.errors.into_iter().next() {
        return Err(e);
    }
    let summary = ShardnetSummary {
        driver: "memory".into(),
        idle: idle_name.into(),
        client: ShardnetSide {
            shards: client_shards,
            peak_time_wait: peak_client,
            states: client_end,
            counters: counters_map(&sum_stats(&client_exits)),
        },
        server: ShardnetSide {
            shards: server_shards,
            peak_time_wait: peak_server,
            states: server_end,
            counters: counters_map(&sum_stats(&server_exits)),
        },
        echo_accepted: counters.accepted.load(Ordering::Relaxed),
        echo_errors: counters.errors.load(Ordering::Relaxed),
        wire_drops: 0,
        pcap_frames: None,
    };
    let ports = client_exits.into_iter().map(|e| e.port).collect();
    Ok((
        MemoryResult {
            series: collected.series,
            elapsed: collected.elapsed,
            start_wall,
            unsent: collected.unsent,
            summary,
        },
        ports,
    ))
}
