//! The test hosts of the real-path runs: two network namespaces joined by a veth pair, created
//! under the exclusive lock that every namespace test of the project takes, deleted on drop.
//!
//! - `snet-mxl`, the load generator's host: veth `snet-mxl0`, kernel 198.18.9.1/24, shardnet
//!   198.18.9.3 (AF_XDP or DPDK on the same device);
//! - `snet-mxs`, the echo server's host: veth `snet-mxs0`, kernel 198.18.9.2/24, shardnet
//!   198.18.9.4.
//!
//! One RX and one TX queue per end (native XDP on veth needs equal counts). The veth's
//! offloads stay at their defaults, so that the kernel rows get the kernel's usual veth path;
//! shardnet (AF_XDP, DPDK) sends complete frames and is not affected by them. Only addresses
//! of 198.18.0.0/15 (RFC 2544) are used.

use super::child::run_ok;
use std::os::fd::AsRawFd;

/// The load generator's namespace.
pub const NS_LOAD: &str = "snet-mxl";
/// The echo server's namespace.
pub const NS_ECHO: &str = "snet-mxs";
/// The load generator's veth end.
pub const DEV_LOAD: &str = "snet-mxl0";
/// The echo server's veth end.
pub const DEV_ECHO: &str = "snet-mxs0";
/// The kernel's address in the load generator's namespace.
pub const KERNEL_LOAD_IP: &str = "198.18.9.1";
/// The kernel's address in the echo server's namespace.
pub const KERNEL_ECHO_IP: &str = "198.18.9.2";
/// shardnet's address on the load generator's veth end.
pub const SHARDNET_LOAD_IP: &str = "198.18.9.3";
/// shardnet's address on the echo server's veth end.
pub const SHARDNET_ECHO_IP: &str = "198.18.9.4";
/// The load generator's ephemeral ports on the veth, for both stacks: the kernel's
/// `ip_local_port_range` in its namespace, shardnet's `--local-ports` (the range load generators
/// are usually given, rather than Linux's default 32768-60999).
pub const CLIENT_PORTS: (u16, u16) = (1024, 65535);
/// The lock every namespace test and script of the project takes.
pub const LOCK_PATH: &str = "/tmp/shardnet-af-xdp-interop.lock";

/// The exclusive namespace lock, held until dropped.
pub struct NsLock {
    _file: std::fs::File,
}

impl NsLock {
    /// Waits for the lock.
    pub fn take() -> Result<NsLock, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_PATH)
            .map_err(|e| format!("{LOCK_PATH}: {e}"))?;
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            return Err(format!(
                "flock {LOCK_PATH}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(NsLock { _file: file })
    }
}

/// Both namespaces and the veth pair; deleted when dropped.
pub struct Veth {
    /// `net.ipv4.tcp_tw_reuse` in the load generator's namespace.
    pub tw_reuse: u8,
}

/// One end of a [`veth_pair`]: its namespace, its device, and the kernel's address on it.
#[derive(Clone, Copy, Debug)]
pub struct End<'a> {
    /// The namespace (created by [`veth_pair`]).
    pub ns: &'a str,
    /// The veth device in it.
    pub dev: &'a str,
    /// The kernel's IPv4 address on the device (a /24 of 198.18.0.0/15).
    pub ip: &'a str,
}

/// Deletes `namespaces` (and with them their veth ends), ignoring those that do not exist.
pub fn delete(namespaces: &[&str]) {
    for ns in namespaces {
        let _ = run_ok(&["ip", "netns", "del", ns]);
    }
}

/// Two namespaces joined by a veth pair with one RX and one TX queue per end (native XDP on
/// veth needs equal counts), loopback up, IPv6 off, and the kernel's address on each end;
/// leftovers of an earlier run are deleted first. The caller holds the [`NsLock`] and deletes
/// the namespaces when done ([`delete`]). Shared by the matrix ([`Veth`]) and the forwarding
/// benchmarks (`crate::forward::namespaces`).
pub fn veth_pair(a: End<'_>, b: End<'_>) -> Result<(), String> {
    delete(&[a.ns, b.ns]);
    run_ok(&["ip", "netns", "add", a.ns])?;
    run_ok(&["ip", "netns", "add", b.ns])?;
    run_ok(&[
        "ip",
        "-n",
        a.ns,
        "link",
        "add",
        a.dev,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
        "type",
        "veth",
        "peer",
        "name",
        b.dev,
        "netns",
        b.ns,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ])?;
    for end in [a, b] {
        let End { ns, dev, ip } = end;
        run_ok(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        run_ok(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ])?;
        run_ok(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            dev,
        ])?;
        run_ok(&["ip", "-n", ns, "link", "set", dev, "up"])?;
    }
    Ok(())
}

impl Veth {
    /// Creates the hosts (deleting leftovers of an earlier run first) with `tcp_tw_reuse` set
    /// to `tw_reuse` in the load generator's namespace (never the host's). The caller holds
    /// the [`NsLock`].
    pub fn up(_lock: &NsLock, tw_reuse: u8) -> Result<Veth, String> {
        let veth = Veth { tw_reuse };
        veth_pair(
            End {
                ns: NS_LOAD,
                dev: DEV_LOAD,
                ip: KERNEL_LOAD_IP,
            },
            End {
                ns: NS_ECHO,
                dev: DEV_ECHO,
                ip: KERNEL_ECHO_IP,
            },
        )?;
        run_ok(&[
            "ip",
            "netns",
            "exec",
            NS_LOAD,
            "sysctl",
            "-qw",
            &format!("net.ipv4.tcp_tw_reuse={tw_reuse}"),
        ])?;
        run_ok(&[
            "ip",
            "netns",
            "exec",
            NS_LOAD,
            "sysctl",
            "-qw",
            &format!(
                "net.ipv4.ip_local_port_range={} {}",
                CLIENT_PORTS.0, CLIENT_PORTS.1
            ),
        ])?;
        Ok(veth)
    }

    /// The load generator namespace's ephemeral port range.
    pub fn port_range(&self) -> String {
        run_ok(&[
            "ip",
            "netns",
            "exec",
            NS_LOAD,
            "sysctl",
            "-n",
            "net.ipv4.ip_local_port_range",
        ])
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join("-"))
        .unwrap_or_else(|_| "unknown".into())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        delete(&[NS_LOAD, NS_ECHO]);
    }
}
