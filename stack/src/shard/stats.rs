//! Per-shard counters in the style of `netstat -s` (and Linux's `/proc/net/snmp` names where one
//! exists), plus one counter per named drop reason.

use crate::wire::Error;

/// Counts of frames dropped for each [`Error`] reason at one layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropReasons {
    counts: [u64; 8],
}

impl DropReasons {
    const ALL: [Error; 8] = [
        Error::Truncated,
        Error::BadLength,
        Error::BadHeaderLen,
        Error::BadVersion,
        Error::BadChecksum,
        Error::BadOption,
        Error::Unsupported,
        Error::Malformed,
    ];

    fn index(e: Error) -> usize {
        match e {
            Error::Truncated => 0,
            Error::BadLength => 1,
            Error::BadHeaderLen => 2,
            Error::BadVersion => 3,
            Error::BadChecksum => 4,
            Error::BadOption => 5,
            Error::Unsupported => 6,
            Error::Malformed => 7,
        }
    }

    /// Counts one drop for `reason`.
    pub fn count(&mut self, reason: Error) {
        self.counts[Self::index(reason)] += 1;
    }

    /// Drops counted for `reason`.
    pub fn get(&self, reason: Error) -> u64 {
        self.counts[Self::index(reason)]
    }

    /// Drops for every reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Calls `f` with each reason's counter, mutably, in the order of [`DropReasons::iter`].
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut u64)) {
        self.counts.iter_mut().for_each(&mut f);
    }

    /// Each reason with its count.
    pub fn iter(&self) -> impl Iterator<Item = (Error, u64)> + '_ {
        Self::ALL.iter().map(|e| (*e, self.get(*e)))
    }
}

/// Defines a counter group: a struct of `u64` fields, each with a doc string and a public name.
macro_rules! counters {
    ($(#[$m:meta])* $group:ident, $prefix:literal { $($(#[doc = $doc:literal])* $field:ident: $name:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $group {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        impl $group {
            /// The group's name, as `netstat -s` heads it.
            pub const NAME: &'static str = $prefix;

            /// Calls `f` with each counter's name and value.
            pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
                $(f($name, self.$field);)*
            }

            /// Calls `f` with each counter, mutably, in the order of `for_each`.
            pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut u64)) {
                $(f(&mut self.$field);)*
            }
        }
    };
}

counters!(
    /// Ethernet layer.
    EthernetStats, "Ethernet" {
        /// Frames received.
        rx_frames: "InFrames",
        /// Bytes received.
        rx_bytes: "InOctets",
        /// Frames sent.
        tx_frames: "OutFrames",
        /// Bytes sent.
        tx_bytes: "OutOctets",
        /// Frames for another MAC, or multicast we did not join.
        rx_not_for_us: "InNotForUs",
        /// Frames of an EtherType this stack does not speak (IPv6, LLDP, ...).
        rx_unknown_ethertype: "InUnknownEtherType",
        /// Frames too short for an Ethernet header.
        rx_truncated: "InTruncated",
        /// Frames tagged with a VLAN other than 0 (no VLAN is configured).
        rx_other_vlan: "InOtherVlan",
        /// Frames not sent because the port had no free buffer or ring slot.
        tx_no_buffer: "OutNoBuffer",
    }
);

counters!(
    /// ARP.
    ArpStats, "Arp" {
        /// Requests received.
        rx_requests: "InRequests",
        /// Replies received.
        rx_replies: "InReplies",
        /// Requests that were for another host's address (not answered).
        rx_not_for_us: "InNotForUs",
        /// Malformed or non-Ethernet/IPv4 ARP packets.
        rx_errors: "InErrors",
        /// Requests sent (resolution and refresh probes).
        tx_requests: "OutRequests",
        /// Replies sent.
        tx_replies: "OutReplies",
        /// Replies dropped because the output queue was full.
        tx_dropped: "OutDropped",
        /// Gratuitous announcements sent.
        tx_gratuitous: "OutGratuitous",
        /// Addresses resolved.
        resolved: "Resolved",
        /// Resolutions that failed after every probe.
        failed: "Failed",
        /// Packets dropped because their next hop never resolved.
        unresolved_drops: "UnresolvedDrops",
        /// Packets dropped because the queue of packets waiting on ARP was full.
        pending_overflow: "PendingOverflow",
        /// Resolutions refused because the cache was full of entries still resolving.
        cache_full: "CacheFull",
    }
);

counters!(
    /// IPv4, named as in Linux's `/proc/net/snmp` `Ip:` line where one exists.
    IpStats, "Ip" {
        /// Datagrams received (before any check).
        in_receives: "InReceives",
        /// Malformed headers: bad version, IHL, lengths or checksum (see the drop reasons).
        in_hdr_errors: "InHdrErrors",
        /// Datagrams for an address that is not ours.
        in_addr_errors: "InAddrErrors",
        /// Datagrams for a protocol we do not handle.
        in_unknown_protos: "InUnknownProtos",
        /// Datagrams delivered to ICMP, UDP or TCP.
        in_delivers: "InDelivers",
        /// Fragments received and dropped: shardnet does not reassemble (it sets DF and clamps MSS).
        frag_dropped: "ReasmFails",
        /// Datagrams handed down for sending.
        out_requests: "OutRequests",
        /// Datagrams with no route to their destination.
        out_no_routes: "OutNoRoutes",
    }
);

counters!(
    /// ICMP.
    IcmpStats, "Icmp" {
        /// Messages received.
        in_msgs: "InMsgs",
        /// Malformed messages or bad checksums.
        in_errors: "InErrors",
        /// Messages of types this stack ignores.
        in_unsupported: "InUnsupported",
        /// Echo requests received.
        in_echos: "InEchos",
        /// Echo replies received.
        in_echo_reps: "InEchoReps",
        /// Destination unreachable messages received.
        in_dest_unreachs: "InDestUnreachs",
        /// Messages sent.
        out_msgs: "OutMsgs",
        /// Echo requests sent.
        out_echos: "OutEchos",
        /// Echo replies sent.
        out_echo_reps: "OutEchoReps",
        /// Destination unreachable messages sent.
        out_dest_unreachs: "OutDestUnreachs",
        /// Error messages not sent because of the rate limit (Linux `icmp_msgs_per_sec`).
        out_rate_limited: "OutRateLimitGlobal",
        /// Replies dropped because the output queue was full.
        out_dropped: "OutDropped",
        /// Echo replies dropped because the ping reply queue was full.
        in_echo_reps_dropped: "InEchoRepsDropped",
    }
);

counters!(
    /// UDP, named as in Linux's `/proc/net/snmp` `Udp:` line.
    UdpStats, "Udp" {
        /// Datagrams delivered to a socket.
        in_datagrams: "InDatagrams",
        /// Datagrams to a port with no socket.
        no_ports: "NoPorts",
        /// Malformed datagrams (see the drop reasons).
        in_errors: "InErrors",
        /// Datagrams dropped because the socket's receive queue was full.
        rcvbuf_errors: "RcvbufErrors",
        /// Datagrams dropped by a connected socket because they came from another peer.
        in_filtered: "InFiltered",
        /// Datagrams with a bad checksum.
        in_csum_errors: "InCsumErrors",
        /// Datagrams sent.
        out_datagrams: "OutDatagrams",
        /// Sends refused because the socket's send queue was full.
        sndbuf_errors: "SndbufErrors",
    }
);

counters!(
    /// TCP, named as in Linux's `/proc/net/snmp` `Tcp:` line where one exists.
    TcpStats, "Tcp" {
        /// Active opens (`connect`).
        active_opens: "ActiveOpens",
        /// Passive opens (SYNs accepted by a listener).
        passive_opens: "PassiveOpens",
        /// Connection attempts that failed (SYN-SENT or SYN-RECEIVED to CLOSED).
        attempt_fails: "AttemptFails",
        /// Connections reset by the peer while established.
        estab_resets: "EstabResets",
        /// Connections in ESTABLISHED or CLOSE-WAIT now.
        curr_estab: "CurrEstab",
        /// Segments received.
        in_segs: "InSegs",
        /// Segments sent.
        out_segs: "OutSegs",
        /// Malformed segments (see the drop reasons).
        in_errs: "InErrs",
        /// Segments with a bad checksum.
        in_csum_errors: "InCsumErrors",
        /// Segments retransmitted.
        retrans_segs: "RetransSegs",
        /// Resets sent for segments that matched no connection.
        out_rsts: "OutRsts",
        /// SYNs dropped because a listener's queue was full.
        listen_overflows: "ListenOverflows",
    }
);

counters!(
    /// TCP extensions, named as in Linux's `/proc/net/netstat` `TcpExt:` line where one exists.
    TcpExtStats, "TcpExt" {
        /// SYNs and final ACKs that listeners dropped (queues full, tables full).
        listen_drops: "ListenDrops",
        /// SYNs dropped because a listener's SYN queue was full.
        req_q_full_drops: "TCPReqQFullDrop",
        /// Connections created from a SYN with a valid Fast Open cookie.
        fast_open_passive: "TCPFastOpenPassive",
        /// SYNs with an invalid Fast Open cookie.
        fast_open_passive_fail: "TCPFastOpenPassiveFail",
        /// SYNs asking for a Fast Open cookie.
        fast_open_cookie_reqd: "TCPFastOpenCookieReqd",
        /// Valid Fast Open SYNs handled as plain ones (too many pending).
        fast_open_listen_overflow: "TCPFastOpenListenOverflow",
        /// Active opens whose SYN data was acknowledged.
        fast_open_active: "TCPFastOpenActive",
        /// Active opens whose SYN data was not acknowledged or whose SYN was lost.
        fast_open_active_fail: "TCPFastOpenActiveFail",
        /// SYN cookies sent.
        syncookies_sent: "SyncookiesSent",
        /// Valid SYN cookies received.
        syncookies_recv: "SyncookiesRecv",
        /// ACKs checked as SYN cookies that failed.
        syncookies_failed: "SyncookiesFailed",
        /// SYNs answered with a cookie because a SYN queue was full.
        req_q_full_do_cookies: "TCPReqQFullDoCookies",
        /// Bare final ACKs dropped while TCP_DEFER_ACCEPT waited for data.
        defer_accept_drops: "TCPDeferAcceptDrop",
        /// TIME-WAIT entries that ended after 2*MSL.
        tw: "TW",
        /// TIME-WAIT 4-tuples reused by an active open (`tcp_tw_reuse`).
        tw_recycled: "TWRecycled",
        /// TIME-WAIT entries ended early by a new incarnation's SYN (RFC 6191).
        tw_killed: "TWKilled",
        /// Connections closed without TIME-WAIT because the TIME-WAIT table was full.
        tw_overflow: "TCPTimeWaitOverflow",
        /// Active opens refused with EADDRNOTAVAIL: the ephemeral port range was used up.
        port_exhausted: "TCPEphemeralPortExhausted",
        /// SYNs whose Window Scale shift was above 14, used as 14 (RFC 7323 2.3 "SHOULD log";
        /// Linux logs "Illegal window scaling value", with no counter).
        window_scale_clamped: "TCPWindowScaleClamped",
    }
);

counters!(
    /// Zero-copy receive (`shard/tcp/in_place.rs`): TCP data left in the received frames
    /// through the application step. No Linux counterpart.
    ZeroCopyStats, "TcpZeroCopy" {
        /// Segments whose data stayed in its frame.
        held_segs: "HeldSegs",
        /// Bytes that stayed in their frames.
        held_bytes: "HeldBytes",
        /// Bytes the application read straight from the frames (never copied by the stack).
        delivered_bytes: "DeliveredBytes",
        /// Bytes the application left unread, copied into receive buffers after its step.
        spilled_bytes: "SpilledBytes",
        /// Segments copied because the table of bytes in place was full.
        table_full: "TableFull",
        /// Connections reset because a frame holding their bytes was gone before they were
        /// read or copied (a runtime that broke the holding contract; always 0 otherwise).
        lost: "Lost",
    }
);

/// All counters of one shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ethernet.
    pub ethernet: EthernetStats,
    /// ARP.
    pub arp: ArpStats,
    /// IPv4.
    pub ip: IpStats,
    /// ICMP.
    pub icmp: IcmpStats,
    /// UDP.
    pub udp: UdpStats,
    /// TCP.
    pub tcp: TcpStats,
    /// TCP extensions (Linux `TcpExt`).
    pub tcp_ext: TcpExtStats,
    /// Zero-copy receive.
    pub zero_copy: ZeroCopyStats,
    /// Why IPv4 headers were dropped.
    pub ip_drops: DropReasons,
    /// Why ARP packets were dropped.
    pub arp_drops: DropReasons,
    /// Why ICMP messages were dropped.
    pub icmp_drops: DropReasons,
    /// Why UDP datagrams were dropped.
    pub udp_drops: DropReasons,
    /// Why TCP segments were dropped.
    pub tcp_drops: DropReasons,
}

impl Stats {
    /// Calls `f(group, name, value)` for every counter, drop reasons as `Drop<reason>` in their
    /// group; the order is stable.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, &'static str, u64)) {
        self.ethernet.for_each(|n, v| f(EthernetStats::NAME, n, v));
        self.arp.for_each(|n, v| f(ArpStats::NAME, n, v));
        self.ip.for_each(|n, v| f(IpStats::NAME, n, v));
        self.icmp.for_each(|n, v| f(IcmpStats::NAME, n, v));
        self.udp.for_each(|n, v| f(UdpStats::NAME, n, v));
        self.tcp.for_each(|n, v| f(TcpStats::NAME, n, v));
        self.tcp_ext.for_each(|n, v| f(TcpExtStats::NAME, n, v));
        self.zero_copy.for_each(|n, v| f(ZeroCopyStats::NAME, n, v));
        for (group, drops) in [
            (ArpStats::NAME, &self.arp_drops),
            (IpStats::NAME, &self.ip_drops),
            (IcmpStats::NAME, &self.icmp_drops),
            (UdpStats::NAME, &self.udp_drops),
            (TcpStats::NAME, &self.tcp_drops),
        ] {
            for (reason, v) in drops.iter() {
                f(group, drop_name(reason), v);
            }
        }
    }

    /// Calls `f` with every counter, mutably, in the order of [`Stats::for_each`]: a flat view
    /// that lets the runtime publish the counters into atomics and read them back.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut u64)) {
        self.ethernet.for_each_mut(&mut f);
        self.arp.for_each_mut(&mut f);
        self.ip.for_each_mut(&mut f);
        self.icmp.for_each_mut(&mut f);
        self.udp.for_each_mut(&mut f);
        self.tcp.for_each_mut(&mut f);
        self.tcp_ext.for_each_mut(&mut f);
        self.zero_copy.for_each_mut(&mut f);
        for drops in [
            &mut self.arp_drops,
            &mut self.ip_drops,
            &mut self.icmp_drops,
            &mut self.udp_drops,
            &mut self.tcp_drops,
        ] {
            drops.for_each_mut(&mut f);
        }
    }

    /// The counters as `netstat -s`-like text: one `Group: Name Value` line per non-zero counter
    /// (all counters if `all`).
    pub fn render(&self, all: bool) -> String {
        let mut out = String::new();
        self.for_each(|g, n, v| {
            if all || v != 0 {
                out.push_str(&format!("{g}: {n} {v}\n"));
            }
        });
        out
    }
}

fn drop_name(e: Error) -> &'static str {
    match e {
        Error::Truncated => "DropTruncated",
        Error::BadLength => "DropBadLength",
        Error::BadHeaderLen => "DropBadHeaderLen",
        Error::BadVersion => "DropBadVersion",
        Error::BadChecksum => "DropBadChecksum",
        Error::BadOption => "DropBadOption",
        Error::Unsupported => "DropUnsupported",
        Error::Malformed => "DropMalformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_are_counted_by_name() {
        let mut s = Stats::default();
        s.ip_drops.count(Error::BadChecksum);
        s.ip_drops.count(Error::BadChecksum);
        s.udp.no_ports = 3;
        let text = s.render(false);
        assert!(text.contains("Ip: DropBadChecksum 2\n"), "{text}");
        assert!(text.contains("Udp: NoPorts 3\n"), "{text}");
        assert_eq!(text.lines().count(), 2);
        assert_eq!(s.ip_drops.total(), 2);
    }

    #[test]
    fn every_counter_is_listed_once() {
        let mut names = Vec::new();
        Stats::default().for_each(|g, n, _| names.push(format!("{g}:{n}")));
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len());
        assert!(names.len() > 60);
    }
}
