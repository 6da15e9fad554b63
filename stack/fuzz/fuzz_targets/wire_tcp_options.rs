//! TCP options on arbitrary bytes: `OptionIter`, `TcpOption::parse`/`emit`, `TfoCookie`,
//! `SackBlocks`.
//!
//! Input: a TCP option area (any length, not only the 40 bytes a header allows). Checks: no
//! panic; the iterator ends, after at most one item per byte, and yields an error at most once,
//! last; every option it yields is what `TcpOption::parse` reads at that place, without looking
//! past its own length; an option emits into `buffer_len()` bytes and parses back to itself (the
//! pre-RFC experimental Fast Open encoding comes back as kind 34, as documented).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardnet::wire::Error;
use shardnet::wire::tcp_option::{
    FAST_OPEN_COOKIE_MAX_LEN, FAST_OPEN_COOKIE_MIN_LEN, OptionIter, SackBlock, SackBlocks,
    TcpOption, TfoCookie, kind,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut iter = OptionIter::new(data);
    let mut items = 0;
    while let Some(item) = iter.next() {
        items += 1;
        assert!(items <= data.len());
        let parsed = TcpOption::parse(rest);
        match item {
            Err(e) => {
                assert_eq!(parsed.map(|_| ()), Err(e));
                assert!(e == Error::BadOption);
                assert!(iter.next().is_none(), "an error ends the iteration");
                break;
            }
            Ok(option) => {
                let (o, len) = parsed.expect("the iterator read the same option");
                assert_eq!(o, option);
                assert!(len >= 1 && len <= rest.len());
                // Nothing past the option's own length is looked at.
                assert_eq!(TcpOption::parse(&rest[..len]), Ok((o, len)));
                check_round_trip(&option, &rest[..len]);
                rest = &rest[len..];
                if option == TcpOption::EndOfList {
                    assert!(iter.next().is_none(), "EOL ends the iteration");
                    break;
                }
                assert_eq!(iter.rest(), rest);
            }
        }
    }

    // Cookies: exactly the lengths RFC 7413 allows.
    let cookie = &data[..data.len().min(FAST_OPEN_COOKIE_MAX_LEN + 2)];
    let ok_len = cookie.is_empty()
        || ((FAST_OPEN_COOKIE_MIN_LEN..=FAST_OPEN_COOKIE_MAX_LEN).contains(&cookie.len())
            && cookie.len().is_multiple_of(2));
    match TfoCookie::new(cookie) {
        Ok(c) => {
            assert!(ok_len);
            assert_eq!(c.as_bytes(), cookie);
            assert_eq!(c.is_request(), cookie.is_empty());
        }
        Err(e) => assert!(!ok_len && e == Error::BadOption),
    }

    // SACK blocks: at most four, in order.
    let blocks: Vec<SackBlock> = data
        .chunks_exact(8)
        .map(|c| SackBlock {
            left: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            right: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    match SackBlocks::from_slice(&blocks) {
        Some(b) => assert_eq!(&b[..], &blocks[..]),
        None => assert!(blocks.len() > 4),
    }
});

fn check_round_trip(option: &TcpOption<'_>, wire: &[u8]) {
    let mut buf = vec![0u8; option.buffer_len()];
    let n = option.emit(&mut buf);
    assert_eq!(n, buf.len());
    assert_eq!(buf[0], option.kind());
    let (again, len) = TcpOption::parse(&buf).expect("an emitted option parses");
    assert_eq!(len, n);
    assert_eq!(&again, option);
    // Kind 254 is Fast Open only with the magic 0xF989; otherwise it is an unknown option.
    if wire[0] == kind::EXPERIMENTAL && matches!(option, TcpOption::FastOpenCookie(_)) {
        assert_eq!(wire[2..4], [0xf9, 0x89]);
        assert_eq!(buf[0], kind::FAST_OPEN);
    } else {
        assert_eq!(
            &buf[..],
            wire,
            "emit writes back the bytes it was read from"
        );
    }
}
