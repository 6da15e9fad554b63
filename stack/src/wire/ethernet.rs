//! Ethernet II frames (IEEE 802.3 / RFC 894), with up to two stacked VLAN tags (IEEE 802.1Q
//! C-tag, IEEE 802.1ad S-tag "QinQ").
//!
//! ```text
//!  0                   6                  12      14
//! +-------------------+-------------------+-------+----------
//! | destination MAC   | source MAC        | type  | payload ...
//! +-------------------+-------------------+-------+----------
//!
//! tagged (one or two tags, each 4 bytes: TPID 0x8100/0x88a8 + TCI), the real EtherType last:
//! | dst | src | 0x88a8 | TCI | 0x8100 | TCI | type | payload ...
//! ```
//!
//! The frame check sequence is not part of the view: drivers hand over frames without it.

use super::{Error, EthernetAddress, Result, read_u16, write_u16};

/// The length of an untagged Ethernet II header: two addresses and the EtherType.
pub const HEADER_LEN: usize = 14;

/// The length of one VLAN tag (TPID + TCI), IEEE 802.1Q 9.3.
pub const VLAN_TAG_LEN: usize = 4;

/// Raw TPID of an IEEE 802.1Q customer VLAN tag (C-tag).
const TPID_8021Q: u16 = 0x8100;
/// Raw TPID of an IEEE 802.1ad service VLAN tag (S-tag, "QinQ" outer tag).
const TPID_8021AD: u16 = 0x88a8;

/// Offset of the (outermost) EtherType / TPID field.
const ETHERTYPE_OFFSET: usize = 12;

/// An EtherType: what the payload of an Ethernet frame is.
///
/// Values below 0x0600 are not EtherTypes but IEEE 802.3 length fields (IEEE 802.3 3.2.6, LLC
/// frames); they come out as [`EtherType::Unknown`] and are dropped like any unknown EtherType, as
/// Linux does for frames no protocol handler claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4, 0x0800.
    Ipv4,
    /// ARP, 0x0806.
    Arp,
    /// IPv6, 0x86DD.
    Ipv6,
    /// An IEEE 802.1Q VLAN tag, 0x8100.
    ///
    /// [`Frame`] skips up to two tags (0x8100 and also 0x88A8, the 802.1ad S-tag), so a frame's
    /// [`Frame::ethertype`] is only `Vlan` when a third tag follows.
    Vlan,
    /// Any other value, kept as is (0x88A8 included, so that `u16 -> EtherType -> u16` is exact).
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            TPID_8021Q => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => TPID_8021Q,
            EtherType::Unknown(other) => other,
        }
    }
}

/// True if `value` is the TPID of a VLAN tag that [`Frame`] skips (802.1Q C-tag or 802.1ad S-tag).
#[inline]
const fn is_vlan_tpid(value: u16) -> bool {
    value == TPID_8021Q || value == TPID_8021AD
}

/// A read/write view over an Ethernet II frame, VLAN tags included.
///
/// The header length is worked out from the bytes on every call (14, 18 or 22), so emitting an
/// untagged header over a buffer that used to hold a tagged frame gives consistent answers.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it. Meant for emitting into a buffer of at least
    /// [`Repr::buffer_len`] bytes; getters on a shorter buffer may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer after checking that the header, VLAN tags included, fits.
    ///
    /// Errors: [`Error::Truncated`] when the buffer is shorter than 14 bytes, or than the header
    /// once its one or two VLAN tags are counted.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        let len = frame.buffer.as_ref().len();
        if len < HEADER_LEN || len < frame.header_len() {
            return Err(Error::Truncated);
        }
        Ok(frame)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Offset of the innermost EtherType field: 12 untagged, 16 with one tag, 20 with two.
    ///
    /// IEEE 802.1ad 6.9: an S-tag (0x88A8) is followed by a C-tag (0x8100). Linux also accepts
    /// two stacked 0x8100 tags (and a lone S-tag) as long as the VLAN devices exist, so any of
    /// the two TPIDs is skipped in either position. A third tag is not skipped.
    ///
    /// Reads only bytes that are in the buffer; on a buffer too short for the tags it claims, the
    /// offset points past the end and [`Frame::new_checked`] rejects it.
    #[inline]
    fn ethertype_offset(&self) -> usize {
        let data = self.buffer.as_ref();
        let mut offset = ETHERTYPE_OFFSET;
        for _ in 0..2 {
            match data.get(offset..offset + 2) {
                Some(&[a, b]) if is_vlan_tpid(u16::from_be_bytes([a, b])) => {
                    offset += VLAN_TAG_LEN;
                }
                _ => break,
            }
        }
        offset
    }

    /// The destination MAC address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[0..6])
    }

    /// The source MAC address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[6..12])
    }

    /// The EtherType of the payload, after any VLAN tags (at most two are skipped).
    pub fn ethertype(&self) -> EtherType {
        let offset = self.ethertype_offset();
        EtherType::from(read_u16(self.buffer.as_ref(), offset))
    }

    /// The VLAN identifier of the innermost tag, or `None` for an untagged frame.
    ///
    /// IEEE 802.1Q 9.6: VID 0 means "priority tag only, no VLAN"; it is returned as `Some(0)`
    /// and the caller treats it like an untagged frame, as Linux does (`vlan_do_receive`).
    pub fn vlan_id(&self) -> Option<u16> {
        let offset = self.ethertype_offset();
        if offset == ETHERTYPE_OFFSET {
            return None;
        }
        // The TCI sits just before the EtherType that follows its tag; VID is its low 12 bits.
        Some(read_u16(self.buffer.as_ref(), offset - 2) & 0x0fff)
    }

    /// The header length: 14 untagged, 18 with one VLAN tag, 22 with two.
    pub fn header_len(&self) -> usize {
        self.ethertype_offset() + 2
    }

    /// The payload after the header (and tags). It runs to the end of the buffer, so it includes
    /// any padding up to the 60-byte minimum frame: the next layer's own length field trims it.
    pub fn payload(&self) -> &[u8] {
        let hl = self.header_len();
        self.buffer.as_ref().get(hl..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[0..6].copy_from_slice(addr.as_bytes());
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[6..12].copy_from_slice(addr.as_bytes());
    }

    /// Sets the EtherType at offset 12, i.e. of an untagged frame (this stack sends no tags).
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), ETHERTYPE_OFFSET, ethertype.into());
    }

    /// The payload after the header (and tags), mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        self.buffer.as_mut().get_mut(hl..).unwrap_or(&mut [])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an Ethernet header that the stack uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source MAC address.
    pub src_addr: EthernetAddress,
    /// Destination MAC address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload (after VLAN tags when parsed).
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header of a checked frame. VLAN tags are skipped: the VID is on the view
    /// ([`Frame::vlan_id`]), not in the `Repr`.
    ///
    /// Errors: [`Error::Unsupported`] when a third VLAN tag follows the two that are skipped.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        let offset = frame.ethertype_offset();
        let raw = frame
            .buffer
            .as_ref()
            .get(offset..offset + 2)
            .ok_or(Error::Truncated)?;
        let raw = u16::from_be_bytes([raw[0], raw[1]]);
        if is_vlan_tpid(raw) {
            // More than two stacked tags: Linux would need a third nested VLAN device; we have none.
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: EtherType::from(raw),
        })
    }

    /// The length of the header that [`Repr::emit`] writes: 14 (no tags).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes an untagged header into `frame`, which must be at least 14 bytes long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DST: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
    const SRC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

    /// An untagged frame carrying the start of an IPv4 header (198.18.0.1 -> 198.18.0.2).
    const UNTAGGED: [u8; 20] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x54, 0x3a, 0x5c, // payload (first bytes of an IPv4 header)
    ];

    /// A broadcast ARP request on VLAN 100 with priority 5, as `tcpdump -xx -e` shows it on the
    /// trunk side (tag kept): 802.1Q TPID 0x8100, TCI 0xa064, then EtherType 0x0806.
    const VLAN_TAGGED_ARP: [u8; 46] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x81, 0x00, 0xa0, 0x64, // 802.1Q: PCP 5, DEI 0, VID 100
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00,
        0x01, // htype, ptype, hlen, plen, op=request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc6, 0x12, 0x00, 0x01, // sha, spa 198.18.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x02, // tha, tpa 198.18.0.2
    ];

    /// A QinQ frame: S-tag 0x88a8 VID 10, C-tag 0x8100 VID 200, then IPv4.
    const QINQ: [u8; 24] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x88, 0xa8, 0x00, 0x0a, // S-tag: VID 10
        0x81, 0x00, 0x00, 0xc8, // C-tag: VID 200
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    #[test]
    fn untagged_frame_fields_are_read() {
        let frame = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(frame.dst_addr(), DST);
        assert_eq!(frame.src_addr(), SRC);
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.vlan_id(), None);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload(), &UNTAGGED[14..]);
        assert_eq!(
            Repr::parse(&frame).unwrap(),
            Repr {
                src_addr: SRC,
                dst_addr: DST,
                ethertype: EtherType::Ipv4
            }
        );
    }

    #[test]
    fn vlan_tagged_frame_skips_the_tag() {
        let frame = Frame::new_checked(&VLAN_TAGGED_ARP[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(
            frame.src_addr(),
            EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.vlan_id(), Some(100));
        assert_eq!(frame.header_len(), 18);
        assert_eq!(frame.payload().len(), 28);
        assert_eq!(frame.payload()[..2], [0x00, 0x01]);
        assert_eq!(Repr::parse(&frame).unwrap().ethertype, EtherType::Arp);
    }

    #[test]
    fn qinq_frame_skips_both_tags_and_reports_the_inner_vid() {
        let frame = Frame::new_checked(&QINQ[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.vlan_id(), Some(200));
        assert_eq!(frame.header_len(), 22);
        assert_eq!(frame.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn lone_s_tag_is_skipped() {
        let mut bytes = VLAN_TAGGED_ARP;
        bytes[12..14].copy_from_slice(&[0x88, 0xa8]);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.vlan_id(), Some(100));
    }

    #[test]
    fn third_vlan_tag_is_unsupported() {
        let mut bytes = [0u8; 30];
        bytes[12..14].copy_from_slice(&[0x88, 0xa8]);
        bytes[16..18].copy_from_slice(&[0x81, 0x00]);
        bytes[20..22].copy_from_slice(&[0x81, 0x00]);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::Vlan);
        assert_eq!(frame.header_len(), 22);
        assert_eq!(Repr::parse(&frame), Err(Error::Unsupported));
    }

    #[test]
    fn priority_tagged_frame_has_vid_zero() {
        let mut bytes = VLAN_TAGGED_ARP;
        bytes[14..16].copy_from_slice(&[0xa0, 0x00]);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.vlan_id(), Some(0));
        assert_eq!(frame.ethertype(), EtherType::Arp);
    }

    #[test]
    fn truncated_header_is_rejected_at_every_length() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&UNTAGGED[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert!(Frame::new_checked(&UNTAGGED[..HEADER_LEN]).is_ok());
    }

    #[test]
    fn truncated_vlan_tag_is_rejected_at_every_length() {
        for len in 0..18 {
            assert_eq!(
                Frame::new_checked(&VLAN_TAGGED_ARP[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        assert!(Frame::new_checked(&VLAN_TAGGED_ARP[..18]).is_ok());
        for len in 0..22 {
            assert_eq!(
                Frame::new_checked(&QINQ[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        let frame = Frame::new_checked(&QINQ[..22]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn ethertype_conversions_round_trip() {
        for (raw, et) in [
            (0x0800, EtherType::Ipv4),
            (0x0806, EtherType::Arp),
            (0x86dd, EtherType::Ipv6),
            (0x8100, EtherType::Vlan),
            (0x88a8, EtherType::Unknown(0x88a8)),
            (0x0042, EtherType::Unknown(0x0042)),
        ] {
            assert_eq!(EtherType::from(raw), et);
            assert_eq!(u16::from(et), raw);
        }
    }

    #[test]
    fn emit_writes_an_untagged_header_over_a_tagged_frame() {
        let mut bytes = VLAN_TAGGED_ARP;
        let repr = Repr {
            src_addr: SRC,
            dst_addr: DST,
            ethertype: EtherType::Ipv4,
        };
        assert_eq!(repr.buffer_len(), 14);
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        repr.emit(&mut frame);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.vlan_id(), None);
        frame.payload_mut()[0] = 0x45;
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&frame).unwrap(), repr);
        assert_eq!(frame.payload()[0], 0x45);
        assert_eq!(&bytes[..14], &UNTAGGED[..14]);
    }

    fn any_addr() -> impl Strategy<Value = EthernetAddress> {
        any::<[u8; 6]>().prop_map(EthernetAddress)
    }

    fn any_ethertype() -> impl Strategy<Value = EtherType> {
        // Canonical values only: From<u16> never yields Unknown(0x0800) and the like.
        any::<u16>()
            .prop_filter("not a tag", |v| !is_vlan_tpid(*v))
            .prop_map(EtherType::from)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = Frame::new_checked(&bytes[..]) {
                let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype(), frame.vlan_id());
                prop_assert!(frame.header_len() <= bytes.len());
                prop_assert_eq!(frame.payload().len(), bytes.len() - frame.header_len());
                let _ = Repr::parse(&frame);
            }
        }

        #[test]
        fn emit_then_parse_is_identity(
            src_addr in any_addr(), dst_addr in any_addr(), ethertype in any_ethertype(),
            payload in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let repr = Repr { src_addr, dst_addr, ethertype };
            let mut buf = vec![0xa5u8; repr.buffer_len() + payload.len()];
            let mut frame = Frame::new_unchecked(&mut buf[..]);
            repr.emit(&mut frame);
            frame.payload_mut().copy_from_slice(&payload);
            let frame = Frame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&frame).unwrap(), repr);
            prop_assert_eq!(frame.payload(), &payload[..]);
        }

        #[test]
        fn agrees_with_etherparse(
            src in any::<[u8; 6]>(), dst in any::<[u8; 6]>(),
            tags in proptest::collection::vec((prop_oneof![Just(0x8100u16), Just(0x88a8u16)], any::<u16>()), 0..=2),
            inner in any::<u16>().prop_filter("not a tag", |v| !is_vlan_tpid(*v) && *v != 0x9100),
            payload in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            use etherparse::{Ethernet2HeaderSlice, SingleVlanHeaderSlice, EtherType as EpType};
            // Build: Ethernet II header whose type is the first TPID (or the inner type), then tags.
            let mut buf = Vec::new();
            buf.extend_from_slice(&dst);
            buf.extend_from_slice(&src);
            let mut types: Vec<u16> = tags.iter().map(|t| t.0).collect();
            types.push(inner);
            buf.extend_from_slice(&types[0].to_be_bytes());
            for (i, (_, tci)) in tags.iter().enumerate() {
                buf.extend_from_slice(&tci.to_be_bytes());
                buf.extend_from_slice(&types[i + 1].to_be_bytes());
            }
            buf.extend_from_slice(&payload);

            let ours = Frame::new_checked(&buf[..]).unwrap();
            let eth = Ethernet2HeaderSlice::from_slice(&buf).unwrap();
            prop_assert_eq!(ours.dst_addr().0, eth.destination());
            prop_assert_eq!(ours.src_addr().0, eth.source());
            let mut rest = &buf[14..];
            let mut next = eth.ether_type();
            let mut vid = None;
            while next == EpType::VLAN_TAGGED_FRAME || next == EpType::PROVIDER_BRIDGING {
                let tag = SingleVlanHeaderSlice::from_slice(rest).unwrap();
                vid = Some(tag.vlan_identifier().value());
                next = tag.ether_type();
                rest = &rest[4..];
            }
            prop_assert_eq!(u16::from(ours.ethertype()), next.0);
            prop_assert_eq!(ours.vlan_id(), vid);
            prop_assert_eq!(ours.payload(), rest);
            prop_assert_eq!(ours.header_len(), 14 + 4 * tags.len());
        }
    }
}
