//! The kernel socket load: a UDP socket in the load namespace (what an ordinary client sends
//! with), on CPU `shape.cpu`, in two patterns, each after `shape.warmup` of unmeasured load:
//!
//! - **echo** ([`echo_load`]): closed loop with `shape.window` datagrams in flight; each echo
//!   received sends the next (a 20 ms silence counts the window's datagrams as lost and refills
//!   it);
//! - **rx** ([`rx_load`]): open loop, the socket sends as fast as it goes and the responder
//!   counts what reaches it.

use super::figures::{Figures, figures};
use super::namespaces::Topology;
use crate::xdp_generator::{Shape, in_ns, pin};
use shardnet::wire::Ipv4Addr;
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a load run measured.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Echoes received (echo) or datagrams sent (rx).
    pub packets: u64,
    /// Datagrams presumed lost (echo).
    pub lost: u64,
    /// How long the measured part took.
    pub secs: f64,
}

/// Closed loop from `net.load_ip` to `target`:`net.port`, `shape.window` datagrams of
/// `shape.size` bytes in flight for `shape.secs` after the warm-up.
pub fn echo_load(net: &Topology, target: Ipv4Addr, shape: Shape) -> Load {
    let Shape {
        size,
        window,
        secs,
        warmup,
        ..
    } = shape;
    on_load_socket(net, target, shape, move |s, msg| {
        s.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut buf = vec![0u8; 2048];
        let mut run = |d: Duration, count: bool| -> (u64, u64) {
            let (mut got, mut lost) = (0u64, 0u64);
            for _ in 0..window {
                let _ = s.send(msg);
            }
            let end = Instant::now() + d;
            while Instant::now() < end {
                match s.recv(&mut buf) {
                    Ok(n) => {
                        if n == size {
                            got += 1;
                        }
                        let _ = s.send(msg);
                    }
                    Err(_) => {
                        lost += window as u64;
                        for _ in 0..window {
                            let _ = s.send(msg);
                        }
                    }
                }
            }
            // Drain the window's echoes so that the next run starts clean.
            while s.recv(&mut buf).is_ok() {}
            if count { (got, lost) } else { (0, 0) }
        };
        run(warmup, false);
        let start = Instant::now();
        let (got, lost) = run(Duration::from_secs_f64(secs), true);
        Load {
            packets: got,
            lost,
            secs: start.elapsed().as_secs_f64(),
        }
    })
}

/// Open loop from `net.load_ip`: sends `shape.size`-byte datagrams to `target`:`net.port` as
/// fast as it goes for `shape.secs`. `counter` (the responder's) is reset after the warm-up;
/// returns the load and what `counter` counted during it.
pub fn rx_load(
    net: &Topology,
    target: Ipv4Addr,
    shape: Shape,
    counter: Arc<AtomicU64>,
) -> (Load, u64) {
    let Shape { secs, warmup, .. } = shape;
    on_load_socket(net, target, shape, move |s, msg| {
        let blast = |d: Duration| -> u64 {
            let mut sent = 0u64;
            let end = Instant::now() + d;
            while Instant::now() < end {
                for _ in 0..64 {
                    if s.send(msg).is_ok() {
                        sent += 1;
                    }
                }
            }
            sent
        };
        blast(warmup);
        std::thread::sleep(Duration::from_millis(50));
        counter.store(0, Ordering::SeqCst);
        let start = Instant::now();
        let sent = blast(Duration::from_secs_f64(secs));
        let secs = start.elapsed().as_secs_f64();
        // Let the last datagrams land.
        std::thread::sleep(Duration::from_millis(50));
        (
            Load {
                packets: sent,
                lost: 0,
                secs,
            },
            counter.load(Ordering::SeqCst),
        )
    })
}

/// Runs `f` on a thread in the load namespace pinned to `shape.cpu`, with a UDP socket bound to
/// `net.load_ip` and connected to `target`:`net.port`, and a `shape.size`-byte datagram.
fn on_load_socket<T: Send + 'static>(
    net: &Topology,
    target: Ipv4Addr,
    shape: Shape,
    f: impl FnOnce(&UdpSocket, &[u8]) -> T + Send + 'static,
) -> T {
    let (from, to) = (net.load_ip, SocketAddrV4::new(target, net.port));
    in_ns(net.ns_load, move || {
        pin(shape.cpu);
        let s = UdpSocket::bind(SocketAddrV4::new(from, 0)).expect("bind");
        s.connect(to).expect("connect");
        f(&s, &vec![0x5au8; shape.size])
    })
    .join()
    .expect("the load thread")
}

/// Echo then rx against the responder at `target`, which counts on `count` and echoes while
/// `echo` is set.
pub fn measure(
    net: &Topology,
    target: Ipv4Addr,
    shape: Shape,
    echo: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
) -> Figures {
    echo.store(true, Ordering::SeqCst);
    let e = echo_load(net, target, shape);
    echo.store(false, Ordering::SeqCst);
    let r = rx_load(net, target, shape, count.clone());
    figures(e, r)
}
