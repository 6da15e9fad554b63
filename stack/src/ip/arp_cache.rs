//! The ARP cache (RFC 826): IPv4 next hop -> MAC, with resolution, refresh and expiry.
//!
//! Entry life cycle, a simplified version of Linux's neighbour state machine:
//! - `Incomplete`: a request is broadcast at once and every `retrans_time`; after `max_probes`
//!   unanswered requests the entry fails and the packets waiting on it are dropped (Linux:
//!   `mcast_solicit` = 3, `retrans_time_ms` = 1000).
//! - `Reachable`: confirmed by an ARP packet from that host; valid for `reachable_time` (Linux:
//!   `base_reachable_time_ms` = 30000).
//! - `Probe`: used after `reachable_time`; the old MAC is still used while up to `max_probes`
//!   unicast requests are sent to it (Linux `ucast_solicit` = 3); no answer removes the entry.
//!
//! The cache is bounded: when full, the stalest resolved entry is evicted; if every entry is
//! still resolving, the new resolution is refused (counted by the caller).

use crate::time::{Duration, Instant};
use crate::wire::{EthernetAddress, Ipv4Addr};
use std::collections::HashMap;

/// ARP cache tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpConfig {
    /// Most entries held at once (Linux `gc_thresh3` is 1024).
    pub capacity: usize,
    /// How long a confirmed entry is used without re-probing.
    pub reachable_time: Duration,
    /// Interval between requests while resolving or probing.
    pub retrans_time: Duration,
    /// Requests sent before giving up.
    pub max_probes: u8,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            capacity: 1024,
            reachable_time: Duration::from_secs(30),
            retrans_time: Duration::from_secs(1),
            max_probes: 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Incomplete {
        probes_sent: u8,
        next_probe: Instant,
    },
    Reachable {
        mac: EthernetAddress,
        until: Instant,
    },
    Probe {
        mac: EthernetAddress,
        probes_sent: u8,
        next_probe: Instant,
    },
}

/// An ARP request the cache wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The address being resolved.
    pub target: Ipv4Addr,
    /// Where to send the request: broadcast while resolving, the known MAC when refreshing.
    pub dst_mac: EthernetAddress,
}

/// Result of [`ArpCache::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The MAC to send to.
    Known(EthernetAddress),
    /// Being resolved: queue the packet until [`ArpCache::update`] reports the answer.
    Pending,
    /// The cache is full of entries still resolving; the packet cannot wait.
    NoRoom,
}

/// What an incoming ARP packet did to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Nothing: no entry and not asked to create one.
    Ignored,
    /// An entry was refreshed (same or new MAC) or created.
    Confirmed,
    /// An entry that was resolving is now known: flush the packets waiting on it.
    Resolved,
}

/// The ARP cache of one shard.
#[derive(Debug)]
pub struct ArpCache {
    config: ArpConfig,
    /// Keyed with the shard's secret ([`crate::keyed_hash`]): a host on the link picks the
    /// addresses it announces. Looked up for every frame sent.
    entries: HashMap<Ipv4Addr, State, ahash::RandomState>,
    /// No entry has a probe or an expiry due before this ([`Instant::MAX`]: no entry is
    /// resolving or being refreshed). Lowered whenever an entry starts resolving and raised
    /// after a scan, so that `poll_probe` and `handle_timeout`, called on every loop iteration
    /// of a shard, do not scan the table while nothing is due (they did, 1.75 % of a
    /// memory-wire rr profile).
    next_due: Instant,
    /// The last address [`ArpCache::resolve`] found reachable, its MAC and until when: a
    /// shard usually sends frame after frame to one next hop (its gateway, or the one peer of
    /// a benchmark), and this answers those without hashing (the lookup was 1.8 % of a
    /// memory-wire rr profile). Cleared whenever an entry changes or goes.
    last: Option<(Ipv4Addr, EthernetAddress, Instant)>,
}

impl ArpCache {
    /// An empty cache, its hash keyed with `hash_key` (a per-shard secret drawn at random);
    /// memory for `config.capacity` entries is reserved now.
    pub fn new(config: ArpConfig, hash_key: [u8; 16]) -> Self {
        ArpCache {
            config,
            entries: HashMap::with_capacity_and_hasher(
                config.capacity,
                crate::keyed_hash::keyed_state(hash_key),
            ),
            next_due: Instant::MAX,
            last: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ArpConfig {
        &self.config
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The confirmed or still-usable MAC of `ip`, if any (no side effects).
    pub fn peek(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        match self.entries.get(&ip)? {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(*mac),
            State::Incomplete { .. } => None,
        }
    }

    /// Looks up `ip` for sending a packet at `now`, starting resolution or a refresh as needed.
    pub fn resolve(&mut self, now: Instant, ip: Ipv4Addr) -> Resolution {
        if let Some((last, mac, until)) = self.last
            && last == ip
            && now < until
        {
            return Resolution::Known(mac);
        }
        if let Some(state) = self.entries.get_mut(&ip) {
            return match *state {
                State::Reachable { mac, until } => {
                    if now >= until {
                        *state = State::Probe {
                            mac,
                            probes_sent: 0,
                            next_probe: now,
                        };
                        self.next_due = self.next_due.min(now);
                        self.last = None;
                    } else {
                        self.last = Some((ip, mac, until));
                    }
                    Resolution::Known(mac)
                }
                State::Probe { mac, .. } => Resolution::Known(mac),
                State::Incomplete { .. } => Resolution::Pending,
            };
        }
        if self.entries.len() >= self.config.capacity && !self.evict_one() {
            return Resolution::NoRoom;
        }
        self.entries.insert(
            ip,
            State::Incomplete {
                probes_sent: 0,
                next_probe: now,
            },
        );
        self.next_due = self.next_due.min(now);
        Resolution::Pending
    }

    /// Removes the resolved entry that expires first; false if every entry is resolving.
    fn evict_one(&mut self) -> bool {
        self.last = None;
        let victim = self
            .entries
            .iter()
            .filter_map(|(ip, s)| match s {
                State::Reachable { until, .. } => Some((*until, *ip)),
                State::Probe { next_probe, .. } => Some((*next_probe, *ip)),
                State::Incomplete { .. } => None,
            })
            .min();
        match victim {
            Some((_, ip)) => self.entries.remove(&ip).is_some(),
            None => false,
        }
    }

    /// Records that `ip` is at `mac` (from an ARP request or reply that `ip` sent).
    ///
    /// RFC 826, "Packet Reception": if the sender is already in the table, its entry is updated;
    /// a new entry is created only if `create` (the packet was addressed to us). Gratuitous ARP
    /// thus refreshes existing entries but adds none (Linux `arp_accept` = 0).
    pub fn update(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: EthernetAddress,
        create: bool,
    ) -> Update {
        let until = now + self.config.reachable_time;
        self.last = None;
        match self.entries.get_mut(&ip) {
            Some(state) => {
                let was_incomplete = matches!(state, State::Incomplete { .. });
                *state = State::Reachable { mac, until };
                if was_incomplete {
                    Update::Resolved
                } else {
                    Update::Confirmed
                }
            }
            None if create => {
                if self.entries.len() >= self.config.capacity && !self.evict_one() {
                    return Update::Ignored;
                }
                self.entries.insert(ip, State::Reachable { mac, until });
                Update::Confirmed
            }
            None => Update::Ignored,
        }
    }

    /// The next ARP request due at `now`, if any; marks it sent. Call until it returns `None`.
    pub fn poll_probe(&mut self, now: Instant) -> Option<Probe> {
        if now < self.next_due {
            return None;
        }
        let retrans = self.config.retrans_time;
        let max = self.config.max_probes;
        for (ip, state) in self.entries.iter_mut() {
            match state {
                State::Incomplete {
                    probes_sent,
                    next_probe,
                } if *next_probe <= now && *probes_sent < max => {
                    *probes_sent += 1;
                    *next_probe = now + retrans;
                    return Some(Probe {
                        target: *ip,
                        dst_mac: EthernetAddress::BROADCAST,
                    });
                }
                State::Probe {
                    mac,
                    probes_sent,
                    next_probe,
                } if *next_probe <= now && *probes_sent < max => {
                    *probes_sent += 1;
                    *next_probe = now + retrans;
                    return Some(Probe {
                        target: *ip,
                        dst_mac: *mac,
                    });
                }
                _ => {}
            }
        }
        // A whole scan found nothing due: nothing is until the earliest deadline.
        self.next_due = self.earliest_deadline().unwrap_or(Instant::MAX);
        None
    }

    /// Expires entries whose probes all went unanswered, calling `failed` for each one that was
    /// still resolving (its waiting packets must be dropped).
    pub fn handle_timeout(&mut self, now: Instant, mut failed: impl FnMut(Ipv4Addr)) {
        if now < self.next_due {
            return;
        }
        let max = self.config.max_probes;
        self.last = None;
        self.entries.retain(|ip, state| match *state {
            State::Incomplete {
                probes_sent,
                next_probe,
            } if probes_sent >= max && next_probe <= now => {
                failed(*ip);
                false
            }
            State::Probe {
                probes_sent,
                next_probe,
                ..
            } => !(probes_sent >= max && next_probe <= now),
            _ => true,
        });
        self.next_due = self.earliest_deadline().unwrap_or(Instant::MAX);
    }

    /// The next time [`ArpCache::poll_probe`] or [`ArpCache::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.next_due == Instant::MAX {
            return None;
        }
        self.earliest_deadline()
    }

    /// The earliest probe or expiry of the entries resolving or being refreshed (a scan).
    fn earliest_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|s| match s {
                State::Incomplete { next_probe, .. } | State::Probe { next_probe, .. } => {
                    Some(*next_probe)
                }
                State::Reachable { .. } => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const KEY: [u8; 16] = [7; 16];

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn unknown_address_is_requested_at_once_then_retried() {
        let mut c = ArpCache::new(ArpConfig::default(), KEY);
        assert_eq!(c.resolve(t(0), A), Resolution::Pending);
        assert_eq!(
            c.poll_probe(t(0)),
            Some(Probe {
                target: A,
                dst_mac: EthernetAddress::BROADCAST
            })
        );
        assert_eq!(c.poll_probe(t(0)), None);
        assert_eq!(c.poll_timeout(), Some(t(1000)));
        assert_eq!(c.poll_probe(t(999)), None);
        assert!(c.poll_probe(t(1000)).is_some());
        // A second packet to the same address does not start another resolution.
        assert_eq!(c.resolve(t(1001), A), Resolution::Pending);
        assert_eq!(c.poll_probe(t(1001)), None);
    }

    #[test]
    fn reply_resolves_pending_entry() {
        let mut c = ArpCache::new(ArpConfig::default(), KEY);
        c.resolve(t(0), A);
        c.poll_probe(t(0));
        assert_eq!(c.update(t(5), A, MAC, false), Update::Resolved);
        assert_eq!(c.resolve(t(6), A), Resolution::Known(MAC));
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn unanswered_resolution_fails_after_max_probes() {
        let mut c = ArpCache::new(ArpConfig::default(), KEY);
        c.resolve(t(0), A);
        let mut sent = 0;
        let mut failed = Vec::new();
        for ms in (0..=4000).step_by(100) {
            while c.poll_probe(t(ms)).is_some() {
                sent += 1;
            }
            c.handle_timeout(t(ms), |ip| failed.push(ip));
        }
        assert_eq!(sent, 3);
        assert_eq!(failed, vec![A]);
        assert!(c.is_empty());
    }

    #[test]
    fn stale_entry_is_still_used_while_refreshed_by_unicast_probe() {
        let mut c = ArpCache::new(ArpConfig::default(), KEY);
        c.update(t(0), A, MAC, true);
        assert_eq!(c.resolve(t(30_000), A), Resolution::Known(MAC));
        assert_eq!(
            c.poll_probe(t(30_000)),
            Some(Probe {
                target: A,
                dst_mac: MAC
            })
        );
        assert_eq!(c.update(t(30_001), A, MAC, false), Update::Confirmed);
        assert_eq!(c.poll_probe(t(31_000)), None);
    }

    #[test]
    fn the_last_lookup_shortcut_follows_new_macs_expiry_and_removal() {
        let mut c = ArpCache::new(ArpConfig::default(), KEY);
        c.update(t(0), A, MAC, true);
        assert_eq!(c.resolve(t(1), A), Resolution::Known(MAC));
        assert_eq!(c.resolve(t(2), A), Resolution::Known(MAC));
        // The host moved to another MAC: the next frame goes there.
        let moved = EthernetAddress([2, 0, 0, 0, 0, 9]);
        assert_eq!(c.update(t(3), A, moved, false), Update::Confirmed);
        assert_eq!(c.resolve(t(4), A), Resolution::Known(moved));
        // Reachable until 3 + 30 s: the first frame after that starts a unicast refresh.
        assert_eq!(c.resolve(t(30_002), A), Resolution::Known(moved));
        assert_eq!(c.poll_probe(t(30_002)), None);
        assert_eq!(c.resolve(t(30_003), A), Resolution::Known(moved));
        assert_eq!(
            c.poll_probe(t(30_003)),
            Some(Probe {
                target: A,
                dst_mac: moved
            })
        );
        // Unanswered, the entry goes; the next frame resolves afresh.
        for ms in (30_003..=34_003).step_by(100) {
            while c.poll_probe(t(ms)).is_some() {}
            c.handle_timeout(t(ms), |_| {});
        }
        assert_eq!(c.peek(A), None);
        assert_eq!(c.resolve(t(34_004), A), Resolution::Pending);
    }

    #[test]
    fn stale_entry_without_answer_is_removed() {
        let mut c = ArpCache::new(ArpConfig::default(), KEY);
        c.update(t(0), A, MAC, true);
        c.resolve(t(30_000), A);
        for ms in (30_000..=34_000).step_by(100) {
            while c.poll_probe(t(ms)).is_some() {}
            c.handle_timeout(t(ms), |_| {
                panic!("a refresh failure drops no queued packets")
            });
        }
        assert_eq!(c.peek(A), None);
    }

    #[test]
    fn gratuitous_arp_updates_but_does_not_create() {
        let mut c = ArpCache::new(ArpConfig::default(), KEY);
        assert_eq!(c.update(t(0), A, MAC, false), Update::Ignored);
        assert!(c.is_empty());
        c.update(t(0), A, MAC, true);
        let moved = EthernetAddress([2, 0, 0, 0, 0, 9]);
        assert_eq!(c.update(t(1), A, moved, false), Update::Confirmed);
        assert_eq!(c.peek(A), Some(moved));
    }

    #[test]
    fn full_cache_evicts_resolved_entries_but_never_resolving_ones() {
        let mut c = ArpCache::new(
            ArpConfig {
                capacity: 2,
                ..ArpConfig::default()
            },
            KEY,
        );
        let b = Ipv4Addr::new(198, 18, 0, 3);
        let d = Ipv4Addr::new(198, 18, 0, 4);
        c.update(t(0), A, MAC, true);
        assert_eq!(c.resolve(t(1), b), Resolution::Pending);
        assert_eq!(c.resolve(t(2), d), Resolution::Pending); // evicted A
        assert_eq!(c.peek(A), None);
        assert_eq!(c.resolve(t(3), A), Resolution::NoRoom);
        assert_eq!(c.len(), 2);
    }
}
