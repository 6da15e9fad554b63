//! ICMP view and `Repr` on arbitrary bytes.
//!
//! Input: the ICMP message (the IPv4 payload). Checks: no panic; `Repr::parse` with `Software`
//! fails with `BadChecksum` exactly when the checksum does not verify; echo messages always
//! parse, destination unreachable needs a 28-byte quote, other types are `Unsupported`; a parsed
//! `Repr` emits into `buffer_len()` bytes and parses back to itself (both checksum modes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardnet::wire::icmp::{DstUnreachable, HEADER_LEN, MIN_INVOKING_LEN, Message, Packet, Repr};
use shardnet::wire::{ChecksumMode, Error};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(data.len() < HEADER_LEN);
        return;
    };
    let msg = packet.msg_type();
    let code = packet.code();
    let _ = (
        packet.checksum(),
        packet.echo_ident(),
        packet.echo_seq_no(),
        packet.next_hop_mtu(),
    );
    assert_eq!(packet.data(), &data[HEADER_LEN..]);
    let verifies = packet.verify_checksum();

    for mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
        let parsed = Repr::parse(&packet, mode);
        if mode == ChecksumMode::Software && !verifies {
            assert_eq!(parsed, Err(Error::BadChecksum));
            continue;
        }
        let repr = match (msg, parsed) {
            (Message::EchoRequest | Message::EchoReply, Ok(r)) => r,
            (Message::DstUnreachable, Ok(r)) => {
                assert!(packet.data().len() >= MIN_INVOKING_LEN);
                r
            }
            (Message::DstUnreachable, Err(e)) => {
                assert!(packet.data().len() < MIN_INVOKING_LEN);
                assert_eq!(e, Error::Truncated);
                continue;
            }
            (Message::TimeExceeded | Message::Unknown(_), Err(e)) => {
                assert_eq!(e, Error::Unsupported);
                continue;
            }
            (m, r) => panic!("{m:?} parsed as {r:?}"),
        };
        match repr {
            Repr::EchoRequest {
                ident,
                seq_no,
                data: d,
            }
            | Repr::EchoReply {
                ident,
                seq_no,
                data: d,
            } => {
                assert_eq!((ident, seq_no), (packet.echo_ident(), packet.echo_seq_no()));
                assert_eq!(d, packet.data());
            }
            Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                invoking,
            } => {
                assert_eq!(u8::from(reason), code);
                let want = if reason == DstUnreachable::FragRequired {
                    packet.next_hop_mtu()
                } else {
                    0
                };
                assert_eq!(next_hop_mtu, want);
                assert_eq!(invoking, packet.data());
            }
        }
        assert_eq!(repr.buffer_len(), data.len());
        for emit_mode in [ChecksumMode::Software, ChecksumMode::Offloaded] {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), emit_mode);
            let again = Packet::new_checked(&buf[..]).expect("emitted message is checked");
            if emit_mode == ChecksumMode::Software {
                assert!(again.verify_checksum());
            } else {
                assert_eq!(again.checksum(), 0);
            }
            assert_eq!(Repr::parse(&again, emit_mode), Ok(repr));
        }
    }

    // Setters on a copy never panic, and `fill_checksum` makes the message verify.
    let mut copy = data.to_vec();
    let mut p = Packet::new_checked(&mut copy[..]).expect("same bytes");
    p.set_code(code.wrapping_add(1));
    p.set_next_hop_mtu(1280);
    p.data_mut().reverse();
    p.fill_checksum();
    assert!(p.verify_checksum());
});
