//! A bulk transfer over the memory wire with 1 % loss: every byte arrives intact (checked
//! against the generator, and by a hash of the whole stream), and the run reports goodput (in
//! virtual time on a 10 Gbit/s, 50 us link, and in wall-clock time) and retransmissions.
//!
//! 1 GiB when built with optimisations (`cargo test --release --test tcp_bulk`, which
//! `scripts/test.sh` runs); 8 MiB in a debug build, where 1 GiB would take many minutes.
//! `SHARDNET_BULK_MIB` overrides the size.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::tcp::{RecvError, TcpConfig};
use shardnet::time::Duration;
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::sim::Simulation;
use shardnet_memory::{Impairments, MemoryPort, Wire, WireConfig};
use std::hash::Hasher;
use std::net::SocketAddrV4;

const MAC_C: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
const MAC_S: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
const IP_C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_S: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 ^ offset as u8
}

fn stack(mac: EthernetAddress, ip: Ipv4Addr) -> Shard {
    let mut config = ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    config.tcp = TcpConfig {
        send_buffer: 4 << 20,
        recv_buffer: 4 << 20,
        max_ooo_ranges: 256,
        ..TcpConfig::default()
    };
    Shard::new(config)
}

#[test]
fn bulk_transfer_with_one_percent_loss_arrives_intact() {
    let mib: u64 = std::env::var("SHARDNET_BULK_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 8 } else { 1024 });
    let total = mib << 20;
    let wire = Wire::new(WireConfig {
        seed: 42,
        pool_size: 8192,
        tx_ring_size: 4096,
        ..WireConfig::default()
    });
    let (pc, ps) = (wire.add_port(MAC_C, 1), wire.add_port(MAC_S, 1));
    let (port_c, port_s) = (wire.port(pc, 0).unwrap(), wire.port(ps, 0).unwrap());
    let mut sim: Simulation<MemoryPort> = Simulation::new(wire);
    sim.add(stack(MAC_C, IP_C), port_c);
    sim.add(stack(MAC_S, IP_S), port_s);
    let now = sim.now();
    sim.nodes[0].shard.ping(now, IP_S, 1, 1, b"arp").unwrap();
    while sim.step().unwrap() {}
    sim.wire.set_impairments(Impairments {
        loss: 0.01,
        delay: Duration::from_micros(50),
        bandwidth: core::num::NonZeroU64::new(10_000_000_000 / 8),
        ..Impairments::NONE
    });

    let listener = sim.nodes[1].shard.tcp().listen(5001, 8).unwrap();
    let now = sim.now();
    let client = sim.nodes[0]
        .shard
        .tcp_connect(now, SocketAddrV4::new(IP_S, 5001))
        .unwrap();
    let mut server = None;
    let (mut sent, mut received) = (0u64, 0u64);
    let (mut h_sent, mut h_recv) = (
        std::hash::DefaultHasher::new(),
        std::hash::DefaultHasher::new(),
    );
    let mut eof = false;
    let start_virtual = sim.now();
    let start_wall = std::time::Instant::now();
    let done = sim
        .run_until(start_virtual + Duration::from_secs(3600), |s| {
            if let Some(tcb) = s.nodes[0].shard.tcp().get_mut(client) {
                while sent < total {
                    let n = tcb
                        .send_with((total - sent) as usize, |buf| {
                            for (i, b) in buf.iter_mut().enumerate() {
                                *b = byte_at(sent + i as u64);
                            }
                            h_sent.write(buf);
                            buf.len()
                        })
                        .unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    sent += n as u64;
                }
                if sent == total {
                    tcb.shutdown_write();
                }
            }
            if server.is_none() {
                server = s.nodes[1].shard.tcp().accept(listener).ok();
            }
            if let Some(h) = server {
                let tcb = s.nodes[1].shard.tcp().get_mut(h).unwrap();
                loop {
                    let at = received;
                    match tcb.recv_with(|data| {
                        for (i, b) in data.iter().enumerate() {
                            assert_eq!(
                                *b,
                                byte_at(at + i as u64),
                                "byte {} corrupted",
                                at + i as u64
                            );
                        }
                        h_recv.write(data);
                        data.len()
                    }) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => received += n as u64,
                        Err(RecvError::WouldBlock) => break,
                        Err(e) => panic!("receive failed: {}", e.errno()),
                    }
                }
            }
            eof
        })
        .unwrap();
    let wall = start_wall.elapsed();
    let virtual_time = sim.now() - start_virtual;
    assert!(done, "transfer did not finish: {received} of {total} bytes");
    assert_eq!(received, total);
    assert_eq!(h_sent.finish(), h_recv.finish(), "stream hash differs");
    let tcb = sim.nodes[0].shard.tcp().get(client).unwrap();
    let st = *tcb.stats();
    let wire = sim.wire.total_counters();
    let goodput_virtual = total as f64 * 8.0 / virtual_time.as_secs_f64() / 1e9;
    let goodput_wall = total as f64 * 8.0 / wall.as_secs_f64() / 1e9;
    println!(
        "bulk: {mib} MiB with 1% loss on a 10 Gbit/s, 50 us memory wire: hash intact; \
         goodput {goodput_virtual:.2} Gbit/s in virtual time ({:.3} s), {goodput_wall:.2} Gbit/s wall clock ({:.2} s); \
         {} segments sent, {} retransmitted ({:.2}%), {} fast retransmits, {} timeouts; wire lost {} frames",
        virtual_time.as_secs_f64(),
        wall.as_secs_f64(),
        st.segs_out,
        st.retrans_segs,
        100.0 * st.retrans_segs as f64 / st.segs_out.max(1) as f64,
        st.fast_retransmits,
        st.rto_count,
        wire.lost
    );
    assert!(st.fast_retransmits > 0, "1% loss must have caused recovery");
}
