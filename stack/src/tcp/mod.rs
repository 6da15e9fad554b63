//! TCP (RFC 9293), written as a sans-IO state machine: segments and the current time in,
//! segments and the next deadline out.

pub mod congestion;
pub mod reassembly;
pub mod recv_buffer;
pub mod rtt;
pub mod sack_scoreboard;
pub mod send_buffer;
pub mod seq;

pub use seq::{Mss, SeqNum, Window, WindowScale};
