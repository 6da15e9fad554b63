//! Shared pieces of shardnet's benchmarks (the benchmarks themselves live in `benches/`).
//!
//! Frames are built with shardnet's own emitters (their correctness is tested elsewhere: unit,
//! fixture and etherparse tests) between two hosts of the RFC 2544 range: "us"
//! (198.18.0.1, 02:00:00:00:00:01) and a peer (198.18.0.2, 02:00:00:00:00:02).

pub mod forward;
pub mod kernel_sockets;
pub mod matrix;
pub mod xdp_generator;

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{RxOffload, Transmit};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::time::Instant;
use shardnet::wire::{
    ChecksumMode, EthernetAddress, Ipv4Addr, arp, ethernet, icmp, ipv4, tcp, udp,
};

/// Our MAC address.
pub const MAC_US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
/// The peer's MAC address.
pub const MAC_PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
/// Our IPv4 address.
pub const IP_US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The peer's IPv4 address.
pub const IP_PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The UDP port of the peer.
pub const PEER_PORT: u16 = 7000;
/// The UDP port we listen on.
pub const OUR_PORT: u16 = 5000;

const ETH: usize = ethernet::HEADER_LEN;
const IP: usize = ipv4::HEADER_LEN;

/// `len` bytes of a recognisable pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

fn ip_frame(
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    protocol: ipv4::Protocol,
    l4_len: usize,
    write_l4: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let mut buf = vec![0u8; ETH + IP + l4_len];
    let eth = ethernet::Repr {
        src_addr: src.0,
        dst_addr: dst.0,
        ethertype: ethernet::EtherType::Ipv4,
    };
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    let ip = ipv4::Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        protocol,
        payload_len: l4_len,
        ttl: 64,
        ident: 1,
        dont_frag: true,
        dscp_ecn: 0,
    };
    let mut packet = ipv4::Packet::new_unchecked(&mut buf[ETH..]);
    ip.emit(&mut packet, ChecksumMode::Software);
    write_l4(packet.payload_mut());
    buf
}

/// An Ethernet + IPv4 + UDP frame from the peer (port 7000) to us (port 5000) carrying
/// `payload_len` pattern bytes, all checksums correct.
pub fn udp_frame(payload_len: usize) -> Vec<u8> {
    let repr = udp::Repr {
        src_port: PEER_PORT,
        dst_port: OUR_PORT,
        payload_len,
    };
    ip_frame(
        (MAC_PEER, IP_PEER),
        (MAC_US, IP_US),
        ipv4::Protocol::Udp,
        repr.buffer_len(),
        |b| {
            let mut d = udp::Packet::new_unchecked(b);
            d.payload_mut().copy_from_slice(&pattern(payload_len));
            repr.emit(&mut d, IP_PEER, IP_US, ChecksumMode::Software);
        },
    )
}

/// An Ethernet + IPv4 + TCP data segment from the peer (port 7000) to us (port 5000) as Linux
/// sends one on an established connection: ACK|PSH, NOP NOP Timestamps (a 32-byte header),
/// `payload_len` pattern bytes, all checksums correct.
pub fn tcp_frame(payload_len: usize) -> Vec<u8> {
    let payload = pattern(payload_len);
    let repr = tcp::Repr {
        src_port: PEER_PORT,
        dst_port: OUR_PORT,
        seq_number: 1_526_572_090,
        ack_number: Some(2_880_238_276),
        flags: tcp::Flags::PSH,
        window_len: 63,
        timestamp: Some(tcp::TcpTimestamp {
            tsval: 839_554_116,
            tsecr: 1_838_749_534,
        }),
        payload: &payload,
        ..tcp::Repr::default()
    };
    ip_frame(
        (MAC_PEER, IP_PEER),
        (MAC_US, IP_US),
        ipv4::Protocol::Tcp,
        repr.buffer_len(),
        |b| {
            repr.emit(
                &mut tcp::Segment::new_unchecked(b),
                IP_PEER,
                IP_US,
                ChecksumMode::Software,
            )
        },
    )
}

/// An ICMP echo request from the peer to us with `data_len` bytes of data (ping's default: 56).
pub fn echo_request_frame(data_len: usize) -> Vec<u8> {
    let data = pattern(data_len);
    let msg = icmp::Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 1,
        data: &data,
    };
    ip_frame(
        (MAC_PEER, IP_PEER),
        (MAC_US, IP_US),
        ipv4::Protocol::Icmp,
        msg.buffer_len(),
        |b| msg.emit(&mut icmp::Packet::new_unchecked(b), ChecksumMode::Software),
    )
}

/// The peer's broadcast ARP request for our address (it teaches the shard the peer's MAC).
pub fn arp_request_frame() -> Vec<u8> {
    let repr = arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: MAC_PEER,
        source_protocol_addr: IP_PEER,
        target_hardware_addr: EthernetAddress::ZERO,
        target_protocol_addr: IP_US,
    };
    let mut buf = vec![0u8; ETH + repr.buffer_len()];
    let eth = ethernet::Repr {
        src_addr: MAC_PEER,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: ethernet::EtherType::Arp,
    };
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    repr.emit(&mut arp::Packet::new_unchecked(&mut buf[ETH..]));
    buf
}

/// A [`Transmit`] that writes every frame into one reused buffer and counts them: the cost of
/// building frames without the cost of a driver.
#[derive(Debug)]
pub struct SinkTransmit {
    buf: Vec<u8>,
    /// Frames sent so far.
    pub frames: u64,
    /// Bytes sent so far.
    pub bytes: u64,
}

impl Default for SinkTransmit {
    fn default() -> Self {
        SinkTransmit {
            buf: vec![0u8; 9018],
            frames: 0,
            bytes: 0,
        }
    }
}

impl Transmit for SinkTransmit {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, write: F) -> bool {
        let Some(buf) = self.buf.get_mut(..len) else {
            return false;
        };
        write(buf);
        self.frames += 1;
        self.bytes += len as u64;
        true
    }
}

/// A shard for 198.18.0.1/24 (MTU 1500, no gratuitous ARP) that has learned the peer's MAC from
/// its ARP request (the reply is already sent), at time 1 ms.
pub fn shard() -> Shard {
    let iface = InterfaceConfig {
        mac: MAC_US,
        cidr: Ipv4Cidr::new(IP_US, 24).expect("prefix 24 is valid"),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    };
    let mut config = ShardConfig::new(iface);
    config.announce = false;
    let mut shard = Shard::new(config);
    shard.handle_frame(NOW, &arp_request_frame(), RxOffload::default());
    shard.poll_transmit(NOW, &mut SinkTransmit::default());
    shard
}

/// The fixed time the benchmarks run at (ARP entries stay reachable for 30 s after it).
pub const NOW: Instant = Instant::from_millis(1);

/// The Internet checksum the straightforward way, as the C code of RFC 1071 4.1 does it:
/// big-endian 16-bit words added into a 32-bit sum, folded once at the end, complemented.
/// (Exact for up to 65537 words: the bound of an IPv4 datagram.)
pub fn reference_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardnet::wire::checksum;

    #[test]
    fn reference_checksum_agrees_with_shardnet() {
        for len in [0, 1, 2, 3, 63, 64, 575, 1500, 9000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(
                reference_checksum(&data),
                checksum::checksum(&data),
                "len {len}"
            );
        }
        // RFC 1071 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            reference_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn tcp_frame_is_a_timestamped_data_segment() {
        let frame = tcp_frame(1448);
        assert_eq!(frame.len(), 1514, "a full-size Ethernet frame");
        let eth = ethernet::Frame::new_checked(&frame[..]).expect("Ethernet");
        let ip = ipv4::Packet::new_checked(eth.payload()).expect("IPv4");
        let seg = tcp::Segment::new_checked(ip.payload()).expect("TCP");
        let r = tcp::Repr::parse(&seg, IP_PEER, IP_US, ChecksumMode::Software).expect("TCP repr");
        assert_eq!(seg.header_len(), 32);
        assert_eq!(r.payload, &pattern(1448)[..]);
        assert!(r.timestamp.is_some() && r.ack_number.is_some());
    }

    #[test]
    fn bench_frames_are_delivered_and_answered() {
        let mut s = shard();
        assert_eq!(s.arp_cache().peek(IP_PEER), Some(MAC_PEER));
        let sock = s.udp().open().expect("socket");
        s.udp_bind(sock, std::net::SocketAddrV4::new(IP_US, OUR_PORT))
            .expect("bind");
        s.handle_frame(NOW, &udp_frame(64), RxOffload::default());
        let len = s.udp().recv_with(sock, |d, _| d.len()).expect("datagram");
        assert_eq!(len, 64);
        s.handle_frame(NOW, &echo_request_frame(56), RxOffload::default());
        let mut tx = SinkTransmit::default();
        assert_eq!(s.poll_transmit(NOW, &mut tx), 1);
        assert_eq!(tx.bytes, echo_request_frame(56).len() as u64);
        assert_eq!(s.stats().icmp.out_echo_reps, 1);
    }
}
