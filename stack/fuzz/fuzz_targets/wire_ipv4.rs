//! IPv4 view and `Repr` on arbitrary bytes.
//!
//! Input: the IPv4 datagram (the Ethernet payload, possibly with padding after it). Checks: no
//! panic in `new_checked`, `new_checked_quoted`, any getter or setter; options and payload have
//! the lengths the header says; `Repr::parse` with `Offloaded` never fails on a checked packet
//! and with `Software` fails exactly when the header checksum does not verify; a parsed `Repr`
//! emits (in both checksum modes) into `buffer_len()` bytes and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardnet::wire::ipv4::{HEADER_LEN, Packet, Repr};
use shardnet::wire::{ChecksumMode, Error};

fuzz_target!(|data: &[u8]| {
    if let Ok(quoted) = Packet::new_checked_quoted(data) {
        // The ICMP-error view guarantees the 8 bytes of L4 header that demultiplexing reads.
        assert!(quoted.payload().len() >= 8);
        assert!(quoted.header_len() >= HEADER_LEN);
    }
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    assert_eq!(packet.version(), 4);
    let header_len = packet.header_len();
    let total_len = usize::from(packet.total_len());
    assert!(HEADER_LEN <= header_len && header_len <= total_len && total_len <= data.len());
    let _ = (packet.dscp(), packet.ecn(), packet.checksum());
    let (df, mf, offset) = (
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
    );
    assert_eq!(packet.is_fragment(), mf || offset != 0);
    assert_eq!(offset % 8, 0);
    assert_eq!(packet.options(), &data[HEADER_LEN..header_len]);
    assert_eq!(packet.payload(), &data[header_len..total_len]);
    let verifies = packet.verify_checksum();

    assert!(Repr::parse(&packet, ChecksumMode::Offloaded).is_ok());
    match Repr::parse(&packet, ChecksumMode::Software) {
        Ok(repr) => {
            assert!(verifies);
            assert_eq!(repr, Repr::parse(&packet, ChecksumMode::Offloaded).unwrap());
            assert_eq!(repr.payload_len, total_len - header_len);
            assert_eq!(
                (repr.src_addr, repr.dst_addr),
                (packet.src_addr(), packet.dst_addr())
            );
            assert_eq!(
                (repr.ttl, repr.ident, repr.dont_frag),
                (packet.ttl(), packet.ident(), df)
            );
            assert_eq!(repr.protocol, packet.protocol());
            for mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
                let mut buf = vec![0u8; repr.buffer_len()];
                let mut out = Packet::new_unchecked(&mut buf[..]);
                repr.emit(&mut out, mode);
                out.payload_mut().copy_from_slice(packet.payload());
                let again = Packet::new_checked(&buf[..]).expect("emitted packet is checked");
                assert_eq!(again.header_len(), HEADER_LEN);
                assert!(!again.is_fragment());
                assert_eq!(again.payload(), packet.payload());
                assert_eq!(Repr::parse(&again, mode), Ok(repr));
                match mode {
                    ChecksumMode::Software => assert!(again.verify_checksum()),
                    ChecksumMode::Offloaded => assert_eq!(again.checksum(), 0),
                }
            }
        }
        Err(e) => {
            assert!(!verifies);
            assert_eq!(e, Error::BadChecksum);
        }
    }

    // Setters on a checked copy never panic, and `fill_checksum` makes the header verify.
    let mut copy = data.to_vec();
    let mut p = Packet::new_checked(&mut copy[..]).expect("same bytes");
    p.set_ttl(p.ttl().wrapping_sub(1));
    p.set_dscp(0x3f);
    p.set_ecn(3);
    p.set_frag_offset(offset);
    p.set_more_frags(!mf);
    p.options_mut().fill(1);
    p.payload_mut().reverse();
    p.fill_checksum();
    assert!(p.verify_checksum());
    assert_eq!(p.header_len(), header_len);
    assert_eq!(usize::from(p.total_len()), total_len);
});
