//! The load generator's shardnet job on the memory wire (UDP request/response).
//!
//! It runs the foundation milestone's main job: two shardnet stacks on the in-process
//! memory wire (no root, no NIC), a client and a UDP echo server, driven in one thread with the
//! real clock. The client resolves the server by ARP, pings it, then keeps `--sockets` UDP
//! request/response exchanges in flight until `--count` requests are answered, and prints the
//! request rate, latency percentiles (HDR histogram) and both stacks' counters.
//!
//! The memory wire can drop, duplicate, reorder and delay frames from a seed (`--loss`, ...):
//! lost requests or responses time out and are sent again, and are reported, never hidden.

use crate::{CLIENT, SERVER, shard_for};
use hdrhistogram::Histogram;
use shardnet::port::Port;
use shardnet::shard::Shard;
use shardnet::time::{Duration, Instant};
use shardnet::udp::UdpHandle;
use shardnet_memory::{Impairments, MemoryPort, Wire, WireConfig};
use shardnet_pcap::{Clock, PcapPort};
use std::io::{BufWriter, Write};
use std::net::SocketAddrV4;

/// The UDP job's options (loadgen's flags of the same names).
#[derive(Clone, Debug)]
pub struct UdpJob {
    /// Requests to complete.
    pub count: u64,
    /// Sockets, each with one request in flight (closed loop).
    pub sockets: usize,
    /// Request and response size in bytes (8..=1472).
    pub size: u16,
    /// Give up after this many seconds even if not all requests were answered.
    pub max_seconds: f64,
    /// Resend a request that got no answer after this many milliseconds.
    pub timeout_ms: u64,
    /// Probability that the wire drops a frame.
    pub loss: f64,
    /// Probability that the wire duplicates a frame.
    pub dup: f64,
    /// Probability that the wire delays a frame by 100 us (reordering it).
    pub reorder: f64,
    /// Seed of the wire's impairments.
    pub seed: u64,
    /// Write the client's frames to this pcap file.
    pub pcap: Option<std::path::PathBuf>,
    /// Print every non-zero counter of both stacks at the end.
    pub stats: bool,
}

const ECHO_PORT: u16 = 7;

struct Client {
    sockets: Vec<UdpHandle>,
    /// Per socket: the sequence number in flight, when it was first sent (latency counts from
    /// there, resends included) and when it was last sent (for the resend timeout).
    in_flight: Vec<Option<(u64, std::time::Instant, std::time::Instant)>>,
    next_seq: u64,
    answered: u64,
    timeouts: u64,
    stale: u64,
    latency: Histogram<u64>,
}

/// Runs the job: Ok(true) if every request was answered, Ok(false) if not in time.
pub fn run_job(args: &UdpJob) -> Result<bool, String> {
    let wire = Wire::new(WireConfig {
        seed: args.seed,
        pool_size: 4096,
        impairments: Impairments {
            loss: args.loss,
            duplicate: args.dup,
            reorder: args.reorder,
            reorder_delay: Duration::from_micros(100),
            ..Impairments::NONE
        },
        ..WireConfig::default()
    });
    let client_port = wire.add_port(CLIENT.mac, 1);
    let server_port = wire.add_port(SERVER.mac, 1);
    let (Ok(a), Ok(b)) = (wire.port(client_port, 0), wire.port(server_port, 0)) else {
        return Err("could not open the memory wire's ports".to_string());
    };
    match &args.pcap {
        Some(path) => {
            let file = match std::fs::File::create(path) {
                Ok(f) => BufWriter::new(f),
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            };
            match PcapPort::new(a, file, Clock::System) {
                Ok(captured) => run(args, &wire, captured, b),
                Err(e) => Err(format!("cannot write the pcap header: {e}")),
            }
        }
        None => run(args, &wire, a, b),
    }
}

/// Runs the test; Ok(false) if not every request was answered in time.
fn run<P: Port>(
    args: &UdpJob,
    wire: &Wire,
    mut client_port: P,
    mut server_port: MemoryPort,
) -> Result<bool, String> {
    let queue = (args.sockets * 4).max(64);
    let mut client = shard_for(CLIENT, queue);
    let mut server = shard_for(SERVER, queue);
    let start = std::time::Instant::now();
    let clock =
        || Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    let poll = |client: &mut Shard,
                server: &mut Shard,
                client_port: &mut P,
                server_port: &mut MemoryPort| {
        let now = clock();
        wire.advance_to(now);
        client.poll_port(now, client_port);
        server.poll_port(now, server_port);
    };

    println!(
        "shardnet loadgen: UDP request/response over the memory wire (driver: memory, 2 stacks, 1 thread)"
    );
    println!(
        "  client {} ({}), server {} ({}), impairments: loss {} dup {} reorder {} seed {}",
        CLIENT.ip, CLIENT.mac, SERVER.ip, SERVER.mac, args.loss, args.dup, args.reorder, args.seed
    );

    // ARP + ping, retried like `ping` would if the wire loses them.
    let ping_start = std::time::Instant::now();
    let mut rtt = None;
    'ping: for seq in 1..=20u16 {
        client
            .ping(clock(), SERVER.ip, 1, seq, b"shardnet ping")
            .map_err(|e| format!("ping: {}", e.errno()))?;
        let sent = std::time::Instant::now();
        while sent.elapsed() < std::time::Duration::from_millis(200) {
            poll(&mut client, &mut server, &mut client_port, &mut server_port);
            let mut buf = [0u8; 64];
            if let Some(reply) = client.recv_echo_reply(&mut buf) {
                rtt = Some((seq, sent.elapsed(), reply.from));
                break 'ping;
            }
        }
    }
    let Some((seq, rtt, from)) = rtt else {
        return Err(format!(
            "no ping reply from {} in {:?}",
            SERVER.ip,
            ping_start.elapsed()
        ));
    };
    let mac = client
        .arp_cache()
        .peek(SERVER.ip)
        .map(|m| m.to_string())
        .unwrap_or_default();
    println!(
        "  arp: {} is-at {mac}; ping: reply from {from} to request {seq}, rtt {:.1} us",
        SERVER.ip,
        rtt.as_secs_f64() * 1e6
    );

    // The echo server: one socket on port 7.
    let echo = server.udp().open().map_err(|e| e.errno().to_string())?;
    server
        .udp_bind(echo, SocketAddrV4::new(SERVER.ip, ECHO_PORT))
        .map_err(|e| e.errno().to_string())?;

    let mut c = Client {
        sockets: Vec::with_capacity(args.sockets),
        in_flight: vec![None; args.sockets],
        next_seq: 0,
        answered: 0,
        timeouts: 0,
        stale: 0,
        latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?,
    };
    for _ in 0..args.sockets {
        let h = client.udp().open().map_err(|e| e.errno().to_string())?;
        client
            .udp()
            .connect(h, SocketAddrV4::new(SERVER.ip, ECHO_PORT))
            .map_err(|e| e.errno().to_string())?;
        c.sockets.push(h);
    }

    let size = usize::from(args.size);
    let mut request = vec![0u8; size];
    let mut buf = vec![0u8; 2048];
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    let max = std::time::Duration::from_secs_f64(args.max_seconds);
    let rr_start = std::time::Instant::now();
    while c.answered < args.count && rr_start.elapsed() < max {
        // Client: send where nothing is in flight, resend what timed out.
        let wall = std::time::Instant::now();
        for (i, &h) in c.sockets.iter().enumerate() {
            let (seq, first) = match c.in_flight[i] {
                None if c.next_seq < args.count => {
                    c.next_seq += 1;
                    (c.next_seq, wall)
                }
                Some((seq, first, last)) if wall.duration_since(last) > timeout => {
                    c.timeouts += 1;
                    (seq, first)
                }
                _ => continue,
            };
            request[..8].copy_from_slice(&seq.to_be_bytes());
            if client.udp_send_to(h, None, &request).is_ok() {
                c.in_flight[i] = Some((seq, first, wall));
            }
        }
        poll(&mut client, &mut server, &mut client_port, &mut server_port);
        // Server: echo every datagram back to its sender.
        while let Ok(r) = server.udp().recv_from(echo, &mut buf) {
            // A full send queue drops the echo, as a UDP server would; the client resends.
            let _ = server.udp_send_to(echo, Some(r.from), &buf[..r.len]);
        }
        poll(&mut client, &mut server, &mut client_port, &mut server_port);
        // Client: match responses to requests.
        for (i, &h) in c.sockets.iter().enumerate() {
            while let Ok(r) = client.udp().recv_from(h, &mut buf) {
                let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                match c.in_flight[i] {
                    Some((want, first, _)) if want == seq && r.len == size => {
                        let ns = u64::try_from(first.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        c.latency.saturating_record(ns.max(1));
                        c.answered += 1;
                        c.in_flight[i] = None;
                    }
                    _ => c.stale += 1,
                }
            }
        }
    }
    let elapsed = rr_start.elapsed();

    let q = |p: f64| c.latency.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "  rr: {} of {} requests of {size} B answered on {} sockets in {:.3} s: {:.0} requests/s",
        c.answered,
        args.count,
        args.sockets,
        elapsed.as_secs_f64(),
        c.answered as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency (us): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        c.latency.max() as f64 / 1000.0
    );
    let wire_totals = wire.total_counters();
    println!(
        "  resent after timeout: {}; late or duplicate responses: {}; wire: {} frames, {} lost, {} duplicated, {} reordered",
        c.timeouts,
        c.stale,
        wire_totals.tx_frames,
        wire_totals.lost,
        wire_totals.duplicated,
        wire_totals.reordered
    );
    println!(
        "  note: both stacks and the wire share one thread; this measures the stack's cost, not a NIC."
    );
    if args.stats {
        for (name, shard) in [("client", &client), ("server", &server)] {
            println!("-- {name} counters");
            print!("{}", shard.stats().render(false));
        }
    }
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    Ok(c.answered == args.count)
}
