//! How a wire is built: pools, sizes, seed, RSS defaults and impairments.

use core::num::NonZeroU64;
use shardnet::shard::rss::{DEFAULT_INDIRECTION_ENTRIES, DEFAULT_KEY};
use shardnet::time::Duration;

/// Faults applied to the frames crossing one direction of a link, in the spirit of `tc netem`.
///
/// Every random decision is drawn from the link's own generator, seeded from
/// [`WireConfig::seed`], so the same calls give the same faults. For each frame and each port it
/// is delivered to, the wire decides, in this order:
///
/// 1. serialisation: with a [`bandwidth`](Self::bandwidth), the frame starts after the previous
///    frame on that link has been sent, and takes `len / bandwidth` seconds;
/// 2. [`loss`](Self::loss): the frame is dropped (it still used the link's time);
/// 3. [`duplicate`](Self::duplicate): a second copy follows the first (and is serialised too);
/// 4. for each copy, its arrival time: departure + [`delay`](Self::delay) + a uniform draw in
///    `[0, jitter]`, plus [`reorder_delay`](Self::reorder_delay) with probability
///    [`reorder`](Self::reorder) (so frames sent within that time overtake it);
/// 5. for each copy, [`corrupt`](Self::corrupt): one bit at a uniformly chosen offset of the
///    frame is flipped on arrival.
///
/// Probabilities are clamped to `[0, 1]`; NaN counts as 0. Jitter can reorder frames by itself,
/// as with netem.
#[derive(Clone, Debug, PartialEq)]
pub struct Impairments {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by [`Self::reorder_delay`].
    pub reorder: f64,
    /// How long a held-back frame is delayed on top of its normal arrival time.
    pub reorder_delay: Duration,
    /// Probability that one bit of a frame is flipped.
    pub corrupt: f64,
    /// Fixed propagation delay.
    pub delay: Duration,
    /// Maximum extra delay, drawn uniformly in `[0, jitter]` per frame.
    pub jitter: Duration,
    /// Link rate in bytes per second (of Ethernet frame bytes, without preamble or gap);
    /// `None` for an infinitely fast link.
    pub bandwidth: Option<NonZeroU64>,
}

impl Impairments {
    /// A perfect link: nothing lost, duplicated, reordered, corrupted, delayed or rate-limited.
    pub const NONE: Impairments = Impairments {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::ZERO,
        corrupt: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        bandwidth: None,
    };
}

impl Default for Impairments {
    fn default() -> Self {
        Impairments::NONE
    }
}

/// The configuration of a [`crate::Wire`].
#[derive(Clone, Debug, PartialEq)]
pub struct WireConfig {
    /// Frames in the pool of each queue (each queue pair of each port has a pool of its own).
    pub pool_size: usize,
    /// Bytes per frame buffer; at least `mtu + 14` (the Ethernet header).
    pub frame_size: usize,
    /// IP MTU of every port; frames longer than `mtu + 14` bytes are dropped at transmit.
    pub mtu: u16,
    /// Frames a queue may have waiting to be serialised onto a rate-limited link before
    /// `tx_burst` leaves frames in the batch. At least 1.
    pub tx_ring_size: usize,
    /// The seed of every random decision the wire makes.
    pub seed: u64,
    /// Impairments of every direction of every link, until changed with
    /// [`crate::Wire::set_link_impairments`].
    pub impairments: Impairments,
    /// The Toeplitz key of ports added with [`crate::Wire::add_port`].
    pub rss_key: Vec<u8>,
    /// The indirection table size of ports added with [`crate::Wire::add_port`]
    /// (round-robin over their queues).
    pub indirection_entries: usize,
}

impl Default for WireConfig {
    /// 1024 frames of 2048 bytes per queue, MTU 1500, a 512-frame transmit ring, seed 0, no
    /// impairments, Microsoft's default RSS key and a 128-entry indirection table.
    fn default() -> Self {
        WireConfig {
            pool_size: 1024,
            frame_size: 2048,
            mtu: 1500,
            tx_ring_size: 512,
            seed: 0,
            impairments: Impairments::NONE,
            rss_key: DEFAULT_KEY.to_vec(),
            indirection_entries: DEFAULT_INDIRECTION_ENTRIES,
        }
    }
}
