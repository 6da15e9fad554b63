//! The bind table shared by the shards of one runtime: who holds each local TCP port by an
//! explicit bind (`listen`, `bind` + `connect`), so that two shards never both bind one port
//! without `SO_REUSEPORT`, and so that no shard hands out as an ephemeral port one that another
//! shard has bound (the failure F-Stack users report: each of its processes kept its own port
//! table).
//!
//! # Lock-free, and off the packet path
//!
//! One `AtomicU64` owner word per port (65536 words, 512 KiB per runtime), claimed and released
//! with compare-and-swap by `listen`, a bound `connect` and their `close`. Receiving a packet
//! never reads it: a flow belongs to the shard its RSS hash names (design rules 4 and 5), so the
//! table is only about *binding*, which Linux also decides in its bind hash
//! (`inet_csk_get_port`), never per packet. Ephemeral port choice reads a word per candidate
//! port (one relaxed atomic load; shared read-mostly cache lines).
//!
//! # The owner word
//!
//! ```text
//! bit 63     SO_REUSEPORT group: every holder set SO_REUSEPORT
//! bits 32-62 owner: who made the first claim (meaningful for exclusive words only)
//! bits 0-31  claims: how many binds hold the port; 0 = free (the whole word is 0)
//! ```
//!
//! Rules, as Linux's `inet_csk_bind_conflict` applies them between sockets of different owners:
//! - a free port is claimed by anyone;
//! - an exclusive word (no `SO_REUSEPORT`) admits further claims of its own owner only; the
//!   owner's shard has all the facts and applies its own checks (`SO_REUSEADDR`, TIME-WAIT,
//!   its listeners), so the table need not repeat them. Another owner gets `EADDRINUSE`;
//! - a `SO_REUSEPORT` word admits any claim that also sets `SO_REUSEPORT` (one listener per
//!   shard on one port, the point of the option), and nothing else.
//!
//! Ephemeral ports need no entry: a runtime of several shards always steers by RSS (the
//! device's, or a software one it assumes), and a port chosen by one shard towards a destination
//! steers that 4-tuple's replies to that shard's queue only, so no other shard can choose the
//! same 4-tuple (`steering::tests::two_shards_never_pick_the_same_port_towards_one_destination`).
//!
//! An owner is a shard ([`BindTable::shard_owner`]) or the runtime's listen-on-every-shard
//! group ([`BindTable::RUNTIME_GROUP`]), whose listeners on all shards are one socket as far as
//! binding goes.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bit 63: the holders share the port with `SO_REUSEPORT`.
const REUSE_PORT: u64 = 1 << 63;
/// Bits 32..=62: the owner.
const OWNER_SHIFT: u32 = 32;
const OWNER_MASK: u64 = 0x7fff_ffff;
/// Bits 0..=31: the number of claims.
const COUNT_MASK: u64 = 0xffff_ffff;

/// Who claims a port: a shard, or the runtime's group of listeners on every shard. 31 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindOwner(u32);

/// The port is held by another owner (`EADDRINUSE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortTaken;

/// The owner words of every TCP port, shared (`Arc`) by the shards of a runtime.
pub struct BindTable {
    words: Box<[AtomicU64]>,
}

impl core::fmt::Debug for BindTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let held = self
            .words
            .iter()
            .filter(|w| w.load(Ordering::Relaxed) != 0)
            .count();
        f.debug_struct("BindTable")
            .field("ports_held", &held)
            .finish()
    }
}

impl Default for BindTable {
    fn default() -> Self {
        Self::new()
    }
}

impl BindTable {
    /// The owner that stands for the runtime's listeners on every shard (`Runtime::listen`).
    pub const RUNTIME_GROUP: BindOwner = BindOwner(OWNER_MASK as u32);

    /// Every port free. Allocates the 65536 words (512 KiB), once per runtime.
    pub fn new() -> Self {
        BindTable {
            words: (0..=u16::MAX).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The owner standing for shard `index` (indices from 2^31 - 1 up share one owner: no
    /// runtime has that many shards).
    pub const fn shard_owner(index: u32) -> BindOwner {
        let max = OWNER_MASK as u32 - 1;
        BindOwner(if index > max { max } else { index })
    }

    fn word(&self, port: u16) -> &AtomicU64 {
        // 65536 words: every u16 indexes one.
        &self.words[usize::from(port)]
    }

    /// Claims `port` for `owner` (see the [module documentation](self) for the rules).
    pub fn claim(&self, port: u16, owner: BindOwner, reuse_port: bool) -> Result<(), PortTaken> {
        let word = self.word(port);
        let mut current = word.load(Ordering::Acquire);
        loop {
            let next = if current == 0 {
                let flag = if reuse_port { REUSE_PORT } else { 0 };
                flag | (u64::from(owner.0) << OWNER_SHIFT) | 1
            } else {
                let shared = current & REUSE_PORT != 0;
                let holder = ((current >> OWNER_SHIFT) & OWNER_MASK) as u32;
                let admitted = if shared {
                    reuse_port
                } else {
                    holder == owner.0
                };
                if !admitted || current & COUNT_MASK == COUNT_MASK {
                    return Err(PortTaken);
                }
                current + 1
            };
            match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back one claim on `port`; the port is free when the last one goes.
    pub fn release(&self, port: u16) {
        let word = self.word(port);
        let mut current = word.load(Ordering::Acquire);
        loop {
            let next = match current & COUNT_MASK {
                0 => return,
                1 => 0,
                _ => current - 1,
            };
            match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// True if some bind holds `port` (ephemeral port choice skips these, as Linux's
    /// `__inet_hash_connect` skips ports with a bind bucket from an explicit bind).
    #[inline]
    pub fn is_bound(&self, port: u16) -> bool {
        self.word(port).load(Ordering::Relaxed) != 0
    }

    /// How many binds hold `port` (0: free).
    pub fn claims(&self, port: u16) -> u32 {
        (self.word(port).load(Ordering::Acquire) & COUNT_MASK) as u32
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use std::sync::Arc;

    const A: BindOwner = BindTable::shard_owner(0);
    const B: BindOwner = BindTable::shard_owner(1);

    #[test]
    fn an_exclusive_port_admits_its_owner_only_until_released() {
        let t = BindTable::new();
        assert!(!t.is_bound(80));
        assert_eq!(t.claim(80, A, false), Ok(()));
        assert!(t.is_bound(80));
        assert_eq!(t.claim(80, B, false), Err(PortTaken));
        assert_eq!(t.claim(80, B, true), Err(PortTaken));
        // The owner's own second claim is for its shard to judge.
        assert_eq!(t.claim(80, A, false), Ok(()));
        assert_eq!(t.claims(80), 2);
        t.release(80);
        assert_eq!(t.claim(80, B, false), Err(PortTaken));
        t.release(80);
        assert!(!t.is_bound(80));
        assert_eq!(t.claim(80, B, false), Ok(()));
        // Releasing a free port changes nothing.
        t.release(81);
        assert_eq!(t.claims(81), 0);
    }

    #[test]
    fn a_reuseport_port_admits_reuseport_claims_of_any_owner() {
        let t = BindTable::new();
        assert_eq!(t.claim(443, A, true), Ok(()));
        assert_eq!(t.claim(443, B, true), Ok(()));
        assert_eq!(t.claim(443, B, false), Err(PortTaken));
        assert_eq!(t.claim(443, A, false), Err(PortTaken));
        assert_eq!(t.claims(443), 2);
        t.release(443);
        t.release(443);
        assert_eq!(t.claim(443, B, false), Ok(()));
    }

    #[test]
    fn the_runtime_group_is_one_owner_across_shards() {
        let t = BindTable::new();
        for _ in 0..4 {
            assert_eq!(t.claim(7, BindTable::RUNTIME_GROUP, false), Ok(()));
        }
        assert_eq!(t.claim(7, A, false), Err(PortTaken));
        assert_ne!(BindTable::shard_owner(u32::MAX), BindTable::RUNTIME_GROUP);
    }

    /// Two threads race for the same ports: each port goes to exactly one of them.
    #[test]
    fn racing_claims_give_each_port_to_one_owner() {
        let t = Arc::new(BindTable::new());
        let won: Vec<Vec<u16>> = (0..2u32)
            .map(|i| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    (1000..3000u16)
                        .filter(|&p| t.claim(p, BindTable::shard_owner(i), false).is_ok())
                        .collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(won[0].len() + won[1].len(), 2000);
        assert!(won[0].iter().all(|p| !won[1].contains(p)));
    }
}
