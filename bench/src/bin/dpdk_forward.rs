//! Packets/s through one queue of a DPDK virtual device on a veth pair, three responders in one
//! run: a raw reflector on the DPDK port (no stack: `rte_eth_rx_burst`, swap the Ethernet, IPv4
//! and UDP addresses of each datagram in place, `rte_eth_tx_burst` of the same mbufs), shardnet's
//! UDP echo on the same port (the runtime, a shard, a bound UDP socket), and the kernel's own UDP
//! echo over the same veth end (kernel to kernel, with the DPDK device closed). The DPDK
//! counterpart of `xdp_forward`. Run as root, with the `dpdk` feature:
//!
//! ```sh
//! cargo run --release -p shardnet-bench --features dpdk --bin dpdk_forward -- \
//!     [--vdev af_packet|af_xdp] [--gen-mode native|generic] [--rounds 3] [--secs 1] \
//!     [--window 32] [--size 64] [--json]
//! ```
//!
//! The responders live in namespace `snet-dfs` (shardnet and the reflector are 198.18.0.2 on
//! veth `snet-dfs0` through the DPDK device, the kernel is 198.18.0.3 on the same veth end); the
//! load comes from namespace `snet-dfk` (198.18.0.1), from two sources in turn:
//!
//! - a **kernel UDP socket** (what an ordinary client sends with; it tops out at a few hundred
//!   thousand sends/s, so it can be the bottleneck rather than the responder), and
//! - an **AF_XDP generator** on `snet-dfk0` ([`shardnet_bench::xdp_generator`], the one
//!   `xdp_forward` uses): raw frames from a UMEM in copy mode, its XDP program attached in
//!   `--gen-mode` (native by default), no kernel stack on the sending side, so that the
//!   responder is the bottleneck; it answers ARP for 198.18.0.1 itself. It is open only for
//!   its own measurements (its program takes everything for 198.18.0.1 away from the load
//!   side's kernel). The figure under this load is the path's ceiling.
//!
//! Each load runs two patterns, each for `--secs` seconds after a short warm-up:
//!
//! - **echo**: closed loop with `--window` datagrams in flight; each echo received sends the
//!   next (a 20 ms silence counts the window as lost and refills it). Reported: echoes/s.
//! - **rx**: open loop, the sender sends as fast as it goes and the responder only counts what
//!   reaches it. Reported: datagrams/s the responder received (and `sent`: what was sent/s).
//!
//! The load runs on CPU 0, every responder (the kernel's echo thread, the reflector, the shard)
//! on CPU 1. With `af_packet` each round measures the kernel (socket load), then opens a fresh
//! DPDK device (a new vdev name per round), measures the reflector and shardnet on it under
//! both loads, closes it and measures the kernel under the generator. The median and range
//! over the rounds are reported, and the ratios of the medians; `--json` prints one JSON
//! object instead (the kernel socket load's keys `echo_raw_pps`, ...; the generator's
//! `gen_echo_raw_pps`, ...).
//!
//! With `--vdev af_xdp` the kernel's rounds (both loads) all run first and one device serves
//! every raw and shardnet round: a second `net_af_xdp` device on the same queue cannot be
//! created in one process, and while it is open the PMD's XDP program takes every frame of the
//! queue. The generator's own program is on the other veth end, so the two do not meet.
//!
//! The namespaces are created by this program (under the interop tests' file lock) and deleted
//! at its end (also on panic); addresses are 198.18.0.0/15 only, every load is bounded in time.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Batch, Frame, Port};
use shardnet::runtime::{App, AppContext, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::SocketHandle;
use shardnet::time::Duration as SnDuration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_af_xdp::AttachMode;
use shardnet_bench::xdp_generator::{Generator, GeneratorRun, Shape, generator_load, in_ns, pin};
use shardnet_dpdk::{DpdkDevice, DpdkPort, Eal, PortConfig, create_vdev};
use std::net::{SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NS_LOAD: &str = "snet-dfk";
const NS_RESP: &str = "snet-dfs";
const DEV_LOAD: &str = "snet-dfk0";
const DEV_RESP: &str = "snet-dfs0";
const LOAD_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SHARDNET_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const PORT: u16 = 7;
const WARMUP: Duration = Duration::from_millis(300);
const LOCK: &str = "/tmp/shardnet-af-xdp-interop.lock";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn sh(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both namespaces and the veth pair, under the interop tests' lock; deleted on drop.
struct Namespaces {
    _lock: std::fs::File,
}

fn down() {
    for ns in [NS_LOAD, NS_RESP] {
        let _ = Command::new("timeout")
            .args(["30", "ip", "netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
}

impl Namespaces {
    fn up() -> Namespaces {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .unwrap_or_else(|e| panic!("{LOCK}: {e}"));
        // SAFETY: flock on a valid descriptor we own; released when the file is closed.
        let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
        down();
        let guard = Namespaces { _lock: lock };
        sh(&["ip", "netns", "add", NS_LOAD]);
        sh(&["ip", "netns", "add", NS_RESP]);
        sh(&[
            "ip",
            "-n",
            NS_LOAD,
            "link",
            "add",
            DEV_LOAD,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            DEV_RESP,
            "netns",
            NS_RESP,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
        ]);
        for (ns, dev, addr) in [(NS_LOAD, DEV_LOAD, LOAD_IP), (NS_RESP, DEV_RESP, KERNEL_IP)] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            // Complete checksums and MTU-sized frames: the vdevs carry no offload metadata.
            let _ = Command::new("timeout")
                .args(["30", "ip", "netns", "exec", ns, "ethtool", "-K", dev])
                .args(["tx", "off", "tso", "off", "gso", "off"])
                .output();
        }
        guard
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        down();
    }
}

/// Closed loop from the load namespace: `window` datagrams in flight to `target` for `secs`
/// after a warm-up. Returns echoes per second.
fn echo_load(target: Ipv4Addr, size: usize, window: usize, secs: f64) -> f64 {
    in_ns(NS_LOAD, move || {
        pin(0);
        let s = UdpSocket::bind(SocketAddrV4::new(LOAD_IP, 0)).expect("bind");
        s.connect(SocketAddrV4::new(target, PORT)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let msg = vec![0x5au8; size];
        let mut buf = vec![0u8; 2048];
        let mut run = |d: Duration| -> u64 {
            let mut got = 0u64;
            for _ in 0..window {
                let _ = s.send(&msg);
            }
            let end = Instant::now() + d;
            while Instant::now() < end {
                match s.recv(&mut buf) {
                    Ok(n) => {
                        if n == size {
                            got += 1;
                        }
                        let _ = s.send(&msg);
                    }
                    Err(_) => {
                        for _ in 0..window {
                            let _ = s.send(&msg);
                        }
                    }
                }
            }
            // Drain the window's echoes so that the next run starts clean.
            while s.recv(&mut buf).is_ok() {}
            got
        };
        run(WARMUP);
        let start = Instant::now();
        let got = run(Duration::from_secs_f64(secs));
        got as f64 / start.elapsed().as_secs_f64()
    })
    .join()
    .expect("the load thread")
}

/// Open loop from the load namespace: sends to `target` as fast as it goes for `secs`;
/// returns (sent/s, what `counter` counted per second after the warm-up).
fn rx_load(target: Ipv4Addr, size: usize, secs: f64, counter: Arc<AtomicU64>) -> (f64, f64) {
    in_ns(NS_LOAD, move || {
        pin(0);
        let s = UdpSocket::bind(SocketAddrV4::new(LOAD_IP, 0)).expect("bind");
        s.connect(SocketAddrV4::new(target, PORT)).expect("connect");
        let msg = vec![0x5au8; size];
        let blast = |d: Duration| -> u64 {
            let mut sent = 0u64;
            let end = Instant::now() + d;
            while Instant::now() < end {
                for _ in 0..64 {
                    if s.send(&msg).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        };
        blast(WARMUP);
        std::thread::sleep(Duration::from_millis(50));
        counter.store(0, Ordering::SeqCst);
        let start = Instant::now();
        let sent = blast(Duration::from_secs_f64(secs));
        let secs = start.elapsed().as_secs_f64();
        // Let the last datagrams land.
        std::thread::sleep(Duration::from_millis(50));
        (
            sent as f64 / secs,
            counter.load(Ordering::SeqCst) as f64 / secs,
        )
    })
    .join()
    .expect("the load thread")
}

/// The kernel's UDP echo (or counter) on 198.18.0.3, until `stop`.
fn kernel_responder(
    echo: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = in_ns(NS_RESP, move || {
        pin(1);
        let s = UdpSocket::bind(SocketAddrV4::new(KERNEL_IP, PORT)).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let _ = ready_tx.send(());
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                count.fetch_add(1, Ordering::Relaxed);
                if echo.load(Ordering::Relaxed) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        }
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(5));
    h
}

/// Swaps source and destination of an Ethernet + IPv4 + UDP frame addressed to `me`, in
/// place. The IPv4 and UDP checksums stay valid: both are sums over the swapped fields.
fn reflect(frame: &mut [u8], me: Ipv4Addr) -> bool {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return false;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if ihl < 20 || frame.len() < 14 + ihl + 8 || frame[30..34] != me.octets() {
        return false;
    }
    for i in 0..6 {
        frame.swap(i, 6 + i);
    }
    for i in 0..4 {
        frame.swap(26 + i, 30 + i);
    }
    let udp = 14 + ihl;
    frame.swap(udp, udp + 2);
    frame.swap(udp + 1, udp + 3);
    true
}

/// The raw reflector: rx burst, swap in place, tx burst of the same mbufs, until `stop`.
fn reflector(
    mut port: DpdkPort,
    echo: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<DpdkPort> {
    std::thread::spawn(move || {
        pin(1);
        let mut rx: Batch<_> = Batch::new();
        let mut tx: Batch<_> = Batch::new();
        while !stop.load(Ordering::Relaxed) {
            let n = port.rx_burst(&mut rx);
            if n == 0 {
                std::thread::yield_now();
                continue;
            }
            count.fetch_add(n as u64, Ordering::Relaxed);
            let reflecting = echo.load(Ordering::Relaxed);
            for mut f in rx.drain(..) {
                if reflecting && reflect(f.data_mut(), SHARDNET_IP) {
                    tx.push(f);
                } else {
                    port.release(f);
                }
            }
            while !tx.is_empty() {
                if port.tx_burst(&mut tx) == 0 {
                    // The ring is full: drop the rest rather than stall the receive side.
                    for f in tx.drain(..) {
                        port.release(f);
                    }
                }
            }
        }
        port
    })
}

/// shardnet's UDP echo (or counter) on 198.18.0.2:7.
struct UdpEcho {
    socket: Option<SocketHandle>,
    buf: Vec<u8>,
    echo: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
}

impl App for UdpEcho {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        let h = match self.socket {
            Some(h) => h,
            None => match s.bind_udp(SocketAddrV4::new(SHARDNET_IP, PORT)) {
                Ok(h) => {
                    self.buf = vec![0; 2048];
                    self.socket = Some(h);
                    h
                }
                Err(e) => panic!("bind UDP {PORT}: {e:?}"),
            },
        };
        let echo = self.echo.load(Ordering::Relaxed);
        let mut n = 0;
        while let Ok(r) = s.recv_from(h, &mut self.buf) {
            n += 1;
            if echo {
                let _ = s.send_to(h, Some(r.from), &self.buf[..r.len]);
            }
        }
        if n > 0 {
            self.count.fetch_add(n, Ordering::Relaxed);
        }
    }
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
    // The same idle behaviour as the reflector: poll, yield when there is nothing.
    c.idle = IdlePolicy::Yield;
    c.pinning = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        Pinning::Cores(vec![1])
    } else {
        Pinning::None
    };
    c.grace = SnDuration::from_secs(1);
    c
}

/// The median and range of `v`.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

/// Reads one figure.
type Pick = fn(&Figures) -> f64;

/// One responder's figures in one round: echoes/s, datagrams/s it received (rx), sent/s (rx).
#[derive(Clone, Copy, Default)]
struct Figures {
    echo: f64,
    rx: f64,
    sent: f64,
}

/// Echo then rx against `target`, counting on `count` and switching `echo`.
fn measure(
    target: Ipv4Addr,
    echo: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
    size: usize,
    window: usize,
    secs: f64,
) -> Figures {
    echo.store(true, Ordering::SeqCst);
    let e = echo_load(target, size, window, secs);
    echo.store(false, Ordering::SeqCst);
    let (sent, rx) = rx_load(target, size, secs, count.clone());
    Figures { echo: e, rx, sent }
}

/// The figures of one AF_XDP generator run.
fn generator_figures(run: GeneratorRun) -> Figures {
    let per_s = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    Figures {
        echo: per_s(run.echoes, run.echo_secs),
        rx: per_s(run.received, run.rx_secs),
        sent: per_s(run.sent, run.rx_secs),
    }
}

/// The MAC address of the responder's veth end (what the kernel responder answers on, and
/// what both PMDs take over), read with `ip -br link`.
fn responder_veth_mac() -> EthernetAddress {
    let out = sh(&["ip", "-n", NS_RESP, "-br", "link", "show", "dev", DEV_RESP]);
    // "snet-dfs0@if2  UP  aa:bb:cc:dd:ee:ff <BROADCAST,...>"
    let field = out
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC address in {out:?}"));
    let mut mac = [0u8; 6];
    let mut parts = field.split(':');
    for b in &mut mac {
        *b = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .unwrap_or_else(|| panic!("{field:?} is not a MAC address"));
    }
    assert!(parts.next().is_none(), "{field:?} is not a MAC address");
    EthernetAddress(mac)
}

/// Creates vdev `name` on the responder's veth and opens it with one queue, from a thread in
/// the responder's namespace (both PMDs reach the interface by name there).
fn open_device(eal: &'static Eal, name: String, args: String) -> (DpdkDevice, DpdkPort) {
    in_ns(NS_RESP, move || {
        let id = create_vdev(eal, &name, &args).unwrap_or_else(|e| panic!("{name},{args}: {e}"));
        let (device, mut ports) =
            DpdkDevice::open(eal, id, &PortConfig::default()).expect("open the device");
        (device, ports.pop().expect("one queue"))
    })
    .join()
    .expect("the device thread")
}

/// Per load (kernel UDP socket, AF_XDP generator), each responder's figures over the rounds.
#[derive(Default)]
struct Results {
    kernel: Vec<Figures>,
    raw: Vec<Figures>,
    stack: Vec<Figures>,
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("dpdk_forward needs root (network namespaces, AF_PACKET/AF_XDP)");
        std::process::exit(2);
    }
    let args: Vec<String> = std::env::args().collect();
    let vdev = arg(&args, "--vdev").unwrap_or_else(|| "af_packet".into());
    let vdev_args = match vdev.as_str() {
        "af_packet" => format!("iface={DEV_RESP},qpairs=1,blocksz=4096,framesz=2048,framecnt=512"),
        "af_xdp" => format!("iface={DEV_RESP},start_queue=0,queue_count=1"),
        other => {
            eprintln!("--vdev {other}: af_packet or af_xdp");
            std::process::exit(2);
        }
    };
    let gen_mode = match arg(&args, "--gen-mode").as_deref() {
        Some("generic") => AttachMode::Generic,
        Some("native") | None => AttachMode::Native,
        Some(other) => {
            eprintln!("--gen-mode native|generic, not {other}");
            std::process::exit(2);
        }
    };
    let num = |name: &str, default: f64| -> f64 {
        arg(&args, name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} {v}: not a number"))
        })
    };
    let rounds = (num("--rounds", 3.0) as usize).max(1);
    let secs = num("--secs", 1.0);
    let window = num("--window", 32.0) as usize;
    let size = num("--size", 64.0) as usize;
    let json = args.iter().any(|a| a == "--json");
    let shape = Shape {
        size,
        window,
        secs,
        warmup: WARMUP,
        cpu: 0,
    };

    let mut eal_args = Eal::default_args();
    eal_args.push(format!(
        "--file-prefix=shardnet-dpdk-forward-{}",
        std::process::id()
    ));
    let eal = Eal::init(&eal_args).unwrap_or_else(|e| panic!("EAL init {eal_args:?}: {e}"));
    // The EAL may have pinned this thread: the load and responder threads pin themselves.
    let _ns = Namespaces::up();
    let veth_mac = responder_veth_mac();

    let echo = Arc::new(AtomicBool::new(true));
    let count = Arc::new(AtomicU64::new(0));
    // [0]: the kernel UDP socket load, [1]: the AF_XDP generator load.
    let mut results: [Results; 2] = Default::default();
    let mut driver = String::new();
    let mut generator_modes = String::new();
    // net_af_packet is reopened every round (kernel, then raw and shardnet on a fresh device,
    // then the kernel again under the generator once the device is closed: interleaved);
    // net_af_xdp cannot be created twice on one queue in a process, and takes every frame of
    // the queue while open: its kernel rounds (both loads) all run first, then one device
    // serves every raw and shardnet round.
    let reopen = vdev == "af_packet";
    let kernel_round = || {
        let stop = Arc::new(AtomicBool::new(false));
        let k = kernel_responder(echo.clone(), count.clone(), stop.clone());
        let f = measure(KERNEL_IP, &echo, &count, size, window, secs);
        stop.store(true, Ordering::SeqCst);
        k.join().expect("the kernel responder");
        f
    };
    // The generator's XDP program takes everything for 198.18.0.1 on the load side's veth
    // end, so the kernel socket's load gets no echoes while it is open: it is opened for the
    // generator's measurements only, and closed before the next kernel socket load.
    let open_generator = || {
        Generator::open(NS_LOAD, DEV_LOAD, LOAD_IP, gen_mode)
            .unwrap_or_else(|e| panic!("opening the generator's AF_XDP port: {e}"))
    };
    let kernel_generator_round = |g: Generator| {
        let stop = Arc::new(AtomicBool::new(false));
        let k = kernel_responder(echo.clone(), count.clone(), stop.clone());
        let (g, run) = generator_load(g, veth_mac, KERNEL_IP, PORT, shape, &echo, &count);
        stop.store(true, Ordering::SeqCst);
        k.join().expect("the kernel responder");
        (g, generator_figures(run))
    };
    if !reopen {
        for _ in 0..rounds {
            results[0].kernel.push(kernel_round());
            let (g, f) = kernel_generator_round(open_generator());
            results[1].kernel.push(f);
            drop(g);
        }
    }
    let mut open: Option<(DpdkDevice, DpdkPort)> = None;
    for round in 0..rounds {
        if reopen {
            // The kernel, with no DPDK device on the veth.
            results[0].kernel.push(kernel_round());
        }
        let (device, port) = match open.take() {
            Some(open) => open,
            None => {
                let (device, port) =
                    open_device(eal, format!("net_{vdev}{round}"), vdev_args.clone());
                // The load side's kernel learns shardnet's (the device's) address without
                // ARP: the raw reflector does not answer ARP.
                let mac = port.capabilities().mac.to_string();
                sh(&[
                    "ip",
                    "-n",
                    NS_LOAD,
                    "neigh",
                    "replace",
                    &SHARDNET_IP.to_string(),
                    "lladdr",
                    &mac,
                    "dev",
                    DEV_LOAD,
                ]);
                (device, port)
            }
        };
        driver = device.driver_name().to_owned();
        let device_mac = port.capabilities().mac;

        // Load 1: a kernel UDP socket.
        let stop = Arc::new(AtomicBool::new(false));
        let r = reflector(port, echo.clone(), count.clone(), stop.clone());
        results[0]
            .raw
            .push(measure(SHARDNET_IP, &echo, &count, size, window, secs));
        stop.store(true, Ordering::SeqCst);
        let port = r.join().expect("the reflector");
        let runtime = shardnet_echo(port, &echo, &count);
        results[0]
            .stack
            .push(measure(SHARDNET_IP, &echo, &count, size, window, secs));
        let port = stop_runtime(runtime);

        // Load 2: the AF_XDP generator, on the load side's veth end (the DPDK device's
        // net_af_xdp program, if any, is on the other end).
        let g = open_generator();
        generator_modes = format!(
            "attach {:?}, bind {:?}",
            g.port().attach_info().mode,
            g.port().bind_mode()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let r = reflector(port, echo.clone(), count.clone(), stop.clone());
        let (g, run) = generator_load(g, device_mac, SHARDNET_IP, PORT, shape, &echo, &count);
        stop.store(true, Ordering::SeqCst);
        let port = r.join().expect("the reflector");
        results[1].raw.push(generator_figures(run));
        let runtime = shardnet_echo(port, &echo, &count);
        let (g, run) = generator_load(g, device_mac, SHARDNET_IP, PORT, shape, &echo, &count);
        let port = stop_runtime(runtime);
        results[1].stack.push(generator_figures(run));
        let device_stats = format!("{:?}", device.stats());

        if reopen {
            // The kernel under the generator once the device is closed.
            drop(port);
            drop(device);
            let (g, f) = kernel_generator_round(g);
            results[1].kernel.push(f);
            drop(g);
        } else {
            drop(g);
            open = Some((device, port));
        }
        if !json {
            for (load, r) in ["kernel UDP socket", "AF_XDP generator"]
                .iter()
                .zip(&results)
            {
                eprintln!(
                    "round {round}, load {load}: echo/s kernel {:.0} raw {:.0} shardnet {:.0}; rx/s kernel {:.0} raw {:.0} shardnet {:.0}",
                    r.kernel[round].echo,
                    r.raw[round].echo,
                    r.stack[round].echo,
                    r.kernel[round].rx,
                    r.raw[round].rx,
                    r.stack[round].rx,
                );
            }
            eprintln!("round {round}: device {device_stats}");
        }
    }
    drop(open);

    let pick = |v: &[Figures], f: fn(&Figures) -> f64| stats(v.iter().map(f).collect());
    let rows: [(&str, Pick); 3] = [("echo", |f| f.echo), ("rx", |f| f.rx), ("sent", |f| f.sent)];
    // The kernel socket load's keys have no prefix (as before the generator was added); the
    // generator's start with `gen_`.
    let loads = [("", "kernel UDP socket"), ("gen_", "AF_XDP generator")];
    if json {
        let mut out = format!(
            "{{\"bench\":\"dpdk_forward\",\"vdev\":\"{vdev}\",\"driver\":\"{driver}\",\"rounds\":{rounds},\"secs\":{secs},\"window\":{window},\"size\":{size},\"generator\":\"AF_XDP on {DEV_LOAD}, {generator_modes}\""
        );
        for ((prefix, _), r) in loads.iter().zip(&results) {
            let whos = [
                ("kernel", &r.kernel),
                ("raw", &r.raw),
                ("shardnet", &r.stack),
            ];
            for (name, f) in rows {
                for (who, v) in whos {
                    let (m, lo, hi) = pick(v, f);
                    out += &format!(
                        ",\"{prefix}{name}_{who}_pps\":{{\"median\":{m:.0},\"min\":{lo:.0},\"max\":{hi:.0}}}"
                    );
                }
            }
            let (k, raw, sn) = (
                pick(&r.kernel, |f| f.echo).0,
                pick(&r.raw, |f| f.echo).0,
                pick(&r.stack, |f| f.echo).0,
            );
            out += &format!(
                ",\"{prefix}echo_shardnet_over_raw\":{:.3},\"{prefix}echo_shardnet_over_kernel\":{:.3},\"{prefix}echo_raw_over_kernel\":{:.3}",
                sn / raw,
                sn / k,
                raw / k
            );
        }
        out += "}";
        println!("{out}");
    } else {
        println!(
            "DPDK {driver} ({vdev}), {size}-byte UDP payloads, echo window {window}, {rounds} rounds of {secs} s, \
             generator AF_XDP on {DEV_LOAD} ({generator_modes}); median (min-max) pkts/s:"
        );
        println!(
            "| load | pattern | kernel | raw DPDK reflector | shardnet on DPDK | shardnet / raw | shardnet / kernel | raw / kernel |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        for ((_, load), r) in loads.iter().zip(&results) {
            for (name, f) in rows {
                let (k, raw, sn) = (pick(&r.kernel, f), pick(&r.raw, f), pick(&r.stack, f));
                println!(
                    "| {load} | {name} | {:.0} ({:.0}-{:.0}) | {:.0} ({:.0}-{:.0}) | {:.0} ({:.0}-{:.0}) | {:.2} | {:.2} | {:.2} |",
                    k.0,
                    k.1,
                    k.2,
                    raw.0,
                    raw.1,
                    raw.2,
                    sn.0,
                    sn.1,
                    sn.2,
                    sn.0 / raw.0,
                    sn.0 / k.0,
                    raw.0 / k.0
                );
            }
        }
    }
}

/// Starts shardnet's UDP echo on `port`.
fn shardnet_echo(
    port: DpdkPort,
    echo: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
) -> Runtime<DpdkPort, UdpEcho> {
    let app = UdpEcho {
        socket: None,
        buf: Vec::new(),
        echo: echo.clone(),
        count: count.clone(),
    };
    Runtime::start(runtime_config(&port), vec![(port, app)]).expect("start the runtime")
}

/// Stops the runtime and returns its port.
fn stop_runtime(runtime: Runtime<DpdkPort, UdpEcho>) -> DpdkPort {
    runtime
        .stop()
        .expect("stop the runtime")
        .pop()
        .expect("one shard")
        .port
}
