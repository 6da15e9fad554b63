//! Typed TCP arithmetic: sequence numbers that wrap, and windows, scale factors and segment
//! sizes that can only hold legal values.
//!
//! RFC 9293 3.4: "the sequence number space ranges from 0 to 2**32 - 1. Since the space is
//! finite, all arithmetic dealing with sequence numbers must be performed modulo 2**32." Order
//! is only meaningful between numbers less than 2**31 apart, and it is not transitive across
//! the whole space, so [`SeqNum`] deliberately has no `PartialOrd`: comparisons are the named
//! methods [`SeqNum::before`], [`SeqNum::after`] and [`SeqNum::between`].

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number (or acknowledgment number): a `u32` with modulo-2^32 arithmetic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// The raw value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// `self < other` in sequence space (RFC 9293 3.4's "<": the signed 32-bit difference is
    /// negative).
    pub const fn before(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }

    /// `self <= other` in sequence space.
    pub const fn before_eq(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) <= 0
    }

    /// `self > other` in sequence space.
    pub const fn after(self, other: SeqNum) -> bool {
        other.before(self)
    }

    /// `self >= other` in sequence space.
    pub const fn after_eq(self, other: SeqNum) -> bool {
        other.before_eq(self)
    }

    /// `low <= self < high`, measured from `low` so that it is right across the wrap even when
    /// the interval is larger than 2^31 (as a window never is).
    pub const fn between(self, low: SeqNum, high: SeqNum) -> bool {
        self.0.wrapping_sub(low.0) < high.0.wrapping_sub(low.0)
    }

    /// `low <= self <= high`.
    pub const fn between_incl(self, low: SeqNum, high: SeqNum) -> bool {
        self.0.wrapping_sub(low.0) <= high.0.wrapping_sub(low.0)
    }

    /// The later of two numbers (in sequence space).
    pub const fn max(self, other: SeqNum) -> SeqNum {
        if self.after(other) { self } else { other }
    }

    /// The earlier of two numbers (in sequence space).
    pub const fn min(self, other: SeqNum) -> SeqNum {
        if self.before(other) { self } else { other }
    }

    /// How far `self` is ahead of `earlier`, or 0 if it is not ahead.
    pub const fn distance_from(self, earlier: SeqNum) -> u32 {
        if self.after(earlier) {
            self.0.wrapping_sub(earlier.0)
        } else {
            0
        }
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for SeqNum {
    type Output = SeqNum;
    /// Adds a length; lengths are below 2^32 in TCP (windows are at most 2^30).
    fn add(self, rhs: usize) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl AddAssign<usize> for SeqNum {
    fn add_assign(&mut self, rhs: usize) {
        self.0 = self.0.wrapping_add(rhs as u32);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

impl Sub<SeqNum> for SeqNum {
    type Output = u32;
    /// The forward distance from `rhs` to `self` modulo 2^32. Callers use it only where
    /// `rhs` is known not to be after `self` (check with `before_eq` first).
    fn sub(self, rhs: SeqNum) -> u32 {
        self.0.wrapping_sub(rhs.0)
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A window scale shift count, 0..=14 (RFC 7323 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WindowScale(u8);

impl WindowScale {
    /// The largest shift RFC 7323 allows.
    pub const MAX: WindowScale = WindowScale(14);
    /// No scaling.
    pub const NONE: WindowScale = WindowScale(0);

    /// RFC 7323 2.3: "If a Window Scale option is received with a shift.cnt value larger than
    /// 14, the TCP SHOULD log the error but MUST use 14 instead of the specified value."
    pub const fn new_clamped(shift: u8) -> WindowScale {
        WindowScale(if shift > 14 { 14 } else { shift })
    }

    /// The shift count.
    pub const fn shift(self) -> u8 {
        self.0
    }

    /// The smallest scale that lets a 16-bit window field advertise `buffer` bytes (what Linux
    /// computes in `tcp_select_initial_window`).
    pub const fn for_buffer(buffer: usize) -> WindowScale {
        let mut shift = 0u8;
        while shift < 14 && (buffer >> shift) > 0xffff {
            shift += 1;
        }
        WindowScale(shift)
    }
}

/// A window in bytes, after scaling: at most 0xffff << 14 (RFC 7323 2.3, "the maximum window
/// size ... 1 GiB").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Window(u32);

impl Window {
    /// The largest window TCP can express.
    pub const MAX: Window = Window(0xffff << 14);
    /// A zero window.
    pub const ZERO: Window = Window(0);

    /// A window of `bytes`, clamped to [`Window::MAX`].
    pub const fn new_clamped(bytes: usize) -> Window {
        if bytes > Self::MAX.0 as usize {
            Self::MAX
        } else {
            Window(bytes as u32)
        }
    }

    /// A received 16-bit window field, scaled.
    pub const fn from_field(field: u16, scale: WindowScale) -> Window {
        Window((field as u32) << scale.0)
    }

    /// The 16-bit field that advertises this window with `scale`, rounded down (never
    /// advertising space that is not there), saturating at 0xffff.
    pub const fn to_field(self, scale: WindowScale) -> u16 {
        let v = self.0 >> scale.0;
        if v > 0xffff { 0xffff } else { v as u16 }
    }

    /// Bytes.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Bytes, as a length.
    pub const fn len(self) -> usize {
        self.0 as usize
    }

    /// True for a zero window.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True for a zero window (the same as [`Window::is_zero`]).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A maximum segment size: the largest payload of one segment.
///
/// Linux never uses less than 88 bytes (`TCP_MIN_MSS`, which guards against tiny-MSS
/// resource exhaustion); an MSS option below that is raised to it. The largest is 65495
/// (65535 - 40, as on loopback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mss(u16);

// An MSS is never zero: it has a length but no emptiness.
#[allow(clippy::len_without_is_empty)]
impl Mss {
    /// Linux's `TCP_MIN_MSS`.
    pub const MIN: Mss = Mss(88);
    /// The largest MSS an IPv4 packet allows.
    pub const MAX: Mss = Mss(65495);
    /// RFC 9293 3.7.1: "If an MSS Option is not received at connection setup, TCP
    /// implementations MUST assume a default send MSS of 536 (576 - 40) for IPv4".
    pub const DEFAULT_IPV4: Mss = Mss(536);

    /// An MSS of `bytes`, clamped to `MIN..=MAX`.
    pub const fn new_clamped(bytes: u16) -> Mss {
        if bytes < Self::MIN.0 {
            Self::MIN
        } else if bytes > Self::MAX.0 {
            Self::MAX
        } else {
            Mss(bytes)
        }
    }

    /// The MSS for an IP MTU (MTU - 20 - 20), clamped.
    pub const fn for_mtu(mtu: u16) -> Mss {
        Mss::new_clamped(mtu.saturating_sub(40))
    }

    /// Bytes.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Bytes, as a length.
    pub const fn len(self) -> usize {
        self.0 as usize
    }

    /// The smaller of two sizes.
    pub const fn min(self, other: Mss) -> Mss {
        if self.0 < other.0 { self } else { other }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_holds_across_the_wrap() {
        let a = SeqNum(u32::MAX - 10);
        let b = a + 20u32;
        assert_eq!(b, SeqNum(9));
        assert!(a.before(b) && b.after(a));
        assert!(!a.after(b) && !b.before(a));
        assert_eq!(b - a, 20);
        assert!(SeqNum(0).between(a, b));
        assert!(!b.between(a, b));
        assert!(b.between_incl(a, b));
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert_eq!(b.distance_from(a), 20);
        assert_eq!(a.distance_from(b), 0);
    }

    #[test]
    fn window_scale_is_clamped_to_14() {
        assert_eq!(WindowScale::new_clamped(15).shift(), 14);
        assert_eq!(WindowScale::new_clamped(7).shift(), 7);
        assert_eq!(WindowScale::for_buffer(65535).shift(), 0);
        assert_eq!(WindowScale::for_buffer(65536).shift(), 1);
        assert_eq!(WindowScale::for_buffer(6 * 1024 * 1024).shift(), 7);
        assert_eq!(WindowScale::for_buffer(usize::MAX).shift(), 14);
    }

    #[test]
    fn windows_scale_round_down_and_saturate() {
        let s = WindowScale::new_clamped(7);
        assert_eq!(Window::from_field(0xffff, WindowScale::MAX), Window::MAX);
        assert_eq!(Window::new_clamped(1000).to_field(s), 7); // 1000 >> 7, never rounding up
        assert_eq!(Window::new_clamped(usize::MAX), Window::MAX);
        assert_eq!(Window::MAX.to_field(WindowScale::NONE), 0xffff);
    }

    #[test]
    fn mss_is_clamped_like_linux() {
        assert_eq!(Mss::new_clamped(1).get(), 88);
        assert_eq!(Mss::for_mtu(1500).get(), 1460);
        assert_eq!(Mss::for_mtu(0).get(), 88);
        assert_eq!(Mss::new_clamped(u16::MAX).get(), 65495);
    }

    proptest! {
        #[test]
        fn before_and_after_are_antisymmetric(a in any::<u32>(), d in 1u32..(1 << 31)) {
            let (x, y) = (SeqNum(a), SeqNum(a.wrapping_add(d)));
            prop_assert!(x.before(y));
            prop_assert!(y.after(x));
            prop_assert!(!y.before(x));
            prop_assert!(!x.after(y));
            prop_assert!(x.before_eq(y) && !y.before_eq(x));
            prop_assert!(!x.before(x) && x.before_eq(x) && x.after_eq(x));
        }

        #[test]
        fn order_is_transitive_within_half_the_space(a in any::<u32>(), d1 in 1u32..(1 << 30), d2 in 1u32..(1 << 30)) {
            let x = SeqNum(a);
            let y = x + d1;
            let z = y + d2;
            prop_assert!(x.before(y) && y.before(z) && x.before(z));
        }

        #[test]
        fn between_matches_offset_arithmetic(low in any::<u32>(), len in 0u32..(1 << 31), off in any::<u32>()) {
            let (l, h, s) = (SeqNum(low), SeqNum(low) + len, SeqNum(low) + off);
            prop_assert_eq!(s.between(l, h), off < len);
            prop_assert_eq!(s.between_incl(l, h), off <= len);
        }

        #[test]
        fn adding_then_subtracting_is_identity(a in any::<u32>(), d in any::<u32>()) {
            let x = SeqNum(a);
            prop_assert_eq!((x + d) - x, d);
            prop_assert_eq!((x + d) - d, x);
        }
    }
}
