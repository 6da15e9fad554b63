//! Zero-copy views over protocol headers, and plain `Repr` values of their fields.
//!
//! Conventions shared by every format here:
//! - A *view* (`ethernet::Frame<T>`, `ipv4::Packet<T>`, `tcp::Segment<T>`, ...) wraps any
//!   `T: AsRef<[u8]>` (and `AsMut<[u8]>` for setters). `new_checked` verifies lengths once; after
//!   that no accessor can panic or read out of bounds, whatever the bytes say.
//!   `new_unchecked` skips the check and is meant for emitting into a buffer already sized by
//!   `Repr::buffer_len`/`header_len`.
//! - A `Repr` is a plain value of the fields a layer cares about. `Repr::parse(&view)` validates
//!   semantics (checksums, option lengths, ...); `Repr::emit(&mut view)` writes into the caller's
//!   buffer. Nothing here allocates.
//! - Every failure is one [`Error`] variant, a named reason that the stack counts when it drops
//!   a frame.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod tcp_option;
pub mod udp;

use core::fmt;

pub use core::net::Ipv4Addr;

/// Why a frame or header was rejected. Each variant is a drop reason with a counter of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header, or than a length field says it should be.
    Truncated,
    /// A length field is inconsistent (total length below header length, UDP length beyond the
    /// IP payload, ...).
    BadLength,
    /// IPv4 IHL < 5 or TCP data offset < 5.
    BadHeaderLen,
    /// The version field is not the one this parser reads (IPv4 with version != 4).
    BadVersion,
    /// Header or payload checksum does not verify.
    BadChecksum,
    /// A TCP option whose length is malformed (zero, one, running past the header, or wrong for
    /// its kind).
    BadOption,
    /// Well-formed but of a kind this stack does not handle (ARP for another protocol, an
    /// unknown EtherType, ...).
    Unsupported,
    /// Semantically invalid field values (e.g. a broadcast source address).
    Malformed,
}

impl Error {
    /// A short name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadLength => "bad_length",
            Error::BadHeaderLen => "bad_header_len",
            Error::BadVersion => "bad_version",
            Error::BadChecksum => "bad_checksum",
            Error::BadOption => "bad_option",
            Error::Unsupported => "unsupported",
            Error::Malformed => "malformed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for Error {}

/// Who takes care of a checksum: this code, or the NIC.
///
/// On receive, `Software` verifies the checksum and `Offloaded` trusts that the NIC did (the
/// frame's [`crate::port::RxOffload`] said so). On transmit, `Software` computes the checksum and
/// `Offloaded` leaves the field for the NIC to fill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumMode {
    /// Verify on receive, compute on transmit.
    #[default]
    Software,
    /// The NIC verifies on receive and computes on transmit.
    Offloaded,
}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// 00:00:00:00:00:00 (the target hardware address of an ARP request).
    pub const ZERO: EthernetAddress = EthernetAddress([0; 6]);

    /// Reads an address from the first six bytes of `bytes`, which must be at least six long.
    /// Callers are views that have already checked the length.
    pub fn from_bytes(bytes: &[u8]) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&bytes[..6]);
        EthernetAddress(a)
    }

    /// The six bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Unicast: the I/G bit is clear.
    pub const fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }

    /// Multicast or broadcast: the I/G bit is set.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Reads a big-endian `u16` at `at`. The caller guarantees `at + 2 <= bytes.len()`.
#[inline]
pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Reads a big-endian `u32` at `at`. The caller guarantees `at + 4 <= bytes.len()`.
#[inline]
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Writes a big-endian `u16` at `at`. The caller guarantees `at + 2 <= bytes.len()`.
#[inline]
pub(crate) fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian `u32` at `at`. The caller guarantees `at + 4 <= bytes.len()`.
#[inline]
pub(crate) fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Reads an IPv4 address at `at`. The caller guarantees `at + 4 <= bytes.len()`.
#[inline]
pub(crate) fn read_ipv4(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        let a = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
        assert!(a.is_unicast());
        assert_eq!(a.to_string(), "02:00:00:00:00:01");
        assert!(EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
    }
}
