//! The side-by-side rows: every scenario on one path, shardnet and the kernel back to back,
//! alternating which goes first, for several repetitions.

use super::launch::{Apps, Path, Stack};
use super::results::{Group, Row, Run, Side};
use super::scenario::Scenario;

/// How long each load runs, and how often.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Repetitions per stack.
    pub reps: usize,
    /// Seconds per load.
    pub secs: f64,
}

/// The label of a stack on a path.
pub fn side_label(path: Path, stack: Stack) -> String {
    match (path, stack) {
        (Path::MemoryWire, Stack::Shardnet) => "shardnet, memory wire, 1 shard per side".into(),
        (Path::MemoryWire, Stack::Kernel) => "kernel, loopback, echo CPU 1, load CPU 0".into(),
        (Path::VethAfXdp, Stack::Shardnet) => "shardnet, AF_XDP on both veth ends".into(),
        (Path::VethDpdk, Stack::Shardnet) => "shardnet, DPDK net_af_xdp on both veth ends".into(),
        (_, Stack::Kernel) => "kernel on both veth ends".into(),
    }
}

fn say(msg: &str) {
    eprintln!("matrix: {msg}");
}

/// Runs `scenario` on `path` for both stacks (or only shardnet when `kernel` is given: the
/// kernel's side is taken from another group measured on the same path in the same run).
pub fn row(
    apps: &Apps,
    path: Path,
    scenario: &Scenario,
    plan: Plan,
    extra: &[&str],
    kernel: Option<Side>,
) -> Row {
    let mut shardnet = Side {
        label: side_label(path, Stack::Shardnet),
        ..Side::default()
    };
    let mut kernel_side = Side {
        label: side_label(path, Stack::Kernel),
        ..Side::default()
    };
    for rep in 0..plan.reps {
        let order = if rep % 2 == 0 {
            [Stack::Shardnet, Stack::Kernel]
        } else {
            [Stack::Kernel, Stack::Shardnet]
        };
        for stack in order {
            if stack == Stack::Kernel && kernel.is_some() {
                continue;
            }
            let r = apps.measure(path, stack, scenario, plan.secs, extra);
            say(&format!(
                "{:?} {} {} rep {}: {}",
                path,
                scenario.id,
                stack.name(),
                rep + 1,
                match &r {
                    Ok(m) => format!(
                        "{:.3} {} p99 {:.1} us errors {}",
                        m.value,
                        scenario.metric.unit(),
                        m.p99_us,
                        m.errors
                    ),
                    Err(e) => format!("failed: {e}"),
                }
            ));
            let run = match r {
                Ok(m) => Run::Measured(Box::new(m)),
                Err(e) => Run::Failed(e),
            };
            match stack {
                Stack::Shardnet => shardnet.runs.push(run),
                Stack::Kernel => kernel_side.runs.push(run),
            }
        }
    }
    let mut row = Row {
        scenario: scenario.id.into(),
        label: scenario.label.into(),
        unit: scenario.metric.unit().into(),
        shardnet,
        kernel: kernel.unwrap_or(kernel_side),
        ratio: None,
    };
    row.summarise();
    row
}

/// Every scenario of `scenarios` on `path`.
pub fn group(
    apps: &Apps,
    path: Path,
    label: &str,
    scenarios: &[Scenario],
    plan: Plan,
    notes: Vec<String>,
) -> Group {
    Group {
        path,
        label: label.into(),
        rows: scenarios
            .iter()
            .map(|s| row(apps, path, s, plan, &[], None))
            .collect(),
        notes,
    }
}

/// A group whose shardnet side could not run at all (`reason`); the kernel's rows of `kernel`
/// (the same path, the same run) are kept next to it.
pub fn not_run_group(path: Path, label: &str, kernel: &Group, reason: &str) -> Group {
    Group {
        path,
        label: label.into(),
        rows: kernel
            .rows
            .iter()
            .map(|r| {
                let mut row = Row {
                    scenario: r.scenario.clone(),
                    label: r.label.clone(),
                    unit: r.unit.clone(),
                    shardnet: Side::not_run(
                        &side_label(path, Stack::Shardnet),
                        format!("not run: {reason}"),
                    ),
                    kernel: r.kernel.clone(),
                    ratio: None,
                };
                row.summarise();
                row
            })
            .collect(),
        notes: vec![format!(
            "kernel figures: the {} rows of this run (same veth)",
            kernel.label
        )],
    }
}
