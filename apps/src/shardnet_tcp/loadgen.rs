//! The load generator as a shardnet [`App`]: one per shard, each driving its share of the
//! connections through the socket API and readiness events, with the same sans-IO
//! [`ClientConn`] (every response verified) and the same per-second [`Stats`] messages as the
//! kernel workers ([`crate::kernel::loadgen`]), so that the reports are identical.

use crate::client::{ClientConn, Pacer};
use crate::kernel::loadgen::{Mode, Msg, WorkerConfig};
use crate::report::{ErrorKind, Stats};
use crate::shardnet_tcp::StateGauges;
use shardnet::runtime::{App, AppContext};
use shardnet::socket::{
    ConnectError, Event, Readiness, RecvError, SendError, SocketError, SocketHandle, SocketOptions,
    Sockets,
};
use shardnet::time::Duration as NetDuration;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    /// No socket; may connect at `retry_at_ns`.
    Idle,
    /// connect() in progress.
    Connecting,
    /// Established, carrying requests.
    Open,
    /// Crr server-close: response verified, waiting for the server's FIN.
    AwaitFin,
}

#[derive(Debug)]
struct Slot {
    state: State,
    handle: Option<SocketHandle>,
    client: ClientConn,
    since_ns: u64,
    retry_at_ns: u64,
    intended_ns: Option<u64>,
    reserved: bool,
}

/// One shard's load generator (the shardnet twin of the kernel worker).
#[derive(Debug)]
pub struct LoadApp {
    cfg: WorkerConfig,
    start: Instant,
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
    states: Arc<StateGauges>,
    slots: Vec<Slot>,
    by_handle: HashMap<SocketHandle, usize>,
    stats: Stats,
    second: u64,
    next_id: u64,
    issued: u64,
    reserved: u64,
    issuing: bool,
    stop_issuing_at: Option<u64>,
    backlog: VecDeque<u64>,
    pacer: Option<Pacer>,
    last_sweep: u64,
    last_sample: u64,
    done: bool,
    events: Vec<Event>,
    /// Connections go to `target_ports` consecutive ports from the target's, in turn.
    target_ports: u16,
    /// Connects issued (which port the next one goes to).
    connects: u64,
    /// Fast Open: the request a connection opens with.
    first_request: Vec<u8>,
}

fn ns_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
        start: Instant,
        stop: Arc<AtomicBool>,
        tx: Sender<Msg>,
        states: Arc<StateGauges>,
    ) -> Self {
        let slots = (0..cfg.conns)
            .map(|_| Slot {
                state: State::Idle,
                handle: None,
                client: ClientConn::new(cfg.conn),
                since_ns: 0,
                retry_at_ns: 0,
                intended_ns: None,
                reserved: false,
            })
            .collect();
        LoadApp {
            next_id: (cfg.index as u64) << 40,
            pacer: cfg.rate.map(|r| Pacer::new(r, 0)),
            cfg,
            start,
            stop,
            tx,
            states,
            slots,
            by_handle: HashMap::new(),
            stats: Stats::new(),
            second: 0,
            issued: 0,
            reserved: 0,
            issuing: true,
            stop_issuing_at: None,
            backlog: VecDeque::new(),
            last_sweep: 0,
            last_sample: 0,
            done: false,
            events: Vec::new(),
            target_ports: 1,
            connects: 0,
            first_request: Vec::new(),
        }
    }

    /// Spreads connections over `n` consecutive ports from the target's (at least 1).
    pub fn with_target_ports(mut self, n: u16) -> Self {
        self.target_ports = n.max(1);
        self
    }

    fn now_ns(&self) -> u64 {
        ns_since(self.start)
    }

    fn quota_left(&self) -> bool {
        self.cfg.quota.is_none_or(|q| self.issued < q)
    }

    fn options(&self) -> SocketOptions {
        SocketOptions {
            linger: self.cfg.linger0.then_some(NetDuration::from_millis(0)),
            nodelay: Some(self.cfg.nodelay),
            quickack: Some(self.cfg.quickack),
            ..SocketOptions::default()
        }
    }

    fn tick_second(&mut self, now: u64) {
        let second = now / 1_000_000_000;
        if second > self.second {
            let s = std::mem::take(&mut self.stats);
            let _ = self.tx.send(Msg::Second(self.second, Box::new(s)));
            self.second = second;
        }
    }

    /// One step; returns true when the load has ended (drained or given up).
    fn run_step(&mut self, s: &mut Sockets<'_>) -> bool {
        if self.slots.is_empty() {
            // More shards than connections: this one has nothing to do.
            return true;
        }
        let now = self.now_ns();
        self.tick_second(now);
        let deadline_ns = nanos(self.cfg.deadline);
        let timeout_ns = nanos(self.cfg.timeout);
        if self.stop_issuing_at.is_none()
            && (now >= deadline_ns || self.stop.load(Ordering::Relaxed) || !self.quota_left())
        {
            self.stop_issuing_at = Some(now);
            self.issuing = false;
        }
        if let Some(t) = self.stop_issuing_at {
            let busy = self
                .slots
                .iter()
                .any(|s| s.client.in_flight() > 0 || s.state == State::AwaitFin);
            if !busy || now.saturating_sub(t) > nanos(self.cfg.drain) {
                return true;
            }
        }
        if let (Some(p), true) = (self.pacer.as_mut(), self.issuing) {
            while let Some(t) = p.due(now) {
                if self
                    .cfg
                    .quota
                    .is_some_and(|q| self.issued + self.backlog.len() as u64 >= q)
                {
                    break;
                }
                self.backlog.push_back(t);
            }
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
        let open_loop = self.pacer.is_some();
        for i in 0..self.slots.len() {
            self.advance(s, i, open_loop);
        }
        if now.saturating_sub(self.last_sweep) > 10_000_000 {
            self.last_sweep = now;
            for i in 0..self.slots.len() {
                let slot = &self.slots[i];
                let stale = match slot.state {
                    State::Connecting | State::AwaitFin => {
                        now.saturating_sub(slot.since_ns) > timeout_ns
                    }
                    State::Open => slot
                        .client
                        .oldest_intended_ns()
                        .is_some_and(|t| now.saturating_sub(t.max(slot.since_ns)) > timeout_ns),
                    State::Idle => false,
                };
                if stale {
                    self.fail(s, i, ErrorKind::Timeout);
                }
            }
        }
        false
    }

    fn advance(&mut self, s: &mut Sockets<'_>, i: usize, open_loop: bool) {
        let now = self.now_ns();
        match self.slots[i].state {
            State::Idle => {
                if !self.issuing || now < self.slots[i].retry_at_ns || !self.quota_left() {
                    return;
                }
                if self.cfg.mode == Mode::Crr
                    && self
                        .cfg
                        .quota
                        .is_some_and(|q| self.issued + self.reserved >= q)
                {
                    return;
                }
                let intended = if open_loop && self.cfg.mode == Mode::Crr {
                    match self.backlog.pop_front() {
                        Some(t) => Some(t),
                        None => return,
                    }
                } else {
                    // rr/stream connect up front (open loop: requests come from the backlog).
                    None
                };
                self.slots[i].intended_ns = intended;
                if self.cfg.mode == Mode::Crr {
                    self.slots[i].reserved = true;
                    self.reserved += 1;
                }
                self.connect(s, i, now);
            }
            State::Open => {
                if self.issuing && open_loop {
                    // Closed loop refills in drive(); open loop only when sends are due.
                    self.issue(i, true);
                    self.drive(s, i);
                } else if self.issuing && !self.slots[i].client.output().is_empty() {
                    self.drive(s, i);
                }
            }
            State::Connecting | State::AwaitFin => {}
        }
    }

    fn issue(&mut self, i: usize, open_loop: bool) {
        loop {
            if !self.slots[i].client.can_issue() {
                return;
            }
            if self.slots[i].reserved {
                self.slots[i].reserved = false;
                self.reserved -= 1;
            } else if !self.quota_left() {
                return;
            }
            let intended = if self.cfg.mode == Mode::Crr {
                self.slots[i]
                    .intended_ns
                    .take()
                    .unwrap_or(self.slots[i].since_ns)
            } else if open_loop {
                match self.backlog.pop_front() {
                    Some(t) => t,
                    None => return,
                }
            } else {
                self.now_ns()
            };
            let id = self.next_id;
            self.next_id += 1;
            self.issued += 1;
            self.slots[i].client.issue(id, intended, &mut self.stats);
        }
    }

    fn connect(&mut self, s: &mut Sockets<'_>, i: usize, now: u64) {
        let offset = (self.connects % u64::from(self.target_ports.max(1))) as u16;
        self.connects += 1;
        let target = self.cfg.target;
        let target =
            std::net::SocketAddrV4::new(*target.ip(), target.port().saturating_add(offset));
        // Fast Open (crr): the connection opens with its request, like Linux's
        // sendto(MSG_FASTOPEN). The request is encoded here to be handed to the connect, and
        // then issued through the client as usual: encoding is deterministic in (id, size),
        // so the client expects exactly the bytes that went out.
        let fast_open = self.cfg.fastopen && self.cfg.mode == Mode::Crr && self.slots[i].reserved;
        let result = if fast_open {
            self.first_request.clear();
            crate::protocol::encode_request(
                self.next_id,
                self.cfg.conn.size,
                &mut self.first_request,
            );
            s.connect_with_data(target, &self.first_request, &self.options())
        } else {
            s.connect(target, &self.options()).map(|h| (h, 0))
        };
        match result {
            Ok((h, queued)) => {
                self.by_handle.insert(h, i);
                let slot = &mut self.slots[i];
                slot.handle = Some(h);
                slot.since_ns = now;
                slot.client = ClientConn::new(self.cfg.conn);
                slot.state = State::Connecting;
                if fast_open {
                    self.issue(i, self.pacer.is_some());
                    self.slots[i].client.advance_output(queued, &mut self.stats);
                }
            }
            Err(e) => {
                // EADDRNOTAVAIL (no ephemeral port), ENOBUFS (connection table full), ...:
                // back off 1 ms.
                self.stats.error(match e {
                    ConnectError::AddrNotAvailable => ErrorKind::AddrNotAvail,
                    _ => ErrorKind::Other,
                });
                self.release(i);
                self.slots[i].retry_at_ns = now + 1_000_000;
            }
        }
    }

    /// A connect failed before it carried its transaction: give the transaction back.
    fn release(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.reserved {
            slot.reserved = false;
            self.reserved -= 1;
        }
        if let Some(t) = slot.intended_ns.take() {
            self.backlog.push_front(t);
        }
    }

    fn established(&mut self, s: &mut Sockets<'_>, i: usize) {
        self.slots[i].state = State::Open;
        self.stats.connects += 1;
        if self.issuing {
            self.issue(i, self.pacer.is_some());
        }
        self.drive(s, i);
    }

    fn on_event(&mut self, s: &mut Sockets<'_>, i: usize, r: Readiness) {
        let Some(h) = self.slots[i].handle else {
            return;
        };
        match self.slots[i].state {
            State::Connecting => {
                if r.contains(Readiness::ERROR) {
                    let kind = socket_error_kind(s.socket_error(h));
                    self.fail(s, i, kind);
                } else if s.is_connected(h) {
                    self.established(s, i);
                } else if r.contains(Readiness::HANGUP) {
                    self.fail(s, i, ErrorKind::Closed);
                }
            }
            State::Open | State::AwaitFin => self.drive(s, i),
            State::Idle => {}
        }
    }

    /// Writes what is queued and reads what arrived, until the socket would block.
    fn drive(&mut self, s: &mut Sockets<'_>, i: usize) {
        let Some(h) = self.slots[i].handle else {
            return;
        };
        loop {
            let mut progress = false;
            while !self.slots[i].client.output().is_empty() {
                let slot = &mut self.slots[i];
                match s.send(h, slot.client.output()) {
                    Ok(n) => {
                        slot.client.advance_output(n, &mut self.stats);
                        progress = true;
                    }
                    Err(SendError::WouldBlock) => break,
                    Err(e) => return self.fail(s, i, send_error_kind(e)),
                }
            }
            loop {
                let now = ns_since(self.start);
                let slot = &mut self.slots[i];
                let stats = &mut self.stats;
                let await_fin = slot.state == State::AwaitFin;
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
            if self.cfg.mode == Mode::Crr && self.slots[i].client.finished() {
                if self.cfg.server_close {
                    if self.slots[i].state == State::Open {
                        self.slots[i].state = State::AwaitFin;
                        self.slots[i].since_ns = self.now_ns();
                    }
                    if !progress {
                        return;
                    }
                    continue;
                }
                self.close(s, i);
                return;
            }
            if self.issuing && self.slots[i].state == State::Open && self.pacer.is_none() {
                let before = self.issued;
                self.issue(i, false);
                // New requests to write: go round again (a full send buffer is not progress).
                if self.issued > before {
                    progress = true;
                }
            }
            if !progress {
                return;
            }
        }
    }

    fn on_eof(&mut self, s: &mut Sockets<'_>, i: usize) {
        if self.slots[i].state == State::AwaitFin {
            self.close(s, i);
            return;
        }
        if self.cfg.mode == Mode::Crr
            && self.slots[i].client.in_flight() == 0
            && self.slots[i].client.finished()
        {
            // The server closed first although the client was to close: still a clean transaction.
            self.close(s, i);
            return;
        }
        self.stats.error(ErrorKind::Closed);
        self.fail_counted(s, i);
    }

    fn fail(&mut self, s: &mut Sockets<'_>, i: usize, kind: ErrorKind) {
        self.stats.error(kind);
        self.fail_counted(s, i);
    }

    /// Drops the connection after its error was counted; reconnect after 1 ms.
    fn fail_counted(&mut self, s: &mut Sockets<'_>, i: usize) {
        self.slots[i].client.abandon(&mut self.stats);
        if let Some(t) = self.slots[i].intended_ns.take() {
            self.backlog.push_front(t);
        }
        self.close(s, i);
        self.slots[i].retry_at_ns = self.now_ns() + 1_000_000;
    }

    fn close(&mut self, s: &mut Sockets<'_>, i: usize) {
        let slot = &mut self.slots[i];
        if slot.reserved {
            slot.reserved = false;
            self.reserved -= 1;
        }
        if let Some(h) = slot.handle.take() {
            // With --linger0 the connect options set SO_LINGER 0: close resets.
            let _ = s.close(h);
            self.by_handle.remove(&h);
        }
        slot.state = State::Idle;
        slot.retry_at_ns = 0;
    }

    fn finish(&mut self, s: &mut Sockets<'_>) {
        for i in 0..self.slots.len() {
            if self.slots[i].handle.is_some() {
                self.slots[i].client.abandon(&mut self.stats);
                self.close(s, i);
            }
        }
        let unsent = self.backlog.len() as u64;
        self.backlog.clear();
        let stats = std::mem::take(&mut self.stats);
        let _ = self.tx.send(Msg::Second(self.second, Box::new(stats)));
        let _ = self.tx.send(Msg::Done {
            index: self.cfg.index,
            unsent,
            error: None,
        });
        self.done = true;
    }
}

impl App for LoadApp {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
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
        let until = match &self.pacer {
            Some(p) if self.issuing => p.next_ns().saturating_sub(now),
            _ => 10_000_000,
        };
        ctx.wake_at(ctx.now + NetDuration::from_nanos(until.min(10_000_000)));
    }

    fn shutdown(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.shard.sockets(ctx.now);
        if !self.done {
            self.finish(&mut s);
        }
    }
}
