//! Packets/s through one AF_XDP queue on a veth pair, three responders in one run: a raw
//! reflector on the AF_XDP port (no stack: swaps the Ethernet, IPv4 and UDP addresses of each
//! datagram in place and transmits the same UMEM frame back), shardnet's UDP echo on the same
//! port (the runtime, a shard, a bound UDP socket), and the kernel's own UDP echo over the same
//! veth (kernel to kernel, no XDP program on the responder's side). Run as root:
//!
//! ```sh
//! cargo run --release -p shardnet-bench --bin xdp_forward -- [--mode native|generic] [--rounds 5] [--secs 1] [--window 32] [--size 64] [--json]
//! ```
//!
//! `--json` prints one JSON object (every median, minimum and maximum, per load and responder)
//! on the last line of stdout, after the table; the scenario matrix (`matrix`) reads it.
//!
//! The responders live in namespace `snet-bs` (shardnet 198.18.0.2 on veth `snet-bs0`, the
//! kernel at 198.18.0.3 on the same veth end); the load comes from namespace `snet-bk`
//! (198.18.0.1), from two sources in turn:
//!
//! - a **kernel UDP socket** (what an ordinary client sends with), and
//! - an **AF_XDP generator** on `snet-bk0`: raw frames from a UMEM, no kernel stack on the
//!   sending side, so that the responder rather than the sender is the bottleneck (it answers
//!   ARP for 198.18.0.1 itself).
//!
//! Each load runs two patterns, each for `--secs` seconds after a short warm-up:
//!
//! - **echo**: closed loop with `--window` datagrams in flight; each echo received sends the
//!   next (a 20 ms silence counts the window's datagrams as lost and refills it). Reported:
//!   echoes received per second.
//! - **rx**: open loop, the sender blasts as fast as it goes and the responder only counts what
//!   reaches it (the reflector and shardnet drop, the kernel reads). Reported: datagrams the
//!   responder received per second.
//!
//! The load runs on CPU 0 and every responder (the kernel's echo thread, the reflector, the
//! shard) on CPU 1. `--rounds` rounds run all the measurements one after the other
//! (interleaved, so that a shared VM's drift spreads over all of them); the median and range
//! over the rounds are reported, and the ratios of the medians.
//!
//! The namespaces are created by this program and deleted at its end (also on panic);
//! addresses are 198.18.0.0/15 only, every load is bounded in time.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Batch, Frame, Port};
use shardnet::runtime::{App, AppContext, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::SocketHandle;
use shardnet::time::Duration as SnDuration;
use shardnet::wire::Ipv4Addr;
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode};
use shardnet_bench::xdp_generator::{Generator, GeneratorRun, Shape, generator_load, in_ns, pin};
use std::net::{SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NS_LOAD: &str = "snet-bk";
const NS_RESP: &str = "snet-bs";
const DEV_LOAD: &str = "snet-bk0";
const DEV_RESP: &str = "snet-bs0";
const LOAD_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SHARDNET_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const PORT: u16 = 7;
const WARMUP: Duration = Duration::from_millis(300);

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn sh(args: &[&str]) {
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
}

/// Both namespaces and the veth pair; deleted on drop.
struct Namespaces;

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
        down();
        let guard = Namespaces;
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
            // Complete checksums and MTU-sized frames: AF_XDP carries no offload metadata.
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

/// What a load run measured.
#[derive(Clone, Copy, Debug)]
struct Load {
    /// Echoes received (echo) or datagrams sent (rx).
    packets: u64,
    /// Datagrams presumed lost (echo).
    lost: u64,
    secs: f64,
}

/// Closed loop: `window` datagrams in flight to `target` for `secs` after a warm-up.
fn echo_load(target: Ipv4Addr, size: usize, window: usize, secs: f64) -> Load {
    in_ns(NS_LOAD, move || {
        pin(0);
        let s = UdpSocket::bind(SocketAddrV4::new(LOAD_IP, 0)).expect("bind");
        s.connect(SocketAddrV4::new(target, PORT)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let msg = vec![0x5au8; size];
        let mut buf = vec![0u8; 2048];
        let mut run = |d: Duration, count: bool| -> (u64, u64) {
            let (mut got, mut lost) = (0u64, 0u64);
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
                        lost += window as u64;
                        for _ in 0..window {
                            let _ = s.send(&msg);
                        }
                    }
                }
            }
            // Drain the window's echoes so that the next run starts clean.
            while s.recv(&mut buf).is_ok() {}
            if count { (got, lost) } else { (0, 0) }
        };
        run(WARMUP, false);
        let start = Instant::now();
        let (got, lost) = run(Duration::from_secs_f64(secs), true);
        Load {
            packets: got,
            lost,
            secs: start.elapsed().as_secs_f64(),
        }
    })
    .join()
    .expect("the load thread")
}

/// Open loop: blast datagrams at `target` for `secs`; `counter` is reset after the warm-up.
fn rx_load(target: Ipv4Addr, size: usize, secs: f64, counter: Arc<AtomicU64>) -> (Load, u64) {
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
            Load {
                packets: sent,
                lost: 0,
                secs,
            },
            counter.load(Ordering::SeqCst),
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

/// The raw reflector: rx burst, swap in place, tx burst of the same frames, until `stop`.
fn reflector(
    mut port: AfXdpPort,
    echo: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<AfXdpPort> {
    std::thread::spawn(move || {
        pin(1);
        let mut rx: Batch<_> = Batch::new();
        let mut tx: Batch<_> = Batch::new();
        while !stop.load(Ordering::Relaxed) {
            let n = port.rx_burst(&mut rx);
            if n == 0 {
                // An empty tx burst reaps completions.
                port.tx_burst(&mut tx);
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

fn runtime_config(port: &AfXdpPort) -> RuntimeConfig {
    let caps = port.capabilities();
    let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac: caps.mac,
        cidr: Ipv4Cidr::new(SHARDNET_IP, 24).expect("a valid prefix"),
        gateway: None,
        mtu: caps.mtu,
        ttl: 64,
    }));
    // The same idle behaviour as the reflector: poll, yield when there is nothing.
    c.idle = IdlePolicy::Yield;
    // Like the other responders: CPU 1 (the load runs on CPU 0).
    c.pinning = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        Pinning::Cores(vec![1])
    } else {
        Pinning::None
    };
    c.grace = SnDuration::from_secs(1);
    c
}

/// One responder's figures in one round: echo pkts/s, echoes presumed lost, rx pkts/s at the
/// responder, sender pkts/s in the rx pattern.
#[derive(Clone, Copy, Default)]
struct Figures {
    echo: f64,
    lost: u64,
    rx: f64,
    sent: f64,
}

fn figures(echo: Load, rx: (Load, u64)) -> Figures {
    Figures {
        echo: echo.packets as f64 / echo.secs,
        lost: echo.lost,
        rx: rx.1 as f64 / rx.0.secs,
        sent: rx.0.packets as f64 / rx.0.secs,
    }
}

/// The figures of one generator run (the same arithmetic as [`figures`]).
fn generator_figures(run: GeneratorRun) -> Figures {
    let echo = Load {
        packets: run.echoes,
        lost: run.lost,
        secs: run.echo_secs,
    };
    let rx = Load {
        packets: run.sent,
        lost: 0,
        secs: run.rx_secs,
    };
    figures(echo, (rx, run.received))
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

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xdp_forward needs root (AF_XDP, network namespaces)");
        std::process::exit(2);
    }
    let args: Vec<String> = std::env::args().collect();
    let mode = match arg(&args, "--mode").as_deref() {
        Some("generic") => AttachMode::Generic,
        Some("native") | None => AttachMode::Native,
        Some(other) => {
            eprintln!("--mode native|generic, not {other}");
            std::process::exit(2);
        }
    };
    let secs: f64 = arg(&args, "--secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0_f64)
        .clamp(0.2, 30.0);
    let rounds: usize = arg(&args, "--rounds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize)
        .clamp(1, 50);
    let window: usize = arg(&args, "--window")
        .and_then(|v| v.parse().ok())
        .unwrap_or(32usize)
        .clamp(1, 512);
    let size: usize = arg(&args, "--size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(64usize)
        .clamp(1, 1472);

    let json = args.iter().any(|a| a == "--json");
    let shape = Shape {
        size,
        window,
        secs,
        warmup: WARMUP,
        cpu: 0,
    };
    let _ns = Namespaces::up();
    let echo = Arc::new(AtomicBool::new(true));
    let count = Arc::new(AtomicU64::new(0));
    let names = [
        "kernel UDP echo (kernel to kernel)",
        "AF_XDP raw reflector (no stack)",
        "shardnet UDP echo (runtime + socket)",
    ];
    // [load][responder]: load 0 is a kernel UDP socket, load 1 the AF_XDP generator.
    let mut results: [[Vec<Figures>; 3]; 2] = Default::default();
    let mut attach = None;

    // Rounds interleave the responders, so that the machine's drift (a shared VM) spreads
    // over all of them.
    for round in 0..rounds {
        // The kernel's UDP echo on the same veth, no XDP program attached anywhere.
        {
            let stop = Arc::new(AtomicBool::new(false));
            let h = kernel_responder(echo.clone(), count.clone(), stop.clone());
            echo.store(true, Ordering::SeqCst);
            let e = echo_load(KERNEL_IP, size, window, secs);
            echo.store(false, Ordering::SeqCst);
            let r = rx_load(KERNEL_IP, size, secs, count.clone());
            stop.store(true, Ordering::SeqCst);
            let _ = h.join();
            results[0][0].push(figures(e, r));
        }

        // The raw AF_XDP reflector.
        let port = in_ns(NS_RESP, move || {
            let mut c = AfXdpConfig::new(DEV_RESP, SHARDNET_IP);
            c.mode = mode;
            AfXdpPort::open(&c)
        })
        .join()
        .expect("the port thread")
        .unwrap_or_else(|e| panic!("opening the AF_XDP port: {e}"));
        attach = Some((port.attach_info().mode, port.bind_mode()));
        // No ARP in the reflector: the sender gets a static neighbour entry.
        let resp_mac = port.capabilities().mac;
        sh(&[
            "ip",
            "-n",
            NS_LOAD,
            "neigh",
            "replace",
            &SHARDNET_IP.to_string(),
            "lladdr",
            &resp_mac.to_string(),
            "dev",
            DEV_LOAD,
        ]);
        let stop = Arc::new(AtomicBool::new(false));
        let h = reflector(port, echo.clone(), count.clone(), stop.clone());
        echo.store(true, Ordering::SeqCst);
        let e = echo_load(SHARDNET_IP, size, window, secs);
        echo.store(false, Ordering::SeqCst);
        let r = rx_load(SHARDNET_IP, size, secs, count.clone());
        stop.store(true, Ordering::SeqCst);
        let port = h.join().expect("the reflector");
        results[0][1].push(figures(e, r));

        // shardnet's UDP echo on the same port.
        let runtime = shardnet_echo(port, &echo, &count);
        echo.store(true, Ordering::SeqCst);
        let e = echo_load(SHARDNET_IP, size, window, secs);
        echo.store(false, Ordering::SeqCst);
        let r = rx_load(SHARDNET_IP, size, secs, count.clone());
        let port = stop_runtime(runtime);
        results[0][2].push(figures(e, r));

        // The same three, loaded by the AF_XDP generator (its program on the load side takes
        // everything addressed to 198.18.0.1, so the kernel socket load is over by now).
        let g = Generator::open(NS_LOAD, DEV_LOAD, LOAD_IP, mode)
            .unwrap_or_else(|e| panic!("opening the generator's AF_XDP port: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let h = reflector(port, echo.clone(), count.clone(), stop.clone());
        let (g, run) = generator_load(g, resp_mac, SHARDNET_IP, PORT, shape, &echo, &count);
        stop.store(true, Ordering::SeqCst);
        let port = h.join().expect("the reflector");
        results[1][1].push(generator_figures(run));

        let runtime = shardnet_echo(port, &echo, &count);
        let (g, run) = generator_load(g, resp_mac, SHARDNET_IP, PORT, shape, &echo, &count);
        drop(stop_runtime(runtime));
        results[1][2].push(generator_figures(run));

        // The kernel last, once shardnet's port (and its XDP program) is gone.
        let stop = Arc::new(AtomicBool::new(false));
        let h = kernel_responder(echo.clone(), count.clone(), stop.clone());
        let (g, run) = generator_load(g, resp_mac, KERNEL_IP, PORT, shape, &echo, &count);
        stop.store(true, Ordering::SeqCst);
        let _ = h.join();
        results[1][0].push(generator_figures(run));
        drop(g);
        eprintln!("round {} of {rounds} done", round + 1);
    }

    let (attach, bind) = attach.expect("at least one round");
    println!(
        "xdp_forward: {size}-byte UDP payloads, {rounds} rounds x {secs} s per measurement, \
         echo window {window}, AF_XDP attach {attach:?}, bind {bind:?}; median (min-max)"
    );
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut json_loads = Vec::new();
    for (load, rows) in ["kernel UDP socket", "AF_XDP generator"]
        .iter()
        .zip(&results)
    {
        println!("load: {load}");
        println!(
            "  {:<38} {:>28} {:>6} {:>28} {:>10}",
            "responder", "echo pkts/s", "lost", "rx pkts/s at responder", "sender/s"
        );
        let mut medians = [(0.0, 0.0); 3];
        for (i, rows) in rows.iter().enumerate() {
            let e = stats(rows.iter().map(|f| f.echo).collect());
            let r = stats(rows.iter().map(|f| f.rx).collect());
            let sent = stats(rows.iter().map(|f| f.sent).collect());
            let lost: u64 = rows.iter().map(|f| f.lost).sum();
            medians[i] = (e.0, r.0);
            println!(
                "  {:<38} {:>9.0} ({:>7.0}-{:>7.0}) {:>6} {:>9.0} ({:>7.0}-{:>7.0}) {:>10.0}",
                names[i], e.0, e.1, e.2, lost, r.0, r.1, r.2, sent.0
            );
        }
        if json {
            let spread =
                |v: (f64, f64, f64)| serde_json::json!({ "median": v.0, "min": v.1, "max": v.2 });
            let responders: Vec<serde_json::Value> = rows
                .iter()
                .zip(names)
                .map(|(rows, name)| {
                    serde_json::json!({
                        "responder": name,
                        "echo_pps": spread(stats(rows.iter().map(|f| f.echo).collect())),
                        "rx_pps": spread(stats(rows.iter().map(|f| f.rx).collect())),
                        "lost": rows.iter().map(|f| f.lost).sum::<u64>(),
                    })
                })
                .collect();
            json_loads.push(serde_json::json!({ "load": load, "responders": responders }));
        }
        let [k, raw, sn] = medians;
        println!(
            "  echo ratios (medians): shardnet/raw {:.2}, shardnet/kernel {:.2}, raw/kernel {:.2}",
            ratio(sn.0, raw.0),
            ratio(sn.0, k.0),
            ratio(raw.0, k.0),
        );
        println!(
            "  rx ratios (medians):   shardnet/raw {:.2}, shardnet/kernel {:.2}, raw/kernel {:.2}",
            ratio(sn.1, raw.1),
            ratio(sn.1, k.1),
            ratio(raw.1, k.1),
        );
    }
    if json {
        let out = serde_json::json!({
            "size": size,
            "rounds": rounds,
            "secs": secs,
            "window": window,
            "attach": format!("{attach:?}"),
            "bind": format!("{bind:?}"),
            "loads": json_loads,
        });
        println!("{out}");
    }
}

/// Starts shardnet's UDP echo on `port`.
fn shardnet_echo(
    port: AfXdpPort,
    echo: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
) -> Runtime<AfXdpPort, UdpEcho> {
    let app = UdpEcho {
        socket: None,
        buf: Vec::new(),
        echo: echo.clone(),
        count: count.clone(),
    };
    Runtime::start(runtime_config(&port), vec![(port, app)]).expect("start the runtime")
}

/// Stops the runtime and returns its port.
fn stop_runtime(runtime: Runtime<AfXdpPort, UdpEcho>) -> AfXdpPort {
    let mut exits = runtime.stop().expect("stop the runtime");
    exits.pop().expect("one shard").port
}
