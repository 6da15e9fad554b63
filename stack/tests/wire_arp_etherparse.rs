//! ARP cross-checked against an independent parser (etherparse's `ArpPacketSlice`): for any
//! Ethernet/IPv4 ARP packet both read the same fields, and what we emit etherparse reads back.

use etherparse_arp as ep;
use proptest::prelude::*;
use shardnet::wire::arp::{Operation, Packet, Repr};
use shardnet::wire::{EthernetAddress, Ipv4Addr};

fn op_code(op: Operation) -> u16 {
    u16::from(op)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arp_fields_agree_with_etherparse(mut bytes in proptest::collection::vec(any::<u8>(), 28..64)) {
        // An Ethernet/IPv4 shape (hlen 6, plen 4), everything else arbitrary.
        bytes[4] = 6;
        bytes[5] = 4;
        let ours = Packet::new_checked(&bytes[..]).unwrap();
        let theirs = ep::ArpPacketSlice::from_slice(&bytes).unwrap();
        prop_assert_eq!(ours.hardware_type(), theirs.hw_addr_type().0);
        prop_assert_eq!(u16::from(ours.protocol_type()), theirs.proto_addr_type().0);
        prop_assert_eq!(ours.hardware_len(), theirs.hw_addr_size());
        prop_assert_eq!(ours.protocol_len(), theirs.proto_addr_size());
        prop_assert_eq!(op_code(ours.operation()), theirs.operation().0);
        prop_assert_eq!(&ours.source_hardware_addr().0[..], theirs.sender_hw_addr());
        prop_assert_eq!(&ours.source_protocol_addr().octets()[..], theirs.sender_protocol_addr());
        prop_assert_eq!(&ours.target_hardware_addr().0[..], theirs.target_hw_addr());
        prop_assert_eq!(&ours.target_protocol_addr().octets()[..], theirs.target_protocol_addr());
    }

    #[test]
    fn emitted_arp_reads_the_same_in_etherparse(
        request in any::<bool>(),
        smac in any::<[u8; 6]>(), sip in any::<[u8; 4]>(),
        tmac in any::<[u8; 6]>(), tip in any::<[u8; 4]>(),
    ) {
        let repr = Repr {
            operation: if request { Operation::Request } else { Operation::Reply },
            source_hardware_addr: EthernetAddress(smac),
            source_protocol_addr: Ipv4Addr::from(sip),
            target_hardware_addr: EthernetAddress(tmac),
            target_protocol_addr: Ipv4Addr::from(tip),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let theirs = ep::ArpPacketSlice::from_slice(&buf).unwrap();
        prop_assert_eq!(theirs.hw_addr_type(), ep::ArpHardwareId::ETHERNET);
        prop_assert_eq!(theirs.proto_addr_type(), ep::EtherType::IPV4);
        prop_assert_eq!(theirs.operation(), if request { ep::ArpOperation::REQUEST } else { ep::ArpOperation::REPLY });
        prop_assert_eq!(theirs.sender_hw_addr(), &smac[..]);
        prop_assert_eq!(theirs.sender_protocol_addr(), &sip[..]);
        prop_assert_eq!(theirs.target_hw_addr(), &tmac[..]);
        prop_assert_eq!(theirs.target_protocol_addr(), &tip[..]);
        // And what etherparse builds, we read.
        let built = theirs.to_packet().to_bytes();
        prop_assert_eq!(Repr::parse(&Packet::new_checked(&built[..]).unwrap()).unwrap(), repr);
    }
}
