//! The sender's SACK scoreboard for loss recovery: RFC 6675 (`Update()`, `IsLost()`,
//! `SetPipe()`, `NextSeg()`), D-SACK detection after RFC 2883, and Linux-style "reno SACK"
//! emulation for peers that do not send SACK options.
//!
//! RFC 6675 3: "For a TCP sender to implement the algorithm defined in the next section, it
//! must keep a data structure to store incoming selective acknowledgment information on a per
//! connection basis. Such a data structure is commonly called the 'scoreboard'." The RFC
//! speaks of marking individual octets and adds that "a real-world implementation of the
//! scoreboard would likely prefer to manage this data as sequence number ranges"; this one
//! keeps a sorted list of disjoint, non-adjacent SACKed ranges in a fixed-capacity slice. The
//! slice is allocated when the first SACK block arrives and freed when the cumulative ACK has
//! covered every marked range: an idle connection (or one that never sees loss) holds none,
//! which matters at a million connections per shard.
//!
//! # Conventions
//!
//! - Ranges are half-open, `(left, right)` with `right` exclusive, as in the SACK option.
//! - `snd_una` is the oldest unacknowledged sequence number (RFC 6675's HighACK + 1) and
//!   `snd_nxt` is one past the highest sequence number sent (HighData + 1). Pass the highest
//!   ever sent (`snd_max`), not a `snd_nxt` rewound by a retransmission timeout: the window
//!   `[snd_una, snd_nxt)` bounds everything, and SACK information above it is dropped.
//! - `high_rxt` is one past the highest retransmitted octet (RFC 6675's HighRxt + 1): octets
//!   below it count as retransmitted. Pass `snd_una` when nothing was retransmitted.
//! - Every function that takes `snd_una`/`snd_nxt` looks at the scoreboard through that
//!   window, so stale or hostile arguments give sane answers, never a panic. Functions that
//!   do not take them ([`Scoreboard::is_sacked`], [`Scoreboard::is_lost`], ...) use the window
//!   of the last [`Scoreboard::on_ack`].
//! - A window of 2^31 bytes or more (or `snd_nxt` not after `snd_una`) is treated as empty:
//!   sequence order is only defined within half the space (RFC 9293 3.4), and TCP windows are
//!   at most 2^30 (RFC 7323 2.3).
//! - An `mss` of 0 is treated as 1.
//!
//! # Choices where the RFCs leave room
//!
//! - **Invalid blocks** (RFC 6675 and RFC 2018 say nothing): like Linux
//!   (`tcp_is_sackblock_valid`), a block is used only if `snd_una < left < right <= snd_nxt`;
//!   any other block is ignored as a whole, not clipped (a receiver cannot hold data we never
//!   sent, and a block starting at or below its own cumulative ACK is inconsistent).
//! - **Reneging**: RFC 6675 does not require handling it (its 5.1 even says "A SACK TCP sender
//!   SHOULD utilize all SACK information made available during the loss recovery following an
//!   RTO"). A range stays marked until it is cumulatively acknowledged or [`Scoreboard::clear`]
//!   is called; a block that is not re-reported does not unmark anything (RFC 2018's SACK
//!   information is advisory, and the data stays in the retransmission queue either way).
//!   [`Scoreboard::reneging_suspected`] reports Linux's trigger (`tcp_check_sack_reneging`:
//!   the cumulative ACK stopped at a byte we had marked SACKed) so the TCB can react.
//! - **Capacity**: if a new range does not fit, the lowest range is dropped (or the new one, if
//!   it is the lowest): the highest ranges matter most for `IsLost()`. Dropped ranges are
//!   counted ([`Scoreboard::ranges_dropped`]). Linux keeps SACK state on the retransmission
//!   queue itself and has no such limit.
//! - **"Discontiguous SACKed sequences"** in `IsLost()` are maximal runs of SACKed octets: two
//!   adjacent blocks count as one (the scoreboard cannot see segment boundaries). RFC 6675 5
//!   step (1), counting DupAcks, covers the small-segment case this misses.

use crate::tcp::seq::SeqNum;

/// DupThresh: "The number of duplicate acknowledgments required to trigger a fast
/// retransmission" (RFC 6675 2; RFC 5681 3.2 fast retransmits on "the third duplicate ACK").
pub const DUP_THRESH: usize = 3;

/// The most ranges a scoreboard holds, whatever `max_ranges` asks for (an absurd capacity
/// would otherwise abort the allocation in [`Scoreboard::new`]).
pub const MAX_RANGES_LIMIT: usize = 1 << 16;

/// What an ACK changed, as [`Scoreboard::on_ack`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckUpdate {
    /// Bytes that are marked SACKed after this ACK and were not before it (what RFC 6937 PRR's
    /// DeliveredData adds to the change in `snd_una`).
    pub newly_sacked: usize,
    /// The first block was a D-SACK (RFC 2883): it lies below the cumulative ACK, or it is
    /// contained in the second block.
    pub dsack: bool,
}

/// A segment to retransmit, as [`Scoreboard::next_seg`] and [`Scoreboard::rescue`] return it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextSeg {
    /// The first sequence number of the segment.
    pub seq: SeqNum,
    /// Its length: at least 1, at most the `mss` given; it never reaches into a SACKed range.
    pub len: usize,
    /// The segment fills a hole (NextSeg rule 1, 3 or 4) rather than carrying new data. Always
    /// true here: new data (rule 2) is the caller's.
    pub retransmission: bool,
}

/// One SACKed range, `[left, right)`; stored ranges are non-empty and shorter than 2^31.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    left: SeqNum,
    right: SeqNum,
}

/// The size of the sequence space.
const SPACE: u64 = 1 << 32;

/// The sender's SACK scoreboard (RFC 6675 3).
#[derive(Clone, Debug)]
pub struct Scoreboard {
    /// Sorted (from `una`), disjoint, non-adjacent ranges inside `[una, una + flight)`;
    /// `spans[..len]` are live.
    /// Empty (no allocation) whenever `len == 0` after an `on_ack`; else `cap` long.
    spans: Box<[Span]>,
    len: usize,
    /// The ranges before the current `on_ack`, to compute `newly_sacked` exactly (allocated
    /// and freed together with `spans`).
    scratch: Box<[Span]>,
    /// The most ranges held.
    cap: usize,
    /// `snd_una` of the last `on_ack`.
    una: SeqNum,
    /// `snd_nxt - snd_una` of the last `on_ack` (0 if not after), always below 2^31.
    flight: u64,
    /// Bytes in `spans[..len]`.
    sacked: u64,
    /// `una` is meaningful (an `on_ack` happened since `new`/`clear`).
    have_base: bool,
    /// Duplicate ACKs counted by `on_dupack_without_sack` since the last new cumulative ACK.
    reno_dupacks: usize,
    /// The bytes those duplicate ACKs stand for (one `mss` each, at most the flight but one
    /// segment).
    reno_bytes: u64,
    /// Ranges dropped because the scoreboard was full.
    dropped: u64,
}

/// The forward distance from `una` to `x`.
fn off(x: SeqNum, una: SeqNum) -> u64 {
    u64::from(x - una)
}

/// The sequence number `offset` bytes after `una` (`offset` is below 2^32 by construction).
fn at(una: SeqNum, offset: u64) -> SeqNum {
    una + (offset as u32)
}

/// The window `[snd_una, snd_nxt)` as a length: 0 unless `snd_nxt` is after `snd_una`, and
/// then below 2^31.
fn window(snd_una: SeqNum, snd_nxt: SeqNum) -> u64 {
    let flight = u64::from(snd_nxt.distance_from(snd_una));
    if flight < 1 << 31 { flight } else { 0 }
}

/// The offset of `high_rxt` in the window, clamped to `0..=flight` (0 if it is not after
/// `snd_una`: nothing above `snd_una` was retransmitted).
fn rxt_offset(high_rxt: SeqNum, snd_una: SeqNum, flight: u64) -> u64 {
    u64::from(high_rxt.distance_from(snd_una)).min(flight)
}

/// The part of `span` inside the window `[una, una + flight)`, as offsets from `una`.
///
/// A span shorter than 2^31 meets a window shorter than 2^31 in at most one piece, and clipping
/// every stored span to a new window keeps them in order (they all lie within 2^31 of the old
/// `una`), which is what lets the scoreboard follow `snd_una` wherever it goes.
fn clip(span: Span, una: SeqNum, flight: u64) -> Option<(u64, u64)> {
    let start = off(span.left, una);
    let end = start + u64::from(span.right - span.left);
    let (lo, hi) = if start < flight {
        (start, end.min(flight))
    } else if end > SPACE {
        // The span starts below `una` and reaches across it.
        (0, (end - SPACE).min(flight))
    } else {
        return None;
    };
    (lo < hi).then_some((lo, hi))
}

/// IsLost() of RFC 6675 4 for an octet with `runs_above` discontiguous SACKed runs and
/// `bytes_above` SACKed bytes above it: "The routine returns true when either DupThresh
/// discontiguous SACKed sequences have arrived above 'SeqNum' or more than (DupThresh - 1) *
/// SMSS bytes with sequence numbers greater than 'SeqNum' have been SACKed."
fn lost_rule(runs_above: usize, bytes_above: u64, mss: u64) -> bool {
    runs_above >= DUP_THRESH || bytes_above > (DUP_THRESH as u64 - 1).saturating_mul(mss)
}

/// Bytes of `[a, b)` below `limit`.
fn below(a: u64, b: u64, limit: u64) -> u64 {
    b.min(limit).saturating_sub(a)
}

/// `mss` as the arithmetic uses it: at least 1.
fn mss64(mss: usize) -> u64 {
    (mss as u64).max(1)
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// RFC 2883 D-SACK detection on the first block, as Linux's `tcp_check_dsack` does it: the
/// first block is a D-SACK if it starts below the cumulative ACK (RFC 2883 4: the D-SACK block
/// reports "the duplicate segment that triggers the acknowledgement"), or if it is contained in
/// the second block (RFC 2883 4 (4): "If the D-SACK block reports a duplicate contiguous
/// sequence from a (possibly larger) block of data in the receiver's data queue above the
/// cumulative acknowledgement, then the second SACK block in that SACK option should specify
/// that (possibly larger) block of data."). Stricter than Linux, the first block must also be
/// a non-empty range of data we sent (`left < right <= snd_nxt`), so that garbage is never
/// reported as a D-SACK that could undo a congestion response.
fn detect_dsack(blocks: &[(SeqNum, SeqNum)], snd_una: SeqNum, snd_nxt: SeqNum) -> bool {
    let Some(&(l0, r0)) = blocks.first() else {
        return false;
    };
    if !l0.before(r0) || !r0.before_eq(snd_nxt) {
        return false;
    }
    if l0.before(snd_una) {
        return true;
    }
    match blocks.get(1) {
        Some(&(l1, r1)) if l1.before(r1) => {
            let (a, b, c) = (l0 - l1, r0 - l1, r1 - l1);
            a < b && b <= c
        }
        _ => false,
    }
}

/// Bytes in both `a` and `b` (sorted, disjoint lists of ranges inside the window at `una`).
fn intersection(a: &[Span], b: &[Span], una: SeqNum) -> u64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        let (xl, xr) = (off(x.left, una), off(x.right, una));
        let (yl, yr) = (off(y.left, una), off(y.right, una));
        total += xr.min(yr).saturating_sub(xl.max(yl));
        if xr <= yr {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

impl Scoreboard {
    /// A scoreboard that remembers at most `max_ranges` discontiguous SACKed ranges (raised to
    /// 1, capped at [`MAX_RANGES_LIMIT`]). Allocates nothing: storage for the ranges comes
    /// with the first SACK block and goes when no range is marked any more.
    pub fn new(max_ranges: usize) -> Self {
        let cap = max_ranges.clamp(1, MAX_RANGES_LIMIT);
        Scoreboard {
            spans: Box::default(),
            len: 0,
            scratch: Box::default(),
            cap,
            una: SeqNum(0),
            flight: 0,
            sacked: 0,
            have_base: false,
            reno_dupacks: 0,
            reno_bytes: 0,
            dropped: 0,
        }
    }

    /// Forgets all SACK information and the duplicate-ACK count (for example after a
    /// retransmission timeout with suspected reneging, as Linux's `tcp_enter_loss` does).
    pub fn clear(&mut self) {
        self.len = 0;
        self.sacked = 0;
        self.flight = 0;
        self.have_base = false;
        self.reno_dupacks = 0;
        self.reno_bytes = 0;
        self.release();
    }

    /// Frees the storage of the ranges if none is marked.
    fn release(&mut self) {
        if self.len == 0 && !self.spans.is_empty() {
            self.spans = Box::default();
            self.scratch = Box::default();
        }
    }

    /// Bytes of heap storage allocated for ranges now (0 when none is marked).
    pub fn allocated(&self) -> usize {
        (self.spans.len() + self.scratch.len()) * core::mem::size_of::<Span>()
    }

    /// The most ranges this scoreboard holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Ranges dropped so far because the scoreboard was full (a counter for stats).
    pub fn ranges_dropped(&self) -> u64 {
        self.dropped
    }

    fn live(&self) -> &[Span] {
        self.spans.get(..self.len).unwrap_or(&[])
    }

    /// The stored ranges seen through the window `[una, una + flight)`, as offsets, in order.
    fn pieces(&self, una: SeqNum, flight: u64) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.live()
            .iter()
            .filter_map(move |&s| clip(s, una, flight))
    }

    /// The number of ranges and SACKed bytes in the window.
    fn totals(&self, una: SeqNum, flight: u64) -> (usize, u64) {
        self.pieces(una, flight)
            .fold((0, 0), |(n, b), (lo, hi)| (n + 1, b + (hi - lo)))
    }

    /// Reno emulation applies: duplicate ACKs were counted and there is no real SACK data.
    fn reno_active(&self) -> bool {
        self.len == 0 && self.reno_dupacks > 0
    }

    /// `Update()` of RFC 6675 4 on an arriving ACK: "Given the information provided in an ACK,
    /// each octet that is cumulatively ACKed or SACKed should be marked accordingly in the
    /// scoreboard data structure, and the total number of octets SACKed should be recorded."
    ///
    /// Drops everything below `snd_una` (and above `snd_nxt`), then marks the blocks (sequence
    /// numbers, right edge exclusive) that lie within `(snd_una, snd_nxt]`, ignoring any other
    /// block whole. Detects a D-SACK in the first block (see [`AckUpdate::dsack`]). A
    /// `snd_una` after the previous one is a new cumulative ACK and resets the duplicate-ACK
    /// count of [`Scoreboard::on_dupack_without_sack`] (RFC 6675 5: "If the incoming ACK is a
    /// cumulative acknowledgment, the TCP MUST reset DupAcks to zero").
    ///
    /// Pass the TCB's `snd_una` after this ACK, and only for ACKs with `SEG.ACK >= SND.UNA`
    /// (RFC 9293 3.10.7.4 ignores older ones): then `snd_una` is the ACK's own cumulative ACK,
    /// which is what the D-SACK test compares with.
    pub fn on_ack(
        &mut self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        blocks: &[(SeqNum, SeqNum)],
    ) -> AckUpdate {
        let flight = window(snd_una, snd_nxt);
        if self.have_base && snd_una.after(self.una) {
            self.reno_dupacks = 0;
            self.reno_bytes = 0;
        }
        self.have_base = true;
        if self.len == 0 && blocks.is_empty() {
            // Nothing marked and nothing to mark (the ACKs of a connection that lost nothing):
            // what the general path below computes, without its passes.
            self.una = snd_una;
            self.flight = flight;
            self.sacked = 0;
            self.release();
            return AckUpdate {
                newly_sacked: 0,
                dsack: false,
            };
        }

        // RFC 6675 4 Update(): cumulatively ACKed octets leave the scoreboard ("SACKed data
        // MUST NOT be removed from the TCP's retransmission buffer until the data is
        // cumulatively acknowledged" - the same holds for the scoreboard's marks).
        let mut kept = 0;
        for i in 0..self.len {
            let Some(&span) = self.spans.get(i) else {
                break;
            };
            if let Some((lo, hi)) = clip(span, snd_una, flight) {
                if let Some(slot) = self.spans.get_mut(kept) {
                    *slot = Span {
                        left: at(snd_una, lo),
                        right: at(snd_una, hi),
                    };
                    kept += 1;
                }
            }
        }
        self.len = kept;
        self.una = snd_una;
        self.flight = flight;

        let before_len = self.len;
        if let (Some(dst), Some(src)) = (
            self.scratch.get_mut(..before_len),
            self.spans.get(..before_len),
        ) {
            dst.copy_from_slice(src);
        }

        let dsack = detect_dsack(blocks, snd_una, snd_nxt);

        for &(left, right) in blocks {
            // Linux `tcp_is_sackblock_valid`: reversed, beyond snd_nxt, or not above snd_una
            // is invalid. Offsets from snd_una make this exact across the wrap.
            let lo = off(left, snd_una);
            let hi = off(right, snd_una);
            if 0 < lo && lo < hi && hi <= flight {
                if self.spans.is_empty() {
                    self.spans = vec![Span::default(); self.cap].into_boxed_slice();
                    self.scratch = vec![Span::default(); self.cap].into_boxed_slice();
                }
                self.insert(lo, hi);
            }
        }

        let after = self.live();
        let total: u64 = after
            .iter()
            .map(|s| off(s.right, snd_una) - off(s.left, snd_una))
            .sum();
        let common = intersection(
            after,
            self.scratch.get(..before_len).unwrap_or(&[]),
            snd_una,
        );
        self.sacked = total;
        let newly_sacked = to_usize(total.saturating_sub(common));
        self.release();
        AckUpdate {
            newly_sacked,
            dsack,
        }
    }

    /// Marks `[lo, hi)` (offsets from `self.una`, `0 < lo < hi <= flight`), merging with
    /// overlapping and adjacent ranges; drops the lowest range if the scoreboard is full.
    fn insert(&mut self, lo: u64, hi: u64) {
        let una = self.una;
        let live = self.live();
        // Ranges ending before `lo` (not even adjacent) stay below; ranges starting after
        // `hi` stay above; those in between merge with the new one.
        let i = live.partition_point(|s| off(s.right, una) < lo);
        let j = live.partition_point(|s| off(s.left, una) <= hi);
        let new = |lo, hi| Span {
            left: at(una, lo),
            right: at(una, hi),
        };
        if i < j {
            let (Some(first), Some(last)) = (live.get(i).copied(), live.get(j - 1).copied()) else {
                return;
            };
            let merged = new(lo.min(off(first.left, una)), hi.max(off(last.right, una)));
            let len = self.len;
            if let Some(slot) = self.spans.get_mut(i) {
                *slot = merged;
            }
            if j > i + 1 && j <= len {
                self.spans.copy_within(j..len, i + 1);
                self.len = len - (j - i - 1);
            }
        } else if self.len < self.spans.len() {
            let len = self.len;
            if i <= len {
                self.spans.copy_within(i..len, i + 1);
                if let Some(slot) = self.spans.get_mut(i) {
                    *slot = new(lo, hi);
                }
                self.len = len + 1;
            }
        } else {
            // Full. Keep the highest ranges: they decide IsLost() for everything below them.
            self.dropped += 1;
            if i > 0 && i <= self.len {
                self.spans.copy_within(1..i, 0);
                if let Some(slot) = self.spans.get_mut(i - 1) {
                    *slot = new(lo, hi);
                }
            }
            // else: the new range is the lowest; it is the one dropped.
        }
    }

    /// Bytes marked SACKed (within the window of the last [`Scoreboard::on_ack`]). Reno
    /// emulation is not included.
    pub fn sacked_bytes(&self) -> usize {
        to_usize(self.sacked)
    }

    /// True if no data is marked SACKed (reno emulation does not count).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The right edge (exclusive) of the highest SACKed range: one past RFC 6675's "highest
    /// octet covered by any received SACK". `None` without SACK data (also under reno
    /// emulation).
    pub fn highest_sacked(&self) -> Option<SeqNum> {
        self.live().last().map(|s| s.right)
    }

    /// The SACKed ranges, lowest first, as `(left, right)` with `right` exclusive.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.live().iter().map(|s| (s.left, s.right))
    }

    /// True if the octet `seq` is marked SACKed.
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        let s = off(seq, self.una);
        if s >= self.flight {
            return false;
        }
        let live = self.live();
        let idx = live.partition_point(|sp| off(sp.right, self.una) <= s);
        live.get(idx).is_some_and(|sp| off(sp.left, self.una) <= s)
    }

    /// Linux's sign of SACK reneging (`tcp_check_sack_reneging`): the cumulative ACK of the
    /// last [`Scoreboard::on_ack`] stopped at a byte that was marked SACKed, so the receiver
    /// no longer holds what it SACKed. The scoreboard keeps its marks regardless; Linux waits
    /// max(RTT/2, 10 ms) for more ACKs, then times out and forgets the marks
    /// ([`Scoreboard::clear`]).
    pub fn reneging_suspected(&self) -> bool {
        self.pieces(self.una, self.flight)
            .next()
            .is_some_and(|(lo, _)| lo == 0)
    }

    /// `IsLost(SeqNum)` of RFC 6675 4: true when DupThresh discontiguous SACKed runs lie above
    /// `seq`, or more than (DupThresh - 1) * `mss` bytes above it are SACKed.
    ///
    /// False for an octet outside the window of the last [`Scoreboard::on_ack`] or one that is
    /// SACKed (it arrived). Under reno emulation (duplicate ACKs counted, no SACK data), only
    /// the first segment, `[snd_una, snd_una + mss)`, can be lost, and it is once DupThresh
    /// duplicate ACKs arrived (RFC 5681 3.2 fast retransmit; Linux `tcp_newreno_mark_lost`
    /// marks just the head).
    pub fn is_lost(&self, seq: SeqNum, mss: usize) -> bool {
        let mss = mss64(mss);
        let s = off(seq, self.una);
        if s >= self.flight {
            return false;
        }
        if self.reno_active() {
            return self.reno_dupacks >= DUP_THRESH && s < mss.min(self.flight);
        }
        let (mut runs, mut bytes) = (0usize, 0u64);
        for (lo, hi) in self.pieces(self.una, self.flight).rev() {
            if lo <= s {
                if s < hi {
                    return false;
                }
                break;
            }
            runs += 1;
            bytes += hi - lo;
        }
        lost_rule(runs, bytes, mss)
    }

    /// `SetPipe()` of RFC 6675 4: the octets in flight between `snd_una` and `snd_nxt`.
    ///
    /// "After initializing pipe to zero, the following steps are taken for each octet 'S1' in
    /// the sequence space between HighACK and HighData that has not been SACKed: (a) If IsLost
    /// (S1) returns false: Pipe is incremented by 1 octet. (b) If S1 <= HighRxt: Pipe is
    /// incremented by 1 octet." So an unSACKed octet that is not lost counts once, and once
    /// more if it was retransmitted (below `high_rxt`): "octets retransmitted without being
    /// considered lost are counted twice", so pipe can exceed `snd_nxt - snd_una` after NextSeg
    /// rule (3) retransmissions. IsLost() is the same for every octet of a hole (the SACKed
    /// data above them is the same), so this is exact per octet, hole by hole, with `mss` as
    /// SMSS in IsLost().
    ///
    /// Reno emulation (duplicate ACKs counted, no SACK data), as Linux's `packets_out -
    /// (sacked_out + lost_out) + retrans_out`: each duplicate ACK counts as one `mss` SACKed
    /// at the top of the window, at most the window less one segment (Linux
    /// `tcp_limit_reno_sacked` keeps a hole); after DupThresh duplicate ACKs the first
    /// segment is lost; retransmitted octets below the emulated SACKed bytes count once more.
    pub fn pipe(&self, snd_una: SeqNum, snd_nxt: SeqNum, high_rxt: SeqNum, mss: usize) -> usize {
        let flight = window(snd_una, snd_nxt);
        let mss = mss64(mss);
        let hr = rxt_offset(high_rxt, snd_una, flight);
        if self.reno_active() {
            let emulated = self.reno_bytes.min(flight - mss.min(flight));
            let unsacked = flight - emulated;
            let lost = if self.reno_dupacks >= DUP_THRESH {
                mss.min(unsacked)
            } else {
                0
            };
            return to_usize(unsacked - lost + hr.min(unsacked));
        }
        let (runs, mut bytes_above) = self.totals(snd_una, flight);
        let (mut pipe, mut prev, mut k) = (0u64, 0u64, 0usize);
        for (lo, hi) in self.pieces(snd_una, flight) {
            // The hole [prev, lo) lies below this and every higher range.
            if !lost_rule(runs - k, bytes_above, mss) {
                pipe += lo - prev; // (a)
            }
            pipe += below(prev, lo, hr); // (b)
            bytes_above -= hi - lo;
            k += 1;
            prev = hi;
        }
        // Above the highest SACK nothing is SACKed, so IsLost() is false there.
        pipe += flight - prev;
        pipe += below(prev, flight, hr);
        to_usize(pipe)
    }

    /// `NextSeg()` rules (1) and (3) of RFC 6675 4: the next hole to retransmit, at most `mss`
    /// bytes, never reaching into a SACKed range; `None` if there is nothing to retransmit.
    ///
    /// Rule (1): "If there exists a smallest unSACKed sequence number 'S2' that meets the
    /// following three criteria for determining loss, the sequence range of one segment of up
    /// to SMSS octets starting with S2 MUST be returned. (1.a) S2 is greater than HighRxt.
    /// (1.b) S2 is less than the highest octet covered by any received SACK. (1.c) IsLost (S2)
    /// returns true." Rule (2), new data, is the caller's. Rule (3), only if `allow_rule3`
    /// (the caller sets it when rule (2) cannot send): "If the conditions for rules (1) and
    /// (2) fail, but there exists an unSACKed sequence number 'S3' that meets the criteria for
    /// detecting loss given in steps (1.a) and (1.b) above (specifically excluding step
    /// (1.c)), then one segment of up to SMSS octets starting with S3 SHOULD be returned."
    ///
    /// Under reno emulation, rule (1) returns the first segment once it is lost (see
    /// [`Scoreboard::is_lost`]) and rule (3) returns nothing: without SACK information the
    /// sender does not know which later segments arrived (Linux retransmits only segments
    /// marked lost).
    pub fn next_seg(
        &self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        high_rxt: SeqNum,
        mss: usize,
        allow_rule3: bool,
    ) -> Option<NextSeg> {
        let flight = window(snd_una, snd_nxt);
        let mss = mss64(mss);
        let hr = rxt_offset(high_rxt, snd_una, flight);
        let seg = |start: u64, end: u64| NextSeg {
            seq: at(snd_una, start),
            len: to_usize(end - start),
            retransmission: true,
        };
        if self.reno_active() {
            if self.reno_dupacks < DUP_THRESH {
                return None;
            }
            let head = mss.min(flight);
            return (hr < head).then(|| seg(hr, head));
        }
        let (runs, mut bytes_above) = self.totals(snd_una, flight);
        let (mut prev, mut k) = (0u64, 0usize);
        let mut rule3 = None;
        for (lo, hi) in self.pieces(snd_una, flight) {
            // (1.b): the hole [prev, lo) is below a SACKed range; (1.a): skip what was
            // retransmitted already.
            let start = prev.max(hr);
            if start < lo {
                let end = lo.min(start + mss);
                if lost_rule(runs - k, bytes_above, mss) {
                    return Some(seg(start, end)); // (1.c)
                }
                if rule3.is_none() {
                    rule3 = Some((start, end));
                }
            }
            bytes_above -= hi - lo;
            k += 1;
            prev = hi;
        }
        if allow_rule3 {
            rule3.map(|(start, end)| seg(start, end))
        } else {
            None
        }
    }

    /// `NextSeg()` rule (4) of RFC 6675 4, the rescue retransmission: "If the conditions for
    /// (1), (2), and (3) fail, but there exists outstanding unSACKed data, we provide the
    /// opportunity for a single 'rescue' retransmission per entry into loss recovery. If
    /// HighACK is greater than RescueRxt (or RescueRxt is undefined), then one segment of up to
    /// SMSS octets that MUST include the highest outstanding unSACKed sequence number SHOULD be
    /// returned, and RescueRxt set to RecoveryPoint. HighRxt MUST NOT be updated."
    ///
    /// `rescue_rxt` is RescueRxt in the one-past convention of `high_rxt` (`None`: undefined);
    /// rule (4) applies when `snd_una` is after it. Returns `None` while rules (1) or (3) still
    /// have a hole (this is what `high_rxt` is for); rule (2) is the caller's to check first.
    /// The segment ends at the highest unSACKed octet and does not reach below the hole it is
    /// in. The caller sets RescueRxt (to RecoveryPoint) and leaves HighRxt alone. Reno
    /// emulation is not used: the highest unSACKed octet is the last one sent.
    pub fn rescue(
        &self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        high_rxt: SeqNum,
        rescue_rxt: Option<SeqNum>,
        mss: usize,
    ) -> Option<NextSeg> {
        if rescue_rxt.is_some_and(|r| !snd_una.after(r)) {
            return None;
        }
        if self
            .next_seg(snd_una, snd_nxt, high_rxt, mss, true)
            .is_some()
        {
            return None;
        }
        let flight = window(snd_una, snd_nxt);
        let mss = mss64(mss);
        let (mut top, mut hole_start) = (flight, 0);
        for (lo, hi) in self.pieces(snd_una, flight).rev() {
            if hi < top {
                hole_start = hi;
                break;
            }
            top = lo;
        }
        if top == 0 {
            return None; // nothing outstanding is unSACKed
        }
        let start = hole_start.max(top.saturating_sub(mss));
        Some(NextSeg {
            seq: at(snd_una, start),
            len: to_usize(top - start),
            retransmission: true,
        })
    }

    /// Linux-style "reno SACK" for peers without SACK (`tcp_add_reno_sack`): counts a
    /// duplicate ACK as if it SACKed one `mss` segment, so that [`Scoreboard::pipe`],
    /// [`Scoreboard::is_lost`] and [`Scoreboard::next_seg`] work as with SACK (see each for
    /// exactly how). Call it after [`Scoreboard::on_ack`] for each duplicate ACK (RFC 5681 2);
    /// a new cumulative ACK in `on_ack` resets the count (Linux instead subtracts the
    /// acknowledged segments, `tcp_remove_reno_sacks`). Ignored while real SACK data is
    /// present.
    ///
    /// Returns the bytes this duplicate ACK counts as delivered (for RFC 6937 PRR): `mss`, or
    /// less once the emulated SACKed bytes reach the window of the last `on_ack` less one
    /// segment (Linux `tcp_limit_reno_sacked`).
    pub fn on_dupack_without_sack(&mut self, mss: usize) -> usize {
        let mss = mss64(mss);
        self.reno_dupacks = self.reno_dupacks.saturating_add(1);
        let limit = self.flight - mss.min(self.flight);
        let before = self.reno_bytes.min(limit);
        self.reno_bytes = before.saturating_add(mss).min(limit);
        to_usize(self.reno_bytes - before)
    }

    /// Duplicate ACKs counted by [`Scoreboard::on_dupack_without_sack`] since the last new
    /// cumulative ACK.
    pub fn reno_dupacks(&self) -> usize {
        self.reno_dupacks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const MSS: usize = 1000;

    fn s(x: u32) -> SeqNum {
        SeqNum(x)
    }

    /// Segment `i` of 1000 bytes after `base`, as a block.
    fn seg(base: u32, i: u32) -> (SeqNum, SeqNum) {
        (s(base) + i * 1000, s(base) + (i + 1) * 1000)
    }

    /// Segments `from..to` as one block.
    fn segs(base: u32, from: u32, to: u32) -> (SeqNum, SeqNum) {
        (s(base) + from * 1000, s(base) + to * 1000)
    }

    /// The structural invariants: ranges sorted, disjoint, non-adjacent, non-empty, inside the
    /// window of the last ACK, no more than the capacity, and the cached total right.
    fn check_invariants(sb: &Scoreboard) {
        assert!(sb.len <= sb.spans.len());
        assert!(
            sb.len > 0 || sb.allocated() == 0,
            "no range marked, storage held"
        );
        assert!(sb.flight < 1 << 31);
        let mut prev_end: Option<u64> = None;
        let mut total = 0;
        for span in sb.live() {
            let lo = off(span.left, sb.una);
            let hi = off(span.right, sb.una);
            assert!(lo < hi, "empty or reversed range {span:?}");
            assert!(hi <= sb.flight, "range {span:?} beyond the window");
            if let Some(p) = prev_end {
                assert!(p < lo, "ranges out of order, overlapping or adjacent");
            }
            prev_end = Some(hi);
            total += hi - lo;
        }
        assert_eq!(total, sb.sacked);
        assert!(sb.sacked <= sb.flight);
    }

    #[test]
    fn one_loss_among_ten_segments_is_lost_after_three_sacks_above_it() {
        // RFC 6675's basic case: segment 0 of 10 is lost, the next three arrive and are SACKed.
        let base = 5_000;
        let (una, nxt) = (s(base), s(base) + 10_000u32);
        let mut sb = Scoreboard::new(16);
        let first = sb.on_ack(una, nxt, &[seg(base, 1)]);
        assert_eq!(
            first,
            AckUpdate {
                newly_sacked: 1000,
                dsack: false
            }
        );
        assert!(!sb.is_lost(una, MSS));
        assert_eq!(sb.pipe(una, nxt, una, MSS), 9000);
        assert_eq!(sb.next_seg(una, nxt, una, MSS, false), None);

        assert_eq!(sb.on_ack(una, nxt, &[segs(base, 1, 3)]).newly_sacked, 1000);
        // Exactly (DupThresh - 1) * SMSS bytes in one run above: not yet lost.
        assert!(!sb.is_lost(una, MSS));
        assert_eq!(sb.pipe(una, nxt, una, MSS), 8000);

        assert_eq!(sb.on_ack(una, nxt, &[segs(base, 1, 4)]).newly_sacked, 1000);
        assert!(sb.is_lost(una, MSS));
        assert!(sb.is_lost(una + 999u32, MSS));
        assert!(!sb.is_lost(una + 1000u32, MSS), "SACKed bytes are not lost");
        assert!(
            !sb.is_lost(una + 4000u32, MSS),
            "nothing is SACKed above segment 4"
        );
        assert_eq!(sb.sacked_bytes(), 3000);
        assert_eq!(sb.highest_sacked(), Some(s(base) + 4000u32));
        assert_eq!(
            sb.next_seg(una, nxt, una, MSS, false),
            Some(NextSeg {
                seq: una,
                len: 1000,
                retransmission: true
            })
        );
        // Pipe: 7000 unSACKed, of which 1000 are lost.
        assert_eq!(sb.pipe(una, nxt, una, MSS), 6000);
        // After the retransmission (HighRxt covers segment 0) it counts again.
        let high_rxt = una + 1000u32;
        assert_eq!(sb.pipe(una, nxt, high_rxt, MSS), 7000);
        assert_eq!(sb.next_seg(una, nxt, high_rxt, MSS, false), None);
        assert_eq!(sb.next_seg(una, nxt, high_rxt, MSS, true), None);

        // The retransmission arrives: everything up to segment 4 is acknowledged.
        let una = una + 4000u32;
        let update = sb.on_ack(una, nxt, &[]);
        assert_eq!(update.newly_sacked, 0);
        assert!(sb.is_empty());
        assert_eq!(sb.highest_sacked(), None);
        assert_eq!(sb.pipe(una, nxt, high_rxt, MSS), 6000);
    }

    #[test]
    fn two_holes_are_both_lost_and_retransmitted_in_order() {
        // Segments 2 and 5 of 10 are lost; 0-1 are acknowledged, 3-4 and 6-9 SACKed.
        let base = 70_000;
        let (una, nxt) = (s(base) + 2000u32, s(base) + 10_000u32);
        let mut sb = Scoreboard::new(16);
        let update = sb.on_ack(una, nxt, &[segs(base, 6, 10), segs(base, 3, 5)]);
        assert_eq!(update.newly_sacked, 6000);
        assert!(!update.dsack);
        assert!(sb.is_lost(una, MSS));
        assert!(sb.is_lost(s(base) + 5000u32, MSS));
        assert_eq!(sb.pipe(una, nxt, una, MSS), 0);

        let first = sb.next_seg(una, nxt, una, MSS, false);
        assert_eq!(
            first,
            Some(NextSeg {
                seq: una,
                len: 1000,
                retransmission: true
            })
        );
        let high_rxt = una + 1000u32;
        assert_eq!(sb.pipe(una, nxt, high_rxt, MSS), 1000);
        let second = sb.next_seg(una, nxt, high_rxt, MSS, false);
        assert_eq!(
            second,
            Some(NextSeg {
                seq: s(base) + 5000u32,
                len: 1000,
                retransmission: true
            })
        );
        let high_rxt = s(base) + 6000u32;
        assert_eq!(sb.pipe(una, nxt, high_rxt, MSS), 2000);
        assert_eq!(sb.next_seg(una, nxt, high_rxt, MSS, true), None);
    }

    #[test]
    fn a_hole_with_too_little_sacked_above_waits_for_rule_three() {
        // Segments 2 and 7 lost; 3-6 and 8-9 SACKed: only 2000 bytes in one run above 7.
        let base = 1_000_000;
        let (una, nxt) = (s(base) + 2000u32, s(base) + 10_000u32);
        let mut sb = Scoreboard::new(16);
        sb.on_ack(una, nxt, &[segs(base, 3, 7), segs(base, 8, 10)]);
        let seven = s(base) + 7000u32;
        assert!(sb.is_lost(una, MSS));
        assert!(!sb.is_lost(seven, MSS));
        // 2000 unSACKed, 1000 of them lost.
        assert_eq!(sb.pipe(una, nxt, una, MSS), 1000);
        let high_rxt = una + 1000u32;
        assert_eq!(sb.next_seg(una, nxt, high_rxt, MSS, false), None);
        assert_eq!(
            sb.next_seg(una, nxt, high_rxt, MSS, true),
            Some(NextSeg {
                seq: seven,
                len: 1000,
                retransmission: true
            })
        );
        // RFC 6675: "octets retransmitted without being considered lost are counted twice".
        // Segment 2 (lost, retransmitted) counts once, segment 7 (not lost, retransmitted) twice.
        let high_rxt = s(base) + 8000u32;
        assert_eq!(sb.pipe(una, nxt, high_rxt, MSS), 1000 + 2 * 1000);
    }

    #[test]
    fn three_discontiguous_runs_make_a_hole_lost_even_when_small() {
        let una = s(10);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(16);
        sb.on_ack(
            una,
            nxt,
            &[
                (una + 1000u32, una + 1100u32),
                (una + 2000u32, una + 2100u32),
            ],
        );
        assert!(!sb.is_lost(una, MSS), "two runs and 200 bytes");
        sb.on_ack(una, nxt, &[(una + 3000u32, una + 3100u32)]);
        assert!(sb.is_lost(una, MSS), "DupThresh discontiguous runs");
        assert!(!sb.is_lost(una + 1500u32, MSS), "only two runs above");
        // Adjacent blocks merge into one run: they are not discontiguous.
        let mut sb = Scoreboard::new(16);
        sb.on_ack(
            una,
            nxt,
            &[
                (una + 1000u32, una + 1100u32),
                (una + 1100u32, una + 1200u32),
                (una + 1200u32, una + 1300u32),
            ],
        );
        assert_eq!(sb.ranges().count(), 1);
        assert!(!sb.is_lost(una, MSS));
    }

    #[test]
    fn the_byte_rule_needs_more_than_dupthresh_minus_one_segments() {
        let una = s(0);
        let nxt = una + 20_000u32;
        let mut sb = Scoreboard::new(4);
        sb.on_ack(una, nxt, &[(una + 100u32, una + 2100u32)]);
        assert!(!sb.is_lost(una, MSS));
        sb.on_ack(una, nxt, &[(una + 100u32, una + 2101u32)]);
        assert!(sb.is_lost(una, MSS));
        assert!(sb.is_lost(una + 99u32, MSS));
        assert!(!sb.is_lost(una + 100u32, MSS));
    }

    #[test]
    fn a_block_not_reported_again_stays_marked_until_cumulatively_acked() {
        let una = s(3_000_000);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(8);
        sb.on_ack(una, nxt, &[(una + 2000u32, una + 3000u32)]);
        // The receiver now reports only another block (RFC 2018 limits the option to a few
        // blocks; an old block may drop out). The scoreboard keeps the old mark.
        let update = sb.on_ack(una, nxt, &[(una + 5000u32, una + 6000u32)]);
        assert_eq!(update.newly_sacked, 1000);
        assert!(sb.is_sacked(una + 2500u32));
        assert!(sb.is_sacked(una + 5000u32));
        assert!(!sb.is_sacked(una + 6000u32));
        assert_eq!(sb.sacked_bytes(), 2000);
        // The cumulative ACK moves past the first block and into the second.
        let una2 = una + 5500u32;
        assert_eq!(sb.on_ack(una2, nxt, &[]).newly_sacked, 0);
        assert_eq!(sb.sacked_bytes(), 500);
        assert!(!sb.is_sacked(una + 2500u32));
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![(una2, una + 6000u32)]);
    }

    #[test]
    fn a_cumulative_ack_stopping_at_a_sacked_byte_looks_like_reneging() {
        let una = s(1 << 31);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(8);
        sb.on_ack(una, nxt, &[(una + 2000u32, una + 3000u32)]);
        assert!(!sb.reneging_suspected());
        sb.on_ack(una + 2000u32, nxt, &[]);
        assert!(sb.reneging_suspected());
        assert!(sb.is_sacked(una + 2000u32));
        sb.on_ack(una + 3000u32, nxt, &[]);
        assert!(!sb.reneging_suspected());
        assert!(sb.is_empty());
    }

    #[test]
    fn dsack_below_the_cumulative_ack_is_detected_and_marks_nothing() {
        let una = s(40_000);
        let nxt = una + 5000u32;
        let mut sb = Scoreboard::new(8);
        let update = sb.on_ack(una, nxt, &[(una - 1000u32, una - 500u32)]);
        assert_eq!(
            update,
            AckUpdate {
                newly_sacked: 0,
                dsack: true
            }
        );
        assert!(sb.is_empty());
        // A D-SACK followed by an ordinary block: the block is still marked.
        let update = sb.on_ack(
            una,
            nxt,
            &[(una - 1000u32, una), (una + 1000u32, una + 2000u32)],
        );
        assert_eq!(
            update,
            AckUpdate {
                newly_sacked: 1000,
                dsack: true
            }
        );
    }

    #[test]
    fn dsack_contained_in_the_second_block_is_detected() {
        let una = s(100);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(8);
        let update = sb.on_ack(
            una,
            nxt,
            &[
                (una + 4000u32, una + 5000u32),
                (una + 3000u32, una + 6000u32),
            ],
        );
        assert_eq!(
            update,
            AckUpdate {
                newly_sacked: 3000,
                dsack: true
            }
        );
        // Identical first and second blocks are a D-SACK too (Linux: !after && !before).
        let same = (una + 3000u32, una + 6000u32);
        assert!(sb.on_ack(una, nxt, &[same, same]).dsack);
        // Ordinary blocks: no D-SACK.
        let update = sb.on_ack(
            una,
            nxt,
            &[
                (una + 7000u32, una + 8000u32),
                (una + 3000u32, una + 6000u32),
            ],
        );
        assert_eq!(
            update,
            AckUpdate {
                newly_sacked: 1000,
                dsack: false
            }
        );
        // Overlapping but not contained: no D-SACK.
        let overlap = [
            (una + 5000u32, una + 7000u32),
            (una + 3000u32, una + 6000u32),
        ];
        assert!(!sb.on_ack(una, nxt, &overlap).dsack);
    }

    #[test]
    fn a_malformed_first_block_is_never_a_dsack() {
        let una = s(100_000);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(8);
        // Reversed, empty, or reaching beyond what was sent.
        assert!(!sb.on_ack(una, nxt, &[(una - 10u32, una - 20u32)]).dsack);
        assert!(!sb.on_ack(una, nxt, &[(una - 10u32, una - 10u32)]).dsack);
        assert!(!sb.on_ack(una, nxt, &[(una - 10u32, nxt + 1u32)]).dsack);
        assert!(!sb.on_ack(una, nxt, &[]).dsack);
        let second_reversed = [(una + 10u32, una + 20u32), (una + 30u32, una)];
        assert!(!sb.on_ack(una, nxt, &second_reversed).dsack);
    }

    #[test]
    fn blocks_across_the_wrap_are_tracked_like_any_other() {
        let base = u32::MAX - 2500; // segments 3.. lie past the wrap
        let (una, nxt) = (s(base), s(base) + 10_000u32);
        let mut sb = Scoreboard::new(16);
        sb.on_ack(una, nxt, &[segs(base, 1, 3)]);
        let update = sb.on_ack(una, nxt, &[segs(base, 1, 4)]);
        assert_eq!(update.newly_sacked, 1000);
        assert_eq!(
            sb.ranges().collect::<Vec<_>>(),
            vec![(s(base + 1000), s(1499))]
        );
        assert!(sb.is_sacked(s(u32::MAX)));
        assert!(sb.is_sacked(s(0)));
        assert!(!sb.is_sacked(s(1499)));
        assert!(sb.is_lost(una, MSS));
        assert_eq!(sb.pipe(una, nxt, una, MSS), 6000);
        assert_eq!(
            sb.next_seg(una, nxt, una, MSS, false),
            Some(NextSeg {
                seq: una,
                len: 1000,
                retransmission: true
            })
        );
        // A block that itself spans the wrap, and an ACK that lands right after it.
        sb.on_ack(una, nxt, &[(s(u32::MAX - 100), s(200))]);
        assert!(sb.is_sacked(s(u32::MAX - 100)) && sb.is_sacked(s(199)));
        sb.on_ack(s(5), nxt, &[]);
        assert_eq!(sb.ranges().next(), Some((s(5), s(1499))));
        assert!(sb.reneging_suspected());
    }

    #[test]
    fn hostile_blocks_are_ignored() {
        let una = s(1000);
        let nxt = una + 5000u32;
        let mut sb = Scoreboard::new(4);
        let blocks = [
            (una + 300u32, una + 200u32),            // reversed
            (una + 300u32, una + 300u32),            // empty
            (una + 4000u32, nxt + 1u32),             // beyond snd_nxt
            (una, una + 100u32),                     // starts at snd_una
            (una - 100u32, una + 100u32),            // straddles snd_una (but is a D-SACK)
            (una + 1u32, una + 1u32 + (1u32 << 31)), // spans 2^31
            (una + 10u32, una - 10u32),              // wraps the whole space
            (nxt + 10u32, nxt + 20u32),              // entirely beyond snd_nxt
        ];
        for block in blocks {
            let update = sb.on_ack(una, nxt, &[block]);
            assert_eq!(update.newly_sacked, 0, "{block:?}");
            assert!(sb.is_empty(), "{block:?}");
        }
        // The edges themselves are fine: (snd_una, snd_nxt].
        assert_eq!(sb.on_ack(una, nxt, &[(una + 1u32, nxt)]).newly_sacked, 4999);
        // A window of 2^31 or more is no window at all.
        sb.on_ack(una, una + (1u32 << 31), &[(una + 1u32, una + 100u32)]);
        assert!(sb.is_empty());
        assert_eq!(sb.pipe(una, una + (1u32 << 31), una, MSS), 0);
    }

    #[test]
    fn hundreds_of_tiny_blocks_keep_the_highest_ranges() {
        let una = s(u32::MAX - 300);
        let nxt = una + 2000u32;
        let mut sb = Scoreboard::new(8);
        let blocks: Vec<_> = (0..400u32)
            .map(|i| (una + (1 + 3 * i), una + (2 + 3 * i)))
            .collect();
        sb.on_ack(una, nxt, &blocks);
        check_invariants(&sb);
        let kept: Vec<_> = sb.ranges().collect();
        let expected: Vec<_> = blocks[392..].to_vec();
        assert_eq!(kept, expected);
        assert_eq!(sb.ranges_dropped(), 392);
        // Now a lower block is the lowest one: dropped, not stored.
        sb.on_ack(una, nxt, &[(una + 1u32, una + 2u32)]);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), expected);
        // A block bridging stored ranges merges them and frees slots.
        let (first, last) = (expected[0], expected[7]);
        sb.on_ack(una, nxt, &[(first.0, last.1)]);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![(first.0, last.1)]);
        check_invariants(&sb);
    }

    #[test]
    fn overlapping_and_adjacent_blocks_merge_and_count_only_new_bytes() {
        let una = s(0);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(8);
        assert_eq!(
            sb.on_ack(una, nxt, &[(s(1000), s(2000)), (s(3000), s(4000))])
                .newly_sacked,
            2000
        );
        assert_eq!(
            sb.on_ack(una, nxt, &[(s(1500), s(3500))]).newly_sacked,
            1000
        );
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![(s(1000), s(4000))]);
        assert_eq!(
            sb.on_ack(una, nxt, &[(s(4000), s(4100)), (s(900), s(1000))])
                .newly_sacked,
            200
        );
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![(s(900), s(4100))]);
        assert_eq!(sb.on_ack(una, nxt, &[(s(900), s(4100))]).newly_sacked, 0);
    }

    #[test]
    fn next_seg_stops_at_a_sacked_range_and_skips_what_was_retransmitted() {
        let una = s(500);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(8);
        // A 600-byte hole at the start, then 3 SACKed segments.
        sb.on_ack(una, nxt, &[(una + 600u32, una + 3600u32)]);
        assert_eq!(
            sb.next_seg(una, nxt, una, MSS, false),
            Some(NextSeg {
                seq: una,
                len: 600,
                retransmission: true
            })
        );
        // Half the hole was retransmitted: the rest of it.
        assert_eq!(
            sb.next_seg(una, nxt, una + 250u32, MSS, false),
            Some(NextSeg {
                seq: una + 250u32,
                len: 350,
                retransmission: true
            })
        );
        // A small MSS cuts the segment.
        assert_eq!(
            sb.next_seg(una, nxt, una, 100, false).map(|n| n.len),
            Some(100)
        );
        // HighRxt beyond the hole: nothing.
        assert_eq!(sb.next_seg(una, nxt, una + 600u32, MSS, true), None);
        // An mss of 0 is treated as 1.
        assert_eq!(sb.next_seg(una, nxt, una, 0, false).map(|n| n.len), Some(1));
    }

    #[test]
    fn rescue_retransmits_the_tail_once_per_recovery() {
        // Segment 0 and the tail segment 9 are lost; 1-8 are SACKed.
        let base = 9_000;
        let (una, nxt) = (s(base), s(base) + 10_000u32);
        let mut sb = Scoreboard::new(8);
        sb.on_ack(una, nxt, &[segs(base, 1, 9)]);
        // Rule 1 still has segment 0: no rescue.
        assert_eq!(sb.rescue(una, nxt, una, None, MSS), None);
        let high_rxt = una + 1000u32;
        assert_eq!(sb.next_seg(una, nxt, high_rxt, MSS, true), None);
        let tail = Some(NextSeg {
            seq: s(base) + 9000u32,
            len: 1000,
            retransmission: true,
        });
        assert_eq!(sb.rescue(una, nxt, high_rxt, None, MSS), tail);
        // RescueRxt set (at recovery entry, to the end of the first retransmission): only
        // once HighACK passes it.
        assert_eq!(sb.rescue(una, nxt, high_rxt, Some(high_rxt), MSS), None);
        sb.on_ack(high_rxt, nxt, &[]);
        assert_eq!(
            sb.rescue(high_rxt, nxt, high_rxt, Some(una + 500u32), MSS),
            tail
        );
        // A short tail hole: the segment covers just the hole.
        let mut sb = Scoreboard::new(8);
        sb.on_ack(una, nxt, &[(una + 1u32, nxt - 300u32)]);
        assert_eq!(
            sb.rescue(una, nxt, una + 1u32, None, MSS),
            Some(NextSeg {
                seq: nxt - 300u32,
                len: 300,
                retransmission: true
            })
        );
        // Nothing outstanding: nothing to rescue.
        assert_eq!(sb.rescue(una, una, una, None, MSS), None);
    }

    #[test]
    fn reno_three_dupacks_make_the_head_lost() {
        let una = s(u32::MAX - 4000);
        let nxt = una + 10_000u32;
        let mut sb = Scoreboard::new(8);
        sb.on_ack(una, nxt, &[]);
        assert_eq!(sb.on_dupack_without_sack(MSS), 1000);
        assert_eq!(sb.on_dupack_without_sack(MSS), 1000);
        assert!(!sb.is_lost(una, MSS));
        assert_eq!(sb.pipe(una, nxt, una, MSS), 8000);
        assert_eq!(sb.next_seg(una, nxt, una, MSS, true), None);
        // The third duplicate ACK (the ACK itself carries the same cumulative ACK).
        sb.on_ack(una, nxt, &[]);
        sb.on_dupack_without_sack(MSS);
        assert_eq!(sb.reno_dupacks(), 3);
        assert!(sb.is_lost(una, MSS));
        assert!(sb.is_lost(una + 999u32, MSS));
        assert!(
            !sb.is_lost(una + 1000u32, MSS),
            "only the head is marked lost"
        );
        assert!(
            sb.is_empty() && sb.highest_sacked().is_none(),
            "no real SACK data"
        );
        assert_eq!(
            sb.next_seg(una, nxt, una, MSS, true),
            Some(NextSeg {
                seq: una,
                len: 1000,
                retransmission: true
            })
        );
        // 10000 sent - 3000 "SACKed" - 1000 lost; the retransmission counts once more.
        assert_eq!(sb.pipe(una, nxt, una, MSS), 6000);
        assert_eq!(sb.pipe(una, nxt, una + 1000u32, MSS), 7000);
        assert_eq!(sb.next_seg(una, nxt, una + 1000u32, MSS, true), None);
        // A new cumulative ACK resets the count.
        let una = una + 1000u32;
        sb.on_ack(una, nxt, &[]);
        assert_eq!(sb.reno_dupacks(), 0);
        assert!(!sb.is_lost(una, MSS));
        assert_eq!(sb.pipe(una, nxt, una, MSS), 9000);
    }

    #[test]
    fn reno_emulation_keeps_a_hole_and_yields_to_real_sack_data() {
        let una = s(77);
        let nxt = una + 3000u32;
        let mut sb = Scoreboard::new(8);
        sb.on_ack(una, nxt, &[]);
        let delivered: usize = (0..10).map(|_| sb.on_dupack_without_sack(MSS)).sum();
        // At most the window less one segment (Linux tcp_limit_reno_sacked).
        assert_eq!(delivered, 2000);
        assert_eq!(sb.pipe(una, nxt, una, MSS), 0);
        assert_eq!(sb.pipe(una, nxt, una + 1000u32, MSS), 1000);
        // With real SACK information the emulation is not used.
        sb.on_ack(una, nxt, &[(una + 2000u32, una + 2500u32)]);
        assert!(!sb.is_lost(una, MSS));
        assert_eq!(sb.pipe(una, nxt, una, MSS), 2500);
        // clear() forgets both.
        sb.clear();
        assert_eq!(sb.reno_dupacks(), 0);
        assert!(sb.is_empty());
        assert_eq!(sb.pipe(una, nxt, una, MSS), 3000);
    }

    #[test]
    fn capacity_is_at_least_one_range() {
        let mut sb = Scoreboard::new(0);
        assert_eq!(sb.capacity(), 1);
        sb.on_ack(s(0), s(100), &[(s(10), s(20)), (s(30), s(40))]);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![(s(30), s(40))]);
        assert_eq!(Scoreboard::new(usize::MAX).capacity(), MAX_RANGES_LIMIT);
    }

    #[test]
    fn queries_through_a_later_window_see_only_what_is_still_outstanding() {
        let una = s(1000);
        let nxt = una + 5000u32;
        let mut sb = Scoreboard::new(8);
        sb.on_ack(
            una,
            nxt,
            &[
                (una + 1000u32, una + 2000u32),
                (una + 3000u32, una + 4000u32),
            ],
        );
        // The TCB sent more since: the new data is in flight.
        assert_eq!(sb.pipe(una, nxt + 700u32, una, MSS), 3000 + 700);
        // Asked with a snd_una inside the second range (before on_ack saw it).
        let later = una + 3500u32;
        assert_eq!(sb.pipe(later, nxt, later, MSS), 1000);
        assert_eq!(sb.next_seg(later, nxt, later, MSS, true), None);
        // Asked with a snd_nxt rewound below the SACKed data.
        assert_eq!(sb.pipe(una, una + 500u32, una, MSS), 500);
    }

    // ---- properties ----

    /// A per-octet model of RFC 6675 4, written as literally as the text.
    struct Model {
        una: u32,
        flight: u32,
        sacked: BTreeSet<u32>,
    }

    impl Model {
        fn new() -> Self {
            Model {
                una: 0,
                flight: 0,
                sacked: BTreeSet::new(),
            }
        }

        fn is_sacked(&self, o: u32) -> bool {
            self.sacked.contains(&self.una.wrapping_add(o))
        }

        fn on_ack(&mut self, una: u32, nxt: u32, blocks: &[(u32, u32)]) -> usize {
            let flight = SeqNum(nxt).distance_from(SeqNum(una));
            self.sacked.retain(|&x| x.wrapping_sub(una) < flight);
            self.una = una;
            self.flight = flight;
            let mut newly = 0;
            for &(left, right) in blocks {
                let (lo, hi) = (left.wrapping_sub(una), right.wrapping_sub(una));
                if 0 < lo && lo < hi && hi <= flight {
                    for o in lo..hi {
                        newly += usize::from(self.sacked.insert(una.wrapping_add(o)));
                    }
                }
            }
            newly
        }

        /// For each offset: (SACKed runs above it, SACKed bytes above it).
        fn above(&self) -> Vec<(usize, u64)> {
            let n = self.flight as usize;
            let mut out = vec![(0, 0); n];
            let (mut runs, mut bytes) = (0usize, 0u64);
            for o in (0..n).rev() {
                out[o] = (runs, bytes);
                let sacked = self.is_sacked(o as u32);
                if sacked {
                    bytes += 1;
                    if o == 0 || !self.is_sacked(o as u32 - 1) {
                        runs += 1;
                    }
                }
            }
            out
        }

        fn is_lost(&self, above: &[(usize, u64)], o: u32, mss: usize) -> bool {
            if o >= self.flight || self.is_sacked(o) {
                return false;
            }
            let (runs, bytes) = above[o as usize];
            runs >= DUP_THRESH || bytes > (DUP_THRESH as u64 - 1) * mss.max(1) as u64
        }

        fn pipe(&self, hr: u32, mss: usize) -> usize {
            let above = self.above();
            (0..self.flight)
                .filter(|&o| !self.is_sacked(o))
                .map(|o| usize::from(!self.is_lost(&above, o, mss)) + usize::from(o < hr))
                .sum()
        }

        fn next_seg(&self, hr: u32, mss: usize, allow_rule3: bool) -> Option<(u32, usize)> {
            let above = self.above();
            let highest = (0..self.flight).rev().find(|&o| self.is_sacked(o))?;
            let extend = |o: u32| {
                let mut len = 1;
                while len < mss.max(1)
                    && o + (len as u32) < self.flight
                    && !self.is_sacked(o + len as u32)
                {
                    len += 1;
                }
                (o, len)
            };
            let candidates = || (hr..highest).filter(|&o| !self.is_sacked(o));
            if let Some(o) = candidates().find(|&o| self.is_lost(&above, o, mss)) {
                return Some(extend(o));
            }
            if allow_rule3 {
                return candidates().next().map(extend);
            }
            None
        }
    }

    #[derive(Debug, Clone)]
    struct Step {
        adv_una: u32,
        adv_nxt: u32,
        /// (anchored at snd_nxt rather than snd_una, offset, length)
        blocks: Vec<(bool, i64, i64)>,
        raw_blocks: Vec<(u32, u32)>,
        mss: usize,
        hr: i64,
        extra: u32,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            0u32..500,
            0u32..900,
            proptest::collection::vec(
                (
                    any::<bool>(),
                    prop_oneof![-300i64..1700, -2i64..3],
                    prop_oneof![-30i64..900, -2i64..3],
                ),
                0..6,
            ),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..2),
            0usize..500,
            -200i64..1700,
            0u32..600,
        )
            .prop_map(
                |(adv_una, adv_nxt, blocks, raw_blocks, mss, hr, extra)| Step {
                    adv_una,
                    adv_nxt,
                    blocks,
                    raw_blocks,
                    mss,
                    hr,
                    extra,
                },
            )
    }

    fn start() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (u32::MAX - 2500)..=u32::MAX, 0u32..100]
    }

    fn rel(base: u32, x: i64) -> SeqNum {
        SeqNum(base.wrapping_add(x as u32))
    }

    const MODEL_WINDOW: u32 = 1500;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn the_scoreboard_agrees_with_a_per_octet_model_of_rfc_6675(
            first in start(),
            steps in proptest::collection::vec(step(), 1..10),
        ) {
            let mut sb = Scoreboard::new(1024);
            let mut model = Model::new();
            let (mut una, mut nxt) = (first, first);
            for st in steps {
                if nxt.wrapping_sub(una) + st.adv_nxt <= MODEL_WINDOW {
                    nxt = nxt.wrapping_add(st.adv_nxt);
                }
                una = una.wrapping_add(st.adv_una.min(nxt.wrapping_sub(una)));
                let mut blocks: Vec<(SeqNum, SeqNum)> = st
                    .blocks
                    .iter()
                    .map(|&(at_nxt, lo, len)| {
                        if at_nxt {
                            (rel(nxt, lo - len), rel(nxt, lo))
                        } else {
                            (rel(una, lo), rel(una, lo + len))
                        }
                    })
                    .collect();
                blocks.extend(st.raw_blocks.iter().map(|&(l, r)| (SeqNum(l), SeqNum(r))));
                let raw: Vec<(u32, u32)> = blocks.iter().map(|&(l, r)| (l.0, r.0)).collect();

                let update = sb.on_ack(SeqNum(una), SeqNum(nxt), &blocks);
                let newly = model.on_ack(una, nxt, &raw);
                check_invariants(&sb);
                prop_assert_eq!(update.newly_sacked, newly);
                prop_assert_eq!(sb.sacked_bytes(), model.sacked.len());

                let flight = model.flight;
                let highest = (0..flight).rev().find(|&o| model.is_sacked(o));
                prop_assert_eq!(sb.highest_sacked(), highest.map(|o| SeqNum(una) + (o + 1)));
                let above = model.above();
                for o in 0..flight + 3 {
                    let seq = SeqNum(una) + o;
                    prop_assert_eq!(sb.is_sacked(seq), o < flight && model.is_sacked(o), "is_sacked {}", o);
                    prop_assert_eq!(
                        sb.is_lost(seq, st.mss),
                        model.is_lost(&above, o, st.mss),
                        "is_lost {}", o
                    );
                }
                prop_assert!(!sb.is_sacked(SeqNum(una) - 1u32));

                let high_rxt = rel(una, st.hr);
                let hr = high_rxt.distance_from(SeqNum(una)).min(flight);
                prop_assert_eq!(sb.pipe(SeqNum(una), SeqNum(nxt), high_rxt, st.mss), model.pipe(hr, st.mss));
                // New data sent since the ACK is in flight, neither lost nor retransmitted.
                prop_assert_eq!(
                    sb.pipe(SeqNum(una), SeqNum(nxt) + st.extra, high_rxt.min(SeqNum(nxt)), st.mss),
                    model.pipe(hr, st.mss) + st.extra as usize
                );
                for allow in [false, true] {
                    let got = sb
                        .next_seg(SeqNum(una), SeqNum(nxt), high_rxt, st.mss, allow)
                        .map(|n| (n.seq - SeqNum(una), n.len));
                    prop_assert_eq!(got, model.next_seg(hr, st.mss, allow), "next_seg rule3={}", allow);
                }
            }
        }

        #[test]
        fn sacked_bytes_never_exceed_snd_nxt_minus_snd_una(
            cap in 0usize..6,
            una in any::<u32>(),
            len in prop_oneof![0u32..5000, any::<u32>()],
            blocks in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..8),
            near in proptest::collection::vec((0u32..6000, 0u32..3000), 0..8),
        ) {
            let mut sb = Scoreboard::new(cap);
            let (una, nxt) = (SeqNum(una), SeqNum(una) + len);
            let mut all: Vec<_> = blocks.iter().map(|&(l, r)| (SeqNum(l), SeqNum(r))).collect();
            all.extend(near.iter().map(|&(o, l)| (una + o, una + o + l)));
            let update = sb.on_ack(una, nxt, &all);
            check_invariants(&sb);
            let flight = nxt.distance_from(una) as usize;
            prop_assert!(sb.sacked_bytes() <= flight);
            prop_assert!(update.newly_sacked <= sb.sacked_bytes());
            prop_assert!(sb.ranges().count() <= cap.max(1));
        }

        #[test]
        fn pipe_never_exceeds_the_flight_unless_octets_were_retransmitted(
            una in any::<u32>(),
            len in 0u32..20_000,
            near in proptest::collection::vec((0u32..20_000, 0u32..4000), 0..8),
            dupacks in 0usize..8,
            mss in 0usize..3000,
            hr in any::<u32>(),
        ) {
            let mut sb = Scoreboard::new(4);
            let (una, nxt) = (SeqNum(una), SeqNum(una) + len);
            let blocks: Vec<_> = near.iter().map(|&(o, l)| (una + o, una + o + l)).collect();
            sb.on_ack(una, nxt, &blocks);
            for _ in 0..dupacks {
                sb.on_dupack_without_sack(mss);
            }
            let flight = len as usize;
            prop_assert!(sb.pipe(una, nxt, una, mss) <= flight);
            // RFC 6675 counts retransmitted octets that are not lost twice: at most 2x.
            let pipe = sb.pipe(una, nxt, SeqNum(hr), mss);
            let unsacked = flight - sb.sacked_bytes();
            prop_assert!(pipe <= 2 * unsacked);
            let retransmitted = (SeqNum(hr).distance_from(una) as usize).min(flight);
            prop_assert!(pipe <= unsacked + retransmitted);
        }

        #[test]
        fn next_seg_never_returns_a_sacked_byte_or_one_below_snd_una(
            cap in 1usize..6,
            una in any::<u32>(),
            len in 0u32..20_000,
            near in proptest::collection::vec((0u32..20_000, 0u32..4000), 0..10),
            dupacks in 0usize..5,
            mss in 0usize..3000,
            hr in -3000i64..21_000,
            allow in any::<bool>(),
            rescue_rxt in proptest::option::of(any::<u32>()),
        ) {
            let mut sb = Scoreboard::new(cap);
            let (una, nxt) = (SeqNum(una), SeqNum(una) + len);
            let blocks: Vec<_> = near.iter().map(|&(o, l)| (una + o, una + o + l)).collect();
            sb.on_ack(una, nxt, &blocks);
            for _ in 0..dupacks {
                sb.on_dupack_without_sack(mss);
            }
            let high_rxt = rel(una.0, hr);
            let found = [
                sb.next_seg(una, nxt, high_rxt, mss, allow),
                sb.rescue(una, nxt, high_rxt, rescue_rxt.map(SeqNum), mss),
            ];
            for (i, n) in found.into_iter().enumerate() {
                let Some(n) = n else { continue };
                prop_assert!(n.retransmission);
                prop_assert!(n.len >= 1 && n.len <= mss.max(1));
                prop_assert!(n.seq.after_eq(una));
                prop_assert!((n.seq + n.len).before_eq(nxt));
                if i == 0 {
                    // Rule (1.a): not below HighRxt.
                    prop_assert!(high_rxt.before_eq(una) || n.seq.after_eq(high_rxt.min(nxt)));
                }
                for k in 0..n.len {
                    prop_assert!(!sb.is_sacked(n.seq + k), "SACKed byte {} returned", (n.seq + k).0);
                }
            }
        }

        #[test]
        fn no_input_panics(
            cap in 0usize..5,
            ops in proptest::collection::vec(
                (
                    0u8..6,
                    any::<u32>(),
                    prop_oneof![any::<u32>(), 0u32..5000],
                    proptest::collection::vec((any::<u32>(), any::<u32>()), 0..6),
                    prop_oneof![any::<usize>(), 0usize..2000],
                    any::<u32>(),
                    any::<bool>(),
                ),
                0..24,
            ),
        ) {
            let mut sb = Scoreboard::new(cap);
            let mut una = 0u32;
            for (kind, a, b, blocks, mss, c, flag) in ops {
                let blocks: Vec<_> = blocks
                    .iter()
                    .map(|&(l, r)| if flag { (SeqNum(l), SeqNum(r)) } else { (SeqNum(una.wrapping_add(l % 4096)), SeqNum(una.wrapping_add(r % 4096))) })
                    .collect();
                match kind {
                    0 => {
                        una = a;
                        let _ = sb.on_ack(SeqNum(a), SeqNum(a.wrapping_add(b)), &blocks);
                    }
                    1 => {
                        let _ = sb.on_ack(SeqNum(a), SeqNum(c), &blocks);
                    }
                    2 => {
                        let _ = sb.on_dupack_without_sack(mss);
                    }
                    3 => sb.clear(),
                    _ => {}
                }
                check_invariants(&sb);
                let (x, y, z) = (SeqNum(a), SeqNum(a.wrapping_add(b)), SeqNum(c));
                let _ = sb.pipe(x, y, z, mss);
                let _ = sb.pipe(z, x, y, mss);
                let _ = sb.next_seg(x, y, z, mss, flag);
                let _ = sb.next_seg(z, y, x, mss, !flag);
                let _ = sb.rescue(x, y, z, Some(SeqNum(c)), mss);
                let _ = sb.rescue(y, z, x, None, mss);
                let _ = sb.is_lost(z, mss);
                let _ = sb.is_sacked(z);
                let _ = sb.highest_sacked();
                let _ = sb.reneging_suspected();
                let _ = sb.ranges().count();
            }
        }
    }
}
