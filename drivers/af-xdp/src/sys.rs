//! Kernel UAPI declarations the `libc` crate does not carry, and thin syscall wrappers.
//!
//! The AF_XDP structures (`sockaddr_xdp`, `xdp_umem_reg`, `xdp_mmap_offsets`, `xdp_desc`)
//! come from `libc`. What is declared here is cited from the kernel's UAPI headers:
//! `linux/bpf.h` (the `bpf_attr` variants, `bpf_insn`, command/type numbers),
//! `linux/if_link.h` (XDP attach flags) and `linux/ethtool.h` (`ethtool_channels`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

// ----- linux/bpf.h: commands (enum bpf_cmd) -----
/// `BPF_MAP_CREATE`.
pub const BPF_MAP_CREATE: libc::c_int = 0;
/// `BPF_MAP_UPDATE_ELEM`.
pub const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
/// `BPF_MAP_DELETE_ELEM`.
pub const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
/// `BPF_PROG_LOAD`.
pub const BPF_PROG_LOAD: libc::c_int = 5;
/// `BPF_LINK_CREATE`.
pub const BPF_LINK_CREATE: libc::c_int = 28;

/// `enum bpf_map_type`: `BPF_MAP_TYPE_XSKMAP`.
pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `enum bpf_prog_type`: `BPF_PROG_TYPE_XDP`.
pub const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type`: `BPF_XDP`.
pub const BPF_XDP: u32 = 37;
/// `BPF_ANY` for map updates: create or replace.
pub const BPF_ANY: u64 = 0;

// ----- linux/if_link.h: XDP attach flags -----
/// `XDP_FLAGS_SKB_MODE`: generic XDP, run by the core network stack on an `sk_buff`.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP, run by the driver before an `sk_buff` exists.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

// ----- linux/bpf.h: instruction encoding -----
/// `BPF_LD | BPF_IMM | BPF_DW`: 64-bit immediate load (two instruction slots).
pub const OP_LD_IMM64: u8 = 0x18;
/// `BPF_LDX | BPF_MEM | BPF_W`: 32-bit load `dst = *(u32 *)(src + off)`.
pub const OP_LDX_W: u8 = 0x61;
/// `BPF_LDX | BPF_MEM | BPF_H`: 16-bit load `dst = *(u16 *)(src + off)`.
pub const OP_LDX_H: u8 = 0x69;
/// `BPF_ALU64 | BPF_MOV | BPF_X`: `dst = src`.
pub const OP_MOV64_REG: u8 = 0xbf;
/// `BPF_ALU64 | BPF_MOV | BPF_K`: `dst = imm`.
pub const OP_MOV64_IMM: u8 = 0xb7;
/// `BPF_ALU64 | BPF_ADD | BPF_K`: `dst += imm`.
pub const OP_ADD64_IMM: u8 = 0x07;
/// `BPF_JMP | BPF_JGT | BPF_X`: `if dst > src (unsigned, 64-bit) goto +off`.
pub const OP_JGT_REG: u8 = 0x2d;
/// `BPF_JMP32 | BPF_JEQ | BPF_K`: `if (u32)dst == imm goto +off`.
pub const OP_JEQ32_IMM: u8 = 0x16;
/// `BPF_JMP32 | BPF_JNE | BPF_K`: `if (u32)dst != imm goto +off`.
pub const OP_JNE32_IMM: u8 = 0x56;
/// `BPF_JMP | BPF_JA`: `goto +off`.
pub const OP_JA: u8 = 0x05;
/// `BPF_JMP | BPF_CALL`: call helper number `imm`.
pub const OP_CALL: u8 = 0x85;
/// `BPF_JMP | BPF_EXIT`: return `r0`.
pub const OP_EXIT: u8 = 0x95;
/// `BPF_PSEUDO_MAP_FD`: the `src_reg` of an `OP_LD_IMM64` whose immediate is a map fd.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `BPF_FUNC_redirect_map` (helper 51): `long bpf_redirect_map(map, u32 key, u64 flags)`.
pub const BPF_FUNC_REDIRECT_MAP: i32 = 51;

/// `struct bpf_insn` (linux/bpf.h): `code`, `dst_reg:4 | src_reg:4` (dst in the low nibble on
/// little-endian machines, which is the only byte order this crate builds for), `off`, `imm`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u8,
    /// `dst_reg` in bits 0..4, `src_reg` in bits 4..8.
    pub regs: u8,
    /// Signed offset (jump distance in instructions, or memory offset).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl BpfInsn {
    /// An instruction from its fields.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        BpfInsn {
            code,
            regs: (dst & 0x0f) | ((src & 0x0f) << 4),
            off,
            imm,
        }
    }
}

/// `union bpf_attr`, the `BPF_MAP_CREATE` variant (first fields; the rest stay zero).
#[repr(C)]
#[derive(Default)]
pub struct MapCreateAttr {
    /// `map_type`.
    pub map_type: u32,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub map_flags: u32,
    /// `inner_map_fd`.
    pub inner_map_fd: u32,
    /// `numa_node`.
    pub numa_node: u32,
    /// `map_name`.
    pub map_name: [u8; 16],
}

/// `union bpf_attr`, the `BPF_MAP_*_ELEM` variant.
#[repr(C)]
#[derive(Default)]
pub struct MapElemAttr {
    /// `map_fd`.
    pub map_fd: u32,
    /// Padding to the 8-byte aligned `key`.
    pub pad: u32,
    /// `key` (a user pointer).
    pub key: u64,
    /// `value` (a user pointer).
    pub value: u64,
    /// `flags`.
    pub flags: u64,
}

/// `union bpf_attr`, the `BPF_PROG_LOAD` variant (first fields; the rest stay zero).
#[repr(C)]
#[derive(Default)]
pub struct ProgLoadAttr {
    /// `prog_type`.
    pub prog_type: u32,
    /// `insn_cnt`.
    pub insn_cnt: u32,
    /// `insns` (a user pointer).
    pub insns: u64,
    /// `license` (a user pointer to a NUL-terminated string).
    pub license: u64,
    /// `log_level`.
    pub log_level: u32,
    /// `log_size`.
    pub log_size: u32,
    /// `log_buf` (a user pointer).
    pub log_buf: u64,
    /// `kern_version`.
    pub kern_version: u32,
    /// `prog_flags`.
    pub prog_flags: u32,
    /// `prog_name`.
    pub prog_name: [u8; 16],
    /// `prog_ifindex`.
    pub prog_ifindex: u32,
    /// `expected_attach_type`.
    pub expected_attach_type: u32,
}

/// `union bpf_attr`, the `BPF_LINK_CREATE` variant (first fields; the rest stay zero).
#[repr(C)]
#[derive(Default)]
pub struct LinkCreateAttr {
    /// `prog_fd`.
    pub prog_fd: u32,
    /// `target_ifindex` (a union with `target_fd`).
    pub target_ifindex: u32,
    /// `attach_type`.
    pub attach_type: u32,
    /// `flags`.
    pub flags: u32,
    /// The variant-specific union that follows; zero for XDP.
    pub rest: [u64; 4],
}

/// `bpf(cmd, attr, size)` returning a new file descriptor.
///
/// # Safety
///
/// `attr` must be the `bpf_attr` variant `cmd` expects, and every user pointer inside it must
/// be valid for the kernel to read (or write, for a log buffer) for the duration of the call.
pub unsafe fn bpf_fd<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<OwnedFd> {
    let size =
        u32::try_from(size_of::<T>()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the caller guarantees `attr` is the right variant with valid pointers; `attr`
    // itself is a live, exclusively borrowed value of `size` bytes.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(r).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the commands used with this function return a new file descriptor that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bpf(cmd, attr, size)` for commands that return 0 on success.
///
/// # Safety
///
/// As [`bpf_fd`].
pub unsafe fn bpf_cmd<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<()> {
    let size =
        u32::try_from(size_of::<T>()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: as in `bpf_fd`.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ----- linux/ethtool.h -----
/// `ETHTOOL_GCHANNELS`.
pub const ETHTOOL_GCHANNELS: u32 = 0x3c;
/// `SIOCETHTOOL`.
pub const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct EthtoolChannels {
    /// `cmd`.
    pub cmd: u32,
    /// `max_rx`.
    pub max_rx: u32,
    /// `max_tx`.
    pub max_tx: u32,
    /// `max_other`.
    pub max_other: u32,
    /// `max_combined`.
    pub max_combined: u32,
    /// `rx_count`.
    pub rx_count: u32,
    /// `tx_count`.
    pub tx_count: u32,
    /// `other_count`.
    pub other_count: u32,
    /// `combined_count`.
    pub combined_count: u32,
}

/// `struct ifreq` with the data-pointer member of its union (what `SIOCETHTOOL` uses), padded
/// to the kernel's 40-byte `ifreq`.
#[repr(C)]
pub struct IfreqPtr {
    /// `ifr_name`.
    pub name: [libc::c_char; libc::IFNAMSIZ],
    /// `ifr_data`.
    pub data: *mut libc::c_void,
    /// The rest of the union.
    pub pad: [u8; 16],
}

/// `struct ifreq` with the `sockaddr` member of its union (`SIOCGIFHWADDR`).
#[repr(C)]
pub struct IfreqAddr {
    /// `ifr_name`.
    pub name: [libc::c_char; libc::IFNAMSIZ],
    /// `ifr_hwaddr`.
    pub addr: libc::sockaddr,
    /// The rest of the union.
    pub pad: [u8; 8],
}

/// `struct ifreq` with the `int` member of its union (`SIOCGIFMTU`).
#[repr(C)]
pub struct IfreqInt {
    /// `ifr_name`.
    pub name: [libc::c_char; libc::IFNAMSIZ],
    /// `ifr_mtu`.
    pub value: libc::c_int,
    /// The rest of the union.
    pub pad: [u8; 20],
}

/// Copies an interface name into an `ifr_name` field (NUL-terminated; the caller checked the
/// length).
pub fn ifr_name(name: &str) -> [libc::c_char; libc::IFNAMSIZ] {
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (o, b) in out.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *o = b as libc::c_char;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uapi_layouts_match_the_kernel_headers() {
        assert_eq!(size_of::<BpfInsn>(), 8);
        assert_eq!(size_of::<MapElemAttr>(), 32);
        // prog_ifindex is at offset 64 and expected_attach_type at 68 in linux/bpf.h.
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_ifindex), 64);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, flags), 12);
        assert_eq!(size_of::<EthtoolChannels>(), 36);
        assert_eq!(size_of::<IfreqPtr>(), 40);
        assert_eq!(size_of::<IfreqAddr>(), 40);
        assert_eq!(size_of::<IfreqInt>(), 40);
        assert_eq!(size_of::<libc::xdp_desc>(), 16);
    }

    #[test]
    fn registers_pack_dst_low_src_high() {
        let i = BpfInsn::new(OP_MOV64_REG, 4, 2, 0, 0);
        assert_eq!(i.regs, 0x24);
    }
}
