//! UDP view and `Repr` on arbitrary bytes, checksum with the IPv4 pseudo-header included.
//!
//! Input: 4 bytes of source address, 4 bytes of destination address (the pseudo-header), then
//! the UDP datagram (the IPv4 payload). Checks: no panic; the payload ends at the length field;
//! `Repr::parse` with `Software` fails with `BadChecksum` exactly when a non-zero checksum does
//! not verify, and otherwise only on destination port 0; a parsed `Repr` emits into
//! `buffer_len()` bytes and parses back to itself in both checksum modes; an `Offloaded` emit
//! completed the way a NIC does it verifies in software.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardnet::wire::checksum::Checksum;
use shardnet::wire::udp::{HEADER_LEN, Packet, Repr};
use shardnet::wire::{ChecksumMode, Error, Ipv4Addr};

fuzz_target!(|input: &[u8]| {
    let Some((addrs, data)) = input.split_first_chunk::<8>() else {
        return;
    };
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let len = usize::from(packet.len());
    assert!(HEADER_LEN <= len && len <= data.len());
    assert_eq!(packet.is_empty(), len == HEADER_LEN);
    assert_eq!(packet.payload(), &data[HEADER_LEN..len]);
    let (src_port, dst_port) = (packet.src_port(), packet.dst_port());
    let verifies = packet.verify_checksum(src, dst);
    if packet.checksum() == 0 {
        assert!(verifies, "RFC 768: zero means no checksum");
    }

    for mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
        let repr = match Repr::parse(&packet, src, dst, mode) {
            Ok(r) => r,
            Err(Error::BadChecksum) => {
                assert!(mode == ChecksumMode::Software && !verifies);
                continue;
            }
            Err(e) => {
                assert_eq!((e, dst_port), (Error::Malformed, 0));
                continue;
            }
        };
        assert!(mode == ChecksumMode::Offloaded || verifies);
        assert_ne!(dst_port, 0);
        assert_eq!(
            repr,
            Repr {
                src_port,
                dst_port,
                payload_len: len - HEADER_LEN
            }
        );
        for emit_mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
            let mut buf = vec![0u8; repr.buffer_len()];
            let mut out = Packet::new_unchecked(&mut buf[..]);
            out.payload_mut().copy_from_slice(packet.payload());
            repr.emit(&mut out, src, dst, emit_mode);
            if emit_mode == ChecksumMode::Offloaded {
                // What a NIC with partial checksum offload does: sum header and payload, starting
                // from the pseudo-header sum left in the field, and store the complement.
                let c = match !Checksum::new().add_bytes(&buf).sum() {
                    0 => 0xffff,
                    c => c,
                };
                Packet::new_unchecked(&mut buf[..]).set_checksum(c);
            }
            let again = Packet::new_checked(&buf[..]).expect("emitted datagram is checked");
            assert_ne!(again.checksum(), 0, "we always send a checksum");
            assert!(again.verify_checksum(src, dst));
            assert_eq!(again.payload(), packet.payload());
            assert_eq!(
                Repr::parse(&again, src, dst, ChecksumMode::Software),
                Ok(repr)
            );
        }
    }

    // Setters on a copy never panic, and `fill_checksum` makes the datagram verify.
    let mut copy = data.to_vec();
    let mut p = Packet::new_checked(&mut copy[..]).expect("same bytes");
    p.set_src_port(dst_port);
    p.set_dst_port(src_port);
    p.payload_mut().reverse();
    p.fill_checksum(dst, src);
    assert!(p.verify_checksum(dst, src));
    assert_ne!(p.checksum(), 0);
});
