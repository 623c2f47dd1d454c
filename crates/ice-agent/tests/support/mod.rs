//! An agent with its outputs sorted into queues by kind, for tests that look at one kind at
//! a time (the next datagram, the next event, the timer). Inputs go to the agent itself
//! (`Deref`); every `poll_*` first drains the agent's one output queue into these.

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use ice_agent::{Agent, Event, Output, Request, Transmit};

pub struct Queued {
    pub agent: Agent,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    requests: VecDeque<Request>,
    timer: Option<Instant>,
}

impl Queued {
    pub fn new(agent: Agent) -> Queued {
        Queued {
            agent,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            requests: VecDeque::new(),
            timer: None,
        }
    }

    fn pull(&mut self) {
        while let Some(o) = self.agent.poll_output() {
            match o {
                Output::Transmit(t) => self.transmits.push_back(t),
                Output::Event(e) => self.events.push_back(e),
                Output::Request(r) => self.requests.push_back(r),
                Output::Timeout(t) => self.timer = t,
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.pull();
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.pull();
        self.events.pop_front()
    }

    pub fn poll_request(&mut self) -> Option<Request> {
        self.pull();
        self.requests.pop_front()
    }

    /// The timer as the agent last reported it.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pull();
        self.timer
    }
}

impl Deref for Queued {
    type Target = Agent;
    fn deref(&self) -> &Agent {
        &self.agent
    }
}

impl DerefMut for Queued {
    fn deref_mut(&mut self) -> &mut Agent {
        &mut self.agent
    }
}
