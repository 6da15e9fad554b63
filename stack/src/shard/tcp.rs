//! The shard's TCP endpoints: connections (TCBs) keyed by 4-tuple, listeners with their accept
//! queues, ephemeral ports, and the conversion between wire segments and the state machine's
//! segment values.
//!
//! Everything here is owned by one shard, so it needs no lock. Connections are found by
//! 4-tuple in a [`FlowTable`] reserved for `max_connections` up front. Each connection has one
//! entry on a hierarchical [`TimerWheel`] at its earliest timer, and a connection that a segment,
//! a timer or the application touched joins a ready list; `poll_output` and `on_timeout` visit
//! only those, so their cost does not grow with the number of idle connections.

use super::flow_table::{FlowKey, FlowTable};
use super::steering::PortSteering;
use super::timer_wheel::{TimerId, TimerWheel};
use crate::errno::errno_enum;
use crate::port::RssConfig;
use crate::tcp::isn::IsnGenerator;
use crate::tcp::segment::{Flags, Incoming, Options, Outgoing, Timestamps};
use crate::tcp::send_buffer::SendBuffer;
use crate::tcp::{SeqNum, State, Tcb, TcpConfig};
use crate::time::Instant;
use crate::wire::tcp as wire_tcp;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{HashMap, VecDeque};

/// A connection of a shard. Stale handles (of a closed and reused slot) fail with `EBADF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpHandle {
    index: u32,
    generation: u32,
}

/// A listening port of a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenHandle {
    port: u16,
}

impl ListenHandle {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
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
        /// No ephemeral port is free for this destination.
        AddrNotAvailable => "EADDRNOTAVAIL",
        /// No route to the destination.
        NetUnreachable => "ENETUNREACH",
        /// Too many connections.
        NoBuffers => "ENOBUFS",
    }
);

/// A listener: its accept queue, bounded by the backlog.
#[derive(Debug)]
struct Listener {
    backlog: usize,
    /// Connections still in SYN-RECEIVED.
    half_open: usize,
    /// Completed connections waiting for `accept`, oldest first.
    accept_queue: VecDeque<TcpHandle>,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    tcb: Option<Tcb>,
    /// The listener this connection came from, until it is accepted.
    listener: Option<u16>,
    /// The application holds a handle.
    owned: bool,
    /// The connection's entry on the timer wheel, at its earliest timer.
    timer: Option<TimerId>,
    /// The connection is on the ready list (to be polled for output and rescheduled).
    ready: bool,
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
    listeners: HashMap<u16, Listener>,
    steering: PortSteering,
    max_connections: usize,
    stats: EndpointStats,
    /// Stray segments to answer with RST: (local, remote, segment to send).
    strays: VecDeque<(SocketAddrV4, SocketAddrV4, Outgoing)>,
}

impl fmt::Debug for TcpEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpEndpoints")
            .field("connections", &self.flows.len())
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

/// Granularity of connection timers.
const TIMER_TICK: crate::time::Duration = crate::time::Duration::from_millis(1);

/// Largest number of stray RSTs queued between two transmits.
const MAX_STRAYS: usize = 256;

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
        fast_open: None,
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
        TcpEndpoints {
            config,
            isn: IsnGenerator::new(isn_key),
            slots: Vec::new(),
            free: Vec::new(),
            flows: FlowTable::with_capacity(max_connections, flow_key),
            // Linux's timer granularity (HZ = 1000): deadlines round up to the millisecond.
            wheel: TimerWheel::new(max_connections, TIMER_TICK, Instant::ZERO),
            ready: Vec::with_capacity(max_connections),
            listeners: HashMap::new(),
            steering: PortSteering::new(None, 0),
            max_connections,
            stats: EndpointStats::default(),
            strays: VecDeque::new(),
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

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Connections in the table (any state, TIME-WAIT included).
    pub fn connection_count(&self) -> usize {
        self.flows.len()
    }

    /// Connections in `state`.
    pub fn count_in(&self, state: State) -> usize {
        self.slots
            .iter()
            .filter(|s| s.tcb.as_ref().is_some_and(|t| t.state() == state))
            .count()
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

    /// `listen` on `port` with an accept queue of `backlog` connections.
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenHandle, ListenError> {
        if backlog == 0 {
            return Err(ListenError::InvalidBacklog);
        }
        if self.listeners.contains_key(&port) {
            return Err(ListenError::AddrInUse);
        }
        self.listeners.insert(
            port,
            Listener {
                backlog,
                half_open: 0,
                accept_queue: VecDeque::with_capacity(backlog),
            },
        );
        Ok(ListenHandle { port })
    }

    /// `accept`: the oldest completed connection, or `EAGAIN`.
    pub fn accept(&mut self, l: ListenHandle) -> Result<TcpHandle, AcceptError> {
        let listener = self
            .listeners
            .get_mut(&l.port)
            .ok_or(AcceptError::BadHandle)?;
        let h = listener
            .accept_queue
            .pop_front()
            .ok_or(AcceptError::WouldBlock)?;
        if let Some(s) = self.slots.get_mut(h.index as usize) {
            s.owned = true;
            s.listener = None;
        }
        Ok(h)
    }

    /// Closes a listener; connections not yet accepted are reset, as on Linux.
    pub fn close_listener(&mut self, now: Instant, l: ListenHandle) {
        let Some(listener) = self.listeners.remove(&l.port) else {
            return;
        };
        for h in listener.accept_queue {
            if let Some(tcb) = self
                .slots
                .get_mut(h.index as usize)
                .and_then(|s| s.tcb.as_mut())
            {
                tcb.abort(now);
            }
        }
        for s in self.slots.iter_mut() {
            if s.listener == Some(l.port)
                && let Some(tcb) = s.tcb.as_mut()
            {
                tcb.abort(now);
                s.listener = None;
            }
        }
    }

    fn alloc_slot(&mut self, tcb: Tcb, owned: bool, listener: Option<u16>) -> Option<TcpHandle> {
        if self.flows.len() >= self.max_connections {
            return None;
        }
        let key = FlowKey::new(tcb.local(), tcb.remote());
        let h = match self.free.pop() {
            Some(index) => {
                let s = &mut self.slots[index as usize];
                s.generation = s.generation.wrapping_add(1);
                s.tcb = Some(tcb);
                s.owned = owned;
                s.listener = listener;
                TcpHandle {
                    index,
                    generation: s.generation,
                }
            }
            None => {
                let index = self.slots.len() as u32;
                self.slots.push(Slot {
                    generation: 0,
                    tcb: Some(tcb),
                    owned,
                    listener,
                    timer: None,
                    ready: false,
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
        self.touch(h.index);
        Some(h)
    }

    /// A free ephemeral port for a connection from `local_ip` to `remote` whose replies the
    /// NIC's RSS delivers to this shard (any free port on a single-queue port).
    fn ephemeral_port(&mut self, local_ip: Ipv4Addr, remote: SocketAddrV4) -> Option<u16> {
        let TcpEndpoints {
            steering,
            flows,
            listeners,
            ..
        } = self;
        steering.pick(local_ip, remote, |port| {
            flows
                .get(&FlowKey::new(SocketAddrV4::new(local_ip, port), remote))
                .is_none()
                && !listeners.contains_key(&port)
        })
    }

    /// Follows the port's receive-side scaling: active opens then choose ephemeral ports whose
    /// replies hash to `queue`, this shard's (design rule 5, "steering is exact").
    pub fn set_rss(&mut self, rss: Option<&RssConfig>, queue: u16) {
        self.steering = PortSteering::new(rss, queue);
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
        let port = self
            .ephemeral_port(local_ip, remote)
            .ok_or(ConnectError::AddrNotAvailable)?;
        let local = SocketAddrV4::new(local_ip, port);
        let iss = self.isn.isn(now, local, remote);
        let tcb = Tcb::connect(config, local, remote, iss, now);
        let h = self
            .alloc_slot(tcb, true, None)
            .ok_or(ConnectError::NoBuffers)?;
        self.stats.active_opens += 1;
        Ok(h)
    }

    /// `close`: the application lets go of the connection; it finishes on its own (FIN, or RST
    /// if unread data remains) and leaves the table once CLOSED.
    pub fn close(&mut self, now: Instant, h: TcpHandle) {
        if let Some(s) = self.slots.get_mut(h.index as usize)
            && s.generation == h.generation
            && s.owned
        {
            s.owned = false;
            if let Some(tcb) = s.tcb.as_mut() {
                tcb.close(now);
            }
            self.touch(h.index);
        }
    }

    /// Shutdown, first step: closes every listener (connections not yet accepted are reset)
    /// and gracefully closes every connection the application still holds, as if it had
    /// called `close` on each. Connections then finish on their own.
    pub fn close_all(&mut self, now: Instant) {
        let ports: Vec<u16> = self.listeners.keys().copied().collect();
        for port in ports {
            self.close_listener(now, ListenHandle { port });
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
        if let Some(index) = self.flows.get(&FlowKey::new(local, remote)) {
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
                    && self.listeners.contains_key(&local.port())
                {
                    reopen = true;
                } else {
                    tcb.on_segment(now, seg);
                    let after = tcb.state();
                    if before == State::SynReceived && after.is_synchronized() {
                        self.stats.established += 1;
                        if let Some(port) = slot.listener
                            && let Some(l) = self.listeners.get_mut(&port)
                        {
                            l.half_open = l.half_open.saturating_sub(1);
                            l.accept_queue.push_back(TcpHandle {
                                index,
                                generation: slot.generation,
                            });
                        }
                    } else if before == State::SynSent && after == State::Established {
                        self.stats.established += 1;
                    }
                    if tcb.error() == Some(crate::tcp::TcpError::ConnectionReset)
                        && before.is_synchronized()
                    {
                        self.stats.estab_resets += 1;
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
            if let Some(listener) = self.listeners.get_mut(&local.port()) {
                // The accept queue bounded by the backlog, as the Berkeley API describes it; the
                // SYN queue, SYN cookies and Linux's exact overflow behaviour are the
                // connection-rate milestone's.
                if listener.accept_queue.len() + listener.half_open >= listener.backlog {
                    self.stats.listen_overflows += 1;
                    return;
                }
                listener.half_open += 1;
                let iss = self.isn.isn(now, local, remote);
                let tcb = Tcb::accept(self.config, local, remote, iss, seg, now);
                if self.alloc_slot(tcb, false, Some(local.port())).is_some() {
                    self.stats.passive_opens += 1;
                } else if let Some(l) = self.listeners.get_mut(&local.port()) {
                    l.half_open = l.half_open.saturating_sub(1);
                }
                return;
            }
        }
        self.reset_stray(local, remote, seg);
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
        if let Some(s) = self.slots.get_mut(index as usize)
            && let Some(tcb) = s.tcb.take()
        {
            self.flows.remove(&FlowKey::new(tcb.local(), tcb.remote()));
            if let Some(id) = s.timer.take() {
                self.wheel.cancel(id);
            }
            if let Some(port) = s.listener.take()
                && let Some(l) = self.listeners.get_mut(&port)
            {
                if tcb.state() == State::Closed && !l.accept_queue.iter().any(|h| h.index == index)
                {
                    l.half_open = l.half_open.saturating_sub(1);
                }
                l.accept_queue.retain(|h| h.index != index);
            }
            s.owned = false;
            self.free.push(index);
        }
    }

    /// Runs the connection timers due at `now` (from the timer wheel); the connections whose
    /// timers fired join the ready list.
    pub fn on_timeout(&mut self, now: Instant) {
        // Connections on the ready list may have timers newer than their wheel entry (a segment
        // or the application set them since); run those that are due here, so that nothing due
        // waits for the wheel's millisecond rounding.
        for &index in &self.ready {
            if let Some(tcb) = self
                .slots
                .get_mut(index as usize)
                .and_then(|s| s.tcb.as_mut())
                && tcb.next_timer().is_some_and(|t| t <= now)
            {
                tcb.on_timeout(now);
            }
        }
        let TcpEndpoints {
            wheel,
            slots,
            ready,
            ..
        } = self;
        wheel.advance(now, |_, index| {
            let Some(s) = slots.get_mut(index as usize) else {
                return;
            };
            s.timer = None;
            if let Some(tcb) = s.tcb.as_mut() {
                tcb.on_timeout(now);
            }
            if !s.ready {
                s.ready = true;
                ready.push(index);
            }
        });
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
            if tcb.is_closed() && !s.owned {
                self.remove(index);
                continue;
            }
            if tcb.wants_output() {
                s.ready = true;
                pending[kept] = index;
                kept += 1;
            }
            match (tcb.next_timer(), s.timer) {
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
        }
        pending.truncate(kept);
        // Nothing joins the ready list while it is being visited, but keep anything that did.
        pending.append(&mut self.ready);
        self.ready = pending;
    }
}
