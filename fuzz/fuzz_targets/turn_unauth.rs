//! The TURN server core's receive paths with no credentials: any bytes from any client or peer,
//! with time passing. Nothing may be allocated or stored, and nothing may reach a peer.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use turn_server::auth::{RestSecrets, Users};
use turn_server::stun::StunServerConfig;
use turn_server::turn::{FiveTuple, Output, Transport, TurnConfig, TurnServer};

#[derive(Debug, Arbitrary)]
enum Step {
    Client {
        ip: u8,
        port: u16,
        tcp: bool,
        data: Vec<u8>,
    },
    Peer {
        port: u16,
        data: Vec<u8>,
    },
    Advance {
        secs: u16,
    },
}

fuzz_target!(|steps: Vec<Step>| {
    let start = Instant::now();
    let mut now = start;
    let mut users = Users::default();
    users.add("alice", "realm", "secret").unwrap();
    let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
    let mut core = TurnServer::new(
        TurnConfig::default(),
        StunServerConfig::new(server),
        users,
        RestSecrets::new(["rest-secret"]),
        [9; 32],
        start,
        1_700_000_000,
    );
    for step in steps {
        match step {
            Step::Client {
                ip,
                port,
                tcp,
                data,
            } => {
                let ft = FiveTuple {
                    transport: if tcp { Transport::Tcp } else { Transport::Udp },
                    client: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, ip)), port),
                    server,
                };
                let t = core.handle_client(now, ft, &data);
                assert!(t.is_none(), "relayed without authentication: {t:?}");
            }
            Step::Peer { port, data } => {
                let mut out = vec![0u8; data.len() + turn_server::turn::RELAY_OVERHEAD];
                let t = core.handle_peer(
                    now,
                    SocketAddr::new(server.ip(), port),
                    "8.8.8.8:53".parse().unwrap(),
                    &data,
                    &mut out,
                );
                assert!(t.is_none(), "relayed without an allocation");
            }
            Step::Advance { secs } => {
                now += Duration::from_secs(u64::from(secs));
                core.handle_timeout(now);
            }
        }
        while let Some(out) = core.poll_output() {
            match out {
                Output::Transmit(t) => assert!(t.data.len() <= 1500),
                Output::Timeout(t) => assert_eq!(t, None, "a timer without state"),
                other => panic!("no state before authentication, yet {other:?}"),
            }
        }
        assert_eq!(core.allocation_count(), 0);
    }
});
