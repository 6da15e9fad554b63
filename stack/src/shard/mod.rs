//! The shard: one per core.

pub mod rss;
pub mod stats;
