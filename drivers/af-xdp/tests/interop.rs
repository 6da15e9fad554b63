//! TCP interop with the Linux kernel stack beyond the basics of `kernel_peer.rs`: half-close in
//! both directions, resets in both directions, connection churn and TIME-WAIT placement, the
//! options of both handshakes read back from a pcap, transfers under seeded loss, and kernel
//! traffic on the same veth while shardnet's XDP program is attached.
//!
//! shardnet runs on an AF_XDP port (each scenario in generic and in native XDP) at one end of a
//! veth pair; the kernel peer (`python3`) is at the other end. The namespaces are this binary's own, `snet-ik` (kernel,
//! 198.18.0.1/24, veth `snet-ik0`) and `snet-is` (shardnet's veth `snet-is0`, shardnet is
//! 198.18.0.2): they do not collide with `kernel_peer.rs`'s `snet-k`/`snet-s`, and a file lock
//! (plus a mutex within the process) runs one test at a time, also across processes. The test
//! creates them and a drop guard deletes them, also on failure.
//!
//! Needs root; as another user every test prints why and returns. Needs `ip`, `ethtool`,
//! `ping` and `python3` (`scripts/netns.sh install`). Every external command runs under
//! `timeout`, every wait has a deadline, and only 198.18.0.0/15 addresses inside the test's own
//! namespaces are used.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::Port;
use shardnet::runtime::{App, AppContext, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::{
    Event, Readiness, RecvError, SendError, Shutdown, SockOpt, SocketError, SocketHandle,
    SocketOptions, StateHistogram,
};
use shardnet::tcp::State;
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode, Error};
use shardnet_memory::{Impaired, ImpairedConfig, Impairments};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const NS_KERNEL: &str = "snet-ik";
const NS_SHARDNET: &str = "snet-is";
const DEV_KERNEL: &str = "snet-ik0";
const DEV_SHARDNET: &str = "snet-is0";
const KERNEL_IP: &str = "198.18.0.1";
const KERNEL_CIDR: &str = "198.18.0.1/24";
const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SHARDNET_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// A kernel address on shardnet's veth end, for kernel-to-kernel traffic beside shardnet.
const SIDE_IP: &str = "198.18.0.3";

/// shardnet's echo server.
const ECHO_PORT: u16 = 7;
/// shardnet's half-close server: reads to EOF, then sends [`HALF_OUT`] bytes, then closes.
const HALF_PORT: u16 = 8;
/// shardnet's abort server: reads the first bytes, then closes with `SO_LINGER` 0.
const ABORT_PORT: u16 = 9;
/// Kernel servers.
const KERNEL_ECHO_PORT: u16 = 9000;
const KERNEL_HALF_PORT: u16 = 9001;
/// The kernel's `socat` echo server.
const KERNEL_SOCAT_PORT: u16 = 9002;
/// Connections in the churn against `socat` (one process per connection: fewer than [`CHURN`]).
const SOCAT_CHURN: usize = 500;

/// Bytes each side sends after the peer's FIN in the half-close tests.
const HALF_OUT: usize = 1 << 20;
/// Bytes sent before the half-close.
const HALF_IN: usize = 100_000;
/// Connections in each churn test.
const CHURN: usize = 3000;

static SERIAL: Mutex<()> = Mutex::new(());

mod support;
use support::{Names, TestNet, is_root, run, run_ok};

/// This binary's test hosts (see `support`).
const NET: Names = Names {
    kernel_ns: NS_KERNEL,
    shardnet_ns: NS_SHARDNET,
    kernel_dev: DEV_KERNEL,
    shardnet_dev: DEV_SHARDNET,
    kernel_cidr: KERNEL_CIDR,
};

/// Brings this binary's test hosts up (one test at a time).
fn up() -> TestNet {
    TestNet::up(&SERIAL, NET, &[])
}

/// Byte `i` of every stream these tests send: `i mod 251` (a prime, so it never lines up
/// with segment or buffer sizes).
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// The python version of [`pattern`], shared by the scripts.
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

/// Runs `python3 -c script args...` in namespace `ns`, bounded to `secs` seconds, and returns
/// its stdout, failing the test if it failed.
fn python_ok(ns: &str, secs: u32, script: &str, args: &[&str]) -> String {
    let secs = secs.to_string();
    let script = format!("{PY_PATTERN}\n{script}");
    let mut argv = vec![
        "timeout", &secs, "ip", "netns", "exec", ns, "python3", "-c", &script,
    ];
    argv.extend_from_slice(args);
    let out = run(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python in {ns} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A python server in a namespace: started with a script that prints "ready" once
/// listening; killed (our child, by PID) when dropped.
struct KernelServer(std::process::Child);

impl KernelServer {
    fn start(ns: &str, script: &str, args: &[&str]) -> KernelServer {
        use std::io::BufRead;
        let script = format!("{PY_PATTERN}\n{script}");
        let mut child = Command::new("timeout")
            .args(["300", "ip", "netns", "exec", ns, "python3", "-c", &script])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a kernel server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = std::io::BufReader::new(stdout);
        reader
            .read_line(&mut line)
            .expect("read the server's ready line");
        assert_eq!(line.trim(), "ready", "the kernel server did not start");
        // Keep reading its output in the background, so that it never blocks on a full pipe.
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut l = String::new();
            while reader.read_line(&mut l).is_ok_and(|n| n > 0) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&l);
                l.clear();
            }
        });
        SERVER_OUTPUT.with(|o| *o.borrow_mut() = Some(out));
        KernelServer(child)
    }

    /// Waits (up to `secs`) for the server to exit by itself and returns what it printed
    /// after "ready".
    fn finish(mut self, secs: u64) -> String {
        let deadline = Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                assert!(status.success(), "the kernel server failed: {status}");
                break;
            }
            if Instant::now() >= deadline {
                let ss = run(&[
                    "timeout", "10", "ip", "netns", "exec", NS_KERNEL, "ss", "-tanoi",
                ]);
                panic!(
                    "the kernel server did not finish; its sockets:\n{}",
                    String::from_utf8_lossy(&ss.stdout)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Let the reader thread drain the pipe.
        std::thread::sleep(std::time::Duration::from_millis(50));
        SERVER_OUTPUT.with(|o| {
            o.borrow()
                .as_ref()
                .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .unwrap_or_default()
        })
    }
}

thread_local! {
    static SERVER_OUTPUT: std::cell::RefCell<Option<Arc<Mutex<String>>>> =
        const { std::cell::RefCell::new(None) };
}

impl Drop for KernelServer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait()
            && let Ok(pid) = libc::pid_t::try_from(self.0.id())
        {
            // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped child
            // (`timeout`, which passes SIGTERM on to python).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

/// Opens the AF_XDP port, attached in `mode` (generic or native XDP), from a thread inside
/// shardnet's namespace.
fn open_port(mode: AttachMode) -> AfXdpPort {
    let port = std::thread::spawn(move || -> Result<AfXdpPort, Error> {
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
    .unwrap_or_else(|e| panic!("opening the AF_XDP port: {e}"));
    assert_eq!(port.attach_info().mode, mode, "attached as asked");
    port
}

fn runtime_config<P: Port>(port: &P, idle: IdlePolicy) -> RuntimeConfig {
    let caps = port.capabilities();
    let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac: caps.mac,
        cidr: Ipv4Cidr::new(SHARDNET_IP, 24).expect("a valid prefix"),
        gateway: None,
        mtu: caps.mtu,
        ttl: 64,
    }));
    c.idle = idle;
    c.no_waker_sleep = Duration::from_millis(1);
    c.pinning = Pinning::None;
    c.grace = Duration::from_secs(2);
    c
}

fn sleepy() -> IdlePolicy {
    IdlePolicy::Sleep {
        max: Duration::from_millis(100),
    }
}

/// The shard's TCP state histogram, read on its own thread.
fn histogram<P: Port + Send + 'static, A: App + Send + 'static>(
    runtime: &Runtime<P, A>,
) -> StateHistogram {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime
        .run_on(0, move |shard, now| {
            let _ = tx.send(shard.sockets(now).state_histogram());
        })
        .expect("run on the shard");
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the shard answers")
}

/// TIME-WAIT sockets in a namespace's kernel.
fn kernel_time_wait(ns: &str) -> usize {
    let out = run(&[
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
    ]);
    assert!(out.status.success(), "ss failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

// ----- shardnet's servers -----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Echo,
    HalfClose,
    Abort,
}

struct Conn {
    role: Role,
    pending: Vec<u8>,
    sent: usize,
    received: usize,
    eof: bool,
    out_sent: usize,
}

/// What shardnet's servers saw, shared with the test thread.
#[derive(Default, Debug)]
struct ServerStats {
    accepted: u64,
    echoed: u64,
    /// Connections that failed with ECONNRESET (seen on an error event or on recv).
    resets: u64,
    /// Other connection errors.
    errors: u64,
    /// Half-close connections: bytes read before EOF, whether they were all `pattern`,
    /// the TCP state when EOF was read, and bytes sent after it.
    half_in: usize,
    half_bad: bool,
    half_state_at_eof: Option<State>,
    half_sent_after_eof: usize,
    half_done: u64,
    aborted: u64,
}

/// Echo on [`ECHO_PORT`], half-close on [`HALF_PORT`], abort on [`ABORT_PORT`].
#[derive(Default)]
struct Servers {
    conns: HashMap<SocketHandle, Conn>,
    events: Vec<Event>,
    buf: Vec<u8>,
    stats: Arc<Mutex<ServerStats>>,
}

impl Servers {
    fn reset(&self) {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).resets += 1;
    }

    /// Moves the connection forward; true when it is finished (to be closed).
    fn drive(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) -> bool {
        let Some(mut c) = self.conns.remove(&h) else {
            return false;
        };
        let done = match c.role {
            Role::Echo => self.echo(s, h, &mut c),
            Role::HalfClose => self.half_close(s, h, &mut c),
            Role::Abort => self.abort(s, h, &mut c),
        };
        if !done {
            self.conns.insert(h, c);
        }
        done
    }

    fn echo(
        &mut self,
        s: &mut shardnet::socket::Sockets<'_>,
        h: SocketHandle,
        c: &mut Conn,
    ) -> bool {
        loop {
            while c.sent < c.pending.len() {
                match s.send(h, &c.pending[c.sent..]) {
                    Ok(n) => {
                        c.sent += n;
                        self.stats.lock().unwrap_or_else(|e| e.into_inner()).echoed += n as u64;
                    }
                    Err(SendError::WouldBlock) => return false,
                    Err(SendError::ConnectionReset) => {
                        self.reset();
                        return true;
                    }
                    Err(_) => {
                        self.stats.lock().unwrap_or_else(|e| e.into_inner()).errors += 1;
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
                Err(RecvError::ConnectionReset) => {
                    self.reset();
                    return true;
                }
                Err(_) => {
                    self.stats.lock().unwrap_or_else(|e| e.into_inner()).errors += 1;
                    return true;
                }
            }
        }
    }

    fn half_close(
        &mut self,
        s: &mut shardnet::socket::Sockets<'_>,
        h: SocketHandle,
        c: &mut Conn,
    ) -> bool {
        while !c.eof {
            let at = c.received;
            let mut bad = false;
            match s.recv_with(h, |bytes| {
                bad = bytes.iter().enumerate().any(|(k, &b)| b != pattern(at + k));
                bytes.len()
            }) {
                Ok(0) => {
                    c.eof = true;
                    let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                    st.half_in = c.received;
                    st.half_state_at_eof = s.state(h);
                }
                Ok(n) => {
                    c.received += n;
                    if bad {
                        self.stats
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .half_bad = true;
                    }
                }
                Err(RecvError::WouldBlock) => return false,
                Err(_) => {
                    self.stats.lock().unwrap_or_else(|e| e.into_inner()).errors += 1;
                    return true;
                }
            }
        }
        // The peer has shut down its writing side: keep sending ours.
        while c.out_sent < HALF_OUT {
            let at = c.out_sent;
            match s.send_with(h, HALF_OUT - at, |buf| {
                for (k, b) in buf.iter_mut().enumerate() {
                    *b = pattern(at + k);
                }
                buf.len()
            }) {
                Ok(n) if n > 0 => {
                    c.out_sent += n;
                    self.stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .half_sent_after_eof += n;
                }
                Ok(_) | Err(SendError::WouldBlock) => return false,
                Err(_) => {
                    self.stats.lock().unwrap_or_else(|e| e.into_inner()).errors += 1;
                    return true;
                }
            }
        }
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .half_done += 1;
        true
    }

    fn abort(
        &mut self,
        s: &mut shardnet::socket::Sockets<'_>,
        h: SocketHandle,
        c: &mut Conn,
    ) -> bool {
        match s.recv(h, &mut self.buf) {
            Ok(n) if n > 0 => {
                c.received += n;
                // SO_LINGER 0, then close: RST (RFC 9293 3.10.4 ABORT).
                let linger = s.set_option(h, SockOpt::Linger(Some(Duration::ZERO)));
                let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                if linger.is_ok() {
                    st.aborted += 1;
                } else {
                    st.errors += 1;
                }
                true
            }
            Err(RecvError::WouldBlock) => false,
            _ => {
                self.stats.lock().unwrap_or_else(|e| e.into_inner()).errors += 1;
                true
            }
        }
    }
}

impl App for Servers {
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
                    let role = match s.local_addr(h).map(|a| a.port()) {
                        Some(HALF_PORT) => Role::HalfClose,
                        Some(ABORT_PORT) => Role::Abort,
                        _ => Role::Echo,
                    };
                    self.stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .accepted += 1;
                    self.conns.insert(
                        h,
                        Conn {
                            role,
                            pending: Vec::new(),
                            sent: 0,
                            received: 0,
                            eof: false,
                            out_sent: 0,
                        },
                    );
                    ready.push(h);
                }
            } else if e.readiness.contains(Readiness::ERROR) && self.conns.contains_key(&e.socket) {
                match s.socket_error(e.socket) {
                    Some(SocketError::ConnectionReset) => self.reset(),
                    _ => self.stats.lock().unwrap_or_else(|e| e.into_inner()).errors += 1,
                }
                self.conns.remove(&e.socket);
                let _ = s.close(e.socket);
            } else {
                ready.push(e.socket);
            }
            for h in ready {
                if self.drive(&mut s, h) {
                    let _ = s.close(h);
                }
            }
        }
        self.events = events;
    }
}

fn start_servers<P: Port + Send + 'static>(
    port: P,
    idle: IdlePolicy,
) -> (Runtime<P, Servers>, Arc<Mutex<ServerStats>>)
where
    P::Frame: Send,
{
    let servers = Servers::default();
    let stats = servers.stats.clone();
    let runtime = Runtime::start(runtime_config(&port, idle), vec![(port, servers)])
        .expect("start the runtime");
    for p in [ECHO_PORT, HALF_PORT, ABORT_PORT] {
        runtime.listen(p, 512).expect("listen");
    }
    (runtime, stats)
}

// ----- kernel-side scripts -----

/// Half-close from the kernel: sends `n_in` bytes, `shutdown(SHUT_WR)`, then reads to EOF;
/// what it reads must be `n_out` bytes of the pattern. Prints "ok".
const HALF_CLIENT: &str = r#"
import socket, sys
host, port, n_in, n_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection((host, port), timeout=30)
s.sendall(pattern(0, n_in))
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
s.close()
if len(got) != n_out or bytes(got) != pattern(0, n_out):
    print("got", len(got), "bytes, wanted", n_out, "bytes of the pattern", file=sys.stderr)
    sys.exit(1)
print("ok")
"#;

/// Half-close on the kernel's server side: accepts one connection, reads to EOF (the client's
/// `shutdown(SHUT_WR)`), checks it got `n_in` bytes of the pattern, then sends `n_out` bytes
/// and closes. Prints "ok <bytes read>".
const HALF_SERVER: &str = r#"
import socket, sys
addr, port, n_in, n_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(4)
print("ready", flush=True)
l.settimeout(60)
c, _ = l.accept()
c.settimeout(30)
got = bytearray()
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    got += b
if len(got) != n_in or bytes(got) != pattern(0, n_in):
    print("got", len(got), "bytes, wanted", n_in, file=sys.stderr)
    sys.exit(1)
c.sendall(pattern(0, n_out))
c.close()
print("ok", len(got), flush=True)
"#;

/// RST from the kernel: sends 1000 bytes, waits for the echo to arrive (unread), then closes
/// with SO_LINGER 0. Prints "ok".
const RST_CLIENT: &str = r#"
import socket, struct, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=30)
s.sendall(pattern(0, 1000))
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("ok")
"#;

/// Against shardnet's abort server: sends a request and reads; prints "reset" if the read
/// fails with ECONNRESET, "eof" on a clean close.
const ABORT_CLIENT: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=30)
s.sendall(b"hello")
try:
    while True:
        b = s.recv(4096)
        if not b:
            print("eof")
            break
except ConnectionResetError:
    print("reset")
"#;

/// `n` short connections one after the other: connect, send 32 bytes, read the echo, close
/// (the client closes first). Prints "ok <seconds>".
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

/// Bulk echo from the kernel: one connection sending `size` bytes from a thread while the main
/// thread reads the echo; the SHA-256 of what was sent and what came back must match. Prints
/// "ok <seconds> <sha256>".
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

/// A kernel server that accepts, greets with "hi", reads until the peer resets, and prints
/// "reset" when recv fails with ECONNRESET, "eof" on a clean close.
const RESET_SERVER: &str = r#"
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(4)
print("ready", flush=True)
l.settimeout(60)
c, _ = l.accept()
c.settimeout(30)
c.sendall(b"hi")
try:
    while True:
        b = c.recv(4096)
        if not b:
            print("eof", flush=True)
            break
except ConnectionResetError:
    print("reset", flush=True)
"#;

// ----- shardnet clients -----

/// What a shardnet client app does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ClientMode {
    /// `total` connections (up to 16 at a time), each sending 32 bytes, reading the echo and
    /// closing first.
    Churn,
    /// One connection sending `total` bytes and checking the echo.
    Bulk,
    /// One connection sending [`HALF_IN`] bytes, `shutdown(Write)`, then reading to EOF
    /// (`HALF_OUT` bytes of the pattern expected).
    HalfClose,
    /// One connection sending 5 bytes and, once the server's 2-byte greeting arrived, closing
    /// with `SO_LINGER` 0.
    Abort,
}

struct ClientConn {
    sent: usize,
    received: usize,
    shut: bool,
    seq: usize,
}

/// What a shardnet client saw, shared with the test thread.
#[derive(Default, Debug)]
struct ClientStats {
    started: usize,
    done: usize,
    bad: usize,
    /// The TCP state when the first byte after our `shutdown(Write)` was read.
    state_after_shutdown: Option<State>,
    received: usize,
}

struct Client {
    mode: ClientMode,
    server: SocketAddrV4,
    total: usize,
    conns: HashMap<SocketHandle, ClientConn>,
    events: Vec<Event>,
    stats: Arc<Mutex<ClientStats>>,
    finished: Arc<AtomicU64>,
}

impl Client {
    fn new(mode: ClientMode, server_port: u16, total: usize) -> Client {
        Client {
            mode,
            server: SocketAddrV4::new(KERNEL_ADDR, server_port),
            total,
            conns: HashMap::new(),
            events: Vec::new(),
            stats: Arc::default(),
            finished: Arc::default(),
        }
    }

    /// Moves a connection forward; true when it is finished (closed by us).
    fn drive(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) -> bool {
        let mode = self.mode;
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
        let to_send = match mode {
            ClientMode::Churn => 32,
            ClientMode::Bulk => self.total,
            ClientMode::HalfClose => HALF_IN,
            ClientMode::Abort => 5,
        };
        let base = if mode == ClientMode::Churn { c.seq } else { 0 };
        while c.sent < to_send {
            let at = c.sent;
            match s.send_with(h, (to_send - at).min(64 * 1024), |buf| {
                for (k, b) in buf.iter_mut().enumerate() {
                    *b = pattern(base + at + k);
                }
                buf.len()
            }) {
                Ok(n) if n > 0 => c.sent += n,
                _ => break,
            }
        }
        // Bulk reads the echo while it sends: an echo server that buffers little (socat's
        // pipe) would otherwise wait for us to read while we wait for it to.
        if c.sent < to_send && mode != ClientMode::Bulk {
            return false;
        }
        match mode {
            ClientMode::Abort => {
                // Abort once the server's greeting shows it accepted the connection.
                while let Ok(n) = s.recv_with(h, |bytes| bytes.len()) {
                    if n == 0 {
                        break;
                    }
                    c.received += n;
                }
                if c.received < 2 {
                    return false;
                }
                let r = s.set_option(h, SockOpt::Linger(Some(Duration::ZERO)));
                let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                if r.is_ok() {
                    st.done += 1;
                } else {
                    st.bad += 1;
                }
                return true;
            }
            ClientMode::HalfClose if !c.shut => {
                if s.shutdown(h, Shutdown::Write).is_err() {
                    self.stats.lock().unwrap_or_else(|e| e.into_inner()).bad += 1;
                    return true;
                }
                c.shut = true;
            }
            _ => {}
        }
        let expect = match mode {
            ClientMode::HalfClose => HALF_OUT,
            _ => to_send,
        };
        loop {
            let at = c.received;
            let mut wrong = false;
            match s.recv_with(h, |bytes| {
                wrong = bytes
                    .iter()
                    .enumerate()
                    .any(|(k, &b)| b != pattern(base + at + k));
                bytes.len()
            }) {
                Ok(0) => {
                    let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                    if c.received != expect {
                        st.bad += 1;
                    } else {
                        st.done += 1;
                    }
                    st.received += c.received;
                    return true;
                }
                Ok(n) => {
                    if c.received == 0 && mode == ClientMode::HalfClose {
                        self.stats
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .state_after_shutdown = s.state(h);
                    }
                    c.received += n;
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
        // Churn and bulk close first once the whole echo is back.
        if matches!(mode, ClientMode::Churn | ClientMode::Bulk) && c.received >= to_send {
            let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            st.done += 1;
            st.received += c.received;
            return true;
        }
        false
    }
}

impl App for Client {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        let (limit, total_conns) = match self.mode {
            ClientMode::Churn => (16, self.total),
            _ => (1, 1),
        };
        let started = self.stats.lock().unwrap_or_else(|e| e.into_inner()).started;
        let mut started_now = 0;
        while self.conns.len() < limit && started + started_now < total_conns {
            match s.connect(self.server, &SocketOptions::default()) {
                Ok(h) => {
                    self.conns.insert(
                        h,
                        ClientConn {
                            sent: 0,
                            received: 0,
                            shut: false,
                            seq: started + started_now,
                        },
                    );
                    started_now += 1;
                }
                Err(_) => {
                    self.stats.lock().unwrap_or_else(|e| e.into_inner()).bad += 1;
                    break;
                }
            }
        }
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).started += started_now;
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
        let st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if self.conns.is_empty() && st.started >= total_conns {
            self.finished.store(1, Ordering::Release);
        }
    }
}

/// Runs a shardnet client on `port` until it finishes (or `secs` pass); returns its stats,
/// the shard's state histogram at that moment and the port.
fn run_client<P: Port + Send + 'static>(
    port: P,
    client: Client,
    secs: u64,
) -> (ClientStats, StateHistogram, P, f64)
where
    P::Frame: Send,
{
    let stats = client.stats.clone();
    let finished = client.finished.clone();
    let runtime = Runtime::start(runtime_config(&port, sleepy()), vec![(port, client)])
        .expect("start the runtime");
    let start = Instant::now();
    let deadline = start + std::time::Duration::from_secs(secs);
    while finished.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the last ACKs and FINs cross before reading the states.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hist = histogram(&runtime);
    let mut exits = runtime.stop().expect("stop the runtime");
    let exit = exits.pop().expect("one shard");
    assert_eq!(
        finished.load(Ordering::Acquire),
        1,
        "the client did not finish in {secs} s: {:?}",
        stats.lock().unwrap_or_else(|e| e.into_inner())
    );
    let st = std::mem::take(&mut *stats.lock().unwrap_or_else(|e| e.into_inner()));
    (st, hist, exit.port, elapsed)
}

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return true;
    }
    false
}

fn lock(stats: &Arc<Mutex<ServerStats>>) -> std::sync::MutexGuard<'_, ServerStats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

// ----- the tests -----

/// Linux closes its writing side first (shutdown(SHUT_WR)); shardnet reads to EOF in
/// CLOSE-WAIT and then sends 1 MiB, which Linux reads in full.
fn linux_half_closes_and_shardnet_keeps_sending(mode: AttachMode) {
    if skip() {
        return;
    }
    let _ns = up();
    let (runtime, stats) = start_servers(open_port(mode), sleepy());
    python_ok(
        NS_KERNEL,
        60,
        HALF_CLIENT,
        &[
            "198.18.0.2",
            &HALF_PORT.to_string(),
            &HALF_IN.to_string(),
            &HALF_OUT.to_string(),
        ],
    );
    runtime.stop().expect("stop");
    let st = lock(&stats);
    assert_eq!(st.half_done, 1, "{st:?}");
    assert_eq!(st.half_in, HALF_IN);
    assert!(!st.half_bad, "the bytes before the FIN are the pattern");
    assert_eq!(st.half_state_at_eof, Some(State::CloseWait));
    assert_eq!(st.half_sent_after_eof, HALF_OUT);
    assert_eq!(st.errors, 0);
}

/// shardnet shuts its writing side down first; Linux reads to EOF and then sends 1 MiB, which
/// shardnet reads in FIN-WAIT-2; shardnet ends in TIME-WAIT (it closed first).
fn shardnet_half_closes_and_linux_keeps_sending(mode: AttachMode) {
    if skip() {
        return;
    }
    let _ns = up();
    let server = KernelServer::start(
        NS_KERNEL,
        HALF_SERVER,
        &[
            KERNEL_IP,
            &KERNEL_HALF_PORT.to_string(),
            &HALF_IN.to_string(),
            &HALF_OUT.to_string(),
        ],
    );
    let (st, hist, _port, _) = run_client(
        open_port(mode),
        Client::new(ClientMode::HalfClose, KERNEL_HALF_PORT, 1),
        60,
    );
    let out = server.finish(30);
    assert_eq!(out.trim(), format!("ok {HALF_IN}"));
    assert_eq!((st.done, st.bad), (1, 0), "{st:?}");
    assert_eq!(st.received, HALF_OUT);
    assert_eq!(st.state_after_shutdown, Some(State::FinWait2));
    assert_eq!(hist.get(State::TimeWait), 1, "{hist:?}");
}

/// A Linux client closing with SO_LINGER 0 resets the connection: shardnet's socket fails with
/// ECONNRESET. shardnet closing with SO_LINGER 0 resets it the other way: Linux's recv raises
/// ConnectionResetError, as does a kernel server's when a shardnet client aborts.
fn resets_both_ways(mode: AttachMode) {
    if skip() {
        return;
    }
    let _ns = up();
    let (runtime, stats) = start_servers(open_port(mode), sleepy());
    python_ok(
        NS_KERNEL,
        30,
        RST_CLIENT,
        &["198.18.0.2", &ECHO_PORT.to_string()],
    );
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while lock(&stats).resets == 0 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(lock(&stats).resets, 1, "{:?}", lock(&stats));
    let out = python_ok(
        NS_KERNEL,
        30,
        ABORT_CLIENT,
        &["198.18.0.2", &ABORT_PORT.to_string()],
    );
    assert_eq!(out.trim(), "reset");
    assert_eq!(lock(&stats).aborted, 1);
    // An aborted connection skips TIME-WAIT and is gone at once; so is the reset one.
    let hist = histogram(&runtime);
    assert_eq!(hist.get(State::TimeWait), 0, "{hist:?}");
    assert_eq!(hist.total(), 3, "only the three listeners remain: {hist:?}");
    let exits = runtime.stop().expect("stop");
    drop(exits);
    assert_eq!(lock(&stats).errors, 0, "{:?}", lock(&stats));

    // A shardnet client aborting: the kernel server's recv fails with ECONNRESET.
    let server = KernelServer::start(
        NS_KERNEL,
        RESET_SERVER,
        &[KERNEL_IP, &KERNEL_ECHO_PORT.to_string()],
    );
    let (st, hist, _port, _) = run_client(
        open_port(mode),
        Client::new(ClientMode::Abort, KERNEL_ECHO_PORT, 1),
        30,
    );
    assert_eq!((st.done, st.bad), (1, 0));
    assert_eq!(hist.total(), 0, "{hist:?}");
    assert_eq!(server.finish(30).trim(), "reset");
}

/// 3000 short connections from a Linux client to shardnet's echo: the client closes first, so
/// the kernel holds the TIME-WAITs and shardnet none. Then 3000 from a shardnet client to a
/// kernel echo server: shardnet closes first and holds them, the kernel none.
fn connection_churn_and_time_wait_on_the_closing_side(mode: AttachMode) {
    if skip() {
        return;
    }
    let _ns = up();
    let (runtime, stats) = start_servers(open_port(mode), sleepy());
    let out = python_ok(
        NS_KERNEL,
        90,
        CHURN_CLIENT,
        &["198.18.0.2", &ECHO_PORT.to_string(), &CHURN.to_string()],
    );
    let secs: f64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("the client prints its time");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hist = histogram(&runtime);
    let kernel_tw = kernel_time_wait(NS_KERNEL);
    println!(
        "Linux client -> shardnet echo: {CHURN} connections in {secs:.2} s ({:.0}/s); \
         TIME-WAIT: kernel {kernel_tw}, shardnet {}; shardnet states {hist:?}",
        CHURN as f64 / secs,
        hist.get(State::TimeWait)
    );
    runtime.stop().expect("stop");
    {
        let st = lock(&stats);
        assert_eq!(st.accepted, CHURN as u64, "{st:?}");
        assert_eq!(st.echoed, 32 * CHURN as u64);
        assert_eq!((st.errors, st.resets), (0, 0));
    }
    assert_eq!(
        hist.get(State::TimeWait),
        0,
        "the server side closed second"
    );
    assert_eq!(hist.total(), 3, "only the listeners remain: {hist:?}");
    assert!(
        kernel_tw >= CHURN * 95 / 100,
        "the kernel client closed first and should hold ~{CHURN} TIME-WAITs, has {kernel_tw}"
    );

    // The other way round, in fresh namespaces (no TIME-WAITs left from above).
    drop(_ns);
    let _ns = up();
    let _server = KernelServer::start(
        NS_KERNEL,
        ECHO_SERVER,
        &[KERNEL_IP, &KERNEL_ECHO_PORT.to_string()],
    );
    let (st, hist, _port, secs) = run_client(
        open_port(mode),
        Client::new(ClientMode::Churn, KERNEL_ECHO_PORT, CHURN),
        90,
    );
    let kernel_tw = kernel_time_wait(NS_KERNEL);
    println!(
        "shardnet client -> Linux echo: {CHURN} connections in {secs:.2} s ({:.0}/s); \
         TIME-WAIT: shardnet {}, kernel {kernel_tw}",
        CHURN as f64 / secs,
        hist.get(State::TimeWait)
    );
    assert_eq!((st.done, st.bad), (CHURN, 0), "{st:?}");
    assert_eq!(hist.get(State::TimeWait), CHURN, "{hist:?}");
    assert_eq!(kernel_tw, 0, "the kernel server closed second");
}

/// A SYN or SYN-ACK's options: (from, is SYN-ACK, MSS, window scale, SACK-permitted,
/// timestamps).
type SynOptions = (Ipv4Addr, bool, Option<u16>, Option<u8>, bool, bool);

/// Reads a pcap and returns the options of its TCP SYN and SYN-ACK segments.
fn handshake_options(pcap: &[u8]) -> Vec<SynOptions> {
    use shardnet::wire::{ChecksumMode, ethernet, ipv4, tcp};
    let mut reader = pcap_file::pcap::PcapReader::new(pcap).expect("a pcap file");
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.expect("a pcap record");
        let Ok(eth) = ethernet::Frame::new_checked(&packet.data[..]) else {
            continue;
        };
        if eth.ethertype() != ethernet::EtherType::Ipv4 {
            continue;
        }
        let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else {
            continue;
        };
        if ip.protocol() != ipv4::Protocol::Tcp {
            continue;
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let seg = tcp::Segment::new_checked(ip.payload()).expect("a TCP segment");
        let repr =
            tcp::Repr::parse(&seg, src, dst, ChecksumMode::Software).expect("a valid segment");
        if repr.flags.contains(tcp::Flags::SYN) {
            out.push((
                src,
                repr.ack_number.is_some(),
                repr.max_seg_size,
                repr.window_scale,
                repr.sack_permitted,
                repr.timestamp.is_some(),
            ));
        }
    }
    out
}

/// The options of both handshakes, read back from a pcap that shardnet's `PcapPort` wrote:
/// Linux's SYN and shardnet's SYN-ACK, shardnet's SYN and Linux's SYN-ACK each carry MSS 1460,
/// a window scale, SACK-permitted and timestamps.
fn handshake_options_negotiated_with_linux_from_a_pcap(mode: AttachMode) {
    if skip() {
        return;
    }
    let _ns = up();
    // shardnet as the server.
    let pcap =
        shardnet_pcap::PcapPort::new(open_port(mode), Vec::new(), shardnet_pcap::Clock::System)
            .expect("pcap header");
    let (runtime, stats) = start_servers(pcap, sleepy());
    python_ok(
        NS_KERNEL,
        30,
        CHURN_CLIENT,
        &["198.18.0.2", &ECHO_PORT.to_string(), "1"],
    );
    let mut exits = runtime.stop().expect("stop");
    assert_eq!(lock(&stats).echoed, 32);
    let (port, server_capture) = exits.pop().expect("one shard").port.into_parts();
    // shardnet as the client, on the same AF_XDP port.
    let _server = KernelServer::start(
        NS_KERNEL,
        ECHO_SERVER,
        &[KERNEL_IP, &KERNEL_ECHO_PORT.to_string()],
    );
    let pcap = shardnet_pcap::PcapPort::new(port, Vec::new(), shardnet_pcap::Clock::System)
        .expect("pcap header");
    let (st, _, pcap, _) = run_client(
        pcap,
        Client::new(ClientMode::Churn, KERNEL_ECHO_PORT, 1),
        30,
    );
    assert_eq!((st.done, st.bad), (1, 0));
    let (_, client_capture) = pcap.into_parts();

    let server_side = handshake_options(&server_capture);
    let client_side = handshake_options(&client_capture);
    println!("shardnet as server: {server_side:?}\nshardnet as client: {client_side:?}");
    let linux = KERNEL_ADDR;
    for (capture, syn_from, synack_from) in [
        (&server_side, linux, SHARDNET_IP),
        (&client_side, SHARDNET_IP, linux),
    ] {
        let syn = capture
            .iter()
            .find(|o| !o.1)
            .unwrap_or_else(|| panic!("no SYN in {capture:?}"));
        let synack = capture
            .iter()
            .find(|o| o.1)
            .unwrap_or_else(|| panic!("no SYN-ACK in {capture:?}"));
        assert_eq!(syn.0, syn_from);
        assert_eq!(synack.0, synack_from);
        for o in [syn, synack] {
            assert_eq!(o.2, Some(1460), "MSS of {o:?}");
            assert!(o.3.is_some(), "window scale in {o:?}");
            assert!(o.4, "SACK-permitted in {o:?}");
            assert!(o.5, "timestamps in {o:?}");
        }
    }
}

fn lossy(seed: u64) -> ImpairedConfig {
    let loss = Impairments {
        loss: 0.02,
        ..Impairments::NONE
    };
    ImpairedConfig {
        rx: loss.clone(),
        tx: loss,
        seed,
        ..ImpairedConfig::default()
    }
}

/// 1 MiB echoed through shardnet with 2 % of frames lost each way (a seeded `Impaired` around
/// the AF_XDP port), from a Linux client (SHA-256 of sent and echoed compared) and from a
/// shardnet client to a Linux echo server (every byte checked).
fn transfers_complete_under_two_percent_loss(mode: AttachMode) {
    if skip() {
        return;
    }
    let _ns = up();
    let size = 1usize << 20;
    let port = Impaired::new(open_port(mode), lossy(2026)).expect("impaired port");
    let (runtime, stats) = start_servers(port, sleepy());
    let out = python_ok(
        NS_KERNEL,
        90,
        BULK_CLIENT,
        &["198.18.0.2", &ECHO_PORT.to_string(), &size.to_string()],
    );
    let mut exits = runtime.stop().expect("stop");
    let port = exits.pop().expect("one shard").port;
    let c = port.counters();
    println!("Linux client -> shardnet echo under loss: {out}; faults {c:?}");
    assert_eq!(lock(&stats).echoed, size as u64);
    assert!(c.rx.lost > 0 && c.tx.lost > 0, "loss was applied: {c:?}");

    let _server = KernelServer::start(
        NS_KERNEL,
        ECHO_SERVER,
        &[KERNEL_IP, &KERNEL_ECHO_PORT.to_string()],
    );
    let before = port.counters();
    let (st, _, port, secs) = run_client(
        port,
        Client::new(ClientMode::Bulk, KERNEL_ECHO_PORT, size),
        90,
    );
    let c = port.counters();
    println!("shardnet client -> Linux echo under loss: {secs:.2} s; faults {c:?}");
    assert_eq!((st.done, st.bad, st.received), (1, 0, size), "{st:?}");
    assert!(
        c.rx.lost > before.rx.lost && c.tx.lost > before.tx.lost,
        "loss was applied: {c:?}"
    );
}

/// With shardnet's XDP program attached and shardnet busy echoing, the kernel on shardnet's
/// side of the veth (198.18.0.3) still answers ping and serves TCP: the program passes what
/// is not addressed to shardnet.
fn kernel_traffic_on_the_same_veth_keeps_flowing(mode: AttachMode) {
    if skip() {
        return;
    }
    let _ns = up();
    run_ok(&[
        "timeout",
        "30",
        "ip",
        "-n",
        NS_SHARDNET,
        "addr",
        "add",
        &format!("{SIDE_IP}/24"),
        "dev",
        DEV_SHARDNET,
    ]);
    let (runtime, stats) = start_servers(open_port(mode), sleepy());
    let _side_server = KernelServer::start(
        NS_SHARDNET,
        ECHO_SERVER,
        &[SIDE_IP, &KERNEL_ECHO_PORT.to_string()],
    );
    // shardnet echoes 4 MiB while the kernels talk across the same veth.
    let shardnet_load = std::thread::spawn(|| {
        python_ok(
            NS_KERNEL,
            90,
            BULK_CLIENT,
            &[
                "198.18.0.2",
                &ECHO_PORT.to_string(),
                &(4usize << 20).to_string(),
            ],
        )
    });
    let kernel_tcp = python_ok(
        NS_KERNEL,
        60,
        BULK_CLIENT,
        &[
            SIDE_IP,
            &KERNEL_ECHO_PORT.to_string(),
            &(1usize << 20).to_string(),
        ],
    );
    let ping = run(&[
        "timeout", "30", "ip", "netns", "exec", NS_KERNEL, "ping", "-c", "5", "-i", "0.2", "-W",
        "2", SIDE_IP,
    ]);
    let ping_out = String::from_utf8_lossy(&ping.stdout);
    let shardnet_out = shardnet_load.join().expect("the shardnet load thread");
    println!("kernel-to-kernel beside shardnet: {kernel_tcp}{ping_out}shardnet: {shardnet_out}");
    assert!(
        ping.status.success() && ping_out.contains(" 5 received"),
        "ping {SIDE_IP}: {ping_out}"
    );
    assert!(kernel_tcp.starts_with("ok "));
    assert!(shardnet_out.starts_with("ok "));
    runtime.stop().expect("stop");
    assert_eq!(lock(&stats).echoed, 4 << 20);
}

/// The kernel's `socat` echo server, on 198.18.0.1:[`KERNEL_SOCAT_PORT`]: one socat per
/// connection echoing through its own pipe (`PIPE`). socat writes whole blocks with blocking
/// writes once `select` says writable: with its default 8 KiB blocks it can block on its own
/// pipe (writable with one free 4 KiB page) and, being the pipe's only reader, never wake
/// (seen here with 4 MiB in flight).
/// `-b 4096` (PIPE_BUF) makes every write fit once the pipe is writable. Stopped by PID on drop.
struct SocatServer(std::process::Child);

impl SocatServer {
    fn start() -> SocatServer {
        let listen =
            format!("TCP-LISTEN:{KERNEL_SOCAT_PORT},bind={KERNEL_IP},reuseaddr,fork,backlog=512");
        let child = Command::new("timeout")
            .args([
                "300", "ip", "netns", "exec", NS_KERNEL, "socat", "-b", "4096", &listen, "PIPE",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn socat (apt-get install socat)");
        let server = SocatServer(child);
        // Ready once the kernel lists the listener.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let filter = format!("sport = :{KERNEL_SOCAT_PORT}");
            let out = run(&[
                "timeout", "10", "ip", "netns", "exec", NS_KERNEL, "ss", "-Htln", &filter,
            ]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return server;
            }
            assert!(Instant::now() < deadline, "socat did not start listening");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for SocatServer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait()
            && let Ok(pid) = libc::pid_t::try_from(self.0.id())
        {
            // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped child
            // (`timeout`, which passes SIGTERM on to socat).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

/// A bash client with no helper program on the socket: `/dev/tcp` opens the connection on fd
/// 3, a background `cat` writes the file into it while `head -c` reads the echo back; `cmp`
/// compares. Arguments: host, port, file sent, file received, bytes.
const BASH_DEV_TCP_CLIENT: &str = r#"
set -eu
host=$1 port=$2 sent=$3 got=$4 n=$5
exec 3<>"/dev/tcp/$host/$port"
cat "$sent" >&3 &
head -c "$n" <&3 >"$got"
wait
exec 3>&-
cmp "$sent" "$got"
echo ok
"#;

/// A scratch directory for one test's files, deleted on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("shardnet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Linux clients other than python against shardnet's echo server: bash's `/dev/tcp` (256 KiB
/// and a one-line greeting) and `socat` (4 MiB, stdin to the connection, the echo to stdout,
/// `shut-down` at the end of the input); then shardnet's client against a `socat` echo server:
/// 4 MiB on one connection and [`SOCAT_CHURN`] short connections, with the TIME-WAITs on
/// both sides reported (shardnet closes first and holds them).
fn bash_and_socat_clients_and_a_socat_server(mode: AttachMode) {
    if skip() {
        return;
    }
    for tool in ["bash", "socat", "cmp"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing (scripts/test.sh installs it)");
    }
    let _ns = up();
    let scratch = Scratch::new(&format!("socat-{mode:?}"));
    let (runtime, stats) = start_servers(open_port(mode), sleepy());
    let echo_port = ECHO_PORT.to_string();

    // bash: a greeting line, read back with `read`.
    let greeting = run_ok(&[
        "timeout",
        "30",
        "ip",
        "netns",
        "exec",
        NS_KERNEL,
        "bash",
        "-c",
        "exec 3<>/dev/tcp/198.18.0.2/7; echo 'hello from bash' >&3; read -r line <&3; exec 3>&-; echo \"$line\"",
    ]);
    assert_eq!(greeting.trim(), "hello from bash");
    // bash: 256 KiB of the pattern.
    let bash_bytes = 256 << 10;
    let sent = scratch.path("bash-sent");
    std::fs::write(&sent, (0..bash_bytes).map(pattern).collect::<Vec<u8>>())
        .expect("write the file to send");
    let got = scratch.path("bash-got");
    let out = run_ok(&[
        "timeout",
        "60",
        "ip",
        "netns",
        "exec",
        NS_KERNEL,
        "bash",
        "-c",
        BASH_DEV_TCP_CLIENT,
        "bash",
        "198.18.0.2",
        &echo_port,
        &sent,
        &got,
        &bash_bytes.to_string(),
    ]);
    assert_eq!(out.trim(), "ok");

    // socat: 4 MiB through stdin/stdout.
    let socat_bytes = 4usize << 20;
    let sent = scratch.path("socat-sent");
    std::fs::write(&sent, (0..socat_bytes).map(pattern).collect::<Vec<u8>>())
        .expect("write the file to send");
    let got = scratch.path("socat-got");
    let started = Instant::now();
    run_ok(&[
        "timeout",
        "60",
        "ip",
        "netns",
        "exec",
        NS_KERNEL,
        "sh",
        "-c",
        "socat -t 30 -T 30 - TCP:198.18.0.2:7,shut-down <\"$1\" >\"$2\"",
        "sh",
        &sent,
        &got,
    ]);
    let socat_secs = started.elapsed().as_secs_f64();
    let echoed = std::fs::read(&got).expect("read the echo");
    assert_eq!(echoed.len(), socat_bytes, "socat got the whole echo");
    assert!(
        echoed.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "socat's echo is the pattern"
    );
    runtime.stop().expect("stop");
    {
        let st = lock(&stats);
        assert_eq!(st.accepted, 3, "{st:?}");
        assert_eq!(st.echoed, (16 + bash_bytes + socat_bytes) as u64, "{st:?}");
        assert_eq!((st.errors, st.resets), (0, 0), "{st:?}");
    }

    // shardnet's client against socat.
    let _server = SocatServer::start();
    let (st, _, port, secs) = run_client(
        open_port(mode),
        Client::new(ClientMode::Bulk, KERNEL_SOCAT_PORT, socat_bytes),
        90,
    );
    assert_eq!(
        (st.done, st.bad, st.received),
        (1, 0, socat_bytes),
        "{st:?}"
    );
    drop(port);
    let (st, hist, _port, churn_secs) = run_client(
        open_port(mode),
        Client::new(ClientMode::Churn, KERNEL_SOCAT_PORT, SOCAT_CHURN),
        120,
    );
    let filter = format!("sport = :{KERNEL_SOCAT_PORT}");
    let kernel_tw = String::from_utf8_lossy(
        &run(&[
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
            &filter,
        ])
        .stdout,
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .count();
    println!(
        "{mode:?}: bash /dev/tcp echo of {bash_bytes} bytes and socat echo of {socat_bytes} bytes \
         ({socat_secs:.2} s) from Linux; shardnet client -> socat echo: {socat_bytes} bytes in \
         {secs:.2} s, {SOCAT_CHURN} connections in {churn_secs:.2} s ({:.0}/s); TIME-WAIT: \
         shardnet {}, kernel {kernel_tw}",
        SOCAT_CHURN as f64 / churn_secs,
        hist.get(State::TimeWait)
    );
    assert_eq!((st.done, st.bad), (SOCAT_CHURN, 0), "{st:?}");
    assert_eq!(
        hist.get(State::TimeWait),
        SOCAT_CHURN,
        "shardnet closed first"
    );
    assert_eq!(kernel_tw, 0, "socat closed second");
}

/// Each scenario in both attach modes: generic (SKB) XDP and native (veth driver) XDP.
macro_rules! both_modes {
    ($($scenario:ident => $generic:ident, $native:ident;)*) => {$(
        #[test]
        fn $generic() {
            $scenario(AttachMode::Generic);
        }
        #[test]
        fn $native() {
            $scenario(AttachMode::Native);
        }
    )*};
}

both_modes! {
    linux_half_closes_and_shardnet_keeps_sending =>
        generic_linux_half_closes_and_shardnet_keeps_sending,
        native_linux_half_closes_and_shardnet_keeps_sending;
    shardnet_half_closes_and_linux_keeps_sending =>
        generic_shardnet_half_closes_and_linux_keeps_sending,
        native_shardnet_half_closes_and_linux_keeps_sending;
    resets_both_ways => generic_resets_both_ways, native_resets_both_ways;
    connection_churn_and_time_wait_on_the_closing_side =>
        generic_connection_churn_and_time_wait_on_the_closing_side,
        native_connection_churn_and_time_wait_on_the_closing_side;
    handshake_options_negotiated_with_linux_from_a_pcap =>
        generic_handshake_options_negotiated_with_linux_from_a_pcap,
        native_handshake_options_negotiated_with_linux_from_a_pcap;
    transfers_complete_under_two_percent_loss =>
        generic_transfers_complete_under_two_percent_loss,
        native_transfers_complete_under_two_percent_loss;
    kernel_traffic_on_the_same_veth_keeps_flowing =>
        generic_kernel_traffic_on_the_same_veth_keeps_flowing,
        native_kernel_traffic_on_the_same_veth_keeps_flowing;
    bash_and_socat_clients_and_a_socat_server =>
        generic_bash_and_socat_clients_and_a_socat_server,
        native_bash_and_socat_clients_and_a_socat_server;
}
