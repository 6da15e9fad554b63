//! A hierarchical timer wheel: every per-connection timer of a shard (retransmit, delayed ACK,
//! keepalive, FIN-WAIT-2, TIME-WAIT, persist) lives here.
//!
//! # Layout
//!
//! Time is cut into ticks of a fixed length (e.g. 1 ms); tick `n` is the instant
//! `n * tick` after the epoch of [`Instant`]. A deadline belongs to the tick it rounds **up** to,
//! so a timer never fires early: it fires at the first [`TimerWheel::advance`] whose `now` is at
//! or after its deadline rounded up to the tick.
//!
//! There are [`LEVELS`] (6) levels of 64 slots; a slot of level `l` spans `64^l` ticks, so the
//! wheel covers `64^6 = 2^36` ticks (2.2 years at 1 ms, 68 s at 1 ns). A timer is kept in the
//! level given by the highest bit in which its tick differs from the current tick (as in the
//! Linux kernel and tokio), and cascades to lower levels as time approaches its deadline: each
//! timer moves at most once per level, so the cost per timer is amortised O(1).
//!
//! Timers beyond the horizon are clamped into the top level, in the slot of their tick's digit at
//! that level; when that slot comes round (at most `2^36` ticks later, never after the
//! deadline) they are re-inserted and, if still beyond the horizon, go back into the top level
//! for another rotation. With 1 ms ticks that only concerns deadlines more than two years out.
//!
//! Timers whose tick has already passed when they are inserted (or rescheduled) wait in a
//! separate "expired" list and fire at the next [`TimerWheel::advance`].
//!
//! Each slot is an intrusive doubly linked list through a slab of nodes preallocated by
//! [`TimerWheel::new`] (indices, not pointers), so insert, cancel and reschedule are O(1) and
//! nothing is allocated afterwards. A 64-bit occupancy bitmap per level finds the next
//! non-empty slot of a level with one rotate and one `trailing_zeros`.

use crate::time::{Duration, Instant};
use core::cell::Cell;
use core::fmt;

/// Levels of the wheel.
pub const LEVELS: usize = 6;
/// Bits of the slot index in one level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Ticks covered by the whole wheel.
const HORIZON: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);
/// The list of timers already due, after the `LEVELS * SLOTS` slot lists.
const EXPIRED: usize = LEVELS * SLOTS;
/// Number of lists (slots plus the expired list).
const LISTS: usize = EXPIRED + 1;
/// "No node" in the links, and "on no list" for a free node.
const NIL: u32 = u32::MAX;
const NO_LIST: u16 = u16::MAX;

/// Identifies a timer in a [`TimerWheel`]: a slab index and the generation of that slot, so an
/// id that outlived its timer (fired, cancelled, slot reused) is recognised as stale.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

/// [`TimerWheel::insert`] failed: `capacity` timers are already pending.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timer wheel full")
    }
}

impl core::error::Error for Full {}

/// [`TimerWheel::reschedule`] failed: the timer already fired or was cancelled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Gone;

impl fmt::Display for Gone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timer already fired or cancelled")
    }
}

impl core::error::Error for Gone {}

#[derive(Debug)]
struct Node<T> {
    /// `Some` while the timer is pending.
    value: Option<T>,
    prev: u32,
    /// Next in the slot list, or in the free list for a free node.
    next: u32,
    generation: u32,
    /// Which list the node is on (`NO_LIST` when free).
    list: u16,
    /// The tick the deadline rounds up to.
    tick: u64,
    deadline: Instant,
}

/// A hierarchical timer wheel holding at most `capacity` timers with payloads of type `T`
/// (e.g. a connection index and a timer kind). See the [module documentation](self).
#[derive(Debug)]
pub struct TimerWheel<T> {
    nodes: Vec<Node<T>>,
    /// Head and tail of every slot list and of the expired list.
    heads: [u32; LISTS],
    tails: [u32; LISTS],
    /// Bit `s` of `occupied[l]`: slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    free: u32,
    len: usize,
    tick_ns: u64,
    /// The current tick: every timer with a tick at or before it has fired or is expired.
    elapsed: u64,
    /// The `now` of the latest advance (or of `new`).
    now: Instant,
    /// The earliest tick among the timers in the slots (not the expired list): `None` when
    /// unknown (recomputed on demand by `next_deadline`), `Some(None)` when the slots are empty.
    earliest: Cell<Option<Option<u64>>>,
}

/// The level for a timer at tick `when` seen from tick `elapsed` (`when > elapsed`).
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    if masked >= HORIZON {
        return LEVELS - 1;
    }
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// The slot of tick `when` in `level`.
fn slot_for(level: usize, when: u64) -> usize {
    ((when >> (SLOT_BITS as usize * level)) & (SLOTS as u64 - 1)) as usize
}

impl<T> TimerWheel<T> {
    /// A wheel for at most `capacity` pending timers (allocated here, once; clamped to
    /// `u32::MAX - 1`), with ticks of `tick` (at least 1 ns), starting at `now`.
    pub fn new(capacity: usize, tick: Duration, now: Instant) -> Self {
        let capacity = capacity.min(NIL as usize - 1);
        let tick_ns = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
        let mut nodes = Vec::with_capacity(capacity);
        for i in 0..capacity {
            let next = if i + 1 < capacity { i as u32 + 1 } else { NIL };
            nodes.push(Node {
                value: None,
                prev: NIL,
                next,
                generation: 0,
                list: NO_LIST,
                tick: 0,
                deadline: Instant::ZERO,
            });
        }
        TimerWheel {
            nodes,
            heads: [NIL; LISTS],
            tails: [NIL; LISTS],
            occupied: [0; LEVELS],
            free: if capacity > 0 { 0 } else { NIL },
            len: 0,
            tick_ns,
            elapsed: now.as_nanos() / tick_ns,
            now,
            earliest: Cell::new(Some(None)),
        }
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most timers pending at once.
    pub fn capacity(&self) -> usize {
        self.nodes.len()
    }

    /// The tick a deadline rounds up to.
    fn tick_of(&self, deadline: Instant) -> u64 {
        deadline.as_nanos().div_ceil(self.tick_ns)
    }

    /// The instant at which tick `tick` starts (saturating).
    fn instant_of(&self, tick: u64) -> Instant {
        let ns = u128::from(tick) * u128::from(self.tick_ns);
        Instant::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The node of a live id.
    fn live(&self, id: TimerId) -> Option<&Node<T>> {
        self.nodes
            .get(id.index as usize)
            .filter(|n| n.generation == id.generation && n.value.is_some())
    }

    /// Starts a timer firing at `deadline` with `value`, in O(1). A deadline at or before the
    /// current time fires at the next [`TimerWheel::advance`]. Fails when `capacity` timers
    /// are pending (`value` is dropped).
    pub fn insert(&mut self, deadline: Instant, value: T) -> Result<TimerId, Full> {
        let index = self.free;
        let Some(node) = self.nodes.get_mut(index as usize) else {
            return Err(Full);
        };
        self.free = node.next;
        node.value = Some(value);
        let generation = node.generation;
        self.len += 1;
        self.place(index, deadline);
        Ok(TimerId { index, generation })
    }

    /// Stops a pending timer and gives its value back, in O(1); `None` if it already fired or
    /// was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.live(id)?;
        self.unlink(id.index);
        let node = &mut self.nodes[id.index as usize];
        let value = node.value.take();
        node.generation = node.generation.wrapping_add(1);
        node.next = self.free;
        self.free = id.index;
        self.len -= 1;
        value
    }

    /// Moves a pending timer to a new deadline (earlier or later), in O(1). A deadline in the
    /// tick the timer already has only replaces the deadline: the node stays in its list,
    /// which is where placing it again would put it (a connection re-arms its timers on most
    /// segments, mostly within the same tick).
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> Result<(), Gone> {
        let tick = self.tick_of(deadline);
        let Some(node) = self
            .nodes
            .get_mut(id.index as usize)
            .filter(|n| n.generation == id.generation && n.value.is_some())
        else {
            return Err(Gone);
        };
        if node.tick == tick {
            node.deadline = deadline;
            return Ok(());
        }
        self.unlink(id.index);
        self.place(id.index, deadline);
        Ok(())
    }

    /// The deadline of a pending timer, as given to insert or reschedule (not rounded).
    pub fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.live(id).map(|n| n.deadline)
    }

    /// Sets the deadline of node `index` (off every list) and links it where it belongs.
    fn place(&mut self, index: u32, deadline: Instant) {
        let tick = self.tick_of(deadline);
        let node = &mut self.nodes[index as usize];
        node.deadline = deadline;
        node.tick = tick;
        self.link(index);
        if tick > self.elapsed
            && let Some(known) = self.earliest.get()
        {
            self.earliest
                .set(Some(Some(known.map_or(tick, |e| e.min(tick)))));
        }
    }

    /// Links node `index` (off every list) into the list for its tick.
    fn link(&mut self, index: u32) {
        let tick = self.nodes[index as usize].tick;
        let list = if tick <= self.elapsed {
            EXPIRED
        } else {
            let level = level_for(self.elapsed, tick);
            let slot = slot_for(level, tick);
            self.occupied[level] |= 1 << slot;
            level * SLOTS + slot
        };
        let tail = self.tails[list];
        let node = &mut self.nodes[index as usize];
        node.list = list as u16;
        node.prev = tail;
        node.next = NIL;
        match self.nodes.get_mut(tail as usize) {
            Some(t) => t.next = index,
            None => self.heads[list] = index,
        }
        self.tails[list] = index;
    }

    /// Takes node `index` off its list.
    fn unlink(&mut self, index: u32) {
        let node = &mut self.nodes[index as usize];
        let (prev, next, list, tick) = (node.prev, node.next, node.list as usize, node.tick);
        node.list = NO_LIST;
        node.prev = NIL;
        node.next = NIL;
        match self.nodes.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.heads[list] = next,
        }
        match self.nodes.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tails[list] = prev,
        }
        if list < EXPIRED {
            if self.heads[list] == NIL {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
            if self.earliest.get() == Some(Some(tick)) {
                self.earliest.set(None);
            }
        }
    }

    /// The next non-empty slot of `level` after the current tick: `(tick it expires at, slot)`.
    /// The current slot itself counts as a full rotation ahead (only clamped timers of the top
    /// level can be there).
    fn next_in_level(&self, level: usize) -> Option<(u64, usize)> {
        let occupied = self.occupied[level];
        if occupied == 0 {
            return None;
        }
        let shift = SLOT_BITS as usize * level;
        let current = (self.elapsed >> shift) & (SLOTS as u64 - 1);
        let start = (current + 1) & (SLOTS as u64 - 1);
        let k = u64::from(occupied.rotate_right(start as u32).trailing_zeros());
        let slot = ((start + k) & (SLOTS as u64 - 1)) as usize;
        let at = (u128::from(self.elapsed >> shift) + u128::from(k) + 1) << shift;
        Some((u64::try_from(at).unwrap_or(u64::MAX), slot))
    }

    /// The earliest-expiring slot of all levels: `(tick, level, slot)`.
    fn next_expiration(&self) -> Option<(u64, usize, usize)> {
        (0..LEVELS)
            .filter_map(|l| self.next_in_level(l).map(|(at, s)| (at, l, s)))
            .min_by_key(|&(at, _, _)| at)
    }

    /// Detaches the whole list `list` and returns its head.
    fn take_list(&mut self, list: usize) -> u32 {
        let head = self.heads[list];
        self.heads[list] = NIL;
        self.tails[list] = NIL;
        if list < EXPIRED {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
        head
    }

    /// Fires node `index` (already off its list) and frees it.
    fn fire_node(&mut self, index: u32, fire: &mut impl FnMut(TimerId, T)) {
        let free = self.free;
        let node = &mut self.nodes[index as usize];
        let id = TimerId {
            index,
            generation: node.generation,
        };
        let value = node.value.take();
        node.generation = node.generation.wrapping_add(1);
        node.list = NO_LIST;
        node.prev = NIL;
        node.next = free;
        self.free = index;
        self.len -= 1;
        if let Some(v) = value {
            fire(id, v);
        }
    }

    /// Moves time to `now` and fires, with `fire(id, value)`, every timer whose deadline
    /// (rounded up to the tick) is at or before `now`; an earlier `now` than the previous one
    /// does nothing (time never goes backwards).
    ///
    /// Order: first the timers that were already overdue when inserted or rescheduled (in the
    /// order they were put there; a reschedule within its tick keeps a timer's place), then the others by tick. Timers within one tick fire in an
    /// unspecified order (not necessarily insertion order, nor by their exact deadline).
    ///
    /// Cost: amortised O(1) per timer fired or cascaded (each timer moves down at most
    /// [`LEVELS`] times), plus O([`LEVELS`]) per non-empty slot reached; empty slots are
    /// skipped through the occupancy bitmaps, so a long jump costs nothing for empty time.
    pub fn advance(&mut self, now: Instant, mut fire: impl FnMut(TimerId, T)) {
        if now < self.now {
            return;
        }
        self.now = now;
        let target = now.as_nanos() / self.tick_ns;
        let mut next = self.take_list(EXPIRED);
        while next != NIL {
            let index = next;
            next = self.nodes[index as usize].next;
            self.fire_node(index, &mut fire);
        }
        let mut touched = false;
        while let Some((at, level, slot)) = self.next_expiration()
            && at <= target
        {
            touched = true;
            self.elapsed = at;
            let mut next = self.take_list(level * SLOTS + slot);
            while next != NIL {
                let index = next;
                next = self.nodes[index as usize].next;
                if self.nodes[index as usize].tick <= at {
                    self.fire_node(index, &mut fire);
                } else {
                    self.link(index);
                }
            }
        }
        if touched {
            self.earliest.set(None);
        }
        self.elapsed = self.elapsed.max(target);
    }

    /// The earliest pending deadline rounded up to the tick, and never earlier than the `now` of
    /// the latest advance (overdue timers say that `now`); `None` when no timer is pending.
    /// This is what `Shard::poll_timeout` returns.
    ///
    /// Cost: O(1) while the earliest tick is cached. The cache is dropped when the earliest
    /// timer is cancelled or rescheduled, or when an advance fires or cascades anything; the
    /// next call then recomputes it from the bitmaps: O([`LEVELS`]) plus, for each level whose
    /// first non-empty slot could hold the minimum, a walk of that one slot's list (stopping
    /// early at a timer due at the slot's own start). Level 0 slots need no walk.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.heads[EXPIRED] != NIL {
            return Some(self.now);
        }
        let earliest = match self.earliest.get() {
            Some(known) => known,
            None => {
                let computed = self.compute_earliest();
                self.earliest.set(Some(computed));
                computed
            }
        };
        earliest.map(|t| self.instant_of(t).max(self.now))
    }

    /// The earliest tick among the timers in the slots, from scratch.
    fn compute_earliest(&self) -> Option<u64> {
        let mut firsts = [(u64::MAX, 0usize, 0usize); LEVELS];
        let mut n = 0;
        for level in 0..LEVELS {
            if let Some((at, slot)) = self.next_in_level(level) {
                firsts[n] = (at, level, slot);
                n += 1;
            }
        }
        let firsts = &mut firsts[..n];
        firsts.sort_unstable_by_key(|&(at, _, _)| at);
        let mut best: Option<u64> = None;
        for &(at, level, slot) in firsts.iter() {
            if best.is_some_and(|b| b <= at) {
                break;
            }
            if level == 0 {
                best = Some(best.map_or(at, |b| b.min(at)));
                continue;
            }
            let mut next = self.heads[level * SLOTS + slot];
            while let Some(node) = self.nodes.get(next as usize) {
                best = Some(best.map_or(node.tick, |b| b.min(node.tick)));
                if node.tick <= at {
                    break;
                }
                next = node.next;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const MS: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn fired(w: &mut TimerWheel<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(now, |_, v| out.push(v));
        out
    }

    #[test]
    fn fires_at_its_tick_and_never_early() {
        let mut w = TimerWheel::new(8, MS, ms(0));
        w.insert(ms(10), 1).unwrap();
        w.insert(Instant::from_micros(10_500), 2).unwrap();
        assert!(fired(&mut w, Instant::from_micros(9_999)).is_empty());
        assert_eq!(fired(&mut w, ms(10)), vec![1]);
        // 10.5 ms rounds up to the 11 ms tick: not at 10.9 ms.
        assert!(fired(&mut w, Instant::from_micros(10_900)).is_empty());
        assert_eq!(fired(&mut w, ms(11)), vec![2]);
        assert!(w.is_empty());
    }

    #[test]
    fn fires_in_deadline_order_across_one_long_advance() {
        let mut w = TimerWheel::new(16, MS, ms(0));
        for (i, d) in [500u64, 3, 70_000, 64, 4096, 65].iter().enumerate() {
            w.insert(ms(*d), i as u32).unwrap();
        }
        assert_eq!(fired(&mut w, ms(100_000)), vec![1, 3, 5, 0, 4, 2]);
    }

    #[test]
    fn cancel_before_firing_returns_the_value_and_it_never_fires() {
        let mut w = TimerWheel::new(8, MS, ms(0));
        let a = w.insert(ms(5), 1).unwrap();
        w.insert(ms(5), 2).unwrap();
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.len(), 1);
        assert_eq!(fired(&mut w, ms(10)), vec![2]);
    }

    #[test]
    fn stale_ids_after_fire_cancel_or_reuse_return_none() {
        let mut w = TimerWheel::new(1, MS, ms(0));
        let a = w.insert(ms(1), 1).unwrap();
        assert_eq!(fired(&mut w, ms(1)), vec![1]);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.deadline(a), None);
        assert_eq!(w.reschedule(a, ms(9)), Err(Gone));
        let b = w.insert(ms(5), 2).unwrap();
        assert_eq!(b.index, a.index, "the single slot is reused");
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.deadline(b), Some(ms(5)));
        assert_eq!(w.cancel(b), Some(2));
        assert_eq!(w.cancel(b), None);
        let c = w.insert(ms(6), 3).unwrap();
        assert_eq!(w.reschedule(b, ms(1)), Err(Gone));
        assert_eq!(w.deadline(c), Some(ms(6)));
    }

    #[test]
    fn reschedule_moves_a_timer_earlier_or_later() {
        let mut w = TimerWheel::new(8, MS, ms(0));
        let a = w.insert(ms(10_000), 1).unwrap();
        let b = w.insert(ms(5), 2).unwrap();
        w.reschedule(a, ms(3)).unwrap();
        w.reschedule(b, ms(200)).unwrap();
        assert_eq!(w.deadline(b), Some(ms(200)));
        assert_eq!(fired(&mut w, ms(3)), vec![1]);
        assert!(fired(&mut w, ms(199)).is_empty());
        assert_eq!(fired(&mut w, ms(200)), vec![2]);
    }

    #[test]
    fn reschedule_within_the_tick_keeps_the_new_deadline_and_fires_in_that_tick() {
        let mut w = TimerWheel::new(8, MS, ms(0));
        let a = w.insert(ms(70) + Duration::from_micros(100), 1).unwrap();
        w.reschedule(a, ms(70) + Duration::from_micros(900))
            .unwrap();
        assert_eq!(w.deadline(a), Some(ms(70) + Duration::from_micros(900)));
        assert_eq!(w.next_deadline(), Some(ms(71)));
        assert!(fired(&mut w, ms(70)).is_empty());
        assert_eq!(fired(&mut w, ms(71)), vec![1]);
        // And out of the tick again afterwards: a fresh timer moved to a later tick.
        let b = w.insert(ms(80) + Duration::from_micros(1), 2).unwrap();
        w.reschedule(b, ms(80) + Duration::from_micros(2)).unwrap();
        w.reschedule(b, ms(90)).unwrap();
        assert!(fired(&mut w, ms(81)).is_empty());
        assert_eq!(fired(&mut w, ms(90)), vec![2]);
    }

    #[test]
    fn past_deadlines_fire_at_the_next_advance() {
        let mut w = TimerWheel::new(8, MS, ms(100));
        w.insert(ms(50), 1).unwrap();
        w.insert(ms(100), 2).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(100)));
        assert_eq!(fired(&mut w, ms(100)), vec![1, 2]);
        let c = w.insert(ms(200), 3).unwrap();
        w.reschedule(c, ms(1)).unwrap();
        assert_eq!(fired(&mut w, ms(100)), vec![3]);
    }

    #[test]
    fn advance_backwards_does_nothing() {
        let mut w = TimerWheel::new(8, MS, ms(100));
        w.insert(ms(50), 1).unwrap();
        assert!(fired(&mut w, ms(99)).is_empty());
        assert_eq!(w.len(), 1);
        assert_eq!(fired(&mut w, ms(100)), vec![1]);
    }

    #[test]
    fn keepalive_among_retransmit_timers_fires_after_cascading() {
        let mut w = TimerWheel::new(4096, MS, ms(0));
        let two_hours = 2 * 3600 * 1000;
        w.insert(ms(two_hours), u32::MAX).unwrap();
        let mut now = 0;
        let mut got = None;
        // 1 ms retransmit-like timers re-armed continuously, advancing a few ms at a time.
        let mut next_value = 0;
        while now < two_hours + 10 {
            w.insert(ms(now + 1 + (now % 7)), next_value).unwrap();
            next_value += 1;
            now += 3;
            w.advance(ms(now), |_, v| {
                if v == u32::MAX {
                    got = Some(now);
                }
            });
            if got.is_some() {
                break;
            }
        }
        let at = got.unwrap();
        assert!(at >= two_hours && at < two_hours + 3, "fired at {at}");
    }

    #[test]
    fn two_day_timer_fires_exactly_on_time() {
        let mut w = TimerWheel::new(8, MS, ms(7));
        let two_days = 2 * 24 * 3600 * 1000 + 7;
        w.insert(ms(two_days), 1).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(two_days)));
        for step in [1000, 3_600_000, 86_400_000, two_days - 1] {
            assert!(fired(&mut w, ms(step)).is_empty());
        }
        assert_eq!(w.next_deadline(), Some(ms(two_days)));
        assert_eq!(fired(&mut w, ms(two_days)), vec![1]);
    }

    #[test]
    fn timers_beyond_the_horizon_are_recascaded_and_fire_on_time() {
        // 1 µs ticks: the horizon is 2^36 µs, about 19 hours; a 3-day timer wraps it.
        let mut w = TimerWheel::new(8, Duration::from_micros(1), ms(0));
        let three_days = 3 * 24 * 3600 * 1000;
        w.insert(ms(three_days), 1).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(three_days)));
        let mut t = 0;
        while t + 3_600_000 < three_days {
            t += 3_600_000;
            assert!(fired(&mut w, ms(t)).is_empty(), "early at {t} ms");
        }
        assert!(fired(&mut w, ms(three_days) - Duration::from_micros(1)).is_empty());
        assert_eq!(fired(&mut w, ms(three_days)), vec![1]);
    }

    #[test]
    fn next_deadline_is_exact_to_the_tick_across_levels() {
        let mut w = TimerWheel::new(16, MS, ms(0));
        assert_eq!(w.next_deadline(), None);
        let far = w.insert(ms(100_000), 1).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(100_000)));
        let mid = w.insert(Instant::from_micros(4_100_500), 2).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(4_101)));
        w.insert(ms(70), 3).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(70)));
        assert_eq!(fired(&mut w, ms(70)), vec![3]);
        assert_eq!(w.next_deadline(), Some(ms(4_101)));
        w.cancel(mid);
        assert_eq!(w.next_deadline(), Some(ms(100_000)));
        w.advance(ms(99_000), |_, _| {});
        assert_eq!(w.next_deadline(), Some(ms(100_000)));
        w.cancel(far);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn insert_fails_when_full_and_succeeds_after_a_cancel() {
        let mut w = TimerWheel::new(2, MS, ms(0));
        let a = w.insert(ms(1), 1).unwrap();
        w.insert(ms(2), 2).unwrap();
        assert_eq!(w.insert(ms(3), 3), Err(Full));
        assert_eq!(w.capacity(), 2);
        w.cancel(a);
        assert!(w.insert(ms(3), 3).is_ok());
        assert_eq!(w.len(), 2);
        let mut empty = TimerWheel::new(0, MS, ms(0));
        assert_eq!(empty.insert(ms(1), 1), Err(Full));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Cancel(usize),
        Reschedule(usize, u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Deadlines in µs relative to now, over several levels (ticks of 100 µs).
        let delta = prop_oneof![0u64..2_000, 0u64..500_000, 0u64..50_000_000];
        prop_oneof![
            4 => delta.clone().prop_map(Op::Insert),
            1 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), delta.clone()).prop_map(|(i, d)| Op::Reschedule(i, d)),
            3 => prop_oneof![0u64..1_000, 0u64..100_000, 0u64..60_000_000].prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_sorted_map_model(
            start in 0u64..1_000_000_000,
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            const TICK: u64 = 100_000; // ns
            let tick = |ns: u64| ns.div_ceil(TICK);
            let mut w = TimerWheel::new(64, Duration::from_nanos(TICK), Instant::from_nanos(start));
            // id -> deadline ns, and the ids in the order they were issued.
            let mut model: BTreeMap<u32, (TimerId, u64)> = BTreeMap::new();
            let mut ids: Vec<TimerId> = Vec::new();
            let mut now = start;
            let mut serial = 0u32;
            for op in ops {
                match op {
                    Op::Insert(d) => {
                        let deadline = now.saturating_sub(1_000_000) + d;
                        match w.insert(Instant::from_nanos(deadline), serial) {
                            Ok(id) => {
                                model.insert(serial, (id, deadline));
                                ids.push(id);
                            }
                            Err(Full) => prop_assert_eq!(model.len(), 64),
                        }
                        serial += 1;
                    }
                    Op::Cancel(i) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        let expect = model.iter().find(|(_, (x, _))| *x == id).map(|(s, _)| *s);
                        prop_assert_eq!(w.cancel(id), expect);
                        if let Some(s) = expect { model.remove(&s); }
                    }
                    Op::Reschedule(i, d) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        let deadline = now.saturating_sub(1_000_000) + d;
                        let entry = model.values_mut().find(|(x, _)| *x == id);
                        let live = entry.is_some();
                        if let Some(e) = entry { e.1 = deadline; }
                        let got = w.reschedule(id, Instant::from_nanos(deadline));
                        prop_assert_eq!(got.is_ok(), live);
                        if live {
                            prop_assert_eq!(w.deadline(id), Some(Instant::from_nanos(deadline)));
                        }
                    }
                    Op::Advance(d) => {
                        let before = now;
                        now += d;
                        let mut got = Vec::new();
                        w.advance(Instant::from_nanos(now), |id, v| got.push((id, v)));
                        let due: Vec<u32> = model
                            .iter()
                            .filter(|(_, (_, dl))| tick(*dl) <= now / TICK)
                            .map(|(s, _)| *s)
                            .collect();
                        let mut got_serials: Vec<u32> = got.iter().map(|(_, v)| *v).collect();
                        // Fired in tick order (overdue ones count as due at the previous now).
                        let keys: Vec<u64> = got_serials
                            .iter()
                            .map(|s| tick(model[s].1).max(before / TICK))
                            .collect();
                        prop_assert!(keys.windows(2).all(|k| k[0] <= k[1]), "order {:?}", keys);
                        for (id, v) in &got {
                            prop_assert_eq!(model[v].0, *id);
                        }
                        got_serials.sort_unstable();
                        prop_assert_eq!(&got_serials, &due);
                        for s in due { model.remove(&s); }
                    }
                    _ => {}
                }
                prop_assert_eq!(w.len(), model.len());
                let min = model.values().map(|(_, dl)| tick(*dl)).min();
                let expect = min.map(|t| (t * TICK).max(now));
                prop_assert_eq!(w.next_deadline().map(|i| i.as_nanos()), expect);
            }
        }
    }
}
