//! shardnet's AF_XDP port: a [`shardnet::port::Port`] over an AF_XDP socket.
//!
//! [`AfXdpPort::open`] attaches a small XDP program to an interface (raw BPF instructions,
//! see [`bpf`]), which redirects ARP and IPv4 packets addressed to shardnet into an XSKMAP;
//! everything else goes on to the kernel. Each queue gets one AF_XDP socket with its own UMEM
//! (a page-aligned mapping of `frame_count` frames), fill and completion rings, and RX and TX
//! rings ([`ring`]). Received frames are read in place in the UMEM and transmitted frames are
//! written in place there: no byte is copied between the socket rings and the stack (copy mode
//! copies once inside the kernel, between its buffers and the UMEM; zero-copy mode does not).
//!
//! ```no_run
//! use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode};
//! use shardnet::wire::Ipv4Addr;
//!
//! let mut config = AfXdpConfig::new("veth0", Ipv4Addr::new(198, 18, 0, 2));
//! config.mode = AttachMode::Generic;
//! let port = AfXdpPort::open(&config)?;
//! println!("bound in {:?} mode, XDP attached {:?}", port.bind_mode(), port.attach_info().mode);
//! # Ok::<(), shardnet_af_xdp::Error>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(not(all(target_os = "linux", target_endian = "little")))]
compile_error!("shardnet-af-xdp needs Linux on a little-endian machine");

pub mod bpf;
mod error;
mod port;
pub mod ring;
pub mod sys;

pub use error::Error;
pub use port::{
    AfXdpConfig, AfXdpPort, AttachInfo, AttachMode, BindMode, PortCounters, XdpFrame,
    ZeroCopyPolicy,
};
