//! Packet-level tests of the TCB: segment templates in, segments out, a fake clock.
//! Each test is named after the behaviour it pins down.

use super::config::{Keepalive, TcpConfig};
use super::segment::{Flags, Incoming, Options, Outgoing, Timestamps};
use super::seq::SeqNum;
use super::state::State;
use super::tcb::{RecvError, SendError, Tcb, TcpError};
use crate::time::{Duration, Instant};
use core::net::{Ipv4Addr, SocketAddrV4};

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
const ISS: u32 = 1000;
const IRS: u32 = 5000;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Plain config: no timestamps/SACK/scaling unless a test turns them on, so that sequence
/// arithmetic in the tests stays obvious.
fn plain() -> TcpConfig {
    TcpConfig {
        timestamps: false,
        sack: false,
        window_scaling: false,
        nodelay: true,
        ..TcpConfig::default()
    }
}

/// A segment template from the peer.
fn seg(flags: Flags, seq: u32, ack: u32) -> Incoming<'static> {
    Incoming {
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65535,
        options: Options::default(),
        payload: &[],
    }
}

fn data(seq: u32, ack: u32, payload: &'static [u8]) -> Incoming<'static> {
    Incoming {
        payload,
        ..seg(Flags::ACK | Flags::PSH, seq, ack)
    }
}

/// Everything the TCB sends at `now`, with payload bytes copied out.
fn out(tcb: &mut Tcb, now: Instant) -> Vec<(Outgoing, Vec<u8>)> {
    let mut v = Vec::new();
    tcb.poll_output(
        now,
        &mut |s: &Outgoing, buf: &super::send_buffer::SendBuffer| {
            let mut bytes = vec![0u8; s.payload_len];
            buf.copy_out(s.payload_offset, &mut bytes);
            v.push((s.clone(), bytes));
            true
        },
    );
    v
}

fn only(tcb: &mut Tcb, now: Instant) -> Outgoing {
    let mut v = out(tcb, now);
    assert_eq!(
        v.len(),
        1,
        "expected one segment, got {:?}",
        v.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    v.remove(0).0
}

fn runs_timers(tcb: &mut Tcb, until: Instant) {
    while let Some(at) = tcb.poll_timeout() {
        if at > until {
            break;
        }
        tcb.on_timeout(at.max(Instant::ZERO));
        if at == Instant::ZERO {
            break;
        }
    }
}

/// An ESTABLISHED connection made by an active open at t = 0, the SYN-ACK arriving at 10 ms.
fn established(config: TcpConfig) -> Tcb {
    let mut tcb = Tcb::connect(config, LOCAL, REMOTE, ISS, t(0));
    let syn = only(&mut tcb, t(0));
    assert!(syn.flags.syn() && !syn.flags.ack());
    let mut synack = seg(Flags::SYN | Flags::ACK, IRS, ISS + 1);
    synack.options.mss = Some(1460);
    tcb.on_segment(t(10), &synack);
    assert_eq!(tcb.state(), State::Established);
    let ack = only(&mut tcb, t(10));
    assert_eq!(
        (ack.flags, ack.seq, ack.ack),
        (Flags::ACK, SeqNum(ISS + 1), SeqNum(IRS + 1))
    );
    tcb
}

#[test]
fn active_open_sends_syn_then_acks_the_syn_ack() {
    let tcb = established(plain());
    assert_eq!(tcb.srtt(), Some(Duration::from_millis(10)));
}

#[test]
fn syn_carries_mss_and_linux_options() {
    let mut tcb = Tcb::connect(TcpConfig::default(), LOCAL, REMOTE, ISS, t(0));
    let syn = only(&mut tcb, t(0));
    assert_eq!(syn.options.mss, Some(1460));
    assert!(syn.options.sack_permitted);
    assert!(syn.options.timestamps.is_some_and(|ts| ts.tsecr == 0));
    assert_eq!(syn.options.window_scale, Some(3)); // 256 KiB buffer needs a shift of 3
}

#[test]
fn an_idle_connection_holds_no_buffer_memory() {
    let mut tcb = established(plain());
    assert_eq!(tcb.buffer_memory(), 0);
    // Data out: storage while unacknowledged, none once acknowledged.
    assert_eq!(tcb.send(b"hello"), Ok(5));
    assert!(tcb.buffer_memory() >= 5);
    let sent = out(&mut tcb, t(20));
    assert_eq!(sent[0].1, b"hello");
    tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 6));
    assert_eq!(tcb.buffer_memory(), 0);
    // Data in: storage until the application has read it.
    tcb.on_segment(t(40), &data(IRS + 1, ISS + 6, b"world"));
    assert!(tcb.buffer_memory() >= 5);
    let mut buf = [0u8; 16];
    assert_eq!(tcb.recv(&mut buf), Ok(5));
    assert_eq!(tcb.buffer_memory(), 0);
}

#[test]
fn set_recv_capacity_never_takes_back_an_advertised_window() {
    static BIG: [u8; 60_000] = [7; 60_000];
    let mut tcb = established(TcpConfig {
        quickack: true,
        ..plain()
    });
    // The ACK of the SYN-ACK advertised 65535 bytes (no scaling).
    tcb.set_recv_capacity(1000);
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 1, &BIG));
    assert_eq!(tcb.recv_available(), 60_000);
    // Every ACK keeps the right edge where it was promised (RFC 9293 3.8.6.2.2).
    let ack = only(&mut tcb, t(20));
    assert_eq!(ack.ack, SeqNum(IRS + 1 + 60_000));
    assert_eq!(usize::from(ack.window), 65_535 - 60_000);
    // Once read, the buffer is at the smaller capacity (Linux's minimum, above 1000).
    let mut buf = vec![0u8; 60_000];
    assert_eq!(tcb.recv(&mut buf), Ok(60_000));
    tcb.set_recv_capacity(1000);
    tcb.on_segment(t(30), &data(IRS + 1 + 60_000, ISS + 1, &BIG[..5535]));
    // The window is now closed (everything advertised arrived): nothing holds the capacity up.
    assert_eq!(only(&mut tcb, t(30)).window, 0);
    assert_eq!(tcb.recv(&mut buf), Ok(5535));
    tcb.set_recv_capacity(1000);
    let ack = out(&mut tcb, t(250)).pop().map(|s| s.0);
    assert!(ack.is_none_or(|a| usize::from(a.window) <= 2304));
    // Growing again widens the window.
    tcb.set_recv_capacity(40_000);
    tcb.on_segment(t(300), &data(IRS + 1 + 65_535, ISS + 1, &BIG[..100]));
    let ack = only(&mut tcb, t(300));
    assert!(usize::from(ack.window) > 30_000, "{ack:?}");
}

#[test]
fn set_recv_capacity_after_the_syn_keeps_the_window_the_syn_offered() {
    static BIG: [u8; 60_000] = [7; 60_000];
    let mut tcb = Tcb::connect(plain(), LOCAL, REMOTE, ISS, t(0));
    assert_eq!(only(&mut tcb, t(0)).window, 0xffff);
    tcb.set_recv_capacity(1000);
    let mut synack = seg(Flags::SYN | Flags::ACK, IRS, ISS + 1);
    synack.options.mss = Some(1460);
    tcb.on_segment(t(10), &synack);
    assert_eq!(only(&mut tcb, t(10)).window, 0xffff);
    tcb.on_segment(t(10), &data(IRS + 1, ISS + 1, &BIG));
    assert_eq!(tcb.recv_available(), 60_000);
}

#[test]
fn set_recv_capacity_before_the_syn_picks_the_window_scale() {
    let mut tcb = Tcb::connect(TcpConfig::default(), LOCAL, REMOTE, ISS, t(0));
    tcb.set_recv_capacity(4 << 20);
    let syn = only(&mut tcb, t(0));
    assert_eq!(syn.options.window_scale, Some(7)); // 65535 << 6 < 4 MiB
    // After the SYN the scale is fixed (RFC 7323 2.2).
    tcb.set_recv_capacity(64 << 20);
    let mut synack = seg(Flags::SYN | Flags::ACK, IRS, ISS + 1);
    synack.options.window_scale = Some(2);
    tcb.on_segment(t(10), &synack);
    let ack = only(&mut tcb, t(10));
    assert_eq!(ack.window, 0xffff); // 64 MiB does not fit 65535 << 7: clamped
}

#[test]
fn set_send_capacity_never_drops_buffered_bytes() {
    static BIG: [u8; 20_000] = [9; 20_000];
    let mut tcb = established(plain());
    assert_eq!(tcb.send(&BIG), Ok(20_000));
    tcb.set_send_capacity(100);
    assert_eq!(tcb.send_capacity(), 0);
    assert_eq!(tcb.send(b"x"), Err(SendError::WouldBlock));
    let mut sent = 0;
    for (s, _) in out(&mut tcb, t(20)) {
        sent += s.payload_len;
    }
    assert!(sent > 0);
    tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 1 + sent as u32));
    // 5400 bytes still held, more than the 4608-byte minimum the limit was raised to.
    assert_eq!(sent, 14_600);
    assert_eq!(tcb.send_capacity(), 0);
    tcb.set_send_capacity(1 << 20);
    assert_eq!(tcb.send_capacity(), (1 << 20) - (20_000 - sent));
}

#[test]
fn options_are_used_only_if_both_sides_offer_them() {
    let mut tcb = Tcb::connect(TcpConfig::default(), LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    // The peer offers nothing but MSS 1000.
    let mut synack = seg(Flags::SYN | Flags::ACK, IRS, ISS + 1);
    synack.options.mss = Some(1000);
    tcb.on_segment(t(1), &synack);
    let ack = only(&mut tcb, t(1));
    assert!(ack.options.timestamps.is_none());
    assert_eq!(tcb.mss().get(), 1000);
}

#[test]
fn rst_answering_syn_is_econnrefused() {
    let mut tcb = Tcb::connect(plain(), LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    tcb.on_segment(t(1), &seg(Flags::RST | Flags::ACK, 0, ISS + 1));
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(tcb.error(), Some(TcpError::ConnectionRefused));
    let mut buf = [0u8; 4];
    assert_eq!(
        tcb.recv(&mut buf),
        Err(RecvError::Failed(TcpError::ConnectionRefused))
    );
}

#[test]
fn rst_without_acceptable_ack_in_syn_sent_is_ignored() {
    let mut tcb = Tcb::connect(plain(), LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    tcb.on_segment(t(1), &seg(Flags::RST, 0, 0));
    assert_eq!(tcb.state(), State::SynSent);
}

#[test]
fn bad_ack_in_syn_sent_gets_a_reset_from_seg_ack() {
    let mut tcb = Tcb::connect(plain(), LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    tcb.on_segment(t(1), &seg(Flags::SYN | Flags::ACK, IRS, ISS + 77));
    let rst = only(&mut tcb, t(1));
    assert_eq!((rst.flags, rst.seq), (Flags::RST, SeqNum(ISS + 77)));
    assert_eq!(tcb.state(), State::SynSent);
}

#[test]
fn syn_is_retransmitted_with_backoff_then_etimedout() {
    let config = TcpConfig {
        syn_retries: 2,
        ..plain()
    };
    let mut tcb = Tcb::connect(config, LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    let mut sent_at = vec![0u64];
    let mut now = t(0);
    for _ in 0..10 {
        let Some(at) = tcb.poll_timeout() else { break };
        now = at;
        tcb.on_timeout(now);
        for (s, _) in out(&mut tcb, now) {
            assert!(s.flags.syn());
            sent_at.push(now.as_millis());
        }
    }
    // Initial RTO 1 s, doubled each time (RFC 6298 5.5), then give up.
    assert_eq!(sent_at, vec![0, 1000, 3000]);
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(tcb.error(), Some(TcpError::TimedOut));
    assert_eq!(now, t(7000));
}

#[test]
fn simultaneous_open_goes_through_syn_received() {
    let mut tcb = Tcb::connect(plain(), LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    tcb.on_segment(t(1), &seg(Flags::SYN, IRS, 0));
    assert_eq!(tcb.state(), State::SynReceived);
    let synack = only(&mut tcb, t(1));
    assert_eq!(
        (synack.flags, synack.seq, synack.ack),
        (Flags::SYN | Flags::ACK, SeqNum(ISS), SeqNum(IRS + 1))
    );
    tcb.on_segment(t(2), &seg(Flags::SYN | Flags::ACK, IRS, ISS + 1));
    // Their SYN-ACK in SYN-RECEIVED: a SYN in a synchronized-ish state is not accepted as new;
    // the ACK part completes our side.
    tcb.on_segment(t(3), &seg(Flags::ACK, IRS + 1, ISS + 1));
    assert_eq!(tcb.state(), State::Established);
}

fn passive(config: TcpConfig) -> Tcb {
    let syn = seg(Flags::SYN, IRS, 0);
    let mut tcb = Tcb::accept(config, LOCAL, REMOTE, ISS, &syn, t(0));
    let synack = only(&mut tcb, t(0));
    assert_eq!(
        (synack.flags, synack.seq, synack.ack),
        (Flags::SYN | Flags::ACK, SeqNum(ISS), SeqNum(IRS + 1))
    );
    tcb
}

#[test]
fn passive_open_completes_on_the_third_ack() {
    let mut tcb = passive(plain());
    assert_eq!(tcb.state(), State::SynReceived);
    tcb.on_segment(t(5), &seg(Flags::ACK, IRS + 1, ISS + 1));
    assert_eq!(tcb.state(), State::Established);
    assert!(out(&mut tcb, t(5)).is_empty());
}

#[test]
fn retransmitted_syn_gets_the_syn_ack_again() {
    let mut tcb = passive(plain());
    tcb.on_segment(t(5), &seg(Flags::SYN, IRS, 0));
    let again = only(&mut tcb, t(5));
    assert!(again.flags.syn() && again.flags.ack());
}

#[test]
fn syn_ack_is_retransmitted_then_given_up() {
    let mut tcb = passive(TcpConfig {
        synack_retries: 1,
        ..plain()
    });
    tcb.on_timeout(t(1000));
    assert!(only(&mut tcb, t(1000)).flags.syn());
    tcb.on_timeout(t(3000));
    assert_eq!(tcb.state(), State::Closed);
}

#[test]
fn bad_ack_in_syn_received_gets_reset() {
    let mut tcb = passive(plain());
    tcb.on_segment(t(5), &seg(Flags::ACK, IRS + 1, ISS + 50));
    let rst = only(&mut tcb, t(5));
    assert_eq!((rst.flags, rst.seq), (Flags::RST, SeqNum(ISS + 50)));
}

#[test]
fn data_is_received_in_order_and_acked_after_two_full_segments() {
    // 88 bytes is Linux's smallest MSS (TCP_MIN_MSS).
    static A: [u8; 88] = [b'a'; 88];
    static B: [u8; 88] = [b'b'; 88];
    let mut tcb = established(TcpConfig { mss: 88, ..plain() });
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 1, &A));
    assert!(
        out(&mut tcb, t(20)).is_empty(),
        "the first full segment's ACK is delayed"
    );
    tcb.on_segment(t(21), &data(IRS + 89, ISS + 1, &B));
    let ack = only(&mut tcb, t(21));
    assert_eq!(ack.ack, SeqNum(IRS + 177));
    let mut buf = [0u8; 200];
    assert_eq!(tcb.recv(&mut buf), Ok(176));
    assert_eq!(&buf[..176], [A, B].concat().as_slice());
    assert_eq!(tcb.recv(&mut buf), Err(RecvError::WouldBlock));
}

#[test]
fn delayed_ack_fires_after_the_configured_delay() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 1, b"x"));
    assert!(out(&mut tcb, t(20)).is_empty());
    assert_eq!(tcb.poll_timeout(), Some(t(60)));
    tcb.on_timeout(t(60));
    assert_eq!(only(&mut tcb, t(60)).ack, SeqNum(IRS + 2));
}

#[test]
fn quickack_acknowledges_every_segment_at_once() {
    let mut tcb = established(plain());
    tcb.set_quickack(true);
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 1, b"x"));
    assert_eq!(only(&mut tcb, t(20)).ack, SeqNum(IRS + 2));
}

#[test]
fn out_of_order_data_is_acked_at_once_and_reassembled() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &data(IRS + 4, ISS + 1, b"def"));
    assert_eq!(
        only(&mut tcb, t(20)).ack,
        SeqNum(IRS + 1),
        "duplicate ACK for the hole"
    );
    tcb.on_segment(t(21), &data(IRS + 1, ISS + 1, b"abc"));
    assert_eq!(
        only(&mut tcb, t(21)).ack,
        SeqNum(IRS + 7),
        "filling the hole is acked at once"
    );
    let mut buf = [0u8; 8];
    assert_eq!(tcb.recv(&mut buf), Ok(6));
    assert_eq!(&buf[..6], b"abcdef");
}

#[test]
fn out_of_order_data_is_reported_in_sack_blocks() {
    let config = TcpConfig {
        sack: true,
        ..plain()
    };
    let mut tcb = Tcb::connect(config, LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    let mut synack = seg(Flags::SYN | Flags::ACK, IRS, ISS + 1);
    synack.options.sack_permitted = true;
    tcb.on_segment(t(1), &synack);
    only(&mut tcb, t(1));
    tcb.on_segment(t(2), &data(IRS + 11, ISS + 1, b"zz"));
    let ack = only(&mut tcb, t(2));
    assert_eq!(
        ack.options.sack_blocks.as_slice(),
        &[(SeqNum(IRS + 11), SeqNum(IRS + 13))]
    );
}

#[test]
fn data_is_sent_and_retransmitted_on_timeout_with_backoff() {
    let mut tcb = established(plain());
    assert_eq!(tcb.send(b"hello"), Ok(5));
    let (s, payload) = out(&mut tcb, t(20)).remove(0);
    assert_eq!(
        (s.seq, payload.as_slice()),
        (SeqNum(ISS + 1), &b"hello"[..])
    );
    let rto = tcb.rto();
    // RTO after one 10 ms sample: srtt + max(4 * rttvar, 200 ms) as Linux computes it.
    assert!(
        rto >= Duration::from_millis(200) && rto < Duration::from_millis(300),
        "{rto:?}"
    );
    let first = t(20) + rto;
    assert_eq!(tcb.poll_timeout(), Some(first));
    tcb.on_timeout(first);
    let (r, payload) = out(&mut tcb, first).remove(0);
    assert_eq!(
        (r.seq, payload.as_slice()),
        (SeqNum(ISS + 1), &b"hello"[..])
    );
    assert_eq!(tcb.poll_timeout(), Some(first + rto * 2));
    tcb.on_segment(
        first + Duration::from_millis(5),
        &seg(Flags::ACK, IRS + 1, ISS + 6),
    );
    assert_eq!(tcb.poll_timeout(), None);
    assert_eq!(tcb.stats().retrans_segs, 1);
}

#[test]
fn nagle_holds_small_segments_while_one_is_unacknowledged() {
    let mut tcb = established(TcpConfig {
        nodelay: false,
        ..plain()
    });
    tcb.send(b"a").unwrap();
    assert_eq!(out(&mut tcb, t(20)).len(), 1);
    tcb.send(b"b").unwrap();
    tcb.send(b"c").unwrap();
    assert!(out(&mut tcb, t(21)).is_empty(), "held by Nagle");
    tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 2));
    let (s, p) = out(&mut tcb, t(30)).remove(0);
    assert_eq!((s.seq, p.as_slice()), (SeqNum(ISS + 2), &b"bc"[..]));
}

#[test]
fn nodelay_sends_small_segments_at_once() {
    let mut tcb = established(plain());
    tcb.send(b"a").unwrap();
    assert_eq!(out(&mut tcb, t(20)).len(), 1);
    tcb.send(b"b").unwrap();
    assert_eq!(out(&mut tcb, t(21)).len(), 1);
}

#[test]
fn the_send_window_limits_what_goes_out_and_silly_windows_wait() {
    let mut tcb = established(TcpConfig {
        mss: 100,
        ..plain()
    });
    tcb.on_segment(
        t(11),
        &Incoming {
            window: 150,
            ..seg(Flags::ACK, IRS + 1, ISS + 1)
        },
    );
    tcb.send(&[7u8; 400]).unwrap();
    // One full segment fits; the 50 bytes left of the window are less than half the largest
    // window the peer offered (65535), so sender SWS avoidance (RFC 9293 3.8.6.2.1) holds them,
    // as Linux does (tcp_snd_wnd_test).
    let sent: usize = out(&mut tcb, t(20))
        .iter()
        .map(|(s, _)| s.payload_len)
        .sum();
    assert_eq!(sent, 100);
    // The window slides: the next full segment goes.
    tcb.on_segment(
        t(30),
        &Incoming {
            window: 150,
            ..seg(Flags::ACK, IRS + 1, ISS + 101)
        },
    );
    let sent: usize = out(&mut tcb, t(30))
        .iter()
        .map(|(s, _)| s.payload_len)
        .sum();
    assert_eq!(sent, 100);
}

#[test]
fn zero_window_is_probed_by_the_persist_timer() {
    let mut tcb = established(plain());
    tcb.on_segment(
        t(11),
        &Incoming {
            window: 0,
            ..seg(Flags::ACK, IRS + 1, ISS + 1)
        },
    );
    tcb.send(b"blocked").unwrap();
    assert!(out(&mut tcb, t(20)).is_empty());
    let probe_at = tcb.poll_timeout().expect("persist timer armed");
    tcb.on_timeout(probe_at);
    let probe = only(&mut tcb, probe_at);
    assert_eq!(
        (probe.seq, probe.payload_len),
        (SeqNum(ISS), 0),
        "Linux-style probe: SND.UNA - 1"
    );
    // The window opens: data flows.
    tcb.on_segment(
        probe_at + Duration::from_millis(1),
        &seg(Flags::ACK, IRS + 1, ISS + 1),
    );
    let (s, p) = out(&mut tcb, probe_at + Duration::from_millis(1)).remove(0);
    assert_eq!((s.seq, p.as_slice()), (SeqNum(ISS + 1), &b"blocked"[..]));
}

#[test]
fn three_duplicate_acks_trigger_fast_retransmit() {
    let mut tcb = established(TcpConfig {
        mss: 100,
        ..plain()
    });
    tcb.send(&[1u8; 500]).unwrap();
    assert_eq!(out(&mut tcb, t(20)).len(), 5);
    // The first segment arrives; the second is lost; the next three each cause a duplicate ACK.
    tcb.on_segment(t(29), &seg(Flags::ACK, IRS + 1, ISS + 101));
    for i in 0..2 {
        tcb.on_segment(t(30 + i), &seg(Flags::ACK, IRS + 1, ISS + 101));
        assert!(
            out(&mut tcb, t(30 + i)).is_empty(),
            "two duplicate ACKs are not enough"
        );
    }
    tcb.on_segment(t(32), &seg(Flags::ACK, IRS + 1, ISS + 101));
    let (r, p) = out(&mut tcb, t(32)).remove(0);
    assert_eq!((r.seq, p.len()), (SeqNum(ISS + 101), 100));
    assert_eq!(tcb.stats().fast_retransmits, 1);
}

#[test]
fn peer_fin_makes_read_return_zero_and_leaves_close_wait_until_close() {
    let mut tcb = established(plain());
    tcb.on_segment(
        t(20),
        &Incoming {
            payload: b"bye",
            ..seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 1)
        },
    );
    assert_eq!(tcb.state(), State::CloseWait);
    assert_eq!(only(&mut tcb, t(20)).ack, SeqNum(IRS + 5));
    let mut buf = [0u8; 8];
    assert_eq!(tcb.recv(&mut buf), Ok(3));
    assert_eq!(tcb.recv(&mut buf), Ok(0));
    assert_eq!(tcb.recv(&mut buf), Ok(0));
    // It stays in CLOSE-WAIT however long we wait.
    assert_eq!(tcb.poll_timeout(), None);
    assert_eq!(tcb.state(), State::CloseWait);
    // We can still send.
    assert_eq!(tcb.send(b"ok"), Ok(2));
    tcb.close(t(100));
    assert_eq!(tcb.state(), State::LastAck);
    let segs = out(&mut tcb, t(100));
    let last = &segs.last().unwrap().0;
    assert!(last.flags.fin());
    tcb.on_segment(t(110), &seg(Flags::ACK, IRS + 5, ISS + 4));
    assert_eq!(tcb.state(), State::Closed);
    assert!(tcb.error().is_none());
}

#[test]
fn last_ack_retransmits_its_fin() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 1));
    out(&mut tcb, t(20));
    tcb.close(t(21));
    let fin = only(&mut tcb, t(21));
    assert!(fin.flags.fin());
    let at = tcb.poll_timeout().unwrap();
    tcb.on_timeout(at);
    let again = only(&mut tcb, at);
    assert!(again.flags.fin() && again.seq == fin.seq);
}

#[test]
fn active_close_passes_fin_wait_1_fin_wait_2_and_time_wait() {
    let mut tcb = established(plain());
    tcb.close(t(20));
    assert_eq!(tcb.state(), State::FinWait1);
    let fin = only(&mut tcb, t(20));
    assert_eq!(
        (fin.flags, fin.seq),
        (Flags::FIN | Flags::ACK, SeqNum(ISS + 1))
    );
    tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 2));
    assert_eq!(tcb.state(), State::FinWait2);
    tcb.on_segment(t(40), &seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 2));
    assert_eq!(tcb.state(), State::TimeWait);
    assert_eq!(only(&mut tcb, t(40)).ack, SeqNum(IRS + 2));
    // 2 * MSL = 60 s.
    assert_eq!(tcb.poll_timeout(), Some(t(60_040)));
    tcb.on_timeout(t(60_040));
    assert_eq!(tcb.state(), State::Closed);
}

#[test]
fn time_wait_restarts_on_retransmitted_fin() {
    let mut tcb = established(plain());
    tcb.close(t(20));
    out(&mut tcb, t(20));
    tcb.on_segment(t(30), &seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 2));
    out(&mut tcb, t(30));
    tcb.on_segment(t(5_000), &seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 2));
    assert_eq!(
        only(&mut tcb, t(5_000)).ack,
        SeqNum(IRS + 2),
        "the retransmitted FIN is re-ACKed"
    );
    assert_eq!(tcb.poll_timeout(), Some(t(65_000)));
}

#[test]
fn time_wait_ignores_rst_per_rfc_1337() {
    let mut tcb = established(plain());
    tcb.close(t(20));
    out(&mut tcb, t(20));
    tcb.on_segment(t(30), &seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 2));
    tcb.on_segment(t(40), &seg(Flags::RST, IRS + 2, 0));
    assert_eq!(tcb.state(), State::TimeWait);
}

#[test]
fn fin_wait_2_times_out_after_fin_timeout() {
    let mut tcb = established(TcpConfig {
        fin_timeout: Duration::from_secs(5),
        ..plain()
    });
    tcb.close(t(20));
    out(&mut tcb, t(20));
    tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 2));
    assert_eq!(tcb.state(), State::FinWait2);
    assert_eq!(tcb.poll_timeout(), Some(t(5_030)));
    tcb.on_timeout(t(5_030));
    assert_eq!(tcb.state(), State::Closed);
    // Linux resets an orphan whose FIN-WAIT-2 timed out.
    assert!(only(&mut tcb, t(5_030)).flags.rst());
}

#[test]
fn half_close_keeps_fin_wait_2_open_without_timeout() {
    let mut tcb = established(plain());
    tcb.shutdown_write();
    out(&mut tcb, t(20));
    tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 2));
    assert_eq!(tcb.state(), State::FinWait2);
    assert_eq!(
        tcb.poll_timeout(),
        None,
        "not orphaned: no FIN-WAIT-2 timeout"
    );
    tcb.on_segment(t(40), &data(IRS + 1, ISS + 2, b"more"));
    let mut buf = [0u8; 8];
    assert_eq!(tcb.recv(&mut buf), Ok(4));
    assert_eq!(tcb.send(b"x"), Err(SendError::Shutdown));
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut tcb = established(plain());
    tcb.close(t(20));
    out(&mut tcb, t(20));
    // The peer's FIN crosses ours: it does not acknowledge our FIN yet.
    tcb.on_segment(t(21), &seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 1));
    assert_eq!(tcb.state(), State::Closing);
    tcb.on_segment(t(22), &seg(Flags::ACK, IRS + 2, ISS + 2));
    assert_eq!(tcb.state(), State::TimeWait);
}

#[test]
fn close_with_unread_data_sends_rst_like_linux() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 1, b"unread"));
    out(&mut tcb, t(20));
    tcb.close(t(30));
    assert_eq!(tcb.state(), State::Closed);
    let rst = only(&mut tcb, t(30));
    assert!(rst.flags.rst());
    assert_eq!(rst.seq, SeqNum(ISS + 1));
}

#[test]
fn linger_zero_aborts_with_rst_and_skips_time_wait() {
    let mut tcb = established(plain());
    tcb.abort(t(20));
    assert!(only(&mut tcb, t(20)).flags.rst());
    assert!(tcb.is_closed());
}

#[test]
fn in_window_rst_gets_a_challenge_ack_and_exact_rst_resets() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &seg(Flags::RST, IRS + 100, 0));
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(only(&mut tcb, t(20)).ack, SeqNum(IRS + 1));
    tcb.on_segment(t(30), &seg(Flags::RST, IRS + 1, 0));
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(
        tcb.send(b"x"),
        Err(SendError::Failed(TcpError::ConnectionReset))
    );
}

#[test]
fn syn_in_established_gets_a_challenge_ack() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &seg(Flags::SYN, IRS + 3, 0));
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(only(&mut tcb, t(20)).ack, SeqNum(IRS + 1));
}

#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 500, b"x"));
    let ack = only(&mut tcb, t(20));
    assert_eq!(ack.ack, SeqNum(IRS + 1), "the data in it was not accepted");
}

#[test]
fn segment_outside_the_window_is_answered_with_an_ack() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &data(IRS + 1_000_000, ISS + 1, b"far"));
    assert_eq!(only(&mut tcb, t(20)).ack, SeqNum(IRS + 1));
    assert_eq!(tcb.stats().dropped_unacceptable, 1);
}

#[test]
fn paws_drops_segments_with_old_timestamps() {
    let config = TcpConfig {
        timestamps: true,
        ..plain()
    };
    let mut tcb = Tcb::connect(config, LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    let mut synack = seg(Flags::SYN | Flags::ACK, IRS, ISS + 1);
    synack.options.timestamps = Some(Timestamps {
        tsval: 1000,
        tsecr: 0,
    });
    tcb.on_segment(t(1), &synack);
    only(&mut tcb, t(1));
    let mut old = data(IRS + 1, ISS + 1, b"old");
    old.options.timestamps = Some(Timestamps {
        tsval: 900,
        tsecr: 0,
    });
    tcb.on_segment(t(2), &old);
    assert_eq!(tcb.recv_available(), 0);
    assert_eq!(only(&mut tcb, t(2)).ack, SeqNum(IRS + 1));
    let mut fresh = data(IRS + 1, ISS + 1, b"new");
    fresh.options.timestamps = Some(Timestamps {
        tsval: 1001,
        tsecr: 0,
    });
    tcb.on_segment(t(3), &fresh);
    assert_eq!(tcb.recv_available(), 3);
}

#[test]
fn keepalive_probes_then_times_out() {
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        probes: 3,
    };
    let mut tcb = established(TcpConfig {
        keepalive: Some(ka),
        ..plain()
    });
    let mut probes = 0;
    let mut now = t(10);
    while let Some(at) = tcb.poll_timeout() {
        now = at;
        tcb.on_timeout(now);
        for (s, _) in out(&mut tcb, now) {
            if s.seq == SeqNum(ISS) {
                probes += 1;
            }
        }
        if tcb.state() == State::Closed {
            break;
        }
    }
    assert_eq!(probes, 3);
    assert_eq!(now, t(10 + 10_000 + 3 * 2_000));
    assert_eq!(tcb.error(), Some(TcpError::TimedOut));
}

#[test]
fn keepalive_answer_keeps_the_connection() {
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        probes: 3,
    };
    let mut tcb = established(TcpConfig {
        keepalive: Some(ka),
        ..plain()
    });
    tcb.on_timeout(t(10_010));
    only(&mut tcb, t(10_010));
    tcb.on_segment(t(10_020), &seg(Flags::ACK, IRS + 1, ISS + 1));
    runs_timers(&mut tcb, t(15_000));
    assert_eq!(tcb.state(), State::Established);
}

#[test]
fn data_retransmissions_give_up_with_etimedout() {
    let mut tcb = established(TcpConfig {
        retries: 3,
        ..plain()
    });
    tcb.send(b"lost").unwrap();
    out(&mut tcb, t(20));
    let mut n = 0;
    while let Some(at) = tcb.poll_timeout() {
        tcb.on_timeout(at);
        n += out(&mut tcb, at).len();
        if tcb.state() == State::Closed {
            break;
        }
    }
    assert_eq!(n, 3);
    assert_eq!(tcb.error(), Some(TcpError::TimedOut));
}

// ----- regressions found by the seeded simulation -----

#[test]
fn retransmission_after_timeout_fits_a_small_window_despite_sws_avoidance() {
    let mut tcb = established(TcpConfig {
        mss: 1000,
        ..plain()
    });
    tcb.send(&[5u8; 3000]).unwrap();
    // The peer acknowledges nothing but shrinks its window to 300 bytes.
    tcb.on_segment(
        t(11),
        &Incoming {
            window: 300,
            ..seg(Flags::ACK, IRS + 1, ISS + 1)
        },
    );
    // Only a 300-byte partial segment would fit: SWS avoidance holds new data...
    assert!(out(&mut tcb, t(20)).is_empty());
    // ...but once sent data times out, the head segment is retransmitted whatever the window
    // (RFC 9293 3.8.6.1; Linux tcp_retransmit_timer), never held back.
    let mut tcb = established(TcpConfig {
        mss: 1000,
        ..plain()
    });
    tcb.send(&[5u8; 3000]).unwrap();
    assert_eq!(out(&mut tcb, t(20)).len(), 3);
    tcb.on_segment(
        t(21),
        &Incoming {
            window: 300,
            ..seg(Flags::ACK, IRS + 1, ISS + 1)
        },
    );
    let at = tcb.poll_timeout().unwrap();
    tcb.on_timeout(at);
    let r = out(&mut tcb, at);
    assert_eq!(r.len(), 1, "one retransmission, not silence");
    assert_eq!((r[0].0.seq, r[0].0.payload_len), (SeqNum(ISS + 1), 1000));
}

#[test]
fn persist_timer_forces_data_into_a_small_window() {
    let mut tcb = established(TcpConfig {
        mss: 1000,
        ..plain()
    });
    tcb.on_segment(
        t(11),
        &Incoming {
            window: 300,
            ..seg(Flags::ACK, IRS + 1, ISS + 1)
        },
    );
    tcb.send(&[5u8; 3000]).unwrap();
    assert!(
        out(&mut tcb, t(20)).is_empty(),
        "held by sender SWS avoidance"
    );
    let at = tcb
        .poll_timeout()
        .expect("the persist timer runs for a small window too");
    tcb.on_timeout(at);
    let (s, p) = out(&mut tcb, at).remove(0);
    assert_eq!((s.seq, p.len()), (SeqNum(ISS + 1), 300));
}

#[test]
fn pure_ack_after_a_timeout_carries_snd_max() {
    let mut tcb = established(TcpConfig {
        mss: 1000,
        ..plain()
    });
    tcb.send(&[5u8; 2000]).unwrap();
    assert_eq!(out(&mut tcb, t(20)).len(), 2);
    let at = tcb.poll_timeout().unwrap();
    tcb.on_timeout(at);
    out(&mut tcb, at); // the retransmission of the first segment
    // Data from the peer: our ACK's sequence number is the highest we sent (Linux
    // tcp_acceptable_seq), which the peer finds acceptable whatever it already received.
    tcb.set_quickack(true);
    tcb.on_segment(at + Duration::from_millis(1), &data(IRS + 1, ISS + 1, b"x"));
    let acks: Vec<Outgoing> = out(&mut tcb, at + Duration::from_millis(1))
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let pure = acks.iter().find(|s| s.payload_len == 0).expect("an ACK");
    assert_eq!(pure.seq, SeqNum(ISS + 2001));
}

#[test]
fn fin_keeps_its_sequence_number_across_a_timeout() {
    let mut tcb = established(plain());
    tcb.send(b"abc").unwrap();
    tcb.close(t(20));
    let segs = out(&mut tcb, t(20));
    let fin_seq = segs
        .iter()
        .find(|(s, _)| s.flags.fin())
        .map(|(s, p)| s.seq + p.len())
        .unwrap();
    assert_eq!(fin_seq, SeqNum(ISS + 4));
    let at = tcb.poll_timeout().unwrap();
    tcb.on_timeout(at);
    out(&mut tcb, at);
    // The ACK of the original FIN arrives after the timeout: nothing more is sent, and the
    // connection moves on to FIN-WAIT-2.
    tcb.on_segment(
        at + Duration::from_millis(1),
        &seg(Flags::ACK, IRS + 1, ISS + 5),
    );
    assert_eq!(tcb.state(), State::FinWait2);
    assert!(out(&mut tcb, at + Duration::from_millis(1)).is_empty());
}

#[test]
fn timestamp_echoes_from_before_a_retransmission_are_not_rtt_samples() {
    let config = TcpConfig {
        timestamps: true,
        ..plain()
    };
    let mut tcb = Tcb::connect(config, LOCAL, REMOTE, ISS, t(0));
    let syn = only(&mut tcb, t(0));
    let ts0 = syn.options.timestamps.unwrap().tsval;
    let mut synack = seg(Flags::SYN | Flags::ACK, IRS, ISS + 1);
    synack.options.timestamps = Some(Timestamps {
        tsval: 1,
        tsecr: ts0,
    });
    tcb.on_segment(t(10), &synack);
    out(&mut tcb, t(10));
    let srtt = tcb.srtt().unwrap();
    tcb.send(&[1u8; 100]).unwrap();
    let first = out(&mut tcb, t(20)).remove(0).0;
    let old_tsval = first.options.timestamps.unwrap().tsval;
    // Time out twice, then an ACK echoing the TSval of the first transmission arrives 30 s later.
    for _ in 0..2 {
        let now = tcb.poll_timeout().unwrap();
        tcb.on_timeout(now);
        out(&mut tcb, now);
    }
    let mut ack = seg(Flags::ACK, IRS + 1, ISS + 101);
    ack.options.timestamps = Some(Timestamps {
        tsval: 2,
        tsecr: old_tsval,
    });
    tcb.on_segment(t(30_000), &ack);
    assert_eq!(
        tcb.srtt(),
        Some(srtt),
        "a 30 s sample would have been taken"
    );
}

#[test]
fn fin_wait_1_goes_straight_to_time_wait_when_the_fin_acks_our_fin() {
    let mut tcb = established(plain());
    tcb.close(t(20));
    out(&mut tcb, t(20));
    tcb.on_segment(t(30), &seg(Flags::ACK | Flags::FIN, IRS + 1, ISS + 2));
    assert_eq!(tcb.state(), State::TimeWait);
}

#[test]
fn close_in_syn_received_sends_fin_once_established() {
    let mut tcb = passive(plain());
    tcb.close(t(1));
    assert_eq!(tcb.state(), State::SynReceived);
    tcb.on_segment(t(5), &seg(Flags::ACK, IRS + 1, ISS + 1));
    assert_eq!(tcb.state(), State::FinWait1);
    let fin = only(&mut tcb, t(5));
    assert!(fin.flags.fin());
    assert_eq!(fin.seq, SeqNum(ISS + 1));
}

#[test]
fn send_after_the_peer_reset_is_econnreset_and_read_too() {
    let mut tcb = established(plain());
    tcb.on_segment(t(20), &seg(Flags::RST | Flags::ACK, IRS + 1, ISS + 1));
    assert_eq!(
        tcb.send(b"x"),
        Err(SendError::Failed(TcpError::ConnectionReset))
    );
    let mut buf = [0u8; 1];
    assert_eq!(
        tcb.recv(&mut buf),
        Err(RecvError::Failed(TcpError::ConnectionReset))
    );
    assert_eq!(TcpError::ConnectionReset.errno(), "ECONNRESET");
}

#[test]
fn shutdown_in_syn_sent_closes_like_linux() {
    let mut tcb = Tcb::connect(plain(), LOCAL, REMOTE, ISS, t(0));
    only(&mut tcb, t(0));
    tcb.shutdown_write();
    assert_eq!(tcb.state(), State::Closed);
}

#[test]
fn newreno_and_cubic_are_selectable_per_connection() {
    use super::congestion::Algorithm;
    for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
        let mut tcb = established(TcpConfig {
            congestion: algorithm,
            mss: 1000,
            ..plain()
        });
        tcb.send(&[0u8; 10_000]).unwrap();
        let n = out(&mut tcb, t(20)).len();
        assert_eq!(n, 10, "initial window of 10 segments (RFC 6928)");
        tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 1001));
        let before = tcb.cwnd();
        // Three duplicate ACKs: NewReno halves the flight, CUBIC keeps 70% of cwnd (RFC 9438 4.6).
        for i in 0..3 {
            tcb.on_segment(t(31 + i), &seg(Flags::ACK, IRS + 1, ISS + 1001));
        }
        let after = tcb.cwnd();
        let ratio = after as f64 / before as f64;
        match algorithm {
            // RFC 5681 eq. 4: ssthresh = FlightSize / 2 (9000 bytes in flight).
            Algorithm::NewReno => assert_eq!(after, 4500),
            Algorithm::Cubic => assert!((0.65..=0.75).contains(&ratio), "{ratio}"),
        }
    }
}

#[test]
fn timeout_retransmits_the_head_even_into_a_zero_window() {
    let mut tcb = established(plain());
    tcb.send(b"data").unwrap();
    out(&mut tcb, t(20));
    // The peer closes its window without acknowledging the data.
    tcb.on_segment(
        t(21),
        &Incoming {
            window: 0,
            ..seg(Flags::ACK, IRS + 1, ISS + 1)
        },
    );
    let at = tcb.poll_timeout().unwrap();
    tcb.on_timeout(at);
    let (s, p) = out(&mut tcb, at).remove(0);
    assert_eq!((s.seq, p.as_slice()), (SeqNum(ISS + 1), &b"data"[..]));
}

#[test]
fn partial_ack_without_sack_retransmits_the_next_hole_at_once() {
    let mut tcb = established(TcpConfig {
        mss: 100,
        ..plain()
    });
    tcb.send(&[1u8; 600]).unwrap();
    assert_eq!(out(&mut tcb, t(20)).len(), 6);
    // Segments 1 and 3 are lost: three duplicate ACKs for 1, fast retransmit of 1.
    for i in 0..3 {
        tcb.on_segment(t(30 + i), &seg(Flags::ACK, IRS + 1, ISS + 1));
    }
    let (r, _) = out(&mut tcb, t(33)).remove(0);
    assert_eq!(r.seq, SeqNum(ISS + 1));
    // The retransmission fills the first hole: a partial ACK up to the second hole.
    tcb.on_segment(t(40), &seg(Flags::ACK, IRS + 1, ISS + 201));
    let (r, _) = out(&mut tcb, t(40)).remove(0);
    assert_eq!(
        r.seq,
        SeqNum(ISS + 201),
        "RFC 6582 3.2 (5): no waiting for three more dupacks"
    );
}

#[test]
fn recovery_retransmits_a_lost_fin_as_a_fin_never_as_a_data_byte() {
    // Found by simulation seed 1684: NextSeg() named the FIN's sequence number as a hole, and a
    // byte from beyond the send buffer went out in its place.
    let mut tcb = established(TcpConfig {
        mss: 100,
        ..plain()
    });
    tcb.send(&[1u8; 300]).unwrap();
    tcb.close(t(20));
    let segs = out(&mut tcb, t(20));
    assert!(segs.last().unwrap().0.flags.fin());
    // All data arrives, the FIN is lost: duplicate ACKs for the FIN's sequence number.
    tcb.on_segment(t(30), &seg(Flags::ACK, IRS + 1, ISS + 301));
    for i in 0..3 {
        tcb.on_segment(t(31 + i), &seg(Flags::ACK, IRS + 1, ISS + 301));
    }
    let mut now = t(34);
    for _ in 0..5 {
        for (s, p) in out(&mut tcb, now) {
            assert!(
                s.payload_len == 0 || p.iter().all(|b| *b == 1),
                "only real data bytes"
            );
            assert!(
                !(s.seq == SeqNum(ISS + 301) && s.payload_len > 0),
                "the FIN's place carries no data: {s:?}"
            );
        }
        if let Some(at) = tcb.poll_timeout() {
            now = at.max(now);
            tcb.on_timeout(now);
        }
    }
}

#[test]
fn rst_in_syn_received_of_a_passive_open_ends_it_silently() {
    let mut tcb = passive(plain());
    tcb.on_segment(t(5), &seg(Flags::RST, IRS + 1, 0));
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(tcb.error(), None, "the listener goes on; nobody is told");
    assert!(out(&mut tcb, t(5)).is_empty());
}

#[test]
fn ack_far_below_the_window_is_answered_by_a_challenge_ack_and_dropped() {
    let mut tcb = established(plain());
    tcb.send(b"abc").unwrap();
    out(&mut tcb, t(20));
    // RFC 5961 5.2: SEG.ACK < SND.UNA - MAX.SND.WND is unacceptable.
    let old_ack = ISS.wrapping_sub(1_000_000);
    tcb.on_segment(t(21), &data(IRS + 1, old_ack, b"zz"));
    let ack = only(&mut tcb, t(21));
    assert_eq!(ack.ack, SeqNum(IRS + 1), "its data was not accepted");
    assert_eq!(tcb.recv_available(), 0);
    assert_eq!(tcb.stats().challenge_acks, 1);
}

#[test]
fn a_syn_ack_due_when_the_handshake_completes_is_forgotten() {
    // Found by fuzzing: a retransmitted SYN made a SYN-ACK due, the third ACK arrived before it
    // went out, and the connection kept asking to be polled for output it would never send.
    let mut tcb = passive(plain());
    tcb.on_segment(t(5), &seg(Flags::SYN, IRS, 0));
    tcb.on_segment(t(6), &seg(Flags::ACK, IRS + 1, ISS + 1));
    assert_eq!(tcb.state(), State::Established);
    assert!(!tcb.wants_output());
    assert!(out(&mut tcb, t(6)).is_empty());
}
