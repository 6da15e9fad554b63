//! Packet-level tests of the shard: frames in (built with etherparse, independently of our own
//! emitters), frames out (parsed with our views), a fake clock.

use super::tcp;
use super::*;
use crate::ip::Ipv4Cidr;
use crate::port::VecTransmit;
use crate::udp::{RecvError, SendError};
use etherparse::PacketBuilder;

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_B: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// The configuration of shard A (198.18.0.1/24), already announced.
fn config_a() -> ShardConfig {
    let iface = InterfaceConfig {
        mac: MAC_A,
        cidr: Ipv4Cidr::new(IP_A, 24).unwrap(),
        gateway: Some(GATEWAY),
        mtu: 1500,
        ttl: 64,
    };
    let mut config = ShardConfig::new(iface);
    config.announce = false;
    config
}

/// Shard A, with the peer B in its ARP cache unless `cold`.
fn shard(cold: bool) -> Shard {
    let mut s = Shard::new(config_a());
    if !cold {
        s.arp.update(t(0), IP_B, MAC_B, true);
    }
    s
}

/// Shard A with room for `max` TCP connections (flow table and timer wheel), B in its ARP cache.
fn small_shard(max: usize) -> Shard {
    let mut config = config_a();
    config.max_tcp_connections = max;
    let mut s = Shard::new(config);
    s.arp.update(t(0), IP_B, MAC_B, true);
    s
}

fn rx(s: &mut Shard, now: Instant, frame: &[u8]) {
    s.handle_frame(now, frame, RxOffload::default());
}

fn tx(s: &mut Shard, now: Instant) -> Vec<Vec<u8>> {
    let mut out = VecTransmit::default();
    s.poll_transmit(now, &mut out);
    out.frames
}

fn arp_frame(
    op: arp::Operation,
    smac: EthernetAddress,
    sip: Ipv4Addr,
    tmac: EthernetAddress,
    tip: Ipv4Addr,
) -> Vec<u8> {
    let repr = arp::Repr {
        operation: op,
        source_hardware_addr: smac,
        source_protocol_addr: sip,
        target_hardware_addr: tmac,
        target_protocol_addr: tip,
    };
    let mut buf = vec![0u8; 60]; // padded to the Ethernet minimum, as a NIC delivers it
    let dst = if op == arp::Operation::Request {
        EthernetAddress::BROADCAST
    } else {
        tmac
    };
    emit_arp_frame(&mut buf, dst, &repr);
    buf
}

fn udp_frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_B.0, MAC_A.0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn echo_request(dst_ip: Ipv4Addr, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_B.0, MAC_A.0)
        .ipv4(IP_B.octets(), dst_ip.octets(), 64)
        .icmpv4_echo_request(ident, seq);
    let mut out = Vec::new();
    b.write(&mut out, data).unwrap();
    out
}

/// Parses an outgoing frame down to its IPv4 packet.
fn ip_of(frame: &[u8]) -> (ethernet::Repr, ipv4::Repr, Vec<u8>) {
    let eth = ethernet::Frame::new_checked(frame).unwrap();
    let e = ethernet::Repr::parse(&eth).unwrap();
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    let r = ipv4::Repr::parse(&ip, ChecksumMode::Software).unwrap();
    assert!(ip.dont_frag(), "shardnet sets DF on everything it sends");
    (e, r, ip.payload().to_vec())
}

#[test]
fn arp_request_for_our_address_is_answered_and_teaches_the_sender() {
    let mut s = shard(true);
    rx(
        &mut s,
        t(1),
        &arp_frame(
            arp::Operation::Request,
            MAC_B,
            IP_B,
            EthernetAddress::ZERO,
            IP_A,
        ),
    );
    let out = tx(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let eth = ethernet::Frame::new_checked(&out[0][..]).unwrap();
    assert_eq!(eth.dst_addr(), MAC_B);
    let reply = arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(reply.operation, arp::Operation::Reply);
    assert_eq!(
        (reply.source_hardware_addr, reply.source_protocol_addr),
        (MAC_A, IP_A)
    );
    assert_eq!(
        (reply.target_hardware_addr, reply.target_protocol_addr),
        (MAC_B, IP_B)
    );
    assert_eq!(s.arp_cache().peek(IP_B), Some(MAC_B));
    assert_eq!(s.stats().arp.tx_replies, 1);
}

#[test]
fn arp_request_for_another_host_is_not_answered_and_not_learned() {
    let mut s = shard(true);
    let other = Ipv4Addr::new(198, 18, 0, 3);
    rx(
        &mut s,
        t(1),
        &arp_frame(
            arp::Operation::Request,
            MAC_B,
            IP_B,
            EthernetAddress::ZERO,
            other,
        ),
    );
    assert!(tx(&mut s, t(1)).is_empty());
    assert_eq!(s.arp_cache().peek(IP_B), None);
    assert_eq!(s.stats().arp.rx_not_for_us, 1);
}

#[test]
fn gratuitous_arp_announces_our_address_once_at_start() {
    let mut config = shard(true).config;
    config.announce = true;
    let mut s = Shard::new(config);
    assert_eq!(s.poll_timeout(), Some(Instant::ZERO));
    let out = tx(&mut s, t(0));
    assert_eq!(out.len(), 1);
    let eth = ethernet::Frame::new_checked(&out[0][..]).unwrap();
    assert!(eth.dst_addr().is_broadcast());
    let a = arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(
        (a.source_protocol_addr, a.target_protocol_addr),
        (IP_A, IP_A)
    );
    assert!(tx(&mut s, t(1)).is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn echo_request_is_answered_with_the_same_data() {
    let mut s = shard(false);
    let data: Vec<u8> = (0..56).collect();
    rx(&mut s, t(1), &echo_request(IP_A, 0x1234, 7, &data));
    let out = tx(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let (e, ip, payload) = ip_of(&out[0]);
    assert_eq!((e.dst_addr, ip.dst_addr, ip.src_addr), (MAC_B, IP_B, IP_A));
    let icmp = icmp::Packet::new_checked(&payload[..]).unwrap();
    assert_eq!(
        icmp::Repr::parse(&icmp, ChecksumMode::Software).unwrap(),
        icmp::Repr::EchoReply {
            ident: 0x1234,
            seq_no: 7,
            data: &data
        }
    );
    assert_eq!(s.stats().icmp.out_echo_reps, 1);
}

#[test]
fn broadcast_echo_request_is_ignored_like_linux() {
    let mut s = shard(false);
    rx(
        &mut s,
        t(1),
        &echo_request(Ipv4Addr::new(198, 18, 0, 255), 1, 1, b"x"),
    );
    assert!(tx(&mut s, t(1)).is_empty());
    assert_eq!(s.stats().icmp.in_echos, 1);
}

#[test]
fn ping_round_trip_between_our_own_request_and_reply() {
    let mut s = shard(false);
    s.ping(t(0), IP_B, 9, 1, b"abc").unwrap();
    let out = tx(&mut s, t(0));
    let (_, ip, payload) = ip_of(&out[0]);
    assert_eq!(ip.dst_addr, IP_B);
    let req = icmp::Repr::parse(
        &icmp::Packet::new_checked(&payload[..]).unwrap(),
        ChecksumMode::Software,
    )
    .unwrap();
    assert_eq!(
        req,
        icmp::Repr::EchoRequest {
            ident: 9,
            seq_no: 1,
            data: b"abc"
        }
    );
    let b = PacketBuilder::ethernet2(MAC_B.0, MAC_A.0)
        .ipv4(IP_B.octets(), IP_A.octets(), 64)
        .icmpv4_echo_reply(9, 1);
    let mut reply = Vec::new();
    b.write(&mut reply, b"abc").unwrap();
    rx(&mut s, t(3), &reply);
    let mut buf = [0u8; 16];
    let r = s.recv_echo_reply(&mut buf).unwrap();
    assert_eq!(
        (r.from, r.ident, r.seq_no, &buf[..r.len], r.received_at),
        (IP_B, 9, 1, &b"abc"[..], t(3))
    );
    assert!(s.recv_echo_reply(&mut buf).is_none());
}

#[test]
fn udp_to_a_closed_port_gets_port_unreachable_quoting_the_datagram() {
    let mut s = shard(false);
    let frame = udp_frame((IP_B, 5000), (IP_A, 9), b"hello");
    rx(&mut s, t(1), &frame);
    let out = tx(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let (_, ip, payload) = ip_of(&out[0]);
    assert_eq!(ip.dst_addr, IP_B);
    let icmp = icmp::Packet::new_checked(&payload[..]).unwrap();
    match icmp::Repr::parse(&icmp, ChecksumMode::Software).unwrap() {
        icmp::Repr::DstUnreachable {
            reason, invoking, ..
        } => {
            assert_eq!(reason, icmp::DstUnreachable::PortUnreachable);
            assert_eq!(invoking, &frame[ETH..]);
        }
        other => panic!("expected port unreachable, got {other:?}"),
    }
    assert_eq!(s.stats().udp.no_ports, 1);
}

#[test]
fn port_unreachables_are_rate_limited() {
    let mut s = shard(false);
    for _ in 0..200 {
        rx(&mut s, t(1), &udp_frame((IP_B, 5000), (IP_A, 9), b"x"));
    }
    assert_eq!(tx(&mut s, t(1)).len(), 50);
    assert_eq!(s.stats().icmp.out_rate_limited, 150);
}

#[test]
fn udp_datagram_reaches_its_socket_and_the_answer_goes_back() {
    let mut s = shard(false);
    let h = s.udp().open().unwrap();
    s.udp_bind(h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))
        .unwrap();
    rx(&mut s, t(1), &udp_frame((IP_B, 5000), (IP_A, 7), b"ping"));
    let mut buf = [0u8; 64];
    let r = s.udp().recv_from(h, &mut buf).unwrap();
    assert_eq!(
        (&buf[..r.len], r.from),
        (&b"ping"[..], SocketAddrV4::new(IP_B, 5000))
    );
    s.udp_send_to(h, Some(r.from), b"pong").unwrap();
    let out = tx(&mut s, t(1));
    assert_eq!(out.len(), 1);
    // Parse with etherparse: an independent check of our UDP/IP emitters and checksums.
    let p = etherparse::SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
        panic!("not UDP")
    };
    assert_eq!(
        (u.source_port(), u.destination_port(), u.payload()),
        (7, 5000, &b"pong"[..])
    );
    let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
        panic!("not IPv4")
    };
    let header = ip.header().to_header();
    assert_eq!(header.header_checksum, header.calc_header_checksum());
    assert_eq!(
        u.to_header().checksum,
        u.to_header()
            .calc_checksum_ipv4_raw(IP_A.octets(), IP_B.octets(), b"pong")
            .unwrap()
    );
}

#[test]
fn datagram_to_unresolved_peer_waits_for_arp_then_goes_out() {
    let mut s = shard(true);
    let h = s.udp().open().unwrap();
    s.udp_send_to(h, Some(SocketAddrV4::new(IP_B, 7)), b"first")
        .unwrap();
    s.udp_send_to(h, Some(SocketAddrV4::new(IP_B, 7)), b"second")
        .unwrap();
    let out = tx(&mut s, t(0));
    assert_eq!(out.len(), 1, "only the ARP request goes out");
    let eth = ethernet::Frame::new_checked(&out[0][..]).unwrap();
    assert_eq!(eth.ethertype(), ethernet::EtherType::Arp);
    assert_eq!(s.poll_timeout(), Some(t(1000)), "next: the ARP retry");
    rx(
        &mut s,
        t(2),
        &arp_frame(arp::Operation::Reply, MAC_B, IP_B, MAC_A, IP_A),
    );
    assert_eq!(s.poll_timeout(), Some(t(2)));
    let out = tx(&mut s, t(2));
    let payloads: Vec<Vec<u8>> = out.iter().map(|f| ip_of(f).2[UDP..].to_vec()).collect();
    assert_eq!(payloads, vec![b"first".to_vec(), b"second".to_vec()]);
    assert_eq!(ip_of(&out[0]).0.dst_addr, MAC_B);
    assert_eq!(s.stats().udp.out_datagrams, 2);
}

/// The sender address of the ARP request in `frame`.
fn arp_sender(frame: &[u8]) -> Ipv4Addr {
    let eth = ethernet::Frame::new_checked(frame).unwrap();
    assert_eq!(eth.ethertype(), ethernet::EtherType::Arp);
    let packet = arp::Packet::new_checked(eth.payload()).unwrap();
    let repr = arp::Repr::parse(&packet).unwrap();
    assert_eq!(repr.operation, arp::Operation::Request);
    repr.source_protocol_addr
}

#[test]
fn arp_request_comes_from_the_source_address_of_the_packet_waiting_for_it() {
    // Linux `arp_solicit` (arp_announce 0): the newest queued packet's source, if local.
    let secondary = Ipv4Addr::new(198, 18, 0, 9);
    let mut s = shard(true);
    s.add_secondary_address(secondary).unwrap();
    let h = s.udp().open().unwrap();
    s.udp_bind(h, SocketAddrV4::new(secondary, 4000)).unwrap();
    s.udp_send_to(h, Some(SocketAddrV4::new(IP_B, 7)), b"from the secondary")
        .unwrap();
    let out = tx(&mut s, t(0));
    assert_eq!(out.len(), 1, "only the ARP request goes out");
    assert_eq!(arp_sender(&out[0]), secondary);

    // A packet from the primary address (an unbound socket): the primary address.
    let mut s = shard(true);
    let h = s.udp().open().unwrap();
    s.udp_send_to(h, Some(SocketAddrV4::new(IP_B, 7)), b"from the primary")
        .unwrap();
    let out = tx(&mut s, t(0));
    assert_eq!(arp_sender(&out[0]), IP_A);
}

#[test]
fn unresolved_next_hop_drops_waiting_packets_after_three_requests() {
    let mut s = shard(true);
    let h = s.udp().open().unwrap();
    s.udp_send_to(h, Some(SocketAddrV4::new(IP_B, 7)), b"lost")
        .unwrap();
    let mut requests = 0;
    let mut now = t(0);
    while let Some(next) = s.poll_timeout() {
        now = next.max(now);
        s.handle_timeout(now);
        requests += tx(&mut s, now).len();
        assert!(now < t(10_000), "resolution must give up");
    }
    assert_eq!(requests, 3);
    assert_eq!(s.stats().arp.failed, 1);
    assert_eq!(s.stats().arp.unresolved_drops, 1);
}

#[test]
fn off_link_destination_goes_to_the_gateway_mac() {
    let mut s = shard(true);
    let gw_mac = EthernetAddress([2, 0, 0, 0, 0, 0xfe]);
    s.arp.update(t(0), GATEWAY, gw_mac, true);
    let h = s.udp().open().unwrap();
    s.udp_send_to(
        h,
        Some(SocketAddrV4::new(Ipv4Addr::new(198, 19, 1, 1), 53)),
        b"q",
    )
    .unwrap();
    let out = tx(&mut s, t(0));
    let (e, ip, _) = ip_of(&out[0]);
    assert_eq!(
        (e.dst_addr, ip.dst_addr),
        (gw_mac, Ipv4Addr::new(198, 19, 1, 1))
    );
}

#[test]
fn no_route_is_enetunreach_at_send_time() {
    let mut config = shard(true).config;
    config.iface.gateway = None;
    let mut s = Shard::new(config);
    let h = s.udp().open().unwrap();
    assert_eq!(
        s.udp_send_to(
            h,
            Some(SocketAddrV4::new(Ipv4Addr::new(198, 19, 1, 1), 53)),
            b"q"
        ),
        Err(SendError::NetUnreachable)
    );
    assert_eq!(s.stats().ip.out_no_routes, 1);
}

#[test]
fn connected_socket_learns_econnrefused_from_port_unreachable() {
    let mut s = shard(false);
    let h = s.udp().open().unwrap();
    let peer = SocketAddrV4::new(IP_B, 9);
    s.udp().connect(h, peer).unwrap();
    s.udp_send_to(h, None, b"anyone?").unwrap();
    let out = tx(&mut s, t(0));
    // B answers with port unreachable quoting our datagram.
    let quoted = &out[0][ETH..];
    let b = PacketBuilder::ethernet2(MAC_B.0, MAC_A.0)
        .ipv4(IP_B.octets(), IP_A.octets(), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let mut frame = Vec::new();
    b.write(&mut frame, quoted).unwrap();
    rx(&mut s, t(1), &frame);
    let mut buf = [0u8; 8];
    assert_eq!(
        s.udp().recv_from(h, &mut buf),
        Err(RecvError::ConnectionRefused)
    );
}

#[test]
fn malformed_and_foreign_frames_are_dropped_under_named_reasons() {
    let mut s = shard(false);
    let good = udp_frame((IP_B, 5000), (IP_A, 9), b"payload");
    // Truncated Ethernet header.
    rx(&mut s, t(1), &good[..10]);
    assert_eq!(s.stats().ethernet.rx_truncated, 1);
    // Another host's MAC.
    let mut f = good.clone();
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().ethernet.rx_not_for_us, 1);
    // IHL < 5.
    let mut f = good.clone();
    f[ETH] = 0x44;
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().ip_drops.get(wire::Error::BadHeaderLen), 1);
    // Bad IPv4 header checksum.
    let mut f = good.clone();
    f[ETH + 10] ^= 0xff;
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().ip_drops.get(wire::Error::BadChecksum), 1);
    // Total length beyond the frame.
    let mut f = good.clone();
    f.truncate(f.len() - 3);
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().ip_drops.get(wire::Error::Truncated), 1);
    // Bad UDP checksum.
    let mut f = good.clone();
    let last = f.len() - 1;
    f[last] ^= 0x01;
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().udp.in_csum_errors, 1);
    // UDP length below 8 (fix the UDP checksum to zero = none so only the length is wrong).
    let mut f = good.clone();
    f[ETH + IP + 4..ETH + IP + 6].copy_from_slice(&4u16.to_be_bytes());
    f[ETH + IP + 6..ETH + IP + 8].copy_from_slice(&[0, 0]);
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().udp_drops.get(wire::Error::BadLength), 1);
    // For another IP address.
    rx(
        &mut s,
        t(1),
        &udp_frame((IP_B, 5000), (Ipv4Addr::new(198, 18, 0, 9), 9), b"x"),
    );
    assert_eq!(s.stats().ip.in_addr_errors, 1);
    // A fragment (MF set; header checksum fixed up incrementally).
    let mut f = good.clone();
    let old = u16::from_be_bytes([f[ETH + 6], f[ETH + 7]]);
    let new = old | 0x2000;
    f[ETH + 6..ETH + 8].copy_from_slice(&new.to_be_bytes());
    let c = u16::from_be_bytes([f[ETH + 10], f[ETH + 11]]);
    f[ETH + 10..ETH + 12].copy_from_slice(&wire::checksum::update_u16(c, old, new).to_be_bytes());
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().ip.frag_dropped, 1);
    // Unknown EtherType (IPv6).
    let mut f = good.clone();
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    rx(&mut s, t(1), &f);
    assert_eq!(s.stats().ethernet.rx_unknown_ethertype, 1);
    // None of it produced a datagram or a reply other than the rate-limited ICMP errors.
    assert_eq!(s.stats().udp.in_datagrams, 0);
    assert_eq!(s.stats().ethernet.rx_frames, 10);
}

fn tcp_frame(
    flags: impl FnOnce(
        etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_B.0, MAC_A.0)
        .ipv4(IP_B.octets(), IP_A.octets(), 64)
        .tcp(4000, 80, seq, 65535);
    let mut f = Vec::new();
    flags(b).write(&mut f, payload).unwrap();
    f
}

fn tcp_of(frame: &[u8]) -> etherparse::TcpHeader {
    let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    t.to_header()
}

#[test]
fn syn_to_a_closed_port_gets_rst_ack() {
    let mut s = shard(false);
    rx(&mut s, t(1), &tcp_frame(|b| b.syn(), 777, &[]));
    let out = tx(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let h = tcp_of(&out[0]);
    // RFC 9293 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    assert!(h.rst && h.ack && !h.syn);
    assert_eq!((h.sequence_number, h.acknowledgment_number), (0, 778));
    assert_eq!(s.stats().tcp.out_rsts, 1);
}

#[test]
fn stray_ack_gets_rst_from_its_ack_number_and_rst_gets_nothing() {
    let mut s = shard(false);
    rx(&mut s, t(1), &tcp_frame(|b| b.ack(5555), 1, b"data"));
    let h = tcp_of(&tx(&mut s, t(1))[0]);
    assert!(h.rst && !h.ack);
    assert_eq!(h.sequence_number, 5555);
    rx(&mut s, t(2), &tcp_frame(|b| b.rst(), 1, &[]));
    assert!(tx(&mut s, t(2)).is_empty(), "never a reset for a reset");
}

#[test]
fn listener_answers_syn_and_the_connection_is_accepted_after_the_handshake() {
    let mut s = shard(false);
    let l = s.tcp().listen(80, 16).unwrap();
    assert_eq!(s.tcp().listen(80, 16), Err(tcp::ListenError::AddrInUse));
    rx(&mut s, t(1), &tcp_frame(|b| b.syn(), 100, &[]));
    assert_eq!(
        s.tcp().accept(l),
        Err(tcp::AcceptError::WouldBlock),
        "not before the handshake completes"
    );
    let out = tx(&mut s, t(1));
    let h = tcp_of(&out[0]);
    assert!(h.syn && h.ack);
    assert_eq!(h.acknowledgment_number, 101);
    let iss = h.sequence_number;
    rx(
        &mut s,
        t(2),
        &tcp_frame(|b| b.ack(iss.wrapping_add(1)), 101, b"hello"),
    );
    let c = s.tcp().accept(l).unwrap();
    let mut buf = [0u8; 16];
    let n = s.tcp().get_mut(c).unwrap().recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(s.stats().tcp.passive_opens, 1);
    assert_eq!(s.stats().tcp.curr_estab, 1);
}

#[test]
fn tcp_with_a_bad_checksum_is_dropped_and_counted() {
    let mut s = shard(false);
    let mut f = tcp_frame(|b| b.syn(), 1, &[]);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    rx(&mut s, t(1), &f);
    assert!(tx(&mut s, t(1)).is_empty());
    assert_eq!(s.stats().tcp.in_csum_errors, 1);
}

#[test]
fn transmit_backpressure_keeps_frames_for_the_next_poll() {
    let mut s = shard(false);
    let h = s.udp().open().unwrap();
    for i in 0..5u8 {
        s.udp_send_to(h, Some(SocketAddrV4::new(IP_B, 7)), &[i])
            .unwrap();
    }
    let mut out = VecTransmit {
        limit: Some(2),
        ..VecTransmit::default()
    };
    assert_eq!(s.poll_transmit(t(0), &mut out), 2);
    assert_eq!(s.poll_timeout(), Some(t(0)));
    let rest = tx(&mut s, t(0));
    let all: Vec<u8> = out
        .frames
        .iter()
        .chain(rest.iter())
        .map(|f| ip_of(f).2[UDP])
        .collect();
    assert_eq!(all, vec![0, 1, 2, 3, 4]);
}

#[test]
fn active_opens_choose_ports_whose_replies_reach_this_shard() {
    use crate::port::RssConfig;
    use crate::shard::rss::{DEFAULT_KEY, ipv4_tcp_udp_input, queue_for_hash, toeplitz_hash};
    let rss = RssConfig {
        key: DEFAULT_KEY.to_vec(),
        indirection: (0..128).map(|i| i % 4).collect(),
    };
    let mut s = shard(false);
    s.set_rss(Some(&rss), 2);
    let remote = SocketAddrV4::new(IP_B, 80);
    let mut ports = std::collections::HashSet::new();
    for _ in 0..500 {
        let h = s.tcp_connect(t(0), remote).unwrap();
        let local = s.tcp().get(h).unwrap().local();
        // The NIC hashes the reply: from the remote to us.
        let input = ipv4_tcp_udp_input(*remote.ip(), *local.ip(), remote.port(), local.port());
        assert_eq!(
            queue_for_hash(&rss, toeplitz_hash(&rss.key, &input)),
            2,
            "port {}",
            local.port()
        );
        assert!(ports.insert(local.port()), "each connection its own port");
    }
    // Without RSS (a single-queue port), any free port will do.
    let mut single = shard(false);
    let a = single.tcp_connect(t(0), remote).unwrap();
    let b = single.tcp_connect(t(0), remote).unwrap();
    assert_ne!(
        single.tcp().get(a).unwrap().local().port(),
        single.tcp().get(b).unwrap().local().port()
    );
}

#[test]
fn connections_shut_down_while_connecting_leave_no_timer_behind() {
    // Linux inet_shutdown disconnects a SYN-SENT socket and clears its timers. Here a
    // SYN-SENT connection shut down for writing kept its SYN retransmission timer while
    // CLOSED; held by the application it stayed out of the flow table but on the timer wheel,
    // and once such connections filled the wheel (sized for the flow table) the timers of
    // new connections were dropped: they never retransmitted nor timed out (found by the
    // `tcp_stateful` fuzz target).
    let mut s = small_shard(4);
    let remote = SocketAddrV4::new(IP_B, 80);
    let old: Vec<_> = (0..4)
        .map(|_| s.tcp_connect(t(0), remote).unwrap())
        .collect();
    assert_eq!(tx(&mut s, t(0)).len(), 4, "four SYNs");
    for h in old {
        s.tcp().get_mut(h).unwrap().shutdown_write();
        assert_eq!(s.tcp().get(h).unwrap().state(), crate::tcp::State::Closed);
        assert_eq!(s.tcp().get(h).unwrap().next_timer(), None);
    }
    assert_eq!(
        tx(&mut s, t(0)).len(),
        0,
        "no RST from SYN-SENT (Linux tcp_disconnect)"
    );
    let fresh: Vec<_> = (0..4)
        .map(|_| s.tcp_connect(t(1), remote).unwrap())
        .collect();
    assert_eq!(tx(&mut s, t(1)).len(), 4, "four SYNs");
    s.tcp_endpoints().check_timers().unwrap();
    // RFC 6298 5.5: every SYN is retransmitted after the initial RTO (1 s).
    let due = s.poll_timeout().expect("SYN retransmission timers");
    assert!(due <= t(1002), "{due:?}");
    s.handle_timeout(t(1002));
    assert_eq!(tx(&mut s, t(1002)).len(), 4, "four retransmitted SYNs");
    for h in fresh {
        let tcb = s.tcp().get(h).unwrap();
        assert_eq!(tcb.state(), crate::tcp::State::SynSent);
        assert!(tcb.next_timer().is_some());
    }
}

#[test]
fn a_connection_reset_by_its_peer_leaves_the_timer_wheel_with_the_flow_table() {
    // The timer wheel has room for `max_tcp_connections` entries, like the flow table. A
    // connection reset by a segment left the flow table at once but kept its wheel entry until
    // the next poll; a connection request admitted in its place took the last wheel entry,
    // and the poll then could not put back the timer of a connection whose RTO had just fired:
    // it never fired again (found by the `tcp_stateful` fuzz target).
    let mut s = small_shard(2);
    s.tcp().listen(80, 16).unwrap();
    let remote = SocketAddrV4::new(IP_B, 9000);
    let a = s.tcp_connect(t(0), remote).unwrap();
    assert_eq!(tx(&mut s, t(0)).len(), 1);
    let b = s.tcp_connect(t(500), remote).unwrap();
    let syn_b = tcp_of(&tx(&mut s, t(500))[0]);
    // A's SYN retransmission timer fires (1 s): A waits on the ready list for the next poll.
    s.handle_timeout(t(1000));
    // B is refused: RST,ACK acknowledging its SYN (RFC 9293 3.10.7.3: enter CLOSED).
    let mut rst = Vec::new();
    PacketBuilder::ethernet2(MAC_B.0, MAC_A.0)
        .ipv4(IP_B.octets(), IP_A.octets(), 64)
        .tcp(9000, syn_b.source_port, 0, 0)
        .rst()
        .ack(syn_b.sequence_number.wrapping_add(1))
        .write(&mut rst, &[])
        .unwrap();
    rx(&mut s, t(1000), &rst);
    assert_eq!(s.tcp().get(b).unwrap().state(), crate::tcp::State::Closed);
    // A SYN to the listener takes B's place in the flow table.
    rx(&mut s, t(1000), &tcp_frame(|f| f.syn(), 100, &[]));
    assert_eq!(s.tcp_endpoints().connection_count(), 2);
    // The poll sends A's retransmitted SYN and the SYN-ACK, and every timer stays reachable.
    assert_eq!(tx(&mut s, t(1000)).len(), 2);
    s.tcp_endpoints().check_timers().unwrap();
    let tcb = s.tcp().get(a).unwrap();
    assert_eq!(tcb.state(), crate::tcp::State::SynSent);
    let due = tcb.next_timer().unwrap();
    s.handle_timeout(due);
    let out = tx(&mut s, due);
    assert!(
        out.iter().any(|f| {
            let h = tcp_of(f);
            h.syn && !h.ack
        }),
        "A's SYN goes out again at {due:?}"
    );
}
