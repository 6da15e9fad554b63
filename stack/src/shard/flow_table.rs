//! The per-shard TCP flow table: 4-tuple -> TCB slab index, fixed capacity, no allocation after
//! construction.
//!
//! # Layout
//!
//! A hand-written open-addressing table with linear probing and backward-shift deletion over one
//! boxed slice of 16-byte slots (a packed 12-byte key and the 4-byte value, four slots to a
//! 64-byte cache line). The slice holds `capacity + capacity / 3 + 1` slots, so the load factor
//! never exceeds 3/4 and at least one slot is always empty (every probe terminates).
//! A hash is mapped to a slot by a multiply-high (Lemire's "fastrange"), so the slot count needs
//! not be a power of two and no memory is lost to rounding up.
//!
//! Why not `hashbrown` (std's `HashMap`)? Its deletions leave tombstones that eat into its growth
//! budget; once they have used it up, the next insert rehashes the whole table, in place if it is
//! at most half full and otherwise *into a new, larger allocation*. For a table that holds up to
//! 1 M entries and sees connections come and go forever, that is either a latency spike of
//! millions of moves or an allocation on the data path, both forbidden here. Backward-shift
//! deletion leaves no tombstones: a table that has seen any history of inserts and removes is
//! laid out exactly as if its current entries had been inserted afresh, and its probe lengths
//! never degrade. It also needs no control bytes (17 bytes per bucket in `hashbrown` for this
//! entry type, in power-of-two bucket counts) so the table costs about 21 bytes per entry of
//! capacity.
//!
//! Cost at 1 M entries (21 MiB, beyond the caches): a hit is one random DRAM access (slot and
//! key share a cache line; linear probing touches the next line at most, which the hardware
//! prefetches), where `hashbrown` takes two (control bytes, then the bucket). A miss probes on
//! to an empty slot (about 8 slots, 2 to 3 lines, at the 3/4 maximum load), so it costs about
//! as much as a hit; `hashbrown` answers most misses from its control bytes alone, which cache
//! better (1 byte per bucket), so it wins on misses. Hits are the per-segment path.
//!
//! The all-zero key (0.0.0.0:0 on both sides, which no real TCP connection has) marks an empty
//! slot; should it be inserted anyway it is kept aside in its own field.
//!
//! # Hash
//!
//! Remote peers choose the remote half of the 4-tuple, so the hash is keyed with the shard's
//! secret (`keyed_hash`: `ahash`, DoS-resistant while the key is secret, faster than
//! SipHash-1-3). `foldhash` is as fast but states only minimal DoS resistance.

use core::fmt;
use core::hash::{BuildHasher, Hasher};
use core::net::{Ipv4Addr, SocketAddrV4};

/// A TCP connection's 4-tuple, as seen from this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Our address and port.
    pub local: SocketAddrV4,
    /// The peer's address and port.
    pub remote: SocketAddrV4,
}

impl FlowKey {
    /// The key of the connection between `local` and `remote`.
    pub fn new(local: SocketAddrV4, remote: SocketAddrV4) -> Self {
        FlowKey { local, remote }
    }

    /// The packed 12-byte form: local address, remote address, local port << 16 | remote port.
    fn pack(&self) -> [u32; 3] {
        [
            self.local.ip().to_bits(),
            self.remote.ip().to_bits(),
            (u32::from(self.local.port()) << 16) | u32::from(self.remote.port()),
        ]
    }

    fn unpack(p: [u32; 3]) -> Self {
        FlowKey {
            local: SocketAddrV4::new(Ipv4Addr::from_bits(p[0]), (p[2] >> 16) as u16),
            remote: SocketAddrV4::new(Ipv4Addr::from_bits(p[1]), p[2] as u16),
        }
    }
}

/// [`FlowTable::insert`] of a new key into a table that holds [`FlowTable::capacity`] entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flow table full")
    }
}

/// The packed key that marks an empty slot.
const EMPTY: [u32; 3] = [0; 3];

/// One slot: four to a cache line, never straddling two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
struct Slot {
    key: [u32; 3],
    value: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        key: EMPTY,
        value: 0,
    };
}

/// A fixed-capacity map from [`FlowKey`] to a `u32` (a TCB's slab index). All memory is
/// reserved by [`FlowTable::with_capacity`]; no other method allocates.
pub struct FlowTable {
    slots: Box<[Slot]>,
    /// The value of the all-zero key, which cannot live in `slots`.
    zero: Option<u32>,
    len: usize,
    capacity: usize,
    hasher: ahash::RandomState,
}

impl fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the hash key.
        f.debug_struct("FlowTable")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl FlowTable {
    /// A table for up to `capacity` entries, its hash keyed with `hash_key` (a per-shard secret
    /// drawn at random). Reserves all its memory now and never grows.
    pub fn with_capacity(capacity: usize, hash_key: [u8; 16]) -> Self {
        let n = capacity.saturating_add(capacity / 3).saturating_add(1);
        let hasher = crate::keyed_hash::keyed_state(hash_key);
        FlowTable {
            slots: vec![Slot::EMPTY; n].into_boxed_slice(),
            zero: None,
            len: 0,
            capacity,
            hasher,
        }
    }

    /// The home slot of a packed key.
    #[inline]
    fn home(&self, key: &[u32; 3]) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write_u64((u64::from(key[0]) << 32) | u64::from(key[1]));
        h.write_u32(key[2]);
        let hash = h.finish();
        // Multiply-high maps the hash uniformly onto 0..slots.len().
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        let j = i + 1;
        if j == self.slots.len() { 0 } else { j }
    }

    /// The slot holding `key` (not the empty key), or `None`.
    #[inline]
    fn find(&self, key: &[u32; 3]) -> Option<usize> {
        let mut i = self.home(key);
        loop {
            let slot = &self.slots[i];
            if slot.key == *key {
                return Some(i);
            }
            if slot.key == EMPTY {
                return None;
            }
            i = self.next(i);
        }
    }

    /// The value of `key`, if present.
    #[inline]
    pub fn get(&self, key: &FlowKey) -> Option<u32> {
        let packed = key.pack();
        if packed == EMPTY {
            return self.zero;
        }
        self.find(&packed).map(|i| self.slots[i].value)
    }

    /// Maps `key` to `value`. Returns the previous value if `key` was present (replacing it);
    /// [`Full`] if `key` is new and the table already holds [`FlowTable::capacity`] entries.
    pub fn insert(&mut self, key: FlowKey, value: u32) -> Result<Option<u32>, Full> {
        let packed = key.pack();
        if packed == EMPTY {
            if self.zero.is_none() {
                if self.len == self.capacity {
                    return Err(Full);
                }
                self.len += 1;
            }
            return Ok(self.zero.replace(value));
        }
        let mut i = self.home(&packed);
        loop {
            let slot = &mut self.slots[i];
            if slot.key == packed {
                return Ok(Some(core::mem::replace(&mut slot.value, value)));
            }
            if slot.key == EMPTY {
                if self.len == self.capacity {
                    return Err(Full);
                }
                *slot = Slot { key: packed, value };
                self.len += 1;
                return Ok(None);
            }
            i = self.next(i);
        }
    }

    /// Removes `key`, returning its value if it was present.
    pub fn remove(&mut self, key: &FlowKey) -> Option<u32> {
        let packed = key.pack();
        if packed == EMPTY {
            let old = self.zero.take();
            if old.is_some() {
                self.len -= 1;
            }
            return old;
        }
        let mut hole = self.find(&packed)?;
        let value = self.slots[hole].value;
        self.len -= 1;
        // Backward shift: pull later entries of the cluster into the hole when their home slot
        // does not lie cyclically in (hole, j], so every entry stays reachable from its home.
        let mut j = hole;
        loop {
            j = self.next(j);
            let slot = self.slots[j];
            if slot.key == EMPTY {
                break;
            }
            let home = self.home(&slot.key);
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = Slot::EMPTY;
        Some(value)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the table holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries the table can hold (as given to [`FlowTable::with_capacity`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Heap bytes reserved by the table (all of them, from construction on).
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val::<[Slot]>(&self.slots)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (FlowKey, u32)> + '_ {
        let zero = self.zero.map(|v| (FlowKey::unpack(EMPTY), v));
        zero.into_iter().chain(
            self.slots
                .iter()
                .filter(|s| s.key != EMPTY)
                .map(|s| (FlowKey::unpack(s.key), s.value)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const KEY: [u8; 16] = *b"0123456789abcdef";

    fn key(local_port: u16, remote_ip: u32, remote_port: u16) -> FlowKey {
        FlowKey::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), local_port),
            SocketAddrV4::new(Ipv4Addr::from_bits(remote_ip), remote_port),
        )
    }

    fn zero_key() -> FlowKey {
        FlowKey::new(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        )
    }

    #[test]
    fn packing_round_trips() {
        let k = FlowKey::new(
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 2), 443),
            SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 9), 65535),
        );
        assert_eq!(FlowKey::unpack(k.pack()), k);
    }

    #[test]
    fn insert_replaces_and_remove_forgets() {
        let mut t = FlowTable::with_capacity(4, KEY);
        assert!(t.is_empty());
        let k = key(80, 0x0a00_0002, 5000);
        assert_eq!(t.insert(k, 7), Ok(None));
        assert_eq!(t.get(&k), Some(7));
        assert_eq!(t.insert(k, 9), Ok(Some(7)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&key(80, 0x0a00_0002, 5001)), None);
        assert_eq!(t.remove(&k), Some(9));
        assert_eq!(t.remove(&k), None);
        assert_eq!(t.get(&k), None);
        assert!(t.is_empty());
    }

    #[test]
    fn full_only_when_capacity_entries_are_held() {
        let mut t = FlowTable::with_capacity(3, KEY);
        for p in 0..3 {
            assert_eq!(t.insert(key(p + 1, 1, 1), u32::from(p)), Ok(None));
        }
        assert_eq!(t.insert(key(100, 1, 1), 0), Err(Full));
        assert_eq!(t.insert(zero_key(), 0), Err(Full));
        // Replacing an existing key is not an addition.
        assert_eq!(t.insert(key(1, 1, 1), 42), Ok(Some(0)));
        assert_eq!(t.remove(&key(2, 1, 1)), Some(1));
        assert_eq!(t.insert(key(100, 1, 1), 5), Ok(None));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn zero_capacity_table_is_always_full() {
        let mut t = FlowTable::with_capacity(0, KEY);
        assert_eq!(t.insert(key(1, 1, 1), 0), Err(Full));
        assert_eq!(t.get(&key(1, 1, 1)), None);
        assert_eq!(t.remove(&key(1, 1, 1)), None);
    }

    #[test]
    fn all_zero_key_is_an_ordinary_entry() {
        let mut t = FlowTable::with_capacity(2, KEY);
        assert_eq!(t.insert(zero_key(), 3), Ok(None));
        assert_eq!(t.get(&zero_key()), Some(3));
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(zero_key(), 3)]);
        assert_eq!(t.insert(zero_key(), 4), Ok(Some(3)));
        assert_eq!(t.remove(&zero_key()), Some(4));
        assert!(t.is_empty());
    }

    #[test]
    fn memory_is_about_21_bytes_per_entry() {
        let t = FlowTable::with_capacity(3000, KEY);
        assert_eq!(core::mem::size_of::<Slot>(), 16);
        assert_eq!(t.memory_bytes(), 4001 * 16);
    }

    #[test]
    fn debug_does_not_show_the_hash_key() {
        let t = FlowTable::with_capacity(1, KEY);
        let s = format!("{t:?}");
        assert!(s.contains("capacity: 1"), "{s}");
        assert!(!s.contains("RandomState"), "{s}");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(FlowKey, u32),
        Remove(FlowKey),
        Get(FlowKey),
    }

    /// Keys from a small space (so operations collide and hit), the zero key included.
    fn small_key() -> impl Strategy<Value = FlowKey> {
        (0u16..6, 0u32..3, 0u16..4).prop_map(|(lp, rip, rp)| {
            FlowKey::new(
                SocketAddrV4::new(Ipv4Addr::from_bits(rip & 1), lp),
                SocketAddrV4::new(Ipv4Addr::from_bits(rip >> 1), rp),
            )
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (small_key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            small_key().prop_map(Op::Remove),
            small_key().prop_map(Op::Get),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn behaves_like_a_bounded_hash_map(
            capacity in 0usize..40,
            hash_key in any::<[u8; 16]>(),
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let mut t = FlowTable::with_capacity(capacity, hash_key);
            let mut model: HashMap<FlowKey, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let expected = if model.contains_key(&k) || model.len() < capacity {
                            Ok(model.insert(k, v))
                        } else {
                            Err(Full)
                        };
                        prop_assert_eq!(t.insert(k, v), expected);
                    }
                    Op::Remove(k) => prop_assert_eq!(t.remove(&k), model.remove(&k)),
                    Op::Get(k) => prop_assert_eq!(t.get(&k), model.get(&k).copied()),
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.is_empty(), model.is_empty());
            }
            let mut held: Vec<_> = t.iter().collect();
            let mut expected: Vec<_> = model.into_iter().collect();
            held.sort_by_key(|(k, _)| k.pack());
            expected.sort_by_key(|(k, _)| k.pack());
            prop_assert_eq!(held, expected);
        }
    }

    /// Many keys in one cluster (a table exactly at capacity, all slots but a few full), removed
    /// in random order: every remaining key must stay reachable after each backward shift.
    #[test]
    fn removals_from_a_full_table_keep_every_key_reachable() {
        let n = 3000u16;
        let mut t = FlowTable::with_capacity(usize::from(n), KEY);
        let keys: Vec<_> = (0..n).map(|p| key(p + 1, 0x0a00_0002, 80)).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.insert(*k, i as u32), Ok(None));
        }
        assert_eq!(t.insert(key(9999, 1, 1), 0), Err(Full));
        // A fixed pseudo-random removal order.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        let mut x = 0x9e37_79b9u32;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            order.swap(i, x as usize % (i + 1));
        }
        for (removed, &i) in order.iter().enumerate() {
            assert_eq!(t.remove(&keys[i]), Some(i as u32));
            if removed % 97 == 0 {
                for &j in &order[removed + 1..] {
                    assert_eq!(t.get(&keys[j]), Some(j as u32));
                }
            }
        }
        assert!(t.is_empty());
    }
}
