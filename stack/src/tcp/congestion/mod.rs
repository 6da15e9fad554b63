//! Congestion control: the congestion window (cwnd) and slow-start threshold (ssthresh) of one
//! connection, with NewReno (RFC 5681, RFC 6582) or CUBIC (RFC 9438) growth.
//!
//! [`Congestion`] is a small value with the algorithm inside an enum (no `dyn`, no
//! allocation). It does what is common to both algorithms itself: the initial window
//! (RFC 6928), slow start with byte counting (RFC 5681 3.1, RFC 3465, the way Linux's
//! `tcp_slow_start` does it), the cwnd-limited check (RFC 7661 / Linux
//! `tcp_is_cwnd_limited`), the reaction phases (fast recovery, retransmission timeout), undo
//! after a spurious retransmission, and the restart after idle (RFC 5681 4.1, Linux
//! `tcp_cwnd_restart`). [`newreno`] and [`cubic`] hold what differs: the
//! congestion-avoidance increase and the multiplicative decrease.
//!
//! The sender is expected to do RFC 6675 pipe accounting during recovery: on loss, cwnd is set
//! to ssthresh at once and not inflated by duplicate ACKs.
//!
//! How the TCB drives it:
//! - every ACK that acknowledges new data outside fast recovery: [`Congestion::on_ack`] (that
//!   includes ACKs after a retransmission timeout: cwnd grows again by slow start from one
//!   segment, as in Linux's `TCP_CA_Loss` state);
//! - entering fast recovery (fast retransmit / SACK loss detection): [`Congestion::on_loss`];
//!   leaving it: [`Congestion::on_recovery_end`];
//! - the retransmission timer fires: [`Congestion::on_rto`];
//! - the loss turns out to be spurious (D-SACK, timestamps): [`Congestion::undo`];
//! - sending resumes with nothing in flight: [`Congestion::on_idle_restart`];
//! - the MSS changes (negotiation, PMTU): [`Congestion::set_mss`].
//!
//! Not implemented: HyStart++ (RFC 9406) or Linux's HyStart (slow start is RFC 5681's, which
//! RFC 9438 4.10 allows), Proportional Rate Reduction (RFC 6937), ECN responses (RFC 3168).

pub mod cubic;
pub mod newreno;

use crate::tcp::seq::{Mss, Window};
use crate::time::{Duration, Instant};
use cubic::Cubic;
use newreno::NewReno;

/// The largest cwnd (and finite ssthresh), in bytes: the largest window a receiver can
/// advertise (RFC 7323 2.3, 0xffff << 14, about 1 GiB). A larger cwnd could never be used.
pub const MAX_CWND: usize = Window::MAX.len();

/// RFC 6928 2: "The upper bound for the initial window will be min (10*MSS, max (2*MSS,
/// 14600))". (Linux uses 10 segments whatever the MSS, `TCP_INIT_CWND`; the RFC bound is
/// smaller for jumbo MSS: 18000 bytes instead of 90000 for MSS 9000.)
pub const fn initial_window(mss: Mss) -> usize {
    let mss = mss.len();
    let floor = if 2 * mss > 14600 { 2 * mss } else { 14600 };
    if 10 * mss < floor { 10 * mss } else { floor }
}

/// A congestion control algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RFC 5681 congestion avoidance with RFC 6582 recovery: halve on loss, one MSS per RTT.
    NewReno,
    /// RFC 9438 CUBIC (Linux's default since 2.6.19).
    #[default]
    Cubic,
}

/// The algorithm-specific state.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Controller {
    NewReno(NewReno),
    Cubic(Cubic),
}

/// Where the connection is in its reaction to congestion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Normal operation: ACKs grow cwnd.
    Open,
    /// Fast recovery after [`Congestion::on_loss`]: cwnd holds at ssthresh.
    Recovery,
    /// After [`Congestion::on_rto`], until an ACK acknowledges new data.
    Timeout,
}

/// The state [`Congestion::undo`] goes back to.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Snapshot {
    cwnd: usize,
    ssthresh: usize,
    controller: Controller,
}

/// The congestion state of one connection: cwnd and ssthresh in bytes, and the algorithm's
/// own state.
#[derive(Clone, Debug, PartialEq)]
pub struct Congestion {
    mss: Mss,
    cwnd: usize,
    ssthresh: usize,
    phase: Phase,
    /// Nothing has happened yet (no ACK, loss or timeout): a new MSS recomputes the IW.
    pristine: bool,
    undo: Option<Snapshot>,
    controller: Controller,
}

impl Congestion {
    /// Fresh state: cwnd = the RFC 6928 initial window ([`initial_window`]), ssthresh
    /// "infinite" (`usize::MAX`; RFC 5681 3.1: "The initial value of ssthresh SHOULD be set
    /// arbitrarily high").
    pub fn new(algorithm: Algorithm, mss: Mss) -> Self {
        Congestion {
            mss,
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            phase: Phase::Open,
            pristine: true,
            undo: None,
            controller: match algorithm {
                Algorithm::NewReno => Controller::NewReno(NewReno::new()),
                Algorithm::Cubic => Controller::Cubic(Cubic::new()),
            },
        }
    }

    /// Switches to `algorithm` (`TCP_CONGESTION`), keeping cwnd and ssthresh; the new
    /// algorithm starts from its initial state, as Linux `tcp_reinit_congestion_control` does.
    /// The undo snapshot of the old algorithm is dropped.
    pub fn set_algorithm(&mut self, algorithm: Algorithm) {
        if algorithm == self.algorithm() {
            return;
        }
        self.controller = match algorithm {
            Algorithm::NewReno => Controller::NewReno(NewReno::new()),
            Algorithm::Cubic => Controller::Cubic(Cubic::new()),
        };
        self.undo = None;
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> Algorithm {
        match self.controller {
            Controller::NewReno(_) => Algorithm::NewReno,
            Controller::Cubic(_) => Algorithm::Cubic,
        }
    }

    /// The congestion window in bytes: never 0, never less than one MSS, never more than
    /// [`MAX_CWND`].
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }

    /// The slow-start threshold in bytes (`usize::MAX` until the first congestion event).
    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    /// `cwnd < ssthresh` (RFC 5681 3.1; like Linux's `tcp_in_slow_start`, slow start when
    /// equal is not used).
    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// The MSS the window is counted in.
    pub fn mss(&self) -> Mss {
        self.mss
    }

    /// The CUBIC state, if the algorithm is CUBIC (for statistics and tests).
    pub fn cubic(&self) -> Option<&Cubic> {
        match &self.controller {
            Controller::Cubic(c) => Some(c),
            Controller::NewReno(_) => None,
        }
    }

    /// The sender's MSS changed.
    ///
    /// Before anything has happened on the connection (typically: the MSS option of the
    /// handshake arrived after [`Congestion::new`]), cwnd becomes the initial window for the
    /// new MSS. Later, cwnd and ssthresh keep their size in segments (Linux counts both in
    /// packets, so a PMTU change scales them in bytes), with cwnd at least one MSS and a finite
    /// ssthresh at least two.
    pub fn set_mss(&mut self, mss: Mss) {
        let old = self.mss;
        if mss == old {
            return;
        }
        self.mss = mss;
        if self.pristine {
            self.cwnd = initial_window(mss);
            return;
        }
        let scale = |bytes: usize| -> usize {
            let scaled = (bytes as u64).saturating_mul(mss.len() as u64) / old.len() as u64;
            usize::try_from(scaled).unwrap_or(usize::MAX)
        };
        self.cwnd = scale(self.cwnd).max(mss.len()).min(MAX_CWND);
        if self.ssthresh != usize::MAX {
            self.ssthresh = scale(self.ssthresh).max(2 * mss.len()).min(MAX_CWND);
        }
        if let Some(s) = &mut self.undo {
            s.cwnd = scale(s.cwnd).max(mss.len()).min(MAX_CWND);
            if s.ssthresh != usize::MAX {
                s.ssthresh = scale(s.ssthresh).max(2 * mss.len()).min(MAX_CWND);
            }
        }
        if let Controller::NewReno(r) = &mut self.controller {
            r.reset();
        }
    }

    /// An ACK acknowledged `acked` new bytes while NOT in fast recovery.
    ///
    /// `cwnd_limited`: the sender had (at least) cwnd in flight, i.e. cwnd, not the
    /// application or the receive window, limited sending (RFC 7661; compute it like Linux's
    /// `tcp_is_cwnd_limited`, which in slow start also counts a flight of at least half of
    /// cwnd). Otherwise cwnd does not grow: RFC 7661 2, "the cwnd ... is not a reliable
    /// indication of the capacity of the path" when it was not used.
    ///
    /// `rtt`: the current smoothed RTT, for CUBIC's target (RFC 9438 4.2; Linux uses the
    /// minimum RTT there); `None` before any sample.
    ///
    /// Slow start: RFC 5681 3.1 with RFC 3465 byte counting as Linux does it
    /// (`tcp_slow_start`): cwnd grows by all of `acked` (no L limit), but only up to ssthresh;
    /// the rest of `acked` goes to congestion avoidance.
    ///
    /// Call it after a retransmission timeout too (cwnd grows by slow start from one segment).
    /// During fast recovery (between [`Congestion::on_loss`] and
    /// [`Congestion::on_recovery_end`]) it is ignored: RFC 6675 pipe accounting governs
    /// sending then, and cwnd stays at ssthresh.
    pub fn on_ack(
        &mut self,
        now: Instant,
        acked: usize,
        rtt: Option<Duration>,
        cwnd_limited: bool,
    ) {
        if acked == 0 {
            return;
        }
        match self.phase {
            Phase::Recovery => return,
            // New data acknowledged after a timeout: the next timeout is a new loss episode
            // again (Linux resets `icsk_retransmits` on forward progress).
            Phase::Timeout => self.phase = Phase::Open,
            Phase::Open => {}
        }
        self.pristine = false;
        // RFC 7661 / Linux `tcp_cong_avoid`: "if (!tcp_is_cwnd_limited(sk)) return;".
        if !cwnd_limited {
            return;
        }
        let mut acked = acked;
        if self.in_slow_start() {
            // RFC 5681 3.1: "During slow start, a TCP increments cwnd by at most SMSS bytes
            // for each ACK received that cumulatively acknowledges new data" -- RFC 3465 byte
            // counting lifts that limit, and Linux's `tcp_slow_start` adds all acked segments,
            // "cwnd = min(cwnd + acked, ssthresh)", returning the leftover.
            let room = self.ssthresh - self.cwnd;
            let grow = acked.min(room);
            self.cwnd = self.cwnd.saturating_add(grow).min(MAX_CWND);
            acked -= grow;
            if acked == 0 {
                return;
            }
        }
        let mss = self.mss;
        let cwnd = match &mut self.controller {
            Controller::NewReno(r) => r.congestion_avoidance(self.cwnd, mss, acked),
            Controller::Cubic(c) => c.congestion_avoidance(now, self.cwnd, mss, acked, rtt),
        };
        self.cwnd = cwnd.max(mss.len()).min(MAX_CWND);
    }

    /// Loss detected by fast retransmit / SACK: enter fast recovery.
    ///
    /// ssthresh: NewReno, RFC 5681 3.2 step 2 / equation (4), "ssthresh = max (FlightSize / 2,
    /// 2*SMSS)" with `flight_size` = the bytes outstanding when the loss was detected; CUBIC,
    /// RFC 9438 4.6 with beta_cubic = 0.7 applied to cwnd as Linux does (see
    /// [`Cubic::on_congestion_event`]), and W_max with fast convergence (RFC 9438 4.7). Then
    /// cwnd = ssthresh, at least 2 MSS (no RFC 5681 "+ 3*SMSS" inflation: the sender does
    /// RFC 6675 pipe accounting).
    ///
    /// Ignored while already in fast recovery: RFC 6582 reduces the window once per window of
    /// data, and the TCB ends recovery with [`Congestion::on_recovery_end`] first.
    pub fn on_loss(&mut self, now: Instant, flight_size: usize) {
        let _ = now; // neither algorithm needs the time of the loss
        if self.phase == Phase::Recovery {
            return;
        }
        self.save_undo();
        let mss = self.mss;
        let ssthresh = match &mut self.controller {
            Controller::NewReno(r) => {
                r.reset();
                NewReno::ssthresh_after_loss(flight_size, mss)
            }
            Controller::Cubic(c) => c.on_congestion_event(self.cwnd, mss),
        };
        self.ssthresh = ssthresh.min(MAX_CWND);
        self.cwnd = self.ssthresh;
        self.phase = Phase::Recovery;
        self.pristine = false;
    }

    /// Fast recovery ended (RFC 6582 3.2 step 3 full acknowledgment, RFC 6675 exit):
    /// cwnd = ssthresh (RFC 6582: "Set cwnd to ... (2) ssthresh"; Linux
    /// `tcp_end_cwnd_reduction`).
    ///
    /// Only acts after [`Congestion::on_loss`]. Called after a timeout instead (when the TCB
    /// leaves its loss state), it only ends that state: cwnd, growing again by slow start,
    /// is not set to ssthresh (nor does Linux when it leaves `TCP_CA_Loss`).
    pub fn on_recovery_end(&mut self, now: Instant) {
        let _ = now; // CUBIC's epoch starts with the first ACK in congestion avoidance
        if self.phase == Phase::Recovery && self.ssthresh != usize::MAX {
            self.cwnd = self.ssthresh.max(self.mss.len()).min(MAX_CWND);
        }
        self.phase = Phase::Open;
    }

    /// The retransmission timer fired.
    ///
    /// RFC 5681 3.1: ssthresh by equation (4) (CUBIC: beta_cubic, RFC 9438 4.8), and "Upon a
    /// timeout cwnd MUST be set to no more than the loss window, LW, which equals 1 full-sized
    /// segment". CUBIC then restarts its curve with K = 0 (RFC 9438 4.8).
    ///
    /// ssthresh is reduced only once per loss episode. RFC 5681 3.1: "when a TCP sender
    /// detects segment loss using the retransmission timer and the given segment has already
    /// been retransmitted by way of the retransmission timer at least once, the value of
    /// ssthresh is held constant": a second timeout with no new data acknowledged in between
    /// keeps it. Like Linux (`tcp_enter_loss`), a timeout during fast recovery keeps the
    /// ssthresh that recovery already set, too.
    pub fn on_rto(&mut self, now: Instant, flight_size: usize) {
        let _ = now; // neither algorithm needs the time of the timeout
        let mss = self.mss;
        if self.phase == Phase::Open {
            self.save_undo();
            let ssthresh = match &mut self.controller {
                Controller::NewReno(_) => NewReno::ssthresh_after_loss(flight_size, mss),
                Controller::Cubic(c) => c.on_congestion_event(self.cwnd, mss),
            };
            self.ssthresh = ssthresh.min(MAX_CWND);
        }
        match &mut self.controller {
            Controller::NewReno(r) => r.reset(),
            Controller::Cubic(c) => c.on_timeout(),
        }
        self.cwnd = mss.len();
        self.phase = Phase::Timeout;
        self.pristine = false;
    }

    /// The last [`Congestion::on_loss`] / [`Congestion::on_rto`] was spurious (detected by
    /// D-SACK, RFC 3708, or timestamps, RFC 3522): undo its reduction.
    ///
    /// As Linux (`tcp_undo_cwnd_reduction`, `tcp_reno_undo_cwnd`): cwnd = max(cwnd, cwnd before
    /// the reduction), ssthresh = max(ssthresh, ssthresh before). CUBIC's curve (W_max, K,
    /// epoch, W_est) is restored when cwnd is still below its old value; RFC 9438 4.9.2: "if
    /// the current cwnd is lower than cwnd_prior ... In rare cases, when the detection happens
    /// long after a spurious loss event and the current cwnd is already higher than
    /// cwnd_prior, CUBIC SHOULD continue to use the current and the most recent values of
    /// these variables". Leaves recovery / timeout state. Only the most recent reduction can be
    /// undone, once; without one this does nothing.
    pub fn undo(&mut self) {
        let Some(s) = self.undo.take() else {
            return;
        };
        if self.cwnd < s.cwnd {
            self.controller = s.controller;
        }
        self.cwnd = self.cwnd.max(s.cwnd).max(self.mss.len()).min(MAX_CWND);
        self.ssthresh = self.ssthresh.max(s.ssthresh);
        self.phase = Phase::Open;
    }

    /// Sending resumes after the connection was idle (nothing in flight) for `idle`; `rto` is
    /// the current retransmission timeout. Call it whenever data is sent with nothing in
    /// flight.
    ///
    /// RFC 5681 4.1: "if the TCP has not sent data in an interval exceeding the retransmission
    /// timeout, ... cwnd is reduced to the value of the restart window (RW) before
    /// transmission ... RW = min(IW,cwnd)". Linux (`tcp_cwnd_restart`, with
    /// `tcp_slow_start_after_idle = 1`) is gentler, and this does what it does: remember the
    /// old window in ssthresh (`tcp_current_ssthresh`: max(ssthresh, 3/4 cwnd)), then halve
    /// cwnd once for every RTO of idle time beyond the first, down to RW at most. CUBIC starts
    /// a new epoch from the reduced window.
    ///
    /// For a shorter idle period, cwnd stays and CUBIC only moves its epoch forward by `idle`
    /// (Linux `CA_EVENT_TX_START`; RFC 9438 4.2: t "MUST NOT include periods during which cwnd
    /// has not been updated due to application-limited behavior").
    pub fn on_idle_restart(&mut self, now: Instant, idle: Duration, rto: Duration) {
        if idle <= rto {
            if let Controller::Cubic(c) = &mut self.controller {
                c.on_app_idle(now, idle);
            }
            return;
        }
        let restart = initial_window(self.mss).min(self.cwnd);
        if self.phase != Phase::Recovery {
            self.ssthresh = self.ssthresh.max(self.cwnd / 2 + self.cwnd / 4);
        }
        // Linux: "while ((delta -= icsk_rto) > 0 && cwnd > restart_cwnd) cwnd >>= 1;". Each
        // round halves cwnd, so this ends within usize::BITS rounds even if rto is zero.
        let mut cwnd = self.cwnd;
        let mut remaining = idle - rto;
        while !remaining.is_zero() && cwnd > restart {
            cwnd /= 2;
            remaining = remaining.saturating_sub(rto);
        }
        self.cwnd = cwnd.max(restart).max(self.mss.len());
        match &mut self.controller {
            Controller::NewReno(r) => r.reset(),
            Controller::Cubic(c) => c.on_idle_restart(),
        }
        self.pristine = false;
    }

    fn save_undo(&mut self) {
        self.undo = Some(Snapshot {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            controller: self.controller,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: usize = 1000;
    const MSS: Mss = Mss::new_clamped(M as u16);
    const RTT: Duration = Duration::from_millis(100);

    fn at_ms(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Acknowledges one round trip's worth of data (cwnd bytes) one MSS per ACK, at `now`.
    fn ack_round(cc: &mut Congestion, now: Instant, rtt: Duration) {
        let segments = cc.cwnd() / cc.mss().len();
        for _ in 0..segments {
            cc.on_ack(now, cc.mss().len(), Some(rtt), true);
        }
    }

    /// A connection in congestion avoidance with cwnd = ssthresh = `segments` MSS.
    fn in_congestion_avoidance(algorithm: Algorithm, segments: usize) -> Congestion {
        let mut cc = Congestion::new(algorithm, MSS);
        let flight = match algorithm {
            Algorithm::NewReno => 2 * segments * M,
            Algorithm::Cubic => (segments * M * 10).div_ceil(7),
        };
        cc.on_ack(at_ms(0), flight.saturating_sub(cc.cwnd()), Some(RTT), true);
        assert_eq!(cc.cwnd(), flight);
        cc.on_loss(at_ms(0), flight);
        cc.on_recovery_end(at_ms(0));
        assert_eq!((cc.cwnd(), cc.ssthresh()), (segments * M, segments * M));
        cc
    }

    #[test]
    fn initial_window_follows_rfc_6928() {
        assert_eq!(initial_window(Mss::new_clamped(536)), 5360);
        assert_eq!(initial_window(Mss::new_clamped(1460)), 14600);
        assert_eq!(initial_window(Mss::new_clamped(9000)), 18000);
        assert_eq!(initial_window(Mss::MIN), 880);
        assert_eq!(initial_window(Mss::MAX), 2 * 65495);
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let cc = Congestion::new(algorithm, Mss::new_clamped(1460));
            assert_eq!(cc.algorithm(), algorithm);
            assert_eq!(cc.cwnd(), 14600);
            assert_eq!(cc.ssthresh(), usize::MAX);
            assert!(cc.in_slow_start());
        }
    }

    #[test]
    fn the_default_algorithm_is_cubic_like_linux() {
        assert_eq!(Algorithm::default(), Algorithm::Cubic);
        assert!(Congestion::new(Algorithm::default(), MSS).cubic().is_some());
        assert!(Congestion::new(Algorithm::NewReno, MSS).cubic().is_none());
    }

    #[test]
    fn slow_start_doubles_cwnd_per_round_trip() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = Congestion::new(algorithm, MSS);
            let mut expected = 10 * M;
            for round in 0..6 {
                assert_eq!(cc.cwnd(), expected, "{algorithm:?} round {round}");
                ack_round(&mut cc, at_ms(100 * round), RTT);
                expected *= 2;
            }
        }
    }

    #[test]
    fn slow_start_counts_bytes_so_delayed_acks_grow_it_as_fast() {
        let mut cc = Congestion::new(Algorithm::NewReno, MSS);
        // One ACK per two segments (delayed ACKs): still doubling per round trip.
        for _ in 0..5 {
            cc.on_ack(at_ms(0), 2 * M, Some(RTT), true);
        }
        assert_eq!(cc.cwnd(), 20 * M);
    }

    #[test]
    fn slow_start_stops_at_ssthresh_and_the_rest_goes_to_congestion_avoidance() {
        let mut cc = Congestion::new(Algorithm::NewReno, MSS);
        cc.on_rto(at_ms(0), 20 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (M, 10 * M));
        // 9 MSS of slow start reach ssthresh; the other 3 MSS count towards the next increment.
        cc.on_ack(at_ms(100), 12 * M, Some(RTT), true);
        assert_eq!(cc.cwnd(), 10 * M);
        assert!(!cc.in_slow_start());
        cc.on_ack(at_ms(200), 6 * M, Some(RTT), true);
        assert_eq!(cc.cwnd(), 10 * M);
        cc.on_ack(at_ms(200), M, Some(RTT), true);
        assert_eq!(cc.cwnd(), 11 * M);
    }

    #[test]
    fn newreno_congestion_avoidance_adds_one_mss_per_window_of_acks() {
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 10);
        for round in 0..20u64 {
            assert_eq!(cc.cwnd(), (10 + round as usize) * M);
            ack_round(&mut cc, at_ms(100 * round), RTT);
        }
    }

    #[test]
    fn newreno_small_acks_add_up_exactly() {
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 10);
        for _ in 0..999 {
            cc.on_ack(at_ms(1), 10, Some(RTT), true);
        }
        assert_eq!(cc.cwnd(), 10 * M);
        cc.on_ack(at_ms(1), 10, Some(RTT), true);
        assert_eq!(cc.cwnd(), 11 * M);
    }

    #[test]
    fn cwnd_does_not_grow_when_the_application_limits_sending() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = Congestion::new(algorithm, MSS);
            cc.on_ack(at_ms(0), 50 * M, Some(RTT), false);
            assert_eq!(cc.cwnd(), 10 * M, "{algorithm:?} slow start");
            let mut cc = in_congestion_avoidance(algorithm, 20);
            for i in 0..1000 {
                cc.on_ack(at_ms(i), M, Some(RTT), false);
            }
            assert_eq!(cc.cwnd(), 20 * M, "{algorithm:?} congestion avoidance");
        }
    }

    #[test]
    fn an_ack_of_nothing_changes_nothing() {
        let mut cc = Congestion::new(Algorithm::Cubic, MSS);
        let before = cc.clone();
        cc.on_ack(at_ms(5), 0, Some(RTT), true);
        assert_eq!(cc, before);
    }

    #[test]
    fn newreno_loss_halves_the_flight_but_never_below_two_mss() {
        let mut cc = Congestion::new(Algorithm::NewReno, MSS);
        cc.on_ack(at_ms(0), 30 * M, Some(RTT), true);
        cc.on_loss(at_ms(0), 40 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (20 * M, 20 * M));
        cc.on_recovery_end(at_ms(0));

        let mut cc = Congestion::new(Algorithm::NewReno, MSS);
        cc.on_loss(at_ms(0), 3 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (2 * M, 2 * M));
        cc.on_recovery_end(at_ms(0));
        cc.on_loss(at_ms(0), 0);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (2 * M, 2 * M));
    }

    #[test]
    fn cubic_loss_multiplies_cwnd_by_0_7_but_never_below_two_mss() {
        let mut cc = Congestion::new(Algorithm::Cubic, MSS);
        cc.on_ack(at_ms(0), 90 * M, Some(RTT), true);
        cc.on_loss(at_ms(0), 100 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (70 * M, 70 * M));
        assert_eq!(cc.cubic().map(|c| c.w_max()), Some(100.0));

        let mut cc = Congestion::new(Algorithm::Cubic, MSS);
        cc.on_rto(at_ms(0), 0);
        cc.on_ack(at_ms(100), M, Some(RTT), true);
        cc.on_loss(at_ms(200), 2 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (2 * M, 2 * M));
    }

    #[test]
    fn acks_during_recovery_do_not_grow_cwnd_and_recovery_end_sets_it_to_ssthresh() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = in_congestion_avoidance(algorithm, 20);
            cc.on_loss(at_ms(1000), 20 * M);
            let reduced = cc.cwnd();
            for i in 0..100 {
                cc.on_ack(at_ms(1000 + i), M, Some(RTT), true);
            }
            assert_eq!(cc.cwnd(), reduced, "{algorithm:?}");
            // A second loss in the same recovery does not reduce again.
            cc.on_loss(at_ms(1100), 20 * M);
            assert_eq!(cc.cwnd(), reduced, "{algorithm:?}");
            cc.on_recovery_end(at_ms(1200));
            assert_eq!(cc.cwnd(), cc.ssthresh());
            cc.on_ack(at_ms(1300), 10 * reduced, Some(RTT), true);
            assert!(
                cc.cwnd() > reduced,
                "{algorithm:?} grows again after recovery"
            );
        }
    }

    #[test]
    fn rto_sets_cwnd_to_one_mss_and_reduces_ssthresh() {
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 40);
        cc.on_rto(at_ms(0), 40 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (M, 20 * M));
        assert!(cc.in_slow_start());

        let mut cc = in_congestion_avoidance(Algorithm::Cubic, 40);
        cc.on_rto(at_ms(0), 40 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (M, 28 * M));
        // RFC 9438 4.8: the first epoch after the timeout starts with K = 0.
        assert_eq!(cc.cubic().map(|c| c.w_max()), Some(0.0));
    }

    #[test]
    fn cwnd_grows_by_slow_start_after_a_timeout() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = in_congestion_avoidance(algorithm, 40);
            cc.on_rto(at_ms(0), 40 * M);
            for round in 0..4u64 {
                ack_round(&mut cc, at_ms(1000 + 100 * round), RTT);
            }
            assert_eq!(cc.cwnd(), 16 * M, "{algorithm:?}");
        }
    }

    #[test]
    fn repeated_timeouts_hold_ssthresh_until_new_data_is_acknowledged() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = in_congestion_avoidance(algorithm, 40);
            cc.on_rto(at_ms(0), 40 * M);
            let ssthresh = cc.ssthresh();
            cc.on_rto(at_ms(1000), M);
            cc.on_rto(at_ms(3000), M);
            assert_eq!((cc.cwnd(), cc.ssthresh()), (M, ssthresh), "{algorithm:?}");
            // Progress, then a new timeout: a new loss episode.
            cc.on_ack(at_ms(3100), M, Some(RTT), true);
            cc.on_rto(at_ms(4000), 4 * M);
            assert_eq!((cc.cwnd(), cc.ssthresh()), (M, 2 * M), "{algorithm:?}");
        }
    }

    #[test]
    fn a_timeout_during_recovery_keeps_the_recovery_ssthresh() {
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 40);
        cc.on_loss(at_ms(0), 40 * M);
        assert_eq!(cc.ssthresh(), 20 * M);
        cc.on_rto(at_ms(1000), 20 * M);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (M, 20 * M));
    }

    #[test]
    fn recovery_end_after_a_timeout_does_not_jump_to_ssthresh() {
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 40);
        cc.on_rto(at_ms(0), 40 * M);
        cc.on_ack(at_ms(100), M, Some(RTT), true);
        cc.on_recovery_end(at_ms(100));
        assert_eq!(cc.cwnd(), 2 * M);
    }

    #[test]
    fn undo_restores_cwnd_and_ssthresh_after_a_spurious_loss() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = Congestion::new(algorithm, MSS);
            cc.on_ack(at_ms(0), 30 * M, Some(RTT), true);
            let before = cc.clone();
            cc.on_loss(at_ms(10), 40 * M);
            assert!(cc.cwnd() < before.cwnd());
            cc.undo();
            assert_eq!(
                (cc.cwnd(), cc.ssthresh()),
                (40 * M, usize::MAX),
                "{algorithm:?}"
            );
            assert!(cc.in_slow_start());
            // Back to normal operation: ACKs grow cwnd; a second undo does nothing.
            cc.undo();
            cc.on_ack(at_ms(20), M, Some(RTT), true);
            assert_eq!(cc.cwnd(), 41 * M);
        }
    }

    #[test]
    fn undo_restores_cwnd_and_ssthresh_after_a_spurious_timeout() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = in_congestion_avoidance(algorithm, 40);
            cc.on_rto(at_ms(0), 40 * M);
            cc.on_rto(at_ms(1000), 40 * M);
            cc.undo();
            assert_eq!(
                (cc.cwnd(), cc.ssthresh()),
                (40 * M, 40 * M),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn undo_keeps_a_window_that_has_grown_past_the_old_one() {
        let mut cc = Congestion::new(Algorithm::NewReno, MSS);
        cc.on_loss(at_ms(0), 10 * M);
        cc.on_recovery_end(at_ms(0));
        for round in 0..20 {
            ack_round(&mut cc, at_ms(100 * round), RTT);
        }
        let grown = cc.cwnd();
        assert!(grown > 10 * M);
        cc.undo();
        assert_eq!((cc.cwnd(), cc.ssthresh()), (grown, usize::MAX));
    }

    #[test]
    fn cubic_undo_restores_the_curve() {
        let mut cc = in_congestion_avoidance(Algorithm::Cubic, 70);
        ack_round(&mut cc, at_ms(1000), RTT);
        let before = cc.clone();
        cc.on_loss(at_ms(2000), cc.cwnd());
        assert_ne!(cc.cubic(), before.cubic());
        cc.undo();
        assert_eq!(cc.cubic(), before.cubic());
        assert_eq!(cc.cwnd(), before.cwnd());
    }

    #[test]
    fn undo_without_a_reduction_does_nothing() {
        let mut cc = Congestion::new(Algorithm::Cubic, MSS);
        let before = cc.clone();
        cc.undo();
        assert_eq!(cc, before);
    }

    #[test]
    fn idle_shorter_than_the_rto_keeps_cwnd() {
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 80);
        cc.on_idle_restart(
            at_ms(10_000),
            Duration::from_millis(300),
            Duration::from_millis(300),
        );
        assert_eq!((cc.cwnd(), cc.ssthresh()), (80 * M, 80 * M));
    }

    #[test]
    fn idle_restart_halves_cwnd_per_rto_of_idle_time_down_to_the_restart_window() {
        let rto = Duration::from_millis(300);
        // Linux: one halving per full RTO of idle time beyond the first.
        for (idle_ms, segments) in [
            (301, 40),
            (450, 40),
            (600, 40),
            (601, 20),
            (1000, 10),
            (60_000, 10),
        ] {
            let mut cc = in_congestion_avoidance(Algorithm::NewReno, 80);
            cc.on_idle_restart(at_ms(100_000), Duration::from_millis(idle_ms), rto);
            assert_eq!(cc.cwnd(), segments * M, "idle {idle_ms} ms");
            // The old window is remembered in ssthresh (Linux `tcp_current_ssthresh`).
            assert_eq!(cc.ssthresh(), 80 * M);
        }
        // A window below the initial window is the restart window itself.
        let mut cc = Congestion::new(Algorithm::NewReno, MSS);
        cc.on_rto(at_ms(0), 0);
        cc.on_idle_restart(at_ms(100_000), Duration::from_secs(60), rto);
        assert_eq!(cc.cwnd(), M);
        // A zero RTO cannot loop forever.
        let mut cc = in_congestion_avoidance(Algorithm::Cubic, 80);
        cc.on_idle_restart(at_ms(100_000), Duration::from_secs(1), Duration::ZERO);
        assert_eq!(cc.cwnd(), 10 * M);
    }

    #[test]
    fn slow_start_after_idle_climbs_back_to_three_quarters_of_the_old_window() {
        let mut cc = Congestion::new(Algorithm::NewReno, MSS);
        cc.on_ack(at_ms(0), 70 * M, Some(RTT), true);
        cc.on_idle_restart(
            at_ms(10_000),
            Duration::from_secs(10),
            Duration::from_millis(300),
        );
        assert_eq!((cc.cwnd(), cc.ssthresh()), (10 * M, usize::MAX));
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 40);
        for round in 0..40 {
            ack_round(&mut cc, at_ms(100 * round), RTT);
        }
        assert_eq!((cc.cwnd(), cc.ssthresh()), (80 * M, 40 * M));
        cc.on_idle_restart(
            at_ms(10_000),
            Duration::from_secs(10),
            Duration::from_millis(300),
        );
        assert_eq!((cc.cwnd(), cc.ssthresh()), (10 * M, 60 * M));
    }

    #[test]
    fn cubic_idle_restart_starts_a_new_epoch_and_short_idle_shifts_it() {
        let mut cc = in_congestion_avoidance(Algorithm::Cubic, 70);
        ack_round(&mut cc, at_ms(1000), RTT);
        assert_eq!(cc.cubic().and_then(|c| c.epoch_start()), Some(at_ms(1000)));
        cc.on_idle_restart(
            at_ms(1300),
            Duration::from_millis(200),
            Duration::from_millis(300),
        );
        assert_eq!(cc.cubic().and_then(|c| c.epoch_start()), Some(at_ms(1200)));
        cc.on_idle_restart(
            at_ms(5000),
            Duration::from_secs(3),
            Duration::from_millis(300),
        );
        assert_eq!(cc.cubic().and_then(|c| c.epoch_start()), None);
    }

    #[test]
    fn mss_set_before_any_traffic_recomputes_the_initial_window() {
        let mut cc = Congestion::new(Algorithm::Cubic, Mss::DEFAULT_IPV4);
        assert_eq!(cc.cwnd(), 5360);
        cc.set_mss(Mss::new_clamped(1460));
        assert_eq!(cc.cwnd(), 14600);
        assert_eq!(cc.mss(), Mss::new_clamped(1460));
    }

    #[test]
    fn mss_change_later_keeps_the_window_in_segments() {
        let mut cc = in_congestion_avoidance(Algorithm::NewReno, 20);
        cc.set_mss(Mss::new_clamped(500));
        assert_eq!((cc.cwnd(), cc.ssthresh()), (10_000, 10_000));
        cc.set_mss(Mss::new_clamped(2000));
        assert_eq!((cc.cwnd(), cc.ssthresh()), (40_000, 40_000));
    }

    #[test]
    fn cwnd_never_exceeds_the_largest_window() {
        for algorithm in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut cc = Congestion::new(algorithm, MSS);
            cc.on_ack(at_ms(0), usize::MAX, Some(RTT), true);
            assert_eq!(cc.cwnd(), MAX_CWND);
            cc.on_loss(at_ms(0), usize::MAX);
            assert!(cc.ssthresh() <= MAX_CWND);
            cc.on_recovery_end(at_ms(0));
            cc.on_ack(at_ms(1_000_000), usize::MAX, Some(RTT), true);
            assert_eq!(cc.cwnd(), MAX_CWND);
        }
    }

    /// Acknowledges one round trip's worth of data (cwnd bytes), one MSS per ACK, spread
    /// evenly over `rtt` from `start`; returns the time of the last ACK.
    fn ack_round_paced(cc: &mut Congestion, start: Instant, rtt: Duration) -> Instant {
        let segments = (cc.cwnd() / cc.mss().len()).max(1);
        let mut now = start;
        for i in 0..segments {
            now = start + rtt * i as u32 / segments as u32;
            cc.on_ack(now, cc.mss().len(), Some(rtt), true);
        }
        now
    }

    /// After a loss at W_max = 100 segments with a 100 ms RTT (too long for the Reno-friendly
    /// estimate to matter for the first 5.5 s), cwnd follows the cubic curve: between
    /// W_cubic(t) and W_cubic(t + RTT), concave up to K, W_max at K, convex after.
    #[test]
    fn cubic_follows_the_cubic_curve_around_w_max() {
        let rtt = Duration::from_millis(100);
        let mut cc = in_congestion_avoidance(Algorithm::Cubic, 70);
        assert_eq!(cc.cubic().map(|c| c.w_max()), Some(100.0));
        let epoch = at_ms(10_000);
        let mut prev = cc.cwnd();
        let mut increments = Vec::new();
        let mut k = 0.0;
        let mut closest_to_k = (f64::MAX, 0.0);
        for round in 0..55u32 {
            let last = ack_round_paced(&mut cc, epoch + rtt * round, rtt);
            let c = cc.cubic().copied().unwrap();
            assert_eq!(c.epoch_start(), Some(epoch));
            k = c.k();
            let t = (last - epoch).as_secs_f64();
            let got = cc.cwnd() as f64 / M as f64;
            let (low, high) = (c.w_cubic(t), c.w_cubic(t + rtt.as_secs_f64()));
            assert!(
                got >= low - 0.1 && got <= high + 0.01,
                "round {round}, t = {t}: cwnd {got} segments not in [W_cubic(t), W_cubic(t + RTT)] = [{low}, {high}]"
            );
            assert!(c.w_est() < got, "not in the Reno-friendly region");
            if (t - k).abs() < closest_to_k.0 {
                closest_to_k = ((t - k).abs(), got);
            }
            increments.push((t, cc.cwnd() - prev));
            prev = cc.cwnd();
        }
        // K = cbrt(W_max * (1 - beta) / C) = cbrt(100 * 0.3 / 0.4)
        assert!((k - 75f64.cbrt()).abs() < 1e-9, "K = {k}");
        // W_max is reached at t = K.
        assert!(
            (closest_to_k.1 - 100.0).abs() < 0.05,
            "cwnd at K: {}",
            closest_to_k.1
        );
        // Concave: the increments per round shrink up to K; convex: they grow after it.
        let before: Vec<usize> = increments
            .iter()
            .filter(|(t, _)| *t < k - 0.3)
            .map(|&(_, i)| i)
            .collect();
        let after: Vec<usize> = increments
            .iter()
            .filter(|(t, _)| *t > k + 0.3)
            .map(|&(_, i)| i)
            .collect();
        assert!(before.len() > 30 && after.len() > 8);
        assert!(
            before.windows(2).all(|w| w[0] + 2 >= w[1]),
            "concave: {before:?}"
        );
        assert!(
            before[0] > 1500 && before[before.len() - 1] < 50,
            "concave: {before:?}"
        );
        assert!(
            after.windows(2).all(|w| w[0] <= w[1] + 2),
            "convex: {after:?}"
        );
        assert!(
            after[0] < 20 && after[after.len() - 1] > 150,
            "convex: {after:?}"
        );
    }

    /// With a 1 ms RTT, W_cubic barely moves in 40 rounds while Reno would add about one
    /// segment per round: CUBIC follows W_est (alpha_cubic = 0.53 per RTT).
    #[test]
    fn cubic_reno_friendly_region_wins_at_small_rtt() {
        let mut cc = in_congestion_avoidance(Algorithm::Cubic, 70);
        let rtt = Duration::from_millis(1);
        for round in 0..40u64 {
            ack_round(&mut cc, at_ms(10_000 + round), rtt);
        }
        let c = cc.cubic().copied().unwrap();
        let got = cc.cwnd() as f64 / M as f64;
        let reno_friendly = 70.0 + 40.0 * cubic::ALPHA;
        assert!(
            (got - reno_friendly).abs() < 1.0,
            "cwnd {got} segments, W_est {reno_friendly}"
        );
        assert!(got > c.w_cubic(0.041) + 15.0);
    }

    /// RFC 9438 4.3: once W_est reaches cwnd_prior, alpha_cubic becomes 1 (Reno's rate).
    #[test]
    fn cubic_reno_friendly_rate_becomes_one_segment_per_rtt_past_the_old_window() {
        let mut cc = in_congestion_avoidance(Algorithm::Cubic, 70);
        let rtt = Duration::from_millis(1);
        let mut round = 0u64;
        while cc.cwnd() < 101 * M {
            ack_round_paced(&mut cc, at_ms(10_000 + round), rtt);
            round += 1;
        }
        let before = cc.cwnd();
        for _ in 0..10 {
            ack_round_paced(&mut cc, at_ms(10_000 + round), rtt);
            round += 1;
        }
        let per_round = (cc.cwnd() - before) as f64 / 10.0 / M as f64;
        assert!(
            (per_round - 1.0).abs() < 0.1,
            "{per_round} segments per round"
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Ack {
            dt_ms: u64,
            acked: usize,
            rtt_ms: Option<u64>,
            limited: bool,
        },
        Loss {
            flight: usize,
        },
        RecoveryEnd,
        Rto {
            flight: usize,
        },
        Undo,
        Idle {
            idle_ms: u64,
            rto_ms: u64,
        },
        SetMss(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        let size = prop_oneof![0usize..200_000, any::<usize>()];
        prop_oneof![
            8 => (0u64..2_000, size.clone(), proptest::option::of(0u64..5_000), any::<bool>())
                .prop_map(|(dt_ms, acked, rtt_ms, limited)| Op::Ack { dt_ms, acked, rtt_ms, limited }),
            1 => size.clone().prop_map(|flight| Op::Loss { flight }),
            1 => Just(Op::RecoveryEnd),
            1 => size.prop_map(|flight| Op::Rto { flight }),
            1 => Just(Op::Undo),
            1 => (0u64..100_000, 0u64..5_000).prop_map(|(idle_ms, rto_ms)| Op::Idle { idle_ms, rto_ms }),
            1 => any::<u16>().prop_map(Op::SetMss),
        ]
    }

    proptest! {
        #[test]
        fn any_call_sequence_keeps_cwnd_and_ssthresh_sane(
            cubic in any::<bool>(),
            mss in any::<u16>(),
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let algorithm = if cubic { Algorithm::Cubic } else { Algorithm::NewReno };
            let mut cc = Congestion::new(algorithm, Mss::new_clamped(mss));
            let mut now = Instant::ZERO;
            for o in ops {
                let before = cc.cwnd();
                match o {
                    Op::Ack { dt_ms, acked, rtt_ms, limited } => {
                        now += Duration::from_millis(dt_ms);
                        cc.on_ack(now, acked, rtt_ms.map(Duration::from_millis), limited);
                        prop_assert!(cc.cwnd() >= before, "an ACK never shrinks cwnd");
                        if !limited {
                            prop_assert_eq!(cc.cwnd(), before);
                        }
                    }
                    Op::Loss { flight } => {
                        cc.on_loss(now, flight);
                        prop_assert!(cc.cwnd() >= 2 * cc.mss().len(), "2 MSS after a loss");
                    }
                    Op::RecoveryEnd => cc.on_recovery_end(now),
                    Op::Rto { flight } => {
                        cc.on_rto(now, flight);
                        prop_assert_eq!(cc.cwnd(), cc.mss().len());
                    }
                    Op::Undo => cc.undo(),
                    Op::Idle { idle_ms, rto_ms } => {
                        cc.on_idle_restart(now, Duration::from_millis(idle_ms), Duration::from_millis(rto_ms));
                        prop_assert!(cc.cwnd() <= before);
                    }
                    Op::SetMss(m) => cc.set_mss(Mss::new_clamped(m)),
                }
                let mss = cc.mss().len();
                prop_assert!(cc.cwnd() >= mss && cc.cwnd() <= MAX_CWND, "cwnd {}", cc.cwnd());
                prop_assert!(
                    cc.ssthresh() == usize::MAX || (cc.ssthresh() >= 2 * mss && cc.ssthresh() <= MAX_CWND),
                    "ssthresh {}", cc.ssthresh()
                );
                prop_assert_eq!(cc.in_slow_start(), cc.cwnd() < cc.ssthresh());
                if let Some(c) = cc.cubic() {
                    prop_assert!(c.w_max().is_finite() && c.k().is_finite() && c.w_est().is_finite());
                }
            }
        }
    }
}
