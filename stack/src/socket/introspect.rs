//! Introspection like `ss -tan -o`: one line per listener and connection, and a histogram of
//! states.

use crate::tcp::{State, TimerKind};
use crate::time::Instant;
use core::fmt;
use core::net::SocketAddrV4;

/// One listener or connection, as `ss -tan -o` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The state (`LISTEN` for listeners).
    pub state: State,
    /// Local address (0.0.0.0 and the port for listeners).
    pub local: SocketAddrV4,
    /// Remote address (0.0.0.0:0 for listeners).
    pub remote: SocketAddrV4,
    /// Connections: bytes received and not yet read. Listeners: connections waiting in the
    /// accept queue (what `ss` prints as Recv-Q).
    pub recv_q: usize,
    /// Connections: bytes written and not yet acknowledged. Listeners: the backlog (`ss`
    /// Send-Q).
    pub send_q: usize,
    /// The earliest armed timer and when it fires.
    pub timer: Option<(TimerKind, Instant)>,
    /// The application closed it (or never accepted it) and the stack finishes it alone.
    pub orphan: bool,
}

impl fmt::Display for ConnectionInfo {
    /// `ss -tan -o` style: `State Recv-Q Send-Q Local Peer [timer:(name,at)]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {:>7} {:>7} {:<21} {:<21}",
            self.state.name(),
            self.recv_q,
            self.send_q,
            self.local,
            self.remote
        )?;
        if let Some((kind, at)) = self.timer {
            write!(f, " timer:({kind},{at})")?;
        }
        Ok(())
    }
}

/// The number of sockets in each TCP state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateHistogram {
    counts: [usize; 11],
}

/// Every state, in RFC 9293 order (the histogram's order).
pub const ALL_STATES: [State; 11] = [
    State::Closed,
    State::Listen,
    State::SynSent,
    State::SynReceived,
    State::Established,
    State::FinWait1,
    State::FinWait2,
    State::CloseWait,
    State::Closing,
    State::LastAck,
    State::TimeWait,
];

const fn slot(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Listen => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::Established => 4,
        State::FinWait1 => 5,
        State::FinWait2 => 6,
        State::CloseWait => 7,
        State::Closing => 8,
        State::LastAck => 9,
        State::TimeWait => 10,
    }
}

impl StateHistogram {
    /// Counts one more socket in `state`.
    pub fn add(&mut self, state: State) {
        self.add_n(state, 1);
    }

    /// Counts `n` more sockets in `state`.
    pub fn add_n(&mut self, state: State, n: usize) {
        self.counts[slot(state)] += n;
    }

    /// Sockets in `state`.
    pub fn get(&self, state: State) -> usize {
        self.counts[slot(state)]
    }

    /// All sockets counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The states with a non-zero count and their counts, in RFC 9293 order.
    pub fn iter(&self) -> impl Iterator<Item = (State, usize)> + '_ {
        ALL_STATES
            .iter()
            .map(|&s| (s, self.get(s)))
            .filter(|&(_, n)| n > 0)
    }
}

impl fmt::Display for StateHistogram {
    /// `ESTAB 3 TIME-WAIT 1 ...`, non-zero states only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (s, n) in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{} {n}", s.name())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_each_state_apart() {
        let mut h = StateHistogram::default();
        for s in ALL_STATES {
            assert_eq!(h.get(s), 0);
        }
        h.add(State::Established);
        h.add(State::Established);
        h.add(State::TimeWait);
        h.add(State::Listen);
        assert_eq!(h.get(State::Established), 2);
        assert_eq!(h.get(State::TimeWait), 1);
        assert_eq!(h.get(State::CloseWait), 0);
        assert_eq!(h.total(), 4);
        assert_eq!(h.to_string(), "LISTEN 1 ESTAB 2 TIME-WAIT 1");
    }
}
