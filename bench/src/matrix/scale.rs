//! Idle connections at scale: the `conn_memory` binary (both sides in one process, memory
//! wire), its resident memory with every connection open, read from its output.

use super::child;
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What `conn_memory` reported.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnMemory {
    /// Established connections on each side.
    pub connections: u64,
    /// Process RSS with all of them open, MiB.
    pub rss_mib: Option<f64>,
    /// Peak RSS (VmHWM), MiB.
    pub peak_rss_mib: Option<f64>,
    /// Heap per idle connection, client side, bytes.
    pub client_bytes_per_conn: Option<f64>,
    /// Heap per idle connection, server side, bytes.
    pub server_bytes_per_conn: Option<f64>,
    /// Why there is no figure, if there is none.
    pub not_run: Option<String>,
}

/// The first number after `prefix` on the line that starts with it.
fn number_after(text: &str, prefix: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    line[prefix.len()..].split_whitespace().next()?.parse().ok()
}

/// Reads `conn_memory`'s output.
pub fn read(stdout: &str, connections: u64) -> ConnMemory {
    ConnMemory {
        connections,
        rss_mib: number_after(stdout, "process RSS, all connections open:"),
        peak_rss_mib: number_after(stdout, "process peak RSS (VmHWM):"),
        client_bytes_per_conn: number_after(stdout, "client heap per idle conn:"),
        server_bytes_per_conn: number_after(stdout, "server heap per idle conn:"),
        not_run: None,
    }
}

/// Runs `conn_memory --connections N` (and a small kernel comparison it makes on its own).
pub fn conn_memory(bin: &Path, connections: u64) -> ConnMemory {
    let not_run = |why: String| ConnMemory {
        connections,
        not_run: Some(why),
        ..ConnMemory::default()
    };
    if !bin.exists() {
        return not_run(format!("not run: {} is not built", bin.display()));
    }
    match child::run(
        Command::new(bin).args([
            "--connections",
            &connections.to_string(),
            "--kernel-connections",
            "2000",
        ]),
        Duration::from_secs(600),
    ) {
        Ok(f) if f.code == Some(0) => {
            let r = read(&f.stdout, connections);
            if r.rss_mib.is_none() {
                return not_run(format!("conn_memory printed no RSS: {}", f.stderr_tail(3)));
            }
            r
        }
        Ok(f) => not_run(format!(
            "conn_memory status {:?} (timed out: {}): {}",
            f.code,
            f.timed_out,
            f.stderr_tail(3)
        )),
        Err(e) => not_run(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rss_line() {
        let out = "client heap per idle conn:      1216 B (+ 65 B reserved)\n\
                   process RSS, all connections open: 2417.6 MiB (2535 B per connection, both sides)\n\
                   process peak RSS (VmHWM):       2448.2 MiB\n";
        let r = read(out, 1_000_000);
        assert_eq!(r.rss_mib, Some(2417.6));
        assert_eq!(r.peak_rss_mib, Some(2448.2));
        assert_eq!(r.client_bytes_per_conn, Some(1216.0));
        assert_eq!(r.server_bytes_per_conn, None);
    }
}
