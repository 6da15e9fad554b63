//! TCP Fast Open (RFC 7413) between two TCP tables, a client and a server, exchanging segment
//! values (payloads copied out of the send buffers), with a fake clock.

use super::tcp::{ListenHandle, TcpEndpoints, TcpHandle};
use crate::tcp::segment::{Flags, Incoming, Options, Outgoing};
use crate::tcp::{SeqNum, State, TcpConfig};
use crate::time::Instant;
use crate::wire::tcp_option::TfoCookie;
use core::net::{Ipv4Addr, SocketAddrV4};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A segment as it left one table: (from, to, header, payload).
type Seg = (SocketAddrV4, SocketAddrV4, Outgoing, Vec<u8>);

fn out(ep: &mut TcpEndpoints, now: Instant) -> Vec<Seg> {
    let mut v = Vec::new();
    ep.poll_output(now, &mut |l, r, s, buf| {
        let mut data = vec![0u8; s.payload_len];
        buf.copy_out(s.payload_offset, &mut data);
        v.push((l, r, s.clone(), data));
        true
    });
    v
}

fn deliver(ep: &mut TcpEndpoints, now: Instant, segs: &[Seg]) {
    for (from, to, s, data) in segs {
        let seg = Incoming {
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            window: s.window,
            options: s.options.clone(),
            payload: data,
        };
        ep.on_segment(now, *to, *from, &seg);
    }
}

fn server() -> (TcpEndpoints, ListenHandle) {
    let mut s = TcpEndpoints::new(TcpConfig::default(), [1; 16], 64);
    let l = s.listen(80, 16).unwrap();
    assert!(s.set_fast_open(l, 16));
    (s, l)
}

fn client() -> TcpEndpoints {
    TcpEndpoints::new(TcpConfig::default(), [2; 16], 64)
}

fn read_all(ep: &mut TcpEndpoints, h: TcpHandle) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = ep.get_mut(h).unwrap().recv(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

/// A first connection: the SYN asks for a cookie, the server gives one; returns the
/// connections.
fn first_connection(c: &mut TcpEndpoints, s: &mut TcpEndpoints, l: ListenHandle) -> TcpHandle {
    let (h, n) = c
        .connect_fast_open(t(0), CLIENT, SERVER, TcpConfig::default(), b"hello")
        .unwrap();
    assert_eq!(n, 5);
    let syn = out(c, t(0));
    assert_eq!(syn.len(), 1);
    assert_eq!(syn[0].2.options.fast_open, Some(TfoCookie::REQUEST));
    assert!(syn[0].3.is_empty(), "no data without a cookie");
    deliver(s, t(1), &syn);
    let synack = out(s, t(1));
    let cookie = synack[0].2.options.fast_open.expect("a cookie offered");
    assert_eq!(cookie.as_bytes().len(), 8);
    deliver(c, t(2), &synack);
    let ack = out(c, t(2));
    assert!(
        ack.iter().any(|x| x.3 == b"hello"),
        "data after the handshake"
    );
    deliver(s, t(3), &ack);
    let a = s.accept(l).unwrap();
    assert_eq!(read_all(s, a), b"hello");
    assert_eq!(
        c.fast_open_cache().get(*SERVER.ip()).unwrap().cookie,
        Some(cookie)
    );
    h
}

#[test]
fn first_connection_gets_a_cookie_and_the_second_delivers_data_before_the_final_ack() {
    let (mut s, l) = server();
    let mut c = client();
    first_connection(&mut c, &mut s, l);
    assert_eq!(s.stats().fast_open_cookie_reqd, 1);
    assert_eq!(s.stats().fast_open_passive, 0);
    // Second connection: cookie and data in the SYN.
    let (h, _) = c
        .connect_fast_open(t(100), CLIENT, SERVER, TcpConfig::default(), b"again")
        .unwrap();
    let syn = out(&mut c, t(100));
    assert_eq!(syn.len(), 1);
    assert!(syn[0].2.flags.syn());
    assert_eq!(syn[0].3, b"again");
    assert!(syn[0].2.options.fast_open.is_some_and(|c| !c.is_request()));
    deliver(&mut s, t(101), &syn);
    // Acceptable and readable before the third ACK.
    let a = s.accept(l).unwrap();
    assert_eq!(s.get(a).unwrap().state(), State::SynReceived);
    assert_eq!(read_all(&mut s, a), b"again");
    assert_eq!(s.stats().fast_open_passive, 1);
    // (Other segments may be due for the first connection.)
    let synack: Vec<Seg> = out(&mut s, t(101))
        .into_iter()
        .filter(|x| x.1 == syn[0].0)
        .collect();
    assert_eq!(synack.len(), 1);
    let irs = syn[0].2.seq;
    assert_eq!(
        synack[0].2.ack,
        irs + 6u32,
        "the SYN-ACK acknowledges the data"
    );
    deliver(&mut c, t(102), &synack);
    assert_eq!(c.get(h).unwrap().state(), State::Established);
    let ack = out(&mut c, t(102));
    assert!(ack.iter().all(|x| x.3.is_empty()), "nothing to send again");
    assert_eq!(c.stats().fast_open_active, 1);
    deliver(&mut s, t(103), &ack);
    assert_eq!(s.get(a).unwrap().state(), State::Established);
    // Not queued twice by the final ACK.
    assert_eq!(s.accept_queue_len(l), 0);
}

#[test]
fn bad_cookie_falls_back_to_the_handshake_and_offers_a_valid_cookie() {
    let (mut s, l) = server();
    let client_addr = SocketAddrV4::new(CLIENT, 40000);
    let bad = TfoCookie::new(&[0xee; 8]).unwrap();
    let syn = Incoming {
        seq: SeqNum(1000),
        ack: SeqNum(0),
        flags: Flags::SYN,
        window: 65535,
        options: Options {
            mss: Some(1460),
            fast_open: Some(bad),
            ..Options::default()
        },
        payload: b"data",
    };
    s.on_segment(t(0), SERVER, client_addr, &syn);
    assert!(s.accept(l).is_err(), "not before the handshake");
    let synack = out(&mut s, t(0));
    assert_eq!(synack.len(), 1);
    assert_eq!(
        synack[0].2.ack,
        SeqNum(1001),
        "the data is not acknowledged"
    );
    let offered = synack[0].2.options.fast_open.unwrap();
    assert!(!offered.is_request() && offered != bad);
    assert_eq!(s.stats().fast_open_passive_fail, 1);
    assert_eq!(s.stats().fast_open_passive, 0);
    // The offered cookie is valid: a SYN with it is a Fast Open.
    let syn2 = Incoming {
        options: Options {
            mss: Some(1460),
            fast_open: Some(offered),
            ..Options::default()
        },
        ..syn.clone()
    };
    s.on_segment(t(5), SERVER, SocketAddrV4::new(CLIENT, 40001), &syn2);
    assert!(s.accept(l).is_ok());
    assert_eq!(s.stats().fast_open_passive, 1);
}

#[test]
fn syn_ack_acknowledging_only_the_syn_makes_the_client_send_the_data_again() {
    let (mut s, l) = server();
    let mut c = client();
    first_connection(&mut c, &mut s, l);
    let (h, _) = c
        .connect_fast_open(t(100), CLIENT, SERVER, TcpConfig::default(), b"again")
        .unwrap();
    let syn = out(&mut c, t(100));
    assert_eq!(syn[0].3, b"again");
    let iss = syn[0].2.seq;
    // A server (or middlebox) that acknowledges only the SYN.
    let synack = Incoming {
        seq: SeqNum(5000),
        ack: iss + 1u32,
        flags: Flags::SYN | Flags::ACK,
        window: 65535,
        options: Options {
            mss: Some(1460),
            ..Options::default()
        },
        payload: &[],
    };
    c.on_segment(t(101), syn[0].0, SERVER, &synack);
    assert_eq!(c.get(h).unwrap().state(), State::Established);
    let next = out(&mut c, t(101));
    let data = next
        .iter()
        .find(|x| !x.3.is_empty())
        .expect("the data again");
    assert_eq!((data.2.seq, data.3.as_slice()), (iss + 1u32, &b"again"[..]));
    assert_eq!(c.stats().fast_open_active_fail, 1);
    assert_eq!(c.stats().fast_open_active, 0);
}

#[test]
fn a_lost_syn_with_data_disables_fast_open_to_that_server() {
    let (mut s, l) = server();
    let mut c = client();
    first_connection(&mut c, &mut s, l);
    c.connect_fast_open(t(100), CLIENT, SERVER, TcpConfig::default(), b"again")
        .unwrap();
    let syn = out(&mut c, t(100));
    assert_eq!(syn[0].3, b"again");
    // No answer: the SYN is sent again after 1 s, without data or Fast Open option.
    c.on_timeout(t(1100));
    let again: Vec<Seg> = out(&mut c, t(1100))
        .into_iter()
        .filter(|x| x.0 == syn[0].0)
        .collect();
    assert_eq!(again.len(), 1);
    assert!(again[0].2.flags.syn());
    assert!(again[0].3.is_empty());
    assert_eq!(again[0].2.options.fast_open, None);
    assert_eq!(c.stats().fast_open_active_fail, 1);
    // The next connection to that server does not try Fast Open.
    c.connect_fast_open(t(2000), CLIENT, SERVER, TcpConfig::default(), b"third")
        .unwrap();
    let syn = out(&mut c, t(2000));
    let first = syn.iter().find(|x| x.2.seq != again[0].2.seq).unwrap();
    assert!(first.3.is_empty());
    assert_eq!(first.2.options.fast_open, None);
}

#[test]
fn too_many_pending_fast_opens_fall_back_to_the_plain_handshake() {
    let (mut s, l) = server();
    let mut c = client();
    first_connection(&mut c, &mut s, l);
    assert!(s.set_fast_open(l, 1));
    let mut syns = Vec::new();
    for i in 0..2 {
        c.connect_fast_open(t(100 + i), CLIENT, SERVER, TcpConfig::default(), b"x")
            .unwrap();
        syns.extend(out(&mut c, t(100 + i)));
    }
    assert_eq!(syns.len(), 2);
    deliver(&mut s, t(110), &syns);
    assert_eq!(s.stats().fast_open_passive, 1);
    assert_eq!(s.stats().fast_open_listen_overflow, 1);
    assert_eq!(s.accept_queue_len(l), 1);
    assert_eq!(s.request_count(), 1);
}

/// A second, Fast Open connection carrying `request` in its SYN, delivered to the server and
/// accepted there in SYN-RECEIVED: (client handle, client address, server handle).
fn fast_open_accepted(
    c: &mut TcpEndpoints,
    s: &mut TcpEndpoints,
    l: ListenHandle,
    request: &[u8],
) -> (TcpHandle, SocketAddrV4, TcpHandle) {
    first_connection(c, s, l);
    let (h, _) = c
        .connect_fast_open(t(100), CLIENT, SERVER, TcpConfig::default(), request)
        .unwrap();
    let syn = out(c, t(100));
    assert_eq!(syn[0].3, request);
    deliver(s, t(101), &syn);
    let a = s.accept(l).unwrap();
    assert_eq!(s.get(a).unwrap().state(), State::SynReceived);
    assert_eq!(read_all(s, a), request);
    (h, syn[0].0, a)
}

/// Segments from the server to one client address.
fn to(segs: Vec<Seg>, client: SocketAddrV4) -> Vec<Seg> {
    segs.into_iter().filter(|x| x.1 == client).collect()
}

/// RFC 7413 4.2.2 / Linux `tcp_sendmsg` on a `TCP_SYN_RECV` Fast Open child: the server writes
/// its response before the final ACK; it follows the SYN-ACK at once, and the client reads it
/// with the handshake.
#[test]
fn fast_open_server_writes_before_the_final_ack_and_the_client_gets_the_response_first() {
    let (mut s, l) = server();
    let mut c = client();
    let (h, client_addr, a) = fast_open_accepted(&mut c, &mut s, l, b"GET");
    assert!(
        s.readiness(a)
            .contains(crate::socket::events::Readiness::WRITABLE),
        "writable in SYN-RECEIVED"
    );
    assert_eq!(s.get_mut(a).unwrap().send(b"response"), Ok(8));
    let segs = to(out(&mut s, t(101)), client_addr);
    assert_eq!(segs.len(), 2, "SYN-ACK, then the data: {segs:?}");
    assert!(segs[0].2.flags.syn() && segs[0].3.is_empty());
    let iss = segs[0].2.seq;
    assert_eq!(segs[1].2.seq, iss + 1u32, "the data follows the SYN");
    assert_eq!(segs[1].3, b"response");
    assert!(segs[1].2.flags.ack() && !segs[1].2.flags.syn());
    deliver(&mut c, t(102), &segs);
    assert_eq!(c.get(h).unwrap().state(), State::Established);
    assert_eq!(read_all(&mut c, h), b"response");
    let ack = out(&mut c, t(102));
    assert!(ack.iter().all(|x| x.3.is_empty()));
    assert!(
        ack.iter().any(|x| x.2.ack == iss + 9u32),
        "SYN and data acked"
    );
    deliver(&mut s, t(103), &ack);
    assert_eq!(s.get(a).unwrap().state(), State::Established);
    assert_eq!(
        s.get(a).unwrap().send_queue_len(),
        0,
        "the response is acked"
    );
    // Nothing is due again: no retransmission timer left for acknowledged data.
    s.on_timeout(t(5000));
    assert!(to(out(&mut s, t(5000)), client_addr).is_empty());
}

/// The client's ACK of the SYN-ACK and the response is lost: the server retransmits only the
/// SYN-ACK (Linux `tcp_fastopen_synack_timer`), the client's answer acknowledges the data
/// too, and the data is not sent twice.
#[test]
fn fast_open_early_response_survives_a_lost_client_ack_without_being_resent() {
    let (mut s, l) = server();
    let mut c = client();
    let (h, client_addr, a) = fast_open_accepted(&mut c, &mut s, l, b"GET");
    let synack = to(out(&mut s, t(101)), client_addr);
    assert_eq!(synack.len(), 1);
    // Written after the SYN-ACK left: it goes out by itself.
    assert_eq!(s.get_mut(a).unwrap().send(b"late"), Ok(4));
    let data = to(out(&mut s, t(102)), client_addr);
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].3, b"late");
    assert_eq!(data[0].2.seq, synack[0].2.seq + 1u32);
    deliver(&mut c, t(103), &synack);
    deliver(&mut c, t(103), &data);
    assert_eq!(read_all(&mut c, h), b"late");
    let lost = out(&mut c, t(103));
    assert!(
        !lost.is_empty(),
        "the client acknowledged (and the ACK is lost)"
    );
    // The SYN-ACK timer: only the SYN-ACK again.
    s.on_timeout(t(1200));
    let again = to(out(&mut s, t(1200)), client_addr);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].2.flags.syn() && again[0].3.is_empty());
    assert_eq!(s.stats().fast_open_passive, 1);
    // The client answers the old SYN-ACK with an ACK that covers the data.
    deliver(&mut c, t(1201), &again);
    let ack = out(&mut c, t(1201));
    assert!(
        ack.iter().any(|x| x.2.ack == synack[0].2.seq + 5u32),
        "{ack:?}"
    );
    deliver(&mut s, t(1202), &ack);
    assert_eq!(s.get(a).unwrap().state(), State::Established);
    assert_eq!(s.get(a).unwrap().send_queue_len(), 0);
    assert!(
        to(out(&mut s, t(1202)), client_addr).is_empty(),
        "nothing resent"
    );
}

/// The response itself is lost: the client's ACK completes the handshake without covering
/// it, and the server's retransmission timer sends it again.
#[test]
fn fast_open_early_response_lost_is_retransmitted_after_the_handshake() {
    let (mut s, l) = server();
    let mut c = client();
    let (h, client_addr, a) = fast_open_accepted(&mut c, &mut s, l, b"GET");
    assert_eq!(s.get_mut(a).unwrap().send(b"response"), Ok(8));
    let segs = to(out(&mut s, t(101)), client_addr);
    assert_eq!(segs.len(), 2);
    // Only the SYN-ACK arrives.
    deliver(&mut c, t(102), &segs[..1]);
    let ack = out(&mut c, t(102));
    assert!(ack.iter().all(|x| x.2.ack == segs[0].2.seq + 1u32));
    deliver(&mut s, t(103), &ack);
    assert_eq!(s.get(a).unwrap().state(), State::Established);
    assert_eq!(s.get(a).unwrap().send_queue_len(), 8);
    s.on_timeout(t(2500));
    let resent = to(out(&mut s, t(2500)), client_addr);
    let d = resent.iter().find(|x| !x.3.is_empty()).expect("resent");
    assert_eq!((d.2.seq, d.3.as_slice()), (segs[1].2.seq, &b"response"[..]));
    deliver(&mut c, t(2501), &resent);
    assert_eq!(read_all(&mut c, h), b"response");
}

/// Without Fast Open, a connection in SYN-RECEIVED is not writable (a plain handshake's child
/// is not even accepted before the final ACK; a simultaneous open's is not writable either).
#[test]
fn a_plain_syn_received_connection_is_not_writable() {
    let mut tcb = crate::tcp::Tcb::accept(
        TcpConfig::default(),
        SERVER,
        SocketAddrV4::new(CLIENT, 4000),
        7,
        &Incoming {
            seq: SeqNum(1),
            ack: SeqNum(0),
            flags: Flags::SYN,
            window: 65535,
            options: Options::default(),
            payload: &[],
        },
        t(0),
    );
    assert_eq!(tcb.send(b"x"), Err(crate::tcp::SendError::WouldBlock));
    tcb.set_passive_fast_open();
    assert_eq!(tcb.send(b"x"), Ok(1));
}

/// A server that writes its response and closes before the final ACK (an HTTP/1.0-style
/// exchange in one round trip): the response follows the SYN-ACK, the FIN waits for the
/// handshake (RFC 9293 3.10.4, CLOSE in SYN-RECEIVED: "queue for processing after entering
/// ESTABLISHED state") and then follows the data.
#[test]
fn fast_open_server_writes_and_closes_before_the_final_ack() {
    let (mut s, l) = server();
    let mut c = client();
    let (h, client_addr, a) = fast_open_accepted(&mut c, &mut s, l, b"GET");
    assert_eq!(s.get_mut(a).unwrap().send(b"bye"), Ok(3));
    s.close(t(101), a);
    let segs = to(out(&mut s, t(101)), client_addr);
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[1].3, b"bye");
    assert!(
        segs.iter().all(|x| !x.2.flags.fin()),
        "no FIN before the handshake"
    );
    deliver(&mut c, t(102), &segs);
    assert_eq!(read_all(&mut c, h), b"bye");
    let ack = out(&mut c, t(102));
    deliver(&mut s, t(103), &ack);
    let fin = to(out(&mut s, t(103)), client_addr);
    assert_eq!(fin.len(), 1, "{fin:?}");
    assert!(fin[0].2.flags.fin());
    assert_eq!(fin[0].2.seq, segs[0].2.seq + 4u32);
    deliver(&mut c, t(104), &fin);
    assert!(c.get(h).unwrap().at_eof());
}
