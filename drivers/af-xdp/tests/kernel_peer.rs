//! Interop with the Linux kernel stack: shardnet on an AF_XDP port at one end of a veth pair,
//! the kernel at the other, each in a network namespace this test creates and deletes (the
//! hosts of `scripts/netns.sh`, made by `support::TestNet` under the file lock the other
//! namespace tests take): `snet-k` holds the kernel peer (198.18.0.1), `snet-s` the veth end
//! shardnet drives as 198.18.0.2.
//!
//! Needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN for `setns`). As another user every test
//! prints why and returns; as root a failed setup fails the test. Needs `ip`, `ethtool`,
//! `ping` and `python3` (`scripts/netns.sh install` installs them).
//!
//! Every external command runs under `timeout`, every wait has a deadline, and the namespaces
//! are deleted by a drop guard, also when a test fails.

use shardnet::port::{Frame, Port};
use shardnet::runtime::{ExitReason, IdlePolicy, Runtime};
use shardnet::time::Duration;
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode, BindMode, Error};
use std::net::SocketAddrV4;
use std::sync::Mutex;
use std::time::Instant;

mod support;
use support::client::{Client, ClientMode, run_client};
use support::linux_peer::{ECHO_SERVER, KernelServer, python_ok, seconds};
use support::servers::{ECHO_PORT, Servers};
use support::shard::{
    Idle, KERNEL_ADDR, KERNEL_IP, SHARDNET_ADDR, SHARDNET_IP, lock, runtime_config,
};
use support::{Names, TestNet, in_namespace, is_root, run};

const NS_KERNEL: &str = "snet-k";
const NS_SHARDNET: &str = "snet-s";
const DEV_SHARDNET: &str = "snet-s0";
/// A kernel address on the shardnet side's veth, for the kernel-to-kernel baseline.
const BASELINE_IP: &str = "198.18.0.3";
const BULK_BYTES: usize = 100 << 20;

/// One test of this binary at a time (the file lock orders binaries).
static SERIAL: Mutex<()> = Mutex::new(());

/// This binary's test hosts (see `support`): the hosts `scripts/netns.sh` makes.
const NET: Names = Names {
    kernel_ns: NS_KERNEL,
    shardnet_ns: NS_SHARDNET,
    kernel_dev: "snet-k0",
    shardnet_dev: DEV_SHARDNET,
    kernel_cidr: "198.18.0.1/24",
};

/// Brings this binary's test hosts up (one test at a time, across binaries too).
fn up() -> TestNet {
    TestNet::up(&SERIAL, NET, &[])
}

/// Opens the AF_XDP port from a thread that entered the shardnet namespace (the socket and
/// the XDP link, once made, work from any thread).
fn open_port(mode: AttachMode) -> Result<AfXdpPort, Error> {
    in_namespace(NS_SHARDNET, || {
        let mut config = AfXdpConfig::new(DEV_SHARDNET, SHARDNET_ADDR);
        config.mode = mode;
        AfXdpPort::open(&config)
    })
}

/// Generic mode runs the shard with [`IdlePolicy::Sleep`] and a sleep cap of 100 ms even
/// without a waker, so that only the port's rx waker keeps latency low (checked with ping);
/// native mode yields when idle.
fn idle(mode: AttachMode) -> Idle {
    let policy = match mode {
        AttachMode::Native => IdlePolicy::Yield,
        _ => IdlePolicy::Sleep {
            max: Duration::from_millis(100),
        },
    };
    Idle {
        policy,
        no_waker_sleep: Duration::from_millis(100),
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

/// Runs [`TCP_CLIENT`] against `host`'s echo port: `conns` connections of `size` bytes each.
/// Returns the seconds it took.
fn tcp_echo_from_kernel(host: &str, conns: usize, size: usize) -> f64 {
    let out = python_ok(
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
    seconds(&out)
}

/// Everything a kernel peer does against shardnet's echo server on a port attached in `mode`.
fn kernel_peer_against_shardnet(mode: AttachMode) {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _ns = up();
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
    let servers = Servers::with_udp_echo(SocketAddrV4::new(SHARDNET_ADDR, ECHO_PORT));
    let stats = servers.stats();
    let runtime: Runtime<AfXdpPort, Servers> =
        Runtime::start(runtime_config(&port, idle(mode)), vec![(port, servers)])
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
        SHARDNET_IP,
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
    let udp = python_ok(NS_KERNEL, 60, UDP_CLIENT, &[SHARDNET_IP, "7"]);
    let udp_ok: usize = udp
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("UDP client: {udp}"));
    assert_eq!(udp_ok, 200, "UDP datagrams echoed");

    // TCP echo: many small connections, then one bulk transfer.
    tcp_echo_from_kernel(SHARDNET_IP, 50, 1000);
    let shardnet_secs = tcp_echo_from_kernel(SHARDNET_IP, 1, BULK_BYTES);

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
        let _server = KernelServer::start(
            NS_SHARDNET,
            ECHO_SERVER,
            &[BASELINE_IP, &ECHO_PORT.to_string()],
        );
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
    let st = lock(&stats);
    assert_eq!(st.errors, 0, "{st:?}");
    // Every datagram the client saw echoed, and any it resent after a lost echo.
    assert!(st.udp_echoed >= 200, "UDP echoed {}", st.udp_echoed);
    assert_eq!(st.echoed, (50 * 1000 + BULK_BYTES) as u64);
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

#[test]
fn shardnet_client_against_a_linux_echo_server() {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _ns = up();
    let _server = KernelServer::start(NS_KERNEL, ECHO_SERVER, &[KERNEL_IP, "9000"]);
    let port = open_port(AttachMode::Auto).unwrap_or_else(|e| panic!("opening the port: {e}"));
    let total = 100 << 20;
    // One connection sending `total` bytes, every echoed byte checked, closed after the last.
    let client = Client::new(
        ClientMode::Bulk,
        SocketAddrV4::new(KERNEL_ADDR, 9000),
        total,
    );
    let run = run_client(port, client, 60, idle(AttachMode::Generic));
    let st = run.stats;
    assert_eq!(
        (st.done, st.bad),
        (1, 0),
        "echo mismatch or connection error: {st:?}"
    );
    assert_eq!(st.received, total);
    assert_eq!(run.shard.tcp.active_opens, 1);
    println!(
        "shardnet client: {} MiB echoed by the Linux server in {:.2} s ({:.1} MiB/s)",
        total >> 20,
        run.secs,
        (total >> 20) as f64 / run.secs
    );
}

#[test]
fn clear_errors_for_missing_interface_and_bad_queue() {
    if !is_root() {
        eprintln!("skipping: AF_XDP and network namespaces need root (euid is not 0)");
        return;
    }
    let _ns = up();
    let config = AfXdpConfig::new("snet-missing0", SHARDNET_ADDR);
    match AfXdpPort::open(&config) {
        Err(e @ Error::InterfaceNotFound { .. }) => {
            assert!(e.to_string().contains("not found"), "{e}")
        }
        other => panic!("expected InterfaceNotFound, got {other:?}"),
    }
    let r = in_namespace(NS_SHARDNET, || {
        let mut config = AfXdpConfig::new(DEV_SHARDNET, SHARDNET_ADDR);
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
    });
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
    let _ns = up();
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
    let _ns = up();
    let r = in_namespace(NS_SHARDNET, || {
        // CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39.
        drop_effective_caps(&[12, 13, 21, 38, 39]);
        AfXdpPort::open(&AfXdpConfig::new(DEV_SHARDNET, SHARDNET_ADDR)).map(|_| ())
    });
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
    let _ns = up();
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
    let ports = in_namespace(NS_SHARDNET, || {
        let mut config = AfXdpConfig::new("snet-s1", SHARDNET_ADDR);
        config.mode = AttachMode::Native;
        config.frame_count = 256;
        config.ring_size = 128;
        AfXdpPort::open_queues(&config, &[0, 1])
    })
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
