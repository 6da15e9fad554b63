//! shardnet's client app in the kernel-interop tests, against a Linux server: connection churn,
//! one bulk echo, a half-close and an abort (see [`ClientMode`]). Every byte it sends is the
//! pattern and every byte it reads back is checked against it; CRC-32s of both directions are
//! kept as well. [`run_client`] runs it on a shard until it is done.

use super::pattern::pattern;
use super::servers::{HALF_IN, HALF_OUT};
use super::shard::{Idle, histogram, lock, runtime_config};
use shardnet::port::Port;
use shardnet::runtime::{App, AppContext, Runtime};
use shardnet::socket::{
    Event, RecvError, Shutdown, SockOpt, SocketHandle, SocketOptions, StateHistogram,
};
use shardnet::tcp::State;
use shardnet::time::Duration;
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a shardnet client does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientMode {
    /// `total` connections (up to 16 at a time), connection `i` sending 32 bytes of the
    /// pattern from offset `i`, reading the echo and closing first.
    Churn,
    /// One connection sending `total` bytes while reading the echo, closing first once all of
    /// it is back.
    Bulk,
    /// One connection sending [`HALF_IN`] bytes, `shutdown(Write)`, then reading to EOF
    /// ([`HALF_OUT`] bytes of the pattern expected).
    HalfClose,
    /// One connection sending 5 bytes and, once the server's 2-byte greeting arrived, closing
    /// with `SO_LINGER` 0.
    Abort,
}

struct ClientConn {
    sent: usize,
    received: usize,
    shut: bool,
    seq: usize,
}

/// What a shardnet client saw, shared with the test thread.
#[derive(Default, Debug)]
pub struct ClientStats {
    /// Connections opened.
    pub started: usize,
    /// Connections that ended as expected.
    pub done: usize,
    /// Failures: a connection error, a byte other than the pattern, an early or short EOF.
    pub bad: usize,
    /// The TCP state when the first byte after our `shutdown(Write)` was read.
    pub state_after_shutdown: Option<State>,
    /// Bytes read by the connections that ended.
    pub received: usize,
    /// CRC-32 of every byte sent, and of every byte received (set when the client is done).
    pub sent_crc: u32,
    /// See `sent_crc`.
    pub received_crc: u32,
}

/// A shardnet client app (see [`ClientMode`]).
pub struct Client {
    mode: ClientMode,
    server: SocketAddrV4,
    total: usize,
    conns: HashMap<SocketHandle, ClientConn>,
    events: Vec<Event>,
    sent_crc: crc32fast::Hasher,
    received_crc: crc32fast::Hasher,
    stats: Arc<Mutex<ClientStats>>,
    finished: Arc<AtomicBool>,
}

impl Client {
    /// A client of `server` doing `mode`; `total` is the connections of a churn and the bytes
    /// of a bulk transfer (unused otherwise).
    pub fn new(mode: ClientMode, server: SocketAddrV4, total: usize) -> Client {
        Client {
            mode,
            server,
            total,
            conns: HashMap::new(),
            events: Vec::new(),
            sent_crc: crc32fast::Hasher::new(),
            received_crc: crc32fast::Hasher::new(),
            stats: Arc::default(),
            finished: Arc::default(),
        }
    }

    /// Moves a connection forward; true when it is finished (to be closed by us).
    fn drive(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) -> bool {
        let mode = self.mode;
        let Some(c) = self.conns.get_mut(&h) else {
            return false;
        };
        if !s.is_connected(h) {
            if s.socket_error(h).is_some() {
                lock(&self.stats).bad += 1;
                return true;
            }
            return false;
        }
        let to_send = match mode {
            ClientMode::Churn => 32,
            ClientMode::Bulk => self.total,
            ClientMode::HalfClose => HALF_IN,
            ClientMode::Abort => 5,
        };
        let expect = match mode {
            ClientMode::HalfClose => HALF_OUT,
            _ => to_send,
        };
        let base = if mode == ClientMode::Churn { c.seq } else { 0 };
        // Until neither direction moves: a bulk transfer keeps both going in one step.
        let mut progress = true;
        while progress {
            progress = false;
            while c.sent < to_send {
                let at = c.sent;
                let sent_crc = &mut self.sent_crc;
                match s.send_with(h, (to_send - at).min(64 * 1024), |buf| {
                    for (k, b) in buf.iter_mut().enumerate() {
                        *b = pattern(base + at + k);
                    }
                    sent_crc.update(buf);
                    buf.len()
                }) {
                    Ok(n) if n > 0 => {
                        c.sent += n;
                        progress = true;
                    }
                    _ => break,
                }
            }
            // Bulk reads the echo while it sends: an echo server that buffers little (socat's
            // pipe) would otherwise wait for us to read while we wait for it to.
            if c.sent < to_send && mode != ClientMode::Bulk {
                return false;
            }
            match mode {
                ClientMode::Abort => {
                    // Abort once the server's greeting shows it accepted the connection.
                    while let Ok(n) = s.recv_with(h, |bytes| bytes.len()) {
                        if n == 0 {
                            break;
                        }
                        c.received += n;
                    }
                    if c.received < 2 {
                        return false;
                    }
                    let r = s.set_option(h, SockOpt::Linger(Some(Duration::ZERO)));
                    let mut st = lock(&self.stats);
                    if r.is_ok() {
                        st.done += 1;
                    } else {
                        st.bad += 1;
                    }
                    return true;
                }
                ClientMode::HalfClose if !c.shut => {
                    if s.shutdown(h, Shutdown::Write).is_err() {
                        lock(&self.stats).bad += 1;
                        return true;
                    }
                    c.shut = true;
                }
                _ => {}
            }
            loop {
                let at = c.received;
                let mut wrong = false;
                let received_crc = &mut self.received_crc;
                match s.recv_with(h, |bytes| {
                    wrong = bytes
                        .iter()
                        .enumerate()
                        .any(|(k, &b)| b != pattern(base + at + k));
                    received_crc.update(bytes);
                    bytes.len()
                }) {
                    Ok(0) => {
                        // EOF: the end for a half-close, short for the others unless all
                        // the echo is in.
                        let mut st = lock(&self.stats);
                        if c.received != expect {
                            st.bad += 1;
                        } else {
                            st.done += 1;
                        }
                        st.received += c.received;
                        return true;
                    }
                    Ok(n) => {
                        if c.received == 0 && mode == ClientMode::HalfClose {
                            lock(&self.stats).state_after_shutdown = s.state(h);
                        }
                        c.received += n;
                        progress = true;
                        if wrong {
                            lock(&self.stats).bad += 1;
                        }
                    }
                    Err(RecvError::WouldBlock) => break,
                    Err(_) => {
                        lock(&self.stats).bad += 1;
                        return true;
                    }
                }
            }
        }
        // Churn and bulk close first once the whole echo is back.
        if matches!(mode, ClientMode::Churn | ClientMode::Bulk) && c.received >= to_send {
            let mut st = lock(&self.stats);
            st.done += 1;
            st.received += c.received;
            return true;
        }
        false
    }
}

impl App for Client {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        let (limit, total_conns) = match self.mode {
            ClientMode::Churn => (16, self.total),
            _ => (1, 1),
        };
        let mut started = lock(&self.stats).started;
        while self.conns.len() < limit && started < total_conns {
            match s.connect(self.server, &SocketOptions::default()) {
                Ok(h) => {
                    self.conns.insert(
                        h,
                        ClientConn {
                            sent: 0,
                            received: 0,
                            shut: false,
                            seq: started,
                        },
                    );
                    started += 1;
                }
                Err(_) => {
                    lock(&self.stats).bad += 1;
                    break;
                }
            }
        }
        lock(&self.stats).started = started;
        self.events.clear();
        s.poll_events(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for e in &events {
            if self.drive(&mut s, e.socket) {
                self.conns.remove(&e.socket);
                let _ = s.close(e.socket);
            }
        }
        self.events = events;
        if self.conns.is_empty() && started >= total_conns && !self.finished.load(Ordering::Relaxed)
        {
            let mut st = lock(&self.stats);
            st.sent_crc = self.sent_crc.clone().finalize();
            st.received_crc = self.received_crc.clone().finalize();
            drop(st);
            self.finished.store(true, Ordering::Release);
        }
    }
}

/// What [`run_client`] hands back.
pub struct ClientRun<P> {
    /// What the client saw.
    pub stats: ClientStats,
    /// The shard's TCP states 300 ms after the client finished.
    pub histogram: StateHistogram,
    /// The port, to run something else on.
    pub port: P,
    /// Seconds from the start until the client finished.
    pub secs: f64,
    /// The shard's protocol counters at the end.
    pub shard: shardnet::shard::Stats,
}

/// Runs `client` on a shard on `port` until it finishes, failing the test if that takes more
/// than `secs` seconds.
pub fn run_client<P: Port + Send + 'static>(
    port: P,
    client: Client,
    secs: u64,
    idle: Idle,
) -> ClientRun<P>
where
    P::Frame: Send,
{
    let stats = client.stats.clone();
    let finished = client.finished.clone();
    let runtime = Runtime::start(runtime_config(&port, idle), vec![(port, client)])
        .expect("start the runtime");
    let start = Instant::now();
    let deadline = start + std::time::Duration::from_secs(secs);
    while !finished.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the last ACKs and FINs cross before reading the states.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let histogram = histogram(&runtime);
    let exit = runtime
        .stop()
        .expect("stop the runtime")
        .pop()
        .expect("one shard");
    let st = std::mem::take(&mut *lock(&stats));
    assert!(
        finished.load(Ordering::Acquire),
        "the client did not finish in {secs} s: {st:?}"
    );
    ClientRun {
        stats: st,
        histogram,
        port: exit.port,
        secs: elapsed,
        shard: exit.stats,
    }
}
