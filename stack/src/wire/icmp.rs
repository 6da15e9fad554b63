//! icmp (being written).
