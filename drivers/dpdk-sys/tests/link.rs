//! The bindings link and the shim works, without initialising the EAL.

use shardnet_dpdk_sys as sys;
use std::ffi::CStr;

#[test]
fn rte_errno_round_trips_through_the_shim_per_thread() {
    // SAFETY: the shim reads and writes the calling thread's `rte_errno`; no EAL state is used.
    unsafe {
        sys::shardnet_set_rte_errno(libc_enodev());
        assert_eq!(sys::shardnet_rte_errno(), libc_enodev());
    }
    let other = std::thread::spawn(|| {
        // SAFETY: as above, on another thread whose `rte_errno` is its own.
        unsafe { sys::shardnet_rte_errno() }
    })
    .join()
    .unwrap();
    assert_eq!(other, 0, "rte_errno is thread-local");
}

fn libc_enodev() -> i32 {
    19
}

#[test]
fn rte_strerror_describes_errors() {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    let s = unsafe { CStr::from_ptr(sys::rte_strerror(libc_enodev())) };
    assert_eq!(s.to_str().unwrap(), "No such device");
}

#[test]
fn mbuf_constants_match_the_headers() {
    // SAFETY: both shim functions return compile-time constants.
    let (headroom, room) = unsafe {
        (
            sys::shardnet_pktmbuf_headroom(),
            sys::shardnet_mbuf_default_buf_size(),
        )
    };
    assert_eq!(headroom, 128);
    assert_eq!(room, 2048 + headroom);
    assert_eq!(sys::RTE_ETH_RETA_GROUP_SIZE, 64);
    assert_eq!(sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM, 1 << 1);
    assert_eq!(sys::RTE_MBUF_F_TX_IPV4, 1 << 55);
}

#[test]
fn lcore_id_of_a_non_eal_thread_is_any() {
    // SAFETY: rte_lcore_id reads a thread-local variable, LCORE_ID_ANY on non-EAL threads.
    let id = unsafe { sys::rte_lcore_id() };
    assert_eq!(id, u32::MAX);
}
