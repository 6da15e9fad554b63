//! The shard's TCP endpoints: connections (TCBs) keyed by 4-tuple, listeners with their accept
//! queues, ephemeral ports, and the conversion between wire segments and the state machine's
//! segment values.
//!
//! Everything here is owned by one shard, so it needs no lock. Connections are found by
//! 4-tuple in a [`FlowTable`] reserved for `max_connections` up front. Each connection has one
//! entry on a hierarchical [`TimerWheel`] at its earliest timer, and a connection that a segment,
//! a timer or the application touched joins a ready list; `poll_output` and `on_timeout` visit
//! only those, so their cost does not grow with the number of idle connections.
//!
//! Two kinds of connection live in the flow table without a full TCB (the value carries a tag
//! bit beside the index, on the timer wheel too), as Linux keeps `request_sock` and
//! `inet_timewait_sock` beside full sockets:
//! - connection requests in SYN-RECEIVED ([`SynRequest`], the SYN queue), with their SYN-ACK
//!   retransmission timer; beyond a listener's SYN queue, SYN cookies keep no state at all;
//! - orphaned connections in TIME-WAIT ([`TimeWait`]), capped by
//!   [`TimeWaitConfig::max_buckets`].
//!
//! Their vectors (like the TCB slots') grow to their high-water mark and are reused through
//! free lists; a SYN flood beyond the SYN queue allocates nothing.

use super::bind_table::{BindOwner, BindTable};
mod in_place;

pub use in_place::{HeldFrame, IN_PLACE_ENTRIES, PayloadAt};

use super::flow_table::{FlowKey, FlowTable};
use super::steering::PortSteering;
use super::timer_wheel::{TimerId, TimerWheel};
use crate::errno::errno_enum;
use crate::port::RssConfig;
use crate::socket::events::{Event, EventQueue, Readiness, Seen};
use crate::socket::handle::SocketHandle;
use crate::socket::introspect::{ConnectionInfo, StateHistogram};
use crate::tcp::fastopen::{ActiveOutcome, ClientCache, ServerKeys};
use crate::tcp::isn::IsnGenerator;
use crate::tcp::listener::{RequestVerdict, SynRequest};
use crate::tcp::segment::{Flags, Incoming, Options, Outgoing, Timestamps};
use crate::tcp::send_buffer::SendBuffer;
use crate::tcp::syncookie::{SynCookies, decode_timestamp};
use crate::tcp::time_wait::{TimeWait, Verdict};
use crate::tcp::{SeqNum, State, Tcb, TcpConfig, TimerKind};
use crate::time::{Duration, Instant};
use crate::wire::tcp as wire_tcp;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A connection of a shard. Stale handles (of a closed and reused slot) fail with `EBADF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpHandle {
    index: u32,
    generation: u32,
}

impl TcpHandle {
    /// The slot index (stable while the connection lives; for tables kept beside the shard's).
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// A listener of a shard (several may share a port with `SO_REUSEPORT`). Stale handles (of a
/// closed listener) fail with `EBADF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenHandle {
    index: u32,
    generation: u32,
    port: u16,
}

impl ListenHandle {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    #[cfg(test)]
    pub(crate) fn for_tests(index: u32) -> Self {
        ListenHandle {
            index,
            generation: 0,
            port: 0,
        }
    }
}

/// Address reuse options of a listener (`SO_REUSEADDR`, `SO_REUSEPORT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// `SO_REUSEADDR`: the port may be taken while connections on it remain (TIME-WAIT ones
    /// typically).
    pub addr: bool,
    /// `SO_REUSEPORT`: several listeners may share the port; incoming SYNs are spread over them.
    pub port: bool,
}

errno_enum!(
    /// Why `listen` failed.
    ListenError {
        /// Another listener has the port.
        AddrInUse => "EADDRINUSE",
        /// Backlog of zero connections.
        InvalidBacklog => "EINVAL",
    }
);

errno_enum!(
    /// Why `accept` returned nothing.
    AcceptError {
        /// No completed connection is waiting.
        WouldBlock => "EAGAIN",
        /// The handle names no listener.
        BadHandle => "EBADF",
    }
);

errno_enum!(
    /// Why `connect` failed at once.
    ConnectError {
        /// No ephemeral port is free for this destination (on any of the addresses tried), or
        /// the 4-tuple of an explicitly bound port is in use.
        AddrNotAvailable => "EADDRNOTAVAIL",
        /// The explicitly bound port is taken (by a listener or a bound connection, here or on
        /// another shard of the runtime), as `bind` reports it on Linux.
        AddrInUse => "EADDRINUSE",
        /// No route to the destination.
        NetUnreachable => "ENETUNREACH",
        /// Too many connections.
        NoBuffers => "ENOBUFS",
    }
);

/// A listener: its accept queue, bounded by the backlog.
#[derive(Debug)]
struct Listener {
    port: u16,
    reuse: Reuse,
    /// Settings of the connections it accepts (socket options inherited by accepted sockets).
    config: TcpConfig,
    /// `SO_LINGER` inherited by accepted connections.
    linger: Option<Duration>,
    /// Position of its entry in the event queue.
    event_at: Option<u32>,
    backlog: usize,
    /// Connection requests (SYN-RECEIVED, compact entries) of this listener now.
    syn_queue: usize,
    /// Most requests at once (the SYN queue's limit; Linux's is the backlog,
    /// `inet_csk_reqsk_queue_is_full`, which is the default here too).
    syn_limit: usize,
    /// `TCP_DEFER_ACCEPT` in SYN-ACK retransmissions (0: off).
    defer_accept: u8,
    /// `TCP_FASTOPEN`: most Fast Open connections not yet past their handshake (0: off).
    fast_open_qlen: usize,
    /// Fast Open connections whose final ACK has not arrived yet (Linux `fastopenq.qlen`).
    fast_open_pending: usize,
    /// Completed connections waiting for `accept`, oldest first.
    accept_queue: VecDeque<TcpHandle>,
    /// Holds a claim on its port in the runtime's shared [`BindTable`].
    claimed: bool,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    tcb: Option<Tcb>,
    /// The listener (index) this connection came from, until it is accepted.
    listener: Option<u32>,
    /// The application holds a handle.
    owned: bool,
    /// The connection's entry on the timer wheel, at its earliest timer.
    timer: Option<TimerId>,
    /// The connection is on the ready list (to be polled for output and rescheduled).
    ready: bool,
    /// `SO_LINGER` as set on the socket, applied by `close`.
    linger: Option<Duration>,
    /// After `close` with a linger time: when to reset if data is still unacknowledged.
    linger_at: Option<Instant>,
    /// `shutdown(SHUT_RD)` was called: reads that would block return end of stream.
    read_shut: bool,
    /// Position of its entry in the event queue.
    event_at: Option<u32>,
    /// A Fast Open connection of this listener (index), counted in its `fast_open_pending`
    /// until its handshake completes.
    fast_open_of: Option<u32>,
    /// Counted in `EndpointStats::curr_estab` (ESTABLISHED or CLOSE-WAIT when last synced).
    estab: bool,
    /// The connection's retransmission count already added to `EndpointStats::retrans_segs`.
    retrans_seen: u64,
    /// Explicitly bound (`bind` to a port, then `connect`): holds a claim on its local port in
    /// the runtime's shared [`BindTable`], given back when the connection leaves the table.
    bound: bool,
}

/// Brings the shard-wide CurrEstab and RetransSegs counters up to date with one connection, in
/// O(1), so that reading them never scans the table (the runtime publishes counters every
/// millisecond). Called when a segment or a poll has touched the connection and when it leaves
/// the table.
fn sync_counters(estab: &mut bool, retrans_seen: &mut u64, tcb: &Tcb, stats: &mut EndpointStats) {
    let now_estab = matches!(tcb.state(), State::Established | State::CloseWait);
    if now_estab != *estab {
        *estab = now_estab;
        if now_estab {
            stats.curr_estab += 1;
        } else {
            stats.curr_estab = stats.curr_estab.saturating_sub(1);
        }
    }
    let retrans = tcb.stats().retrans_segs;
    stats.retrans_segs += retrans.saturating_sub(*retrans_seen);
    *retrans_seen = retrans;
}

impl Slot {
    /// The earliest deadline of the connection: its own timers and the linger deadline.
    fn deadline(&self) -> Option<Instant> {
        let tcb = self.tcb.as_ref()?.next_timer();
        match (tcb, self.linger_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the linger deadline if due: data (or our FIN) still unacknowledged resets the
    /// connection. Returns true if it fired.
    fn run_linger(&mut self, now: Instant) -> bool {
        if self.linger_at.is_none_or(|t| t > now) {
            return false;
        }
        self.linger_at = None;
        if let Some(tcb) = self.tcb.as_mut()
            && !matches!(
                tcb.state(),
                State::FinWait2 | State::TimeWait | State::Closed
            )
        {
            // RFC 9293 3.10.7: an abort sends <SEQ=SND.NXT><CTL=RST>.
            tcb.abort(now);
        }
        true
    }
}

/// A compact TIME-WAIT entry of the shard: the protocol state and its 2*MSL timer. Flow-table
/// and timer-wheel values of these entries carry [`TW_TAG`] beside their index.
#[derive(Clone, Copy, Debug)]
struct TwSlot {
    tw: TimeWait,
    timer: TimerId,
}

/// Marks a flow-table or timer-wheel value as the index of a TIME-WAIT entry (not a slot).
const TW_TAG: u32 = 1 << 31;

/// Marks a flow-table or timer-wheel value as the index of a connection request.
const REQ_TAG: u32 = 1 << 30;

/// A connection request (SYN-RECEIVED) of the shard: the compact entry, its listener and its
/// SYN-ACK timer.
#[derive(Clone, Copy, Debug)]
struct ReqSlot {
    req: SynRequest,
    listener: u32,
    timer: TimerId,
    /// The SYN asked for a Fast Open cookie (or brought a bad one): SYN-ACKs carry ours.
    offer_cookie: bool,
}

/// TIME-WAIT settings of a shard (Linux `net.ipv4.tcp_max_tw_buckets`, `tcp_tw_reuse`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWaitConfig {
    /// Most TIME-WAIT entries at once. When it is reached, a connection that would enter
    /// TIME-WAIT is closed at once instead, and `TCPTimeWaitOverflow` counts it (Linux
    /// `tcp_time_wait`: "TCP: time wait bucket table overflow").
    pub max_buckets: usize,
    /// `tcp_tw_reuse`: an active open may take the 4-tuple of a TIME-WAIT entry when
    /// timestamps make it safe (see [`TimeWait::reusable`]). Linux's default (2) allows it on
    /// loopback only; off here by default.
    pub reuse: bool,
}

/// When listeners answer SYNs with SYN cookies (Linux `net.ipv4.tcp_syncookies`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SynCookieMode {
    /// Never: a SYN beyond a full SYN queue is dropped (`tcp_syncookies = 0`).
    Off,
    /// When a listener's SYN queue is full (`tcp_syncookies = 1`, Linux's default).
    #[default]
    OnOverflow,
    /// For every SYN, keeping no request at all (`tcp_syncookies = 2`).
    Always,
}

#[derive(Debug)]
struct ListenerSlot {
    generation: u32,
    listener: Option<Listener>,
}

/// Takes the 4-tuple of connection `index` out of the flow table if it still maps to it. A
/// connection is unhashed as soon as it reaches CLOSED, even while the application still
/// holds its handle (to read the error or call `close`): Linux's `tcp_done` ->
/// `tcp_set_state(TCP_CLOSE)` unhashes the socket at once, so that a new incarnation's SYN
/// reaches the listener instead of being answered with a RST by the dead connection (found by
/// the Monte-Carlo campaign, `stack/tests/campaign.rs`, scenario churn-tuple-reuse).
fn unhash_closed(
    flows: &mut FlowTable,
    wheel: &mut TimerWheel<u32>,
    index: u32,
    tcb: &Tcb,
    timer: &mut Option<TimerId>,
) {
    let key = FlowKey::new(tcb.local(), tcb.remote());
    if flows.get(&key) == Some(index) {
        flows.remove(&key);
    }
    // The wheel is sized for the flow table: an entry that leaves the table leaves the wheel
    // at once, or a connection admitted in its place could find the wheel full (a CLOSED
    // connection has no timer left to run).
    if let Some(id) = timer.take() {
        wheel.cancel(id);
    }
}

/// Counters of the TCP endpoint table (the shard merges them into its `Tcp:` group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Active opens (`connect`).
    pub active_opens: u64,
    /// Passive opens (SYNs accepted by a listener).
    pub passive_opens: u64,
    /// Resets sent for segments that matched no connection or listener.
    pub out_rsts: u64,
    /// SYNs dropped because the listener's queue was full (Linux ListenOverflows).
    pub listen_overflows: u64,
    /// Connections established.
    pub established: u64,
    /// Connections reset by the peer.
    pub estab_resets: u64,
    /// Connections created from a SYN with a valid Fast Open cookie (Linux
    /// `TCPFastOpenPassive`).
    pub fast_open_passive: u64,
    /// SYNs with an invalid Fast Open cookie (Linux `TCPFastOpenPassiveFail`).
    pub fast_open_passive_fail: u64,
    /// SYNs asking for a Fast Open cookie (Linux `TCPFastOpenCookieReqd`).
    pub fast_open_cookie_reqd: u64,
    /// Valid Fast Open SYNs handled as plain ones because too many Fast Open connections were
    /// pending (Linux `TCPFastOpenListenOverflow`).
    pub fast_open_listen_overflow: u64,
    /// Active opens whose SYN data was acknowledged (Linux `TCPFastOpenActive`).
    pub fast_open_active: u64,
    /// Active opens whose SYN data was not acknowledged or whose SYN was lost (Linux
    /// `TCPFastOpenActiveFail`).
    pub fast_open_active_fail: u64,
    /// SYN cookies sent (Linux `SyncookiesSent`).
    pub syncookies_sent: u64,
    /// Valid SYN cookies received: connections built from them (Linux `SyncookiesRecv`).
    pub syncookies_recv: u64,
    /// ACKs checked as SYN cookies that failed (Linux `SyncookiesFailed`).
    pub syncookies_failed: u64,
    /// SYNs answered with a cookie because the SYN queue was full (Linux
    /// `TCPReqQFullDoCookies`).
    pub req_q_full_do_cookies: u64,
    /// Bare final ACKs dropped while `TCP_DEFER_ACCEPT` waits for data (Linux
    /// `TCPDeferAcceptDrop`).
    pub defer_accept_drops: u64,
    /// TIME-WAIT entries that ended after their 2*MSL (Linux `TW`, TimeWaited).
    pub tw: u64,
    /// TIME-WAIT 4-tuples taken over by an active open (Linux `TWRecycled`, `tcp_tw_reuse`).
    pub tw_recycled: u64,
    /// TIME-WAIT entries ended early by a new incarnation's SYN (RFC 6191). Linux counts no MIB
    /// there (its `TWKilled` counted entries cut short by the removed `tcp_tw_recycle`); here
    /// `TWKilled` counts these.
    pub tw_killed: u64,
    /// Connections closed without TIME-WAIT because `max_buckets` entries existed (Linux
    /// `TCPTimeWaitOverflow`).
    pub tw_overflow: u64,
    /// Connection attempts that failed: SYN-SENT or SYN-RECEIVED to CLOSED (Linux
    /// `AttemptFails`, counted in `tcp_done` and for requests reset in `tcp_check_req`).
    pub attempt_fails: u64,
    /// Segments retransmitted (Linux `RetransSegs`), counted as connections are polled.
    pub retrans_segs: u64,
    /// Connections now in ESTABLISHED or CLOSE-WAIT (Linux `CurrEstab`), kept up to date
    /// without a table scan: at once for segments, and for changes made by the application or
    /// a timer (a `close` that leaves CLOSE-WAIT, a retransmission timeout) at the next
    /// `poll_output`.
    pub curr_estab: u64,
    /// SYNs or final ACKs a listener dropped for any reason (Linux `ListenDrops`:
    /// `ListenOverflows` plus full SYN queues, full tables).
    pub listen_drops: u64,
    /// SYNs dropped because the SYN queue was full (Linux `TCPReqQFullDrop`).
    pub req_q_full_drops: u64,
    /// Active opens refused with `EADDRNOTAVAIL`: no ephemeral port free for the destination
    /// (Linux counts none; named `TCPEphemeralPortExhausted` here).
    pub port_exhausted: u64,
}

/// How much of its tables a [`TcpEndpoints`] uses (see [`TcpEndpoints::usage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableUsage {
    /// Flow-table entries (TCBs, requests and TIME-WAIT entries).
    pub flows: usize,
    /// TCB slots ever allocated (in use or free).
    pub slots: usize,
    /// Request entries ever allocated (in use or free).
    pub requests: usize,
    /// TIME-WAIT entries ever allocated (in use or free).
    pub time_wait: usize,
    /// Bytes held by the slot, request and TIME-WAIT vectors (their capacity; the TCBs' own
    /// buffers not counted).
    pub bytes: usize,
}

/// All TCP endpoints of a shard.
pub struct TcpEndpoints {
    config: TcpConfig,
    isn: IsnGenerator,
    slots: Vec<Slot>,
    free: Vec<u32>,
    flows: FlowTable,
    wheel: TimerWheel<u32>,
    /// Connections touched since the last `poll_output`, each once (see `Slot::ready`).
    ready: Vec<u32>,
    listeners: Vec<ListenerSlot>,
    free_listeners: Vec<u32>,
    /// Listeners by port: one, or a `SO_REUSEPORT` group. Looked up for every SYN and for
    /// every ephemeral port tried by `connect`, so hashed with keyed `ahash` rather than
    /// SipHash (the ports are the application's, but a keyed hash costs nothing more).
    by_port: HashMap<u16, Vec<u32>, ahash::RandomState>,
    /// Readiness events for the application (see `socket::events`).
    events: EventQueue,
    /// Secret mixed into the `SO_REUSEPORT` hash, so that peers cannot aim at one listener.
    reuseport_key: u64,
    steering: PortSteering,
    max_connections: usize,
    /// Connection requests (`None`: free, listed in `req_free`).
    reqs: Vec<Option<ReqSlot>>,
    req_free: Vec<u32>,
    req_count: usize,
    /// Requests whose SYN-ACK timer fired, between the wheel's walk and their handling.
    req_fired: Vec<u32>,
    /// Compact TIME-WAIT entries (`None`: free, listed in `tw_free`).
    tw: Vec<Option<TwSlot>>,
    tw_free: Vec<u32>,
    tw_count: usize,
    tw_config: TimeWaitConfig,
    cookies: SynCookies,
    cookie_mode: SynCookieMode,
    /// Fast Open cookie secrets (server side).
    tfo_keys: ServerKeys,
    /// Fast Open cookies of servers (client side).
    tfo_cache: ClientCache,
    /// When the last SYN cookie was sent: ACKs are checked as cookies only within 2 minutes of
    /// it (Linux `tcp_synq_no_recent_overflow`).
    cookie_sent_at: Option<Instant>,
    stats: EndpointStats,
    /// Stray segments to answer with RST: (local, remote, segment to send).
    strays: VecDeque<(SocketAddrV4, SocketAddrV4, Outgoing)>,
    /// The runtime's bind table shared by its shards, and who this shard is in it; `None` for
    /// a shard on its own (its own checks are the whole story).
    bind: Option<(Arc<BindTable>, BindOwner)>,
    /// Received bytes left in held frames (zero-copy receive, `shard/tcp/in_place.rs`).
    in_place: in_place::InPlaceTable,
}

impl Drop for TcpEndpoints {
    /// Gives back the shared bind table's claims of the listeners and bound connections still
    /// open (a shard that stops without closing them must not leave their ports taken).
    fn drop(&mut self) {
        let Some((table, _)) = &self.bind else {
            return;
        };
        for l in self.listeners.iter().filter_map(|l| l.listener.as_ref()) {
            if l.claimed {
                table.release(l.port);
            }
        }
        for s in &self.slots {
            if s.bound
                && let Some(tcb) = s.tcb.as_ref()
            {
                table.release(tcb.local().port());
            }
        }
    }
}

impl fmt::Debug for TcpEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpEndpoints")
            .field("connections", &self.flows.len())
            .field("listeners", &self.by_port.len())
            .finish_non_exhaustive()
    }
}

/// Servers whose Fast Open cookies a shard remembers.
const TFO_CACHE_SIZE: usize = 1024;

/// Granularity of connection timers.
const TIMER_TICK: crate::time::Duration = crate::time::Duration::from_millis(1);

/// Largest number of segments sent on no TCB's behalf (stray RSTs, SYN-ACKs of requests,
/// TIME-WAIT ACKs) queued between two transmits.
const MAX_STRAYS: usize = 1024;

/// Linux `tcp_done`: "if (sk->sk_state == TCP_SYN_SENT || sk->sk_state == TCP_SYN_RECV)
/// TCP_INC_STATS(sock_net(sk), TCP_MIB_ATTEMPTFAILS)".
fn count_attempt_fail(stats: &mut EndpointStats, before: State, after: State) {
    if matches!(before, State::SynSent | State::SynReceived) && after == State::Closed {
        stats.attempt_fails += 1;
    }
}

/// Converts a parsed wire segment into the state machine's view.
pub fn incoming<'a>(repr: &wire_tcp::Repr<'a>) -> Incoming<'a> {
    // The wire's `Repr` keeps ACK out of its flags (the acknowledgment number says it); the state
    // machine's segments carry it as a flag.
    let mut flags = repr.flags;
    if repr.ack_number.is_some() {
        flags |= Flags::ACK;
    }
    let mut options = Options {
        mss: repr.max_seg_size,
        window_scale: repr.window_scale,
        sack_permitted: repr.sack_permitted,
        fast_open: repr.fast_open,
        timestamps: repr.timestamp.map(|t| Timestamps {
            tsval: t.tsval,
            tsecr: t.tsecr,
        }),
        ..Options::default()
    };
    for b in repr.sack_ranges.iter() {
        if options
            .sack_blocks
            .try_push((SeqNum(b.left), SeqNum(b.right)))
            .is_err()
        {
            break;
        }
    }
    Incoming {
        seq: SeqNum(repr.seq_number),
        ack: SeqNum(repr.ack_number.unwrap_or(0)),
        flags,
        window: repr.window_len,
        options,
        payload: repr.payload,
    }
}

/// The wire header of an outgoing segment (the payload is copied separately).
pub fn outgoing_repr(
    local: SocketAddrV4,
    remote: SocketAddrV4,
    seg: &Outgoing,
) -> wire_tcp::Repr<'static> {
    let mut sack = wire_tcp_option_blocks();
    for (l, r) in seg.options.sack_blocks.iter() {
        let _ = sack.push(crate::wire::tcp_option::SackBlock {
            left: l.get(),
            right: r.get(),
        });
    }
    let flags = seg.flags.difference(Flags::ACK);
    wire_tcp::Repr {
        src_port: local.port(),
        dst_port: remote.port(),
        seq_number: seg.seq.get(),
        ack_number: seg.flags.ack().then_some(seg.ack.get()),
        flags,
        window_len: seg.window,
        urgent_at: 0,
        max_seg_size: seg.options.mss,
        window_scale: seg.options.window_scale,
        sack_permitted: seg.options.sack_permitted,
        sack_ranges: sack,
        timestamp: seg.options.timestamps.map(|t| wire_tcp::TcpTimestamp {
            tsval: t.tsval,
            tsecr: t.tsecr,
        }),
        fast_open: seg.options.fast_open,
        payload: &[],
    }
}

fn wire_tcp_option_blocks() -> crate::wire::tcp_option::SackBlocks {
    crate::wire::tcp_option::SackBlocks::new()
}

impl TcpEndpoints {
    /// An empty table for up to `max_connections` connections, whose flow table, timer wheel
    /// and ready list are reserved now. `isn_key` keys the RFC 6528 ISN generator and the flow
    /// table's hash (peers choose 4-tuples, so the hash must be keyed).
    pub fn new(config: TcpConfig, isn_key: [u8; 16], max_connections: usize) -> Self {
        let mut flow_key = isn_key;
        flow_key.reverse();
        let mut port_key = isn_key;
        port_key.rotate_left(4);
        TcpEndpoints {
            config,
            isn: IsnGenerator::new(isn_key),
            slots: Vec::new(),
            free: Vec::new(),
            flows: FlowTable::with_capacity(max_connections, flow_key),
            // Linux's timer granularity (HZ = 1000): deadlines round up to the millisecond.
            wheel: TimerWheel::new(max_connections, TIMER_TICK, Instant::ZERO),
            ready: Vec::with_capacity(max_connections),
            listeners: Vec::new(),
            free_listeners: Vec::new(),
            by_port: HashMap::with_hasher(crate::keyed_hash::keyed_state(port_key)),
            events: EventQueue::with_capacity(max_connections),
            reuseport_key: u64::from_le_bytes([
                isn_key[3], isn_key[1], isn_key[4], isn_key[1], isn_key[5], isn_key[9], isn_key[2],
                isn_key[6],
            ]),
            // RFC 6056's secret, derived from the shard's secret like the others below.
            steering: PortSteering::with_secret(None, 0, {
                let mut k = isn_key;
                k.rotate_left(3);
                for b in &mut k {
                    *b ^= 0x36;
                }
                k
            }),
            max_connections,
            reqs: Vec::new(),
            req_free: Vec::new(),
            req_count: 0,
            req_fired: Vec::new(),
            tw: Vec::new(),
            tw_free: Vec::new(),
            tw_count: 0,
            tw_config: TimeWaitConfig {
                max_buckets: max_connections,
                reuse: false,
            },
            cookies: SynCookies::new({
                let mut k = isn_key;
                k.rotate_left(5);
                for b in &mut k {
                    *b ^= 0x5c;
                }
                k
            }),
            cookie_mode: SynCookieMode::default(),
            tfo_keys: ServerKeys::new({
                let mut k = isn_key;
                k.rotate_left(9);
                for b in &mut k {
                    *b ^= 0xa7;
                }
                k
            }),
            tfo_cache: ClientCache::with_capacity(TFO_CACHE_SIZE),
            cookie_sent_at: None,
            stats: EndpointStats::default(),
            strays: VecDeque::new(),
            bind: None,
            in_place: in_place::InPlaceTable::default(),
        }
    }

    /// Joins the runtime's bind table as `owner` (the runtime does this for each shard before
    /// any `listen`): from then on `listen` and bound `connect`s claim their ports there, and
    /// ephemeral ports skip every port bound on any shard. See [`BindTable`].
    pub fn set_bind_table(&mut self, table: Arc<BindTable>, owner: BindOwner) {
        self.bind = Some((table, owner));
    }

    /// The shared bind table, if this shard has joined one.
    pub fn bind_table(&self) -> Option<&Arc<BindTable>> {
        self.bind.as_ref().map(|(t, _)| t)
    }

    /// Claims `port` in the shared bind table as `owner` (this shard if `None`); true without
    /// a table, or if the claim succeeded.
    fn claim_port(&self, port: u16, owner: Option<BindOwner>, reuse_port: bool) -> bool {
        match &self.bind {
            None => true,
            Some((table, me)) => table.claim(port, owner.unwrap_or(*me), reuse_port).is_ok(),
        }
    }

    fn release_port(&self, port: u16) {
        if let Some((table, _)) = &self.bind {
            table.release(port);
        }
    }

    /// The default configuration of new connections.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Sets the default configuration of new connections.
    pub fn set_config(&mut self, config: TcpConfig) {
        self.config = config;
    }

    /// When SYN cookies are used (default: when a SYN queue is full, as Linux).
    pub fn set_syncookies(&mut self, mode: SynCookieMode) {
        self.cookie_mode = mode;
    }

    /// The SYN cookie mode.
    pub fn syncookies(&self) -> SynCookieMode {
        self.cookie_mode
    }

    /// Replaces the SYN cookie secret with `key` (drawn at random by the caller, e.g. the
    /// runtime every few minutes); cookies sent under the previous one stay valid for their
    /// lifetime (see [`SynCookies::rotate`]).
    pub fn rotate_syncookie_secret(&mut self, now: Instant, key: [u8; 16]) {
        self.cookies.rotate(now, key);
    }

    /// TIME-WAIT settings.
    pub fn time_wait_config(&self) -> TimeWaitConfig {
        self.tw_config
    }

    /// Changes the TIME-WAIT settings (entries beyond a lowered cap stay until they expire).
    pub fn set_time_wait_config(&mut self, config: TimeWaitConfig) {
        self.tw_config = config;
    }

    /// Compact TIME-WAIT entries now.
    pub fn time_wait_count(&self) -> usize {
        self.tw_count
    }

    /// Segments retransmitted, by every connection the table has had (Linux `RetransSegs`).
    pub fn retrans_segs(&self) -> u64 {
        self.stats.retrans_segs
    }

    /// The size of the tables: what a flood must not grow.
    pub fn usage(&self) -> TableUsage {
        use core::mem::size_of;
        TableUsage {
            flows: self.flows.len(),
            slots: self.slots.len(),
            requests: self.reqs.len(),
            time_wait: self.tw.len(),
            bytes: self.slots.capacity() * size_of::<Slot>()
                + self.reqs.capacity() * size_of::<Option<ReqSlot>>()
                + self.tw.capacity() * size_of::<Option<TwSlot>>(),
        }
    }

    /// Connection requests (SYN-RECEIVED compact entries) now.
    pub fn request_count(&self) -> usize {
        self.req_count
    }

    /// Connections holding a full TCB (any state; TIME-WAIT ones the application still holds
    /// included, compact TIME-WAIT entries not).
    pub fn tcb_count(&self) -> usize {
        self.flows
            .len()
            .saturating_sub(self.tw_count + self.req_count)
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Connections in the table (any state, TIME-WAIT included).
    pub fn connection_count(&self) -> usize {
        self.flows.len()
    }

    /// Connections in `state` (compact TIME-WAIT entries count as TIME-WAIT). This scans the
    /// table: for diagnostics and tests, not for anything run per packet or per loop.
    pub fn count_in(&self, state: State) -> usize {
        let tcbs = self
            .slots
            .iter()
            .filter(|s| s.tcb.as_ref().is_some_and(|t| t.state() == state))
            .count();
        match state {
            State::TimeWait => tcbs + self.tw_count,
            State::SynReceived => tcbs + self.req_count,
            _ => tcbs,
        }
    }

    /// Checks that every connection with a timer can be reached by the timer code: it is on
    /// the ready list, or its wheel entry is live and due no later than its earliest timer;
    /// and that the wheel holds no more entries than the flow table (it has room for as many).
    /// A connection that is neither would never fire again (found by the `tcp_stateful` fuzz
    /// target). Scans the table: for tests and fuzzing, not for anything run per packet.
    #[doc(hidden)]
    pub fn check_timers(&self) -> Result<(), String> {
        if self.wheel.len() > self.flows.len() {
            return Err(format!(
                "{} timer wheel entries for {} flow-table entries",
                self.wheel.len(),
                self.flows.len()
            ));
        }
        for (index, s) in self.slots.iter().enumerate() {
            let (Some(tcb), Some(due)) = (s.tcb.as_ref(), s.deadline()) else {
                continue;
            };
            if let Some(t) = tcb.next_timer().filter(|_| tcb.is_closed()) {
                return Err(format!("slot {index}: CLOSED with a timer due {t:?}"));
            }
            if s.ready {
                if !self.ready.contains(&(index as u32)) {
                    return Err(format!("slot {index} is marked ready but not on the list"));
                }
                continue;
            }
            match s.timer.and_then(|id| self.wheel.deadline(id)) {
                Some(at) if at <= due => {}
                wheel => {
                    return Err(format!(
                        "slot {index} {} {} -> {}: due {due:?}, wheel {wheel:?} ({} of {} \
                         entries), not ready",
                        tcb.state().name(),
                        tcb.local(),
                        tcb.remote(),
                        self.wheel.len(),
                        self.wheel.capacity()
                    ));
                }
            }
        }
        Ok(())
    }

    /// One line per connection, like `ss -tn`: state, addresses, and whether the application
    /// still holds it.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for s in &self.slots {
            if let Some(t) = &s.tcb {
                out.push_str(&format!(
                    "{:<11} {} -> {} owned={} next={:?} {:?}\n",
                    t.state().name(),
                    t.local(),
                    t.remote(),
                    s.owned,
                    t.poll_timeout(),
                    t
                ));
            }
        }
        for e in self.reqs.iter().flatten() {
            out.push_str(&format!(
                "{:<11} {} -> {} request retries={} next={:?}\n",
                State::SynReceived.name(),
                e.req.local(),
                e.req.remote(),
                e.req.retries(),
                self.wheel.deadline(e.timer),
            ));
        }
        for e in self.tw.iter().flatten() {
            out.push_str(&format!(
                "{:<11} {} -> {} compact next={:?}\n",
                State::TimeWait.name(),
                e.tw.local(),
                e.tw.remote(),
                self.wheel.deadline(e.timer),
            ));
        }
        out
    }

    /// The connection of `h`, if the handle is current.
    pub fn get(&self, h: TcpHandle) -> Option<&Tcb> {
        let s = self.slots.get(h.index as usize)?;
        if s.generation != h.generation || !s.owned {
            return None;
        }
        s.tcb.as_ref()
    }

    /// The connection of `h`, mutably: `send`, `recv`, `shutdown_write`, options. The
    /// connection joins the ready list: what the application did may have made output due.
    pub fn get_mut(&mut self, h: TcpHandle) -> Option<&mut Tcb> {
        let s = self.slots.get_mut(h.index as usize)?;
        if s.generation != h.generation || !s.owned {
            return None;
        }
        if !s.ready {
            s.ready = true;
            self.ready.push(h.index);
        }
        s.tcb.as_mut()
    }

    /// Puts connection `index` on the ready list.
    fn touch(&mut self, index: u32) {
        if let Some(s) = self.slots.get_mut(index as usize)
            && !s.ready
        {
            s.ready = true;
            self.ready.push(index);
        }
    }

    /// `listen` on `port` with an accept queue of `backlog` connections, the shard's default
    /// settings and no address reuse.
    ///
    /// Errors: `EINVAL` for a zero backlog or port 0, `EADDRINUSE` if the port is taken (see
    /// [`TcpEndpoints::listen_with`]).
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenHandle, ListenError> {
        let config = self.config;
        self.listen_with(port, backlog, config, Reuse::default(), None)
    }

    /// `listen` with the settings of the connections it will accept (`config`, `linger`) and
    /// its address reuse options.
    ///
    /// The port is taken (`EADDRINUSE`), as Linux `inet_csk_bind_conflict` decides:
    /// - by another listener, unless both set `SO_REUSEPORT` (`SO_REUSEADDR` never lets two
    ///   listeners share a port);
    /// - by any connection on the port (TIME-WAIT included), unless this listener sets
    ///   `SO_REUSEADDR` or `SO_REUSEPORT`. (Linux also looks at the connection's own flag;
    ///   here connections count as having it, which is what accepted connections of a listener
    ///   with `SO_REUSEADDR` inherit.)
    ///
    /// Errors: `EINVAL` for a zero backlog or port 0 (no automatic port for listeners),
    /// `EADDRINUSE` as above.
    ///
    /// With a shared bind table ([`TcpEndpoints::set_bind_table`]) the port must also be free
    /// on the other shards, or held there by `SO_REUSEPORT` listeners when this one sets it too.
    pub fn listen_with(
        &mut self,
        port: u16,
        backlog: usize,
        config: TcpConfig,
        reuse: Reuse,
        linger: Option<Duration>,
    ) -> Result<ListenHandle, ListenError> {
        self.listen_as(port, backlog, config, reuse, linger, None)
    }

    /// `listen` on behalf of the runtime's listen-on-every-shard group
    /// ([`BindTable::RUNTIME_GROUP`]): the group's listeners on the other shards do not make
    /// the port taken, anything else bound there does. Without a shared bind table, the same as
    /// [`TcpEndpoints::listen`].
    pub fn listen_in_group(
        &mut self,
        port: u16,
        backlog: usize,
    ) -> Result<ListenHandle, ListenError> {
        let config = self.config;
        self.listen_as(
            port,
            backlog,
            config,
            Reuse::default(),
            None,
            Some(BindTable::RUNTIME_GROUP),
        )
    }

    /// Whether binding local `port` with `reuse` conflicts with this shard's sockets (Linux
    /// `inet_csk_bind_conflict`): a listener on the port unless every one of them and this bind
    /// set SO_REUSEPORT; any connection or TIME-WAIT entry on the port unless SO_REUSEADDR or
    /// SO_REUSEPORT.
    fn bind_conflict(&self, port: u16, reuse: Reuse) -> bool {
        if let Some(group) = self.by_port.get(&port) {
            let all_share = group.iter().all(|&i| {
                self.listeners
                    .get(i as usize)
                    .and_then(|l| l.listener.as_ref())
                    .is_some_and(|l| l.reuse.port)
            });
            if !(reuse.port && all_share) {
                return true;
            }
        }
        !reuse.addr
            && !reuse.port
            && (self
                .slots
                .iter()
                .any(|s| s.tcb.as_ref().is_some_and(|t| t.local().port() == port))
                || self
                    .tw
                    .iter()
                    .flatten()
                    .any(|e| e.tw.local().port() == port))
    }

    fn listen_as(
        &mut self,
        port: u16,
        backlog: usize,
        config: TcpConfig,
        reuse: Reuse,
        linger: Option<Duration>,
        owner: Option<BindOwner>,
    ) -> Result<ListenHandle, ListenError> {
        if backlog == 0 || port == 0 {
            return Err(ListenError::InvalidBacklog);
        }
        if self.bind_conflict(port, reuse) {
            return Err(ListenError::AddrInUse);
        }
        // Last, the other shards (Linux `inet_csk_get_port` looks at every socket of the
        // port's bind bucket, whatever CPU opened it).
        if !self.claim_port(port, owner, reuse.port) {
            return Err(ListenError::AddrInUse);
        }
        let listener = Listener {
            port,
            reuse,
            config,
            linger,
            event_at: None,
            backlog,
            syn_queue: 0,
            syn_limit: backlog,
            defer_accept: 0,
            fast_open_qlen: 0,
            fast_open_pending: 0,
            accept_queue: VecDeque::with_capacity(backlog),
            claimed: self.bind.is_some(),
        };
        let index = match self.free_listeners.pop() {
            Some(i) => i,
            None => {
                self.listeners.push(ListenerSlot {
                    generation: 0,
                    listener: None,
                });
                (self.listeners.len() - 1) as u32
            }
        };
        let slot = &mut self.listeners[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.listener = Some(listener);
        self.by_port.entry(port).or_default().push(index);
        Ok(ListenHandle {
            index,
            generation: slot.generation,
            port,
        })
    }

    fn listener(&self, l: ListenHandle) -> Option<&Listener> {
        let slot = self.listeners.get(l.index as usize)?;
        if slot.generation != l.generation {
            return None;
        }
        slot.listener.as_ref()
    }

    fn listener_mut(&mut self, l: ListenHandle) -> Option<&mut Listener> {
        let slot = self.listeners.get_mut(l.index as usize)?;
        if slot.generation != l.generation {
            return None;
        }
        slot.listener.as_mut()
    }

    /// True if `l` names an open listener.
    pub fn is_listening(&self, l: ListenHandle) -> bool {
        self.listener(l).is_some()
    }

    /// The settings a listener gives the connections it accepts.
    pub fn listener_config(&self, l: ListenHandle) -> Option<&TcpConfig> {
        self.listener(l).map(|l| &l.config)
    }

    /// Changes the settings of the connections `l` will accept (socket options set on a
    /// listening socket are inherited by accepted sockets, as on Linux). False for a stale
    /// handle.
    pub fn set_listener_config(
        &mut self,
        l: ListenHandle,
        config: TcpConfig,
        linger: Option<Duration>,
    ) -> bool {
        match self.listener_mut(l) {
            Some(listener) => {
                listener.config = config;
                listener.linger = linger;
                true
            }
            None => false,
        }
    }

    /// The address reuse options of a listener.
    pub fn listener_reuse(&self, l: ListenHandle) -> Option<Reuse> {
        self.listener(l).map(|l| l.reuse)
    }

    /// The `SO_LINGER` a listener gives accepted connections.
    pub fn listener_linger(&self, l: ListenHandle) -> Option<Duration> {
        self.listener(l).and_then(|l| l.linger)
    }

    /// Sets the SYN queue limit of `l`: most connection requests (SYN-RECEIVED) at once,
    /// separate from the backlog, which bounds the accept queue (default: the backlog, as
    /// Linux's `inet_csk_reqsk_queue_is_full`). False for a stale handle or a zero limit.
    pub fn set_syn_queue_limit(&mut self, l: ListenHandle, limit: usize) -> bool {
        match self.listener_mut(l) {
            Some(listener) if limit > 0 => {
                listener.syn_limit = limit;
                true
            }
            _ => false,
        }
    }

    /// Connection requests (SYN-RECEIVED) of `l` now.
    pub fn syn_queue_len(&self, l: ListenHandle) -> usize {
        self.listener(l).map_or(0, |l| l.syn_queue)
    }

    /// `TCP_DEFER_ACCEPT` on `l`, in SYN-ACK retransmissions (Linux converts the option's
    /// seconds the same way, `secs_to_retrans`); 0 turns it off. False for a stale handle.
    pub fn set_defer_accept(&mut self, l: ListenHandle, retransmissions: u8) -> bool {
        match self.listener_mut(l) {
            Some(listener) => {
                listener.defer_accept = retransmissions;
                true
            }
            None => false,
        }
    }

    /// `TCP_FASTOPEN` on `l` (RFC 7413, server side): at most `qlen` Fast Open connections
    /// whose handshake has not completed; 0 turns it off. False for a stale handle.
    pub fn set_fast_open(&mut self, l: ListenHandle, qlen: usize) -> bool {
        match self.listener_mut(l) {
            Some(listener) => {
                listener.fast_open_qlen = qlen;
                true
            }
            None => false,
        }
    }

    /// `TCP_FASTOPEN` of `l` (its queue length; 0: off).
    pub fn fast_open(&self, l: ListenHandle) -> usize {
        self.listener(l).map_or(0, |l| l.fast_open_qlen)
    }

    /// Replaces the Fast Open cookie key with `key` (drawn at random by the caller); cookies
    /// made with the previous key are still accepted for `grace` (Linux keeps it as the backup
    /// key).
    pub fn rotate_fast_open_key(&mut self, now: Instant, key: [u8; 16], grace: Duration) {
        self.tfo_keys.rotate(now, key, grace);
    }

    /// The Fast Open cache of this shard as a client (cookies by server).
    pub fn fast_open_cache(&self) -> &ClientCache {
        &self.tfo_cache
    }

    /// `TCP_DEFER_ACCEPT` of `l` in SYN-ACK retransmissions.
    pub fn defer_accept(&self, l: ListenHandle) -> u8 {
        self.listener(l).map_or(0, |l| l.defer_accept)
    }

    /// Connections waiting in the accept queue of `l`.
    pub fn accept_queue_len(&self, l: ListenHandle) -> usize {
        self.listener(l).map_or(0, |l| l.accept_queue.len())
    }

    /// `accept`: the oldest completed connection, or `EAGAIN`. The connection reports its
    /// current readiness as an event (data may have arrived before `accept`).
    pub fn accept(&mut self, l: ListenHandle) -> Result<TcpHandle, AcceptError> {
        let listener = self.listener_mut(l).ok_or(AcceptError::BadHandle)?;
        let h = listener
            .accept_queue
            .pop_front()
            .ok_or(AcceptError::WouldBlock)?;
        let linger = listener.linger;
        if let Some(s) = self.slots.get_mut(h.index as usize) {
            s.owned = true;
            s.listener = None;
            s.linger = linger;
            if let Some(tcb) = s.tcb.as_ref() {
                let r = crate::socket::events::tcp_readiness(tcb);
                self.events.raise(&mut s.event_at, SocketHandle::Tcp(h), r);
            }
        }
        Ok(h)
    }

    /// Closes a listener; connections not yet accepted are reset, as on Linux.
    pub fn close_listener(&mut self, now: Instant, l: ListenHandle) {
        if self.listener(l).is_none() {
            return;
        }
        let Some(listener) = self
            .listeners
            .get_mut(l.index as usize)
            .and_then(|s| s.listener.take())
        else {
            return;
        };
        self.free_listeners.push(l.index);
        if listener.claimed {
            self.release_port(listener.port);
        }
        if let Some(group) = self.by_port.get_mut(&listener.port) {
            group.retain(|&i| i != l.index);
            if group.is_empty() {
                self.by_port.remove(&listener.port);
            }
        }
        for i in 0..self.reqs.len() {
            if self
                .reqs
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|e| e.listener == l.index)
            {
                self.remove_req(i as u32);
            }
        }
        for h in listener.accept_queue {
            if let Some(tcb) = self
                .slots
                .get_mut(h.index as usize)
                .and_then(|s| s.tcb.as_mut())
            {
                tcb.abort(now);
            }
            self.touch(h.index);
        }
        for index in 0..self.slots.len() {
            let s = &mut self.slots[index];
            if s.listener == Some(l.index) {
                s.listener = None;
                if let Some(tcb) = s.tcb.as_mut() {
                    tcb.abort(now);
                }
                self.touch(index as u32);
            }
        }
    }

    /// A slot for the connection `make` builds (from `key.local` to `key.remote`), unless the
    /// table is full. `make` runs only once the slot is found, and writes into it: a TCB is
    /// 1.2 KB, which building it on the stack and moving it in would copy.
    fn alloc_slot(
        &mut self,
        key: FlowKey,
        owned: bool,
        listener: Option<u32>,
        make: impl FnOnce() -> Tcb,
    ) -> Option<TcpHandle> {
        if self.flows.len() >= self.max_connections {
            return None;
        }
        let h = match self.free.pop() {
            Some(index) => {
                let s = &mut self.slots[index as usize];
                s.generation = s.generation.wrapping_add(1);
                // A free slot holds no TCB (`remove` took it): nothing to drop, so `make` can
                // build in place.
                debug_assert!(s.tcb.is_none());
                s.tcb.get_or_insert_with(make);
                s.owned = owned;
                s.listener = listener;
                s.linger = None;
                s.linger_at = None;
                s.read_shut = false;
                s.event_at = None;
                s.fast_open_of = None;
                s.estab = false;
                s.retrans_seen = 0;
                s.bound = false;
                TcpHandle {
                    index,
                    generation: s.generation,
                }
            }
            None => {
                let index = self.slots.len() as u32;
                self.slots.push(Slot {
                    generation: 0,
                    tcb: Some(make()),
                    owned,
                    listener,
                    timer: None,
                    ready: false,
                    linger: None,
                    linger_at: None,
                    read_shut: false,
                    event_at: None,
                    fast_open_of: None,
                    estab: false,
                    retrans_seen: 0,
                    bound: false,
                });
                TcpHandle {
                    index,
                    generation: 0,
                }
            }
        };
        if self.flows.insert(key, h.index).is_err() {
            // Cannot happen below max_connections; undo rather than keep an unreachable slot.
            if let Some(s) = self.slots.get_mut(h.index as usize) {
                s.tcb = None;
                s.owned = false;
                s.listener = None;
            }
            self.free.push(h.index);
            return None;
        }
        if let Some(s) = self.slots.get_mut(h.index as usize)
            && let Some(tcb) = s.tcb.as_ref()
        {
            sync_counters(&mut s.estab, &mut s.retrans_seen, tcb, &mut self.stats);
        }
        self.touch(h.index);
        Some(h)
    }

    /// A free ephemeral port for a connection from `local_ip` to `remote` whose replies the
    /// NIC's RSS delivers to this shard (any free port on a single-queue port).
    ///
    /// With `tcp_tw_reuse` on, a port whose 4-tuple is held by a reusable TIME-WAIT entry counts
    /// as free (Linux `__inet_hash_connect` asks `tcp_twsk_unique` the same).
    fn ephemeral_port(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Option<u16> {
        let TcpEndpoints {
            steering,
            flows,
            by_port,
            tw,
            tw_config,
            bind,
            ..
        } = self;
        let table = bind.as_ref().map(|(t, _)| &**t);
        steering.pick(local_ip, remote, |port| {
            // Ports bound by `listen` or `bind` (here, or on another shard) are not handed out
            // (Linux `__inet_hash_connect` skips ports whose bind bucket came from `bind`).
            if by_port.contains_key(&port) || table.is_some_and(|t| t.is_bound(port)) {
                return false;
            }
            match flows.get(&FlowKey::new(SocketAddrV4::new(local_ip, port), remote)) {
                None => true,
                Some(v) if v & TW_TAG != 0 => {
                    tw_config.reuse
                        && tw
                            .get((v & !TW_TAG) as usize)
                            .and_then(Option::as_ref)
                            .is_some_and(|e| e.tw.reusable(now))
                }
                Some(_) => false,
            }
        })
    }

    /// Follows the port's receive-side scaling: active opens then choose ephemeral ports whose
    /// replies hash to `queue`, this shard's (design rule 5, "steering is exact").
    pub fn set_rss(&mut self, rss: Option<&RssConfig>, queue: u16) {
        let (first, last) = self.steering.range();
        self.steering = PortSteering::with_secret(rss, queue, self.steering.secret());
        self.steering.set_range(first, last);
    }

    /// Sets the ephemeral port range of active opens to `first..=last` (Linux
    /// `net.ipv4.ip_local_port_range`, default 32768-60999). False (no change) for an empty
    /// range or one starting at port 0.
    pub fn set_ephemeral_range(&mut self, first: u16, last: u16) -> bool {
        self.steering.set_range(first, last)
    }

    /// The ephemeral port range, `(first, last)`.
    pub fn ephemeral_range(&self) -> (u16, u16) {
        self.steering.range()
    }

    /// `connect`: a new connection in SYN-SENT from `local_ip` to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Result<TcpHandle, ConnectError> {
        let config = self.config;
        self.connect_with(now, local_ip, remote, config)
    }

    /// `connect` with settings of its own (what socket options set before `connect` decide:
    /// buffer sizes, `TCP_CONGESTION`, `TCP_NODELAY`, keepalive, ...).
    pub fn connect_with(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        config: TcpConfig,
    ) -> Result<TcpHandle, ConnectError> {
        self.connect_from(now, &[local_ip], remote, config)
    }

    /// `connect` from the first of `local_ips` that has an ephemeral port free towards
    /// `remote` (the shard passes its primary address first, then its secondary ones: see
    /// [`super::Shard::tcp_connect_with`]). `EADDRNOTAVAIL`, counted once in
    /// [`EndpointStats::port_exhausted`], when none has.
    pub fn connect_from(
        &mut self,
        now: Instant,
        local_ips: &[Ipv4Addr],
        remote: SocketAddrV4,
        config: TcpConfig,
    ) -> Result<TcpHandle, ConnectError> {
        let found = local_ips.iter().find_map(|&ip| {
            self.ephemeral_port(now, ip, remote)
                .map(|port| SocketAddrV4::new(ip, port))
        });
        let Some(local) = found else {
            // Linux `__inet_hash_connect` returns -EADDRNOTAVAIL once every port of
            // ip_local_port_range is in use towards this destination.
            self.stats.port_exhausted += 1;
            return Err(ConnectError::AddrNotAvailable);
        };
        self.open_active(now, local, remote, config)
    }

    /// `bind(local)` then `connect(remote)`, from `local`, an address of the interface (not
    /// 0.0.0.0: [`super::Shard::tcp_connect_bound`] resolves that). Port 0 binds the address only and picks the
    /// port at `connect`, towards this destination (Linux `IP_BIND_ADDRESS_NO_PORT`; this
    /// API binds and connects in one call, so that is also what plain `bind(addr:0)` gets).
    /// A given port is claimed like a bind on Linux (`inet_csk_bind_conflict`):
    /// - `EADDRINUSE` if a listener of this shard has it (unless both set `SO_REUSEPORT`), a
    ///   connection of this shard uses it (TIME-WAIT included) and `reuse` sets neither
    ///   option, or another shard of the runtime has it bound ([`TcpEndpoints::set_bind_table`])
    ///   without `SO_REUSEPORT` on both sides;
    /// - `EADDRNOTAVAIL` if the 4-tuple is in use here (TIME-WAIT included, unless
    ///   `tcp_tw_reuse` finds it safe), as Linux's `connect` reports it, or if the replies of
    ///   that 4-tuple would arrive on another shard's receive queue (RSS steering: the
    ///   connection could not work; Linux has no such case, having one stack for all queues).
    ///
    /// The claim in the shared table is given back when the connection leaves its full TCB
    /// (closed, or moved to a compact TIME-WAIT entry). Unlike Linux, whose TIME-WAIT socket
    /// keeps its bind bucket, another shard may then bind the port while this one's TIME-WAIT
    /// lasts; the 4-tuple itself stays protected here, where its replies arrive.
    pub fn connect_bound(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        reuse: Reuse,
        remote: SocketAddrV4,
        config: TcpConfig,
    ) -> Result<TcpHandle, ConnectError> {
        if local.ip().is_unspecified() {
            // The shard resolves 0.0.0.0 to its addresses before calling this.
            return Err(ConnectError::AddrNotAvailable);
        }
        let port = local.port();
        if port == 0 {
            return self.connect_from(now, &[*local.ip()], remote, config);
        }
        if self.bind_conflict(port, reuse) {
            return Err(ConnectError::AddrInUse);
        }
        let tuple_free = match self.flows.get(&FlowKey::new(local, remote)) {
            None => true,
            Some(v) if v & TW_TAG != 0 => {
                self.tw_config.reuse
                    && self
                        .tw
                        .get((v & !TW_TAG) as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|e| e.tw.reusable(now))
            }
            Some(_) => false,
        };
        if !tuple_free || !self.steering.steer_ok(local, remote) {
            return Err(ConnectError::AddrNotAvailable);
        }
        if !self.claim_port(port, None, reuse.port) {
            return Err(ConnectError::AddrInUse);
        }
        match self.open_active(now, local, remote, config) {
            Ok(h) => {
                if let Some(s) = self.slots.get_mut(h.index as usize) {
                    s.bound = self.bind.is_some();
                }
                Ok(h)
            }
            Err(e) => {
                self.release_port(port);
                Err(e)
            }
        }
    }

    /// The active open itself, from a local address already chosen.
    fn open_active(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        config: TcpConfig,
    ) -> Result<TcpHandle, ConnectError> {
        let mut iss = self.isn.isn(now, local, remote);
        if let Some(v) = self.flows.get(&FlowKey::new(local, remote))
            && v & TW_TAG != 0
        {
            // tcp_tw_reuse (Linux tcp_twsk_unique): take over the TIME-WAIT 4-tuple, starting
            // the new incarnation past the old one's sequence space ("write_seq = tw_snd_nxt +
            // 65535 + 2").
            if let Some(Some(e)) = self.tw.get((v & !TW_TAG) as usize) {
                iss = e.tw.next_iss().get();
            }
            self.remove_tw(v & !TW_TAG);
            self.stats.tw_recycled += 1;
        }
        let ts_offset = self.isn.ts_offset(*local.ip(), *remote.ip());
        let h = self
            .alloc_slot(FlowKey::new(local, remote), true, None, || {
                let mut tcb = Tcb::connect(config, local, remote, iss, now);
                tcb.set_ts_offset(ts_offset);
                tcb
            })
            .ok_or(ConnectError::NoBuffers)?;
        self.stats.active_opens += 1;
        Ok(h)
    }

    /// `connect` with data, like Linux `sendto(MSG_FASTOPEN)` (RFC 7413 4.1): with a cookie
    /// cached for the server, the SYN carries the cookie and as much of `data` as fits (the
    /// server's MSS from last time, and ours less 40 bytes of options: Linux
    /// `tcp_send_syn_data`); without one, the SYN asks for a cookie and the data follows the
    /// handshake; towards a server that lost a SYN with data lately, a plain connect. Returns
    /// the connection and how many bytes of `data` were queued (the send buffer bounds it).
    pub fn connect_fast_open(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        config: TcpConfig,
        data: &[u8],
    ) -> Result<(TcpHandle, usize), ConnectError> {
        self.connect_fast_open_from(now, &[local_ip], remote, config, data)
    }

    /// [`TcpEndpoints::connect_fast_open`] from the first of `local_ips` with a free ephemeral
    /// port (see [`TcpEndpoints::connect_from`]).
    pub fn connect_fast_open_from(
        &mut self,
        now: Instant,
        local_ips: &[Ipv4Addr],
        remote: SocketAddrV4,
        config: TcpConfig,
        data: &[u8],
    ) -> Result<(TcpHandle, usize), ConnectError> {
        let h = self.connect_from(now, local_ips, remote, config)?;
        let plan = self.tfo_cache.for_connect(now, *remote.ip());
        let Some(tcb) = self
            .slots
            .get_mut(h.index as usize)
            .and_then(|s| s.tcb.as_mut())
        else {
            return Err(ConnectError::NoBuffers);
        };
        let n = tcb.queue_syn_data(data);
        if let Some((cookie, mss)) = plan {
            let space = u32::from(config.mss.saturating_sub(40)).min(u32::from(mss));
            tcb.set_fast_open(cookie, space);
        }
        Ok((h, n))
    }

    /// `close`: the application lets go of the connection; it finishes on its own (FIN, or RST
    /// if unread data remains) and leaves the table once CLOSED.
    ///
    /// With `SO_LINGER` set on the connection ([`TcpEndpoints::set_linger`]): a zero time
    /// resets it at once (RST, no TIME-WAIT: Linux `tcp_close` "Check zero linger _after_
    /// checking for unread data"); a positive time closes normally and resets the connection if
    /// its data and FIN are not all acknowledged by then. (Linux makes a blocking `close` wait
    /// that long and then lets the orphan finish; this API never blocks, so the bound is kept
    /// by resetting, the behaviour the socket layer documents.)
    pub fn close(&mut self, now: Instant, h: TcpHandle) {
        if let Some(s) = self.slots.get_mut(h.index as usize)
            && s.generation == h.generation
            && s.owned
        {
            s.owned = false;
            let linger = s.linger;
            if let Some(tcb) = s.tcb.as_mut() {
                match linger {
                    Some(d) if d == Duration::ZERO => tcb.abort(now),
                    Some(d) => {
                        tcb.close(now);
                        if tcb.state() != State::Closed {
                            s.linger_at = Some(now + d);
                        }
                    }
                    None => tcb.close(now),
                }
            }
            self.touch(h.index);
        }
    }

    /// `SO_LINGER`: what `close` does with data still unacknowledged (`None`: off). False for
    /// a stale handle.
    pub fn set_linger(&mut self, h: TcpHandle, linger: Option<Duration>) -> bool {
        match self.owned_slot_mut(h) {
            Some(s) => {
                s.linger = linger;
                true
            }
            None => false,
        }
    }

    /// The connection's `SO_LINGER`.
    pub fn linger(&self, h: TcpHandle) -> Option<Duration> {
        self.owned_slot(h).and_then(|s| s.linger)
    }

    /// `shutdown(SHUT_RD)`: reads that would block return end of stream from now on; bytes
    /// already received can still be read (Linux `tcp_recvmsg` copies queued data first, then
    /// stops at `RCV_SHUTDOWN`). False for a stale handle.
    pub fn shutdown_read(&mut self, h: TcpHandle) -> bool {
        match self.owned_slot_mut(h) {
            Some(s) => {
                s.read_shut = true;
                true
            }
            None => false,
        }
    }

    /// True after `shutdown(SHUT_RD)`.
    pub fn is_read_shutdown(&self, h: TcpHandle) -> bool {
        self.owned_slot(h).is_some_and(|s| s.read_shut)
    }

    fn owned_slot(&self, h: TcpHandle) -> Option<&Slot> {
        self.slots
            .get(h.index as usize)
            .filter(|s| s.generation == h.generation && s.owned && s.tcb.is_some())
    }

    fn owned_slot_mut(&mut self, h: TcpHandle) -> Option<&mut Slot> {
        self.slots
            .get_mut(h.index as usize)
            .filter(|s| s.generation == h.generation && s.owned && s.tcb.is_some())
    }

    /// Moves every pending readiness event into `out` (appended, oldest first); events of
    /// sockets closed since are dropped. Returns how many were added. `out` is the caller's, so
    /// a reused `Vec` makes this allocation-free.
    pub fn poll_events(&mut self, out: &mut Vec<Event>) -> usize {
        let before = out.len();
        let TcpEndpoints {
            events,
            slots,
            listeners,
            ..
        } = self;
        events.drain(|e| match e.socket {
            SocketHandle::Tcp(h) => {
                if let Some(s) = slots.get_mut(h.index as usize) {
                    s.event_at = None;
                    if s.generation == h.generation && s.owned && s.tcb.is_some() {
                        out.push(e);
                    }
                }
            }
            SocketHandle::Listener(l) => {
                if let Some(slot) = listeners.get_mut(l.index as usize)
                    && let Some(listener) = slot.listener.as_mut()
                {
                    listener.event_at = None;
                    if slot.generation == l.generation {
                        out.push(e);
                    }
                }
            }
            SocketHandle::Udp(_) => out.push(e),
        });
        out.len() - before
    }

    /// Queues an event that the shard found (UDP datagrams), in the same queue as TCP's.
    pub(crate) fn push_event(&mut self, socket: SocketHandle, readiness: Readiness) {
        self.events.push(socket, readiness);
    }

    /// Events waiting to be polled.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The readiness of `h` now (the level view; events report its edges).
    pub fn readiness(&self, h: TcpHandle) -> Readiness {
        self.owned_slot(h)
            .and_then(|s| s.tcb.as_ref())
            .map_or(Readiness::EMPTY, crate::socket::events::tcp_readiness)
    }

    /// The readiness of listener `l` now: ACCEPT if its accept queue is not empty.
    pub fn listener_readiness(&self, l: ListenHandle) -> Readiness {
        match self.listener(l) {
            Some(l) if !l.accept_queue.is_empty() => Readiness::ACCEPT,
            _ => Readiness::EMPTY,
        }
    }

    /// Every listener and connection, like `ss -tan`: listeners first (Recv-Q = accept queue,
    /// Send-Q = backlog, as `ss` shows them), then connections in table order.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionInfo> + '_ {
        let listeners = self.listeners.iter().filter_map(|slot| {
            let l = slot.listener.as_ref()?;
            Some(ConnectionInfo {
                state: State::Listen,
                local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, l.port),
                remote: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                recv_q: l.accept_queue.len(),
                send_q: l.backlog,
                timer: None,
                orphan: false,
            })
        });
        let conns = self.slots.iter().filter_map(|s| {
            let t = s.tcb.as_ref()?;
            let timer = match (t.armed_timer(), s.linger_at) {
                (Some((k, at)), Some(l)) if at <= l => Some((k, at)),
                (_, Some(l)) => Some((TimerKind::Linger, l)),
                (t, None) => t,
            };
            Some(ConnectionInfo {
                state: t.state(),
                local: t.local(),
                remote: t.remote(),
                recv_q: t.recv_available(),
                send_q: t.send_queue_len(),
                timer,
                orphan: !s.owned && s.listener.is_none(),
            })
        });
        let tws = self.tw.iter().flatten().map(|e| ConnectionInfo {
            state: State::TimeWait,
            local: e.tw.local(),
            remote: e.tw.remote(),
            recv_q: 0,
            send_q: 0,
            timer: self
                .wheel
                .deadline(e.timer)
                .map(|at| (TimerKind::Close, at)),
            orphan: true,
        });
        let reqs = self.reqs.iter().flatten().map(|e| ConnectionInfo {
            state: State::SynReceived,
            local: e.req.local(),
            remote: e.req.remote(),
            recv_q: 0,
            send_q: 0,
            timer: self
                .wheel
                .deadline(e.timer)
                .map(|at| (TimerKind::Retransmit, at)),
            orphan: false,
        });
        listeners.chain(reqs).chain(conns).chain(tws)
    }

    /// How many listeners and connections are in each state: what [`Self::connections`]
    /// lists, counted without walking the compact request and TIME-WAIT tables (their live
    /// counts are kept), so that sampling it is cheap with half a million TIME-WAIT entries.
    pub fn state_histogram(&self) -> StateHistogram {
        let mut h = StateHistogram::default();
        let listeners = self.listeners.iter().filter(|s| s.listener.is_some());
        h.add_n(State::Listen, listeners.count());
        for t in self.slots.iter().filter_map(|s| s.tcb.as_ref()) {
            h.add(t.state());
        }
        h.add_n(State::SynReceived, self.req_count);
        h.add_n(State::TimeWait, self.tw_count);
        h
    }

    /// Shutdown, first step: closes every listener (connections not yet accepted are reset)
    /// and gracefully closes every connection the application still holds, as if it had
    /// called `close` on each. Connections then finish on their own.
    pub fn close_all(&mut self, now: Instant) {
        for index in 0..self.listeners.len() {
            let Some(slot) = self.listeners.get(index) else {
                continue;
            };
            if let Some(l) = slot.listener.as_ref() {
                let h = ListenHandle {
                    index: index as u32,
                    generation: slot.generation,
                    port: l.port,
                };
                self.close_listener(now, h);
            }
        }
        for index in 0..self.slots.len() {
            let Some(s) = self.slots.get_mut(index) else {
                continue;
            };
            if s.owned {
                let h = TcpHandle {
                    index: index as u32,
                    generation: s.generation,
                };
                self.close(now, h);
            }
        }
    }

    /// Shutdown, last step: resets every connection that is not yet closed or in TIME-WAIT
    /// (`SO_LINGER {on, 0}` on all of them). The resets go out with the next `poll_output`.
    pub fn abort_all(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            let Some(s) = self.slots.get_mut(index) else {
                continue;
            };
            let Some(tcb) = s.tcb.as_mut() else { continue };
            if tcb.is_closed() || tcb.state() == State::TimeWait {
                continue;
            }
            s.owned = false;
            tcb.abort(now);
            self.touch(index as u32);
        }
    }

    /// Connections that still have an exchange to finish: in the table and neither closed nor
    /// in TIME-WAIT (which only waits out 2*MSL and sends nothing unprompted).
    pub fn active_count(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.tcb.as_ref())
            .filter(|t| !t.is_closed() && t.state() != State::TimeWait)
            .count()
    }

    /// `SO_LINGER {on, 0}` then `close`: RST, no TIME-WAIT.
    pub fn abort(&mut self, now: Instant, h: TcpHandle) {
        if let Some(s) = self.slots.get_mut(h.index as usize)
            && s.generation == h.generation
            && s.owned
        {
            s.owned = false;
            if let Some(tcb) = s.tcb.as_mut() {
                tcb.abort(now);
            }
            self.touch(h.index);
        }
    }

    /// A segment for `local` from `remote` arrived.
    pub fn on_segment(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Incoming<'_>,
    ) {
        self.on_segment_held(now, local, remote, seg, None);
    }

    /// [`TcpEndpoints::on_segment`] for a segment in a frame the caller holds until the
    /// application has had its turn, its payload at `at` in the caller's view of the held
    /// burst (`None`: not held). In-order data of an established connection may then stay in
    /// the frame (`tcp/in_place.rs`): the caller must call [`TcpEndpoints::spill_in_place`]
    /// with the same view before giving the frame back.
    pub fn on_segment_held(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Incoming<'_>,
        at: Option<PayloadAt>,
    ) {
        let found = self.flows.get(&FlowKey::new(local, remote));
        if let Some(tagged) = found
            && tagged & TW_TAG != 0
        {
            self.on_time_wait_segment(now, tagged & !TW_TAG, local, remote, seg);
            return;
        }
        if let Some(tagged) = found
            && tagged & REQ_TAG != 0
        {
            self.on_request_segment(now, tagged & !REQ_TAG, local, remote, seg);
            return;
        }
        if let Some(index) = found {
            self.touch(index);
            let mut reopen = false;
            if let Some(slot) = self.slots.get_mut(index as usize)
                && let Some(tcb) = slot.tcb.as_mut()
            {
                let before = tcb.state();
                // RFC 9293 3.10.7.4 / RFC 6191: a new SYN for a connection in TIME-WAIT whose
                // sequence number is past the old one's may start a new incarnation (Linux
                // tcp_timewait_state_process accepts it).
                if before == State::TimeWait
                    && seg.flags.syn()
                    && !seg.flags.ack()
                    && self.by_port.contains_key(&local.port())
                {
                    reopen = true;
                } else {
                    let seen = slot.owned.then(|| Seen::of(tcb));
                    let mut offer = self.in_place.offer(at, seg.payload.len());
                    tcb.on_segment_in_place(now, seg, &mut offer);
                    let conn = TcpHandle {
                        index,
                        generation: slot.generation,
                    };
                    self.in_place.record(conn, at, offer);
                    let after = tcb.state();
                    if tcb.is_closed() && slot.owned {
                        unhash_closed(
                            &mut self.flows,
                            &mut self.wheel,
                            index,
                            tcb,
                            &mut slot.timer,
                        );
                    }
                    count_attempt_fail(&mut self.stats, before, after);
                    sync_counters(
                        &mut slot.estab,
                        &mut slot.retrans_seen,
                        tcb,
                        &mut self.stats,
                    );
                    let fast_open = if after != State::SynReceived {
                        slot.fast_open_of.take()
                    } else {
                        None
                    };
                    if let Some(li) = fast_open {
                        // A Fast Open connection, in the accept queue since its SYN: its
                        // handshake is over (Linux reqsk_fastopen_remove).
                        if after.is_synchronized() {
                            self.stats.established += 1;
                        }
                        if let Some(l) = self
                            .listeners
                            .get_mut(li as usize)
                            .and_then(|s| s.listener.as_mut())
                        {
                            l.fast_open_pending = l.fast_open_pending.saturating_sub(1);
                        }
                    } else if before == State::SynReceived && after.is_synchronized() {
                        self.stats.established += 1;
                        if let Some(li) = slot.listener
                            && let Some(ls) = self.listeners.get_mut(li as usize)
                            && let Some(l) = ls.listener.as_mut()
                        {
                            l.accept_queue.push_back(TcpHandle {
                                index,
                                generation: slot.generation,
                            });
                            let handle = ListenHandle {
                                index: li,
                                generation: ls.generation,
                                port: l.port,
                            };
                            self.events.raise(
                                &mut l.event_at,
                                SocketHandle::Listener(handle),
                                Readiness::ACCEPT,
                            );
                        }
                    } else if before == State::SynSent && after == State::Established {
                        self.stats.established += 1;
                    }
                    if tcb.error() == Some(crate::tcp::TcpError::ConnectionReset)
                        && before.is_synchronized()
                    {
                        self.stats.estab_resets += 1;
                    }
                    if let Some(seen) = seen {
                        let h = SocketHandle::Tcp(TcpHandle {
                            index,
                            generation: slot.generation,
                        });
                        self.events.raise(&mut slot.event_at, h, seen.edges(tcb));
                    }
                }
            }
            if reopen {
                self.remove(index);
                self.on_segment(now, local, remote, seg);
            }
            return;
        }
        if seg.flags.syn() && !seg.flags.ack() && !seg.flags.rst() {
            if let Some(li) = self.pick_listener(local, remote) {
                self.passive_open(now, li, local, remote, seg, None);
                return;
            }
        } else if seg.flags.ack()
            && !seg.flags.syn()
            && !seg.flags.rst()
            && self.cookie_check(now, local, remote, seg)
        {
            return;
        }
        self.reset_stray(local, remote, seg);
    }

    /// Linux `cookie_v4_check`: an ACK for no connection, to a listener that sent SYN cookies
    /// in the last 2 minutes, may complete a handshake answered with a cookie. True if it was
    /// taken (a connection, or dropped on a full accept queue); false to answer it with a RST.
    fn cookie_check(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Incoming<'_>,
    ) -> bool {
        if self.cookie_mode == SynCookieMode::Off
            || self
                .cookie_sent_at
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(120))
        {
            return false;
        }
        let Some(li) = self.pick_listener(local, remote) else {
            return false;
        };
        let Some(mss) = self
            .cookies
            .check(now, local, remote, seg.seq.get(), seg.ack.get())
        else {
            self.stats.syncookies_failed += 1;
            return false;
        };
        let Some(config) = self
            .listeners
            .get(li as usize)
            .and_then(|s| s.listener.as_ref())
            .map(|l| l.config)
        else {
            return false;
        };
        let ts_offset = self.isn.ts_offset(*local.ip(), *remote.ip());
        // Linux cookie_timestamp_decode: the options come back in the echoed timestamp; without
        // timestamps there are none.
        let ts = seg.options.timestamps.filter(|_| config.timestamps);
        let (window_scale, sack) = match ts {
            Some(t) => match decode_timestamp(t.tsecr.wrapping_sub(ts_offset)) {
                Some(o) => o,
                None => {
                    self.stats.syncookies_failed += 1;
                    return false;
                }
            },
            None => (None, false),
        };
        self.stats.syncookies_recv += 1;
        let req = SynRequest::from_cookie(
            local,
            remote,
            seg.ack - 1u32,
            seg.seq - 1u32,
            ts_offset,
            mss,
            window_scale,
            sack,
            ts.map(|t| t.tsval),
        );
        self.complete(now, li, &req, seg, config);
        true
    }

    /// The final ACK `seg` completes `req` of listener `li`: the connection joins the accept
    /// queue, or, if that is full, the ACK is dropped and false returned (Linux
    /// `tcp_v4_syn_recv_sock`: "if (sk_acceptq_is_full(sk)) goto exit_overflow", counting
    /// ListenOverflows and ListenDrops).
    fn complete(
        &mut self,
        now: Instant,
        li: u32,
        req: &SynRequest,
        seg: &Incoming<'_>,
        config: TcpConfig,
    ) -> bool {
        let full = self
            .listeners
            .get(li as usize)
            .and_then(|s| s.listener.as_ref())
            .is_none_or(|l| l.accept_queue.len() > l.backlog);
        if full {
            self.stats.listen_overflows += 1;
            self.stats.listen_drops += 1;
            return false;
        }
        // The connection is built in its slot (`SynRequest::into_tcb` in place: building it
        // on the stack and moving it in copied 1.2 KB), then takes the ACK there. The request
        // has checked that ACK already; one that still does not synchronize the connection
        // gives the slot back. With the table full, the ACK counts in ListenDrops.
        let key = FlowKey::new(req.local(), req.remote());
        let Some(h) = self.alloc_slot(key, false, Some(li), || req.tcb_shell(config, now)) else {
            self.stats.listen_drops += 1;
            return true;
        };
        let synchronized = match self.slots.get_mut(h.index as usize) {
            Some(s) => match s.tcb.as_mut() {
                Some(tcb) => {
                    req.fill_tcb(tcb, now);
                    tcb.on_segment(now, seg);
                    let synchronized = tcb.state().is_synchronized();
                    if synchronized {
                        sync_counters(&mut s.estab, &mut s.retrans_seen, tcb, &mut self.stats);
                    }
                    synchronized
                }
                None => false,
            },
            None => false,
        };
        if !synchronized {
            self.remove(h.index);
            return true;
        }
        self.stats.passive_opens += 1;
        self.stats.established += 1;
        if let Some(ls) = self.listeners.get_mut(li as usize)
            && let Some(l) = ls.listener.as_mut()
        {
            l.accept_queue.push_back(h);
            let handle = ListenHandle {
                index: li,
                generation: ls.generation,
                port: l.port,
            };
            self.events.raise(
                &mut l.event_at,
                SocketHandle::Listener(handle),
                Readiness::ACCEPT,
            );
        }
        true
    }

    /// A listener (`li`) takes a SYN (Linux `tcp_conn_request`): a connection request in
    /// SYN-RECEIVED and its SYN-ACK, unless a queue is full. `iss` is the ISS to use (a new
    /// incarnation from TIME-WAIT), else RFC 6528's.
    fn passive_open(
        &mut self,
        now: Instant,
        li: u32,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Incoming<'_>,
        iss: Option<SeqNum>,
    ) {
        let Some(listener) = self
            .listeners
            .get_mut(li as usize)
            .and_then(|s| s.listener.as_mut())
        else {
            return;
        };
        // Linux tcp_conn_request: "if (sk_acceptq_is_full(sk)) { NET_INC_STATS(sock_net(sk),
        // LINUX_MIB_LISTENOVERFLOWS); goto drop; }" (full: more than `backlog` waiting), and
        // every drop there counts ListenDrops (tcp_listendrop).
        if listener.accept_queue.len() > listener.backlog {
            self.stats.listen_overflows += 1;
            self.stats.listen_drops += 1;
            return;
        }
        let config = listener.config;
        let (fo_qlen, fo_pending) = (listener.fast_open_qlen, listener.fast_open_pending);
        // Linux tcp_conn_request: "if ((syncookies == 2 || inet_csk_reqsk_queue_is_full(sk))
        // && !isn) { want_cookie = tcp_syn_flood_action(...); if (!want_cookie) goto drop; }"
        let queue_full = listener.syn_queue >= listener.syn_limit;
        if (queue_full || self.cookie_mode == SynCookieMode::Always) && iss.is_none() {
            if self.cookie_mode == SynCookieMode::Off {
                self.stats.req_q_full_drops += 1;
                self.stats.listen_drops += 1;
                return;
            }
            if queue_full {
                self.stats.req_q_full_do_cookies += 1;
            }
            // RFC 4987 3.6: answer statelessly; the ISN is the cookie.
            let cookie = self
                .cookies
                .isn(now, local, remote, seg.seq.get(), seg.options.mss);
            let ts_offset = self.isn.ts_offset(*local.ip(), *remote.ip());
            let req = SynRequest::new(local, remote, SeqNum(cookie), ts_offset, seg);
            self.push_stray(local, remote, req.cookie_syn_ack(&config, now));
            self.stats.syncookies_sent += 1;
            self.cookie_sent_at = Some(now);
            return;
        }
        if queue_full {
            // A new incarnation from TIME-WAIT with a full SYN queue: dropped (Linux only
            // makes cookies when it chooses the ISN).
            self.stats.req_q_full_drops += 1;
            self.stats.listen_drops += 1;
            return;
        }
        // RFC 7413 4.2 / Linux tcp_try_fastopen: a SYN with the Fast Open option to a listener
        // with TCP_FASTOPEN.
        let mut offer_cookie = false;
        if let Some(cookie) = seg.options.fast_open.filter(|_| fo_qlen > 0) {
            if cookie.is_request() {
                self.stats.fast_open_cookie_reqd += 1;
            }
            if fo_pending >= fo_qlen {
                // tcp_fastopen_queue_check: too many pending; a plain handshake, no cookie.
                self.stats.fast_open_listen_overflow += 1;
            } else if !cookie.is_request()
                && self.tfo_keys.check(now, *local.ip(), *remote.ip(), &cookie)
            {
                self.fast_open_child(now, li, local, remote, seg, config);
                return;
            } else {
                // A request or an invalid cookie: the plain handshake (the SYN's data is not
                // acknowledged, the client sends it again), and the SYN-ACK offers a valid
                // cookie (RFC 7413 4.2.1).
                if !cookie.is_request() {
                    self.stats.fast_open_passive_fail += 1;
                }
                offer_cookie = true;
            }
        }
        if self.flows.len() >= self.max_connections {
            self.stats.listen_drops += 1;
            return;
        }
        let iss = iss.unwrap_or_else(|| SeqNum(self.isn.isn(now, local, remote)));
        let ts_offset = self.isn.ts_offset(*local.ip(), *remote.ip());
        let req = SynRequest::new(local, remote, iss, ts_offset, seg);
        let i = match self.req_free.pop() {
            Some(i) => i,
            None => {
                let i = self.reqs.len() as u32;
                if i >= REQ_TAG {
                    self.stats.listen_drops += 1;
                    return;
                }
                self.reqs.push(None);
                i
            }
        };
        let Ok(timer) = self
            .wheel
            .insert(req.next_timeout(&config, now), REQ_TAG | i)
        else {
            self.req_free.push(i);
            self.stats.listen_drops += 1;
            return;
        };
        if self
            .flows
            .insert(FlowKey::new(local, remote), REQ_TAG | i)
            .is_err()
        {
            self.wheel.cancel(timer);
            self.req_free.push(i);
            self.stats.listen_drops += 1;
            return;
        }
        if let Some(e) = self.reqs.get_mut(i as usize) {
            *e = Some(ReqSlot {
                req,
                listener: li,
                timer,
                offer_cookie,
            });
        }
        self.req_count += 1;
        if let Some(l) = self
            .listeners
            .get_mut(li as usize)
            .and_then(|s| s.listener.as_mut())
        {
            l.syn_queue += 1;
        }
        let out = self.request_syn_ack(&req, offer_cookie, &config, now);
        self.push_stray(local, remote, out);
    }

    /// The SYN-ACK of a request, with our Fast Open cookie if the SYN asked for one.
    fn request_syn_ack(
        &self,
        req: &SynRequest,
        offer_cookie: bool,
        config: &TcpConfig,
        now: Instant,
    ) -> Outgoing {
        let mut out = req.syn_ack(config, now);
        if offer_cookie {
            out.options.fast_open =
                Some(self.tfo_keys.cookie(*req.local().ip(), *req.remote().ip()));
        }
        out
    }

    /// RFC 7413 4.2.2 / Linux `tcp_fastopen_create_child`: a SYN with a valid cookie makes the
    /// connection at once, its data is delivered and it can be accepted before the final ACK.
    fn fast_open_child(
        &mut self,
        now: Instant,
        li: u32,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Incoming<'_>,
        config: TcpConfig,
    ) {
        let iss = self.isn.isn(now, local, remote);
        let ts_offset = self.isn.ts_offset(*local.ip(), *remote.ip());
        // Built in its slot, as `complete` builds a connection (`Tcb::accept` in place).
        let key = FlowKey::new(local, remote);
        let Some(h) = self.alloc_slot(key, false, Some(li), || {
            Tcb::passive(config, local, remote, iss, now)
        }) else {
            self.stats.listen_drops += 1;
            return;
        };
        if let Some(tcb) = self
            .slots
            .get_mut(h.index as usize)
            .and_then(|s| s.tcb.as_mut())
        {
            tcb.take_syn(seg, now);
            tcb.set_ts_offset(ts_offset);
            tcb.accept_syn_data(now, seg.payload);
            // Writable before the final ACK, like Linux's Fast Open child (RFC 7413 4.2.2).
            tcb.set_passive_fast_open();
        }
        self.stats.fast_open_passive += 1;
        self.stats.passive_opens += 1;
        if let Some(s) = self.slots.get_mut(h.index as usize) {
            s.fast_open_of = Some(li);
        }
        if let Some(ls) = self.listeners.get_mut(li as usize)
            && let Some(l) = ls.listener.as_mut()
        {
            l.fast_open_pending += 1;
            l.accept_queue.push_back(h);
            let handle = ListenHandle {
                index: li,
                generation: ls.generation,
                port: l.port,
            };
            self.events.raise(
                &mut l.event_at,
                SocketHandle::Listener(handle),
                Readiness::ACCEPT,
            );
        }
    }

    /// A Fast Open connection of listener `li` left SYN-RECEIVED (or the table).
    fn fast_open_done(&mut self, li: u32) {
        if let Some(l) = self
            .listeners
            .get_mut(li as usize)
            .and_then(|s| s.listener.as_mut())
        {
            l.fast_open_pending = l.fast_open_pending.saturating_sub(1);
        }
    }

    /// Queues a segment that no TCB sends (SYN-ACKs and ACKs of requests, TIME-WAIT ACKs);
    /// dropped, like a lost segment, if the queue is full.
    fn push_stray(&mut self, local: SocketAddrV4, remote: SocketAddrV4, out: Outgoing) {
        if self.strays.len() < MAX_STRAYS {
            self.strays.push_back((local, remote, out));
        }
    }

    /// Removes request `i`: its flow-table entry and timer go, and its listener's SYN queue
    /// shrinks.
    fn remove_req(&mut self, i: u32) -> Option<ReqSlot> {
        let e = self.reqs.get_mut(i as usize).and_then(Option::take)?;
        self.flows
            .remove(&FlowKey::new(e.req.local(), e.req.remote()));
        self.wheel.cancel(e.timer);
        self.req_free.push(i);
        self.req_count = self.req_count.saturating_sub(1);
        if let Some(l) = self
            .listeners
            .get_mut(e.listener as usize)
            .and_then(|s| s.listener.as_mut())
        {
            l.syn_queue = l.syn_queue.saturating_sub(1);
        }
        Some(e)
    }

    /// A segment for connection request `i` (Linux `tcp_check_req`).
    fn on_request_segment(
        &mut self,
        now: Instant,
        i: u32,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Incoming<'_>,
    ) {
        let Some(Some(e)) = self.reqs.get(i as usize) else {
            return;
        };
        let li = e.listener;
        let Some(listener) = self
            .listeners
            .get(li as usize)
            .and_then(|s| s.listener.as_ref())
        else {
            self.remove_req(i);
            return;
        };
        let (config, backlog, queued, defer) = (
            listener.config,
            listener.backlog,
            listener.accept_queue.len(),
            listener.defer_accept,
        );
        let Some(Some(e)) = self.reqs.get_mut(i as usize) else {
            return;
        };
        match e.req.on_segment(&config, now, seg) {
            RequestVerdict::Drop => {}
            RequestVerdict::ResendSynAck => {
                let (req, offer) = (e.req, e.offer_cookie);
                let out = self.request_syn_ack(&req, offer, &config, now);
                self.push_stray(local, remote, out);
            }
            RequestVerdict::Reply(out) => self.push_stray(local, remote, out),
            RequestVerdict::Abort(out) => {
                // Linux tcp_check_req "embryonic_reset": TCP_MIB_ATTEMPTFAILS.
                self.stats.attempt_fails += 1;
                self.remove_req(i);
                if let Some(out) = out {
                    self.push_stray(local, remote, out);
                }
            }
            RequestVerdict::Complete => {
                // Linux tcp_check_req with TCP_DEFER_ACCEPT: "if (req->num_timeout <
                // rskq_defer_accept && TCP_SKB_CB(skb)->end_seq == tcp_rsk(req)->rcv_isn + 1)
                // { inet_rsk(req)->acked = 1; NET_INC_STATS(TCPDEFERACCEPTDROP); return NULL; }"
                if defer > 0 && e.req.retries() < defer && e.req.is_bare_ack(seg) {
                    e.req.set_acked();
                    self.stats.defer_accept_drops += 1;
                    return;
                }
                // Linux tcp_v4_syn_recv_sock: "if (sk_acceptq_is_full(sk)) goto exit_overflow"
                // (ListenOverflows, ListenDrops); tcp_check_req then, with
                // tcp_abort_on_overflow = 0, "inet_rsk(req)->acked = 1; return NULL": the ACK
                // is dropped, the request stays and its SYN-ACK timer retransmits later, so
                // the peer's next ACK or data can complete it.
                if queued > backlog {
                    e.req.set_acked();
                    self.stats.listen_overflows += 1;
                    self.stats.listen_drops += 1;
                    return;
                }
                let req = e.req;
                // The request's flow-table entry goes first, so the TCB can take its place.
                self.remove_req(i);
                self.complete(now, li, &req, seg, config);
            }
        }
    }

    /// SYN-ACK timers of requests that fired (Linux `reqsk_timer_handler`): retransmit, or
    /// drop the request after `synack_retries` (or the `TCP_DEFER_ACCEPT` period).
    fn run_request_timers(&mut self, now: Instant) {
        let mut fired = core::mem::take(&mut self.req_fired);
        for &i in &fired {
            let Some(Some(e)) = self.reqs.get(i as usize) else {
                continue;
            };
            let Some((config, defer)) = self
                .listeners
                .get(e.listener as usize)
                .and_then(|s| s.listener.as_ref())
                .map(|l| (l.config, l.defer_accept))
            else {
                self.remove_req(i);
                continue;
            };
            let Some(Some(e)) = self.reqs.get_mut(i as usize) else {
                continue;
            };
            let (expire, resend) = e.req.on_timeout(&config, defer);
            if expire {
                self.remove_req(i);
                continue;
            }
            let (req, offer, at) = (e.req, e.offer_cookie, e.req.next_timeout(&config, now));
            match self.wheel.insert(at, REQ_TAG | i) {
                Ok(t) => e.timer = t,
                Err(_) => {
                    self.remove_req(i);
                    continue;
                }
            }
            if resend {
                let out = self.request_syn_ack(&req, offer, &config, now);
                self.push_stray(req.local(), req.remote(), out);
            }
        }
        fired.clear();
        self.req_fired = fired;
    }

    /// A segment for the compact TIME-WAIT entry `i` (see [`TimeWait::on_segment`]).
    fn on_time_wait_segment(
        &mut self,
        now: Instant,
        i: u32,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Incoming<'_>,
    ) {
        let Some(Some(e)) = self.tw.get_mut(i as usize) else {
            return;
        };
        let timer = e.timer;
        let timeout = e.tw.timeout();
        let fallback_ack = e.tw.ack(now);
        let (reply, restart) = match e.tw.on_segment(now, seg) {
            Verdict::Drop => (None, false),
            Verdict::Restart => (None, true),
            Verdict::Ack { reply, restart } => (Some(reply), restart),
            Verdict::NewIncarnation { iss } => {
                // RFC 6191 / Linux tcp_v4_rcv TCP_TW_SYN: a listener on the port takes the SYN
                // and the TIME-WAIT entry goes; without one, the SYN is answered with an ACK.
                if let Some(li) = self.pick_listener(local, remote) {
                    self.remove_tw(i);
                    self.stats.tw_killed += 1;
                    self.passive_open(now, li, local, remote, seg, Some(iss));
                    return;
                }
                (Some(fallback_ack), false)
            }
        };
        if restart {
            let _ = self.wheel.reschedule(timer, now + timeout);
        }
        if let Some(out) = reply {
            self.push_stray(local, remote, out);
        }
    }

    /// Replaces the full TCB of slot `index`, in TIME-WAIT and let go of by the application,
    /// with a compact entry (Linux `tcp_time_wait`). Past `max_buckets` entries the connection
    /// is closed without TIME-WAIT, as Linux does, and counted.
    fn enter_compact_time_wait(&mut self, now: Instant, index: u32) {
        let Some(tw) = self
            .slots
            .get(index as usize)
            .and_then(|s| s.tcb.as_ref())
            .and_then(|t| TimeWait::from_tcb(t, now))
        else {
            return;
        };
        self.remove(index);
        if self.tw_count >= self.tw_config.max_buckets {
            self.stats.tw_overflow += 1;
            return;
        }
        let i = match self.tw_free.pop() {
            Some(i) => i,
            None => {
                let i = self.tw.len() as u32;
                if i >= REQ_TAG {
                    self.stats.tw_overflow += 1;
                    return;
                }
                self.tw.push(None);
                i
            }
        };
        let Ok(timer) = self.wheel.insert(now + tw.timeout(), TW_TAG | i) else {
            self.tw_free.push(i);
            self.stats.tw_overflow += 1;
            return;
        };
        if self
            .flows
            .insert(FlowKey::new(tw.local(), tw.remote()), TW_TAG | i)
            .is_err()
        {
            self.wheel.cancel(timer);
            self.tw_free.push(i);
            self.stats.tw_overflow += 1;
            return;
        }
        if let Some(e) = self.tw.get_mut(i as usize) {
            *e = Some(TwSlot { tw, timer });
        }
        self.tw_count += 1;
    }

    /// Removes TIME-WAIT entry `i`: its flow-table entry and timer go.
    fn remove_tw(&mut self, i: u32) {
        if let Some(e) = self.tw.get_mut(i as usize).and_then(Option::take) {
            self.flows
                .remove(&FlowKey::new(e.tw.local(), e.tw.remote()));
            self.wheel.cancel(e.timer);
            self.tw_free.push(i);
            self.tw_count = self.tw_count.saturating_sub(1);
        }
    }

    /// The listener that gets a SYN for `local` from `remote`: the port's only one, or, in a
    /// `SO_REUSEPORT` group, one chosen by a hash of the 4-tuple so that every segment of a
    /// connection attempt picks the same one (Linux `reuseport_select_sock` scales the
    /// 4-tuple hash `inet_ehashfn` onto the group: `reciprocal_scale(hash, num_socks)`).
    fn pick_listener(&self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<u32> {
        let group = self.by_port.get(&local.port())?;
        match group.len() {
            0 => None,
            1 => group.first().copied(),
            n => {
                let mut h = std::hash::DefaultHasher::new();
                (self.reuseport_key, local, remote).hash(&mut h);
                let hash = h.finish() as u32;
                let pick = ((u64::from(hash) * n as u64) >> 32) as usize;
                group.get(pick).copied()
            }
        }
    }

    /// RFC 9293 3.10.7.1: a segment for no connection gets a reset, never one for a reset:
    /// "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
    /// <CTL=RST,ACK>. If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>".
    fn reset_stray(&mut self, local: SocketAddrV4, remote: SocketAddrV4, seg: &Incoming<'_>) {
        if seg.flags.rst() || self.strays.len() >= MAX_STRAYS {
            return;
        }
        let (seq, ack, flags) = if seg.flags.ack() {
            (seg.ack, SeqNum(0), Flags::RST)
        } else {
            (SeqNum(0), seg.seq + seg.seg_len(), Flags::RST | Flags::ACK)
        };
        let out = Outgoing {
            seq,
            ack,
            flags,
            window: 0,
            options: Options::default(),
            payload_offset: 0,
            payload_len: 0,
        };
        self.strays.push_back((local, remote, out));
        self.stats.out_rsts += 1;
    }

    fn remove(&mut self, index: u32) {
        // The TCB is read where it lies and dropped in place at the end: moving it out of the
        // slot first copied its 1.2 KB (a `memcpy` per closed connection).
        if let Some(s) = self.slots.get_mut(index as usize)
            && let Some(tcb) = s.tcb.as_ref()
        {
            // Leaving the table: its retransmissions stay counted, and it is no longer current.
            sync_counters(&mut s.estab, &mut s.retrans_seen, tcb, &mut self.stats);
            if core::mem::take(&mut s.estab) {
                self.stats.curr_estab = self.stats.curr_estab.saturating_sub(1);
            }
            unhash_closed(&mut self.flows, &mut self.wheel, index, tcb, &mut s.timer);
            if core::mem::take(&mut s.bound)
                && let Some((table, _)) = &self.bind
            {
                table.release(tcb.local().port());
            }
            s.tcb = None;
            s.linger_at = None;
            s.event_at = None;
            let fast_open = s.fast_open_of.take();
            if let Some(li) = s.listener.take()
                && let Some(l) = self
                    .listeners
                    .get_mut(li as usize)
                    .and_then(|l| l.listener.as_mut())
            {
                l.accept_queue.retain(|h| h.index != index);
            }
            s.owned = false;
            self.free.push(index);
            if let Some(li) = fast_open {
                self.fast_open_done(li);
            }
        }
    }

    /// Runs the connection timers due at `now` (from the timer wheel); the connections whose
    /// timers fired join the ready list.
    pub fn on_timeout(&mut self, now: Instant) {
        // Connections on the ready list may have timers newer than their wheel entry (a segment
        // or the application set them since); run those that are due here, so that nothing due
        // waits for the wheel's millisecond rounding.
        let TcpEndpoints {
            wheel,
            slots,
            ready,
            events,
            tw,
            tw_free,
            tw_count,
            flows,
            stats,
            req_fired,
            ..
        } = self;
        for &index in ready.iter() {
            if let Some(s) = slots.get_mut(index as usize)
                && s.deadline().is_some_and(|t| t <= now)
            {
                Self::run_timers(events, stats, s, index, now);
            }
        }
        wheel.advance(now, |_, index| {
            if index & TW_TAG == 0 && index & REQ_TAG != 0 {
                req_fired.push(index & !REQ_TAG);
                return;
            }
            if index & TW_TAG != 0 {
                // 2*MSL passed: the TIME-WAIT entry ends (RFC 9293 3.10.8 "Time-Wait Timeout").
                let i = index & !TW_TAG;
                if let Some(e) = tw.get_mut(i as usize).and_then(Option::take) {
                    flows.remove(&FlowKey::new(e.tw.local(), e.tw.remote()));
                    tw_free.push(i);
                    *tw_count = tw_count.saturating_sub(1);
                    stats.tw += 1;
                }
                return;
            }
            let Some(s) = slots.get_mut(index as usize) else {
                return;
            };
            s.timer = None;
            Self::run_timers(events, stats, s, index, now);
            if !s.ready {
                s.ready = true;
                ready.push(index);
            }
        });
        self.run_request_timers(now);
    }

    /// Runs the due timers of connection `index` (its own and the linger deadline) and reports
    /// the readiness edges they caused.
    fn run_timers(
        events: &mut EventQueue,
        stats: &mut EndpointStats,
        s: &mut Slot,
        index: u32,
        now: Instant,
    ) {
        let seen = s.tcb.as_ref().filter(|_| s.owned).map(Seen::of);
        if let Some(tcb) = s.tcb.as_mut()
            && tcb.next_timer().is_some_and(|t| t <= now)
        {
            let before = tcb.state();
            tcb.on_timeout(now);
            count_attempt_fail(stats, before, tcb.state());
        }
        s.run_linger(now);
        if let (Some(seen), Some(tcb)) = (seen, s.tcb.as_ref()) {
            let h = SocketHandle::Tcp(TcpHandle {
                index,
                generation: s.generation,
            });
            events.raise(&mut s.event_at, h, seen.edges(tcb));
        }
    }

    /// The earliest connection timer (rounded up to the wheel's millisecond), or `Some(ZERO)`
    /// if connections wait on the ready list or a reset is to be sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.strays.is_empty() || !self.ready.is_empty() {
            return Some(Instant::ZERO);
        }
        self.wheel.next_deadline()
    }

    /// Hands every segment due now to `emit` (local, remote, segment, send buffer for the
    /// payload). `emit` returns false when it cannot take more.
    pub fn poll_output(
        &mut self,
        now: Instant,
        emit: &mut impl FnMut(SocketAddrV4, SocketAddrV4, &Outgoing, &SendBuffer) -> bool,
    ) {
        let empty = SendBuffer::new(0);
        while let Some((local, remote, out)) = self.strays.front() {
            if !emit(*local, *remote, out, &empty) {
                return;
            }
            self.strays.pop_front();
        }
        // Visit the ready connections: send what is due, then put each back on the wheel at
        // its earliest timer. Those the transmit side had no room for stay ready.
        let mut pending = core::mem::take(&mut self.ready);
        let mut kept = 0;
        let mut full = false;
        for n in 0..pending.len() {
            let index = pending[n];
            if full {
                pending[kept] = index;
                kept += 1;
                continue;
            }
            let Some(s) = self.slots.get_mut(index as usize) else {
                continue;
            };
            s.ready = false;
            let Some(tcb) = s.tcb.as_mut() else { continue };
            let (local, remote) = (tcb.local(), tcb.remote());
            tcb.poll_output(now, &mut |seg: &Outgoing, buf: &SendBuffer| {
                let ok = emit(local, remote, seg, buf);
                full |= !ok;
                ok
            });
            // Every state change and retransmission comes from an event that puts the
            // connection on the ready list, so the counters follow each connection here.
            sync_counters(&mut s.estab, &mut s.retrans_seen, tcb, &mut self.stats);
            if let Some(ev) = tcb.take_fast_open_event() {
                // Linux tcp_fastopen_cache_set: remember the server's cookie and MSS, or
                // that a SYN with data was lost on the way to it.
                if let Some(cookie) = ev.cookie {
                    self.tfo_cache
                        .store_cookie(*remote.ip(), cookie, tcb.mss().len() as u16);
                }
                match ev.outcome {
                    Some(ActiveOutcome::DataAcked) => self.stats.fast_open_active += 1,
                    Some(ActiveOutcome::DataNotAcked) => self.stats.fast_open_active_fail += 1,
                    Some(ActiveOutcome::SynLost) => {
                        self.stats.fast_open_active_fail += 1;
                        self.tfo_cache.syn_data_lost(now, *remote.ip());
                    }
                    None => {}
                }
            }
            if tcb.is_closed() && !s.owned {
                self.remove(index);
                continue;
            }
            if tcb.is_closed() {
                unhash_closed(&mut self.flows, &mut self.wheel, index, tcb, &mut s.timer);
            }
            if tcb.state() == State::TimeWait
                && !s.owned
                && s.listener.is_none()
                && !tcb.wants_output()
            {
                self.enter_compact_time_wait(now, index);
                continue;
            }
            if tcb.wants_output() {
                s.ready = true;
                pending[kept] = index;
                kept += 1;
            }
            match (s.deadline(), s.timer) {
                (None, Some(id)) => {
                    self.wheel.cancel(id);
                    s.timer = None;
                }
                (Some(at), Some(id)) => {
                    if self.wheel.reschedule(id, at).is_err() {
                        s.timer = self.wheel.insert(at, index).ok();
                    }
                }
                (Some(at), None) => s.timer = self.wheel.insert(at, index).ok(),
                (None, None) => {}
            }
            // The wheel holds at most one entry per flow-table entry (connections, requests,
            // TIME-WAIT entries; a connection leaves both together, see `unhash_closed`) and
            // has room for `max_connections`, the flow table's limit, so an insert cannot
            // fail. Two ways it did fail were found by the `tcp_stateful` fuzz target on
            // 2026-11-22: a CLOSED connection that kept its timer, and one closed by a segment
            // whose wheel entry stayed until this loop reached it.
            debug_assert!(
                s.timer.is_some() || s.deadline().is_none(),
                "timer wheel full: a connection timer would be lost"
            );
        }
        pending.truncate(kept);
        // Nothing joins the ready list while it is being visited, but keep anything that did.
        pending.append(&mut self.ready);
        self.ready = pending;
    }
}
