//! Out-of-order reassembly bookkeeping: which byte ranges beyond the in-order edge
//! (`RCV.NXT`) have arrived, and in which order they were last touched (for SACK).
//!
//! RFC 9293 3.10.7.4 (SHLD-31): "Segments with higher beginning sequence numbers may be held
//! for later processing." The [`Assembler`] only tracks *where* such data lies; the bytes
//! themselves live in the receive buffer (`recv_buffer.rs`).
//!
//! The set is bounded: at most `max_ranges` disjoint ranges, stored in a vector that is
//! allocated when the first range arrives and grows with the ranges held (an in-order
//! connection never allocates it; [`Assembler::release`] frees it). A segment that would need one more range is refused with
//! [`TooManyHoles`]; the caller drops it and counts the drop, and the peer retransmits it
//! later. Linux bounds its out-of-order queue by memory instead (`tcp_prune_ofo_queue`
//! throws away the highest-sequence segments under pressure); refusing the newcomer has the
//! same effect on the peer (data not SACKed is retransmitted) without touching what is held.

use core::fmt;

/// A segment was refused because holding it would need more out-of-order ranges than the
/// assembler may track. Drop the segment (and count it); the peer will retransmit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TooManyHoles;

impl fmt::Display for TooManyHoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many holes in the out-of-order data")
    }
}

impl std::error::Error for TooManyHoles {}

/// One held range `[start, end)`, relative to the in-order edge, with the value of the
/// assembler's clock when it was last added to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
    stamp: u64,
}

/// The out-of-order ranges beyond the in-order edge: disjoint, non-adjacent, sorted, at most
/// `max_ranges` of them, each with a recency stamp for RFC 2018 block order.
///
/// Offsets are relative to the in-order edge (`RCV.NXT`): offset 0 is the next byte expected.
#[derive(Debug, Clone)]
pub struct Assembler {
    /// Sorted by `start`; for consecutive `a`, `b`: `a.end < b.start` (a gap of at least one
    /// byte); every range non-empty; `len() <= max_ranges`.
    ranges: Vec<Range>,
    max_ranges: usize,
    /// Incremented by every non-empty [`Assembler::add`]; stamps of held ranges are unique.
    clock: u64,
}

impl Assembler {
    /// An empty assembler that tracks at most `max_ranges` ranges. Allocates nothing: storage
    /// for ranges is allocated as they arrive.
    pub fn new(max_ranges: usize) -> Self {
        Assembler {
            ranges: Vec::new(),
            max_ranges,
            clock: 0,
        }
    }

    /// The most ranges this assembler tracks.
    pub fn max_ranges(&self) -> usize {
        self.max_ranges
    }

    /// Changes the most ranges tracked; never below the number held now.
    pub fn set_max_ranges(&mut self, max_ranges: usize) {
        self.max_ranges = max_ranges.max(self.ranges.len());
    }

    /// Frees the storage of the ranges if none is held.
    pub fn release(&mut self) {
        if self.ranges.is_empty() {
            self.ranges = Vec::new();
        }
    }

    /// Bytes of heap storage allocated for ranges.
    pub fn allocated(&self) -> usize {
        self.ranges.capacity() * core::mem::size_of::<Range>()
    }

    /// The offset just past the last held range (0 when none is held).
    pub fn end(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.end)
    }

    /// How many ranges are held.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when no out-of-order data is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Forgets every range.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Records that bytes `[offset, offset + len)` arrived, merging with every range they
    /// overlap or touch; the resulting range becomes the most recent one (it holds the
    /// segment that will trigger the next ACK, RFC 2018 4). A segment wholly inside a held
    /// range (a duplicate) also makes that range the most recent: RFC 2883 4 wants the block
    /// containing a D-SACKed duplicate reported right after the D-SACK block, and Linux
    /// (`tcp_sack_new_ofo_skb`) moves it to the front likewise.
    ///
    /// An empty range changes nothing. `offset + len` saturates at `usize::MAX`.
    ///
    /// # Errors
    ///
    /// [`TooManyHoles`] if the bytes touch no held range and `max_ranges` are held already;
    /// nothing changes then.
    pub fn add(&mut self, offset: usize, len: usize) -> Result<(), TooManyHoles> {
        if len == 0 {
            return Ok(());
        }
        let start = offset;
        let end = offset.saturating_add(len);
        // Ranges [i, j) overlap or touch [start, end): those ending at or after `start` and
        // starting at or before `end`. Both predicates hold on a prefix (sorted, disjoint).
        let i = self.ranges.partition_point(|r| r.end < start);
        let j = self.ranges.partition_point(|r| r.start <= end);
        let stamp = self.clock.wrapping_add(1);
        if i >= j {
            if self.ranges.len() >= self.max_ranges {
                return Err(TooManyHoles);
            }
            self.ranges.insert(i, Range { start, end, stamp });
        } else {
            let (Some(first), Some(last)) = (self.ranges.get(i), self.ranges.get(j - 1)) else {
                return Ok(()); // unreachable: i < j <= len
            };
            let merged = Range {
                start: start.min(first.start),
                end: end.max(last.end),
                stamp,
            };
            if let Some(slot) = self.ranges.get_mut(i) {
                *slot = merged;
            }
            self.ranges.drain(i + 1..j);
        }
        self.clock = stamp;
        Ok(())
    }

    /// If a range starts at offset 0 (right at the in-order edge), removes it and returns its
    /// length: the in-order edge advances by that much, and the remaining offsets are shifted
    /// down by it. Otherwise returns 0 and changes nothing.
    pub fn take_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(r) if r.start == 0 => {
                let n = r.end;
                self.ranges.remove(0);
                for r in &mut self.ranges {
                    r.start -= n;
                    r.end -= n;
                }
                n
            }
            _ => 0,
        }
    }

    /// The in-order edge advanced by `n` bytes that arrived in order: offsets shift down by
    /// `n`, ranges wholly below the new edge are dropped and one straddling it is trimmed to
    /// start at 0 (call [`Assembler::take_front`] next to collect it).
    pub fn advance(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let gone = self.ranges.partition_point(|r| r.end <= n);
        self.ranges.drain(..gone);
        for r in &mut self.ranges {
            r.start = r.start.saturating_sub(n);
            r.end -= n; // r.end > n
        }
    }

    /// How many bytes of `[offset, offset + len)` are already held.
    pub fn covered(&self, offset: usize, len: usize) -> usize {
        let end = offset.saturating_add(len);
        let i = self.ranges.partition_point(|r| r.end <= offset);
        self.ranges
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|r| r.start < end)
            .map(|r| r.end.min(end) - r.start.max(offset))
            .sum()
    }

    /// The held ranges as `(offset, len)`, in offset order.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().map(|r| (r.start, r.end - r.start))
    }

    /// The held ranges as `(offset, len)` in RFC 2018 4 order: the range holding the most
    /// recently added segment first, then the others from most to least recently updated
    /// (Linux keeps its `selective_acks` array in this order too). Each step scans the
    /// ranges, so taking the first few (a SACK option holds at most 4) is cheap.
    pub fn recent_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        RecentRanges {
            ranges: &self.ranges,
            below: None,
        }
    }
}

/// Iterator for [`Assembler::recent_ranges`]: yields ranges in decreasing stamp order.
struct RecentRanges<'a> {
    ranges: &'a [Range],
    /// The stamp of the range yielded last (stamps are unique).
    below: Option<u64>,
}

impl Iterator for RecentRanges<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let below = self.below;
        let best = self
            .ranges
            .iter()
            .filter(|r| below.is_none_or(|b| r.stamp < b))
            .max_by_key(|r| r.stamp)?;
        self.below = Some(best.stamp);
        Some((best.start, best.end - best.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().collect()
    }

    fn recent(a: &Assembler) -> Vec<(usize, usize)> {
        a.recent_ranges().collect()
    }

    #[test]
    fn adds_merge_with_overlapping_and_touching_neighbours() {
        let mut a = Assembler::new(4);
        a.add(10, 5).unwrap();
        a.add(20, 5).unwrap();
        assert_eq!(ranges(&a), [(10, 5), (20, 5)]);
        a.add(15, 5).unwrap(); // touches both: one range [10, 25)
        assert_eq!(ranges(&a), [(10, 15)]);
        a.add(5, 7).unwrap(); // overlaps the front
        a.add(24, 6).unwrap(); // overlaps the back
        assert_eq!(ranges(&a), [(5, 25)]);
        a.add(0, 100).unwrap(); // swallows it
        assert_eq!(ranges(&a), [(0, 100)]);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn zero_length_adds_change_nothing() {
        let mut a = Assembler::new(0);
        a.add(5, 0).unwrap();
        assert!(a.is_empty());
        let mut a = Assembler::new(2);
        a.add(10, 2).unwrap();
        a.add(1, 2).unwrap();
        a.add(11, 0).unwrap();
        assert_eq!(recent(&a), [(1, 2), (10, 2)]);
    }

    #[test]
    fn refuses_a_range_beyond_max_ranges_but_still_merges() {
        let mut a = Assembler::new(2);
        a.add(2, 1).unwrap();
        a.add(4, 1).unwrap();
        assert_eq!(a.add(6, 1), Err(TooManyHoles));
        assert_eq!(a.add(0, 1), Err(TooManyHoles));
        assert_eq!(ranges(&a), [(2, 1), (4, 1)]);
        a.add(5, 1).unwrap(); // touches [4, 5)
        a.add(3, 1).unwrap(); // joins both
        assert_eq!(ranges(&a), [(2, 4)]);
        a.add(8, 1).unwrap();
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn every_other_byte_runs_out_of_ranges() {
        let mut a = Assembler::new(100);
        let mut refused = 0;
        for k in 0..200 {
            if a.add(1 + 2 * k, 1).is_err() {
                refused += 1;
            }
        }
        assert_eq!((a.len(), refused), (100, 100));
    }

    #[test]
    fn thousands_of_tiny_holes_stay_bounded_and_fill_in() {
        let mut a = Assembler::new(5000);
        for k in (0..5000).rev() {
            a.add(1 + 2 * k, 1).unwrap();
        }
        assert_eq!(a.add(20_000, 1), Err(TooManyHoles));
        // Fill every hole but the first; everything merges into one range.
        for k in 1..5000 {
            a.add(2 * k, 1).unwrap();
        }
        assert_eq!(ranges(&a), [(1, 9999)]);
        assert_eq!(a.take_front(), 0);
        a.add(0, 1).unwrap();
        assert_eq!(a.take_front(), 10_000);
        assert!(a.is_empty());
    }

    #[test]
    fn take_front_only_takes_a_range_at_the_edge() {
        let mut a = Assembler::new(4);
        a.add(3, 2).unwrap();
        a.add(8, 2).unwrap();
        assert_eq!(a.take_front(), 0);
        a.add(0, 3).unwrap();
        assert_eq!(a.take_front(), 5);
        assert_eq!(ranges(&a), [(3, 2)]);
        assert_eq!(a.take_front(), 0);
    }

    #[test]
    fn advance_drops_and_trims_ranges_below_the_edge() {
        let mut a = Assembler::new(4);
        a.add(2, 2).unwrap();
        a.add(6, 4).unwrap();
        a.add(20, 1).unwrap();
        a.advance(8); // [2,4) gone, [6,10) -> [0,2), [20,21) -> [12,13)
        assert_eq!(ranges(&a), [(0, 2), (12, 1)]);
        assert_eq!(a.take_front(), 2);
        assert_eq!(ranges(&a), [(10, 1)]);
        a.advance(usize::MAX);
        assert!(a.is_empty());
        a.advance(0);
    }

    #[test]
    fn offsets_near_usize_max_saturate() {
        let mut a = Assembler::new(4);
        a.add(usize::MAX - 1, 10).unwrap();
        a.add(usize::MAX, usize::MAX).unwrap();
        assert_eq!(ranges(&a), [(usize::MAX - 1, 1)]);
        assert_eq!(a.covered(usize::MAX - 5, usize::MAX), 1);
    }

    #[test]
    fn recent_ranges_put_the_latest_segment_first() {
        let mut a = Assembler::new(8);
        a.add(10, 2).unwrap();
        a.add(20, 2).unwrap();
        a.add(30, 2).unwrap();
        assert_eq!(recent(&a), [(30, 2), (20, 2), (10, 2)]);
        a.add(12, 2).unwrap(); // extends the oldest: it becomes the first
        assert_eq!(recent(&a), [(10, 4), (30, 2), (20, 2)]);
        a.add(21, 1).unwrap(); // a duplicate also refreshes its range (RFC 2883 4)
        assert_eq!(recent(&a), [(20, 2), (10, 4), (30, 2)]);
        a.add(14, 6).unwrap(); // joins [10,14) and [20,22): the merged range is first
        assert_eq!(recent(&a), [(10, 12), (30, 2)]);
    }

    #[test]
    fn covered_counts_held_bytes_in_a_range() {
        let mut a = Assembler::new(8);
        a.add(2, 3).unwrap(); // 2,3,4
        a.add(8, 2).unwrap(); // 8,9
        assert_eq!(a.covered(0, 20), 5);
        assert_eq!(a.covered(3, 6), 3); // 3,4,8
        assert_eq!(a.covered(5, 3), 0);
        assert_eq!(a.covered(9, 0), 0);
        assert_eq!(a.covered(usize::MAX, usize::MAX), 0);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut a = Assembler::new(2);
        a.add(1, 1).unwrap();
        a.add(3, 1).unwrap();
        a.clear();
        assert!(a.is_empty());
        a.add(5, 1).unwrap();
        a.add(7, 1).unwrap();
        assert_eq!(a.max_ranges(), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        TakeFront,
        Advance(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..60, 0usize..12).prop_map(|(o, l)| Op::Add(o, l)),
            1 => Just(Op::TakeFront),
            1 => (0usize..20).prop_map(Op::Advance),
        ]
    }

    /// Maximal runs of `true` in the model, as (offset, len).
    fn runs(held: &[bool]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < held.len() {
            if held[i] {
                let s = i;
                while i < held.len() && held[i] {
                    i += 1;
                }
                out.push((s, i - s));
            } else {
                i += 1;
            }
        }
        out
    }

    proptest! {
        /// The ranges are always exactly the maximal runs of bytes received (so disjoint,
        /// non-adjacent and sorted), never more than max_ranges of them; a refusal changes
        /// nothing; recent_ranges is a permutation of them with the last added range first.
        #[test]
        fn ranges_match_a_byte_map(max in 0usize..6, ops in proptest::collection::vec(op(), 0..60)) {
            let mut a = Assembler::new(max);
            let mut held = vec![false; 128];
            for op in ops {
                match op {
                    Op::Add(o, l) => {
                        let before = ranges(&a);
                        let newly = (o..o + l).filter(|&k| !held[k]).count();
                        prop_assert_eq!(a.covered(o, l), l - newly);
                        let mut next = held.clone();
                        next[o..o + l].iter_mut().for_each(|b| *b = true);
                        let want = runs(&next);
                        match a.add(o, l) {
                            Ok(()) => {
                                prop_assert!(want.len() <= max || l == 0);
                                held = next;
                                if l > 0 {
                                    let first = a.recent_ranges().next().unwrap();
                                    prop_assert!(first.0 <= o && o + l <= first.0 + first.1);
                                }
                            }
                            Err(TooManyHoles) => {
                                prop_assert!(want.len() > max);
                                prop_assert_eq!(ranges(&a), before);
                            }
                        }
                    }
                    Op::TakeFront => {
                        let n = a.take_front();
                        let front = held.iter().take_while(|&&b| b).count();
                        prop_assert_eq!(n, front);
                        held.drain(..n);
                        held.resize(128, false);
                    }
                    Op::Advance(n) => {
                        a.advance(n);
                        held.drain(..n);
                        held.resize(128, false);
                    }
                }
                prop_assert_eq!(ranges(&a), runs(&held));
                prop_assert!(a.len() <= max);
                let mut r = recent(&a);
                r.sort();
                prop_assert_eq!(r, ranges(&a));
            }
        }
    }
}
