//! A thread-safe memory wire for the runtime: one shard thread per queue, real time.
//!
//! [`ThreadedWire`] joins ports like [`crate::Wire`] does (same MAC delivery rules, same RSS,
//! same [`MemoryFrame`] buffers), but each [`ThreadedPort`] is `Send` and
//! is driven by a thread of its own. There is no clock and no delay: a frame is delivered while
//! its sender's `tx_burst` runs, and its receiver sees it on its next `rx_burst`.
//!
//! ```
//! use shardnet::port::{Batch, Frame, Port};
//! use shardnet::wire::EthernetAddress;
//! use shardnet_memory::threaded::{ThreadedWire, ThreadedWireConfig};
//!
//! let wire = ThreadedWire::new(ThreadedWireConfig::default());
//! let (mac_a, mac_b) = (EthernetAddress([2, 0, 0, 0, 0, 1]), EthernetAddress([2, 0, 0, 0, 0, 2]));
//! let a = wire.add_port(mac_a, 1);
//! let b = wire.add_port(mac_b, 1);
//! let mut pa = wire.port(a, 0).unwrap();
//! let mut pb = wire.port(b, 0).unwrap();
//!
//! let receiver = std::thread::spawn(move || {
//!     let mut rx = Batch::new();
//!     while pb.rx_burst(&mut rx) == 0 {
//!         std::thread::yield_now();
//!     }
//!     let len = rx[0].data().len();
//!     for frame in rx.drain(..) {
//!         pb.release(frame);
//!     }
//!     len
//! });
//!
//! let mut frame = pa.alloc_tx().unwrap();
//! frame.buffer_mut()[..6].copy_from_slice(mac_b.as_bytes());
//! frame.buffer_mut()[6..12].copy_from_slice(mac_a.as_bytes());
//! frame.set_len(60);
//! let mut tx = Batch::new();
//! tx.push(frame);
//! assert_eq!(pa.tx_burst(&mut tx), 1);
//!
//! assert_eq!(receiver.join().unwrap(), 60);
//! assert!(wire.all_pools_full());
//! assert_eq!(wire.total_counters().rx_frames, 1);
//! ```
//!
//! # Model
//!
//! - **Queues.** Every queue pair of every port has a pool of
//!   [`ThreadedWireConfig::pool_size`] buffers (allocated when the port is added, then only
//!   moved) and a receive ring of [`ThreadedWireConfig::ring_size`] frames. Both are bounded
//!   lock-free queues ([`crossbeam::queue::ArrayQueue`]), so any thread may take from or give
//!   back to them.
//! - **Transmit is delivery.** `tx_burst` runs on the sender's thread. For each frame it picks
//!   the destination ports by MAC (the port with that MAC, or every *other* port for a
//!   broadcast or multicast destination), the receiving queue by RSS, and for each destination
//!   draws the seeded loss, takes a buffer from the receiving queue's pool, copies the frame
//!   into it (the only copy, like a NIC's DMA) and pushes it onto that queue's receive ring.
//!   Then the sender's buffer goes back to its own pool (the transmit completion). Nothing is
//!   locked and nothing is allocated.
//! - **Drops happen at the receiver, as on a NIC.** No free buffer in the receiving queue's
//!   pool: the frame is dropped and counted as `rx_nombuf`; receive ring full: dropped and
//!   counted as `rx_ring_full` (a NIC's "missed" counter). A slow receiver never holds a sender
//!   back, and one full queue never blocks frames to other queues. So `tx_burst` takes every
//!   frame of the batch and returns its length: there is no transmit ring to fill, and
//!   `tx_ring_full` stays 0. A receive ring at least as large as the pool (the default) never
//!   fills, since every frame in it holds one of the pool's buffers.
//! - **Order.** Frames from one sending queue to one receiving queue arrive in the order they
//!   were sent (one thread pushes them, in order, onto one FIFO ring). Frames from different
//!   senders interleave in no particular order.
//! - **Counters** are atomics, readable from any thread at any time; a snapshot taken while
//!   frames are moving may be a few frames apart between fields.
//!
//! # Loss
//!
//! With [`ThreadedWireConfig::loss`] above 0, each frame copy (one per destination port) is
//! dropped with that probability, drawn from a ChaCha8 stream of the *sending* queue seeded
//! from [`ThreadedWireConfig::seed`]. The stream lives with the queue, not with the
//! [`ThreadedPort`] handle, so dropping and re-taking a port continues it. What one sender's
//! frames lose depends only on the seed and that sender's sequence of frames, never on other
//! threads; a loss of 0 draws nothing.
//!
//! # RSS
//!
//! As on [`crate::Wire`]: a port with several queues spreads received frames by the Toeplitz
//! hash of the IPv4 addresses and, for unfragmented TCP and UDP, the ports, looked up in the
//! indirection table ([`crate::classify`]); everything else, ARP in particular, goes to queue 0.
//! [`ThreadedWire::add_port`] uses [`ThreadedWireConfig::rss_key`] and a round-robin table of
//! [`ThreadedWireConfig::indirection_entries`] entries for ports with several queues (no RSS
//! for a single queue); [`ThreadedWire::add_port_with_rss`] takes any key and table.
//! [`shardnet::port::Capabilities::rss`] reports exactly what the port uses.
//!
//! # Adding ports while others run
//!
//! Ports are best added before any queue is taken, but adding one later works: the wire keeps
//! its topology (ports, MACs, RSS tables, queues) as an immutable snapshot behind a mutex plus
//! a version number. Each [`ThreadedPort`] holds a snapshot and compares one atomic version
//! number per `tx_burst`; only after a port was added does it take the mutex once to pick up
//! the new snapshot. Adding a port allocates its pools and rebuilds the snapshot.
//!
//! # Receive wakeups
//!
//! A runtime whose shard is idle can sleep until a frame arrives:
//! [`Port::set_rx_waker`](shardnet::port::Port::set_rx_waker) registers the thread to unpark.
//! The protocol, per receiving queue, has one `AtomicBool` "sleeping" flag:
//!
//! 1. Receiver, about to sleep ([`Port::arm_rx_waker`](shardnet::port::Port::arm_rx_waker)):
//!    sets the flag, issues a `SeqCst` fence and looks at the ring once more; if a frame
//!    slipped in, it does not sleep. The flag is set only if a waker is registered.
//! 2. Sender: after pushing a frame onto a ring, it issues a `SeqCst` fence and reads the flag;
//!    if it is set, the sender clears it (`swap`, so one sender per sleep does this) and
//!    unparks the registered thread.
//! 3. The receiver parks (with `std::thread::park` or `park_timeout`) if the ring was empty.
//!
//! The fences make the flag and the ring a Dekker pair: either the receiver's second look
//! sees the frame, or the sender sees the flag. An unpark that comes before the park leaves
//! the thread's token set, so the park returns at once: no wakeup is lost. A wakeup may be
//! spurious (the receiver woke for another reason and took the frame), which costs one loop
//! iteration. The registered thread handle sits behind a mutex that a sender takes only when
//! it has won the flag, i.e. at most once per sleep. A receiver that polls without sleeping
//! never sets the flag, so its senders pay only the fence and one load (until this version
//! the flag was set by every `rx_burst` that found the ring empty, which made a polling
//! receiver cost its senders a lock and an unpark per poll).

mod port;
mod wire;

pub use crate::frame::MemoryFrame;
pub use crate::wire::{PortId, WireError};
pub use port::ThreadedPort;
pub use wire::ThreadedWire;

use core::sync::atomic::{AtomicU64, Ordering};
use crossbeam::utils::CachePadded;
use shardnet::shard::rss::{DEFAULT_INDIRECTION_ENTRIES, DEFAULT_KEY};

/// The configuration of a [`ThreadedWire`].
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadedWireConfig {
    /// Frames in the pool of each queue pair (used for both transmit and receive).
    pub pool_size: usize,
    /// Bytes per frame buffer; at least `mtu + 14` (the Ethernet header).
    pub frame_size: usize,
    /// IP MTU of every port; frames longer than `mtu + 14` bytes are dropped at transmit.
    pub mtu: u16,
    /// Frames each queue's receive ring holds; at least 1. A frame arriving at a full ring is
    /// dropped (`rx_ring_full`); with `ring_size >= pool_size` that cannot happen.
    pub ring_size: usize,
    /// The seed of the loss decisions.
    pub seed: u64,
    /// Probability that a frame copy is lost on its way to a port, clamped to `[0, 1]`
    /// (NaN counts as 0).
    pub loss: f64,
    /// The Toeplitz key of multi-queue ports added with [`ThreadedWire::add_port`].
    pub rss_key: Vec<u8>,
    /// The indirection table size of multi-queue ports added with [`ThreadedWire::add_port`]
    /// (round-robin over their queues).
    pub indirection_entries: usize,
    /// Checksum offload, as Linux's loopback device does it (`NETIF_F_HW_CSUM` and
    /// `NETIF_F_RXCSUM` on `lo`): the ports report every transmit and receive checksum offload
    /// ([`Capabilities::checksum`](shardnet::port::Capabilities)), so the stacks leave the
    /// checksums of their frames partial (the pseudo-header sum only) and the wire marks every
    /// frame it delivers as verified ([`RxOffload`](shardnet::port::RxOffload)). Nothing
    /// computes the checksums: a memory copy does not corrupt, as Linux's loopback skips them
    /// for the same reason (its packets stay `CHECKSUM_PARTIAL` end to end). Frames so carry
    /// checksums a capture shows as incorrect (as `tcpdump -i lo` does), so leave it off where
    /// frames are captured or where raw frames with arbitrary checksums are injected.
    pub checksum_offload: bool,
}

impl Default for ThreadedWireConfig {
    /// 1024 frames of 2048 bytes per queue, MTU 1500, a 1024-frame receive ring, seed 0, no
    /// loss, Microsoft's default RSS key, a 128-entry indirection table and no checksum
    /// offload.
    fn default() -> Self {
        ThreadedWireConfig {
            pool_size: 1024,
            frame_size: 2048,
            mtu: 1500,
            ring_size: 1024,
            seed: 0,
            loss: 0.0,
            rss_key: DEFAULT_KEY.to_vec(),
            indirection_entries: DEFAULT_INDIRECTION_ENTRIES,
            checksum_offload: false,
        }
    }
}

/// What happened to the frames of one queue pair of a [`ThreadedWire`]: a snapshot of its
/// atomic counters.
///
/// Transmit counters belong to the sending queue; what happens to a frame on its way to a port
/// (loss, no buffer, ring full) and its receipt are counted on the receiving queue that RSS
/// chose. For unicast frames that found their port, summed over the wire,
/// `tx_frames - tx_no_destination = rx_frames + rx_nombuf + rx_ring_full + lost`; a broadcast
/// frame counts once in `tx_frames` and once per port it reaches on the right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadedCounters {
    /// Frames taken by `tx_burst` and put on the wire (invalid frames excluded).
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames `tx_burst` left in the caller's batch for lack of room. This wire delivers while
    /// `tx_burst` runs and drops at the receiver instead (`rx_nombuf`, `rx_ring_full`), so
    /// this stays 0; it is kept so that code reading the counters of either wire reads the
    /// same field.
    pub tx_ring_full: u64,
    /// Frames taken by `tx_burst` and dropped because they were shorter than an Ethernet
    /// header, longer than the MTU allows, or not from this wire's pools.
    pub tx_invalid: u64,
    /// Frames put on the wire whose destination matched no other port.
    pub tx_no_destination: u64,
    /// Frames delivered into this queue's receive ring.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames for this queue dropped because its pool had no free buffer.
    pub rx_nombuf: u64,
    /// Frames for this queue dropped because its receive ring was full.
    pub rx_ring_full: u64,
    /// Frames for this queue dropped by the seeded loss.
    pub lost: u64,
}

impl core::ops::AddAssign for ThreadedCounters {
    fn add_assign(&mut self, o: ThreadedCounters) {
        self.tx_frames += o.tx_frames;
        self.tx_bytes += o.tx_bytes;
        self.tx_ring_full += o.tx_ring_full;
        self.tx_invalid += o.tx_invalid;
        self.tx_no_destination += o.tx_no_destination;
        self.rx_frames += o.rx_frames;
        self.rx_bytes += o.rx_bytes;
        self.rx_nombuf += o.rx_nombuf;
        self.rx_ring_full += o.rx_ring_full;
        self.lost += o.lost;
    }
}

/// The live counters of one queue: relaxed atomics, written by whichever thread the event
/// happens on. The transmit half is written by the queue's own thread and the receive half by
/// the threads that deliver to it, each on its own cache line: sharing one made every frame
/// move the line between the sender's and the receiver's cores (false sharing).
#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    pub(crate) tx: CachePadded<TxAtomics>,
    pub(crate) rx: CachePadded<RxAtomics>,
}

/// The transmit counters of a queue (see [`ThreadedCounters`] for each).
#[derive(Debug, Default)]
pub(crate) struct TxAtomics {
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) ring_full: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) no_destination: AtomicU64,
}

/// The receive counters of a queue (see [`ThreadedCounters`] for each).
#[derive(Debug, Default)]
pub(crate) struct RxAtomics {
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) nombuf: AtomicU64,
    pub(crate) ring_full: AtomicU64,
    pub(crate) lost: AtomicU64,
}

/// Adds `n` to a counter.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl AtomicCounters {
    pub(crate) fn snapshot(&self) -> ThreadedCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (tx, rx) = (&self.tx, &self.rx);
        ThreadedCounters {
            tx_frames: get(&tx.frames),
            tx_bytes: get(&tx.bytes),
            tx_ring_full: get(&tx.ring_full),
            tx_invalid: get(&tx.invalid),
            tx_no_destination: get(&tx.no_destination),
            rx_frames: get(&rx.frames),
            rx_bytes: get(&rx.bytes),
            rx_nombuf: get(&rx.nombuf),
            rx_ring_full: get(&rx.ring_full),
            lost: get(&rx.lost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_cross_threads() {
        assert_send::<ThreadedPort>();
        assert_send::<MemoryFrame>();
        assert_send_sync::<ThreadedWire>();
    }

    #[test]
    fn loss_is_clamped() {
        for (loss, expect) in [(f64::NAN, 0.0), (-1.0, 0.0), (2.0, 1.0), (0.25, 0.25)] {
            let wire = ThreadedWire::new(ThreadedWireConfig {
                loss,
                ..ThreadedWireConfig::default()
            });
            assert_eq!(wire.loss(), expect);
        }
    }
}
