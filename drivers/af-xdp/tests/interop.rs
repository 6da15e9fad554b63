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

use shardnet::port::Port;
use shardnet::runtime::IdlePolicy;
use shardnet::tcp::State;
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode, Error};
use shardnet_memory::{Impaired, ImpairedConfig, Impairments};
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

mod support;
use support::client::{Client, ClientMode, ClientStats, run_client};
use support::linux_peer::{
    BULK_CLIENT, CHURN_CLIENT, ECHO_SERVER, KernelServer, kernel_time_wait, python_ok, seconds,
};
use support::pattern::pattern;
use support::servers::{ABORT_PORT, ECHO_PORT, HALF_IN, HALF_OUT, HALF_PORT, start_servers};
use support::shard::{Idle, KERNEL_ADDR, KERNEL_IP, SHARDNET_ADDR, SHARDNET_IP, histogram, lock};
use support::{Names, TestNet, in_namespace, is_root, run, run_ok};

const NS_KERNEL: &str = "snet-ik";
const NS_SHARDNET: &str = "snet-is";
const DEV_KERNEL: &str = "snet-ik0";
const DEV_SHARDNET: &str = "snet-is0";
const KERNEL_CIDR: &str = "198.18.0.1/24";
/// A kernel address on shardnet's veth end, for kernel-to-kernel traffic beside shardnet.
const SIDE_IP: &str = "198.18.0.3";

/// Kernel servers.
const KERNEL_ECHO_PORT: u16 = 9000;
const KERNEL_HALF_PORT: u16 = 9001;
/// The kernel's `socat` echo server.
const KERNEL_SOCAT_PORT: u16 = 9002;
/// Connections in the churn against `socat` (one process per connection: fewer than [`CHURN`]).
const SOCAT_CHURN: usize = 500;
/// Connections in each churn test.
const CHURN: usize = 3000;

static SERIAL: Mutex<()> = Mutex::new(());
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

/// Opens the AF_XDP port, attached in `mode` (generic or native XDP), from a thread inside
/// shardnet's namespace.
fn open_port(mode: AttachMode) -> AfXdpPort {
    let port = in_namespace(NS_SHARDNET, || -> Result<AfXdpPort, Error> {
        let mut config = AfXdpConfig::new(DEV_SHARDNET, SHARDNET_ADDR);
        config.mode = mode;
        AfXdpPort::open(&config)
    })
    .unwrap_or_else(|e| panic!("opening the AF_XDP port: {e}"));
    assert_eq!(port.attach_info().mode, mode, "attached as asked");
    port
}

/// Every shard here sleeps up to 100 ms when idle (the AF_XDP port's rx waker wakes it).
fn sleepy() -> Idle {
    Idle {
        policy: IdlePolicy::Sleep {
            max: Duration::from_millis(100),
        },
        no_waker_sleep: Duration::from_millis(1),
    }
}

/// Runs shardnet's client in `mode` against the kernel's `server_port` (see
/// `support::client`): what it saw, the shard's TCP states, the port and the seconds it took.
fn client_run<P: Port + Send + 'static>(
    port: P,
    mode: ClientMode,
    server_port: u16,
    total: usize,
    secs: u64,
) -> (ClientStats, shardnet::socket::StateHistogram, P, f64)
where
    P::Frame: Send,
{
    let client = Client::new(mode, SocketAddrV4::new(KERNEL_ADDR, server_port), total);
    let r = run_client(port, client, secs, sleepy());
    (r.stats, r.histogram, r.port, r.secs)
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

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return true;
    }
    false
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
            SHARDNET_IP,
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
    let (st, hist, _port, _) = client_run(
        open_port(mode),
        ClientMode::HalfClose,
        KERNEL_HALF_PORT,
        1,
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
        &[SHARDNET_IP, &ECHO_PORT.to_string()],
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
        &[SHARDNET_IP, &ABORT_PORT.to_string()],
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
    let (st, hist, _port, _) =
        client_run(open_port(mode), ClientMode::Abort, KERNEL_ECHO_PORT, 1, 30);
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
        &[SHARDNET_IP, &ECHO_PORT.to_string(), &CHURN.to_string()],
    );
    let secs = seconds(&out);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hist = histogram(&runtime);
    let kernel_tw = kernel_time_wait(NS_KERNEL, &[]);
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
    let (st, hist, _port, secs) = client_run(
        open_port(mode),
        ClientMode::Churn,
        KERNEL_ECHO_PORT,
        CHURN,
        90,
    );
    let kernel_tw = kernel_time_wait(NS_KERNEL, &[]);
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
        &[SHARDNET_IP, &ECHO_PORT.to_string(), "1"],
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
    let (st, _, pcap, _) = client_run(pcap, ClientMode::Churn, KERNEL_ECHO_PORT, 1, 30);
    assert_eq!((st.done, st.bad), (1, 0));
    let (_, client_capture) = pcap.into_parts();

    let server_side = handshake_options(&server_capture);
    let client_side = handshake_options(&client_capture);
    println!("shardnet as server: {server_side:?}\nshardnet as client: {client_side:?}");
    let linux = KERNEL_ADDR;
    for (capture, syn_from, synack_from) in [
        (&server_side, linux, SHARDNET_ADDR),
        (&client_side, SHARDNET_ADDR, linux),
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
        &[SHARDNET_IP, &ECHO_PORT.to_string(), &size.to_string()],
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
    let (st, _, port, secs) = client_run(port, ClientMode::Bulk, KERNEL_ECHO_PORT, size, 90);
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
                SHARDNET_IP,
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
        SHARDNET_IP,
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
    let (st, _, port, secs) = client_run(
        open_port(mode),
        ClientMode::Bulk,
        KERNEL_SOCAT_PORT,
        socat_bytes,
        90,
    );
    assert_eq!(
        (st.done, st.bad, st.received),
        (1, 0, socat_bytes),
        "{st:?}"
    );
    drop(port);
    let (st, hist, _port, churn_secs) = client_run(
        open_port(mode),
        ClientMode::Churn,
        KERNEL_SOCAT_PORT,
        SOCAT_CHURN,
        120,
    );
    let filter = format!("sport = :{KERNEL_SOCAT_PORT}");
    let kernel_tw = kernel_time_wait(NS_KERNEL, &[&filter]);
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
