//! TCP Fast Open and SYN cookies against the Linux kernel over AF_XDP.
//!
//! - Linux as the Fast Open client: a python client sends twice with `sendto(MSG_FASTOPEN)`
//!   to a shardnet listener with `TCP_FASTOPEN` set. From shardnet's pcap (its `PcapPort`,
//!   parsed with shardnet's own wire parsers): the first SYN asks for a cookie and carries no
//!   data, the second carries the data and shardnet's SYN-ACK acknowledges it;
//!   `TCPFastOpenPassive` counts one.
//! - shardnet as the Fast Open client: `connect_with_data` twice against a python server with
//!   `TCP_FASTOPEN`; the second SYN carries the data and Linux's SYN-ACK acknowledges it
//!   (Linux accepted it); `TCPFastOpenActive` counts one.
//! - SYN cookies: a shardnet listener in `SynCookieMode::Always` (every SYN answered with a
//!   cookie, no request kept) and a Linux client that connects 20 times and exchanges 3000
//!   bytes each way; `SyncookiesSent`/`SyncookiesRecv` count them and every byte arrives intact.
//!
//! shardnet runs on an AF_XDP port (generic XDP) at one end of a veth pair, the kernel at the
//! other, in this binary's own namespaces `snet-tk` (kernel, 198.18.0.1/24, veth `snet-tk0`,
//! `net.ipv4.tcp_fastopen = 3` set inside it) and `snet-ts` (shardnet, 198.18.0.2, veth
//! `snet-ts0`), created by the test and deleted by a drop guard, also on failure. The file lock
//! that `interop.rs` takes (plus a mutex within the process) runs one AF_XDP test at a time.
//!
//! Needs root; as another user every test prints why and returns. Needs `ip`, `ethtool`,
//! `sysctl` and `python3`. Every external command runs under `timeout`, every wait has a
//! deadline, and only 198.18.0.0/15 addresses inside the test's own namespaces are used.

use shardnet::runtime::{App, AppContext, IdlePolicy, Runtime};
use shardnet::shard::tcp::SynCookieMode;
use shardnet::socket::{Event, Readiness, RecvError, SendError, SocketHandle, SocketOptions};
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode, Error};
use shardnet_pcap::{Clock, PcapPort};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const NS_KERNEL: &str = "snet-tk";
const NS_SHARDNET: &str = "snet-ts";
const DEV_KERNEL: &str = "snet-tk0";
const DEV_SHARDNET: &str = "snet-ts0";
const KERNEL_CIDR: &str = "198.18.0.1/24";
/// shardnet's listeners.
const SERVER_PORT: u16 = 7;
/// The kernel's Fast Open server.
const KERNEL_PORT: u16 = 9000;
/// Bytes of each Fast Open message (fits in one SYN).
const TFO_LEN: usize = 200;
/// Connections and bytes each way in the SYN cookie test.
const COOKIE_CONNS: usize = 20;
const COOKIE_LEN: usize = 3000;

static SERIAL: Mutex<()> = Mutex::new(());

mod support;
use support::linux_peer::{KernelServer, python, python_ok};
use support::pattern::pattern_bytes;
use support::shard::{
    Idle, KERNEL_ADDR, KERNEL_IP, SHARDNET_ADDR, SHARDNET_IP, lock, runtime_config,
};
use support::{Names, TestNet, in_namespace, is_root, run_ok};

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
    // Fast Open as client and server (a per-namespace setting).
    let net = TestNet::up(&SERIAL, NET, &["net.ipv4.tcp_fastopen=3"]);
    let tfo = run_ok(&[
        "timeout",
        "30",
        "ip",
        "netns",
        "exec",
        NS_KERNEL,
        "sysctl",
        "-n",
        "net.ipv4.tcp_fastopen",
    ]);
    assert_eq!(tfo.trim(), "3", "tcp_fastopen in {NS_KERNEL}");
    net
}

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return true;
    }
    false
}

/// One line per segment: source, flags, sequence numbers, Fast Open option and payload length.
fn summary(segs: &[Seg]) -> String {
    segs.iter()
        .map(|s| {
            format!(
                "\n  {} syn={} seq={} ack={:?} tfo={:?} len={}",
                s.src,
                s.syn,
                s.seq,
                s.ack,
                s.fast_open,
                s.payload.len()
            )
        })
        .collect()
}

/// Opens the AF_XDP port (generic XDP) from a thread inside shardnet's namespace, wrapped in a
/// pcap writer.
fn open_port() -> PcapPort<AfXdpPort, Vec<u8>> {
    let port = in_namespace(NS_SHARDNET, || -> Result<AfXdpPort, Error> {
        let mut config = AfXdpConfig::new(DEV_SHARDNET, SHARDNET_ADDR);
        config.mode = AttachMode::Generic;
        AfXdpPort::open(&config)
    })
    .unwrap_or_else(|e| panic!("opening the AF_XDP port: {e}"));
    PcapPort::new(port, Vec::new(), Clock::System).expect("pcap header")
}

/// Every shard here sleeps at most 1 ms when idle.
const IDLE: Idle = Idle {
    policy: IdlePolicy::Sleep {
        max: Duration::from_millis(1),
    },
    no_waker_sleep: Duration::from_millis(1),
};

// ----- what the pcap shows -----

/// A TCP segment read back from a pcap.
#[derive(Clone, Debug)]
struct Seg {
    src: Ipv4Addr,
    syn: bool,
    seq: u32,
    ack: Option<u32>,
    /// The Fast Open option's cookie length (0: a cookie request), if present.
    fast_open: Option<usize>,
    payload: Vec<u8>,
}

/// Every TCP segment of a pcap that shardnet's `PcapPort` wrote, parsed with shardnet's wire
/// parsers (checksums verified).
fn segments(pcap: &[u8]) -> Vec<Seg> {
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
        out.push(Seg {
            src,
            syn: repr.flags.contains(tcp::Flags::SYN),
            seq: repr.seq_number,
            ack: repr.ack_number,
            fast_open: repr.fast_open.as_ref().map(|c| c.as_bytes().len()),
            payload: repr.payload.to_vec(),
        });
    }
    out
}

/// The SYNs `from` sent (no ACK) and the SYN-ACKs the other side answered, in order.
fn handshakes(segs: &[Seg], from: Ipv4Addr) -> (Vec<Seg>, Vec<Seg>) {
    let syns = segs
        .iter()
        .filter(|s| s.syn && s.ack.is_none() && s.src == from)
        .cloned()
        .collect();
    let synacks = segs
        .iter()
        .filter(|s| s.syn && s.ack.is_some() && s.src != from)
        .cloned()
        .collect();
    (syns, synacks)
}

// ----- shardnet's server -----

/// What shardnet's echo server saw.
#[derive(Default, Debug)]
struct Served {
    /// Every connection's received bytes, in the order the connections closed.
    received: Vec<Vec<u8>>,
    failures: usize,
}

/// One connection of [`EchoServer`].
#[derive(Default)]
struct ServerConn {
    received: Vec<u8>,
    /// Echo bytes the send buffer has not taken yet (a Fast Open connection is accepted in
    /// SYN-RECEIVED, where shardnet's `send` says `EAGAIN` until the handshake completes).
    pending: Vec<u8>,
    eof: bool,
}

/// Listens on [`SERVER_PORT`] with `options` (opened at the first step), echoes everything and
/// closes once the peer has closed and the echo is queued.
struct EchoServer {
    options: SocketOptions,
    listener: Option<SocketHandle>,
    conns: HashMap<SocketHandle, ServerConn>,
    served: Arc<Mutex<Served>>,
    events: Vec<Event>,
    buf: Vec<u8>,
}

impl EchoServer {
    fn new(options: SocketOptions, served: Arc<Mutex<Served>>) -> EchoServer {
        EchoServer {
            options,
            listener: None,
            conns: HashMap::new(),
            served,
            events: Vec::new(),
            buf: vec![0; 65536],
        }
    }
}

impl App for EchoServer {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        let listener = match self.listener {
            Some(l) => l,
            None => {
                let l = s
                    .listen(
                        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT),
                        64,
                        &self.options,
                    )
                    .expect("listen");
                self.listener = Some(l);
                l
            }
        };
        while let Ok((h, _)) = s.accept(listener) {
            self.conns.insert(h, ServerConn::default());
        }
        self.events.clear();
        s.poll_events(&mut self.events);
        // Level-checked: every open connection is read each step (there are few).
        let handles: Vec<SocketHandle> = self.conns.keys().copied().collect();
        for h in handles {
            let Some(c) = self.conns.get_mut(&h) else {
                continue;
            };
            let mut failed = false;
            while !c.eof && !failed {
                match s.recv(h, &mut self.buf) {
                    Ok(0) => c.eof = true,
                    Ok(n) => {
                        c.received.extend_from_slice(&self.buf[..n]);
                        c.pending.extend_from_slice(&self.buf[..n]);
                    }
                    Err(RecvError::WouldBlock) => break,
                    Err(_) => failed = true,
                }
            }
            while !c.pending.is_empty() && !failed {
                match s.send(h, &c.pending) {
                    Ok(n) => {
                        c.pending.drain(..n);
                    }
                    Err(SendError::WouldBlock) => break,
                    Err(_) => failed = true,
                }
            }
            if failed {
                lock(&self.served).failures += 1;
                let _ = s.close(h);
                self.conns.remove(&h);
            } else if c.eof && c.pending.is_empty() {
                let _ = s.close(h);
                let c = self.conns.remove(&h).unwrap_or_default();
                lock(&self.served).received.push(c.received);
            }
        }
        ctx.wake_at(ctx.now + Duration::from_millis(1));
    }
}

// ----- shardnet's Fast Open client -----

/// Sends each message with `connect_with_data` on a connection of its own, one after the
/// other: reads the echo, checks it, closes, then opens the next.
struct FastOpenClient {
    remote: SocketAddrV4,
    messages: Vec<Vec<u8>>,
    next: usize,
    /// The connection in progress: handle, bytes of the message queued, echo received.
    current: Option<(SocketHandle, usize, Vec<u8>)>,
    failures: Arc<Mutex<Vec<String>>>,
    finished: Arc<AtomicBool>,
}

impl App for FastOpenClient {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        ctx.wake_at(ctx.now + Duration::from_millis(1));
        let mut s = ctx.sockets();
        let mut events = Vec::new();
        s.poll_events(&mut events);
        if self.current.is_none() {
            if self.next == self.messages.len() {
                self.finished.store(true, Ordering::Release);
                return;
            }
            let msg = &self.messages[self.next];
            match s.connect_with_data(self.remote, msg, &SocketOptions::default()) {
                Ok((h, queued)) => self.current = Some((h, queued, Vec::new())),
                Err(e) => {
                    lock(&self.failures).push(format!("connect_with_data: {e:?}"));
                    self.finished.store(true, Ordering::Release);
                    return;
                }
            }
        }
        let Some((h, queued, got)) = self.current.as_mut() else {
            return;
        };
        let h = *h;
        let msg = &self.messages[self.next];
        if *queued < msg.len()
            && let Ok(n) = s.send(h, &msg[*queued..])
        {
            *queued += n;
        }
        let mut buf = [0u8; 4096];
        loop {
            match s.recv(h, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(RecvError::WouldBlock) => break,
                Err(e) => {
                    lock(&self.failures).push(format!("recv on connection {}: {e:?}", self.next));
                    got.clear();
                    got.extend_from_slice(b"failed");
                    break;
                }
            }
        }
        let errored = events
            .iter()
            .any(|e| e.socket == h && e.readiness.contains(Readiness::ERROR));
        if got.len() >= msg.len() || errored || got.as_slice() == b"failed" {
            if got != msg {
                lock(&self.failures).push(format!(
                    "connection {}: echo of {} bytes differs (error event: {errored})",
                    self.next,
                    got.len()
                ));
            }
            let _ = s.close(h);
            self.current = None;
            self.next += 1;
        }
    }
}

// ----- the tests -----

/// Linux's client: two connections, each sending its message with `sendto(MSG_FASTOPEN)`
/// and checking the echo.
const TFO_CLIENT: &str = r#"
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(2):
    s = socket.socket()
    msg = pattern(i * 1000, n)
    # Blocking (a Python timeout would make the socket non-blocking: EINPROGRESS); the
    # process itself runs under `timeout`.
    sent = s.sendto(msg, socket.MSG_FASTOPEN, (host, port))
    s.settimeout(10)
    if sent < len(msg):
        s.sendall(msg[sent:])
    got = b""
    while len(got) < len(msg):
        b = s.recv(4096)
        if not b:
            break
        got += b
    if got != msg:
        print("connection", i, "echoed", len(got), "bytes, not the message", file=sys.stderr)
        sys.exit(1)
    s.close()
    time.sleep(0.2)
print("ok")
"#;

#[test]
fn linux_fast_open_client_to_a_shardnet_listener() {
    if skip() {
        return;
    }
    let _ns = up();
    let port = open_port();
    let served = Arc::new(Mutex::new(Served::default()));
    let options = SocketOptions {
        fast_open: Some(16),
        ..SocketOptions::default()
    };
    let runtime = Runtime::start(
        runtime_config(&port, IDLE),
        vec![(port, EchoServer::new(options, served.clone()))],
    )
    .expect("start the runtime");
    let out = python(
        NS_KERNEL,
        60,
        TFO_CLIENT,
        &[SHARDNET_IP, &SERVER_PORT.to_string(), &TFO_LEN.to_string()],
    );
    // Let the last FINs and ACKs cross.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut exits = runtime.stop().expect("stop the runtime");
    let exit = exits.pop().expect("one shard");
    let (_, capture) = exit.port.into_parts();
    let segs = segments(&capture);
    assert_eq!(
        out.as_deref().map(str::trim),
        Ok("ok"),
        "segments: {}",
        summary(&segs)
    );

    let served = lock(&served);
    assert_eq!(served.failures, 0, "{served:?}");
    assert_eq!(
        served.received,
        vec![pattern_bytes(0, TFO_LEN), pattern_bytes(1000, TFO_LEN)],
        "what shardnet received"
    );
    let x = &exit.stats.tcp_ext;
    println!(
        "TCPFastOpenPassive {} PassiveFail {} CookieReqd {}",
        x.fast_open_passive, x.fast_open_passive_fail, x.fast_open_cookie_reqd
    );
    assert_eq!(x.fast_open_passive, 1, "one SYN's data accepted");
    assert_eq!(x.fast_open_passive_fail, 0);
    assert_eq!(exit.stats.tcp.passive_opens, 2);

    let (syns, synacks) = handshakes(&segs, KERNEL_ADDR);
    println!(
        "Linux's SYNs:{}\nshardnet's SYN-ACKs:{}",
        summary(&syns),
        summary(&synacks)
    );
    assert_eq!(syns.len(), 2, "one SYN per connection, none retransmitted");
    // The first SYN asks for a cookie and carries nothing.
    assert_eq!(syns[0].fast_open, Some(0), "a cookie request");
    assert!(syns[0].payload.is_empty());
    // The second carries a cookie and the whole message.
    assert!(syns[1].fast_open.is_some_and(|n| n > 0), "a cookie");
    assert_eq!(
        syns[1].payload,
        pattern_bytes(1000, TFO_LEN),
        "the data in the SYN"
    );
    // shardnet's first SYN-ACK gave a cookie; its second acknowledged the SYN's data.
    assert_eq!(synacks.len(), 2);
    assert!(
        synacks[0].fast_open.is_some_and(|n| n > 0),
        "a cookie given"
    );
    assert_eq!(synacks[0].ack, Some(syns[0].seq.wrapping_add(1)));
    assert_eq!(
        synacks[1].ack,
        Some(syns[1].seq.wrapping_add(1 + TFO_LEN as u32)),
        "the SYN-ACK acknowledges the SYN's data"
    );
}

/// Linux's Fast Open server: `TCP_FASTOPEN` on the listener; two connections, each echoed
/// until EOF. Prints the bytes each received.
const TFO_SERVER: &str = r#"
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
l.bind((addr, port))
l.listen(16)
l.settimeout(60)
print("ready", flush=True)
for i in range(2):
    c, _ = l.accept()
    c.settimeout(30)
    got = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
        c.sendall(b)
    c.close()
    print(len(got), got == pattern(i * 1000, len(got)), flush=True)
"#;

#[test]
fn shardnet_fast_open_client_to_a_linux_server() {
    if skip() {
        return;
    }
    let _ns = up();
    let server = KernelServer::start(
        NS_KERNEL,
        TFO_SERVER,
        &[KERNEL_IP, &KERNEL_PORT.to_string()],
    );
    let port = open_port();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let finished = Arc::new(AtomicBool::new(false));
    let client = FastOpenClient {
        remote: SocketAddrV4::new(KERNEL_ADDR, KERNEL_PORT),
        messages: vec![pattern_bytes(0, TFO_LEN), pattern_bytes(1000, TFO_LEN)],
        next: 0,
        current: None,
        failures: failures.clone(),
        finished: finished.clone(),
    };
    let runtime = Runtime::start(runtime_config(&port, IDLE), vec![(port, client)])
        .expect("start the runtime");
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !finished.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut exits = runtime.stop().expect("stop the runtime");
    let exit = exits.pop().expect("one shard");
    assert!(
        finished.load(Ordering::Acquire),
        "the client did not finish"
    );
    assert!(lock(&failures).is_empty(), "{:?}", lock(&failures));
    let printed = server.finish(30);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        vec![
            format!("{TFO_LEN} True").as_str(),
            format!("{TFO_LEN} True").as_str()
        ],
        "what Linux received"
    );
    let x = &exit.stats.tcp_ext;
    println!(
        "TCPFastOpenActive {} ActiveFail {}",
        x.fast_open_active, x.fast_open_active_fail
    );
    assert_eq!(x.fast_open_active, 1, "one SYN's data acknowledged");
    assert_eq!(x.fast_open_active_fail, 0);

    let (_, capture) = exit.port.into_parts();
    let segs = segments(&capture);
    let (syns, synacks) = handshakes(&segs, SHARDNET_ADDR);
    println!(
        "shardnet's SYNs:{}\nLinux's SYN-ACKs:{}",
        summary(&syns),
        summary(&synacks)
    );
    assert_eq!(syns.len(), 2, "one SYN per connection, none retransmitted");
    assert_eq!(syns[0].fast_open, Some(0), "a cookie request");
    assert!(syns[0].payload.is_empty());
    assert!(syns[1].fast_open.is_some_and(|n| n > 0), "a cookie");
    assert_eq!(
        syns[1].payload,
        pattern_bytes(1000, TFO_LEN),
        "the data in the SYN"
    );
    assert_eq!(synacks.len(), 2);
    assert!(
        synacks[0].fast_open.is_some_and(|n| n > 0),
        "Linux gave a cookie"
    );
    assert_eq!(
        synacks[1].ack,
        Some(syns[1].seq.wrapping_add(1 + TFO_LEN as u32)),
        "Linux's SYN-ACK acknowledges the SYN's data (Linux accepted it)"
    );
}

/// Linux's client for the SYN cookie test: `n` connections, each sending `len` bytes and
/// checking the echo.
const COOKIE_CLIENT: &str = r#"
import socket, sys
host, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    msg = pattern(i * 7919, size)
    s.sendall(msg)
    got = b""
    while len(got) < size:
        b = s.recv(65536)
        if not b:
            break
        got += b
    if got != msg:
        print("connection", i, "echoed", len(got), "bytes, not the message", file=sys.stderr)
        sys.exit(1)
    s.close()
print("ok")
"#;

#[test]
fn syn_cookies_answered_by_a_linux_client() {
    if skip() {
        return;
    }
    let _ns = up();
    let port = open_port();
    let served = Arc::new(Mutex::new(Served::default()));
    let runtime = Runtime::start(
        runtime_config(&port, IDLE),
        vec![(
            port,
            EchoServer::new(SocketOptions::default(), served.clone()),
        )],
    )
    .expect("start the runtime");
    let (tx, rx) = std::sync::mpsc::channel();
    runtime
        .run_on(0, move |shard, _| {
            shard.tcp().set_syncookies(SynCookieMode::Always);
            let _ = tx.send(shard.tcp().syncookies());
        })
        .expect("run on the shard");
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(5)),
        Ok(SynCookieMode::Always)
    );
    let out = python_ok(
        NS_KERNEL,
        60,
        COOKIE_CLIENT,
        &[
            SHARDNET_IP,
            &SERVER_PORT.to_string(),
            &COOKIE_CONNS.to_string(),
            &COOKIE_LEN.to_string(),
        ],
    );
    assert_eq!(out.trim(), "ok");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut exits = runtime.stop().expect("stop the runtime");
    let exit = exits.pop().expect("one shard");

    let served = lock(&served);
    assert_eq!(served.failures, 0, "{served:?}");
    let mut expected: Vec<Vec<u8>> = (0..COOKIE_CONNS)
        .map(|i| pattern_bytes(i * 7919, COOKIE_LEN))
        .collect();
    let mut got = served.received.clone();
    expected.sort();
    got.sort();
    assert!(got == expected, "shardnet received other bytes than sent");
    let x = &exit.stats.tcp_ext;
    println!(
        "SyncookiesSent {} SyncookiesRecv {} SyncookiesFailed {}",
        x.syncookies_sent, x.syncookies_recv, x.syncookies_failed
    );
    assert!(x.syncookies_sent >= COOKIE_CONNS as u64);
    assert_eq!(x.syncookies_recv, COOKIE_CONNS as u64);
    assert_eq!(x.syncookies_failed, 0);
    assert_eq!(exit.stats.tcp.passive_opens, COOKIE_CONNS as u64);
    assert_eq!(exit.stats.tcp.estab_resets, 0);

    // Every SYN-ACK shardnet sent was a cookie: the capture shows one per connection.
    let (_, capture) = exit.port.into_parts();
    let (syns, synacks) = handshakes(&segments(&capture), KERNEL_ADDR);
    assert_eq!(syns.len(), COOKIE_CONNS);
    assert_eq!(synacks.len() as u64, x.syncookies_sent);
}
