//! IPv4 interface configuration, routing, ARP and ICMP.

pub mod arp_cache;
pub mod config;
pub mod icmp;

pub use config::{
    AddAddressError, InterfaceConfig, Ipv4Cidr, MAX_SECONDARY_ADDRESSES, NextHop, RouteError,
    SecondaryAddresses,
};
