//! The kernel echo server: every byte read is written back.
//!
//! One mio (epoll) loop per shard thread. With `reuseport` every thread has its own listener
//! per port (SO_REUSEPORT spreads connections in the kernel); without it the threads share one
//! listener each port. A connection lives on the thread that accepted it.

use super::{set_defer_accept, set_fastopen_listener, set_quickack};
use crate::protocol::Responder;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, SockRef, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Echo server options.
#[derive(Clone, Debug)]
pub struct EchoConfig {
    /// Listen addresses (port 0: the first listener picks a port, the others share it).
    pub addrs: Vec<SocketAddrV4>,
    /// Threads.
    pub shards: usize,
    /// listen() backlog.
    pub backlog: i32,
    /// One SO_REUSEPORT listener per thread and port.
    pub reuseport: bool,
    /// TCP_FASTOPEN queue length.
    pub fastopen: Option<u32>,
    /// TCP_DEFER_ACCEPT seconds.
    pub defer_accept: Option<u32>,
    /// Close a connection after echoing this many bytes (TIME_WAIT lands on the server).
    pub close_after: Option<u64>,
    /// SO_LINGER 0 on accepted connections: close sends RST, no TIME_WAIT.
    pub linger0: bool,
    /// TCP_NODELAY on accepted connections.
    pub nodelay: bool,
    /// TCP_QUICKACK after every read.
    pub quickack: bool,
    /// Spin on epoll with a zero timeout.
    pub busy_poll: bool,
    /// Poll epoll with a zero timeout for this long after the last event before sleeping in
    /// it (`--poll-us`).
    pub poll_window: Duration,
}

/// Counters of one thread, read by the status line.
#[derive(Debug, Default)]
pub struct EchoCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed.
    pub closed: AtomicU64,
    /// Bytes echoed.
    pub bytes: AtomicU64,
    /// Connections that ended with a socket error (reset, ...).
    pub errors: AtomicU64,
    /// accept() failures other than "nothing to accept" (EMFILE, ...).
    pub accept_errors: AtomicU64,
}

/// The running server.
#[derive(Debug)]
pub struct EchoServer {
    /// The bound addresses, one per port.
    pub local: Vec<SocketAddr>,
    /// Per-thread counters.
    pub counters: Vec<Arc<EchoCounters>>,
    threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
    stop: Arc<AtomicBool>,
}

fn listener(addr: SocketAddrV4, cfg: &EchoConfig) -> Result<Socket, String> {
    let err = |what: &str, e: io::Error| format!("listener {addr}: {what}: {e}");
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| err("socket", e))?;
    s.set_reuse_address(true)
        .map_err(|e| err("SO_REUSEADDR", e))?;
    if cfg.reuseport {
        s.set_reuse_port(true).map_err(|e| err("SO_REUSEPORT", e))?;
    }
    if let Some(q) = cfg.fastopen {
        set_fastopen_listener(&s, q).map_err(|e| err("TCP_FASTOPEN", e))?;
    }
    if let Some(secs) = cfg.defer_accept {
        set_defer_accept(&s, secs).map_err(|e| err("TCP_DEFER_ACCEPT", e))?;
    }
    s.set_nonblocking(true).map_err(|e| err("O_NONBLOCK", e))?;
    s.bind(&addr.into()).map_err(|e| err("bind", e))?;
    s.listen(cfg.backlog).map_err(|e| err("listen", e))?;
    Ok(s)
}

impl EchoServer {
    /// Binds the listeners and starts the threads.
    pub fn start(cfg: EchoConfig) -> Result<EchoServer, String> {
        let shards = cfg.shards.max(1);
        // Per thread, per port: a listener.
        let mut per_thread: Vec<Vec<std::net::TcpListener>> =
            (0..shards).map(|_| Vec::new()).collect();
        let mut local = Vec::new();
        for &addr in &cfg.addrs {
            let first = listener(addr, &cfg)?;
            let bound = first
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| format!("listener {addr}: no local address"))?;
            local.push(bound);
            let bound_v4 = match bound {
                SocketAddr::V4(a) => a,
                SocketAddr::V6(_) => return Err(format!("listener {addr}: bound to IPv6")),
            };
            let first: std::net::TcpListener = first.into();
            for (i, list) in per_thread.iter_mut().enumerate() {
                let l = if i == 0 {
                    first
                        .try_clone()
                        .map_err(|e| format!("listener {addr}: dup: {e}"))?
                } else if cfg.reuseport {
                    listener(bound_v4, &cfg)?.into()
                } else {
                    first
                        .try_clone()
                        .map_err(|e| format!("listener {addr}: dup: {e}"))?
                };
                list.push(l);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut counters = Vec::new();
        let mut threads = Vec::new();
        for (i, listeners) in per_thread.into_iter().enumerate() {
            let c = Arc::new(EchoCounters::default());
            counters.push(Arc::clone(&c));
            let cfg = cfg.clone();
            let stop = Arc::clone(&stop);
            let t = std::thread::Builder::new()
                .name(format!("echo-{i}"))
                .spawn(move || worker(listeners, &cfg, &c, &stop))
                .map_err(|e| format!("cannot start thread {i}: {e}"))?;
            threads.push(t);
        }
        Ok(EchoServer {
            local,
            counters,
            threads,
            stop,
        })
    }

    /// Sum of a counter over the threads.
    pub fn total(&self, f: impl Fn(&EchoCounters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum()
    }

    /// Stops the threads and waits for them; the first thread error, if any.
    pub fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = result.and(Err(e)),
                Err(_) => result = result.and(Err("an echo thread panicked".to_string())),
            }
        }
        result
    }
}

const BUF: usize = 64 * 1024;

struct Conn {
    stream: TcpStream,
    /// What a read returns.
    buf: Box<[u8]>,
    /// What goes back (the echo, acknowledgments, requested data), sent from `start`.
    out: Vec<u8>,
    start: usize,
    echoed: u64,
    /// Frames: echo, sink or source (see [`Responder`]).
    responder: Responder,
}

enum Next {
    Keep,
    Close { error: bool },
}

fn worker(
    listeners: Vec<std::net::TcpListener>,
    cfg: &EchoConfig,
    counters: &EchoCounters,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut listeners: Vec<TcpListener> =
        listeners.into_iter().map(TcpListener::from_std).collect();
    for (i, l) in listeners.iter_mut().enumerate() {
        poll.registry()
            .register(l, Token(i), Interest::READABLE)
            .map_err(|e| format!("epoll register: {e}"))?;
    }
    let base = listeners.len();
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut last_event = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let timeout = if cfg.busy_poll || last_event.elapsed() < cfg.poll_window {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        if !events.is_empty() {
            last_event = Instant::now();
        }
        for ev in events.iter() {
            let t = ev.token().0;
            if t < base {
                accept_all(
                    &mut listeners[t],
                    &poll,
                    base,
                    &mut conns,
                    &mut free,
                    cfg,
                    counters,
                );
                continue;
            }
            let i = t - base;
            let Some(conn) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if let Next::Close { error } = serve(conn, cfg, counters) {
                if let Some(mut c) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                free.push(i);
                counters.closed.fetch_add(1, Ordering::Relaxed);
                if error {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}

fn accept_all(
    listener: &mut TcpListener,
    poll: &Poll,
    base: usize,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
    cfg: &EchoConfig,
    counters: &EchoCounters,
) {
    loop {
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(_) => {
                counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let sock = SockRef::from(&stream);
        // Option failures on an accepted socket only cost tuning; the echo still works.
        if cfg.nodelay {
            let _ = sock.set_tcp_nodelay(true);
        }
        if cfg.linger0 {
            let _ = sock.set_linger(Some(Duration::ZERO));
        }
        let i = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        if poll
            .registry()
            .register(
                &mut stream,
                Token(base + i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            free.push(i);
            counters.closed.fetch_add(1, Ordering::Relaxed);
            counters.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut conn = Conn {
            stream,
            buf: vec![0u8; BUF].into_boxed_slice(),
            out: Vec::new(),
            start: 0,
            echoed: 0,
            responder: Responder::new(),
        };
        // With TCP_DEFER_ACCEPT (or a fast client) data may already be waiting: edge-triggered
        // epoll reports it anyway, as registration of a readable socket raises an event.
        match serve(&mut conn, cfg, counters) {
            Next::Keep => conns[i] = Some(conn),
            Next::Close { error } => {
                let _ = poll.registry().deregister(&mut conn.stream);
                free.push(i);
                counters.closed.fetch_add(1, Ordering::Relaxed);
                if error {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Echoes until the socket would block (edge-triggered epoll needs it drained).
fn serve(conn: &mut Conn, cfg: &EchoConfig, counters: &EchoCounters) -> Next {
    loop {
        if conn.start < conn.out.len() {
            match conn.stream.write(&conn.out[conn.start..]) {
                Ok(n) => {
                    conn.start += n;
                    conn.echoed += n as u64;
                    counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close { error: true },
            }
        }
        if cfg.close_after.is_some_and(|n| conn.echoed >= n) {
            return Next::Close { error: false };
        }
        // Read at most what is left before --close-after, so the close follows a clean echo.
        let room = cfg
            .close_after
            .map_or(BUF, |n| (n - conn.echoed).min(BUF as u64) as usize);
        match conn.stream.read(&mut conn.buf[..room]) {
            Ok(0) => return Next::Close { error: false },
            Ok(n) => {
                conn.start = 0;
                conn.out.clear();
                if conn.responder.feed(&conn.buf[..n], &mut conn.out).is_err() {
                    // A framed stream broke its framing.
                    return Next::Close { error: true };
                }
                if cfg.quickack {
                    let _ = set_quickack(&conn.stream);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Next::Close { error: true },
        }
    }
}
