//! The byte stream the kernel-interop tests send, in Rust and in Python: byte `i` of a stream
//! is `i mod 251` (a prime, so the pattern never lines up with segment or buffer sizes). A
//! receiver that knows a byte's offset checks it without keeping what was sent.

/// Byte `i` of the stream.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Bytes `start..start + n` of the stream.
pub fn pattern_bytes(start: usize, n: usize) -> Vec<u8> {
    (start..start + n).map(pattern).collect()
}

/// The Python version, `pattern(start, n)` (bytes `start..start + n`), defined at the top of
/// every script that [`super::linux_peer`] runs.
pub const PY_PATTERN: &str = r#"
BLOCK = bytes(range(251)) * 262
def pattern(start, n):
    out = bytearray()
    while n:
        o = start % 251
        k = min(n, len(BLOCK) - o)
        out += BLOCK[o:o + k]
        start += k
        n -= k
    return bytes(out)
"#;
