//! The scenario matrix: shardnet next to the Linux kernel in the same run (memory wire vs
//! loopback, AF_XDP and DPDK vs the kernel on a veth pair, raw packet-path ceilings, TIME_WAIT
//! churn, idle connections at scale). Writes `<out>/<date>-<host>.json`, `.md` and PNG plots.
//! Run as root (namespaces, AF_XDP) through `scripts/bench.sh`, which builds the binaries.
//!
//! ```sh
//! scripts/bench.sh            # the full matrix, about 20 minutes
//! scripts/bench.sh --quick --strict --out /tmp/x   # every part once, short (CI smoke)
//! ```

use clap::Parser;
use shardnet_bench::matrix::{self, Config, Part};
use std::path::PathBuf;
use std::process::ExitCode;

/// Repetitions per stack and scenario of a full run (see `--reps`).
const DEFAULT_REPS: usize = 5;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "shardnet vs the Linux kernel: the scenario matrix")]
struct Args {
    /// Every part once, short: 1 repetition, 2 s loads, 5 s churn, 20,000 idle connections.
    #[arg(long)]
    quick: bool,
    /// Repetitions per stack and scenario (default 5; --quick 1). Five, not three: on the
    /// 2-core VMs a load's rate moves by up to a fifth for several seconds at a time (both
    /// stacks), and three repetitions let one such stretch decide a median.
    #[arg(long)]
    reps: Option<usize>,
    /// Seconds per load (default 4; --quick 2).
    #[arg(long)]
    secs: Option<f64>,
    /// Seconds of each churn run (default 60; --quick 5).
    #[arg(long)]
    churn_secs: Option<f64>,
    /// Rounds of the AF_XDP ceiling (default 3; --quick 1).
    #[arg(long)]
    ceiling_rounds: Option<usize>,
    /// Idle connections of the conn_memory run (default 1,000,000; --quick 20,000; 0 skips).
    #[arg(long)]
    conn_memory: Option<u64>,
    /// Only these parts (comma-separated: memory, veth, dpdk, ceiling, churn, scale).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these side-by-side scenarios on each path (comma-separated: rr1, rr64,
    /// crr_server_close, crr_client_close, stream, rr64_open; rr64_open needs rr64). Default:
    /// all. E.g. `--only veth --scenarios crr_client_close`.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Echo ports of the crr rows, both stacks (1 reproduces the one-port crr that measured
    /// the port space; 1-16).
    #[arg(long, default_value_t = matrix::scenario::CRR_ECHO_PORTS,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    crr_echo_ports: u16,
    /// Directory of the release binaries (loadgen, echo, xdp_forward, conn_memory, dpdk_forward).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the result files go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Exit with status 1 if any part other than DPDK could not be measured (CI smoke).
    #[arg(long)]
    strict: bool,
    /// AF_XDP attach mode.
    #[arg(long, default_value = "native", value_parser = ["native", "generic"])]
    xdp_mode: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("matrix: needs root (network namespaces, AF_XDP); run scripts/bench.sh as root");
        return ExitCode::from(2);
    }
    let parts = if args.only.is_empty() {
        Part::ALL.to_vec()
    } else {
        match args
            .only
            .iter()
            .map(|s| Part::parse(s))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("matrix: --only: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let scenarios = match matrix::scenario::select(&args.scenarios) {
        Ok(s) => s
            .into_iter()
            .map(|s| match s.is_crr() {
                true => s.with_echo_ports(args.crr_echo_ports),
                false => s,
            })
            .collect(),
        Err(e) => {
            eprintln!("matrix: --scenarios: {e}");
            return ExitCode::from(2);
        }
    };
    let q = args.quick;
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("target/release"))
    });
    let cfg = Config {
        reps: args.reps.unwrap_or(if q { 1 } else { DEFAULT_REPS }).max(1),
        secs: args.secs.unwrap_or(if q { 2.0 } else { 4.0 }),
        churn_secs: args.churn_secs.unwrap_or(if q { 5.0 } else { 60.0 }),
        ceiling_rounds: args.ceiling_rounds.unwrap_or(if q { 1 } else { 3 }).max(1),
        conn_memory: args
            .conn_memory
            .unwrap_or(if q { 20_000 } else { 1_000_000 }),
        parts,
        scenarios,
        bin_dir,
        out_dir: args.out.clone(),
        xdp_mode: args.xdp_mode.clone(),
        command: std::env::var("SHARDNET_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
    };
    match matrix::run(&cfg) {
        Ok((md, failures)) => {
            eprintln!("matrix: table in {}", md.display());
            for f in &failures {
                eprintln!("matrix: not measured: {f}");
            }
            if args.strict && !failures.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("matrix: error: {e}");
            ExitCode::FAILURE
        }
    }
}
