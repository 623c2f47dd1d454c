//! The tokio driver end to end on loopback: two sessions connect directly, and through our
//! TURN server over UDP, TCP and TLS with relayed candidates only.

mod common;

use common::{connect, exchange, turn_server};
use ice_agent::driver::{self, DriverConfig, Event, IceServer};
use ice_agent::{AgentConfig, CandidateKind, ConnectionState, Event as Ice, Role};

fn config(role: Role) -> DriverConfig {
    let mut agent = AgentConfig::new(role);
    agent.allow_loopback = true;
    let mut c = DriverConfig::new(agent);
    c.ips = vec!["127.0.0.1".parse().unwrap()];
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_connect_on_loopback_and_exchange_data() {
    let mut ca = config(Role::Controlling);
    ca.port_range = Some((41_000, 41_999));
    let a = driver::start(ca).await.unwrap();
    let b = driver::start(config(Role::Controlled)).await.unwrap();
    let (mut a, mut b) = connect(a, b).await;
    assert_eq!(a.selected.0.kind, CandidateKind::Host);
    assert_eq!(a.selected.1.kind, CandidateKind::Host);
    assert_eq!(a.selected.0.addr, b.selected.1.addr);
    assert_eq!(a.selected.1.addr, b.selected.0.addr);
    assert!(
        (41_000..=41_999).contains(&a.selected.0.addr.port()),
        "{:?}",
        a.selected.0
    );
    for i in 0..20u8 {
        exchange(&a, &mut b, &[b'a' + i; 100]).await;
        exchange(&b, &mut a, &[b'a' + i; 1200]).await;
    }
    // Checking, then Connected, before anything else, on both sides.
    for s in [&a, &b] {
        assert!(
            s.states
                .starts_with(&[ConnectionState::Checking, ConnectionState::Connected]),
            "{:?}",
            s.states
        );
    }
    assert_eq!(a.handle.dropped() + b.handle.dropped(), 0);
    let stream = a.handle.streams()[0];
    // STUN's first bytes are refused before anything is sent (RFC 7983).
    assert!(matches!(
        b.handle.send(stream, 1, &[1, 2, 3]),
        Err(ice_agent::driver::DriverError::Send(
            ice_agent::SendError::LooksLikeStun
        ))
    ));
    a.handle.close();
    assert_eq!(a.handle.state(), ConnectionState::Closed);
    assert!(matches!(
        a.handle.send(stream, 1, b"late"),
        Err(ice_agent::driver::DriverError::Closed)
    ));
    assert!(a.handle.restart().is_err());
    // The events end after the last state change.
    let mut last = None;
    while let Some(e) = a.events.next().await {
        last = Some(e);
    }
    assert_eq!(
        last,
        Some(Event::Ice(Ice::StateChanged(ConnectionState::Closed)))
    );
}

async fn relayed(url: &str, tls: Option<std::sync::Arc<rustls::ClientConfig>>) {
    let mut configs = [config(Role::Controlling), config(Role::Controlled)];
    for c in &mut configs {
        c.agent.relay_only = true;
        c.servers
            .push(IceServer::turn(url, "alice", "secret").unwrap());
        c.tls = tls.clone();
    }
    let [ca, cb] = configs;
    let a = driver::start(ca).await.unwrap();
    let b = driver::start(cb).await.unwrap();
    let (mut a, mut b) = connect(a, b).await;
    for s in [&a, &b] {
        assert_eq!(s.selected.0.kind, CandidateKind::Relayed, "{url}");
        assert_eq!(s.selected.1.kind, CandidateKind::Relayed, "{url}");
    }
    // Relayed addresses only were signalled: nothing of the hosts' own sockets.
    for s in [&a, &b] {
        assert!(!s.signalled.is_empty(), "{url}");
        for c in &s.signalled {
            assert_eq!(c.kind, CandidateKind::Relayed, "{url}: {c}");
        }
    }
    for i in 0..10u8 {
        exchange(&a, &mut b, &[b'a' + i; 500]).await;
        exchange(&b, &mut a, &[b'a' + i; 500]).await;
    }
    a.handle.close();
    b.handle.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_turn_server_is_followed_to_its_alternate() {
    // The configured server answers every Allocate with 300 and ALTERNATE-SERVER; the
    // sessions allocate on the alternate instead, and connect through it.
    let target = turn_server();
    let front = common::redirecting_turn_server(target.udp());
    relayed(&format!("turn:{}", front.udp_addrs()[0]), None).await;
    let (front_metrics, target_metrics) =
        (front.metrics().clone(), target.server.metrics().clone());
    front.shutdown();
    target.server.shutdown();
    let (f, t) = (front_metrics.total().turn, target_metrics.total().turn);
    assert!(f.redirected >= 2 && f.allocations_created == 0, "{f:?}");
    assert!(t.allocations_created >= 2, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_through_our_turn_server_over_udp_tcp_and_tls() {
    let turn = turn_server();
    relayed(&format!("turn:{}", turn.udp()), None).await;
    relayed(&format!("turn:{}?transport=tcp", turn.tcp()), None).await;
    let port = turn.tls().port();
    // One server and relayed candidates only: a relayed pair means the allocation over that
    // transport worked.
    relayed(
        &format!("turns:localhost:{port}"),
        Some(turn.client_tls.clone()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_with_an_untrusted_certificate_gives_no_relay() {
    let turn = turn_server();
    let mut c = config(Role::Controlling);
    c.agent.relay_only = true;
    // Only the failed handshake can end gathering within the wait below: the gathering
    // deadline is far off, and the driver's connect timeout (10 s) is longer than the wait.
    c.agent.gather_timeout = std::time::Duration::from_secs(120);
    let port = turn.tls().port();
    let url = format!("turns:localhost:{port}");
    c.servers
        .push(IceServer::turn(&url, "alice", "secret").unwrap());
    // Trusts nothing: the handshake fails, gathering ends without a candidate.
    c.tls = Some(driver::tls_trusting(rustls::RootCertStore::empty()));
    let (handle, mut events) = driver::start(c).await.unwrap();
    let wait = async {
        loop {
            match events.next().await.unwrap() {
                Event::Ice(Ice::GatheringComplete { .. }) => return,
                Event::Ice(Ice::LocalCandidate { candidate, .. }) => {
                    panic!("no candidate expected, got {candidate}")
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), wait)
        .await
        .unwrap();
    assert!(handle.local_candidates(handle.streams()[0]).is_empty());
}

/// With two local addresses and no server, end-of-candidates comes after both host
/// candidates: a peer following RFC 8838 §4.4 ignores every candidate after it, and would
/// never learn the second address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_candidates_comes_after_every_host_candidate() {
    let mut c = config(Role::Controlling);
    c.ips = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
    let (_handle, mut events) = driver::start(c).await.unwrap();
    let mut before_end = Vec::new();
    let wait = async {
        loop {
            match events.next().await.unwrap() {
                Event::Ice(Ice::LocalCandidate { candidate, .. }) => before_end.push(candidate),
                Event::Ice(Ice::GatheringComplete { .. }) => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(common::LIMIT, wait).await.unwrap();
    let mut ips: Vec<String> = before_end.iter().map(|c| c.addr.ip().to_string()).collect();
    ips.sort();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.2"], "{before_end:?}");
}
