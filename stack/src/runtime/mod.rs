//! The runtime: N shards on N threads, each pinned to a core, each owning one [`Shard`], one
//! port (a NIC queue pair) and one [`App`]. This is the only module of the crate that spawns
//! threads, reads a clock or makes system calls (design rule 1).
//!
//! # One loop iteration of one shard
//!
//! 1. read the monotonic clock once (`now`, nanoseconds since the runtime's epoch);
//! 2. handle [`Control`] messages (listen, run a closure, stats, stop);
//! 3. receive a burst from the port; for each frame compute its owner
//!    ([`crate::shard::ownership`]): handle it here, forward it to the owning shard, or (ARP)
//!    both; the burst's frames are *held* (not given back yet);
//! 4. handle frames other shards forwarded here;
//! 5. call the app's [`App::step`], which reads TCP data still in the held frames in place
//!    ([`AppContext::sockets`]);
//! 6. copy what the app left in the frames into the receive buffers
//!    ([`Shard::spill_in_place`]) and give the burst's frames back to the pool;
//! 7. [`Shard::handle_timeout`];
//! 8. [`Shard::poll_transmit`] into a [`TxBatcher`], then the port's transmit burst;
//! 9. publish the counters for [`Runtime::stats`] every [`RuntimeConfig::stats_interval`];
//! 10. if nothing happened, apply the [`IdlePolicy`]: under [`IdlePolicy::Sleep`], poll on
//!     until [`RuntimeConfig::busy_poll`] has passed since the last work, then arm the port's
//!     rx waker ([`Port::arm_rx_waker`]) and park until the next deadline or frame.
//!
//! # Zero-copy receive
//!
//! Holding the burst through the app step is what lets received TCP data reach the app
//! without a copy: the shard leaves in-order data in the frames (`shard/tcp/in_place.rs`),
//! [`AppContext::sockets`] lends the frames to `recv_with`, and whatever the app did not read
//! is copied into the receive buffers after the step, before the frames return to the pool. A
//! shard so holds at most one burst ([`crate::port::BURST`] frames) across its app step: the
//! frames it held anyway while handling the burst. Frames forwarded from other shards arrive
//! in the runtime's own recycled buffers and take the copy path.
//!
//! # Wrong-shard forwarding
//!
//! Design rules 4 and 5: a flow belongs to the shard whose queue the Toeplitz hash of its
//! 4-tuple selects, through the RSS key and indirection table the runtime *believes*
//! ([`RuntimeConfig::rss_override`], else the port's [`Capabilities::rss`]). Active opens pick
//! ports steered by that belief ([`Shard::set_rss`]). When the NIC disagrees (no RSS
//! information, a different table, a test forcing a mismatch), frames land on the wrong queue:
//! the receiving shard copies them into a recycled forwarding buffer and pushes them to the
//! owner's bounded inbox (counted as [`RuntimeCounters::misdirected`] and
//! [`RuntimeCounters::forwarded_out`], or [`RuntimeCounters::forward_drops`] if the owner's
//! inbox or the sender's buffers are exhausted). ARP frames go to every shard, because a NIC
//! delivers ARP to one queue while every shard keeps its own ARP cache
//! ([`RuntimeCounters::arp_replicated_out`]).
//!
//! # Shutdown
//!
//! [`Runtime::stop`] (or [`Control::Stop`], or every control sender gone) makes each shard call
//! [`App::shutdown`], close its listeners and gracefully close every connection the app still
//! holds, then keep polling until no connection has anything left to exchange (closed or in
//! TIME-WAIT) and no transmit is due, or until [`RuntimeConfig::grace`] has passed: what remains
//! is then reset, the resets are flushed, and the thread ends, returning its final counters in a
//! [`ShardExit`].

mod forward;
mod prefetch;
mod published;

pub use published::ShardSnapshot;

use crate::port::{BURST, Batch, Capabilities, Frame, Port, RssConfig, TxBatcher};
use crate::shard::bind_table::BindTable;
use crate::shard::ownership::{FlowOwnership, Owner};
use crate::shard::tcp::{ListenError, ListenHandle};
use crate::shard::{Shard, ShardConfig, Stats};
use crate::time::{Duration, Instant};
use arrayvec::ArrayVec;
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use forward::{Fabric, Kind};
use published::Published;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// What a shard thread does when an iteration found no work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Spin: lowest latency, one core at 100% per shard.
    BusyPoll,
    /// `std::thread::yield_now` after an idle iteration: other threads on the core run.
    Yield,
    /// Park until the next timer ([`Shard::poll_timeout`]), a received frame (the port's rx
    /// waker), a forwarded frame or a control message, but never longer than `max`. Ports
    /// without an rx waker cap each sleep at [`RuntimeConfig::no_waker_sleep`].
    Sleep {
        /// The longest single sleep.
        max: Duration,
    },
}

/// Which cores the shard threads are pinned to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// No pinning: the OS scheduler places the threads.
    None,
    /// Shard `i` on the `i`-th core the OS reports (modulo the core count).
    Auto,
    /// Shard `i` on core id `cores[i % cores.len()]`.
    Cores(Vec<usize>),
}

/// What became of a shard thread's pinning request. A failed pin is reported, not fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// Pinning was not asked for.
    NotRequested,
    /// Pinned to this core id.
    Pinned(usize),
    /// The OS refused to pin to this core id; the thread runs unpinned.
    Failed(usize),
    /// The OS reported no cores (or an empty [`Pinning::Cores`] list); the thread runs unpinned.
    NoCores,
}

/// How a runtime runs its shards.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The template of every shard's configuration (the interface is the device's, shared by
    /// all its queues). Its checksum offloads are replaced by the port's, and its `isn_key` by
    /// [`RuntimeConfig::isn_key`] or a random one.
    pub shard: ShardConfig,
    /// The secret key of the ISN generator and flow-table hash. `None` (the default): each
    /// shard gets its own key from the OS random source (`getrandom`), as RFC 6528 asks. Set
    /// it only for reproducible runs (tests, benchmarks): every shard then uses this key, and
    /// peers that know it can predict sequence numbers.
    pub isn_key: Option<[u8; 16]>,
    /// What an idle shard does.
    pub idle: IdlePolicy,
    /// Core pinning.
    pub pinning: Pinning,
    /// The RSS configuration to believe instead of the port's (for NICs that report none, and
    /// for tests that force a mismatch with what the device really does). With several shards,
    /// no override and a port that reports no RSS, the runtime believes a software RSS
    /// (Microsoft's key, a round-robin table over the queues): connects are steered by it and
    /// every frame the device delivers elsewhere is forwarded to the shard it names, so flows
    /// never split between shards and no two shards pick the same 4-tuple.
    pub rss_override: Option<RssConfig>,
    /// How long a stopping shard lets its connections close gracefully before resetting them.
    pub grace: Duration,
    /// How often a shard publishes its counters for [`Runtime::stats`] (and always before it
    /// sleeps).
    pub stats_interval: Duration,
    /// How often each shard replaces its SYN-cookie secret and its Fast Open cookie key with
    /// fresh ones from the OS random source (`None`: never). Cookies made under the previous
    /// secret stay valid for their lifetime, and Fast Open cookies under the previous key for
    /// one more period, so rotation breaks no handshake in progress. Not done when
    /// [`RuntimeConfig::isn_key`] is set (reproducible runs keep every secret fixed).
    pub secret_rotation: Option<Duration>,
    /// Frames each shard's forwarding inbox holds.
    pub forward_queue_len: usize,
    /// Forwarding buffers per shard (each holds one frame of the interface MTU).
    pub forward_buffers: usize,
    /// The sleep cap of [`IdlePolicy::Sleep`] on ports without an rx waker.
    pub no_waker_sleep: Duration,
    /// Under [`IdlePolicy::Sleep`]: after its last work, an idle shard keeps polling (spinning;
    /// yielding the core to other threads was measured far worse on a shared core) for this
    /// long before it sleeps, so that an answer arriving within a round trip is taken without
    /// a wake-up; zero sleeps at once. Linux's
    /// `net.core.busy_poll` / `SO_BUSY_POLL` does the same for a socket waiting for data (off
    /// by default there and here; the Linux documentation recommends 50 us). It matters most on
    /// ports without an rx waker, whose sleeps are [`RuntimeConfig::no_waker_sleep`] long.
    pub busy_poll: Duration,
    /// How long [`Runtime::start`], [`Runtime::listen`] and [`Runtime::collect_stats`] wait for
    /// the shards to answer.
    pub control_timeout: Duration,
}

impl RuntimeConfig {
    /// Defaults around a shard configuration: random keys, [`IdlePolicy::BusyPoll`],
    /// [`Pinning::Auto`], the port's RSS, 1 s grace, counters published every millisecond.
    pub fn new(shard: ShardConfig) -> Self {
        RuntimeConfig {
            shard,
            isn_key: None,
            idle: IdlePolicy::BusyPoll,
            pinning: Pinning::Auto,
            rss_override: None,
            grace: Duration::from_secs(1),
            stats_interval: Duration::from_millis(1),
            forward_queue_len: 1024,
            forward_buffers: 1024,
            secret_rotation: Some(DEFAULT_SECRET_ROTATION),
            no_waker_sleep: Duration::from_micros(200),
            busy_poll: Duration::ZERO,
            control_timeout: Duration::from_secs(5),
        }
    }
}

/// How often secrets rotate unless configured otherwise: ten minutes, long enough that rotation
/// costs nothing measurable, short enough to bound the use of a leaked or guessed secret.
pub const DEFAULT_SECRET_ROTATION: Duration = Duration::from_secs(600);

/// Fresh SYN-cookie and Fast Open secrets for `shard` from the OS, valid from `now`. Returns
/// false (and keeps the old secrets, to retry later) if the random source fails.
fn rotate_secrets(shard: &mut Shard, now: Instant, grace: Duration) -> bool {
    let mut keys = [0u8; 32];
    if getrandom::fill(&mut keys).is_err() {
        return false;
    }
    let (cookie, tfo) = keys.split_at(16);
    let mut cookie_key = [0u8; 16];
    let mut tfo_key = [0u8; 16];
    cookie_key.copy_from_slice(cookie);
    tfo_key.copy_from_slice(tfo);
    let tcp = shard.tcp();
    tcp.rotate_syncookie_secret(now, cookie_key);
    tcp.rotate_fast_open_key(now, tfo_key, grace);
    true
}

/// The runtime's own per-shard counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeCounters {
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations that found no work.
    pub idle_iterations: u64,
    /// Sleeps of [`IdlePolicy::Sleep`].
    pub parks: u64,
    /// Frames received from the port.
    pub rx_frames: u64,
    /// Frames from the port that belong to another shard's flow (0 when RSS is exact).
    pub misdirected: u64,
    /// Misdirected frames handed to their owner.
    pub forwarded_out: u64,
    /// Misdirected frames (and ARP copies) dropped: owner's inbox full or no free buffer.
    pub forward_drops: u64,
    /// Frames other shards forwarded here and this shard processed.
    pub forwarded_in: u64,
    /// Copies of received ARP frames sent to the other shards.
    pub arp_replicated_out: u64,
    /// ARP copies from other shards processed here.
    pub arp_replicated_in: u64,
    /// Frames whose owning queue no shard of this runtime serves (processed here).
    pub unowned: u64,
    /// Frames written by the shard that the port's transmit ring did not take (given back).
    pub tx_not_sent: u64,
    /// Control messages handled.
    pub control_messages: u64,
    /// TCP connections in the table when last counted (any state, TIME-WAIT included).
    pub connections: u64,
    /// SYN-cookie and Fast Open secrets replaced ([`RuntimeConfig::secret_rotation`]).
    pub secret_rotations: u64,
}

impl RuntimeCounters {
    /// Calls `f` with every counter, mutably, in declaration order.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut u64)) {
        for v in [
            &mut self.iterations,
            &mut self.idle_iterations,
            &mut self.parks,
            &mut self.rx_frames,
            &mut self.misdirected,
            &mut self.forwarded_out,
            &mut self.forward_drops,
            &mut self.forwarded_in,
            &mut self.arp_replicated_out,
            &mut self.arp_replicated_in,
            &mut self.unowned,
            &mut self.tx_not_sent,
            &mut self.control_messages,
            &mut self.connections,
            &mut self.secret_rotations,
        ] {
            f(v);
        }
    }
}

/// What an [`App`] sees of its shard in one step.
#[derive(Debug)]
pub struct AppContext<'a> {
    /// The shard: sockets, connect, listen, counters.
    pub shard: &'a mut Shard,
    /// The time of this loop iteration.
    pub now: Instant,
    /// This shard's index in the runtime (0..shard_count).
    pub index: usize,
    /// The number of shards in the runtime.
    pub shard_count: usize,
    /// The listeners opened on this shard by [`Runtime::listen`] ([`Control::Listen`]).
    pub listeners: &'a [ListenHandle],
    /// The received frames held through this step (see [`AppContext::sockets`]).
    rx: &'a [&'a [u8]],
    wake_at: Option<Instant>,
    busy: bool,
}

impl AppContext<'_> {
    /// The socket API of the shard for this step, reading received TCP data in place in the
    /// frames the runtime holds through the step (zero-copy receive). `ctx.shard.sockets(now)`
    /// works too, but data still in frames is then `EAGAIN` until the runtime copies it after
    /// the step (a readable event follows).
    pub fn sockets(&mut self) -> crate::socket::Sockets<'_> {
        self.shard.sockets_with_rx(self.now, self.rx)
    }

    /// Asks to be stepped again by `at` even if no frame or timer wakes the shard (matters
    /// under [`IdlePolicy::Sleep`]).
    pub fn wake_at(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Says this step did work that is not visible as transmitted frames, so the shard does
    /// not go idle after it.
    pub fn busy(&mut self) {
        self.busy = true;
    }
}

/// The application code of one shard, stepped once per loop iteration on the shard's thread.
pub trait App: Send {
    /// One step: accept, read, write, connect, close, through `ctx.shard`.
    fn step(&mut self, ctx: &mut AppContext<'_>);

    /// Called once when the runtime starts stopping, before the shard closes what remains: the
    /// place to close (or abort) the connections the app holds. Not stepped afterwards.
    fn shutdown(&mut self, ctx: &mut AppContext<'_>) {
        let _ = ctx;
    }
}

/// No application: the shard only runs the stack (and [`Control::Run`] closures).
impl App for () {
    fn step(&mut self, _ctx: &mut AppContext<'_>) {}
}

/// A closure run on a shard's thread by [`Control::Run`].
pub type ShardTask = Box<dyn FnOnce(&mut Shard, Instant) + Send>;

/// A message to one shard.
pub enum Control {
    /// `listen` on `port` with an accept queue of `backlog`; the handle joins
    /// [`AppContext::listeners`]. The result goes to `reply`, tagged with the shard index.
    Listen {
        /// The TCP port.
        port: u16,
        /// The accept queue length.
        backlog: usize,
        /// Where the result goes (`None`: nowhere).
        reply: Option<Sender<(usize, Result<ListenHandle, ListenError>)>>,
    },
    /// Runs a closure on the shard's thread, with the shard and the current time.
    Run(ShardTask),
    /// Sends a consistent snapshot of the shard's counters to the sender.
    Stats(Sender<(usize, ShardSnapshot)>),
    /// Begins the shutdown of this shard.
    Stop,
}

impl core::fmt::Debug for Control {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Control::Listen { port, backlog, .. } => f
                .debug_struct("Listen")
                .field("port", port)
                .field("backlog", backlog)
                .finish(),
            Control::Run(_) => f.write_str("Run"),
            Control::Stats(_) => f.write_str("Stats"),
            Control::Stop => f.write_str("Stop"),
        }
    }
}

/// Why a runtime operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeError {
    /// `start` was given no shards.
    NoShards,
    /// Two ports report the same queue number.
    DuplicateQueue(u16),
    /// The OS random source failed (no key could be drawn).
    Random,
    /// A shard thread could not be spawned.
    Spawn(String),
    /// No such shard.
    NoSuchShard(usize),
    /// A shard's thread has ended (panicked or stopped) and takes no more messages.
    ShardGone(usize),
    /// The shards did not answer within [`RuntimeConfig::control_timeout`].
    Timeout,
    /// A shard dropped a request unanswered (it is stopping, or its thread ended).
    NoAnswer,
    /// `listen` failed on a shard.
    Listen {
        /// The shard.
        shard: usize,
        /// The error.
        error: ListenError,
    },
    /// A shard thread panicked.
    Panicked(usize),
}

impl core::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RuntimeError::NoShards => f.write_str("no shards"),
            RuntimeError::DuplicateQueue(q) => write!(f, "two ports serve queue {q}"),
            RuntimeError::Random => f.write_str("the OS random source failed"),
            RuntimeError::Spawn(e) => write!(f, "cannot spawn a shard thread: {e}"),
            RuntimeError::NoSuchShard(i) => write!(f, "no shard {i}"),
            RuntimeError::ShardGone(i) => write!(f, "shard {i} has ended"),
            RuntimeError::Timeout => f.write_str("the shards did not answer in time"),
            RuntimeError::NoAnswer => f.write_str("a shard dropped the request (stopping)"),
            RuntimeError::Listen { shard, error } => {
                write!(f, "listen on shard {shard}: {}", error.errno())
            }
            RuntimeError::Panicked(i) => write!(f, "shard {i} panicked"),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// How a shard's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Every connection finished (closed or TIME-WAIT) and nothing was left to send.
    Drained,
    /// The grace period ended first: the remaining connections were reset.
    GraceExpired,
}

/// What a shard thread hands back when it ends.
#[derive(Debug)]
pub struct ShardExit<P, A> {
    /// The shard's index.
    pub index: usize,
    /// Final protocol counters.
    pub stats: Stats,
    /// Final runtime counters.
    pub runtime: RuntimeCounters,
    /// Why the loop ended.
    pub reason: ExitReason,
    /// Connections still exchanging segments at the end (0 when drained).
    pub active_connections: usize,
    /// The port, for pool leak checks.
    pub port: P,
    /// The app, for its results.
    pub app: A,
}

/// N shards running on N threads.
#[derive(Debug)]
pub struct Runtime<P, A> {
    controls: Vec<Sender<Control>>,
    threads: Vec<Option<JoinHandle<ShardExit<P, A>>>>,
    published: Arc<[Published]>,
    pinning: Vec<PinOutcome>,
    epoch: std::time::Instant,
    control_timeout: Duration,
}

/// The runtime's clock: the monotonic clock read as nanoseconds since the runtime's epoch.
#[derive(Clone, Copy, Debug)]
struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    fn now(&self) -> Instant {
        let nanos = self.epoch.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A shard's configuration: the template with the port's checksum offloads and the ISN key
/// (`explicit`, or 16 bytes from the OS random source).
fn shard_config(
    template: &ShardConfig,
    explicit: Option<[u8; 16]>,
    caps: &Capabilities,
) -> Result<ShardConfig, RuntimeError> {
    let mut config = *template;
    config.checksum = caps.checksum;
    config.isn_key = match explicit {
        Some(key) => key,
        None => {
            let mut key = [0u8; 16];
            getrandom::fill(&mut key).map_err(|_| RuntimeError::Random)?;
            key
        }
    };
    Ok(config)
}

/// Everything a shard thread starts with.
struct ShardThread<P, A> {
    index: usize,
    shard_count: usize,
    port: P,
    app: A,
    config: ShardConfig,
    idle: IdlePolicy,
    grace: Duration,
    stats_interval: Duration,
    no_waker_sleep: Duration,
    busy_poll: Duration,
    secret_rotation: Option<Duration>,
    rss: Option<RssConfig>,
    /// `queue_shard[q]`: the shard serving queue `q`.
    queue_shard: Arc<[Option<usize>]>,
    core: Option<core_affinity::CoreId>,
    pin_requested: bool,
    control: Receiver<Control>,
    fabric: Arc<Fabric>,
    published: Arc<[Published]>,
    clock: Clock,
    ready: Sender<(usize, PinOutcome)>,
    /// The TCP bind table every shard of this runtime shares (binds only, never per packet).
    bind_table: Arc<BindTable>,
}

/// The RSS a multi-shard runtime believes when the device tells it none: Microsoft's
/// verification key and a round-robin indirection table over `queues` queues.
fn software_rss(queues: usize) -> RssConfig {
    let queues = u16::try_from(queues).unwrap_or(u16::MAX);
    RssConfig {
        key: crate::shard::rss::DEFAULT_KEY.to_vec(),
        indirection: crate::shard::rss::round_robin_indirection(
            queues,
            crate::shard::rss::DEFAULT_INDIRECTION_ENTRIES,
        ),
    }
}

impl<P, A> Runtime<P, A>
where
    P: Port + Send + 'static,
    A: App + 'static,
{
    /// Starts one shard thread per `(port, app)` pair, pinned as configured, and waits until
    /// every shard is running.
    pub fn start(config: RuntimeConfig, shards: Vec<(P, A)>) -> Result<Self, RuntimeError> {
        if shards.is_empty() {
            return Err(RuntimeError::NoShards);
        }
        let n = shards.len();
        let max_queue = shards
            .iter()
            .map(|(p, _)| usize::from(p.capabilities().queue))
            .max()
            .unwrap_or(0);
        let rss = config
            .rss_override
            .clone()
            .or_else(|| {
                shards
                    .first()
                    .and_then(|(p, _)| p.capabilities().rss.clone())
            })
            .or_else(|| (n > 1).then(|| software_rss(max_queue + 1)));
        let mut queue_shard = vec![None; max_queue + 1];
        for (i, (p, _)) in shards.iter().enumerate() {
            let q = p.capabilities().queue;
            match queue_shard.get_mut(usize::from(q)) {
                Some(slot @ None) => *slot = Some(i),
                _ => return Err(RuntimeError::DuplicateQueue(q)),
            }
        }
        let queue_shard: Arc<[Option<usize>]> = queue_shard.into();
        let mut configs = Vec::with_capacity(n);
        for (p, _) in &shards {
            configs.push(shard_config(
                &config.shard,
                config.isn_key,
                p.capabilities(),
            )?);
        }
        let (cores, pin_requested) = match &config.pinning {
            Pinning::None => (Vec::new(), false),
            Pinning::Auto => (core_affinity::get_core_ids().unwrap_or_default(), true),
            Pinning::Cores(ids) => (
                ids.iter().map(|&id| core_affinity::CoreId { id }).collect(),
                true,
            ),
        };
        // An Ethernet header, a VLAN tag and an MTU-sized packet.
        let buffer_len = 18 + usize::from(config.shard.iface.mtu);
        let fabric = Arc::new(Fabric::new(
            n,
            config.forward_queue_len,
            config.forward_buffers,
            buffer_len,
        ));
        let published: Arc<[Published]> = (0..n).map(|_| Published::new()).collect();
        let clock = Clock {
            epoch: std::time::Instant::now(),
        };
        let (ready_tx, ready_rx) = channel::bounded(n);
        let bind_table = Arc::new(BindTable::new());
        let mut runtime = Runtime {
            controls: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
            published: published.clone(),
            pinning: vec![PinOutcome::NotRequested; n],
            epoch: clock.epoch,
            control_timeout: config.control_timeout,
        };
        for (index, ((port, app), shard_config)) in shards.into_iter().zip(configs).enumerate() {
            let (control_tx, control_rx) = channel::unbounded();
            let core = if cores.is_empty() {
                None
            } else {
                cores.get(index % cores.len()).copied()
            };
            let st = ShardThread {
                index,
                shard_count: n,
                port,
                app,
                config: shard_config,
                idle: config.idle,
                grace: config.grace,
                stats_interval: config.stats_interval,
                no_waker_sleep: config.no_waker_sleep,
                busy_poll: config.busy_poll,
                secret_rotation: config.secret_rotation.filter(|_| config.isn_key.is_none()),
                rss: rss.clone(),
                queue_shard: queue_shard.clone(),
                core,
                pin_requested,
                control: control_rx,
                fabric: fabric.clone(),
                published: published.clone(),
                clock,
                ready: ready_tx.clone(),
                bind_table: bind_table.clone(),
            };
            let spawned = thread::Builder::new()
                .name(format!("shardnet-{index}"))
                .spawn(move || st.run());
            match spawned {
                Ok(handle) => {
                    runtime.controls.push(control_tx);
                    runtime.threads.push(Some(handle));
                }
                Err(e) => {
                    // Dropping `runtime` stops the shards already started.
                    return Err(RuntimeError::Spawn(e.to_string()));
                }
            }
        }
        drop(ready_tx);
        let deadline = std::time::Instant::now() + config.control_timeout;
        for _ in 0..n {
            match ready_rx.recv_deadline(deadline) {
                Ok((index, outcome)) => {
                    if let Some(slot) = runtime.pinning.get_mut(index) {
                        *slot = outcome;
                    }
                }
                Err(_) => return Err(RuntimeError::Timeout),
            }
        }
        Ok(runtime)
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.controls.len()
    }

    /// What became of each shard's pinning request.
    pub fn pinning(&self) -> &[PinOutcome] {
        &self.pinning
    }

    /// The runtime's clock, as the shards read it.
    pub fn now(&self) -> Instant {
        Clock { epoch: self.epoch }.now()
    }

    /// Sends a control message to shard `index` (and wakes it).
    pub fn send(&self, index: usize, msg: Control) -> Result<(), RuntimeError> {
        let tx = self
            .controls
            .get(index)
            .ok_or(RuntimeError::NoSuchShard(index))?;
        tx.send(msg).map_err(|_| RuntimeError::ShardGone(index))?;
        self.wake(index);
        Ok(())
    }

    fn wake(&self, index: usize) {
        if let Some(Some(h)) = self.threads.get(index) {
            h.thread().unpark();
        }
    }

    /// Runs `f` on shard `index`'s thread.
    pub fn run_on(
        &self,
        index: usize,
        f: impl FnOnce(&mut Shard, Instant) + Send + 'static,
    ) -> Result<(), RuntimeError> {
        self.send(index, Control::Run(Box::new(f)))
    }

    /// `listen` on `port` on every shard (SO_REUSEPORT-style: RSS spreads the connections),
    /// waiting for every shard to answer.
    pub fn listen(&self, port: u16, backlog: usize) -> Result<(), RuntimeError> {
        let (tx, rx) = channel::bounded(self.shard_count());
        for index in 0..self.shard_count() {
            self.send(
                index,
                Control::Listen {
                    port,
                    backlog,
                    reply: Some(tx.clone()),
                },
            )?;
        }
        drop(tx);
        let deadline = std::time::Instant::now() + self.control_timeout;
        for _ in 0..self.shard_count() {
            match rx.recv_deadline(deadline) {
                Ok((_, Ok(_))) => {}
                Ok((shard, Err(error))) => return Err(RuntimeError::Listen { shard, error }),
                Err(RecvTimeoutError::Timeout) => return Err(RuntimeError::Timeout),
                Err(RecvTimeoutError::Disconnected) => return Err(RuntimeError::NoAnswer),
            }
        }
        Ok(())
    }

    /// The counters shard `index` last published, read without locks or messages (see
    /// [`ShardSnapshot`] for how fresh and how consistent they are).
    pub fn stats(&self, index: usize) -> Option<ShardSnapshot> {
        self.published.get(index).map(Published::read)
    }

    /// A consistent snapshot of every shard's counters, asked for with [`Control::Stats`].
    pub fn collect_stats(&self) -> Result<Vec<ShardSnapshot>, RuntimeError> {
        let n = self.shard_count();
        let (tx, rx) = channel::bounded(n);
        for index in 0..n {
            self.send(index, Control::Stats(tx.clone()))?;
        }
        drop(tx);
        let mut out = vec![ShardSnapshot::default(); n];
        let deadline = std::time::Instant::now() + self.control_timeout;
        for _ in 0..n {
            let (index, snap) = rx.recv_deadline(deadline).map_err(|e| match e {
                RecvTimeoutError::Timeout => RuntimeError::Timeout,
                RecvTimeoutError::Disconnected => RuntimeError::NoAnswer,
            })?;
            if let Some(slot) = out.get_mut(index) {
                *slot = snap;
            }
        }
        Ok(out)
    }

    /// Stops every shard (graceful close, then reset after the grace period), joins the
    /// threads and returns what each shard hands back, in shard order.
    pub fn stop(mut self) -> Result<Vec<ShardExit<P, A>>, RuntimeError> {
        self.signal_stop();
        let mut exits = Vec::with_capacity(self.threads.len());
        let mut panicked = None;
        for (index, slot) in self.threads.iter_mut().enumerate() {
            if let Some(handle) = slot.take() {
                match handle.join() {
                    Ok(exit) => exits.push(exit),
                    Err(_) => panicked = panicked.or(Some(index)),
                }
            }
        }
        match panicked {
            Some(index) => Err(RuntimeError::Panicked(index)),
            None => Ok(exits),
        }
    }

    fn signal_stop(&self) {
        for (index, tx) in self.controls.iter().enumerate() {
            // A shard that already ended has nothing to stop.
            let _ = tx.send(Control::Stop);
            self.wake(index);
        }
    }
}

impl<P, A> Drop for Runtime<P, A> {
    /// A runtime dropped without [`Runtime::stop`] still stops and joins its shards.
    fn drop(&mut self) {
        for tx in &self.controls {
            let _ = tx.send(Control::Stop);
        }
        for handle in self.threads.iter_mut().filter_map(Option::take) {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// Frames of the forwarding inbox handled per iteration, so that a flood of forwarded frames
/// cannot starve the port.
const INBOX_BURST: usize = 4 * crate::port::BURST;

/// The shutdown state of a shard loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Closing gracefully until `deadline`.
    Closing {
        deadline: Instant,
    },
    /// Resets sent; flushing them until `deadline`.
    Aborting {
        deadline: Instant,
    },
}

/// Hands each received frame to the shard that owns it.
struct Router {
    /// This shard's index and receive queue.
    index: usize,
    queue: u16,
    /// `None`: a single shard, or no RSS information (every frame is local).
    ownership: Option<FlowOwnership>,
    /// `queue_shard[q]`: the shard serving queue `q`.
    queue_shard: Arc<[Option<usize>]>,
    fabric: Arc<Fabric>,
    /// Shards sent frames during this burst, to be woken once after it.
    woken: Vec<bool>,
}

impl Router {
    /// Processes frame `index` of the held burst `rx` here, forwards it to its owner, or
    /// (ARP) both.
    fn route(
        &mut self,
        shard: &mut Shard,
        counters: &mut RuntimeCounters,
        now: Instant,
        rx: &[&[u8]],
        index: usize,
        offload: crate::port::RxOffload,
    ) {
        let Some(&bytes) = rx.get(index) else {
            return;
        };
        let owner = self
            .ownership
            .as_ref()
            .map_or(Owner::Local, |o| o.owner(bytes));
        let to = match owner {
            Owner::Local => None,
            Owner::Queue(q) if q == self.queue => None,
            Owner::Queue(q) => match self.queue_shard.get(usize::from(q)).copied().flatten() {
                Some(to) if to != self.index => Some(to),
                Some(_) => None,
                None => {
                    counters.unowned += 1;
                    None
                }
            },
            Owner::All => {
                for (to, woken) in self.woken.iter_mut().enumerate() {
                    if to == self.index {
                        continue;
                    }
                    match self
                        .fabric
                        .send(self.index, to, bytes, offload, Kind::Replica)
                    {
                        Ok(()) => {
                            counters.arp_replicated_out += 1;
                            *woken = true;
                        }
                        Err(_) => counters.forward_drops += 1,
                    }
                }
                None
            }
        };
        let Some(to) = to else {
            shard.handle_frame_held(now, rx, index, offload);
            return;
        };
        counters.misdirected += 1;
        match self
            .fabric
            .send(self.index, to, bytes, offload, Kind::Forwarded)
        {
            Ok(()) => {
                counters.forwarded_out += 1;
                if let Some(w) = self.woken.get_mut(to) {
                    *w = true;
                }
            }
            Err(_) => counters.forward_drops += 1,
        }
    }

    /// Wakes the shards this burst sent frames to (they may be asleep).
    fn wake_owners(&mut self) {
        for (to, woken) in self.woken.iter_mut().enumerate() {
            if *woken {
                *woken = false;
                self.fabric.wake(to);
            }
        }
    }
}

/// How long a shard keeps transmitting after resetting what the grace period left.
const ABORT_FLUSH: Duration = Duration::from_millis(10);

impl<P: Port, A: App> ShardThread<P, A> {
    fn pin(&self) -> PinOutcome {
        if !self.pin_requested {
            return PinOutcome::NotRequested;
        }
        match self.core {
            None => PinOutcome::NoCores,
            Some(core) if core_affinity::set_for_current(core) => PinOutcome::Pinned(core.id),
            Some(core) => PinOutcome::Failed(core.id),
        }
    }

    fn run(self) -> ShardExit<P, A> {
        let pinned = self.pin();
        let ShardThread {
            index,
            shard_count,
            mut port,
            mut app,
            config,
            idle,
            grace,
            stats_interval,
            no_waker_sleep,
            busy_poll,
            secret_rotation,
            rss,
            queue_shard,
            control,
            fabric,
            published,
            clock,
            ready,
            bind_table,
            ..
        } = self;
        let my_queue = port.capabilities().queue;
        let mut shard = Shard::new(config);
        shard.set_rss(rss.as_ref(), my_queue);
        let owner = BindTable::shard_owner(u32::try_from(index).unwrap_or(u32::MAX));
        shard.tcp().set_bind_table(bind_table, owner);
        let mut router = Router {
            index,
            queue: my_queue,
            ownership: rss
                .as_ref()
                .filter(|_| shard_count > 1)
                .map(FlowOwnership::new),
            queue_shard,
            fabric: fabric.clone(),
            woken: vec![false; shard_count],
        };
        fabric.register(index, thread::current());
        let waker =
            matches!(idle, IdlePolicy::Sleep { .. }) && port.set_rx_waker(thread::current());
        // The runtime waits for this; if it gave up, nothing is lost.
        let _ = ready.send((index, pinned));
        drop(ready);

        let mut counters = RuntimeCounters::default();
        let mut next_rotation: Option<Instant> = None;
        let mut listeners: Vec<ListenHandle> = Vec::new();
        let mut batch: Batch<P::Frame> = Batch::new();
        let mut phase = Phase::Running;
        let mut next_publish = Instant::ZERO;
        let mut dirty = true;
        // This shard has nothing left to exchange (shutdown); it had to reset connections.
        let mut drained = false;
        let mut expired = false;
        // When this shard last found work (for `busy_poll`).
        let mut last_work = Instant::ZERO;
        let publish = |shard: &mut Shard, counters: &mut RuntimeCounters, now: Instant| {
            counters.connections = shard.tcp().connection_count() as u64;
            if let Some(p) = published.get(index) {
                p.publish(shard.stats(), *counters, now);
            }
        };

        let reason = loop {
            let now = clock.now();
            counters.iterations += 1;
            let mut work = false;
            let mut stop_requested = false;

            // Control messages.
            loop {
                match control.try_recv() {
                    Ok(msg) => {
                        work = true;
                        counters.control_messages += 1;
                        match msg {
                            Control::Listen {
                                port: tcp_port,
                                backlog,
                                reply,
                            } => {
                                // A stopping shard opens no listener: it drops `reply`
                                // unanswered, which the caller sees as `NoAnswer`.
                                if phase == Phase::Running {
                                    // The listeners of every shard are one bind.
                                    let result = shard.tcp().listen_in_group(tcp_port, backlog);
                                    if let Ok(h) = result {
                                        listeners.push(h);
                                    }
                                    if let Some(reply) = reply {
                                        let _ = reply.send((index, result));
                                    }
                                }
                            }
                            Control::Run(f) => f(&mut shard, now),
                            Control::Stats(reply) => {
                                counters.connections = shard.tcp().connection_count() as u64;
                                let _ = reply.send((
                                    index,
                                    ShardSnapshot {
                                        stats: shard.stats(),
                                        runtime: counters,
                                        at: now,
                                        publications: published
                                            .get(index)
                                            .map_or(0, |p| p.read().publications),
                                    },
                                ));
                            }
                            Control::Stop => stop_requested = true,
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    // The runtime is gone: nobody can stop us any more, so stop now.
                    Err(TryRecvError::Disconnected) => {
                        stop_requested = true;
                        break;
                    }
                }
            }
            if stop_requested && phase == Phase::Running {
                let mut ctx = AppContext {
                    shard: &mut shard,
                    now,
                    index,
                    shard_count,
                    listeners: &listeners,
                    rx: &[],
                    wake_at: None,
                    busy: false,
                };
                app.shutdown(&mut ctx);
                listeners.clear();
                shard.tcp().close_all(now);
                phase = Phase::Closing {
                    deadline: now + grace,
                };
            }

            // Receive: each frame to its owner. The burst is held until after the app.
            let received = port.rx_burst(&mut batch);
            if received > 0 {
                work = true;
                counters.rx_frames += received as u64;
            }
            let rx: ArrayVec<&[u8], BURST> = batch.iter().map(Frame::data).collect();
            for (i, frame) in batch.iter().enumerate() {
                // The next frame's cache lines arrive while this one is handled (`prefetch`).
                if let Some(next) = rx.get(i + 1) {
                    prefetch::prefetch_frame(next);
                }
                router.route(&mut shard, &mut counters, now, &rx, i, frame.rx_offload());
            }
            router.wake_owners();

            // Frames other shards forwarded here.
            for _ in 0..INBOX_BURST {
                let Some(f) = fabric.receive(index) else {
                    break;
                };
                work = true;
                match f.kind {
                    Kind::Forwarded => counters.forwarded_in += 1,
                    Kind::Replica => counters.arp_replicated_in += 1,
                }
                shard.handle_frame(now, &f.bytes, f.offload);
                fabric.recycle(f);
            }

            // The app.
            let mut wake_at = None;
            if phase == Phase::Running {
                let mut ctx = AppContext {
                    shard: &mut shard,
                    now,
                    index,
                    shard_count,
                    listeners: &listeners,
                    rx: &rx,
                    wake_at: None,
                    busy: false,
                };
                app.step(&mut ctx);
                work |= ctx.busy;
                wake_at = ctx.wake_at;
            }

            // What the app left in the held frames goes into the receive buffers; then the
            // frames go back to the pool.
            shard.spill_in_place(&rx);
            drop(rx);
            for frame in batch.drain(..) {
                port.release(frame);
            }

            // Secrets: the first rotation one period after start (the shard began with keys
            // derived from its random ISN key).
            if let Some(every) = secret_rotation {
                match next_rotation {
                    None => next_rotation = Some(now + every),
                    Some(at) if now >= at => {
                        if rotate_secrets(&mut shard, now, every) {
                            counters.secret_rotations += 1;
                        }
                        next_rotation = Some(now + every);
                    }
                    Some(_) => {}
                }
            }

            // Timers, then transmit.
            shard.handle_timeout(now);
            let mut tx = TxBatcher::new(&mut port);
            shard.poll_transmit(now, &mut tx);
            let (sent, not_sent) = tx.finish();
            counters.tx_not_sent += not_sent as u64;
            if sent > 0 || not_sent > 0 {
                work = true;
            }
            dirty |= work;

            // Shutdown progress. A drained shard keeps polling until every shard is drained:
            // its receive queue may still carry frames of other shards' flows (RSS mismatch),
            // and ARP for all of them.
            let tx_due = shard.poll_timeout().is_some_and(|t| t <= now);
            match phase {
                Phase::Running => {}
                Phase::Closing { deadline } | Phase::Aborting { deadline } => {
                    if !drained && !tx_due && shard.tcp().active_count() == 0 {
                        drained = true;
                        if fabric.shard_drained() {
                            for to in 0..shard_count {
                                fabric.wake(to);
                            }
                        }
                    }
                    let aborting = matches!(phase, Phase::Aborting { .. });
                    if drained && fabric.all_drained() {
                        break if expired {
                            ExitReason::GraceExpired
                        } else {
                            ExitReason::Drained
                        };
                    }
                    if now >= deadline {
                        if aborting {
                            break ExitReason::GraceExpired;
                        }
                        expired = !drained;
                        shard.tcp().abort_all(now);
                        phase = Phase::Aborting {
                            deadline: now + ABORT_FLUSH,
                        };
                        continue;
                    }
                }
            }

            // Publish the counters.
            if now >= next_publish {
                publish(&mut shard, &mut counters, now);
                next_publish = now + stats_interval;
                dirty = false;
            }

            // Idle.
            if work || tx_due || fabric.has_pending(index) {
                last_work = now;
                continue;
            }
            counters.idle_iterations += 1;
            match idle {
                IdlePolicy::BusyPoll => {}
                IdlePolicy::Yield => thread::yield_now(),
                IdlePolicy::Sleep { .. }
                    if now.saturating_duration_since(last_work) < busy_poll =>
                {
                    core::hint::spin_loop();
                }
                IdlePolicy::Sleep { max } => {
                    let cap = if waker { max } else { max.min(no_waker_sleep) };
                    let phase_deadline = match phase {
                        Phase::Running => None,
                        Phase::Closing { deadline } | Phase::Aborting { deadline } => {
                            Some(deadline)
                        }
                    };
                    let deadline = [shard.poll_timeout(), wake_at, phase_deadline, next_rotation]
                        .into_iter()
                        .flatten()
                        .min();
                    let sleep = deadline
                        .map_or(cap, |d| d.saturating_duration_since(now))
                        .min(cap);
                    // Frames that arrived since the rx burst: receive them instead.
                    if !sleep.is_zero() && (!waker || port.arm_rx_waker()) {
                        if dirty {
                            publish(&mut shard, &mut counters, now);
                            next_publish = now + stats_interval;
                            dirty = false;
                        }
                        counters.parks += 1;
                        thread::park_timeout(sleep);
                    }
                }
            }
        };

        let now = clock.now();
        publish(&mut shard, &mut counters, now);
        let active_connections = shard.tcp().active_count();
        ShardExit {
            index,
            stats: shard.stats(),
            runtime: counters,
            reason,
            active_connections,
            port,
            app,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{InterfaceConfig, Ipv4Cidr};
    use crate::port::ChecksumOffload;
    use crate::wire::{EthernetAddress, Ipv4Addr};

    fn caps() -> Capabilities {
        Capabilities {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            queue: 0,
            queue_count: 1,
            rss: None,
            checksum: ChecksumOffload {
                rx_ipv4: true,
                ..ChecksumOffload::default()
            },
            pool_size: 64,
        }
    }

    fn template() -> ShardConfig {
        ShardConfig::new(InterfaceConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            cidr: Ipv4Cidr::new(Ipv4Addr::new(198, 18, 0, 1), 24).unwrap(),
            gateway: None,
            mtu: 1500,
            ttl: 64,
        })
    }

    #[test]
    fn keys_are_random_unless_given() {
        let t = template();
        let a = shard_config(&t, None, &caps()).unwrap();
        let b = shard_config(&t, None, &caps()).unwrap();
        assert_ne!(a.isn_key, b.isn_key);
        assert_ne!(a.isn_key, t.isn_key);
        let fixed = shard_config(&t, Some([7; 16]), &caps()).unwrap();
        assert_eq!(fixed.isn_key, [7; 16]);
        // The port's offloads replace the template's.
        assert!(fixed.checksum.rx_ipv4);
    }

    #[test]
    fn runtime_counters_visit_every_field() {
        let mut c = RuntimeCounters::default();
        let mut n = 0;
        c.for_each_mut(|v| {
            n += 1;
            *v = n;
        });
        assert_eq!(n, 15);
        assert_eq!((c.iterations, c.secret_rotations), (1, 15));
    }
}
