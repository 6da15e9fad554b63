//! IPv4 headers (RFC 791).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |   DSCP    |ECN|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options (IHL > 5)                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{ChecksumMode, Error, Ipv4Addr, Result, checksum, read_ipv4, read_u16, write_u16};

/// The length of an IPv4 header without options (IHL = 5).
pub const HEADER_LEN: usize = 20;

/// The longest IPv4 header: IHL = 15, 60 bytes, 40 of them options.
pub const MAX_HEADER_LEN: usize = 60;

/// The largest payload a datagram without options can carry (65535 - 20).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
}

/// RFC 791 3.1 Flags bit 1: "DF, 0 = May Fragment, 1 = Don't Fragment."
const FLAG_DF: u16 = 0x4000;
/// RFC 791 3.1 Flags bit 2: "MF, 0 = Last Fragment, 1 = More Fragments."
const FLAG_MF: u16 = 0x2000;
/// RFC 791 3.1: the fragment offset is 13 bits, "measured in units of 8 octets".
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// The protocol number in the IPv4 header (IANA "Assigned Internet Protocol Numbers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ICMP, 1.
    Icmp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(value: u8) -> Self {
        match value {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(other) => other,
        }
    }
}

/// A read/write view over an IPv4 datagram (header, options and payload).
///
/// After [`Packet::new_checked`] every getter is safe on any bytes. [`Packet::options`],
/// [`Packet::payload`] and [`Packet::verify_checksum`] never panic at all: they clamp to the buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Meant for emitting into a buffer of at least
    /// [`Repr::buffer_len`] bytes; fixed-field getters on a buffer shorter than 20 bytes panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking the header's length fields against it.
    ///
    /// In order (the first failing check decides):
    /// 1. shorter than 20 bytes: [`Error::Truncated`];
    /// 2. version != 4: [`Error::BadVersion`];
    /// 3. IHL < 5: [`Error::BadHeaderLen`];
    /// 4. IHL * 4 beyond the buffer: [`Error::Truncated`];
    /// 5. total length < IHL * 4: [`Error::BadLength`];
    /// 6. total length beyond the buffer: [`Error::Truncated`].
    ///
    /// A buffer longer than the total length is fine (Ethernet pads short frames to 60 bytes):
    /// [`Packet::payload`] ends at the total length. Linux `ip_rcv_core` makes the same checks.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::check_header(buffer)?;
        let total_len = usize::from(packet.total_len());
        // RFC 791 3.1: "Total Length is the length of the datagram, measured in octets,
        // including internet header and data."
        if total_len < packet.header_len() {
            return Err(Error::BadLength);
        }
        // Linux ip_rcv_core: `if (skb->len < len)` drop (SKB_DROP_REASON_PKT_TOO_SMALL).
        if total_len > packet.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Wraps the start of a datagram quoted in an ICMP error message (RFC 792: "the internet
    /// header plus the first 64 bits of the original datagram's data").
    ///
    /// Makes checks 1 to 4 of [`Packet::new_checked`] and then requires the header plus 8 bytes
    /// of payload ([`Error::Truncated`] otherwise), like Linux `icmp_socket_deliver`
    /// (`pskb_may_pull(skb, iph->ihl * 4 + 8)`). The total length is not checked against the
    /// buffer, since the quote is usually cut short: [`Packet::payload`] then returns what was
    /// quoted, at least 8 bytes (the ports of UDP and TCP, TCP's sequence number). A total length
    /// below header + 8 is [`Error::BadLength`] (no UDP, TCP or ICMP datagram is that short).
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        let packet = Self::check_header(buffer)?;
        if packet.buffer.as_ref().len() < packet.header_len() + 8 {
            return Err(Error::Truncated);
        }
        // The original datagram must itself have carried 8 bytes of payload (every protocol
        // this stack demultiplexes errors to, UDP, TCP and ICMP, has an 8-byte header at least),
        // so that `payload()` below is never shorter than 8.
        if usize::from(packet.total_len()) < packet.header_len() + 8 {
            return Err(Error::BadLength);
        }
        Ok(packet)
    }

    /// Checks 1 to 4 of `new_checked`.
    fn check_header(buffer: T) -> Result<Self> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = Self::new_unchecked(buffer);
        // RFC 791 3.1: "The Version field indicates the format of the internet header."
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        // RFC 791 3.1: "the minimum value for a correct header is 5" (IHL, in 32-bit words).
        if packet.header_len() < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if packet.header_len() > len {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes: IHL * 4, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The Differentiated Services Code Point (RFC 2474): the upper 6 bits of the old TOS byte.
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// The ECN field (RFC 3168): the lower 2 bits of the old TOS byte.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length of the datagram: header plus payload.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units), 0 to 65528.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// True if this datagram is a fragment: MF set or a non-zero offset. This stack does not
    /// reassemble; the caller drops fragments.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The payload's protocol.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The header clamped to the buffer (never panics).
    fn header_bytes(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = self.header_len_clamped();
        data.get(..end).unwrap_or(data)
    }

    /// `header_len`, 0 for an empty buffer and at most the buffer's length.
    fn header_len_clamped(&self) -> usize {
        let data = self.buffer.as_ref();
        data.first()
            .map_or(0, |b| usize::from(b & 0x0f) * 4)
            .min(data.len())
    }

    /// The payload's range: header end to total length, both clamped to the buffer.
    fn payload_range(&self) -> (usize, usize) {
        let data = self.buffer.as_ref();
        let end = match data.get(field::LENGTH..field::LENGTH + 2) {
            Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])).min(data.len()),
            _ => 0,
        };
        let start = self.header_len_clamped().min(end);
        (start, end)
    }

    /// The options: header bytes 20 to IHL * 4 (empty when IHL = 5). Never panics.
    pub fn options(&self) -> &[u8] {
        self.header_bytes().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The payload: from the end of the header to the total length (not to the end of the
    /// buffer, which may hold Ethernet padding). Never panics.
    pub fn payload(&self) -> &[u8] {
        let (start, end) = self.payload_range();
        self.buffer.as_ref().get(start..end).unwrap_or(&[])
    }

    /// True if the header checksum verifies. RFC 791 3.1: "The checksum field is the 16 bit
    /// one's complement of the one's complement sum of all 16 bit words in the header."
    pub fn verify_checksum(&self) -> bool {
        checksum::Checksum::new()
            .add_bytes(self.header_bytes())
            .verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the IHL from a header length in bytes (a multiple of 4, 20 to 60).
    pub fn set_header_len(&mut self, len: usize) {
        let ihl = ((len / 4) & 0x0f) as u8;
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ihl;
    }

    /// Sets the DSCP (6 bits).
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (dscp << 2);
    }

    /// Sets the ECN field (2 bits).
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (ecn & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let raw = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        let raw = if on { raw | flag } else { raw & !flag };
        write_u16(self.buffer.as_mut(), field::FLG_OFF, raw);
    }

    /// Sets the Don't Fragment flag.
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets the More Fragments flag.
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset, given in bytes (a multiple of 8; the low 3 bits are dropped).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let raw = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        let raw = (raw & !FRAG_OFFSET_MASK) | (offset >> 3);
        write_u16(self.buffer.as_mut(), field::FLG_OFF, raw);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR..field::SRC_ADDR + 4].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR..field::DST_ADDR + 4].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum (over IHL * 4 bytes, options included) and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header_bytes());
        self.set_checksum(c);
    }

    /// The options, mutable (empty when IHL = 5). Never panics.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len_clamped();
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }

    /// The payload, mutable: from the end of the header to the total length. Never panics.
    ///
    /// It follows the total length field, so emit the header ([`Repr::emit`]) before writing
    /// the payload through this; the slice is then exactly `payload_len` bytes, the right buffer
    /// for the next layer's view (an ICMP checksum covers its whole buffer).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = self.payload_range();
        self.buffer.as_mut().get_mut(start..end).unwrap_or(&mut [])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an IPv4 header that the stack uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: Protocol,
    /// Payload length: total length minus header length (options excluded).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// The whole second byte: DSCP (upper 6 bits) and ECN (lower 2 bits).
    pub dscp_ecn: u8,
}

impl Repr {
    /// Validates and reads a checked packet.
    ///
    /// Options are allowed and skipped (Linux processes some, e.g. Record Route; this stack
    /// ignores them all). Fragments parse fine: the caller checks [`Packet::is_fragment`].
    ///
    /// Errors: [`Error::BadChecksum`] when `mode` is `Software` and the header checksum does
    /// not verify.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, mode: ChecksumMode) -> Result<Repr> {
        // Linux ip_rcv_core: `if (unlikely(ip_fast_csum((u8 *)iph, iph->ihl))) goto csum_error;`
        if mode == ChecksumMode::Software && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let header_len = packet.header_len();
        let total_len = usize::from(packet.total_len());
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: total_len.saturating_sub(header_len),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            dscp_ecn: packet.buffer.as_ref()[field::DSCP_ECN],
        })
    }

    /// The length of the header that [`Repr::emit`] writes: 20 (no options).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload: 20 + `payload_len`.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header (IHL = 5, no options, MF = 0, offset 0) into `packet`, which must be at
    /// least 20 bytes long. The payload is the caller's to write, before or after.
    ///
    /// `payload_len` must be at most [`MAX_PAYLOAD_LEN`]; a larger one is a caller bug (debug
    /// assertion) and is clamped in release builds.
    ///
    /// With `Software` the header checksum is computed; with `Offloaded` it is left zero for the
    /// NIC to fill.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, mode: ChecksumMode) {
        debug_assert!(self.payload_len <= MAX_PAYLOAD_LEN, "IPv4 payload too long");
        let total_len = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        let b = packet.buffer.as_mut();
        b[field::VER_IHL] = 0x45; // RFC 791 3.1: version 4, IHL 5
        b[field::DSCP_ECN] = self.dscp_ecn;
        packet.set_total_len(total_len);
        packet.set_ident(self.ident);
        // Flags: reserved bit 0, DF per field, MF = 0; fragment offset 0 (we never fragment).
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        write_u16(packet.buffer.as_mut(), field::FLG_OFF, flags);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        match mode {
            ChecksumMode::Software => packet.fill_checksum(),
            ChecksumMode::Offloaded => packet.set_checksum(0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// The IPv4 header of `ping -c1 198.18.0.2` from Linux: total length 84, ident 0x3a5c, DF,
    /// TTL 64, ICMP, checksum 0x7425. Followed by an 8-byte ICMP header and 56 bytes of data.
    fn ping_datagram() -> [u8; 84] {
        let mut d = [0u8; 84];
        d[..20].copy_from_slice(&[
            0x45, 0x00, 0x00, 0x54, 0x3a, 0x5c, 0x40, 0x00, 0x40, 0x01, 0x74, 0x25, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x12, 0x00, 0x02,
        ]);
        for (i, b) in d[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        d
    }

    /// A UDP datagram with a Router Alert option (RFC 2113, 94 04 00 00), as IGMP and RSVP
    /// send it: IHL 6, TOS 0xc0, TTL 1, total length 32, checksum 0x3ddf.
    const WITH_OPTIONS: [u8; 32] = [
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x01, 0x11, 0x3d, 0xdf, 0xc6, 0x12, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x16, // header (dst 224.0.0.22)
        0x94, 0x04, 0x00, 0x00, // Router Alert
        0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP header, no payload
    ];

    #[test]
    fn ping_header_fields_are_read() {
        let bytes = ping_datagram();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp(), 0);
        assert_eq!(packet.ecn(), 0);
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.ident(), 0x3a5c);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), Protocol::Icmp);
        assert_eq!(packet.checksum(), 0x7425);
        assert_eq!(packet.src_addr(), SRC);
        assert_eq!(packet.dst_addr(), DST);
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload().len(), 64);
        assert!(packet.verify_checksum());
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Software).unwrap(),
            Repr {
                src_addr: SRC,
                dst_addr: DST,
                protocol: Protocol::Icmp,
                payload_len: 64,
                ttl: 64,
                ident: 0x3a5c,
                dont_frag: true,
                dscp_ecn: 0,
            }
        );
    }

    #[test]
    fn header_with_options_is_parsed_and_options_skipped() {
        let packet = Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(packet.payload(), &WITH_OPTIONS[24..]);
        assert_eq!(packet.dscp(), 0x30);
        assert_eq!(packet.ttl(), 1);
        assert!(packet.verify_checksum());
        let repr = Repr::parse(&packet, ChecksumMode::Software).unwrap();
        assert_eq!(repr.protocol, Protocol::Udp);
        assert_eq!(repr.payload_len, 8);
        assert_eq!(repr.dscp_ecn, 0xc0);
        assert_eq!(repr.dst_addr, Ipv4Addr::new(224, 0, 0, 22));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // A 20-byte IPv4 header + 8-byte UDP header padded to 46 bytes by Ethernet.
        let mut bytes = [0u8; 46];
        bytes[..28].copy_from_slice(&WITH_OPTIONS[..28]);
        bytes[0] = 0x45;
        bytes[3] = 28;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload().len(), 8);
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Software)
                .unwrap()
                .payload_len,
            8
        );
    }

    #[test]
    fn fragment_fields_are_read() {
        let mut bytes = ping_datagram();
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_dont_frag(false);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        packet.fill_checksum();
        assert_eq!(&bytes[6..8], &[0x20, 0xb9]); // MF, 185 * 8 = 1480
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.more_frags());
        assert!(!packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment());
        assert!(Repr::parse(&packet, ChecksumMode::Software).is_ok());

        let mut bytes = ping_datagram();
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_frag_offset(8);
        assert!(!packet.more_frags());
        assert!(packet.is_fragment()); // the last fragment
    }

    #[test]
    fn truncated_header_is_rejected_at_every_length() {
        let bytes = ping_datagram();
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&bytes[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
    }

    #[test]
    fn truncated_datagram_is_rejected_at_every_length() {
        let bytes = ping_datagram();
        for len in HEADER_LEN..84 {
            assert_eq!(
                Packet::new_checked(&bytes[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert!(Packet::new_checked(&bytes[..]).is_ok());
    }

    #[test]
    fn truncated_options_are_rejected() {
        for len in HEADER_LEN..24 {
            assert_eq!(
                Packet::new_checked(&WITH_OPTIONS[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
    }

    #[test]
    fn bad_version_is_rejected() {
        for version in [0u8, 1, 5, 6, 15] {
            let mut bytes = ping_datagram();
            bytes[0] = (version << 4) | 5;
            assert_eq!(
                Packet::new_checked(&bytes[..]).err(),
                Some(Error::BadVersion),
                "{version}"
            );
        }
    }

    #[test]
    fn ihl_below_five_is_rejected() {
        for ihl in 0u8..5 {
            let mut bytes = ping_datagram();
            bytes[0] = 0x40 | ihl;
            assert_eq!(
                Packet::new_checked(&bytes[..]).err(),
                Some(Error::BadHeaderLen),
                "{ihl}"
            );
        }
    }

    #[test]
    fn total_length_below_header_length_is_rejected() {
        for total in [0u16, 1, 19] {
            let mut bytes = ping_datagram();
            bytes[2..4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(
                Packet::new_checked(&bytes[..]).err(),
                Some(Error::BadLength)
            );
        }
        let mut bytes = WITH_OPTIONS;
        bytes[3] = 23; // header is 24
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::BadLength)
        );
        bytes[3] = 24; // header only: fine
        assert!(
            Packet::new_checked(&bytes[..])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn total_length_beyond_buffer_is_rejected() {
        let mut bytes = ping_datagram();
        bytes[2..4].copy_from_slice(&85u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
        bytes[2..4].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn bad_checksum_is_rejected_in_software_mode_only() {
        let mut bytes = ping_datagram();
        bytes[11] ^= 0x01;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Software),
            Err(Error::BadChecksum)
        );
        assert!(Repr::parse(&packet, ChecksumMode::Offloaded).is_ok());

        // A corrupted option byte is covered by the checksum too.
        let mut bytes = WITH_OPTIONS;
        bytes[21] ^= 0x10;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Software),
            Err(Error::BadChecksum)
        );
    }

    #[test]
    fn emit_reproduces_the_ping_header() {
        let repr = Repr {
            src_addr: SRC,
            dst_addr: DST,
            protocol: Protocol::Icmp,
            payload_len: 64,
            ttl: 64,
            ident: 0x3a5c,
            dont_frag: true,
            dscp_ecn: 0,
        };
        let mut buf = [0xffu8; 84];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet, ChecksumMode::Software);
        assert_eq!(packet.payload_mut().len(), 64);
        assert_eq!(&buf[..20], &ping_datagram()[..20]);

        let mut packet = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet, ChecksumMode::Offloaded);
        assert_eq!(packet.checksum(), 0);
    }

    #[test]
    fn quoted_datagram_may_be_cut_short() {
        let bytes = ping_datagram();
        let quote = &bytes[..28];
        assert_eq!(
            Packet::new_checked(quote).err(),
            Some(Error::Truncated),
            "a quote fails the full check"
        );
        let packet = Packet::new_checked_quoted(quote).unwrap();
        assert_eq!(packet.payload(), &bytes[20..28]);
        assert_eq!(packet.protocol(), Protocol::Icmp);
        for len in 0..28 {
            assert_eq!(
                Packet::new_checked_quoted(&bytes[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        let mut options = [0u8; 32];
        options.copy_from_slice(&WITH_OPTIONS);
        options[3] = 100; // the original was longer
        assert_eq!(
            Packet::new_checked_quoted(&options[..31]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked_quoted(&options[..]).unwrap().payload(),
            &WITH_OPTIONS[24..]
        );
        options[3] = 31; // the original datagram had only 7 bytes of payload
        assert_eq!(
            Packet::new_checked_quoted(&options[..]).err(),
            Some(Error::BadLength)
        );
        options[0] = 0x44;
        assert_eq!(
            Packet::new_checked_quoted(&options[..]).err(),
            Some(Error::BadHeaderLen)
        );
    }

    #[test]
    fn protocol_conversions_round_trip() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(Protocol::from(raw)), raw);
        }
        assert_eq!(Protocol::from(1), Protocol::Icmp);
        assert_eq!(Protocol::from(6), Protocol::Tcp);
        assert_eq!(Protocol::from(17), Protocol::Udp);
    }

    #[test]
    fn setters_write_the_expected_fields() {
        let mut buf = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_dscp(46); // EF
        p.set_ecn(2); // ECT(0)
        p.set_total_len(24);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 2);
        assert_eq!(buf[0], 0x46);
        assert_eq!(buf[1], 0xba);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
    }

    fn any_repr() -> impl Strategy<Value = Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..200,
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            any::<u8>(),
        )
            .prop_map(
                |(src, dst, proto, payload_len, ttl, ident, dont_frag, dscp_ecn)| Repr {
                    src_addr: Ipv4Addr::from(src),
                    dst_addr: Ipv4Addr::from(dst),
                    protocol: Protocol::from(proto),
                    payload_len,
                    ttl,
                    ident,
                    dont_frag,
                    dscp_ecn,
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..100), v4 in any::<bool>()) {
            if v4 && !bytes.is_empty() {
                bytes[0] = 0x40 | (bytes[0] & 0x0f); // get past the version check more often
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    p.version(), p.dscp(), p.ecn(), p.ident(), p.dont_frag(), p.more_frags(),
                    p.frag_offset(), p.is_fragment(), p.ttl(), p.protocol(), p.checksum(),
                    p.src_addr(), p.dst_addr(), p.verify_checksum(),
                );
                prop_assert_eq!(p.options().len(), p.header_len() - HEADER_LEN);
                prop_assert_eq!(p.payload().len(), usize::from(p.total_len()) - p.header_len());
                for mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
                    if let Ok(repr) = Repr::parse(&p, mode) {
                        prop_assert_eq!(repr.payload_len, p.payload().len());
                    }
                }
            }
            if let Ok(p) = Packet::new_checked_quoted(&bytes[..]) {
                let _ = (p.options(), p.verify_checksum());
                prop_assert!(p.payload().len() >= 8);
            }
            // Clamping accessors never panic even unchecked.
            let p = Packet::new_unchecked(&bytes[..]);
            let _ = (p.options(), p.payload(), p.verify_checksum());
        }

        #[test]
        fn emit_then_parse_is_identity(repr in any_repr(), pad in 0usize..20) {
            let mut buf = vec![0xa5u8; repr.buffer_len() + pad];
            let mut packet = Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut packet, ChecksumMode::Software);
            let packet = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(!packet.is_fragment());
            prop_assert_eq!(Repr::parse(&packet, ChecksumMode::Software).unwrap(), repr);
            prop_assert_eq!(packet.payload().len(), repr.payload_len);
        }

        #[test]
        fn etherparse_built_headers_parse_alike(
            dscp in 0u8..64, ecn in 0u8..4, ident in any::<u16>(), df in any::<bool>(),
            mf in any::<bool>(), frag in 0u16..8192, ttl in any::<u8>(),
            proto in any::<u8>().prop_filter("etherparse reads 51 (AH) as an extension header", |p| *p != 51),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), option_words in 0usize..=10,
            option_byte in any::<u8>(), payload_len in 0usize..64, pad in 0usize..8,
        ) {
            use etherparse::{Ipv4Header, IpNumber, Ipv4Dscp, Ipv4Ecn, IpFragOffset, Ipv4Options};
            let mut h = Ipv4Header::new(payload_len as u16, ttl, IpNumber(proto), src, dst).unwrap();
            h.dscp = Ipv4Dscp::try_new(dscp).unwrap();
            h.ecn = Ipv4Ecn::try_new(ecn).unwrap();
            h.identification = ident;
            h.dont_fragment = df;
            h.more_fragments = mf;
            h.fragment_offset = IpFragOffset::try_new(frag).unwrap();
            h.options = Ipv4Options::try_from(&vec![option_byte; option_words * 4][..]).unwrap();
            h.set_payload_len(payload_len).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut buf = Vec::new();
            h.write(&mut buf).unwrap();
            buf.extend((0..payload_len + pad).map(|i| i as u8));

            let theirs = etherparse::Ipv4HeaderSlice::from_slice(&buf).unwrap();
            let ours = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(ours.version(), theirs.version());
            prop_assert_eq!(ours.header_len(), usize::from(theirs.ihl()) * 4);
            prop_assert_eq!(ours.dscp(), theirs.dcp().value());
            prop_assert_eq!(ours.ecn(), theirs.ecn().value());
            prop_assert_eq!(ours.total_len(), theirs.total_len());
            prop_assert_eq!(ours.ident(), theirs.identification());
            prop_assert_eq!(ours.dont_frag(), theirs.dont_fragment());
            prop_assert_eq!(ours.more_frags(), theirs.more_fragments());
            prop_assert_eq!(ours.frag_offset(), theirs.fragments_offset().byte_offset());
            prop_assert_eq!(ours.is_fragment(), theirs.is_fragmenting_payload());
            prop_assert_eq!(ours.ttl(), theirs.ttl());
            prop_assert_eq!(u8::from(ours.protocol()), theirs.protocol().0);
            prop_assert_eq!(ours.checksum(), theirs.header_checksum());
            prop_assert_eq!(ours.src_addr(), theirs.source_addr());
            prop_assert_eq!(ours.dst_addr(), theirs.destination_addr());
            prop_assert_eq!(ours.options(), theirs.options());
            prop_assert!(ours.verify_checksum());
            let sliced = etherparse::Ipv4Slice::from_slice(&buf).unwrap();
            prop_assert_eq!(ours.payload(), sliced.payload().payload);
            let repr = Repr::parse(&ours, ChecksumMode::Software).unwrap();
            prop_assert_eq!(repr.payload_len, payload_len);
        }

        #[test]
        fn emitted_headers_parse_alike_in_etherparse(repr in any_repr()) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), ChecksumMode::Software);
            let (h, rest) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
            prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
            prop_assert_eq!(Ipv4Addr::from(h.source), repr.src_addr);
            prop_assert_eq!(Ipv4Addr::from(h.destination), repr.dst_addr);
            prop_assert_eq!(h.protocol.0, u8::from(repr.protocol));
            prop_assert_eq!(usize::from(h.payload_len().unwrap()), repr.payload_len);
            prop_assert_eq!(h.time_to_live, repr.ttl);
            prop_assert_eq!(h.identification, repr.ident);
            prop_assert_eq!(h.dont_fragment, repr.dont_frag);
            prop_assert!(!h.more_fragments);
            prop_assert_eq!(h.fragment_offset.value(), 0);
            prop_assert_eq!((h.dscp.value() << 2) | h.ecn.value(), repr.dscp_ecn);
            prop_assert!(h.options.is_empty());
            prop_assert_eq!(rest.len(), repr.payload_len);
        }
    }
}
