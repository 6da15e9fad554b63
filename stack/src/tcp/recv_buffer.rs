//! The receive buffer: in-order bytes waiting for the application, followed by the space where
//! out-of-order segments are stored at their offset until the holes before them fill.
//!
//! A ring holding at most `capacity` bytes (`SO_RCVBUF`). The capacity is a limit, not an
//! allocation: storage is allocated when data arrives, grows by doubling up to the limit, and
//! is freed when the application has read everything and no out-of-order data is held (see
//! `ring.rs`), so an idle connection holds no receive buffer memory. The window is always
//! computed from the capacity, never from the storage allocated: growing storage can never
//! make the receiver renege on a window it advertised. Logically:
//!
//! ```text
//! | readable (in order, for the app) | RCV.NXT ... out-of-order ranges and holes ... |
//! 0                                  readable()                                    capacity
//!                                    <------------------ window() ----------------->
//! ```
//!
//! Out-of-order offsets are relative to `RCV.NXT`, the first byte after the readable ones;
//! which of them are held is tracked by an [`Assembler`], which also orders them for SACK
//! (RFC 2018). No method panics, whatever its arguments; only [`RecvBuffer::write_at`] and
//! [`RecvBuffer::spill_in_place`] allocate (when data lands beyond the storage held), and
//! reads free.
//!
//! # Bytes left in their frames (zero-copy receive)
//!
//! The first readable bytes may still be in the received frames rather than in the ring:
//! [`RecvBuffer::write_in_place`] accounts for an in-order segment exactly as
//! [`RecvBuffer::write_at`] would (`RCV.NXT` advances, the window shrinks, out-of-order data it
//! joins becomes readable) without copying it. Those [`RecvBuffer::in_place`] bytes are the
//! logical front of the readable bytes: their place in the ring (offsets `[0, in_place)`) is
//! reserved but not written, so everything after them (ring data that arrived later, the
//! out-of-order ranges) sits at the offsets it would have had. Whoever holds the frames (the
//! shard) either lends them to the application and calls [`RecvBuffer::consume_in_place`],
//! or copies them in, last bytes first, with [`RecvBuffer::spill_in_place`] before the frames
//! go back to the driver. While bytes are in place, the ring's own reads ([`RecvBuffer::read`],
//! [`RecvBuffer::read_with`], [`RecvBuffer::peek`]) see nothing: they cannot skip bytes that
//! come first.
//!
//! ```text
//! | in place (in frames) | readable ring bytes | RCV.NXT ... out-of-order ... |
//! 0                      in_place()            readable()                    capacity
//! ```

use super::reassembly::{Assembler, TooManyHoles};
use super::ring::Ring;
use super::seq::SeqNum;

/// What [`RecvBuffer::write_at`] did with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Written {
    /// Bytes by which the in-order edge (`RCV.NXT`, and [`RecvBuffer::readable`]) advanced:
    /// the segment's own bytes plus any out-of-order data it joined.
    pub in_order: usize,
    /// Bytes of this segment newly stored (not held before, and inside the window).
    pub stored: usize,
    /// The segment held no new byte: it was non-empty, lay wholly inside the window, and
    /// every byte of it was held already. Material for a D-SACK block (RFC 2883).
    pub duplicate: bool,
}

/// Whether a received segment's data may stay in its frame, and what of it did: the shard
/// offers it ([`InPlace::MayStay`]) when it holds the frame until the application has had
/// its turn; the connection answers with [`InPlace::Stayed`] when it took the data that way
/// ([`RecvBuffer::write_in_place`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// The data is copied into the receive buffer (no frame is held).
    Copy,
    /// The data may stay in the frame if it is in order and nothing readable precedes it.
    MayStay,
    /// `len` bytes of the payload, from `skip` bytes into it, stayed in the frame.
    Stayed {
        /// Payload bytes before them (already received, trimmed).
        skip: usize,
        /// Bytes left in the frame.
        len: usize,
    },
}

/// A connection's receive buffer: readable in-order data plus out-of-order data beyond it.
///
/// Invariants: `in_place <= readable <= capacity`; every assembler range lies within
/// `[0, capacity - readable)`; no range starts at offset 0 between calls (data at the edge is
/// always made readable); the storage covers `readable` plus the end of the last range, is at
/// most the capacity, and is freed whenever nothing at all is held.
#[derive(Debug)]
pub struct RecvBuffer {
    ring: Ring,
    /// The most bytes held (`SO_RCVBUF`): what the window is computed from.
    limit: usize,
    /// The `max_ranges` asked for, before clamping to the capacity (a `u32`, so that it
    /// shares a word with `in_place`: the buffer is part of every TCB).
    max_ranges: u32,
    /// The first readable bytes that are still in received frames, not in the ring.
    in_place: u32,
    readable: usize,
    ooo: Assembler,
}

impl RecvBuffer {
    /// A buffer of `capacity` bytes that tracks at most `max_ranges` out-of-order ranges
    /// (clamped to `capacity / 2`, the most a window of `capacity` bytes can hold, since each
    /// range is preceded by a hole). Allocates nothing: storage comes with the first data.
    ///
    /// Sequence numbers are converted from offsets modulo 2^32, so `capacity` should not
    /// exceed the largest window, [`super::Window::MAX`] (1 GiB).
    pub fn new(capacity: usize, max_ranges: usize) -> Self {
        RecvBuffer {
            ring: Ring::default(),
            limit: capacity,
            max_ranges: u32::try_from(max_ranges).unwrap_or(u32::MAX),
            in_place: 0,
            readable: 0,
            ooo: Assembler::new(max_ranges.min(capacity / 2)),
        }
    }

    /// The buffer's size limit in bytes (what the window is computed from).
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Changes the buffer's size limit, never below what is held (the readable bytes plus
    /// the out-of-order data beyond them). The caller must not shrink it below what it has
    /// advertised either (RFC 9293 3.8.6.2.2); see `Tcb::set_recv_capacity`. Returns the
    /// capacity in effect.
    pub fn set_capacity(&mut self, capacity: usize) -> usize {
        let used = self.used();
        self.limit = capacity.max(used);
        if self.ring.storage() > self.limit {
            self.ring.resize(used, self.limit);
        }
        self.ooo
            .set_max_ranges((self.max_ranges as usize).min(self.limit / 2));
        self.limit
    }

    /// Bytes of heap storage allocated now, data and out-of-order ranges (0 when empty).
    pub fn allocated(&self) -> usize {
        self.ring.storage() + self.ooo.allocated()
    }

    /// Logical bytes in use: the readable ones and the out-of-order data after them.
    fn used(&self) -> usize {
        self.readable + self.ooo.end()
    }

    /// In-order bytes the application can read.
    pub fn readable(&self) -> usize {
        self.readable
    }

    /// Bytes that may be advertised as the receive window from `RCV.NXT`:
    /// `capacity - readable`. Out-of-order data already held lies inside this window (it is
    /// counted as free, as RFC 9293's RCV.WND is measured from RCV.NXT).
    pub fn window(&self) -> usize {
        self.limit.saturating_sub(self.readable)
    }

    /// True when data beyond a hole is held.
    pub fn has_out_of_order(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// The out-of-order ranges (offsets relative to `RCV.NXT`), for inspection.
    pub fn assembler(&self) -> &Assembler {
        &self.ooo
    }

    /// Stores a segment's data whose first byte is `offset` bytes after `RCV.NXT` (the caller
    /// has already trimmed anything before `RCV.NXT`).
    ///
    /// RFC 9293 3.10.7.4: segments may be tailored to the window "by trimming off any portions
    /// that lie outside the window", so bytes beyond [`RecvBuffer::window`] are dropped here.
    /// Data at offset 0 becomes readable together with every out-of-order byte now contiguous
    /// with it; data further on is held out of order (SHLD-31: "Segments with higher beginning
    /// sequence numbers may be held for later processing"). Bytes already held are written
    /// again; a correct peer resends the same bytes for the same sequence numbers.
    ///
    /// # Errors
    ///
    /// [`TooManyHoles`] when an out-of-order segment touches no held range and the assembler
    /// tracks `max_ranges` already; nothing is stored then. Data at offset 0 is never refused.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<Written, TooManyHoles> {
        self.store(offset, data.len(), Some(data))
    }

    /// True when an in-order segment of `len` bytes may be left in its frame
    /// ([`RecvBuffer::write_in_place`]): it is not empty, all of it fits the window (so a later
    /// [`RecvBuffer::spill_in_place`] always has room), and no readable byte of the ring
    /// precedes it (bytes in place are always the front of the stream).
    pub fn can_stay_in_place(&self, len: usize) -> bool {
        len > 0
            && self.readable == self.in_place as usize
            && len <= self.window()
            && u32::try_from(self.in_place as usize + len).is_ok()
    }

    /// Accounts for `len` bytes at `RCV.NXT` that stay in their frame: everything
    /// [`RecvBuffer::write_at`]`(0, ..)` does except copying them (see the module
    /// documentation). The caller keeps the bytes and must either lend them to the
    /// application ([`RecvBuffer::consume_in_place`]) or copy them in
    /// ([`RecvBuffer::spill_in_place`]). Nothing happens unless
    /// [`RecvBuffer::can_stay_in_place`]`(len)`.
    pub fn write_in_place(&mut self, len: usize) -> Written {
        if !self.can_stay_in_place(len) {
            return Written::default();
        }
        let w = self.store(0, len, None).unwrap_or_default();
        self.in_place += len as u32;
        w
    }

    /// Bytes at the front of the readable ones that are still in received frames.
    pub fn in_place(&self) -> usize {
        self.in_place as usize
    }

    /// The application consumed `n` bytes in place (clamped to [`RecvBuffer::in_place`]);
    /// returns the count consumed.
    pub fn consume_in_place(&mut self, n: usize) -> usize {
        let n = n.min(self.in_place as usize);
        self.in_place -= n as u32;
        self.consume(n);
        n
    }

    /// Copies the *last* `data.len()` bytes still in place into the ring (allocating storage
    /// if need be), so that the bytes still in frames stay the front of the stream: a caller
    /// spilling several frames goes from the last to the first. Returns false, copying
    /// nothing, if fewer bytes than that are in place.
    pub fn spill_in_place(&mut self, data: &[u8]) -> bool {
        let Some(at) = (self.in_place as usize).checked_sub(data.len()) else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        let used = self.used();
        self.ring.reserve(used, used, self.limit);
        self.ring.copy_in(at, data);
        self.in_place = at as u32;
        true
    }

    /// What `write_at` does, for `len` bytes at `offset` that are copied from `data` or, when
    /// `data` is `None`, stay in their frame (then `offset` is 0 and all of it fits).
    fn store(
        &mut self,
        offset: usize,
        len: usize,
        data: Option<&[u8]>,
    ) -> Result<Written, TooManyHoles> {
        let window = self.window();
        let keep = window.saturating_sub(offset).min(len);
        let trimmed = keep < len;
        let data = match data {
            Some(d) => match d.get(..keep) {
                Some(d) => Some(d),
                None => return Ok(Written::default()),
            },
            None => None,
        };
        if keep == 0 {
            return Ok(Written::default());
        }
        let stored = keep - self.ooo.covered(offset, keep);
        let used = self.used();
        let at = self.readable + offset;
        let in_order = if offset == 0 {
            // Joins whatever it overlaps or touches: drop/trim ranges it covers, then collect
            // the one that now starts at the edge.
            if let Some(data) = data {
                self.ring.reserve(used, at + keep, self.limit);
                self.ring.copy_in(at, data);
            }
            self.ooo.advance(keep);
            keep + self.ooo.take_front()
        } else {
            self.ooo.add(offset, keep)?;
            if let Some(data) = data {
                self.ring.reserve(used, at + keep, self.limit);
                self.ring.copy_in(at, data);
            }
            0
        };
        self.readable += in_order;
        Ok(Written {
            in_order,
            stored,
            duplicate: stored == 0 && !trimmed,
        })
    }

    /// Drops `n <= readable` bytes the application consumed (ring bytes, or bytes in place
    /// whose reserved room in the ring is skipped). Frees the storage when nothing at all is
    /// held.
    fn consume(&mut self, n: usize) {
        self.ring.advance(n);
        self.readable -= n;
        if self.readable == 0 && self.ooo.is_empty() {
            self.ring.release();
            self.ooo.release();
        }
    }

    /// Copies readable bytes into `dst` (as many as fit), consumes them and returns the count.
    /// Reads nothing while bytes are in place (they come first).
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let (a, b) = self.peek(0, dst.len());
        let n = a.len() + b.len();
        let (da, rest) = dst.split_at_mut(a.len());
        da.copy_from_slice(a);
        if let Some(db) = rest.get_mut(..b.len()) {
            db.copy_from_slice(b);
        }
        self.consume(n);
        n
    }

    /// Zero-copy read: lends `f` the first contiguous run of readable bytes (up to the end of
    /// the ring; call again for the rest after a wrap) and consumes the `f(run)` bytes it
    /// reports (clamped to the run's length). `f` is called exactly once, with an empty slice
    /// when nothing is readable (or the readable bytes are in place). Returns the count
    /// consumed.
    pub fn read_with(&mut self, f: impl FnOnce(&[u8]) -> usize) -> usize {
        let (run, _) = self.peek(0, self.readable);
        let n = f(run).min(run.len());
        self.consume(n);
        n
    }

    /// The readable bytes `[offset, offset + len)`, clamped to what is readable, as up to two
    /// slices (the second non-empty only across the ring's wrap). Consumes nothing. Empty
    /// while bytes are in place (they are not in the ring).
    pub fn peek(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if self.in_place > 0 {
            return (&[], &[]);
        }
        let start = offset.min(self.readable);
        let end = offset.saturating_add(len).min(self.readable);
        self.ring.get(start, end - start)
    }

    /// SACK blocks `(left edge, right edge)` (the right edge is the first sequence number
    /// after the block, RFC 2018 3) for the out-of-order data, given the current `RCV.NXT`.
    ///
    /// RFC 2018 4: "The first SACK block ... MUST specify the contiguous block of data
    /// containing the segment which triggered this ACK, unless that segment advanced the
    /// Acknowledgment Number field in the header"; the others follow from most to least
    /// recently updated, as Linux orders them. At most `max` blocks, and never more than 4
    /// (what 40 bytes of options hold; pass 3 with timestamps, one less again when a D-SACK
    /// block goes first, RFC 2883 4). No block contains `rcv_nxt`: held ranges start at
    /// offset 1 or later.
    pub fn sack_blocks(
        &self,
        rcv_nxt: SeqNum,
        max: usize,
    ) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.ooo
            .recent_ranges()
            .take(max.min(4))
            .map(move |(off, len)| (rcv_nxt + off, rcv_nxt + off + len))
    }

    /// Forgets all data, readable and out of order, and frees the storage.
    pub fn clear(&mut self) {
        self.readable = 0;
        self.in_place = 0;
        self.ooo.clear();
        self.ring.release();
        self.ooo.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut out = vec![0u8; b.readable()];
        let n = b.read(&mut out);
        out.truncate(n);
        out
    }

    fn blocks(b: &RecvBuffer, rcv_nxt: u32, max: usize) -> Vec<(u32, u32)> {
        b.sack_blocks(SeqNum(rcv_nxt), max)
            .map(|(l, r)| (l.get(), r.get()))
            .collect()
    }

    #[test]
    fn in_order_data_becomes_readable() {
        let mut b = RecvBuffer::new(16, 4);
        let w = b.write_at(0, b"hello").unwrap();
        assert_eq!(
            w,
            Written {
                in_order: 5,
                stored: 5,
                duplicate: false
            }
        );
        assert_eq!(b.readable(), 5);
        assert_eq!(read_all(&mut b), b"hello");
        assert_eq!(b.readable(), 0);
    }

    #[test]
    fn window_shrinks_as_data_is_held_and_grows_as_the_app_reads() {
        let mut b = RecvBuffer::new(10, 4);
        assert_eq!(b.window(), 10);
        b.write_at(0, b"abcd").unwrap();
        assert_eq!(b.window(), 6);
        // Out-of-order data sits inside the advertised window: it does not shrink it.
        b.write_at(2, b"xy").unwrap();
        assert_eq!(b.window(), 6);
        b.write_at(0, b"ef").unwrap();
        assert_eq!((b.readable(), b.window()), (8, 2));
        let mut two = [0u8; 3];
        assert_eq!(b.read(&mut two), 3);
        assert_eq!(&two, b"abc");
        assert_eq!(b.window(), 5);
        assert_eq!(read_all(&mut b), b"defxy");
        assert_eq!(b.window(), 10);
    }

    #[test]
    fn data_beyond_the_window_is_trimmed() {
        let mut b = RecvBuffer::new(8, 4);
        let w = b.write_at(0, b"0123456789").unwrap();
        assert_eq!((w.in_order, w.stored, w.duplicate), (8, 8, false));
        assert_eq!(b.window(), 0);
        // A zero window keeps nothing, and that is not a duplicate.
        assert_eq!(b.write_at(0, b"89").unwrap(), Written::default());
        let mut four = [0u8; 4];
        b.read(&mut four);
        // Window of 4: an out-of-order segment straddling its right edge keeps what fits.
        let w = b.write_at(2, b"abcdef").unwrap();
        assert_eq!((w.in_order, w.stored, w.duplicate), (0, 2, false));
        assert_eq!(blocks(&b, 100, 4), [(102, 104)]);
        // Entirely beyond the window: nothing kept, nothing refused.
        assert_eq!(b.write_at(4, b"zz").unwrap(), Written::default());
        assert_eq!(b.write_at(usize::MAX, b"zz").unwrap(), Written::default());
        b.write_at(0, b"xy").unwrap();
        assert_eq!(read_all(&mut b), b"4567xyab");
    }

    #[test]
    fn a_segment_filling_a_hole_releases_everything_contiguous() {
        let mut b = RecvBuffer::new(32, 8);
        b.write_at(3, b"def").unwrap();
        b.write_at(9, b"jk").unwrap();
        b.write_at(6, b"ghi").unwrap(); // joins [3,6) and [9,11)
        b.write_at(14, b"op").unwrap();
        assert_eq!(b.readable(), 0);
        assert!(b.has_out_of_order());
        let w = b.write_at(0, b"abc").unwrap();
        assert_eq!((w.in_order, w.stored), (11, 3));
        assert_eq!(read_all(&mut b), b"abcdefghijk");
        assert_eq!(blocks(&b, 11, 4), [(14, 16)]);
        // An in-order segment overlapping held data only counts its new bytes.
        let w = b.write_at(0, b"lmnop").unwrap();
        assert_eq!((w.in_order, w.stored, w.duplicate), (5, 3, false));
        assert!(!b.has_out_of_order());
        assert_eq!(read_all(&mut b), b"lmnop");
    }

    #[test]
    fn duplicates_are_reported_and_store_nothing() {
        let mut b = RecvBuffer::new(32, 8);
        b.write_at(4, b"efgh").unwrap();
        let w = b.write_at(5, b"fg").unwrap();
        assert_eq!(
            w,
            Written {
                in_order: 0,
                stored: 0,
                duplicate: true
            }
        );
        let w = b.write_at(6, b"ghij").unwrap();
        assert_eq!((w.stored, w.duplicate), (2, false));
        assert_eq!(b.write_at(3, b"").unwrap(), Written::default());
    }

    #[test]
    fn a_duplicate_trimmed_by_the_window_is_not_a_duplicate() {
        let mut b = RecvBuffer::new(8, 4);
        b.write_at(4, b"efgh").unwrap();
        let w = b.write_at(4, b"efghij").unwrap(); // i, j are new but beyond the window
        assert_eq!((w.stored, w.duplicate), (0, false));
    }

    #[test]
    fn sack_blocks_start_with_the_most_recently_received_range() {
        let mut b = RecvBuffer::new(100, 8);
        let nxt = u32::MAX - 5; // blocks straddle the sequence wrap
        b.write_at(10, &[1; 5]).unwrap();
        b.write_at(30, &[1; 5]).unwrap();
        b.write_at(50, &[1; 5]).unwrap();
        let base = SeqNum(nxt);
        let edge = |o: usize| (base + o).get();
        assert_eq!(
            blocks(&b, nxt, 4),
            [
                (edge(50), edge(55)),
                (edge(30), edge(35)),
                (edge(10), edge(15))
            ]
        );
        b.write_at(15, &[1; 2]).unwrap(); // extends the oldest range
        assert_eq!(blocks(&b, nxt, 4)[0], (edge(10), edge(17)));
        b.write_at(31, &[1; 2]).unwrap(); // a duplicate: its block goes first (RFC 2883 4)
        assert_eq!(blocks(&b, nxt, 4)[0], (edge(30), edge(35)));
        assert_eq!(blocks(&b, nxt, 2).len(), 2);
        assert_eq!(blocks(&b, nxt, 0).len(), 0);
        // In-order data that joins a range removes it from the SACK blocks.
        b.write_at(0, &[1; 10]).unwrap();
        let nxt2 = nxt.wrapping_add(17);
        assert_eq!(
            blocks(&b, nxt2, 4),
            [(edge(30), edge(35)), (edge(50), edge(55))]
        );
    }

    #[test]
    fn at_most_four_sack_blocks_whatever_max_says() {
        let mut b = RecvBuffer::new(100, 20);
        for k in 0..10 {
            b.write_at(1 + 3 * k, b"x").unwrap();
        }
        assert_eq!(blocks(&b, 0, 100).len(), 4);
        assert_eq!(blocks(&b, 0, 3).len(), 3);
        assert_eq!(blocks(&b, 0, 3)[0], (28, 29));
    }

    #[test]
    fn every_other_byte_arriving_runs_out_of_holes() {
        let mut b = RecvBuffer::new(1000, 16);
        let mut refused = 0;
        for k in 0..100 {
            match b.write_at(1 + 2 * k, b"x") {
                Ok(w) => assert_eq!(w.stored, 1),
                Err(TooManyHoles) => refused += 1,
            }
        }
        assert_eq!(refused, 84);
        assert_eq!(b.assembler().len(), 16);
        // Refused data was not stored: filling the holes makes only the accepted bytes
        // contiguous, and in-order data is never refused.
        // Each in-order byte joins the next held one.
        for _ in 0..16 {
            assert_eq!(b.write_at(0, b"y").unwrap().in_order, 2);
        }
        assert_eq!(b.write_at(0, b"y").unwrap().in_order, 1);
        assert_eq!(b.readable(), 33);
        assert!(!b.has_out_of_order());
    }

    #[test]
    fn max_ranges_is_clamped_to_what_the_capacity_can_hold() {
        let b = RecvBuffer::new(10, usize::MAX);
        assert_eq!(b.assembler().max_ranges(), 5);
        let mut b = RecvBuffer::new(0, 4);
        assert_eq!(b.write_at(0, b"abc").unwrap(), Written::default());
        assert_eq!(b.read_with(|s| s.len() + 1), 0);
        assert_eq!(b.sack_blocks(SeqNum(0), 4).count(), 0);
    }

    #[test]
    fn read_with_lends_contiguous_runs_across_the_wrap() {
        let mut b = RecvBuffer::new(8, 4);
        b.write_at(0, b"abcdef").unwrap();
        assert_eq!(
            b.read_with(|s| {
                assert_eq!(s, b"abcdef");
                5
            }),
            5
        );
        // head at 5; "f" at 5, then "ghijk" wraps: g,h at 6,7 and i,j,k at 0..3.
        // RCV.NXT is after "f": "hijk" at offset 1 is held out of order, across the wrap.
        b.write_at(1, b"hijk").unwrap();
        assert_eq!(b.readable(), 1);
        assert_eq!(b.write_at(0, b"g").unwrap().in_order, 5);
        assert_eq!(b.readable(), 6);
        let (x, y) = b.peek(0, 100);
        assert_eq!((x, y), (&b"fgh"[..], &b"ijk"[..]));
        assert_eq!(b.peek(2, 2), (&b"h"[..], &b"i"[..]));
        assert_eq!(
            b.read_with(|s| {
                assert_eq!(s, b"fgh");
                usize::MAX // clamped
            }),
            3
        );
        assert_eq!(
            b.read_with(|s| {
                assert_eq!(s, b"ijk");
                1
            }),
            1
        );
        assert_eq!(read_all(&mut b), b"jk");
        let mut called = false;
        assert_eq!(
            b.read_with(|s| {
                called = true;
                s.len()
            }),
            0
        );
        assert!(called);
    }

    #[test]
    fn clear_forgets_all_data() {
        let mut b = RecvBuffer::new(8, 4);
        b.write_at(0, b"ab").unwrap();
        b.write_at(3, b"d").unwrap();
        b.clear();
        assert_eq!(
            (b.readable(), b.window(), b.has_out_of_order()),
            (0, 8, false)
        );
        b.write_at(0, b"xyz").unwrap();
        assert_eq!(read_all(&mut b), b"xyz");
    }

    #[test]
    fn storage_follows_use_and_the_window_follows_the_capacity() {
        let mut b = RecvBuffer::new(256 * 1024, 8);
        assert_eq!((b.allocated(), b.window()), (0, 256 * 1024));
        b.write_at(0, &[1; 100]).unwrap();
        assert_eq!(b.allocated(), 4096);
        assert_eq!(b.window(), 256 * 1024 - 100);
        // Out-of-order data far into the window grows the storage to cover it.
        b.write_at(100_000, &[2; 10]).unwrap();
        assert!(
            b.allocated() >= 131_072 && b.allocated() < 132_000,
            "{}",
            b.allocated()
        );
        assert_eq!(b.window(), 256 * 1024 - 100);
        assert_eq!(read_all(&mut b), [1; 100]);
        // Out-of-order data is still held: the storage stays.
        assert!(b.allocated() >= 100_010);
        b.write_at(0, &[3; 100_000]).unwrap();
        assert_eq!(b.readable(), 100_010);
        let all = read_all(&mut b);
        assert_eq!((&all[..2], &all[100_000..]), (&[3, 3][..], &[2; 10][..]));
        assert_eq!((b.allocated(), b.window()), (0, 256 * 1024));
    }

    #[test]
    fn set_capacity_never_drops_held_data() {
        let mut b = RecvBuffer::new(1000, 8);
        b.write_at(0, b"abc").unwrap();
        b.write_at(500, b"xyz").unwrap();
        assert_eq!(b.set_capacity(10), 506);
        assert_eq!(b.window(), 503);
        assert!(b.allocated() >= 506);
        b.write_at(0, &[b'd'; 500]).unwrap();
        assert_eq!(b.readable(), 506);
        assert_eq!(b.window(), 0);
        let all = read_all(&mut b);
        assert_eq!(&all[500..], b"dddxyz");
        assert_eq!(b.set_capacity(10), 10);
        assert_eq!(b.assembler().max_ranges(), 5);
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn bytes_in_place_count_as_held_and_the_ring_stays_unallocated() {
        let mut b = RecvBuffer::new(100, 4);
        assert!(b.can_stay_in_place(40));
        let w = b.write_in_place(40);
        assert_eq!(
            w,
            Written {
                in_order: 40,
                stored: 40,
                duplicate: false
            }
        );
        // The window shrinks exactly as if the bytes had been copied; no storage is taken.
        assert_eq!((b.readable(), b.in_place(), b.window()), (40, 40, 60));
        assert_eq!(b.allocated(), 0);
        // A second in-order segment may stay too: only bytes in place precede it.
        assert_eq!(b.write_in_place(50).in_order, 50);
        assert_eq!((b.in_place(), b.window()), (90, 10));
        // Not beyond the window, and never empty.
        assert!(!b.can_stay_in_place(11));
        assert!(!b.can_stay_in_place(0));
        assert_eq!(b.write_in_place(11), Written::default());
        // The ring's own reads cannot skip the bytes in place.
        let mut out = [0u8; 8];
        assert_eq!(b.read(&mut out), 0);
        assert_eq!(b.read_with(|s| s.len()), 0);
        assert_eq!(b.peek(0, 10), (&[][..], &[][..]));
        // The application reads them in place; the window opens.
        assert_eq!(b.consume_in_place(30), 30);
        assert_eq!((b.readable(), b.in_place(), b.window()), (60, 60, 40));
        assert_eq!(b.consume_in_place(1000), 60);
        assert_eq!((b.readable(), b.window(), b.allocated()), (0, 100, 0));
    }

    #[test]
    fn spilled_bytes_keep_their_place_before_later_data() {
        let mut b = RecvBuffer::new(100, 4);
        b.write_in_place(3); // "abc", in a frame
        b.write_in_place(3); // "def", in another
        // Data that arrives after them, in order and out of order, goes to the ring behind
        // the room reserved for them (a table of frames that was full copies in order data).
        b.write_at(3, b"jk").unwrap();
        b.write_at(0, b"ghi").unwrap();
        assert_eq!((b.readable(), b.in_place()), (11, 6));
        // Ring data now precedes any later segment: that one cannot stay in place.
        assert!(!b.can_stay_in_place(2));
        // Spill from the last frame to the first: the bytes still in place stay the front.
        assert!(!b.spill_in_place(b"toolongtoo"));
        assert!(b.spill_in_place(b"def"));
        assert_eq!(b.in_place(), 3);
        assert!(b.spill_in_place(b"abc"));
        assert_eq!(b.in_place(), 0);
        assert!(!b.spill_in_place(b"x"));
        assert_eq!(read_all(&mut b), b"abcdefghijk");
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn an_in_place_segment_that_fills_a_hole_releases_the_data_behind_it() {
        let mut b = RecvBuffer::new(100, 4);
        b.write_at(4, b"efg").unwrap();
        // Overlaps the held range by one byte: only its new bytes count as stored.
        assert!(b.can_stay_in_place(5));
        let w = b.write_in_place(5); // "abcde"
        assert_eq!((w.in_order, w.stored), (7, 4));
        assert!(!b.has_out_of_order());
        assert_eq!((b.readable(), b.in_place()), (7, 5));
        // Read part in place, spill the rest ("cde"), then read on from the ring.
        assert_eq!(b.consume_in_place(2), 2);
        assert!(b.spill_in_place(b"cde"));
        assert_eq!(read_all(&mut b), b"cdefg");
    }

    /// Receiver-side model: the stream, how much the app has read, `RCV.NXT`, which absolute
    /// positions are held, and the SACK properties checked after every segment.
    struct Harness {
        stream: Vec<u8>,
        buf: RecvBuffer,
        max_ranges: usize,
        cap: usize,
        read_pos: usize,
        rcv_nxt: usize,
        held: Vec<bool>,
        out: Vec<u8>,
        isn: u32,
        refused: usize,
        /// Stream ranges `(start, len)` still in place (in "frames"), oldest first.
        frames: Vec<(usize, usize)>,
    }

    impl Harness {
        /// An in-order segment of up to `l` bytes at RCV.NXT whose frame is held: left in
        /// place when the buffer allows, copied otherwise.
        fn deliver_held(&mut self, l: usize) -> Result<(), TestCaseError> {
            let s = self.rcv_nxt;
            let l = l.min(self.stream.len() - s);
            let window = self.cap - (self.rcv_nxt - self.read_pos);
            let ring_readable = self.rcv_nxt - self.read_pos - self.in_place();
            let may = l > 0 && l <= window && ring_readable == 0;
            prop_assert_eq!(self.buf.can_stay_in_place(l), may);
            if !may {
                return self.deliver(s, l);
            }
            let newly = (s..s + l).filter(|&k| !self.held[k]).count();
            let w = self.buf.write_in_place(l);
            (s..s + l).for_each(|k| self.held[k] = true);
            let front = self.held[s..].iter().take_while(|&&h| h).count();
            prop_assert_eq!(
                (w.in_order, w.stored, w.duplicate),
                (front, newly, newly == 0)
            );
            self.rcv_nxt += front;
            self.frames.push((s, l));
            prop_assert_eq!(self.buf.in_place(), self.in_place());
            prop_assert_eq!(self.buf.readable(), self.rcv_nxt - self.read_pos);
            self.check_sack()
        }

        fn in_place(&self) -> usize {
            self.frames.iter().map(|f| f.1).sum()
        }

        /// The frames go back: everything still in place is copied, last frame first.
        fn spill(&mut self) -> Result<(), TestCaseError> {
            while let Some((s, l)) = self.frames.pop() {
                prop_assert!(self.buf.spill_in_place(&self.stream[s..s + l]));
            }
            prop_assert_eq!(self.buf.in_place(), 0);
            Ok(())
        }

        /// Reads up to `n` bytes from the front frame, as the shard lends it.
        fn read_in_place(&mut self, n: usize) -> Result<(), TestCaseError> {
            let Some(&(s, l)) = self.frames.first() else {
                return Ok(());
            };
            prop_assert_eq!(s, self.read_pos);
            let k = n.min(l);
            prop_assert_eq!(self.buf.consume_in_place(k), k);
            self.out.extend_from_slice(&self.stream[s..s + k]);
            self.read_pos += k;
            if k == l {
                self.frames.remove(0);
            } else {
                self.frames[0] = (s + k, l - k);
            }
            prop_assert_eq!(self.buf.in_place(), self.in_place());
            prop_assert_eq!(self.buf.readable(), self.rcv_nxt - self.read_pos);
            Ok(())
        }

        fn deliver(&mut self, s: usize, l: usize) -> Result<(), TestCaseError> {
            let e = (s + l).min(self.stream.len());
            // The caller trims what lies before RCV.NXT (and the sender sends nothing past
            // the end of the stream).
            if e <= self.rcv_nxt || s >= e {
                return Ok(());
            }
            let s = s.max(self.rcv_nxt);
            let offset = s - self.rcv_nxt;
            let window = self.cap - (self.rcv_nxt - self.read_pos);
            prop_assert_eq!(self.buf.window(), window);
            let keep_end = e.min(self.rcv_nxt + window);
            let newly = (s..keep_end.max(s)).filter(|&k| !self.held[k]).count();
            // Would the held set need more than max_ranges ranges beyond RCV.NXT?
            let mut next = self.held.clone();
            (s..keep_end.max(s)).for_each(|k| next[k] = true);
            let runs = ranges_after(&next, self.rcv_nxt);
            let too_many = runs > self.max_ranges.min(self.cap / 2) && offset > 0;
            match self.buf.write_at(offset, &self.stream[s..e]) {
                Err(TooManyHoles) => {
                    prop_assert!(too_many);
                    self.refused += 1;
                }
                Ok(w) => {
                    prop_assert!(!too_many || keep_end <= s);
                    self.held = next;
                    prop_assert_eq!(w.stored, newly);
                    prop_assert_eq!(w.duplicate, newly == 0 && keep_end == e);
                    let front = self.held[self.rcv_nxt..].iter().take_while(|&&h| h).count();
                    prop_assert_eq!(w.in_order, front);
                    self.rcv_nxt += front;
                    // RFC 2018 4: the first block holds the segment that triggered the ACK,
                    // unless it advanced RCV.NXT.
                    if w.in_order == 0 && keep_end > s {
                        let (l, r) = self.sack(4)[0];
                        prop_assert!(l <= s && keep_end <= r);
                    }
                }
            }
            prop_assert_eq!(self.buf.readable(), self.rcv_nxt - self.read_pos);
            prop_assert!(self.buf.ring.storage() <= self.cap);
            self.check_sack()
        }

        /// SACK blocks as absolute stream positions.
        fn sack(&self, max: usize) -> Vec<(usize, usize)> {
            let nxt = SeqNum(self.isn) + self.rcv_nxt;
            self.buf
                .sack_blocks(nxt, max)
                .map(|(l, r)| {
                    (
                        self.rcv_nxt + (l - nxt) as usize,
                        self.rcv_nxt + (r - nxt) as usize,
                    )
                })
                .collect()
        }

        fn check_sack(&self) -> Result<(), TestCaseError> {
            for max in [3, 4] {
                let blocks = self.sack(max);
                prop_assert!(blocks.len() <= max);
                prop_assert_eq!(
                    blocks.len(),
                    max.min(ranges_after(&self.held, self.rcv_nxt))
                );
                for &(l, r) in &blocks {
                    // Strictly after RCV.NXT, describing held data, and maximal.
                    prop_assert!(self.rcv_nxt < l && l < r && r <= self.stream.len());
                    prop_assert!(self.held[l..r].iter().all(|&h| h));
                    prop_assert!(!self.held[l - 1]);
                    prop_assert!(r == self.held.len() || !self.held[r]);
                }
                for (i, a) in blocks.iter().enumerate() {
                    for b in &blocks[i + 1..] {
                        prop_assert!(a.1 < b.0 || b.1 < a.0);
                    }
                }
            }
            Ok(())
        }

        fn read(&mut self, n: usize, zero_copy: bool) -> Result<(), TestCaseError> {
            if !self.frames.is_empty() {
                // Bytes in place come first: the ring reads nothing.
                let mut probe = [0u8; 4];
                prop_assert_eq!(self.buf.read(&mut probe), 0);
                return self.read_in_place(n);
            }
            let got = if zero_copy {
                let mut got = Vec::new();
                self.buf.read_with(|s| {
                    let k = n.min(s.len());
                    got.extend_from_slice(&s[..k]);
                    k
                });
                got
            } else {
                let (a, b) = self.buf.peek(0, n);
                let peeked = [a, b].concat();
                let mut got = vec![0u8; n];
                let k = self.buf.read(&mut got);
                got.truncate(k);
                prop_assert_eq!(&peeked, &got);
                got
            };
            self.read_pos += got.len();
            self.out.extend_from_slice(&got);
            prop_assert_eq!(self.buf.readable(), self.rcv_nxt - self.read_pos);
            Ok(())
        }
    }

    /// Number of maximal held runs strictly after `from`.
    fn ranges_after(held: &[bool], from: usize) -> usize {
        let mut n = 0;
        for k in from..held.len() {
            if held[k] && (k == from || !held[k - 1]) {
                n += 1;
            }
        }
        n
    }

    #[derive(Debug, Clone)]
    enum Event {
        /// A segment anywhere in the stream.
        Anywhere(usize, usize),
        /// A segment near RCV.NXT: starting up to 10 bytes before it (a partial or whole
        /// duplicate) or up to 80 after it (out of order, possibly past the window).
        Near(usize, usize),
        Read(usize, bool),
        /// An in-order segment whose frame is held (left in place when possible).
        Held(usize),
        /// The held frames go back: spill.
        Spill,
    }

    fn event(len: usize) -> impl Strategy<Value = Event> {
        prop_oneof![
            1 => (0..len, 1usize..40).prop_map(|(s, l)| Event::Anywhere(s, l)),
            6 => (0usize..90, 1usize..12).prop_map(|(d, l)| Event::Near(d, l)),
            1 => (0usize..64, any::<bool>()).prop_map(|(n, z)| Event::Read(n, z)),
            2 => (1usize..20).prop_map(Event::Held),
            1 => Just(Event::Spill),
        ]
    }

    proptest! {
        /// Whatever order and duplication segments arrive in (and however they overlap, run
        /// past the window or are refused), and whichever in-order ones stay in their frames
        /// to be read there or spilled, the bytes read out are exactly the stream, in order,
        /// each once; every Written matches a byte-level model; SACK blocks always describe
        /// held data, never include RCV.NXT, never overlap and never exceed max.
        #[test]
        fn any_arrival_order_reads_back_the_stream(
            stream in proptest::collection::vec(any::<u8>(), 1..300),
            cap in 1usize..80,
            max_ranges in 0usize..6,
            isn in any::<u32>(),
            seed_events in proptest::collection::vec(event(300), 0..200),
        ) {
            let len = stream.len();
            let mut h = Harness {
                buf: RecvBuffer::new(cap, max_ranges),
                held: vec![false; len],
                stream,
                max_ranges,
                cap,
                read_pos: 0,
                rcv_nxt: 0,
                out: Vec::new(),
                isn,
                refused: 0,
                frames: Vec::new(),
            };
            for ev in seed_events {
                match ev {
                    Event::Anywhere(s, l) => h.deliver(s % len, l)?,
                    Event::Near(d, l) => h.deliver((h.rcv_nxt + d).saturating_sub(10), l)?,
                    Event::Read(n, z) => h.read(n, z)?,
                    Event::Held(l) => h.deliver_held(l)?,
                    Event::Spill => h.spill()?,
                }
            }
            h.spill()?;
            // Then the sender retransmits from RCV.NXT (go-back-N style) while the app
            // drains, until everything has arrived.
            let mut rounds = 0;
            while h.read_pos < len {
                let (s, l) = (h.rcv_nxt, 7);
                h.deliver(s, l)?;
                h.read(17, rounds % 2 == 0)?;
                rounds += 1;
                prop_assert!(rounds < 10_000);
            }
            prop_assert_eq!(&h.out, &h.stream);
            prop_assert!(!h.buf.has_out_of_order());
            prop_assert_eq!(h.buf.allocated(), 0);
        }
    }
}
