//! shardnet echo server: listens on one or more TCP ports and echoes every byte.
//!
//! `--stack kernel` runs on Linux sockets (the baseline). `--stack shardnet --driver af-xdp
//! --iface IF --ip A.B.C.D/N` (or `--driver dpdk --eal "ARGS"`) runs it on shardnet, one shard
//! per device queue, serving any client on the interface. With `--stack shardnet --driver
//! memory` there is no peer to serve: the memory wire exists only inside one process, so
//! `loadgen --stack shardnet --driver memory` runs this echo server itself (the same options as
//! `--echo-backlog`, `--echo-reuseport`, `--echo-linger0`, `--echo-close-after`); this binary
//! says so and exits.

use clap::Parser;
use serde::Serialize;
use shardnet_apps::cli::{Common, Driver, StackKind, secs};
use shardnet_apps::kernel::echo::{EchoConfig, EchoServer};
use shardnet_apps::kernel::{fastopen_refusal, stop_flag};
use shardnet_apps::metrics::ExtraText;
use shardnet_apps::metrics::{MetricType, MetricsServer, Registry};
use shardnet_apps::shardnet_tcp::echo::{EchoAppConfig, EchoPorts};
use shardnet_apps::shardnet_tcp::{Idle, net};
use shardnet_apps::timewait::{TwFilter, count_time_wait};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Command-line options.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "shardnet echo server (TCP): echoes every byte it reads"
)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Port to listen on (repeatable; 0 picks a free port, printed on stderr).
    #[arg(long = "port", value_name = "P", default_value = "7777")]
    ports: Vec<u16>,
    /// listen() backlog.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    backlog: i32,
    /// One SO_REUSEPORT listener per shard (otherwise the shards share one listener).
    #[arg(long)]
    reuseport: bool,
    /// TCP Fast Open with this queue length (kernel: needs net.ipv4.tcp_fastopen bit 2;
    /// shardnet: its own RFC 7413 cookies).
    #[arg(long, value_name = "QLEN")]
    fastopen: Option<u32>,
    /// TCP_DEFER_ACCEPT: accept only once data arrived (or after SECS).
    #[arg(long, value_name = "SECS")]
    defer_accept: Option<u32>,
    /// Close each connection after echoing BYTES (TIME_WAIT lands on the server).
    #[arg(long, value_name = "BYTES")]
    close_after: Option<u64>,
    /// SO_LINGER 0: closes send RST and leave no TIME_WAIT.
    #[arg(long)]
    linger0: bool,
    /// TCP_QUICKACK after every read.
    #[arg(long)]
    quickack: bool,
    /// Leave Nagle's algorithm on (TCP_NODELAY is set by default).
    #[arg(long)]
    nagle: bool,
    /// --stack kernel: do not count TIME_WAIT every second. Reading /proc/net/tcp formats every
    /// socket of the namespace under the hash buckets' locks: with 100 k+ TIME_WAIT entries (a
    /// server-closed crr over several ports) that took a fifth of both cores' samples, on the
    /// echo's core (benchmarks pass it).
    #[arg(long)]
    no_time_wait: bool,
}

#[derive(Serialize)]
struct Second {
    second: u64,
    accepted: u64,
    open: u64,
    bytes: u64,
    time_wait: Option<u64>,
}

#[derive(Serialize)]
struct Summary {
    stack: &'static str,
    listen: Vec<String>,
    shards: usize,
    elapsed_s: f64,
    accepted: u64,
    closed: u64,
    bytes: u64,
    connection_errors: u64,
    accept_errors: u64,
    peak_open: u64,
    peak_time_wait: u64,
    notes: Vec<String>,
    per_second: Vec<Second>,
    /// shardnet's stack (TCP states and counters) at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    shardnet: Option<shardnet_apps::report::ShardnetSide>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    args.common.validate()?;
    if args.common.stack == StackKind::Shardnet && args.no_time_wait {
        return Err(
            "--no-time-wait is for --stack kernel (shardnet counts its TIME-WAIT in its own table)"
                .into(),
        );
    }
    if args.common.stack == StackKind::Shardnet && args.common.driver() != Driver::Memory {
        return run_shardnet(args);
    }
    if args.common.stack == StackKind::Shardnet {
        return Err(format!(
            "--stack shardnet --driver {}: the memory driver's wire lives inside one process, so a \
             standalone echo would have no peer. `loadgen --stack shardnet --driver memory` starts this \
             echo server itself on the same wire (options --echo-backlog, --echo-reuseport, \
             --echo-linger0, --echo-close-after, --echo-fastopen, --echo-defer-accept); use --stack kernel for a standalone echo server",
            args.common.driver().name()
        ));
    }
    if args.ports.is_empty() {
        return Err("at least one --port is needed".to_string());
    }
    let ip = args.common.ip.map_or(Ipv4Addr::LOCALHOST, |c| c.addr);
    let mut notes = Vec::new();
    if args.no_time_wait {
        notes.push("TIME_WAIT not counted (--no-time-wait)".to_string());
    }
    if args.fastopen.is_some() {
        if let Some(n) = fastopen_refusal(true) {
            eprintln!("echo: warning: {n}");
            notes.push(n);
        }
    }
    let stop = stop_flag()?;
    let server = EchoServer::start(EchoConfig {
        addrs: args
            .ports
            .iter()
            .map(|&p| SocketAddrV4::new(ip, p))
            .collect(),
        shards: usize::from(args.common.shards),
        backlog: args.backlog,
        reuseport: args.reuseport,
        fastopen: args.fastopen,
        defer_accept: args.defer_accept,
        close_after: args.close_after,
        linger0: args.linger0,
        nodelay: !args.nagle,
        quickack: args.quickack,
        busy_poll: args.common.busy_poll,
        poll_window: args.common.poll_window(),
    })?;
    let listen: Vec<String> = server.local.iter().map(|a| a.to_string()).collect();
    eprintln!(
        "echo: listening on {} (kernel, {} shards, reuseport {}, busy-poll {})",
        listen.join(" "),
        args.common.shards,
        if args.reuseport { "on" } else { "off" },
        if args.common.busy_poll { "on" } else { "off" },
    );

    let mut registry = Registry::new();
    let m_accepted = registry.register(
        "echo_accepted_total",
        "Connections accepted.",
        MetricType::Counter,
    );
    let m_open = registry.register(
        "echo_open_connections",
        "Open connections.",
        MetricType::Gauge,
    );
    let m_bytes = registry.register("echo_bytes_total", "Bytes echoed.", MetricType::Counter);
    let m_tw = registry.register(
        "echo_time_wait",
        "TIME_WAIT entries on the echo's ports.",
        MetricType::Gauge,
    );
    let _metrics = match args.common.metrics {
        Some(addr) => {
            let m = MetricsServer::spawn(addr, Arc::new(registry))?;
            eprintln!("echo: metrics on http://{}/metrics", m.addr());
            Some(m)
        }
        None => None,
    };

    let ports: Vec<u16> = server.local.iter().map(|a| a.port()).collect();
    let filter = TwFilter::LocalPorts(ports);
    let start = Instant::now();
    let end = args.common.duration.map(secs);
    let mut per_second = Vec::new();
    let (mut last_accepted, mut last_bytes) = (0, 0);
    let (mut peak_open, mut peak_tw) = (0, 0);
    let mut next = Duration::from_secs(1);
    loop {
        let stopping = stop.load(Ordering::Relaxed) || end.is_some_and(|e| start.elapsed() >= e);
        if start.elapsed() >= next || stopping {
            let accepted = server.total(|c| &c.accepted);
            let closed = server.total(|c| &c.closed);
            let bytes = server.total(|c| &c.bytes);
            let open = accepted.saturating_sub(closed);
            let tw = (!args.no_time_wait)
                .then(|| count_time_wait(&filter).ok())
                .flatten();
            peak_open = peak_open.max(open);
            peak_tw = peak_tw.max(tw.unwrap_or(0));
            m_accepted.set(accepted);
            m_open.set(open);
            m_bytes.set(bytes);
            m_tw.set(tw.unwrap_or(0));
            let s = Second {
                second: per_second.len() as u64,
                accepted: accepted - last_accepted,
                open,
                bytes: bytes - last_bytes,
                time_wait: tw,
            };
            let line = format!(
                "[{:>4}s] accepted {:>7}/s  open {:>6}  {:>10.3} MB/s  TIME_WAIT {}",
                s.second + 1,
                s.accepted,
                s.open,
                s.bytes as f64 / 1e6,
                tw.map_or("?".to_string(), |t| t.to_string())
            );
            if args.common.json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            per_second.push(s);
            last_accepted = accepted;
            last_bytes = bytes;
            next += Duration::from_secs(1);
        }
        if stopping {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let summary = Summary {
        stack: "kernel",
        listen,
        shards: usize::from(args.common.shards),
        elapsed_s: elapsed,
        accepted: server.total(|c| &c.accepted),
        closed: server.total(|c| &c.closed),
        bytes: server.total(|c| &c.bytes),
        connection_errors: server.total(|c| &c.errors),
        accept_errors: server.total(|c| &c.accept_errors),
        peak_open,
        peak_time_wait: peak_tw,
        notes,
        per_second,
        shardnet: None,
    };
    server.stop()?;
    print_summary(args, &summary, elapsed)
}

/// Prints the summary: JSON or one line with notes.
fn print_summary(args: &Args, summary: &Summary, elapsed: f64) -> Result<(), String> {
    if args.common.json {
        let json = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        println!(
            "echo summary: {:.1} s, {} connections accepted ({:.0}/s), {} closed, {} bytes echoed ({:.3} Gbit/s), \
             {} connection errors, {} accept errors, peak {} open, peak TIME_WAIT {}",
            summary.elapsed_s,
            summary.accepted,
            summary.accepted as f64 / elapsed.max(1e-9),
            summary.closed,
            summary.bytes,
            summary.bytes as f64 * 8.0 / elapsed.max(1e-9) / 1e9,
            summary.connection_errors,
            summary.accept_errors,
            summary.peak_open,
            summary.peak_time_wait
        );
        for n in &summary.notes {
            println!("  note: {n}");
        }
    }
    Ok(())
}

/// `--stack shardnet --driver af-xdp|dpdk`: the echo on shardnet, on a real interface.
fn run_shardnet(args: &Args) -> Result<(), String> {
    let ports = EchoPorts::new(&args.ports).map_err(|e| format!("--port: {e}"))?;
    let backlog = usize::try_from(args.backlog)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("--backlog {}: must be positive", args.backlog))?;
    let idle = if args.common.busy_poll {
        Idle::Busy
    } else {
        Idle::Auto {
            poll: args.common.poll_window(),
        }
    };
    let opts = args
        .common
        .net_options(idle)
        .ok_or("--stack shardnet needs --driver af-xdp or dpdk here")?;
    let echo = EchoAppConfig {
        ports,
        backlog,
        reuseport: args.reuseport,
        close_after: args.close_after,
        linger0: args.linger0,
        nodelay: !args.nagle,
        quickack: args.quickack,
        fast_open: args.fastopen,
        defer_accept_secs: args.defer_accept,
    };
    let stop = stop_flag()?;
    let extra: ExtraText = Arc::default();
    let mut registry = Registry::new();
    registry.set_extra(Arc::clone(&extra));
    let _metrics = match args.common.metrics {
        Some(addr) => {
            let m = MetricsServer::spawn(addr, Arc::new(registry))?;
            eprintln!("echo: metrics on http://{}/metrics", m.addr());
            Some(m)
        }
        None => None,
    };
    eprintln!(
        "echo: shardnet on --driver {} as {}/{}, ports {:?}, {} shards",
        args.common.driver().name(),
        opts.ip.addr,
        opts.ip.prefix,
        ports.as_slice(),
        opts.shards
    );
    let mut per_second = Vec::new();
    let mut last = net::EchoSample::default();
    let mut peak_open = 0;
    let json = args.common.json;
    let outcome = net::run_echo(
        &opts,
        echo,
        &stop,
        args.common.duration.map(secs),
        args.common.metrics.map(|_| &extra),
        &mut |s| {
            let open = s.accepted.saturating_sub(s.closed);
            peak_open = peak_open.max(open);
            let second = Second {
                second: per_second.len() as u64,
                accepted: s.accepted - last.accepted,
                open,
                bytes: s.bytes - last.bytes,
                time_wait: Some(s.time_wait),
            };
            let line = format!(
                "[{:>4}s] accepted {:>7}/s  open {:>6}  {:>10.3} MB/s  TIME_WAIT {}",
                second.second + 1,
                second.accepted,
                second.open,
                second.bytes as f64 / 1e6,
                s.time_wait
            );
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            per_second.push(second);
            last = *s;
        },
    )?;
    let elapsed = outcome.elapsed.as_secs_f64();
    let summary = Summary {
        stack: "shardnet",
        listen: ports
            .as_slice()
            .iter()
            .map(|p| format!("{}:{p}", opts.ip.addr))
            .collect(),
        shards: opts.shards,
        elapsed_s: elapsed,
        accepted: outcome.last.accepted,
        closed: outcome.last.closed,
        bytes: outcome.last.bytes,
        connection_errors: outcome.last.errors,
        accept_errors: 0,
        peak_open,
        peak_time_wait: outcome.side.peak_time_wait,
        notes: vec![format!(
            "driver {} ({}), idle {}",
            outcome.driver, outcome.interface, outcome.idle
        )],
        per_second,
        shardnet: Some(outcome.side),
    };
    print_summary(args, &summary, elapsed)
}
