//! Load generator statistics and their reports: counters and a latency histogram per interval,
//! the per-second series, the final table, `--json`, and the HdrHistogram interval log.
//!
//! Stack-agnostic: workers (of any stack) fill a [`Stats`] per second and hand it over; a
//! [`Series`] merges them.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use serde::Serialize;
use std::io::Write;
use std::time::{Duration, SystemTime};

/// The kinds of error the load generator counts and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection was refused (ECONNREFUSED).
    Refused = 0,
    /// The connection was reset (ECONNRESET, EPIPE).
    Reset = 1,
    /// A request got no response in time, or a connect did not complete in time.
    Timeout = 2,
    /// No local address/port was free for a connect (EADDRNOTAVAIL: ephemeral ports used up).
    AddrNotAvail = 3,
    /// A response that does not match the request it answers (stale, foreign, corrupt).
    Mismatched = 4,
    /// The peer closed the connection while requests were in flight.
    Closed = 5,
    /// Any other socket error.
    Other = 6,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::AddrNotAvail,
        ErrorKind::Mismatched,
        ErrorKind::Closed,
        ErrorKind::Other,
    ];

    /// The kind's report name.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::AddrNotAvail => "eaddrnotavail",
            ErrorKind::Mismatched => "mismatched",
            ErrorKind::Closed => "closed",
            ErrorKind::Other => "other",
        }
    }

    /// The kind of an I/O error.
    pub fn of_io(e: &std::io::Error) -> ErrorKind {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => ErrorKind::Refused,
            Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ECONNABORTED) => {
                ErrorKind::Reset
            }
            Some(libc::ETIMEDOUT) => ErrorKind::Timeout,
            Some(libc::EADDRNOTAVAIL) => ErrorKind::AddrNotAvail,
            _ => ErrorKind::Other,
        }
    }
}

/// Latency histogram bounds: 1 ns to 100 s, 3 significant digits.
const HIST_MAX_NS: u64 = 100_000_000_000;

/// A new latency histogram (nanoseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3)
        .unwrap_or_else(|_| unreachable!("the bounds are valid"))
}

/// Counters and latencies of one interval (or of a whole run).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Latency of every verified response, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Requests queued for sending.
    pub sent: u64,
    /// Responses verified: the echo of their request.
    pub ok: u64,
    /// Requests retired by a mismatched response.
    pub mismatched_requests: u64,
    /// Requests in flight on a connection that failed (never answered).
    pub abandoned: u64,
    /// Connections established.
    pub connects: u64,
    /// Bytes written.
    pub bytes_tx: u64,
    /// Bytes read.
    pub bytes_rx: u64,
    /// Errors by [`ErrorKind`] (indexed by its value).
    pub errors: [u64; 7],
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// All zero.
    pub fn new() -> Self {
        Stats {
            hist: new_histogram(),
            sent: 0,
            ok: 0,
            mismatched_requests: 0,
            abandoned: 0,
            connects: 0,
            bytes_tx: 0,
            bytes_rx: 0,
            errors: [0; 7],
        }
    }

    /// Counts one error.
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    /// Records a verified response's latency.
    pub fn record_latency(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, HIST_MAX_NS));
    }

    /// All errors.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.sent += other.sent;
        self.ok += other.ok;
        self.mismatched_requests += other.mismatched_requests;
        self.abandoned += other.abandoned;
        self.connects += other.connects;
        self.bytes_tx += other.bytes_tx;
        self.bytes_rx += other.bytes_rx;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
    }

    /// Resets to zero, keeping the histogram's allocation.
    pub fn clear(&mut self) {
        self.hist.reset();
        self.sent = 0;
        self.ok = 0;
        self.mismatched_requests = 0;
        self.abandoned = 0;
        self.connects = 0;
        self.bytes_tx = 0;
        self.bytes_rx = 0;
        self.errors = [0; 7];
    }
}

/// One side (load generator or echo server) of an in-process shardnet run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ShardnetSide {
    /// Shards (threads) of this side.
    pub shards: usize,
    /// The most TIME_WAIT connections seen at a (100 ms) sample.
    pub peak_time_wait: u64,
    /// TCP sockets by state at the end of the load, before the runtime stopped (`ss -s`).
    pub states: std::collections::BTreeMap<String, u64>,
    /// The stack's non-zero counters, summed over shards, as `Group.Name` (`netstat -s`).
    pub counters: std::collections::BTreeMap<String, u64>,
    /// The TCP Fast Open counters among them.
    pub fast_open: FastOpenCounts,
}

impl ShardnetSide {
    /// A side from its counters (`Group.Name`, as [`ShardnetSide::counters`]).
    pub fn new(
        shards: usize,
        peak_time_wait: u64,
        states: std::collections::BTreeMap<String, u64>,
        counters: std::collections::BTreeMap<String, u64>,
    ) -> Self {
        ShardnetSide {
            shards,
            peak_time_wait,
            states,
            fast_open: FastOpenCounts::of(&counters),
            counters,
        }
    }
}

/// One stack's TCP Fast Open counters (Linux `TcpExt` names), summed over its shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FastOpenCounts {
    /// Active opens whose SYN data the server acknowledged (`TCPFastOpenActive`).
    pub active: u64,
    /// Active opens whose SYN data was not acknowledged (`TCPFastOpenActiveFail`).
    pub active_fail: u64,
    /// Connections created from a SYN with a valid cookie, its data delivered at once
    /// (`TCPFastOpenPassive`).
    pub passive: u64,
    /// SYNs with an invalid cookie (`TCPFastOpenPassiveFail`).
    pub passive_fail: u64,
    /// SYNs asking for a cookie (`TCPFastOpenCookieReqd`).
    pub cookie_requests: u64,
}

impl FastOpenCounts {
    /// The Fast Open counters of a `Group.Name` counter map.
    pub fn of(counters: &std::collections::BTreeMap<String, u64>) -> Self {
        let c = |n: &str| counters.get(n).copied().unwrap_or(0);
        FastOpenCounts {
            active: c("TcpExt.TCPFastOpenActive"),
            active_fail: c("TcpExt.TCPFastOpenActiveFail"),
            passive: c("TcpExt.TCPFastOpenPassive"),
            passive_fail: c("TcpExt.TCPFastOpenPassiveFail"),
            cookie_requests: c("TcpExt.TCPFastOpenCookieReqd"),
        }
    }

    /// Whether any is non-zero.
    pub fn any(&self) -> bool {
        *self != FastOpenCounts::default()
    }

    /// One line of text.
    pub fn render(&self) -> String {
        format!(
            "active {} (failed {}), passive {} (failed {}), cookie requests {}",
            self.active, self.active_fail, self.passive, self.passive_fail, self.cookie_requests
        )
    }
}

/// What a shardnet run adds to the report: with the memory driver both stacks (the echo server
/// runs in the same process); with a real interface (af-xdp, dpdk) the load generator's only.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ShardnetSummary {
    /// The driver.
    pub driver: String,
    /// The runtime's idle policy.
    pub idle: String,
    /// The load generator's stack.
    pub client: ShardnetSide,
    /// The in-process echo server's stack (memory driver only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ShardnetSide>,
    /// Connections the in-process echo accepted (memory driver only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_accepted: Option<u64>,
    /// Connections of the in-process echo that ended in an error (memory driver only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_errors: Option<u64>,
    /// Bytes of upload (`--stream-dir up`) frames the in-process echo consumed, each checked
    /// against its checksum (memory driver only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_sunk: Option<u64>,
    /// Frames the memory wire lost, or dropped for want of a buffer or ring slot (memory
    /// driver only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire_drops: Option<u64>,
    /// The interface (af-xdp: `IF`, attach and bind mode; dpdk: the device's driver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Frames written to the `--pcap` capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap_frames: Option<u64>,
}

impl ShardnetSummary {
    /// The lines the table adds for shardnet.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let side = |x: &ShardnetSide| {
            let tw = x.states.get("TIME-WAIT").copied().unwrap_or(0);
            let c = |n: &str| x.counters.get(n).copied().unwrap_or(0);
            format!(
                "TIME_WAIT peak {} end {}; opens {} active {} passive; segs {} in {} out; resets out {}",
                x.peak_time_wait,
                tw,
                c("Tcp.ActiveOpens"),
                c("Tcp.PassiveOpens"),
                c("Tcp.InSegs"),
                c("Tcp.OutSegs"),
                c("Tcp.OutRsts"),
            )
        };
        let shards = match &self.server {
            Some(server) => format!(
                "{} client + {} server shards",
                self.client.shards, server.shards
            ),
            None => format!("{} shards", self.client.shards),
        };
        let _ = writeln!(
            s,
            "  shardnet          driver {}{}, idle {}, {}{}{}",
            self.driver,
            self.interface
                .as_ref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default(),
            self.idle,
            shards,
            self.wire_drops
                .map(|n| format!(", wire drops {n}"))
                .unwrap_or_default(),
            self.pcap_frames
                .map(|n| format!(", {n} frames captured"))
                .unwrap_or_default()
        );
        let _ = writeln!(s, "  client stack      {}", side(&self.client));
        if let Some(server) = &self.server {
            let _ = writeln!(
                s,
                "  server stack      {}; echo accepted {}, errors {}{}",
                side(server),
                self.echo_accepted.unwrap_or(0),
                self.echo_errors.unwrap_or(0),
                self.echo_sunk
                    .filter(|&n| n > 0)
                    .map(|n| format!(", sunk {n} B"))
                    .unwrap_or_default()
            );
        }
        if self.client.fast_open.any() {
            let _ = writeln!(s, "  client Fast Open  {}", self.client.fast_open.render());
        }
        if let Some(server) = self.server.as_ref().filter(|x| x.fast_open.any()) {
            let _ = writeln!(s, "  server Fast Open  {}", server.fast_open.render());
        }
        s
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// Of a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        Percentiles {
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.max() as f64 / 1000.0,
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// One point of a latency distribution: the fraction of responses at or below `us`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CdfPoint {
    /// Quantile (0..=1).
    pub quantile: f64,
    /// Latency at that quantile, in microseconds.
    pub us: f64,
}

/// The quantiles [`latency_cdf`] reports: every percent, then the tail in finer steps.
fn cdf_quantiles() -> impl Iterator<Item = f64> {
    (0..100)
        .map(|p| f64::from(p) / 100.0)
        .chain([0.995, 0.999, 0.9995, 0.9999, 1.0])
}

/// The latency distribution of a nanosecond histogram as (quantile, microseconds) points, for
/// plotting a CDF (empty if nothing was recorded).
pub fn latency_cdf(h: &Histogram<u64>) -> Vec<CdfPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    cdf_quantiles()
        .map(|q| CdfPoint {
            quantile: q,
            us: h.value_at_quantile(q) as f64 / 1000.0,
        })
        .collect()
}

/// One second of the run.
#[derive(Clone, Debug, Serialize)]
pub struct SecondReport {
    /// Seconds since the start (this interval is `[second, second + 1)`).
    pub second: u64,
    /// Verified responses.
    pub responses: u64,
    /// Connections established.
    pub connects: u64,
    /// Bytes written and read, in bits.
    pub tx_bits: u64,
    /// Bytes read, in bits.
    pub rx_bits: u64,
    /// Latency of this second's responses.
    pub latency: Percentiles,
    /// Errors of all kinds.
    pub errors: u64,
    /// EADDRNOTAVAIL errors (ephemeral port allocation failures).
    pub eaddrnotavail: u64,
    /// TIME_WAIT entries towards the target, sampled at the end of the second (kernel only).
    pub time_wait: Option<u64>,
}

/// The merged per-second series of a run.
#[derive(Debug, Default)]
pub struct Series {
    seconds: Vec<(Stats, Option<u64>)>,
}

impl Series {
    /// Empty.
    pub fn new() -> Self {
        Series::default()
    }

    /// Adds a worker's stats of second `second`.
    pub fn add(&mut self, second: u64, stats: &Stats) {
        let i = second as usize;
        while self.seconds.len() <= i {
            self.seconds.push((Stats::new(), None));
        }
        self.seconds[i].0.merge(stats);
    }

    /// Sets the TIME_WAIT sample of second `second`.
    pub fn set_time_wait(&mut self, second: u64, count: u64) {
        let i = second as usize;
        while self.seconds.len() <= i {
            self.seconds.push((Stats::new(), None));
        }
        self.seconds[i].1 = Some(count);
    }

    /// The report of second `second` (empty if nothing was added).
    pub fn second(&self, second: u64) -> SecondReport {
        let empty = (Stats::new(), None);
        let (s, tw) = self.seconds.get(second as usize).unwrap_or(&empty);
        SecondReport {
            second,
            responses: s.ok,
            connects: s.connects,
            tx_bits: s.bytes_tx * 8,
            rx_bits: s.bytes_rx * 8,
            latency: Percentiles::of(&s.hist),
            errors: s.errors_total(),
            eaddrnotavail: s.errors[ErrorKind::AddrNotAvail as usize],
            time_wait: *tw,
        }
    }

    /// Seconds recorded.
    pub fn len(&self) -> usize {
        self.seconds.len()
    }

    /// Whether no second was recorded.
    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty()
    }

    /// Every second's report.
    pub fn reports(&self) -> Vec<SecondReport> {
        (0..self.seconds.len() as u64)
            .map(|s| self.second(s))
            .collect()
    }

    /// Everything merged.
    pub fn total(&self) -> Stats {
        let mut t = Stats::new();
        for (s, _) in &self.seconds {
            t.merge(s);
        }
        t
    }

    /// Writes the per-second histograms as an HdrHistogram interval log (V2 deflate encoding,
    /// values in nanoseconds, as `HistogramLogProcessor` and HdrHistogram's plotters read it).
    pub fn write_interval_log<W: Write>(
        &self,
        start: SystemTime,
        out: &mut W,
    ) -> Result<(), String> {
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("shardnet loadgen latency, nanoseconds, one interval per second")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1e6)
            .begin_log_with(out, &mut serializer)
            .map_err(|e| format!("interval log: {e}"))?;
        let tag = Tag::new("latency");
        for (i, (s, _)) in self.seconds.iter().enumerate() {
            writer
                .write_histogram(
                    &s.hist,
                    Duration::from_secs(i as u64),
                    Duration::from_secs(1),
                    tag,
                )
                .map_err(|e| format!("interval log: {e:?}"))?;
        }
        Ok(())
    }
}

/// The load generator's final report (`--json` prints it).
#[derive(Debug, Serialize)]
pub struct Report {
    /// "kernel" or "shardnet".
    pub stack: String,
    /// "rr", "crr" or "stream".
    pub mode: String,
    /// stream: "up" (client to server, acknowledged), "down" (server to client) or "both"
    /// (through the echo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_dir: Option<String>,
    /// Target address.
    pub target: String,
    /// Connections (closed loop: concurrency).
    pub conns: usize,
    /// Worker threads.
    pub shards: usize,
    /// Payload bytes per request.
    pub size: u32,
    /// Requests in flight per connection.
    pub depth: usize,
    /// Open-loop rate (requests/s or connections/s), if any.
    pub rate: Option<f64>,
    /// Whether workers spun on epoll with a zero timeout.
    pub busy_poll: bool,
    /// Wall time of the load, seconds.
    pub elapsed_s: f64,
    /// Requests queued for sending.
    pub requests_sent: u64,
    /// Responses verified.
    pub responses_verified: u64,
    /// Requests retired by a mismatched response.
    pub mismatched_requests: u64,
    /// Requests never answered because their connection failed or the run ended.
    pub abandoned: u64,
    /// Open loop: intended sends that never got a connection before the end.
    pub unsent: u64,
    /// Verified responses per second.
    pub requests_per_s: f64,
    /// Connections established per second.
    pub connections_per_s: f64,
    /// Connections established.
    pub connections: u64,
    /// Bytes the load generator wrote (requests).
    pub bytes_tx: u64,
    /// Bytes the load generator read (responses).
    pub bytes_rx: u64,
    /// Bits written per second.
    pub tx_bits_per_s: f64,
    /// Bits read per second.
    pub rx_bits_per_s: f64,
    /// Latency over the run (open loop: from the intended send time).
    pub latency: Percentiles,
    /// The same latencies as a distribution: quantile and microseconds, every percent and the
    /// tail (for CDF plots).
    pub latency_cdf: Vec<CdfPoint>,
    /// Errors by kind.
    pub errors: std::collections::BTreeMap<&'static str, u64>,
    /// Notes (e.g. TCP Fast Open refused by the sysctl).
    pub notes: Vec<String>,
    /// TIME_WAIT churn report (`--tw-report`).
    pub time_wait: Option<crate::timewait::ChurnReport>,
    /// shardnet runs: both stacks' TIME_WAIT, TCP states and counters (absent with the kernel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shardnet: Option<ShardnetSummary>,
    /// One entry per second.
    pub per_second: Vec<SecondReport>,
}

impl Report {
    /// Fills the totals from `series`.
    pub fn totals(&mut self, series: &Series, elapsed: Duration) {
        let t = series.total();
        let secs = elapsed.as_secs_f64().max(1e-9);
        self.elapsed_s = elapsed.as_secs_f64();
        self.requests_sent = t.sent;
        self.responses_verified = t.ok;
        self.mismatched_requests = t.mismatched_requests;
        self.abandoned = t.abandoned;
        self.requests_per_s = t.ok as f64 / secs;
        self.connections = t.connects;
        self.connections_per_s = t.connects as f64 / secs;
        self.bytes_tx = t.bytes_tx;
        self.bytes_rx = t.bytes_rx;
        self.tx_bits_per_s = (t.bytes_tx * 8) as f64 / secs;
        self.rx_bits_per_s = (t.bytes_rx * 8) as f64 / secs;
        self.latency = Percentiles::of(&t.hist);
        self.latency_cdf = latency_cdf(&t.hist);
        self.errors = ErrorKind::ALL
            .iter()
            .map(|&k| (k.name(), t.errors[k as usize]))
            .collect();
        self.per_second = series.reports();
    }

    /// Errors of every kind.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The human-readable final table.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let l = &self.latency;
        let _ = writeln!(
            s,
            "{} {} -> {}: {} conns, {} shards, {} B, depth {}{}{}",
            self.stack,
            match &self.stream_dir {
                Some(d) => format!("{} ({d})", self.mode),
                None => self.mode.clone(),
            },
            self.target,
            self.conns,
            self.shards,
            self.size,
            self.depth,
            self.rate
                .map(|r| format!(", open loop {r}/s"))
                .unwrap_or_default(),
            if self.busy_poll { ", busy-poll" } else { "" },
        );
        let _ = writeln!(s, "  elapsed           {:>14.3} s", self.elapsed_s);
        let _ = writeln!(
            s,
            "  requests          {:>14} sent, {} verified, {} mismatched, {} abandoned, {} unsent",
            self.requests_sent,
            self.responses_verified,
            self.mismatched_requests,
            self.abandoned,
            self.unsent
        );
        let _ = writeln!(
            s,
            "  throughput        {:>14.0} requests/s",
            self.requests_per_s
        );
        let _ = writeln!(
            s,
            "  connections       {:>14.0} /s ({} established)",
            self.connections_per_s, self.connections
        );
        let _ = writeln!(
            s,
            "  bandwidth         {:>14.3} Gbit/s tx, {:.3} Gbit/s rx",
            self.tx_bits_per_s / 1e9,
            self.rx_bits_per_s / 1e9
        );
        let _ = writeln!(
            s,
            "  latency (us)      p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
            l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us
        );
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  errors            {}", errors.join(", "));
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        if let Some(sn) = &self.shardnet {
            s.push_str(&sn.render());
        }
        if let Some(tw) = &self.time_wait {
            s.push_str(&tw.render());
        }
        s
    }
}

/// One live progress line.
pub fn progress_line(r: &SecondReport) -> String {
    format!(
        "[{:>4}s] {:>9} req/s {:>7} conn/s {:>8.3} Gbit/s tx+rx  p50 {:>8.1} us  p99 {:>8.1} us  errors {:>5}{}",
        r.second + 1,
        r.responses,
        r.connects,
        (r.tx_bits + r.rx_bits) as f64 / 1e9,
        r.latency.p50_us,
        r.latency.p99_us,
        r.errors,
        r.time_wait
            .map(|t| format!("  TIME_WAIT {t}"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_merges_and_reports() {
        let mut a = Stats::new();
        a.ok = 3;
        a.sent = 3;
        a.record_latency(10_000);
        a.record_latency(20_000);
        a.record_latency(30_000);
        a.error(ErrorKind::AddrNotAvail);
        let mut series = Series::new();
        series.add(0, &a);
        series.add(2, &a);
        series.set_time_wait(2, 17);
        assert_eq!(series.len(), 3);
        let r = series.second(2);
        assert_eq!(
            (r.responses, r.eaddrnotavail, r.time_wait),
            (3, 1, Some(17))
        );
        assert!((r.latency.p50_us - 20.0).abs() < 0.1);
        assert_eq!(series.second(1).responses, 0);
        let total = series.total();
        assert_eq!(
            (total.ok, total.hist.len(), total.errors_total()),
            (6, 6, 2)
        );
        let mut log = Vec::new();
        series
            .write_interval_log(SystemTime::UNIX_EPOCH, &mut log)
            .unwrap();
        let text = String::from_utf8(log).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("Tag=latency,"))
                .count(),
            3
        );
        let cdf = latency_cdf(&total.hist);
        assert_eq!(cdf.len(), 105);
        assert!(cdf.windows(2).all(|w| w[0].us <= w[1].us));
        assert!((cdf[0].us - 10.0).abs() < 0.1 && (cdf[104].us - 30.0).abs() < 0.1);
        assert!(latency_cdf(&Stats::new().hist).is_empty());
        a.clear();
        assert_eq!((a.ok, a.hist.len(), a.errors_total()), (0, 0, 0));
    }
}
