//! Errors of the DPDK layer: which call failed and DPDK's error number.

use shardnet_dpdk_sys as sys;
use std::ffi::CStr;
use std::fmt;

/// A failed DPDK operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `rte_eal_init` was already called in this process (it can run only once).
    EalAlreadyInitialized,
    /// An argument could not be passed to DPDK (it contains a NUL byte, or is out of range).
    InvalidArgument(String),
    /// A DPDK call failed with this (positive) error number.
    Dpdk {
        /// The C function that failed.
        op: &'static str,
        /// `rte_errno` or the negated return value, as a positive errno.
        errno: i32,
    },
    /// The device cannot do what the configuration asks (too many queues, ...).
    Unsupported(String),
}

impl Error {
    /// An error from a DPDK call returning a negative errno (`-ENOTSUP`, ...).
    pub(crate) fn from_ret(op: &'static str, ret: i32) -> Error {
        Error::Dpdk {
            op,
            errno: ret.saturating_abs(),
        }
    }

    /// An error from a DPDK call that reports through `rte_errno`.
    pub(crate) fn from_rte_errno(op: &'static str) -> Error {
        // SAFETY: reads the calling thread's `rte_errno` through the shim; no other state.
        let errno = unsafe { sys::shardnet_rte_errno() };
        Error::Dpdk { op, errno }
    }
}

/// DPDK's description of an error number (`rte_strerror`).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string that is static or in
    // a thread-local buffer, valid until the next call on this thread; it is copied at once.
    unsafe {
        let p = sys::rte_strerror(errno);
        if p.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EalAlreadyInitialized => {
                write!(f, "the DPDK EAL was already initialised in this process")
            }
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Dpdk { op, errno } => write!(f, "{op} failed: {} ({errno})", strerror(*errno)),
            Error::Unsupported(what) => write!(f, "unsupported by the device: {what}"),
        }
    }
}

impl std::error::Error for Error {}
