//! Errors of opening an AF_XDP port, each saying what to do about it.

use std::fmt;
use std::io;

/// Why an [`crate::AfXdpPort`] could not be opened.
#[derive(Debug)]
pub enum Error {
    /// The interface does not exist (in this network namespace).
    InterfaceNotFound {
        /// The interface name.
        ifname: String,
    },
    /// The queue number is not below the interface's queue count.
    QueueOutOfRange {
        /// The interface name.
        ifname: String,
        /// The queue asked for.
        queue: u16,
        /// The interface's queue count.
        queue_count: u16,
    },
    /// A BPF or AF_XDP operation was refused for lack of privileges.
    PermissionDenied {
        /// What was being done.
        op: &'static str,
        /// The syscall's error.
        source: io::Error,
    },
    /// The UMEM could not be registered: it is larger than the locked-memory limit allows.
    UmemOverMemlock {
        /// The UMEM size in bytes.
        bytes: usize,
        /// The `RLIMIT_MEMLOCK` soft limit in bytes (`None`: unlimited).
        limit: Option<u64>,
        /// The syscall's error.
        source: io::Error,
    },
    /// Another XDP program is already attached to the interface.
    Busy {
        /// The interface name.
        ifname: String,
        /// The syscall's error.
        source: io::Error,
    },
    /// Another AF_XDP socket is bound to the queue.
    QueueBusy {
        /// The interface name.
        ifname: String,
        /// The queue.
        queue: u16,
        /// The syscall's error.
        source: io::Error,
    },
    /// The kernel's verifier rejected the XDP program.
    ProgramRejected {
        /// The syscall's error.
        source: io::Error,
        /// The verifier's log.
        log: String,
    },
    /// The configuration is invalid.
    InvalidConfig(String),
    /// Any other failed system call.
    Io {
        /// What was being done.
        op: &'static str,
        /// The syscall's error.
        source: io::Error,
    },
}

impl Error {
    /// Classifies a failed syscall: privilege errors become [`Error::PermissionDenied`].
    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied { op, source },
            _ => Error::Io { op, source },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InterfaceNotFound { ifname } => write!(
                f,
                "interface {ifname:?} not found in this network namespace (check `ip link`; \
                 if it lives in another namespace, run inside it with `ip netns exec`)"
            ),
            Error::QueueOutOfRange {
                ifname,
                queue,
                queue_count,
            } => write!(
                f,
                "queue {queue} is out of range: {ifname} has {queue_count} queue(s) \
                 (see `ethtool -l {ifname}`)"
            ),
            Error::PermissionDenied { op, source } => write!(
                f,
                "{op}: {source}: AF_XDP and BPF need CAP_NET_ADMIN and CAP_BPF (and \
                 CAP_IPC_LOCK or a high enough `ulimit -l`); run as root or grant them with \
                 `setcap cap_net_admin,cap_bpf,cap_ipc_lock+ep BINARY`"
            ),
            Error::UmemOverMemlock {
                bytes,
                limit,
                source,
            } => {
                write!(f, "registering a {bytes}-byte UMEM failed ({source}): ")?;
                match limit {
                    Some(l) => write!(f, "the locked-memory limit is {l} bytes; ")?,
                    None => write!(f, "the locked-memory limit is unlimited; ")?,
                }
                write!(
                    f,
                    "use fewer frames (AfXdpConfig::frame_count) or raise `ulimit -l`"
                )
            }
            Error::Busy { ifname, source } => write!(
                f,
                "{ifname}: {source}: another XDP program is already attached; remove it with \
                 `ip link set dev {ifname} xdp off` (or stop the process that owns it)"
            ),
            Error::QueueBusy {
                ifname,
                queue,
                source,
            } => write!(
                f,
                "{ifname} queue {queue}: {source}: another AF_XDP socket is bound to this queue \
                 (another shardnet process, or one that has not finished closing)"
            ),
            Error::ProgramRejected { source, log } => {
                write!(f, "the kernel rejected the XDP program: {source}")?;
                if !log.is_empty() {
                    write!(f, "\nverifier log:\n{log}")?;
                }
                Ok(())
            }
            Error::InvalidConfig(msg) => write!(f, "invalid AF_XDP configuration: {msg}"),
            Error::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::PermissionDenied { source, .. }
            | Error::UmemOverMemlock { source, .. }
            | Error::Busy { source, .. }
            | Error::QueueBusy { source, .. }
            | Error::ProgramRejected { source, .. }
            | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
