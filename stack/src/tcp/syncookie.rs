//! SYN cookies (RFC 4987 3.6), as Linux computes them (`net/ipv4/syncookies.c`).
//!
//! When a listener's SYN queue is full, the SYN is answered without keeping any state: the
//! SYN-ACK's ISN encodes a keyed hash of the 4-tuple, a coarse time counter and the index of the
//! peer's MSS in a small table; the final ACK (acknowledging ISN + 1) proves the peer received
//! it, and the connection is built from what the cookie and the ACK carry.
//!
//! Linux `secure_tcp_syn_cookie`:
//! `cookie = H(k, tuple, 0) + SEG.SEQ + (count << 24) + ((H(k, tuple, count) + mss_index) mod 2^24)`
//! with a minute counter; a cookie is valid for `MAX_SYNCOOKIE_AGE` = 2 counts. The hash here
//! is SipHash-1-3 (Linux uses siphash too). Window scale, SACK and ECN, which the ISN has no
//! room for, go into the low 6 bits of our timestamp when the peer uses timestamps (Linux
//! `cookie_init_timestamp`); without timestamps they are lost, as on Linux.
//!
//! The secret rotates ([`SynCookies::rotate`]): cookies under the previous secret stay valid
//! while their counter is (2 minutes), so a rotation never breaks a handshake in flight.

use crate::time::Instant;
use core::hash::Hasher;
use core::net::SocketAddrV4;
use siphasher::sip::SipHasher13;

/// Linux `msstab`: the MSS values a cookie can encode (the peer's MSS is rounded down to one).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Bits of the cookie below the counter (Linux `COOKIEBITS`).
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;

/// How many counter periods a cookie is valid (Linux `MAX_SYNCOOKIE_AGE`).
const MAX_AGE: u32 = 2;

/// The counter period: Linux `tcp_cookie_time()` counts minutes.
const COUNTER_PERIOD_MS: u64 = 60_000;

/// Bits of the timestamp that carry options (Linux `TSBITS`).
const TS_BITS: u32 = 6;
/// "No window scale" in the timestamp's option bits (Linux `TS_OPT_WSCALE_MASK`).
const TS_OPT_WSCALE_MASK: u32 = 0xf;
/// SACK permitted (Linux `TS_OPT_SACK`).
const TS_OPT_SACK: u32 = 1 << 4;
/// ECN (Linux `TS_OPT_ECN`); this stack does not negotiate ECN and never sets it.
const TS_OPT_ECN: u32 = 1 << 5;
/// Largest window scale (RFC 7323 2.3).
const MAX_WSCALE: u32 = 14;

/// The options a cookie restores: the peer's MSS (from the table), window scale and SACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    /// The peer's MSS, rounded down to an entry of [`MSS_TABLE`].
    pub mss: u16,
    /// The peer's window scale, if it offered one (known only with timestamps).
    pub window_scale: Option<u8>,
    /// The peer offered SACK (known only with timestamps).
    pub sack: bool,
}

/// The SYN cookie generator and checker of a shard.
#[derive(Clone)]
pub struct SynCookies {
    key: [u8; 16],
    /// The secret before the last rotation, and the counter at which it was replaced.
    previous: Option<([u8; 16], u32)>,
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secrets.
        f.debug_struct("SynCookies").finish_non_exhaustive()
    }
}

fn hash(key: &[u8; 16], local: SocketAddrV4, remote: SocketAddrV4, count: u32, c: u8) -> u32 {
    let mut h = SipHasher13::new_with_key(key);
    h.write(&remote.ip().octets());
    h.write(&local.ip().octets());
    h.write_u16(remote.port());
    h.write_u16(local.port());
    h.write_u32(count);
    h.write_u8(c);
    h.finish() as u32
}

/// The counter at `now` (Linux `tcp_cookie_time`).
pub fn counter(now: Instant) -> u32 {
    (now.as_millis() / COUNTER_PERIOD_MS) as u32
}

/// The index of the largest [`MSS_TABLE`] entry not above `mss` (Linux `cookie_v4_init_sequence`
/// walks the table down the same way); 536 when there is no MSS option.
pub fn mss_index(mss: Option<u16>) -> u32 {
    let mss = mss.unwrap_or(MSS_TABLE[0]);
    let mut i = MSS_TABLE.len() - 1;
    while i > 0 && MSS_TABLE[i] > mss {
        i -= 1;
    }
    i as u32
}

impl SynCookies {
    /// A generator keyed with `key` (a secret drawn at random).
    pub const fn new(key: [u8; 16]) -> Self {
        SynCookies {
            key,
            previous: None,
        }
    }

    /// Replaces the secret with `key` at `now`; cookies made with the old one remain valid for
    /// as long as their counter is (Linux keeps one secret per boot; rotating limits how long a
    /// leaked or brute-forced secret is of use).
    pub fn rotate(&mut self, now: Instant, key: [u8; 16]) {
        self.previous = Some((self.key, counter(now)));
        self.key = key;
    }

    fn cookie_with(
        key: &[u8; 16],
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: u32,
        count: u32,
        data: u32,
    ) -> u32 {
        hash(key, local, remote, 0, 0)
            .wrapping_add(peer_isn)
            .wrapping_add(count << COOKIE_BITS)
            .wrapping_add(hash(key, local, remote, count, 1).wrapping_add(data) & COOKIE_MASK)
    }

    /// RFC 4987 3.6 / Linux `secure_tcp_syn_cookie`: our ISN for a SYN with sequence number
    /// `peer_isn` and MSS option `mss`, at `now`.
    pub fn isn(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: u32,
        mss: Option<u16>,
    ) -> u32 {
        Self::cookie_with(
            &self.key,
            local,
            remote,
            peer_isn,
            counter(now),
            mss_index(mss),
        )
    }

    fn check_with(
        key: &[u8; 16],
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: u32,
        cookie: u32,
    ) -> Option<u32> {
        let count = counter(now);
        let c = cookie.wrapping_sub(hash(key, local, remote, 0, 0).wrapping_add(peer_isn));
        // Linux check_tcp_syn_cookie: "diff = (count - (cookie >> COOKIEBITS)) & ((__u32) -1 >>
        // COOKIEBITS); if (diff >= MAX_SYNCOOKIE_AGE) return (__u32)-1;"
        let diff = count.wrapping_sub(c >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if diff >= MAX_AGE {
            return None;
        }
        let data =
            c.wrapping_sub(hash(key, local, remote, count.wrapping_sub(diff), 1)) & COOKIE_MASK;
        (data < MSS_TABLE.len() as u32).then_some(data)
    }

    /// Linux `__cookie_v4_check`: checks the ACK of a cookie SYN-ACK (`ack` = cookie + 1,
    /// `seq` = the peer's ISN + 1); returns the peer's MSS from the table if the cookie is
    /// genuine and at most 2 counter periods old.
    pub fn check(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seq: u32,
        ack: u32,
    ) -> Option<u16> {
        let (peer_isn, cookie) = (seq.wrapping_sub(1), ack.wrapping_sub(1));
        let data =
            Self::check_with(&self.key, now, local, remote, peer_isn, cookie).or_else(|| {
                let (old, replaced_at) = self.previous?;
                // The old secret only for cookies it could have made.
                if counter(now).wrapping_sub(replaced_at) >= MAX_AGE {
                    return None;
                }
                Self::check_with(&old, now, local, remote, peer_isn, cookie)
            })?;
        MSS_TABLE.get(data as usize).copied()
    }
}

/// Linux `cookie_init_timestamp`: our timestamp clock value `ts_now` (before the offset) with
/// its low 6 bits replaced by the options (never later than `ts_now`).
pub fn encode_timestamp(ts_now: u32, window_scale: Option<u8>, sack: bool) -> u32 {
    let mut options = window_scale.map_or(TS_OPT_WSCALE_MASK, |w| u32::from(w).min(MAX_WSCALE));
    if sack {
        options |= TS_OPT_SACK;
    }
    let mut ts = ((ts_now >> TS_BITS) << TS_BITS) | options;
    if ts > ts_now {
        ts = ts.wrapping_sub(1 << TS_BITS);
    }
    ts
}

/// Linux `cookie_timestamp_decode`: the options from the echoed timestamp (TSecr minus our
/// offset). `None` if they are impossible (ECN, which we never encode): the cookie is then
/// refused.
pub fn decode_timestamp(tsecr: u32) -> Option<(Option<u8>, bool)> {
    let options = tsecr & ((1 << TS_BITS) - 1);
    if options & TS_OPT_ECN != 0 {
        return None;
    }
    let w = options & TS_OPT_WSCALE_MASK;
    // Every other 4-bit value is a window scale of at most 15; Linux refuses above
    // TCP_MAX_WSCALE (14), which is 0xf, the "none" marker.
    let window_scale = (w != TS_OPT_WSCALE_MASK).then_some(w as u8);
    Some((window_scale, options & TS_OPT_SACK != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn a(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, last), port)
    }

    const L: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);

    #[test]
    fn cookie_round_trips_the_mss_index() {
        let c = SynCookies::new([3; 16]);
        let now = Instant::from_millis(5_000_000);
        for (mss, want) in [
            (Some(1460), 1460),
            (Some(9000), 1460),
            (Some(1450), 1440),
            (Some(1300), 1300),
            (Some(1000), 536),
            (None, 536),
        ] {
            let isn = c.isn(now, L, a(1, 4000), 777, mss);
            assert_eq!(
                c.check(now, L, a(1, 4000), 778, isn.wrapping_add(1)),
                Some(want)
            );
        }
    }

    #[test]
    fn wrong_tuple_isn_or_key_fails() {
        let c = SynCookies::new([3; 16]);
        let now = Instant::from_millis(5_000_000);
        let isn = c.isn(now, L, a(1, 4000), 777, Some(1460));
        assert_eq!(c.check(now, L, a(1, 4001), 778, isn.wrapping_add(1)), None);
        // (The cookie is additive in the peer's ISN, as Linux's: a sequence number off by less
        // than the table's size only moves the MSS index, the peer still needs the hash.)
        assert_eq!(c.check(now, L, a(1, 4000), 878, isn.wrapping_add(1)), None);
        assert_eq!(c.check(now, L, a(1, 4000), 778, isn.wrapping_add(2)), None);
        let other = SynCookies::new([4; 16]);
        assert_eq!(
            other.check(now, L, a(1, 4000), 778, isn.wrapping_add(1)),
            None
        );
    }

    #[test]
    fn forged_cookies_are_rare() {
        let c = SynCookies::new([3; 16]);
        let now = Instant::from_millis(5_000_000);
        let mut hits = 0;
        for i in 0..20_000u32 {
            let ack = i.wrapping_mul(2_654_435_761);
            hits += u32::from(c.check(now, L, a(1, 4000), 778, ack).is_some());
        }
        // A guess passes if its counter bits are one of 2 and its 24 low bits one of 4: about
        // 2 * 4 / 2^32 per guess.
        assert!(hits <= 1, "{hits}");
    }

    #[test]
    fn cookies_live_two_counter_periods() {
        let c = SynCookies::new([3; 16]);
        let t0 = Instant::from_millis(60_000 * 100 + 59_000);
        let isn = c.isn(t0, L, a(1, 4000), 1, Some(1460));
        let ok = |ms| {
            c.check(
                Instant::from_millis(ms),
                L,
                a(1, 4000),
                2,
                isn.wrapping_add(1),
            )
        };
        assert_eq!(ok(60_000 * 101 + 59_999), Some(1460));
        assert_eq!(ok(60_000 * 102), None);
    }

    #[test]
    fn rotation_keeps_recent_cookies_valid() {
        let mut c = SynCookies::new([3; 16]);
        let t0 = Instant::from_millis(6_000_000);
        let old = c.isn(t0, L, a(1, 4000), 1, Some(1460));
        c.rotate(t0, [9; 16]);
        let new = c.isn(t0, L, a(1, 4000), 1, Some(1460));
        assert_ne!(old, new);
        assert_eq!(
            c.check(t0, L, a(1, 4000), 2, old.wrapping_add(1)),
            Some(1460)
        );
        assert_eq!(
            c.check(t0, L, a(1, 4000), 2, new.wrapping_add(1)),
            Some(1460)
        );
        // A second rotation retires the first secret.
        c.rotate(t0, [10; 16]);
        assert_eq!(c.check(t0, L, a(1, 4000), 2, old.wrapping_add(1)), None);
    }

    #[test]
    fn timestamp_carries_window_scale_and_sack() {
        for (ws, sack) in [
            (Some(7), true),
            (None, true),
            (Some(0), false),
            (None, false),
        ] {
            for now in [1_000_000u32, 64, 127, u32::MAX] {
                let ts = encode_timestamp(now, ws, sack);
                assert!(ts <= now || now < 64, "{ts} {now}");
                assert!(now.wrapping_sub(ts) < 64);
                assert_eq!(decode_timestamp(ts), Some((ws, sack)));
            }
        }
        assert_eq!(decode_timestamp(0x20), None, "ECN is never encoded");
        assert_eq!(decode_timestamp(0x0e), Some((Some(14), false)));
        assert_eq!(decode_timestamp(0x1f), Some((None, true)));
    }
}
