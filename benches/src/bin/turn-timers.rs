//! The TURN core's timers with many allocations: what one expiry costs once 1,000, 10,000 and
//! 100,000 allocations are live, against one walk of all of them (what the driver's old
//! once-a-second tick did, at least once per tick, to find the next deadline).
//!
//! ```text
//! cd benches && cargo run --release --bin turn-timers
//! ```
//!
//! Each allocation is made through the core's request path (Allocate, then CreatePermission
//! for one peer), one millisecond of virtual time after the previous one, so their permission
//! expiries (300 s) and lifetimes (600 s) are spread out. Then the driver's loop runs on
//! virtual time: wait until the deadline the core reported, `handle_timeout`, drain until the
//! next `Timeout`. Each wake-up has one permission expiry due. Three rounds of 200 wake-ups
//! per size, median; the walk is timed over the same live allocations.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use sans_io::Transport;
use stun_codec::attr::{
    Nonce, PasswordAlgorithm, Realm, RequestedTransport, Username, XorPeerAddress,
};
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_server::auth::{RestSecrets, Users};
use turn_server::stun::StunServerConfig;
use turn_server::turn::{FiveTuple, Output, Relay, Request, TurnConfig, TurnServer};

const REALM: &str = "bench";
const SERVER: &str = "192.0.2.1:3478";
const ROUNDS: usize = 3;
const WAKEUPS: usize = 200;

/// A core with `n` allocations, each with one permission; the timer it last reported.
fn build(n: u32) -> (TurnServer, Instant, Option<Instant>) {
    let t0 = Instant::now();
    let mut users = Users::default();
    users.add("alice", REALM, "secret").unwrap();
    let mut core = TurnServer::new(
        TurnConfig {
            realm: REALM.into(),
            challenge_rate: 1_000_000,
            challenge_burst: 1_000_000,
            ..TurnConfig::default()
        },
        StunServerConfig::new(SERVER.parse().unwrap()),
        users,
        RestSecrets::default(),
        [1; 32],
        t0,
        1_700_000_000,
    );
    let key = IntegrityKey::long_term("alice", REALM, "secret", PasswordAlgorithm::MD5).unwrap();
    let mut timer = None;
    let mut nonce = String::new();
    let mut tid = 0u32;
    let mut drain = |core: &mut TurnServer, now: Instant, nonce: &mut String, port: u16| {
        while let Some(o) = core.poll_output() {
            match o {
                Output::Request(Request::AllocateRelay(r)) => core.relay_allocated(
                    now,
                    r.id,
                    Ok(Relay {
                        addr: SocketAddr::new("192.0.2.1".parse().unwrap(), port),
                        reservation_token: None,
                    }),
                ),
                Output::Transmit(t) => {
                    if let Some(n) = Message::parse(&t.data)
                        .ok()
                        .and_then(|m| m.get::<Nonce>().ok().flatten())
                    {
                        *nonce = n.0.to_owned();
                    }
                }
                Output::Timeout(t) => timer = t,
                Output::Request(_) => {}
            }
        }
    };
    for i in 0..n {
        let now = t0 + Duration::from_millis(u64::from(i));
        // 2^14 clients per address; nonces are bound to the IP, so learn one per address.
        let ft = FiveTuple {
            transport: Transport::Udp,
            client: SocketAddr::new(
                Ipv4Addr::from(0xC633_6400 + (i >> 14)).into(),
                1024 + (i & 0x3FFF) as u16,
            ),
            server: SERVER.parse().unwrap(),
        };
        let port = 10_000 + (i % 50_000) as u16;
        if i % (1 << 14) == 0 {
            let _ = core.handle_client(now, ft, &message(Method::ALLOCATE, 0, None, |_| {}));
            drain(&mut core, now, &mut nonce, port);
        }
        for method in [Method::ALLOCATE, Method::CREATE_PERMISSION] {
            tid += 1;
            let req = message(method, tid, Some((&nonce, &key)), |b| {
                if method == Method::ALLOCATE {
                    b.add(&RequestedTransport::UDP).unwrap();
                } else {
                    b.add(&XorPeerAddress("203.0.114.9:5000".parse().unwrap()))
                        .unwrap();
                }
            });
            let _ = core.handle_client(now, ft, &req);
            drain(&mut core, now, &mut nonce, port);
        }
    }
    assert_eq!(core.allocation_count(), n as usize);
    assert_eq!(core.permission_and_channel_counts(), (n as usize, 0));
    let _ = &mut drain;
    (core, t0, timer)
}

fn message(
    method: Method,
    tid: u32,
    auth: Option<(&str, &IntegrityKey)>,
    add: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&tid.to_be_bytes());
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(method, Class::Request),
        TransactionId(t),
    )
    .unwrap();
    add(&mut b);
    if let Some((nonce, key)) = auth {
        b.add(&Username("alice")).unwrap();
        b.add(&Realm(REALM)).unwrap().add(&Nonce(nonce)).unwrap();
        b.add_message_integrity(key).unwrap();
    }
    b.finish().to_vec()
}

/// `WAKEUPS` turns of the driver's timer loop; the mean time per wake-up.
fn wakeups(core: &mut TurnServer, timer: &mut Option<Instant>) -> Duration {
    let start = Instant::now();
    for _ in 0..WAKEUPS {
        let now = timer.expect("an expiry is due");
        core.handle_timeout(now);
        while let Some(o) = core.poll_output() {
            if let Output::Timeout(t) = o {
                *timer = t;
            }
        }
    }
    start.elapsed() / WAKEUPS as u32
}

/// One walk over every allocation to find its earliest deadline, as the old tick did.
fn walk(core: &TurnServer) -> Duration {
    let start = Instant::now();
    let next = core
        .allocations()
        .map(|a| {
            a.permissions()
                .iter()
                .map(|p| p.expires)
                .chain(a.channels().iter().map(|c| c.expires))
                .fold(a.expires(), Instant::min)
        })
        .min();
    black_box(next);
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    println!(
        "| live allocations | one timer wake-up (heap) | one walk of the allocations (old tick) |"
    );
    println!("|---|---|---|");
    for n in [1_000u32, 10_000, 100_000] {
        let (mut core, t0, mut timer) = build(n);
        assert!(timer.is_some_and(|t| t >= t0 + Duration::from_secs(300)));
        let mut heap = Vec::new();
        let mut walks = Vec::new();
        for _ in 0..ROUNDS {
            heap.push(wakeups(&mut core, &mut timer));
            walks.push(walk(&core));
        }
        // Every wake-up expired one permission, and nothing else.
        let expired = ROUNDS * WAKEUPS;
        assert_eq!(
            core.permission_and_channel_counts(),
            (n as usize - expired, 0)
        );
        assert_eq!(core.allocation_count(), n as usize);
        println!("| {n} | {:.0?} | {:.0?} |", median(heap), median(walks));
    }
}
