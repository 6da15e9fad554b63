//! The threaded wire's shared state: configuration, the topology snapshot (ports, queues and
//! the pairs of queues with their rings), and per-queue pools, counters and wakers.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use shardnet::port::{Capabilities, ChecksumOffload, PoolStats, RssConfig};
use shardnet::shard::rss::{ToeplitzTable, round_robin_indirection};
use shardnet::wire::EthernetAddress;

use super::lanes::Lanes;
use super::pair::Pair;
use super::port::ThreadedPort;
use super::{ThreadedCounters, ThreadedWireConfig, TxAtomics};
use crate::classify::ETHERNET_HEADER_LEN;
use crate::wire::{NEXT_WIRE_ID, PortId, WireError};

/// Locks `mutex`, recovering the data if a thread panicked while holding it (every value
/// behind the wire's mutexes is valid at all times).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One queue pair: everything any thread may touch, all of it lock-free except the waker, the
/// parked loss stream and the spare lane vectors (see the module docs for when those are
/// locked). Its receive rings live in the [`Pair`]s of the topology, one per sending queue.
pub(crate) struct QueueShared {
    /// Free buffers. Senders take from it to deliver; the owner takes from it to transmit;
    /// whoever releases a frame of this queue gives its buffer back.
    pub(crate) pool: ArrayQueue<Box<[u8]>>,
    pub(crate) pool_total: usize,
    /// Free buffers of this pool that the queue's port keeps for its own transmissions (see
    /// `ThreadedPort::alloc_tx`): written only by that port, counted as free.
    pub(crate) cached: CachePadded<AtomicUsize>,
    /// The transmit counters, written only by the queue's port.
    pub(crate) tx: CachePadded<TxAtomics>,
    /// Set by the receiver when it found the ring empty and may park; cleared by the sender
    /// that wakes it.
    pub(crate) sleeping: AtomicBool,
    pub(crate) waker: Mutex<Option<Thread>>,
    /// Whether a [`ThreadedPort`] for this queue exists.
    pub(crate) taken: AtomicBool,
    /// The loss stream of this queue while no [`ThreadedPort`] holds it.
    pub(crate) rng: Mutex<Option<ChaCha8Rng>>,
    /// Empty lane vectors with room for every queue of the wire, left here by
    /// [`ThreadedWire::add_port`] for this queue's port to move its ring ends into when it
    /// picks up the new topology, without allocating (see [`Lanes::update`]).
    pub(crate) spare: Mutex<Lanes>,
}

impl QueueShared {
    fn new(pool_size: usize, frame_size: usize, rng: ChaCha8Rng) -> QueueShared {
        let pool = ArrayQueue::new(pool_size);
        for _ in 0..pool_size {
            // The queue has room for exactly `pool_size` buffers.
            let _ = pool.push(vec![0u8; frame_size].into_boxed_slice());
        }
        QueueShared {
            pool,
            pool_total: pool_size,
            cached: CachePadded::new(AtomicUsize::new(0)),
            tx: CachePadded::new(TxAtomics::default()),
            sleeping: AtomicBool::new(false),
            waker: Mutex::new(None),
            taken: AtomicBool::new(false),
            rng: Mutex::new(Some(rng)),
            spare: Mutex::new(Lanes::default()),
        }
    }

    pub(crate) fn pool_stats(&self) -> PoolStats {
        PoolStats {
            total: self.pool_total,
            free: self.pool.len() + self.cached.load(Ordering::Relaxed),
        }
    }

    /// Unparks the registered receiver thread, if any.
    pub(crate) fn wake(&self) {
        if let Some(thread) = lock(&self.waker).as_ref() {
            thread.unpark();
        }
    }
}

/// A port as senders see it: where frames for it go.
pub(crate) struct PortEntry {
    pub(crate) mac: EthernetAddress,
    pub(crate) first_queue: usize,
    pub(crate) queue_count: u16,
    pub(crate) rss: Option<RssConfig>,
    pub(crate) table: Option<ToeplitzTable>,
}

/// The ports and queues of the wire at one moment. Immutable: adding a port builds a new one
/// (the queues and pairs that were there are shared with the old one).
pub(crate) struct Topology {
    pub(crate) ports: Vec<Arc<PortEntry>>,
    /// Every queue of every port; a port's queues are `first_queue..first_queue + count`.
    pub(crate) queues: Vec<Arc<QueueShared>>,
    /// `rows[from][to]`: the pair from queue `from` to queue `to`; `None` when both are queues
    /// of one port (a port never sends to itself).
    pub(crate) rows: Vec<Vec<Option<Arc<Pair>>>>,
    /// `columns[to]`: every pair into queue `to`, in order of sending queue.
    pub(crate) columns: Vec<Vec<Arc<Pair>>>,
}

impl Topology {
    /// The counters of queue `index`: its transmit counters and the receive counters of every
    /// pair into it.
    pub(crate) fn counters(&self, index: usize) -> ThreadedCounters {
        let mut sum = ThreadedCounters::default();
        if let Some(q) = self.queues.get(index) {
            q.tx.add_to(&mut sum);
        }
        for pair in self.columns.get(index).map_or(&[][..], Vec::as_slice) {
            pair.add_rx_to(&mut sum);
        }
        sum
    }

    /// Frames waiting in the rings into queue `index`.
    pub(crate) fn rx_pending(&self, index: usize) -> usize {
        let column = self.columns.get(index).map_or(&[][..], Vec::as_slice);
        column.iter().map(|pair| pair.pending()).sum()
    }

    fn queue_index(&self, port: PortId, queue: u16) -> Result<usize, WireError> {
        let p = self.ports.get(port.0).ok_or(WireError::UnknownPort)?;
        if queue >= p.queue_count {
            return Err(WireError::UnknownQueue);
        }
        Ok(p.first_queue + usize::from(queue))
    }
}

/// What every handle of one wire shares.
pub(crate) struct Shared {
    /// Identity of this wire, so that frames of another wire are recognised.
    pub(crate) id: u64,
    pub(crate) frame_size: usize,
    pub(crate) max_frame_len: usize,
    pub(crate) loss: f64,
    /// [`ThreadedWireConfig::checksum_offload`].
    pub(crate) checksum_offload: bool,
    mtu: u16,
    pool_size: usize,
    ring_size: usize,
    seed: u64,
    rss_key: Vec<u8>,
    indirection_entries: usize,
    topology: Mutex<Arc<Topology>>,
    /// Bumped (under the topology mutex) each time the topology is replaced.
    version: AtomicU64,
}

impl Shared {
    /// The current version number, cheap enough to compare on every burst.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current topology and its version.
    pub(crate) fn snapshot(&self) -> (u64, Arc<Topology>) {
        let topology = lock(&self.topology);
        (self.version.load(Ordering::Acquire), Arc::clone(&topology))
    }
}

/// A thread-safe in-process Ethernet segment; see the [module documentation](super).
///
/// `ThreadedWire` is a handle: clones refer to the same wire, and it is `Send + Sync`.
#[derive(Clone)]
pub struct ThreadedWire {
    shared: Arc<Shared>,
}

impl fmt::Debug for ThreadedWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (version, topology) = self.shared.snapshot();
        f.debug_struct("ThreadedWire")
            .field("id", &self.shared.id)
            .field("ports", &topology.ports.len())
            .field("queues", &topology.queues.len())
            .field("version", &version)
            .finish()
    }
}

impl ThreadedWire {
    /// A wire with no ports.
    ///
    /// # Panics
    ///
    /// If `config.frame_size < config.mtu + 14`, or `config.pool_size` or `config.ring_size`
    /// is 0.
    pub fn new(config: ThreadedWireConfig) -> ThreadedWire {
        let max_frame_len = usize::from(config.mtu) + ETHERNET_HEADER_LEN;
        assert!(
            config.frame_size >= max_frame_len,
            "frame_size {} cannot hold an MTU {} frame",
            config.frame_size,
            config.mtu
        );
        assert!(config.pool_size > 0, "pool_size must be at least 1");
        assert!(config.ring_size > 0, "ring_size must be at least 1");
        let loss = if config.loss.is_nan() {
            0.0
        } else {
            config.loss.clamp(0.0, 1.0)
        };
        ThreadedWire {
            shared: Arc::new(Shared {
                id: NEXT_WIRE_ID.fetch_add(1, Ordering::Relaxed),
                frame_size: config.frame_size,
                max_frame_len,
                loss,
                checksum_offload: config.checksum_offload,
                mtu: config.mtu,
                pool_size: config.pool_size,
                ring_size: config.ring_size,
                seed: config.seed,
                rss_key: config.rss_key,
                indirection_entries: config.indirection_entries,
                topology: Mutex::new(Arc::new(Topology {
                    ports: Vec::new(),
                    queues: Vec::new(),
                    rows: Vec::new(),
                    columns: Vec::new(),
                })),
                version: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> ThreadedWire {
        ThreadedWire { shared }
    }

    /// Adds a port with MAC address `mac` and `queue_count` queue pairs. A port with several
    /// queues uses the wire's RSS key and a round-robin indirection table; a single-queue port
    /// has no RSS ([`Capabilities::rss`] of `None`).
    ///
    /// Best called before any queue is taken; later calls work too (see the module docs).
    ///
    /// # Panics
    ///
    /// If `queue_count` is 0.
    pub fn add_port(&self, mac: EthernetAddress, queue_count: u16) -> PortId {
        let rss = (queue_count > 1).then(|| RssConfig {
            key: self.shared.rss_key.clone(),
            indirection: round_robin_indirection(queue_count, self.shared.indirection_entries),
        });
        self.insert_port(mac, queue_count, rss)
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
        assert!(
            rss.indirection.iter().all(|&q| q < queue_count),
            "indirection table names a queue beyond {queue_count}"
        );
        self.insert_port(mac, queue_count, Some(rss))
    }

    fn insert_port(
        &self,
        mac: EthernetAddress,
        queue_count: u16,
        rss: Option<RssConfig>,
    ) -> PortId {
        assert!(queue_count > 0, "a port needs at least one queue");
        let s = &self.shared;
        let mut current = lock(&s.topology);
        let id = current.ports.len();
        let first_queue = current.queues.len();
        let mut queues = current.queues.clone();
        for queue in 0..queue_count {
            let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
            // Each sending queue draws from a stream of its own.
            rng.set_stream(((id as u64) << 16) | u64::from(queue));
            queues.push(Arc::new(QueueShared::new(s.pool_size, s.frame_size, rng)));
        }
        let total = queues.len();
        let own = first_queue..total;
        // Rings both ways between every new queue and every queue of the other ports.
        let mut rows = current.rows.clone();
        for (from, row) in rows.iter_mut().enumerate() {
            row.extend(
                own.clone()
                    .map(|_| Some(Arc::new(Pair::new(from, s.ring_size)))),
            );
        }
        for from in own.clone() {
            let mut row = vec![None; total];
            for slot in row.iter_mut().take(first_queue) {
                *slot = Some(Arc::new(Pair::new(from, s.ring_size)));
            }
            rows.push(row);
        }
        let columns = (0..total)
            .map(|to| rows.iter().filter_map(|row| row[to].clone()).collect())
            .collect();
        // Room for the queues' ports to take the new rings' ends without allocating.
        for q in &queues[..first_queue] {
            *lock(&q.spare) = Lanes {
                row: Vec::with_capacity(total),
                column: Vec::with_capacity(total),
            };
        }
        let mut ports = current.ports.clone();
        ports.push(Arc::new(PortEntry {
            mac,
            first_queue,
            queue_count,
            table: rss.as_ref().map(|rss| ToeplitzTable::new(&rss.key)),
            rss,
        }));
        *current = Arc::new(Topology {
            ports,
            queues,
            rows,
            columns,
        });
        s.version.fetch_add(1, Ordering::AcqRel);
        PortId(id)
    }

    /// The driver handle of queue pair `queue` of `port`, to be moved to the thread that drives
    /// it. Each queue has at most one live [`ThreadedPort`]; once that is dropped, the queue can
    /// be taken again (frames that arrived meanwhile are still in its rings).
    pub fn port(&self, port: PortId, queue: u16) -> Result<ThreadedPort, WireError> {
        let (version, topology) = self.shared.snapshot();
        let index = topology.queue_index(port, queue)?;
        let q = Arc::clone(&topology.queues[index]);
        if q.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(WireError::QueueTaken);
        }
        let entry = &topology.ports[port.0];
        let capabilities = Capabilities {
            mac: entry.mac,
            mtu: self.shared.mtu,
            queue,
            queue_count: entry.queue_count,
            rss: entry.rss.clone(),
            checksum: ChecksumOffload {
                rx_ipv4: self.shared.checksum_offload,
                rx_l4: self.shared.checksum_offload,
                tx_ipv4: self.shared.checksum_offload,
                tx_l4: self.shared.checksum_offload,
            },
            pool_size: self.shared.pool_size,
        };
        let rng = lock(&q.rng).take().unwrap_or_else(|| {
            // Only if a previous owner panicked while holding the stream: start it again.
            let mut rng = ChaCha8Rng::seed_from_u64(self.shared.seed);
            rng.set_stream(((port.0 as u64) << 16) | u64::from(queue));
            rng
        });
        let lanes = Lanes::take(index, &topology);
        Ok(ThreadedPort::new(
            Arc::clone(&self.shared),
            lanes,
            topology,
            version,
            port,
            index,
            q,
            capabilities,
            rng,
        ))
    }

    /// The loss probability in effect (the configured one, clamped to `[0, 1]`).
    pub fn loss(&self) -> f64 {
        self.shared.loss
    }

    /// The number of ports.
    pub fn port_count(&self) -> usize {
        self.shared.snapshot().1.ports.len()
    }

    /// The number of queue pairs of `port`.
    pub fn queue_count(&self, port: PortId) -> Result<u16, WireError> {
        let (_, topology) = self.shared.snapshot();
        topology
            .ports
            .get(port.0)
            .map(|p| p.queue_count)
            .ok_or(WireError::UnknownPort)
    }

    fn with_queue<T>(
        &self,
        port: PortId,
        queue: u16,
        f: impl FnOnce(&Topology, usize) -> T,
    ) -> Result<T, WireError> {
        let (_, topology) = self.shared.snapshot();
        let index = topology.queue_index(port, queue)?;
        Ok(f(&topology, index))
    }

    /// The counters of queue pair `queue` of `port`. The counters themselves are atomics read
    /// without a lock; finding the queue briefly locks the topology (a port's own
    /// [`ThreadedPort::counters`] does not).
    pub fn counters(&self, port: PortId, queue: u16) -> Result<ThreadedCounters, WireError> {
        self.with_queue(port, queue, Topology::counters)
    }

    /// The counters of all queues of `port`, summed.
    pub fn port_counters(&self, port: PortId) -> Result<ThreadedCounters, WireError> {
        let (_, topology) = self.shared.snapshot();
        let p = topology.ports.get(port.0).ok_or(WireError::UnknownPort)?;
        let mut sum = ThreadedCounters::default();
        for index in p.first_queue..p.first_queue + usize::from(p.queue_count) {
            sum += topology.counters(index);
        }
        Ok(sum)
    }

    /// The counters of every queue of every port, summed.
    pub fn total_counters(&self) -> ThreadedCounters {
        let (_, topology) = self.shared.snapshot();
        let mut sum = ThreadedCounters::default();
        for index in 0..topology.queues.len() {
            sum += topology.counters(index);
        }
        sum
    }

    /// The pool occupancy of queue pair `queue` of `port`.
    pub fn pool_stats(&self, port: PortId, queue: u16) -> Result<PoolStats, WireError> {
        self.with_queue(port, queue, |t, index| t.queues[index].pool_stats())
    }

    /// Frames waiting in the receive rings of queue pair `queue` of `port`: delivered minus
    /// taken, counted per ring by its two ends (the wire cannot look into a ring whose consumer
    /// a port holds). Exact once the threads are quiet; while frames move, a few frames off.
    pub fn rx_pending(&self, port: PortId, queue: u16) -> Result<usize, WireError> {
        self.with_queue(port, queue, Topology::rx_pending)
    }

    /// Whether every pool of the wire is full: no frame held by a port's owner or waiting in a
    /// receive ring. The end-of-test leak check, meaningful once the threads are quiet.
    pub fn all_pools_full(&self) -> bool {
        let (_, topology) = self.shared.snapshot();
        topology
            .queues
            .iter()
            .all(|q| q.pool.len() + q.cached.load(Ordering::Relaxed) == q.pool_total)
    }
}
