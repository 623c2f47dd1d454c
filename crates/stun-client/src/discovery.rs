//! An RFC 5780 NAT behaviour discovery client, a sans-IO core like every other of the stack
//! (natsim hosts it in `scenarios`; a tokio driver could as well).
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
//! Requests follow the RFC 8489 schedule with an RTO of 100 ms: resent 100, 200, 400 and
//! 800 ms apart; a test with no answer 1.5 s after the last one has failed
//! ([`Retransmit::udp`] with Rc = 5, Rm = 15).
//!
//! ```
//! use std::time::Instant;
//! use sans_io::Output;
//! use stun_client::discovery::NatDiscovery;
//!
//! let now = Instant::now();
//! let mut probe = NatDiscovery::new("192.168.1.10:5000".parse()?, "198.51.100.1:3478".parse()?);
//! probe.start(now);
//! let Some(Output::Transmit(test_i)) = probe.poll_output() else { panic!("test I") };
//! assert_eq!(test_i.remote, "198.51.100.1:3478".parse()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sans_io::{Output, Outputs, Receive, Retransmit, RetransmitAction, Transmit, Transport};
use stun_codec::attr::{ChangeRequest, OtherAddress, XorMappedAddress};
use stun_codec::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};

/// How a NAT reuses mappings across destinations (RFC 4787 §4.1), as RFC 5780 §4.3 finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingBehavior {
    /// One external endpoint per internal endpoint, whatever the destination.
    EndpointIndependent,
    /// One per internal endpoint and destination IP.
    AddressDependent,
    /// One per internal endpoint and destination IP and port.
    AddressAndPortDependent,
}

/// Which inbound packets reach a mapping (RFC 4787 §5), as RFC 5780 §4.4 finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilteringBehavior {
    /// From anyone.
    EndpointIndependent,
    /// From IPs the internal endpoint has sent to.
    AddressDependent,
    /// From the IP and port pairs the internal endpoint has sent to.
    AddressAndPortDependent,
}

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

/// The RTO of the discovery requests, and the schedule: 5 sends, the last waited on for
/// 15 RTOs.
const RTO: Duration = Duration::from_millis(100);
const SENDS: u32 = 5;
const LAST_WAIT: u32 = 15;

/// The RFC 5780 discovery client. Its one event is the [`Discovery`] once every test has
/// run; [`NatDiscovery::result`] shows what is known so far.
#[derive(Debug)]
pub struct NatDiscovery {
    local: SocketAddr,
    server: SocketAddr,
    other: Option<SocketAddr>,
    step: Option<Step>,
    tid: TransactionId,
    timer: Option<Retransmit>,
    bytes: Vec<u8>,
    m2: Option<SocketAddr>,
    result: Discovery,
    out: Outputs<Discovery>,
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
            timer: None,
            bytes: Vec::new(),
            m2: None,
            result: Discovery::default(),
            out: Outputs::new(),
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

    /// Starts the tests from the local port.
    pub fn start(&mut self, now: Instant) {
        if self.step.is_none() && !self.result.done {
            self.begin(Some(Step::MappingI), now);
        }
    }

    /// A datagram on the local port: an answer to the current test, or the hairpin probe.
    pub fn handle_receive(&mut self, now: Instant, r: Receive<'_>) {
        if r.local != self.local || r.transport != Transport::Udp {
            return;
        }
        let Ok(msg) = Message::parse(r.data) else {
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
            (Some(_), Class::SuccessResponse) => self.answered(&msg, r.remote, now),
            _ => {}
        }
    }

    /// Resends the current test's request, or gives the test up.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.out.timer_moved();
        let Some(timer) = self.timer.as_mut() else {
            return;
        };
        match timer.poll(now) {
            Some(RetransmitAction::Resend) => self.transmit(),
            Some(RetransmitAction::TimedOut) => self.timed_out(now),
            None => {}
        }
    }

    /// The next output: requests, the result once every test has run, and last the timer.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<Discovery>> {
        self.out.pop().or_else(|| {
            self.out
                .take_timer_moved()
                .then(|| Output::Timeout(self.timer.as_ref().map(Retransmit::next)))
        })
    }

    fn begin(&mut self, step: Option<Step>, now: Instant) {
        self.step = step;
        self.out.timer_moved();
        let Some(step) = step else {
            self.result.done = true;
            self.timer = None;
            self.out.event(self.result.clone());
            return;
        };
        self.counter += 1;
        self.tid = TransactionId([self.counter, 0x5e, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, step as u8]);
        self.request(now);
    }

    /// Sends the current test's request (a test whose destination is unknown ends the run).
    fn request(&mut self, now: Instant) {
        let Some(step) = self.step else { return };
        if self.destination(step).is_none() {
            return self.begin(None, now);
        }
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
        self.bytes = buf[..len].to_vec();
        self.timer = Some(Retransmit::udp(now, RTO, SENDS, LAST_WAIT));
        self.transmit();
    }

    fn transmit(&mut self) {
        let Some(remote) = self.step.and_then(|s| self.destination(s)) else {
            return;
        };
        self.out.transmit(Transmit {
            transport: Transport::Udp,
            local: self.local,
            remote,
            data: self.bytes.clone(),
        });
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

impl sans_io::Core for NatDiscovery {
    type Event = Discovery;
    type Request = std::convert::Infallible;

    fn poll_output(&mut self) -> Option<Output<Discovery>> {
        NatDiscovery::poll_output(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        NatDiscovery::handle_timeout(self, now)
    }
}
