//! Stateful fuzzing of the TCP receive path: a shard that already has connections in every
//! state, and a fuzzer-driven peer that speaks mostly-valid TCP to them.
//!
//! Each input starts from the same deterministic set-up (shard 198.18.0.1, peer 198.18.0.2,
//! timestamps, SACK and window scaling negotiated):
//!
//! - a listener on port 80 (backlog 4, at most 16 connections, 8 KiB buffers);
//! - connections 0..3: the peer opened them (SYN, SYN-ACK, ACK) and the application accepted
//!   them: ESTABLISHED, passive;
//! - connection 3: the application connected to the peer's port 9000 (SYN, SYN-ACK, ACK):
//!   ESTABLISHED, active;
//! - connection 4: the peer's SYN was answered and its ACK never came: a half-open request;
//! - connection 5: opened by the peer, closed by the application first, both FINs
//!   acknowledged: a TIME-WAIT entry.
//!
//! The input is then decoded (with `arbitrary`) into up to 192 operations: segments against a
//! known connection (flags, sequence and acknowledgment numbers as offsets from what the peer
//! and the shard last sent, window, options, timestamps current / going backwards / raw, SACK
//! blocks relative to the shard's sequence space, payload length), well-behaved data and ACKs,
//! new SYNs (floods of half-open connections), raw TCP segments with a good checksum, raw
//! frames, time advances, transmits into a bounded batch, and the application's `send`,
//! `recv`, `close`, `shutdown(SHUT_WR)`, `abort`, `accept` and `connect`.
//!
//! Invariants asserted inside the target:
//! - no panic (any network input, any order);
//! - after every operation: the table holds at most 16 connections and its parts add up (full
//!   TCBs + compact TIME-WAIT entries + requests = flows), TCP drop reasons = `InErrs`,
//!   `EstabResets` <= connections established, `CurrEstab` <= connections; after an unlimited transmit,
//!   `CurrEstab` = ESTABLISHED + CLOSE-WAIT connections and `poll_timeout` is not "now";
//!   every frame sent parses with our parsers and has valid checksums;
//! - at the end, after the application closed every connection and the listener and the peer
//!   fell silent, running every timer (2*MSL, FIN-WAIT-2, retransmission and SYN-ACK
//!   retries, persist probes) empties the connection table, the TIME-WAIT table and the
//!   request table, leaves no TCP timer armed, and `CurrEstab` is 0.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{RxOffload, VecTransmit};
use shardnet::shard::tcp::{ListenHandle, TcpHandle};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::tcp::State;
use shardnet::tcp::tcb::ConnStats;
use shardnet::time::{Duration, Instant};
use shardnet::wire::ethernet::{self, EtherType};
use shardnet::wire::{ChecksumMode, EthernetAddress, Ipv4Addr, arp, ipv4, tcp, tcp_option};
use std::net::SocketAddrV4;

const ETH: usize = ethernet::HEADER_LEN;
const IP: usize = ipv4::HEADER_LEN;
const MTU: u16 = 1500;
const MAC_US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const MAC_PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const IP_US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const LISTEN_PORT: u16 = 80;
const CONNECT_PORT: u16 = 9000;
const BACKLOG: usize = 4;
const MAX_TCP: usize = 16;
const MAX_CONNS: usize = 32;
const MAX_OPS: usize = 192;
const MAX_FRAME: usize = 2048;
/// The peer's initial sequence numbers (connection i: PEER_ISN + i * 0x1000_0000, so that some
/// wrap during the input).
const PEER_ISN: u32 = 0xffff_f000;

/// An offset from a sequence number the model knows.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Off {
    Exact,
    Small(i8),
    Medium(i16),
    Wide(i32),
}

impl Off {
    fn apply(self, base: u32) -> u32 {
        match self {
            Off::Exact => base,
            Off::Small(d) => base.wrapping_add(i32::from(d) as u32),
            Off::Medium(d) => base.wrapping_add(i32::from(d) as u32),
            Off::Wide(d) => base.wrapping_add(d as u32),
        }
    }
}

/// The timestamp option of a segment from the peer.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ts {
    /// The peer's clock ticks on; TSecr echoes our latest TSval.
    Current,
    /// TSval older than the peer's clock by this much (PAWS).
    Backwards(u16),
    Raw(u32, u32),
}

/// The window field of a segment from the peer (scaled by 7 after the handshake).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Win {
    /// Zero: the shard must probe (persist timer).
    Zero,
    /// A few bytes to a few KiB: sender silly-window avoidance.
    Small(u8),
    Full,
    Raw(u16),
}

impl Win {
    fn field(self) -> u16 {
        match self {
            Win::Zero => 0,
            Win::Small(w) => u16::from(w),
            Win::Full => 65535,
            Win::Raw(w) => w,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Opts {
    mss: Option<u16>,
    window_scale: Option<u8>,
    sack_permitted: bool,
    ts: Option<Ts>,
    /// SACK blocks: (offset of the left edge from the shard's SND.NXT, width).
    sack: [Option<(Off, u16)>; 2],
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A segment from the peer on a known connection.
    Segment {
        conn: u8,
        /// SYN, FIN, RST, PSH, URG, ECE, CWR (bits 0..7 as on the wire, ACK ignored).
        flags: u8,
        seq: Off,
        /// `None`: no ACK bit.
        ack: Option<Off>,
        window: Win,
        opts: Opts,
        len: u16,
        /// The peer counts the segment's sequence space as sent (if it starts at its SND.NXT).
        commit: bool,
    },
    /// In-order data (and maybe FIN) from the peer, with an up-to-date ACK and timestamp.
    Data {
        conn: u8,
        len: u16,
        fin: bool,
    },
    /// An ACK of everything the shard sent, with this window.
    Ack {
        conn: u8,
        window: Win,
    },
    /// A SYN to the listener from a new peer port (half-open connections, floods).
    Syn {
        port: u8,
        opts: Opts,
    },
    /// Arbitrary bytes as a TCP segment (ports of a known connection, checksum made valid).
    RawTcp {
        conn: u8,
        bytes: Vec<u8>,
    },
    /// An arbitrary frame.
    Raw(Vec<u8>),
    AdvanceMillis(u16),
    AdvanceSeconds(u8),
    /// Transmit at most n % 4 frames (back-pressure).
    Transmit(u8),
    Send {
        conn: u8,
        len: u16,
    },
    Recv {
        conn: u8,
        len: u16,
    },
    Close(u8),
    Shutdown(u8),
    Abort(u8),
    Accept,
    Connect(u8),
}

/// What the peer knows of one connection.
#[derive(Debug, Clone, Copy)]
struct Conn {
    peer_port: u16,
    our_port: u16,
    handle: Option<TcpHandle>,
    /// The peer's next sequence number.
    peer_nxt: u32,
    /// The shard's highest SEQ + LEN seen (its SND.MAX as the wire shows it).
    our_nxt: u32,
    /// The shard's last TSval.
    our_ts: u32,
    /// The peer's timestamp clock.
    peer_ts: u32,
    /// Something was seen from the shard on this connection.
    seen: bool,
}

fn eth_header(buf: &mut [u8], dst: EthernetAddress, src: EthernetAddress, ethertype: EtherType) {
    let repr = ethernet::Repr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    repr.emit(&mut ethernet::Frame::new_unchecked(buf));
}

/// Ethernet + IPv4 (peer to us) around `l4_len` bytes of TCP written by `write_l4`.
fn tcp_frame(l4_len: usize, write_l4: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut buf = vec![0u8; ETH + IP + l4_len];
    eth_header(&mut buf, MAC_US, MAC_PEER, EtherType::Ipv4);
    let repr = ipv4::Repr {
        src_addr: IP_PEER,
        dst_addr: IP_US,
        protocol: ipv4::Protocol::Tcp,
        payload_len: l4_len,
        ttl: 64,
        ident: 0x4242,
        dont_frag: true,
        dscp_ecn: 0,
    };
    let mut p = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
    repr.emit(&mut p, ChecksumMode::Software);
    write_l4(p.payload_mut());
    buf
}

fn pattern(len: usize, salt: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_add(salt) as u8)
        .collect()
}

struct World {
    shard: Shard,
    now: Instant,
    listener: ListenHandle,
    conns: Vec<Conn>,
    /// Handles accepted or connected that the model has not tied to a connection.
    extra: Vec<TcpHandle>,
    tcp_out: u64,
    /// Per-connection counters summed over the connections the application held when the
    /// input ended.
    conn_stats: ConnStats,
}

impl World {
    fn new() -> World {
        let iface = InterfaceConfig {
            mac: MAC_US,
            cidr: Ipv4Cidr::new(IP_US, 24).expect("valid prefix"),
            gateway: None,
            mtu: MTU,
            ttl: 64,
        };
        let mut config = ShardConfig::new(iface);
        config.announce = false;
        config.max_tcp_connections = MAX_TCP;
        config.tcp.send_buffer = 8192;
        config.tcp.recv_buffer = 8192;
        let mut shard = Shard::new(config);
        let listener = shard.tcp().listen(LISTEN_PORT, BACKLOG).expect("port free");
        let mut w = World {
            shard,
            now: Instant::from_millis(1),
            listener,
            conns: Vec::new(),
            extra: Vec::new(),
            tcp_out: 0,
            conn_stats: ConnStats::default(),
        };
        // The peer asks for our address: the shard learns it.
        let req = arp::Repr {
            operation: arp::Operation::Request,
            source_hardware_addr: MAC_PEER,
            source_protocol_addr: IP_PEER,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: IP_US,
        };
        let mut f = vec![0u8; ETH + req.buffer_len()];
        eth_header(&mut f, EthernetAddress::BROADCAST, MAC_PEER, EtherType::Arp);
        req.emit(&mut arp::Packet::new_unchecked(&mut f[ETH..]));
        w.rx(&f);
        w.transmit(None);
        // Connections 0..3 (and 5): passive, established and accepted.
        for i in 0..3u16 {
            w.handshake(1000 + i, true);
        }
        // Connection 3: active.
        let h = w
            .shard
            .tcp_connect(w.now, SocketAddrV4::new(IP_PEER, CONNECT_PORT))
            .expect("connect");
        let our_port = w.shard.tcp().get(h).expect("tcb").local().port();
        w.add_conn(CONNECT_PORT, our_port, Some(h));
        w.transmit(None);
        let c = w.conns.len() - 1;
        w.segment(
            c,
            tcp::Flags::SYN,
            Some(Off::Exact),
            65535,
            &SYN_OPTS,
            0,
            true,
        );
        w.transmit(None);
        // Connection 4: half-open.
        w.handshake(1004, false);
        // Connection 5: TIME-WAIT (we close first, the peer acknowledges and closes).
        let c = w.handshake(1005, true);
        let h = w.conns[c].handle.expect("accepted");
        w.shard.tcp().close(w.now, h);
        w.conns[c].handle = None;
        w.transmit(None);
        w.segment(c, tcp::Flags::FIN, Some(Off::Exact), 65535, &PLAIN, 0, true);
        w.transmit(None);
        let s = w.shard.tcp_endpoints();
        assert_eq!(s.count_in(State::Established), 4, "{}", s.describe());
        assert_eq!(s.count_in(State::SynReceived), 1);
        assert_eq!(s.count_in(State::TimeWait), 1);
        w
    }

    fn add_conn(&mut self, peer_port: u16, our_port: u16, handle: Option<TcpHandle>) -> usize {
        let i = self.conns.len();
        self.conns.push(Conn {
            peer_port,
            our_port,
            handle,
            peer_nxt: PEER_ISN.wrapping_add((i as u32).wrapping_mul(0x1000_0000)),
            our_nxt: 0,
            our_ts: 0,
            peer_ts: 100 + i as u32,
            seen: false,
        });
        i
    }

    /// The peer opens a connection to the listener; with `complete`, ACKs the SYN-ACK and the
    /// application accepts it.
    fn handshake(&mut self, peer_port: u16, complete: bool) -> usize {
        let c = self.add_conn(peer_port, LISTEN_PORT, None);
        self.segment(c, tcp::Flags::SYN, None, 65535, &SYN_OPTS, 0, true);
        self.transmit(None);
        if complete {
            self.segment(
                c,
                tcp::Flags::empty(),
                Some(Off::Exact),
                65535,
                &PLAIN,
                0,
                true,
            );
            let h = self.shard.tcp().accept(self.listener).expect("accepted");
            self.conns[c].handle = Some(h);
        }
        c
    }

    fn rx(&mut self, frame: &[u8]) {
        self.shard
            .handle_frame(self.now, frame, RxOffload::default());
    }

    /// Builds and feeds a segment from the peer on connection `c`.
    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        c: usize,
        flags: tcp::Flags,
        ack: Option<Off>,
        window: u16,
        opts: &Opts,
        len: usize,
        commit: bool,
    ) {
        self.segment_at(c, Off::Exact, flags, ack, window, opts, len, commit);
    }

    #[allow(clippy::too_many_arguments)]
    fn segment_at(
        &mut self,
        c: usize,
        seq: Off,
        flags: tcp::Flags,
        ack: Option<Off>,
        window: u16,
        opts: &Opts,
        len: usize,
        commit: bool,
    ) {
        let conn = &mut self.conns[c];
        let seq_number = seq.apply(conn.peer_nxt);
        let timestamp = opts.ts.map(|ts| match ts {
            Ts::Current => {
                conn.peer_ts = conn.peer_ts.wrapping_add(1);
                tcp::TcpTimestamp {
                    tsval: conn.peer_ts,
                    tsecr: conn.our_ts,
                }
            }
            Ts::Backwards(d) => tcp::TcpTimestamp {
                tsval: conn.peer_ts.wrapping_sub(u32::from(d) + 1),
                tsecr: conn.our_ts,
            },
            Ts::Raw(tsval, tsecr) => tcp::TcpTimestamp { tsval, tsecr },
        });
        let mut sack_ranges = tcp_option::SackBlocks::new();
        for (left, width) in opts.sack.iter().flatten() {
            let left = left.apply(conn.our_nxt);
            let right = left.wrapping_add(u32::from(*width));
            let _ = sack_ranges.push(tcp_option::SackBlock { left, right });
        }
        let payload = pattern(len, seq_number);
        let repr = tcp::Repr {
            src_port: conn.peer_port,
            dst_port: conn.our_port,
            seq_number,
            ack_number: ack.map(|a| a.apply(conn.our_nxt)),
            flags: flags.difference(tcp::Flags::ACK),
            window_len: window,
            urgent_at: 0,
            max_seg_size: opts.mss,
            window_scale: opts.window_scale,
            sack_permitted: opts.sack_permitted,
            sack_ranges,
            timestamp,
            fast_open: None,
            payload: &payload,
        };
        if commit && seq_number == conn.peer_nxt {
            conn.peer_nxt = conn.peer_nxt.wrapping_add(repr.segment_len() as u32);
        }
        let frame = tcp_frame(repr.buffer_len(), |b| {
            let mut seg = tcp::Segment::new_unchecked(b);
            repr.emit(&mut seg, IP_PEER, IP_US, ChecksumMode::Software);
        });
        self.rx(&frame);
    }

    fn transmit(&mut self, limit: Option<usize>) {
        let mut tx = VecTransmit {
            frames: Vec::new(),
            limit,
        };
        let n = self.shard.poll_transmit(self.now, &mut tx);
        assert_eq!(n, tx.frames.len());
        for frame in &tx.frames {
            self.check_sent(frame);
        }
        if limit.is_none() {
            if let Some(t) = self.shard.poll_timeout() {
                assert!(
                    t > self.now,
                    "poll_timeout {t:?} not after {:?}:\n{}",
                    self.now,
                    self.shard.tcp_endpoints().describe()
                );
            }
            let s = self.shard.stats();
            let e = self.shard.tcp_endpoints();
            let open = e.count_in(State::Established) + e.count_in(State::CloseWait);
            assert_eq!(s.tcp.curr_estab as usize, open, "{}", e.describe());
        }
    }

    /// A frame the shard sent: valid by our parsers; TCP updates the model.
    fn check_sent(&mut self, frame: &[u8]) {
        assert!(frame.len() <= ETH + usize::from(MTU));
        let eth = ethernet::Frame::new_checked(frame).expect("sent frame: Ethernet");
        let e = ethernet::Repr::parse(&eth).expect("sent frame: Ethernet repr");
        assert_eq!(e.src_addr, MAC_US);
        if e.ethertype == EtherType::Arp {
            return;
        }
        assert_eq!(e.ethertype, EtherType::Ipv4);
        let p = ipv4::Packet::new_checked(eth.payload()).expect("sent IPv4");
        let ip = ipv4::Repr::parse(&p, ChecksumMode::Software).expect("IPv4 checksum");
        assert_eq!(ip.src_addr, IP_US);
        if ip.protocol != ipv4::Protocol::Tcp {
            return;
        }
        self.tcp_out += 1;
        let seg = tcp::Segment::new_checked(p.payload()).expect("sent TCP");
        let r = tcp::Repr::parse(&seg, ip.src_addr, ip.dst_addr, ChecksumMode::Software)
            .expect("sent TCP: checksum and options");
        assert_eq!(r.buffer_len(), p.payload().len(), "canonical options");
        assert!(r.payload.len() <= usize::from(MTU) - IP - tcp::HEADER_LEN);
        if ip.dst_addr != IP_PEER {
            return;
        }
        let key = (r.src_port, r.dst_port);
        let i = match self
            .conns
            .iter()
            .position(|c| (c.our_port, c.peer_port) == key)
        {
            Some(i) => i,
            None if self.conns.len() < MAX_CONNS && !r.flags.contains(tcp::Flags::RST) => {
                self.add_conn(r.dst_port, r.src_port, None)
            }
            None => return,
        };
        let c = &mut self.conns[i];
        if r.flags.contains(tcp::Flags::RST) {
            return;
        }
        let end = r.seq_number.wrapping_add(r.segment_len() as u32);
        if !c.seen || (end.wrapping_sub(c.our_nxt) as i32) > 0 {
            c.our_nxt = end;
        }
        c.seen = true;
        if let Some(ts) = r.timestamp {
            c.our_ts = ts.tsval;
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.shard.handle_timeout(self.now);
        self.transmit(None);
    }

    fn conn_index(&self, c: u8) -> usize {
        usize::from(c) % self.conns.len()
    }

    fn handle(&self, c: u8) -> Option<TcpHandle> {
        let n = self.conns.len() + self.extra.len();
        let i = usize::from(c) % n;
        match self.conns.get(i) {
            Some(conn) => conn.handle,
            None => self.extra.get(i - self.conns.len()).copied(),
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Segment {
                conn,
                flags,
                seq,
                ack,
                window,
                opts,
                len,
                commit,
            } => {
                let c = self.conn_index(*conn);
                let flags = tcp::Flags::from_bits_truncate(u16::from(*flags));
                let len = usize::from(*len) % 1600;
                let window = window.field();
                self.segment_at(c, *seq, flags, *ack, window, opts, len, *commit);
            }
            Op::Data { conn, len, fin } => {
                let c = self.conn_index(*conn);
                let flags = if *fin {
                    tcp::Flags::FIN | tcp::Flags::PSH
                } else {
                    tcp::Flags::PSH
                };
                let len = usize::from(*len) % 1449;
                self.segment(c, flags, Some(Off::Exact), 65535, &PLAIN, len, true);
            }
            Op::Ack { conn, window } => {
                let c = self.conn_index(*conn);
                let (f, a) = (tcp::Flags::empty(), Some(Off::Exact));
                self.segment(c, f, a, window.field(), &PLAIN, 0, true);
            }
            Op::Syn { port, opts } => {
                let peer_port = 20000 + u16::from(*port % 32);
                let c = match self
                    .conns
                    .iter()
                    .position(|c| (c.our_port, c.peer_port) == (LISTEN_PORT, peer_port))
                {
                    Some(c) => c,
                    None if self.conns.len() < MAX_CONNS => {
                        self.add_conn(peer_port, LISTEN_PORT, None)
                    }
                    None => return,
                };
                self.segment(c, tcp::Flags::SYN, None, 65535, opts, 0, true);
            }
            Op::RawTcp { conn, bytes } => {
                let c = self.conns[self.conn_index(*conn)];
                let mut l4 = bytes[..bytes.len().min(MAX_FRAME - ETH - IP)].to_vec();
                if l4.len() >= 4 {
                    l4[0..2].copy_from_slice(&c.peer_port.to_be_bytes());
                    l4[2..4].copy_from_slice(&c.our_port.to_be_bytes());
                }
                let frame = tcp_frame(l4.len(), |b| {
                    b.copy_from_slice(&l4);
                    if let Ok(mut seg) = tcp::Segment::new_checked(b) {
                        seg.fill_checksum(IP_PEER, IP_US);
                    }
                });
                self.rx(&frame);
            }
            Op::Raw(bytes) => {
                let frame = &bytes[..bytes.len().min(MAX_FRAME)];
                self.rx(frame);
            }
            Op::AdvanceMillis(ms) => self.advance(Duration::from_millis(u64::from(*ms))),
            Op::AdvanceSeconds(s) => self.advance(Duration::from_secs(u64::from(*s))),
            Op::Transmit(limit) => self.transmit(Some(usize::from(*limit % 4))),
            Op::Send { conn, len } => {
                let data = pattern(usize::from(*len) % 12000, 0);
                if let Some(h) = self.handle(*conn)
                    && let Some(tcb) = self.shard.tcp().get_mut(h)
                {
                    let _ = tcb.send(&data);
                }
            }
            Op::Recv { conn, len } => {
                let mut buf = vec![0u8; usize::from(*len) % 10000];
                if let Some(h) = self.handle(*conn)
                    && let Some(tcb) = self.shard.tcp().get_mut(h)
                {
                    let _ = tcb.recv(&mut buf);
                }
            }
            Op::Close(conn) => {
                if let Some(h) = self.handle(*conn) {
                    self.shard.tcp().close(self.now, h);
                }
            }
            Op::Shutdown(conn) => {
                if let Some(h) = self.handle(*conn)
                    && let Some(tcb) = self.shard.tcp().get_mut(h)
                {
                    tcb.shutdown_write();
                }
            }
            Op::Abort(conn) => {
                if let Some(h) = self.handle(*conn) {
                    self.shard.tcp().abort(self.now, h);
                }
            }
            Op::Accept => {
                if let Ok(h) = self.shard.tcp().accept(self.listener) {
                    self.tie(h);
                }
            }
            Op::Connect(port) => {
                let to = SocketAddrV4::new(IP_PEER, CONNECT_PORT + 1 + u16::from(*port % 4));
                if let Ok(h) = self.shard.tcp_connect(self.now, to) {
                    self.tie(h);
                }
            }
        }
        self.check_counters();
    }

    /// Ties a new handle to the model's connection with the same ports, if any.
    fn tie(&mut self, h: TcpHandle) {
        let Some(tcb) = self.shard.tcp().get(h) else {
            return;
        };
        let key = (tcb.local().port(), tcb.remote().port());
        let free = self
            .conns
            .iter()
            .position(|c| (c.our_port, c.peer_port) == key && c.handle.is_none());
        match free {
            Some(i) => self.conns[i].handle = Some(h),
            None if self.conns.len() < MAX_CONNS => {
                self.add_conn(key.1, key.0, Some(h));
            }
            None => self.extra.push(h),
        }
    }

    fn check_counters(&mut self) {
        let s = self.shard.stats();
        let e = self.shard.tcp_endpoints();
        let flows = e.connection_count();
        assert!(flows <= MAX_TCP, "{flows} connections");
        assert_eq!(
            e.tcb_count() + e.time_wait_count() + e.request_count(),
            flows
        );
        assert_eq!(s.tcp_drops.total(), s.tcp.in_errs);
        assert!(s.tcp.in_csum_errors <= s.tcp.in_errs && s.tcp.in_errs <= s.tcp.in_segs);
        // (Not `AttemptFails <= opens`: as in Linux, a request reset before its handshake
        // completed is an attempt that failed without being a passive open.)
        assert!(s.tcp.estab_resets <= e.stats().established);
        assert!(s.tcp.curr_estab as usize <= flows);
        assert!(self.tcp_out <= s.tcp.out_segs + s.tcp.out_rsts);
        // The histogram counts the compact tables by their kept counts: it must agree with
        // the listing, which walks them.
        let mut listed = shardnet::socket::StateHistogram::default();
        e.connections().for_each(|c| listed.add(c.state));
        assert_eq!(e.state_histogram(), listed);
        if let Err(why) = e.check_timers() {
            panic!("a connection timer is unreachable: {why}\n{}", e.describe());
        }
    }

    /// The application closes everything and the peer falls silent: every timer runs out and
    /// the tables are empty again.
    fn finish(&mut self) {
        let handles: Vec<TcpHandle> = self.conns.iter().filter_map(|c| c.handle).collect();
        for h in handles {
            if let Some(tcb) = self.shard.tcp().get(h) {
                let c = tcb.stats();
                let sum = &mut self.conn_stats;
                sum.challenge_acks += c.challenge_acks;
                sum.dropped_unacceptable += c.dropped_unacceptable;
                sum.window_probes += c.window_probes;
                sum.ooo_segs += c.ooo_segs;
                sum.bytes_received += c.bytes_received;
                sum.bytes_acked += c.bytes_acked;
                sum.fast_retransmits += c.fast_retransmits;
                sum.rto_count += c.rto_count;
            }
        }
        while let Ok(h) = self.shard.tcp().accept(self.listener) {
            self.extra.push(h);
        }
        let handles: Vec<TcpHandle> = self
            .conns
            .iter()
            .filter_map(|c| c.handle)
            .chain(self.extra.iter().copied())
            .collect();
        for h in handles {
            self.shard.tcp().close(self.now, h);
        }
        self.shard.tcp().close_listener(self.now, self.listener);
        self.transmit(None);
        // Long after every timeout: SYN-ACK and retransmission retries (15 with backoff up to
        // 120 s: about 15 minutes), FIN-WAIT-2 (60 s), TIME-WAIT (2*MSL), persist probes.
        let end = self.now + Duration::from_secs(4 * 3600);
        let mut steps = 0;
        while let Some(t) = self.shard.tcp_endpoints().poll_timeout() {
            if t > end {
                break;
            }
            steps += 1;
            assert!(steps < 100_000, "timers never settle");
            self.now = self.now.max(t);
            self.shard.handle_timeout(self.now);
            self.transmit(None);
        }
        let e = self.shard.tcp_endpoints();
        assert_eq!(e.connection_count(), 0, "left:\n{}", e.describe());
        assert_eq!(e.tcb_count(), 0);
        assert_eq!(e.time_wait_count(), 0);
        assert_eq!(e.request_count(), 0);
        assert_eq!(e.poll_timeout(), None, "a TCP timer is still armed");
        assert_eq!(self.shard.stats().tcp.curr_estab, 0);
        self.check_counters();
    }
}

const SYN_OPTS: Opts = Opts {
    mss: Some(1460),
    window_scale: Some(7),
    sack_permitted: true,
    ts: Some(Ts::Current),
    sack: [None, None],
};

const PLAIN: Opts = Opts {
    mss: None,
    window_scale: None,
    sack_permitted: false,
    ts: Some(Ts::Current),
    sack: [None, None],
};

fuzz_target!(|ops: Vec<Op>| {
    let mut world = World::new();
    for op in ops.iter().take(MAX_OPS) {
        if std::env::var_os("TCP_STATEFUL_TRACE").is_some() {
            eprintln!("{:?} {op:?}", world.now);
        }
        world.step(op);
    }
    world.finish();
    if std::env::var_os("TCP_STATEFUL_STATS").is_some() {
        // Which paths the inputs reach (see README): the shard's counters after the input,
        // and the connection-level ones summed over the connections the application still
        // held when the input ended.
        eprint!("{}", world.shard.stats().render(false));
        eprintln!("Conn: {:?}", world.conn_stats);
    }
});
