//! The apps on shardnet's real-interface drivers against the Linux kernel stack, over a veth
//! pair between two network namespaces this test creates and deletes: `sapp-k<pid>` holds the
//! kernel end (198.18.0.1/24), `sapp-s<pid>` the end shardnet drives as 198.18.0.2 (no kernel
//! address there). The binaries run inside the namespaces through `ip netns exec`.
//!
//! - `echo --stack shardnet --driver af-xdp` against `loadgen --stack kernel`, rr and crr;
//! - `loadgen --stack shardnet --driver af-xdp` against `echo --stack kernel`, rr and crr;
//! - the same two with `--driver dpdk` on `net_af_packet` and on `net_af_xdp` (with the `dpdk`
//!   feature).
//!
//! Needs root (namespaces, XDP, AF_PACKET) and `ip`, `ethtool`, `timeout`: as another user each
//! test prints why and returns; as root a failed setup fails the test. Every load is bounded by
//! `--count` and `--max-seconds`, every process by `--duration` or `timeout`, the servers are
//! stopped by PID (SIGTERM, then SIGKILL after a deadline), and the namespaces are deleted by a
//! drop guard, also when a test fails. The tests of this binary share the namespaces' names, so
//! they run one at a time.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");
const KERNEL_IP: &str = "198.18.0.1";
const SHARDNET_IP: &str = "198.18.0.2";
const PORT: u16 = 7777;
const RR_COUNT: u64 = 20_000;
const CRR_COUNT: u64 = 2_000;
const CONNS: u64 = 4;

/// One test at a time: they share the namespaces.
static SERIAL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this test can run: root. Prints why not.
fn runnable(test: &str) -> bool {
    if !is_root() {
        eprintln!("{test}: skipped: needs root (network namespaces, XDP, AF_PACKET)");
        return false;
    }
    true
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let mut argv = vec!["timeout", "30"];
    argv.extend_from_slice(args);
    let out = run(&argv);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct Namespaces {
    /// The exclusive lock every namespace test takes (shared with the AF_XDP and DPDK tests),
    /// held while the namespaces exist; released after they are deleted (fields drop after
    /// `Drop::drop`).
    _lock: std::fs::File,
    kernel: String,
    shardnet: String,
    /// shardnet's veth end (in `shardnet`).
    iface: String,
}

impl Namespaces {
    fn up() -> Namespaces {
        let id = std::process::id() % 100_000;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/shardnet-af-xdp-interop.lock")
            .expect("open the lock file");
        // SAFETY: flock on a valid descriptor we own; released when the file is closed.
        let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
        let ns = Namespaces {
            _lock: lock,
            kernel: format!("sapp-k{id}"),
            shardnet: format!("sapp-s{id}"),
            iface: format!("sapps{id}"),
        };
        let peer = format!("sappk{id}");
        // Leftovers of a run that died with the same pid.
        ns.delete();
        must(&["ip", "netns", "add", &ns.kernel]);
        must(&["ip", "netns", "add", &ns.shardnet]);
        // One queue each way on both ends: native XDP on veth needs equal queue counts.
        must(&[
            "ip",
            "link",
            "add",
            &peer,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "netns",
            &ns.kernel,
            "type",
            "veth",
            "peer",
            "name",
            &ns.iface,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "netns",
            &ns.shardnet,
        ]);
        let (k, s) = (ns.kernel.as_str(), ns.shardnet.as_str());
        must(&["ip", "-n", k, "link", "set", "lo", "up"]);
        must(&["ip", "-n", s, "link", "set", "lo", "up"]);
        // No IPv6 chatter; shardnet's end has no kernel address at all.
        must(&[
            "ip",
            "netns",
            "exec",
            s,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        must(&[
            "ip",
            "netns",
            "exec",
            k,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        must(&[
            "ip",
            "-n",
            k,
            "addr",
            "add",
            &format!("{KERNEL_IP}/24"),
            "dev",
            &peer,
        ]);
        must(&["ip", "-n", k, "link", "set", &peer, "up"]);
        must(&["ip", "-n", s, "link", "set", &ns.iface, "up"]);
        // Complete checksums and MTU-sized frames from the kernel (AF_XDP and af_packet carry
        // no offload metadata; shardnet checks every checksum).
        for (n, dev) in [(k, peer.as_str()), (s, ns.iface.as_str())] {
            must(&[
                "ip", "netns", "exec", n, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso",
                "off", "gso", "off", "gro", "off",
            ]);
        }
        ns
    }

    fn delete(&self) {
        for n in [&self.kernel, &self.shardnet] {
            let _ = Command::new("timeout")
                .args(["30", "ip", "netns", "del", n])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A server process started by the test, stopped by PID.
struct Server {
    child: Child,
    stderr: Receiver<String>,
    name: &'static str,
}

impl Server {
    /// Starts `bin args` in namespace `ns` and waits (15 s at most) for a stderr line
    /// containing `ready`.
    fn start(ns: &str, bin: &str, args: &[&str], ready: &str, name: &'static str) -> Server {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, bin])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let err = child.stderr.take().expect("piped stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let mut server = Server {
            child,
            stderr: rx,
            name,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.stderr.recv_timeout(left) {
                Ok(l) => {
                    let done = l.contains(ready);
                    seen.push(l);
                    if done {
                        return server;
                    }
                }
                Err(_) => {
                    let status = server.child.try_wait().ok().flatten();
                    server.kill();
                    panic!(
                        "{name} did not print {ready:?} within 15 s (exit {status:?}); stderr:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }

    /// SIGTERM to the server's PID (it reports and exits), SIGKILL if it is still there after
    /// 10 s; returns its exit status, stdout and stderr.
    fn stop(mut self) -> (Option<i32>, String, String) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits i32");
        // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.kill();
                    panic!("{} ignored SIGTERM for 10 s", self.name);
                }
            }
        };
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let err: Vec<String> = self.stderr.try_iter().collect();
        (status, out, err.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Runs `loadgen args --json` in namespace `ns` (60 s at most); returns the report.
fn loadgen(ns: &str, args: &[&str]) -> Value {
    let mut argv = vec!["timeout", "60", "ip", "netns", "exec", ns, LOADGEN];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--json", "--max-seconds", "30"]);
    let out = run(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "loadgen {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("loadgen {args:?}: not JSON ({e}):\n{stdout}"))
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

/// Every request answered and verified, nothing else: `count` transactions, zero mismatched,
/// zero errors; crr opened one connection per transaction.
fn check_counts(v: &Value, mode: &str, count: u64) {
    assert_eq!(v["mode"], mode, "{v}");
    assert_eq!(u(v, &["requests_sent"]), count, "{v}");
    assert_eq!(u(v, &["responses_verified"]), count, "{v}");
    assert_eq!(u(v, &["mismatched_requests"]), 0, "{v}");
    assert_eq!(u(v, &["abandoned"]), 0, "{v}");
    let errors = v["errors"].as_object().expect("an errors map");
    assert!(
        errors.values().all(|n| n.as_u64() == Some(0)),
        "errors in {v}"
    );
    let conns = u(v, &["connections"]);
    match mode {
        "crr" => assert_eq!(conns, count, "{v}"),
        _ => assert_eq!(conns, CONNS, "{v}"),
    }
}

fn rr_args(target: &str) -> Vec<String> {
    [
        "--mode",
        "rr",
        "--conns",
        &CONNS.to_string(),
        "--count",
        &RR_COUNT.to_string(),
        "--target",
        target,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn crr_args(target: &str) -> Vec<String> {
    [
        "--mode",
        "crr",
        "--conns",
        &CONNS.to_string(),
        "--count",
        &CRR_COUNT.to_string(),
        "--target",
        target,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// shardnet's echo on `driver_args` in the shardnet namespace; the kernel's load generator
/// runs rr then crr against it; the echo's own count of connections must match.
fn shardnet_echo_serves_the_kernel(driver_args: &[String], ns: &Namespaces) {
    let mut args = vec![
        "--stack".to_string(),
        "shardnet".into(),
        "--ip".into(),
        format!("{SHARDNET_IP}/24"),
        "--port".into(),
        PORT.to_string(),
        "--duration".into(),
        "90".into(),
        "--json".into(),
    ];
    args.extend_from_slice(driver_args);
    // The first per-second line: the listeners are open (the echo waits for them first).
    let server = Server::start(&ns.shardnet, ECHO, &strs(&args), "[   1s]", "shardnet echo");
    let target = format!("{SHARDNET_IP}:{PORT}");
    let mut kernel = vec!["--stack", "kernel"];
    let rr = rr_args(&target);
    kernel.extend(strs(&rr));
    let v = loadgen(&ns.kernel, &kernel);
    check_counts(&v, "rr", RR_COUNT);
    let rr_rate = v["requests_per_s"].as_f64().unwrap_or(0.0);
    let mut kernel = vec!["--stack", "kernel"];
    let crr = crr_args(&target);
    kernel.extend(strs(&crr));
    let v = loadgen(&ns.kernel, &kernel);
    check_counts(&v, "crr", CRR_COUNT);
    eprintln!(
        "shardnet echo {driver_args:?}: rr {rr_rate:.0} requests/s, crr {:.0} connections/s (kernel loadgen)",
        v["connections_per_s"].as_f64().unwrap_or(0.0)
    );
    let (status, out, err) = server.stop();
    assert_eq!(status, Some(0), "echo failed:\n{out}\n{err}");
    let e: Value =
        serde_json::from_str(&out).unwrap_or_else(|x| panic!("echo: not JSON ({x}):\n{out}"));
    assert_eq!(e["stack"], "shardnet", "{e}");
    assert_eq!(u(&e, &["accepted"]), CONNS + CRR_COUNT, "{e}");
    assert_eq!(u(&e, &["closed"]), CONNS + CRR_COUNT, "{e}");
    assert_eq!(u(&e, &["connection_errors"]), 0, "{e}");
    assert_eq!(
        u(&e, &["shardnet", "counters", "Tcp.PassiveOpens"]),
        CONNS + CRR_COUNT,
        "{e}"
    );
}

/// The kernel's echo in the kernel namespace; shardnet's load generator on `driver_args` runs
/// rr then crr against it.
fn shardnet_loadgen_loads_the_kernel(driver_args: &[String], ns: &Namespaces, driver: &str) {
    let server = Server::start(
        &ns.kernel,
        ECHO,
        &[
            "--stack",
            "kernel",
            "--ip",
            &format!("{KERNEL_IP}/24"),
            "--port",
            &PORT.to_string(),
            "--duration",
            "90",
            "--json",
        ],
        "echo: listening on",
        "kernel echo",
    );
    let target = format!("{KERNEL_IP}:{PORT}");
    for (mode, count, load) in [
        ("rr", RR_COUNT, rr_args(&target)),
        ("crr", CRR_COUNT, crr_args(&target)),
    ] {
        let mut args = vec![
            "--stack".to_string(),
            "shardnet".into(),
            "--ip".into(),
            format!("{SHARDNET_IP}/24"),
        ];
        args.extend_from_slice(driver_args);
        args.extend(load);
        let v = loadgen(&ns.shardnet, &strs(&args));
        check_counts(&v, mode, count);
        assert_eq!(v["stack"], "shardnet", "{v}");
        assert_eq!(v["shardnet"]["driver"], driver, "{v}");
        let opens = u(&v, &["shardnet", "client", "counters", "Tcp.ActiveOpens"]);
        assert_eq!(opens, u(&v, &["connections"]), "{v}");
    }
    let (status, out, err) = server.stop();
    assert_eq!(status, Some(0), "kernel echo failed:\n{out}\n{err}");
    let e: Value = serde_json::from_str(&out)
        .unwrap_or_else(|x| panic!("kernel echo: not JSON ({x}):\n{out}"));
    assert_eq!(u(&e, &["accepted"]), CONNS + CRR_COUNT, "{e}");
    assert_eq!(u(&e, &["connection_errors"]), 0, "{e}");
}

fn af_xdp_args(ns: &Namespaces) -> Vec<String> {
    vec![
        "--driver".into(),
        "af-xdp".into(),
        "--iface".into(),
        ns.iface.clone(),
    ]
}

#[test]
fn af_xdp_echo_serves_the_kernel_loadgen() {
    if !runnable("af_xdp_echo_serves_the_kernel_loadgen") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Namespaces::up();
    shardnet_echo_serves_the_kernel(&af_xdp_args(&ns), &ns);
}

#[test]
fn af_xdp_loadgen_loads_the_kernel_echo() {
    if !runnable("af_xdp_loadgen_loads_the_kernel_echo") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Namespaces::up();
    shardnet_loadgen_loads_the_kernel(&af_xdp_args(&ns), &ns, "af-xdp");
}

/// `--driver dpdk` on `vdev` (`net_af_packet0` or `net_af_xdp0`) over shardnet's veth end.
#[cfg(feature = "dpdk")]
fn dpdk_args(ns: &Namespaces, vdev: &str) -> Vec<String> {
    let queue = if vdev.starts_with("net_af_xdp") {
        ",start_queue=0,queue_count=1"
    } else {
        ""
    };
    vec![
        "--driver".into(),
        "dpdk".into(),
        "--eal".into(),
        format!(
            "--no-huge -m 512 --no-pci --no-shconf --no-telemetry --log-level=*:warning --vdev={vdev},iface={}{queue}",
            ns.iface
        ),
    ]
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_echo_serves_the_kernel_loadgen() {
    if !runnable("dpdk_echo_serves_the_kernel_loadgen") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Namespaces::up();
    shardnet_echo_serves_the_kernel(&dpdk_args(&ns, "net_af_packet0"), &ns);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_loadgen_loads_the_kernel_echo() {
    if !runnable("dpdk_loadgen_loads_the_kernel_echo") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Namespaces::up();
    shardnet_loadgen_loads_the_kernel(&dpdk_args(&ns, "net_af_packet0"), &ns, "dpdk");
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_af_xdp_echo_serves_the_kernel_loadgen() {
    if !runnable("dpdk_af_xdp_echo_serves_the_kernel_loadgen") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Namespaces::up();
    shardnet_echo_serves_the_kernel(&dpdk_args(&ns, "net_af_xdp0"), &ns);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_af_xdp_loadgen_loads_the_kernel_echo() {
    if !runnable("dpdk_af_xdp_loadgen_loads_the_kernel_echo") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Namespaces::up();
    shardnet_loadgen_loads_the_kernel(&dpdk_args(&ns, "net_af_xdp0"), &ns, "dpdk");
}
