//! Regressions found by the Monte-Carlo campaign (`campaign.rs`), each reduced to the exchange
//! that showed it, on the two-shard harness with a clean wire.

#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use shardnet::socket::{RecvError, SockOpt, SocketOptions};
use shardnet::time::Duration;

#[path = "support/two_shards.rs"]
mod two_shards;
use two_shards::{C, S, any, run, server, sk};

/// Campaign scenario churn-tuple-reuse: a connection the peer reset, which the server
/// application has not closed yet, kept its 4-tuple in the flow table, so the peer's next SYN
/// on the same 4-tuple was refused with a RST. Linux unhashes a socket as soon as it reaches
/// CLOSED (`tcp_done`): the SYN reaches the listener.
#[test]
fn a_syn_reusing_the_tuple_of_a_reset_connection_not_yet_closed_reaches_the_listener() {
    let mut sim = two_shards::net(11);
    // One ephemeral port: the second connect must take the same 4-tuple.
    assert!(sim.nodes[C].shard.tcp().set_ephemeral_range(40_000, 40_000));
    let o = SocketOptions::default();
    let l = sk(&mut sim, S).listen(any(80), 8, &o).unwrap();
    let first = sk(&mut sim, C).connect(server(80), &o).unwrap();
    let mut accepted = None;
    assert!(run(&mut sim, 5, |s| {
        if accepted.is_none() {
            accepted = sk(s, S).accept(l).ok().map(|(h, _)| h);
        }
        accepted.is_some()
    }));
    let old = accepted.unwrap();
    // The client aborts (SO_LINGER 0): RST, no TIME-WAIT, the port is free at once.
    sk(&mut sim, C)
        .set_option(first, SockOpt::Linger(Some(Duration::ZERO)))
        .unwrap();
    sk(&mut sim, C).close(first).unwrap();
    assert!(run(&mut sim, 5, |s| sk(s, S).socket_error(old).is_some()));
    // The server has not closed `old`. The same 4-tuple connects again.
    let second = sk(&mut sim, C).connect(server(80), &o).unwrap();
    let mut accepted = None;
    let ok = run(&mut sim, 5, |s| {
        if accepted.is_none() {
            accepted = sk(s, S).accept(l).ok().map(|(h, _)| h);
        }
        accepted.is_some() && sk(s, C).is_connected(second)
    });
    assert!(ok, "the new incarnation was not accepted");
    assert_eq!(
        sk(&mut sim, S).peer_addr(accepted.unwrap()),
        sk(&mut sim, C).local_addr(second)
    );
    // The old connection still reports its reset to the application, and closes cleanly.
    let mut buf = [0u8; 4];
    assert_eq!(
        sk(&mut sim, S).recv(old, &mut buf),
        Err(RecvError::ConnectionReset)
    );
    sk(&mut sim, S).close(old).unwrap();
    assert_eq!(sk(&mut sim, C).socket_error(second), None);
}
