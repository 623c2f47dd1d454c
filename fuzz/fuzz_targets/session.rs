//! The WebRTC session's receive path: two sessions negotiate and connect in memory (ICE,
//! DTLS, SCTP, a DataChannel), while the fuzzer delivers, drops, corrupts and forges their
//! datagrams, lets time pass and sends messages. Invariants: nothing panics; after
//! `handle_timeout(now)` the next timer is later than `now`; the output queue stays small.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use peer_connection::{
    Certificate, Config, DataChannelEvent, DataChannelInit, Event, Output, PeerConnection, Receive,
};

#[derive(Debug, Arbitrary)]
enum Step {
    /// Deliver the next datagram in flight.
    Deliver,
    /// Lose it.
    Drop,
    /// Deliver it with one byte changed.
    Corrupt { at: u16, xor: u8 },
    /// Deliver it twice.
    Duplicate,
    /// Bytes to a side from the other's address.
    Forge { to: bool, data: Vec<u8> },
    /// A forged record that looks like DTLS application data, SRTP or a handshake.
    Record { to: bool, first: u8, body: Vec<u8> },
    /// Time passes (ms), and due timers run.
    Wait { ms: u16 },
    /// A side sends on its channel.
    Send { from: bool, len: u16, binary: bool },
    /// A side closes its channel.
    Close { side: bool },
}

fn certificate() -> Certificate {
    static C: OnceLock<Certificate> = OnceLock::new();
    C.get_or_init(|| Certificate::generate().expect("a certificate"))
        .clone()
}

struct Side {
    pc: PeerConnection,
    addr: SocketAddr,
    timer: Option<Instant>,
    channel: Option<peer_connection::ChannelId>,
}

fuzz_target!(|steps: Vec<Step>| {
    let t0 = Instant::now();
    let mut now = t0;
    let addrs: [SocketAddr; 2] = [
        SocketAddr::from(([10, 0, 0, 1], 4000)),
        SocketAddr::from(([10, 0, 0, 2], 4000)),
    ];
    let mut sides: Vec<Side> = (0..2)
        .map(|i| {
            let mut config = Config::default();
            config.ice.seed = Some(i as u64 + 1);
            let mut pc = PeerConnection::with_certificate(config, certificate());
            pc.add_local_sockets(now, &[addrs[i]]);
            Side {
                pc,
                addr: addrs[i],
                timer: None,
                channel: None,
            }
        })
        .collect();
    let ch = sides[0]
        .pc
        .create_data_channel(now, "fuzz", DataChannelInit::default());
    sides[0].channel = Some(ch);
    let offer = sides[0].pc.create_offer(now, false).unwrap();
    sides[0].pc.set_local_description(now, &offer).unwrap();
    sides[1].pc.set_remote_description(now, &offer).unwrap();
    let answer = sides[1].pc.create_answer(now).unwrap();
    sides[1].pc.set_local_description(now, &answer).unwrap();
    sides[0].pc.set_remote_description(now, &answer).unwrap();
    // In flight: (to, bytes).
    let mut flight: std::collections::VecDeque<(usize, Vec<u8>)> = Default::default();

    let drain = |sides: &mut Vec<Side>,
                 flight: &mut std::collections::VecDeque<(usize, Vec<u8>)>,
                 now: Instant,
                 timed_out: [bool; 2]| {
        for i in 0..2 {
            let mut n = 0;
            while let Some(o) = sides[i].pc.poll_output() {
                n += 1;
                assert!(n < 10_000, "the output queue does not end");
                match o {
                    Output::Transmit(t) => {
                        if flight.len() < 4096 {
                            flight.push_back((1 - i, t.data));
                        }
                    }
                    Output::Timeout(t) => {
                        if timed_out[i] {
                            assert!(
                                t.is_none_or(|t| t > now),
                                "timer at {t:?} after handle_timeout({now:?})"
                            );
                        }
                        sides[i].timer = t;
                    }
                    Output::Event(Event::IceCandidate(c)) => {
                        let _ = sides[1 - i].pc.add_ice_candidate(now, Some(&c));
                    }
                    Output::Event(Event::DataChannel(DataChannelEvent::Incoming {
                        channel,
                        ..
                    })) => sides[i].channel = Some(channel),
                    _ => {}
                }
            }
        }
    };
    drain(&mut sides, &mut flight, now, [false; 2]);

    let deliver = |sides: &mut Vec<Side>, to: usize, data: &[u8], now: Instant| {
        let from = sides[1 - to].addr;
        let local = sides[to].addr;
        sides[to]
            .pc
            .handle_receive(now, Receive::udp(local, from, data));
    };

    for step in steps.into_iter().take(256) {
        let mut timed_out = [false; 2];
        match step {
            Step::Deliver => {
                if let Some((to, d)) = flight.pop_front() {
                    deliver(&mut sides, to, &d, now);
                }
            }
            Step::Drop => {
                flight.pop_front();
            }
            Step::Corrupt { at, xor } => {
                if let Some((to, mut d)) = flight.pop_front() {
                    if !d.is_empty() {
                        let i = usize::from(at) % d.len();
                        d[i] ^= xor;
                    }
                    deliver(&mut sides, to, &d, now);
                }
            }
            Step::Duplicate => {
                if let Some((to, d)) = flight.pop_front() {
                    deliver(&mut sides, to, &d, now);
                    deliver(&mut sides, to, &d, now);
                }
            }
            Step::Forge { to, data } => deliver(&mut sides, usize::from(to), &data, now),
            Step::Record { to, first, body } => {
                let first = match first % 3 {
                    0 => 23,
                    1 => 22,
                    _ => 0x80,
                };
                let mut d = vec![first, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 5];
                d.extend((body.len() as u16).to_be_bytes());
                d.extend(body);
                deliver(&mut sides, usize::from(to), &d, now);
            }
            Step::Wait { ms } => {
                now += Duration::from_millis(u64::from(ms));
                for (i, s) in sides.iter_mut().enumerate() {
                    if s.timer.is_some_and(|t| t <= now) {
                        s.pc.handle_timeout(now);
                        timed_out[i] = true;
                    }
                }
            }
            Step::Send { from, len, binary } => {
                let s = &mut sides[usize::from(from)];
                if let Some(c) = s.channel {
                    let data = vec![0x5a; usize::from(len)];
                    let _ = if binary {
                        s.pc.send_binary(now, c, &data)
                    } else {
                        s.pc.send_text(now, c, "x")
                    };
                }
            }
            Step::Close { side } => {
                let s = &mut sides[usize::from(side)];
                if let Some(c) = s.channel {
                    s.pc.close_data_channel(now, c);
                }
            }
        }
        drain(&mut sides, &mut flight, now, timed_out);
    }
});
