//! Shared helpers for integration tests: the committed Linux capture
//! (`tests/fixtures/linux-veth.pcap`) and its tshark-made index (`tests/fixtures/expected.tsv`).
//!
//! The loaders check the files themselves (link type, no truncated frame, one row per frame, in
//! order) so that a test reading frame `n` is sure to get the frame the README describes as `n`.
#![allow(dead_code)] // each test crate that includes this module uses a different part of it
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use std::collections::HashMap;
use std::path::PathBuf;

/// The number of frames in the committed capture (README: "84 frames").
pub const FRAME_COUNT: usize = 84;

/// One frame of the capture.
#[derive(Debug, Clone)]
pub struct LinuxFrame {
    /// 1-based frame number, the order in the file (the README's `#` and expected.tsv's `frame`).
    pub number: usize,
    /// The whole Ethernet frame (no FCS).
    pub bytes: Vec<u8>,
}

/// One row of expected.tsv: column name to value, an empty value meaning "not applicable".
#[derive(Debug, Clone)]
pub struct ExpectedRow {
    /// The frame number this row describes.
    pub number: usize,
    fields: HashMap<String, String>,
    /// Column names in file order (for reporting).
    columns: Vec<String>,
}

impl ExpectedRow {
    /// The value of `column`, or `None` when it is empty (not applicable to this frame).
    ///
    /// Panics on a column name that is not in the header: a typo in a test must not read as
    /// "not applicable".
    pub fn get(&self, column: &str) -> Option<&str> {
        let value = self
            .fields
            .get(column)
            .unwrap_or_else(|| panic!("expected.tsv has no column {column:?}"));
        if value.is_empty() {
            None
        } else {
            Some(value.as_str())
        }
    }

    /// The value of `column` as a number (decimal, or hex with a `0x` prefix); `None` if empty.
    pub fn number(&self, column: &str) -> Option<u64> {
        self.get(column).map(|v| {
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("frame {}: column {column} = {v:?}: {e}", self.number))
        })
    }

    /// The names of the non-empty columns of this row, in file order.
    pub fn non_empty_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| !self.fields[c.as_str()].is_empty())
            .map(String::as_str)
            .collect()
    }
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Reads every frame of `linux-veth.pcap`, checking that it is an Ethernet capture with no
/// frame cut short by the snap length.
pub fn linux_frames() -> Vec<LinuxFrame> {
    let file = std::fs::read(fixture_path("linux-veth.pcap")).unwrap();
    let mut reader = PcapReader::new(&file[..]).unwrap();
    assert_eq!(reader.header().datalink, DataLink::ETHERNET);
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        let number = frames.len() + 1;
        assert_eq!(
            usize::try_from(packet.orig_len).unwrap(),
            packet.data.len(),
            "frame {number} was truncated by the capture"
        );
        frames.push(LinuxFrame {
            number,
            bytes: packet.data.into_owned(),
        });
    }
    assert_eq!(frames.len(), FRAME_COUNT);
    frames
}

/// Reads `expected.tsv`: one row per frame, in frame order.
pub fn expected_rows() -> Vec<ExpectedRow> {
    let text = std::fs::read_to_string(fixture_path("expected.tsv")).unwrap();
    let mut lines = text.lines();
    let columns: Vec<String> = lines
        .next()
        .unwrap()
        .split('\t')
        .map(str::to_owned)
        .collect();
    assert_eq!(columns[0], "frame");
    let rows: Vec<ExpectedRow> = lines
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(
                values.len(),
                columns.len(),
                "expected.tsv line {} has {} fields",
                i + 2,
                values.len()
            );
            let fields: HashMap<String, String> = columns
                .iter()
                .cloned()
                .zip(values.iter().map(|v| (*v).to_owned()))
                .collect();
            let number: usize = fields["frame"].parse().unwrap();
            assert_eq!(number, i + 1, "expected.tsv rows are in frame order");
            ExpectedRow {
                number,
                fields,
                columns: columns.clone(),
            }
        })
        .collect();
    assert_eq!(rows.len(), FRAME_COUNT);
    rows
}

/// Every frame with its expected.tsv row.
pub fn linux_frames_with_rows() -> Vec<(LinuxFrame, ExpectedRow)> {
    linux_frames().into_iter().zip(expected_rows()).collect()
}

/// Frame `number` (1-based).
pub fn linux_frame(number: usize) -> LinuxFrame {
    linux_frames().swap_remove(number - 1)
}

/// The row of frame `number` (1-based).
pub fn expected_row(number: usize) -> ExpectedRow {
    expected_rows().swap_remove(number - 1)
}
