//! The two test hosts of a forwarding benchmark: a load namespace and a responder namespace
//! joined by a veth pair with one queue per end, created by the benchmark and deleted when it
//! ends (also on panic). Each benchmark has its own names ([`Topology`]), so that they do not
//! meet; the addresses are of 198.18.0.0/15 (RFC 2544) only.

use crate::matrix::child::run_ok;
use crate::matrix::netns::{self, End, NsLock};
use shardnet::wire::{EthernetAddress, Ipv4Addr};

/// The names and addresses of the two hosts.
#[derive(Clone, Copy, Debug)]
pub struct Topology {
    /// The load's namespace.
    pub ns_load: &'static str,
    /// The responders' namespace.
    pub ns_resp: &'static str,
    /// The load's veth end (in `ns_load`).
    pub dev_load: &'static str,
    /// The responders' veth end (in `ns_resp`).
    pub dev_resp: &'static str,
    /// The load side kernel's address on `dev_load` (and the AF_XDP generator's).
    pub load_ip: Ipv4Addr,
    /// The raw reflector's and shardnet's address, on `dev_resp` through the benchmark's port.
    pub shardnet_ip: Ipv4Addr,
    /// The responder side kernel's address, on `dev_resp`.
    pub kernel_ip: Ipv4Addr,
    /// The UDP port every responder listens on.
    pub port: u16,
}

/// Runs a short set-up command (bounded in time), panicking unless it succeeded; returns its
/// standard output.
pub fn sh(args: &[&str]) -> String {
    run_ok(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Both namespaces and the veth pair (and the namespace lock, if the benchmark took it); the
/// namespaces are deleted on drop, before the lock is released.
pub struct Namespaces {
    net: Topology,
    _lock: Option<NsLock>,
}

impl Namespaces {
    /// Creates the hosts of `net` (deleting leftovers of an earlier run first) with the
    /// matrix's [`netns::veth_pair`]: the kernel at `load_ip`/24 on the load side and at
    /// `kernel_ip`/24 on the responder side, IPv6 off; then transmit checksum offload and
    /// segmentation off on both ends. `lock`: the namespace lock, held until the namespaces are
    /// gone (`None`: the caller holds it, as the scenario matrix does).
    pub fn up(net: &Topology, lock: Option<NsLock>) -> Namespaces {
        let guard = Namespaces {
            net: *net,
            _lock: lock,
        };
        let (load_ip, kernel_ip) = (net.load_ip.to_string(), net.kernel_ip.to_string());
        netns::veth_pair(
            End {
                ns: net.ns_load,
                dev: net.dev_load,
                ip: &load_ip,
            },
            End {
                ns: net.ns_resp,
                dev: net.dev_resp,
                ip: &kernel_ip,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (ns, dev) in [(net.ns_load, net.dev_load), (net.ns_resp, net.dev_resp)] {
            // Complete checksums and MTU-sized frames: AF_XDP and the DPDK vdevs carry no
            // offload metadata.
            let _ = run_ok(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso",
                "off",
            ]);
        }
        guard
    }

    /// Gives the load side's kernel a static neighbour entry: `ip` is at `mac` (the raw
    /// reflector does not answer ARP).
    pub fn set_neighbour(&self, ip: Ipv4Addr, mac: EthernetAddress) {
        sh(&[
            "ip",
            "-n",
            self.net.ns_load,
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            &mac.to_string(),
            "dev",
            self.net.dev_load,
        ]);
    }

    /// The MAC address of the responders' veth end (what the kernel responder answers on, and
    /// what a port on that end takes over), read with `ip -br link`.
    pub fn responder_mac(&self) -> EthernetAddress {
        let out = sh(&[
            "ip",
            "-n",
            self.net.ns_resp,
            "-br",
            "link",
            "show",
            "dev",
            self.net.dev_resp,
        ]);
        parse_brief_link_mac(&out).unwrap_or_else(|| panic!("no MAC address in {out:?}"))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        netns::delete(&[self.net.ns_load, self.net.ns_resp]);
    }
}

/// The MAC address in a line of `ip -br link`: "snet-dfs0@if2  UP  aa:bb:cc:dd:ee:ff <...>".
fn parse_brief_link_mac(line: &str) -> Option<EthernetAddress> {
    let field = line.split_whitespace().nth(2)?;
    let mut mac = [0u8; 6];
    let mut parts = field.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(EthernetAddress(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_link_mac_is_the_third_field() {
        let line =
            "snet-dfs0@if2    UP             aa:bb:0c:dd:ee:0f <BROADCAST,MULTICAST,UP,LOWER_UP>\n";
        assert_eq!(
            parse_brief_link_mac(line),
            Some(EthernetAddress([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]))
        );
    }

    #[test]
    fn brief_link_without_a_mac_is_none() {
        assert_eq!(parse_brief_link_mac("lo UNKNOWN"), None);
        assert_eq!(parse_brief_link_mac("x UP aa:bb:cc:dd:ee <>"), None);
        assert_eq!(parse_brief_link_mac("x UP aa:bb:cc:dd:ee:ff:00 <>"), None);
        assert_eq!(parse_brief_link_mac("x UP aa:bb:cc:dd:ee:zz <>"), None);
    }
}
