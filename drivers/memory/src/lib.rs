//! memory wire (being written).
