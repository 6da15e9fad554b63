//! Whole frames (Ethernet, optional VLAN tags, IPv4 with options, UDP or ICMP echo) built by
//! etherparse 0.16 and parsed by shardnet's layered views, and the other way round: both parsers
//! must agree on every field, and each side's checksums must verify on the other.
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use etherparse::{
    DoubleVlanHeader, EtherType as EpEtherType, IpHeaders, Ipv4Dscp, Ipv4Ecn, Ipv4Header,
    Ipv4Options, NetSlice, PacketBuilder, SingleVlanHeader, SlicedPacket, TransportSlice, VlanId,
    VlanPcp,
};
use proptest::prelude::*;
use shardnet::wire::{
    ChecksumMode, EthernetAddress, Ipv4Addr,
    ethernet::{self, EtherType},
    icmp, ipv4, udp,
};

#[derive(Debug, Clone)]
enum Tags {
    None,
    Single(u16),
    /// Outer TPID (0x8100 or 0x88a8), outer VID, inner VID.
    Double(u16, u16, u16),
}

#[derive(Debug, Clone)]
enum Transport {
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Echo {
        request: bool,
        ident: u16,
        seq_no: u16,
    },
}

#[derive(Debug, Clone)]
struct Spec {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    tags: Tags,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    ttl: u8,
    ident: u16,
    dont_frag: bool,
    dscp: u8,
    ecn: u8,
    options: Vec<u8>,
    transport: Transport,
    payload: Vec<u8>,
}

fn any_spec() -> impl Strategy<Value = Spec> {
    let tags = prop_oneof![
        Just(Tags::None),
        (0u16..4096).prop_map(Tags::Single),
        (
            prop_oneof![Just(0x8100u16), Just(0x88a8u16)],
            0u16..4096,
            0u16..4096
        )
            .prop_map(|(tpid, o, i)| Tags::Double(tpid, o, i)),
    ];
    let transport = prop_oneof![
        (any::<u16>(), 1u16..)
            .prop_map(|(src_port, dst_port)| Transport::Udp { src_port, dst_port }),
        (any::<bool>(), any::<u16>(), any::<u16>()).prop_map(|(request, ident, seq_no)| {
            Transport::Echo {
                request,
                ident,
                seq_no,
            }
        }),
    ];
    (
        (any::<[u8; 6]>(), any::<[u8; 6]>(), tags),
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            any::<u16>(),
        ),
        (any::<bool>(), 0u8..64, 0u8..4, 0usize..=10, any::<u8>()),
        transport,
        proptest::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(
            |(
                (src_mac, dst_mac, tags),
                (src_ip, dst_ip, ttl, ident),
                (dont_frag, dscp, ecn, option_words, option_byte),
                transport,
                payload,
            )| Spec {
                src_mac,
                dst_mac,
                tags,
                src_ip,
                dst_ip,
                ttl,
                ident,
                dont_frag,
                dscp,
                ecn,
                options: vec![option_byte; option_words * 4],
                transport,
                payload,
            },
        )
}

fn vlan(vid: u16) -> SingleVlanHeader {
    SingleVlanHeader {
        pcp: VlanPcp::ZERO,
        drop_eligible_indicator: false,
        vlan_id: VlanId::try_new(vid).unwrap(),
        ether_type: EpEtherType(0),
    }
}

/// Builds the frame with etherparse's `PacketBuilder`.
fn build_with_etherparse(spec: &Spec) -> Vec<u8> {
    let mut ip = Ipv4Header::new(
        0,
        spec.ttl,
        etherparse::IpNumber(0),
        spec.src_ip,
        spec.dst_ip,
    )
    .unwrap();
    ip.identification = spec.ident;
    ip.dont_fragment = spec.dont_frag;
    ip.dscp = Ipv4Dscp::try_new(spec.dscp).unwrap();
    ip.ecn = Ipv4Ecn::try_new(spec.ecn).unwrap();
    ip.options = Ipv4Options::try_from(&spec.options[..]).unwrap();
    let ip = IpHeaders::Ipv4(ip, Default::default());

    let eth = PacketBuilder::ethernet2(spec.src_mac, spec.dst_mac);
    let ip_step = match spec.tags {
        Tags::None => eth.ip(ip),
        Tags::Single(vid) => eth.vlan(etherparse::VlanHeader::Single(vlan(vid))).ip(ip),
        Tags::Double(_, outer, inner) => eth
            .vlan(etherparse::VlanHeader::Double(DoubleVlanHeader {
                outer: vlan(outer),
                inner: vlan(inner),
            }))
            .ip(ip),
    };
    let mut out = Vec::new();
    match spec.transport {
        Transport::Udp { src_port, dst_port } => {
            let b = ip_step.udp(src_port, dst_port);
            b.write(&mut out, &spec.payload).unwrap();
        }
        Transport::Echo {
            request: true,
            ident,
            seq_no,
        } => {
            let b = ip_step.icmpv4_echo_request(ident, seq_no);
            b.write(&mut out, &spec.payload).unwrap();
        }
        Transport::Echo {
            request: false,
            ident,
            seq_no,
        } => {
            let b = ip_step.icmpv4_echo_reply(ident, seq_no);
            b.write(&mut out, &spec.payload).unwrap();
        }
    }
    if let Tags::Double(tpid, _, _) = spec.tags {
        // etherparse writes 0x8100 for the outer tag; a provider bridge uses 0x88a8.
        out[12..14].copy_from_slice(&tpid.to_be_bytes());
    }
    out
}

/// Parses the frame with shardnet's views and checks every field against `spec`.
fn check_with_shardnet(spec: &Spec, frame_bytes: &[u8]) {
    let frame = ethernet::Frame::new_checked(frame_bytes).unwrap();
    let eth = ethernet::Repr::parse(&frame).unwrap();
    assert_eq!(eth.src_addr, EthernetAddress(spec.src_mac));
    assert_eq!(eth.dst_addr, EthernetAddress(spec.dst_mac));
    assert_eq!(eth.ethertype, EtherType::Ipv4);
    let (vid, hl) = match spec.tags {
        Tags::None => (None, 14),
        Tags::Single(v) => (Some(v), 18),
        Tags::Double(_, _, v) => (Some(v), 22),
    };
    assert_eq!(frame.vlan_id(), vid);
    assert_eq!(frame.header_len(), hl);

    let ip = ipv4::Packet::new_checked(frame.payload()).unwrap();
    let ip_repr = ipv4::Repr::parse(&ip, ChecksumMode::Software).unwrap();
    assert_eq!(ip_repr.src_addr, Ipv4Addr::from(spec.src_ip));
    assert_eq!(ip_repr.dst_addr, Ipv4Addr::from(spec.dst_ip));
    assert_eq!(ip_repr.ttl, spec.ttl);
    assert_eq!(ip_repr.ident, spec.ident);
    assert_eq!(ip_repr.dont_frag, spec.dont_frag);
    assert_eq!(ip_repr.dscp_ecn, (spec.dscp << 2) | spec.ecn);
    assert_eq!(ip.options(), &spec.options[..]);
    assert!(!ip.is_fragment());
    assert_eq!(ip_repr.payload_len, ip.payload().len());

    match spec.transport {
        Transport::Udp { src_port, dst_port } => {
            assert_eq!(ip_repr.protocol, ipv4::Protocol::Udp);
            let packet = udp::Packet::new_checked(ip.payload()).unwrap();
            let repr = udp::Repr::parse(
                &packet,
                ip_repr.src_addr,
                ip_repr.dst_addr,
                ChecksumMode::Software,
            )
            .unwrap();
            assert_eq!(
                repr,
                udp::Repr {
                    src_port,
                    dst_port,
                    payload_len: spec.payload.len()
                }
            );
            assert_eq!(packet.payload(), &spec.payload[..]);
        }
        Transport::Echo {
            request,
            ident,
            seq_no,
        } => {
            assert_eq!(ip_repr.protocol, ipv4::Protocol::Icmp);
            let packet = icmp::Packet::new_checked(ip.payload()).unwrap();
            let repr = icmp::Repr::parse(&packet, ChecksumMode::Software).unwrap();
            let expected = if request {
                icmp::Repr::EchoRequest {
                    ident,
                    seq_no,
                    data: &spec.payload,
                }
            } else {
                icmp::Repr::EchoReply {
                    ident,
                    seq_no,
                    data: &spec.payload,
                }
            };
            assert_eq!(repr, expected);
        }
    }
}

/// Builds the frame with shardnet's emitters (untagged, no IP options: that is what we send).
fn build_with_shardnet(spec: &Spec) -> Vec<u8> {
    let (protocol, l4_len) = match spec.transport {
        Transport::Udp { .. } => (ipv4::Protocol::Udp, udp::HEADER_LEN + spec.payload.len()),
        Transport::Echo { .. } => (ipv4::Protocol::Icmp, icmp::HEADER_LEN + spec.payload.len()),
    };
    let eth = ethernet::Repr {
        src_addr: EthernetAddress(spec.src_mac),
        dst_addr: EthernetAddress(spec.dst_mac),
        ethertype: EtherType::Ipv4,
    };
    let ip = ipv4::Repr {
        src_addr: Ipv4Addr::from(spec.src_ip),
        dst_addr: Ipv4Addr::from(spec.dst_ip),
        protocol,
        payload_len: l4_len,
        ttl: spec.ttl,
        ident: spec.ident,
        dont_frag: spec.dont_frag,
        dscp_ecn: (spec.dscp << 2) | spec.ecn,
    };
    let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len()];
    let mut frame = ethernet::Frame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = ipv4::Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, ChecksumMode::Software);
    match spec.transport {
        Transport::Udp { src_port, dst_port } => {
            let repr = udp::Repr {
                src_port,
                dst_port,
                payload_len: spec.payload.len(),
            };
            let mut datagram = udp::Packet::new_unchecked(packet.payload_mut());
            // Emit in place: the payload first, then the header and checksum.
            datagram.payload_mut().copy_from_slice(&spec.payload);
            repr.emit(
                &mut datagram,
                ip.src_addr,
                ip.dst_addr,
                ChecksumMode::Software,
            );
        }
        Transport::Echo {
            request,
            ident,
            seq_no,
        } => {
            let repr = if request {
                icmp::Repr::EchoRequest {
                    ident,
                    seq_no,
                    data: &spec.payload,
                }
            } else {
                icmp::Repr::EchoReply {
                    ident,
                    seq_no,
                    data: &spec.payload,
                }
            };
            repr.emit(
                &mut icmp::Packet::new_unchecked(packet.payload_mut()),
                ChecksumMode::Software,
            );
        }
    }
    buf
}

/// Parses the frame with etherparse and checks it against `spec` (untagged, no options).
fn check_with_etherparse(spec: &Spec, bytes: &[u8]) {
    let sliced = SlicedPacket::from_ethernet(bytes).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &sliced.link else {
        panic!("no Ethernet II header");
    };
    assert_eq!(eth.source(), spec.src_mac);
    assert_eq!(eth.destination(), spec.dst_mac);
    assert!(sliced.vlan.is_none());
    let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
        panic!("no IPv4 header");
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(h.source, spec.src_ip);
    assert_eq!(h.destination, spec.dst_ip);
    assert_eq!(h.time_to_live, spec.ttl);
    assert_eq!(h.identification, spec.ident);
    assert_eq!(h.dont_fragment, spec.dont_frag);
    assert_eq!(h.dscp.value(), spec.dscp);
    assert_eq!(h.ecn.value(), spec.ecn);
    match (&spec.transport, &sliced.transport) {
        (Transport::Udp { src_port, dst_port }, Some(TransportSlice::Udp(u))) => {
            assert_eq!(u.source_port(), *src_port);
            assert_eq!(u.destination_port(), *dst_port);
            assert_eq!(u.payload(), &spec.payload[..]);
            let expected = u
                .to_header()
                .calc_checksum_ipv4_raw(spec.src_ip, spec.dst_ip, &spec.payload)
                .unwrap();
            assert_eq!(u.checksum(), expected);
        }
        (
            Transport::Echo {
                request,
                ident,
                seq_no,
            },
            Some(TransportSlice::Icmpv4(i)),
        ) => {
            let echo = etherparse::IcmpEchoHeader {
                id: *ident,
                seq: *seq_no,
            };
            let ty = if *request {
                etherparse::Icmpv4Type::EchoRequest(echo)
            } else {
                etherparse::Icmpv4Type::EchoReply(echo)
            };
            assert_eq!(i.icmp_type(), ty);
            assert_eq!(i.payload(), &spec.payload[..]);
            assert_eq!(i.checksum(), ty.calc_checksum(&spec.payload));
        }
        (t, other) => panic!("{t:?} parsed as {other:?}"),
    }
}

proptest! {
    #[test]
    fn etherparse_frames_parse_alike_in_shardnet(spec in any_spec(), pad in 0usize..8) {
        let mut bytes = build_with_etherparse(&spec);
        // Trailing bytes (Ethernet padding) must not change anything.
        bytes.extend(std::iter::repeat_n(0u8, pad));
        check_with_shardnet(&spec, &bytes);
    }

    #[test]
    fn shardnet_frames_parse_alike_in_etherparse(mut spec in any_spec()) {
        spec.tags = Tags::None;
        spec.options.clear();
        let bytes = build_with_shardnet(&spec);
        check_with_etherparse(&spec, &bytes);
        check_with_shardnet(&spec, &bytes);
        // Byte for byte what etherparse builds from the same description.
        prop_assert_eq!(bytes, build_with_etherparse(&spec));
    }
}
