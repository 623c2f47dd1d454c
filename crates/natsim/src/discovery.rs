//! An RFC 5780 NAT behaviour discovery client, as a simulated endpoint.
//!
//! It runs, from one local port, against a server with a primary (A1, P1) and an alternate
//! (A2, P2) address (`turn_server::stun::StunServer` in RFC 5780 mode is one):
//!
//! 1. Test I (§4.3): Binding to (A1, P1) → the mapped address M1 and OTHER-ADDRESS. No answer at
//!    all means UDP is blocked.
//! 2. Filtering tests II and III (§4.4), before anything else is sent so the mapping has only
//!    ever talked to (A1, P1): CHANGE-REQUEST for IP and port → answered means
//!    endpoint-independent filtering; else CHANGE-REQUEST for port → answered means
//!    address-dependent, else address-and-port-dependent.
//! 3. Mapping tests II and III (§4.3): Binding to (A2, P1) → M2; M2 = M1 means
//!    endpoint-independent mapping; else to (A2, P2) → M3; M3 = M2 means address-dependent,
//!    else address-and-port-dependent.
//! 4. Hairpinning (§4.5): a Binding request to M1; receiving it back means the NAT hairpins.
//!
//! Requests are retransmitted at 100, 200, 400 and 800 ms; a test with no answer 1.5 s after
//! the last retransmission has failed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_codec::attr::{ChangeRequest, OtherAddress, XorMappedAddress};
use stun_codec::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

use crate::endpoint::{Endpoint, Input, Output};
use crate::nat::{FilteringBehavior, MappingBehavior};

/// What the discovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// No answer to test I: UDP does not get through.
    pub udp_blocked: bool,
    /// M1, the mapped address of test I.
    pub mapped: Option<SocketAddr>,
    /// The mapping behaviour.
    pub mapping: Option<MappingBehavior>,
    /// The filtering behaviour.
    pub filtering: Option<FilteringBehavior>,
    /// Whether the NAT hairpins.
    pub hairpinning: Option<bool>,
    /// Whether every test has run.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    MappingI,
    FilteringII,
    FilteringIII,
    MappingII,
    MappingIII,
    Hairpin,
}

const RETRANSMITS: [u64; 4] = [100, 200, 400, 800];
const FINAL_WAIT: u64 = 1500;

/// The RFC 5780 discovery client. Read the outcome with [`NatDiscovery::result`].
#[derive(Debug)]
pub struct NatDiscovery {
    local: SocketAddr,
    server: SocketAddr,
    other: Option<SocketAddr>,
    step: Option<Step>,
    tid: TransactionId,
    attempt: usize,
    next: Option<Instant>,
    m2: Option<SocketAddr>,
    result: Discovery,
    out: VecDeque<Output>,
    counter: u8,
}

impl NatDiscovery {
    /// A client on `local` that probes the RFC 5780 server whose primary address is `server`.
    pub fn new(local: SocketAddr, server: SocketAddr) -> NatDiscovery {
        NatDiscovery {
            local,
            server,
            other: None,
            step: None,
            tid: TransactionId([0; 12]),
            attempt: 0,
            next: None,
            m2: None,
            result: Discovery::default(),
            out: VecDeque::new(),
            counter: 0,
        }
    }

    /// What has been found so far (complete when `done`).
    pub fn result(&self) -> &Discovery {
        &self.result
    }

    fn destination(&self, step: Step) -> Option<SocketAddr> {
        let other = self.other;
        Some(match step {
            Step::MappingI | Step::FilteringII | Step::FilteringIII => self.server,
            Step::MappingII => SocketAddr::new(other?.ip(), self.server.port()),
            Step::MappingIII => other?,
            Step::Hairpin => self.result.mapped?,
        })
    }

    fn begin(&mut self, step: Option<Step>, now: Instant) {
        self.step = step;
        self.attempt = 0;
        let Some(step) = step else {
            self.result.done = true;
            self.next = None;
            return;
        };
        self.counter += 1;
        self.tid = TransactionId([self.counter, 0x5e, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, step as u8]);
        self.send(now);
    }

    fn send(&mut self, now: Instant) {
        let Some(step) = self.step else { return };
        let Some(dst) = self.destination(step) else {
            return self.begin(None, now);
        };
        let change = match step {
            Step::FilteringII => Some(ChangeRequest {
                change_ip: true,
                change_port: true,
            }),
            Step::FilteringIII => Some(ChangeRequest {
                change_ip: false,
                change_port: true,
            }),
            _ => None,
        };
        let mut buf = [0u8; 64];
        let len = (|| {
            let mut b = MessageBuilder::new(
                &mut buf,
                MessageType::new(Method::BINDING, Class::Request),
                self.tid,
            )?;
            if let Some(c) = change {
                b.add(&c)?;
            }
            b.add_fingerprint()?;
            Ok::<usize, stun_codec::BuildError>(b.finish().len())
        })()
        .expect("64 bytes hold a Binding request");
        self.out.push_back(Output::Udp {
            local: self.local,
            remote: dst,
            data: buf[..len].to_vec(),
        });
        let wait = RETRANSMITS.get(self.attempt).copied().unwrap_or(FINAL_WAIT);
        self.next = Some(now + Duration::from_millis(wait));
    }

    /// The current test got no answer.
    fn timed_out(&mut self, now: Instant) {
        let Some(step) = self.step else { return };
        let next = match step {
            Step::MappingI => {
                self.result.udp_blocked = true;
                None
            }
            Step::FilteringII => Some(Step::FilteringIII),
            Step::FilteringIII => {
                self.result.filtering = Some(FilteringBehavior::AddressAndPortDependent);
                Some(Step::MappingII)
            }
            // A mapping test without an answer: the server or the path failed; stop there.
            Step::MappingII | Step::MappingIII => None,
            Step::Hairpin => {
                self.result.hairpinning = Some(false);
                None
            }
        };
        self.begin(next, now);
    }

    /// Where the answer to `step` must come from: the address asked, or for the filtering
    /// tests the changed one (a server that ignores CHANGE-REQUEST must not pass for an open
    /// filter).
    fn expected_source(&self, step: Step) -> Option<SocketAddr> {
        match step {
            Step::FilteringII => self.other,
            Step::FilteringIII => Some(SocketAddr::new(self.server.ip(), self.other?.port())),
            _ => self.destination(step),
        }
    }

    fn answered(&mut self, msg: &Message<'_>, from: SocketAddr, now: Instant) {
        let Some(step) = self.step else { return };
        if self.expected_source(step) != Some(from) {
            return;
        }
        // A success response without a mapped address answers nothing.
        let Some(mapped) = msg.get::<XorMappedAddress>().ok().flatten().map(|a| a.0) else {
            return;
        };
        let mapped = Some(mapped);
        let next = match step {
            Step::MappingI => {
                self.result.mapped = mapped;
                self.other = msg.get::<OtherAddress>().ok().flatten().map(|a| a.0);
                if self.other.is_none() {
                    None // not an RFC 5780 server: nothing more to learn
                } else {
                    Some(Step::FilteringII)
                }
            }
            Step::FilteringII => {
                self.result.filtering = Some(FilteringBehavior::EndpointIndependent);
                Some(Step::MappingII)
            }
            Step::FilteringIII => {
                self.result.filtering = Some(FilteringBehavior::AddressDependent);
                Some(Step::MappingII)
            }
            Step::MappingII => {
                self.m2 = mapped;
                if mapped == self.result.mapped {
                    self.result.mapping = Some(MappingBehavior::EndpointIndependent);
                    Some(Step::Hairpin)
                } else {
                    Some(Step::MappingIII)
                }
            }
            Step::MappingIII => {
                self.result.mapping = Some(if mapped == self.m2 {
                    MappingBehavior::AddressDependent
                } else {
                    MappingBehavior::AddressAndPortDependent
                });
                Some(Step::Hairpin)
            }
            Step::Hairpin => return,
        };
        self.begin(next, now);
    }
}

impl Endpoint for NatDiscovery {
    fn start(&mut self, now: Instant) {
        self.begin(Some(Step::MappingI), now);
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        let Input::Udp { data, remote, .. } = input else {
            return;
        };
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        if msg.transaction_id() != self.tid {
            return;
        }
        match (self.step, msg.message_type().class) {
            // Our own hairpin probe came back to us.
            (Some(Step::Hairpin), Class::Request) => {
                self.result.hairpinning = Some(true);
                self.begin(None, now);
            }
            (Some(_), Class::SuccessResponse) => self.answered(&msg, remote, now),
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.attempt < RETRANSMITS.len() {
            self.attempt += 1;
            self.send(now);
        } else {
            self.timed_out(now);
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
}
