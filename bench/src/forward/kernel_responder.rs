//! The kernel's own UDP echo (or counter): a socket on `kernel_ip`:`port` in the responders'
//! namespace, on CPU 1, over the same veth end as the benchmark's port (kernel to kernel).

use super::namespaces::Topology;
use crate::xdp_generator::{in_ns, pin};
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The running kernel responder.
pub struct KernelResponder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl KernelResponder {
    /// Binds the socket (waiting up to 5 s for it) and serves until [`KernelResponder::stop`]:
    /// every datagram is counted on `count`, and echoed to its sender while `echo` is set.
    pub fn start(net: &Topology, echo: &Arc<AtomicBool>, count: &Arc<AtomicU64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (echo, count, done) = (echo.clone(), count.clone(), stop.clone());
        let addr = SocketAddrV4::new(net.kernel_ip, net.port);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = in_ns(net.ns_resp, move || {
            pin(1);
            let s = UdpSocket::bind(addr).expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let _ = ready_tx.send(());
            let mut buf = vec![0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    count.fetch_add(1, Ordering::Relaxed);
                    if echo.load(Ordering::Relaxed) {
                        let _ = s.send_to(&buf[..n], from);
                    }
                }
            }
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        KernelResponder { stop, thread }
    }

    /// Stops it; `Err` if its thread panicked (e.g. the bind failed).
    pub fn stop(self) -> std::thread::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join()
    }
}
