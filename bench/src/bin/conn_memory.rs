//! Memory per TCP connection at shard scale: two shards on the memory wire (client and server)
//! open `--connections` connections (default 1,000,000) in batches of `--batch`, each
//! exchanging a request and its echo so that every buffer was used, then idle in ESTABLISHED.
//! Reports heap bytes per connection on each side (a counting global allocator), what the
//! shard reserves per connection slot, and the process's RSS.
//!
//! ```sh
//! cargo run --release -p shardnet-bench --bin conn_memory -- --connections 1000000
//! ```
//!
//! The measurement itself is `stack/tests/support/connections.rs`, shared with the regression
//! test `stack/tests/connection_memory.rs`.

#[path = "../../../stack/tests/support/connections.rs"]
mod connections;

use connections::Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--connections", 1_000_000);
    let kernel_n = arg(&args, "--kernel-connections", 9_000);
    let batch = arg(&args, "--batch", 4096);
    let started = std::time::Instant::now();
    let mut next_report = 0;
    let r = connections::measure(n, batch, |opened| {
        if opened >= next_report || opened == n {
            eprintln!(
                "{opened:>9} connections open, {:>7.1} s, heap {:>6} MiB",
                started.elapsed().as_secs_f64(),
                connections::heap_in_use() >> 20
            );
            next_report = opened + n.div_ceil(20).max(1);
        }
    });
    let mib = |b: usize| b as f64 / f64::from(1 << 20);
    let (r_client, r_server) = (r.client_per_connection(), r.server_per_connection());
    println!("connections (each side):        {}", r.connections);
    println!(
        "setup (handshakes + echo):      {:.1} s wall clock, {:.0} connections/s",
        r.elapsed.as_secs_f64(),
        r.connections as f64 / r.elapsed.as_secs_f64()
    );
    println!("size_of::<Tcb>():               {} B", r.tcb_size);
    println!(
        "client heap per idle conn:      {:.0} B (+ {:.0} B reserved per slot at Shard::new)",
        r.client_per_connection(),
        r.client_reserved_per_connection()
    );
    println!(
        "server heap per idle conn:      {:.0} B (+ {:.0} B reserved per slot at Shard::new)",
        r.server_per_connection(),
        r.server_reserved_per_connection()
    );
    println!(
        "client shard heap total:        {:.1} MiB ({:.1} MiB of it fixed, independent of connections)",
        mib(r.per_side.0 + r.reserved.0 + r.fixed),
        mib(r.fixed)
    );
    println!(
        "server shard heap total:        {:.1} MiB",
        mib(r.per_side.1 + r.reserved.1 + r.fixed)
    );
    println!(
        "process heap peak:              {:.1} MiB",
        mib(connections::heap_peak())
    );
    if let Some(rss) = r.rss {
        println!(
            "process RSS, all connections open: {:.1} MiB ({:.0} B per connection, both sides)",
            mib(rss),
            rss as f64 / r.connections as f64
        );
    }
    if let Some(hwm) = connections::proc_status_bytes("VmHWM:") {
        println!("process peak RSS (VmHWM):       {:.1} MiB", mib(hwm));
    }
    // The Linux kernel in the same run, for the side-by-side ratio.
    match shardnet_bench::kernel_sockets::measure(kernel_n) {
        Ok(k) => {
            let ours = (r_client + r_server) / 2.0;
            println!(
                "Linux kernel, same run:         {:.0} B of slab per connection side ({} loopback connections, /proc/meminfo Slab delta)",
                k.per_side(),
                k.connections
            );
            println!(
                "ratio shardnet / kernel:        {:.2} (shardnet heap per side / kernel slab per side)",
                ours / k.per_side()
            );
        }
        Err(e) => println!("Linux kernel, same run:         not measured ({e})"),
    }
}
