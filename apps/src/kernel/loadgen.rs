//! The kernel load generator: worker threads, each an epoll (mio) loop over its share of the
//! connections, driving the sans-IO [`ClientConn`]s of [`crate::client`] and reporting one
//! [`Stats`] per second to the main thread.

use super::{set_fastopen_connect, set_quickack};
use crate::client::{ClientConn, ConnConfig, Pacer};
use crate::report::{ErrorKind, Stats};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, SockRef, Socket, Type};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

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
    /// The echo server.
    pub target: SocketAddrV4,
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
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// TCP_QUICKACK after every read.
    pub quickack: bool,
    /// Spin on epoll with a zero timeout.
    pub busy_poll: bool,
    /// A request (or connect) older than this is a timeout.
    pub timeout: Duration,
    /// Stop issuing at this time since the start.
    pub deadline: Duration,
    /// How long in-flight requests may take to finish after the deadline or quota.
    pub drain: Duration,
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

#[derive(Debug, PartialEq, Eq)]
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

struct Slot {
    state: State,
    stream: Option<TcpStream>,
    client: ClientConn,
    since_ns: u64,
    retry_at_ns: u64,
    /// Crr open loop: the intended time of the transaction this connection carries.
    intended_ns: Option<u64>,
    /// Crr: this connection holds one transaction of the quota (so that no connection is
    /// opened that will carry nothing).
    reserved: bool,
}

struct Worker {
    cfg: WorkerConfig,
    start: Instant,
    poll: Poll,
    slots: Vec<Slot>,
    stats: Stats,
    second: u64,
    tx: Sender<Msg>,
    next_id: u64,
    issued: u64,
    /// Crr: transactions reserved by connections not yet carrying their request.
    reserved: u64,
    /// False once the deadline, the quota or a signal stopped new requests (draining).
    issuing: bool,
    backlog: VecDeque<u64>,
    buf: Vec<u8>,
}

fn ns_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs one worker to the end; every outcome goes to `tx`.
pub fn run_worker(cfg: WorkerConfig, start: Instant, stop: Arc<AtomicBool>, tx: Sender<Msg>) {
    let index = cfg.index;
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.send(Msg::Done {
                index,
                unsent: 0,
                error: Some(format!("epoll: {e}")),
            });
            return;
        }
    };
    let slots = (0..cfg.conns)
        .map(|_| Slot {
            state: State::Idle,
            stream: None,
            client: ClientConn::new(cfg.conn),
            since_ns: 0,
            retry_at_ns: 0,
            intended_ns: None,
            reserved: false,
        })
        .collect();
    let mut w = Worker {
        next_id: (index as u64) << 40,
        cfg,
        start,
        poll,
        slots,
        stats: Stats::new(),
        second: 0,
        tx,
        issued: 0,
        reserved: 0,
        issuing: true,
        backlog: VecDeque::new(),
        buf: vec![0u8; 256 * 1024],
    };
    let unsent = w.run(&stop);
    let _ = w.tx.send(Msg::Second(w.second, Box::new(w.stats.clone())));
    let _ = w.tx.send(Msg::Done {
        index,
        unsent,
        error: None,
    });
}

impl Worker {
    fn now_ns(&self) -> u64 {
        ns_since(self.start)
    }

    fn quota_left(&self) -> bool {
        self.cfg.quota.is_none_or(|q| self.issued < q)
    }

    /// Returns the number of unsent open-loop requests.
    fn run(&mut self, stop: &AtomicBool) -> u64 {
        let mut pacer = self.cfg.rate.map(|r| Pacer::new(r, 0));
        let mut events = Events::with_capacity(1024);
        let deadline_ns = u64::try_from(self.cfg.deadline.as_nanos()).unwrap_or(u64::MAX);
        let timeout_ns = u64::try_from(self.cfg.timeout.as_nanos()).unwrap_or(u64::MAX);
        let mut stop_issuing_at: Option<u64> = None;
        let mut last_sweep = 0u64;
        loop {
            let now = self.now_ns();
            self.tick_second(now);
            let issuing = stop_issuing_at.is_none();
            if issuing && (now >= deadline_ns || stop.load(Ordering::Relaxed) || !self.quota_left())
            {
                stop_issuing_at = Some(now);
                self.issuing = false;
            }
            if let Some(t) = stop_issuing_at {
                let busy = self
                    .slots
                    .iter()
                    .any(|s| s.client.in_flight() > 0 || s.state == State::AwaitFin);
                let drained_enough = now.saturating_sub(t)
                    > u64::try_from(self.cfg.drain.as_nanos()).unwrap_or(u64::MAX);
                if !busy
                    || drained_enough
                    || (stop.load(Ordering::Relaxed) && now.saturating_sub(t) > 1_000_000_000)
                {
                    break;
                }
            }
            // Open loop: collect due sends.
            if let (Some(p), true) = (pacer.as_mut(), stop_issuing_at.is_none()) {
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
            // Start connections and requests.
            for i in 0..self.slots.len() {
                self.advance(i, stop_issuing_at.is_none(), pacer.is_some());
            }
            // Timeouts, every 10 ms.
            if now.saturating_sub(last_sweep) > 10_000_000 {
                last_sweep = now;
                for i in 0..self.slots.len() {
                    let s = &self.slots[i];
                    let stale = match s.state {
                        State::Connecting | State::AwaitFin => {
                            now.saturating_sub(s.since_ns) > timeout_ns
                        }
                        State::Open => s
                            .client
                            .oldest_intended_ns()
                            .is_some_and(|t| now.saturating_sub(t.max(s.since_ns)) > timeout_ns),
                        State::Idle => false,
                    };
                    if stale {
                        self.fail(i, ErrorKind::Timeout);
                    }
                }
            }
            let wait = if self.cfg.busy_poll {
                Duration::ZERO
            } else if let Some(p) = &pacer {
                // epoll_wait sleeps in whole milliseconds: sleeping through the next intended send
                // would add the client's own oversleep to the measured latency. Spin on epoll for the
                // last 1.5 ms before a send, sleep (1 ms short) before that.
                let until = p.next_ns().saturating_sub(self.now_ns());
                if until < 1_500_000 {
                    Duration::ZERO
                } else {
                    Duration::from_nanos((until - 1_000_000).min(10_000_000))
                }
            } else {
                Duration::from_millis(10)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.stats.error(ErrorKind::Other);
                    break;
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if i < self.slots.len() {
                    self.on_event(i);
                }
            }
        }
        for i in 0..self.slots.len() {
            if self.slots[i].stream.is_some() {
                self.slots[i].client.abandon(&mut self.stats);
                self.close(i);
            }
        }
        let unsent = self.backlog.len() as u64;
        self.backlog.clear();
        unsent
    }

    fn tick_second(&mut self, now: u64) {
        let second = now / 1_000_000_000;
        if second > self.second {
            let s = std::mem::take(&mut self.stats);
            let _ = self.tx.send(Msg::Second(self.second, Box::new(s)));
            self.second = second;
        }
    }

    /// Connects an idle slot or issues requests on an open one, as the load allows.
    fn advance(&mut self, i: usize, issuing: bool, open_loop: bool) {
        let now = self.now_ns();
        match self.slots[i].state {
            State::Idle => {
                if !issuing || now < self.slots[i].retry_at_ns || !self.quota_left() {
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
                let intended = if open_loop {
                    if self.cfg.mode != Mode::Crr {
                        // rr/stream connect up front; requests come from the backlog.
                        None
                    } else {
                        match self.backlog.pop_front() {
                            Some(t) => Some(t),
                            None => return,
                        }
                    }
                } else {
                    None
                };
                self.slots[i].intended_ns = intended;
                if self.cfg.mode == Mode::Crr {
                    self.slots[i].reserved = true;
                    self.reserved += 1;
                }
                self.connect(i, now);
            }
            State::Open => {
                if issuing {
                    self.issue(i, open_loop);
                }
                self.drive(i);
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
                // One transaction per connection: from the connect's intended (or actual) start.
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

    fn socket(&self) -> io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None)?;
        if self.cfg.nodelay {
            s.set_tcp_nodelay(true)?;
        }
        if self.cfg.linger0 {
            s.set_linger(Some(Duration::ZERO))?;
        }
        if self.cfg.fastopen {
            set_fastopen_connect(&s)?;
        }
        Ok(s)
    }

    fn connect(&mut self, i: usize, now: u64) {
        let s = match self.socket() {
            Ok(s) => s,
            Err(e) => {
                self.stats.error(ErrorKind::of_io(&e));
                self.release(i);
                self.slots[i].retry_at_ns = now + 1_000_000;
                return;
            }
        };
        let connected = match s.connect(&self.cfg.target.into()) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
            Err(e) => {
                // EADDRNOTAVAIL (no ephemeral port), ECONNREFUSED, ...: back off 1 ms.
                self.stats.error(ErrorKind::of_io(&e));
                self.release(i);
                self.slots[i].retry_at_ns = now + 1_000_000;
                return;
            }
        };
        let mut stream = TcpStream::from_std(std::net::TcpStream::from(s));
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.stats.error(ErrorKind::Other);
            self.release(i);
            self.slots[i].retry_at_ns = now + 1_000_000;
            return;
        }
        let slot = &mut self.slots[i];
        slot.stream = Some(stream);
        slot.since_ns = now;
        slot.client = ClientConn::new(self.cfg.conn);
        slot.state = State::Connecting;
        if connected {
            self.established(i);
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

    fn established(&mut self, i: usize) {
        self.slots[i].state = State::Open;
        self.stats.connects += 1;
        let open_loop = self.cfg.rate.is_some();
        if self.issuing {
            self.issue(i, open_loop);
        }
        self.drive(i);
    }

    fn on_event(&mut self, i: usize) {
        match self.slots[i].state {
            State::Connecting => {
                let Some(stream) = self.slots[i].stream.as_ref() else {
                    return;
                };
                match stream.take_error() {
                    Ok(Some(e)) | Err(e) => self.fail(i, ErrorKind::of_io(&e)),
                    Ok(None) => match stream.peer_addr() {
                        Ok(_) => self.established(i),
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                        Err(e) => self.fail(i, ErrorKind::of_io(&e)),
                    },
                }
            }
            State::Open | State::AwaitFin => self.drive(i),
            State::Idle => {}
        }
    }

    /// Writes what is queued and reads what arrived, until the socket would block.
    fn drive(&mut self, i: usize) {
        loop {
            let mut progress = false;
            // Write.
            loop {
                let slot = &mut self.slots[i];
                let Some(stream) = slot.stream.as_mut() else {
                    return;
                };
                if slot.client.output().is_empty() {
                    break;
                }
                match stream.write(slot.client.output()) {
                    Ok(n) => {
                        slot.client.advance_output(n, &mut self.stats);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // TCP_FASTOPEN_CONNECT without a cookie: the SYN went out alone.
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.fail(i, ErrorKind::of_io(&e)),
                }
            }
            // Read.
            loop {
                let now = ns_since(self.start);
                let slot = &mut self.slots[i];
                let Some(stream) = slot.stream.as_mut() else {
                    return;
                };
                match stream.read(&mut self.buf) {
                    Ok(0) => return self.on_eof(i),
                    Ok(n) => {
                        progress = true;
                        if self.cfg.quickack {
                            let _ = set_quickack(stream);
                        }
                        if slot.state == State::AwaitFin {
                            // Bytes after the last response: the server sent more than it was asked.
                            self.stats.error(ErrorKind::Mismatched);
                            return self.fail_counted(i);
                        }
                        if slot
                            .client
                            .receive(&self.buf[..n], now, &mut self.stats)
                            .is_err()
                        {
                            return self.fail_counted(i);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.fail(i, ErrorKind::of_io(&e)),
                }
            }
            if self.cfg.mode == Mode::Crr && self.slots[i].client.finished() {
                if self.cfg.server_close {
                    if self.slots[i].state == State::Open {
                        self.slots[i].state = State::AwaitFin;
                        self.slots[i].since_ns = self.now_ns();
                    }
                    // Keep reading until the FIN.
                    if !progress {
                        return;
                    }
                    continue;
                }
                self.close(i);
                return;
            }
            // Refill (closed loop) and go round again if anything moved.
            if self.issuing && self.slots[i].state == State::Open && self.cfg.rate.is_none() {
                self.issue(i, false);
            }
            if !progress {
                return;
            }
        }
    }

    fn on_eof(&mut self, i: usize) {
        if self.slots[i].state == State::AwaitFin {
            self.close(i);
            return;
        }
        if self.slots[i].client.in_flight() > 0 {
            self.stats.error(ErrorKind::Closed);
        } else if self.cfg.mode == Mode::Crr {
            // The server closed first although the client was to close: still a clean transaction.
            if self.slots[i].client.finished() {
                self.close(i);
                return;
            }
            self.stats.error(ErrorKind::Closed);
        } else {
            self.stats.error(ErrorKind::Closed);
        }
        self.fail_counted(i);
    }

    /// Counts `kind` and drops the connection.
    fn fail(&mut self, i: usize, kind: ErrorKind) {
        self.stats.error(kind);
        self.fail_counted(i);
    }

    /// Drops the connection after its error was counted; reconnect after 1 ms.
    fn fail_counted(&mut self, i: usize) {
        self.slots[i].client.abandon(&mut self.stats);
        if let Some(t) = self.slots[i].intended_ns.take() {
            // Crr open loop: the transaction never got a request out; retry it on another connection.
            self.backlog.push_front(t);
        }
        self.close(i);
        self.slots[i].retry_at_ns = self.now_ns() + 1_000_000;
    }

    fn close(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.reserved {
            slot.reserved = false;
            self.reserved -= 1;
        }
        if let Some(mut s) = slot.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
            if self.cfg.linger0 {
                // Already set at creation; a reset (not a FIN) ends the connection on drop.
                let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
        slot.state = State::Idle;
        slot.retry_at_ns = 0;
    }
}

/// A whole kernel load: the workers' template and how to split it.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Template of every worker (conns, quota and rate are the totals; they are split).
    pub worker: WorkerConfig,
    /// Worker threads.
    pub shards: usize,
    /// Print progress lines to stderr instead of stdout (with `--json`).
    pub progress_to_stderr: bool,
}

/// What a load produced.
#[derive(Debug)]
pub struct LoadResult {
    /// Per-second stats of all workers merged, with TIME_WAIT samples.
    pub series: crate::report::Series,
    /// Wall time from the start to the last worker's end.
    pub elapsed: Duration,
    /// Wall-clock start (for the interval log).
    pub start_wall: std::time::SystemTime,
    /// Open-loop sends that never went out.
    pub unsent: u64,
}

fn split(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts.max(1) as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

/// Runs the load on `shards` threads, printing a progress line per second; `metrics` (if any)
/// is updated as seconds complete.
pub fn run_load(
    cfg: &LoadConfig,
    stop: &Arc<AtomicBool>,
    metrics: Option<&crate::metrics::LoadgenMetrics>,
) -> Result<LoadResult, String> {
    use crate::timewait::{TwFilter, count_time_wait};
    let shards = cfg.shards.max(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    let start_wall = std::time::SystemTime::now();
    let mut threads = Vec::new();
    for i in 0..shards {
        let mut w = cfg.worker.clone();
        w.index = i;
        w.conns = split(cfg.worker.conns as u64, shards, i) as usize;
        w.quota = cfg.worker.quota.map(|q| split(q, shards, i));
        w.rate = cfg.worker.rate.map(|r| r / shards as f64);
        if w.conns == 0 {
            continue;
        }
        let tx = tx.clone();
        let stop = Arc::clone(stop);
        let t = std::thread::Builder::new()
            .name(format!("loadgen-{i}"))
            .spawn(move || run_worker(w, start, stop, tx))
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        threads.push(t);
    }
    drop(tx);
    let workers = threads.len();
    let filter = TwFilter::Remote(cfg.worker.target);
    let collected = collect_seconds(
        &rx,
        workers,
        start,
        cfg.progress_to_stderr,
        metrics,
        &mut |_, last| {
            if !last {
                return count_time_wait(&filter).ok();
            }
            // The workers' last closes finish in the background (FIN, the server's FIN, then
            // TIME_WAIT): sample once the count stops rising, within 200 ms.
            let mut n = count_time_wait(&filter).ok();
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(10));
                let again = count_time_wait(&filter).ok();
                if again == n {
                    break;
                }
                n = again;
            }
            n
        },
    );
    let mut errors = collected.errors;
    for t in threads {
        if t.join().is_err() {
            errors.push("a worker thread panicked".to_string());
        }
    }
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let (series, elapsed, unsent) = (collected.series, collected.elapsed, collected.unsent);
    Ok(LoadResult {
        series,
        elapsed,
        start_wall,
        unsent,
    })
}

/// What [`collect_seconds`] gathered from the workers.
#[derive(Debug)]
pub struct Collected {
    /// Per-second stats of all workers merged, with TIME_WAIT samples.
    pub series: crate::report::Series,
    /// Time from `start` to the last worker's end.
    pub elapsed: Duration,
    /// Open-loop sends that never went out.
    pub unsent: u64,
    /// Fatal errors the workers reported.
    pub errors: Vec<String>,
}

/// Receives the workers' [`Msg`]s until `workers` of them are done (or all senders are gone),
/// printing a progress line per second once every worker reported it (or 300 ms after it
/// ended). `time_wait(second, last)` samples the TIME_WAIT count printed with that second
/// (`None`: unknown; `last` is true for the seconds printed after every worker ended);
/// `metrics` (if any) is updated as seconds complete.
///
/// Shared by every stack: the kernel's worker threads and shardnet's shard apps send the same
/// messages.
pub fn collect_seconds(
    rx: &std::sync::mpsc::Receiver<Msg>,
    workers: usize,
    start: Instant,
    progress_to_stderr: bool,
    metrics: Option<&crate::metrics::LoadgenMetrics>,
    time_wait: &mut dyn FnMut(u64, bool) -> Option<u64>,
) -> Collected {
    use crate::report::{Series, progress_line};
    let mut series = Series::new();
    let mut reported: Vec<usize> = Vec::new();
    let mut printed = 0u64;
    let mut done = 0;
    let mut unsent = 0;
    let mut errors = Vec::new();
    let mut print = |series: &mut Series, second: u64, last: bool| {
        if let Some(tw) = time_wait(second, last) {
            series.set_time_wait(second, tw);
        }
        let line = progress_line(&series.second(second));
        if progress_to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        if let Some(m) = metrics {
            m.time_wait
                .set(series.second(second).time_wait.unwrap_or(0));
        }
    };
    while done < workers {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Second(k, s)) => {
                if let Some(m) = metrics {
                    m.add(&s);
                }
                series.add(k, &s);
                let k = k as usize;
                if reported.len() <= k {
                    reported.resize(k + 1, 0);
                }
                reported[k] += 1;
            }
            Ok(Msg::Done {
                unsent: u, error, ..
            }) => {
                done += 1;
                unsent += u;
                errors.extend(error);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // A second is printed when every worker reported it, or 300 ms after it ended.
        let elapsed_ns = ns_since(start);
        while (printed as usize) < reported.len()
            && (reported[printed as usize] >= workers - done.min(workers)
                || elapsed_ns > (printed + 1) * 1_000_000_000 + 300_000_000)
            && elapsed_ns >= (printed + 1) * 1_000_000_000
        {
            print(&mut series, printed, false);
            printed += 1;
        }
    }
    let elapsed = start.elapsed();
    // The last, partial second.
    while (printed as usize) < series.len() {
        print(&mut series, printed, true);
        printed += 1;
    }
    Collected {
        series,
        elapsed,
        unsent,
        errors,
    }
}
