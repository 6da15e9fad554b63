//! Zero-copy receive: TCP data left in the received frames until the application has read it.
//!
//! A runtime that holds one iteration's received frames through the application step (rx ->
//! app -> release) hands the shard a view of them (`rx`: the frames' bytes, by index). An
//! in-order segment for a connection with no readable byte in its receive buffer is then not
//! copied: the connection accounts for it as if it were (`RCV.NXT`, the window: see
//! `tcp/recv_buffer.rs`), and this table records where its bytes are, as a descriptor
//! (connection, frame index, offset, length). Later in-order segments of the same burst append
//! descriptors while nothing else is readable before them.
//!
//! During the application step, `recv_with` lends the frame's own bytes (and `recv` copies from
//! them, one copy instead of two); reads of part of a descriptor advance it. After the step,
//! [`TcpEndpoints::spill_in_place`] copies whatever the application left into the connections'
//! receive buffers, before the frames go back to the driver: correctness never depends on the
//! application reading. Descriptors are spilled from the last to the first, so that the bytes
//! still in frames always stay the front of each connection's stream.
//!
//! The table is bounded ([`IN_PLACE_ENTRIES`]) and lives in the shard, not in each connection:
//! a TCB only counts its bytes in place (4 bytes, sharing a word). When the table is full,
//! segments are copied as before. Without a view (`handle_frame` on bytes the caller does not
//! hold), nothing stays in place.

use super::{Slot, TcpEndpoints, TcpHandle};
use crate::shard::stats::ZeroCopyStats;
use crate::socket::events::Readiness;
use crate::socket::handle::SocketHandle;
use crate::tcp::recv_buffer::InPlace;
use crate::tcp::{RecvError, Tcb};
use crate::time::Instant;
use arrayvec::ArrayVec;

/// Descriptors one shard holds at most. A frame holds one segment, so a runtime's burst
/// ([`crate::port::BURST`] frames) never fills the table; views of more frames (tools, tests)
/// have the segments beyond it copied.
pub const IN_PLACE_ENTRIES: usize = 4 * crate::port::BURST;

/// Where a received segment's payload lies in the frame being handled: the frame's index in
/// the runtime's view of its held burst, and the payload's offset in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadAt {
    /// Index of the frame in the view.
    pub frame: u16,
    /// Offset of the segment's payload in the frame.
    pub offset: usize,
    /// Address of the frame's first byte, to check that a view lent later is the same one.
    base: usize,
}

/// The frame being handled, when the caller holds it through the application step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldFrame {
    frame: u16,
    base: usize,
    len: usize,
}

impl HeldFrame {
    /// Frame `index` of a held burst, `bytes` its data. `None` past `u16::MAX` frames.
    pub fn new(index: usize, bytes: &[u8]) -> Option<HeldFrame> {
        Some(HeldFrame {
            frame: u16::try_from(index).ok()?,
            base: bytes.as_ptr() as usize,
            len: bytes.len(),
        })
    }

    /// Where `payload` (a slice of this frame's bytes) lies in it; `None` if it is not within
    /// the frame.
    pub fn locate(&self, payload: &[u8]) -> Option<PayloadAt> {
        let offset = (payload.as_ptr() as usize).checked_sub(self.base)?;
        (offset.checked_add(payload.len())? <= self.len).then_some(PayloadAt {
            frame: self.frame,
            offset,
            base: self.base,
        })
    }
}

/// One run of a connection's received bytes still in a frame.
#[derive(Clone, Copy, Debug)]
struct Entry {
    conn: TcpHandle,
    frame: u16,
    /// The application tried to read while the frame was not lent (a view without it): the
    /// connection gets a readable event once the bytes are spilled.
    refused: bool,
    offset: u32,
    len: u32,
    /// Address of the frame's first byte when recorded.
    base: usize,
}

impl Entry {
    /// The entry's bytes in `rx`, if `rx` holds its frame (the very same frame).
    fn bytes<'a>(&self, rx: &[&'a [u8]]) -> Option<&'a [u8]> {
        let frame = rx
            .get(usize::from(self.frame))
            .filter(|f| f.as_ptr() as usize == self.base)?;
        let start = self.offset as usize;
        frame.get(start..start.checked_add(self.len as usize)?)
    }
}

/// The shard's descriptors of bytes in place, in arrival order, and the zero-copy counters.
#[derive(Debug, Default)]
pub(super) struct InPlaceTable {
    entries: ArrayVec<Entry, IN_PLACE_ENTRIES>,
    stats: ZeroCopyStats,
}

impl InPlaceTable {
    /// What to offer a connection for a segment at `at` (`None`: the frame is not held).
    /// Whatever part of the payload stays, [`InPlaceTable::record`] can then describe it: the
    /// table has room and every offset fits a descriptor.
    pub(super) fn offer(&mut self, at: Option<PayloadAt>, payload_len: usize) -> InPlace {
        let Some(at) = at.filter(|_| payload_len > 0) else {
            return InPlace::Copy;
        };
        if self.entries.is_full() {
            self.stats.table_full += 1;
            return InPlace::Copy;
        }
        let describable = at
            .offset
            .checked_add(payload_len)
            .is_some_and(|end| u32::try_from(end).is_ok());
        if describable {
            InPlace::MayStay
        } else {
            InPlace::Copy
        }
    }

    /// Records what the connection `conn` left in place of a segment at `at`.
    pub(super) fn record(&mut self, conn: TcpHandle, at: Option<PayloadAt>, outcome: InPlace) {
        let (Some(at), InPlace::Stayed { skip, len }) = (at, outcome) else {
            return;
        };
        // Cannot fail: `offer` said `MayStay` only with room and offsets that fit.
        let (Ok(offset), Ok(len32)) = (u32::try_from(at.offset + skip), u32::try_from(len)) else {
            return;
        };
        let _ = self.entries.try_push(Entry {
            conn,
            frame: at.frame,
            refused: false,
            offset,
            len: len32,
            base: at.base,
        });
        self.stats.held_segs += 1;
        self.stats.held_bytes += len as u64;
    }

    /// The index of `conn`'s first descriptor with bytes left.
    fn front(&self, conn: TcpHandle) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.conn == conn && e.len > 0)
    }

    /// Marks `conn`'s descriptors as asked for without their frames.
    fn refuse(&mut self, conn: TcpHandle) {
        for e in self.entries.iter_mut().filter(|e| e.conn == conn) {
            e.refused = true;
        }
    }
}

/// The connection of an application handle in `slots`.
fn owned_tcb(slots: &mut [Slot], h: TcpHandle) -> Option<&mut Tcb> {
    slots
        .get_mut(h.index as usize)
        .filter(|s| s.generation == h.generation && s.owned)?
        .tcb
        .as_mut()
}

impl TcpEndpoints {
    /// True while some connection has bytes in frames (between a held burst and its spill).
    pub fn has_in_place(&self) -> bool {
        !self.in_place.entries.is_empty()
    }

    /// The zero-copy receive counters.
    pub fn zero_copy_stats(&self) -> ZeroCopyStats {
        self.in_place.stats
    }

    /// The connection of an application handle, without joining the ready list.
    fn owned_tcb_mut(&mut self, h: TcpHandle) -> Option<&mut Tcb> {
        owned_tcb(&mut self.slots, h)
    }

    /// Zero-copy `read` of connection `h`: lends `read` the next contiguous received bytes,
    /// in the frame itself when they are still in place (a frame of `rx`, the view of the held
    /// burst), else in the receive buffer; consumes what `read` reports. As
    /// [`crate::tcp::Tcb::recv_with`] otherwise: `Ok(0)` without calling `read` is end of
    /// stream. `EAGAIN` if the next bytes are in a frame `rx` does not hold (they become
    /// readable from the receive buffer after the spill, with a readable event).
    ///
    /// # Errors
    ///
    /// As [`crate::tcp::Tcb::recv_with`]; `None` for a stale handle.
    pub fn recv_with(
        &mut self,
        h: TcpHandle,
        rx: &[&[u8]],
        read: impl FnOnce(&[u8]) -> usize,
    ) -> Option<Result<usize, RecvError>> {
        let tcb = self.owned_tcb_mut(h)?;
        if tcb.in_place() == 0 {
            let r = tcb.recv_with(read);
            self.touch(h.index);
            return Some(r);
        }
        let Some(k) = self.in_place.front(h) else {
            return Some(Err(RecvError::WouldBlock));
        };
        let Some(bytes) = self.in_place.entries.get(k).and_then(|e| e.bytes(rx)) else {
            self.in_place.refuse(h);
            return Some(Err(RecvError::WouldBlock));
        };
        let n = read(bytes).min(bytes.len());
        Some(Ok(self.consume_in_place(h, k, n)))
    }

    /// `read` of connection `h` into `buf`: bytes in place first (copied from the frames of
    /// `rx`), then bytes of the receive buffer, as many as fit. As [`crate::tcp::Tcb::recv`]
    /// otherwise; `EAGAIN` if the next bytes are in a frame `rx` does not hold.
    ///
    /// # Errors
    ///
    /// As [`crate::tcp::Tcb::recv`]; `None` for a stale handle.
    pub fn recv(
        &mut self,
        h: TcpHandle,
        rx: &[&[u8]],
        buf: &mut [u8],
    ) -> Option<Result<usize, RecvError>> {
        let tcb = self.owned_tcb_mut(h)?;
        if tcb.in_place() == 0 || buf.is_empty() {
            let r = tcb.recv(buf);
            self.touch(h.index);
            return Some(r);
        }
        let mut n = 0;
        while n < buf.len() {
            let Some(k) = self.in_place.front(h) else {
                break;
            };
            let Some(bytes) = self.in_place.entries.get(k).and_then(|e| e.bytes(rx)) else {
                self.in_place.refuse(h);
                break;
            };
            let m = bytes.len().min(buf.len() - n);
            if let (Some(dst), Some(src)) = (buf.get_mut(n..n + m), bytes.get(..m)) {
                dst.copy_from_slice(src);
            }
            n += self.consume_in_place(h, k, m);
        }
        if n == 0 {
            return Some(Err(RecvError::WouldBlock));
        }
        // The bytes in place are read: the receive buffer's come next.
        if n < buf.len()
            && let Some(tcb) = self.owned_tcb_mut(h)
            && tcb.in_place() == 0
            && let Some(Ok(more)) = buf.get_mut(n..).map(|rest| tcb.recv(rest))
        {
            n += more;
        }
        Some(Ok(n))
    }

    /// `n` bytes of descriptor `k` (of connection `h`) were read in place.
    fn consume_in_place(&mut self, h: TcpHandle, k: usize, n: usize) -> usize {
        let Some(tcb) = owned_tcb(&mut self.slots, h) else {
            return 0;
        };
        let Some(e) = self.in_place.entries.get_mut(k) else {
            return 0;
        };
        let n = tcb.consume_in_place(n.min(e.len as usize));
        e.offset += n as u32;
        e.len -= n as u32;
        self.in_place.stats.delivered_bytes += n as u64;
        self.touch(h.index);
        n
    }

    /// Before the frames of `rx` go back to the driver: copies every byte still in place into
    /// its connection's receive buffer (from the last descriptor to the first) and empties the
    /// table. A connection whose frame `rx` does not hold (the caller broke the contract) is
    /// reset rather than left with a hole in its stream. Connections whose application was
    /// refused a read get a readable event.
    pub fn spill_in_place(&mut self, now: Instant, rx: &[&[u8]]) {
        while let Some(e) = self.in_place.entries.pop() {
            let Some(slot) = self.slots.get_mut(e.conn.index as usize) else {
                continue;
            };
            if slot.generation != e.conn.generation {
                continue;
            }
            let Some(tcb) = slot.tcb.as_mut() else {
                continue;
            };
            if e.len == 0 || tcb.in_place() == 0 {
                continue;
            }
            match e.bytes(rx) {
                Some(bytes) if tcb.spill_in_place(bytes) => {
                    self.in_place.stats.spilled_bytes += bytes.len() as u64;
                    if e.refused && slot.owned {
                        self.events.raise(
                            &mut slot.event_at,
                            SocketHandle::Tcp(e.conn),
                            Readiness::READABLE,
                        );
                    }
                }
                _ => {
                    self.in_place.stats.lost += 1;
                    tcb.lose_in_place(now);
                    if slot.owned {
                        self.events.raise(
                            &mut slot.event_at,
                            SocketHandle::Tcp(e.conn),
                            Readiness::READABLE | Readiness::ERROR,
                        );
                    }
                    self.touch(e.conn.index);
                }
            }
        }
    }
}
