//! Byte fixtures over real Linux traffic: every frame of `tests/fixtures/linux-veth.pcap` (Linux
//! 6.18 on both ends of a veth pair, see `tests/fixtures/README.md`) is parsed by shardnet's wire
//! views and compared with what tshark's dissectors saw (`tests/fixtures/expected.tsv`), field by
//! field; the parsed `Repr`s are emitted back and compared with Linux's bytes; and every proper
//! prefix of every frame is fed to the parsers, which must reject it without panicking.
//!
//! expected.tsv is produced by tshark, not by us, so a field that agrees here is a field that
//! two independent parsers read the same way from bytes neither of them wrote.
#![allow(clippy::unwrap_used)] // house rule: tests may unwrap

mod common;

use common::{ExpectedRow, LinuxFrame, linux_frame, linux_frames, linux_frames_with_rows};
use shardnet::wire::{
    ChecksumMode, Error, Ipv4Addr, arp, checksum,
    ethernet::{self, EtherType},
    icmp, ipv4,
    tcp::{self, Flags},
    tcp_option::{SackBlock, TcpOption},
    udp,
};
use std::collections::BTreeSet;
use std::fmt::Display;

// ---------------------------------------------------------------------------------------------
// Dissection: our views, layer by layer, as the shard's receive path uses them.
// ---------------------------------------------------------------------------------------------

/// The layer at which a dissection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Ethernet,
    Arp,
    Ipv4,
    Icmp,
    Udp,
    Tcp,
}

/// Why a dissection stopped: the layer and the parser's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    layer: Layer,
    error: Error,
}

fn at(layer: Layer) -> impl Fn(Error) -> Failure {
    move |error| Failure { layer, error }
}

/// A frame as far down as our parsers take it.
#[derive(Debug)]
struct Dissection<'a> {
    eth: ethernet::Frame<&'a [u8]>,
    eth_repr: ethernet::Repr,
    l3: L3<'a>,
}

#[derive(Debug)]
enum L3<'a> {
    Arp {
        packet: arp::Packet<&'a [u8]>,
        repr: arp::Repr,
    },
    Ipv4 {
        packet: ipv4::Packet<&'a [u8]>,
        repr: ipv4::Repr,
        l4: L4<'a>,
    },
}

#[derive(Debug)]
enum L4<'a> {
    Icmp {
        packet: icmp::Packet<&'a [u8]>,
        repr: icmp::Repr<'a>,
        /// False for the first fragment of a fragmented message: the ICMP checksum covers the
        /// whole reassembled message, so it cannot be verified from one fragment and was not.
        checksum_verified: bool,
    },
    Udp {
        packet: udp::Packet<&'a [u8]>,
        repr: udp::Repr,
    },
    Tcp {
        segment: tcp::Segment<&'a [u8]>,
        repr: tcp::Repr<'a>,
    },
    /// A fragment with a non-zero offset: it holds no transport header, only payload bytes.
    LaterFragment { payload: &'a [u8] },
}

/// Re-borrows `part`, a sub-slice of `whole` returned by a view accessor (whose lifetime is tied
/// to the view), with the lifetime of `whole`. Lets the dissection keep using the views' own
/// `payload()` accessors, which are part of what is under test, instead of slicing by hand.
fn rebase<'a>(whole: &'a [u8], part: &[u8]) -> &'a [u8] {
    let start = (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .expect("a view returned a slice that is not inside its buffer");
    assert!(
        start + part.len() <= whole.len(),
        "a view returned a slice past the end of its buffer"
    );
    &whole[start..start + part.len()]
}

/// Parses a whole frame with our views, all checksums verified in software except where a
/// checksum cannot be verified from the frame alone (ICMP in a first fragment).
fn dissect(bytes: &[u8]) -> Result<Dissection<'_>, Failure> {
    let eth = ethernet::Frame::new_checked(bytes).map_err(at(Layer::Ethernet))?;
    let eth_repr = ethernet::Repr::parse(&eth).map_err(at(Layer::Ethernet))?;
    let l3_bytes = rebase(bytes, eth.payload());
    let l3 = match eth_repr.ethertype {
        EtherType::Arp => {
            let packet = arp::Packet::new_checked(l3_bytes).map_err(at(Layer::Arp))?;
            let repr = arp::Repr::parse(&packet).map_err(at(Layer::Arp))?;
            L3::Arp { packet, repr }
        }
        EtherType::Ipv4 => {
            let packet = ipv4::Packet::new_checked(l3_bytes).map_err(at(Layer::Ipv4))?;
            let repr =
                ipv4::Repr::parse(&packet, ChecksumMode::Software).map_err(at(Layer::Ipv4))?;
            let l4_bytes = rebase(l3_bytes, packet.payload());
            let l4 = dissect_l4(&packet, &repr, l4_bytes)?;
            L3::Ipv4 { packet, repr, l4 }
        }
        _ => {
            return Err(Failure {
                layer: Layer::Ethernet,
                error: Error::Unsupported,
            });
        }
    };
    Ok(Dissection { eth, eth_repr, l3 })
}

fn dissect_l4<'a>(
    ip: &ipv4::Packet<&'a [u8]>,
    ip_repr: &ipv4::Repr,
    bytes: &'a [u8],
) -> Result<L4<'a>, Failure> {
    if ip.frag_offset() != 0 {
        return Ok(L4::LaterFragment { payload: bytes });
    }
    match ip_repr.protocol {
        ipv4::Protocol::Icmp => {
            let packet = icmp::Packet::new_checked(bytes).map_err(at(Layer::Icmp))?;
            // RFC 792: the checksum covers the whole ICMP message; a first fragment (MF set,
            // offset 0) holds only the start of it.
            let checksum_verified = !ip.more_frags();
            let mode = if checksum_verified {
                ChecksumMode::Software
            } else {
                ChecksumMode::Offloaded
            };
            let repr = icmp::Repr::parse(&packet, mode).map_err(at(Layer::Icmp))?;
            Ok(L4::Icmp {
                packet,
                repr,
                checksum_verified,
            })
        }
        ipv4::Protocol::Udp if !ip.is_fragment() => {
            let packet = udp::Packet::new_checked(bytes).map_err(at(Layer::Udp))?;
            let repr = udp::Repr::parse(
                &packet,
                ip_repr.src_addr,
                ip_repr.dst_addr,
                ChecksumMode::Software,
            )
            .map_err(at(Layer::Udp))?;
            Ok(L4::Udp { packet, repr })
        }
        ipv4::Protocol::Tcp if !ip.is_fragment() => {
            let segment = tcp::Segment::new_checked(bytes).map_err(at(Layer::Tcp))?;
            let repr = tcp::Repr::parse(
                &segment,
                ip_repr.src_addr,
                ip_repr.dst_addr,
                ChecksumMode::Software,
            )
            .map_err(at(Layer::Tcp))?;
            Ok(L4::Tcp { segment, repr })
        }
        // The capture holds no other protocol and no fragmented UDP or TCP.
        _ => Err(Failure {
            layer: Layer::Ipv4,
            error: Error::Unsupported,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison with expected.tsv.
// ---------------------------------------------------------------------------------------------

/// Compares our values with one expected.tsv row and records which columns were compared.
struct Checker<'r> {
    row: &'r ExpectedRow,
    compared: BTreeSet<&'static str>,
    mismatches: Vec<String>,
}

impl<'r> Checker<'r> {
    fn new(row: &'r ExpectedRow) -> Self {
        Checker {
            row,
            compared: BTreeSet::from(["frame"]),
            mismatches: Vec::new(),
        }
    }

    /// Our value of `column`, rendered as tshark renders it, must equal the row's. The row must
    /// have a value: a layer we parse that tshark did not see is a mismatch too.
    fn check(&mut self, column: &'static str, ours: impl Display) {
        self.compared.insert(column);
        let ours = ours.to_string();
        match self.row.get(column) {
            Some(theirs) if theirs == ours => {}
            Some(theirs) => self
                .mismatches
                .push(format!("{column}: tshark {theirs:?}, shardnet {ours:?}")),
            None => self
                .mismatches
                .push(format!("{column}: tshark has no value, shardnet {ours:?}")),
        }
    }

    /// We found nothing for `column` (e.g. no TCP options): tshark must not have either.
    fn check_absent(&mut self, column: &'static str) {
        self.compared.insert(column);
        if let Some(theirs) = self.row.get(column) {
            self.mismatches.push(format!(
                "{column}: tshark {theirs:?}, shardnet found nothing"
            ));
        }
    }

    /// A checksum verdict column (`good`/`bad`/`unverified`); `None` means we did not verify.
    fn check_verdict(&mut self, column: &'static str, verified: Option<bool>) {
        let ours = match verified {
            Some(true) => "good",
            Some(false) => "bad",
            None => "unverified",
        };
        self.check(column, ours);
    }

    /// A finding that is not a column comparison.
    fn fail(&mut self, what: String) {
        self.mismatches.push(what);
    }

    /// All mismatches, plus every non-empty column that nothing compared: no field of
    /// expected.tsv is silently skipped.
    fn finish(mut self) -> Vec<String> {
        for column in self.row.non_empty_columns() {
            if !self.compared.contains(column) {
                self.mismatches.push(format!(
                    "{column} = {:?} was not compared",
                    self.row.get(column).unwrap_or_default()
                ));
            }
        }
        self.mismatches
    }
}

fn hex16(v: u16) -> String {
    format!("{v:#06x}")
}

fn flag(on: bool) -> u8 {
    u8::from(on)
}

/// Renders IPv4 options the way expected.tsv writes them (`nop`, `eol`,
/// `rr(len=L,ptr=P,addr addr ...)`), decoding the bytes our view returns from `options()`.
/// Only the options in the capture are decoded by name; anything else renders as `opt<type>`.
fn render_ipv4_options(options: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            // RFC 791 3.1: End of Option List, "used at the end of all options".
            0 => {
                out.push("eol".to_owned());
                break;
            }
            1 => {
                out.push("nop".to_owned());
                i += 1;
            }
            _ => {
                let len = usize::from(*options.get(i + 1).unwrap_or(&0));
                let Some(body) = options.get(i..i + len).filter(|_| len >= 2) else {
                    out.push(format!("malformed(type={kind})"));
                    break;
                };
                if kind == 7 && len >= 3 {
                    // RFC 791 3.1 Record Route: type 7, length, pointer (1-based offset of the
                    // next free slot, starting at 4), then the recorded addresses.
                    let ptr = usize::from(body[2]);
                    let recorded = ptr.saturating_sub(4) / 4;
                    let addrs: Vec<String> = body[3..]
                        .chunks_exact(4)
                        .take(recorded)
                        .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string())
                        .collect();
                    out.push(format!("rr(len={len},ptr={ptr},{})", addrs.join(" ")));
                } else {
                    out.push(format!("opt{kind}"));
                }
                i += len;
            }
        }
    }
    out.join(",")
}

/// Compares the dissection of one frame with its expected.tsv row; returns the mismatches.
fn compare_with_tshark(frame: &LinuxFrame, row: &ExpectedRow) -> Vec<String> {
    let mut c = Checker::new(row);
    c.check("frame_len", frame.bytes.len());
    let d = match dissect(&frame.bytes) {
        Ok(d) => d,
        Err(failure) => {
            c.fail(format!("our parsers rejected the frame: {failure:?}"));
            return c.mismatches;
        }
    };

    // Ethernet.
    c.check("eth_src", d.eth_repr.src_addr);
    c.check("eth_dst", d.eth_repr.dst_addr);
    let inner = hex16(u16::from(d.eth_repr.ethertype));
    match d.eth.vlan_id() {
        None => {
            c.check("ethertype", &inner);
            if d.eth.header_len() != ethernet::HEADER_LEN {
                c.fail(format!("untagged header_len {}", d.eth.header_len()));
            }
        }
        Some(vid) => {
            // The view reports the inner EtherType and the VID; the outer EtherType (the TPID)
            // is what sits at bytes 12..14, and the view must have skipped exactly one tag.
            let tpid = u16::from_be_bytes([frame.bytes[12], frame.bytes[13]]);
            if EtherType::from(tpid) != EtherType::Vlan {
                c.fail(format!("tagged frame with TPID {tpid:#06x}"));
            }
            c.check("ethertype", hex16(tpid));
            c.check("vlan_id", vid);
            c.check("inner_ethertype", &inner);
            if d.eth.header_len() != ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN {
                c.fail(format!("tagged header_len {}", d.eth.header_len()));
            }
        }
    }

    match &d.l3 {
        L3::Arp { packet, repr } => {
            c.check("arp_op", u16::from(repr.operation));
            c.check("arp_sha", repr.source_hardware_addr);
            c.check("arp_spa", repr.source_protocol_addr);
            c.check("arp_tha", repr.target_hardware_addr);
            c.check("arp_tpa", repr.target_protocol_addr);
            if packet.as_ref().len() != arp::PACKET_LEN {
                c.fail(format!(
                    "ARP payload {} bytes (veth does not pad)",
                    packet.as_ref().len()
                ));
            }
        }
        L3::Ipv4 { packet, repr, l4 } => {
            compare_ipv4(&mut c, packet, repr);
            compare_l4(&mut c, repr, l4);
        }
    }
    c.finish()
}

fn compare_ipv4(c: &mut Checker<'_>, packet: &ipv4::Packet<&[u8]>, repr: &ipv4::Repr) {
    c.check("ip_src", repr.src_addr);
    c.check("ip_dst", repr.dst_addr);
    c.check("ip_proto", u8::from(repr.protocol));
    c.check("ip_ttl", repr.ttl);
    c.check("ip_id", repr.ident);
    c.check("ip_total_len", packet.total_len());
    c.check("ip_ihl", packet.header_len() / 4);
    c.check("ip_df", flag(repr.dont_frag));
    c.check("ip_mf", flag(packet.more_frags()));
    c.check("ip_frag_offset", packet.frag_offset());
    c.check("ip_checksum", hex16(packet.checksum()));
    // Repr::parse(Software) already accepted the header; the view must agree.
    c.check_verdict("ip_checksum_ok", Some(packet.verify_checksum()));
    if packet.header_len() > ipv4::HEADER_LEN {
        if packet.options().len() != packet.header_len() - ipv4::HEADER_LEN {
            c.fail(format!("options() is {} bytes", packet.options().len()));
        }
        c.check("ip_options", render_ipv4_options(packet.options()));
    } else if !packet.options().is_empty() {
        c.fail("options() is not empty for IHL 5".to_owned());
    }
    if repr.payload_len != packet.payload().len() {
        c.fail(format!(
            "Repr payload_len {} but payload() is {} bytes",
            repr.payload_len,
            packet.payload().len()
        ));
    }
}

fn compare_l4(c: &mut Checker<'_>, ip: &ipv4::Repr, l4: &L4<'_>) {
    match l4 {
        L4::Icmp {
            packet,
            repr,
            checksum_verified,
        } => {
            c.check("icmp_type", u8::from(packet.msg_type()));
            c.check("icmp_code", packet.code());
            c.check("l4_checksum", hex16(packet.checksum()));
            c.check_verdict(
                "l4_checksum_ok",
                checksum_verified.then(|| packet.verify_checksum()),
            );
            match *repr {
                icmp::Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }
                | icmp::Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                } => {
                    c.check("icmp_id", ident);
                    c.check("icmp_seq", seq_no);
                    c.check("payload_len", data.len());
                }
                icmp::Repr::DstUnreachable { invoking, .. } => {
                    c.check("payload_len", invoking.len());
                }
            }
            if packet.data().len() + icmp::HEADER_LEN != ip.payload_len {
                c.fail("ICMP data() does not end at the IP total length".to_owned());
            }
        }
        L4::Udp { packet, repr } => {
            c.check("l4_src_port", repr.src_port);
            c.check("l4_dst_port", repr.dst_port);
            c.check("udp_length", packet.len());
            c.check("payload_len", repr.payload_len);
            c.check("l4_checksum", hex16(packet.checksum()));
            c.check_verdict(
                "l4_checksum_ok",
                Some(packet.verify_checksum(ip.src_addr, ip.dst_addr)),
            );
            if packet.payload().len() != repr.payload_len {
                c.fail(format!(
                    "UDP payload() {} bytes, Repr payload_len {}",
                    packet.payload().len(),
                    repr.payload_len
                ));
            }
        }
        L4::Tcp { segment, repr } => compare_tcp(c, ip, segment, repr),
        L4::LaterFragment { payload } => {
            c.check("payload_len", payload.len());
        }
    }
}

fn compare_tcp(
    c: &mut Checker<'_>,
    ip: &ipv4::Repr,
    segment: &tcp::Segment<&[u8]>,
    repr: &tcp::Repr<'_>,
) {
    c.check("l4_src_port", repr.src_port);
    c.check("l4_dst_port", repr.dst_port);
    c.check("tcp_seq", repr.seq_number);
    // The raw field, also when ACK is clear (a SYN carries zero there).
    c.check("tcp_ack", segment.ack_number());
    c.check("tcp_flags", format!("{:#04x}", segment.flags().bits()));
    c.check("tcp_window", repr.window_len);
    c.check("tcp_hdr_len", segment.header_len());
    c.check("payload_len", repr.payload.len());
    c.check("l4_checksum", hex16(segment.checksum()));
    c.check_verdict(
        "l4_checksum_ok",
        Some(segment.verify_checksum(ip.src_addr, ip.dst_addr)),
    );
    // The options twice: as the iterator walks them (every NOP, in wire order), and as the
    // Repr understood them (every option but padding must have landed in a Repr field).
    if segment.options().is_empty() {
        c.check_absent("tcp_options");
    } else {
        c.check("tcp_options", render_tcp_options(segment));
    }
    let understood = understood_tcp_options(repr);
    let listed: BTreeSet<String> = c
        .row
        .get("tcp_options")
        .unwrap_or_default()
        .split(',')
        .filter(|o| !o.is_empty() && *o != "nop" && *o != "eol")
        .map(str::to_owned)
        .collect();
    if understood != listed {
        c.fail(format!(
            "tcp::Repr understood options {understood:?}, tshark lists {listed:?}"
        ));
    }
    // The Repr keeps ACK out of `flags` and in `ack_number`.
    if repr.flags | repr.ack_number.map_or(Flags::empty(), |_| Flags::ACK) != segment.flags()
        || repr.ack_number.is_some() != segment.ack()
        || repr.ack_number.is_some_and(|a| a != segment.ack_number())
    {
        c.fail(format!(
            "Repr flags {:?} / ack {:?} against the header's {:?}",
            repr.flags,
            repr.ack_number,
            segment.flags()
        ));
    }
    if repr.payload != segment.payload() {
        c.fail("Repr payload is not the segment's payload()".to_owned());
    }
}

/// Renders a TCP option the way expected.tsv writes it.
fn render_tcp_option(option: &TcpOption<'_>) -> String {
    match option {
        TcpOption::EndOfList => "eol".to_owned(),
        TcpOption::NoOperation => "nop".to_owned(),
        TcpOption::MaxSegmentSize(mss) => format!("mss={mss}"),
        TcpOption::WindowScale(shift) => format!("wscale={shift}"),
        TcpOption::SackPermitted => "sackOK".to_owned(),
        TcpOption::SackRange(blocks) => render_sack(blocks),
        TcpOption::Timestamps { tsval, tsecr } => format!("ts={tsval}/{tsecr}"),
        TcpOption::FastOpenCookie(cookie) => render_cookie(cookie),
        TcpOption::Unknown { kind, data } => format!("unknown(kind={kind},len={})", data.len()),
    }
}

fn render_sack(blocks: &[SackBlock]) -> String {
    let blocks: Vec<String> = blocks
        .iter()
        .map(|b| format!("{}-{}", b.left, b.right))
        .collect();
    format!("sack={}", blocks.join(";"))
}

fn render_cookie(cookie: &[u8]) -> String {
    if cookie.is_empty() {
        "tfo=cookiereq".to_owned()
    } else {
        let hex: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
        format!("tfo=cookie:{hex}")
    }
}

/// The options of a segment in wire order, through our option iterator.
fn render_tcp_options(segment: &tcp::Segment<&[u8]>) -> String {
    let rendered: Vec<String> = segment
        .option_iter()
        .map(|o| match o {
            Ok(o) => render_tcp_option(&o),
            Err(e) => format!("error({e:?})"),
        })
        .collect();
    rendered.join(",")
}

/// The options a parsed `tcp::Repr` holds, rendered like expected.tsv (padding has no field).
fn understood_tcp_options(repr: &tcp::Repr<'_>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(mss) = repr.max_seg_size {
        out.insert(format!("mss={mss}"));
    }
    if repr.sack_permitted {
        out.insert("sackOK".to_owned());
    }
    if let Some(ts) = repr.timestamp {
        out.insert(format!("ts={}/{}", ts.tsval, ts.tsecr));
    }
    if let Some(shift) = repr.window_scale {
        out.insert(format!("wscale={shift}"));
    }
    if !repr.sack_ranges.is_empty() {
        out.insert(render_sack(&repr.sack_ranges));
    }
    if let Some(cookie) = repr.fast_open {
        out.insert(render_cookie(cookie.as_bytes()));
    }
    out
}

#[test]
fn every_linux_frame_parses_to_what_tshark_saw() {
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    for (frame, row) in linux_frames_with_rows() {
        for mismatch in compare_with_tshark(&frame, &row) {
            failures.push(format!("frame {}: {mismatch}", frame.number));
        }
        if let Ok(d) = dissect(&frame.bytes) {
            kinds.insert(match &d.l3 {
                L3::Arp { .. } => "arp",
                L3::Ipv4 { l4, .. } => match l4 {
                    L4::Icmp { .. } => "icmp",
                    L4::Udp { .. } => "udp",
                    L4::Tcp { .. } => "tcp",
                    L4::LaterFragment { .. } => "fragment",
                },
            });
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements with tshark:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        kinds,
        BTreeSet::from(["arp", "fragment", "icmp", "tcp", "udp"]),
        "the capture exercises every layer"
    );
}

/// The comparison itself must be able to fail: a changed field is reported, and so is a
/// non-empty column that nothing compared.
#[test]
fn the_tshark_comparison_catches_a_wrong_field() {
    let frame = linux_frame(11);
    let row = common::expected_row(11);
    assert_eq!(compare_with_tshark(&frame, &row), Vec::<String>::new());
    let mut bent = frame.clone();
    bent.bytes[14 + 20] ^= 0x01; // low bit of the UDP source port; checksum then fails
    let mismatches = compare_with_tshark(&bent, &row);
    assert!(
        mismatches
            .iter()
            .any(|m| m.contains("rejected") && m.contains("BadChecksum")),
        "{mismatches:?}"
    );
    let mut c = Checker::new(&row);
    c.check("ip_ttl", 63);
    let mismatches = c.finish();
    assert!(mismatches.iter().any(|m| m.starts_with("ip_ttl")));
    assert!(mismatches.iter().any(|m| m.starts_with("eth_src")));
}

// ---------------------------------------------------------------------------------------------
// Checksums, fragments, ICMP errors, IP options.
// ---------------------------------------------------------------------------------------------

#[test]
fn linux_udp_checksums_verify_with_the_pseudo_header() {
    let mut udp_frames = 0;
    for frame in linux_frames() {
        let Ok(d) = dissect(&frame.bytes) else {
            continue;
        };
        let L3::Ipv4 {
            repr: ip,
            l4: L4::Udp { packet, repr },
            ..
        } = &d.l3
        else {
            continue;
        };
        udp_frames += 1;
        let n = frame.number;
        // Linux always sends a UDP checksum on IPv4 (0 would mean "none", RFC 768).
        assert_ne!(packet.checksum(), 0, "frame {n}");
        assert!(
            packet.verify_checksum(ip.src_addr, ip.dst_addr),
            "frame {n}"
        );

        // The checksum covers the pseudo-header: another address does not verify. (Swapping
        // source and destination would: the sum is commutative.)
        let other = Ipv4Addr::from(u32::from(ip.dst_addr) ^ 0x0000_0100);
        assert!(!packet.verify_checksum(ip.src_addr, other), "frame {n}");
        assert_eq!(
            udp::Repr::parse(packet, ip.src_addr, other, ChecksumMode::Software),
            Err(Error::BadChecksum),
            "frame {n}"
        );
        // Offloaded mode trusts the NIC and does not look.
        assert_eq!(
            udp::Repr::parse(packet, ip.src_addr, other, ChecksumMode::Offloaded),
            Ok(*repr),
            "frame {n}"
        );

        // Recomputing the checksum from scratch (pseudo-header with protocol 17 and the UDP
        // length, then the datagram with a zero checksum field) gives Linux's value.
        let datagram = packet.as_ref();
        let mut zeroed = datagram.to_vec();
        zeroed[6..8].fill(0);
        let ours = checksum::pseudo_header(ip.src_addr, ip.dst_addr, 17, packet.len())
            .add_bytes(&zeroed)
            .finish();
        assert_eq!(ours, packet.checksum(), "frame {n}");

        // Any flipped bit of the datagram is caught (its pseudo-header length included).
        for i in 0..datagram.len() {
            let mut bent = datagram.to_vec();
            bent[i] ^= 0x80;
            let verdict = udp::Packet::new_checked(&bent[..])
                .map(|p| udp::Repr::parse(&p, ip.src_addr, ip.dst_addr, ChecksumMode::Software));
            assert!(
                !matches!(verdict, Ok(Ok(r)) if r == *repr),
                "frame {n}: flipping byte {i} went unnoticed"
            );
        }
    }
    assert_eq!(udp_frames, 5, "frames 11 and 13-16");
}

#[test]
fn linux_fragments_are_recognised() {
    let frames = linux_frames();
    let mut fragments = Vec::new();
    for frame in &frames {
        let d = dissect(&frame.bytes).unwrap();
        let L3::Ipv4 { packet, repr, .. } = &d.l3 else {
            continue;
        };
        let expected = (77..=80).contains(&frame.number);
        assert_eq!(packet.is_fragment(), expected, "frame {}", frame.number);
        if expected {
            // ping -s 2000 with DF clear (Linux ping sets DF only with -M do).
            assert!(!repr.dont_frag, "frame {}", frame.number);
            fragments.push((frame.number, packet.clone(), *repr));
        }
    }
    assert_eq!(fragments.len(), 4);
    for pair in fragments.chunks_exact(2) {
        let ((n1, first, r1), (n2, second, r2)) = (&pair[0], &pair[1]);
        // First fragment: MF, offset 0. Last: no MF, offset 1480 = the first one's payload.
        assert!(first.more_frags(), "frame {n1}");
        assert_eq!(first.frag_offset(), 0, "frame {n1}");
        assert!(!second.more_frags(), "frame {n2}");
        assert_eq!(second.frag_offset(), 1480, "frame {n2}");
        assert_eq!(usize::from(second.frag_offset()), first.payload().len());
        assert_eq!(first.payload().len() % 8, 0, "RFC 791: 8-byte units");
        // Same datagram: same identification, addresses and protocol.
        assert_eq!(
            (r1.ident, r1.src_addr, r1.dst_addr),
            (r2.ident, r2.src_addr, r2.dst_addr)
        );
        assert_eq!(
            (r1.protocol, r2.protocol),
            (ipv4::Protocol::Icmp, ipv4::Protocol::Icmp)
        );

        // The first fragment carries the ICMP header; its fields are readable, its checksum is
        // not checkable alone. Put the two payloads together (what reassembly would do) and the
        // whole message verifies and parses in software mode: 8 + 2000 bytes of echo.
        let head = icmp::Packet::new_checked(first.payload()).unwrap();
        let mut message = first.payload().to_vec();
        message.extend_from_slice(second.payload());
        assert_eq!(message.len(), 8 + 2000);
        let whole = icmp::Packet::new_checked(&message[..]).unwrap();
        assert!(whole.verify_checksum(), "frames {n1}+{n2}");
        let repr = icmp::Repr::parse(&whole, ChecksumMode::Software).unwrap();
        match repr {
            icmp::Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | icmp::Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                assert_eq!((ident, seq_no), (head.echo_ident(), head.echo_seq_no()));
                let row = common::expected_row(*n1);
                assert_eq!(
                    (Some(u64::from(ident)), Some(u64::from(seq_no))),
                    (row.number("icmp_id"), row.number("icmp_seq"))
                );
                assert_eq!(data.len(), 2000);
            }
            other => panic!("frames {n1}+{n2}: {other:?}"),
        }
        // Re-emitting the reassembled message reproduces it, checksum included.
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut icmp::Packet::new_unchecked(&mut out[..]),
            ChecksumMode::Software,
        );
        assert_eq!(out, message, "frames {n1}+{n2}");
    }
    assert_eq!(
        (fragments[0].0, fragments[2].0),
        (77, 79),
        "request then reply"
    );
}

#[test]
fn port_unreachable_quotes_the_offending_datagram() {
    let offending = linux_frame(11);
    let error = linux_frame(12);
    let d11 = dissect(&offending.bytes).unwrap();
    let d12 = dissect(&error.bytes).unwrap();
    let L3::Ipv4 {
        packet: ip11,
        repr: ip11_repr,
        l4: L4::Udp {
            packet: udp11,
            repr: udp11_repr,
        },
    } = &d11.l3
    else {
        panic!("frame 11 is not UDP: {d11:?}");
    };
    let L3::Ipv4 {
        repr: ip12_repr,
        l4: L4::Icmp { repr, packet, .. },
        ..
    } = &d12.l3
    else {
        panic!("frame 12 is not ICMP: {d12:?}");
    };
    // The error goes back to the sender, from the host that refused the datagram.
    assert_eq!(
        (ip12_repr.src_addr, ip12_repr.dst_addr),
        (ip11_repr.dst_addr, ip11_repr.src_addr)
    );
    // Linux sends ICMP errors with TOS 0xc0 (IPTOS_PREC_INTERNETCONTROL, icmp_reply/icmp_send).
    assert_eq!(ip12_repr.dscp_ecn, 0xc0);
    let icmp::Repr::DstUnreachable {
        reason,
        next_hop_mtu,
        invoking,
    } = *repr
    else {
        panic!("frame 12: {repr:?}");
    };
    assert_eq!(reason, icmp::DstUnreachable::PortUnreachable);
    assert_eq!(next_hop_mtu, 0);
    assert_eq!(invoking, packet.data());

    // The quote: the whole 36-byte datagram of frame 11 (Linux quotes up to 548 bytes).
    let quoted = ipv4::Packet::new_checked_quoted(invoking).unwrap();
    assert_eq!(
        invoking,
        ip11.as_ref(),
        "the quote is frame 11's IP datagram"
    );
    assert_eq!(quoted.header_len(), ip11.header_len());
    assert_eq!(quoted.total_len(), ip11.total_len());
    assert!(quoted.verify_checksum());
    assert_eq!(
        ipv4::Repr::parse(&quoted, ChecksumMode::Software).unwrap(),
        *ip11_repr
    );
    // The first 8 bytes of the quoted payload are the UDP header: ports, length, checksum.
    assert!(quoted.payload().len() >= 8);
    let quoted_udp = udp::Packet::new_checked(quoted.payload()).unwrap();
    assert_eq!(quoted_udp.src_port(), udp11_repr.src_port);
    assert_eq!(quoted_udp.dst_port(), udp11_repr.dst_port);
    assert_eq!(quoted_udp.len(), udp11.len());
    assert_eq!(quoted_udp.checksum(), udp11.checksum());
    assert!(quoted_udp.verify_checksum(ip11_repr.src_addr, ip11_repr.dst_addr));

    // What the stack demultiplexes an error by is in the first 28 bytes of the quote
    // (RFC 792 "Internet Header + 64 bits"): cut there, it still parses to the same header
    // and ports, even though the quoted total length now runs past the buffer.
    let minimal = &invoking[..icmp::MIN_INVOKING_LEN];
    assert_eq!(
        ipv4::Packet::new_checked(minimal).err(),
        Some(Error::Truncated)
    );
    let cut = ipv4::Packet::new_checked_quoted(minimal).unwrap();
    assert_eq!(
        ipv4::Repr::parse(&cut, ChecksumMode::Software).unwrap(),
        *ip11_repr
    );
    assert_eq!(cut.payload(), &udp11.as_ref()[..8]);
    for len in 0..icmp::MIN_INVOKING_LEN {
        assert_eq!(
            ipv4::Packet::new_checked_quoted(&invoking[..len]).err(),
            Some(Error::Truncated),
            "quote cut to {len}"
        );
    }
}

#[test]
fn record_route_options_are_carried_and_skipped() {
    for number in [75, 76] {
        let frame = linux_frame(number);
        let d = dissect(&frame.bytes).unwrap();
        let L3::Ipv4 {
            packet,
            repr,
            l4: L4::Icmp {
                repr: icmp_repr, ..
            },
        } = &d.l3
        else {
            panic!("frame {number}: {d:?}");
        };
        // IHL 15: 40 bytes of options, all of them covered by the header checksum.
        assert_eq!(packet.header_len(), ipv4::MAX_HEADER_LEN, "frame {number}");
        assert_eq!(packet.options().len(), 40, "frame {number}");
        assert_eq!(
            packet.options(),
            &frame.bytes[14 + 20..14 + 60],
            "frame {number}"
        );
        assert!(packet.verify_checksum(), "frame {number}");
        let mut bent = frame.bytes.clone();
        bent[14 + 20 + 3] ^= 0x01; // inside the options
        let bent_ip = ipv4::Packet::new_checked(&bent[14..]).unwrap();
        assert_eq!(
            ipv4::Repr::parse(&bent_ip, ChecksumMode::Software),
            Err(Error::BadChecksum),
            "frame {number}"
        );
        // The payload starts after the options: the ICMP echo, 8 + 56 bytes.
        assert_eq!(repr.payload_len, 64, "frame {number}");
        assert_eq!(packet.payload(), &frame.bytes[14 + 60..], "frame {number}");
        assert!(matches!(
            icmp_repr,
            icmp::Repr::EchoRequest { data, .. } | icmp::Repr::EchoReply { data, .. }
                if data.len() == 56
        ));
    }
    // The reply echoes the option with the hops recorded on the way back (RFC 791 3.1).
    assert_eq!(
        render_ipv4_options(
            ipv4::Packet::new_checked(&linux_frame(76).bytes[14..])
                .unwrap()
                .options()
        ),
        "rr(len=39,ptr=16,198.18.0.1 198.18.0.2 198.18.0.2),eol"
    );
}

// ---------------------------------------------------------------------------------------------
// TCP.
// ---------------------------------------------------------------------------------------------

/// The IPv4 and TCP `Repr`s of a TCP frame.
fn tcp_of(frame: &LinuxFrame) -> (ipv4::Repr, tcp::Segment<&[u8]>, tcp::Repr<'_>) {
    let d = dissect(&frame.bytes).unwrap();
    match d.l3 {
        L3::Ipv4 {
            repr: ip,
            l4: L4::Tcp { segment, repr },
            ..
        } => (ip, segment, repr),
        other => panic!("frame {} is not TCP: {other:?}", frame.number),
    }
}

/// The `ts=TSval/TSecr` entry of a row's tcp_options column.
fn tsv_timestamp(row: &ExpectedRow) -> tcp::TcpTimestamp {
    let options = row.get("tcp_options").unwrap();
    let ts = options
        .split(',')
        .find_map(|o| o.strip_prefix("ts="))
        .unwrap();
    let (tsval, tsecr) = ts.split_once('/').unwrap();
    tcp::TcpTimestamp {
        tsval: tsval.parse().unwrap(),
        tsecr: tsecr.parse().unwrap(),
    }
}

#[test]
fn linux_syn_options_are_all_understood() {
    let frames = linux_frames();
    let rows = common::expected_rows();
    let mut syns = Vec::new();
    for (frame, row) in frames.iter().zip(&rows) {
        let Ok(Dissection {
            l3:
                L3::Ipv4 {
                    l4: L4::Tcp { segment, repr },
                    ..
                },
            ..
        }) = dissect(&frame.bytes)
        else {
            continue;
        };
        if !repr.flags.syn() {
            continue;
        }
        let n = frame.number;
        syns.push(n);
        // Every option is one our iterator knows by name: none is Unknown or malformed.
        for option in segment.option_iter() {
            assert!(
                matches!(option, Ok(ref o) if !matches!(o, TcpOption::Unknown { .. })),
                "frame {n}: {option:?}"
            );
        }
        // Linux's SYN options, understood: MSS 1460 (MTU 1500 - 40), SACK-Permitted,
        // timestamps, and the window scale it chose (README: 10 in this capture; from the row).
        assert_eq!(repr.max_seg_size, Some(1460), "frame {n}");
        assert!(repr.sack_permitted, "frame {n}");
        assert_eq!(repr.timestamp, Some(tsv_timestamp(row)), "frame {n}");
        let wscale = row
            .get("tcp_options")
            .unwrap()
            .split(',')
            .find_map(|o| o.strip_prefix("wscale="))
            .map(|w| w.parse::<u8>().unwrap());
        assert_eq!(repr.window_scale, wscale, "frame {n}");
        assert!(repr.window_scale.is_some_and(|w| w <= 14), "frame {n}");
        assert!(repr.sack_ranges.is_empty(), "frame {n}");
        // RFC 9293 3.4: a SYN occupies one sequence number (plus its data, with TFO).
        assert_eq!(repr.segment_len(), 1 + repr.payload.len(), "frame {n}");
        if repr.ack_number.is_none() {
            // RFC 7323 3.2: "The TSecr field is valid only if the ACK bit is set"; Linux zeroes it.
            assert_eq!(repr.timestamp.map(|t| t.tsecr), Some(0), "frame {n}");
        }
    }
    // 17/18, 36 (refused), 38/39 and 46/47 (Fast Open), 53/54, 81/82.
    assert_eq!(syns, [17, 18, 36, 38, 39, 46, 47, 53, 54, 81, 82]);

    // Each SYN|ACK acknowledges its SYN (and echoes its TSval).
    for (syn, syn_ack) in [(17, 18), (38, 39), (46, 47), (53, 54), (81, 82)] {
        let (_, _, a) = tcp_of(&frames[syn - 1]);
        let (_, _, b) = tcp_of(&frames[syn_ack - 1]);
        assert_eq!((a.src_port, a.dst_port), (b.dst_port, b.src_port));
        let next = a
            .seq_number
            .wrapping_add(u32::try_from(a.segment_len()).unwrap());
        assert_eq!(b.ack_number, Some(next), "frame {syn_ack}");
        assert_eq!(
            b.timestamp.map(|t| t.tsecr),
            a.timestamp.map(|t| t.tsval),
            "frame {syn_ack}"
        );
    }

    // Fast Open (RFC 7413): a cookie request in the first SYN, the cookie in its SYN|ACK, the
    // same cookie and data in the second SYN, and the data acknowledged by its SYN|ACK.
    let (_, _, request) = tcp_of(&frames[38 - 1]);
    let (_, _, grant) = tcp_of(&frames[39 - 1]);
    let (_, _, with_data) = tcp_of(&frames[46 - 1]);
    let (_, _, accepted) = tcp_of(&frames[47 - 1]);
    assert!(request.fast_open.is_some_and(|c| c.is_request()));
    assert!(request.payload.is_empty());
    let cookie = grant.fast_open.unwrap();
    assert!(!cookie.is_request());
    let expected_cookie = rows[39 - 1]
        .get("tcp_options")
        .unwrap()
        .split(',')
        .find_map(|o| o.strip_prefix("tfo=cookie:"))
        .unwrap();
    let ours: String = cookie
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ours, expected_cookie);
    assert_eq!(with_data.fast_open, Some(cookie));
    assert_eq!(with_data.payload, b"tfo-2\n");
    assert_eq!(
        accepted.ack_number,
        Some(with_data.seq_number.wrapping_add(1 + 6)),
        "README: ack = ISN + 7"
    );
    assert_eq!(
        accepted.fast_open, None,
        "Linux sends no option once the cookie was good"
    );
    // Without TFO, the SYN|ACK of a connection carries no Fast Open option.
    for n in [17, 18, 36, 53, 54, 81, 82] {
        assert_eq!(tcp_of(&frames[n - 1]).2.fast_open, None, "frame {n}");
    }
}

#[test]
fn sack_blocks_match_the_retransmission_scenario() {
    let frames = linux_frames();
    let tcp = |n: usize| tcp_of(&frames[n - 1]).2;
    let (syn, syn_ack) = (tcp(53), tcp(54));
    assert!(
        syn.sack_permitted && syn_ack.sack_permitted,
        "SACK negotiated"
    );

    // Five full-size segments from A, back to back; the second one starts with "DROP" and is
    // the one B's nftables rule dropped after the capture point.
    let data: Vec<tcp::Repr<'_>> = (56..=60).map(tcp).collect();
    for pair in data.windows(2) {
        let end = pair[0]
            .seq_number
            .wrapping_add(u32::try_from(pair[0].payload.len()).unwrap());
        assert_eq!(pair[1].seq_number, end);
    }
    for (i, seg) in data.iter().enumerate() {
        assert_eq!(seg.payload.len(), 1448, "segment {}", i + 1);
        assert_eq!(
            seg.payload.starts_with(b"DROP"),
            i == 1,
            "segment {}",
            i + 1
        );
        assert_eq!((seg.src_port, seg.dst_port), (syn.src_port, syn.dst_port));
    }
    let start = |i: usize| data[i].seq_number;
    let end = |i: usize| start(i).wrapping_add(1448);
    let lost = start(1);

    // 61: B acknowledges segment 1, with no SACK: nothing is out of order yet.
    let first_ack = tcp(61);
    assert_eq!(first_ack.ack_number, Some(lost));
    assert!(first_ack.sack_ranges.is_empty());

    // 62-64: duplicate ACKs for the hole, each with one SACK block that grows as segments 3,
    // 4 and 5 arrive: [start(3), end(3)), then to end(4), then to end(5).
    for (frame, last) in [(62, 2), (63, 3), (64, 4)] {
        let ack = tcp(frame);
        assert_eq!(ack.ack_number, Some(lost), "frame {frame}: a duplicate ACK");
        assert_eq!(
            &ack.sack_ranges[..],
            &[SackBlock {
                left: start(2),
                right: end(last),
            }],
            "frame {frame}"
        );
        // RFC 2018 3: a block reports data above the cumulative ACK.
        let block = ack.sack_ranges[0];
        assert!(block.left.wrapping_sub(lost) < block.right.wrapping_sub(lost));
        assert_ne!(block.left, lost);
        // The emitted option keeps the block (3 fit with timestamps, Linux sends 1 here).
        assert_eq!(ack.sack_blocks_emitted(), 1, "frame {frame}");
    }

    // 65: A fast-retransmits exactly the lost segment.
    let retransmission = tcp(65);
    assert_eq!(retransmission.seq_number, lost);
    assert_eq!(retransmission.payload, data[1].payload);
    assert!(retransmission.payload.starts_with(b"DROP"));

    // 66: the hole is filled, one cumulative ACK covers all five segments, no SACK left.
    let cumulative = tcp(66);
    assert_eq!(cumulative.ack_number, Some(end(4)));
    assert_eq!(end(4).wrapping_sub(start(0)), 5 * 1448);
    assert!(cumulative.sack_ranges.is_empty());

    // No other frame of the capture carries SACK blocks.
    for frame in &frames {
        if let Ok(Dissection {
            l3:
                L3::Ipv4 {
                    l4: L4::Tcp { repr, .. },
                    ..
                },
            ..
        }) = dissect(&frame.bytes)
        {
            assert_eq!(
                !repr.sack_ranges.is_empty(),
                (62..=64).contains(&frame.number),
                "frame {}",
                frame.number
            );
        }
    }
}

#[test]
fn linux_tcp_checksums_verify_with_the_pseudo_header() {
    let mut segments = 0;
    for frame in linux_frames() {
        let Ok(Dissection {
            l3:
                L3::Ipv4 {
                    repr: ip,
                    l4: L4::Tcp { segment, repr },
                    ..
                },
            ..
        }) = dissect(&frame.bytes)
        else {
            continue;
        };
        segments += 1;
        let n = frame.number;
        assert!(
            segment.verify_checksum(ip.src_addr, ip.dst_addr),
            "frame {n}"
        );
        let other = Ipv4Addr::from(u32::from(ip.src_addr) ^ 0x0000_0100);
        assert_eq!(
            tcp::Repr::parse(&segment, other, ip.dst_addr, ChecksumMode::Software),
            Err(Error::BadChecksum),
            "frame {n}"
        );
        assert_eq!(
            tcp::Repr::parse(&segment, other, ip.dst_addr, ChecksumMode::Offloaded),
            Ok(repr),
            "frame {n}"
        );
        // Recomputed from scratch: pseudo-header (protocol 6, TCP length from the IP header),
        // then the segment with a zero checksum field.
        let mut zeroed = segment.as_bytes().to_vec();
        zeroed[16..18].fill(0);
        let len = u16::try_from(zeroed.len()).unwrap();
        let ours = checksum::pseudo_header(ip.src_addr, ip.dst_addr, 6, len)
            .add_bytes(&zeroed)
            .finish();
        assert_eq!(ours, segment.checksum(), "frame {n}");
        // A flipped bit anywhere in the header or options, or in the first and last payload
        // bytes, fails the checksum.
        let bytes = segment.as_bytes();
        let hl = segment.header_len();
        let positions = (0..hl)
            .chain([hl, bytes.len() - 1])
            .filter(|&i| i < bytes.len());
        for i in positions {
            let mut bent = bytes.to_vec();
            bent[i] ^= 0x10;
            let verdict = tcp::Segment::new_checked(&bent[..]).and_then(|s| {
                tcp::Repr::parse(&s, ip.src_addr, ip.dst_addr, ChecksumMode::Software).map(|_| ())
            });
            assert!(
                verdict.is_err(),
                "frame {n}: flipping byte {i} went unnoticed"
            );
        }
    }
    assert_eq!(segments, 58, "frames 17-70 and 81-84");
}

// ---------------------------------------------------------------------------------------------
// Round trip: parse, emit, compare with Linux's bytes.
// ---------------------------------------------------------------------------------------------

/// Byte ranges of a header that our emitter cannot reproduce for a given frame, and why.
struct Excluded {
    /// Half-open `(start, end)` byte ranges.
    ranges: &'static [(usize, usize)],
    why: &'static str,
}

/// `ours` must equal `linux` everywhere outside `excluded`.
fn diff(what: &str, ours: &[u8], linux: &[u8], excluded: &[Excluded]) -> Vec<String> {
    if ours.len() != linux.len() {
        return vec![format!(
            "{what}: emitted {} bytes, Linux sent {}",
            ours.len(),
            linux.len()
        )];
    }
    let skip = |i: usize| {
        excluded
            .iter()
            .any(|e| e.ranges.iter().any(|&(from, to)| (from..to).contains(&i)))
    };
    let bad: Vec<usize> = (0..ours.len())
        .filter(|&i| !skip(i) && ours[i] != linux[i])
        .collect();
    if bad.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{what}: bytes {bad:?} differ\n  ours:  {ours:02x?}\n  linux: {linux:02x?}\n  \
             (already excluded: {:?})",
            excluded.iter().map(|e| e.why).collect::<Vec<_>>()
        )]
    }
}

/// Emits every `Repr` of a dissected frame and compares with the frame's bytes. Returns the
/// differences, and counts in `exact` the frames rebuilt byte for byte with nothing excluded.
fn round_trip(frame: &LinuxFrame, d: &Dissection<'_>, exact: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut exclusions_used = false;

    // Ethernet: `Repr::emit` writes an untagged header (this stack sends no VLAN tags). For a
    // tagged frame it must equal the frame with the tag taken out: addresses, inner EtherType.
    let mut eth = [0u8; ethernet::HEADER_LEN];
    d.eth_repr
        .emit(&mut ethernet::Frame::new_unchecked(&mut eth[..]));
    let hl = d.eth.header_len();
    let mut linux_eth = frame.bytes[..12].to_vec();
    linux_eth.extend_from_slice(&frame.bytes[hl - 2..hl]);
    out.extend(diff("ethernet", &eth, &linux_eth, &[]));
    let l3 = &frame.bytes[hl..];

    match &d.l3 {
        L3::Arp { repr, .. } => {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut arp::Packet::new_unchecked(&mut buf[..]));
            out.extend(diff("arp", &buf, l3, &[]));
        }
        L3::Ipv4 { packet, repr, l4 } => {
            let mut header = [0u8; ipv4::HEADER_LEN];
            repr.emit(
                &mut ipv4::Packet::new_unchecked(&mut header[..]),
                ChecksumMode::Software,
            );
            let mut excluded = Vec::new();
            if packet.header_len() > ipv4::HEADER_LEN {
                excluded.push(Excluded {
                    ranges: &[(0, 1), (2, 4), (10, 12)],
                    why: "our emitter writes no options: IHL 5 (byte 0), a total length \
                          without the 40 option bytes (2..4), and a checksum over 20 bytes \
                          only (10..12)",
                });
            }
            if packet.is_fragment() {
                excluded.push(Excluded {
                    ranges: &[(6, 8), (10, 12)],
                    why: "our emitter never fragments: MF 0 and offset 0 (6..8), and so a \
                          different header checksum (10..12)",
                });
            }
            exclusions_used |= !excluded.is_empty();
            // Compared with the first 20 header bytes: the options are not ours to emit.
            out.extend(diff(
                "ipv4 header",
                &header,
                &l3[..ipv4::HEADER_LEN],
                &excluded,
            ));
            // Whatever was excluded, the emitted header (followed by the same payload) is a
            // valid datagram that parses back to the same Repr.
            let mut whole = header.to_vec();
            whole.extend_from_slice(packet.payload());
            match ipv4::Packet::new_checked(&whole[..])
                .and_then(|p| ipv4::Repr::parse(&p, ChecksumMode::Software))
            {
                Ok(r) if r == *repr => {}
                other => out.push(format!("emitted IPv4 header reparses as {other:?}")),
            }
            let l4_bytes = packet.payload();
            match l4 {
                L4::Icmp {
                    repr: icmp_repr,
                    checksum_verified,
                    ..
                } => {
                    let mut buf = vec![0u8; icmp_repr.buffer_len()];
                    icmp_repr.emit(
                        &mut icmp::Packet::new_unchecked(&mut buf[..]),
                        ChecksumMode::Software,
                    );
                    let mut excluded = Vec::new();
                    if !checksum_verified {
                        excluded.push(Excluded {
                            ranges: &[(2, 4)],
                            why: "a first fragment holds part of the message; the checksum \
                                  covers all of it (linux_fragments_are_recognised re-emits \
                                  the reassembled message exactly)",
                        });
                    }
                    exclusions_used |= !excluded.is_empty();
                    out.extend(diff("icmp", &buf, l4_bytes, &excluded));
                }
                L4::Udp {
                    repr: udp_repr,
                    packet: udp_packet,
                } => {
                    // Emit-in-place: the payload is written first, then the header over it.
                    let mut buf = vec![0u8; udp_repr.buffer_len()];
                    let mut view = udp::Packet::new_unchecked(&mut buf[..]);
                    view.payload_mut().copy_from_slice(udp_packet.payload());
                    udp_repr.emit(
                        &mut view,
                        repr.src_addr,
                        repr.dst_addr,
                        ChecksumMode::Software,
                    );
                    out.extend(diff("udp", &buf, l4_bytes, &[]));
                }
                L4::Tcp { repr: tcp_repr, .. } => {
                    // Header, options in Linux's layout, payload and checksum: all of it.
                    let mut buf = vec![0u8; tcp_repr.buffer_len()];
                    tcp_repr.emit(
                        &mut tcp::Segment::new_unchecked(&mut buf[..]),
                        repr.src_addr,
                        repr.dst_addr,
                        ChecksumMode::Software,
                    );
                    out.extend(diff("tcp", &buf, l4_bytes, &[]));
                }
                // Raw payload bytes: nothing of ours to emit.
                L4::LaterFragment { .. } => exclusions_used = true,
            }
        }
    }
    if d.eth.vlan_id().is_some() {
        exclusions_used = true;
    }
    if out.is_empty() && !exclusions_used {
        *exact += 1;
    }
    out
}

#[test]
fn emitting_the_parsed_reprs_reproduces_linux_bytes() {
    let mut failures = Vec::new();
    let mut exact = 0;
    for frame in linux_frames() {
        let d = dissect(&frame.bytes).unwrap();
        for f in round_trip(&frame, &d, &mut exact) {
            failures.push(format!("frame {}: {f}", frame.number));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // All but the 4 tagged frames (71-74), the 2 with IP options (75-76) and the 4 fragments
    // (77-80) are rebuilt byte for byte with nothing excluded.
    assert_eq!(
        exact,
        84 - 4 - 2 - 4,
        "frames rebuilt with nothing excluded"
    );
}

/// Untagged frames without options or fragmentation, rebuilt the way the shard transmits:
/// one buffer, each layer emitted into the payload of the one below (emit-in-place).
#[test]
fn plain_linux_frames_are_rebuilt_whole_by_nested_emit() {
    let mut rebuilt = 0;
    for frame in linux_frames() {
        let d = dissect(&frame.bytes).unwrap();
        if d.eth.vlan_id().is_some() {
            continue;
        }
        let mut buf = vec![0u8; frame.bytes.len()];
        let mut eth = ethernet::Frame::new_unchecked(&mut buf[..]);
        d.eth_repr.emit(&mut eth);
        match &d.l3 {
            L3::Arp { repr, .. } => {
                repr.emit(&mut arp::Packet::new_unchecked(eth.payload_mut()));
            }
            L3::Ipv4 { packet, repr, l4 } => {
                if packet.header_len() != ipv4::HEADER_LEN || packet.is_fragment() {
                    continue;
                }
                let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
                repr.emit(&mut ip, ChecksumMode::Software);
                match l4 {
                    L4::Icmp {
                        repr: icmp_repr, ..
                    } => icmp_repr.emit(
                        &mut icmp::Packet::new_unchecked(ip.payload_mut()),
                        ChecksumMode::Software,
                    ),
                    L4::Udp {
                        repr: udp_repr,
                        packet: udp_packet,
                    } => {
                        let mut u = udp::Packet::new_unchecked(ip.payload_mut());
                        u.payload_mut().copy_from_slice(udp_packet.payload());
                        udp_repr.emit(&mut u, repr.src_addr, repr.dst_addr, ChecksumMode::Software);
                    }
                    L4::Tcp { repr: tcp_repr, .. } => {
                        // Zero-copy transmit: payload in place first, then the header.
                        let l4 = ip.payload_mut();
                        l4[tcp_repr.header_len()..].copy_from_slice(tcp_repr.payload);
                        tcp_repr.emit_header(
                            &mut tcp::Segment::new_unchecked(l4),
                            repr.src_addr,
                            repr.dst_addr,
                            ChecksumMode::Software,
                        );
                    }
                    L4::LaterFragment { .. } => continue,
                }
            }
        }
        assert_eq!(buf, frame.bytes, "frame {}", frame.number);
        rebuilt += 1;
    }
    assert_eq!(
        rebuilt,
        84 - 4 - 2 - 4,
        "all but the tagged, option and fragment frames"
    );
}

// ---------------------------------------------------------------------------------------------
// Truncation: every proper prefix of every frame.
// ---------------------------------------------------------------------------------------------

/// Where each layer of a full frame starts and ends, from its dissection.
struct Offsets {
    l3: usize,
    /// IPv4 only: where the transport header starts.
    l4: Option<usize>,
}

fn offsets(d: &Dissection<'_>) -> Offsets {
    let l3 = d.eth.header_len();
    let l4 = match &d.l3 {
        L3::Arp { .. } => None,
        L3::Ipv4 { packet, .. } => Some(l3 + packet.header_len()),
    };
    Offsets { l3, l4 }
}

/// Feeds one prefix of a frame to every view and parser at every layer (each on its own bytes,
/// as if the layers above had let it through) and checks that each either rejects it or parses
/// it consistently with the prefix and with the full frame. Returns the inconsistencies.
fn probe_prefix(full: &Dissection<'_>, off: &Offsets, prefix: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let len = prefix.len();
    let tail = |start: usize| prefix.get(start..).unwrap_or(&[]);

    // The whole-frame dissection: Linux frames are not padded, so every prefix is short of
    // what some length field says (the Ethernet header, ARP's 28 bytes, the IPv4 total length).
    match dissect(prefix) {
        Err(Failure {
            error: Error::Truncated,
            ..
        }) => {}
        other => out.push(format!("dissect: {other:?}, expected Truncated")),
    }

    // Ethernet.
    match ethernet::Frame::new_checked(prefix) {
        Ok(f) => {
            let _ = (f.src_addr(), f.dst_addr(), f.vlan_id());
            if len < off.l3 || f.header_len() != off.l3 || f.payload() != tail(off.l3) {
                out.push(format!("ethernet accepted {len} bytes inconsistently"));
            }
            if ethernet::Repr::parse(&f) != Ok(full.eth_repr) {
                out.push("ethernet Repr differs".to_owned());
            }
        }
        Err(Error::Truncated) if len < off.l3 => {}
        Err(e) => out.push(format!("ethernet: {e:?} at {len}")),
    }

    let l3 = tail(off.l3);
    match &full.l3 {
        L3::Arp { .. } => match arp::Packet::new_checked(l3) {
            Ok(_) => out.push(format!("arp accepted {} bytes", l3.len())),
            Err(Error::Truncated) => {}
            Err(e) => out.push(format!("arp: {e:?}")),
        },
        L3::Ipv4 {
            packet: full_ip,
            repr: full_ip_repr,
            l4,
        } => {
            match ipv4::Packet::new_checked(l3) {
                Ok(_) => out.push(format!("ipv4 accepted {} bytes", l3.len())),
                Err(Error::Truncated) => {}
                Err(e) => out.push(format!("ipv4: {e:?}")),
            }
            // As the quote in an ICMP error: accepted once header + 8 bytes are there, and then
            // it is the same header, with the payload cut where the prefix ends.
            match ipv4::Packet::new_checked_quoted(l3) {
                Ok(q) => {
                    let hl = full_ip.header_len();
                    let _ = (q.options(), q.total_len(), q.ident());
                    if l3.len() < hl + 8
                        || q.payload() != &l3[hl..]
                        || ipv4::Repr::parse(&q, ChecksumMode::Software) != Ok(*full_ip_repr)
                    {
                        out.push(format!(
                            "quoted ipv4 accepted {} bytes inconsistently",
                            l3.len()
                        ));
                    }
                }
                Err(Error::Truncated) if l3.len() < full_ip.header_len() + 8 => {}
                Err(e) => out.push(format!("quoted ipv4: {e:?} at {}", l3.len())),
            }
            if let Some(l4_start) = off.l4 {
                out.extend(probe_l4(l4, full_ip_repr, tail(l4_start)));
            }
        }
    }
    out
}

/// The transport layer of a prefix: `bytes` is what is left of the transport header and payload.
fn probe_l4(full: &L4<'_>, ip: &ipv4::Repr, bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    match full {
        L4::Icmp {
            packet: full_packet,
            ..
        } => match icmp::Packet::new_checked(bytes) {
            Ok(p) => {
                if bytes.len() < icmp::HEADER_LEN
                    || (
                        p.msg_type(),
                        p.code(),
                        p.checksum(),
                        p.echo_ident(),
                        p.echo_seq_no(),
                    ) != (
                        full_packet.msg_type(),
                        full_packet.code(),
                        full_packet.checksum(),
                        full_packet.echo_ident(),
                        full_packet.echo_seq_no(),
                    )
                    || p.data() != &bytes[icmp::HEADER_LEN..]
                {
                    out.push(format!(
                        "icmp view accepted {} bytes inconsistently",
                        bytes.len()
                    ));
                }
                // ICMP has no length field of its own: a cut message is caught by its checksum
                // (or, for an error, by a quote under 28 bytes). If it ever verifies anyway, the
                // data must be exactly what is left.
                match icmp::Repr::parse(&p, ChecksumMode::Software) {
                    Err(Error::BadChecksum | Error::Truncated) => {}
                    Ok(
                        icmp::Repr::EchoRequest { data, .. }
                        | icmp::Repr::EchoReply { data, .. }
                        | icmp::Repr::DstUnreachable { invoking: data, .. },
                    ) if data.len() == bytes.len() - icmp::HEADER_LEN => {}
                    other => out.push(format!("icmp Repr of {} bytes: {other:?}", bytes.len())),
                }
                if let Ok(r) = icmp::Repr::parse(&p, ChecksumMode::Offloaded) {
                    if r.buffer_len() != bytes.len() {
                        out.push(format!(
                            "icmp Repr buffer_len {} of {}",
                            r.buffer_len(),
                            bytes.len()
                        ));
                    }
                }
            }
            Err(Error::Truncated) if bytes.len() < icmp::HEADER_LEN => {}
            Err(e) => out.push(format!("icmp: {e:?} at {}", bytes.len())),
        },
        L4::Udp { .. } => match udp::Packet::new_checked(bytes) {
            // The length field covers the whole datagram: every prefix is short of it.
            Ok(_) => out.push(format!("udp accepted {} bytes", bytes.len())),
            Err(Error::Truncated) => {
                let p = udp::Packet::new_unchecked(bytes);
                let _ = p.payload(); // clamps, never panics
                if bytes.len() >= udp::HEADER_LEN {
                    let _ = p.verify_checksum(ip.src_addr, ip.dst_addr);
                }
            }
            Err(e) => out.push(format!("udp: {e:?}")),
        },
        L4::Tcp {
            segment: full_segment,
            repr: full_repr,
        } => match tcp::Segment::new_checked(bytes) {
            Ok(s) => {
                let hl = full_segment.header_len();
                // The header is intact, the payload cut short (TCP has no length field; the
                // IPv4 total length, which the dissection above checked, is what bounds it).
                if bytes.len() < hl
                    || s.header_len() != hl
                    || s.options() != full_segment.options()
                    || s.payload() != &bytes[hl..]
                {
                    out.push(format!(
                        "tcp view accepted {} bytes inconsistently",
                        bytes.len()
                    ));
                }
                // The checksum catches the cut. Should it ever verify anyway, everything but
                // the payload must be what the full segment said.
                match tcp::Repr::parse(&s, ip.src_addr, ip.dst_addr, ChecksumMode::Software) {
                    Err(Error::BadChecksum) => {}
                    Ok(r)
                        if r.payload.len() == bytes.len() - hl
                            && tcp::Repr {
                                payload: full_repr.payload,
                                ..r
                            } == *full_repr => {}
                    other => out.push(format!("tcp Repr of {} bytes: {other:?}", bytes.len())),
                }
                // Without the checksum, the options still parse to the full segment's.
                match tcp::Repr::parse(&s, ip.src_addr, ip.dst_addr, ChecksumMode::Offloaded) {
                    Ok(r)
                        if tcp::Repr {
                            payload: full_repr.payload,
                            ..r
                        } == *full_repr => {}
                    other => out.push(format!("offloaded tcp Repr: {other:?}")),
                }
            }
            Err(Error::Truncated) if bytes.len() < full_segment.header_len() => {
                // Accessors that clamp must not panic on the rejected bytes either.
                let s = tcp::Segment::new_unchecked(bytes);
                let _ = (s.options(), s.payload(), s.option_iter().count());
            }
            Err(e) => out.push(format!("tcp: {e:?} at {}", bytes.len())),
        },
        L4::LaterFragment { .. } => {}
    }
    out
}

#[test]
fn every_truncation_of_every_linux_frame_is_rejected_without_panic() {
    let mut failures = Vec::new();
    let mut prefixes = 0usize;
    for frame in linux_frames() {
        let full = dissect(&frame.bytes).unwrap();
        let off = offsets(&full);
        for len in 0..frame.bytes.len() {
            prefixes += 1;
            for f in probe_prefix(&full, &off, &frame.bytes[..len]) {
                failures.push(format!("frame {} cut to {len}: {f}", frame.number));
            }
        }
    }
    // README: "84 frames, 28200 bytes" is the file: a 24-byte pcap header, and a 16-byte record
    // header before each frame.
    assert_eq!(prefixes, 28200 - 24 - 84 * 16);
    let shown: Vec<&String> = failures.iter().take(40).collect();
    assert!(
        failures.is_empty(),
        "{} problems, first ones:\n{shown:#?}",
        failures.len()
    );
}
