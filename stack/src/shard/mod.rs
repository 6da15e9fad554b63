//! The shard: one per core.

pub mod rss;
