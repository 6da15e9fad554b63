//! SYN queue (compact connection requests) and accept queue of listeners, with Linux's overflow
//! behaviour: segment values in and out of the shard's TCP table, a fake clock.

use super::tcp::{SynCookieMode, TcpEndpoints};
use crate::tcp::segment::{Flags, Incoming, Options, Outgoing};
use crate::tcp::{SeqNum, State, TcpConfig, TimerKind};
use crate::time::Instant;
use core::net::{Ipv4Addr, SocketAddrV4};

const US: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);

fn peer(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), port)
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn syn(seq: u32) -> Incoming<'static> {
    Incoming {
        seq: SeqNum(seq),
        ack: SeqNum(0),
        flags: Flags::SYN,
        window: 65535,
        options: Options {
            mss: Some(1460),
            ..Options::default()
        },
        payload: &[],
    }
}

fn ack(seq: u32, ack: u32, payload: &'static [u8]) -> Incoming<'static> {
    Incoming {
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: Flags::ACK,
        window: 65535,
        options: Options::default(),
        payload,
    }
}

fn output(ep: &mut TcpEndpoints, now: Instant) -> Vec<(SocketAddrV4, Outgoing)> {
    let mut v = Vec::new();
    ep.poll_output(now, &mut |_, r, s, _| {
        v.push((r, s.clone()));
        true
    });
    v
}

/// Sends a SYN from `port` and returns our ISS from the SYN-ACK.
fn open(ep: &mut TcpEndpoints, now: Instant, port: u16) -> u32 {
    ep.on_segment(now, US, peer(port), &syn(1000));
    let out = output(ep, now);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1.flags, Flags::SYN | Flags::ACK);
    out[0].1.seq.get()
}

#[test]
fn syn_received_is_a_compact_request_with_syn_ack_retransmissions() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [5; 16], 64);
    ep.listen(80, 16).unwrap();
    let iss = open(&mut ep, t(0), 4000);
    assert_eq!((ep.request_count(), ep.tcb_count()), (1, 0));
    assert_eq!(ep.count_in(State::SynReceived), 1);
    let h = ep.state_histogram();
    assert_eq!(
        (h.get(State::Listen), h.get(State::SynReceived), h.total()),
        (1, 1, 2)
    );
    let row = ep
        .connections()
        .find(|c| c.state == State::SynReceived)
        .unwrap();
    assert_eq!(row.timer, Some((TimerKind::Retransmit, t(1000))));
    // Linux: TCP_TIMEOUT_INIT (1 s) doubling, tcp_synack_retries = 5, then the request goes
    // (63 s after the SYN).
    let mut resent = Vec::new();
    let mut now = t(0);
    while let Some(at) = ep.poll_timeout() {
        now = at;
        ep.on_timeout(now);
        for (_, s) in output(&mut ep, now) {
            assert_eq!((s.seq.get(), s.ack.get()), (iss, 1001));
            resent.push(now.as_millis());
        }
    }
    assert_eq!(resent, [1000, 3000, 7000, 15000, 31000]);
    assert_eq!(now, t(63_000));
    assert_eq!(ep.request_count(), 0);
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn final_ack_with_data_creates_the_connection() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [5; 16], 64);
    let l = ep.listen(80, 16).unwrap();
    let iss = open(&mut ep, t(0), 4000);
    ep.on_segment(t(5), US, peer(4000), &ack(1001, iss + 1, b"hello"));
    assert_eq!((ep.request_count(), ep.tcb_count()), (0, 1));
    let h = ep.accept(l).unwrap();
    let mut buf = [0u8; 8];
    let n = ep.get_mut(h).unwrap().recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(ep.stats().passive_opens, 1);
    // The data is acknowledged.
    let out = output(&mut ep, t(5));
    assert!(out.iter().any(|(_, s)| s.ack.get() == 1006), "{out:?}");
}

#[test]
fn retransmitted_syn_gets_the_syn_ack_again_and_rst_drops_the_request() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [5; 16], 64);
    ep.listen(80, 16).unwrap();
    let iss = open(&mut ep, t(0), 4000);
    ep.on_segment(t(200), US, peer(4000), &syn(1000));
    let out = output(&mut ep, t(200));
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].1.flags, out[0].1.seq.get()),
        (Flags::SYN | Flags::ACK, iss)
    );
    let rst = Incoming {
        flags: Flags::RST,
        ..ack(1001, 0, b"")
    };
    ep.on_segment(t(300), US, peer(4000), &rst);
    assert_eq!(ep.request_count(), 0);
    assert_eq!(ep.connection_count(), 0);
    assert_eq!(ep.stats().attempt_fails, 1);
}

#[test]
fn unanswered_connect_counts_attempt_fails_and_retrans_segs() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [5; 16], 64);
    let h = ep.connect(t(0), *US.ip(), peer(9)).unwrap();
    let mut now = t(0);
    let mut syns = 0;
    output(&mut ep, now);
    while let Some(at) = ep.poll_timeout() {
        now = at;
        ep.on_timeout(now);
        ep.poll_output(now, &mut |_, _, s, _| {
            syns += u32::from(s.flags.syn());
            true
        });
    }
    // Linux tcp_syn_retries = 6: 1 + 2 + ... + 64 s, then ETIMEDOUT at 127 s.
    assert_eq!(syns, 6);
    assert_eq!(now, t(127_000));
    assert!(ep.get(h).unwrap().is_closed());
    assert_eq!(ep.stats().attempt_fails, 1);
    assert_eq!(ep.retrans_segs(), 6);
}

#[test]
fn syn_queue_limit_is_separate_from_the_backlog() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [5; 16], 64);
    let l = ep.listen(80, 16).unwrap();
    assert!(ep.set_syn_queue_limit(l, 2));
    assert!(!ep.set_syn_queue_limit(l, 0));
    open(&mut ep, t(0), 4000);
    open(&mut ep, t(0), 4001);
    // Linux's default (tcp_syncookies = 1): beyond the SYN queue, a cookie and no request.
    assert_eq!(ep.syncookies(), SynCookieMode::OnOverflow);
    open(&mut ep, t(0), 4002);
    assert_eq!(ep.syn_queue_len(l), 2);
    assert_eq!(ep.request_count(), 2);
    assert_eq!(ep.stats().syncookies_sent, 1);
    assert_eq!(ep.stats().req_q_full_do_cookies, 1);
    // Without cookies (tcp_syncookies = 0) the SYN is dropped and counted.
    ep.set_syncookies(SynCookieMode::Off);
    ep.on_segment(t(0), US, peer(4003), &syn(1000));
    assert!(output(&mut ep, t(0)).is_empty(), "dropped, not answered");
    assert_eq!(ep.syn_queue_len(l), 2);
    assert_eq!(ep.stats().req_q_full_drops, 1);
    assert_eq!(ep.stats().listen_drops, 1);
    assert_eq!(ep.stats().listen_overflows, 0);
}

#[test]
fn full_accept_queue_drops_the_final_ack_and_the_syn_ack_is_retransmitted() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [5; 16], 64);
    // Backlog 1: Linux sk_acceptq_is_full is "more than backlog", so two may wait.
    let l = ep.listen(80, 1).unwrap();
    assert!(ep.set_syn_queue_limit(l, 8));
    let isn: Vec<u32> = (0..3).map(|i| open(&mut ep, t(0), 4000 + i)).collect();
    ep.on_segment(t(1), US, peer(4000), &ack(1001, isn[0] + 1, b""));
    ep.on_segment(t(1), US, peer(4001), &ack(1001, isn[1] + 1, b""));
    assert_eq!(ep.accept_queue_len(l), 2);
    // The third final ACK overflows: dropped, counted, the request stays.
    ep.on_segment(t(1), US, peer(4002), &ack(1001, isn[2] + 1, b""));
    assert_eq!(ep.accept_queue_len(l), 2);
    assert_eq!(ep.request_count(), 1);
    assert_eq!(ep.stats().listen_overflows, 1);
    assert_eq!(ep.stats().listen_drops, 1);
    assert!(output(&mut ep, t(1)).iter().all(|(_, s)| !s.flags.rst()));
    // A new SYN now is dropped too (accept queue full), and counted.
    ep.on_segment(t(2), US, peer(5000), &syn(1));
    assert!(output(&mut ep, t(2)).is_empty());
    assert_eq!(ep.stats().listen_overflows, 2);
    // The application accepts one; the SYN-ACK retransmission (1 s) makes the peer ACK again,
    // which now completes the connection.
    ep.accept(l).unwrap();
    ep.on_timeout(t(1000));
    let out = output(&mut ep, t(1000));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1.seq.get()), (peer(4002), isn[2]));
    ep.on_segment(t(1001), US, peer(4002), &ack(1001, isn[2] + 1, b""));
    assert_eq!(ep.request_count(), 0);
    assert_eq!(ep.accept_queue_len(l), 2);
}

#[test]
fn closing_the_listener_drops_its_requests() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [5; 16], 64);
    let l = ep.listen(80, 16).unwrap();
    open(&mut ep, t(0), 4000);
    open(&mut ep, t(0), 4001);
    ep.close_listener(t(1), l);
    assert_eq!(ep.request_count(), 0);
    assert_eq!(ep.connection_count(), 0);
    assert_eq!(ep.poll_timeout(), None);
}
