//! The machine a run came from: CPU model, cores, kernel, rustc, git commit, load.

use serde::Serialize;
use std::process::Command;

/// What each result file records about where it was measured.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Host name.
    pub host: String,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `git rev-parse --short HEAD` (with `-dirty` if the tree had changes).
    pub git_commit: String,
    /// The 1-minute load average when the run started and when it ended.
    pub load_average: (f64, f64),
    /// UTC start time, RFC 3339.
    pub started_utc: String,
    /// Whether a hypervisor flag is set (a virtual machine's figures are noisy).
    pub virtual_machine: bool,
}

fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

impl Machine {
    /// This machine, now.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let virtual_machine = cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
        let dirty = !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let mut git_commit = output("git", &["rev-parse", "--short", "HEAD"]);
        if dirty {
            git_commit.push_str("-dirty");
        }
        Machine {
            host: output("hostname", &[]),
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: output("uname", &["-r"]),
            rustc: output("rustc", &["--version"]),
            git_commit,
            load_average: (load_average(), f64::NAN),
            started_utc: output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            virtual_machine,
        }
    }

    /// The date part of the start time (`YYYY-MM-DD`).
    pub fn date(&self) -> &str {
        self.started_utc.get(..10).unwrap_or("unknown-date")
    }
}
