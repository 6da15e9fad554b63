//! rtt (being written).
