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
//!   moved): a bounded lock-free queue ([`crossbeam::queue::ArrayQueue`]), so any thread may
//!   take from or give back to it.
//! - **One ring per pair of queues.** Between every queue of a port and every queue of every
//!   *other* port there is a receive ring of [`ThreadedWireConfig::ring_size`] frames in each
//!   direction, a wait-free single-producer single-consumer ring ([`rtrb`]), allocated when
//!   the later of the two ports is added. A queue is driven by one [`ThreadedPort`] at a time,
//!   and that port holds the producers of its row (the rings to every other port's queues)
//!   and the consumers of its column (the rings from them): each ring has one producer and
//!   one consumer thread, so a push or pop is a load and a `Release` store, no
//!   read-modify-write, and a polling receiver does not contend with its senders for one
//!   ring's tail. A port takes its ends when it is created and when it picks up a topology
//!   with new rings (see below), and gives them back when it is dropped; frames keep arriving
//!   in the rings of a queue that has no port, until a ring or its pool is full.
//! - **Transmit is delivery.** `tx_burst` runs on the sender's thread. For each frame it picks
//!   the destination ports by MAC (the port with that MAC, or every *other* port for a
//!   broadcast or multicast destination), the receiving queue by RSS, and for each destination
//!   draws the seeded loss, takes a buffer from the receiving queue's pool, copies the frame
//!   into it (the only copy, like a NIC's DMA) and pushes it onto the ring from the sending
//!   queue to that queue. Then the sender's buffer goes back (the transmit completion): to
//!   its port's transmit cache, a stack of up to 64 of its queue's buffers (at most an eighth
//!   of the pool) that `alloc_tx` takes from before the pool, else to its pool. A port that
//!   transmits steadily so reuses its own buffers without the pool's atomics, which the
//!   senders delivering to it contend for (that traffic took ~20 % of a memory-wire `rr`
//!   profile); the cached buffers count as free in [`ThreadedWire::pool_stats`] and go back
//!   to the pool when the port is dropped. Only the port's own transmissions fill the cache,
//!   so a port that only receives leaves its whole pool to its senders. Nothing is locked and
//!   nothing is allocated.
//! - **Receive.** `rx_burst` takes frames from the rings of its column, each ring's oldest
//!   first and in one chunk (one load of the producer's tail, one store of the head), until
//!   the batch is full; it starts with the next ring at every burst, so no sender's ring waits
//!   behind another's that keeps filling up.
//! - **Drops happen at the receiver, as on a NIC.** No free buffer in the receiving queue's
//!   pool: the frame is dropped and counted as `rx_nombuf`; ring full: dropped and counted as
//!   `rx_ring_full` (a NIC's "missed" counter). A slow receiver never holds a sender back, and
//!   one full queue never blocks frames to other queues. So `tx_burst` takes every frame of
//!   the batch and returns its length: there is no transmit ring to fill, and `tx_ring_full`
//!   stays 0. A ring at least as large as the pool (the default) never fills, since every
//!   frame in it holds one of the receiving pool's buffers.
//! - **Order.** Frames from one sending queue to one receiving queue arrive in the order they
//!   were sent (one thread pushes them, in order, onto one FIFO ring). Frames from different
//!   senders interleave in no particular order.
//! - **Counters** are relaxed atomics, readable from any thread at any time, each written by
//!   one thread only, so a bump is a load and a store, no `lock`-prefixed add: the transmit
//!   counters by the sending queue's port, and the receive counters of a queue (delivered,
//!   no buffer, ring full, lost) by the *senders*, one set per ring, written by its
//!   producer's port and summed over the queue's column when a snapshot is taken; the frames
//!   a receiver took from a ring are counted by its consumer, on another cache line, so that
//!   [`ThreadedWire::rx_pending`] is delivered minus taken. A snapshot taken while frames are
//!   moving may be a few frames apart between fields; once the threads are quiet it is exact.
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
//! number per `tx_burst` and `rx_burst`; only after a port was added does it take the mutex
//! once to pick up the new snapshot, and with it the ends of the new port's rings. Adding a
//! port allocates its pools and its rings, rebuilds the snapshot, and leaves every existing
//! queue empty lane vectors with room for all queues, so that picking up the new rings on the
//! data path allocates nothing.
//!
//! # Receive wakeups
//!
//! A runtime whose shard is idle can sleep until a frame arrives:
//! [`Port::set_rx_waker`](shardnet::port::Port::set_rx_waker) registers the thread to unpark.
//! The protocol, per receiving queue, has one `AtomicBool` "sleeping" flag:
//!
//! 1. Receiver, about to sleep ([`Port::arm_rx_waker`](shardnet::port::Port::arm_rx_waker)):
//!    sets the flag, issues a `SeqCst` fence, picks up a newer topology if a port was added
//!    (its rings too) and looks at every ring of its column once more; if a frame slipped in,
//!    it does not sleep. The flag is set only if a waker is registered.
//! 2. Sender, per frame: after pushing the frame onto a ring, a plain relaxed load of the
//!    receiving queue's flag, no fence; if it is set, the sender clears it (`swap`, so one
//!    sender per sleep does this) and unparks the registered thread. A receiver that is
//!    already parked is so woken as soon as its first frame is in, not after the sender has
//!    copied the rest of its burst (waking only at the end of the burst halved a single
//!    stream's throughput).
//! 3. Sender, at the end of a `tx_burst` that pushed at least one frame: one `SeqCst` fence,
//!    then the same check of the flag of every queue this burst pushed to.
//! 4. The receiver parks (with `std::thread::park` or `park_timeout`) if its rings were empty.
//!
//! The fences of 1 and 3 make the flag and the rings a Dekker pair: either the receiver's look
//! after its fence sees the burst's frames, or the sender's load after its fence sees the
//! flag (the per-frame load of 2, without a fence, may miss a flag being set at that moment;
//! 3 does not). A port added meanwhile is covered too: the receiver reads the topology
//! version after its fence, and the new sender read it before pushing. An unpark that comes
//! before the park leaves the thread's token set, so the park returns at once: no wakeup is
//! lost. A wakeup may be spurious (the receiver woke for another reason and took the frame),
//! which costs one loop iteration. The registered thread handle sits behind a mutex that a
//! sender takes only when it has won the flag, i.e. at most once per sleep. A receiver that
//! polls without sleeping never sets the flag, so its senders pay one load per frame and one
//! fence per burst (until an earlier version the flag was set by every `rx_burst` that found
//! the ring empty, which made a polling receiver cost its senders a lock and an unpark per
//! poll).

mod lanes;
mod pair;
mod port;
mod wire;

pub use crate::frame::MemoryFrame;
pub use crate::wire::{PortId, WireError};
pub use port::ThreadedPort;
pub use wire::ThreadedWire;

use core::sync::atomic::{AtomicU64, Ordering};
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
    /// Frames each receive ring holds (there is one ring per pair of queues of different
    /// ports, per direction); at least 1. A frame arriving at a full ring is dropped
    /// (`rx_ring_full`); with `ring_size >= pool_size` that cannot happen.
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
    /// 1024 frames of 2048 bytes per queue, MTU 1500, 1024-frame receive rings, seed 0, no
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
/// chose (kept per ring by the sender and summed over the queue's rings in the snapshot). For unicast frames that found their port, summed over the wire,
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
    /// Frames delivered into this queue's receive rings.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames for this queue dropped because its pool had no free buffer.
    pub rx_nombuf: u64,
    /// Frames for this queue dropped because the receive ring from their sending queue was
    /// full.
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

/// The transmit counters of a queue (see [`ThreadedCounters`] for each): relaxed atomics,
/// written only by the queue's port and readable from any thread. The receive counters live in
/// the pairs of queues ([`pair::RxAtomics`]), written by the sending queue's port.
#[derive(Debug, Default)]
pub(crate) struct TxAtomics {
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) ring_full: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) no_destination: AtomicU64,
}

impl TxAtomics {
    /// Adds these counters to `sum`.
    pub(crate) fn add_to(&self, sum: &mut ThreadedCounters) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        sum.tx_frames += get(&self.frames);
        sum.tx_bytes += get(&self.bytes);
        sum.tx_ring_full += get(&self.ring_full);
        sum.tx_invalid += get(&self.invalid);
        sum.tx_no_destination += get(&self.no_destination);
    }
}

/// Adds `n` to a counter that one thread at a time writes: a relaxed load and a relaxed store,
/// no read-modify-write (no `lock` prefix on x86). Other threads may read it at any time and
/// see some value it held. Who the writer is moves only with the end of a queue that owns the
/// counter (a port dropped and taken again: the `taken` flag and the pair's mutexes order the
/// old writer's stores before the new one's loads).
#[inline]
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
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
