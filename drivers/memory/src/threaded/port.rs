//! One queue pair of a port on the threaded wire: what one shard thread drives.

use core::fmt;
use core::sync::atomic::{Ordering, fence};
use std::sync::Arc;
use std::thread::Thread;

use rand_chacha::ChaCha8Rng;
use shardnet::port::{Batch, Capabilities, PoolStats, Port};
use shardnet::wire::EthernetAddress;

use super::wire::{QueueShared, Shared, ThreadedWire, Topology, lock};
use super::{ThreadedCounters, bump};
use crate::classify::{ETHERNET_HEADER_LEN, hash_input, queue_for_input};
use crate::frame::MemoryFrame;
use crate::wire::{PortId, chance};

/// Queue pair `queue` of a port on a [`ThreadedWire`], implementing [`Port`]. It is `Send`:
/// take it with [`ThreadedWire::port`] and move it to the thread that drives the queue.
///
/// At most one exists per queue at a time. Dropping it makes the queue available again (frames
/// keep arriving in its ring meanwhile, until the ring or pool is full) and unregisters its
/// receive waker.
pub struct ThreadedPort {
    shared: Arc<Shared>,
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
}

impl ThreadedPort {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        topology: Arc<Topology>,
        version: u64,
        port: PortId,
        index: usize,
        queue: Arc<QueueShared>,
        capabilities: Capabilities,
        rng: ChaCha8Rng,
    ) -> ThreadedPort {
        ThreadedPort {
            shared,
            topology,
            version,
            port,
            index,
            queue,
            capabilities,
            rng: Some(rng),
            waker: false,
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

    /// This queue pair's counters, read without any lock.
    pub fn counters(&self) -> ThreadedCounters {
        self.queue.counters.snapshot()
    }

    /// Frames waiting in this queue's receive ring.
    pub fn rx_pending(&self) -> usize {
        self.queue.rx.len()
    }

    /// Picks up the wire's current topology if a port was added since the last look.
    fn refresh(&mut self) {
        if self.shared.version() != self.version {
            let (version, topology) = self.shared.snapshot();
            self.version = version;
            self.topology = topology;
        }
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

    /// Moves frames from the receive ring into `batch` until it is full or the ring is empty.
    fn pop_into(&self, batch: &mut Batch<MemoryFrame>) -> usize {
        let mut received = 0;
        while !batch.is_full() {
            match self.queue.rx.pop() {
                Some(frame) => {
                    batch.push(frame);
                    received += 1;
                }
                None => break,
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
            bump(&self.queue.counters.tx.invalid, 1);
            self.give_back(frame);
            return;
        }
        bump(&self.queue.counters.tx.frames, 1);
        bump(&self.queue.counters.tx.bytes, len as u64);

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
            if let Some(to) = self.topology.queues.get(to_index) {
                deliver(to, to_index, wire, data, verified, self.rng.as_mut(), loss);
            }
        }
        if destinations == 0 {
            bump(&self.queue.counters.tx.no_destination, 1);
        }
        self.give_back(frame);
    }
}

/// Copies `data` into a buffer of queue `to` (index `to_index`) and pushes it onto its receive
/// ring, or counts why not; wakes the queue's receiver if it announced that it may sleep.
/// `verified`: the wire has checksum offload and vouches for the frame's checksums.
fn deliver(
    to: &QueueShared,
    to_index: usize,
    wire: u64,
    data: &[u8],
    verified: bool,
    rng: Option<&mut ChaCha8Rng>,
    loss: f64,
) {
    let c = &to.counters.rx;
    if rng.is_some_and(|rng| chance(rng, loss)) {
        bump(&c.lost, 1);
        return;
    }
    let Some(mut buf) = to.pool.pop() else {
        bump(&c.nombuf, 1);
        return;
    };
    let len = data.len();
    match buf.get_mut(..len) {
        Some(dst) => dst.copy_from_slice(data),
        None => {
            // Cannot happen: every buffer of the wire holds an MTU-sized frame.
            let _ = to.pool.push(buf);
            bump(&c.nombuf, 1);
            return;
        }
    }
    let frame = MemoryFrame {
        buf,
        len,
        owner: to_index,
        wire,
        checksums_verified: verified,
    };
    match to.rx.push(frame) {
        Ok(()) => {
            bump(&c.frames, 1);
            bump(&c.bytes, len as u64);
            // Pairs with the fence in `rx_burst`: either the receiver's second look at the ring
            // sees this frame, or this load sees its flag (see the module docs).
            fence(Ordering::SeqCst);
            if to.sleeping.load(Ordering::Relaxed) && to.sleeping.swap(false, Ordering::AcqRel) {
                to.wake();
            }
        }
        Err(frame) => {
            bump(&c.ring_full, 1);
            let _ = to.pool.push(frame.buf);
        }
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
        self.queue.taken.store(false, Ordering::Release);
    }
}

impl Port for ThreadedPort {
    type Frame = MemoryFrame;

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Takes delivered frames, oldest first.
    fn rx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        self.pop_into(batch)
    }

    fn alloc_tx(&mut self) -> Option<MemoryFrame> {
        let (owner, wire) = (self.index, self.shared.id);
        self.queue.pool.pop().map(|buf| MemoryFrame {
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

    /// Sets the queue's "sleeping" flag and looks at the ring once more (see the module docs):
    /// false if a frame is waiting (its sender may not have seen the flag).
    fn arm_rx_waker(&mut self) -> bool {
        if !self.waker {
            return true;
        }
        self.queue.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `deliver`.
        fence(Ordering::SeqCst);
        self.queue.rx.is_empty()
    }
}
