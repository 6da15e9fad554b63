//! The keyed hash of the shard's tables whose keys peers choose (the flow table's 4-tuples,
//! the ARP cache's addresses) and of its port tables (TCP listeners, UDP sockets): `ahash`
//! seeded from a per-shard secret.
//!
//! An unkeyed (or fixed-seed) hash would let a peer pick keys that all land in one probe
//! sequence (hash flooding). `ahash` is designed to be DoS-resistant while its keys are secret,
//! and hashes a short key in a few nanoseconds (AES rounds where the target has AES-NI, a
//! folded multiply otherwise), several times faster than std's SipHash-1-3.

/// The hasher keyed with `secret` (16 random bytes drawn for the shard). Four distinct 64-bit
/// seeds are derived from the 128-bit secret; the odd constants (digits of pi and e) are only
/// there to make the halves differ.
pub(crate) fn keyed_state(secret: [u8; 16]) -> ahash::RandomState {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&secret[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let (k0, k1) = (word(0), word(8));
    ahash::RandomState::with_seeds(
        k0,
        k1,
        k0.rotate_left(32) ^ 0x243f_6a88_85a3_08d3,
        k1.rotate_left(32) ^ 0xb7e1_5162_8aed_2a6b,
    )
}

#[cfg(test)]
mod tests {
    use super::keyed_state;

    #[test]
    fn the_hash_depends_on_the_secret() {
        let a = keyed_state([1; 16]).hash_one(0x0a00_0001u32);
        let b = keyed_state([2; 16]).hash_one(0x0a00_0001u32);
        assert_ne!(a, b);
        assert_eq!(a, keyed_state([1; 16]).hash_one(0x0a00_0001u32));
    }
}
