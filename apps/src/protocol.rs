//! The load generator's request framing, sans-IO.
//!
//! Every request is a 24-byte header followed by `len` payload bytes:
//!
//! ```text
//! 0      4       5       6        8            16         20          24
//! | magic | version | kind | reserved | request id | length | checksum | payload ...
//! ```
//!
//! All integers are big-endian. The checksum is CRC-32 (IEEE) over the request id and the
//! payload, so a response carrying the right id but corrupted bytes, or another request's
//! bytes under a forged id, is caught. An echo server returns the bytes unchanged, so a response
//! is a byte-for-byte copy of its request; the client checks it against what it sent.
//!
//! One-way streams use three more kinds ([`Kind`]); an echo server that sees frames (the stream
//! starts with [`MAGIC`]) answers them through a [`Responder`]:
//!
//! - [`Kind::Sink`] ("sink N bytes", upload): a frame like a request, `len` payload bytes; the
//!   server checks its checksum, discards the payload and answers with a header-only
//!   [`Kind::Ack`] carrying the same id, the byte count it received as `len` and the checksum
//!   it computed, so the client verifies both.
//! - [`Kind::Source`] ("source N bytes", download): a header-only request whose `len` is the
//!   number of bytes wanted (its checksum covers the id alone); the server answers with the
//!   [`Kind::Echo`] frame of that id and length, the client checks it as it checks an echo.
//!
//! [`Decoder`] is a streaming parser: it takes bytes in pieces of any size (a `read` may return
//! half a header), keeps no payload copy (it checksums on the fly), and never panics on any
//! input: garbage yields a [`DecodeError`], after which the stream is out of sync and the
//! connection should be dropped.

use std::fmt;

/// The header's magic number ("SNLG").
pub const MAGIC: u32 = 0x534e_4c47;
/// The framing version this module speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;
/// The largest payload a decoder accepts (a bound so that garbage cannot announce 4 GiB).
pub const MAX_PAYLOAD: u32 = 16 << 20;
/// `kind` of a request (the only kind today; a response is the echoed request).
pub const KIND_REQUEST: u8 = 1;

/// What a frame is (the header's `kind` byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request echoed unchanged, or the data answering a [`Kind::Source`].
    Echo = 1,
    /// Upload: `len` payload bytes the server consumes and acknowledges.
    Sink = 2,
    /// The server's answer to a [`Kind::Sink`]: no payload; `len` and `checksum` are what it
    /// received.
    Ack = 3,
    /// Download: no payload; asks the server for an [`Kind::Echo`] frame of `len` bytes.
    Source = 4,
}

impl Kind {
    fn of(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Echo,
            2 => Kind::Sink,
            3 => Kind::Ack,
            4 => Kind::Source,
            _ => return None,
        })
    }
}

/// Incremental CRC-32 over a request id and its payload.
#[derive(Clone, Debug)]
pub struct Checksum(crc32fast::Hasher);

impl Checksum {
    /// A checksum of a request with id `id`, before any payload byte.
    pub fn new(id: u64) -> Self {
        let mut h = crc32fast::Hasher::new();
        h.update(&id.to_be_bytes());
        Checksum(h)
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The value so far.
    pub fn value(&self) -> u32 {
        self.0.clone().finalize()
    }
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Request kind ([`KIND_REQUEST`]).
    pub kind: u8,
    /// The request id.
    pub id: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// CRC-32 of the id and the payload.
    pub checksum: u32,
}

impl Header {
    /// The frame's kind (`parse` only returns headers of known kinds; an unknown one reads as
    /// [`Kind::Echo`]).
    pub fn frame_kind(&self) -> Kind {
        Kind::of(self.kind).unwrap_or(Kind::Echo)
    }

    /// Payload bytes that follow the header: `len` for [`Kind::Echo`] and [`Kind::Sink`],
    /// none for [`Kind::Ack`] and [`Kind::Source`] (their `len` is a count, not a payload).
    pub fn payload_len(&self) -> u32 {
        match self.frame_kind() {
            Kind::Echo | Kind::Sink => self.len,
            Kind::Ack | Kind::Source => 0,
        }
    }

    /// The header's wire form.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4] = VERSION;
        b[5] = self.kind;
        b[8..16].copy_from_slice(&self.id.to_be_bytes());
        b[16..20].copy_from_slice(&self.len.to_be_bytes());
        b[20..24].copy_from_slice(&self.checksum.to_be_bytes());
        b
    }

    /// Parses a header, checking magic, version, kind and the length bound.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, DecodeError> {
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        if b[4] != VERSION {
            return Err(DecodeError::BadVersion(b[4]));
        }
        if Kind::of(b[5]).is_none() {
            return Err(DecodeError::BadKind(b[5]));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[8..16]);
        let len = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
        if len > MAX_PAYLOAD {
            return Err(DecodeError::TooLong(len));
        }
        Ok(Header {
            kind: b[5],
            id: u64::from_be_bytes(id),
            len,
            checksum: u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
        })
    }
}

const PATTERN_LEN: usize = 4096;

/// The payload's byte pattern (requests differ by id; the checksum covers the id).
const PATTERN: [u8; PATTERN_LEN] = {
    let mut p = [0u8; PATTERN_LEN];
    let mut i = 0;
    while i < PATTERN_LEN {
        p[i] = (i as u8).wrapping_mul(31).wrapping_add(7);
        i += 1;
    }
    p
};

/// Appends the whole request `id` with a `len`-byte payload to `out`; returns its header.
pub fn encode_request(id: u64, len: u32, out: &mut Vec<u8>) -> Header {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut left = len as usize;
    out.reserve(left);
    while left > 0 {
        let n = left.min(PATTERN_LEN);
        out.extend_from_slice(&PATTERN[..n]);
        left -= n;
    }
    let mut sum = Checksum::new(id);
    sum.update(&out[start + HEADER_LEN..]);
    let header = Header {
        kind: KIND_REQUEST,
        id,
        len,
        checksum: sum.value(),
    };
    out[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
    header
}

/// Appends a [`Kind::Sink`] frame: `id` with a `len`-byte payload to be consumed and
/// acknowledged; returns its header.
pub fn encode_sink(id: u64, len: u32, out: &mut Vec<u8>) -> Header {
    let start = out.len();
    let mut header = encode_request(id, len, out);
    header.kind = Kind::Sink as u8;
    out[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
    header
}

/// Appends a [`Kind::Source`] request for `len` bytes under `id`; returns its header.
pub fn encode_source(id: u64, len: u32, out: &mut Vec<u8>) -> Header {
    let header = Header {
        kind: Kind::Source as u8,
        id,
        len,
        checksum: Checksum::new(id).value(),
    };
    out.extend_from_slice(&header.to_bytes());
    header
}

/// The checksum of the request [`encode_request`] makes for `id` and `len`, without building it.
pub fn payload_checksum(id: u64, len: u32) -> u32 {
    let mut sum = Checksum::new(id);
    let mut left = len as usize;
    while left > 0 {
        let n = left.min(PATTERN_LEN);
        sum.update(&PATTERN[..n]);
        left -= n;
    }
    sum.value()
}

/// The total wire size of a request with a `len`-byte payload.
pub fn frame_len(len: u32) -> usize {
    HEADER_LEN + len as usize
}

/// Why a byte stream is not a valid sequence of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The first four bytes are not [`MAGIC`].
    BadMagic(u32),
    /// An unknown framing version.
    BadVersion(u8),
    /// An unknown kind.
    BadKind(u8),
    /// A payload longer than [`MAX_PAYLOAD`].
    TooLong(u32),
    /// The payload does not match the header's checksum (corruption).
    BadChecksum {
        /// The request id of the header.
        id: u64,
        /// The checksum the header announced.
        expected: u32,
        /// The checksum of the bytes received.
        actual: u32,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            DecodeError::BadVersion(v) => write!(f, "unknown framing version {v}"),
            DecodeError::BadKind(k) => write!(f, "unknown frame kind {k}"),
            DecodeError::TooLong(n) => write!(f, "payload of {n} bytes exceeds {MAX_PAYLOAD}"),
            DecodeError::BadChecksum {
                id,
                expected,
                actual,
            } => write!(
                f,
                "request {id}: checksum {actual:#010x}, header says {expected:#010x}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Clone, Debug)]
enum State {
    Header {
        filled: usize,
    },
    Payload {
        header: Header,
        left: u32,
        sum: Checksum,
    },
    Failed(DecodeError),
}

/// Streaming frame decoder (see the module docs).
#[derive(Clone, Debug)]
pub struct Decoder {
    buf: [u8; HEADER_LEN],
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Decoder {
            buf: [0; HEADER_LEN],
            state: State::Header { filled: 0 },
        }
    }

    /// Consumes bytes from `input` until one frame is complete or `input` is used up.
    ///
    /// Returns how many bytes were consumed and, if a frame ended within them, its header (the
    /// payload matched the checksum) or the error. After an error the decoder stays failed and
    /// consumes nothing.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Result<Header, DecodeError>>) {
        let mut used = 0;
        loop {
            match &mut self.state {
                State::Failed(e) => return (used, Some(Err(*e))),
                State::Header { filled } => {
                    let take = (HEADER_LEN - *filled).min(input.len() - used);
                    self.buf[*filled..*filled + take].copy_from_slice(&input[used..used + take]);
                    *filled += take;
                    used += take;
                    if *filled < HEADER_LEN {
                        return (used, None);
                    }
                    match Header::parse(&self.buf) {
                        Ok(header) => {
                            self.state = State::Payload {
                                header,
                                left: header.payload_len(),
                                sum: Checksum::new(header.id),
                            };
                        }
                        Err(e) => {
                            self.state = State::Failed(e);
                            return (used, Some(Err(e)));
                        }
                    }
                }
                State::Payload { header, left, sum } => {
                    let take = (*left as usize).min(input.len() - used);
                    sum.update(&input[used..used + take]);
                    used += take;
                    // `take` <= `left`, which is a u32.
                    *left -= take as u32;
                    if *left > 0 {
                        return (used, None);
                    }
                    let header = *header;
                    let actual = sum.value();
                    // An acknowledgment's checksum is the one the server computed over the
                    // payload it consumed: the client checks it against the one it sent.
                    if header.frame_kind() != Kind::Ack && actual != header.checksum {
                        let e = DecodeError::BadChecksum {
                            id: header.id,
                            expected: header.checksum,
                            actual,
                        };
                        self.state = State::Failed(e);
                        return (used, Some(Err(e)));
                    }
                    self.state = State::Header { filled: 0 };
                    return (used, Some(Ok(header)));
                }
            }
        }
    }

    /// Whether the decoder is between frames (no partial frame buffered).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { filled: 0 })
    }
}

#[derive(Clone, Debug)]
enum Serve {
    /// Undecided: the first bytes are held until they show whether the stream is framed.
    Start,
    /// Not frames: every byte is echoed unchanged.
    Raw,
    /// Between frames, `filled` header bytes held.
    Header {
        filled: usize,
    },
    /// Inside an echo frame's payload: passed through unchecked (the client checks it).
    Echo {
        left: u32,
    },
    /// Inside a sink frame's payload: checksummed and discarded.
    Sink {
        header: Header,
        left: u32,
        sum: Checksum,
    },
    Failed(DecodeError),
}

/// The echo server's side of the framing, sans-IO: takes what the connection read and appends
/// what it must write back.
///
/// A stream whose first byte is not [`MAGIC`]'s is echoed unchanged byte for byte (any client
/// can use the echo). A framed stream has its [`Kind::Echo`] frames echoed unchanged (not
/// checksummed: the client verifies them), its [`Kind::Sink`] frames checked and acknowledged,
/// and its [`Kind::Source`] requests answered with the data asked for.
#[derive(Clone, Debug)]
pub struct Responder {
    buf: [u8; HEADER_LEN],
    state: Serve,
    consumed: u64,
    frames: u64,
}

impl Default for Responder {
    fn default() -> Self {
        Self::new()
    }
}

impl Responder {
    /// A responder at the start of a connection.
    pub fn new() -> Self {
        Responder {
            buf: [0; HEADER_LEN],
            state: Serve::Start,
            consumed: 0,
            frames: 0,
        }
    }

    /// Payload bytes of sink frames consumed (and not echoed) so far.
    pub fn sunk(&self) -> u64 {
        self.consumed
    }

    /// Consumes all of `input`, appending the answer to `out`. After an error (a framed stream
    /// that breaks the framing) the responder stays failed: the connection should be closed.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        while !input.is_empty() {
            match &mut self.state {
                Serve::Failed(e) => return Err(*e),
                Serve::Raw => {
                    out.extend_from_slice(input);
                    return Ok(());
                }
                Serve::Start => {
                    if input[0] == MAGIC.to_be_bytes()[0] {
                        self.state = Serve::Header { filled: 0 };
                    } else {
                        self.state = Serve::Raw;
                    }
                }
                Serve::Header { filled } => {
                    let take = (HEADER_LEN - *filled).min(input.len());
                    self.buf[*filled..*filled + take].copy_from_slice(&input[..take]);
                    *filled += take;
                    input = &input[take..];
                    let magic = MAGIC.to_be_bytes();
                    let seen = (*filled).min(magic.len());
                    if self.frames == 0 && self.buf[..seen] != magic[..seen] {
                        // Not frames after all: echo what was held, then everything.
                        out.extend_from_slice(&self.buf[..*filled]);
                        self.state = Serve::Raw;
                        continue;
                    }
                    if *filled < HEADER_LEN {
                        return Ok(());
                    }
                    let header = match Header::parse(&self.buf) {
                        Ok(h) => {
                            self.frames += 1;
                            h
                        }
                        Err(e) => {
                            self.state = Serve::Failed(e);
                            return Err(e);
                        }
                    };
                    self.state = match header.frame_kind() {
                        Kind::Echo => {
                            out.extend_from_slice(&self.buf);
                            Serve::Echo { left: header.len }
                        }
                        Kind::Sink => Serve::Sink {
                            header,
                            left: header.len,
                            sum: Checksum::new(header.id),
                        },
                        Kind::Source => {
                            if header.checksum != Checksum::new(header.id).value() {
                                let e = DecodeError::BadChecksum {
                                    id: header.id,
                                    expected: header.checksum,
                                    actual: Checksum::new(header.id).value(),
                                };
                                self.state = Serve::Failed(e);
                                return Err(e);
                            }
                            encode_request(header.id, header.len, out);
                            Serve::Header { filled: 0 }
                        }
                        // Acknowledgments go from server to client only.
                        Kind::Ack => {
                            let e = DecodeError::BadKind(Kind::Ack as u8);
                            self.state = Serve::Failed(e);
                            return Err(e);
                        }
                    };
                    self.finish_empty_frame();
                    if let Serve::Sink { header, .. } = &self.state {
                        if header.len == 0 {
                            let ack = Header {
                                kind: Kind::Ack as u8,
                                ..*header
                            };
                            if header.checksum != Checksum::new(header.id).value() {
                                let e = DecodeError::BadChecksum {
                                    id: header.id,
                                    expected: header.checksum,
                                    actual: Checksum::new(header.id).value(),
                                };
                                self.state = Serve::Failed(e);
                                return Err(e);
                            }
                            out.extend_from_slice(&ack.to_bytes());
                            self.state = Serve::Header { filled: 0 };
                        }
                    }
                }
                Serve::Echo { left } => {
                    let take = (*left as usize).min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    // `take` <= `left`, a u32.
                    *left -= take as u32;
                    if *left == 0 {
                        self.state = Serve::Header { filled: 0 };
                    }
                }
                Serve::Sink { header, left, sum } => {
                    let take = (*left as usize).min(input.len());
                    sum.update(&input[..take]);
                    input = &input[take..];
                    *left -= take as u32;
                    self.consumed += take as u64;
                    if *left == 0 {
                        let actual = sum.value();
                        if actual != header.checksum {
                            let e = DecodeError::BadChecksum {
                                id: header.id,
                                expected: header.checksum,
                                actual,
                            };
                            self.state = Serve::Failed(e);
                            return Err(e);
                        }
                        let ack = Header {
                            kind: Kind::Ack as u8,
                            id: header.id,
                            len: header.len,
                            checksum: actual,
                        };
                        out.extend_from_slice(&ack.to_bytes());
                        self.state = Serve::Header { filled: 0 };
                    }
                }
            }
        }
        Ok(())
    }

    /// An echo frame with no payload is complete with its header.
    fn finish_empty_frame(&mut self) {
        if let Serve::Echo { left: 0 } = self.state {
            self.state = Serve::Header { filled: 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(bytes: &[u8], chunk: usize) -> Vec<Result<Header, DecodeError>> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            let mut rest = piece;
            loop {
                let (n, frame) = d.feed(rest);
                rest = &rest[n..];
                match frame {
                    Some(Err(e)) => {
                        out.push(Err(e));
                        return out;
                    }
                    Some(Ok(h)) => out.push(Ok(h)),
                    None => break,
                }
            }
        }
        out
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut bytes = Vec::new();
        let a = encode_request(7, 100, &mut bytes);
        let b = encode_request(8, 0, &mut bytes);
        let c = encode_request(u64::MAX, 3, &mut bytes);
        assert_eq!(bytes.len(), frame_len(100) + frame_len(0) + frame_len(3));
        for chunk in [1, 2, 23, 24, 25, 1000] {
            assert_eq!(decode_all(&bytes, chunk), vec![Ok(a), Ok(b), Ok(c)]);
        }
    }

    #[test]
    fn corruption_is_caught() {
        let mut bytes = Vec::new();
        encode_request(42, 64, &mut bytes);
        bytes[HEADER_LEN + 10] ^= 0x01;
        assert!(matches!(
            decode_all(&bytes, 5).last(),
            Some(Err(DecodeError::BadChecksum { id: 42, .. }))
        ));
    }

    #[test]
    fn forged_id_is_caught() {
        // Request 2's bytes under request 1's id: the checksum covers the id.
        let mut bytes = Vec::new();
        encode_request(2, 16, &mut bytes);
        bytes[8..16].copy_from_slice(&1u64.to_be_bytes());
        assert!(matches!(
            decode_all(&bytes, 64)[0],
            Err(DecodeError::BadChecksum { id: 1, .. })
        ));
    }

    #[test]
    fn garbage_header_is_rejected() {
        assert!(matches!(
            decode_all(&[0u8; 30], 7)[0],
            Err(DecodeError::BadMagic(0))
        ));
        let mut bytes = Vec::new();
        encode_request(1, 0, &mut bytes);
        bytes[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_all(&bytes, 24),
            vec![Err(DecodeError::TooLong(u32::MAX))]
        );
    }

    /// Feeds `bytes` to a responder in `chunk`-byte pieces.
    fn respond(bytes: &[u8], chunk: usize) -> (Vec<u8>, Result<(), DecodeError>, u64) {
        let mut r = Responder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            if let Err(e) = r.feed(piece, &mut out) {
                return (out, Err(e), r.sunk());
            }
        }
        (out, Ok(()), r.sunk())
    }

    #[test]
    fn responder_echoes_sinks_and_sources() {
        let mut input = Vec::new();
        let echo = encode_request(1, 100, &mut input);
        let sink = encode_sink(2, 5000, &mut input);
        let source = encode_source(3, 7000, &mut input);
        encode_sink(4, 0, &mut input);
        for chunk in [1, 7, 24, 25, 4096, 1 << 20] {
            let (out, r, sunk) = respond(&input, chunk);
            assert_eq!(r, Ok(()));
            assert_eq!(sunk, 5000);
            let mut want = Vec::new();
            encode_request(1, 100, &mut want);
            want.extend_from_slice(
                &Header {
                    kind: Kind::Ack as u8,
                    ..sink
                }
                .to_bytes(),
            );
            let data = encode_request(3, 7000, &mut want);
            assert_eq!(data.checksum, payload_checksum(3, 7000));
            assert_eq!(source.len, 7000);
            want.extend_from_slice(
                &Header {
                    kind: Kind::Ack as u8,
                    id: 4,
                    len: 0,
                    checksum: Checksum::new(4).value(),
                }
                .to_bytes(),
            );
            assert_eq!(out, want, "chunk {chunk}");
            // And the client's decoder reads the answer back.
            let frames = decode_all(&out, chunk);
            assert_eq!(frames.len(), 4);
            assert_eq!(frames[0], Ok(echo));
            assert_eq!(frames[1].unwrap().frame_kind(), Kind::Ack);
            assert_eq!(frames[1].unwrap().checksum, sink.checksum);
            assert_eq!(frames[2].unwrap().checksum, payload_checksum(3, 7000));
        }
    }

    #[test]
    fn responder_catches_a_corrupt_sink() {
        let mut input = Vec::new();
        encode_sink(9, 300, &mut input);
        input[HEADER_LEN + 100] ^= 0x80;
        let (out, r, _) = respond(&input, 64);
        assert!(matches!(r, Err(DecodeError::BadChecksum { id: 9, .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn responder_echoes_unframed_bytes_unchanged() {
        for text in [&b"hello, echo\n"[..], b"Sorry", b"SN"] {
            for chunk in [1, 3, 100] {
                let (out, r, _) = respond(text, chunk);
                assert_eq!(r, Ok(()));
                let held = text.starts_with(b"SN") && text.len() < 4;
                if held {
                    assert!(out.is_empty(), "a possible magic prefix is held");
                } else {
                    assert_eq!(out, text, "chunk {chunk}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), chunk in 1usize..64) {
            let _ = decode_all(&bytes, chunk);
        }

        #[test]
        fn any_split_decodes_the_same(
            frames in proptest::collection::vec((any::<u64>(), 0u32..300), 1..8),
            chunk in 1usize..400,
        ) {
            let mut bytes = Vec::new();
            let headers: Vec<_> = frames.iter().map(|&(id, len)| Ok(encode_request(id, len, &mut bytes))).collect();
            prop_assert_eq!(decode_all(&bytes, chunk), headers);
        }

        #[test]
        fn any_single_bit_flip_is_detected(id in any::<u64>(), len in 1u32..200, bit in any::<usize>()) {
            let mut bytes = Vec::new();
            let h = encode_request(id, len, &mut bytes);
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let out = decode_all(&bytes, 13);
            // A flipped bit either breaks the frame or (in the reserved bytes only) is harmless.
            let reserved = (6..8).contains(&(bit / 8));
            if reserved {
                prop_assert_eq!(out, vec![Ok(h)]);
            } else {
                prop_assert!(out.iter().all(|r| *r != Ok(h)), "flip at bit {} not detected: {:?}", bit, out);
            }
        }
    }
}
