//! UDP datagrams (RFC 768) over IPv4.
//!
//! ```text
//!  0      7 8     15 16    23 24    31
//! +--------+--------+--------+--------+
//! |     Source      |   Destination   |
//! |      Port       |      Port       |
//! +--------+--------+--------+--------+
//! |     Length      |    Checksum     |
//! +--------+--------+--------+--------+
//! |          data octets ...
//! +---------------- ...
//! ```

use super::{ChecksumMode, Error, Ipv4Addr, Result, checksum, read_u16, write_u16};

/// The length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// The largest payload the 16-bit length field can describe (65535 - 8).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

/// IANA protocol number of UDP, for the pseudo-header.
const PROTOCOL_UDP: u8 = 17;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A read/write view over a UDP datagram. The buffer is the IPv4 payload
/// ([`super::ipv4::Packet::payload`]).
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

    /// Wraps a buffer after checking the length field against it.
    ///
    /// Errors: [`Error::Truncated`] if the buffer is shorter than 8 bytes;
    /// [`Error::BadLength`] if the length field is below 8; [`Error::Truncated`] if the length
    /// field runs past the buffer. A buffer longer than the length field is fine: the payload
    /// ends at the length field. (Linux `__udp4_lib_rcv` drops the last two cases as "short
    /// packet", and trims the datagram to the length field.)
    pub fn new_checked(buffer: T) -> Result<Self> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = Self::new_unchecked(buffer);
        let field_len = usize::from(packet.len());
        // RFC 768: "Length is the length in octets of this user datagram including this header
        // and the data. (This means the minimum value of the length is eight.)"
        if field_len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port (0 if unused, RFC 768).
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True if the length field says there is no payload (length 8).
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0: none was computed).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram (header and payload) as the length field delimits it, clamped to the buffer.
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = match data.get(field::LENGTH..field::LENGTH + 2) {
            Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])).min(data.len()),
            _ => 0,
        };
        data.get(..end).unwrap_or(&[])
    }

    /// The payload: from the end of the header to the length field (not to the end of the
    /// buffer). Never panics.
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The one's-complement sum of the pseudo-header and the datagram, checksum field included.
    fn sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> checksum::Checksum {
        let datagram = self.datagram();
        let len = u16::try_from(datagram.len()).unwrap_or(u16::MAX);
        checksum::pseudo_header(src, dst, PROTOCOL_UDP, len).add_bytes(datagram)
    }

    /// True if the checksum verifies, with the IPv4 pseudo-header of `src` and `dst`.
    ///
    /// RFC 768: "An all zero transmitted checksum value means that the transmitter generated no
    /// checksum": such a datagram verifies. (Linux accepts it too, on IPv4.)
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || self.sum(src, dst).verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the length field (header plus payload).
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Computes the checksum over the pseudo-header, the header and the payload (as far as the
    /// length field says) and stores it.
    ///
    /// RFC 768: "If the computed checksum is zero, it is transmitted as all ones (the equivalent
    /// in one's complement arithmetic)", since zero on the wire means "no checksum".
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = match self.sum(src, dst).finish() {
            0 => 0xffff,
            c => c,
        };
        self.set_checksum(c);
    }

    /// Everything after the header, mutable, to the END OF THE BUFFER (not to the length field,
    /// unlike [`Packet::payload`]). Never panics.
    ///
    /// This is where a sender writes the payload before [`Repr::emit`] (emit-in-place), when the
    /// length field is not written yet. Wrap a buffer of exactly [`Repr::buffer_len`] bytes (for
    /// instance the `payload_mut` of an IPv4 packet whose header was emitted) and this is exactly
    /// the payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
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

/// The fields of a UDP header. The payload stays in the packet: see [`Repr::emit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port (0 if the sender expects no reply, RFC 768).
    pub src_port: u16,
    /// Destination port (never 0 once parsed).
    pub dst_port: u16,
    /// Payload length: the length field minus 8.
    pub payload_len: usize,
}

impl Repr {
    /// Validates and reads a checked datagram carried from `src` to `dst`.
    ///
    /// Errors: [`Error::BadChecksum`] when `mode` is `Software` and a non-zero checksum does not
    /// verify; [`Error::Malformed`] when the destination port is 0 (reserved; nothing can listen
    /// on it). A source port of 0 is allowed (RFC 768: "If not used, a value of zero is
    /// inserted").
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) -> Result<Repr> {
        // Linux __udp4_lib_rcv -> udp4_csum_init: a zero checksum skips verification on IPv4.
        if mode == ChecksumMode::Software && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        if packet.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()).saturating_sub(HEADER_LEN),
        })
    }

    /// The header length: 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload: 8 + `payload_len`.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header of a datagram whose payload is ALREADY in place (emit-in-place: no copy).
    ///
    /// The caller first writes `payload_len` bytes at the start of [`Packet::payload_mut`] (a
    /// buffer of at least [`Repr::buffer_len`] bytes; exactly that many is simplest), then calls
    /// `emit`, which writes the ports and the length field and then the checksum over the header
    /// and the first `payload_len` payload bytes as they stand:
    ///
    /// - `Software`: the full checksum over pseudo-header, header and payload (0 sent as 0xffff);
    /// - `Offloaded`: the pseudo-header sum, NOT complemented, as NICs with partial checksum
    ///   offload expect (Linux `CHECKSUM_PARTIAL`: `uh->check = ~csum_tcpudp_magic(...)`); the
    ///   NIC adds the header and payload and stores the complement.
    ///
    /// `payload_len` must be at most [`MAX_PAYLOAD_LEN`] (a debug assertion; clamped otherwise).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) {
        debug_assert!(self.payload_len <= MAX_PAYLOAD_LEN, "UDP payload too long");
        let len = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        match mode {
            ChecksumMode::Software => packet.fill_checksum(src, dst),
            ChecksumMode::Offloaded => {
                let sum = checksum::pseudo_header(src, dst, PROTOCOL_UDP, len).sum();
                packet.set_checksum(sum);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use crate::wire::{ethernet, ipv4};
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// `echo hello | nc -u -p 40000 198.18.0.2 7` from Linux, whole Ethernet frame:
    /// UDP 40000 -> 7, length 14, checksum 0x9386, payload "hello\n".
    const UDP_FRAME: [u8; 48] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08,
        0x00, // eth
        0x45, 0x00, 0x00, 0x22, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x11, 0xef, 0xb3, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x12, 0x00, 0x02, // IPv4, total length 34
        0x9c, 0x40, 0x00, 0x07, 0x00, 0x0e, 0x93, 0x86, // UDP header
        0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a, // "hello\n"
    ];

    fn udp_of(frame: &[u8]) -> &[u8] {
        let frame = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(frame.ethertype(), ethernet::EtherType::Ipv4);
        let ip_bytes = &frame.into_inner()[ethernet::HEADER_LEN..];
        let ip = ipv4::Packet::new_checked(ip_bytes).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), ipv4::Protocol::Udp);
        let hl = ip.header_len();
        let tl = usize::from(ip.total_len());
        &ip.into_inner()[hl..tl]
    }

    #[test]
    fn datagram_fields_are_read() {
        let packet = Packet::new_checked(udp_of(&UDP_FRAME)).unwrap();
        assert_eq!(packet.src_port(), 40000);
        assert_eq!(packet.dst_port(), 7);
        assert_eq!(packet.len(), 14);
        assert!(!packet.is_empty());
        assert_eq!(packet.checksum(), 0x9386);
        assert_eq!(packet.payload(), b"hello\n");
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, Ipv4Addr::new(198, 18, 0, 3)));
        assert_eq!(
            Repr::parse(&packet, SRC, DST, ChecksumMode::Software).unwrap(),
            Repr {
                src_port: 40000,
                dst_port: 7,
                payload_len: 6
            }
        );
    }

    #[test]
    fn emit_in_place_reproduces_the_fixture() {
        let mut buf = [0u8; 14];
        buf[8..].copy_from_slice(b"hello\n");
        let repr = Repr {
            src_port: 40000,
            dst_port: 7,
            payload_len: 6,
        };
        assert_eq!(repr.header_len(), 8);
        assert_eq!(repr.buffer_len(), 14);
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            ChecksumMode::Software,
        );
        assert_eq!(&buf[..], &UDP_FRAME[34..]);
    }

    #[test]
    fn payload_mut_then_emit() {
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            payload_len: 3,
        };
        let mut buf = [0u8; 20]; // bigger than needed: a pool buffer
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.payload_mut()[..3].copy_from_slice(b"abc");
        repr.emit(&mut packet, SRC, DST, ChecksumMode::Software);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.len(), 11);
        assert_eq!(packet.payload(), b"abc");
        assert!(packet.verify_checksum(SRC, DST));
        // The bytes after the datagram are not covered.
        buf[15] ^= 0xff;
        assert!(
            Packet::new_checked(&buf[..])
                .unwrap()
                .verify_checksum(SRC, DST)
        );
    }

    #[test]
    fn offloaded_emit_writes_the_uncomplemented_pseudo_header_sum() {
        let mut buf = [0u8; 14];
        buf[8..].copy_from_slice(b"hello\n");
        let repr = Repr {
            src_port: 40000,
            dst_port: 7,
            payload_len: 6,
        };
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            ChecksumMode::Offloaded,
        );
        // 0xc612 + 0x0001 + 0xc612 + 0x0002 + 0x0011 + 0x000e = 0x18c46 -> 0x8c47.
        assert_eq!(&buf[6..8], &[0x8c, 0x47]);
        // What the NIC then does: complement of the sum over the datagram with that seed.
        let nic = checksum::checksum(&buf);
        buf[6..8].copy_from_slice(&nic.to_be_bytes());
        assert_eq!(&buf[..], &UDP_FRAME[34..]);
    }

    #[test]
    fn zero_checksum_means_none_and_verifies() {
        let mut buf = [0u8; 14];
        buf.copy_from_slice(&UDP_FRAME[34..]);
        buf[6] = 0;
        buf[7] = 0;
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert!(packet.verify_checksum(SRC, DST));
        assert!(Repr::parse(&packet, SRC, DST, ChecksumMode::Software).is_ok());
    }

    #[test]
    fn computed_zero_checksum_is_sent_as_all_ones() {
        // Choose a payload word that makes the one's-complement sum 0xffff, i.e. checksum 0.
        let mut buf = [0u8; 10];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_src_port(1);
        packet.set_dst_port(2);
        packet.set_len(10);
        let sum = checksum::pseudo_header(SRC, DST, 17, 10)
            .add_bytes(&buf[..8])
            .sum();
        buf[8..10].copy_from_slice(&(!sum).to_be_bytes());
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.fill_checksum(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(SRC, DST));
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            payload_len: 2,
        };
        repr.emit(&mut packet, SRC, DST, ChecksumMode::Software);
        assert_eq!(packet.checksum(), 0xffff);
    }

    #[test]
    fn bad_checksum_is_rejected_in_software_mode_only() {
        let mut buf = [0u8; 14];
        buf.copy_from_slice(&UDP_FRAME[34..]);
        buf[13] ^= 0x01;
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet, SRC, DST, ChecksumMode::Software),
            Err(Error::BadChecksum)
        );
        assert!(Repr::parse(&packet, SRC, DST, ChecksumMode::Offloaded).is_ok());
    }

    #[test]
    fn truncated_header_is_rejected_at_every_length() {
        let udp = udp_of(&UDP_FRAME);
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&udp[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
    }

    #[test]
    fn length_beyond_buffer_is_truncated() {
        let udp = udp_of(&UDP_FRAME);
        for len in HEADER_LEN..udp.len() {
            assert_eq!(
                Packet::new_checked(&udp[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        let mut buf = [0u8; 14];
        buf.copy_from_slice(udp);
        buf[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(Packet::new_checked(&buf[..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn length_below_header_is_bad_length() {
        for field in 0u16..8 {
            let mut buf = [0u8; 14];
            buf.copy_from_slice(&UDP_FRAME[34..]);
            buf[4..6].copy_from_slice(&field.to_be_bytes());
            assert_eq!(
                Packet::new_checked(&buf[..]).err(),
                Some(Error::BadLength),
                "{field}"
            );
        }
    }

    #[test]
    fn buffer_longer_than_length_is_trimmed() {
        let mut buf = [0u8; 20];
        buf[..14].copy_from_slice(&UDP_FRAME[34..]);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.payload(), b"hello\n");
        assert!(packet.verify_checksum(SRC, DST));
        // A datagram with no payload.
        let mut buf = [0u8; 8];
        let repr = Repr {
            src_port: 5,
            dst_port: 6,
            payload_len: 0,
        };
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            ChecksumMode::Software,
        );
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert!(packet.is_empty());
        assert_eq!(
            Repr::parse(&packet, SRC, DST, ChecksumMode::Software).unwrap(),
            repr
        );
    }

    #[test]
    fn destination_port_zero_is_malformed_and_source_port_zero_is_allowed() {
        let mut buf = [0u8; 8];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        Repr {
            src_port: 9,
            dst_port: 0,
            payload_len: 0,
        }
        .emit(&mut packet, SRC, DST, ChecksumMode::Software);
        assert_eq!(
            Repr::parse(&packet, SRC, DST, ChecksumMode::Software),
            Err(Error::Malformed)
        );
        Repr {
            src_port: 0,
            dst_port: 9,
            payload_len: 0,
        }
        .emit(&mut packet, SRC, DST, ChecksumMode::Software);
        assert_eq!(
            Repr::parse(&packet, SRC, DST, ChecksumMode::Software)
                .unwrap()
                .src_port,
            0
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), len in 0u16..80, src in any::<[u8; 4]>(), dst in any::<[u8; 4]>()) {
            let mut bytes = bytes;
            if bytes.len() >= 6 {
                bytes[4..6].copy_from_slice(&len.to_be_bytes()); // plausible lengths more often
            }
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.src_port(), p.dst_port(), p.checksum(), p.is_empty(), p.verify_checksum(src, dst));
                prop_assert_eq!(p.payload().len(), usize::from(p.len()) - HEADER_LEN);
                for mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
                    if let Ok(repr) = Repr::parse(&p, src, dst, mode) {
                        prop_assert_eq!(repr.payload_len, p.payload().len());
                    }
                }
            }
            let p = Packet::new_unchecked(&bytes[..]);
            let _ = p.payload();
        }

        #[test]
        fn emit_then_parse_is_identity(
            src_port in any::<u16>(), dst_port in 1u16.., payload in proptest::collection::vec(any::<u8>(), 0..200),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), pad in 0usize..8,
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = Repr { src_port, dst_port, payload_len: payload.len() };
            let mut buf = vec![0u8; repr.buffer_len() + pad];
            buf[HEADER_LEN..repr.buffer_len()].copy_from_slice(&payload);
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), src, dst, ChecksumMode::Software);
            let packet = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_ne!(packet.checksum(), 0);
            prop_assert_eq!(Repr::parse(&packet, src, dst, ChecksumMode::Software).unwrap(), repr);
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn agrees_with_etherparse(
            src_port in any::<u16>(), dst_port in 1u16.., payload in proptest::collection::vec(any::<u8>(), 0..200),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
        ) {
            use etherparse::{UdpHeader, UdpSlice};
            let theirs = UdpHeader::without_ipv4_checksum(src_port, dst_port, payload.len()).unwrap();
            let expected = theirs.calc_checksum_ipv4_raw(src, dst, &payload).unwrap();
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            // We build, etherparse parses.
            let repr = Repr { src_port, dst_port, payload_len: payload.len() };
            let mut ours = vec![0u8; repr.buffer_len()];
            ours[HEADER_LEN..].copy_from_slice(&payload);
            repr.emit(&mut Packet::new_unchecked(&mut ours[..]), src, dst, ChecksumMode::Software);
            let slice = UdpSlice::from_slice(&ours).unwrap();
            prop_assert_eq!(slice.source_port(), src_port);
            prop_assert_eq!(slice.destination_port(), dst_port);
            prop_assert_eq!(usize::from(slice.length()), repr.buffer_len());
            prop_assert_eq!(slice.checksum(), expected);
            prop_assert_eq!(slice.payload(), &payload[..]);
            // etherparse builds, we parse.
            let mut header = theirs;
            header.checksum = expected;
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum(src, dst));
            prop_assert_eq!(Repr::parse(&packet, src, dst, ChecksumMode::Software).unwrap(), repr);
        }
    }
}
