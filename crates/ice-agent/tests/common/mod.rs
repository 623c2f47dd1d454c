//! For the driver's tests: our TURN server on loopback (UDP, TCP and TLS with a self-signed
//! certificate for "localhost", set up by the turn-server tests' helpers), and in-process
//! signalling between two driver sessions.
//! Every wait is for an event; the timeouts only bound a failing test.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ice_agent::driver::{Event, Events, Handle};
use ice_agent::{Candidate, ConnectionState, Event as Ice};
use turn_server::driver::{Server, Settings};

/// The turn-server tests' own helpers: its certificate, port range and server settings.
#[path = "../../../turn-server/tests/common/mod.rs"]
mod turn_common;

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

/// Our TURN server with the turn-server tests' settings: users alice/secret and bob/hunter2,
/// realm example.org, loopback peers allowed, UDP, TCP and TLS on ephemeral ports.
pub fn turn_server() -> Turn {
    let tls = turn_common::tls();
    let settings = Settings {
        stream_idle_timeout: Duration::from_secs(5),
        ..turn_common::settings(Some(&tls))
    };
    Turn {
        server: Server::start(settings).unwrap(),
        cert_pem: tls.cert_pem,
        client_tls: tls.client,
    }
}

/// A TURN server on 127.0.0.1 (UDP only, user alice/secret) that sends every Allocate to
/// `alternate` with 300 (ALTERNATE-SERVER).
pub fn redirecting_turn_server(alternate: SocketAddr) -> Server {
    let mut settings = turn_common::settings(None);
    settings.tcp.clear();
    settings.turn.alternate_servers = vec![alternate];
    Server::start(settings).unwrap()
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
                Event::Ice(Ice::LocalCandidate { stream, candidate }) => {
                    signalled[i].push(candidate.clone());
                    other.add_remote_candidate(stream, candidate).unwrap();
                }
                Event::Ice(Ice::GatheringComplete { stream }) => {
                    other.end_of_remote_candidates(stream).unwrap()
                }
                Event::Ice(Ice::StateChanged(s)) => {
                    assert_ne!(s, ConnectionState::Failed, "side {i} failed");
                    states[i].push(s);
                }
                Event::Ice(Ice::SelectedPair { local, remote, .. }) => {
                    sel[i] = Some((local, remote))
                }
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
                Event::Ice(Ice::StateChanged(s)) => to.states.push(s),
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
