//! Dual-stack allocations on real sockets (RFC 8656 §7.2, ADDITIONAL-ADDRESS-FAMILY): a
//! server relaying from 127.0.0.1 and ::1 grants a client, over IPv4 and over IPv6, one
//! relayed address of each family, and relays to an IPv4 and an IPv6 peer from the right one.

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::{error_code, settings, Client, Conn, LIMIT};
use stun_codec::attr::*;
use stun_codec::{Class, Message, MessageType, Method};
use turn_server::driver::{RelayIp, Server};

fn ipv6_loopback() -> bool {
    let ok = UdpSocket::bind("[::1]:0").is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "no ::1 on this machine; CI must have IPv6 loopback"
        );
        eprintln!("SKIPPED: no IPv6 loopback");
    }
    ok
}

fn peer(at: &str) -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind(at).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

#[test]
fn one_allocation_relays_to_ipv4_and_ipv6_peers_over_both_families() {
    if !ipv6_loopback() {
        return;
    }
    let mut s = settings(None);
    s.udp = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    s.tcp = vec![];
    s.relay_ips = ["127.0.0.1", "::1"]
        .iter()
        .map(|ip| RelayIp {
            bind: ip.parse().unwrap(),
            advertise: ip.parse().unwrap(),
        })
        .collect();
    s.turn.relay_families = vec![AddressFamily::V4, AddressFamily::V6];
    let server = Server::start(s).unwrap();
    let (p4, a4) = peer("127.0.0.1:0");
    let (p6, a6) = peer("[::1]:0");
    for &listener in server.udp_addrs() {
        let mut c = Client::new(Conn::udp(listener), "alice", "secret");
        let r = c.call(Method::ALLOCATE, &|b| {
            b.add(&RequestedTransport::UDP).unwrap();
            b.add(&AdditionalAddressFamily(AddressFamily::V6)).unwrap();
        });
        assert_eq!(error_code(&r), None, "over {listener}");
        let relays: Vec<SocketAddr> = Message::parse(&r)
            .unwrap()
            .get_all::<XorRelayedAddress>()
            .map(|a| a.unwrap().0)
            .collect();
        assert_eq!(relays.len(), 2, "{relays:?}");
        let (r4, r6) = (relays[0], relays[1]);
        assert_eq!(
            (r4.ip().to_string(), r6.ip().to_string()),
            ("127.0.0.1".into(), "::1".into())
        );
        // Both peers in one CreatePermission.
        let r = c.call(Method::CREATE_PERMISSION, &|b| {
            b.add(&XorPeerAddress(a4)).unwrap();
            b.add(&XorPeerAddress(a6)).unwrap();
        });
        assert_eq!(error_code(&r), None);
        for (sock, addr, relay) in [(&p4, a4, r4), (&p6, a6, r6)] {
            c.send_indication(addr, b"to the peer");
            let mut buf = [0u8; 64];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"to the peer"[..], relay));
            sock.send_to(b"to the client", relay).unwrap();
            let m = c.conn.recv();
            let m = Message::parse(&m).unwrap();
            assert_eq!(
                m.message_type(),
                MessageType::new(Method::DATA, Class::Indication)
            );
            assert_eq!(
                m.get::<XorPeerAddress>().unwrap(),
                Some(XorPeerAddress(addr))
            );
        }
        // A Refresh to 0 ends both.
        let r = c.call(Method::REFRESH, &|b| {
            b.add(&Lifetime(0)).unwrap();
        });
        assert_eq!(error_code(&r), None);
    }
    server.shutdown();
}
