//! NewReno's window arithmetic (RFC 5681 congestion avoidance, RFC 6582 recovery response).
//!
//! Slow start, the recovery phases and undo are common to all algorithms and live in
//! [`super::Congestion`]; this type only holds what is Reno-specific: the additive increase
//! and the halving.

use crate::tcp::seq::Mss;

/// The NewReno-specific state: a byte counter for additive increase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NewReno {
    /// Bytes acknowledged in congestion avoidance and not yet turned into window (Linux
    /// `snd_cwnd_cnt`, in bytes instead of packets).
    bytes_acked: usize,
}

impl NewReno {
    /// Fresh state.
    pub const fn new() -> Self {
        NewReno { bytes_acked: 0 }
    }

    /// Congestion avoidance for `acked` newly acknowledged bytes; returns the new cwnd.
    ///
    /// RFC 5681 3.1: "cwnd += SMSS*SMSS/cwnd (3)" per ACK, and the alternative the RFC
    /// recommends: "count the number of bytes that have been acknowledged by ACKs for new
    /// data ... when the number of bytes acknowledged reaches cwnd, then cwnd can be
    /// incremented by up to SMSS bytes". That is what Linux's `tcp_cong_avoid_ai(tp, cwnd,
    /// acked)` does in packets; here it is done in bytes, so small ACKs add up exactly: one
    /// SMSS per cwnd of acknowledged bytes.
    pub fn congestion_avoidance(&mut self, cwnd: usize, mss: Mss, acked: usize) -> usize {
        additive_increase(cwnd, &mut self.bytes_acked, cwnd, acked, mss)
    }

    /// RFC 5681 3.1, equation (4): "ssthresh = max (FlightSize / 2, 2*SMSS)". (Linux's
    /// `tcp_reno_ssthresh` halves cwnd instead; RFC 5681 warns against that: "An easy mistake
    /// to make is to simply use cwnd, rather than FlightSize".)
    pub fn ssthresh_after_loss(flight_size: usize, mss: Mss) -> usize {
        (flight_size / 2).max(2 * mss.len())
    }

    /// Forgets the accumulated bytes (Linux zeroes `snd_cwnd_cnt` when it reduces cwnd).
    pub fn reset(&mut self) {
        self.bytes_acked = 0;
    }

    /// Bytes acknowledged towards the next increment.
    pub fn bytes_acked(&self) -> usize {
        self.bytes_acked
    }
}

/// Linux's `tcp_cong_avoid_ai(tp, w, acked)` in bytes: cwnd grows by one `mss` for every `w`
/// bytes acknowledged, with the remainder kept in `counter`.
fn additive_increase(cwnd: usize, counter: &mut usize, w: usize, acked: usize, mss: Mss) -> usize {
    let w = w.max(1);
    let mut cwnd = cwnd;
    // Linux: "If credits accumulated at a higher w, apply them gently now."
    if *counter >= w {
        *counter = 0;
        cwnd = cwnd.saturating_add(mss.len());
    }
    *counter = counter.saturating_add(acked);
    if *counter >= w {
        let increments = *counter / w;
        *counter -= increments * w;
        cwnd = cwnd.saturating_add(increments.saturating_mul(mss.len()));
    }
    cwnd
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: Mss = Mss::new_clamped(1000);

    #[test]
    fn one_mss_per_cwnd_of_acknowledged_bytes() {
        let mut r = NewReno::new();
        let mut cwnd = 10_000;
        for _ in 0..9 {
            cwnd = r.congestion_avoidance(cwnd, MSS, 1000);
            assert_eq!(cwnd, 10_000);
        }
        cwnd = r.congestion_avoidance(cwnd, MSS, 1000);
        assert_eq!(cwnd, 11_000);
        assert_eq!(r.bytes_acked(), 0);
    }

    #[test]
    fn small_acks_add_up_exactly() {
        let mut r = NewReno::new();
        let mut cwnd = 10_000;
        for _ in 0..99 {
            cwnd = r.congestion_avoidance(cwnd, MSS, 100);
        }
        assert_eq!((cwnd, r.bytes_acked()), (10_000, 9_900));
        cwnd = r.congestion_avoidance(cwnd, MSS, 100);
        assert_eq!((cwnd, r.bytes_acked()), (11_000, 0));
    }

    #[test]
    fn a_stretch_ack_of_several_windows_adds_several_mss() {
        let mut r = NewReno::new();
        assert_eq!(r.congestion_avoidance(10_000, MSS, 35_000), 13_000);
        assert_eq!(r.bytes_acked(), 5_000);
    }

    #[test]
    fn reset_forgets_the_partial_count() {
        let mut r = NewReno::new();
        r.congestion_avoidance(10_000, MSS, 9_000);
        r.reset();
        assert_eq!(r.congestion_avoidance(10_000, MSS, 1_000), 10_000);
    }

    #[test]
    fn ssthresh_is_half_the_flight_but_at_least_two_mss() {
        assert_eq!(NewReno::ssthresh_after_loss(20_000, MSS), 10_000);
        assert_eq!(NewReno::ssthresh_after_loss(3_000, MSS), 2_000);
        assert_eq!(NewReno::ssthresh_after_loss(0, MSS), 2_000);
    }

    #[test]
    fn huge_acks_saturate_instead_of_overflowing() {
        let mut r = NewReno::new();
        let cwnd = r.congestion_avoidance(1, MSS, usize::MAX);
        assert_eq!(cwnd, usize::MAX);
    }
}
