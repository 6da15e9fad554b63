//! The shard: one per core.
