//! The app-facing socket API: Berkeley semantics on one shard.
//!
//! An application step on a shard calls [`Shard::sockets`](crate::shard::Shard::sockets) with
//! the current time and gets a [`Sockets`] view through which it opens, uses and closes
//! sockets. Nothing here reads a clock, blocks or spawns a thread: every call returns at once,
//! `EAGAIN` (`WouldBlock`) meaning "try again after the shard has run".
//!
//! - Handles: one [`SocketHandle`] type for TCP listeners, TCP connections and UDP sockets
//!   ([`handle`]).
//! - Calls: `listen`, `accept`, `connect`, `send`/`recv` and their zero-copy forms
//!   `send_with`/`recv_with`, `shutdown`, `close`, `set_option`/`options`, UDP `bind_udp`,
//!   `send_to`, `recv_from` ([`sockets`]).
//! - Errors: one small enum per call, each variant named after its errno ([`error`]).
//! - Options: [`SocketOptions`] for `listen`/`connect`, [`SockOpt`] on live sockets
//!   ([`options`]).
//! - Readiness: an edge-triggered event queue, like `epoll` with `EPOLLET` ([`events`]).
//! - Introspection: `ss -tan`-like listing and a state histogram ([`introspect`]).

pub mod error;
pub mod events;
pub mod handle;
pub mod introspect;
pub mod options;
pub mod sockets;

pub use error::{
    AcceptError, BindError, CloseError, ConnectError, ListenError, RecvError, SendError,
    SetOptionError, ShutdownError, SocketError,
};
pub use events::{Event, EventQueue, Readiness};
pub use handle::SocketHandle;
pub use introspect::{ConnectionInfo, StateHistogram};
pub use options::{SockOpt, SocketOptions};
pub use sockets::{Shutdown, Sockets};
