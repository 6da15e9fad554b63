//! The ring ends one [`ThreadedPort`](super::ThreadedPort) holds: the producers of its row
//! (one per queue it can send to) and the consumers of its column (one per queue that can send
//! to it).

use std::sync::{Arc, Mutex};

use rtrb::{Consumer, Producer};

use super::pair::Pair;
use super::wire::{QueueShared, Topology, lock};
use crate::frame::MemoryFrame;

/// The sending end of one pair.
pub(crate) struct TxLane {
    pub(crate) pair: Arc<Pair>,
    /// The receiving queue (its pool, its "sleeping" flag and waker).
    pub(crate) to: Arc<QueueShared>,
    pub(crate) producer: Producer<MemoryFrame>,
    /// Whether the current `tx_burst` pushed a frame onto this ring, so that its end checks
    /// the receiver's flag after its one fence.
    pub(crate) touched: bool,
}

/// The receiving end of one pair.
pub(crate) struct RxLane {
    pub(crate) pair: Arc<Pair>,
    pub(crate) consumer: Consumer<MemoryFrame>,
}

/// The ring ends of one queue.
#[derive(Default)]
pub(crate) struct Lanes {
    /// Indexed by receiving queue (the topology's queue index); `None` for the queues of the
    /// port's own port, which it never sends to.
    pub(crate) row: Vec<Option<TxLane>>,
    /// One per pair into this queue, in order of sending queue.
    pub(crate) column: Vec<RxLane>,
}

impl Lanes {
    /// Takes the ring ends of queue `index` in `topology` out of their pairs.
    pub(crate) fn take(index: usize, topology: &Topology) -> Lanes {
        let mut lanes = Lanes {
            row: Vec::with_capacity(topology.queues.len()),
            column: Vec::with_capacity(topology.queues.len()),
        };
        lanes.extend(index, topology, 0);
        lanes
    }

    /// Takes the ends of the pairs of queue `index` that `topology` has beyond the first
    /// `known` queues (the ones added since the lanes were last taken).
    fn extend(&mut self, index: usize, topology: &Topology, known: usize) {
        let row = topology.rows.get(index).map_or(&[][..], Vec::as_slice);
        for (to, pair) in row.iter().enumerate().skip(known) {
            let lane = pair
                .as_ref()
                .zip(topology.queues.get(to))
                .and_then(|(pair, to)| {
                    pair.take_producer().map(|producer| TxLane {
                        pair: Arc::clone(pair),
                        to: Arc::clone(to),
                        producer,
                        touched: false,
                    })
                });
            self.row.push(lane);
        }
        let column = topology.columns.get(index).map_or(&[][..], Vec::as_slice);
        for pair in column.iter().filter(|pair| pair.from >= known) {
            if let Some(consumer) = pair.take_consumer() {
                self.column.push(RxLane {
                    pair: Arc::clone(pair),
                    consumer,
                });
            }
        }
    }

    /// Picks up the pairs `topology` added to queue `index`, keeping the ends already held.
    /// The vectors come from `spare`, where adding a port left them with room for every
    /// queue, so that this allocates nothing when it runs on the data path (a `tx_burst` or
    /// `rx_burst` after a port was added).
    pub(crate) fn update(&mut self, index: usize, topology: &Topology, spare: &Mutex<Lanes>) {
        let known = self.row.len();
        if topology.queues.len() <= known {
            return;
        }
        let mut fresh = core::mem::take(&mut *lock(spare));
        fresh.row.clear();
        fresh.column.clear();
        // Only if `spare` was taken by a port that missed an addition: then room is made here.
        fresh.row.reserve(topology.queues.len());
        fresh.column.reserve(topology.queues.len());
        fresh.row.append(&mut self.row);
        fresh.column.append(&mut self.column);
        fresh.extend(index, topology, known);
        *self = fresh;
    }

    /// Puts every end back into its pair, for the queue's next port.
    pub(crate) fn put_back(&mut self) {
        for lane in self.row.drain(..).flatten() {
            lane.pair.put_producer(lane.producer);
        }
        for lane in self.column.drain(..) {
            lane.pair.put_consumer(lane.consumer);
        }
    }
}
