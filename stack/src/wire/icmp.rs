//! ICMP for IPv4 (RFC 792): echo request and reply, destination unreachable (with the next-hop
//! MTU of RFC 1191 for "fragmentation needed").
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   echo: Identifier            |   echo: Sequence Number       |
//! |   unreachable: unused         |   code 4: Next-Hop MTU        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  echo: data ... / errors: IP header + first 8 bytes of the offending datagram ...
//! +-+-+-+-+-
//! ```

use super::{ChecksumMode, Error, Result, checksum, read_u16, write_u16};

/// The length of the ICMP header (type, code, checksum and the 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;

/// The most of the offending datagram that an error message quotes.
///
/// RFC 1812 4.3.2.3: an ICMP error "SHOULD contain as much of the original datagram as possible
/// without the length of the ICMP datagram exceeding 576 bytes". Linux (`icmp_send`) quotes that
/// much: 576 - 20 (IP header) - 8 (ICMP header) = 548 bytes. Callers truncate `invoking` to this.
pub const MAX_INVOKING_LEN: usize = 548;

/// The least a destination-unreachable message must quote: a 20-byte IP header plus the first
/// 8 bytes of its payload (RFC 792: "Internet Header + 64 bits of Data Datagram").
pub const MIN_INVOKING_LEN: usize = 20 + 8;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const UNUSED: usize = 4;
    pub const MTU: usize = 6;
}

/// The ICMP message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// Echo reply, type 0.
    EchoReply,
    /// Destination unreachable, type 3.
    DstUnreachable,
    /// Echo request, type 8.
    EchoRequest,
    /// Time exceeded, type 11.
    TimeExceeded,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            8 => Message::EchoRequest,
            11 => Message::TimeExceeded,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::Unknown(other) => other,
        }
    }
}

/// The code of a destination-unreachable message (RFC 792; RFC 1122 3.2.2.1 lists more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    /// Net unreachable, code 0.
    NetUnreachable,
    /// Host unreachable, code 1.
    HostUnreachable,
    /// Protocol unreachable, code 2.
    ProtoUnreachable,
    /// Port unreachable, code 3.
    PortUnreachable,
    /// Fragmentation needed and DF set, code 4 (carries the next-hop MTU, RFC 1191).
    FragRequired,
    /// Any other code (5 and up: source route failed, administratively prohibited, ...).
    Other(u8),
}

impl From<u8> for DstUnreachable {
    fn from(value: u8) -> Self {
        match value {
            0 => DstUnreachable::NetUnreachable,
            1 => DstUnreachable::HostUnreachable,
            2 => DstUnreachable::ProtoUnreachable,
            3 => DstUnreachable::PortUnreachable,
            4 => DstUnreachable::FragRequired,
            other => DstUnreachable::Other(other),
        }
    }
}

impl From<DstUnreachable> for u8 {
    fn from(value: DstUnreachable) -> Self {
        match value {
            DstUnreachable::NetUnreachable => 0,
            DstUnreachable::HostUnreachable => 1,
            DstUnreachable::ProtoUnreachable => 2,
            DstUnreachable::PortUnreachable => 3,
            DstUnreachable::FragRequired => 4,
            DstUnreachable::Other(other) => other,
        }
    }
}

/// A read/write view over an ICMP message. The buffer is the whole message: the IPv4 payload
/// ([`super::ipv4::Packet::payload`], which ends at the IP total length).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Meant for emitting into a buffer of at least
    /// [`Repr::buffer_len`] bytes; getters on a buffer shorter than 8 bytes may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking that it holds the 8-byte header.
    ///
    /// Errors: [`Error::Truncated`] if it does not (Linux `icmp_rcv`: `pskb_may_pull(skb,
    /// sizeof(*icmph))`).
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message type.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The code (meaning depends on the type).
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The identifier of an echo request or reply (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// The sequence number of an echo request or reply (bytes 6..8).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// The next-hop MTU of a "fragmentation needed" message (bytes 6..8, RFC 1191 4). Zero from
    /// routers that predate RFC 1191.
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MTU)
    }

    /// Everything after the 8-byte header: echo data, or the quoted datagram of an error.
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True if the checksum verifies. RFC 792: "The checksum is the 16-bit ones's complement of
    /// the one's complement sum of the ICMP message starting with the ICMP Type."
    pub fn verify_checksum(&self) -> bool {
        checksum::Checksum::new()
            .add_bytes(self.buffer.as_ref())
            .verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, msg_type: Message) {
        self.buffer.as_mut()[field::TYPE] = msg_type.into();
    }

    /// Sets the code.
    pub fn set_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, ident);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, seq_no: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, seq_no);
    }

    /// Sets the next-hop MTU, and zeroes the unused bytes 4..6 before it.
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(self.buffer.as_mut(), field::UNUSED, 0);
        write_u16(self.buffer.as_mut(), field::MTU, mtu);
    }

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Everything after the 8-byte header, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An ICMP message this stack sends or handles, borrowing its data from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Repr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier (Linux ping: the socket's port, or its pid for raw sockets).
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// The data, echoed back unchanged in the reply.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier, copied from the request.
        ident: u16,
        /// Sequence number, copied from the request.
        seq_no: u16,
        /// The data, copied from the request.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// The code.
        reason: DstUnreachable,
        /// The next-hop MTU for [`DstUnreachable::FragRequired`] (RFC 1191); 0 for other codes,
        /// where the field is unused (RFC 792).
        next_hop_mtu: u16,
        /// The raw bytes of the offending datagram: its IP header and at least the first 8 bytes
        /// of its payload. Parse them with [`super::ipv4::Packet::new_checked_quoted`].
        invoking: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Validates and reads an ICMP message.
    ///
    /// Errors: [`Error::BadChecksum`] when `mode` is `Software` and the checksum (over the whole
    /// message) does not verify; [`Error::Unsupported`] for types other than echo request, echo
    /// reply and destination unreachable; [`Error::Truncated`] for a destination unreachable that
    /// quotes fewer than 28 bytes.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        mode: ChecksumMode,
    ) -> Result<Repr<'a>> {
        let buffer: &'a T = packet.buffer;
        let bytes: &'a [u8] = buffer.as_ref();
        let data: &'a [u8] = bytes.get(HEADER_LEN..).unwrap_or(&[]);
        // Linux icmp_rcv: `if (skb_checksum_simple_validate(skb)) goto csum_error;`
        if mode == ChecksumMode::Software && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        // RFC 792 gives the echo messages code 0; Linux (icmp_echo) does not check the code, and
        // neither do we.
        match packet.msg_type() {
            Message::EchoRequest => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::EchoReply => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::DstUnreachable => {
                // RFC 792: the message carries "Internet Header + 64 bits of Data Datagram".
                // Linux icmp_unreach first pulls the IP header, then icmp_socket_deliver the
                // header plus 8 bytes; shorter quotes are dropped as errors.
                if data.len() < MIN_INVOKING_LEN {
                    return Err(Error::Truncated);
                }
                let reason = DstUnreachable::from(packet.code());
                // RFC 1191 4: the next-hop MTU is in the low-order 16 bits of the "unused"
                // field, for code 4 only.
                let next_hop_mtu = if reason == DstUnreachable::FragRequired {
                    packet.next_hop_mtu()
                } else {
                    0
                };
                Ok(Repr::DstUnreachable {
                    reason,
                    next_hop_mtu,
                    invoking: data,
                })
            }
            Message::TimeExceeded | Message::Unknown(_) => Err(Error::Unsupported),
        }
    }

    /// The length of the message [`Repr::emit`] writes: 8 plus the data or quote.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Repr::DstUnreachable { invoking, .. } => HEADER_LEN + invoking.len(),
        }
    }

    /// Writes the message into `packet` and copies the data or quote in after the header.
    ///
    /// The buffer should be exactly [`Repr::buffer_len`] bytes long: the checksum covers the whole
    /// buffer. (A buffer too short is a caller bug: a debug assertion, and in release builds only
    /// what fits is copied.) The quote of a destination unreachable should already be cut to
    /// [`MAX_INVOKING_LEN`].
    ///
    /// With `Software` the checksum is computed. With `Offloaded` the field is left zero: ICMP has
    /// no pseudo-header, so only a NIC with generic (start/offset) checksum offload can fill it;
    /// most callers should pass `Software` here.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, mode: ChecksumMode) {
        debug_assert!(
            packet.buffer.as_ref().len() >= self.buffer_len(),
            "ICMP buffer too short"
        );
        let payload = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                packet.set_msg_type(Message::EchoRequest);
                packet.set_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                packet.set_msg_type(Message::EchoReply);
                packet.set_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                invoking,
            } => {
                packet.set_msg_type(Message::DstUnreachable);
                packet.set_code(reason.into());
                // RFC 792: the second word is "unused" (zero) except for RFC 1191's MTU.
                let mtu = if reason == DstUnreachable::FragRequired {
                    next_hop_mtu
                } else {
                    0
                };
                packet.set_next_hop_mtu(mtu);
                invoking
            }
        };
        let out = packet.data_mut();
        let n = payload.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), payload.get(..n)) {
            dst.copy_from_slice(src);
        }
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
    use crate::wire::{Ipv4Addr, ipv4};
    use proptest::prelude::*;

    /// The 56 data bytes of iputils `ping` on 64-bit Linux: a 16-byte `struct timeval`
    /// (tv_sec, tv_usec, little-endian) followed by 0x10, 0x11, ..., 0x37.
    fn ping_data() -> [u8; 56] {
        let mut d = [0u8; 56];
        d[..8].copy_from_slice(&1_700_000_000u64.to_le_bytes());
        d[8..16].copy_from_slice(&123_456u64.to_le_bytes());
        for (i, b) in d.iter_mut().enumerate().skip(16) {
            *b = i as u8;
        }
        d
    }

    /// `ping -c1 198.18.0.2` as it appears on the wire (IPv4 + ICMP, 84 bytes): ident 0x0b2e,
    /// sequence 1, checksum 0x97c5.
    const PING_REQUEST: [u8; 84] = [
        // IPv4: 198.18.0.1 -> 198.18.0.2, ident 0x3a5c, DF, TTL 64, ICMP
        0x45, 0x00, 0x00, 0x54, 0x3a, 0x5c, 0x40, 0x00, 0x40, 0x01, 0x74, 0x25, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x12, 0x00, 0x02, //
        // ICMP: type 8, code 0, checksum, ident 0x0b2e, seq 1
        0x08, 0x00, 0x97, 0xc5, 0x0b, 0x2e, 0x00, 0x01, //
        // timeval: 1700000000 s, 123456 us (little-endian u64s)
        0x00, 0xf1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00, 0x40, 0xe2, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, //
        // pattern 0x10..0x37
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e,
        0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d,
        0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    /// A port unreachable from 198.18.0.2 quoting a UDP datagram 198.18.0.1:40000 -> :9 with a
    /// 4-byte payload, as Linux sends it (the whole 32-byte datagram is quoted).
    const PORT_UNREACHABLE: [u8; 40] = [
        0x03, 0x03, 0x89, 0x42, 0x00, 0x00, 0x00, 0x00, // type 3 code 3, checksum, unused
        0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x9c, 0x71, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x12, 0x00, 0x02, // quoted IPv4 header
        0x9c, 0x40, 0x00, 0x09, 0x00, 0x0c, 0xef, 0x8a, // quoted UDP header
        0x74, 0x65, 0x73, 0x74, // "test"
    ];

    #[test]
    fn ping_echo_request_is_parsed() {
        let ip = ipv4::Packet::new_checked(&PING_REQUEST[..]).unwrap();
        assert_eq!(ip.protocol(), ipv4::Protocol::Icmp);
        let packet = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(packet.msg_type(), Message::EchoRequest);
        assert_eq!(packet.code(), 0);
        assert_eq!(packet.checksum(), 0x97c5);
        assert_eq!(packet.echo_ident(), 0x0b2e);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.data().len(), 56);
        assert!(packet.verify_checksum());
        let data = ping_data();
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Software).unwrap(),
            Repr::EchoRequest {
                ident: 0x0b2e,
                seq_no: 1,
                data: &data[..],
            }
        );
    }

    #[test]
    fn echo_reply_to_ping_has_the_same_data_and_a_correct_checksum() {
        let request = Packet::new_checked(&PING_REQUEST[20..]).unwrap();
        let Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = Repr::parse(&request, ChecksumMode::Software).unwrap()
        else {
            panic!("not an echo request");
        };
        let reply = Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        assert_eq!(reply.buffer_len(), 64);
        let mut buf = [0u8; 64];
        reply.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            ChecksumMode::Software,
        );
        // Only the type changes: 8 -> 0, so the checksum grows by 0x0800 (RFC 1624).
        assert_eq!(&buf[..2], &[0x00, 0x00]);
        assert_eq!(&buf[2..4], &(0x97c5u16 + 0x0800).to_be_bytes());
        assert_eq!(&buf[4..], &PING_REQUEST[24..]);
        let parsed = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&parsed, ChecksumMode::Software).unwrap(), reply);
    }

    #[test]
    fn port_unreachable_is_parsed_with_its_quote() {
        let packet = Packet::new_checked(&PORT_UNREACHABLE[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::DstUnreachable);
        assert_eq!(
            DstUnreachable::from(packet.code()),
            DstUnreachable::PortUnreachable
        );
        assert!(packet.verify_checksum());
        let repr = Repr::parse(&packet, ChecksumMode::Software).unwrap();
        assert_eq!(
            repr,
            Repr::DstUnreachable {
                reason: DstUnreachable::PortUnreachable,
                next_hop_mtu: 0,
                invoking: &PORT_UNREACHABLE[8..],
            }
        );
        let Repr::DstUnreachable { invoking, .. } = repr else {
            unreachable!()
        };
        let quoted = ipv4::Packet::new_checked_quoted(invoking).unwrap();
        assert_eq!(quoted.protocol(), ipv4::Protocol::Udp);
        assert_eq!(quoted.src_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(&quoted.payload()[..4], &[0x9c, 0x40, 0x00, 0x09]);
    }

    #[test]
    fn frag_required_carries_the_next_hop_mtu() {
        let mut buf = [0u8; 36];
        let invoking = [0x45u8; 28];
        let repr = Repr::DstUnreachable {
            reason: DstUnreachable::FragRequired,
            next_hop_mtu: 1400,
            invoking: &invoking,
        };
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            ChecksumMode::Software,
        );
        assert_eq!(&buf[..2], &[3, 4]);
        assert_eq!(&buf[4..8], &[0, 0, 0x05, 0x78]);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.next_hop_mtu(), 1400);
        assert_eq!(Repr::parse(&packet, ChecksumMode::Software).unwrap(), repr);
    }

    #[test]
    fn next_hop_mtu_is_ignored_for_other_codes() {
        let mut buf = PORT_UNREACHABLE;
        buf[6..8].copy_from_slice(&1400u16.to_be_bytes());
        Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let packet = Packet::new_checked(&buf[..]).unwrap();
        let Repr::DstUnreachable { next_hop_mtu, .. } =
            Repr::parse(&packet, ChecksumMode::Software).unwrap()
        else {
            panic!()
        };
        assert_eq!(next_hop_mtu, 0);
    }

    #[test]
    fn short_quote_is_truncated() {
        for len in HEADER_LEN..HEADER_LEN + MIN_INVOKING_LEN {
            let mut buf = PORT_UNREACHABLE;
            let mut packet = Packet::new_unchecked(&mut buf[..len]);
            packet.fill_checksum();
            let packet = Packet::new_checked(&buf[..len]).unwrap();
            assert_eq!(
                Repr::parse(&packet, ChecksumMode::Software),
                Err(Error::Truncated),
                "{len}"
            );
        }
    }

    #[test]
    fn truncated_header_is_rejected_at_every_length() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&PING_REQUEST[20..20 + len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        // An echo with no data is fine.
        let mut buf = [8u8, 0, 0, 0, 0, 1, 0, 2];
        Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Software).unwrap(),
            Repr::EchoRequest {
                ident: 1,
                seq_no: 2,
                data: &[]
            }
        );
    }

    #[test]
    fn bad_checksum_is_rejected_in_software_mode_only() {
        let mut buf = [0u8; 64];
        buf.copy_from_slice(&PING_REQUEST[20..]);
        buf[63] ^= 0xff; // corrupt the last data byte
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Software),
            Err(Error::BadChecksum)
        );
        assert!(Repr::parse(&packet, ChecksumMode::Offloaded).is_ok());
    }

    #[test]
    fn odd_length_message_checksum_pads_with_zero() {
        let data = [1u8, 2, 3];
        let repr = Repr::EchoRequest {
            ident: 7,
            seq_no: 9,
            data: &data,
        };
        let mut buf = [0u8; 11];
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            ChecksumMode::Software,
        );
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(Repr::parse(&packet, ChecksumMode::Software).unwrap(), repr);
    }

    #[test]
    fn other_types_are_unsupported() {
        for ty in [4u8, 5, 11, 12, 13, 14, 42, 255] {
            let mut buf = [0u8; 36];
            buf[0] = ty;
            Packet::new_unchecked(&mut buf[..]).fill_checksum();
            let packet = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(
                Repr::parse(&packet, ChecksumMode::Software),
                Err(Error::Unsupported),
                "{ty}"
            );
        }
    }

    #[test]
    fn echo_code_is_not_checked_like_linux() {
        let mut buf = [0u8; 64];
        buf.copy_from_slice(&PING_REQUEST[20..]);
        buf[1] = 5;
        Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert!(matches!(
            Repr::parse(&packet, ChecksumMode::Software),
            Ok(Repr::EchoRequest { .. })
        ));
    }

    #[test]
    fn offloaded_emit_leaves_the_checksum_zero() {
        let mut buf = [0xffu8; 10];
        let repr = Repr::EchoReply {
            ident: 1,
            seq_no: 1,
            data: &[0xab, 0xcd],
        };
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            ChecksumMode::Offloaded,
        );
        assert_eq!(&buf[2..4], &[0, 0]);
        assert_eq!(&buf[8..], &[0xab, 0xcd]);
    }

    #[test]
    fn max_invoking_len_fills_576_bytes() {
        assert_eq!(20 + HEADER_LEN + MAX_INVOKING_LEN, 576);
    }

    #[test]
    fn type_and_code_conversions_round_trip() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(Message::from(raw)), raw);
            assert_eq!(u8::from(DstUnreachable::from(raw)), raw);
        }
        assert_eq!(Message::from(0), Message::EchoReply);
        assert_eq!(Message::from(3), Message::DstUnreachable);
        assert_eq!(Message::from(8), Message::EchoRequest);
        assert_eq!(Message::from(11), Message::TimeExceeded);
        assert_eq!(DstUnreachable::from(4), DstUnreachable::FragRequired);
    }

    #[derive(Debug, Clone)]
    enum Owned {
        Request(u16, u16, Vec<u8>),
        Reply(u16, u16, Vec<u8>),
        Unreachable(DstUnreachable, u16, Vec<u8>),
    }

    impl Owned {
        fn repr(&self) -> Repr<'_> {
            match self {
                Owned::Request(ident, seq_no, data) => Repr::EchoRequest {
                    ident: *ident,
                    seq_no: *seq_no,
                    data,
                },
                Owned::Reply(ident, seq_no, data) => Repr::EchoReply {
                    ident: *ident,
                    seq_no: *seq_no,
                    data,
                },
                Owned::Unreachable(reason, mtu, invoking) => Repr::DstUnreachable {
                    reason: *reason,
                    next_hop_mtu: if *reason == DstUnreachable::FragRequired {
                        *mtu
                    } else {
                        0
                    },
                    invoking,
                },
            }
        }
    }

    fn any_owned() -> impl Strategy<Value = Owned> {
        let data = || proptest::collection::vec(any::<u8>(), 0..100);
        prop_oneof![
            (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Owned::Request(i, s, d)),
            (any::<u16>(), any::<u16>(), data()).prop_map(|(i, s, d)| Owned::Reply(i, s, d)),
            (
                any::<u8>(),
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), MIN_INVOKING_LEN..MAX_INVOKING_LEN)
            )
                .prop_map(|(c, m, d)| Owned::Unreachable(
                    DstUnreachable::from(c),
                    m,
                    d
                )),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), ty in prop_oneof![Just(0u8), Just(3), Just(8), any::<u8>()]) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() {
                *b = ty;
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    p.msg_type(), p.code(), p.checksum(), p.echo_ident(), p.echo_seq_no(),
                    p.next_hop_mtu(), p.data(), p.verify_checksum(),
                );
                prop_assert_eq!(p.data().len(), bytes.len() - HEADER_LEN);
                for mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
                    if let Ok(repr) = Repr::parse(&p, mode) {
                        prop_assert_eq!(repr.buffer_len(), bytes.len());
                    }
                }
            } else {
                prop_assert!(bytes.len() < HEADER_LEN);
            }
        }

        #[test]
        fn emit_then_parse_is_identity(owned in any_owned()) {
            let repr = owned.repr();
            let mut buf = vec![0xa5u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), ChecksumMode::Software);
            let packet = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(packet.verify_checksum());
            prop_assert_eq!(Repr::parse(&packet, ChecksumMode::Software).unwrap(), repr);
        }

        #[test]
        fn echo_agrees_with_etherparse(
            request in any::<bool>(), id in any::<u16>(), seq in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Slice, Icmpv4Type};
            let echo = IcmpEchoHeader { id, seq };
            let ty = if request { Icmpv4Type::EchoRequest(echo) } else { Icmpv4Type::EchoReply(echo) };
            // etherparse builds, we parse.
            let header = Icmpv4Header::with_checksum(ty.clone(), &data);
            let mut theirs = header.to_bytes().to_vec();
            theirs.extend_from_slice(&data);
            let packet = Packet::new_checked(&theirs[..]).unwrap();
            prop_assert_eq!(packet.checksum(), header.checksum);
            let expected = if request {
                Repr::EchoRequest { ident: id, seq_no: seq, data: &data }
            } else {
                Repr::EchoReply { ident: id, seq_no: seq, data: &data }
            };
            prop_assert_eq!(Repr::parse(&packet, ChecksumMode::Software).unwrap(), expected);
            // We build, etherparse parses.
            let mut ours = vec![0u8; expected.buffer_len()];
            expected.emit(&mut Packet::new_unchecked(&mut ours[..]), ChecksumMode::Software);
            prop_assert_eq!(&ours, &theirs);
            let slice = Icmpv4Slice::from_slice(&ours).unwrap();
            prop_assert_eq!(slice.icmp_type(), ty);
            prop_assert_eq!(slice.payload(), &data[..]);
        }

        #[test]
        fn frag_required_agrees_with_etherparse(mtu in any::<u16>(), quote in proptest::collection::vec(any::<u8>(), MIN_INVOKING_LEN..100)) {
            use etherparse::{Icmpv4Slice, Icmpv4Type, icmpv4::DestUnreachableHeader};
            let repr = Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu: mtu, invoking: &quote };
            let mut ours = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut ours[..]), ChecksumMode::Software);
            let slice = Icmpv4Slice::from_slice(&ours).unwrap();
            prop_assert_eq!(
                slice.icmp_type(),
                Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu })
            );
            prop_assert_eq!(slice.header().checksum, slice.icmp_type().calc_checksum(&quote));
            prop_assert_eq!(slice.payload(), &quote[..]);
        }
    }
}
