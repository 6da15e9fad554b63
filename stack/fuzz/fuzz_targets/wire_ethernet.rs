//! Ethernet II view and `Repr` on arbitrary bytes.
//!
//! Input: a whole frame (no FCS). Checks: no panic in `new_checked` or any getter; the header
//! length agrees with the VLAN tags found; `Repr::parse` fails only on a third VLAN tag; a parsed
//! `Repr` emits into `buffer_len()` bytes and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardnet::wire::Error;
use shardnet::wire::ethernet::{EtherType, Frame, HEADER_LEN, Repr, VLAN_TAG_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::new_checked(data) else {
        return;
    };
    let (dst, src) = (frame.dst_addr(), frame.src_addr());
    assert_eq!(dst.as_bytes(), &data[0..6]);
    assert_eq!(src.as_bytes(), &data[6..12]);
    let ethertype = frame.ethertype();
    let header_len = frame.header_len();
    assert!(header_len <= data.len());
    assert!(
        [
            HEADER_LEN,
            HEADER_LEN + VLAN_TAG_LEN,
            HEADER_LEN + 2 * VLAN_TAG_LEN
        ]
        .contains(&header_len)
    );
    assert_eq!(frame.vlan_id().is_some(), header_len > HEADER_LEN);
    if let Some(vid) = frame.vlan_id() {
        assert!(vid <= 0x0fff);
    }
    assert_eq!(frame.payload(), &data[header_len..]);

    // The innermost type is the 16 bits just before the payload.
    let raw = u16::from_be_bytes([data[header_len - 2], data[header_len - 1]]);
    assert_eq!(u16::from(ethertype), raw);
    assert_eq!(EtherType::from(raw), ethertype);

    match Repr::parse(&frame) {
        Ok(repr) => {
            assert_eq!(
                (repr.dst_addr, repr.src_addr, repr.ethertype),
                (dst, src, ethertype)
            );
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Frame::new_unchecked(&mut buf[..]));
            let again = Frame::new_checked(&buf[..]).expect("emitted header is checked");
            assert_eq!(again.header_len(), HEADER_LEN, "we emit no VLAN tags");
            assert_eq!(Repr::parse(&again), Ok(repr));
        }
        Err(e) => {
            assert_eq!(e, Error::Unsupported);
            assert!(
                raw == 0x8100 || raw == 0x88a8,
                "only a third tag is refused"
            );
        }
    }
});
