//! Memory per idle TCP connection: a regression bound that fails if the send or receive buffers
//! were allocated eagerly again (256 KiB each by default). Two shards on the memory wire open
//! connections, exchange a request and a reply on each (so every buffer was used and drained)
//! and stay idle in ESTABLISHED; a counting allocator gives each shard's heap. Run with
//! `--nocapture` to see the figures; `cargo run --release -p shardnet-bench --bin conn_memory`
//! measures a million.

#[path = "support/connections.rs"]
mod connections;

use connections::Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn an_idle_established_connection_costs_under_two_kib_on_each_side() {
    let n = if cfg!(debug_assertions) {
        3_000
    } else {
        30_000
    };
    let r = connections::measure(n, 1000, |_| {});
    let (c, s) = (r.client_per_connection(), r.server_per_connection());
    println!(
        "{n} idle connections: client {c:.0} B/conn + {:.0} B/conn reserved, server {s:.0} B/conn \
         + {:.0} B/conn reserved; size_of::<Tcb>() = {}",
        r.client_reserved_per_connection(),
        r.server_reserved_per_connection(),
        r.tcb_size
    );
    // Measured (debug, 3,000 connections): 1,584 and 1,587 bytes, i.e. the slab slot holding
    // the TCB (about 1.16 KB) times the slab's doubling slack (4,096 slots for 3,000). Eager
    // buffers would add 512 KiB, an eager SACK scoreboard and reassembly list 2.5 KiB.
    assert!(c < 2048.0, "client: {c} bytes per idle connection");
    assert!(s < 2048.0, "server: {s} bytes per idle connection");
    // What `max_tcp_connections` reserves up front (flow table, timer wheel, ready list).
    assert!(r.client_reserved_per_connection() < 128.0);
    assert!(r.server_reserved_per_connection() < 128.0);
}
