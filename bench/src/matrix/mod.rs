//! The scenario matrix behind `scripts/bench.sh`: shardnet next to the Linux kernel in the
//! same run, on the same machine, next to the ceiling of the packet path.
//!
//! Every scenario runs the `loadgen` and `echo` apps for each stack back to back, alternating
//! which goes first, for several repetitions; the result file keeps every repetition and the
//! table reports medians, spreads (min-max) and the ratio shardnet/kernel. See
//! the README's Performance section for what the paths and scenarios are.

pub mod ceiling;
pub mod child;
pub mod churn;
pub mod launch;
pub mod machine;
pub mod measurement;
pub mod netns;
pub mod plot;
pub mod results;
pub mod scale;
pub mod scenario;
pub mod side_by_side;
pub mod summary;
pub mod table;
pub mod targets;

use launch::{Apps, Path};
use results::{Group, Results};
use side_by_side::Plan;
use std::path::PathBuf;

/// How both stacks wait, said under every table: the apps' default `--poll-us 50`.
const POLL_NOTE: &str = "both stacks poll for 50 us after their last event before they sleep (the apps' default --poll-us 50: shardnet's RuntimeConfig::busy_poll, the kernel apps' epoll_wait with a zero timeout; Linux's net.core.busy_poll recommends 50).";

/// Said under the side-by-side tables: the kernel's TIME_WAIT does not carry over between runs.
const TIME_WAIT_NOTE: &str = "every kernel measurement starts with the TIME_WAIT left by earlier runs on the echo ports destroyed (ss -K), as every shardnet measurement starts without any (its TIME-WAIT lives in its process): over several echo ports the kernel's TIME_WAIT from earlier repetitions would otherwise reach tcp_max_tw_buckets and slow its crr down. Nor do the kernel apps read /proc/net/tcp every second (echo --no-time-wait; the load generator counts TIME_WAIT only with --tw-report, as the churn runs do): with 100 k+ TIME_WAIT entries that read took a fifth to a quarter of the samples on the measured cores.";

/// How many echo ports the crr rows use, said under the tables that have crr rows.
fn crr_ports_note(path: Path, n: u16) -> String {
    if n <= 1 {
        let stacks = match path {
            Path::MemoryWire => {
                "the kernel (shardnet's in-process echo keeps its 8 ports, MEMORY_ECHO_PORTS)"
            }
            _ => "both stacks",
        };
        return format!(
            "crr runs on one echo port on {stacks} (--crr-echo-ports 1): a client-closed crr is then capped by the port space (one connection per client port per second under TIME-WAIT reuse, 64,512/s with ports 1024-65535), not by the stacks."
        );
    }
    let why = format!(
        "on one port a client-closed crr is capped by the port space, not the stacks: a TIME-WAIT 4-tuple is reused once its timestamps advanced a second, so one server port carries at most one connection per client port per second (64,512/s with ports 1024-65535); {n} ports lift that to {}/s",
        64_512 * u64::from(n)
    );
    match path {
        Path::MemoryWire => format!(
            "crr (server and client close) runs over {n} echo ports on both stacks: the kernel echo listens on {n} consecutive ports and the kernel load generator spreads its connects over them in turn (--target-ports {n}), as shardnet's in-process echo and load generator do in every scenario (MEMORY_ECHO_PORTS = 8); the kernel's rr and stream use one port; {why}."
        ),
        _ => format!(
            "crr (server and client close) runs over {n} echo ports on both stacks: each echo listens on {n} consecutive ports (--port x {n}) and each load generator spreads its connects over them in turn (--target-ports {n}); rr and stream use one port, the churn runs one port; {why}."
        ),
    }
}

/// The parts of the matrix, each of which can be left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// Memory wire against kernel loopback.
    Memory,
    /// veth, shardnet on AF_XDP against the kernel.
    Veth,
    /// veth, shardnet on DPDK's net_af_xdp.
    Dpdk,
    /// Raw packet-path ceilings.
    Ceiling,
    /// The 60 s TIME_WAIT churn runs.
    Churn,
    /// `conn_memory` at scale.
    Scale,
}

impl Part {
    /// Every part, in run order.
    pub const ALL: [Part; 6] = [
        Part::Memory,
        Part::Veth,
        Part::Dpdk,
        Part::Ceiling,
        Part::Churn,
        Part::Scale,
    ];

    /// Parses a part's name.
    pub fn parse(s: &str) -> Result<Part, String> {
        Ok(match s {
            "memory" => Part::Memory,
            "veth" => Part::Veth,
            "dpdk" => Part::Dpdk,
            "ceiling" => Part::Ceiling,
            "churn" => Part::Churn,
            "scale" => Part::Scale,
            _ => {
                return Err(format!(
                    "unknown part `{s}` (memory, veth, dpdk, ceiling, churn, scale)"
                ));
            }
        })
    }
}

/// The settings of a matrix run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Repetitions per stack and scenario.
    pub reps: usize,
    /// Seconds per load.
    pub secs: f64,
    /// Seconds of each churn run.
    pub churn_secs: f64,
    /// Rounds of the AF_XDP ceiling.
    pub ceiling_rounds: usize,
    /// Connections of the `conn_memory` run.
    pub conn_memory: u64,
    /// The parts to run.
    pub parts: Vec<Part>,
    /// The side-by-side scenarios to run on each path, in table order (see
    /// [`scenario::select`]; the churn, ceiling and scale parts are not scenarios).
    pub scenarios: Vec<scenario::Scenario>,
    /// Where the binaries are.
    pub bin_dir: PathBuf,
    /// Where the results go.
    pub out_dir: PathBuf,
    /// AF_XDP attach mode.
    pub xdp_mode: String,
    /// The command line, for the report.
    pub command: String,
}

fn say(msg: &str) {
    eprintln!("matrix: {msg}");
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/")))
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the matrix and writes the result file, the table and the plots; returns the path of
/// the table and what could not be measured (see [`failures`]).
pub fn run(cfg: &Config) -> Result<(PathBuf, Vec<String>), String> {
    let mut machine = machine::Machine::detect();
    let apps = Apps {
        loadgen: cfg.bin_dir.join("loadgen"),
        echo: cfg.bin_dir.join("echo"),
        // A port of its own per run, away from the apps' default 7777 that tests use.
        port: 20000 + (std::process::id() % 20000) as u16,
        xdp_mode: cfg.xdp_mode.clone(),
    };
    for b in [&apps.loadgen, &apps.echo] {
        if !b.exists() {
            return Err(format!(
                "{} is not built (cargo build --release -p shardnet-apps --features dpdk)",
                b.display()
            ));
        }
    }
    let plan = Plan {
        reps: cfg.reps,
        secs: cfg.secs,
    };
    let has = |p: Part| cfg.parts.contains(&p);
    // The closed-loop scenarios of every path; the open-loop rr64 is its own row below.
    let side_by_side_scenarios: Vec<scenario::Scenario> = cfg
        .scenarios
        .iter()
        .filter(|s| s.id != scenario::RR64_OPEN.id)
        .copied()
        .collect();
    let open_loop = cfg.scenarios.iter().any(|s| s.id == scenario::RR64_OPEN.id);
    let crr_ports = cfg
        .scenarios
        .iter()
        .find(|s| s.is_crr())
        .map_or(scenario::CRR_ECHO_PORTS, |s| s.echo_ports);
    let mut groups: Vec<Group> = Vec::new();
    if has(Part::Memory) {
        say("stack cost: memory wire vs kernel loopback");
        groups.push(side_by_side::group(
            &apps,
            Path::MemoryWire,
            "Stack cost: shardnet on the memory wire vs the kernel over loopback",
            &side_by_side_scenarios,
            plan,
            vec![
                "shardnet: loadgen with its in-process echo, one shard per side, client on CPU 0, server on CPU 1 (the runtime pins them); idle policy auto (sleep on 2 cores, after polling 50 us); the in-process wire has MTU 9000 and checksum offload, as loopback offloads checksums (loopback itself: MTU 65536 and 64 KiB GSO segments, so stream is not like for like).".into(),
                format!(
                    "kernel: echo --stack kernel on CPU 1, loadgen --stack kernel on CPU 0 (taskset), 127.0.0.1; host tcp_tw_reuse {}, ports {}.",
                    sysctl("net.ipv4.tcp_tw_reuse"),
                    sysctl("net.ipv4.ip_local_port_range")
                ),
                POLL_NOTE.into(),
                crr_ports_note(Path::MemoryWire, crr_ports),
                TIME_WAIT_NOTE.into(),
            ],
        ));
    }
    let mut veth_port_range = String::new();
    if has(Part::Veth) || has(Part::Dpdk) {
        let lock = netns::NsLock::take()?;
        let veth = netns::Veth::up(&lock, 1)?;
        veth_port_range = veth.port_range();
        let notes = vec![
            format!(
                "two namespaces joined by a veth pair (1 queue each way, offloads at their defaults); load generator on CPU 0, echo on CPU 1 (taskset); kernel tcp_tw_reuse=1 and ports {veth_port_range} in the load generator's namespace; shardnet's load generator the same (--tw-reuse --local-ports)."
            ),
            format!("AF_XDP attach mode {} (veth: copy mode).", cfg.xdp_mode),
            POLL_NOTE.into(),
            crr_ports_note(Path::VethAfXdp, crr_ports),
            TIME_WAIT_NOTE.into(),
        ];
        let mut veth_group = None;
        if has(Part::Veth) {
            say("real path: veth, AF_XDP vs kernel");
            let mut g = side_by_side::group(
                &apps,
                Path::VethAfXdp,
                "Real path: shardnet on AF_XDP at both ends of a veth pair vs the kernel on the same veth",
                &side_by_side_scenarios,
                plan,
                notes.clone(),
            );
            // p99 at the same offered load: both stacks open loop at 80 % of the kernel's
            // closed-loop rr64 rate.
            let kernel_rr64 = g
                .rows
                .iter()
                .find(|r| r.scenario == "rr64")
                .and_then(|r| r.kernel.value)
                .map(|v| v.median);
            if let Some(k) = kernel_rr64.filter(|k| *k > 0.0 && open_loop) {
                let rate = format!("{:.0}", k * 0.8);
                say(&format!(
                    "real path: rr64 open loop at {rate}/s, both stacks"
                ));
                let mut row = side_by_side::row(
                    &apps,
                    Path::VethAfXdp,
                    &scenario::RR64_OPEN,
                    plan,
                    &["--rate", &rate],
                    None,
                );
                row.label = format!(
                    "rr, 64 conns, open loop at {rate}/s (80 % of the kernel's closed-loop rate)"
                );
                g.rows.push(row);
            }
            veth_group = Some(g);
        }
        if has(Part::Dpdk) {
            say("real path: veth, DPDK net_af_xdp (probe)");
            let label = "Real path: shardnet on DPDK (net_af_xdp vdev) at both ends of the veth pair vs the kernel";
            let probe = apps.measure(
                Path::VethDpdk,
                launch::Stack::Shardnet,
                &scenario::RR1,
                2.0,
                &[],
            );
            match (probe, &veth_group) {
                (Ok(_), Some(vg)) => {
                    let mut g = Group {
                        path: Path::VethDpdk,
                        label: label.into(),
                        rows: Vec::new(),
                        notes: notes.clone(),
                    };
                    g.notes.push(format!(
                        "kernel figures: the {} rows of this run (same veth, same kernel path).",
                        short(&vg.label)
                    ));
                    for s in &side_by_side_scenarios {
                        let kernel = vg
                            .rows
                            .iter()
                            .find(|r| r.scenario == s.id)
                            .map(|r| r.kernel.clone());
                        g.rows.push(side_by_side::row(
                            &apps,
                            Path::VethDpdk,
                            s,
                            plan,
                            &[],
                            kernel,
                        ));
                    }
                    groups.extend(veth_group.take());
                    groups.push(g);
                }
                (Ok(_), None) => {
                    groups.push(side_by_side::group(
                        &apps,
                        Path::VethDpdk,
                        label,
                        &side_by_side_scenarios,
                        plan,
                        notes.clone(),
                    ));
                }
                (Err(e), Some(vg)) => {
                    say(&format!("DPDK not run: {e}"));
                    let g = side_by_side::not_run_group(Path::VethDpdk, label, vg, &e);
                    groups.extend(veth_group.take());
                    groups.push(g);
                }
                (Err(e), None) => say(&format!(
                    "DPDK not run (and no veth kernel rows to show): {e}"
                )),
            }
        }
        groups.extend(veth_group.take());
        drop(veth);
        drop(lock);
    }
    let mut ceilings = Vec::new();
    if has(Part::Ceiling) {
        let lock = netns::NsLock::take()?;
        say("ceilings: xdp_forward");
        let mut c = ceiling::xdp_forward(
            &cfg.bin_dir.join("xdp_forward"),
            &cfg.xdp_mode,
            cfg.ceiling_rounds,
            if cfg.reps <= 1 { 0.5 } else { 1.0 },
        );
        c.shardnet_fraction = fraction(&groups, Path::VethAfXdp, &c);
        ceilings.push(c);
        // dpdk_forward takes the namespace lock itself (it also runs on its own).
        drop(lock);
        say("ceilings: dpdk_forward");
        let mut c = ceiling::dpdk_forward(
            &cfg.bin_dir.join("dpdk_forward"),
            cfg.ceiling_rounds,
            if cfg.reps <= 1 { 0.5 } else { 1.0 },
        );
        c.shardnet_fraction = fraction(&groups, Path::VethDpdk, &c);
        ceilings.push(c);
    }
    let mut churn_runs = Vec::new();
    if has(Part::Churn) {
        for tw_reuse in [0, 1] {
            let lock = netns::NsLock::take()?;
            churn_runs.push(churn::kernel(&apps, &lock, tw_reuse, cfg.churn_secs));
        }
        let lock = netns::NsLock::take()?;
        churn_runs.push(churn::shardnet(
            &apps,
            &lock,
            Path::VethAfXdp,
            cfg.churn_secs,
        ));
        drop(lock);
        let lock = netns::NsLock::take()?;
        churn_runs.push(churn::shardnet(
            &apps,
            &lock,
            Path::MemoryWire,
            cfg.churn_secs,
        ));
        drop(lock);
    }
    let scale = (has(Part::Scale) && cfg.conn_memory > 0).then(|| {
        say(&format!(
            "scale: conn_memory --connections {}",
            cfg.conn_memory
        ));
        scale::conn_memory(&cfg.bin_dir.join("conn_memory"), cfg.conn_memory)
    });
    machine.load_average.1 = machine::load_average();
    let targets = targets::evaluate(&groups, &ceilings, &churn_runs, scale.as_ref());
    let results = Results {
        settings: serde_json::json!({
            "reps": cfg.reps,
            "secs_per_load": cfg.secs,
            "churn_secs": cfg.churn_secs,
            "ceiling_rounds": cfg.ceiling_rounds,
            "xdp_mode": cfg.xdp_mode,
            "echo_port": apps.port,
            "crr_echo_ports": crr_ports,
            "scenarios": cfg.scenarios.iter().map(|s| s.id).collect::<Vec<_>>(),
            "host_tcp_tw_reuse": sysctl("net.ipv4.tcp_tw_reuse"),
            "host_ip_local_port_range": sysctl("net.ipv4.ip_local_port_range"),
            "veth_ip_local_port_range": veth_port_range,
            "command": cfg.command,
        }),
        machine,
        groups,
        ceilings,
        churn: churn_runs,
        scale,
        targets,
    };
    let md = write(cfg, &results)?;
    Ok((md, failures(&results)))
}

/// What could not be measured, except the DPDK parts (whose absence on a machine without
/// them is expected and recorded as "not run"): sides without a figure, AF_XDP ceilings without
/// one, failed churn runs, a failed scale run.
pub fn failures(r: &Results) -> Vec<String> {
    let mut f = Vec::new();
    for g in r.groups.iter().filter(|g| g.path != Path::VethDpdk) {
        for row in &g.rows {
            for side in [&row.shardnet, &row.kernel] {
                if let Some(why) = &side.not_run {
                    f.push(format!("{}: {}: {}: {why}", g.label, row.label, side.label));
                }
            }
        }
    }
    for c in r
        .ceilings
        .iter()
        .filter(|c| c.label.starts_with("raw AF_XDP"))
    {
        if let Some(why) = &c.not_run {
            f.push(format!("{}: {why}", c.label));
        }
    }
    for c in &r.churn {
        if let results::Run::Failed(why) = &c.run {
            f.push(format!("churn {}: {why}", c.label));
        }
    }
    if let Some(why) = r.scale.as_ref().and_then(|s| s.not_run.as_ref()) {
        f.push(format!("conn_memory: {why}"));
    }
    f
}

fn short(label: &str) -> String {
    label.split(':').next().unwrap_or(label).to_string()
}

/// shardnet's rr64 frames/s on `path` as a fraction of ceiling `c`.
fn fraction(groups: &[Group], path: Path, c: &results::Ceiling) -> Option<f64> {
    let frames = groups
        .iter()
        .find(|g| g.path == path)?
        .rows
        .iter()
        .find(|r| r.scenario == "rr64")?
        .shardnet
        .frames_per_s?
        .median;
    summary::ratio(frames, c.packets_per_s?.median)
}

fn write(cfg: &Config, results: &Results) -> Result<PathBuf, String> {
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| format!("{}: {e}", cfg.out_dir.display()))?;
    let stem = format!("{}-{}", results.machine.date(), results.machine.host);
    let json_path = cfg.out_dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json).map_err(|e| format!("{}: {e}", json_path.display()))?;
    let mut plots = Vec::new();
    match plot::load_font() {
        Ok(()) => {
            type PlotFn = fn(&Results, &std::path::Path) -> Result<(), String>;
            let all: [(&str, &str, PlotFn); 3] = [
                (
                    "throughput",
                    "Throughput per scenario, shardnet vs kernel",
                    plot::throughput,
                ),
                ("latency_cdf", "Latency CDFs", plot::latency_cdf),
                ("churn", "TIME_WAIT churn", plot::churn),
            ];
            for (name, title, f) in all {
                let file = format!("{stem}-{name}.png");
                match f(results, &cfg.out_dir.join(&file)) {
                    Ok(()) if cfg.out_dir.join(&file).exists() => {
                        plots.push((title.to_string(), file))
                    }
                    Ok(()) => {}
                    Err(e) => say(&format!("{name}.png not drawn: {e}")),
                }
            }
        }
        Err(e) => say(&format!("no plots: {e}")),
    }
    let md_path = cfg.out_dir.join(format!("{stem}.md"));
    std::fs::write(&md_path, table::render(results, &cfg.command, &plots))
        .map_err(|e| format!("{}: {e}", md_path.display()))?;
    say(&format!(
        "wrote {} and {}",
        json_path.display(),
        md_path.display()
    ));
    Ok(md_path)
}
