//! shardnet load generator.
//!
//! - No arguments (`--stack shardnet --driver memory`): the main job. An echo server and the load
//!   generator run in this process, each on its own shardnet runtime, over the in-process
//!   threaded memory wire; `rr` then `crr` run for 3 s each (`--duration` each) and both result
//!   tables are printed.
//! - `--stack shardnet --mode rr|crr|stream`: just that scenario, on the same in-process network.
//! - `--stack shardnet --driver af-xdp --iface IF --ip A.B.C.D/N --target A.B.C.D:P` (or
//!   `--driver dpdk --eal "ARGS"`): the same load generator on a real interface, against any
//!   echo server (`--mode`, or rr then crr).
//! - `--target-ports N` (every TCP form): the connects go to N consecutive ports from
//!   `--target`'s, in turn (the echo runs with a `--port` for each); the memory driver's
//!   in-process echo listens on N ports (default [`MEMORY_ECHO_PORTS`]).
//! - `--stack kernel --mode rr|crr|stream`: TCP load against an echo server on Linux sockets.
//! - `--mode udp-rr`: the UDP request/response job over two shardnet stacks on the
//!   single-threaded memory wire, with seeded loss, duplication and reordering (see
//!   `shardnet_udp`).
//!
//! Every TCP response is verified against its request, on both stacks.
//!
//! Exit status: 0 all verified, 1 the run could not happen, 2 errors (refused, reset, timeout,
//! EADDRNOTAVAIL, closed, abandoned requests), 3 mismatched responses.

use clap::{Parser, ValueEnum};
use shardnet::udp::EPHEMERAL_PORTS;
use shardnet_apps::cli::{Common, Driver, StackKind, check_target_ports, secs, target_name};
use shardnet_apps::client::{ConnConfig, Exchange};
use shardnet_apps::kernel::loadgen::{LoadConfig, run_load};
use shardnet_apps::kernel::{fastopen_refusal, stop_flag, tcpext_counter};
use shardnet_apps::metrics::{ExtraText, LoadgenMetrics, MetricsServer};
use shardnet_apps::protocol::{HEADER_LEN, MAX_PAYLOAD};
use shardnet_apps::report::{ErrorKind, Report};
use shardnet_apps::schedule::{Mode, WorkerConfig};
use shardnet_apps::shardnet_tcp::echo::{EchoAppConfig, EchoPorts};
use shardnet_apps::shardnet_tcp::{
    ECHO_PORT, Idle, MEMORY_ECHO_PORTS, MemoryLoad, net, run_memory, time_wait_entry_bytes,
};
use shardnet_apps::shardnet_udp::{UdpJob, run_job};
use shardnet_apps::timewait::{ChurnReport, ChurnSample, ephemeral_port_range};
use shardnet_apps::{CLIENT, SERVER};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Persistent connections, request/response (pipelined with --depth).
    Rr,
    /// Connect, request, response, close: one transaction per connection.
    Crr,
    /// Bulk both ways through the echo: --depth requests of --size in flight per connection.
    Stream,
    /// UDP request/response over shardnet's single-threaded memory wire (--count, --sockets,
    /// --loss, --dup, --reorder, --seed, --stats, --pcap).
    UdpRr,
}

/// The direction of `--mode stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StreamDir {
    /// Client to server: the server consumes each request and acknowledges its byte count and
    /// checksum.
    Up,
    /// Server to client: each request asks the server for --size bytes.
    Down,
    /// Both ways through the echo.
    Both,
}

/// How shardnet's shard threads wait when idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IdleArg {
    /// Busy-poll when both runtimes' shards fit on the cores with one to spare, else sleep.
    Auto,
    /// Spin: one core per shard.
    Busy,
    /// Park until a frame arrives, a timer is due, or 1 ms passed.
    Sleep,
}

/// Command-line options.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "shardnet load generator: TCP rr/crr/stream against an echo server (on shardnet's in-process memory wire, or on kernel sockets), or UDP rr over the memory wire"
)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Transactions to complete (UDP job default: 200000; TCP: unbounded, see --duration).
    #[arg(long)]
    count: Option<u64>,
    /// UDP job: sockets, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    sockets: usize,
    /// Payload bytes per request (UDP job: 8..=1472, default 64; TCP: default 64, stream 16384).
    #[arg(long, value_name = "BYTES")]
    size: Option<u32>,
    /// Give up after this many seconds (UDP job; TCP with --count and no --duration).
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,
    /// UDP job: resend after this many ms (default 50). TCP: a request or connect older than this
    /// is a timeout error (default 5000).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// UDP job: probability that the wire drops a frame.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// UDP job: probability that the wire duplicates a frame.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// UDP job: probability that the wire delays a frame by 100 us (reordering it).
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// UDP job: seed of the wire's impairments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// UDP job: print every non-zero counter of both stacks at the end.
    #[arg(long)]
    stats: bool,
    /// The echo server: --stack kernel (default 127.0.0.1:7777) and --stack shardnet --driver
    /// af-xdp|dpdk (required). shardnet's memory driver runs its own echo in-process.
    #[arg(long, value_name = "A.B.C.D:P")]
    target: Option<SocketAddrV4>,
    /// TCP: spread the connects (rr connections, crr connections) over N consecutive ports from
    /// --target's, in turn (1-16; run the echo with a --port for each). Several ports multiply
    /// the 4-tuples a client-closed crr cycles through. shardnet's memory driver: its
    /// in-process echo listens on N ports from 7777 (default 8); elsewhere the default is 1
    #[arg(long, value_name = "N")]
    target_ports: Option<u16>,
    /// Load mode. Without it, --stack shardnet runs rr then crr (the main job) and --stack
    /// kernel runs rr.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// stream: up (client sends, server acknowledges), down (server sends) or both (echo).
    #[arg(long, value_enum, default_value_t = StreamDir::Both)]
    stream_dir: StreamDir,
    /// TCP: connections (closed loop: the concurrency).
    #[arg(long, value_name = "N", default_value_t = 16)]
    conns: usize,
    /// TCP: requests in flight per connection (rr pipelining; stream default 16).
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
    /// TCP: open loop at R requests/s (crr: connections/s); latency counts from the intended send time.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// crr: the client closes first (TIME_WAIT on the client; the default).
    #[arg(long, conflicts_with = "server_close")]
    client_close: bool,
    /// crr: wait for the server to close first (TIME_WAIT on the server; run echo with
    /// --close-after SIZE+24).
    #[arg(long)]
    server_close: bool,
    /// TCP Fast Open (kernel: TCP_FASTOPEN_CONNECT, needs net.ipv4.tcp_fastopen bit 1;
    /// shardnet: crr only, each connection opens with connect_with_data carrying its request).
    #[arg(long)]
    fastopen: bool,
    /// SO_LINGER 0: close sends RST, no TIME_WAIT.
    #[arg(long)]
    linger0: bool,
    /// Ephemeral ports of the client's connects, LO-HI (kernel: IP_LOCAL_PORT_RANGE per socket,
    /// Linux 6.3; shardnet: the client shards' range). Default: the stack's own (Linux
    /// 32768-60999; shardnet's memory driver 1024-65535)
    #[arg(long, value_name = "LO-HI", value_parser = parse_port_range)]
    local_ports: Option<(u16, u16)>,
    /// shardnet: reuse TIME-WAIT 4-tuples for new connects when timestamps make it safe (Linux
    /// tcp_tw_reuse = 1; always on for the memory driver, as Linux's default does on loopback).
    /// The kernel's equivalent is the sysctl net.ipv4.tcp_tw_reuse
    #[arg(long)]
    tw_reuse: bool,
    /// TCP_QUICKACK after every read.
    #[arg(long)]
    quickack: bool,
    /// Leave Nagle's algorithm on (TCP_NODELAY is set by default).
    #[arg(long)]
    nagle: bool,
    /// Write per-second latency histograms to FILE in the HdrHistogram interval log format.
    #[arg(long, value_name = "FILE")]
    hist_log: Option<std::path::PathBuf>,
    /// Report TIME_WAIT churn: entries over time, port allocation failures, steady state.
    /// --stack kernel counts TIME_WAIT (in /proc/net/tcp) every second only with it.
    #[arg(long)]
    tw_report: bool,
    /// shardnet: how shard threads wait when idle (--busy-poll means busy).
    #[arg(long, value_enum, default_value_t = IdleArg::Auto)]
    idle: IdleArg,
    /// shardnet memory driver: the in-process echo's accept queue per shard.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    echo_backlog: usize,
    /// shardnet memory driver: SO_REUSEPORT on the in-process echo's listeners.
    #[arg(long)]
    echo_reuseport: bool,
    /// shardnet memory driver: SO_LINGER 0 on the in-process echo (its closes reset).
    #[arg(long)]
    echo_linger0: bool,
    /// shardnet memory driver: the in-process echo closes each connection after echoing BYTES
    /// (--server-close sets it to one request).
    #[arg(long, value_name = "BYTES")]
    echo_close_after: Option<u64>,
    /// shardnet memory driver: TCP_FASTOPEN on the in-process echo's listeners with this queue
    /// length (pair with --fastopen).
    #[arg(long, value_name = "QLEN")]
    echo_fastopen: Option<u32>,
    /// shardnet memory driver: TCP_DEFER_ACCEPT on the in-process echo's listeners (SECS).
    #[arg(long, value_name = "SECS")]
    echo_defer_accept: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    args.common.validate()?;
    if args.mode == Some(ModeArg::UdpRr) {
        return udp(args);
    }
    for (flag, given) in [
        ("--loss", args.loss != 0.0),
        ("--dup", args.dup != 0.0),
        ("--reorder", args.reorder != 0.0),
        ("--stats", args.stats),
    ] {
        if given {
            return Err(format!(
                "{flag} applies to --mode udp-rr (the UDP memory-wire job)"
            ));
        }
    }
    match args.common.stack {
        StackKind::Shardnet => {
            let echo_flags = args.echo_reuseport
                || args.echo_linger0
                || args.echo_close_after.is_some()
                || args.echo_fastopen.is_some()
                || args.echo_defer_accept.is_some();
            let memory = args.common.driver() == Driver::Memory;
            if !memory {
                if args.target.is_none() {
                    return Err(format!(
                        "--driver {} needs --target A.B.C.D:P (an echo server reachable from --ip)",
                        args.common.driver().name()
                    ));
                }
                if echo_flags || args.echo_backlog != 4096 {
                    return Err(format!(
                        "--echo-* configure the memory driver's in-process echo; with --driver {} the \
                         echo server is --target (run `echo` with the matching option)",
                        args.common.driver().name()
                    ));
                }
            } else if args.target.is_some() {
                return Err(format!(
                    "--target: with --stack shardnet --driver memory the echo server runs in this process \
                     (at {}:{}); --target is for --stack kernel",
                    SERVER.ip, ECHO_PORT
                ));
            }
            for (flag, given) in [
                ("--ip", args.common.ip.is_some()),
                ("--gateway", args.common.gateway.is_some()),
                ("--iface", args.common.iface.is_some()),
                ("--eal", args.common.eal.is_some()),
            ] {
                if given && memory {
                    return Err(format!(
                        "{flag}: the memory driver's in-process network is fixed ({} -> {})",
                        CLIENT.ip, SERVER.ip
                    ));
                }
            }
            if args.fastopen && args.mode != Some(ModeArg::Crr) {
                return Err(
                    "--fastopen on shardnet applies to --mode crr (each new connection sends its \
                     request with connect_with_data, in the SYN once the server gave a cookie)"
                        .into(),
                );
            }
            match args.mode {
                Some(mode) => {
                    let r = tcp_load(args, mode, Duration::from_secs(10))?;
                    emit(args, &[r])
                }
                None => {
                    // The main job: rr, then crr.
                    for (flag, given) in [
                        ("--depth", args.depth.is_some()),
                        ("--client-close", args.client_close),
                        ("--server-close", args.server_close),
                        ("--hist-log", args.hist_log.is_some()),
                        ("--pcap", args.common.pcap.is_some()),
                        ("--echo-*", echo_flags && memory),
                    ] {
                        if given {
                            return Err(format!(
                                "{flag} needs --mode: without it loadgen runs its default job (rr then crr)"
                            ));
                        }
                    }
                    let each = Duration::from_secs(3);
                    let rr = tcp_load(args, ModeArg::Rr, each)?;
                    let crr = tcp_load(args, ModeArg::Crr, each)?;
                    emit(args, &[rr, crr])
                }
            }
        }
        StackKind::Kernel => {
            if args.tw_reuse {
                return Err(
                    "--tw-reuse is shardnet's; the kernel's TIME-WAIT reuse is the sysctl \
                     net.ipv4.tcp_tw_reuse (set it in the load generator's namespace)"
                        .into(),
                );
            }
            let r = tcp_load(
                args,
                args.mode.unwrap_or(ModeArg::Rr),
                Duration::from_secs(10),
            )?;
            emit(args, &[r])
        }
    }
}

fn udp(args: &Args) -> Result<ExitCode, String> {
    if args.common.stack != StackKind::Shardnet {
        return Err(
            "--mode udp-rr is shardnet's memory-wire job; it has no --stack kernel form".into(),
        );
    }
    if args.target_ports.is_some() {
        return Err(
            "--target-ports applies to the TCP modes (the UDP job has one echo socket)".into(),
        );
    }
    if args.common.driver() != Driver::Memory {
        return Err(format!(
            "--mode udp-rr is shardnet's memory-wire job; it does not run on --driver {}",
            args.common.driver().name()
        ));
    }
    let size = args.size.unwrap_or(64);
    let size = u16::try_from(size)
        .ok()
        .filter(|s| (8..=1472).contains(s))
        .ok_or_else(|| format!("--size {size}: the UDP job needs 8..=1472"))?;
    let job = UdpJob {
        count: args.count.unwrap_or(200_000),
        sockets: args.sockets,
        size,
        max_seconds: args.max_seconds,
        timeout_ms: args.timeout_ms.unwrap_or(50),
        loss: args.loss,
        dup: args.dup,
        reorder: args.reorder,
        seed: args.seed,
        pcap: args.common.pcap.clone(),
        stats: args.stats,
    };
    Ok(match run_job(&job)? {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(2),
    })
}

/// One finished TCP load, ready to print.
struct Outcome {
    report: Report,
    series: shardnet_apps::report::Series,
    start_wall: std::time::SystemTime,
}

/// Runs one TCP load (`mode`) on the chosen stack; `default_deadline` applies without
/// --duration and --count.
fn tcp_load(args: &Args, mode: ModeArg, default_deadline: Duration) -> Result<Outcome, String> {
    let mode = match mode {
        ModeArg::Rr => Mode::Rr,
        ModeArg::Crr => Mode::Crr,
        ModeArg::Stream => Mode::Stream,
        ModeArg::UdpRr => return Err("udp-rr is not a TCP mode".into()),
    };
    let shardnet = args.common.stack == StackKind::Shardnet;
    if !shardnet {
        if args.common.ip.is_some() {
            return Err(
                "--ip is not used by loadgen --stack kernel: the kernel's routing picks the source"
                    .into(),
            );
        }
        let echo_flags = [
            ("--echo-backlog", args.echo_backlog != 4096),
            ("--echo-reuseport", args.echo_reuseport),
            ("--echo-linger0", args.echo_linger0),
            ("--echo-close-after", args.echo_close_after.is_some()),
            ("--echo-fastopen", args.echo_fastopen.is_some()),
            ("--echo-defer-accept", args.echo_defer_accept.is_some()),
            ("--idle", args.idle != IdleArg::Auto),
        ];
        if let Some((flag, _)) = echo_flags.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{flag} is for shardnet's memory driver (its in-process echo and runtime); with --stack kernel run `echo --stack kernel` with the matching option"
            ));
        }
    }
    if args.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(format!("--rate {r}: must be a positive number"));
        }
    }
    if mode != Mode::Crr && (args.server_close || args.client_close) {
        return Err("--client-close/--server-close apply to --mode crr".into());
    }
    if mode != Mode::Stream && args.stream_dir != StreamDir::Both {
        return Err("--stream-dir applies to --mode stream".into());
    }
    let exchange = match (mode, args.stream_dir) {
        (Mode::Stream, StreamDir::Up) => Exchange::Sink,
        (Mode::Stream, StreamDir::Down) => Exchange::Source,
        _ => Exchange::Echo,
    };
    let size = args
        .size
        .unwrap_or(if mode == Mode::Stream { 16384 } else { 64 });
    if size > MAX_PAYLOAD {
        return Err(format!("--size {size}: at most {MAX_PAYLOAD}"));
    }
    let depth = match (mode, args.depth) {
        (Mode::Crr, Some(d)) if d != 1 => return Err("--depth applies to rr and stream".into()),
        (_, Some(0)) => return Err("--depth must be at least 1".into()),
        (_, Some(d)) => d,
        (Mode::Stream, None) => 16,
        (_, None) => 1,
    };
    let timeout = Duration::from_millis(args.timeout_ms.unwrap_or(5000));
    let deadline = match (args.common.duration, args.count) {
        (Some(d), _) => secs(d),
        (None, Some(_)) => secs(args.max_seconds),
        (None, None) => default_deadline,
    };
    let target = args
        .target
        .unwrap_or(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7777));
    // The memory driver's in-process echo listens on as many ports as the connects spread
    // over (MEMORY_ECHO_PORTS unless --target-ports says otherwise); any other echo server
    // listens where it was told, one port unless --target-ports.
    let memory = shardnet && args.common.driver() == Driver::Memory;
    let target_ports = match (args.target_ports, memory) {
        (Some(n), true) => check_target_ports(ECHO_PORT, n)?,
        (Some(n), false) => check_target_ports(target.port(), n)?,
        (None, true) => MEMORY_ECHO_PORTS,
        (None, false) => 1,
    };
    let mut notes = Vec::new();
    // The kernel's Fast Open is a host setting with host-wide counters; shardnet's counters are
    // its own (in the shardnet summary).
    let kernel_fastopen = args.fastopen && !shardnet;
    let tfo_before = tcpext_counter("TCPFastOpenActive");
    if kernel_fastopen {
        if let Some(n) = fastopen_refusal(false) {
            eprintln!("loadgen: warning: {n}");
            notes.push(n);
        }
    }
    let extra: ExtraText = Arc::default();
    let metrics = if shardnet {
        LoadgenMetrics::with_extra(Arc::clone(&extra))
    } else {
        LoadgenMetrics::new()
    };
    let _metrics_server = match args.common.metrics {
        Some(addr) => {
            let m = MetricsServer::spawn(addr, metrics.registry.clone())?;
            eprintln!("loadgen: metrics on http://{}/metrics", m.addr());
            Some(m)
        }
        None => None,
    };
    let stop = stop_flag()?;
    let worker = WorkerConfig {
        index: 0,
        target,
        target_ports,
        mode,
        conns: args.conns,
        conn: ConnConfig {
            size,
            depth,
            per_conn: (mode == Mode::Crr).then_some(1),
            exchange,
        },
        quota: args.count,
        rate: args.rate,
        server_close: args.server_close,
        linger0: args.linger0,
        fastopen: args.fastopen,
        local_ports: args.local_ports,
        tw_reuse: args.tw_reuse,
        nodelay: !args.nagle,
        quickack: args.quickack,
        busy_poll: args.common.busy_poll,
        poll_window: args.common.poll_window(),
        timeout,
        deadline,
        drain: timeout,
    };
    let shards = usize::from(args.common.shards);
    let poll = args.common.poll_window();
    let idle = match (args.idle, args.common.busy_poll) {
        (_, true) | (IdleArg::Busy, _) => Idle::Busy,
        (IdleArg::Sleep, false) => Idle::Sleep { poll },
        (IdleArg::Auto, false) => Idle::Auto { poll },
    };
    let net = args.common.net_options(idle);
    let (series, elapsed, start_wall, unsent, summary, target_label, tw_counters) =
        if let Some(net) = net {
            let r = net::run_load(
                &net,
                &worker,
                target,
                args.common.json,
                &stop,
                Some((&metrics, &extra)),
            )?;
            (
                r.series,
                r.elapsed,
                r.start_wall,
                r.unsent,
                Some(r.summary),
                target_name(target, target_ports),
                r.tw_counters,
            )
        } else if shardnet {
            let close_after = match (args.echo_close_after, args.server_close) {
                (Some(n), _) => Some(n),
                (None, true) => Some(u64::from(size) + HEADER_LEN as u64),
                (None, false) => None,
            };
            let load = MemoryLoad {
                worker,
                client_shards: shards,
                server_shards: shards,
                echo: EchoAppConfig {
                    ports: EchoPorts::consecutive(ECHO_PORT, target_ports),
                    backlog: args.echo_backlog,
                    reuseport: args.echo_reuseport,
                    close_after,
                    linger0: args.echo_linger0,
                    nodelay: !args.nagle,
                    quickack: args.quickack,
                    fast_open: args.echo_fastopen,
                    defer_accept_secs: args.echo_defer_accept,
                },
                idle,
                pcap: args.common.pcap.clone(),
                progress_to_stderr: args.common.json,
            };
            let r = run_memory(&load, &stop, Some((&metrics, &extra)))?;
            (
                r.series,
                r.elapsed,
                r.start_wall,
                r.unsent,
                Some(r.summary),
                format!(
                    "{} (memory wire, in-process echo)",
                    target_name(SocketAddrV4::new(SERVER.ip, ECHO_PORT), target_ports)
                ),
                r.tw_counters,
            )
        } else {
            let cfg = LoadConfig {
                worker,
                shards,
                progress_to_stderr: args.common.json,
                time_wait: args.tw_report,
            };
            let r = run_load(&cfg, &stop, Some(&metrics))?;
            (
                r.series,
                r.elapsed,
                r.start_wall,
                r.unsent,
                None,
                target_name(target, target_ports),
                Vec::new(),
            )
        };
    if kernel_fastopen {
        if let (Some(a), Some(b)) = (tfo_before, tcpext_counter("TCPFastOpenActive")) {
            notes.push(format!(
                "TCPFastOpenActive (host-wide, SYNs whose data the server accepted) rose by {} during the run",
                b.saturating_sub(a)
            ));
        }
    }
    let mut report = Report {
        stack: args.common.stack.name().into(),
        mode: format!("{mode:?}").to_lowercase(),
        stream_dir: (mode == Mode::Stream).then(|| format!("{:?}", args.stream_dir).to_lowercase()),
        target: target_label,
        conns: args.conns,
        shards,
        size,
        depth,
        rate: args.rate,
        busy_poll: args.common.busy_poll,
        elapsed_s: 0.0,
        requests_sent: 0,
        responses_verified: 0,
        mismatched_requests: 0,
        abandoned: 0,
        unsent,
        requests_per_s: 0.0,
        bytes_tx: 0,
        bytes_rx: 0,
        connections_per_s: 0.0,
        connections: 0,
        tx_bits_per_s: 0.0,
        rx_bits_per_s: 0.0,
        latency: Default::default(),
        latency_cdf: Vec::new(),
        errors: Default::default(),
        notes,
        time_wait: None,
        shardnet: summary,
        per_second: Vec::new(),
    };
    report.totals(&series, elapsed);
    if args.tw_report {
        let samples = report
            .per_second
            .iter()
            .map(|s| ChurnSample {
                second: s.second,
                time_wait: s.time_wait.unwrap_or(0),
                connects: s.connects,
                eaddrnotavail: s.eaddrnotavail,
            })
            .collect();
        let range = match (shardnet, args.common.driver() != Driver::Memory) {
            // The memory driver's client takes 1024-65535 (see `run_client`).
            (true, false) => Some((1024, 65535)),
            (true, true) => Some((*EPHEMERAL_PORTS.start(), *EPHEMERAL_PORTS.end())),
            (false, _) => ephemeral_port_range(),
        };
        let mut churn = ChurnReport::new(samples, range);
        if let Some(summary) = &report.shardnet {
            let c = |n: &str| summary.client.counters.get(n).copied().unwrap_or(0);
            churn = churn.with_shardnet(
                &tw_counters,
                (
                    c("TcpExt.TWRecycled"),
                    c("TcpExt.TCPEphemeralPortExhausted"),
                ),
                time_wait_entry_bytes(),
            );
        }
        report.time_wait = Some(churn);
    }
    Ok(Outcome {
        report,
        series,
        start_wall,
    })
}

/// Prints the reports (tables, or JSON: one object, or an array for the default job) and
/// writes --hist-log; the exit status is the worst of the runs.
fn emit(args: &Args, outcomes: &[Outcome]) -> Result<ExitCode, String> {
    if let Some(path) = &args.hist_log {
        if let Some(o) = outcomes.first() {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .map_err(|e| format!("--hist-log {}: {e}", path.display()))?,
            );
            o.series.write_interval_log(o.start_wall, &mut f)?;
            f.flush()
                .map_err(|e| format!("--hist-log {}: {e}", path.display()))?;
        }
    }
    if args.common.json {
        let json = match outcomes {
            [one] => serde_json::to_string_pretty(&one.report),
            many => {
                serde_json::to_string_pretty(&many.iter().map(|o| &o.report).collect::<Vec<_>>())
            }
        }
        .map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        for (i, o) in outcomes.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print!("{}", o.report.table());
        }
    }
    let mut worst = 0u8;
    for o in outcomes {
        let r = &o.report;
        let mismatched = r
            .errors
            .get(ErrorKind::Mismatched.name())
            .copied()
            .unwrap_or(0);
        let code = if mismatched > 0 || r.mismatched_requests > 0 {
            3
        } else if r.errors_total() > 0 || r.abandoned > 0 {
            2
        } else {
            0
        };
        worst = worst.max(code);
    }
    Ok(ExitCode::from(worst))
}

/// `LO-HI`: an inclusive range of ports, 1 <= LO <= HI.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected LO-HI"))?;
    let lo: u16 = lo.trim().parse().map_err(|e| format!("{lo:?}: {e}"))?;
    let hi: u16 = hi.trim().parse().map_err(|e| format!("{hi:?}: {e}"))?;
    if lo == 0 || lo > hi {
        return Err(format!("{s:?}: need 1 <= LO <= HI"));
    }
    Ok((lo, hi))
}
