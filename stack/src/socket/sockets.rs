//! [`Sockets`]: the Berkeley calls on one shard's sockets.

use super::error::{
    AcceptError, BindError, CloseError, ConnectError, ListenError, RecvError, SendError,
    SetOptionError, ShutdownError, SocketError,
};
use super::events::{Event, Readiness};
use super::handle::SocketHandle;
use super::introspect::{ConnectionInfo, StateHistogram};
use super::options::{MIN_BUFFER, SockOpt, SocketOptions, clamp_mss};
use crate::shard::Shard;
use crate::shard::tcp::{self as endpoints, Reuse};
use crate::tcp::{self, State, TcpConfig, TcpError};
use crate::time::{Duration, Instant};
use crate::udp;
use core::net::SocketAddrV4;

/// Which directions `shutdown` closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `SHUT_RD`: reads return end of stream once the bytes already received are read.
    Read,
    /// `SHUT_WR`: a FIN follows the data written; later writes fail with `EPIPE`.
    Write,
    /// `SHUT_RDWR`: both.
    Both,
}

/// The sockets of one shard at one instant. Get it with [`Shard::sockets`] (or
/// [`Shard::sockets_with_rx`], with the frames the runtime holds through the application step);
/// it borrows the shard for the duration of an application step.
#[derive(Debug)]
pub struct Sockets<'a> {
    shard: &'a mut Shard,
    now: Instant,
    /// The received burst the caller holds ([`Shard::handle_frame_held`]): TCP data still in
    /// these frames is read from them.
    rx: &'a [&'a [u8]],
}

impl Shard {
    /// The socket API of this shard at `now` (see [`crate::socket`]), for a caller that holds
    /// no received frames.
    pub fn sockets(&mut self, now: Instant) -> Sockets<'_> {
        Sockets {
            shard: self,
            now,
            rx: &[],
        }
    }

    /// The socket API of this shard at `now`, lending the application the TCP data still in
    /// `rx`, the frames the caller holds through the application step (the view it gave
    /// [`Shard::handle_frame_held`]): `recv_with` then reads in the frames themselves
    /// (zero-copy receive). Through [`Shard::sockets`] instead, data still in frames is
    /// `EAGAIN` until [`Shard::spill_in_place`] copies it, and a readable event follows.
    pub fn sockets_with_rx<'a>(&'a mut self, now: Instant, rx: &'a [&'a [u8]]) -> Sockets<'a> {
        Sockets {
            shard: self,
            now,
            rx,
        }
    }
}

fn socket_error(e: TcpError) -> SocketError {
    e.into()
}

fn send_error(e: tcp::SendError) -> SendError {
    match e {
        tcp::SendError::WouldBlock => SendError::WouldBlock,
        tcp::SendError::Shutdown => SendError::BrokenPipe,
        tcp::SendError::NotConnected => SendError::NotConnected,
        tcp::SendError::Failed(e) => match socket_error(e) {
            SocketError::ConnectionRefused => SendError::ConnectionRefused,
            SocketError::ConnectionReset => SendError::ConnectionReset,
            SocketError::TimedOut => SendError::TimedOut,
        },
    }
}

fn recv_error(e: tcp::RecvError) -> RecvError {
    match e {
        tcp::RecvError::WouldBlock => RecvError::WouldBlock,
        tcp::RecvError::NotConnected => RecvError::NotConnected,
        tcp::RecvError::Failed(e) => match socket_error(e) {
            SocketError::ConnectionRefused => RecvError::ConnectionRefused,
            SocketError::ConnectionReset => RecvError::ConnectionReset,
            SocketError::TimedOut => RecvError::TimedOut,
        },
    }
}

fn udp_send_error(e: udp::SendError) -> SendError {
    match e {
        udp::SendError::WouldBlock | udp::SendError::NoEphemeralPort => SendError::WouldBlock,
        udp::SendError::MessageTooLong => SendError::MessageTooLong,
        udp::SendError::InvalidArgument => SendError::Invalid,
        udp::SendError::NotConnected => SendError::DestinationRequired,
        udp::SendError::BroadcastDenied => SendError::PermissionDenied,
        udp::SendError::ConnectionRefused => SendError::ConnectionRefused,
        udp::SendError::NetUnreachable => SendError::NetUnreachable,
        udp::SendError::BadHandle => SendError::BadHandle,
    }
}

fn udp_recv_error(e: udp::RecvError) -> RecvError {
    match e {
        udp::RecvError::WouldBlock => RecvError::WouldBlock,
        udp::RecvError::ConnectionRefused => RecvError::ConnectionRefused,
        udp::RecvError::BadHandle => RecvError::BadHandle,
    }
}

fn udp_bind_error(e: udp::BindError) -> BindError {
    match e {
        udp::BindError::AddrInUse => BindError::AddrInUse,
        udp::BindError::AddrNotAvailable => BindError::AddrNotAvailable,
        udp::BindError::AlreadyBound => BindError::AlreadyBound,
        udp::BindError::NoEphemeralPort => BindError::NoEphemeralPort,
        udp::BindError::BadHandle => BindError::BadHandle,
    }
}

/// Applies `opt` to the settings of a listener (which its accepted connections inherit).
fn apply_to_listener(
    config: &mut TcpConfig,
    linger: &mut Option<Duration>,
    opt: SockOpt,
) -> Result<(), SetOptionError> {
    match opt {
        SockOpt::Linger(l) => *linger = l,
        SockOpt::Keepalive(k) => config.keepalive = k,
        SockOpt::RecvBuffer(n) => config.recv_buffer = n.max(MIN_BUFFER),
        SockOpt::SendBuffer(n) => config.send_buffer = n.max(MIN_BUFFER),
        SockOpt::NoDelay(on) => config.nodelay = on,
        SockOpt::QuickAck(on) => config.quickack = on,
        SockOpt::MaxSegment(m) => config.mss = clamp_mss(config.mss, m)?,
        SockOpt::Congestion(a) => config.congestion = a,
        // Kept by the listener itself; `set_option` applies them.
        SockOpt::FastOpen(_) | SockOpt::DeferAccept(_) => {}
    }
    Ok(())
}

impl Sockets<'_> {
    /// The instant this view acts at.
    pub fn now(&self) -> Instant {
        self.now
    }

    fn tcb(&self, h: SocketHandle) -> Option<&tcp::Tcb> {
        match h {
            SocketHandle::Tcp(t) => self.shard.tcp_endpoints().get(t),
            _ => None,
        }
    }

    /// True if connection `t` holds received bytes not read yet.
    fn has_unread(&self, t: endpoints::TcpHandle) -> bool {
        self.shard
            .tcp_endpoints()
            .get(t)
            .is_some_and(|tcb| tcb.recv_available() > 0)
    }

    fn tcb_mut(&mut self, h: SocketHandle) -> Option<&mut tcp::Tcb> {
        match h {
            SocketHandle::Tcp(t) => self.shard.tcp().get_mut(t),
            _ => None,
        }
    }

    // ----- TCP: opening -----

    /// `socket` + `setsockopt(options)` + `bind(addr)` + `listen(backlog)`: a TCP listener.
    /// Connections it accepts inherit its options (buffers, MSS clamp, congestion control,
    /// keepalive, `TCP_NODELAY`, `TCP_QUICKACK`, `SO_LINGER`), as on Linux.
    ///
    /// Errors:
    /// - `EADDRINUSE`: another listener has the port (unless both set `SO_REUSEPORT`), or
    ///   connections on the port remain (TIME-WAIT included) and neither `SO_REUSEADDR` nor
    ///   `SO_REUSEPORT` is set (Linux `inet_csk_bind_conflict`);
    /// - `EADDRNOTAVAIL`: `addr` is neither one of the interface's addresses (primary or
    ///   secondary) nor 0.0.0.0 (a listener takes connections to any of them, whichever it
    ///   names: this stack keeps listeners by port);
    /// - `EINVAL`: backlog 0, port 0, or `TCP_MAXSEG` below 88;
    ///
    /// `TCP_DEFER_ACCEPT` ([`SocketOptions::defer_accept`]) and `TCP_FASTOPEN`
    /// ([`SocketOptions::fast_open`]) apply to the listener.
    pub fn listen(
        &mut self,
        addr: SocketAddrV4,
        backlog: usize,
        options: &SocketOptions,
    ) -> Result<SocketHandle, ListenError> {
        if !addr.ip().is_unspecified() && !self.shard.is_local_address(*addr.ip()) {
            return Err(ListenError::AddrNotAvailable);
        }
        let config = options
            .apply(*self.shard.tcp_endpoints().config())
            .map_err(|e| match e {
                SetOptionError::NotSupported => ListenError::NotSupported,
                _ => ListenError::Invalid,
            })?;
        let reuse = Reuse {
            addr: options.reuse_addr,
            port: options.reuse_port,
        };
        let l = self
            .shard
            .tcp()
            .listen_with(addr.port(), backlog, config, reuse, options.linger)
            .map_err(|e| match e {
                endpoints::ListenError::AddrInUse => ListenError::AddrInUse,
                endpoints::ListenError::InvalidBacklog => ListenError::Invalid,
            })?;
        if let Some(d) = options.defer_accept {
            let n = tcp::listener::defer_accept_retransmissions(d.as_secs());
            self.shard.tcp().set_defer_accept(l, n);
        }
        if let Some(q) = options.fast_open {
            self.shard.tcp().set_fast_open(l, q as usize);
        }
        Ok(SocketHandle::Listener(l))
    }

    /// `accept`: the oldest established connection of a listener, and its peer's address.
    /// The new socket's current readiness is reported as an event.
    ///
    /// Errors: `EAGAIN` if the accept queue is empty, `EBADF` for a stale handle, `EINVAL` if
    /// the socket is not a listener.
    pub fn accept(
        &mut self,
        listener: SocketHandle,
    ) -> Result<(SocketHandle, SocketAddrV4), AcceptError> {
        let SocketHandle::Listener(l) = listener else {
            return Err(AcceptError::NotListening);
        };
        let h = self.shard.tcp().accept(l).map_err(|e| match e {
            endpoints::AcceptError::WouldBlock => AcceptError::WouldBlock,
            endpoints::AcceptError::BadHandle => AcceptError::BadHandle,
        })?;
        let peer = self
            .shard
            .tcp_endpoints()
            .get(h)
            .map(|t| t.remote())
            .ok_or(AcceptError::BadHandle)?;
        Ok((SocketHandle::Tcp(h), peer))
    }

    /// Non-blocking `connect` with `options`: the connection is in progress (SYN-SENT) when
    /// this returns. It becomes writable (a [`Readiness::WRITABLE`] event) once established,
    /// or fails with [`Readiness::ERROR`] and [`Sockets::socket_error`] = `ECONNREFUSED` (RST
    /// in answer: RFC 9293 3.10.7.3) or `ETIMEDOUT` (SYN retries ran out).
    ///
    /// Errors at once: `EADDRNOTAVAIL` (no ephemeral port free for this destination),
    /// `ENETUNREACH`, `ENOBUFS` (connection table full), `EINVAL` (`TCP_MAXSEG` below 88),
    /// `ENOPROTOOPT` (`TCP_FASTOPEN`: use [`Sockets::connect_with_data`]; `TCP_DEFER_ACCEPT`,
    /// which Linux uses on a client to delay its ACK, not implemented).
    pub fn connect(
        &mut self,
        remote: SocketAddrV4,
        options: &SocketOptions,
    ) -> Result<SocketHandle, ConnectError> {
        if options.defer_accept.is_some() || options.fast_open.is_some() {
            return Err(ConnectError::NotSupported);
        }
        let config = options
            .apply(*self.shard.tcp_endpoints().config())
            .map_err(|e| match e {
                SetOptionError::NotSupported => ConnectError::NotSupported,
                _ => ConnectError::Invalid,
            })?;
        let h = self
            .shard
            .tcp_connect_with(self.now, remote, config)
            .map_err(connect_error)?;
        if options.linger.is_some() {
            self.shard.tcp().set_linger(h, options.linger);
        }
        Ok(SocketHandle::Tcp(h))
    }

    /// `socket` + `setsockopt(options)` + `bind(local)` + non-blocking `connect(remote)`.
    /// `local`'s address is one of the interface's addresses (primary or secondary), or
    /// 0.0.0.0; port 0 leaves the port to `connect`, which picks it for this destination
    /// (Linux `IP_BIND_ADDRESS_NO_PORT`). A given port is taken as a bind takes it, on every
    /// shard of the runtime: `SO_REUSEADDR` and `SO_REUSEPORT` in `options` apply as for
    /// [`Sockets::listen`].
    ///
    /// Errors at once: as [`Sockets::connect`], and `EADDRINUSE` (the port is bound elsewhere,
    /// see [`crate::shard::tcp::TcpEndpoints::connect_bound`]), `EADDRNOTAVAIL` (not a local
    /// address, or the 4-tuple is in use).
    pub fn connect_bound(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        options: &SocketOptions,
    ) -> Result<SocketHandle, ConnectError> {
        if options.defer_accept.is_some() || options.fast_open.is_some() {
            return Err(ConnectError::NotSupported);
        }
        let config = options
            .apply(*self.shard.tcp_endpoints().config())
            .map_err(|e| match e {
                SetOptionError::NotSupported => ConnectError::NotSupported,
                _ => ConnectError::Invalid,
            })?;
        let reuse = Reuse {
            addr: options.reuse_addr,
            port: options.reuse_port,
        };
        let h = self
            .shard
            .tcp_connect_bound(self.now, local, reuse, remote, config)
            .map_err(connect_error)?;
        if options.linger.is_some() {
            self.shard.tcp().set_linger(h, options.linger);
        }
        Ok(SocketHandle::Tcp(h))
    }

    /// `sendto(MSG_FASTOPEN)`: a non-blocking `connect` whose first `data` goes in the SYN
    /// when the server gave this shard a TCP Fast Open cookie before (RFC 7413); the first time
    /// the SYN asks for a cookie and the data follows the handshake. A server that answers
    /// without acknowledging the data gets it again; one whose path lost a SYN with data gets
    /// none in SYNs for an hour. Returns the socket and how many bytes of `data` were queued.
    ///
    /// Errors as [`Sockets::connect`].
    pub fn connect_with_data(
        &mut self,
        remote: SocketAddrV4,
        data: &[u8],
        options: &SocketOptions,
    ) -> Result<(SocketHandle, usize), ConnectError> {
        if options.defer_accept.is_some() || options.fast_open.is_some() {
            return Err(ConnectError::NotSupported);
        }
        let config = options
            .apply(*self.shard.tcp_endpoints().config())
            .map_err(|_| ConnectError::Invalid)?;
        let (h, n) = self
            .shard
            .tcp_connect_fast_open(self.now, remote, config, data)
            .map_err(connect_error)?;
        if options.linger.is_some() {
            self.shard.tcp().set_linger(h, options.linger);
        }
        Ok((SocketHandle::Tcp(h), n))
    }

    // ----- state -----

    /// `SO_ERROR`: why the connection failed, if it did. (Unlike Linux, reading it does not
    /// clear it: the connection stays failed.)
    pub fn socket_error(&self, h: SocketHandle) -> Option<SocketError> {
        self.tcb(h).and_then(|t| t.error()).map(socket_error)
    }

    /// The TCP state of a connection (`LISTEN` for a listener); `None` for UDP and stale
    /// handles.
    pub fn state(&self, h: SocketHandle) -> Option<State> {
        match h {
            SocketHandle::Listener(l) => self
                .shard
                .tcp_endpoints()
                .is_listening(l)
                .then_some(State::Listen),
            _ => self.tcb(h).map(|t| t.state()),
        }
    }

    /// True once the handshake completed and the connection did not fail.
    pub fn is_connected(&self, h: SocketHandle) -> bool {
        self.tcb(h)
            .is_some_and(|t| t.state().is_synchronized() && t.error().is_none())
    }

    /// `getsockname`.
    pub fn local_addr(&mut self, h: SocketHandle) -> Option<SocketAddrV4> {
        match h {
            SocketHandle::Listener(l) => self
                .shard
                .tcp_endpoints()
                .is_listening(l)
                .then(|| SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, l.port())),
            SocketHandle::Tcp(_) => self.tcb(h).map(|t| t.local()),
            SocketHandle::Udp(u) => self.shard.udp().local_addr(u),
        }
    }

    /// `getpeername`.
    pub fn peer_addr(&mut self, h: SocketHandle) -> Option<SocketAddrV4> {
        match h {
            SocketHandle::Listener(_) => None,
            SocketHandle::Tcp(_) => self.tcb(h).map(|t| t.remote()),
            SocketHandle::Udp(u) => self.shard.udp().peer_addr(u),
        }
    }

    /// The readiness of a socket now (the level view; events report its edges).
    pub fn readiness(&mut self, h: SocketHandle) -> Readiness {
        match h {
            SocketHandle::Listener(l) => self.shard.tcp_endpoints().listener_readiness(l),
            SocketHandle::Tcp(t) => self.shard.tcp_endpoints().readiness(t),
            SocketHandle::Udp(u) => {
                let udp = self.shard.udp();
                if udp.local_addr(u).is_none() {
                    Readiness::EMPTY
                } else if udp.recv_queue_len(u) > 0 {
                    Readiness::READABLE | Readiness::WRITABLE
                } else {
                    Readiness::WRITABLE
                }
            }
        }
    }

    // ----- data -----

    /// `send`/`write`: copies as much of `data` as fits. On UDP, one datagram to the
    /// connected peer (all of `data` or nothing).
    ///
    /// Errors: `EAGAIN` (buffer full, or still connecting), `EPIPE` (after `shutdown(Write)` or
    /// `close`), `ENOTCONN` (not connected, or a listener), `ECONNRESET` / `ECONNREFUSED` /
    /// `ETIMEDOUT` (the connection failed), `EBADF`; UDP: `EDESTADDRREQ`, `EMSGSIZE`,
    /// `ENETUNREACH`, `EACCES`, `EINVAL`.
    pub fn send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, SendError> {
        match h {
            SocketHandle::Udp(u) => self.send_to(SocketHandle::Udp(u), None, data),
            SocketHandle::Listener(_) => Err(SendError::NotConnected),
            SocketHandle::Tcp(_) => self
                .tcb_mut(h)
                .ok_or(SendError::BadHandle)?
                .send(data)
                .map_err(send_error),
        }
    }

    /// Zero-copy `send`: lends up to `max` bytes of free space in the connection's send buffer
    /// to `write`, which fills a prefix and returns its length; those bytes are sent. (The
    /// slice may be shorter than `max`: the free space, or up to where the ring wraps.)
    ///
    /// Errors: as [`Sockets::send`]; `ENOTCONN` on UDP (use [`Sockets::send_to_with`]).
    pub fn send_with(
        &mut self,
        h: SocketHandle,
        max: usize,
        write: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, SendError> {
        match h {
            SocketHandle::Tcp(_) => self
                .tcb_mut(h)
                .ok_or(SendError::BadHandle)?
                .send_with(max, write)
                .map_err(send_error),
            _ => Err(SendError::NotConnected),
        }
    }

    /// `recv`/`read`: copies received bytes into `buf`. `Ok(0)` is end of stream (the peer's
    /// FIN, RFC 9293 3.10.7.4 "eighth, check the FIN bit"), or `shutdown(Read)` once the bytes
    /// received before it are read. On UDP, one datagram (its tail dropped if `buf` is short).
    ///
    /// Errors: `EAGAIN` (nothing yet), `ECONNRESET` / `ECONNREFUSED` / `ETIMEDOUT`, `ENOTCONN`
    /// (never connected, or a listener), `EBADF`.
    pub fn recv(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, RecvError> {
        match h {
            SocketHandle::Udp(u) => self
                .shard
                .udp()
                .recv_from(u, buf)
                .map(|r| r.len)
                .map_err(udp_recv_error),
            SocketHandle::Listener(_) => Err(RecvError::NotConnected),
            SocketHandle::Tcp(t) => {
                let read_shut = self.shard.tcp_endpoints().is_read_shutdown(t);
                let r = self
                    .shard
                    .tcp()
                    .recv(t, self.rx, buf)
                    .ok_or(RecvError::BadHandle)?
                    .map_err(recv_error);
                match r {
                    // Bytes still in a frame this view does not lend are not end of stream.
                    Err(RecvError::WouldBlock) if read_shut && !self.has_unread(t) => Ok(0),
                    r => r,
                }
            }
        }
    }

    /// Zero-copy `recv`: lends the first contiguous received bytes to `read`, which returns
    /// how many it consumed: in the received frame itself when the bytes are still there (a
    /// view made with [`Shard::sockets_with_rx`]), else in the receive buffer. `Ok(0)` without
    /// calling `read` is end of stream. On UDP, lends one whole datagram, which is then
    /// consumed.
    ///
    /// Errors: as [`Sockets::recv`].
    pub fn recv_with(
        &mut self,
        h: SocketHandle,
        read: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, RecvError> {
        match h {
            SocketHandle::Udp(u) => self
                .shard
                .udp()
                .recv_with(u, |data, _| read(data))
                .map_err(udp_recv_error),
            SocketHandle::Listener(_) => Err(RecvError::NotConnected),
            SocketHandle::Tcp(t) => {
                let read_shut = self.shard.tcp_endpoints().is_read_shutdown(t);
                let r = self
                    .shard
                    .tcp()
                    .recv_with(t, self.rx, read)
                    .ok_or(RecvError::BadHandle)?
                    .map_err(recv_error);
                match r {
                    // Bytes still in a frame this view does not lend are not end of stream.
                    Err(RecvError::WouldBlock) if read_shut && !self.has_unread(t) => Ok(0),
                    r => r,
                }
            }
        }
    }

    /// `shutdown`. `Write` queues a FIN after the data written (RFC 9293 3.10.4: "CLOSE ...
    /// ESTABLISHED STATE: queue this until all preceding SENDs have been segmentized, then
    /// form a FIN segment"); the other direction keeps working. `Read` makes reads return 0
    /// once the bytes already received are read; incoming data is still acknowledged, as on
    /// Linux.
    ///
    /// Errors: `ENOTCONN` if the connection is not open (never connected, failed, closed) or
    /// the socket is a listener or UDP; `EBADF`.
    pub fn shutdown(&mut self, h: SocketHandle, how: Shutdown) -> Result<(), ShutdownError> {
        let SocketHandle::Tcp(t) = h else {
            return match h {
                SocketHandle::Listener(l) if !self.shard.tcp_endpoints().is_listening(l) => {
                    Err(ShutdownError::BadHandle)
                }
                _ => Err(ShutdownError::NotConnected),
            };
        };
        let tcb = self.tcb_mut(h).ok_or(ShutdownError::BadHandle)?;
        // Linux inet_shutdown: ENOTCONN unless SYN-SENT or later and not CLOSED.
        if matches!(tcb.state(), State::Closed | State::Listen) {
            return Err(ShutdownError::NotConnected);
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            tcb.shutdown_write();
        }
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.shard.tcp().shutdown_read(t);
        }
        Ok(())
    }

    /// `close`. A connection finishes in the background (FIN; RST instead if unread data
    /// remains, RFC 2525 2.17, as Linux does); with `SO_LINGER` 0 it is reset at once (RFC
    /// 9293 3.10.4 ABORT) and skips TIME-WAIT; with `SO_LINGER` t > 0 it is reset if its data
    /// is not all acknowledged after t. A listener resets the connections it has not handed
    /// out. The handle is invalid afterwards.
    ///
    /// Errors: `EBADF` for a stale handle.
    pub fn close(&mut self, h: SocketHandle) -> Result<(), CloseError> {
        let now = self.now;
        match h {
            SocketHandle::Listener(l) => {
                if !self.shard.tcp_endpoints().is_listening(l) {
                    return Err(CloseError::BadHandle);
                }
                self.shard.tcp().close_listener(now, l);
            }
            SocketHandle::Tcp(t) => {
                if self.shard.tcp_endpoints().get(t).is_none() {
                    return Err(CloseError::BadHandle);
                }
                self.shard.tcp().close(now, t);
            }
            SocketHandle::Udp(u) => {
                self.shard
                    .udp()
                    .close(u)
                    .map_err(|_| CloseError::BadHandle)?;
            }
        }
        Ok(())
    }

    // ----- options -----

    /// `setsockopt` on a live socket.
    ///
    /// On a listener every option applies to the connections it will accept. On a connection,
    /// `SO_LINGER`, `SO_KEEPALIVE` (RFC 1122 4.2.3.6; the idle timer restarts), `TCP_NODELAY`,
    /// `TCP_QUICKACK` and `TCP_CONGESTION` apply at once, and so do `SO_SNDBUF` and
    /// `SO_RCVBUF` as limits ([`crate::tcp::Tcb::set_send_capacity`],
    /// [`crate::tcp::Tcb::set_recv_capacity`]: never below what is buffered or the window
    /// already advertised, and the window scale stays the one chosen at SYN time, as on Linux).
    ///
    /// Errors: `EISCONN` for `TCP_MAXSEG` on a connection (the MSS is negotiated in the
    /// handshake: set it on the listener or in the `connect` options); `EINVAL`
    /// for `TCP_MAXSEG` below 88; `ENOPROTOOPT` for `TCP_FASTOPEN` on a connection, for
    /// `TCP_DEFER_ACCEPT` on a connection (a listener's option here) and for any of these on a
    /// UDP socket; `EBADF`.
    pub fn set_option(&mut self, h: SocketHandle, opt: SockOpt) -> Result<(), SetOptionError> {
        let now = self.now;
        match h {
            SocketHandle::Udp(_) => Err(SetOptionError::NotSupported),
            SocketHandle::Listener(l) => {
                let tcp = self.shard.tcp();
                let mut config = *tcp.listener_config(l).ok_or(SetOptionError::BadHandle)?;
                let mut linger = tcp.listener_linger(l);
                apply_to_listener(&mut config, &mut linger, opt)?;
                tcp.set_listener_config(l, config, linger);
                match opt {
                    SockOpt::DeferAccept(d) => {
                        let n = tcp::listener::defer_accept_retransmissions(d.as_secs());
                        tcp.set_defer_accept(l, n);
                    }
                    SockOpt::FastOpen(q) => {
                        tcp.set_fast_open(l, q as usize);
                    }
                    _ => {}
                }
                Ok(())
            }
            SocketHandle::Tcp(t) => {
                if let SockOpt::Linger(l) = opt {
                    return match self.shard.tcp().set_linger(t, l) {
                        true => Ok(()),
                        false => Err(SetOptionError::BadHandle),
                    };
                }
                let tcb = self.tcb_mut(h).ok_or(SetOptionError::BadHandle)?;
                match opt {
                    SockOpt::Linger(_) => {}
                    SockOpt::Keepalive(k) => tcb.set_keepalive(now, k),
                    SockOpt::NoDelay(on) => tcb.set_nodelay(on),
                    SockOpt::QuickAck(on) => tcb.set_quickack(on),
                    SockOpt::Congestion(a) => tcb.set_congestion(a),
                    SockOpt::RecvBuffer(n) => tcb.set_recv_capacity(n),
                    SockOpt::SendBuffer(n) => tcb.set_send_capacity(n),
                    SockOpt::MaxSegment(_) => return Err(SetOptionError::AlreadyConnected),
                    SockOpt::FastOpen(_) | SockOpt::DeferAccept(_) => {
                        return Err(SetOptionError::NotSupported);
                    }
                }
                Ok(())
            }
        }
    }

    /// `getsockopt`: the options of a TCP socket as they are now. On a connection,
    /// `max_segment` is the MSS in use (Linux `TCP_MAXSEG` returns `mss_cache` once
    /// connected) and `congestion` the algorithm in use; `reuse_addr`/`reuse_port` are
    /// reported for listeners only.
    ///
    /// Errors: `EBADF`; `ENOPROTOOPT` on a UDP socket.
    pub fn options(&self, h: SocketHandle) -> Result<SocketOptions, SetOptionError> {
        let tcp = self.shard.tcp_endpoints();
        let from_config = |c: &TcpConfig, linger| SocketOptions {
            linger,
            keepalive: c.keepalive,
            recv_buffer: Some(c.recv_buffer),
            send_buffer: Some(c.send_buffer),
            nodelay: Some(c.nodelay),
            quickack: Some(c.quickack),
            max_segment: Some(c.mss),
            congestion: Some(c.congestion),
            ..SocketOptions::default()
        };
        match h {
            SocketHandle::Udp(_) => Err(SetOptionError::NotSupported),
            SocketHandle::Listener(l) => {
                let c = tcp.listener_config(l).ok_or(SetOptionError::BadHandle)?;
                let reuse = tcp.listener_reuse(l).unwrap_or_default();
                let defer = tcp::listener::defer_accept_seconds(tcp.defer_accept(l));
                Ok(SocketOptions {
                    reuse_addr: reuse.addr,
                    reuse_port: reuse.port,
                    defer_accept: (defer > 0).then(|| Duration::from_secs(defer)),
                    fast_open: Some(tcp.fast_open(l) as u32).filter(|&q| q > 0),
                    ..from_config(c, tcp.listener_linger(l))
                })
            }
            SocketHandle::Tcp(t) => {
                let tcb = tcp.get(t).ok_or(SetOptionError::BadHandle)?;
                Ok(SocketOptions {
                    max_segment: Some(tcb.mss().len() as u16),
                    congestion: Some(tcb.congestion()),
                    ..from_config(tcb.config(), tcp.linger(t))
                })
            }
        }
    }

    // ----- readiness and introspection -----

    /// `epoll_wait`: moves every pending event into `out` (appended; reuse the `Vec` so that
    /// this never allocates) and returns how many. See [`super::events`] for the
    /// edge-triggered rule.
    pub fn poll_events(&mut self, out: &mut Vec<Event>) -> usize {
        self.shard.tcp().poll_events(out)
    }

    /// Every TCP listener and connection, like `ss -tan -o`.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionInfo> + '_ {
        self.shard.tcp_endpoints().connections()
    }

    /// How many TCP sockets are in each state.
    pub fn state_histogram(&self) -> StateHistogram {
        self.shard.tcp_endpoints().state_histogram()
    }

    // ----- UDP -----

    /// `socket(SOCK_DGRAM)` + `bind(addr)`: a UDP socket (port 0 picks an ephemeral port).
    ///
    /// Errors: `EADDRINUSE`, `EADDRNOTAVAIL`, `EMFILE` (socket table full), `EAGAIN` (no
    /// ephemeral port free).
    pub fn bind_udp(&mut self, addr: SocketAddrV4) -> Result<SocketHandle, BindError> {
        let h = self
            .shard
            .udp()
            .open()
            .map_err(|_| BindError::TooManySockets)?;
        if let Err(e) = self.shard.udp_bind(h, addr) {
            // The socket never existed for the caller.
            let _ = self.shard.udp().close(h);
            return Err(udp_bind_error(e));
        }
        Ok(SocketHandle::Udp(h))
    }

    /// `connect` on a UDP socket: records the default peer (no packet is sent); datagrams
    /// from others are dropped.
    ///
    /// Errors: `EBADF` (stale, or not a UDP socket), `EAGAIN` (no ephemeral port free).
    pub fn connect_udp(&mut self, h: SocketHandle, peer: SocketAddrV4) -> Result<(), BindError> {
        let SocketHandle::Udp(u) = h else {
            return Err(BindError::BadHandle);
        };
        self.shard.udp().connect(u, peer).map_err(udp_bind_error)
    }

    /// `sendto`: one datagram to `dst` (or the connected peer if `None`); all of `data` or
    /// nothing, returning its length.
    ///
    /// Errors: `EAGAIN` (send queue full), `EDESTADDRREQ`, `EMSGSIZE`, `ENETUNREACH`,
    /// `EACCES` (broadcast without `SO_BROADCAST`), `EINVAL` (port 0), `ECONNREFUSED` (an ICMP
    /// port unreachable for an earlier datagram), `EBADF` (stale, or not UDP).
    pub fn send_to(
        &mut self,
        h: SocketHandle,
        dst: Option<SocketAddrV4>,
        data: &[u8],
    ) -> Result<usize, SendError> {
        let SocketHandle::Udp(u) = h else {
            return Err(SendError::BadHandle);
        };
        self.shard
            .udp_send_to(u, dst, data)
            .map(|()| data.len())
            .map_err(udp_send_error)
    }

    /// Zero-copy `sendto`: `write` fills the `len`-byte payload in place in the send queue.
    ///
    /// Errors: as [`Sockets::send_to`].
    pub fn send_to_with(
        &mut self,
        h: SocketHandle,
        dst: Option<SocketAddrV4>,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<usize, SendError> {
        let SocketHandle::Udp(u) = h else {
            return Err(SendError::BadHandle);
        };
        self.shard
            .udp_send_with(u, dst, len, write)
            .map(|()| len)
            .map_err(udp_send_error)
    }

    /// `recvfrom`: the oldest datagram, whole (its tail dropped if `buf` is short; see
    /// [`udp::Received::truncated`]).
    ///
    /// Errors: `EAGAIN`, `ECONNREFUSED`, `EBADF` (stale, or not UDP).
    pub fn recv_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<udp::Received, RecvError> {
        let SocketHandle::Udp(u) = h else {
            return Err(RecvError::BadHandle);
        };
        self.shard.udp().recv_from(u, buf).map_err(udp_recv_error)
    }
}

/// The socket-level `connect` error of the shard's.
fn connect_error(e: endpoints::ConnectError) -> ConnectError {
    match e {
        endpoints::ConnectError::AddrNotAvailable => ConnectError::AddrNotAvailable,
        endpoints::ConnectError::AddrInUse => ConnectError::AddrInUse,
        endpoints::ConnectError::NetUnreachable => ConnectError::NetUnreachable,
        endpoints::ConnectError::NoBuffers => ConnectError::NoBuffers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_errors_map_to_the_errno_linux_reports() {
        assert_eq!(send_error(tcp::SendError::Shutdown).errno(), "EPIPE");
        assert_eq!(
            send_error(tcp::SendError::Failed(TcpError::ConnectionReset)).errno(),
            "ECONNRESET"
        );
        assert_eq!(send_error(tcp::SendError::WouldBlock).errno(), "EAGAIN");
        assert_eq!(
            recv_error(tcp::RecvError::Failed(TcpError::TimedOut)).errno(),
            "ETIMEDOUT"
        );
        assert_eq!(
            recv_error(tcp::RecvError::Failed(TcpError::ConnectionRefused)).errno(),
            "ECONNREFUSED"
        );
        assert_eq!(
            udp_send_error(udp::SendError::NotConnected).errno(),
            "EDESTADDRREQ"
        );
    }

    #[test]
    fn listener_options_reach_the_config() {
        let mut c = TcpConfig::default();
        let mut linger = None;
        apply_to_listener(&mut c, &mut linger, SockOpt::MaxSegment(600)).unwrap();
        apply_to_listener(&mut c, &mut linger, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
        assert_eq!((c.mss, linger), (600, Some(Duration::ZERO)));
        // TCP_DEFER_ACCEPT and TCP_FASTOPEN leave the connections' settings alone (the
        // listener keeps them).
        let before = c;
        apply_to_listener(&mut c, &mut linger, SockOpt::DeferAccept(Duration::ZERO)).unwrap();
        apply_to_listener(&mut c, &mut linger, SockOpt::FastOpen(5)).unwrap();
        assert_eq!(c, before);
    }
}
