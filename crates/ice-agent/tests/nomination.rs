//! A controlled agent facing an aggressively nominating peer (RFC 5245 §8.1.1.2, which
//! RFC 8445 §7.3.1.5 still asks controlled agents to accept): every check of the peer
//! carries USE-CANDIDATE; and facing a renominating peer as libwebrtc is one, whose checks
//! carry NOMINATION alone. The peer here is scripted: its checks and answers are built by
//! hand and signed with the right keys.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_agent::*;

mod support;
use stun_codec::attr::*;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use support::Queued;

const LOCAL: &str = "192.0.2.1:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Peer {
    creds: Credentials,
    key: IntegrityKey,
}

/// How a check of the peer nominates.
#[derive(Clone, Copy)]
enum How {
    /// USE-CANDIDATE, as an aggressive agent sends on every check.
    UseCandidate,
    /// NOMINATION with this value and no USE-CANDIDATE, as libwebrtc renominates.
    Nomination(u32),
}

impl Peer {
    /// A nominating check from the peer.
    fn nominating_check(&self, agent: &Agent, priority: u32, tid: u8, how: How) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([tid; 12]),
        )
        .unwrap();
        let username = format!("{}:{}", agent.local_credentials().ufrag, self.creds.ufrag);
        b.add(&Username(&username)).unwrap();
        b.add(&Priority(priority)).unwrap();
        b.add(&IceControlling(u64::MAX)).unwrap();
        match how {
            How::UseCandidate => b.add(&UseCandidate).unwrap(),
            How::Nomination(v) => b.add(&Nomination(v)).unwrap(),
        };
        let key = IntegrityKey::new(agent.local_credentials().pwd.as_bytes());
        b.add_message_integrity(&key).unwrap();
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }

    /// The peer's answer to one of the agent's checks.
    fn answer(&self, request: &[u8], mapped: SocketAddr) -> Vec<u8> {
        let req = Message::parse(request).unwrap();
        req.verify_integrity(&self.key)
            .expect("signed with the peer's password");
        let mut buf = [0u8; 256];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::SuccessResponse),
            req.transaction_id(),
        )
        .unwrap();
        b.add(&XorMappedAddress(mapped)).unwrap();
        b.add_message_integrity(&self.key).unwrap();
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }
}

/// Delivers a nominating check from `from`, answers every check the agent sends to the peer
/// over the next second of virtual time, and returns the selected pair's remote address.
fn nominate(
    a: &mut Queued,
    peer: &Peer,
    t: &mut Instant,
    from: SocketAddr,
    priority: u32,
    tid: u8,
    how: How,
) -> Option<SocketAddr> {
    let c = peer.nominating_check(a, priority, tid, how);
    assert!(a
        .handle_receive(*t, Receive::udp(addr(LOCAL), from, &c))
        .is_none());
    let end = *t + Duration::from_secs(1);
    let mut selected = None;
    loop {
        while let Some(tx) = a.poll_transmit() {
            let remote = tx.remote;
            let m = Message::parse(&tx.data).unwrap();
            if m.message_type().class == Class::Request {
                let answer = peer.answer(&tx.data, addr(LOCAL));
                let _ = a.handle_receive(*t, Receive::udp(addr(LOCAL), remote, &answer));
            }
        }
        while let Some(e) = a.poll_event() {
            if let Event::SelectedPair { remote, .. } = e {
                selected = Some(remote.addr);
            }
        }
        match a.poll_timeout() {
            Some(next) if next <= end => {
                *t = next.max(*t);
                a.handle_timeout(*t);
            }
            _ => return selected,
        }
    }
}

/// A controlled agent with one socket, and the scripted peer that controls it (its ICE
/// options as given).
fn controlled(t: Instant, seed: u64, peer_options: &str) -> (Queued, StreamId, Peer) {
    let mut c = AgentConfig::new(Role::Controlled);
    c.seed = Some(seed);
    let mut a = Queued::new(Agent::new(c));
    let s = a.add_stream(1);
    let socket = LocalSocket {
        stream: s,
        component: 1,
        addr: addr(LOCAL),
    };
    a.add_local_sockets(t, &[socket]).unwrap();
    let creds = Credentials {
        ufrag: "peer".into(),
        pwd: "controllingpasswordcontrolling".into(),
    };
    let peer = Peer {
        key: IntegrityKey::new(creds.pwd.as_bytes()),
        creds: creds.clone(),
    };
    a.set_remote_ice_options(t, peer_options);
    a.set_remote_credentials(t, creds, false);
    (a, s, peer)
}

#[test]
fn a_controlled_agent_follows_an_aggressive_nominator_to_the_best_pair() {
    let mut t = Instant::now();
    let (mut a, s, peer) = controlled(t, 3, "trickle");
    let low = Candidate::parse(
        "candidate:1 1 UDP 1694498815 192.0.2.9 7000 typ srflx raddr 10.0.0.2 rport 7000",
    )
    .unwrap();
    let high = Candidate::parse("candidate:2 1 UDP 2130706431 192.0.2.2 6000 typ host").unwrap();
    a.add_remote_candidate(t, s, low.clone()).unwrap();
    a.add_remote_candidate(t, s, high.clone()).unwrap();
    while a.poll_event().is_some() {}

    // The first pair to answer is nominated at once: selected.
    let first = nominate(
        &mut a,
        &peer,
        &mut t,
        low.addr,
        1694498815,
        1,
        How::UseCandidate,
    );
    assert_eq!(first, Some(low.addr));
    assert!(matches!(
        a.state(),
        ConnectionState::Connected | ConnectionState::Completed
    ));
    // A better pair is nominated later: the controlled agent moves to it (the highest
    // priority nominated pair wins).
    let second = nominate(
        &mut a,
        &peer,
        &mut t,
        high.addr,
        2130706431,
        2,
        How::UseCandidate,
    );
    assert_eq!(second, Some(high.addr));
    assert_eq!(a.selected_pair(s, 1).unwrap().1.addr, high.addr);
    // A worse pair nominated afterwards does not take the selection back.
    let third = nominate(
        &mut a,
        &peer,
        &mut t,
        low.addr,
        1694498815,
        3,
        How::UseCandidate,
    );
    assert_eq!(third, None);
    assert_eq!(a.selected_pair(s, 1).unwrap().1.addr, high.addr);
    // Data flows on the selected pair.
    let mut out = [0u8; 64];
    let tx = a.send(t, s, 1, b"hello", &mut out).unwrap();
    assert_eq!((tx.local, tx.remote), (addr(LOCAL), high.addr));
    assert_eq!(tx.data, b"hello");
}

/// Renomination as libwebrtc does it: NOMINATION without USE-CANDIDATE, each nomination with
/// a higher value. The controlled agent follows the highest value, whatever the priority,
/// and a late check with an old value does not take the selection back.
#[test]
fn a_controlled_agent_follows_the_highest_nomination_value() {
    let mut t = Instant::now();
    let (mut a, s, peer) = controlled(t, 4, "trickle renomination");
    let high = Candidate::parse("candidate:2 1 UDP 2130706431 192.0.2.2 6000 typ host").unwrap();
    let low = Candidate::parse(
        "candidate:1 1 UDP 1694498815 192.0.2.9 7000 typ srflx raddr 10.0.0.2 rport 7000",
    )
    .unwrap();
    a.add_remote_candidate(t, s, high.clone()).unwrap();
    a.add_remote_candidate(t, s, low.clone()).unwrap();
    while a.poll_event().is_some() {}

    let first = nominate(
        &mut a,
        &peer,
        &mut t,
        high.addr,
        2130706431,
        1,
        How::Nomination(1),
    );
    assert_eq!(first, Some(high.addr), "NOMINATION alone nominates");
    // A higher value on a pair of lower priority: followed.
    let second = nominate(
        &mut a,
        &peer,
        &mut t,
        low.addr,
        1694498815,
        2,
        How::Nomination(2),
    );
    assert_eq!(second, Some(low.addr));
    // The first nomination's value again, late: ignored.
    let stale = nominate(
        &mut a,
        &peer,
        &mut t,
        high.addr,
        2130706431,
        3,
        How::Nomination(1),
    );
    assert_eq!(stale, None);
    assert_eq!(a.selected_pair(s, 1).unwrap().1.addr, low.addr);
    // Higher again: back.
    let third = nominate(
        &mut a,
        &peer,
        &mut t,
        high.addr,
        2130706431,
        4,
        How::Nomination(3),
    );
    assert_eq!(third, Some(high.addr));
}
