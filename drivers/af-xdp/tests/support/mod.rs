//! Test hosts shared by the AF_XDP tests against Linux: two network namespaces joined by a
//! veth pair (one queue each way, so native XDP attaches), the kernel's end addressed and with
//! its offloads off, shardnet's end without a kernel address. Every test binary names its own
//! namespaces; a file lock serializes binaries that run at once, a mutex the tests of one.

use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

/// True when running as root (AF_XDP and namespaces need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `args[0]` with the rest as arguments and returns what it did.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

/// Like [`run`], failing the test unless the command succeeded; returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names and the kernel's address of one binary's test hosts.
#[derive(Clone, Copy, Debug)]
pub struct Names {
    /// The kernel's namespace.
    pub kernel_ns: &'static str,
    /// shardnet's namespace.
    pub shardnet_ns: &'static str,
    /// The kernel's end of the veth pair.
    pub kernel_dev: &'static str,
    /// shardnet's end of the veth pair.
    pub shardnet_dev: &'static str,
    /// The kernel's address with its prefix (within 198.18.0.0/15).
    pub kernel_cidr: &'static str,
}

/// The test hosts, up; dropping deletes the namespaces and releases the locks.
pub struct TestNet {
    names: Names,
    _lock: std::fs::File,
    _serial: MutexGuard<'static, ()>,
}

fn down(names: Names) {
    for ns in [names.kernel_ns, names.shardnet_ns] {
        let _ = Command::new("timeout")
            .args(["30", "ip", "netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
}

impl TestNet {
    /// Takes the locks, deletes leftovers of an earlier run, and creates the hosts; then runs
    /// each `sysctl` setting (`name=value`) in the kernel's namespace.
    pub fn up(serial: &'static Mutex<()>, names: Names, kernel_sysctls: &[&str]) -> TestNet {
        let serial = serial.lock().unwrap_or_else(|e| e.into_inner());
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/shardnet-af-xdp-interop.lock")
            .expect("open the lock file");
        // SAFETY: flock on a valid descriptor we own; released when the file is closed.
        let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
        down(names);
        let net = TestNet {
            names,
            _lock: lock,
            _serial: serial,
        };
        let Names {
            kernel_ns: nk,
            shardnet_ns: ns_s,
            kernel_dev: dk,
            shardnet_dev: ds,
            kernel_cidr,
        } = names;
        for ns in [nk, ns_s] {
            run_ok(&["timeout", "30", "ip", "netns", "add", ns]);
        }
        run_ok(&[
            "timeout",
            "30",
            "ip",
            "-n",
            nk,
            "link",
            "add",
            dk,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            ds,
            "netns",
            ns_s,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
        ]);
        for ns in [nk, ns_s] {
            run_ok(&["timeout", "30", "ip", "-n", ns, "link", "set", "lo", "up"]);
            run_ok(&[
                "timeout",
                "30",
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]);
        }
        for setting in kernel_sysctls {
            run_ok(&[
                "timeout", "30", "ip", "netns", "exec", nk, "sysctl", "-qw", setting,
            ]);
        }
        run_ok(&[
            "timeout",
            "30",
            "ip",
            "-n",
            nk,
            "addr",
            "add",
            kernel_cidr,
            "dev",
            dk,
        ]);
        for (ns, dev) in [(nk, dk), (ns_s, ds)] {
            run_ok(&["timeout", "30", "ip", "-n", ns, "link", "set", dev, "up"]);
        }
        // The kernel must send complete checksums and MTU-sized frames (AF_XDP has no offload
        // metadata).
        run_ok(&[
            "timeout", "30", "ip", "netns", "exec", nk, "ethtool", "-K", dk, "tx", "off", "tso",
            "off", "gso", "off",
        ]);
        let _ = run(&[
            "timeout", "30", "ip", "netns", "exec", ns_s, "ethtool", "-K", ds, "tx", "off", "tso",
            "off", "gso", "off", "gro", "off",
        ]);
        net
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        down(self.names);
    }
}
