//! The scenarios of the matrix: what the load generator does, and which figure is the result.

use serde::Serialize;

/// Payload bytes of the request/response scenarios.
pub const RR_SIZE: u32 = 64;
/// The echo's `--close-after` for a server-closed crr: one request (header + payload).
pub const SERVER_CLOSE_AFTER: u64 = 24 + RR_SIZE as u64;
/// Concurrent connections of the crr scenarios (the kernel orientation figures use 16).
pub const CRR_CONNS: usize = 16;
/// Echo ports of the crr scenarios, for both stacks: the echo listens on this many consecutive
/// ports and the load generator spreads its connects over them (`--target-ports`). On one
/// port a client-closed crr measures the port space, not the stacks: a client that reuses a
/// TIME-WAIT 4-tuple once its timestamps advanced a second (Linux's tcp_tw_reuse rule) opens
/// at most one connection per ephemeral port per second, 64,512/s with ports 1024-65535.
/// Eight ports lift that cap to 516,096/s, as on shardnet's memory wire (`MEMORY_ECHO_PORTS`).
pub const CRR_ECHO_PORTS: u16 = 8;

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
    /// Consecutive echo ports the load spreads over (both stacks).
    pub echo_ports: u16,
}

/// rr, 1 connection, 64 B.
pub const RR1: Scenario = Scenario {
    id: "rr1",
    label: "rr, 1 conn, 64 B",
    metric: Metric::TransactionsPerS,
    echo_ports: 1,
};
/// rr, 64 connections, 64 B.
pub const RR64: Scenario = Scenario {
    id: "rr64",
    label: "rr, 64 conns, 64 B",
    metric: Metric::TransactionsPerS,
    echo_ports: 1,
};
/// crr, the server closes first (TIME_WAIT on the server).
pub const CRR_SERVER_CLOSE: Scenario = Scenario {
    id: "crr_server_close",
    label: "crr, server closes, 16 conns",
    metric: Metric::ConnectionsPerS,
    echo_ports: CRR_ECHO_PORTS,
};
/// crr, the client closes first (TIME_WAIT on the client).
pub const CRR_CLIENT_CLOSE: Scenario = Scenario {
    id: "crr_client_close",
    label: "crr, client closes, 16 conns",
    metric: Metric::ConnectionsPerS,
    echo_ports: CRR_ECHO_PORTS,
};
/// One bulk stream, client to server.
pub const STREAM: Scenario = Scenario {
    id: "stream",
    label: "stream, 1 conn, up",
    metric: Metric::Gbps,
    echo_ports: 1,
};

/// rr, 64 connections, 64 B, open loop (the load generator adds `--rate`): latency at the same
/// offered load for both stacks.
pub const RR64_OPEN: Scenario = Scenario {
    id: "rr64_open",
    label: "rr, 64 conns, 64 B, open loop",
    metric: Metric::TransactionsPerS,
    echo_ports: 1,
};

/// Every scenario of the side-by-side runs, in table order.
pub const ALL: [Scenario; 5] = [RR1, RR64, CRR_SERVER_CLOSE, CRR_CLIENT_CLOSE, STREAM];

/// The side-by-side scenarios `ids` names (`--scenarios`), in table order; every one when
/// `ids` is empty. `rr64_open` (the open loop at 80 % of the kernel's rr64 rate) is named on
/// its own, and needs `rr64`.
pub fn select(ids: &[String]) -> Result<Vec<Scenario>, String> {
    let known: Vec<&str> = ALL.iter().map(|s| s.id).chain([RR64_OPEN.id]).collect();
    if let Some(bad) = ids.iter().find(|id| !known.contains(&id.as_str())) {
        return Err(format!("unknown scenario `{bad}` ({})", known.join(", ")));
    }
    let wants = |id: &str| ids.is_empty() || ids.iter().any(|x| x == id);
    if ids.iter().any(|x| x == RR64_OPEN.id) && !wants(RR64.id) {
        return Err(format!(
            "scenario `{}` needs `{}`: its rate is 80 % of the kernel's rr64 rate of the same run",
            RR64_OPEN.id, RR64.id
        ));
    }
    Ok(ALL
        .iter()
        .chain([&RR64_OPEN])
        .filter(|s| wants(s.id))
        .copied()
        .collect())
}

impl Scenario {
    /// The same scenario on one echo port (the churn runs: the kernel's ephemeral ports
    /// against one server port).
    pub const fn on_one_port(self) -> Scenario {
        self.with_echo_ports(1)
    }

    /// The same scenario over `n` echo ports (the matrix's `--crr-echo-ports`).
    pub const fn with_echo_ports(self, n: u16) -> Scenario {
        Scenario {
            echo_ports: n,
            ..self
        }
    }

    /// Whether this is one of the crr scenarios (connections per second).
    pub fn is_crr(&self) -> bool {
        self.metric == Metric::ConnectionsPerS
    }

    /// The load generator's options for this scenario (besides stack, driver, target and
    /// duration): `--target-ports` when it spreads over several echo ports.
    pub fn loadgen_args(&self) -> Vec<String> {
        let v: &[&str] = match self.id {
            "rr1" => &["--mode", "rr", "--conns", "1", "--size", "64"],
            "rr64" | "rr64_open" => &["--mode", "rr", "--conns", "64", "--size", "64"],
            "crr_server_close" => &["--mode", "crr", "--conns", "16", "--server-close"],
            "crr_client_close" => &["--mode", "crr", "--conns", "16", "--client-close"],
            _ => &["--mode", "stream", "--conns", "1", "--stream-dir", "up"],
        };
        let mut args: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        if self.echo_ports > 1 {
            args.extend(["--target-ports".into(), self.echo_ports.to_string()]);
        }
        args
    }

    /// The standalone echo server's `--port` options: `echo_ports` consecutive ports from
    /// `first` (the load generator's `--target` port).
    pub fn echo_port_args(&self, first: u16) -> Vec<String> {
        self.ports(first)
            .flat_map(|p| ["--port".to_string(), p.to_string()])
            .collect()
    }

    /// The echo ports from `first`.
    pub fn ports(&self, first: u16) -> impl Iterator<Item = u16> {
        (0..self.echo_ports.max(1)).map_while(move |k| first.checked_add(k))
    }

    /// The standalone echo server's options for this scenario (the memory driver's in-process
    /// echo takes `--server-close` from the load generator).
    pub fn echo_args(&self) -> Vec<String> {
        // By id: the same scenario over any number of echo ports.
        if self.id == CRR_SERVER_CLOSE.id {
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
        for n in [1, 2, CRR_ECHO_PORTS] {
            let s = CRR_SERVER_CLOSE.with_echo_ports(n);
            assert_eq!(s.echo_args(), ["--close-after", "88"], "{n} ports");
        }
        assert!(RR64.echo_args().is_empty());
    }

    #[test]
    fn crr_spreads_over_the_echo_ports_on_both_ends_and_the_rest_stays_on_one() {
        for s in [CRR_SERVER_CLOSE, CRR_CLIENT_CLOSE] {
            let l = s.loadgen_args();
            assert_eq!(
                l[l.len() - 2..],
                ["--target-ports".to_string(), CRR_ECHO_PORTS.to_string()],
                "{}",
                s.id
            );
            let e = s.echo_port_args(20000);
            assert_eq!(e.len(), 2 * usize::from(CRR_ECHO_PORTS), "{}", s.id);
            assert_eq!(e[..4], ["--port", "20000", "--port", "20001"]);
            assert_eq!(e[e.len() - 1], (20000 + CRR_ECHO_PORTS - 1).to_string());
        }
        for s in [RR1, RR64, RR64_OPEN, STREAM] {
            assert!(!s.loadgen_args().contains(&"--target-ports".to_string()));
            assert_eq!(s.echo_port_args(20000), ["--port", "20000"]);
        }
        let churn = CRR_CLIENT_CLOSE.on_one_port();
        assert_eq!(churn.echo_ports, 1);
        assert_eq!(churn.id, CRR_CLIENT_CLOSE.id);
        assert!(!churn.loadgen_args().contains(&"--target-ports".to_string()));
        assert_eq!(churn.echo_port_args(7), ["--port", "7"]);
    }

    #[test]
    fn scenarios_are_selected_by_id_in_table_order() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = select(&[]).unwrap();
        assert_eq!(all.len(), ALL.len() + 1);
        assert_eq!(all.last(), Some(&RR64_OPEN));
        let crr = select(&ids(&["crr_client_close", "crr_server_close"])).unwrap();
        assert_eq!(crr, [CRR_SERVER_CLOSE, CRR_CLIENT_CLOSE]);
        assert_eq!(
            select(&ids(&["rr64", "rr64_open"])).unwrap(),
            [RR64, RR64_OPEN]
        );
        let e = select(&ids(&["crr"])).unwrap_err();
        assert!(e.contains("unknown scenario `crr`"), "{e}");
        let e = select(&ids(&["rr64_open"])).unwrap_err();
        assert!(e.contains("needs `rr64`"), "{e}");
    }
}
