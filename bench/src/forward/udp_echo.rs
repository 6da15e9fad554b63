//! shardnet's UDP echo: the runtime with one shard on CPU 1 over any [`Port`], and an app
//! with a bound UDP socket that echoes (or only counts) every datagram.

use shardnet::ip::{InterfaceConfig, Ipv4Cidr};
use shardnet::port::Port;
use shardnet::runtime::{App, AppContext, IdlePolicy, Pinning, Runtime, RuntimeConfig};
use shardnet::shard::ShardConfig;
use shardnet::socket::SocketHandle;
use shardnet::time::Duration;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The app: a UDP socket bound to `addr` on its first step; every datagram is counted, and
/// echoed to its sender while the echo switch is set.
pub struct UdpEcho {
    addr: SocketAddrV4,
    socket: Option<SocketHandle>,
    buf: Vec<u8>,
    echo: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
}

impl App for UdpEcho {
    fn step(&mut self, ctx: &mut AppContext<'_>) {
        let mut s = ctx.sockets();
        let h = match self.socket {
            Some(h) => h,
            None => match s.bind_udp(self.addr) {
                Ok(h) => {
                    self.buf = vec![0; 2048];
                    self.socket = Some(h);
                    h
                }
                Err(e) => panic!("bind UDP {}: {e:?}", self.addr.port()),
            },
        };
        let echo = self.echo.load(Ordering::Relaxed);
        let mut n = 0;
        while let Ok(r) = s.recv_from(h, &mut self.buf) {
            n += 1;
            if echo {
                let _ = s.send_to(h, Some(r.from), &self.buf[..r.len]);
            }
        }
        if n > 0 {
            self.count.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// One shard for `addr`'s address/24 on `port`'s MAC with MTU `mtu` (`None`: the port's), no
/// gateway; it polls and yields when there is nothing (as the raw reflector does), on CPU 1
/// like the other responders (the load runs on CPU 0), and stops within 1 s.
fn runtime_config(port: &impl Port, addr: SocketAddrV4, mtu: Option<u16>) -> RuntimeConfig {
    let caps = port.capabilities();
    let mut c = RuntimeConfig::new(ShardConfig::new(InterfaceConfig {
        mac: caps.mac,
        cidr: Ipv4Cidr::new(*addr.ip(), 24).expect("a valid prefix"),
        gateway: None,
        mtu: mtu.unwrap_or(caps.mtu),
        ttl: 64,
    }));
    c.idle = IdlePolicy::Yield;
    c.pinning = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        Pinning::Cores(vec![1])
    } else {
        Pinning::None
    };
    c.grace = Duration::from_secs(1);
    c
}

/// shardnet's UDP echo running on a port; [`ShardnetEcho::stop`] gives the port back.
pub struct ShardnetEcho<P> {
    runtime: Runtime<P, UdpEcho>,
}

impl<P: Port + Send + 'static> ShardnetEcho<P> {
    /// Starts the runtime on `port` with the [`UdpEcho`] app on `addr`, counting on `count`
    /// and echoing while `echo` is set. `mtu`: the shard's MTU (`None`: the port's).
    pub fn start(
        port: P,
        addr: SocketAddrV4,
        mtu: Option<u16>,
        echo: &Arc<AtomicBool>,
        count: &Arc<AtomicU64>,
    ) -> Self {
        let app = UdpEcho {
            addr,
            socket: None,
            buf: Vec::new(),
            echo: echo.clone(),
            count: count.clone(),
        };
        let config = runtime_config(&port, addr, mtu);
        let runtime = Runtime::start(config, vec![(port, app)]).expect("start the runtime");
        ShardnetEcho { runtime }
    }

    /// Stops the runtime and returns its port.
    pub fn stop(self) -> P {
        let mut exits = self.runtime.stop().expect("stop the runtime");
        exits.pop().expect("one shard").port
    }
}
