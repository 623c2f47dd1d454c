//! What one allocation costs in memory: 10,000 allocations with one permission and one channel
//! each, made through the core's real request path, measured with a counting allocator (heap
//! bytes live, hash tables and slab included; the relay socket is the driver's). The target is
//! at most 1 KB each; `docs/benchmarks.md` records the figure.

// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to the system
// allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use stun_codec::attr::*;
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};
use turn_server::auth::{RestSecrets, Users};
use turn_server::stun::StunServerConfig;
use turn_server::turn::{FiveTuple, Output, Relay, Transport, TurnConfig, TurnServer};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
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

#[test]
fn an_allocation_with_a_permission_and_a_channel_fits_in_1kb() {
    let now = Instant::now();
    let mut users = Users::default();
    users.add("alice", REALM, "secret").unwrap();
    let server_addr: SocketAddr = "192.0.2.1:3478".parse().unwrap();
    let mut core = TurnServer::new(
        TurnConfig {
            realm: REALM.into(),
            ..TurnConfig::default()
        },
        StunServerConfig::new(server_addr),
        users,
        RestSecrets::default(),
        [1; 32],
        now,
        1_700_000_000,
    );
    let key = IntegrityKey::long_term("alice", REALM, "secret", PasswordAlgorithm::MD5).unwrap();
    let ft = |i: u32| FiveTuple {
        transport: Transport::Udp,
        client: SocketAddr::new(
            std::net::Ipv4Addr::from(0xC633_6400 + (i >> 14)).into(),
            1024 + (i & 0x3FFF) as u16,
        ),
        server: server_addr,
    };
    // Learn a nonce for each client address (bound to the IP).
    let nonce_for = |core: &mut TurnServer, f: FiveTuple| {
        let mut buf = [0u8; 64];
        let req = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::ALLOCATE, Class::Request),
            TransactionId([0; 12]),
        )
        .unwrap()
        .finish()
        .to_vec();
        core.handle_client(now, f, &req);
        let Some(Output::ToClient { data, .. }) = core.poll_output() else {
            panic!("no 401")
        };
        Message::parse(&data)
            .unwrap()
            .get::<Nonce>()
            .unwrap()
            .unwrap()
            .0
            .to_owned()
    };
    let peer: SocketAddr = "203.0.114.9:5000".parse().unwrap();
    let mut nonce = String::new();
    let mut tid = 0;
    let mut allocate = |core: &mut TurnServer, i: u32, nonce: &mut String| {
        let f = ft(i);
        if i % (1 << 14) == 0 {
            *nonce = nonce_for(core, f);
        }
        for (method, attrs) in [
            (Method::ALLOCATE, 0),
            (Method::CREATE_PERMISSION, 1),
            (Method::CHANNEL_BIND, 2),
        ] {
            tid += 1;
            let req = request(method, tid, nonce, &key, |b| match attrs {
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
            core.handle_client(now, f, &req);
            while let Some(o) = core.poll_output() {
                match o {
                    Output::AllocateRelay(r) => core.relay_allocated(
                        now,
                        r.id,
                        Ok(Relay {
                            addr: SocketAddr::new(
                                "192.0.2.1".parse().unwrap(),
                                10_000 + (i % 50_000) as u16,
                            ),
                            reservation_token: None,
                        }),
                    ),
                    Output::ToClient { data, .. } => {
                        let m = Message::parse(&data).unwrap();
                        assert_eq!(m.get::<ErrorCode>().unwrap(), None, "{method:?} failed");
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    };
    // Warm up (the first allocation sizes buffers), then measure.
    allocate(&mut core, 0, &mut nonce);
    let n = 10_000u32;
    let before = LIVE.load(Ordering::Relaxed);
    for i in 1..=n {
        allocate(&mut core, i, &mut nonce);
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(core.allocation_count(), n as usize + 1);
    assert_eq!(
        core.permission_and_channel_counts(now),
        (n as usize + 1, n as usize + 1)
    );
    let per = (after - before) as f64 / f64::from(n);
    println!("heap per allocation (one permission, one channel): {per:.0} bytes");
    assert!(per <= 1024.0, "{per:.0} bytes per allocation");
}
