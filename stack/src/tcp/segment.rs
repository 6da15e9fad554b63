//! Segments as the state machine sees them: typed sequence numbers, decoded options, and the
//! payload by reference (incoming) or as a range of the send buffer (outgoing).
//!
//! The shard converts between these and the wire format (`wire::tcp`), so the state machine
//! and its packet-level tests never touch bytes.

use super::seq::SeqNum;
use arrayvec::ArrayVec;

/// TCP control bits (RFC 9293 3.1, RFC 3168 for ECE/CWR).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push function.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer field is significant (ignored by this stack, RFC 6093).
    pub const URG: Flags = Flags(0x20);
    /// ECN-Echo.
    pub const ECE: Flags = Flags(0x40);
    /// Congestion Window Reduced.
    pub const CWR: Flags = Flags(0x80);
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// From the header's flag byte.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }

    /// The header's flag byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// FIN set.
    pub const fn fin(self) -> bool {
        self.contains(Flags::FIN)
    }

    /// SYN set.
    pub const fn syn(self) -> bool {
        self.contains(Flags::SYN)
    }

    /// RST set.
    pub const fn rst(self) -> bool {
        self.contains(Flags::RST)
    }

    /// ACK set.
    pub const fn ack(self) -> bool {
        self.contains(Flags::ACK)
    }

    /// PSH set.
    pub const fn psh(self) -> bool {
        self.contains(Flags::PSH)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl core::fmt::Debug for Flags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = [
            (Flags::SYN, "SYN"),
            (Flags::FIN, "FIN"),
            (Flags::RST, "RST"),
            (Flags::PSH, "PSH"),
            (Flags::ACK, "ACK"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

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
    fn flags_combine_and_print() {
        let f = Flags::SYN | Flags::ACK;
        assert!(f.syn() && f.ack() && !f.fin() && !f.rst());
        assert_eq!(format!("{f:?}"), "SYN|ACK");
        assert_eq!(format!("{:?}", Flags::NONE), "-");
        assert_eq!(Flags::from_bits(0x12), f);
    }

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
