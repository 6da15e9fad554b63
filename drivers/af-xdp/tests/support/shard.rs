//! How the kernel-interop tests run a shard: shardnet is 198.18.0.2/24 on its veth end, one
//! unpinned shard with a 2 s grace period at stop, idling as the test asks.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::Port;
use shardnet::runtime::{App, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::StateHistogram;
use shardnet::time::Duration;
use shardnet::wire::Ipv4Addr;

/// shardnet's address in every test's namespaces.
pub const SHARDNET_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// [`SHARDNET_ADDR`] as text, for the kernel's tools.
pub const SHARDNET_IP: &str = "198.18.0.2";
/// The kernel's address in every test's namespaces (`Names::kernel_cidr` is its /24).
pub const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// [`KERNEL_ADDR`] as text, for the kernel's tools.
pub const KERNEL_IP: &str = "198.18.0.1";

/// How an idle shard waits.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    /// The idle policy.
    pub policy: IdlePolicy,
    /// The longest sleep on a port without an rx waker (DPDK's PMDs here; AF_XDP has one).
    pub no_waker_sleep: Duration,
}

/// A shard on `port` as [`SHARDNET_ADDR`]/24, no gateway, the port's MTU, TTL 64, idling as
/// `idle` says, unpinned, with a 2 s grace period at stop.
pub fn runtime_config<P: Port>(port: &P, idle: Idle) -> RuntimeConfig {
    let caps = port.capabilities();
    let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac: caps.mac,
        cidr: Ipv4Cidr::new(SHARDNET_ADDR, 24).expect("a valid prefix"),
        gateway: None,
        mtu: caps.mtu,
        ttl: 64,
    }));
    c.idle = idle.policy;
    c.no_waker_sleep = idle.no_waker_sleep;
    c.pinning = Pinning::None;
    c.grace = Duration::from_secs(2);
    c
}

/// Shard 0's TCP state histogram, read on its own thread.
pub fn histogram<P: Port + Send + 'static, A: App + Send + 'static>(
    runtime: &Runtime<P, A>,
) -> StateHistogram {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime
        .run_on(0, move |shard, now| {
            let _ = tx.send(shard.sockets(now).state_histogram());
        })
        .expect("run on the shard");
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the shard answers")
}

/// Locks `m`, also after a panic elsewhere (the tests read what the apps counted so far).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
