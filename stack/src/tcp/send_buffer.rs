//! The send buffer: bytes the application wrote that the peer has not acknowledged yet.
//!
//! A ring of `capacity` bytes allocated once in [`SendBuffer::new`]. Offset 0 is the byte at
//! `SND.UNA`; offsets `[0, SND.NXT - SND.UNA)` are in flight (sent, unacknowledged) and the
//! rest are queued but not sent yet. The buffer does not know which is which: the TCB keeps
//! `SND.UNA`/`SND.NXT` and asks for bytes by offset ([`SendBuffer::peek`],
//! [`SendBuffer::copy_out`]) to build (re)transmissions, and drops acknowledged bytes with
//! [`SendBuffer::consume`] (RFC 9293 3.10.7.4: "If SND.UNA < SEG.ACK =< SND.NXT, then set
//! SND.UNA <- SEG.ACK. Any segments on the retransmission queue that are thereby entirely
//! acknowledged are removed.").
//!
//! No method panics or allocates, whatever its arguments: lengths and offsets are clamped to
//! what is held or free.

/// A ring buffer holding the unacknowledged and unsent bytes of one connection.
///
/// Invariants: `len <= capacity`, `head < capacity` (or `head == 0` when the capacity is 0),
/// and when the buffer is empty `head == 0`, so that an empty buffer lends its whole capacity
/// as one contiguous region to [`SendBuffer::write_with`].
#[derive(Debug)]
pub struct SendBuffer {
    buf: Box<[u8]>,
    /// Physical index of offset 0 (the byte at `SND.UNA`).
    head: usize,
    /// Bytes held.
    len: usize,
}

impl SendBuffer {
    /// A buffer of `capacity` bytes; the only allocation this type makes.
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            buf: vec![0u8; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// The most bytes the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.buf.len()
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
        self.capacity() - self.len
    }

    /// Physical index of logical offset `off` (`off <= capacity`).
    fn phys(&self, off: usize) -> usize {
        let i = self.head + off;
        if i >= self.buf.len() {
            i - self.buf.len()
        } else {
            i
        }
    }

    /// The free region directly after the held bytes, up to the end of the ring:
    /// `(physical start, length)`. Rewinds an empty buffer so the region is the whole ring.
    fn free_region(&mut self) -> (usize, usize) {
        if self.len == 0 {
            self.head = 0;
        }
        let tail = self.phys(self.len);
        let contiguous = self.free().min(self.buf.len() - tail);
        (tail, contiguous)
    }

    /// Appends as much of `data` as fits and returns how many bytes were taken (0 when full).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let mut written = 0;
        // At most two rounds: up to the end of the ring, then from its start.
        while written < data.len() {
            let (start, room) = self.free_region();
            let n = room.min(data.len() - written);
            if n == 0 {
                break;
            }
            let (Some(dst), Some(src)) = (
                self.buf.get_mut(start..start + n),
                data.get(written..written + n),
            ) else {
                break;
            };
            dst.copy_from_slice(src);
            self.len += n;
            written += n;
        }
        written
    }

    /// Zero-copy write: lends `f` the contiguous free region that follows the held bytes (at
    /// most `max` bytes; the whole free space if the buffer is empty, else up to the end of
    /// the ring, so call again after a wrap), and appends the first `f(region)` bytes of it.
    /// The count `f` returns is clamped to the region's length. `f` is called exactly once,
    /// with an empty slice when no space is free. Returns the count appended.
    pub fn write_with(&mut self, max: usize, f: impl FnOnce(&mut [u8]) -> usize) -> usize {
        let (start, room) = self.free_region();
        let n = room.min(max);
        let region = self.buf.get_mut(start..start + n).unwrap_or_default();
        let wrote = f(region).min(n);
        self.len += wrote;
        wrote
    }

    /// The held bytes `[offset, offset + len)`, clamped to what is held, as up to two slices
    /// (the second is non-empty only when the range wraps around the end of the ring).
    pub fn peek(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let start = offset.min(self.len);
        let end = offset.saturating_add(len).min(self.len);
        let n = end - start;
        let p = self.phys(start);
        let first = n.min(self.buf.len() - p);
        (
            self.buf.get(p..p + first).unwrap_or_default(),
            self.buf.get(..n - first).unwrap_or_default(),
        )
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
    /// and returns how many were dropped. Offset 0 then refers to the new `SND.UNA`.
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        self.head = self.phys(n);
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
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
            }
            prop_assert_eq!(joined(b.peek(0, usize::MAX)), model.iter().copied().collect::<Vec<_>>());
        }
    }
}
