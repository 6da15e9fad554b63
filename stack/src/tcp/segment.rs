//! Segments as the state machine sees them: typed sequence numbers, decoded options, and the
//! payload by reference (incoming) or as a range of the send buffer (outgoing).
//!
//! The shard converts between these and the wire format (`wire::tcp`), so the state machine
//! and its packet-level tests never touch bytes.

use super::seq::SeqNum;
use arrayvec::ArrayVec;

/// TCP control bits: the wire format's type (RFC 9293 3.1, RFC 3168 for ECE/CWR). In segments of
/// the state machine, `ACK` is a flag like the others.
pub use crate::wire::tcp::Flags;

/// RFC 7323 timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// TSval: the sender's clock.
    pub tsval: u32,
    /// TSecr: the most recent TSval received from the peer.
    pub tsecr: u32,
}

/// SACK blocks: up to 4, `(left, right)` with `right` exclusive (RFC 2018 3).
pub type SackBlocks = ArrayVec<(SeqNum, SeqNum), 4>;

/// The options of a segment, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// MSS (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only; already clamped to 14 by the wire parser).
    pub window_scale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// Timestamps.
    pub timestamps: Option<Timestamps>,
    /// SACK blocks.
    pub sack_blocks: SackBlocks,
    /// TCP Fast Open cookie option (RFC 7413 4.1.1; SYN and SYN-ACK only): a cookie, or a
    /// cookie request when empty.
    pub fast_open: Option<crate::wire::tcp_option::TfoCookie>,
}

/// An incoming segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// SEG.SEQ.
    pub seq: SeqNum,
    /// SEG.ACK (meaningful if `flags.ack()`).
    pub ack: SeqNum,
    /// Control bits.
    pub flags: Flags,
    /// SEG.WND as sent (unscaled).
    pub window: u16,
    /// Options.
    pub options: Options,
    /// The data.
    pub payload: &'a [u8],
}

impl Incoming<'_> {
    /// SEG.LEN: payload plus one for SYN and one for FIN (RFC 9293 3.3.1).
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

/// An outgoing segment. Its payload is `payload_len` bytes of the send buffer starting
/// `payload_offset` bytes after SND.UNA: the shard copies them straight into the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// SEG.SEQ.
    pub seq: SeqNum,
    /// SEG.ACK (sent if `flags.ack()`).
    pub ack: SeqNum,
    /// Control bits.
    pub flags: Flags,
    /// The window field (already scaled down).
    pub window: u16,
    /// Options.
    pub options: Options,
    /// Where the payload starts in the send buffer (bytes after SND.UNA).
    pub payload_offset: usize,
    /// Payload length.
    pub payload_len: usize,
}

impl Outgoing {
    /// SEG.LEN.
    pub fn seg_len(&self) -> u32 {
        self.payload_len as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_and_fin_occupy_sequence_space() {
        let seg = Incoming {
            seq: SeqNum(1),
            ack: SeqNum(0),
            flags: Flags::SYN | Flags::FIN,
            window: 0,
            options: Options::default(),
            payload: b"abc",
        };
        assert_eq!(seg.seg_len(), 5);
    }
}
