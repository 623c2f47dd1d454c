//! For the driver's tests: our TURN server on loopback (UDP, TCP and TLS with a self-signed
//! certificate for "localhost"), and in-process signalling between two driver sessions.
//! Every wait is for an event; the timeouts only bound a failing test.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ice_agent::driver::{Events, Handle};
use ice_agent::{Candidate, ConnectionState, Event};
use turn_server::auth::{RestSecrets, Users};
use turn_server::driver::{RelayIp, Server, Settings};
use turn_server::peer_policy::PeerPolicy;
use turn_server::turn::TurnConfig;

pub const LIMIT: Duration = Duration::from_secs(20);

/// Our TURN server on 127.0.0.1, with user alice/secret and loopback peers allowed.
pub struct Turn {
    pub server: Server,
    /// The certificate's PEM, which clients trust for `turns:localhost`.
    pub cert_pem: String,
    pub client_tls: Arc<rustls::ClientConfig>,
}

impl Turn {
    pub fn udp(&self) -> SocketAddr {
        self.server.udp_addrs()[0]
    }
    pub fn tcp(&self) -> SocketAddr {
        self.server.tcp_addrs()[0]
    }
    pub fn tls(&self) -> SocketAddr {
        self.server.tls_addrs()[0]
    }
}

/// A free range of `n` UDP ports on loopback below the ephemeral range.
fn free_ports(n: u16) -> (u16, u16) {
    let offset = (std::process::id() % 97) as u16 * 100;
    'search: for base in (20_000 + offset..32_700u16).step_by(89) {
        for p in base..base + n {
            if UdpSocket::bind(("127.0.0.1", p)).is_err() {
                continue 'search;
            }
        }
        return (base, base + n - 1);
    }
    panic!("no free port range")
}

pub fn turn_server() -> Turn {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "ice-driver-tls-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    let server_tls = turn_server::driver::tls_config(&c, &k).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client_tls = ice_agent::driver::tls_trusting(roots);
    let lo = "127.0.0.1".parse().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut users = Users::default();
    users.add("alice", "example.org", "secret").unwrap();
    let settings = Settings {
        udp: vec![any],
        tcp: vec![any],
        tls_listen: vec![any],
        tls: Some(server_tls),
        relay_ips: vec![RelayIp {
            bind: lo,
            advertise: lo,
        }],
        ports: free_ports(32),
        workers: 1,
        stream_idle_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(5),
        max_stream_connections: 100,
        turn: TurnConfig {
            realm: "example.org".into(),
            peer_policy: PeerPolicy {
                allow_loopback: true,
                ..PeerPolicy::default()
            },
            relay_families: vec![stun_codec::attr::AddressFamily::V4],
            ..TurnConfig::default()
        },
        users,
        rest: RestSecrets::new(Vec::<String>::new()),
        nonce_key: [9; 32],
        metrics: None,
    };
    Turn {
        server: Server::start(settings).unwrap(),
        cert_pem: cert.cert.pem(),
        client_tls,
    }
}

/// One side of a connected session.
pub struct Side {
    pub handle: Handle,
    pub events: Events,
    pub selected: (Candidate, Candidate),
    pub states: Vec<ConnectionState>,
    /// The local candidates it signalled before both sides selected.
    pub signalled: Vec<Candidate>,
}

/// Signals between two sessions (credentials, trickled candidates, end-of-candidates) until
/// both have a selected pair.
pub async fn connect(a: (Handle, Events), b: (Handle, Events)) -> (Side, Side) {
    let (ha, mut ea) = a;
    let (hb, mut eb) = b;
    ha.set_remote_credentials(hb.local_credentials(), false)
        .unwrap();
    hb.set_remote_credentials(ha.local_credentials(), false)
        .unwrap();
    let mut sel: [Option<(Candidate, Candidate)>; 2] = [None, None];
    let mut states = [Vec::new(), Vec::new()];
    let mut signalled = [Vec::new(), Vec::new()];
    let run = async {
        while sel.iter().any(Option::is_none) {
            let (i, ev) = tokio::select! {
                e = ea.next() => (0, e.expect("session a ended")),
                e = eb.next() => (1, e.expect("session b ended")),
            };
            let other = if i == 0 { &hb } else { &ha };
            match ev {
                Event::LocalCandidate { stream, candidate } => {
                    signalled[i].push(candidate.clone());
                    other.add_remote_candidate(stream, candidate).unwrap();
                }
                Event::GatheringComplete { stream } => {
                    other.end_of_remote_candidates(stream).unwrap()
                }
                Event::StateChanged(s) => {
                    assert_ne!(s, ConnectionState::Failed, "side {i} failed");
                    states[i].push(s);
                }
                Event::SelectedPair { local, remote, .. } => sel[i] = Some((local, remote)),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("connected in time");
    let [sa, sb] = sel;
    let [ta, tb] = states;
    let [ca, cb] = signalled;
    (
        Side {
            handle: ha,
            events: ea,
            selected: sa.unwrap(),
            states: ta,
            signalled: ca,
        },
        Side {
            handle: hb,
            events: eb,
            selected: sb.unwrap(),
            states: tb,
            signalled: cb,
        },
    )
}

/// Sends `msg` from `from` and waits for it at `to` (other events are passed over, and
/// late candidates are of no use after selection).
pub async fn exchange(from: &Side, to: &mut Side, msg: &[u8]) {
    let stream = from.handle.streams()[0];
    from.handle.send(stream, 1, msg).unwrap();
    let wait = async {
        loop {
            match to.events.next().await.expect("session ended") {
                Event::Data { data, .. } => {
                    assert_eq!(data, msg);
                    return;
                }
                Event::StateChanged(s) => to.states.push(s),
                _ => {}
            }
        }
    };
    if tokio::time::timeout(LIMIT, wait).await.is_err() {
        panic!(
            "no data in time: from {:?} {:?} dropped {}, to {:?} {:?} dropped {}",
            from.handle.stats(),
            from.handle.state(),
            from.handle.dropped(),
            to.handle.stats(),
            to.handle.state(),
            to.handle.dropped()
        );
    }
}
