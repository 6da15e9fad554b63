//! Receive-side scaling: the Toeplitz hash and queue selection.
//!
//! A NIC with RSS hashes a few header fields of each received packet with the Toeplitz function
//! (Microsoft's "Receive-Side Scaling" specification), looks the hash up in an *indirection
//! table*, and puts the packet on the queue the table names. A shard that knows the key and the
//! table (from [`crate::port::Capabilities::rss`]) can therefore predict the queue, and so the
//! shard, that a flow's packets arrive on; that is how client source ports are chosen so that a
//! connection's replies come back to the shard that opened it.
//!
//! The hash input for IPv4 is, in this order: source address, destination address and, for TCP
//! and UDP, source port and destination port, all in network byte order
//! ([`ipv4_tcp_udp_input`], [`ipv4_input`]).
//!
//! Two implementations give identical results: [`toeplitz_hash`] walks the input bit by bit and
//! needs nothing but the key; [`ToeplitzTable`] precomputes, once per key, what every byte value
//! at every position contributes, and then hashes with one table lookup per input byte. Neither
//! allocates while hashing.

use crate::port::RssConfig;
use crate::wire::Ipv4Addr;

/// The key of Microsoft's RSS verification suite, which many NICs (Intel's among them) also use
/// by default.
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// A key made of the 16-bit pattern `0x6d5a` repeated, which makes the hash *symmetric*: swapping
/// source and destination (addresses and ports together) gives the same hash, so both directions
/// of a flow land on the same queue.
///
/// It works because the key repeats every 16 bits: the 32-bit key window that a bit at offset `k`
/// of the input selects equals the window at `k + 16` and `k + 32`, and swapping the addresses
/// moves bits by 32 while swapping the ports moves them by 16.
pub const SYMMETRIC_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
];

/// The number of indirection table entries NICs commonly use (and the memory wire's default).
pub const DEFAULT_INDIRECTION_ENTRIES: usize = 128;

/// The key byte at `index`, or zero past the end of the key.
#[inline]
fn key_byte(key: &[u8], index: usize) -> u8 {
    key.get(index).copied().unwrap_or(0)
}

/// The Toeplitz hash of `input` under `key`, as specified for Microsoft RSS.
///
/// For every bit of the input that is set (most significant bit of the first byte first), the
/// 32 bits of the key starting at that bit's offset are XORed into the result. A key must
/// therefore be at least `input.len() + 4` bytes long to cover the whole input (40-byte keys
/// cover the 36-byte IPv6 4-tuple). A shorter key is not an error: key bits past its end are
/// taken as zero, which is what the hash computes if the key is padded with zero bytes.
pub fn toeplitz_hash(key: &[u8], input: &[u8]) -> u32 {
    // The 32-bit key window for the current input bit; it slides one key bit per input bit.
    let mut window = u32::from_be_bytes([
        key_byte(key, 0),
        key_byte(key, 1),
        key_byte(key, 2),
        key_byte(key, 3),
    ]);
    let mut hash = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        // The key byte whose bits slide into the window while this input byte is processed.
        let incoming = key_byte(key, i + 4);
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((incoming >> bit) & 1);
        }
    }
    hash
}

/// What the byte `value` at input position `position` contributes to the hash under `key`.
fn byte_contribution(key: &[u8], position: usize, value: u8) -> u32 {
    // Key bits from offset 8 * position on: 64 of them cover the windows of all 8 input bits.
    let mut bytes = [0u8; 8];
    for (j, b) in bytes.iter_mut().enumerate() {
        *b = key_byte(key, position + j);
    }
    let bits = u64::from_be_bytes(bytes);
    let mut contribution = 0u32;
    for k in 0..8u32 {
        // Input bit k (0 = most significant) selects the window starting k bits in.
        if value & (0x80 >> k) != 0 {
            contribution ^= (bits >> (32 - k)) as u32;
        }
    }
    contribution
}

/// A Toeplitz hasher with a precomputed table for one key: one lookup per input byte instead of
/// eight conditional XORs and shifts. It computes exactly what [`toeplitz_hash`] computes for the
/// same key, for inputs of any length.
///
/// Building it allocates `key.len()` rows of 256 `u32` (40 KiB for a 40-byte key); hashing
/// does not allocate.
#[derive(Clone, PartialEq, Eq)]
pub struct ToeplitzTable {
    /// `rows[position][value]`: the contribution of byte `value` at input position `position`.
    /// Positions at or past the key's length contribute nothing (their key window is all zero
    /// bits) and have no row.
    rows: Box<[[u32; 256]]>,
}

impl ToeplitzTable {
    /// Precomputes the table for `key`.
    pub fn new(key: &[u8]) -> ToeplitzTable {
        let mut rows = vec![[0u32; 256]; key.len()].into_boxed_slice();
        for (position, row) in rows.iter_mut().enumerate() {
            for (value, entry) in row.iter_mut().enumerate() {
                *entry = byte_contribution(key, position, value as u8);
            }
        }
        ToeplitzTable { rows }
    }

    /// The Toeplitz hash of `input`, equal to `toeplitz_hash(key, input)`.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        self.rows
            .iter()
            .zip(input)
            .fold(0, |hash, (row, &byte)| hash ^ row[usize::from(byte)])
    }
}

impl core::fmt::Debug for ToeplitzTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ToeplitzTable")
            .field("key_len", &self.rows.len())
            .finish_non_exhaustive()
    }
}

/// The RSS hash input of a TCP or UDP packet over IPv4: source address, destination address,
/// source port, destination port, in network byte order.
pub fn ipv4_tcp_udp_input(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> [u8; 12] {
    let mut input = [0u8; 12];
    input[0..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    input[8..10].copy_from_slice(&src_port.to_be_bytes());
    input[10..12].copy_from_slice(&dst_port.to_be_bytes());
    input
}

/// The RSS hash input of an IPv4 packet without ports (not TCP or UDP, or a fragment): source
/// address, destination address, in network byte order.
pub fn ipv4_input(src: Ipv4Addr, dst: Ipv4Addr) -> [u8; 8] {
    let mut input = [0u8; 8];
    input[0..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    input
}

/// The queue the indirection table of `rss` assigns to `hash`: `indirection[hash % len]`, or
/// queue 0 if the table is empty.
pub fn queue_for_hash(rss: &RssConfig, hash: u32) -> u16 {
    let len = rss.indirection.len();
    if len == 0 {
        return 0;
    }
    // u32 -> usize is lossless on the 32- and 64-bit targets this stack runs on; on a 16-bit
    // target the truncation would still give an index below `len` after the modulo.
    rss.indirection
        .get(hash as usize % len)
        .copied()
        .unwrap_or(0)
}

/// An indirection table of `entries` entries that spreads hashes round-robin over `queue_count`
/// queues (`table[i] = i % queue_count`), the usual NIC default. A `queue_count` of zero is
/// taken as one.
pub fn round_robin_indirection(queue_count: u16, entries: usize) -> Vec<u16> {
    let queues = usize::from(queue_count.max(1));
    // `i % queues` is below `queue_count`, which is a u16.
    (0..entries).map(|i| (i % queues) as u16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One row of the IPv4 table of Microsoft's "Verifying the RSS Hash Calculation":
    /// (destination, destination port, source, source port, IPv4-only hash, IPv4 with TCP hash).
    type Vector = (Ipv4Addr, u16, Ipv4Addr, u16, u32, u32);

    const MICROSOFT_IPV4_VECTORS: [Vector; 5] = [
        (
            Ipv4Addr::new(161, 142, 100, 80),
            1766,
            Ipv4Addr::new(66, 9, 149, 187),
            2794,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            Ipv4Addr::new(65, 69, 140, 83),
            4739,
            Ipv4Addr::new(199, 92, 111, 2),
            14230,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            Ipv4Addr::new(12, 22, 207, 184),
            38024,
            Ipv4Addr::new(24, 19, 198, 95),
            12898,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            Ipv4Addr::new(209, 142, 163, 6),
            2217,
            Ipv4Addr::new(38, 27, 205, 30),
            48228,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            Ipv4Addr::new(202, 188, 127, 2),
            1303,
            Ipv4Addr::new(153, 39, 163, 191),
            44251,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];

    #[test]
    fn microsoft_ipv4_vectors_hash_as_published() {
        for (dst, dst_port, src, src_port, ip_only, with_tcp) in MICROSOFT_IPV4_VECTORS {
            assert_eq!(
                toeplitz_hash(&DEFAULT_KEY, &ipv4_input(src, dst)),
                ip_only,
                "IPv4 only: {src} -> {dst}"
            );
            assert_eq!(
                toeplitz_hash(
                    &DEFAULT_KEY,
                    &ipv4_tcp_udp_input(src, dst, src_port, dst_port)
                ),
                with_tcp,
                "IPv4 with TCP: {src}:{src_port} -> {dst}:{dst_port}"
            );
        }
    }

    #[test]
    fn microsoft_ipv4_vectors_hash_as_published_with_the_table() {
        let table = ToeplitzTable::new(&DEFAULT_KEY);
        for (dst, dst_port, src, src_port, ip_only, with_tcp) in MICROSOFT_IPV4_VECTORS {
            assert_eq!(table.hash(&ipv4_input(src, dst)), ip_only);
            assert_eq!(
                table.hash(&ipv4_tcp_udp_input(src, dst, src_port, dst_port)),
                with_tcp
            );
        }
    }

    #[test]
    fn hash_inputs_are_in_network_byte_order() {
        let input = ipv4_tcp_udp_input(
            Ipv4Addr::new(1, 2, 3, 4),
            Ipv4Addr::new(5, 6, 7, 8),
            0x0a0b,
            0x0c0d,
        );
        assert_eq!(input, [1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(
            ipv4_input(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn empty_input_hashes_to_zero() {
        assert_eq!(toeplitz_hash(&DEFAULT_KEY, &[]), 0);
        assert_eq!(ToeplitzTable::new(&DEFAULT_KEY).hash(&[]), 0);
    }

    #[test]
    fn a_short_key_hashes_as_if_padded_with_zeros() {
        let input = [0xffu8; 12];
        let short = &DEFAULT_KEY[..6];
        let mut padded = [0u8; 16];
        padded[..6].copy_from_slice(short);
        assert_eq!(toeplitz_hash(short, &input), toeplitz_hash(&padded, &input));
        assert_eq!(toeplitz_hash(&[], &input), 0);
        assert_eq!(
            ToeplitzTable::new(short).hash(&input),
            toeplitz_hash(short, &input)
        );
    }

    #[test]
    fn a_single_set_bit_selects_the_key_window_at_its_offset() {
        // The first bit selects key bits 0..32; the last bit of byte 0 selects bits 7..39.
        assert_eq!(toeplitz_hash(&DEFAULT_KEY, &[0x80]), 0x6d5a_56da);
        let expected = (u64::from_be_bytes([0x6d, 0x5a, 0x56, 0xda, 0x25, 0, 0, 0]) >> 25) as u32;
        assert_eq!(toeplitz_hash(&DEFAULT_KEY, &[0x01]), expected);
    }

    #[test]
    fn symmetric_key_gives_the_same_hash_both_ways_on_a_published_tuple() {
        let (dst, dst_port, src, src_port, _, _) = MICROSOFT_IPV4_VECTORS[0];
        let forward = ipv4_tcp_udp_input(src, dst, src_port, dst_port);
        let reverse = ipv4_tcp_udp_input(dst, src, dst_port, src_port);
        assert_eq!(
            toeplitz_hash(&SYMMETRIC_KEY, &forward),
            toeplitz_hash(&SYMMETRIC_KEY, &reverse)
        );
        // The default key is not symmetric, which is why the symmetric one exists.
        assert_ne!(
            toeplitz_hash(&DEFAULT_KEY, &forward),
            toeplitz_hash(&DEFAULT_KEY, &reverse)
        );
    }

    #[test]
    fn queue_for_hash_indexes_the_table_modulo_its_length() {
        let rss = RssConfig {
            key: DEFAULT_KEY.to_vec(),
            indirection: vec![3, 1, 2],
        };
        assert_eq!(queue_for_hash(&rss, 0), 3);
        assert_eq!(queue_for_hash(&rss, 4), 1);
        assert_eq!(
            queue_for_hash(&rss, u32::MAX),
            [3, 1, 2][u32::MAX as usize % 3]
        );
    }

    #[test]
    fn queue_for_hash_with_an_empty_table_is_queue_zero() {
        let rss = RssConfig {
            key: DEFAULT_KEY.to_vec(),
            indirection: Vec::new(),
        };
        assert_eq!(queue_for_hash(&rss, 0xdead_beef), 0);
    }

    #[test]
    fn round_robin_indirection_cycles_through_the_queues() {
        assert_eq!(round_robin_indirection(3, 7), vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(round_robin_indirection(0, 3), vec![0, 0, 0]);
        let table = round_robin_indirection(4, DEFAULT_INDIRECTION_ENTRIES);
        assert_eq!(table.len(), 128);
        assert!(table.iter().all(|&q| q < 4));
    }

    proptest! {
        #[test]
        fn symmetric_key_hash_is_the_same_in_both_directions(
            src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16,
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            prop_assert_eq!(
                toeplitz_hash(&SYMMETRIC_KEY, &ipv4_tcp_udp_input(src, dst, src_port, dst_port)),
                toeplitz_hash(&SYMMETRIC_KEY, &ipv4_tcp_udp_input(dst, src, dst_port, src_port))
            );
            prop_assert_eq!(
                toeplitz_hash(&SYMMETRIC_KEY, &ipv4_input(src, dst)),
                toeplitz_hash(&SYMMETRIC_KEY, &ipv4_input(dst, src))
            );
        }

        #[test]
        fn table_hash_equals_bitwise_hash(
            key in proptest::collection::vec(any::<u8>(), 0..60),
            input in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let table = ToeplitzTable::new(&key);
            prop_assert_eq!(table.hash(&input), toeplitz_hash(&key, &input));
        }

        #[test]
        fn hash_is_linear_in_the_input(
            a: [u8; 12], b: [u8; 12],
        ) {
            // Toeplitz is XOR-linear: h(a ^ b) == h(a) ^ h(b). A property no table bug keeps.
            let mut x = [0u8; 12];
            for i in 0..12 {
                x[i] = a[i] ^ b[i];
            }
            prop_assert_eq!(
                toeplitz_hash(&DEFAULT_KEY, &x),
                toeplitz_hash(&DEFAULT_KEY, &a) ^ toeplitz_hash(&DEFAULT_KEY, &b)
            );
        }
    }
}
