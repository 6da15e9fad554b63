//! The driver boundary: batched receive and transmit of frames owned by a driver's pool.
//!
//! A [`Port`] is one queue pair of one network device, owned by exactly one shard. Frames belong
//! to the driver's pool (an AF_XDP UMEM chunk, a DPDK mbuf, a slot of the memory wire's arena):
//! the stack reads received bytes in place and writes outgoing frames in place, so no byte is
//! copied between the NIC and the socket buffers. Frames are plain handles: they are given back
//! with [`Port::release`] (after receive) or handed over with [`Port::tx_burst`] (for transmit);
//! a frame that is neither leaks from the pool, which [`Port::pool_stats`] makes visible to tests.

use crate::wire::EthernetAddress;
use arrayvec::ArrayVec;

/// Frames moved per burst: large enough to amortise a ring doorbell, small enough to stay in L1.
pub const BURST: usize = 32;

/// A burst of frames: a fixed-capacity vector, so batching never allocates.
pub type Batch<F> = ArrayVec<F, BURST>;

/// A buffer from a port's frame pool.
pub trait Frame {
    /// The frame's bytes: as received, or as written so far for transmit.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// The largest length this buffer can hold.
    fn capacity(&self) -> usize;
    /// Sets the frame length (for transmit, after writing into [`Frame::buffer_mut`]).
    /// Lengths above [`Frame::capacity`] are clamped to it.
    fn set_len(&mut self, len: usize);
    /// The whole writable buffer, `capacity()` bytes long, regardless of the current length.
    fn buffer_mut(&mut self) -> &mut [u8];
    /// What the NIC already verified about this received frame's checksums.
    fn rx_offload(&self) -> RxOffload {
        RxOffload::default()
    }
}

/// Receive-side checksum verdicts a NIC may attach to a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOffload {
    /// The IPv4 header checksum was verified good by hardware.
    pub ipv4_checksum_good: bool,
    /// The TCP or UDP checksum was verified good by hardware.
    pub l4_checksum_good: bool,
}

/// Checksum offloads a port offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChecksumOffload {
    /// Received frames carry an IPv4 header checksum verdict.
    pub rx_ipv4: bool,
    /// Received frames carry a TCP/UDP checksum verdict.
    pub rx_l4: bool,
    /// The port fills in IPv4 header checksums on transmit.
    pub tx_ipv4: bool,
    /// The port fills in TCP/UDP checksums on transmit.
    pub tx_l4: bool,
}

/// Receive-side scaling as the device does it, so that the stack can predict which queue (and so
/// which shard) a flow's packets arrive on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// The Toeplitz hash key (40 bytes on most NICs, 52 on some).
    pub key: Vec<u8>,
    /// The indirection table: `queue = table[hash % table.len()]`.
    pub indirection: Vec<u16>,
}

/// What a port is and can do, reported once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The device's MAC address.
    pub mac: EthernetAddress,
    /// The IP MTU (Ethernet payload size), 1500 on a standard link.
    pub mtu: u16,
    /// This port's queue number on the device.
    pub queue: u16,
    /// The number of queues the device has (and so the number of shards that share it).
    pub queue_count: u16,
    /// How the device spreads flows over queues; `None` if it does not (single queue).
    pub rss: Option<RssConfig>,
    /// Checksum offloads.
    pub checksum: ChecksumOffload,
    /// The size of the frame pool behind this queue pair.
    pub pool_size: usize,
}

/// Occupancy of a port's frame pool, for leak checks and backpressure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Frames in the pool in total.
    pub total: usize,
    /// Frames currently free in the pool (not held by the stack, nor in flight in a ring).
    pub free: usize,
}

/// One queue pair of a network device.
pub trait Port {
    /// The driver's frame type.
    type Frame: Frame;

    /// What the port is and can do.
    fn capabilities(&self) -> &Capabilities;

    /// Receives up to `batch.remaining_capacity()` frames, appending them to `batch`.
    /// Returns how many were appended. The stack gives each back with [`Port::release`].
    fn rx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize;

    /// Takes a free frame from the pool for transmit, or `None` if the pool is exhausted (the
    /// caller counts it and applies backpressure).
    fn alloc_tx(&mut self) -> Option<Self::Frame>;

    /// Queues frames from the front of `batch` for transmit. Frames sent are removed from
    /// `batch`; those the device had no room for stay in it, in order, for the next call.
    /// Returns how many were sent.
    fn tx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize;

    /// Gives a frame back to the pool.
    fn release(&mut self, frame: Self::Frame);

    /// Pool occupancy.
    fn pool_stats(&self) -> PoolStats;

    /// Asks the port to unpark `thread` when frames arrive for this queue after
    /// [`Port::arm_rx_waker`], so that a runtime whose shard is idle can sleep until the next
    /// timer *or* the next frame. Returns false if the port cannot (the default): the runtime
    /// then caps its sleeps at a short interval.
    fn set_rx_waker(&mut self, thread: std::thread::Thread) -> bool {
        let _ = thread;
        false
    }

    /// Called by the thread registered with [`Port::set_rx_waker`] right before it sleeps: the
    /// next frame for this queue unparks it (a frame that arrives before the park leaves the
    /// thread's unpark token set, so the park returns at once). Returns false if frames are
    /// already waiting, so that the caller receives them instead of sleeping. Arming only
    /// before a sleep, not on every `rx_burst` that finds nothing, keeps the wakeup machinery
    /// off the data path of a shard that polls. The default arms nothing and returns true.
    fn arm_rx_waker(&mut self) -> bool {
        true
    }
}

/// Where the stack writes outgoing frames: one frame per call, written in place.
///
/// This is the transmit half of the sans-IO boundary: [`crate::shard::Shard::poll_transmit`]
/// asks for a buffer of the frame's length and fills it. A driver adapter ([`TxBatcher`]) backs
/// it with frames of a [`Port`]'s pool; tests back it with plain vectors.
pub trait Transmit {
    /// Sends one frame of `len` bytes, written by `write` into a buffer of exactly `len` bytes.
    /// Returns false, without calling `write`, if there is no room (pool empty, ring full): the
    /// stack keeps the data and tries again on the next poll.
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, write: F) -> bool;
}

/// A [`Transmit`] that writes into frames allocated from a [`Port`] and sends them in bursts.
pub struct TxBatcher<'p, P: Port> {
    port: &'p mut P,
    batch: Batch<P::Frame>,
    sent: usize,
    no_buffer: usize,
}

impl<'p, P: Port> TxBatcher<'p, P> {
    /// A batcher over `port`.
    pub fn new(port: &'p mut P) -> Self {
        TxBatcher {
            port,
            batch: Batch::new(),
            sent: 0,
            no_buffer: 0,
        }
    }

    fn flush(&mut self) {
        self.sent += self.port.tx_burst(&mut self.batch);
    }

    /// Sends what is batched. Frames the device still has no room for are given back to the
    /// pool and counted as not sent. Returns `(sent, not_sent)`.
    pub fn finish(mut self) -> (usize, usize) {
        self.flush();
        let mut dropped = self.no_buffer;
        while let Some(frame) = self.batch.pop() {
            self.port.release(frame);
            dropped += 1;
        }
        (self.sent, dropped)
    }
}

impl<P: Port> Transmit for TxBatcher<'_, P> {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, write: F) -> bool {
        if self.batch.is_full() {
            self.flush();
            if self.batch.is_full() {
                return false;
            }
        }
        let Some(mut frame) = self.port.alloc_tx() else {
            self.no_buffer += 1;
            return false;
        };
        if len > frame.capacity() {
            self.port.release(frame);
            return false;
        }
        write(&mut frame.buffer_mut()[..len]);
        frame.set_len(len);
        self.batch.push(frame);
        true
    }
}

/// A [`Transmit`] into a vector of frames, for tests and tools.
#[derive(Debug, Default)]
pub struct VecTransmit {
    /// The frames sent, in order.
    pub frames: Vec<Vec<u8>>,
    /// Refuse frames beyond this many (to test backpressure); `None` for no limit.
    pub limit: Option<usize>,
}

impl Transmit for VecTransmit {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, write: F) -> bool {
        if self.limit.is_some_and(|l| self.frames.len() >= l) {
            return false;
        }
        let mut frame = vec![0u8; len];
        write(&mut frame);
        self.frames.push(frame);
        true
    }
}
