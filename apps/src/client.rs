//! The load generator's per-connection client, sans-IO.
//!
//! A [`ClientConn`] knows what to send next (whole requests, queued in an output buffer that the
//! driver writes to its socket), what it is waiting for (a FIFO of requests in flight), and checks
//! every received byte against it: each response must be the echo of the oldest request in
//! flight, same id, length and checksum. It never touches a socket or a clock: the driver — kernel
//! sockets today, shardnet sockets later — moves bytes and passes the time in as nanoseconds.
//!
//! [`Pacer`] produces the intended send times of an open-loop load (`--rate`), from which latency
//! is measured so that a stalled server cannot hide its stall (coordinated omission).

use crate::protocol::{self, DecodeError, Decoder, Header};
use crate::report::{ErrorKind, Stats};
use std::collections::VecDeque;

/// What a connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Payload bytes per request (the frame adds [`protocol::HEADER_LEN`]).
    pub size: u32,
    /// Requests in flight at once (1 = strict request/response; more = pipelining).
    pub depth: usize,
    /// Requests this connection carries before it is done (`Some(1)` for connect/request/response/close).
    pub per_conn: Option<u64>,
    /// What each request asks of the server.
    pub exchange: Exchange,
}

/// What a request asks of the server (see [`protocol::Kind`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exchange {
    /// Echo `size` bytes back (both directions).
    #[default]
    Echo,
    /// Upload: the server consumes `size` bytes and acknowledges count and checksum.
    Sink,
    /// Download: the server sends `size` bytes.
    Source,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u64,
    checksum: u32,
    intended_ns: u64,
}

/// The connection broke the protocol: its byte stream cannot be trusted any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnFault {
    /// The bytes are not frames, or a frame's payload fails its checksum.
    Garbage(DecodeError),
    /// A response arrived while no request was in flight.
    Unsolicited {
        /// The id the response carried.
        id: u64,
    },
}

/// One connection's client state (see the module docs).
#[derive(Debug)]
pub struct ClientConn {
    cfg: ConnConfig,
    decoder: Decoder,
    in_flight: VecDeque<InFlight>,
    out: Vec<u8>,
    out_pos: usize,
    issued: u64,
}

impl ClientConn {
    /// A fresh connection's client.
    pub fn new(cfg: ConnConfig) -> Self {
        ClientConn {
            cfg,
            decoder: Decoder::new(),
            in_flight: VecDeque::with_capacity(cfg.depth.max(1)),
            out: Vec::new(),
            out_pos: 0,
            issued: 0,
        }
    }

    /// Makes this a fresh connection's client with `cfg`, as [`ClientConn::new`] would, keeping
    /// the buffers it has allocated (a crr load starts a connection per transaction: this
    /// keeps the allocator off that path).
    pub fn reset(&mut self, cfg: ConnConfig) {
        self.cfg = cfg;
        self.decoder = Decoder::new();
        self.in_flight.clear();
        self.out.clear();
        self.out_pos = 0;
        self.issued = 0;
    }

    /// Whether another request may be issued now (depth and per-connection quota allow it).
    pub fn can_issue(&self) -> bool {
        self.in_flight.len() < self.cfg.depth.max(1)
            && self.cfg.per_conn.is_none_or(|n| self.issued < n)
    }

    /// Queues request `id`, intended to be sent at `intended_ns` (latency counts from there).
    pub fn issue(&mut self, id: u64, intended_ns: u64, stats: &mut Stats) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        let checksum = match self.cfg.exchange {
            Exchange::Echo => protocol::encode_request(id, self.cfg.size, &mut self.out).checksum,
            Exchange::Sink => protocol::encode_sink(id, self.cfg.size, &mut self.out).checksum,
            Exchange::Source => {
                protocol::encode_source(id, self.cfg.size, &mut self.out);
                protocol::payload_checksum(id, self.cfg.size)
            }
        };
        self.in_flight.push_back(InFlight {
            id,
            checksum,
            intended_ns,
        });
        self.issued += 1;
        stats.sent += 1;
    }

    /// Bytes waiting to be written to the socket.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// The socket took `n` bytes of [`output`](Self::output).
    pub fn advance_output(&mut self, n: usize, stats: &mut Stats) {
        let n = n.min(self.out.len() - self.out_pos);
        self.out_pos += n;
        stats.bytes_tx += n as u64;
    }

    /// Consumes received bytes; verifies and records every response completed by them.
    ///
    /// A response that is not the echo of the oldest request in flight (a stale, reordered or
    /// foreign response) is counted as [`ErrorKind::Mismatched`] and retires that request. Bytes
    /// that are not frames at all are a [`ConnFault`]: the caller drops the connection and calls
    /// [`abandon`](Self::abandon).
    pub fn receive(
        &mut self,
        mut data: &[u8],
        now_ns: u64,
        stats: &mut Stats,
    ) -> Result<(), ConnFault> {
        stats.bytes_rx += data.len() as u64;
        while !data.is_empty() {
            let (n, frame) = self.decoder.feed(data);
            data = &data[n..];
            match frame {
                None => {}
                Some(Ok(header)) => self.complete(header, now_ns, stats)?,
                Some(Err(e)) => {
                    stats.error(ErrorKind::Mismatched);
                    if self.in_flight.pop_front().is_some() {
                        stats.mismatched_requests += 1;
                    }
                    return Err(ConnFault::Garbage(e));
                }
            }
        }
        Ok(())
    }

    fn complete(
        &mut self,
        header: Header,
        now_ns: u64,
        stats: &mut Stats,
    ) -> Result<(), ConnFault> {
        let Some(want) = self.in_flight.pop_front() else {
            stats.error(ErrorKind::Mismatched);
            return Err(ConnFault::Unsolicited { id: header.id });
        };
        let kind = match self.cfg.exchange {
            Exchange::Echo | Exchange::Source => protocol::Kind::Echo,
            Exchange::Sink => protocol::Kind::Ack,
        };
        if header.frame_kind() == kind
            && header.id == want.id
            && header.len == self.cfg.size
            && header.checksum == want.checksum
        {
            stats.ok += 1;
            stats.record_latency(now_ns.saturating_sub(want.intended_ns));
        } else {
            stats.error(ErrorKind::Mismatched);
            stats.mismatched_requests += 1;
        }
        Ok(())
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The intended send time of the oldest request in flight.
    pub fn oldest_intended_ns(&self) -> Option<u64> {
        self.in_flight.front().map(|r| r.intended_ns)
    }

    /// Whether the connection carried its quota and every response arrived.
    pub fn finished(&self) -> bool {
        self.cfg.per_conn.is_some_and(|n| self.issued >= n) && self.in_flight.is_empty()
    }

    /// Requests issued so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// The connection is gone: its requests in flight are counted as abandoned.
    pub fn abandon(&mut self, stats: &mut Stats) {
        stats.abandoned += self.in_flight.len() as u64;
        self.in_flight.clear();
        self.out.clear();
        self.out_pos = 0;
    }
}

/// Intended send times of an open loop at a fixed rate, in nanoseconds since the start.
#[derive(Clone, Debug)]
pub struct Pacer {
    interval_ns: f64,
    offset_ns: f64,
    next: u64,
}

impl Pacer {
    /// `rate` requests per second, the first at `offset_ns` (to stagger several pacers).
    pub fn new(rate: f64, offset_ns: u64) -> Self {
        Pacer {
            interval_ns: 1e9 / rate.max(1e-9),
            offset_ns: offset_ns as f64,
            next: 0,
        }
    }

    /// The next intended send time if it is due at `now_ns`; each one is returned once.
    pub fn due(&mut self, now_ns: u64) -> Option<u64> {
        let t = self.offset_ns + self.next as f64 * self.interval_ns;
        if t <= now_ns as f64 {
            self.next += 1;
            Some(t as u64)
        } else {
            None
        }
    }

    /// The next intended send time.
    pub fn next_ns(&self) -> u64 {
        (self.offset_ns + self.next as f64 * self.interval_ns) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_request;

    fn stats() -> Stats {
        Stats::new()
    }

    #[test]
    fn echo_is_verified_in_pieces() {
        let mut s = stats();
        let mut c = ClientConn::new(ConnConfig {
            size: 50,
            depth: 2,
            per_conn: None,
            exchange: Exchange::Echo,
        });
        c.issue(1, 100, &mut s);
        c.issue(2, 200, &mut s);
        assert!(!c.can_issue());
        let echo = c.output().to_vec();
        c.advance_output(echo.len(), &mut s);
        for piece in echo.chunks(7) {
            c.receive(piece, 1_000, &mut s).unwrap();
        }
        assert_eq!((s.sent, s.ok, s.errors_total()), (2, 2, 0));
        assert_eq!(s.hist.len(), 2);
        assert_eq!(s.hist.max(), s.hist.highest_equivalent(900));
        assert_eq!(s.bytes_rx, echo.len() as u64);
    }

    #[test]
    fn a_reset_client_starts_afresh_midway_through_a_request() {
        let mut s = stats();
        let cfg = ConnConfig {
            size: 50,
            depth: 1,
            per_conn: Some(1),
            exchange: Exchange::Echo,
        };
        let mut c = ClientConn::new(cfg);
        c.issue(1, 100, &mut s);
        let first = c.output().to_vec();
        // Half sent, half of an answer received, quota used up: then the next connection.
        c.advance_output(first.len() / 2, &mut s);
        c.receive(&first[..10], 150, &mut s).unwrap();
        assert!(!c.can_issue());
        c.reset(cfg);
        assert!(c.can_issue());
        assert!(c.output().is_empty());
        c.issue(2, 200, &mut s);
        let second = c.output().to_vec();
        assert_eq!(second.len(), first.len());
        c.advance_output(second.len(), &mut s);
        c.receive(&second, 1_000, &mut s).unwrap();
        assert_eq!((s.ok, s.errors_total()), (1, 0));
        assert_eq!(s.hist.max(), s.hist.highest_equivalent(800));
    }

    #[test]
    fn stale_response_is_mismatched() {
        let mut s = stats();
        let mut c = ClientConn::new(ConnConfig {
            size: 8,
            depth: 1,
            per_conn: None,
            exchange: Exchange::Echo,
        });
        c.issue(1, 0, &mut s);
        let first = c.output().to_vec();
        c.advance_output(first.len(), &mut s);
        c.receive(&first, 10, &mut s).unwrap();
        c.issue(2, 20, &mut s);
        // The server answers request 2 with request 1's response.
        c.receive(&first, 30, &mut s).unwrap();
        assert_eq!((s.sent, s.ok, s.mismatched_requests), (2, 1, 1));
        assert_eq!(s.errors[ErrorKind::Mismatched as usize], 1);
        // An unsolicited extra response is a fault.
        assert!(matches!(
            c.receive(&first, 40, &mut s),
            Err(ConnFault::Unsolicited { id: 1 })
        ));
    }

    #[test]
    fn wrong_size_and_garbage_are_caught() {
        let mut s = stats();
        let mut c = ClientConn::new(ConnConfig {
            size: 8,
            depth: 2,
            per_conn: Some(2),
            exchange: Exchange::Echo,
        });
        c.issue(1, 0, &mut s);
        let mut other = Vec::new();
        encode_request(1, 9, &mut other);
        c.receive(&other, 10, &mut s).unwrap();
        assert_eq!(s.mismatched_requests, 1);
        c.issue(2, 0, &mut s);
        assert!(!c.can_issue(), "per-connection quota");
        assert!(
            c.receive(b"definitely not a frame header", 10, &mut s)
                .is_err()
        );
        assert_eq!((s.ok, s.mismatched_requests, s.abandoned), (0, 2, 0));
        assert!(c.finished());
    }

    #[test]
    fn one_way_exchanges_are_verified() {
        use crate::protocol::Responder;
        for exchange in [Exchange::Sink, Exchange::Source] {
            let mut s = stats();
            let mut c = ClientConn::new(ConnConfig {
                size: 3000,
                depth: 3,
                per_conn: None,
                exchange,
            });
            c.issue(1, 0, &mut s);
            c.issue(2, 0, &mut s);
            c.issue(3, 0, &mut s);
            let sent = c.output().to_vec();
            c.advance_output(sent.len(), &mut s);
            let mut answer = Vec::new();
            Responder::new().feed(&sent, &mut answer).unwrap();
            for piece in answer.chunks(11) {
                c.receive(piece, 5, &mut s).unwrap();
            }
            assert_eq!(
                (s.sent, s.ok, s.mismatched_requests),
                (3, 3, 0),
                "{exchange:?}"
            );
            let (up, down) = match exchange {
                Exchange::Sink => (3 * 3024, 3 * 24),
                _ => (3 * 24, 3 * 3024),
            };
            assert_eq!((s.bytes_tx, s.bytes_rx), (up, down), "{exchange:?}");
        }
        // An echo where an acknowledgment is due is a mismatch.
        let mut s = stats();
        let mut c = ClientConn::new(ConnConfig {
            size: 10,
            depth: 1,
            per_conn: None,
            exchange: Exchange::Sink,
        });
        c.issue(7, 0, &mut s);
        let mut echo = Vec::new();
        protocol::encode_request(7, 10, &mut echo);
        c.receive(&echo, 1, &mut s).unwrap();
        assert_eq!((s.ok, s.mismatched_requests), (0, 1));
    }

    #[test]
    fn pacer_spaces_sends() {
        let mut p = Pacer::new(1000.0, 0);
        assert_eq!(p.due(0), Some(0));
        assert_eq!(p.due(999_999), None);
        assert_eq!(p.due(3_500_000), Some(1_000_000));
        assert_eq!(p.due(3_500_000), Some(2_000_000));
        assert_eq!(p.due(3_500_000), Some(3_000_000));
        assert_eq!(p.due(3_500_000), None);
        assert_eq!(p.next_ns(), 4_000_000);
    }
}
