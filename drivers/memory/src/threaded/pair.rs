//! The shared record of one (sending queue, receiving queue) pair of the threaded wire: its
//! single-producer single-consumer ring, and the counters of what happened to the frames
//! sent over it.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crossbeam::utils::CachePadded;
use rtrb::{Consumer, Producer, RingBuffer};

use super::ThreadedCounters;
use super::wire::lock;
use crate::frame::MemoryFrame;

/// The receive counters of one pair (see [`ThreadedCounters`] for each). They count on the
/// receiving queue, but the sending queue's thread writes them: it is the one that sees what
/// happens to a frame on its way (lost, no buffer, ring full, delivered).
#[derive(Debug, Default)]
pub(crate) struct RxAtomics {
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) nombuf: AtomicU64,
    pub(crate) ring_full: AtomicU64,
    pub(crate) lost: AtomicU64,
}

/// One ring from queue `from` to queue `to` (indices into the topology's queues, of two
/// different ports), and what the two ends share.
///
/// The ring's [`Producer`] is held by the [`ThreadedPort`](super::ThreadedPort) of `from` and
/// its [`Consumer`] by that of `to`, each taken out of its slot here when the port is created
/// (or picks up a topology with this pair in it) and put back when the port is dropped. A
/// queue has at most one port at a time, so each end has one thread at a time, and whoever
/// holds an end is the only writer of the counters of that end.
pub(crate) struct Pair {
    /// The sending queue.
    pub(crate) from: usize,
    /// Written only by the holder of the producer; on a line of its own, away from `taken`,
    /// which the receiver writes.
    pub(crate) rx: CachePadded<RxAtomics>,
    /// Frames the holder of the consumer took from the ring; written only by it.
    pub(crate) taken: CachePadded<AtomicU64>,
    /// The producer while no port of `from` holds it.
    producer: Mutex<Option<Producer<MemoryFrame>>>,
    /// The consumer while no port of `to` holds it.
    consumer: Mutex<Option<Consumer<MemoryFrame>>>,
}

impl Pair {
    /// A pair from queue `from` with an empty ring of `ring_size` frames (allocated here, when
    /// a port is added, never on the data path).
    pub(crate) fn new(from: usize, ring_size: usize) -> Pair {
        let (producer, consumer) = RingBuffer::new(ring_size);
        Pair {
            from,
            rx: CachePadded::new(RxAtomics::default()),
            taken: CachePadded::new(AtomicU64::new(0)),
            producer: Mutex::new(Some(producer)),
            consumer: Mutex::new(Some(consumer)),
        }
    }

    /// Takes the producer out of its slot. `None` only if a port of `from` already holds it,
    /// which the `taken` flag of the queue rules out.
    pub(crate) fn take_producer(&self) -> Option<Producer<MemoryFrame>> {
        lock(&self.producer).take()
    }

    /// Takes the consumer out of its slot (`None` as for [`Pair::take_producer`]).
    pub(crate) fn take_consumer(&self) -> Option<Consumer<MemoryFrame>> {
        lock(&self.consumer).take()
    }

    /// Puts the producer back, for the next port of `from`.
    pub(crate) fn put_producer(&self, producer: Producer<MemoryFrame>) {
        *lock(&self.producer) = Some(producer);
    }

    /// Puts the consumer back, for the next port of `to`; the frames in the ring wait there.
    pub(crate) fn put_consumer(&self, consumer: Consumer<MemoryFrame>) {
        *lock(&self.consumer) = Some(consumer);
    }

    /// Frames in the ring: delivered minus taken, exact once both ends are quiet. Read while
    /// frames move, it may be a few frames off (never below 0).
    pub(crate) fn pending(&self) -> usize {
        let taken = self.taken.load(Ordering::Acquire);
        let frames = self.rx.frames.load(Ordering::Acquire);
        usize::try_from(frames.saturating_sub(taken)).unwrap_or(usize::MAX)
    }

    /// Adds this pair's receive counters to `sum`.
    pub(crate) fn add_rx_to(&self, sum: &mut ThreadedCounters) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rx = &self.rx;
        sum.rx_frames += get(&rx.frames);
        sum.rx_bytes += get(&rx.bytes);
        sum.rx_nombuf += get(&rx.nombuf);
        sum.rx_ring_full += get(&rx.ring_full);
        sum.lost += get(&rx.lost);
    }
}
