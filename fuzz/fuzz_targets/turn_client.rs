//! The TURN client's receive paths on any bytes from its server: the control connection of
//! a UDP and of an RFC 6062 TCP allocation (answers, Data and ConnectionAttempt indications)
//! and a data connection's ConnectionBind, with time passing. Nothing may panic, and a
//! ConnectionBinder ends at most once.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sans_io::{Output, Receive, Transport};
use stun_client::{BindEvent, TurnClient, TurnClientConfig};

fuzz_target!(|frames: Vec<(bool, Vec<u8>)>| {
    let now = Instant::now();
    let server = "192.0.2.10:3478".parse().unwrap();
    let local = "198.51.100.7:5000".parse().unwrap();
    for tcp in [false, true] {
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        let mut config = TurnClientConfig::new(server, transport, "alice", "secret");
        config.relay_tcp = tcp;
        let mut c = TurnClient::new(config, local, 1);
        c.allocate(now);
        let mut t = now;
        let mut binder = None;
        let mut ended = 0;
        for (advance, data) in &frames {
            if *advance {
                t += Duration::from_secs(5);
                c.handle_timeout(t);
            }
            let r = Receive {
                transport,
                local,
                remote: server,
                data,
            };
            let _ = c.handle_receive(t, r);
            while let Some(o) = c.poll_output() {
                if let Output::Event(stun_client::TurnEvent::Allocated { .. }) = o {
                    c.connect(t, "203.0.113.9:80".parse().unwrap());
                }
            }
            if binder.is_none() {
                binder = c.connection_binder(7, "198.51.100.7:5001".parse().unwrap(), 2);
                if let Some(b) = &mut binder {
                    b.start(t);
                }
            }
            if let Some(b) = &mut binder {
                b.handle_receive(
                    t,
                    Receive {
                        local: "198.51.100.7:5001".parse().unwrap(),
                        ..r
                    },
                );
                if *advance {
                    b.handle_timeout(t);
                }
                while let Some(o) = b.poll_output() {
                    if let Output::Event(BindEvent::Bound | BindEvent::Failed(_)) = o {
                        ended += 1;
                    }
                }
            }
        }
        assert!(ended <= 1, "a binder ended {ended} times");
    }
});
