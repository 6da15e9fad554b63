//! Which shard owns a received frame: the receive queue the NIC's RSS *should* have put it on.
//!
//! Design rules 4 and 5: a flow belongs to the shard whose queue the Toeplitz hash of its
//! 4-tuple selects through the device's indirection table. A frame that arrives on another
//! queue (the NIC's RSS is not what the driver reported, or a NIC without RSS information, or a
//! test that forces a mismatch) must be handed to its owner, or the owner's connection never
//! sees it. This module only *computes* the owner, sans-IO; the runtime moves the bytes.
//!
//! Classification follows what an RSS NIC hashes (Microsoft's RSS specification, the
//! `NDIS_HASH_TCP_IPV4` / `NDIS_HASH_IPV4` types, with UDP hashed like TCP as the memory wire
//! and most drivers configure it):
//! - IPv4 TCP or UDP, not a fragment, ports present: the 12-byte 4-tuple input;
//! - other IPv4 (ICMP, fragments, unknown protocols): the 8-byte 2-tuple input;
//! - ARP: [`Owner::All`], every shard needs the ARP cache entry while a NIC delivers ARP to one
//!   queue only;
//! - anything else (unparseable, other EtherTypes): [`Owner::Local`], the receiving shard counts
//!   and drops it itself.
//!
//! Nothing here panics, whatever the bytes.

use super::rss::{ToeplitzTable, ipv4_input, ipv4_tcp_udp_input, queue_for_hash, toeplitz_hash};
use crate::port::RssConfig;
use crate::wire::{ethernet, ipv4};

/// Who should process a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The shard that received it (not hashable, or not a flow).
    Local,
    /// The shard serving this receive queue.
    Queue(u16),
    /// Every shard (ARP: each shard keeps its own ARP cache).
    All,
}

/// What a frame's owner is computed from: the RSS input, before hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashInput {
    FourTuple([u8; 12]),
    TwoTuple([u8; 8]),
}

/// Classifies `frame`: `Err(owner)` for frames whose owner needs no hash.
fn classify(frame: &[u8]) -> Result<HashInput, Owner> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| Owner::Local)?;
    match eth.ethertype() {
        ethernet::EtherType::Arp => Err(Owner::All),
        ethernet::EtherType::Ipv4 => {
            let packet = ipv4::Packet::new_checked(eth.payload()).map_err(|_| Owner::Local)?;
            let (src, dst) = (packet.src_addr(), packet.dst_addr());
            let ports = match packet.protocol() {
                ipv4::Protocol::Tcp | ipv4::Protocol::Udp if !packet.is_fragment() => {
                    // Source and destination port lead both the TCP and the UDP header.
                    match packet.payload().get(0..4) {
                        Some(&[a, b, c, d]) => {
                            Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            Ok(match ports {
                Some((sp, dp)) => HashInput::FourTuple(ipv4_tcp_udp_input(src, dst, sp, dp)),
                None => HashInput::TwoTuple(ipv4_input(src, dst)),
            })
        }
        _ => Err(Owner::Local),
    }
}

/// The owner of `frame` under `rss`, hashing bit by bit (no table). For one-off use and as the
/// reference of [`FlowOwnership::owner`]; a shard's receive path uses the latter.
pub fn frame_owner(rss: &RssConfig, frame: &[u8]) -> Owner {
    match classify(frame) {
        Err(owner) => owner,
        Ok(HashInput::FourTuple(input)) => {
            Owner::Queue(queue_for_hash(rss, toeplitz_hash(&rss.key, &input)))
        }
        Ok(HashInput::TwoTuple(input)) => {
            Owner::Queue(queue_for_hash(rss, toeplitz_hash(&rss.key, &input)))
        }
    }
}

/// [`frame_owner`] with the Toeplitz table precomputed: one lookup per input byte.
///
/// Building it allocates the table (40 KiB for a 40-byte key); [`FlowOwnership::owner`] does not
/// allocate.
#[derive(Clone, Debug)]
pub struct FlowOwnership {
    rss: RssConfig,
    table: ToeplitzTable,
}

impl FlowOwnership {
    /// Ownership under the device's (or the runtime's believed) RSS configuration.
    pub fn new(rss: &RssConfig) -> Self {
        FlowOwnership {
            table: ToeplitzTable::new(&rss.key),
            rss: rss.clone(),
        }
    }

    /// The RSS configuration this computes with.
    pub fn rss(&self) -> &RssConfig {
        &self.rss
    }

    /// The owner of `frame`.
    pub fn owner(&self, frame: &[u8]) -> Owner {
        let hash = match classify(frame) {
            Err(owner) => return owner,
            Ok(HashInput::FourTuple(input)) => self.table.hash(&input),
            Ok(HashInput::TwoTuple(input)) => self.table.hash(&input),
        };
        Owner::Queue(queue_for_hash(&self.rss, hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::rss::round_robin_indirection;
    use crate::shard::steering::PortSteering;
    use crate::wire::{EthernetAddress, Ipv4Addr, arp};
    use core::net::SocketAddrV4;
    use proptest::prelude::*;

    /// Microsoft's RSS verification key.
    const KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn rss(queues: u16) -> RssConfig {
        RssConfig {
            key: KEY.to_vec(),
            indirection: round_robin_indirection(queues, 128),
        }
    }

    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    /// An Ethernet + IPv4 frame of protocol `proto` carrying `l4` (checksums left zero: the
    /// owner does not look at them).
    fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag_off: u16, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + l4.len()];
        f[0..6].copy_from_slice(&MAC_B.0);
        f[6..12].copy_from_slice(&MAC_A.0);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&frag_off.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        f[34..].copy_from_slice(l4);
        f
    }

    fn ports(sp: u16, dp: u16) -> [u8; 20] {
        let mut l4 = [0u8; 20];
        l4[0..2].copy_from_slice(&sp.to_be_bytes());
        l4[2..4].copy_from_slice(&dp.to_be_bytes());
        l4
    }

    const SRC: Ipv4Addr = Ipv4Addr::new(66, 9, 149, 187);
    const DST: Ipv4Addr = Ipv4Addr::new(161, 142, 100, 80);

    #[test]
    fn tcp_uses_the_four_tuple_of_the_received_packet() {
        // Microsoft's verification vector: 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to
        // 0x51ccc178 with TCP, 0x323e8fc2 for the addresses only.
        let rss = RssConfig {
            key: KEY.to_vec(),
            indirection: (0..128).collect(),
        };
        let f = ipv4_frame(SRC, DST, 6, 0, &ports(2794, 1766));
        assert_eq!(
            frame_owner(&rss, &f),
            Owner::Queue((0x51cc_c178u32 % 128) as u16)
        );
        let udp = ipv4_frame(SRC, DST, 17, 0, &ports(2794, 1766));
        assert_eq!(
            frame_owner(&rss, &udp),
            Owner::Queue((0x51cc_c178u32 % 128) as u16)
        );
        let icmp = ipv4_frame(SRC, DST, 1, 0, &[8, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            frame_owner(&rss, &icmp),
            Owner::Queue((0x323e_8fc2u32 % 128) as u16)
        );
    }

    #[test]
    fn fragments_and_portless_segments_use_the_two_tuple() {
        let rss = RssConfig {
            key: KEY.to_vec(),
            indirection: (0..128).collect(),
        };
        let two = Owner::Queue((0x323e_8fc2u32 % 128) as u16);
        // More-fragments set: the ports may be there, but a NIC cannot rely on it.
        let frag = ipv4_frame(SRC, DST, 6, 0x2000, &ports(2794, 1766));
        assert_eq!(frame_owner(&rss, &frag), two);
        let later = ipv4_frame(SRC, DST, 17, 10, &ports(2794, 1766));
        assert_eq!(frame_owner(&rss, &later), two);
        let short = ipv4_frame(SRC, DST, 6, 0, &[0, 1]);
        assert_eq!(frame_owner(&rss, &short), two);
    }

    #[test]
    fn arp_goes_to_every_shard_and_junk_stays_local() {
        let repr = arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: MAC_A,
            source_protocol_addr: SRC,
            target_hardware_addr: MAC_B,
            target_protocol_addr: DST,
        };
        let mut f = vec![0u8; 14 + repr.buffer_len()];
        f[0..6].copy_from_slice(&MAC_B.0);
        f[6..12].copy_from_slice(&MAC_A.0);
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        repr.emit(&mut arp::Packet::new_unchecked(&mut f[14..]));
        let r = rss(4);
        assert_eq!(frame_owner(&r, &f), Owner::All);
        assert_eq!(frame_owner(&r, &[]), Owner::Local);
        assert_eq!(frame_owner(&r, &f[..10]), Owner::Local);
        let mut ipv6 = f.clone();
        ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(frame_owner(&r, &ipv6), Owner::Local);
        // An IPv4 header that does not parse (version 6, or truncated) is the receiver's to drop.
        let mut bad = ipv4_frame(SRC, DST, 6, 0, &ports(1, 2));
        bad[14] = 0x65;
        assert_eq!(frame_owner(&r, &bad), Owner::Local);
        let whole = ipv4_frame(SRC, DST, 6, 0, &ports(1, 2));
        assert_eq!(frame_owner(&r, &whole[..30]), Owner::Local);
    }

    #[test]
    fn an_empty_indirection_table_means_queue_zero() {
        let r = RssConfig {
            key: KEY.to_vec(),
            indirection: Vec::new(),
        };
        let f = ipv4_frame(SRC, DST, 6, 0, &ports(1, 2));
        assert_eq!(frame_owner(&r, &f), Owner::Queue(0));
        assert_eq!(FlowOwnership::new(&r).owner(&f), Owner::Queue(0));
    }

    #[test]
    fn replies_to_steered_connects_are_owned_by_the_connecting_shard() {
        let r = rss(4);
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let remote = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7);
        let owner = FlowOwnership::new(&r);
        for queue in 0..4u16 {
            let mut steering = PortSteering::new(Some(&r), queue);
            for _ in 0..50 {
                let port = steering.pick(local, remote, |_| true).expect("a port");
                // The reply: remote -> local:port.
                let reply = ipv4_frame(*remote.ip(), local, 6, 0, &ports(7, port));
                assert_eq!(owner.owner(&reply), Owner::Queue(queue));
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_the_table_agrees(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let r = rss(3);
            let owner = frame_owner(&r, &bytes);
            prop_assert_eq!(FlowOwnership::new(&r).owner(&bytes), owner);
            if let Owner::Queue(q) = owner {
                prop_assert!(q < 3);
            }
        }

        #[test]
        fn tcp_frames_agree_with_the_hash(src in any::<u32>(), dst in any::<u32>(),
                                          sp in any::<u16>(), dp in any::<u16>(), queues in 1u16..9) {
            let r = rss(queues);
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let f = ipv4_frame(src, dst, 6, 0, &ports(sp, dp));
            let want = queue_for_hash(&r, toeplitz_hash(&KEY, &ipv4_tcp_udp_input(src, dst, sp, dp)));
            prop_assert_eq!(FlowOwnership::new(&r).owner(&f), Owner::Queue(want));
        }
    }
}
