//! The threaded memory wire: delivery across threads, RSS, broadcast, pool exhaustion, receive
//! wakeups, seeded loss, and a multi-thread stress run.

mod common;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{ip, ipv4_frame, mac};
use shardnet::port::{Batch, ChecksumOffload, Frame, Port, RssConfig, RxOffload};
use shardnet::shard::rss::{
    DEFAULT_KEY, SYMMETRIC_KEY, ipv4_input, ipv4_tcp_udp_input, queue_for_hash,
    round_robin_indirection, toeplitz_hash,
};
use shardnet::wire::EthernetAddress;
use shardnet_memory::classify::rx_queue;
use shardnet_memory::threaded::{
    PortId, ThreadedCounters, ThreadedPort, ThreadedWire, ThreadedWireConfig, WireError,
};

/// Where the test payload starts: Ethernet (14) + IPv4 (20) + UDP (8).
const PAYLOAD_AT: usize = 42;

/// `PATTERN[i] == i as u8`: the pattern bytes of frame `seq` are `PATTERN[seq as u8..]`, so that
/// writing and checking them are slice copies and comparisons (fast even without optimisation).
const PATTERN: [u8; 2048] = {
    let mut p = [0u8; 2048];
    let mut i = 0;
    while i < p.len() {
        p[i] = i as u8;
        i += 1;
    }
    p
};

/// Writes a UDP frame `src -> dst` (198.18.0.1:`sport` -> 198.18.0.2:`dport`) into `buf`
/// carrying `sender`, `seq` and a pattern whose length and bytes depend on `seq`; returns its
/// length. [`check_frame`] verifies all of it.
#[allow(clippy::too_many_arguments)]
fn write_frame(
    buf: &mut [u8],
    dst: EthernetAddress,
    src: EthernetAddress,
    sport: u16,
    dport: u16,
    sender: u32,
    seq: u64,
) -> usize {
    let extra = ((seq % 64) * 22) as usize;
    let payload_len = 12 + extra;
    buf[0..6].copy_from_slice(dst.as_bytes());
    buf[6..12].copy_from_slice(src.as_bytes());
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
    buf[14..16].copy_from_slice(&[0x45, 0]);
    buf[16..18].copy_from_slice(&((20 + 8 + payload_len) as u16).to_be_bytes());
    buf[18..24].copy_from_slice(&[0, 0, 0x40, 0, 64, 17]);
    buf[24..26].copy_from_slice(&[0, 0]);
    buf[26..30].copy_from_slice(&ip(1).octets());
    buf[30..34].copy_from_slice(&ip(2).octets());
    buf[34..36].copy_from_slice(&sport.to_be_bytes());
    buf[36..38].copy_from_slice(&dport.to_be_bytes());
    buf[38..40].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    buf[40..42].copy_from_slice(&[0, 0]);
    buf[42..46].copy_from_slice(&sender.to_be_bytes());
    buf[46..54].copy_from_slice(&seq.to_be_bytes());
    let start = usize::from(seq as u8);
    buf[54..54 + extra].copy_from_slice(&PATTERN[start..start + extra]);
    PAYLOAD_AT + payload_len
}

/// The `(sender, seq)` of a frame [`write_frame`] wrote, after checking that every byte of it
/// arrived as written.
fn check_frame(f: &[u8]) -> (u32, u64) {
    assert!(f.len() >= 54, "frame of {} bytes is truncated", f.len());
    let sender = u32::from_be_bytes(f[42..46].try_into().unwrap());
    let seq = u64::from_be_bytes(f[46..54].try_into().unwrap());
    let extra = ((seq % 64) * 22) as usize;
    assert_eq!(
        f.len(),
        54 + extra,
        "frame {sender}/{seq} has the wrong length"
    );
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    let start = usize::from(seq as u8);
    assert!(
        f[54..] == PATTERN[start..start + extra],
        "frame {sender}/{seq}: the payload differs"
    );
    (sender, seq)
}

/// A wire with `config` and two ports of one queue each, A (`mac(1)`) and B (`mac(2)`): the
/// wire, their ids and their queues.
fn two_ports(
    config: ThreadedWireConfig,
) -> (ThreadedWire, [PortId; 2], ThreadedPort, ThreadedPort) {
    let wire = ThreadedWire::new(config);
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let pa = wire.port(a, 0).unwrap();
    let pb = wire.port(b, 0).unwrap();
    (wire, [a, b], pa, pb)
}

/// Sends `bytes` as one frame; false if the pool had no buffer.
fn send_bytes(port: &mut ThreadedPort, bytes: &[u8]) -> bool {
    let Some(mut frame) = port.alloc_tx() else {
        return false;
    };
    frame.buffer_mut()[..bytes.len()].copy_from_slice(bytes);
    frame.set_len(bytes.len());
    let mut batch = Batch::new();
    batch.push(frame);
    assert_eq!(port.tx_burst(&mut batch), 1);
    assert!(batch.is_empty(), "tx_burst left a frame in the batch");
    true
}

/// Everything in the port's receive ring, released after copying.
fn drain(port: &mut ThreadedPort) -> Vec<Vec<u8>> {
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

/// `tx_frames - tx_no_destination == rx_frames + rx_nombuf + rx_ring_full + lost`: every
/// unicast frame that found its port is accounted for exactly once.
fn assert_accounted(c: &ThreadedCounters) {
    assert_eq!(
        c.tx_frames - c.tx_no_destination,
        c.rx_frames + c.rx_nombuf + c.rx_ring_full + c.lost,
        "counters do not add up: {c:?}"
    );
}

fn arp_request(src: EthernetAddress) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(EthernetAddress::BROADCAST.as_bytes());
    f.extend_from_slice(src.as_bytes());
    f.extend_from_slice(&[0x08, 0x06]);
    // htype 1, ptype IPv4, hlen 6, plen 4, op request
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(src.as_bytes());
    f.extend_from_slice(&ip(1).octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip(2).octets());
    f.resize(60, 0);
    f
}

#[test]
fn frames_cross_threads_whole_and_in_order_per_queue_pair() {
    const PER_SENDER: u64 = 20_000;
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let a = wire.add_port(mac(1), 2);
    let b = wire.add_port(mac(2), 3);
    let done = Arc::new(AtomicUsize::new(0));

    let mut receivers = Vec::new();
    for q in 0..3 {
        let mut port = wire.port(b, q).unwrap();
        let done = Arc::clone(&done);
        receivers.push(thread::spawn(move || {
            let mut last: HashMap<u32, u64> = HashMap::new();
            let mut received = 0u64;
            let mut batch = Batch::new();
            loop {
                let finished = done.load(Ordering::Acquire) == 2;
                let n = port.rx_burst(&mut batch);
                for frame in batch.drain(..) {
                    let (sender, seq) = check_frame(frame.data());
                    if let Some(&prev) = last.get(&sender) {
                        assert!(
                            seq > prev,
                            "queue {q}: sender {sender} sent {seq} after {prev}"
                        );
                    }
                    last.insert(sender, seq);
                    received += 1;
                    port.release(frame);
                }
                if n == 0 {
                    if finished {
                        break;
                    }
                    thread::yield_now();
                }
            }
            (received, port.counters())
        }));
    }
    let mut senders = Vec::new();
    for q in 0..2u16 {
        let mut port = wire.port(a, q).unwrap();
        let done = Arc::clone(&done);
        senders.push(thread::spawn(move || {
            let mut seq = 0;
            while seq < PER_SENDER {
                let mut batch = Batch::new();
                while seq < PER_SENDER && !batch.is_full() {
                    let Some(mut frame) = port.alloc_tx() else {
                        break;
                    };
                    // Ports vary with seq, so RSS spreads each sender's frames over all queues.
                    let sport = 1024 + (seq % 512) as u16;
                    let len =
                        write_frame(frame.buffer_mut(), mac(2), mac(1), sport, 80, q.into(), seq);
                    frame.set_len(len);
                    batch.push(frame);
                    seq += 1;
                }
                let n = batch.len();
                assert_eq!(port.tx_burst(&mut batch), n);
            }
            done.fetch_add(1, Ordering::Release);
        }));
    }
    for s in senders {
        s.join().unwrap();
    }
    let mut total_received = 0;
    for (q, r) in receivers.into_iter().enumerate() {
        let (received, counters) = r.join().unwrap();
        assert_eq!(received, counters.rx_frames, "queue {q}");
        assert!(
            received > 0,
            "queue {q} received nothing: RSS did not spread"
        );
        total_received += received;
    }
    let c = wire.total_counters();
    assert_eq!(c.tx_frames, 2 * PER_SENDER);
    assert_eq!(c.rx_frames, total_received);
    assert_eq!(c.lost, 0);
    assert_eq!(c.tx_ring_full, 0);
    assert_accounted(&c);
    assert_eq!(wire.port_counters(a).unwrap().tx_frames, 2 * PER_SENDER);
    assert!(wire.all_pools_full());
}

#[test]
fn rss_puts_each_flow_on_the_predicted_queue() {
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    // A table that is not round-robin, so that the test sees the table is really used.
    let indirection: Vec<u16> = (0..128u16).map(|i| (i * 7 / 3) % 4).collect();
    let rss = RssConfig {
        key: SYMMETRIC_KEY.to_vec(),
        indirection,
    };
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port_with_rss(mac(2), 4, rss.clone());
    let mut pa = wire.port(a, 0).unwrap();
    let mut queues: Vec<ThreadedPort> = (0..4).map(|q| wire.port(b, q).unwrap()).collect();
    assert_eq!(queues[2].capabilities().rss.as_ref(), Some(&rss));
    assert_eq!(queues[2].capabilities().queue_count, 4);
    assert_eq!(pa.capabilities().rss, None);

    // Expected queue for each frame, by a unique id in its payload.
    let mut expected = HashMap::new();
    let mut id = 0u64;
    for flow in 0..300u16 {
        for protocol in [6u8, 17, 1] {
            let (sport, dport) = (10_000 + flow * 13, 80 + flow % 7);
            let hash = if protocol == 1 {
                toeplitz_hash(&rss.key, &ipv4_input(ip(1), ip(2)))
            } else {
                toeplitz_hash(&rss.key, &ipv4_tcp_udp_input(ip(1), ip(2), sport, dport))
            };
            let payload = id.to_be_bytes();
            let frame = ipv4_frame(
                mac(2),
                mac(1),
                protocol,
                ip(1),
                ip(2),
                sport,
                dport,
                &payload,
            );
            assert!(send_bytes(&mut pa, &frame));
            expected.insert(id, queue_for_hash(&rss, hash));
            id += 1;
        }
        // Drain often enough that no pool runs dry.
        if flow % 50 == 49 {
            check_rss_arrivals(&mut queues, &mut expected);
        }
    }
    check_rss_arrivals(&mut queues, &mut expected);
    assert!(
        expected.is_empty(),
        "{} frames never arrived",
        expected.len()
    );
    for (q, port) in queues.iter().enumerate() {
        assert!(port.counters().rx_frames > 0, "queue {q} received nothing");
    }
    assert_accounted(&wire.total_counters());
    assert_eq!(wire.total_counters().rx_nombuf, 0);
}

fn check_rss_arrivals(queues: &mut [ThreadedPort], expected: &mut HashMap<u64, u16>) {
    for (q, port) in queues.iter_mut().enumerate() {
        for frame in drain(port) {
            let protocol = frame[23];
            let at = if protocol == 6 { 54 } else { 42 };
            let id = u64::from_be_bytes(frame[at..at + 8].try_into().unwrap());
            let want = expected.remove(&id).expect("a frame that was sent once");
            assert_eq!(usize::from(want), q, "frame {id} (protocol {protocol})");
        }
    }
}

#[test]
fn default_rss_is_round_robin_over_the_wire_key() {
    let wire = ThreadedWire::new(ThreadedWireConfig {
        rss_key: DEFAULT_KEY.to_vec(),
        indirection_entries: 64,
        ..ThreadedWireConfig::default()
    });
    let single = wire.add_port(mac(1), 1);
    let multi = wire.add_port(mac(2), 3);
    assert_eq!(wire.port(single, 0).unwrap().capabilities().rss, None);
    let caps = wire.port(multi, 1).unwrap().capabilities().clone();
    assert_eq!(
        caps.rss,
        Some(RssConfig {
            key: DEFAULT_KEY.to_vec(),
            indirection: round_robin_indirection(3, 64),
        })
    );
    assert_eq!(
        (caps.mac, caps.queue, caps.mtu, caps.pool_size),
        (mac(2), 1, 1500, 1024)
    );
}

/// Sends one ARP frame from a port of `wire` to another and returns the offloads the sender
/// reports and the verdict the receiver's frame carries.
fn offloads_and_verdict(wire: &ThreadedWire) -> (ChecksumOffload, RxOffload) {
    let (a, b) = (wire.add_port(mac(1), 1), wire.add_port(mac(2), 1));
    let (mut pa, mut pb) = (wire.port(a, 0).unwrap(), wire.port(b, 0).unwrap());
    assert!(send_bytes(&mut pa, &arp_request(mac(1))));
    let mut batch = Batch::new();
    assert_eq!(pb.rx_burst(&mut batch), 1);
    let frame = batch.pop().unwrap();
    let verdict = frame.rx_offload();
    pb.release(frame);
    (pa.capabilities().checksum, verdict)
}

#[test]
fn checksum_offload_is_reported_and_vouched_for_only_when_configured() {
    let (caps, verdict) = offloads_and_verdict(&ThreadedWire::new(ThreadedWireConfig::default()));
    assert_eq!(caps, ChecksumOffload::default());
    assert_eq!(verdict, RxOffload::default());

    let (caps, verdict) = offloads_and_verdict(&ThreadedWire::new(ThreadedWireConfig {
        checksum_offload: true,
        ..ThreadedWireConfig::default()
    }));
    let all = ChecksumOffload {
        rx_ipv4: true,
        rx_l4: true,
        tx_ipv4: true,
        tx_l4: true,
    };
    assert_eq!(caps, all);
    assert_eq!(
        verdict,
        RxOffload {
            ipv4_checksum_good: true,
            l4_checksum_good: true,
        }
    );
}

#[test]
fn broadcast_arp_reaches_queue_0_of_every_other_port() {
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let ids = [
        wire.add_port(mac(1), 1),
        wire.add_port(mac(2), 4),
        wire.add_port(mac(3), 2),
    ];
    let mut ports: Vec<Vec<ThreadedPort>> = ids
        .iter()
        .map(|&id| {
            (0..wire.queue_count(id).unwrap())
                .map(|q| wire.port(id, q).unwrap())
                .collect()
        })
        .collect();
    let arp = arp_request(mac(1));
    // Sent from another thread, like a shard's.
    let mut sender = ports[0].remove(0);
    let arp_sent = arp.clone();
    let sender = thread::spawn(move || {
        assert!(send_bytes(&mut sender, &arp_sent));
        sender
    })
    .join()
    .unwrap();
    ports[0].insert(0, sender);

    assert!(
        drain(&mut ports[0][0]).is_empty(),
        "the sender got its own broadcast"
    );
    for (p, queues) in ports.iter_mut().enumerate().skip(1) {
        for (q, port) in queues.iter_mut().enumerate() {
            let want = if q == 0 {
                vec![arp.clone()]
            } else {
                Vec::new()
            };
            assert_eq!(drain(port), want, "port {p} queue {q}");
        }
    }
    let c = wire.total_counters();
    assert_eq!((c.tx_frames, c.rx_frames, c.tx_no_destination), (1, 2, 0));
    assert_eq!(wire.counters(ids[1], 0).unwrap().rx_frames, 1);
    assert_eq!(wire.counters(ids[2], 0).unwrap().rx_frames, 1);

    // A unicast to a MAC no port has reaches nobody and is counted.
    assert!(send_bytes(&mut ports[1][2], &{
        let mut f = arp_request(mac(2));
        f[..6].copy_from_slice(mac(9).as_bytes());
        f
    }));
    assert_eq!(wire.counters(ids[1], 2).unwrap().tx_no_destination, 1);
    assert!(ports.iter_mut().flatten().all(|p| drain(p).is_empty()));
    assert!(wire.all_pools_full());
}

#[test]
fn pool_exhaustion_is_counted_and_every_buffer_comes_back() {
    let (wire, [_, b], mut pa, mut pb) = two_ports(ThreadedWireConfig {
        pool_size: 8,
        ring_size: 8,
        ..ThreadedWireConfig::default()
    });
    let mut buf = vec![0u8; 2048];
    for seq in 0..20 {
        let len = write_frame(&mut buf, mac(2), mac(1), 1, 2, 0, seq);
        assert!(send_bytes(&mut pa, &buf[..len]));
    }
    let c = pb.counters();
    assert_eq!((c.rx_frames, c.rx_nombuf, c.rx_ring_full), (8, 12, 0));
    assert_eq!(pb.pool_stats().free, 0);
    assert_eq!(pb.rx_pending(), 8);
    // B's own transmit finds no buffer: None, not a panic.
    assert!(pb.alloc_tx().is_none());
    // A's buffers came back after each transmit.
    assert_eq!(pa.pool_stats().free, 8);

    // The eight that arrived are the first eight, whole.
    let got: Vec<u64> = drain(&mut pb).iter().map(|f| check_frame(f).1).collect();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert_eq!(wire.pool_stats(b, 0).unwrap().free, 8);
    assert_accounted(&wire.total_counters());
    assert!(wire.all_pools_full());

    // A frame held by the stack is not free; released, it is.
    let held = pa.alloc_tx().unwrap();
    assert_eq!(pa.pool_stats().free, 7);
    assert!(!wire.all_pools_full());
    pa.release(held);
    assert!(wire.all_pools_full());
}

#[test]
fn a_full_receive_ring_drops_and_counts() {
    let (wire, _, mut pa, mut pb) = two_ports(ThreadedWireConfig {
        pool_size: 16,
        ring_size: 4,
        ..ThreadedWireConfig::default()
    });
    let mut buf = vec![0u8; 2048];
    for seq in 0..10 {
        let len = write_frame(&mut buf, mac(2), mac(1), 1, 2, 0, seq);
        assert!(send_bytes(&mut pa, &buf[..len]));
    }
    let c = pb.counters();
    assert_eq!((c.rx_frames, c.rx_ring_full, c.rx_nombuf), (4, 6, 0));
    // Dropped frames' buffers went back: only the four in the ring are out.
    assert_eq!(pb.pool_stats().free, 12);
    assert_eq!(drain(&mut pb).len(), 4);
    assert_accounted(&wire.total_counters());
    assert!(wire.all_pools_full());
}

#[test]
fn invalid_frames_are_dropped_and_counted() {
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let other = ThreadedWire::new(ThreadedWireConfig::default());
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let x = other.add_port(mac(3), 1);
    let mut pa = wire.port(a, 0).unwrap();
    let mut pb = wire.port(b, 0).unwrap();
    let mut px = other.port(x, 0).unwrap();
    let mut batch = Batch::new();
    let mut short = pa.alloc_tx().unwrap();
    short.set_len(13);
    batch.push(short);
    let mut long = pa.alloc_tx().unwrap();
    long.buffer_mut()[..6].copy_from_slice(mac(2).as_bytes());
    long.set_len(1515);
    batch.push(long);
    // A frame of another wire: not taken into this wire's pools.
    let mut foreign = px.alloc_tx().unwrap();
    foreign.buffer_mut()[..6].copy_from_slice(mac(2).as_bytes());
    foreign.set_len(60);
    batch.push(foreign);
    assert_eq!(pa.tx_burst(&mut batch), 3);
    let c = pa.counters();
    assert_eq!((c.tx_invalid, c.tx_frames), (3, 0));
    assert!(drain(&mut pb).is_empty());
    assert!(wire.all_pools_full());
    assert_eq!(
        px.pool_stats().free,
        1023,
        "the foreign frame is lost to its pool"
    );
}

#[test]
fn queues_have_one_owner_and_can_be_taken_again() {
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let a = wire.add_port(mac(1), 2);
    let p = wire.port(a, 1).unwrap();
    assert_eq!(wire.port(a, 1).unwrap_err(), WireError::QueueTaken);
    assert_eq!(wire.port(a, 2).unwrap_err(), WireError::UnknownQueue);
    assert!(wire.port(a, 0).is_ok());
    // A port id of a wire with more ports names no port here.
    let bigger = ThreadedWire::new(ThreadedWireConfig::default());
    bigger.add_port(mac(1), 1);
    let third = bigger.add_port(mac(2), 1);
    assert_eq!(wire.port(third, 0).unwrap_err(), WireError::UnknownPort);
    assert_eq!((p.port_id(), p.queue()), (a, 1));
    drop(p);
    assert!(wire.port(a, 1).is_ok());
    assert_eq!(wire.port_count(), 1);
    assert!(wire.counters(a, 5).is_err());
}

#[test]
fn ports_added_while_others_run_are_reached() {
    let (wire, _, mut pa, mut pb) = two_ports(ThreadedWireConfig::default());
    let mut buf = vec![0u8; 2048];
    let len = write_frame(&mut buf, mac(3), mac(1), 1, 2, 0, 0);
    assert!(send_bytes(&mut pa, &buf[..len]));
    assert_eq!(pa.counters().tx_no_destination, 1);

    // C appears after A and B are running; A's next transmit reaches it.
    let c = wire.add_port(mac(3), 2);
    let mut pc = wire.port(c, 0).unwrap();
    let mut pc1 = wire.port(c, 1).unwrap();
    let len = write_frame(&mut buf, mac(3), mac(1), 1, 2, 0, 1);
    assert!(send_bytes(&mut pa, &buf[..len]));
    let got: Vec<_> = [drain(&mut pc), drain(&mut pc1)].concat();
    assert_eq!(got.len(), 1);
    assert_eq!(check_frame(&got[0]), (0, 1));

    // C's broadcast reaches A and B.
    assert!(send_bytes(&mut pc1, &arp_request(mac(3))));
    assert_eq!(drain(&mut pa).len(), 1);
    assert_eq!(drain(&mut pb).len(), 1);
    // B releases a frame owned by C's queue (taken from C's pool before B's snapshot knew C).
    let frame = pc.alloc_tx().unwrap();
    pb.release(frame);
    assert!(wire.all_pools_full());
}

/// Receives one frame on `port`, parking (registered as its waker, armed before each park)
/// while there is none; fails
/// if a park lasts as long as `limit`, which only a lost wakeup makes it do.
fn wait_for_frame(port: &mut ThreadedPort, limit: Duration) -> Vec<u8> {
    let mut batch = Batch::new();
    loop {
        if port.rx_burst(&mut batch) > 0 {
            let frame = batch.remove(0);
            let bytes = frame.data().to_vec();
            port.release(frame);
            for rest in batch.drain(..) {
                port.release(rest);
            }
            return bytes;
        }
        // The runtime's order: arm the waker, and park only if no frame slipped in.
        if !port.arm_rx_waker() {
            continue;
        }
        let parked = Instant::now();
        thread::park_timeout(limit);
        assert!(
            parked.elapsed() < limit,
            "parked for {:?} with a frame on its way: wakeup lost",
            parked.elapsed()
        );
    }
}

#[test]
fn a_parked_receiver_is_woken_by_a_sender() {
    const LIMIT: Duration = Duration::from_secs(5);
    let (wire, _, mut pa, mut pb) = two_ports(ThreadedWireConfig::default());
    let asleep = Arc::new(AtomicBool::new(false));
    let asleep_rx = Arc::clone(&asleep);
    let receiver = thread::spawn(move || {
        assert!(pb.set_rx_waker(thread::current()));
        for round in 0..10u64 {
            let mut batch = Batch::new();
            assert_eq!(pb.rx_burst(&mut batch), 0);
            asleep_rx.store(true, Ordering::Release);
            let frame = wait_for_frame(&mut pb, LIMIT);
            assert_eq!(check_frame(&frame), (0, round));
        }
        pb
    });
    let mut buf = vec![0u8; 2048];
    for round in 0..10 {
        while !asleep.swap(false, Ordering::Acquire) {
            if receiver.is_finished() {
                // It panicked: report its failure rather than wait for it forever.
                receiver.join().unwrap();
                unreachable!("the receiver returned before its last round");
            }
            thread::yield_now();
        }
        // Let the receiver get into its park.
        thread::sleep(Duration::from_millis(20));
        let len = write_frame(&mut buf, mac(2), mac(1), 1, 2, 0, round);
        assert!(send_bytes(&mut pa, &buf[..len]));
    }
    let pb = receiver.join().unwrap();
    assert_eq!(pb.counters().rx_frames, 10);
    assert!(wire.all_pools_full());
}

#[test]
fn a_broadcast_wakes_every_parked_receiver() {
    // One frame to twelve parked receivers: the sender wakes each of them.
    const LIMIT: Duration = Duration::from_secs(5);
    const RECEIVERS: u8 = 12;
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let a = wire.add_port(mac(1), 1);
    let ids: Vec<_> = (0..RECEIVERS)
        .map(|i| wire.add_port(mac(10 + i), 1))
        .collect();
    let mut pa = wire.port(a, 0).unwrap();
    let asleep = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let receivers: Vec<_> = ids
        .iter()
        .map(|&id| {
            let mut p = wire.port(id, 0).unwrap();
            let asleep = Arc::clone(&asleep);
            thread::spawn(move || {
                assert!(p.set_rx_waker(thread::current()));
                asleep.fetch_add(1, Ordering::AcqRel);
                let frame = wait_for_frame(&mut p, LIMIT);
                (frame, p)
            })
        })
        .collect();
    while asleep.load(Ordering::Acquire) < usize::from(RECEIVERS) {
        thread::yield_now();
    }
    // Let the receivers get into their parks.
    thread::sleep(Duration::from_millis(50));
    let arp = arp_request(mac(1));
    assert!(send_bytes(&mut pa, &arp));
    for r in receivers {
        let (frame, p) = r.join().unwrap();
        assert_eq!(frame, arp);
        assert_eq!(p.counters().rx_frames, 1);
    }
}

#[test]
fn ping_pong_between_parking_threads_loses_no_wakeup() {
    // Each round trip needs two wakeups and nothing else wakes the threads: one lost wakeup
    // parks a thread for the whole limit, which `wait_for_frame` reports.
    const ROUNDS: u64 = 2_000;
    const LIMIT: Duration = Duration::from_secs(5);
    let (wire, _, mut pa, mut pb) = two_ports(ThreadedWireConfig::default());
    let started = Instant::now();
    let echo = thread::spawn(move || {
        assert!(pb.set_rx_waker(thread::current()));
        for _ in 0..ROUNDS {
            let mut frame = wait_for_frame(&mut pb, LIMIT);
            frame[..6].copy_from_slice(mac(1).as_bytes());
            frame[6..12].copy_from_slice(mac(2).as_bytes());
            assert!(send_bytes(&mut pb, &frame));
        }
    });
    assert!(pa.set_rx_waker(thread::current()));
    let mut buf = vec![0u8; 2048];
    for seq in 0..ROUNDS {
        let len = write_frame(&mut buf, mac(2), mac(1), 1, 2, 7, seq);
        assert!(send_bytes(&mut pa, &buf[..len]));
        let reply = wait_for_frame(&mut pa, LIMIT);
        assert_eq!(check_frame(&reply), (7, seq));
    }
    echo.join().unwrap();
    eprintln!("{ROUNDS} round trips in {:?}", started.elapsed());
    assert!(wire.all_pools_full());
}

#[test]
fn a_frame_sent_as_the_receiver_goes_idle_still_wakes_it() {
    // The sender pushes each frame as the receiver, after a random short delay, runs the
    // rx_burst that precedes its park, aiming at the window between "ring empty" and "flag
    // set". Nothing else wakes the receiver: a frame that slips through unnoticed leaves it
    // parked for the whole limit, which `wait_for_frame` reports.
    const TRIALS: u64 = 10_000;
    const LIMIT: Duration = Duration::from_secs(2);
    let (wire, _, mut pa, mut pb) = two_ports(ThreadedWireConfig::default());
    let ready = Arc::new(AtomicU64::new(0));
    let ready_rx = Arc::clone(&ready);
    let receiver = thread::spawn(move || {
        assert!(pb.set_rx_waker(thread::current()));
        let mut lcg = 0x2545_f491_4f6c_dd1du64;
        for trial in 0..TRIALS {
            ready_rx.store(trial + 1, Ordering::Release);
            // A random delay sweeps the sender's push across the receiver's rx_burst.
            lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            for _ in 0..(lcg >> 54) {
                std::hint::spin_loop();
            }
            let frame = wait_for_frame(&mut pb, LIMIT);
            assert_eq!(check_frame(&frame), (0, trial));
        }
    });
    for trial in 0..TRIALS {
        // Built before the receiver is ready, so that the push follows its signal closely.
        let mut frame = pa.alloc_tx().unwrap();
        let len = write_frame(frame.buffer_mut(), mac(2), mac(1), 1, 2, 0, trial);
        frame.set_len(len);
        let mut batch = Batch::new();
        batch.push(frame);
        while ready.load(Ordering::Acquire) != trial + 1 {
            if receiver.is_finished() {
                receiver.join().unwrap();
                unreachable!("the receiver returned before its last trial");
            }
            std::hint::spin_loop();
        }
        assert_eq!(pa.tx_burst(&mut batch), 1);
    }
    receiver.join().unwrap();
    assert!(wire.all_pools_full());
}

/// Sends `count` frames A -> B on one thread, draining B as it goes; the seqs B received.
fn lossy_run(seed: u64, loss: f64, count: u64) -> (Vec<u64>, ThreadedCounters) {
    let (wire, _, mut pa, mut pb) = two_ports(ThreadedWireConfig {
        seed,
        loss,
        ..ThreadedWireConfig::default()
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    for seq in 0..count {
        let len = write_frame(&mut buf, mac(2), mac(1), 1, 2, 0, seq);
        assert!(send_bytes(&mut pa, &buf[..len]));
        if seq % 100 == 99 {
            got.extend(drain(&mut pb).iter().map(|f| check_frame(f).1));
        }
    }
    got.extend(drain(&mut pb).iter().map(|f| check_frame(f).1));
    assert!(wire.all_pools_full());
    (got, wire.total_counters())
}

#[test]
fn seeded_loss_drops_about_the_configured_fraction() {
    const COUNT: u64 = 20_000;
    let (got, c) = lossy_run(7, 0.2, COUNT);
    assert_eq!(c.tx_frames, COUNT);
    assert_eq!(c.rx_nombuf, 0);
    assert_eq!(c.rx_frames, got.len() as u64);
    assert_accounted(&c);
    // 20% of 20 000 is 4000, with a standard deviation of about 57.
    assert!(
        (3600..=4400).contains(&c.lost),
        "lost {} of {COUNT}",
        c.lost
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "reordered");

    // The same seed loses the same frames; another seed other ones.
    let (again, _) = lossy_run(7, 0.2, COUNT);
    assert_eq!(got, again);
    let (other, _) = lossy_run(8, 0.2, COUNT);
    assert_ne!(got, other);

    // No loss configured: nothing lost.
    let (all, c) = lossy_run(7, 0.0, 1000);
    assert_eq!((all.len(), c.lost), (1000, 0));
    // Certain loss: everything lost.
    let (none, c) = lossy_run(7, 1.0, 1000);
    assert_eq!((none.len(), c.lost), (0, 1000));
}

#[test]
fn the_loss_stream_continues_when_a_port_is_taken_again() {
    let run = |reopen: bool| {
        let wire = ThreadedWire::new(ThreadedWireConfig {
            seed: 3,
            loss: 0.5,
            ..ThreadedWireConfig::default()
        });
        let a = wire.add_port(mac(1), 1);
        let b = wire.add_port(mac(2), 1);
        let mut pa = wire.port(a, 0).unwrap();
        let mut pb = wire.port(b, 0).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut got = Vec::new();
        for seq in 0..400 {
            if reopen && seq == 200 {
                drop(pa);
                pa = wire.port(a, 0).unwrap();
            }
            let len = write_frame(&mut buf, mac(2), mac(1), 1, 2, 0, seq);
            assert!(send_bytes(&mut pa, &buf[..len]));
            got.extend(drain(&mut pb).iter().map(|f| check_frame(f).1));
        }
        got
    };
    assert_eq!(run(false), run(true));
}

#[test]
fn stress_four_threads_two_ports() {
    // Threads 0 and 1 drive queues 0 and 1 of port A, threads 2 and 3 those of port B; each
    // sends PER_THREAD frames to the other port (spread by RSS) while receiving. A sender keeps
    // at most WINDOW frames unconsumed per receiving queue, so pools (1024 frames per queue)
    // never run dry: every frame must arrive, whole, in order per (sender, receiver) pair.
    const PER_THREAD: u64 = 50_000;
    const THREADS: usize = 4;
    const WINDOW: u64 = 256;
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let ids = [wire.add_port(mac(1), 2), wire.add_port(mac(2), 2)];
    let mut ports: Vec<ThreadedPort> = (0..THREADS)
        .map(|t| wire.port(ids[t / 2], (t % 2) as u16).unwrap())
        .collect();
    let rss: Vec<RssConfig> = ports
        .iter()
        .map(|p| p.capabilities().rss.clone().unwrap())
        .collect();
    // consumed[receiver * THREADS + sender]: frames of `sender` that `receiver` has taken.
    let consumed: Arc<Vec<AtomicU64>> =
        Arc::new((0..THREADS * THREADS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in (0..THREADS).rev() {
        let mut port = ports.pop().unwrap();
        let (me, peer) = (t / 2, 1 - t / 2);
        let peer_rss = rss[peer * 2].clone();
        let (done, consumed) = (Arc::clone(&done), Arc::clone(&consumed));
        handles.push(thread::spawn(move || {
            let (my_mac, peer_mac) = (mac(me as u8 + 1), mac(peer as u8 + 1));
            let mut last: HashMap<u32, u64> = HashMap::new();
            let mut from = [0u64; THREADS];
            let mut receive = |port: &mut ThreadedPort| {
                let mut batch = Batch::new();
                let n = port.rx_burst(&mut batch);
                for frame in batch.drain(..) {
                    let (sender, seq) = check_frame(frame.data());
                    assert_eq!(sender as usize / 2, peer, "a frame from the wrong port");
                    if let Some(&prev) = last.get(&sender) {
                        assert!(seq > prev, "thread {t}: {sender} sent {seq} after {prev}");
                    }
                    last.insert(sender, seq);
                    from[sender as usize] += 1;
                    port.release(frame);
                }
                for (sender, &count) in from.iter().enumerate() {
                    consumed[t * THREADS + sender].store(count, Ordering::Release);
                }
                n
            };
            // Frames sent to each queue of the peer port.
            let mut sent_to = [0u64; 2];
            let mut seq = 0;
            while seq < PER_THREAD {
                receive(&mut port);
                let mut batch = Batch::new();
                while seq < PER_THREAD && !batch.is_full() {
                    let Some(mut frame) = port.alloc_tx() else {
                        break;
                    };
                    let sport = 2000 + (seq % 1000) as u16;
                    let len = write_frame(
                        frame.buffer_mut(),
                        peer_mac,
                        my_mac,
                        sport,
                        443,
                        t as u32,
                        seq,
                    );
                    frame.set_len(len);
                    let q = usize::from(rx_queue(Some(&peer_rss), frame.data()));
                    let taken = consumed[(peer * 2 + q) * THREADS + t].load(Ordering::Acquire);
                    if sent_to[q] - taken >= WINDOW {
                        port.release(frame);
                        break;
                    }
                    sent_to[q] += 1;
                    batch.push(frame);
                    seq += 1;
                }
                if batch.is_empty() {
                    thread::yield_now();
                }
                port.tx_burst(&mut batch);
            }
            done.fetch_add(1, Ordering::Release);
            loop {
                let finished = done.load(Ordering::Acquire) == THREADS;
                if receive(&mut port) == 0 {
                    if finished {
                        break;
                    }
                    thread::yield_now();
                }
            }
            (t, sent_to, port.counters())
        }));
    }
    let mut sent = [[0u64; 2]; THREADS];
    for h in handles {
        let (t, sent_to, counters) = h.join().unwrap();
        assert_eq!(counters.tx_frames, PER_THREAD);
        sent[t] = sent_to;
    }
    let elapsed = started.elapsed();
    // Every receiving queue took exactly what each sender sent it.
    for receiver in 0..THREADS {
        for (sender, sent_to) in sent.iter().enumerate() {
            let want = if sender / 2 == receiver / 2 {
                0
            } else {
                sent_to[receiver % 2]
            };
            let got = consumed[receiver * THREADS + sender].load(Ordering::Acquire);
            assert_eq!(got, want, "receiver {receiver}, sender {sender}");
        }
    }
    let c = wire.total_counters();
    eprintln!("stress: {c:?} in {elapsed:?}");
    assert_eq!(c.tx_frames, THREADS as u64 * PER_THREAD);
    assert_eq!(c.rx_frames, c.tx_frames);
    assert_eq!(c.rx_nombuf + c.rx_ring_full + c.lost, 0);
    assert!(wire.all_pools_full());
    assert!(
        elapsed < Duration::from_secs(30),
        "{} frames took {elapsed:?}",
        c.tx_frames
    );
}

/// Sends frames `seqs` of `sender` from `port` to `dst` in one burst; every frame must find a
/// buffer in `port`'s pool.
fn send_burst(port: &mut ThreadedPort, dst: EthernetAddress, sender: u32, seqs: Range<u64>) {
    let src = port.capabilities().mac;
    let mut batch = Batch::new();
    for seq in seqs {
        let mut frame = port.alloc_tx().expect("the sender's pool has a buffer");
        let len = write_frame(frame.buffer_mut(), dst, src, 1, 2, sender, seq);
        frame.set_len(len);
        batch.push(frame);
    }
    let n = batch.len();
    assert_eq!(port.tx_burst(&mut batch), n);
}

/// A small seeded generator for burst sizes and delays (the tests stay reproducible).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn frames_from_two_senders_to_one_receiver_all_arrive_each_sender_in_order() {
    // Two sender threads (ports A and C) send to port B while B's thread drains it. Pools and
    // rings are large enough for every frame, so each sender's frames must all arrive, whole,
    // and in the order it sent them (one ring per sender), however the two interleave.
    const PER_SENDER: u64 = 3_000;
    let wire = ThreadedWire::new(ThreadedWireConfig {
        pool_size: 8_192,
        ring_size: 4_096,
        ..ThreadedWireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let c = wire.add_port(mac(3), 1);
    let mut pb = wire.port(b, 0).unwrap();
    let senders: Vec<_> = [(a, 0u32, 11u64), (c, 1, 12)]
        .into_iter()
        .map(|(id, sender, seed)| {
            let mut port = wire.port(id, 0).unwrap();
            thread::spawn(move || {
                let mut lcg = Lcg(seed);
                let mut seq = 0;
                while seq < PER_SENDER {
                    let n = (1 + lcg.below(32)).min(PER_SENDER - seq);
                    send_burst(&mut port, mac(2), sender, seq..seq + n);
                    seq += n;
                    if lcg.below(4) == 0 {
                        thread::yield_now();
                    }
                }
                port
            })
        })
        .collect();
    let mut next = [0u64; 2];
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().sum::<u64>() < 2 * PER_SENDER {
        assert!(Instant::now() < deadline, "frames missing: got {next:?}");
        let mut batch = Batch::new();
        if pb.rx_burst(&mut batch) == 0 {
            thread::yield_now();
        }
        for frame in batch.drain(..) {
            let (sender, seq) = check_frame(frame.data());
            let expected = &mut next[sender as usize];
            assert_eq!(seq, *expected, "sender {sender}: out of order");
            *expected += 1;
            pb.release(frame);
        }
    }
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(next, [PER_SENDER; 2]);
    let counters = pb.counters();
    assert_eq!(counters.rx_frames, 2 * PER_SENDER);
    assert_eq!(counters.rx_nombuf + counters.rx_ring_full, 0);
    assert!(drain(&mut pb).is_empty());
    assert_eq!(pb.rx_pending(), 0);
    assert!(wire.all_pools_full());
}

#[test]
fn a_receiver_takes_from_each_senders_ring_in_turn() {
    // Both senders' rings hold more than a burst: successive bursts start with a different
    // ring, so neither sender waits until the other's ring is empty.
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let c = wire.add_port(mac(3), 1);
    let (mut pa, mut pb, mut pc) = (
        wire.port(a, 0).unwrap(),
        wire.port(b, 0).unwrap(),
        wire.port(c, 0).unwrap(),
    );
    for round in 0..4 {
        send_burst(&mut pa, mac(2), 0, round * 32..(round + 1) * 32);
        send_burst(&mut pc, mac(2), 1, round * 32..(round + 1) * 32);
    }
    let mut batch = Batch::new();
    let mut firsts = Vec::new();
    let mut next = [0u64; 2];
    while pb.rx_burst(&mut batch) > 0 {
        firsts.push(check_frame(batch[0].data()).0);
        for frame in batch.drain(..) {
            let (sender, seq) = check_frame(frame.data());
            assert_eq!(seq, next[sender as usize]);
            next[sender as usize] += 1;
            pb.release(frame);
        }
    }
    assert_eq!(next, [128, 128]);
    // Eight full bursts, the starting ring alternating.
    assert_eq!(firsts, [0, 1, 0, 1, 0, 1, 0, 1]);
}

#[test]
fn a_parked_receiver_is_woken_by_two_senders_across_many_bursts() {
    // Two sender threads send bursts of 1 to 8 frames to B, each waiting (bounded) until B has
    // taken its previous burst, then sending at once or after a pause, so that bursts land
    // while B polls, goes idle and is parked. Only the senders' wakeups unpark B: a lost
    // wakeup parks it for the whole limit, which it reports; and every frame must arrive.
    const PER_SENDER: u64 = 1_500;
    const LIMIT: Duration = Duration::from_secs(5);
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let c = wire.add_port(mac(3), 1);
    let mut pb = wire.port(b, 0).unwrap();
    // taken[s]: frames of sender s that B has taken.
    let taken: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let senders: Vec<_> = [(a, 0u32, 21u64), (c, 1, 22)]
        .into_iter()
        .map(|(id, sender, seed)| {
            let mut port = wire.port(id, 0).unwrap();
            let taken = Arc::clone(&taken);
            thread::spawn(move || {
                let mut lcg = Lcg(seed);
                let mut seq = 0;
                while seq < PER_SENDER {
                    let n = (1 + lcg.below(8)).min(PER_SENDER - seq);
                    send_burst(&mut port, mac(2), sender, seq..seq + n);
                    seq += n;
                    let sent_at = Instant::now();
                    while taken[sender as usize].load(Ordering::Acquire) < seq {
                        assert!(
                            sent_at.elapsed() < 2 * LIMIT,
                            "sender {sender}: the burst ending at {seq} was never taken"
                        );
                        thread::yield_now();
                    }
                    match lcg.below(4) {
                        0 => {}
                        1 => thread::yield_now(),
                        _ => thread::sleep(Duration::from_micros(lcg.below(200))),
                    }
                }
                port
            })
        })
        .collect();
    assert!(pb.set_rx_waker(thread::current()));
    let mut next = [0u64; 2];
    let mut parks = 0u64;
    let mut batch = Batch::new();
    while next != [PER_SENDER; 2] {
        if pb.rx_burst(&mut batch) > 0 {
            for frame in batch.drain(..) {
                let (sender, seq) = check_frame(frame.data());
                assert_eq!(seq, next[sender as usize], "sender {sender}");
                next[sender as usize] += 1;
                pb.release(frame);
            }
            for (s, &n) in next.iter().enumerate() {
                taken[s].store(n, Ordering::Release);
            }
            continue;
        }
        if !pb.arm_rx_waker() {
            continue;
        }
        let parked = Instant::now();
        thread::park_timeout(LIMIT);
        parks += 1;
        assert!(
            parked.elapsed() < LIMIT,
            "parked for {:?} with frames {next:?} taken of {PER_SENDER} each: wakeup lost",
            parked.elapsed()
        );
    }
    for s in senders {
        s.join().unwrap();
    }
    eprintln!("{parks} parks for {} frames", 2 * PER_SENDER);
    assert_eq!(pb.counters().rx_frames, 2 * PER_SENDER);
    assert!(wire.all_pools_full());
}

#[test]
fn rx_pending_and_counters_are_exact_once_the_threads_are_quiet() {
    // Two sender threads fill B's two rings past its pool while nobody receives: the counters
    // the senders keep for B (delivered, no buffer, ring full) and the frames B takes must
    // give the exact number waiting, before and after B takes some, and after B's port is
    // dropped and taken again (the frames wait in the rings meanwhile).
    const PER_SENDER: u64 = 300;
    let wire = ThreadedWire::new(ThreadedWireConfig {
        pool_size: 256,
        ring_size: 100,
        ..ThreadedWireConfig::default()
    });
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let c = wire.add_port(mac(3), 1);
    let pb = wire.port(b, 0).unwrap();
    let senders: Vec<_> = [(a, 0u32), (c, 1)]
        .into_iter()
        .map(|(id, sender)| {
            let mut port = wire.port(id, 0).unwrap();
            thread::spawn(move || {
                for seq in (0..PER_SENDER).step_by(10) {
                    send_burst(&mut port, mac(2), sender, seq..seq + 10);
                }
                port
            })
        })
        .collect();
    let _senders: Vec<ThreadedPort> = senders.into_iter().map(|s| s.join().unwrap()).collect();

    let c0 = pb.counters();
    // Each ring holds at most 100 and the pool 256 buffers: 200 delivered, the rest dropped.
    assert_eq!(c0.rx_frames, 200, "{c0:?}");
    assert_eq!(c0.rx_ring_full, 2 * PER_SENDER - 200, "{c0:?}");
    assert_eq!(c0.rx_nombuf, 0, "{c0:?}");
    assert_eq!(pb.rx_pending(), 200);
    assert_eq!(wire.rx_pending(b, 0).unwrap(), 200);
    assert_eq!(wire.counters(b, 0).unwrap(), c0);
    assert_accounted(&wire.total_counters());

    // B takes one burst, gives it back, and its port goes away and comes back.
    let mut pb = pb;
    let mut batch = Batch::new();
    let took = pb.rx_burst(&mut batch);
    assert_eq!(took, 32);
    for frame in batch.drain(..) {
        pb.release(frame);
    }
    assert_eq!(pb.rx_pending(), 200 - took);
    drop(pb);
    assert_eq!(wire.rx_pending(b, 0).unwrap(), 200 - took);
    let mut pb = wire.port(b, 0).unwrap();
    assert_eq!(pb.rx_pending(), 200 - took);
    assert_eq!(pb.counters(), c0, "taking frames changes no counter");
    let rest = drain(&mut pb);
    assert_eq!(rest.len(), 200 - took);
    // Each sender's frames still come in order, the first 100 of each.
    let mut next = [0u64; 2];
    let mut seen = [0u64; 2];
    for f in &rest {
        let (sender, seq) = check_frame(f);
        assert!(seq >= next[sender as usize], "sender {sender} out of order");
        assert!(seq < 100, "frame {seq} of {sender} was beyond its ring");
        next[sender as usize] = seq + 1;
        seen[sender as usize] += 1;
    }
    assert_eq!(seen.iter().sum::<u64>(), 200 - took as u64);
    assert_eq!(pb.rx_pending(), 0);
    assert_eq!(wire.rx_pending(b, 0).unwrap(), 0);
    let total = wire.total_counters();
    assert_eq!(total.tx_frames, 2 * PER_SENDER);
    assert_accounted(&total);
    assert!(wire.all_pools_full());
}

#[test]
fn a_port_added_while_others_run_gets_rings_both_ways() {
    // A (parking between bursts) and B (polling) run on threads of their own, echoing every
    // frame back to its sender, when C is added. C sends to A and B and must get their echoes:
    // A and B pick up C's rings, both ways, on their own, a parked A woken by C's frame.
    const LIMIT: Duration = Duration::from_secs(10);
    const PER_PEER: u64 = 50;
    let wire = ThreadedWire::new(ThreadedWireConfig::default());
    let a = wire.add_port(mac(1), 1);
    let b = wire.add_port(mac(2), 1);
    let stop = Arc::new(AtomicBool::new(false));
    let echoes: Vec<_> = [(a, true), (b, false)]
        .into_iter()
        .map(|(id, parks)| {
            let mut port = wire.port(id, 0).unwrap();
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                if parks {
                    assert!(port.set_rx_waker(thread::current()));
                }
                let me = port.capabilities().mac;
                let mut echoed = 0u64;
                let mut batch = Batch::new();
                while !stop.load(Ordering::Acquire) {
                    if port.rx_burst(&mut batch) == 0 {
                        if parks && port.arm_rx_waker() {
                            // The end of the test unparks it too.
                            thread::park_timeout(LIMIT);
                        } else {
                            thread::yield_now();
                        }
                        continue;
                    }
                    let mut out = Batch::new();
                    for mut frame in batch.drain(..) {
                        let data = frame.data_mut();
                        let src: [u8; 6] = data[6..12].try_into().unwrap();
                        data[..6].copy_from_slice(&src);
                        data[6..12].copy_from_slice(me.as_bytes());
                        // Received frames belong to this queue's pool: sent back as they are.
                        out.push(frame);
                        echoed += 1;
                    }
                    port.tx_burst(&mut out);
                }
                (echoed, port)
            })
        })
        .collect();
    // Both run (A likely parked) before C exists.
    thread::sleep(Duration::from_millis(20));
    let c = wire.add_port(mac(3), 1);
    let mut pc = wire.port(c, 0).unwrap();
    let mut got = [0u64; 2];
    let started = Instant::now();
    for seq in 0..PER_PEER {
        send_burst(&mut pc, mac(1), 0, seq..seq + 1);
        send_burst(&mut pc, mac(2), 1, seq..seq + 1);
        while got.iter().sum::<u64>() < 2 * (seq + 1) {
            assert!(
                started.elapsed() < LIMIT,
                "echoes missing: {got:?} at {seq}"
            );
            for f in drain(&mut pc) {
                let (sender, echoed_seq) = check_frame(&f);
                assert_eq!(&f[6..12], mac(sender as u8 + 1).as_bytes());
                assert_eq!(echoed_seq, got[sender as usize]);
                got[sender as usize] += 1;
            }
            thread::yield_now();
        }
    }
    stop.store(true, Ordering::Release);
    for h in echoes {
        h.thread().unpark();
        let (echoed, port) = h.join().unwrap();
        assert_eq!(echoed, PER_PEER, "{:?}", port.port_id());
        let counters = port.counters();
        assert_eq!(counters.rx_frames, PER_PEER);
        assert_eq!(counters.tx_frames, PER_PEER);
    }
    assert_eq!(got, [PER_PEER; 2]);
    assert_accounted(&wire.total_counters());
    assert!(wire.all_pools_full());
}

#[test]
fn a_port_reuses_its_transmit_buffers_and_leaves_the_rest_of_its_pool_to_its_senders() {
    // Pool 64: a port caches up to 8 of its buffers for its own transmissions.
    let (wire, [_, b], mut pa, mut pb) = two_ports(ThreadedWireConfig {
        pool_size: 64,
        ring_size: 64,
        ..ThreadedWireConfig::default()
    });
    let mut buf = vec![0u8; 2048];
    let mut seq = 0;
    let mut send = |from: &mut ThreadedPort, to: EthernetAddress, src: EthernetAddress| {
        let len = write_frame(&mut buf, to, src, 1, 2, 0, seq);
        seq += 1;
        send_bytes(from, &buf[..len])
    };

    // A transmits steadily: its buffers come back, cached or pooled, and count as free.
    for _ in 0..100 {
        assert!(send(&mut pa, mac(2), mac(1)));
        assert_eq!(drain(&mut pb).len(), 1);
    }
    assert_eq!(pa.pool_stats().free, 64);
    assert!(wire.all_pools_full());

    // B has only received: frames for it find its whole pool.
    for _ in 0..70 {
        assert!(send(&mut pa, mac(2), mac(1)));
    }
    let c = pb.counters();
    assert_eq!((c.rx_frames - 100, c.rx_nombuf), (64, 6));
    assert_eq!(drain(&mut pb).len(), 64);

    // Once B has transmitted a burst of 10, 8 of those buffers (the most it keeps) wait for
    // its next transmission and the rest of its pool takes arrivals.
    let mut burst = Batch::new();
    for i in 0..10 {
        let mut frame = pb.alloc_tx().unwrap();
        let len = write_frame(frame.buffer_mut(), mac(1), mac(2), 1, 2, 1, i);
        frame.set_len(len);
        burst.push(frame);
    }
    assert_eq!(pb.tx_burst(&mut burst), 10);
    assert_eq!(drain(&mut pa).len(), 10);
    assert_eq!(pb.pool_stats().free, 64);
    for _ in 0..70 {
        assert!(send(&mut pa, mac(2), mac(1)));
    }
    let c = pb.counters();
    assert_eq!((c.rx_frames - 164, c.rx_nombuf - 6), (56, 14));
    // The cached buffers still serve B's own transmissions while its pool is empty.
    assert!(send(&mut pb, mac(1), mac(2)));
    assert_eq!(drain(&mut pa).len(), 1);

    // Dropped, B gives its cache back to its pool.
    assert_eq!(drain(&mut pb).len(), 56);
    drop(pb);
    assert_eq!(wire.pool_stats(b, 0).unwrap().free, 64);
    assert!(wire.all_pools_full());
    assert_accounted(&wire.total_counters());
}
