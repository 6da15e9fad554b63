//! TCP options (RFC 9293 3.1 and 3.2, RFC 6691, RFC 7323, RFC 2018, RFC 7413).
//!
//! [`OptionIter`] walks the option bytes of a segment and yields one [`TcpOption`] at a time,
//! borrowing variable-length data from the segment. [`TcpOption::emit`] writes one option.
//! The layout of a whole option area (which options, in which order, padded how) is chosen by
//! [`super::tcp::Repr::emit`], which follows Linux.
//!
//! Strictness: a malformed option (a length of zero or one, a length that runs past the option
//! area, a wrong length for a kind with a fixed size) yields [`Error::BadOption`] and ends the
//! iteration. RFC 9293 3.2 (MUST-7): "a TCP implementation MUST be prepared to handle an illegal
//! option length (e.g., zero); a suggested procedure is to reset the connection and log the error
//! cause." Linux is more lenient: `tcp_parse_options` stops parsing at a length below 2 or past
//! the end, and silently ignores a known kind whose length is wrong, without dropping the
//! segment. Callers that want Linux's leniency can consume the iterator themselves.

use core::fmt;
use core::ops::Deref;

use super::{Error, Result};

/// Option kinds (IANA "TCP Option Kind Numbers").
pub mod kind {
    /// End of Option List (RFC 9293 3.2).
    pub const END_OF_LIST: u8 = 0;
    /// No-Operation (RFC 9293 3.2).
    pub const NO_OPERATION: u8 = 1;
    /// Maximum Segment Size (RFC 9293 3.2, 3.7.1).
    pub const MAX_SEGMENT_SIZE: u8 = 2;
    /// Window Scale (RFC 7323 2.2).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK-Permitted (RFC 2018 2).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK (RFC 2018 3).
    pub const SACK: u8 = 5;
    /// Timestamps (RFC 7323 3.2).
    pub const TIMESTAMPS: u8 = 8;
    /// TCP Fast Open cookie (RFC 7413 4.1.1).
    pub const FAST_OPEN: u8 = 34;
    /// RFC 6994 shared experimental option; carries Fast Open with the magic
    /// [`super::FAST_OPEN_EXP_MAGIC`] in its pre-RFC encoding.
    pub const EXPERIMENTAL: u8 = 254;
}

/// The experiment identifier of the pre-RFC 7413 Fast Open encoding (kind 254, then `0xF989`,
/// then the cookie). Linux's `TCPOPT_FASTOPEN_MAGIC`.
pub const FAST_OPEN_EXP_MAGIC: u16 = 0xF989;

/// The largest option area: a data offset of 15 words minus the 20-byte fixed header
/// (RFC 9293 3.1).
pub const MAX_OPTIONS_LEN: usize = 40;

/// At most four SACK blocks fit in the 40-byte option area (RFC 2018 3: "a SACK option that
/// specifies n blocks will have a length of 8*n+2 bytes, so the 40 bytes available for TCP
/// options can specify a maximum of 4 blocks").
pub const MAX_SACK_BLOCKS: usize = 4;

/// The largest window shift (RFC 7323 2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// The shortest Fast Open cookie (RFC 7413 4.1.1: "The minimum Cookie size is 4 bytes").
pub const FAST_OPEN_COOKIE_MIN_LEN: usize = 4;

/// The longest Fast Open cookie (RFC 7413 4.1.1: "Cookie: 0, or 4 to 16 bytes").
pub const FAST_OPEN_COOKIE_MAX_LEN: usize = 16;

/// Length of the Maximum Segment Size option.
const MSS_LEN: usize = 4;
/// Length of the Window Scale option.
const WINDOW_SCALE_LEN: usize = 3;
/// Length of the SACK-Permitted option.
const SACK_PERMITTED_LEN: usize = 2;
/// Length of the Timestamps option.
const TIMESTAMPS_LEN: usize = 10;
/// Kind and length bytes.
const KIND_LEN: usize = 2;
/// Length of one SACK block.
const SACK_BLOCK_LEN: usize = 8;
/// Kind, length and magic of the experimental Fast Open option.
const FAST_OPEN_EXP_BASE_LEN: usize = 4;

/// One SACK block: the sequence numbers of the first byte received and of the byte after the
/// last (RFC 2018 3). Raw `u32`s: the TCP layer wraps them in its own sequence-number type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SackBlock {
    /// "Left Edge of Block: This is the first sequence number of this block."
    pub left: u32,
    /// "Right Edge of Block: This is the sequence number immediately following the last
    /// sequence number of this block."
    pub right: u32,
}

/// Up to [`MAX_SACK_BLOCKS`] SACK blocks, stored inline (`Copy`, no allocation).
///
/// Dereferences to `&[SackBlock]`. Order is kept as on the wire: RFC 2018 4 has the first block
/// report the most recently received segment.
#[derive(Clone, Copy, Default)]
pub struct SackBlocks {
    blocks: [SackBlock; MAX_SACK_BLOCKS],
    len: u8,
}

impl SackBlocks {
    /// No blocks.
    pub const fn new() -> Self {
        SackBlocks {
            blocks: [SackBlock { left: 0, right: 0 }; MAX_SACK_BLOCKS],
            len: 0,
        }
    }

    /// The blocks of `blocks`, or `None` if there are more than [`MAX_SACK_BLOCKS`].
    pub fn from_slice(blocks: &[SackBlock]) -> Option<Self> {
        let mut out = SackBlocks::new();
        for &b in blocks {
            out.push(b).ok()?;
        }
        Some(out)
    }

    /// Appends a block; gives it back if all [`MAX_SACK_BLOCKS`] slots are used.
    pub fn push(&mut self, block: SackBlock) -> core::result::Result<(), SackBlock> {
        match self.blocks.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = block;
                self.len += 1;
                Ok(())
            }
            None => Err(block),
        }
    }

    /// Keeps the first `len` blocks (no effect if there are fewer).
    pub fn truncate(&mut self, len: usize) {
        if len < usize::from(self.len) {
            // `len < self.len <= 4`, so the cast is exact.
            self.len = len as u8;
        }
    }

    /// Removes every block.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The blocks, in order.
    pub fn as_slice(&self) -> &[SackBlock] {
        self.blocks.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// True if no more block fits.
    pub fn is_full(&self) -> bool {
        usize::from(self.len) >= MAX_SACK_BLOCKS
    }
}

impl Deref for SackBlocks {
    type Target = [SackBlock];
    fn deref(&self) -> &[SackBlock] {
        self.as_slice()
    }
}

impl PartialEq for SackBlocks {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SackBlocks {}

impl core::hash::Hash for SackBlocks {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for SackBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<'a> IntoIterator for &'a SackBlocks {
    type Item = &'a SackBlock;
    type IntoIter = core::slice::Iter<'a, SackBlock>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// A TCP Fast Open cookie held inline (`Copy`, no allocation). Empty means a cookie request.
///
/// Only lengths that RFC 7413 4.1.1 allows can be built: 0 (a request) or an even number of
/// bytes from 4 to 16 ("Length: range 6 to 18 (bytes) ... The number MUST be even").
#[derive(Clone, Copy, Default)]
pub struct TfoCookie {
    bytes: [u8; FAST_OPEN_COOKIE_MAX_LEN],
    len: u8,
}

impl TfoCookie {
    /// A cookie request: the option with no cookie (RFC 7413 4.1.1).
    pub const REQUEST: TfoCookie = TfoCookie {
        bytes: [0; FAST_OPEN_COOKIE_MAX_LEN],
        len: 0,
    };

    /// A cookie with these bytes, or [`Error::BadOption`] if RFC 7413 forbids the length
    /// (1 to 3, odd, or above 16). An empty slice gives [`TfoCookie::REQUEST`].
    pub fn new(cookie: &[u8]) -> Result<Self> {
        check_cookie_len(cookie.len())?;
        let mut out = TfoCookie::REQUEST;
        out.bytes
            .get_mut(..cookie.len())
            .ok_or(Error::BadOption)?
            .copy_from_slice(cookie);
        // At most 16 after the check above.
        out.len = cookie.len() as u8;
        Ok(out)
    }

    /// The cookie bytes (empty for a request).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// True for a cookie request (no cookie bytes).
    pub fn is_request(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for TfoCookie {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for TfoCookie {}

impl core::hash::Hash for TfoCookie {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for TfoCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_request() {
            return f.write_str("TfoCookie(request)");
        }
        f.write_str("TfoCookie(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// RFC 7413 4.1.1: "Cookie: 0, or 4 to 16 bytes (Length - 2)" and "The number [Length] MUST be
/// even". Linux (`tcp_parse_fastopen_option`) ignores an odd or out-of-range cookie instead of
/// rejecting the segment; see the module docs on strictness.
fn check_cookie_len(len: usize) -> Result<()> {
    if len == 0
        || ((FAST_OPEN_COOKIE_MIN_LEN..=FAST_OPEN_COOKIE_MAX_LEN).contains(&len) && len % 2 == 0)
    {
        Ok(())
    } else {
        Err(Error::BadOption)
    }
}

/// One TCP option, as read from or written to a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of Option List (kind 0): what follows is padding.
    EndOfList,
    /// No-Operation (kind 1): padding between options.
    NoOperation,
    /// Maximum Segment Size (kind 2, length 4): the largest segment the sender can receive.
    MaxSegmentSize(u16),
    /// Window Scale (kind 3, length 3): the shift count as received, not clamped here
    /// ([`super::tcp::Repr::parse`] clamps it to [`MAX_WINDOW_SCALE`]).
    WindowScale(u8),
    /// SACK-Permitted (kind 4, length 2).
    SackPermitted,
    /// SACK (kind 5, length 2 + 8n, n = 1..=4).
    SackRange(SackBlocks),
    /// Timestamps (kind 8, length 10): TSval and TSecr (RFC 7323 3.2).
    Timestamps {
        /// Timestamp Value: the sender's timestamp clock.
        tsval: u32,
        /// Timestamp Echo Reply: the latest TSval received from the peer.
        tsecr: u32,
    },
    /// TCP Fast Open cookie (kind 34, or kind 254 with magic `0xF989`); empty = cookie request.
    /// Always emitted as kind 34.
    FastOpenCookie(&'a [u8]),
    /// Any other kind, skipped by its length (RFC 9293 3.2). `data` excludes kind and length.
    /// Emitting kinds that have a variant above through `Unknown` is the caller's business.
    Unknown {
        /// The option kind.
        kind: u8,
        /// The option data after the kind and length bytes.
        data: &'a [u8],
    },
}

impl<'a> TcpOption<'a> {
    /// Reads the option at the start of `bytes` and returns it with the number of bytes it
    /// occupies. Empty input is [`Error::Truncated`]; a malformed option is
    /// [`Error::BadOption`]. Nothing past the option's own length is looked at.
    pub fn parse(bytes: &'a [u8]) -> Result<(TcpOption<'a>, usize)> {
        let Some(&kind) = bytes.first() else {
            return Err(Error::Truncated);
        };
        // RFC 9293 3.1 (Options): "Case 1: A single octet of option-kind." Only EOL and NOP.
        match kind {
            kind::END_OF_LIST => return Ok((TcpOption::EndOfList, 1)),
            kind::NO_OPERATION => return Ok((TcpOption::NoOperation, 1)),
            _ => {}
        }
        // RFC 9293 3.1 (Options): "Case 2: An octet of option-kind (Kind), an octet of
        // option-length, and the actual option-data octets. The option-length counts the two
        // octets of option-kind and option-length as well as the option-data octets."
        let len = usize::from(*bytes.get(1).ok_or(Error::BadOption)?);
        if len < KIND_LEN {
            // RFC 9293 3.2 (MUST-7): illegal option length (e.g., zero).
            return Err(Error::BadOption);
        }
        // An option running past the option area.
        let data = bytes.get(KIND_LEN..len).ok_or(Error::BadOption)?;
        let option = match kind {
            // RFC 9293 3.2: MSS "Length: 4 bytes".
            kind::MAX_SEGMENT_SIZE => {
                let d: [u8; MSS_LEN - KIND_LEN] = data.try_into().map_err(|_| Error::BadOption)?;
                TcpOption::MaxSegmentSize(u16::from_be_bytes(d))
            }
            // RFC 7323 2.2: "Kind: 3 Length: 3 bytes".
            kind::WINDOW_SCALE => {
                let [shift]: [u8; WINDOW_SCALE_LEN - KIND_LEN] =
                    data.try_into().map_err(|_| Error::BadOption)?;
                TcpOption::WindowScale(shift)
            }
            // RFC 2018 2: "Kind: 4 Length: 2".
            kind::SACK_PERMITTED => {
                if len != SACK_PERMITTED_LEN {
                    return Err(Error::BadOption);
                }
                TcpOption::SackPermitted
            }
            // RFC 2018 3: "Kind: 5 Length: Variable", 8*n+2 bytes, at most 4 blocks.
            kind::SACK => {
                let n = data.len() / SACK_BLOCK_LEN;
                if data.is_empty() || data.len() % SACK_BLOCK_LEN != 0 || n > MAX_SACK_BLOCKS {
                    return Err(Error::BadOption);
                }
                let mut blocks = SackBlocks::new();
                for chunk in data.chunks_exact(SACK_BLOCK_LEN) {
                    let (l, r) = chunk.split_at(4);
                    let left = u32::from_be_bytes(l.try_into().map_err(|_| Error::BadOption)?);
                    let right = u32::from_be_bytes(r.try_into().map_err(|_| Error::BadOption)?);
                    blocks
                        .push(SackBlock { left, right })
                        .map_err(|_| Error::BadOption)?;
                }
                TcpOption::SackRange(blocks)
            }
            // RFC 7323 3.2: "Kind: 8 Length: 10 bytes".
            kind::TIMESTAMPS => {
                let d: [u8; TIMESTAMPS_LEN - KIND_LEN] =
                    data.try_into().map_err(|_| Error::BadOption)?;
                let [a, b, c, e, f, g, h, i] = d;
                TcpOption::Timestamps {
                    tsval: u32::from_be_bytes([a, b, c, e]),
                    tsecr: u32::from_be_bytes([f, g, h, i]),
                }
            }
            // RFC 7413 4.1.1: "Kind 1 byte: value = 34", cookie 0 or 4 to 16 bytes.
            kind::FAST_OPEN => {
                check_cookie_len(data.len())?;
                TcpOption::FastOpenCookie(data)
            }
            // Linux (tcp_parse_options, TCPOPT_EXP) also accepts Fast Open in the experimental
            // encoding of RFC 6994: kind 254, length >= 4, ExID 0xF989, then the cookie. We do
            // the same. Other experiments under kind 254 are unknown options.
            kind::EXPERIMENTAL
                if len >= FAST_OPEN_EXP_BASE_LEN
                    && data.get(..2) == Some(&FAST_OPEN_EXP_MAGIC.to_be_bytes()[..]) =>
            {
                let cookie = data.get(2..).unwrap_or(&[]);
                check_cookie_len(cookie.len())?;
                TcpOption::FastOpenCookie(cookie)
            }
            // RFC 9293 3.2 (MUST-6): "A TCP implementation MUST ignore without error any TCP
            // option it does not implement, assuming that the option has a length field."
            _ => TcpOption::Unknown { kind, data },
        };
        Ok((option, len))
    }

    /// The option kind byte that [`TcpOption::emit`] writes.
    pub fn kind(&self) -> u8 {
        match self {
            TcpOption::EndOfList => kind::END_OF_LIST,
            TcpOption::NoOperation => kind::NO_OPERATION,
            TcpOption::MaxSegmentSize(_) => kind::MAX_SEGMENT_SIZE,
            TcpOption::WindowScale(_) => kind::WINDOW_SCALE,
            TcpOption::SackPermitted => kind::SACK_PERMITTED,
            TcpOption::SackRange(_) => kind::SACK,
            TcpOption::Timestamps { .. } => kind::TIMESTAMPS,
            TcpOption::FastOpenCookie(_) => kind::FAST_OPEN,
            TcpOption::Unknown { kind, .. } => *kind,
        }
    }

    /// Variable data as emitted: longer data is cut to what a one-byte length can describe.
    fn emitted_data(data: &[u8]) -> &[u8] {
        data.get(..usize::from(u8::MAX) - KIND_LEN).unwrap_or(data)
    }

    /// The number of bytes [`TcpOption::emit`] writes. No padding is included.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => MSS_LEN,
            TcpOption::WindowScale(_) => WINDOW_SCALE_LEN,
            TcpOption::SackPermitted => SACK_PERMITTED_LEN,
            TcpOption::SackRange(blocks) => KIND_LEN + SACK_BLOCK_LEN * blocks.len(),
            TcpOption::Timestamps { .. } => TIMESTAMPS_LEN,
            TcpOption::FastOpenCookie(data) | TcpOption::Unknown { data, .. } => {
                KIND_LEN + Self::emitted_data(data).len()
            }
        }
    }

    /// Writes the option at the start of `buf` and returns [`TcpOption::buffer_len`].
    ///
    /// What is written is whatever the value holds: an empty `SackRange` or a 3-byte
    /// `FastOpenCookie` are written as such, and would not parse back. Data longer than 253
    /// bytes is cut to 253 (the most a one-byte length can describe).
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than [`TcpOption::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        buf[0] = self.kind();
        if len > 1 {
            // `len` is at most 255 by construction of `buffer_len`.
            buf[1] = len as u8;
        }
        let data = &mut buf[KIND_LEN.min(len)..];
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::SackPermitted => {}
            TcpOption::MaxSegmentSize(mss) => data.copy_from_slice(&mss.to_be_bytes()),
            TcpOption::WindowScale(shift) => data[0] = *shift,
            TcpOption::SackRange(blocks) => {
                for (chunk, block) in data.chunks_exact_mut(SACK_BLOCK_LEN).zip(blocks) {
                    chunk[..4].copy_from_slice(&block.left.to_be_bytes());
                    chunk[4..].copy_from_slice(&block.right.to_be_bytes());
                }
            }
            TcpOption::Timestamps { tsval, tsecr } => {
                data[..4].copy_from_slice(&tsval.to_be_bytes());
                data[4..].copy_from_slice(&tsecr.to_be_bytes());
            }
            TcpOption::FastOpenCookie(bytes) | TcpOption::Unknown { data: bytes, .. } => {
                data.copy_from_slice(Self::emitted_data(bytes));
            }
        }
        len
    }
}

/// An iterator over the options of a segment's option area, yielding `Result<TcpOption>`.
///
/// Stops after [`TcpOption::EndOfList`] (RFC 9293 3.2: EOL "is used at the end of all options",
/// what follows is padding) and after the first error, so a malformed option is reported
/// exactly once.
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionIter<'a> {
    /// Iterates over `options`: the bytes between the fixed header and the data offset.
    pub const fn new(options: &'a [u8]) -> Self {
        OptionIter { rest: options }
    }

    /// The bytes not yet looked at (empty after EOL or an error).
    pub const fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match TcpOption::parse(self.rest) {
            Ok((TcpOption::EndOfList, _)) => {
                self.rest = &[];
                Some(Ok(TcpOption::EndOfList))
            }
            Ok((option, len)) => {
                self.rest = self.rest.get(len..).unwrap_or(&[]);
                Some(Ok(option))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for OptionIter<'_> {}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(bytes: &[u8]) -> Vec<Result<TcpOption<'_>>> {
        OptionIter::new(bytes).collect()
    }

    fn sack(blocks: &[(u32, u32)]) -> SackBlocks {
        let v: Vec<SackBlock> = blocks
            .iter()
            .map(|&(left, right)| SackBlock { left, right })
            .collect();
        SackBlocks::from_slice(&v).unwrap()
    }

    #[test]
    fn linux_syn_options_parse_in_order() {
        // Linux 6.18 SYN: MSS 1460, SACK-Permitted + Timestamps, NOP, Window Scale 10.
        let opts = [
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x2f, 0xcc, 0x83, 0xf5, 0x00, 0x00,
            0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
        ];
        assert_eq!(
            all(&opts),
            vec![
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamps {
                    tsval: 0x2fcc_83f5,
                    tsecr: 0
                }),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(10)),
            ]
        );
    }

    #[test]
    fn end_of_list_stops_iteration_and_hides_padding() {
        // EOL followed by garbage that would be a malformed option if parsed.
        let opts = [0x01, 0x00, 0x02, 0x00, 0xff];
        assert_eq!(
            all(&opts),
            vec![Ok(TcpOption::NoOperation), Ok(TcpOption::EndOfList)]
        );
    }

    #[test]
    fn empty_option_area_yields_nothing() {
        assert!(all(&[]).is_empty());
        assert_eq!(TcpOption::parse(&[]), Err(Error::Truncated));
    }

    #[test]
    fn unknown_kind_is_skipped_by_its_length() {
        // Kind 30 (MPTCP) with 4 data bytes, then an MSS.
        let opts = [30, 6, 1, 2, 3, 4, 2, 4, 0x05, 0xb4];
        assert_eq!(
            all(&opts),
            vec![
                Ok(TcpOption::Unknown {
                    kind: 30,
                    data: &[1, 2, 3, 4]
                }),
                Ok(TcpOption::MaxSegmentSize(1460)),
            ]
        );
    }

    #[test]
    fn unknown_kind_with_minimal_length_has_no_data() {
        assert_eq!(
            all(&[99, 2]),
            vec![Ok(TcpOption::Unknown {
                kind: 99,
                data: &[]
            })]
        );
    }

    #[test]
    fn zero_length_is_bad_and_ends_iteration() {
        assert_eq!(
            all(&[99, 0, 1, 1]),
            vec![Err(Error::BadOption)],
            "no NOPs after the error"
        );
    }

    #[test]
    fn length_one_is_bad() {
        assert_eq!(all(&[2, 1, 0, 0]), vec![Err(Error::BadOption)]);
        assert_eq!(all(&[99, 1]), vec![Err(Error::BadOption)]);
    }

    #[test]
    fn kind_without_length_byte_is_bad() {
        assert_eq!(
            all(&[1, 1, 8]),
            vec![
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::NoOperation),
                Err(Error::BadOption)
            ]
        );
    }

    #[test]
    fn length_running_past_the_area_is_bad() {
        assert_eq!(all(&[8, 10, 0, 0, 0, 0]), vec![Err(Error::BadOption)]);
        assert_eq!(all(&[99, 5, 0, 0]), vec![Err(Error::BadOption)]);
    }

    #[test]
    fn wrong_fixed_lengths_are_bad() {
        for opts in [
            &[2u8, 3, 0][..],                        // MSS len 3
            &[2, 5, 0, 0, 0][..],                    // MSS len 5
            &[3, 2][..],                             // WS len 2
            &[3, 4, 7, 0][..],                       // WS len 4
            &[4, 3, 0][..],                          // SACK-perm len 3
            &[8, 9, 0, 0, 0, 0, 0, 0, 0][..],        // TS len 9
            &[8, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], // TS len 11
        ] {
            assert_eq!(all(opts), vec![Err(Error::BadOption)], "{opts:?}");
        }
    }

    #[test]
    fn sack_lengths_other_than_2_plus_8n_are_bad() {
        let mut buf = [0u8; 40];
        buf[0] = kind::SACK;
        for len in 2..=40u8 {
            buf[1] = len;
            let ok = len >= 10 && (len - 2) % 8 == 0;
            let got = TcpOption::parse(&buf[..usize::from(len)]);
            assert_eq!(got.is_ok(), ok, "SACK len {len}");
        }
        // Five blocks (len 42) do not fit in 40 bytes of options, but are refused on their own.
        let mut big = [0u8; 42];
        big[0] = kind::SACK;
        big[1] = 42;
        assert_eq!(TcpOption::parse(&big), Err(Error::BadOption));
    }

    #[test]
    fn sack_len_9_is_bad() {
        assert_eq!(
            all(&[5, 9, 0, 0, 0, 1, 0, 0, 0]),
            vec![Err(Error::BadOption)]
        );
    }

    #[test]
    fn sack_blocks_keep_wire_order() {
        // From a Linux 6.18 ACK: NOP NOP SACK with 3 blocks, most recent first.
        let opts = [
            0x01, 0x01, 0x05, 0x1a, 0x10, 0x00, 0x01, 0xf5, 0x10, 0x00, 0x02, 0x59, 0x10, 0x00,
            0x01, 0x2d, 0x10, 0x00, 0x01, 0x91, 0x10, 0x00, 0x00, 0x65, 0x10, 0x00, 0x00, 0xc9,
        ];
        let got = all(&opts);
        assert_eq!(
            got[2],
            Ok(TcpOption::SackRange(sack(&[
                (0x1000_01f5, 0x1000_0259),
                (0x1000_012d, 0x1000_0191),
                (0x1000_0065, 0x1000_00c9),
            ])))
        );
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn fast_open_cookie_request_and_cookie() {
        assert_eq!(
            all(&[34, 2, 1, 1]),
            vec![
                Ok(TcpOption::FastOpenCookie(&[])),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::NoOperation)
            ]
        );
        let opts = [34, 10, 0x7a, 0x7d, 0xcb, 0x00, 0x19, 0x4d, 0x71, 0x8d];
        assert_eq!(all(&opts), vec![Ok(TcpOption::FastOpenCookie(&opts[2..]))]);
    }

    #[test]
    fn fast_open_cookie_lengths_outside_rfc7413_are_bad() {
        let mut buf = [0u8; 20];
        buf[0] = kind::FAST_OPEN;
        for cookie in 0..=18usize {
            buf[1] = (cookie + 2) as u8;
            let ok = cookie == 0 || ((4..=16).contains(&cookie) && cookie % 2 == 0);
            assert_eq!(
                TcpOption::parse(&buf[..cookie + 2]).is_ok(),
                ok,
                "cookie of {cookie} bytes"
            );
        }
    }

    #[test]
    fn fast_open_cookie_len_3_and_17_are_bad() {
        assert_eq!(all(&[34, 5, 1, 2, 3]), vec![Err(Error::BadOption)]);
        let mut big = [0u8; 19];
        big[0] = 34;
        big[1] = 19;
        assert_eq!(all(&big), vec![Err(Error::BadOption)]);
    }

    #[test]
    fn experimental_fast_open_is_read_like_linux() {
        // Kind 254, len 12, magic f989, 8-byte cookie.
        let opts = [254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            all(&opts),
            vec![Ok(TcpOption::FastOpenCookie(&[1, 2, 3, 4, 5, 6, 7, 8]))]
        );
        // Cookie request in the experimental encoding.
        assert_eq!(
            all(&[254, 4, 0xf9, 0x89]),
            vec![Ok(TcpOption::FastOpenCookie(&[]))]
        );
        // A bad cookie length in the experimental encoding is as bad as in kind 34.
        assert_eq!(
            all(&[254, 6, 0xf9, 0x89, 1, 2]),
            vec![Err(Error::BadOption)]
        );
    }

    #[test]
    fn other_experiments_are_unknown() {
        // RFC 6994 ExID other than Fast Open's, and kind 254 too short to carry an ExID.
        assert_eq!(
            all(&[254, 4, 0x12, 0x34]),
            vec![Ok(TcpOption::Unknown {
                kind: 254,
                data: &[0x12, 0x34]
            })]
        );
        assert_eq!(
            all(&[254, 3, 0xf9]),
            vec![Ok(TcpOption::Unknown {
                kind: 254,
                data: &[0xf9]
            })]
        );
    }

    #[test]
    fn window_scale_is_reported_unclamped() {
        assert_eq!(all(&[3, 3, 200]), vec![Ok(TcpOption::WindowScale(200))]);
    }

    #[test]
    fn emit_writes_known_layouts() {
        let mut buf = [0u8; 40];
        let n = TcpOption::MaxSegmentSize(1460).emit(&mut buf);
        assert_eq!(&buf[..n], &[2, 4, 0x05, 0xb4]);
        let n = TcpOption::WindowScale(7).emit(&mut buf);
        assert_eq!(&buf[..n], &[3, 3, 7]);
        let n = TcpOption::SackPermitted.emit(&mut buf);
        assert_eq!(&buf[..n], &[4, 2]);
        let n = TcpOption::Timestamps {
            tsval: 0x0102_0304,
            tsecr: 0x0506_0708,
        }
        .emit(&mut buf);
        assert_eq!(&buf[..n], &[8, 10, 1, 2, 3, 4, 5, 6, 7, 8]);
        let n = TcpOption::SackRange(sack(&[(1, 2)])).emit(&mut buf);
        assert_eq!(&buf[..n], &[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        let n = TcpOption::FastOpenCookie(&[]).emit(&mut buf);
        assert_eq!(&buf[..n], &[34, 2]);
        let n = TcpOption::NoOperation.emit(&mut buf);
        assert_eq!(&buf[..n], &[1]);
        let n = TcpOption::EndOfList.emit(&mut buf);
        assert_eq!(&buf[..n], &[0]);
    }

    #[test]
    fn emit_cuts_oversized_data_to_a_valid_length() {
        let data = [7u8; 300];
        let opt = TcpOption::Unknown {
            kind: 99,
            data: &data,
        };
        assert_eq!(opt.buffer_len(), 255);
        let mut buf = [0u8; 300];
        assert_eq!(opt.emit(&mut buf), 255);
        assert_eq!(buf[1], 255);
        let (back, len) = TcpOption::parse(&buf).unwrap();
        assert_eq!(len, 255);
        assert_eq!(
            back,
            TcpOption::Unknown {
                kind: 99,
                data: &data[..253]
            }
        );
    }

    #[test]
    fn sack_blocks_hold_at_most_four() {
        let mut s = SackBlocks::new();
        for i in 0..4 {
            s.push(SackBlock {
                left: i,
                right: i + 1,
            })
            .unwrap();
        }
        assert!(s.is_full());
        assert_eq!(s.push(SackBlock::default()), Err(SackBlock::default()));
        assert_eq!(s.len(), 4);
        s.truncate(2);
        assert_eq!(
            s.as_slice(),
            &[
                SackBlock { left: 0, right: 1 },
                SackBlock { left: 1, right: 2 }
            ]
        );
        s.truncate(9);
        assert_eq!(s.len(), 2);
        assert!(SackBlocks::from_slice(&[SackBlock::default(); 5]).is_none());
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn sack_blocks_equality_ignores_unused_slots() {
        let mut a = sack(&[(1, 2), (3, 4)]);
        a.truncate(1);
        assert_eq!(a, sack(&[(1, 2)]));
    }

    #[test]
    fn tfo_cookie_accepts_only_rfc7413_lengths() {
        for len in 0..=20usize {
            let ok = len == 0 || ((4..=16).contains(&len) && len % 2 == 0);
            assert_eq!(TfoCookie::new(&[0xab; 20][..len]).is_ok(), ok, "{len}");
        }
        assert!(TfoCookie::new(&[]).unwrap().is_request());
        let c = TfoCookie::new(&[1, 2, 3, 4]).unwrap();
        assert_eq!(c.as_bytes(), &[1, 2, 3, 4]);
        assert_eq!(format!("{c:?}"), "TfoCookie(01020304)");
        assert_eq!(format!("{:?}", TfoCookie::REQUEST), "TfoCookie(request)");
    }

    fn arb_option() -> impl Strategy<Value = (u8, Vec<u8>, Vec<(u32, u32)>, u32, u32)> {
        (
            0u8..9,
            proptest::collection::vec(any::<u8>(), 0..=16),
            proptest::collection::vec(any::<(u32, u32)>(), 1..=4),
            any::<u32>(),
            any::<u32>(),
        )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_iteration_ends(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut consumed = 0;
            let mut it = OptionIter::new(&bytes);
            let mut steps = 0;
            while let Some(item) = it.next() {
                steps += 1;
                prop_assert!(steps <= bytes.len(), "each item consumes at least a byte");
                if let Ok(opt) = item {
                    consumed += opt.buffer_len();
                    prop_assert!(consumed <= bytes.len() || matches!(opt, TcpOption::EndOfList));
                } else {
                    prop_assert!(it.rest().is_empty());
                    prop_assert!(it.next().is_none());
                    break;
                }
            }
            let _ = TcpOption::parse(&bytes);
        }

        #[test]
        fn valid_options_round_trip((which, data, blocks, a, b) in arb_option()) {
            let blocks: Vec<SackBlock> = blocks.into_iter().map(|(left, right)| SackBlock { left, right }).collect();
            let cookie_len = match data.len() { 0 => 0, n if n < 4 => 4, n => n & !1 };
            let cookie = [0x5au8; 16];
            let option = match which {
                0 => TcpOption::NoOperation,
                1 => TcpOption::MaxSegmentSize(a as u16),
                2 => TcpOption::WindowScale(a as u8),
                3 => TcpOption::SackPermitted,
                4 => TcpOption::SackRange(SackBlocks::from_slice(&blocks).unwrap()),
                5 => TcpOption::Timestamps { tsval: a, tsecr: b },
                6 => TcpOption::FastOpenCookie(&cookie[..cookie_len]),
                7 => TcpOption::Unknown { kind: 100 + (a % 100) as u8, data: &data },
                _ => TcpOption::EndOfList,
            };
            let mut buf = [0u8; 64];
            let n = option.emit(&mut buf);
            prop_assert_eq!(n, option.buffer_len());
            let (back, len) = TcpOption::parse(&buf[..n]).unwrap();
            prop_assert_eq!(len, n);
            prop_assert_eq!(back, option);
        }
    }
}
