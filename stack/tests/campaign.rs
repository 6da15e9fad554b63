//! The Monte-Carlo simulation campaign: every scenario of `campaign/scenarios.rs` over many
//! seeds, each seed a deterministic simulation of a client host and a server host (one or more
//! shards each, RSS-steered) on the memory wire with the scenario's seeded loss, duplication,
//! reordering, delay, jitter and bit corruption.
//!
//! Invariants checked on every seed (a violation fails the seed, with a replay command):
//!
//! - every byte is delivered exactly once and in order (an aborted connection delivers a
//!   prefix): each direction of each connection carries a stream keyed by the seed and the
//!   connection's id, and every byte read is compared with it;
//! - isolation: the client's first 8 bytes are its connection id; the server end that reads
//!   them must be the one whose peer address is that connection's client address, and no id
//!   is claimed twice, so a byte of one connection delivered in another (also across 4-tuple
//!   reuse under churn) fails the check;
//! - every connection ends within 1200 s of virtual time; afterwards no connection, request,
//!   TIME-WAIT entry or TCB is left on any shard, `CurrEstab` is 0, and every frame is back
//!   in its pool;
//! - counters agree: the client's `ActiveOpens` equals the connects made, the server's
//!   `PassiveOpens` is at least the connections accepted and at most those plus the attempts
//!   that failed.
//!
//! Environment:
//! - `SHARDNET_SCENARIO=name`: only that scenario; `SHARDNET_SEED=n`: only that seed (replay);
//! - `SHARDNET_CAMPAIGN_SEEDS=n`: seeds `0..n` of every scenario (default: each scenario's own
//!   bounded count);
//! - `SHARDNET_CAMPAIGN_SECS=s`: as many seeds as fit in `s` seconds, round-robin over the
//!   scenarios (what `scripts/soak.sh` uses);
//! - `SHARDNET_CAMPAIGN_JSON=path`: write the summary there as JSON.
//!
//! `cargo test --release -p shardnet --test campaign -- --nocapture` prints the summary table.

#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

#[path = "campaign/scenarios.rs"]
mod scenarios;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use scenarios::{Close, SCENARIOS, Scenario, Sizes};
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{Batch, Capabilities, Frame, PoolStats, Port, RxOffload};
use shardnet::shard::tcp::{ConnectError, ListenHandle, TcpHandle};
use shardnet::shard::{Shard, ShardConfig, Stats};
use shardnet::tcp::congestion::Algorithm;
use shardnet::tcp::{Keepalive, RecvError, SendError, State, TcpConfig};
use shardnet::time::{Duration, Instant};
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::sim::Simulation;
use shardnet_memory::{Impairments, MemoryFrame, MemoryPort, Wire, WireConfig};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::rc::Rc;

const MAC_C: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
const MAC_S: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
const IP_C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_S: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 80;
/// Bytes of the connection id that open the client's stream.
const ID_LEN: usize = 8;
/// Virtual time a seed has to finish every connection.
const DEADLINE_SECS: u64 = 1200;

// ---------------------------------------------------------------------------------------------
// Streams

/// The byte at `offset` of direction `dir` (0 up, 1 down) of connection `id`: keyed by the
/// seed and the id, so a byte of another connection (or another seed) does not match.
fn stream_byte(seed: u64, id: usize, dir: u8, offset: usize) -> u8 {
    if dir == 0 && offset < ID_LEN {
        return (id as u64).to_le_bytes()[offset];
    }
    let x = (offset as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ seed.rotate_left(17)
        ^ (id as u64).wrapping_mul(0xff51_afd7_ed55_8ccd)
        ^ (u64::from(dir) << 63);
    (x >> 29) as u8 ^ (offset as u8) ^ ((x >> 47) as u8)
}

// ---------------------------------------------------------------------------------------------
// ARP fan-out: a port whose RSS sends ARP to queue 0 only (like a NIC), with the ARP frames of
// queue 0 copied out so the harness can show them to the host's other shards (the runtime
// does the same with its cross-shard inboxes).

type Mailbox = Rc<RefCell<Vec<Vec<u8>>>>;

struct Tap {
    port: MemoryPort,
    arp: Option<Mailbox>,
    /// `SHARDNET_TRACE_PORT=p`: print every TCP segment to or from port `p` this port sends
    /// (a replay aid).
    trace: Option<(u16, String, Wire)>,
}

/// One line for a TCP segment of `frame` if it is to or from `port`.
fn trace_line(frame: &[u8], port: u16) -> Option<String> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || *ip.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let tcp = ip.get(ihl..total)?;
    let be16 = |o: usize| u16::from_be_bytes([tcp[o], tcp[o + 1]]);
    let be32 = |o: usize| u32::from_be_bytes([tcp[o], tcp[o + 1], tcp[o + 2], tcp[o + 3]]);
    if tcp.len() < 20 || (be16(0) != port && be16(2) != port) {
        return None;
    }
    let flags = tcp[13];
    let names: String = [
        (0x02, 'S'),
        (0x10, '.'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
    ]
    .iter()
    .filter(|(b, _)| flags & b != 0)
    .map(|(_, c)| *c)
    .collect();
    let data = tcp.len() - usize::from(tcp[12] >> 4) * 4;
    Some(format!(
        "{} > {} [{names}] seq {} ack {} win {} len {data}",
        be16(0),
        be16(2),
        be32(4),
        be32(8),
        be16(14)
    ))
}

const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];

impl Port for Tap {
    type Frame = MemoryFrame;
    fn capabilities(&self) -> &Capabilities {
        self.port.capabilities()
    }
    fn rx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        let start = batch.len();
        let n = self.port.rx_burst(batch);
        if let Some(arp) = &self.arp {
            for f in batch.iter().skip(start) {
                if f.data().get(12..14) == Some(&ETHERTYPE_ARP[..]) {
                    arp.borrow_mut().push(f.data().to_vec());
                }
            }
        }
        n
    }
    fn alloc_tx(&mut self) -> Option<MemoryFrame> {
        self.port.alloc_tx()
    }
    fn tx_burst(&mut self, batch: &mut Batch<MemoryFrame>) -> usize {
        if let Some((port, name, wire)) = &self.trace {
            for f in batch.iter() {
                if let Some(line) = trace_line(f.data(), *port) {
                    eprintln!("{} {name}: {line}", wire.now());
                }
            }
        }
        self.port.tx_burst(batch)
    }
    fn release(&mut self, frame: MemoryFrame) {
        self.port.release(frame)
    }
    fn pool_stats(&self) -> PoolStats {
        self.port.pool_stats()
    }
}

/// One host: its shards are nodes `first..first + shards` of the simulation.
struct Host {
    first: usize,
    shards: usize,
    arp: Mailbox,
}

impl Host {
    fn nodes(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.shards
    }

    /// Shows the ARP frames queue 0 received to the other shards of the host.
    fn fan_out_arp(&self, sim: &mut Simulation<Tap>) {
        let frames = std::mem::take(&mut *self.arp.borrow_mut());
        let now = sim.now();
        for f in &frames {
            for n in self.nodes().skip(1) {
                sim.nodes[n]
                    .shard
                    .handle_frame(now, f, RxOffload::default());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

/// One end of one connection.
#[derive(Debug, Default)]
struct End {
    node: usize,
    handle: Option<TcpHandle>,
    to_send: usize,
    sent: usize,
    received: usize,
    eof: bool,
    shut: bool,
    closed: bool,
    failed: Option<&'static str>,
}

/// A connection as the client sees it.
#[derive(Debug)]
struct Conn {
    close: Close,
    /// The server's bytes (known to the server end once it has read the id).
    down: usize,
    /// Abort after this many bytes sent (by the aborting side).
    abort_after: usize,
    client: End,
    /// The client's address, once connected.
    local: Option<SocketAddrV4>,
    /// Index of the server end that identified itself as this connection.
    server: Option<usize>,
    /// The connection that used the same client address before this one, if any.
    previous: Option<usize>,
}

/// An accepted connection on the server.
#[derive(Debug)]
struct ServerEnd {
    end: End,
    remote: SocketAddrV4,
    /// The connection id read from the first bytes.
    id: Option<usize>,
    header: [u8; ID_LEN],
}

/// What one seed simulated.
#[derive(Clone, Debug, Default)]
struct Tally {
    connections: u64,
    bytes_verified: u64,
    frames: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    delayed: u64,
    corrupted: u64,
    checksum_drops: u64,
    tw_reused: u64,
    resets: u64,
    refused_retried: u64,
    virtual_secs: f64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.connections += o.connections;
        self.bytes_verified += o.bytes_verified;
        self.frames += o.frames;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.delayed += o.delayed;
        self.corrupted += o.corrupted;
        self.checksum_drops += o.checksum_drops;
        self.tw_reused += o.tw_reused;
        self.refused_retried += o.refused_retried;
        self.resets += o.resets;
        self.virtual_secs += o.virtual_secs;
    }
}

/// TCP options and congestion control vary with the seed (as in `tcp_simulation.rs`).
fn tcp_variant(seed: u64) -> (bool, bool, bool, Algorithm) {
    let congestion = if seed % 2 == 0 {
        Algorithm::Cubic
    } else {
        Algorithm::NewReno
    };
    (seed % 3 != 1, seed % 5 != 2, seed % 7 != 3, congestion)
}

fn shard(mac: EthernetAddress, ip: Ipv4Addr, seed: u64, index: usize) -> Shard {
    let mut config = ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    let (sack, timestamps, window_scaling, congestion) = tcp_variant(seed);
    config.tcp = TcpConfig {
        send_buffer: 64 * 1024,
        recv_buffer: 64 * 1024,
        // Short timers so that a seed ends in little virtual time (TIME-WAIT is 2*MSL = 4 s).
        msl: Duration::from_secs(2),
        fin_timeout: Duration::from_secs(10),
        // Ends the peer of an abort whose RST was lost (see tcp_simulation.rs).
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            probes: 9,
        }),
        sack,
        timestamps,
        window_scaling,
        congestion,
        ..TcpConfig::default()
    };
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8] = index as u8;
    key[9] = mac.0[5];
    config.isn_key = key;
    Shard::new(config)
}

struct Draw(ChaCha8Rng);

impl Draw {
    fn unit(&mut self) -> f64 {
        (self.0.next_u32() as f64) / f64::from(u32::MAX)
    }
    fn f(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + self.unit() * (hi - lo)
    }
    fn u(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + (self.unit() * (hi - lo) as f64).round() as u64
    }
    fn size(&mut self, s: Sizes) -> usize {
        match s {
            Sizes::Uniform(max) => ID_LEN + (self.unit() * (max - ID_LEN) as f64) as usize,
            Sizes::HeavyTail(max) => {
                let u = self.unit();
                ID_LEN + (u * u * max as f64) as usize
            }
        }
    }
}

/// The seed of the random streams of `scenario` at `seed` (scenarios do not share streams).
fn mixed_seed(scenario: &Scenario, seed: u64) -> u64 {
    // FNV-1a of the name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scenario.name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn replay(scenario: &Scenario, seed: u64) -> String {
    format!(
        "SHARDNET_SCENARIO={} SHARDNET_SEED={seed} cargo test --release -p shardnet --test campaign -- --nocapture",
        scenario.name
    )
}

/// A broken invariant.
type Violation = String;

/// Reads what arrived on the client end of connection `id`, checking every byte.
fn read_client(shard: &mut Shard, seed: u64, id: usize, end: &mut End) -> Result<(), Violation> {
    let Some(tcb) = end.handle.and_then(|h| shard.tcp().get_mut(h)) else {
        return Ok(());
    };
    loop {
        let at = end.received;
        let mut bad = None;
        match tcb.recv_with(|data| {
            for (i, b) in data.iter().enumerate() {
                if *b != stream_byte(seed, id, 1, at + i) {
                    bad = Some(at + i);
                    break;
                }
            }
            data.len()
        }) {
            Ok(0) => {
                end.eof = true;
                return Ok(());
            }
            Ok(n) => end.received += n,
            Err(RecvError::WouldBlock) => return Ok(()),
            Err(e) => {
                end.failed = Some(e.errno());
                return Ok(());
            }
        }
        if let Some(off) = bad {
            return Err(format!(
                "conn {id}: client read a wrong byte at offset {off} (lost, duplicated, reordered or another connection's)"
            ));
        }
    }
}

/// Reads what arrived on a server end: the connection id first, then the stream it keys.
fn read_server(shard: &mut Shard, seed: u64, s: &mut ServerEnd) -> Result<(), Violation> {
    let Some(tcb) = s.end.handle.and_then(|h| shard.tcp().get_mut(h)) else {
        return Ok(());
    };
    loop {
        let at = s.end.received;
        let mut id = s.id;
        let header = &mut s.header;
        let mut bad = None;
        match tcb.recv_with(|data| {
            for (i, b) in data.iter().enumerate() {
                let off = at + i;
                if off < ID_LEN {
                    header[off] = *b;
                    if off == ID_LEN - 1 {
                        id = Some(u64::from_le_bytes(*header) as usize);
                    }
                    continue;
                }
                // Past the header the id is known.
                if let Some(id) = id
                    && *b != stream_byte(seed, id, 0, off)
                {
                    bad = Some(off);
                    break;
                }
            }
            data.len()
        }) {
            Ok(0) => {
                s.end.eof = true;
                return Ok(());
            }
            Ok(n) => s.end.received += n,
            Err(RecvError::WouldBlock) => return Ok(()),
            Err(e) => {
                s.end.failed = Some(e.errno());
                return Ok(());
            }
        }
        if s.id.is_none() && id.is_some() {
            s.id = id;
        }
        if let Some(off) = bad {
            return Err(format!(
                "server end from {} (conn {:?}) read a wrong byte at offset {off}",
                s.remote, s.id
            ));
        }
    }
}

/// Writes what fits of `end`'s stream.
fn write(shard: &mut Shard, seed: u64, id: usize, dir: u8, end: &mut End) {
    let Some(tcb) = end.handle.and_then(|h| shard.tcp().get_mut(h)) else {
        return;
    };
    while end.sent < end.to_send && !end.shut {
        let want = (end.to_send - end.sent).min(16 * 1024);
        let start = end.sent;
        match tcb.send_with(want, |buf| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = stream_byte(seed, id, dir, start + i);
            }
            buf.len()
        }) {
            Ok(0) | Err(SendError::WouldBlock) => break,
            Ok(n) => end.sent += n,
            Err(e) => {
                end.failed = Some(e.errno());
                break;
            }
        }
    }
}

/// Shuts down writing once connected (shutdown in SYN-SENT closes outright, RFC 9293 3.10.4).
fn shut(shard: &mut Shard, end: &mut End) {
    let Some(h) = end.handle else { return };
    if end.shut {
        return;
    }
    if let Some(tcb) = shard.tcp().get_mut(h)
        && tcb.state().is_synchronized()
    {
        tcb.shutdown_write();
        end.shut = true;
    }
}

fn close(shard: &mut Shard, now: Instant, end: &mut End, abort: bool) {
    if let Some(h) = end.handle {
        if abort {
            shard.tcp().abort(now, h);
        } else {
            shard.tcp().close(now, h);
        }
    }
    end.closed = true;
}

/// One step of the client end of connection `id`.
fn pump_client(
    shard: &mut Shard,
    now: Instant,
    seed: u64,
    id: usize,
    c: &mut Conn,
) -> Result<(), Violation> {
    let end = &mut c.client;
    if end.handle.is_none() || end.closed {
        return Ok(());
    }
    write(shard, seed, id, 0, end);
    read_client(shard, seed, id, end)?;
    if c.close == Close::ClientAborts && (end.sent >= c.abort_after || end.sent == end.to_send) {
        close(shard, now, end, true);
        return Ok(());
    }
    let done_sending = end.sent == end.to_send;
    let my_turn = match c.close {
        Close::ServerFirst => end.eof,
        _ => true,
    };
    if done_sending && my_turn {
        shut(shard, end);
    }
    if (end.shut && (end.eof || end.failed.is_some())) || end.failed.is_some() {
        close(shard, now, end, false);
    }
    Ok(())
}

/// One step of a server end.
fn pump_server(
    shard: &mut Shard,
    now: Instant,
    seed: u64,
    s: &mut ServerEnd,
    conns: &mut [Conn],
    index: usize,
) -> Result<(), Violation> {
    if s.end.closed {
        return Ok(());
    }
    let known = s.id.is_some();
    read_server(shard, seed, s)?;
    if let (false, Some(id)) = (known, s.id) {
        // Isolation: the id must be a connection we opened, from this peer address, and not
        // claimed by another server end.
        let Some(c) = conns.get_mut(id) else {
            return Err(format!(
                "server end from {} claims unknown connection {id}",
                s.remote
            ));
        };
        if c.local != Some(s.remote) {
            return Err(format!(
                "conn {id} (client {:?}) arrived on the server connection from {}",
                c.local, s.remote
            ));
        }
        if let Some(other) = c.server {
            return Err(format!(
                "conn {id} claimed by server ends {other} and {index}"
            ));
        }
        c.server = Some(index);
        s.end.to_send = c.down;
    }
    let Some(id) = s.id else {
        // Not identified yet: only a failure or EOF ends it (a client that aborted early).
        if s.end.failed.is_some() || s.end.eof {
            close(shard, now, &mut s.end, false);
        }
        return Ok(());
    };
    let (close_kind, abort_after) = (conns[id].close, conns[id].abort_after);
    if close_kind != Close::HalfClosed || s.end.eof {
        write(shard, seed, id, 1, &mut s.end);
    }
    if close_kind == Close::ServerAborts
        && (s.end.sent >= abort_after || s.end.sent == s.end.to_send)
    {
        close(shard, now, &mut s.end, true);
        return Ok(());
    }
    let done_sending = s.end.sent == s.end.to_send;
    let my_turn = match close_kind {
        Close::ClientFirst | Close::HalfClosed => s.end.eof,
        _ => true,
    };
    if done_sending && my_turn {
        shut(shard, &mut s.end);
    }
    if (s.end.shut && (s.end.eof || s.end.failed.is_some())) || s.end.failed.is_some() {
        close(shard, now, &mut s.end, false);
    }
    Ok(())
}

fn sum_stats(sim: &Simulation<Tap>, nodes: std::ops::Range<usize>) -> Stats {
    let mut total = Stats::default();
    for n in nodes {
        let s = sim.nodes[n].shard.stats();
        total.tcp.active_opens += s.tcp.active_opens;
        total.tcp.passive_opens += s.tcp.passive_opens;
        total.tcp.attempt_fails += s.tcp.attempt_fails;
        total.tcp.estab_resets += s.tcp.estab_resets;
        total.tcp.curr_estab += s.tcp.curr_estab;
        total.tcp.in_csum_errors += s.tcp.in_csum_errors;
        total.tcp.out_rsts += s.tcp.out_rsts;
        total.ip.in_hdr_errors += s.ip.in_hdr_errors;
        total.icmp.in_errors += s.icmp.in_errors;
        total.udp.in_csum_errors += s.udp.in_csum_errors;
        total.tcp_ext.tw_recycled += s.tcp_ext.tw_recycled;
        total.tcp_ext.tw_killed += s.tcp_ext.tw_killed;
    }
    total
}

/// Simulates one seed of `scenario`.
fn run(scenario: &Scenario, seed: u64) -> Result<Tally, Violation> {
    let mixed = mixed_seed(scenario, seed);
    let mut d = Draw(ChaCha8Rng::seed_from_u64(mixed));
    let impairments = Impairments {
        loss: d.f(scenario.loss),
        duplicate: d.f(scenario.duplicate),
        reorder: d.f(scenario.reorder),
        reorder_delay: Duration::from_micros(d.u(scenario.reorder_delay_us)),
        corrupt: d.f(scenario.corrupt),
        delay: Duration::from_micros(d.u(scenario.delay_us)),
        jitter: Duration::from_micros(d.u(scenario.jitter_us)),
        bandwidth: None,
    };
    let n_conns = d.u((scenario.connections.0 as u64, scenario.connections.1 as u64)) as usize;
    let mut conns: Vec<Conn> = (0..n_conns)
        .map(|_| {
            let close = scenario.closes
                [(d.unit() * scenario.closes.len() as f64) as usize % scenario.closes.len()];
            let up = d.size(scenario.sizes);
            let down = d.size(scenario.sizes);
            let abort_base = if close == Close::ServerAborts {
                down
            } else {
                up
            };
            Conn {
                close,
                down,
                abort_after: (d.unit() * abort_base as f64) as usize,
                client: End {
                    to_send: up,
                    ..End::default()
                },
                local: None,
                server: None,
                previous: None,
            }
        })
        .collect();

    let wire = Wire::new(WireConfig {
        seed: mixed,
        pool_size: 2048,
        ..WireConfig::default()
    });
    let (kc, ks) = (scenario.client_shards, scenario.server_shards);
    let pc = wire.add_port(MAC_C, kc);
    let ps = wire.add_port(MAC_S, ks);
    let mut sim: Simulation<Tap> = Simulation::new(wire.clone());
    let hosts = [
        Host {
            first: 0,
            shards: usize::from(kc),
            arp: Mailbox::default(),
        },
        Host {
            first: usize::from(kc),
            shards: usize::from(ks),
            arp: Mailbox::default(),
        },
    ];
    for (host, (port, mac, ip, queues)) in hosts
        .iter()
        .zip([(pc, MAC_C, IP_C, kc), (ps, MAC_S, IP_S, ks)])
    {
        for q in 0..queues {
            let port = wire.port(port, q).unwrap();
            let mut shard = shard(mac, ip, mixed, usize::from(q));
            shard.set_rss(port.capabilities().rss.as_ref(), q);
            let arp = (q == 0).then(|| Rc::clone(&host.arp));
            let trace = env::<u16>("SHARDNET_TRACE_PORT").map(|p| {
                (
                    p,
                    format!("{}{q}", if ip == IP_C { 'c' } else { 's' }),
                    wire.clone(),
                )
            });
            sim.add(shard, Tap { port, arp, trace });
        }
    }
    let (client, server) = (&hosts[0], &hosts[1]);
    for n in client.nodes() {
        let tcp = sim.nodes[n].shard.tcp();
        if let Some((lo, hi)) = scenario.ephemeral {
            assert!(tcp.set_ephemeral_range(lo, hi));
        }
        let mut tw = tcp.time_wait_config();
        tw.reuse = scenario.tw_reuse;
        tcp.set_time_wait_config(tw);
    }
    // Resolve ARP on a clean wire (both ways, every shard), then impair it.
    let now = sim.now();
    sim.nodes[client.first]
        .shard
        .ping(now, IP_S, 1, 1, b"hi")
        .unwrap();
    sim.nodes[server.first]
        .shard
        .ping(now, IP_C, 1, 1, b"hi")
        .unwrap();
    loop {
        let moved = sim.step().map_err(|e| e.to_string())?;
        client.fan_out_arp(&mut sim);
        server.fan_out_arp(&mut sim);
        if !moved {
            break;
        }
    }
    sim.wire.set_impairments(impairments.clone());

    let listeners: Vec<(usize, ListenHandle)> = server
        .nodes()
        .map(|n| (n, sim.nodes[n].shard.tcp().listen(PORT, 128).unwrap()))
        .collect();
    let mut servers: Vec<ServerEnd> = Vec::new();
    let mut next_open = 0usize;
    let mut connects = 0u64;
    // Connections to open again (see below), and who used each client address last.
    let mut retry: Vec<usize> = Vec::new();
    let mut refused_retried = 0u64;
    let mut last_user: std::collections::HashMap<SocketAddrV4, usize> = Default::default();
    // (address, connection) of the connect attempts refused and retried.
    let mut refused_on: std::collections::HashSet<(SocketAddrV4, usize)> = Default::default();
    let mut violation: Option<Violation> = None;
    let start = sim.now();
    let deadline = start + Duration::from_secs(DEADLINE_SECS);
    let finished = sim
        .run_until(deadline, |s| {
            if violation.is_some() {
                return true;
            }
            client.fan_out_arp(s);
            server.fan_out_arp(s);
            let now = s.now();
            // Open connections while fewer than `concurrency` are live.
            let live = conns[..next_open]
                .iter()
                .filter(|c| c.client.handle.is_some() && !c.client.closed)
                .count();
            let mut room = scenario.concurrency.saturating_sub(live);
            while room > 0 && (next_open < conns.len() || !retry.is_empty()) {
                let (id, again) = match retry.last() {
                    Some(&id) => (id, true),
                    None => (next_open, false),
                };
                // The shard of `id`, or the next one with a free port (RSS splits the range).
                let mut attempt = Err(ConnectError::AddrNotAvailable);
                let mut node = client.first;
                for k in 0..client.shards {
                    node = client.first + (id + k) % client.shards;
                    attempt = s.nodes[node]
                        .shard
                        .tcp_connect(now, SocketAddrV4::new(IP_S, PORT));
                    if attempt != Err(ConnectError::AddrNotAvailable) {
                        break;
                    }
                }
                match attempt {
                    Ok(h) => {
                        let local = s.nodes[node].shard.tcp().get(h).unwrap().local();
                        // No live connection of ours may hold this address (one reset or
                        // timed out is CLOSED and lets its port go, as in Linux, even before
                        // the application closes it).
                        let live = |c: &Conn| {
                            !c.client.closed
                                && c.client.handle.is_some_and(|h| {
                                    s.nodes[c.client.node]
                                        .shard
                                        .tcp_endpoints()
                                        .get(h)
                                        .is_some_and(|t| t.state() != State::Closed)
                                })
                        };
                        if conns[..next_open]
                            .iter()
                            .any(|c| live(c) && c.local == Some(local))
                        {
                            violation =
                                Some(format!("conn {id}: connect reused live address {local}"));
                            return true;
                        }
                        let c = &mut conns[id];
                        c.client.node = node;
                        c.client.handle = Some(h);
                        c.local = Some(local);
                        // A retry on the same address keeps the incarnation before it.
                        let before = last_user.insert(local, id);
                        if before != Some(id) {
                            c.previous = before;
                        }
                        connects += 1;
                        if again {
                            retry.pop();
                        } else {
                            next_open += 1;
                        }
                        room -= 1;
                    }
                    // Every port is in use or in TIME-WAIT: try again later.
                    Err(ConnectError::AddrNotAvailable) => break,
                    Err(e) => {
                        violation = Some(format!("conn {id}: connect failed: {}", e.errno()));
                        return true;
                    }
                }
            }
            for &(n, l) in &listeners {
                while let Ok(h) = s.nodes[n].shard.tcp().accept(l) {
                    let remote = s.nodes[n].shard.tcp().get(h).unwrap().remote();
                    servers.push(ServerEnd {
                        end: End {
                            node: n,
                            handle: Some(h),
                            ..End::default()
                        },
                        remote,
                        id: None,
                        header: [0; ID_LEN],
                    });
                }
            }
            for (id, c) in conns.iter_mut().enumerate() {
                let n = c.client.node;
                if let Err(v) = pump_client(&mut s.nodes[n].shard, now, mixed, id, c) {
                    violation = Some(v);
                    return true;
                }
            }
            // A connect refused because the previous use of its 4-tuple ended without
            // TIME-WAIT (an abort, or a connect attempt refused the same way) an instant
            // before, and its last segments were still in flight: the new SYN landed in the old
            // window and the peer reset it, as Linux's tcp_check_req does (TIME-WAIT exists to
            // prevent exactly this; SO_LINGER 0 skips it). A client retries; anything else
            // refused is a failure.
            for id in 0..next_open {
                let c = &conns[id];
                let after_abort = c.previous.is_some_and(|p| {
                    conns[p].close.aborts() || c.local.is_some_and(|a| refused_on.contains(&(a, p)))
                });
                if c.client.closed
                    && c.client.failed == Some("ECONNREFUSED")
                    && c.client.received == 0
                    && after_abort
                {
                    if let Some(a) = conns[id].local {
                        refused_on.insert((a, id));
                    }
                    let c = &mut conns[id];
                    c.client = End {
                        to_send: c.client.to_send,
                        ..End::default()
                    };
                    c.local = None;
                    retry.push(id);
                    refused_retried += 1;
                }
            }
            for (i, se) in servers.iter_mut().enumerate() {
                let n = se.end.node;
                if let Err(v) = pump_server(&mut s.nodes[n].shard, now, mixed, se, &mut conns, i) {
                    violation = Some(v);
                    return true;
                }
            }
            next_open == conns.len()
                && retry.is_empty()
                && conns.iter().all(|c| c.client.closed)
                && servers.iter().all(|se| se.end.closed)
                && s.nodes
                    .iter_mut()
                    .all(|n| n.shard.tcp().connection_count() == 0)
        })
        .map_err(|e| e.to_string())?;
    let what = format!(
        "{n_conns} connections, loss {:.3} dup {:.3} reorder {:.3} corrupt {:.3} delay {:?} jitter {:?}, (sack, ts, wscale, cc) {:?}",
        impairments.loss,
        impairments.duplicate,
        impairments.reorder,
        impairments.corrupt,
        impairments.delay,
        impairments.jitter,
        tcp_variant(mixed)
    );
    if let Some(v) = violation {
        return Err(format!("{v} [{what}]"));
    }
    if !finished {
        let mut detail = String::new();
        for (id, c) in conns.iter().enumerate() {
            if !c.client.closed || c.server.is_some_and(|i| !servers[i].end.closed) {
                let _ = write!(
                    detail,
                    "\n  conn {id} {:?} client {:?} server {:?}",
                    c.close,
                    c.client,
                    c.server.map(|i| &servers[i])
                );
            }
        }
        for (n, node) in sim.nodes.iter_mut().enumerate() {
            let _ = write!(detail, "\n  node {n}: {}", node.shard.tcp().describe());
        }
        return Err(format!(
            "not finished by {deadline}: {next_open}/{n_conns} opened [{what}]{detail}"
        ));
    }
    // Bytes: all of them, or a prefix for an abort (each byte read was already checked).
    let mut tally = Tally {
        connections: n_conns as u64,
        virtual_secs: (sim.now() - start).as_secs_f64(),
        ..Tally::default()
    };
    for (id, c) in conns.iter().enumerate() {
        let srv = c.server.map(|i| &servers[i].end);
        let up_received = srv.map_or(0, |e| e.received);
        let down_sent = srv.map_or(0, |e| e.sent);
        tally.bytes_verified += (up_received + c.client.received) as u64;
        if c.close.aborts() {
            if up_received > c.client.sent || c.client.received > down_sent {
                return Err(format!("conn {id}: more bytes received than sent [{what}]"));
            }
            continue;
        }
        let Some(srv) = srv else {
            let same: Vec<&ServerEnd> = servers
                .iter()
                .filter(|s| Some(s.remote) == c.local)
                .collect();
            for (j, o) in conns.iter().enumerate() {
                if o.local == c.local {
                    eprintln!("same address: conn {j} {:?} {:?}", o.close, o.client);
                }
            }
            return Err(format!(
                "conn {id} {:?}: the server never identified it: client {:?} local {:?} previous {:?}; server ends from that address: {same:?} [{what}]",
                c.close,
                c.client,
                c.local,
                c.previous.map(|p| (p, conns[p].close))
            ));
        };
        if up_received != c.client.to_send || c.client.received != c.down {
            return Err(format!(
                "conn {id} {:?}: up {up_received}/{} down {}/{} [{what}]",
                c.close, c.client.to_send, c.client.received, c.down
            ));
        }
        if c.client.failed.is_some() || srv.failed.is_some() {
            return Err(format!(
                "conn {id} {:?} failed: client {:?} server {:?} [{what}]",
                c.close, c.client.failed, srv.failed
            ));
        }
    }
    // Server ends that never learned their id belong to clients that aborted early.
    let unknown = servers.iter().filter(|s| s.id.is_none()).count();
    let early_aborts = conns
        .iter()
        .filter(|c| c.close == Close::ClientAborts && c.server.is_none())
        .count();
    if unknown > early_aborts {
        return Err(format!(
            "{unknown} server connections never identified, {early_aborts} early aborts [{what}]"
        ));
    }
    // Let TIME-WAIT and the wire drain; then nothing may be left.
    while sim.step().map_err(|e| e.to_string())? {
        client.fan_out_arp(&mut sim);
        server.fan_out_arp(&mut sim);
    }
    for (n, node) in sim.nodes.iter_mut().enumerate() {
        let tcp = node.shard.tcp();
        let left = (
            tcp.connection_count(),
            tcp.tcb_count(),
            tcp.request_count(),
            tcp.time_wait_count(),
            node.shard.stats().tcp.curr_estab,
        );
        if left != (0, 0, 0, 0, 0) {
            return Err(format!(
                "node {n}: left (connections, tcbs, requests, time-wait, CurrEstab) {left:?} [{what}]"
            ));
        }
    }
    if !sim.wire.all_pools_full() {
        return Err(format!("frames leaked [{what}]"));
    }
    let cs = sum_stats(&sim, client.nodes());
    let ss = sum_stats(&sim, server.nodes());
    if cs.tcp.active_opens != connects {
        return Err(format!(
            "client ActiveOpens {} != {connects} connects [{what}]",
            cs.tcp.active_opens
        ));
    }
    let accepted = servers.len() as u64;
    // PassiveOpens counts handshakes completed (Linux counts it when the child socket is
    // made); requests reset in SYN-RECEIVED count in AttemptFails only.
    // A connection reset while in the accept queue leaves it (not accepted) and counts in
    // EstabResets.
    let bound = accepted + ss.tcp.attempt_fails + ss.tcp.estab_resets;
    if ss.tcp.passive_opens < accepted || ss.tcp.passive_opens > bound {
        return Err(format!(
            "server PassiveOpens {} outside {accepted} accepted ..= {bound} (+ AttemptFails, EstabResets) [{what}]",
            ss.tcp.passive_opens
        ));
    }
    let w = sim.wire.total_counters();
    tally.frames = w.rx_frames;
    tally.lost = w.lost;
    tally.duplicated = w.duplicated;
    tally.reordered = w.reordered;
    tally.corrupted = w.corrupted;
    // With a delay or jitter every delivered frame was delayed.
    tally.delayed = if impairments.delay.is_zero() && impairments.jitter.is_zero() {
        0
    } else {
        w.rx_frames
    };
    tally.checksum_drops = [cs, ss]
        .iter()
        .map(|s| {
            s.tcp.in_csum_errors + s.ip.in_hdr_errors + s.icmp.in_errors + s.udp.in_csum_errors
        })
        .sum();
    tally.tw_reused = cs.tcp_ext.tw_recycled + ss.tcp_ext.tw_killed;
    tally.resets = cs.tcp.estab_resets + ss.tcp.estab_resets;
    tally.refused_retried = refused_retried;
    Ok(tally)
}

// ---------------------------------------------------------------------------------------------
// The campaign

#[derive(Default)]
struct ScenarioResult {
    seeds: u64,
    tally: Tally,
    failures: Vec<(u64, String)>,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn run_one(scenario: &Scenario, seed: u64, result: &mut ScenarioResult) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(scenario, seed)))
        .unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .map_or_else(|| "panicked".into(), |m| format!("panicked: {m}")))
        });
    result.seeds += 1;
    match outcome {
        Ok(t) => result.tally.add(&t),
        Err(e) => {
            // At once, so a long run shows its failures as they happen.
            eprintln!(
                "FAILED {} seed {seed}: {}\n  replay: {}",
                scenario.name,
                e.lines().next().unwrap_or(""),
                replay(scenario, seed)
            );
            result.failures.push((seed, e));
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn tally_json(t: &Tally) -> String {
    format!(
        "\"connections\": {}, \"bytes_verified\": {}, \"frames_delivered\": {}, \"faults\": {{\"dropped\": {}, \"duplicated\": {}, \"reordered\": {}, \"delayed\": {}, \"corrupted\": {}}}, \"checksum_drops\": {}, \"time_wait_reused\": {}, \"resets\": {}, \"refused_after_abort_retried\": {}, \"virtual_seconds\": {:.1}",
        t.connections,
        t.bytes_verified,
        t.frames,
        t.lost,
        t.duplicated,
        t.reordered,
        t.delayed,
        t.corrupted,
        t.checksum_drops,
        t.tw_reused,
        t.resets,
        t.refused_retried,
        t.virtual_secs
    )
}

#[test]
fn campaign_delivers_every_byte_once_in_order_to_its_own_connection() {
    let only = std::env::var("SHARDNET_SCENARIO").ok();
    let scenarios: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name))
        .collect();
    assert!(!scenarios.is_empty(), "no scenario named {only:?}");
    let started = std::time::Instant::now();
    let mut results: Vec<ScenarioResult> = scenarios
        .iter()
        .map(|_| ScenarioResult::default())
        .collect();
    if let Some(seed) = env::<u64>("SHARDNET_SEED") {
        for (s, r) in scenarios.iter().zip(&mut results) {
            run_one(s, seed, r);
        }
    } else if let Some(secs) = env::<f64>("SHARDNET_CAMPAIGN_SECS") {
        let budget = std::time::Duration::from_secs_f64(secs);
        let mut seed = 0;
        loop {
            for (s, r) in scenarios.iter().zip(&mut results) {
                run_one(s, seed, r);
            }
            seed += 1;
            if started.elapsed() >= budget {
                break;
            }
        }
    } else {
        let count = env::<u64>("SHARDNET_CAMPAIGN_SEEDS");
        for (s, r) in scenarios.iter().zip(&mut results) {
            for seed in 0..count.unwrap_or(s.seeds) {
                run_one(s, seed, r);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    // The table.
    let mut total = ScenarioResult::default();
    let mut table = format!(
        "{:<18} {:>6} {:>6} {:>12} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}\n",
        "scenario",
        "seeds",
        "conns",
        "bytes",
        "frames",
        "dropped",
        "dup",
        "reorder",
        "delayed",
        "corrupt",
        "csum",
        "failures"
    );
    for (s, r) in scenarios.iter().zip(&results) {
        let t = &r.tally;
        let _ = writeln!(
            table,
            "{:<18} {:>6} {:>6} {:>12} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
            s.name,
            r.seeds,
            t.connections,
            t.bytes_verified,
            t.frames,
            t.lost,
            t.duplicated,
            t.reordered,
            t.delayed,
            t.corrupted,
            t.checksum_drops,
            r.failures.len()
        );
        total.seeds += r.seeds;
        total.tally.add(t);
    }
    let failures: usize = results.iter().map(|r| r.failures.len()).sum();
    let t = &total.tally;
    let _ = writeln!(
        table,
        "{:<18} {:>6} {:>6} {:>12} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
        "total",
        total.seeds,
        t.connections,
        t.bytes_verified,
        t.frames,
        t.lost,
        t.duplicated,
        t.reordered,
        t.delayed,
        t.corrupted,
        t.checksum_drops,
        failures
    );
    let _ = writeln!(
        table,
        "{:.1} s wall ({} build), {:.0} s virtual; TIME-WAIT 4-tuples reused: {}; connections reset: {}; connects refused after an abort and retried: {}",
        elapsed,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        t.virtual_secs,
        t.tw_reused,
        t.resets,
        t.refused_retried
    );
    for (s, r) in scenarios.iter().zip(&results) {
        for (seed, e) in &r.failures {
            let _ = writeln!(
                table,
                "FAILED {} seed {seed}: {e}\n  replay: {}",
                s.name,
                replay(s, *seed)
            );
        }
    }
    println!("{table}");

    if let Some(path) = std::env::var_os("SHARDNET_CAMPAIGN_JSON") {
        let mut json = String::from("{\n  \"scenarios\": [\n");
        for (i, (s, r)) in scenarios.iter().zip(&results).enumerate() {
            let fails: Vec<String> = r
                .failures
                .iter()
                .map(|(seed, e)| {
                    format!(
                        "{{\"seed\": {seed}, \"error\": {}, \"replay\": {}}}",
                        json_string(e),
                        json_string(&replay(s, *seed))
                    )
                })
                .collect();
            let _ = writeln!(
                json,
                "    {{\"name\": {}, \"about\": {}, \"client_shards\": {}, \"server_shards\": {}, \"seeds\": {}, {}, \"failures\": [{}]}}{}",
                json_string(s.name),
                json_string(s.about),
                s.client_shards,
                s.server_shards,
                r.seeds,
                tally_json(&r.tally),
                fails.join(", "),
                if i + 1 < scenarios.len() { "," } else { "" }
            );
        }
        let _ = write!(
            json,
            "  ],\n  \"total\": {{\"seeds\": {}, {}, \"failures\": {failures}}},\n  \"wall_seconds\": {elapsed:.1},\n  \"build\": \"{}\"\n}}\n",
            total.seeds,
            tally_json(&total.tally),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        std::fs::write(&path, json).unwrap();
    }
    assert_eq!(failures, 0, "campaign failures (replay commands above)");
}
