//! shardnet's apps: the echo server and the load generator, with what they share.
//!
//! - [`protocol`], [`client`], [`report`]: request framing, the per-connection client and the
//!   statistics — sans-IO and stack-agnostic, so that any stack's event loop can drive them.
//! - [`kernel`]: the Linux-socket mode of both binaries (the baseline of every benchmark).
//! - [`shardnet_tcp`]: shardnet's TCP mode, on the in-process memory wire or on a real
//!   interface ([`shardnet_tcp::net`]: AF_XDP, DPDK with the `dpdk` feature): the echo server
//!   and the load generator as runtime apps on the socket API, driving the same
//!   [`client::ClientConn`] and [`report::Series`] as the kernel mode.
//! - [`shardnet_udp`]: the UDP request/response job over shardnet's single-threaded memory wire
//!   (`loadgen --mode udp-rr`).
//! - [`timewait`], [`metrics`], [`cli`]: TIME_WAIT accounting, `--metrics`, shared options.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod client;
pub mod kernel;
pub mod metrics;
pub mod protocol;
pub mod report;
pub mod schedule;
pub mod shardnet_tcp;
pub mod shardnet_udp;
pub mod timewait;

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::wire::{EthernetAddress, Ipv4Addr};

/// A host of the in-process test network (198.18.0.0/24, RFC 2544's benchmarking range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// Its MAC address.
    pub mac: EthernetAddress,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
}

/// The client side of the memory-wire test network.
pub const CLIENT: Host = Host {
    mac: EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]),
    ip: Ipv4Addr::new(198, 18, 0, 1),
};
/// The server side of the memory-wire test network.
pub const SERVER: Host = Host {
    mac: EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]),
    ip: Ipv4Addr::new(198, 18, 0, 2),
};

/// A shard for `host` on a /24 with MTU 1500, UDP queues of `queue_len` datagrams.
pub fn shard_for(host: Host, queue_len: usize) -> Shard {
    let mut config = ShardConfig::new(InterfaceConfig {
        mac: host.mac,
        cidr: Ipv4Cidr::new(host.ip, 24).unwrap_or_else(|_| unreachable!("24 is a valid prefix")),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    config.udp.rx_queue_len = queue_len;
    config.udp.tx_queue_len = queue_len;
    Shard::new(config)
}
