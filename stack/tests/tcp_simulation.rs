//! Deterministic TCP simulations: two shardnet stacks on the memory wire, seeded workloads
//! (many connections, random sizes, half-closes and aborts) under loss, duplication,
//! reordering and delay.
//!
//! Invariants checked on every run: every byte is delivered exactly once and in order (a
//! connection that was aborted delivers a prefix); every connection reaches CLOSED on both
//! sides within a bound of virtual time; no connection, frame or buffer is left behind.
//!
//! Each seed runs twice: as the simulation harness polls (every frame handled and given back
//! at once, data copied into the receive buffers), and with every burst of received frames
//! held through the application step as the runtime does, so that in-order data stays in
//! the frames and is read there or spilled after the step (zero-copy receive), mixed with
//! ring data and reassembly under the same impairments. A third run holds the frames too, but
//! the stacks read a coarse clock (1, 4 or 10 ms ticks, like a jiffies clock) while the wire
//! keeps exact time: the stacks' time stands still across many polls in which frames go both
//! ways, and round trips shorter than a tick measure as zero.
//!
//! Replay one seed: `SHARDNET_SEED=123 cargo test -p shardnet --test tcp_simulation`.
//! More seeds: `SHARDNET_SEEDS=2000`.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::{BURST, Batch, Frame, Port, TxBatcher};
use shardnet::shard::tcp::{ListenHandle, TcpHandle};
use shardnet::shard::{Shard, ShardConfig};
use shardnet::tcp::congestion::Algorithm;
use shardnet::tcp::{Keepalive, RecvError, SendError, State, TcpConfig};
use shardnet::time::{Duration, Instant};
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_memory::sim::Simulation;
use shardnet_memory::{Impairments, MemoryFrame, MemoryPort, Wire, WireConfig};
use std::net::SocketAddrV4;

const MAC_C: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x01]);
const MAC_S: EthernetAddress = EthernetAddress([0x02, 0x5e, 0, 0, 0, 0x02]);
const IP_C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_S: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT: usize = 0;
const SERVER: usize = 1;
const PORT: u16 = 80;

/// The byte at `offset` of the stream of connection `conn` in direction `dir`.
fn stream_byte(seed: u64, conn: usize, dir: u8, offset: usize) -> u8 {
    let x = (offset as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ seed
        ^ ((conn as u64) << 40)
        ^ (u64::from(dir) << 56);
    (x >> 29) as u8 ^ (offset as u8)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// The client finishes sending, then closes after reading EOF.
    ClientFirst,
    /// The server closes first.
    ServerFirst,
    /// Both shut down writing as soon as they have sent everything.
    Both,
    /// The client aborts (SO_LINGER 0) midway.
    ClientAborts,
}

/// One side of one connection.
#[derive(Debug)]
struct End {
    handle: Option<TcpHandle>,
    to_send: usize,
    sent: usize,
    received: usize,
    eof: bool,
    shut: bool,
    closed: bool,
    failed: Option<&'static str>,
}

impl End {
    fn new(to_send: usize) -> End {
        End {
            handle: None,
            to_send,
            sent: 0,
            received: 0,
            eof: false,
            shut: false,
            closed: false,
            failed: None,
        }
    }
}

struct Conn {
    close: Close,
    client: End,
    server: End,
    /// For aborts: the byte count after which the client aborts.
    abort_after: usize,
    /// The client's ephemeral port, which identifies the connection on the server.
    client_port: u16,
}

/// TCP options and congestion control vary with the seed, so that peers without SACK (reno
/// recovery), without timestamps (Karn-timed RTT) and without window scaling, and both
/// congestion controllers, are all exercised.
fn tcp_variant(seed: u64) -> (bool, bool, bool, Algorithm) {
    let sack = seed % 3 != 1;
    let timestamps = seed % 5 != 2;
    let window_scaling = seed % 7 != 3;
    let congestion = if seed % 2 == 0 {
        Algorithm::Cubic
    } else {
        Algorithm::NewReno
    };
    (sack, timestamps, window_scaling, congestion)
}

fn stack(mac: EthernetAddress, ip: Ipv4Addr, seed: u64) -> Shard {
    let mut config = ShardConfig::new(InterfaceConfig {
        mac,
        cidr: Ipv4Cidr::new(ip, 24).unwrap(),
        gateway: None,
        mtu: 1500,
        ttl: 64,
    });
    config.tcp = TcpConfig {
        send_buffer: 64 * 1024,
        recv_buffer: 64 * 1024,
        // Short timers so that a run ends in little virtual time.
        msl: Duration::from_secs(2),
        fin_timeout: Duration::from_secs(10),
        // If the RST of an abort is lost and the peer has nothing to send, only keepalive ends
        // the peer's side (as with any TCP). The timers are short to keep runs short, but long
        // enough to outlast a legitimate RTO backoff under 20 % loss (a 3-probe, 2 s keepalive
        // declared a live peer dead at seed 1861).
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            probes: 9,
        }),
        ..TcpConfig::default()
    };
    config.isn_key = [seed as u8; 16];
    let (sack, timestamps, window_scaling, congestion) = tcp_variant(seed);
    config.tcp.sack = sack;
    config.tcp.timestamps = timestamps;
    config.tcp.window_scaling = window_scaling;
    config.tcp.congestion = congestion;
    Shard::new(config)
}

// A test helper with the whole picture of one end passed in; a struct would only rename it.
#[allow(clippy::too_many_arguments)]
/// Moves data for one end: writes what fits, reads what arrived (checking every byte), from
/// the held frames `rx` when its next bytes are still in them.
fn pump(
    shard: &mut Shard,
    rx: &[&[u8]],
    now: Instant,
    seed: u64,
    id: usize,
    end: &mut End,
    dir_out: u8,
    close: Close,
    is_client: bool,
    abort_after: usize,
) {
    let Some(h) = end.handle else { return };
    if end.closed {
        return;
    }
    let Some(tcb) = shard.tcp().get_mut(h) else {
        return;
    };
    // Write.
    while end.sent < end.to_send && !end.shut {
        let want = (end.to_send - end.sent).min(16 * 1024);
        let start = end.sent;
        match tcb.send_with(want, |buf| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = stream_byte(seed, id, dir_out, start + i);
            }
            buf.len()
        }) {
            Ok(0) => break,
            Ok(n) => end.sent += n,
            Err(SendError::WouldBlock) => break,
            Err(e) => {
                end.failed = Some(e.errno());
                break;
            }
        }
    }
    // Read. With frames held, the reader is uneven, as applications are: some rounds it
    // reads nothing (what is in place is then spilled), and it takes odd-sized pieces (so
    // reads end inside frames).
    let dir_in = 1 - dir_out;
    let lazy = !rx.is_empty() && (now.as_micros() / 100 + id as u64) % 3 == 0;
    loop {
        if lazy {
            break;
        }
        let at = end.received;
        let piece = if rx.is_empty() {
            usize::MAX
        } else {
            1 + (at * 7 + seed as usize) % 3000
        };
        let read = shard.tcp().recv_with(h, rx, |data| {
            let data = &data[..data.len().min(piece)];
            for (i, b) in data.iter().enumerate() {
                assert_eq!(
                    *b,
                    stream_byte(seed, id, dir_in, at + i),
                    "seed {seed}: conn {id} byte {} corrupted or out of order (read by the client: {is_client})",
                    at + i
                );
            }
            data.len()
        });
        match read.expect("a current handle") {
            Ok(0) => {
                end.eof = true;
                break;
            }
            Ok(n) => end.received += n,
            Err(RecvError::WouldBlock) => break,
            Err(e) => {
                end.failed = Some(e.errno());
                break;
            }
        }
    }
    let Some(tcb) = shard.tcp().get_mut(h) else {
        return;
    };
    if is_client
        && close == Close::ClientAborts
        && (end.sent >= abort_after || end.sent == end.to_send)
    {
        shard.tcp().abort(now, h);
        end.closed = true;
        return;
    }
    // Closing.
    let done_sending = end.sent == end.to_send;
    let my_turn = match close {
        Close::ClientFirst => is_client || end.eof,
        Close::ServerFirst => !is_client || end.eof,
        Close::Both | Close::ClientAborts => true,
    };
    // shutdown(SHUT_WR) in SYN-SENT closes the connection outright (RFC 9293 3.10.4, and Linux's
    // tcp_close_state), so an application shuts down only once connected.
    if done_sending && my_turn && !end.shut && tcb.state().is_synchronized() {
        tcb.shutdown_write();
        end.shut = true;
    }
    if end.shut && (end.eof || end.failed.is_some()) {
        shard.tcp().close(now, h);
        end.closed = true;
    }
    if end.failed.is_some() && !end.closed {
        shard.tcp().close(now, h);
        end.closed = true;
    }
}

/// How received frames are handled, and which clock the stacks read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rx {
    /// Handled and given back at once (`Simulation::poll`): data is copied.
    Copy,
    /// Held through the application step, as the runtime does: data may stay in place.
    Held,
    /// As `Held`, with the stacks' clock advancing only in ticks of this many milliseconds
    /// ([`Clock`]).
    HeldCoarseClock(u64),
}

/// The time the stacks read in [`run_held`], from the wire's exact time: either that time, or
/// that time rounded down to a whole number of ticks since `start`. A real clock read once per
/// poll stands still between polls in the same way (a millisecond or jiffies clock), so
/// that a frame can be sent and its answer received at the same `now`.
#[derive(Clone, Copy, Debug)]
struct Clock {
    start: Instant,
    tick_nanos: Option<u64>,
}

impl Clock {
    /// The stacks' time when the wire's is `t` (never before `start`).
    fn read(&self, t: Instant) -> Instant {
        match self.tick_nanos {
            None => t,
            Some(k) => {
                let since = t.as_nanos().saturating_sub(self.start.as_nanos());
                Instant::from_nanos(self.start.as_nanos() + since / k * k)
            }
        }
    }

    /// The earliest wire time at which the stacks' clock reaches `t`.
    fn reaches(&self, t: Instant) -> Instant {
        match self.tick_nanos {
            None => t,
            Some(k) => {
                let since = t.as_nanos().saturating_sub(self.start.as_nanos());
                Instant::from_nanos(
                    self.start
                        .as_nanos()
                        .saturating_add(since.div_ceil(k).saturating_mul(k)),
                )
            }
        }
    }
}

/// One round at wire time `wire_now` of the runtime's loop on every node, with the stacks
/// reading `now`: receive a burst and hold it, let `app` run with the bursts lent, spill,
/// give the frames back, run timers, transmit. Returns whether any frame moved, and what
/// `app` returned.
///
/// The wire reaches `wire_now` before the receive poll, so that every frame delivered by then
/// is seen in this round, as the runtime sees a frame once it arrives. A harness that moves the wire only at the end of
/// a round, and then finds that nothing moved, leaves the frames that just arrived in the
/// receive ring until some unrelated timer fires: at seed 4 that left frames there for up to
/// 50 s (at least 394 s in all on one connection), inflated the measured RTT and RTO, and the
/// run overran its deadline (while delivering every byte given more time). No runtime does
/// that: a frame in the ring ends its sleep, or the sleep is capped.
fn held_round(
    sim: &mut Simulation<MemoryPort>,
    wire_now: Instant,
    now: Instant,
    app: &mut impl FnMut(&mut Simulation<MemoryPort>, Instant, [&[&[u8]]; 2]) -> bool,
) -> (bool, bool) {
    let mut batches: [Batch<MemoryFrame>; 2] = [Batch::new(), Batch::new()];
    let mut moved = false;
    sim.wire.advance_to(wire_now);
    for (node, batch) in sim.nodes.iter_mut().zip(batches.iter_mut()) {
        moved |= node.port.rx_burst(batch) > 0;
    }
    let views: [arrayvec::ArrayVec<&[u8], BURST>; 2] =
        [0, 1].map(|n| batches[n].iter().map(Frame::data).collect());
    for (n, node) in sim.nodes.iter_mut().enumerate() {
        for (i, f) in batches[n].iter().enumerate() {
            node.shard
                .handle_frame_held(now, &views[n], i, f.rx_offload());
        }
    }
    let done = app(sim, now, [&views[0], &views[1]]);
    for (n, node) in sim.nodes.iter_mut().enumerate() {
        node.shard.spill_in_place(&views[n]);
    }
    drop(views);
    for (node, batch) in sim.nodes.iter_mut().zip(batches.iter_mut()) {
        for f in batch.drain(..) {
            node.port.release(f);
        }
        node.shard.handle_timeout(now);
        let mut tx = TxBatcher::new(&mut node.port);
        node.shard.poll_transmit(now, &mut tx);
        moved |= tx.finish().0 > 0;
    }
    sim.wire.advance_to(wire_now);
    (moved, done)
}

/// `Simulation::run_until` with frames held through `app` ([`held_round`]), on a clock of its
/// own starting at `from` (the simulation's stays behind; only the wire's moves), the stacks
/// reading `clock`. Returns whether `app` said done, the wire time reached, and how many times
/// the wire's time moved on while the stacks' stood still.
fn run_held(
    sim: &mut Simulation<MemoryPort>,
    clock: Clock,
    from: Instant,
    deadline: Instant,
    mut app: impl FnMut(&mut Simulation<MemoryPort>, Instant, [&[&[u8]]; 2]) -> bool,
) -> (bool, Instant, u64) {
    let mut wire_now = from;
    let mut stood_still = 0;
    let mut last = None;
    loop {
        let now = clock.read(wire_now);
        if last.is_some_and(|(w, n)| w != wire_now && n == now) {
            stood_still += 1;
        }
        last = Some((wire_now, now));
        let mut rounds = 0;
        loop {
            let (moved, done) = held_round(sim, wire_now, now, &mut app);
            if done {
                return (true, wire_now, stood_still);
            }
            if !moved {
                break;
            }
            rounds += 1;
            assert!(rounds < 1000, "livelock at {now}");
        }
        // A timer due after the stacks' `now` runs once their clock reaches it.
        let timers = sim
            .nodes
            .iter()
            .filter_map(|n| n.shard.poll_timeout())
            .filter(|t| *t > now)
            .map(|t| clock.reaches(t));
        match timers.chain(sim.wire.next_event()).min() {
            Some(t) if now <= deadline => wire_now = t.max(wire_now),
            _ => return (app(sim, now, [&[], &[]]), wire_now, stood_still),
        }
    }
}

/// Runs seed `seed`; returns the bytes the applications read in place, the bytes spilled
/// (both 0 with [`Rx::Copy`]), and how many times the wire's time moved on while the stacks'
/// clock stood still ([`run_held`]; 0 unless the clock is coarse).
fn run(seed: u64, rx_mode: Rx) -> (u64, u64, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut unit = || (rng.next_u32() as f64) / f64::from(u32::MAX);
    let impairments = Impairments {
        loss: unit() * 0.2,
        duplicate: unit() * 0.05,
        reorder: unit() * 0.2,
        reorder_delay: Duration::from_micros(100 + (unit() * 2000.0) as u64),
        delay: Duration::from_micros(50 + (unit() * 1000.0) as u64),
        jitter: Duration::from_micros((unit() * 200.0) as u64),
        ..Impairments::NONE
    };
    let n_conns = 1 + (unit() * 6.0) as usize;
    let mut conns: Vec<Conn> = (0..n_conns)
        .map(|_| {
            let close = match (unit() * 4.0) as u32 {
                0 => Close::ClientFirst,
                1 => Close::ServerFirst,
                2 => Close::Both,
                _ if unit() < 0.3 => Close::ClientAborts,
                _ => Close::ClientFirst,
            };
            let up = (unit() * unit() * 300_000.0) as usize;
            let down = (unit() * unit() * 300_000.0) as usize;
            Conn {
                close,
                client: End::new(up),
                server: End::new(down),
                abort_after: (unit() * up as f64) as usize,
                client_port: 0,
            }
        })
        .collect();

    let wire = Wire::new(WireConfig {
        seed,
        pool_size: 2048,
        ..WireConfig::default()
    });
    let (pc, ps) = (wire.add_port(MAC_C, 1), wire.add_port(MAC_S, 1));
    let (port_c, port_s) = (wire.port(pc, 0).unwrap(), wire.port(ps, 0).unwrap());
    let mut sim: Simulation<MemoryPort> = Simulation::new(wire);
    sim.add(stack(MAC_C, IP_C, seed), port_c);
    sim.add(stack(MAC_S, IP_S, seed), port_s);
    // Resolve ARP on a clean wire, then impair it.
    let now = sim.now();
    sim.nodes[CLIENT]
        .shard
        .ping(now, IP_S, 1, 1, b"hi")
        .unwrap();
    while sim.step().unwrap() {}
    sim.wire.set_impairments(impairments.clone());

    let listener: ListenHandle = sim.nodes[SERVER].shard.tcp().listen(PORT, 64).unwrap();
    for c in conns.iter_mut() {
        let now = sim.now();
        let h = sim.nodes[CLIENT]
            .shard
            .tcp_connect(now, SocketAddrV4::new(IP_S, PORT))
            .unwrap();
        c.client_port = sim.nodes[CLIENT].shard.tcp().get(h).unwrap().local().port();
        c.client.handle = Some(h);
    }
    let deadline = sim.now() + Duration::from_secs(1200);
    let mut app = |s: &mut Simulation<MemoryPort>, now: Instant, rx: [&[&[u8]]; 2]| {
        while let Ok(h) = s.nodes[SERVER].shard.tcp().accept(listener) {
            let remote = s.nodes[SERVER].shard.tcp().get(h).unwrap().remote();
            let idx = conns
                .iter()
                .position(|c| c.client_port == remote.port())
                .expect("accepted a connection we opened");
            conns[idx].server.handle = Some(h);
        }
        for (id, c) in conns.iter_mut().enumerate() {
            let (close, abort_after) = (c.close, c.abort_after);
            pump(
                &mut s.nodes[CLIENT].shard,
                rx[CLIENT],
                now,
                seed,
                id,
                &mut c.client,
                0,
                close,
                true,
                abort_after,
            );
            pump(
                &mut s.nodes[SERVER].shard,
                rx[SERVER],
                now,
                seed,
                id,
                &mut c.server,
                1,
                close,
                false,
                0,
            );
        }
        // A client that aborted before its handshake completed leaves no server end; the
        // connection count below still waits for any half-open remains to go.
        let server_done = |c: &Conn| {
            c.server.closed || (c.close == Close::ClientAborts && c.server.handle.is_none())
        };
        conns.iter().all(|c| c.client.closed && server_done(c))
            && s.nodes
                .iter_mut()
                .all(|n| n.shard.tcp().connection_count() == 0)
    };
    let mut stood_still = 0;
    let (finished, held_now) = match rx_mode {
        Rx::Copy => (
            sim.run_until(deadline, |s| {
                let now = s.now();
                app(s, now, [&[], &[]])
            })
            .unwrap(),
            None,
        ),
        Rx::Held | Rx::HeldCoarseClock(_) => {
            let clock = Clock {
                start: sim.now(),
                tick_nanos: match rx_mode {
                    Rx::HeldCoarseClock(ms) => Some(ms * 1_000_000),
                    _ => None,
                },
            };
            let (f, wire_now, still) = run_held(&mut sim, clock, clock.start, deadline, &mut app);
            stood_still = still;
            (f, Some((clock, wire_now)))
        }
    };
    let summary = format!(
        "seed {seed} ({rx_mode:?}): {n_conns} connections, loss {:.3} dup {:.3} reorder {:.3}, (sack, ts, wscale, cc) {:?}; replay with SHARDNET_SEED={seed}",
        impairments.loss,
        impairments.duplicate,
        impairments.reorder,
        tcp_variant(seed)
    );
    if !finished {
        for (id, c) in conns.iter().enumerate() {
            eprintln!(
                "conn {id} {:?}\n  client {:?}\n  server {:?}",
                c.close, c.client, c.server
            );
        }
        for (n, node) in sim.nodes.iter_mut().enumerate() {
            eprintln!(
                "node {n}: {} connections: {}",
                node.shard.tcp().connection_count(),
                node.shard.tcp().describe()
            );
        }
    }
    for (id, c) in conns.iter().enumerate() {
        let states: Vec<Option<State>> = [(CLIENT, c.client.handle), (SERVER, c.server.handle)]
            .iter()
            .map(|(n, h)| h.and_then(|h| sim.nodes[*n].shard.tcp().get(h).map(|t| t.state())))
            .collect();
        assert!(
            finished,
            "{summary}: not finished by {deadline}: conn {id} {:?} client {:?} server {:?} states {states:?}",
            c.close, c.client, c.server
        );
        if c.close != Close::ClientAborts {
            assert_eq!(
                c.server.received, c.client.to_send,
                "{summary}: conn {id} upstream bytes: {:?} client {:?} server {:?}",
                c.close, c.client, c.server
            );
            assert_eq!(
                c.client.received, c.server.to_send,
                "{summary}: conn {id} downstream bytes"
            );
            assert!(
                c.client.failed.is_none() && c.server.failed.is_none(),
                "{summary}: conn {id} failed: {:?} {:?}",
                c.client.failed,
                c.server.failed
            );
        } else {
            assert!(c.server.received <= c.client.sent, "{summary}: conn {id}");
        }
    }
    // Let TIME-WAIT and the wire drain, then nothing may be left.
    match held_now {
        None => while sim.step().unwrap() {},
        Some((clock, wire_now)) => {
            // The same clock, on from where the wire got to (the stacks' time never goes back).
            run_held(&mut sim, clock, wire_now, Instant::MAX, |_, _, _| false);
        }
    }
    if rx_mode != Rx::Copy {
        for n in sim.nodes.iter() {
            assert_eq!(n.shard.stats().zero_copy.lost, 0, "{summary}");
        }
    }
    for n in sim.nodes.iter_mut() {
        assert_eq!(
            n.shard.tcp().connection_count(),
            0,
            "{summary}: connections leaked"
        );
    }
    assert!(sim.wire.all_pools_full(), "{summary}: frames leaked");
    let (in_place, spilled) = sim.nodes.iter().fold((0, 0), |(d, s), n| {
        let z = n.shard.stats().zero_copy;
        (d + z.delivered_bytes, s + z.spilled_bytes)
    });
    (in_place, spilled, stood_still)
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SHARDNET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n = std::env::var("SHARDNET_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..n).collect()
}

#[test]
fn every_byte_arrives_once_in_order_and_every_connection_closes() {
    for seed in seeds() {
        run(seed, Rx::Copy);
    }
}

/// The clock ticks of [`Rx::HeldCoarseClock`] for `seed`, in milliseconds: 1 ms (a
/// millisecond clock), 4 ms and 10 ms (Linux jiffies at HZ=250 and HZ=100).
fn coarse_tick_ms(seed: u64) -> u64 {
    [1, 4, 10][(seed % 3) as usize]
}

#[test]
fn with_frames_held_through_the_app_every_byte_still_arrives_once_in_order() {
    let mut in_place = 0;
    let mut spilled = 0;
    for seed in seeds() {
        let (a, b, _) = run(seed, Rx::Held);
        in_place += a;
        spilled += b;
    }
    eprintln!("frames held: {in_place} bytes read in place, {spilled} bytes spilled");
    // The held mode really left data in the frames, and both fates happened.
    assert!(
        in_place > 0 && spilled > 0,
        "read in place {in_place}, spilled {spilled}"
    );
}

#[test]
fn with_a_clock_that_stands_still_between_polls_every_byte_still_arrives_once_in_order() {
    let mut stood_still = 0;
    for seed in seeds() {
        stood_still += run(seed, Rx::HeldCoarseClock(coarse_tick_ms(seed))).2;
    }
    // The stacks' clock really stood still while the wire's time moved on.
    assert!(stood_still > 0, "the clock never stood still");
}
