//! shardnet on DPDK's `net_af_packet` PMD at one end of a veth pair, the Linux kernel at the
//! other, each end in a network namespace this test creates (and deletes in a Drop guard),
//! with addresses from 198.18.0.0/15 only: the kernel pings shardnet and runs a TCP echo
//! client (python3) against shardnet's echo server.
//!
//! Needs root, `ip`, `ethtool`, `ping` and `python3`; without them the test says so and passes,
//! unless `SHARDNET_REQUIRE_TOOLS=1` (set by scripts/test.sh), which makes it fail instead.

mod common;

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Capabilities, Port};
use shardnet::runtime::{App, AppContext, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::{Event, RecvError, SocketHandle};
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use shardnet_dpdk::{DpdkDevice, PortConfig, create_vdev};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

const KERNEL_IP: &str = "198.18.2.1";
const SHARDNET_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const ECHO_PORT: u16 = 7;

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair, deleted (with the pair) on drop.
struct Namespaces {
    /// Where shardnet's end lives.
    shardnet: String,
    /// Where the kernel's end lives, with KERNEL_IP.
    kernel: String,
    /// shardnet's interface (in `shardnet`).
    iface: String,
}

impl Namespaces {
    fn create() -> Namespaces {
        let id = std::process::id() % 100_000;
        let ns = Namespaces {
            shardnet: format!("sdpdk-s{id}"),
            kernel: format!("sdpdk-k{id}"),
            iface: format!("sdpa{id}"),
        };
        let peer = format!("sdpb{id}");
        must(&["ip", "netns", "add", &ns.shardnet]);
        must(&["ip", "netns", "add", &ns.kernel]);
        must(&[
            "ip",
            "link",
            "add",
            &ns.iface,
            "netns",
            &ns.shardnet,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &ns.kernel,
        ]);
        let s = ["ip", "netns", "exec", ns.shardnet.as_str()];
        let k = ["ip", "netns", "exec", ns.kernel.as_str()];
        let cat = |a: &[&str], b: &[&str]| -> Vec<String> {
            a.iter().chain(b).map(|x| (*x).to_owned()).collect()
        };
        let cmds = [
            // shardnet's end carries no kernel address and no IPv6 chatter.
            cat(
                &s,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{}.disable_ipv6=1", ns.iface),
                ],
            ),
            cat(&s, &["ip", "link", "set", &ns.iface, "up"]),
            cat(
                &k,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{peer}.disable_ipv6=1"),
                ],
            ),
            cat(
                &k,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{KERNEL_IP}/24"),
                    "dev",
                    &peer,
                ],
            ),
            cat(&k, &["ip", "link", "set", &peer, "up"]),
            cat(&k, &["ip", "link", "set", "lo", "up"]),
        ];
        for c in &cmds {
            let c: Vec<&str> = c.iter().map(String::as_str).collect();
            must(&c);
        }
        // The kernel would otherwise hand af_packet frames with checksums left for a NIC to
        // fill (veth offloads): shardnet verifies checksums in software.
        for (nsv, dev) in [(&s, ns.iface.as_str()), (&k, peer.as_str())] {
            let c = cat(
                nsv,
                &[
                    "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                    "gro", "off",
                ],
            );
            let c: Vec<&str> = c.iter().map(String::as_str).collect();
            must(&c);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting the namespaces deletes the veth pair.
        let _ = run(&["ip", "netns", "del", &self.shardnet]);
        let _ = run(&["ip", "netns", "del", &self.kernel]);
    }
}

/// Runs `f` on this thread inside network namespace `name`, then returns to the original one.
fn in_netns<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let original = File::open("/proc/thread-self/ns/net").unwrap();
    let target = File::open(format!("/var/run/netns/{name}")).unwrap();
    // SAFETY: setns with a valid namespace fd only changes this thread's network namespace.
    assert_eq!(
        unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    let result = f();
    // SAFETY: as above, back to the namespace this thread started in.
    assert_eq!(
        unsafe { libc::setns(original.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    result
}

fn tools_present() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
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

#[derive(Default)]
struct EchoServer {
    events: Vec<Event>,
    conns: Vec<SocketHandle>,
    buf: Vec<u8>,
    echoed: u64,
}

impl App for EchoServer {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let listeners = ctx.listeners;
        let mut s = ctx.sockets();
        self.events.clear();
        s.poll_events(&mut self.events);
        for &l in listeners {
            while let Ok((h, _)) = s.accept(SocketHandle::Listener(l)) {
                self.conns.push(h);
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            let h = self.conns[i];
            let mut closed = false;
            loop {
                // Echo only what the send buffer takes now; the rest stays for the next step.
                let room = 4096;
                match s.recv(h, &mut self.buf[..room]) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        let mut off = 0;
                        while off < n {
                            match s.send(h, &self.buf[off..n]) {
                                Ok(k) => off += k,
                                Err(_) => break,
                            }
                        }
                        self.echoed += off as u64;
                        if off < n {
                            closed = true;
                            break;
                        }
                    }
                    Err(RecvError::WouldBlock) => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                let _ = s.close(h);
                self.conns.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

/// The kernel's TCP client: sends `size` random bytes in one connection (while reading the
/// echo), checks the echo, and prints OK.
const PY_CLIENT: &str = r#"
import os, socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
s = socket.create_connection((host, port), timeout=10)
s.setblocking(True)
got = bytearray()
sent = 0
while sent < len(data):
    sent += s.send(data[sent:sent + 16384])
    while len(got) < sent:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
s.shutdown(socket.SHUT_WR)
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
s.close()
print("OK" if bytes(got) == data else "MISMATCH %d of %d" % (len(got), len(data)))
"#;

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
    let ns = Namespaces::create();
    // The PMD opens its packet socket, and reaches its interface by name (ioctl), in the
    // calling thread's namespace: the device lives and dies in shardnet's namespace (the
    // shard threads the runtime spawns inherit it).
    let caps = in_netns(&ns.shardnet, || {
        let args = format!(
            "iface={},qpairs=1,blocksz=4096,framesz=2048,framecnt=512",
            ns.iface
        );
        shardnet_against_the_kernel(&ns.kernel, "net_af_packet0", &args, 1, |_| {})
    });
    // af_packet offers no checksum offload and no RSS.
    assert_eq!(caps.checksum, Default::default());
    assert_eq!(caps.rss, None);
}

/// One namespace holding a `net_tap` device's kernel interface: the kernel end of the wire.
struct TapNamespace(String);

impl Drop for TapNamespace {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.0]);
    }
}

#[test]
fn the_kernel_echoes_with_shardnet_on_a_two_queue_net_tap_with_checksum_offloads() {
    if skip_without_tools() {
        return;
    }
    common::eal();
    let id = std::process::id() % 100_000;
    let ns = TapNamespace(format!("sdpdk-t{id}"));
    must(&["ip", "netns", "add", &ns.0]);
    let iface = format!("sdpt{id}");
    let caps = in_netns(&ns.0, || {
        shardnet_against_the_kernel(&ns.0, "net_tap0", &format!("iface={iface}"), 2, |caps| {
            // The kernel's end of the tap gets its own address (the PMD gives both ends the
            // same one by default).
            let mut mac = caps.mac.0;
            mac[5] ^= 0x01;
            let mac = mac.map(|b| format!("{b:02x}")).join(":");
            let k = ["ip", "netns", "exec", ns.0.as_str()];
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
                must(&c);
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

    let mut config = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac: caps.mac,
        cidr: Ipv4Cidr::new(SHARDNET_IP, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    }));
    config.idle = IdlePolicy::Sleep {
        max: Duration::from_millis(1),
    };
    config.pinning = Pinning::None;
    let shards = ports
        .into_iter()
        .map(|p| {
            let app = EchoServer {
                buf: vec![0; 4096],
                ..EchoServer::default()
            };
            (p, app)
        })
        .collect();
    let runtime = Runtime::start(config, shards).unwrap();
    runtime.listen(ECHO_PORT, 64).unwrap();

    let ip = SHARDNET_IP.to_string();
    let ping = run(&[
        "ip", "netns", "exec", kernel_ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", &ip,
    ]);
    let ping_out = String::from_utf8_lossy(&ping.stdout).into_owned();
    eprintln!("{vdev}: {}", ping_out.lines().last().unwrap_or_default());
    let echo = run(&[
        "ip",
        "netns",
        "exec",
        kernel_ns,
        "timeout",
        "60",
        "python3",
        "-c",
        PY_CLIENT,
        &ip,
        &ECHO_PORT.to_string(),
        "1000000",
    ]);
    let echo_out = String::from_utf8_lossy(&echo.stdout).into_owned();
    let echo_err = String::from_utf8_lossy(&echo.stderr).into_owned();
    let exits = runtime.stop().unwrap();
    let stats = device.stats().unwrap();
    eprintln!("{vdev} device counters: {stats:?}");

    assert!(ping.status.success(), "ping failed:\n{ping_out}");
    assert!(ping_out.contains("5 received"), "{ping_out}");
    assert_eq!(
        echo_out.trim(),
        "OK",
        "python client: {echo_out} {echo_err}"
    );
    assert_eq!(exits.iter().map(|e| e.app.echoed).sum::<u64>(), 1_000_000);
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
