//! UDP sockets with datagram semantics (RFC 768), as the Berkeley API defines them.
//!
//! - `bind` claims a local port (`EADDRINUSE` if taken, `EADDRNOTAVAIL` for an address that is
//!   not one of the interface's, primary or secondary); port 0, or a send/connect on an
//!   unbound socket, picks an ephemeral port from Linux's default `ip_local_port_range`
//!   (32768..=60999).
//! - `connect` only records the peer: no packet is sent. A connected socket sends to its peer by
//!   default and drops datagrams from anyone else.
//! - Every datagram is received whole, in the order it arrived, never merged with another or split.
//!   A receive buffer shorter than the datagram gets its first bytes and the rest is discarded, as
//!   `recv` without `MSG_PEEK` does on Linux; the result says the datagram was truncated.
//! - Sends are not fragmented: a datagram larger than the path MTU allows fails with `EMSGSIZE`,
//!   like Linux with `IP_PMTUDISC_DO`.
//!
//! Each socket has a receive and a send queue of fixed-size slots, allocated when the socket is
//! opened (a control-path operation), so the data path never allocates.

use crate::errno::errno_enum;
use crate::slot_queue::SlotQueue;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::HashMap;

/// Linux's default `net.ipv4.ip_local_port_range`.
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 32768..=60999;

/// UDP tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// Most sockets open at once.
    pub max_sockets: usize,
    /// Datagrams a socket's receive queue holds.
    pub rx_queue_len: usize,
    /// Datagrams a socket's send queue holds.
    pub tx_queue_len: usize,
    /// The largest datagram payload: the interface MTU minus the IPv4 and UDP headers.
    pub max_payload: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            max_sockets: 1024,
            rx_queue_len: 256,
            tx_queue_len: 256,
            max_payload: 1500 - 20 - 8,
        }
    }
}

/// A socket of a [`UdpSockets`] table. A handle outlives its socket harmlessly: operations on a
/// closed socket's handle fail with `EBADF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpHandle {
    index: u32,
    generation: u32,
}

errno_enum!(
    /// Why a socket could not be opened.
    OpenError {
        /// The socket table is full.
        TooManySockets => "EMFILE",
    }
);

errno_enum!(
    /// Why `bind` or `connect` failed.
    BindError {
        /// Another socket has the port.
        AddrInUse => "EADDRINUSE",
        /// The address is not the interface's (nor 0.0.0.0).
        AddrNotAvailable => "EADDRNOTAVAIL",
        /// The socket is already bound.
        AlreadyBound => "EINVAL",
        /// No ephemeral port is free.
        NoEphemeralPort => "EAGAIN",
        /// The handle names no open socket.
        BadHandle => "EBADF",
    }
);

errno_enum!(
    /// Why a send failed.
    SendError {
        /// The send queue is full; retry after the next transmit.
        WouldBlock => "EAGAIN",
        /// The datagram does not fit in one unfragmented IP packet.
        MessageTooLong => "EMSGSIZE",
        /// Destination port 0 (Linux `udp_sendmsg` refuses it the same way).
        InvalidArgument => "EINVAL",
        /// No destination given and the socket is not connected.
        NotConnected => "EDESTADDRREQ",
        /// A broadcast destination without `SO_BROADCAST`.
        BroadcastDenied => "EACCES",
        /// The peer answered an earlier datagram with ICMP port unreachable (connected sockets).
        ConnectionRefused => "ECONNREFUSED",
        /// Implicit bind found no free ephemeral port.
        NoEphemeralPort => "EAGAIN",
        /// No route to the destination (off-link with no gateway).
        NetUnreachable => "ENETUNREACH",
        /// The handle names no open socket.
        BadHandle => "EBADF",
    }
);

errno_enum!(
    /// Why a receive failed.
    RecvError {
        /// No datagram is queued.
        WouldBlock => "EAGAIN",
        /// The peer answered an earlier datagram with ICMP port unreachable (connected sockets).
        ConnectionRefused => "ECONNREFUSED",
        /// The handle names no open socket.
        BadHandle => "EBADF",
    }
);

/// One datagram handed to `recv_from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// The datagram's full length; larger than `len` if the buffer was too short (`MSG_TRUNC`).
    pub datagram_len: usize,
    /// Who sent it.
    pub from: SocketAddrV4,
}

impl Received {
    /// True if the datagram did not fit in the buffer and its tail was discarded.
    pub fn truncated(&self) -> bool {
        self.datagram_len > self.len
    }
}

/// What happened to an incoming datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued on a socket.
    Delivered,
    /// No socket has the port: answer with ICMP port unreachable.
    NoPort,
    /// A connected socket has the port but the datagram is from another peer.
    Filtered,
    /// The socket's receive queue is full.
    QueueFull,
}

/// A datagram waiting in a send queue, as [`UdpSockets::poll_send`] hands it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// Source address (the socket's local address, or the interface address if bound to 0.0.0.0).
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// The payload.
    pub payload: &'a [u8],
}

#[derive(Debug)]
struct Socket {
    generation: u32,
    open: bool,
    local: Option<SocketAddrV4>,
    peer: Option<SocketAddrV4>,
    broadcast: bool,
    pending_error: bool,
    in_send_list: bool,
    rx: SlotQueue<Peer>,
    tx: SlotQueue<Peer>,
}

/// A `SocketAddrV4` that is `Default`, for slot metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Peer(SocketAddrV4);

impl Default for Peer {
    fn default() -> Self {
        Peer(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
    }
}

/// The UDP sockets of one shard.
#[derive(Debug)]
pub struct UdpSockets {
    config: UdpConfig,
    local_addr: Ipv4Addr,
    sockets: Vec<Socket>,
    free: Vec<u32>,
    /// Bound port to socket index, hashed with `ahash` keyed by the shard's secret (the port
    /// of every received datagram is looked up here; std's SipHash cost ~100 instructions).
    ports: HashMap<u16, u32, ahash::RandomState>,
    send_list: Vec<u32>,
    next_ephemeral: u16,
}

impl UdpSockets {
    /// An empty table for an interface with primary address `local_addr` (the source of
    /// datagrams from sockets bound to 0.0.0.0); `key` (16 secret bytes) keys the port
    /// table's hash.
    pub fn new(config: UdpConfig, local_addr: Ipv4Addr, key: [u8; 16]) -> Self {
        UdpSockets {
            config,
            local_addr,
            sockets: Vec::new(),
            free: Vec::new(),
            ports: HashMap::with_capacity_and_hasher(
                config.max_sockets,
                crate::keyed_hash::keyed_state(key),
            ),
            send_list: Vec::with_capacity(config.max_sockets),
            next_ephemeral: *EPHEMERAL_PORTS.start(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &UdpConfig {
        &self.config
    }

    /// Sockets open.
    pub fn open_count(&self) -> usize {
        self.sockets.len() - self.free.len()
    }

    fn get(&self, h: UdpHandle) -> Option<&Socket> {
        self.sockets
            .get(h.index as usize)
            .filter(|s| s.open && s.generation == h.generation)
    }

    fn get_mut(&mut self, h: UdpHandle) -> Option<&mut Socket> {
        self.sockets
            .get_mut(h.index as usize)
            .filter(|s| s.open && s.generation == h.generation)
    }

    /// `socket(AF_INET, SOCK_DGRAM, 0)`: a new unbound socket.
    pub fn open(&mut self) -> Result<UdpHandle, OpenError> {
        let (rx, tx) = (self.config.rx_queue_len, self.config.tx_queue_len);
        let slot = self.config.max_payload;
        if let Some(index) = self.free.pop() {
            let s = &mut self.sockets[index as usize];
            s.generation = s.generation.wrapping_add(1);
            s.open = true;
            return Ok(UdpHandle {
                index,
                generation: s.generation,
            });
        }
        if self.sockets.len() >= self.config.max_sockets {
            return Err(OpenError::TooManySockets);
        }
        let index = self.sockets.len() as u32;
        self.sockets.push(Socket {
            generation: 0,
            open: true,
            local: None,
            peer: None,
            broadcast: false,
            pending_error: false,
            in_send_list: false,
            rx: SlotQueue::new(rx, slot),
            tx: SlotQueue::new(tx, slot),
        });
        Ok(UdpHandle {
            index,
            generation: 0,
        })
    }

    /// `close`: releases the port; queued datagrams are discarded.
    pub fn close(&mut self, h: UdpHandle) -> Result<(), BindError> {
        let s = self.get_mut(h).ok_or(BindError::BadHandle)?;
        let local = s.local.take();
        s.open = false;
        s.peer = None;
        s.broadcast = false;
        s.pending_error = false;
        s.rx.clear();
        s.tx.clear();
        if let Some(local) = local {
            self.ports.remove(&local.port());
        }
        self.free.push(h.index);
        Ok(())
    }

    fn ephemeral_port(&mut self) -> Option<u16> {
        let span = u32::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port >= *EPHEMERAL_PORTS.end() {
                *EPHEMERAL_PORTS.start()
            } else {
                port + 1
            };
            if !self.ports.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }

    /// `bind`: claims `addr` (address 0.0.0.0 = any; port 0 = an ephemeral port).
    /// `is_local` tells whether an address is one of the interface's (the shard knows its
    /// secondary addresses: [`crate::shard::Shard::udp_bind`]); a socket bound to one sends
    /// from it and receives only what is addressed to it, as on Linux. A port is held by one
    /// socket whatever the address (stricter than Linux, which lets sockets bound to
    /// different specific addresses share a port).
    pub fn bind(
        &mut self,
        h: UdpHandle,
        addr: SocketAddrV4,
        is_local: impl Fn(Ipv4Addr) -> bool,
    ) -> Result<SocketAddrV4, BindError> {
        let s = self.get(h).ok_or(BindError::BadHandle)?;
        if s.local.is_some() {
            return Err(BindError::AlreadyBound);
        }
        if !addr.ip().is_unspecified() && !is_local(*addr.ip()) {
            return Err(BindError::AddrNotAvailable);
        }
        let port = match addr.port() {
            0 => self.ephemeral_port().ok_or(BindError::NoEphemeralPort)?,
            p if self.ports.contains_key(&p) => return Err(BindError::AddrInUse),
            p => p,
        };
        let local = SocketAddrV4::new(*addr.ip(), port);
        self.ports.insert(port, h.index);
        if let Some(s) = self.get_mut(h) {
            s.local = Some(local);
        }
        Ok(local)
    }

    fn autobind(&mut self, h: UdpHandle) -> Result<SocketAddrV4, BindError> {
        match self.get(h).ok_or(BindError::BadHandle)?.local {
            Some(local) => Ok(local),
            // The wildcard address needs no check.
            None => self.bind(h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), |_| false),
        }
    }

    /// `connect`: records the peer (no packet is sent), binding an ephemeral port if unbound.
    pub fn connect(&mut self, h: UdpHandle, peer: SocketAddrV4) -> Result<(), BindError> {
        self.autobind(h)?;
        let s = self.get_mut(h).ok_or(BindError::BadHandle)?;
        s.peer = Some(peer);
        s.pending_error = false;
        Ok(())
    }

    /// `connect(AF_UNSPEC)`: forgets the peer.
    pub fn disconnect(&mut self, h: UdpHandle) -> Result<(), BindError> {
        let s = self.get_mut(h).ok_or(BindError::BadHandle)?;
        s.peer = None;
        s.pending_error = false;
        Ok(())
    }

    /// `SO_BROADCAST`: allows sending to broadcast addresses.
    pub fn set_broadcast(&mut self, h: UdpHandle, on: bool) -> Result<(), BindError> {
        self.get_mut(h).ok_or(BindError::BadHandle)?.broadcast = on;
        Ok(())
    }

    /// `getsockname`.
    pub fn local_addr(&self, h: UdpHandle) -> Option<SocketAddrV4> {
        self.get(h)?.local
    }

    /// `getpeername`.
    pub fn peer_addr(&self, h: UdpHandle) -> Option<SocketAddrV4> {
        self.get(h)?.peer
    }

    /// Datagrams waiting to be received.
    pub fn recv_queue_len(&self, h: UdpHandle) -> usize {
        self.get(h).map_or(0, |s| s.rx.len())
    }

    /// `sendto` (or `send` with `dst = None` on a connected socket): queues one datagram.
    /// `is_broadcast` tells whether the destination is a broadcast address of the interface.
    pub fn send_to(
        &mut self,
        h: UdpHandle,
        dst: Option<SocketAddrV4>,
        data: &[u8],
        is_broadcast: impl Fn(Ipv4Addr) -> bool,
    ) -> Result<(), SendError> {
        self.send_with(h, dst, data.len(), is_broadcast, |buf| {
            buf.copy_from_slice(data)
        })
    }

    /// Like [`UdpSockets::send_to`], but the payload of `len` bytes is written in place by `write`
    /// into the send queue's slot (no intermediate buffer).
    pub fn send_with(
        &mut self,
        h: UdpHandle,
        dst: Option<SocketAddrV4>,
        len: usize,
        is_broadcast: impl Fn(Ipv4Addr) -> bool,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        let max_payload = self.config.max_payload;
        let s = self.get_mut(h).ok_or(SendError::BadHandle)?;
        if s.pending_error {
            // Linux reports a pending ICMP error once, on the next call (sk_err).
            s.pending_error = false;
            return Err(SendError::ConnectionRefused);
        }
        let dst = dst.or(s.peer).ok_or(SendError::NotConnected)?;
        if dst.port() == 0 {
            return Err(SendError::InvalidArgument);
        }
        if len > max_payload {
            return Err(SendError::MessageTooLong);
        }
        if is_broadcast(*dst.ip()) && !s.broadcast {
            return Err(SendError::BroadcastDenied);
        }
        self.autobind(h).map_err(|_| SendError::NoEphemeralPort)?;
        let s = self.get_mut(h).ok_or(SendError::BadHandle)?;
        s.tx.push_with(Peer(dst), len, write)
            .map_err(|_| SendError::WouldBlock)?;
        if !s.in_send_list {
            s.in_send_list = true;
            self.send_list.push(h.index);
        }
        Ok(())
    }

    /// `recvfrom`: takes the oldest datagram, copying as much as fits into `buf`.
    pub fn recv_from(&mut self, h: UdpHandle, buf: &mut [u8]) -> Result<Received, RecvError> {
        self.recv_with(h, |data, from| {
            let len = data.len().min(buf.len());
            buf[..len].copy_from_slice(&data[..len]);
            Received {
                len,
                datagram_len: data.len(),
                from,
            }
        })
    }

    /// Zero-copy receive: lends the oldest datagram and its sender to `f`, then discards it.
    pub fn recv_with<R>(
        &mut self,
        h: UdpHandle,
        f: impl FnOnce(&[u8], SocketAddrV4) -> R,
    ) -> Result<R, RecvError> {
        let s = self.get_mut(h).ok_or(RecvError::BadHandle)?;
        let Some((Peer(from), data)) = s.rx.front() else {
            if s.pending_error {
                s.pending_error = false;
                return Err(RecvError::ConnectionRefused);
            }
            return Err(RecvError::WouldBlock);
        };
        let r = f(data, from);
        s.rx.pop();
        Ok(r)
    }

    /// Delivers an incoming datagram from `src` to `dst`. `to_broadcast` tells whether `dst` is a
    /// broadcast address (only sockets bound to 0.0.0.0 receive those, as on Linux).
    pub fn deliver(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        to_broadcast: bool,
        payload: &[u8],
    ) -> Delivery {
        let Some(&index) = self.ports.get(&dst.port()) else {
            return Delivery::NoPort;
        };
        let Some(s) = self.sockets.get_mut(index as usize) else {
            return Delivery::NoPort;
        };
        let Some(local) = s.local else {
            return Delivery::NoPort;
        };
        if !local.ip().is_unspecified() && (to_broadcast || local.ip() != dst.ip()) {
            return Delivery::NoPort;
        }
        if let Some(peer) = s.peer
            && peer != src
        {
            return Delivery::Filtered;
        }
        match s.rx.push(Peer(src), payload) {
            Ok(()) => Delivery::Delivered,
            Err(_) => Delivery::QueueFull,
        }
    }

    /// An ICMP port unreachable arrived for a datagram we sent from `local` to `remote`: a
    /// connected socket with that peer reports `ECONNREFUSED` on its next call (Linux does this
    /// for connected UDP sockets; unconnected ones ignore it unless `IP_RECVERR` is set).
    pub fn port_unreachable(&mut self, local: SocketAddrV4, remote: SocketAddrV4) {
        let Some(&index) = self.ports.get(&local.port()) else {
            return;
        };
        if let Some(s) = self.sockets.get_mut(index as usize)
            && s.open
            && s.peer == Some(remote)
        {
            s.pending_error = true;
        }
    }

    /// True if some socket has a datagram to send.
    pub fn has_pending_send(&self) -> bool {
        !self.send_list.is_empty()
    }

    /// Hands queued datagrams to `emit`, oldest first per socket, sockets in the order they
    /// became ready. `emit` returns false when it cannot take more (no transmit buffer): the
    /// datagram stays queued and polling stops.
    pub fn poll_send(&mut self, mut emit: impl FnMut(Outgoing<'_>) -> bool) {
        let local_addr = self.local_addr;
        let mut done = 0;
        'sockets: for &index in self.send_list.iter() {
            let Some(s) = self.sockets.get_mut(index as usize) else {
                done += 1;
                continue;
            };
            let src = match s.local {
                Some(l) if l.ip().is_unspecified() => SocketAddrV4::new(local_addr, l.port()),
                Some(l) => l,
                None => SocketAddrV4::new(local_addr, 0),
            };
            while let Some((Peer(dst), payload)) = s.tx.front() {
                if !emit(Outgoing { src, dst, payload }) {
                    break 'sockets;
                }
                s.tx.pop();
            }
            s.in_send_list = false;
            done += 1;
        }
        self.send_list.drain(..done);
    }

    /// The socket bound to `port`, if any (the socket layer reports readiness by handle).
    pub fn socket_on_port(&self, port: u16) -> Option<UdpHandle> {
        let &index = self.ports.get(&port)?;
        let s = self.sockets.get(index as usize).filter(|s| s.open)?;
        Some(UdpHandle {
            index,
            generation: s.generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 9000);
    const OTHER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 3), 9000);

    fn any(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
    }

    fn no_broadcast(_: Ipv4Addr) -> bool {
        false
    }

    /// The interface's addresses in these tests: [`ME`] only.
    fn is_me(a: Ipv4Addr) -> bool {
        a == ME
    }

    fn table() -> UdpSockets {
        UdpSockets::new(
            UdpConfig {
                rx_queue_len: 4,
                tx_queue_len: 2,
                ..UdpConfig::default()
            },
            ME,
            [3; 16],
        )
    }

    fn sent(t: &mut UdpSockets) -> Vec<(SocketAddrV4, SocketAddrV4, Vec<u8>)> {
        let mut out = Vec::new();
        t.poll_send(|o| {
            out.push((o.src, o.dst, o.payload.to_vec()));
            true
        });
        out
    }

    #[test]
    fn bind_to_a_taken_port_is_eaddrinuse() {
        let mut t = table();
        let a = t.open().unwrap();
        let b = t.open().unwrap();
        t.bind(a, any(53), is_me).unwrap();
        assert_eq!(
            t.bind(b, SocketAddrV4::new(ME, 53), is_me),
            Err(BindError::AddrInUse)
        );
        assert_eq!(t.bind(a, any(54), is_me), Err(BindError::AlreadyBound));
        assert_eq!(
            t.bind(
                b,
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 77), 54),
                is_me
            ),
            Err(BindError::AddrNotAvailable)
        );
        t.close(a).unwrap();
        assert_eq!(t.bind(b, any(53), is_me), Ok(any(53)));
    }

    #[test]
    fn port_zero_and_implicit_bind_pick_distinct_ephemeral_ports() {
        let mut t = table();
        let a = t.open().unwrap();
        let b = t.open().unwrap();
        let pa = t.bind(a, any(0), is_me).unwrap().port();
        t.send_to(b, Some(PEER), b"x", no_broadcast).unwrap();
        let pb = t.local_addr(b).unwrap().port();
        assert!(EPHEMERAL_PORTS.contains(&pa) && EPHEMERAL_PORTS.contains(&pb));
        assert_ne!(pa, pb);
    }

    #[test]
    fn datagrams_are_received_whole_and_in_order() {
        let mut t = table();
        let s = t.open().unwrap();
        t.bind(s, any(7), is_me).unwrap();
        let dst = SocketAddrV4::new(ME, 7);
        assert_eq!(t.deliver(PEER, dst, false, b"first"), Delivery::Delivered);
        assert_eq!(t.deliver(OTHER, dst, false, b""), Delivery::Delivered);
        assert_eq!(
            t.deliver(PEER, dst, false, b"third one"),
            Delivery::Delivered
        );
        let mut buf = [0u8; 64];
        let r = t.recv_from(s, &mut buf).unwrap();
        assert_eq!((&buf[..r.len], r.from), (&b"first"[..], PEER));
        let r = t.recv_from(s, &mut buf).unwrap();
        assert_eq!((r.len, r.from), (0, OTHER));
        let r = t.recv_from(s, &mut buf).unwrap();
        assert_eq!(&buf[..r.len], b"third one");
        assert_eq!(t.recv_from(s, &mut buf), Err(RecvError::WouldBlock));
    }

    #[test]
    fn short_buffer_truncates_and_discards_the_rest_of_the_datagram() {
        let mut t = table();
        let s = t.open().unwrap();
        t.bind(s, any(7), is_me).unwrap();
        t.deliver(PEER, SocketAddrV4::new(ME, 7), false, b"0123456789");
        t.deliver(PEER, SocketAddrV4::new(ME, 7), false, b"next");
        let mut buf = [0u8; 4];
        let r = t.recv_from(s, &mut buf).unwrap();
        assert!(r.truncated());
        assert_eq!((&buf[..], r.datagram_len), (&b"0123"[..], 10));
        let r = t.recv_from(s, &mut buf).unwrap();
        assert_eq!(&buf[..r.len], b"next");
    }

    #[test]
    fn connected_socket_filters_other_peers_and_sends_to_its_peer() {
        let mut t = table();
        let s = t.open().unwrap();
        t.connect(s, PEER).unwrap();
        let local = t.local_addr(s).unwrap();
        let dst = SocketAddrV4::new(ME, local.port());
        assert_eq!(t.deliver(OTHER, dst, false, b"spoof"), Delivery::Filtered);
        assert_eq!(t.deliver(PEER, dst, false, b"ok"), Delivery::Delivered);
        t.send_to(s, None, b"hi", no_broadcast).unwrap();
        assert_eq!(
            sent(&mut t),
            vec![(SocketAddrV4::new(ME, local.port()), PEER, b"hi".to_vec())]
        );
        let u = t.open().unwrap();
        assert_eq!(
            t.send_to(u, None, b"hi", no_broadcast),
            Err(SendError::NotConnected)
        );
    }

    #[test]
    fn full_queues_push_back_instead_of_dropping_silently() {
        let mut t = table();
        let s = t.open().unwrap();
        t.bind(s, any(7), is_me).unwrap();
        for _ in 0..4 {
            assert_eq!(
                t.deliver(PEER, SocketAddrV4::new(ME, 7), false, b"x"),
                Delivery::Delivered
            );
        }
        assert_eq!(
            t.deliver(PEER, SocketAddrV4::new(ME, 7), false, b"x"),
            Delivery::QueueFull
        );
        t.send_to(s, Some(PEER), b"1", no_broadcast).unwrap();
        t.send_to(s, Some(PEER), b"2", no_broadcast).unwrap();
        assert_eq!(
            t.send_to(s, Some(PEER), b"3", no_broadcast),
            Err(SendError::WouldBlock)
        );
        // A transmit path with no room keeps the datagram queued.
        t.poll_send(|_| false);
        assert_eq!(sent(&mut t).len(), 2);
        assert!(!t.has_pending_send());
    }

    #[test]
    fn sending_to_port_zero_is_einval() {
        let mut t = table();
        let s = t.open().unwrap();
        let to = SocketAddrV4::new(*PEER.ip(), 0);
        assert_eq!(
            t.send_to(s, Some(to), b"x", no_broadcast),
            Err(SendError::InvalidArgument)
        );
        assert!(!t.has_pending_send());
    }

    #[test]
    fn oversized_datagram_is_emsgsize() {
        let mut t = table();
        let s = t.open().unwrap();
        let big = vec![0u8; 1473];
        assert_eq!(
            t.send_to(s, Some(PEER), &big, no_broadcast),
            Err(SendError::MessageTooLong)
        );
        assert!(t.send_to(s, Some(PEER), &big[..1472], no_broadcast).is_ok());
    }

    #[test]
    fn broadcast_needs_so_broadcast() {
        let mut t = table();
        let s = t.open().unwrap();
        let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 9);
        let is_b = |a: Ipv4Addr| a.is_broadcast();
        assert_eq!(
            t.send_to(s, Some(bcast), b"x", is_b),
            Err(SendError::BroadcastDenied)
        );
        t.set_broadcast(s, true).unwrap();
        assert!(t.send_to(s, Some(bcast), b"x", is_b).is_ok());
    }

    #[test]
    fn broadcasts_reach_only_wildcard_bound_sockets() {
        let mut t = table();
        let specific = t.open().unwrap();
        t.bind(specific, SocketAddrV4::new(ME, 67), is_me).unwrap();
        assert_eq!(
            t.deliver(PEER, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67), true, b"x"),
            Delivery::NoPort
        );
        let wild = t.open().unwrap();
        t.bind(wild, any(68), is_me).unwrap();
        assert_eq!(
            t.deliver(PEER, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68), true, b"x"),
            Delivery::Delivered
        );
    }

    #[test]
    fn port_unreachable_is_reported_once_on_a_connected_socket() {
        let mut t = table();
        let s = t.open().unwrap();
        t.connect(s, PEER).unwrap();
        let local = t.local_addr(s).unwrap();
        t.port_unreachable(SocketAddrV4::new(ME, local.port()), PEER);
        let mut buf = [0u8; 8];
        assert_eq!(t.recv_from(s, &mut buf), Err(RecvError::ConnectionRefused));
        assert_eq!(t.recv_from(s, &mut buf), Err(RecvError::WouldBlock));
        // Unconnected sockets ignore it.
        let u = t.open().unwrap();
        t.bind(u, any(5000), is_me).unwrap();
        t.port_unreachable(SocketAddrV4::new(ME, 5000), PEER);
        assert_eq!(t.recv_from(u, &mut buf), Err(RecvError::WouldBlock));
    }

    #[test]
    fn stale_handle_is_ebadf_after_close_and_reuse() {
        let mut t = table();
        let s = t.open().unwrap();
        t.close(s).unwrap();
        let s2 = t.open().unwrap();
        assert_ne!(s, s2);
        let mut buf = [0u8; 1];
        assert_eq!(t.recv_from(s, &mut buf), Err(RecvError::BadHandle));
        assert_eq!(t.close(s), Err(BindError::BadHandle));
        assert_eq!(t.open_count(), 1);
    }
}
