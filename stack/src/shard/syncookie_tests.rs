//! SYN cookies in a shard: a flood of spoofed SYNs (frames straight into `handle_frame`)
//! leaves the tables as they were, and a legitimate client still connects through a cookie.

use super::*;
use crate::ip::Ipv4Cidr;
use crate::port::{Transmit, VecTransmit};
use crate::shard::tcp::SynCookieMode;
use etherparse::{PacketBuilder, TcpOptionElement};

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_B: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
const MAC_GW: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xfe]);
const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn shard() -> Shard {
    let iface = InterfaceConfig {
        mac: MAC_A,
        cidr: Ipv4Cidr::new(IP_A, 24).unwrap(),
        gateway: Some(GATEWAY),
        mtu: 1500,
        ttl: 64,
    };
    let mut config = ShardConfig::new(iface);
    config.announce = false;
    let mut s = Shard::new(config);
    s.arp.update(t(0), IP_B, MAC_B, true);
    s.arp.update(t(0), GATEWAY, MAC_GW, true);
    s
}

/// Counts frames and keeps none (a wire that takes everything).
#[derive(Default)]
struct Sink {
    buf: Vec<u8>,
    frames: usize,
}

impl Transmit for Sink {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, write: F) -> bool {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        write(&mut self.buf[..len]);
        self.frames += 1;
        true
    }
}

/// A TCP frame from `src` to A:80.
fn frame(
    out: &mut Vec<u8>,
    src: (Ipv4Addr, u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    options: &[TcpOptionElement],
    payload: &[u8],
) {
    let mut b = PacketBuilder::ethernet2(MAC_B.0, MAC_A.0)
        .ipv4(src.0.octets(), IP_A.octets(), 64)
        .tcp(src.1, 80, seq, 65535);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let b = b.options(options).unwrap();
    out.clear();
    b.write(out, payload).unwrap();
}

fn tcp_of(frame: &[u8]) -> (etherparse::Ipv4Header, etherparse::TcpHeader, Vec<u8>) {
    let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4: {frame:02x?}")
    };
    let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("not TCP")
    };
    (
        ip.header().to_header(),
        tcp.to_header(),
        tcp.payload().to_vec(),
    )
}

/// The TCP segments among `frames` (ARP refreshes skipped).
fn segments(frames: &[Vec<u8>]) -> Vec<(etherparse::Ipv4Header, etherparse::TcpHeader, Vec<u8>)> {
    frames
        .iter()
        .filter(|f| f.get(12..14) == Some(&[0x08, 0x00]))
        .map(|f| tcp_of(f))
        .collect()
}

fn timestamps(h: &etherparse::TcpHeader) -> Option<(u32, u32)> {
    h.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::Timestamp(a, b)) => Some((a, b)),
        _ => None,
    })
}

/// A small PRNG (xorshift64*) for spoofed addresses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Connects from B:5555 with the options of a Linux client, through whatever the listener
/// answers (a request or a cookie), and exchanges data both ways.
fn legitimate_client(s: &mut Shard, l: tcp::ListenHandle, now: u64) {
    let client = (IP_B, 5555);
    let mut f = Vec::new();
    let opts = [
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(1000, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ];
    frame(&mut f, client, 7000, None, true, &opts, &[]);
    s.handle_frame(t(now), &f, RxOffload::default());
    let mut out = VecTransmit::default();
    s.poll_transmit(t(now), &mut out);
    let (_, synack, _) = segments(&out.frames)
        .into_iter()
        .find(|(ip, h, _)| ip.destination == IP_B.octets() && h.destination_port == 5555)
        .expect("a SYN-ACK for the legitimate client");
    assert!(synack.syn && synack.ack);
    assert_eq!(synack.acknowledgment_number, 7001);
    let iss = synack.sequence_number;
    let (tsval, _) = timestamps(&synack).expect("timestamps offered back");
    // The final ACK carries the first data.
    let ts = [
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
        TcpOptionElement::Timestamp(1001, tsval),
    ];
    frame(
        &mut f,
        client,
        7001,
        Some(iss.wrapping_add(1)),
        false,
        &ts,
        b"hello",
    );
    s.handle_frame(t(now + 1), &f, RxOffload::default());
    let c = s.tcp().accept(l).expect("the connection is accepted");
    let tcb = s.tcp().get_mut(c).unwrap();
    // Window scale and SACK survived the handshake (in the timestamp, for a cookie).
    assert_eq!(tcb.mss().len(), 1460);
    let mut buf = [0u8; 16];
    let n = tcb.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    tcb.send(b"world").unwrap();
    let mut out = VecTransmit::default();
    s.poll_transmit(t(now + 2), &mut out);
    let reply = segments(&out.frames)
        .into_iter()
        .find(|(ip, h, p)| {
            ip.destination == IP_B.octets() && h.destination_port == 5555 && !p.is_empty()
        })
        .expect("the reply");
    assert_eq!(reply.2, b"world");
    assert_eq!(reply.1.sequence_number, iss.wrapping_add(1));
    assert_eq!(reply.1.acknowledgment_number, 7006);
}

#[test]
fn syn_flood_leaves_the_tables_unchanged_and_a_client_connects_through_a_cookie() {
    let flood: u32 = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let mut s = shard();
    let l = s.tcp().listen(80, 128).unwrap();
    assert!(s.tcp().set_syn_queue_limit(l, 64));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut f = Vec::new();
    let mut sink = Sink::default();
    let opts = [TcpOptionElement::MaximumSegmentSize(1460)];
    let spoofed = |s: &mut Shard, f: &mut Vec<u8>, rng: &mut Rng, now: u64| {
        let r = rng.next();
        // Random sources outside the /24 (routed via the gateway), random ports and ISNs.
        let ip = Ipv4Addr::from_bits(0xc613_0000 | (r as u32 & 0xffff));
        frame(
            f,
            (ip, (r >> 16) as u16 | 1024),
            (r >> 32) as u32,
            None,
            true,
            &opts,
            &[],
        );
        s.handle_frame(t(now), f, RxOffload::default());
    };
    // Fill the SYN queue, then measure.
    for _ in 0..64 {
        spoofed(&mut s, &mut f, &mut rng, 10);
    }
    s.poll_transmit(t(10), &mut sink);
    let before = s.tcp_endpoints().usage();
    assert_eq!(s.tcp_endpoints().request_count(), 64);
    let started = std::time::Instant::now();
    for i in 0..flood {
        spoofed(&mut s, &mut f, &mut rng, 10 + u64::from(i) / 100_000);
        if i % 256 == 255 {
            s.poll_transmit(t(10 + u64::from(i) / 100_000), &mut sink);
        }
    }
    let elapsed = started.elapsed();
    let end = 10 + u64::from(flood) / 100_000;
    s.poll_transmit(t(end), &mut sink);
    let after = s.tcp_endpoints().usage();
    println!(
        "SYN flood: {flood} SYNs in {elapsed:?} ({:.0} SYN/s), {} frames out; tables before {before:?} after {after:?}",
        f64::from(flood) / elapsed.as_secs_f64(),
        sink.frames
    );
    assert_eq!(before, after, "the flood grew the tables");
    let stats = s.stats();
    assert_eq!(stats.tcp_ext.syncookies_sent, u64::from(flood));
    assert_eq!(stats.tcp_ext.req_q_full_do_cookies, u64::from(flood));
    assert_eq!(stats.tcp_ext.listen_drops, 0);
    // Every SYN got its SYN-ACK (64 requests + the cookies).
    assert_eq!(sink.frames, flood as usize + 64);
    // The legitimate client gets a cookie and connects.
    legitimate_client(&mut s, l, end + 1);
    let stats = s.stats();
    assert_eq!(stats.tcp_ext.syncookies_recv, 1);
    assert_eq!(stats.tcp_ext.syncookies_failed, 0);
    assert_eq!(s.tcp_endpoints().tcb_count(), 1);
}

#[test]
fn forged_or_stale_cookie_acks_are_reset_and_counted() {
    let mut s = shard();
    let l = s.tcp().listen(80, 128).unwrap();
    s.tcp().set_syncookies(SynCookieMode::Always);
    let mut f = Vec::new();
    // Before any cookie was sent, ACKs are not checked as cookies (Linux
    // tcp_synq_no_recent_overflow): a plain RST, nothing counted.
    frame(&mut f, (IP_B, 6000), 50, Some(12345), false, &[], &[]);
    s.handle_frame(t(1), &f, RxOffload::default());
    let mut out = VecTransmit::default();
    s.poll_transmit(t(1), &mut out);
    assert!(segments(&out.frames)[0].1.rst);
    assert_eq!(s.stats().tcp_ext.syncookies_failed, 0);
    // With cookies in use, every SYN gets one and no request is kept.
    frame(&mut f, (IP_B, 6000), 49, None, true, &[], &[]);
    s.handle_frame(t(2), &f, RxOffload::default());
    let mut out = VecTransmit::default();
    s.poll_transmit(t(2), &mut out);
    let (_, synack, _) = segments(&out.frames).remove(0);
    assert_eq!(s.tcp_endpoints().request_count(), 0);
    // Without timestamps the cookie keeps no window scale or SACK: none are offered.
    assert!(synack.options_iterator().all(|o| matches!(
        o,
        Ok(TcpOptionElement::MaximumSegmentSize(_) | TcpOptionElement::Noop)
    )));
    // A forged ACK (wrong cookie) is reset and counted.
    frame(
        &mut f,
        (IP_B, 6000),
        50,
        Some(synack.sequence_number.wrapping_add(7777)),
        false,
        &[],
        &[],
    );
    s.handle_frame(t(3), &f, RxOffload::default());
    let mut out = VecTransmit::default();
    s.poll_transmit(t(3), &mut out);
    assert!(segments(&out.frames)[0].1.rst);
    assert_eq!(s.stats().tcp_ext.syncookies_failed, 1);
    // The genuine ACK, 3 minutes later: the cookie is stale (more than 2 counter periods).
    let stale = t(3 + 180_000);
    frame(
        &mut f,
        (IP_B, 6000),
        50,
        Some(synack.sequence_number.wrapping_add(1)),
        false,
        &[],
        &[],
    );
    s.handle_frame(stale, &f, RxOffload::default());
    assert!(s.tcp().accept(l).is_err());
    // In time, it connects with the MSS the cookie kept (no option: 536).
    frame(&mut f, (IP_B, 6000), 49, None, true, &[], &[]);
    s.handle_frame(stale, &f, RxOffload::default());
    let mut out = VecTransmit::default();
    s.poll_transmit(stale, &mut out);
    let (_, synack, _) = segments(&out.frames).pop().unwrap();
    frame(
        &mut f,
        (IP_B, 6000),
        50,
        Some(synack.sequence_number.wrapping_add(1)),
        false,
        &[],
        &[],
    );
    s.handle_frame(stale, &f, RxOffload::default());
    let c = s.tcp().accept(l).unwrap();
    assert_eq!(s.tcp().get(c).unwrap().mss().len(), 536);
    assert_eq!(s.stats().tcp_ext.syncookies_recv, 1);
}
