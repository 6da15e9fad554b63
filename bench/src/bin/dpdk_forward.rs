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
//!
//! The hosts, the kernel socket load, the three responders and the figures' arithmetic are
//! shared with `xdp_forward` ([`shardnet_bench::forward`]); this program opens the DPDK device,
//! runs the measurement sequence and prints the results.

use shardnet::port::Port;
use shardnet::wire::Ipv4Addr;
use shardnet_af_xdp::AttachMode;
use shardnet_bench::forward::WARMUP;
use shardnet_bench::forward::args::arg;
use shardnet_bench::forward::figures::{Figures, generator_figures, stats};
use shardnet_bench::forward::kernel_load::measure;
use shardnet_bench::forward::kernel_responder::KernelResponder;
use shardnet_bench::forward::namespaces::{Namespaces, Topology};
use shardnet_bench::forward::reflector::Reflector;
use shardnet_bench::forward::udp_echo::ShardnetEcho;
use shardnet_bench::matrix::netns::NsLock;
use shardnet_bench::xdp_generator::{Generator, Shape, generator_load, in_ns};
use shardnet_dpdk::{DpdkDevice, DpdkPort, Eal, PortConfig, create_vdev};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

/// The hosts: the load in `snet-dfk`, the responders in `snet-dfs`.
const NET: Topology = Topology {
    ns_load: "snet-dfk",
    ns_resp: "snet-dfs",
    dev_load: "snet-dfk0",
    dev_resp: "snet-dfs0",
    load_ip: Ipv4Addr::new(198, 18, 0, 1),
    shardnet_ip: Ipv4Addr::new(198, 18, 0, 2),
    kernel_ip: Ipv4Addr::new(198, 18, 0, 3),
    port: 7,
};

/// shardnet's MTU on the DPDK port: the veth's 1500, set here rather than taken from what the
/// PMD reports (as this benchmark has always done).
const MTU: u16 = 1500;

/// Reads one figure.
type Pick = fn(&Figures) -> f64;

/// Creates vdev `name` on the responder's veth and opens it with one queue, from a thread in
/// the responder's namespace (both PMDs reach the interface by name there).
fn open_device(eal: &'static Eal, name: String, args: String) -> (DpdkDevice, DpdkPort) {
    in_ns(NET.ns_resp, move || {
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
        "af_packet" => format!(
            "iface={},qpairs=1,blocksz=4096,framesz=2048,framecnt=512",
            NET.dev_resp
        ),
        "af_xdp" => format!("iface={},start_queue=0,queue_count=1", NET.dev_resp),
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
    let lock = NsLock::take().unwrap_or_else(|e| panic!("{e}"));
    let ns = Namespaces::up(&NET, Some(lock));
    let veth_mac = ns.responder_mac();

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
    let shardnet = SocketAddrV4::new(NET.shardnet_ip, NET.port);
    let kernel_round = || {
        let k = KernelResponder::start(&NET, &echo, &count);
        let f = measure(&NET, NET.kernel_ip, shape, &echo, &count);
        k.stop().expect("the kernel responder");
        f
    };
    // The generator's XDP program takes everything for 198.18.0.1 on the load side's veth
    // end, so the kernel socket's load gets no echoes while it is open: it is opened for the
    // generator's measurements only, and closed before the next kernel socket load.
    let open_generator = || {
        Generator::open(NET.ns_load, NET.dev_load, NET.load_ip, gen_mode)
            .unwrap_or_else(|e| panic!("opening the generator's AF_XDP port: {e}"))
    };
    let kernel_generator_round = |g: Generator| {
        let k = KernelResponder::start(&NET, &echo, &count);
        let (g, run) = generator_load(g, veth_mac, NET.kernel_ip, NET.port, shape, &echo, &count);
        k.stop().expect("the kernel responder");
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
                ns.set_neighbour(NET.shardnet_ip, port.capabilities().mac);
                (device, port)
            }
        };
        driver = device.driver_name().to_owned();
        let device_mac = port.capabilities().mac;

        // Load 1: a kernel UDP socket.
        let r = Reflector::start(port, NET.shardnet_ip, &echo, &count);
        results[0]
            .raw
            .push(measure(&NET, NET.shardnet_ip, shape, &echo, &count));
        let port = r.stop().expect("the reflector");
        let sn = ShardnetEcho::start(port, shardnet, Some(MTU), &echo, &count);
        results[0]
            .stack
            .push(measure(&NET, NET.shardnet_ip, shape, &echo, &count));
        let port = sn.stop();

        // Load 2: the AF_XDP generator, on the load side's veth end (the DPDK device's
        // net_af_xdp program, if any, is on the other end).
        let g = open_generator();
        generator_modes = format!(
            "attach {:?}, bind {:?}",
            g.port().attach_info().mode,
            g.port().bind_mode()
        );
        let r = Reflector::start(port, NET.shardnet_ip, &echo, &count);
        let (g, run) = generator_load(
            g,
            device_mac,
            NET.shardnet_ip,
            NET.port,
            shape,
            &echo,
            &count,
        );
        let port = r.stop().expect("the reflector");
        results[1].raw.push(generator_figures(run));
        let sn = ShardnetEcho::start(port, shardnet, Some(MTU), &echo, &count);
        let (g, run) = generator_load(
            g,
            device_mac,
            NET.shardnet_ip,
            NET.port,
            shape,
            &echo,
            &count,
        );
        let port = sn.stop();
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
    let dev_load = NET.dev_load;
    if json {
        let mut out = format!(
            "{{\"bench\":\"dpdk_forward\",\"vdev\":\"{vdev}\",\"driver\":\"{driver}\",\"rounds\":{rounds},\"secs\":{secs},\"window\":{window},\"size\":{size},\"generator\":\"AF_XDP on {dev_load}, {generator_modes}\""
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
             generator AF_XDP on {dev_load} ({generator_modes}); median (min-max) pkts/s:"
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
