//! ARP (RFC 826) for Ethernet and IPv4 only.
//!
//! ```text
//!  0       2       4   5   6       8            14        18           24        28
//! +-------+-------+---+---+-------+------------+---------+------------+---------+
//! | htype | ptype |hln|pln|  op   | sender MAC | sender  | target MAC | target  |
//! |  = 1  |=0x0800| 6 | 4 |       |            | IPv4    |            | IPv4    |
//! +-------+-------+---+---+-------+------------+---------+------------+---------+
//! ```
//!
//! The view's address getters use the Ethernet/IPv4 offsets above; [`Repr::parse`] checks that the
//! packet really is Ethernet/IPv4 before they mean anything.

use super::{
    Error, EthernetAddress, Ipv4Addr, Result, ethernet::EtherType, read_ipv4, read_u16, write_u16,
};

/// The length of an ARP packet for Ethernet (6-byte) and IPv4 (4-byte) addresses.
pub const PACKET_LEN: usize = 28;

/// RFC 826 / IANA "Hardware Types": 1 is Ethernet (10Mb).
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// An ARP operation code (RFC 826 "ar$op").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// ares_op$REQUEST, 1.
    Request,
    /// ares_op$REPLY, 2.
    Reply,
    /// Anything else (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// A read/write view over an ARP packet with Ethernet/IPv4 field sizes.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Meant for emitting into a buffer of at least
    /// [`PACKET_LEN`] bytes; getters on a shorter buffer may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking it holds the 28 bytes of an Ethernet/IPv4 ARP packet.
    ///
    /// Errors: [`Error::Truncated`] if it is shorter. Longer is fine: on Ethernet an ARP packet
    /// is padded to the 60-byte minimum frame, and the padding is ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware address space (ar$hrd): 1 for Ethernet.
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol address space (ar$pro), an EtherType: 0x0800 for IPv4.
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Hardware address length in bytes (ar$hln): 6 for Ethernet.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length in bytes (ar$pln): 4 for IPv4.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation (ar$op).
    pub fn operation(&self) -> Operation {
        Operation::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address (ar$sha), read at the Ethernet/IPv4 offset.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address (ar$spa), read at the Ethernet/IPv4 offset.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA.start)
    }

    /// Target hardware address (ar$tha), read at the Ethernet/IPv4 offset.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address (ar$tpa), read at the Ethernet/IPv4 offset.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware address space.
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    /// Sets the protocol address space.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value.into());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER, value.into());
    }

    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(addr.as_bytes());
    }

    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(addr.as_bytes());
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An Ethernet/IPv4 ARP request or reply.
///
/// Address semantics (a multicast sender, a request for 127.0.0.0/8, gratuitous ARP) are the
/// ARP cache's business, not the wire format's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Request or reply (never `Unknown` once parsed).
    pub operation: Operation,
    /// Sender MAC address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC address (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Validates and reads a checked packet.
    ///
    /// Errors: [`Error::Unsupported`] unless htype = 1 (Ethernet), ptype = 0x0800 (IPv4),
    /// hlen = 6 and plen = 4, and the operation is a request or a reply.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        // RFC 826 "Packet Reception": "?Do I have the hardware type in ar$hrd? ... ?Do I speak the
        // protocol in ar$pro? If not, discard the packet." Linux arp_rcv also drops packets whose
        // ar$hln is not the device's address length or whose ar$pln is not 4.
        // (Linux's arp_process also accepts ar$hrd = 6, IEEE 802, on Ethernet devices; this stack
        // takes only 1, as its interface contract says.)
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let operation = match packet.operation() {
            op @ (Operation::Request | Operation::Reply) => op,
            // RFC 826: only ares_op$REQUEST and ares_op$REPLY are defined here; Linux arp_process
            // likewise ignores other opcodes (RARP etc.).
            Operation::Unknown(_) => return Err(Error::Unsupported),
        };
        Ok(Repr {
            operation,
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The length of the packet that [`Repr::emit`] writes: 28.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet into `packet`, which must be at least 28 bytes long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use crate::wire::ethernet;
    use proptest::prelude::*;

    /// A whole frame as Linux sends it (`arping -I veth0 198.18.0.2` from 198.18.0.1): broadcast,
    /// EtherType 0x0806, the 28-byte request, then 18 bytes of zero padding to 60 bytes.
    const REQUEST_FRAME: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08,
        0x06, // eth
        0x00, 0x01, // htype: Ethernet
        0x08, 0x00, // ptype: IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // op: request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sha
        0xc6, 0x12, 0x00, 0x01, // spa 198.18.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha: unknown
        0xc6, 0x12, 0x00, 0x02, // tpa 198.18.0.2
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    /// The kernel's reply to it (unicast, not padded on a veth: 42 bytes).
    const REPLY_FRAME: [u8; 42] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08,
        0x06, // eth
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // htype, ptype, hlen, plen
        0x00, 0x02, // op: reply
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sha
        0xc6, 0x12, 0x00, 0x02, // spa 198.18.0.2
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // tha
        0xc6, 0x12, 0x00, 0x01, // tpa 198.18.0.1
    ];

    const MAC1: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    const MAC2: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
    const IP1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const IP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn arp_of(frame: &[u8]) -> &[u8] {
        let frame = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(frame.ethertype(), EtherType::Arp);
        &frame.into_inner()[ethernet::HEADER_LEN..]
    }

    #[test]
    fn padded_request_frame_is_parsed() {
        let packet = Packet::new_checked(arp_of(&REQUEST_FRAME)).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), Operation::Request);
        assert_eq!(
            Repr::parse(&packet).unwrap(),
            Repr {
                operation: Operation::Request,
                source_hardware_addr: MAC1,
                source_protocol_addr: IP1,
                target_hardware_addr: EthernetAddress::ZERO,
                target_protocol_addr: IP2,
            }
        );
    }

    #[test]
    fn reply_frame_is_parsed() {
        let packet = Packet::new_checked(arp_of(&REPLY_FRAME)).unwrap();
        assert_eq!(
            Repr::parse(&packet).unwrap(),
            Repr {
                operation: Operation::Reply,
                source_hardware_addr: MAC2,
                source_protocol_addr: IP2,
                target_hardware_addr: MAC1,
                target_protocol_addr: IP1,
            }
        );
    }

    #[test]
    fn emitted_reply_matches_the_fixture_bytes() {
        let repr = Repr {
            operation: Operation::Reply,
            source_hardware_addr: MAC2,
            source_protocol_addr: IP2,
            target_hardware_addr: MAC1,
            target_protocol_addr: IP1,
        };
        let mut buf = [0xa5u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &REPLY_FRAME[14..]);
    }

    #[test]
    fn truncated_packet_is_rejected_at_every_length() {
        let arp = arp_of(&REPLY_FRAME);
        for len in 0..PACKET_LEN {
            assert_eq!(
                Packet::new_checked(&arp[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert!(Packet::new_checked(&arp[..PACKET_LEN]).is_ok());
    }

    fn parse_modified(at: usize, bytes: &[u8]) -> Result<Repr> {
        let mut buf = [0u8; 28];
        buf.copy_from_slice(&REPLY_FRAME[14..]);
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        Repr::parse(&Packet::new_checked(&buf[..])?)
    }

    #[test]
    fn non_ethernet_hardware_type_is_unsupported() {
        assert_eq!(parse_modified(0, &[0x00, 0x06]), Err(Error::Unsupported)); // IEEE 802
        assert_eq!(parse_modified(0, &[0x00, 0x20]), Err(Error::Unsupported)); // InfiniBand
        assert_eq!(parse_modified(0, &[0x00, 0x00]), Err(Error::Unsupported));
    }

    #[test]
    fn non_ipv4_protocol_type_is_unsupported() {
        assert_eq!(parse_modified(2, &[0x86, 0xdd]), Err(Error::Unsupported));
        assert_eq!(parse_modified(2, &[0x08, 0x06]), Err(Error::Unsupported));
    }

    #[test]
    fn wrong_address_lengths_are_unsupported() {
        assert_eq!(parse_modified(4, &[8]), Err(Error::Unsupported));
        assert_eq!(parse_modified(5, &[16]), Err(Error::Unsupported));
    }

    #[test]
    fn unknown_operations_are_unsupported() {
        for op in [0u16, 3, 4, 8, 9, 0xffff] {
            assert_eq!(
                parse_modified(6, &op.to_be_bytes()),
                Err(Error::Unsupported),
                "{op}"
            );
        }
    }

    #[test]
    fn operation_conversions_round_trip() {
        for raw in [0u16, 1, 2, 3, 0xffff] {
            assert_eq!(u16::from(Operation::from(raw)), raw);
        }
        assert_eq!(Operation::from(1), Operation::Request);
        assert_eq!(Operation::from(2), Operation::Reply);
    }

    fn any_repr() -> impl Strategy<Value = Repr> {
        (
            prop_oneof![Just(Operation::Request), Just(Operation::Reply)],
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
        )
            .prop_map(|(operation, sha, spa, tha, tpa)| Repr {
                operation,
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    packet.hardware_type(), packet.protocol_type(), packet.hardware_len(),
                    packet.protocol_len(), packet.operation(), packet.source_hardware_addr(),
                    packet.source_protocol_addr(), packet.target_hardware_addr(),
                    packet.target_protocol_addr(),
                );
                let _ = Repr::parse(&packet);
            } else {
                prop_assert!(bytes.len() < PACKET_LEN);
            }
        }

        #[test]
        fn emit_then_parse_is_identity(repr in any_repr(), pad in 0usize..32) {
            let mut buf = vec![0xa5u8; repr.buffer_len() + pad];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let packet = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&packet).unwrap(), repr);
        }
    }
}
