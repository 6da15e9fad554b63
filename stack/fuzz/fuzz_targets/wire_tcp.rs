//! TCP segment view and `Repr` on arbitrary bytes, checksum with the IPv4 pseudo-header included.
//!
//! Input: 4 bytes of source address, 4 bytes of destination address (the pseudo-header), then
//! the TCP segment (the IPv4 payload). Checks: no panic in `new_checked`, any getter, the option
//! iterator or a setter; `Repr::parse` fails with `BadChecksum` (software mode) exactly when the
//! checksum does not verify, and otherwise with `BadOption` exactly when an option is malformed;
//! a parsed `Repr` emits into `buffer_len()` bytes (both checksum modes; the offloaded one
//! completed as a NIC does) and parses back to itself, minus the SACK blocks that
//! `sack_blocks_emitted` says do not fit; emitting that again gives the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardnet::wire::checksum::Checksum;
use shardnet::wire::tcp::{Flags, HEADER_LEN, MAX_HEADER_LEN, Repr, Segment};
use shardnet::wire::{ChecksumMode, Error, Ipv4Addr};

fn emit(repr: &Repr<'_>, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Segment::new_unchecked(&mut buf[..]), src, dst, mode);
    if mode == ChecksumMode::Offloaded {
        // What a NIC with partial checksum offload does: sum from the TCP header on, starting
        // from the pseudo-header sum left in the field, and store the complement.
        let c = !Checksum::new().add_bytes(&buf).sum();
        Segment::new_unchecked(&mut buf[..]).set_checksum(c);
    }
    buf
}

fuzz_target!(|input: &[u8]| {
    let Some((addrs, data)) = input.split_first_chunk::<8>() else {
        return;
    };
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    let Ok(segment) = Segment::new_checked(data) else {
        return;
    };
    let header_len = segment.header_len();
    assert!((HEADER_LEN..=MAX_HEADER_LEN).contains(&header_len) && header_len <= data.len());
    assert_eq!(segment.options(), &data[HEADER_LEN..header_len]);
    assert_eq!(segment.payload(), &data[header_len..]);
    let flags = segment.flags();
    assert_eq!(flags.bits() & !0x1ff, 0);
    assert_eq!(
        (segment.syn(), segment.ack(), segment.fin(), segment.rst()),
        (flags.syn(), flags.ack(), flags.fin(), flags.rst())
    );
    let _ = (
        segment.psh(),
        segment.urg(),
        segment.ece(),
        segment.cwr(),
        segment.ae(),
    );
    let _ = (segment.src_port(), segment.dst_port(), segment.seq_number());
    let _ = (
        segment.ack_number(),
        segment.window_len(),
        segment.checksum(),
    );
    let _ = (segment.urgent_at(), format!("{flags:?}"));
    let bad_option = segment.option_iter().any(|o| o.is_err());
    let verifies = segment.verify_checksum(src, dst);

    for mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
        let repr = match Repr::parse(&segment, src, dst, mode) {
            Ok(r) => r,
            Err(Error::BadChecksum) => {
                assert!(mode == ChecksumMode::Software && !verifies);
                continue;
            }
            Err(e) => {
                assert_eq!(e, Error::BadOption);
                assert!(bad_option);
                continue;
            }
        };
        assert!(!bad_option && (verifies || mode == ChecksumMode::Offloaded));
        assert_eq!(repr.ack_number.is_some(), segment.ack());
        assert!(!repr.flags.ack());
        assert_eq!(repr.flags | Flags::ACK, flags | Flags::ACK);
        assert_eq!(repr.payload, segment.payload());
        assert!(repr.window_scale.is_none_or(|s| s <= 14));
        assert!(repr.options_len() <= 40 && repr.options_len() % 4 == 0);
        assert_eq!(
            repr.segment_len(),
            repr.payload.len() + usize::from(flags.syn()) + usize::from(flags.fin())
        );

        let mut expected = repr;
        expected.sack_ranges.truncate(repr.sack_blocks_emitted());
        let mut first = None;
        for emit_mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
            let buf = emit(&repr, src, dst, emit_mode);
            let again = Segment::new_checked(&buf[..]).expect("emitted segment is checked");
            assert_eq!(again.header_len(), repr.header_len());
            assert!(again.verify_checksum(src, dst));
            let reparsed = Repr::parse(&again, src, dst, ChecksumMode::Software)
                .expect("emitted segment parses");
            assert_eq!(reparsed, expected);
            // The emitted form is canonical: emitting what was read back gives the same bytes.
            assert_eq!(emit(&reparsed, src, dst, emit_mode), buf);
            match &first {
                None => first = Some(buf),
                Some(f) => assert_eq!(f, &buf, "the NIC's checksum equals ours"),
            }
        }
    }

    // Setters on a copy never panic, and `fill_checksum` makes the segment verify.
    let mut copy = data.to_vec();
    let mut s = Segment::new_checked(&mut copy[..]).expect("same bytes");
    s.set_flags(flags | Flags::ACK);
    s.set_window_len(0);
    s.options_mut().fill(1);
    s.payload_mut().reverse();
    s.fill_checksum(src, dst);
    assert!(s.verify_checksum(src, dst));
    assert_eq!(s.header_len(), header_len);
});
