//! A capture of two stacks talking on the memory wire, read back by `tcpdump -r`.
//!
//! `scripts/test.sh` installs tcpdump and sets `SHARDNET_REQUIRE_TOOLS=1`, so there this test
//! fails rather than skips when tcpdump is missing.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::time::{Duration, Instant};
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::sim::Simulation;
use shardnet_memory::{MemoryPort, Wire, WireConfig};
use shardnet_pcap::{Clock, PcapPort};
use std::io::Write;
use std::net::SocketAddrV4;
use std::process::Command;

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
const MAC_B: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

type Captured = PcapPort<MemoryPort, Box<dyn Write>>;

fn shard(mac: EthernetAddress, ip: Ipv4Addr) -> Shard {
    Shard::new(ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    }))
}

fn tcpdump() -> Option<&'static str> {
    let found = Command::new("tcpdump").arg("--version").output().is_ok();
    if !found && std::env::var_os("SHARDNET_REQUIRE_TOOLS").is_some() {
        panic!("tcpdump is not installed (scripts/test.sh installs it)");
    }
    found.then_some("tcpdump")
}

#[test]
fn tcpdump_reads_the_capture_of_arp_ping_and_udp() {
    let Some(tcpdump) = tcpdump() else {
        eprintln!("tcpdump not installed: skipped (set SHARDNET_REQUIRE_TOOLS=1 to fail instead)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("shardnet-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.pcap");

    let wire = Wire::new(WireConfig {
        seed: 3,
        ..WireConfig::default()
    });
    let (pa, pb) = (wire.add_port(MAC_A, 1), wire.add_port(MAC_B, 1));
    let file: Box<dyn Write> = Box::new(std::io::BufWriter::new(
        std::fs::File::create(&path).unwrap(),
    ));
    let port_a: Captured = PcapPort::new(
        wire.port(pa, 0).unwrap(),
        file,
        Clock::Manual(Duration::ZERO),
    )
    .unwrap();
    let sink: Box<dyn Write> = Box::new(std::io::sink());
    let port_b: Captured = PcapPort::new(
        wire.port(pb, 0).unwrap(),
        sink,
        Clock::Manual(Duration::ZERO),
    )
    .unwrap();
    let mut sim = Simulation::new(wire).with_time_hook(|p: &mut Captured, now: Instant| {
        p.set_time(Duration::from_nanos(now.as_nanos()));
    });
    sim.add(shard(MAC_A, IP_A), port_a);
    sim.add(shard(MAC_B, IP_B), port_b);

    // ARP + ping.
    let now = sim.now();
    sim.nodes[0]
        .shard
        .ping(now, IP_B, 7, 1, b"0123456789abcdef")
        .unwrap();
    while sim.step().unwrap() {}
    let mut buf = [0u8; 64];
    assert!(sim.nodes[0].shard.recv_echo_reply(&mut buf).is_some());
    // UDP both ways, one datagram to a closed port.
    let b = sim.nodes[1].shard.udp().open().unwrap();
    sim.nodes[1]
        .shard
        .udp_bind(b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9000))
        .unwrap();
    let a = sim.nodes[0].shard.udp().open().unwrap();
    sim.nodes[0]
        .shard
        .udp_bind(a, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 40000))
        .unwrap();
    sim.nodes[0]
        .shard
        .udp_send_to(a, Some(SocketAddrV4::new(IP_B, 9000)), b"hello")
        .unwrap();
    sim.nodes[0]
        .shard
        .udp_send_to(a, Some(SocketAddrV4::new(IP_B, 9001)), b"nobody")
        .unwrap();
    while sim.step().unwrap() {}
    let r = sim.nodes[1].shard.udp().recv_from(b, &mut buf).unwrap();
    sim.nodes[1]
        .shard
        .udp_send_to(b, Some(r.from), b"world!")
        .unwrap();
    while sim.step().unwrap() {}

    let node = sim.nodes.remove(0);
    let frames = node.port.frames_written();
    let (_, mut writer) = node.port.into_parts();
    writer.flush().unwrap();
    drop(writer);

    let out = Command::new(tcpdump)
        .args(["-r"])
        .arg(&path)
        .args(["-nn", "-e", "-t"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tcpdump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len() as u64,
        frames,
        "one line per captured frame:\n{text}"
    );
    let expect = [
        // A's gratuitous ARP, A resolving B, B's gratuitous ARP, B's reply to A.
        "02:5e:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.18.0.1 tell 198.18.0.1",
        "ethertype ARP (0x0806), length 42: Request who-has 198.18.0.2 tell 198.18.0.1",
        "02:5e:00:00:00:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 198.18.0.2 tell 198.18.0.2",
        "02:5e:00:00:00:02 > 02:5e:00:00:00:01, ethertype ARP (0x0806), length 42: Reply 198.18.0.2 is-at 02:5e:00:00:00:02",
        "198.18.0.1 > 198.18.0.2: ICMP echo request, id 7, seq 1, length 24",
        "198.18.0.2 > 198.18.0.1: ICMP echo reply, id 7, seq 1, length 24",
        "198.18.0.1.40000 > 198.18.0.2.9000: UDP, length 5",
        "198.18.0.1.40000 > 198.18.0.2.9001: UDP, length 6",
        "198.18.0.2 > 198.18.0.1: ICMP 198.18.0.2 udp port 9001 unreachable",
        "198.18.0.2.9000 > 198.18.0.1.40000: UDP, length 6",
    ];
    let mut at = 0;
    for want in expect {
        let found = lines[at..].iter().position(|l| l.contains(want));
        let Some(i) = found else {
            panic!("tcpdump output lacks {want:?} (in order):\n{text}")
        };
        at += i + 1;
    }
    assert!(
        !text.contains("bad cksum") && !text.contains("wrong"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
