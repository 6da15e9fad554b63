//! The targets, each checked against the figures of this run (measured, never
//! asserted: a miss is reported, not failed).

use super::launch::Path;
use super::results::{Ceiling, ChurnRun, Group, Row};
use super::scale::ConnMemory;
use serde::Serialize;

/// One target and what this run measured for it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is targeted.
    pub name: String,
    /// The target, as the issue states it.
    pub target: String,
    /// What this run measured.
    pub measured: String,
    /// Whether the measurement meets the target (`None`: not measured).
    pub hit: Option<bool>,
}

fn row<'a>(groups: &'a [Group], path: Path, scenario: &str) -> Option<&'a Row> {
    groups
        .iter()
        .find(|g| g.path == path)?
        .rows
        .iter()
        .find(|r| r.scenario == scenario)
}

fn at_least(name: &str, target: &str, value: Option<f64>, min: f64, unit: &str) -> Target {
    Target {
        name: name.into(),
        target: target.into(),
        measured: value.map_or("not measured".into(), |v| format!("{v:.2} {unit}")),
        hit: value.map(|v| v >= min),
    }
}

fn median(r: Option<&Row>) -> Option<f64> {
    r.and_then(|r| r.shardnet.value).map(|s| s.median)
}

/// Every target of the issue against this run.
pub fn evaluate(
    groups: &[Group],
    ceilings: &[Ceiling],
    churn: &[ChurnRun],
    scale: Option<&ConnMemory>,
) -> Vec<Target> {
    let mut t = Vec::new();
    let mw = |s: &str| row(groups, Path::MemoryWire, s);
    let vx = |s: &str| row(groups, Path::VethAfXdp, s);
    t.push(at_least(
        "memory wire rr, 64 conns",
        ">= 2,000,000 transactions/s",
        median(mw("rr64")),
        2e6,
        "transactions/s",
    ));
    for s in ["crr_server_close", "crr_client_close"] {
        t.push(at_least(
            &format!("memory wire {s}"),
            ">= 300,000 connections/s",
            median(mw(s)),
            3e5,
            "connections/s",
        ));
    }
    t.push(at_least(
        "memory wire stream",
        ">= 20 Gbit/s",
        median(mw("stream")),
        20.0,
        "Gbit/s",
    ));
    for s in ["rr64", "crr_server_close", "crr_client_close"] {
        t.push(at_least(
            &format!("memory wire {s} / kernel loopback"),
            ">= 20x",
            mw(s).and_then(|r| r.ratio),
            20.0,
            "x",
        ));
    }
    for s in ["rr64", "crr_server_close", "crr_client_close"] {
        t.push(at_least(
            &format!("veth AF_XDP {s} / kernel on the veth"),
            ">= 3x",
            vx(s).and_then(|r| r.ratio),
            3.0,
            "x",
        ));
    }
    let open = vx("rr64_open");
    let p99 = open.and_then(|r| Some((r.shardnet.p99_us?.median, r.kernel.p99_us?.median)));
    t.push(Target {
        name: "veth AF_XDP rr64 p99 at the same offered load (open loop)".into(),
        target: "p99 <= the kernel's".into(),
        measured: p99.map_or("not measured".into(), |(s, k)| {
            format!("shardnet {s:.1} us, kernel {k:.1} us")
        }),
        hit: p99.map(|(s, k)| s <= k),
    });
    let af = ceilings.iter().find(|c| c.label.starts_with("raw AF_XDP"));
    let mut ceiling = at_least(
        "veth AF_XDP frames/s / raw AF_XDP ceiling",
        ">= 0.70",
        af.and_then(|c| c.shardnet_fraction),
        0.7,
        "of the ceiling",
    );
    // A "ceiling" below what shardnet carried was limited by its own load, not by the path:
    // no verdict from it.
    if af
        .and_then(|c| c.shardnet_fraction)
        .is_some_and(|f| f > 1.0)
    {
        ceiling.measured.push_str(
            " (above 1: the raw run was limited by its own generator, not a ceiling; no verdict)",
        );
        ceiling.hit = None;
    }
    t.push(ceiling);
    for c in churn.iter().filter(|c| c.label.starts_with("shardnet")) {
        t.push(Target {
            name: format!("churn: {}", c.label),
            target: "every 5 s window within 10 % of the short-run rate".into(),
            measured: match (c.short_run_rate, c.worst_window_fraction) {
                (Some(r), Some(w)) => format!(
                    "short-run {r:.0}/s, worst 5 s window {:.0} % of it",
                    w * 100.0
                ),
                _ => "not measured".into(),
            },
            hit: c.worst_window_fraction.map(|w| w >= 0.9),
        });
    }
    let gib = scale.and_then(|s| s.rss_mib.map(|m| (s.connections, m / 1024.0)));
    t.push(Target {
        name: "idle connections (conn_memory, memory wire, both sides in one process)".into(),
        target: "1,000,000 in < 4 GiB RSS".into(),
        measured: gib.map_or("not measured".into(), |(n, g)| {
            format!("{n} connections: {g:.2} GiB RSS")
        }),
        hit: gib.and_then(|(n, g)| (n >= 1_000_000).then_some(g < 4.0)),
    });
    t
}
