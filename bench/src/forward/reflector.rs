//! The raw reflector: a poll loop on CPU 1 over any [`Port`], no stack: rx burst, [`reflect`]
//! each datagram in place, tx burst of the same frames (the AF_XDP UMEM frames, the DPDK
//! mbufs). The ceiling of what a stack on that port can do.

use super::reflect::reflect;
use crate::xdp_generator::pin;
use shardnet::port::{Batch, Frame, Port};
use shardnet::wire::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// The running reflector; [`Reflector::stop`] gives the port back.
pub struct Reflector<P> {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<P>,
}

impl<P: Port + Send + 'static> Reflector<P> {
    /// Runs the loop on `port` until [`Reflector::stop`]: every frame received is counted on
    /// `count`; while `echo` is set, each UDP datagram for `me` is sent back, everything else
    /// is released. When nothing arrives, an empty tx burst reaps transmit completions (AF_XDP;
    /// a DPDK port returns at once) and the thread yields.
    pub fn start(port: P, me: Ipv4Addr, echo: &Arc<AtomicBool>, count: &Arc<AtomicU64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (echo, count, done) = (echo.clone(), count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut port = port;
            pin(1);
            let mut rx: Batch<_> = Batch::new();
            let mut tx: Batch<_> = Batch::new();
            while !done.load(Ordering::Relaxed) {
                let n = port.rx_burst(&mut rx);
                if n == 0 {
                    port.tx_burst(&mut tx);
                    std::thread::yield_now();
                    continue;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
                let reflecting = echo.load(Ordering::Relaxed);
                for mut f in rx.drain(..) {
                    if reflecting && reflect(f.data_mut(), me) {
                        tx.push(f);
                    } else {
                        port.release(f);
                    }
                }
                while !tx.is_empty() {
                    if port.tx_burst(&mut tx) == 0 {
                        // The ring is full: drop the rest rather than stall the receive side.
                        for f in tx.drain(..) {
                            port.release(f);
                        }
                    }
                }
            }
            port
        });
        Reflector { stop, thread }
    }

    /// Stops the loop and returns the port; `Err` if the loop panicked.
    pub fn stop(self) -> std::thread::Result<P> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join()
    }
}
