//! The send buffer: bytes the application wrote that the peer has not acknowledged yet.
//!
//! A ring holding at most `capacity` bytes (`SO_SNDBUF`). The capacity is a limit, not an
//! allocation: storage is allocated when data is written, grows by doubling up to the limit,
//! and is freed when every byte has been acknowledged (see `ring.rs`), so an idle
//! connection holds no send buffer memory. Offset 0 is the byte at `SND.UNA`; offsets
//! `[0, SND.NXT - SND.UNA)` are in flight (sent, unacknowledged) and the rest are queued but
//! not sent yet. The buffer does not know which is which: the TCB keeps `SND.UNA`/`SND.NXT`
//! and asks for bytes by offset ([`SendBuffer::peek`], [`SendBuffer::copy_out`]) to build
//! (re)transmissions, and drops acknowledged bytes with [`SendBuffer::consume`] (RFC 9293
//! 3.10.7.4: "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK. Any segments on
//! the retransmission queue that are thereby entirely acknowledged are removed.").
//!
//! No method panics, whatever its arguments: lengths and offsets are clamped to what is held
//! or free. Only [`SendBuffer::write`] and [`SendBuffer::write_with`] allocate (when the data
//! does not fit the storage held), and [`SendBuffer::consume`] frees.

use super::ring::Ring;

/// A ring buffer holding the unacknowledged and unsent bytes of one connection.
///
/// Invariants: `len <= storage <= max(capacity, len)`, and no storage at all when `len == 0`, so an
/// empty buffer lends its storage from physical index 0 as one contiguous region to
/// [`SendBuffer::write_with`].
#[derive(Debug)]
pub struct SendBuffer {
    ring: Ring,
    /// The most bytes held (`SO_SNDBUF`).
    limit: usize,
    /// Bytes held.
    len: usize,
}

impl SendBuffer {
    /// A buffer that holds at most `capacity` bytes. Allocates nothing: storage comes with the
    /// first write.
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            ring: Ring::default(),
            limit: capacity,
            len: 0,
        }
    }

    /// The most bytes the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Changes the most bytes the buffer can hold. Bytes already held stay, even beyond a
    /// smaller capacity (they were accepted from the application): nothing more can be
    /// written until acknowledgments bring the held bytes below the new capacity, as Linux
    /// does when `SO_SNDBUF` shrinks under queued data. Returns the capacity.
    pub fn set_capacity(&mut self, capacity: usize) -> usize {
        self.limit = capacity;
        let keep = self.limit.max(self.len);
        if self.ring.storage() > keep {
            self.ring.resize(self.len, keep);
        }
        self.limit
    }

    /// Bytes of heap storage allocated now (0 when empty).
    pub fn allocated(&self) -> usize {
        self.ring.storage()
    }

    /// Bytes held: in flight (unacknowledged) plus queued (unsent).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no byte is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the application may still write.
    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.len)
    }

    /// Makes room in storage for `want` more bytes (as many of them as the capacity allows),
    /// then returns the free region directly after the held bytes, up to the end of the
    /// ring: `(logical start, length)`.
    fn free_region(&mut self, want: usize) -> (usize, usize) {
        let want = want.min(self.free());
        if want > 0 {
            if self.len == 0 {
                self.ring.rewind();
            }
            self.ring
                .reserve(self.len, self.len.saturating_add(want), self.limit);
        }
        let room = self.ring.storage().saturating_sub(self.len).min(want);
        (self.len, room)
    }

    /// Frees the storage if nothing is held.
    fn release_if_empty(&mut self) {
        if self.len == 0 {
            self.ring.release();
        }
    }

    /// Appends as much of `data` as fits and returns how many bytes were taken (0 when full).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let (at, room) = self.free_region(data.len());
        let data = data.get(..room).unwrap_or_default();
        self.ring.copy_in(at, data);
        self.len += data.len();
        data.len()
    }

    /// Zero-copy write: lends `f` the contiguous free region that follows the held bytes (at
    /// most `max` bytes, and at most the free space; all of that if the buffer is empty, else
    /// up to the end of the ring, so call again after a wrap), and appends the first
    /// `f(region)` bytes of it. Storage grows first if the region would be shorter than that.
    /// The count `f` returns is clamped to the region's length. `f` is called exactly once,
    /// with an empty slice when no space is free. Returns the count appended.
    pub fn write_with(&mut self, max: usize, f: impl FnOnce(&mut [u8]) -> usize) -> usize {
        let (at, room) = self.free_region(max);
        let region = self.ring.contiguous_mut(at, room);
        let n = region.len();
        let wrote = f(region).min(n);
        self.len += wrote;
        self.release_if_empty();
        wrote
    }

    /// The held bytes `[offset, offset + len)`, clamped to what is held, as up to two slices
    /// (the second is non-empty only when the range wraps around the end of the ring).
    pub fn peek(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let start = offset.min(self.len);
        let end = offset.saturating_add(len).min(self.len);
        self.ring.get(start, end - start)
    }

    /// Copies the held bytes starting at `offset` into `dst` (as many as fit and are held)
    /// and returns the count.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> usize {
        let (a, b) = self.peek(offset, dst.len());
        let (da, rest) = dst.split_at_mut(a.len());
        da.copy_from_slice(a);
        if let Some(db) = rest.get_mut(..b.len()) {
            db.copy_from_slice(b);
        }
        a.len() + b.len()
    }

    /// Drops the first `n` bytes (clamped to what is held), which the peer has acknowledged,
    /// and returns how many were dropped. Offset 0 then refers to the new `SND.UNA`. When the
    /// last byte goes, so does the storage.
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        self.ring.advance(n);
        self.len -= n;
        self.release_if_empty();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn joined(parts: (&[u8], &[u8])) -> Vec<u8> {
        [parts.0, parts.1].concat()
    }

    #[test]
    fn write_takes_only_what_fits() {
        let mut b = SendBuffer::new(8);
        assert!(b.is_empty());
        assert_eq!(b.write(b"hello"), 5);
        assert_eq!(b.write(b"world"), 3);
        assert_eq!(b.write(b"!"), 0);
        assert_eq!((b.len(), b.free(), b.capacity()), (8, 0, 8));
        assert_eq!(joined(b.peek(0, 100)), b"hellowor");
    }

    #[test]
    fn zero_length_writes_and_zero_capacity_are_harmless() {
        let mut b = SendBuffer::new(0);
        assert_eq!(b.write(b""), 0);
        assert_eq!(b.write(b"abc"), 0);
        assert_eq!(b.write_with(10, |s| s.len() + 5), 0);
        assert_eq!(b.peek(3, 3), (&[][..], &[][..]));
        assert_eq!(b.copy_out(0, &mut [0; 4]), 0);
        assert_eq!(b.consume(9), 0);
        let mut b = SendBuffer::new(4);
        assert_eq!(b.write(b""), 0);
        assert!(b.is_empty());
    }

    #[test]
    fn consume_and_peek_work_across_the_wrap() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"abcdef"), 6);
        assert_eq!(b.consume(5), 5); // head at 5, "f" held
        assert_eq!(b.write(b"ghijklm"), 7); // "fghijklm" wraps: f g h at 5..8, i..m at 0..5
        assert_eq!(b.len(), 8);
        let (x, y) = b.peek(0, 8);
        assert_eq!((x, y), (&b"fgh"[..], &b"ijklm"[..]));
        let (x, y) = b.peek(2, 3);
        assert_eq!((x, y), (&b"h"[..], &b"ij"[..]));
        let (x, y) = b.peek(4, 100);
        assert_eq!((x, y), (&b"jklm"[..], &[][..]));
        let mut dst = [0u8; 6];
        assert_eq!(b.copy_out(1, &mut dst), 6);
        assert_eq!(&dst, b"ghijkl");
        assert_eq!(b.consume(4), 4);
        assert_eq!(joined(b.peek(0, 8)), b"jklm");
        assert_eq!(b.consume(100), 4);
        assert!(b.is_empty());
    }

    #[test]
    fn peek_and_copy_out_clamp_offsets_anywhere() {
        let mut b = SendBuffer::new(4);
        b.write(b"abc");
        assert_eq!(joined(b.peek(3, 1)), b"");
        assert_eq!(joined(b.peek(usize::MAX, usize::MAX)), b"");
        assert_eq!(joined(b.peek(1, usize::MAX)), b"bc");
        let mut dst = [0u8; 8];
        assert_eq!(b.copy_out(usize::MAX, &mut dst), 0);
        assert_eq!(b.copy_out(2, &mut dst), 1);
        assert_eq!(dst[0], b'c');
    }

    #[test]
    fn write_with_lends_contiguous_space_and_clamps_the_count() {
        let mut b = SendBuffer::new(8);
        // Empty: the whole ring is lent, limited by max.
        assert_eq!(
            b.write_with(5, |s| {
                assert_eq!(s.len(), 5);
                s.copy_from_slice(b"abcde");
                5
            }),
            5
        );
        b.consume(4); // head at 4, "e" held at 4
        // Free space wraps: 5..8 then 0..4; the first loan stops at the ring's end.
        assert_eq!(
            b.write_with(100, |s| {
                assert_eq!(s.len(), 3);
                s.copy_from_slice(b"fgh");
                1000 // over-reporting is clamped
            }),
            3
        );
        assert_eq!(
            b.write_with(100, |s| {
                assert_eq!(s.len(), 4);
                s[..2].copy_from_slice(b"ij");
                2
            }),
            2
        );
        assert_eq!(joined(b.peek(0, 100)), b"efghij");
        // Full: f still runs, with nothing to write into.
        b.write(b"kl");
        let mut called = false;
        assert_eq!(
            b.write_with(10, |s| {
                called = true;
                s.len()
            }),
            0
        );
        assert!(called);
        assert_eq!(joined(b.peek(0, 100)), b"efghijkl");
    }

    #[test]
    fn an_emptied_buffer_lends_its_whole_capacity() {
        let mut b = SendBuffer::new(8);
        b.write(b"abcdef");
        b.consume(6);
        assert_eq!(b.write_with(100, |s| s.len()), 8);
    }

    #[test]
    fn storage_follows_use_and_is_freed_when_everything_is_acknowledged() {
        let mut b = SendBuffer::new(256 * 1024);
        assert_eq!(b.allocated(), 0);
        assert_eq!(b.write(&[7; 100]), 100);
        assert_eq!(b.allocated(), 4096);
        assert_eq!(b.write(&[8; 5000]), 5000);
        assert_eq!(b.allocated(), 8192);
        assert_eq!(joined(b.peek(98, 4)), [7, 7, 8, 8]);
        assert_eq!(b.write(&vec![9; 300 * 1024]), 256 * 1024 - 5100);
        assert_eq!(b.allocated(), 256 * 1024);
        assert_eq!(b.consume(1000), 1000);
        assert_eq!(b.allocated(), 256 * 1024);
        assert_eq!(b.consume(usize::MAX), 256 * 1024 - 1000);
        assert_eq!(b.allocated(), 0);
        // A loan that writes nothing leaves nothing allocated either.
        assert_eq!(b.write_with(100, |_| 0), 0);
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn set_capacity_never_drops_held_bytes() {
        let mut b = SendBuffer::new(100);
        b.write(&[1; 60]);
        assert_eq!(b.set_capacity(10), 10);
        assert_eq!((b.len(), b.free(), b.write(b"x")), (60, 0, 0));
        b.consume(50);
        assert_eq!((b.free(), b.write(b"x")), (0, 0));
        assert_eq!(b.set_capacity(20), 20);
        assert_eq!(b.free(), 10);
        assert!(b.allocated() <= 20);
        assert_eq!(joined(b.peek(0, 100)), [1; 10]);
        assert_eq!(b.write(&[2; 50]), 10);
        assert_eq!(b.set_capacity(1 << 20), 1 << 20);
        assert_eq!(b.write(&[3; 10_000]), 10_000);
        assert_eq!(b.len(), 10_020);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write(Vec<u8>),
        WriteWith(usize, usize, u8),
        Consume(usize),
        Peek(usize, usize),
        CopyOut(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Write),
            (0usize..40, 0usize..60, any::<u8>()).prop_map(|(m, r, v)| Op::WriteWith(m, r, v)),
            (0usize..40).prop_map(Op::Consume),
            (0usize..40, 0usize..40).prop_map(|(o, l)| Op::Peek(o, l)),
            (0usize..40, 0usize..40).prop_map(|(o, l)| Op::CopyOut(o, l)),
        ]
    }

    proptest! {
        /// Whatever the sequence of writes, loans, acknowledgments and reads, the buffer
        /// holds exactly the bytes a plain queue would, and never more than its capacity.
        #[test]
        fn behaves_like_a_bounded_queue(cap in 0usize..33, ops in proptest::collection::vec(op(), 0..80)) {
            let mut b = SendBuffer::new(cap);
            let mut model: VecDeque<u8> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Write(d) => {
                        let n = b.write(&d);
                        prop_assert_eq!(n, d.len().min(cap - model.len()));
                        model.extend(&d[..n]);
                    }
                    Op::WriteWith(max, report, v) => {
                        let mut lent = 0;
                        let n = b.write_with(max, |s| { lent = s.len(); s.fill(v); report });
                        prop_assert!(lent <= max && lent <= cap - model.len());
                        prop_assert!(lent > 0 || max == 0 || model.len() == cap);
                        prop_assert_eq!(n, report.min(lent));
                        model.extend(std::iter::repeat_n(v, n));
                    }
                    Op::Consume(n) => {
                        let k = b.consume(n);
                        prop_assert_eq!(k, n.min(model.len()));
                        model.drain(..k);
                    }
                    Op::Peek(o, l) => {
                        let got = joined(b.peek(o, l));
                        let want: Vec<u8> = model.iter().copied().skip(o).take(l).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::CopyOut(o, l) => {
                        let mut dst = vec![0u8; l];
                        let n = b.copy_out(o, &mut dst);
                        let want: Vec<u8> = model.iter().copied().skip(o).take(l).collect();
                        prop_assert_eq!(&dst[..n], &want[..]);
                    }
                }
                prop_assert_eq!(b.len(), model.len());
                prop_assert_eq!(b.free(), cap - model.len());
                prop_assert_eq!(b.is_empty(), model.is_empty());
                prop_assert!(b.allocated() <= cap);
                prop_assert!(b.allocated() >= b.len());
                prop_assert_eq!(b.allocated() == 0, model.is_empty());
            }
            prop_assert_eq!(joined(b.peek(0, usize::MAX)), model.iter().copied().collect::<Vec<_>>());
        }
    }
}
