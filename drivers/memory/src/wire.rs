//! The wire: ports, their queues and pools, the links between ports and the frames in flight.

use core::cell::RefCell;
use core::cmp::{Ordering, Reverse};
use core::fmt;
use core::ops::AddAssign;
use core::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use shardnet::port::{Batch, Capabilities, ChecksumOffload, Frame, PoolStats, RssConfig};
use shardnet::shard::rss::{ToeplitzTable, round_robin_indirection};
use shardnet::time::{Duration, Instant};
use shardnet::wire::EthernetAddress;

use crate::classify::{ETHERNET_HEADER_LEN, hash_input, queue_for_input};
use crate::config::{Impairments, WireConfig};
use crate::frame::MemoryFrame;
use crate::port::MemoryPort;

/// Identifies a port (a device with one or more queues) on a [`Wire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub(crate) usize);

impl PortId {
    /// The port's index: ports are numbered 0, 1, 2, ... in the order they were added.
    pub fn index(self) -> usize {
        self.0
    }
}

/// Why a wire operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// No port with that id on this wire.
    UnknownPort,
    /// The port has no queue with that number.
    UnknownQueue,
    /// A [`MemoryPort`] for that queue already exists (each queue has one owner).
    QueueTaken,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::UnknownPort => "unknown port",
            WireError::UnknownQueue => "unknown queue",
            WireError::QueueTaken => "queue already taken",
        })
    }
}

impl std::error::Error for WireError {}

/// What happened to the frames of one queue pair.
///
/// Transmit counters belong to the sending queue. Everything that happens to a frame on its way
/// to a port (loss, duplication, reordering, corruption, no buffer) is counted on the queue
/// that RSS chose for it on the receiving port, so a test can read the fate of the traffic a
/// queue was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Frames put on the wire by `tx_burst`.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames `tx_burst` left in the batch for lack of room (transmit ring full, or too many
    /// frames of this queue still in flight).
    pub tx_ring_full: u64,
    /// Frames dropped at transmit because they were shorter than an Ethernet header, longer
    /// than the MTU allows, or not from this wire's pools.
    pub tx_invalid: u64,
    /// Frames put on the wire whose destination matched no other port.
    pub tx_no_destination: u64,
    /// Frames delivered into this queue (visible to `rx_burst` from then on).
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames that arrived for this queue when its pool had no free buffer, and were dropped.
    pub rx_nombuf: u64,
    /// Frames on their way to this queue that the link lost.
    pub lost: u64,
    /// Frames on their way to this queue that the link duplicated (one per extra copy).
    pub duplicated: u64,
    /// Frame copies on their way to this queue that the link held back (reordered).
    pub reordered: u64,
    /// Frame copies on their way to this queue that had a bit flipped.
    pub corrupted: u64,
}

impl AddAssign for QueueCounters {
    fn add_assign(&mut self, o: QueueCounters) {
        self.tx_frames += o.tx_frames;
        self.tx_bytes += o.tx_bytes;
        self.tx_ring_full += o.tx_ring_full;
        self.tx_invalid += o.tx_invalid;
        self.tx_no_destination += o.tx_no_destination;
        self.rx_frames += o.rx_frames;
        self.rx_bytes += o.rx_bytes;
        self.rx_nombuf += o.rx_nombuf;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.corrupted += o.corrupted;
    }
}

/// An in-process Ethernet segment joining ports; see the crate documentation.
///
/// `Wire` is a handle: clones refer to the same wire. It and its [`MemoryPort`]s are
/// single-threaded (`!Send`).
#[derive(Clone)]
pub struct Wire {
    core: Rc<RefCell<Core>>,
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.core.borrow();
        f.debug_struct("Wire")
            .field("now", &core.now)
            .field("ports", &core.ports.len())
            .field("queues", &core.queues.len())
            .field("in_flight", &core.deliveries.len())
            .finish()
    }
}

impl Wire {
    /// A wire with no ports, at time zero.
    ///
    /// # Panics
    ///
    /// If `config.frame_size < config.mtu + 14` or `config.tx_ring_size == 0`.
    pub fn new(config: WireConfig) -> Wire {
        Wire {
            core: Rc::new(RefCell::new(Core::new(config))),
        }
    }

    pub(crate) fn from_core(core: Rc<RefCell<Core>>) -> Wire {
        Wire { core }
    }

    /// Adds a port with MAC address `mac` and `queue_count` queue pairs, using the wire's RSS key
    /// and a round-robin indirection table (no RSS, so [`Capabilities::rss`] of `None`, for a
    /// single queue).
    ///
    /// # Panics
    ///
    /// If `queue_count` is 0.
    pub fn add_port(&self, mac: EthernetAddress, queue_count: u16) -> PortId {
        self.core.borrow_mut().add_port(mac, queue_count, None)
    }

    /// Adds a port that spreads received frames over its `queue_count` queues with `rss`.
    ///
    /// # Panics
    ///
    /// If `queue_count` is 0 or an indirection table entry names a queue `>= queue_count`.
    pub fn add_port_with_rss(
        &self,
        mac: EthernetAddress,
        queue_count: u16,
        rss: RssConfig,
    ) -> PortId {
        self.core.borrow_mut().add_port(mac, queue_count, Some(rss))
    }

    /// The driver handle of queue pair `queue` of `port`. Each queue has at most one live
    /// [`MemoryPort`]; once that is dropped, the queue can be taken again.
    pub fn port(&self, port: PortId, queue: u16) -> Result<MemoryPort, WireError> {
        let (index, capabilities) = {
            let mut core = self.core.borrow_mut();
            let index = core.queue_index(port, queue)?;
            let q = &mut core.queues[index];
            if q.taken {
                return Err(WireError::QueueTaken);
            }
            q.taken = true;
            (index, core.capabilities(port, queue))
        };
        Ok(MemoryPort::new(
            Rc::clone(&self.core),
            port,
            index,
            capabilities,
        ))
    }

    /// The wire's current time.
    pub fn now(&self) -> Instant {
        self.core.borrow().now
    }

    /// Moves the wire's clock to `now` (never backwards: an earlier `now` is ignored) and
    /// delivers every frame due by then into its receive queue.
    ///
    /// The wire reads no clock: whoever drives it (a simulation's virtual clock, the runtime's
    /// loop) calls this, or [`MemoryPort::set_now`], before polling. Frames become visible to
    /// `rx_burst` only once the wire's time has reached their delivery time.
    pub fn advance_to(&self, now: Instant) {
        self.core.borrow_mut().advance_to(now);
    }

    /// The earliest time at which a frame in flight will be delivered, if any is in flight.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.core.borrow().next_delivery()
    }

    /// The earliest time at which anything on the wire changes: a delivery, or room appearing in
    /// a transmit ring held up by a bandwidth limit (even for frames that are then lost). A
    /// simulation that jumps its clock to the minimum of this and its stacks' timers misses
    /// nothing.
    pub fn next_event(&self) -> Option<Instant> {
        self.core.borrow().next_event()
    }

    /// Frame copies scheduled for delivery and not yet delivered.
    pub fn frames_in_flight(&self) -> usize {
        self.core.borrow().deliveries.len()
    }

    /// Sets the impairments of every direction of every link, now and for ports added later.
    pub fn set_impairments(&self, impairments: Impairments) {
        let mut core = self.core.borrow_mut();
        for link in &mut core.links {
            link.impairments = impairments.clone();
        }
        core.default_impairments = impairments;
    }

    /// Sets the impairments of the frames `from` sends to `to` (one direction).
    pub fn set_link_impairments(
        &self,
        from: PortId,
        to: PortId,
        impairments: Impairments,
    ) -> Result<(), WireError> {
        let mut core = self.core.borrow_mut();
        let n = core.ports.len();
        if from.0 >= n || to.0 >= n {
            return Err(WireError::UnknownPort);
        }
        core.links[from.0 * n + to.0].impairments = impairments;
        Ok(())
    }

    /// The number of ports.
    pub fn port_count(&self) -> usize {
        self.core.borrow().ports.len()
    }

    /// The number of queue pairs of `port`.
    pub fn queue_count(&self, port: PortId) -> Result<u16, WireError> {
        let core = self.core.borrow();
        core.ports
            .get(port.0)
            .map(|p| p.queue_count)
            .ok_or(WireError::UnknownPort)
    }

    /// The counters of queue pair `queue` of `port`.
    pub fn counters(&self, port: PortId, queue: u16) -> Result<QueueCounters, WireError> {
        let core = self.core.borrow();
        let index = core.queue_index(port, queue)?;
        Ok(core.queues[index].counters)
    }

    /// The counters of all queues of `port`, summed.
    pub fn port_counters(&self, port: PortId) -> Result<QueueCounters, WireError> {
        let core = self.core.borrow();
        let p = core.ports.get(port.0).ok_or(WireError::UnknownPort)?;
        let mut sum = QueueCounters::default();
        for q in &core.queues[p.first_queue..p.first_queue + usize::from(p.queue_count)] {
            sum += q.counters;
        }
        Ok(sum)
    }

    /// The counters of every queue of every port, summed.
    pub fn total_counters(&self) -> QueueCounters {
        let core = self.core.borrow();
        let mut sum = QueueCounters::default();
        for q in &core.queues {
            sum += q.counters;
        }
        sum
    }

    /// The pool occupancy of queue pair `queue` of `port`.
    pub fn pool_stats(&self, port: PortId, queue: u16) -> Result<PoolStats, WireError> {
        let core = self.core.borrow();
        let index = core.queue_index(port, queue)?;
        Ok(core.queues[index].pool_stats())
    }

    /// Whether every pool of the wire is full: no frame held by a stack, waiting in a receive
    /// queue or in flight. The end-of-test leak check.
    pub fn all_pools_full(&self) -> bool {
        let core = self.core.borrow();
        core.queues.iter().all(|q| q.pool.len() == q.pool_total)
    }
}

/// Source of wire identities, so that a frame given to the wrong wire is recognised.
pub(crate) static NEXT_WIRE_ID: AtomicU64 = AtomicU64::new(1);

/// The wire's state, shared by the [`Wire`] handle and the [`MemoryPort`]s.
pub(crate) struct Core {
    id: u64,
    now: Instant,
    frame_size: usize,
    max_frame_len: usize,
    mtu: u16,
    pool_size: usize,
    tx_ring_size: usize,
    seed: u64,
    rss_key: Vec<u8>,
    indirection_entries: usize,
    default_impairments: Impairments,
    ports: Vec<PortState>,
    queues: Vec<QueueState>,
    /// One per ordered pair of ports, `links[from * ports + to]`.
    links: Vec<Link>,
    /// Frame copies in flight, earliest first.
    deliveries: BinaryHeap<Delivery>,
    next_seq: u64,
}

struct PortState {
    mac: EthernetAddress,
    first_queue: usize,
    queue_count: u16,
    rss: Option<RssConfig>,
    table: Option<ToeplitzTable>,
}

struct QueueState {
    port: usize,
    /// Free buffers; LIFO, so reuse is deterministic and cache-warm.
    pool: Vec<Box<[u8]>>,
    pool_total: usize,
    /// Delivered frames, visible to `rx_burst`, in delivery order.
    ready: VecDeque<MemoryFrame>,
    /// Frames this queue sent that still have deliveries pending; indexed by slot.
    in_flight: Vec<Option<InFlight>>,
    free_slots: Vec<usize>,
    /// When each frame in the transmit ring will have been serialised onto its link(s).
    tx_ring: BinaryHeap<Reverse<Instant>>,
    counters: QueueCounters,
    taken: bool,
}

struct InFlight {
    frame: MemoryFrame,
    pending: u32,
}

struct Link {
    impairments: Impairments,
    rng: ChaCha8Rng,
    /// When the link finishes sending the frames already given to it.
    busy_until: Instant,
}

/// One copy of one frame on its way to one queue.
struct Delivery {
    at: Instant,
    seq: u64,
    from_queue: usize,
    slot: usize,
    to_queue: usize,
    corrupt_bit: Option<usize>,
}

impl PartialEq for Delivery {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Delivery {}

impl PartialOrd for Delivery {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Delivery {
    /// Reversed, so that the max-heap pops the earliest delivery (ties in scheduling order).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One copy's arrival, as the link decided it.
#[derive(Clone, Copy)]
struct Arrival {
    at: Instant,
    corrupt_bit: Option<usize>,
}

/// Whether an event of probability `p` happens. Draws nothing for `p <= 0` (or NaN) and
/// `p >= 1`, so a perfect link consumes no randomness.
pub(crate) fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        // 53 uniform bits as a float in [0, 1).
        ((rng.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }
}

/// A uniform draw in `[0, n)` (0 if `n` is 0).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Link {
    fn new(seed: u64, from: usize, to: usize, impairments: Impairments) -> Link {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Each direction of each link draws from its own stream, so that traffic on one link
        // does not change the faults of another.
        rng.set_stream(((from as u64) << 32) | (to as u64 & 0xffff_ffff));
        Link {
            impairments,
            rng,
            busy_until: Instant::ZERO,
        }
    }

    /// Puts `len` bytes on the link at `now`; returns when the last byte has left.
    fn serialise(&mut self, now: Instant, len: usize) -> Instant {
        match self.impairments.bandwidth {
            None => now,
            Some(rate) => {
                let start = now.max(self.busy_until);
                let bits_ns = (len as u128) * 1_000_000_000;
                let rate = u128::from(rate.get());
                let ns = u64::try_from(bits_ns.div_ceil(rate)).unwrap_or(u64::MAX);
                self.busy_until = start + Duration::from_nanos(ns);
                self.busy_until
            }
        }
    }

    /// Decides the fate of one frame of `len` bytes sent at `now`: up to two arrivals, and when
    /// the link is done sending it. Counts the faults on `counters`.
    fn carry(
        &mut self,
        now: Instant,
        len: usize,
        counters: &mut QueueCounters,
    ) -> (Instant, [Option<Arrival>; 2]) {
        let mut sent = self.serialise(now, len);
        if chance(&mut self.rng, self.impairments.loss) {
            counters.lost += 1;
            return (sent, [None, None]);
        }
        let copies = if chance(&mut self.rng, self.impairments.duplicate) {
            counters.duplicated += 1;
            2
        } else {
            1
        };
        let mut arrivals = [None, None];
        for (copy, arrival) in arrivals.iter_mut().enumerate().take(copies) {
            if copy > 0 {
                sent = self.serialise(now, len);
            }
            let mut at = sent + self.impairments.delay;
            let jitter = nanos(self.impairments.jitter);
            if jitter > 0 {
                at += Duration::from_nanos(below(&mut self.rng, jitter.saturating_add(1)));
            }
            if chance(&mut self.rng, self.impairments.reorder) {
                counters.reordered += 1;
                at += self.impairments.reorder_delay;
            }
            let corrupt_bit = if chance(&mut self.rng, self.impairments.corrupt) {
                counters.corrupted += 1;
                Some(below(&mut self.rng, (len as u64) * 8) as usize)
            } else {
                None
            };
            *arrival = Some(Arrival { at, corrupt_bit });
        }
        (sent, arrivals)
    }
}

impl QueueState {
    fn new(port: usize, pool_size: usize, frame_size: usize, tx_ring_size: usize) -> QueueState {
        QueueState {
            port,
            pool: (0..pool_size)
                .map(|_| vec![0u8; frame_size].into_boxed_slice())
                .collect(),
            pool_total: pool_size,
            ready: VecDeque::with_capacity(pool_size),
            in_flight: (0..pool_size).map(|_| None).collect(),
            free_slots: (0..pool_size).rev().collect(),
            tx_ring: BinaryHeap::with_capacity(tx_ring_size),
            counters: QueueCounters::default(),
            taken: false,
        }
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            total: self.pool_total,
            free: self.pool.len(),
        }
    }
}

impl Core {
    fn new(config: WireConfig) -> Core {
        let max_frame_len = usize::from(config.mtu) + ETHERNET_HEADER_LEN;
        assert!(
            config.frame_size >= max_frame_len,
            "frame_size {} cannot hold an MTU {} frame",
            config.frame_size,
            config.mtu
        );
        assert!(config.tx_ring_size > 0, "tx_ring_size must be at least 1");
        Core {
            id: NEXT_WIRE_ID.fetch_add(1, AtomicOrdering::Relaxed),
            now: Instant::ZERO,
            frame_size: config.frame_size,
            max_frame_len,
            mtu: config.mtu,
            pool_size: config.pool_size,
            tx_ring_size: config.tx_ring_size,
            seed: config.seed,
            rss_key: config.rss_key,
            indirection_entries: config.indirection_entries,
            default_impairments: config.impairments,
            ports: Vec::new(),
            queues: Vec::new(),
            links: Vec::new(),
            deliveries: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    fn add_port(
        &mut self,
        mac: EthernetAddress,
        queue_count: u16,
        rss: Option<RssConfig>,
    ) -> PortId {
        assert!(queue_count > 0, "a port needs at least one queue");
        let rss = match rss {
            Some(rss) => {
                assert!(
                    rss.indirection.iter().all(|&q| q < queue_count),
                    "indirection table names a queue beyond {queue_count}"
                );
                Some(rss)
            }
            None if queue_count > 1 => Some(RssConfig {
                key: self.rss_key.clone(),
                indirection: round_robin_indirection(queue_count, self.indirection_entries),
            }),
            None => None,
        };
        let id = self.ports.len();
        let first_queue = self.queues.len();
        for _ in 0..queue_count {
            self.queues.push(QueueState::new(
                id,
                self.pool_size,
                self.frame_size,
                self.tx_ring_size,
            ));
        }
        self.ports.push(PortState {
            mac,
            first_queue,
            queue_count,
            table: rss.as_ref().map(|rss| ToeplitzTable::new(&rss.key)),
            rss,
        });

        // Links between all ordered pairs; existing ones keep their state.
        let n = self.ports.len();
        let mut old = core::mem::take(&mut self.links).into_iter();
        let mut links = Vec::with_capacity(n * n);
        for from in 0..n {
            for to in 0..n {
                let existing = if from < n - 1 && to < n - 1 {
                    old.next()
                } else {
                    None
                };
                links.push(existing.unwrap_or_else(|| {
                    Link::new(self.seed, from, to, self.default_impairments.clone())
                }));
            }
        }
        self.links = links;

        // Every in-flight frame has at most two copies per destination: room for unicast with
        // duplication plus some broadcast, reserved now so the data path never grows the heap.
        let target = 4 * self.queues.len() * self.pool_size;
        self.deliveries
            .reserve(target.saturating_sub(self.deliveries.len()));
        PortId(id)
    }

    fn queue_index(&self, port: PortId, queue: u16) -> Result<usize, WireError> {
        let p = self.ports.get(port.0).ok_or(WireError::UnknownPort)?;
        if queue >= p.queue_count {
            return Err(WireError::UnknownQueue);
        }
        Ok(p.first_queue + usize::from(queue))
    }

    fn capabilities(&self, port: PortId, queue: u16) -> Capabilities {
        let p = &self.ports[port.0];
        Capabilities {
            mac: p.mac,
            mtu: self.mtu,
            queue,
            queue_count: p.queue_count,
            rss: p.rss.clone(),
            checksum: ChecksumOffload::default(),
            pool_size: self.pool_size,
        }
    }

    pub(crate) fn advance_to(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for q in 0..self.queues.len() {
            self.expire_tx_ring(q);
        }
        self.deliver_due();
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.deliveries.peek().map(|d| d.at)
    }

    fn next_event(&self) -> Option<Instant> {
        let tx_room = self
            .queues
            .iter()
            .filter_map(|q| q.tx_ring.peek().map(|r| r.0))
            .filter(|&t| t > self.now)
            .min();
        match (self.next_delivery(), tx_room) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn next_tx_room(&self, queue: usize) -> Option<Instant> {
        let q = &self.queues[queue];
        if q.tx_ring.len() < self.tx_ring_size {
            return None;
        }
        q.tx_ring.peek().map(|r| r.0)
    }

    pub(crate) fn counters(&self, queue: usize) -> QueueCounters {
        self.queues[queue].counters
    }

    pub(crate) fn pool_stats(&self, queue: usize) -> PoolStats {
        self.queues[queue].pool_stats()
    }

    pub(crate) fn release_queue(&mut self, queue: usize) {
        if let Some(q) = self.queues.get_mut(queue) {
            q.taken = false;
        }
    }

    pub(crate) fn alloc_tx(&mut self, queue: usize) -> Option<MemoryFrame> {
        let wire = self.id;
        self.queues[queue].pool.pop().map(|buf| MemoryFrame {
            buf,
            len: 0,
            owner: queue,
            wire,
            checksums_verified: false,
        })
    }

    /// Returns a frame's buffer to its own pool. A frame of another wire, or one that would
    /// overfill its pool, is dropped instead (so a pool never grows on the data path).
    pub(crate) fn give_back(&mut self, frame: MemoryFrame) {
        if frame.wire != self.id || frame.buf.len() != self.frame_size {
            return;
        }
        if let Some(q) = self.queues.get_mut(frame.owner) {
            if q.pool.len() < q.pool_total {
                q.pool.push(frame.buf);
            }
        }
    }

    pub(crate) fn rx_burst(&mut self, queue: usize, batch: &mut Batch<MemoryFrame>) -> usize {
        self.deliver_due();
        let q = &mut self.queues[queue];
        let mut received = 0;
        while !batch.is_full() {
            match q.ready.pop_front() {
                Some(frame) => {
                    batch.push(frame);
                    received += 1;
                }
                None => break,
            }
        }
        received
    }

    pub(crate) fn tx_burst(&mut self, queue: usize, batch: &mut Batch<MemoryFrame>) -> usize {
        self.expire_tx_ring(queue);
        let mut sent = 0;
        let mut held = Batch::new();
        for frame in batch.drain(..) {
            // Once one frame finds no room, the rest wait too, so that order is kept.
            let frame = if held.is_empty() {
                match self.transmit(queue, frame) {
                    Ok(()) => {
                        sent += 1;
                        continue;
                    }
                    Err(frame) => frame,
                }
            } else {
                frame
            };
            // `held` has the capacity `batch` had, so this cannot fail.
            if let Err(e) = held.try_push(frame) {
                self.give_back(e.element());
            }
        }
        self.queues[queue].counters.tx_ring_full += held.len() as u64;
        *batch = held;
        self.deliver_due();
        sent
    }

    fn expire_tx_ring(&mut self, queue: usize) {
        let now = self.now;
        let ring = &mut self.queues[queue].tx_ring;
        while ring.peek().is_some_and(|r| r.0 <= now) {
            ring.pop();
        }
    }

    /// Puts one frame on the wire, or gives it back if there is no room for it.
    fn transmit(&mut self, queue: usize, frame: MemoryFrame) -> Result<(), MemoryFrame> {
        let now = self.now;
        let len = frame.len;
        if frame.wire != self.id || !(ETHERNET_HEADER_LEN..=self.max_frame_len).contains(&len) {
            self.queues[queue].counters.tx_invalid += 1;
            self.give_back(frame);
            return Ok(());
        }
        let from_port = self.queues[queue].port;
        let dst = EthernetAddress::from_bytes(&frame.buf[..6]);
        let group = dst.is_multicast();
        let reaches = |(i, p): &(usize, &PortState)| *i != from_port && (group || p.mac == dst);
        let destinations = self.ports.iter().enumerate().filter(reaches).count();

        let q = &mut self.queues[queue];
        let heap_room = self.deliveries.capacity() - self.deliveries.len();
        if q.tx_ring.len() >= self.tx_ring_size || heap_room < 2 * destinations {
            return Err(frame);
        }
        let Some(slot) = q.free_slots.pop() else {
            return Err(frame);
        };
        q.counters.tx_frames += 1;
        q.counters.tx_bytes += len as u64;
        if destinations == 0 {
            q.counters.tx_no_destination += 1;
        }

        let input = hash_input(frame.data());
        let n = self.ports.len();
        let mut pending = 0u32;
        let mut done_sending = now;
        for (to_port, port) in self.ports.iter().enumerate() {
            if to_port == from_port || !(group || port.mac == dst) {
                continue;
            }
            let rx_queue = queue_for_input(port.rss.as_ref(), port.table.as_ref(), &input)
                .min(port.queue_count - 1);
            let to_queue = port.first_queue + usize::from(rx_queue);
            let link = &mut self.links[from_port * n + to_port];
            let (sent, arrivals) = link.carry(now, len, &mut self.queues[to_queue].counters);
            done_sending = done_sending.max(sent);
            for arrival in arrivals.into_iter().flatten() {
                self.deliveries.push(Delivery {
                    at: arrival.at,
                    seq: self.next_seq,
                    from_queue: queue,
                    slot,
                    to_queue,
                    corrupt_bit: arrival.corrupt_bit,
                });
                self.next_seq += 1;
                pending += 1;
            }
        }

        let q = &mut self.queues[queue];
        if done_sending > now {
            q.tx_ring.push(Reverse(done_sending));
        }
        if pending == 0 {
            q.free_slots.push(slot);
            self.give_back(frame);
        } else {
            q.in_flight[slot] = Some(InFlight { frame, pending });
        }
        Ok(())
    }

    fn deliver_due(&mut self) {
        while self.deliveries.peek().is_some_and(|d| d.at <= self.now) {
            if let Some(d) = self.deliveries.pop() {
                self.deliver(d);
            }
        }
    }

    /// Copies one frame into a buffer of the receiving queue: the one copy the wire makes.
    fn deliver(&mut self, d: Delivery) {
        let buf = self.queues[d.to_queue].pool.pop();
        let Some(in_flight) = self.queues[d.from_queue].in_flight[d.slot].as_mut() else {
            // Cannot happen: a slot stays occupied while deliveries name it.
            if let Some(buf) = buf {
                self.queues[d.to_queue].pool.push(buf);
            }
            return;
        };
        let len = in_flight.frame.len;
        let received = buf.map(|mut buf| {
            buf[..len].copy_from_slice(&in_flight.frame.buf[..len]);
            if let Some(bit) = d.corrupt_bit {
                if let Some(byte) = buf.get_mut(bit / 8) {
                    *byte ^= 1 << (bit % 8);
                }
            }
            MemoryFrame {
                buf,
                len,
                owner: d.to_queue,
                wire: self.id,
                // This wire can corrupt frames: the receiver verifies every checksum.
                checksums_verified: false,
            }
        });
        in_flight.pending -= 1;
        let finished = in_flight.pending == 0;

        let to = &mut self.queues[d.to_queue];
        match received {
            Some(frame) => {
                to.counters.rx_frames += 1;
                to.counters.rx_bytes += len as u64;
                to.ready.push_back(frame);
            }
            None => to.counters.rx_nombuf += 1,
        }
        if finished {
            let from = &mut self.queues[d.from_queue];
            if let Some(done) = from.in_flight[d.slot].take() {
                from.free_slots.push(d.slot);
                self.give_back(done.frame);
            }
        }
    }
}
