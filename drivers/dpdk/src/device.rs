//! Device (ethdev) configuration: queues, pools, RSS, checksum offloads, link status.

use crate::port::DpdkPort;
use crate::{Eal, Error, Mempool};
use shardnet::port::{Capabilities, ChecksumOffload, RssConfig};
use shardnet::wire::EthernetAddress;
use shardnet_dpdk_sys as sys;
use std::ffi::CString;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A symmetric Toeplitz key (0x6d5a repeated): a flow and its reverse hash alike, so both
/// directions of a connection land on the same queue. 52 bytes; devices with 40-byte keys
/// use the first 40.
pub const SYMMETRIC_RSS_KEY: [u8; 52] = {
    let mut key = [0u8; 52];
    let mut i = 0;
    while i < 52 {
        key[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    key
};

/// How to set up a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// RX/TX queue pairs (one per shard).
    pub queues: u16,
    /// Descriptors per RX queue (adjusted to the device's limits).
    pub rx_descriptors: u16,
    /// Descriptors per TX queue (adjusted to the device's limits).
    pub tx_descriptors: u16,
    /// Mbufs in each queue's pool (must exceed the RX descriptors, plus what the stack and
    /// the TX ring hold).
    pub pool_size: u32,
    /// The per-lcore cache of each pool (used only by EAL lcores).
    pub pool_cache: u32,
    /// The IP MTU to ask for (kept as the device's when it cannot be set).
    pub mtu: u16,
    /// A MAC address to set; `None` keeps the device's. A device that cannot change its
    /// address and has none (`net_ring` reports all zeros and filters nothing) is reported
    /// with this one.
    pub mac: Option<EthernetAddress>,
    /// The RSS hash key with several queues; `None` uses [`SYMMETRIC_RSS_KEY`].
    pub rss_key: Option<Vec<u8>>,
    /// Enables the IPv4/TCP/UDP checksum offloads the device offers.
    pub checksum_offload: bool,
    /// Puts the device in promiscuous mode (ignored where unsupported).
    pub promiscuous: bool,
}

impl Default for PortConfig {
    /// One queue, 1024 descriptors each way, 8191 mbufs per queue, MTU 1500, checksum
    /// offloads on when offered, device MAC, symmetric RSS key.
    fn default() -> Self {
        PortConfig {
            queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            pool_size: 8191,
            pool_cache: 256,
            mtu: 1500,
            mac: None,
            rss_key: None,
            checksum_offload: true,
            promiscuous: false,
        }
    }
}

/// Link state as the device reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Device counters (`rte_eth_stats_get`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames dropped by the device for lack of RX descriptors.
    pub rx_missed: u64,
    /// Erroneous received frames.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Owns the started device; stops and closes it when the last handle (device or port) goes.
#[derive(Debug)]
pub(crate) struct DeviceInner {
    pub(crate) port_id: u16,
    pools: Vec<Arc<Mempool>>,
    /// The network namespace of the thread that opened the device.
    netns: Option<std::fs::File>,
}

/// Whether the calling thread is in the network namespace `ns` refers to.
fn in_netns(ns: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (ns.metadata(), std::fs::metadata("/proc/thread-self/ns/net")) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        // Cannot tell: close where we are.
        _ => true,
    }
}

impl Drop for DeviceInner {
    fn drop(&mut self) {
        let port_id = self.port_id;
        let close = move || {
            // SAFETY: no port of this device exists any more (each holds an Arc of self), so
            // no thread is in a burst call; stopping frees the mbufs in the device's RX rings,
            // and the pools (dropped after this body) outlive that.
            unsafe {
                sys::rte_eth_dev_stop(port_id);
                sys::rte_eth_dev_close(port_id);
            }
        };
        // Virtual devices over a kernel interface (net_af_xdp, net_af_packet, net_tap) undo
        // their setup by interface index or name in the calling thread's network namespace:
        // net_af_xdp detaches its XDP program from `if_index`, net_af_packet restores the
        // interface's flags by name. Closed from another namespace, that would reach another
        // interface (and leave the program on this one, so that the device cannot be opened
        // again). Close from a thread in the namespace the device was opened in.
        match &self.netns {
            Some(ns) if !in_netns(ns) => {
                std::thread::scope(|scope| {
                    let handle = scope.spawn(|| {
                        // SAFETY: setns on this short-lived thread only, with a valid
                        // namespace fd.
                        let r = unsafe {
                            libc::setns(std::os::fd::AsRawFd::as_raw_fd(ns), libc::CLONE_NEWNET)
                        };
                        if r == 0 {
                            close();
                        }
                        r == 0
                    });
                    if !handle.join().unwrap_or(false) {
                        // Cannot enter it (the namespace is gone, or no CAP_SYS_ADMIN): close
                        // here rather than leak the port.
                        close();
                    }
                });
            }
            _ => close(),
        }
        self.pools.clear();
    }
}

/// A configured and started DPDK device; [`DpdkDevice::open`] also returns one
/// [`DpdkPort`] per queue.
#[derive(Clone, Debug)]
pub struct DpdkDevice {
    inner: Arc<DeviceInner>,
    caps: Capabilities,
    driver_name: String,
}

static POOL_SEQ: AtomicU32 = AtomicU32::new(0);

fn check(op: &'static str, ret: i32) -> Result<(), Error> {
    if ret < 0 {
        Err(Error::from_ret(op, ret))
    } else {
        Ok(())
    }
}

/// The port id of the device DPDK knows as `name` (`net_ring0`, `0000:01:00.0`, ...).
pub fn port_by_name(_eal: &Eal, name: &str) -> Result<u16, Error> {
    let cname = CString::new(name).map_err(|_| Error::InvalidArgument(name.into()))?;
    let mut port = 0u16;
    // SAFETY: cname is a valid string; port is a valid out-pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port) };
    check("rte_eth_dev_get_port_by_name", ret)?;
    Ok(port)
}

/// Creates a virtual device (`rte_vdev_init`), e.g. `("net_af_packet0", "iface=veth0")`,
/// and returns its port id.
pub fn create_vdev(eal: &Eal, name: &str, args: &str) -> Result<u16, Error> {
    let cname = CString::new(name).map_err(|_| Error::InvalidArgument(name.into()))?;
    let cargs = CString::new(args).map_err(|_| Error::InvalidArgument(args.into()))?;
    // SAFETY: the EAL is initialised; both strings are valid and copied by DPDK.
    let ret = unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
    check("rte_vdev_init", ret)?;
    port_by_name(eal, name)
}

/// Two `net_ring` devices joined back to back, `queues` queue pairs each: what one sends on
/// queue `q` the other receives on queue `q`. Returns their port ids. The rings (`ring_size`
/// slots, a power of two) live for the rest of the process.
pub fn ring_pair(_eal: &Eal, name: &str, queues: u16, ring_size: u32) -> Result<(u16, u16), Error> {
    let mut a_to_b = Vec::new();
    let mut b_to_a = Vec::new();
    for q in 0..queues {
        for (dir, rings) in [("ab", &mut a_to_b), ("ba", &mut b_to_a)] {
            let rname = CString::new(format!("{name}_{dir}{q}"))
                .map_err(|_| Error::InvalidArgument(name.into()))?;
            let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ;
            // SAFETY: the EAL is initialised (`_eal`); rname is valid and copied by DPDK.
            let ring = unsafe {
                sys::rte_ring_create(rname.as_ptr(), ring_size, sys::SOCKET_ID_ANY, flags)
            };
            if ring.is_null() {
                return Err(Error::from_rte_errno("rte_ring_create"));
            }
            rings.push(ring);
        }
    }
    let mut ports = [0u16; 2];
    for (i, (rx, tx)) in [(&b_to_a, &a_to_b), (&a_to_b, &b_to_a)]
        .into_iter()
        .enumerate()
    {
        let dname =
            CString::new(format!("{name}{i}")).map_err(|_| Error::InvalidArgument(name.into()))?;
        // SAFETY: rx and tx hold `queues` valid rings each; DPDK copies the arrays and keeps
        // the rings, which are never freed.
        let ret = unsafe {
            sys::rte_eth_from_rings(
                dname.as_ptr(),
                rx.as_ptr(),
                u32::from(queues),
                tx.as_ptr(),
                u32::from(queues),
                0,
            )
        };
        if ret < 0 {
            return Err(Error::from_rte_errno("rte_eth_from_rings"));
        }
        ports[i] = u16::try_from(ret).map_err(|_| Error::Unsupported("port id".into()))?;
    }
    Ok((ports[0], ports[1]))
}

impl DpdkDevice {
    /// Configures device `port_id` with `config.queues` RX/TX queue pairs, a pool per queue,
    /// RSS (with several queues, if the device hashes) and checksum offloads (if asked and
    /// offered), starts it, and returns it with one [`DpdkPort`] per queue.
    pub fn open(
        eal: &Eal,
        port_id: u16,
        config: &PortConfig,
    ) -> Result<(DpdkDevice, Vec<DpdkPort>), Error> {
        // SAFETY: rte_eth_dev_is_valid_port only reads the port table.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(Error::InvalidArgument(format!("no DPDK port {port_id}")));
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: the port is valid; info is a valid out-pointer.
        check("rte_eth_dev_info_get", unsafe {
            sys::rte_eth_dev_info_get(port_id, &mut info)
        })?;
        let driver_name = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points to the driver's static NUL-terminated name.
            unsafe { std::ffi::CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let queues = config.queues;
        if queues == 0 || queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(Error::Unsupported(format!(
                "{queues} queues ({driver_name} has at most {} RX and {} TX)",
                info.max_rx_queues, info.max_tx_queues
            )));
        }

        let mut conf = sys::rte_eth_conf::default();
        // RSS: with several queues, on the TCP/UDP/IP fields the device can hash.
        let rss_hf = (sys::RTE_ETH_RSS_IP as u64
            | sys::RTE_ETH_RSS_TCP as u64
            | sys::RTE_ETH_RSS_UDP as u64)
            & info.flow_type_rss_offloads;
        let key_len = match info.hash_key_size {
            0 => 40,
            n => usize::from(n),
        };
        let mut key: Vec<u8> = config
            .rss_key
            .clone()
            .unwrap_or_else(|| SYMMETRIC_RSS_KEY.to_vec());
        if key.len() != key_len {
            if config.rss_key.is_some() {
                return Err(Error::InvalidArgument(format!(
                    "RSS key of {} bytes, {driver_name} wants {key_len}",
                    key.len()
                )));
            }
            key.resize(key_len, 0x6d);
        }
        let use_rss = queues > 1 && rss_hf != 0;
        if use_rss {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len =
                u8::try_from(key.len()).map_err(|_| Error::InvalidArgument("RSS key".into()))?;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        if u32::from(config.mtu) >= u32::from(info.min_mtu)
            && u32::from(config.mtu) <= u32::from(info.max_mtu)
        {
            conf.rxmode.mtu = u32::from(config.mtu);
        }
        let mut checksum = ChecksumOffload::default();
        if config.checksum_offload {
            let rx_ip = sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM as u64;
            let rx_l4 =
                sys::RTE_ETH_RX_OFFLOAD_TCP_CKSUM as u64 | sys::RTE_ETH_RX_OFFLOAD_UDP_CKSUM as u64;
            let tx_ip = sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM as u64;
            let tx_l4 =
                sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM as u64 | sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM as u64;
            let rx = info.rx_offload_capa;
            let tx = info.tx_offload_capa;
            checksum.rx_ipv4 = rx & rx_ip == rx_ip;
            checksum.rx_l4 = rx & rx_l4 == rx_l4;
            checksum.tx_ipv4 = tx & tx_ip == tx_ip;
            // The stack offloads TCP and UDP together: both or neither.
            checksum.tx_l4 = tx & tx_l4 == tx_l4;
            if checksum.rx_ipv4 {
                conf.rxmode.offloads |= rx_ip;
            }
            if checksum.rx_l4 {
                conf.rxmode.offloads |= rx_l4;
            }
            if checksum.tx_ipv4 {
                conf.txmode.offloads |= tx_ip;
            }
            if checksum.tx_l4 {
                conf.txmode.offloads |= tx_l4;
            }
        }
        // SAFETY: the port is valid and stopped; conf (and the key it points to) is valid for
        // the call, which copies what it keeps.
        check("rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(port_id, queues, queues, &conf)
        })?;
        // From here on, dropping `inner` stops and closes the device.
        let mut inner = DeviceInner {
            port_id,
            pools: Vec::new(),
            netns: std::fs::File::open("/proc/thread-self/ns/net").ok(),
        };
        let mut rx_desc = config.rx_descriptors;
        let mut tx_desc = config.tx_descriptors;
        // SAFETY: valid port, valid out-pointers.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc)
        })?;
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = (socket >= 0).then_some(socket);
        // A device that cannot take an address but has none (all zeros: net_ring, which
        // filters nothing) uses the configured one as its own.
        let mut assumed_mac = None;
        if let Some(mac) = config.mac {
            let mut addr = sys::rte_ether_addr { addr_bytes: mac.0 };
            // SAFETY: valid port; addr is a valid address that DPDK copies.
            let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(port_id, &mut addr) };
            if ret == -ENOTSUP && current_mac(port_id)? == [0; 6] {
                assumed_mac = Some(mac);
            } else {
                check("rte_eth_dev_default_mac_addr_set", ret)?;
            }
        }
        for q in 0..queues {
            let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
            let pool = Arc::new(Mempool::new(
                eal,
                &format!("sn{port_id}q{q}_{seq}"),
                config.pool_size,
                config.pool_cache,
                Mempool::default_data_room(),
                socket,
            )?);
            let socket_arg = socket.map_or(sys::SOCKET_ID_ANY as u32, |s| s as u32);
            // SAFETY: configured port, q < queues; NULL selects the default queue
            // configuration (with the port-level offloads); the pool outlives the queue
            // (inner.pools is dropped after the device is closed).
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    rx_desc,
                    socket_arg,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
            // SAFETY: as above.
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(port_id, q, tx_desc, socket_arg, std::ptr::null())
            })?;
            inner.pools.push(pool);
        }
        // SAFETY: every queue is set up.
        check("rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(port_id)
        })?;
        if config.promiscuous {
            // SAFETY: started port. Devices without promiscuous mode return -ENOTSUP: ignored.
            unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        }
        let mac = match assumed_mac {
            Some(mac) => mac,
            None => EthernetAddress(current_mac(port_id)?),
        };
        let mut mtu = 0u16;
        // SAFETY: valid port, valid out-pointer.
        let mtu = if unsafe { sys::rte_eth_dev_get_mtu(port_id, &mut mtu) } == 0 && mtu != 0 {
            mtu
        } else {
            config.mtu
        };
        let rss = if use_rss {
            read_rss(port_id, key_len, info.reta_size)
        } else {
            None
        };
        let caps = Capabilities {
            mac,
            mtu,
            queue: 0,
            queue_count: queues,
            rss,
            checksum,
            pool_size: usize::try_from(config.pool_size).unwrap_or(usize::MAX),
        };
        let inner = Arc::new(inner);
        let ports = (0..queues)
            .map(|q| {
                let mut c = caps.clone();
                c.queue = q;
                DpdkPort::new(inner.clone(), q, inner.pools[usize::from(q)].clone(), c)
            })
            .collect();
        Ok((
            DpdkDevice {
                inner,
                caps,
                driver_name,
            },
            ports,
        ))
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.inner.port_id
    }

    /// The PMD's name (`net_ring`, `net_af_packet`, ...).
    pub fn driver_name(&self) -> &str {
        &self.driver_name
    }

    /// What the device is and can do (as queue 0 reports it).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The link status, without waiting for auto-negotiation.
    pub fn link(&self) -> Result<LinkStatus, Error> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: started port, valid out-pointer.
        check("rte_eth_link_get_nowait", unsafe {
            sys::rte_eth_link_get_nowait(self.inner.port_id, &mut link)
        })?;
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// The device counters.
    pub fn stats(&self) -> Result<DeviceStats, Error> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port, valid out-pointer.
        check("rte_eth_stats_get", unsafe {
            sys::rte_eth_stats_get(self.inner.port_id, &mut s)
        })?;
        Ok(DeviceStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Whether the driver can raise an interrupt when frames arrive on RX queue `queue`
    /// (`rte_eth_dev_rx_intr_enable`), which an rx waker for a sleeping shard would be built
    /// on. `Ok(false)` when the driver has no `rx_queue_intr_enable` operation (ethdev answers
    /// `ENOTSUP` before anything else): in DPDK 22.11 the case of `net_ring`, `net_af_packet`
    /// and `net_af_xdp` (measured by the tests). That is why [`DpdkPort`] offers no rx waker
    /// and an idle runtime with `IdlePolicy::Sleep` caps each sleep at
    /// `RuntimeConfig::no_waker_sleep`. An interrupt this enabled is disabled again.
    pub fn rx_interrupts_supported(&self, queue: u16) -> Result<bool, Error> {
        let port_id = self.inner.port_id;
        // SAFETY: a started port; the call validates the queue id.
        let ret = unsafe { sys::rte_eth_dev_rx_intr_enable(port_id, queue) };
        if ret == -ENOTSUP {
            return Ok(false);
        }
        check("rte_eth_dev_rx_intr_enable", ret)?;
        // SAFETY: as above; undoes the enable.
        unsafe { sys::rte_eth_dev_rx_intr_disable(port_id, queue) };
        Ok(true)
    }
}

const ENOTSUP: i32 = 95;

fn current_mac(port_id: u16) -> Result<[u8; 6], Error> {
    let mut addr = sys::rte_ether_addr::default();
    // SAFETY: valid port, valid out-pointer.
    check("rte_eth_macaddr_get", unsafe {
        sys::rte_eth_macaddr_get(port_id, &mut addr)
    })?;
    Ok(addr.addr_bytes)
}

/// The key and indirection table the device really uses, or `None` if it cannot say.
fn read_rss(port_id: u16, key_len: usize, reta_size: u16) -> Option<RssConfig> {
    let mut key = vec![0u8; key_len];
    let mut conf = sys::rte_eth_rss_conf {
        rss_key: key.as_mut_ptr(),
        rss_key_len: u8::try_from(key_len).ok()?,
        rss_hf: 0,
    };
    // SAFETY: started port; conf points to a key buffer of rss_key_len bytes.
    let ret = unsafe { sys::rte_eth_dev_rss_hash_conf_get(port_id, &mut conf) };
    if ret != 0 || conf.rss_hf == 0 {
        return None;
    }
    key.truncate(usize::from(conf.rss_key_len).min(key_len));
    let group = sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    let size = usize::from(reta_size);
    if size == 0 || size % group != 0 {
        return None;
    }
    let mut entries = vec![
        sys::rte_eth_rss_reta_entry64 {
            mask: u64::MAX,
            reta: [0; 64],
        };
        size / group
    ];
    // SAFETY: entries holds reta_size / 64 groups, as many as reta_size asks for.
    let ret = unsafe { sys::rte_eth_dev_rss_reta_query(port_id, entries.as_mut_ptr(), reta_size) };
    if ret != 0 {
        return None;
    }
    let indirection = entries
        .iter()
        .flat_map(|e| e.reta.iter().copied())
        .collect();
    Some(RssConfig { key, indirection })
}
