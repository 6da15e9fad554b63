//! The port layer over two `net_ring` devices joined back to back: configuration, capabilities,
//! raw frames both ways on every queue, pool accounting, device counters.

mod common;

use shardnet::port::{Batch, Frame, Port};
use shardnet::wire::EthernetAddress;
use shardnet_dpdk::{DpdkDevice, Eal, Error, PortConfig, ring_pair};

#[test]
fn eal_initialises_once() {
    let eal = common::eal();
    assert!(std::ptr::eq(Eal::get().unwrap(), eal));
    assert_eq!(
        Eal::init(&Eal::default_args()).unwrap_err(),
        Error::EalAlreadyInitialized
    );
}

#[test]
fn frames_cross_a_ring_pair_on_every_queue_and_return_to_their_pools() {
    let eal = common::eal();
    let (a, b) = ring_pair(eal, "rp", 3, 512).unwrap();
    let mac_a = EthernetAddress([2, 0, 0, 0, 0xa, 1]);
    let config = |mac| PortConfig {
        queues: 3,
        pool_size: 1023,
        mac: Some(mac),
        ..PortConfig::default()
    };
    let (dev_a, mut ports_a) = DpdkDevice::open(eal, a, &config(mac_a)).unwrap();
    let (dev_b, mut ports_b) =
        DpdkDevice::open(eal, b, &config(EthernetAddress([2, 0, 0, 0, 0xb, 1]))).unwrap();
    assert_eq!(dev_a.driver_name(), "net_ring");
    assert!(dev_a.link().unwrap().up);
    let caps = ports_a[2].capabilities().clone();
    assert_eq!(caps.mac, mac_a);
    assert_eq!((caps.queue, caps.queue_count, caps.pool_size), (2, 3, 1023));
    // The ring PMD neither hashes nor checks checksums: nothing is claimed.
    assert_eq!(caps.rss, None);
    assert_eq!(caps.checksum, Default::default());
    assert_eq!(caps.mtu, 1500);

    for q in 0..3 {
        let (tx, rx) = (&mut ports_a[q], &mut ports_b[q]);
        let mut batch = Batch::new();
        for i in 0..20u8 {
            let mut f = tx.alloc_tx().unwrap();
            assert!(f.capacity() >= 2048);
            let len = 60 + usize::from(i) * 50;
            f.buffer_mut()[..len].fill(i ^ q as u8);
            f.set_len(len);
            assert_eq!(f.data().len(), len);
            batch.push(f);
        }
        assert_eq!(tx.pool_stats().free, 1023 - 20);
        assert_eq!(tx.tx_burst(&mut batch), 20);
        assert!(batch.is_empty());
        let mut got = Batch::new();
        let mut n = 0;
        while n < 20 {
            let k = rx.rx_burst(&mut got);
            assert!(k > 0, "queue {q}: only {n} of 20 frames arrived");
            n += k;
        }
        for (i, f) in got.drain(..).enumerate() {
            assert_eq!(f.data().len(), 60 + i * 50);
            assert!(f.data().iter().all(|&x| x == i as u8 ^ q as u8));
            rx.release(f);
        }
        // Nothing crossed to another queue.
        for (other, p) in ports_b.iter_mut().enumerate() {
            if other != q {
                assert_eq!(p.rx_burst(&mut got), 0);
            }
        }
        // The frames went back to A's pool, which B freed them into.
        assert_eq!(ports_a[q].pool_stats().free, 1023);
    }
    // And the other way.
    let mut batch = Batch::new();
    let mut f = ports_b[1].alloc_tx().unwrap();
    f.buffer_mut()[..64].copy_from_slice(&[7; 64]);
    f.set_len(64);
    batch.push(f);
    assert_eq!(ports_b[1].tx_burst(&mut batch), 1);
    let mut got = Batch::new();
    assert_eq!(ports_a[1].rx_burst(&mut got), 1);
    assert_eq!(got[0].data(), &[7; 64]);
    drop(got);
    assert_eq!(ports_b[1].pool_stats().free, 1023);

    let stats = dev_a.stats().unwrap();
    assert_eq!(stats.tx_packets, 60);
    assert_eq!(stats.rx_packets, 1);
    assert_eq!(dev_b.stats().unwrap().rx_packets, 60);
    assert_eq!(ports_a[0].counters().tx_frames, 20);
}

#[test]
fn a_full_ring_keeps_the_frames_it_could_not_take() {
    let eal = common::eal();
    // Rings of 64 slots hold 63 frames.
    let (a, _b) = ring_pair(eal, "full", 1, 64).unwrap();
    let (_dev, mut ports) = DpdkDevice::open(
        eal,
        a,
        &PortConfig {
            pool_size: 255,
            ..PortConfig::default()
        },
    )
    .unwrap();
    let p = &mut ports[0];
    let mut left = 0;
    let mut sent = 0;
    for _ in 0..2 {
        let mut batch = Batch::new();
        while !batch.is_full() {
            let mut f = p.alloc_tx().unwrap();
            f.set_len(60);
            batch.push(f);
        }
        sent += p.tx_burst(&mut batch);
        left += batch.len();
    }
    // 32 went, then 31 of the next 32: one is left in the batch.
    assert_eq!((sent, left), (63, 1));
    assert_eq!(p.counters().tx_ring_full, 1);
    // The unsent frames went back to the pool; the sent ones wait in the ring.
    assert_eq!(p.pool_stats().free, 255 - 63);
}

#[test]
fn too_many_queues_is_refused() {
    let eal = common::eal();
    let (a, _b) = ring_pair(eal, "toomany", 2, 64).unwrap();
    let err = DpdkDevice::open(
        eal,
        a,
        &PortConfig {
            queues: 3,
            ..PortConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
}

#[test]
fn the_ring_pmd_has_no_rx_interrupts_so_the_port_has_no_rx_waker() {
    let eal = common::eal();
    let (a, _b) = ring_pair(eal, "intr", 1, 64).unwrap();
    let (dev, mut ports) = DpdkDevice::open(
        eal,
        a,
        &PortConfig {
            pool_size: 255,
            ..PortConfig::default()
        },
    )
    .unwrap();
    // ethdev answers ENOTSUP: net_ring has no rx_queue_intr_enable.
    assert_eq!(dev.rx_interrupts_supported(0), Ok(false));
    // A queue that does not exist is an error, not a "no".
    assert!(dev.rx_interrupts_supported(7).is_err());
    // So the port cannot wake a sleeping shard: the runtime caps its sleeps instead.
    assert!(!ports[0].set_rx_waker(std::thread::current()));
}
