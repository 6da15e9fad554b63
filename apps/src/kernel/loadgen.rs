//! The kernel load generator: worker threads, each an epoll (mio) loop over its share of the
//! connections, driving the sans-IO [`Schedule`] (which connection does what, when) and
//! [`crate::client::ClientConn`]s, and reporting one [`crate::report::Stats`] per second to the
//! main thread.

use super::{set_fastopen_connect, set_local_port_range, set_quickack};
use crate::report::ErrorKind;
use crate::schedule::{Eof, Msg, Schedule, SlotState, WorkerConfig};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, SockRef, Socket, Type};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

struct Worker {
    sched: Schedule<TcpStream>,
    start: Instant,
    poll: Poll,
    buf: Vec<u8>,
}

fn ns_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs one worker to the end; every outcome goes to `tx`.
pub fn run_worker(cfg: WorkerConfig, start: Instant, stop: Arc<AtomicBool>, tx: Sender<Msg>) {
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.send(Msg::Done {
                index: cfg.index,
                unsent: 0,
                error: Some(format!("epoll: {e}")),
            });
            return;
        }
    };
    let mut w = Worker {
        sched: Schedule::new(cfg, tx),
        start,
        poll,
        buf: vec![0u8; 256 * 1024],
    };
    w.run(&stop);
    let registry = w.poll.registry();
    w.sched.finish(|mut stream| {
        let _ = registry.deregister(&mut stream);
    });
}

impl Worker {
    fn now_ns(&self) -> u64 {
        ns_since(self.start)
    }

    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(1024);
        let mut stale = Vec::new();
        // When epoll last returned events (for `poll_window`).
        let mut last_event = 0u64;
        loop {
            let now = self.now_ns();
            if self.sched.begin(now, stop.load(Ordering::Relaxed)) {
                return;
            }
            // Start connections and write due requests.
            for i in 0..self.sched.slots.len() {
                if self.sched.should_connect(i, now) {
                    self.connect(i, now);
                } else if self.sched.wants_write(i, now) {
                    self.drive(i);
                }
            }
            self.sched.timed_out(now, &mut stale);
            for &i in &stale {
                self.fail(i, ErrorKind::Timeout);
            }
            let polling =
                now.saturating_sub(last_event) < self.sched.cfg().poll_window.as_nanos() as u64;
            let wait = if self.sched.cfg().busy_poll || polling {
                Duration::ZERO
            } else if let Some(until) = self.sched.next_send_in(self.now_ns()) {
                // epoll_wait sleeps in whole milliseconds: sleeping through the next intended send
                // would add the client's own oversleep to the measured latency. Spin on epoll for the
                // last 1.5 ms before a send, sleep (1 ms short) before that.
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
                    self.sched.stats.error(ErrorKind::Other);
                    return;
                }
            }
            if !events.is_empty() {
                last_event = self.now_ns();
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if i < self.sched.slots.len() {
                    self.on_event(i);
                }
            }
        }
    }

    fn socket(&self) -> io::Result<Socket> {
        let cfg = self.sched.cfg();
        let s = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), None)?;
        if cfg.nodelay {
            s.set_tcp_nodelay(true)?;
        }
        if cfg.linger0 {
            s.set_linger(Some(Duration::ZERO))?;
        }
        if cfg.fastopen {
            set_fastopen_connect(&s)?;
        }
        if let Some((lo, hi)) = cfg.local_ports {
            set_local_port_range(&s, lo, hi)?;
        }
        Ok(s)
    }

    fn connect(&mut self, i: usize, now: u64) {
        let s = match self.socket() {
            Ok(s) => s,
            Err(e) => return self.sched.connect_failed(i, ErrorKind::of_io(&e), now),
        };
        // The target's ports in turn (`--target-ports`), as shardnet's load generator does.
        let target = self.sched.next_target();
        let connected = match s.connect(&target.into()) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
            // EADDRNOTAVAIL (no ephemeral port), ECONNREFUSED, ...
            Err(e) => return self.sched.connect_failed(i, ErrorKind::of_io(&e), now),
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
            return self.sched.connect_failed(i, ErrorKind::Other, now);
        }
        self.sched.connecting(i, stream, now);
        if connected {
            self.established(i);
        }
    }

    fn established(&mut self, i: usize) {
        self.sched.established(i, self.now_ns());
        self.drive(i);
    }

    fn on_event(&mut self, i: usize) {
        match self.sched.slots[i].state {
            SlotState::Connecting => {
                let Some(stream) = self.sched.slots[i].handle.as_ref() else {
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
            SlotState::Open | SlotState::AwaitFin => self.drive(i),
            SlotState::Idle => {}
        }
    }

    /// Writes what is queued and reads what arrived, until the socket would block.
    fn drive(&mut self, i: usize) {
        loop {
            let mut progress = false;
            // Write.
            loop {
                let slot = &mut self.sched.slots[i];
                let Some(stream) = slot.handle.as_mut() else {
                    return;
                };
                if slot.client.output().is_empty() {
                    break;
                }
                match stream.write(slot.client.output()) {
                    Ok(n) => {
                        slot.client.advance_output(n, &mut self.sched.stats);
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
                let quickack = self.sched.cfg().quickack;
                let slot = &mut self.sched.slots[i];
                let Some(stream) = slot.handle.as_mut() else {
                    return;
                };
                match stream.read(&mut self.buf) {
                    Ok(0) => return self.on_eof(i),
                    Ok(n) => {
                        progress = true;
                        if quickack {
                            let _ = set_quickack(stream);
                        }
                        if slot.state == SlotState::AwaitFin {
                            // Bytes after the last response: the server sent more than it was asked.
                            return self.fail(i, ErrorKind::Mismatched);
                        }
                        if slot
                            .client
                            .receive(&self.buf[..n], now, &mut self.sched.stats)
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
            if self.sched.crr_finished(i) {
                if self.sched.transaction_done(i, self.now_ns()) {
                    return self.close(i);
                }
                // Server close: keep reading until the FIN.
                if !progress {
                    return;
                }
                continue;
            }
            // Refill (closed loop) and go round again if anything moved.
            if self.sched.refill(i, self.now_ns()) {
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    fn on_eof(&mut self, i: usize) {
        match self.sched.eof(i) {
            Eof::Close => self.close(i),
            Eof::Fail => self.fail_counted(i),
        }
    }

    /// Counts `kind` and drops the connection; it reconnects after 1 ms.
    fn fail(&mut self, i: usize, kind: ErrorKind) {
        let stream = self.sched.fail(i, kind, self.now_ns());
        self.drop_stream(stream);
    }

    /// Drops the connection after its error was counted.
    fn fail_counted(&mut self, i: usize) {
        let stream = self.sched.fail_counted(i, self.now_ns());
        self.drop_stream(stream);
    }

    fn close(&mut self, i: usize) {
        let stream = self.sched.close(i);
        self.drop_stream(stream);
    }

    /// Closes a connection's socket (with --linger0, SO_LINGER 0 was set at creation: the
    /// close resets instead of sending a FIN).
    fn drop_stream(&mut self, stream: Option<TcpStream>) {
        if let Some(mut s) = stream {
            let _ = self.poll.registry().deregister(&mut s);
            if self.sched.cfg().linger0 {
                let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
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
    /// Count the TIME_WAIT entries towards the targets every second (`--tw-report`). Reading
    /// `/proc/net/tcp` formats every socket of the namespace under the hash buckets' locks:
    /// with 100 k+ TIME_WAIT entries (a client-closed crr over several server ports) that took
    /// a quarter of the load generator's core, so plain loads do not sample.
    pub time_wait: bool,
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
    // TIME_WAIT entries towards any of the ports the connects go to.
    let filter = TwFilter::Remote(cfg.worker.targets());
    let collected = collect_seconds(
        &rx,
        workers,
        start,
        cfg.progress_to_stderr,
        metrics,
        &mut |_, last| {
            if !cfg.time_wait {
                return None;
            }
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
