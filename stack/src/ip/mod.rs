//! IPv4 interface configuration, routing, ARP and ICMP.

pub mod arp_cache;
pub mod config;
pub mod icmp;

pub use config::{InterfaceConfig, Ipv4Cidr, NextHop, RouteError};
