//! ICMP policy: when this host may send an ICMP error, and how often.

use crate::time::{Duration, Instant};

/// A token bucket for ICMP error messages, like Linux's global `icmp_msgs_per_sec` (1000) and
/// `icmp_msgs_burst` (50). Echo replies are not limited (Linux's default `icmp_ratemask` limits
/// destination unreachable, source quench, time exceeded and parameter problem only).
///
/// Linux also has a per-destination limit (`icmp_ratelimit`, 1 s); this bucket is the global
/// one only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpRateLimit {
    /// Messages allowed per second, sustained.
    pub per_second: u32,
    /// Messages allowed in a burst.
    pub burst: u32,
    tokens: u32,
    last_refill: Instant,
}

impl Default for IcmpRateLimit {
    fn default() -> Self {
        IcmpRateLimit::new(1000, 50)
    }
}

impl IcmpRateLimit {
    /// A full bucket.
    pub const fn new(per_second: u32, burst: u32) -> Self {
        IcmpRateLimit {
            per_second,
            burst,
            tokens: burst,
            last_refill: Instant::ZERO,
        }
    }

    /// Takes a token if one is left at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.per_second > 0 {
            let interval = Duration::from_nanos(1_000_000_000 / u64::from(self.per_second));
            let elapsed = now.saturating_duration_since(self.last_refill);
            let new_tokens = (elapsed.as_nanos() / interval.as_nanos().max(1)) as u64;
            if new_tokens > 0 {
                self.tokens =
                    (u64::from(self.tokens) + new_tokens).min(u64::from(self.burst)) as u32;
                self.last_refill = if self.tokens == self.burst {
                    now
                } else {
                    self.last_refill + interval * new_tokens as u32
                };
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// RFC 1122 3.2.2: "An ICMP error message MUST NOT be sent as the result of receiving: an ICMP
/// error message, or a datagram destined to an IP broadcast or IP multicast address, or a
/// datagram sent as a link-layer broadcast, or a non-initial fragment, or a datagram whose
/// source address does not define a single host".
pub fn may_send_error(
    about_icmp_error: bool,
    to_broadcast: bool,
    link_broadcast: bool,
    non_initial_fragment: bool,
    src: core::net::Ipv4Addr,
) -> bool {
    !(about_icmp_error
        || to_broadcast
        || link_broadcast
        || non_initial_fragment
        || src.is_unspecified()
        || src.is_broadcast()
        || src.is_multicast()
        || src.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn burst_then_sustained_rate() {
        let mut l = IcmpRateLimit::new(1000, 50);
        let t0 = Instant::from_millis(10_000);
        let burst = (0..100).filter(|_| l.allow(t0)).count();
        assert_eq!(burst, 50);
        // One more token per millisecond.
        assert!(!l.allow(t0 + Duration::from_micros(999)));
        assert!(l.allow(t0 + Duration::from_millis(1)));
        assert!(!l.allow(t0 + Duration::from_millis(1)));
        let later = t0 + Duration::from_millis(10);
        assert_eq!((0..100).filter(|_| l.allow(later)).count(), 9);
        // After a long pause the bucket is full again, but never more than full.
        let much_later = t0 + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| l.allow(much_later)).count(), 50);
    }

    #[test]
    fn no_errors_about_errors_broadcasts_or_fragments() {
        let host = Ipv4Addr::new(198, 18, 0, 2);
        assert!(may_send_error(false, false, false, false, host));
        assert!(!may_send_error(true, false, false, false, host));
        assert!(!may_send_error(false, true, false, false, host));
        assert!(!may_send_error(false, false, true, false, host));
        assert!(!may_send_error(false, false, false, true, host));
        assert!(!may_send_error(
            false,
            false,
            false,
            false,
            Ipv4Addr::UNSPECIFIED
        ));
        assert!(!may_send_error(
            false,
            false,
            false,
            false,
            Ipv4Addr::new(224, 0, 0, 5)
        ));
    }
}
