//! The Linux side of the kernel-interop tests: python3 scripts run in the kernel's namespace
//! (clients to completion, servers in the background), the scripts several test binaries
//! share, and what the kernel's `ss` reports. Every process runs under `timeout`; a server is
//! our own child, stopped by its PID.

use super::pattern::PY_PATTERN;
use super::run;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `python3 -c script args...` in namespace `ns`, bounded to `secs` seconds, with
/// [`PY_PATTERN`] defined first: its stdout, or what it printed if it failed.
pub fn python(ns: &str, secs: u32, script: &str, args: &[&str]) -> Result<String, String> {
    let secs = secs.to_string();
    let script = format!("{PY_PATTERN}\n{script}");
    let mut argv = vec![
        "timeout", &secs, "ip", "netns", "exec", ns, "python3", "-c", &script,
    ];
    argv.extend_from_slice(args);
    let out = run(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "python in {ns} {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Like [`python`], failing the test if the script failed.
pub fn python_ok(ns: &str, secs: u32, script: &str, args: &[&str]) -> String {
    python(ns, secs, script, args).unwrap_or_else(|why| panic!("{why}"))
}

/// The seconds a script printed after "ok" (`ok <seconds> ...`).
pub fn seconds(out: &str) -> f64 {
    out.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no time in {out:?}"))
}

/// A python server in a namespace, started with a script that prints "ready" once listening
/// (with [`PY_PATTERN`] defined first). What it prints after that is collected in the
/// background, so that it never blocks on a full pipe. Stopped when dropped, if still running:
/// SIGTERM to our `timeout` child, by its PID, which passes it on to python.
pub struct KernelServer {
    ns: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl KernelServer {
    /// Starts `script` with `args` in namespace `ns` (at most 300 s) and waits for "ready".
    pub fn start(ns: &str, script: &str, args: &[&str]) -> KernelServer {
        use std::io::BufRead;
        let script = format!("{PY_PATTERN}\n{script}");
        let mut child = Command::new("timeout")
            .args(["300", "ip", "netns", "exec", ns, "python3", "-c", &script])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a kernel server");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("read the server's ready line");
        assert_eq!(line.trim(), "ready", "the kernel server did not start");
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut l = String::new();
            while reader.read_line(&mut l).is_ok_and(|n| n > 0) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&l);
                l.clear();
            }
        });
        KernelServer {
            ns: ns.to_owned(),
            child,
            output,
        }
    }

    /// Waits (up to `secs`) for the server to exit successfully by itself and returns what it
    /// printed after "ready". Fails the test with the namespace's TCP sockets if it did not.
    pub fn finish(mut self, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the kernel server failed: {status}");
                break;
            }
            if Instant::now() >= deadline {
                let ss = run(&[
                    "timeout", "10", "ip", "netns", "exec", &self.ns, "ss", "-tanoi",
                ]);
                panic!(
                    "the kernel server did not finish in {secs} s; its sockets:\n{}",
                    String::from_utf8_lossy(&ss.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let the reader thread drain the pipe.
        std::thread::sleep(Duration::from_millis(50));
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for KernelServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Ok(pid) = libc::pid_t::try_from(self.child.id())
        {
            // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped child
            // (`timeout`, which passes SIGTERM on to python).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// TCP sockets in TIME-WAIT in namespace `ns`'s kernel, matching the `ss` filter words
/// `filter` (none: all of them).
pub fn kernel_time_wait(ns: &str, filter: &[&str]) -> usize {
    let mut argv = vec![
        "timeout",
        "30",
        "ip",
        "netns",
        "exec",
        ns,
        "ss",
        "-Htan",
        "state",
        "time-wait",
    ];
    argv.extend_from_slice(filter);
    let out = run(&argv);
    assert!(out.status.success(), "ss failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// `n` short connections one after the other: connect, send 32 bytes of the pattern (from
/// offset `i` for connection `i`), read the echo, close (the client closes first).
/// Arguments: host, port, n. Prints "ok <seconds>".
pub const CHURN_CLIENT: &str = r#"
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = time.monotonic()
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    msg = pattern(i, 32)
    s.sendall(msg)
    got = b""
    while len(got) < 32:
        b = s.recv(64)
        if not b:
            break
        got += b
    if got != msg:
        print("connection", i, "echoed", got, file=sys.stderr)
        sys.exit(1)
    s.close()
print("ok", time.monotonic() - start)
"#;

/// Bulk echo: one connection sending `size` bytes of the pattern from a thread (then
/// `shutdown(SHUT_WR)`) while the main thread reads the echo to EOF; the SHA-256 of what was
/// sent and what came back must match. Arguments: host, port, size. Prints
/// "ok <seconds> <sha256>".
pub const BULK_CLIENT: &str = r#"
import hashlib, socket, sys, threading, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = time.monotonic()
s = socket.create_connection((host, port), timeout=60)
s.settimeout(60)
sent = hashlib.sha256()
def send():
    at = 0
    while at < size:
        chunk = pattern(at, min(65536, size - at))
        s.sendall(chunk)
        sent.update(chunk)
        at += len(chunk)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = hashlib.sha256()
n = 0
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    got.update(b)
    n += len(b)
t.join()
s.close()
if n != size or got.digest() != sent.digest():
    print("echoed", n, "of", size, "bytes, sha256", got.hexdigest(), "sent", sent.hexdigest(), file=sys.stderr)
    sys.exit(1)
print("ok", time.monotonic() - start, got.hexdigest())
"#;

/// A threaded kernel echo server (a thread per connection, closing after the peer's FIN);
/// arguments: address, port. Prints "ready", serves until stopped.
pub const ECHO_SERVER: &str = r#"
import socket, sys, threading
addr, port = sys.argv[1], int(sys.argv[2])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(512)
print("ready", flush=True)
def serve(c):
    with c:
        c.settimeout(60)
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            c.sendall(b)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;
