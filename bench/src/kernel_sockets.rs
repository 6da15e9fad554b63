//! The Linux kernel's memory per idle TCP connection, measured in the same run as shardnet's
//! so the two can be reported side by side.
//!
//! Opens `n` connections over loopback (each exchanging one 64-byte request and its echo, like
//! the shardnet measurement), lets them idle in ESTABLISHED and reads how much the kernel's
//! slab caches grew (`Slab:` of `/proc/meminfo`: the `tcp_sock`, socket inode, dentry and file
//! objects of both ends). Other activity on the machine moves that figure too, so it is an
//! estimate; the socket count is bounded by the open-file limit (two descriptors per
//! connection in this process).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

/// What the kernel measurement found.
#[derive(Clone, Copy, Debug)]
pub struct KernelMemory {
    /// Connections opened (both ends live in this process).
    pub connections: usize,
    /// Growth of the kernel's slab caches while they were open, in bytes.
    pub slab_bytes: u64,
}

impl KernelMemory {
    /// Slab bytes per connection *side* (one socket), comparable to shardnet's per-side figure.
    pub fn per_side(&self) -> f64 {
        self.slab_bytes as f64 / (2 * self.connections) as f64
    }
}

/// `Slab:` of `/proc/meminfo`, in bytes.
pub fn slab_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("Slab:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Raises the soft open-file limit to the hard limit; returns the soft limit in force.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit; lowering nothing, raising the soft limit to the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        lim.rlim_max
    } else {
        lim.rlim_cur
    }
}

/// Opens up to `n` loopback connections (fewer if the open-file limit is lower), measures the
/// slab growth, then closes them all. Errors are the I/O errors of setting them up.
pub fn measure(n: usize) -> std::io::Result<KernelMemory> {
    let limit = raise_nofile_limit();
    let n = n.min((limit.saturating_sub(64) / 2) as usize);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr: SocketAddr = listener.local_addr()?;
    let before = slab_bytes().unwrap_or(0);
    let mut conns = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    for i in 0..n {
        let mut c = TcpStream::connect(addr)?;
        let (mut s, _) = listener.accept()?;
        c.set_nodelay(true)?;
        s.set_nodelay(true)?;
        let req = [i as u8; 64];
        c.write_all(&req)?;
        s.read_exact(&mut buf)?;
        s.write_all(&buf)?;
        c.read_exact(&mut buf)?;
        if buf != req {
            return Err(std::io::Error::other("echo mismatch"));
        }
        conns.push((c, s));
    }
    // Let delayed ACKs go out so that no buffer is held.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = slab_bytes().unwrap_or(0);
    drop(conns);
    Ok(KernelMemory {
        connections: n,
        slab_bytes: after.saturating_sub(before),
    })
}
