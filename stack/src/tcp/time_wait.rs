//! Compact TIME-WAIT (Linux `inet_timewait_sock` / `tcp_timewait_sock`).
//!
//! A connection that the application has let go of and that reached TIME-WAIT has nothing left
//! to send and nothing to deliver; all it still does for 2*MSL is answer what the peer sends
//! (RFC 9293 3.10.7.4, TIME-WAIT). The shard then frees its full [`Tcb`] (buffers, congestion
//! state, scoreboard: kilobytes) and keeps a [`TimeWait`] of a few dozen bytes in its place:
//! the 4-tuple, both sequence numbers, the window to advertise and the timestamp state.
//!
//! What an entry answers, following Linux `tcp_timewait_state_process`:
//! - a retransmitted FIN (our ACK of it was lost): ACK it again and restart 2*MSL (RFC 9293
//!   3.10.7.4 "eighth");
//! - a RST: ignored (RFC 1337 "TIME-WAIT assassination"; Linux with `tcp_rfc1337 = 1`);
//! - an in-window bare ACK: restarts 2*MSL, no answer (Linux);
//! - a SYN newer than the old connection (RFC 6191: a greater timestamp, or a greater sequence
//!   number): a new incarnation may start, if a listener takes it;
//! - anything else: an ACK (rate-limited like Linux `tcp_oow_rate_limited` for segments that
//!   carry no data, so that two ends cannot loop on ACKs).
//!
//! `tcp_tw_recycle` (drop TIME-WAIT early based on per-host timestamps) is deliberately not
//! offered: it broke clients behind NAT, whose hosts' timestamp clocks differ, and Linux removed
//! it in 4.12. The active-open reuse of a TIME-WAIT 4-tuple (`tcp_tw_reuse`) is offered, see
//! [`TimeWait::reusable`].

use super::segment::{Flags, Incoming, Options, Outgoing, Timestamps};
use super::seq::{SeqNum, Window};
use super::state::State;
use super::tcb::Tcb;
use crate::time::{Duration, Instant};
use core::net::SocketAddrV4;

/// RFC 7323 5.5: PAWS does not reject segments once TS.Recent is older than 24 days.
const PAWS_IDLE_SECS: u32 = 24 * 24 * 3600;

/// Linux `tcp_invalid_ratelimit`: at most one ACK to data-less out-of-window segments per 500 ms.
const OOW_ACK_INTERVAL_MS: u32 = 500;

/// A connection in TIME-WAIT, reduced to what it needs to answer the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWait {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// Our next sequence number (after our FIN).
    snd_nxt: SeqNum,
    /// The peer's next sequence number (after its FIN).
    rcv_nxt: SeqNum,
    /// The window field to advertise (already scaled).
    window: u16,
    /// Timestamps were negotiated.
    ts_ok: bool,
    /// TS.Recent, the peer's last timestamp.
    ts_recent: u32,
    /// When TS.Recent was taken, in whole seconds (Linux `tw_ts_recent_stamp`).
    ts_recent_secs: u32,
    /// Our timestamp clock's offset (our TSval = milliseconds + offset).
    ts_offset: u32,
    /// When we last sent a rate-limited ACK, in milliseconds (wrapping).
    last_oow_ack_ms: u32,
    /// 2*MSL in milliseconds.
    timeout_ms: u32,
}

/// What to do with a segment that arrived for a TIME-WAIT entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to send.
    Drop,
    /// Nothing to send; restart the 2*MSL timer.
    Restart,
    /// Send this ACK.
    Ack {
        /// The ACK.
        reply: Outgoing,
        /// Restart the 2*MSL timer as well.
        restart: bool,
    },
    /// RFC 6191: a new SYN that may open a new incarnation of the connection, with this ISS
    /// (past everything the old one sent: Linux `tw_snd_nxt + 65535 + 2`). If no listener takes
    /// it, answer with [`TimeWait::ack`] instead, as Linux does.
    NewIncarnation {
        /// The initial send sequence number for the new connection.
        iss: SeqNum,
    },
}

fn secs(now: Instant) -> u32 {
    (now.as_millis() / 1000) as u32
}

impl TimeWait {
    /// The compact form of `tcb`, if it is in TIME-WAIT; the entry lives until `now + 2*MSL`
    /// (restarted from now: the ACK of the peer's FIN was just sent).
    pub fn from_tcb(tcb: &Tcb, now: Instant) -> Option<TimeWait> {
        if tcb.state != State::TimeWait {
            return None;
        }
        let promised = tcb.rcv_adv.distance_from(tcb.rcv_nxt) as usize;
        let window = Window::new_clamped(promised).to_field(tcb.rcv_wscale);
        let timeout_ms =
            u32::try_from(tcb.config.msl.saturating_mul(2).as_millis()).unwrap_or(u32::MAX);
        let now_ms = now.as_millis() as u32;
        Some(TimeWait {
            local: tcb.local,
            remote: tcb.remote,
            snd_nxt: tcb.snd_max,
            rcv_nxt: tcb.rcv_nxt,
            window,
            ts_ok: tcb.ts_ok,
            ts_recent: tcb.ts_recent,
            ts_recent_secs: secs(tcb.ts_recent_at),
            ts_offset: tcb.ts_offset,
            last_oow_ack_ms: now_ms.wrapping_sub(OOW_ACK_INTERVAL_MS),
            timeout_ms,
        })
    }

    /// Our address.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// How long the entry lives after its last restart (2*MSL).
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout_ms))
    }

    /// RFC 6191 / Linux: the ISS of a new incarnation on this 4-tuple, beyond every sequence
    /// number the old one used (`tw_snd_nxt + 65535 + 2`).
    pub fn next_iss(&self) -> SeqNum {
        self.snd_nxt + 65537u32
    }

    /// Linux `tcp_twsk_unique` with `tcp_tw_reuse`: a new active open may take this 4-tuple
    /// now, because timestamps were in use (the peer's PAWS rejects old duplicates of the old
    /// connection) and the seconds clock has moved on since the last one (Linux: "> 1 s").
    pub fn reusable(&self, now: Instant) -> bool {
        // Linux `tcp_twsk_unique`: `time_after32(ktime_get_seconds(), tw_ts_recent_stamp)`,
        // the seconds clock has moved past the one of the last timestamp, so the new SYN's
        // timestamps are surely newer than any old duplicate's.
        self.ts_ok && secs(now).wrapping_sub(self.ts_recent_secs) as i32 > 0
    }

    /// RFC 9293 3.10.7.4, TIME-WAIT: the ACK this entry sends, `<SEQ=SND.NXT><ACK=RCV.NXT>
    /// <CTL=ACK>`, with timestamps if they were negotiated.
    pub fn ack(&self, now: Instant) -> Outgoing {
        let mut options = Options::default();
        if self.ts_ok {
            options.timestamps = Some(Timestamps {
                tsval: (now.as_millis() as u32).wrapping_add(self.ts_offset),
                tsecr: self.ts_recent,
            });
        }
        Outgoing {
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            window: self.window,
            options,
            payload_offset: 0,
            payload_len: 0,
        }
    }

    /// Linux `tcp_oow_rate_limited`: data segments without SYN are answered always; others at
    /// most once per 500 ms.
    fn rate_limited(&mut self, now: Instant, seg: &Incoming<'_>) -> bool {
        if seg.seg_len() != 0 && !seg.flags.syn() {
            return false;
        }
        let now_ms = now.as_millis() as u32;
        if now_ms.wrapping_sub(self.last_oow_ack_ms) < OOW_ACK_INTERVAL_MS {
            return true;
        }
        self.last_oow_ack_ms = now_ms;
        false
    }

    /// A segment arrived for this entry (Linux `tcp_timewait_state_process`, TIME-WAIT part).
    pub fn on_segment(&mut self, now: Instant, seg: &Incoming<'_>) -> Verdict {
        let ts = seg.options.timestamps.filter(|_| self.ts_ok);
        // RFC 7323 5.3 R1 (PAWS): a timestamp older than TS.Recent marks an old duplicate
        // (unless TS.Recent is older than 24 days, RFC 7323 5.5).
        let paws_reject = !seg.flags.rst()
            && ts.is_some_and(|t| {
                (t.tsval.wrapping_sub(self.ts_recent) as i32) < 0
                    && secs(now).wrapping_sub(self.ts_recent_secs) < PAWS_IDLE_SECS
            });
        if !paws_reject && seg.seq == self.rcv_nxt && (seg.seg_len() == 0 || seg.flags.rst()) {
            if seg.flags.rst() {
                // RFC 1337 (TIME-WAIT assassination hazards), remedy TW2: ignore RST segments
                // in TIME-WAIT (Linux with tcp_rfc1337 = 1).
                return Verdict::Drop;
            }
            // An in-window bare ACK: Linux records its timestamp and restarts TIME-WAIT,
            // without answering.
            if let Some(t) = ts {
                self.ts_recent = t.tsval;
                self.ts_recent_secs = secs(now);
            }
            return Verdict::Restart;
        }
        // RFC 6191 section 2 (and RFC 1122 4.2.2.13): a SYN may reopen the connection from
        // TIME-WAIT if its timestamp is greater than TS.Recent, or, without timestamps, if its
        // sequence number is greater than the last one seen (Linux accepts either).
        if seg.flags.syn()
            && !seg.flags.rst()
            && !seg.flags.ack()
            && !paws_reject
            && (seg.seq.after(self.rcv_nxt)
                || ts.is_some_and(|t| (self.ts_recent.wrapping_sub(t.tsval) as i32) < 0))
        {
            return Verdict::NewIncarnation {
                iss: self.next_iss(),
            };
        }
        if seg.flags.rst() {
            // RFC 1337: never let a RST end TIME-WAIT; an out-of-window one is dropped anyway.
            return Verdict::Drop;
        }
        // RFC 9293 3.10.7.4: "The only thing that can arrive in this state is a retransmission
        // of the remote FIN. Acknowledge it, and restart the 2 MSL timeout." Linux restarts the
        // timer for every ACK-bearing or PAWS-rejected segment; an ACK-less SYN with an old
        // sequence number may be a new connection's and does not restart it.
        let restart = paws_reject || seg.flags.ack() || seg.flags.fin();
        if self.rate_limited(now, seg) {
            return if restart {
                Verdict::Restart
            } else {
                Verdict::Drop
            };
        }
        Verdict::Ack {
            reply: self.ack(now),
            restart,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::TcpConfig;
    use core::net::Ipv4Addr;

    fn a(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, last), port)
    }

    fn entry(ts_ok: bool) -> TimeWait {
        TimeWait {
            local: a(1, 80),
            remote: a(2, 40000),
            snd_nxt: SeqNum(5000),
            rcv_nxt: SeqNum(9000),
            window: 1000,
            ts_ok,
            ts_recent: 700,
            ts_recent_secs: 10,
            ts_offset: 3,
            last_oow_ack_ms: 0,
            timeout_ms: 60_000,
        }
    }

    fn seg(seq: u32, flags: Flags, ts: Option<u32>) -> Incoming<'static> {
        Incoming {
            seq: SeqNum(seq),
            ack: SeqNum(5000),
            flags,
            window: 100,
            options: Options {
                timestamps: ts.map(|tsval| Timestamps { tsval, tsecr: 1 }),
                ..Options::default()
            },
            payload: &[],
        }
    }

    const T: Instant = Instant::from_millis(10_500);

    #[test]
    fn entry_is_compact() {
        assert!(core::mem::size_of::<TimeWait>() <= 48);
    }

    #[test]
    fn retransmitted_fin_is_acked_and_restarts_the_timer() {
        let mut tw = entry(true);
        let v = tw.on_segment(T, &seg(8999, Flags::FIN | Flags::ACK, Some(710)));
        let Verdict::Ack { reply, restart } = v else {
            panic!("{v:?}")
        };
        assert!(restart);
        assert_eq!(
            (reply.seq, reply.ack, reply.flags),
            (SeqNum(5000), SeqNum(9000), Flags::ACK)
        );
        assert_eq!(reply.window, 1000);
        let ts = reply.options.timestamps.unwrap();
        assert_eq!((ts.tsval, ts.tsecr), (10_503, 700));
        // A second retransmission right after is answered too (FIN is not rate-limited).
        assert!(matches!(
            tw.on_segment(T, &seg(8999, Flags::FIN | Flags::ACK, Some(711))),
            Verdict::Ack { restart: true, .. }
        ));
    }

    #[test]
    fn rst_is_ignored_rfc1337() {
        let mut tw = entry(true);
        assert_eq!(
            tw.on_segment(T, &seg(9000, Flags::RST, None)),
            Verdict::Drop
        );
        assert_eq!(
            tw.on_segment(T, &seg(9000, Flags::RST | Flags::ACK, Some(800))),
            Verdict::Drop
        );
        assert_eq!(tw.on_segment(T, &seg(123, Flags::RST, None)), Verdict::Drop);
    }

    #[test]
    fn in_window_bare_ack_restarts_silently() {
        let mut tw = entry(true);
        assert_eq!(
            tw.on_segment(T, &seg(9000, Flags::ACK, Some(720))),
            Verdict::Restart
        );
        assert_eq!(tw.ts_recent, 720);
    }

    #[test]
    fn out_of_window_segments_get_a_rate_limited_ack() {
        let mut tw = entry(false);
        let s = seg(100, Flags::ACK, None);
        assert!(matches!(tw.on_segment(T, &s), Verdict::Ack { .. }));
        assert_eq!(tw.on_segment(T, &s), Verdict::Restart);
        let later = T + Duration::from_millis(500);
        assert!(matches!(tw.on_segment(later, &s), Verdict::Ack { .. }));
    }

    #[test]
    fn old_timestamp_is_paws_rejected_with_an_ack() {
        let mut tw = entry(true);
        // An old SYN: timestamp behind TS.Recent, though its sequence number is ahead.
        let v = tw.on_segment(T, &seg(20_000, Flags::SYN, Some(600)));
        assert!(matches!(v, Verdict::Ack { restart: true, .. }), "{v:?}");
    }

    #[test]
    fn newer_syn_opens_a_new_incarnation_rfc6191() {
        // With timestamps: a greater TSval, whatever the sequence number.
        let mut tw = entry(true);
        assert_eq!(
            tw.on_segment(T, &seg(10, Flags::SYN, Some(701))),
            Verdict::NewIncarnation {
                iss: SeqNum(5000 + 65537)
            }
        );
        // Without timestamps: a greater sequence number ...
        let mut tw = entry(false);
        assert!(matches!(
            tw.on_segment(T, &seg(9001, Flags::SYN, None)),
            Verdict::NewIncarnation { .. }
        ));
        // ... and not a smaller one (an ACK, without restarting the timer).
        assert!(matches!(
            tw.on_segment(T, &seg(8000, Flags::SYN, None)),
            Verdict::Ack { restart: false, .. }
        ));
    }

    #[test]
    fn reuse_needs_timestamps_and_a_second() {
        let tw = entry(true);
        assert!(!tw.reusable(Instant::from_millis(10_999)));
        assert!(tw.reusable(Instant::from_millis(11_000)));
        assert!(!entry(false).reusable(Instant::from_millis(100_000)));
    }

    #[test]
    fn only_time_wait_tcbs_convert() {
        let tcb = Tcb::connect(
            TcpConfig::default(),
            a(1, 40000),
            a(2, 80),
            1,
            Instant::ZERO,
        );
        assert!(TimeWait::from_tcb(&tcb, Instant::ZERO).is_none());
    }
}
