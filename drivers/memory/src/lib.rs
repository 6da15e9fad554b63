//! shardnet's in-process memory wire: ports with multi-queue RSS, joined by links with seeded
//! loss, duplication, reordering, delay, jitter, corruption and bandwidth limits.
//!
//! It serves as the test bed (two or more stacks in one process, stepped on a virtual clock)
//! and as the driver that needs no privileges. [`Wire`] is the single-threaded, virtual-time
//! wire of the simulations; [`threaded::ThreadedWire`] is a thread-safe, real-time wire for
//! the runtime (see [Threads](#threads)).
//!
//! ```
//! use shardnet::port::{Batch, Frame, Port};
//! use shardnet::time::{Duration, Instant};
//! use shardnet::wire::EthernetAddress;
//! use shardnet_memory::{Impairments, Wire, WireConfig};
//!
//! let wire = Wire::new(WireConfig {
//!     seed: 42,
//!     impairments: Impairments { delay: Duration::from_millis(1), ..Impairments::NONE },
//!     ..WireConfig::default()
//! });
//! let (mac_a, mac_b) = (EthernetAddress([2, 0, 0, 0, 0, 1]), EthernetAddress([2, 0, 0, 0, 0, 2]));
//! let a = wire.add_port(mac_a, 1);
//! let b = wire.add_port(mac_b, 1);
//! let mut pa = wire.port(a, 0).unwrap();
//! let mut pb = wire.port(b, 0).unwrap();
//!
//! // A writes a frame in place and sends it at t = 0.
//! let mut frame = pa.alloc_tx().unwrap();
//! frame.buffer_mut()[..6].copy_from_slice(mac_b.as_bytes());
//! frame.buffer_mut()[6..12].copy_from_slice(mac_a.as_bytes());
//! frame.set_len(60);
//! let mut tx = Batch::new();
//! tx.push(frame);
//! assert_eq!(pa.tx_burst(&mut tx), 1);
//!
//! // B sees it once the virtual clock reaches the delivery time.
//! let mut rx = Batch::new();
//! assert_eq!(pb.rx_burst(&mut rx), 0);
//! assert_eq!(wire.next_delivery(), Some(Instant::from_millis(1)));
//! wire.advance_to(Instant::from_millis(1));
//! assert_eq!(pb.rx_burst(&mut rx), 1);
//! for frame in rx.drain(..) {
//!     pb.release(frame);
//! }
//! assert!(wire.all_pools_full());
//! ```
//!
//! # Model
//!
//! A [`Wire`] is an Ethernet segment. [`Wire::add_port`] attaches a device with a MAC address
//! and one or more queue pairs; [`Wire::port`] hands out queue pair `q` of a port as a
//! [`MemoryPort`], which implements [`shardnet::port::Port`].
//!
//! - **Pools.** Every queue pair has a pool of [`WireConfig::pool_size`] buffers of
//!   [`WireConfig::frame_size`] bytes, allocated when the port is added. Nothing on the data
//!   path allocates: frames are owned buffers moved between the pool, the stack and the wire,
//!   and every queue, heap and ring the wire keeps is sized when a port is added.
//! - **Transmit.** `alloc_tx` takes a buffer from the sender's pool, `tx_burst` puts frames on
//!   the wire. A frame stays in flight, holding its sender's buffer, until its last copy has
//!   been delivered; then the buffer returns to the sender's pool (a transmit completion).
//! - **Delivery.** A frame goes to every *other* port whose MAC is its destination, or to
//!   every other port for a broadcast or multicast destination. Each (sender, receiver) pair
//!   of ports is a link of its own, in each direction, with its own [`Impairments`].
//! - **Receive.** On arrival the frame is copied, the only copy the wire makes, like a NIC's
//!   DMA, into a buffer from the pool of the receiving queue chosen by RSS; if that pool is
//!   empty the frame is dropped and counted as `rx_nombuf`. `rx_burst` hands delivered frames
//!   out in arrival order; `release` gives buffers back.
//! - **Backpressure.** A queue's transmit ring holds the frames still being serialised onto a
//!   rate-limited link; when [`WireConfig::tx_ring_size`] of them are waiting (or every buffer
//!   of the sender's pool is in flight), `tx_burst` leaves the remaining frames in the batch.
//!   An unlimited link serialises instantly and never fills the ring.
//!
//! # RSS
//!
//! A port with several queues spreads received frames like a NIC: the Toeplitz hash
//! ([`shardnet::shard::rss`]) of the IPv4 source and destination addresses and, for unfragmented
//! TCP and UDP, the source and destination ports, looked up in an indirection table
//! (`queue = table[hash % table.len()]`). Frames that are not IPv4, or too short or malformed to
//! read, go to queue 0 ([`classify`] reads any bytes without panicking). In particular **ARP
//! always arrives on queue 0**: a stack with several shards must handle ARP on the shard of
//! queue 0 and share the results (or forward frames) with the others.
//!
//! By default a port uses [`WireConfig::rss_key`] (Microsoft's verification key unless
//! configured, e.g. with [`shardnet::shard::rss::SYMMETRIC_KEY`]) and a round-robin table of
//! [`WireConfig::indirection_entries`] entries; [`Wire::add_port_with_rss`] takes any key and
//! table. [`shardnet::port::Capabilities::rss`] reports exactly what the port uses, so the stack
//! can predict the queue of a flow (`None` for a single-queue port added with `add_port`).
//!
//! # Time and determinism
//!
//! The wire reads no clock. Its time moves only when the caller says so, with
//! [`Wire::advance_to`] or [`MemoryPort::set_now`] (the `Port` trait's `rx_burst` takes no time,
//! so the driver loop sets it first). A frame sent at time `t` is delivered at
//! `t + serialisation + delay + jitter (+ reorder delay)`, and `rx_burst` sees it only once the
//! wire's time has reached that; [`Wire::next_delivery`] and [`Wire::next_event`] tell a
//! simulation where to jump its virtual clock.
//!
//! Every random decision comes from ChaCha8 streams seeded from [`WireConfig::seed`], one stream
//! per direction of each link. The same seed and the same sequence of calls give the same frames
//! at the same times, byte for byte; ties between frames due at the same instant are broken in
//! the order they were sent.
//!
//! # Threads
//!
//! [`Wire`] is single-threaded: [`Wire`] and [`MemoryPort`] share one `Rc<RefCell<..>>` state,
//! and neither is `Send`. That is the simplest design in which one test owns the whole wire and
//! all its ports and steps them in an exact, reproducible order, which is what the simulations
//! need. No lock is taken: each call borrows the state once, and nothing holds a borrow between
//! calls.
//!
//! For the runtime, one shard thread per queue in real time, the [`threaded`] module has a
//! second wire, [`threaded::ThreadedWire`], whose [`threaded::ThreadedPort`]s are `Send`. It
//! moves the same [`MemoryFrame`]s, delivers by the same MAC and RSS rules, and keeps its
//! counters in atomics. It has no clock and no impairments other than a seeded loss: a frame
//! is delivered while its sender's `tx_burst` runs. Each queue has a bounded lock-free pool of
//! buffers and a bounded lock-free receive ring (crossbeam's `ArrayQueue`); the sender copies
//! each frame into a buffer of the receiving queue's pool (like a NIC's DMA) and pushes it onto
//! that queue's ring, and drops at the receiver (no buffer, ring full) are counted there, as a
//! NIC counts them. Nothing on its data path locks or allocates. A port can register a thread
//! to unpark when frames arrive ([`shardnet::port::Port::set_rx_waker`]), so an idle shard may
//! sleep; the module documentation gives the wakeup protocol. What it gives up is determinism
//! across threads: only the loss decisions of each sending queue are reproducible.
//!
//! # Faults on any port
//!
//! [`Impaired`] wraps any [`shardnet::port::Port`] (AF_XDP, DPDK, this wire's ports) and
//! applies seeded loss, duplication, reordering, delay and corruption to what it receives and
//! transmits, with the same [`Impairments`] type: the interop tests use it where `tc netem` is
//! not available.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod classify;
mod config;
mod frame;
pub mod impaired;
mod port;
pub mod sim;
pub mod threaded;
mod wire;

pub use config::{Impairments, WireConfig};
pub use frame::MemoryFrame;
pub use impaired::{Impaired, ImpairedConfig, ImpairedCounters, ImpairedError};
pub use port::MemoryPort;
pub use wire::{PortId, QueueCounters, Wire, WireError};
