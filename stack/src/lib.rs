//! shardnet: a kernel-bypass TCP/IP stack.
//!
//! This crate is the protocol core. It is *sans-IO*: nothing here (except [`runtime`]) makes a system call, spawns a thread or reads a clock. Time comes in as
//! [`time::Instant`] values, frames come in as byte slices, and frames go out by being written into
//! buffers that the caller (a driver behind [`port::Port`]) hands over. That is what makes every
//! behaviour testable deterministically.
//!
//! Layout (see `design.md` in the project's shared folder for the full map):
//! - [`wire`]: zero-copy, length-checked views over protocol headers plus plain `Repr` values;
//! - [`ip`]: interface configuration, routing, the ARP cache and ICMP;
//! - [`udp`]: UDP sockets with datagram semantics;
//! - [`shard`]: the per-core stack instance that demultiplexes frames and owns all state;
//! - [`socket`]: the Berkeley-like socket API applications use on a shard;
//! - [`port`]: the boundary to the drivers (batched receive and transmit of frames);
//! - [`runtime`]: shard threads, core pinning, the clock, cross-shard forwarding and control.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod errno;
pub mod ip;
mod keyed_hash;
pub mod port;
pub mod runtime;
pub mod shard;
pub mod slot_queue;
pub mod socket;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;
