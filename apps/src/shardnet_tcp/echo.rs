//! The echo server as a shardnet [`App`]: one per shard, each with its own listener on the
//! echo port (a shard owns the flows RSS gives it, so every shard listens), driven by the
//! socket API's edge-triggered readiness events.

use crate::protocol::Responder;
use crate::shardnet_tcp::StateGauges;
use shardnet::runtime::{App, AppContext};
use shardnet::socket::{Event, Readiness, RecvError, SendError, SocketHandle, SocketOptions};
use shardnet::time::Duration;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The TCP ports an echo listens on (at most [`EchoPorts::MAX`], at least one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoPorts {
    ports: [u16; EchoPorts::MAX],
    len: usize,
}

impl EchoPorts {
    /// The most ports one echo listens on.
    pub const MAX: usize = 16;

    /// `ports`, or an error saying why not (none, port 0, more than [`EchoPorts::MAX`]).
    pub fn new(ports: &[u16]) -> Result<EchoPorts, String> {
        if ports.is_empty() || ports.len() > Self::MAX {
            return Err(format!("1 to {} ports, not {}", Self::MAX, ports.len()));
        }
        if ports.contains(&0) {
            return Err("port 0: shardnet's echo needs fixed ports".into());
        }
        let mut p = [0; Self::MAX];
        p[..ports.len()].copy_from_slice(ports);
        Ok(EchoPorts {
            ports: p,
            len: ports.len(),
        })
    }

    /// `count` consecutive ports from `first` (clamped to 1..=[`EchoPorts::MAX`] and to 65535).
    pub fn consecutive(first: u16, count: u16) -> EchoPorts {
        let mut p = [0; Self::MAX];
        let want = usize::from(count).clamp(1, Self::MAX);
        let mut len = 0;
        for (slot, port) in p.iter_mut().take(want).zip(first..=u16::MAX) {
            *slot = port;
            len += 1;
        }
        EchoPorts { ports: p, len }
    }

    /// The ports.
    pub fn as_slice(&self) -> &[u16] {
        &self.ports[..self.len]
    }

    /// The first port.
    pub fn first(&self) -> u16 {
        self.ports[0]
    }
}

/// What every shard's echo does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoAppConfig {
    /// The TCP ports, every shard listening on each. Several ports multiply the 4-tuples a
    /// client-closed crr can cycle through.
    pub ports: EchoPorts,
    /// The accept queue length of each shard's listener.
    pub backlog: usize,
    /// SO_REUSEPORT on the listeners.
    pub reuseport: bool,
    /// Close each connection after echoing this many bytes (TIME_WAIT lands on the server).
    pub close_after: Option<u64>,
    /// SO_LINGER 0: closes send RST and leave no TIME_WAIT.
    pub linger0: bool,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// TCP_QUICKACK.
    pub quickack: bool,
    /// TCP_FASTOPEN on the listeners with this queue length: a SYN carrying a valid cookie
    /// delivers its data at once (RFC 7413).
    pub fast_open: Option<u32>,
    /// TCP_DEFER_ACCEPT on the listeners, in seconds: a connection is accepted only once its
    /// first data arrived (or the time passed).
    pub defer_accept_secs: Option<u32>,
}

/// Counters of all the echo shards, readable while they run.
#[derive(Debug, Default)]
pub struct EchoCounters {
    /// Shards whose listener is open.
    pub listening: AtomicU64,
    /// Shards whose `listen` failed.
    pub listen_failures: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed (by either side).
    pub closed: AtomicU64,
    /// Bytes echoed (and sent: acknowledgments, requested data).
    pub bytes: AtomicU64,
    /// Bytes of upload (sink) frames consumed without echo.
    pub sunk: AtomicU64,
    /// Connections that ended in an error (reset, timeout, send failure).
    pub errors: AtomicU64,
}

struct Conn {
    /// Bytes to send back (the echo, acknowledgments, requested data) not yet accepted by the
    /// send buffer.
    pending: Vec<u8>,
    pos: usize,
    echoed: u64,
    /// Frames: echo, sink or source (see [`Responder`]).
    responder: Responder,
}

/// One shard's echo server.
pub struct EchoApp {
    cfg: EchoAppConfig,
    counters: Arc<EchoCounters>,
    states: Arc<StateGauges>,
    listeners: Vec<SocketHandle>,
    listen_tried: bool,
    conns: super::HandleMap<Conn>,
    /// Emptied `pending` buffers of closed connections, for the next ones (a crr load accepts
    /// a connection per transaction: this keeps the allocator off that path).
    spare: Vec<Vec<u8>>,
    events: Vec<Event>,
    last_sample: Option<shardnet::time::Instant>,
}

impl std::fmt::Debug for EchoApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoApp")
            .field("cfg", &self.cfg)
            .field("connections", &self.conns.len())
            .finish()
    }
}

const BUF: usize = 64 * 1024;
/// At most this many spare buffers are kept (each at most [`BUF`] bytes of capacity).
const SPARE_BUFFERS: usize = 256;

impl EchoApp {
    /// A shard's echo, counting into the shared `counters` and publishing its TCP state
    /// histogram into `states` about every 100 ms.
    pub fn new(cfg: EchoAppConfig, counters: Arc<EchoCounters>, states: Arc<StateGauges>) -> Self {
        EchoApp {
            cfg,
            counters,
            states,
            listeners: Vec::new(),
            listen_tried: false,
            conns: super::handle_map(),
            spare: Vec::new(),
            events: Vec::new(),
            last_sample: None,
        }
    }

    fn options(&self) -> SocketOptions {
        SocketOptions {
            reuse_addr: true,
            reuse_port: self.cfg.reuseport,
            linger: self.cfg.linger0.then_some(Duration::from_millis(0)),
            nodelay: Some(self.cfg.nodelay),
            quickack: Some(self.cfg.quickack),
            ..SocketOptions::default()
        }
    }

    /// The listeners' options: the connections' plus Fast Open and DEFER_ACCEPT.
    fn listen_options(&self) -> SocketOptions {
        SocketOptions {
            fast_open: self.cfg.fast_open,
            defer_accept: self
                .cfg
                .defer_accept_secs
                .map(|s| Duration::from_secs(u64::from(s))),
            ..self.options()
        }
    }

    /// Echoes until the socket would block (the events are edge-triggered).
    fn serve(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) {
        let Some(conn) = self.conns.get_mut(&h) else {
            return;
        };
        let end = 'serve: loop {
            while conn.pos < conn.pending.len() {
                match s.send(h, &conn.pending[conn.pos..]) {
                    Ok(n) => {
                        conn.pos += n;
                        conn.echoed += n as u64;
                        self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    // Full send buffer: a WRITABLE event comes when acknowledgments free room.
                    Err(SendError::WouldBlock) => return,
                    Err(_) => break 'serve Some(true),
                }
            }
            conn.pending.clear();
            conn.pos = 0;
            if self.cfg.close_after.is_some_and(|n| conn.echoed >= n) {
                break Some(false);
            }
            // Read at most what is left before --close-after, so the close follows a clean echo.
            let room = self
                .cfg
                .close_after
                .map_or(BUF, |n| (n - conn.echoed).min(BUF as u64) as usize);
            // Zero-copy: the received bytes are fed to the responder where they lie (in the
            // received frame itself while the runtime holds it, else in the receive buffer).
            let before = conn.responder.sunk();
            let mut framing = Ok(());
            let read = s.recv_with(h, |bytes| {
                let take = bytes.len().min(room);
                framing = conn.responder.feed(&bytes[..take], &mut conn.pending);
                take
            });
            self.counters
                .sunk
                .fetch_add(conn.responder.sunk() - before, Ordering::Relaxed);
            match read {
                Ok(0) => break Some(false),
                // A framed stream broke its framing.
                Ok(_) if framing.is_err() => break Some(true),
                Ok(_) => {}
                Err(RecvError::WouldBlock) => break None,
                Err(_) => break Some(true),
            }
        };
        if let Some(error) = end {
            let _ = s.close(h);
            if let Some(mut conn) = self.conns.remove(&h)
                && self.spare.len() < SPARE_BUFFERS
                && conn.pending.capacity() <= BUF
            {
                conn.pending.clear();
                self.spare.push(conn.pending);
            }
            self.counters.closed.fetch_add(1, Ordering::Relaxed);
            if error {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl App for EchoApp {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        if !self.listen_tried {
            self.listen_tried = true;
            let mut failed = false;
            for &port in self.cfg.ports.as_slice() {
                let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
                match s.listen(addr, self.cfg.backlog, &self.listen_options()) {
                    Ok(l) => self.listeners.push(l),
                    Err(_) => failed = true,
                }
            }
            if failed {
                self.counters
                    .listen_failures
                    .fetch_add(1, Ordering::Release);
            } else {
                self.counters.listening.fetch_add(1, Ordering::Release);
            }
        }
        self.events.clear();
        s.poll_events(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for e in &events {
            if self.listeners.contains(&e.socket) {
                while let Ok((h, _)) = s.accept(e.socket) {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    self.conns.insert(
                        h,
                        Conn {
                            pending: self.spare.pop().unwrap_or_default(),
                            pos: 0,
                            echoed: 0,
                            responder: Responder::new(),
                        },
                    );
                    // Data may already be waiting: serve now (its event may have been merged
                    // into this batch before the handle was known).
                    self.serve(&mut s, h);
                }
                continue;
            }
            if e.readiness.is_empty() && !e.readiness.contains(Readiness::ERROR) {
                continue;
            }
            self.serve(&mut s, e.socket);
        }
        self.events = events;
        let now = s.now();
        if self
            .last_sample
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(100))
        {
            self.last_sample = Some(now);
            self.states.publish(&s.state_histogram());
        }
    }

    fn shutdown(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        for (h, _) in self.conns.drain() {
            let _ = s.close(h);
        }
        for l in self.listeners.drain(..) {
            let _ = s.close(l);
        }
    }
}

#[cfg(test)]
mod echo_ports_tests {
    use super::EchoPorts;

    #[test]
    fn listed_ports_are_kept_in_order_and_bad_lists_are_refused() {
        let p = EchoPorts::new(&[7, 9000, 80]).unwrap();
        assert_eq!(p.as_slice(), &[7, 9000, 80]);
        assert_eq!(p.first(), 7);
        assert!(EchoPorts::new(&[]).is_err());
        assert!(EchoPorts::new(&[7, 0]).is_err());
        assert!(EchoPorts::new(&[1; EchoPorts::MAX + 1]).is_err());
        assert_eq!(
            EchoPorts::new(&[1; EchoPorts::MAX])
                .unwrap()
                .as_slice()
                .len(),
            16
        );
    }

    #[test]
    fn consecutive_ports_stop_at_the_limit_and_at_65535() {
        assert_eq!(
            EchoPorts::consecutive(7777, 4).as_slice(),
            &[7777, 7778, 7779, 7780]
        );
        assert_eq!(EchoPorts::consecutive(7777, 0).as_slice(), &[7777]);
        assert_eq!(
            EchoPorts::consecutive(1, 100).as_slice().len(),
            EchoPorts::MAX
        );
        assert_eq!(EchoPorts::consecutive(65534, 4).as_slice(), &[65534, 65535]);
    }
}
