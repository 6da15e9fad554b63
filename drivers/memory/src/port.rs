//! One queue pair of a port on the wire: what a shard drives.

use core::cell::RefCell;
use core::fmt;
use std::rc::Rc;

use shardnet::port::{Batch, Capabilities, PoolStats, Port};
use shardnet::time::Instant;

use crate::frame::MemoryFrame;
use crate::wire::{Core, PortId, QueueCounters, Wire};

/// Queue pair `queue` of a port on a [`Wire`], implementing [`Port`].
///
/// Obtained from [`Wire::port`]; at most one exists per queue at a time. Dropping it makes the
/// queue available again; frames in flight to it keep arriving meanwhile.
pub struct MemoryPort {
    core: Rc<RefCell<Core>>,
    port: PortId,
    queue: usize,
    capabilities: Capabilities,
}

impl MemoryPort {
    pub(crate) fn new(
        core: Rc<RefCell<Core>>,
        port: PortId,
        queue: usize,
        capabilities: Capabilities,
    ) -> MemoryPort {
        MemoryPort {
            core,
            port,
            queue,
            capabilities,
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
    pub fn wire(&self) -> Wire {
        Wire::from_core(Rc::clone(&self.core))
    }

    /// Moves the wire's clock to `now`, like [`Wire::advance_to`]: the driver loop calls it
    /// before `rx_burst`, since [`Port::rx_burst`] takes no time. The clock is shared by the
    /// whole wire and never goes backwards.
    pub fn set_now(&mut self, now: Instant) {
        self.core.borrow_mut().advance_to(now);
    }

    /// The wire's current time.
    pub fn now(&self) -> Instant {
        self.core.borrow().now()
    }

    /// When the transmit ring, if it is full, will have room again (`None` if it has room now).
    pub fn next_tx_room(&self) -> Option<Instant> {
        self.core.borrow().next_tx_room(self.queue)
    }

    /// This queue pair's counters.
    pub fn counters(&self) -> QueueCounters {
        self.core.borrow().counters(self.queue)
    }
}

impl fmt::Debug for MemoryPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPort")
            .field("port", &self.port)
            .field("queue", &self.capabilities.queue)
            .field("mac", &self.capabilities.mac)
            .finish_non_exhaustive()
    }
}

impl Drop for MemoryPort {
    fn drop(&mut self) {
        // Never borrowed across calls, so the borrow succeeds; if it did not, the queue would
        // merely stay taken.
        if let Ok(mut core) = self.core.try_borrow_mut() {
            core.release_queue(self.queue);
        }
    }
}

impl Port for MemoryPort {
    type Frame = MemoryFrame;

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Takes delivered frames, oldest first. Only frames whose delivery time the wire's clock
    /// has reached are there (see [`MemoryPort::set_now`]).
    fn rx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        self.core.borrow_mut().rx_burst(self.queue, batch)
    }

    fn alloc_tx(&mut self) -> Option<MemoryFrame> {
        self.core.borrow_mut().alloc_tx(self.queue)
    }

    /// Puts frames on the wire at the wire's current time. Frames leave the batch when the wire
    /// takes them (including invalid frames, which are dropped and counted); they stay, in
    /// order, when the transmit ring is full (frames waiting for a rate-limited link) or too
    /// many of this queue's frames are in flight.
    fn tx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        self.core.borrow_mut().tx_burst(self.queue, batch)
    }

    fn release(&mut self, frame: MemoryFrame) {
        self.core.borrow_mut().give_back(frame);
    }

    fn pool_stats(&self) -> PoolStats {
        self.core.borrow().pool_stats(self.queue)
    }
}
