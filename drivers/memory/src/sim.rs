//! Deterministic simulations: several shards on one wire, stepped on a virtual clock.
//!
//! A [`Simulation`] owns a [`Wire`] and a set of nodes (a [`Shard`] and the port it polls). Each
//! [`Simulation::step`] polls every node until none has work at the current instant, then jumps
//! the clock straight to the next event: a frame delivery, room in a rate-limited transmit ring,
//! or a shard timer. Nothing waits for wall-clock time, so a minute of simulated retransmission
//! timeouts runs in milliseconds, and the same seed replays exactly.

use crate::Wire;
use core::fmt;
use shardnet::port::Port;
use shardnet::shard::Shard;
use shardnet::time::Instant;

/// One simulated host: a shard and its port.
pub struct Node<P: Port> {
    /// The stack.
    pub shard: Shard,
    /// Its port on the wire (possibly wrapped, e.g. in a pcap writer).
    pub port: P,
}

/// The simulation made no progress: a node kept asking to be polled at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Livelock {
    /// The instant the simulation was stuck at.
    pub at: Instant,
    /// The node that kept asking.
    pub node: usize,
}

impl fmt::Display for Livelock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} asked to be polled again and again at {}",
            self.node, self.at
        )
    }
}

impl core::error::Error for Livelock {}

/// Polls of every node at one instant before the simulation calls it a livelock.
const MAX_POLLS_PER_INSTANT: usize = 1000;

/// Several shards on one [`Wire`], driven on a virtual clock.
pub struct Simulation<P: Port> {
    /// The wire.
    pub wire: Wire,
    /// The hosts, in the order they were added.
    pub nodes: Vec<Node<P>>,
    now: Instant,
    on_time: fn(&mut P, Instant),
}

impl<P: Port> Simulation<P> {
    /// A simulation over `wire`, starting at the wire's current time.
    pub fn new(wire: Wire) -> Self {
        let now = wire.now();
        Simulation {
            wire,
            nodes: Vec::new(),
            now,
            on_time: |_, _| {},
        }
    }

    /// Calls `hook` on every port whenever the clock moves (e.g. to timestamp a pcap capture in
    /// virtual time).
    pub fn with_time_hook(mut self, hook: fn(&mut P, Instant)) -> Self {
        self.on_time = hook;
        self
    }

    /// Adds a host; returns its index in [`Simulation::nodes`].
    pub fn add(&mut self, shard: Shard, port: P) -> usize {
        self.nodes.push(Node { shard, port });
        self.nodes.len() - 1
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    fn set_time(&mut self, now: Instant) {
        self.now = now;
        self.wire.advance_to(now);
        for node in &mut self.nodes {
            (self.on_time)(&mut node.port, now);
        }
    }

    /// Polls every node until no node receives or sends anything more at the current instant
    /// (frames sent with no link delay arrive at once and are answered in the same instant).
    /// Returns true if any frame moved.
    pub fn poll(&mut self) -> Result<bool, Livelock> {
        let now = self.now;
        let mut moved = false;
        for _ in 0..MAX_POLLS_PER_INSTANT {
            let mut progress = false;
            for node in &mut self.nodes {
                let report = node.shard.poll_port(now, &mut node.port);
                progress |= report.received > 0 || report.sent > 0;
            }
            self.wire.advance_to(now);
            if !progress {
                return Ok(moved);
            }
            moved = true;
        }
        Err(Livelock { at: now, node: 0 })
    }

    /// The next instant after now at which anything happens: a delivery, room in a transmit
    /// ring, or a shard timer. A shard that wants polling *now* even though the last poll moved
    /// nothing is blocked on its port (ring full, pool empty): only a wire event unblocks it.
    pub fn next_event(&self) -> Option<Instant> {
        let now = self.now;
        let timers = self
            .nodes
            .iter()
            .filter_map(|n| n.shard.poll_timeout())
            .filter(|t| *t > now);
        timers.chain(self.wire.next_event()).min()
    }

    /// True if nothing at all is pending: no frame in flight, no wire event, and no shard with
    /// output or timers.
    pub fn is_idle(&self) -> bool {
        self.wire.next_event().is_none()
            && self.nodes.iter().all(|n| n.shard.poll_timeout().is_none())
    }

    /// Polls everything due now, then jumps the clock to the next event and polls that.
    /// Returns false if nothing moved and nothing is left to happen.
    pub fn step(&mut self) -> Result<bool, Livelock> {
        let moved = self.poll()?;
        let Some(next) = self.next_event() else {
            let now = self.now;
            return match self
                .nodes
                .iter()
                .position(|n| n.shard.poll_timeout().is_some_and(|t| t <= now))
            {
                Some(node) => Err(Livelock { at: now, node }),
                None => Ok(moved),
            };
        };
        self.set_time(next.max(self.now));
        self.poll()?;
        Ok(true)
    }

    /// Steps until `done` returns true (then true) or the clock passes `deadline` or nothing is
    /// left to happen (then false). `done` may act on the simulation (send, receive).
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool, Livelock> {
        loop {
            if done(self) {
                return Ok(true);
            }
            if self.now > deadline || !self.step()? {
                return Ok(done(self));
            }
        }
    }
}
