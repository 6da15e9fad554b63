//! TIME-WAIT churn: millions of short connections through the real runtime, wall clock.
//!
//! A client runtime and a server runtime (one shard each, pinned to the two cores) on the
//! thread-safe memory wire. The client keeps `--concurrency` connections in flight; each one
//! connects, sends a 64-byte request, reads the 64-byte echo, checks it byte for byte and closes
//! first, so every connection ends in TIME-WAIT on the client. TIME-WAIT reuse stays **off**
//! (`tcp_tw_reuse = 0`): every entry lives its full 2MSL (60 s). So that 4-tuples outlast that,
//! the server listens on `--ports` ports (default 211, prime, so that the client's port cursor
//! and the destination port walk all 64,512 x 211 pairs before one repeats) and the client takes
//! ephemeral ports 1024-65535. TIME-WAIT then grows to its natural steady state of about
//! rate x 60 s entries.
//!
//! Per second it prints the connection rate, the TIME-WAIT entries (client + server) and the
//! heap (counting global allocator). At the end: the rate of the first seconds (empty
//! TIME-WAIT table) against the rate at steady state (past 2MSL), the heap per TIME-WAIT
//! entry (heap growth of the run over the entries held, measured, plus what
//! `max_tcp_connections` reserves per flow-table slot, measured by building a shard), and every
//! error (failed or reset connections, TIME-WAIT overflows, port exhaustion, wire drops),
//! which must all be 0.
//!
//! Then, in the same run, the Linux kernel does the same churn over loopback with `std::net`
//! (`--kernel-connections`, default 200,000; 0 skips it): the same request and echo, the same
//! number of server ports, the client closing first; its rate and its TIME_WAIT count from
//! `/proc/net/sockstat` per second, and `net.ipv4.tcp_max_tw_buckets`.
//!
//! ```sh
//! cargo run --release -p shardnet-bench --bin churn -- --connections 10000000
//! ```

#[path = "../../../stack/tests/support/connections.rs"]
mod connections;

use connections::{Counting, heap_in_use, proc_status_bytes};
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::runtime::{App, AppContext, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::tcp::TimeWaitConfig;
use shardnet::shard::{Shard, ShardConfig};
use shardnet::socket::{Event, Readiness, RecvError, SocketHandle, SocketOptions};
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::threaded::{ThreadedPort, ThreadedWire, ThreadedWireConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0x77, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0x77, 2]);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const BASE_PORT: u16 = 10_000;
const MSG_LEN: usize = 64;
/// 2MSL: how long a TIME-WAIT entry lives (shardnet's and Linux's `TCP_TIMEWAIT_LEN`).
const TWO_MSL: Duration = Duration::from_secs(60);
/// Seconds averaged for the rate "with an empty TIME-WAIT table" (skipping second 0, the start).
const FIRST_SECONDS: std::ops::Range<usize> = 1..6;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The request byte `i` of connection `id` (the echo is checked against it).
fn payload(id: u64, i: usize) -> u8 {
    (id.wrapping_mul(7) as usize + i * 13) as u8
}

fn shard_config(mac: EthernetAddress, ip: Ipv4Addr, max: usize) -> ShardConfig {
    let mut c = ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    c.max_tcp_connections = max;
    c
}

/// What the apps publish to the main thread.
#[derive(Default)]
struct Progress {
    completed: AtomicU64,
    failures: AtomicU64,
    connect_errors: AtomicU64,
    client_time_wait: AtomicU64,
    server_time_wait: AtomicU64,
    client_connections: AtomicU64,
    /// Set by the client once its shard is configured (TIME-WAIT, ephemeral range).
    configured: AtomicBool,
    /// Set by the main thread (after measuring the baseline heap): open connections.
    go: AtomicBool,
    done: AtomicBool,
}

/// Accepts on every listener and echoes; closes when the client has closed.
struct Server {
    progress: Arc<Progress>,
    events: Vec<Event>,
    buf: Vec<u8>,
}

impl App for Server {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let tw = ctx.shard.tcp().time_wait_count() as u64;
        self.progress.server_time_wait.store(tw, Ordering::Relaxed);
        let mut s = ctx.sockets();
        self.events.clear();
        s.poll_events(&mut self.events);
        for e in &self.events {
            if let SocketHandle::Listener(_) = e.socket {
                // The accepted socket's readiness arrives as an event of its own.
                while s.accept(e.socket).is_ok() {}
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
    id: u64,
    received: usize,
}

/// Keeps `concurrency` connections in flight until `total` have been opened.
struct Client {
    progress: Arc<Progress>,
    total: u64,
    concurrency: usize,
    ports: u16,
    max_connections: usize,
    opened: u64,
    conns: HashMap<SocketHandle, Conn>,
    events: Vec<Event>,
    msg: Vec<u8>,
}

impl App for Client {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let tcp = ctx.shard.tcp();
        if !self.progress.configured.load(Ordering::Relaxed) {
            // tcp_tw_reuse = 0: every TIME-WAIT entry lives its full 2MSL.
            tcp.set_time_wait_config(TimeWaitConfig {
                max_buckets: self.max_connections,
                reuse: false,
            });
            assert!(tcp.set_ephemeral_range(1024, 65535));
            self.progress.configured.store(true, Ordering::Release);
        }
        if !self.progress.go.load(Ordering::Acquire) {
            ctx.wake_at(ctx.now + shardnet::time::Duration::from_millis(1));
            return;
        }
        self.progress
            .client_time_wait
            .store(tcp.time_wait_count() as u64, Ordering::Relaxed);
        self.progress
            .client_connections
            .store(tcp.connection_count() as u64, Ordering::Relaxed);
        let mut s = ctx.sockets();
        while self.opened < self.total && self.conns.len() < self.concurrency {
            let id = self.opened;
            self.opened += 1;
            let port = BASE_PORT + (id % u64::from(self.ports)) as u16;
            match s.connect(
                SocketAddrV4::new(SERVER_IP, port),
                &SocketOptions::default(),
            ) {
                Ok(h) => {
                    self.conns.insert(h, Conn { id, received: 0 });
                }
                Err(_) => {
                    self.progress.connect_errors.fetch_add(1, Ordering::Relaxed);
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
                for (i, b) in self.msg.iter_mut().enumerate() {
                    *b = payload(c.id, i);
                }
                if s.send(h, &self.msg) != Ok(MSG_LEN) {
                    self.progress.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            let (mut done, mut bad) = (false, false);
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
                // The client closes first: TIME-WAIT lands here.
                let _ = s.close(h);
                self.conns.remove(&h);
            }
        }
        if self.opened >= self.total && self.conns.is_empty() {
            self.progress.done.store(true, Ordering::Relaxed);
        }
    }
}

/// One second of the run.
#[derive(Clone, Copy, Debug)]
struct Second {
    rate: u64,
    time_wait: u64,
    heap: usize,
    /// CPU seconds the shard threads got in this second (both shards: at most 2.0).
    cpu: f64,
}

/// The seconds of `xs` in [`FIRST_SECONDS`] (fewer if the run was shorter).
fn first_seconds(xs: &[Second]) -> &[Second] {
    let end = FIRST_SECONDS.end.min(xs.len());
    xs.get(FIRST_SECONDS.start.min(end)..end).unwrap_or(&[])
}

fn mean(xs: impl Iterator<Item = u64>) -> f64 {
    let (mut n, mut s) = (0u64, 0u64);
    for x in xs {
        n += 1;
        s += x;
    }
    if n == 0 { 0.0 } else { s as f64 / n as f64 }
}

/// CPU time (user + system, seconds) of this process's threads whose name starts with
/// `shardnet` (the runtimes' shard threads), from `/proc/self/task/*/stat`.
fn shard_cpu_seconds() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with("shardnet") {
            continue;
        }
        // Fields after the name: state is field 3; utime and stime are fields 14 and 15.
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    ticks as f64 / hz
}

/// The `q` quantile (0..=1) of `xs` (nearest rank), 0 if empty.
fn quantile(xs: &[u64], q: f64) -> u64 {
    let mut v = xs.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Heap `Shard::new` reserves per `max_tcp_connections` slot: a shard with `n` slots less one
/// with none, over `n`.
fn reserved_per_slot(n: usize) -> f64 {
    let before = heap_in_use();
    let empty = Shard::new(shard_config(CLIENT_MAC, CLIENT_IP, 0));
    let fixed = heap_in_use() - before;
    drop(empty);
    let before = heap_in_use();
    let full = Shard::new(shard_config(CLIENT_MAC, CLIENT_IP, n));
    let with = heap_in_use() - before;
    drop(full);
    (with - fixed) as f64 / n as f64
}

fn runtime_config(mac: EthernetAddress, ip: Ipv4Addr, max: usize, core: usize) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(shard_config(mac, ip, max));
    c.idle = IdlePolicy::BusyPoll;
    c.pinning = Pinning::Cores(vec![core]);
    // Reproducible sequence numbers; nothing here is exposed to a network.
    c.isn_key = Some(*b"shardnet-churn!!");
    c
}

/// What the shardnet run measured.
struct ShardnetResult {
    seconds: Vec<Second>,
    completed: u64,
    elapsed: Duration,
    errors: Vec<(&'static str, u64)>,
    peak_time_wait: u64,
    heap_per_entry: f64,
    reserved_per_slot: f64,
    rss: Option<usize>,
}

fn shardnet_run(total: u64, ports: u16, concurrency: usize, max: usize) -> ShardnetResult {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let reserved_per_slot = reserved_per_slot(1_000_000);
    let wire = ThreadedWire::new(ThreadedWireConfig {
        pool_size: 8192,
        ring_size: 8192,
        ..ThreadedWireConfig::default()
    });
    let sp = wire.add_port(SERVER_MAC, 1);
    let cp = wire.add_port(CLIENT_MAC, 1);
    let server_port: ThreadedPort = wire.port(sp, 0).unwrap();
    let client_port: ThreadedPort = wire.port(cp, 0).unwrap();
    let progress = Arc::new(Progress::default());
    let server = Runtime::start(
        runtime_config(SERVER_MAC, SERVER_IP, 1 << 16, 0),
        vec![(
            server_port,
            Server {
                progress: progress.clone(),
                events: Vec::new(),
                buf: vec![0; 4096],
            },
        )],
    )
    .unwrap();
    for p in 0..ports {
        server.listen(BASE_PORT + p, 4096).unwrap();
    }
    let client = Runtime::start(
        runtime_config(CLIENT_MAC, CLIENT_IP, max, 1 % cores),
        vec![(
            client_port,
            Client {
                progress: progress.clone(),
                total,
                concurrency,
                ports,
                max_connections: max,
                opened: 0,
                conns: HashMap::new(),
                events: Vec::new(),
                msg: vec![0; MSG_LEN],
            },
        )],
    )
    .unwrap();
    let wait = Instant::now() + Duration::from_secs(10);
    while !progress.configured.load(Ordering::Acquire) {
        assert!(Instant::now() < wait, "the client shard never stepped");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Resolve the server's MAC first, so that no SYN waits for ARP.
    client
        .run_on(0, |shard, now| {
            let _ = shard.ping(now, SERVER_IP, 1, 1, b"arp");
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The heap with both runtimes up, listeners open and an empty TIME-WAIT table.
    let baseline = heap_in_use();
    let start = Instant::now();
    progress.go.store(true, Ordering::Release);
    eprintln!(
        "{:>5} {:>10} {:>11} {:>12} {:>10} {:>6}",
        "s", "conn/s", "TIME-WAIT", "heap MiB", "done", "cpu s"
    );
    let mut seconds = Vec::new();
    let mut last = 0u64;
    let mut peak_time_wait = 0u64;
    let mut peak = (0u64, 0usize);
    let mut next = start + Duration::from_secs(1);
    let mut last_cpu = shard_cpu_seconds();
    // A run that stops progressing for 10 s is a failure, not a hang.
    let mut stalled_since = Instant::now();
    loop {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(20)));
            if !progress.done.load(Ordering::Relaxed) {
                continue;
            }
        }
        let done = progress.completed.load(Ordering::Relaxed);
        let tw = progress.client_time_wait.load(Ordering::Relaxed)
            + progress.server_time_wait.load(Ordering::Relaxed);
        let heap = heap_in_use();
        if tw >= peak_time_wait {
            peak_time_wait = tw;
            peak = (tw, heap);
        }
        let finished = progress.done.load(Ordering::Relaxed);
        if Instant::now() >= next {
            let cpu_now = shard_cpu_seconds();
            let s = Second {
                rate: done - last,
                time_wait: tw,
                heap,
                cpu: cpu_now - last_cpu,
            };
            last_cpu = cpu_now;
            eprintln!(
                "{:>5} {:>10} {:>11} {:>12.1} {:>10} {:>6.2}",
                seconds.len() + 1,
                s.rate,
                s.time_wait,
                s.heap as f64 / (1 << 20) as f64,
                done,
                s.cpu
            );
            if done > last {
                stalled_since = Instant::now();
            }
            seconds.push(s);
            last = done;
            next += Duration::from_secs(1);
        }
        if finished {
            break;
        }
        assert!(
            stalled_since.elapsed() < Duration::from_secs(10),
            "no connection completed for 10 s ({done} of {total})"
        );
    }
    let elapsed = start.elapsed();
    let completed = progress.completed.load(Ordering::Relaxed);
    let rss = proc_status_bytes("VmRSS:");
    let heap_per_entry = if peak.0 == 0 {
        0.0
    } else {
        peak.1.saturating_sub(baseline) as f64 / peak.0 as f64
    };
    let server_exits = server.stop().unwrap();
    let client_exits = client.stop().unwrap();
    let w = wire.total_counters();
    let mut errors = vec![
        (
            "failed connections (app)",
            progress.failures.load(Ordering::Relaxed),
        ),
        (
            "connect errors",
            progress.connect_errors.load(Ordering::Relaxed),
        ),
        ("not completed", total - completed),
        (
            "wire drops",
            w.lost + w.rx_nombuf + w.rx_ring_full + w.tx_ring_full,
        ),
    ];
    let sides = [
        (
            "client",
            client_exits
                .iter()
                .map(|e| (e.stats, e.runtime))
                .collect::<Vec<_>>(),
        ),
        (
            "server",
            server_exits.iter().map(|e| (e.stats, e.runtime)).collect(),
        ),
    ];
    for (side, exits) in sides {
        for (stats, runtime) in exits {
            let t = &stats.tcp;
            let x = &stats.tcp_ext;
            for (name, v) in [
                ("AttemptFails", t.attempt_fails),
                ("EstabResets", t.estab_resets),
                ("RetransSegs", t.retrans_segs),
                ("ListenOverflows", t.listen_overflows),
                ("ListenDrops", x.listen_drops),
                ("TCPTimeWaitOverflow", x.tw_overflow),
                ("TCPEphemeralPortExhausted", x.port_exhausted),
                ("TWRecycled", x.tw_recycled),
                ("forward drops", runtime.forward_drops),
            ] {
                let label: &'static str = Box::leak(format!("{side} {name}").into_boxed_str());
                errors.push((label, v));
            }
        }
    }
    ShardnetResult {
        seconds,
        completed,
        elapsed,
        errors,
        peak_time_wait,
        heap_per_entry,
        reserved_per_slot,
        rss,
    }
}

/// A field of `/proc/net/sockstat`'s `TCP:` line (`inuse`, `orphan`, `tw`, `alloc`, `mem`).
fn sockstat(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace().skip(1);
    while let (Some(k), Some(v)) = (words.next(), words.next()) {
        if k == field {
            return v.parse().ok();
        }
    }
    None
}

/// The kernel's TIME-WAIT socket object size from `/proc/slabinfo` (root only).
fn kernel_tw_object_size() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("tw_sock_TCP "))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What the kernel run measured.
struct KernelResult {
    seconds: Vec<Second>,
    completed: u64,
    failures: u64,
    elapsed: Duration,
    tw_before: Option<u64>,
    tw_peak: u64,
    max_tw_buckets: Option<u64>,
    tw_object: Option<u64>,
}

/// The same churn through the kernel over loopback: `threads` client threads, one blocking
/// connection at a time each, a server thread per listening port group.
fn kernel_run(total: u64, ports: u16, threads: usize) -> std::io::Result<KernelResult> {
    let listeners: Vec<std::net::TcpListener> = (0..ports)
        .map(|p| std::net::TcpListener::bind(("127.0.0.1", 0)).map(|l| (p, l)))
        .map(|r| r.map(|(_, l)| l))
        .collect::<std::io::Result<_>>()?;
    let addrs: Vec<std::net::SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<std::io::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    // One server thread polls every listener (nonblocking accept), echoes and closes.
    let server_stop = stop.clone();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; MSG_LEN];
        while !server_stop.load(Ordering::Relaxed) {
            let mut any = false;
            for l in &listeners {
                while let Ok((mut s, _)) = l.accept() {
                    any = true;
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_nodelay(true);
                    if s.read_exact(&mut buf).is_ok() {
                        let _ = s.write_all(&buf);
                        // Wait for the client's FIN: the client closes first.
                        let _ = s.read(&mut buf);
                    }
                }
            }
            if !any {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    let tw_before = sockstat("tw");
    let completed = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let next_id = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let clients: Vec<_> = (0..threads)
        .map(|_| {
            let (completed, failures, next_id, addrs) = (
                completed.clone(),
                failures.clone(),
                next_id.clone(),
                addrs.clone(),
            );
            std::thread::spawn(move || {
                let mut msg = [0u8; MSG_LEN];
                let mut echo = [0u8; MSG_LEN];
                loop {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    if id >= total {
                        break;
                    }
                    for (i, b) in msg.iter_mut().enumerate() {
                        *b = payload(id, i);
                    }
                    let addr = addrs[(id % addrs.len() as u64) as usize];
                    let ok = std::net::TcpStream::connect(addr).and_then(|mut s| {
                        s.set_nodelay(true)?;
                        s.write_all(&msg)?;
                        s.read_exact(&mut echo)?;
                        Ok(echo == msg)
                    });
                    if matches!(ok, Ok(true)) {
                        completed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut seconds = Vec::new();
    let mut last = 0;
    let mut tw_peak = 0;
    let mut next = start + Duration::from_secs(1);
    while completed.load(Ordering::Relaxed) + failures.load(Ordering::Relaxed) < total {
        std::thread::sleep(Duration::from_millis(10));
        if Instant::now() >= next {
            let done = completed.load(Ordering::Relaxed);
            let tw = sockstat("tw").unwrap_or(0);
            tw_peak = tw_peak.max(tw);
            let s = Second {
                rate: done - last,
                time_wait: tw,
                heap: 0,
                cpu: 0.0,
            };
            eprintln!(
                "kernel {:>5} {:>10} conn/s {:>9} TIME_WAIT {:>10} done",
                seconds.len() + 1,
                s.rate,
                tw,
                done
            );
            seconds.push(s);
            last = done;
            next += Duration::from_secs(1);
        }
    }
    let elapsed = start.elapsed();
    for c in clients {
        let _ = c.join();
    }
    tw_peak = tw_peak.max(sockstat("tw").unwrap_or(0));
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    Ok(KernelResult {
        seconds,
        completed: completed.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
        elapsed,
        tw_before,
        tw_peak,
        max_tw_buckets: std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_tw_buckets")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        tw_object: kernel_tw_object_size(),
    })
}

/// `/proc/loadavg` (other jobs share this machine's two cores).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total = arg(&args, "--connections", 10_000_000);
    let ports = arg(&args, "--ports", 211).clamp(1, 50_000) as u16;
    let concurrency = arg(&args, "--concurrency", 256) as usize;
    let max = arg(&args, "--max-connections", 16_000_000) as usize;
    let kernel_total = arg(&args, "--kernel-connections", 200_000);
    let kernel_threads = arg(&args, "--kernel-threads", 4) as usize;

    println!("load average at start: {}", loadavg());
    eprintln!(
        "shardnet: {total} connections, {ports} server ports, {concurrency} in flight, \
         max_tcp_connections {max}, tcp_tw_reuse off, ephemeral ports 1024-65535"
    );
    let r = shardnet_run(total, ports, concurrency, max);
    let wall = r.elapsed.as_secs_f64();
    let steady_from = TWO_MSL.as_secs() as usize + 2;
    let first = mean(first_seconds(&r.seconds).iter().map(|s| s.rate));
    // Steady state: whole seconds past 2MSL (+2 s), the last (partial) second left out.
    let steady_seconds = r
        .seconds
        .get(steady_from..r.seconds.len().saturating_sub(1))
        .unwrap_or(&[]);
    let steady = mean(steady_seconds.iter().map(|s| s.rate));
    let steady_tw = mean(steady_seconds.iter().map(|s| s.time_wait));
    println!("== shardnet (runtime + ThreadedWire, 1 client shard + 1 server shard, wall clock)");
    println!(
        "connections completed      {} of {total} in {wall:.1} s ({:.0}/s overall)",
        r.completed,
        r.completed as f64 / wall
    );
    println!("rate, seconds 2-6 (TIME-WAIT table filling from empty)  {first:.0}/s");
    if steady_seconds.is_empty() {
        println!(
            "rate at steady state         n/a: the run ended before 2MSL + 2 s ({} s); \
             give more --connections",
            r.seconds.len()
        );
    } else {
        println!(
            "rate at steady state (s {}-{}) {steady:.0}/s, {:+.1} % vs the first seconds; \
             TIME-WAIT there {steady_tw:.0} (rate x 60 s = {:.0})",
            steady_from + 1,
            steady_from + steady_seconds.len(),
            (steady / first - 1.0) * 100.0,
            steady * 60.0
        );
    }
    // Other jobs share the two cores: the shard threads get less than a core each at times.
    // Connections per CPU second of the shard threads take that out (a busy-polling shard
    // uses all the CPU it gets).
    let per_cpu = |xs: &[Second]| {
        let cpu: f64 = xs.iter().map(|s| s.cpu).sum();
        let n: u64 = xs.iter().map(|s| s.rate).sum();
        if cpu > 0.0 { n as f64 / cpu } else { 0.0 }
    };
    let first_window = first_seconds(&r.seconds);
    let rates = |xs: &[Second]| xs.iter().map(|s| s.rate).collect::<Vec<_>>();
    if !steady_seconds.is_empty() {
        println!(
            "per shard-CPU second, first seconds {:.0} conn, steady state {:.0} conn ({:+.1} %)",
            per_cpu(first_window),
            per_cpu(steady_seconds),
            (per_cpu(steady_seconds) / per_cpu(first_window) - 1.0) * 100.0
        );
        println!(
            "shard CPU per second, first seconds {:.2}, steady state {:.2} (of 2.00)",
            first_window.iter().map(|s| s.cpu).sum::<f64>() / first_window.len().max(1) as f64,
            steady_seconds.iter().map(|s| s.cpu).sum::<f64>() / steady_seconds.len().max(1) as f64
        );
        println!(
            "per-second rate at steady state: median {}, p90 {}, max {}",
            quantile(&rates(steady_seconds), 0.5),
            quantile(&rates(steady_seconds), 0.9),
            quantile(&rates(steady_seconds), 1.0)
        );
    }
    println!("TIME-WAIT peak             {}", r.peak_time_wait);
    println!(
        "heap per TIME-WAIT entry   {:.1} B (heap growth at the peak over the entries held)",
        r.heap_per_entry
    );
    println!(
        "flow-table reservation     {:.1} B per max_tcp_connections slot (Shard::new, measured)",
        r.reserved_per_slot
    );
    if let Some(rss) = r.rss {
        println!("process RSS at the end      {} MiB", rss >> 20);
    }
    let mut bad = 0;
    for (name, v) in &r.errors {
        println!("  {name:<36} {v}");
        // Retransmissions and recycled TIME-WAIT entries are not failures: reported only.
        if !name.ends_with("TWRecycled") && !name.ends_with("RetransSegs") {
            bad += v;
        }
    }
    println!("errors                      {bad}");

    if kernel_total > 0 {
        eprintln!(
            "kernel: {kernel_total} connections over loopback, {ports} server ports, \
             {kernel_threads} client threads"
        );
        match kernel_run(kernel_total, ports, kernel_threads) {
            Ok(k) => {
                let kw = k.elapsed.as_secs_f64();
                let krate = k.completed as f64 / kw;
                let kfirst = mean(first_seconds(&k.seconds).iter().map(|s| s.rate));
                println!("== Linux kernel (std::net over 127.0.0.1, same binary, same run)");
                println!(
                    "connections completed      {} of {kernel_total} in {kw:.1} s \
                     ({krate:.0}/s overall), failures {}",
                    k.completed, k.failures
                );
                println!("rate, seconds 2-6          {kfirst:.0}/s");
                println!(
                    "TIME_WAIT (sockstat tw)    {:?} before, {} at the peak",
                    k.tw_before, k.tw_peak
                );
                println!("tcp_max_tw_buckets         {:?}", k.max_tw_buckets);
                println!(
                    "tw_sock_TCP object size    {:?} B (slabinfo, root only)",
                    k.tw_object
                );
                println!(
                    "shardnet / kernel, rate of the first seconds   {:.1}x",
                    first / kfirst
                );
                println!(
                    "shardnet / kernel, overall rate                {:.1}x",
                    (r.completed as f64 / wall) / krate
                );
            }
            Err(e) => println!("kernel run failed: {e}"),
        }
    }
    println!("load average at the end: {}", loadavg());
    if bad > 0 {
        std::process::exit(1);
    }
}
