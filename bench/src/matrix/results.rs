//! The result file of a matrix run (`bench/results/<date>-<host>.json`): the machine, the
//! settings, every repetition of every row, and the summaries the table and plots show.

use super::launch::Path;
use super::machine::Machine;
use super::measurement::Measurement;
use super::summary::{Spread, ratio};
use serde::Serialize;

/// One repetition of one stack: its measurement, or why there is none.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Run {
    /// The load generator's report.
    Measured(Box<Measurement>),
    /// The run failed; the reason.
    Failed(String),
}

/// Every repetition of one stack in one row, and their summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Side {
    /// What ran (stack and driver).
    pub label: String,
    /// The repetitions, in the order they ran.
    pub runs: Vec<Run>,
    /// The scenario's figure over the measured repetitions.
    pub value: Option<Spread>,
    /// p99 latency (microseconds) over the measured repetitions.
    pub p99_us: Option<Spread>,
    /// shardnet: frames/s through the load generator's stack over the repetitions.
    pub frames_per_s: Option<Spread>,
    /// Why this side has no figure, if it has none (not run, or every repetition failed).
    pub not_run: Option<String>,
}

impl Side {
    /// A side that did not run, and why.
    pub fn not_run(label: &str, reason: String) -> Side {
        Side {
            label: label.into(),
            not_run: Some(reason),
            ..Side::default()
        }
    }

    /// The measured repetitions.
    pub fn measured(&self) -> impl Iterator<Item = &Measurement> {
        self.runs.iter().filter_map(|r| match r {
            Run::Measured(m) => Some(m.as_ref()),
            Run::Failed(_) => None,
        })
    }

    /// Fills the summaries from the runs.
    pub fn summarise(&mut self) {
        let values: Vec<f64> = self.measured().map(|m| m.value).collect();
        let p99: Vec<f64> = self.measured().map(|m| m.p99_us).collect();
        let frames: Vec<f64> = self.measured().filter_map(|m| m.frames_per_s).collect();
        self.value = Spread::of(&values);
        self.p99_us = Spread::of(&p99);
        self.frames_per_s = Spread::of(&frames);
        if self.value.is_none() && self.not_run.is_none() {
            let reasons: Vec<&str> = self
                .runs
                .iter()
                .filter_map(|r| match r {
                    Run::Failed(e) => Some(e.as_str()),
                    Run::Measured(_) => None,
                })
                .collect();
            self.not_run = Some(match reasons.first() {
                Some(first) => format!("every repetition failed; first: {first}"),
                None => "no repetition ran".into(),
            });
        }
    }

    /// The repetition whose figure is the median (for the CDF plots): the measured one
    /// closest to the median.
    pub fn median_run(&self) -> Option<&Measurement> {
        let median = self.value?.median;
        self.measured().min_by(|a, b| {
            (a.value - median)
                .abs()
                .total_cmp(&(b.value - median).abs())
        })
    }
}

/// One scenario on one path: shardnet next to the kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Scenario id.
    pub scenario: String,
    /// Scenario label.
    pub label: String,
    /// The unit of the figure.
    pub unit: String,
    /// shardnet.
    pub shardnet: Side,
    /// The kernel.
    pub kernel: Side,
    /// Median shardnet / median kernel.
    pub ratio: Option<f64>,
}

impl Row {
    /// Fills the summaries and the ratio.
    pub fn summarise(&mut self) {
        self.shardnet.summarise();
        self.kernel.summarise();
        self.ratio = match (self.shardnet.value, self.kernel.value) {
            (Some(s), Some(k)) => ratio(s.median, k.median),
            _ => None,
        };
    }
}

/// The rows of one path.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// The path.
    pub path: Path,
    /// What the path is, for the table.
    pub label: String,
    /// Its rows.
    pub rows: Vec<Row>,
    /// Notes (settings, what was shared with another group).
    pub notes: Vec<String>,
}

/// One ceiling: a raw packet path with no TCP, in packets/s.
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    /// What it is.
    pub label: String,
    /// Echoes (or forwarded packets) per second: median and spread over its rounds.
    pub packets_per_s: Option<Spread>,
    /// Why there is no figure, if there is none.
    pub not_run: Option<String>,
    /// Extra figures the tool reported (e.g. the kernel's UDP echo on the same veth).
    pub context: Vec<(String, Spread)>,
    /// shardnet's frames/s (veth rr64, load generator side) as a fraction of this ceiling.
    pub shardnet_fraction: Option<f64>,
}

/// One churn run: connections/s and TIME_WAIT per second for its whole duration.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnRun {
    /// What ran.
    pub label: String,
    /// The run, or why there is none.
    pub run: Run,
    /// The mean rate of the first five seconds, connections/s.
    pub short_run_rate: Option<f64>,
    /// The lowest 5-second average rate after the first five seconds, as a fraction of the
    /// short-run rate (>= 0.9 holds the "within 10 %").
    pub worst_window_fraction: Option<f64>,
    /// The lowest single second's rate after the first five, as a fraction of the short-run rate.
    pub worst_second_fraction: Option<f64>,
}

/// The whole result file.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// Where it was measured.
    pub machine: Machine,
    /// The settings of the run.
    pub settings: serde_json::Value,
    /// Side by side, per path.
    pub groups: Vec<Group>,
    /// Raw packet-path ceilings.
    pub ceilings: Vec<Ceiling>,
    /// The TIME_WAIT churn runs.
    pub churn: Vec<ChurnRun>,
    /// Idle connections at scale (`conn_memory`).
    pub scale: Option<super::scale::ConnMemory>,
    /// The targets, each measured against this run.
    pub targets: Vec<super::targets::Target>,
}
