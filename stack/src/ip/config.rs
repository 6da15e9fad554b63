//! Interface configuration and routing: one primary IPv4 address with a prefix, secondary
//! addresses, and a default gateway.

use crate::wire::{EthernetAddress, Ipv4Addr};
use core::fmt;

/// An IPv4 address with its prefix length, like `198.18.0.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
}

/// A prefix length over 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPrefixLen(pub u8);

impl fmt::Display for BadPrefixLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPv4 prefix length {} is over 32", self.0)
    }
}

impl core::error::Error for BadPrefixLen {}

impl Ipv4Cidr {
    /// `address/prefix_len`; fails if `prefix_len > 32`.
    pub const fn new(address: Ipv4Addr, prefix_len: u8) -> Result<Self, BadPrefixLen> {
        if prefix_len > 32 {
            return Err(BadPrefixLen(prefix_len));
        }
        Ok(Ipv4Cidr {
            address,
            prefix_len,
        })
    }

    /// The address.
    pub const fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The prefix length, 0..=32.
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The network mask as a `u32`.
    pub const fn netmask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    /// True if `addr` is on this subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) ^ u32::from(self.address)) & self.netmask() == 0
    }

    /// The subnet's directed broadcast address (none for /31 and /32, RFC 3021).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.address) | !self.netmask()))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl core::str::FromStr for Ipv4Cidr {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s
            .split_once('/')
            .ok_or("expected ADDRESS/PREFIX, like 198.18.0.1/24")?;
        let address: Ipv4Addr = a.parse().map_err(|_| "not an IPv4 address")?;
        let prefix_len: u8 = p.parse().map_err(|_| "prefix length is not a number")?;
        Ipv4Cidr::new(address, prefix_len).map_err(|_| "prefix length is over 32")
    }
}

/// The configuration of one interface as a shard sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The interface's MAC address (from the port's capabilities).
    pub mac: EthernetAddress,
    /// The interface address and its subnet.
    pub cidr: Ipv4Cidr,
    /// The default gateway, which must be on the subnet; `None` means only on-link destinations
    /// are reachable.
    pub gateway: Option<Ipv4Addr>,
    /// The IP MTU: the largest IP packet the link carries (1500 on Ethernet).
    pub mtu: u16,
    /// TTL of packets this interface originates (Linux `ip_default_ttl`: 64).
    pub ttl: u8,
}

/// Most secondary addresses an interface carries ([`SecondaryAddresses`]).
pub const MAX_SECONDARY_ADDRESSES: usize = 8;

/// Further IPv4 addresses of the interface besides its primary one, like `ip addr add
/// 198.18.0.3/24 dev eth0` on Linux: the shard answers ARP for each, accepts IPv4 sent to each,
/// lets sockets bind to each, and active opens use them to multiply the 4-tuple space towards
/// one destination (see [`crate::shard::Shard::tcp_connect_with`] for how one is chosen).
///
/// They share the primary address's link, subnet and gateway (Linux calls an address on the
/// primary's subnet "secondary"); routing and the source of ARP requests and announcements
/// stay with the primary. A fixed-size list: the type stays `Copy` and lookups do not allocate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecondaryAddresses {
    addrs: [Ipv4Addr; MAX_SECONDARY_ADDRESSES],
    len: u8,
}

/// Why an address cannot be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddAddressError {
    /// Already [`MAX_SECONDARY_ADDRESSES`] of them.
    Full,
    /// Unspecified, broadcast, multicast or class E: not a unicast host address.
    NotUnicast,
}

impl fmt::Display for AddAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddAddressError::Full => write!(
                f,
                "the interface already has {MAX_SECONDARY_ADDRESSES} secondary addresses"
            ),
            AddAddressError::NotUnicast => write!(f, "not a unicast host address"),
        }
    }
}

impl core::error::Error for AddAddressError {}

impl Default for SecondaryAddresses {
    fn default() -> Self {
        SecondaryAddresses::new()
    }
}

impl fmt::Debug for SecondaryAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl SecondaryAddresses {
    /// None.
    pub const fn new() -> Self {
        SecondaryAddresses {
            addrs: [Ipv4Addr::UNSPECIFIED; MAX_SECONDARY_ADDRESSES],
            len: 0,
        }
    }

    /// Adds `addr`; true if it was new (adding an address twice is not an error, as `ip addr
    /// add` of an existing address only fails with `EEXIST` and changes nothing).
    pub fn add(&mut self, addr: Ipv4Addr) -> Result<bool, AddAddressError> {
        if addr.is_unspecified()
            || addr.is_broadcast()
            || addr.is_multicast()
            || u32::from(addr) >> 28 == 0xf
        {
            return Err(AddAddressError::NotUnicast);
        }
        if self.contains(addr) {
            return Ok(false);
        }
        let slot = self
            .addrs
            .get_mut(usize::from(self.len))
            .ok_or(AddAddressError::Full)?;
        *slot = addr;
        self.len += 1;
        Ok(true)
    }

    /// Removes `addr`; true if it was there. The others keep their order.
    pub fn remove(&mut self, addr: Ipv4Addr) -> bool {
        let n = usize::from(self.len);
        let Some(i) = self.addrs[..n].iter().position(|&a| a == addr) else {
            return false;
        };
        self.addrs.copy_within(i + 1..n, i);
        self.len -= 1;
        true
    }

    /// True if `addr` is one of them.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.addrs[..usize::from(self.len)].contains(&addr)
    }

    /// The addresses, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addrs[..usize::from(self.len)].iter().copied()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a destination cannot be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Off-link and no default gateway: `ENETUNREACH`.
    NetUnreachable,
    /// The unspecified address 0.0.0.0, or a multicast/class-E destination this stack does not
    /// send to: `EINVAL`-like, reported as unreachable.
    BadDestination,
}

/// Where a packet for some destination goes on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// To this IPv4 address, whose MAC comes from ARP (the destination itself, or the gateway).
    Unicast(Ipv4Addr),
    /// To the Ethernet broadcast address (limited or directed broadcast).
    Broadcast,
}

impl InterfaceConfig {
    /// The interface's IPv4 address.
    pub const fn address(&self) -> Ipv4Addr {
        self.cidr.address
    }

    /// True if a packet to `dst` is for this host: our address, the limited broadcast or our
    /// subnet's directed broadcast.
    pub fn accepts(&self, dst: Ipv4Addr) -> bool {
        dst == self.cidr.address || dst.is_broadcast() || Some(dst) == self.cidr.broadcast()
    }

    /// True if `dst` is one of the broadcast addresses we accept.
    pub fn is_broadcast(&self, dst: Ipv4Addr) -> bool {
        dst.is_broadcast() || Some(dst) == self.cidr.broadcast()
    }

    /// Chooses the next hop for `dst`: on-link destinations directly, others via the gateway.
    pub fn route(&self, dst: Ipv4Addr) -> Result<NextHop, RouteError> {
        if dst.is_unspecified()
            || dst.is_multicast()
            || u32::from(dst) >> 28 == 0xf && !dst.is_broadcast()
        {
            return Err(RouteError::BadDestination);
        }
        if self.is_broadcast(dst) {
            return Ok(NextHop::Broadcast);
        }
        if self.cidr.contains(dst) {
            return Ok(NextHop::Unicast(dst));
        }
        match self.gateway {
            Some(gw) => Ok(NextHop::Unicast(gw)),
            None => Err(RouteError::NetUnreachable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(gateway: Option<Ipv4Addr>) -> InterfaceConfig {
        InterfaceConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            cidr: "198.18.0.1/24".parse().unwrap(),
            gateway,
            mtu: 1500,
            ttl: 64,
        }
    }

    #[test]
    fn on_link_destinations_are_reached_directly() {
        let c = config(Some(Ipv4Addr::new(198, 18, 0, 254)));
        let dst = Ipv4Addr::new(198, 18, 0, 2);
        assert_eq!(c.route(dst), Ok(NextHop::Unicast(dst)));
    }

    #[test]
    fn off_link_destinations_go_via_the_gateway() {
        let gw = Ipv4Addr::new(198, 18, 0, 254);
        let c = config(Some(gw));
        assert_eq!(
            c.route(Ipv4Addr::new(198, 19, 0, 9)),
            Ok(NextHop::Unicast(gw))
        );
        assert_eq!(
            config(None).route(Ipv4Addr::new(198, 19, 0, 9)),
            Err(RouteError::NetUnreachable)
        );
    }

    #[test]
    fn broadcasts_are_accepted_and_sent_to_the_broadcast_mac() {
        let c = config(None);
        assert!(c.accepts(Ipv4Addr::new(198, 18, 0, 255)));
        assert!(c.accepts(Ipv4Addr::BROADCAST));
        assert!(!c.accepts(Ipv4Addr::new(198, 18, 0, 3)));
        assert_eq!(
            c.route(Ipv4Addr::new(198, 18, 0, 255)),
            Ok(NextHop::Broadcast)
        );
        assert_eq!(
            c.route(Ipv4Addr::UNSPECIFIED),
            Err(RouteError::BadDestination)
        );
        assert_eq!(
            c.route(Ipv4Addr::new(224, 0, 0, 1)),
            Err(RouteError::BadDestination)
        );
    }

    #[test]
    fn secondary_addresses_add_remove_and_refuse_non_unicast() {
        let mut s = SecondaryAddresses::new();
        assert!(s.is_empty());
        let a = Ipv4Addr::new(198, 18, 0, 3);
        let b = Ipv4Addr::new(198, 18, 0, 4);
        assert_eq!(s.add(a), Ok(true));
        assert_eq!(s.add(a), Ok(false));
        assert_eq!(s.add(b), Ok(true));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![a, b]);
        assert!(s.contains(b));
        assert_eq!(
            s.add(Ipv4Addr::UNSPECIFIED),
            Err(AddAddressError::NotUnicast)
        );
        assert_eq!(s.add(Ipv4Addr::BROADCAST), Err(AddAddressError::NotUnicast));
        assert_eq!(
            s.add(Ipv4Addr::new(224, 0, 0, 1)),
            Err(AddAddressError::NotUnicast)
        );
        assert!(s.remove(a));
        assert!(!s.remove(a));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![b]);
        for i in 0..MAX_SECONDARY_ADDRESSES as u8 - 1 {
            assert_eq!(s.add(Ipv4Addr::new(198, 18, 1, i)), Ok(true));
        }
        assert_eq!(s.len(), MAX_SECONDARY_ADDRESSES);
        assert_eq!(
            s.add(Ipv4Addr::new(198, 18, 2, 1)),
            Err(AddAddressError::Full)
        );
    }

    #[test]
    fn cidr_parses_and_rejects_bad_prefixes() {
        let c: Ipv4Cidr = "198.18.7.9/16".parse().unwrap();
        assert_eq!(c.netmask(), 0xffff_0000);
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(198, 18, 255, 255)));
        assert!("198.18.0.1/33".parse::<Ipv4Cidr>().is_err());
        assert!("198.18.0.1".parse::<Ipv4Cidr>().is_err());
        assert_eq!(
            "198.18.0.1/32".parse::<Ipv4Cidr>().unwrap().broadcast(),
            None
        );
        assert_eq!("0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().netmask(), 0);
    }
}
