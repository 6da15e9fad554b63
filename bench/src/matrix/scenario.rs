//! The scenarios of the matrix: what the load generator does, and which figure is the result.

use serde::Serialize;

/// Payload bytes of the request/response scenarios.
pub const RR_SIZE: u32 = 64;
/// The echo's `--close-after` for a server-closed crr: one request (header + payload).
pub const SERVER_CLOSE_AFTER: u64 = 24 + RR_SIZE as u64;
/// Concurrent connections of the crr scenarios (the kernel orientation figures use 16).
pub const CRR_CONNS: usize = 16;

/// The figure a scenario is judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Verified responses per second (`requests_per_s`).
    TransactionsPerS,
    /// Connections established per second (`connections_per_s`).
    ConnectionsPerS,
    /// Bits the client wrote per second, in Gbit/s (`tx_bits_per_s`).
    Gbps,
}

impl Metric {
    /// The unit, as the table heads it.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::TransactionsPerS => "transactions/s",
            Metric::ConnectionsPerS => "connections/s",
            Metric::Gbps => "Gbit/s",
        }
    }
}

/// One scenario of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Scenario {
    /// Short name (file names, JSON keys).
    pub id: &'static str,
    /// What it is, for the table.
    pub label: &'static str,
    /// The figure it is judged by.
    pub metric: Metric,
}

/// rr, 1 connection, 64 B.
pub const RR1: Scenario = Scenario {
    id: "rr1",
    label: "rr, 1 conn, 64 B",
    metric: Metric::TransactionsPerS,
};
/// rr, 64 connections, 64 B.
pub const RR64: Scenario = Scenario {
    id: "rr64",
    label: "rr, 64 conns, 64 B",
    metric: Metric::TransactionsPerS,
};
/// crr, the server closes first (TIME_WAIT on the server).
pub const CRR_SERVER_CLOSE: Scenario = Scenario {
    id: "crr_server_close",
    label: "crr, server closes, 16 conns",
    metric: Metric::ConnectionsPerS,
};
/// crr, the client closes first (TIME_WAIT on the client).
pub const CRR_CLIENT_CLOSE: Scenario = Scenario {
    id: "crr_client_close",
    label: "crr, client closes, 16 conns",
    metric: Metric::ConnectionsPerS,
};
/// One bulk stream, client to server.
pub const STREAM: Scenario = Scenario {
    id: "stream",
    label: "stream, 1 conn, up",
    metric: Metric::Gbps,
};

/// rr, 64 connections, 64 B, open loop (the load generator adds `--rate`): latency at the same
/// offered load for both stacks.
pub const RR64_OPEN: Scenario = Scenario {
    id: "rr64_open",
    label: "rr, 64 conns, 64 B, open loop",
    metric: Metric::TransactionsPerS,
};

/// Every scenario of the side-by-side runs, in table order.
pub const ALL: [Scenario; 5] = [RR1, RR64, CRR_SERVER_CLOSE, CRR_CLIENT_CLOSE, STREAM];

impl Scenario {
    /// The load generator's options for this scenario (besides stack, driver and duration).
    pub fn loadgen_args(&self) -> Vec<String> {
        let v: &[&str] = match self.id {
            "rr1" => &["--mode", "rr", "--conns", "1", "--size", "64"],
            "rr64" | "rr64_open" => &["--mode", "rr", "--conns", "64", "--size", "64"],
            "crr_server_close" => &["--mode", "crr", "--conns", "16", "--server-close"],
            "crr_client_close" => &["--mode", "crr", "--conns", "16", "--client-close"],
            _ => &["--mode", "stream", "--conns", "1", "--stream-dir", "up"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The standalone echo server's options for this scenario (the memory driver's in-process
    /// echo takes `--server-close` from the load generator).
    pub fn echo_args(&self) -> Vec<String> {
        if *self == CRR_SERVER_CLOSE {
            vec!["--close-after".into(), SERVER_CLOSE_AFTER.to_string()]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_its_own_load() {
        let mut seen = std::collections::HashSet::new();
        for s in ALL {
            assert!(seen.insert(s.loadgen_args()), "{} repeats a load", s.id);
        }
        assert_eq!(CRR_SERVER_CLOSE.echo_args(), ["--close-after", "88"]);
        assert!(RR64.echo_args().is_empty());
    }
}
