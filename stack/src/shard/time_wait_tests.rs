//! Compact TIME-WAIT in the shard's TCP table: segment values in, segment values out, a fake
//! clock (no frames: the conversion between frames and segments is tested elsewhere).

use super::tcp::{TcpEndpoints, TimeWaitConfig};
use crate::tcp::segment::{Flags, Incoming, Options, Outgoing, Timestamps};
use crate::tcp::time_wait::TimeWait;
use crate::tcp::{SeqNum, State, TcpConfig, TimerKind};
use crate::time::{Duration, Instant};
use core::net::{Ipv4Addr, SocketAddrV4};

const US: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn seg(seq: u32, ack: Option<u32>, flags: Flags, tsval: Option<u32>) -> Incoming<'static> {
    Incoming {
        seq: SeqNum(seq),
        ack: SeqNum(ack.unwrap_or(0)),
        flags: if ack.is_some() {
            flags | Flags::ACK
        } else {
            flags
        },
        window: 65535,
        options: Options {
            mss: flags.syn().then_some(1460),
            timestamps: tsval.map(|tsval| Timestamps { tsval, tsecr: 0 }),
            ..Options::default()
        },
        payload: &[],
    }
}

fn output(ep: &mut TcpEndpoints, now: Instant) -> Vec<Outgoing> {
    let mut v = Vec::new();
    ep.poll_output(now, &mut |l, r, s, _| {
        assert_eq!((l, r), (US, PEER));
        v.push(s.clone());
        true
    });
    v
}

/// A server connection brought to TIME-WAIT by closing first: returns the table and our ISS.
/// The peer's ISS is 1000, its timestamps 100, 101, 102.
fn server_in_time_wait(config: TimeWaitConfig) -> (TcpEndpoints, u32) {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [9; 16], 64);
    ep.set_time_wait_config(config);
    let l = ep.listen(80, 8).unwrap();
    ep.on_segment(t(0), US, PEER, &seg(1000, None, Flags::SYN, Some(100)));
    let synack = output(&mut ep, t(0));
    assert_eq!(synack.len(), 1);
    let iss = synack[0].seq.get();
    ep.on_segment(
        t(1),
        US,
        PEER,
        &seg(1001, Some(iss + 1), Flags::empty(), Some(101)),
    );
    let h = ep.accept(l).unwrap();
    ep.close(t(2), h);
    let fin = output(&mut ep, t(2));
    assert!(fin[0].flags.fin(), "{fin:?}");
    ep.on_segment(
        t(3),
        US,
        PEER,
        &seg(1001, Some(iss + 2), Flags::FIN, Some(102)),
    );
    let ack = output(&mut ep, t(3));
    assert_eq!(ack.len(), 1);
    assert_eq!((ack[0].seq.get(), ack[0].ack.get()), (iss + 2, 1002));
    (ep, iss)
}

fn default_tw() -> TimeWaitConfig {
    TimeWaitConfig {
        max_buckets: 64,
        reuse: false,
    }
}

#[test]
fn time_wait_entry_is_at_most_64_bytes() {
    // The entry the shard keeps per TIME-WAIT connection: the protocol state plus the timer.
    let size =
        core::mem::size_of::<TimeWait>() + core::mem::size_of::<super::timer_wheel::TimerId>();
    println!(
        "TIME-WAIT entry: {} bytes (TimeWait {} + TimerId)",
        size,
        core::mem::size_of::<TimeWait>()
    );
    assert!(size <= 64, "{size}");
    assert!(core::mem::size_of::<Option<(TimeWait, super::timer_wheel::TimerId)>>() <= 64);
    // A request (SYN-RECEIVED) entry, for comparison with a full TCB.
    println!(
        "request entry: SynRequest {} bytes; full TCB {} bytes before its buffers",
        core::mem::size_of::<crate::tcp::listener::SynRequest>(),
        core::mem::size_of::<crate::tcp::Tcb>()
    );
}

#[test]
fn time_wait_frees_the_tcb_and_is_listed_with_its_timer() {
    let (ep, _) = server_in_time_wait(default_tw());
    assert_eq!(ep.time_wait_count(), 1);
    assert_eq!(ep.tcb_count(), 0);
    assert_eq!(ep.connection_count(), 1);
    assert_eq!(ep.count_in(State::TimeWait), 1);
    assert_eq!(ep.active_count(), 0);
    let row = ep
        .connections()
        .find(|c| c.state == State::TimeWait)
        .unwrap();
    assert_eq!((row.local, row.remote), (US, PEER));
    let (kind, at) = row.timer.unwrap();
    assert_eq!(kind, TimerKind::Close);
    assert!(at >= t(3) + Duration::from_secs(60) && at <= t(4) + Duration::from_secs(60));
    assert_eq!(ep.state_histogram().get(State::TimeWait), 1);
}

#[test]
fn time_wait_expires_after_2msl_and_counts_tw() {
    let (mut ep, _) = server_in_time_wait(default_tw());
    ep.on_timeout(t(59_000));
    assert_eq!(ep.time_wait_count(), 1);
    let deadline = ep.poll_timeout().unwrap();
    assert!(deadline <= t(60_004), "{deadline:?}");
    ep.on_timeout(t(60_004));
    assert_eq!(ep.time_wait_count(), 0);
    assert_eq!(ep.connection_count(), 0);
    assert_eq!(ep.stats().tw, 1);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn retransmitted_fin_is_reacked_and_restarts_2msl() {
    let (mut ep, iss) = server_in_time_wait(default_tw());
    ep.on_segment(
        t(30_000),
        US,
        PEER,
        &seg(1001, Some(iss + 2), Flags::FIN, Some(103)),
    );
    let out = output(&mut ep, t(30_000));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq.get(), out[0].ack.get()), (iss + 2, 1002));
    assert_eq!(out[0].flags, Flags::ACK);
    assert_eq!(out[0].options.timestamps.unwrap().tsecr, 102);
    // The old deadline (60 s after entering) passes: still there, until 2*MSL after the FIN.
    ep.on_timeout(t(61_000));
    assert_eq!(ep.time_wait_count(), 1);
    ep.on_timeout(t(90_001));
    assert_eq!(ep.time_wait_count(), 0);
}

#[test]
fn rst_does_not_end_time_wait_rfc1337() {
    let (mut ep, iss) = server_in_time_wait(default_tw());
    ep.on_segment(t(100), US, PEER, &seg(1002, None, Flags::RST, None));
    ep.on_segment(
        t(100),
        US,
        PEER,
        &seg(1002, Some(iss + 2), Flags::RST, Some(104)),
    );
    assert!(output(&mut ep, t(100)).is_empty());
    assert_eq!(ep.time_wait_count(), 1);
    assert_eq!(ep.stats().out_rsts, 0);
}

#[test]
fn newer_syn_opens_a_new_incarnation_rfc6191() {
    let (mut ep, iss) = server_in_time_wait(default_tw());
    // An old SYN (timestamp behind TS.Recent) gets an ACK, and the entry stays.
    ep.on_segment(t(1000), US, PEER, &seg(5000, None, Flags::SYN, Some(50)));
    let out = output(&mut ep, t(1000));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::ACK);
    assert_eq!(ep.time_wait_count(), 1);
    // A newer one starts a new connection, with an ISS past the old one's sequence space.
    ep.on_segment(t(2000), US, PEER, &seg(7000, None, Flags::SYN, Some(200)));
    let out = output(&mut ep, t(2000));
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.syn() && out[0].flags.ack());
    assert_eq!(out[0].seq.get(), iss.wrapping_add(2 + 65537));
    assert_eq!(out[0].ack.get(), 7001);
    assert_eq!(ep.time_wait_count(), 0);
    assert_eq!(ep.count_in(State::SynReceived), 1);
    assert_eq!(ep.stats().tw_killed, 1);
    // PassiveOpens counts connections created by a final ACK (Linux tcp_create_openreq_child).
    assert_eq!(ep.stats().passive_opens, 1);
    assert_eq!(ep.request_count(), 1);
}

#[test]
fn syn_without_listener_is_acked_not_reopened() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [9; 16], 64);
    // Client side: we connect, and close first.
    let h = ep.connect(t(0), *US.ip(), PEER).unwrap();
    let local = ep.get(h).unwrap().local();
    let mut out = Vec::new();
    ep.poll_output(t(0), &mut |_, _, s, _| {
        out.push(s.clone());
        true
    });
    let iss = out[0].seq.get();
    let synack = Incoming {
        ack: SeqNum(iss + 1),
        ..seg(500, Some(iss + 1), Flags::SYN, Some(10))
    };
    ep.on_segment(t(1), local, PEER, &synack);
    ep.close(t(2), h);
    ep.poll_output(t(2), &mut |_, _, _, _| true);
    ep.on_segment(
        t(3),
        local,
        PEER,
        &seg(501, Some(iss + 2), Flags::FIN, Some(11)),
    );
    ep.poll_output(t(3), &mut |_, _, _, _| true);
    assert_eq!(ep.time_wait_count(), 1);
    // No listener on our port: a newer SYN is answered with an ACK.
    ep.on_segment(
        t(4000),
        local,
        PEER,
        &seg(9000, None, Flags::SYN, Some(500)),
    );
    let mut out = Vec::new();
    ep.poll_output(t(4000), &mut |_, _, s, _| {
        out.push(s.clone());
        true
    });
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].ack.get()), (Flags::ACK, 502));
    assert_eq!(ep.time_wait_count(), 1);
}

#[test]
fn full_time_wait_table_closes_without_time_wait() {
    let (ep, _) = server_in_time_wait(TimeWaitConfig {
        max_buckets: 0,
        reuse: false,
    });
    assert_eq!(ep.time_wait_count(), 0);
    assert_eq!(ep.connection_count(), 0);
    assert_eq!(ep.stats().tw_overflow, 1);
}

/// A client connection from `US.ip()` to `PEER` closed by us first, in TIME-WAIT; returns its
/// local address.
fn client_time_wait(ep: &mut TcpEndpoints, now: u64) -> SocketAddrV4 {
    let h = ep.connect(t(now), *US.ip(), PEER).unwrap();
    let local = ep.get(h).unwrap().local();
    let mut out = Vec::new();
    ep.poll_output(t(now), &mut |_, _, s, _| {
        out.push(s.clone());
        true
    });
    let iss = out[0].seq.get();
    ep.on_segment(
        t(now + 1),
        local,
        PEER,
        &seg(500, Some(iss + 1), Flags::SYN, Some(10)),
    );
    ep.close(t(now + 2), h);
    ep.poll_output(t(now + 2), &mut |_, _, _, _| true);
    ep.on_segment(
        t(now + 3),
        local,
        PEER,
        &seg(501, Some(iss + 2), Flags::FIN, Some(11)),
    );
    ep.poll_output(t(now + 3), &mut |_, _, _, _| true);
    local
}

#[test]
fn tw_reuse_takes_a_time_wait_tuple_once_timestamps_are_a_second_old() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [9; 16], 64);
    assert!(ep.set_ephemeral_range(50000, 50000));
    ep.set_time_wait_config(TimeWaitConfig {
        max_buckets: 64,
        reuse: true,
    });
    let local = client_time_wait(&mut ep, 0);
    assert_eq!(local.port(), 50000);
    assert_eq!(ep.time_wait_count(), 1);
    // Within the same second of the last timestamp: the one port is not free.
    let e = ep.connect(t(500), *US.ip(), PEER).unwrap_err();
    assert_eq!(e.errno(), "EADDRNOTAVAIL");
    assert_eq!(ep.stats().port_exhausted, 1);
    // A second later it is reused, the new ISS past the old sequence space.
    let h = ep.connect(t(1500), *US.ip(), PEER).unwrap();
    assert_eq!(ep.get(h).unwrap().local(), local);
    assert_eq!(ep.time_wait_count(), 0);
    assert_eq!(ep.stats().tw_recycled, 1);
    assert_eq!(ep.connection_count(), 1);
}

#[test]
fn without_tw_reuse_the_time_wait_tuple_stays_taken() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [9; 16], 64);
    assert!(ep.set_ephemeral_range(50000, 50000));
    client_time_wait(&mut ep, 0);
    let e = ep.connect(t(5000), *US.ip(), PEER).unwrap_err();
    assert_eq!(e.errno(), "EADDRNOTAVAIL");
    assert_eq!(ep.stats().tw_recycled, 0);
    // Once TIME-WAIT is over, the port is free again.
    ep.on_timeout(t(61_000));
    assert!(ep.connect(t(61_000), *US.ip(), PEER).is_ok());
}

#[test]
fn ephemeral_range_exhaustion_is_eaddrnotavail_and_counted() {
    let mut ep = TcpEndpoints::new(TcpConfig::default(), [9; 16], 64);
    assert!(!ep.set_ephemeral_range(0, 10));
    assert!(!ep.set_ephemeral_range(2000, 1999));
    assert!(ep.set_ephemeral_range(40000, 40009));
    assert_eq!(ep.ephemeral_range(), (40000, 40009));
    let mut ports = Vec::new();
    for _ in 0..10 {
        let h = ep.connect(t(0), *US.ip(), PEER).unwrap();
        ports.push(ep.get(h).unwrap().local().port());
    }
    ports.sort_unstable();
    assert_eq!(ports, (40000..=40009).collect::<Vec<_>>());
    for _ in 0..3 {
        let e = ep.connect(t(0), *US.ip(), PEER).unwrap_err();
        assert_eq!(e.errno(), "EADDRNOTAVAIL");
    }
    assert_eq!(ep.stats().port_exhausted, 3);
    // Another destination has its own 4-tuples: the same ports are free towards it.
    let other = SocketAddrV4::new(*PEER.ip(), 40001);
    assert!(ep.connect(t(0), *US.ip(), other).is_ok());
}
