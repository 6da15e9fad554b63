//! Interop with the Linux kernel stack: shardnet on an AF_XDP port at one end of a veth pair,
//! the kernel at the other, each in a network namespace this test creates and deletes
//! (`scripts/netns.sh`): `snet-k` holds the kernel peer (198.18.0.1), `snet-s` the veth end
//! shardnet drives as 198.18.0.2.
//!
//! Needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN for `setns`). As another user every test
//! prints why and returns; as root a failed setup fails the test. Needs `ip`, `ethtool`,
//! `ping` and `python3` (`scripts/netns.sh install` installs them).
//!
//! Every external command runs under `timeout`, every wait has a deadline, and the namespaces
//! are deleted by a drop guard, also when a test fails.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Frame, Port};
use shardnet::runtime::{App, AppContext, ExitReason, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::{Event, Readiness, RecvError, SendError, SocketHandle, SocketOptions};
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode, BindMode, Error};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const NS_KERNEL: &str = "snet-k";
const NS_SHARDNET: &str = "snet-s";
const DEV_SHARDNET: &str = "snet-s0";
const KERNEL_IP: &str = "198.18.0.1";
const SHARDNET_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// A kernel address on the shardnet side's veth, for the kernel-to-kernel baseline.
const BASELINE_IP: &str = "198.18.0.3";
const ECHO_PORT: u16 = 7;
const BULK_BYTES: usize = 100 << 20;

/// The namespaces are shared: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn netns_script() -> String {
    format!("{}/../../scripts/netns.sh", env!("CARGO_MANIFEST_DIR"))
}

/// Brings the namespaces up; deletes them when dropped.
struct Namespaces;

impl Namespaces {
    fn up() -> Namespaces {
        let out = run(&["timeout", "120", "bash", &netns_script(), "up"]);
        assert!(
            out.status.success(),
            "scripts/netns.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Namespaces
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["30", "bash", &netns_script(), "down"])
            .output();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

/// Runs `python3 -c script args...` in namespace `ns`, bounded to `secs` seconds.
fn python_in(ns: &str, secs: u32, script: &str, args: &[&str]) -> Output {
    let secs = secs.to_string();
    let mut argv = vec![
        "timeout", &secs, "ip", "netns", "exec", ns, "python3", "-c", script,
    ];
    argv.extend_from_slice(args);
    run(&argv)
}

/// Opens the AF_XDP port from a thread that entered the shardnet namespace (the socket and
/// the XDP link, once made, work from any thread).
fn open_port(mode: AttachMode) -> Result<AfXdpPort, Error> {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/run/netns/{NS_SHARDNET}"))
            .expect("the shardnet namespace exists");
        // SAFETY: setns on this thread only, with a valid namespace fd; the thread ends after
        // opening the port.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let mut config = AfXdpConfig::new(DEV_SHARDNET, SHARDNET_IP);
        config.mode = mode;
        AfXdpPort::open(&config)
    })
    .join()
    .expect("the port thread panicked")
}

/// Generic mode runs the shard with [`IdlePolicy::Sleep`] and a sleep cap of 100 ms even
/// without a waker, so that only the port's rx waker keeps latency low (checked with ping);
/// native mode yields when idle.
fn idle_policy(mode: AttachMode) -> IdlePolicy {
    match mode {
        AttachMode::Native => IdlePolicy::Yield,
        _ => IdlePolicy::Sleep {
            max: Duration::from_millis(100),
        },
    }
}

fn runtime_config(port: &AfXdpPort, idle: IdlePolicy) -> RuntimeConfig {
    let caps = port.capabilities();
    let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac: caps.mac,
        cidr: Ipv4Cidr::new(SHARDNET_IP, 24).expect("a valid prefix"),
        gateway: None,
        mtu: caps.mtu,
        ttl: 64,
    }));
    c.idle = idle;
    c.no_waker_sleep = Duration::from_millis(100);
    c.pinning = Pinning::None;
    c.grace = Duration::from_secs(2);
    c
}

// ----- the echo server app -----

#[derive(Default)]
struct EchoConn {
    pending: Vec<u8>,
    sent: usize,
    eof: bool,
}

/// TCP echo on the runtime's listeners (with backpressure: reads only what it could send) and
/// UDP echo on port 7.
#[derive(Default)]
struct EchoServer {
    udp: Option<SocketHandle>,
    conns: HashMap<SocketHandle, EchoConn>,
    events: Vec<Event>,
    buf: Vec<u8>,
    tcp_echoed: u64,
    udp_echoed: u64,
    errors: u64,
}

impl EchoServer {
    /// Moves bytes from the socket to its send buffer until either side blocks.
    fn pump(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) -> bool {
        let Some(c) = self.conns.get_mut(&h) else {
            return false;
        };
        loop {
            while c.sent < c.pending.len() {
                match s.send(h, &c.pending[c.sent..]) {
                    Ok(n) => {
                        c.sent += n;
                        self.tcp_echoed += n as u64;
                    }
                    Err(SendError::WouldBlock) => return false,
                    Err(_) => {
                        self.errors += 1;
                        return true;
                    }
                }
            }
            if c.eof {
                return true;
            }
            c.pending.clear();
            c.sent = 0;
            match s.recv(h, &mut self.buf) {
                Ok(0) => c.eof = true,
                Ok(n) => c.pending.extend_from_slice(&self.buf[..n]),
                Err(RecvError::WouldBlock) => return false,
                Err(_) => {
                    self.errors += 1;
                    return true;
                }
            }
        }
    }
}

impl App for EchoServer {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        if self.buf.is_empty() {
            self.buf = vec![0; 64 * 1024];
        }
        let listeners: Vec<SocketHandle> = ctx
            .listeners
            .iter()
            .map(|&l| SocketHandle::Listener(l))
            .collect();
        // Reads TCP data in place in the received UMEM frames (zero-copy receive).
        let mut s = ctx.sockets();
        let udp = match self.udp {
            Some(h) => h,
            None => {
                let h = s
                    .bind_udp(SocketAddrV4::new(SHARDNET_IP, ECHO_PORT))
                    .expect("bind UDP 7");
                self.udp = Some(h);
                h
            }
        };
        while let Ok(r) = s.recv_from(udp, &mut self.buf) {
            if s.send_to(udp, Some(r.from), &self.buf[..r.len]).is_ok() {
                self.udp_echoed += 1;
            } else {
                self.errors += 1;
            }
        }
        self.events.clear();
        s.poll_events(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for e in &events {
            if listeners.contains(&e.socket) {
                while let Ok((h, _)) = s.accept(e.socket) {
                    self.conns.insert(h, EchoConn::default());
                    if self.pump(&mut s, h) {
                        let _ = s.close(h);
                        self.conns.remove(&h);
                    }
                }
                continue;
            }
            if e.readiness.contains(Readiness::ERROR) {
                let _ = s.close(e.socket);
                self.conns.remove(&e.socket);
                continue;
            }
            if self.pump(&mut s, e.socket) {
                let _ = s.close(e.socket);
                self.conns.remove(&e.socket);
            }
        }
        self.events = events;
    }
}

// ----- kernel-side clients (python3 in the kernel namespace) -----

/// UDP echo: 200 datagrams of 1..=1472 bytes, each echoed exactly (a lost one is retried up
/// to 3 times). Prints the number echoed.
const UDP_CLIENT: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
ok = 0
for i in range(200):
    n = 1 + (i * 97) % 1472
    msg = bytes((i + k) % 256 for k in range(n))
    for attempt in range(3):
        s.sendto(msg, (host, port))
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            continue
        if data != msg:
            print("mismatch", i, file=sys.stderr); sys.exit(1)
        ok += 1
        break
print(ok)
"#;

/// TCP echo: `conns` connections, each sending `size` bytes (from a sender thread, while the
/// main thread reads the echo) and closing; the SHA-256 of what was sent and received must
/// match. Prints "ok <seconds>".
const TCP_CLIENT: &str = r#"
import hashlib, socket, sys, threading, time
host, port, conns, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
block = hashlib.sha256(b"shardnet").digest() * 2048  # 64 KiB
start = time.monotonic()
for c in range(conns):
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(30)
    data = (bytes([c % 256]) + block)[:65536]
    sent_hash = hashlib.sha256()
    def send():
        left = size
        while left:
            chunk = data[: min(left, len(data))]
            s.sendall(chunk)
            sent_hash.update(chunk)
            left -= len(chunk)
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
    if n != size or got.digest() != sent_hash.digest():
        print("connection", c, "echoed", n, "of", size, "bytes or wrong bytes", file=sys.stderr)
        sys.exit(1)
print("ok", time.monotonic() - start)
"#;

/// A threaded TCP echo server on (addr, port): prints "ready" once listening, serves until
/// killed by its `timeout`.
const TCP_SERVER: &str = r#"
import socket, sys, threading
addr, port = sys.argv[1], int(sys.argv[2])
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(64)
print("ready", flush=True)
def serve(c):
    with c:
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            c.sendall(b)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

fn tcp_echo_from_kernel(host: &str, conns: usize, size: usize) -> f64 {
    let out = python_in(
        NS_KERNEL,
        120,
        TCP_CLIENT,
        &[
            host,
            &ECHO_PORT.to_string(),
            &conns.to_string(),
            &size.to_string(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "TCP echo client ({conns} x {size} bytes to {host}) failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .expect("the client prints its time")
}

/// A kernel echo server on `addr`:`port` in namespace `ns`, killed when dropped.
struct KernelServer(std::process::Child);

impl KernelServer {
    fn start(ns: &str, addr: &str, port: u16) -> KernelServer {
        use std::io::BufRead;
        let mut child = Command::new("timeout")
            .args([
                "300", "ip", "netns", "exec", ns, "python3", "-c", TCP_SERVER, addr,
            ])
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the kernel echo server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's ready line");
        assert_eq!(line.trim(), "ready", "the kernel echo server did not start");
        KernelServer(child)
    }
}

impl Drop for KernelServer {
    fn drop(&mut self) {
        // Our own child, by its PID: SIGTERM to `timeout`, which passes it on to python.
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

/// Everything a kernel peer does against shardnet's echo server on a port attached in `mode`.
fn kernel_peer_against_shardnet(mode: AttachMode) {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ns = Namespaces::up();
    let port = open_port(mode).unwrap_or_else(|e| panic!("opening the AF_XDP port: {e}"));
    let want = if mode == AttachMode::Native {
        AttachMode::Native
    } else {
        AttachMode::Generic
    };
    assert_eq!(port.attach_info().mode, want);
    // veth has no zero-copy support: the port fell back to copy mode.
    assert_eq!(port.bind_mode(), BindMode::Copy);
    let pool = port.pool_stats();
    println!(
        "{mode:?}: bound in {:?} mode, queue {}/{}, pool {:?}",
        port.bind_mode(),
        port.capabilities().queue,
        port.capabilities().queue_count,
        pool
    );
    let runtime: Runtime<AfXdpPort, EchoServer> = Runtime::start(
        runtime_config(&port, idle_policy(mode)),
        vec![(port, EchoServer::default())],
    )
    .expect("start the runtime");
    runtime.listen(ECHO_PORT, 128).expect("listen on 7");

    // ARP + ICMP echo.
    let ping = run(&[
        "timeout",
        "30",
        "ip",
        "netns",
        "exec",
        NS_KERNEL,
        "ping",
        "-c",
        "5",
        "-i",
        "0.2",
        "-W",
        "2",
        "198.18.0.2",
    ]);
    let ping_out = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success() && ping_out.contains(" 5 received"),
        "ping: {ping_out}{}",
        String::from_utf8_lossy(&ping.stderr)
    );
    // "rtt min/avg/max/mdev = 0.041/0.062/0.090/0.017 ms": a sleeping shard is woken by the
    // rx waker, not by its 100 ms sleep cap.
    let avg_ms: f64 = ping_out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rtt summary in {ping_out}"));
    println!("{mode:?}: ping avg rtt {avg_ms} ms");
    assert!(
        avg_ms < 20.0,
        "ping avg rtt {avg_ms} ms: the shard was not woken on rx"
    );

    // UDP echo.
    let udp = python_in(NS_KERNEL, 60, UDP_CLIENT, &["198.18.0.2", "7"]);
    let udp_ok: usize = String::from_utf8_lossy(&udp.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("UDP client: {}", String::from_utf8_lossy(&udp.stderr)));
    assert_eq!(udp_ok, 200, "UDP datagrams echoed");

    // TCP echo: many small connections, then one bulk transfer.
    tcp_echo_from_kernel("198.18.0.2", 50, 1000);
    let shardnet_secs = tcp_echo_from_kernel("198.18.0.2", 1, BULK_BYTES);

    // The same bulk transfer between two kernel stacks over the same veth pair (the XDP
    // program passes traffic for other addresses to the kernel).
    let add = run(&[
        "ip",
        "-n",
        NS_SHARDNET,
        "addr",
        "add",
        &format!("{BASELINE_IP}/24"),
        "dev",
        DEV_SHARDNET,
    ]);
    assert!(add.status.success(), "adding the baseline address");
    let kernel_secs = {
        let _server = KernelServer::start(NS_SHARDNET, BASELINE_IP, ECHO_PORT);
        tcp_echo_from_kernel(BASELINE_IP, 1, BULK_BYTES)
    };
    let mib = (BULK_BYTES >> 20) as f64;
    println!(
        "{mode:?}: {mib} MiB echoed: shardnet {:.1} MiB/s, kernel-to-kernel {:.1} MiB/s \
         (ratio shardnet/kernel {:.2})",
        mib / shardnet_secs,
        mib / kernel_secs,
        kernel_secs / shardnet_secs
    );

    let mut exits = runtime.stop().expect("stop the runtime");
    let exit = exits.pop().expect("one shard");
    assert_eq!(exit.reason, ExitReason::Drained);
    assert_eq!(exit.app.errors, 0);
    // Every datagram the client saw echoed, and any it resent after a lost echo.
    assert!(
        exit.app.udp_echoed >= 200,
        "UDP echoed {}",
        exit.app.udp_echoed
    );
    assert_eq!(exit.app.tcp_echoed, (50 * 1000 + BULK_BYTES) as u64);
    // The echo read received data in the UMEM frames themselves.
    let z = exit.stats.zero_copy;
    println!("{mode:?}: zero-copy receive {z:?}");
    assert!(z.delivered_bytes > 0, "{z:?}");
    assert_eq!(z.lost, 0);
    let mut port = exit.port;
    // Every frame came back: transmits complete within a few milliseconds.
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    while port.pool_stats().free != port.pool_stats().total && Instant::now() < deadline {
        port.reclaim();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(
        port.pool_stats().free,
        port.pool_stats().total,
        "frames leaked"
    );
    let c = port.counters();
    let st = port.xdp_statistics().expect("XDP_STATISTICS");
    println!(
        "{mode:?}: counters {c:?}; kernel: rx_dropped {} rx_ring_full {} fill_empty {} \
         invalid rx {} tx {}",
        st.rx_dropped,
        st.rx_ring_full,
        st.rx_fill_ring_empty_descs,
        st.rx_invalid_descs,
        st.tx_invalid_descs
    );
    assert_eq!((st.rx_invalid_descs, st.tx_invalid_descs), (0, 0));
    assert!(c.rx_frames > (BULK_BYTES / 1500) as u64);
}

#[test]
fn generic_xdp_kernel_peer_ping_udp_tcp_and_16_mib() {
    kernel_peer_against_shardnet(AttachMode::Generic);
}

#[test]
fn native_xdp_kernel_peer_ping_udp_tcp_and_16_mib() {
    kernel_peer_against_shardnet(AttachMode::Native);
}

// ----- a shardnet client against a Linux server -----

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// Connects to the kernel's echo server, sends `total` bytes (as the send buffer allows),
/// checks every echoed byte, and closes after the last one.
struct Client {
    total: usize,
    conn: Option<SocketHandle>,
    sent: usize,
    received: usize,
    done: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    events: Vec<Event>,
}

impl App for Client {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        let server = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 9000);
        let h = match self.conn {
            Some(h) => h,
            None if self.done.load(Ordering::Relaxed) == 0 => {
                match s.connect(server, &SocketOptions::default()) {
                    Ok(h) => {
                        self.conn = Some(h);
                        h
                    }
                    Err(_) => {
                        self.bad.fetch_add(1, Ordering::Relaxed);
                        self.done.store(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            None => return,
        };
        self.events.clear();
        s.poll_events(&mut self.events);
        if self
            .events
            .iter()
            .any(|e| e.readiness.contains(Readiness::ERROR))
        {
            self.bad.fetch_add(1, Ordering::Relaxed);
            self.done.store(1, Ordering::Relaxed);
            let _ = s.close(h);
            self.conn = None;
            return;
        }
        while self.sent < self.total {
            let at = self.sent;
            let want = (self.total - at).min(64 * 1024);
            match s.send_with(h, want, |buf| {
                for (k, b) in buf.iter_mut().enumerate() {
                    *b = pattern(at + k);
                }
                buf.len()
            }) {
                Ok(n) if n > 0 => self.sent += n,
                _ => break,
            }
        }
        loop {
            let at = self.received;
            let mut wrong = false;
            match s.recv_with(h, |bytes| {
                wrong = bytes.iter().enumerate().any(|(k, &b)| b != pattern(at + k));
                bytes.len()
            }) {
                Ok(0) => {
                    self.bad.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(n) => {
                    if wrong {
                        self.bad.fetch_add(1, Ordering::Relaxed);
                    }
                    self.received += n;
                }
                Err(_) => break,
            }
        }
        if self.received >= self.total {
            let _ = s.close(h);
            self.conn = None;
            self.done.store(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn shardnet_client_against_a_linux_echo_server() {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ns = Namespaces::up();
    let _server = KernelServer::start(NS_KERNEL, KERNEL_IP, 9000);
    let port = open_port(AttachMode::Auto).unwrap_or_else(|e| panic!("opening the port: {e}"));
    let done = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let total = 100 << 20;
    let app = Client {
        total,
        conn: None,
        sent: 0,
        received: 0,
        done: done.clone(),
        bad: bad.clone(),
        events: Vec::new(),
    };
    let runtime: Runtime<AfXdpPort, Client> = Runtime::start(
        runtime_config(&port, idle_policy(AttachMode::Generic)),
        vec![(port, app)],
    )
    .expect("start the runtime");
    let start = Instant::now();
    let deadline = start + std::time::Duration::from_secs(60);
    while done.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    let mut exits = runtime.stop().expect("stop the runtime");
    let exit = exits.pop().expect("one shard");
    assert_eq!(
        done.load(Ordering::Relaxed),
        1,
        "the transfer did not finish in 60 s"
    );
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "echo mismatch or connection error"
    );
    assert_eq!(exit.app.received, total);
    assert_eq!(exit.stats.tcp.active_opens, 1);
    println!(
        "shardnet client: {} MiB echoed by the Linux server in {secs:.2} s ({:.1} MiB/s)",
        total >> 20,
        (total >> 20) as f64 / secs
    );
}

#[test]
fn clear_errors_for_missing_interface_and_bad_queue() {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ns = Namespaces::up();
    let config = AfXdpConfig::new("snet-missing0", SHARDNET_IP);
    match AfXdpPort::open(&config) {
        Err(e @ Error::InterfaceNotFound { .. }) => {
            assert!(e.to_string().contains("not found"), "{e}")
        }
        other => panic!("expected InterfaceNotFound, got {other:?}"),
    }
    let r = std::thread::spawn(|| {
        let ns = std::fs::File::open(format!("/run/netns/{NS_SHARDNET}")).expect("namespace");
        // SAFETY: setns on this short-lived thread with a valid namespace fd.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(r, 0);
        let mut config = AfXdpConfig::new(DEV_SHARDNET, SHARDNET_IP);
        config.queue = 3;
        let bad_queue = AfXdpPort::open(&config).map(|_| ());
        // A second program on an interface that has one: EBUSY, reported as such.
        config.queue = 0;
        config.mode = AttachMode::Generic;
        let first = AfXdpPort::open(&config).expect("first port");
        let second = AfXdpPort::open(&config).map(|_| ());
        drop(first);
        // Once the first is gone (its link closed), the interface is free again.
        let third = AfXdpPort::open(&config).map(|_| ());
        (bad_queue, second, third)
    })
    .join()
    .expect("thread");
    match r.0 {
        Err(Error::QueueOutOfRange {
            queue: 3,
            queue_count: 1,
            ..
        }) => {}
        other => panic!("expected QueueOutOfRange, got {other:?}"),
    }
    match r.1 {
        Err(e @ Error::Busy { .. }) => assert!(e.to_string().contains("xdp off"), "{e}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(
        r.2.is_ok(),
        "reopening after the first port closed: {:?}",
        r.2
    );
}

#[test]
fn frames_round_trip_through_the_pool() {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ns = Namespaces::up();
    let mut port = open_port(AttachMode::Generic).expect("open");
    let total = port.pool_stats().total;
    assert_eq!(port.pool_stats().free, total);
    // Exhaust the transmit side, give everything back, and check nothing leaked.
    let mut held = Vec::new();
    while let Some(mut f) = port.alloc_tx() {
        assert_eq!(f.capacity(), 2048);
        f.buffer_mut()[..4].copy_from_slice(&[1, 2, 3, 4]);
        f.set_len(4);
        assert_eq!(f.data(), &[1, 2, 3, 4]);
        held.push(f);
    }
    assert!(
        !held.is_empty() && held.len() < total,
        "the fill ring keeps some"
    );
    assert_eq!(port.pool_stats().free, total - held.len());
    for f in held {
        port.release(f);
    }
    assert_eq!(port.pool_stats().free, total);
    assert_eq!(port.counters().alloc_failures, 1);
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Clears capabilities `caps` from the calling thread's effective set (capabilities are per
/// thread on Linux, so the rest of the process keeps them).
fn drop_effective_caps(caps: &[u32]) {
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two `__user_cap_data_struct`s for version 3 into `data`.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(r, 0, "capget: {}", std::io::Error::last_os_error());
    for &c in caps {
        data[(c / 32) as usize].effective &= !(1 << (c % 32));
    }
    // SAFETY: capset reads the header and two data structs; pid 0 is the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn missing_privileges_are_reported_as_such() {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ns = Namespaces::up();
    let r = std::thread::spawn(|| {
        let ns = std::fs::File::open(format!("/run/netns/{NS_SHARDNET}")).expect("namespace");
        // SAFETY: setns on this short-lived thread with a valid namespace fd.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(r, 0);
        // CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39.
        drop_effective_caps(&[12, 13, 21, 38, 39]);
        AfXdpPort::open(&AfXdpConfig::new(DEV_SHARDNET, SHARDNET_IP)).map(|_| ())
    })
    .join()
    .expect("thread");
    match r {
        Err(e @ Error::PermissionDenied { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("CAP_NET_ADMIN") && msg.contains("CAP_BPF"),
                "{msg}"
            );
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[test]
fn two_queues_share_one_program_and_keep_their_frames_apart() {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ns = Namespaces::up();
    // A second veth pair with two queues on each end, between the same namespaces (deleted
    // with them).
    let add = run(&[
        "ip",
        "-n",
        NS_SHARDNET,
        "link",
        "add",
        "snet-s1",
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        "snet-k1",
        "netns",
        NS_KERNEL,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
    ]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    for (ns, dev) in [(NS_SHARDNET, "snet-s1"), (NS_KERNEL, "snet-k1")] {
        assert!(
            run(&["ip", "-n", ns, "link", "set", dev, "up"])
                .status
                .success()
        );
    }
    let ports = std::thread::spawn(|| {
        let ns = std::fs::File::open(format!("/run/netns/{NS_SHARDNET}")).expect("namespace");
        // SAFETY: setns on this short-lived thread with a valid namespace fd.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(r, 0);
        let mut config = AfXdpConfig::new("snet-s1", SHARDNET_IP);
        config.mode = AttachMode::Native;
        config.frame_count = 256;
        config.ring_size = 128;
        AfXdpPort::open_queues(&config, &[0, 1])
    })
    .join()
    .expect("thread")
    .unwrap_or_else(|e| panic!("opening two queues: {e}"));
    let [mut p0, mut p1]: [AfXdpPort; 2] = ports.try_into().expect("two ports");
    for (q, p) in [(0, &p0), (1, &p1)] {
        let caps = p.capabilities();
        assert_eq!((caps.queue, caps.queue_count), (q, 2));
        assert_eq!(p.attach_info().mode, AttachMode::Native);
        assert_eq!(p.pool_stats().total, 256);
    }
    // A frame of queue 0's UMEM given to queue 1 is refused (counted), not recycled there.
    let f = p0.alloc_tx().expect("a frame");
    assert_eq!(p0.pool_stats().free, 255);
    p1.release(f);
    assert_eq!(p1.counters().foreign_frames, 1);
    assert_eq!(p1.pool_stats().free, 256);
    let f = p0.alloc_tx().expect("a frame");
    let mut batch = shardnet::port::Batch::new();
    batch.push(f);
    assert_eq!(p1.tx_burst(&mut batch), 0);
    assert!(batch.is_empty());
    assert_eq!(p1.counters().foreign_frames, 2);
    assert_eq!(p1.counters().tx_frames, 0);
    // Queue 0's own frames still come back to it.
    let f = p0.alloc_tx().expect("a frame");
    p0.release(f);
    assert_eq!(p0.pool_stats().free, 254);
}
