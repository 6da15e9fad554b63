//! shardnet's DPDK port: a [`shardnet::port::Port`] over one queue pair of a DPDK device.
//!
//! - [`Eal::init`] initialises DPDK's Environment Abstraction Layer, once per process
//!   ([`Eal::default_args`] picks flags that work without hugepages or NICs bound to DPDK).
//! - [`DpdkDevice::open`] configures a device (a NIC, or a virtual device: [`ring_pair`],
//!   [`create_vdev`]) with one RX/TX queue pair and one [`Mempool`] per shard, RSS with a
//!   symmetric (or given) key when there are several queues, and the checksum offloads the
//!   device offers; it starts the device and returns one [`DpdkPort`] per queue.
//! - Frames are mbufs ([`DpdkFrame`]): received bytes are read in place, transmitted ones are
//!   written in place, and a frame's handle frees its mbuf when dropped.
//! - [`shardnet::port::Capabilities::rss`] reports the key and indirection table read back from
//!   the device, or `None` when the device does not hash or cannot tell (the runtime then uses
//!   software RSS and forwards misdirected frames).
//!
//! ```no_run
//! use shardnet_dpdk::{DpdkDevice, Eal, PortConfig, ring_pair};
//!
//! let eal = Eal::init(&Eal::default_args())?;
//! let (a, _b) = ring_pair(eal, "wire", 2, 1024)?;
//! let config = PortConfig { queues: 2, ..PortConfig::default() };
//! let (device, ports) = DpdkDevice::open(eal, a, &config)?;
//! println!("{} with {} queues, link {:?}", device.driver_name(), ports.len(), device.link()?);
//! # Ok::<(), shardnet_dpdk::Error>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod device;
mod eal;
mod error;
mod frame;
mod mempool;
mod port;

pub use device::{
    DeviceStats, DpdkDevice, LinkStatus, PortConfig, SYMMETRIC_RSS_KEY, create_vdev, port_by_name,
    ring_pair,
};
pub use eal::{Eal, free_hugepage_bytes};
pub use error::{Error, strerror};
pub use frame::DpdkFrame;
pub use mempool::Mempool;
pub use port::{DpdkPort, PortCounters};
/// The raw bindings, for what the safe layer does not cover.
pub use shardnet_dpdk_sys as sys;
