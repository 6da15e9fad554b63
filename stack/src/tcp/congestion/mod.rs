//! Congestion control (being written).
