//! The shard: one per core, owning one port queue pair's worth of protocol state.
//!
//! Its entry points are sans-IO: [`Shard::handle_frame`] (and [`Shard::handle_rx`] for a burst)
//! take received frames and the current time, [`Shard::handle_timeout`] runs timers,
//! [`Shard::poll_transmit`] writes outgoing frames into a [`Transmit`], and
//! [`Shard::poll_timeout`] says when to call again. [`Shard::poll_port`] strings them together
//! over a [`Port`] for the common case.
//!
//! Receive path: Ethernet (our MAC or broadcast) -> ARP | IPv4 (our address or a broadcast,
//! whole datagrams only) -> ICMP | UDP (| TCP, counted and dropped until the TCP layer lands).
//! Every drop is counted under a named reason in [`Stats`].
//!
//! Transmit path: IP packets are routed (on-link or via the gateway), their next hop resolved
//! by ARP; a packet whose next hop is still resolving waits in a bounded queue (Linux
//! `unres_qlen`) and is sent when the reply arrives, or dropped and counted when resolution
//! fails.

pub mod bind_table;
pub mod flow_table;
pub mod ownership;
pub mod rss;
pub mod stats;
pub mod steering;
pub mod tcp;
pub mod timer_wheel;

use crate::errno::errno_enum;
use crate::ip::arp_cache::{ArpCache, ArpConfig, Resolution, Update};
use crate::ip::config::{MAX_SECONDARY_ADDRESSES, SecondaryAddresses};
use crate::ip::icmp::{IcmpRateLimit, may_send_error};
use crate::ip::{InterfaceConfig, NextHop};
use crate::port::{Batch, ChecksumOffload, Frame, Port, RxOffload, Transmit, TxBatcher};
use crate::slot_queue::SlotQueue;
use crate::tcp::TcpConfig;
use crate::time::Instant;
use crate::udp::{self, Delivery, UdpConfig, UdpHandle, UdpSockets};
use crate::wire::{self, ChecksumMode, EthernetAddress, Ipv4Addr, arp, ethernet, icmp, ipv4};
use core::net::SocketAddrV4;
pub use stats::Stats;
use tcp::{ConnectError, HeldFrame, TcpEndpoints, TcpHandle};

const ETH: usize = ethernet::HEADER_LEN;
const IP: usize = ipv4::HEADER_LEN;
const UDP: usize = wire::udp::HEADER_LEN;

/// Everything a shard is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// The interface: MAC, address, gateway, MTU, TTL.
    pub iface: InterfaceConfig,
    /// Addresses of the interface besides `iface`'s (`ip addr add`): ARP is answered and IPv4
    /// accepted for each, sockets bind to them, and active opens fall back on them when the
    /// primary address has no ephemeral port left towards a destination.
    pub secondary_addresses: SecondaryAddresses,
    /// ARP cache tunables.
    pub arp: ArpConfig,
    /// UDP tunables (`max_payload` is derived from the MTU by [`Shard::new`]).
    pub udp: UdpConfig,
    /// IP packets that may wait for ARP resolution (Linux `unres_qlen` is 101 per neighbour).
    pub arp_queue_len: usize,
    /// Locally generated frames (ARP and ICMP replies) waiting for the next transmit.
    pub control_queue_len: usize,
    /// Echo replies waiting for [`Shard::recv_echo_reply`].
    pub ping_queue_len: usize,
    /// The ICMP error rate limit.
    pub icmp_rate: IcmpRateLimit,
    /// Checksum offloads of the port.
    pub checksum: ChecksumOffload,
    /// Announce our address with a gratuitous ARP on the first transmit (as Linux does when an
    /// address is configured with `arp_notify`).
    pub announce: bool,
    /// Settings of new TCP connections (the MSS follows the interface MTU).
    pub tcp: TcpConfig,
    /// Most TCP connections at once (any state, TIME-WAIT included). The flow table (21 bytes
    /// per entry), the timer wheel and the ready list are reserved for this many when the
    /// shard is created (65 bytes per connection in all); each open connection then costs
    /// its slot in the connection slab, about 1.2 KB when idle (its buffers are allocated on
    /// demand). A high-connection-rate server sets it to a million or more: 1 M idle
    /// connections measured 1.2 GiB of heap per shard (`bench/README.md`).
    pub max_tcp_connections: usize,
    /// Secret key of the RFC 6528 ISN generator (the runtime draws it at random).
    pub isn_key: [u8; 16],
}

impl ShardConfig {
    /// Defaults for an interface.
    pub fn new(iface: InterfaceConfig) -> Self {
        ShardConfig {
            iface,
            secondary_addresses: SecondaryAddresses::new(),
            arp: ArpConfig::default(),
            udp: UdpConfig::default(),
            arp_queue_len: 128,
            control_queue_len: 128,
            ping_queue_len: 64,
            icmp_rate: IcmpRateLimit::default(),
            checksum: ChecksumOffload::default(),
            announce: true,
            tcp: TcpConfig::default(),
            max_tcp_connections: 1 << 14,
            isn_key: [0x5a; 16],
        }
    }

    /// True if `addr` is one of the interface's addresses, primary or secondary.
    pub fn is_local_address(&self, addr: Ipv4Addr) -> bool {
        addr == self.iface.address() || self.secondary_addresses.contains(addr)
    }
}

/// An ICMP echo reply received for [`Shard::ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoReply {
    /// Who answered.
    pub from: Ipv4Addr,
    /// The identifier echoed back.
    pub ident: u16,
    /// The sequence number echoed back.
    pub seq_no: u16,
    /// Bytes of data copied into the caller's buffer.
    pub len: usize,
    /// When the reply was received.
    pub received_at: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EchoMeta {
    from: Ipv4Addr,
    ident: u16,
    seq_no: u16,
    received_at: Instant,
}

impl Default for EchoMeta {
    fn default() -> Self {
        EchoMeta {
            from: Ipv4Addr::UNSPECIFIED,
            ident: 0,
            seq_no: 0,
            received_at: Instant::ZERO,
        }
    }
}

errno_enum!(
    /// Why an IP packet could not be sent.
    OutputError {
        /// No route (off-link, no gateway), or a destination we never send to.
        NoRoute => "ENETUNREACH",
        /// The packet could not be queued (control or ARP queue full, ARP cache full).
        NoBuffers => "ENOBUFS",
        /// Larger than the MTU.
        TooLong => "EMSGSIZE",
    }
);

/// What one [`Shard::poll_port`] call moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Frames received and processed.
    pub received: usize,
    /// Frames sent.
    pub sent: usize,
}

/// One per-core instance of the stack.
#[derive(Debug)]
pub struct Shard {
    config: ShardConfig,
    arp: ArpCache,
    udp: UdpSockets,
    tcp: TcpEndpoints,
    stats: Stats,
    /// Complete Ethernet frames (ARP replies, ICMP messages) ready to send.
    control: SlotQueue<()>,
    /// IP packets (no Ethernet header) waiting for their next hop, keyed by next hop.
    arp_pending: SlotQueue<Ipv4Addr>,
    pings: SlotQueue<EchoMeta>,
    icmp_limit: IcmpRateLimit,
    ip_ident: u16,
    announced: bool,
    /// An ARP answer arrived for a next hop that packets may be waiting on.
    pending_resolved: bool,
    now: Instant,
    /// The frame being handled, while [`Shard::handle_frame_held`] runs.
    held: Option<HeldFrame>,
}

/// The IPv4 header of a packet this host sends: no options, DF set (shardnet never fragments;
/// TCP's MSS and UDP's EMSGSIZE keep packets within the MTU), TTL from the interface.
fn outgoing_ip(
    src_addr: Ipv4Addr,
    dst_addr: Ipv4Addr,
    protocol: ipv4::Protocol,
    payload_len: usize,
    ttl: u8,
    ident: u16,
) -> ipv4::Repr {
    ipv4::Repr {
        src_addr,
        dst_addr,
        protocol,
        payload_len,
        ttl,
        ident,
        dont_frag: true,
        dscp_ecn: 0,
    }
}

/// Where an outgoing IP packet goes on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Egress {
    /// To this MAC now.
    Mac(EthernetAddress),
    /// To this next hop once ARP has resolved it.
    Park(Ipv4Addr),
}

/// Routes `dst` and resolves its next hop; `None` (counted) if the packet cannot go anywhere.
fn egress(
    iface: &InterfaceConfig,
    arp: &mut ArpCache,
    stats: &mut Stats,
    now: Instant,
    dst: Ipv4Addr,
) -> Option<Egress> {
    stats.ip.out_requests += 1;
    match iface.route(dst) {
        Ok(NextHop::Broadcast) => Some(Egress::Mac(EthernetAddress::BROADCAST)),
        Ok(NextHop::Unicast(hop)) => match arp.resolve(now, hop) {
            Resolution::Known(mac) => Some(Egress::Mac(mac)),
            Resolution::Pending => Some(Egress::Park(hop)),
            Resolution::NoRoom => {
                stats.arp.cache_full += 1;
                None
            }
        },
        Err(_) => {
            stats.ip.out_no_routes += 1;
            None
        }
    }
}

/// What became of a packet handed to [`send_or_park`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// Written into a transmit frame.
    Frame,
    /// Waiting in the ARP queue.
    Parked,
    /// The ARP queue was full (counted).
    Dropped,
    /// The transmit side had no room: stop and try again at the next poll.
    NoRoom,
}

/// Writes an IP packet of `ip_len` bytes (filled by `emit_ip`) into a frame for `egress`, or
/// parks it in the ARP queue until its next hop is resolved.
#[allow(clippy::too_many_arguments)]
fn send_or_park(
    tx: &mut impl Transmit,
    arp_pending: &mut SlotQueue<Ipv4Addr>,
    stats: &mut Stats,
    sent: &mut usize,
    src_mac: EthernetAddress,
    egress: Egress,
    ip_len: usize,
    emit_ip: impl FnOnce(&mut [u8]),
) -> Sent {
    match egress {
        Egress::Mac(mac) => {
            let len = ETH + ip_len;
            let ok = tx.send(len, |frame| {
                emit_ethernet(frame, src_mac, mac, ethernet::EtherType::Ipv4);
                emit_ip(&mut frame[ETH..]);
            });
            if count_tx(ok, len, stats, sent) {
                Sent::Frame
            } else {
                Sent::NoRoom
            }
        }
        Egress::Park(hop) => match arp_pending.push_with(hop, ip_len, emit_ip) {
            Ok(()) => Sent::Parked,
            Err(_) => {
                stats.arp.pending_overflow += 1;
                Sent::Dropped
            }
        },
    }
}

/// Counts a frame handed to the transmit side (or refused by it). Returns `ok`.
fn count_tx(ok: bool, len: usize, stats: &mut Stats, sent: &mut usize) -> bool {
    if ok {
        *sent += 1;
        stats.ethernet.tx_frames += 1;
        stats.ethernet.tx_bytes += len as u64;
    } else {
        stats.ethernet.tx_no_buffer += 1;
    }
    ok
}

fn tx_mode(offloaded: bool) -> ChecksumMode {
    if offloaded {
        ChecksumMode::Offloaded
    } else {
        ChecksumMode::Software
    }
}

fn rx_mode(verified: bool) -> ChecksumMode {
    if verified {
        ChecksumMode::Offloaded
    } else {
        ChecksumMode::Software
    }
}

/// Writes an Ethernet header into `buf[..14]`.
fn emit_ethernet(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    ethertype: ethernet::EtherType,
) {
    let repr = ethernet::Repr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    repr.emit(&mut ethernet::Frame::new_unchecked(buf));
}

/// Writes an ARP packet (Ethernet header included) into `buf`, which is `ETH + 28` long.
fn emit_arp_frame(buf: &mut [u8], eth_dst: EthernetAddress, repr: &arp::Repr) {
    emit_ethernet(
        buf,
        repr.source_hardware_addr,
        eth_dst,
        ethernet::EtherType::Arp,
    );
    repr.emit(&mut arp::Packet::new_unchecked(&mut buf[ETH..]));
}

impl Shard {
    /// A shard with no sockets; the UDP payload limit follows the interface MTU.
    pub fn new(mut config: ShardConfig) -> Self {
        config.udp.max_payload = usize::from(config.iface.mtu).saturating_sub(IP + UDP);
        // RFC 6691: the MSS option is the MTU less the fixed IPv4 and TCP headers.
        config.tcp.mss = config.iface.mtu.saturating_sub(40);
        let slot = ETH + usize::from(config.iface.mtu);
        // The ARP cache's hash key: the shard's secret, turned so that it differs from the
        // flow table's (which reverses it) and the ISN key.
        let mut arp_key = config.isn_key;
        arp_key.rotate_left(8);
        let mut udp_key = config.isn_key;
        udp_key.rotate_left(12);
        Shard {
            arp: ArpCache::new(config.arp, arp_key),
            udp: UdpSockets::new(config.udp, config.iface.address(), udp_key),
            tcp: TcpEndpoints::new(config.tcp, config.isn_key, config.max_tcp_connections),
            stats: Stats::default(),
            control: SlotQueue::new(config.control_queue_len, slot),
            arp_pending: SlotQueue::new(config.arp_queue_len, usize::from(config.iface.mtu)),
            pings: SlotQueue::new(config.ping_queue_len, usize::from(config.iface.mtu)),
            icmp_limit: config.icmp_rate,
            ip_ident: 0,
            announced: !config.announce,
            pending_resolved: false,
            now: Instant::ZERO,
            held: None,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// The counters (a snapshot, cheap enough to take every loop iteration: no table scan).
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        let e = self.tcp.stats();
        s.tcp.active_opens = e.active_opens;
        s.tcp.passive_opens = e.passive_opens;
        s.tcp.out_rsts = e.out_rsts;
        s.tcp.listen_overflows = e.listen_overflows;
        s.tcp.estab_resets = e.estab_resets;
        s.tcp.attempt_fails = e.attempt_fails;
        s.tcp.retrans_segs = self.tcp.retrans_segs();
        s.tcp_ext.tw = e.tw;
        s.tcp_ext.listen_drops = e.listen_drops;
        s.tcp_ext.syncookies_sent = e.syncookies_sent;
        s.tcp_ext.fast_open_passive = e.fast_open_passive;
        s.tcp_ext.fast_open_passive_fail = e.fast_open_passive_fail;
        s.tcp_ext.fast_open_cookie_reqd = e.fast_open_cookie_reqd;
        s.tcp_ext.fast_open_listen_overflow = e.fast_open_listen_overflow;
        s.tcp_ext.fast_open_active = e.fast_open_active;
        s.tcp_ext.fast_open_active_fail = e.fast_open_active_fail;
        s.tcp_ext.syncookies_recv = e.syncookies_recv;
        s.tcp_ext.syncookies_failed = e.syncookies_failed;
        s.tcp_ext.req_q_full_do_cookies = e.req_q_full_do_cookies;
        s.tcp_ext.req_q_full_drops = e.req_q_full_drops;
        s.tcp_ext.defer_accept_drops = e.defer_accept_drops;
        s.tcp_ext.tw_recycled = e.tw_recycled;
        s.tcp_ext.tw_killed = e.tw_killed;
        s.tcp_ext.tw_overflow = e.tw_overflow;
        s.tcp_ext.port_exhausted = e.port_exhausted;
        s.tcp.curr_estab = e.curr_estab;
        s.zero_copy = self.tcp.zero_copy_stats();
        s
    }

    /// The TCP endpoints: `listen`, `accept`, connections by handle, `close`, `abort`.
    pub fn tcp(&mut self) -> &mut TcpEndpoints {
        &mut self.tcp
    }

    /// Follows the port's receive-side scaling (from its capabilities): TCP active opens then
    /// pick ephemeral ports whose replies the NIC delivers to `queue`, this shard's.
    pub fn set_rss(&mut self, rss: Option<&crate::port::RssConfig>, queue: u16) {
        self.tcp.set_rss(rss, queue);
    }

    /// True if `addr` is one of the interface's addresses, primary or secondary.
    pub fn is_local_address(&self, addr: Ipv4Addr) -> bool {
        self.config.is_local_address(addr)
    }

    /// `ip addr add ADDR dev IF`: adds a secondary address (see
    /// [`ShardConfig::secondary_addresses`]); true if it was new. Adding the primary address
    /// changes nothing.
    pub fn add_secondary_address(
        &mut self,
        addr: Ipv4Addr,
    ) -> Result<bool, crate::ip::config::AddAddressError> {
        if addr == self.config.iface.address() {
            return Ok(false);
        }
        self.config.secondary_addresses.add(addr)
    }

    /// `ip addr del`: removes a secondary address; true if it was there. Connections using it
    /// stay (as on Linux until they send: here, until they close).
    pub fn remove_secondary_address(&mut self, addr: Ipv4Addr) -> bool {
        self.config.secondary_addresses.remove(addr)
    }

    /// The source addresses an active open may use, in order of preference: the primary
    /// address, then the secondary ones.
    fn source_addresses(&self) -> arrayvec::ArrayVec<Ipv4Addr, { 1 + MAX_SECONDARY_ADDRESSES }> {
        let mut v = arrayvec::ArrayVec::new();
        v.push(self.config.iface.address());
        for a in self.config.secondary_addresses.iter() {
            if v.try_push(a).is_err() {
                break;
            }
        }
        v
    }

    /// `connect`: a TCP connection to `remote` from the interface address and an ephemeral port.
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
    ) -> Result<TcpHandle, ConnectError> {
        let config = *self.tcp.config();
        self.tcp_connect_with(now, remote, config)
    }

    /// [`Shard::tcp_connect`] with settings of its own (socket options set before `connect`).
    ///
    /// The source address: the primary one, unless it has no ephemeral port left towards
    /// `remote` (every port in use or in TIME-WAIT to that destination), then the first
    /// secondary address that has one; `EADDRNOTAVAIL` when none has. Linux does not do this
    /// on its own: an unbound `connect` takes the route's preferred source (`ip route ... src`,
    /// the primary address by default) and fails with `EADDRNOTAVAIL` when its ports run out;
    /// a Linux client multiplies its 4-tuples by binding each socket to one of several
    /// addresses itself (`bind(addr:0)` with `IP_BIND_ADDRESS_NO_PORT`, what
    /// [`TcpEndpoints::connect_bound`] with port 0 does here). Falling back here gives an
    /// unmodified client the same multiplied space, while a client that never exhausts the
    /// primary address sees exactly Linux's choice.
    pub fn tcp_connect_with(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        config: crate::tcp::TcpConfig,
    ) -> Result<TcpHandle, ConnectError> {
        if self.config.iface.route(*remote.ip()).is_err() {
            self.stats.ip.out_no_routes += 1;
            return Err(ConnectError::NetUnreachable);
        }
        let sources = self.source_addresses();
        self.tcp.connect_from(now, &sources, remote, config)
    }

    /// `bind(local)` + `connect(remote)` (see [`TcpEndpoints::connect_bound`]): `local`'s
    /// address must be one of the interface's (`EADDRNOTAVAIL` otherwise, as Linux `bind`
    /// says for a foreign address), or 0.0.0.0 for the usual choice of source address.
    pub fn tcp_connect_bound(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        reuse: tcp::Reuse,
        remote: SocketAddrV4,
        config: crate::tcp::TcpConfig,
    ) -> Result<TcpHandle, ConnectError> {
        if self.config.iface.route(*remote.ip()).is_err() {
            self.stats.ip.out_no_routes += 1;
            return Err(ConnectError::NetUnreachable);
        }
        if local.ip().is_unspecified() {
            if local.port() == 0 {
                let sources = self.source_addresses();
                return self.tcp.connect_from(now, &sources, remote, config);
            }
            let primary = SocketAddrV4::new(self.config.iface.address(), local.port());
            return self.tcp.connect_bound(now, primary, reuse, remote, config);
        }
        if !self.is_local_address(*local.ip()) {
            return Err(ConnectError::AddrNotAvailable);
        }
        self.tcp.connect_bound(now, local, reuse, remote, config)
    }

    /// `connect` with data in the SYN (TCP Fast Open, see [`TcpEndpoints::connect_fast_open`]),
    /// after checking the route.
    pub fn tcp_connect_fast_open(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        config: crate::tcp::TcpConfig,
        data: &[u8],
    ) -> Result<(TcpHandle, usize), ConnectError> {
        if self.config.iface.route(*remote.ip()).is_err() {
            self.stats.ip.out_no_routes += 1;
            return Err(ConnectError::NetUnreachable);
        }
        let sources = self.source_addresses();
        self.tcp
            .connect_fast_open_from(now, &sources, remote, config, data)
    }

    /// The TCP endpoints, read-only (introspection).
    pub fn tcp_endpoints(&self) -> &TcpEndpoints {
        &self.tcp
    }

    /// The ARP cache.
    pub fn arp_cache(&self) -> &ArpCache {
        &self.arp
    }

    /// The UDP socket table (bind, connect, recv; sends go through [`Shard::udp_send_to`] so that
    /// routing is checked).
    pub fn udp(&mut self) -> &mut UdpSockets {
        &mut self.udp
    }

    /// `bind` on a UDP socket: any of the interface's addresses, primary or secondary, or
    /// 0.0.0.0 (see [`UdpSockets::bind`]).
    pub fn udp_bind(
        &mut self,
        h: UdpHandle,
        addr: SocketAddrV4,
    ) -> Result<SocketAddrV4, udp::BindError> {
        let config = &self.config;
        self.udp.bind(h, addr, |a| config.is_local_address(a))
    }

    /// `sendto` on a UDP socket: checks the route (`ENETUNREACH`) and queues the datagram.
    pub fn udp_send_to(
        &mut self,
        h: UdpHandle,
        dst: Option<SocketAddrV4>,
        data: &[u8],
    ) -> Result<(), udp::SendError> {
        self.udp_send_with(h, dst, data.len(), |buf| buf.copy_from_slice(data))
    }

    /// Like [`Shard::udp_send_to`] but the payload is written in place by `write`.
    pub fn udp_send_with(
        &mut self,
        h: UdpHandle,
        dst: Option<SocketAddrV4>,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), udp::SendError> {
        let iface = self.config.iface;
        let target = match dst.or(self.udp.peer_addr(h)) {
            Some(t) => t,
            None => return self.udp.send_with(h, None, len, |_| false, write),
        };
        if iface.route(*target.ip()).is_err() {
            self.stats.ip.out_no_routes += 1;
            return Err(udp::SendError::NetUnreachable);
        }
        let sent = self
            .udp
            .send_with(h, Some(target), len, |a| iface.is_broadcast(a), write);
        if sent == Err(udp::SendError::WouldBlock) {
            self.stats.udp.sndbuf_errors += 1;
        }
        sent
    }

    fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Processes a burst of received frames. The caller gives the frames back to its pool.
    pub fn handle_rx<F: Frame>(&mut self, now: Instant, batch: &Batch<F>) {
        for frame in batch {
            self.handle_frame(now, frame.data(), frame.rx_offload());
        }
    }

    /// Processes frame `index` of `rx`, a received burst that the caller holds until the
    /// application has had its turn (zero-copy receive): in-order TCP data may stay in the
    /// frame, for [`crate::socket::Sockets`] made with [`Shard::sockets_with_rx`] and the same
    /// `rx` to lend to the application. The caller must call [`Shard::spill_in_place`] with
    /// the same `rx` before it gives any of these frames back. Otherwise as
    /// [`Shard::handle_frame`] (which this calls).
    pub fn handle_frame_held(
        &mut self,
        now: Instant,
        rx: &[&[u8]],
        index: usize,
        offload: RxOffload,
    ) {
        let Some(&frame) = rx.get(index) else {
            return;
        };
        self.held = HeldFrame::new(index, frame);
        self.handle_frame(now, frame, offload);
        self.held = None;
    }

    /// After the application's turn, before the frames of `rx` (the view given to
    /// [`Shard::handle_frame_held`]) go back to the driver: copies the received bytes still in
    /// them into their connections' receive buffers.
    pub fn spill_in_place(&mut self, rx: &[&[u8]]) {
        if self.tcp.has_in_place() {
            self.tcp.spill_in_place(self.now, rx);
        }
    }

    /// Processes one received Ethernet frame.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8], offload: RxOffload) {
        self.now = now;
        self.stats.ethernet.rx_frames += 1;
        self.stats.ethernet.rx_bytes += frame.len() as u64;
        let Ok(eth) = ethernet::Frame::new_checked(frame) else {
            self.stats.ethernet.rx_truncated += 1;
            return;
        };
        let dst = eth.dst_addr();
        if dst != self.config.iface.mac && !dst.is_broadcast() {
            self.stats.ethernet.rx_not_for_us += 1;
            return;
        }
        // 802.1Q: the tag is parsed and skipped. A priority tag (VLAN 0) is untagged traffic;
        // any other VLAN is not ours, as on a Linux interface with no VLAN device on it.
        if eth.vlan_id().is_some_and(|vid| vid != 0) {
            self.stats.ethernet.rx_other_vlan += 1;
            return;
        }
        match eth.ethertype() {
            ethernet::EtherType::Arp => self.handle_arp(now, eth.payload()),
            ethernet::EtherType::Ipv4 => {
                self.handle_ipv4(now, dst.is_broadcast(), eth.payload(), offload)
            }
            _ => self.stats.ethernet.rx_unknown_ethertype += 1,
        }
    }

    fn handle_arp(&mut self, now: Instant, bytes: &[u8]) {
        let repr = match arp::Packet::new_checked(bytes).and_then(|p| arp::Repr::parse(&p)) {
            Ok(r) => r,
            Err(e) => {
                self.stats.arp.rx_errors += 1;
                self.stats.arp_drops.count(e);
                return;
            }
        };
        let me = self.config.iface.address();
        let my_mac = self.config.iface.mac;
        let is_request = match repr.operation {
            arp::Operation::Request => {
                self.stats.arp.rx_requests += 1;
                true
            }
            arp::Operation::Reply => {
                self.stats.arp.rx_replies += 1;
                false
            }
            arp::Operation::Unknown(_) => {
                self.stats.arp.rx_errors += 1;
                self.stats.arp_drops.count(wire::Error::Unsupported);
                return;
            }
        };
        let sender = repr.source_protocol_addr;
        // Requests for a secondary address are answered too (Linux `arp_process` answers for
        // any local address; the reply's sender is the address asked for).
        let target = repr.target_protocol_addr;
        let for_us = target == me || self.config.secondary_addresses.contains(target);
        // RFC 826, Packet Reception: update the sender's entry if present ("merge"); add it if
        // we are the target. An ARP probe (sender 0.0.0.0, RFC 5227) teaches nothing, and a
        // packet claiming our own address, or a broadcast/multicast MAC, is not learned.
        let learnable = !sender.is_unspecified()
            && !self.is_local_address(sender)
            && repr.source_hardware_addr.is_unicast()
            && self.config.iface.cidr.contains(sender);
        if learnable
            && self
                .arp
                .update(now, sender, repr.source_hardware_addr, for_us)
                == Update::Resolved
        {
            self.stats.arp.resolved += 1;
            self.pending_resolved = true;
        }
        if !for_us {
            if is_request {
                self.stats.arp.rx_not_for_us += 1;
            }
            return;
        }
        if is_request {
            // RFC 826: swap the sender and target fields, put in our addresses, send a reply.
            let reply = arp::Repr {
                operation: arp::Operation::Reply,
                source_hardware_addr: my_mac,
                source_protocol_addr: target,
                target_hardware_addr: repr.source_hardware_addr,
                target_protocol_addr: sender,
            };
            let eth_dst = repr.source_hardware_addr;
            match self.control.push_with((), ETH + reply.buffer_len(), |buf| {
                emit_arp_frame(buf, eth_dst, &reply)
            }) {
                Ok(()) => self.stats.arp.tx_replies += 1,
                Err(_) => self.stats.arp.tx_dropped += 1,
            }
        }
    }

    fn handle_ipv4(
        &mut self,
        now: Instant,
        link_broadcast: bool,
        bytes: &[u8],
        offload: RxOffload,
    ) {
        self.stats.ip.in_receives += 1;
        let parsed = ipv4::Packet::new_checked(bytes).and_then(|p| {
            ipv4::Repr::parse(&p, rx_mode(offload.ipv4_checksum_good)).map(|r| (p, r))
        });
        let (packet, repr) = match parsed {
            Ok(x) => x,
            Err(e) => {
                self.stats.ip.in_hdr_errors += 1;
                self.stats.ip_drops.count(e);
                return;
            }
        };
        let iface = self.config.iface;
        if !iface.accepts(repr.dst_addr) && !self.config.secondary_addresses.contains(repr.dst_addr)
        {
            self.stats.ip.in_addr_errors += 1;
            return;
        }
        // A packet from a broadcast, multicast or unspecified source is a martian (Linux drops
        // these in ip_route_input_slow).
        let src = repr.src_addr;
        if src.is_broadcast()
            || src.is_multicast()
            || self.is_local_address(src)
            || iface.is_broadcast(src)
        {
            self.stats.ip.in_addr_errors += 1;
            return;
        }
        if packet.is_fragment() {
            self.stats.ip.frag_dropped += 1;
            return;
        }
        let to_broadcast = iface.is_broadcast(repr.dst_addr);
        let whole = &bytes[..usize::from(packet.total_len()).min(bytes.len())];
        match repr.protocol {
            ipv4::Protocol::Icmp => {
                self.stats.ip.in_delivers += 1;
                self.handle_icmp(now, &repr, to_broadcast || link_broadcast, packet.payload());
            }
            ipv4::Protocol::Udp => {
                self.stats.ip.in_delivers += 1;
                self.handle_udp(
                    now,
                    &repr,
                    to_broadcast,
                    link_broadcast,
                    packet.payload(),
                    whole,
                    offload,
                );
            }
            ipv4::Protocol::Tcp => {
                self.stats.ip.in_delivers += 1;
                let broadcast = to_broadcast || link_broadcast;
                self.handle_tcp(now, &repr, broadcast, packet.payload(), offload);
            }
            ipv4::Protocol::Unknown(_) => {
                self.stats.ip.in_unknown_protos += 1;
                // RFC 1122 3.2.2.1: protocol unreachable, as Linux sends it.
                if may_send_error(false, to_broadcast, link_broadcast, false, src) {
                    self.send_dest_unreachable(
                        now,
                        icmp::DstUnreachable::ProtoUnreachable,
                        repr.dst_addr,
                        src,
                        whole,
                    );
                }
            }
        }
    }

    fn handle_icmp(&mut self, now: Instant, ip: &ipv4::Repr, broadcast: bool, bytes: &[u8]) {
        self.stats.icmp.in_msgs += 1;
        let packet = match icmp::Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.icmp.in_errors += 1;
                self.stats.icmp_drops.count(e);
                return;
            }
        };
        let repr = match icmp::Repr::parse(&packet, ChecksumMode::Software) {
            Ok(r) => r,
            Err(wire::Error::Unsupported) => {
                self.stats.icmp.in_unsupported += 1;
                return;
            }
            Err(e) => {
                self.stats.icmp.in_errors += 1;
                self.stats.icmp_drops.count(e);
                return;
            }
        };
        match repr {
            icmp::Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                self.stats.icmp.in_echos += 1;
                // Linux icmp_echo_ignore_broadcasts = 1 (the default): no smurf amplifier.
                if broadcast {
                    return;
                }
                let reply = icmp::Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                // From the address pinged (a secondary one too), as Linux `icmp_reply` answers.
                let from = self.reply_source(ip.dst_addr);
                if self.send_icmp(now, from, ip.src_addr, &reply).is_ok() {
                    self.stats.icmp.out_echo_reps += 1;
                }
            }
            icmp::Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                self.stats.icmp.in_echo_reps += 1;
                let meta = EchoMeta {
                    from: ip.src_addr,
                    ident,
                    seq_no,
                    received_at: now,
                };
                if self.pings.push(meta, data).is_err() {
                    self.stats.icmp.in_echo_reps_dropped += 1;
                }
            }
            icmp::Repr::DstUnreachable {
                reason, invoking, ..
            } => {
                self.stats.icmp.in_dest_unreachs += 1;
                if reason == icmp::DstUnreachable::PortUnreachable {
                    self.handle_port_unreachable(invoking);
                }
            }
        }
    }

    /// The datagram we sent that a port unreachable quotes: IP header + first 8 UDP bytes.
    fn handle_port_unreachable(&mut self, invoking: &[u8]) {
        let ihl = usize::from(invoking.first().copied().unwrap_or(0) & 0x0f) * 4;
        let (Some(ip), Some(l4)) = (invoking.get(..20), invoking.get(ihl..ihl + 4)) else {
            return;
        };
        if ihl < 20 || ip[9] != u8::from(ipv4::Protocol::Udp) {
            return;
        }
        let addr = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let local = SocketAddrV4::new(addr(&ip[12..16]), u16::from_be_bytes([l4[0], l4[1]]));
        let remote = SocketAddrV4::new(addr(&ip[16..20]), u16::from_be_bytes([l4[2], l4[3]]));
        self.udp.port_unreachable(local, remote);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_udp(
        &mut self,
        now: Instant,
        ip: &ipv4::Repr,
        to_broadcast: bool,
        link_broadcast: bool,
        bytes: &[u8],
        whole: &[u8],
        offload: RxOffload,
    ) {
        let mode = rx_mode(offload.l4_checksum_good);
        let packet = wire::udp::Packet::new_checked(bytes);
        let repr = packet
            .as_ref()
            .map_err(|e| *e)
            .and_then(|p| wire::udp::Repr::parse(p, ip.src_addr, ip.dst_addr, mode));
        let (packet, repr) = match (packet, repr) {
            (Ok(p), Ok(r)) => (p, r),
            (_, Err(e)) => {
                self.stats.udp.in_errors += 1;
                if e == wire::Error::BadChecksum {
                    self.stats.udp.in_csum_errors += 1;
                }
                self.stats.udp_drops.count(e);
                return;
            }
            (Err(e), _) => {
                self.stats.udp.in_errors += 1;
                self.stats.udp_drops.count(e);
                return;
            }
        };
        let src = SocketAddrV4::new(ip.src_addr, repr.src_port);
        let dst = SocketAddrV4::new(ip.dst_addr, repr.dst_port);
        match self.udp.deliver(src, dst, to_broadcast, packet.payload()) {
            Delivery::Delivered => {
                self.stats.udp.in_datagrams += 1;
                // Readiness: one event when the socket's queue becomes non-empty.
                if let Some(h) = self.udp.socket_on_port(dst.port())
                    && self.udp.recv_queue_len(h) == 1
                {
                    self.tcp.push_event(
                        crate::socket::SocketHandle::Udp(h),
                        crate::socket::Readiness::READABLE,
                    );
                }
            }
            Delivery::QueueFull => {
                // Linux counts both RcvbufErrors and InErrors.
                self.stats.udp.rcvbuf_errors += 1;
                self.stats.udp.in_errors += 1;
            }
            outcome @ (Delivery::NoPort | Delivery::Filtered) => {
                // A connected socket does not match a datagram from another peer, so on Linux
                // it is answered like one to a closed port.
                if outcome == Delivery::Filtered {
                    self.stats.udp.in_filtered += 1;
                }
                self.stats.udp.no_ports += 1;
                if may_send_error(false, to_broadcast, link_broadcast, false, ip.src_addr) {
                    self.send_dest_unreachable(
                        now,
                        icmp::DstUnreachable::PortUnreachable,
                        ip.dst_addr,
                        ip.src_addr,
                        whole,
                    );
                }
            }
        }
    }

    fn handle_tcp(
        &mut self,
        now: Instant,
        ip: &ipv4::Repr,
        broadcast: bool,
        bytes: &[u8],
        offload: RxOffload,
    ) {
        self.stats.tcp.in_segs += 1;
        // RFC 1122 4.2.3.10: a SYN to a broadcast or multicast address is silently discarded;
        // TCP has nothing to say to a broadcast at all.
        if broadcast {
            self.stats.tcp.in_errs += 1;
            self.stats.tcp_drops.count(wire::Error::Malformed);
            return;
        }
        let mode = rx_mode(offload.l4_checksum_good);
        let segment = wire::tcp::Segment::new_checked(bytes);
        let parsed = segment
            .as_ref()
            .map_err(|e| *e)
            .and_then(|s| wire::tcp::Repr::parse(s, ip.src_addr, ip.dst_addr, mode));
        let repr = match parsed {
            Ok(r) => r,
            Err(e) => {
                self.stats.tcp.in_errs += 1;
                if e == wire::Error::BadChecksum {
                    self.stats.tcp.in_csum_errors += 1;
                }
                self.stats.tcp_drops.count(e);
                return;
            }
        };
        // RFC 7323 2.3: "If a Window Scale option is received with a shift.cnt value larger
        // than 14, the TCP SHOULD log the error but MUST use 14 instead" (`Repr::parse`
        // clamps; Linux logs "Illegal window scaling value"): counted here, SYNs only.
        if repr.flags.syn()
            && repr.window_scale == Some(wire::tcp_option::MAX_WINDOW_SCALE)
            && let Ok(s) = &segment
            && s.option_iter().any(|o| {
                matches!(o, Ok(wire::tcp_option::TcpOption::WindowScale(shift))
                    if shift > wire::tcp_option::MAX_WINDOW_SCALE)
            })
        {
            self.stats.tcp_ext.window_scale_clamped += 1;
        }
        // The payload stays in the frame until the receive buffer takes it (or, when the
        // caller holds the frame, until the application has read it: `shard/tcp/in_place.rs`).
        let seg = tcp::incoming(&repr);
        let local = SocketAddrV4::new(ip.dst_addr, repr.dst_port);
        let remote = SocketAddrV4::new(ip.src_addr, repr.src_port);
        let at = self.held.and_then(|h| h.locate(seg.payload));
        self.tcp.on_segment_held(now, local, remote, &seg, at);
    }

    /// The source of an ICMP message answering a packet sent to `to_us`: that address if it
    /// is one of ours (primary or secondary), else the primary address.
    fn reply_source(&self, to_us: Ipv4Addr) -> Ipv4Addr {
        if self.is_local_address(to_us) {
            to_us
        } else {
            self.config.iface.address()
        }
    }

    /// Destination unreachable to `to`, about `datagram` which was sent to `to_us`.
    fn send_dest_unreachable(
        &mut self,
        now: Instant,
        reason: icmp::DstUnreachable,
        to_us: Ipv4Addr,
        to: Ipv4Addr,
        datagram: &[u8],
    ) {
        if !self.icmp_limit.allow(now) {
            self.stats.icmp.out_rate_limited += 1;
            return;
        }
        // RFC 1812 4.3.2.3: quote as much of the datagram as fits in 576 bytes (Linux does).
        let invoking = &datagram[..datagram.len().min(icmp::MAX_INVOKING_LEN)];
        let msg = icmp::Repr::DstUnreachable {
            reason,
            next_hop_mtu: 0,
            invoking,
        };
        let from = self.reply_source(to_us);
        if self.send_icmp(now, from, to, &msg).is_ok() {
            self.stats.icmp.out_dest_unreachs += 1;
        }
    }

    fn send_icmp(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        msg: &icmp::Repr<'_>,
    ) -> Result<(), OutputError> {
        let len = msg.buffer_len();
        let result = self.output_ip(now, src, dst, ipv4::Protocol::Icmp, len, |buf| {
            // ICMP checksums are never offloaded.
            msg.emit(
                &mut icmp::Packet::new_unchecked(buf),
                ChecksumMode::Software,
            );
        });
        match result {
            Ok(()) => self.stats.icmp.out_msgs += 1,
            Err(_) => self.stats.icmp.out_dropped += 1,
        }
        result
    }

    /// `ping`: sends an ICMP echo request. Replies come back through [`Shard::recv_echo_reply`].
    pub fn ping(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Result<(), OutputError> {
        let msg = icmp::Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let primary = self.config.iface.address();
        self.send_icmp(now, primary, dst, &msg)?;
        self.stats.icmp.out_echos += 1;
        Ok(())
    }

    /// Takes the oldest echo reply, copying its data into `buf` (truncated to fit).
    pub fn recv_echo_reply(&mut self, buf: &mut [u8]) -> Option<EchoReply> {
        let (meta, data) = self.pings.front()?;
        let len = data.len().min(buf.len());
        buf[..len].copy_from_slice(&data[..len]);
        self.pings.pop();
        Some(EchoReply {
            from: meta.from,
            ident: meta.ident,
            seq_no: meta.seq_no,
            len,
            received_at: meta.received_at,
        })
    }

    /// Routes an IP packet of `payload_len` bytes to `dst` and queues it: as a complete frame if
    /// the next hop's MAC is known, else until ARP resolves it. `write` fills the payload.
    fn output_ip(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: ipv4::Protocol,
        payload_len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), OutputError> {
        let iface = self.config.iface;
        if IP + payload_len > usize::from(iface.mtu) {
            return Err(OutputError::TooLong);
        }
        self.stats.ip.out_requests += 1;
        let next_hop = match iface.route(dst) {
            Ok(n) => n,
            Err(_) => {
                self.stats.ip.out_no_routes += 1;
                return Err(OutputError::NoRoute);
            }
        };
        let ip = outgoing_ip(
            src,
            dst,
            protocol,
            payload_len,
            iface.ttl,
            self.next_ident(),
        );
        let mode = tx_mode(self.config.checksum.tx_ipv4);
        let emit_ip = |buf: &mut [u8]| {
            write(&mut buf[IP..]);
            ip.emit(&mut ipv4::Packet::new_unchecked(buf), mode);
        };
        let (hop_ip, mac) = match next_hop {
            NextHop::Broadcast => (dst, Some(EthernetAddress::BROADCAST)),
            NextHop::Unicast(hop) => match self.arp.resolve(now, hop) {
                Resolution::Known(mac) => (hop, Some(mac)),
                Resolution::Pending => (hop, None),
                Resolution::NoRoom => {
                    self.stats.arp.cache_full += 1;
                    return Err(OutputError::NoBuffers);
                }
            },
        };
        let queued = match mac {
            Some(mac) => self.control.push_with((), ETH + IP + payload_len, |buf| {
                emit_ethernet(buf, iface.mac, mac, ethernet::EtherType::Ipv4);
                emit_ip(&mut buf[ETH..]);
            }),
            None => self
                .arp_pending
                .push_with(hop_ip, IP + payload_len, emit_ip)
                .inspect_err(|_| {
                    self.stats.arp.pending_overflow += 1;
                }),
        };
        queued.map_err(|_| OutputError::NoBuffers)
    }

    /// Runs timers due at `now`: ARP retries and expiry, TCP timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.tcp.has_in_place() {
            // Held frames were not spilled (the caller broke the contract of
            // `handle_frame_held`): their bytes cannot be trusted any more.
            self.tcp.spill_in_place(now, &[]);
        }
        self.tcp.on_timeout(now);
        let Shard {
            arp,
            arp_pending,
            stats,
            ..
        } = self;
        arp.handle_timeout(now, |failed| {
            stats.arp.failed += 1;
            arp_pending.retain(|hop, _| {
                let keep = hop != failed;
                if !keep {
                    stats.arp.unresolved_drops += 1;
                }
                keep
            });
        });
    }

    /// Sends the ARP requests due at `now`. Returns false if `tx` ran out of room.
    fn send_probes(&mut self, now: Instant, tx: &mut impl Transmit, sent: &mut usize) -> bool {
        let iface = self.config.iface;
        while let Some(probe) = self.arp.poll_probe(now) {
            let repr = arp::Repr {
                operation: arp::Operation::Request,
                source_hardware_addr: iface.mac,
                source_protocol_addr: self.arp_sender_address(probe.target),
                target_hardware_addr: EthernetAddress::ZERO,
                target_protocol_addr: probe.target,
            };
            let len = ETH + repr.buffer_len();
            // An unsent probe still counts for the retry schedule: the next one follows.
            if !count_tx(
                tx.send(len, |buf| emit_arp_frame(buf, probe.dst_mac, &repr)),
                len,
                &mut self.stats,
                sent,
            ) {
                return false;
            }
            self.stats.arp.tx_requests += 1;
        }
        true
    }

    /// The sender address of an ARP request for `target`: the source of the newest packet
    /// waiting for `target` if it is one of ours, else the primary address. Linux
    /// `arp_solicit` with `arp_announce` 0 (its default: "use any local address") takes the
    /// source of the newest packet in the neighbour's queue the same way, so that the peer
    /// learns the address it is about to hear from (a connection from a secondary address
    /// gets its ARP request from that address).
    fn arp_sender_address(&self, target: Ipv4Addr) -> Ipv4Addr {
        self.arp_pending
            .iter()
            .rev()
            .find(|&(hop, _)| hop == target)
            .and_then(|(_, packet)| wire::ipv4::Packet::new_checked(packet).ok())
            .map(|packet| packet.src_addr())
            .filter(|&src| self.is_local_address(src))
            .unwrap_or(self.config.iface.address())
    }

    /// Writes every frame that is ready into `tx`, until `tx` has no more room.
    /// Returns the number of frames written.
    pub fn poll_transmit(&mut self, now: Instant, tx: &mut impl Transmit) -> usize {
        self.now = now;
        let mut sent = 0;
        let iface = self.config.iface;

        // Gratuitous ARP: a request for our own address announces it.
        if !self.announced {
            let me = iface.address();
            let repr = arp::Repr {
                operation: arp::Operation::Request,
                source_hardware_addr: iface.mac,
                source_protocol_addr: me,
                target_hardware_addr: EthernetAddress::ZERO,
                target_protocol_addr: me,
            };
            let len = ETH + repr.buffer_len();
            let ok = tx.send(len, |buf| {
                emit_arp_frame(buf, EthernetAddress::BROADCAST, &repr)
            });
            if !count_tx(ok, len, &mut self.stats, &mut sent) {
                return sent;
            }
            self.announced = true;
            self.stats.arp.tx_gratuitous += 1;
        }

        if !self.send_probes(now, tx, &mut sent) {
            return sent;
        }

        // Packets whose next hop has been resolved.
        let Shard {
            arp,
            arp_pending,
            control,
            udp,
            stats,
            ip_ident,
            config,
            pending_resolved,
            ..
        } = self;
        if *pending_resolved {
            let mut blocked = false;
            arp_pending.retain(|hop, packet| {
                let Some(mac) = arp.peek(hop).filter(|_| !blocked) else {
                    return true;
                };
                let len = ETH + packet.len();
                let ok = tx.send(len, |buf| {
                    emit_ethernet(buf, iface.mac, mac, ethernet::EtherType::Ipv4);
                    buf[ETH..].copy_from_slice(packet);
                });
                blocked = !count_tx(ok, len, stats, &mut sent);
                blocked
            });
            if blocked {
                return sent;
            }
            *pending_resolved = false;
        }

        // Locally generated frames, oldest first.
        while let Some(((), frame)) = control.front() {
            let len = frame.len();
            if !count_tx(
                tx.send(len, |buf| buf.copy_from_slice(frame)),
                len,
                stats,
                &mut sent,
            ) {
                return sent;
            }
            control.pop();
        }

        // UDP datagrams, written straight from the socket's send queue into the frame.
        let ip_mode = tx_mode(config.checksum.tx_ipv4);
        let l4_mode = tx_mode(config.checksum.tx_l4);
        udp.poll_send(|out| {
            let dst_ip = *out.dst.ip();
            let Some(egress) = egress(&iface, arp, stats, now, dst_ip) else {
                return true;
            };
            *ip_ident = ip_ident.wrapping_add(1);
            let udp_repr = wire::udp::Repr {
                src_port: out.src.port(),
                dst_port: out.dst.port(),
                payload_len: out.payload.len(),
            };
            let ip_repr = outgoing_ip(
                *out.src.ip(),
                dst_ip,
                ipv4::Protocol::Udp,
                UDP + out.payload.len(),
                iface.ttl,
                *ip_ident,
            );
            let emit_ip = |buf: &mut [u8]| {
                let mut dgram = wire::udp::Packet::new_unchecked(&mut buf[IP..]);
                dgram.payload_mut()[..out.payload.len()].copy_from_slice(out.payload);
                udp_repr.emit(&mut dgram, ip_repr.src_addr, ip_repr.dst_addr, l4_mode);
                ip_repr.emit(&mut ipv4::Packet::new_unchecked(buf), ip_mode);
            };
            let len = ip_repr.buffer_len();
            match send_or_park(
                tx,
                arp_pending,
                stats,
                &mut sent,
                iface.mac,
                egress,
                len,
                emit_ip,
            ) {
                Sent::NoRoom => return false,
                Sent::Dropped => {}
                Sent::Frame | Sent::Parked => stats.udp.out_datagrams += 1,
            }
            true
        });

        // TCP segments, their payload copied straight from the connection's send buffer.
        let Shard {
            tcp,
            arp,
            arp_pending,
            stats,
            ip_ident,
            ..
        } = self;
        tcp.poll_output(now, &mut |local, remote, seg, buf| {
            let dst_ip = *remote.ip();
            let Some(egress) = egress(&iface, arp, stats, now, dst_ip) else {
                return true;
            };
            *ip_ident = ip_ident.wrapping_add(1);
            let header = tcp::outgoing_repr(local, remote, seg);
            let hdr_len = header.header_len();
            let ip_repr = outgoing_ip(
                *local.ip(),
                dst_ip,
                ipv4::Protocol::Tcp,
                hdr_len + seg.payload_len,
                iface.ttl,
                *ip_ident,
            );
            let emit_ip = |packet: &mut [u8]| {
                let l4 = &mut packet[IP..];
                let copied = buf.copy_out(seg.payload_offset, &mut l4[hdr_len..]);
                // Every payload byte comes from the send buffer, never from a stale frame.
                debug_assert_eq!(
                    copied, seg.payload_len,
                    "segment payload beyond the send buffer"
                );
                let mut segment = wire::tcp::Segment::new_unchecked(l4);
                header.emit_header(&mut segment, *local.ip(), dst_ip, l4_mode);
                ip_repr.emit(&mut ipv4::Packet::new_unchecked(packet), ip_mode);
            };
            let len = ip_repr.buffer_len();
            match send_or_park(
                tx,
                arp_pending,
                stats,
                &mut sent,
                iface.mac,
                egress,
                len,
                emit_ip,
            ) {
                Sent::NoRoom => return false,
                Sent::Dropped => {}
                Sent::Frame | Sent::Parked => stats.tcp.out_segs += 1,
            }
            true
        });
        // Packets just parked waiting for ARP need their first request now, not next poll.
        self.send_probes(now, tx, &mut sent);
        sent
    }

    /// When [`Shard::handle_timeout`] or [`Shard::poll_transmit`] next has work; `None` if idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ready = !self.announced
            || self.pending_resolved
            || !self.control.is_empty()
            || self.udp.has_pending_send();
        if ready {
            return Some(self.now);
        }
        // A connection with output due says "now" as Instant::ZERO: never in the future.
        let tcp = self.tcp.poll_timeout().map(|t| t.max(self.now));
        [self.arp.poll_timeout(), tcp].into_iter().flatten().min()
    }

    /// One iteration of a poll loop over `port`: receive a burst, run timers, transmit.
    pub fn poll_port<P: Port>(&mut self, now: Instant, port: &mut P) -> PollReport {
        let mut report = PollReport::default();
        let mut batch: Batch<P::Frame> = Batch::new();
        port.rx_burst(&mut batch);
        self.handle_rx(now, &batch);
        report.received = batch.len();
        for frame in batch.drain(..) {
            port.release(frame);
        }
        self.handle_timeout(now);
        let mut tx = TxBatcher::new(port);
        self.poll_transmit(now, &mut tx);
        let (sent, not_sent) = tx.finish();
        report.sent = sent;
        self.stats.ethernet.tx_no_buffer += not_sent as u64;
        report
    }
}

#[cfg(test)]
mod fast_open_tests;
#[cfg(test)]
mod listen_queue_tests;
#[cfg(test)]
mod syncookie_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_wait_tests;
