//! Where frames go, which queue receives them, and what happens to the buffers.

mod common;

use common::*;
use shardnet::port::{Batch, Frame, PoolStats, Port, RssConfig};
use shardnet::shard::rss::{
    DEFAULT_KEY, SYMMETRIC_KEY, ipv4_input, ipv4_tcp_udp_input, queue_for_hash,
    round_robin_indirection, toeplitz_hash,
};
use shardnet::time::Instant;
use shardnet::wire::EthernetAddress;
use shardnet_memory::{MemoryPort, Wire, WireConfig, WireError};

fn wire() -> Wire {
    Wire::new(WireConfig::default())
}

#[test]
fn frames_reach_only_the_port_whose_mac_matches_the_destination() {
    let wire = wire();
    let (a, b, c) = (
        wire.add_port(mac(1), 1),
        wire.add_port(mac(2), 1),
        wire.add_port(mac(3), 1),
    );
    let mut pa = wire.port(a, 0).expect("a");
    let mut pb = wire.port(b, 0).expect("b");
    let mut pc = wire.port(c, 0).expect("c");

    let frame = numbered(mac(2), mac(1), 7, 0);
    send(&mut pa, &frame);
    assert_eq!(drain(&mut pb), vec![frame.clone()]);
    assert!(drain(&mut pc).is_empty());
    assert!(drain(&mut pa).is_empty());

    let counters = wire.counters(a, 0).expect("counters");
    assert_eq!(
        (counters.tx_frames, counters.tx_bytes),
        (1, frame.len() as u64)
    );
    let counters = wire.counters(b, 0).expect("counters");
    assert_eq!(
        (counters.rx_frames, counters.rx_bytes),
        (1, frame.len() as u64)
    );
    assert_eq!(wire.counters(c, 0).expect("counters").rx_frames, 0);
}

#[test]
fn broadcast_and_multicast_reach_every_other_port_but_not_the_sender() {
    let wire = wire();
    let ids: Vec<_> = (1..=4).map(|n| wire.add_port(mac(n), 1)).collect();
    let mut ports: Vec<MemoryPort> = ids
        .iter()
        .map(|&id| wire.port(id, 0).expect("port"))
        .collect();

    let broadcast = numbered(EthernetAddress::BROADCAST, mac(1), 1, 0);
    send(&mut ports[0], &broadcast);
    assert!(drain(&mut ports[0]).is_empty());
    for port in &mut ports[1..] {
        assert_eq!(drain(port), vec![broadcast.clone()]);
    }

    let multicast = numbered(EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]), mac(3), 2, 0);
    send(&mut ports[2], &multicast);
    for (i, port) in ports.iter_mut().enumerate() {
        let expected = if i == 2 {
            vec![]
        } else {
            vec![multicast.clone()]
        };
        assert_eq!(drain(port), expected, "port {i}");
    }
    assert!(wire.all_pools_full());
}

#[test]
fn unicast_to_an_unknown_mac_is_counted_and_the_buffer_comes_back() {
    let wire = wire();
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let mut pa = wire.port(a, 0).expect("a");
    let mut pb = wire.port(b, 0).expect("b");
    send(&mut pa, &numbered(mac(9), mac(1), 1, 0));
    assert!(drain(&mut pb).is_empty());
    assert_eq!(wire.counters(a, 0).expect("c").tx_no_destination, 1);
    assert_eq!(wire.frames_in_flight(), 0);
    assert!(wire.all_pools_full());
}

/// Sends UDP frames with many source ports from `pa` to the multi-queue port `b`, and checks
/// that each lands on `table[toeplitz(key, 4-tuple) % len]`.
fn check_rss_prediction(pa: &mut MemoryPort, b_ports: &mut [MemoryPort], rss: &RssConfig) {
    let mut per_queue = vec![0usize; b_ports.len()];
    for (i, src_port) in (1024u16..1424).enumerate() {
        let protocol = if i % 2 == 0 { 17 } else { 6 };
        let frame = ipv4_frame(
            mac(2),
            mac(1),
            protocol,
            ip(1),
            ip(2),
            src_port,
            80,
            &[i as u8],
        );
        send(pa, &frame);
        let hash = toeplitz_hash(&rss.key, &ipv4_tcp_udp_input(ip(1), ip(2), src_port, 80));
        let expected = usize::from(queue_for_hash(rss, hash));
        for (q, port) in b_ports.iter_mut().enumerate() {
            let got = drain(port);
            if q == expected {
                assert_eq!(got, vec![frame.clone()], "source port {src_port}");
            } else {
                assert!(got.is_empty(), "source port {src_port} also on queue {q}");
            }
        }
        per_queue[expected] += 1;
    }
    // 400 flows over a handful of queues: every queue gets a share.
    assert!(per_queue.iter().all(|&n| n > 40), "{per_queue:?}");
}

#[test]
fn rss_spreads_four_tuples_exactly_as_toeplitz_and_the_indirection_table_predict() {
    let wire = wire();
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 4);
    let mut pa = wire.port(a, 0).expect("a");
    let mut queues: Vec<_> = (0..4).map(|q| wire.port(b, q).expect("q")).collect();
    let rss = queues[0]
        .capabilities()
        .rss
        .clone()
        .expect("multi-queue port has RSS");
    assert_eq!(rss.key, DEFAULT_KEY.to_vec());
    assert_eq!(rss.indirection, round_robin_indirection(4, 128));
    check_rss_prediction(&mut pa, &mut queues, &rss);
}

#[test]
fn rss_uses_the_key_and_table_a_port_was_configured_with() {
    let wire = wire();
    let a = wire.add_port(mac(1), 1);
    let rss = RssConfig {
        key: SYMMETRIC_KEY.to_vec(),
        indirection: vec![2, 0, 1, 1, 0, 2, 2, 1, 0, 0, 1],
    };
    let b = wire.add_port_with_rss(mac(2), 3, rss.clone());
    let mut pa = wire.port(a, 0).expect("a");
    let mut queues: Vec<_> = (0..3).map(|q| wire.port(b, q).expect("q")).collect();
    assert_eq!(queues[1].capabilities().rss.as_ref(), Some(&rss));
    check_rss_prediction(&mut pa, &mut queues, &rss);
}

#[test]
fn other_ipv4_hashes_the_address_pair_and_arp_and_runts_go_to_queue_zero() {
    let wire = wire();
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 8);
    let mut pa = wire.port(a, 0).expect("a");
    let mut queues: Vec<_> = (0..8).map(|q| wire.port(b, q).expect("q")).collect();
    let rss = queues[0].capabilities().rss.clone().expect("rss");

    for n in 3..40u8 {
        let icmp = ipv4_frame(mac(2), mac(1), 1, ip(n), ip(2), 0, 0, b"ping");
        send(&mut pa, &icmp);
        let expected = queue_for_hash(&rss, toeplitz_hash(&rss.key, &ipv4_input(ip(n), ip(2))));
        assert_eq!(drain(&mut queues[usize::from(expected)]), vec![icmp]);
    }

    let mut arp = numbered(EthernetAddress::BROADCAST, mac(1), 0, 0);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let runt = [mac(2).as_bytes().as_slice(), &[0u8; 8]].concat();
    for frame in [arp, runt] {
        for _ in 0..10 {
            send(&mut pa, &frame);
        }
        assert_eq!(drain(&mut queues[0]).len(), 10);
        for q in &mut queues[1..] {
            assert!(drain(q).is_empty());
        }
    }
}

#[test]
fn capabilities_describe_the_port() {
    let config = WireConfig {
        pool_size: 64,
        mtu: 9000,
        frame_size: 9014,
        ..WireConfig::default()
    };
    let wire = Wire::new(config);
    let single = wire.add_port(mac(1), 1);
    let multi = wire.add_port(mac(2), 2);
    let p = wire.port(single, 0).expect("p");
    let caps = p.capabilities();
    assert_eq!(
        (caps.mac, caps.mtu, caps.queue, caps.queue_count),
        (mac(1), 9000, 0, 1)
    );
    assert_eq!(caps.rss, None);
    assert_eq!(caps.pool_size, 64);
    let q1 = wire.port(multi, 1).expect("q1");
    assert_eq!(
        (q1.capabilities().queue, q1.capabilities().queue_count),
        (1, 2)
    );
    assert_eq!(q1.queue(), 1);
    assert_eq!(q1.port_id(), multi);
    assert_eq!(wire.queue_count(multi), Ok(2));
}

#[test]
fn a_queue_has_one_owner_at_a_time_and_bad_ids_are_refused() {
    let wire = wire();
    let a = wire.add_port(mac(1), 2);
    let first = wire.port(a, 1).expect("first");
    assert_eq!(wire.port(a, 1).err(), Some(WireError::QueueTaken));
    assert_eq!(wire.port(a, 2).err(), Some(WireError::UnknownQueue));
    let other = Wire::new(WireConfig::default());
    other.add_port(mac(1), 1);
    other.add_port(mac(2), 1);
    let unknown = other.add_port(mac(3), 1);
    assert_eq!(wire.port(unknown, 0).err(), Some(WireError::UnknownPort));
    assert_eq!(
        wire.counters(unknown, 0).err(),
        Some(WireError::UnknownPort)
    );
    assert_eq!(
        wire.set_link_impairments(a, unknown, Default::default()),
        Err(WireError::UnknownPort)
    );
    drop(first);
    assert!(wire.port(a, 1).is_ok());
}

#[test]
fn alloc_tx_returns_none_once_the_pool_is_empty() {
    let wire = Wire::new(WireConfig {
        pool_size: 3,
        ..WireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let mut pa = wire.port(a, 0).expect("a");
    let frames: Vec<_> = (0..3).map(|_| pa.alloc_tx().expect("frame")).collect();
    assert!(frames.iter().all(|f| f.is_empty() && f.capacity() == 2048));
    assert!(pa.alloc_tx().is_none());
    assert_eq!(pa.pool_stats(), PoolStats { total: 3, free: 0 });
    for f in frames {
        pa.release(f);
    }
    assert_eq!(pa.pool_stats(), PoolStats { total: 3, free: 3 });
}

#[test]
fn pool_exhaustion_counts_rx_nombuf_instead_of_panicking() {
    let wire = Wire::new(WireConfig {
        pool_size: 8,
        ..WireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let mut pa = wire.port(a, 0).expect("a");
    let mut pb = wire.port(b, 0).expect("b");
    for id in 0..20 {
        send(&mut pa, &numbered(mac(2), mac(1), id, 0));
    }
    let counters = wire.counters(b, 0).expect("c");
    assert_eq!((counters.rx_frames, counters.rx_nombuf), (8, 12));
    assert_eq!(pb.pool_stats().free, 0);
    // The sender's buffers came back when their frames were delivered (or dropped).
    assert_eq!(pa.pool_stats().free, 8);
    let got: Vec<u64> = drain(&mut pb).iter().map(|f| id_of(f)).collect();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    send(&mut pa, &numbered(mac(2), mac(1), 99, 0));
    assert_eq!(drain(&mut pb).len(), 1);
    assert!(wire.all_pools_full());
}

#[test]
fn frames_in_flight_hold_the_senders_buffer_until_delivered() {
    let wire = Wire::new(WireConfig {
        pool_size: 4,
        ..WireConfig::default()
    });
    wire.set_impairments(shardnet_memory::Impairments {
        delay: core::time::Duration::from_millis(1),
        ..Default::default()
    });
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let mut pa = wire.port(a, 0).expect("a");
    let mut pb = wire.port(b, 0).expect("b");
    for id in 0..4 {
        send(&mut pa, &numbered(mac(2), mac(1), id, 0));
    }
    assert_eq!(pa.pool_stats().free, 0);
    assert_eq!(pb.pool_stats().free, 4);
    assert!(pa.alloc_tx().is_none());
    wire.advance_to(Instant::from_millis(1));
    assert_eq!(pa.pool_stats().free, 4);
    assert_eq!(pb.pool_stats().free, 0);
    assert_eq!(drain(&mut pb).len(), 4);
    assert!(wire.all_pools_full());
}

#[test]
fn invalid_frames_are_dropped_counted_and_their_buffers_returned() {
    let wire = Wire::new(WireConfig {
        mtu: 100,
        frame_size: 256,
        ..WireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let mut pa = wire.port(a, 0).expect("a");
    let mut pb = wire.port(b, 0).expect("b");
    let mut short = pa.alloc_tx().expect("f");
    short.buffer_mut()[..6].copy_from_slice(mac(2).as_bytes());
    short.set_len(13);
    let mut long = pa.alloc_tx().expect("f");
    long.buffer_mut()[..6].copy_from_slice(mac(2).as_bytes());
    long.set_len(115);
    let mut just_right = pa.alloc_tx().expect("f");
    just_right.buffer_mut()[..6].copy_from_slice(mac(2).as_bytes());
    just_right.set_len(114);
    let mut batch = Batch::new();
    batch.extend([short, long, just_right]);
    assert_eq!(pa.tx_burst(&mut batch), 3);
    assert!(batch.is_empty());
    assert_eq!(wire.counters(a, 0).expect("c").tx_invalid, 2);
    assert_eq!(drain(&mut pb).len(), 1);
    assert!(wire.all_pools_full());
}

#[test]
fn a_frame_given_back_through_another_port_returns_to_its_own_pool() {
    let wire = wire();
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let mut pa = wire.port(a, 0).expect("a");
    let mut pb = wire.port(b, 0).expect("b");
    let frame = pa.alloc_tx().expect("f");
    pb.release(frame);
    assert_eq!(pa.pool_stats().free, pa.pool_stats().total);
    assert_eq!(pb.pool_stats().free, pb.pool_stats().total);

    // A frame of another wire is not taken into this wire's pools.
    let other = Wire::new(WireConfig::default());
    let o = other.add_port(mac(1), 1);
    let mut po = other.port(o, 0).expect("o");
    let stray = po.alloc_tx().expect("f");
    pa.release(stray);
    assert_eq!(pa.pool_stats().free, pa.pool_stats().total);
    assert_eq!(po.pool_stats().free, po.pool_stats().total - 1);
}

#[test]
fn the_clock_never_goes_backwards() {
    let wire = wire();
    let a = wire.add_port(mac(1), 1);
    let mut pa = wire.port(a, 0).expect("a");
    wire.advance_to(Instant::from_millis(5));
    pa.set_now(Instant::from_millis(2));
    assert_eq!(wire.now(), Instant::from_millis(5));
    assert_eq!(pa.now(), Instant::from_millis(5));
    assert_eq!(pa.wire().now(), Instant::from_millis(5));
}
