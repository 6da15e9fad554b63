//! tcp_option (being written).
