//! TCP (RFC 9293), written as a sans-IO state machine: segments and the current time in,
//! segments and the next deadline out.

pub mod config;
pub mod congestion;
pub mod fastopen;
mod input;
pub mod isn;
pub mod listener;
pub mod reassembly;
pub mod recv_buffer;
mod ring;
pub mod rtt;
pub mod sack_scoreboard;
pub mod segment;
pub mod send_buffer;
pub mod seq;
pub mod state;
pub mod syncookie;
pub mod tcb;
pub mod time_wait;
pub mod timer_kind;

pub use config::{Keepalive, TcpConfig};
pub use segment::{Flags, Incoming, Options, Outgoing, Timestamps};
pub use seq::{Mss, SeqNum, Window, WindowScale};
pub use state::State;
pub use tcb::{RecvError, SendError, Tcb, TcpError};
pub use timer_kind::TimerKind;

#[cfg(test)]
mod tests;
