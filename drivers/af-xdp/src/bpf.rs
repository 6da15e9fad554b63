//! The XDP program that steers shardnet's frames to its AF_XDP sockets, built from raw BPF
//! instructions (no C toolchain, no libbpf), loaded and attached with the `bpf()` syscall.
//!
//! # The program
//!
//! It redirects to the XSKMAP entry of the receiving queue exactly what belongs to shardnet:
//! ARP frames whose target protocol address is shardnet's (requests for it, and replies to
//! its own requests), and IPv4 packets whose destination is shardnet's address. Everything
//! else (ARP for other addresses, IPv6, LLDP, IPv4 for other addresses) gets `XDP_PASS` and
//! goes to the kernel stack as if no program were attached, so the kernel can keep using the
//! same interface with addresses of its own.
//!
//! ```text
//!  0: r2 = *(u32 *)(r1 + 0)        r2 = ctx->data
//!  1: r3 = *(u32 *)(r1 + 4)        r3 = ctx->data_end
//!  2: r4 = r2
//!  3: r4 += 34                     end of the IPv4 destination (14 Ethernet + 20 IPv4)
//!  4: if r4 > r3 goto pass         shorter frames are not ours (the verifier needs a bounds
//!                                  check before any packet access)
//!  5: r4 = *(u16 *)(r2 + 12)       EtherType, network byte order, read little-endian
//!  6: if w4 != 0x0608 goto ipv4    not ARP (0x0806)
//!  7: r5 = r2
//!  8: r5 += 42                     end of the ARP target protocol address (14 + 28)
//!  9: if r5 > r3 goto pass
//! 10: r5 = *(u32 *)(r2 + 38)       ARP target protocol address
//! 11: if w5 == ADDR goto redirect
//! 12: goto pass
//! ipv4:
//! 13: if w4 != 0x0008 goto pass    not IPv4 (0x0800)
//! 14: r4 = *(u32 *)(r2 + 30)       IPv4 destination address
//! 15: if w4 != ADDR goto pass      ADDR: shardnet's address as the same little-endian read
//! redirect:
//! 16: r2 = *(u32 *)(r1 + 16)       key = ctx->rx_queue_index
//! 17: r1 = map_fd ll               (two slots: 17 and 18) the XSKMAP
//! 19: r3 = 2                       flags: XDP_PASS if the queue has no socket in the map
//! 20: call bpf_redirect_map
//! 21: exit                         r0 = XDP_REDIRECT, or XDP_PASS
//! pass:
//! 22: r0 = 2                       XDP_PASS
//! 23: exit
//! ```
//!
//! The comparisons against 32-bit constants use `BPF_JMP32` (Linux 5.1+), which compares the
//! low 32 bits, so that addresses whose last octet is >= 128 are not sign-extended. The lower
//! bits of `bpf_redirect_map`'s flags give the action when the lookup fails (Linux 5.3+).

use crate::sys::{self, BpfInsn};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `XDP_PASS`.
const XDP_PASS: i32 = 2;

/// The program's instructions for a given XSKMAP fd and IPv4 address.
pub fn redirect_program(map_fd: i32, addr: [u8; 4]) -> Vec<BpfInsn> {
    use sys::*;
    let ethertype = |be: u16| i32::from(u16::from_le_bytes(be.to_be_bytes()));
    let ip = i32::from_le_bytes(addr);
    const PASS: i16 = 22;
    const REDIRECT: i16 = 16;
    const IPV4: i16 = 13;
    // Jump offsets count from the next instruction.
    let to = |from: i16, label: i16| label - from - 1;
    let insns = vec![
        /* 0 */ BpfInsn::new(OP_LDX_W, 2, 1, 0, 0),
        /* 1 */ BpfInsn::new(OP_LDX_W, 3, 1, 4, 0),
        /* 2 */ BpfInsn::new(OP_MOV64_REG, 4, 2, 0, 0),
        /* 3 */ BpfInsn::new(OP_ADD64_IMM, 4, 0, 0, 34),
        /* 4 */ BpfInsn::new(OP_JGT_REG, 4, 3, to(4, PASS), 0),
        /* 5 */ BpfInsn::new(OP_LDX_H, 4, 2, 12, 0),
        /* 6 */ BpfInsn::new(OP_JNE32_IMM, 4, 0, to(6, IPV4), ethertype(0x0806)),
        /* 7 */ BpfInsn::new(OP_MOV64_REG, 5, 2, 0, 0),
        /* 8 */ BpfInsn::new(OP_ADD64_IMM, 5, 0, 0, 42),
        /* 9 */ BpfInsn::new(OP_JGT_REG, 5, 3, to(9, PASS), 0),
        /* 10 */ BpfInsn::new(OP_LDX_W, 5, 2, 38, 0),
        /* 11 */ BpfInsn::new(OP_JEQ32_IMM, 5, 0, to(11, REDIRECT), ip),
        /* 12 */ BpfInsn::new(OP_JA, 0, 0, to(12, PASS), 0),
        /* 13 */ BpfInsn::new(OP_JNE32_IMM, 4, 0, to(13, PASS), ethertype(0x0800)),
        /* 14 */ BpfInsn::new(OP_LDX_W, 4, 2, 30, 0),
        /* 15 */ BpfInsn::new(OP_JNE32_IMM, 4, 0, to(15, PASS), ip),
        /* 16 */ BpfInsn::new(OP_LDX_W, 2, 1, 16, 0),
        /* 17 */ BpfInsn::new(OP_LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        /* 18 */ BpfInsn::new(0, 0, 0, 0, 0),
        /* 19 */ BpfInsn::new(OP_MOV64_IMM, 3, 0, 0, XDP_PASS),
        /* 20 */ BpfInsn::new(OP_CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        /* 21 */ BpfInsn::new(OP_EXIT, 0, 0, 0, 0),
        /* 22 */ BpfInsn::new(OP_MOV64_IMM, 0, 0, 0, XDP_PASS),
        /* 23 */ BpfInsn::new(OP_EXIT, 0, 0, 0, 0),
    ];
    insns
}

/// Creates an XSKMAP with `entries` slots (one per queue).
pub fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"shardnet_x");
    let mut attr = sys::MapCreateAttr {
        map_type: sys::BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        map_name: name,
        ..Default::default()
    };
    // SAFETY: `attr` is the BPF_MAP_CREATE variant and holds no pointers.
    unsafe { sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr) }
}

/// Puts socket `xsk_fd` at `key` (the queue) of the XSKMAP `map`.
pub fn xskmap_set(map: &OwnedFd, key: u32, xsk_fd: i32) -> io::Result<()> {
    let value = u32::try_from(xsk_fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = sys::MapElemAttr {
        map_fd: fd_u32(map)?,
        pad: 0,
        key: std::ptr::from_ref(&key) as u64,
        value: std::ptr::from_ref(&value) as u64,
        flags: sys::BPF_ANY,
    };
    // SAFETY: `attr` is the BPF_MAP_UPDATE_ELEM variant; `key` and `value` are live 4-byte
    // locals for the duration of the call, matching the map's key and value sizes.
    unsafe { sys::bpf_cmd(sys::BPF_MAP_UPDATE_ELEM, &mut attr) }
}

/// Removes `key` from the XSKMAP `map` (the program then passes that queue's frames).
pub fn xskmap_clear(map: &OwnedFd, key: u32) -> io::Result<()> {
    let mut attr = sys::MapElemAttr {
        map_fd: fd_u32(map)?,
        pad: 0,
        key: std::ptr::from_ref(&key) as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: `attr` is the BPF_MAP_DELETE_ELEM variant; `key` is a live 4-byte local.
    unsafe { sys::bpf_cmd(sys::BPF_MAP_DELETE_ELEM, &mut attr) }
}

/// Why loading the program failed: the error and the verifier's log.
#[derive(Debug)]
pub struct LoadError {
    /// The syscall's error.
    pub error: io::Error,
    /// The verifier log (empty if the kernel wrote none).
    pub log: String,
}

/// Loads `insns` as an XDP program. On failure, loads again with the verifier log enabled so
/// that the error says why.
pub fn load_xdp(insns: &[BpfInsn]) -> Result<OwnedFd, LoadError> {
    match load_with_log(insns, None) {
        Ok(fd) => Ok(fd),
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => Err(LoadError {
            error,
            log: String::new(),
        }),
        Err(_) => {
            let mut log = vec![0u8; 64 * 1024];
            match load_with_log(insns, Some(&mut log)) {
                Ok(fd) => Ok(fd),
                Err(error) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    Err(LoadError {
                        error,
                        log: String::from_utf8_lossy(&log[..end]).into_owned(),
                    })
                }
            }
        }
    }
}

fn load_with_log(insns: &[BpfInsn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    static LICENSE: &[u8] = b"Dual MIT/GPL\0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"shardnet_xdp");
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (
            1,
            u32::try_from(buf.len()).unwrap_or(u32::MAX),
            buf.as_mut_ptr() as u64,
        ),
        None => (0, 0, 0),
    };
    let mut attr = sys::ProgLoadAttr {
        prog_type: sys::BPF_PROG_TYPE_XDP,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: `attr` is the BPF_PROG_LOAD variant; `insns` (insn_cnt instructions), the
    // NUL-terminated license and the log buffer (log_size writable bytes) outlive the call.
    unsafe { sys::bpf_fd(sys::BPF_PROG_LOAD, &mut attr) }
}

/// Attaches `prog` to interface `ifindex` as a BPF link (detached when the last fd of the link
/// closes, so the program disappears with the process).
pub fn attach_xdp_link(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = sys::LinkCreateAttr {
        prog_fd: fd_u32(prog)?,
        target_ifindex: ifindex,
        attach_type: sys::BPF_XDP,
        flags,
        rest: [0; 4],
    };
    // SAFETY: `attr` is the BPF_LINK_CREATE variant and holds no pointers.
    unsafe { sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr) }
}

fn fd_u32(fd: &OwnedFd) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_labels() {
        let p = redirect_program(7, [198, 18, 0, 2]);
        assert_eq!(p.len(), 24);
        // Every jump's target is `pc + 1 + off`.
        let target = |pc: usize| (pc as i64 + 1 + i64::from(p[pc].off)) as usize;
        for pc in [4, 9, 12, 13, 15] {
            assert_eq!(target(pc), 22, "jump at {pc} goes to pass");
        }
        assert_eq!(target(6), 13);
        assert_eq!(target(11), 16);
        assert_eq!(p[16], BpfInsn::new(sys::OP_LDX_W, 2, 1, 16, 0));
        assert_eq!(p[17].imm, 7);
        assert_eq!(p[17].regs >> 4, sys::BPF_PSEUDO_MAP_FD);
        // The constants are the network-order bytes read as little-endian words.
        assert_eq!(p[6].imm, 0x0608);
        assert_eq!(p[13].imm, 0x0008);
        assert_eq!(p[11].imm.to_le_bytes(), [198, 18, 0, 2]);
        assert_eq!(p[15].imm.to_le_bytes(), [198, 18, 0, 2]);
        // The verifier reads 64 bits of the map fd across two slots; the second is all zero.
        assert_eq!(p[18], BpfInsn::new(0, 0, 0, 0, 0));
        assert_eq!(p[21].code, sys::OP_EXIT);
        assert_eq!(p[23].code, sys::OP_EXIT);
        assert_eq!(p[22].imm, XDP_PASS);
    }
}
