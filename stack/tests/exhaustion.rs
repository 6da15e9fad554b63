//! Resources running out are answered, not crashed: each test exhausts one resource of a
//! shard on the memory wire (frame pool, transmit ring, connection table, receive buffer,
//! TIME-WAIT table), checks that the shard degrades by dropping, refusing or back-pressuring
//! the application, that the named counter counts it, and that the data still arrives intact
//! once the resource is available again.
#![allow(clippy::unwrap_used, clippy::expect_used)] // house rule: tests may unwrap

#[path = "support/two_shards.rs"]
mod two_shards;

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::shard::tcp::{ListenHandle, TcpHandle, TimeWaitConfig};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::tcp::{SendError, State};
use shardnet::time::Duration;
use shardnet_memory::sim::Simulation;
use shardnet_memory::{Impairments, Wire, WireConfig};
use std::num::NonZeroU64;
use two_shards::{C, IP_C, IP_S, MAC_C, MAC_S, S, Sim, idle, run, server};

fn config(mac: shardnet::wire::EthernetAddress, ip: shardnet::wire::Ipv4Addr) -> ShardConfig {
    ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    })
}

/// A client and a server on a wire built from `wire`, each shard configured by `tune`.
fn net(wire: WireConfig, tune: impl Fn(usize, &mut ShardConfig)) -> Sim {
    let wire = Wire::new(wire);
    let pc = wire.add_port(MAC_C, 1);
    let ps = wire.add_port(MAC_S, 1);
    let (port_c, port_s) = (wire.port(pc, 0).unwrap(), wire.port(ps, 0).unwrap());
    let mut sim = Simulation::new(wire);
    let mut c = config(MAC_C, IP_C);
    tune(C, &mut c);
    let mut s = config(MAC_S, IP_S);
    tune(S, &mut s);
    sim.add(Shard::new(c), port_c);
    sim.add(Shard::new(s), port_s);
    sim
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 997) as u8).collect()
}

/// Opens one connection from the client to the server's port 80.
fn connect(sim: &mut Sim, l: ListenHandle) -> (TcpHandle, TcpHandle) {
    let now = sim.now();
    let c = sim.nodes[C].shard.tcp_connect(now, server(80)).unwrap();
    let mut s = None;
    assert!(run(sim, 10, |sim| {
        if s.is_none() {
            s = sim.nodes[S].shard.tcp().accept(l).ok();
        }
        s.is_some() && sim.nodes[C].shard.tcp().get(c).unwrap().state() == State::Established
    }));
    (c, s.unwrap())
}

/// Sends `msg` from the client's `c` to the server's `s`; the server reads only when `read`
/// says so. Returns what the server read, after `secs` of virtual time at most.
fn transfer(
    sim: &mut Sim,
    (c, s): (TcpHandle, TcpHandle),
    msg: &[u8],
    secs: u64,
    mut read: impl FnMut(&mut Sim) -> bool,
) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    run(sim, secs, |sim| {
        if sent < msg.len()
            && let Ok(n) = sim.nodes[C]
                .shard
                .tcp()
                .get_mut(c)
                .unwrap()
                .send(&msg[sent..])
        {
            sent += n;
        }
        if read(sim) {
            while let Ok(n) = sim.nodes[S].shard.tcp().get_mut(s).unwrap().recv(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        got.len() == msg.len()
    });
    got
}

#[test]
fn empty_frame_pool_defers_transmission_counted_as_out_no_buffer_and_loses_nothing() {
    // Four frames per queue: the sender's pool runs dry with every window of data.
    let wire = WireConfig {
        seed: 7,
        pool_size: 4,
        impairments: Impairments {
            delay: Duration::from_millis(1),
            ..Impairments::NONE
        },
        ..WireConfig::default()
    };
    let mut sim = net(wire, |_, _| {});
    let l = sim.nodes[S].shard.tcp().listen(80, 16).unwrap();
    let conn = connect(&mut sim, l);
    let msg = pattern(300_000);
    let got = transfer(&mut sim, conn, &msg, 120, |_| true);
    assert!(
        got == msg,
        "{} of {} bytes, corrupted or lost",
        got.len(),
        msg.len()
    );
    let st = sim.nodes[C].shard.stats();
    // OutNoBuffer counts the refusals. A segment refused when its frame is allocated stays
    // due and goes out at a later poll; one the port took into its batch and then could not
    // send is lost on the wire's side and retransmitted (RetransSegs).
    assert!(st.ethernet.tx_no_buffer > 0, "{}", st.render(false));
    eprintln!(
        "frame pool of 4: OutNoBuffer {}, RetransSegs {}",
        st.ethernet.tx_no_buffer, st.tcp.retrans_segs
    );
    assert_eq!(sim.nodes[C].shard.tcp().connection_count(), 1);
}

#[test]
fn full_transmit_ring_drops_frames_counted_as_out_no_buffer_and_tcp_retransmits_them() {
    // A slow link (1 MB/s) with a transmit ring of two frames: bursts overflow the ring.
    let wire = WireConfig {
        seed: 11,
        tx_ring_size: 2,
        impairments: Impairments {
            delay: Duration::from_millis(1),
            bandwidth: NonZeroU64::new(1_000_000),
            ..Impairments::NONE
        },
        ..WireConfig::default()
    };
    let mut sim = net(wire, |_, _| {});
    let l = sim.nodes[S].shard.tcp().listen(80, 16).unwrap();
    let conn = connect(&mut sim, l);
    let msg = pattern(300_000);
    let got = transfer(&mut sim, conn, &msg, 300, |_| true);
    assert!(
        got == msg,
        "{} of {} bytes, corrupted or lost",
        got.len(),
        msg.len()
    );
    let st = sim.nodes[C].shard.stats();
    assert!(
        st.ethernet.tx_no_buffer > 0,
        "OutNoBuffer: {}",
        st.render(false)
    );
    eprintln!(
        "TX ring of 2: OutNoBuffer {}, RetransSegs {}",
        st.ethernet.tx_no_buffer, st.tcp.retrans_segs
    );
    assert!(
        st.tcp.retrans_segs > 0,
        "what the ring dropped was retransmitted"
    );
}

#[test]
fn connection_table_full_leaves_syns_unanswered_counted_as_listen_drops() {
    // The server holds at most 4 connections (any state, TIME-WAIT included).
    let mut sim = net(
        WireConfig {
            seed: 3,
            ..WireConfig::default()
        },
        |n, c| {
            if n == S {
                c.max_tcp_connections = 4;
            }
        },
    );
    let l = sim.nodes[S].shard.tcp().listen(80, 16).unwrap();
    let now = sim.now();
    let clients: Vec<TcpHandle> = (0..6)
        .map(|_| sim.nodes[C].shard.tcp_connect(now, server(80)).unwrap())
        .collect();
    let mut accepted = Vec::new();
    run(&mut sim, 2, |sim| {
        while let Ok(h) = sim.nodes[S].shard.tcp().accept(l) {
            accepted.push(h);
        }
        false
    });
    let established = |sim: &mut Sim| {
        clients
            .iter()
            .filter(|h| sim.nodes[C].shard.tcp().get(**h).unwrap().state() == State::Established)
            .count()
    };
    assert_eq!(accepted.len(), 4);
    assert_eq!(established(&mut sim), 4);
    let st = sim.nodes[S].shard.stats();
    // Linux drops a SYN it cannot take (no SYN-ACK, no RST): the client retries.
    assert!(
        st.tcp_ext.listen_drops >= 2,
        "ListenDrops: {}",
        st.render(false)
    );
    eprintln!(
        "connection table of 4, 6 connects: ListenDrops {}, OutRsts {}",
        st.tcp_ext.listen_drops, st.tcp.out_rsts
    );
    assert_eq!(st.tcp.out_rsts, 0);
    assert_eq!(sim.nodes[S].shard.tcp().connection_count(), 4);
    // Two connections end (RST, no TIME-WAIT): the waiting clients get in on their next SYN.
    for h in accepted.drain(..2) {
        let now = sim.now();
        sim.nodes[S].shard.tcp().abort(now, h);
    }
    assert!(run(&mut sim, 10, |sim| {
        while let Ok(h) = sim.nodes[S].shard.tcp().accept(l) {
            accepted.push(h);
        }
        established(sim) == 4 && accepted.len() == 4
    }));
    let failed = clients
        .iter()
        .filter(|h| sim.nodes[C].shard.tcp().get(**h).unwrap().error().is_some())
        .count();
    assert_eq!(failed, 2, "the two aborted ones, ECONNRESET");
}

#[test]
fn receive_buffer_limit_closes_the_window_and_back_pressures_the_sender_with_ewouldblock() {
    // The server's receive buffer is 16 KiB and its application does not read for 10 s.
    let mut sim = net(
        WireConfig {
            seed: 5,
            ..WireConfig::default()
        },
        |n, c| {
            if n == S {
                c.tcp.recv_buffer = 16 * 1024;
            } else {
                c.tcp.send_buffer = 32 * 1024;
            }
        },
    );
    let l = sim.nodes[S].shard.tcp().listen(80, 16).unwrap();
    let (c, s) = connect(&mut sim, l);
    let msg = pattern(200_000);
    let mut sent = 0;
    run(&mut sim, 10, |sim| {
        if let Ok(n) = sim.nodes[C]
            .shard
            .tcp()
            .get_mut(c)
            .unwrap()
            .send(&msg[sent..])
        {
            sent += n;
        }
        false
    });
    let tcb_c = sim.nodes[C].shard.tcp().get_mut(c).unwrap();
    assert_eq!(
        tcb_c.send(&msg[sent..]),
        Err(SendError::WouldBlock),
        "EWOULDBLOCK"
    );
    assert!(
        tcb_c.stats().window_probes > 0,
        "persist probes into the zero window"
    );
    let probes = tcb_c.stats().window_probes;
    let tcb_s = sim.nodes[S].shard.tcp().get(s).unwrap();
    assert!(tcb_s.recv_available() <= 16 * 1024);
    assert!(
        tcb_s.buffer_memory() <= 2 * 16 * 1024,
        "{}",
        tcb_s.buffer_memory()
    );
    assert!(tcb_s.stats().to_zero_window_adv > 0, "TCPToZeroWindowAdv");
    eprintln!(
        "receive buffer 16 KiB unread: TCPToZeroWindowAdv {}, sender window probes {probes}, sender EWOULDBLOCK after {sent} bytes",
        tcb_s.stats().to_zero_window_adv
    );
    assert_eq!(tcb_s.state(), State::Established);
    assert!(sent < msg.len() && sent <= 16 * 1024 + 32 * 1024);
    // The application reads: the window opens and everything arrives.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    assert!(run(&mut sim, 60, |sim| {
        if sent < msg.len()
            && let Ok(n) = sim.nodes[C]
                .shard
                .tcp()
                .get_mut(c)
                .unwrap()
                .send(&msg[sent..])
        {
            sent += n;
        }
        while let Ok(n) = sim.nodes[S].shard.tcp().get_mut(s).unwrap().recv(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == msg.len()
    }));
    assert!(got == msg);
    assert!(probes > 0);
}

#[test]
fn time_wait_cap_closes_extra_connections_at_once_counted_as_tcp_time_wait_overflow() {
    let mut sim = two_shards::net(9);
    sim.nodes[C]
        .shard
        .tcp()
        .set_time_wait_config(TimeWaitConfig {
            max_buckets: 2,
            reuse: false,
        });
    let l = sim.nodes[S].shard.tcp().listen(80, 16).unwrap();
    for _ in 0..5 {
        let (c, s) = connect(&mut sim, l);
        // The client closes first (it will hold TIME-WAIT), then the server.
        let now = sim.now();
        sim.nodes[C].shard.tcp().close(now, c);
        idle(&mut sim, 1);
        let now = sim.now();
        sim.nodes[S].shard.tcp().close(now, s);
        idle(&mut sim, 1);
    }
    let e = sim.nodes[C].shard.tcp_endpoints();
    assert_eq!(e.time_wait_count(), 2, "{}", e.describe());
    assert_eq!(e.connection_count(), 2);
    let st = sim.nodes[C].shard.stats();
    assert_eq!(st.tcp_ext.tw_overflow, 3, "TCPTimeWaitOverflow");
    eprintln!(
        "TIME-WAIT cap 2, 5 closes: TCPTimeWaitOverflow {}",
        st.tcp_ext.tw_overflow
    );
    assert_eq!(sim.nodes[S].shard.tcp().connection_count(), 0);
    // 2*MSL later the table is empty.
    idle(&mut sim, 70);
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().connection_count(), 0);
}
