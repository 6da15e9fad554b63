//! Segment arrival: RFC 9293 3.10.7, in the RFC's order (sequence number, RST, SYN, ACK, URG,
//! text, FIN), with RFC 5961's protections against blind in-window attacks, RFC 7323's PAWS and
//! RFC 1337's refusal to let a RST end TIME-WAIT.

use super::recv_buffer::InPlace;
use super::sack_scoreboard::DUP_THRESH;
use super::segment::Incoming;
use super::seq::SeqNum;
use super::state::State;
use super::tcb::{PendingRst, Recovery, Tcb, TcpError};
use crate::time::{Duration, Instant};

/// RFC 7323 5.5: a TS.Recent older than 24 days is invalid (PAWS does not apply).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// Linux `tcp_invalid_ratelimit`: at most one challenge ACK per 500 ms per connection.
const CHALLENGE_ACK_INTERVAL: Duration = Duration::from_millis(500);
/// RTT samples above this are ignored as nonsense (a TSecr we never sent).
const MAX_RTT_SAMPLE: Duration = Duration::from_secs(300);

impl Tcb {
    /// A segment for this connection arrived (RFC 9293 3.10.7.3 and 3.10.7.4).
    pub fn on_segment(&mut self, now: Instant, seg: &Incoming<'_>) {
        self.on_segment_in_place(now, seg, &mut InPlace::Copy);
    }

    /// [`Tcb::on_segment`] for a segment whose frame the caller holds until the application
    /// has had its turn: with `in_place` at [`InPlace::MayStay`], in-order data that nothing
    /// readable precedes is not copied; `in_place` then says which payload bytes stayed in
    /// the frame ([`InPlace::Stayed`]), for the caller to lend or spill (see
    /// `recv_buffer.rs`). Otherwise it is the same call, and the data is copied.
    pub fn on_segment_in_place(
        &mut self,
        now: Instant,
        seg: &Incoming<'_>,
        in_place: &mut InPlace,
    ) {
        self.stats.segs_in += 1;
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_segment_syn_sent(now, seg),
            _ => self.on_segment_synchronized(now, seg, in_place),
        }
    }

    /// RFC 9293 3.10.7.3.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &Incoming<'_>) {
        // First: the ACK bit. "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the
        // RST bit is set, if so drop the segment and return) <SEQ=SEG.ACK><CTL=RST>".
        if seg.flags.ack() && (seg.ack.before_eq(self.iss) || seg.ack.after(self.snd_max)) {
            if !seg.flags.rst() {
                self.pending_rst = Some(PendingRst {
                    seq: seg.ack,
                    ack: None,
                });
            }
            return;
        }
        // Second: RST. Acceptable only with an acceptable ACK (RFC 5961 3.2 keeps this rule).
        if seg.flags.rst() {
            if seg.flags.ack() {
                self.fail(TcpError::ConnectionRefused);
            }
            return;
        }
        // Fourth: SYN.
        if !seg.flags.syn() {
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1u32;
        // RCV.WND is the window our SYN offered (RFC 7323 2.2: unscaled), so that data right
        // behind the SYN-ACK (a Fast Open server's early response, RFC 7413 4.2.2) is
        // acceptable before our ACK has gone out.
        self.rcv_adv = self.rcv_nxt;
        if seg.flags.ack() {
            self.rcv_adv = self.window_to_advertise(true).1;
        }
        self.negotiate(seg, now);
        self.last_recv_at = now;
        if seg.flags.ack() {
            // Our SYN is acknowledged: ESTABLISHED. Data of a Fast Open SYN may be acknowledged
            // with it (RFC 7413 4.1.2), or not: then it is sent again (Linux
            // tcp_rcv_fastopen_synack retransmits what the SYN-ACK did not cover).
            let data_acked =
                (seg.ack.distance_from(self.iss + 1u32) as usize).min(self.send_buf.len());
            self.snd_una = self.iss + 1u32;
            if data_acked > 0 {
                self.send_buf.consume(data_acked);
                self.snd_una = seg.ack;
                self.stats.bytes_acked += data_acked as u64;
            }
            if self.tfo.cookie.is_some() {
                if let Some(c) = seg.options.fast_open.filter(|c| !c.is_request()) {
                    self.tfo.peer_cookie = Some(c);
                }
                if self.tfo.syn_data > 0 && self.tfo.outcome.is_none() {
                    self.tfo.outcome = Some(if data_acked >= self.tfo.syn_data as usize {
                        super::fastopen::ActiveOutcome::DataAcked
                    } else {
                        super::fastopen::ActiveOutcome::DataNotAcked
                    });
                }
            }
            // Whatever the SYN-ACK did not acknowledge is sent again from SND.UNA.
            self.snd_nxt = self.snd_una;
            self.take_rtt_sample(now, seg);
            if self.retries > 0 && self.rtt.srtt().is_none() {
                // RFC 6298 5.7: the SYN was retransmitted and no sample taken: RTO of 3 s.
                self.rtt.on_handshake_retransmitted();
            }
            self.retries = 0;
            self.rtt.reset_backoff();
            self.rto_at = None;
            // RFC 7323 2.2: the window of a SYN-ACK is not scaled.
            self.update_send_window(u32::from(seg.window), seg.seq, seg.ack);
            self.state = State::Established;
            self.syn_due = false;
            self.ack_now = true;
            self.arm_keepalive(now);
            if !seg.payload.is_empty() || seg.flags.fin() {
                self.accept_text(now, seg, &mut InPlace::Copy);
            }
        } else {
            // Simultaneous open: SYN-RECEIVED, answer with SYN-ACK <SEQ=ISS><ACK=RCV.NXT>.
            self.state = State::SynReceived;
            self.update_send_window(u32::from(seg.window), seg.seq, self.iss);
            self.syn_due = true;
        }
    }

    /// The receive window for the acceptability test: what we advertised.
    fn rcv_wnd(&self) -> u32 {
        self.rcv_adv.distance_from(self.rcv_nxt)
    }

    /// RFC 9293 3.10.7.4 "first": the segment acceptability test.
    fn acceptable(&self, seg: &Incoming<'_>) -> bool {
        let len = seg.seg_len();
        let wnd = self.rcv_wnd();
        let (nxt, end) = (self.rcv_nxt, self.rcv_nxt + wnd);
        match (len, wnd) {
            (0, 0) => seg.seq == nxt,
            (0, _) => seg.seq.between(nxt, end),
            (_, 0) => false,
            (_, _) => seg.seq.between(nxt, end) || (seg.seq + (len - 1)).between(nxt, end),
        }
    }

    fn challenge_ack(&mut self, now: Instant) {
        // RFC 5961 7: rate-limit challenge ACKs (Linux: per connection, tcp_invalid_ratelimit).
        // No host-wide limit: Linux >= 6.0 disables it by default (tcp_challenge_ack_limit =
        // INT_MAX, commit 79e3602caa6f: a shared counter is a side channel for blind attacks,
        // and the per-socket limit is kept).
        if self.oow_ack(now) {
            self.stats.challenge_acks += 1;
        }
    }

    /// An ACK in answer to an out-of-window segment, at most one per 500 ms per connection
    /// (Linux `__tcp_oow_rate_limited`, shared with challenge ACKs through
    /// `last_oow_ack_time`). Returns true if the ACK is sent.
    fn oow_ack(&mut self, now: Instant) -> bool {
        if self
            .last_challenge_ack
            .is_some_and(|t| now.saturating_duration_since(t) < CHALLENGE_ACK_INTERVAL)
        {
            return false;
        }
        self.last_challenge_ack = Some(now);
        self.ack_now = true;
        true
    }

    /// Answers a segment that failed the sequence or PAWS test (not a RST): Linux
    /// tcp_validate_incoming sends a challenge ACK for a SYN, and for anything else a
    /// duplicate ACK, rate-limited unless the segment carries data or a FIN
    /// (`tcp_oow_rate_limited`: "Data packets without SYNs are not likely part of an ACK
    /// loop").
    fn answer_unacceptable(&mut self, now: Instant, seg: &Incoming<'_>) {
        if seg.flags.syn() {
            self.challenge_ack(now);
        } else if seg.seg_len() == 0 {
            self.oow_ack(now);
        } else {
            self.ack_now = true;
        }
    }

    /// RFC 9293 3.10.7.4.
    fn on_segment_synchronized(
        &mut self,
        now: Instant,
        seg: &Incoming<'_>,
        in_place: &mut InPlace,
    ) {
        // A retransmitted SYN in SYN-RECEIVED: our SYN-ACK was lost; send it again (Linux
        // answers from the request socket the same way).
        if self.state == State::SynReceived
            && seg.flags.syn()
            && !seg.flags.ack()
            && seg.seq == self.irs
        {
            // Echo the retransmitted SYN's timestamp, so that the peer's RTT sample measures this
            // exchange, not the lost one (Linux tcp_check_req refreshes ts_recent the same way).
            if let (true, Some(ts)) = (self.ts_ok, seg.options.timestamps) {
                self.ts_recent = ts.tsval;
                self.ts_recent_at = now;
            }
            self.syn_due = true;
            return;
        }
        // RFC 7323 5.3 R1 (PAWS): a segment with a timestamp older than TS.Recent is an old
        // duplicate: send an ACK and drop it (not for RST).
        if self.ts_ok
            && !seg.flags.rst()
            && let Some(ts) = seg.options.timestamps
            && (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0
            && now.saturating_duration_since(self.ts_recent_at) < PAWS_IDLE
        {
            self.stats.dropped_unacceptable += 1;
            self.answer_unacceptable(now, seg);
            return;
        }
        let mut zero_window_ack_only = false;
        if !self.acceptable(seg) {
            if self.state == State::TimeWait && seg.flags.fin() && !seg.flags.rst() {
                // RFC 9293 3.10.7.4 eighth, TIME-WAIT: "Remain in the TIME-WAIT state.
                // Acknowledge it, and restart the 2 MSL timeout."
                self.ack_now = true;
                self.close_at = Some(now + self.config.msl * 2);
                return;
            }
            // "If the RCV.WND is zero, no segments will be acceptable, but special allowance
            // should be made to accept valid ACKs, URGs, and RSTs."
            if self.rcv_wnd() == 0 && seg.seq == self.rcv_nxt && seg.flags.ack() {
                zero_window_ack_only = true;
            } else {
                self.stats.dropped_unacceptable += 1;
                if !seg.flags.rst() {
                    self.answer_unacceptable(now, seg);
                }
                return;
            }
        }
        // RFC 7323 4.3 (2): TS.Recent follows the segment that covers Last.ACK.sent.
        if self.ts_ok
            && let Some(ts) = seg.options.timestamps
            && seg.seq.before_eq(self.last_ack_sent)
            && (ts.tsval.wrapping_sub(self.ts_recent) as i32) >= 0
        {
            self.ts_recent = ts.tsval;
            self.ts_recent_at = now;
        }
        self.last_recv_at = now;
        self.keepalive_sent = 0;

        // Second: RST. RFC 5961 3.2: only an exact match resets; in-window ones get a challenge.
        if seg.flags.rst() {
            if seg.seq != self.rcv_nxt {
                self.challenge_ack(now);
                return;
            }
            match self.state {
                // A passive open goes back to LISTEN: the listener is unaffected, this half-open
                // connection simply disappears.
                State::SynReceived if self.passive => self.enter_closed(),
                State::SynReceived => self.fail(TcpError::ConnectionRefused),
                State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                    self.fail(TcpError::ConnectionReset)
                }
                State::Closing | State::LastAck => self.enter_closed(),
                // RFC 1337: no TIME-WAIT assassination; the RST is ignored.
                State::TimeWait => {}
                _ => {}
            }
            return;
        }

        // Fourth: SYN in a synchronized state. RFC 5961 4.2: never reset, send a challenge ACK.
        if seg.flags.syn() {
            self.challenge_ack(now);
            return;
        }

        // Fifth: ACK.
        if !seg.flags.ack() {
            return;
        }
        if self.state == State::SynReceived {
            if seg.ack.after(self.snd_una) && seg.ack.before_eq(self.snd_max) {
                self.snd_una = self.iss + 1u32;
                self.take_rtt_sample(now, seg);
                self.retries = 0;
                self.rtt.reset_backoff();
                // Data a Fast Open server sent before this ACK (RFC 7413 4.2.2) and that it
                // does not cover stays timed (RFC 6298 5.1); the ACK processing below restarts
                // the timer if it covers some.
                self.rto_at = (self.snd_max != self.snd_una).then(|| now + self.rtt.rto());
                self.state = State::Established;
                self.syn_due = false;
                self.arm_keepalive(now);
                if self.fin_queued {
                    self.state = State::FinWait1;
                }
            } else {
                // "If the segment acknowledgment is not acceptable, form a reset segment
                // <SEQ=SEG.ACK><CTL=RST> and send it."
                self.pending_rst = Some(PendingRst {
                    seq: seg.ack,
                    ack: None,
                });
                return;
            }
        }
        if !self.process_ack(now, seg) {
            return;
        }
        match self.state {
            State::FinWait1 if self.fin_acked() => {
                self.state = State::FinWait2;
                if self.app_closed {
                    self.close_at = Some(now + self.config.fin_timeout);
                }
            }
            State::Closing if self.fin_acked() => {
                self.enter_time_wait(now);
                return;
            }
            State::LastAck if self.fin_acked() => {
                self.enter_closed();
                return;
            }
            State::TimeWait => return,
            _ => {}
        }
        if zero_window_ack_only {
            if !seg.payload.is_empty() {
                self.ack_now = true;
            }
            return;
        }
        // Sixth: URG is ignored (RFC 6093 discourages its use; Linux delivers it inline).
        // Seventh and eighth: text and FIN.
        if !seg.payload.is_empty() || seg.flags.fin() {
            self.accept_text(now, seg, in_place);
        }
    }

    pub(super) fn update_send_window(&mut self, wnd: u32, seq: SeqNum, ack: SeqNum) {
        self.snd_wnd = wnd;
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.max_snd_wnd = self.max_snd_wnd.max(wnd);
        if wnd > 0 {
            self.persist_at = None;
            self.persist_backoff = 0;
        }
    }

    fn take_rtt_sample(&mut self, now: Instant, seg: &Incoming<'_>) {
        if self.ts_ok {
            // RFC 7323 4.1: RTT from the echoed timestamp of an ACK that acknowledges new data.
            // Karn's rule applied to timestamps: an echo of a TSval sent before our latest
            // retransmission measures how long the peer waited for a hole to fill (TS.Recent only
            // follows in-order data, RFC 7323 4.3), not the path; after a long backoff that would
            // inflate SRTT by seconds. RFC 7323 4.1 leaves the choice of samples to the sender.
            let after_rexmit = |tsecr: u32| {
                self.last_rexmit_ts
                    .is_none_or(|r| (tsecr.wrapping_sub(r) as i32) >= 0)
            };
            if let Some(ts) = seg.options.timestamps
                && ts.tsecr != 0
                && after_rexmit(ts.tsecr)
            {
                let ms = self.ts_now(now).wrapping_sub(ts.tsecr);
                let rtt = Duration::from_millis(u64::from(ms));
                if (ms as i32) >= 0 && rtt < MAX_RTT_SAMPLE {
                    self.rtt.on_sample(rtt);
                }
            }
        } else if let Some((end, at)) = self.rtt_probe
            && seg.ack.after_eq(end)
        {
            self.rtt_probe = None;
            if self.retries == 0 {
                self.rtt.on_sample(now.saturating_duration_since(at));
            }
        }
    }

    /// The ACK processing of RFC 9293 3.10.7.4 "fifth", with RFC 5961 5.2, RFC 5681 and RFC 6675.
    /// Returns false if the segment is to be dropped.
    fn process_ack(&mut self, now: Instant, seg: &Incoming<'_>) -> bool {
        let ack = seg.ack;
        // "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then send an ACK, drop
        // the segment, and return."
        // RFC 5961 5.2 keeps this rule; the ACK is a challenge ACK, rate-limited like every
        // other (RFC 5961 7; Linux tcp_rcv_state_process answers with
        // tcp_send_challenge_ack), so that two confused ends cannot ping-pong ACKs.
        if ack.after(self.snd_max) {
            self.stats.dropped_unacceptable += 1;
            self.challenge_ack(now);
            return false;
        }
        // RFC 5961 5.2: an ACK older than SND.UNA - MAX.SND.WND is discarded with an ACK.
        if ack.before(self.snd_una - self.max_snd_wnd.max(1)) {
            self.challenge_ack(now);
            return false;
        }
        if !ack.before(self.snd_una) {
            // Linux tcp_ack: an ACK that is not old shows the peer is alive
            // (`icsk_probes_out = 0`): answered window probes never time out.
            self.probes_out = 0;
        }
        let wnd = u32::from(seg.window) << self.snd_wscale.shift();
        let mss = self.payload_mss().len();
        let blocks: arrayvec::ArrayVec<(SeqNum, SeqNum), 4> = if self.sack_ok {
            seg.options.sack_blocks.clone()
        } else {
            arrayvec::ArrayVec::new()
        };
        if ack.after(self.snd_una) {
            let flight_before = self.snd_max - self.snd_una;
            let acked = ack - self.snd_una;
            let data_acked = (acked as usize).min(self.send_buf.len());
            self.send_buf.consume(data_acked);
            self.snd_una = ack;
            if self.snd_nxt.before(ack) {
                self.snd_nxt = ack;
            }
            self.stats.bytes_acked += data_acked as u64;
            self.take_rtt_sample(now, seg);
            self.rtt.reset_backoff();
            self.retries = 0;
            self.scoreboard.on_ack(self.snd_una, self.snd_max, &blocks);
            match self.recovery {
                // RFC 6582 3.2 (5) / RFC 6675 5: recovery ends when "recover" is acknowledged.
                Some(r) if ack.after_eq(r.recover) => {
                    self.recovery = None;
                    self.cc.on_recovery_end(now);
                }
                // A partial ACK: stay in recovery. With SACK, NextSeg() picks the next hole;
                // without it, RFC 6582 3.2 (5): "retransmit the first unacknowledged segment".
                Some(_) => {
                    if !self.sack_ok {
                        self.retransmit_head = true;
                    }
                }
                None => {
                    let cwnd_limited = flight_before as usize + mss > self.cc.cwnd();
                    self.cc
                        .on_ack(now, data_acked, self.rtt.srtt(), cwnd_limited);
                }
            }
            self.dupacks = 0;
            // RFC 6298 5.2/5.3: stop the timer when everything is acknowledged, else restart it.
            self.rto_at = if self.snd_una == self.snd_max {
                None
            } else {
                Some(now + self.rtt.rto())
            };
        } else if ack == self.snd_una {
            let update = self.scoreboard.on_ack(self.snd_una, self.snd_max, &blocks);
            // RFC 5681 2 "DUPLICATE ACKNOWLEDGMENT": outstanding data, no payload, no SYN/FIN,
            // same ACK and window (RFC 6675 counts ACKs that SACK new data as well).
            let outstanding = self.snd_una != self.snd_max;
            let pure = seg.payload.is_empty() && !seg.flags.fin();
            if outstanding && pure && (wnd == self.snd_wnd || update.newly_sacked > 0) {
                self.dupacks += 1;
                self.stats.dupacks_in += 1;
                if !self.sack_ok {
                    self.scoreboard.on_dupack_without_sack(mss);
                }
                if self.recovery.is_none()
                    && (self.dupacks as usize >= DUP_THRESH
                        || self.scoreboard.is_lost(self.snd_una, mss))
                {
                    self.enter_recovery(now);
                }
            }
        }
        // Window update: "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)".
        if self.snd_wl1.before(seg.seq) || (self.snd_wl1 == seg.seq && self.snd_wl2.before_eq(ack))
        {
            self.update_send_window(wnd, seg.seq, ack);
        }
        true
    }

    /// RFC 6675 5 steps (1)-(4): loss detected; retransmit the first unacknowledged segment at
    /// once, then let NextSeg() and the pipe drive recovery.
    fn enter_recovery(&mut self, now: Instant) {
        let flight = (self.snd_max - self.snd_una) as usize;
        self.cc.on_loss(now, flight);
        self.stats.fast_retransmits += 1;
        self.rtt_probe = None;
        self.recovery = Some(Recovery {
            recover: self.snd_max,
            high_rxt: self.snd_una,
            rescue_rxt: None,
        });
        // The first segment is retransmitted whatever the pipe says (RFC 6675 5 step 4.2 / RFC
        // 5681 3.2 step 2): rewinding SND.NXT to it makes the output path send it once.
        self.retransmit_head = true;
    }

    /// Seventh and eighth: queue the text, then process a FIN that is now in order.
    fn accept_text(&mut self, now: Instant, seg: &Incoming<'_>, in_place: &mut InPlace) {
        let mut seq = seg.seq;
        if seg.flags.syn() {
            seq += 1u32;
        }
        if seg.flags.fin() && self.peer_fin.is_none() {
            self.peer_fin = Some(seq + seg.payload.len());
        }
        let mut data = seg.payload;
        let mut skip = 0;
        if self.state.can_receive() && !data.is_empty() {
            if seq.before(self.rcv_nxt) {
                skip = (self.rcv_nxt - seq) as usize;
                data = data.get(skip..).unwrap_or(&[]);
                seq = self.rcv_nxt;
            }
            if data.is_empty() {
                // All of it was old: a duplicate. Acknowledge at once (RFC 5681 4.2).
                self.ack_now = true;
            } else if self.app_closed {
                // Linux tcp_rcv_state_process: new data for a closed (orphaned) socket resets the
                // connection (TCPAbortOnData); nobody will ever read it.
                self.reset(now);
                return;
            } else {
                self.queue_data(now, seq, data, skip, in_place);
            }
        } else if !data.is_empty() {
            // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer already sent its FIN; the text
            // is a duplicate or nonsense. Acknowledge it.
            self.ack_now = true;
        }
        if let Some(fin) = self.peer_fin
            && fin == self.rcv_nxt
        {
            self.process_fin(now);
        }
    }

    /// RFC 7413 4.2.2: a SYN with a valid Fast Open cookie has its data accepted at once (the
    /// server's TCB is in SYN-RECEIVED; its SYN-ACK then acknowledges the data).
    pub fn accept_syn_data(&mut self, now: Instant, data: &[u8]) {
        if self.state == State::SynReceived && self.rcv_nxt == self.irs + 1u32 && !data.is_empty() {
            self.queue_data(now, self.rcv_nxt, data, 0, &mut InPlace::Copy);
        }
    }

    /// Stores text at `seq` (its first `skip` payload bytes were trimmed as old): copied, or
    /// left in the frame when `in_place` allows and the receive buffer can account for it so.
    fn queue_data(
        &mut self,
        now: Instant,
        seq: SeqNum,
        data: &[u8],
        skip: usize,
        in_place: &mut InPlace,
    ) {
        let offset = (seq - self.rcv_nxt) as usize;
        let had_holes = self.recv_buf.has_out_of_order();
        let stays = *in_place == InPlace::MayStay
            && offset == 0
            && self.recv_buf.can_stay_in_place(data.len());
        let written = if stays {
            *in_place = InPlace::Stayed {
                skip,
                len: data.len(),
            };
            Ok(self.recv_buf.write_in_place(data.len()))
        } else {
            self.recv_buf.write_at(offset, data)
        };
        match written {
            Ok(w) => {
                if w.in_order > 0 {
                    self.rcv_nxt += w.in_order;
                    self.stats.bytes_received += w.in_order as u64;
                }
                if offset > 0 {
                    self.stats.ooo_segs += 1;
                }
                if offset > 0 || had_holes || w.duplicate {
                    // RFC 5681 4.2: out-of-order data, a segment that fills a hole, and
                    // duplicates are acknowledged immediately.
                    self.ack_now = true;
                } else {
                    if data.len() >= self.payload_mss().len() {
                        self.unacked_segs += 1;
                    }
                    // RFC 5681 4.2: "an ACK SHOULD be generated for at least every second
                    // full-sized segment", and no later than the delayed-ACK timeout.
                    if self.config.quickack || self.unacked_segs >= 2 {
                        self.ack_now = true;
                    } else if self.delack_at.is_none() {
                        self.delack_at = Some(now + self.config.delayed_ack);
                    }
                }
            }
            Err(_) => {
                self.stats.ooo_dropped += 1;
                self.ack_now = true;
            }
        }
    }

    /// RFC 9293 3.10.7.4 eighth: the FIN is in order.
    fn process_fin(&mut self, now: Instant) {
        self.rcv_nxt += 1u32;
        self.ack_now = true;
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            State::TimeWait => self.close_at = Some(now + self.config.msl * 2),
            _ => {}
        }
    }
}
