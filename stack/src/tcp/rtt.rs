//! Round-trip time estimation and the retransmission timeout (RFC 6298), computed the way
//! Linux computes it.
//!
//! The smoothed RTT and its variation follow RFC 6298 2.2/2.3 exactly (alpha = 1/8,
//! beta = 1/4), kept in fixed point like Linux (`srtt` scaled by 8, `rttvar` scaled by 4, in
//! nanoseconds) so that repeated updates do not lose precision to truncation.
//!
//! The RTO is where Linux departs from the RFC, and this module does what Linux does:
//!
//! - RFC 6298 2.3: "RTO <- SRTT + max (G, K*RTTVAR) where K = 4". Linux (`tcp_rtt_estimator`
//!   and `__tcp_set_rto`) computes `srtt + rttvar_us`, where `rttvar_us` is `4*mdev` floored at
//!   `tcp_rto_min` (200 ms): in effect `RTO = SRTT + max(rto_min, 4*RTTVAR)`, i.e. the RFC's
//!   clock granularity `G` becomes `rto_min`. That is why a Linux RTO on a LAN is about
//!   SRTT + 200 ms.
//! - RFC 6298 2.4's one-second minimum ("Whenever RTO is computed, if it is less than 1 second,
//!   then the RTO SHOULD be rounded up to 1 second") is *not* used; Linux's floor is
//!   `TCP_RTO_MIN` = 200 ms ([`RtoConfig::min`]).
//! - RFC 6298 2.5: "A maximum value MAY be placed on RTO provided it is at least 60 seconds";
//!   Linux's `TCP_RTO_MAX` is 120 s ([`RtoConfig::max`]).
//!
//! Simplifications against Linux, on purpose: Linux's `mdev_max`/`rtt_seq` machinery lets the
//! variance term decay at most once per round trip, and it damps `mdev` growth when the RTT
//! *drops* (an Eifel-like tweak). Both need sequence numbers this sans-IO estimator does not see;
//! here RTTVAR follows RFC 6298 2.3 on every sample. Linux's `min_rtt` is a windowed minimum
//! over `tcp_min_rtt_wlen` (300 s); [`RttEstimator::min_rtt`] is the minimum over the
//! connection's life, since samples come without a timestamp.

use crate::time::Duration;

/// The retransmission timer's bounds and starting value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RtoConfig {
    /// The RTO before any RTT sample: RFC 6298 2.1, "Until a round-trip time (RTT) measurement
    /// has been made ..., the sender SHOULD set RTO <- 1 second" (Linux `TCP_TIMEOUT_INIT`).
    pub initial: Duration,
    /// The smallest RTO, and the floor of the variance term (Linux `TCP_RTO_MIN`, 200 ms).
    pub min: Duration,
    /// The largest RTO, with or without backoff (Linux `TCP_RTO_MAX`, 120 s).
    pub max: Duration,
}

impl Default for RtoConfig {
    fn default() -> Self {
        RtoConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(200),
            max: Duration::from_secs(120),
        }
    }
}

/// RFC 6298 5.7: "If the timer expires awaiting the ACK of a SYN segment and the TCP
/// implementation is using an RTO less than 3 seconds, the RTO MUST be re-initialized to 3
/// seconds when data transmission begins" (Linux `TCP_TIMEOUT_FALLBACK`).
pub const HANDSHAKE_FALLBACK_RTO: Duration = Duration::from_secs(3);

/// The backoff count stops here (Linux keeps it in a `u8`, `icsk_backoff`). By then the RTO has
/// long been at [`RtoConfig::max`]; the cap only keeps the counter from overflowing.
pub const MAX_BACKOFF: u32 = 255;

/// The largest sample the estimator takes in (about 36 years); anything larger is clamped to
/// it so that the scaled fixed-point state (x8) can never overflow.
const MAX_SAMPLE_NANOS: u64 = u64::MAX >> 4;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `v` clamped to `[min, max]`; if a misconfiguration has `min > max`, `max` wins (never
/// panics, unlike `Ord::clamp`).
fn clamp(v: u64, min: u64, max: u64) -> u64 {
    v.max(min).min(max)
}

/// The RTT estimator and retransmission-timeout calculator of one connection.
///
/// It only does arithmetic: the caller takes the samples, runs the timer, and tells it about
/// timeouts ([`RttEstimator::backoff`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    config: RtoConfig,
    /// 8 * SRTT in nanoseconds, `None` before the first sample.
    srtt8: Option<u64>,
    /// 4 * RTTVAR in nanoseconds (meaningful only when `srtt8` is `Some`).
    rttvar4: u64,
    min_rtt: Option<Duration>,
    backoff: u32,
    /// RFC 6298 5.7: the handshake was retransmitted and no sample exists yet.
    fallback: bool,
}

impl RttEstimator {
    /// An estimator with no samples: its RTO is `config.initial` (clamped to `[min, max]`).
    pub fn new(config: RtoConfig) -> Self {
        RttEstimator {
            config,
            srtt8: None,
            rttvar4: 0,
            min_rtt: None,
            backoff: 0,
            fallback: false,
        }
    }

    /// Takes one RTT measurement `rtt`.
    ///
    /// Karn's algorithm is the caller's job. RFC 6298 3: "RTT samples MUST NOT be made using
    /// segments that were retransmitted (and thus for which it is ambiguous whether the reply
    /// was for the first instance of the packet or a later instance). The only case when TCP can
    /// safely take RTT samples from retransmitted segments is when the TCP timestamp option is
    /// employed". Pass only unambiguous samples here.
    ///
    /// Like Linux (`tcp_ack_update_rtt`: "RFC6298: only reset backoff on valid RTT
    /// measurement"), a sample also resets the timer backoff: once an unambiguous sample
    /// exists, the RTO is computed from it again rather than kept backed off.
    ///
    /// Any duration is accepted: zero gives an RTO of [`RtoConfig::min`], a huge one an RTO of
    /// [`RtoConfig::max`].
    pub fn on_sample(&mut self, rtt: Duration) {
        let r = nanos(rtt).min(MAX_SAMPLE_NANOS);
        match self.srtt8 {
            None => {
                // RFC 6298 2.2: "SRTT <- R, RTTVAR <- R/2".
                self.srtt8 = Some(r.saturating_mul(8));
                self.rttvar4 = r.saturating_mul(2);
            }
            Some(srtt8) => {
                // RFC 6298 2.3: "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|" then
                // "SRTT <- (1 - alpha) * SRTT + alpha * R'", alpha = 1/8, beta = 1/4, RTTVAR
                // first (it uses the old SRTT). In the scaled form: 4*RTTVAR' = 3/4 * 4*RTTVAR
                // + |err| and 8*SRTT' = 7/8 * 8*SRTT + R'.
                let err = r.abs_diff(srtt8 / 8);
                self.rttvar4 = (self.rttvar4 - self.rttvar4 / 4).saturating_add(err);
                self.srtt8 = Some((srtt8 - srtt8 / 8).saturating_add(r));
            }
        }
        let rtt = Duration::from_nanos(r);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        self.backoff = 0;
    }

    /// The RTO to arm the retransmission timer with: [`RttEstimator::base_rto`] doubled once per
    /// [`RttEstimator::backoff`], clamped to `[min, max]` (Linux `inet_csk_rto_backoff`:
    /// `min(icsk_rto << icsk_backoff, TCP_RTO_MAX)`).
    pub fn rto(&self) -> Duration {
        let base = nanos(self.base_rto());
        let backed_off = if self.backoff >= 64 {
            u64::MAX
        } else {
            base.saturating_mul(1u64 << self.backoff)
        };
        let (min, max) = (nanos(self.config.min), nanos(self.config.max));
        Duration::from_nanos(clamp(backed_off, min, max))
    }

    /// The RTO without backoff, clamped to `[min, max]`: `SRTT + max(min, 4*RTTVAR)` (Linux's
    /// computation, see the module docs) once a sample exists, [`RtoConfig::initial`] before
    /// (or [`HANDSHAKE_FALLBACK_RTO`] after [`RttEstimator::on_handshake_retransmitted`]).
    pub fn base_rto(&self) -> Duration {
        let (min, max) = (nanos(self.config.min), nanos(self.config.max));
        let raw = match self.srtt8 {
            Some(srtt8) => (srtt8 / 8).saturating_add(self.rttvar4.max(min)),
            None if self.fallback => nanos(self.config.initial).max(nanos(HANDSHAKE_FALLBACK_RTO)),
            None => nanos(self.config.initial),
        };
        Duration::from_nanos(clamp(raw, min, max))
    }

    /// The retransmission timer expired: RFC 6298 5.5, "The host MUST set RTO <- RTO * 2 ("back
    /// off the timer")". The count stops at [`MAX_BACKOFF`]; the RTO itself stops at
    /// [`RtoConfig::max`] (RFC 6298 5.5: "The maximum value discussed in (2.5) above may be
    /// used to provide an upper bound to this doubling operation").
    pub fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1).min(MAX_BACKOFF);
    }

    /// How many times the timer has been backed off since the last reset.
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }

    /// Forgets the backoff. [`RttEstimator::on_sample`] already does this (as Linux does on a
    /// valid RTT measurement); call it for other forward progress, e.g. Linux also resets the
    /// backoff when a zero-window probe is answered (`tcp_ack_probe`).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// RFC 6298 5.7: the SYN (or SYN-ACK) had to be retransmitted by timer and there is still no
    /// RTT sample: until the first sample, the base RTO is at least 3 s
    /// ([`HANDSHAKE_FALLBACK_RTO`], Linux `TCP_TIMEOUT_FALLBACK`) instead of
    /// [`RtoConfig::initial`]. Has no effect once a sample exists.
    pub fn on_handshake_retransmitted(&mut self) {
        self.fallback = true;
    }

    /// The smoothed RTT (RFC 6298 SRTT), `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt8.map(|s| Duration::from_nanos(s / 8))
    }

    /// The RTT variation (RFC 6298 RTTVAR), `None` before the first sample.
    pub fn rttvar(&self) -> Option<Duration> {
        self.srtt8.map(|_| Duration::from_nanos(self.rttvar4 / 4))
    }

    /// The smallest sample seen on this connection, `None` before the first sample.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// The bounds and initial value in use.
    pub fn config(&self) -> &RtoConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    fn estimator() -> RttEstimator {
        RttEstimator::new(RtoConfig::default())
    }

    #[test]
    fn default_config_is_linux_with_rfc_initial_rto() {
        let c = RtoConfig::default();
        assert_eq!(c.initial, ms(1000));
        assert_eq!(c.min, ms(200));
        assert_eq!(c.max, Duration::from_secs(120));
    }

    #[test]
    fn rto_is_one_second_before_any_sample() {
        let e = estimator();
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.base_rto(), ms(1000));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rttvar(), None);
        assert_eq!(e.min_rtt(), None);
        assert_eq!(e.config(), &RtoConfig::default());
    }

    #[test]
    fn first_sample_sets_srtt_to_r_and_rttvar_to_half_of_it() {
        let mut e = estimator();
        e.on_sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), Some(ms(50)));
        // 100 + max(200, 4 * 50)
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn later_samples_use_alpha_one_eighth_and_beta_one_quarter() {
        let mut e = estimator();
        e.on_sample(ms(100));
        e.on_sample(ms(200));
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5
        assert_eq!(e.rttvar(), Some(us(62_500)));
        assert_eq!(e.srtt(), Some(us(112_500)));
        // 112.5 + max(200, 250)
        assert_eq!(e.rto(), us(362_500));
    }

    #[test]
    fn rttvar_uses_the_old_srtt() {
        let mut e = estimator();
        e.on_sample(ms(80));
        e.on_sample(ms(80));
        // No error: RTTVAR decays by 3/4, SRTT stays.
        assert_eq!(e.rttvar(), Some(ms(30)));
        assert_eq!(e.srtt(), Some(ms(80)));
    }

    #[test]
    fn lan_rto_is_srtt_plus_rto_min_like_linux() {
        let mut e = estimator();
        for _ in 0..50 {
            e.on_sample(us(100));
        }
        assert_eq!(e.srtt(), Some(us(100)));
        // The variance term is floored at 200 ms, so RTO = SRTT + 200 ms, not 1 s.
        assert_eq!(e.rto(), us(200_100));
    }

    #[test]
    fn variance_term_wins_over_the_floor_when_rtt_jitters() {
        let mut e = estimator();
        e.on_sample(ms(400));
        // 400 + max(200, 4 * 200)
        assert_eq!(e.rto(), ms(1200));
    }

    #[test]
    fn rto_backs_off_exponentially_up_to_the_maximum() {
        let mut e = estimator();
        let mut seen = Vec::new();
        for _ in 0..9 {
            e.backoff();
            seen.push(e.rto().as_secs());
        }
        assert_eq!(seen, [2, 4, 8, 16, 32, 64, 120, 120, 120]);
        assert_eq!(e.backoff_count(), 9);
        assert_eq!(e.base_rto(), ms(1000));
    }

    #[test]
    fn backoff_count_stops_at_the_cap_and_rto_at_the_maximum() {
        let mut e = estimator();
        e.on_sample(Duration::from_secs(10));
        for _ in 0..1000 {
            e.backoff();
        }
        assert_eq!(e.backoff_count(), MAX_BACKOFF);
        assert_eq!(e.rto(), Duration::from_secs(120));
    }

    #[test]
    fn reset_backoff_restores_the_base_rto() {
        let mut e = estimator();
        e.on_sample(ms(100));
        e.backoff();
        e.backoff();
        assert_eq!(e.rto(), ms(1200));
        e.reset_backoff();
        assert_eq!(e.backoff_count(), 0);
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn a_valid_sample_resets_the_backoff_like_linux() {
        let mut e = estimator();
        e.backoff();
        e.backoff();
        assert_eq!(e.backoff_count(), 2);
        e.on_sample(ms(100));
        assert_eq!(e.backoff_count(), 0);
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn rto_is_clamped_to_min_for_zero_and_to_max_for_huge_samples() {
        let mut e = estimator();
        e.on_sample(Duration::ZERO);
        assert_eq!(e.srtt(), Some(Duration::ZERO));
        assert_eq!(e.rto(), ms(200));
        for _ in 0..100 {
            e.on_sample(Duration::ZERO);
        }
        assert_eq!(e.rto(), ms(200));

        let mut e = estimator();
        e.on_sample(Duration::MAX);
        assert_eq!(e.rto(), Duration::from_secs(120));
        e.on_sample(Duration::MAX);
        e.backoff();
        assert_eq!(e.rto(), Duration::from_secs(120));
        assert!(e.srtt().is_some_and(|s| s > Duration::from_secs(1 << 30)));
    }

    #[test]
    fn min_rtt_is_the_smallest_sample() {
        let mut e = estimator();
        for r in [30, 10, 50, 20] {
            e.on_sample(ms(r));
        }
        assert_eq!(e.min_rtt(), Some(ms(10)));
    }

    #[test]
    fn handshake_retransmission_raises_the_initial_rto_to_three_seconds_until_a_sample() {
        let mut e = estimator();
        e.on_handshake_retransmitted();
        assert_eq!(e.rto(), ms(3000));
        e.backoff();
        assert_eq!(e.rto(), ms(6000));
        e.on_sample(ms(100));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn misconfigured_bounds_do_not_panic_and_max_wins() {
        let mut e = RttEstimator::new(RtoConfig {
            initial: Duration::ZERO,
            min: ms(500),
            max: ms(100),
        });
        assert_eq!(e.rto(), ms(100));
        e.on_sample(Duration::MAX);
        e.backoff();
        assert_eq!(e.rto(), ms(100));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Sample(u64),
        Backoff,
        Reset,
        Fallback,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop_oneof![0u64..10_000_000_000, any::<u64>()].prop_map(Op::Sample),
            2 => Just(Op::Backoff),
            1 => Just(Op::Reset),
            1 => Just(Op::Fallback),
        ]
    }

    proptest! {
        #[test]
        fn rto_always_stays_within_min_and_max(ops in proptest::collection::vec(op(), 0..200)) {
            let mut e = estimator();
            let c = *e.config();
            for o in ops {
                match o {
                    Op::Sample(n) => e.on_sample(Duration::from_nanos(n)),
                    Op::Backoff => e.backoff(),
                    Op::Reset => e.reset_backoff(),
                    Op::Fallback => e.on_handshake_retransmitted(),
                }
                let rto = e.rto();
                prop_assert!(rto >= c.min && rto <= c.max, "rto {:?}", rto);
                prop_assert!(e.base_rto() <= rto);
                prop_assert!(e.backoff_count() <= MAX_BACKOFF);
            }
        }

        #[test]
        fn srtt_stays_between_the_smallest_and_largest_sample(
            samples in proptest::collection::vec(0u64..100_000_000_000, 1..100),
        ) {
            let mut e = estimator();
            for &s in &samples {
                e.on_sample(Duration::from_nanos(s));
            }
            let lo = samples.iter().copied().min().unwrap_or(0);
            let hi = samples.iter().copied().max().unwrap_or(0);
            let srtt = e.srtt().unwrap().as_nanos() as u64;
            // The fixed point truncates by at most a few nanoseconds per sample.
            prop_assert!(srtt + 8 >= lo && srtt <= hi, "srtt {} not in [{}, {}]", srtt, lo, hi);
            prop_assert_eq!(e.min_rtt(), Some(Duration::from_nanos(lo)));
        }
    }
}
