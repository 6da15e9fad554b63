#!/usr/bin/env bash
# capture-fixtures.sh: capture real Linux traffic as byte fixtures for shardnet's wire-format tests.
#
# Creates two network namespaces (snfix-a, snfix-b) joined by a veth pair (vA <-> vB, addresses
# 198.18.0.1/24 and 198.18.0.2/24, plus 198.19.100.1/24 and 198.19.100.2/24 for the 802.1Q part),
# runs tcpdump on vA, produces a fixed, bounded sequence of ARP / ICMP / UDP / TCP traffic between the
# two namespaces, checks that the capture has exactly the expected frames in the expected order
# (retrying the whole capture up to 3 times if not), and writes:
#
#   stack/tests/fixtures/linux-veth.pcap   the capture (classic pcap, Ethernet linktype)
#   stack/tests/fixtures/linux-veth.txt    tcpdump -r linux-veth.pcap -nn -vvv -e -x
#   stack/tests/fixtures/expected.tsv      per-frame fields extracted by tshark's dissectors
#   stack/tests/fixtures/README.md         what the capture contains, frame by frame
#
# Usage: sudo scripts/capture-fixtures.sh        (FIXTURES_DIR=/some/dir to write elsewhere)
#
# Network rule: traffic only ever flows between the two namespaces this script creates (and deletes
# at exit); every address used is in 198.18.0.0/15. Every step is bounded with `timeout`.
set -euo pipefail

NS_A=snfix-a
NS_B=snfix-b
BPF_DIR=/run/snfix-bpf        # private bpffs instance for the two tc programs (802.1Q push/pop)
MAC_A=02:00:00:00:00:01
MAC_B=02:00:00:00:00:02
IP_A=198.18.0.1
IP_B=198.18.0.2
VIP_A=198.19.100.1
VIP_B=198.19.100.2

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${FIXTURES_DIR:-$REPO_ROOT/stack/tests/fixtures}
START_TS=$(date +%s)

log() { printf '[capture-fixtures] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, tcpdump, tc, nft)"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_tools() {
    local -A pkg_for=([tcpdump]=tcpdump [ethtool]=ethtool [ip]=iproute2 [tc]=iproute2
                      [ping]=iputils-ping [nft]=nftables [tshark]=tshark [timeout]=coreutils)
    local missing=() cmd
    for cmd in "${!pkg_for[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_for[$cmd]}")
    done
    if [ ! -x /usr/bin/python3 ] && ! command -v python3 >/dev/null 2>&1; then missing+=(python3); fi
    [ ${#missing[@]} -eq 0 ] && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    local try
    for try in 1 2 3; do   # apt-get install sometimes fails once with "cannot stat ... .deb"
        if apt-get install -y -qq "${missing[@]}" >/dev/null; then return 0; fi
        log "apt-get install failed (try $try), retrying"
        sleep 2
    done
    die "could not install ${missing[*]}"
}
ensure_tools
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=$(command -v python3); fi

# ---------------------------------------------------------------------------------------------
# Cleanup (also of leftovers of earlier runs of this script)
# ---------------------------------------------------------------------------------------------
PIDS=()
WORK=""
remove_test_hosts() {
    local ns
    for ns in "$NS_A" "$NS_B"; do
        if ip netns list 2>/dev/null | grep -qw "^$ns"; then ip netns del "$ns" || true; fi
    done
    if mountpoint -q "$BPF_DIR" 2>/dev/null; then umount "$BPF_DIR" || true; fi
    if [ -d "$BPF_DIR" ]; then rmdir "$BPF_DIR" 2>/dev/null || true; fi
}
forget_pid() {   # after a successful wait: the PID may be reused, never signal it again
    local keep=() pid
    for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}
stop_started_processes() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    local rc=$?
    stop_started_processes
    remove_test_hosts
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

remove_test_hosts   # leftovers of an earlier, interrupted run
WORK=$(mktemp -d /tmp/snfix.XXXXXX)

# ---------------------------------------------------------------------------------------------
# Helpers run inside the namespaces (traffic generators) and after the capture (analysis)
# ---------------------------------------------------------------------------------------------
cat >"$WORK/vlanbpf.py" <<'PY'
# Load two tiny tc (sched_cls, direct-action) eBPF programs and pin them in PIN_DIR:
#   PIN_DIR/egress:  push an 802.1Q tag (TPID 0x8100, VID 100) onto IPv4 packets whose source
#                    address, and ARP packets whose sender protocol address, is in 198.19.100.0/24
#   PIN_DIR/ingress: pop the VLAN tag of any tagged packet
# This kernel has no 8021q (CONFIG_VLAN_8021Q is unset), so `ip link add ... type vlan` is not
# available; bpf_skb_vlan_push/pop are in the core network code and do the same tagging.
import ctypes, platform, struct, sys
pin_dir = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
SYS_bpf = {'x86_64': 321, 'aarch64': 280}[platform.machine()]
LDXW, MOV64X, MOV64K, ADD64K, AND64K = 0x61, 0xbf, 0xb7, 0x07, 0x57
JEQK, JNEK, JGTX, JA, CALL, EXIT = 0x15, 0x55, 0x2d, 0x05, 0x85, 0x95
def build(prog):
    labels, n = {}, 0
    for x in prog:
        if x[0] == 'label': labels[x[1]] = n
        else: n += 1
    out, n = b'', 0
    for x in prog:
        if x[0] == 'label': continue
        code, dst, src, off, imm = (list(x) + [0, 0, 0, 0])[:5]
        if isinstance(off, str): off = labels[off] - n - 1
        out += struct.pack('<BBhi', code, (src << 4) | dst, off, imm)
        n += 1
    return out
EGRESS = [
    (MOV64X, 6, 1),
    (LDXW, 2, 6, 76),                 # r2 = skb->data
    (LDXW, 3, 6, 80),                 # r3 = skb->data_end
    (MOV64X, 4, 2), (ADD64K, 4, 0, 0, 32),
    (JGTX, 4, 3, 'out'),              # need 32 bytes
    (LDXW, 5, 6, 16),                 # r5 = skb->protocol (network byte order)
    (JEQK, 5, 0, 'ip', 0x0008),
    (JEQK, 5, 0, 'arp', 0x0608),
    (JA, 0, 0, 'out'),
    ('label', 'ip'), (LDXW, 5, 2, 26), (JA, 0, 0, 'check'),   # IPv4 source address
    ('label', 'arp'), (LDXW, 5, 2, 28),                        # ARP sender protocol address
    ('label', 'check'),
    (AND64K, 5, 0, 0, 0x00ffffff),
    (JNEK, 5, 0, 'out', 0x006413c6),  # 198.19.100.0/24 (bytes c6 13 64, little-endian load)
    (MOV64X, 1, 6), (MOV64K, 2, 0, 0, 0x0081), (MOV64K, 3, 0, 0, 100),
    (CALL, 0, 0, 0, 18),              # bpf_skb_vlan_push(skb, htons(0x8100), 100)
    ('label', 'out'), (MOV64K, 0, 0, 0, 0), (EXIT,),   # TC_ACT_OK
]
INGRESS = [
    (MOV64X, 6, 1),
    (LDXW, 2, 6, 20),                 # skb->vlan_present
    (JEQK, 2, 0, 'out', 0),
    (MOV64X, 1, 6), (CALL, 0, 0, 0, 19),   # bpf_skb_vlan_pop(skb)
    ('label', 'out'), (MOV64K, 0, 0, 0, 0), (EXIT,),
]
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_bpf, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), 'bpf cmd %d failed' % cmd)
    return r
def load(name, prog):
    code = build(prog)
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b'GPL')
    log = ctypes.create_string_buffer(65536)
    # BPF_PROG_LOAD attr: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf
    attr = struct.pack('<IIQQIIQ', 3, len(code) // 8, ctypes.addressof(insns), ctypes.addressof(lic),
                       1, len(log), ctypes.addressof(log))
    try:
        fd = bpf(5, attr)             # BPF_PROG_LOAD, BPF_PROG_TYPE_SCHED_CLS
    except OSError:
        sys.stderr.write(log.value.decode(errors='replace'))
        raise
    path = ctypes.create_string_buffer(('%s/%s' % (pin_dir, name)).encode())
    bpf(6, struct.pack('<QI', ctypes.addressof(path), fd))   # BPF_OBJ_PIN
load('egress', EGRESS)
load('ingress', INGRESS)
PY

cat >"$WORK/traffic.py" <<'PY'
# Traffic generators. Every socket has a timeout; every step is paced with sleeps longer than
# Linux's maximum delayed-ACK time (200 ms) so that each data segment gets its own pure ACK and the
# frame sequence is the same on every run.
import socket, struct, sys, time
CC = b'cubic'   # the namespaces inherit the host's default (may be bbr, which paces); use Linux's usual
def sock():
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CC)
    return s
def connect(host, port):
    c = sock(); c.settimeout(10); c.connect((host, port)); return c
def pattern(n):
    return bytes((i % 251) + 1 for i in range(n))
def recv_exact(c, n):
    b = b''
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: raise EOFError('short read %d/%d' % (len(b), n))
        b += d
    return b
def wait_eof(c):
    while c.recv(65536): pass
def ready(path):
    open(path, 'w').close()
def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'udp-server':
        port, count, rf = int(args[0]), int(args[1]), args[2]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(('0.0.0.0', port)); s.settimeout(10); ready(rf)
        for _ in range(count):
            d, a = s.recvfrom(65535)
    elif cmd == 'udp-send':
        host, port = args[0], int(args[1])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n in args[2:]:
            s.sendto(pattern(int(n)), (host, port)); time.sleep(0.1)
    elif cmd == 'tcp-server':
        mode, port, rf = args[0], int(args[1]), args[2]
        l = sock(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mode == 'tfo':
            l.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
        l.bind(('0.0.0.0', port)); l.listen(8); l.settimeout(10); ready(rf)
        for _ in range(2 if mode == 'tfo' else 1):
            c, a = l.accept(); c.settimeout(10)
            if mode == 'main':
                recv_exact(c, 6); recv_exact(c, 3); time.sleep(0.3)
                c.sendall(b'world\n'); recv_exact(c, 4000)
                wait_eof(c); time.sleep(0.3); c.close()
            elif mode == 'tfo':
                c.recv(100); wait_eof(c); time.sleep(0.3); c.close()
            elif mode == 'sack':
                recv_exact(c, 5 * 1448); wait_eof(c); time.sleep(0.3); c.close()
            elif mode == 'abort':
                try: c.recv(100)
                except ConnectionResetError: pass
                c.close()
    elif cmd == 'tcp-client':
        mode, host, port = args[0], args[1], int(args[2])
        if mode == 'main':
            c = connect(host, port); time.sleep(0.3)
            c.sendall(b'hello\n'); time.sleep(0.3)
            c.sendall(b'abc'); recv_exact(c, 6); time.sleep(0.3)
            c.sendall(bytes(i % 256 for i in range(4000))); time.sleep(0.5)
            c.close(); time.sleep(0.6)
        elif mode == 'refused':
            try:
                connect(host, port)
                sys.exit('connect to a closed port succeeded?')
            except ConnectionRefusedError:
                pass
        elif mode == 'tfo':
            for i in (1, 2):
                c = sock()   # blocking: sendto(MSG_FASTOPEN) on a socket with a timeout gives EINPROGRESS
                c.sendto(b'tfo-%d\n' % i, socket.MSG_FASTOPEN, (host, port)); time.sleep(0.3)
                c.close(); time.sleep(0.6)
        elif mode == 'sack':
            data = bytearray(i % 256 for i in range(5 * 1448))
            data[1448:1452] = b'DROP'   # segment 2 starts with this; B's nft input rule drops it once
            c = connect(host, port); time.sleep(0.3)
            c.sendall(bytes(data)); time.sleep(1.0); c.close(); time.sleep(0.6)
        elif mode == 'abort':
            c = connect(host, port); time.sleep(0.3)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            c.close(); time.sleep(0.3)
    else:
        sys.exit('unknown command ' + cmd)
main()
PY

cat >"$WORK/analyse.py" <<'PY'
# Reads tshark's PDML of the capture (one level of dissection per frame: IP reassembly off, absolute
# TCP sequence numbers, checksum validation on), writes expected.tsv, checks the frame sequence
# against EXPECTED, and writes the frame index for README.md.
import sys, xml.etree.ElementTree as ET
pdml, tsv_out, index_out = sys.argv[1:4]
A, B = '02:00:00:00:00:01', '02:00:00:00:00:02'

# (signature, role). The signature is computed from the dissected fields by sig() below; the role
# goes into README.md. Keep this list in the order the script produces the traffic.
TS = 'mss,sackOK,ts,nop,wscale'
EXPECTED = [
    ('A>B ARP op1', 'ARP request (broadcast), neighbour cache flushed before'),
    ('B>A ARP op2', 'ARP reply'),
    ('A>B IP ICMP 8/0 len56', 'ICMP echo request (the `ping -c 1` that triggered the ARP)'),
    ('B>A IP ICMP 0/0 len56', 'ICMP echo reply'),
    ('A>B IP ICMP 8/0 len56', 'ICMP echo request, `ping -c 2 -s 56`, first'),
    ('B>A IP ICMP 0/0 len56', 'ICMP echo reply'),
    ('A>B IP ICMP 8/0 len56', 'ICMP echo request, `ping -c 2 -s 56`, second'),
    ('B>A IP ICMP 0/0 len56', 'ICMP echo reply'),
    ('A>B IP ICMP 8/0 len1400', 'ICMP echo request, large payload (`ping -s 1400`)'),
    ('B>A IP ICMP 0/0 len1400', 'ICMP echo reply, large payload'),
    ('A>B IP UDP 5010 len8', 'UDP datagram to a closed port'),
    ('B>A IP ICMP 3/3 len36', 'ICMP destination unreachable, port unreachable (quotes the IP header + 16 bytes of the datagram above)'),
    ('A>B IP UDP 5005 len0', 'UDP datagram to an open port, empty payload'),
    ('A>B IP UDP 5005 len1', 'UDP datagram, 1-byte payload'),
    ('A>B IP UDP 5005 len100', 'UDP datagram, 100-byte payload'),
    ('A>B IP UDP 5005 len1472', 'UDP datagram, 1472-byte payload (IP total length 1500 = MTU)'),
    ('A>B IP TCP 5001 S len0 [%s]' % TS, 'TCP connection (port 5001): SYN'),
    ('B>A IP TCP 5001 SA len0 [%s]' % TS, 'TCP: SYN|ACK'),
    ('A>B IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK (handshake complete)'),
    ('A>B IP TCP 5001 PA len6 [nop,nop,ts]', 'TCP: client data "hello\\n" (first small write)'),
    ('B>A IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK'),
    ('A>B IP TCP 5001 PA len3 [nop,nop,ts]', 'TCP: client data "abc" (second small write)'),
    ('B>A IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK'),
    ('B>A IP TCP 5001 PA len6 [nop,nop,ts]', 'TCP: server data "world\\n"'),
    ('A>B IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK'),
    ('A>B IP TCP 5001 A len1448 [nop,nop,ts]', 'TCP: 4000-byte write, full-size segment 1/3'),
    ('A>B IP TCP 5001 A len1448 [nop,nop,ts]', 'TCP: 4000-byte write, full-size segment 2/3'),
    ('A>B IP TCP 5001 PA len1104 [nop,nop,ts]', 'TCP: 4000-byte write, last segment 3/3 (PSH)'),
    ('B>A IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK of segment 1'),
    ('B>A IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK of segment 2'),
    ('B>A IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK of segment 3'),
    ('A>B IP TCP 5001 FA len0 [nop,nop,ts]', 'TCP: client FIN|ACK (close)'),
    ('B>A IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: ACK of the FIN'),
    ('B>A IP TCP 5001 FA len0 [nop,nop,ts]', 'TCP: server FIN|ACK'),
    ('A>B IP TCP 5001 A len0 [nop,nop,ts]', 'TCP: last ACK (client enters TIME_WAIT)'),
    ('A>B IP TCP 5009 S len0 [%s]' % TS, 'TCP SYN to a closed port (5009)'),
    ('B>A IP TCP 5009 RA len0 []', 'TCP RST|ACK (connection refused; no options, window 0)'),
    ('A>B IP TCP 5002 S len0 [%s,tfo,nop,nop]' % TS, 'TCP Fast Open #1 (port 5002): SYN with a cookie request (option 34, length 2)'),
    ('B>A IP TCP 5002 SA len0 [%s,tfo,nop,nop]' % TS, 'TFO #1: SYN|ACK carrying the cookie (option 34, length 10, 8-byte cookie)'),
    ('A>B IP TCP 5002 PA len6 [nop,nop,ts]', 'TFO #1: ACK + data "tfo-1\\n" (no cookie yet, so the data follows the handshake)'),
    ('B>A IP TCP 5002 A len0 [nop,nop,ts]', 'TFO #1: ACK'),
    ('A>B IP TCP 5002 FA len0 [nop,nop,ts]', 'TFO #1: client FIN|ACK'),
    ('B>A IP TCP 5002 A len0 [nop,nop,ts]', 'TFO #1: ACK of the FIN'),
    ('B>A IP TCP 5002 FA len0 [nop,nop,ts]', 'TFO #1: server FIN|ACK'),
    ('A>B IP TCP 5002 A len0 [nop,nop,ts]', 'TFO #1: last ACK'),
    ('A>B IP TCP 5002 S len6 [%s,tfo,nop,nop]' % TS, 'TCP Fast Open #2: SYN with the cookie and 6 bytes of data "tfo-2\\n"'),
    ('B>A IP TCP 5002 SA len0 [%s]' % TS, 'TFO #2: SYN|ACK acknowledging SYN + data (ack = ISN + 7)'),
    ('A>B IP TCP 5002 A len0 [nop,nop,ts]', 'TFO #2: ACK'),
    ('A>B IP TCP 5002 FA len0 [nop,nop,ts]', 'TFO #2: client FIN|ACK'),
    ('B>A IP TCP 5002 A len0 [nop,nop,ts]', 'TFO #2: ACK of the FIN'),
    ('B>A IP TCP 5002 FA len0 [nop,nop,ts]', 'TFO #2: server FIN|ACK'),
    ('A>B IP TCP 5002 A len0 [nop,nop,ts]', 'TFO #2: last ACK'),
    ('A>B IP TCP 5003 S len0 [%s]' % TS, 'TCP with one lost segment (port 5003): SYN'),
    ('B>A IP TCP 5003 SA len0 [%s]' % TS, 'SACK conn: SYN|ACK'),
    ('A>B IP TCP 5003 A len0 [nop,nop,ts]', 'SACK conn: ACK'),
    ('A>B IP TCP 5003 A len1448 [nop,nop,ts]', 'SACK conn: data segment 1/5'),
    ('A>B IP TCP 5003 A len1448 [nop,nop,ts]', 'SACK conn: data segment 2/5, payload starts with "DROP": captured here on the sender side, dropped by an nftables rule on the receiver\'s input'),
    ('A>B IP TCP 5003 A len1448 [nop,nop,ts]', 'SACK conn: data segment 3/5'),
    ('A>B IP TCP 5003 A len1448 [nop,nop,ts]', 'SACK conn: data segment 4/5'),
    ('A>B IP TCP 5003 PA len1448 [nop,nop,ts]', 'SACK conn: data segment 5/5 (PSH)'),
    ('B>A IP TCP 5003 A len0 [nop,nop,ts]', 'SACK conn: ACK of segment 1'),
    ('B>A IP TCP 5003 A len0 [nop,nop,ts,nop,nop,sack]', 'SACK conn: duplicate ACK with 1 SACK block (segment 3)'),
    ('B>A IP TCP 5003 A len0 [nop,nop,ts,nop,nop,sack]', 'SACK conn: duplicate ACK with 1 SACK block (segments 3-4)'),
    ('B>A IP TCP 5003 A len0 [nop,nop,ts,nop,nop,sack]', 'SACK conn: duplicate ACK with 1 SACK block (segments 3-5)'),
    ('A>B IP TCP 5003 A len1448 [nop,nop,ts]', 'SACK conn: fast retransmission of segment 2'),
    ('B>A IP TCP 5003 A len0 [nop,nop,ts]', 'SACK conn: cumulative ACK of all 7240 bytes'),
    ('A>B IP TCP 5003 FA len0 [nop,nop,ts]', 'SACK conn: client FIN|ACK'),
    ('B>A IP TCP 5003 A len0 [nop,nop,ts]', 'SACK conn: ACK of the FIN'),
    ('B>A IP TCP 5003 FA len0 [nop,nop,ts]', 'SACK conn: server FIN|ACK'),
    ('A>B IP TCP 5003 A len0 [nop,nop,ts]', 'SACK conn: last ACK'),
    ('A>B vlan100 ARP op1', '802.1Q VLAN 100: ARP request (tagged, 46 bytes: veth does not pad to 60)'),
    ('B>A vlan100 ARP op2', '802.1Q VLAN 100: ARP reply (tagged)'),
    ('A>B vlan100 IP ICMP 8/0 len56', '802.1Q VLAN 100: ICMP echo request'),
    ('B>A vlan100 IP ICMP 0/0 len56', '802.1Q VLAN 100: ICMP echo reply'),
    ('A>B IP+opt ICMP 8/0 len56', 'IPv4 with options: ICMP echo request with Record Route (`ping -R`; NOP + RR, IHL 15)'),
    ('B>A IP+opt ICMP 0/0 len56', 'IPv4 with options: ICMP echo reply with the Record Route option echoed back (RR + EOL, IHL 15)'),
    ('A>B IP frag(mf=1,off=0) ICMP 8/0 len1472', 'IPv4 fragment 1/2 of an ICMP echo request (`ping -s 2000`), MF set'),
    ('A>B IP frag(mf=0,off=1480) len528', 'IPv4 fragment 2/2 of the echo request, offset 1480'),
    ('B>A IP frag(mf=1,off=0) ICMP 0/0 len1472', 'IPv4 fragment 1/2 of the ICMP echo reply, MF set'),
    ('B>A IP frag(mf=0,off=1480) len528', 'IPv4 fragment 2/2 of the echo reply, offset 1480'),
    ('A>B IP TCP 5004 S len0 [%s]' % TS, 'TCP abort (port 5004): SYN'),
    ('B>A IP TCP 5004 SA len0 [%s]' % TS, 'abort conn: SYN|ACK'),
    ('A>B IP TCP 5004 A len0 [nop,nop,ts]', 'abort conn: ACK'),
    ('A>B IP TCP 5004 RA len0 [nop,nop,ts]', 'abort conn: RST|ACK from close() with SO_LINGER {1, 0}'),
]

COLUMNS = ['frame', 'eth_src', 'eth_dst', 'ethertype', 'vlan_id', 'ip_src', 'ip_dst', 'ip_proto',
           'ip_ttl', 'ip_id', 'ip_total_len', 'ip_ihl', 'ip_df', 'ip_checksum', 'l4_src_port',
           'l4_dst_port', 'tcp_seq', 'tcp_ack', 'tcp_flags', 'tcp_window', 'tcp_options',
           'udp_length', 'icmp_type', 'icmp_code', 'icmp_id', 'icmp_seq', 'payload_len',
           # extra columns (after the ones above, so column positions stay put)
           'frame_len', 'inner_ethertype', 'ip_mf', 'ip_frag_offset', 'ip_options', 'tcp_hdr_len',
           'l4_checksum', 'ip_checksum_ok', 'l4_checksum_ok', 'arp_op', 'arp_sha', 'arp_spa',
           'arp_tha', 'arp_tpa']

def first(elem, name):
    if elem is None: return None
    for f in elem.iter('field'):
        if f.get('name') == name: return f
    return None
def show(elem, name):
    f = first(elem, name)
    return None if f is None else f.get('show')
def num(elem, name):
    v = show(elem, name)
    if v is None: return None
    return int(v, 16) if v.startswith('0x') else int(v)
STATUS = {'0': 'bad', '1': 'good', '2': 'unverified'}

def tcp_options(tcp):
    opts = first(tcp, 'tcp.options')
    if opts is None: return '', []
    parts, kinds = [], []
    for o in opts.findall('field'):
        n = o.get('name')
        if n == 'tcp.options.nop': parts.append('nop'); kinds.append('nop')
        elif n == 'tcp.options.eol': parts.append('eol'); kinds.append('eol')
        elif n == 'tcp.options.mss': parts.append('mss=%s' % show(o, 'tcp.options.mss_val')); kinds.append('mss')
        elif n == 'tcp.options.sack_perm': parts.append('sackOK'); kinds.append('sackOK')
        elif n == 'tcp.options.wscale': parts.append('wscale=%s' % show(o, 'tcp.options.wscale.shift')); kinds.append('wscale')
        elif n == 'tcp.options.timestamp':
            parts.append('ts=%s/%s' % (show(o, 'tcp.options.timestamp.tsval'), show(o, 'tcp.options.timestamp.tsecr'))); kinds.append('ts')
        elif n == 'tcp.options.sack':
            le = [f.get('show') for f in o.iter('field') if f.get('name') == 'tcp.options.sack_le']
            re_ = [f.get('show') for f in o.iter('field') if f.get('name') == 'tcp.options.sack_re']
            parts.append('sack=' + ';'.join('%s-%s' % lr for lr in zip(le, re_))); kinds.append('sack')
        elif n == 'tcp.options.tfo':
            ck = show(o, 'tcp.options.tfo.cookie')
            parts.append('tfo=cookie:' + ck.replace(':', '') if ck else 'tfo=cookiereq'); kinds.append('tfo')
        else:
            parts.append('kind=%s' % show(o, 'tcp.option_kind')); kinds.append('kind%s' % show(o, 'tcp.option_kind'))
    return ','.join(parts), kinds

def ip_options(ip):
    parts = []
    for f in ip.findall('field'):
        if (f.get('showname') or f.get('show') or '').startswith('Options:'):
            for o in f.findall('field'):
                n = (o.get('name') or '').replace('ip.options.', '')
                if n == 'record_route':
                    addrs = [x.get('show') for x in o.iter('field') if x.get('name') == 'ip.rec_rt']
                    parts.append('rr(len=%s,ptr=%s,%s)' % (show(o, 'ip.opt.len'), show(o, 'ip.opt.ptr'), ' '.join(addrs)))
                else:
                    parts.append(n)
    return ','.join(parts)

rows, sigs = [], []
for pkt in ET.parse(pdml).getroot().findall('packet'):
    protos = {}
    for p in pkt.findall('proto'):
        protos.setdefault(p.get('name'), p)
    fr, eth, vlan, arp = protos.get('frame'), protos.get('eth'), protos.get('vlan'), protos.get('arp')
    ip, icmp, udp, tcp = protos.get('ip'), protos.get('icmp'), protos.get('udp'), protos.get('tcp')
    geninfo = protos.get('geninfo')
    r = dict.fromkeys(COLUMNS, '')
    r['frame'] = show(geninfo, 'num')
    r['frame_len'] = show(geninfo, 'len')
    if show(geninfo, 'caplen') != r['frame_len']:
        sys.exit('frame %s is truncated' % r['frame'])
    r['eth_src'], r['eth_dst'] = show(eth, 'eth.src'), show(eth, 'eth.dst')
    r['ethertype'] = '0x%04x' % num(eth, 'eth.type')
    if vlan is not None:
        r['vlan_id'] = show(vlan, 'vlan.id')
        r['inner_ethertype'] = '0x%04x' % num(vlan, 'vlan.etype')
    if arp is not None:
        r['arp_op'] = show(arp, 'arp.opcode')
        r['arp_sha'], r['arp_spa'] = show(arp, 'arp.src.hw_mac'), show(arp, 'arp.src.proto_ipv4')
        r['arp_tha'], r['arp_tpa'] = show(arp, 'arp.dst.hw_mac'), show(arp, 'arp.dst.proto_ipv4')
    l4hdr = None
    if ip is not None:
        ihl_bytes = num(ip, 'ip.hdr_len'); tot = num(ip, 'ip.len')
        r.update(ip_src=show(ip, 'ip.src'), ip_dst=show(ip, 'ip.dst'), ip_proto=show(ip, 'ip.proto'),
                 ip_ttl=show(ip, 'ip.ttl'), ip_id=str(num(ip, 'ip.id')), ip_total_len=str(tot),
                 ip_ihl=str(ihl_bytes // 4), ip_df=show(ip, 'ip.flags.df'), ip_mf=show(ip, 'ip.flags.mf'),
                 ip_checksum='0x%04x' % num(ip, 'ip.checksum'),
                 ip_checksum_ok=STATUS.get(show(ip, 'ip.checksum.status'), ''),
                 ip_options=ip_options(ip))
        r['ip_frag_offset'] = str(num(ip, 'ip.frag_offset') * 8)   # tshark shows 8-byte units
        ip_payload = tot - ihl_bytes
        r['payload_len'] = str(ip_payload)   # overwritten below when there is an L4 header
    if tcp is not None:
        flags = num(tcp, 'tcp.flags'); summary, kinds = tcp_options(tcp)
        r.update(l4_src_port=show(tcp, 'tcp.srcport'), l4_dst_port=show(tcp, 'tcp.dstport'),
                 tcp_seq=show(tcp, 'tcp.seq'), tcp_ack=show(tcp, 'tcp.ack_raw') or show(tcp, 'tcp.ack'),
                 tcp_flags='0x%02x' % flags, tcp_window=show(tcp, 'tcp.window_size_value'),
                 tcp_options=summary, tcp_hdr_len=show(tcp, 'tcp.hdr_len'),
                 l4_checksum='0x%04x' % num(tcp, 'tcp.checksum'),
                 l4_checksum_ok=STATUS.get(show(tcp, 'tcp.checksum.status'), ''),
                 payload_len=show(tcp, 'tcp.len'))
    elif udp is not None:
        r.update(l4_src_port=show(udp, 'udp.srcport'), l4_dst_port=show(udp, 'udp.dstport'),
                 udp_length=show(udp, 'udp.length'), l4_checksum='0x%04x' % num(udp, 'udp.checksum'),
                 l4_checksum_ok=STATUS.get(show(udp, 'udp.checksum.status'), ''),
                 payload_len=str(num(udp, 'udp.length') - 8))
    elif icmp is not None:
        r.update(icmp_type=show(icmp, 'icmp.type'), icmp_code=show(icmp, 'icmp.code'),
                 l4_checksum='0x%04x' % num(icmp, 'icmp.checksum'),
                 l4_checksum_ok=STATUS.get(show(icmp, 'icmp.checksum.status'), ''),
                 payload_len=str(ip_payload - 8))
        if r['icmp_type'] in ('0', '8'):
            r['icmp_id'], r['icmp_seq'] = show(icmp, 'icmp.ident'), show(icmp, 'icmp.seq')
    rows.append(r)

    # signature for the order check
    who = {A: 'A>B', B: 'B>A'}.get(r['eth_src'], '?')
    s = [who] + (['vlan' + r['vlan_id']] if r['vlan_id'] else [])
    if arp is not None:
        s.append('ARP op' + r['arp_op'])
    elif ip is not None:
        s.append('IP' + ('+opt' if r['ip_options'] else ''))
        if r['ip_mf'] == '1' or r['ip_frag_offset'] != '0':
            s.append('frag(mf=%s,off=%s)' % (r['ip_mf'], r['ip_frag_offset']))
        server_port = r['l4_dst_port'] if who == 'A>B' else r['l4_src_port']
        if tcp is not None:
            fl = int(r['tcp_flags'], 16)
            letters = ''.join(c for b, c in ((2, 'S'), (1, 'F'), (4, 'R'), (8, 'P'), (16, 'A')) if fl & b)
            s.append('TCP %s %s len%s [%s]' % (server_port, letters, r['payload_len'], ','.join(kinds)))
        elif udp is not None:
            s.append('UDP %s len%s' % (server_port, r['payload_len']))
        elif icmp is not None:
            s.append('ICMP %s/%s len%s' % (r['icmp_type'], r['icmp_code'], r['payload_len']))
        else:
            s.append('len' + r['payload_len'])
    sigs.append(' '.join(s))

with open(tsv_out, 'w') as f:
    f.write('\t'.join(COLUMNS) + '\n')
    for r in rows:
        f.write('\t'.join(r[c] if r[c] is not None else '' for c in COLUMNS) + '\n')

ok = len(sigs) == len(EXPECTED) and all(s == e[0] for s, e in zip(sigs, EXPECTED))
bad = [r['frame'] for r in rows if r['ip_checksum_ok'] == 'bad' or r['l4_checksum_ok'] == 'bad']
if not ok:
    sys.stderr.write('frame sequence differs from the expected one (%d frames, %d expected):\n'
                     % (len(sigs), len(EXPECTED)))
    for i in range(max(len(sigs), len(EXPECTED))):
        got = sigs[i] if i < len(sigs) else '-'
        exp = EXPECTED[i][0] if i < len(EXPECTED) else '-'
        if got != exp:
            sys.stderr.write('  frame %d: got %s, expected %s\n' % (i + 1, got, exp))
    sys.exit(2)
if bad:
    sys.stderr.write('frames with a bad checksum: %s\n' % ' '.join(bad))
    sys.exit(3)

def describe(r):
    if r['arp_op']:
        d = ('who-has %s tell %s' % (r['arp_tpa'], r['arp_spa']) if r['arp_op'] == '1'
             else '%s is-at %s' % (r['arp_spa'], r['arp_sha']))
        return '%s -> %s, %s' % (r['eth_src'], r['eth_dst'], d)
    if r['tcp_flags']:
        d = '%s:%s -> %s:%s flags %s seq %s' % (r['ip_src'], r['l4_src_port'], r['ip_dst'], r['l4_dst_port'],
                                             r['tcp_flags'], r['tcp_seq'])
        if int(r['tcp_flags'], 16) & 0x10: d += ' ack %s' % r['tcp_ack']
        d += ' win %s, options [%s], %s data bytes' % (r['tcp_window'], r['tcp_options'], r['payload_len'])
        return d
    if r['udp_length']:
        return '%s:%s -> %s:%s, udp length %s, %s data bytes' % (r['ip_src'], r['l4_src_port'], r['ip_dst'],
                                                            r['l4_dst_port'], r['udp_length'], r['payload_len'])
    d = '%s -> %s' % (r['ip_src'], r['ip_dst'])
    if r['ip_mf'] == '1' or r['ip_frag_offset'] != '0':
        d += ', ip id %s, frag offset %s, MF %s' % (r['ip_id'], r['ip_frag_offset'], r['ip_mf'])
    if r['icmp_id']:
        d += ', id %s seq %s' % (r['icmp_id'], r['icmp_seq'])
    if r['icmp_type']:
        d += ', %s data bytes' % r['payload_len'] if r['icmp_type'] in ('0', '8') else ', icmp type %s code %s' % (r['icmp_type'], r['icmp_code'])
    else:
        d += ', %s bytes of IP payload' % r['payload_len']
    if r['ip_options']:
        d += ', ip options [%s]' % r['ip_options']
    return d

with open(index_out, 'w') as f:
    f.write('| # | what | details (from tshark) | frame bytes |\n|---:|---|---|---:|\n')
    for r, (_, role) in zip(rows, EXPECTED):
        f.write('| %s | %s | %s | %s |\n' % (r['frame'], role.replace('|', '\\|'), describe(r).replace('|', '\\|'), r['frame_len']))
print(len(rows))
PY

# ---------------------------------------------------------------------------------------------
# Test hosts
# ---------------------------------------------------------------------------------------------
XA=(ip netns exec "$NS_A" timeout 20)
XB=(ip netns exec "$NS_B" timeout 30)

setup_test_hosts() {
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    local ns
    for ns in "$NS_A" "$NS_B"; do
        # no IPv6 (no router solicitations, MLD or DAD in the capture); TFO client+server
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
            net.ipv4.tcp_fastopen=3
        ip -n "$ns" link set lo up
    done
    ip link add vA netns "$NS_A" address "$MAC_A" type veth peer name vB netns "$NS_B" address "$MAC_B"
    ip -n "$NS_A" addr add "$IP_A/24" dev vA
    ip -n "$NS_B" addr add "$IP_B/24" dev vB
    ip -n "$NS_A" addr add "$VIP_A/24" dev vA
    ip -n "$NS_B" addr add "$VIP_B/24" dev vB

    # 802.1Q: tc programs push tag 100 on 198.19.100.0/24 traffic leaving either end, pop it on entry
    mkdir -p "$BPF_DIR"
    mountpoint -q "$BPF_DIR" || mount -t bpf snfix-bpf "$BPF_DIR"
    "$PY" "$WORK/vlanbpf.py" "$BPF_DIR"

    local ns_dev
    for ns_dev in "$NS_A:vA" "$NS_B:vB"; do
        set -- "${ns_dev%%:*}" "${ns_dev#*:}"
        # full checksums and one frame per segment on the wire: no checksum offload, no TSO/GSO/GRO;
        # VLAN tags in the frame bytes, not in skb metadata
        ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off txvlan off rxvlan off >/dev/null 2>&1 ||
            ip netns exec "$1" ethtool -K "$2" tx off tso off gso off
        ip -n "$1" link set "$2" up
        tc -n "$1" qdisc add dev "$2" clsact
        tc -n "$1" filter add dev "$2" egress bpf object-pinned "$BPF_DIR/egress" direct-action
        tc -n "$1" filter add dev "$2" ingress bpf object-pinned "$BPF_DIR/ingress" direct-action
    done

    # SACK: drop the first TCP segment to port 5003 whose payload starts with "DROP" (once: the
    # quota is used up by the first 1500-byte packet, so the retransmission passes)
    ip netns exec "$NS_B" nft -f - <<'NFT'
table inet snfix {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 5003 @th,256,32 0x44524f50 quota until 2000 bytes drop
    }
}
NFT
}

wait_file() {
    for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.05; done
    die "timed out waiting for $1"
}

# start a server in namespace B in the background (bounded by timeout); sets SERVER_PID
start_server() {
    local ready=$1; shift
    "${XB[@]}" "$PY" "$WORK/traffic.py" "$@" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_file "$ready"
}
wait_server() {
    local rc=0
    wait "$SERVER_PID" || rc=$?
    forget_pid "$SERVER_PID"
    [ "$rc" -eq 0 ] || die "server $* failed (exit $rc)"
}

pin_neighbours() {   # no further ARP (e.g. reachability probes) after the ARP steps
    ip -n "$NS_A" neigh replace "$1" lladdr "$MAC_B" dev vA nud permanent
    ip -n "$NS_B" neigh replace "$2" lladdr "$MAC_A" dev vB nud permanent
}

capture_once() {
    local pcap=$1 T="$WORK/traffic.py"
    rm -f "$WORK"/ready.*
    setup_test_hosts

    ip netns exec "$NS_A" timeout -s INT 120 \
        tcpdump -i vA -s 0 -U --immediate-mode -w "$pcap" 2>"$WORK/tcpdump.err" &
    local td=$!
    PIDS+=("$td")
    for _ in $(seq 100); do grep -q 'listening on' "$WORK/tcpdump.err" && break; sleep 0.05; done
    grep -q 'listening on' "$WORK/tcpdump.err" || die "tcpdump did not start: $(cat "$WORK/tcpdump.err")"
    sleep 0.2

    # 1. ARP request/reply, then the echo request/reply of the ping that triggered it
    ip -n "$NS_A" neigh flush dev vA
    ip -n "$NS_B" neigh flush dev vB
    "${XA[@]}" ping -n -q -c 1 -W 2 "$IP_B" >/dev/null
    pin_neighbours "$IP_B" "$IP_A"
    sleep 0.3
    # 2. ICMP echo: Linux's default 56 data bytes, twice; then a 1400-byte payload
    "${XA[@]}" ping -n -q -c 2 -i 0.3 -s 56 -W 2 "$IP_B" >/dev/null
    sleep 0.3
    "${XA[@]}" ping -n -q -c 1 -s 1400 -W 2 "$IP_B" >/dev/null
    sleep 0.3
    # 3. UDP: closed port (-> ICMP port unreachable), then payloads 0, 1, 100, 1472 to an open port
    "${XA[@]}" "$PY" "$T" udp-send "$IP_B" 5010 8
    sleep 0.3
    start_server "$WORK/ready.5005" udp-server 5005 4 "$WORK/ready.5005"
    "${XA[@]}" "$PY" "$T" udp-send "$IP_B" 5005 0 1 100 1472
    wait_server udp-server
    sleep 0.3
    # 4. TCP: full connection; SYN to a closed port; TFO cookie request + TFO with cookie and data;
    #    a connection that loses one segment (SACK)
    start_server "$WORK/ready.5001" tcp-server main 5001 "$WORK/ready.5001"
    "${XA[@]}" "$PY" "$T" tcp-client main "$IP_B" 5001
    wait_server tcp-server main
    sleep 0.3
    "${XA[@]}" "$PY" "$T" tcp-client refused "$IP_B" 5009
    sleep 0.3
    start_server "$WORK/ready.5002" tcp-server tfo 5002 "$WORK/ready.5002"
    "${XA[@]}" "$PY" "$T" tcp-client tfo "$IP_B" 5002
    wait_server tcp-server tfo
    sleep 0.3
    start_server "$WORK/ready.5003" tcp-server sack 5003 "$WORK/ready.5003"
    "${XA[@]}" "$PY" "$T" tcp-client sack "$IP_B" 5003
    wait_server tcp-server sack
    sleep 0.3
    # 5. 802.1Q VLAN 100: tagged ARP request/reply and echo request/reply
    "${XA[@]}" ping -n -q -c 1 -W 2 "$VIP_B" >/dev/null
    pin_neighbours "$VIP_B" "$VIP_A"
    sleep 0.3
    # 6. IPv4 options: record route
    "${XA[@]}" ping -n -q -R -c 1 -W 2 "$IP_B" >/dev/null
    sleep 0.3
    # extra: IPv4 fragments (2008-byte ICMP message over a 1500-byte MTU), TCP abort (RST|ACK)
    "${XA[@]}" ping -n -q -c 1 -s 2000 -W 2 "$IP_B" >/dev/null
    sleep 0.3
    start_server "$WORK/ready.5004" tcp-server abort 5004 "$WORK/ready.5004"
    "${XA[@]}" "$PY" "$T" tcp-client abort "$IP_B" 5004
    wait_server tcp-server abort
    sleep 0.5

    kill -INT "$td"
    wait "$td" || true
    forget_pid "$td"
    grep -E 'captured|dropped' "$WORK/tcpdump.err" >&2 || true
    remove_test_hosts
}

analyse() {   # pcap -> tsv + index; non-zero if the frames are not the expected ones
    TZ=UTC tshark -r "$1" -n -o ip.defragment:FALSE -o tcp.relative_sequence_numbers:FALSE \
        -o tcp.analyze_sequence_numbers:FALSE -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE \
        -o udp.check_checksum:TRUE -T pdml 2>/dev/null >"$WORK/capture.pdml"
    "$PY" "$WORK/analyse.py" "$WORK/capture.pdml" "$2" "$3"
}

ok=""
for attempt in 1 2 3; do
    log "capture attempt $attempt"
    capture_once "$WORK/linux-veth.pcap"
    if nframes=$(analyse "$WORK/linux-veth.pcap" "$WORK/expected.tsv" "$WORK/index.md"); then
        ok=1
        break
    fi
    log "unexpected frame sequence, capturing again"
done
[ -n "$ok" ] || die "3 captures in a row did not give the expected frame sequence"

mkdir -p "$OUT_DIR"
cp "$WORK/linux-veth.pcap" "$OUT_DIR/linux-veth.pcap"
cp "$WORK/expected.tsv" "$OUT_DIR/expected.tsv"
(cd "$OUT_DIR" && TZ=UTC tcpdump -r linux-veth.pcap -nn -vvv -e -x 2>/dev/null >linux-veth.txt)

KERNEL=$(uname -r)
# shellcheck disable=SC1091
OS_NAME=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || echo unknown)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TCPDUMP_VER=$(tcpdump --version 2>&1 | head -1)
LIBPCAP_VER=$(tcpdump --version 2>&1 | sed -n 2p)
TSHARK_VER=$(tshark --version 2>/dev/null | head -1)
PCAP_BYTES=$(stat -c %s "$OUT_DIR/linux-veth.pcap")
ELAPSED=$(( $(date +%s) - START_TS ))

{
cat <<EOF
# Linux traffic fixtures

\`linux-veth.pcap\` is real Linux traffic between two network namespaces, captured with tcpdump on one
end of a veth pair. The wire-format tests read frames out of it **by frame number** (1-based, the order
in the file); the table below says what each frame is.

- Produced by: \`sudo scripts/capture-fixtures.sh\` (from the repository root) on $DATE
- Kernel: Linux $KERNEL ($(uname -m), $OS_NAME userland, $(nproc) cores); $TCPDUMP_VER, $LIBPCAP_VER; dissected by $TSHARK_VER
- Capture: \`ip netns exec snfix-a tcpdump -i vA -s 0 -U --immediate-mode -w linux-veth.pcap\`
  (classic pcap, microsecond timestamps, linktype 1 = Ethernet, snaplen 262144, no frame truncated)
- $nframes frames, $PCAP_BYTES bytes; the script took ${ELAPSED} s (including tool checks and the analysis)

## Files

| file | what |
|---|---|
| \`linux-veth.pcap\` | the capture |
| \`linux-veth.txt\` | \`tcpdump -r linux-veth.pcap -nn -vvv -e -x\` (TZ=UTC): every frame decoded, with hex |
| \`expected.tsv\` | one line per frame with fields extracted by tshark's dissectors (independent of shardnet's parsers) |
| \`README.md\` | this file |

Re-running the script writes a new capture (new ports, sequence numbers, IDs, timestamps, TFO cookie)
with the same frames in the same order: the script checks the order against its list and captures
again if it differs. Tests that compare values must read them from \`expected.tsv\` of the committed
capture, not hard-code them from a run.

## Setup

| | namespace \`snfix-a\` (A, client) | namespace \`snfix-b\` (B, server) |
|---|---|---|
| interface | \`vA\` (tcpdump runs here) | \`vB\` |
| MAC | $MAC_A | $MAC_B |
| IPv4 | $IP_A/24, $VIP_A/24 | $IP_B/24, $VIP_B/24 |

- Offloads off on both ends (\`ethtool -K tx off tso off gso off gro off txvlan off rxvlan off\`): every
  frame carries a full, correct IPv4 and TCP/UDP/ICMP checksum (tshark verified all of them: column
  \`l4_checksum_ok\`, \`ip_checksum_ok\`), and each TCP segment is one frame of at most 1514 bytes.
- IPv6 disabled in both namespaces (no router solicitations, MLD or DAD frames).
- \`net.ipv4.tcp_fastopen=3\` in both namespaces; TCP sockets use \`TCP_CONGESTION=cubic\`; MTU 1500, so
  MSS 1460 and 1448 data bytes per segment with timestamps. Window scale is whatever the kernel picks
  from its buffer sizes (10 in this capture).
- After each ARP exchange the neighbour entries are pinned (\`nud permanent\`), so no later ARP
  reachability probe lands in the middle of another step.
- Frames are **not padded** to the Ethernet minimum of 60 bytes (veth does not pad): the ARP frames are
  42 bytes, tagged ARP 46 bytes, a TCP RST without options 54 bytes. A parser must accept these and also
  padded frames (where the IP total length, not the frame length, bounds the packet).
- No frame has an FCS (Linux never hands the FCS to a packet socket on veth).

### How some frames were provoked

- **802.1Q**: this kernel is built without \`CONFIG_VLAN_8021Q\`, so \`ip link add ... type vlan\` does not
  exist. Instead two tiny tc eBPF programs (loaded by the script, see \`vlanbpf.py\` in it) call the
  kernel's \`bpf_skb_vlan_push\` on egress for packets from 198.19.100.0/24 and \`bpf_skb_vlan_pop\` on
  ingress, on both veth ends (TPID 0x8100, PCP 0, DEI 0, VID 100). With \`txvlan off\` the sender writes
  the tag into the frame; on receive the kernel moves it into packet metadata before a packet socket
  sees the frame and libpcap puts it back in place, as in any Linux capture. The ARP and ICMP inside
  are ordinary kernel-generated packets.
- **SACK**: an nftables rule in B's input hook drops the first TCP segment to port 5003 whose payload
  starts with \`DROP\` (\`@th,256,32 0x44524f50 quota until 2000 bytes drop\`). The capture is on A's side,
  so the dropped segment is in the file (frame marked below); B answers the next segments with SACK
  blocks and A fast-retransmits.
- **TFO**: \`sendto(MSG_FASTOPEN)\` on an unconnected socket, twice. The first SYN carries an empty
  Fast Open option (cookie request, kind 34 length 2); the second carries the cookie and data.

## Frame index

EOF
cat "$WORK/index.md"
cat <<'EOF'

Notes:
- A is 198.18.0.1 (02:00:00:00:00:01), B is 198.18.0.2 (02:00:00:00:00:02); "A -> B" frames leave
  the capturing interface, "B -> A" frames arrive on it.
- TCP flags are hex (0x02 SYN, 0x12 SYN|ACK, 0x10 ACK, 0x18 PSH|ACK, 0x11 FIN|ACK, 0x14 RST|ACK,
  0x04 RST); sequence numbers are absolute; the window is the raw 16-bit field (not scaled).
- ICMP echo "data bytes" are the bytes after the 8-byte ICMP header (ping's 56 = 8-byte timestamp +
  48 pattern bytes).

## expected.tsv

Tab-separated, UTF-8, one header line, then one line per frame in capture order; an empty field means
"not applicable to this frame". Values come from tshark's dissectors run with IP reassembly off,
absolute TCP sequence numbers, and checksum validation on.

| column | meaning |
|---|---|
| frame | 1-based frame number |
| eth_src, eth_dst | MAC addresses, lower-case `aa:bb:...` |
| ethertype | outer EtherType at bytes 12..14, `0x0800`, `0x0806`, `0x8100` |
| vlan_id | 802.1Q VID (decimal) when tagged |
| ip_src, ip_dst, ip_proto, ip_ttl | IPv4 header, decimal |
| ip_id | identification, decimal |
| ip_total_len | total length field |
| ip_ihl | header length in 32-bit words (5, or 15 with the record-route option) |
| ip_df | DF flag (0/1) |
| ip_checksum | header checksum as sent, `0x%04x` |
| l4_src_port, l4_dst_port | TCP/UDP ports (for an ICMP error, empty: the quoted datagram is not dissected into these columns) |
| tcp_seq, tcp_ack | absolute sequence / acknowledgment numbers (tcp_ack also when the ACK flag is clear: the raw field) |
| tcp_flags | the 8 flag bits (plus AE/reserved above them), `0x%02x` |
| tcp_window | raw window field |
| tcp_options | options in wire order: `mss=N`, `sackOK`, `ts=TSval/TSecr`, `nop`, `eol`, `wscale=shift`, `sack=L-R;L-R` (absolute), `tfo=cookiereq`, `tfo=cookie:HEX` |
| udp_length | UDP length field (header + payload) |
| icmp_type, icmp_code | ICMP header |
| icmp_id, icmp_seq | echo identifier / sequence (big-endian reading), echo request/reply only |
| payload_len | bytes after the L4 header in this frame: TCP after its options, UDP and ICMP after their 8-byte header; for a non-first IP fragment (no L4 header), the IP payload length; empty for ARP |
| frame_len | frame length in bytes |
| inner_ethertype | EtherType after the 802.1Q tag |
| ip_mf, ip_frag_offset | MF flag, fragment offset in bytes |
| ip_options | IPv4 options: `nop`, `eol`, `rr(len=L,ptr=P,addresses...)` |
| tcp_hdr_len | TCP header length in bytes (data offset * 4) |
| l4_checksum | TCP/UDP/ICMP checksum as sent, `0x%04x` |
| ip_checksum_ok, l4_checksum_ok | tshark's verdict: `good`, `bad`, `unverified` (ICMP in the first IP fragment cannot be checked without the second) |
| arp_op, arp_sha, arp_spa, arp_tha, arp_tpa | ARP opcode and sender/target hardware and protocol addresses |
EOF
} >"$OUT_DIR/README.md"

log "wrote $OUT_DIR/{linux-veth.pcap,linux-veth.txt,expected.tsv,README.md}: $nframes frames, $PCAP_BYTES bytes, ${ELAPSED}s"
