//! CUBIC's window arithmetic (RFC 9438).
//!
//! Slow start, the recovery phases and undo are common to all algorithms and live in
//! [`super::Congestion`]; this type holds the cubic curve and the Reno-friendly estimate.
//! Windows here are in segments (`f64`), as in RFC 9438 4.1 ("The unit of all window sizes in
//! this document is segments of the maximum segment size (MSS), and the unit of all times is
//! seconds"); [`super::Congestion`] keeps cwnd in bytes.
//!
//! Slow start is RFC 5681's (RFC 9438 4.10: the sender "MAY use the Reno TCP slow start
//! algorithm \[RFC5681\] in the rare cases when HyStart++ is not suitable"): HyStart++ (RFC 9406)
//! and Linux's HyStart are not implemented.

use crate::tcp::seq::Mss;
use crate::time::{Duration, Instant};

/// RFC 9438 4.1.1 / 5: "C ... SHOULD be set to 0.4", in segments per second cubed.
pub const C: f64 = 0.4;
/// RFC 9438 4.6: "The parameter beta_cubic SHOULD be set to 0.7" (Linux: 717/1024).
pub const BETA: f64 = 0.7;
/// RFC 9438 4.3: "alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic)", about 0.53.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// A non-negative, finite `f64` as `usize`, 0 for anything else (NaN, infinities, negatives).
fn to_usize(x: f64) -> usize {
    if x.is_finite() && x > 0.0 {
        x as usize // saturating
    } else {
        0
    }
}

/// The CUBIC-specific state of one connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cubic {
    /// RFC 9438 W_max in segments; 0 while unknown (no congestion event yet, or just after a
    /// timeout: RFC 9438 4.8).
    w_max: f64,
    /// RFC 9438 cwnd_prior in segments; 0 while unknown.
    cwnd_prior: f64,
    /// RFC 9438 K in seconds, for the current epoch.
    k: f64,
    /// The W_max of the current epoch's curve (the plateau `W_cubic` reaches at `t = K`).
    origin: f64,
    /// RFC 9438 t_epoch: the start of the current congestion-avoidance stage, `None` until the
    /// first ACK in congestion avoidance after a reset (Linux `epoch_start = 0`).
    epoch_start: Option<Instant>,
    /// RFC 9438 W_est in segments.
    w_est: f64,
    /// Growth (in bytes) earned by ACKs but smaller than one byte of window so far.
    frac: f64,
    /// RFC 9438 4.7 fast convergence (on, as Linux's `fast_convergence = 1`).
    fast_convergence: bool,
}

impl Default for Cubic {
    fn default() -> Self {
        Self::new()
    }
}

impl Cubic {
    /// Fresh state: no W_max, no epoch, fast convergence on.
    pub const fn new() -> Self {
        Cubic {
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            origin: 0.0,
            epoch_start: None,
            w_est: 0.0,
            frac: 0.0,
            fast_convergence: true,
        }
    }

    /// RFC 9438 4.7: "In network environments with only a single CUBIC flow and without any
    /// other traffic, Fast Convergence SHOULD be disabled." On by default, as in Linux.
    pub fn set_fast_convergence(&mut self, on: bool) {
        self.fast_convergence = on;
    }

    /// W_max in segments (0 while unknown).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// K in seconds for the current epoch (0 before an epoch starts).
    pub fn k(&self) -> f64 {
        self.k
    }

    /// The start of the current congestion-avoidance epoch, if one is running.
    pub fn epoch_start(&self) -> Option<Instant> {
        self.epoch_start
    }

    /// The Reno-friendly estimate W_est in segments.
    pub fn w_est(&self) -> f64 {
        self.w_est
    }

    /// RFC 9438 Figure 1: `W_cubic(t) = C * (t - K)^3 + W_max`, in segments, for `t` seconds
    /// into the current epoch.
    pub fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d + self.origin
    }

    /// Congestion avoidance for `acked` newly acknowledged bytes at `now`; returns the new
    /// cwnd in bytes (never less than `cwnd`).
    ///
    /// `rtt` is the RTT that the target looks ahead by (RFC 9438 4.2: "the smoothed
    /// round-trip time"; Linux uses the minimum RTT, `delay_min`). `None` counts as zero.
    pub fn congestion_avoidance(
        &mut self,
        now: Instant,
        cwnd: usize,
        mss: Mss,
        acked: usize,
        rtt: Option<Duration>,
    ) -> usize {
        let m = mss.len() as f64;
        let cwnd_seg = (cwnd as f64 / m).max(1.0);
        let max_seg = super::MAX_CWND as f64 / m;

        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                self.start_epoch(now, cwnd_seg);
                now
            }
        };
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        let rtt = rtt.unwrap_or(Duration::ZERO).as_secs_f64();
        let segments_acked = acked as f64 / m;

        // RFC 9438 4.3, Figure 4: "W_est = W_est + alpha_cubic * segments_acked / cwnd", and
        // "Once W_est has grown to reach the cwnd at the time of most recently setting
        // ssthresh -- that is, W_est >= cwnd_prior -- the sender SHOULD set alpha_cubic to 1".
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * segments_acked / cwnd_seg;
        if !self.w_est.is_finite() {
            self.w_est = cwnd_seg;
        }
        self.w_est = self.w_est.min(max_seg);

        let w_cubic = self.w_cubic(t);
        if w_cubic < self.w_est {
            // RFC 9438 4.3: "CUBIC checks whether W_cubic(t) is less than W_est. If so, CUBIC
            // is in the Reno-friendly region and cwnd SHOULD be set to W_est".
            return cwnd.max(to_usize(self.w_est * m));
        }

        // RFC 9438 4.2: target = W_cubic(t + RTT), bounded to [cwnd, 1.5 * cwnd] "to ensure
        // that CUBIC's congestion window increase rate is non-decreasing and is less than the
        // increase rate of slow start" (Linux: `ca->cnt >= 2`).
        let target = self.w_cubic(t + rtt);
        let target = if target.is_finite() {
            target.max(cwnd_seg).min(1.5 * cwnd_seg)
        } else {
            cwnd_seg
        };
        // RFC 9438 4.4 (concave, cwnd < W_max) and 4.5 (convex, cwnd >= W_max): "cwnd MUST be
        // incremented by (target - cwnd) / cwnd for each received new ACK", per segment acked;
        // in bytes, that is the same ratio per byte acked.
        let increase = acked as f64 * (target - cwnd_seg) / cwnd_seg;
        if increase.is_finite() && increase > 0.0 {
            self.frac += increase;
        }
        let whole = self.frac.floor();
        self.frac -= whole;
        if !self.frac.is_finite() {
            self.frac = 0.0;
        }
        cwnd.saturating_add(to_usize(whole))
    }

    /// RFC 9438 4.2/4.8: a new congestion-avoidance stage starts at `now` with cwnd
    /// `cwnd_epoch` segments.
    fn start_epoch(&mut self, now: Instant, cwnd_epoch: f64) {
        self.epoch_start = Some(now);
        self.frac = 0.0;
        // RFC 9438 4.3: "W_est is set equal to cwnd_epoch at the start of the congestion
        // avoidance stage."
        self.w_est = cwnd_epoch;
        if self.w_max <= cwnd_epoch {
            // RFC 9438 4.8 (after a timeout) / 4.10 (slow start ended without loss): "K is
            // set to 0, and W_max is set to the congestion window size at the beginning of the
            // current congestion avoidance stage". Linux does the same whenever
            // `last_max_cwnd <= cwnd` (`bic_K = 0; bic_origin_point = cwnd`).
            self.w_max = cwnd_epoch;
            self.k = 0.0;
        } else {
            // RFC 9438 Figure 2: "K = cubic_root((W_max - cwnd_epoch) / C)".
            self.k = ((self.w_max - cwnd_epoch) / C).cbrt();
            if !self.k.is_finite() {
                self.k = 0.0;
            }
        }
        self.origin = self.w_max;
    }

    /// A congestion event (loss detected by ACKs) with `cwnd` bytes of window before the
    /// reduction; updates W_max and cwnd_prior, ends the epoch, and returns the new ssthresh
    /// in bytes.
    ///
    /// RFC 9438 4.6 Figure 5 computes `ssthresh = flight_size * beta_cubic`, and allows cwnd
    /// instead: "Some implementations of CUBIC currently use cwnd instead of flight_size ...
    /// Implementations that use cwnd MUST use other measures to prevent cwnd from growing when
    /// the volume of bytes in flight is smaller than cwnd". Linux (`bictcp_recalc_ssthresh`)
    /// uses cwnd, and so does this, with the required measure being
    /// [`super::Congestion::on_ack`]'s `cwnd_limited` (RFC 7661 / Linux
    /// `tcp_is_cwnd_limited`). Figure 5's floor: "ssthresh = max(ssthresh, 2)".
    pub fn on_congestion_event(&mut self, cwnd: usize, mss: Mss) -> usize {
        let cwnd_seg = cwnd as f64 / mss.len() as f64;
        // RFC 9438 4.7: "W_max = cwnd * (1 + beta_cubic) / 2 if cwnd < W_max and fast
        // convergence enabled ... otherwise, remember cwnd before reduction".
        self.w_max = if self.fast_convergence && cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + BETA) / 2.0
        } else {
            cwnd_seg
        };
        // RFC 9438 4.6: "cwnd_prior = cwnd // save cwnd".
        self.cwnd_prior = cwnd_seg;
        self.epoch_start = None;
        self.frac = 0.0;
        // beta = 0.7 in exact integer arithmetic (cwnd is bounded by MAX_CWND, but be safe).
        let reduced = (cwnd as u64).saturating_mul(7) / 10;
        usize::try_from(reduced)
            .unwrap_or(usize::MAX)
            .max(2 * mss.len())
    }

    /// A retransmission timeout, after [`Cubic::on_congestion_event`] if ssthresh was reduced.
    /// RFC 9438 4.8: "During the first congestion avoidance stage after a timeout, CUBIC
    /// increases its congestion window size using Figure 1, where t is the elapsed time since
    /// the beginning of the current congestion avoidance, K is set to 0, and W_max is set to the
    /// congestion window size at the beginning of the current congestion avoidance stage"
    /// (Linux: `bictcp_reset` when entering `TCP_CA_Loss`).
    pub fn on_timeout(&mut self) {
        self.w_max = 0.0;
        self.k = 0.0;
        self.epoch_start = None;
        self.frac = 0.0;
    }

    /// cwnd was reduced after an idle period (RFC 5681 4.1): the next ACK in congestion
    /// avoidance starts a new epoch from the reduced window (K from the remembered W_max).
    pub fn on_idle_restart(&mut self) {
        self.epoch_start = None;
        self.frac = 0.0;
    }

    /// Transmission resumed after `idle` without data in flight, without a cwnd restart: the
    /// epoch moves forward by `idle` (never past `now`), as Linux's `cubictcp_cwnd_event
    /// (CA_EVENT_TX_START)` does. RFC 9438 4.2: "The elapsed time t in Figure 1 MUST NOT
    /// include periods during which cwnd has not been updated due to application-limited
    /// behavior".
    pub fn on_app_idle(&mut self, now: Instant, idle: Duration) {
        if let Some(e) = self.epoch_start {
            self.epoch_start = Some((e + idle).min(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: Mss = Mss::new_clamped(1000);

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    #[test]
    fn constants_are_the_rfc_ones() {
        assert_eq!(C, 0.4);
        assert_eq!(BETA, 0.7);
        assert!((ALPHA - 0.9 / 1.7).abs() < 1e-12);
    }

    #[test]
    fn k_is_the_cube_root_of_the_gap_over_c() {
        let mut c = Cubic::new();
        let ssthresh = c.on_congestion_event(100_000, MSS);
        assert_eq!(ssthresh, 70_000);
        assert_eq!(c.w_max(), 100.0);
        c.congestion_avoidance(at(0.0), ssthresh, MSS, 1000, None);
        // K = cbrt(W_max * (1 - beta) / C) = cbrt(100 * 0.3 / 0.4) = cbrt(75)
        assert!((c.k() - 75f64.cbrt()).abs() < 1e-9, "K = {}", c.k());
        assert!((c.k() - 4.217_163).abs() < 1e-5);
        // The curve starts at cwnd_epoch and reaches W_max at K.
        assert!((c.w_cubic(0.0) - 70.0).abs() < 1e-9);
        assert!((c.w_cubic(c.k()) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn fast_convergence_lowers_w_max_when_the_window_shrinks() {
        let mut c = Cubic::new();
        c.on_congestion_event(100_000, MSS);
        assert_eq!(c.w_max(), 100.0);
        c.on_congestion_event(80_000, MSS);
        assert!((c.w_max() - 80.0 * 0.85).abs() < 1e-9);

        let mut c = Cubic::new();
        c.set_fast_convergence(false);
        c.on_congestion_event(100_000, MSS);
        c.on_congestion_event(80_000, MSS);
        assert_eq!(c.w_max(), 80.0);
    }

    #[test]
    fn ssthresh_is_seventy_percent_but_at_least_two_mss() {
        let mut c = Cubic::new();
        assert_eq!(c.on_congestion_event(10_000, MSS), 7_000);
        assert_eq!(c.on_congestion_event(2_000, MSS), 2_000);
        assert_eq!(c.on_congestion_event(0, MSS), 2_000);
    }

    #[test]
    fn after_a_timeout_the_curve_starts_at_the_epoch_window_with_k_zero() {
        let mut c = Cubic::new();
        c.on_congestion_event(100_000, MSS);
        c.on_timeout();
        c.congestion_avoidance(at(10.0), 30_000, MSS, 1000, None);
        assert_eq!(c.k(), 0.0);
        assert_eq!(c.w_max(), 30.0);
        assert_eq!(c.epoch_start(), Some(at(10.0)));
    }

    #[test]
    fn growth_never_exceeds_half_a_segment_per_segment_acked() {
        let mut c = Cubic::new();
        c.on_congestion_event(10_000, MSS);
        // Far past K the curve is steep; the target is capped at 1.5 * cwnd.
        c.congestion_avoidance(at(0.0), 7_000, MSS, 1, None);
        let cwnd = c.congestion_avoidance(at(1000.0), 7_000, MSS, 1000, None);
        assert_eq!(cwnd, 7_500);
    }

    #[test]
    fn app_idle_shifts_the_epoch_but_not_past_now() {
        let mut c = Cubic::new();
        c.on_congestion_event(10_000, MSS);
        c.congestion_avoidance(at(1.0), 7_000, MSS, 1000, None);
        c.on_app_idle(at(5.0), Duration::from_secs(2));
        assert_eq!(c.epoch_start(), Some(at(3.0)));
        c.on_app_idle(at(5.0), Duration::from_secs(100));
        assert_eq!(c.epoch_start(), Some(at(5.0)));
        c.on_idle_restart();
        assert_eq!(c.epoch_start(), None);
    }

    #[test]
    fn nonsense_inputs_give_finite_state() {
        let mut c = Cubic::new();
        c.on_congestion_event(usize::MAX, Mss::MIN);
        let cwnd = c.congestion_avoidance(Instant::MAX, 88, Mss::MIN, usize::MAX, None);
        assert!(cwnd >= 88);
        let cwnd = c.congestion_avoidance(
            Instant::ZERO,
            cwnd,
            Mss::MIN,
            usize::MAX,
            Some(Duration::MAX),
        );
        assert!(cwnd >= 88);
        assert!(c.w_est().is_finite() && c.k().is_finite() && c.w_max().is_finite());
    }
}
