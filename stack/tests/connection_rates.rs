//! High connection rates over the memory wire (two shards, a client 198.18.0.1 and a server
//! 198.18.0.2): compact TIME-WAIT, `TCP_DEFER_ACCEPT`, TCP Fast Open.
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use shardnet::socket::{SockOpt, SocketHandle, SocketOptions};
use shardnet::tcp::{State, TimerKind};
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use std::net::SocketAddrV4;

#[path = "support/two_shards.rs"]
mod two_shards;
use two_shards::{C, S, Sim, any, idle, run, server, sk};

/// The client and the server on the memory wire.
fn net() -> Sim {
    two_shards::net(11)
}

#[test]
fn connection_churn_leaves_compact_time_wait_entries_that_expire() {
    let mut sim = net();
    let l = sk(&mut sim, S)
        .listen(any(80), 256, &SocketOptions::default())
        .unwrap();
    let n = 200;
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(
            sk(&mut sim, C)
                .connect(server(80), &SocketOptions::default())
                .unwrap(),
        );
    }
    let mut accepted: Vec<SocketHandle> = Vec::new();
    let ok = run(&mut sim, 10, |s| {
        while let Ok((h, _)) = sk(s, S).accept(l) {
            accepted.push(h);
        }
        accepted.len() == n
    });
    assert!(ok);
    // The clients close first, then the server: TIME-WAIT on the client.
    for &c in &clients {
        sk(&mut sim, C).close(c).unwrap();
    }
    idle(&mut sim, 1);
    for &a in &accepted {
        sk(&mut sim, S).close(a).unwrap();
    }
    let ok = run(&mut sim, 5, |s| {
        s.nodes[C].shard.tcp_endpoints().time_wait_count() == n
    });
    assert!(ok);
    let ep = sim.nodes[C].shard.tcp_endpoints();
    // No full TCB is left: TIME-WAIT lives in compact entries only.
    assert_eq!(ep.tcb_count(), 0);
    assert_eq!(ep.state_histogram().get(State::TimeWait), n);
    let listed: Vec<_> = ep
        .connections()
        .filter(|c| c.state == State::TimeWait)
        .collect();
    assert_eq!(listed.len(), n);
    assert!(
        listed
            .iter()
            .all(|c| c.timer.is_some_and(|(k, _)| k == TimerKind::Close))
    );
    assert_eq!(sim.nodes[S].shard.tcp_endpoints().connection_count(), 0);
    idle(&mut sim, 61);
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().connection_count(), 0);
    assert_eq!(sim.nodes[C].shard.stats().tcp_ext.tw, n as u64);
}

#[test]
fn defer_accept_queues_the_connection_at_its_first_data() {
    let mut sim = net();
    let opts = SocketOptions {
        defer_accept: Some(Duration::from_secs(5)),
        ..SocketOptions::default()
    };
    let l = sk(&mut sim, S).listen(any(80), 8, &opts).unwrap();
    // Rounded up to whole SYN-ACK periods, as Linux reports it: 1 + 2 + 4 s.
    assert_eq!(
        sk(&mut sim, S).options(l).unwrap().defer_accept,
        Some(Duration::from_secs(7))
    );
    let c = sk(&mut sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap();
    let connected = run(&mut sim, 2, |s| sk(s, C).is_connected(c));
    assert!(connected);
    idle(&mut sim, 2);
    // The handshake's bare ACK was dropped: nothing to accept yet.
    assert_eq!(sk(&mut sim, S).accept(l).unwrap_err().errno(), "EAGAIN");
    assert_eq!(sim.nodes[S].shard.stats().tcp_ext.defer_accept_drops, 1);
    assert_eq!(sim.nodes[S].shard.tcp_endpoints().request_count(), 1);
    // The first data completes it.
    sk(&mut sim, C).send(c, b"GET /").unwrap();
    let mut a = None;
    let ok = run(&mut sim, 2, |s| {
        a = a.or(sk(s, S).accept(l).ok().map(|x| x.0));
        a.is_some()
    });
    assert!(ok);
    let mut buf = [0u8; 16];
    let n = sk(&mut sim, S).recv(a.unwrap(), &mut buf).unwrap();
    assert_eq!(&buf[..n], b"GET /");
}

#[test]
fn defer_accept_accepts_a_silent_client_after_the_period_like_linux() {
    let mut sim = net();
    let l = sk(&mut sim, S)
        .listen(any(80), 8, &SocketOptions::default())
        .unwrap();
    sk(&mut sim, S)
        .set_option(l, SockOpt::DeferAccept(Duration::from_secs(5)))
        .unwrap();
    let start = sim.now();
    let c = sk(&mut sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap();
    let mut a = None;
    let ok = run(&mut sim, 20, |s| {
        a = a.or(sk(s, S).accept(l).ok().map(|x| x.0));
        a.is_some()
    });
    assert!(ok);
    // Linux syn_ack_recalc: no SYN-ACK while deferring, one more at the last period (7 s);
    // the client's ACK to it completes the connection although it carries no data.
    let waited = sim.now().saturating_duration_since(start);
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert!(sk(&mut sim, C).is_connected(c));
    assert_eq!(sk(&mut sim, S).state(a.unwrap()), Some(State::Established));
}

#[test]
fn fast_open_over_the_wire_cookie_first_then_data_in_the_syn() {
    let mut sim = net();
    let opts = SocketOptions {
        fast_open: Some(16),
        ..SocketOptions::default()
    };
    let l = sk(&mut sim, S).listen(any(80), 8, &opts).unwrap();
    let exchange = |sim: &mut Sim, msg: &'static [u8]| {
        let (c, n) = sk(sim, C)
            .connect_with_data(server(80), msg, &SocketOptions::default())
            .unwrap();
        assert_eq!(n, msg.len());
        let mut got = Vec::new();
        let mut a = None;
        let ok = run(sim, 5, |s| {
            if a.is_none() {
                a = sk(s, S).accept(l).ok().map(|x| x.0);
            }
            if let Some(a) = a {
                let mut buf = [0u8; 64];
                if let Ok(k) = sk(s, S).recv(a, &mut buf) {
                    got.extend_from_slice(&buf[..k]);
                }
            }
            got == msg
        });
        assert!(ok, "got {got:?}");
        (c, a.unwrap())
    };
    exchange(&mut sim, b"first");
    let st = sim.nodes[S].shard.stats().tcp_ext;
    assert_eq!((st.fast_open_cookie_reqd, st.fast_open_passive), (1, 0));
    let (c, a) = exchange(&mut sim, b"second");
    let st = sim.nodes[S].shard.stats().tcp_ext;
    assert_eq!(st.fast_open_passive, 1);
    assert_eq!(sim.nodes[C].shard.stats().tcp_ext.fast_open_active, 1);
    // The connection works both ways.
    sk(&mut sim, S).send(a, b"reply").unwrap();
    let mut got = Vec::new();
    let ok = run(&mut sim, 5, |s| {
        let mut buf = [0u8; 64];
        if let Ok(k) = sk(s, C).recv(c, &mut buf) {
            got.extend_from_slice(&buf[..k]);
        }
        got == b"reply"
    });
    assert!(ok);
}

/// Opens a connection from the client's only ephemeral port, lets `first` close first, then the
/// other side; returns once both applications closed their ends.
fn open_and_close(sim: &mut Sim, l: SocketHandle, server_first: bool) {
    let c = sk(sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap();
    let mut a = None;
    let ok = run(sim, 5, |s| {
        a = a.or(sk(s, S).accept(l).ok().map(|x| x.0));
        a.is_some() && sk(s, C).is_connected(c)
    });
    assert!(ok, "no connection");
    let a = a.unwrap();
    let (first, second) = if server_first {
        ((S, a), (C, c))
    } else {
        ((C, c), (S, a))
    };
    sk(sim, first.0).close(first.1).unwrap();
    idle(sim, 1);
    sk(sim, second.0).close(second.1).unwrap();
    idle(sim, 1);
}

#[test]
fn a_new_syn_reopens_a_server_time_wait_tuple_rfc6191() {
    let mut sim = net();
    // One ephemeral port: the second connection has the first one's 4-tuple.
    assert!(sim.nodes[C].shard.tcp().set_ephemeral_range(45000, 45000));
    let l = sk(&mut sim, S)
        .listen(any(80), 8, &SocketOptions::default())
        .unwrap();
    open_and_close(&mut sim, l, true);
    assert_eq!(sim.nodes[S].shard.tcp_endpoints().time_wait_count(), 1);
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().connection_count(), 0);
    // The client's timestamps keep growing towards the server (keyed by address pair), so
    // its new SYN is newer than the TIME-WAIT's TS.Recent: a new incarnation.
    open_and_close(&mut sim, l, true);
    let st = sim.nodes[S].shard.stats().tcp_ext;
    assert_eq!(st.tw_killed, 1);
    assert_eq!(sim.nodes[S].shard.stats().tcp.passive_opens, 2);
}

#[test]
fn tw_reuse_lets_the_client_reconnect_from_its_time_wait_tuple() {
    let mut sim = net();
    let ep = sim.nodes[C].shard.tcp();
    assert!(ep.set_ephemeral_range(45000, 45000));
    let mut tw = ep.time_wait_config();
    tw.reuse = true;
    ep.set_time_wait_config(tw);
    let l = sk(&mut sim, S)
        .listen(any(80), 8, &SocketOptions::default())
        .unwrap();
    open_and_close(&mut sim, l, false);
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().time_wait_count(), 1);
    // Within the second of the last timestamp the tuple is not reusable.
    let e = sk(&mut sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), "EADDRNOTAVAIL");
    // Let time pass: a connection attempt to a silent host keeps timers (ARP, SYN) running.
    sk(&mut sim, C)
        .connect(
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 3), 80),
            &SocketOptions::default(),
        )
        .unwrap();
    let later = sim.now() + Duration::from_millis(1500);
    assert!(run(&mut sim, 5, |s| s.now() >= later));
    // More than a second after the last timestamp: the TIME-WAIT tuple is taken over.
    open_and_close(&mut sim, l, false);
    assert_eq!(sim.nodes[C].shard.stats().tcp_ext.tw_recycled, 1);
    assert_eq!(sim.nodes[S].shard.stats().tcp.passive_opens, 2);
    // Without reuse, the only port stays taken while in TIME-WAIT: EADDRNOTAVAIL, counted.
    tw.reuse = false;
    sim.nodes[C].shard.tcp().set_time_wait_config(tw);
    let e = sk(&mut sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), "EADDRNOTAVAIL");
    assert_eq!(sim.nodes[C].shard.stats().tcp_ext.port_exhausted, 2);
}
