//! [`AfXdpPort`]: one AF_XDP socket on one queue of a network device, as a shardnet [`Port`].

use crate::bpf;
use crate::error::Error;
use crate::ring::Ring;
use crate::sys;
use shardnet::port::{Batch, Capabilities, ChecksumOffload, Frame, PoolStats, Port};
use shardnet::wire::{EthernetAddress, Ipv4Addr};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the XDP program is attached to the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) XDP: the program runs in the driver, before an `sk_buff` exists.
    Native,
    /// Generic (SKB) XDP: the program runs in the core stack on an `sk_buff`; works on any
    /// device, slower.
    Generic,
    /// Native if the driver supports it, else generic (with a message on stderr saying why).
    Auto,
}

/// How the socket moves frames between the device and the UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// The device DMAs straight into the UMEM (driver support needed).
    ZeroCopy,
    /// The kernel copies frames between its buffers and the UMEM (works everywhere).
    Copy,
}

/// Which bind modes to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroCopyPolicy {
    /// Zero-copy first, copy mode if the device does not support it.
    Try,
    /// Copy mode only.
    Never,
    /// Zero-copy or fail.
    Require,
}

/// The configuration of an AF_XDP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// The interface name (in the calling thread's network namespace).
    pub ifname: String,
    /// The queue this port serves (see [`AfXdpPort::open_queues`] for several).
    pub queue: u16,
    /// shardnet's IPv4 address on this interface: the XDP program redirects IPv4 packets to
    /// this address (and ARP whose target is this address) to the socket, and passes everything else to the kernel.
    pub addr: Ipv4Addr,
    /// How to attach the XDP program.
    pub mode: AttachMode,
    /// Zero-copy or copy mode.
    pub zero_copy: ZeroCopyPolicy,
    /// UMEM frames per queue (a power of two). Frames × frame size is locked memory: mind
    /// `ulimit -l`.
    pub frame_count: u32,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// Entries of each of the four rings (a power of two, at most `frame_count`).
    pub ring_size: u32,
}

impl AfXdpConfig {
    /// Defaults: queue 0, [`AttachMode::Auto`], [`ZeroCopyPolicy::Try`], 2048 frames of 2048
    /// bytes (4 MiB of UMEM), rings of 1024 entries.
    pub fn new(ifname: &str, addr: Ipv4Addr) -> Self {
        AfXdpConfig {
            ifname: ifname.to_owned(),
            queue: 0,
            addr,
            mode: AttachMode::Auto,
            zero_copy: ZeroCopyPolicy::Try,
            frame_count: 2048,
            frame_size: 2048,
            ring_size: 1024,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.ifname.is_empty() || self.ifname.len() >= libc::IFNAMSIZ {
            return bad(format!(
                "interface name {:?} is empty or too long",
                self.ifname
            ));
        }
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return bad(format!(
                "frame_size {} is not 2048 or 4096",
                self.frame_size
            ));
        }
        if !self.frame_count.is_power_of_two() || self.frame_count < 64 {
            return bad(format!(
                "frame_count {} is not a power of two >= 64",
                self.frame_count
            ));
        }
        if !self.ring_size.is_power_of_two()
            || self.ring_size < 32
            || self.ring_size > self.frame_count
        {
            return bad(format!(
                "ring_size {} is not a power of two in 32..=frame_count",
                self.ring_size
            ));
        }
        Ok(())
    }
}

/// How the XDP program ended up attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachInfo {
    /// [`AttachMode::Native`] or [`AttachMode::Generic`].
    pub mode: AttachMode,
    /// Why native mode was not used, when [`AttachMode::Auto`] fell back to generic.
    pub fallback_reason: Option<String>,
}

/// The XDP program, its XSKMAP and the link attaching it to the interface; shared by the
/// ports of one interface and detached when the last of them is dropped.
#[derive(Debug)]
struct Attachment {
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
    info: AttachInfo,
}

impl Attachment {
    fn attach(config: &AfXdpConfig, ifindex: u32, queue_count: u16) -> Result<Self, Error> {
        let map = bpf::create_xskmap(u32::from(queue_count.max(1)))
            .map_err(|e| Error::io("creating the XSKMAP (bpf BPF_MAP_CREATE)", e))?;
        let insns = bpf::redirect_program(map.as_raw_fd(), config.addr.octets());
        let prog = bpf::load_xdp(&insns).map_err(|e| {
            if e.error.raw_os_error() == Some(libc::EPERM) {
                Error::io("loading the XDP program (bpf BPF_PROG_LOAD)", e.error)
            } else {
                Error::ProgramRejected {
                    source: e.error,
                    log: e.log,
                }
            }
        })?;
        let attach = |flags: u32| {
            bpf::attach_xdp_link(&prog, ifindex, flags).map_err(|e| match e.raw_os_error() {
                Some(libc::EBUSY) | Some(libc::EEXIST) => Error::Busy {
                    ifname: config.ifname.clone(),
                    source: e,
                },
                _ => Error::io("attaching the XDP program (bpf BPF_LINK_CREATE)", e),
            })
        };
        let (link, info) = match config.mode {
            AttachMode::Native => (
                attach(sys::XDP_FLAGS_DRV_MODE)?,
                AttachInfo {
                    mode: AttachMode::Native,
                    fallback_reason: None,
                },
            ),
            AttachMode::Generic => (
                attach(sys::XDP_FLAGS_SKB_MODE)?,
                AttachInfo {
                    mode: AttachMode::Generic,
                    fallback_reason: None,
                },
            ),
            AttachMode::Auto => match attach(sys::XDP_FLAGS_DRV_MODE) {
                Ok(link) => (
                    link,
                    AttachInfo {
                        mode: AttachMode::Native,
                        fallback_reason: None,
                    },
                ),
                Err(e @ (Error::Busy { .. } | Error::PermissionDenied { .. })) => return Err(e),
                Err(e) => {
                    let reason = e.to_string();
                    eprintln!(
                        "shardnet-af-xdp: native XDP attach on {} failed ({reason}); \
                         falling back to generic (SKB) mode, which is slower",
                        config.ifname
                    );
                    (
                        attach(sys::XDP_FLAGS_SKB_MODE)?,
                        AttachInfo {
                            mode: AttachMode::Generic,
                            fallback_reason: Some(reason),
                        },
                    )
                }
            },
        };
        Ok(Attachment {
            map,
            _prog: prog,
            _link: link,
            info,
        })
    }
}

/// The UMEM: an anonymous, page-aligned mapping split into equal frames.
#[derive(Debug)]
struct UmemArea {
    base: NonNull<u8>,
    len: usize,
    /// Set when frames handed out may still point into the area at drop: it is then left
    /// mapped (leaked) so that they stay valid.
    leak: bool,
}

impl UmemArea {
    fn new(len: usize) -> Result<Self, Error> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::io("mapping the UMEM", io::Error::last_os_error()));
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(Error::Io {
            op: "mapping the UMEM",
            source: io::Error::from(io::ErrorKind::InvalidData),
        })?;
        Ok(UmemArea {
            base,
            len,
            leak: false,
        })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        if !self.leak {
            // SAFETY: exactly the mapping made in `UmemArea::new`; the socket that registered
            // it is closed first (see `AfXdpPort`'s drop) and no frame points into it (else
            // `leak` would be set).
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        }
    }
}

/// A frame in a port's UMEM: the bytes of one chunk, owned by whoever holds this handle (the
/// chunk is in none of the kernel's rings while the handle exists).
#[derive(Debug)]
pub struct XdpFrame {
    /// The frame's first byte.
    ptr: NonNull<u8>,
    /// Its UMEM address (offset from the UMEM base).
    addr: u64,
    len: u32,
    cap: u32,
    /// The base address of the UMEM it belongs to (identifies the port).
    umem: usize,
}

// SAFETY: an `XdpFrame` is the exclusive handle to its chunk (not in any ring, not aliased by
// another frame), and the chunk's memory stays mapped while frames are out (`UmemArea::leak`),
// so moving the handle to another thread moves exclusive access to plain memory.
unsafe impl Send for XdpFrame {}

impl XdpFrame {
    /// The frame's UMEM address.
    pub fn umem_addr(&self) -> u64 {
        self.addr
    }
}

impl Frame for XdpFrame {
    fn data(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies inside this frame's chunk (len <= cap, and cap is the
        // rest of the chunk from ptr), the memory stays mapped while the frame exists, and the
        // handle is exclusive, so no one writes these bytes during the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `data`, with `&mut self` making the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize) }
    }

    fn capacity(&self) -> usize {
        self.cap as usize
    }

    fn set_len(&mut self, len: usize) {
        self.len = u32::try_from(len).unwrap_or(u32::MAX).min(self.cap);
    }

    fn buffer_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `data_mut`, over the whole rest of the chunk (`cap` bytes).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap as usize) }
    }
}

/// Counters of one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames queued for transmit.
    pub tx_frames: u64,
    /// Transmit completions reaped.
    pub tx_completions: u64,
    /// `sendto` kicks made to start transmission.
    pub tx_kicks: u64,
    /// Kicks that failed with a transient error (retried later).
    pub tx_kick_errors: u64,
    /// Wakeups made for the fill ring.
    pub rx_wakeups: u64,
    /// `alloc_tx` calls that found no free frame.
    pub alloc_failures: u64,
    /// Frames of another port's UMEM given to this port's `release` or `tx_burst` (dropped:
    /// they cannot go on this port's rings).
    pub foreign_frames: u64,
    /// RX descriptors pointing outside the UMEM (never seen from a correct kernel; dropped).
    pub bad_descriptors: u64,
}

/// One AF_XDP socket bound to one queue: a UMEM, its fill and completion rings, and the
/// socket's RX and TX rings.
///
/// Frames stay in the UMEM: a received [`XdpFrame`] points at the chunk the kernel filled, and
/// [`Port::release`] puts the chunk back on a free list from which the fill ring is topped up.
/// Transmit frames come from the same free list and return to it through the completion ring.
#[derive(Debug)]
pub struct AfXdpPort {
    fd: OwnedFd,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    umem: UmemArea,
    attachment: Arc<Attachment>,
    caps: Capabilities,
    bind_mode: BindMode,
    frame_size: u32,
    frame_count: u32,
    /// Chunk addresses free in user space.
    free: Vec<u64>,
    /// How many chunks to keep in the fill ring (and the kernel's receive path).
    fill_target: u32,
    /// Chunks given to the fill ring and not yet back through the RX ring.
    in_fill: u32,
    /// Chunks on the TX ring or in transmission, not yet back through the completion ring.
    in_tx: u32,
    /// Frames handed to the stack and not given back.
    held: u32,
    counters: PortCounters,
    /// The thread that wakes the shard when frames arrive, once registered.
    waker: Option<RxWaker>,
}

/// State shared by a port and its waker thread.
#[derive(Debug, Default)]
struct WakerShared {
    /// Set by the port when the shard is about to park (`arm_rx_waker`); cleared by the waker
    /// thread when it wakes the shard.
    armed: AtomicBool,
    /// Set when the port is dropped.
    stop: AtomicBool,
}

/// The rx waker: a thread that `poll`s the socket (a duplicate of its fd) while the port is
/// armed, and unparks the shard thread when the RX ring has frames.
///
/// Protocol: a shard about to park arms the waker (`Port::arm_rx_waker`, unparking the waker
/// thread if it was not armed yet). The armed waker thread polls the socket for `POLLIN` (the RX ring is
/// not empty); when it sees it and wins the `armed` flag back (`swap`), it unparks the shard
/// thread. A frame that arrives before the shard parks leaves the thread's unpark token set,
/// so its park returns at once: no wakeup is lost. While the shard is busy and frames keep
/// coming, or while it polls without parking, the waker is disarmed and sleeps: it costs
/// nothing on the data path.
#[derive(Debug)]
struct RxWaker {
    shared: Arc<WakerShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RxWaker {
    fn start(fd: OwnedFd, shard: std::thread::Thread) -> io::Result<Self> {
        let shared = Arc::new(WakerShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("af-xdp-waker".into())
            .spawn(move || {
                let slice = std::time::Duration::from_millis(20);
                while !s.stop.load(Ordering::Acquire) {
                    if !s.armed.load(Ordering::Acquire) {
                        std::thread::park_timeout(slice);
                        continue;
                    }
                    let mut pfd = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: poll reads and writes one live `pollfd`; `fd` is this thread's
                    // own duplicate of the socket, open until the thread ends.
                    let r = unsafe { libc::poll(&mut pfd, 1, 20) };
                    if r > 0 && pfd.revents & libc::POLLIN != 0 {
                        if s.armed.swap(false, Ordering::AcqRel) {
                            shard.unpark();
                        }
                    } else if r < 0 || pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                        // Not a readiness we can wait on: do not spin.
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            })?;
        Ok(RxWaker {
            shared,
            thread: Some(thread),
        })
    }

    /// Called when the shard is about to park.
    fn arm(&self) {
        if !self.shared.armed.swap(true, Ordering::AcqRel) {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
    }
}

impl Drop for RxWaker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            // The thread polls in 20 ms slices: this returns promptly.
            let _ = t.join();
        }
    }
}

// SAFETY: the port exclusively owns its socket, rings and UMEM mapping (raw pointers into
// mappings no one else in the process uses); the kernel side of AF_XDP is not tied to a thread,
// so the port may move to (and be used from) another thread.
unsafe impl Send for AfXdpPort {}

/// Reads an interface's MAC address, MTU and queue count with ioctls on an `AF_INET` socket
/// (in the calling thread's network namespace, unlike `/sys`).
fn interface_info(ifname: &str) -> Result<(EthernetAddress, u16, u16), Error> {
    // SAFETY: creates a new socket; the returned fd is checked and owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Error::io(
            "opening an ioctl socket",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a new fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut hw = sys::IfreqAddr {
        name: sys::ifr_name(ifname),
        // SAFETY: `sockaddr` is plain old data; all-zero is a valid value.
        addr: unsafe { std::mem::zeroed() },
        pad: [0; 8],
    };
    // SAFETY: SIOCGIFHWADDR reads the name and writes the sockaddr of this `ifreq`, which is
    // live and 40 bytes long like the kernel's.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut hw) } < 0 {
        return Err(Error::io(
            "reading the MAC address",
            io::Error::last_os_error(),
        ));
    }
    let mut mac = [0u8; 6];
    for (m, &b) in mac.iter_mut().zip(hw.addr.sa_data.iter()) {
        *m = b as u8;
    }
    let mut mtu = sys::IfreqInt {
        name: sys::ifr_name(ifname),
        value: 0,
        pad: [0; 20],
    };
    // SAFETY: SIOCGIFMTU writes the int member of this live `ifreq`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut mtu) } < 0 {
        return Err(Error::io("reading the MTU", io::Error::last_os_error()));
    }
    let mut ch = sys::EthtoolChannels {
        cmd: sys::ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = sys::IfreqPtr {
        name: sys::ifr_name(ifname),
        data: std::ptr::from_mut(&mut ch).cast(),
        pad: [0; 16],
    };
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes an `ethtool_channels` through
    // `req.data`, which points at the live `ch`.
    let queues = if unsafe { libc::ioctl(sock.as_raw_fd(), sys::SIOCETHTOOL, &mut req) } < 0 {
        // Devices without ethtool channel support have one queue pair.
        1
    } else {
        ch.rx_count.max(ch.combined_count).max(1)
    };
    Ok((
        EthernetAddress(mac),
        u16::try_from(mtu.value).unwrap_or(1500),
        u16::try_from(queues).unwrap_or(u16::MAX),
    ))
}

/// Raises the `RLIMIT_MEMLOCK` soft limit to the hard limit; returns the soft limit now in
/// force (`None`: unlimited).
fn raise_memlock() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the live `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the live `raised`.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

fn setsockopt<T>(
    fd: &OwnedFd,
    opt: libc::c_int,
    value: &T,
    what: &'static str,
) -> Result<(), Error> {
    // SAFETY: `value` is a live `T` of `size_of::<T>()` bytes, which is what option `opt`
    // expects (the callers pair each option with its UAPI type).
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(Error::io(what, io::Error::last_os_error()));
    }
    Ok(())
}

/// The socket with its rings, bound.
struct Bound {
    fd: OwnedFd,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
}

fn open_socket(
    config: &AfXdpConfig,
    umem: &UmemArea,
    ifindex: u32,
    bind_flags: u16,
    memlock: Option<u64>,
) -> Result<Bound, Error> {
    // SAFETY: creates a new socket; the returned fd is checked and owned below.
    let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Error::io(
            "opening an AF_XDP socket",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a new fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let reg = libc::xdp_umem_reg {
        addr: umem.base.as_ptr() as u64,
        len: umem.len as u64,
        chunk_size: config.frame_size,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    if let Err(e) = setsockopt(&fd, libc::XDP_UMEM_REG, &reg, "registering the UMEM") {
        return Err(match e {
            Error::Io { source, .. } | Error::PermissionDenied { source, .. }
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ENOBUFS) | Some(libc::ENOMEM) | Some(libc::EPERM)
                ) && memlock.is_some_and(|l| l < umem.len as u64) =>
            {
                Error::UmemOverMemlock {
                    bytes: umem.len,
                    limit: memlock,
                    source,
                }
            }
            e => e,
        });
    }
    let n = config.ring_size;
    setsockopt(&fd, libc::XDP_UMEM_FILL_RING, &n, "sizing the fill ring")?;
    setsockopt(
        &fd,
        libc::XDP_UMEM_COMPLETION_RING,
        &n,
        "sizing the completion ring",
    )?;
    setsockopt(&fd, libc::XDP_RX_RING, &n, "sizing the RX ring")?;
    setsockopt(&fd, libc::XDP_TX_RING, &n, "sizing the TX ring")?;
    // SAFETY: plain old data; all-zero is valid.
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the live `off`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            std::ptr::from_mut(&mut off).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(Error::io(
            "reading the ring offsets",
            io::Error::last_os_error(),
        ));
    }
    if len as usize != size_of::<libc::xdp_mmap_offsets>() {
        return Err(Error::Io {
            op: "reading the ring offsets (a kernel older than 5.4 lacks the flags word)",
            source: io::Error::from(io::ErrorKind::Unsupported),
        });
    }
    let map = |r| Error::io("mapping a ring", r);
    let fill = Ring::map(
        &fd,
        libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
        &off.fr,
        n,
    )
    .map_err(map)?;
    let comp = Ring::map(
        &fd,
        libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        &off.cr,
        n,
    )
    .map_err(map)?;
    let rx = Ring::map(&fd, libc::XDP_PGOFF_RX_RING, &off.rx, n).map_err(map)?;
    let tx = Ring::map(&fd, libc::XDP_PGOFF_TX_RING, &off.tx, n).map_err(map)?;
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: bind_flags | libc::XDP_USE_NEED_WAKEUP,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: u32::from(config.queue),
        sxdp_shared_umem_fd: 0,
    };
    // A socket closed a moment ago releases its queue in deferred kernel work: an EBUSY bind
    // is retried for up to a second before it is reported.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        // SAFETY: bind reads a live `sockaddr_xdp` of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sa).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBUSY) {
            if std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            return Err(Error::QueueBusy {
                ifname: config.ifname.clone(),
                queue: config.queue,
                source: e,
            });
        }
        return Err(Error::io("binding the AF_XDP socket", e));
    }
    Ok(Bound {
        fd,
        fill,
        comp,
        rx,
        tx,
    })
}

impl AfXdpPort {
    /// Opens queue `config.queue` of `config.ifname`: attaches the XDP program and binds one
    /// socket.
    pub fn open(config: &AfXdpConfig) -> Result<Self, Error> {
        let mut ports = Self::open_queues(config, &[config.queue])?;
        ports.pop().ok_or(Error::InvalidConfig("no queue".into()))
    }

    /// Opens one port per queue in `queues` (each with its own UMEM of `config.frame_count`
    /// frames), sharing one XDP program; `config.queue` is ignored.
    pub fn open_queues(config: &AfXdpConfig, queues: &[u16]) -> Result<Vec<Self>, Error> {
        config.validate()?;
        if queues.is_empty() {
            return Err(Error::InvalidConfig("no queue to open".into()));
        }
        let name = CString::new(config.ifname.as_str())
            .map_err(|_| Error::InvalidConfig("interface name contains NUL".into()))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(Error::InterfaceNotFound {
                ifname: config.ifname.clone(),
            });
        }
        let (mac, mtu, queue_count) = interface_info(&config.ifname)?;
        if let Some(&queue) = queues.iter().find(|&&q| q >= queue_count) {
            return Err(Error::QueueOutOfRange {
                ifname: config.ifname.clone(),
                queue,
                queue_count,
            });
        }
        let memlock = raise_memlock();
        let attachment = Arc::new(Attachment::attach(config, ifindex, queue_count)?);
        let mut ports = Vec::with_capacity(queues.len());
        for &queue in queues {
            let mut c = config.clone();
            c.queue = queue;
            let caps = Capabilities {
                mac,
                mtu,
                queue,
                queue_count,
                rss: None,
                checksum: ChecksumOffload::default(),
                pool_size: config.frame_count as usize,
            };
            ports.push(Self::open_one(
                &c,
                ifindex,
                caps,
                memlock,
                attachment.clone(),
            )?);
        }
        Ok(ports)
    }

    fn open_one(
        config: &AfXdpConfig,
        ifindex: u32,
        caps: Capabilities,
        memlock: Option<u64>,
        attachment: Arc<Attachment>,
    ) -> Result<Self, Error> {
        let umem_len = config.frame_count as usize * config.frame_size as usize;
        let umem = UmemArea::new(umem_len)?;
        let (bound, bind_mode) = match config.zero_copy {
            ZeroCopyPolicy::Never => (
                open_socket(config, &umem, ifindex, libc::XDP_COPY, memlock)?,
                BindMode::Copy,
            ),
            ZeroCopyPolicy::Require => (
                open_socket(config, &umem, ifindex, libc::XDP_ZEROCOPY, memlock)?,
                BindMode::ZeroCopy,
            ),
            ZeroCopyPolicy::Try => {
                match open_socket(config, &umem, ifindex, libc::XDP_ZEROCOPY, memlock) {
                    Ok(b) => (b, BindMode::ZeroCopy),
                    Err(Error::Io { source, .. })
                        if matches!(
                            source.raw_os_error(),
                            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                        ) =>
                    {
                        // A fresh socket: a failed zero-copy bind leaves no state we rely on.
                        (
                            open_socket(config, &umem, ifindex, libc::XDP_COPY, memlock)?,
                            BindMode::Copy,
                        )
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        bpf::xskmap_set(
            &attachment.map,
            u32::from(config.queue),
            bound.fd.as_raw_fd(),
        )
        .map_err(|e| Error::io("inserting the socket in the XSKMAP", e))?;
        let free = (0..u64::from(config.frame_count))
            .rev()
            .map(|i| i * u64::from(config.frame_size))
            .collect();
        let mut port = AfXdpPort {
            fd: bound.fd,
            fill: bound.fill,
            comp: bound.comp,
            rx: bound.rx,
            tx: bound.tx,
            umem,
            attachment,
            caps,
            bind_mode,
            frame_size: config.frame_size,
            frame_count: config.frame_count,
            free,
            fill_target: (config.frame_count / 2).min(config.ring_size),
            in_fill: 0,
            in_tx: 0,
            held: 0,
            counters: PortCounters::default(),
            waker: None,
        };
        port.refill();
        Ok(port)
    }

    /// Copy or zero-copy, as bound.
    pub fn bind_mode(&self) -> BindMode {
        self.bind_mode
    }

    /// How the XDP program is attached.
    pub fn attach_info(&self) -> &AttachInfo {
        &self.attachment.info
    }

    /// The port's counters.
    pub fn counters(&self) -> PortCounters {
        self.counters
    }

    /// The kernel's statistics of this socket (`XDP_STATISTICS`): drops for a full RX ring or
    /// an empty fill ring, invalid descriptors.
    pub fn xdp_statistics(&self) -> io::Result<libc::xdp_statistics> {
        // SAFETY: plain old data; all-zero is valid.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into the live `st`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                std::ptr::from_mut(&mut st).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }

    /// Reaps the completion ring (finished transmits) and kicks the kernel if transmit
    /// descriptors are still waiting. [`Port::rx_burst`] and [`Port::alloc_tx`] do this; call
    /// it before a leak check on an idle port.
    pub fn reclaim(&mut self) {
        self.reap_completions();
        if self.tx.pending() > 0 {
            self.kick_tx();
        }
    }

    fn reap_completions(&mut self) {
        let n = self.comp.available(self.comp.size());
        for i in 0..n {
            let addr = self.comp.read(i);
            self.free.push(self.chunk_of(addr));
        }
        if n > 0 {
            self.comp.release(n);
            self.in_tx -= n;
            self.counters.tx_completions += u64::from(n);
        }
    }

    fn chunk_of(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    fn refill(&mut self) {
        let want = self
            .fill_target
            .saturating_sub(self.in_fill)
            .min(u32::try_from(self.free.len()).unwrap_or(u32::MAX));
        if want == 0 {
            return;
        }
        let n = self.fill.free(want).min(want);
        for i in 0..n {
            if let Some(addr) = self.free.pop() {
                self.fill.write(i, addr);
            }
        }
        self.fill.submit(n);
        self.in_fill += n;
    }

    fn kick_tx(&mut self) {
        self.counters.tx_kicks += 1;
        // SAFETY: a zero-length sendto with no buffer and no address: the AF_XDP wakeup.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            // EAGAIN / EBUSY / ENOBUFS / ENETDOWN: the descriptors stay on the ring and the
            // next burst kicks again.
            self.counters.tx_kick_errors += 1;
        }
    }

    fn frame(&self, addr: u64, len: u32) -> Option<XdpFrame> {
        let chunk = self.chunk_of(addr);
        let end = chunk + u64::from(self.frame_size);
        if addr + u64::from(len) > end || end > self.umem.len as u64 {
            return None;
        }
        let offset = usize::try_from(addr).ok()?;
        // SAFETY: `addr < umem.len` (checked above), so the pointer stays inside the mapping.
        let ptr = unsafe { self.umem.base.add(offset) };
        Some(XdpFrame {
            ptr,
            addr,
            len,
            cap: u32::try_from(end - addr).ok()?,
            umem: self.umem.base.as_ptr() as usize,
        })
    }
}

impl Port for AfXdpPort {
    type Frame = XdpFrame;

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn rx_burst(&mut self, batch: &mut Batch<XdpFrame>) -> usize {
        self.reap_completions();
        if self.in_tx > 0 && self.tx.pending() > 0 {
            // Generic transmit sends at most a few dozen descriptors per kick.
            self.kick_tx();
        }
        self.refill();
        let want = u32::try_from(batch.remaining_capacity()).unwrap_or(u32::MAX);
        let n = self.rx.available(want);
        let mut taken = 0u32;
        for i in 0..n {
            let d = self.rx.read(i);
            match self.frame(d.addr, d.len) {
                Some(f) => {
                    batch.push(f);
                    taken += 1;
                }
                // A descriptor outside the UMEM cannot come from the kernel; if one did, its
                // chunk is unknown and is neither read nor recycled (recycling a guess could
                // hand out a chunk twice).
                None => self.counters.bad_descriptors += 1,
            }
        }
        if n > 0 {
            self.rx.release(n);
            self.in_fill -= n;
            self.held += taken;
            self.counters.rx_frames += u64::from(taken);
        } else if self.fill.needs_wakeup() {
            self.counters.rx_wakeups += 1;
            // SAFETY: a zero-length non-blocking recvfrom: the AF_XDP fill-ring wakeup.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
        taken as usize
    }

    fn alloc_tx(&mut self) -> Option<XdpFrame> {
        if self.free.is_empty() {
            self.reap_completions();
        }
        let Some(addr) = self.free.pop() else {
            self.counters.alloc_failures += 1;
            return None;
        };
        let frame = self.frame(addr, 0);
        if frame.is_some() {
            self.held += 1;
        }
        frame
    }

    fn tx_burst(&mut self, batch: &mut Batch<XdpFrame>) -> usize {
        let umem = self.umem.base.as_ptr() as usize;
        if batch.iter().any(|f| f.umem != umem) {
            // Another port's chunk on our TX ring would make the kernel read (and the
            // completion ring return) one of our chunks instead.
            let before = batch.len();
            batch.retain(|f| f.umem == umem);
            self.counters.foreign_frames += (before - batch.len()) as u64;
        }
        let len = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        if len == 0 {
            return 0;
        }
        let n = self.tx.free(len).min(len);
        let mut written = 0;
        for f in batch.iter().take(n as usize) {
            self.tx.write(
                written,
                libc::xdp_desc {
                    addr: f.addr,
                    len: f.len,
                    options: 0,
                },
            );
            written += 1;
        }
        if written > 0 {
            self.tx.submit(written);
            batch.drain(..written as usize);
            self.held = self.held.saturating_sub(written);
            self.in_tx += written;
            self.counters.tx_frames += u64::from(written);
        }
        if self.tx.needs_wakeup() || written < len {
            self.kick_tx();
        }
        written as usize
    }

    fn release(&mut self, frame: XdpFrame) {
        if frame.umem != self.umem.base.as_ptr() as usize {
            // Not ours: it cannot go on our rings. Its own port keeps its UMEM mapped.
            self.counters.foreign_frames += 1;
            return;
        }
        self.held = self.held.saturating_sub(1);
        self.free.push(self.chunk_of(frame.addr));
    }

    /// Arms the waker thread; a frame already in the RX ring makes it unpark the shard at
    /// once, so this never reports frames itself.
    fn arm_rx_waker(&mut self) -> bool {
        if let Some(w) = &self.waker {
            w.arm();
        }
        true
    }

    fn set_rx_waker(&mut self, thread: std::thread::Thread) -> bool {
        // Replacing a waker stops the old thread first.
        self.waker = None;
        let Ok(fd) = self.fd.try_clone() else {
            return false;
        };
        match RxWaker::start(fd, thread) {
            Ok(w) => {
                self.waker = Some(w);
                true
            }
            Err(_) => false,
        }
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            total: self.frame_count as usize,
            // Chunks in the fill ring are waiting for received frames: free for the stack's
            // purposes. Chunks being transmitted are not free until their completion is reaped.
            free: self.free.len() + self.in_fill as usize,
        }
    }
}

impl Drop for AfXdpPort {
    fn drop(&mut self) {
        // Stop the waker thread (it holds a duplicate of the socket fd).
        self.waker = None;
        // The program passes this queue's frames to the kernel from now on.
        let _ = bpf::xskmap_clear(&self.attachment.map, u32::from(self.caps.queue));
        if self.held > 0 {
            // Frames handed out still point into the UMEM: keep it mapped.
            self.umem.leak = true;
        }
        // Fields drop in declaration order: the socket (`fd`) closes and the rings unmap
        // before the UMEM is unmapped.
    }
}
