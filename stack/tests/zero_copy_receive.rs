//! Zero-copy receive: TCP data left in the received frames through the application step.
//!
//! Two shards exchange frames by hand (plain vectors standing in for a driver's frames), so
//! every test decides exactly which frames arrive together, whether the application reads
//! while they are held, and when they are given back. The server side holds its received
//! frames as the runtime does: `handle_frame_held` for each, the application through
//! `sockets_with_rx`, then `spill_in_place` before the frames are dropped.
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{RxOffload, VecTransmit};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::socket::{RecvError, Shutdown, SocketHandle, SocketOptions, Sockets};
use shardnet::time::{Duration, Instant};
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use std::net::SocketAddrV4;

const MAC_C: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
const MAC_S: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
const IP_C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_S: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 80;
/// Payload bytes of a full-sized segment at MTU 1500 with timestamps.
const MSS: usize = 1448;

fn shard(mac: EthernetAddress, ip: Ipv4Addr) -> Shard {
    let mut config = ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    config.tcp.recv_buffer = 64 * 1024;
    Shard::new(config)
}

fn stream_byte(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

fn stream(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(stream_byte).collect()
}

/// A client, a server with one accepted connection, and a clock.
struct Pair {
    c: Shard,
    s: Shard,
    now: Instant,
    client: SocketHandle,
    server: SocketHandle,
}

/// The frames `shard` has to send now.
fn transmit(shard: &mut Shard, now: Instant) -> Vec<Vec<u8>> {
    let mut tx = VecTransmit::default();
    shard.poll_transmit(now, &mut tx);
    tx.frames
}

/// Hands `frames` to `shard` as one held burst, runs `app` on the sockets with the burst lent,
/// then spills what is left, as the runtime does.
fn held<R>(
    shard: &mut Shard,
    now: Instant,
    frames: &[Vec<u8>],
    app: impl FnOnce(&mut Sockets<'_>, &[&[u8]]) -> R,
) -> R {
    let rx: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    for i in 0..rx.len() {
        shard.handle_frame_held(now, &rx, i, RxOffload::default());
    }
    let r = app(&mut shard.sockets_with_rx(now, &rx), &rx);
    shard.spill_in_place(&rx);
    r
}

impl Pair {
    /// Connected, with ARP resolved and the handshake done (all on the copy path).
    fn new() -> Pair {
        let (mut c, mut s) = (shard(MAC_C, IP_C), shard(MAC_S, IP_S));
        let now = Instant::ZERO + Duration::from_secs(1);
        let opts = SocketOptions::default();
        let listener = s
            .sockets(now)
            .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8, &opts)
            .unwrap();
        let client = c
            .sockets(now)
            .connect(SocketAddrV4::new(IP_S, PORT), &opts)
            .unwrap();
        let mut pair = Pair {
            c,
            s,
            now,
            client,
            server: listener,
        };
        pair.settle();
        let (server, _) = pair.s.sockets(now).accept(listener).unwrap();
        pair.server = server;
        // One segment per write, whatever is in flight (no Nagle).
        pair.c
            .sockets(now)
            .set_option(client, shardnet::socket::SockOpt::NoDelay(true))
            .unwrap();
        pair
    }

    /// Exchanges frames (copy path) until neither side has anything to send.
    fn settle(&mut self) {
        for _ in 0..100 {
            let to_s = transmit(&mut self.c, self.now);
            let to_c = transmit(&mut self.s, self.now);
            if to_s.is_empty() && to_c.is_empty() {
                return;
            }
            for f in &to_s {
                self.s.handle_frame(self.now, f, RxOffload::default());
            }
            for f in &to_c {
                self.c.handle_frame(self.now, f, RxOffload::default());
            }
        }
        panic!("the shards kept exchanging frames");
    }

    /// The client writes `data`; returns the frames it sends for it (not delivered).
    fn client_sends(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let now = self.now;
        assert_eq!(self.c.sockets(now).send(self.client, data), Ok(data.len()));
        transmit(&mut self.c, now)
    }

    /// The server's receive window as its next ACK advertises it (unscaled bytes).
    fn advertised_window(&mut self) -> usize {
        self.s
            .tcp()
            .get_mut(handle(self.server))
            .unwrap()
            .set_quickack(true);
        let frames = transmit(&mut self.s, self.now);
        let f = frames.last().expect("an ACK");
        // Ethernet 14 + IPv4 20: the TCP window field is at offset 14 of the TCP header.
        let window = u16::from_be_bytes([f[14 + 20 + 14], f[14 + 20 + 15]]);
        for f in &frames {
            self.c.handle_frame(self.now, f, RxOffload::default());
        }
        let shift = 1; // 64 KiB receive buffer: window scale 1
        usize::from(window) << shift
    }
}

fn handle(h: SocketHandle) -> shardnet::shard::tcp::TcpHandle {
    match h {
        SocketHandle::Tcp(t) => t,
        other => panic!("not a TCP socket: {other:?}"),
    }
}

/// True if `inner` lies inside one of `frames`.
fn within_a_frame(inner: &[u8], frames: &[&[u8]]) -> bool {
    let p = inner.as_ptr() as usize;
    frames.iter().any(|f| {
        let b = f.as_ptr() as usize;
        p >= b && p + inner.len() <= b + f.len()
    })
}

#[test]
fn segments_read_in_the_same_iteration_come_straight_from_the_frames() {
    let mut p = Pair::new();
    let data = stream(0, 3 * MSS + 100);
    let frames = p.client_sends(&data);
    assert_eq!(frames.len(), 4);
    let now = p.now;
    let server = p.server;
    let got = held(&mut p.s, now, &frames, |s, rx| {
        let mut got = Vec::new();
        loop {
            let r = s.recv_with(server, |bytes| {
                assert!(within_a_frame(bytes, rx), "lent bytes are not the frame's");
                got.extend_from_slice(bytes);
                bytes.len()
            });
            match r {
                Ok(n) => assert!(n > 0),
                Err(RecvError::WouldBlock) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        got
    });
    assert_eq!(got, data);
    let z = p.s.stats().zero_copy;
    assert_eq!(z.held_segs, 4);
    assert_eq!(z.held_bytes, data.len() as u64);
    assert_eq!(z.delivered_bytes, data.len() as u64);
    assert_eq!(z.spilled_bytes, 0);
    assert_eq!(z.lost, 0);
    // The read opened the window: the ACK shows the whole buffer free again.
    assert_eq!(p.advertised_window(), 64 * 1024);
}

#[test]
fn data_the_app_leaves_is_spilled_and_read_in_order_later() {
    let mut p = Pair::new();
    let data = stream(0, 2 * MSS + 10);
    let frames = p.client_sends(&data);
    let (now, server) = (p.now, p.server);
    // The app reads 100 bytes of the first frame, then a part of the rest with `recv`.
    let first = held(&mut p.s, now, &frames, |s, _| {
        let mut first = Vec::new();
        let n = s
            .recv_with(server, |bytes| {
                first.extend_from_slice(&bytes[..100]);
                100
            })
            .unwrap();
        assert_eq!(n, 100);
        let mut buf = [0u8; 50];
        assert_eq!(s.recv(server, &mut buf), Ok(50));
        first.extend_from_slice(&buf);
        first
    });
    assert_eq!(first, data[..150]);
    let z = p.s.stats().zero_copy;
    assert_eq!(z.delivered_bytes, 150);
    assert_eq!(z.spilled_bytes, (data.len() - 150) as u64);
    // Later, with no frame held: the rest, from the receive buffer, in order.
    let mut rest = vec![0u8; data.len()];
    let n = p.s.sockets(now).recv(server, &mut rest).unwrap();
    assert_eq!(&rest[..n], &data[150..]);
    assert_eq!(
        p.s.sockets(now).recv(server, &mut rest),
        Err(RecvError::WouldBlock)
    );
}

#[test]
fn a_view_without_the_frames_gets_eagain_then_a_readable_event_after_the_spill() {
    let mut p = Pair::new();
    let (now, server) = (p.now, p.server);
    let frames = p.client_sends(&stream(0, 500));
    let rx: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    for i in 0..rx.len() {
        p.s.handle_frame_held(now, &rx, i, RxOffload::default());
    }
    let mut events = Vec::new();
    p.s.sockets(now).poll_events(&mut events);
    assert!(events.iter().any(|e| e.socket == server));
    events.clear();
    // `Shard::sockets` lends no frame: the bytes in place cannot be read (nor skipped).
    let mut buf = vec![0u8; 1000];
    assert_eq!(
        p.s.sockets(now).recv(server, &mut buf),
        Err(RecvError::WouldBlock)
    );
    assert_eq!(
        p.s.sockets(now).recv_with(server, |b| b.len()),
        Err(RecvError::WouldBlock)
    );
    p.s.spill_in_place(&rx);
    // The refused reader is told that the bytes are readable now.
    p.s.sockets(now).poll_events(&mut events);
    assert!(
        events.iter().any(|e| e.socket == server),
        "no readable event after the spill: {events:?}"
    );
    assert_eq!(p.s.sockets(now).recv(server, &mut buf), Ok(500));
    assert_eq!(&buf[..500], &stream(0, 500)[..]);
    // Data arriving behind bytes still in the receive buffer is copied, not held.
    let more = p.client_sends(&stream(500, 300));
    p.s.handle_frame(now, &more[0], RxOffload::default());
    let more2 = p.client_sends(&stream(800, 300));
    held(&mut p.s, now, &more2, |_, _| ());
    assert_eq!(p.s.stats().zero_copy.held_segs, 1);
    assert_eq!(p.s.sockets(now).recv(server, &mut buf), Ok(600));
    assert_eq!(&buf[..600], &stream(500, 600)[..]);
}

#[test]
fn after_shutdown_read_bytes_in_unlent_frames_are_not_taken_for_end_of_stream() {
    let mut p = Pair::new();
    let (now, server) = (p.now, p.server);
    let frames = p.client_sends(&stream(0, 300));
    let rx: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    for i in 0..rx.len() {
        p.s.handle_frame_held(now, &rx, i, RxOffload::default());
    }
    p.s.sockets(now).shutdown(server, Shutdown::Read).unwrap();
    let mut buf = vec![0u8; 1000];
    // SHUT_RD reads the bytes received before end of stream (Linux `tcp_recvmsg`): those
    // in a frame this view does not lend are pending, not end of stream.
    assert_eq!(
        p.s.sockets(now).recv(server, &mut buf),
        Err(RecvError::WouldBlock)
    );
    p.s.spill_in_place(&rx);
    assert_eq!(p.s.sockets(now).recv(server, &mut buf), Ok(300));
    assert_eq!(&buf[..300], &stream(0, 300)[..]);
    assert_eq!(p.s.sockets(now).recv(server, &mut buf), Ok(0));
}

#[test]
fn frames_in_place_ring_data_and_reassembled_data_are_read_in_stream_order() {
    let mut p = Pair::new();
    let data = stream(0, 5 * MSS);
    let frames = p.client_sends(&data);
    assert_eq!(frames.len(), 5);
    let (now, server) = (p.now, p.server);
    // Segment 3 arrives first, copied (out of order, into the reassembly queue).
    p.s.handle_frame(now, &frames[3], RxOffload::default());
    // Then one burst: 0 (in place), 2 (out of order: copied), 1 (in place: only bytes in
    // place precede it; it joins 2 and 3), 4 (copied: ring data precedes it now).
    let burst = vec![
        frames[0].clone(),
        frames[2].clone(),
        frames[1].clone(),
        frames[4].clone(),
    ];
    let got = held(&mut p.s, now, &burst, |s, rx| {
        let mut got = Vec::new();
        let mut from_frames = 0;
        while let Ok(n) = s.recv_with(server, |bytes| {
            // Read in odd pieces, to cut descriptors and ring runs.
            let k = bytes.len().min(1000);
            if within_a_frame(bytes, rx) {
                from_frames += k;
            }
            got.extend_from_slice(&bytes[..k]);
            k
        }) {
            assert!(n > 0);
        }
        assert_eq!(from_frames, 2 * MSS);
        got
    });
    assert_eq!(got, data);
    let z = p.s.stats().zero_copy;
    assert_eq!((z.held_segs, z.delivered_bytes), (2, 2 * MSS as u64));
    assert_eq!(z.spilled_bytes, 0);
}

#[test]
fn a_full_table_falls_back_to_copying_without_losing_order() {
    let mut p = Pair::new();
    let entries = shardnet::shard::tcp::IN_PLACE_ENTRIES;
    // More small segments in one burst than the table holds (one per write).
    let now = p.now;
    let mut frames = Vec::new();
    for k in 0..entries + 20 {
        frames.extend(p.client_sends(&stream(k * 10, 10)));
    }
    assert_eq!(frames.len(), entries + 20);
    let server = p.server;
    held(&mut p.s, now, &frames, |_, _| ());
    let z = p.s.stats().zero_copy;
    assert_eq!(z.held_segs, entries as u64);
    assert_eq!(z.table_full, 20);
    assert_eq!(z.spilled_bytes, (entries * 10) as u64);
    let mut buf = vec![0u8; 4096];
    let n = p.s.sockets(now).recv(server, &mut buf).unwrap();
    assert_eq!(&buf[..n], &stream(0, (entries + 20) * 10)[..]);
}

#[test]
fn eof_is_read_only_after_the_data_in_place() {
    let mut p = Pair::new();
    let now = p.now;
    let data = stream(0, 700);
    let (client, server) = (p.client, p.server);
    p.c.sockets(now).send(client, &data).unwrap();
    p.c.sockets(now).shutdown(client, Shutdown::Write).unwrap();
    let frames = transmit(&mut p.c, now);
    // Data and FIN arrive in the same burst (in one segment or two).
    held(&mut p.s, now, &frames, |s, _| {
        let mut got = Vec::new();
        loop {
            match s.recv_with(server, |b| {
                got.extend_from_slice(&b[..b.len().min(300)]);
                b.len().min(300)
            }) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => panic!("{e:?} after {} bytes", got.len()),
            }
        }
        assert_eq!(got, data);
        // End of stream again, and only now.
        assert_eq!(s.recv_with(server, |_| panic!("no data")), Ok(0));
    });
    assert_eq!(p.s.stats().zero_copy.delivered_bytes, 700);

    // The same with the app reading nothing during the burst: spilled, then data, then EOF.
    let mut q = Pair::new();
    let (client, server) = (q.client, q.server);
    q.c.sockets(now).send(client, &data).unwrap();
    q.c.sockets(now).shutdown(client, Shutdown::Write).unwrap();
    let frames = transmit(&mut q.c, now);
    held(&mut q.s, now, &frames, |_, _| ());
    assert_eq!(q.s.stats().zero_copy.spilled_bytes, 700);
    let mut buf = vec![0u8; 1000];
    assert_eq!(q.s.sockets(now).recv(server, &mut buf), Ok(700));
    assert_eq!(&buf[..700], &data[..]);
    assert_eq!(q.s.sockets(now).recv(server, &mut buf), Ok(0));
}

#[test]
fn the_window_counts_bytes_in_place_as_held() {
    // Two full-sized segments: the second triggers an ACK at once (RFC 5681 4.2). Sent while
    // the bytes are still in place, it must advertise what a copy would have left.
    let mut held_side = Pair::new();
    let mut copied_side = Pair::new();
    let data = stream(0, 2 * MSS);
    let now = held_side.now;
    let frames_h = held_side.client_sends(&data);
    let frames_c = copied_side.client_sends(&data);
    let rx: Vec<&[u8]> = frames_h.iter().map(Vec::as_slice).collect();
    for i in 0..rx.len() {
        held_side
            .s
            .handle_frame_held(now, &rx, i, RxOffload::default());
    }
    for f in &frames_c {
        copied_side.s.handle_frame(now, f, RxOffload::default());
    }
    let w_held = held_side.advertised_window();
    let w_copied = copied_side.advertised_window();
    assert_eq!(w_held, w_copied);
    // What a copy leaves free, within the window scale's granularity.
    let free = 64 * 1024 - 2 * MSS;
    assert!(w_held <= free && w_held + 4 > free, "{w_held}");
    assert_eq!(held_side.s.stats().zero_copy.held_bytes, 2 * MSS as u64);
    // Spilling changes nothing the peer sees: no window update is due, the bytes stay held.
    held_side.s.spill_in_place(&rx);
    assert!(transmit(&mut held_side.s, now).is_empty());
    let server = held_side.server;
    let tcb = held_side.s.tcp_endpoints().get(handle(server)).unwrap();
    assert_eq!(tcb.recv_available(), 2 * MSS);
    let mut buf = vec![0u8; 4 * MSS];
    assert_eq!(held_side.s.sockets(now).recv(server, &mut buf), Ok(2 * MSS));
    assert_eq!(&buf[..2 * MSS], &data[..]);
}

#[test]
fn frames_given_back_unspilled_reset_the_connection_rather_than_corrupt_it() {
    let mut p = Pair::new();
    let now = p.now;
    let frames = p.client_sends(&stream(0, 100));
    let rx: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    p.s.handle_frame_held(now, &rx, 0, RxOffload::default());
    drop(rx);
    // The caller skipped `spill_in_place`: the next timer run finds the bytes unaccounted for.
    p.s.handle_timeout(now);
    assert_eq!(p.s.stats().zero_copy.lost, 1);
    let mut buf = [0u8; 200];
    assert_eq!(
        p.s.sockets(now).recv(p.server, &mut buf),
        Err(RecvError::ConnectionReset)
    );
    // The peer is told.
    let rst = transmit(&mut p.s, now);
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0][14 + 20 + 13] & 0x04, 0x04, "RST flag");
}

// ----- The runtime: frames held through the app step on the threaded memory wire -----

mod runtime {
    use super::stream_byte;
    use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
    use shardnet::runtime::{App, AppContext, ExitReason, IdlePolicy, Runtime, RuntimeConfig};
    use shardnet::shard::ShardConfig;
    use shardnet::socket::{RecvError, SendError, Shutdown, SocketHandle, SocketOptions};
    use shardnet::time::Duration;
    use shardnet::wire::{EthernetAddress, Ipv4Addr};
    use shardnet_memory::threaded::{ThreadedPort, ThreadedWire, ThreadedWireConfig};
    use std::net::SocketAddrV4;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const PORT: u16 = 9;
    const CONNS: usize = 4;
    /// Bytes each connection uploads.
    const SIZE: usize = 8 << 20;

    /// The byte at `offset` of every connection's upload.
    fn byte(offset: usize) -> u8 {
        stream_byte(offset)
    }

    #[derive(Default)]
    struct Progress {
        received: AtomicU64,
        finished: AtomicU64,
        failures: AtomicU64,
    }

    /// Uploads `SIZE` bytes on each of `CONNS` connections, then shuts down writing and
    /// closes once the server has closed.
    struct Uploader {
        conns: Vec<(SocketHandle, usize, bool)>,
        progress: Arc<Progress>,
    }

    impl App for Uploader {
        fn step(&mut self, ctx: &mut AppContext<'_>) {
            let mut s = ctx.sockets();
            if self.conns.is_empty() {
                for _ in 0..CONNS {
                    let h = s
                        .connect(
                            SocketAddrV4::new(SERVER_IP, PORT),
                            &SocketOptions::default(),
                        )
                        .unwrap();
                    self.conns.push((h, 0, false));
                }
            }
            for (h, sent, closed) in self.conns.iter_mut() {
                if *closed {
                    continue;
                }
                while *sent < SIZE {
                    let at = *sent;
                    match s.send_with(*h, SIZE - at, |buf| {
                        for (k, b) in buf.iter_mut().enumerate() {
                            *b = byte(at + k);
                        }
                        buf.len()
                    }) {
                        Ok(n) if n > 0 => *sent += n,
                        Ok(_) | Err(SendError::WouldBlock) => break,
                        Err(_) => {
                            self.progress.failures.fetch_add(1, Ordering::Relaxed);
                            *closed = true;
                            break;
                        }
                    }
                }
                if *sent == SIZE && !*closed {
                    let _ = s.shutdown(*h, Shutdown::Write);
                    match s.recv_with(*h, |b| b.len()) {
                        Ok(0) => {
                            let _ = s.close(*h);
                            *closed = true;
                        }
                        Ok(_) => {
                            self.progress.failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(RecvError::WouldBlock) => {}
                        Err(_) => {
                            self.progress.failures.fetch_add(1, Ordering::Relaxed);
                            *closed = true;
                        }
                    }
                }
            }
        }
    }

    /// Accepts and reads every connection with `recv_with` through [`AppContext::sockets`],
    /// checking every byte; closes at end of stream.
    struct Reader {
        /// Open connections and the bytes read from each.
        conns: Vec<(SocketHandle, usize)>,
        progress: Arc<Progress>,
    }

    impl App for Reader {
        fn step(&mut self, ctx: &mut AppContext<'_>) {
            let listeners: Vec<SocketHandle> = ctx
                .listeners
                .iter()
                .map(|&l| SocketHandle::Listener(l))
                .collect();
            let mut s = ctx.sockets();
            for l in listeners {
                while let Ok((h, _)) = s.accept(l) {
                    self.conns.push((h, 0));
                }
            }
            let mut done = Vec::new();
            for (h, received) in self.conns.iter_mut() {
                loop {
                    let at = *received;
                    let mut bad = false;
                    let r = s.recv_with(*h, |bytes| {
                        bad = bytes.iter().enumerate().any(|(k, &b)| b != byte(at + k));
                        bytes.len()
                    });
                    match r {
                        Ok(0) => {
                            let ok = *received == SIZE;
                            let counter = if ok {
                                &self.progress.finished
                            } else {
                                &self.progress.failures
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            let _ = s.close(*h);
                            done.push(*h);
                            break;
                        }
                        Ok(n) => {
                            if bad {
                                self.progress.failures.fetch_add(1, Ordering::Relaxed);
                            }
                            *received += n;
                            self.progress
                                .received
                                .fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(RecvError::WouldBlock) => break,
                        Err(_) => {
                            self.progress.failures.fetch_add(1, Ordering::Relaxed);
                            let _ = s.close(*h);
                            done.push(*h);
                            break;
                        }
                    }
                }
            }
            self.conns.retain(|(h, _)| !done.contains(h));
        }
    }

    fn config(mac: EthernetAddress, ip: Ipv4Addr) -> RuntimeConfig {
        let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
            mac,
            cidr: Ipv4Cidr::new(ip, 24).unwrap(),
            gateway: None,
            mtu: 1500,
            ttl: 64,
        }));
        c.idle = IdlePolicy::Sleep {
            max: Duration::from_millis(1),
        };
        c.isn_key = Some([7; 16]);
        c
    }

    #[test]
    fn a_large_upload_is_read_in_place_and_every_byte_verified() {
        let wire = ThreadedWire::new(ThreadedWireConfig {
            pool_size: 4096,
            ring_size: 4096,
            ..ThreadedWireConfig::default()
        });
        let sp = wire.add_port(SERVER_MAC, 1);
        let cp = wire.add_port(CLIENT_MAC, 1);
        let progress = Arc::new(Progress::default());
        let server: Runtime<ThreadedPort, Reader> = Runtime::start(
            config(SERVER_MAC, SERVER_IP),
            vec![(
                wire.port(sp, 0).unwrap(),
                Reader {
                    conns: Vec::new(),
                    progress: progress.clone(),
                },
            )],
        )
        .unwrap();
        server.listen(PORT, 16).unwrap();
        let client: Runtime<ThreadedPort, Uploader> = Runtime::start(
            config(CLIENT_MAC, CLIENT_IP),
            vec![(
                wire.port(cp, 0).unwrap(),
                Uploader {
                    conns: Vec::new(),
                    progress: progress.clone(),
                },
            )],
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while progress.finished.load(Ordering::Relaxed) + progress.failures.load(Ordering::Relaxed)
            < CONNS as u64
        {
            assert!(
                std::time::Instant::now() < deadline,
                "received {} of {} bytes",
                progress.received.load(Ordering::Relaxed),
                CONNS * SIZE
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (server, client) = std::thread::scope(|s| {
            let sh = s.spawn(|| server.stop());
            let ch = s.spawn(|| client.stop());
            (sh.join().unwrap().unwrap(), ch.join().unwrap().unwrap())
        });
        assert_eq!(progress.failures.load(Ordering::Relaxed), 0);
        assert_eq!(progress.finished.load(Ordering::Relaxed), CONNS as u64);
        assert_eq!(
            progress.received.load(Ordering::Relaxed),
            (CONNS * SIZE) as u64
        );
        let z = server[0].stats.zero_copy;
        println!("server zero-copy counters: {z:?}");
        assert!(z.delivered_bytes > 0, "{z:?}");
        assert_eq!(z.lost, 0);
        // Every byte stayed in place or was copied; every byte in place was read there or
        // spilled.
        assert_eq!(z.held_bytes, z.delivered_bytes + z.spilled_bytes);
        for e in server.iter().map(|e| (e.reason, e.active_connections)) {
            assert_eq!(e, (ExitReason::Drained, 0));
        }
        for e in client.iter().map(|e| (e.reason, e.active_connections)) {
            assert_eq!(e, (ExitReason::Drained, 0));
        }
        assert!(wire.all_pools_full(), "frames leaked");
    }
}
