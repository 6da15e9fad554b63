//! Two shards on the single-threaded memory wire, a client (198.18.0.1, node [`C`]) and a
//! server (198.18.0.2, node [`S`]), stepped by a [`Simulation`] on a virtual clock: the harness
//! of the socket-level tests (`socket_semantics.rs`, `connection_rates.rs`).
#![allow(dead_code)] // each includer uses a different part of it
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::socket::Sockets;
use shardnet::time::Duration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::sim::Simulation;
use shardnet_memory::{MemoryPort, Wire, WireConfig};
use std::net::SocketAddrV4;

pub const MAC_C: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
pub const MAC_S: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
pub const IP_C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const IP_S: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The client's node index.
pub const C: usize = 0;
/// The server's node index.
pub const S: usize = 1;

pub type Sim = Simulation<MemoryPort>;

pub fn shard(mac: EthernetAddress, ip: Ipv4Addr) -> Shard {
    Shard::new(ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    }))
}

/// The client and the server on a wire with impairment seed `seed` (no impairment is on).
pub fn net(seed: u64) -> Sim {
    let wire = Wire::new(WireConfig {
        seed,
        pool_size: 8192,
        ..WireConfig::default()
    });
    let pc = wire.add_port(MAC_C, 1);
    let ps = wire.add_port(MAC_S, 1);
    let (port_c, port_s) = (wire.port(pc, 0).unwrap(), wire.port(ps, 0).unwrap());
    let mut sim = Simulation::new(wire);
    sim.add(shard(MAC_C, IP_C), port_c);
    sim.add(shard(MAC_S, IP_S), port_s);
    sim
}

/// The socket API of node `n` at the simulation's current time.
pub fn sk(sim: &mut Sim, n: usize) -> Sockets<'_> {
    let now = sim.now();
    sim.nodes[n].shard.sockets(now)
}

/// `0.0.0.0:port`.
pub fn any(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
}

/// The server's `port`.
pub fn server(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(IP_S, port)
}

/// Runs the simulation until `done` or `secs` of virtual time pass; true if `done`.
///
/// `done` is checked at every instant once the frames of that instant have settled (a
/// zero-delay wire delivers and answers within one instant), and the clock never jumps past
/// the deadline, so no timer beyond it fires.
pub fn run(sim: &mut Sim, secs: u64, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
    let deadline = sim.now() + Duration::from_secs(secs);
    loop {
        sim.poll().unwrap();
        if done(sim) {
            return true;
        }
        // What `done` did (send, close, ...) is sent at this instant.
        if sim.poll().unwrap() {
            continue;
        }
        match sim.next_event() {
            Some(t) if t <= deadline => {
                sim.step().unwrap();
            }
            _ => return false,
        }
    }
}

/// Runs everything that happens in the next `secs` of virtual time.
pub fn idle(sim: &mut Sim, secs: u64) {
    run(sim, secs, |_| false);
}
