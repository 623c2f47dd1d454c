//! A tokio driver for the [`Agent`]: it binds the UDP sockets, resolves the STUN and TURN
//! servers, runs the agent's timers, opens the TCP and TLS connections the agent asks for,
//! and gives the application async send and receive on the selected pairs.
//!
//! [`start`] returns a [`Handle`] (cloneable: signalling, [`Handle::send`], restart, close)
//! and an [`Events`] receiver: the agent's events ([`Event::Ice`]: local candidates to
//! signal, state changes, selected pairs) and received data ([`Event::Data`]).
//!
//! The driver runs any [`Hosted`] core, not only the agent: a WebRTC session built on one
//! (`peer_connection::driver`) is started with [`start_with`] and reached through
//! [`Handle::with`].
//!
//! Sending runs on the caller's task: [`Handle::send`] frames the data and hands the datagram
//! to the socket at once, with no hop through another task. Each socket and connection has a
//! reader task, and one task runs the timers; they share the agent behind a mutex that is
//! never held across an await.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use ice_agent::driver::{self, DriverConfig, Event, IceServer};
//! use ice_agent::{AgentConfig, Role};
//!
//! let mut config = DriverConfig::new(AgentConfig::new(Role::Controlling));
//! config.servers.push(IceServer::stun("stun:stun.example.org")?);
//! let (handle, mut events) = driver::start(config).await?;
//! // Signal handle.local_credentials() and the candidates from `events` to the peer; give
//! // the peer's to handle.set_remote_credentials() and handle.add_remote_candidate().
//! while let Some(ev) = events.next().await {
//!     match ev {
//!         Event::Ice(ice_agent::Event::SelectedPair { stream, component, .. }) => {
//!             handle.send(stream, component, b"hello")?;
//!         }
//!         Event::Data { data, .. } => println!("{} bytes", data.len()),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod setup;
mod tasks;
mod url;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use sans_io::{Output, Receive, Transmit, Transport};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

pub use setup::tls_trusting;
pub use url::{IceServer, ServerUrl, UrlError, UrlScheme};

use setup::{bind_udp, host_ips, platform_tls, resolve_server};
use tasks::{read_udp, run_connection, run_timers};

use crate::{
    AddCandidateError, Agent, AgentConfig, Candidate, ConnectionId, ConnectionState, Credentials,
    LocalSocket, Request, SendError, StreamId,
};

/// What a session tells its application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// One of the agent's events: a local candidate to signal, end of gathering, a state
    /// change, a selected pair.
    Ice(crate::Event),
    /// Application data that arrived on a validated pair (directly, or through a TURN
    /// server over UDP, TCP or TLS).
    Data {
        /// The stream.
        stream: StreamId,
        /// The component.
        component: u16,
        /// The payload.
        data: Vec<u8>,
    },
}

/// A sans-IO core the driver can run: the ICE [`Agent`] itself, or a session that owns one
/// and speaks for it (its requests are the agent's). The driver gives it what arrives on the
/// sockets and connections it binds and opens, runs its timer, and carries out its outputs
/// (the drain rule of `sans-io`).
pub trait Hosted: Send + 'static {
    /// What the application gets.
    type Event: Send + std::fmt::Debug + 'static;

    /// Bytes that arrived; application data the core returns at once (the agent's) comes
    /// back as an event.
    fn handle_receive(&mut self, now: Instant, r: Receive<'_>) -> Option<Self::Event>;
    /// The timer fired.
    fn handle_timeout(&mut self, now: Instant);
    /// The next output.
    fn poll_output(&mut self) -> Option<Output<Self::Event, Request>>;
    /// A connection the core asked for is up.
    fn connection_established(&mut self, now: Instant, id: ConnectionId, local: SocketAddr);
    /// A connection closed or could not be made.
    fn connection_closed(&mut self, now: Instant, id: ConnectionId);
    /// The session ends.
    fn close(&mut self, now: Instant);
    /// Whether the event is data the application may lose when it falls behind (the
    /// agent's datagrams, as a full socket buffer would lose them). Other data (a reliable
    /// DataChannel's messages) waits instead: the socket is not read until the application
    /// takes it, and the peer's flow control does the rest.
    fn droppable(event: &Self::Event) -> bool;
    /// Whether the event goes to the bounded data queue rather than the control queue.
    fn is_data(event: &Self::Event) -> bool;
}

impl Hosted for Agent {
    type Event = Event;

    fn handle_receive(&mut self, now: Instant, r: Receive<'_>) -> Option<Event> {
        Agent::handle_receive(self, now, r).map(|r| Event::Data {
            stream: r.stream,
            component: r.component,
            data: r.data.to_vec(),
        })
    }

    fn handle_timeout(&mut self, now: Instant) {
        Agent::handle_timeout(self, now)
    }

    fn poll_output(&mut self) -> Option<Output<Event, Request>> {
        Agent::poll_output(self).map(|o| match o {
            Output::Event(e) => Output::Event(Event::Ice(e)),
            Output::Transmit(t) => Output::Transmit(t),
            Output::Request(r) => Output::Request(r),
            Output::Timeout(t) => Output::Timeout(t),
        })
    }

    fn connection_established(&mut self, now: Instant, id: ConnectionId, local: SocketAddr) {
        Agent::connection_established(self, now, id, local)
    }

    fn connection_closed(&mut self, now: Instant, id: ConnectionId) {
        Agent::connection_closed(self, now, id)
    }

    fn close(&mut self, now: Instant) {
        Agent::close(self, now)
    }

    fn droppable(_: &Event) -> bool {
        true
    }

    fn is_data(event: &Event) -> bool {
        matches!(event, Event::Data { .. })
    }
}

/// Received data waiting for the application, per session. Beyond this, datagrams are
/// dropped (as a full socket buffer would), never queued without bound.
const DATA_QUEUE: usize = 1024;
/// Frames waiting to be written to one TURN connection.
const CONNECTION_QUEUE: usize = 256;
/// Writing one frame to a TURN connection (a server that stops reading) and resolving one
/// server name may take this long.
const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The largest datagram read.
const MAX_DATAGRAM: usize = 65_536;
/// A TCP or TLS connection to a TURN server must be up within this.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the driver binds and whom it asks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The agent's configuration. Its `stun_servers` and `turn_servers` are added to the
    /// resolved [`servers`](Self::servers).
    pub agent: AgentConfig,
    /// STUN and TURN servers, by URL (RFC 7064, RFC 7065): resolved when the driver starts.
    pub servers: Vec<IceServer>,
    /// The data streams, each as its number of components (1 with rtcp-mux). Default: one
    /// stream of one component.
    pub streams: Vec<u16>,
    /// Bind these addresses only; empty: every address of the host's interfaces (filtered by
    /// [`interfaces`](Self::interfaces); loopback and IPv4 link-local addresses only if the
    /// agent's configuration allows them, IPv6 link-local never). An address found on the
    /// host that cannot be bound is skipped; one given here is an error.
    pub ips: Vec<IpAddr>,
    /// Only these interfaces (by name); empty: all.
    pub interfaces: Vec<String>,
    /// Bind local ports from this range, inclusive; `None`: any port.
    pub port_range: Option<(u16, u16)>,
    /// TLS client configuration for `turns:` servers; `None`: the platform's root
    /// certificates.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl DriverConfig {
    /// One stream of one component, every interface, any port, no servers.
    pub fn new(agent: AgentConfig) -> DriverConfig {
        DriverConfig {
            agent,
            servers: Vec::new(),
            streams: vec![1],
            ips: Vec::new(),
            interfaces: Vec::new(),
            port_range: None,
            tls: None,
        }
    }
}

/// Why the driver could not start, or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A server name did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// No socket could be bound: no usable address, or none of them could be bound.
    #[error("no local address to bind")]
    NoAddress,
    /// Binding a socket failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The platform's root certificates could not be loaded for `turns:`.
    #[error("TLS roots: {0}")]
    Tls(String),
    /// A remote candidate was refused.
    #[error(transparent)]
    Candidate(#[from] AddCandidateError),
    /// The data could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The session was closed.
    #[error("session closed")]
    Closed,
}

/// The session's events for the application.
#[derive(Debug)]
pub struct Events<E = Event> {
    events: mpsc::UnboundedReceiver<E>,
    data: mpsc::Receiver<E>,
}

impl<E> Events<E> {
    /// The next event: for the agent, one of its own ([`Event::Ice`]) or [`Event::Data`].
    /// Control events come before data waiting at the same time. `None` once the session
    /// is closed and everything was read.
    pub async fn next(&mut self) -> Option<E> {
        tokio::select! {
            biased;
            Some(e) = self.events.recv() => Some(e),
            Some(d) = self.data.recv() => Some(d),
            else => None,
        }
    }
}

/// The application's side of a running session. Clones share the session; it closes when
/// [`Handle::close`] is called or the last clone is dropped (TURN allocations are released
/// either way).
#[derive(Debug)]
pub struct Handle<C: Hosted = Agent> {
    shared: Arc<Shared<C>>,
    streams: Arc<[StreamId]>,
}

impl<C: Hosted> Clone for Handle<C> {
    fn clone(&self) -> Self {
        Handle {
            shared: self.shared.clone(),
            streams: self.streams.clone(),
        }
    }
}

#[derive(Debug)]
struct Shared<C: Hosted> {
    inner: Mutex<Inner<C>>,
    /// Wakes the timer task when the agent's next timeout moved earlier.
    wake: Arc<Notify>,
    tasks: Mutex<Vec<AbortHandle>>,
    tls: Arc<rustls::ClientConfig>,
    /// The runtime the session started on: `Handle` methods may be called from any thread.
    rt: tokio::runtime::Handle,
}

impl<C: Hosted> Drop for Shared<C> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        inner.close();
        for t in self.tasks.get_mut().map(std::mem::take).unwrap_or_default() {
            t.abort();
        }
    }
}

#[derive(Debug)]
struct Inner<C: Hosted> {
    /// The core: the agent, or a session around one.
    agent: C,
    /// The sockets, for sending: straight to the kernel, so a send never waits on the
    /// reactor's idea of readiness (tokio's `try_send_to` refuses until it has polled).
    sockets: HashMap<SocketAddr, std::net::UdpSocket>,
    connections: HashMap<ConnectionId, mpsc::Sender<Vec<u8>>>,
    /// The open connections by their (local, remote) addresses, which name them in the
    /// agent's transmits.
    streams: HashMap<(SocketAddr, SocketAddr), ConnectionId>,
    /// The tasks of the TURN connections, so a shutdown can wait for their last writes.
    connection_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `None` once closed, so [`Events::next`] ends.
    events: Option<mpsc::UnboundedSender<C::Event>>,
    data: Option<mpsc::Sender<C::Event>>,
    /// Data that may not be dropped and did not fit the data queue: the reader that made
    /// it waits until the application has taken it ([`Hosted::droppable`]).
    backlog: std::collections::VecDeque<C::Event>,
    /// Where [`Handle::send`] frames a datagram: reused, so sending allocates nothing.
    scratch: Vec<u8>,
    /// The agent's deadline, as its last drain reported it: the timer task sleeps until it.
    deadline: Option<Instant>,
    /// Datagrams and frames dropped because a socket or queue was full.
    dropped: u64,
}

/// Starts a session: resolves the servers, binds a UDP socket per address and component,
/// and starts gathering.
pub async fn start(config: DriverConfig) -> Result<(Handle, Events), DriverError> {
    let streams = config.streams.clone();
    start_with(config, move |agent, now, sockets| {
        let mut a = Agent::new(agent);
        for &components in &streams {
            a.add_stream(components.max(1));
        }
        // All at once: end-of-candidates comes after every socket's candidates. The
        // streams and components exist: they were just added.
        let _ = a.add_local_sockets(now, sockets);
        a
    })
    .await
}

/// Starts a session around any [`Hosted`] core: resolves the servers into the agent's
/// configuration, binds a UDP socket per address and component of
/// [`DriverConfig::streams`], then has `make` build the core from the configuration and the
/// bound sockets (stream `i` of the list is `StreamId(i)`).
pub async fn start_with<C: Hosted>(
    config: DriverConfig,
    make: impl FnOnce(AgentConfig, Instant, &[LocalSocket]) -> C,
) -> Result<(Handle<C>, Events<C::Event>), DriverError> {
    let DriverConfig {
        mut agent,
        servers,
        streams,
        ips,
        interfaces,
        port_range,
        tls,
    } = config;
    let needs_tls = servers.iter().any(|s| s.url.scheme == UrlScheme::Turns)
        || agent
            .turn_servers
            .iter()
            .any(|t| t.transport == Transport::Tls);
    // A server that does not resolve is skipped, as browsers and pion do: the others, and
    // host candidates, still work.
    for server in &servers {
        match tokio::time::timeout(IO_TIMEOUT, resolve_server(server, &mut agent)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(url = %server.url, error = %e, "server skipped"),
            Err(_) => tracing::warn!(url = %server.url, "server skipped: resolving timed out"),
        }
    }
    let tls = match tls {
        Some(t) => t,
        None if needs_tls => platform_tls()?,
        None => tls_trusting(rustls::RootCertStore::empty()),
    };
    let explicit = !ips.is_empty();
    let ips: Vec<IpAddr> = if explicit {
        ips.into_iter()
            .filter(|ip| {
                if ip.is_unspecified() {
                    tracing::warn!(%ip, "an unspecified address cannot be a candidate: skipped");
                }
                !ip.is_unspecified()
            })
            .collect()
    } else {
        host_ips(&interfaces, &agent)
    };
    let (etx, erx) = mpsc::unbounded_channel();
    let (dtx, drx) = mpsc::channel(DATA_QUEUE);
    let now = Instant::now();
    let mut sockets = HashMap::new();
    let mut ids = Vec::new();
    let mut bound = Vec::new();
    for (i, &components) in streams.iter().enumerate() {
        let id = StreamId(i);
        ids.push(id);
        for component in 1..=components.max(1) {
            for &ip in &ips {
                let socket = match bind_udp(ip, port_range) {
                    Ok(s) => s,
                    // An address found on the host may be going away (a tentative or
                    // deprecated IPv6 address, an interface going down): skip it.
                    Err(e) if !explicit => {
                        tracing::warn!(error = %e, "address skipped");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let addr = socket.local_addr().map_err(|source| DriverError::Bind {
                    addr: SocketAddr::new(ip, 0),
                    source,
                })?;
                tracing::debug!(%addr, stream = id.0, component, "bound");
                let sender = socket
                    .try_clone()
                    .map_err(|source| DriverError::Bind { addr, source })?;
                let socket = UdpSocket::from_std(socket)
                    .map_err(|source| DriverError::Bind { addr, source })?;
                sockets.insert(addr, sender);
                bound.push((id, component, addr, socket));
            }
        }
    }
    if bound.is_empty() {
        return Err(DriverError::NoAddress);
    }
    let all: Vec<LocalSocket> = bound
        .iter()
        .map(|(stream, component, addr, _)| LocalSocket {
            stream: *stream,
            component: *component,
            addr: *addr,
        })
        .collect();
    let a = make(agent, now, &all);
    let wake = Arc::new(Notify::new());
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            agent: a,
            sockets,
            connections: HashMap::new(),
            streams: HashMap::new(),
            connection_tasks: Vec::new(),
            events: Some(etx),
            data: Some(dtx),
            backlog: std::collections::VecDeque::new(),
            scratch: Vec::new(),
            deadline: None,
            dropped: 0,
        }),
        wake: wake.clone(),
        tasks: Mutex::new(Vec::new()),
        tls,
        rt: tokio::runtime::Handle::current(),
    });
    {
        let mut inner = lock(&shared.inner);
        let mut tasks = lock(&shared.tasks);
        for (_, _, addr, socket) in bound {
            let weak = Arc::downgrade(&shared);
            tasks.push(tokio::spawn(read_udp(weak, addr, socket)).abort_handle());
        }
        tasks.push(tokio::spawn(run_timers(Arc::downgrade(&shared), wake)).abort_handle());
        drop(tasks);
        inner.drain(Some(&shared));
    }
    Ok((
        Handle {
            shared,
            streams: ids.into(),
        },
        Events {
            events: erx,
            data: drx,
        },
    ))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the agent as it was between two calls.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C: Hosted> Inner<C> {
    /// Carries out what the agent has to say (the drain rule of `sans-io`): sends, starts
    /// what it asks for (connections only with `shared`: not once closing), hands events on,
    /// and wakes the timer task if the deadline moved earlier.
    fn drain(&mut self, shared: Option<&Arc<Shared<C>>>) {
        while let Some(o) = self.agent.poll_output() {
            match o {
                Output::Transmit(t) => self.transmit(t),
                Output::Event(e) => self.deliver(e),
                Output::Request(Request::Connect {
                    id,
                    server,
                    local,
                    tls_name,
                    ..
                }) => {
                    let Some(shared) = shared else { continue };
                    let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
                    self.connections.insert(id, tx);
                    // Not aborted on close: the task ends once its queue is dropped and
                    // written out, so a closing Refresh still reaches the server.
                    let task = shared.rt.spawn(run_connection(
                        Arc::downgrade(shared),
                        id,
                        server,
                        local,
                        tls_name,
                        rx,
                    ));
                    self.connection_tasks.retain(|t| !t.is_finished());
                    self.connection_tasks.push(task);
                }
                Output::Request(Request::Close { id }) => self.forget_connection(id),
                Output::Timeout(t) => {
                    let earlier = t.is_some_and(|t| self.deadline.is_none_or(|d| t < d));
                    self.deadline = t;
                    if earlier {
                        if let Some(shared) = shared {
                            shared.wake.notify_one();
                        }
                    }
                }
            }
        }
    }

    /// Sends a datagram from one of the sockets, or queues a frame on a connection.
    fn transmit(&mut self, t: Transmit<impl AsRef<[u8]> + Into<Vec<u8>>>) {
        match t.transport {
            Transport::Udp => self.send_udp(t.local, t.remote, t.data.as_ref()),
            // The frame is moved to the connection's queue, not copied.
            Transport::Tcp | Transport::Tls => {
                if let Some(&id) = self.streams.get(&(t.local, t.remote)) {
                    self.send_frame(id, t.data.into());
                }
            }
        }
    }

    /// Dropping the sender ends the connection's task.
    fn forget_connection(&mut self, id: ConnectionId) {
        self.connections.remove(&id);
        self.streams.retain(|_, c| *c != id);
    }

    fn is_closed(&self) -> bool {
        self.events.is_none()
    }

    /// Hands an event to the application: data to its bounded queue (when full, dropped
    /// and counted, or kept for the reader to wait on: [`Hosted::droppable`]), anything
    /// else to the control queue.
    fn deliver(&mut self, ev: C::Event) {
        if !C::is_data(&ev) {
            if let Some(e) = &self.events {
                let _ = e.send(ev);
            }
            return;
        }
        let Some(d) = &self.data else { return };
        if !self.backlog.is_empty() {
            self.backlog.push_back(ev);
            return;
        }
        match d.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) if !C::droppable(&ev) => {
                self.backlog.push_back(ev)
            }
            Err(_) => self.dropped += 1,
        }
    }

    /// Closes the agent (releasing TURN allocations: the closing Refresh goes out on UDP at
    /// once, and over TCP/TLS once the connection task writes out its queue) and everything
    /// of the session but those connection tasks.
    fn close(&mut self) {
        if self.is_closed() {
            return;
        }
        self.agent.close(Instant::now());
        self.drain(None);
        self.deadline = None;
        // Dropping the queues ends the connection tasks (after their last writes) and,
        // once read, the application's `Events`.
        self.connections.clear();
        self.streams.clear();
        self.sockets.clear();
        self.events = None;
        self.data = None;
        self.backlog.clear();
    }

    fn send_udp(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let Some(s) = self.sockets.get(&local) else {
            return;
        };
        // A full socket buffer drops the datagram, as the network might: checks are
        // retransmitted and data is the application's to recover.
        if let Err(e) = s.send_to(data, remote) {
            tracing::trace!(%local, %remote, error = %e, "send");
            self.dropped += 1;
        }
    }

    fn send_frame(&mut self, id: ConnectionId, frame: Vec<u8>) {
        let Some(c) = self.connections.get(&id) else {
            return;
        };
        // Whole frames only: a frame dropped on a full queue leaves the stream intact.
        if c.try_send(frame).is_err() {
            self.dropped += 1;
        }
    }
}

impl<C: Hosted> Handle<C> {
    /// Calls into the core with the current time, then carries out what it has to say.
    pub fn with<R>(&self, f: impl FnOnce(&mut C, Instant) -> R) -> Result<R, DriverError> {
        let mut inner = lock(&self.shared.inner);
        if inner.is_closed() {
            return Err(DriverError::Closed);
        }
        let r = f(&mut inner.agent, Instant::now());
        inner.drain(Some(&self.shared));
        Ok(r)
    }

    /// Reads the core's state.
    pub fn read<R>(&self, f: impl FnOnce(&C) -> R) -> R {
        f(&lock(&self.shared.inner).agent)
    }

    /// Datagrams and frames the driver dropped because a socket buffer or queue was full.
    pub fn dropped(&self) -> u64 {
        lock(&self.shared.inner).dropped
    }

    /// Closes the session: TURN allocations are released, sockets and connections closed.
    /// [`Events::next`] gives the last events (for the agent `StateChanged(Closed)`), then
    /// `None`; every other method gives [`DriverError::Closed`]. Over TCP and TLS the
    /// closing Refresh is written by the connection's task: [`Handle::shutdown`] waits for
    /// it.
    pub fn close(&self) {
        lock(&self.shared.inner).close();
        for t in std::mem::take(&mut *lock(&self.shared.tasks)) {
            t.abort();
        }
    }

    /// [`close`](Self::close)s, then waits (at most a few seconds) until the TURN connections
    /// have written their last frames, so a program about to exit releases its allocations.
    pub async fn shutdown(&self) {
        self.close();
        let tasks = std::mem::take(&mut lock(&self.shared.inner).connection_tasks);
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(IO_TIMEOUT, all).await;
    }
}

impl Handle {
    /// The streams, in the order of [`DriverConfig::streams`].
    pub fn streams(&self) -> &[StreamId] {
        &self.streams
    }

    /// The local ICE credentials, to signal to the peer.
    pub fn local_credentials(&self) -> Credentials {
        lock(&self.shared.inner).agent.local_credentials().clone()
    }

    /// The local candidates gathered so far.
    pub fn local_candidates(&self, stream: StreamId) -> Vec<Candidate> {
        lock(&self.shared.inner).agent.local_candidates(stream)
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        lock(&self.shared.inner).agent.state()
    }

    /// The selected pair of a component, if any: (local, remote).
    pub fn selected_pair(
        &self,
        stream: StreamId,
        component: u16,
    ) -> Option<(Candidate, Candidate)> {
        lock(&self.shared.inner)
            .agent
            .selected_pair(stream, component)
            .map(|(l, r)| (l.clone(), r.clone()))
    }

    /// The agent's counters.
    pub fn stats(&self) -> crate::AgentStats {
        lock(&self.shared.inner).agent.stats()
    }

    /// The ICE options to signal (`a=ice-options`): see [`Agent::local_ice_options`].
    pub fn local_ice_options(&self) -> &'static str {
        lock(&self.shared.inner).agent.local_ice_options()
    }

    /// The peer's ICE options (its `a=ice-options` value): see
    /// [`Agent::set_remote_ice_options`].
    pub fn set_remote_ice_options(&self, options: &str) -> Result<(), DriverError> {
        self.with(|a, now| a.set_remote_ice_options(now, options))
    }

    /// The peer's credentials (and whether it is an ICE-lite agent).
    pub fn set_remote_credentials(
        &self,
        credentials: Credentials,
        lite: bool,
    ) -> Result<(), DriverError> {
        self.with(|a, now| a.set_remote_credentials(now, credentials, lite))
    }

    /// A remote candidate from signalling.
    pub fn add_remote_candidate(
        &self,
        stream: StreamId,
        candidate: Candidate,
    ) -> Result<(), DriverError> {
        self.with(|a, now| a.add_remote_candidate(now, stream, candidate))??;
        Ok(())
    }

    /// A remote `a=candidate` line from signalling.
    pub fn add_remote_candidate_line(
        &self,
        stream: StreamId,
        line: &str,
    ) -> Result<(), DriverError> {
        self.with(|a, now| a.add_remote_candidate_line(now, stream, line))??;
        Ok(())
    }

    /// The peer will send no more candidates for the stream.
    pub fn end_of_remote_candidates(&self, stream: StreamId) -> Result<(), DriverError> {
        self.with(|a, now| a.end_of_remote_candidates(now, stream))
    }

    /// ICE restart: new local credentials (returned, to signal) and new gathering; the
    /// selected pairs carry data until new ones are selected.
    pub fn restart(&self) -> Result<Credentials, DriverError> {
        self.with(|a, now| {
            a.restart(now);
            a.local_credentials().clone()
        })
    }

    /// Sends a datagram on the component's selected pair, from the caller's task. A full
    /// socket buffer drops it (counted in [`Handle::dropped`]).
    pub fn send(&self, stream: StreamId, component: u16, data: &[u8]) -> Result<(), DriverError> {
        let mut guard = lock(&self.shared.inner);
        let inner = &mut *guard;
        if inner.is_closed() {
            return Err(DriverError::Closed);
        }
        // Room for the data and its TURN framing (a Send indication is the larger).
        let mut out = std::mem::take(&mut inner.scratch);
        out.resize(data.len() + stun_client::SEND_OVERHEAD, 0);
        let sent = match inner
            .agent
            .send(Instant::now(), stream, component, data, &mut out)
        {
            Ok(t) => {
                inner.transmit(t);
                Ok(())
            }
            Err(e) => Err(e),
        };
        inner.scratch = out;
        sent?;
        Ok(())
    }
}
