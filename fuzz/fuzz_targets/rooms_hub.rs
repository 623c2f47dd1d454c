//! The signalling hub's receive paths: any text from any of a few clients, any bus message,
//! connections opening and closing, the bus going down and up, and time passing, on a hub
//! alone and on one in a fleet. Invariants: nothing panics; every message the hub sends goes
//! to an open connection and is one of the protocol's; a closed connection is never written
//! to again; rooms never hold more peers than the limit.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rooms::hub::{Action, ConnId, FleetConfig, Hub, HubConfig};
use rooms::protocol::ServerMessage;
use sans_io::Output;

#[derive(Debug, Arbitrary)]
enum Op {
    Open(u8),
    Text(u8, String),
    /// Structured messages reach deeper than random text.
    Join(u8, u8),
    Offer(u8, u8),
    Close(u8),
    Bus(String),
    BusUp,
    BusDown,
    Advance(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    fleet: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let t0 = Instant::now();
    let config = HubConfig {
        max_room_size: 3,
        burst: 20.0,
        fleet: input.fleet.then(FleetConfig::default),
        instance: Some("me".into()),
        seed: Some(1),
        ..Default::default()
    };
    let mut hub = Hub::new(config, t0, 1_800_000_000);
    let mut now = t0;
    let mut open: HashSet<ConnId> = HashSet::new();
    let mut peers: Vec<String> = Vec::new();
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::Open(c) => {
                let c = ConnId(u64::from(c % 8));
                if open.insert(c) {
                    hub.handle_open(now, c, Some("h".into()));
                }
            }
            Op::Text(c, t) => hub.handle_text(now, ConnId(u64::from(c % 8)), &t),
            Op::Join(c, r) => {
                let t = format!(r#"{{"type":"join","room":"r{}"}}"#, r % 3);
                hub.handle_text(now, ConnId(u64::from(c % 8)), &t);
            }
            Op::Offer(c, p) => {
                let to = peers
                    .get(usize::from(p) % peers.len().max(1))
                    .cloned()
                    .unwrap_or_default();
                let t = serde_json::json!({"type": "offer", "to": to, "sdp": "v=0"}).to_string();
                hub.handle_text(now, ConnId(u64::from(c % 8)), &t);
            }
            Op::Close(c) => {
                let c = ConnId(u64::from(c % 8));
                open.remove(&c);
                hub.handle_close(now, c);
            }
            Op::Bus(p) => hub.handle_bus(now, &p),
            Op::BusUp => hub.handle_bus_up(now),
            Op::BusDown => hub.handle_bus_down(now),
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                hub.handle_timeout(now);
            }
        }
        while let Some(o) = hub.poll_output() {
            match o {
                Output::Request(Action::Send { conn, text }) => {
                    assert!(open.contains(&conn), "sent to a closed connection");
                    let m: ServerMessage = serde_json::from_str(&text).expect("a server message");
                    if let ServerMessage::Peers { you, .. } | ServerMessage::NewPeer { id: you } = m
                    {
                        peers.push(you);
                    }
                }
                Output::Request(Action::Close { conn, .. }) => {
                    assert!(open.remove(&conn), "closed twice");
                }
                _ => {}
            }
        }
        // Alone, the hub is the only judge of room sizes (in a fleet a snapshot from the bus
        // is taken as the other instance has it).
        if !input.fleet {
            for r in ["r0", "r1", "r2"] {
                assert!(hub.room_members(r).len() <= 3);
            }
        }
    }
});
