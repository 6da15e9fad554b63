//! Counters a shard publishes for other threads to read without locks: one `AtomicU64` per
//! counter, written by the shard with relaxed stores, then a release increment of the
//! publication count.
//!
//! A reader sees every counter at a value the shard has published (never a torn value), but
//! not necessarily all from the same publication: a snapshot taken while the shard publishes may
//! mix two consecutive ones. Counters only grow, so that is harmless for monitoring; a
//! consistent snapshot is what [`super::Control::Stats`] is for.

use super::RuntimeCounters;
use crate::shard::Stats;
use crate::time::Instant;
use core::sync::atomic::{AtomicU64, Ordering};

/// What one shard last published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardSnapshot {
    /// The protocol counters ([`crate::shard::Shard::stats`]).
    pub stats: Stats,
    /// The runtime's own counters for the shard (forwarding, idling).
    pub runtime: RuntimeCounters,
    /// When the shard published, on the runtime's clock ([`super::Runtime::now`]).
    pub at: Instant,
    /// How many times the shard has published (0: not yet).
    pub publications: u64,
}

/// The atomics behind one shard's [`ShardSnapshot`].
#[derive(Debug)]
pub(super) struct Published {
    values: Box<[AtomicU64]>,
    at: AtomicU64,
    publications: AtomicU64,
}

fn value_count() -> usize {
    let mut n = 0;
    Stats::default().for_each_mut(|_| n += 1);
    RuntimeCounters::default().for_each_mut(|_| n += 1);
    n
}

impl Published {
    pub(super) fn new() -> Self {
        Published {
            values: (0..value_count()).map(|_| AtomicU64::new(0)).collect(),
            at: AtomicU64::new(0),
            publications: AtomicU64::new(0),
        }
    }

    /// Stores `stats` and `runtime` (called by the owning shard only).
    pub(super) fn publish(&self, mut stats: Stats, mut runtime: RuntimeCounters, at: Instant) {
        let mut values = self.values.iter();
        let mut store = |v: &mut u64| {
            if let Some(slot) = values.next() {
                slot.store(*v, Ordering::Relaxed);
            }
        };
        stats.for_each_mut(&mut store);
        runtime.for_each_mut(&mut store);
        self.at.store(at.as_nanos(), Ordering::Relaxed);
        self.publications.fetch_add(1, Ordering::Release);
    }

    /// The last published values.
    pub(super) fn read(&self) -> ShardSnapshot {
        let publications = self.publications.load(Ordering::Acquire);
        let mut snap = ShardSnapshot {
            publications,
            at: Instant::from_nanos(self.at.load(Ordering::Relaxed)),
            ..ShardSnapshot::default()
        };
        let mut values = self.values.iter();
        let mut load = |v: &mut u64| {
            if let Some(slot) = values.next() {
                *v = slot.load(Ordering::Relaxed);
            }
        };
        snap.stats.for_each_mut(&mut load);
        snap.runtime.for_each_mut(&mut load);
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_published_reads_back() {
        let p = Published::new();
        assert_eq!(p.read(), ShardSnapshot::default());
        let mut stats = Stats::default();
        stats.ethernet.rx_frames = 7;
        stats.tcp.active_opens = 3;
        stats.tcp_drops.count(crate::wire::Error::BadChecksum);
        let runtime = RuntimeCounters {
            forwarded_out: 5,
            connections: 9,
            ..RuntimeCounters::default()
        };
        p.publish(stats, runtime, Instant::from_millis(4));
        let snap = p.read();
        assert_eq!(snap.stats, stats);
        assert_eq!(snap.runtime, runtime);
        assert_eq!(snap.at, Instant::from_millis(4));
        assert_eq!(snap.publications, 1);
    }
}
