//! Seeded faults: determinism, loss, duplication, reordering, corruption, delay, jitter and
//! bandwidth.

mod common;

use common::*;
use core::num::NonZeroU64;
use shardnet::port::{Batch, Frame, Port};
use shardnet::time::{Duration, Instant};
use shardnet_memory::{Impairments, MemoryPort, PortId, Wire, WireConfig};

/// A wire with ports A (one queue, MAC 1) and B (two queues, MAC 2) and `impairments` on all
/// links.
fn pair(
    seed: u64,
    impairments: Impairments,
) -> (Wire, PortId, PortId, MemoryPort, Vec<MemoryPort>) {
    let wire = Wire::new(WireConfig {
        seed,
        impairments,
        ..WireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 2);
    let pa = wire.port(a, 0).expect("a");
    let pb = (0..2).map(|q| wire.port(b, q).expect("b")).collect();
    (wire, a, b, pa, pb)
}

fn everything() -> Impairments {
    Impairments {
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(2),
        corrupt: 0.05,
        delay: Duration::from_millis(1),
        jitter: Duration::from_micros(500),
        bandwidth: NonZeroU64::new(10_000_000),
    }
}

/// Sends 500 frames over 50 ms of virtual time on a fully impaired link and records what B
/// receives: (time, queue, bytes).
fn scenario(seed: u64) -> Vec<(Instant, usize, Vec<u8>)> {
    let (wire, _, _, mut pa, mut pb) = pair(seed, everything());
    let mut log = Vec::new();
    let mut now = Instant::ZERO;
    for id in 0..500u64 {
        let frame = ipv4_frame(
            mac(2),
            mac(1),
            17,
            ip(1),
            ip(2),
            1000 + (id % 64) as u16,
            9,
            &id.to_be_bytes(),
        );
        send(&mut pa, &frame);
        now += Duration::from_micros(100);
        wire.advance_to(now);
        for (q, port) in pb.iter_mut().enumerate() {
            for bytes in drain(port) {
                log.push((now, q, bytes));
            }
        }
    }
    while let Some(t) = wire.next_event() {
        wire.advance_to(t);
        for (q, port) in pb.iter_mut().enumerate() {
            for bytes in drain(port) {
                log.push((t, q, bytes));
            }
        }
    }
    assert!(wire.all_pools_full());
    log
}

#[test]
fn the_same_seed_gives_the_same_deliveries_and_another_seed_does_not() {
    let first = scenario(7);
    assert!(first.len() > 400, "{}", first.len());
    assert!(first.iter().any(|e| e.1 == 0) && first.iter().any(|e| e.1 == 1));
    assert_eq!(first, scenario(7));
    assert_ne!(first, scenario(8));
}

#[test]
fn loss_over_ten_thousand_frames_is_close_to_the_configured_probability() {
    let (wire, _, b, mut pa, mut pb) = pair(
        1,
        Impairments {
            loss: 0.1,
            ..Impairments::NONE
        },
    );
    let mut received = 0;
    for id in 0..10_000 {
        send(&mut pa, &numbered(mac(2), mac(1), id, 0));
        received += drain(&mut pb[0]).len() + drain(&mut pb[1]).len();
    }
    let lost = wire.port_counters(b).expect("c").lost;
    // Binomial(10000, 0.1): standard deviation 30; allow five of them.
    assert!((850..=1150).contains(&lost), "lost {lost}");
    assert_eq!(received as u64, 10_000 - lost);
}

#[test]
fn duplicated_frames_arrive_twice_and_are_counted() {
    let (wire, _, b, mut pa, mut pb) = pair(
        2,
        Impairments {
            duplicate: 0.2,
            ..Impairments::NONE
        },
    );
    let mut ids = Vec::new();
    for id in 0..1000 {
        send(&mut pa, &numbered(mac(2), mac(1), id, 0));
        ids.extend(
            drain(&mut pb[0])
                .iter()
                .chain(&drain(&mut pb[1]))
                .map(|f| id_of(f)),
        );
    }
    let duplicated = wire.port_counters(b).expect("c").duplicated;
    assert!((120..=280).contains(&duplicated), "duplicated {duplicated}");
    assert_eq!(ids.len() as u64, 1000 + duplicated);
    let twice = (0..1000)
        .filter(|id| ids.iter().filter(|&&x| x == *id).count() == 2)
        .count();
    assert_eq!(twice as u64, duplicated);
}

#[test]
fn reordered_frames_are_overtaken_and_counted() {
    let impairments = Impairments {
        reorder: 0.1,
        reorder_delay: Duration::from_millis(5),
        ..Impairments::NONE
    };
    let (wire, _, b, mut pa, mut pb) = pair(3, impairments);
    let mut ids = Vec::new();
    let mut now = Instant::ZERO;
    for id in 0..300 {
        send(&mut pa, &numbered(mac(2), mac(1), id, 0));
        now += Duration::from_millis(1);
        wire.advance_to(now);
        // One flow, so one queue.
        ids.extend(
            drain(&mut pb[0])
                .iter()
                .chain(&drain(&mut pb[1]))
                .map(|f| id_of(f)),
        );
    }
    while let Some(t) = wire.next_delivery() {
        wire.advance_to(t);
        ids.extend(
            drain(&mut pb[0])
                .iter()
                .chain(&drain(&mut pb[1]))
                .map(|f| id_of(f)),
        );
    }
    let reordered = wire.port_counters(b).expect("c").reordered;
    assert!((10..=60).contains(&reordered), "reordered {reordered}");
    // Every frame arrives exactly once, and each held-back frame arrives after a later one.
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..300).collect::<Vec<_>>());
    let overtaken = ids
        .iter()
        .enumerate()
        .filter(|&(i, id)| ids[..i].iter().any(|earlier| earlier > id))
        .count();
    assert_eq!(overtaken as u64, reordered);
}

#[test]
fn corrupted_frames_differ_in_exactly_one_bit_and_are_counted() {
    let (wire, _, b, mut pa, mut pb) = pair(
        4,
        Impairments {
            corrupt: 1.0,
            ..Impairments::NONE
        },
    );
    for id in 0..200 {
        let sent = numbered(mac(2), mac(1), id, 100);
        send(&mut pa, &sent);
        let got = [drain(&mut pb[0]), drain(&mut pb[1])].concat();
        assert_eq!(got.len(), 1);
        let flipped: u32 = sent
            .iter()
            .zip(&got[0])
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert_eq!(flipped, 1);
    }
    assert_eq!(wire.port_counters(b).expect("c").corrupted, 200);
}

#[test]
fn nothing_is_visible_before_the_delivery_time() {
    let impairments = Impairments {
        delay: Duration::from_millis(10),
        ..Impairments::NONE
    };
    let (wire, _, _, mut pa, mut pb) = pair(5, impairments);
    wire.advance_to(Instant::from_millis(3));
    send(&mut pa, &numbered(mac(2), mac(1), 1, 0));
    assert_eq!(wire.next_delivery(), Some(Instant::from_millis(13)));
    assert_eq!(wire.frames_in_flight(), 1);
    wire.advance_to(Instant::from_millis(13) - Duration::from_nanos(1));
    let mut batch = Batch::new();
    assert_eq!(pb[0].rx_burst(&mut batch) + pb[1].rx_burst(&mut batch), 0);
    pb[0].set_now(Instant::from_millis(13));
    assert_eq!(pb[0].rx_burst(&mut batch) + pb[1].rx_burst(&mut batch), 1);
    assert_eq!(id_of(batch[0].data()), 1);
    for frame in batch.drain(..) {
        pb[0].release(frame);
    }
    assert_eq!(wire.next_delivery(), None);
    assert!(wire.all_pools_full());
}

#[test]
fn jitter_spreads_arrivals_between_delay_and_delay_plus_jitter() {
    let impairments = Impairments {
        delay: Duration::from_millis(1),
        jitter: Duration::from_millis(1),
        ..Impairments::NONE
    };
    let (wire, _, _, mut pa, mut pb) = pair(6, impairments);
    for id in 0..200 {
        send(&mut pa, &numbered(mac(2), mac(1), id, 0));
    }
    let mut arrivals = Vec::new();
    while let Some(t) = wire.next_delivery() {
        wire.advance_to(t);
        for _ in drain(&mut pb[0]).into_iter().chain(drain(&mut pb[1])) {
            arrivals.push(t);
        }
    }
    assert_eq!(arrivals.len(), 200);
    assert!(
        arrivals
            .iter()
            .all(|&t| (Instant::from_millis(1)..=Instant::from_millis(2)).contains(&t))
    );
    let early = arrivals
        .iter()
        .filter(|&&t| t < Instant::from_micros(1500))
        .count();
    assert!(
        (60..=140).contains(&early),
        "{early} of 200 in the first half"
    );
}

#[test]
fn a_bandwidth_limit_spaces_deliveries_by_the_serialisation_time() {
    let impairments = Impairments {
        delay: Duration::from_micros(50),
        // 1000 bytes per millisecond.
        bandwidth: NonZeroU64::new(1_000_000),
        ..Impairments::NONE
    };
    let (wire, _, _, mut pa, mut pb) = pair(7, impairments);
    let frame = numbered(mac(2), mac(1), 0, 1000 - 50);
    assert_eq!(frame.len(), 1000);
    for _ in 0..5 {
        send(&mut pa, &frame);
    }
    let mut arrivals = Vec::new();
    while let Some(t) = wire.next_delivery() {
        wire.advance_to(t);
        for _ in drain(&mut pb[0]).into_iter().chain(drain(&mut pb[1])) {
            arrivals.push(t.as_micros());
        }
    }
    assert_eq!(arrivals, vec![1050, 2050, 3050, 4050, 5050]);
}

#[test]
fn a_full_transmit_ring_leaves_frames_in_the_batch_in_order() {
    let wire = Wire::new(WireConfig {
        tx_ring_size: 4,
        impairments: Impairments {
            bandwidth: NonZeroU64::new(1_000),
            ..Impairments::NONE
        },
        ..WireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let mut pa = wire.port(a, 0).expect("a");
    let mut pb = wire.port(b, 0).expect("b");
    let mut batch = Batch::new();
    for id in 0..10 {
        let bytes = numbered(mac(2), mac(1), id, 50);
        assert_eq!(bytes.len(), 100);
        let mut f = pa.alloc_tx().expect("f");
        f.buffer_mut()[..100].copy_from_slice(&bytes);
        f.set_len(100);
        batch.push(f);
    }
    // 100 bytes at 1000 bytes/s: 100 ms each; the ring holds four.
    assert_eq!(pa.tx_burst(&mut batch), 4);
    assert_eq!(batch.len(), 6);
    assert_eq!(id_of(batch[0].data()), 4);
    assert_eq!(pa.counters().tx_ring_full, 6);
    assert_eq!(pa.next_tx_room(), Some(Instant::from_millis(100)));
    assert_eq!(wire.next_event(), Some(Instant::from_millis(100)));

    wire.advance_to(Instant::from_millis(100));
    assert_eq!(pa.next_tx_room(), None);
    assert_eq!(pa.tx_burst(&mut batch), 1);
    assert_eq!(batch.len(), 5);
    for frame in batch.drain(..) {
        pa.release(frame);
    }
    while let Some(t) = wire.next_event() {
        wire.advance_to(t);
    }
    let ids: Vec<u64> = drain(&mut pb).iter().map(|f| id_of(f)).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(wire.now(), Instant::from_millis(500));
    assert!(wire.all_pools_full());
}

#[test]
fn next_event_covers_a_ring_held_up_by_frames_that_were_lost() {
    let wire = Wire::new(WireConfig {
        tx_ring_size: 1,
        impairments: Impairments {
            loss: 1.0,
            bandwidth: NonZeroU64::new(1_000),
            ..Impairments::NONE
        },
        ..WireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let _b = wire.add_port(mac(2), 1);
    let mut pa = wire.port(a, 0).expect("a");
    send(&mut pa, &numbered(mac(2), mac(1), 0, 50));
    assert!(!try_send(&mut pa, &numbered(mac(2), mac(1), 1, 50)));
    assert_eq!(wire.next_delivery(), None);
    assert_eq!(wire.next_event(), Some(Instant::from_millis(100)));
    wire.advance_to(Instant::from_millis(100));
    assert!(try_send(&mut pa, &numbered(mac(2), mac(1), 1, 50)));
}

#[test]
fn link_impairments_apply_to_one_direction_only() {
    let (wire, a, b, mut pa, mut pb) = pair(8, Impairments::NONE);
    wire.set_link_impairments(
        a,
        b,
        Impairments {
            loss: 1.0,
            ..Impairments::NONE
        },
    )
    .expect("link");
    for id in 0..10 {
        send(&mut pa, &numbered(mac(2), mac(1), id, 0));
        send(&mut pb[0], &numbered(mac(1), mac(2), id, 0));
    }
    assert_eq!(drain(&mut pb[0]).len() + drain(&mut pb[1]).len(), 0);
    assert_eq!(drain(&mut pa).len(), 10);
    assert_eq!(wire.port_counters(b).expect("c").lost, 10);
    assert_eq!(wire.port_counters(a).expect("c").lost, 0);
}

#[test]
fn no_frame_leaks_after_a_faulty_run_with_broadcasts_and_exhausted_pools() {
    let wire = Wire::new(WireConfig {
        pool_size: 16,
        seed: 9,
        impairments: everything(),
        ..WireConfig::default()
    });
    let ids: Vec<_> = (1..=3).map(|n| wire.add_port(mac(n), 2)).collect();
    let mut ports: Vec<MemoryPort> = ids
        .iter()
        .flat_map(|&id| (0..2).map(move |q| (id, q)))
        .map(|(id, q)| wire.port(id, q).expect("port"))
        .collect();
    let mut now = Instant::ZERO;
    for round in 0..300u64 {
        let sender = (round % 6) as usize;
        let dst = if round % 5 == 0 {
            shardnet::wire::EthernetAddress::BROADCAST
        } else {
            mac(1 + (round % 3) as u8)
        };
        let _ = try_send(
            &mut ports[sender],
            &numbered(dst, mac(1 + (sender / 2) as u8), round, 200),
        );
        now += Duration::from_micros(50);
        wire.advance_to(now);
        // Only some queues receive each round, so pools run dry now and then.
        if round % 3 == 0 {
            for port in &mut ports {
                drain(port);
            }
        }
    }
    while let Some(t) = wire.next_event() {
        wire.advance_to(t);
    }
    for port in &mut ports {
        drain(port);
    }
    let totals = wire.total_counters();
    assert!(totals.rx_nombuf > 0 && totals.lost > 0 && totals.duplicated > 0);
    assert!(totals.reordered > 0 && totals.corrupted > 0);
    assert!(wire.all_pools_full());
    assert_eq!(wire.frames_in_flight(), 0);
}
