//! RSS steering for active opens: choosing an ephemeral source port whose *reply* traffic the
//! NIC's receive-side scaling delivers to the shard that opened the connection (design rule 5,
//! "Steering is exact").
//!
//! # The problem
//!
//! Shard `q` owns receive queue `q`. When it connects from `L:P` to `R:Rp`, the replies arrive
//! with source `R:Rp` and destination `L:P`, and the NIC puts them on queue
//! `indirection[toeplitz(key, R ‖ L ‖ Rp ‖ P) % indirection.len()]` (Microsoft's "Receive-Side
//! Scaling" specification: the Toeplitz hash over the 12-byte IPv4 input, source address,
//! destination address, source port, destination port, in network byte order; see
//! [`super::rss`]). Everything in that input is fixed by the connection except `P`, so the shard
//! picks `P` from Linux's default ephemeral range ([`crate::udp::EPHEMERAL_PORTS`]) such that the
//! queue is `q` and the 4-tuple is free. With `n` queues spread evenly about `1/n` of the ports
//! qualify for any given destination.
//!
//! # The approach: the hash is linear
//!
//! The Toeplitz hash XORs one 32-bit key window into the result for every set input bit, so it
//! is linear over XOR: `hash(a ^ b) = hash(a) ^ hash(b)`. Splitting the input into the part
//! fixed per connect (addresses and remote port, with the local port zeroed) and the two bytes
//! of the local port gives
//!
//! ```text
//! hash(R, L, Rp, P) = hash(R, L, Rp, 0) ^ hi[P >> 8] ^ lo[P & 0xff]
//! ```
//!
//! where `hi[b]` and `lo[b]` are the hashes of an input that is all zero except byte 10
//! (resp. 11), which is `b`. [`PortSteering::new`] precomputes the two 256-entry tables (2 KiB)
//! once per shard; each [`PortSteering::pick`] hashes the fixed part once, and then costs two
//! lookups, two XORs and one indirection lookup per candidate port: no per-port Toeplitz hash, and
//! no allocation. The queue test comes before the caller's (possibly costlier) `is_free` test.
//!
//! # Which candidates first: RFC 6056 Algorithm 4
//!
//! Candidates are tried in the order of RFC 6056 section 3.3.4, "Algorithm 4: Double-Hash Port
//! Selection Algorithm", the algorithm Linux uses (`__inet_hash_connect`, with its
//! `table_perturb` array of counters):
//!
//! ```text
//! offset = F(local_IP, remote_IP, remote_port, secret_key1);
//! index = G(local_IP, remote_IP, remote_port, secret_key2);
//! do {
//!     port = min_ephemeral + (offset + table[index]) % num_ephemeral;
//!     table[index]++;
//!     if (check_suitable_port(port)) return port;
//! } while (--count > 0);
//! ```
//!
//! F and G are the low and high halves of one SipHash-1-3 of the addresses and remote port under
//! the shard's secret (the key of [`PortSteering::with_secret`]; the runtime draws it from the
//! OS's random source, tests fix it). So each destination gets its own unpredictable starting
//! point (an off-path attacker cannot guess the port of a connection to another destination:
//! RFC 6056 section 1), while successive connections to one destination walk forward from the
//! last port used (the counter `table[index]` moved past it), which keeps reuse of a 4-tuple
//! (and so collisions with its TIME-WAIT) as rare as with a global counter: the reason RFC 6056
//! gives Algorithm 4 its table of counters. The table holds [`TABLE_LENGTH`]
//! counters, initialised from the key, as RFC 6056 initialises them with random values.
//! Destinations that share a counter only advance each other's sequence, which RFC 6056
//! accepts as the cost of a fixed-size table.
//!
//! "Suitable" here is: the reply steers to this shard's queue, and the caller's `is_free`
//! (4-tuple not in use, not in TIME-WAIT unless reuse is safe, port not bound). A pick costs one
//! SipHash and then a few table lookups per candidate; it does not allocate.

use super::rss::{ToeplitzTable, ipv4_tcp_udp_input, queue_for_hash};
use crate::port::RssConfig;
use crate::udp::EPHEMERAL_PORTS;
use core::hash::Hasher;
use core::net::{Ipv4Addr, SocketAddrV4};
use siphasher::sip::SipHasher13;

/// Number of counters of RFC 6056 Algorithm 4's `table[]` (Linux has 2^16 of them,
/// `INET_TABLE_PERTURB_SIZE`; 1024 keeps a shard's table at 4 KiB, and the index is keyed, so
/// which destinations share a counter is unpredictable).
pub const TABLE_LENGTH: usize = 1024;

/// The number of ports in [`EPHEMERAL_PORTS`] (tests).
#[cfg(test)]
const SPAN: u32 = (*EPHEMERAL_PORTS.end() as u32) - (*EPHEMERAL_PORTS.start() as u32) + 1;

/// Byte offset of the destination port in the IPv4 TCP/UDP hash input
/// ([`ipv4_tcp_udp_input`]): the local port, for a reply.
const DST_PORT_OFFSET: usize = 10;

/// What a multi-queue device needs for prediction: its RSS configuration and the precomputed
/// hash tables.
#[derive(Clone, Debug)]
struct Rss {
    /// The key and indirection table, as the driver reported them.
    config: RssConfig,
    /// The Toeplitz table for `config.key`.
    table: ToeplitzTable,
    /// `hi[b]`: the hash contribution of `b` as the high byte of the reply's destination port.
    hi: [u32; 256],
    /// `lo[b]`: the hash contribution of `b` as the low byte of the reply's destination port.
    lo: [u32; 256],
}

impl Rss {
    /// The contribution of destination port `port` to the reply's hash (the linear part).
    #[inline]
    fn port_part(&self, port: u16) -> u32 {
        let [hi, lo] = port.to_be_bytes();
        self.hi[usize::from(hi)] ^ self.lo[usize::from(lo)]
    }

    /// The hash of the reply `remote -> local_ip:0`: everything but the local port.
    #[inline]
    fn fixed_part(&self, local_ip: Ipv4Addr, remote: SocketAddrV4) -> u32 {
        // A zero byte contributes nothing, so the port-less input hashes to the fixed part.
        self.table.hash(&ipv4_tcp_udp_input(
            *remote.ip(),
            local_ip,
            remote.port(),
            0,
        ))
    }
}

/// Per-shard source port selection that makes a connection's replies arrive on the shard's own
/// receive queue. See the [module documentation](self) for the approach.
#[derive(Clone, Debug)]
pub struct PortSteering {
    /// `None` for a single-queue device (no RSS): every port is fine.
    rss: Option<Rss>,
    /// This shard's receive queue.
    queue: u16,
    /// The secret of F and G (RFC 6056 `secret_key1`/`secret_key2`).
    key: [u8; 16],
    /// RFC 6056 Algorithm 4's `table[]`: per-hash-bucket counters added to the offset.
    table: Box<[u32; TABLE_LENGTH]>,
    /// First port of the ephemeral range (Linux `ip_local_port_range`, default
    /// [`EPHEMERAL_PORTS`]: 32768-60999).
    start: u16,
    /// Number of ports in the range (at least 1).
    span: u32,
}

impl PortSteering {
    /// Steering for the shard that owns receive queue `queue`, on a device with RSS configuration
    /// `rss` (from [`crate::port::Capabilities::rss`]). `None`, a single-queue device, makes every
    /// port acceptable.
    ///
    /// The RFC 6056 secret is all zeros: fine for tests, predictable otherwise; a shard uses
    /// [`PortSteering::with_secret`].
    ///
    /// Allocates the Toeplitz table (40 KiB for a 40-byte key) and the counter table (4 KiB);
    /// nothing else in this type does.
    pub fn new(rss: Option<&RssConfig>, queue: u16) -> Self {
        Self::with_secret(rss, queue, [0; 16])
    }

    /// [`PortSteering::new`] with `secret` keying RFC 6056's F and G and seeding its counter
    /// table (the shard's secret: random in the runtime, fixed in tests).
    pub fn with_secret(rss: Option<&RssConfig>, queue: u16, secret: [u8; 16]) -> Self {
        let rss = rss.map(|config| {
            let table = ToeplitzTable::new(&config.key);
            let mut hi = [0u32; 256];
            let mut lo = [0u32; 256];
            let mut input = [0u8; 12];
            for b in 0..=255u8 {
                input[DST_PORT_OFFSET] = b;
                input[DST_PORT_OFFSET + 1] = 0;
                hi[usize::from(b)] = table.hash(&input);
                input[DST_PORT_OFFSET] = 0;
                input[DST_PORT_OFFSET + 1] = b;
                lo[usize::from(b)] = table.hash(&input);
            }
            Rss {
                config: config.clone(),
                table,
                hi,
                lo,
            }
        });
        // RFC 6056 3.3.4: "table[i] = random() % 65536", from the secret here.
        let mut table = Box::new([0u32; TABLE_LENGTH]);
        for (i, t) in table.iter_mut().enumerate() {
            let mut h = SipHasher13::new_with_key(&secret);
            h.write(b"rfc6056 table");
            h.write_u32(i as u32);
            *t = (h.finish() as u32) & 0xffff;
        }
        PortSteering {
            rss,
            queue,
            key: secret,
            table,
            start: *EPHEMERAL_PORTS.start(),
            span: u32::from(*EPHEMERAL_PORTS.end() - *EPHEMERAL_PORTS.start()) + 1,
        }
    }

    /// Sets the ephemeral port range to `first..=last` (Linux `net.ipv4.ip_local_port_range`).
    /// False (and no change) if `first` is 0 or `first > last`.
    pub fn set_range(&mut self, first: u16, last: u16) -> bool {
        if first == 0 || first > last {
            return false;
        }
        self.start = first;
        self.span = u32::from(last - first) + 1;
        true
    }

    /// The ephemeral port range, `(first, last)`.
    pub fn range(&self) -> (u16, u16) {
        // start + span - 1 <= 65535 by construction in `set_range` and `new`.
        let last = u32::from(self.start) + self.span - 1;
        (self.start, u16::try_from(last).unwrap_or(u16::MAX))
    }

    /// The RFC 6056 secret (kept when the shard's RSS configuration changes).
    pub(crate) fn secret(&self) -> [u8; 16] {
        self.key
    }

    /// This shard's receive queue.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The RSS configuration steering follows; `None` for a single-queue device.
    pub fn rss(&self) -> Option<&RssConfig> {
        self.rss.as_ref().map(|r| &r.config)
    }

    /// The queue on which the device receives a TCP or UDP frame from `src` to `dst`:
    /// `indirection[toeplitz(key, src ip ‖ dst ip ‖ src port ‖ dst port) % len]`. Queue 0 on a
    /// single-queue device (and with an empty indirection table).
    pub fn queue_for(&self, src: SocketAddrV4, dst: SocketAddrV4) -> u16 {
        match &self.rss {
            None => 0,
            Some(rss) => {
                let input = ipv4_tcp_udp_input(*src.ip(), *dst.ip(), src.port(), dst.port());
                queue_for_hash(&rss.config, rss.table.hash(&input))
            }
        }
    }

    /// Whether the replies of a connection from `local` to `remote` (frames `remote -> local`)
    /// arrive on this shard's queue. Always true on a single-queue device.
    pub fn steer_ok(&self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        self.rss.is_none() || self.queue_for(remote, local) == self.queue
    }

    /// The keys of the secret table: RFC 6056's `offset` (F) and `index` (G) for a connection
    /// from `local_ip` to `remote`.
    #[inline]
    fn offset_and_index(&self, local_ip: Ipv4Addr, remote: SocketAddrV4) -> (u32, usize) {
        // The addresses as one fixed-width word: SipHash takes it without its byte-tail loop
        // (as the ISN generator does).
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write_u64(u64::from(local_ip.to_bits()) << 32 | u64::from(remote.ip().to_bits()));
        h.write_u16(remote.port());
        let v = h.finish();
        // Two independent halves of one keyed hash stand for F and G with two keys.
        (v as u32, ((v >> 32) as usize) % TABLE_LENGTH)
    }

    /// A local port `P` in the ephemeral range for a connection from `local_ip` to `remote` such
    /// that the replies (`remote -> local_ip:P`) arrive on this shard's queue and `is_free(P)`
    /// holds; `None` if the range holds no such port (the caller's `EADDRNOTAVAIL`).
    ///
    /// Ports are tried in RFC 6056 Algorithm 4 order (see the [module documentation](self)):
    /// from `offset + table[index]`, upwards and wrapping at the end of the range, each port
    /// tried moving the counter on by one; `is_free` is asked only about ports that steer here.
    /// Does not allocate.
    pub fn pick(
        &mut self,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        mut is_free: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let start = u32::from(self.start);
        let fixed = self
            .rss
            .as_ref()
            .map(|rss| rss.fixed_part(local_ip, remote));
        let (offset, index) = self.offset_and_index(local_ip, remote);
        let counter = self.table.get(index).copied().unwrap_or(0);
        let first = offset.wrapping_add(counter) % self.span;
        for i in 0..self.span {
            let port_offset = (first + i) % self.span;
            // start + port_offset <= the range's last port: within u16.
            let port = u16::try_from(start + port_offset).ok()?;
            let steers_here = match (&self.rss, fixed) {
                (Some(rss), Some(fixed)) => {
                    queue_for_hash(&rss.config, fixed ^ rss.port_part(port)) == self.queue
                }
                _ => true,
            };
            if steers_here && is_free(port) {
                // "table[index]++" for each port tried, this one included.
                if let Some(t) = self.table.get_mut(index) {
                    *t = t.wrapping_add(i + 1);
                }
                return Some(port);
            }
        }
        // Every port tried: the counter went round the whole range, which changes nothing
        // modulo its size.
        None
    }

    /// The share of hashes the indirection table sends to this shard's queue: about the fraction
    /// of [`EPHEMERAL_PORTS`] that [`PortSteering::pick`] can use for any one destination (the
    /// exact share depends on the addresses). 1.0 on a single-queue device.
    pub fn candidates_fraction(&self) -> f64 {
        let Some(rss) = &self.rss else {
            return 1.0;
        };
        let table = &rss.config.indirection;
        if table.is_empty() {
            return if self.queue == 0 { 1.0 } else { 0.0 };
        }
        let ours = table.iter().filter(|&&q| q == self.queue).count();
        ours as f64 / table.len() as f64
    }

    /// The reply hash by the linear decomposition, for tests against [`super::rss::toeplitz_hash`].
    #[cfg(test)]
    fn fast_reply_hash(&self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<u32> {
        let rss = self.rss.as_ref()?;
        Some(rss.fixed_part(*local.ip(), remote) ^ rss.port_part(local.port()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // house rule: tests may unwrap
mod tests {
    use super::*;
    use crate::shard::rss::{
        DEFAULT_INDIRECTION_ENTRIES, DEFAULT_KEY, SYMMETRIC_KEY, round_robin_indirection,
        toeplitz_hash,
    };
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn config(queues: u16) -> RssConfig {
        RssConfig {
            key: DEFAULT_KEY.to_vec(),
            indirection: round_robin_indirection(queues, DEFAULT_INDIRECTION_ENTRIES),
        }
    }

    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn remote(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, n), 80 + u16::from(n))
    }

    /// The queue of the reply `remote -> local_ip:port`, by the plain bitwise hash.
    fn reference_queue(
        rss: &RssConfig,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        port: u16,
    ) -> u16 {
        let input = ipv4_tcp_udp_input(*remote.ip(), local_ip, remote.port(), port);
        queue_for_hash(rss, toeplitz_hash(&rss.key, &input))
    }

    #[test]
    fn picked_ports_steer_replies_to_the_picking_queue() {
        for queues in [2u16, 4, 7] {
            let rss = config(queues);
            for q in 0..queues {
                let mut steering = PortSteering::new(Some(&rss), q);
                for n in 0..20 {
                    let remote = remote(n);
                    let port = steering.pick(LOCAL, remote, |_| true).unwrap();
                    assert!(EPHEMERAL_PORTS.contains(&port));
                    assert_eq!(
                        reference_queue(&rss, LOCAL, remote, port),
                        q,
                        "{queues} queues, queue {q}, remote {remote}, port {port}"
                    );
                    let local = SocketAddrV4::new(LOCAL, port);
                    assert!(steering.steer_ok(local, remote));
                    assert_eq!(steering.queue_for(remote, local), q);
                }
            }
        }
    }

    #[test]
    fn successive_picks_are_distinct_and_spread_when_used_ports_are_not_free() {
        for queues in [2u16, 4, 7] {
            let rss = config(queues);
            let mut steering = PortSteering::new(Some(&rss), queues - 1);
            let remote = remote(1);
            let mut used = HashSet::new();
            for _ in 0..500 {
                let port = steering
                    .pick(LOCAL, remote, |p| !used.contains(&p))
                    .unwrap();
                assert!(used.insert(port), "port {port} picked twice");
                assert_eq!(reference_queue(&rss, LOCAL, remote, port), queues - 1);
            }
            // 500 ports at ~1/n density span about 500 * n ports of the range, not a cluster.
            let (min, max) = (used.iter().min().unwrap(), used.iter().max().unwrap());
            assert!(
                u32::from(max - min) > 250 * u32::from(queues),
                "{queues} queues: ports only span {min}..={max}"
            );
        }
    }

    #[test]
    fn every_steering_port_of_the_range_is_found_then_none() {
        let rss = config(4);
        let remote = remote(3);
        let mut steering = PortSteering::new(Some(&rss), 2);
        let expected: HashSet<u16> = EPHEMERAL_PORTS
            .filter(|&p| reference_queue(&rss, LOCAL, remote, p) == 2)
            .collect();
        let mut used = HashSet::new();
        while let Some(port) = steering.pick(LOCAL, remote, |p| !used.contains(&p)) {
            assert!(used.insert(port));
        }
        assert_eq!(used, expected);
        let share = expected.len() as f64 / f64::from(SPAN);
        assert!(
            (share - steering.candidates_fraction()).abs() < 0.05,
            "{share}"
        );
    }

    #[test]
    fn pick_is_none_when_no_port_is_free() {
        let mut steering = PortSteering::new(Some(&config(4)), 1);
        let mut asked = 0;
        assert_eq!(
            steering.pick(LOCAL, remote(1), |_| {
                asked += 1;
                false
            }),
            None
        );
        // Only ports that steer to queue 1 are offered to `is_free`: about a quarter.
        assert!(asked > 0 && asked < SPAN / 3, "asked about {asked} ports");
        let mut single = PortSteering::new(None, 0);
        assert_eq!(single.pick(LOCAL, remote(1), |_| false), None);
    }

    #[test]
    fn a_single_queue_device_accepts_any_free_port() {
        let mut steering = PortSteering::new(None, 0);
        let first = steering.pick(LOCAL, remote(1), |_| true).unwrap();
        let next = |p: u16| if p == 60999 { 32768 } else { p + 1 };
        assert_eq!(steering.pick(LOCAL, remote(1), |_| true), Some(next(first)));
        let third = steering.pick(LOCAL, remote(1), |p| p % 10 == 7).unwrap();
        assert_eq!(third % 10, 7);
        let local = SocketAddrV4::new(LOCAL, 40000);
        assert!(steering.steer_ok(local, remote(9)));
        assert_eq!(steering.queue_for(remote(9), local), 0);
        assert_eq!(steering.candidates_fraction(), 1.0);
        assert_eq!(steering.rss(), None);
    }

    #[test]
    fn picks_to_one_destination_wrap_at_the_end_of_a_small_range() {
        let mut steering = PortSteering::new(None, 0);
        assert!(steering.set_range(50000, 50003));
        let picks: Vec<u16> = (0..8)
            .map(|_| steering.pick(LOCAL, remote(1), |_| true).unwrap())
            .collect();
        for w in picks.windows(2) {
            let want = if w[0] == 50003 { 50000 } else { w[0] + 1 };
            assert_eq!(w[1], want, "{picks:?}");
        }
    }

    /// Two shards of one runtime (same RSS, different queues) never hand out the same local
    /// port towards the same destination: each port's reply steers to exactly one queue. This
    /// is what keeps ephemeral 4-tuples unique across shards without any shared state (the
    /// shared [`super::super::bind_table`] is for explicit binds).
    #[test]
    fn two_shards_never_pick_the_same_port_towards_one_destination() {
        let rss = config(2);
        let remote = remote(4);
        let mut seen = [HashSet::new(), HashSet::new()];
        for q in 0..2u16 {
            let mut steering = PortSteering::with_secret(Some(&rss), q, [5; 16]);
            assert!(steering.set_range(40000, 40999));
            let set = &mut seen[usize::from(q)];
            while let Some(p) = steering.pick(LOCAL, remote, |p| !set.contains(&p)) {
                set.insert(p);
            }
        }
        assert!(seen[0].is_disjoint(&seen[1]));
        assert_eq!(
            seen[0].len() + seen[1].len(),
            1000,
            "together they cover the range"
        );
    }

    /// RFC 6056 Algorithm 4: one destination's ports increase from pick to pick (by the ports
    /// that do not steer here, at most a few), wrapping at the end of the range.
    #[test]
    fn ports_to_one_destination_increase_consecutively() {
        for queues in [1u16, 2, 4] {
            let rss = config(queues);
            let mut steering = PortSteering::with_secret((queues > 1).then_some(&rss), 0, [7; 16]);
            let mut prev = steering.pick(LOCAL, remote(5), |_| true).unwrap();
            for _ in 0..300 {
                let port = steering.pick(LOCAL, remote(5), |_| true).unwrap();
                let step = (u32::from(port) + SPAN - u32::from(prev)) % SPAN;
                assert!(
                    step >= 1 && step <= 16 * u32::from(queues),
                    "{queues} queues: {prev} -> {port}"
                );
                prev = port;
            }
        }
    }

    /// RFC 6056 Algorithm 4: each destination starts from its own keyed offset and advances its
    /// own counter: connections to one destination do not move another's sequence.
    #[test]
    fn different_destinations_get_independent_sequences() {
        let rss = config(4);
        let mut steering = PortSteering::with_secret(Some(&rss), 1, [9; 16]);
        let (a, b) = (remote(1), remote(2));
        let (off_a, idx_a) = steering.offset_and_index(LOCAL, a);
        let (off_b, idx_b) = steering.offset_and_index(LOCAL, b);
        assert_ne!(
            idx_a, idx_b,
            "the test needs destinations on different counters"
        );
        assert_ne!(off_a % SPAN, off_b % SPAN);
        let mut untouched = steering.clone();
        let b_first = untouched.pick(LOCAL, b, |_| true).unwrap();
        let a_ports: Vec<u16> = (0..100)
            .map(|_| steering.pick(LOCAL, a, |_| true).unwrap())
            .collect();
        // B's sequence is where it was, whatever A did.
        assert_eq!(steering.pick(LOCAL, b, |_| true), Some(b_first));
        // Starting points differ between destinations and between secrets.
        let first_a = PortSteering::with_secret(Some(&rss), 1, [9; 16])
            .pick(LOCAL, a, |_| true)
            .unwrap();
        assert_eq!(first_a, a_ports[0]);
        assert_ne!(first_a, b_first);
        let other_secret = PortSteering::with_secret(Some(&rss), 1, [10; 16])
            .pick(LOCAL, a, |_| true)
            .unwrap();
        assert_ne!(other_secret, first_a);
        // The local address is an input too (several source addresses: own sequences).
        let other_local = PortSteering::with_secret(Some(&rss), 1, [9; 16])
            .pick(Ipv4Addr::new(198, 18, 0, 3), a, |_| true)
            .unwrap();
        assert_ne!(other_local, first_a);
    }

    #[test]
    fn candidates_fraction_is_the_queues_share_of_the_indirection_table() {
        let rss = config(4);
        assert_eq!(PortSteering::new(Some(&rss), 0).candidates_fraction(), 0.25);
        let seven = config(7);
        // 128 entries over 7 queues: queue 0 has 19, queue 6 has 18.
        assert_eq!(
            PortSteering::new(Some(&seven), 0).candidates_fraction(),
            19.0 / 128.0
        );
        assert_eq!(
            PortSteering::new(Some(&seven), 6).candidates_fraction(),
            18.0 / 128.0
        );
    }

    proptest! {
        #[test]
        fn linear_decomposition_equals_the_bitwise_hash(
            local_ip: [u8; 4], remote_ip: [u8; 4], local_port: u16, remote_port: u16,
            symmetric: bool,
        ) {
            let key = if symmetric { SYMMETRIC_KEY } else { DEFAULT_KEY };
            let rss = RssConfig { key: key.to_vec(), indirection: round_robin_indirection(4, 128) };
            let steering = PortSteering::new(Some(&rss), 0);
            let local = SocketAddrV4::new(Ipv4Addr::from(local_ip), local_port);
            let remote = SocketAddrV4::new(Ipv4Addr::from(remote_ip), remote_port);
            let input = ipv4_tcp_udp_input(*remote.ip(), *local.ip(), remote_port, local_port);
            prop_assert_eq!(
                steering.fast_reply_hash(local, remote),
                Some(toeplitz_hash(&key, &input))
            );
        }

        #[test]
        fn picked_port_matches_the_bitwise_queue(
            remote_ip: [u8; 4], remote_port: u16, queues in 2u16..=16, secret: [u8; 16],
        ) {
            let rss = config(queues);
            let queue = queues / 2;
            let mut steering = PortSteering::with_secret(Some(&rss), queue, secret);
            let remote = SocketAddrV4::new(Ipv4Addr::from(remote_ip), remote_port);
            let port = steering.pick(LOCAL, remote, |_| true).unwrap();
            prop_assert_eq!(reference_queue(&rss, LOCAL, remote, port), queue);
        }
    }
}
