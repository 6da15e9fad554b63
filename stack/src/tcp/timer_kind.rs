//! The names of a connection's timers, for introspection (`ss -o` prints the same).

use core::fmt;

/// One of the timers of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Retransmission (of a SYN, SYN-ACK, data or FIN): `ss` "on".
    Retransmit,
    /// Delayed acknowledgment: `ss` "delack".
    DelayedAck,
    /// Zero-window probe: `ss` "persist".
    Persist,
    /// Keepalive probe (RFC 1122 4.2.3.6): `ss` "keepalive".
    Keepalive,
    /// End of TIME-WAIT (2*MSL) or of an orphan's FIN-WAIT-2 (`tcp_fin_timeout`): `ss`
    /// "timewait".
    Close,
    /// `SO_LINGER`: the connection is reset if its data is still unacknowledged by then.
    Linger,
}

impl TimerKind {
    /// The name `ss -o` prints.
    pub const fn name(self) -> &'static str {
        match self {
            TimerKind::Retransmit => "on",
            TimerKind::DelayedAck => "delack",
            TimerKind::Persist => "persist",
            TimerKind::Keepalive => "keepalive",
            TimerKind::Close => "timewait",
            TimerKind::Linger => "linger",
        }
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
