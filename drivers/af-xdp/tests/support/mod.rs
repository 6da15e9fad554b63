//! Test hosts shared by the AF_XDP tests against Linux: two network namespaces joined by a
//! veth pair (one queue each way, so native XDP attaches), the kernel's end addressed and with
//! its offloads off, shardnet's end without a kernel address. Every test binary names its own
//! namespaces; a file lock serializes binaries that run at once, a mutex the tests of one.
//!
//! Both drivers' kernel-interop tests include this directory (the DPDK tests by `#[path]`):
//! the Linux side ([`linux_peer`]), the stream both sides send ([`pattern`]), and shardnet's
//! side: how a shard is run ([`shard`]), its servers ([`servers`]) and its client
//! ([`client`]). Each binary uses a part of them, hence the `dead_code` allowances.

#[allow(dead_code)]
pub mod client;
#[allow(dead_code)]
pub mod linux_peer;
#[allow(dead_code)]
pub mod pattern;
#[allow(dead_code)]
pub mod servers;
#[allow(dead_code)]
pub mod shard;

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

/// Runs `f` on a thread of its own inside network namespace `ns` and returns what it returned
/// (a panic in `f` is the caller's). What `f` opens there (sockets, XDP programs, DPDK devices
/// found by interface name) belongs to `ns`, and threads it spawns start in `ns`; the caller's
/// namespace is untouched.
pub fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file =
                    std::fs::File::open(&path).unwrap_or_else(|e| panic!("namespace {path}: {e}"));
                // SAFETY: setns on this thread only, with a valid namespace fd; the thread ends
                // after `f`.
                let r = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET)
                };
                assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
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

/// The locks that let one namespace test run at a time: `serial` within the binary, and the
/// exclusive flock on `/tmp/shardnet-af-xdp-interop.lock` across processes (every test or
/// script that creates namespaces takes it). Released when dropped.
pub struct NamespaceLock {
    _lock: std::fs::File,
    _serial: MutexGuard<'static, ()>,
}

impl NamespaceLock {
    /// Waits for both locks.
    pub fn take(serial: &'static Mutex<()>) -> NamespaceLock {
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
        NamespaceLock {
            _lock: lock,
            _serial: serial,
        }
    }
}

/// The test hosts, up; dropping deletes the namespaces and then releases the locks.
pub struct TestNet {
    names: Names,
    _locks: NamespaceLock,
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
        let locks = NamespaceLock::take(serial);
        down(names);
        let net = TestNet {
            names,
            _locks: locks,
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
