//! A tokio driver for [`PeerConnection`]: `ice_agent::driver` runs the session as it runs a
//! bare agent (sockets on every interface or the ones asked for, STUN and TURN servers by
//! URL, TURN over TCP and TLS, the timer), and [`Session`] offers the session's calls.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use peer_connection::driver::{self, DriverConfig, IceServer};
//! use peer_connection::{AgentConfig, Config, DataChannelEvent, DataChannelInit, Event};
//!
//! let mut ice = DriverConfig::new(AgentConfig::new(ice_agent::Role::Controlling));
//! ice.servers.push(IceServer::stun("stun:stun.example.org")?);
//! let (session, mut events) = driver::start(ice, Config::default()).await?;
//! let chat = session.create_data_channel("chat", DataChannelInit::default())?;
//! let offer = session.create_offer()?;
//! // … signal `offer.to_json()` to the peer, and its answer back:
//! # let answer = offer.clone();
//! session.set_remote_description(&answer)?;
//! while let Some(e) = events.next().await {
//!     match e {
//!         Event::IceCandidate(c) => { /* signal c.to_json() */ }
//!         Event::DataChannel(DataChannelEvent::Open { channel }) => {
//!             session.send_text(channel, "hello")?;
//!         }
//!         _ => {}
//!     }
//! }
//! # let _ = chat;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use ice_agent::driver::{self as ice, DriverError, Handle, Hosted};
use ice_agent::{ConnectionId, Receive};

pub use ice_agent::driver::{Events, IceServer};

use crate::{
    Certificate, ChannelId, Config, DataChannelEvent, DataChannelInfo, DataChannelInit, Error,
    Event, IceCandidate, Output, PeerConnection, SendError, SessionDescription,
};

/// What the driver binds and whom it asks: the ICE driver's configuration (its agent
/// configuration is the session's ICE configuration).
pub type DriverConfig = ice::DriverConfig;

impl Hosted for PeerConnection {
    type Event = Event;

    fn handle_receive(&mut self, now: Instant, r: Receive<'_>) -> Option<Event> {
        PeerConnection::handle_receive(self, now, r);
        None
    }

    fn handle_timeout(&mut self, now: Instant) {
        PeerConnection::handle_timeout(self, now)
    }

    fn poll_output(&mut self) -> Option<Output> {
        PeerConnection::poll_output(self)
    }

    fn connection_established(&mut self, now: Instant, id: ConnectionId, local: SocketAddr) {
        PeerConnection::connection_established(self, now, id, local)
    }

    fn connection_closed(&mut self, now: Instant, id: ConnectionId) {
        PeerConnection::connection_closed(self, now, id)
    }

    fn close(&mut self, now: Instant) {
        PeerConnection::close(self, now)
    }

    /// DataChannel messages wait for the application (a reliable channel must not lose
    /// one); SCTP's flow control then slows the peer down.
    fn droppable(_: &Event) -> bool {
        false
    }

    fn is_data(event: &Event) -> bool {
        matches!(event, Event::DataChannel(DataChannelEvent::Message { .. }))
    }
}

/// Starts a session: binds the sockets `driver` says, resolves its servers, and makes the
/// [`PeerConnection`]. The session's ICE configuration is `driver.agent` with the servers
/// resolved into it (`config.ice` is not used; the role follows the offer anyway).
pub async fn start(
    driver: DriverConfig,
    config: Config,
) -> Result<(Session, Events<Event>), Error> {
    let certificate = match &config.certificate {
        Some(c) => c.clone(),
        None => Certificate::generate()?,
    };
    let (handle, events) = ice::start_with(driver, move |agent, now, sockets| {
        let mut pc = PeerConnection::with_certificate(
            Config {
                ice: agent,
                ..config
            },
            certificate,
        );
        let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.addr).collect();
        pc.add_local_sockets(now, &addrs);
        pc
    })
    .await
    .map_err(|e| Error::Driver(e.to_string()))?;
    Ok((Session { handle }, events))
}

/// A running session: the [`PeerConnection`] calls, each made now, with the driver carrying
/// out what follows. Clones share the session.
#[derive(Debug, Clone)]
pub struct Session {
    handle: Handle<PeerConnection>,
}

fn closed(e: DriverError) -> Error {
    Error::Driver(e.to_string())
}

impl Session {
    /// Calls into the session (anything [`PeerConnection`] offers).
    pub fn with<R>(&self, f: impl FnOnce(&mut PeerConnection, Instant) -> R) -> Result<R, Error> {
        self.handle.with(f).map_err(closed)
    }

    /// `createDataChannel`.
    pub fn create_data_channel(
        &self,
        label: &str,
        init: DataChannelInit,
    ) -> Result<ChannelId, Error> {
        self.with(|pc, now| pc.create_data_channel(now, label, init))
    }

    /// `createOffer`, then `setLocalDescription` with it.
    pub fn create_offer(&self) -> Result<SessionDescription, Error> {
        self.with(|pc, now| {
            let offer = pc.create_offer(now, false)?;
            pc.set_local_description(now, &offer)?;
            Ok(offer)
        })?
    }

    /// `createAnswer`, then `setLocalDescription` with it.
    pub fn create_answer(&self) -> Result<SessionDescription, Error> {
        self.with(|pc, now| {
            let answer = pc.create_answer(now)?;
            pc.set_local_description(now, &answer)?;
            Ok(answer)
        })?
    }

    /// `setRemoteDescription`.
    pub fn set_remote_description(&self, desc: &SessionDescription) -> Result<(), Error> {
        self.with(|pc, now| pc.set_remote_description(now, desc))?
    }

    /// `addIceCandidate` (`None`: end of candidates).
    pub fn add_ice_candidate(&self, candidate: Option<&IceCandidate>) -> Result<(), Error> {
        self.with(|pc, now| pc.add_ice_candidate(now, candidate))?
    }

    /// `localDescription`, with the candidates gathered so far.
    pub fn local_description(&self) -> Option<SessionDescription> {
        self.handle.read(PeerConnection::local_description)
    }

    /// Sends a text message.
    pub fn send_text(&self, channel: ChannelId, text: &str) -> Result<(), SendError> {
        self.with(|pc, now| pc.send_text(now, channel, text))
            .map_err(|_| SendError::NotOpen)?
    }

    /// Sends a binary message.
    pub fn send_binary(&self, channel: ChannelId, data: &[u8]) -> Result<(), SendError> {
        self.with(|pc, now| pc.send_binary(now, channel, data))
            .map_err(|_| SendError::NotOpen)?
    }

    /// `bufferedAmount`.
    pub fn buffered_amount(&self, channel: ChannelId) -> usize {
        self.with(|pc, _| pc.buffered_amount(channel)).unwrap_or(0)
    }

    /// `bufferedAmountLowThreshold`.
    pub fn set_buffered_amount_low_threshold(&self, channel: ChannelId, threshold: usize) {
        let _ = self.with(|pc, _| pc.set_buffered_amount_low_threshold(channel, threshold));
    }

    /// What is known about a channel.
    pub fn data_channel(&self, channel: ChannelId) -> Option<DataChannelInfo> {
        self.handle.read(|pc| pc.data_channel(channel).cloned())
    }

    /// The largest message the channels can send now.
    pub fn max_message_size(&self) -> Option<usize> {
        self.handle.read(PeerConnection::max_message_size)
    }

    /// Closes a channel.
    pub fn close_data_channel(&self, channel: ChannelId) {
        let _ = self.with(|pc, now| pc.close_data_channel(now, channel));
    }

    /// The selected pair, as text (`local -> remote`), once there is one.
    pub fn selected_pair(&self) -> Option<String> {
        self.handle.read(|pc| {
            pc.selected_candidate_pair()
                .map(|(l, r)| format!("{} {} -> {} {}", l.kind, l.addr, r.kind, r.addr))
        })
    }

    /// Datagrams the driver dropped on full socket buffers.
    pub fn dropped(&self) -> u64 {
        self.handle.dropped()
    }

    /// Closes the session, then waits a little for TURN allocations to be released.
    pub async fn shutdown(&self) {
        self.handle.shutdown().await
    }
}
