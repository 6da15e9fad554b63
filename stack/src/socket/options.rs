//! Socket options: the settings given to `listen`/`connect`, and the ones that can be changed
//! on a live socket (`setsockopt`).

use super::error::SetOptionError;
use crate::tcp::congestion::Algorithm;
use crate::tcp::{Keepalive, TcpConfig};
use crate::time::Duration;

/// Linux `TCP_MIN_MSS`: the smallest `TCP_MAXSEG` accepted.
pub const MIN_MAXSEG: u16 = 88;

/// Linux `SOCK_MIN_SNDBUF`/`SOCK_MIN_RCVBUF` are about 4.5 KiB; buffers below this are raised
/// to it.
pub const MIN_BUFFER: usize = 4608;

/// Options of a socket about to `listen` or `connect` (what `setsockopt` calls between
/// `socket` and `listen`/`connect` decide). `None` keeps the shard's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `SO_REUSEADDR`: listen on a port that connections still use (TIME-WAIT ones typically).
    pub reuse_addr: bool,
    /// `SO_REUSEPORT`: several listeners on one port; SYNs are spread by a 4-tuple hash.
    pub reuse_port: bool,
    /// `SO_LINGER`: `Some(0)` makes `close` reset at once; `Some(t)` resets if data is still
    /// unacknowledged `t` after `close`; `None` (off): `close` finishes in the background.
    pub linger: Option<Duration>,
    /// `SO_KEEPALIVE` with `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`.
    pub keepalive: Option<Keepalive>,
    /// `SO_RCVBUF` in bytes (at least [`MIN_BUFFER`]); fixed when the connection is created
    /// (the window scale is chosen from it in the SYN, as on Linux).
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF` in bytes (at least [`MIN_BUFFER`]); fixed when the connection is created.
    pub send_buffer: Option<usize>,
    /// `TCP_NODELAY`: no Nagle.
    pub nodelay: Option<bool>,
    /// `TCP_QUICKACK`: no delayed ACKs.
    pub quickack: Option<bool>,
    /// `TCP_MAXSEG`: clamps the MSS we announce and the segments we send (88..=65535; the
    /// interface MTU still bounds it).
    pub max_segment: Option<u16>,
    /// `TCP_CONGESTION`.
    pub congestion: Option<Algorithm>,
    /// `TCP_SYNCNT`: SYN retransmissions before `connect` fails with `ETIMEDOUT` (1..=127, as
    /// Linux accepts).
    pub syn_count: Option<u32>,
    /// `TCP_FASTOPEN` on a listener (RFC 7413, server side): the most Fast Open connections
    /// whose handshake has not completed (0: off). Clients use
    /// [`super::Sockets::connect_with_data`] instead (Linux `sendto(MSG_FASTOPEN)`); on
    /// `connect` it fails with `ENOPROTOOPT`.
    pub fast_open: Option<u32>,
    /// `TCP_DEFER_ACCEPT` on a listener: a connection joins the accept queue only when its
    /// first data arrives; the final ACK of a handshake without data is dropped and the request
    /// kept. The time is rounded up to whole SYN-ACK retransmission periods (1, 3, 7, 15, ... s,
    /// Linux `secs_to_retrans`). When it has passed, Linux behaviour again: one more SYN-ACK is
    /// sent, and the ACK answering it completes the connection even without data (a client that
    /// stays silent still gets accepted); a request nobody answers is dropped after
    /// `max(synack_retries, periods)` timeouts. Zero turns it off. On a connecting socket
    /// (Linux: delays the client's ACK) it is not supported (`ENOPROTOOPT`).
    pub defer_accept: Option<Duration>,
}

impl SocketOptions {
    /// The connection settings these options make from `base` (the shard's defaults).
    ///
    /// (`defer_accept` and `fast_open` are the listener's, not the connections' settings: see
    /// [`super::Sockets::listen`].)
    ///
    /// Errors: `EINVAL` for a `TCP_MAXSEG` below [`MIN_MAXSEG`] or a `TCP_SYNCNT` outside
    /// 1..=127.
    pub fn apply(&self, base: TcpConfig) -> Result<TcpConfig, SetOptionError> {
        let mut c = base;
        if let Some(ka) = self.keepalive {
            c.keepalive = Some(ka);
        }
        if let Some(n) = self.recv_buffer {
            c.recv_buffer = n.max(MIN_BUFFER);
        }
        if let Some(n) = self.send_buffer {
            c.send_buffer = n.max(MIN_BUFFER);
        }
        if let Some(on) = self.nodelay {
            c.nodelay = on;
        }
        if let Some(on) = self.quickack {
            c.quickack = on;
        }
        if let Some(mss) = self.max_segment {
            c.mss = clamp_mss(c.mss, mss)?;
        }
        if let Some(alg) = self.congestion {
            c.congestion = alg;
        }
        if let Some(n) = self.syn_count {
            // Linux do_tcp_setsockopt: TCP_SYNCNT outside 1..=MAX_TCP_SYNCNT (127) is EINVAL;
            // on a listener it bounds SYN-ACK retries too (reqsk_timer_handler).
            if !(1..=127).contains(&n) {
                return Err(SetOptionError::Invalid);
            }
            c.syn_retries = n;
            c.synack_retries = n;
        }
        Ok(c)
    }
}

/// `TCP_MAXSEG`: Linux `do_tcp_setsockopt` refuses values below `TCP_MIN_MSS` with EINVAL;
/// the MSS used is the smaller of the clamp and what the interface allows.
pub fn clamp_mss(interface_mss: u16, maxseg: u16) -> Result<u16, SetOptionError> {
    if maxseg < MIN_MAXSEG {
        return Err(SetOptionError::Invalid);
    }
    Ok(interface_mss.min(maxseg))
}

/// An option to set on a live socket (`setsockopt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_LINGER`.
    Linger(Option<Duration>),
    /// `SO_KEEPALIVE` and its parameters.
    Keepalive(Option<Keepalive>),
    /// `SO_RCVBUF`: on a listener, for the connections it will accept; on a connection, the new
    /// receive limit at once (clamped so the advertised window never shrinks; the window scale
    /// stays the one chosen at SYN time).
    RecvBuffer(usize),
    /// `SO_SNDBUF`: on a listener, for the connections it will accept; on a connection, the new
    /// send limit at once (bytes already buffered are kept).
    SendBuffer(usize),
    /// `TCP_NODELAY`.
    NoDelay(bool),
    /// `TCP_QUICKACK`.
    QuickAck(bool),
    /// `TCP_MAXSEG`: on a listener, for the connections it will accept; on a connection it
    /// fails with `EISCONN` (the MSS is negotiated in the handshake).
    MaxSegment(u16),
    /// `TCP_CONGESTION`: takes effect at once on a connection.
    Congestion(Algorithm),
    /// `TCP_FASTOPEN` (listeners only; see [`SocketOptions::fast_open`]).
    FastOpen(u32),
    /// `TCP_DEFER_ACCEPT` (listeners only; see [`SocketOptions::defer_accept`]).
    DeferAccept(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_layer_on_the_defaults() {
        let base = TcpConfig::default();
        assert_eq!(SocketOptions::default().apply(base), Ok(base));
        let o = SocketOptions {
            max_segment: Some(536),
            congestion: Some(Algorithm::NewReno),
            nodelay: Some(true),
            recv_buffer: Some(1),
            ..SocketOptions::default()
        };
        let c = o.apply(base).unwrap();
        assert_eq!(c.mss, 536);
        assert_eq!(c.congestion, Algorithm::NewReno);
        assert!(c.nodelay);
        assert_eq!(c.recv_buffer, MIN_BUFFER);
        // A clamp above the interface's MSS changes nothing.
        assert_eq!(clamp_mss(1460, 9000), Ok(1460));
        assert_eq!(clamp_mss(1460, 87), Err(SetOptionError::Invalid));
    }

    #[test]
    fn fast_open_and_defer_accept_are_listener_settings() {
        let base = TcpConfig::default();
        let fo = SocketOptions {
            fast_open: Some(16),
            ..SocketOptions::default()
        };
        assert_eq!(
            fo.apply(base),
            Ok(base),
            "a listener setting, not the connections'"
        );
        let da = SocketOptions {
            defer_accept: Some(Duration::from_secs(1)),
            ..SocketOptions::default()
        };
        assert_eq!(
            da.apply(base),
            Ok(base),
            "a listener setting, not the connections'"
        );
    }
}
