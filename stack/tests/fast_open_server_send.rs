//! A TCP Fast Open server answers within the first round trip (RFC 7413 4.2.2, Linux
//! `tcp_sendmsg` on a `TCP_SYN_RECV` Fast Open child): over the memory wire with a 10 ms
//! one-way delay, the server application accepts the connection when the SYN with data
//! arrives, writes its response at once, and the client reads it one round trip after its
//! SYN, with the SYN-ACK, instead of two.
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use shardnet::socket::{SocketHandle, SocketOptions};
use shardnet::tcp::State;
use shardnet::time::Duration;
use shardnet_memory::sim::Simulation;
use shardnet_memory::{Impairments, Wire, WireConfig};

#[path = "support/two_shards.rs"]
mod two_shards;
use two_shards::{C, IP_C, IP_S, MAC_C, MAC_S, S, Sim, any, run, server, sk};

const ONE_WAY: Duration = Duration::from_millis(10);

/// The client and the server with `ONE_WAY` of delay each way.
fn net() -> Sim {
    let wire = Wire::new(WireConfig {
        seed: 31,
        pool_size: 8192,
        impairments: Impairments {
            delay: ONE_WAY,
            ..Impairments::NONE
        },
        ..WireConfig::default()
    });
    let pc = wire.add_port(MAC_C, 1);
    let ps = wire.add_port(MAC_S, 1);
    let (port_c, port_s) = (wire.port(pc, 0).unwrap(), wire.port(ps, 0).unwrap());
    let mut sim = Simulation::new(wire);
    sim.add(two_shards::shard(MAC_C, IP_C), port_c);
    sim.add(two_shards::shard(MAC_S, IP_S), port_s);
    sim
}

/// One request/response over a new Fast Open connection. The server accepts as soon as it
/// can and writes `response` at once; returns (client socket, the virtual time from the
/// client's `connect` to the whole response read, the server's state when it wrote).
fn exchange(
    sim: &mut Sim,
    l: SocketHandle,
    request: &'static [u8],
    response: &'static [u8],
) -> (SocketHandle, Duration, State) {
    let start = sim.now();
    let (c, n) = sk(sim, C)
        .connect_with_data(server(80), request, &SocketOptions::default())
        .unwrap();
    assert_eq!(n, request.len());
    let mut accepted = None;
    let mut state_at_write = None;
    let mut got = Vec::new();
    let mut took = None;
    let ok = run(sim, 5, |s| {
        if accepted.is_none()
            && let Ok((a, _)) = sk(s, S).accept(l)
        {
            accepted = Some(a);
        }
        if let Some(a) = accepted
            && state_at_write.is_none()
        {
            let mut buf = [0u8; 64];
            // The request is readable in SYN-RECEIVED too; answer only once it is there.
            if let Ok(k) = sk(s, S).recv(a, &mut buf) {
                assert_eq!(&buf[..k], request);
                state_at_write = sk(s, S).state(a);
                assert_eq!(sk(s, S).send(a, response), Ok(response.len()));
            }
        }
        let mut buf = [0u8; 64];
        if let Ok(k) = sk(s, C).recv(c, &mut buf) {
            got.extend_from_slice(&buf[..k]);
            if got == response {
                took = Some(s.now().saturating_duration_since(start));
                return true;
            }
        }
        false
    });
    assert!(ok, "got {got:?}");
    (c, took.unwrap(), state_at_write.unwrap())
}

#[test]
fn a_fast_open_server_answers_within_the_first_round_trip() {
    let mut sim = net();
    let opts = SocketOptions {
        fast_open: Some(16),
        ..SocketOptions::default()
    };
    let l = sk(&mut sim, S).listen(any(80), 8, &opts).unwrap();
    // First connection: no cookie yet; the request follows the handshake and the response
    // comes at least two round trips after the SYN (ARP may add one).
    let (_, took, state) = exchange(&mut sim, l, b"first", b"one");
    assert_eq!(state, State::Established);
    assert!(took >= ONE_WAY * 4, "{took:?}");
    // Second connection: the request rides in the SYN, the server answers in SYN-RECEIVED,
    // and the response arrives with the SYN-ACK, one round trip after the SYN.
    let (c, took, state) = exchange(&mut sim, l, b"second", b"two");
    assert_eq!(state, State::SynReceived, "answered before the final ACK");
    assert_eq!(took, ONE_WAY * 2);
    assert_eq!(sim.nodes[S].shard.stats().tcp_ext.fast_open_passive, 1);
    // The connection goes on normally, and the response was sent once.
    two_shards::idle(&mut sim, 1);
    assert_eq!(sk(&mut sim, C).state(c), Some(State::Established));
    assert_eq!(sim.nodes[S].shard.stats().tcp.retrans_segs, 0);
}
