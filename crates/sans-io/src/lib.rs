//! The face every sans-IO core of the stack shows its driver, and the words they share.
//!
//! A core (the ICE [agent], the TURN and STUN [servers], the TURN and RFC 5780 [clients], the
//! WebRTC session) never touches a socket or a clock. Its driver — a tokio loop, the natsim
//! emulator, a test — gives it inputs, each with the current time, and carries out what
//! comes back from one method:
//!
//! ```text
//!   socket / connection / natsim ──Receive──> core.handle_*(now, …)      (inputs; any number)
//!                                             core.handle_timeout(now)   (when the timer fires)
//!   core.poll_output() until None:
//!       Output::Transmit(t)  ──> send t.data from t.local to t.remote over t.transport
//!       Output::Event(e)     ──> the application
//!       Output::Request(r)   ──> the driver: open a connection, bind a relay socket, …
//!       Output::Timeout(t)   ──> re-arm the driver's one timer (always the last item)
//! ```
//!
//! # The drain rule
//!
//! *Before a driver waits — for a socket, a connection or its timer — it calls
//! `poll_output` until `None`.* That is the whole rule, and nothing else can go wrong:
//!
//! - Inputs may come in any number and order. Each ends in its core's settle step, so the
//!   core's state is whole after every call; what it has to say waits in one queue, in order.
//! - There is no second queue and no separate timer query to forget: whenever an input may
//!   have moved the core's next deadline earlier, the drain ends with [`Output::Timeout`]
//!   carrying the new deadline. A driver that drains before it waits has always armed the
//!   right timer. (A deadline reported earlier than needed costs one early
//!   `handle_timeout`, never a missed one.)
//! - `poll_output` and every fast path that returns a transmit are `#[must_use]`.
//!
//! Hot paths that must not queue or copy (relaying, application data) return their result
//! from the input call instead, borrowing the bytes: `Transmit<&[u8]>`, or received data as
//! a slice of the input.
//!
//! [agent]: https://docs.rs/ice-agent
//! [servers]: https://docs.rs/turn-server
//! [clients]: https://docs.rs/stun-client
//!
//! # A core and its driver loop
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use sans_io::{Output, Outputs, Receive, Transmit, Transport};
//!
//! /// Echoes every datagram, and says "tick" once a second.
//! struct Echo { out: Outputs<&'static str>, next: Instant }
//!
//! impl Echo {
//!     fn handle_receive(&mut self, _now: Instant, r: Receive<'_>) {
//!         self.out.transmit(Transmit {
//!             transport: r.transport, local: r.local, remote: r.remote, data: r.data.to_vec(),
//!         });
//!     }
//!     fn handle_timeout(&mut self, now: Instant) {
//!         if now >= self.next {
//!             self.out.event("tick");
//!             self.next = now + Duration::from_secs(1);
//!             self.out.timer_moved();
//!         }
//!     }
//!     #[must_use]
//!     fn poll_output(&mut self) -> Option<Output<&'static str>> {
//!         self.out.pop().or_else(|| self.out.take_timer_moved().then(|| Output::Timeout(Some(self.next))))
//!     }
//! }
//!
//! let t0 = Instant::now();
//! let mut core = Echo { out: Outputs::new(), next: t0 + Duration::from_secs(1) };
//! let (a, b): (SocketAddr, SocketAddr) = ("192.0.2.1:1".parse()?, "192.0.2.2:2".parse()?);
//! core.handle_receive(t0, Receive { transport: Transport::Udp, local: a, remote: b, data: b"hi" });
//! let mut sent = Vec::new();
//! let mut timer = None;
//! while let Some(o) = core.poll_output() {
//!     match o {
//!         Output::Transmit(t) => sent.push(t),
//!         Output::Timeout(t) => timer = t,
//!         Output::Event(_) => {}
//!     }
//! }
//! assert_eq!(sent[0].data, b"hi");
//! assert_eq!(timer, Some(t0 + Duration::from_secs(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod retransmit;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

pub use retransmit::{Retransmit, RetransmitAction};

/// How bytes travel between two transport addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// A TCP connection, carrying frames (STUN and ChannelData, RFC 8656 §12.5).
    Tcp,
    /// TLS over TCP; cores see the plaintext frames, the driver runs TLS.
    Tls,
}

impl Transport {
    /// Whether it is a byte stream (TCP or TLS), whose messages the driver cuts into frames
    /// (`stun_codec::StreamFramer`) before a core sees them.
    pub const fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// A core's name for a connection it asked its driver to open, so that the driver's answer
/// (established, failed, closed) finds its request. Once open, a connection is named by its
/// transport addresses like any other path ([`Transmit`], [`Receive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Bytes for the driver to send: a datagram from `local` to `remote` over UDP, or a whole
/// frame on the stream connection between `local` and `remote` over TCP or TLS.
///
/// Queued transmits own their bytes (`Transmit<Vec<u8>>`); fast paths return one that
/// borrows them (`Transmit<&[u8]>`).
#[must_use = "a transmit does nothing until the driver sends it"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<D = Vec<u8>> {
    /// UDP, or the stream's transport.
    pub transport: Transport,
    /// The local transport address to send from (a socket, a relayed address, or the local
    /// end of a connection).
    pub local: SocketAddr,
    /// The destination.
    pub remote: SocketAddr,
    /// The datagram or frame.
    pub data: D,
}

impl<D: AsRef<[u8]>> Transmit<D> {
    /// The same transmit with its bytes copied into a `Vec`.
    pub fn to_owned(&self) -> Transmit {
        Transmit {
            transport: self.transport,
            local: self.local,
            remote: self.remote,
            data: self.data.as_ref().to_vec(),
        }
    }
}

/// Bytes that arrived: a datagram on the local socket `local` from `remote`, or a whole
/// frame on the stream connection between them (the driver cuts streams into frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receive<'a> {
    /// UDP, or the stream's transport.
    pub transport: Transport,
    /// Where it arrived: the local socket, or the local end of the connection.
    pub local: SocketAddr,
    /// Where it came from.
    pub remote: SocketAddr,
    /// The datagram or frame.
    pub data: &'a [u8],
}

impl<'a> Receive<'a> {
    /// A UDP datagram.
    pub fn udp(local: SocketAddr, remote: SocketAddr, data: &'a [u8]) -> Receive<'a> {
        Receive {
            transport: Transport::Udp,
            local,
            remote,
            data,
        }
    }
}

/// What a core's `poll_output` gives: the one output type of every core, with the core's own
/// events `E` and driver requests `R` ([`Infallible`] for a core that has none).
#[must_use = "outputs must be carried out: see the drain rule"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<E, R = Infallible> {
    /// Bytes to send.
    Transmit(Transmit),
    /// Something for the application.
    Event(E),
    /// Something only the driver can do (open a connection, bind a socket); its answer
    /// comes back as an input.
    Request(R),
    /// The last output of a drain after any change: call `handle_timeout` at this instant
    /// (`None`: the core needs no timer now). It replaces whatever timer was armed.
    Timeout(Option<Instant>),
}

/// The output queue a core keeps: transmits, events and requests in order, and whether the
/// next drain must end with the timeout. A core's `poll_output` is
/// `self.out.pop().or_else(|| self.out.take_timer_moved().then(|| Output::Timeout(self.next_timeout())))`.
#[derive(Debug)]
pub struct Outputs<E, R = Infallible> {
    queue: VecDeque<Output<E, R>>,
    timer_moved: bool,
}

impl<E, R> Default for Outputs<E, R> {
    fn default() -> Self {
        Outputs::new()
    }
}

impl<E, R> Outputs<E, R> {
    /// An empty queue whose first drain reports the timer.
    pub fn new() -> Outputs<E, R> {
        Outputs {
            queue: VecDeque::new(),
            timer_moved: true,
        }
    }

    /// Queues bytes to send.
    pub fn transmit(&mut self, t: Transmit) {
        self.queue.push_back(Output::Transmit(t));
    }

    /// Queues an event for the application.
    pub fn event(&mut self, e: E) {
        self.queue.push_back(Output::Event(e));
    }

    /// Queues a request for the driver.
    pub fn request(&mut self, r: R) {
        self.queue.push_back(Output::Request(r));
    }

    /// Notes that the core's next deadline may have moved earlier: the next drain ends with
    /// [`Output::Timeout`].
    pub fn timer_moved(&mut self) {
        self.timer_moved = true;
    }

    /// The next queued output.
    pub fn pop(&mut self) -> Option<Output<E, R>> {
        self.queue.pop_front()
    }

    /// Whether the timeout is to be reported now (once per change).
    pub fn take_timer_moved(&mut self) -> bool {
        std::mem::take(&mut self.timer_moved)
    }

    /// Queued outputs not yet drained.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The face, as a trait: what every core has in common, so that a generic driver (natsim's
/// adapters, a test harness) can run any of them. Every core of the stack implements it (the
/// ICE agent, the TURN and STUN servers, the TURN and RFC 5780 clients), which the compiler
/// checks: their faces cannot drift apart.
pub trait Core {
    /// The core's events for the application.
    type Event;
    /// The core's requests for its driver.
    type Request;

    /// The next output; see the [drain rule](crate#the-drain-rule).
    #[must_use]
    fn poll_output(&mut self) -> Option<Output<Self::Event, Self::Request>>;

    /// The timer the last [`Output::Timeout`] asked for has fired.
    fn handle_timeout(&mut self, now: Instant);
}
