//! shardnet's servers in the kernel-interop tests, one app on one shard: an echo server on
//! [`ECHO_PORT`], a half-close server on [`HALF_PORT`] and an abort server on [`ABORT_PORT`]
//! (the role follows the local port of the accepted connection), and optionally a UDP echo.
//! What they saw is counted in [`ServerStats`], shared with the test thread.

use super::pattern::pattern;
use super::shard::{Idle, lock, runtime_config};
use shardnet::port::Port;
use shardnet::runtime::{App, AppContext, Runtime};
use shardnet::socket::{
    Event, Readiness, RecvError, SendError, SockOpt, SocketError, SocketHandle,
};
use shardnet::tcp::State;
use shardnet::time::Duration;
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};

/// The echo server's port: echoes every byte, closes after the peer's FIN.
pub const ECHO_PORT: u16 = 7;
/// The half-close server's port: reads to EOF, then sends [`HALF_OUT`] bytes of the pattern,
/// then closes.
pub const HALF_PORT: u16 = 8;
/// The abort server's port: reads the first bytes, then closes with `SO_LINGER` 0 (RST).
pub const ABORT_PORT: u16 = 9;
/// Bytes the half-close server (and the half-closing client) sends after the peer's FIN.
pub const HALF_OUT: usize = 1 << 20;
/// Bytes a half-closing client sends before its FIN.
pub const HALF_IN: usize = 100_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Echo,
    HalfClose,
    Abort,
}

struct Conn {
    role: Role,
    pending: Vec<u8>,
    sent: usize,
    received: usize,
    eof: bool,
    out_sent: usize,
}

/// What shardnet's servers saw, shared with the test thread.
#[derive(Default, Debug)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// TCP bytes echoed.
    pub echoed: u64,
    /// UDP datagrams echoed.
    pub udp_echoed: u64,
    /// Connections that failed with ECONNRESET (seen on an error event or on recv).
    pub resets: u64,
    /// Other connection errors.
    pub errors: u64,
    /// Half-close connections: bytes read before EOF, whether they were all `pattern`,
    /// the TCP state when EOF was read, and bytes sent after it.
    pub half_in: usize,
    /// A half-close connection read bytes other than the pattern.
    pub half_bad: bool,
    /// The TCP state when a half-close connection read EOF.
    pub half_state_at_eof: Option<State>,
    /// Bytes a half-close connection sent after EOF.
    pub half_sent_after_eof: usize,
    /// Half-close connections that sent all [`HALF_OUT`] bytes.
    pub half_done: u64,
    /// Connections the abort server reset.
    pub aborted: u64,
}

/// Echo on [`ECHO_PORT`], half-close on [`HALF_PORT`], abort on [`ABORT_PORT`] (on whatever
/// listeners the runtime has: a connection accepted on another port is echoed), and UDP echo
/// if asked for. Reads only what it can send (backpressure).
#[derive(Default)]
pub struct Servers {
    conns: HashMap<SocketHandle, Conn>,
    events: Vec<Event>,
    buf: Vec<u8>,
    stats: Arc<Mutex<ServerStats>>,
    /// Where to bind the UDP echo (at the first step), and its socket once bound.
    udp: Option<(SocketAddrV4, Option<SocketHandle>)>,
}

impl Servers {
    /// The servers, also echoing UDP datagrams sent to `addr`.
    pub fn with_udp_echo(addr: SocketAddrV4) -> Servers {
        Servers {
            udp: Some((addr, None)),
            ..Servers::default()
        }
    }

    /// What the servers saw.
    pub fn stats(&self) -> Arc<Mutex<ServerStats>> {
        self.stats.clone()
    }

    /// Echoes every datagram waiting on the UDP socket (bound at the first call).
    fn udp_echo(&mut self, s: &mut shardnet::socket::Sockets<'_>) {
        let Some((addr, socket)) = &mut self.udp else {
            return;
        };
        let h = match *socket {
            Some(h) => h,
            None => {
                let h = s.bind_udp(*addr).expect("bind the UDP echo");
                *socket = Some(h);
                h
            }
        };
        while let Ok(r) = s.recv_from(h, &mut self.buf) {
            let sent = s.send_to(h, Some(r.from), &self.buf[..r.len]);
            let mut st = lock(&self.stats);
            if sent.is_ok() {
                st.udp_echoed += 1;
            } else {
                st.errors += 1;
            }
        }
    }

    fn reset(&self) {
        lock(&self.stats).resets += 1;
    }

    /// Moves the connection forward; true when it is finished (to be closed).
    fn drive(&mut self, s: &mut shardnet::socket::Sockets<'_>, h: SocketHandle) -> bool {
        let Some(mut c) = self.conns.remove(&h) else {
            return false;
        };
        let done = match c.role {
            Role::Echo => self.echo(s, h, &mut c),
            Role::HalfClose => self.half_close(s, h, &mut c),
            Role::Abort => self.abort(s, h, &mut c),
        };
        if !done {
            self.conns.insert(h, c);
        }
        done
    }

    fn echo(
        &mut self,
        s: &mut shardnet::socket::Sockets<'_>,
        h: SocketHandle,
        c: &mut Conn,
    ) -> bool {
        loop {
            while c.sent < c.pending.len() {
                match s.send(h, &c.pending[c.sent..]) {
                    Ok(n) => {
                        c.sent += n;
                        lock(&self.stats).echoed += n as u64;
                    }
                    Err(SendError::WouldBlock) => return false,
                    Err(SendError::ConnectionReset) => {
                        self.reset();
                        return true;
                    }
                    Err(_) => {
                        lock(&self.stats).errors += 1;
                        return true;
                    }
                }
            }
            if c.eof {
                return true;
            }
            c.pending.clear();
            c.sent = 0;
            match s.recv(h, &mut self.buf) {
                Ok(0) => c.eof = true,
                Ok(n) => c.pending.extend_from_slice(&self.buf[..n]),
                Err(RecvError::WouldBlock) => return false,
                Err(RecvError::ConnectionReset) => {
                    self.reset();
                    return true;
                }
                Err(_) => {
                    lock(&self.stats).errors += 1;
                    return true;
                }
            }
        }
    }

    fn half_close(
        &mut self,
        s: &mut shardnet::socket::Sockets<'_>,
        h: SocketHandle,
        c: &mut Conn,
    ) -> bool {
        while !c.eof {
            let at = c.received;
            let mut bad = false;
            match s.recv_with(h, |bytes| {
                bad = bytes.iter().enumerate().any(|(k, &b)| b != pattern(at + k));
                bytes.len()
            }) {
                Ok(0) => {
                    c.eof = true;
                    let mut st = lock(&self.stats);
                    st.half_in = c.received;
                    st.half_state_at_eof = s.state(h);
                }
                Ok(n) => {
                    c.received += n;
                    if bad {
                        lock(&self.stats).half_bad = true;
                    }
                }
                Err(RecvError::WouldBlock) => return false,
                Err(_) => {
                    lock(&self.stats).errors += 1;
                    return true;
                }
            }
        }
        // The peer has shut down its writing side: keep sending ours.
        while c.out_sent < HALF_OUT {
            let at = c.out_sent;
            match s.send_with(h, HALF_OUT - at, |buf| {
                for (k, b) in buf.iter_mut().enumerate() {
                    *b = pattern(at + k);
                }
                buf.len()
            }) {
                Ok(n) if n > 0 => {
                    c.out_sent += n;
                    lock(&self.stats).half_sent_after_eof += n;
                }
                Ok(_) | Err(SendError::WouldBlock) => return false,
                Err(_) => {
                    lock(&self.stats).errors += 1;
                    return true;
                }
            }
        }
        lock(&self.stats).half_done += 1;
        true
    }

    fn abort(
        &mut self,
        s: &mut shardnet::socket::Sockets<'_>,
        h: SocketHandle,
        c: &mut Conn,
    ) -> bool {
        match s.recv(h, &mut self.buf) {
            Ok(n) if n > 0 => {
                c.received += n;
                // SO_LINGER 0, then close: RST (RFC 9293 3.10.4 ABORT).
                let linger = s.set_option(h, SockOpt::Linger(Some(Duration::ZERO)));
                let mut st = lock(&self.stats);
                if linger.is_ok() {
                    st.aborted += 1;
                } else {
                    st.errors += 1;
                }
                true
            }
            Err(RecvError::WouldBlock) => false,
            _ => {
                lock(&self.stats).errors += 1;
                true
            }
        }
    }
}

impl App for Servers {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        if self.buf.is_empty() {
            self.buf = vec![0; 64 * 1024];
        }
        let listeners: Vec<SocketHandle> = ctx
            .listeners
            .iter()
            .map(|&l| SocketHandle::Listener(l))
            .collect();
        let mut s = ctx.sockets();
        self.udp_echo(&mut s);
        self.events.clear();
        s.poll_events(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for e in &events {
            let mut ready = Vec::new();
            if listeners.contains(&e.socket) {
                while let Ok((h, _)) = s.accept(e.socket) {
                    let role = match s.local_addr(h).map(|a| a.port()) {
                        Some(HALF_PORT) => Role::HalfClose,
                        Some(ABORT_PORT) => Role::Abort,
                        _ => Role::Echo,
                    };
                    lock(&self.stats).accepted += 1;
                    self.conns.insert(
                        h,
                        Conn {
                            role,
                            pending: Vec::new(),
                            sent: 0,
                            received: 0,
                            eof: false,
                            out_sent: 0,
                        },
                    );
                    ready.push(h);
                }
            } else if e.readiness.contains(Readiness::ERROR) && self.conns.contains_key(&e.socket) {
                match s.socket_error(e.socket) {
                    Some(SocketError::ConnectionReset) => self.reset(),
                    _ => lock(&self.stats).errors += 1,
                }
                self.conns.remove(&e.socket);
                let _ = s.close(e.socket);
            } else {
                ready.push(e.socket);
            }
            for h in ready {
                if self.drive(&mut s, h) {
                    let _ = s.close(h);
                }
            }
        }
        self.events = events;
    }
}

/// Starts [`Servers`] on a shard on `port` (see [`runtime_config`]) and listens on
/// [`ECHO_PORT`], [`HALF_PORT`] and [`ABORT_PORT`] (backlog 512); returns the runtime and the
/// servers' stats.
pub fn start_servers<P: Port + Send + 'static>(
    port: P,
    idle: Idle,
) -> (Runtime<P, Servers>, Arc<Mutex<ServerStats>>)
where
    P::Frame: Send,
{
    let servers = Servers::default();
    let stats = servers.stats.clone();
    let runtime = Runtime::start(runtime_config(&port, idle), vec![(port, servers)])
        .expect("start the runtime");
    for p in [ECHO_PORT, HALF_PORT, ABORT_PORT] {
        runtime.listen(p, 512).expect("listen");
    }
    (runtime, stats)
}
