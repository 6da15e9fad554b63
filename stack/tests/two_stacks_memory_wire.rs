//! Two shardnet stacks on the memory wire: ARP resolution, ping, and UDP datagrams whose
//! boundaries survive seeded reordering and duplication, with every loss accounted for.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::time::Duration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::sim::Simulation;
use shardnet_memory::{Impairments, MemoryPort, Wire, WireConfig};
use std::collections::HashSet;
use std::net::SocketAddrV4;

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
const MAC_B: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const A: usize = 0;
const B: usize = 1;

fn shard(mac: EthernetAddress, ip: Ipv4Addr) -> Shard {
    Shard::new(ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    }))
}

fn two_stacks(seed: u64) -> (Simulation<MemoryPort>, shardnet_memory::PortId) {
    let wire = Wire::new(WireConfig {
        seed,
        pool_size: 1024,
        ..WireConfig::default()
    });
    let pa = wire.add_port(MAC_A, 1);
    let pb = wire.add_port(MAC_B, 1);
    let (port_a, port_b) = (wire.port(pa, 0).unwrap(), wire.port(pb, 0).unwrap());
    let mut sim = Simulation::new(wire);
    sim.add(shard(MAC_A, IP_A), port_a);
    sim.add(shard(MAC_B, IP_B), port_b);
    (sim, pb)
}

fn ping_once(sim: &mut Simulation<MemoryPort>, seq: u16, data: &[u8]) -> Vec<u8> {
    let now = sim.now();
    sim.nodes[A].shard.ping(now, IP_B, 0x5e, seq, data).unwrap();
    let mut reply = None;
    let deadline = now + Duration::from_secs(5);
    let done = sim
        .run_until(deadline, |s| {
            let mut buf = [0u8; 1500];
            if let Some(r) = s.nodes[A].shard.recv_echo_reply(&mut buf) {
                assert_eq!((r.from, r.ident, r.seq_no), (IP_B, 0x5e, seq));
                reply = Some(buf[..r.len].to_vec());
            }
            reply.is_some()
        })
        .unwrap();
    assert!(done, "no echo reply by {deadline}");
    reply.unwrap()
}

#[test]
fn stacks_resolve_each_other_by_arp_and_answer_ping() {
    let (mut sim, _) = two_stacks(1);
    let data: Vec<u8> = (0..56u8).collect();
    assert_eq!(ping_once(&mut sim, 1, &data), data);
    // A learned B from B's reply; B learned A from A's request, which was addressed to B.
    assert_eq!(sim.nodes[A].shard.arp_cache().peek(IP_B), Some(MAC_B));
    assert_eq!(sim.nodes[B].shard.arp_cache().peek(IP_A), Some(MAC_A));
    let (a, b) = (sim.nodes[A].shard.stats(), sim.nodes[B].shard.stats());
    assert_eq!(
        (a.arp.tx_requests, b.arp.tx_replies, b.arp.tx_requests),
        (1, 1, 0)
    );
    assert_eq!(
        (
            a.icmp.out_echos,
            b.icmp.in_echos,
            b.icmp.out_echo_reps,
            a.icmp.in_echo_reps
        ),
        (1, 1, 1, 1)
    );
    // Both announced themselves with a gratuitous ARP, and neither added an entry for it.
    assert_eq!((a.arp.tx_gratuitous, b.arp.tx_gratuitous), (1, 1));
    // A second ping needs no ARP.
    assert_eq!(ping_once(&mut sim, 2, b"again"), b"again");
    assert_eq!(sim.nodes[A].shard.stats().arp.tx_requests, 1);
    while sim.step().unwrap() {}
    assert!(sim.wire.all_pools_full(), "no frame leaked");
}

/// A datagram that proves its own integrity: sequence number, length, and a pattern derived
/// from both, so a merged, split or corrupted datagram cannot pass for a good one.
fn datagram(seq: u32, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len.max(8)];
    d[..4].copy_from_slice(&seq.to_be_bytes());
    d[4..8].copy_from_slice(&(len as u32).to_be_bytes());
    for (i, b) in d.iter_mut().enumerate().skip(8) {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    d.truncate(len.max(8));
    d
}

fn check_datagram(d: &[u8]) -> u32 {
    assert!(d.len() >= 8, "datagram of {} bytes", d.len());
    let seq = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    let len = u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as usize;
    assert_eq!(
        d,
        &datagram(seq, len)[..],
        "datagram {seq} was merged, split or altered"
    );
    seq
}

struct Outcome {
    unique: usize,
    duplicates: usize,
    reordered: usize,
}

/// A sends `count` datagrams of pseudo-random sizes to B under `impairments`; B checks each.
fn exchange(seed: u64, count: u32, impairments: Impairments) -> Outcome {
    let (mut sim, pb) = two_stacks(seed);
    assert_eq!(ping_once(&mut sim, 1, b"warm up"), b"warm up");
    sim.wire.set_impairments(impairments);
    let before = sim.wire.port_counters(pb).unwrap();

    let rx = sim.nodes[B].shard.udp().open().unwrap();
    sim.nodes[B]
        .shard
        .udp_bind(rx, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9000))
        .unwrap();
    let tx = sim.nodes[A].shard.udp().open().unwrap();
    let dst = SocketAddrV4::new(IP_B, 9000);

    let mut next = 0u32;
    let mut seen = HashSet::new();
    let (mut received, mut reordered, mut highest) = (0usize, 0usize, None::<u32>);
    let deadline = sim.now() + Duration::from_secs(60);
    sim.run_until(deadline, |s| {
        // At most 32 per round, so that B's 256-datagram receive queue never overflows (that
        // would be a counted drop too, but not the one this test accounts for).
        let round_end = (next + 32).min(count);
        while next < round_end {
            let len = (next as usize * 7919 + seed as usize * 104_729) % 1473;
            match s.nodes[A]
                .shard
                .udp_send_to(tx, Some(dst), &datagram(next, len))
            {
                Ok(()) => next += 1,
                Err(e) => {
                    assert_eq!(e.errno(), "EAGAIN");
                    break;
                }
            }
        }
        let mut buf = [0u8; 2048];
        while let Ok(r) = s.nodes[B].shard.udp().recv_from(rx, &mut buf) {
            assert!(!r.truncated());
            assert_eq!(r.from.ip(), &IP_A);
            let seq = check_datagram(&buf[..r.len]);
            received += 1;
            if !seen.insert(seq) {
                continue;
            }
            if highest.is_some_and(|h| seq < h) {
                reordered += 1;
            }
            highest = highest.max(Some(seq));
        }
        next == count && s.is_idle()
    })
    .unwrap();

    let wire = sim.wire.port_counters(pb).unwrap();
    let (lost, duplicated) = (wire.lost - before.lost, wire.duplicated - before.duplicated);
    let (a, b) = (sim.nodes[A].shard.stats(), sim.nodes[B].shard.stats());
    // Every datagram sent is accounted for: delivered once, or lost on the wire (counted there).
    assert_eq!(a.udp.out_datagrams, u64::from(count));
    assert_eq!(
        seen.len() as u64 + lost,
        u64::from(count),
        "seed {seed}: losses hidden somewhere"
    );
    assert_eq!(
        (received - seen.len()) as u64,
        duplicated,
        "seed {seed}: duplicates miscounted"
    );
    assert_eq!(b.udp.in_datagrams, received as u64);
    assert_eq!(
        (b.udp.rcvbuf_errors, b.udp.in_errors, b.ip.in_hdr_errors),
        (0, 0, 0)
    );
    assert!(sim.wire.all_pools_full(), "seed {seed}: frames leaked");
    Outcome {
        unique: seen.len(),
        duplicates: received - seen.len(),
        reordered,
    }
}

#[test]
fn udp_keeps_datagram_boundaries_under_reordering_and_duplication() {
    let impairments = Impairments {
        reorder: 0.25,
        reorder_delay: Duration::from_micros(300),
        duplicate: 0.1,
        delay: Duration::from_micros(50),
        jitter: Duration::from_micros(40),
        ..Impairments::NONE
    };
    let (mut dups, mut reorders) = (0, 0);
    for seed in 0..16 {
        let o = exchange(seed, 400, impairments.clone());
        assert_eq!(
            o.unique, 400,
            "seed {seed}: nothing may be lost without loss configured"
        );
        dups += o.duplicates;
        reorders += o.reordered;
    }
    assert!(
        dups > 100 && reorders > 100,
        "the impairments did happen: {dups} duplicates, {reorders} reorders"
    );
}

#[test]
fn udp_losses_are_counted_not_hidden() {
    let impairments = Impairments {
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.1,
        reorder_delay: Duration::from_micros(200),
        ..Impairments::NONE
    };
    let mut lost = 0;
    for seed in 100..108 {
        let o = exchange(seed, 400, impairments.clone());
        lost += 400 - o.unique;
    }
    assert!(
        lost > 60,
        "about 5% of 3200 datagrams should be lost, {lost} were"
    );
}

#[test]
fn corrupted_frames_never_deliver_a_wrong_datagram() {
    let (mut sim, _) = two_stacks(7);
    assert_eq!(ping_once(&mut sim, 1, b"warm up"), b"warm up");
    sim.wire.set_impairments(Impairments {
        corrupt: 0.2,
        ..Impairments::NONE
    });
    let rx = sim.nodes[B].shard.udp().open().unwrap();
    sim.nodes[B]
        .shard
        .udp_bind(rx, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9000))
        .unwrap();
    let tx = sim.nodes[A].shard.udp().open().unwrap();
    let mut good = 0;
    for seq in 0..500u32 {
        let d = datagram(seq, 64 + (seq as usize * 13) % 1400);
        sim.nodes[A]
            .shard
            .udp_send_to(tx, Some(SocketAddrV4::new(IP_B, 9000)), &d)
            .unwrap();
        while sim.step().unwrap() {}
        let mut buf = [0u8; 2048];
        while let Ok(r) = sim.nodes[B].shard.udp().recv_from(rx, &mut buf) {
            // A flipped bit in a MAC source address goes unnoticed, as on any Ethernet; the
            // datagram itself must still be exact.
            check_datagram(&buf[..r.len]);
            good += 1;
        }
    }
    let b = sim.nodes[B].shard.stats();
    let dropped = b.udp.in_csum_errors
        + b.ip_drops.total()
        + b.ethernet.rx_not_for_us
        + b.ethernet.rx_unknown_ethertype
        + b.ethernet.rx_truncated
        + b.ip.in_addr_errors
        + b.udp.no_ports
        + b.udp_drops.total()
        + b.ip.frag_dropped;
    assert!(dropped > 50, "corruption was caught and counted: {dropped}");
    assert!(good > 350 && good < 500, "{good} good datagrams");
}
