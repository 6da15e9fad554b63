//! shardnet on DPDK against the Linux kernel stack, over a veth pair between two network
//! namespaces this test creates (the AF_XDP tests' harness, `../af-xdp/tests/support`, with
//! its file lock): shardnet drives its veth end through `net_af_xdp` or `net_af_packet`, the
//! kernel is the peer at the other end. For each of the two PMDs:
//!
//! - the kernel pings shardnet (ARP resolved by shardnet's answer, read back from the
//!   kernel's neighbour table), and a python3 client echoes 100 KB;
//! - 100 MiB each way through shardnet's echo server from a python3 client, SHA-256 of what was
//!   sent and what came back compared by the client;
//! - 3000 short connections from python3 to shardnet's echo (the kernel closes first and holds
//!   the TIME-WAITs, shardnet none);
//! - shardnet as the client against a python3 echo server: 100 MiB each way on one connection
//!   (every byte checked against the pattern, CRC-32 of both directions compared), then 3000
//!   short connections (shardnet closes first and holds the TIME-WAITs, the kernel none).
//!
//! Namespaces `snet-dk` (kernel, 198.18.0.1/24, veth `snet-dk0`) and `snet-ds` (veth `snet-ds0`,
//! shardnet is 198.18.0.2), deleted by a drop guard also on failure. The EAL starts once for
//! the binary in the test's own namespace; each device is created and opened by a thread
//! inside `snet-ds` (both PMDs find their interface by name in the calling thread's
//! namespace, and `net_af_xdp` binds its XDP socket there); the shard threads use the device
//! through its file descriptors from anywhere.
//!
//! Needs root, `ip`, `ethtool`, `ping`, `ss`, `python3`; as another user each test prints why
//! and returns. Every external command runs under `timeout`, every wait has a deadline.

mod common;
#[path = "../../af-xdp/tests/support/mod.rs"]
mod support;

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::Port;
use shardnet::runtime::{App, AppContext, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::{
    Event, Readiness, RecvError, SendError, SocketHandle, SocketOptions, StateHistogram,
};
use shardnet::tcp::State;
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use shardnet_dpdk::{DpdkDevice, DpdkPort, PortConfig, create_vdev};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use support::{Names, TestNet, is_root, run, run_ok};

const NS_KERNEL: &str = "snet-dk";
const NS_SHARDNET: &str = "snet-ds";
const DEV_SHARDNET: &str = "snet-ds0";
const KERNEL_IP: &str = "198.18.0.1";
const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SHARDNET_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const ECHO_PORT: u16 = 7;
const KERNEL_ECHO_PORT: u16 = 9000;
/// Bytes each way in the bulk transfers.
const BULK: usize = 100 << 20;
/// Connections in each churn run.
const CHURN: usize = 3000;

static SERIAL: Mutex<()> = Mutex::new(());

const NET: Names = Names {
    kernel_ns: NS_KERNEL,
    shardnet_ns: NS_SHARDNET,
    kernel_dev: "snet-dk0",
    shardnet_dev: DEV_SHARDNET,
    kernel_cidr: "198.18.0.1/24",
};

/// Byte `i` of every stream: `i mod 251`.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// The python version of [`pattern`], prepended to every script.
const PY_PATTERN: &str = r#"
BLOCK = bytes(range(251)) * 262
def pattern(start, n):
    out = bytearray()
    while n:
        o = start % 251
        k = min(n, len(BLOCK) - o)
        out += BLOCK[o:o + k]
        start += k
        n -= k
    return bytes(out)
"#;

/// One connection sending `size` bytes of the pattern from a thread while the main thread
/// reads the echo; SHA-256 of both directions compared. Prints "ok <seconds> <sha256>".
const BULK_CLIENT: &str = r#"
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

/// `n` short connections one after the other: connect, send 32 bytes, read the echo, close
/// first. Prints "ok <seconds>".
const CHURN_CLIENT: &str = r#"
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

/// A threaded kernel echo server; prints "ready", serves until killed.
const ECHO_SERVER: &str = r#"
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

/// Runs a python script in the kernel's namespace, bounded to `secs`; returns its stdout,
/// failing the test if it failed.
fn python_ok(secs: u32, script: &str, args: &[&str]) -> String {
    python(secs, script, args).unwrap_or_else(|why| panic!("{why}"))
}

/// Runs a python script in the kernel's namespace, bounded to `secs`; returns its stdout, or
/// what it printed if it failed.
fn python(secs: u32, script: &str, args: &[&str]) -> Result<String, String> {
    let secs = secs.to_string();
    let script = format!("{PY_PATTERN}\n{script}");
    let mut argv = vec![
        "timeout", &secs, "ip", "netns", "exec", NS_KERNEL, "python3", "-c", &script,
    ];
    argv.extend_from_slice(args);
    let out = run(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "python {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The seconds a script printed after "ok".
fn seconds(out: &str) -> f64 {
    out.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no time in {out:?}"))
}

/// The kernel's python echo server, stopped by PID (SIGTERM to our `timeout` child) on drop.
struct KernelServer(std::process::Child);

impl KernelServer {
    fn start() -> KernelServer {
        use std::io::BufRead;
        let script = format!("{PY_PATTERN}\n{ECHO_SERVER}");
        let port = KERNEL_ECHO_PORT.to_string();
        let mut child = Command::new("timeout")
            .args(["300", "ip", "netns", "exec", NS_KERNEL, "python3", "-c"])
            .args([script.as_str(), KERNEL_IP, port.as_str()])
            .stdout(Stdio::piped())
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
        if let Ok(None) = self.0.try_wait()
            && let Ok(pid) = libc::pid_t::try_from(self.0.id())
        {
            // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

/// TIME-WAIT sockets in the kernel's namespace matching the `ss` filter `filter`.
fn kernel_time_wait(filter: &str) -> usize {
    let out = run(&[
        "timeout",
        "30",
        "ip",
        "netns",
        "exec",
        NS_KERNEL,
        "ss",
        "-Htan",
        "state",
        "time-wait",
        filter,
    ]);
    assert!(out.status.success(), "ss failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Creates `vdev` with `args` and opens it with one queue, from a thread inside shardnet's
/// namespace.
fn open_in_namespace(vdev: &'static str, args: String) -> (DpdkDevice, DpdkPort) {
    let eal = common::eal();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/run/netns/{NS_SHARDNET}"))
            .expect("the shardnet namespace exists");
        // SAFETY: setns on this thread only, with a valid namespace fd; the thread ends after
        // opening the device.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let port_id =
            create_vdev(eal, vdev, &args).unwrap_or_else(|e| panic!("{vdev},{args}: {e}"));
        let (device, mut ports) =
            DpdkDevice::open(eal, port_id, &PortConfig::default()).expect("open the device");
        let port = ports.pop().expect("one queue");
        (device, port)
    })
    .join()
    .expect("the device thread panicked")
}

fn runtime_config(port: &DpdkPort) -> RuntimeConfig {
    let caps = port.capabilities();
    let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac: caps.mac,
        cidr: Ipv4Cidr::new(SHARDNET_IP, 24).expect("a valid prefix"),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    }));
    // The DPDK port has no rx waker: sleeps are capped at `no_waker_sleep`.
    c.idle = IdlePolicy::Sleep {
        max: Duration::from_millis(100),
    };
    c.no_waker_sleep = Duration::from_micros(200);
    c.pinning = Pinning::None;
    c.grace = Duration::from_secs(2);
    c
}

/// The shard's TCP state histogram, read on its own thread.
fn histogram<A: App + Send + 'static>(runtime: &Runtime<DpdkPort, A>) -> StateHistogram {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime
        .run_on(0, move |shard, now| {
            let _ = tx.send(shard.sockets(now).state_histogram());
        })
        .expect("run on the shard");
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the shard answers")
}

// ----- shardnet's echo server -----

/// What the echo server saw.
#[derive(Default, Debug)]
struct EchoStats {
    accepted: AtomicU64,
    echoed: AtomicU64,
    errors: AtomicU64,
}

struct EchoConn {
    pending: Vec<u8>,
    sent: usize,
    eof: bool,
}

/// Echoes every connection accepted on the runtime's listeners, closing after the peer's FIN.
#[derive(Default)]
struct EchoServer {
    conns: HashMap<SocketHandle, EchoConn>,
    events: Vec<Event>,
    buf: Vec<u8>,
    stats: Arc<EchoStats>,
}

impl EchoServer {
    /// Moves a connection forward; true when it is finished (to be closed).
    fn drive(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) -> bool {
        let Some(c) = self.conns.get_mut(&h) else {
            return false;
        };
        loop {
            while c.sent < c.pending.len() {
                match s.send(h, &c.pending[c.sent..]) {
                    Ok(n) => {
                        c.sent += n;
                        self.stats.echoed.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(SendError::WouldBlock) => return false,
                    Err(_) => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
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
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
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
        let mut s = ctx.sockets();
        self.events.clear();
        s.poll_events(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for e in &events {
            let mut ready = Vec::new();
            if listeners.contains(&e.socket) {
                while let Ok((h, _)) = s.accept(e.socket) {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    self.conns.insert(
                        h,
                        EchoConn {
                            pending: Vec::new(),
                            sent: 0,
                            eof: false,
                        },
                    );
                    ready.push(h);
                }
            } else if e.readiness.contains(Readiness::ERROR) && self.conns.contains_key(&e.socket) {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.conns.remove(&e.socket);
                let _ = s.close(e.socket);
            } else {
                ready.push(e.socket);
            }
            for h in ready {
                if self.drive(&mut s, h) {
                    self.conns.remove(&h);
                    let _ = s.close(h);
                }
            }
        }
        self.events = events;
    }
}

// ----- shardnet's client -----

/// What a shardnet client does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ClientMode {
    /// `total` connections, up to 16 at a time, each sending 32 bytes, reading the echo and
    /// closing first.
    Churn,
    /// One connection sending `total` bytes while reading the echo, then closing.
    Bulk,
}

struct ClientConn {
    sent: usize,
    received: usize,
    seq: usize,
}

/// What a shardnet client saw.
#[derive(Default, Debug)]
struct ClientStats {
    started: usize,
    done: usize,
    bad: usize,
    received: usize,
    /// CRC-32 of everything sent and of everything received (bulk).
    sent_crc: u32,
    received_crc: u32,
}

struct Client {
    mode: ClientMode,
    total: usize,
    conns: HashMap<SocketHandle, ClientConn>,
    events: Vec<Event>,
    sent_crc: crc32fast::Hasher,
    received_crc: crc32fast::Hasher,
    stats: Arc<Mutex<ClientStats>>,
    finished: Arc<AtomicU64>,
}

impl Client {
    fn new(mode: ClientMode, total: usize) -> Client {
        Client {
            mode,
            total,
            conns: HashMap::new(),
            events: Vec::new(),
            sent_crc: crc32fast::Hasher::new(),
            received_crc: crc32fast::Hasher::new(),
            stats: Arc::default(),
            finished: Arc::default(),
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, ClientStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves a connection forward; true when it is finished (to be closed).
    fn drive(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) -> bool {
        let Some(c) = self.conns.get_mut(&h) else {
            return false;
        };
        if !s.is_connected(h) {
            if s.socket_error(h).is_some() {
                self.stats.lock().unwrap_or_else(|e| e.into_inner()).bad += 1;
                return true;
            }
            return false;
        }
        let size = match self.mode {
            ClientMode::Churn => 32,
            ClientMode::Bulk => self.total,
        };
        let base = c.seq;
        let mut progress = true;
        while progress {
            progress = false;
            while c.sent < size {
                let at = c.sent;
                let sent_crc = &mut self.sent_crc;
                match s.send_with(h, (size - at).min(64 * 1024), |buf| {
                    for (k, b) in buf.iter_mut().enumerate() {
                        *b = pattern(base + at + k);
                    }
                    sent_crc.update(buf);
                    buf.len()
                }) {
                    Ok(n) if n > 0 => {
                        c.sent += n;
                        progress = true;
                    }
                    _ => break,
                }
            }
            loop {
                let at = c.received;
                let mut wrong = false;
                let received_crc = &mut self.received_crc;
                match s.recv_with(h, |bytes| {
                    wrong = bytes
                        .iter()
                        .enumerate()
                        .any(|(k, &b)| b != pattern(base + at + k));
                    received_crc.update(bytes);
                    bytes.len()
                }) {
                    Ok(0) => {
                        // The server closed before echoing everything.
                        self.stats.lock().unwrap_or_else(|e| e.into_inner()).bad += 1;
                        return true;
                    }
                    Ok(n) => {
                        c.received += n;
                        progress = true;
                        if wrong {
                            self.stats.lock().unwrap_or_else(|e| e.into_inner()).bad += 1;
                        }
                    }
                    Err(RecvError::WouldBlock) => break,
                    Err(_) => {
                        self.stats.lock().unwrap_or_else(|e| e.into_inner()).bad += 1;
                        return true;
                    }
                }
            }
        }
        if c.received >= size {
            let received = c.received;
            let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            st.done += 1;
            st.received += received;
            return true;
        }
        false
    }
}

impl App for Client {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        let limit = match self.mode {
            ClientMode::Churn => 16,
            ClientMode::Bulk => 1,
        };
        let total_conns = match self.mode {
            ClientMode::Churn => self.total,
            ClientMode::Bulk => 1,
        };
        let server = SocketAddrV4::new(KERNEL_ADDR, KERNEL_ECHO_PORT);
        let mut started = self.stats().started;
        while self.conns.len() < limit && started < total_conns {
            match s.connect(server, &SocketOptions::default()) {
                Ok(h) => {
                    let seq = if self.mode == ClientMode::Churn {
                        started
                    } else {
                        0
                    };
                    self.conns.insert(
                        h,
                        ClientConn {
                            sent: 0,
                            received: 0,
                            seq,
                        },
                    );
                    started += 1;
                }
                Err(_) => {
                    self.stats().bad += 1;
                    break;
                }
            }
        }
        self.stats().started = started;
        self.events.clear();
        s.poll_events(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for e in &events {
            if self.drive(&mut s, e.socket) {
                self.conns.remove(&e.socket);
                let _ = s.close(e.socket);
            }
        }
        self.events = events;
        if self.conns.is_empty() && started >= total_conns {
            let (sent, received) = (self.sent_crc.clone(), self.received_crc.clone());
            let mut st = self.stats();
            st.sent_crc = sent.finalize();
            st.received_crc = received.finalize();
            drop(st);
            self.finished.store(1, Ordering::Release);
        }
    }
}

/// Runs a shardnet client on `port` until it finishes (at most `secs`); returns its stats,
/// the shard's state histogram then, the port and the seconds it took.
fn run_client(
    port: DpdkPort,
    client: Client,
    secs: u64,
) -> (ClientStats, StateHistogram, DpdkPort, f64) {
    let stats = client.stats.clone();
    let finished = client.finished.clone();
    let runtime =
        Runtime::start(runtime_config(&port), vec![(port, client)]).expect("start the runtime");
    let start = Instant::now();
    let deadline = start + std::time::Duration::from_secs(secs);
    while finished.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the last ACKs and FINs cross before reading the states.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hist = histogram(&runtime);
    let exit = runtime
        .stop()
        .expect("stop the runtime")
        .pop()
        .expect("one shard");
    let st = std::mem::take(&mut *stats.lock().unwrap_or_else(|e| e.into_inner()));
    assert_eq!(
        finished.load(Ordering::Acquire),
        1,
        "the client did not finish in {secs} s: {st:?}"
    );
    (st, hist, exit.port, elapsed)
}

// ----- the scenario -----

/// Everything in the module doc against shardnet on `vdev` (created with `args`).
fn shardnet_on_dpdk_against_the_kernel(vdev: &'static str, args: String, bulk: usize) {
    if !is_root() {
        eprintln!("skipping: network namespaces and {vdev} need root (euid is not 0)");
        return;
    }
    common::eal();
    let _net = TestNet::up(&SERIAL, NET, &[]);
    let (device, port) = open_in_namespace(vdev, args);
    let mac = port.capabilities().mac;
    let free_at_start = port.pool_stats().free;
    // No RX interrupts on these PMDs: the port has no rx waker (see
    // `DpdkDevice::rx_interrupts_supported`).
    assert_eq!(device.rx_interrupts_supported(0), Ok(false), "{vdev}");
    eprintln!(
        "{vdev}: driver {}, {mac}, link {:?}, pool {:?}",
        device.driver_name(),
        device.link(),
        port.pool_stats()
    );

    // shardnet serves.
    let echo = EchoServer::default();
    let stats = echo.stats.clone();
    let runtime =
        Runtime::start(runtime_config(&port), vec![(port, echo)]).expect("start the runtime");
    runtime.listen(ECHO_PORT, 512).expect("listen");
    let shardnet_ip = SHARDNET_IP.to_string();
    let echo_port = ECHO_PORT.to_string();

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
        &shardnet_ip,
    ]);
    let ping_out = String::from_utf8_lossy(&ping.stdout).into_owned();
    assert!(
        ping.status.success() && ping_out.contains(" 5 received"),
        "ping: {ping_out}"
    );
    // ARP: the kernel learnt shardnet's address from shardnet's reply.
    let neigh = run_ok(&[
        "timeout",
        "30",
        "ip",
        "-n",
        NS_KERNEL,
        "neigh",
        "show",
        &shardnet_ip,
    ]);
    assert!(
        neigh.contains(&mac.to_string().to_lowercase()),
        "the kernel's neighbour entry for shardnet: {neigh:?}, shardnet's MAC {mac}"
    );
    let small = python_ok(30, BULK_CLIENT, &[&shardnet_ip, &echo_port, "100000"]);
    assert!(small.starts_with("ok "), "{small}");

    let bulk_out = python(
        300,
        BULK_CLIENT,
        &[&shardnet_ip, &echo_port, &bulk.to_string()],
    );
    let bulk_out = match bulk_out {
        Ok(out) => out,
        Err(why) => {
            // What the port and the device saw, before failing.
            let exit = runtime.stop().expect("stop").pop().expect("one shard");
            panic!(
                "{vdev}: {why}\nport {:?}, pool {:?} (free at start {free_at_start}), device {:?}, \
                 shard {:?}",
                exit.port.counters(),
                exit.port.pool_stats(),
                device.stats(),
                exit.runtime
            );
        }
    };
    let bulk_secs = seconds(&bulk_out);
    let churn = python_ok(
        120,
        CHURN_CLIENT,
        &[&shardnet_ip, &echo_port, &CHURN.to_string()],
    );
    let churn_secs = seconds(&churn);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hist = histogram(&runtime);
    let kernel_tw = kernel_time_wait("dport = :7");
    eprintln!(
        "{vdev}: {}; Linux client -> shardnet echo: {} MiB each way in {bulk_secs:.2} s \
         ({:.1} MiB/s each way, sha256 {}); {CHURN} connections in {churn_secs:.2} s ({:.0}/s), \
         TIME-WAIT: kernel {kernel_tw}, shardnet {}",
        ping_out
            .lines()
            .find(|l| l.contains("rtt"))
            .unwrap_or_default(),
        bulk >> 20,
        (bulk >> 20) as f64 / bulk_secs,
        bulk_out.split_whitespace().nth(2).unwrap_or_default(),
        CHURN as f64 / churn_secs,
        hist.get(State::TimeWait)
    );
    let exit = runtime
        .stop()
        .expect("stop the runtime")
        .pop()
        .expect("one shard");
    assert_eq!(stats.accepted.load(Ordering::Relaxed), 2 + CHURN as u64);
    assert_eq!(
        stats.echoed.load(Ordering::Relaxed),
        100_000 + bulk as u64 + 32 * CHURN as u64
    );
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
    assert_eq!(hist.get(State::TimeWait), 0, "shardnet closed second");
    assert!(
        kernel_tw >= CHURN * 95 / 100,
        "the kernel closed first: ~{CHURN} TIME-WAITs expected, {kernel_tw} found"
    );
    assert!(
        exit.stats.arp.rx_requests > 0 && exit.stats.arp.tx_replies > 0,
        "shardnet answered the kernel's ARP requests: {:?}",
        exit.stats.arp
    );
    let port = exit.port;

    // shardnet connects.
    let server = KernelServer::start();
    let (st, _, port, secs) = run_client(port, Client::new(ClientMode::Bulk, bulk), 300);
    eprintln!(
        "{vdev}: shardnet client -> Linux echo: {} MiB each way in {secs:.2} s ({:.1} MiB/s \
         each way), CRC-32 sent {:08x} received {:08x}",
        bulk >> 20,
        (bulk >> 20) as f64 / secs,
        st.sent_crc,
        st.received_crc
    );
    assert_eq!((st.done, st.bad, st.received), (1, 0, bulk), "{st:?}");
    assert_eq!(st.sent_crc, st.received_crc);
    let (st, hist, port, secs) = run_client(port, Client::new(ClientMode::Churn, CHURN), 120);
    let kernel_tw = kernel_time_wait("sport = :9000");
    eprintln!(
        "{vdev}: shardnet client -> Linux echo: {CHURN} connections in {secs:.2} s ({:.0}/s), \
         TIME-WAIT: shardnet {}, kernel {kernel_tw}",
        CHURN as f64 / secs,
        hist.get(State::TimeWait)
    );
    drop(server);
    assert_eq!((st.done, st.bad), (CHURN, 0), "{st:?}");
    assert_eq!(hist.get(State::TimeWait), CHURN, "shardnet closed first");
    assert_eq!(kernel_tw, 0, "the kernel server closed second");

    let device_stats = device.stats().expect("device counters");
    eprintln!(
        "{vdev}: device {device_stats:?}; port {:?}; pool {:?} (free at start {free_at_start})",
        port.counters(),
        port.pool_stats()
    );
    assert_eq!(port.counters().rx_multi_segment, 0);
    if vdev.starts_with("net_af_packet") {
        // af_packet copies into mbufs of the pool: every one is home again.
        assert_eq!(port.pool_stats().free, free_at_start, "an mbuf leaked");
    }
    drop(port);
    drop(device);
}

/// `net_af_xdp` on queue 0 of the veth (one queue each way). The PMD puts 2048 mbufs of the
/// pool in the fill ring when the queue is set up (`ETH_AF_XDP_DFLT_NUM_DESCS`) and refills it
/// from the same pool, so the pool must be well above 2048: `PortConfig`'s default of 8191
/// leaves the stack 6143. The UMEM is the pool's memory (which must be one dense array of
/// mbufs: see `Mempool::new`); as root (CAP_IPC_LOCK) it is not charged to RLIMIT_MEMLOCK.
fn af_xdp_args() -> String {
    format!("iface={DEV_SHARDNET},start_queue=0,queue_count=1")
}

#[test]
fn kernel_peer_over_net_af_xdp_ping_arp_echo_100_mib_each_way_and_churn() {
    shardnet_on_dpdk_against_the_kernel("net_af_xdp0", af_xdp_args(), BULK);
}

#[test]
fn kernel_peer_over_net_af_packet_ping_arp_echo_100_mib_each_way_and_churn() {
    shardnet_on_dpdk_against_the_kernel(
        "net_af_packet0",
        format!("iface={DEV_SHARDNET},qpairs=1,blocksz=4096,framesz=2048,framecnt=512"),
        BULK,
    );
}
