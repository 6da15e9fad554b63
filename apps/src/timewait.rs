//! TIME_WAIT accounting of the kernel stack: counting entries in `/proc/net/tcp{,6}` and the
//! load generator's churn report (`--tw-report`).
//!
//! The parser is a pure function over the file's text so it can be tested with fixtures.

use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The `st` value of TIME_WAIT in `/proc/net/tcp` (include/net/tcp_states.h: TCP_TIME_WAIT = 6).
const ST_TIME_WAIT: u8 = 0x06;

/// Which TIME_WAIT entries count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TwFilter {
    /// Entries whose local port is one of these (a server's listening ports).
    LocalPorts(Vec<u16>),
    /// Entries whose remote end is one of these addresses (a client's targets).
    Remote(Vec<SocketAddrV4>),
}

fn parse_addr(field: &str) -> Option<(Option<Ipv4Addr>, u16)> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if ip.len() == 8 {
        // The kernel prints the network-order u32 as a native integer.
        Some(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        ))
    } else {
        None
    };
    Some((ip, port))
}

/// Counts the TIME_WAIT entries of one `/proc/net/tcp` or `/proc/net/tcp6` text that pass `filter`.
pub fn count_in(text: &str, filter: &TwFilter) -> u64 {
    let mut n = 0;
    for line in text.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(_sl), Some(local), Some(remote), Some(st)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if u8::from_str_radix(st, 16) != Ok(ST_TIME_WAIT) {
            continue;
        }
        let pass = match filter {
            TwFilter::LocalPorts(ports) => {
                parse_addr(local).is_some_and(|(_, port)| ports.contains(&port))
            }
            TwFilter::Remote(targets) => parse_addr(remote).is_some_and(|(ip, port)| {
                targets
                    .iter()
                    .any(|t| port == t.port() && ip.is_none_or(|ip| ip == *t.ip()))
            }),
        };
        n += u64::from(pass);
    }
    n
}

/// Counts this host's TIME_WAIT entries (IPv4 and IPv6) that pass `filter`.
pub fn count_time_wait(filter: &TwFilter) -> std::io::Result<u64> {
    let mut n = count_in(&std::fs::read_to_string("/proc/net/tcp")?, filter);
    // IPv6 may be disabled; then there is no tcp6 table and nothing to count in it.
    if let Ok(text) = std::fs::read_to_string("/proc/net/tcp6") {
        n += count_in(&text, filter);
    }
    Ok(n)
}

/// The ephemeral port range (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// Linux keeps a TIME_WAIT entry for 60 s (TCP_TIMEWAIT_LEN), not tunable.
pub const LINUX_TIME_WAIT_SECS: u64 = 60;

/// One second of the churn report.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct ChurnSample {
    /// Seconds since the start.
    pub second: u64,
    /// TIME_WAIT entries towards the target at the end of that second.
    pub time_wait: u64,
    /// Connections established in that second.
    pub connects: u64,
    /// Connects that failed with EADDRNOTAVAIL in that second.
    pub eaddrnotavail: u64,
}

/// The TIME_WAIT churn report of a run on the load generator's side.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnReport {
    /// Every second's sample.
    pub samples: Vec<ChurnSample>,
    /// The ephemeral port range, if readable.
    pub port_range: Option<(u16, u16)>,
    /// The connection rate one (source IP, destination) pair can sustain with client-side
    /// TIME_WAIT: ports in the range / 60 s.
    pub sustainable_conn_per_s: Option<f64>,
    /// Port allocation failures over the run.
    pub eaddrnotavail_total: u64,
    /// Largest TIME_WAIT count seen.
    pub peak_time_wait: u64,
    /// The first second from which the TIME_WAIT count stayed within 5% (three samples or more),
    /// and its level; `None` if it never settled.
    pub steady_state: Option<(u64, u64)>,
    /// shardnet only: reuses, port exhaustion and the memory TIME_WAIT holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shardnet: Option<ShardnetChurn>,
}

/// The load generator stack's cumulative TIME_WAIT counters at the end of one second
/// (shardnet: summed over the client shards' published counters).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TwCounterSample {
    /// Seconds since the start.
    pub second: u64,
    /// TIME-WAIT 4-tuples taken over by new connects so far (`TWRecycled`).
    pub tw_recycled: u64,
    /// Connects refused for want of an ephemeral port so far (`TCPEphemeralPortExhausted`).
    pub port_exhausted: u64,
}

/// One second of shardnet's part of the churn report.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct ShardnetChurnSecond {
    /// Seconds since the start.
    pub second: u64,
    /// TIME-WAIT 4-tuples reused by new connects in that second (`TWRecycled`).
    pub tw_recycled: u64,
    /// Connects refused for want of an ephemeral port in that second
    /// (`TCPEphemeralPortExhausted`).
    pub port_exhausted: u64,
    /// Bytes the TIME-WAIT entries held at the end of that second.
    pub time_wait_bytes: u64,
}

/// shardnet's part of the churn report: what Linux's `/proc/net/tcp` cannot tell.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ShardnetChurn {
    /// Bytes of one compact TIME-WAIT entry in the stack.
    pub entry_bytes: u64,
    /// Per second (counter deltas; memory at the second's TIME_WAIT sample).
    pub per_second: Vec<ShardnetChurnSecond>,
    /// TIME-WAIT reuses by the load generator over the run (`TWRecycled`).
    pub tw_recycled_total: u64,
    /// Ephemeral port exhaustion over the run (`TCPEphemeralPortExhausted`).
    pub port_exhausted_total: u64,
    /// Bytes held by TIME-WAIT at the peak.
    pub peak_bytes: u64,
    /// Bytes held by TIME-WAIT at the steady state, if one was reached.
    pub steady_bytes: Option<u64>,
}

impl ChurnReport {
    /// Analyses `samples`.
    pub fn new(samples: Vec<ChurnSample>, port_range: Option<(u16, u16)>) -> Self {
        let peak_time_wait = samples.iter().map(|s| s.time_wait).max().unwrap_or(0);
        let eaddrnotavail_total = samples.iter().map(|s| s.eaddrnotavail).sum();
        let steady_state = steady_state(&samples);
        ChurnReport {
            sustainable_conn_per_s: port_range
                .map(|(lo, hi)| f64::from(hi - lo + 1) / LINUX_TIME_WAIT_SECS as f64),
            samples,
            port_range,
            eaddrnotavail_total,
            peak_time_wait,
            steady_state,
            shardnet: None,
        }
    }

    /// Adds shardnet's part: `counters` are the load generator's cumulative counters per second,
    /// `totals` (`TWRecycled`, `TCPEphemeralPortExhausted`) its exact counts at the end, and
    /// `entry_bytes` the size of one TIME-WAIT entry.
    pub fn with_shardnet(
        mut self,
        counters: &[TwCounterSample],
        totals: (u64, u64),
        entry_bytes: u64,
    ) -> Self {
        let mut before = TwCounterSample::default();
        let per_second = self
            .samples
            .iter()
            .map(|x| {
                let now = counters
                    .iter()
                    .rev()
                    .find(|c| c.second <= x.second)
                    .copied()
                    .unwrap_or(before);
                let row = ShardnetChurnSecond {
                    second: x.second,
                    tw_recycled: now.tw_recycled.saturating_sub(before.tw_recycled),
                    port_exhausted: now.port_exhausted.saturating_sub(before.port_exhausted),
                    time_wait_bytes: x.time_wait * entry_bytes,
                };
                before = now;
                row
            })
            .collect();
        self.shardnet = Some(ShardnetChurn {
            entry_bytes,
            per_second,
            tw_recycled_total: totals.0,
            port_exhausted_total: totals.1,
            peak_bytes: self.peak_time_wait * entry_bytes,
            steady_bytes: self.steady_state.map(|(_, level)| level * entry_bytes),
        });
        self
    }

    /// The report as text.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from(match self.shardnet {
            None => "  TIME_WAIT churn (loadgen side, towards the target):\n",
            Some(_) => "  TIME_WAIT churn (both stacks' TIME-WAIT entries):\n",
        });
        for (i, x) in self.samples.iter().enumerate() {
            let _ = write!(
                s,
                "    {:>4}s  TIME_WAIT {:>7}  connects {:>7}  EADDRNOTAVAIL {:>6}",
                x.second + 1,
                x.time_wait,
                x.connects,
                x.eaddrnotavail
            );
            if let Some(r) = self.shardnet.as_ref().and_then(|n| n.per_second.get(i)) {
                let _ = write!(
                    s,
                    "  reused {:>7}  port exhausted {:>6}  memory {:>9.1} KiB",
                    r.tw_recycled,
                    r.port_exhausted,
                    r.time_wait_bytes as f64 / 1024.0
                );
            }
            s.push('\n');
        }
        if let (Some((lo, hi)), Some(rate)) = (self.port_range, self.sustainable_conn_per_s) {
            let _ = writeln!(
                s,
                "    ephemeral ports {lo}-{hi}: {} ports / {LINUX_TIME_WAIT_SECS} s TIME_WAIT = {rate:.0} client-closed connections/s per destination{}",
                hi - lo + 1,
                if self.shardnet.is_some() {
                    " without TIME-WAIT reuse (see reuses below)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            s,
            "    peak TIME_WAIT {}, port allocation failures (EADDRNOTAVAIL) {}",
            self.peak_time_wait, self.eaddrnotavail_total
        );
        match self.steady_state {
            Some((at, level)) => {
                let _ = writeln!(s, "    steady state from {}s at ~{level} entries", at + 1);
            }
            None => s.push_str("    no steady state within the run (still growing or too short)\n"),
        }
        if let Some(n) = &self.shardnet {
            let _ = writeln!(
                s,
                "    TIME-WAIT reuses (TWRecycled) {}, ephemeral ports exhausted (TCPEphemeralPortExhausted) {}",
                n.tw_recycled_total, n.port_exhausted_total
            );
            let _ = writeln!(
                s,
                "    TIME-WAIT memory at {} B/entry: peak {:.1} KiB{}",
                n.entry_bytes,
                n.peak_bytes as f64 / 1024.0,
                n.steady_bytes
                    .map(|b| format!(", steady state {:.1} KiB", b as f64 / 1024.0))
                    .unwrap_or_default()
            );
        }
        s
    }
}

fn steady_state(samples: &[ChurnSample]) -> Option<(u64, u64)> {
    // The earliest start from which every later sample is within 5% of the last one.
    let last = samples.last()?.time_wait;
    let tolerance = (last as f64 * 0.05).max(2.0);
    let mut start = samples.len();
    for (i, s) in samples.iter().enumerate().rev() {
        if (s.time_wait as f64 - last as f64).abs() <= tolerance {
            start = i;
        } else {
            break;
        }
    }
    (samples.len() - start >= 3).then(|| (samples[start].second, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 06 00000000:00000000 03:000016E1 00000000     0        0 0 3 0000000000000000
   2: 0100007F:C351 0100007F:1F90 06 00000000:00000000 03:000016E1 00000000     0        0 0 3 0000000000000000
   3: 0100007F:C352 0100007F:1F90 06 00000000:00000000 03:000016E1 00000000     0        0 0 3 0000000000000000
   4: 0100007F:C353 0200007F:1F90 06 00000000:00000000 03:000016E1 00000000     0        0 0 3 0000000000000000
   5: 0100007F:C354 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
garbage line
";

    #[test]
    fn counts_by_local_port_and_remote() {
        // 0x1F90 = 8080; 127.0.0.1 is 0100007F on a little-endian host.
        assert_eq!(count_in(FIXTURE, &TwFilter::LocalPorts(vec![8080])), 1);
        assert_eq!(count_in(FIXTURE, &TwFilter::LocalPorts(vec![1])), 0);
        if cfg!(target_endian = "little") {
            let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
            assert_eq!(count_in(FIXTURE, &TwFilter::Remote(vec![target])), 2);
            // 0xC350 = 50000: a second target port counts its entries too (the one towards
            // 127.0.0.1:50000, not the ones from it).
            let other = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50000);
            assert_eq!(count_in(FIXTURE, &TwFilter::Remote(vec![target, other])), 3);
            assert_eq!(count_in(FIXTURE, &TwFilter::Remote(vec![other])), 1);
        }
    }

    #[test]
    fn steady_state_needs_three_flat_samples() {
        let mk = |v: &[u64]| {
            v.iter()
                .enumerate()
                .map(|(i, &t)| ChurnSample {
                    second: i as u64,
                    time_wait: t,
                    connects: 0,
                    eaddrnotavail: 0,
                })
                .collect::<Vec<_>>()
        };
        let r = ChurnReport::new(
            mk(&[100, 5000, 10000, 14000, 14100, 13900]),
            Some((32768, 60999)),
        );
        assert_eq!(r.steady_state, Some((3, 13900)));
        assert_eq!(r.peak_time_wait, 14100);
        assert!((r.sustainable_conn_per_s.unwrap() - 470.5).abs() < 0.1);
        assert_eq!(
            ChurnReport::new(mk(&[1, 100, 1000]), None).steady_state,
            None
        );
    }

    #[test]
    fn shardnet_part_takes_counter_deltas_and_memory() {
        let samples = [(0, 1000), (1, 3000), (2, 3000), (3, 3010)]
            .iter()
            .map(|&(second, time_wait)| ChurnSample {
                second,
                time_wait,
                connects: 0,
                eaddrnotavail: 0,
            })
            .collect();
        let counters = [
            TwCounterSample {
                second: 0,
                tw_recycled: 0,
                port_exhausted: 0,
            },
            // Second 1 has no sample: second 2's delta covers both.
            TwCounterSample {
                second: 2,
                tw_recycled: 500,
                port_exhausted: 7,
            },
            TwCounterSample {
                second: 3,
                tw_recycled: 1200,
                port_exhausted: 7,
            },
        ];
        let r =
            ChurnReport::new(samples, Some((1024, 65535))).with_shardnet(&counters, (1250, 9), 52);
        let n = r.shardnet.as_ref().unwrap();
        let recycled: Vec<u64> = n.per_second.iter().map(|x| x.tw_recycled).collect();
        assert_eq!(recycled, [0, 0, 500, 700]);
        let exhausted: Vec<u64> = n.per_second.iter().map(|x| x.port_exhausted).collect();
        assert_eq!(exhausted, [0, 0, 7, 0]);
        assert_eq!(n.per_second[1].time_wait_bytes, 3000 * 52);
        assert_eq!((n.tw_recycled_total, n.port_exhausted_total), (1250, 9));
        assert_eq!(n.peak_bytes, 3010 * 52);
        assert_eq!(r.steady_state, Some((1, 3010)));
        assert_eq!(n.steady_bytes, Some(3010 * 52));
        let text = r.render();
        assert!(text.contains("TWRecycled) 1250"), "{text}");
        assert!(text.contains("at 52 B/entry"), "{text}");
    }
}
