//! The TCP header (RFC 9293 3.1): a zero-copy [`Segment`] view, [`Flags`], and a plain [`Repr`]
//! with the options this stack speaks (MSS, window scale, SACK, timestamps, Fast Open).
//!
//! Sequence and acknowledgment numbers stay raw `u32` here; the TCP layer wraps them in its own
//! wrap-aware sequence-number type.
//!
//! Transmit without copying payload: write the payload at `repr.header_len()` in the segment
//! buffer (or into [`Segment::payload_mut`] once the data offset is set), then call
//! [`Repr::emit_header`], which writes header and options and checksums the whole buffer.
//! [`Repr::emit`] does the same after copying `repr.payload` in.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |     |A|C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrv|E|W|C|R|C|S|S|Y|I|            Window             |
//! |       |     | |R|E|G|K|H|T|N|N|                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           [Options]                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

use super::checksum;
use super::tcp_option::{
    MAX_OPTIONS_LEN, MAX_WINDOW_SCALE, OptionIter, SackBlocks, TcpOption, TfoCookie,
};
use super::{ChecksumMode, Error, Ipv4Addr, Result, read_u16, read_u32, write_u16, write_u32};

/// Length of the fixed header: a data offset of 5 words (RFC 9293 3.1).
pub const HEADER_LEN: usize = 20;

/// Longest header: a data offset of 15 words (RFC 9293 3.1).
pub const MAX_HEADER_LEN: usize = 60;

/// The IP protocol number of TCP, for the pseudo-header.
const PROTOCOL_TCP: u8 = 6;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (high nibble of byte 12) and the 12 bits of reserved + control bits.
    pub const OFFSET_FLAGS: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// The control bits of a TCP header (RFC 9293 3.1, RFC 3168 6.1, RFC 9768 for AE).
///
/// Bits are numbered as in the 16-bit word that holds data offset and flags, so `bits()` of a
/// header's flags is that word masked with `0x01ff`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

impl Flags {
    /// FIN: "No more data from sender."
    pub const FIN: Flags = Flags(0x001);
    /// SYN: "Synchronize sequence numbers."
    pub const SYN: Flags = Flags(0x002);
    /// RST: "Reset the connection."
    pub const RST: Flags = Flags(0x004);
    /// PSH: "Push function."
    pub const PSH: Flags = Flags(0x008);
    /// ACK: "Acknowledgment field is significant."
    pub const ACK: Flags = Flags(0x010);
    /// URG: "Urgent pointer field is significant."
    pub const URG: Flags = Flags(0x020);
    /// ECE: ECN-Echo (RFC 3168 6.1).
    pub const ECE: Flags = Flags(0x040);
    /// CWR: Congestion Window Reduced (RFC 3168 6.1).
    pub const CWR: Flags = Flags(0x080);
    /// AE: Accurate ECN (RFC 9768), the bit that RFC 3540 called NS (now historic).
    pub const AE: Flags = Flags(0x100);

    /// Every bit this type knows.
    const ALL: u16 = 0x1ff;

    /// No bit set.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// The bits in `bits` that name a flag; reserved bits are dropped.
    pub const fn from_bits_truncate(bits: u16) -> Flags {
        Flags(bits & Self::ALL)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// True if no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True if every flag of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any flag of `other` is set in `self`.
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    /// The flags of both.
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// `self` without the flags of `other`.
    pub const fn difference(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// Sets or clears the flags of `other`.
    pub fn set(&mut self, other: Flags, value: bool) {
        if value {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }

    /// FIN is set.
    pub const fn fin(self) -> bool {
        self.contains(Flags::FIN)
    }
    /// SYN is set.
    pub const fn syn(self) -> bool {
        self.contains(Flags::SYN)
    }
    /// RST is set.
    pub const fn rst(self) -> bool {
        self.contains(Flags::RST)
    }
    /// PSH is set.
    pub const fn psh(self) -> bool {
        self.contains(Flags::PSH)
    }
    /// ACK is set.
    pub const fn ack(self) -> bool {
        self.contains(Flags::ACK)
    }
    /// URG is set.
    pub const fn urg(self) -> bool {
        self.contains(Flags::URG)
    }
    /// ECE is set.
    pub const fn ece(self) -> bool {
        self.contains(Flags::ECE)
    }
    /// CWR is set.
    pub const fn cwr(self) -> bool {
        self.contains(Flags::CWR)
    }
    /// AE (formerly NS) is set.
    pub const fn ae(self) -> bool {
        self.contains(Flags::AE)
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Flags {
    type Output = Flags;
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
    }
}

impl Not for Flags {
    type Output = Flags;
    fn not(self) -> Flags {
        Flags(!self.0 & Self::ALL)
    }
}

impl fmt::Debug for Flags {
    /// Like tcpdump's names, joined with `|`: `SYN|ACK`; `(empty)` when no flag is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Flags, &str); 9] = [
            (Flags::FIN, "FIN"),
            (Flags::SYN, "SYN"),
            (Flags::RST, "RST"),
            (Flags::PSH, "PSH"),
            (Flags::ACK, "ACK"),
            (Flags::URG, "URG"),
            (Flags::ECE, "ECE"),
            (Flags::CWR, "CWR"),
            (Flags::AE, "AE"),
        ];
        if self.is_empty() {
            return f.write_str("(empty)");
        }
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A view of a TCP segment (header, options and payload) in a buffer.
///
/// The buffer is the whole segment: its length is the TCP length of the pseudo-header, so slice
/// it by the IP total length before wrapping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Segment<T> {
    /// Wraps `buffer` without checking its length; for emitting into a buffer sized by
    /// [`Repr::buffer_len`]. Fixed-field accessors panic if the buffer is shorter than
    /// [`HEADER_LEN`]; `options`/`payload` never do.
    pub const fn new_unchecked(buffer: T) -> Segment<T> {
        Segment { buffer }
    }

    /// Wraps `buffer` after [`Segment::check_len`]: after this no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Segment<T>> {
        let segment = Segment::new_unchecked(buffer);
        segment.check_len()?;
        Ok(segment)
    }

    /// RFC 9293 3.1: the buffer holds the fixed header (else [`Error::Truncated`]); "Data Offset
    /// (DOffset): 4 bits. The number of 32-bit words in the TCP header" is at least 5 (else
    /// [`Error::BadHeaderLen`]) and the header fits in the buffer (else [`Error::Truncated`]).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            Err(Error::BadHeaderLen)
        } else if header_len > len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole segment, as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.data(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.data(), field::DST_PORT.start)
    }

    /// Sequence number, raw.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.data(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number, raw. Meaningful only when [`Segment::ack`] is set.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.data(), field::ACK_NUM.start)
    }

    /// The header length in bytes, options included: the data offset times four, as written
    /// (after [`Segment::new_checked`] it is between 20 and the buffer length).
    pub fn header_len(&self) -> usize {
        // `get`: this is also what `options`/`payload` use, which must not panic even on an
        // unchecked buffer shorter than the fixed header.
        self.data()
            .get(field::OFFSET_FLAGS.start)
            .map_or(0, |&byte| usize::from(byte >> 4) * 4)
    }

    /// The control bits. The three reserved bits are not included: RFC 9293 3.1 says they
    /// "must be ignored in received segments if the corresponding future features are not
    /// implemented".
    pub fn flags(&self) -> Flags {
        Flags::from_bits_truncate(read_u16(self.data(), field::OFFSET_FLAGS.start))
    }

    /// FIN is set.
    pub fn fin(&self) -> bool {
        self.flags().fin()
    }
    /// SYN is set.
    pub fn syn(&self) -> bool {
        self.flags().syn()
    }
    /// RST is set.
    pub fn rst(&self) -> bool {
        self.flags().rst()
    }
    /// PSH is set.
    pub fn psh(&self) -> bool {
        self.flags().psh()
    }
    /// ACK is set.
    pub fn ack(&self) -> bool {
        self.flags().ack()
    }
    /// URG is set.
    pub fn urg(&self) -> bool {
        self.flags().urg()
    }
    /// ECE is set.
    pub fn ece(&self) -> bool {
        self.flags().ece()
    }
    /// CWR is set.
    pub fn cwr(&self) -> bool {
        self.flags().cwr()
    }
    /// AE (formerly NS) is set.
    pub fn ae(&self) -> bool {
        self.flags().ae()
    }

    /// The window field as sent: not scaled.
    pub fn window_len(&self) -> u16 {
        read_u16(self.data(), field::WINDOW.start)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.data(), field::CHECKSUM.start)
    }

    /// The urgent pointer field (an offset from the sequence number; meaningful with URG).
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.data(), field::URGENT.start)
    }

    /// Where the header ends, clamped into the buffer whatever the data offset says.
    fn header_end(&self) -> usize {
        let len = self.data().len();
        self.header_len().clamp(HEADER_LEN.min(len), len)
    }

    /// The option bytes (between the fixed header and the data offset).
    pub fn options(&self) -> &[u8] {
        let end = self.header_end();
        self.data().get(HEADER_LEN.min(end)..end).unwrap_or(&[])
    }

    /// An iterator over the options.
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.options())
    }

    /// The payload: everything after the header.
    pub fn payload(&self) -> &[u8] {
        self.data().get(self.header_end()..).unwrap_or(&[])
    }

    /// RFC 9293 3.1: "The checksum field is the 16-bit ones' complement of the ones' complement
    /// sum of all 16-bit words in the header and text", over a pseudo-header of source and
    /// destination address, zero, protocol 6 and the TCP length. True if it verifies.
    /// A buffer longer than 65535 bytes cannot be an IPv4 segment and never verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let Ok(len) = u16::try_from(self.data().len()) else {
            return false;
        };
        checksum::pseudo_header(src, dst, PROTOCOL_TCP, len)
            .add_bytes(self.data())
            .verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Segment<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.data_mut(), field::SRC_PORT.start, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.data_mut(), field::DST_PORT.start, value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.data_mut(), field::SEQ_NUM.start, value);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.data_mut(), field::ACK_NUM.start, value);
    }

    /// Sets the data offset from a header length in bytes (rounded down to words, at most 60).
    /// The control bits are left alone.
    pub fn set_header_len(&mut self, len: usize) {
        // The data offset is 4 bits: at most 15 words.
        let words = (len.min(MAX_HEADER_LEN) / 4) as u8;
        let byte = &mut self.data_mut()[field::OFFSET_FLAGS.start];
        *byte = (words << 4) | (*byte & 0x0f);
    }

    /// Sets the control bits; the reserved bits are cleared (RFC 9293 3.1: "Must be zero in
    /// generated segments") and the data offset is left alone.
    pub fn set_flags(&mut self, flags: Flags) {
        let at = field::OFFSET_FLAGS.start;
        let offset = read_u16(self.data(), at) & 0xf000;
        write_u16(self.data_mut(), at, offset | flags.bits());
    }

    /// Sets the window field (already scaled down by the sender's shift).
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.data_mut(), field::WINDOW.start, value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.data_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.data_mut(), field::URGENT.start, value);
    }

    /// The option bytes, writable (as long as the data offset says, clamped to the buffer).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_end();
        self.data_mut()
            .get_mut(HEADER_LEN.min(end)..end)
            .unwrap_or(&mut [])
    }

    /// The payload, writable: everything after the header as the data offset says.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_end();
        self.data_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes and writes the checksum over pseudo-header, header and payload
    /// (RFC 9293 3.1; "the checksum field itself is replaced with zeros" while computing).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        // A longer buffer cannot be an IPv4 segment; its length is cut, and so is the sum's
        // meaning, but nothing panics.
        let len = self.data().len() as u16;
        let sum = checksum::pseudo_header(src, dst, PROTOCOL_TCP, len)
            .add_bytes(self.data())
            .finish();
        self.set_checksum(sum);
    }

    /// Writes the pseudo-header sum, not complemented, into the checksum field: what a NIC doing
    /// partial checksum offload expects (it sums from the TCP header on and stores the
    /// complement). Linux does the same (`tcp_v4_send_check` with `CHECKSUM_PARTIAL`).
    pub fn fill_checksum_offload(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.data().len() as u16;
        let sum = checksum::pseudo_header(src, dst, PROTOCOL_TCP, len).sum();
        self.set_checksum(sum);
    }

    /// [`Segment::fill_checksum`] or [`Segment::fill_checksum_offload`], per `mode`.
    pub fn fill_checksum_with(&mut self, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) {
        match mode {
            ChecksumMode::Software => self.fill_checksum(src, dst),
            ChecksumMode::Offloaded => self.fill_checksum_offload(src, dst),
        }
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Segment<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The Timestamps option's two values (RFC 7323 3.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpTimestamp {
    /// Timestamp Value: the sender's timestamp clock when it sent the segment.
    pub tsval: u32,
    /// Timestamp Echo Reply: the TSval being echoed (valid when ACK is set).
    pub tsecr: u32,
}

/// A TCP segment's fields as plain values.
///
/// `flags` never holds ACK: `ack_number` is `Some` exactly when ACK is set, so the two cannot
/// disagree. [`Repr::parse`] clears ACK from `flags`; [`Repr::emit`] ignores it there and sets
/// it from `ack_number`. Every other control bit (SYN, FIN, RST, PSH, URG, ECE, CWR, AE) is in
/// `flags` as on the wire, combinations included: what to do with SYN|FIN or SYN|RST is the
/// state machine's call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number; `Some` iff the ACK bit is set.
    pub ack_number: Option<u32>,
    /// Control bits other than ACK.
    pub flags: Flags,
    /// The window field, unscaled.
    pub window_len: u16,
    /// The urgent pointer field, sent and received as is.
    pub urgent_at: u16,
    /// The Maximum Segment Size option.
    pub max_seg_size: Option<u16>,
    /// The Window Scale option's shift, at most 14.
    pub window_scale: Option<u8>,
    /// The SACK-Permitted option.
    pub sack_permitted: bool,
    /// SACK blocks, first block first. On emit, blocks that do not fit are dropped from the end
    /// (see [`Repr::sack_blocks_emitted`]).
    pub sack_ranges: SackBlocks,
    /// The Timestamps option.
    pub timestamp: Option<TcpTimestamp>,
    /// The Fast Open option: a cookie, or an empty cookie for a cookie request.
    pub fast_open: Option<TfoCookie>,
    /// The payload.
    pub payload: &'a [u8],
}

/// Kind, length and padding overhead of the options as Linux lays them out.
const MSS_SPACE: usize = 4; // MSS
const TIMESTAMPS_SPACE: usize = 12; // NOP NOP TS, or SACK-perm TS
const SACK_PERMITTED_SPACE: usize = 4; // NOP NOP SACK-perm
const WINDOW_SCALE_SPACE: usize = 4; // NOP WS
const SACK_BASE_SPACE: usize = 4; // NOP NOP kind len
const SACK_BLOCK_SPACE: usize = 8;

impl<'a> Repr<'a> {
    /// Reads a segment: verifies the checksum when `mode` is [`ChecksumMode::Software`]
    /// ([`Error::BadChecksum`]), then the options ([`Error::BadOption`] on a malformed one).
    ///
    /// - A window scale above 14 reads as 14 (RFC 7323 2.3: "If a Window Scale option is
    ///   received with a shift.cnt value larger than 14, the TCP SHOULD log the error but MUST
    ///   use 14 instead of the specified value"); Linux does the same in `tcp_parse_options`.
    /// - An option that appears twice: the last one wins, as in Linux's `tcp_parse_options`,
    ///   which overwrites as it goes.
    /// - Unknown options are skipped (RFC 9293 3.2, MUST-6).
    /// - MSS, window scale and SACK-Permitted are reported whatever the flags; Linux reads them
    ///   only on SYNs, and the state machine decides the same.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        segment: &Segment<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) -> Result<Repr<'a>> {
        segment.check_len()?;
        // RFC 9293 3.1: receivers check the checksum (MUST-3). Like Linux `tcp_v4_rcv`, check it
        // before believing anything else in the segment; NIC-verified frames skip this.
        if mode == ChecksumMode::Software && !segment.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(segment.buffer);
        let header_len = segment.header_len();
        let options = bytes.get(HEADER_LEN..header_len).ok_or(Error::Truncated)?;
        let payload = bytes.get(header_len..).ok_or(Error::Truncated)?;

        let flags = segment.flags();
        let mut repr = Repr {
            src_port: segment.src_port(),
            dst_port: segment.dst_port(),
            seq_number: segment.seq_number(),
            // RFC 9293 3.1: "If the ACK control bit is set, this field contains the value of
            // the next sequence number the sender of the segment is expecting to receive."
            ack_number: flags.ack().then(|| segment.ack_number()),
            flags: flags.difference(Flags::ACK),
            window_len: segment.window_len(),
            urgent_at: segment.urgent_at(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: SackBlocks::new(),
            timestamp: None,
            fast_open: None,
            payload,
        };
        // Linux `tcp_fast_parse_options`: the option area of nearly every segment of an
        // established connection is exactly NOP, NOP, Timestamps; read it without the loop.
        match aligned_timestamp(options) {
            Some(ts) => repr.timestamp = Some(ts),
            None => repr.apply_options(options)?,
        }
        Ok(repr)
    }

    /// Sets the fields of the options in `options` (an option area), or names the first
    /// malformed one.
    fn apply_options(&mut self, options: &'a [u8]) -> Result<()> {
        for option in OptionIter::new(options) {
            match option? {
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(mss) => self.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => {
                    self.window_scale = Some(shift.min(MAX_WINDOW_SCALE));
                }
                TcpOption::SackPermitted => self.sack_permitted = true,
                TcpOption::SackRange(blocks) => self.sack_ranges = blocks,
                TcpOption::Timestamps { tsval, tsecr } => {
                    self.timestamp = Some(TcpTimestamp { tsval, tsecr });
                }
                TcpOption::FastOpenCookie(cookie) => self.fast_open = Some(TfoCookie::new(cookie)?),
            }
        }
        Ok(())
    }

    /// Option bytes of everything but the SACK blocks, as laid out by [`Repr::emit_header`].
    /// At most 4 + 12 + 4 + 20 = 40, so these options always fit.
    fn fixed_options_len(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += MSS_SPACE;
        }
        if self.timestamp.is_some() {
            len += TIMESTAMPS_SPACE;
        } else if self.sack_permitted {
            len += SACK_PERMITTED_SPACE;
        }
        if self.window_scale.is_some() {
            len += WINDOW_SCALE_SPACE;
        }
        if let Some(cookie) = self.fast_open {
            len += (2 + cookie.as_bytes().len()).next_multiple_of(4);
        }
        len
    }

    /// How many of `sack_ranges` [`Repr::emit_header`] writes: as many as fit in the 40 bytes
    /// of option space after the other options, counted from the first block. With timestamps
    /// that is at most 3 blocks, as Linux sends (`tcp_established_options`); without, 4.
    pub fn sack_blocks_emitted(&self) -> usize {
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_options_len() + SACK_BASE_SPACE);
        self.sack_ranges.len().min(room / SACK_BLOCK_SPACE)
    }

    /// The length of the option area [`Repr::emit_header`] writes, a multiple of 4, at most 40.
    pub fn options_len(&self) -> usize {
        let blocks = self.sack_blocks_emitted();
        let sack = if blocks > 0 {
            SACK_BASE_SPACE + blocks * SACK_BLOCK_SPACE
        } else {
            0
        };
        self.fixed_options_len() + sack
    }

    /// Header length with options: 20 to 60 bytes, a multiple of 4.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Header and payload: the length of the buffer [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// The sequence space the segment occupies: payload length, plus one for SYN, plus one for
    /// FIN (RFC 9293 3.4: "SEG.LEN = the number of octets occupied by the data in the segment
    /// (counting SYN and FIN)").
    pub fn segment_len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// Writes header and options, then the checksum (per `mode`) over header and *whatever the
    /// buffer holds after the header*: `self.payload` is not looked at. For zero-copy transmit,
    /// put the payload at `header_len()` in the buffer before calling this, or call
    /// [`Segment::fill_checksum_with`] after writing it.
    ///
    /// The view's buffer is the whole segment; the payload length is the buffer length minus
    /// `header_len()`. Options are laid out as Linux's `tcp_options_write` does, so that our
    /// segments look like Linux's: MSS; SACK-Permitted+Timestamps (or NOP NOP Timestamps, or
    /// NOP NOP SACK-Permitted); NOP Window Scale; NOP NOP SACK blocks; Fast Open cookie padded
    /// with NOPs. A Linux SYN is `MSS, SACK-perm, TS, NOP, WS`; a data segment `NOP, NOP, TS`.
    /// SACK blocks that do not fit are dropped from the end ([`Repr::sack_blocks_emitted`]).
    /// A window scale above 14 is written as 14 (RFC 7323 2.3).
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`Repr::header_len`].
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        segment: &mut Segment<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) {
        let header_len = self.header_len();
        assert!(
            segment.as_bytes().len() >= header_len,
            "TCP emit: buffer of {} bytes, header needs {header_len}",
            segment.as_bytes().len()
        );
        segment.set_src_port(self.src_port);
        segment.set_dst_port(self.dst_port);
        segment.set_seq_number(self.seq_number);
        // RFC 9293 3.1: the acknowledgment field is only significant with ACK; Linux sends zero
        // without ACK (e.g. in a SYN or in a RST answering a segment without ACK).
        segment.set_ack_number(self.ack_number.unwrap_or(0));
        segment.set_header_len(header_len);
        let mut flags = self.flags.difference(Flags::ACK);
        flags.set(Flags::ACK, self.ack_number.is_some());
        segment.set_flags(flags);
        segment.set_window_len(self.window_len);
        segment.set_urgent_at(self.urgent_at);
        let written = self.emit_options(segment.options_mut());
        debug_assert_eq!(written, self.options_len());
        segment.fill_checksum_with(src, dst, mode);
    }

    /// Copies `self.payload` after the header, then [`Repr::emit_header`].
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        segment: &mut Segment<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) {
        let header_len = self.header_len();
        let end = header_len + self.payload.len();
        let bytes = segment.buffer.as_mut();
        assert!(
            bytes.len() >= end,
            "TCP emit: buffer of {} bytes, segment needs {end}",
            bytes.len()
        );
        bytes[header_len..end].copy_from_slice(self.payload);
        self.emit_header(segment, src, dst, mode);
    }

    /// Writes the option area into `buf` (exactly `options_len()` bytes) and returns its length.
    fn emit_options(&self, buf: &mut [u8]) -> usize {
        // The established connection's segment: NOP, NOP, Timestamps in one go (the layout the
        // general path below writes, and `aligned_timestamp` reads).
        if let (Some(ts), None, false, None, None) = (
            self.timestamp,
            self.max_seg_size,
            self.sack_permitted,
            self.window_scale,
            &self.fast_open,
        ) && self.sack_blocks_emitted() == 0
            && let Some(area) = buf.get_mut(..ALIGNED_TIMESTAMP_LEN)
        {
            area[..4].copy_from_slice(&ALIGNED_TIMESTAMP_PREFIX);
            area[4..8].copy_from_slice(&ts.tsval.to_be_bytes());
            area[8..].copy_from_slice(&ts.tsecr.to_be_bytes());
            return ALIGNED_TIMESTAMP_LEN;
        }
        let mut at = 0;
        let mut put = |option: TcpOption<'_>| {
            at += option.emit(&mut buf[at..]);
            at
        };
        // Linux tcp_options_write: MSS first.
        if let Some(mss) = self.max_seg_size {
            put(TcpOption::MaxSegmentSize(mss));
        }
        // Timestamps, sharing their word with SACK-Permitted on a SYN, else behind two NOPs.
        if let Some(ts) = self.timestamp {
            if self.sack_permitted {
                put(TcpOption::SackPermitted);
            } else {
                put(TcpOption::NoOperation);
                put(TcpOption::NoOperation);
            }
            put(TcpOption::Timestamps {
                tsval: ts.tsval,
                tsecr: ts.tsecr,
            });
        } else if self.sack_permitted {
            put(TcpOption::NoOperation);
            put(TcpOption::NoOperation);
            put(TcpOption::SackPermitted);
        }
        if let Some(shift) = self.window_scale {
            put(TcpOption::NoOperation);
            // RFC 7323 2.3: "the shift count MUST be limited to 14".
            put(TcpOption::WindowScale(shift.min(MAX_WINDOW_SCALE)));
        }
        let blocks = self.sack_blocks_emitted();
        if blocks > 0 {
            let mut sack = self.sack_ranges;
            sack.truncate(blocks);
            put(TcpOption::NoOperation);
            put(TcpOption::NoOperation);
            put(TcpOption::SackRange(sack));
        }
        if let Some(cookie) = &self.fast_open {
            let end = put(TcpOption::FastOpenCookie(cookie.as_bytes()));
            // Linux pads the Fast Open option with two NOPs when its length is 2 mod 4. Every
            // option before it ends on a word boundary.
            for _ in end..end.next_multiple_of(4) {
                put(TcpOption::NoOperation);
            }
        }
        at
    }
}

/// NOP, NOP, Timestamps (kind 8, length 10): RFC 7323 Appendix A's recommended layout, which
/// Linux sends on every segment once timestamps are on.
const ALIGNED_TIMESTAMP_PREFIX: [u8; 4] = [
    super::tcp_option::kind::NO_OPERATION,
    super::tcp_option::kind::NO_OPERATION,
    super::tcp_option::kind::TIMESTAMPS,
    10,
];

/// Bytes of the aligned timestamp option area.
const ALIGNED_TIMESTAMP_LEN: usize = 12;

/// The timestamps of an option area that is exactly [`ALIGNED_TIMESTAMP_PREFIX`] and the two
/// values (Linux `tcp_parse_aligned_timestamp`); `None` for any other area, which the general
/// parser reads.
fn aligned_timestamp(options: &[u8]) -> Option<TcpTimestamp> {
    let area: &[u8; ALIGNED_TIMESTAMP_LEN] = options.try_into().ok()?;
    if area[..4] != ALIGNED_TIMESTAMP_PREFIX {
        return None;
    }
    Some(TcpTimestamp {
        tsval: read_u32(area, 4),
        tsecr: read_u32(area, 8),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use crate::wire::checksum::Checksum;
    use crate::wire::tcp_option::SackBlock;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    fn emit_vec(repr: &Repr<'_>, mode: ChecksumMode) -> Vec<u8> {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Segment::new_unchecked(&mut buf[..]), SRC, DST, mode);
        buf
    }

    fn blocks(list: &[(u32, u32)]) -> SackBlocks {
        let v: Vec<SackBlock> = list
            .iter()
            .map(|&(left, right)| SackBlock { left, right })
            .collect();
        SackBlocks::from_slice(&v).unwrap()
    }

    /// A bare header: ports 1234 -> 80, seq 1, ACK 2, data offset `off`, window 1000.
    fn header(off: u8) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0..2].copy_from_slice(&1234u16.to_be_bytes());
        h[2..4].copy_from_slice(&80u16.to_be_bytes());
        h[4..8].copy_from_slice(&1u32.to_be_bytes());
        h[8..12].copy_from_slice(&2u32.to_be_bytes());
        h[12] = off << 4;
        h[13] = 0x10;
        h[14..16].copy_from_slice(&1000u16.to_be_bytes());
        h
    }

    /// `header(5 + opts/4)` + `opts` + `payload`, with a correct checksum.
    fn segment_with(opts: &[u8], payload: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut v = header(5 + (opts.len() / 4) as u8).to_vec();
        v.extend_from_slice(opts);
        v.extend_from_slice(payload);
        Segment::new_unchecked(&mut v[..]).fill_checksum(SRC, DST);
        v
    }

    fn parse(bytes: &[u8]) -> Result<Repr<'_>> {
        let seg = Segment::new_checked(bytes)?;
        Repr::parse(&seg, SRC, DST, ChecksumMode::Software)
    }

    #[test]
    fn buffer_shorter_than_fixed_header_is_truncated_at_every_length() {
        let h = header(5);
        for len in 0..HEADER_LEN {
            assert_eq!(
                Segment::new_checked(&h[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert!(Segment::new_checked(&h[..]).is_ok());
    }

    #[test]
    fn header_with_options_truncated_at_every_length() {
        let seg = segment_with(&[2, 4, 5, 0xb4, 1, 1, 4, 2], b"");
        for len in HEADER_LEN..seg.len() {
            assert_eq!(
                Segment::new_checked(&seg[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert!(Segment::new_checked(&seg[..]).is_ok());
    }

    #[test]
    fn data_offset_below_five_is_bad_header_len() {
        for off in 0..5 {
            let h = header(off);
            assert_eq!(
                Segment::new_checked(&h[..]).err(),
                Some(Error::BadHeaderLen),
                "{off}"
            );
        }
    }

    #[test]
    fn data_offset_beyond_buffer_is_truncated() {
        let mut v = header(15).to_vec();
        v.extend_from_slice(&[1; 39]);
        assert_eq!(Segment::new_checked(&v[..]).err(), Some(Error::Truncated));
        v.push(1);
        assert!(Segment::new_checked(&v[..]).is_ok());
    }

    #[test]
    fn bad_checksum_is_rejected_in_software_mode_and_trusted_when_offloaded() {
        let mut v = segment_with(&[], b"hello");
        v[24] ^= 0x01; // flip a bit of the last payload byte
        let seg = Segment::new_checked(&v[..]).unwrap();
        assert!(!seg.verify_checksum(SRC, DST));
        assert_eq!(
            Repr::parse(&seg, SRC, DST, ChecksumMode::Software),
            Err(Error::BadChecksum)
        );
        let repr = Repr::parse(&seg, SRC, DST, ChecksumMode::Offloaded).unwrap();
        assert_eq!(repr.payload, b"helln");
    }

    #[test]
    fn checksum_covers_the_pseudo_header() {
        let v = segment_with(&[], b"x");
        let seg = Segment::new_checked(&v[..]).unwrap();
        assert!(seg.verify_checksum(SRC, DST));
        assert!(!seg.verify_checksum(SRC, Ipv4Addr::new(198, 18, 0, 3)));
        assert!(!seg.verify_checksum(Ipv4Addr::new(198, 18, 0, 9), DST));
    }

    #[test]
    fn each_malformed_option_is_bad_option() {
        for opts in [
            &[99u8, 0, 1, 1][..],                      // zero length
            &[99, 1, 1, 1][..],                        // length 1
            &[1, 1, 8, 10][..],                        // runs past the header
            &[2, 3, 5, 1][..],                         // MSS len 3
            &[5, 9, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1][..], // SACK len 9
            &[34, 5, 1, 2, 3, 1][..],                  // TFO cookie of 3 (len 5) ... padded
        ] {
            let mut padded = opts.to_vec();
            while padded.len() % 4 != 0 {
                padded.push(1);
            }
            let v = segment_with(&padded, b"");
            assert_eq!(parse(&v), Err(Error::BadOption), "{opts:?}");
        }
        // TFO cookie of 17 bytes: len 19.
        let mut opts = vec![34u8, 19];
        opts.extend_from_slice(&[7; 17]);
        opts.push(1);
        let v = segment_with(&opts, b"");
        assert_eq!(parse(&v), Err(Error::BadOption));
    }

    #[test]
    fn options_after_end_of_list_are_padding() {
        let v = segment_with(&[2, 4, 5, 0xb4, 0, 0xff, 0xff, 0xff], b"");
        let repr = parse(&v).unwrap();
        assert_eq!(repr.max_seg_size, Some(1460));
    }

    #[test]
    fn window_scale_above_14_is_read_as_14() {
        let v = segment_with(&[1, 3, 3, 200], b"");
        assert_eq!(parse(&v).unwrap().window_scale, Some(14));
        let v = segment_with(&[1, 3, 3, 14], b"");
        assert_eq!(parse(&v).unwrap().window_scale, Some(14));
        let v = segment_with(&[1, 3, 3, 13], b"");
        assert_eq!(parse(&v).unwrap().window_scale, Some(13));
    }

    #[test]
    fn duplicate_options_last_one_wins() {
        let v = segment_with(&[2, 4, 0x05, 0xb4, 2, 4, 0x02, 0x18], b"");
        assert_eq!(parse(&v).unwrap().max_seg_size, Some(536));
        let opts = [
            1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 8, 10, 0, 0, 0, 3, 0, 0, 0, 4,
        ];
        let v = segment_with(&opts, b"");
        assert_eq!(
            parse(&v).unwrap().timestamp,
            Some(TcpTimestamp { tsval: 3, tsecr: 4 })
        );
    }

    #[test]
    fn unknown_options_are_ignored() {
        // MPTCP (30) and an RFC 6994 experiment, then MSS.
        let opts = [30, 4, 0, 0, 254, 4, 0x12, 0x34, 2, 4, 0x05, 0xb4];
        let v = segment_with(&opts, b"");
        let repr = parse(&v).unwrap();
        assert_eq!(repr.max_seg_size, Some(1460));
        assert_eq!(repr.fast_open, None);
    }

    #[test]
    fn syn_only_options_are_reported_on_any_segment() {
        // An ACK (not SYN) carrying MSS, SACK-perm and WS: reported; the state machine decides.
        let v = segment_with(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7], b"");
        let repr = parse(&v).unwrap();
        assert!(!repr.flags.syn());
        assert_eq!(repr.max_seg_size, Some(1460));
        assert!(repr.sack_permitted);
        assert_eq!(repr.window_scale, Some(7));
    }

    #[test]
    fn ack_bit_is_carried_by_ack_number_only() {
        let mut v = segment_with(&[], b"");
        let repr = parse(&v).unwrap();
        assert_eq!(repr.ack_number, Some(2));
        assert!(!repr.flags.ack());
        v[13] = 0x02; // SYN alone: the ack field is not significant.
        Segment::new_unchecked(&mut v[..]).fill_checksum(SRC, DST);
        let repr = parse(&v).unwrap();
        assert_eq!(repr.ack_number, None);
        assert_eq!(repr.flags, Flags::SYN);
    }

    #[test]
    fn emit_sets_ack_from_ack_number_and_ignores_it_in_flags() {
        let repr = Repr {
            flags: Flags::ACK | Flags::FIN,
            ack_number: None,
            ..Repr::default()
        };
        let v = emit_vec(&repr, ChecksumMode::Software);
        assert_eq!(Segment::new_checked(&v[..]).unwrap().flags(), Flags::FIN);
        let repr = Repr {
            flags: Flags::FIN | Flags::PSH,
            ack_number: Some(7),
            ..Repr::default()
        };
        let v = emit_vec(&repr, ChecksumMode::Software);
        let seg = Segment::new_checked(&v[..]).unwrap();
        assert_eq!(seg.flags(), Flags::FIN | Flags::PSH | Flags::ACK);
        assert_eq!(seg.ack_number(), 7);
    }

    #[test]
    fn reserved_bits_are_ignored_on_receive_and_cleared_on_send() {
        let mut v = segment_with(&[], b"");
        v[12] |= 0x0e; // the three reserved bits
        Segment::new_unchecked(&mut v[..]).fill_checksum(SRC, DST);
        let seg = Segment::new_checked(&v[..]).unwrap();
        assert_eq!(seg.flags(), Flags::ACK);
        assert_eq!(seg.header_len(), 20);
        let mut w = v.clone();
        let mut seg = Segment::new_unchecked(&mut w[..]);
        seg.set_flags(Flags::SYN | Flags::AE);
        assert_eq!(w[12], 0x51);
        assert_eq!(w[13], 0x02);
    }

    #[test]
    fn all_control_bits_have_their_rfc_positions() {
        let mut v = segment_with(&[], b"");
        v[12] = 0x51; // AE
        v[13] = 0xff; // CWR ECE URG ACK PSH RST SYN FIN
        let seg = Segment::new_checked(&v[..]).unwrap();
        assert!(seg.fin() && seg.syn() && seg.rst() && seg.psh());
        assert!(seg.ack() && seg.urg() && seg.ece() && seg.cwr() && seg.ae());
        assert_eq!(seg.flags().bits(), 0x1ff);
        assert_eq!(
            format!("{:?}", seg.flags()),
            "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR|AE"
        );
        assert_eq!(format!("{:?}", Flags::empty()), "(empty)");
        assert_eq!(!Flags::empty(), Flags::from_bits_truncate(0xffff));
    }

    #[test]
    fn setters_and_getters_agree() {
        let mut buf = [0u8; 28];
        let mut seg = Segment::new_unchecked(&mut buf[..]);
        seg.set_src_port(0xabcd);
        seg.set_dst_port(0x1234);
        seg.set_seq_number(0xdead_beef);
        seg.set_ack_number(0x0102_0304);
        seg.set_header_len(24);
        seg.set_flags(Flags::SYN | Flags::ECE | Flags::CWR);
        seg.set_window_len(0xfffe);
        seg.set_urgent_at(0x55aa);
        seg.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        seg.payload_mut().copy_from_slice(b"data");
        seg.set_checksum(0x1111);
        let seg = Segment::new_checked(&buf[..]).unwrap();
        assert_eq!(seg.src_port(), 0xabcd);
        assert_eq!(seg.dst_port(), 0x1234);
        assert_eq!(seg.seq_number(), 0xdead_beef);
        assert_eq!(seg.ack_number(), 0x0102_0304);
        assert_eq!(seg.header_len(), 24);
        assert_eq!(seg.flags(), Flags::SYN | Flags::ECE | Flags::CWR);
        assert_eq!(seg.window_len(), 0xfffe);
        assert_eq!(seg.urgent_at(), 0x55aa);
        assert_eq!(seg.options(), &[1, 1, 1, 0]);
        assert_eq!(seg.payload(), b"data");
        assert_eq!(seg.checksum(), 0x1111);
    }

    #[test]
    fn options_and_payload_stay_in_bounds_after_a_bad_data_offset_is_set() {
        let mut buf = [0u8; 24];
        let mut seg = Segment::new_unchecked(&mut buf[..]);
        seg.set_header_len(60);
        assert_eq!(seg.options().len(), 4);
        assert!(seg.payload().is_empty());
        assert_eq!(seg.options_mut().len(), 4);
        seg.set_header_len(8);
        assert!(seg.options().is_empty());
        assert_eq!(seg.payload().len(), 4);
        let tiny = [0u8; 3];
        let seg = Segment::new_unchecked(&tiny[..]);
        assert!(seg.options().is_empty());
        assert_eq!(seg.payload(), &[] as &[u8]);
    }

    #[test]
    fn linux_syn_layout_is_mss_sackperm_ts_nop_ws() {
        let repr = Repr {
            src_port: 40000,
            dst_port: 5000,
            seq_number: 1,
            flags: Flags::SYN,
            window_len: 64240,
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some(TcpTimestamp {
                tsval: 0x0102_0304,
                tsecr: 0,
            }),
            ..Repr::default()
        };
        assert_eq!(repr.header_len(), 40);
        let v = emit_vec(&repr, ChecksumMode::Software);
        assert_eq!(
            &v[20..],
            &[
                2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7
            ]
        );
    }

    #[test]
    fn data_segment_with_timestamps_is_nop_nop_ts() {
        let repr = Repr {
            ack_number: Some(9),
            timestamp: Some(TcpTimestamp { tsval: 5, tsecr: 6 }),
            payload: b"abc",
            ..Repr::default()
        };
        assert_eq!(repr.header_len(), 32);
        let v = emit_vec(&repr, ChecksumMode::Software);
        assert_eq!(&v[20..32], &[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]);
        assert_eq!(&v[32..], b"abc");
    }

    #[test]
    fn sack_blocks_follow_timestamps_behind_two_nops() {
        let repr = Repr {
            ack_number: Some(9),
            timestamp: Some(TcpTimestamp { tsval: 5, tsecr: 6 }),
            sack_ranges: blocks(&[(100, 200)]),
            ..Repr::default()
        };
        let v = emit_vec(&repr, ChecksumMode::Software);
        assert_eq!(
            &v[20..],
            &[
                1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 10, 0, 0, 0, 100, 0, 0, 0, 200
            ]
        );
    }

    #[test]
    fn sack_blocks_beyond_option_space_are_dropped_from_the_end() {
        let four = blocks(&[(1, 2), (3, 4), (5, 6), (7, 8)]);
        let with_ts = Repr {
            ack_number: Some(1),
            timestamp: Some(TcpTimestamp { tsval: 1, tsecr: 2 }),
            sack_ranges: four,
            ..Repr::default()
        };
        assert_eq!(with_ts.sack_blocks_emitted(), 3);
        assert_eq!(with_ts.header_len(), 60);
        let v = emit_vec(&with_ts, ChecksumMode::Software);
        let back = parse(&v).unwrap();
        assert_eq!(back.sack_ranges, blocks(&[(1, 2), (3, 4), (5, 6)]));

        let without_ts = Repr {
            timestamp: None,
            ..with_ts
        };
        assert_eq!(without_ts.sack_blocks_emitted(), 4);
        assert_eq!(without_ts.header_len(), 56);
        let v = emit_vec(&without_ts, ChecksumMode::Software);
        assert_eq!(parse(&v).unwrap().sack_ranges, four);

        // A SYN full of options plus a 16-byte cookie leaves no room for any block.
        let crowded = Repr {
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            fast_open: Some(TfoCookie::new(&[9; 16]).unwrap()),
            ..with_ts
        };
        assert_eq!(crowded.sack_blocks_emitted(), 0);
        assert_eq!(crowded.header_len(), 60);
        let v = emit_vec(&crowded, ChecksumMode::Software);
        assert!(parse(&v).unwrap().sack_ranges.is_empty());
    }

    #[test]
    fn fast_open_request_is_padded_with_two_nops() {
        let repr = Repr {
            flags: Flags::SYN,
            fast_open: Some(TfoCookie::REQUEST),
            ..Repr::default()
        };
        assert_eq!(repr.header_len(), 24);
        let v = emit_vec(&repr, ChecksumMode::Software);
        assert_eq!(&v[20..], &[34, 2, 1, 1]);
        assert_eq!(parse(&v).unwrap().fast_open, Some(TfoCookie::REQUEST));
    }

    #[test]
    fn fast_open_cookie_of_four_needs_no_padding_but_eight_does() {
        let four = Repr {
            fast_open: Some(TfoCookie::new(&[1, 2, 3, 4]).unwrap()),
            ..Repr::default()
        };
        assert_eq!(four.options_len(), 8);
        let v = emit_vec(&four, ChecksumMode::Software);
        assert_eq!(&v[20..], &[34, 6, 1, 2, 3, 4, 1, 1]);
        let eight = Repr {
            fast_open: Some(TfoCookie::new(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap()),
            ..Repr::default()
        };
        assert_eq!(eight.options_len(), 12);
    }

    #[test]
    fn window_scale_above_14_is_sent_as_14() {
        let repr = Repr {
            window_scale: Some(20),
            ..Repr::default()
        };
        let v = emit_vec(&repr, ChecksumMode::Software);
        assert_eq!(&v[20..], &[1, 3, 3, 14]);
    }

    #[test]
    fn offloaded_emit_writes_the_uncomplemented_pseudo_header_sum() {
        let repr = Repr {
            ack_number: Some(1),
            payload: b"hello",
            ..Repr::default()
        };
        let v = emit_vec(&repr, ChecksumMode::Offloaded);
        let seg = Segment::new_checked(&v[..]).unwrap();
        let expected = checksum::pseudo_header(SRC, DST, 6, 25).sum();
        assert_eq!(seg.checksum(), expected);
        // What the NIC then does: complement of the sum over the segment with that seed.
        let mut w = v.clone();
        let nic = !Checksum::new().add_bytes(&w).sum();
        w[16..18].copy_from_slice(&nic.to_be_bytes());
        assert!(
            Segment::new_checked(&w[..])
                .unwrap()
                .verify_checksum(SRC, DST)
        );
    }

    #[test]
    fn emit_header_checksums_the_payload_already_in_place() {
        let repr = Repr {
            ack_number: Some(1),
            timestamp: Some(TcpTimestamp { tsval: 1, tsecr: 2 }),
            ..Repr::default()
        };
        let mut buf = vec![0u8; repr.header_len() + 4];
        buf[repr.header_len()..].copy_from_slice(b"zero");
        repr.emit_header(
            &mut Segment::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            ChecksumMode::Software,
        );
        let back = parse(&buf).unwrap();
        assert_eq!(back.payload, b"zero");
        assert_eq!(back.timestamp, repr.timestamp);
    }

    #[test]
    fn payload_written_after_emit_header_then_fill_checksum() {
        let repr = Repr {
            ack_number: Some(1),
            ..Repr::default()
        };
        let mut buf = vec![0u8; repr.header_len() + 3];
        let mut seg = Segment::new_unchecked(&mut buf[..]);
        repr.emit_header(&mut seg, SRC, DST, ChecksumMode::Software);
        seg.payload_mut().copy_from_slice(b"abc");
        seg.fill_checksum(SRC, DST);
        assert_eq!(parse(&buf).unwrap().payload, b"abc");
    }

    #[test]
    #[should_panic(expected = "TCP emit")]
    fn emit_into_a_short_buffer_panics_with_a_message() {
        let repr = Repr {
            payload: b"abc",
            ..Repr::default()
        };
        let mut buf = [0u8; 22];
        repr.emit(
            &mut Segment::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            ChecksumMode::Software,
        );
    }

    #[test]
    fn segment_len_counts_syn_and_fin() {
        let mut repr = Repr {
            payload: b"abcd",
            ..Repr::default()
        };
        assert_eq!(repr.segment_len(), 4);
        repr.flags = Flags::SYN;
        assert_eq!(repr.segment_len(), 5);
        repr.flags = Flags::SYN | Flags::FIN;
        assert_eq!(repr.segment_len(), 6);
        repr.flags = Flags::FIN | Flags::PSH;
        repr.payload = b"";
        assert_eq!(repr.segment_len(), 1);
    }

    fn arb_flags() -> impl Strategy<Value = Flags> {
        any::<u16>().prop_map(|b| Flags::from_bits_truncate(b).difference(Flags::ACK))
    }

    prop_compose! {
        fn arb_repr_parts()(
            ports in any::<(u16, u16)>(),
            seq in any::<u32>(),
            ack in any::<Option<u32>>(),
            flags in arb_flags(),
            window in any::<u16>(),
            urgent in any::<u16>(),
            mss in any::<Option<u16>>(),
            ws in proptest::option::of(0u8..=14),
            sack_permitted in any::<bool>(),
            sack in proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
            ts in any::<Option<(u32, u32)>>(),
            tfo in proptest::option::of(prop_oneof![Just(0usize), (2usize..=8).prop_map(|n| n * 2)]),
            tfo_byte in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) -> (Repr<'static>, Vec<u8>) {
            let repr = Repr {
                src_port: ports.0,
                dst_port: ports.1,
                seq_number: seq,
                ack_number: ack,
                flags,
                window_len: window,
                urgent_at: urgent,
                max_seg_size: mss,
                window_scale: ws,
                sack_permitted,
                sack_ranges: blocks(&sack),
                timestamp: ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
                fast_open: tfo.map(|n| TfoCookie::new(&[tfo_byte; 16][..n]).unwrap()),
                payload: &[],
            };
            (repr, payload)
        }
    }

    proptest! {
        #[test]
        fn the_aligned_timestamp_shortcut_reads_what_the_option_loop_reads(
            area in proptest::collection::vec(any::<u8>(), 12),
            tsval in any::<u32>(),
            tsecr in any::<u32>(),
        ) {
            let mut aligned = vec![1, 1, 8, 10];
            aligned.extend_from_slice(&tsval.to_be_bytes());
            aligned.extend_from_slice(&tsecr.to_be_bytes());
            for bytes in [&area, &aligned] {
                if let Some(ts) = aligned_timestamp(bytes) {
                    let mut looped = Repr::default();
                    looped.apply_options(bytes).unwrap();
                    prop_assert_eq!(looped, Repr { timestamp: Some(ts), ..Repr::default() });
                }
            }
            prop_assert_eq!(aligned_timestamp(&aligned), Some(TcpTimestamp { tsval, tsecr }));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let unchecked = Segment::new_unchecked(&bytes[..]);
            let _ = (unchecked.options(), unchecked.payload());
            if let Ok(seg) = Segment::new_checked(&bytes[..]) {
                let _ = (seg.src_port(), seg.dst_port(), seg.seq_number(), seg.ack_number());
                let _ = (seg.flags(), seg.window_len(), seg.checksum(), seg.urgent_at());
                prop_assert_eq!(seg.options().len() + seg.payload().len() + HEADER_LEN, bytes.len());
                let _ = seg.verify_checksum(SRC, DST);
                let _ = seg.option_iter().count();
                let _ = Repr::parse(&seg, SRC, DST, ChecksumMode::Software);
                let _ = Repr::parse(&seg, SRC, DST, ChecksumMode::Offloaded);
            }
        }

        #[test]
        fn arbitrary_header_with_valid_checksum_parses_or_names_a_reason(
            off in 5u8..=15, rest in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut v = header(off).to_vec();
            v.extend_from_slice(&rest);
            if v.len() >= usize::from(off) * 4 {
                Segment::new_unchecked(&mut v[..]).fill_checksum(SRC, DST);
                match parse(&v) {
                    Ok(repr) => prop_assert_eq!(repr.payload.len(), v.len() - usize::from(off) * 4),
                    Err(e) => prop_assert_eq!(e, Error::BadOption),
                }
            } else {
                prop_assert_eq!(parse(&v), Err(Error::Truncated));
            }
        }

        #[test]
        fn emit_then_parse_round_trips((repr, payload) in arb_repr_parts()) {
            let repr = Repr { payload: &payload, ..repr };
            prop_assert!(repr.header_len() <= MAX_HEADER_LEN);
            prop_assert_eq!(repr.header_len() % 4, 0);
            let v = emit_vec(&repr, ChecksumMode::Software);
            prop_assert_eq!(v.len(), repr.buffer_len());
            let seg = Segment::new_checked(&v[..]).unwrap();
            prop_assert_eq!(seg.header_len(), repr.header_len());
            prop_assert!(seg.verify_checksum(SRC, DST));
            let back = Repr::parse(&seg, SRC, DST, ChecksumMode::Software).unwrap();
            let mut expected = repr;
            expected.sack_ranges.truncate(repr.sack_blocks_emitted());
            prop_assert_eq!(back, expected);
        }

        #[test]
        fn sack_blocks_are_dropped_only_when_they_do_not_fit((repr, _payload) in arb_repr_parts()) {
            let emitted = repr.sack_blocks_emitted();
            prop_assert!(emitted <= repr.sack_ranges.len());
            if emitted < repr.sack_ranges.len() {
                // One more block would overflow the 40 bytes.
                let base = if emitted == 0 { 4 } else { 0 };
                prop_assert!(repr.options_len() + base + 8 > MAX_OPTIONS_LEN);
            }
        }

        #[test]
        fn offloaded_and_software_emit_differ_only_in_the_checksum((repr, payload) in arb_repr_parts()) {
            let repr = Repr { payload: &payload, ..repr };
            let sw = emit_vec(&repr, ChecksumMode::Software);
            let mut off = emit_vec(&repr, ChecksumMode::Offloaded);
            prop_assert_eq!(&sw[..16], &off[..16]);
            prop_assert_eq!(&sw[18..], &off[18..]);
            // Completing the offload as a NIC would gives the software checksum's verdict.
            let nic = !Checksum::new().add_bytes(&off).sum();
            off[16..18].copy_from_slice(&nic.to_be_bytes());
            prop_assert!(Segment::new_checked(&off[..]).unwrap().verify_checksum(SRC, DST));
        }
    }
}
