//! Source ports chosen by `shardnet::shard::steering` bring a connection's replies back, through
//! the memory wire's RSS, to the queue of the shard that opened the connection.

use shardnet::port::{Batch, Frame, Port};
use shardnet::shard::steering::PortSteering;
use shardnet::wire::tcp::{Flags, Segment};
use shardnet::wire::tcp_option::SackBlocks;
use shardnet::wire::{ChecksumMode, EthernetAddress, Ipv4Addr, ethernet, ipv4, tcp, udp};
use shardnet_memory::{MemoryPort, Wire, WireConfig};
use std::collections::HashSet;
use std::net::SocketAddrV4;

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// An Ethernet + IPv4 + UDP (or TCP) frame `src -> dst` with correct checksums, built with the
/// stack's own emitters.
fn reply_frame(src: SocketAddrV4, dst: SocketAddrV4, use_tcp: bool, payload: &[u8]) -> Vec<u8> {
    let (protocol, l4_len) = if use_tcp {
        (ipv4::Protocol::Tcp, 20 + payload.len())
    } else {
        (ipv4::Protocol::Udp, 8 + payload.len())
    };
    let ip = ipv4::Repr {
        src_addr: *src.ip(),
        dst_addr: *dst.ip(),
        protocol,
        payload_len: l4_len,
        ttl: 64,
        ident: 1,
        dont_frag: true,
        dscp_ecn: 0,
    };
    let eth = ethernet::Repr {
        src_addr: MAC_A,
        dst_addr: MAC_B,
        ethertype: ethernet::EtherType::Ipv4,
    };
    let ip_at = eth.buffer_len();
    let l4_at = ip_at + ip.header_len();
    let mut buf = vec![0u8; l4_at + l4_len];
    if use_tcp {
        let repr = tcp::Repr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq_number: 1000,
            ack_number: Some(2000),
            flags: Flags::SYN,
            window_len: 65535,
            urgent_at: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: SackBlocks::new(),
            timestamp: None,
            fast_open: None,
            payload,
        };
        repr.emit(
            &mut Segment::new_unchecked(&mut buf[l4_at..]),
            *src.ip(),
            *dst.ip(),
            ChecksumMode::Software,
        );
    } else {
        let repr = udp::Repr {
            src_port: src.port(),
            dst_port: dst.port(),
            payload_len: payload.len(),
        };
        let mut packet = udp::Packet::new_unchecked(&mut buf[l4_at..]);
        packet.payload_mut()[..payload.len()].copy_from_slice(payload);
        repr.emit(&mut packet, *src.ip(), *dst.ip(), ChecksumMode::Software);
    }
    ip.emit(
        &mut ipv4::Packet::new_unchecked(&mut buf[ip_at..]),
        ChecksumMode::Software,
    );
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    // The frame is well formed: its checksums verify with the stack's own parsers.
    let packet = ipv4::Packet::new_checked(&buf[ip_at..]).expect("IPv4 header");
    assert!(packet.verify_checksum(), "IPv4 header checksum");
    let l4 = &buf[l4_at..];
    if use_tcp {
        let segment = Segment::new_checked(l4).expect("TCP header");
        assert!(
            segment.verify_checksum(*src.ip(), *dst.ip()),
            "TCP checksum"
        );
    } else {
        let datagram = udp::Packet::new_checked(l4).expect("UDP header");
        assert!(
            datagram.verify_checksum(*src.ip(), *dst.ip()),
            "UDP checksum"
        );
    }
    buf
}

fn send(port: &mut MemoryPort, bytes: &[u8]) {
    let mut frame = port.alloc_tx().expect("a free transmit buffer");
    frame.buffer_mut()[..bytes.len()].copy_from_slice(bytes);
    frame.set_len(bytes.len());
    let mut batch = Batch::new();
    batch.push(frame);
    assert_eq!(port.tx_burst(&mut batch), 1, "frame not sent");
}

fn drain(port: &mut MemoryPort) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch = Batch::new();
    while port.rx_burst(&mut batch) > 0 {
        for frame in batch.drain(..) {
            out.push(frame.data().to_vec());
            port.release(frame);
        }
    }
    out
}

/// For every queue of the multi-queue port B, ports picked for connections B -> A bring the
/// replies A -> B back to that queue and no other.
fn replies_arrive_on_the_picking_queue(b_queues: u16, a_queues: u16) {
    let wire = Wire::new(WireConfig::default());
    let a = wire.add_port(MAC_A, a_queues);
    let b = wire.add_port(MAC_B, b_queues);
    let mut pa = wire.port(a, 0).expect("port A queue 0");
    let mut pb: Vec<MemoryPort> = (0..b_queues)
        .map(|q| wire.port(b, q).expect("port B queue"))
        .collect();
    let rss = pb[0].capabilities().rss.clone();
    assert!(rss.is_some(), "a multi-queue port reports its RSS");

    let mut sent = 0;
    for q in 0..b_queues {
        let mut steering = PortSteering::new(rss.as_ref(), q);
        let mut used = HashSet::new();
        for n in 0..24u16 {
            // A's stack may answer from many addresses (the wire delivers by MAC): vary them, so
            // that every byte of the hash input matters.
            let ip = Ipv4Addr::new(203, 0, 113, 1 + 7 * n as u8);
            let remote = SocketAddrV4::new(if n == 0 { IP_A } else { ip }, 8000 + n % 5);
            let port = steering
                .pick(IP_B, remote, |p| !used.contains(&(remote.port(), p)))
                .expect("a steering port");
            assert!(used.insert((remote.port(), port)), "port {port} reused");
            let local = SocketAddrV4::new(IP_B, port);
            let frame = reply_frame(remote, local, n % 2 == 1, &n.to_be_bytes());
            send(&mut pa, &frame);
            sent += 1;
            if let Some(t) = wire.next_delivery() {
                wire.advance_to(t);
            }
            for (queue, rx) in pb.iter_mut().enumerate() {
                let got = drain(rx);
                if queue == usize::from(q) {
                    assert_eq!(got, vec![frame.clone()], "reply to port {port}, queue {q}");
                } else {
                    assert!(
                        got.is_empty(),
                        "reply to port {port} of queue {q} arrived on queue {queue}"
                    );
                }
            }
        }
    }
    assert_eq!(sent, 24 * usize::from(b_queues));
    assert!(wire.all_pools_full());
}

#[test]
fn replies_to_picked_ports_arrive_on_the_picking_queue_of_a_four_queue_port() {
    replies_arrive_on_the_picking_queue(4, 1);
}

#[test]
fn replies_to_picked_ports_arrive_on_the_picking_queue_when_both_ports_are_multi_queue() {
    replies_arrive_on_the_picking_queue(7, 3);
}

#[test]
fn a_port_picked_for_another_queue_does_not_arrive_on_ours() {
    let wire = Wire::new(WireConfig::default());
    let a = wire.add_port(MAC_A, 1);
    let b = wire.add_port(MAC_B, 2);
    let mut pa = wire.port(a, 0).expect("a");
    let mut q0 = wire.port(b, 0).expect("b0");
    let mut q1 = wire.port(b, 1).expect("b1");
    let rss = q0.capabilities().rss.clone();
    let ours = PortSteering::new(rss.as_ref(), 0);
    let mut theirs = PortSteering::new(rss.as_ref(), 1);
    let remote = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 77), 443);
    let port = theirs.pick(IP_B, remote, |_| true).expect("a port");
    let local = SocketAddrV4::new(IP_B, port);
    assert!(!ours.steer_ok(local, remote));
    assert!(theirs.steer_ok(local, remote));
    let frame = reply_frame(remote, local, true, b"x");
    send(&mut pa, &frame);
    if let Some(t) = wire.next_delivery() {
        wire.advance_to(t);
    }
    assert!(drain(&mut q0).is_empty());
    assert_eq!(drain(&mut q1), vec![frame]);
}
