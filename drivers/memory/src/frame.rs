//! Frames of the memory wire: fixed-size buffers owned by one queue's pool.

use shardnet::port::{Frame, RxOffload};

/// A frame buffer of the memory wire.
///
/// It owns its bytes (a buffer allocated when the wire's pool was built), so [`Frame::data`] needs
/// no access to the wire, and moving a frame between the stack and the wire moves a pointer, not
/// the bytes. It remembers which queue's pool it belongs to, and goes back there however it is
/// given back. A frame that is dropped instead of given back (with `release` or `tx_burst`) is
/// lost to its pool, which the pool's statistics show.
#[derive(Debug)]
pub struct MemoryFrame {
    /// The whole buffer; always the wire's frame size.
    pub(crate) buf: Box<[u8]>,
    /// Bytes in use; never above `buf.len()`.
    pub(crate) len: usize,
    /// Index of the queue whose pool this buffer belongs to.
    pub(crate) owner: usize,
    /// Identity of the wire whose pools this buffer belongs to.
    pub(crate) wire: u64,
    /// Whether the wire vouches for the frame's checksums (a wire with checksum offload,
    /// like Linux's loopback: see `ThreadedWireConfig::checksum_offload`).
    pub(crate) checksums_verified: bool,
}

impl MemoryFrame {
    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame holds no bytes (as a freshly allocated transmit frame does).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Frame for MemoryFrame {
    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn set_len(&mut self, len: usize) {
        self.len = len.min(self.buf.len());
    }

    fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    fn rx_offload(&self) -> RxOffload {
        RxOffload {
            ipv4_checksum_good: self.checksums_verified,
            l4_checksum_good: self.checksums_verified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_len_is_clamped_to_the_capacity() {
        let mut frame = MemoryFrame {
            buf: vec![0u8; 64].into_boxed_slice(),
            len: 0,
            owner: 0,
            wire: 0,
            checksums_verified: false,
        };
        assert!(frame.is_empty());
        frame.buffer_mut()[..3].copy_from_slice(b"abc");
        frame.set_len(3);
        assert_eq!(frame.data(), b"abc");
        frame.data_mut()[0] = b'x';
        assert_eq!(frame.data(), b"xbc");
        frame.set_len(1000);
        assert_eq!(frame.len(), 64);
        assert_eq!(frame.capacity(), 64);
        assert_eq!(frame.data().len(), 64);
    }
}
