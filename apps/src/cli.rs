//! Command-line options shared by `echo` and `loadgen`.

use clap::{Args, ValueEnum};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Which TCP/IP stack carries the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StackKind {
    /// shardnet, on the driver chosen by `--driver`.
    Shardnet,
    /// The Linux kernel's sockets (epoll, one thread per shard): the baseline.
    Kernel,
}

impl StackKind {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            StackKind::Shardnet => "shardnet",
            StackKind::Kernel => "kernel",
        }
    }
}

/// shardnet's packet I/O driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Driver {
    /// The in-process memory wire (no NIC, no root).
    Memory,
    /// AF_XDP on `--iface`.
    AfXdp,
    /// DPDK with `--eal` arguments.
    Dpdk,
}

impl Driver {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Memory => "memory",
            Driver::AfXdp => "af-xdp",
            Driver::Dpdk => "dpdk",
        }
    }
}

/// An interface address with its prefix length, `A.B.C.D/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpCidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length (0..=32).
    pub prefix: u8,
}

impl std::str::FromStr for IpCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not A.B.C.D/N"))?;
        let addr = a.parse().map_err(|e| format!("`{a}`: {e}"))?;
        let prefix = p
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= 32)
            .ok_or_else(|| format!("`{p}` is not a prefix length 0..=32"))?;
        Ok(IpCidr { addr, prefix })
    }
}

/// Options of both binaries.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// The stack: shardnet (kernel bypass) or kernel (Linux sockets, the baseline).
    #[arg(long, value_enum, default_value_t = StackKind::Shardnet)]
    pub stack: StackKind,
    /// shardnet's driver (default: memory).
    #[arg(long, value_enum)]
    pub driver: Option<Driver>,
    /// Network interface of the af-xdp and dpdk drivers.
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,
    /// Interface address of shardnet (A.B.C.D/N); with --stack kernel, echo's listen address.
    #[arg(long, value_name = "A.B.C.D/N")]
    pub ip: Option<IpCidr>,
    /// Default gateway of shardnet.
    #[arg(long, value_name = "A.B.C.D")]
    pub gateway: Option<Ipv4Addr>,
    /// Shards: threads, one per core (kernel: epoll threads).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub shards: u16,
    /// AF_XDP: how to attach the XDP program (default auto: native, else generic).
    #[arg(long, value_enum, value_name = "MODE")]
    pub xdp_mode: Option<crate::shardnet_tcp::net::XdpMode>,
    /// DPDK EAL arguments, one string (e.g. "--no-huge -m 512 --no-pci --no-shconf
    /// --no-telemetry --vdev=net_af_packet0,iface=IF"); the device is the first --vdev, else
    /// port 0.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub eal: Option<String>,
    /// Write shardnet's frames to this pcap file (`tcpdump -r FILE`); kernel: use tcpdump.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Serve counters in the Prometheus text format on this loopback address (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Run for this many seconds (echo: then exit; loadgen: stop issuing, drain, report).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print the final report as JSON on stdout (progress lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Spin on epoll with a zero timeout instead of sleeping in it (fair against a polling stack).
    #[arg(long)]
    pub busy_poll: bool,
    /// After the last event, keep polling this many microseconds before sleeping, on both
    /// stacks alike: shardnet's sleeping shards (`RuntimeConfig::busy_poll`) and the kernel
    /// sockets' epoll loop (zero timeouts). Like Linux's `net.core.busy_poll`, whose
    /// documentation recommends 50. 0: sleep at once.
    #[arg(long, value_name = "US", default_value_t = 50)]
    pub poll_us: u64,
}

impl Common {
    /// `--poll-us` as a duration.
    pub fn poll_window(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.poll_us)
    }

    /// The driver, `memory` if none was given.
    pub fn driver(&self) -> Driver {
        self.driver.unwrap_or(Driver::Memory)
    }

    /// Checks that the options fit the stack; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(d) = self.duration {
            if !(d.is_finite() && d > 0.0) {
                return Err(format!(
                    "--duration {d}: must be a positive number of seconds"
                ));
            }
        }
        match self.stack {
            StackKind::Shardnet => match self.driver() {
                Driver::Memory => {
                    if self.xdp_mode.is_some() {
                        return Err("--xdp-mode is for --driver af-xdp".into());
                    }
                    Ok(())
                }
                Driver::Dpdk if !cfg!(feature = "dpdk") => {
                    Err(crate::shardnet_tcp::net::NO_DPDK.into())
                }
                d @ (Driver::AfXdp | Driver::Dpdk) => {
                    if self.ip.is_none() {
                        return Err(format!(
                            "--driver {} needs --ip A.B.C.D/N (shardnet's address on the interface)",
                            d.name()
                        ));
                    }
                    if d == Driver::Dpdk && self.xdp_mode.is_some() {
                        return Err("--xdp-mode is for --driver af-xdp".into());
                    }
                    Ok(())
                }
            },
            StackKind::Kernel => {
                let shardnet_only = [
                    ("--driver", self.driver.is_some()),
                    ("--iface", self.iface.is_some()),
                    ("--gateway", self.gateway.is_some()),
                    ("--eal", self.eal.is_some()),
                    ("--xdp-mode", self.xdp_mode.is_some()),
                    ("--pcap", self.pcap.is_some()),
                ];
                match shardnet_only.iter().find(|(_, given)| *given) {
                    Some((flag, _)) => Err(format!(
                        "{flag} is a shardnet option; with --stack kernel the kernel's interfaces, routes and tcpdump apply"
                    )),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Common {
    /// The options of shardnet on a real interface (`--driver af-xdp|dpdk`); `None` for the
    /// memory driver. Call after [`Common::validate`].
    pub fn net_options(
        &self,
        idle: crate::shardnet_tcp::Idle,
    ) -> Option<crate::shardnet_tcp::net::NetOptions> {
        let driver = self.driver();
        if driver == Driver::Memory || self.stack != StackKind::Shardnet {
            return None;
        }
        Some(crate::shardnet_tcp::net::NetOptions {
            driver,
            iface: self.iface.clone(),
            ip: self.ip?,
            gateway: self.gateway,
            shards: usize::from(self.shards),
            xdp_mode: self
                .xdp_mode
                .unwrap_or(crate::shardnet_tcp::net::XdpMode::Auto),
            eal: self.eal.clone(),
            idle,
            pcap: self.pcap.clone(),
        })
    }
}

/// `duration` as a [`std::time::Duration`].
pub fn secs(d: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(d.max(0.0))
}

/// The most server ports a load generator spreads its connects over (`--target-ports`): as
/// many as one echo listens on ([`crate::shardnet_tcp::echo::EchoPorts::MAX`]).
pub const MAX_TARGET_PORTS: u16 = crate::shardnet_tcp::echo::EchoPorts::MAX as u16;

/// Checks `--target-ports n` against the first target port `first`: 1..=[`MAX_TARGET_PORTS`]
/// ports, all of them at most 65535. Returns `n`.
pub fn check_target_ports(first: u16, n: u16) -> Result<u16, String> {
    if n == 0 || n > MAX_TARGET_PORTS {
        return Err(format!(
            "--target-ports {n}: 1 to {MAX_TARGET_PORTS} (the most ports one echo listens on)"
        ));
    }
    if u32::from(first) + u32::from(n) - 1 > u32::from(u16::MAX) {
        return Err(format!(
            "--target-ports {n}: the ports from {first} would run past 65535"
        ));
    }
    Ok(n)
}

/// `ip:P` for one port, `ip:P-Q` for `n` consecutive ones (reports).
pub fn target_name(target: std::net::SocketAddrV4, n: u16) -> String {
    match n {
        0 | 1 => target.to_string(),
        _ => format!(
            "{}:{}-{}",
            target.ip(),
            target.port(),
            u32::from(target.port()) + u32::from(n) - 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    #[test]
    fn target_ports_are_one_to_max_and_stay_below_65536() {
        assert_eq!(check_target_ports(7777, 1), Ok(1));
        assert_eq!(
            check_target_ports(7777, MAX_TARGET_PORTS),
            Ok(MAX_TARGET_PORTS)
        );
        assert_eq!(check_target_ports(65528, 8), Ok(8));
        let range = format!("1 to {MAX_TARGET_PORTS}");
        for (first, n, why) in [
            (7777, 0, range.as_str()),
            (7777, MAX_TARGET_PORTS + 1, range.as_str()),
            (65529, 8, "run past 65535"),
        ] {
            let e = check_target_ports(first, n).unwrap_err();
            assert!(e.contains(why), "{first} {n}: {e}");
        }
    }

    #[test]
    fn target_name_shows_the_port_range() {
        let t = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 20000);
        assert_eq!(target_name(t, 1), "198.18.0.1:20000");
        assert_eq!(target_name(t, 8), "198.18.0.1:20000-20007");
    }
}
