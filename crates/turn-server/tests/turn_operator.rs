//! The TURN core's operator features, driven directly (sans-IO): users from a database
//! (lookups held, cached, through an outage), reconfiguration, drain, ALTERNATE-SERVER, and a
//! fleet's shared quotas.

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use stun_codec::attr::*;
use stun_codec::{Message, Method};
use turn_server::auth::{RestSecrets, UserKeys, Users};
use turn_server::turn::{QuotaAnswer, Redirect, Relay, Transport, TurnConfig, UserLookup};

use harness::*;

/// The lookups among `outs`.
fn lookups(outs: &[Out]) -> Vec<(u64, String)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::LookupUser { id, username } => Some((*id, username.clone())),
            _ => None,
        })
        .collect()
}

/// A user as the database stores them (coturn's MD5 `hmackey`).
fn stored(user: &str, password: &str) -> UserKeys {
    UserKeys::from_stored(
        user,
        &UserKeys::stored_key(user, REALM, password, false).unwrap(),
    )
    .unwrap()
}

fn with_user_db() -> Harness {
    Harness::with(
        TurnConfig {
            user_db: true,
            user_cache_ttl: Duration::from_secs(60),
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    )
}

#[test]
fn database_users_are_looked_up_once_then_cached() {
    let mut h = with_user_db();
    let mut dave = client(4100, "dave", "pw-of-dave");
    learn_nonce(&mut h, &mut dave);
    // The signed Allocate waits for the lookup: no answer, nothing stored.
    let outs = signed(&mut h, &mut dave, Method::ALLOCATE);
    assert_eq!(lookups(&outs).len(), 1, "{outs:?}");
    let (id, user) = lookups(&outs)[0].clone();
    assert_eq!(user, "dave");
    assert!(!outs.iter().any(|o| matches!(o, Out::ToClient { .. })));
    assert_eq!(h.server.allocation_count(), 0);
    // A retransmission while the lookup is out joins it (no second lookup).
    let again = signed(&mut h, &mut dave, Method::ALLOCATE);
    assert!(lookups(&again).is_empty(), "{again:?}");
    // The answer replays the held requests: the first allocates; the second, on the same
    // 5-tuple while the first waits for its relay, gets the first's answer only.
    h.server.user_looked_up(
        h.now,
        id,
        UserLookup::Found(Box::new(stored("dave", "pw-of-dave"))),
    );
    let mut outs = h.outputs();
    let relay_req = outs
        .iter()
        .find_map(|o| match o {
            Out::AllocateRelay(r) => Some(*r),
            _ => None,
        })
        .expect("Allocate went ahead");
    h.server.relay_allocated(
        h.now,
        relay_req.id,
        Ok(Relay {
            addr: a("192.0.2.10:50000"),
            reservation_token: None,
        }),
    );
    outs.extend(h.outputs());
    let answers: Vec<Option<u16>> = outs
        .iter()
        .filter_map(|o| match o {
            Out::ToClient { data, .. } => Some(code(data)),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![None], "{outs:?}");
    assert_eq!(h.server.allocation_count(), 1);
    // Refresh within the cache's lifetime: no lookup.
    let outs = signed(&mut h, &mut dave, Method::REFRESH);
    assert!(lookups(&outs).is_empty());
    assert_eq!(code(&reply(&outs)), None);
    assert_eq!(h.server.stats().user_lookups, 1);
}

#[test]
fn unknown_database_users_get_401_and_wrong_keys_401() {
    let mut h = with_user_db();
    let mut eve = client(4101, "eve", "guess");
    learn_nonce(&mut h, &mut eve);
    let outs = signed(&mut h, &mut eve, Method::ALLOCATE);
    let (id, _) = lookups(&outs)[0].clone();
    h.server.user_looked_up(h.now, id, UserLookup::NotFound);
    assert_eq!(code(&reply(&h.outputs())), Some(401));
    // Believed for a while: the next try is answered at once.
    let outs = signed(&mut h, &mut eve, Method::ALLOCATE);
    assert!(lookups(&outs).is_empty());
    assert_eq!(code(&reply(&outs)), Some(401));
    // A user whose stored key is not the password's.
    let mut frank = client(4102, "frank", "wrong");
    learn_nonce(&mut h, &mut frank);
    let (id, _) = lookups(&signed(&mut h, &mut frank, Method::ALLOCATE))[0].clone();
    h.server.user_looked_up(
        h.now,
        id,
        UserLookup::Found(Box::new(stored("frank", "right"))),
    );
    assert_eq!(code(&reply(&h.outputs())), Some(401));
    assert_eq!(h.server.allocation_count(), 0);
    // Static users never reach the database.
    let mut alice = client(4103, "alice", "secret");
    learn_nonce(&mut h, &mut alice);
    let outs = signed(&mut h, &mut alice, Method::ALLOCATE);
    assert!(lookups(&outs).is_empty());
}

#[test]
fn a_forged_nonce_is_never_worth_a_lookup() {
    let mut h = with_user_db();
    let mut mallory = client(4104, "mallory", "x");
    mallory.nonce = Some("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA".into());
    let outs = signed(&mut h, &mut mallory, Method::ALLOCATE);
    assert!(lookups(&outs).is_empty(), "{outs:?}");
    assert_eq!(code(&reply(&outs)), Some(401));
    // Random names under a valid nonce: each lookup spends a challenge token, so a source
    // gets at most its burst of lookups.
    learn_nonce(&mut h, &mut mallory);
    let mut asked = 0;
    for i in 0..200 {
        mallory.username = format!("name-{i}");
        asked += lookups(&signed(&mut h, &mut mallory, Method::ALLOCATE)).len();
    }
    assert!(asked <= 20, "{asked} lookups from one source");
}

#[test]
fn a_database_outage_fails_new_users_with_500_and_keeps_known_ones() {
    let mut h = with_user_db();
    let mut dave = client(4105, "dave", "pw");
    learn_nonce(&mut h, &mut dave);
    let (id, _) = lookups(&signed(&mut h, &mut dave, Method::ALLOCATE))[0].clone();
    h.server
        .user_looked_up(h.now, id, UserLookup::Found(Box::new(stored("dave", "pw"))));
    let outs = h.outputs();
    let r = outs
        .iter()
        .find_map(|o| match o {
            Out::AllocateRelay(r) => Some(*r),
            _ => None,
        })
        .unwrap();
    h.server.relay_allocated(
        h.now,
        r.id,
        Ok(Relay {
            addr: a("192.0.2.10:50002"),
            reservation_token: None,
        }),
    );
    assert_eq!(code(&reply(&h.outputs())), None);
    // The cache entry ages out; the database is down when dave refreshes: he keeps his key.
    h.now += Duration::from_secs(61);
    let outs = signed(&mut h, &mut dave, Method::REFRESH);
    let (id, _) = lookups(&outs)[0].clone();
    h.server.user_looked_up(h.now, id, UserLookup::Unavailable);
    assert_eq!(
        code(&reply(&h.outputs())),
        None,
        "Refresh served from the kept key"
    );
    // A user never seen: 500 (Server Error), signed by nobody.
    let mut gina = client(4106, "gina", "pw");
    learn_nonce(&mut h, &mut gina);
    let (id, _) = lookups(&signed(&mut h, &mut gina, Method::ALLOCATE))[0].clone();
    h.server.user_looked_up(h.now, id, UserLookup::Unavailable);
    assert_eq!(code(&reply(&h.outputs())), Some(500));
    // A lookup that never comes back is given up at its deadline, with 500 too.
    let mut hal = client(4107, "hal", "pw");
    learn_nonce(&mut h, &mut hal);
    assert_eq!(
        lookups(&signed(&mut h, &mut hal, Method::ALLOCATE)).len(),
        1
    );
    let deadline = h.timeout().expect("a lookup deadline");
    assert!(deadline <= h.now + Duration::from_secs(5));
    h.now = deadline;
    h.server.handle_timeout(h.now);
    assert_eq!(code(&reply(&h.outputs())), Some(500));
    assert_eq!(h.server.stats().user_lookup_failures, 3);
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn reconfigure_keeps_allocations_and_removed_users_fail_their_next_refresh() {
    let mut h = Harness::new();
    let mut alice = client(4108, "alice", "secret");
    let mut bob = client(4109, "bob", "hunter2");
    alice.allocate(&mut h);
    bob.allocate(&mut h);
    // bob is removed; the quota goes down to what is live.
    let mut users = Users::default();
    users.add("alice", REALM, "secret").unwrap();
    h.server.reconfigure(
        TurnConfig {
            realm: REALM.into(),
            total_quota: 2,
            ..TurnConfig::default()
        },
        users,
        RestSecrets::default(),
    );
    assert_eq!(h.server.allocation_count(), 2, "nothing dropped");
    let outs = signed(&mut h, &mut bob, Method::REFRESH);
    assert_eq!(code(&reply(&outs)), Some(401), "bob is gone");
    let outs = signed(&mut h, &mut alice, Method::REFRESH);
    assert_eq!(code(&reply(&outs)), None, "alice is not");
    // The new quota holds for new allocations.
    let mut carol = client(4110, "alice", "secret");
    let resp = carol.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(code(&resp), Some(486));
}

#[test]
fn draining_refuses_allocations_and_keeps_the_live_ones() {
    let mut h = Harness::new();
    let mut alice = client(4111, "alice", "secret");
    alice.allocate(&mut h);
    h.server.drain();
    assert!(h.server.is_draining());
    let mut bob = client(4112, "bob", "hunter2");
    let resp = bob.call(&mut h, Method::ALLOCATE, |b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    assert_eq!(code(&resp), Some(403), "coturn's answer while draining");
    // alice's allocation goes on: Refresh works, and a Refresh 0 ends it.
    assert_eq!(
        code(&reply(&signed(&mut h, &mut alice, Method::REFRESH))),
        None
    );
    assert_eq!(h.server.stats().refused_draining, 1);
    assert_eq!(h.server.allocation_count(), 1);
}

/// The ALTERNATE-SERVER of a 300 answer, checked to be signed by the client's key.
fn alternate_of(c: &Client, resp: &[u8]) -> Option<SocketAddr> {
    let m = Message::parse(resp).unwrap();
    if code(resp) != Some(300) {
        return None;
    }
    m.verify_integrity(&c.key)
        .expect("a signed 300 (RFC 8489 §10)");
    Some(
        m.get::<AlternateServer>()
            .unwrap()
            .expect("ALTERNATE-SERVER")
            .0,
    )
}

#[test]
fn alternate_servers_always_in_turn_or_only_while_draining() {
    let (x, y, z6) = (
        a("203.0.113.1:3478"),
        a("203.0.113.2:3478"),
        a("[2001:db8::1]:3478"),
    );
    let mut h = Harness::with(
        TurnConfig {
            alternate_servers: vec![x, z6, y],
            tls_alternate_servers: vec![a("203.0.113.9:5349")],
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    let allocate = |h: &mut Harness, c: &mut Client| {
        c.call(h, Method::ALLOCATE, |b| {
            b.add(&RequestedTransport::UDP).unwrap();
        })
    };
    // In turn, of the client's family only.
    let mut got = Vec::new();
    for port in 0..4 {
        let mut c = client(4200 + port, "alice", "secret");
        let resp = allocate(&mut h, &mut c);
        got.push(alternate_of(&c, &resp).expect("redirected"));
    }
    assert_eq!(got, vec![x, y, x, y]);
    // TLS clients get the TLS list.
    let mut t = client(4210, "alice", "secret");
    t.ft.transport = Transport::Tls;
    let resp = allocate(&mut h, &mut t);
    assert_eq!(alternate_of(&t, &resp), Some(a("203.0.113.9:5349")));
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.stats().redirected, 5);

    // A server that finds itself in the list (a fleet naming all its members) keeps clients.
    let mut h = Harness::with(
        TurnConfig {
            alternate_servers: vec![a(SERVER), x],
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    client(4211, "alice", "secret").allocate(&mut h);

    // Only while draining, to the others.
    let mut h = Harness::with(
        TurnConfig {
            alternate_servers: vec![a(SERVER), x],
            redirect: Redirect::WhenDraining,
            ..TurnConfig::default()
        },
        RestSecrets::default(),
    );
    client(4212, "alice", "secret").allocate(&mut h);
    h.server.drain();
    let mut c = client(4213, "alice", "secret");
    let resp = allocate(&mut h, &mut c);
    assert_eq!(alternate_of(&c, &resp), Some(x), "instead of 403");
}

/// The quota asked for among `outs`.
fn quota_asked(outs: &[Out]) -> Option<(u64, String)> {
    outs.iter().find_map(|o| match o {
        Out::ReserveQuota { id, user } => Some((*id, user.clone())),
        _ => None,
    })
}

#[test]
fn fleet_quota_is_asked_before_the_relay_and_given_back_at_the_end() {
    let mut h = Harness::with(
        TurnConfig {
            fleet_quota: true,
            user_quota: 1,
            ..TurnConfig::default()
        },
        RestSecrets::new(["north"]),
    );
    let allocate = |h: &mut Harness, c: &mut Client| -> Vec<Out> {
        let _ = c.call(h, Method::REFRESH, |_| {}); // learn a nonce
        signed(h, c, Method::ALLOCATE)
    };
    // Asked of the fleet, for the user part of a REST name; no relay until it is granted.
    let user = format!("{}:dave", 1_700_000_000u64 + 3600);
    let password = RestSecrets::password(b"north", &user);
    let mut c = client(4300, &user, &password);
    let outs = allocate(&mut h, &mut c);
    let (id, who) = quota_asked(&outs).expect("ReserveQuota");
    assert_eq!(who, "dave");
    assert!(!outs.iter().any(|o| matches!(o, Out::AllocateRelay(_))));
    h.server.quota_reserved(h.now, id, QuotaAnswer::Granted);
    let outs = h.outputs();
    let Some(Out::AllocateRelay(r)) = outs.first().cloned() else {
        panic!("{outs:?}")
    };
    h.server.relay_allocated(
        h.now,
        r.id,
        Ok(Relay {
            addr: a("192.0.2.10:52000"),
            reservation_token: None,
        }),
    );
    assert_eq!(code(&reply(&h.outputs())), None);
    // The local counts do not decide: a second dave is asked of the fleet too.
    let mut d = client(4301, &user, &password);
    let (id2, _) = quota_asked(&allocate(&mut h, &mut d)).expect("asked again");
    h.server.quota_reserved(h.now, id2, QuotaAnswer::Refused);
    assert_eq!(code(&reply(&h.outputs())), Some(486));
    // The end of the allocation gives the quota back.
    let tid = c.tid();
    let req = c.request(Method::REFRESH, tid, |b| {
        b.add(&Lifetime(0)).unwrap();
    });
    let outs = h.send(c.ft, &req);
    assert!(
        outs.contains(&Out::ReleaseQuota {
            user: "dave".into()
        }),
        "{outs:?}"
    );
    // The fleet's store down: the worker's own counts decide (user_quota 1, none live).
    let mut e = client(4302, "alice", "secret");
    let (id3, _) = quota_asked(&allocate(&mut h, &mut e)).unwrap();
    h.server
        .quota_reserved(h.now, id3, QuotaAnswer::Unavailable);
    assert!(matches!(h.outputs().first(), Some(Out::AllocateRelay(_))));
    // An Allocate given up while its quota is asked: a grant that comes later goes back.
    let mut f = client(4303, "bob", "hunter2");
    let (id4, _) = quota_asked(&allocate(&mut h, &mut f)).unwrap();
    h.now += Duration::from_secs(11);
    h.server.handle_timeout(h.now);
    let _ = h.outputs();
    h.server.quota_reserved(h.now, id4, QuotaAnswer::Granted);
    assert_eq!(h.outputs(), vec![Out::ReleaseQuota { user: "bob".into() }]);
}
