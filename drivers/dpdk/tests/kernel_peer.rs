//! shardnet on DPDK's `net_af_packet` PMD at one end of a veth pair, the Linux kernel at the
//! other, each end in a network namespace this test creates (and deletes in a Drop guard),
//! with addresses from 198.18.0.0/15 only: the kernel pings shardnet and runs a TCP echo
//! client (python3) against shardnet's echo server. The same over a two-queue `net_tap`, whose
//! kernel end lives in a namespace of its own. The namespaces are made, and the namespace file
//! lock taken, by the AF_XDP tests' harness (`../af-xdp/tests/support`).
//!
//! Needs root, `ip`, `ethtool`, `ping` and `python3`; without them the test says so and passes,
//! unless `SHARDNET_REQUIRE_TOOLS=1` (set by scripts/test.sh), which makes it fail instead.

mod common;
#[path = "../../af-xdp/tests/support/mod.rs"]
mod support;

use shardnet::port::{Capabilities, Port};
use shardnet::runtime::{IdlePolicy, Runtime};
use shardnet::time::Duration;
use shardnet_dpdk::{DpdkDevice, PortConfig, create_vdev};
use std::process::Command;
use std::sync::Mutex;
use support::linux_peer::{BULK_CLIENT, python_ok};
use support::servers::{ECHO_PORT, Servers};
use support::shard::{Idle, KERNEL_IP, SHARDNET_IP, lock, runtime_config};
use support::{Names, NamespaceLock, TestNet, in_namespace, is_root, run, run_ok};

/// One test at a time in this binary (the file lock orders binaries).
static SERIAL: Mutex<()> = Mutex::new(());

/// The `net_af_packet` test's hosts: shardnet's veth end in `snet-ps`, the kernel's in
/// `snet-pk`.
const NET: Names = Names {
    kernel_ns: "snet-pk",
    shardnet_ns: "snet-ps",
    kernel_dev: "snet-pk0",
    shardnet_dev: "snet-ps0",
    kernel_cidr: "198.18.0.1/24",
};

/// The `net_tap` test's namespace, holding the tap's kernel end.
const TAP_NS: &str = "snet-pt";
/// The tap's kernel interface.
const TAP_IFACE: &str = "snet-pt0";

/// The shards sleep at most 1 ms when idle (the PMDs here have no rx waker).
const IDLE: Idle = Idle {
    policy: IdlePolicy::Sleep {
        max: Duration::from_millis(1),
    },
    no_waker_sleep: Duration::from_micros(200),
};

fn tools_present() -> Result<(), String> {
    if !is_root() {
        return Err("not root".into());
    }
    for tool in ["ip", "ethtool", "ping", "python3"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("{tool} is missing"));
        }
    }
    Ok(())
}

fn skip_without_tools() -> bool {
    if let Err(why) = tools_present() {
        if std::env::var("SHARDNET_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("cannot run the kernel peer test: {why}");
        }
        eprintln!("skipped: {why}");
        return true;
    }
    false
}

#[test]
fn the_kernel_pings_and_echoes_over_tcp_with_shardnet_on_net_af_packet() {
    if skip_without_tools() {
        return;
    }
    // The EAL starts in the test's own namespace; only the device lives in shardnet's.
    common::eal();
    let _net = TestNet::up(&SERIAL, NET, &[]);
    // The PMD opens its packet socket, and reaches its interface by name (ioctl), in the
    // calling thread's namespace: the device lives and dies on a thread in shardnet's
    // namespace (the shard threads the runtime spawns there inherit it).
    let caps = in_namespace(NET.shardnet_ns, || {
        let args = format!(
            "iface={},qpairs=1,blocksz=4096,framesz=2048,framecnt=512",
            NET.shardnet_dev
        );
        shardnet_against_the_kernel(NET.kernel_ns, "net_af_packet0", &args, 1, |_| {})
    });
    // af_packet offers no checksum offload and no RSS.
    assert_eq!(caps.checksum, Default::default());
    assert_eq!(caps.rss, None);
}

/// One namespace holding a `net_tap` device's kernel interface: the kernel end of the wire.
/// Created under the namespace locks, deleted (before the locks are released) on drop.
struct TapNamespace {
    name: &'static str,
    _locks: NamespaceLock,
}

impl TapNamespace {
    fn create(name: &'static str) -> TapNamespace {
        let locks = NamespaceLock::take(&SERIAL);
        let _ = run(&["timeout", "30", "ip", "netns", "del", name]);
        run_ok(&["timeout", "30", "ip", "netns", "add", name]);
        TapNamespace {
            name,
            _locks: locks,
        }
    }
}

impl Drop for TapNamespace {
    fn drop(&mut self) {
        let _ = run(&["timeout", "30", "ip", "netns", "del", self.name]);
    }
}

#[test]
fn the_kernel_echoes_with_shardnet_on_a_two_queue_net_tap_with_checksum_offloads() {
    if skip_without_tools() {
        return;
    }
    common::eal();
    let ns = TapNamespace::create(TAP_NS);
    let iface = TAP_IFACE;
    let caps = in_namespace(ns.name, || {
        shardnet_against_the_kernel(ns.name, "net_tap0", &format!("iface={iface}"), 2, |caps| {
            // The kernel's end of the tap gets its own address (the PMD gives both ends the
            // same one by default).
            let mut mac = caps.mac.0;
            mac[5] ^= 0x01;
            let mac = mac.map(|b| format!("{b:02x}")).join(":");
            let k = ["timeout", "30", "ip", "netns", "exec", ns.name];
            for cmd in [
                vec![
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{iface}.disable_ipv6=1"),
                ],
                vec!["ip", "link", "set", &iface, "address", &mac],
                vec![
                    "ip",
                    "addr",
                    "add",
                    &format!("{KERNEL_IP}/24"),
                    "dev",
                    &iface,
                ],
                vec!["ip", "link", "set", &iface, "up"],
                vec!["ip", "link", "set", "lo", "up"],
                vec![
                    "ethtool", "-K", &iface, "tx", "off", "tso", "off", "gso", "off",
                ],
            ] {
                let c: Vec<&str> = k
                    .iter()
                    .copied()
                    .chain(cmd.iter().map(|s| s.as_ref()))
                    .collect();
                run_ok(&c);
            }
        })
    });
    // The tap PMD computes and verifies checksums itself and offers all four offloads: the
    // stack left every IPv4 and TCP checksum of this test to the port's transmit flags.
    assert_eq!(
        (
            caps.checksum.rx_ipv4,
            caps.checksum.rx_l4,
            caps.checksum.tx_ipv4,
            caps.checksum.tx_l4
        ),
        (true, true, true, true)
    );
    // Without its flow engine (no multiq qdisc here) the tap cannot report its RSS.
    assert_eq!(caps.rss, None);
}

/// Opens `vdev` with `queues` queues in the calling thread's namespace, runs `setup_kernel`,
/// starts an echo server runtime on it, and lets the kernel in `kernel_ns` ping it and run a
/// TCP echo of 1 MB. Returns the port's capabilities.
fn shardnet_against_the_kernel(
    kernel_ns: &str,
    vdev: &str,
    args: &str,
    queues: u16,
    setup_kernel: impl FnOnce(&Capabilities),
) -> Capabilities {
    let eal = common::eal();
    let port_id = create_vdev(eal, vdev, args).unwrap();
    let (device, ports) = DpdkDevice::open(
        eal,
        port_id,
        &PortConfig {
            queues,
            pool_size: 4095,
            ..PortConfig::default()
        },
    )
    .unwrap();
    assert_eq!(device.driver_name(), vdev.trim_end_matches('0'));
    assert!(device.link().unwrap().up || vdev.starts_with("net_tap"));
    // Devices that pre-post RX buffers (tap, NICs) hold some of the pool from the start.
    let free_at_start: Vec<usize> = ports.iter().map(|p| p.pool_stats().free).collect();
    let caps = ports[0].capabilities().clone();
    assert_ne!(
        caps.mac.0, [0; 6],
        "the PMD reports the interface's address"
    );
    setup_kernel(&caps);

    // Every shard serves: the kernel's connection lands on whichever queue RSS picks.
    let config = runtime_config(&ports[0], IDLE);
    let shards = ports.into_iter().map(|p| (p, Servers::default())).collect();
    let runtime = Runtime::start(config, shards).unwrap();
    runtime.listen(ECHO_PORT, 64).unwrap();

    let ip = SHARDNET_IP;
    let ping = run(&[
        "ip", "netns", "exec", kernel_ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", ip,
    ]);
    let ping_out = String::from_utf8_lossy(&ping.stdout).into_owned();
    eprintln!("{vdev}: {}", ping_out.lines().last().unwrap_or_default());
    let echo = python_ok(
        kernel_ns,
        60,
        BULK_CLIENT,
        &[ip, &ECHO_PORT.to_string(), "1000000"],
    );
    let exits = runtime.stop().unwrap();
    let stats = device.stats().unwrap();
    eprintln!("{vdev} device counters: {stats:?}");

    assert!(ping.status.success(), "ping failed:\n{ping_out}");
    assert!(ping_out.contains("5 received"), "{ping_out}");
    assert!(echo.starts_with("ok "), "python client: {echo}");
    let echoed: u64 = exits.iter().map(|e| lock(&e.app.stats()).echoed).sum();
    assert_eq!(echoed, 1_000_000);
    assert_eq!(
        exits.iter().map(|e| e.stats.tcp.passive_opens).sum::<u64>(),
        1
    );
    assert!(stats.rx_packets > 0 && stats.tx_packets > 0);
    for e in &exits {
        assert_eq!(
            e.port.pool_stats().free,
            free_at_start[e.index],
            "an mbuf of queue {} leaked",
            e.index
        );
    }
    caps
}
