//! Seeded faults for any [`Port`]: loss, duplication, reordering, delay and corruption on the
//! receive and/or transmit side of a real driver (AF_XDP, DPDK), where `tc netem` is not
//! available or not wanted.
//!
//! [`Impaired`] wraps a port and applies one [`Impairments`] to the frames `rx_burst` hands
//! out and another to the frames `tx_burst` is given. For each frame, in this order:
//!
//! 1. [`loss`](Impairments::loss): the frame is released back to the pool (rx) or never
//!    handed to the device (tx);
//! 2. [`duplicate`](Impairments::duplicate): a copy is made in a frame taken with
//!    `alloc_tx` from the wrapped port's pool (if the pool is empty, no copy is made and
//!    [`DirectionCounters::duplicate_no_buffer`] counts it); the copy follows the original;
//! 3. for each copy, [`corrupt`](Impairments::corrupt): one bit at a uniformly chosen offset
//!    is flipped;
//! 4. for each copy, [`reorder`](Impairments::reorder): the frame is held back until
//!    [`ImpairedConfig::reorder_gap`] later frames have entered that direction (so they
//!    overtake it), or until [`reorder_delay`](Impairments::reorder_delay) has passed if that
//!    is not zero, whichever comes first;
//! 5. otherwise, with a [`delay`](Impairments::delay) or [`jitter`](Impairments::jitter):
//!    the frame is held until `now + delay + uniform[0, jitter]`.
//!
//! [`bandwidth`](Impairments::bandwidth) is not modelled here: [`Impaired::new`] refuses a
//! configuration that sets it ([`ImpairedError::BandwidthUnsupported`]).
//!
//! # Determinism
//!
//! Every decision is drawn from ChaCha8, seeded from [`ImpairedConfig::seed`], one stream per
//! direction: the same seed and the same frames in the same order give the same faults. The
//! clock is the real monotonic clock by default; [`Impaired::set_now`] switches to a clock the
//! caller drives (tests, simulations).
//!
//! # Memory
//!
//! Nothing is allocated after [`Impaired::new`]: held frames wait in queues sized from
//! [`ImpairedConfig::hold_capacity`]. When a direction's hold queue is full, a frame that
//! should be held passes at once and [`DirectionCounters::hold_overflow`] counts it.
//!
//! # Timing
//!
//! Held frames leave during the next `rx_burst` or `tx_burst` call at or after their time: a
//! runtime that sleeps while idle may deliver them late. Run the shard with
//! [`shardnet::runtime::IdlePolicy::Yield`] (or a short sleep cap) when delays matter.
//! Dropping an `Impaired` releases every frame it holds to the wrapped port.

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use shardnet::port::{BURST, Batch, Capabilities, Frame, PoolStats, Port};
use shardnet::time::{Duration, Instant};

use crate::config::Impairments;
use crate::wire::chance;

/// How an [`Impaired`] port behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct ImpairedConfig {
    /// Faults applied to received frames (between the device and the stack).
    pub rx: Impairments,
    /// Faults applied to transmitted frames (between the stack and the device).
    pub tx: Impairments,
    /// A reordered frame is released once this many later frames have entered its direction
    /// (or at its `reorder_delay`, if that is not zero and comes first). At least 1.
    pub reorder_gap: usize,
    /// The seed of every random decision.
    pub seed: u64,
    /// Frames each direction may hold back (delayed or reordered) at a time.
    pub hold_capacity: usize,
}

impl Default for ImpairedConfig {
    /// No faults, a reorder gap of 3 frames, seed 0, room for 1024 held frames per direction.
    fn default() -> Self {
        ImpairedConfig {
            rx: Impairments::NONE,
            tx: Impairments::NONE,
            reorder_gap: 3,
            seed: 0,
            hold_capacity: 1024,
        }
    }
}

/// Why an [`ImpairedConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImpairedError {
    /// A `bandwidth` limit was set: the wrapper does not model serialisation.
    BandwidthUnsupported,
    /// `reorder_gap` is 0.
    ZeroReorderGap,
}

impl core::fmt::Display for ImpairedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImpairedError::BandwidthUnsupported => {
                f.write_str("Impaired does not model bandwidth: leave Impairments::bandwidth None")
            }
            ImpairedError::ZeroReorderGap => f.write_str("reorder_gap must be at least 1"),
        }
    }
}

impl std::error::Error for ImpairedError {}

/// What one direction of an [`Impaired`] port did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Frames that entered this direction.
    pub frames_in: u64,
    /// Frames that left it (to the stack for rx, to the device for tx), copies included.
    pub frames_out: u64,
    /// Frames dropped.
    pub lost: u64,
    /// Copies made.
    pub duplicated: u64,
    /// Copies not made because the pool was empty.
    pub duplicate_no_buffer: u64,
    /// Frames with a bit flipped.
    pub corrupted: u64,
    /// Frames held back for reordering.
    pub reordered: u64,
    /// Frames held back by delay or jitter.
    pub delayed: u64,
    /// Frames that should have been held but passed at once (hold queue full).
    pub hold_overflow: u64,
}

/// What an [`Impaired`] port did, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairedCounters {
    /// Received frames.
    pub rx: DirectionCounters,
    /// Transmitted frames.
    pub tx: DirectionCounters,
}

/// A frame held back: released when the direction's frame count reaches `after` or the clock
/// reaches `due`.
struct Held<F> {
    frame: F,
    after: Option<u64>,
    due: Option<Instant>,
}

/// One direction's faults and queues.
struct Direction<F> {
    impairments: Impairments,
    rng: ChaCha8Rng,
    held: Vec<Held<F>>,
    /// Frames ready to leave, in order.
    ready: VecDeque<F>,
    /// The capacity `ready` was made with: room for every held frame plus four bursts.
    ready_capacity: usize,
    hold_capacity: usize,
    counters: DirectionCounters,
}

impl<F: Frame> Direction<F> {
    fn new(impairments: Impairments, seed: u64, stream: u64, hold_capacity: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let ready_capacity = hold_capacity + 4 * BURST;
        Direction {
            impairments,
            rng,
            held: Vec::with_capacity(hold_capacity),
            ready: VecDeque::with_capacity(ready_capacity),
            ready_capacity,
            hold_capacity,
            counters: DirectionCounters::default(),
        }
    }

    /// Room in `ready` for `extra` more frames (held frames have room of their own).
    fn has_room(&self, extra: usize) -> bool {
        self.ready.len() + extra <= self.ready_capacity - self.hold_capacity
    }

    /// Moves held frames whose time or gap has come to `ready`, in the order they were held.
    fn release_due(&mut self, now: Instant) {
        let count = self.counters.frames_in;
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            let go = h.after.is_some_and(|a| count >= a) || h.due.is_some_and(|d| now >= d);
            if go {
                let h = self.held.remove(i);
                self.ready.push_back(h.frame);
            } else {
                i += 1;
            }
        }
    }

    /// Applies the faults to one frame entering this direction: a lost frame goes back to
    /// `port`'s pool, a duplicate is copied into a frame from it.
    fn admit<P: Port<Frame = F>>(
        &mut self,
        port: &mut P,
        now: Instant,
        reorder_gap: usize,
        frame: F,
    ) {
        self.counters.frames_in += 1;
        if chance(&mut self.rng, self.impairments.loss) {
            self.counters.lost += 1;
            port.release(frame);
            return;
        }
        let dup = if chance(&mut self.rng, self.impairments.duplicate) {
            let c = copy_frame(port, &frame);
            match c {
                Some(_) => self.counters.duplicated += 1,
                None => self.counters.duplicate_no_buffer += 1,
            }
            c
        } else {
            None
        };
        self.place(now, reorder_gap, frame);
        if let Some(d) = dup {
            self.place(now, reorder_gap, d);
        }
    }

    /// Corrupts, reorders or delays one copy, or makes it ready.
    fn place(&mut self, now: Instant, reorder_gap: usize, mut frame: F) {
        if chance(&mut self.rng, self.impairments.corrupt) {
            let len = frame.data().len();
            if len > 0 {
                let bit = below(&mut self.rng, (len * 8) as u64) as usize;
                frame.data_mut()[bit / 8] ^= 1 << (bit % 8);
                self.counters.corrupted += 1;
            }
        }
        let imp = &self.impairments;
        let held = if chance(&mut self.rng, imp.reorder) {
            let due = (!imp.reorder_delay.is_zero()).then(|| now + imp.reorder_delay);
            Some((
                Some(self.counters.frames_in + reorder_gap as u64),
                due,
                true,
            ))
        } else if !imp.delay.is_zero() || !imp.jitter.is_zero() {
            let jitter = nanos(imp.jitter);
            let extra = if jitter == 0 {
                0
            } else {
                below(&mut self.rng, jitter.saturating_add(1))
            };
            let due = now + imp.delay + Duration::from_nanos(extra);
            Some((None, Some(due), false))
        } else {
            None
        };
        match held {
            Some((after, due, reordered)) if self.held.len() < self.hold_capacity => {
                if reordered {
                    self.counters.reordered += 1;
                } else {
                    self.counters.delayed += 1;
                }
                self.held.push(Held { frame, after, due });
            }
            Some(_) => {
                self.counters.hold_overflow += 1;
                self.ready.push_back(frame);
            }
            None => self.ready.push_back(frame),
        }
    }

    /// The earliest time a held frame is due, if any is held by time.
    fn next_due(&self) -> Option<Instant> {
        self.held.iter().filter_map(|h| h.due).min()
    }
}

/// A uniform draw in `[0, n)` (0 if `n` is 0).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Copies `frame` into a new frame from `port`'s pool.
fn copy_frame<P: Port>(port: &mut P, frame: &P::Frame) -> Option<P::Frame> {
    let mut c = port.alloc_tx()?;
    let len = frame.data().len();
    if len > c.capacity() {
        port.release(c);
        return None;
    }
    c.buffer_mut()[..len].copy_from_slice(frame.data());
    c.set_len(len);
    Some(c)
}

/// Where [`Impaired`] reads the time.
enum Clock {
    /// The monotonic clock, as time since the wrapper was made.
    Real(std::time::Instant),
    /// The last time given to [`Impaired::set_now`].
    Manual(Instant),
}

/// A [`Port`] whose received and transmitted frames suffer seeded faults (see the
/// [module documentation](self)).
pub struct Impaired<P: Port> {
    inner: P,
    rx: Direction<P::Frame>,
    tx: Direction<P::Frame>,
    reorder_gap: usize,
    clock: Clock,
    /// Frames pulled from the device or handed to it, one burst at a time.
    scratch: Batch<P::Frame>,
}

impl<P: Port> Impaired<P> {
    /// Wraps `inner` with the faults of `config`, reading the real monotonic clock.
    ///
    /// Errors: [`ImpairedError::BandwidthUnsupported`] if either direction sets a bandwidth,
    /// [`ImpairedError::ZeroReorderGap`] if `reorder_gap` is 0.
    pub fn new(inner: P, config: ImpairedConfig) -> Result<Self, ImpairedError> {
        if config.rx.bandwidth.is_some() || config.tx.bandwidth.is_some() {
            return Err(ImpairedError::BandwidthUnsupported);
        }
        if config.reorder_gap == 0 {
            return Err(ImpairedError::ZeroReorderGap);
        }
        Ok(Impaired {
            inner,
            rx: Direction::new(config.rx, config.seed, 0, config.hold_capacity),
            tx: Direction::new(config.tx, config.seed, 1, config.hold_capacity),
            reorder_gap: config.reorder_gap,
            clock: Clock::Real(std::time::Instant::now()),
            scratch: Batch::new(),
        })
    }

    /// Switches to a caller-driven clock and sets it to `now` (it never goes backwards).
    pub fn set_now(&mut self, now: Instant) {
        self.clock = match self.clock {
            Clock::Manual(t) if t > now => Clock::Manual(t),
            _ => Clock::Manual(now),
        };
    }

    /// The current time of the wrapper's clock.
    pub fn now(&self) -> Instant {
        match self.clock {
            Clock::Real(origin) => {
                Instant::from_nanos(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
            }
            Clock::Manual(t) => t,
        }
    }

    /// What the faults did so far.
    pub fn counters(&self) -> ImpairedCounters {
        ImpairedCounters {
            rx: self.rx.counters,
            tx: self.tx.counters,
        }
    }

    /// Frames held back or waiting to leave, in both directions.
    pub fn held(&self) -> usize {
        self.rx.held.len() + self.rx.ready.len() + self.tx.held.len() + self.tx.ready.len()
    }

    /// The earliest time a frame held back by time is due, in either direction.
    pub fn next_due(&self) -> Option<Instant> {
        [self.rx.next_due(), self.tx.next_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutably.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Hands ready transmit frames to the device, as many as it takes.
    fn push_tx(&mut self) {
        while !self.tx.ready.is_empty() {
            while !self.scratch.is_full() {
                let Some(f) = self.tx.ready.pop_front() else {
                    break;
                };
                self.scratch.push(f);
            }
            let sent = self.inner.tx_burst(&mut self.scratch);
            self.tx.counters.frames_out += sent as u64;
            if !self.scratch.is_empty() {
                // The device is full: what it left goes back to the front, in order.
                while let Some(f) = self.scratch.pop() {
                    self.tx.ready.push_front(f);
                }
                break;
            }
        }
    }
}

impl<P: Port> Port for Impaired<P> {
    type Frame = P::Frame;

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    fn rx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize {
        let now = self.now();
        self.rx.release_due(now);
        // Pull a burst only if `ready` has room for it with a copy of each frame.
        if self.rx.has_room(2 * BURST) {
            self.inner.rx_burst(&mut self.scratch);
            for frame in self.scratch.drain(..) {
                self.rx.admit(&mut self.inner, now, self.reorder_gap, frame);
            }
            // Frames just pulled may release reordered ones.
            self.rx.release_due(now);
        }
        let mut n = 0;
        while !batch.is_full() {
            let Some(f) = self.rx.ready.pop_front() else {
                break;
            };
            batch.push(f);
            n += 1;
        }
        self.rx.counters.frames_out += n as u64;
        n
    }

    fn alloc_tx(&mut self) -> Option<Self::Frame> {
        self.inner.alloc_tx()
    }

    fn tx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize {
        let now = self.now();
        self.tx.release_due(now);
        let mut taken = 0;
        while !batch.is_empty() && self.tx.has_room(2) {
            let frame = batch.remove(0);
            taken += 1;
            self.tx.admit(&mut self.inner, now, self.reorder_gap, frame);
        }
        self.tx.release_due(now);
        self.push_tx();
        taken
    }

    fn release(&mut self, frame: Self::Frame) {
        self.inner.release(frame);
    }

    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }

    fn set_rx_waker(&mut self, thread: std::thread::Thread) -> bool {
        self.inner.set_rx_waker(thread)
    }

    fn arm_rx_waker(&mut self) -> bool {
        self.inner.arm_rx_waker()
    }
}

impl<P: Port> Drop for Impaired<P> {
    fn drop(&mut self) {
        for d in [&mut self.rx, &mut self.tx] {
            for h in d.held.drain(..) {
                self.inner.release(h.frame);
            }
            for f in d.ready.drain(..) {
                self.inner.release(f);
            }
        }
        for f in self.scratch.drain(..) {
            self.inner.release(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// A frame of the test port: a 64-byte buffer.
    struct TestFrame {
        buf: Box<[u8]>,
        len: usize,
    }

    impl Frame for TestFrame {
        fn data(&self) -> &[u8] {
            &self.buf[..self.len]
        }
        fn data_mut(&mut self) -> &mut [u8] {
            &mut self.buf[..self.len]
        }
        fn capacity(&self) -> usize {
            self.buf.len()
        }
        fn set_len(&mut self, len: usize) {
            self.len = len.min(self.buf.len());
        }
        fn buffer_mut(&mut self) -> &mut [u8] {
            &mut self.buf
        }
    }

    /// What the test port's device holds, shared with the test.
    #[derive(Default)]
    struct Device {
        /// Payloads waiting to be received.
        incoming: VecDeque<Vec<u8>>,
        /// Payloads sent, in order.
        sent: Vec<Vec<u8>>,
        /// Frames the device takes per `tx_burst`.
        tx_room: usize,
        free: usize,
        total: usize,
    }

    /// A trivial port: a pool of `total` frames, a receive queue and a transmit log.
    struct TestPort {
        dev: Rc<RefCell<Device>>,
        caps: Capabilities,
    }

    fn test_port(total: usize) -> (TestPort, Rc<RefCell<Device>>) {
        let dev = Rc::new(RefCell::new(Device {
            tx_room: usize::MAX,
            free: total,
            total,
            ..Device::default()
        }));
        let caps = Capabilities {
            mac: shardnet::wire::EthernetAddress([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            queue: 0,
            queue_count: 1,
            rss: None,
            checksum: Default::default(),
            pool_size: total,
        };
        (
            TestPort {
                dev: dev.clone(),
                caps,
            },
            dev,
        )
    }

    impl Port for TestPort {
        type Frame = TestFrame;
        fn capabilities(&self) -> &Capabilities {
            &self.caps
        }
        fn rx_burst(&mut self, batch: &mut Batch<TestFrame>) -> usize {
            let mut n = 0;
            while !batch.is_full() {
                if self.dev.borrow().incoming.is_empty() {
                    break;
                }
                let Some(mut f) = self.alloc_tx() else { break };
                let bytes = self.dev.borrow_mut().incoming.pop_front().unwrap();
                f.buf[..bytes.len()].copy_from_slice(&bytes);
                f.len = bytes.len();
                batch.push(f);
                n += 1;
            }
            n
        }
        fn alloc_tx(&mut self) -> Option<TestFrame> {
            let mut d = self.dev.borrow_mut();
            if d.free == 0 {
                return None;
            }
            d.free -= 1;
            Some(TestFrame {
                buf: vec![0; 64].into_boxed_slice(),
                len: 0,
            })
        }
        fn tx_burst(&mut self, batch: &mut Batch<TestFrame>) -> usize {
            let mut d = self.dev.borrow_mut();
            let n = batch.len().min(d.tx_room);
            for f in batch.drain(..n) {
                d.sent.push(f.data().to_vec());
                d.free += 1;
            }
            n
        }
        fn release(&mut self, _frame: TestFrame) {
            self.dev.borrow_mut().free += 1;
        }
        fn pool_stats(&self) -> PoolStats {
            let d = self.dev.borrow();
            PoolStats {
                total: d.total,
                free: d.free,
            }
        }
    }

    fn payload(i: u32) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    fn id(bytes: &[u8]) -> u32 {
        u32::from_be_bytes(bytes[..4].try_into().unwrap())
    }

    /// Feeds `count` frames to the receive side and returns the ids the stack saw, in order,
    /// polling until nothing more comes (advancing the manual clock by 1 ms per poll).
    fn receive_all(p: &mut Impaired<TestPort>, dev: &Rc<RefCell<Device>>, count: u32) -> Vec<u32> {
        for i in 0..count {
            dev.borrow_mut().incoming.push_back(payload(i));
        }
        let mut seen = Vec::new();
        let mut t = p.now();
        for _ in 0..10_000 {
            let mut b = Batch::new();
            p.rx_burst(&mut b);
            for f in b.drain(..) {
                seen.push(id(f.data()));
                p.release(f);
            }
            if dev.borrow().incoming.is_empty() && p.held() == 0 {
                break;
            }
            t += Duration::from_millis(1);
            p.set_now(t);
        }
        seen
    }

    fn impaired(total: usize, config: ImpairedConfig) -> (Impaired<TestPort>, Rc<RefCell<Device>>) {
        let (port, dev) = test_port(total);
        let mut p = Impaired::new(port, config).unwrap();
        p.set_now(Instant::ZERO);
        (p, dev)
    }

    #[test]
    fn without_faults_frames_pass_in_order() {
        let (mut p, dev) = impaired(256, ImpairedConfig::default());
        assert_eq!(receive_all(&mut p, &dev, 500), (0..500).collect::<Vec<_>>());
        let c = p.counters();
        assert_eq!((c.rx.frames_in, c.rx.frames_out, c.rx.lost), (500, 500, 0));
        assert_eq!(p.pool_stats().free, 256);
    }

    fn lossy(seed: u64) -> ImpairedConfig {
        ImpairedConfig {
            rx: Impairments {
                loss: 0.3,
                ..Impairments::NONE
            },
            seed,
            ..ImpairedConfig::default()
        }
    }

    #[test]
    fn loss_is_seeded_counted_and_returns_frames() {
        let (mut p, dev) = impaired(256, lossy(7));
        let a = receive_all(&mut p, &dev, 2000);
        let c = p.counters().rx;
        assert_eq!(c.lost + a.len() as u64, 2000);
        assert_eq!(c.lost, c.frames_in - c.frames_out);
        assert!(
            (450..750).contains(&c.lost),
            "lost {} of 2000 at 30 %",
            c.lost
        );
        assert!(a.windows(2).all(|w| w[0] < w[1]), "loss alone keeps order");
        assert_eq!(p.pool_stats().free, 256, "lost frames go back to the pool");
        // Same seed, same losses; another seed, other losses.
        let (mut p2, dev2) = impaired(256, lossy(7));
        assert_eq!(receive_all(&mut p2, &dev2, 2000), a);
        let (mut p3, dev3) = impaired(256, lossy(8));
        assert_ne!(receive_all(&mut p3, &dev3, 2000), a);
    }

    #[test]
    fn duplicates_follow_the_original_and_need_a_buffer() {
        let config = ImpairedConfig {
            rx: Impairments {
                duplicate: 1.0,
                ..Impairments::NONE
            },
            ..ImpairedConfig::default()
        };
        let (mut p, dev) = impaired(256, config.clone());
        let seen = receive_all(&mut p, &dev, 100);
        let want: Vec<u32> = (0..100).flat_map(|i| [i, i]).collect();
        assert_eq!(seen, want);
        assert_eq!(p.counters().rx.duplicated, 100);
        assert_eq!(p.pool_stats().free, 256);
        // A pool of one frame: the received frame holds it, no copy can be made.
        let (mut p, dev) = impaired(1, config);
        assert_eq!(receive_all(&mut p, &dev, 10), (0..10).collect::<Vec<_>>());
        assert_eq!(p.counters().rx.duplicate_no_buffer, 10);
        assert_eq!(p.counters().rx.duplicated, 0);
    }

    #[test]
    fn reordered_frames_are_overtaken_by_the_gap() {
        let config = ImpairedConfig {
            rx: Impairments {
                reorder: 0.1,
                ..Impairments::NONE
            },
            reorder_gap: 3,
            seed: 3,
            ..ImpairedConfig::default()
        };
        let (mut p, dev) = impaired(512, config);
        // One frame per poll, so that the gap is counted in frames that came later.
        let mut seen = Vec::new();
        for i in 0..1000 {
            dev.borrow_mut().incoming.push_back(payload(i));
            let mut b = Batch::new();
            p.rx_burst(&mut b);
            for f in b.drain(..) {
                seen.push(id(f.data()));
                p.release(f);
            }
        }
        let held = p.held();
        assert!(
            held <= 3,
            "only the last frames can still wait for their gap"
        );
        let reordered = p.counters().rx.reordered;
        assert!((50..150).contains(&reordered), "reordered {reordered}");
        // Every frame not still held came exactly once; a held one shows up exactly 3
        // frames later than its turn (or at the end of a run of held frames).
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len());
        assert_eq!(seen.len() + held, 1000);
        let inversions = seen.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(inversions > 0 && inversions as u64 <= reordered);
        for (pos, &i) in seen.iter().enumerate() {
            assert!(
                pos as i64 - i as i64 <= 3 * 3,
                "frame {i} delivered at {pos}"
            );
        }
    }

    #[test]
    fn reorder_delay_releases_a_frame_without_later_traffic() {
        let config = ImpairedConfig {
            rx: Impairments {
                reorder: 1.0,
                reorder_delay: Duration::from_millis(5),
                ..Impairments::NONE
            },
            reorder_gap: 100,
            ..ImpairedConfig::default()
        };
        let (mut p, dev) = impaired(16, config);
        dev.borrow_mut().incoming.push_back(payload(1));
        let mut b = Batch::new();
        p.set_now(Instant::from_millis(1));
        assert_eq!(p.rx_burst(&mut b), 0);
        assert_eq!(p.next_due(), Some(Instant::from_millis(6)));
        p.set_now(Instant::from_millis(5));
        assert_eq!(p.rx_burst(&mut b), 0);
        p.set_now(Instant::from_millis(6));
        assert_eq!(p.rx_burst(&mut b), 1);
        assert_eq!(id(b[0].data()), 1);
    }

    #[test]
    fn delay_and_jitter_hold_frames_until_due() {
        let config = ImpairedConfig {
            rx: Impairments {
                delay: Duration::from_millis(10),
                jitter: Duration::from_millis(2),
                ..Impairments::NONE
            },
            ..ImpairedConfig::default()
        };
        let (mut p, dev) = impaired(64, config);
        for i in 0..20 {
            dev.borrow_mut().incoming.push_back(payload(i));
        }
        let mut b = Batch::new();
        assert_eq!(p.rx_burst(&mut b), 0);
        assert_eq!(p.counters().rx.delayed, 20);
        p.set_now(Instant::from_nanos(9_999_999));
        assert_eq!(p.rx_burst(&mut b), 0);
        p.set_now(Instant::from_millis(12));
        assert_eq!(p.rx_burst(&mut b), 20);
        let mut ids: Vec<u32> = b.iter().map(|f| id(f.data())).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn transmit_faults_and_device_backpressure() {
        let config = ImpairedConfig {
            tx: Impairments {
                loss: 0.2,
                corrupt: 0.1,
                ..Impairments::NONE
            },
            seed: 11,
            ..ImpairedConfig::default()
        };
        let (mut p, dev) = impaired(4096, config);
        dev.borrow_mut().tx_room = 5;
        let mut next = 0u32;
        for _ in 0..200 {
            let mut b = Batch::new();
            for _ in 0..10 {
                let mut f = p.alloc_tx().unwrap();
                f.buffer_mut()[..4].copy_from_slice(&payload(next));
                f.set_len(4);
                b.push(f);
                next += 1;
            }
            // The wrapper takes what it has room for; the device takes 5 per call.
            while !b.is_empty() {
                p.tx_burst(&mut b);
            }
        }
        for _ in 0..1000 {
            p.tx_burst(&mut Batch::new());
        }
        assert_eq!(p.held(), 0);
        let c = p.counters().tx;
        let sent = dev.borrow().sent.clone();
        assert_eq!(c.frames_in, 2000);
        assert_eq!(sent.len() as u64, 2000 - c.lost);
        assert_eq!(c.frames_out, sent.len() as u64);
        assert!((300..500).contains(&c.lost), "lost {}", c.lost);
        assert!(c.corrupted > 100, "corrupted {}", c.corrupted);
        // Corruption flips one bit: ids stay increasing except where a bit of one flipped.
        let intact = sent.windows(2).filter(|w| id(&w[0]) < id(&w[1])).count();
        assert!(intact as u64 >= sent.len() as u64 - 1 - 2 * c.corrupted);
        assert_eq!(p.pool_stats().free, 4096);
    }

    #[test]
    fn dropping_releases_held_frames_and_bad_configs_are_refused() {
        let config = ImpairedConfig {
            rx: Impairments {
                delay: Duration::from_secs(1),
                ..Impairments::NONE
            },
            tx: Impairments {
                delay: Duration::from_secs(1),
                ..Impairments::NONE
            },
            hold_capacity: 8,
            ..ImpairedConfig::default()
        };
        let (mut p, dev) = impaired(64, config);
        for i in 0..20 {
            dev.borrow_mut().incoming.push_back(payload(i));
        }
        let mut b = Batch::new();
        // 8 held, 12 passed at once (hold queue full).
        assert_eq!(p.rx_burst(&mut b), 12);
        assert_eq!(p.counters().rx.hold_overflow, 12);
        for f in b.drain(..) {
            p.release(f);
        }
        let f = p.alloc_tx().unwrap();
        b.push(f);
        assert_eq!(p.tx_burst(&mut b), 1);
        assert!(dev.borrow().sent.is_empty());
        assert_eq!(dev.borrow().free, 64 - 9);
        drop(p);
        assert_eq!(dev.borrow().free, 64);

        let (port, _) = test_port(4);
        let bw = ImpairedConfig {
            tx: Impairments {
                bandwidth: core::num::NonZeroU64::new(1000),
                ..Impairments::NONE
            },
            ..ImpairedConfig::default()
        };
        assert_eq!(
            Impaired::new(port, bw).err(),
            Some(ImpairedError::BandwidthUnsupported)
        );
        let (port, _) = test_port(4);
        let gap = ImpairedConfig {
            reorder_gap: 0,
            ..ImpairedConfig::default()
        };
        assert_eq!(
            Impaired::new(port, gap).err(),
            Some(ImpairedError::ZeroReorderGap)
        );
    }

    #[test]
    fn over_the_memory_wire() {
        use crate::{Wire, WireConfig};
        use shardnet::wire::EthernetAddress;
        let wire = Wire::new(WireConfig::default());
        let (mac_a, mac_b) = (
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
        );
        let a = wire.add_port(mac_a, 1);
        let b = wire.add_port(mac_b, 1);
        let config = ImpairedConfig {
            tx: Impairments {
                loss: 0.05,
                duplicate: 0.05,
                reorder: 0.05,
                ..Impairments::NONE
            },
            seed: 5,
            ..ImpairedConfig::default()
        };
        let mut pa = Impaired::new(wire.port(a, 0).unwrap(), config).unwrap();
        let mut pb = wire.port(b, 0).unwrap();
        let mut got = Vec::new();
        for i in 0..500u32 {
            let mut f = pa.alloc_tx().unwrap();
            f.buffer_mut()[..6].copy_from_slice(mac_b.as_bytes());
            f.buffer_mut()[6..12].copy_from_slice(mac_a.as_bytes());
            f.buffer_mut()[12..16].copy_from_slice(&i.to_be_bytes());
            f.set_len(60);
            let mut tx = Batch::new();
            tx.push(f);
            assert_eq!(pa.tx_burst(&mut tx), 1);
            let mut rx = Batch::new();
            pb.rx_burst(&mut rx);
            for f in rx.drain(..) {
                got.push(u32::from_be_bytes(f.data()[12..16].try_into().unwrap()));
                pb.release(f);
            }
        }
        let c = pa.counters().tx;
        assert_eq!(got.len() as u64 + p_held(&pa), 500 - c.lost + c.duplicated);
        assert!(c.lost > 0 && c.duplicated > 0 && c.reordered > 0, "{c:?}");
        assert!(got.windows(2).any(|w| w[0] > w[1]), "some frames overtaken");
        drop(pa);
        assert!(wire.all_pools_full());
    }

    fn p_held<P: Port>(p: &Impaired<P>) -> u64 {
        p.held() as u64
    }
}
