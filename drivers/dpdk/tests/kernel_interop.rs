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

use shardnet::port::Port;
use shardnet::runtime::IdlePolicy;
use shardnet::tcp::State;
use shardnet::time::Duration;
use shardnet_dpdk::{DpdkDevice, DpdkPort, PortConfig, create_vdev};
use std::net::SocketAddrV4;
use std::sync::Mutex;
use support::client::{Client, ClientMode, run_client};
use support::linux_peer::{
    BULK_CLIENT, CHURN_CLIENT, ECHO_SERVER, KernelServer, kernel_time_wait, python, python_ok,
    seconds,
};
use support::servers::{ECHO_PORT, start_servers};
use support::shard::{Idle, KERNEL_ADDR, KERNEL_IP, SHARDNET_IP, histogram, lock};
use support::{Names, TestNet, in_namespace, is_root, run, run_ok};

const NS_KERNEL: &str = "snet-dk";
const NS_SHARDNET: &str = "snet-ds";
const DEV_SHARDNET: &str = "snet-ds0";
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

/// The DPDK port has no rx waker: sleeps are capped at `no_waker_sleep`.
const IDLE: Idle = Idle {
    policy: IdlePolicy::Sleep {
        max: Duration::from_millis(100),
    },
    no_waker_sleep: Duration::from_micros(200),
};

/// Creates `vdev` with `args` and opens it with one queue, from a thread inside shardnet's
/// namespace.
fn open_in_namespace(vdev: &'static str, args: String) -> (DpdkDevice, DpdkPort) {
    let eal = common::eal();
    in_namespace(NS_SHARDNET, || {
        let port_id =
            create_vdev(eal, vdev, &args).unwrap_or_else(|e| panic!("{vdev},{args}: {e}"));
        let (device, mut ports) =
            DpdkDevice::open(eal, port_id, &PortConfig::default()).expect("open the device");
        let port = ports.pop().expect("one queue");
        (device, port)
    })
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
    let (runtime, stats) = start_servers(port, IDLE);
    let shardnet_ip = SHARDNET_IP;
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
        shardnet_ip,
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
        shardnet_ip,
    ]);
    assert!(
        neigh.contains(&mac.to_string().to_lowercase()),
        "the kernel's neighbour entry for shardnet: {neigh:?}, shardnet's MAC {mac}"
    );
    let small = python_ok(
        NS_KERNEL,
        30,
        BULK_CLIENT,
        &[shardnet_ip, &echo_port, "100000"],
    );
    assert!(small.starts_with("ok "), "{small}");

    let bulk_out = python(
        NS_KERNEL,
        300,
        BULK_CLIENT,
        &[shardnet_ip, &echo_port, &bulk.to_string()],
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
        NS_KERNEL,
        120,
        CHURN_CLIENT,
        &[shardnet_ip, &echo_port, &CHURN.to_string()],
    );
    let churn_secs = seconds(&churn);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hist = histogram(&runtime);
    let kernel_tw = kernel_time_wait(NS_KERNEL, &["dport = :7"]);
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
    {
        let st = lock(&stats);
        assert_eq!(st.accepted, 2 + CHURN as u64, "{st:?}");
        assert_eq!(st.echoed, 100_000 + bulk as u64 + 32 * CHURN as u64);
        assert_eq!((st.errors, st.resets), (0, 0), "{st:?}");
    }
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
    let server = KernelServer::start(
        NS_KERNEL,
        ECHO_SERVER,
        &[KERNEL_IP, &KERNEL_ECHO_PORT.to_string()],
    );
    let kernel_echo = SocketAddrV4::new(KERNEL_ADDR, KERNEL_ECHO_PORT);
    let run = run_client(
        port,
        Client::new(ClientMode::Bulk, kernel_echo, bulk),
        300,
        IDLE,
    );
    let (st, port, secs) = (run.stats, run.port, run.secs);
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
    let run = run_client(
        port,
        Client::new(ClientMode::Churn, kernel_echo, CHURN),
        120,
        IDLE,
    );
    let (st, hist, port, secs) = (run.stats, run.histogram, run.port, run.secs);
    let kernel_tw = kernel_time_wait(NS_KERNEL, &["sport = :9000"]);
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
