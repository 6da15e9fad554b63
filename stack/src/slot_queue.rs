//! A bounded FIFO of byte records, each in a fixed-size slot allocated up front.
//!
//! The data path does not allocate (design rule 6): packets that must wait (an ICMP reply until
//! the next transmit, an IP packet until ARP resolves its next hop, a datagram in a socket's
//! queue) are copied into slots of a queue sized when its owner is created. A full queue refuses
//! the record and the caller counts the drop.

/// The queue is full, or the record is longer than a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A bounded FIFO of records of at most `slot_len` bytes, each with a metadata value `M`.
#[derive(Debug)]
pub struct SlotQueue<M> {
    slot_len: usize,
    bytes: Box<[u8]>,
    meta: Box<[Option<(M, usize)>]>,
    head: usize,
    len: usize,
}

impl<M: Copy> SlotQueue<M> {
    /// A queue of `capacity` slots of `slot_len` bytes each.
    pub fn new(capacity: usize, slot_len: usize) -> Self {
        SlotQueue {
            slot_len,
            bytes: vec![0u8; capacity * slot_len].into_boxed_slice(),
            meta: vec![None; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// The number of records queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if no slot is free.
    pub fn is_full(&self) -> bool {
        self.len == self.meta.len()
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// The largest record a slot holds.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    fn slot_index(&self, nth: usize) -> usize {
        (self.head + nth) % self.meta.len().max(1)
    }

    fn slot(&self, index: usize) -> &[u8] {
        let start = index * self.slot_len;
        &self.bytes[start..start + self.slot_len]
    }

    fn slot_mut(&mut self, index: usize) -> &mut [u8] {
        let start = index * self.slot_len;
        &mut self.bytes[start..start + self.slot_len]
    }

    /// Appends a record of `len` bytes written by `write` (which gets exactly `len` bytes).
    pub fn push_with(
        &mut self,
        meta: M,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), Full> {
        if self.is_full() || len > self.slot_len {
            return Err(Full);
        }
        let index = self.slot_index(self.len);
        write(&mut self.slot_mut(index)[..len]);
        self.meta[index] = Some((meta, len));
        self.len += 1;
        Ok(())
    }

    /// Appends a copy of `data`.
    pub fn push(&mut self, meta: M, data: &[u8]) -> Result<(), Full> {
        self.push_with(meta, data.len(), |slot| slot.copy_from_slice(data))
    }

    /// The oldest record.
    pub fn front(&self) -> Option<(M, &[u8])> {
        if self.is_empty() {
            return None;
        }
        let (meta, len) = self.meta[self.head]?;
        Some((meta, &self.slot(self.head)[..len]))
    }

    /// Every record, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (M, &[u8])> + '_ {
        (0..self.len).filter_map(move |nth| {
            let index = self.slot_index(nth);
            let (meta, len) = self.meta[index]?;
            Some((meta, &self.slot(index)[..len]))
        })
    }

    /// Removes the oldest record.
    pub fn pop(&mut self) -> Option<M> {
        if self.is_empty() {
            return None;
        }
        let (meta, _) = self.meta[self.head].take()?;
        self.head = self.slot_index(1);
        self.len -= 1;
        Some(meta)
    }

    /// Calls `f` on every record, oldest first; records for which it returns `false` are removed
    /// and the rest keep their order.
    pub fn retain(&mut self, mut f: impl FnMut(M, &[u8]) -> bool) {
        let mut kept = 0;
        for nth in 0..self.len {
            let from = self.slot_index(nth);
            let Some((meta, len)) = self.meta[from].take() else {
                continue;
            };
            if f(meta, &self.slot(from)[..len]) {
                let to = self.slot_index(kept);
                if to != from {
                    let (a, b) = (from * self.slot_len, to * self.slot_len);
                    self.bytes.copy_within(a..a + len, b);
                }
                self.meta[to] = Some((meta, len));
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Removes every record.
    pub fn clear(&mut self) {
        self.meta.iter_mut().for_each(|m| *m = None);
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_out_in_order_and_whole() {
        let mut q: SlotQueue<u32> = SlotQueue::new(3, 8);
        q.push(1, b"one").unwrap();
        q.push(2, b"").unwrap();
        q.push(3, b"three!!!").unwrap();
        assert_eq!(q.push(4, b"x"), Err(Full));
        assert_eq!(q.front(), Some((1, &b"one"[..])));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.front(), Some((2, &b""[..])));
        q.pop();
        q.push(5, b"wraps").unwrap();
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.front(), Some((5, &b"wraps"[..])));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn oversized_records_are_refused() {
        let mut q: SlotQueue<()> = SlotQueue::new(2, 4);
        assert_eq!(q.push((), b"12345"), Err(Full));
        assert!(q.is_empty());
    }

    #[test]
    fn retain_removes_and_keeps_order_across_the_wrap() {
        let mut q: SlotQueue<u8> = SlotQueue::new(4, 4);
        for i in 0..4u8 {
            q.push(i, &[i; 3]).unwrap();
        }
        q.pop();
        q.pop();
        q.push(4, &[4; 2]).unwrap();
        q.push(5, &[5; 1]).unwrap();
        q.retain(|m, _| m != 3 && m != 5);
        let mut seen = Vec::new();
        while let Some((m, bytes)) = q.front() {
            seen.push((m, bytes.to_vec()));
            q.pop();
        }
        assert_eq!(seen, vec![(2, vec![2; 3]), (4, vec![4; 2])]);
    }

    #[test]
    fn iter_yields_every_record_oldest_first_across_the_wrap() {
        let mut q: SlotQueue<u8> = SlotQueue::new(3, 4);
        for i in 0..3u8 {
            q.push(i, &[i; 2]).unwrap();
        }
        q.pop();
        q.push(3, &[3; 1]).unwrap();
        let seen: Vec<(u8, Vec<u8>)> = q.iter().map(|(m, b)| (m, b.to_vec())).collect();
        assert_eq!(seen, vec![(1, vec![1; 2]), (2, vec![2; 2]), (3, vec![3])]);
        assert_eq!(
            q.iter().rev().map(|(m, _)| m).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert_eq!(q.len(), 3, "iterating takes nothing out");
    }

    #[test]
    fn zero_capacity_queue_refuses_everything() {
        let mut q: SlotQueue<()> = SlotQueue::new(0, 16);
        assert_eq!(q.push((), b"a"), Err(Full));
        assert_eq!(q.pop(), None);
        q.retain(|_, _| true);
    }
}
