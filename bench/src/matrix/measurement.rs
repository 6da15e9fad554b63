//! One load generator run, read from its `--json` report: the scenario's figure, latency, and
//! shardnet's frame rate.

use super::scenario::{Metric, Scenario};
use serde::Serialize;
use serde_json::Value;

/// What one run of one stack measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measurement {
    /// The scenario's figure (transactions/s, connections/s or Gbit/s).
    pub value: f64,
    /// Latency percentiles over the run, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// The latency distribution (quantile, microseconds), as the load generator reported it.
    pub cdf: Vec<(f64, f64)>,
    /// shardnet only: frames per second through the load generator's stack, the larger of
    /// received and sent (`Ethernet.InFrames`, `Ethernet.OutFrames` over the run's time).
    pub frames_per_s: Option<f64>,
    /// Errors of every kind, and requests abandoned.
    pub errors: u64,
    /// The load's wall time, seconds.
    pub elapsed_s: f64,
    /// shardnet only: the runtime's idle policy.
    pub idle: Option<String>,
    /// Per second: connections established (for the churn plots).
    pub connects_per_second: Vec<u64>,
    /// Per second: TIME_WAIT entries sampled on the load generator's side (churn runs).
    pub time_wait_per_second: Vec<u64>,
    /// `--tw-report`: the TIME_WAIT steady state (first second, level), if one was reached.
    pub time_wait_steady: Option<(u64, u64)>,
    /// `--tw-report`: the largest TIME_WAIT count.
    pub time_wait_peak: Option<u64>,
    /// `--tw-report`: EADDRNOTAVAIL (port allocation failures) over the run.
    pub eaddrnotavail: Option<u64>,
    /// `--tw-report`, shardnet: bytes of one TIME-WAIT entry, and ephemeral port exhaustions.
    pub time_wait_entry_bytes: Option<u64>,
    /// `--tw-report`, shardnet: `TCPEphemeralPortExhausted` over the run.
    pub port_exhausted: Option<u64>,
    /// `--tw-report`, shardnet: `TWRecycled` (TIME-WAIT tuples reused) over the run.
    pub tw_recycled: Option<u64>,
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

fn u(v: &Value, path: &[&str]) -> Option<u64> {
    f(v, path).map(|x| x as u64)
}

impl Measurement {
    /// Reads the load generator's `--json` report of `scenario`.
    pub fn from_report(scenario: &Scenario, json: &str) -> Result<Measurement, String> {
        let v: Value = serde_json::from_str(json.trim())
            .map_err(|e| format!("the load generator's JSON: {e}"))?;
        let value = match scenario.metric {
            Metric::TransactionsPerS => f(&v, &["requests_per_s"]),
            Metric::ConnectionsPerS => f(&v, &["connections_per_s"]),
            Metric::Gbps => f(&v, &["tx_bits_per_s"]).map(|b| b / 1e9),
        }
        .ok_or("the report has no figure for the scenario")?;
        let elapsed_s = f(&v, &["elapsed_s"]).unwrap_or(0.0);
        let errors = v
            .get("errors")
            .and_then(Value::as_object)
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>())
            + u(&v, &["abandoned"]).unwrap_or(0);
        let cdf = v
            .get("latency_cdf")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((f(p, &["quantile"])?, f(p, &["us"])?)))
                    .collect()
            })
            .unwrap_or_default();
        let counter = |name: &str| {
            v.get("shardnet")
                .and_then(|s| s.get("client"))
                .and_then(|c| c.get("counters"))
                .and_then(|c| c.get(name))
                .and_then(Value::as_u64)
        };
        let frames_per_s = match (counter("Ethernet.InFrames"), counter("Ethernet.OutFrames")) {
            (Some(i), Some(o)) if elapsed_s > 0.0 => Some(i.max(o) as f64 / elapsed_s),
            _ => None,
        };
        let per_second = v
            .get("per_second")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tw = v.get("time_wait").filter(|t| !t.is_null());
        let tw_samples = tw
            .and_then(|t| t.get("samples"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(Measurement {
            value,
            p50_us: f(&v, &["latency", "p50_us"]).unwrap_or(0.0),
            p99_us: f(&v, &["latency", "p99_us"]).unwrap_or(0.0),
            cdf,
            frames_per_s,
            errors,
            elapsed_s,
            idle: v
                .get("shardnet")
                .and_then(|s| s.get("idle"))
                .and_then(Value::as_str)
                .map(String::from),
            connects_per_second: per_second
                .iter()
                .map(|s| u(s, &["connects"]).unwrap_or(0))
                .collect(),
            time_wait_per_second: tw_samples
                .iter()
                .map(|s| u(s, &["time_wait"]).unwrap_or(0))
                .collect(),
            time_wait_steady: tw
                .and_then(|t| t.get("steady_state"))
                .and_then(Value::as_array)
                .and_then(|a| Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?))),
            time_wait_peak: tw.and_then(|t| u(t, &["peak_time_wait"])),
            eaddrnotavail: tw.and_then(|t| u(t, &["eaddrnotavail_total"])),
            time_wait_entry_bytes: tw.and_then(|t| u(t, &["shardnet", "entry_bytes"])),
            port_exhausted: tw.and_then(|t| u(t, &["shardnet", "port_exhausted_total"])),
            tw_recycled: tw.and_then(|t| u(t, &["shardnet", "tw_recycled_total"])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::scenario::{CRR_CLIENT_CLOSE, RR64, STREAM};

    const REPORT: &str = r#"{"stack":"shardnet","requests_per_s":1000.5,"connections_per_s":20.0,
      "tx_bits_per_s":3e9,"elapsed_s":2.0,"abandoned":1,"errors":{"reset":2,"timeout":0},
      "latency":{"p50_us":10.0,"p99_us":30.0},
      "latency_cdf":[{"quantile":0.0,"us":5.0},{"quantile":1.0,"us":40.0}],
      "shardnet":{"idle":"sleep","client":{"counters":{"Ethernet.InFrames":300,"Ethernet.OutFrames":400}}},
      "per_second":[{"connects":7},{"connects":9}],
      "time_wait":{"samples":[{"time_wait":3},{"time_wait":5}],"steady_state":[1,5],"peak_time_wait":5,
        "eaddrnotavail_total":0,"shardnet":{"entry_bytes":52,"port_exhausted_total":0,"tw_recycled_total":4}}}"#;

    #[test]
    fn reads_the_figure_of_each_metric() {
        let m = Measurement::from_report(&RR64, REPORT).unwrap();
        assert_eq!((m.value, m.errors, m.p99_us), (1000.5, 3, 30.0));
        assert_eq!(m.frames_per_s, Some(200.0));
        assert_eq!(m.cdf, vec![(0.0, 5.0), (1.0, 40.0)]);
        assert_eq!(m.idle.as_deref(), Some("sleep"));
        let m = Measurement::from_report(&CRR_CLIENT_CLOSE, REPORT).unwrap();
        assert_eq!(m.value, 20.0);
        assert_eq!(m.connects_per_second, [7, 9]);
        assert_eq!(m.time_wait_per_second, [3, 5]);
        assert_eq!(m.time_wait_steady, Some((1, 5)));
        assert_eq!(
            (m.time_wait_entry_bytes, m.tw_recycled),
            (Some(52), Some(4))
        );
        assert_eq!(
            Measurement::from_report(&STREAM, REPORT).unwrap().value,
            3.0
        );
    }

    #[test]
    fn a_report_without_the_figure_is_an_error() {
        assert!(Measurement::from_report(&RR64, "{}").is_err());
        assert!(Measurement::from_report(&RR64, "not json").is_err());
    }
}
