//! One handle type for every kind of socket: TCP listeners, TCP connections and UDP sockets.

use crate::shard::tcp::{ListenHandle, TcpHandle};
use crate::udp::UdpHandle;

/// A socket of one shard, as the application holds it (the Berkeley file descriptor).
///
/// Handles are plain copyable values (index + generation): a handle of a closed socket whose slot
/// was reused names nothing, and every call with it fails with `EBADF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketHandle {
    /// A listening TCP socket (`listen`).
    Listener(ListenHandle),
    /// A TCP connection (`connect` or `accept`).
    Tcp(TcpHandle),
    /// A UDP socket.
    Udp(UdpHandle),
}

impl From<ListenHandle> for SocketHandle {
    fn from(h: ListenHandle) -> Self {
        SocketHandle::Listener(h)
    }
}

impl From<TcpHandle> for SocketHandle {
    fn from(h: TcpHandle) -> Self {
        SocketHandle::Tcp(h)
    }
}

impl From<UdpHandle> for SocketHandle {
    fn from(h: UdpHandle) -> Self {
        SocketHandle::Udp(h)
    }
}
