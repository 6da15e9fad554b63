//! shardnet load generator.
//!
//! - `--stack shardnet --driver memory` (the default) without `--mode`: the UDP request/response
//!   job over two shardnet stacks on the in-process memory wire (see `shardnet_udp`).
//! - `--stack kernel --mode rr|crr|stream`: TCP load against an echo server on Linux sockets, every
//!   response verified against its request. shardnet's TCP modes are not wired yet and say so.
//!
//! Exit status: 0 all verified, 1 the run could not happen, 2 errors (refused, reset, timeout,
//! EADDRNOTAVAIL, closed, abandoned requests), 3 mismatched responses.

use clap::{Parser, ValueEnum};
use shardnet_apps::cli::{Common, StackKind, secs};
use shardnet_apps::client::ConnConfig;
use shardnet_apps::kernel::loadgen::{LoadConfig, Mode, WorkerConfig, run_load};
use shardnet_apps::kernel::{fastopen_refusal, stop_flag, tcpext_counter};
use shardnet_apps::metrics::{LoadgenMetrics, MetricsServer};
use shardnet_apps::protocol::MAX_PAYLOAD;
use shardnet_apps::report::{ErrorKind, Report};
use shardnet_apps::shardnet_udp::{UdpJob, run_job};
use shardnet_apps::timewait::{ChurnReport, ChurnSample, ephemeral_port_range};
use std::io::Write;
use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Persistent connections, request/response (pipelined with --depth).
    Rr,
    /// Connect, request, response, close: one transaction per connection.
    Crr,
    /// Bulk both ways through the echo: --depth requests of --size in flight per connection.
    Stream,
}

/// Command-line options.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "shardnet load generator: UDP over shardnet's memory wire, or TCP rr/crr/stream against an echo server"
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
    /// TCP: the echo server.
    #[arg(long, value_name = "A.B.C.D:P", default_value = "127.0.0.1:7777")]
    target: SocketAddrV4,
    /// TCP load mode.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
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
    /// TCP Fast Open (TCP_FASTOPEN_CONNECT; needs net.ipv4.tcp_fastopen bit 1).
    #[arg(long)]
    fastopen: bool,
    /// SO_LINGER 0: close sends RST, no TIME_WAIT.
    #[arg(long)]
    linger0: bool,
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
    #[arg(long)]
    tw_report: bool,
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
    match args.common.stack {
        StackKind::Shardnet => {
            if let Some(mode) = args.mode {
                return Err(format!(
                    "--stack shardnet --mode {}: shardnet's TCP modes are not wired yet (its TCP socket API and \
                     runtime are still being built); today shardnet runs only the UDP memory-wire job \
                     (no --mode). Use --stack kernel for TCP.",
                    mode.to_possible_value()
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default()
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
        StackKind::Kernel => kernel(args),
    }
}

fn kernel(args: &Args) -> Result<ExitCode, String> {
    let mode = match args.mode.unwrap_or(ModeArg::Rr) {
        ModeArg::Rr => Mode::Rr,
        ModeArg::Crr => Mode::Crr,
        ModeArg::Stream => Mode::Stream,
    };
    if args.common.ip.is_some() {
        return Err(
            "--ip is not used by loadgen --stack kernel: the kernel's routing picks the source"
                .into(),
        );
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
        (None, None) => Duration::from_secs(10),
    };
    let mut notes = Vec::new();
    let tfo_before = tcpext_counter("TCPFastOpenActive");
    if args.fastopen {
        if let Some(n) = fastopen_refusal(false) {
            eprintln!("loadgen: warning: {n}");
            notes.push(n);
        }
    }
    let metrics = LoadgenMetrics::new();
    let _metrics_server = match args.common.metrics {
        Some(addr) => {
            let m = MetricsServer::spawn(addr, metrics.registry.clone())?;
            eprintln!("loadgen: metrics on http://{}/metrics", m.addr());
            Some(m)
        }
        None => None,
    };
    let stop = stop_flag()?;
    let cfg = LoadConfig {
        worker: WorkerConfig {
            index: 0,
            target: args.target,
            mode,
            conns: args.conns,
            conn: ConnConfig {
                size,
                depth,
                per_conn: (mode == Mode::Crr).then_some(1),
            },
            quota: args.count,
            rate: args.rate,
            server_close: args.server_close,
            linger0: args.linger0,
            fastopen: args.fastopen,
            nodelay: !args.nagle,
            quickack: args.quickack,
            busy_poll: args.common.busy_poll,
            timeout,
            deadline,
            drain: timeout,
        },
        shards: usize::from(args.common.shards),
        progress_to_stderr: args.common.json,
    };
    let result = run_load(&cfg, &stop, Some(&metrics))?;
    if args.fastopen {
        if let (Some(a), Some(b)) = (tfo_before, tcpext_counter("TCPFastOpenActive")) {
            notes.push(format!(
                "TCPFastOpenActive (host-wide, SYNs whose data the server accepted) rose by {} during the run",
                b.saturating_sub(a)
            ));
        }
    }
    let mut report = Report {
        stack: "kernel".into(),
        mode: format!("{mode:?}").to_lowercase(),
        target: args.target.to_string(),
        conns: args.conns,
        shards: usize::from(args.common.shards),
        size,
        depth,
        rate: args.rate,
        busy_poll: args.common.busy_poll,
        elapsed_s: 0.0,
        requests_sent: 0,
        responses_verified: 0,
        mismatched_requests: 0,
        abandoned: 0,
        unsent: result.unsent,
        requests_per_s: 0.0,
        connections_per_s: 0.0,
        connections: 0,
        tx_bits_per_s: 0.0,
        rx_bits_per_s: 0.0,
        latency: Default::default(),
        errors: Default::default(),
        notes,
        time_wait: None,
        per_second: Vec::new(),
    };
    report.totals(&result.series, result.elapsed);
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
        report.time_wait = Some(ChurnReport::new(samples, ephemeral_port_range()));
    }
    if let Some(path) = &args.hist_log {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| format!("--hist-log {}: {e}", path.display()))?,
        );
        result
            .series
            .write_interval_log(result.start_wall, &mut f)?;
        f.flush()
            .map_err(|e| format!("--hist-log {}: {e}", path.display()))?;
    }
    if args.common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.table());
    }
    let mismatched = report
        .errors
        .get(ErrorKind::Mismatched.name())
        .copied()
        .unwrap_or(0);
    Ok(if mismatched > 0 || report.mismatched_requests > 0 {
        ExitCode::from(3)
    } else if report.errors_total() > 0 || report.abandoned > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
