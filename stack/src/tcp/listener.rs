//! Half-open connections of a listener as compact request entries (Linux `request_sock` /
//! `tcp_request_sock`), not full TCBs.
//!
//! A SYN that a listener takes becomes a [`SynRequest`] of a few dozen bytes: the 4-tuple, both
//! initial sequence numbers and the options the SYN offered. It answers with SYN-ACKs
//! (retransmitted on a timer by the shard) and becomes a full [`Tcb`] only when the final ACK of
//! the three-way handshake arrives ([`SynRequest::into_tcb`]), the way Linux `tcp_check_req`
//! creates the child socket. A SYN flood thus costs a bounded number of small entries (the SYN
//! queue), never buffers.

use super::config::TcpConfig;
use super::segment::{Flags, Incoming, Options, Outgoing, Timestamps};
use super::seq::{SeqNum, WindowScale};
use super::tcb::Tcb;
use crate::time::Instant;
use core::net::SocketAddrV4;

/// A connection request in SYN-RECEIVED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynRequest {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// Our ISS.
    iss: SeqNum,
    /// The peer's ISS.
    irs: SeqNum,
    /// The window field of the peer's SYN (never scaled, RFC 7323 2.2).
    peer_window: u16,
    /// The peer's MSS option (0: none).
    peer_mss: u16,
    /// The peer's window scale option.
    peer_wscale: Option<u8>,
    /// The peer offered SACK.
    peer_sack: bool,
    /// The peer sent timestamps.
    peer_ts: bool,
    /// The peer's last TSval (TS.Recent).
    ts_recent: u32,
    /// Our timestamp clock's offset.
    ts_offset: u32,
    /// SYN-ACK retransmissions so far (Linux `req->num_timeout`).
    retries: u8,
    /// The final ACK arrived but the connection could not be completed yet (accept queue
    /// full, or `TCP_DEFER_ACCEPT` waiting for data): Linux `inet_rsk(req)->acked`.
    acked: bool,
}

/// What to do with a segment that arrived for a [`SynRequest`] (Linux `tcp_check_req`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestVerdict {
    /// Nothing to do.
    Drop,
    /// Send the SYN-ACK again (the peer retransmitted its SYN).
    ResendSynAck,
    /// Send this segment (an ACK for an out-of-window segment, or a RST for a bad ACK) and
    /// keep the request.
    Reply(Outgoing),
    /// Drop the request (an in-window RST, or a SYN: "embryonic reset"); send the RST if any.
    Abort(Option<Outgoing>),
    /// The final ACK: the connection can be created from the request and this segment.
    Complete,
}

impl SynRequest {
    /// A request for `syn` from `remote` to `local`, answered with ISS `iss` and timestamps
    /// offset by `ts_offset`.
    pub fn new(
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        ts_offset: u32,
        syn: &Incoming<'_>,
    ) -> SynRequest {
        let o = &syn.options;
        SynRequest {
            local,
            remote,
            iss,
            irs: syn.seq,
            peer_window: syn.window,
            peer_mss: o.mss.unwrap_or(0),
            peer_wscale: o.window_scale,
            peer_sack: o.sack_permitted,
            peer_ts: o.timestamps.is_some(),
            ts_recent: o.timestamps.map_or(0, |t| t.tsval),
            ts_offset,
            retries: 0,
            acked: false,
        }
    }

    /// The request a valid SYN cookie stands for (Linux `cookie_v4_check` rebuilds it from the
    /// ACK): our ISS `iss` (the cookie), the peer's `irs`, the MSS the cookie encoded, window
    /// scale and SACK from our echoed timestamp, TS.Recent from the ACK's TSval, and the ACK's
    /// window (unscaled: the TCB then takes it from the ACK itself).
    #[allow(clippy::too_many_arguments)]
    pub fn from_cookie(
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        irs: SeqNum,
        ts_offset: u32,
        mss: u16,
        window_scale: Option<u8>,
        sack: bool,
        ts_recent: Option<u32>,
    ) -> SynRequest {
        SynRequest {
            local,
            remote,
            iss,
            irs,
            peer_window: 0,
            peer_mss: mss,
            peer_wscale: window_scale,
            peer_sack: sack,
            peer_ts: ts_recent.is_some(),
            ts_recent: ts_recent.unwrap_or(0),
            ts_offset,
            retries: 0,
            acked: false,
        }
    }

    /// The SYN-ACK for a SYN answered with a cookie (`iss`): without timestamps the cookie has
    /// nowhere to keep window scale and SACK, so they are not offered (Linux
    /// `cookie_v4_init_sequence` + `tcp_clear_options`); with them, our TSval's low bits carry
    /// them (Linux `cookie_init_timestamp`).
    pub fn cookie_syn_ack(&self, config: &TcpConfig, now: Instant) -> Outgoing {
        let mut req = *self;
        if !(config.timestamps && req.peer_ts) {
            req.peer_wscale = None;
            req.peer_sack = false;
        }
        let mut out = req.syn_ack(config, now);
        if let Some(ts) = out.options.timestamps.as_mut() {
            let wscale = req.peer_wscale.filter(|_| config.window_scaling);
            let sack = req.peer_sack && config.sack;
            let clock = now.as_millis() as u32;
            ts.tsval = super::syncookie::encode_timestamp(clock, wscale, sack)
                .wrapping_add(self.ts_offset);
        }
        out
    }

    /// Our address.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// Our ISS.
    pub fn iss(&self) -> SeqNum {
        self.iss
    }

    /// SYN-ACK retransmissions so far.
    pub fn retries(&self) -> u8 {
        self.retries
    }

    /// True once the final ACK arrived without completing the connection.
    pub fn acked(&self) -> bool {
        self.acked
    }

    /// Records that the final ACK arrived but the connection was not created (Linux sets
    /// `inet_rsk(req)->acked`).
    pub fn set_acked(&mut self) {
        self.acked = true;
    }

    /// The SYN-ACK, exactly as a [`Tcb`] made by [`Tcb::accept`] would send it: our MSS, and
    /// window scale, SACK-permitted and timestamps where the SYN offered them and `config`
    /// enables them (RFC 9293 3.10.7.2; RFC 7323 2.2: the window of a SYN is not scaled).
    pub fn syn_ack(&self, config: &TcpConfig, now: Instant) -> Outgoing {
        let mut options = Options {
            mss: Some(config.mss),
            ..Options::default()
        };
        if config.window_scaling && self.peer_wscale.is_some() {
            options.window_scale = Some(WindowScale::for_buffer(config.recv_buffer).shift());
        }
        options.sack_permitted = config.sack && self.peer_sack;
        if config.timestamps && self.peer_ts {
            options.timestamps = Some(Timestamps {
                tsval: (now.as_millis() as u32).wrapping_add(self.ts_offset),
                tsecr: self.ts_recent,
            });
        }
        Outgoing {
            seq: self.iss,
            ack: self.irs + 1u32,
            flags: Flags::SYN | Flags::ACK,
            window: self.window(config),
            options,
            payload_offset: 0,
            payload_len: 0,
        }
    }

    /// The window we advertise in the SYN-ACK.
    fn window(&self, config: &TcpConfig) -> u16 {
        config.recv_buffer.min(0xffff) as u16
    }

    /// The ACK we send for an unacceptable segment: `<SEQ=ISS+1><ACK=IRS+1><CTL=ACK>`.
    fn ack(&self, config: &TcpConfig, now: Instant) -> Outgoing {
        let mut out = self.syn_ack(config, now);
        out.seq = self.iss + 1u32;
        out.flags = Flags::ACK;
        out.options = Options {
            timestamps: out.options.timestamps,
            ..Options::default()
        };
        out
    }

    /// When the next SYN-ACK retransmission is due, `sent_at` being the last one: Linux
    /// `reqsk_timer_handler` doubles `TCP_TIMEOUT_INIT` (1 s) per timeout, up to `TCP_RTO_MAX`.
    pub fn next_timeout(&self, config: &TcpConfig, sent_at: Instant) -> Instant {
        let d = config
            .rto
            .initial
            .saturating_mul(1u32 << u32::from(self.retries.min(16)))
            .min(config.rto.max);
        sent_at + d
    }

    /// The SYN-ACK timer fired (Linux `reqsk_timer_handler` with `syn_ack_recalc`): returns
    /// `(expire, resend)`. Without `defer_accept` (in retransmissions) the request expires after
    /// `synack_retries` and every timeout resends. With it, an acked request (waiting for data)
    /// lives until `defer_accept` timeouts have passed and resends only at the last one, "to give
    /// last chance for data or ACK to create established socket" (Linux).
    pub fn on_timeout(&mut self, config: &TcpConfig, defer_accept: u8) -> (bool, bool) {
        let max = u8::try_from(config.synack_retries).unwrap_or(u8::MAX);
        let (expire, resend) = if defer_accept == 0 {
            (self.retries >= max, true)
        } else {
            (
                self.retries >= max && (!self.acked || self.retries >= defer_accept),
                !self.acked || self.retries >= defer_accept.saturating_sub(1),
            )
        };
        if !expire {
            self.retries = self.retries.saturating_add(1);
        }
        (expire, resend)
    }

    /// RFC 9293 3.10.7.4 "first" for SYN-RECEIVED, Linux `tcp_in_window` over the window we
    /// advertised.
    fn in_window(&self, config: &TcpConfig, seg: &Incoming<'_>) -> bool {
        let start = self.irs + 1u32;
        let end = start + u32::from(self.window(config));
        let seq = seg.seq;
        let end_seq = seg.seq + seg.seg_len();
        seq == start || (end_seq.after(start) && seq.before(end)) || (seq == end && seq == end_seq)
    }

    /// A segment for this request (Linux `tcp_check_req`).
    pub fn on_segment(
        &mut self,
        config: &TcpConfig,
        now: Instant,
        seg: &Incoming<'_>,
    ) -> RequestVerdict {
        let f = seg.flags;
        // A retransmitted SYN: our SYN-ACK was lost. Send it again, echoing the new TSval
        // (Linux refreshes ts_recent and calls inet_rtx_syn_ack).
        if f.syn() && !f.rst() && !f.ack() && seg.seq == self.irs {
            if let Some(ts) = seg.options.timestamps {
                self.ts_recent = ts.tsval;
            }
            return RequestVerdict::ResendSynAck;
        }
        // RFC 9293 3.10.7.4: in SYN-RECEIVED, "If the segment acknowledgment is not acceptable,
        // form a reset segment <SEQ=SEG.ACK><CTL=RST>" (Linux returns the listener, which
        // resets).
        if f.ack() && seg.ack != self.iss + 1u32 && !f.rst() {
            return RequestVerdict::Reply(reset(seg.ack, None));
        }
        // RFC 7323 5.3 (PAWS) and the window test: an unacceptable segment gets an ACK.
        let paws_reject = self.peer_ts
            && config.timestamps
            && !f.rst()
            && seg
                .options
                .timestamps
                .is_some_and(|t| (t.tsval.wrapping_sub(self.ts_recent) as i32) < 0);
        if paws_reject || !self.in_window(config, seg) {
            if f.rst() {
                return RequestVerdict::Drop;
            }
            return RequestVerdict::Reply(self.ack(config, now));
        }
        // RFC 9293 3.10.7.4 "second"/"fourth" (Linux "embryonic_reset"): a RST drops the
        // half-open connection (back to LISTEN); a SYN in the window is answered with a RST and
        // drops it too.
        if f.rst() {
            return RequestVerdict::Abort(None);
        }
        if f.syn() {
            return RequestVerdict::Abort(Some(reset(
                self.iss + 1u32,
                Some(seg.seq + seg.seg_len()),
            )));
        }
        if !f.ack() {
            return RequestVerdict::Drop;
        }
        if let Some(ts) = seg.options.timestamps {
            self.ts_recent = ts.tsval;
        }
        RequestVerdict::Complete
    }

    /// True if `seg`, a final ACK, carries no data (Linux: `end_seq == rcv_isn + 1`), which
    /// `TCP_DEFER_ACCEPT` drops.
    pub fn is_bare_ack(&self, seg: &Incoming<'_>) -> bool {
        seg.seq + seg.seg_len() == self.irs + 1u32
    }

    /// The SYN this request answers, as the state machine's segment (for [`Tcb::accept`]).
    fn syn(&self) -> Incoming<'static> {
        Incoming {
            seq: self.irs,
            ack: SeqNum(0),
            flags: Flags::SYN,
            window: self.peer_window,
            options: Options {
                mss: (self.peer_mss != 0).then_some(self.peer_mss),
                window_scale: self.peer_wscale,
                sack_permitted: self.peer_sack,
                timestamps: self.peer_ts.then_some(Timestamps {
                    tsval: self.ts_recent,
                    tsecr: 0,
                }),
                ..Options::default()
            },
            payload: &[],
        }
    }

    /// The connection, created when the final ACK arrives (Linux `tcp_create_openreq_child`):
    /// a TCB in SYN-RECEIVED whose SYN-ACK has been sent. The caller then hands it the ACK.
    pub fn into_tcb(&self, config: TcpConfig, now: Instant) -> Tcb {
        let mut tcb = self.tcb_shell(config, now);
        self.fill_tcb(&mut tcb, now);
        tcb
    }

    /// [`SynRequest::into_tcb`] in two steps, for a caller that builds the connection where
    /// it will stay: this TCB, not yet filled in ...
    pub(crate) fn tcb_shell(&self, config: TcpConfig, now: Instant) -> Tcb {
        Tcb::passive(config, self.local, self.remote, self.iss.get(), now)
    }

    /// ... and then, in place, what the request kept of the SYN and its SYN-ACK.
    pub(crate) fn fill_tcb(&self, tcb: &mut Tcb, now: Instant) {
        tcb.take_syn(&self.syn(), now);
        tcb.set_ts_offset(self.ts_offset);
        tcb.syn_ack_sent();
    }
}

/// Linux `secs_to_retrans` (with `TCP_TIMEOUT_INIT` 1 s and `TCP_RTO_MAX` 120 s): the
/// `TCP_DEFER_ACCEPT` seconds as the number of SYN-ACK retransmission periods that cover them.
pub fn defer_accept_retransmissions(seconds: u64) -> u8 {
    if seconds == 0 {
        return 0;
    }
    let (mut res, mut timeout, mut period) = (1u8, 1u64, 1u64);
    while seconds > period && res < 255 {
        res += 1;
        timeout = (timeout * 2).min(120);
        period += timeout;
    }
    res
}

/// Linux `retrans_to_secs`: what `getsockopt(TCP_DEFER_ACCEPT)` reports for `retrans`.
pub fn defer_accept_seconds(retrans: u8) -> u64 {
    if retrans == 0 {
        return 0;
    }
    let (mut timeout, mut period) = (1u64, 1u64);
    for _ in 1..retrans {
        timeout = (timeout * 2).min(120);
        period += timeout;
    }
    period
}

fn reset(seq: SeqNum, ack: Option<SeqNum>) -> Outgoing {
    Outgoing {
        seq,
        ack: ack.unwrap_or(SeqNum(0)),
        flags: if ack.is_some() {
            Flags::RST | Flags::ACK
        } else {
            Flags::RST
        },
        window: 0,
        options: Options::default(),
        payload_offset: 0,
        payload_len: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn a(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, last), port)
    }

    fn syn(ts: bool, wscale: bool, sack: bool) -> Incoming<'static> {
        Incoming {
            seq: SeqNum(1000),
            ack: SeqNum(0),
            flags: Flags::SYN,
            window: 29200,
            options: Options {
                mss: Some(1400),
                window_scale: wscale.then_some(7),
                sack_permitted: sack,
                timestamps: ts.then_some(Timestamps {
                    tsval: 555,
                    tsecr: 0,
                }),
                ..Options::default()
            },
            payload: &[],
        }
    }

    fn seg(seq: u32, ack: u32, flags: Flags) -> Incoming<'static> {
        Incoming {
            seq: SeqNum(seq),
            ack: SeqNum(ack),
            flags,
            window: 1000,
            options: Options::default(),
            payload: &[],
        }
    }

    #[test]
    fn defer_accept_seconds_convert_like_linux() {
        assert_eq!(defer_accept_retransmissions(0), 0);
        assert_eq!(defer_accept_retransmissions(1), 1);
        assert_eq!(defer_accept_retransmissions(2), 2);
        assert_eq!(defer_accept_retransmissions(5), 3);
        assert_eq!(defer_accept_retransmissions(7), 3);
        assert_eq!(defer_accept_retransmissions(8), 4);
        assert_eq!(defer_accept_seconds(3), 7);
        assert_eq!(defer_accept_seconds(8), 1 + 2 + 4 + 8 + 16 + 32 + 64 + 120);
        assert_eq!(defer_accept_retransmissions(u64::MAX), 255);
    }

    #[test]
    fn request_is_compact() {
        assert!(
            core::mem::size_of::<SynRequest>() <= 48,
            "{}",
            core::mem::size_of::<SynRequest>()
        );
    }

    #[test]
    fn syn_ack_matches_what_a_full_tcb_sends() {
        let now = Instant::from_millis(1234);
        for (ts, ws, sack) in [
            (true, true, true),
            (false, false, false),
            (true, false, true),
            (false, true, false),
        ] {
            for config in [
                TcpConfig::default(),
                TcpConfig {
                    recv_buffer: 16 * 1024,
                    timestamps: false,
                    ..TcpConfig::default()
                },
            ] {
                let s = syn(ts, ws, sack);
                let mut tcb = Tcb::accept(config, a(2, 80), a(1, 4000), 77, &s, now);
                tcb.set_ts_offset(99);
                let mut from_tcb = None;
                tcb.poll_output(now, &mut |o, _| {
                    from_tcb = Some(o.clone());
                    true
                });
                let req = SynRequest::new(a(2, 80), a(1, 4000), SeqNum(77), 99, &s);
                assert_eq!(
                    Some(req.syn_ack(&config, now)),
                    from_tcb,
                    "{ts} {ws} {sack}"
                );
            }
        }
    }

    #[test]
    fn final_ack_completes_and_builds_an_established_tcb() {
        let config = TcpConfig::default();
        let now = Instant::from_millis(10);
        let mut req = SynRequest::new(a(2, 80), a(1, 4000), SeqNum(77), 0, &syn(false, true, true));
        let ack = seg(1001, 78, Flags::ACK);
        assert_eq!(req.on_segment(&config, now, &ack), RequestVerdict::Complete);
        assert!(req.is_bare_ack(&ack));
        let mut tcb = req.into_tcb(config, now);
        tcb.on_segment(now, &ack);
        assert_eq!(tcb.state(), crate::tcp::State::Established);
        assert_eq!(tcb.mss().len(), 1400);
    }

    #[test]
    fn bad_ack_gets_a_reset_and_keeps_the_request() {
        let config = TcpConfig::default();
        let mut req = SynRequest::new(
            a(2, 80),
            a(1, 4000),
            SeqNum(77),
            0,
            &syn(false, false, false),
        );
        let v = req.on_segment(&config, Instant::ZERO, &seg(1001, 5000, Flags::ACK));
        let RequestVerdict::Reply(r) = v else {
            panic!("{v:?}")
        };
        assert_eq!((r.seq, r.flags), (SeqNum(5000), Flags::RST));
    }

    #[test]
    fn retransmitted_syn_resends_and_rst_aborts() {
        let config = TcpConfig::default();
        let mut req = SynRequest::new(
            a(2, 80),
            a(1, 4000),
            SeqNum(77),
            0,
            &syn(false, false, false),
        );
        assert_eq!(
            req.on_segment(&config, Instant::ZERO, &seg(1000, 0, Flags::SYN)),
            RequestVerdict::ResendSynAck
        );
        // An out-of-window RST is ignored, an in-window one drops the request.
        assert_eq!(
            req.on_segment(&config, Instant::ZERO, &seg(900_000, 0, Flags::RST)),
            RequestVerdict::Drop
        );
        assert_eq!(
            req.on_segment(&config, Instant::ZERO, &seg(1001, 0, Flags::RST)),
            RequestVerdict::Abort(None)
        );
        // Out-of-window data gets an ACK.
        let v = req.on_segment(&config, Instant::ZERO, &seg(900_000, 78, Flags::ACK));
        assert!(
            matches!(v, RequestVerdict::Reply(o) if o.flags == Flags::ACK && o.ack == SeqNum(1001))
        );
    }

    #[test]
    fn timeouts_follow_linux_syn_ack_recalc() {
        let config = TcpConfig::default(); // synack_retries 5
        let mut req = SynRequest::new(
            a(2, 80),
            a(1, 4000),
            SeqNum(77),
            0,
            &syn(false, false, false),
        );
        let t0 = Instant::ZERO;
        assert_eq!(req.next_timeout(&config, t0), Instant::from_millis(1000));
        for n in 1..=5 {
            assert_eq!(req.on_timeout(&config, 0), (false, true));
            assert_eq!(req.retries(), n);
        }
        assert_eq!(req.next_timeout(&config, t0), Instant::from_millis(32_000));
        assert_eq!(req.on_timeout(&config, 0), (true, true));
        // Deferred accept: an acked request waits silently, resends at the last chance.
        let mut req = SynRequest::new(
            a(2, 80),
            a(1, 4000),
            SeqNum(77),
            0,
            &syn(false, false, false),
        );
        req.set_acked();
        let mut log = Vec::new();
        loop {
            let (expire, resend) = req.on_timeout(&config, 7);
            log.push(resend);
            if expire {
                break;
            }
        }
        assert_eq!(log, [false, false, false, false, false, false, true, true]);
    }
}
