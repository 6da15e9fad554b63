//! Byte storage shared by the send and receive buffers: a ring that is allocated on demand.
//!
//! The buffers' capacity (`SO_SNDBUF`/`SO_RCVBUF`) is a *limit*; the storage behind it starts
//! empty, grows by doubling (at least [`MIN_STORAGE`] bytes, never past the limit) when data is
//! written, and is freed when the buffer drains. Memory follows use, as Linux's `tcp_rmem` /
//! `tcp_wmem` autotuning does: an idle connection holds no buffer memory at all, which is what
//! lets one shard hold a million of them.
//!
//! When storage is freed, the high-water mark of the busy period that just ended is kept as a
//! hint: the next allocation starts at that size, so a connection that moves bulk data in
//! bursts does not re-grow (and re-copy) from the minimum every time its buffer drains.
//!
//! Freed storage of up to [`SPARE_MAX_SIZE`] bytes goes to a per-thread cache of spare blocks
//! that the next allocation of the same size takes back: a request/response connection whose
//! buffers drain after every exchange would otherwise pay for `calloc` (zeroing a page) and
//! `free` on every segment. The cache keeps one stack per power-of-two size from
//! [`MIN_STORAGE`] to [`SPARE_MAX_SIZE`] (the sizes storage grows through), each holding up to
//! [`SPARE_CLASS_BYTES`] of blocks (256 of 4 KiB, 16 of 64 KiB), plus [`SPARE_SLOTS`] blocks of
//! other sizes (storage clamped to a buffer limit that is not a power of two). Sized so that a
//! shard serving a few hundred request/response connections at once finds every block it
//! needs there: with a 16-block cache, 64 pipelined connections (each holding a block while
//! its data is in flight) sent 3 of 4 writes to `calloc`. A shard is one thread, so the cache
//! is as unshared as the rest of its state; it holds at most `5 * SPARE_CLASS_BYTES +
//! SPARE_SLOTS * SPARE_MAX_SIZE` bytes (6 MiB) per thread whatever the number of connections.
//!
//! Offsets are logical (0 is the byte at `head`); the owner says how many logical bytes are in
//! use when storage must move, and only those are copied.

use core::cell::RefCell;

/// The smallest storage allocated, in bytes (unless the limit is smaller): one page, a couple
/// of full-sized segments.
pub const MIN_STORAGE: usize = 4096;

/// Most spare blocks kept per thread of a size that is not a power of two.
pub const SPARE_SLOTS: usize = 16;

/// Largest block kept as a spare (bytes); larger ones go back to the allocator.
pub const SPARE_MAX_SIZE: usize = 64 * 1024;

/// Bytes of spare blocks kept per thread for each power-of-two size.
pub const SPARE_CLASS_BYTES: usize = 1024 * 1024;

/// Power-of-two sizes from [`MIN_STORAGE`] to [`SPARE_MAX_SIZE`].
const CLASSES: usize = (SPARE_MAX_SIZE / MIN_STORAGE).trailing_zeros() as usize + 1;

/// The spare blocks of one thread.
struct Spares {
    /// `by_class[i]`: blocks of `MIN_STORAGE << i` bytes.
    by_class: [Vec<Box<[u8]>>; CLASSES],
    /// Blocks of other sizes (at most [`SPARE_SLOTS`]).
    other: Vec<Box<[u8]>>,
}

/// The class of a block of `size` bytes, if it is a power of two the cache keeps by class.
fn class_of(size: usize) -> Option<usize> {
    (size.is_power_of_two() && (MIN_STORAGE..=SPARE_MAX_SIZE).contains(&size))
        .then(|| (size / MIN_STORAGE).trailing_zeros() as usize)
}

impl Spares {
    fn take(&mut self, size: usize) -> Option<Box<[u8]>> {
        match class_of(size) {
            Some(c) => self.by_class[c].pop(),
            None => {
                let i = self.other.iter().position(|b| b.len() == size)?;
                Some(self.other.swap_remove(i))
            }
        }
    }

    fn give(&mut self, block: Box<[u8]>) {
        let (list, cap) = match class_of(block.len()) {
            Some(c) => (&mut self.by_class[c], SPARE_CLASS_BYTES / block.len()),
            None => (&mut self.other, SPARE_SLOTS),
        };
        if list.len() < cap {
            list.push(block);
        }
    }
}

thread_local! {
    /// Freed blocks of storage, for reuse by the next allocation of the same size.
    static SPARE: RefCell<Spares> = const {
        RefCell::new(Spares {
            by_class: [const { Vec::new() }; CLASSES],
            other: Vec::new(),
        })
    };
}

/// A block of `size` bytes: a spare one of that size if the thread has one, else a new one.
/// Its contents are unspecified (old bytes of a spare block, or zeroes); the rings only ever
/// read bytes they wrote.
fn take_block(size: usize) -> Box<[u8]> {
    if size <= SPARE_MAX_SIZE
        && let Some(block) = SPARE.with(|c| c.try_borrow_mut().ok()?.take(size))
    {
        return block;
    }
    vec![0u8; size].into_boxed_slice()
}

/// Gives a block back: kept as a spare if it is small enough and the cache has room, else
/// freed.
fn give_block(block: Box<[u8]>) {
    if block.is_empty() || block.len() > SPARE_MAX_SIZE {
        return;
    }
    SPARE.with(move |c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.give(block);
        }
    });
}

/// A ring of bytes whose storage is allocated lazily. See the module documentation.
///
/// Invariants: `head < buf.len()`, or `head == 0` when there is no storage.
#[derive(Debug, Default)]
pub(super) struct Ring {
    buf: Box<[u8]>,
    /// Physical index of logical offset 0.
    head: usize,
    /// The most logical bytes needed since storage was last allocated from nothing.
    peak: usize,
    /// The peak of the previous busy period: the size the next allocation starts at.
    hint: usize,
}

/// Storage size for `need` bytes: the next power of two, at least [`MIN_STORAGE`], at most
/// `limit` (and never less than `need`).
fn size_for(need: usize, limit: usize) -> usize {
    need.checked_next_power_of_two()
        .unwrap_or(usize::MAX)
        .max(MIN_STORAGE)
        .min(limit)
        .max(need)
}

impl Ring {
    /// Bytes of storage allocated now.
    pub(super) fn storage(&self) -> usize {
        self.buf.len()
    }

    /// Physical index of logical offset `off` (`off <= storage`).
    pub(super) fn phys(&self, off: usize) -> usize {
        let i = self.head + off;
        if i >= self.buf.len() {
            i - self.buf.len()
        } else {
            i
        }
    }

    /// Makes storage hold at least `need` logical bytes (clamped to `limit`), keeping the
    /// contents of logical offsets `[0, used)`. Allocates only when the storage is too small.
    pub(super) fn reserve(&mut self, used: usize, need: usize, limit: usize) {
        let need = need.min(limit);
        self.peak = self.peak.max(need);
        if need <= self.buf.len() {
            return;
        }
        let target = if self.buf.is_empty() {
            need.max(self.hint.min(limit))
        } else {
            need.max(self.buf.len().saturating_mul(2))
        };
        self.resize(used, size_for(target, limit));
    }

    /// Moves the logical bytes `[0, used)` into new storage of `size >= used` bytes, starting
    /// at physical index 0.
    pub(super) fn resize(&mut self, used: usize, size: usize) {
        let used = used.min(self.buf.len());
        let size = size.max(used);
        if size == self.buf.len() {
            return;
        }
        let mut new = take_block(size);
        let (a, b) = self.get(0, used);
        if let Some(dst) = new.get_mut(..a.len()) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = new.get_mut(a.len()..a.len() + b.len()) {
            dst.copy_from_slice(b);
        }
        give_block(core::mem::replace(&mut self.buf, new));
        self.head = 0;
    }

    /// Frees the storage (the contents are gone) and remembers the busy period's peak as the
    /// size to start at next time.
    pub(super) fn release(&mut self) {
        if !self.buf.is_empty() {
            self.hint = self.peak;
            give_block(core::mem::take(&mut self.buf));
        }
        self.head = 0;
        self.peak = 0;
    }

    /// Sets logical offset 0 to what was logical offset `n` (`n <= storage`). Without storage
    /// there is nothing to move (bytes consumed in place never reached the ring).
    pub(super) fn advance(&mut self, n: usize) {
        if !self.buf.is_empty() {
            self.head = self.phys(n.min(self.buf.len()));
        }
    }

    /// Logical offset 0 becomes physical index 0 (only when nothing is held).
    pub(super) fn rewind(&mut self) {
        self.head = 0;
    }

    /// Logical bytes `[off, off + n)` (clamped to the storage) as up to two slices, the second
    /// non-empty only across the wrap.
    pub(super) fn get(&self, off: usize, n: usize) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        let off = off.min(cap);
        let n = n.min(cap - off);
        let p = self.phys(off);
        let first = n.min(cap - p);
        (
            self.buf.get(p..p + first).unwrap_or_default(),
            self.buf.get(..n - first).unwrap_or_default(),
        )
    }

    /// Logical bytes `[off, off + n)` as one mutable slice, cut short at the end of the
    /// storage (the wrap).
    pub(super) fn contiguous_mut(&mut self, off: usize, n: usize) -> &mut [u8] {
        let cap = self.buf.len();
        let off = off.min(cap);
        let p = self.phys(off);
        let n = n.min(cap - off).min(cap - p);
        self.buf.get_mut(p..p + n).unwrap_or_default()
    }

    /// Copies `data` to logical offset `at`, wrapping; bytes past the storage are dropped.
    pub(super) fn copy_in(&mut self, at: usize, data: &[u8]) {
        let first = self.contiguous_mut(at, data.len());
        let k = first.len();
        if let Some(src) = data.get(..k) {
            first.copy_from_slice(src);
        }
        let rest = data.get(k..).unwrap_or_default();
        if !rest.is_empty() {
            let second = self.contiguous_mut(at + k, rest.len());
            let m = second.len();
            if let Some(src) = rest.get(..m) {
                second.copy_from_slice(src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_double_from_the_minimum_and_stop_at_the_limit() {
        assert_eq!(size_for(1, 1 << 20), MIN_STORAGE);
        assert_eq!(size_for(5000, 1 << 20), 8192);
        assert_eq!(size_for(5000, 6000), 6000);
        assert_eq!(size_for(10, 8), 10); // never less than asked
        assert_eq!(size_for(usize::MAX, usize::MAX), usize::MAX);
    }

    #[test]
    fn growth_keeps_the_contents_across_the_wrap_and_release_frees() {
        let mut r = Ring::default();
        assert_eq!(r.storage(), 0);
        r.reserve(0, 3, 1 << 20);
        assert_eq!(r.storage(), MIN_STORAGE);
        r.advance(MIN_STORAGE - 2);
        r.copy_in(0, b"abcd"); // wraps
        assert_eq!(r.get(0, 4), (&b"ab"[..], &b"cd"[..]));
        r.reserve(4, MIN_STORAGE + 1, 1 << 20);
        assert_eq!(r.storage(), 2 * MIN_STORAGE);
        assert_eq!(r.get(0, 4), (&b"abcd"[..], &[][..]));
        r.release();
        assert_eq!(r.storage(), 0);
        // The next busy period starts at the last one's peak.
        r.reserve(0, 1, 1 << 20);
        assert_eq!(r.storage(), 8192);
    }

    #[test]
    fn freed_blocks_are_reused_by_the_same_thread() {
        let mut a = Ring::default();
        a.reserve(0, 100, 1 << 20);
        a.copy_in(0, b"old");
        let first = a.get(0, 1).0.as_ptr();
        a.release();
        let mut b = Ring::default();
        b.reserve(0, 10, 1 << 20);
        assert_eq!(b.get(0, 1).0.as_ptr(), first);
        // A block too large to keep is freed, not cached.
        let mut big = Ring::default();
        big.reserve(0, SPARE_MAX_SIZE + 1, 1 << 20);
        big.release();
        assert!(SPARE.with(|c| {
            let c = c.borrow();
            c.by_class
                .iter()
                .chain([&c.other])
                .flatten()
                .all(|b| b.len() <= SPARE_MAX_SIZE)
        }));
    }

    #[test]
    fn the_cache_keeps_a_block_per_connection_for_hundreds_of_connections() {
        // 256 connections each holding a minimum-sized block at once (pipelined
        // request/response), then all draining: the next busy period allocates nothing new.
        let mut rings: Vec<Ring> = (0..256).map(|_| Ring::default()).collect();
        for r in &mut rings {
            r.reserve(0, 64, 1 << 20);
        }
        let mut first: Vec<*const u8> = rings.iter().map(|r| r.get(0, 1).0.as_ptr()).collect();
        for r in &mut rings {
            r.release();
        }
        let mut again: Vec<Ring> = (0..256).map(|_| Ring::default()).collect();
        for r in &mut again {
            r.reserve(0, 64, 1 << 20);
        }
        let mut second: Vec<*const u8> = again.iter().map(|r| r.get(0, 1).0.as_ptr()).collect();
        first.sort_unstable();
        second.sort_unstable();
        assert_eq!(first, second);
        // A size that is not a power of two (a limit of 5000 bytes) is cached too.
        let mut odd = Ring::default();
        odd.reserve(0, 4500, 5000);
        assert_eq!(odd.storage(), 5000);
        let p = odd.get(0, 1).0.as_ptr();
        odd.release();
        let mut odd2 = Ring::default();
        odd2.reserve(0, 4500, 5000);
        assert_eq!(odd2.get(0, 1).0.as_ptr(), p);
    }

    #[test]
    fn each_size_keeps_at_most_its_share_of_the_cache() {
        let blocks = SPARE_CLASS_BYTES / MIN_STORAGE;
        let mut rings: Vec<Ring> = (0..blocks + 10).map(|_| Ring::default()).collect();
        for r in &mut rings {
            r.reserve(0, 1, 1 << 20);
        }
        for r in &mut rings {
            r.release();
        }
        assert!(SPARE.with(|c| c.borrow().by_class[0].len()) <= blocks);
    }
}
