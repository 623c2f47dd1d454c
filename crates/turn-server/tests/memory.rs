//! What one allocation costs in memory: 10,000 allocations with one permission and one channel
//! each, made through the core's real request path, measured with a counting allocator (heap
//! bytes live, hash tables and slab included; the relay socket is the driver's). The target is
//! at most 1 KB each; `docs/benchmarks.md` records the figure. And the relay path allocates
//! nothing per packet, as `docs/turnserver.md` says.

// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to the system
// allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Instant;

use stun_codec::attr::*;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_server::auth::{RestSecrets, Users};
use turn_server::stun::StunServerConfig;
use turn_server::turn::{
    FiveTuple, Output, Relay, Request, Transport, TurnConfig, TurnServer, RELAY_OVERHEAD,
};

struct Counting;

thread_local! {
    // Per thread, so tests running side by side do not count each other.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn count(bytes: isize, call: bool) {
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
    if call {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn calls() -> u64 {
    CALLS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize, true);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize), false);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize, true);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

const REALM: &str = "example.org";

fn request(
    method: Method,
    tid: u32,
    nonce: &str,
    key: &IntegrityKey,
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
    b.add(&Username("alice")).unwrap();
    b.add(&Realm(REALM)).unwrap().add(&Nonce(nonce)).unwrap();
    b.add_message_integrity(key).unwrap();
    b.finish().to_vec()
}

/// A TURN core and the requests of one user: allocate, permit `PEER`, bind channel 0x4000.
struct Fixture {
    core: TurnServer,
    now: Instant,
    key: IntegrityKey,
    nonce: String,
    tid: u32,
}

const SERVER: &str = "192.0.2.1:3478";
const PEER: &str = "203.0.114.9:5000";

impl Fixture {
    fn new() -> Fixture {
        let now = Instant::now();
        let mut users = Users::default();
        users.add("alice", REALM, "secret").unwrap();
        let core = TurnServer::new(
            TurnConfig {
                realm: REALM.into(),
                ..TurnConfig::default()
            },
            StunServerConfig::new(SERVER.parse().unwrap()),
            users,
            RestSecrets::default(),
            [1; 32],
            now,
            1_700_000_000,
        );
        let key =
            IntegrityKey::long_term("alice", REALM, "secret", PasswordAlgorithm::MD5).unwrap();
        Fixture {
            core,
            now,
            key,
            nonce: String::new(),
            tid: 0,
        }
    }

    /// The 5-tuple of client `i`: 2^14 ports per address.
    fn ft(i: u32) -> FiveTuple {
        FiveTuple {
            transport: Transport::Udp,
            client: SocketAddr::new(
                std::net::Ipv4Addr::from(0xC633_6400 + (i >> 14)).into(),
                1024 + (i & 0x3FFF) as u16,
            ),
            server: SERVER.parse().unwrap(),
        }
    }

    /// Learns a nonce for the client's address (nonces are bound to the IP).
    fn learn_nonce(&mut self, f: FiveTuple) {
        let mut buf = [0u8; 64];
        let req = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::ALLOCATE, Class::Request),
            TransactionId([0; 12]),
        )
        .unwrap()
        .finish()
        .to_vec();
        let _ = self.core.handle_client(self.now, f, &req);
        let Some(Output::Transmit(t)) = self.core.poll_output() else {
            panic!("no 401")
        };
        while self.core.poll_output().is_some() {}
        self.nonce = Message::parse(&t.data)
            .unwrap()
            .get::<Nonce>()
            .unwrap()
            .unwrap()
            .0
            .to_owned();
    }

    /// Allocates for client `i`, permits `PEER` and binds channel 0x4000 to it; the relay.
    fn allocate(&mut self, i: u32) -> SocketAddr {
        let f = Self::ft(i);
        if i.is_multiple_of(1 << 14) {
            self.learn_nonce(f);
        }
        let peer: SocketAddr = PEER.parse().unwrap();
        let relay = SocketAddr::new("192.0.2.1".parse().unwrap(), 10_000 + (i % 50_000) as u16);
        for (method, attrs) in [
            (Method::ALLOCATE, 0),
            (Method::CREATE_PERMISSION, 1),
            (Method::CHANNEL_BIND, 2),
        ] {
            self.tid += 1;
            let req = request(method, self.tid, &self.nonce, &self.key, |b| match attrs {
                0 => {
                    b.add(&RequestedTransport::UDP).unwrap();
                }
                1 => {
                    b.add(&XorPeerAddress(peer)).unwrap();
                }
                _ => {
                    b.add(&ChannelNumber(0x4000)).unwrap();
                    b.add(&XorPeerAddress(peer)).unwrap();
                }
            });
            let _ = self.core.handle_client(self.now, f, &req);
            while let Some(o) = self.core.poll_output() {
                match o {
                    Output::Request(Request::AllocateRelay(r)) => self.core.relay_allocated(
                        self.now,
                        r.id,
                        Ok(Relay {
                            addr: relay,
                            reservation_token: None,
                        }),
                    ),
                    Output::Transmit(t) => {
                        let m = Message::parse(&t.data).unwrap();
                        assert_eq!(m.get::<ErrorCode>().unwrap(), None, "{method:?} failed");
                    }
                    Output::Timeout(_) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        relay
    }
}

#[test]
fn an_allocation_with_a_permission_and_a_channel_fits_in_1kb() {
    let mut fx = Fixture::new();
    // Warm up (the first allocation sizes buffers), then measure.
    fx.allocate(0);
    let n = 10_000u32;
    let before = live();
    for i in 1..=n {
        fx.allocate(i);
    }
    let after = live();
    assert_eq!(fx.core.allocation_count(), n as usize + 1);
    assert_eq!(
        fx.core.permission_and_channel_counts(),
        (n as usize + 1, n as usize + 1)
    );
    let per = (after - before) as f64 / f64::from(n);
    println!("heap per allocation (one permission, one channel): {per:.0} bytes");
    assert!(per <= 1024.0, "{per:.0} bytes per allocation");
}

#[test]
fn relaying_allocates_nothing_per_packet() {
    let mut fx = Fixture::new();
    let relay = fx.allocate(0);
    let ft = Fixture::ft(0);
    let peer: SocketAddr = PEER.parse().unwrap();
    let payload = [0x5a; 1200];
    let mut channel_data = [0u8; 1300];
    let cd_len =
        stun_codec::ChannelData::build(0x4000, &payload, false, &mut channel_data).unwrap();
    let mut send = [0u8; 1300];
    let send_len = {
        let mut b = MessageBuilder::new(
            &mut send,
            MessageType::new(Method::SEND, Class::Indication),
            TransactionId([7; 12]),
        )
        .unwrap();
        b.add(&XorPeerAddress(peer))
            .unwrap()
            .add(&Data(&payload))
            .unwrap();
        b.finish().len()
    };
    let mut out = vec![0u8; payload.len() + RELAY_OVERHEAD];
    let mut relay_all = |fx: &mut Fixture| {
        let to_peer = fx
            .core
            .handle_client(fx.now, ft, &channel_data[..cd_len])
            .expect("relayed");
        assert_eq!((to_peer.remote, to_peer.data.len()), (peer, payload.len()));
        let to_peer = fx
            .core
            .handle_client(fx.now, ft, &send[..send_len])
            .expect("relayed");
        assert_eq!(to_peer.local, relay);
        let to_client = fx
            .core
            .handle_peer(fx.now, relay, peer, &payload, &mut out)
            .expect("relayed");
        assert_eq!((to_client.local, to_client.remote), (ft.server, ft.client));
    };
    // Once to warm up, then 1,000 rounds of the three paths must not allocate.
    relay_all(&mut fx);
    // The counter sees allocations on this thread.
    let probe = calls();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(1)));
    assert_eq!(calls(), probe + 1);
    let before = calls();
    for _ in 0..1000 {
        relay_all(&mut fx);
    }
    assert_eq!(
        calls() - before,
        0,
        "heap allocations while relaying 3,000 packets"
    );
    assert!(fx.core.poll_output().is_none());
}
