//! Which bytes of a frame RSS hashes, and so which queue the frame is received on.
//!
//! The classification reads only what it needs (EtherType, IPv4 version, header length,
//! protocol, fragment fields, addresses and ports) and checks every length before reading, so
//! any byte string is a valid input: whatever cannot be read as IPv4 simply has no hash input
//! and goes to queue 0.

use shardnet::port::RssConfig;
use shardnet::shard::rss::{ToeplitzTable, queue_for_hash};

/// Length of an Ethernet II header without VLAN tag.
pub const ETHERNET_HEADER_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPV4_MIN_HEADER_LEN: usize = 20;
const PROTOCOL_TCP: u8 = 6;
const PROTOCOL_UDP: u8 = 17;
/// The More Fragments flag and the 13-bit fragment offset.
const FRAGMENT_MASK: u16 = 0x3fff;

/// The part of a frame that RSS hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashInput {
    /// Nothing: not IPv4 (ARP, IPv6, any other EtherType), or too short or malformed to read
    /// addresses from. Such frames go to queue 0.
    None,
    /// IPv4 source and destination addresses: IPv4 other than TCP and UDP, and fragments
    /// (which may not carry the ports).
    Ipv4([u8; 8]),
    /// IPv4 addresses then TCP or UDP source and destination ports.
    Ipv4TcpUdp([u8; 12]),
}

impl HashInput {
    /// The bytes to hash (empty for [`HashInput::None`]), in the order of
    /// [`shardnet::shard::rss::ipv4_tcp_udp_input`] and [`shardnet::shard::rss::ipv4_input`].
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HashInput::None => &[],
            HashInput::Ipv4(bytes) => bytes,
            HashInput::Ipv4TcpUdp(bytes) => bytes,
        }
    }
}

/// Reads the RSS hash input of an Ethernet frame: the IPv4 4-tuple of an unfragmented TCP or UDP
/// packet whose ports are present, the IPv4 2-tuple of any other readable IPv4 packet, and
/// nothing otherwise. VLAN tags are not looked through (the stack does not use them).
///
/// The IP header must be complete as its IHL says; the ports are read from the four bytes after
/// it if the frame has them (the IP total length is not consulted, as NIC parsers do not).
pub fn hash_input(frame: &[u8]) -> HashInput {
    let ethertype = match frame.get(12..ETHERNET_HEADER_LEN) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => return HashInput::None,
    };
    if ethertype != ETHERTYPE_IPV4 {
        return HashInput::None;
    }
    let ip = frame.get(ETHERNET_HEADER_LEN..).unwrap_or(&[]);
    let Some(&version_ihl) = ip.first() else {
        return HashInput::None;
    };
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN || ip.len() < header_len {
        return HashInput::None;
    }
    let mut input = [0u8; 12];
    match ip.get(12..20) {
        Some(addresses) => input[..8].copy_from_slice(addresses),
        None => return HashInput::None,
    }
    let protocol = ip.get(9).copied().unwrap_or(0);
    let fragment = match ip.get(6..8) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]) & FRAGMENT_MASK,
        _ => 0,
    };
    let ports = ip.get(header_len..header_len + 4);
    match ports {
        Some(ports) if fragment == 0 && (protocol == PROTOCOL_TCP || protocol == PROTOCOL_UDP) => {
            input[8..].copy_from_slice(ports);
            HashInput::Ipv4TcpUdp(input)
        }
        _ => {
            let mut two = [0u8; 8];
            two.copy_from_slice(&input[..8]);
            HashInput::Ipv4(two)
        }
    }
}

/// The queue a device with RSS configuration `rss` (and its precomputed `table`) puts a frame
/// with hash input `input` on: queue 0 without RSS or without a hash input, the indirection
/// table's entry for the Toeplitz hash otherwise.
pub(crate) fn queue_for_input(
    rss: Option<&RssConfig>,
    table: Option<&ToeplitzTable>,
    input: &HashInput,
) -> u16 {
    match (rss, table, input) {
        (_, _, HashInput::None) => 0,
        (Some(rss), Some(table), input) => queue_for_hash(rss, table.hash(input.as_bytes())),
        _ => 0,
    }
}

/// The queue a device with RSS configuration `rss` receives `frame` on (queue 0 if `rss` is
/// `None`, or if the frame is not IPv4: ARP in particular always arrives on queue 0).
pub fn rx_queue(rss: Option<&RssConfig>, frame: &[u8]) -> u16 {
    match (rss, hash_input(frame)) {
        (None, _) | (_, HashInput::None) => 0,
        (Some(rss), input) => queue_for_hash(
            rss,
            shardnet::shard::rss::toeplitz_hash(&rss.key, input.as_bytes()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shardnet::shard::rss::{
        DEFAULT_KEY, ipv4_input, ipv4_tcp_udp_input, round_robin_indirection,
    };
    use shardnet::wire::Ipv4Addr;

    fn ipv4_frame(protocol: u8, flags_fragment: u16, ihl: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        f[13] = 0x00;
        let mut ip = vec![0u8; usize::from(ihl) * 4];
        ip[0] = 0x40 | ihl;
        ip[6..8].copy_from_slice(&flags_fragment.to_be_bytes());
        ip[9] = protocol;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(payload);
        f
    }

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn tcp_and_udp_over_ipv4_hash_the_four_tuple() {
        for protocol in [PROTOCOL_TCP, PROTOCOL_UDP] {
            let frame = ipv4_frame(protocol, 0, 5, &[0x12, 0x34, 0x00, 0x50, 0, 0]);
            assert_eq!(
                hash_input(&frame),
                HashInput::Ipv4TcpUdp(ipv4_tcp_udp_input(SRC, DST, 0x1234, 80))
            );
        }
    }

    #[test]
    fn ip_options_are_skipped_to_find_the_ports() {
        let frame = ipv4_frame(PROTOCOL_TCP, 0, 6, &[0x12, 0x34, 0x00, 0x50]);
        assert_eq!(
            hash_input(&frame),
            HashInput::Ipv4TcpUdp(ipv4_tcp_udp_input(SRC, DST, 0x1234, 80))
        );
    }

    #[test]
    fn fragments_other_protocols_and_missing_ports_hash_the_two_tuple() {
        let two = HashInput::Ipv4(ipv4_input(SRC, DST));
        let ports = [0x12, 0x34, 0x00, 0x50];
        // More Fragments set; then a non-zero offset; ICMP; ports cut off.
        assert_eq!(
            hash_input(&ipv4_frame(PROTOCOL_TCP, 0x2000, 5, &ports)),
            two
        );
        assert_eq!(
            hash_input(&ipv4_frame(PROTOCOL_UDP, 0x0001, 5, &ports)),
            two
        );
        assert_eq!(hash_input(&ipv4_frame(1, 0, 5, &ports)), two);
        assert_eq!(
            hash_input(&ipv4_frame(PROTOCOL_TCP, 0, 5, &ports[..3])),
            two
        );
        // The Don't Fragment flag alone does not make a fragment.
        assert!(matches!(
            hash_input(&ipv4_frame(PROTOCOL_TCP, 0x4000, 5, &ports)),
            HashInput::Ipv4TcpUdp(_)
        ));
    }

    #[test]
    fn non_ipv4_and_malformed_headers_have_no_hash_input() {
        let mut arp = ipv4_frame(PROTOCOL_TCP, 0, 5, &[0; 4]);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(hash_input(&arp), HashInput::None);
        let mut v6 = ipv4_frame(PROTOCOL_TCP, 0, 5, &[0; 4]);
        v6[14] = 0x65;
        assert_eq!(hash_input(&v6), HashInput::None);
        let mut short_ihl = ipv4_frame(PROTOCOL_TCP, 0, 5, &[0; 4]);
        short_ihl[14] = 0x44;
        assert_eq!(hash_input(&short_ihl), HashInput::None);
        let truncated = ipv4_frame(PROTOCOL_TCP, 0, 5, &[]);
        assert_eq!(hash_input(&truncated[..30]), HashInput::None);
        assert_eq!(hash_input(&[]), HashInput::None);
        assert_eq!(hash_input(&truncated[..13]), HashInput::None);
    }

    #[test]
    fn rx_queue_follows_the_hash_and_the_table() {
        let rss = RssConfig {
            key: DEFAULT_KEY.to_vec(),
            indirection: round_robin_indirection(4, 128),
        };
        let frame = ipv4_frame(PROTOCOL_TCP, 0, 5, &[0x12, 0x34, 0x00, 0x50]);
        let hash = shardnet::shard::rss::toeplitz_hash(
            &DEFAULT_KEY,
            &ipv4_tcp_udp_input(SRC, DST, 0x1234, 80),
        );
        assert_eq!(rx_queue(Some(&rss), &frame), (hash % 128 % 4) as u16);
        assert_eq!(rx_queue(None, &frame), 0);
        let table = ToeplitzTable::new(&rss.key);
        assert_eq!(
            queue_for_input(Some(&rss), Some(&table), &hash_input(&frame)),
            rx_queue(Some(&rss), &frame)
        );
    }

    proptest! {
        #[test]
        fn any_bytes_classify_without_panicking(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
            let rss = RssConfig { key: DEFAULT_KEY.to_vec(), indirection: round_robin_indirection(3, 128) };
            prop_assert!(rx_queue(Some(&rss), &frame) < 3);
        }

        #[test]
        fn ipv4_looking_bytes_classify_without_panicking(
            ihl_byte: u8, protocol: u8, fragment: u16,
            rest in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut frame = vec![0u8; 14];
            frame[12] = 0x08;
            frame.push(ihl_byte);
            frame.extend_from_slice(&rest);
            if frame.len() > 23 {
                frame[14 + 9] = protocol;
                frame[14 + 6..14 + 8].copy_from_slice(&fragment.to_be_bytes());
            }
            let input = hash_input(&frame);
            prop_assert!(input.as_bytes().len() <= 12);
        }
    }
}
