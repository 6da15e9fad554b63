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
//! addresses are 198.18.0.0/15 only, every load is bounded in time. It does not take the
//! namespace lock itself: the scenario matrix runs it under the lock; on its own, run it under
//! `flock /tmp/shardnet-af-xdp-interop.lock`.
//!
//! The hosts, the kernel socket load, the three responders and the figures' arithmetic are
//! shared with `dpdk_forward` ([`shardnet_bench::forward`]); this program opens the AF_XDP
//! port, runs the measurement sequence and prints the results.

use shardnet::port::Port;
use shardnet::wire::Ipv4Addr;
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode};
use shardnet_bench::forward::WARMUP;
use shardnet_bench::forward::args::arg;
use shardnet_bench::forward::figures::{Figures, generator_figures, stats};
use shardnet_bench::forward::kernel_load::measure;
use shardnet_bench::forward::kernel_responder::KernelResponder;
use shardnet_bench::forward::namespaces::{Namespaces, Topology};
use shardnet_bench::forward::reflector::Reflector;
use shardnet_bench::forward::udp_echo::ShardnetEcho;
use shardnet_bench::xdp_generator::{Generator, Shape, generator_load, in_ns};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

/// The hosts: the load in `snet-bk`, the responders in `snet-bs`.
const NET: Topology = Topology {
    ns_load: "snet-bk",
    ns_resp: "snet-bs",
    dev_load: "snet-bk0",
    dev_resp: "snet-bs0",
    load_ip: Ipv4Addr::new(198, 18, 0, 1),
    shardnet_ip: Ipv4Addr::new(198, 18, 0, 2),
    kernel_ip: Ipv4Addr::new(198, 18, 0, 3),
    port: 7,
};

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
    // The scenario matrix runs this under the namespace lock: it does not take it itself.
    let ns = Namespaces::up(&NET, None);
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
    let shardnet = SocketAddrV4::new(NET.shardnet_ip, NET.port);

    // Rounds interleave the responders, so that the machine's drift (a shared VM) spreads
    // over all of them.
    for round in 0..rounds {
        // The kernel's UDP echo on the same veth, no XDP program attached anywhere.
        let k = KernelResponder::start(&NET, &echo, &count);
        results[0][0].push(measure(&NET, NET.kernel_ip, shape, &echo, &count));
        let _ = k.stop();

        // The raw AF_XDP reflector.
        let port = in_ns(NET.ns_resp, move || {
            let mut c = AfXdpConfig::new(NET.dev_resp, NET.shardnet_ip);
            c.mode = mode;
            AfXdpPort::open(&c)
        })
        .join()
        .expect("the port thread")
        .unwrap_or_else(|e| panic!("opening the AF_XDP port: {e}"));
        attach = Some((port.attach_info().mode, port.bind_mode()));
        // No ARP in the reflector: the sender gets a static neighbour entry.
        let resp_mac = port.capabilities().mac;
        ns.set_neighbour(NET.shardnet_ip, resp_mac);
        let r = Reflector::start(port, NET.shardnet_ip, &echo, &count);
        results[0][1].push(measure(&NET, NET.shardnet_ip, shape, &echo, &count));
        let port = r.stop().expect("the reflector");

        // shardnet's UDP echo on the same port.
        let sn = ShardnetEcho::start(port, shardnet, None, &echo, &count);
        results[0][2].push(measure(&NET, NET.shardnet_ip, shape, &echo, &count));
        let port = sn.stop();

        // The same three, loaded by the AF_XDP generator (its program on the load side takes
        // everything addressed to 198.18.0.1, so the kernel socket load is over by now).
        let g = Generator::open(NET.ns_load, NET.dev_load, NET.load_ip, mode)
            .unwrap_or_else(|e| panic!("opening the generator's AF_XDP port: {e}"));
        let r = Reflector::start(port, NET.shardnet_ip, &echo, &count);
        let (g, run) = generator_load(g, resp_mac, NET.shardnet_ip, NET.port, shape, &echo, &count);
        let port = r.stop().expect("the reflector");
        results[1][1].push(generator_figures(run));

        let sn = ShardnetEcho::start(port, shardnet, None, &echo, &count);
        let (g, run) = generator_load(g, resp_mac, NET.shardnet_ip, NET.port, shape, &echo, &count);
        drop(sn.stop());
        results[1][2].push(generator_figures(run));

        // The kernel last, once shardnet's port (and its XDP program) is gone.
        let k = KernelResponder::start(&NET, &echo, &count);
        let (g, run) = generator_load(g, resp_mac, NET.kernel_ip, NET.port, shape, &echo, &count);
        let _ = k.stop();
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
