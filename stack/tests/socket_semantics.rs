//! Berkeley socket semantics of the socket layer (`shardnet::socket`), with two shards on the
//! memory wire: a client (198.18.0.1) and a server (198.18.0.2).
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use shardnet::socket::{
    Event, Readiness, RecvError, SendError, Shutdown, SockOpt, SocketError, SocketHandle,
    SocketOptions,
};
use shardnet::tcp::congestion::Algorithm;
use shardnet::tcp::{State, TimerKind};
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;
use std::collections::HashSet;
use std::net::SocketAddrV4;

#[path = "support/two_shards.rs"]
mod two_shards;
use two_shards::{C, IP_C, S, Sim, any, idle, run, server, sk};

/// The client and the server on the memory wire.
fn net() -> Sim {
    two_shards::net(7)
}

/// A connection from the client to a listener on the server: (listener, server end, client
/// end).
fn pair(
    sim: &mut Sim,
    port: u16,
    listen_opts: &SocketOptions,
    connect_opts: &SocketOptions,
) -> (SocketHandle, SocketHandle, SocketHandle) {
    let l = sk(sim, S).listen(any(port), 16, listen_opts).unwrap();
    let c = sk(sim, C).connect(server(port), connect_opts).unwrap();
    let mut accepted = None;
    let ok = run(sim, 10, |s| {
        if accepted.is_none() {
            accepted = sk(s, S).accept(l).ok().map(|(h, _)| h);
        }
        accepted.is_some() && sk(s, C).is_connected(c)
    });
    assert!(ok, "no connection");
    (l, accepted.unwrap(), c)
}

fn default_pair(sim: &mut Sim, port: u16) -> (SocketHandle, SocketHandle, SocketHandle) {
    let o = SocketOptions::default();
    pair(sim, port, &o, &o)
}

/// Reads everything available on `h` into `out`; returns the last result (EOF = Ok(0)).
fn drain(sim: &mut Sim, n: usize, h: SocketHandle, out: &mut Vec<u8>) -> Result<usize, RecvError> {
    let mut buf = [0u8; 4096];
    loop {
        match sk(sim, n).recv(h, &mut buf) {
            Ok(0) => return Ok(0),
            Ok(k) => out.extend_from_slice(&buf[..k]),
            Err(e) => return Err(e),
        }
    }
}

/// Reads on `h` until end of stream; returns the bytes.
fn read_to_eof(sim: &mut Sim, n: usize, h: SocketHandle) -> Vec<u8> {
    let mut out = Vec::new();
    let ok = run(sim, 30, |s| drain(s, n, h, &mut out) == Ok(0));
    assert!(ok, "no end of stream; got {} bytes", out.len());
    out
}

fn state(sim: &mut Sim, n: usize, h: SocketHandle) -> Option<State> {
    sk(sim, n).state(h)
}

#[test]
fn accept_on_an_empty_queue_returns_ewouldblock() {
    let mut sim = net();
    let l = sk(&mut sim, S)
        .listen(any(80), 8, &SocketOptions::default())
        .unwrap();
    let e = sk(&mut sim, S).accept(l).unwrap_err();
    assert_eq!(e.errno(), "EAGAIN");
    idle(&mut sim, 1);
    assert_eq!(sk(&mut sim, S).accept(l).unwrap_err().errno(), "EAGAIN");
    // Not a listener: EINVAL, as accept on a connected socket is on Linux.
    let (_, a, _) = default_pair(&mut sim, 81);
    assert_eq!(sk(&mut sim, S).accept(a).unwrap_err().errno(), "EINVAL");
    // A closed listener's handle is stale.
    sk(&mut sim, S).close(l).unwrap();
    assert_eq!(sk(&mut sim, S).accept(l).unwrap_err().errno(), "EBADF");
}

#[test]
fn read_returns_zero_after_the_peers_fin() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    assert_eq!(sk(&mut sim, C).send(c, b"hello").unwrap(), 5);
    sk(&mut sim, C).close(c).unwrap();
    assert_eq!(read_to_eof(&mut sim, S, a), b"hello");
    // End of stream stays end of stream.
    let mut buf = [0u8; 8];
    assert_eq!(sk(&mut sim, S).recv(a, &mut buf), Ok(0));
    assert_eq!(sk(&mut sim, S).recv_with(a, |_| panic!("no data")), Ok(0));
}

#[test]
fn the_socket_stays_in_close_wait_until_the_app_closes_it() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    // shutdown, not close: an orphaned client would reset the connection when its FIN-WAIT-2
    // timer (tcp_fin_timeout, 60 s) expires, as Linux does.
    sk(&mut sim, C).shutdown(c, Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut sim, S, a), b"");
    assert_eq!(state(&mut sim, S, a), Some(State::CloseWait));
    // Minutes later, longer than every timer of the stack but keepalive's, still CLOSE-WAIT:
    // only the application ends it (RFC 9293 3.10.4: CLOSE in CLOSE-WAIT).
    idle(&mut sim, 300);
    assert_eq!(state(&mut sim, S, a), Some(State::CloseWait));
    // It can still send in CLOSE-WAIT.
    assert_eq!(sk(&mut sim, S).send(a, b"late").unwrap(), 4);
    sk(&mut sim, S).close(a).unwrap();
    let gone = run(&mut sim, 10, |s| {
        s.nodes[S].shard.tcp_endpoints().connection_count() == 0
    });
    assert!(gone, "the server's connection did not end after close");
    // The client, which closed first, waits in TIME-WAIT.
    assert_eq!(state(&mut sim, C, c), Some(State::TimeWait));
}

#[test]
fn econnreset_after_an_rst() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    // The client closes with data it never read: Linux answers with RST (RFC 2525 2.17).
    sk(&mut sim, S).send(a, b"unread").unwrap();
    let arrived = run(&mut sim, 5, |s| {
        sk(s, C).readiness(c).contains(Readiness::READABLE)
    });
    assert!(arrived);
    sk(&mut sim, C).close(c).unwrap();
    let reset = run(&mut sim, 5, |s| sk(s, S).socket_error(a).is_some());
    assert!(reset, "the server saw no RST");
    assert_eq!(
        sk(&mut sim, S).socket_error(a),
        Some(SocketError::ConnectionReset)
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        sk(&mut sim, S).recv(a, &mut buf),
        Err(RecvError::ConnectionReset)
    );
    assert_eq!(
        sk(&mut sim, S).send(a, b"x"),
        Err(SendError::ConnectionReset)
    );
    assert_eq!(state(&mut sim, S, a), Some(State::Closed));
    let r = sk(&mut sim, S).readiness(a);
    assert!(r.contains(Readiness::ERROR | Readiness::HANGUP), "{r:?}");
}

/// Brings a connection on `port` to TIME-WAIT on the server (the server closes first).
fn server_time_wait(sim: &mut Sim, port: u16) -> SocketHandle {
    let (l, a, c) = default_pair(sim, port);
    sk(sim, S).close(a).unwrap();
    assert_eq!(read_to_eof(sim, C, c), b"");
    sk(sim, C).close(c).unwrap();
    let tw = run(sim, 10, |s| {
        s.nodes[S]
            .shard
            .tcp_endpoints()
            .state_histogram()
            .get(State::TimeWait)
            == 1
    });
    assert!(tw, "no TIME-WAIT on the server");
    l
}

#[test]
fn eaddrinuse_without_so_reuseaddr_and_success_with_it() {
    let mut sim = net();
    let l = server_time_wait(&mut sim, 7000);
    // Two listeners never share a port through SO_REUSEADDR (Linux: only SO_REUSEPORT).
    let reuse = SocketOptions {
        reuse_addr: true,
        ..SocketOptions::default()
    };
    let e = sk(&mut sim, S).listen(any(7000), 8, &reuse).unwrap_err();
    assert_eq!(e.errno(), "EADDRINUSE");
    sk(&mut sim, S).close(l).unwrap();
    // The old connection is in TIME-WAIT on port 7000: a plain listen fails ...
    let e = sk(&mut sim, S)
        .listen(any(7000), 8, &SocketOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), "EADDRINUSE");
    // ... and one with SO_REUSEADDR succeeds, and works.
    let l2 = sk(&mut sim, S).listen(any(7000), 8, &reuse).unwrap();
    let c = sk(&mut sim, C)
        .connect(server(7000), &SocketOptions::default())
        .unwrap();
    let mut a2 = None;
    let ok = run(&mut sim, 10, |s| {
        a2 = a2.or(sk(s, S).accept(l2).ok().map(|x| x.0));
        a2.is_some()
    });
    assert!(ok);
    assert!(sk(&mut sim, C).is_connected(c));
    sk(&mut sim, S).close(l2).unwrap();
    // Once TIME-WAIT is over, the established connection on port 7000 still takes the port
    // from a plain listen ...
    idle(&mut sim, 61);
    let h = sk(&mut sim, S).state_histogram();
    assert_eq!(h.get(State::TimeWait), 0, "{h}");
    assert_eq!(h.get(State::Established), 1, "{h}");
    let e = sk(&mut sim, S)
        .listen(any(7000), 8, &SocketOptions::default())
        .unwrap_err();
    assert_eq!(e.errno(), "EADDRINUSE");
    // ... and when it is gone (reset: no TIME-WAIT), the port is free for anyone.
    sk(&mut sim, S)
        .set_option(a2.unwrap(), SockOpt::Linger(Some(Duration::ZERO)))
        .unwrap();
    sk(&mut sim, S).close(a2.unwrap()).unwrap();
    idle(&mut sim, 1);
    assert_eq!(sim.nodes[S].shard.tcp_endpoints().connection_count(), 0);
    sk(&mut sim, S)
        .listen(any(7000), 8, &SocketOptions::default())
        .unwrap();
}

#[test]
fn linger_zero_close_sends_an_rst_and_frees_at_once() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    sk(&mut sim, S)
        .set_option(a, SockOpt::Linger(Some(Duration::ZERO)))
        .unwrap();
    assert_eq!(
        sk(&mut sim, S).options(a).unwrap().linger,
        Some(Duration::ZERO)
    );
    sk(&mut sim, S).close(a).unwrap();
    let reset = run(&mut sim, 5, |s| sk(s, C).socket_error(c).is_some());
    assert!(reset);
    let mut buf = [0u8; 4];
    assert_eq!(
        sk(&mut sim, C).recv(c, &mut buf),
        Err(RecvError::ConnectionReset)
    );
    // No TIME-WAIT, no FIN exchange: the server's table is empty.
    assert_eq!(sim.nodes[S].shard.tcp_endpoints().connection_count(), 0);
    assert_eq!(sk(&mut sim, S).close(a).unwrap_err().errno(), "EBADF");
}

#[test]
fn linger_zero_inherited_from_the_listener() {
    let mut sim = net();
    let lo = SocketOptions {
        linger: Some(Duration::ZERO),
        ..SocketOptions::default()
    };
    let (_, a, c) = pair(&mut sim, 80, &lo, &SocketOptions::default());
    sk(&mut sim, S).close(a).unwrap();
    let reset = run(&mut sim, 5, |s| sk(s, C).socket_error(c).is_some());
    assert!(reset);
    assert_eq!(
        sk(&mut sim, C).socket_error(c),
        Some(SocketError::ConnectionReset)
    );
}

#[test]
fn linger_timeout_resets_when_data_stays_unacknowledged() {
    let mut sim = net();
    // A tiny receive buffer on the server, which never reads: the client's data cannot all
    // be acknowledged.
    let lo = SocketOptions {
        recv_buffer: Some(4608),
        ..SocketOptions::default()
    };
    let co = SocketOptions {
        linger: Some(Duration::from_secs(2)),
        ..SocketOptions::default()
    };
    let (_, a, c) = pair(&mut sim, 80, &lo, &co);
    let data = vec![7u8; 64 * 1024];
    let n = sk(&mut sim, C).send(c, &data).unwrap();
    assert!(n > 20_000);
    idle(&mut sim, 1);
    sk(&mut sim, C).close(c).unwrap();
    let linger = sim.nodes[C]
        .shard
        .tcp_endpoints()
        .connections()
        .find_map(|i| i.timer);
    assert!(linger.is_some(), "no timer armed");
    let reset = run(&mut sim, 10, |s| sk(s, S).socket_error(a).is_some());
    assert!(reset, "no RST after the linger time");
    assert_eq!(
        sk(&mut sim, S).socket_error(a),
        Some(SocketError::ConnectionReset)
    );
    assert_eq!(sim.nodes[C].shard.tcp_endpoints().connection_count(), 0);
}

#[test]
fn linger_timeout_is_harmless_when_everything_is_acknowledged() {
    let mut sim = net();
    let co = SocketOptions {
        linger: Some(Duration::from_secs(2)),
        ..SocketOptions::default()
    };
    let (_, a, c) = pair(&mut sim, 80, &SocketOptions::default(), &co);
    sk(&mut sim, C).send(c, b"all of it").unwrap();
    sk(&mut sim, C).close(c).unwrap();
    assert_eq!(read_to_eof(&mut sim, S, a), b"all of it");
    idle(&mut sim, 5);
    assert_eq!(sk(&mut sim, S).socket_error(a), None);
    assert_eq!(state(&mut sim, S, a), Some(State::CloseWait));
}

/// One side shuts down writing; the other still sends, and the first still receives.
fn half_close(first: usize) {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    let (h1, h2, second) = if first == C { (c, a, S) } else { (a, c, C) };
    sk(&mut sim, first).send(h1, b"request").unwrap();
    sk(&mut sim, first).shutdown(h1, Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut sim, second, h2), b"request");
    // The other direction is open.
    let reply = vec![42u8; 100_000];
    let mut sent = 0;
    let mut got = Vec::new();
    let ok = run(&mut sim, 30, |s| {
        if sent < reply.len()
            && let Ok(n) = sk(s, second).send(h2, &reply[sent..])
        {
            sent += n;
        }
        let _ = drain(s, first, h1, &mut got);
        got.len() == reply.len()
    });
    assert!(ok, "{} of {} bytes", got.len(), reply.len());
    assert_eq!(got, reply);
    sk(&mut sim, second).shutdown(h2, Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut sim, first, h1), b"");
    // Both FINs acknowledged: the side that shut down first is in TIME-WAIT.
    let done = run(&mut sim, 5, |s| {
        state(s, first, h1) == Some(State::TimeWait)
    });
    assert!(done, "{:?}", state(&mut sim, first, h1));
}

#[test]
fn half_close_client_first_data_still_flows_to_the_client() {
    half_close(C);
}

#[test]
fn half_close_server_first_data_still_flows_to_the_server() {
    half_close(S);
}

#[test]
fn econnrefused_on_connect_to_a_closed_port() {
    let mut sim = net();
    let c = sk(&mut sim, C)
        .connect(server(9), &SocketOptions::default())
        .unwrap();
    assert!(!sk(&mut sim, C).is_connected(c));
    let mut events = Vec::new();
    let failed = run(&mut sim, 5, |s| {
        sk(s, C).poll_events(&mut events);
        !events.is_empty()
    });
    assert!(failed, "no event");
    assert_eq!(events[0].socket, c);
    assert!(events[0].readiness.contains(Readiness::ERROR));
    assert_eq!(
        sk(&mut sim, C).socket_error(c),
        Some(SocketError::ConnectionRefused)
    );
    assert_eq!(
        sk(&mut sim, C).send(c, b"x").unwrap_err().errno(),
        "ECONNREFUSED"
    );
}

#[test]
fn etimedout_when_nobody_answers_the_syn() {
    let mut sim = net();
    // Make ARP resolve the server first, then drop everything it would answer by connecting
    // to an address nobody has.
    let nobody = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 77), 80);
    let o = SocketOptions {
        syn_count: Some(2),
        ..SocketOptions::default()
    };
    let c = sk(&mut sim, C).connect(nobody, &o).unwrap();
    let failed = run(&mut sim, 60, |s| sk(s, C).socket_error(c).is_some());
    assert!(failed);
    assert_eq!(sk(&mut sim, C).socket_error(c), Some(SocketError::TimedOut));
    let bad = SocketOptions {
        syn_count: Some(0),
        ..SocketOptions::default()
    };
    assert_eq!(
        sk(&mut sim, C).connect(nobody, &bad).unwrap_err().errno(),
        "EINVAL"
    );
}

#[test]
fn epipe_on_send_after_shutdown_write() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    sk(&mut sim, C).shutdown(c, Shutdown::Write).unwrap();
    assert_eq!(sk(&mut sim, C).send(c, b"more"), Err(SendError::BrokenPipe));
    assert_eq!(
        sk(&mut sim, C)
            .send_with(c, 10, |_| unreachable!())
            .unwrap_err()
            .errno(),
        "EPIPE"
    );
    // Reading still works.
    sk(&mut sim, S).send(a, b"pong").unwrap();
    let mut got = Vec::new();
    let ok = run(&mut sim, 5, |s| {
        let _ = drain(s, C, c, &mut got);
        got == b"pong"
    });
    assert!(ok);
}

#[test]
fn shutdown_read_makes_reads_return_zero_after_queued_data() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    sk(&mut sim, S).send(a, b"queued").unwrap();
    let ok = run(&mut sim, 5, |s| {
        sk(s, C).readiness(c).contains(Readiness::READABLE)
    });
    assert!(ok);
    sk(&mut sim, C).shutdown(c, Shutdown::Read).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(sk(&mut sim, C).recv(c, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"queued");
    assert_eq!(sk(&mut sim, C).recv(c, &mut buf), Ok(0));
    // Writing still works.
    assert_eq!(sk(&mut sim, C).send(c, b"ok").unwrap(), 2);
    // A listener is not connected.
    let l = sk(&mut sim, S)
        .listen(any(90), 4, &SocketOptions::default())
        .unwrap();
    assert_eq!(
        sk(&mut sim, S)
            .shutdown(l, Shutdown::Both)
            .unwrap_err()
            .errno(),
        "ENOTCONN"
    );
}

#[test]
fn zero_copy_send_with_and_recv_with_move_bytes_in_place() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    let n = sk(&mut sim, C)
        .send_with(c, 11, |buf| {
            buf[..11].copy_from_slice(b"in place!!!");
            11
        })
        .unwrap();
    assert_eq!(n, 11);
    let mut got = Vec::new();
    let ok = run(&mut sim, 5, |s| {
        let _ = sk(s, S).recv_with(a, |bytes| {
            got.extend_from_slice(bytes);
            bytes.len()
        });
        got.len() == 11
    });
    assert!(ok);
    assert_eq!(got, b"in place!!!");
    // Consuming less leaves the rest for the next call.
    sk(&mut sim, C).send(c, b"abcdef").unwrap();
    let ok = run(&mut sim, 5, |s| {
        sk(s, S).readiness(a).contains(Readiness::READABLE)
    });
    assert!(ok);
    assert_eq!(sk(&mut sim, S).recv_with(a, |_| 2), Ok(2));
    let mut buf = [0u8; 8];
    assert_eq!(sk(&mut sim, S).recv(a, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"cdef");
    assert_eq!(
        sk(&mut sim, S).recv(a, &mut buf),
        Err(RecvError::WouldBlock)
    );
}

#[test]
fn readiness_events_for_thousands_of_sockets_without_scanning() {
    const N: usize = 2000;
    let mut sim = net();
    // Resolve ARP first, so that the burst of SYNs is not held back by it.
    default_pair(&mut sim, 81);
    let mut ev = Vec::new();
    sk(&mut sim, S).poll_events(&mut ev);
    sk(&mut sim, C).poll_events(&mut ev);
    ev.clear();

    let l = sk(&mut sim, S)
        .listen(any(80), N, &SocketOptions::default())
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(
            sk(&mut sim, C)
                .connect(server(80), &SocketOptions::default())
                .unwrap(),
        );
    }
    // Accept on ACCEPT events only; count WRITABLE (connected) events on the client.
    let mut accepted = Vec::new();
    let mut accept_events = 0;
    let mut writable = HashSet::new();
    let mut sev: Vec<Event> = Vec::new();
    let mut cev: Vec<Event> = Vec::new();
    let ok = run(&mut sim, 30, |s| {
        sev.clear();
        sk(s, S).poll_events(&mut sev);
        for e in &sev {
            if e.socket != l {
                // A socket just accepted reports its readiness once (EPOLL_CTL_ADD).
                assert_eq!(e.readiness, Readiness::WRITABLE, "{e:?}");
                assert!(accepted.contains(&e.socket), "{e:?}");
                continue;
            }
            assert_eq!(e.readiness, Readiness::ACCEPT);
            accept_events += 1;
            while let Ok((h, _)) = sk(s, S).accept(l) {
                accepted.push(h);
            }
        }
        cev.clear();
        sk(s, C).poll_events(&mut cev);
        for e in &cev {
            assert!(e.readiness.contains(Readiness::WRITABLE), "{e:?}");
            assert!(writable.insert(e.socket), "one event per connect");
        }
        accepted.len() == N && writable.len() == N
    });
    assert!(
        ok,
        "{} accepted, {} connected",
        accepted.len(),
        writable.len()
    );
    assert!(accept_events >= 1);
    // The last accepts' own reports.
    sev.clear();
    sk(&mut sim, S).poll_events(&mut sev);
    for e in &sev {
        assert_eq!(e.readiness, Readiness::WRITABLE, "{e:?}");
        assert!(accepted.contains(&e.socket), "{e:?}");
    }

    // Data on every other connection: READABLE events name exactly those, once each per
    // poll, and nothing else.
    let chosen: HashSet<SocketHandle> = clients.iter().step_by(2).copied().collect();
    for &c in &chosen {
        sk(&mut sim, C).send(c, b"ping").unwrap();
    }
    let mut readable = HashSet::new();
    let ok = run(&mut sim, 10, |s| {
        sev.clear();
        sk(s, S).poll_events(&mut sev);
        for e in &sev {
            assert!(e.readiness.contains(Readiness::READABLE), "{e:?}");
            let mut buf = [0u8; 8];
            assert_eq!(sk(s, S).recv(e.socket, &mut buf), Ok(4));
            let peer = sk(s, S).peer_addr(e.socket).unwrap();
            readable.insert(peer.port());
        }
        readable.len() == chosen.len()
    });
    assert!(ok, "{} readable of {}", readable.len(), chosen.len());
    let chosen_ports: HashSet<u16> = chosen
        .iter()
        .map(|&c| sk(&mut sim, C).local_addr(c).unwrap().port())
        .collect();
    assert_eq!(
        readable, chosen_ports,
        "events for sockets that got no data"
    );
    idle(&mut sim, 1);
    sev.clear();
    sk(&mut sim, S).poll_events(&mut sev);
    assert!(
        sev.is_empty(),
        "spurious events: {:?}",
        &sev[..sev.len().min(4)]
    );

    // The client shuts down writing everywhere: each server socket gets HANGUP (and READABLE:
    // read returns 0).
    for &c in &clients {
        sk(&mut sim, C).shutdown(c, Shutdown::Write).unwrap();
    }
    let mut hung = HashSet::new();
    let ok = run(&mut sim, 10, |s| {
        sev.clear();
        sk(s, S).poll_events(&mut sev);
        for e in &sev {
            assert!(
                e.readiness
                    .contains(Readiness::HANGUP | Readiness::READABLE),
                "{e:?}"
            );
            assert!(hung.insert(e.socket));
        }
        hung.len() == N
    });
    assert!(ok, "{} hang-ups of {N}", hung.len());
    let mut buf = [0u8; 4];
    for &a in &accepted {
        assert_eq!(sk(&mut sim, S).recv(a, &mut buf), Ok(0));
    }
}

#[test]
fn so_reuseport_spreads_connections_over_two_listeners() {
    let mut sim = net();
    let rp = SocketOptions {
        reuse_port: true,
        ..SocketOptions::default()
    };
    let l1 = sk(&mut sim, S).listen(any(80), 512, &rp).unwrap();
    let l2 = sk(&mut sim, S).listen(any(80), 512, &rp).unwrap();
    // A listener without SO_REUSEPORT cannot join the group.
    assert_eq!(
        sk(&mut sim, S)
            .listen(
                any(80),
                8,
                &SocketOptions {
                    reuse_addr: true,
                    ..SocketOptions::default()
                }
            )
            .unwrap_err()
            .errno(),
        "EADDRINUSE"
    );
    const N: usize = 400;
    for _ in 0..N {
        sk(&mut sim, C)
            .connect(server(80), &SocketOptions::default())
            .unwrap();
    }
    let (mut n1, mut n2) = (0, 0);
    let ok = run(&mut sim, 30, |s| {
        while sk(s, S).accept(l1).is_ok() {
            n1 += 1;
        }
        while sk(s, S).accept(l2).is_ok() {
            n2 += 1;
        }
        n1 + n2 == N
    });
    assert!(ok, "{n1} + {n2} of {N}");
    // A 4-tuple hash splits them about evenly (each side within 35%..65%).
    assert!(n1 > N * 35 / 100 && n2 > N * 35 / 100, "{n1} / {n2}");
    // Closing one listener leaves the other serving the port.
    sk(&mut sim, S).close(l1).unwrap();
    let c = sk(&mut sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap();
    let ok = run(&mut sim, 5, |s| sk(s, S).accept(l2).is_ok());
    assert!(ok);
    assert!(sk(&mut sim, C).is_connected(c));
}

fn tcb_stats(sim: &mut Sim, n: usize, h: SocketHandle) -> shardnet::tcp::tcb::ConnStats {
    let SocketHandle::Tcp(t) = h else {
        panic!("not a connection")
    };
    *sim.nodes[n].shard.tcp_endpoints().get(t).unwrap().stats()
}

#[test]
fn tcp_maxseg_is_respected_on_the_wire() {
    let mut sim = net();
    let co = SocketOptions {
        max_segment: Some(536),
        ..SocketOptions::default()
    };
    let (_, a, c) = pair(&mut sim, 80, &SocketOptions::default(), &co);
    // The server only knows 536 from the MSS option of the client's SYN.
    assert_eq!(sk(&mut sim, S).options(a).unwrap().max_segment, Some(536));
    assert_eq!(sk(&mut sim, C).options(c).unwrap().max_segment, Some(536));
    let before = tcb_stats(&mut sim, S, a).segs_out;
    let data = vec![1u8; 20_000];
    let mut sent = 0;
    let mut got = Vec::new();
    let ok = run(&mut sim, 10, |s| {
        if sent < data.len()
            && let Ok(n) = sk(s, S).send(a, &data[sent..])
        {
            sent += n;
        }
        let _ = drain(s, C, c, &mut got);
        got.len() == data.len()
    });
    assert!(ok);
    // 536 less 12 bytes of timestamp option per segment: at least 39 data segments.
    let segs = tcb_stats(&mut sim, S, a).segs_out - before;
    assert!(segs >= 20_000 / 524, "{segs} segments for 20000 bytes");
    // The clamp set on a listener reaches the SYN-ACK, so the client sends small segments.
    let lo = SocketOptions {
        max_segment: Some(600),
        ..SocketOptions::default()
    };
    let (_, a2, c2) = pair(&mut sim, 81, &lo, &SocketOptions::default());
    assert_eq!(sk(&mut sim, C).options(c2).unwrap().max_segment, Some(600));
    assert_eq!(sk(&mut sim, S).options(a2).unwrap().max_segment, Some(600));
    // Too small, or too late.
    let bad = SocketOptions {
        max_segment: Some(40),
        ..SocketOptions::default()
    };
    assert_eq!(
        sk(&mut sim, C)
            .connect(server(80), &bad)
            .unwrap_err()
            .errno(),
        "EINVAL"
    );
    assert_eq!(
        sk(&mut sim, C)
            .set_option(c2, SockOpt::MaxSegment(1000))
            .unwrap_err()
            .errno(),
        "EISCONN"
    );
}

#[test]
fn tcp_congestion_switch() {
    let mut sim = net();
    let lo = SocketOptions {
        congestion: Some(Algorithm::NewReno),
        ..SocketOptions::default()
    };
    let (l, a, c) = pair(&mut sim, 80, &lo, &SocketOptions::default());
    // Accepted connections inherit the listener's algorithm; the client has the default.
    assert_eq!(
        sk(&mut sim, S).options(a).unwrap().congestion,
        Some(Algorithm::NewReno)
    );
    assert_eq!(
        sk(&mut sim, C).options(c).unwrap().congestion,
        Some(Algorithm::Cubic)
    );
    // Switch on a live connection, then move data.
    sk(&mut sim, S)
        .set_option(a, SockOpt::Congestion(Algorithm::Cubic))
        .unwrap();
    assert_eq!(
        sk(&mut sim, S).options(a).unwrap().congestion,
        Some(Algorithm::Cubic)
    );
    let SocketHandle::Tcp(t) = a else { panic!() };
    let cubic = sim.nodes[S]
        .shard
        .tcp_endpoints()
        .get(t)
        .unwrap()
        .congestion();
    assert_eq!(cubic, Algorithm::Cubic);
    let data = vec![3u8; 50_000];
    let mut sent = 0;
    let mut got = Vec::new();
    let ok = run(&mut sim, 10, |s| {
        if sent < data.len()
            && let Ok(n) = sk(s, S).send(a, &data[sent..])
        {
            sent += n;
        }
        let _ = drain(s, C, c, &mut got);
        got.len() == data.len()
    });
    assert!(ok);
    // Switching the listener changes later connections only.
    sk(&mut sim, S)
        .set_option(l, SockOpt::Congestion(Algorithm::Cubic))
        .unwrap();
    assert_eq!(
        sk(&mut sim, S).options(l).unwrap().congestion,
        Some(Algorithm::Cubic)
    );
    let c2 = sk(&mut sim, C)
        .connect(
            server(80),
            &SocketOptions {
                congestion: Some(Algorithm::NewReno),
                ..SocketOptions::default()
            },
        )
        .unwrap();
    let mut a2 = None;
    let ok = run(&mut sim, 5, |s| {
        a2 = a2.or(sk(s, S).accept(l).ok().map(|x| x.0));
        a2.is_some()
    });
    assert!(ok);
    assert_eq!(
        sk(&mut sim, S).options(a2.unwrap()).unwrap().congestion,
        Some(Algorithm::Cubic)
    );
    assert_eq!(
        sk(&mut sim, C).options(c2).unwrap().congestion,
        Some(Algorithm::NewReno)
    );
}

#[test]
fn ss_listing_and_state_histogram() {
    let mut sim = net();
    let (l80, _a1, _c1) = default_pair(&mut sim, 80);
    let _l81 = sk(&mut sim, S)
        .listen(any(81), 3, &SocketOptions::default())
        .unwrap();
    // Two more connections to port 80, left in the accept queue.
    let c2 = sk(&mut sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap();
    let c3 = sk(&mut sim, C)
        .connect(server(80), &SocketOptions::default())
        .unwrap();
    let ok = run(&mut sim, 5, |s| {
        sk(s, C).is_connected(c2) && sk(s, C).is_connected(c3)
    });
    assert!(ok);
    // Unread bytes show in Recv-Q on the server.
    sk(&mut sim, C).send(c2, &[9u8; 100]).unwrap();
    idle(&mut sim, 1);
    let h = sk(&mut sim, S).state_histogram();
    assert_eq!(h.get(State::Listen), 2, "{h}");
    // The accepted one and the two waiting in the accept queue are all established.
    assert_eq!(h.get(State::Established), 3, "{h}");
    assert_eq!(h.total(), 5, "{h}");
    let rows: Vec<_> = sk(&mut sim, S).connections().collect();
    let listen80 = rows
        .iter()
        .find(|r| r.state == State::Listen && r.local.port() == 80)
        .unwrap();
    assert_eq!(
        (listen80.recv_q, listen80.send_q),
        (2, 16),
        "accept queue 2, backlog 16"
    );
    let c2_port = sk(&mut sim, C).local_addr(c2).unwrap().port();
    let row = rows.iter().find(|r| r.remote.port() == c2_port).unwrap();
    assert_eq!(row.state, State::Established);
    assert_eq!((row.recv_q, row.send_q), (100, 0));
    assert_eq!(row.local, server(80));
    assert_eq!(row.remote, SocketAddrV4::new(IP_C, c2_port));
    let line = row.to_string();
    assert!(line.starts_with("ESTAB"), "{line}");
    assert!(line.contains("198.18.0.2:80"), "{line}");
    // Unacknowledged bytes show in Send-Q on the client while the server's window is shut:
    // nothing is in flight right after a send, before the shard ran.
    sk(&mut sim, C).send(c3, &[1u8; 300]).unwrap();
    let c3_port = sk(&mut sim, C).local_addr(c3).unwrap().port();
    let row = sk(&mut sim, C)
        .connections()
        .find(|r| r.local.port() == c3_port)
        .unwrap();
    assert_eq!(row.send_q, 300);

    // The client closes c3 first; once the server closes its end, the client is in
    // TIME-WAIT with its 2*MSL timer.
    let closed_at = sim.now();
    sk(&mut sim, C).close(c3).unwrap();
    let mut a3 = None;
    let ok = run(&mut sim, 5, |s| {
        while let Ok((h, peer)) = sk(s, S).accept(l80) {
            if peer.port() == c3_port {
                a3 = Some(h);
            }
        }
        a3.is_some_and(|h| sk(s, S).state(h) == Some(State::CloseWait))
    });
    assert!(ok);
    // Read what c3 sent first: closing with unread data would reset (RFC 2525 2.17).
    let mut got = Vec::new();
    assert_eq!(drain(&mut sim, S, a3.unwrap(), &mut got), Ok(0));
    assert_eq!(got.len(), 300);
    sk(&mut sim, S).close(a3.unwrap()).unwrap();
    let ok = run(&mut sim, 5, |s| {
        sk(s, C).state_histogram().get(State::TimeWait) == 1
    });
    assert!(ok);
    let tw = sk(&mut sim, C)
        .connections()
        .find(|r| r.state == State::TimeWait)
        .unwrap();
    let (kind, when) = tw.timer.unwrap();
    assert_eq!(kind, TimerKind::Close);
    assert!(when >= closed_at + Duration::from_secs(60));
    assert!(when <= sim.now() + Duration::from_secs(60));
    assert!(tw.orphan);
    let h = sk(&mut sim, C).state_histogram();
    assert_eq!(
        (h.get(State::Established), h.get(State::TimeWait), h.total()),
        (2, 1, 3),
        "{h}"
    );
}

#[test]
fn udp_sockets_share_the_handle_model_and_keep_datagram_boundaries() {
    let mut sim = net();
    let rx = sk(&mut sim, S).bind_udp(any(5000)).unwrap();
    let tx = sk(&mut sim, C).bind_udp(any(0)).unwrap();
    assert_eq!(
        sk(&mut sim, S).bind_udp(any(5000)).unwrap_err().errno(),
        "EADDRINUSE"
    );
    assert_eq!(
        sk(&mut sim, C).send(tx, b"no peer").unwrap_err().errno(),
        "EDESTADDRREQ"
    );
    sk(&mut sim, C)
        .send_to(tx, Some(server(5000)), b"one")
        .unwrap();
    sk(&mut sim, C)
        .send_to(tx, Some(server(5000)), b"second one")
        .unwrap();
    let mut ev = Vec::new();
    let ok = run(&mut sim, 5, |s| {
        sk(s, S).poll_events(&mut ev);
        !ev.is_empty() && s.is_idle()
    });
    assert!(ok);
    assert_eq!(ev[0].socket, rx);
    assert_eq!(ev[0].readiness, Readiness::READABLE);
    let mut buf = [0u8; 64];
    assert_eq!(sk(&mut sim, S).recv(rx, &mut buf), Ok(3));
    let r = sk(&mut sim, S).recv_from(rx, &mut buf).unwrap();
    assert_eq!(&buf[..r.len], b"second one");
    assert_eq!(r.from.ip(), &IP_C);
    assert_eq!(
        sk(&mut sim, S).recv(rx, &mut buf),
        Err(RecvError::WouldBlock)
    );
    // TCP calls on a UDP handle fail plainly.
    assert_eq!(sk(&mut sim, S).accept(rx).unwrap_err().errno(), "EINVAL");
    sk(&mut sim, S).close(rx).unwrap();
    assert_eq!(sk(&mut sim, S).close(rx).unwrap_err().errno(), "EBADF");
}

#[test]
fn tcp_fastopen_and_defer_accept_are_listener_options_refused_on_connect() {
    let mut sim = net();
    let fo = SocketOptions {
        fast_open: Some(16),
        ..SocketOptions::default()
    };
    let l = sk(&mut sim, S).listen(any(80), 8, &fo).unwrap();
    assert_eq!(sk(&mut sim, S).options(l).unwrap().fast_open, Some(16));
    // A client asks for Fast Open with connect_with_data (tests/connection_rates.rs).
    assert_eq!(
        sk(&mut sim, C)
            .connect(server(80), &fo)
            .unwrap_err()
            .errno(),
        "ENOPROTOOPT"
    );
    // TCP_DEFER_ACCEPT is a listener's option (tests/connection_rates.rs), refused on a
    // connecting socket.
    sk(&mut sim, S)
        .set_option(l, SockOpt::DeferAccept(Duration::from_secs(1)))
        .unwrap();
    let da = SocketOptions {
        defer_accept: Some(Duration::from_secs(1)),
        ..SocketOptions::default()
    };
    assert_eq!(
        sk(&mut sim, C)
            .connect(server(80), &da)
            .unwrap_err()
            .errno(),
        "ENOPROTOOPT"
    );
}

#[test]
fn so_keepalive_arms_its_timer_and_probes_keep_an_idle_connection() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 80);
    let ka = shardnet::tcp::Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        probes: 3,
    };
    sk(&mut sim, C)
        .set_option(c, SockOpt::Keepalive(Some(ka)))
        .unwrap();
    assert_eq!(sk(&mut sim, C).options(c).unwrap().keepalive, Some(ka));
    let row = sk(&mut sim, C)
        .connections()
        .find(|r| r.state == State::Established)
        .unwrap();
    let (kind, at) = row.timer.unwrap();
    assert_eq!(kind, TimerKind::Keepalive);
    assert_eq!(at, sim.now() + Duration::from_secs(10));
    // RFC 1122 4.2.3.6: probes go out on an idle connection and the peer answers them.
    let before = tcb_stats(&mut sim, C, c).segs_out;
    idle(&mut sim, 35);
    assert!(tcb_stats(&mut sim, C, c).segs_out >= before + 3);
    assert!(sk(&mut sim, C).is_connected(c));
    assert!(sk(&mut sim, S).is_connected(a));
    // Off again: no timer.
    sk(&mut sim, C)
        .set_option(c, SockOpt::Keepalive(None))
        .unwrap();
    let row = sk(&mut sim, C)
        .connections()
        .find(|r| r.state == State::Established)
        .unwrap();
    assert!(row.timer.is_none_or(|(k, _)| k != TimerKind::Keepalive));
}

#[test]
fn writable_event_when_a_full_send_buffer_drains() {
    let mut sim = net();
    let lo = SocketOptions {
        recv_buffer: Some(8192),
        ..SocketOptions::default()
    };
    let co = SocketOptions {
        send_buffer: Some(8192),
        ..SocketOptions::default()
    };
    let (_, a, c) = pair(&mut sim, 80, &lo, &co);
    let mut ev = Vec::new();
    sk(&mut sim, C).poll_events(&mut ev);
    ev.clear();
    // Fill the client's send buffer and the server's window until EAGAIN.
    let chunk = [5u8; 4096];
    for _ in 0..10 {
        while sk(&mut sim, C).send(c, &chunk).is_ok() {}
        idle(&mut sim, 1);
    }
    assert_eq!(sk(&mut sim, C).send(c, &chunk), Err(SendError::WouldBlock));
    sk(&mut sim, C).poll_events(&mut ev);
    ev.clear();
    assert!(!sk(&mut sim, C).readiness(c).contains(Readiness::WRITABLE));
    // The server reads: its window opens, ACKs free the client's buffer: one WRITABLE edge.
    let mut got = Vec::new();
    let ok = run(&mut sim, 5, |s| {
        let _ = drain(s, S, a, &mut got);
        sk(s, C).poll_events(&mut ev);
        !ev.is_empty()
    });
    assert!(ok);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].socket, c);
    assert!(ev[0].readiness.contains(Readiness::WRITABLE), "{ev:?}");
    assert!(sk(&mut sim, C).send(c, &chunk).unwrap() > 0);
}

#[test]
fn so_sndbuf_and_so_rcvbuf_on_a_live_connection_bound_what_is_buffered() {
    let mut sim = net();
    let (_, a, c) = default_pair(&mut sim, 82);
    // SO_SNDBUF: the client can buffer at most 10,000 bytes (the server reads nothing yet, and
    // the client's send buffer also holds what is in flight until it is acknowledged).
    sk(&mut sim, C)
        .set_option(c, SockOpt::SendBuffer(10_000))
        .unwrap();
    assert_eq!(
        sk(&mut sim, C).options(c).unwrap().send_buffer,
        Some(10_000)
    );
    let big = vec![7u8; 50_000];
    assert_eq!(sk(&mut sim, C).send(c, &big), Ok(10_000));
    assert_eq!(sk(&mut sim, C).send(c, &big).unwrap_err().errno(), "EAGAIN");
    // SO_RCVBUF: a larger limit is taken as asked; a smaller one is clamped, as Linux clamps
    // it, to at least its minimum (2304) and to the window already advertised, which must stay
    // receivable (RFC 9293 3.8.6.2.2).
    sk(&mut sim, S)
        .set_option(a, SockOpt::RecvBuffer(1 << 20))
        .unwrap();
    assert_eq!(
        sk(&mut sim, S).options(a).unwrap().recv_buffer,
        Some(1 << 20)
    );
    sk(&mut sim, S)
        .set_option(a, SockOpt::RecvBuffer(100))
        .unwrap();
    let held = sk(&mut sim, S).options(a).unwrap().recv_buffer.unwrap();
    assert!((2304..1 << 20).contains(&held), "receive limit {held}");
    let mut got = Vec::new();
    // Reading opens the window; everything arrives and more can be written.
    let ok = run(&mut sim, 10, |s| {
        let _ = drain(s, S, a, &mut got);
        got.len() == 10_000
    });
    assert!(ok, "received {} of 10000", got.len());
    assert!(got.iter().all(|&b| b == 7));
    assert_eq!(sk(&mut sim, C).send(c, &big[..1000]), Ok(1000));
}

/// `CurrEstab` as the shard counts it (without a table scan) against the state histogram.
fn check_curr_estab(sim: &mut Sim, n: usize) -> u64 {
    let h = sk(sim, n).state_histogram();
    let counted = (h.get(State::Established) + h.get(State::CloseWait)) as u64;
    let curr = sim.nodes[n].shard.stats().tcp.curr_estab;
    assert_eq!(
        curr, counted,
        "node {n}: CurrEstab {curr}, histogram {counted}"
    );
    curr
}

#[test]
fn curr_estab_follows_connections_through_close_wait_time_wait_and_reset() {
    let mut sim = net();
    let mut pairs: Vec<(SocketHandle, SocketHandle)> = (0..40)
        .map(|i| {
            let (_, a, c) = default_pair(&mut sim, 100 + i);
            (a, c)
        })
        .collect();
    idle(&mut sim, 1);
    assert_eq!(check_curr_estab(&mut sim, C), 40);
    assert_eq!(check_curr_estab(&mut sim, S), 40);
    // The server closes 20: those client ends go to CLOSE-WAIT (still counted, as on Linux),
    // the server ends to FIN-WAIT-2 (not counted).
    for (a, _) in &pairs[..20] {
        sk(&mut sim, S).close(*a).unwrap();
    }
    idle(&mut sim, 1);
    assert_eq!(check_curr_estab(&mut sim, C), 40);
    assert_eq!(check_curr_estab(&mut sim, S), 20);
    // The client closes 10 of those (LAST-ACK, then gone) and resets 10 others (linger 0).
    for (_, c) in &pairs[..10] {
        sk(&mut sim, C).close(*c).unwrap();
    }
    for (_, c) in &pairs[20..30] {
        sk(&mut sim, C)
            .set_option(*c, SockOpt::Linger(Some(Duration::ZERO)))
            .unwrap();
        sk(&mut sim, C).close(*c).unwrap();
    }
    idle(&mut sim, 1);
    assert_eq!(check_curr_estab(&mut sim, C), 20);
    assert_eq!(check_curr_estab(&mut sim, S), 10);
    // New connections count again.
    for i in 0..5 {
        let (_, a, c) = default_pair(&mut sim, 200 + i);
        pairs.push((a, c));
    }
    idle(&mut sim, 1);
    assert_eq!(check_curr_estab(&mut sim, C), 25);
    assert_eq!(check_curr_estab(&mut sim, S), 15);
}
