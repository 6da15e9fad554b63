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
        if b[5] != KIND_REQUEST {
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
                                left: header.len,
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
                    if actual != header.checksum {
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
