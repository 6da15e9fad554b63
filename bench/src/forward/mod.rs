//! What the packet-rate benchmarks `xdp_forward` (AF_XDP) and `dpdk_forward` (DPDK) share:
//! the two test hosts ([`namespaces`]), the kernel socket load ([`kernel_load`]), the three
//! responders (the kernel's UDP echo in [`kernel_responder`], the raw reflector in
//! [`reflector`] with its frame rewrite in [`reflect`], shardnet's UDP echo in [`udp_echo`]),
//! and the arithmetic of the results ([`figures`]). The AF_XDP load generator they also share
//! is [`crate::xdp_generator`].
//!
//! The reflector and shardnet's echo are generic over [`shardnet::port::Port`]: each binary
//! opens its own device and hands its port to them. The load runs on CPU 0 and every
//! responder on CPU 1.

pub mod args;
pub mod figures;
pub mod kernel_load;
pub mod kernel_responder;
pub mod namespaces;
pub mod reflect;
pub mod reflector;
pub mod udp_echo;

use std::time::Duration;

/// The unmeasured load before each measurement.
pub const WARMUP: Duration = Duration::from_millis(300);
