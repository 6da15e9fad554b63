//! The transmission control block: one connection's state, its application-facing operations,
//! its timers and its output. Segment arrival (RFC 9293 3.10.7) is in `input.rs`.
//!
//! Sans-IO: every entry point takes `now`; output is produced by [`Tcb::poll_output`] into a
//! closure; [`Tcb::poll_timeout`] says when [`Tcb::on_timeout`] must next be called.

use super::config::TcpConfig;
use super::congestion::Congestion;
use super::recv_buffer::RecvBuffer;
use super::rtt::RttEstimator;
use super::sack_scoreboard::Scoreboard;
use super::segment::{Flags, Incoming, Options, Outgoing, SackBlocks, Timestamps};
use super::send_buffer::SendBuffer;
use super::seq::{Mss, SeqNum, Window, WindowScale};
use super::state::State;
use crate::time::{Duration, Instant};
use core::fmt;
use core::net::SocketAddrV4;

/// Why a connection ended badly: what `read`/`write` report afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpError {
    /// RST in answer to our SYN: `ECONNREFUSED`.
    ConnectionRefused,
    /// RST on an open connection: `ECONNRESET`.
    ConnectionReset,
    /// Retransmissions, SYN retries or keepalive probes ran out: `ETIMEDOUT`.
    TimedOut,
}

impl TcpError {
    /// The errno name.
    pub const fn errno(self) -> &'static str {
        match self {
            TcpError::ConnectionRefused => "ECONNREFUSED",
            TcpError::ConnectionReset => "ECONNRESET",
            TcpError::TimedOut => "ETIMEDOUT",
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.errno())
    }
}

/// Why `send` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The send buffer is full, or the connection is not established yet: `EAGAIN`.
    WouldBlock,
    /// Writing was shut down (`shutdown(SHUT_WR)` or `close`): `EPIPE`.
    Shutdown,
    /// Never connected, or closed: `ENOTCONN`.
    NotConnected,
    /// The connection failed.
    Failed(TcpError),
}

impl SendError {
    /// The errno name.
    pub const fn errno(self) -> &'static str {
        match self {
            SendError::WouldBlock => "EAGAIN",
            SendError::Shutdown => "EPIPE",
            SendError::NotConnected => "ENOTCONN",
            SendError::Failed(e) => e.errno(),
        }
    }
}

/// Why `recv` failed. End of stream is not an error: it is `Ok(0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing to read yet: `EAGAIN`.
    WouldBlock,
    /// Never connected: `ENOTCONN`.
    NotConnected,
    /// The connection failed.
    Failed(TcpError),
}

impl RecvError {
    /// The errno name.
    pub const fn errno(self) -> &'static str {
        match self {
            RecvError::WouldBlock => "EAGAIN",
            RecvError::NotConnected => "ENOTCONN",
            RecvError::Failed(e) => e.errno(),
        }
    }
}

/// Loss recovery in progress (RFC 6675 / RFC 6582).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Recovery {
    /// RFC 6582 "recover": snd_max when recovery began; recovery ends when it is acknowledged.
    pub recover: SeqNum,
    /// RFC 6675 HighRxt: the highest sequence number retransmitted.
    pub high_rxt: SeqNum,
    /// RFC 6675 RescueRxt.
    pub rescue_rxt: Option<SeqNum>,
}

/// A reset to send that is not a normal segment of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PendingRst {
    pub seq: SeqNum,
    pub ack: Option<SeqNum>,
}

/// Per-connection counters (summed into the shard's `netstat -s`-style counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Segments sent.
    pub segs_out: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Segments retransmitted (RTO, fast retransmit and SACK recovery).
    pub retrans_segs: u64,
    /// Retransmission timeouts.
    pub rto_count: u64,
    /// Fast retransmits (entries into loss recovery).
    pub fast_retransmits: u64,
    /// Duplicate ACKs received.
    pub dupacks_in: u64,
    /// Segments dropped as unacceptable (outside the window, PAWS, ...).
    pub dropped_unacceptable: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Out-of-order segments received.
    pub ooo_segs: u64,
    /// Out-of-order segments dropped because too many holes were open.
    pub ooo_dropped: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// Times the window we advertise went from open to zero: the receive buffer is full and
    /// the peer must wait (Linux `TCPToZeroWindowAdv`).
    pub to_zero_window_adv: u64,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
}

/// One TCP connection.
pub struct Tcb {
    pub(super) state: State,
    pub(super) local: SocketAddrV4,
    pub(super) remote: SocketAddrV4,
    pub(super) config: TcpConfig,
    /// Opened by a listener (passive open) rather than `connect`.
    pub(super) passive: bool,

    // RFC 9293 3.3.1, send sequence variables.
    pub(super) iss: SeqNum,
    pub(super) snd_una: SeqNum,
    pub(super) snd_nxt: SeqNum,
    /// The highest sequence number sent so far, plus one (snd_nxt rewinds on a timeout).
    pub(super) snd_max: SeqNum,
    pub(super) snd_wnd: u32,
    pub(super) snd_wl1: SeqNum,
    pub(super) snd_wl2: SeqNum,
    pub(super) max_snd_wnd: u32,
    pub(super) snd_wscale: WindowScale,
    /// End of the last segment sent shorter than the MSS (Linux `snd_sml`, for Minshall's Nagle).
    pub(super) snd_sml: SeqNum,

    // RFC 9293 3.3.1, receive sequence variables.
    pub(super) irs: SeqNum,
    pub(super) rcv_nxt: SeqNum,
    pub(super) rcv_wscale: WindowScale,
    /// The right edge of the window we last advertised (never moved left: RFC 9293 3.8.6.2.2).
    pub(super) rcv_adv: SeqNum,
    /// Sequence number of the peer's FIN, once seen (it may arrive before the data before it).
    pub(super) peer_fin: Option<SeqNum>,

    // Negotiated options.
    pub(super) mss: Mss,
    pub(super) sack_ok: bool,
    pub(super) ts_ok: bool,
    pub(super) ts_recent: u32,
    pub(super) ts_recent_at: Instant,
    pub(super) ts_offset: u32,
    pub(super) last_ack_sent: SeqNum,

    pub(super) send_buf: SendBuffer,
    pub(super) recv_buf: RecvBuffer,
    /// The application will send no more: a FIN follows the data.
    pub(super) fin_queued: bool,
    /// Sequence number of our FIN once it has been sent.
    pub(super) fin_seq: Option<SeqNum>,
    /// A SYN (or SYN-ACK) is due.
    pub(super) syn_due: bool,

    pub(super) rtt: RttEstimator,
    /// Karn's algorithm without timestamps: the one segment being timed.
    pub(super) rtt_probe: Option<(SeqNum, Instant)>,
    /// Our timestamp clock when we last retransmitted: echoes of older TSvals are not RTT
    /// samples (see `take_rtt_sample`).
    pub(super) last_rexmit_ts: Option<u32>,
    pub(super) cc: Congestion,
    pub(super) scoreboard: Scoreboard,
    pub(super) dupacks: u32,
    pub(super) recovery: Option<Recovery>,
    /// The first unacknowledged segment must be retransmitted now (fast retransmit).
    pub(super) retransmit_head: bool,
    /// Consecutive timeouts without progress.
    pub(super) retries: u32,

    pub(super) rto_at: Option<Instant>,
    pub(super) delack_at: Option<Instant>,
    pub(super) persist_at: Option<Instant>,
    pub(super) persist_backoff: u32,
    /// Window probes sent since the peer last acknowledged anything (Linux
    /// `icsk_probes_out`): the connection times out when they reach `retries`.
    pub(super) probes_out: u32,
    pub(super) keepalive_at: Option<Instant>,
    pub(super) keepalive_sent: u32,
    /// FIN-WAIT-2 or TIME-WAIT expiry.
    pub(super) close_at: Option<Instant>,

    pub(super) ack_now: bool,
    /// Full-sized segments received since our last ACK (RFC 5681 4.2: ACK every second one).
    pub(super) unacked_segs: u32,
    pub(super) pending_rst: Option<PendingRst>,
    pub(super) probe_due: bool,
    /// The persist timer expired on a small non-zero window: send what fits, once.
    pub(super) force_send: bool,
    pub(super) last_challenge_ack: Option<Instant>,
    /// The last window we advertised was zero.
    pub(super) zero_window_advertised: bool,

    pub(super) error: Option<TcpError>,
    /// `close()` was called: the application holds no handle any more (an orphan, as Linux says).
    pub(super) app_closed: bool,
    pub(super) last_recv_at: Instant,
    pub(super) last_send_at: Instant,
    pub(super) stats: ConnStats,
    /// TCP Fast Open of an active open (RFC 7413).
    pub(super) tfo: super::fastopen::ActiveState,
}

impl fmt::Debug for Tcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcb")
            .field("state", &self.state)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("snd_max", &self.snd_max)
            .field("snd_wnd", &self.snd_wnd)
            .field("rcv_nxt", &self.rcv_nxt)
            .field("cwnd", &self.cc.cwnd())
            .field("rto_at", &self.rto_at)
            .field("recovery", &self.recovery)
            .field("retransmit_head", &self.retransmit_head)
            .field("ack_now", &self.ack_now)
            .field("fin_seq", &self.fin_seq)
            .field("send_buf", &self.send_buf.len())
            .finish_non_exhaustive()
    }
}

/// Linux `tcp_orphan_retries` (0 means 8): backoffs of the persist timer after which a
/// connection the application closed is given up.
const ORPHAN_RETRIES: u32 = 8;

/// Linux's smallest `SO_SNDBUF` (`SOCK_MIN_SNDBUF`, 2 * 2304 bytes on 64-bit).
const MIN_SEND_BUFFER: usize = 4608;

/// Linux's smallest `SO_RCVBUF` (`SOCK_MIN_RCVBUF`, 2304 bytes on 64-bit).
const MIN_RECV_BUFFER: usize = 2304;

/// TCP/IP header bytes the MSS option leaves out; our MSS option is MTU - 40 (RFC 6691).
const TS_OPTION_LEN: usize = 12;

impl Tcb {
    fn new(
        config: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        now: Instant,
    ) -> Tcb {
        let rcv_wscale = if config.window_scaling {
            WindowScale::for_buffer(config.recv_buffer)
        } else {
            WindowScale::NONE
        };
        let mss = Mss::new_clamped(config.mss);
        Tcb {
            state: State::Closed,
            local,
            remote,
            passive: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_wscale: WindowScale::NONE,
            snd_sml: iss,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_wscale,
            rcv_adv: SeqNum(0),
            peer_fin: None,
            mss,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_at: now,
            // A per-connection offset hides the host's clock (Linux does the same since 4.10).
            ts_offset: iss.get().rotate_left(13),
            last_ack_sent: SeqNum(0),
            send_buf: SendBuffer::new(config.send_buffer),
            recv_buf: RecvBuffer::new(config.recv_buffer, config.max_ooo_ranges),
            fin_queued: false,
            fin_seq: None,
            syn_due: false,
            rtt: RttEstimator::new(config.rto),
            rtt_probe: None,
            last_rexmit_ts: None,
            cc: Congestion::new(config.congestion, mss),
            scoreboard: Scoreboard::new(config.max_ooo_ranges),
            dupacks: 0,
            recovery: None,
            retransmit_head: false,
            retries: 0,
            rto_at: None,
            delack_at: None,
            persist_at: None,
            persist_backoff: 0,
            probes_out: 0,
            keepalive_at: None,
            keepalive_sent: 0,
            close_at: None,
            ack_now: false,
            unacked_segs: 0,
            pending_rst: None,
            probe_due: false,
            force_send: false,
            last_challenge_ack: None,
            zero_window_advertised: false,
            error: None,
            app_closed: false,
            last_recv_at: now,
            last_send_at: now,
            stats: ConnStats::default(),
            tfo: super::fastopen::ActiveState::default(),
            config,
        }
    }

    /// Active open (`connect`): a connection in SYN-SENT whose SYN goes out on the next
    /// [`Tcb::poll_output`].
    pub fn connect(
        config: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        now: Instant,
    ) -> Tcb {
        let mut tcb = Tcb::new(config, local, remote, SeqNum(iss), now);
        tcb.state = State::SynSent;
        tcb.syn_due = true;
        tcb
    }

    /// Passive open: a listener received `syn` (RFC 9293 3.10.7.2); the connection is in
    /// SYN-RECEIVED and its SYN-ACK goes out on the next [`Tcb::poll_output`].
    pub fn accept(
        config: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        syn: &Incoming<'_>,
        now: Instant,
    ) -> Tcb {
        let mut tcb = Tcb::passive(config, local, remote, iss, now);
        tcb.take_syn(syn, now);
        tcb
    }

    /// The first half of [`Tcb::accept`]: a passive open in SYN-RECEIVED that has not seen
    /// its SYN yet. Only plain stores after [`Tcb::new`], so that the compiler can build it
    /// where it will stay (a connection table slot) instead of on the stack.
    pub(crate) fn passive(
        config: TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        now: Instant,
    ) -> Tcb {
        let mut tcb = Tcb::new(config, local, remote, SeqNum(iss), now);
        tcb.passive = true;
        tcb.state = State::SynReceived;
        tcb
    }

    /// The second half of [`Tcb::accept`], in place: the peer's SYN (RFC 9293 3.10.7.2: "Set
    /// RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ") and its options; the SYN-ACK is due.
    pub(crate) fn take_syn(&mut self, syn: &Incoming<'_>, now: Instant) {
        self.irs = syn.seq;
        self.rcv_nxt = syn.seq + 1u32;
        self.rcv_adv = self.rcv_nxt;
        self.negotiate(syn, now);
        // RFC 7323 2.2: the window of a SYN is never scaled.
        self.update_send_window(u32::from(syn.window), syn.seq, self.iss);
        self.syn_due = true;
    }

    /// Sets the offset of the connection's timestamp clock (TSval = milliseconds + offset),
    /// before its first segment: the shard keys it by the address pair (see
    /// [`super::isn::IsnGenerator::ts_offset`]).
    pub fn set_ts_offset(&mut self, offset: u32) {
        self.ts_offset = offset;
    }

    /// TCP Fast Open for this active open (RFC 7413 4.1), before its first SYN: the SYN
    /// carries `cookie` (a request if empty) and, with a real cookie, up to `max_syn_data`
    /// bytes of the data already queued ([`Tcb::queue_syn_data`]). Ignored after the SYN left.
    pub fn set_fast_open(&mut self, cookie: crate::wire::tcp_option::TfoCookie, max_syn_data: u32) {
        if self.state == State::SynSent && self.retries == 0 && self.snd_max == self.iss {
            self.tfo.cookie = Some(cookie);
            self.tfo.max_syn_data = if cookie.is_request() { 0 } else { max_syn_data };
        }
    }

    /// Queues data before the connection is established (Linux `sendto(MSG_FASTOPEN)`): it
    /// goes in the SYN with Fast Open, else after the handshake. Returns the bytes taken.
    pub fn queue_syn_data(&mut self, data: &[u8]) -> usize {
        if self.state != State::SynSent || self.fin_queued {
            return 0;
        }
        self.send_buf.write(data)
    }

    /// Marks a passive open as made by TCP Fast Open (RFC 7413 4.2.2: the SYN carried a valid
    /// cookie): until the handshake completes, the application may already write, and the
    /// data goes out after the SYN-ACK within the window of the client's SYN. RFC 7413 4.2.2
    /// lets the server send data before the final ACK (its SYN-ACK MAY even carry some); this
    /// sends it as Linux does, in segments after a data-less SYN-ACK (`tcp_sendmsg` on a
    /// `TCP_SYN_RECV` Fast Open child). Without it, a write in SYN-RECEIVED waits (`EAGAIN`).
    pub fn set_passive_fast_open(&mut self) {
        if self.passive && self.state == State::SynReceived {
            self.tfo.passive_child = true;
        }
    }

    /// True for a passive open made by TCP Fast Open ([`Tcb::set_passive_fast_open`]).
    pub fn is_passive_fast_open(&self) -> bool {
        self.tfo.passive_child
    }

    /// True for a Fast Open child still in SYN-RECEIVED: the state in which data may follow
    /// the SYN-ACK before the handshake completes.
    fn fast_open_early_data(&self) -> bool {
        self.tfo.passive_child && self.state == State::SynReceived
    }

    /// What the Fast Open attempt produced since the last call (a server cookie, the fate of
    /// the SYN's data), once.
    pub fn take_fast_open_event(&mut self) -> Option<super::fastopen::ActiveEvent> {
        let cookie = self.tfo.peer_cookie.take();
        let outcome = self.tfo.outcome.take();
        (cookie.is_some() || outcome.is_some())
            .then_some(super::fastopen::ActiveEvent { cookie, outcome })
    }

    /// A connection made from a compact request entry (see [`super::listener::SynRequest`]):
    /// the entry already sent the SYN-ACK, so SND.NXT is past our SYN and none is due.
    pub(super) fn syn_ack_sent(&mut self) {
        self.syn_due = false;
        self.snd_nxt = self.iss + 1u32;
        self.snd_max = self.snd_nxt;
        // What the SYN-ACK advertised and acknowledged (its window is never scaled, RFC 7323
        // 2.2), as `segment` records it for segments the TCB sends itself.
        let (_, right) = self.window_to_advertise(true);
        self.rcv_adv = right;
        self.last_ack_sent = self.rcv_nxt;
    }

    /// Options from the peer's SYN or SYN-ACK: each is used only if both sides offered it.
    pub(super) fn negotiate(&mut self, syn: &Incoming<'_>, now: Instant) {
        let o = &syn.options;
        // RFC 9293 3.7.1: without an MSS option, assume 536.
        let peer_mss = o.mss.map_or(Mss::DEFAULT_IPV4, Mss::new_clamped);
        self.mss = Mss::new_clamped(self.config.mss).min(peer_mss);
        match (self.config.window_scaling, o.window_scale) {
            (true, Some(shift)) => self.snd_wscale = WindowScale::new_clamped(shift),
            // RFC 7323 2.2: scaling is used only if both sides sent the option.
            _ => {
                self.snd_wscale = WindowScale::NONE;
                self.rcv_wscale = WindowScale::NONE;
            }
        }
        self.sack_ok = self.config.sack && o.sack_permitted;
        if let (true, Some(ts)) = (self.config.timestamps, o.timestamps) {
            self.ts_ok = true;
            self.ts_recent = ts.tsval;
            self.ts_recent_at = now;
        }
        self.cc.set_mss(self.payload_mss());
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Local address and port.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// Remote address and port.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// The error that ended the connection, if any (`SO_ERROR`).
    pub fn error(&self) -> Option<TcpError> {
        self.error
    }

    /// Counters.
    pub fn stats(&self) -> &ConnStats {
        &self.stats
    }

    /// The effective MSS (the smaller of ours and the peer's).
    pub fn mss(&self) -> Mss {
        self.mss
    }

    /// The congestion window in bytes.
    pub fn cwnd(&self) -> usize {
        self.cc.cwnd()
    }

    /// The smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// True once the connection is gone for good (CLOSED): the shard may drop it.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.pending_rst.is_none()
    }

    /// True if the application closed its handle (the shard owns the connection until it ends).
    pub fn is_orphan(&self) -> bool {
        self.app_closed
    }

    /// Payload bytes per full-sized segment: the MSS less the timestamp option (RFC 6691 2:
    /// options are subtracted from the segment, not from the MSS option).
    pub(super) fn payload_mss(&self) -> Mss {
        let opts = if self.ts_ok { TS_OPTION_LEN } else { 0 };
        Mss::new_clamped((self.mss.len().saturating_sub(opts)) as u16)
    }

    /// Our timestamp clock: milliseconds, offset per connection (RFC 7323 5.4 allows 1 ms..1 s
    /// ticks; Linux uses 1 ms).
    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    // ----- application operations -----

    /// Bytes the application can write now.
    pub fn send_capacity(&self) -> usize {
        self.send_buf.free()
    }

    /// `SO_SNDBUF`: the most bytes the send buffer holds, unsent and unacknowledged together.
    /// It is a limit, not an allocation: storage grows with what is written and is freed once
    /// everything is acknowledged. Bytes already buffered are never dropped (they were
    /// accepted from the application and will be sent): below a smaller limit, writes wait
    /// (`EWOULDBLOCK`) until acknowledgments bring the buffered bytes under it, as on Linux.
    /// The limit is at least Linux's minimum (`SOCK_MIN_SNDBUF`, 4608 bytes).
    pub fn set_send_capacity(&mut self, bytes: usize) {
        let limit = self.send_buf.set_capacity(bytes.max(MIN_SEND_BUFFER));
        self.config.send_buffer = limit;
    }

    /// `SO_RCVBUF`: the most bytes the receive buffer holds, which bounds the window we
    /// advertise. It is a limit, not an allocation: storage grows with the data received and
    /// is freed once the application has read everything.
    ///
    /// Shrinking is clamped, as Linux clamps it: the buffer never goes below the unread bytes
    /// plus the window already advertised, because the peer may send up to that right edge
    /// (RFC 9293 3.8.6.2.2: a receiver SHOULD NOT shrink the window, i.e. move its right edge
    /// left), nor below the out-of-order data held, nor below Linux's minimum
    /// (`SOCK_MIN_RCVBUF`, 2304 bytes); and never above the largest window, 1 GiB (RFC 7323
    /// 2.3). The window scale is chosen from the buffer size when the SYN is sent (RFC 7323
    /// 2.2: it is fixed for the connection), so this call changes it only if our SYN has not
    /// gone out yet; a larger buffer set later can only be advertised up to what that scale
    /// expresses (65535 << scale bytes).
    pub fn set_recv_capacity(&mut self, bytes: usize) {
        // RFC 9293 3.8.6.2.2: keep every byte up to the advertised right edge receivable.
        let mut advertised = self.rcv_adv.distance_from(self.rcv_nxt) as usize;
        if self.state == State::SynSent && self.snd_max != self.iss {
            // Our SYN offered a window (RFC 7323 2.2: unscaled) before RCV.NXT was known.
            advertised = self.recv_buf.capacity().min(0xffff);
        }
        let floor = self
            .recv_buf
            .readable()
            .saturating_add(advertised)
            .max(MIN_RECV_BUFFER);
        let limit = self
            .recv_buf
            .set_capacity(bytes.clamp(floor, Window::MAX.len().max(floor)));
        self.config.recv_buffer = limit;
        let syn_unsent = self.syn_due && self.snd_max == self.iss && !self.passive;
        if syn_unsent && self.config.window_scaling {
            self.rcv_wscale = WindowScale::for_buffer(limit);
        }
    }

    /// Heap bytes the connection's buffers hold now: send and receive storage, the
    /// out-of-order ranges and the SACK scoreboard (0 for an idle connection whose buffers
    /// are empty).
    pub fn buffer_memory(&self) -> usize {
        self.send_buf.allocated() + self.recv_buf.allocated() + self.scoreboard.allocated()
    }

    fn check_send(&self) -> Result<(), SendError> {
        if let Some(e) = self.error {
            return Err(SendError::Failed(e));
        }
        if self.fin_queued || self.app_closed {
            return Err(SendError::Shutdown);
        }
        match self.state {
            State::Established | State::CloseWait => Ok(()),
            // Linux tcp_sendmsg: a Fast Open child may be written to before the final ACK.
            State::SynReceived if self.tfo.passive_child => Ok(()),
            // Linux: a write on a connection still being set up waits (EAGAIN when non-blocking).
            State::SynSent | State::SynReceived => Err(SendError::WouldBlock),
            _ => Err(SendError::NotConnected),
        }
    }

    /// `write`: copies as much of `data` as fits into the send buffer.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, SendError> {
        self.check_send()?;
        match self.send_buf.write(data) {
            0 if !data.is_empty() => Err(SendError::WouldBlock),
            n => Ok(n),
        }
    }

    /// Zero-copy `write`: lends up to `max` bytes of free send buffer to `f`, which returns how
    /// many it wrote.
    pub fn send_with(
        &mut self,
        max: usize,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, SendError> {
        self.check_send()?;
        if self.send_buf.free() == 0 && max > 0 {
            return Err(SendError::WouldBlock);
        }
        Ok(self.send_buf.write_with(max, f))
    }

    /// Bytes ready to read.
    pub fn recv_available(&self) -> usize {
        self.recv_buf.readable()
    }

    /// True if the peer's FIN has been received and every byte before it read: `read` returns 0.
    pub fn at_eof(&self) -> bool {
        self.peer_fin.is_some_and(|f| f == self.rcv_nxt - 1u32) && self.recv_buf.readable() == 0
    }

    fn check_recv(&self) -> Result<(), RecvError> {
        if self.recv_buf.readable() > 0 {
            return Ok(());
        }
        if let Some(e) = self.error {
            return Err(RecvError::Failed(e));
        }
        match self.state {
            State::SynSent | State::SynReceived => Err(RecvError::WouldBlock),
            State::Closed if self.peer_fin.is_none() => Err(RecvError::NotConnected),
            _ => Err(RecvError::WouldBlock),
        }
    }

    /// `read`: copies received bytes into `buf`. `Ok(0)` means end of stream (the peer's FIN),
    /// as on any Berkeley socket.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        if self.at_eof() {
            return Ok(0);
        }
        self.check_recv()?;
        if self.recv_buf.in_place() > 0 {
            // The next bytes are in a frame only the shard can lend (`TcpEndpoints::recv`).
            return Err(RecvError::WouldBlock);
        }
        let n = self.recv_buf.read(buf);
        self.after_read();
        Ok(n)
    }

    /// Zero-copy `read`: lends the first contiguous received bytes to `f`, which returns how many
    /// it consumed. `Ok(0)` with `f` not called means end of stream.
    pub fn recv_with(&mut self, f: impl FnOnce(&[u8]) -> usize) -> Result<usize, RecvError> {
        if self.at_eof() {
            return Ok(0);
        }
        self.check_recv()?;
        if self.recv_buf.in_place() > 0 {
            return Err(RecvError::WouldBlock);
        }
        let n = self.recv_buf.read_with(f);
        self.after_read();
        Ok(n)
    }

    /// Received bytes at the front of the stream that are still in frames the shard holds
    /// (zero-copy receive; see `recv_buffer.rs`). [`Tcb::recv`] and [`Tcb::recv_with`] return
    /// `EAGAIN` while there are any: the shard lends them.
    pub(crate) fn in_place(&self) -> usize {
        self.recv_buf.in_place()
    }

    /// The application consumed `n` bytes in place (clamped to [`Tcb::in_place`]): as a read.
    pub(crate) fn consume_in_place(&mut self, n: usize) -> usize {
        let n = self.recv_buf.consume_in_place(n);
        self.after_read();
        n
    }

    /// Copies the last `data.len()` bytes still in place into the receive buffer (the frame
    /// holding them is about to go back to the driver). False if fewer are in place.
    pub(crate) fn spill_in_place(&mut self, data: &[u8]) -> bool {
        self.recv_buf.spill_in_place(data)
    }

    /// The frames holding this connection's in-place bytes went back to the driver unread and
    /// unspilled (a caller broke the holding contract): bytes already acknowledged are lost,
    /// so the connection cannot go on. It is reset (`ECONNRESET`), and its received data
    /// dropped so that nothing stale is ever read.
    pub(crate) fn lose_in_place(&mut self, now: Instant) {
        self.recv_buf.clear();
        self.reset(now);
        self.error = Some(TcpError::ConnectionReset);
    }

    /// After the application read: announce the opened window if it grew enough (Linux
    /// `tcp_cleanup_rbuf`: when what we advertised is at most half of what we could).
    fn after_read(&mut self) {
        if !self.state.can_receive() {
            return;
        }
        let advertised = self.rcv_adv.distance_from(self.rcv_nxt) as usize;
        let now_possible = self.recv_buf.window();
        if now_possible >= 2 * advertised.max(1) && now_possible - advertised >= self.mss.len() {
            self.ack_now = true;
        }
    }

    /// `shutdown(SHUT_WR)`: send a FIN after the data already written (RFC 9293 3.10.4).
    pub fn shutdown_write(&mut self) {
        if self.fin_queued {
            return;
        }
        match self.state {
            // Linux inet_shutdown: a socket still connecting is disconnected (tcp_disconnect,
            // no RST from SYN-SENT) and its timers cleared.
            State::SynSent => self.enter_closed(),
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                if self.state == State::Established {
                    self.state = State::FinWait1;
                }
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// `close`: no more reads or writes. Unread received data resets the connection, as Linux
    /// does (RFC 2525 2.17); otherwise a FIN follows the data and the connection finishes on its
    /// own (FIN-WAIT-2 bounded by `fin_timeout`, then TIME-WAIT).
    pub fn close(&mut self, now: Instant) {
        if self.app_closed {
            return;
        }
        self.app_closed = true;
        if self.recv_buf.readable() > 0 && self.state.is_synchronized() {
            self.reset(now);
            return;
        }
        match self.state {
            State::SynSent | State::Closed | State::Listen => self.enter_closed(),
            State::FinWait2 => self.close_at = Some(now + self.config.fin_timeout),
            _ => self.shutdown_write(),
        }
    }

    /// `SO_LINGER` with a zero timeout, then `close`: send RST, skip TIME-WAIT.
    pub fn abort(&mut self, now: Instant) {
        self.app_closed = true;
        self.reset(now);
    }

    /// Sends RST for the current state and ends the connection.
    pub(super) fn reset(&mut self, _now: Instant) {
        if matches!(self.state, State::SynReceived)
            || self.state.is_synchronized() && self.state != State::TimeWait
        {
            // RFC 9293 3.10.7.4 / Linux tcp_send_active_reset: <SEQ=SND.NXT><CTL=RST,ACK>.
            self.pending_rst = Some(PendingRst {
                seq: self.snd_max,
                ack: Some(self.rcv_nxt),
            });
        }
        self.enter_closed();
    }

    pub(super) fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.retransmit_head = false;
        self.rto_at = None;
        self.delack_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.close_at = None;
        self.syn_due = false;
        self.ack_now = false;
        self.probe_due = false;
    }

    pub(super) fn fail(&mut self, error: TcpError) {
        self.error = Some(error);
        self.enter_closed();
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.retransmit_head = false;
        self.rto_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.close_at = Some(now + self.config.msl * 2);
    }

    // ----- timers -----

    /// When [`Tcb::on_timeout`] (or [`Tcb::poll_output`]) next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.wants_output() {
            return Some(Instant::ZERO);
        }
        self.next_timer()
    }

    /// The earliest of the connection's timers (retransmission, delayed ACK, persist, keepalive,
    /// FIN-WAIT-2/TIME-WAIT), ignoring output that is due now.
    pub fn next_timer(&self) -> Option<Instant> {
        // Folded pairwise rather than through an iterator: this runs for every connection
        // on the ready list, every poll.
        let earlier = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) => x,
            (None, y) => y,
        };
        earlier(
            earlier(self.rto_at, self.delack_at),
            earlier(earlier(self.persist_at, self.keepalive_at), self.close_at),
        )
    }

    /// True if [`Tcb::poll_output`] would send something now.
    pub fn wants_output(&self) -> bool {
        self.pending_rst.is_some()
            || (self.syn_due && matches!(self.state, State::SynSent | State::SynReceived))
            || self.ack_now
            || self.probe_due
            || self.retransmit_head
            || (self.state.is_synchronized() && self.can_send_data())
            || (self.fast_open_early_data() && self.early_data_len().is_some())
    }

    /// Runs the timers due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.close_at.is_some_and(|t| t <= now) {
            self.close_at = None;
            match self.state {
                State::TimeWait => self.enter_closed(),
                State::FinWait2 => {
                    // Linux tcp_keepalive_timer: an orphan whose FIN-WAIT-2 outlasted
                    // tcp_fin_timeout is reset.
                    self.reset(now);
                }
                _ => {}
            }
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            self.ack_now = true;
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.on_rto(now);
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            if self.snd_una == self.snd_max
                && self.unsent_data() > 0
                && self.next_data_len().is_none()
            {
                self.persist_backoff = (self.persist_backoff + 1).min(16);
                if self.snd_wnd == 0 {
                    // Linux tcp_probe_timer: RFC 1122 4.2.2.17 keeps a connection open as long
                    // as the receiver answers the probes (an answer resets `probes_out`); it
                    // times out when `tcp_retries2` probes in a row went unanswered, and an
                    // orphan (closed by the application) when its backoff reaches
                    // `tcp_orphan_retries` (8 by default): nobody will ever read its error.
                    let orphan_dead = self.app_closed && self.persist_backoff > ORPHAN_RETRIES;
                    if self.probes_out >= self.config.retries || orphan_dead {
                        self.fail(TcpError::TimedOut);
                        return;
                    }
                    self.probes_out += 1;
                    self.probe_due = true;
                    self.stats.window_probes += 1;
                } else {
                    // A window too small for sender SWS avoidance: after the override timeout,
                    // send what fits (Linux tcp_write_wakeup does the same).
                    self.force_send = true;
                }
            }
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = None;
            self.on_keepalive(now);
        }
    }

    fn on_rto(&mut self, now: Instant) {
        self.stats.rto_count += 1;
        self.retries += 1;
        match self.state {
            State::SynSent | State::SynReceived => {
                let limit = if self.state == State::SynSent {
                    self.config.syn_retries
                } else {
                    self.config.synack_retries
                };
                if self.retries > limit {
                    self.fail(TcpError::TimedOut);
                    return;
                }
                self.rtt.backoff();
                self.rtt_probe = None;
                self.syn_due = true;
                self.stats.retrans_segs += 1;
                if self.state == State::SynSent && self.tfo.syn_data > 0 && self.retries == 1 {
                    // RFC 7413 4.1.3.1: the SYN with data got no answer; the data goes after
                    // the handshake now, and the shard stops using Fast Open to this server.
                    self.tfo.outcome = Some(super::fastopen::ActiveOutcome::SynLost);
                    self.tfo.syn_data = 0;
                    self.snd_nxt = self.iss;
                }
            }
            // Nothing to retransmit, and no timer to re-arm.
            State::Closed | State::Listen | State::TimeWait => return,
            _ => {
                if self.snd_una == self.snd_max {
                    return;
                }
                // Linux tcp_retransmit_timer: "Receiver dastardly shrinks window. Our
                // retransmits become zero probes, but we should not timeout this connection.
                // If the socket is an orphan, time it out": with a zero window the
                // retransmissions do not count toward tcp_retries2; the connection is given up
                // once nothing was received for 2 * TCP_RTO_MAX (tcp_rtx_probe0_timed_out).
                let probing = self.snd_wnd == 0 && !self.app_closed;
                let silent = now.saturating_duration_since(self.last_recv_at);
                let timed_out = if probing {
                    silent > self.config.rto.max.saturating_mul(2)
                } else {
                    self.retries > self.config.retries
                };
                if timed_out {
                    self.fail(TcpError::TimedOut);
                    return;
                }
                // RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off.
                // RFC 5681 3.1: ssthresh from the flight, cwnd to one segment.
                let flight = self.snd_max - self.snd_una;
                self.cc.on_rto(now, flight as usize);
                self.rtt.backoff();
                self.rtt_probe = None;
                self.recovery = None;
                self.dupacks = 0;
                // Go back: resend from SND.UNA, skipping what the peer SACKed (RFC 6675 5.1
                // keeps the scoreboard across a timeout).
                // An unacknowledged FIN is resent at its own sequence number after the data.
                self.snd_nxt = self.snd_una;
                // RFC 9293 3.8.6.1: "the sending TCP must regularly retransmit to the receiving
                // TCP even when the window is zero": the head goes out whatever the window (it
                // doubles as a window probe, as in Linux's tcp_retransmit_timer).
                self.retransmit_head = true;
            }
        }
        self.rto_at = Some(now + self.rtt.rto());
    }

    fn on_keepalive(&mut self, now: Instant) {
        let Some(ka) = self.config.keepalive else {
            return;
        };
        if !matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait2
        ) {
            return;
        }
        if self.snd_una != self.snd_max || self.unsent_data() > 0 {
            // Data in flight: the retransmission timer watches the connection.
            self.keepalive_at = Some(now + ka.idle);
            return;
        }
        let idle = now.saturating_duration_since(self.last_recv_at);
        if idle < ka.idle {
            self.keepalive_at = Some(self.last_recv_at + ka.idle);
            return;
        }
        if self.keepalive_sent >= ka.probes {
            // Linux tcp_keepalive_timer: reset the connection and report ETIMEDOUT.
            self.reset(now);
            self.error = Some(TcpError::TimedOut);
            return;
        }
        self.keepalive_sent += 1;
        self.stats.keepalive_probes += 1;
        self.probe_due = true;
        self.keepalive_at = Some(now + ka.interval);
    }

    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.config.keepalive {
            self.keepalive_sent = 0;
            self.keepalive_at = Some(now + ka.idle);
        }
    }

    /// `SO_KEEPALIVE` and its parameters.
    pub fn set_keepalive(&mut self, now: Instant, keepalive: Option<super::config::Keepalive>) {
        self.config.keepalive = keepalive;
        match keepalive {
            Some(_) if self.state.is_synchronized() => self.arm_keepalive(now),
            _ => self.keepalive_at = None,
        }
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&mut self, on: bool) {
        self.config.nodelay = on;
    }

    /// `TCP_QUICKACK`.
    pub fn set_quickack(&mut self, on: bool) {
        self.config.quickack = on;
        if on && self.delack_at.is_some() {
            self.ack_now = true;
        }
    }

    // ----- output -----

    /// Bytes in the send buffer beyond SND.NXT.
    pub(super) fn unsent_data(&self) -> usize {
        let sent = self.snd_nxt.distance_from(self.snd_una) as usize;
        self.send_buf.len().saturating_sub(sent)
    }

    /// The sequence number right after the last byte of data in the send buffer.
    fn data_end(&self) -> SeqNum {
        self.snd_una + self.send_buf.len()
    }

    /// True if data or a FIN may be sent now (window, congestion window, Nagle permitting).
    fn can_send_data(&self) -> bool {
        self.next_data_len().is_some() || self.fin_sendable()
    }

    /// True if our FIN goes out at `seq` now: it is queued, all data before it is sent, and it
    /// is not acknowledged. Its sequence number is fixed the first time it is sent.
    fn fin_at(&self, seq: SeqNum) -> bool {
        self.fin_queued
            && matches!(
                self.state,
                State::FinWait1 | State::LastAck | State::Closing
            )
            && seq == self.data_end()
            && !self.fin_acked()
            && self.fin_seq.is_none_or(|f| f == seq)
    }

    fn fin_sendable(&self) -> bool {
        self.fin_at(self.snd_nxt)
    }

    /// True once the peer has acknowledged our FIN.
    pub(super) fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_una.after(f))
    }

    /// How much new data may go out at SND.NXT now, per the send window, the congestion window,
    /// sender silly-window avoidance and Nagle. `None` if nothing.
    fn next_data_len(&self) -> Option<usize> {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::LastAck
                | State::Closing
        ) {
            return None;
        }
        let unsent = self.unsent_data();
        if unsent == 0 {
            return None;
        }
        let mss = self.payload_mss().len();
        let in_flight = self.snd_nxt.distance_from(self.snd_una) as usize;
        let window = if self.recovery.is_some() {
            // RFC 6675: during recovery, the pipe decides (see poll_output); new data may go out
            // while cwnd - pipe allows it.
            let pipe = self.pipe();
            let room = self.cc.cwnd().saturating_sub(pipe);
            let wnd_room = (self.snd_wnd as usize).saturating_sub(in_flight);
            room.min(wnd_room)
        } else {
            let wnd = (self.snd_wnd as usize).min(self.cc.cwnd());
            wnd.saturating_sub(in_flight)
        };
        let len = unsent.min(mss).min(window);
        if len == 0 {
            return None;
        }
        // Data already sent once (after a timeout SND.NXT is below SND.MAX) goes out as the
        // window allows: silly-window avoidance and Nagle are about new data. So does a segment
        // the persist timer forces out (RFC 9293 3.8.6.2.1's override timeout).
        if len < mss && !self.snd_nxt.before(self.snd_max) && !self.force_send {
            let window_limited = len < unsent.min(mss);
            if window_limited {
                // RFC 9293 3.8.6.2.1: send a partial segment only if it is at least half of the
                // largest window the peer has offered.
                if len < (self.max_snd_wnd as usize) / 2 {
                    return None;
                }
            } else if !self.config.nodelay && self.snd_sml.after(self.snd_una) && !self.fin_queued {
                // Nagle (RFC 9293 3.7.4) in Linux's Minshall form: hold a small segment while an
                // earlier small segment is unacknowledged.
                return None;
            }
        }
        Some(len)
    }

    /// RFC 6675 pipe: bytes thought to be in the network.
    pub(super) fn pipe(&self) -> usize {
        let high_rxt = self.recovery.map_or(self.snd_una, |r| r.high_rxt);
        self.scoreboard.pipe(
            self.snd_una,
            self.snd_max,
            high_rxt,
            self.payload_mss().len(),
        )
    }

    /// The window to advertise, as (16-bit field, right edge), never moving the right edge left
    /// (RFC 9293 3.8.6.2.2 SHOULD NOT shrink) and moving it right only by a worthwhile amount
    /// (receiver silly-window avoidance, same section).
    pub(super) fn window_to_advertise(&self, syn: bool) -> (u16, SeqNum) {
        let free = self.recv_buf.window();
        if syn {
            // RFC 7323 2.2: the window field of a SYN is not scaled.
            let w = free.min(0xffff) as u16;
            return (w, self.rcv_nxt + u32::from(w));
        }
        let promised = self.rcv_adv.distance_from(self.rcv_nxt) as usize;
        let step = (self.config.recv_buffer / 2).min(self.mss.len());
        let mut wnd = if free >= promised + step || free >= self.config.recv_buffer {
            free
        } else {
            promised
        };
        wnd = wnd.max(promised);
        let field = Window::new_clamped(wnd).to_field(self.rcv_wscale);
        let right = self.rcv_nxt + (u32::from(field) << self.rcv_wscale.shift());
        (
            field,
            if right.after(self.rcv_adv) {
                right
            } else {
                self.rcv_adv
            },
        )
    }

    fn options_for(&self, now: Instant, syn: bool) -> Options {
        let mut o = Options::default();
        if syn {
            o.mss = Some(self.config.mss);
            if self.config.window_scaling
                && (!self.passive
                    || self.rcv_wscale != WindowScale::NONE
                    || self.snd_wscale != WindowScale::NONE)
            {
                o.window_scale = Some(self.rcv_wscale.shift());
            }
            o.sack_permitted = self.config.sack && (!self.passive || self.sack_ok);
            if self.config.timestamps && (!self.passive || self.ts_ok) {
                o.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr: if self.passive { self.ts_recent } else { 0 },
                });
            }
            if self.state == State::SynSent && self.retries == 0 {
                o.fast_open = self.tfo.cookie;
            }
            return o;
        }
        if self.ts_ok {
            o.timestamps = Some(Timestamps {
                tsval: self.ts_now(now),
                tsecr: self.ts_recent,
            });
        }
        if self.sack_ok && self.recv_buf.has_out_of_order() {
            // RFC 2018 3: at most 3 blocks fit beside the timestamp option, 4 without.
            let max = if self.ts_ok { 3 } else { 4 };
            let mut blocks = SackBlocks::new();
            for b in self.recv_buf.sack_blocks(self.rcv_nxt, max) {
                if blocks.try_push(b).is_err() {
                    break;
                }
            }
            o.sack_blocks = blocks;
        }
        o
    }

    fn option_len(o: &Options) -> usize {
        let ts = if o.timestamps.is_some() {
            TS_OPTION_LEN
        } else {
            0
        };
        let sack = if o.sack_blocks.is_empty() {
            0
        } else {
            4 + 8 * o.sack_blocks.len()
        };
        ts + sack
    }

    /// Builds a segment carrying our current ACK and window, and records what the ACK announced.
    fn segment(
        &mut self,
        now: Instant,
        seq: SeqNum,
        flags: Flags,
        offset: usize,
        len: usize,
    ) -> Outgoing {
        let syn = flags.syn();
        let options = self.options_for(now, syn);
        let mut flags = flags;
        let (window, right) = if self.state == State::SynSent && !syn {
            (0, self.rcv_adv)
        } else {
            self.window_to_advertise(syn)
        };
        let ack = if self.state == State::SynSent && syn {
            SeqNum(0)
        } else {
            self.rcv_nxt
        };
        if !(self.state == State::SynSent && syn) {
            flags |= Flags::ACK;
            // Linux tcp_select_window: TCPToZeroWindowAdv when the window closes.
            if window == 0 && !self.zero_window_advertised {
                self.stats.to_zero_window_adv += 1;
            }
            self.zero_window_advertised = window == 0;
            self.rcv_adv = right;
            self.last_ack_sent = self.rcv_nxt;
            self.ack_now = false;
            self.delack_at = None;
            self.unacked_segs = 0;
        }
        self.stats.segs_out += 1;
        self.last_send_at = now;
        Outgoing {
            seq,
            ack,
            flags,
            window,
            options,
            payload_offset: offset,
            payload_len: len,
        }
    }

    /// Writes every segment due now into `emit`, which gets the segment and the send buffer (to
    /// copy `payload_len` bytes from `payload_offset`) and returns false if it cannot take more.
    /// Returns the number of segments emitted.
    pub fn poll_output(
        &mut self,
        now: Instant,
        emit: &mut impl FnMut(&Outgoing, &SendBuffer) -> bool,
    ) -> usize {
        let mut sent = 0;
        if let Some(rst) = self.pending_rst {
            let flags = if rst.ack.is_some() {
                Flags::RST | Flags::ACK
            } else {
                Flags::RST
            };
            let seg = Outgoing {
                seq: rst.seq,
                ack: rst.ack.unwrap_or(SeqNum(0)),
                flags,
                window: 0,
                options: Options::default(),
                payload_offset: 0,
                payload_len: 0,
            };
            if !emit(&seg, &self.send_buf) {
                return sent;
            }
            self.pending_rst = None;
            self.stats.segs_out += 1;
            sent += 1;
        }
        match self.state {
            State::Closed | State::Listen => return sent,
            State::SynSent | State::SynReceived => {
                if self.syn_due {
                    let flags = if self.state == State::SynSent {
                        Flags::SYN
                    } else {
                        Flags::SYN | Flags::ACK
                    };
                    // RFC 7413 4.1: the first SYN of a Fast Open with a cookie carries data;
                    // a retransmitted SYN carries none (4.1.3.1: it may be what the path
                    // drops).
                    let data = if self.state == State::SynSent && self.retries == 0 {
                        self.send_buf.len().min(self.tfo.max_syn_data as usize)
                    } else {
                        0
                    };
                    let seg = self.segment(now, self.iss, flags, 0, data);
                    if !emit(&seg, &self.send_buf) {
                        return sent;
                    }
                    self.syn_due = false;
                    if self.state == State::SynSent && self.retries == 0 {
                        self.tfo.syn_data = data as u32;
                    }
                    // Karn: time the SYN only if it is the first one (RFC 6298 3).
                    if self.retries == 0 && self.rtt_probe.is_none() {
                        self.rtt_probe = Some((self.iss + 1u32, now));
                    }
                    self.snd_nxt = self.iss + 1u32 + data;
                    self.snd_max = self.snd_max.max(self.snd_nxt);
                    if self.rto_at.is_none() {
                        self.rto_at = Some(now + self.rtt.rto());
                    }
                    sent += 1;
                }
                if self.state == State::SynSent {
                    return sent;
                }
                if self.fast_open_early_data() {
                    sent += self.output_early_data(now, emit);
                }
            }
            _ => {}
        }
        if self.state.is_synchronized() && self.state != State::TimeWait {
            sent += self.output_data(now, emit);
        }
        if self.probe_due && self.state.is_synchronized() {
            // Window and keepalive probes, as Linux sends them (tcp_xmit_probe_skb): an ACK with
            // an old sequence number, which the peer must answer with its ACK and window.
            let seg = self.segment(now, self.snd_una - 1u32, Flags::empty(), 0, 0);
            if !emit(&seg, &self.send_buf) {
                return sent;
            }
            self.probe_due = false;
            sent += 1;
            if self.persist_at.is_none() && self.snd_wnd == 0 && self.unsent_data() > 0 {
                self.arm_persist(now);
            }
        }
        if self.ack_now && self.state != State::Closed {
            // Linux tcp_acceptable_seq(): a pure ACK carries the highest sequence number sent
            // (not a SND.NXT rewound by a timeout, which the peer may already have passed and
            // would find unacceptable), or the right edge of the peer's window if lower.
            let seq = if self.state == State::SynReceived {
                self.iss + 1u32
            } else {
                let wnd_end = self.snd_una + self.snd_wnd;
                if self.snd_max.after(wnd_end) {
                    wnd_end.max(self.snd_nxt)
                } else {
                    self.snd_max
                }
            };
            let seg = self.segment(now, seq, Flags::empty(), 0, 0);
            if !emit(&seg, &self.send_buf) {
                return sent;
            }
            sent += 1;
        }
        sent
    }

    /// How much new data a SYN-RECEIVED Fast Open child may send now: data after the SYN-ACK
    /// (sequence numbers from ISS + 1, send buffer offset 0), new data only (after a SYN-ACK
    /// retransmission the rest waits for the handshake, as Linux retransmits only the SYN-ACK
    /// from its `tcp_fastopen_synack_timer`), within the window of the client's SYN and the
    /// initial congestion window. `None` if nothing.
    fn early_data_len(&self) -> Option<usize> {
        if self.syn_due || self.snd_nxt != self.snd_max || self.snd_nxt == self.iss {
            return None;
        }
        let base = self.iss + 1u32;
        let sent = self.snd_nxt.distance_from(base) as usize;
        let unsent = self.send_buf.len().saturating_sub(sent);
        let window = (self.snd_wnd as usize)
            .min(self.cc.cwnd())
            .saturating_sub(sent);
        let len = unsent.min(self.payload_mss().len()).min(window);
        (len > 0).then_some(len)
    }

    /// RFC 7413 4.2.2: the server's data before the handshake completes, in segments after the
    /// SYN-ACK. The peer's ACK of them completes the handshake (RFC 9293 3.10.7.4: an ACK
    /// with SND.UNA < SEG.ACK =< SND.NXT in SYN-RECEIVED) and acknowledges the data as well.
    fn output_early_data(
        &mut self,
        now: Instant,
        emit: &mut impl FnMut(&Outgoing, &SendBuffer) -> bool,
    ) -> usize {
        let mut sent = 0;
        while let Some(len) = self.early_data_len() {
            let seq = self.snd_nxt;
            // The send buffer starts at ISS + 1: SND.UNA is still ISS (the SYN is unacknowledged).
            let offset = seq.distance_from(self.iss + 1u32) as usize;
            let end = seq + len;
            let flags = if offset + len == self.send_buf.len() {
                Flags::PSH
            } else {
                Flags::empty()
            };
            let seg = self.segment(now, seq, flags, offset, len);
            if !emit(&seg, &self.send_buf) {
                return sent;
            }
            sent += 1;
            self.snd_nxt = end;
            self.snd_max = end;
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
        }
        sent
    }

    fn arm_persist(&mut self, now: Instant) {
        let base = self.rtt.base_rto();
        let d = base
            .saturating_mul(1u32 << self.persist_backoff.min(10))
            .min(self.config.rto.max);
        self.persist_at = Some(now + d);
    }

    fn output_data(
        &mut self,
        now: Instant,
        emit: &mut impl FnMut(&Outgoing, &SendBuffer) -> bool,
    ) -> usize {
        let mut sent = 0;
        // RFC 5681 4.1 / Linux tcp_slow_start_after_idle: restart the window after an idle RTO.
        if self.snd_una == self.snd_max && self.unsent_data() > 0 {
            let idle = now.saturating_duration_since(self.last_send_at);
            if idle > self.rtt.rto() {
                self.cc.on_idle_restart(now, idle, self.rtt.rto());
            }
        }
        let mss = self.payload_mss().len();
        if core::mem::take(&mut self.retransmit_head) && self.snd_una.before(self.snd_max) {
            let len = (self.snd_max.distance_from(self.snd_una) as usize)
                .min(mss)
                .min(self.send_buf.len().max(1));
            let data_len = len.min(self.send_buf.len());
            if data_len > 0 {
                let una = self.snd_una;
                if !self.emit_range(now, una, data_len, true, emit) {
                    // No room to send: still due at the next poll.
                    self.retransmit_head = true;
                    return sent;
                }
                sent += 1;
                if let Some(r) = self.recovery.as_mut() {
                    r.high_rxt = r.high_rxt.max(una + data_len);
                }
            }
        }
        // Loss recovery: retransmit the holes RFC 6675 NextSeg() names while the pipe allows.
        while let Some(rec) = self.recovery {
            if self.cc.cwnd().saturating_sub(self.pipe()) < mss {
                break;
            }
            let rule3 = self.unsent_data() == 0;
            let Some(next) =
                self.scoreboard
                    .next_seg(self.snd_una, self.snd_max, rec.high_rxt, mss, rule3)
            else {
                break;
            };
            if !next.retransmission {
                break;
            }
            if !self.emit_range(now, next.seq, next.len, true, emit) {
                return sent;
            }
            sent += 1;
            if let Some(r) = self.recovery.as_mut() {
                r.high_rxt = r.high_rxt.max(next.seq + next.len);
            }
        }
        // New data (or, after a timeout, data again from SND.NXT).
        loop {
            // After a timeout SND.NXT is below SND.MAX: skip what the peer already SACKed.
            if self.snd_nxt.before(self.snd_max) && self.scoreboard.is_sacked(self.snd_nxt) {
                let mut s = self.snd_nxt;
                while s.before(self.snd_max) && self.scoreboard.is_sacked(s) {
                    s += 1u32;
                }
                self.snd_nxt = s;
                continue;
            }
            let Some(mut len) = self.next_data_len() else {
                break;
            };
            let retransmission = self.snd_nxt.before(self.snd_max);
            if retransmission {
                len = len.min(self.snd_max.distance_from(self.snd_nxt) as usize);
            }
            let seq = self.snd_nxt;
            if !self.emit_range(now, seq, len, retransmission, emit) {
                return sent;
            }
            sent += 1;
        }
        if self.fin_sendable() {
            let seq = self.snd_nxt;
            let seg = self.segment(now, seq, Flags::FIN, 0, 0);
            if !emit(&seg, &self.send_buf) {
                return sent;
            }
            sent += 1;
            self.fin_seq = Some(seq);
            self.snd_nxt = seq + 1u32;
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
        }
        // Data waiting, nothing in flight, and a window too small (or zero) to send into: the
        // persist timer makes sure a lost window update cannot stall the connection (Linux
        // tcp_check_probe_timer arms it whenever nothing is in flight and the queue is blocked).
        if self.unsent_data() > 0
            && self.snd_una == self.snd_max
            && self.persist_at.is_none()
            && self.next_data_len().is_none()
        {
            self.arm_persist(now);
        }
        sent
    }

    /// Sends `len` bytes of data at `seq` (FIN too if they end the stream and a FIN is queued).
    fn emit_range(
        &mut self,
        now: Instant,
        seq: SeqNum,
        len: usize,
        retransmission: bool,
        emit: &mut impl FnMut(&Outgoing, &SendBuffer) -> bool,
    ) -> bool {
        let offset = seq.distance_from(self.snd_una) as usize;
        // The options may not leave room for a full payload (SACK blocks): trim to fit the MSS.
        let opts = Self::option_len(&self.options_for(now, false));
        let room = self.mss.len().saturating_sub(opts).max(1);
        // A range may reach past the data to the FIN's sequence number (NextSeg() and the
        // loss-recovery rules count sequence space, and the FIN occupies one): the payload is
        // only ever bytes the send buffer holds, and the FIN is sent as a flag.
        let held = self.data_end().distance_from(seq) as usize;
        let len = len.min(room).min(held);
        let end = seq + len;
        if len == 0 && !self.fin_at(end) {
            return true;
        }
        let mut flags = Flags::empty();
        if end == self.data_end() {
            flags |= Flags::PSH;
        }
        let with_fin = self.fin_at(end);
        if with_fin {
            flags |= Flags::FIN;
        }
        let seg = self.segment(now, seq, flags, offset, len);
        if !emit(&seg, &self.send_buf) {
            return false;
        }
        if retransmission {
            self.stats.retrans_segs += 1;
            self.last_rexmit_ts = Some(self.ts_now(now));
        } else if !self.ts_ok && self.rtt_probe.is_none() {
            // Karn: time only segments sent once.
            self.rtt_probe = Some((end, now));
        }
        if len < self.payload_mss().len() {
            self.snd_sml = end;
        }
        let mut next = end;
        if with_fin {
            self.fin_seq = Some(end);
            next = end + 1u32;
        }
        if seq == self.snd_nxt || next.after(self.snd_nxt) {
            self.snd_nxt = self.snd_nxt.max(next);
        }
        self.snd_max = self.snd_max.max(next);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        self.persist_at = None;
        self.force_send = false;
        true
    }
}

/// Introspection and socket options added by the socket layer (`socket/`).
impl Tcb {
    /// The connection's settings as they are now (`getsockopt`).
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// True once writing is shut down (`shutdown(SHUT_WR)` or `close`): `send` fails with
    /// `EPIPE`.
    pub fn is_write_shutdown(&self) -> bool {
        self.fin_queued || self.app_closed
    }

    /// Bytes written and not yet acknowledged, sent or not (`ss` Send-Q).
    pub fn send_queue_len(&self) -> usize {
        self.send_buf.len()
    }

    /// The earliest armed timer and when it fires (`ss -o`).
    pub fn armed_timer(&self) -> Option<(super::TimerKind, Instant)> {
        use super::TimerKind as K;
        [
            (K::Retransmit, self.rto_at),
            (K::DelayedAck, self.delack_at),
            (K::Persist, self.persist_at),
            (K::Keepalive, self.keepalive_at),
            (K::Close, self.close_at),
        ]
        .into_iter()
        .filter_map(|(k, at)| at.map(|at| (k, at)))
        .min_by_key(|&(_, at)| at)
    }

    /// `TCP_CONGESTION` on a live connection: the new algorithm takes over with the current
    /// window (Linux `tcp_set_congestion_control` reinitialises the algorithm's state, not
    /// cwnd or ssthresh).
    pub fn set_congestion(&mut self, algorithm: super::congestion::Algorithm) {
        self.config.congestion = algorithm;
        self.cc.set_algorithm(algorithm);
    }

    /// The congestion control algorithm in use (`getsockopt(TCP_CONGESTION)`).
    pub fn congestion(&self) -> super::congestion::Algorithm {
        self.cc.algorithm()
    }
}
