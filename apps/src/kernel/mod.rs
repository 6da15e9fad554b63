//! The kernel-socket mode of `echo` and `loadgen`: the baseline that shardnet is compared with.
//!
//! One epoll loop (mio) per thread, non-blocking sockets, and the same tuning knobs a careful
//! user would set: SO_REUSEPORT listeners (one per thread, so the kernel spreads connections
//! without a shared accept queue), TCP_NODELAY, optional TCP_QUICKACK, TCP_FASTOPEN,
//! TCP_DEFER_ACCEPT and SO_LINGER 0, and `--busy-poll` to spin on epoll with a zero timeout.

pub mod echo;
pub mod loadgen;

use socket2::Socket;
use std::io;
use std::os::fd::AsRawFd;

/// Sets an integer TCP-level socket option that socket2 does not expose.
fn set_tcp_int<S: AsRawFd>(socket: &S, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the fd is open while `socket` is borrowed; the option value points to a live
    // c_int and the length passed is exactly its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TCP_FASTOPEN on a listener: the queue length of pending Fast Open requests.
pub fn set_fastopen_listener(socket: &Socket, qlen: u32) -> io::Result<()> {
    set_tcp_int(
        socket,
        libc::TCP_FASTOPEN,
        qlen.min(i32::MAX as u32) as libc::c_int,
    )
}

/// TCP_FASTOPEN_CONNECT on a client socket (Linux 4.11): `connect` returns at once and the
/// first `write` goes out in the SYN when a cookie is cached.
pub fn set_fastopen_connect(socket: &Socket) -> io::Result<()> {
    set_tcp_int(socket, libc::TCP_FASTOPEN_CONNECT, 1)
}

/// TCP_DEFER_ACCEPT: wake `accept` only when data arrived (or after about `secs` seconds).
pub fn set_defer_accept(socket: &Socket, secs: u32) -> io::Result<()> {
    set_tcp_int(
        socket,
        libc::TCP_DEFER_ACCEPT,
        secs.min(i32::MAX as u32) as libc::c_int,
    )
}

/// IP_LOCAL_PORT_RANGE (Linux 6.3, `include/uapi/linux/in.h`; not in the libc crate yet).
const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

/// IP_LOCAL_PORT_RANGE on a client socket: its ephemeral port comes from `lo..=hi`, within the
/// host's `ip_local_port_range` (Linux 6.3; the kernel takes the intersection of the two).
pub fn set_local_port_range(socket: &Socket, lo: u16, hi: u16) -> io::Result<()> {
    let value: u32 = (u32::from(hi) << 16) | u32::from(lo);
    // SAFETY: the fd is open while `socket` is borrowed; the option value points to a live u32
    // and the length passed is exactly its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_LOCAL_PORT_RANGE,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TCP_QUICKACK (not sticky on Linux: the kernel may fall back to delayed ACKs, so apps set it
/// after each read).
pub fn set_quickack<S: AsRawFd>(socket: &S) -> io::Result<()> {
    set_tcp_int(socket, libc::TCP_QUICKACK, 1)
}

/// `net.ipv4.tcp_fastopen` (bit 0: client allowed, bit 1: server allowed).
pub fn fastopen_sysctl() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Explains whether the sysctl lets this side use Fast Open; `None` if it does.
pub fn fastopen_refusal(server: bool) -> Option<String> {
    let (bit, side) = if server { (2, "server") } else { (1, "client") };
    match fastopen_sysctl() {
        Some(v) if v & bit != 0 => None,
        Some(v) => Some(format!(
            "net.ipv4.tcp_fastopen = {v} does not enable {side} Fast Open (needs bit {bit}; 3 enables both): \
             connections fall back to a regular 3-way handshake. Enable with: sysctl -w net.ipv4.tcp_fastopen=3"
        )),
        None => Some("cannot read net.ipv4.tcp_fastopen: Fast Open state unknown".to_string()),
    }
}

/// A `TcpExt` counter of `/proc/net/netstat` (e.g. `TCPFastOpenActive`).
pub fn tcpext_counter(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        if let (Some(n), Some(v)) = (
            names.strip_prefix("TcpExt:"),
            values.strip_prefix("TcpExt:"),
        ) {
            return n
                .split_whitespace()
                .zip(v.split_whitespace())
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse().ok());
        }
    }
    None
}

/// Installs SIGINT/SIGTERM handlers that set the returned flag.
pub fn stop_flag() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, String> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&flag))
            .map_err(|e| format!("cannot install a handler for signal {sig}: {e}"))?;
    }
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_apply_to_real_sockets() {
        let s = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_defer_accept(&s, 1).unwrap();
        set_quickack(&s).unwrap();
        set_fastopen_connect(&s).unwrap();
        // Reading the sysctl works on any Linux; the counter exists since Linux 3.7.
        assert!(fastopen_sysctl().is_some());
        assert!(tcpext_counter("TCPFastOpenActive").is_some());
        assert!(tcpext_counter("NoSuchCounter").is_none());
    }
}
