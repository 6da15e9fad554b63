//! Frames handed from the shard that received them to the shard that owns them (design rule 4:
//! cross-shard work goes through crossbeam queues).
//!
//! Each shard has an inbox (a bounded [`ArrayQueue`]) and a free list of forwarding buffers,
//! allocated once at start with room for the largest frame. A sender takes a buffer from *its
//! own* free list, copies the frame in and pushes it to the owner's inbox; the owner processes
//! it and pushes the buffer back onto the sender's free list. So the steady state allocates
//! nothing, and a sender that forwards faster than owners drain runs out of buffers (or finds
//! the inbox full) and drops, which the caller counts.

use crate::port::RxOffload;
use core::sync::atomic::{AtomicUsize, Ordering};
use crossbeam::queue::ArrayQueue;
use std::sync::OnceLock;
use std::thread::Thread;

/// Why a frame is in an inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// RSS put a frame of the owner's flow on another shard's queue.
    Forwarded,
    /// A copy of an ARP frame, which every shard processes.
    Replica,
}

/// A frame in flight between shards.
#[derive(Debug)]
pub(super) struct Forwarded {
    /// The frame's bytes (the vector's length is the frame's).
    pub(super) bytes: Vec<u8>,
    /// The checksum verdicts the NIC attached on receive.
    pub(super) offload: RxOffload,
    /// The shard whose free list the buffer goes back to.
    pub(super) origin: usize,
    /// Why it was sent.
    pub(super) kind: Kind,
}

/// Why a frame could not be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ForwardError {
    /// The sender's free list is empty: owners have not given buffers back yet.
    NoBuffer,
    /// Larger than a forwarding buffer.
    TooLong,
    /// The owner's inbox is full.
    InboxFull,
    /// No such shard.
    NoShard,
}

/// The inboxes and free lists of all shards of a runtime.
#[derive(Debug)]
pub(super) struct Fabric {
    inboxes: Vec<ArrayQueue<Forwarded>>,
    free: Vec<ArrayQueue<Vec<u8>>>,
    /// Each shard's thread, registered when it starts, to unpark it when frames arrive.
    threads: Vec<OnceLock<Thread>>,
    buffer_len: usize,
    /// Shards not yet drained at shutdown.
    undrained: AtomicUsize,
}

impl Fabric {
    /// Inboxes of `inbox_len` frames and `buffers` buffers of `buffer_len` bytes per shard.
    pub(super) fn new(shards: usize, inbox_len: usize, buffers: usize, buffer_len: usize) -> Self {
        let free = (0..shards)
            .map(|_| {
                let q = ArrayQueue::new(buffers.max(1));
                for _ in 0..buffers {
                    // Cannot fail: the queue holds exactly `buffers`.
                    let _ = q.push(Vec::with_capacity(buffer_len));
                }
                q
            })
            .collect();
        Fabric {
            inboxes: (0..shards)
                .map(|_| ArrayQueue::new(inbox_len.max(1)))
                .collect(),
            free,
            threads: (0..shards).map(|_| OnceLock::new()).collect(),
            buffer_len,
            undrained: AtomicUsize::new(shards),
        }
    }

    /// Registers shard `index`'s thread (the first registration wins).
    pub(super) fn register(&self, index: usize, thread: Thread) {
        if let Some(slot) = self.threads.get(index) {
            let _ = slot.set(thread);
        }
    }

    /// Wakes shard `index` if it sleeps.
    pub(super) fn wake(&self, index: usize) {
        if let Some(t) = self.threads.get(index).and_then(OnceLock::get) {
            t.unpark();
        }
    }

    /// Copies `frame` into a buffer of shard `from` and queues it for shard `to`.
    pub(super) fn send(
        &self,
        from: usize,
        to: usize,
        frame: &[u8],
        offload: RxOffload,
        kind: Kind,
    ) -> Result<(), ForwardError> {
        let (Some(free), Some(inbox)) = (self.free.get(from), self.inboxes.get(to)) else {
            return Err(ForwardError::NoShard);
        };
        if frame.len() > self.buffer_len {
            return Err(ForwardError::TooLong);
        }
        let mut bytes = free.pop().ok_or(ForwardError::NoBuffer)?;
        bytes.clear();
        // Within the capacity reserved at start: no allocation.
        bytes.extend_from_slice(frame);
        inbox
            .push(Forwarded {
                bytes,
                offload,
                origin: from,
                kind,
            })
            .map_err(|f| {
                let _ = free.push(f.bytes);
                ForwardError::InboxFull
            })
    }

    /// The next frame for shard `to`.
    pub(super) fn receive(&self, to: usize) -> Option<Forwarded> {
        self.inboxes.get(to)?.pop()
    }

    /// Records that one shard has drained at shutdown; true for the last one.
    pub(super) fn shard_drained(&self) -> bool {
        self.undrained.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Whether every shard has drained.
    pub(super) fn all_drained(&self) -> bool {
        self.undrained.load(Ordering::Acquire) == 0
    }

    /// Whether frames wait for shard `to`.
    pub(super) fn has_pending(&self, to: usize) -> bool {
        self.inboxes.get(to).is_some_and(|q| !q.is_empty())
    }

    /// Gives a buffer back to the free list it came from.
    pub(super) fn recycle(&self, frame: Forwarded) {
        if let Some(free) = self.free.get(frame.origin) {
            // A full free list cannot happen (it holds every buffer of its shard); if it did,
            // the buffer would simply be freed.
            let _ = free.push(frame.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_travel_and_come_back() {
        let fabric = Fabric::new(2, 4, 2, 64);
        let off = RxOffload::default();
        fabric.send(0, 1, b"one", off, Kind::Forwarded).unwrap();
        fabric.send(0, 1, b"two", off, Kind::Replica).unwrap();
        // Shard 0's two buffers are out.
        assert_eq!(
            fabric.send(0, 1, b"three", off, Kind::Forwarded),
            Err(ForwardError::NoBuffer)
        );
        assert_eq!(
            fabric.send(1, 0, &[0; 65], off, Kind::Forwarded),
            Err(ForwardError::TooLong)
        );
        assert_eq!(
            fabric.send(1, 5, b"x", off, Kind::Forwarded),
            Err(ForwardError::NoShard)
        );
        let f = fabric.receive(1).unwrap();
        assert_eq!(
            (f.bytes.as_slice(), f.origin, f.kind),
            (&b"one"[..], 0, Kind::Forwarded)
        );
        let ptr = f.bytes.as_ptr();
        fabric.recycle(f);
        fabric.send(0, 1, b"four", off, Kind::Forwarded).unwrap();
        assert_eq!(fabric.receive(1).unwrap().bytes, b"two");
        let again = fabric.receive(1).unwrap();
        assert_eq!(again.bytes, b"four");
        // The recycled buffer was reused, not a new allocation.
        assert_eq!(again.bytes.as_ptr(), ptr);
        assert!(fabric.receive(1).is_none());
        assert!(fabric.receive(0).is_none());
    }

    #[test]
    fn a_full_inbox_drops_and_keeps_the_buffer() {
        let fabric = Fabric::new(2, 1, 3, 16);
        let off = RxOffload::default();
        fabric.send(0, 1, b"a", off, Kind::Forwarded).unwrap();
        assert_eq!(
            fabric.send(0, 1, b"b", off, Kind::Forwarded),
            Err(ForwardError::InboxFull)
        );
        // The refused frame's buffer went back: two are still free.
        fabric.receive(1).map(|f| fabric.recycle(f)).unwrap();
        for _ in 0..3 {
            let _ = fabric.send(0, 0, b"c", off, Kind::Forwarded);
            if let Some(f) = fabric.receive(0) {
                fabric.recycle(f);
            }
        }
        assert!(fabric.send(0, 1, b"d", off, Kind::Forwarded).is_ok());
    }
}
