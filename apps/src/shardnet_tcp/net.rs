//! shardnet's TCP mode on a real interface: `--driver af-xdp` (an AF_XDP socket per queue of
//! `--iface`) and `--driver dpdk` (a DPDK device named by `--eal`, with the `dpdk` feature).
//!
//! Unlike the memory driver, the peer is outside the process: `echo` serves any client on the
//! interface and `loadgen` loads any echo server (`--target`). Both run the same apps as the
//! memory driver ([`super::echo::EchoApp`], [`super::loadgen::LoadApp`]), one shard per device
//! queue; a device that reports no RSS gets the runtime's software RSS and forwarding.

use super::echo::EchoAppConfig;
use super::{
    EchoRuntime, Idle, IdleChoice, MemoryResult, capture_ports, finish_captures, idle_policy,
    run_client,
};
use crate::cli::{Driver, IpCidr};
use crate::metrics::{ExtraText, LoadgenMetrics};
use crate::report::{ShardnetSide, ShardnetSummary};
use crate::schedule::WorkerConfig;
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::Port;
use shardnet::runtime::{IdlePolicy, Pinning, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::tcp::State;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The most TCP connections (TIME-WAIT included: each holds a flow-table entry) per shard. A
/// crr keeps every 4-tuple it cycles through in TIME-WAIT (on the client when it closes first,
/// on the server otherwise) for up to 60 s, reused once its timestamps advanced a second: over
/// `--target-ports 8` (the benchmark matrix's crr) and 64,512 client ports that is up to
/// 8 x 64,512 = 516,096 entries, so 2^20 leaves room, as on the memory wire. At 2^18 such a crr
/// stopped after 262,144 connections. The flow table, timer wheel and ready list reserve
/// 65 bytes per connection (65 MiB per shard).
const MAX_CONNECTIONS: usize = 1 << 20;

/// How the AF_XDP driver attaches its XDP program (`--xdp-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpMode {
    /// Native (driver) XDP.
    Native,
    /// Generic (SKB) XDP: any device.
    Generic,
    /// Native if the driver supports it, else generic.
    Auto,
}

/// Where and how shardnet runs on a real interface.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// `af-xdp` or `dpdk`.
    pub driver: Driver,
    /// The interface (af-xdp).
    pub iface: Option<String>,
    /// shardnet's address and prefix on the interface.
    pub ip: IpCidr,
    /// The default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Shards: one device queue each (queues `0..shards`).
    pub shards: usize,
    /// AF_XDP attach mode.
    pub xdp_mode: XdpMode,
    /// DPDK EAL arguments (whitespace-separated).
    pub eal: Option<String>,
    /// Idle policy of the shards.
    pub idle: Idle,
    /// Capture every shard's frames (`FILE`, `FILE.1`, ...).
    pub pcap: Option<PathBuf>,
}

impl NetOptions {
    fn runtime_config(
        &self,
        caps: &shardnet::port::Capabilities,
        idle: IdleChoice,
    ) -> Result<RuntimeConfig, String> {
        let cidr = Ipv4Cidr::new(self.ip.addr, self.ip.prefix)
            .map_err(|e| format!("--ip {}/{}: {e:?}", self.ip.addr, self.ip.prefix))?;
        let mut shard = ShardConfig::new(InterfaceConfig {
            mac: caps.mac,
            cidr,
            gateway: self.gateway,
            mtu: caps.mtu.min(1500),
            ttl: 64,
        });
        shard.max_tcp_connections = MAX_CONNECTIONS;
        let mut c = RuntimeConfig::new(shard);
        idle.apply(&mut c);
        // The peer (or another process) may share the cores: pin only spinning shards.
        c.pinning = match idle.policy {
            IdlePolicy::BusyPoll => Pinning::Auto,
            _ => Pinning::None,
        };
        Ok(c)
    }
}

/// The ports of a device, and what keeps the device open while they are used.
struct Opened<P> {
    ports: Vec<P>,
    /// `IF (attach, bind)` or the DPDK driver's name.
    interface: String,
    /// Dropped after the ports' runtime stopped.
    _device: Box<dyn std::any::Any>,
}

fn open_af_xdp(opts: &NetOptions) -> Result<Opened<shardnet_af_xdp::AfXdpPort>, String> {
    use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode, BindMode};
    let iface = opts
        .iface
        .as_deref()
        .ok_or("--driver af-xdp needs --iface NAME")?;
    let mut config = AfXdpConfig::new(iface, opts.ip.addr);
    config.mode = match opts.xdp_mode {
        XdpMode::Native => AttachMode::Native,
        XdpMode::Generic => AttachMode::Generic,
        XdpMode::Auto => AttachMode::Auto,
    };
    let queues: Vec<u16> = (0..opts.shards)
        .map(|q| u16::try_from(q).map_err(|_| format!("--shards {}: too many", opts.shards)))
        .collect::<Result<_, _>>()?;
    let ports =
        AfXdpPort::open_queues(&config, &queues).map_err(|e| format!("af-xdp on {iface}: {e}"))?;
    let interface = match ports.first() {
        Some(p) => format!(
            "{iface}, {} XDP, {} mode",
            match p.attach_info().mode {
                AttachMode::Native => "native",
                AttachMode::Generic => "generic",
                AttachMode::Auto => "auto",
            },
            match p.bind_mode() {
                BindMode::ZeroCopy => "zero-copy",
                BindMode::Copy => "copy",
            }
        ),
        None => return Err(format!("af-xdp on {iface}: no queue opened")),
    };
    Ok(Opened {
        ports,
        interface,
        _device: Box::new(()),
    })
}

/// The EAL arguments of `--eal`, program name first.
pub fn eal_args(eal: &str) -> Vec<String> {
    std::iter::once("shardnet".to_string())
        .chain(eal.split_whitespace().map(str::to_string))
        .collect()
}

/// The name of the first `--vdev` (`--vdev=NAME,...` or `--vdev NAME,...`) in the EAL
/// arguments.
pub fn first_vdev(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let spec = if let Some(v) = a.strip_prefix("--vdev=") {
            Some(v.to_string())
        } else if a == "--vdev" {
            it.next().cloned()
        } else {
            None
        };
        if let Some(spec) = spec {
            return spec.split(',').next().map(str::to_string);
        }
    }
    None
}

#[cfg(feature = "dpdk")]
fn open_dpdk(opts: &NetOptions) -> Result<Opened<shardnet_dpdk::DpdkPort>, String> {
    use shardnet_dpdk::{DpdkDevice, Eal, PortConfig, port_by_name};
    let eal = opts.eal.as_deref().ok_or(
        "--driver dpdk needs --eal \"ARGS\" (e.g. --eal \"--no-huge -m 512 --no-pci --no-shconf --no-telemetry --vdev=net_af_packet0,iface=IF\")",
    )?;
    let args = eal_args(eal);
    let eal = Eal::init(&args).map_err(|e| format!("--eal {:?}: {e}", &args[1..]))?;
    let port = match first_vdev(&args) {
        Some(name) => port_by_name(eal, &name).map_err(|e| format!("dpdk device {name}: {e}"))?,
        None => 0,
    };
    let queues =
        u16::try_from(opts.shards).map_err(|_| format!("--shards {}: too many", opts.shards))?;
    let (device, ports) = DpdkDevice::open(
        eal,
        port,
        &PortConfig {
            queues,
            ..PortConfig::default()
        },
    )
    .map_err(|e| format!("dpdk port {port}: {e}"))?;
    let interface = format!("port {port}, {}", device.driver_name());
    Ok(Opened {
        ports,
        interface,
        _device: Box::new(device),
    })
}

/// Why `--driver dpdk` is unavailable in this build.
pub const NO_DPDK: &str = "--driver dpdk: built without the dpdk feature: cargo build --features dpdk (needs libdpdk-dev)";

/// Checks that `opts` name a driver this build has, with what it needs.
pub fn check(opts: &NetOptions) -> Result<(), String> {
    match opts.driver {
        Driver::Memory => Err("the memory driver has no interface".into()),
        Driver::AfXdp => {
            if opts.iface.is_none() {
                return Err("--driver af-xdp needs --iface NAME".into());
            }
            if opts.eal.is_some() {
                return Err("--eal is for --driver dpdk".into());
            }
            Ok(())
        }
        Driver::Dpdk => {
            if !cfg!(feature = "dpdk") {
                return Err(NO_DPDK.into());
            }
            if opts.eal.is_none() {
                return Err("--driver dpdk needs --eal \"ARGS\"".into());
            }
            if opts.iface.is_some() {
                return Err(
                    "--iface is for --driver af-xdp; with dpdk name the device in --eal (--vdev=net_af_packet0,iface=IF)"
                        .into(),
                );
            }
            Ok(())
        }
    }
}

/// Runs the load generator on the interface of `opts` against `target` (any echo server).
pub fn run_load(
    opts: &NetOptions,
    worker: &WorkerConfig,
    target: SocketAddrV4,
    progress_to_stderr: bool,
    stop: &Arc<AtomicBool>,
    metrics: Option<(&LoadgenMetrics, &ExtraText)>,
) -> Result<MemoryResult, String> {
    check(opts)?;
    match opts.driver {
        Driver::AfXdp => load_on(
            opts,
            "af-xdp",
            open_af_xdp(opts)?,
            worker,
            target,
            progress_to_stderr,
            stop,
            metrics,
        ),
        #[cfg(feature = "dpdk")]
        Driver::Dpdk => load_on(
            opts,
            "dpdk",
            open_dpdk(opts)?,
            worker,
            target,
            progress_to_stderr,
            stop,
            metrics,
        ),
        _ => Err(NO_DPDK.into()),
    }
}

#[allow(clippy::too_many_arguments)]
fn load_on<P: Port + Send + 'static>(
    opts: &NetOptions,
    driver: &str,
    opened: Opened<P>,
    worker: &WorkerConfig,
    target: SocketAddrV4,
    progress_to_stderr: bool,
    stop: &Arc<AtomicBool>,
    metrics: Option<(&LoadgenMetrics, &ExtraText)>,
) -> Result<MemoryResult, String> {
    let Opened {
        ports,
        interface,
        _device,
    } = opened;
    let caps = ports
        .first()
        .map(|p| p.capabilities().clone())
        .ok_or("no port")?;
    let idle = idle_policy(opts.idle, ports.len() + 1);
    let config = opts.runtime_config(&caps, idle)?;
    let no_server: Option<&EchoRuntime<P>> = None;
    let (run, pcap_frames) = match &opts.pcap {
        None => {
            let run = run_client(
                worker,
                target,
                config,
                ports,
                progress_to_stderr,
                stop,
                metrics,
                no_server,
                None,
                None,
            )?;
            (run, None)
        }
        Some(base) => {
            let ports = capture_ports(ports, base)?;
            let run = run_client(
                worker,
                target,
                config,
                ports,
                progress_to_stderr,
                stop,
                metrics,
                no_server,
                None,
                None,
            )?;
            let n = finish_captures(run.ports, base)?;
            let run = super::ClientRun {
                series: run.series,
                elapsed: run.elapsed,
                start_wall: run.start_wall,
                unsent: run.unsent,
                side: run.side,
                peak_server_time_wait: run.peak_server_time_wait,
                tw_counters: run.tw_counters,
                ports: Vec::<P>::new(),
                settled: run.settled,
            };
            (run, Some(n))
        }
    };
    Ok(MemoryResult {
        series: run.series,
        elapsed: run.elapsed,
        start_wall: run.start_wall,
        unsent: run.unsent,
        tw_counters: run.tw_counters,
        summary: ShardnetSummary {
            driver: driver.into(),
            idle: idle.describe(),
            client: run.side,
            server: None,
            echo_accepted: None,
            echo_errors: None,
            echo_sunk: None,
            wire_drops: None,
            interface: Some(interface),
            pcap_frames,
        },
    })
}

/// The echo's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoSample {
    /// Connections accepted so far.
    pub accepted: u64,
    /// Connections closed so far.
    pub closed: u64,
    /// Bytes echoed so far.
    pub bytes: u64,
    /// Connections that ended in an error so far.
    pub errors: u64,
    /// TCP sockets in TIME-WAIT (100 ms sample).
    pub time_wait: u64,
}

/// What a standalone shardnet echo did.
#[derive(Debug)]
pub struct EchoOutcome {
    /// The driver.
    pub driver: String,
    /// The interface.
    pub interface: String,
    /// The idle policy.
    pub idle: String,
    /// The counters at the end.
    pub last: EchoSample,
    /// The stack.
    pub side: ShardnetSide,
    /// How long it served.
    pub elapsed: Duration,
}

/// Serves the echo on the interface of `opts` until `stop` is set or `duration` passed;
/// `tick` is called about every second (and once at the end) with the counters, and
/// `metrics_text` gets shardnet's counters for `--metrics`.
pub fn run_echo(
    opts: &NetOptions,
    echo: EchoAppConfig,
    stop: &AtomicBool,
    duration: Option<Duration>,
    metrics_text: Option<&ExtraText>,
    tick: &mut dyn FnMut(&EchoSample),
) -> Result<EchoOutcome, String> {
    check(opts)?;
    match opts.driver {
        Driver::AfXdp => echo_on(
            opts,
            "af-xdp",
            open_af_xdp(opts)?,
            echo,
            stop,
            duration,
            metrics_text,
            tick,
        ),
        #[cfg(feature = "dpdk")]
        Driver::Dpdk => echo_on(
            opts,
            "dpdk",
            open_dpdk(opts)?,
            echo,
            stop,
            duration,
            metrics_text,
            tick,
        ),
        _ => Err(NO_DPDK.into()),
    }
}

#[allow(clippy::too_many_arguments)]
fn echo_on<P: Port + Send + 'static>(
    opts: &NetOptions,
    driver: &str,
    opened: Opened<P>,
    echo: EchoAppConfig,
    stop: &AtomicBool,
    duration: Option<Duration>,
    metrics_text: Option<&ExtraText>,
    tick: &mut dyn FnMut(&EchoSample),
) -> Result<EchoOutcome, String> {
    let Opened {
        ports,
        interface,
        _device,
    } = opened;
    let caps = ports
        .first()
        .map(|p| p.capabilities().clone())
        .ok_or("no port")?;
    let idle = idle_policy(opts.idle, ports.len() + 1);
    let config = opts.runtime_config(&caps, idle)?;
    let base = match &opts.pcap {
        None => {
            let server = EchoRuntime::start(config, ports, echo)?;
            let (last, peak, elapsed) = serve(&server, stop, duration, metrics_text, tick);
            let side = server.stop(peak)?;
            return Ok(EchoOutcome {
                driver: driver.into(),
                interface,
                idle: idle.describe(),
                last,
                side,
                elapsed,
            });
        }
        Some(base) => base,
    };
    // Captured ports are another port type: the same echo through them.
    let server = EchoRuntime::start(config, capture_ports(ports, base)?, echo)?;
    let (last, peak, elapsed) = serve(&server, stop, duration, metrics_text, tick);
    let exits_side = server.stop_with_ports(peak)?;
    let frames = finish_captures(exits_side.1, base)?;
    Ok(EchoOutcome {
        driver: driver.into(),
        interface: format!(
            "{interface}; {frames} frames captured to {}",
            base.display()
        ),
        idle: idle.describe(),
        last,
        side: exits_side.0,
        elapsed,
    })
}

fn sample<P: Port + Send + 'static>(server: &EchoRuntime<P>) -> EchoSample {
    let c = server.counters();
    EchoSample {
        accepted: c.accepted.load(Ordering::Relaxed),
        closed: c.closed.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
        time_wait: server.sampled(State::TimeWait),
    }
}

/// Ticks every second until the end; returns the last sample, the peak TIME-WAIT and the time
/// served.
fn serve<P: Port + Send + 'static>(
    server: &EchoRuntime<P>,
    stop: &AtomicBool,
    duration: Option<Duration>,
    metrics_text: Option<&ExtraText>,
    tick: &mut dyn FnMut(&EchoSample),
) -> (EchoSample, u64, Duration) {
    let start = Instant::now();
    let mut next = Duration::from_secs(1);
    let mut peak = 0;
    loop {
        let stopping =
            stop.load(Ordering::Relaxed) || duration.is_some_and(|d| start.elapsed() >= d);
        if start.elapsed() >= next || stopping {
            let s = sample(server);
            peak = peak.max(s.time_wait);
            if let Some(extra) = metrics_text {
                let text = server.render_metrics();
                match extra.lock() {
                    Ok(mut t) => *t = text,
                    Err(p) => *p.into_inner() = text,
                }
            }
            tick(&s);
            next += Duration::from_secs(1);
            if stopping {
                return (s, peak, start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_arguments_start_with_a_program_name_and_name_their_vdev() {
        let a = eal_args("--no-huge -m 512  --vdev=net_af_packet0,iface=veth-s --no-pci");
        assert_eq!(a[0], "shardnet");
        assert_eq!(a.len(), 6);
        assert_eq!(first_vdev(&a).as_deref(), Some("net_af_packet0"));
        let b = eal_args("--vdev net_tap1,iface=t --vdev=net_ring0");
        assert_eq!(first_vdev(&b).as_deref(), Some("net_tap1"));
        assert_eq!(first_vdev(&eal_args("--no-pci")), None);
    }

    fn opts(driver: Driver) -> NetOptions {
        NetOptions {
            driver,
            iface: None,
            ip: IpCidr {
                addr: Ipv4Addr::new(198, 18, 0, 2),
                prefix: 24,
            },
            gateway: None,
            shards: 1,
            xdp_mode: XdpMode::Auto,
            eal: None,
            idle: Idle::Auto {
                poll: std::time::Duration::ZERO,
            },
            pcap: None,
        }
    }

    #[test]
    fn drivers_say_what_they_miss() {
        let e = check(&opts(Driver::AfXdp)).unwrap_err();
        assert!(e.contains("--iface"), "{e}");
        let e = check(&opts(Driver::Dpdk)).unwrap_err();
        if cfg!(feature = "dpdk") {
            assert!(e.contains("--eal"), "{e}");
        } else {
            assert_eq!(e, NO_DPDK);
        }
        let mut o = opts(Driver::AfXdp);
        o.iface = Some("lo".into());
        assert_eq!(check(&o), Ok(()));
        o.eal = Some("--no-pci".into());
        assert!(check(&o).is_err());
    }
}
