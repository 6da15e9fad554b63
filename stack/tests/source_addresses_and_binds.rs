//! Issue 8's 4-tuple space and binding rules: secondary interface addresses (`ip addr add`) that
//! multiply the ephemeral ports towards one destination, `bind` + `connect`, and the bind table
//! the shards of one runtime share (a port bound on one shard is taken on the other unless both
//! set `SO_REUSEPORT`).
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use shardnet::shard::bind_table::BindTable;
use shardnet::shard::tcp::Reuse;
use shardnet::socket::{SocketHandle, SocketOptions};
use shardnet::tcp::State;
use shardnet::wire::Ipv4Addr;
use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::sync::Arc;

#[path = "support/two_shards.rs"]
mod two_shards;
use two_shards::{C, IP_C, IP_S, MAC_S, S, Sim, any, run, server, sk};

/// A secondary address of the client, on the same subnet.
const IP_C2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// A secondary address of the server.
const IP_S2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 5);

/// Four ephemeral ports only.
const RANGE: (u16, u16) = (50000, 50003);

fn net() -> Sim {
    let mut sim = two_shards::net(23);
    let (first, last) = RANGE;
    assert!(sim.nodes[C].shard.tcp().set_ephemeral_range(first, last));
    sim
}

/// Opens `n` connections to `server(80)` (a listener there), each established before the next
/// opens; returns the results of the `connect` calls.
fn open(sim: &mut Sim, n: usize) -> Vec<Result<SocketHandle, &'static str>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = sk(sim, C).connect(server(80), &SocketOptions::default());
        match r {
            Ok(h) => {
                assert!(run(sim, 5, |sim| sk(sim, C).is_connected(h)), "connects");
                out.push(Ok(h));
            }
            Err(e) => out.push(Err(e.errno())),
        }
    }
    out
}

fn listen_80(sim: &mut Sim) -> SocketHandle {
    sk(sim, S)
        .listen(any(80), 64, &SocketOptions::default())
        .unwrap()
}

#[test]
fn a_tiny_ephemeral_range_runs_out_with_one_source_address() {
    let mut sim = net();
    listen_80(&mut sim);
    let results = open(&mut sim, 6);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(results[4], Err("EADDRNOTAVAIL"));
    assert_eq!(results[5], Err("EADDRNOTAVAIL"));
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().stats().port_exhausted, 2);
}

#[test]
fn a_secondary_address_doubles_the_connections_to_one_destination() {
    let mut sim = net();
    assert_eq!(sim.nodes[C].shard.add_secondary_address(IP_C2), Ok(true));
    let l = listen_80(&mut sim);
    let results = open(&mut sim, 9);
    let handles: Vec<SocketHandle> = results[..8].iter().map(|r| r.unwrap()).collect();
    // The primary address first, until its ports run out; then the secondary one.
    let locals: Vec<SocketAddrV4> = handles
        .iter()
        .map(|&h| sk(&mut sim, C).local_addr(h).unwrap())
        .collect();
    assert!(locals[..4].iter().all(|a| *a.ip() == IP_C), "{locals:?}");
    assert!(locals[4..].iter().all(|a| *a.ip() == IP_C2), "{locals:?}");
    assert_eq!(locals.iter().collect::<HashSet<_>>().len(), 8);
    // Both exhausted: EADDRNOTAVAIL, counted once.
    assert_eq!(results[8], Err("EADDRNOTAVAIL"));
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().stats().port_exhausted, 1);
    // The server reached the secondary address through ARP (the client answered for it) and
    // accepted all eight, four from each address.
    let mut peers = Vec::new();
    while let Ok((_, peer)) = sk(&mut sim, S).accept(l) {
        peers.push(peer);
    }
    assert_eq!(peers.len(), 8);
    assert_eq!(peers.iter().filter(|p| *p.ip() == IP_C2).count(), 4);
    assert!(sim.nodes[S].shard.arp_cache().peek(IP_C2).is_some());
    // Data flows over a connection of the secondary address.
    let h = handles[6];
    assert_eq!(sk(&mut sim, C).send(h, b"ping"), Ok(4));
    let got = run(&mut sim, 2, |sim| {
        sim.nodes[S]
            .shard
            .tcp_endpoints()
            .connections()
            .any(|c| *c.remote.ip() == IP_C2 && c.recv_q == 4)
    });
    assert!(
        got,
        "the server received the data sent from the secondary address"
    );
    assert_eq!(sk(&mut sim, C).state(h), Some(State::Established));
}

#[test]
fn bind_to_a_secondary_address_with_port_zero_picks_the_port_there() {
    let mut sim = net();
    sim.nodes[C].shard.add_secondary_address(IP_C2).unwrap();
    listen_80(&mut sim);
    let opts = SocketOptions::default();
    let h = sk(&mut sim, C)
        .connect_bound(SocketAddrV4::new(IP_C2, 0), server(80), &opts)
        .unwrap();
    assert!(run(&mut sim, 5, |sim| sk(sim, C).is_connected(h)));
    let local = sk(&mut sim, C).local_addr(h).unwrap();
    assert_eq!(*local.ip(), IP_C2);
    assert!((RANGE.0..=RANGE.1).contains(&local.port()));
    // An explicit port on the secondary address; the same 4-tuple again is EADDRNOTAVAIL,
    // and an address the interface does not have is EADDRNOTAVAIL too.
    let fixed = SocketAddrV4::new(IP_C2, 40000);
    let h2 = sk(&mut sim, C)
        .connect_bound(fixed, server(80), &opts)
        .unwrap();
    assert!(run(&mut sim, 5, |sim| sk(sim, C).is_connected(h2)));
    assert_eq!(sk(&mut sim, C).local_addr(h2), Some(fixed));
    let reuse = SocketOptions {
        reuse_addr: true,
        ..SocketOptions::default()
    };
    assert_eq!(
        sk(&mut sim, C)
            .connect_bound(fixed, server(80), &reuse)
            .map_err(|e| e.errno()),
        Err("EADDRNOTAVAIL")
    );
    // Without SO_REUSEADDR the port is bound by the first connection: EADDRINUSE, even to
    // another destination.
    assert_eq!(
        sk(&mut sim, C)
            .connect_bound(fixed, server(81), &opts)
            .map_err(|e| e.errno()),
        Err("EADDRINUSE")
    );
    assert_eq!(
        sk(&mut sim, C)
            .connect_bound(
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 99), 0),
                server(80),
                &opts
            )
            .map_err(|e| e.errno()),
        Err("EADDRNOTAVAIL")
    );
}

#[test]
fn a_server_listens_and_answers_on_its_secondary_address() {
    let mut sim = net();
    assert_eq!(
        sk(&mut sim, S)
            .listen(SocketAddrV4::new(IP_S2, 80), 8, &SocketOptions::default())
            .map_err(|e| e.errno()),
        Err("EADDRNOTAVAIL"),
        "not an address of the server yet"
    );
    sim.nodes[S].shard.add_secondary_address(IP_S2).unwrap();
    let l = sk(&mut sim, S)
        .listen(SocketAddrV4::new(IP_S2, 80), 8, &SocketOptions::default())
        .unwrap();
    let h = sk(&mut sim, C)
        .connect(SocketAddrV4::new(IP_S2, 80), &SocketOptions::default())
        .unwrap();
    assert!(run(&mut sim, 5, |sim| sk(sim, C).is_connected(h)));
    let (a, peer) = sk(&mut sim, S).accept(l).unwrap();
    assert_eq!(*peer.ip(), IP_C);
    assert_eq!(
        sk(&mut sim, S).local_addr(a),
        Some(SocketAddrV4::new(IP_S2, 80))
    );
    assert!(sim.nodes[C].shard.arp_cache().peek(IP_S2).is_some());
    // A ping to the secondary address is answered from it (Linux `icmp_reply`).
    let now = sim.now();
    sim.nodes[C].shard.ping(now, IP_S2, 7, 1, b"hi").unwrap();
    two_shards::idle(&mut sim, 1);
    let mut buf = [0u8; 8];
    let reply = sim.nodes[C].shard.recv_echo_reply(&mut buf).unwrap();
    assert_eq!(reply.from, IP_S2);
    // Removed: packets to it are no longer accepted.
    assert!(sim.nodes[S].shard.remove_secondary_address(IP_S2));
    let before = sim.nodes[S].shard.stats().ip.in_addr_errors;
    assert_eq!(sk(&mut sim, C).send(h, b"x"), Ok(1));
    two_shards::idle(&mut sim, 1);
    assert!(sim.nodes[S].shard.stats().ip.in_addr_errors > before);
}

#[test]
fn a_udp_socket_bound_to_a_secondary_address_receives_and_answers_from_it() {
    let mut sim = net();
    let on_s2 = SocketAddrV4::new(IP_S2, 5353);
    assert_eq!(
        sk(&mut sim, S).bind_udp(on_s2).map_err(|e| e.errno()),
        Err("EADDRNOTAVAIL"),
        "not an address of the server yet"
    );
    sim.nodes[S].shard.add_secondary_address(IP_S2).unwrap();
    let server_sock = sk(&mut sim, S).bind_udp(on_s2).unwrap();
    assert_eq!(sk(&mut sim, S).local_addr(server_sock), Some(on_s2));
    let client_sock = sk(&mut sim, C).bind_udp(any(0)).unwrap();

    // To the secondary address: received, and the answer comes from it.
    assert_eq!(
        sk(&mut sim, C).send_to(client_sock, Some(on_s2), b"query"),
        Ok(5)
    );
    two_shards::idle(&mut sim, 1);
    let mut buf = [0u8; 16];
    let got = sk(&mut sim, S).recv_from(server_sock, &mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"query");
    assert_eq!(*got.from.ip(), IP_C);
    assert_eq!(
        sk(&mut sim, S).send_to(server_sock, Some(got.from), b"answer"),
        Ok(6)
    );
    two_shards::idle(&mut sim, 1);
    let back = sk(&mut sim, C).recv_from(client_sock, &mut buf).unwrap();
    assert_eq!(&buf[..back.len], b"answer");
    assert_eq!(back.from, on_s2, "from the address the socket is bound to");

    // To the primary address on that port: the socket is bound to the secondary one only, so
    // the port is closed there (Linux answers with an ICMP port unreachable, counted NoPorts).
    let no_ports = sim.nodes[S].shard.stats().udp.no_ports;
    assert_eq!(
        sk(&mut sim, C).send_to(client_sock, Some(SocketAddrV4::new(IP_S, 5353)), b"x"),
        Ok(1)
    );
    two_shards::idle(&mut sim, 1);
    assert_eq!(sim.nodes[S].shard.stats().udp.no_ports, no_ports + 1);
    assert_eq!(
        sk(&mut sim, S)
            .recv_from(server_sock, &mut buf)
            .map_err(|e| e.errno()),
        Err("EAGAIN")
    );
}

// ----- the bind table of two shards of one runtime -----

/// Two shards sharing one bind table, as the runtime sets them up.
fn two_shards_of_one_runtime() -> (shardnet::shard::Shard, shardnet::shard::Shard) {
    let table = Arc::new(BindTable::new());
    let mut a = two_shards::shard(MAC_S, IP_S);
    let mut b = two_shards::shard(MAC_S, IP_S);
    a.tcp()
        .set_bind_table(Arc::clone(&table), BindTable::shard_owner(0));
    b.tcp().set_bind_table(table, BindTable::shard_owner(1));
    (a, b)
}

fn listen(
    shard: &mut shardnet::shard::Shard,
    port: u16,
    reuse_port: bool,
) -> Result<SocketHandle, &'static str> {
    let opts = SocketOptions {
        reuse_port,
        ..SocketOptions::default()
    };
    let now = shardnet::time::Instant::ZERO;
    shard
        .sockets(now)
        .listen(any(port), 8, &opts)
        .map_err(|e| e.errno())
}

#[test]
fn a_port_listened_on_one_shard_is_taken_on_the_other() {
    let (mut a, mut b) = two_shards_of_one_runtime();
    let la = listen(&mut a, 8080, false).unwrap();
    assert_eq!(listen(&mut b, 8080, false), Err("EADDRINUSE"));
    assert_eq!(listen(&mut b, 8080, true), Err("EADDRINUSE"));
    // A bound connect from the other shard is refused as well.
    let now = shardnet::time::Instant::ZERO;
    let remote = SocketAddrV4::new(IP_C, 9);
    assert_eq!(
        b.tcp_connect_bound(
            now,
            SocketAddrV4::new(IP_S, 8080),
            Reuse::default(),
            remote,
            *b.tcp_endpoints().config()
        ),
        Err(shardnet::shard::tcp::ConnectError::AddrInUse)
    );
    // After close the port is free everywhere.
    a.sockets(now).close(la).unwrap();
    let lb = listen(&mut b, 8080, false).unwrap();
    assert_eq!(listen(&mut a, 8080, false), Err("EADDRINUSE"));
    b.sockets(now).close(lb).unwrap();
    assert!(!a.tcp_endpoints().bind_table().unwrap().is_bound(8080));
}

#[test]
fn reuseport_listeners_on_both_shards_share_the_port() {
    let (mut a, mut b) = two_shards_of_one_runtime();
    let la = listen(&mut a, 443, true).unwrap();
    let lb = listen(&mut b, 443, true).unwrap();
    let table = Arc::clone(a.tcp_endpoints().bind_table().unwrap());
    assert_eq!(table.claims(443), 2);
    // A listener without SO_REUSEPORT cannot join.
    assert_eq!(listen(&mut a, 443, false), Err("EADDRINUSE"));
    let now = shardnet::time::Instant::ZERO;
    a.sockets(now).close(la).unwrap();
    assert_eq!(table.claims(443), 1);
    b.sockets(now).close(lb).unwrap();
    assert_eq!(table.claims(443), 0);
    // Dropping a shard gives back what it still held.
    listen(&mut b, 444, false).unwrap();
    assert!(table.is_bound(444));
    drop(b);
    assert!(!table.is_bound(444));
}

#[test]
fn ephemeral_ports_skip_ports_bound_on_the_other_shard() {
    let (mut a, mut b) = two_shards_of_one_runtime();
    let now = shardnet::time::Instant::ZERO;
    assert!(b.tcp().set_ephemeral_range(50000, 50001));
    listen(&mut a, 50000, false).unwrap();
    let remote = SocketAddrV4::new(IP_C, 9);
    let h = b.tcp_connect(now, remote).unwrap();
    assert_eq!(b.tcp_endpoints().get(h).unwrap().local().port(), 50001);
    // 50000 is bound on shard a, 50001 is in use towards `remote`: nothing left.
    assert_eq!(
        b.tcp_connect(now, remote),
        Err(shardnet::shard::tcp::ConnectError::AddrNotAvailable)
    );
}

/// A bound port whose connection is in TIME-WAIT is still in use for `bind` without
/// `SO_REUSEADDR` (Linux `inet_csk_bind_conflict`), and free with it.
#[test]
fn a_bound_port_in_time_wait_needs_so_reuseaddr() {
    let mut sim = net();
    let l = listen_80(&mut sim);
    let opts = SocketOptions::default();
    let fixed = SocketAddrV4::new(IP_C, 41000);
    let h = sk(&mut sim, C)
        .connect_bound(fixed, server(80), &opts)
        .unwrap();
    assert!(run(&mut sim, 5, |sim| sk(sim, C).is_connected(h)));
    let (a, _) = sk(&mut sim, S).accept(l).unwrap();
    sk(&mut sim, C).close(h).unwrap();
    two_shards::idle(&mut sim, 1);
    sk(&mut sim, S).close(a).unwrap();
    two_shards::idle(&mut sim, 1);
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().time_wait_count(), 1);
    assert_eq!(
        sk(&mut sim, C)
            .connect_bound(fixed, server(81), &opts)
            .map_err(|e| e.errno()),
        Err("EADDRINUSE")
    );
    let reuse = SocketOptions {
        reuse_addr: true,
        ..SocketOptions::default()
    };
    assert!(
        sk(&mut sim, C)
            .connect_bound(fixed, server(81), &reuse)
            .is_ok()
    );
}
