//! The TIME_WAIT churn runs: a client-closed crr held for a minute, where the kernel runs out
//! of ephemeral ports (without `tcp_tw_reuse`) and shardnet must keep its rate.

use super::launch::{Apps, Path, Stack};
use super::netns::{NsLock, Veth};
use super::results::{ChurnRun, Run};
use super::scenario::{CRR_CLIENT_CLOSE, Scenario};

/// The churn's load: the client-closed crr on ONE echo port (the matrix's crr rows spread over
/// several), since the churn is about the client's ephemeral ports against one server port.
const CHURN_CRR: Scenario = CRR_CLIENT_CLOSE.on_one_port();

/// Seconds at the start whose mean rate is the "short-run" rate: the first five, as long as
/// the short side-by-side runs (a collapse within them shows as a low mean, not as none).
const SHORT: std::ops::Range<usize> = 0..5;
/// The window of the sustained-rate check, seconds.
const WINDOW: usize = 5;

/// Fills the rate analysis of a churn run from its per-second connections.
pub fn analyse(label: &str, run: Run) -> ChurnRun {
    let mut c = ChurnRun {
        label: label.into(),
        run,
        short_run_rate: None,
        worst_window_fraction: None,
        worst_second_fraction: None,
    };
    let Run::Measured(m) = &c.run else {
        return c;
    };
    // The last second is cut short by the end of the load.
    let per = &m.connects_per_second[..m.connects_per_second.len().saturating_sub(1)];
    if per.len() < SHORT.end {
        return c;
    }
    let short = per[SHORT].iter().sum::<u64>() as f64 / SHORT.len() as f64;
    if short <= 0.0 {
        return c;
    }
    c.short_run_rate = Some(short);
    let after = &per[SHORT.end..];
    c.worst_second_fraction = after
        .iter()
        .map(|&x| x as f64 / short)
        .min_by(f64::total_cmp);
    c.worst_window_fraction = after
        .windows(WINDOW)
        .map(|w| w.iter().sum::<u64>() as f64 / WINDOW as f64 / short)
        .min_by(f64::total_cmp);
    c
}

fn say(msg: &str) {
    eprintln!("matrix: {msg}");
}

fn run(r: Result<super::measurement::Measurement, String>) -> Run {
    match r {
        Ok(m) => Run::Measured(Box::new(m)),
        Err(e) => Run::Failed(e),
    }
}

/// The kernel over the veth with `tcp_tw_reuse` = `tw_reuse` in the client's namespace, fresh
/// namespaces (no TIME_WAIT left from earlier runs).
pub fn kernel(apps: &Apps, lock: &NsLock, tw_reuse: u8, secs: f64) -> ChurnRun {
    let label = format!("kernel, veth, tcp_tw_reuse={tw_reuse}");
    let r = Veth::up(lock, tw_reuse).and_then(|veth| {
        let label = format!("{label}, ports {}", veth.port_range());
        apps.measure(
            Path::VethAfXdp,
            Stack::Kernel,
            &CHURN_CRR,
            secs,
            &["--tw-report"],
        )
        .map(|m| (label, m))
    });
    say(&format!(
        "churn {label}: {}",
        summary(r.as_ref().map(|(_, m)| m))
    ));
    match r {
        Ok((label, m)) => analyse(&label, Run::Measured(Box::new(m))),
        Err(e) => analyse(&label, Run::Failed(e)),
    }
}

/// shardnet on `path` (a veth path in fresh namespaces, or the memory wire).
pub fn shardnet(apps: &Apps, lock: &NsLock, path: Path, secs: f64) -> ChurnRun {
    let label = match path {
        Path::MemoryWire => {
            "shardnet, memory wire (client reuses TIME-WAIT tuples as Linux does on loopback, ports 1024-65535, 8 server ports)"
        }
        Path::VethAfXdp => {
            "shardnet, veth AF_XDP (TIME-WAIT reuse as tcp_tw_reuse=1, ports 1024-65535, 1 server port)"
        }
        Path::VethDpdk => {
            "shardnet, veth DPDK (TIME-WAIT reuse as tcp_tw_reuse=1, ports 1024-65535, 1 server port)"
        }
    };
    let r = if path == Path::MemoryWire {
        apps.measure(path, Stack::Shardnet, &CHURN_CRR, secs, &["--tw-report"])
    } else {
        Veth::up(lock, 0).and_then(|_veth| {
            apps.measure(path, Stack::Shardnet, &CHURN_CRR, secs, &["--tw-report"])
        })
    };
    say(&format!("churn {label}: {}", summary(r.as_ref())));
    analyse(label, run(r))
}

fn summary(r: Result<&super::measurement::Measurement, &String>) -> String {
    match r {
        Ok(m) => format!(
            "{:.0} connections/s, TIME_WAIT peak {:?}, EADDRNOTAVAIL {:?}, errors {}",
            m.value, m.time_wait_peak, m.eaddrnotavail, m.errors
        ),
        Err(e) => format!("failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::measurement::Measurement;

    #[test]
    fn a_collapse_shows_in_the_worst_window() {
        // 5 seconds at 100/s, 5 more, 5 collapsed to 2, the cut last second.
        let mut m = Measurement {
            connects_per_second: [vec![100; 10], vec![2; 5], vec![1]].concat(),
            ..Measurement::default()
        };
        let c = analyse("k", Run::Measured(Box::new(m.clone())));
        assert_eq!(c.short_run_rate, Some(100.0));
        assert_eq!(c.worst_window_fraction, Some(0.02));
        assert_eq!(c.worst_second_fraction, Some(0.02));
        m.connects_per_second = [vec![100; 15], vec![1]].concat();
        let c = analyse("s", Run::Measured(Box::new(m.clone())));
        assert_eq!(c.worst_window_fraction, Some(1.0));
        // Ports used up in the first second: the mean of the first five is the short-run rate.
        m.connects_per_second = [vec![500], vec![0; 15], vec![0]].concat();
        let c = analyse("x", Run::Measured(Box::new(m)));
        assert_eq!(c.short_run_rate, Some(100.0));
        assert_eq!(c.worst_window_fraction, Some(0.0));
    }
}
