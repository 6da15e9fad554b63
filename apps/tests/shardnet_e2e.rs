//! End to end: the real `loadgen` binary on shardnet's in-process memory wire (echo server
//! and load generator on two runtimes in one process), every mode, checked through `--json`.
//! Every run is bounded by `--duration` (1 s of load plus drain) and killed by the test if it
//! ever outlives 60 s.

use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs loadgen with `args`, killing it after 60 s.
fn loadgen(args: &[&str]) -> Run {
    let mut child = Command::new(LOADGEN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("loadgen {args:?} ran for more than 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// A `--json` run on shardnet's memory driver (sleeping idle policy: the tests share the
/// cores); exit status 0 and the report are checked.
fn json(extra: &[&str]) -> Value {
    let mut args = vec![
        "--stack", "shardnet", "--driver", "memory", "--json", "--idle", "sleep",
    ];
    args.extend_from_slice(extra);
    let r = loadgen(&args);
    assert_eq!(r.code, Some(0), "{args:?}\n{}\n{}", r.stdout, r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

fn tw(v: &Value, side: &str) -> u64 {
    v["shardnet"][side]["states"]["TIME-WAIT"]
        .as_u64()
        .unwrap_or(0)
}

/// What every run must show: everything sent was verified, nothing mismatched, abandoned or
/// failed, the per-second series adds up to the totals, and the echo saw every connection.
fn counts_add_up(v: &Value) {
    let sent = u(v, &["requests_sent"]);
    let verified = u(v, &["responses_verified"]);
    assert!(verified > 0, "{v}");
    assert_eq!(sent, verified, "{v}");
    assert_eq!(u(v, &["mismatched_requests"]), 0);
    assert_eq!(u(v, &["abandoned"]), 0);
    for (kind, n) in v["errors"].as_object().unwrap() {
        assert_eq!(n.as_u64(), Some(0), "errors {kind}: {v}");
    }
    let per_second: u64 = v["per_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["responses"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, verified);
    // Every connection the client saw established was accepted by the echo; at the end each
    // connection slot may hold one more whose handshake was still under way.
    let connections = u(v, &["connections"]);
    let accepted = u(v, &["shardnet", "echo_accepted"]);
    let passive = u(v, &["shardnet", "server", "counters", "Tcp.PassiveOpens"]);
    let slots = u(v, &["conns"]);
    assert!(connections <= accepted && accepted <= passive, "{v}");
    assert!(passive <= connections + slots, "{v}");
    assert_eq!(u(v, &["shardnet", "wire_drops"]), 0);
    assert_eq!(v["stack"], "shardnet");
}

#[test]
fn rr_persistent_connections() {
    let v = json(&["--mode", "rr", "--conns", "4", "--duration", "1"]);
    counts_add_up(&v);
    assert_eq!(v["mode"], "rr");
    // One connection per --conns, kept for the whole run.
    assert_eq!(u(&v, &["connections"]), 4);
    assert!(u(&v, &["responses_verified"]) > 100, "{v}");
}

#[test]
fn rr_pipelined() {
    let v = json(&[
        "--mode",
        "rr",
        "--conns",
        "2",
        "--depth",
        "8",
        "--duration",
        "1",
    ]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["depth"]), 8);
    assert_eq!(u(&v, &["connections"]), 2);
}

#[test]
fn crr_client_close_leaves_time_wait_on_the_client() {
    let v = json(&[
        "--mode",
        "crr",
        "--client-close",
        "--conns",
        "4",
        "--duration",
        "1",
    ]);
    counts_add_up(&v);
    let verified = u(&v, &["responses_verified"]);
    // One transaction per connection; the client closes each one first.
    assert!(u(&v, &["connections"]) >= verified);
    assert!(tw(&v, "client") >= verified, "{v}");
    assert!(u(&v, &["shardnet", "client", "peak_time_wait"]) >= verified);
    assert_eq!(tw(&v, "server"), 0, "{v}");
}

#[test]
fn crr_server_close_leaves_time_wait_on_the_server() {
    let v = json(&[
        "--mode",
        "crr",
        "--server-close",
        "--conns",
        "4",
        "--duration",
        "1",
    ]);
    counts_add_up(&v);
    let verified = u(&v, &["responses_verified"]);
    // The echo closes every connection that carried a request, after the response.
    assert_eq!(tw(&v, "server"), verified, "{v}");
    // Only connections that opened after the deadline (no request: the client closes them)
    // may end in TIME_WAIT on the client.
    assert!(tw(&v, "client") <= 4, "{v}");
}

#[test]
fn crr_linger0_resets_and_leaves_no_time_wait() {
    let v = json(&[
        "--mode",
        "crr",
        "--linger0",
        "--conns",
        "4",
        "--duration",
        "1",
    ]);
    counts_add_up(&v);
    assert_eq!(tw(&v, "client"), 0, "{v}");
    assert_eq!(tw(&v, "server"), 0, "{v}");
    assert_eq!(u(&v, &["shardnet", "client", "peak_time_wait"]), 0);
    // The echo sees each reset as the end of its connection.
    assert!(u(&v, &["shardnet", "echo_errors"]) >= u(&v, &["responses_verified"]));
}

#[test]
fn stream_moves_bulk_both_ways() {
    let v = json(&["--mode", "stream", "--conns", "2", "--duration", "1"]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["size"]), 16384);
    let verified = u(&v, &["responses_verified"]);
    // Every verified response is a whole 16 KiB echo (plus its 24-byte header).
    let rx_bits = v["rx_bits_per_s"].as_f64().unwrap() * v["elapsed_s"].as_f64().unwrap();
    assert!(rx_bits >= (verified * 16408 * 8) as f64 * 0.99, "{v}");
}

#[test]
fn open_loop_rr_keeps_its_rate() {
    let v = json(&[
        "--mode",
        "rr",
        "--rate",
        "1000",
        "--conns",
        "4",
        "--duration",
        "1",
    ]);
    counts_add_up(&v);
    let sent = u(&v, &["requests_sent"]);
    // 1000/s for 1 s: the intended sends, give or take the last one's timing.
    assert!((950..=1001).contains(&sent), "sent {sent}");
    assert_eq!(u(&v, &["unsent"]), 0);
    assert_eq!(v["rate"].as_f64(), Some(1000.0));
}

#[test]
fn pcap_captures_the_client_frames() {
    let path = std::env::temp_dir().join(format!("shardnet-e2e-{}.pcap", std::process::id()));
    let p = path.to_str().unwrap();
    let v = json(&[
        "--mode",
        "rr",
        "--conns",
        "1",
        "--duration",
        "1",
        "--pcap",
        p,
    ]);
    counts_add_up(&v);
    let frames = u(&v, &["shardnet", "pcap_frames"]);
    // Every request and response crosses the client's port (plus handshake and ACKs).
    assert!(frames >= 2 * u(&v, &["responses_verified"]), "{v}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // Nanosecond pcap, little endian.
    assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
    assert!(bytes.len() as u64 > 24 + frames * 16);
}

#[test]
fn default_job_runs_rr_then_crr_and_prints_both_tables() {
    let r = loadgen(&["--duration", "1", "--idle", "sleep"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let rr = r.stdout.find("shardnet rr -> 198.18.0.2:7777").unwrap();
    let crr = r.stdout.find("shardnet crr -> 198.18.0.2:7777").unwrap();
    assert!(rr < crr, "{}", r.stdout);
    assert_eq!(r.stdout.matches("requests_per_s").count(), 0);
    assert_eq!(r.stdout.matches("  throughput ").count(), 2, "{}", r.stdout);
    let v = json(&["--duration", "1"]);
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["mode"], "rr");
    assert_eq!(runs[1]["mode"], "crr");
    for run in runs {
        counts_add_up(run);
    }
}

#[test]
fn two_shards_per_side_with_reuseport_listeners() {
    let v = json(&[
        "--mode",
        "crr",
        "--shards",
        "2",
        "--conns",
        "4",
        "--echo-reuseport",
        "--duration",
        "1",
    ]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["shards"]), 2);
    assert_eq!(u(&v, &["shardnet", "client", "shards"]), 2);
    assert_eq!(u(&v, &["shardnet", "server", "shards"]), 2);
    assert!(tw(&v, "client") >= u(&v, &["responses_verified"]), "{v}");
}

#[test]
fn metrics_serve_the_stack_counters_and_state_histogram() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new(LOADGEN)
        .args([
            "--mode",
            "crr",
            "--conns",
            "2",
            "--duration",
            "3",
            "--idle",
            "sleep",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        if let Some(rest) = line.strip_prefix("loadgen: metrics on http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // The shardnet part is refreshed with every per-second line: wait for the first.
    std::thread::sleep(Duration::from_millis(1500));
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(body.contains("loadgen_responses_verified_total"), "{body}");
    let value = |prefix: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {body}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        value("shardnet_counter{side=\"client\",shard=\"0\",group=\"Tcp\",name=\"ActiveOpens\"}")
            > 0
    );
    assert!(
        value("shardnet_counter{side=\"server\",shard=\"0\",group=\"Tcp\",name=\"PassiveOpens\"}")
            > 0
    );
    // crr with the client closing: the client's TIME_WAIT fills, the server's stays empty.
    assert!(value("shardnet_tcp_sockets{side=\"client\",state=\"TIME-WAIT\"}") > 0);
    assert_eq!(
        value("shardnet_tcp_sockets{side=\"server\",state=\"TIME-WAIT\"}"),
        0
    );
    // The in-process echo listens on its ports, one listener each.
    assert_eq!(
        value("shardnet_tcp_sockets{side=\"server\",state=\"LISTEN\"}"),
        u64::from(shardnet_apps::shardnet_tcp::MEMORY_ECHO_PORTS)
    );
}

#[test]
fn target_ports_set_the_in_process_echo_ports() {
    let listen = |v: &Value| u(v, &["shardnet", "server", "states", "LISTEN"]);
    let v = json(&[
        "--mode",
        "crr",
        "--client-close",
        "--conns",
        "4",
        "--count",
        "300",
        "--target-ports",
        "3",
    ]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["responses_verified"]), 300, "{v}");
    assert_eq!(listen(&v), 3, "{v}");
    assert_eq!(
        v["target"].as_str(),
        Some("198.18.0.2:7777-7779 (memory wire, in-process echo)"),
        "{v}"
    );
    // Without the flag: MEMORY_ECHO_PORTS.
    let v = json(&["--mode", "rr", "--conns", "2", "--count", "100"]);
    counts_add_up(&v);
    assert_eq!(
        listen(&v),
        u64::from(shardnet_apps::shardnet_tcp::MEMORY_ECHO_PORTS),
        "{v}"
    );
}

#[test]
fn crr_fast_open_sends_requests_in_the_syn() {
    let v = json(&[
        "--mode",
        "crr",
        "--fastopen",
        "--echo-fastopen",
        "64",
        "--conns",
        "4",
        "--count",
        "400",
    ]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["responses_verified"]), 400, "{v}");
    let client = &v["shardnet"]["client"]["fast_open"];
    let server = &v["shardnet"]["server"]["fast_open"];
    // The first connections ask for a cookie (their data follows the handshake); the later
    // ones carry their request in the SYN and the echo takes it at once.
    let cookie_requests = u(server, &["cookie_requests"]);
    let passive = u(server, &["passive"]);
    assert!(cookie_requests >= 1, "{v}");
    assert!(passive > 0, "{v}");
    assert_eq!(u(client, &["active"]), passive, "{v}");
    assert_eq!(passive + cookie_requests, 400, "{v}");
    assert_eq!(u(server, &["passive_fail"]), 0, "{v}");
    assert_eq!(u(client, &["active_fail"]), 0, "{v}");
}

#[test]
fn crr_without_fast_open_counts_none() {
    let v = json(&["--mode", "crr", "--conns", "4", "--count", "200"]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["shardnet", "server", "fast_open", "passive"]), 0);
    assert_eq!(u(&v, &["shardnet", "client", "fast_open", "active"]), 0);
}

#[test]
fn crr_against_a_defer_accept_echo() {
    let v = json(&[
        "--mode",
        "crr",
        "--echo-defer-accept",
        "1",
        "--conns",
        "4",
        "--count",
        "300",
    ]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["responses_verified"]), 300, "{v}");
    assert_eq!(u(&v, &["shardnet", "echo_accepted"]), 300, "{v}");
}

#[test]
fn tw_report_shows_reuses_port_exhaustion_and_memory() {
    let v = json(&[
        "--mode",
        "crr",
        "--conns",
        "4",
        "--duration",
        "2",
        "--tw-report",
    ]);
    counts_add_up(&v);
    let churn = &v["time_wait"];
    let n = &churn["shardnet"];
    let entry = u(n, &["entry_bytes"]);
    // The stack's compact TIME-WAIT entry (TimeWait + its timer id), well under a full TCB.
    assert!((32..=64).contains(&entry), "{v}");
    let samples = churn["samples"].as_array().unwrap();
    let rows = n["per_second"].as_array().unwrap();
    assert_eq!(samples.len(), rows.len(), "{v}");
    assert!(!rows.is_empty(), "{v}");
    for (s, r) in samples.iter().zip(rows) {
        assert_eq!(u(r, &["time_wait_bytes"]), u(s, &["time_wait"]) * entry);
    }
    // Client-closed crr: TIME-WAIT builds up on the client, its memory with it.
    assert!(u(churn, &["peak_time_wait"]) > 0, "{v}");
    assert_eq!(u(n, &["peak_bytes"]), u(churn, &["peak_time_wait"]) * entry);
    // The totals are the client stack's counters (absent from the map when zero).
    let counter = |name: &str| {
        v["shardnet"]["client"]["counters"][name]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(u(n, &["tw_recycled_total"]), counter("TcpExt.TWRecycled"));
    assert_eq!(
        u(n, &["port_exhausted_total"]),
        counter("TcpExt.TCPEphemeralPortExhausted")
    );
    let per_second_recycled: u64 = rows.iter().map(|r| u(r, &["tw_recycled"])).sum();
    assert!(per_second_recycled <= u(n, &["tw_recycled_total"]), "{v}");
    assert_eq!(churn["port_range"], serde_json::json!([1024, 65535]));
}

const HEADER: u64 = 24;

#[test]
fn stream_up_is_consumed_and_acknowledged() {
    let v = json(&[
        "--mode",
        "stream",
        "--stream-dir",
        "up",
        "--conns",
        "2",
        "--size",
        "8192",
        "--depth",
        "4",
        "--count",
        "300",
    ]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["responses_verified"]), 300, "{v}");
    assert_eq!(v["stream_dir"], "up");
    assert_eq!(u(&v, &["bytes_tx"]), 300 * (8192 + HEADER), "{v}");
    assert_eq!(u(&v, &["bytes_rx"]), 300 * HEADER, "{v}");
    // The echo consumed every payload byte, checksum checked, and echoed none.
    assert_eq!(u(&v, &["shardnet", "echo_sunk"]), 300 * 8192, "{v}");
}

#[test]
fn stream_down_sends_what_was_asked() {
    let v = json(&[
        "--mode",
        "stream",
        "--stream-dir",
        "down",
        "--conns",
        "2",
        "--size",
        "8192",
        "--depth",
        "4",
        "--count",
        "300",
    ]);
    counts_add_up(&v);
    assert_eq!(u(&v, &["responses_verified"]), 300, "{v}");
    assert_eq!(v["stream_dir"], "down");
    assert_eq!(u(&v, &["bytes_tx"]), 300 * HEADER, "{v}");
    assert_eq!(u(&v, &["bytes_rx"]), 300 * (8192 + HEADER), "{v}");
    assert_eq!(u(&v, &["shardnet", "echo_sunk"]), 0, "{v}");
}
