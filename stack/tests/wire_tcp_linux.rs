//! TCP segments sent by Linux, parsed by `wire::tcp` and emitted back byte for byte; and a
//! cross-check of `wire::tcp` against etherparse 0.16 in both directions.
//!
//! The fixtures were captured from Linux 6.18 in a throwaway network namespace (`unshare -n`):
//! `lo` with MTU 1500 carrying 198.18.0.1 (server) and 198.18.0.2 (client), default sysctls
//! except `tcp_fastopen=3`, read with an `AF_PACKET` socket. Loopback leaves TCP checksums as
//! `CHECKSUM_PARTIAL` (the pseudo-header sum), so each fixture's checksum field holds the full
//! checksum recomputed over the captured bytes, and the captured partial value is kept next to
//! it. The SACK ACKs are Linux's answers to a raw-socket client that sent data out of order
//! (holes at every other 100 bytes), once with timestamps and once without. The RST|ACK is
//! Linux's answer to a SYN for a closed port (its checksum is computed in full by Linux).
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use etherparse::{TcpHeader, TcpHeaderSlice, TcpOptionElement, TcpOptionReadError, TcpOptions};
use proptest::prelude::*;
use shardnet::wire::tcp::{Flags, HEADER_LEN, Repr, Segment, TcpTimestamp};
use shardnet::wire::tcp_option::{OptionIter, SackBlock, SackBlocks, TcpOption, TfoCookie, kind};
use shardnet::wire::{ChecksumMode, Error, Ipv4Addr};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Client SYN: MSS 1460, SACK-Permitted, Timestamps, NOP, Window Scale 10.
const LINUX_SYN: [u8; 40] = [
    0x9c, 0x40, 0x13, 0x88, 0x00, 0x22, 0xbe, 0x76, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0,
    0x9e, 0xc1, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x2f, 0xcc, 0x83, 0xf5,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
];
/// Server SYN-ACK to `LINUX_SYN`.
const LINUX_SYN_ACK: [u8; 40] = [
    0x13, 0x88, 0x9c, 0x40, 0x8b, 0x65, 0xcd, 0x5a, 0x00, 0x22, 0xbe, 0x77, 0xa0, 0x12, 0xfe, 0x88,
    0x95, 0xc6, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x31, 0xc8, 0x7a, 0xc9,
    0x2f, 0xcc, 0x83, 0xf5, 0x01, 0x03, 0x03, 0x0a,
];
/// Client PSH|ACK with NOP NOP Timestamps and 15 bytes.
const LINUX_DATA: [u8; 47] = [
    0x9c, 0x40, 0x13, 0x88, 0x00, 0x22, 0xbe, 0x77, 0x8b, 0x65, 0xcd, 0x5b, 0x80, 0x18, 0x00, 0x3f,
    0xd6, 0x18, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x2f, 0xcc, 0x83, 0xf5, 0x31, 0xc8, 0x7a, 0xc9,
    0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x73, 0x68, 0x61, 0x72, 0x64, 0x6e, 0x65, 0x74, 0x0a,
];
/// Server ACK: NOP NOP Timestamps, NOP NOP SACK with one block.
const LINUX_SACK_1: [u8; 44] = [
    0x13, 0x88, 0x9c, 0x4a, 0xf5, 0x7b, 0x6d, 0xd3, 0x10, 0x00, 0x00, 0x01, 0xb0, 0x10, 0x00, 0x40,
    0x14, 0xe2, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x12, 0xf6, 0x44, 0x2d, 0x00, 0x00, 0x03, 0xe8,
    0x01, 0x01, 0x05, 0x0a, 0x10, 0x00, 0x00, 0x65, 0x10, 0x00, 0x00, 0xc9,
];
/// Server ACK: NOP NOP Timestamps, NOP NOP SACK with three blocks (Linux's maximum with
/// timestamps; the fourth hole was not reported).
const LINUX_SACK_3: [u8; 60] = [
    0x13, 0x88, 0x9c, 0x4a, 0xf5, 0x7b, 0x6d, 0xd3, 0x10, 0x00, 0x00, 0x01, 0xf0, 0x10, 0x00, 0x40,
    0x8d, 0xb5, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x12, 0xf6, 0x44, 0x2d, 0x00, 0x00, 0x03, 0xe8,
    0x01, 0x01, 0x05, 0x1a, 0x10, 0x00, 0x01, 0xf5, 0x10, 0x00, 0x02, 0x59, 0x10, 0x00, 0x01, 0x2d,
    0x10, 0x00, 0x01, 0x91, 0x10, 0x00, 0x00, 0x65, 0x10, 0x00, 0x00, 0xc9,
];
/// Server SYN-ACK to a SYN without timestamps: MSS, NOP NOP SACK-Permitted, NOP Window Scale.
const LINUX_SYN_ACK_NO_TS: [u8; 32] = [
    0x13, 0x88, 0x9c, 0x4b, 0xa9, 0x20, 0xb5, 0xfb, 0x20, 0x00, 0x00, 0x01, 0x80, 0x12, 0xfa, 0xf0,
    0xb8, 0xf4, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02, 0x01, 0x03, 0x03, 0x0a,
];
/// Server ACK without timestamps: NOP NOP SACK with four blocks.
const LINUX_SACK_4_NO_TS: [u8; 56] = [
    0x13, 0x88, 0x9c, 0x4b, 0xa9, 0x20, 0xb5, 0xfc, 0x20, 0x00, 0x00, 0x01, 0xe0, 0x10, 0x00, 0x3f,
    0x50, 0x1b, 0x00, 0x00, 0x01, 0x01, 0x05, 0x22, 0x20, 0x00, 0x02, 0xbd, 0x20, 0x00, 0x03, 0x21,
    0x20, 0x00, 0x01, 0xf5, 0x20, 0x00, 0x02, 0x59, 0x20, 0x00, 0x01, 0x2d, 0x20, 0x00, 0x01, 0x91,
    0x20, 0x00, 0x00, 0x65, 0x20, 0x00, 0x00, 0xc9,
];
/// Client SYN asking for a Fast Open cookie: ... WS 10, kind 34 len 2, NOP NOP.
const LINUX_TFO_SYN_REQUEST: [u8; 44] = [
    0x9c, 0x42, 0x13, 0x8a, 0xe4, 0x7c, 0xe5, 0x76, 0x00, 0x00, 0x00, 0x00, 0xb0, 0x02, 0xfa, 0xf0,
    0xe3, 0xce, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x5d, 0x0a, 0xd3, 0x43,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a, 0x22, 0x02, 0x01, 0x01,
];
/// Server SYN-ACK granting an 8-byte cookie: ... kind 34 len 10, cookie, NOP NOP.
const LINUX_TFO_SYN_ACK_COOKIE: [u8; 52] = [
    0x13, 0x8a, 0x9c, 0x42, 0x31, 0x00, 0x5f, 0x5f, 0xe4, 0x7c, 0xe5, 0x77, 0xd0, 0x12, 0xfe, 0x88,
    0x6a, 0xfc, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xa6, 0xa8, 0x4d, 0xb8,
    0x5d, 0x0a, 0xd3, 0x43, 0x01, 0x03, 0x03, 0x0a, 0x22, 0x0a, 0x7a, 0x7d, 0xcb, 0x00, 0x19, 0x4d,
    0x71, 0x8d, 0x01, 0x01,
];
/// Client SYN with that cookie and 8 bytes of data.
const LINUX_TFO_SYN_COOKIE_DATA: [u8; 60] = [
    0x9c, 0x43, 0x13, 0x8a, 0x5a, 0xfa, 0x80, 0x2b, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x02, 0xfa, 0xf0,
    0x61, 0xaf, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xbb, 0x17, 0x39, 0x68,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a, 0x22, 0x0a, 0x7a, 0x7d, 0xcb, 0x00, 0x19, 0x4d,
    0x71, 0x8d, 0x01, 0x01, 0x74, 0x66, 0x6f, 0x20, 0x64, 0x61, 0x74, 0x61,
];
/// Server RST|ACK to a SYN for a closed port: no options, sequence number 0.
const LINUX_RST_ACK: [u8; 20] = [
    0x13, 0x89, 0x9c, 0x44, 0x00, 0x00, 0x00, 0x00, 0x2f, 0x4a, 0xd6, 0x23, 0x50, 0x14, 0x00, 0x00,
    0x6e, 0x6d, 0x00, 0x00,
];

const COOKIE: [u8; 8] = [0x7a, 0x7d, 0xcb, 0x00, 0x19, 0x4d, 0x71, 0x8d];

/// One fixture: bytes, addresses, and the checksum field as captured on loopback
/// (`None` where Linux computed the full checksum).
struct Fixture {
    name: &'static str,
    bytes: &'static [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    captured_partial: Option<u16>,
}

const FIXTURES: [Fixture; 11] = [
    Fixture {
        name: "syn",
        bytes: &LINUX_SYN,
        src: CLIENT,
        dst: SERVER,
        captured_partial: Some(0x8c56),
    },
    Fixture {
        name: "syn-ack",
        bytes: &LINUX_SYN_ACK,
        src: SERVER,
        dst: CLIENT,
        captured_partial: Some(0x8c56),
    },
    Fixture {
        name: "data",
        bytes: &LINUX_DATA,
        src: CLIENT,
        dst: SERVER,
        captured_partial: Some(0x8c5d),
    },
    Fixture {
        name: "sack-1",
        bytes: &LINUX_SACK_1,
        src: SERVER,
        dst: CLIENT,
        captured_partial: Some(0x8c5a),
    },
    Fixture {
        name: "sack-3",
        bytes: &LINUX_SACK_3,
        src: SERVER,
        dst: CLIENT,
        captured_partial: Some(0x8c6a),
    },
    Fixture {
        name: "syn-ack-no-ts",
        bytes: &LINUX_SYN_ACK_NO_TS,
        src: SERVER,
        dst: CLIENT,
        captured_partial: Some(0x8c4e),
    },
    Fixture {
        name: "sack-4-no-ts",
        bytes: &LINUX_SACK_4_NO_TS,
        src: SERVER,
        dst: CLIENT,
        captured_partial: Some(0x8c66),
    },
    Fixture {
        name: "tfo-syn-request",
        bytes: &LINUX_TFO_SYN_REQUEST,
        src: CLIENT,
        dst: SERVER,
        captured_partial: Some(0x8c5a),
    },
    Fixture {
        name: "tfo-syn-ack-cookie",
        bytes: &LINUX_TFO_SYN_ACK_COOKIE,
        src: SERVER,
        dst: CLIENT,
        captured_partial: Some(0x8c62),
    },
    Fixture {
        name: "tfo-syn-cookie-data",
        bytes: &LINUX_TFO_SYN_COOKIE_DATA,
        src: CLIENT,
        dst: SERVER,
        captured_partial: Some(0x8c6a),
    },
    Fixture {
        name: "rst-ack",
        bytes: &LINUX_RST_ACK,
        src: SERVER,
        dst: CLIENT,
        captured_partial: None,
    },
];

fn parse(f: &Fixture) -> Repr<'static> {
    let seg = Segment::new_checked(f.bytes).unwrap();
    Repr::parse(&seg, f.src, f.dst, ChecksumMode::Software).unwrap()
}

fn fixture(name: &str) -> &'static Fixture {
    FIXTURES.iter().find(|f| f.name == name).unwrap()
}

fn sack(list: &[(u32, u32)]) -> SackBlocks {
    let v: Vec<SackBlock> = list
        .iter()
        .map(|&(left, right)| SackBlock { left, right })
        .collect();
    SackBlocks::from_slice(&v).unwrap()
}

fn linux_syn_options(tsval: u32, tsecr: u32) -> Repr<'static> {
    Repr {
        max_seg_size: Some(1460),
        sack_permitted: true,
        timestamp: Some(TcpTimestamp { tsval, tsecr }),
        window_scale: Some(10),
        ..Repr::default()
    }
}

#[test]
fn every_linux_fixture_has_a_valid_checksum() {
    for f in &FIXTURES {
        let seg = Segment::new_checked(f.bytes).unwrap();
        assert!(seg.verify_checksum(f.src, f.dst), "{}", f.name);
    }
}

#[test]
fn linux_syn_parses() {
    let repr = parse(fixture("syn"));
    assert_eq!(
        repr,
        Repr {
            src_port: 40000,
            dst_port: 5000,
            seq_number: 0x0022_be76,
            ack_number: None,
            flags: Flags::SYN,
            window_len: 64240,
            ..linux_syn_options(0x2fcc_83f5, 0)
        }
    );
    assert_eq!(repr.segment_len(), 1);
}

#[test]
fn linux_syn_ack_parses() {
    assert_eq!(
        parse(fixture("syn-ack")),
        Repr {
            src_port: 5000,
            dst_port: 40000,
            seq_number: 0x8b65_cd5a,
            ack_number: Some(0x0022_be77),
            flags: Flags::SYN,
            window_len: 65160,
            ..linux_syn_options(0x31c8_7ac9, 0x2fcc_83f5)
        }
    );
}

#[test]
fn linux_data_segment_parses() {
    let repr = parse(fixture("data"));
    assert_eq!(
        repr,
        Repr {
            src_port: 40000,
            dst_port: 5000,
            seq_number: 0x0022_be77,
            ack_number: Some(0x8b65_cd5b),
            flags: Flags::PSH,
            window_len: 63,
            timestamp: Some(TcpTimestamp {
                tsval: 0x2fcc_83f5,
                tsecr: 0x31c8_7ac9
            }),
            payload: b"hello shardnet\n",
            ..Repr::default()
        }
    );
    assert_eq!(repr.segment_len(), 15);
}

#[test]
fn linux_sack_acks_parse_with_most_recent_block_first() {
    let one = parse(fixture("sack-1"));
    assert_eq!(one.flags, Flags::empty());
    assert_eq!(one.ack_number, Some(0x1000_0001));
    assert_eq!(
        one.timestamp,
        Some(TcpTimestamp {
            tsval: 0x12f6_442d,
            tsecr: 1000
        })
    );
    assert_eq!(one.sack_ranges, sack(&[(0x1000_0065, 0x1000_00c9)]));
    let three = parse(fixture("sack-3"));
    assert_eq!(
        three.sack_ranges,
        sack(&[
            (0x1000_01f5, 0x1000_0259),
            (0x1000_012d, 0x1000_0191),
            (0x1000_0065, 0x1000_00c9),
        ])
    );
    let four = parse(fixture("sack-4-no-ts"));
    assert_eq!(four.timestamp, None);
    assert_eq!(
        four.sack_ranges,
        sack(&[
            (0x2000_02bd, 0x2000_0321),
            (0x2000_01f5, 0x2000_0259),
            (0x2000_012d, 0x2000_0191),
            (0x2000_0065, 0x2000_00c9),
        ])
    );
}

#[test]
fn linux_syn_ack_without_timestamps_parses() {
    let repr = parse(fixture("syn-ack-no-ts"));
    assert_eq!(repr.flags, Flags::SYN);
    assert_eq!(repr.ack_number, Some(0x2000_0001));
    assert_eq!(repr.max_seg_size, Some(1460));
    assert!(repr.sack_permitted);
    assert_eq!(repr.window_scale, Some(10));
    assert_eq!(repr.timestamp, None);
}

#[test]
fn linux_fast_open_segments_parse() {
    let request = parse(fixture("tfo-syn-request"));
    assert_eq!(request.flags, Flags::SYN);
    assert_eq!(request.fast_open, Some(TfoCookie::REQUEST));
    assert!(request.payload.is_empty());

    let grant = parse(fixture("tfo-syn-ack-cookie"));
    assert_eq!(grant.ack_number, Some(0xe47c_e577));
    assert_eq!(grant.fast_open, Some(TfoCookie::new(&COOKIE).unwrap()));

    let data = parse(fixture("tfo-syn-cookie-data"));
    assert_eq!(data.fast_open, Some(TfoCookie::new(&COOKIE).unwrap()));
    assert_eq!(data.payload, b"tfo data");
    assert_eq!(data.segment_len(), 9, "SYN plus 8 bytes");
}

#[test]
fn linux_rst_ack_parses() {
    assert_eq!(
        parse(fixture("rst-ack")),
        Repr {
            src_port: 5001,
            dst_port: 40004,
            seq_number: 0,
            ack_number: Some(0x2f4a_d623),
            flags: Flags::RST,
            window_len: 0,
            ..Repr::default()
        }
    );
}

#[test]
fn emit_reproduces_every_linux_segment_byte_for_byte() {
    // Same option order and padding as Linux's tcp_options_write, same checksum.
    for f in &FIXTURES {
        let repr = parse(f);
        assert_eq!(repr.buffer_len(), f.bytes.len(), "{}", f.name);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Segment::new_unchecked(&mut buf[..]),
            f.src,
            f.dst,
            ChecksumMode::Software,
        );
        assert_eq!(buf, f.bytes, "{}", f.name);
    }
}

#[test]
fn offloaded_emit_leaves_the_partial_checksum_linux_leaves() {
    for f in &FIXTURES {
        let Some(partial) = f.captured_partial else {
            continue;
        };
        let repr = parse(f);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Segment::new_unchecked(&mut buf[..]),
            f.src,
            f.dst,
            ChecksumMode::Offloaded,
        );
        let mut expected = f.bytes.to_vec();
        expected[16..18].copy_from_slice(&partial.to_be_bytes());
        assert_eq!(buf, expected, "{}", f.name);
    }
}

#[test]
fn every_proper_prefix_of_a_linux_segment_is_rejected_without_panic() {
    for f in &FIXTURES {
        let header_len = Segment::new_checked(f.bytes).unwrap().header_len();
        for len in 0..f.bytes.len() {
            let prefix = &f.bytes[..len];
            match Segment::new_checked(prefix) {
                Err(e) => {
                    assert!(len < header_len, "{} at {len}", f.name);
                    assert_eq!(e, Error::Truncated, "{} at {len}", f.name);
                }
                Ok(seg) => {
                    // Header intact, payload cut: the checksum catches it.
                    assert!(len >= header_len);
                    assert_eq!(
                        Repr::parse(&seg, f.src, f.dst, ChecksumMode::Software),
                        Err(Error::BadChecksum),
                        "{} at {len}",
                        f.name
                    );
                }
            }
        }
    }
}

#[test]
fn a_single_flipped_bit_in_a_linux_segment_fails_the_checksum() {
    for f in &FIXTURES {
        for bit in 0..f.bytes.len() * 8 {
            let mut v = f.bytes.to_vec();
            v[bit / 8] ^= 1 << (bit % 8);
            let Ok(seg) = Segment::new_checked(&v[..]) else {
                continue; // the data offset changed
            };
            assert!(!seg.verify_checksum(f.src, f.dst), "{} bit {bit}", f.name);
        }
    }
}

// ---- etherparse 0.16 cross-check ----

fn ep_options(bytes: &[u8]) -> Vec<Result<TcpOptionElement, TcpOptionReadError>> {
    TcpHeaderSlice::from_slice(bytes)
        .unwrap()
        .options_iterator()
        .collect()
}

/// Our view of one option, in etherparse's terms. `None` for what etherparse 0.16 does not know
/// (EOL, which it treats as the end; Fast Open and unknown kinds, which it reports as
/// `UnknownId`).
fn as_ep(option: &TcpOption<'_>) -> Option<TcpOptionElement> {
    Some(match option {
        TcpOption::NoOperation => TcpOptionElement::Noop,
        TcpOption::MaxSegmentSize(m) => TcpOptionElement::MaximumSegmentSize(*m),
        TcpOption::WindowScale(s) => TcpOptionElement::WindowScale(*s),
        TcpOption::SackPermitted => TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOption::SackRange(blocks) => {
            let mut rest = [None; 3];
            for (slot, b) in rest.iter_mut().zip(blocks.iter().skip(1)) {
                *slot = Some((b.left, b.right));
            }
            let first = blocks.first()?;
            TcpOptionElement::SelectiveAcknowledgement((first.left, first.right), rest)
        }
        TcpOption::Timestamps { tsval, tsecr } => TcpOptionElement::Timestamp(*tsval, *tsecr),
        TcpOption::EndOfList | TcpOption::FastOpenCookie(_) | TcpOption::Unknown { .. } => {
            return None;
        }
    })
}

/// Both parsers walk the same option bytes; they must agree option by option until either
/// stops or meets something the other does not model.
fn assert_options_agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let seg = Segment::new_checked(bytes).unwrap();
    let ours: Vec<_> = seg.option_iter().collect();
    let theirs = ep_options(bytes);
    for (i, mine) in ours.iter().enumerate() {
        let theirs = theirs.get(i);
        match mine {
            Ok(TcpOption::EndOfList) => {
                prop_assert!(theirs.is_none(), "etherparse stops at EOL");
                break;
            }
            Ok(opt @ (TcpOption::FastOpenCookie(_) | TcpOption::Unknown { .. })) => {
                prop_assert_eq!(
                    theirs,
                    Some(&Err(TcpOptionReadError::UnknownId(
                        bytes[HEADER_LEN + consumed(&ours[..i])]
                    ))),
                    "{:?}",
                    opt
                );
                break;
            }
            Ok(opt) => prop_assert_eq!(theirs, Some(&Ok(as_ep(opt).unwrap()))),
            Err(_) => {
                // We refuse; etherparse refuses too, or (it does not check SACK's upper bound
                // or unknown kinds' lengths) reports an unknown kind.
                prop_assert!(matches!(theirs, Some(Err(_))), "{:?}", theirs);
                break;
            }
        }
    }
    Ok(())
}

/// Bytes taken by the options before index `upto` (all `Ok`, none EOL).
fn consumed(options: &[Result<TcpOption<'_>, Error>]) -> usize {
    options
        .iter()
        .map(|o| o.as_ref().map_or(0, TcpOption::buffer_len))
        .sum()
}

fn arb_repr_parts() -> impl Strategy<Value = (Repr<'static>, Vec<u8>)> {
    (
        (any::<(u16, u16, u32)>(), any::<Option<u32>>(), any::<u16>()),
        (any::<u16>(), any::<u16>()),
        (
            any::<Option<u16>>(),
            proptest::option::of(0u8..=14),
            any::<bool>(),
        ),
        proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
        any::<Option<(u32, u32)>>(),
        proptest::option::of(prop_oneof![Just(0usize), (2usize..=8).prop_map(|n| n * 2)]),
        proptest::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(
            |(
                (ports_seq, ack, bits),
                (window, urgent),
                (mss, ws, sp),
                blocks,
                ts,
                tfo,
                payload,
            )| {
                let repr = Repr {
                    src_port: ports_seq.0,
                    dst_port: ports_seq.1,
                    seq_number: ports_seq.2,
                    ack_number: ack,
                    flags: Flags::from_bits_truncate(bits).difference(Flags::ACK),
                    window_len: window,
                    urgent_at: urgent,
                    max_seg_size: mss,
                    window_scale: ws,
                    sack_permitted: sp,
                    sack_ranges: sack(&blocks),
                    timestamp: ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
                    fast_open: tfo.map(|n| TfoCookie::new(&[0xc0; 16][..n]).unwrap()),
                    payload: &[],
                };
                (repr, payload)
            },
        )
}

fn arb_ep_element() -> impl Strategy<Value = TcpOptionElement> {
    prop_oneof![
        Just(TcpOptionElement::Noop),
        any::<u16>().prop_map(TcpOptionElement::MaximumSegmentSize),
        any::<u8>().prop_map(TcpOptionElement::WindowScale),
        Just(TcpOptionElement::SelectiveAcknowledgementPermitted),
        (
            any::<(u32, u32)>(),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=3)
        )
            .prop_map(|(first, rest)| {
                let mut r = [None; 3];
                for (slot, b) in r.iter_mut().zip(rest) {
                    *slot = Some(b);
                }
                TcpOptionElement::SelectiveAcknowledgement(first, r)
            }),
        any::<(u32, u32)>().prop_map(|(a, b)| TcpOptionElement::Timestamp(a, b)),
    ]
}

proptest! {
    #[test]
    fn etherparse_reads_what_we_emit((repr, payload) in arb_repr_parts()) {
        let repr = Repr { payload: &payload, ..repr };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Segment::new_unchecked(&mut buf[..]), CLIENT, SERVER, ChecksumMode::Software);
        let (h, rest) = TcpHeader::from_slice(&buf).unwrap();
        prop_assert_eq!(rest, &payload[..]);
        prop_assert_eq!(h.source_port, repr.src_port);
        prop_assert_eq!(h.destination_port, repr.dst_port);
        prop_assert_eq!(h.sequence_number, repr.seq_number);
        prop_assert_eq!(h.ack, repr.ack_number.is_some());
        prop_assert_eq!(h.acknowledgment_number, repr.ack_number.unwrap_or(0));
        let f = repr.flags;
        prop_assert_eq!(
            (h.fin, h.syn, h.rst, h.psh, h.urg, h.ece, h.cwr, h.ns),
            (f.fin(), f.syn(), f.rst(), f.psh(), f.urg(), f.ece(), f.cwr(), f.ae())
        );
        prop_assert_eq!(h.window_size, repr.window_len);
        prop_assert_eq!(h.urgent_pointer, repr.urgent_at);
        prop_assert_eq!(h.header_len(), repr.header_len());
        prop_assert_eq!(
            h.calc_checksum_ipv4_raw(CLIENT.octets(), SERVER.octets(), &payload).unwrap(),
            h.checksum
        );
        assert_options_agree(&buf)?;
        // Every option etherparse knows is there, with the values we meant.
        let elements: Vec<TcpOptionElement> = h.options_iterator().filter_map(Result::ok).collect();
        if let Some(m) = repr.max_seg_size {
            prop_assert!(elements.contains(&TcpOptionElement::MaximumSegmentSize(m)));
        }
        if let Some(ts) = repr.timestamp {
            prop_assert!(elements.contains(&TcpOptionElement::Timestamp(ts.tsval, ts.tsecr)));
        }
        if let Some(s) = repr.window_scale {
            prop_assert!(elements.contains(&TcpOptionElement::WindowScale(s)));
        }
        prop_assert_eq!(
            elements.contains(&TcpOptionElement::SelectiveAcknowledgementPermitted),
            repr.sack_permitted
        );
    }

    #[test]
    fn we_read_what_etherparse_writes(
        ports in any::<(u16, u16)>(), seq in any::<u32>(), ack in any::<u32>(),
        bits in any::<u16>(), window in any::<u16>(), urgent in any::<u16>(),
        elements in proptest::collection::vec(arb_ep_element(), 0..6),
        payload in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        let f = Flags::from_bits_truncate(bits);
        let Ok(options) = TcpOptions::try_from_elements(&elements) else {
            return Ok(()); // more than 40 bytes of options
        };
        let mut h = TcpHeader::new(ports.0, ports.1, seq, window);
        h.acknowledgment_number = ack;
        h.urgent_pointer = urgent;
        (h.fin, h.syn, h.rst, h.psh, h.ack, h.urg, h.ece, h.cwr, h.ns) =
            (f.fin(), f.syn(), f.rst(), f.psh(), f.ack(), f.urg(), f.ece(), f.cwr(), f.ae());
        h.options = options;
        h.checksum = h.calc_checksum_ipv4_raw(CLIENT.octets(), SERVER.octets(), &payload).unwrap();
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(&payload);

        let seg = Segment::new_checked(&bytes[..]).unwrap();
        prop_assert!(seg.verify_checksum(CLIENT, SERVER));
        prop_assert_eq!(seg.flags(), f);
        assert_options_agree(&bytes)?;
        let repr = Repr::parse(&seg, CLIENT, SERVER, ChecksumMode::Software).unwrap();
        prop_assert_eq!(repr.src_port, ports.0);
        prop_assert_eq!(repr.dst_port, ports.1);
        prop_assert_eq!(repr.seq_number, seq);
        prop_assert_eq!(repr.ack_number, f.ack().then_some(ack));
        prop_assert_eq!(repr.flags, f.difference(Flags::ACK));
        prop_assert_eq!(repr.window_len, window);
        prop_assert_eq!(repr.urgent_at, urgent);
        prop_assert_eq!(repr.payload, &payload[..]);
        // Last one wins, window scale clamped to 14.
        let last = |pick: fn(&TcpOptionElement) -> Option<u64>| elements.iter().rev().find_map(pick);
        prop_assert_eq!(
            repr.max_seg_size.map(u64::from),
            last(|e| match e { TcpOptionElement::MaximumSegmentSize(m) => Some(u64::from(*m)), _ => None })
        );
        prop_assert_eq!(
            repr.window_scale.map(u64::from),
            last(|e| match e { TcpOptionElement::WindowScale(s) => Some(u64::from((*s).min(14))), _ => None })
        );
        prop_assert_eq!(
            repr.timestamp.map(|t| (u64::from(t.tsval) << 32) | u64::from(t.tsecr)),
            last(|e| match e { TcpOptionElement::Timestamp(a, b) => Some((u64::from(*a) << 32) | u64::from(*b)), _ => None })
        );
        prop_assert_eq!(
            repr.sack_permitted,
            elements.contains(&TcpOptionElement::SelectiveAcknowledgementPermitted)
        );
    }

    #[test]
    fn arbitrary_bytes_are_read_alike(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let ours = Segment::new_checked(&bytes[..]);
        let theirs = TcpHeaderSlice::from_slice(&bytes);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok());
        if let (Ok(seg), Ok(h)) = (ours, theirs) {
            prop_assert_eq!(seg.src_port(), h.source_port());
            prop_assert_eq!(seg.dst_port(), h.destination_port());
            prop_assert_eq!(seg.seq_number(), h.sequence_number());
            prop_assert_eq!(seg.ack_number(), h.acknowledgment_number());
            prop_assert_eq!(seg.header_len(), usize::from(h.data_offset()) * 4);
            prop_assert_eq!(
                (seg.fin(), seg.syn(), seg.rst(), seg.psh(), seg.ack(), seg.urg(), seg.ece(), seg.cwr(), seg.ae()),
                (h.fin(), h.syn(), h.rst(), h.psh(), h.ack(), h.urg(), h.ece(), h.cwr(), h.ns())
            );
            prop_assert_eq!(seg.window_len(), h.window_size());
            prop_assert_eq!(seg.checksum(), h.checksum());
            prop_assert_eq!(seg.urgent_at(), h.urgent_pointer());
            prop_assert_eq!(seg.options(), h.options());
            assert_options_agree(&bytes)?;
        }
    }
}

#[test]
fn experimental_fast_open_kind_254_parses_like_kind_34() {
    // The Linux SYN-ACK above with its cookie re-encoded the pre-RFC way: kind 254, length 12,
    // magic f989, the cookie (no padding needed). Linux accepts this encoding too.
    let mut v = LINUX_TFO_SYN_ACK_COOKIE[..40].to_vec();
    v.extend_from_slice(&[kind::EXPERIMENTAL, 12, 0xf9, 0x89]);
    v.extend_from_slice(&COOKIE);
    v[12] = (v.len() as u8 / 4) << 4;
    let mut seg = Segment::new_unchecked(&mut v[..]);
    seg.fill_checksum(SERVER, CLIENT);
    let seg = Segment::new_checked(&v[..]).unwrap();
    let repr = Repr::parse(&seg, SERVER, CLIENT, ChecksumMode::Software).unwrap();
    assert_eq!(repr.fast_open, Some(TfoCookie::new(&COOKIE).unwrap()));
    assert_eq!(
        OptionIter::new(seg.options()).last(),
        Some(Ok(TcpOption::FastOpenCookie(&COOKIE)))
    );
}
