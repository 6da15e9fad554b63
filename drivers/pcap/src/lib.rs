//! Wraps any shardnet [`Port`] so that every frame received and sent is also written to a pcap
//! file that `tcpdump -r` and Wireshark read.
//!
//! With kernel bypass, `tcpdump -i eth0` no longer sees the traffic: this is how users debug.
//! The capture is a classic pcap file (Ethernet link type, nanosecond timestamps, little endian).
//! Frames are written in the order the stack sees them: received frames as `rx_burst` returns
//! them, transmitted frames as `tx_burst` takes them. Writing costs a copy per frame, so it is a
//! debugging tool, not something to leave on in a benchmark.
//!
//! A failing writer (disk full, ...) never breaks the data path: the frame still moves, the
//! failure is counted and the first error kept for [`PcapPort::take_error`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use shardnet::port::{Batch, Capabilities, Frame, PoolStats, Port};
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where capture timestamps come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock (for real runs).
    System,
    /// A time the caller sets with [`PcapPort::set_time`] (for simulations in virtual time:
    /// the capture then shows virtual time since the epoch).
    Manual(Duration),
}

/// A port whose traffic is copied into a pcap file.
pub struct PcapPort<P: Port, W: Write> {
    inner: P,
    writer: PcapWriter<W>,
    clock: Clock,
    /// Frames at the front of the caller's TX batch already written by an earlier `tx_burst`
    /// that the device did not take (they stay in the batch, per the `Port` contract).
    tx_written_unsent: usize,
    written: u64,
    failures: u64,
    error: Option<pcap_file::PcapError>,
}

impl<P: Port, W: Write> PcapPort<P, W> {
    /// Wraps `inner`, writing the pcap file header to `writer` now.
    pub fn new(inner: P, writer: W, clock: Clock) -> Result<Self, pcap_file::PcapError> {
        let header = PcapHeader {
            snaplen: 65535,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
            ..PcapHeader::default()
        };
        Ok(PcapPort {
            inner,
            writer: PcapWriter::with_header(writer, header)?,
            clock,
            tx_written_unsent: 0,
            written: 0,
            failures: 0,
            error: None,
        })
    }

    /// Sets the capture time (with [`Clock::Manual`]; ignored with [`Clock::System`]).
    pub fn set_time(&mut self, since_epoch: Duration) {
        if let Clock::Manual(t) = &mut self.clock {
            *t = since_epoch;
        }
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutably (e.g. to advance a memory wire's clock).
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Frames written to the capture.
    pub fn frames_written(&self) -> u64 {
        self.written
    }

    /// Frames that could not be written.
    pub fn write_failures(&self) -> u64 {
        self.failures
    }

    /// The first write error, if any, clearing it.
    pub fn take_error(&mut self) -> Option<pcap_file::PcapError> {
        self.error.take()
    }

    /// Ends the capture, returning the port and the writer (flush it if buffered).
    pub fn into_parts(self) -> (P, W) {
        (self.inner, self.writer.into_writer())
    }

    fn timestamp(&self) -> Duration {
        match self.clock {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            Clock::Manual(t) => t,
        }
    }

    fn write(&mut self, ts: Duration, data: &[u8]) {
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let snap = &data[..data.len().min(65535)];
        match self
            .writer
            .write_packet(&PcapPacket::new(ts, orig_len, snap))
        {
            Ok(_) => self.written += 1,
            Err(e) => {
                self.failures += 1;
                self.error.get_or_insert(e);
            }
        }
    }
}

impl<P: Port, W: Write> Port for PcapPort<P, W> {
    type Frame = P::Frame;

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    fn rx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize {
        let before = batch.len();
        let n = self.inner.rx_burst(batch);
        let ts = self.timestamp();
        for frame in &batch[before..] {
            self.write(ts, frame.data());
        }
        n
    }

    fn alloc_tx(&mut self) -> Option<Self::Frame> {
        self.inner.alloc_tx()
    }

    fn tx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize {
        let ts = self.timestamp();
        let skip = self.tx_written_unsent.min(batch.len());
        for frame in &batch[skip..] {
            self.write(ts, frame.data());
        }
        let sent = self.inner.tx_burst(batch);
        self.tx_written_unsent = batch.len();
        sent
    }

    fn release(&mut self, frame: Self::Frame) {
        self.inner.release(frame);
    }

    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }

    /// Capturing changes nothing about when frames arrive: the wrapped port's waker serves.
    fn set_rx_waker(&mut self, thread: std::thread::Thread) -> bool {
        self.inner.set_rx_waker(thread)
    }

    fn arm_rx_waker(&mut self) -> bool {
        self.inner.arm_rx_waker()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;
    use shardnet::port::ChecksumOffload;
    use shardnet::wire::EthernetAddress;

    /// A port whose "device" is two vectors, with a TX ring of `ring` frames.
    struct FakePort {
        caps: Capabilities,
        rx: Vec<Vec<u8>>,
        wire: Vec<Vec<u8>>,
        ring: usize,
        free: usize,
    }

    struct FakeFrame(Vec<u8>, usize);

    impl Frame for FakeFrame {
        fn data(&self) -> &[u8] {
            &self.0[..self.1]
        }
        fn data_mut(&mut self) -> &mut [u8] {
            &mut self.0[..self.1]
        }
        fn capacity(&self) -> usize {
            self.0.len()
        }
        fn set_len(&mut self, len: usize) {
            self.1 = len.min(self.0.len());
        }
        fn buffer_mut(&mut self) -> &mut [u8] {
            &mut self.0
        }
    }

    impl Port for FakePort {
        type Frame = FakeFrame;
        fn capabilities(&self) -> &Capabilities {
            &self.caps
        }
        fn rx_burst(&mut self, batch: &mut Batch<FakeFrame>) -> usize {
            let n = self.rx.len().min(batch.remaining_capacity());
            for data in self.rx.drain(..n) {
                let len = data.len();
                batch.push(FakeFrame(data, len));
                self.free -= 1;
            }
            n
        }
        fn alloc_tx(&mut self) -> Option<FakeFrame> {
            self.free = self.free.checked_sub(1)?;
            Some(FakeFrame(vec![0; 2048], 0))
        }
        fn tx_burst(&mut self, batch: &mut Batch<FakeFrame>) -> usize {
            let n = batch.len().min(self.ring);
            for f in batch.drain(..n) {
                self.wire.push(f.data().to_vec());
                self.free += 1;
            }
            self.ring -= n;
            n
        }
        fn release(&mut self, _frame: FakeFrame) {
            self.free += 1;
        }
        fn pool_stats(&self) -> PoolStats {
            PoolStats {
                total: 64,
                free: self.free,
            }
        }
    }

    fn fake(rx: Vec<Vec<u8>>, ring: usize) -> FakePort {
        FakePort {
            caps: Capabilities {
                mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
                mtu: 1500,
                queue: 0,
                queue_count: 1,
                rss: None,
                checksum: ChecksumOffload::default(),
                pool_size: 64,
            },
            rx,
            wire: Vec::new(),
            ring,
            free: 64,
        }
    }

    fn read_back(bytes: &[u8]) -> Vec<(Duration, Vec<u8>)> {
        let mut reader = PcapReader::new(bytes).unwrap();
        assert_eq!(reader.header().datalink, DataLink::ETHERNET);
        let mut out = Vec::new();
        while let Some(p) = reader.next_packet() {
            let p = p.unwrap();
            out.push((p.timestamp, p.data.to_vec()));
        }
        out
    }

    #[test]
    fn received_and_sent_frames_are_captured_in_order_with_their_times() {
        let mut port = PcapPort::new(
            fake(vec![vec![1; 60], vec![2; 70]], 8),
            Vec::new(),
            Clock::Manual(Duration::ZERO),
        )
        .unwrap();
        port.set_time(Duration::from_millis(1500));
        let mut rx = Batch::new();
        assert_eq!(port.rx_burst(&mut rx), 2);
        for f in rx.drain(..) {
            port.release(f);
        }
        port.set_time(Duration::from_millis(2000));
        let mut tx = Batch::new();
        let mut f = port.alloc_tx().unwrap();
        f.buffer_mut()[..3].copy_from_slice(&[9, 9, 9]);
        f.set_len(3);
        tx.push(f);
        assert_eq!(port.tx_burst(&mut tx), 1);
        assert_eq!(port.frames_written(), 3);
        let (inner, bytes) = port.into_parts();
        assert_eq!(inner.wire, vec![vec![9, 9, 9]]);
        let frames = read_back(&bytes);
        assert_eq!(
            frames,
            vec![
                (Duration::from_millis(1500), vec![1; 60]),
                (Duration::from_millis(1500), vec![2; 70]),
                (Duration::from_millis(2000), vec![9, 9, 9]),
            ]
        );
    }

    #[test]
    fn frames_left_in_the_batch_by_a_full_ring_are_captured_once() {
        let mut port = PcapPort::new(
            fake(Vec::new(), 1),
            Vec::new(),
            Clock::Manual(Duration::ZERO),
        )
        .unwrap();
        let mut tx = Batch::new();
        for i in 0..3u8 {
            let mut f = port.alloc_tx().unwrap();
            f.buffer_mut()[0] = i;
            f.set_len(1);
            tx.push(f);
        }
        assert_eq!(port.tx_burst(&mut tx), 1);
        assert_eq!(tx.len(), 2);
        port.inner_mut().ring = 10;
        assert_eq!(port.tx_burst(&mut tx), 2);
        let (_, bytes) = port.into_parts();
        let data: Vec<Vec<u8>> = read_back(&bytes).into_iter().map(|(_, d)| d).collect();
        assert_eq!(data, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn a_failing_writer_does_not_stop_the_traffic() {
        /// Takes `.0` more bytes, then fails.
        struct Broken(usize);
        impl Write for Broken {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(std::io::Error::other("disk full"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // Room for the 24-byte file header only: every packet write fails.
        let mut port =
            PcapPort::new(fake(vec![vec![1; 60]], 8), Broken(24), Clock::System).unwrap();
        let mut rx = Batch::new();
        assert_eq!(port.rx_burst(&mut rx), 1);
        assert_eq!(port.write_failures(), 1);
        assert!(port.take_error().is_some());
        assert_eq!(rx.len(), 1, "the frame still reaches the stack");
    }
}
