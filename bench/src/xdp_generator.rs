//! An AF_XDP load generator for the packet-rate benchmarks (`xdp_forward`, `dpdk_forward`):
//! raw Ethernet + IPv4 + UDP frames from a UMEM on the load side's veth end, no kernel stack on
//! the sending side, so that the responder rather than the sender is the bottleneck. It answers
//! ARP for its own address itself (its XDP program takes every frame for that address, and ARP
//! asking for it, away from the kernel), so a responder with a stack can reach it.
//!
//! While a [`Generator`] is open, the load side's kernel sees nothing addressed to the
//! generator's IPv4 address: a kernel UDP socket on that address gets no replies. Open it only
//! for the generator's measurements.
//!
//! Also here: [`in_ns`] and [`pin`], which the benchmarks that create namespaces share.

use shardnet::port::{Batch, Frame, Port};
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use shardnet_af_xdp::{AfXdpConfig, AfXdpPort, AttachMode, XdpFrame};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The generator's UDP source port.
pub const SOURCE_PORT: u16 = 9999;

/// Runs `f` on a new thread inside network namespace `ns` (`/run/netns/<ns>`, as `ip netns`
/// makes it). Panics (on that thread) if the namespace cannot be entered.
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Pins the calling thread to `cpu` (if the machine has it); a failure only means less stable
/// figures, so it is reported, not fatal.
pub fn pin(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpu >= cpus {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it for
    // cpu < CPU_SETSIZE; sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        eprintln!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
}

/// An Ethernet + IPv4 + UDP frame from `src` (port [`SOURCE_PORT`]) to `dst`:`dst_port` with
/// `size` payload bytes (0x5a), IPv4 header checksum filled in, UDP checksum 0 ("none", RFC 768:
/// "An all zero transmitted checksum value means that the transmitter generated no checksum").
pub fn udp_frame(
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dst_port: u16,
    size: usize,
) -> Vec<u8> {
    let mut f = vec![0u8; 42 + size];
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(28 + size).unwrap_or(u16::MAX);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[20] = 0x40; // DF
    f[22] = 64; // TTL
    f[23] = 17; // UDP
    f[26..30].copy_from_slice(&src.octets());
    f[30..34].copy_from_slice(&dst.octets());
    let mut sum = 0u32;
    for w in f[14..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&SOURCE_PORT.to_be_bytes());
    f[36..38].copy_from_slice(&dst_port.to_be_bytes());
    f[38..40].copy_from_slice(&u16::try_from(8 + size).unwrap_or(u16::MAX).to_be_bytes());
    f[42..].fill(0x5a);
    f
}

/// Turns an Ethernet ARP request for `me` into the reply from `mac`, in place (RFC 826: swap
/// the sender and target fields, put the answer in the sender hardware address, opcode
/// ares_op$REPLY). Returns false, touching nothing, for any other frame.
pub fn arp_reply(f: &mut [u8], me: Ipv4Addr, mac: EthernetAddress) -> bool {
    if f.len() < 42 || f[12..14] != [0x08, 0x06] || f[20..22] != [0, 1] || f[38..42] != me.octets()
    {
        return false;
    }
    let (mut requester_mac, mut requester_ip) = ([0u8; 6], [0u8; 4]);
    requester_mac.copy_from_slice(&f[22..28]);
    requester_ip.copy_from_slice(&f[28..32]);
    f[0..6].copy_from_slice(&requester_mac);
    f[6..12].copy_from_slice(&mac.0);
    f[21] = 2;
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&me.octets());
    f[32..38].copy_from_slice(&requester_mac);
    f[38..42].copy_from_slice(&requester_ip);
    true
}

/// Raw frames from an AF_XDP port on the load side: no kernel stack on the sending side, so the
/// responder is the bottleneck. It answers ARP for its own address itself.
pub struct Generator {
    port: AfXdpPort,
    mac: EthernetAddress,
    ip: Ipv4Addr,
}

impl Generator {
    /// Opens the generator on `dev` in namespace `ns` as `ip`, with the AF_XDP port's default
    /// UMEM (2048 frames of 2048 bytes: 4 MiB, which fits an 8 MiB `ulimit -l` beside another
    /// port's) and its XDP program attached in `mode`.
    pub fn open(
        ns: &str,
        dev: &str,
        ip: Ipv4Addr,
        mode: AttachMode,
    ) -> Result<Generator, shardnet_af_xdp::Error> {
        let dev = dev.to_owned();
        let port = in_ns(ns, move || {
            let mut c = AfXdpConfig::new(&dev, ip);
            c.mode = mode;
            AfXdpPort::open(&c)
        })
        .join()
        .unwrap_or_else(|_| panic!("the generator's port thread panicked"))?;
        let mac = port.capabilities().mac;
        Ok(Generator { port, mac, ip })
    }

    /// The generator's MAC address (its veth end's).
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The generator's IPv4 address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The AF_XDP port it sends on (for its attach and bind modes).
    pub fn port(&self) -> &AfXdpPort {
        &self.port
    }

    /// Handles one received frame: answers ARP, counts echoes from `from`.
    fn receive(&mut self, mut f: XdpFrame, from: Ipv4Addr, tx: &mut Batch<XdpFrame>) -> bool {
        let d = f.data();
        let echo = d.len() >= 42 && d[12..14] == [0x08, 0x00] && d[26..30] == from.octets();
        if !echo && !tx.is_full() && arp_reply(f.data_mut(), self.ip, self.mac) {
            tx.push(f);
            return false;
        }
        self.port.release(f);
        echo
    }

    /// Closed loop: `template` sent with `window` frames in flight for `d`, each IPv4 frame
    /// from `from` counting as an echo and sending the next one (a 20 ms silence counts the
    /// window as lost and refills it). Returns (echoes, presumed lost).
    pub fn echo(
        &mut self,
        template: &[u8],
        from: Ipv4Addr,
        window: usize,
        d: Duration,
    ) -> (u64, u64) {
        let (mut got, mut lost, mut in_flight) = (0u64, 0u64, 0usize);
        let mut tx: Batch<XdpFrame> = Batch::new();
        let mut rx: Batch<XdpFrame> = Batch::new();
        let mut last_rx = Instant::now();
        let end = last_rx + d;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            while in_flight < window && !tx.is_full() {
                let Some(mut f) = self.port.alloc_tx() else {
                    break;
                };
                f.buffer_mut()[..template.len()].copy_from_slice(template);
                f.set_len(template.len());
                tx.push(f);
                in_flight += 1;
            }
            self.port.tx_burst(&mut tx);
            if self.port.rx_burst(&mut rx) > 0 {
                last_rx = now;
            } else if now.duration_since(last_rx) > Duration::from_millis(20) {
                lost += in_flight as u64;
                in_flight = 0;
                last_rx = now;
            }
            for f in rx.drain(..) {
                if self.receive(f, from, &mut tx) {
                    got += 1;
                    in_flight = in_flight.saturating_sub(1);
                }
            }
        }
        // Let the window's last echoes arrive, and give every frame back.
        let drain_end = Instant::now() + Duration::from_millis(30);
        while Instant::now() < drain_end {
            self.port.tx_burst(&mut tx);
            self.port.rx_burst(&mut rx);
            for f in rx.drain(..) {
                self.port.release(f);
            }
        }
        for f in tx.drain(..) {
            self.port.release(f);
        }
        (got, lost)
    }

    /// Open loop: `template` as fast as the TX ring takes it, for `d` (answering ARP meanwhile);
    /// returns frames sent.
    pub fn blast(&mut self, template: &[u8], d: Duration) -> u64 {
        let mut sent = 0u64;
        let mut tx: Batch<XdpFrame> = Batch::new();
        let mut rx: Batch<XdpFrame> = Batch::new();
        let end = Instant::now() + d;
        while Instant::now() < end {
            while !tx.is_full() {
                let Some(mut f) = self.port.alloc_tx() else {
                    break;
                };
                f.buffer_mut()[..template.len()].copy_from_slice(template);
                f.set_len(template.len());
                tx.push(f);
            }
            sent += self.port.tx_burst(&mut tx) as u64;
            self.port.rx_burst(&mut rx);
            for f in rx.drain(..) {
                // ARP answered; anything else released.
                self.receive(f, Ipv4Addr::UNSPECIFIED, &mut tx);
            }
        }
        for f in tx.drain(..) {
            self.port.release(f);
        }
        sent
    }
}

/// The load's shape: payload bytes, echo window, seconds per measurement, the warm-up before
/// each, and the CPU the generator's thread runs on.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// UDP payload bytes.
    pub size: usize,
    /// Datagrams in flight in the echo pattern.
    pub window: usize,
    /// Seconds per measurement.
    pub secs: f64,
    /// Unmeasured load before each measurement.
    pub warmup: Duration,
    /// The CPU the generator's thread is pinned to.
    pub cpu: usize,
}

/// What [`generator_load`] measured against one responder.
#[derive(Clone, Copy, Debug, Default)]
pub struct GeneratorRun {
    /// Echoes received in the echo pattern.
    pub echoes: u64,
    /// Datagrams presumed lost in the echo pattern.
    pub lost: u64,
    /// Seconds the echo pattern was measured for.
    pub echo_secs: f64,
    /// Frames sent in the rx pattern.
    pub sent: u64,
    /// What the responder's counter counted in the rx pattern.
    pub received: u64,
    /// Seconds the rx pattern was measured for.
    pub rx_secs: f64,
}

/// Both patterns from the generator against `target`:`port` (whose MAC is `dst_mac`), on a
/// thread of its own pinned to `shape.cpu`; returns the generator for the next responder.
///
/// - **echo**: `echo` set, then [`Generator::echo`] for the warm-up and for `shape.secs`.
/// - **rx**: `echo` cleared, [`Generator::blast`] for the warm-up, `counter` zeroed, a blast for
///   `shape.secs`; the responder counts on `counter` what reaches it (read 50 ms after the end).
pub fn generator_load(
    mut g: Generator,
    dst_mac: EthernetAddress,
    target: Ipv4Addr,
    port: u16,
    shape: Shape,
    echo: &Arc<AtomicBool>,
    counter: &Arc<AtomicU64>,
) -> (Generator, GeneratorRun) {
    let Shape {
        size,
        window,
        secs,
        warmup,
        cpu,
    } = shape;
    let template = udp_frame(dst_mac, g.mac, g.ip, target, port, size);
    let (echo_flag, counter2) = (echo.clone(), counter.clone());
    std::thread::spawn(move || {
        pin(cpu);
        let d = Duration::from_secs_f64(secs);
        echo_flag.store(true, Ordering::SeqCst);
        g.echo(&template, target, window, warmup);
        let start = Instant::now();
        let (echoes, lost) = g.echo(&template, target, window, d);
        let echo_secs = start.elapsed().as_secs_f64();
        echo_flag.store(false, Ordering::SeqCst);
        g.blast(&template, warmup);
        std::thread::sleep(Duration::from_millis(50));
        counter2.store(0, Ordering::SeqCst);
        let start = Instant::now();
        let sent = g.blast(&template, d);
        let rx_secs = start.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(50));
        let run = GeneratorRun {
            echoes,
            lost,
            echo_secs,
            sent,
            received: counter2.load(Ordering::SeqCst),
            rx_secs,
        };
        (g, run)
    })
    .join()
    .expect("the generator thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardnet::wire::{ChecksumMode, ethernet, ipv4, udp};

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn udp_frame_parses_with_a_valid_ip_checksum_and_no_udp_checksum() {
        let f = udp_frame(B, A, IP_A, IP_B, 7, 64);
        let eth = ethernet::Frame::new_checked(&f[..]).expect("Ethernet");
        assert_eq!(eth.dst_addr(), B);
        assert_eq!(eth.src_addr(), A);
        let ip = ipv4::Packet::new_checked(eth.payload()).expect("IPv4");
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        assert_eq!((ip.src_addr(), ip.dst_addr()), (IP_A, IP_B));
        let d = udp::Packet::new_checked(ip.payload()).expect("UDP");
        let r = udp::Repr::parse(&d, IP_A, IP_B, ChecksumMode::Software).expect("UDP repr");
        assert_eq!((r.src_port, r.dst_port), (SOURCE_PORT, 7));
        assert_eq!(d.checksum(), 0);
        assert_eq!(d.payload(), &[0x5a; 64][..]);
    }

    #[test]
    fn arp_request_for_us_becomes_the_reply_and_others_are_left_alone() {
        // The peer's request for IP_US (the crate's fixture), answered as IP_US from A.
        let mut f = crate::arp_request_frame();
        let request = f.clone();
        assert!(!arp_reply(&mut f, IP_B, A), "a request for someone else");
        assert_eq!(f, request);
        assert!(arp_reply(&mut f, crate::IP_US, A));
        assert_eq!(&f[0..6], &crate::MAC_PEER.0, "back to the requester");
        assert_eq!(&f[6..12], &A.0);
        assert_eq!(&f[20..22], &[0, 2], "opcode reply");
        assert_eq!(&f[22..28], &A.0, "sender hardware address: the answer");
        assert_eq!(&f[28..32], &crate::IP_US.octets());
        assert_eq!(&f[32..38], &crate::MAC_PEER.0);
        assert_eq!(&f[38..42], &crate::IP_PEER.octets());
        let mut udp = udp_frame(B, A, IP_A, IP_B, 7, 8);
        assert!(!arp_reply(&mut udp, IP_B, A), "not ARP");
    }
}
