//! sack_scoreboard (being written).
