//! ARP (Ethernet/IPv4) view and `Repr` on arbitrary bytes.
//!
//! Input: the ARP packet (the Ethernet payload). Checks: no panic; every getter reads the
//! RFC 826 offsets; `Repr::parse` accepts exactly htype 1, ptype 0x0800, hlen 6, plen 4 and
//! opcode 1 or 2; a parsed `Repr` emits into `buffer_len()` bytes and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardnet::wire::Error;
use shardnet::wire::arp::{Operation, PACKET_LEN, Packet, Repr};
use shardnet::wire::ethernet::EtherType;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(data.len() < PACKET_LEN);
        return;
    };
    let htype = packet.hardware_type();
    let ptype = packet.protocol_type();
    let (hlen, plen) = (packet.hardware_len(), packet.protocol_len());
    let op = packet.operation();
    let sha = packet.source_hardware_addr();
    let spa = packet.source_protocol_addr();
    let tha = packet.target_hardware_addr();
    let tpa = packet.target_protocol_addr();
    assert_eq!(sha.as_bytes(), &data[8..14]);
    assert_eq!(spa.octets(), data[14..18]);
    assert_eq!(tha.as_bytes(), &data[18..24]);
    assert_eq!(tpa.octets(), data[24..28]);

    let supported = htype == 1
        && ptype == EtherType::Ipv4
        && hlen == 6
        && plen == 4
        && matches!(op, Operation::Request | Operation::Reply);
    match Repr::parse(&packet) {
        Ok(repr) => {
            assert!(supported);
            assert_eq!(
                repr,
                Repr {
                    operation: op,
                    source_hardware_addr: sha,
                    source_protocol_addr: spa,
                    target_hardware_addr: tha,
                    target_protocol_addr: tpa,
                }
            );
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            assert_eq!(
                &buf[..],
                &data[..PACKET_LEN],
                "emit rewrites the same 28 bytes"
            );
            let again = Packet::new_checked(&buf[..]).expect("emitted packet is checked");
            assert_eq!(Repr::parse(&again), Ok(repr));
        }
        Err(e) => {
            assert!(!supported);
            assert_eq!(e, Error::Unsupported);
        }
    }
});
