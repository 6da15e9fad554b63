//! Starting the apps (`echo`, `loadgen`) for one run of one stack on one path: which binary,
//! which namespace, which core, which options; waiting for the echo server to be up.

use super::child::{self, Finished, Running};
use super::measurement::Measurement;
use super::netns;
use super::scenario::Scenario;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The stack under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stack {
    /// shardnet on the path's driver.
    Shardnet,
    /// The Linux kernel's sockets.
    Kernel,
}

impl Stack {
    /// The `--stack` value.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Shardnet => "shardnet",
            Stack::Kernel => "kernel",
        }
    }
}

/// Where the traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// shardnet: the in-process memory wire (echo in the load generator's process, one shard per
    /// side, each pinned to its own core); kernel: loopback, echo on CPU 1, load on CPU 0.
    MemoryWire,
    /// Two namespaces joined by a veth pair; shardnet on AF_XDP on both ends.
    VethAfXdp,
    /// Two namespaces joined by a veth pair; shardnet on DPDK's `net_af_xdp` on both ends.
    VethDpdk,
}

/// The binaries and fixed settings of a matrix run.
#[derive(Clone, Debug)]
pub struct Apps {
    /// `loadgen`.
    pub loadgen: PathBuf,
    /// `echo`.
    pub echo: PathBuf,
    /// The echo server's TCP port.
    pub port: u16,
    /// AF_XDP attach mode (`native` or `generic`).
    pub xdp_mode: String,
}

/// A command, inside namespace `ns` (if any), bound to `cpu` (if any).
fn command(
    ns: Option<&str>,
    cpu: Option<usize>,
    program: &std::path::Path,
    args: &[String],
) -> Command {
    let mut argv: Vec<String> = Vec::new();
    if let Some(ns) = ns {
        argv.extend(["ip", "netns", "exec", ns].map(String::from));
    }
    if let Some(cpu) = cpu {
        argv.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
    }
    argv.push(program.display().to_string());
    argv.extend(args.iter().cloned());
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// DPDK EAL arguments for one end: the veth device as a `net_af_xdp` vdev.
pub fn eal(side: &str, dev: &str) -> String {
    format!(
        "--no-huge -m 512 --no-pci --no-shconf --no-telemetry --file-prefix=snet-mx-{side} \
         --vdev=net_af_xdp0,iface={dev},start_queue=0,queue_count=1"
    )
}

impl Apps {
    /// The options that put a shardnet app on `path`'s driver at `ip` on `dev` (`side` names
    /// the end for DPDK's file prefix).
    fn shardnet_driver(&self, path: Path, dev: &str, ip: &str, side: &str) -> Vec<String> {
        let mut v = strings(&["--stack", "shardnet"]);
        match path {
            Path::MemoryWire => v.extend(strings(&["--driver", "memory"])),
            Path::VethAfXdp => v.extend(strings(&[
                "--driver",
                "af-xdp",
                "--iface",
                dev,
                "--ip",
                &format!("{ip}/24"),
                "--xdp-mode",
                &self.xdp_mode,
            ])),
            Path::VethDpdk => v.extend(strings(&[
                "--driver",
                "dpdk",
                "--eal",
                &eal(side, dev),
                "--ip",
                &format!("{ip}/24"),
            ])),
        }
        v
    }

    /// Starts the echo server of `path`/`stack` for `scenario`, bounded to `limit` seconds, and
    /// waits until it answers; `None` for shardnet on the memory wire (its echo runs inside
    /// the load generator).
    pub fn start_echo(
        &self,
        path: Path,
        stack: Stack,
        scenario: &Scenario,
        limit: f64,
    ) -> Result<Option<Running>, String> {
        let mut args = match (path, stack) {
            (Path::MemoryWire, Stack::Shardnet) => return Ok(None),
            // The kernel echo does not read /proc/net/tcp every second (--no-time-wait): with
            // the 100 k+ TIME_WAIT entries of a crr over several ports that cost a fifth of the
            // samples on its core. (The load generator counts only with --tw-report.)
            (Path::MemoryWire, Stack::Kernel) => strings(&["--stack", "kernel", "--no-time-wait"]),
            (_, Stack::Kernel) => strings(&[
                "--stack",
                "kernel",
                "--no-time-wait",
                "--ip",
                &format!("{}/24", netns::KERNEL_ECHO_IP),
            ]),
            (_, Stack::Shardnet) => {
                self.shardnet_driver(path, netns::DEV_ECHO, netns::SHARDNET_ECHO_IP, "echo")
            }
        };
        args.extend(scenario.echo_port_args(self.port));
        args.extend(["--duration".into(), format!("{limit:.0}")]);
        args.extend(scenario.echo_args());
        let ns = (path != Path::MemoryWire).then_some(netns::NS_ECHO);
        let mut echo = child::spawn(
            &mut command(ns, Some(1), &self.echo, &args),
            Duration::from_secs_f64(limit + 15.0),
        )?;
        let start = Instant::now();
        loop {
            if echo.exited() {
                let f = echo.wait();
                return Err(format!(
                    "echo exited before serving (status {:?}): {}",
                    f.code,
                    f.stderr_tail(3)
                ));
            }
            if self.echo_ready(path, stack, scenario) {
                return Ok(Some(echo));
            }
            if start.elapsed() > Duration::from_secs(20) {
                let f = echo.stop(Duration::from_secs(3));
                return Err(format!(
                    "echo did not come up in 20 s: {}",
                    f.stderr_tail(3)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the echo server answers: the kernel has a listening socket on every port of
    /// the scenario; shardnet answers an ICMP echo from the kernel of the load generator's
    /// namespace (its shards listen on every port before its runtime polls the interface).
    fn echo_ready(&self, path: Path, stack: Stack, scenario: &Scenario) -> bool {
        let mut argv: Vec<String> = Vec::new();
        match (path, stack) {
            (_, Stack::Kernel) => {
                if path != Path::MemoryWire {
                    argv.extend(strings(&["ip", "netns", "exec", netns::NS_ECHO]));
                }
                let want: BTreeSet<u16> = scenario.ports(self.port).collect();
                let (first, last) = match (want.first(), want.last()) {
                    (Some(f), Some(l)) => (*f, *l),
                    _ => return false,
                };
                argv.extend(strings(&[
                    "ss",
                    "-ltnH",
                    &format!("( sport >= :{first} and sport <= :{last} )"),
                ]));
                child::run_ok(&argv.iter().map(String::as_str).collect::<Vec<_>>())
                    .is_ok_and(|out| want.is_subset(&listening_ports(&out)))
            }
            (_, Stack::Shardnet) => {
                argv.extend(strings(&[
                    "ip",
                    "netns",
                    "exec",
                    netns::NS_LOAD,
                    "ping",
                    "-c1",
                    "-W1",
                    netns::SHARDNET_ECHO_IP,
                ]));
                child::run_ok(&argv.iter().map(String::as_str).collect::<Vec<_>>()).is_ok()
            }
        }
    }

    /// Runs the load generator of `path`/`stack` for `scenario` for `secs` seconds with
    /// `extra` options (`--tw-report`, ...), and reads its report.
    pub fn run_loadgen(
        &self,
        path: Path,
        stack: Stack,
        scenario: &Scenario,
        secs: f64,
        extra: &[&str],
    ) -> Result<Measurement, String> {
        let mut args = match (path, stack) {
            (Path::MemoryWire, Stack::Shardnet) => self.shardnet_driver(path, "", "", "load"),
            (Path::MemoryWire, Stack::Kernel) => strings(&[
                "--stack",
                "kernel",
                "--target",
                &format!("127.0.0.1:{}", self.port),
            ]),
            (_, Stack::Kernel) => strings(&[
                "--stack",
                "kernel",
                "--target",
                &format!("{}:{}", netns::KERNEL_ECHO_IP, self.port),
            ]),
            (_, Stack::Shardnet) => {
                let mut v =
                    self.shardnet_driver(path, netns::DEV_LOAD, netns::SHARDNET_LOAD_IP, "load");
                // The kernel's client in the same namespace has tcp_tw_reuse (1 in the matrix,
                // 0 or 1 in the churn runs) and `netns::CLIENT_PORTS`: shardnet's client gets the
                // same range and TIME-WAIT reuse under the same rule as Linux's tcp_tw_reuse=1.
                v.extend([
                    "--target".into(),
                    format!("{}:{}", netns::SHARDNET_ECHO_IP, self.port),
                    "--tw-reuse".into(),
                    "--local-ports".into(),
                    format!("{}-{}", netns::CLIENT_PORTS.0, netns::CLIENT_PORTS.1),
                ]);
                v
            }
        };
        args.extend(scenario.loadgen_args());
        args.extend(["--duration".into(), format!("{secs}"), "--json".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let ns = (path != Path::MemoryWire).then_some(netns::NS_LOAD);
        // The memory wire's two runtimes pin themselves (client CPU 0, server CPU 1).
        let cpu = (!(path == Path::MemoryWire && stack == Stack::Shardnet)).then_some(0);
        let f = child::run(
            &mut command(ns, cpu, &self.loadgen, &args),
            Duration::from_secs_f64(secs + 40.0),
        )?;
        parse(scenario, &f)
    }

    /// Destroys the kernel's TIME_WAIT sockets towards or from the scenario's echo ports
    /// (`ss -K`, which needs CONFIG_INET_DIAG_DESTROY), in both namespaces of a veth path or on
    /// the host for the memory wire: a kernel measurement then starts without the TIME_WAIT of
    /// the runs before it, as every shardnet measurement does (its TIME-WAIT lives in its
    /// process). Without this the kernel's client-closed crr over several echo ports inherits
    /// up to `tcp_max_tw_buckets` entries from the earlier repetitions (a 60 s lifetime) and
    /// slows down with them (over 8 ports, four 4 s runs back to back in one namespace: 14.2 k,
    /// 10.1 k, 8.2 k, 7.8 k connections/s as TIME_WAIT grew 56 k, 94 k, 119 k, 131 k; one port
    /// holds about 32 k). On the host only entries of the matrix's own ports are touched.
    /// Returns what could not be cleared.
    pub fn clear_kernel_time_wait(&self, path: Path, scenario: &Scenario) -> Result<(), String> {
        let first = self.port;
        let last = scenario.ports(first).last().unwrap_or(first);
        let filter = format!(
            "( sport >= :{first} and sport <= :{last} ) or ( dport >= :{first} and dport <= :{last} )"
        );
        let namespaces: &[Option<&str>] = match path {
            Path::MemoryWire => &[None],
            _ => &[Some(netns::NS_LOAD), Some(netns::NS_ECHO)],
        };
        for ns in namespaces {
            let mut argv: Vec<&str> = Vec::new();
            if let Some(ns) = ns {
                argv.extend(["ip", "netns", "exec", ns]);
            }
            argv.extend(["ss", "-K", "-tn", "state", "time-wait", &filter]);
            child::run_ok(&argv).map_err(|e| format!("ss -K (TIME_WAIT left in place): {e}"))?;
        }
        Ok(())
    }

    /// One measurement: the echo server (if any), then the load, then the echo server stopped.
    /// A kernel measurement starts and ends without TIME_WAIT on the echo ports
    /// ([`Apps::clear_kernel_time_wait`]).
    pub fn measure(
        &self,
        path: Path,
        stack: Stack,
        scenario: &Scenario,
        secs: f64,
        extra: &[&str],
    ) -> Result<Measurement, String> {
        if stack == Stack::Kernel {
            if let Err(e) = self.clear_kernel_time_wait(path, scenario) {
                eprintln!("matrix: {e}");
            }
        }
        let echo = self.start_echo(path, stack, scenario, secs + 20.0)?;
        let r = self.run_loadgen(path, stack, scenario, secs, extra);
        if let Some(echo) = echo {
            echo.stop(Duration::from_secs(5));
        }
        // And ends without it: on the memory wire the kernel's TIME_WAIT is the host's (over
        // 8 echo ports a crr leaves up to tcp_max_tw_buckets = 131,072 entries for 60 s, which
        // slows every reader of /proc/net/tcp on the machine and its tests' timing).
        if stack == Stack::Kernel {
            if let Err(e) = self.clear_kernel_time_wait(path, scenario) {
                eprintln!("matrix: {e}");
            }
        }
        r
    }
}

/// The local ports of `ss -ltnH` lines (`LISTEN 0 4096 198.18.0.1:20000 0.0.0.0:*`).
fn listening_ports(ss: &str) -> BTreeSet<u16> {
    ss.lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|local| local.rsplit_once(':'))
        .filter_map(|(_, port)| port.parse().ok())
        .collect()
}

fn parse(scenario: &Scenario, f: &Finished) -> Result<Measurement, String> {
    if f.timed_out {
        return Err(format!(
            "loadgen overran its time limit and was killed: {}",
            f.stderr_tail(3)
        ));
    }
    Measurement::from_report(scenario, &f.stdout).map_err(|e| {
        format!(
            "loadgen exit status {:?}, {e}: {}",
            f.code,
            f.stderr_tail(3)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::scenario::{CRR_CLIENT_CLOSE, CRR_ECHO_PORTS, RR1};

    #[test]
    fn listening_ports_reads_the_local_column_of_ss() {
        let out = "LISTEN 0      4096      198.18.0.1:20000      0.0.0.0:*\n\
                   LISTEN 0      4096      198.18.0.1:20001      0.0.0.0:*\n\
                   LISTEN 0      4096           [::1]:20002         [::]:*\n\
                   garbage\n";
        assert_eq!(listening_ports(out), BTreeSet::from([20000, 20001, 20002]));
        assert!(listening_ports("").is_empty());
    }

    #[test]
    fn the_echo_listens_on_every_port_the_load_spreads_over() {
        let want: BTreeSet<u16> = CRR_CLIENT_CLOSE.ports(30000).collect();
        assert_eq!(want.len(), usize::from(CRR_ECHO_PORTS));
        assert_eq!(want.last(), Some(&(30000 + CRR_ECHO_PORTS - 1)));
        // Ready only once the last port listens too.
        let some: String = (30000..30000 + CRR_ECHO_PORTS - 1)
            .map(|p| format!("LISTEN 0 4096 127.0.0.1:{p} 0.0.0.0:*\n"))
            .collect();
        assert!(!want.is_subset(&listening_ports(&some)));
        let all = format!(
            "{some}LISTEN 0 4096 127.0.0.1:{} 0.0.0.0:*\n",
            30000 + CRR_ECHO_PORTS - 1
        );
        assert!(want.is_subset(&listening_ports(&all)));
        assert_eq!(RR1.ports(30000).collect::<Vec<_>>(), [30000]);
    }
}
