//! Two sessions in virtual time on a direct link: each datagram arrives after `latency`
//! unless the loss rule drops it; candidates and descriptions cross a signalling channel
//! with its own delay. A step limit keeps a broken run from spinning.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peer_connection::{
    AgentConfig, ChannelId, Config, DataChannelEvent, Event, IceCandidate, Output, PeerConnection,
    PeerConnectionState, Receive, SessionDescription,
};

/// Decides whether a datagram is lost: (when, sender side, its index among that side's
/// datagrams, the bytes).
pub type Loss = Box<dyn FnMut(Instant, usize, usize, &[u8]) -> bool>;

/// Changes a description on its way to a side.
pub type Munge = Box<dyn FnMut(usize, &mut SessionDescription)>;

pub struct Pair {
    pub peers: [PeerConnection; 2],
    pub addrs: [SocketAddr; 2],
    pub t0: Instant,
    pub now: Instant,
    pub latency: Duration,
    pub signal_delay: Duration,
    pub loss: Loss,
    /// Datagrams sent by each side so far.
    pub sent: [usize; 2],
    in_flight: Vec<(Instant, usize, Vec<u8>)>,
    signals: Vec<(Instant, usize, Signal)>,
    timers: [Option<Instant>; 2],
    pub events: [Vec<(Instant, Event)>; 2],
    /// Changes a description on its way to side `to` (a test of what a peer refuses).
    pub munge: Munge,
    steps: usize,
}

#[derive(Debug, Clone)]
enum Signal {
    Candidate(IceCandidate),
    Description(SessionDescription),
}

pub fn config(seed: u64) -> Config {
    let mut ice = AgentConfig::new(ice_agent::Role::Controlling);
    ice.seed = Some(seed);
    Config {
        ice,
        ..Config::default()
    }
}

impl Pair {
    pub fn new(seed: u64) -> Pair {
        let t0 = Instant::now();
        let addrs: [SocketAddr; 2] = [
            "10.0.0.1:4000".parse().unwrap(),
            "10.0.0.2:4000".parse().unwrap(),
        ];
        let mut peers = [
            PeerConnection::new(config(seed)).unwrap(),
            PeerConnection::new(config(seed + 1)).unwrap(),
        ];
        for (p, a) in peers.iter_mut().zip(addrs) {
            p.add_local_sockets(t0, &[a]);
        }
        Pair {
            peers,
            addrs,
            t0,
            now: t0,
            latency: Duration::from_millis(10),
            signal_delay: Duration::from_millis(50),
            loss: Box::new(|_, _, _, _| false),
            sent: [0, 0],
            in_flight: Vec::new(),
            signals: Vec::new(),
            timers: [None, None],
            events: [Vec::new(), Vec::new()],
            munge: Box::new(|_, _| {}),
            steps: 0,
        }
    }

    /// Side 0 offers, side 1 answers, each description crossing the signalling delay.
    pub fn negotiate(&mut self) {
        self.negotiate_from(0, false);
    }

    /// Side `side` offers (with an ICE restart if asked), the other answers. Returns the
    /// offer.
    pub fn negotiate_from(&mut self, side: usize, ice_restart: bool) -> SessionDescription {
        let offer = self.peers[side]
            .create_offer(self.now, ice_restart)
            .unwrap();
        self.peers[side]
            .set_local_description(self.now, &offer)
            .unwrap();
        self.signals.push((
            self.now + self.signal_delay,
            1 - side,
            Signal::Description(offer.clone()),
        ));
        offer
    }

    fn drain(&mut self) {
        for side in 0..2 {
            while let Some(o) = self.peers[side].poll_output() {
                match o {
                    Output::Transmit(t) => {
                        let index = self.sent[side];
                        self.sent[side] += 1;
                        if !(self.loss)(self.now, side, index, &t.data) {
                            self.in_flight
                                .push((self.now + self.latency, 1 - side, t.data));
                        }
                    }
                    Output::Timeout(t) => self.timers[side] = t,
                    Output::Event(e) => {
                        if let Event::IceCandidate(c) = &e {
                            self.signals.push((
                                self.now + self.signal_delay,
                                1 - side,
                                Signal::Candidate(c.clone()),
                            ));
                        }
                        self.events[side].push((self.now, e));
                    }
                    Output::Request(_) => {}
                }
            }
        }
    }

    fn deliver_signal(&mut self, to: usize, s: Signal) {
        let now = self.now;
        match s {
            Signal::Candidate(c) => {
                let _ = self.peers[to].add_ice_candidate(now, Some(&c));
            }
            Signal::Description(mut d) => {
                (self.munge)(to, &mut d);
                self.peers[to].set_remote_description(now, &d).unwrap();
                if d.kind == peer_connection::SdpType::Offer {
                    let answer = self.peers[to].create_answer(now).unwrap();
                    self.peers[to].set_local_description(now, &answer).unwrap();
                    self.signals.push((
                        now + self.signal_delay,
                        1 - to,
                        Signal::Description(answer),
                    ));
                }
            }
        }
    }

    /// Runs until `done` holds or `limit` of virtual time passes; returns whether `done`
    /// held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            self.drain();
            if done(self) {
                return true;
            }
            self.steps += 1;
            assert!(self.steps < 5_000_000, "step limit");
            let next = self
                .in_flight
                .iter()
                .map(|x| x.0)
                .chain(self.signals.iter().map(|x| x.0))
                .chain(self.timers.iter().flatten().copied())
                .min();
            let Some(next) = next.filter(|&t| t <= deadline) else {
                self.now = deadline;
                return false;
            };
            self.now = self.now.max(next);
            let now = self.now;
            // Signals first, then datagrams, then timers, each in order.
            if let Some(i) = self.signals.iter().position(|x| x.0 <= now) {
                let (_, to, s) = self.signals.remove(i);
                self.deliver_signal(to, s);
                continue;
            }
            if let Some(i) = self.in_flight.iter().position(|x| x.0 <= now) {
                let (_, to, data) = self.in_flight.remove(i);
                let r = Receive::udp(self.addrs[to], self.addrs[1 - to], &data);
                self.peers[to].handle_receive(now, r);
                continue;
            }
            for side in 0..2 {
                if self.timers[side].is_some_and(|t| t <= now) {
                    self.timers[side] = None;
                    self.peers[side].handle_timeout(now);
                }
            }
        }
    }

    /// A datagram from side `1 - to`'s address arrives at side `to` now.
    pub fn inject(&mut self, to: usize, data: &[u8]) {
        let r = Receive::udp(self.addrs[to], self.addrs[1 - to], data);
        self.peers[to].handle_receive(self.now, r);
    }

    pub fn connected(&self) -> bool {
        self.peers
            .iter()
            .all(|p| p.connection_state() == PeerConnectionState::Connected)
    }

    /// When side `side` first saw `pred` hold for one of its events.
    pub fn first_event(&self, side: usize, pred: impl Fn(&Event) -> bool) -> Option<Instant> {
        self.events[side].iter().find(|(_, e)| pred(e)).map(|x| x.0)
    }

    /// The channel side 1 was offered (its `ondatachannel`).
    pub fn incoming(&self, side: usize) -> Option<ChannelId> {
        self.events[side].iter().find_map(|(_, e)| match e {
            Event::DataChannel(DataChannelEvent::Incoming { channel, .. }) => Some(*channel),
            _ => None,
        })
    }

    /// Messages side `side` received, in order.
    pub fn messages(&self, side: usize) -> Vec<&[u8]> {
        self.events[side]
            .iter()
            .filter_map(|(_, e)| match e {
                Event::DataChannel(DataChannelEvent::Message { data, .. }) => Some(data.as_slice()),
                _ => None,
            })
            .collect()
    }
}
