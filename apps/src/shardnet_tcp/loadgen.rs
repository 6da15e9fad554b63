//! The load generator as a shardnet [`App`]: one per shard, each driving its share of the
//! connections through the socket API and readiness events, with the same sans-IO
//! [`Schedule`] and [`crate::client::ClientConn`]s (every response verified) and the same
//! per-second [`crate::report::Stats`] messages as the kernel workers
//! ([`crate::kernel::loadgen`]), so that the load and the reports are identical.

use crate::report::ErrorKind;
use crate::schedule::{Eof, Mode, Msg, Schedule, SlotState, WorkerConfig};
use crate::shardnet_tcp::StateGauges;
use shardnet::runtime::{App, AppContext};
use shardnet::socket::{
    ConnectError, Event, Readiness, RecvError, SendError, SocketError, SocketHandle, SocketOptions,
    Sockets,
};
use shardnet::time::Duration as NetDuration;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// One shard's load generator (the shardnet twin of the kernel worker).
#[derive(Debug)]
pub struct LoadApp {
    sched: Schedule<SocketHandle>,
    /// When the load starts: set by the runner once every shard of the runtime is up (a
    /// shard's tables for a million connections take tens of milliseconds to build, and an
    /// open-loop load that counted that time would start with a burst of requests already
    /// late). Until then the app only waits.
    start: Arc<OnceLock<Instant>>,
    /// Nanoseconds since `start` at the start of the current step: the time stamp of
    /// everything the step sees (what it reads arrived by then). Taken from the runtime's
    /// clock reading of the iteration (`ctx.now`, the same monotonic clock) rather than one
    /// clock read per event (clock_gettime was 6 % of a memory-wire rr profile).
    now: u64,
    /// `start` on the runtime's clock, in nanoseconds (learnt at the first step).
    start_on_runtime_clock: Option<u64>,
    stop: Arc<AtomicBool>,
    states: Arc<StateGauges>,
    by_handle: super::HandleMap<usize>,
    last_sample: u64,
    done: bool,
    events: Vec<Event>,
    stale: Vec<usize>,
    /// Fast Open: the request a connection opens with.
    first_request: Vec<u8>,
}

fn ns_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn socket_error_kind(e: Option<SocketError>) -> ErrorKind {
    match e {
        Some(SocketError::ConnectionRefused) => ErrorKind::Refused,
        Some(SocketError::ConnectionReset) => ErrorKind::Reset,
        Some(SocketError::TimedOut) => ErrorKind::Timeout,
        None => ErrorKind::Other,
    }
}

fn send_error_kind(e: SendError) -> ErrorKind {
    match e {
        SendError::ConnectionRefused => ErrorKind::Refused,
        SendError::ConnectionReset | SendError::BrokenPipe => ErrorKind::Reset,
        SendError::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

fn recv_error_kind(e: RecvError) -> ErrorKind {
    match e {
        RecvError::ConnectionRefused => ErrorKind::Refused,
        RecvError::ConnectionReset => ErrorKind::Reset,
        RecvError::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

impl LoadApp {
    /// A shard's load: `cfg` is this shard's share (conns, quota and rate already split);
    /// seconds and the end go to `tx`, the TCP state histogram to `states` every 100 ms.
    pub fn new(
        cfg: WorkerConfig,
        start: Arc<OnceLock<Instant>>,
        stop: Arc<AtomicBool>,
        tx: Sender<Msg>,
        states: Arc<StateGauges>,
    ) -> Self {
        LoadApp {
            sched: Schedule::new(cfg, tx),
            start,
            now: 0,
            start_on_runtime_clock: None,
            stop,
            states,
            by_handle: super::handle_map(),
            last_sample: 0,
            done: false,
            events: Vec::new(),
            stale: Vec::new(),
            first_request: Vec::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.now
    }

    fn options(&self) -> SocketOptions {
        let cfg = self.sched.cfg();
        SocketOptions {
            linger: cfg.linger0.then_some(NetDuration::from_millis(0)),
            nodelay: Some(cfg.nodelay),
            quickack: Some(cfg.quickack),
            ..SocketOptions::default()
        }
    }

    /// One step; returns true when the load has ended (drained or given up).
    fn run_step(&mut self, s: &mut Sockets<'_>) -> bool {
        if self.sched.slots.is_empty() {
            // More shards than connections: this one has nothing to do.
            return true;
        }
        let now = self.now_ns();
        if self.sched.begin(now, self.stop.load(Ordering::Relaxed)) {
            return true;
        }
        self.events.clear();
        s.poll_events(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for e in &events {
            if let Some(&i) = self.by_handle.get(&e.socket) {
                self.on_event(s, i, e.readiness);
            }
        }
        self.events = events;
        for i in 0..self.sched.slots.len() {
            if self.sched.should_connect(i, now) {
                self.connect(s, i, now);
            } else if self.sched.wants_write(i, now) {
                self.drive(s, i);
            }
        }
        let mut stale = std::mem::take(&mut self.stale);
        self.sched.timed_out(now, &mut stale);
        for &i in &stale {
            self.fail(s, i, ErrorKind::Timeout);
        }
        self.stale = stale;
        false
    }

    fn connect(&mut self, s: &mut Sockets<'_>, i: usize, now: u64) {
        // The target's ports in turn (`--target-ports`), as the kernel workers do.
        let target = self.sched.next_target();
        let cfg = self.sched.cfg();
        // Fast Open (crr): the connection opens with its request, like Linux's
        // sendto(MSG_FASTOPEN). The request is encoded here to be handed to the connect, and
        // then issued through the client as usual: encoding is deterministic in (id, size),
        // so the client expects exactly the bytes that went out.
        let fast_open = cfg.fastopen && cfg.mode == Mode::Crr && self.sched.is_reserved(i);
        let result = if fast_open {
            self.first_request.clear();
            crate::protocol::encode_request(
                self.sched.next_id(),
                cfg.conn.size,
                &mut self.first_request,
            );
            s.connect_with_data(target, &self.first_request, &self.options())
        } else {
            s.connect(target, &self.options()).map(|h| (h, 0))
        };
        match result {
            Ok((h, queued)) => {
                self.by_handle.insert(h, i);
                self.sched.connecting(i, h, now);
                if fast_open {
                    self.sched.issue(i, now);
                    let slot = &mut self.sched.slots[i];
                    slot.client.advance_output(queued, &mut self.sched.stats);
                }
            }
            // EADDRNOTAVAIL (no ephemeral port), ENOBUFS (connection table full), ...
            Err(e) => self.sched.connect_failed(
                i,
                match e {
                    ConnectError::AddrNotAvailable => ErrorKind::AddrNotAvail,
                    _ => ErrorKind::Other,
                },
                now,
            ),
        }
    }

    fn established(&mut self, s: &mut Sockets<'_>, i: usize) {
        self.sched.established(i, self.now_ns());
        self.drive(s, i);
    }

    fn on_event(&mut self, s: &mut Sockets<'_>, i: usize, r: Readiness) {
        let Some(h) = self.sched.slots[i].handle else {
            return;
        };
        match self.sched.slots[i].state {
            SlotState::Connecting => {
                if r.contains(Readiness::ERROR) {
                    let kind = socket_error_kind(s.socket_error(h));
                    self.fail(s, i, kind);
                } else if s.is_connected(h) {
                    self.established(s, i);
                } else if r.contains(Readiness::HANGUP) {
                    self.fail(s, i, ErrorKind::Closed);
                }
            }
            SlotState::Open | SlotState::AwaitFin => self.drive(s, i),
            SlotState::Idle => {}
        }
    }

    /// Writes what is queued and reads what arrived, until the socket would block.
    fn drive(&mut self, s: &mut Sockets<'_>, i: usize) {
        let Some(h) = self.sched.slots[i].handle else {
            return;
        };
        loop {
            let mut progress = false;
            while !self.sched.slots[i].client.output().is_empty() {
                let slot = &mut self.sched.slots[i];
                match s.send(h, slot.client.output()) {
                    Ok(n) => {
                        slot.client.advance_output(n, &mut self.sched.stats);
                        progress = true;
                    }
                    Err(SendError::WouldBlock) => break,
                    Err(e) => return self.fail(s, i, send_error_kind(e)),
                }
            }
            loop {
                let now = self.now;
                let slot = &mut self.sched.slots[i];
                let stats = &mut self.sched.stats;
                let await_fin = slot.state == SlotState::AwaitFin;
                let mut fault = false;
                // Zero-copy: the response is verified in place in the receive buffer.
                let r = s.recv_with(h, |bytes| {
                    if await_fin {
                        // Bytes after the last response: the server sent more than asked.
                        stats.error(ErrorKind::Mismatched);
                        fault = true;
                    } else if slot.client.receive(bytes, now, stats).is_err() {
                        fault = true;
                    }
                    bytes.len()
                });
                match r {
                    Ok(0) => return self.on_eof(s, i),
                    Ok(_) => {
                        progress = true;
                        if fault {
                            return self.fail_counted(s, i);
                        }
                    }
                    Err(RecvError::WouldBlock) => break,
                    Err(e) => return self.fail(s, i, recv_error_kind(e)),
                }
            }
            if self.sched.crr_finished(i) {
                if self.sched.transaction_done(i, self.now_ns()) {
                    return self.close(s, i);
                }
                // Server close: keep reading until the FIN.
                if !progress {
                    return;
                }
                continue;
            }
            // Closed loop refill: new requests to write, go round again (a full send buffer
            // is not progress).
            if self.sched.refill(i, self.now_ns()) {
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    fn on_eof(&mut self, s: &mut Sockets<'_>, i: usize) {
        match self.sched.eof(i) {
            Eof::Close => self.close(s, i),
            Eof::Fail => self.fail_counted(s, i),
        }
    }

    fn fail(&mut self, s: &mut Sockets<'_>, i: usize, kind: ErrorKind) {
        let h = self.sched.fail(i, kind, self.now_ns());
        self.close_handle(s, h);
    }

    /// Drops the connection after its error was counted; it reconnects after 1 ms.
    fn fail_counted(&mut self, s: &mut Sockets<'_>, i: usize) {
        let h = self.sched.fail_counted(i, self.now_ns());
        self.close_handle(s, h);
    }

    fn close(&mut self, s: &mut Sockets<'_>, i: usize) {
        let h = self.sched.close(i);
        self.close_handle(s, h);
    }

    /// With --linger0 the connect options set SO_LINGER 0: the close resets.
    fn close_handle(&mut self, s: &mut Sockets<'_>, h: Option<SocketHandle>) {
        if let Some(h) = h {
            let _ = s.close(h);
            self.by_handle.remove(&h);
        }
    }

    fn finish(&mut self, s: &mut Sockets<'_>) {
        let by_handle = &mut self.by_handle;
        self.sched.finish(|h| {
            let _ = s.close(h);
            by_handle.remove(&h);
        });
        self.done = true;
    }
}

impl App for LoadApp {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let Some(&epoch) = self.start.get() else {
            ctx.wake_at(ctx.now + NetDuration::from_micros(100));
            return;
        };
        let runtime_now = ctx.now.as_nanos();
        let start = *self
            .start_on_runtime_clock
            .get_or_insert_with(|| runtime_now.saturating_sub(ns_since(epoch)));
        self.now = runtime_now.saturating_sub(start);
        let mut s = ctx.sockets();
        if !self.done && self.run_step(&mut s) {
            self.finish(&mut s);
        }
        let now = self.now_ns();
        if now.saturating_sub(self.last_sample) >= 100_000_000 || self.done && self.last_sample == 0
        {
            self.last_sample = now;
            self.states.publish(&s.state_histogram());
        }
        if self.done {
            return;
        }
        // Under IdlePolicy::Sleep: wake for the next open-loop send, else for the timeout sweep
        // and the per-second report.
        let until = self.sched.next_send_in(now).unwrap_or(10_000_000);
        ctx.wake_at(ctx.now + NetDuration::from_nanos(until.min(10_000_000)));
    }

    fn shutdown(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        if !self.done {
            self.finish(&mut s);
        }
    }
}
