//! Initial sequence numbers (RFC 6528): `ISN = M + F(localip, localport, remoteip, remoteport,
//! secretkey)`, with M a 64-nanosecond clock (as Linux) and F a keyed hash (SipHash-1-3 here, as Linux uses
//! siphash since 4.11), so that ISNs are unpredictable to off-path attackers yet increase for a
//! given 4-tuple, which keeps old duplicates of an earlier incarnation out of a new one.

use crate::time::Instant;
use core::hash::Hasher;
use core::net::SocketAddrV4;
use siphasher::sip::SipHasher13;

/// The ISN generator of a shard: a secret key chosen at start.
#[derive(Clone, Debug)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl IsnGenerator {
    /// A generator keyed with `key` (the runtime draws it from the OS's random source; tests use
    /// fixed keys).
    pub const fn new(key: [u8; 16]) -> Self {
        IsnGenerator { key }
    }

    /// RFC 6528 3: the ISN for a connection from `local` to `remote` at `now`.
    pub fn isn(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        // The 4-tuple as two fixed-width words: SipHash takes them without its byte-tail loop
        // (about half the instructions of hashing the four fields one by one).
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write_u64(u64::from(local.ip().to_bits()) << 32 | u64::from(remote.ip().to_bits()));
        h.write_u32(u32::from(local.port()) << 16 | u32::from(remote.port()));
        let f = h.finish() as u32;
        // RFC 6528 3: "M is the 4 microsecond timer". Like Linux (`seq_scale`: "For 10 Gb/s
        // Ethernet, a 1 GHz clock should be ok, but we also need to limit the resolution so
        // that the u32 seq overlaps less than one time per MSL (2 minutes). Choosing a clock of
        // 64 ns period is OK. (period of 274 s)"), M ticks every 64 ns: a 4 us clock advances
        // only 250 kB/s, so a 4-tuple reused milliseconds after a transfer started its new
        // incarnation below the old one's sequence numbers, where the old one's duplicates
        // (and RSTs answering them) were in the new window (found by the Monte-Carlo campaign,
        // `stack/tests/campaign.rs`, scenario churn-tuple-reuse).
        let m = (now.as_nanos() >> 6) as u32;
        f.wrapping_add(m)
    }

    /// The offset of our timestamp clock towards `remote` (RFC 7323 7.1 suggests a random
    /// offset per connection; Linux `secure_tcp_ts_off` keys it by the address pair only, so
    /// that the TSvals a peer sees keep growing across connections, which RFC 6191's reuse of
    /// TIME-WAIT 4-tuples relies on).
    pub fn ts_offset(&self, local: core::net::Ipv4Addr, remote: core::net::Ipv4Addr) -> u32 {
        // One fixed-width word, and a length (8 bytes) no ISN input has (12 bytes): the two
        // functions never hash the same message.
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write_u64(u64::from(local.to_bits()) << 32 | u64::from(remote.to_bits()));
        h.finish() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, last), port)
    }

    #[test]
    fn isn_grows_with_the_64ns_clock_for_one_tuple() {
        let g = IsnGenerator::new([7; 16]);
        let a = g.isn(Instant::from_micros(1000), addr(1, 40000), addr(2, 80));
        let b = g.isn(Instant::from_micros(1400), addr(1, 40000), addr(2, 80));
        // 400 us / 64 ns.
        assert_eq!(b.wrapping_sub(a), 6250);
    }

    #[test]
    fn ts_offset_depends_on_the_address_pair_only() {
        let g = IsnGenerator::new([7; 16]);
        let (l, r) = (*addr(1, 1).ip(), *addr(2, 1).ip());
        assert_eq!(g.ts_offset(l, r), g.ts_offset(l, r));
        assert_ne!(g.ts_offset(l, r), g.ts_offset(r, l));
        assert_ne!(
            g.ts_offset(l, r),
            IsnGenerator::new([8; 16]).ts_offset(l, r)
        );
    }

    #[test]
    fn isn_differs_between_tuples_and_keys() {
        let g = IsnGenerator::new([7; 16]);
        let t = Instant::from_micros(1000);
        let a = g.isn(t, addr(1, 40000), addr(2, 80));
        assert_ne!(a, g.isn(t, addr(1, 40001), addr(2, 80)));
        assert_ne!(a, g.isn(t, addr(2, 80), addr(1, 40000)));
        assert_ne!(
            a,
            IsnGenerator::new([8; 16]).isn(t, addr(1, 40000), addr(2, 80))
        );
    }
}
