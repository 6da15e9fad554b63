#!/usr/bin/env python3
"""Writes the seed corpus of the wire fuzz targets from the Linux capture fixture.

Run from anywhere: python3 stack/fuzz/make_seeds.py
Reads stack/tests/fixtures/linux-veth.pcap (frame numbers are those of its README) and writes
stack/fuzz/seeds/<target>/<name>, each file the input format of its target:

  wire_ethernet  a whole frame
  wire_arp       the ARP packet (Ethernet payload)
  wire_ipv4      the IPv4 datagram (Ethernet payload, padding included)
  wire_icmp      the ICMP message (IPv4 payload)
  wire_udp       source and destination IPv4 addresses (8 bytes), then the UDP datagram
  wire_tcp       source and destination IPv4 addresses (8 bytes), then the TCP segment
  wire_tcp_options  the option bytes of a TCP header

The seeds of shard_rx are not made here: they are inputs found by fuzzing it (see README.md).
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PCAP = os.path.join(HERE, "..", "tests", "fixtures", "linux-veth.pcap")
SEEDS = os.path.join(HERE, "seeds")


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = {0xA1B2C3D4: "<", 0xD4C3B2A1: ">", 0xA1B23C4D: "<", 0x4D3CB2A1: ">"}[magic]
    frames, off = [], 24
    while off < len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off : off + 16])
        frames.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


def eth_payload(frame):
    off = 12
    while frame[off : off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    return frame[off + 2 :]


def ip_payload(packet):
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack(">H", packet[2:4])[0]
    return packet[ihl:total]


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    frames = read_pcap(PCAP)
    assert len(frames) == 84, len(frames)
    fr = lambda n: frames[n - 1]  # 1-based, as in the fixture's README
    pad = lambda b: b + bytes(max(0, 60 - len(b)))  # as a NIC delivers short frames

    for n, name in [(1, "arp-request"), (3, "icmp-echo"), (11, "udp"), (17, "tcp-syn"),
                    (71, "vlan-arp"), (73, "vlan-icmp"), (75, "ipv4-options")]:
        write("wire_ethernet", f"{n:02}-{name}", fr(n))
    write("wire_ethernet", "02-arp-reply-padded", pad(fr(2)))

    for n, name in [(1, "request"), (2, "reply"), (71, "vlan-request")]:
        write("wire_arp", f"{n:02}-{name}", eth_payload(fr(n)))
    write("wire_arp", "02-reply-padded", eth_payload(pad(fr(2))))

    for n, name in [(3, "icmp-echo"), (11, "udp"), (12, "icmp-unreachable"), (17, "tcp-syn"),
                    (75, "record-route"), (77, "fragment-first"), (78, "fragment-last")]:
        write("wire_ipv4", f"{n:02}-{name}", eth_payload(fr(n)))
    write("wire_ipv4", "13-udp-empty-padded", eth_payload(pad(fr(13))))

    for n, name in [(3, "echo-request"), (4, "echo-reply"), (9, "echo-1400"),
                    (12, "port-unreachable")]:
        write("wire_icmp", f"{n:02}-{name}", ip_payload(eth_payload(fr(n))))

    for n, name in [(11, "closed-port"), (13, "empty"), (14, "one-byte"), (15, "100-bytes")]:
        ip = eth_payload(fr(n))
        write("wire_udp", f"{n:02}-{name}", ip[12:20] + ip_payload(ip))

    tcp = [(17, "syn"), (18, "syn-ack"), (20, "data-6"), (26, "data-1448"), (37, "rst-no-options"),
           (38, "tfo-cookie-request"), (39, "tfo-cookie"), (46, "tfo-syn-data"), (62, "sack")]
    for n, name in tcp:
        ip = eth_payload(fr(n))
        seg = ip_payload(ip)
        write("wire_tcp", f"{n:02}-{name}", ip[12:20] + seg)
        doff = (seg[12] >> 4) * 4
        if doff > 20:
            write("wire_tcp_options", f"{n:02}-{name}", seg[20:doff])
    # The pre-RFC 7413 Fast Open encoding (kind 254, magic 0xF989, 8-byte cookie), padded.
    write("wire_tcp_options", "exp-fast-open", bytes([254, 12, 0xF9, 0x89]) + bytes(range(8)) + b"\x01\x00")


if __name__ == "__main__":
    main()
