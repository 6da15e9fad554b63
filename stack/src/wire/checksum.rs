//! The Internet checksum (RFC 1071), with the IPv4 pseudo-header (RFC 9293 3.1, RFC 768) and
//! incremental update (RFC 1624).
//!
//! The sum is computed over native-endian 32-bit words into a 64-bit accumulator, a loop that
//! compilers vectorise, and the result is byte-swapped once at the end. RFC 1071 2(B): "The sum of
//! 16-bit integers can be computed in either byte order", so that swap is exact.

use super::Ipv4Addr;

/// Folds a 64-bit one's-complement accumulator to 16 bits.
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's-complement sum of `data` as big-endian 16-bit words, folded to 16 bits (not complemented).
/// An odd trailing byte is padded with a zero byte (RFC 1071 4.1).
#[inline]
pub fn sum_bytes(data: &[u8]) -> u16 {
    // Headers (20-60 bytes) are the common case and too short for the wide loop to pay off:
    // plain big-endian 16-bit words are faster there (measured by the `checksum` benchmark).
    if data.len() <= SMALL {
        return sum_words(data);
    }
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_ne_bytes(tail));
    // `acc` is the sum in native byte order; convert the folded result to big-endian order.
    u16::from_be(fold(acc))
}

/// Inputs up to this length are summed 16 bits at a time.
const SMALL: usize = 64;

/// The one's-complement sum of big-endian 16-bit words, one word at a time.
#[inline]
fn sum_words(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u32::from(*last) << 8;
    }
    fold(u64::from(acc))
}

/// A running one's-complement sum over several pieces (pseudo-header, header, payload).
///
/// Every piece but the last must have an even length: an odd piece is padded with a zero byte,
/// which is only right at the very end of the checksummed data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    acc: u32,
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Checksum { acc: 0 }
    }

    /// Adds the bytes of `data`.
    #[inline]
    pub fn add_bytes(mut self, data: &[u8]) -> Self {
        self.acc += u32::from(sum_bytes(data));
        self.acc = u32::from(fold(u64::from(self.acc)));
        self
    }

    /// Adds one 16-bit word.
    #[inline]
    pub fn add_u16(mut self, word: u16) -> Self {
        self.acc = u32::from(fold(u64::from(self.acc) + u64::from(word)));
        self
    }

    /// Adds a 32-bit value as two 16-bit words.
    #[inline]
    pub fn add_u32(self, value: u32) -> Self {
        self.add_u16((value >> 16) as u16).add_u16(value as u16)
    }

    /// Adds an IPv4 address.
    #[inline]
    pub fn add_ipv4(self, addr: Ipv4Addr) -> Self {
        self.add_u32(u32::from(addr))
    }

    /// The folded sum, not complemented. A packet whose checksum field is correct sums to 0xffff.
    #[inline]
    pub fn sum(self) -> u16 {
        fold(u64::from(self.acc))
    }

    /// The value to store in a checksum field: the complement of the sum.
    #[inline]
    pub fn finish(self) -> u16 {
        !self.sum()
    }

    /// True if the data summed (checksum field included) verifies.
    #[inline]
    pub fn verifies(self) -> bool {
        self.sum() == 0xffff
    }
}

/// The IPv4 pseudo-header sum used by TCP and UDP (RFC 9293 3.1, RFC 768): source, destination,
/// zero, protocol, and the TCP/UDP length (header plus data).
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> Checksum {
    Checksum::new()
        .add_ipv4(src)
        .add_ipv4(dst)
        .add_u16(u16::from(protocol))
        .add_u16(length)
}

/// The checksum of `data` alone (IPv4 header, ICMP message): the complement of its sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum_bytes(data)
}

/// Incremental update of a stored checksum when one 16-bit word changes from `old` to `new`.
///
/// RFC 1624 3, eqn. 3: `HC' = ~(~HC + ~m + m')`. Unlike eqn. 2 of RFC 1141 it never produces
/// 0x0000 from a non-zero sum wrongly.
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// Incremental update when a 32-bit field (an address, a sequence number) changes.
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plain reference: big-endian 16-bit words, summed one at a time.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        // RFC 1071 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        assert_eq!(
            sum_bytes(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn ipv4_header_from_linux_verifies() {
        // A real IPv4 header (ICMP echo, 198.18.0.1 -> 198.18.0.2) checksum computed below.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x54, 0x3a, 0x5c, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x12, 0x00, 0x02,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(Checksum::new().add_bytes(&hdr).verifies());
        assert_eq!(checksum(&hdr), 0);
    }

    #[test]
    fn empty_and_odd_inputs() {
        assert_eq!(sum_bytes(&[]), 0);
        assert_eq!(sum_bytes(&[0xab]), 0xab00);
        assert_eq!(sum_bytes(&[0xab, 0xcd, 0xef]), 0x9ace); // 0xabcd + 0xef00 = 0x1_9acd, folded
    }

    proptest! {
        #[test]
        fn fast_sum_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(sum_bytes(&data), reference_sum(&data));
        }

        #[test]
        fn pieces_sum_like_the_whole(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            let cut = (cut.min(data.len())) & !1; // even split point
            let whole = Checksum::new().add_bytes(&data).sum();
            let parts = Checksum::new().add_bytes(&data[..cut]).add_bytes(&data[cut..]).sum();
            // 0x0000 and 0xffff are the same number in one's complement.
            prop_assert!(whole == parts || (whole == 0 && parts == 0xffff) || (whole == 0xffff && parts == 0));
        }

        #[test]
        fn incremental_update_equals_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 8..200),
            at in 0usize..100, new in any::<u32>(),
        ) {
            let len = data.len() & !1;
            data.truncate(len);
            let at = (at % ((len - 4) / 2)) * 2;
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let after = checksum(&data);
            let updated = update_u32(before, old, new);
            // Both encodings of zero verify identically.
            prop_assert!(updated == after || (updated ^ after) == 0xffff && (after == 0 || after == 0xffff));
        }
    }
}
