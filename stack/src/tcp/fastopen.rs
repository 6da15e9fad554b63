//! TCP Fast Open (RFC 7413): data in the SYN, and its cookies.
//!
//! Server side: the cookie is a MAC of the client's IP address under a server secret (RFC 7413
//! 4.1.2: "The server is in charge of cookie generation and authentication ... a MAC of the
//! client IP address"); Linux computes SipHash of the addresses into 8 bytes, which
//! [`ServerKeys`] does too. Keys rotate, and the previous key is still accepted for a grace
//! period (Linux keeps a primary and a backup key, `TCP_FASTOPEN_KEY`), so cookies handed out
//! just before a rotation keep working.
//!
//! Client side: [`ClientCache`] keeps per server IP the cookie the server gave and the MSS it
//! announced (Linux `tcp_fastopen_cache_set`/`_get`, the tcp_metrics cache), and remembers
//! servers whose path lost a SYN with data (RFC 7413 4.1.3.1: "the client SHOULD ... disable
//! Fast Open" towards them), for an hour (Linux: `60*HZ << syn_loss`, at least a minute, up to
//! hours; one fixed hour here).

use crate::time::{Duration, Instant};
use crate::wire::tcp_option::TfoCookie;
use core::hash::Hasher;
use core::net::Ipv4Addr;
use siphasher::sip::SipHasher24;
use std::collections::HashMap;

/// Length of the cookies this server makes (Linux `TCP_FASTOPEN_COOKIE_SIZE`: 8).
pub const COOKIE_LEN: usize = 8;

/// How long a destination stays without Fast Open after a SYN with data was lost.
pub const DISABLE_AFTER_LOSS: Duration = Duration::from_secs(3600);

/// The server's cookie secrets.
#[derive(Clone)]
pub struct ServerKeys {
    key: [u8; 16],
    /// The key before the last rotation, and until when it is accepted.
    previous: Option<([u8; 16], Instant)>,
}

impl core::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secrets.
        f.debug_struct("ServerKeys").finish_non_exhaustive()
    }
}

fn mac(key: &[u8; 16], server: Ipv4Addr, client: Ipv4Addr) -> [u8; COOKIE_LEN] {
    let mut h = SipHasher24::new_with_key(key);
    h.write(&client.octets());
    h.write(&server.octets());
    h.finish().to_le_bytes()
}

impl ServerKeys {
    /// Secrets keyed with `key` (drawn at random by the caller).
    pub const fn new(key: [u8; 16]) -> Self {
        ServerKeys {
            key,
            previous: None,
        }
    }

    /// Replaces the key at `now`; cookies made with the old one are still accepted for
    /// `grace`.
    pub fn rotate(&mut self, now: Instant, key: [u8; 16], grace: Duration) {
        self.previous = Some((self.key, now + grace));
        self.key = key;
    }

    /// The cookie for `client` talking to our address `server`.
    pub fn cookie(&self, server: Ipv4Addr, client: Ipv4Addr) -> TfoCookie {
        // 8 bytes: a length RFC 7413 allows, so `new` cannot fail; REQUEST is never reached.
        TfoCookie::new(&mac(&self.key, server, client)).unwrap_or(TfoCookie::REQUEST)
    }

    /// RFC 7413 4.2.2: whether `cookie` from `client` is valid (under the current key, or the
    /// previous one within its grace period).
    pub fn check(
        &self,
        now: Instant,
        server: Ipv4Addr,
        client: Ipv4Addr,
        cookie: &TfoCookie,
    ) -> bool {
        let got = cookie.as_bytes();
        if got.len() != COOKIE_LEN {
            return false;
        }
        if got == mac(&self.key, server, client) {
            return true;
        }
        self.previous
            .is_some_and(|(old, until)| now < until && got == mac(&old, server, client))
    }
}

/// How a Fast Open attempt of an active open went (reported once to the shard, which updates
/// its [`ClientCache`] and counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveOutcome {
    /// The SYN-ACK acknowledged the data of our SYN (Linux `TCPFastOpenActive`).
    DataAcked,
    /// The SYN-ACK acknowledged only the SYN: the data is sent again (Linux
    /// `TCPFastOpenActiveFail`, `tcp_rcv_fastopen_synack`).
    DataNotAcked,
    /// The SYN with data timed out (RFC 7413 4.1.3.1: a path that drops such SYNs).
    SynLost,
}

/// Fast Open state of a connection, kept in its TCB: mostly of an active open, and whether a
/// passive one was opened by Fast Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveState {
    /// The option of our first SYN: a cookie, or a cookie request; `None`: no Fast Open.
    pub(crate) cookie: Option<TfoCookie>,
    /// Most data bytes the SYN may carry.
    pub(crate) max_syn_data: u32,
    /// Data bytes the first SYN carried.
    pub(crate) syn_data: u32,
    /// The cookie the server's SYN-ACK carried, not yet taken by the shard.
    pub(crate) peer_cookie: Option<TfoCookie>,
    /// The outcome, not yet taken by the shard.
    pub(crate) outcome: Option<ActiveOutcome>,
    /// Server side: this passive connection was created by a SYN with a valid cookie (RFC 7413
    /// 4.2.2), so the application may write to it in SYN-RECEIVED (see
    /// `Tcb::set_passive_fast_open`).
    pub(crate) passive_child: bool,
}

/// What the shard learns from a connection's Fast Open attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveEvent {
    /// A cookie the server gave.
    pub cookie: Option<TfoCookie>,
    /// How the SYN's data fared.
    pub outcome: Option<ActiveOutcome>,
}

/// What the client knows about one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedServer {
    /// The server's cookie, once it gave one.
    pub cookie: Option<TfoCookie>,
    /// The MSS the server announced (bounds the data in the SYN).
    pub mss: u16,
    /// Fast Open is off towards this server until then (a SYN with data was lost).
    pub disabled_until: Option<Instant>,
}

/// The client's Fast Open cache, per server IP, bounded.
#[derive(Debug)]
pub struct ClientCache {
    entries: HashMap<Ipv4Addr, CachedServer>,
    capacity: usize,
}

impl ClientCache {
    /// A cache for up to `capacity` servers, reserved now (inserting never allocates).
    pub fn with_capacity(capacity: usize) -> Self {
        ClientCache {
            entries: HashMap::with_capacity(capacity),
            capacity,
        }
    }

    /// The entry of `server`.
    pub fn get(&self, server: Ipv4Addr) -> Option<&CachedServer> {
        self.entries.get(&server)
    }

    fn entry(&mut self, server: Ipv4Addr) -> Option<&mut CachedServer> {
        if !self.entries.contains_key(&server) && self.entries.len() >= self.capacity {
            // Full: make room by dropping some other entry (any; the cache is a hint).
            let victim = self.entries.keys().next().copied()?;
            self.entries.remove(&victim);
        }
        Some(self.entries.entry(server).or_insert(CachedServer {
            cookie: None,
            mss: 0,
            disabled_until: None,
        }))
    }

    /// Linux `tcp_fastopen_cache_set`: the server gave `cookie` and announced `mss`.
    pub fn store_cookie(&mut self, server: Ipv4Addr, cookie: TfoCookie, mss: u16) {
        if cookie.is_request() {
            return;
        }
        if let Some(e) = self.entry(server) {
            e.cookie = Some(cookie);
            e.mss = mss;
        }
    }

    /// A SYN with data to `server` was lost: no Fast Open towards it until `now` +
    /// [`DISABLE_AFTER_LOSS`].
    pub fn syn_data_lost(&mut self, now: Instant, server: Ipv4Addr) {
        if let Some(e) = self.entry(server) {
            e.disabled_until = Some(now + DISABLE_AFTER_LOSS);
        }
    }

    /// What a new connection to `server` sends in its SYN (Linux `tcp_fastopen_cookie_check`):
    /// `None` if Fast Open is disabled towards it; else the cached cookie and MSS, or a cookie
    /// request (with no MSS known).
    pub fn for_connect(&self, now: Instant, server: Ipv4Addr) -> Option<(TfoCookie, u16)> {
        match self.entries.get(&server) {
            Some(e) if e.disabled_until.is_some_and(|t| now < t) => None,
            Some(CachedServer {
                cookie: Some(c),
                mss,
                ..
            }) => Some((*c, *mss)),
            _ => Some((TfoCookie::REQUEST, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    #[test]
    fn cookie_is_a_mac_of_the_client_address() {
        let k = ServerKeys::new([1; 16]);
        let c = k.cookie(S, C);
        assert_eq!(c.as_bytes().len(), COOKIE_LEN);
        assert!(k.check(Instant::ZERO, S, C, &c));
        assert!(!k.check(Instant::ZERO, S, Ipv4Addr::new(198, 18, 0, 3), &c));
        assert!(!k.check(Instant::ZERO, S, C, &TfoCookie::REQUEST));
        assert!(!ServerKeys::new([2; 16]).check(Instant::ZERO, S, C, &c));
        assert_ne!(c, k.cookie(S, Ipv4Addr::new(198, 18, 0, 3)));
    }

    #[test]
    fn previous_key_is_accepted_for_the_grace_period() {
        let mut k = ServerKeys::new([1; 16]);
        let old = k.cookie(S, C);
        let t0 = Instant::from_millis(1000);
        k.rotate(t0, [2; 16], Duration::from_secs(10));
        assert_ne!(k.cookie(S, C), old);
        assert!(k.check(t0 + Duration::from_secs(9), S, C, &old));
        assert!(!k.check(t0 + Duration::from_secs(10), S, C, &old));
        assert!(k.check(t0 + Duration::from_secs(100), S, C, &k.cookie(S, C)));
    }

    #[test]
    fn client_cache_requests_then_uses_then_disables() {
        let mut cache = ClientCache::with_capacity(2);
        let t = Instant::from_millis(5);
        assert_eq!(cache.for_connect(t, S), Some((TfoCookie::REQUEST, 0)));
        let cookie = TfoCookie::new(&[7; 8]).unwrap();
        cache.store_cookie(S, cookie, 1460);
        assert_eq!(cache.for_connect(t, S), Some((cookie, 1460)));
        cache.syn_data_lost(t, S);
        assert_eq!(cache.for_connect(t + Duration::from_secs(3599), S), None);
        assert_eq!(
            cache.for_connect(t + DISABLE_AFTER_LOSS, S),
            Some((cookie, 1460))
        );
        // Bounded: a third server evicts one of the two.
        cache.store_cookie(C, cookie, 1400);
        cache.store_cookie(Ipv4Addr::new(198, 18, 0, 9), cookie, 1400);
        assert_eq!(cache.entries.len(), 2);
    }
}
