//! The Environment Abstraction Layer: initialised once per process.

use crate::Error;
use shardnet_dpdk_sys as sys;
use std::ffi::{CString, c_char, c_int};
use std::sync::Mutex;

/// Proof that the EAL is initialised; every constructor of this crate asks for it.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

static EAL: Eal = Eal { _private: () };

/// `None` until `rte_eal_init` was attempted; then whether it succeeded.
static STATE: Mutex<Option<Result<(), Error>>> = Mutex::new(None);

impl Eal {
    /// Initialises the EAL with `args` (the program name first, as in `argv`), once per process.
    ///
    /// DPDK cannot initialise twice, nor retry after a failure: a second call returns
    /// [`Error::EalAlreadyInitialized`] (use [`Eal::get`] to reach an initialised EAL). The EAL
    /// pins the calling thread to its main lcore's core; this function restores the thread's
    /// previous CPU affinity afterwards, so threads it spawns later (shards) are not all
    /// confined to one core. The arguments are kept for the life of the process (the EAL may
    /// keep pointers into them).
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<&'static Eal, Error> {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_some() {
            return Err(Error::EalAlreadyInitialized);
        }
        let mut owned = Vec::with_capacity(args.len());
        for a in args {
            owned.push(
                CString::new(a.as_ref())
                    .map_err(|_| Error::InvalidArgument(format!("{:?}", a.as_ref())))?,
            );
        }
        // argv: the strings and the pointer array live for the rest of the process.
        let strings: &'static mut [CString] = Vec::leak(owned);
        let mut pointers: Vec<*mut c_char> =
            strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
        pointers.push(std::ptr::null_mut());
        let argv: &'static mut [*mut c_char] = Vec::leak(pointers);
        let argc = c_int::try_from(strings.len())
            .map_err(|_| Error::InvalidArgument("too many arguments".into()))?;

        let affinity = current_affinity();
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all leaked so
        // that they outlive the EAL; the mutex makes this the only rte_eal_init of the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        let result = if ret < 0 {
            Err(Error::from_rte_errno("rte_eal_init"))
        } else {
            Ok(())
        };
        if let Some(set) = affinity {
            restore_affinity(&set);
        }
        *state = Some(result.clone());
        result.map(|()| &EAL)
    }

    /// The EAL, if [`Eal::init`] succeeded earlier in this process.
    pub fn get() -> Option<&'static Eal> {
        let state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            Some(Ok(())) => Some(&EAL),
            _ => None,
        }
    }

    /// Arguments that work on a machine without a NIC bound to DPDK: virtual devices only
    /// (`--no-pci`), no telemetry socket, and memory from hugepages when at least 256 MiB of
    /// them are free (`--in-memory`), else 512 MiB of ordinary memory (`--no-huge -m 512
    /// --no-shconf`). Logging is limited to warnings.
    pub fn default_args() -> Vec<String> {
        let mut args: Vec<String> = [
            "shardnet",
            "--no-pci",
            "--no-telemetry",
            "--log-level=*:warning",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if free_hugepage_bytes() >= 256 << 20 {
            args.push("--in-memory".into());
        } else {
            args.extend(["--no-huge", "-m", "512", "--no-shconf"].map(String::from));
        }
        args
    }
}

/// Free hugepage memory of the default size, from /proc/meminfo (0 if unknown).
pub fn free_hugepage_bytes() -> u64 {
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") * 1024
}

fn current_affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most size_of bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let ok = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (ok == 0).then_some(set)
    }
}

fn restore_affinity(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid cpu_set_t read by sched_getaffinity for this thread.
    unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
    }
}
