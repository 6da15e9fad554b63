//! One small error enum per socket call, each variant named after the errno a Linux program
//! would see.

use crate::errno::errno_enum;
use crate::tcp::TcpError;

errno_enum!(
    /// Why `listen` failed.
    ListenError {
        /// Another listener has the port, or connections on it remain and neither
        /// `SO_REUSEADDR` nor `SO_REUSEPORT` is set.
        AddrInUse => "EADDRINUSE",
        /// The address is neither one of the interface's (primary or secondary) nor 0.0.0.0.
        AddrNotAvailable => "EADDRNOTAVAIL",
        /// A zero backlog, port 0, or an invalid option value.
        Invalid => "EINVAL",
        /// An option that is not supported yet (`TCP_FASTOPEN`, `TCP_DEFER_ACCEPT`).
        NotSupported => "ENOPROTOOPT",
    }
);

errno_enum!(
    /// Why `accept` returned no connection.
    AcceptError {
        /// The accept queue is empty.
        WouldBlock => "EAGAIN",
        /// The handle names no open socket.
        BadHandle => "EBADF",
        /// The socket is not a listener.
        NotListening => "EINVAL",
    }
);

errno_enum!(
    /// Why `connect` failed at once. Failures of the handshake come later, as
    /// [`SocketError`] (`socket_error`, and on `send`/`recv`): `ECONNREFUSED`, `ETIMEDOUT`.
    ConnectError {
        /// No ephemeral port is free for this destination, the 4-tuple of a bound port is in
        /// use, or the bound address is not the interface's.
        AddrNotAvailable => "EADDRNOTAVAIL",
        /// The bound port is taken (`bind`'s `EADDRINUSE`).
        AddrInUse => "EADDRINUSE",
        /// No route to the destination.
        NetUnreachable => "ENETUNREACH",
        /// The connection table is full.
        NoBuffers => "ENOBUFS",
        /// An invalid option value.
        Invalid => "EINVAL",
        /// An option that is not supported yet (`TCP_FASTOPEN`).
        NotSupported => "ENOPROTOOPT",
    }
);

errno_enum!(
    /// Why a connection failed (`SO_ERROR`).
    SocketError {
        /// RST in answer to our SYN (RFC 9293 3.10.7.3).
        ConnectionRefused => "ECONNREFUSED",
        /// RST on an open connection (RFC 9293 3.10.7.4).
        ConnectionReset => "ECONNRESET",
        /// Retransmissions, SYN retries or keepalive probes ran out.
        TimedOut => "ETIMEDOUT",
    }
);

impl From<TcpError> for SocketError {
    fn from(e: TcpError) -> Self {
        match e {
            TcpError::ConnectionRefused => SocketError::ConnectionRefused,
            TcpError::ConnectionReset => SocketError::ConnectionReset,
            TcpError::TimedOut => SocketError::TimedOut,
        }
    }
}

errno_enum!(
    /// Why `send` failed.
    SendError {
        /// The send buffer (or UDP send queue) is full, or the handshake is not done yet.
        WouldBlock => "EAGAIN",
        /// Writing was shut down (`shutdown(Write)`, or a peer reset after it was reported).
        BrokenPipe => "EPIPE",
        /// Not connected (a UDP socket without a peer: see `DestinationRequired`).
        NotConnected => "ENOTCONN",
        /// The peer refused the connection.
        ConnectionRefused => "ECONNREFUSED",
        /// The peer reset the connection.
        ConnectionReset => "ECONNRESET",
        /// The connection timed out.
        TimedOut => "ETIMEDOUT",
        /// The handle names no open socket, or a listener.
        BadHandle => "EBADF",
        /// A UDP socket without a peer and no destination given.
        DestinationRequired => "EDESTADDRREQ",
        /// A UDP datagram larger than the path allows.
        MessageTooLong => "EMSGSIZE",
        /// No route to the destination.
        NetUnreachable => "ENETUNREACH",
        /// A UDP destination port 0.
        Invalid => "EINVAL",
        /// A UDP broadcast without `SO_BROADCAST`.
        PermissionDenied => "EACCES",
    }
);

errno_enum!(
    /// Why `recv` returned no data. End of stream is not an error: it is `Ok(0)`.
    RecvError {
        /// Nothing to read yet.
        WouldBlock => "EAGAIN",
        /// Never connected.
        NotConnected => "ENOTCONN",
        /// The peer refused the connection.
        ConnectionRefused => "ECONNREFUSED",
        /// The peer reset the connection.
        ConnectionReset => "ECONNRESET",
        /// The connection timed out.
        TimedOut => "ETIMEDOUT",
        /// The handle names no open socket, or a listener.
        BadHandle => "EBADF",
    }
);

errno_enum!(
    /// Why `shutdown` failed.
    ShutdownError {
        /// The connection is not established (or already gone).
        NotConnected => "ENOTCONN",
        /// The handle names no open socket.
        BadHandle => "EBADF",
    }
);

errno_enum!(
    /// Why `close` failed.
    CloseError {
        /// The handle names no open socket.
        BadHandle => "EBADF",
    }
);

errno_enum!(
    /// Why `setsockopt` (or `getsockopt`) failed.
    SetOptionError {
        /// The handle names no open socket.
        BadHandle => "EBADF",
        /// An invalid value (`TCP_MAXSEG` below 88, ...).
        Invalid => "EINVAL",
        /// Not supported yet (`TCP_FASTOPEN`, `TCP_DEFER_ACCEPT`), or not an option of this
        /// kind of socket (TCP options on UDP).
        NotSupported => "ENOPROTOOPT",
        /// The option is fixed once connected (`SO_RCVBUF`, `SO_SNDBUF`, `TCP_MAXSEG` on a
        /// connection for now): set it on the listener or before `connect`.
        AlreadyConnected => "EISCONN",
    }
);

errno_enum!(
    /// Why a UDP socket could not be bound.
    BindError {
        /// Another socket has the port.
        AddrInUse => "EADDRINUSE",
        /// The address is not the interface's (nor 0.0.0.0).
        AddrNotAvailable => "EADDRNOTAVAIL",
        /// The socket table is full.
        TooManySockets => "EMFILE",
        /// No ephemeral port is free.
        NoEphemeralPort => "EAGAIN",
        /// The socket is already bound.
        AlreadyBound => "EINVAL",
        /// The handle names no open UDP socket.
        BadHandle => "EBADF",
    }
);
