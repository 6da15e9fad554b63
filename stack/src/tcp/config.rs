//! Per-connection TCP settings, with Linux's defaults.

use super::congestion::Algorithm;
use super::rtt::RtoConfig;
use crate::time::Duration;

/// Keepalive settings (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (Linux `tcp_keepalive_time`: 7200 s).
    pub idle: Duration,
    /// Time between probes (Linux `tcp_keepalive_intvl`: 75 s).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped with ETIMEDOUT (Linux
    /// `tcp_keepalive_probes`: 9).
    pub probes: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            probes: 9,
        }
    }
}

/// Settings of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Send buffer size in bytes (`SO_SNDBUF`).
    pub send_buffer: usize,
    /// Receive buffer size in bytes (`SO_RCVBUF`); also bounds the advertised window.
    pub recv_buffer: usize,
    /// Most out-of-order ranges the receive side holds before it drops segments.
    pub max_ooo_ranges: usize,
    /// The MSS we announce and the largest we send (from the interface MTU).
    pub mss: u16,
    /// Offer window scaling (RFC 7323; Linux `tcp_window_scaling` = 1).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323; Linux `tcp_timestamps` = 1).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018; Linux `tcp_sack` = 1).
    pub sack: bool,
    /// `TCP_NODELAY`: disable Nagle's algorithm.
    pub nodelay: bool,
    /// `TCP_QUICKACK`: acknowledge every segment at once instead of delaying ACKs.
    pub quickack: bool,
    /// Longest delay of an ACK (Linux: 40 ms minimum `ato`, at most 200 ms; RFC 5681 4.2 requires
    /// at most 500 ms).
    pub delayed_ack: Duration,
    /// Retransmission timeout bounds.
    pub rto: RtoConfig,
    /// SYN retransmissions before `connect` fails with ETIMEDOUT (Linux `tcp_syn_retries`: 6).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before a half-open connection is dropped (Linux
    /// `tcp_synack_retries`: 5).
    pub synack_retries: u32,
    /// Data retransmissions before the connection fails with ETIMEDOUT (Linux `tcp_retries2`:
    /// 15).
    pub retries: u32,
    /// Maximum segment lifetime; TIME-WAIT lasts 2*MSL (Linux: 60 s TIME-WAIT, so MSL 30 s).
    pub msl: Duration,
    /// How long an orphaned connection waits in FIN-WAIT-2 for the peer's FIN (Linux
    /// `tcp_fin_timeout`: 60 s).
    pub fin_timeout: Duration,
    /// Keepalive, if enabled (`SO_KEEPALIVE`).
    pub keepalive: Option<Keepalive>,
    /// Congestion control algorithm (Linux default: CUBIC).
    pub congestion: Algorithm,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            max_ooo_ranges: 64,
            mss: 1460,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nodelay: false,
            quickack: false,
            delayed_ack: Duration::from_millis(40),
            rto: RtoConfig::default(),
            syn_retries: 6,
            synack_retries: 5,
            retries: 15,
            msl: Duration::from_secs(30),
            fin_timeout: Duration::from_secs(60),
            keepalive: None,
            congestion: Algorithm::Cubic,
        }
    }
}
