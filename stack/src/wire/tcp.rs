//! tcp (being written).
