//! End to end on 127.0.0.1: the real `echo` and `loadgen` binaries in kernel mode.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HEADER_LEN: usize = 24;

struct Echo {
    child: Child,
    port: u16,
    metrics: Option<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Echo {
    /// Starts `echo --stack kernel --port 0 --json ...`; the bound port comes from its stderr.
    fn start(extra: &[&str]) -> Echo {
        Echo::start_on(&[0], extra)
    }

    /// Starts `echo --stack kernel --port P... --json ...`; `port` is the first one it bound.
    fn start_on(ports: &[u16], extra: &[&str]) -> Echo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_echo"))
            .args(["--stack", "kernel", "--duration", "60", "--json"])
            .args(
                ports
                    .iter()
                    .flat_map(|p| ["--port".to_string(), p.to_string()]),
            )
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        let mut metrics = None;
        let mut seen = String::new();
        let want_metrics = extra.contains(&"--metrics");
        while port.is_none() || (want_metrics && metrics.is_none()) {
            let mut line = String::new();
            assert!(err.read_line(&mut line).unwrap() > 0, "echo exited: {seen}");
            seen.push_str(&line);
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                port = Some(rest.split_whitespace().next().unwrap().parse().unwrap());
            }
            if let Some(rest) = line.split("metrics on http://").nth(1) {
                metrics = Some(rest.split('/').next().unwrap().to_string());
            }
        }
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            rest
        });
        Echo {
            child,
            port: port.unwrap(),
            metrics,
            stderr,
        }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then the JSON summary.
    fn stop(self) -> Value {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let out = self.child.wait_with_output().unwrap();
        let stderr = self.stderr.join().unwrap();
        assert!(out.status.success(), "echo failed: {stderr}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("echo --json: {e}: {}", String::from_utf8_lossy(&out.stdout))
        })
    }
}

/// Runs loadgen --stack kernel --json; returns (exit code, report).
fn loadgen(target: &str, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--stack",
            "kernel",
            "--target",
            target,
            "--json",
            "--max-seconds",
            "30",
        ])
        .args(args)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "loadgen --json: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Every request sent was verified, nothing else happened.
fn assert_clean(code: i32, r: &Value, count: u64) {
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(u(r, "requests_sent"), count, "{r:#}");
    assert_eq!(u(r, "responses_verified"), count, "{r:#}");
    assert_eq!(u(r, "mismatched_requests"), 0);
    assert_eq!(u(r, "abandoned"), 0);
    for (kind, n) in r["errors"].as_object().unwrap() {
        assert_eq!(n.as_u64(), Some(0), "errors.{kind}");
    }
    let per_second = r["per_second"].as_array().unwrap();
    assert!(!per_second.is_empty());
    let sum: u64 = per_second.iter().map(|s| u(s, "responses")).sum();
    assert_eq!(sum, count, "per_second adds up");
}

#[test]
fn rr_closed_and_open_loop_and_pipelined() {
    let echo = Echo::start(&["--shards", "2", "--reuseport"]);
    let (code, r) = loadgen(
        &echo.target(),
        &["--mode", "rr", "--conns", "4", "--count", "2000"],
    );
    assert_clean(code, &r, 2000);
    assert_eq!(u(&r, "connections"), 4);
    assert!(r["latency"]["p50_us"].as_f64().unwrap() > 0.0);

    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode", "rr", "--conns", "3", "--depth", "8", "--shards", "2", "--count", "3001",
        ],
    );
    assert_clean(code, &r, 3001);

    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode", "rr", "--conns", "2", "--rate", "4000", "--count", "800",
        ],
    );
    assert_clean(code, &r, 800);
    assert_eq!(r["rate"].as_f64(), Some(4000.0));
    // A --duration run stops issuing at the deadline and drains at once.
    let (code, r) = loadgen(
        &echo.target(),
        &["--mode", "rr", "--conns", "2", "--duration", "1"],
    );
    assert_eq!(code, 0, "{r:#}");
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!((1.0..1.5).contains(&elapsed), "elapsed {elapsed}");
    assert_eq!(u(&r, "requests_sent"), u(&r, "responses_verified"));
    assert!(u(&r, "responses_verified") > 0);
    let s = echo.stop();
    assert_eq!(u(&s, "accepted"), 4 + 3 + 2 + 2);
    assert_eq!(u(&s, "closed"), 11);
    assert_eq!(u(&s, "connection_errors"), 0);
}

#[test]
fn crr_client_close_puts_time_wait_on_the_client() {
    let echo = Echo::start(&[]);
    let hist = std::env::temp_dir().join(format!("loadgen-hist-{}.hlog", std::process::id()));
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode",
            "crr",
            "--client-close",
            "--conns",
            "4",
            "--count",
            "300",
            "--tw-report",
            "--hist-log",
            hist.to_str().unwrap(),
        ],
    );
    assert_clean(code, &r, 300);
    assert_eq!(u(&r, "connections"), 300);
    let tw = &r["time_wait"];
    assert!(u(tw, "peak_time_wait") >= 300, "{tw:#}");
    assert_eq!(u(tw, "eaddrnotavail_total"), 0);
    let log = std::fs::read_to_string(&hist).unwrap();
    let _ = std::fs::remove_file(&hist);
    assert!(log.contains("#[StartTime: "), "{log}");
    assert!(log.lines().any(|l| l.starts_with("Tag=latency,")), "{log}");
    let s = echo.stop();
    assert_eq!(u(&s, "accepted"), 300);
    assert_eq!(u(&s, "peak_time_wait"), 0, "the client closed first");
}

#[test]
fn crr_server_close_puts_time_wait_on_the_server() {
    let size = 64;
    let close_after = (HEADER_LEN + size).to_string();
    let echo = Echo::start(&["--close-after", &close_after]);
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode",
            "crr",
            "--server-close",
            "--conns",
            "4",
            "--count",
            "200",
            "--tw-report",
        ],
    );
    assert_clean(code, &r, 200);
    assert_eq!(
        u(&r["time_wait"], "peak_time_wait"),
        0,
        "the server closed first"
    );
    // The echo samples TIME_WAIT once a second; the entries live 60 s.
    std::thread::sleep(Duration::from_millis(1200));
    let s = echo.stop();
    assert_eq!(u(&s, "accepted"), 200);
    assert!(u(&s, "peak_time_wait") >= 200, "{s:#}");
}

/// The first of `n` consecutive ports below the ephemeral range that were free on 127.0.0.1
/// a moment ago.
fn free_consecutive_ports(n: u16) -> u16 {
    let mut base = 10_000 + (std::process::id() % 1000) as u16 * 16;
    for _ in 0..1000 {
        let bound: Vec<_> = (0..n)
            .map(|k| TcpListener::bind(("127.0.0.1", base + k)))
            .collect();
        if bound.iter().all(Result::is_ok) {
            return base;
        }
        base = 10_000 + (base - 10_000 + n) % 16_000;
    }
    panic!("no {n} consecutive free ports");
}

#[test]
fn crr_spreads_connects_over_the_target_ports_and_counts_time_wait_on_all() {
    use shardnet_apps::timewait::{TwFilter, count_time_wait};
    use std::net::{Ipv4Addr, SocketAddrV4};
    let first = free_consecutive_ports(3);
    let ports = [first, first + 1, first + 2];
    let echo = Echo::start_on(&ports, &["--no-time-wait"]);
    assert_eq!(echo.port, first);
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode",
            "crr",
            "--client-close",
            "--conns",
            "4",
            "--count",
            "300",
            "--target-ports",
            "3",
            "--tw-report",
        ],
    );
    assert_clean(code, &r, 300);
    assert_eq!(
        r["target"].as_str(),
        Some(format!("127.0.0.1:{first}-{}", first + 2).as_str())
    );
    // Round robin: 100 connections to each port, each leaving its TIME_WAIT on the client
    // (they live 60 s); the report counts those towards every target port.
    for p in ports {
        let towards = TwFilter::Remote(vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)]);
        let n = count_time_wait(&towards).unwrap();
        assert!(n >= 100, "{n} TIME_WAIT towards port {p}");
    }
    assert!(u(&r["time_wait"], "peak_time_wait") >= 300, "{r:#}");
    // rr: one connection per port.
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode",
            "rr",
            "--conns",
            "3",
            "--count",
            "300",
            "--target-ports",
            "3",
        ],
    );
    assert_clean(code, &r, 300);
    // Without --tw-report the load generator does not read /proc/net/tcp.
    assert!(r["per_second"][0]["time_wait"].is_null(), "{r:#}");
    let s = echo.stop();
    assert_eq!(u(&s, "accepted"), 303);
    assert_eq!(s["listen"].as_array().map(Vec::len), Some(3), "{s:#}");
    // --no-time-wait: the echo did not count either, and says so.
    assert!(s["per_second"][0]["time_wait"].is_null(), "{s:#}");
    assert!(s["notes"].to_string().contains("--no-time-wait"), "{s:#}");
}

#[test]
fn crr_linger0_leaves_no_time_wait() {
    let echo = Echo::start(&[]);
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode",
            "crr",
            "--linger0",
            "--conns",
            "2",
            "--count",
            "100",
            "--tw-report",
        ],
    );
    assert_clean(code, &r, 100);
    assert_eq!(u(&r["time_wait"], "peak_time_wait"), 0);
    echo.stop();
}

#[test]
fn stream_moves_verified_bulk() {
    let echo = Echo::start(&["--quickack"]);
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode", "stream", "--conns", "2", "--size", "65536", "--depth", "4", "--count", "200",
        ],
    );
    assert_clean(code, &r, 200);
    let bytes = 200 * (65536 + HEADER_LEN as u64) * 8;
    let tx_bits = r["tx_bits_per_s"].as_f64().unwrap() * r["elapsed_s"].as_f64().unwrap();
    assert!(
        (tx_bits - bytes as f64).abs() / (bytes as f64) < 0.01,
        "{tx_bits} vs {bytes}"
    );
    let s = echo.stop();
    assert_eq!(u(&s, "bytes"), 200 * (65536 + HEADER_LEN as u64));
}

#[test]
fn metrics_are_served() {
    let echo = Echo::start(&["--metrics", "127.0.0.1:0"]);
    let addr = echo.metrics.clone().unwrap();
    let (code, r) = loadgen(
        &echo.target(),
        &["--mode", "rr", "--conns", "2", "--count", "100"],
    );
    assert_clean(code, &r, 100);
    // The status thread updates the metrics once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.contains("\necho_accepted_total 2\n"), "{body}");
    assert!(body.contains("# TYPE echo_bytes_total counter"), "{body}");
    echo.stop();
}

#[test]
fn refused_connections_are_counted() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, r) = loadgen(
        &format!("127.0.0.1:{port}"),
        &[
            "--mode",
            "rr",
            "--conns",
            "1",
            "--count",
            "10",
            "--duration",
            "0.3",
        ],
    );
    assert_eq!(code, 2, "{r:#}");
    assert!(u(&r["errors"], "refused") > 0, "{r:#}");
    assert_eq!(u(&r, "responses_verified"), 0);
}

/// A wrong echo server: answers each request with the previous request's bytes.
fn stale_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut previous: Option<Vec<u8>> = None;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let mut header = [0u8; HEADER_LEN];
            if s.read_exact(&mut header).is_err() {
                return;
            }
            let len = u32::from_be_bytes(header[16..20].try_into().unwrap()) as usize;
            let mut frame = header.to_vec();
            frame.resize(HEADER_LEN + len, 0);
            if s.read_exact(&mut frame[HEADER_LEN..]).is_err() {
                return;
            }
            let answer = previous.replace(frame.clone()).unwrap_or(frame);
            if s.write_all(&answer).is_err() {
                return;
            }
        }
    });
    (port, t)
}

#[test]
fn stale_responses_are_counted_as_mismatched() {
    let (port, server) = stale_server();
    let (code, r) = loadgen(
        &format!("127.0.0.1:{port}"),
        &["--mode", "rr", "--conns", "1", "--count", "50"],
    );
    server.join().unwrap();
    assert_eq!(code, 3, "mismatches give exit status 3: {r:#}");
    assert_eq!(u(&r, "requests_sent"), 50);
    // The first request is answered with itself, every later one with its predecessor.
    assert_eq!(u(&r, "responses_verified"), 1);
    assert_eq!(u(&r, "mismatched_requests"), 49);
    assert_eq!(u(&r["errors"], "mismatched"), 49);
}

#[test]
fn stream_up_is_consumed_and_acknowledged() {
    let echo = Echo::start(&[]);
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode",
            "stream",
            "--stream-dir",
            "up",
            "--conns",
            "2",
            "--size",
            "65536",
            "--depth",
            "4",
            "--count",
            "200",
        ],
    );
    assert_clean(code, &r, 200);
    assert_eq!(r["stream_dir"], "up");
    // Every request went up whole; each came back as a header-only acknowledgment whose
    // byte count and checksum the client checked.
    assert_eq!(
        u(&r, "bytes_tx"),
        200 * (65536 + HEADER_LEN as u64),
        "{r:#}"
    );
    assert_eq!(u(&r, "bytes_rx"), 200 * HEADER_LEN as u64, "{r:#}");
    let s = echo.stop();
    assert_eq!(u(&s, "bytes"), 200 * HEADER_LEN as u64);
}

#[test]
fn stream_down_sends_what_was_asked() {
    let echo = Echo::start(&[]);
    let (code, r) = loadgen(
        &echo.target(),
        &[
            "--mode",
            "stream",
            "--stream-dir",
            "down",
            "--conns",
            "2",
            "--size",
            "65536",
            "--depth",
            "4",
            "--count",
            "200",
        ],
    );
    assert_clean(code, &r, 200);
    assert_eq!(r["stream_dir"], "down");
    assert_eq!(u(&r, "bytes_tx"), 200 * HEADER_LEN as u64, "{r:#}");
    assert_eq!(
        u(&r, "bytes_rx"),
        200 * (65536 + HEADER_LEN as u64),
        "{r:#}"
    );
    let s = echo.stop();
    assert_eq!(u(&s, "bytes"), 200 * (65536 + HEADER_LEN as u64));
}
