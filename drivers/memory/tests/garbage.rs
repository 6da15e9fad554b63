//! Arbitrary bytes on the wire: nothing panics and no buffer is lost.

mod common;

use common::*;
use proptest::prelude::*;
use shardnet::port::{Batch, Frame, Port};
use shardnet::time::{Duration, Instant};
use shardnet::wire::EthernetAddress;
use shardnet_memory::{Impairments, Wire, WireConfig};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn garbage_frames_never_panic_and_every_buffer_comes_back(
        seed: u64,
        frames in proptest::collection::vec(
            (0u8..4, proptest::collection::vec(any::<u8>(), 0..1600)),
            1..40,
        ),
        corrupt in 0.0f64..1.0,
        duplicate in 0.0f64..0.5,
    ) {
        let wire = Wire::new(WireConfig {
            pool_size: 8,
            mtu: 1500,
            seed,
            impairments: Impairments {
                corrupt,
                duplicate,
                jitter: Duration::from_micros(100),
                ..Impairments::NONE
            },
            ..WireConfig::default()
        });
        let a = wire.add_port(mac(1), 1);
        let b = wire.add_port(mac(2), 3);
        let mut pa = wire.port(a, 0).expect("a");
        let mut pb: Vec<_> = (0..3).map(|q| wire.port(b, q).expect("b")).collect();
        let mut now = Instant::ZERO;
        for (kind, mut bytes) in frames {
            // Point most frames at B (unicast or broadcast) so they cross the wire.
            let dst = match kind {
                0 => Some(mac(2)),
                1 => Some(EthernetAddress::BROADCAST),
                2 => Some(EthernetAddress([0x01, 0, 0x5e, 1, 2, 3])),
                _ => None,
            };
            if let (Some(dst), true) = (dst, bytes.len() >= 6) {
                bytes[..6].copy_from_slice(dst.as_bytes());
            }
            if let Some(mut frame) = pa.alloc_tx() {
                let len = bytes.len().min(frame.capacity());
                frame.buffer_mut()[..len].copy_from_slice(&bytes[..len]);
                frame.set_len(len);
                let mut batch = Batch::new();
                batch.push(frame);
                pa.tx_burst(&mut batch);
                for frame in batch.drain(..) {
                    pa.release(frame);
                }
            }
            now += Duration::from_micros(30);
            wire.advance_to(now);
            for port in &mut pb {
                for frame in drain(port) {
                    prop_assert!(frame.len() <= 1514);
                }
            }
        }
        while let Some(t) = wire.next_event() {
            wire.advance_to(t);
            for port in &mut pb {
                drain(port);
            }
        }
        prop_assert!(wire.all_pools_full());
    }
}
