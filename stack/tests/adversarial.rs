//! Adversarial peers, packet by packet: blind injection (RFC 5961), lies about sequence
//! space, windows and options, a peer that never ACKs or never opens its window, wrapping
//! sequence numbers, malformed option lists, and a SYN flood over a live transfer.
//!
//! Each test is named after the attack and the expected outcome. The TCB-level tests use the
//! segment templates of `src/tcp/tests.rs` (segments in, segments out, a fake clock); the
//! shard-level ones feed frames built with etherparse (independent of our emitters) or run two
//! shards over the memory wire (`support/two_shards.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // house rule: tests may unwrap

#[path = "support/two_shards.rs"]
mod two_shards;

use shardnet::port::{RxOffload, VecTransmit};
use shardnet::tcp::send_buffer::SendBuffer;
use shardnet::tcp::{
    Flags, Incoming, Options, Outgoing, RecvError, SendError, SeqNum, State, Tcb, TcpConfig,
    TcpError, Timestamps,
};
use shardnet::time::{Duration, Instant};
use std::net::{Ipv4Addr, SocketAddrV4};

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
const ISS: u32 = 1000;
const IRS: u32 = 5000;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// No timestamps, SACK or scaling unless a test turns them on: obvious sequence arithmetic.
fn plain() -> TcpConfig {
    TcpConfig {
        timestamps: false,
        sack: false,
        window_scaling: false,
        nodelay: true,
        ..TcpConfig::default()
    }
}

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

fn data(seq: u32, ack: u32, payload: &[u8]) -> Incoming<'_> {
    Incoming {
        payload,
        ..seg(Flags::ACK | Flags::PSH, seq, ack)
    }
}

/// Everything the TCB sends at `now`, payload bytes copied out.
fn out(tcb: &mut Tcb, now: Instant) -> Vec<(Outgoing, Vec<u8>)> {
    let mut v = Vec::new();
    tcb.poll_output(now, &mut |s: &Outgoing, buf: &SendBuffer| {
        let mut bytes = vec![0u8; s.payload_len];
        buf.copy_out(s.payload_offset, &mut bytes);
        v.push((s.clone(), bytes));
        true
    });
    v
}

fn only(tcb: &mut Tcb, now: Instant) -> Outgoing {
    let mut v = out(tcb, now);
    assert_eq!(v.len(), 1, "expected one segment, got {v:?}");
    v.remove(0).0
}

/// An ESTABLISHED active open (SYN at 0 ms, SYN-ACK at 10 ms) with `synack`'s options.
fn established_with(config: TcpConfig, iss: u32, irs: u32, options: Options) -> Tcb {
    let mut tcb = Tcb::connect(config, LOCAL, REMOTE, iss, t(0));
    let syn = only(&mut tcb, t(0));
    assert!(syn.flags.syn());
    let synack = Incoming {
        options,
        ..seg(Flags::SYN | Flags::ACK, irs, iss.wrapping_add(1))
    };
    tcb.on_segment(t(10), &synack);
    assert_eq!(tcb.state(), State::Established);
    only(&mut tcb, t(10));
    tcb
}

fn established(config: TcpConfig) -> Tcb {
    let options = Options {
        mss: Some(1460),
        ..Options::default()
    };
    established_with(config, ISS, IRS, options)
}

/// Runs every timer due up to `until`, collecting what is sent: (time, segment).
fn run_timers(tcb: &mut Tcb, from: Instant, until: Instant) -> Vec<(Instant, Outgoing)> {
    let mut sent = Vec::new();
    let mut now = from;
    while let Some(at) = tcb.poll_timeout() {
        let at = at.max(now);
        if at > until {
            break;
        }
        now = at;
        tcb.on_timeout(now);
        for (s, _) in out(tcb, now) {
            sent.push((now, s));
        }
    }
    sent
}

// ----- RFC 5961: blind RST, SYN and data injection -----

#[test]
fn blind_rst_outside_the_window_is_dropped_silently() {
    let mut tcb = established(plain());
    for seq in [
        IRS,
        IRS.wrapping_sub(70_000),
        IRS + 70_000,
        IRS + 0x8000_0000,
    ] {
        tcb.on_segment(t(20), &seg(Flags::RST, seq, 0));
        assert_eq!(tcb.state(), State::Established);
    }
    assert!(out(&mut tcb, t(20)).is_empty(), "never an answer to a RST");
    assert_eq!(tcb.stats().challenge_acks, 0);
}

#[test]
fn blind_rst_in_the_window_gets_one_challenge_ack_per_500ms_and_never_resets() {
    let mut tcb = established(plain());
    // A blind attacker sweeps the window: 50 RSTs within 49 ms.
    let mut acks = 0;
    for i in 0..50u32 {
        tcb.on_segment(
            t(20 + u64::from(i)),
            &seg(Flags::RST, IRS + 2 + i * 1000, 0),
        );
        assert_eq!(tcb.state(), State::Established);
        for (s, _) in out(&mut tcb, t(20 + u64::from(i))) {
            // RFC 5961 3.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
            assert_eq!(
                (s.flags, s.seq, s.ack),
                (Flags::ACK, SeqNum(ISS + 1), SeqNum(IRS + 1))
            );
            acks += 1;
        }
    }
    assert_eq!(
        acks, 1,
        "rate-limited: one challenge ACK per 500 ms (Linux tcp_invalid_ratelimit)"
    );
    // 500 ms later the next one is answered again.
    tcb.on_segment(t(520), &seg(Flags::RST, IRS + 7, 0));
    assert_eq!(out(&mut tcb, t(520)).len(), 1);
    assert_eq!(tcb.stats().challenge_acks, 2);
    // Only the exact sequence number resets: ECONNRESET.
    tcb.on_segment(t(530), &seg(Flags::RST, IRS + 1, 0));
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(tcb.error(), Some(TcpError::ConnectionReset));
}

#[test]
fn blind_syn_in_or_out_of_the_window_gets_a_rate_limited_challenge_ack_and_never_resets() {
    let mut tcb = established(plain());
    let mut acks = 0;
    for (i, seq) in [
        IRS + 1,
        IRS + 500,
        IRS.wrapping_sub(1_000_000),
        IRS + 3_000_000,
    ]
    .into_iter()
    .enumerate()
    {
        let now = t(20 + i as u64);
        tcb.on_segment(now, &seg(Flags::SYN, seq, 0));
        assert_eq!(
            tcb.state(),
            State::Established,
            "RFC 5961 4.2: a SYN never resets"
        );
        acks += out(&mut tcb, now).len();
    }
    assert_eq!(
        acks, 1,
        "one challenge ACK (Linux: syn_challenge, rate-limited)"
    );
    tcb.on_segment(t(600), &seg(Flags::SYN | Flags::ACK, IRS + 9, ISS + 1));
    let ack = only(&mut tcb, t(600));
    assert_eq!((ack.seq, ack.ack), (SeqNum(ISS + 1), SeqNum(IRS + 1)));
    assert_eq!(tcb.stats().challenge_acks, 2);
}

#[test]
fn ack_for_data_never_sent_is_dropped_with_its_data_and_answered_by_a_rate_limited_ack() {
    let mut tcb = established(plain());
    tcb.send(b"abc").unwrap();
    out(&mut tcb, t(15));
    // RFC 5961 5.2 / RFC 9293: SEG.ACK > SND.NXT: send an ACK, drop the segment.
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 1 + 100_000, b"injected"));
    let ack = only(&mut tcb, t(20));
    assert_eq!(ack.ack, SeqNum(IRS + 1), "the data in it was not accepted");
    assert_eq!(tcb.recv_available(), 0);
    // A flood of them: no more ACKs within 500 ms (no ACK storm between confused peers).
    for i in 0..20u32 {
        tcb.on_segment(t(21), &seg(Flags::ACK, IRS + 1, ISS + 1000 + i));
    }
    assert!(out(&mut tcb, t(21)).is_empty());
    assert_eq!(tcb.send_queue_len(), 3, "nothing acknowledged by the lies");
    // RFC 5961 5.2: an ACK older than SND.UNA - MAX.SND.WND is dropped too (challenge ACK).
    tcb.on_segment(t(600), &seg(Flags::ACK, IRS + 1, ISS.wrapping_sub(200_000)));
    assert_eq!(only(&mut tcb, t(600)).ack, SeqNum(IRS + 1));
    assert_eq!(tcb.state(), State::Established);
}

// ----- sequence space and windows -----

/// The policy for overlapping segments that carry different bytes: bytes delivered in order
/// (RCV.NXT has passed them) never change; bytes held out of order are overwritten by the
/// latest segment that covers them, until they are delivered. For the common cases this is
/// what Linux does: a retransmission overlapping delivered data is trimmed (tcp_data_queue),
/// an in-order segment is taken whole and the out-of-order data it covers is dropped
/// (tcp_ofo_queue), and an out-of-order segment covering a held one replaces it
/// (tcp_data_queue_ofo). Linux differs for partial out-of-order overlaps, where the segment
/// that starts first wins.
#[test]
fn overlapping_retransmissions_with_different_bytes_never_change_delivered_bytes() {
    let mut tcb = established(plain());
    let mut buf = [0u8; 64];
    // In order: "AAAA" then a retransmission of the same range plus more, with other bytes.
    tcb.on_segment(t(20), &data(IRS + 1, ISS + 1, b"AAAA"));
    tcb.on_segment(t(21), &data(IRS + 1, ISS + 1, b"BBBBBBBB"));
    let n = tcb.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"AAAABBBB", "delivered bytes are kept");
    // "XXXX" held out of order at +4; an in-order segment covering it is taken whole.
    let base = IRS + 9;
    tcb.on_segment(t(30), &data(base + 4, ISS + 1, b"XXXX"));
    tcb.on_segment(t(31), &data(base, ISS + 1, b"YYYYZZZZ"));
    let n = tcb.recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"YYYYZZZZ",
        "the in-order segment wins over held bytes"
    );
    // Held out of order: a later out-of-order copy overwrites them; the hole then fills.
    let base = base + 8;
    tcb.on_segment(t(40), &data(base + 4, ISS + 1, b"XXXX"));
    tcb.on_segment(t(41), &data(base + 2, ISS + 1, b"WWWWWWWW"));
    tcb.on_segment(t(42), &data(base, ISS + 1, b"VV"));
    let n = tcb.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"VVWWWWWWWW");
    // Nothing else was delivered, nothing twice.
    assert_eq!(tcb.recv(&mut buf), Err(RecvError::WouldBlock));
    assert_eq!(tcb.stats().bytes_received, 8 + 8 + 10);
}

#[test]
fn data_beyond_the_receive_window_is_dropped_and_acknowledged() {
    let config = TcpConfig {
        recv_buffer: 4096,
        ..plain()
    };
    let mut tcb = established(config);
    let junk = vec![7u8; 1000];
    // Entirely beyond the right edge of the 4096-byte window.
    tcb.on_segment(t(20), &data(IRS + 1 + 5000, ISS + 1, &junk));
    let ack = only(&mut tcb, t(20));
    assert_eq!(ack.ack, SeqNum(IRS + 1));
    assert_eq!(tcb.recv_available(), 0);
    assert_eq!(tcb.stats().dropped_unacceptable, 1);
    // Fill the window exactly; more in-order data past it is not taken: memory stays bounded.
    let fill = vec![1u8; 4096];
    tcb.on_segment(t(30), &data(IRS + 1, ISS + 1, &fill));
    tcb.on_segment(t(31), &data(IRS + 1 + 4096, ISS + 1, &junk));
    assert_eq!(tcb.recv_available(), 4096);
    let acks = out(&mut tcb, t(31));
    let last = &acks.last().unwrap().0;
    assert_eq!(
        (last.ack, last.window),
        (SeqNum(IRS + 1 + 4096), 0),
        "window closed"
    );
    assert_eq!(tcb.stats().to_zero_window_adv, 1, "TCPToZeroWindowAdv");
    assert!(
        tcb.buffer_memory() <= 2 * 4096,
        "{} bytes held",
        tcb.buffer_memory()
    );
}

#[test]
fn sequence_numbers_wrap_during_a_transfer_without_losing_a_byte() {
    // Both ISNs a few bytes below 2^32: every segment of a 200 KB transfer each way crosses
    // or follows the wrap.
    let (iss_a, iss_b) = (u32::MAX - 100, u32::MAX - 3000);
    let config = TcpConfig {
        timestamps: true,
        sack: true,
        window_scaling: true,
        ..TcpConfig::default()
    };
    let local_b = REMOTE;
    let mut a = Tcb::connect(config, LOCAL, local_b, iss_a, t(0));
    let syn = out(&mut a, t(0)).remove(0).0;
    let syn_in = to_incoming(&syn, &[]);
    let mut b = Tcb::accept(config, local_b, LOCAL, iss_b, &syn_in, t(1));
    let msg_a: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + 1) as u8).collect();
    let msg_b: Vec<u8> = (0..200_000u32).map(|i| (i * 13 + 5) as u8).collect();
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let (mut sent_a, mut sent_b) = (0, 0);
    let mut now = t(1);
    for _ in 0..20_000 {
        if a.state() == State::Established {
            sent_a += a.send(&msg_a[sent_a..]).unwrap_or(0);
        }
        if b.state() == State::Established {
            sent_b += b.send(&msg_b[sent_b..]).unwrap_or(0);
        }
        let moved = pump(&mut a, &mut b, now, &mut got_b) | pump(&mut b, &mut a, now, &mut got_a);
        if got_a.len() == msg_b.len() && got_b.len() == msg_a.len() {
            break;
        }
        now += Duration::from_millis(1);
        if !moved {
            a.on_timeout(now);
            b.on_timeout(now);
        }
    }
    assert!(
        got_b == msg_a,
        "A to B: {} of {} bytes",
        got_b.len(),
        msg_a.len()
    );
    assert!(
        got_a == msg_b,
        "B to A: {} of {} bytes",
        got_a.len(),
        msg_b.len()
    );
    assert_eq!(a.stats().retrans_segs + b.stats().retrans_segs, 0);
}

/// Delivers everything `src` sends at `now` to `dst`, and what `dst` can read into `got`.
/// Returns true if a segment moved.
fn pump(src: &mut Tcb, dst: &mut Tcb, now: Instant, got: &mut Vec<u8>) -> bool {
    let segs = out(src, now);
    for (s, payload) in &segs {
        dst.on_segment(now, &to_incoming(s, payload));
    }
    let mut buf = [0u8; 65536];
    while let Ok(n) = dst.recv(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    !segs.is_empty()
}

fn to_incoming<'a>(s: &Outgoing, payload: &'a [u8]) -> Incoming<'a> {
    Incoming {
        seq: s.seq,
        ack: s.ack,
        flags: s.flags,
        window: s.window,
        options: s.options.clone(),
        payload,
    }
}

#[test]
fn sack_blocks_outside_the_window_are_ignored() {
    let config = TcpConfig {
        sack: true,
        mss: 100,
        ..plain()
    };
    let options = Options {
        mss: Some(100),
        sack_permitted: true,
        ..Options::default()
    };
    let mut tcb = established_with(config, ISS, IRS, options);
    tcb.send(&[9u8; 1000]).unwrap();
    let first = out(&mut tcb, t(20));
    assert_eq!(first.len(), 10);
    let una = ISS + 1;
    let max = una + 1000;
    // Blocks above SND.MAX, below SND.UNA, straddling SND.MAX, and inverted (RFC 2018 / Linux
    // tcp_is_sackblock_valid): none may mark data as received.
    let bogus = [
        (max + 100, max + 500),
        (una.wrapping_sub(5000), una.wrapping_sub(1000)),
        (una + 500, max + 1),
        (una + 600, una + 200),
        (una.wrapping_add(0x8000_0000), una.wrapping_add(0x8000_0100)),
    ];
    for (i, (l, r)) in bogus.into_iter().enumerate() {
        let mut ack = seg(Flags::ACK, IRS + 1, una);
        ack.options.sack_blocks.push((SeqNum(l), SeqNum(r)));
        tcb.on_segment(t(30 + i as u64), &ack);
    }
    // Recovery and timeouts then resend every byte the peer did not acknowledge, ACK by
    // ACK: nothing is skipped as SACKed. (A peer acknowledging only what it received again.)
    let mut covered = std::collections::BTreeSet::new();
    let mut acked = una;
    let mut now = t(40);
    for _ in 0..1000 {
        if acked == max {
            break;
        }
        let segs = out(&mut tcb, now);
        if segs.is_empty() {
            now = tcb.poll_timeout().expect("a timer is armed").max(now);
            tcb.on_timeout(now);
            continue;
        }
        for (s, _) in &segs {
            for k in 0..s.payload_len as u32 {
                covered.insert(s.seq.get().wrapping_add(k).wrapping_sub(una));
            }
        }
        while acked != max && covered.contains(&acked.wrapping_sub(una)) {
            acked += 1;
        }
        now += Duration::from_millis(10);
        tcb.on_segment(now, &seg(Flags::ACK, IRS + 1, acked));
    }
    assert_eq!(acked, max, "resent: {covered:?}");
    assert_eq!(tcb.send_queue_len(), 0);
    assert_eq!(tcb.state(), State::Established);
}

// ----- timestamps -----

#[test]
fn timestamps_going_backwards_are_dropped_by_paws_but_a_rst_still_resets() {
    let config = TcpConfig {
        timestamps: true,
        ..plain()
    };
    let options = Options {
        mss: Some(1460),
        timestamps: Some(Timestamps {
            tsval: 1_000_000,
            tsecr: 0,
        }),
        ..Options::default()
    };
    let mut tcb = established_with(config, ISS, IRS, options);
    let ts = |tsval| Options {
        timestamps: Some(Timestamps { tsval, tsecr: 0 }),
        ..Options::default()
    };
    let mut fresh = data(IRS + 1, ISS + 1, b"new");
    fresh.options = ts(1_000_010);
    tcb.on_segment(t(20), &fresh);
    assert_eq!(tcb.recv_available(), 3);
    // RFC 7323 5.3 R1: TSval older than TS.Recent: an old duplicate, dropped with an ACK.
    let mut old = data(IRS + 4, ISS + 1, b"old");
    old.options = ts(999_000);
    tcb.on_segment(t(30), &old);
    assert_eq!(tcb.recv_available(), 3, "PAWS dropped the data");
    let ack = out(&mut tcb, t(30)).pop().unwrap().0;
    assert_eq!(ack.ack, SeqNum(IRS + 4));
    assert_eq!(tcb.stats().dropped_unacceptable, 1);
    // A TSval that wrapped by more than 2^31 is "older" too.
    old.options = ts(1_000_010u32.wrapping_add(0x8000_0001));
    tcb.on_segment(t(40), &old);
    assert_eq!(tcb.recv_available(), 3);
    // RFC 7323 5.3: PAWS does not apply to RST (5961 still requires the exact sequence).
    let mut rst = seg(Flags::RST, IRS + 4, 0);
    rst.options = ts(5);
    tcb.on_segment(t(50), &rst);
    assert_eq!(tcb.error(), Some(TcpError::ConnectionReset));
}

// ----- options lying about sizes -----

#[test]
fn mss_option_of_1_is_raised_to_linux_tcp_min_mss_88() {
    let options = Options {
        mss: Some(1),
        ..Options::default()
    };
    let mut tcb = established_with(plain(), ISS, IRS, options);
    assert_eq!(tcb.mss().get(), 88);
    tcb.send(&[0u8; 1000]).unwrap();
    let sent = out(&mut tcb, t(20));
    assert!(
        sent.iter()
            .all(|(s, _)| s.payload_len <= 88 && s.payload_len > 0)
    );
    // 1000 bytes in at most 12 segments, not 1000: no tiny-segment amplification.
    assert_eq!(sent.len(), 10, "initial window of 10 segments");
}

#[test]
fn mss_option_of_65535_is_clamped_to_our_own_mss_from_the_mtu() {
    let options = Options {
        mss: Some(65535),
        ..Options::default()
    };
    let mut tcb = established_with(plain(), ISS, IRS, options);
    assert_eq!(tcb.mss().get(), 1460);
    tcb.send(&[0u8; 5000]).unwrap();
    assert!(
        out(&mut tcb, t(20))
            .iter()
            .all(|(s, _)| s.payload_len <= 1460)
    );
}

#[test]
fn window_scale_above_14_is_used_as_14() {
    // The wire parser clamps (RFC 7323 2.3: "MUST use 14"); the TCB clamps again if given
    // more. The peer's later window field of 1 then means 1 << 14 bytes, not 1 << 15.
    let config = TcpConfig {
        window_scaling: true,
        ..plain()
    };
    let options = Options {
        mss: Some(1460),
        window_scale: Some(15),
        ..Options::default()
    };
    let mut tcb = established_with(config, ISS, IRS, options);
    tcb.send(&[3u8; 100_000]).unwrap();
    let first: usize = out(&mut tcb, t(20))
        .iter()
        .map(|(s, _)| s.payload_len)
        .sum();
    let mut ack = seg(Flags::ACK, IRS + 1, ISS + 1 + first as u32);
    ack.window = 1;
    tcb.on_segment(t(30), &ack);
    let next: usize = out(&mut tcb, t(30))
        .iter()
        .map(|(s, _)| s.payload_len)
        .sum();
    assert!(
        next > 0 && next <= 1 << 14,
        "{next} bytes into a window of 1 << 14"
    );
}

#[test]
fn option_lists_that_overflow_the_header_are_rejected_and_counted() {
    use etherparse::PacketBuilder;
    let (mut s, _) = lone_server();
    let syn = |options: &[u8]| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(two_shards::MAC_C.0, two_shards::MAC_S.0)
            .ipv4(two_shards::IP_C.octets(), two_shards::IP_S.octets(), 64)
            .tcp(4000, 80, 1, 65535)
            .syn()
            .options_raw(options)
            .unwrap()
            .write(&mut f, &[])
            .unwrap();
        f
    };
    // MSS whose length runs past the option area; SACK claiming 34 bytes in 8; a length of
    // 0; a timestamp cut off by the header's end.
    let bad: [&[u8]; 4] = [
        &[1, 1, 1, 1, 1, 1, 2, 4],
        &[5, 34, 0, 0, 0, 0, 0, 0],
        &[1, 1, 8, 0, 0, 0, 0, 0],
        &[1, 1, 1, 1, 8, 10, 0, 0],
    ];
    for options in bad {
        s.handle_frame(t(1), &syn(options), RxOffload::default());
    }
    let mut out = VecTransmit::default();
    s.poll_transmit(t(1), &mut out);
    assert!(out.frames.is_empty(), "no SYN-ACK to a malformed SYN");
    let st = s.stats();
    assert_eq!(st.tcp.in_errs, 4);
    assert_eq!(st.tcp_drops.get(shardnet::wire::Error::BadOption), 4);
    assert_eq!(s.tcp().request_count(), 0);
    // A data offset beyond the segment is malformed as well, and a well-formed SYN still works.
    let mut f = syn(&[]);
    f[14 + 20 + 12] = 0xf0; // data offset 15 words, 60 bytes, in a 20-byte segment
    s.handle_frame(t(2), &f, RxOffload::default());
    assert_eq!(s.stats().tcp.in_errs, 5);
    s.handle_frame(t(3), &syn(&[2, 4, 5, 0xb4]), RxOffload::default());
    let mut out = VecTransmit::default();
    s.poll_transmit(t(3), &mut out);
    assert_eq!(out.frames.len(), 1);
    let h = tcp_header(&out.frames[0]);
    assert!(h.syn && h.ack, "SYN-ACK");
}

/// The server shard of `support/two_shards.rs` alone, listening on port 80, with the client
/// (198.18.0.1) in its ARP cache (learned from the client's ARP request) and its own
/// gratuitous ARP sent: frames built by the test go straight into `handle_frame`.
fn lone_server() -> (shardnet::shard::Shard, shardnet::shard::tcp::ListenHandle) {
    use shardnet::wire::{EthernetAddress, arp, ethernet};
    let mut s = two_shards::shard(two_shards::MAC_S, two_shards::IP_S);
    let l = s.tcp().listen(80, 16).unwrap();
    let req = arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: two_shards::MAC_C,
        source_protocol_addr: two_shards::IP_C,
        target_hardware_addr: EthernetAddress::ZERO,
        target_protocol_addr: two_shards::IP_S,
    };
    let mut f = vec![0u8; ethernet::HEADER_LEN + req.buffer_len()];
    ethernet::Repr {
        src_addr: two_shards::MAC_C,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: ethernet::EtherType::Arp,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    req.emit(&mut arp::Packet::new_unchecked(
        &mut f[ethernet::HEADER_LEN..],
    ));
    s.handle_frame(t(0), &f, RxOffload::default());
    let mut sink = VecTransmit::default();
    s.poll_transmit(t(0), &mut sink);
    assert_eq!(
        s.arp_cache().peek(two_shards::IP_C),
        Some(two_shards::MAC_C)
    );
    (s, l)
}

/// The TCP header of a frame the shard sent.
fn tcp_header(frame: &[u8]) -> etherparse::TcpHeader {
    let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP: {frame:?}")
    };
    t.to_header()
}

// ----- peers that stop cooperating -----

#[test]
fn a_peer_that_never_acks_gets_backed_off_retransmissions_then_etimedout() {
    let config = plain();
    let mut tcb = established(config);
    tcb.send(b"hello?").unwrap();
    out(&mut tcb, t(20));
    let sent = run_timers(&mut tcb, t(20), t(3 * 3600 * 1000));
    let times: Vec<Instant> = sent.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        times.len(),
        config.retries as usize,
        "tcp_retries2 retransmissions"
    );
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "backoff never shrinks: {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g <= config.rto.max),
        "capped at RTO max: {gaps:?}"
    );
    assert_eq!(*gaps.last().unwrap(), config.rto.max);
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(tcb.error(), Some(TcpError::TimedOut));
    assert_eq!(tcb.send(b"x"), Err(SendError::Failed(TcpError::TimedOut)));
    let mut buf = [0u8; 4];
    assert_eq!(
        tcb.recv(&mut buf),
        Err(RecvError::Failed(TcpError::TimedOut))
    );
    // Linux with tcp_retries2 = 15 gives up after about 924.6 s.
    let last = *times.last().unwrap();
    assert!(last > t(800_000) && last < t(1_000_000), "{last:?}");
}

/// A connection whose peer closed its window: `answer` decides whether the peer answers
/// probes (with window 0). Returns the probe times up to `until` and the TCB.
fn zero_window(answer: bool, close: bool, until_ms: u64) -> (Vec<Instant>, Tcb) {
    let config = TcpConfig {
        send_buffer: 8192,
        ..plain()
    };
    let mut tcb = established(config);
    tcb.send(&[5u8; 1000]).unwrap();
    out(&mut tcb, t(15));
    let mut zero = seg(Flags::ACK, IRS + 1, ISS + 1001);
    zero.window = 0;
    tcb.on_segment(t(20), &zero);
    // The application keeps writing until the buffer is full: EAGAIN, memory bounded.
    let mut written = 0;
    while let Ok(n) = tcb.send(&[6u8; 4096]) {
        written += n;
    }
    assert_eq!(tcb.send(b"x"), Err(SendError::WouldBlock));
    assert!(written <= 8192 && tcb.buffer_memory() <= 2 * 8192);
    if close {
        tcb.close(t(20));
    }
    assert!(
        out(&mut tcb, t(20)).is_empty(),
        "nothing fits a zero window"
    );
    let mut probes = Vec::new();
    let mut now = t(20);
    while let Some(at) = tcb.poll_timeout() {
        let at = at.max(now);
        if at > t(until_ms) {
            break;
        }
        now = at;
        tcb.on_timeout(now);
        for (s, _) in out(&mut tcb, now) {
            assert_eq!(
                s.payload_len, 0,
                "a probe carries no data into a zero window"
            );
            probes.push(now);
            if answer {
                tcb.on_segment(now, &zero);
            }
        }
        assert!(tcb.buffer_memory() <= 2 * 8192);
    }
    (probes, tcb)
}

#[test]
fn zero_window_forever_answered_keeps_probing_with_backoff_while_the_application_holds_it() {
    // RFC 1122 4.2.2.17 / Linux tcp_probe_timer: as long as the receiver answers the probes,
    // the connection stays open; the probes back off to the RTO maximum (120 s).
    let (probes, tcb) = zero_window(true, false, 4 * 3600 * 1000);
    assert!(probes.len() > 100, "{} probes in 4 h", probes.len());
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    assert_eq!(*gaps.last().unwrap(), Duration::from_secs(120));
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(tcb.stats().window_probes, probes.len() as u64);
}

#[test]
fn zero_window_peer_that_stops_answering_times_out_after_tcp_retries2_probes() {
    let (probes, tcb) = zero_window(false, false, 4 * 3600 * 1000);
    assert_eq!(probes.len(), plain().retries as usize);
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(tcb.error(), Some(TcpError::TimedOut));
}

#[test]
fn zero_window_forever_on_a_closed_socket_ends_after_tcp_orphan_retries() {
    // Linux tcp_probe_timer: an orphan is given up after tcp_orphan_retries (8) backoffs even
    // while the peer answers, so a receiver cannot pin it forever.
    let (probes, tcb) = zero_window(true, true, 4 * 3600 * 1000);
    assert_eq!(probes.len(), 8, "{probes:?}");
    assert_eq!(tcb.state(), State::Closed);
    assert!(tcb.is_closed());
}

// ----- SYN flood over a live transfer -----

#[test]
fn syn_flood_neither_stalls_a_live_transfer_nor_keeps_a_new_client_out() {
    use etherparse::PacketBuilder;
    use two_shards::{C, S};
    let mut sim = two_shards::net(21);
    sim.wire.set_impairments(shardnet_memory::Impairments {
        delay: Duration::from_millis(1),
        bandwidth: std::num::NonZeroU64::new(10_000_000),
        ..shardnet_memory::Impairments::NONE
    });
    let l = sim.nodes[S].shard.tcp().listen(80, 64).unwrap();
    // The live connection, before the flood.
    let now = sim.now();
    let c = sim.nodes[C]
        .shard
        .tcp_connect(now, two_shards::server(80))
        .unwrap();
    let mut s = None;
    assert!(two_shards::run(&mut sim, 5, |sim| {
        s = s.or_else(|| sim.nodes[S].shard.tcp().accept(l).ok());
        s.is_some()
    }));
    let s = s.unwrap();
    let usage_before = sim.nodes[S].shard.tcp_endpoints().usage();
    // 20,000 spoofed SYNs from hosts that do not exist (198.18.0.100-199, random ports), 100 per
    // instant, while 2 MB flow from the client to the server and a second client connects.
    let msg: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut sent, mut got) = (0, Vec::new());
    let mut flood = 0u32;
    let mut frame = Vec::new();
    let mut second: Option<shardnet::shard::tcp::TcpHandle> = None;
    let mut second_accepted = false;
    let mut got_when_flood_ended = None;
    let mut buf = vec![0u8; 65536];
    let done = two_shards::run(&mut sim, 120, |sim| {
        let now = sim.now();
        for _ in 0..100 {
            if flood == 20_000 {
                break;
            }
            let src = [198, 18, 0, 100 + (flood % 100) as u8];
            let port = 1024 + (flood.wrapping_mul(7919) % 60000) as u16;
            frame.clear();
            PacketBuilder::ethernet2([0x02, 0x66, 0, 0, 0, src[3]], two_shards::MAC_S.0)
                .ipv4(src, two_shards::IP_S.octets(), 64)
                .tcp(port, 80, flood.wrapping_mul(2_654_435_761), 65535)
                .syn()
                .write(&mut frame, &[])
                .unwrap();
            sim.nodes[S]
                .shard
                .handle_frame(now, &frame, RxOffload::default());
            flood += 1;
            if flood == 20_000 {
                got_when_flood_ended = Some(got.len());
            }
        }
        if flood >= 10_000 && second.is_none() {
            second = sim.nodes[C]
                .shard
                .tcp_connect(now, two_shards::server(80))
                .ok();
        }
        if let Ok(h) = sim.nodes[S].shard.tcp().accept(l) {
            // Flood requests never complete: the only connection to accept is the client's.
            assert_eq!(
                sim.nodes[S].shard.tcp().get(h).unwrap().remote().ip(),
                &two_shards::IP_C
            );
            second_accepted = true;
        }
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
        got.len() == msg.len() && flood == 20_000 && second_accepted
    });
    assert!(
        done,
        "{} of {} bytes, {flood} SYNs, second client accepted: {second_accepted}",
        got.len(),
        msg.len()
    );
    assert!(got == msg, "the transfer's bytes are intact");
    let overlap = got_when_flood_ended.unwrap();
    assert!(
        overlap > 0 && overlap < msg.len(),
        "the flood ran during the transfer: {overlap}"
    );
    eprintln!("syn flood: {}", sim.nodes[S].shard.stats().render(false));
    let st = sim.nodes[S].shard.stats();
    let e = sim.nodes[S].shard.tcp_endpoints();
    // The SYN queue overflowed into SYN cookies (Linux tcp_syncookies = 1): no state per SYN.
    assert!(st.tcp_ext.syncookies_sent > 0, "{}", st.render(false));
    assert!(
        e.request_count() <= 64,
        "{} requests held",
        e.request_count()
    );
    let usage = e.usage();
    assert!(usage.requests <= 64 + usage_before.requests, "{usage:?}");
    assert!(e.connection_count() <= 2 + 64);
    assert_eq!(
        sim.nodes[C]
            .shard
            .tcp()
            .get(second.unwrap())
            .unwrap()
            .state(),
        State::Established
    );
}

/// Data in flight when the peer shrinks its window to zero (it acknowledges part of the data
/// and offers no window, RFC 9293 3.8.6.2.2 "SHOULD NOT shrink"): the retransmissions become
/// the window probes. `answer`: the peer answers each with its ACK and window 0.
fn shrunk_window(answer: bool) -> (Vec<Instant>, Option<Instant>, Tcb) {
    let mut tcb = established(plain());
    tcb.send(&[4u8; 3000]).unwrap();
    assert_eq!(out(&mut tcb, t(15)).len(), 3);
    let mut zero = seg(Flags::ACK, IRS + 1, ISS + 1 + 1000);
    zero.window = 0;
    tcb.on_segment(t(20), &zero);
    let mut sent = Vec::new();
    let mut closed_at = None;
    let mut now = t(20);
    while let Some(at) = tcb.poll_timeout() {
        now = at.max(now);
        if now > t(4 * 3600 * 1000) {
            break;
        }
        tcb.on_timeout(now);
        if tcb.state() == State::Closed && closed_at.is_none() {
            closed_at = Some(now);
        }
        for _ in out(&mut tcb, now) {
            sent.push(now);
            if answer {
                tcb.on_segment(now, &zero);
            }
        }
    }
    (sent, closed_at, tcb)
}

#[test]
fn shrunk_zero_window_with_data_in_flight_never_times_out_while_the_peer_answers() {
    // Linux tcp_retransmit_timer: "Receiver dastardly shrinks window. Our retransmits become
    // zero probes, but we should not timeout this connection": they do not count toward
    // tcp_retries2 while the peer answers.
    let (sent, _, tcb) = shrunk_window(true);
    assert!(sent.len() > 100, "{} retransmissions in 4 h", sent.len());
    assert_eq!(tcb.state(), State::Established);
}

#[test]
fn shrunk_zero_window_with_a_silent_peer_times_out_after_twice_the_rto_maximum() {
    // Linux tcp_rtx_probe0_timed_out: given up once nothing was received for 2 * TCP_RTO_MAX
    // (240 s) while retransmitting.
    let (sent, closed_at, tcb) = shrunk_window(false);
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(tcb.error(), Some(TcpError::TimedOut));
    // The last answer came at 20 ms; the check runs when a backed-off (<= 120 s) timer fires.
    let closed_at = closed_at.unwrap();
    assert!(
        closed_at > t(240_020) && closed_at < t(380_000),
        "{closed_at:?}"
    );
    assert!(sent.len() >= 5, "{sent:?}");
}

#[test]
fn syn_with_window_scale_above_14_is_answered_as_14_and_counted() {
    use etherparse::PacketBuilder;
    let (mut s, l) = lone_server();
    let frame = |flags: u8, seq: u32, ack: u32, options: &[u8]| {
        let mut f = Vec::new();
        let b = PacketBuilder::ethernet2(two_shards::MAC_C.0, two_shards::MAC_S.0)
            .ipv4(two_shards::IP_C.octets(), two_shards::IP_S.octets(), 64)
            .tcp(4000, 80, seq, 1);
        let b = if flags == 0 { b.syn() } else { b.ack(ack) };
        b.options_raw(options).unwrap().write(&mut f, &[]).unwrap();
        f
    };
    // SYN: MSS 1460, NOP, Window Scale 15.
    let syn = frame(0, 100, 0, &[2, 4, 5, 0xb4, 1, 3, 3, 15]);
    s.handle_frame(t(1), &syn, RxOffload::default());
    let mut out = VecTransmit::default();
    s.poll_transmit(t(1), &mut out);
    assert_eq!(out.frames.len(), 1);
    let synack = tcp_header(&out.frames[0]);
    assert!(synack.syn && synack.ack, "SYN-ACK");
    assert_eq!(
        s.stats().tcp_ext.window_scale_clamped,
        1,
        "TCPWindowScaleClamped"
    );
    let iss = synack.sequence_number;
    // The handshake completes; the peer's window field 1 means 1 << 14 bytes.
    s.handle_frame(t(2), &frame(1, 101, iss + 1, &[]), RxOffload::default());
    let h = s.tcp().accept(l).unwrap();
    let tcb = s.tcp().get_mut(h).unwrap();
    tcb.send(&vec![1u8; 100_000]).unwrap();
    let mut out = VecTransmit::default();
    s.poll_transmit(t(3), &mut out);
    let bytes: usize = out
        .frames
        .iter()
        .map(|f| {
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            match p.transport {
                Some(etherparse::TransportSlice::Tcp(t)) => t.payload().len(),
                _ => 0,
            }
        })
        .sum();
    assert!(
        bytes > 0 && bytes <= 1 << 14,
        "{bytes} bytes in flight for a window of 1 << 14"
    );
    // A well-formed shift (14) is not counted.
    let mut other = frame(0, 100, 0, &[2, 4, 5, 0xb4, 1, 3, 3, 14]);
    other[14 + 20 + 1] = 0xa1; // source port 4001
    let tcp = &mut other[14 + 20..];
    tcp[16] = 0;
    tcp[17] = 0;
    let sum = etherparse::TcpHeader::from_slice(tcp)
        .unwrap()
        .0
        .calc_checksum_ipv4_raw(two_shards::IP_C.octets(), two_shards::IP_S.octets(), &[])
        .unwrap();
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    s.handle_frame(t(4), &other, RxOffload::default());
    assert_eq!(s.stats().tcp.in_errs, 0);
    assert_eq!(s.stats().tcp_ext.window_scale_clamped, 1);
}
