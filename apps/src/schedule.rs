//! What a load-generator worker issues, and when, sans-IO: shared by the kernel workers
//! ([`crate::kernel::loadgen`], mio over Linux sockets) and shardnet's shard apps
//! ([`crate::shardnet_tcp::loadgen`], the socket API), so that both stacks carry exactly the
//! same load and differ only in how they move bytes.
//!
//! A [`Schedule`] owns one worker's connection [`Slot`]s (each with its sans-IO
//! [`ClientConn`]) and the accounting around them: the transaction quota, crr's one-transaction
//! reservations, the open-loop backlog of intended send times (from a [`Pacer`]), the switch
//! from issuing to draining at the deadline, timeouts, and the per-second [`Stats`] messages.
//! The worker owns the sockets: it asks the schedule what to do with a slot, does it, and
//! tells the schedule what happened. Time comes in as nanoseconds since the load's start.

use crate::client::{ClientConn, ConnConfig, Pacer};
use crate::report::{ErrorKind, Stats};
use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// The load's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Persistent connections, request/response (optionally pipelined).
    Rr,
    /// Connect, request, response, close: one transaction per connection.
    Crr,
    /// Bulk: many requests in flight per connection.
    Stream,
}

/// What one worker does.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Worker index (part of every request id).
    pub index: usize,
    /// The echo server (the first of its `target_ports` ports).
    pub target: SocketAddrV4,
    /// TCP connects go to this many consecutive ports from `target`'s, in turn (at least 1; see
    /// [`spread_target`]). Several server ports multiply the 4-tuples a client-closed crr can
    /// cycle through: with one, a client reusing TIME-WAIT tuples once a second tops out at one
    /// connection per ephemeral port per second.
    pub target_ports: u16,
    /// Mode.
    pub mode: Mode,
    /// Connections (closed loop: concurrency; open loop: the pool that carries the rate).
    pub conns: usize,
    /// Per-connection client configuration.
    pub conn: ConnConfig,
    /// Transactions to issue, if bounded.
    pub quota: Option<u64>,
    /// Open loop: this worker's rate (requests/s, crr: connections/s).
    pub rate: Option<f64>,
    /// Crr: wait for the server's FIN before closing (TIME_WAIT lands on the server).
    pub server_close: bool,
    /// SO_LINGER 0: close sends RST, no TIME_WAIT.
    pub linger0: bool,
    /// TCP_FASTOPEN_CONNECT.
    pub fastopen: bool,
    /// Ephemeral ports of the client's connects (inclusive); None: the stack's default
    /// (Linux `ip_local_port_range`, 32768-60999). Kernel: IP_LOCAL_PORT_RANGE per socket.
    pub local_ports: Option<(u16, u16)>,
    /// shardnet: reuse a TIME-WAIT 4-tuple for a new connect when timestamps make it safe
    /// (Linux `tcp_tw_reuse = 1`; for the kernel that is a sysctl, not a socket option).
    pub tw_reuse: bool,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// TCP_QUICKACK after every read.
    pub quickack: bool,
    /// Spin on epoll with a zero timeout.
    pub busy_poll: bool,
    /// Kernel sockets: poll epoll with a zero timeout for this long after the last event
    /// before sleeping in it (`--poll-us`).
    pub poll_window: Duration,
    /// A request (or connect) older than this is a timeout.
    pub timeout: Duration,
    /// Stop issuing at this time since the start.
    pub deadline: Duration,
    /// How long in-flight requests may take to finish after the deadline or quota.
    pub drain: Duration,
}

/// The address the `k`-th connect of a worker goes to: `ports` consecutive ports from
/// `target`'s, in turn (`ports` 0 counts as 1; never past port 65535).
pub fn spread_target(target: SocketAddrV4, ports: u16, k: u64) -> SocketAddrV4 {
    let offset = k % u64::from(ports.max(1));
    let port = u64::from(target.port()) + offset;
    SocketAddrV4::new(*target.ip(), u16::try_from(port).unwrap_or(u16::MAX))
}

impl WorkerConfig {
    /// Every address the worker's connects go to ([`spread_target`] of the first
    /// `target_ports` connects), e.g. for counting TIME_WAIT entries towards any of them.
    pub fn targets(&self) -> Vec<SocketAddrV4> {
        let n = self.target_ports.max(1);
        let mut v: Vec<SocketAddrV4> = (0..u64::from(n))
            .map(|k| spread_target(self.target, n, k))
            .collect();
        v.dedup();
        v
    }
}

/// Messages from the workers to the main thread.
#[derive(Debug)]
pub enum Msg {
    /// Stats of one second (index since the start).
    Second(u64, Box<Stats>),
    /// The worker ended (its last partial second was sent before); `unsent` intended open-loop
    /// sends never went out.
    Done {
        /// Worker index.
        index: usize,
        /// Unsent open-loop requests.
        unsent: u64,
        /// A fatal error, if the worker could not run.
        error: Option<String>,
    },
}

/// Where a connection slot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// No socket; may connect at `retry_at_ns`.
    Idle,
    /// connect() in progress.
    Connecting,
    /// Established, carrying requests.
    Open,
    /// Crr server-close: response verified, waiting for the server's FIN.
    AwaitFin,
}

/// One connection of the worker's pool; `H` is the worker's socket (a mio stream, a shardnet
/// socket handle).
#[derive(Debug)]
pub struct Slot<H> {
    /// Where it is.
    pub state: SlotState,
    /// Its socket, while it has one.
    pub handle: Option<H>,
    /// Its requests and the verification of their responses.
    pub client: ClientConn,
    /// When it entered its state (connect start, or crr's wait for the FIN).
    pub since_ns: u64,
    retry_at_ns: u64,
    /// Crr open loop: the intended time of the transaction this connection carries.
    intended_ns: Option<u64>,
    /// Crr: this connection holds one transaction of the quota (so that no connection is
    /// opened that will carry nothing).
    reserved: bool,
}

/// What to do at the end of a connection's stream (a read of 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eof {
    /// The transaction is complete: close.
    Close,
    /// Requests were lost with the connection: counted as an error; drop it.
    Fail,
}

/// One worker's load (see the module docs).
#[derive(Debug)]
pub struct Schedule<H> {
    cfg: WorkerConfig,
    /// The connection pool.
    pub slots: Vec<Slot<H>>,
    /// This second's statistics.
    pub stats: Stats,
    tx: Sender<Msg>,
    second: u64,
    next_id: u64,
    issued: u64,
    /// Crr: transactions reserved by connections not yet carrying their request.
    reserved: u64,
    stop_issuing_at: Option<u64>,
    backlog: VecDeque<u64>,
    pacer: Option<Pacer>,
    last_sweep: u64,
    /// Connects issued (which target port the next one goes to).
    connects: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A connection that failed (or found no port) tries again after this long.
const RETRY_NS: u64 = 1_000_000;
/// Requests and connects are checked for timeouts this often.
const SWEEP_NS: u64 = 10_000_000;

impl<H> Schedule<H> {
    /// A worker's schedule: `cfg` is this worker's share (conns, quota and rate already split);
    /// seconds and the end go to `tx`.
    pub fn new(cfg: WorkerConfig, tx: Sender<Msg>) -> Self {
        let slots = (0..cfg.conns)
            .map(|_| Slot {
                state: SlotState::Idle,
                handle: None,
                client: ClientConn::new(cfg.conn),
                since_ns: 0,
                retry_at_ns: 0,
                intended_ns: None,
                reserved: false,
            })
            .collect();
        Schedule {
            next_id: (cfg.index as u64) << 40,
            pacer: cfg.rate.map(|r| Pacer::new(r, 0)),
            cfg,
            slots,
            stats: Stats::new(),
            tx,
            second: 0,
            issued: 0,
            reserved: 0,
            stop_issuing_at: None,
            backlog: VecDeque::new(),
            last_sweep: 0,
            connects: 0,
        }
    }

    /// The worker's configuration.
    pub fn cfg(&self) -> &WorkerConfig {
        &self.cfg
    }

    /// False once the deadline, the quota or a stop request ended issuing (draining).
    pub fn issuing(&self) -> bool {
        self.stop_issuing_at.is_none()
    }

    /// Open loop (`--rate`): requests are issued at their intended times.
    pub fn open_loop(&self) -> bool {
        self.pacer.is_some()
    }

    /// Nanoseconds until the next open-loop send is due (None: closed loop or draining).
    pub fn next_send_in(&self, now: u64) -> Option<u64> {
        match &self.pacer {
            Some(p) if self.issuing() => Some(p.next_ns().saturating_sub(now)),
            _ => None,
        }
    }

    fn quota_left(&self) -> bool {
        self.cfg.quota.is_none_or(|q| self.issued < q)
    }

    /// Starts a loop iteration at `now`: reports a finished second, stops issuing at the
    /// deadline, the quota or `stop`, and queues due open-loop sends. Returns true when the
    /// load has ended: draining, and nothing is left in flight or the drain time is over (or a
    /// stop was requested more than a second ago).
    pub fn begin(&mut self, now: u64, stop: bool) -> bool {
        let second = now / 1_000_000_000;
        if second > self.second {
            let s = std::mem::take(&mut self.stats);
            let _ = self.tx.send(Msg::Second(self.second, Box::new(s)));
            self.second = second;
        }
        if self.stop_issuing_at.is_none()
            && (now >= nanos(self.cfg.deadline) || stop || !self.quota_left())
        {
            self.stop_issuing_at = Some(now);
        }
        if let Some(t) = self.stop_issuing_at {
            let busy = self
                .slots
                .iter()
                .any(|s| s.client.in_flight() > 0 || s.state == SlotState::AwaitFin);
            let draining = now.saturating_sub(t);
            if !busy || draining > nanos(self.cfg.drain) || (stop && draining > 1_000_000_000) {
                return true;
            }
        }
        if let (Some(p), true) = (self.pacer.as_mut(), self.stop_issuing_at.is_none()) {
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
        false
    }

    /// Whether idle slot `i` should connect now; if so, the transaction it will carry (crr) is
    /// reserved and the caller connects, then reports [`Schedule::connecting`] or
    /// [`Schedule::connect_failed`].
    pub fn should_connect(&mut self, i: usize, now: u64) -> bool {
        let slot = &self.slots[i];
        if slot.state != SlotState::Idle
            || !self.issuing()
            || now < slot.retry_at_ns
            || !self.quota_left()
        {
            return false;
        }
        let crr = self.cfg.mode == Mode::Crr;
        if crr
            && self
                .cfg
                .quota
                .is_some_and(|q| self.issued + self.reserved >= q)
        {
            return false;
        }
        // rr/stream connect up front (open loop: their requests come from the backlog); an
        // open-loop crr connection carries the oldest due transaction.
        let intended = if self.open_loop() && crr {
            match self.backlog.pop_front() {
                Some(t) => Some(t),
                None => return false,
            }
        } else {
            None
        };
        let slot = &mut self.slots[i];
        slot.intended_ns = intended;
        if crr {
            slot.reserved = true;
            self.reserved += 1;
        }
        true
    }

    /// Where the next connect goes: the target's ports in turn ([`spread_target`]). Each call
    /// counts one connect; call it once per connect attempt.
    pub fn next_target(&mut self) -> SocketAddrV4 {
        let t = spread_target(self.cfg.target, self.cfg.target_ports, self.connects);
        self.connects += 1;
        t
    }

    /// Crr: slot `i` holds a reserved transaction (Fast Open sends it with the connect).
    pub fn is_reserved(&self, i: usize) -> bool {
        self.slots[i].reserved
    }

    /// The id the next issued request gets (Fast Open encodes it before issuing).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Slot `i`'s connect is under way on `handle`.
    pub fn connecting(&mut self, i: usize, handle: H, now: u64) {
        let slot = &mut self.slots[i];
        slot.handle = Some(handle);
        slot.since_ns = now;
        slot.client.reset(self.cfg.conn);
        slot.state = SlotState::Connecting;
    }

    /// Slot `i`'s connect failed before it had a socket (EADDRNOTAVAIL, ENOBUFS, ...): counted
    /// as `kind`, its transaction given back, retried after 1 ms.
    pub fn connect_failed(&mut self, i: usize, kind: ErrorKind, now: u64) {
        self.stats.error(kind);
        self.give_back(i);
        self.slots[i].retry_at_ns = now + RETRY_NS;
    }

    /// Returns slot `i`'s reservation and intended time to the load.
    fn give_back(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.reserved {
            slot.reserved = false;
            self.reserved -= 1;
        }
        if let Some(t) = slot.intended_ns.take() {
            self.backlog.push_front(t);
        }
    }

    /// Slot `i` is connected: counted, and its first requests issued.
    pub fn established(&mut self, i: usize, now: u64) {
        self.slots[i].state = SlotState::Open;
        self.stats.connects += 1;
        if self.issuing() {
            self.issue(i, now);
        }
    }

    /// Whether open slot `i` has something to write this iteration (open loop: due requests
    /// are issued first). Closed loop refills as responses arrive ([`Schedule::refill`]).
    pub fn wants_write(&mut self, i: usize, now: u64) -> bool {
        if self.slots[i].state != SlotState::Open || !self.issuing() {
            return false;
        }
        if self.open_loop() {
            self.issue(i, now);
        }
        !self.slots[i].client.output().is_empty()
    }

    /// Closed loop: issues what slot `i` can carry after responses arrived; true when it
    /// issued anything.
    pub fn refill(&mut self, i: usize, now: u64) -> bool {
        if !self.issuing() || self.slots[i].state != SlotState::Open || self.open_loop() {
            return false;
        }
        let before = self.issued;
        self.issue(i, now);
        self.issued > before
    }

    /// Issues requests on slot `i` while its depth, the quota and (open loop) the backlog allow.
    pub fn issue(&mut self, i: usize, now: u64) {
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
                // One transaction per connection: from the connect's intended (or actual) start.
                let slot = &mut self.slots[i];
                slot.intended_ns.take().unwrap_or(slot.since_ns)
            } else if self.open_loop() {
                match self.backlog.pop_front() {
                    Some(t) => t,
                    None => return,
                }
            } else {
                now
            };
            let id = self.next_id;
            self.next_id += 1;
            self.issued += 1;
            self.slots[i].client.issue(id, intended, &mut self.stats);
        }
    }

    /// Crr: slot `i`'s one transaction is verified. With the client closing, returns true (the
    /// caller closes); with the server closing, the slot waits for the server's FIN and this
    /// returns false.
    pub fn transaction_done(&mut self, i: usize, now: u64) -> bool {
        if !self.cfg.server_close {
            return true;
        }
        let slot = &mut self.slots[i];
        if slot.state == SlotState::Open {
            slot.state = SlotState::AwaitFin;
            slot.since_ns = now;
        }
        false
    }

    /// Crr: slot `i` carried its one transaction.
    pub fn crr_finished(&self, i: usize) -> bool {
        self.cfg.mode == Mode::Crr && self.slots[i].client.finished()
    }

    /// The peer ended slot `i`'s stream: a clean end of a transaction, or an error (counted).
    pub fn eof(&mut self, i: usize) -> Eof {
        let slot = &self.slots[i];
        if slot.state == SlotState::AwaitFin {
            return Eof::Close;
        }
        if self.cfg.mode == Mode::Crr && slot.client.in_flight() == 0 && slot.client.finished() {
            // The server closed first although the client was to close: still a clean
            // transaction.
            return Eof::Close;
        }
        self.stats.error(ErrorKind::Closed);
        Eof::Fail
    }

    /// Counts `kind` and drops slot `i`'s connection; returns its socket for the caller to
    /// close.
    pub fn fail(&mut self, i: usize, kind: ErrorKind, now: u64) -> Option<H> {
        self.stats.error(kind);
        self.fail_counted(i, now)
    }

    /// Drops slot `i`'s connection after its error was counted: requests in flight are
    /// abandoned, an open-loop crr transaction that never got its request out goes back to the
    /// backlog, and the slot reconnects after 1 ms. Returns the socket for the caller to close.
    pub fn fail_counted(&mut self, i: usize, now: u64) -> Option<H> {
        self.slots[i].client.abandon(&mut self.stats);
        if let Some(t) = self.slots[i].intended_ns.take() {
            self.backlog.push_front(t);
        }
        let handle = self.close(i);
        self.slots[i].retry_at_ns = now + RETRY_NS;
        handle
    }

    /// Slot `i` goes back to idle; returns its socket for the caller to close.
    pub fn close(&mut self, i: usize) -> Option<H> {
        let slot = &mut self.slots[i];
        if slot.reserved {
            slot.reserved = false;
            self.reserved -= 1;
        }
        slot.state = SlotState::Idle;
        slot.retry_at_ns = 0;
        slot.handle.take()
    }

    /// Every 10 ms: the slots whose connect, FIN wait or oldest request is older than the
    /// timeout (the caller fails each with [`ErrorKind::Timeout`]).
    pub fn timed_out(&mut self, now: u64, out: &mut Vec<usize>) {
        out.clear();
        if now.saturating_sub(self.last_sweep) <= SWEEP_NS {
            return;
        }
        self.last_sweep = now;
        let timeout_ns = nanos(self.cfg.timeout);
        out.extend(self.slots.iter().enumerate().filter_map(|(i, s)| {
            let stale = match s.state {
                SlotState::Connecting | SlotState::AwaitFin => {
                    now.saturating_sub(s.since_ns) > timeout_ns
                }
                SlotState::Open => s
                    .client
                    .oldest_intended_ns()
                    .is_some_and(|t| now.saturating_sub(t.max(s.since_ns)) > timeout_ns),
                SlotState::Idle => false,
            };
            stale.then_some(i)
        }));
    }

    /// Ends the load: every open connection's requests are abandoned and its socket handed to
    /// `close`; the last partial second and the end go to the main thread.
    pub fn finish(&mut self, mut close: impl FnMut(H)) {
        for i in 0..self.slots.len() {
            if self.slots[i].handle.is_some() {
                self.slots[i].client.abandon(&mut self.stats);
                if let Some(h) = self.close(i) {
                    close(h);
                }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Exchange;

    fn cfg(mode: Mode, quota: Option<u64>, rate: Option<f64>) -> WorkerConfig {
        WorkerConfig {
            index: 0,
            target: SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 7),
            target_ports: 1,
            mode,
            conns: 2,
            conn: ConnConfig {
                size: 8,
                depth: 1,
                per_conn: (mode == Mode::Crr).then_some(1),
                exchange: Exchange::Echo,
            },
            quota,
            rate,
            server_close: false,
            linger0: false,
            fastopen: false,
            local_ports: None,
            tw_reuse: false,
            nodelay: true,
            quickack: false,
            busy_poll: false,
            poll_window: Duration::ZERO,
            timeout: Duration::from_millis(5),
            deadline: Duration::from_secs(10),
            drain: Duration::from_secs(1),
        }
    }

    #[test]
    fn crr_reserves_the_quota_so_no_connection_opens_to_carry_nothing() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut s: Schedule<u32> = Schedule::new(cfg(Mode::Crr, Some(1), None), tx);
        assert!(s.should_connect(0, 0));
        s.connecting(0, 10, 0);
        // The one transaction is reserved by slot 0: slot 1 must not open.
        assert!(!s.should_connect(1, 0));
        // Slot 0 closes without carrying it: the reservation comes back to the load.
        assert_eq!(s.close(0), Some(10));
        assert!(s.should_connect(1, 0));
    }

    #[test]
    fn failed_connect_backs_off_one_millisecond() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut s: Schedule<u32> = Schedule::new(cfg(Mode::Rr, None, None), tx);
        assert!(s.should_connect(0, 0));
        s.connect_failed(0, ErrorKind::AddrNotAvail, 0);
        assert!(!s.should_connect(0, RETRY_NS - 1));
        assert!(s.should_connect(0, RETRY_NS));
    }

    #[test]
    fn load_ends_at_the_deadline_once_nothing_is_in_flight() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut s: Schedule<u32> = Schedule::new(cfg(Mode::Rr, None, None), tx);
        assert!(!s.begin(0, false));
        assert!(s.should_connect(0, 0));
        s.connecting(0, 1, 0);
        s.established(0, 0);
        assert_eq!(s.slots[0].client.in_flight(), 1);
        // Past the deadline with a request in flight: draining, not ended.
        let deadline = nanos(Duration::from_secs(10));
        assert!(!s.begin(deadline, false));
        assert!(!s.issuing());
        // The drain time is over: ended.
        assert!(s.begin(deadline + nanos(Duration::from_secs(1)) + 1, false));
        // Each call that crossed into a new second reported the one before: seconds 0 and 10.
        let seconds: Vec<u64> = rx
            .try_iter()
            .filter_map(|m| match m {
                Msg::Second(k, _) => Some(k),
                Msg::Done { .. } => None,
            })
            .collect();
        assert_eq!(seconds, vec![0, 10]);
    }

    #[test]
    fn stale_connects_are_reported_by_the_sweep_every_10_ms() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut s: Schedule<u32> = Schedule::new(cfg(Mode::Rr, None, None), tx);
        assert!(s.should_connect(0, 0));
        s.connecting(0, 1, 0);
        let mut stale = Vec::new();
        // 6 ms: older than the 5 ms timeout, but no sweep is due yet.
        s.timed_out(6_000_000, &mut stale);
        assert!(stale.is_empty());
        s.timed_out(SWEEP_NS + 1, &mut stale);
        assert_eq!(stale, vec![0]);
        // The next sweep is 10 ms later.
        s.timed_out(SWEEP_NS + 2, &mut stale);
        assert!(stale.is_empty());
    }

    #[test]
    fn open_loop_crr_connections_carry_due_transactions_only() {
        let (tx, _rx) = std::sync::mpsc::channel();
        // 1000 connections/s: one due every millisecond.
        let mut s: Schedule<u32> = Schedule::new(cfg(Mode::Crr, None, Some(1000.0)), tx);
        assert!(!s.begin(0, false));
        // One transaction is due at time 0: one connection opens for it, not two.
        assert!(s.should_connect(0, 0));
        assert!(!s.should_connect(1, 0));
        // By 2 ms two more are due.
        assert!(!s.begin(2_000_000, false));
        assert!(s.should_connect(1, 2_000_000));
    }

    #[test]
    fn connects_take_the_target_ports_in_turn() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut c = cfg(Mode::Crr, None, None);
        c.target = SocketAddrV4::new(std::net::Ipv4Addr::new(198, 18, 0, 1), 20000);
        c.target_ports = 3;
        let mut s: Schedule<u32> = Schedule::new(c.clone(), tx);
        let ports: Vec<u16> = (0..7).map(|_| s.next_target().port()).collect();
        assert_eq!(ports, [20000, 20001, 20002, 20000, 20001, 20002, 20000]);
        assert!(
            (0..7).all(|k| *spread_target(c.target, 3, k).ip() == *c.target.ip()),
            "only the port changes"
        );
        let targets: Vec<u16> = c.targets().iter().map(|a| a.port()).collect();
        assert_eq!(targets, [20000, 20001, 20002]);
    }

    #[test]
    fn one_target_port_keeps_every_connect_on_the_target() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut c = cfg(Mode::Rr, None, None);
        for n in [0, 1] {
            c.target_ports = n;
            let mut s: Schedule<u32> = Schedule::new(c.clone(), tx.clone());
            assert!((0..5).all(|_| s.next_target() == c.target), "{n} ports");
            assert_eq!(c.targets(), [c.target]);
        }
    }

    #[test]
    fn spreading_never_wraps_past_port_65535() {
        let t = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 65534);
        let ports: Vec<u16> = (0..4).map(|k| spread_target(t, 4, k).port()).collect();
        assert_eq!(ports, [65534, 65535, 65535, 65535]);
    }
}
