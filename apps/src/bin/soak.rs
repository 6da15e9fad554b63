//! `soak`: echo + load generator on shardnet over the in-process memory wire with seeded loss,
//! rr and crr loads alternating for a given duration, sampled every second; fails if memory or
//! a leak indicator grows after warm-up, if any response is mismatched, or if connections are
//! left open at the end.
//!
//! It lives in `apps` because it drives the apps' own echo server and load generator (the
//! runtimes, the request framing with ids and CRCs that catch a stale, foreign or corrupt
//! response); `bench` does not depend on `apps`.
//!
//! # Design
//!
//! One [`SoakNet`]: a threaded memory wire with loss, and one echo runtime that lives for the
//! whole soak (its memory, connection table and TIME-WAIT table are what a leak would grow).
//! The load alternates in phases of `--phase` seconds: rr (`--conns` persistent connections,
//! request/response) then crr (connect, request, response, close; TIME-WAIT on the client),
//! each phase on a new load generator runtime over the same client ports.
//!
//! # Samples and the growth rule
//!
//! Every second of load: the process's resident memory (`VmRSS` of `/proc/self/status`), the
//! server's TCP sockets by state, the client's TIME-WAIT and sockets, the echo's and the wire's
//! counters. The first `--warmup` fraction of the samples (at least 10) is warm-up (pools,
//! tables and allocator arenas reach their working size). Over the rest, the *window*, an
//! indicator *grows* if both
//!
//! 1. its least-squares slope times the window's length exceeds the allowance, and
//! 2. the median of the window's last fifth exceeds the median of its first fifth by more than
//!    the allowance,
//!
//! so that one spike (a phase boundary: a load generator runtime starting reserves its flow
//! table) does not count, but a steady climb does. Allowances: resident memory
//! `--max-growth` (10 %) of the window's median; the server's open connections (any state but
//! LISTEN and TIME-WAIT) `--conns`, one set of the load's connections. `docs/reliability.md`
//! explains the choice with the run's figures.
//!
//! Writes the samples as CSV (`--csv`), a PNG of the memory curve and connection counts
//! (`--png`), and a JSON summary (`--json`).

use clap::Parser;
use plotters::prelude::*;
use shardnet::socket::introspect::ALL_STATES;
use shardnet::tcp::State;
use shardnet_apps::client::{ConnConfig, Exchange};
use shardnet_apps::report::ErrorKind;
use shardnet_apps::schedule::{Mode, WorkerConfig};
use shardnet_apps::shardnet_tcp::echo::{EchoAppConfig, EchoPorts};
use shardnet_apps::shardnet_tcp::{ECHO_PORT, Idle, SETTLE, SoakNet};
use std::io::Write;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Soak: echo + loadgen (rr and crr alternating) on the lossy memory wire")]
struct Args {
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds per phase (rr and crr alternate).
    #[arg(long, default_value_t = 10)]
    phase: u64,
    /// Probability that the wire loses a frame.
    #[arg(long, default_value_t = 0.005)]
    loss: f64,
    /// Seed of the wire's loss decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Shards per side.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Concurrent connections of the load.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Request payload bytes.
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Fraction of the samples that is warm-up.
    #[arg(long, default_value_t = 0.2)]
    warmup: f64,
    /// Allowed resident-memory growth over the window, as a fraction of its median.
    #[arg(long, default_value_t = 0.10)]
    max_growth: f64,
    /// Where to write the samples.
    #[arg(long, default_value = "soak.csv")]
    csv: PathBuf,
    /// Where to draw the memory curve.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Where to write the summary.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One second of the soak.
#[derive(Clone, Debug, Default)]
struct Sample {
    t: f64,
    phase: usize,
    mode: &'static str,
    rss_kib: u64,
    server_open: u64,
    server_time_wait: u64,
    client_sockets: u64,
    client_time_wait: u64,
    echo_accepted: u64,
    echo_errors: u64,
    wire_lost: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Least-squares slope of `y` over `x`.
fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if x.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        num += (a - mx) * (b - my);
        den += (a - mx) * (a - mx);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

/// The growth rule (see the module documentation) for one indicator over the window.
#[derive(Debug)]
struct Growth {
    name: &'static str,
    slope_per_s: f64,
    projected: f64,
    first_fifth: f64,
    last_fifth: f64,
    allowance: f64,
}

impl Growth {
    fn of(name: &'static str, t: &[f64], y: &[f64], allowance: f64) -> Growth {
        let s = slope(t, y);
        let span = t.last().copied().unwrap_or(0.0) - t.first().copied().unwrap_or(0.0);
        let k = (y.len() / 5).max(1);
        Growth {
            name,
            slope_per_s: s,
            projected: s * span,
            first_fifth: median(&y[..k.min(y.len())]),
            last_fifth: median(&y[y.len().saturating_sub(k)..]),
            allowance,
        }
    }
    fn grows(&self) -> bool {
        self.projected > self.allowance && self.last_fifth - self.first_fifth > self.allowance
    }
}

fn worker(args: &Args, mode: Mode, secs: u64) -> WorkerConfig {
    WorkerConfig {
        index: 0,
        target: SocketAddrV4::new(shardnet_apps::SERVER.ip, ECHO_PORT),
        // The soak's echo listens on one port (`SoakNet`).
        target_ports: 1,
        mode,
        conns: args.conns,
        conn: ConnConfig {
            size: args.size,
            depth: 1,
            per_conn: (mode == Mode::Crr).then_some(1),
            exchange: Exchange::Echo,
        },
        quota: None,
        rate: None,
        server_close: false,
        linger0: false,
        fastopen: false,
        local_ports: None,
        tw_reuse: false,
        nodelay: true,
        quickack: false,
        busy_poll: false,
        poll_window: Duration::ZERO,
        // Under loss a request may wait for retransmissions (RTO 200 ms+, backoff): a timeout
        // counts an error but is not a leak.
        timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(secs),
        drain: Duration::from_secs(5),
    }
}

fn draw(path: &PathBuf, samples: &[Sample], warmup_end: f64) -> Result<(), String> {
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no font for the plot labels: apt-get install fonts-dejavu-core")?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "the font file is not a usable TrueType font")?;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (top, bottom) = root.split_vertically(400);
    let t_max = samples.last().map_or(1.0, |s| s.t).max(1.0);
    let mib: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.t, s.rss_kib as f64 / 1024.0))
        .collect();
    let y_max = mib.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "shardnet soak: resident memory (VmRSS) of echo + loadgen",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MiB")
        .draw()
        .map_err(|x| e(&x))?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (warmup_end, y_max)],
            RGBColor(235, 235, 235).filled(),
        )))
        .map_err(|x| e(&x))?
        .label("warm-up")
        .legend(|(x, y)| {
            Rectangle::new(
                [(x, y - 5), (x + 20, y + 5)],
                RGBColor(215, 215, 215).filled(),
            )
        });
    chart
        .draw_series(LineSeries::new(mib, &BLUE))
        .map_err(|x| e(&x))?
        .label("VmRSS")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    let c_max = samples
        .iter()
        .map(|s| {
            s.server_open
                .max(s.client_time_wait)
                .max(s.server_time_wait) as f64
        })
        .fold(10.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("TCP sockets", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..c_max)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(|x| e(&x))?;
    type Curve = (&'static str, RGBColor, fn(&Sample) -> u64);
    let series: [Curve; 3] = [
        ("server open (not LISTEN/TIME-WAIT)", RED, |s| s.server_open),
        ("server TIME-WAIT", GREEN, |s| s.server_time_wait),
        ("client TIME-WAIT", MAGENTA, |s| s.client_time_wait),
    ];
    for (name, color, f) in series {
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (s.t, f(s) as f64)),
                &color,
            ))
            .map_err(|x| e(&x))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let echo = EchoAppConfig {
        ports: EchoPorts::consecutive(ECHO_PORT, 1),
        backlog: 1024,
        reuseport: false,
        close_after: None,
        linger0: false,
        nodelay: true,
        quickack: false,
        fast_open: None,
        defer_accept_secs: None,
    };
    let mut net = SoakNet::start(
        args.shards,
        args.shards,
        args.loss,
        args.seed,
        echo,
        // The soak measures memory and leaks, not latency: sleep at once.
        Idle::Sleep {
            poll: Duration::ZERO,
        },
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let (mut ok, mut mismatched, mut connects) = (0u64, 0u64, 0u64);
    let mut errors = [0u64; 7];
    let mut phase = 0usize;
    // Phases after which some connection had not ended within SETTLE.
    let mut unsettled = 0usize;
    while start.elapsed() < Duration::from_secs(args.duration) && !stop.load(Ordering::Relaxed) {
        let left = args.duration.saturating_sub(start.elapsed().as_secs());
        let secs = args.phase.min(left).max(1);
        let (mode, name) = if phase % 2 == 0 {
            (Mode::Rr, "rr")
        } else {
            (Mode::Crr, "crr")
        };
        let w = worker(args, mode, secs);
        let run = net.run(&w, &stop, &mut |c, server, (lost, _)| {
            let open: u64 = ALL_STATES
                .iter()
                .filter(|s| !matches!(s, State::Listen | State::TimeWait))
                .map(|s| server.sampled(*s))
                .sum();
            let counters = server.counters();
            samples.push(Sample {
                t: start.elapsed().as_secs_f64(),
                phase,
                mode: name,
                rss_kib: rss_kib(),
                server_open: open,
                server_time_wait: server.sampled(State::TimeWait),
                client_sockets: c.sockets,
                client_time_wait: c.time_wait,
                echo_accepted: counters.accepted.load(Ordering::Relaxed),
                echo_errors: counters.errors.load(Ordering::Relaxed),
                wire_lost: lost,
            });
        })?;
        if !run.settled {
            unsettled += 1;
        }
        let total = run.series.total();
        ok += total.ok;
        connects += total.connects;
        mismatched += total.mismatched_requests + total.errors[ErrorKind::Mismatched as usize];
        for (a, b) in errors.iter_mut().zip(total.errors) {
            *a += b;
        }
        phase += 1;
    }
    let load_secs = start.elapsed().as_secs_f64();
    // Every connection must have ended: each load waited for its connections to end
    // (`SETTLE`), so the server has none open (its gauges are published every 100 ms).
    let drain_start = Instant::now();
    let open_now = |net: &SoakNet| -> u64 {
        ALL_STATES
            .iter()
            .filter(|s| !matches!(s, State::Listen | State::TimeWait))
            .map(|s| net.server().sampled(*s))
            .sum()
    };
    while open_now(&net) > 0 && drain_start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let left_open = open_now(&net);
    let (lost, dropped) = net.wire_losses();
    let echo_errors = net.server().counters().errors.load(Ordering::Relaxed);
    let server = net.stop()?;

    // The growth rule over the window after warm-up.
    let skip = ((samples.len() as f64 * args.warmup).ceil() as usize).max(10);
    let window = samples.get(skip..).unwrap_or(&[]);
    let warmup_end = samples.get(skip).map_or(0.0, |s| s.t);
    let t: Vec<f64> = window.iter().map(|s| s.t).collect();
    let rss: Vec<f64> = window.iter().map(|s| s.rss_kib as f64).collect();
    let open: Vec<f64> = window.iter().map(|s| s.server_open as f64).collect();
    let growths = [
        Growth::of("rss_kib", &t, &rss, args.max_growth * median(&rss)),
        Growth::of("server_open", &t, &open, args.conns as f64),
    ];
    let mut failures: Vec<String> = Vec::new();
    if window.len() < 10 {
        failures.push(format!(
            "only {} samples after warm-up: run longer",
            window.len()
        ));
    }
    for g in &growths {
        if g.grows() {
            failures.push(format!("{} grows: {g:?}", g.name));
        }
    }
    if mismatched > 0 {
        failures.push(format!("{mismatched} mismatched responses"));
    }
    if left_open > 0 {
        failures.push(format!(
            "{left_open} server connections still open at the end"
        ));
    }
    if ok == 0 {
        failures.push("no response at all".into());
    }
    if unsettled > 0 {
        failures.push(format!(
            "after {unsettled} of {phase} loads some connection had not ended {} s later",
            SETTLE.as_secs()
        ));
    }

    let mut csv = std::fs::File::create(&args.csv).map_err(|e| format!("{:?}: {e}", args.csv))?;
    let mut text = String::from(
        "t_s,phase,mode,rss_kib,server_open,server_time_wait,client_sockets,client_time_wait,echo_accepted,echo_errors,wire_lost\n",
    );
    for s in &samples {
        text.push_str(&format!(
            "{:.2},{},{},{},{},{},{},{},{},{},{}\n",
            s.t,
            s.phase,
            s.mode,
            s.rss_kib,
            s.server_open,
            s.server_time_wait,
            s.client_sockets,
            s.client_time_wait,
            s.echo_accepted,
            s.echo_errors,
            s.wire_lost
        ));
    }
    csv.write_all(text.as_bytes())
        .map_err(|e| format!("{:?}: {e}", args.csv))?;
    if let Some(png) = &args.png {
        draw(png, &samples, warmup_end)?;
    }
    let rss_mib = |v: Option<&Sample>| v.map_or(0.0, |s| s.rss_kib as f64 / 1024.0);
    let max_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    let err_json: Vec<String> = ErrorKind::ALL
        .iter()
        .map(|k| format!("\"{}\": {}", k.name(), errors[*k as usize]))
        .collect();
    let growth_json: Vec<String> = growths
        .iter()
        .map(|g| {
            format!(
                "\"{}\": {{\"slope_per_s\": {:.3}, \"projected\": {:.1}, \"first_fifth_median\": {:.1}, \"last_fifth_median\": {:.1}, \"allowance\": {:.1}, \"grows\": {}}}",
                g.name, g.slope_per_s, g.projected, g.first_fifth, g.last_fifth, g.allowance, g.grows()
            )
        })
        .collect();
    let json = format!(
        "{{\n  \"duration_s\": {load_secs:.1},\n  \"phases\": {phase},\n  \"phase_s\": {},\n  \"loss\": {},\n  \"shards_per_side\": {},\n  \"conns\": {},\n  \"samples\": {},\n  \"warmup_samples\": {skip},\n  \"responses_verified\": {ok},\n  \"connections_opened\": {connects},\n  \"mismatched\": {mismatched},\n  \"errors\": {{{}}},\n  \"echo_errors\": {echo_errors},\n  \"wire_lost\": {lost},\n  \"wire_dropped\": {dropped},\n  \"rss_mib\": {{\"first\": {:.1}, \"after_warmup\": {:.1}, \"last\": {:.1}, \"max\": {max_rss:.1}}},\n  \"growth\": {{{}}},\n  \"left_open_at_end\": {left_open},\n  \"loads_not_settled\": {unsettled},\n  \"server_final_states\": {:?},\n  \"failures\": {:?},\n  \"passed\": {}\n}}\n",
        args.phase,
        args.loss,
        args.shards,
        args.conns,
        samples.len(),
        err_json.join(", "),
        rss_mib(samples.first()),
        rss_mib(window.first()),
        rss_mib(samples.last()),
        growth_json.join(", "),
        format!("{:?}", server.states),
        failures,
        failures.is_empty()
    );
    if let Some(path) = &args.json {
        std::fs::write(path, &json).map_err(|e| format!("{path:?}: {e}"))?;
    }
    println!("{json}");
    for f in &failures {
        eprintln!("soak: FAILED: {f}");
    }
    Ok(failures.is_empty())
}
