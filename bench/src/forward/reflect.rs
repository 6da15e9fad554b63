//! The raw reflector's frame rewrite: an Ethernet + IPv4 + UDP datagram turned into its echo
//! in place, with no stack.

use shardnet::wire::Ipv4Addr;

/// Swaps source and destination of an Ethernet + IPv4 + UDP frame addressed to `me`, in
/// place (MAC addresses, IPv4 addresses, UDP ports). The IPv4 and UDP checksums stay valid:
/// both are sums over the swapped fields. Returns false, touching nothing, for any other frame.
pub fn reflect(frame: &mut [u8], me: Ipv4Addr) -> bool {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return false;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if ihl < 20 || frame.len() < 14 + ihl + 8 || frame[30..34] != me.octets() {
        return false;
    }
    for i in 0..6 {
        frame.swap(i, 6 + i);
    }
    for i in 0..4 {
        frame.swap(26 + i, 30 + i);
    }
    let udp = 14 + ihl;
    frame.swap(udp, udp + 2);
    frame.swap(udp + 1, udp + 3);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IP_PEER, IP_US, MAC_PEER, MAC_US, OUR_PORT, PEER_PORT, pattern, udp_frame};
    use shardnet::wire::{ChecksumMode, ethernet, ipv4, udp};

    #[test]
    fn reflected_datagram_goes_back_with_valid_checksums() {
        let mut frame = udp_frame(64);
        assert!(reflect(&mut frame, IP_US));
        let eth = ethernet::Frame::new_checked(&frame[..]).expect("Ethernet");
        assert_eq!((eth.src_addr(), eth.dst_addr()), (MAC_US, MAC_PEER));
        let ip = ipv4::Packet::new_checked(eth.payload()).expect("IPv4");
        let ip_repr = ipv4::Repr::parse(&ip, ChecksumMode::Software).expect("IPv4 checksum");
        assert_eq!((ip_repr.src_addr, ip_repr.dst_addr), (IP_US, IP_PEER));
        let d = udp::Packet::new_checked(ip.payload()).expect("UDP");
        let r = udp::Repr::parse(&d, IP_US, IP_PEER, ChecksumMode::Software).expect("UDP checksum");
        assert_eq!((r.src_port, r.dst_port), (OUR_PORT, PEER_PORT));
        assert_eq!(d.payload(), &pattern(64)[..]);
    }

    #[test]
    fn datagram_for_another_address_is_left_alone() {
        let mut frame = udp_frame(64);
        assert!(!reflect(&mut frame, IP_PEER));
        assert_eq!(frame, udp_frame(64));
    }

    #[test]
    fn non_udp_and_short_frames_are_left_alone() {
        let mut tcp = crate::tcp_frame(10);
        assert!(!reflect(&mut tcp, IP_US));
        assert_eq!(tcp, crate::tcp_frame(10));
        let mut arp = crate::arp_request_frame();
        assert!(!reflect(&mut arp, IP_US));
        let mut short = udp_frame(0)[..41].to_vec();
        assert!(!reflect(&mut short, IP_US));
    }
}
