//! `--metrics ADDR`: counters in the Prometheus text exposition format (version 0.0.4), served
//! over HTTP on a loopback kernel socket by one small thread.
//!
//! A full HTTP server crate would bring a runtime for a job that is: accept, read a request line,
//! write one response, close. Scrapes are rare (seconds apart), so the thread is blocking std::net.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Whether a metric only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic.
    Counter,
    /// Up and down.
    Gauge,
}

/// One metric: a name, help text and an atomic value that the app updates.
#[derive(Debug)]
pub struct Metric {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: AtomicU64,
}

impl Metric {
    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// Adds to the value.
    pub fn add(&self, v: u64) {
        self.value.fetch_add(v, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Text appended to every exposition (metrics with labels, rendered by their owner).
pub type ExtraText = Arc<std::sync::Mutex<String>>;

/// A fixed set of metrics, shared by the app and the HTTP thread.
#[derive(Debug, Default)]
pub struct Registry {
    metrics: Vec<Arc<Metric>>,
    extra: Option<ExtraText>,
}

impl Registry {
    /// Empty.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a metric (names follow Prometheus rules: `[a-zA-Z_:][a-zA-Z0-9_:]*`).
    pub fn register(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
    ) -> Arc<Metric> {
        let m = Arc::new(Metric {
            name,
            help,
            kind,
            value: AtomicU64::new(0),
        });
        self.metrics.push(Arc::clone(&m));
        m
    }

    /// Appends the current content of `extra` (already in the text format) to every
    /// exposition: for labelled metrics that the owner renders and refreshes itself.
    pub fn set_extra(&mut self, extra: ExtraText) {
        self.extra = Some(extra);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for m in &self.metrics {
            let kind = match m.kind {
                MetricType::Counter => "counter",
                MetricType::Gauge => "gauge",
            };
            let _ = writeln!(s, "# HELP {} {}", m.name, m.help);
            let _ = writeln!(s, "# TYPE {} {kind}", m.name);
            let _ = writeln!(s, "{} {}", m.name, m.get());
        }
        if let Some(extra) = &self.extra {
            match extra.lock() {
                Ok(text) => s.push_str(&text),
                Err(poisoned) => s.push_str(&poisoned.into_inner()),
            }
        }
        s
    }
}

/// The running HTTP responder; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `registry` on `addr`, which must be a loopback address (port 0 picks a free one).
    pub fn spawn(addr: SocketAddr, registry: Arc<Registry>) -> Result<MetricsServer, String> {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--metrics {addr}: only loopback addresses are served"
            ));
        }
        let listener = TcpListener::bind(addr).map_err(|e| format!("--metrics {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("--metrics {addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("--metrics {addr}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            // A broken scrape only affects that scrape.
                            let _ = respond(stream, &registry);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .map_err(|e| format!("metrics thread: {e}"))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ") {
        ("200 OK", registry.render())
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The load generator's metrics.
#[derive(Debug)]
pub struct LoadgenMetrics {
    /// The registry to serve.
    pub registry: Arc<Registry>,
    requests: Arc<Metric>,
    verified: Arc<Metric>,
    mismatched: Arc<Metric>,
    errors: Arc<Metric>,
    connections: Arc<Metric>,
    bytes_tx: Arc<Metric>,
    bytes_rx: Arc<Metric>,
    /// TIME_WAIT entries towards the target.
    pub time_wait: Arc<Metric>,
}

impl Default for LoadgenMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadgenMetrics {
    /// All zero.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// All zero, with `extra` appended to every exposition (see [`Registry::set_extra`]).
    pub fn with_extra(extra: ExtraText) -> Self {
        Self::build(Some(extra))
    }

    fn build(extra: Option<ExtraText>) -> Self {
        use MetricType::{Counter, Gauge};
        let mut r = Registry::new();
        if let Some(e) = extra {
            r.set_extra(e);
        }
        let requests = r.register("loadgen_requests_total", "Requests sent.", Counter);
        let verified = r.register(
            "loadgen_responses_verified_total",
            "Responses verified against their request.",
            Counter,
        );
        let mismatched = r.register(
            "loadgen_mismatched_total",
            "Requests answered by a mismatched response.",
            Counter,
        );
        let errors = r.register("loadgen_errors_total", "Errors of every kind.", Counter);
        let connections = r.register(
            "loadgen_connections_total",
            "Connections established.",
            Counter,
        );
        let bytes_tx = r.register("loadgen_tx_bytes_total", "Bytes written.", Counter);
        let bytes_rx = r.register("loadgen_rx_bytes_total", "Bytes read.", Counter);
        let time_wait = r.register(
            "loadgen_time_wait",
            "TIME_WAIT entries towards the target.",
            Gauge,
        );
        LoadgenMetrics {
            registry: Arc::new(r),
            requests,
            verified,
            mismatched,
            errors,
            connections,
            bytes_tx,
            bytes_rx,
            time_wait,
        }
    }

    /// Adds one interval's stats.
    pub fn add(&self, s: &crate::report::Stats) {
        self.requests.add(s.sent);
        self.verified.add(s.ok);
        self.mismatched.add(s.mismatched_requests);
        self.errors.add(s.errors_total());
        self.connections.add(s.connects);
        self.bytes_tx.add(s.bytes_tx);
        self.bytes_rx.add(s.bytes_rx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_text_format_on_loopback_only() {
        let mut reg = Registry::new();
        let c = reg.register(
            "echo_accepted_total",
            "Connections accepted.",
            MetricType::Counter,
        );
        c.add(41);
        c.add(1);
        let server = MetricsServer::spawn("127.0.0.1:0".parse().unwrap(), Arc::new(reg)).unwrap();
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("# TYPE echo_accepted_total counter\necho_accepted_total 42\n"),
            "{out}"
        );
        assert!(
            MetricsServer::spawn("0.0.0.0:0".parse().unwrap(), Arc::new(Registry::new())).is_err()
        );
    }
}
