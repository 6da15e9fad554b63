//! One queue pair of a port on the threaded wire: what one shard thread drives.

use core::fmt;
use core::sync::atomic::{Ordering, fence};
use std::sync::Arc;
use std::thread::Thread;

use rand_chacha::ChaCha8Rng;
use shardnet::port::{Batch, Capabilities, PoolStats, Port};
use shardnet::wire::EthernetAddress;

use super::lanes::{Lanes, TxLane};
use super::wire::{QueueShared, Shared, ThreadedWire, Topology, lock};
use super::{ThreadedCounters, bump};
use crate::classify::{ETHERNET_HEADER_LEN, hash_input, queue_for_input};
use crate::frame::MemoryFrame;
use crate::wire::{PortId, chance};

/// Queue pair `queue` of a port on a [`ThreadedWire`], implementing [`Port`]. It is `Send`:
/// take it with [`ThreadedWire::port`] and move it to the thread that drives the queue.
///
/// At most one exists per queue at a time. Dropping it makes the queue available again (frames
/// keep arriving in its rings meanwhile, until a ring or the pool is full) and unregisters its
/// receive waker.
pub struct ThreadedPort {
    shared: Arc<Shared>,
    /// The ring ends this queue holds: producers to every queue of the other ports, consumers
    /// from every queue of the other ports (given back to their pairs on drop).
    lanes: Lanes,
    /// The column lane `rx_burst` starts with; moves on by one each burst.
    next_rx: usize,
    /// Lanes of the row the current `tx_burst` pushed onto.
    touched: usize,
    /// The wire's topology as of `version`; refreshed when the wire's version moves on.
    topology: Arc<Topology>,
    version: u64,
    port: PortId,
    /// This queue's index in `topology.queues`.
    index: usize,
    queue: Arc<QueueShared>,
    capabilities: Capabilities,
    /// This queue's loss stream (given back to the queue on drop).
    rng: Option<ChaCha8Rng>,
    /// Whether a receive waker is registered, so `arm_rx_waker` announces a sleep.
    waker: bool,
    /// Buffers of this queue's pool kept for its own transmissions: `alloc_tx` takes from
    /// here first and `tx_burst` puts the buffer of a frame it sent back here, so that a port
    /// that transmits steadily reuses its buffers without touching the pool's atomics (which
    /// the senders delivering to this queue contend for). At most [`tx_cache_len`] buffers,
    /// counted as free in the pool's statistics; given back to the pool on drop.
    cache: Vec<Box<[u8]>>,
}

/// How many buffers of a pool of `pool_size` its port keeps for transmitting: one burst
/// (64), but never more than an eighth of the pool, so that frames arriving from other ports
/// find the pool nearly as large as configured. Buffers only enter the cache from the port's
/// own transmissions: a port that only receives keeps none.
pub(crate) fn tx_cache_len(pool_size: usize) -> usize {
    (pool_size / 8).min(64)
}

impl ThreadedPort {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        lanes: Lanes,
        topology: Arc<Topology>,
        version: u64,
        port: PortId,
        index: usize,
        queue: Arc<QueueShared>,
        capabilities: Capabilities,
        rng: ChaCha8Rng,
    ) -> ThreadedPort {
        let queue_pool_total = queue.pool_total;
        ThreadedPort {
            shared,
            lanes,
            next_rx: 0,
            touched: 0,
            topology,
            version,
            port,
            index,
            queue,
            capabilities,
            rng: Some(rng),
            waker: false,
            cache: Vec::with_capacity(tx_cache_len(queue_pool_total)),
        }
    }

    /// The port this queue pair belongs to.
    pub fn port_id(&self) -> PortId {
        self.port
    }

    /// This queue pair's number on its port.
    pub fn queue(&self) -> u16 {
        self.capabilities.queue
    }

    /// A handle to the wire.
    pub fn wire(&self) -> ThreadedWire {
        ThreadedWire::from_shared(Arc::clone(&self.shared))
    }

    /// This queue pair's counters, read without any lock (unless a port was added since this
    /// port's last burst: then the wire's topology is locked once to find the new rings).
    pub fn counters(&self) -> ThreadedCounters {
        self.with_current(|topology| topology.counters(self.index))
    }

    /// Frames waiting in this queue's receive rings (see [`ThreadedWire::rx_pending`]).
    pub fn rx_pending(&self) -> usize {
        self.with_current(|topology| topology.rx_pending(self.index))
    }

    /// Runs `f` on the wire's current topology: this port's snapshot if it is current.
    fn with_current<T>(&self, f: impl FnOnce(&Topology) -> T) -> T {
        if self.shared.version() == self.version {
            f(&self.topology)
        } else {
            f(&self.shared.snapshot().1)
        }
    }

    /// Picks up the wire's current topology if a port was added since the last look, and with
    /// it the ends of the new rings of this queue (without allocating: see [`Lanes::update`]).
    /// Every burst runs it: the common case is one load, inlined.
    #[inline]
    fn refresh(&mut self) {
        if self.shared.version() != self.version {
            self.pick_up_topology();
        }
    }

    /// The rare half of [`ThreadedPort::refresh`], kept out of the bursts' code.
    #[cold]
    #[inline(never)]
    fn pick_up_topology(&mut self) {
        let (version, topology) = self.shared.snapshot();
        self.lanes.update(self.index, &topology, &self.queue.spare);
        self.version = version;
        self.topology = topology;
    }

    /// Returns a frame's buffer to the pool it belongs to. A frame of another wire (or of
    /// another size) is dropped instead, and so is one that would overfill its pool: a pool
    /// never grows.
    fn give_back(&mut self, frame: MemoryFrame) {
        if frame.wire != self.shared.id || frame.buf.len() != self.shared.frame_size {
            return;
        }
        if frame.owner >= self.topology.queues.len() {
            // A queue added after our snapshot was taken.
            self.refresh();
        }
        if let Some(q) = self.topology.queues.get(frame.owner) {
            let _ = q.pool.push(frame.buf);
        }
    }

    /// Moves frames from the receive rings into `batch` until it is full or the rings are
    /// empty, starting with the ring after the one the last burst started with, so that a
    /// sender whose ring keeps filling up does not starve the others. Each ring gives its
    /// frames oldest first, in one chunk (one load of its tail, one store of its head).
    fn pop_into(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        let column = &mut self.lanes.column;
        let rings = column.len();
        if rings == 0 {
            return 0;
        }
        let start = if self.next_rx < rings {
            self.next_rx
        } else {
            0
        };
        self.next_rx = start + 1;
        let mut received = 0;
        for i in start..start + rings {
            let room = batch.capacity() - batch.len();
            if room == 0 {
                break;
            }
            let lane = &mut column[if i < rings { i } else { i - rings }];
            let n = lane.consumer.slots().min(room);
            if n == 0 {
                continue;
            }
            if let Ok(chunk) = lane.consumer.read_chunk(n) {
                // `n` is at most the room left: every frame fits.
                batch.extend(chunk);
                bump(&lane.pair.taken, n as u64);
                received += n;
            }
        }
        received
    }

    /// Puts one frame on the wire: delivers a copy to every destination, then gives the buffer
    /// back to its pool.
    fn transmit(&mut self, frame: MemoryFrame) {
        let len = frame.len;
        if frame.wire != self.shared.id
            || frame.buf.len() != self.shared.frame_size
            || !(ETHERNET_HEADER_LEN..=self.shared.max_frame_len).contains(&len)
        {
            bump(&self.queue.tx.invalid, 1);
            self.give_back(frame);
            return;
        }
        bump(&self.queue.tx.frames, 1);
        bump(&self.queue.tx.bytes, len as u64);

        let data = &frame.buf[..len];
        let dst = EthernetAddress::from_bytes(data);
        let group = dst.is_multicast();
        let input = hash_input(data);
        let loss = self.shared.loss;
        let wire = self.shared.id;
        let verified = self.shared.checksum_offload;
        let mut destinations = 0u32;
        for (to_port, port) in self.topology.ports.iter().enumerate() {
            if to_port == self.port.0 || !(group || port.mac == dst) {
                continue;
            }
            destinations += 1;
            let rx_queue = queue_for_input(port.rss.as_ref(), port.table.as_ref(), &input)
                .min(port.queue_count - 1);
            let to_index = port.first_queue + usize::from(rx_queue);
            // Every queue of another port has a lane: its pair was made with the later port.
            if let Some(Some(lane)) = self.lanes.row.get_mut(to_index)
                && deliver(
                    lane,
                    to_index,
                    wire,
                    data,
                    verified,
                    self.rng.as_mut(),
                    loss,
                )
                && !core::mem::replace(&mut lane.touched, true)
            {
                self.touched += 1;
            }
        }
        if destinations == 0 {
            bump(&self.queue.tx.no_destination, 1);
        }
        self.recycle(frame);
    }

    /// Gives the buffer of a frame this port sent back: to its own cache if it is one of this
    /// queue's and the cache has room, else to its pool.
    fn recycle(&mut self, frame: MemoryFrame) {
        if frame.owner == self.index
            && frame.wire == self.shared.id
            && frame.buf.len() == self.shared.frame_size
            && self.cache.len() < self.cache.capacity()
        {
            self.cache.push(frame.buf);
            self.queue.cached.store(self.cache.len(), Ordering::Relaxed);
        } else {
            self.give_back(frame);
        }
    }
}

/// Copies `data` into a buffer of the lane's receiving queue (index `to_index`) and pushes it
/// onto the lane's ring, or counts why not; true if it pushed. `verified`: the wire has
/// checksum offload and vouches for the frame's checksums.
///
/// After the push, one relaxed load of the receiver's "sleeping" flag, no fence: a receiver
/// that is already parked is woken at its first frame, not at the end of the burst (a stream's
/// receiver would otherwise wait for the whole burst to be copied). That a receiver about to
/// park is not missed is the job of the fence at the end of `tx_burst` (see the module docs).
fn deliver(
    lane: &mut TxLane,
    to_index: usize,
    wire: u64,
    data: &[u8],
    verified: bool,
    rng: Option<&mut ChaCha8Rng>,
    loss: f64,
) -> bool {
    let c = &lane.pair.rx;
    if rng.is_some_and(|rng| chance(rng, loss)) {
        bump(&c.lost, 1);
        return false;
    }
    let to = &lane.to;
    let Some(mut buf) = to.pool.pop() else {
        bump(&c.nombuf, 1);
        return false;
    };
    let len = data.len();
    match buf.get_mut(..len) {
        Some(dst) => dst.copy_from_slice(data),
        None => {
            // Cannot happen: every buffer of the wire holds an MTU-sized frame.
            let _ = to.pool.push(buf);
            bump(&c.nombuf, 1);
            return false;
        }
    }
    let frame = MemoryFrame {
        buf,
        len,
        owner: to_index,
        wire,
        checksums_verified: verified,
    };
    match lane.producer.push(frame) {
        Ok(()) => {
            bump(&c.frames, 1);
            bump(&c.bytes, len as u64);
            if to.sleeping.load(Ordering::Relaxed) {
                wake(to);
            }
            true
        }
        Err(rtrb::PushError::Full(frame)) => {
            bump(&c.ring_full, 1);
            let _ = to.pool.push(frame.buf);
            false
        }
    }
}

/// Clears the receiver's "sleeping" flag and unparks it, if this sender is the one that
/// clears it (`swap`: one sender per sleep takes the waker's mutex).
fn wake(to: &QueueShared) {
    if to.sleeping.swap(false, Ordering::AcqRel) {
        to.wake();
    }
}

impl fmt::Debug for ThreadedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadedPort")
            .field("port", &self.port)
            .field("queue", &self.capabilities.queue)
            .field("mac", &self.capabilities.mac)
            .finish_non_exhaustive()
    }
}

impl Drop for ThreadedPort {
    fn drop(&mut self) {
        *lock(&self.queue.waker) = None;
        self.queue.sleeping.store(false, Ordering::Relaxed);
        if let Some(rng) = self.rng.take() {
            *lock(&self.queue.rng) = Some(rng);
        }
        self.lanes.put_back();
        // Counted out first, so that the pool never looks fuller than it is.
        self.queue.cached.store(0, Ordering::Relaxed);
        for buf in self.cache.drain(..) {
            // The pool has room: its buffers are either in it or here.
            let _ = self.queue.pool.push(buf);
        }
        self.queue.taken.store(false, Ordering::Release);
    }
}

impl Port for ThreadedPort {
    type Frame = MemoryFrame;

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Takes delivered frames: each sender's oldest first, the senders' rings in turn.
    fn rx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        self.refresh();
        self.pop_into(batch)
    }

    fn alloc_tx(&mut self) -> Option<MemoryFrame> {
        let (owner, wire) = (self.index, self.shared.id);
        let buf = match self.cache.pop() {
            Some(buf) => {
                self.queue.cached.store(self.cache.len(), Ordering::Relaxed);
                Some(buf)
            }
            None => self.queue.pool.pop(),
        };
        buf.map(|buf| MemoryFrame {
            buf,
            len: 0,
            owner,
            wire,
            checksums_verified: false,
        })
    }

    /// Delivers every frame of `batch` (see the module docs) and empties it; returns how many
    /// frames it held. Frames are never left in the batch: drops happen at the receiver and
    /// are counted there. Invalid frames are dropped and counted as `tx_invalid`.
    fn tx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        self.refresh();
        let sent = batch.len();
        for frame in batch.drain(..) {
            self.transmit(frame);
        }
        if self.touched > 0 {
            // Pairs with the fence in `arm_rx_waker`: either the receiver's look at its rings
            // after setting its flag sees this burst's frames, or these loads see the flag.
            fence(Ordering::SeqCst);
            let mut left = core::mem::take(&mut self.touched);
            for lane in self.lanes.row.iter_mut().flatten() {
                if left == 0 {
                    break;
                }
                if core::mem::take(&mut lane.touched) {
                    left -= 1;
                    if lane.to.sleeping.load(Ordering::Relaxed) {
                        wake(&lane.to);
                    }
                }
            }
        }
        sent
    }

    fn release(&mut self, frame: MemoryFrame) {
        self.give_back(frame);
    }

    fn pool_stats(&self) -> PoolStats {
        self.queue.pool_stats()
    }

    /// Registers `thread` to be unparked when frames arrive for this queue after an
    /// `rx_burst` found the ring empty (see the module docs for the protocol). Replaces any
    /// thread registered before. Always returns true.
    fn set_rx_waker(&mut self, thread: Thread) -> bool {
        *lock(&self.queue.waker) = Some(thread);
        self.waker = true;
        true
    }

    /// Sets the queue's "sleeping" flag and looks at every ring of its column once more (see
    /// the module docs): false if a frame is waiting (its sender may not have seen the flag).
    fn arm_rx_waker(&mut self) -> bool {
        if !self.waker {
            return true;
        }
        self.queue.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence at the end of `tx_burst`.
        fence(Ordering::SeqCst);
        // After the fence: a port added meanwhile brings rings of its own.
        self.refresh();
        self.lanes
            .column
            .iter()
            .all(|lane| lane.consumer.is_empty())
    }
}
