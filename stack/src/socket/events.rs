//! Readiness events, like `epoll` in edge-triggered mode (`EPOLLET`).
//!
//! # The rule
//!
//! The stack queues an [`Event`] for a socket when something the network or a timer did
//! *raises* one of its readiness bits, and for every arrival of new bytes to read:
//!
//! - [`Readiness::READABLE`]: new data arrived (each time), or the peer's FIN or an error made
//!   `recv` stop blocking;
//! - [`Readiness::WRITABLE`]: the connection became writable: the handshake completed, or
//!   acknowledgments freed room in a send buffer that was full;
//! - [`Readiness::HANGUP`]: the peer closed its side (FIN: Linux `EPOLLRDHUP`) or the
//!   connection ended;
//! - [`Readiness::ERROR`]: the connection failed (`ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`);
//! - [`Readiness::ACCEPT`]: a listener's accept queue got a new connection (each time).
//!
//! A socket is in the queue at most once: later edges before the application polls are merged
//! into its entry. A newly accepted connection reports its current readiness once (data may have
//! arrived before `accept`), as `epoll_ctl(EPOLL_CTL_ADD)` does on Linux.
//!
//! Edge-triggered was chosen over level-triggered because it needs no per-poll scan: the stack
//! only ever looks at the sockets a segment or a timer touched, so an application with
//! thousands of idle sockets pays nothing for them. The price is the usual `EPOLLET` contract:
//! after an event, read (or write) until `EAGAIN`, or remember that the socket is still ready.
//! [`Readiness`] of any socket can also be asked for directly (level view) when needed.
//!
//! The queue is a `Vec` reserved for the shard's connection count; an application that polls
//! regularly never makes it grow.

use super::handle::SocketHandle;
use crate::tcp::{State, Tcb};
use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// A set of readiness bits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Readiness(u8);

impl Readiness {
    /// Nothing.
    pub const EMPTY: Readiness = Readiness(0);
    /// `recv` will not block (data, end of stream or an error): `EPOLLIN`.
    pub const READABLE: Readiness = Readiness(1);
    /// `send` will not block: `EPOLLOUT`.
    pub const WRITABLE: Readiness = Readiness(2);
    /// The peer closed its side or the connection ended: `EPOLLRDHUP` / `EPOLLHUP`.
    pub const HANGUP: Readiness = Readiness(4);
    /// The connection failed; `socket_error` says why: `EPOLLERR`.
    pub const ERROR: Readiness = Readiness(8);
    /// A listener has a connection to accept (`EPOLLIN` on a listening socket).
    pub const ACCEPT: Readiness = Readiness(16);

    /// True if every bit of `other` is set.
    pub const fn contains(self, other: Readiness) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 | rhs.0)
    }
}

impl BitOrAssign for Readiness {
    fn bitor_assign(&mut self, rhs: Readiness) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Readiness {
    type Output = Readiness;
    fn bitand(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 & rhs.0)
    }
}

impl Not for Readiness {
    type Output = Readiness;
    fn not(self) -> Readiness {
        Readiness(!self.0 & 0x1f)
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Readiness::READABLE, "READABLE"),
            (Readiness::WRITABLE, "WRITABLE"),
            (Readiness::HANGUP, "HANGUP"),
            (Readiness::ERROR, "ERROR"),
            (Readiness::ACCEPT, "ACCEPT"),
        ];
        let mut first = true;
        for (bit, name) in names {
            if self.contains(bit) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("EMPTY")?;
        }
        Ok(())
    }
}

/// One entry of the event queue: a socket and the bits that rose since it was last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The socket.
    pub socket: SocketHandle,
    /// What became true.
    pub readiness: Readiness,
}

/// The level readiness of a connection, as `poll` would report it now.
pub fn tcp_readiness(tcb: &Tcb) -> Readiness {
    let mut r = Readiness::EMPTY;
    if tcb.error().is_some() {
        // Linux tcp_poll: an error wakes readers and writers, and a reset connection is shut
        // down both ways (EPOLLIN | EPOLLRDHUP | EPOLLHUP).
        return Readiness::ERROR | Readiness::READABLE | Readiness::WRITABLE | Readiness::HANGUP;
    }
    let state = tcb.state();
    let peer_closed = matches!(
        state,
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait | State::Closed
    );
    if tcb.recv_available() > 0 || peer_closed {
        r |= Readiness::READABLE;
    }
    if peer_closed {
        r |= Readiness::HANGUP;
    }
    // Linux tcp_poll: a Fast Open child in SYN-RECEIVED is writable too.
    let open = matches!(state, State::Established | State::CloseWait)
        || (state == State::SynReceived && tcb.is_passive_fast_open());
    if open && !tcb.is_write_shutdown() && tcb.send_capacity() > 0 {
        r |= Readiness::WRITABLE;
    }
    r
}

/// What a connection looked like before a segment or timer touched it, to find the edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    readiness: Readiness,
    readable: usize,
}

impl Seen {
    /// Takes the picture.
    pub(crate) fn of(tcb: &Tcb) -> Seen {
        Seen {
            readiness: tcp_readiness(tcb),
            readable: tcb.recv_available(),
        }
    }

    /// The edges between this picture and `tcb` now: bits that rose, plus READABLE if bytes
    /// arrived.
    pub(crate) fn edges(self, tcb: &Tcb) -> Readiness {
        let now = Seen::of(tcb);
        let mut r = now.readiness & !self.readiness;
        if now.readable > self.readable {
            r |= Readiness::READABLE;
        }
        r
    }
}

/// The queue of pending events. Each source keeps the position of its entry (if queued) so
/// that later edges merge into it.
#[derive(Debug, Default)]
pub struct EventQueue {
    events: Vec<Event>,
}

impl EventQueue {
    /// An empty queue with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue {
            events: Vec::with_capacity(capacity),
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if no event waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Adds `readiness` for `socket`: merged into the entry at `*position` if that entry is
    /// this socket's, else a new entry whose position is stored in `*position`.
    pub(crate) fn raise(
        &mut self,
        position: &mut Option<u32>,
        socket: SocketHandle,
        readiness: Readiness,
    ) {
        if readiness.is_empty() {
            return;
        }
        if let Some(p) = *position
            && let Some(e) = self.events.get_mut(p as usize)
            && e.socket == socket
        {
            e.readiness |= readiness;
            return;
        }
        *position = Some(self.events.len() as u32);
        self.events.push(Event { socket, readiness });
    }

    /// Adds an event that is never merged (UDP: one per empty-to-non-empty edge).
    pub(crate) fn push(&mut self, socket: SocketHandle, readiness: Readiness) {
        if !readiness.is_empty() {
            self.events.push(Event { socket, readiness });
        }
    }

    /// Takes every event, oldest first, calling `f` on each.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(Event)) {
        for e in self.events.drain(..) {
            f(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::tcp::ListenHandle;

    #[test]
    fn readiness_bits_combine_and_print() {
        let r = Readiness::READABLE | Readiness::HANGUP;
        assert!(r.contains(Readiness::READABLE));
        assert!(!r.contains(Readiness::WRITABLE));
        assert_eq!(format!("{r:?}"), "READABLE|HANGUP");
        assert_eq!(format!("{:?}", Readiness::EMPTY), "EMPTY");
        assert_eq!(!Readiness::EMPTY & Readiness::ACCEPT, Readiness::ACCEPT);
    }

    #[test]
    fn raise_merges_into_the_sockets_own_entry_only() {
        let mut q = EventQueue::with_capacity(4);
        let a = SocketHandle::Listener(ListenHandle::for_tests(1));
        let b = SocketHandle::Listener(ListenHandle::for_tests(2));
        let (mut pa, mut pb) = (None, None);
        q.raise(&mut pa, a, Readiness::READABLE);
        q.raise(&mut pb, b, Readiness::ACCEPT);
        q.raise(&mut pa, a, Readiness::HANGUP);
        q.raise(&mut pa, a, Readiness::EMPTY);
        assert_eq!(q.len(), 2);
        // A stale position (pointing at another socket's entry) makes a new entry.
        let mut stale = Some(1);
        q.raise(&mut stale, a, Readiness::ERROR);
        assert_eq!(stale, Some(2));
        let mut got = Vec::new();
        q.drain(|e| got.push(e));
        assert_eq!(
            got,
            vec![
                Event {
                    socket: a,
                    readiness: Readiness::READABLE | Readiness::HANGUP
                },
                Event {
                    socket: b,
                    readiness: Readiness::ACCEPT
                },
                Event {
                    socket: a,
                    readiness: Readiness::ERROR
                },
            ]
        );
        assert!(q.is_empty());
    }
}
