//! The session's one SCTP association over DTLS (RFC 8261, RFC 8831 §6).
//!
//! The DTLS client is the SCTP client; the DTLS server accepts the association. Several
//! rtc-sctp behaviours are handled here (each noted where it is):
//! - a server makes a new association for every INIT it receives (a retransmitted INIT after
//!   a lost INIT-ACK included): all are kept until one connects, then the rest dropped;
//! - DATA can arrive before the association is established on this side (a bundled DCEP
//!   OPEN overtaking a lost COOKIE-ACK), and answering it then fails: streams are read only
//!   once connected, and all of them are swept at that moment;
//! - data retransmission gives up after 5 T3 expiries by default, with no event and no timer
//!   left: the limits are lifted, and ICE consent (RFC 7675) decides when the path is dead.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rtc_sctp::{
    Association, AssociationHandle, ClientConfig, DatagramEvent, Endpoint, EndpointConfig, Event,
    Payload, PayloadProtocolIdentifier, ReliabilityType, ServerConfig, StreamEvent, TimerConfig,
    TransportConfig,
};
use rtc_shared::TransportProtocol;

/// The placeholder address rtc-sctp files the association under (never a destination).
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);

/// What the association reports.
#[derive(Debug)]
pub(crate) enum SctpEvent {
    /// Established.
    Connected,
    /// A whole message on a stream.
    Message {
        stream: u16,
        ppi: PayloadProtocolIdentifier,
        data: Vec<u8>,
    },
    /// The peer reset the stream, or the association ended with the stream open.
    StreamClosed { stream: u16 },
    /// The stream's buffered amount fell to its threshold.
    BufferedAmountLow { stream: u16 },
    /// The association is gone (ABORT, ERROR or a protocol violation from the peer).
    Closed,
}

/// The association and the endpoint that routes packets to it.
pub(crate) struct Sctp {
    endpoint: Endpoint,
    /// Every association the endpoint made (one, once connected).
    assocs: HashMap<AssociationHandle, Association>,
    active: Option<AssociationHandle>,
    /// Streams with data waiting to be read once connected.
    unread: BTreeSet<u16>,
    /// The largest message we send: the smaller of ours and the peer's `a=max-message-size`.
    max_send: usize,
    /// The largest message we take.
    max_receive: usize,
    closed: bool,
}

impl std::fmt::Debug for Sctp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sctp")
            .field("associations", &self.assocs.len())
            .field("connected", &self.active.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Larger than the smaller of the two sides' `a=max-message-size` (RFC 8841 §6).
    #[error("message of {size} bytes is larger than the negotiated maximum of {max}")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The largest allowed.
        max: usize,
    },
    /// The channel is not open.
    #[error("the data channel is not open")]
    NotOpen,
    /// The channel does not exist.
    #[error("no such data channel")]
    UnknownChannel,
    /// The association refused it (the message is rtc-sctp's).
    #[error("SCTP: {0}")]
    Sctp(String),
}

impl Sctp {
    /// Starts the association: the client's INIT is queued now; a server waits for one.
    pub(crate) fn new(now: Instant, client: bool, max_send: usize, max_receive: usize) -> Sctp {
        let transport = TransportConfig::default()
            .with_max_message_size(u32::try_from(max_send).unwrap_or(u32::MAX))
            .with_timer_config(TimerConfig {
                max_t3_rtx_retrans: usize::MAX,
                max_reconfig_retrans: usize::MAX,
                ..TimerConfig::default()
            });
        let server = (!client).then(|| Arc::new(ServerConfig::new(transport.clone())));
        let mut endpoint = Endpoint::new(
            PEER,
            TransportProtocol::UDP,
            Arc::new(EndpointConfig::new()),
            server,
        );
        let mut assocs = HashMap::new();
        if client {
            match endpoint.connect(now, ClientConfig::new(transport), PEER) {
                Ok((h, a)) => {
                    assocs.insert(h, a);
                }
                Err(e) => tracing::warn!(error = %e, "SCTP connect failed"),
            }
        }
        Sctp {
            endpoint,
            assocs,
            active: None,
            unread: BTreeSet::new(),
            max_send,
            max_receive,
            closed: false,
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.active.is_some() && !self.closed
    }

    pub(crate) fn max_send(&self) -> usize {
        self.max_send
    }

    /// One SCTP packet (the payload of a DTLS record).
    pub(crate) fn handle_packet(&mut self, now: Instant, data: Bytes, events: &mut Vec<SctpEvent>) {
        if self.closed {
            return;
        }
        match self.endpoint.handle(now, PEER, None, data) {
            Some((h, DatagramEvent::NewAssociation(a))) if self.active.is_none() => {
                self.assocs.insert(h, a);
            }
            Some((h, DatagramEvent::AssociationEvent(e))) => {
                if let Some(a) = self.assocs.get_mut(&h) {
                    a.handle_event(e);
                }
            }
            // Not for any association (or an INIT to a client): dropped.
            _ => {}
        }
        self.poll_events(events);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut Vec<SctpEvent>) {
        for a in self.assocs.values_mut() {
            if a.poll_timeout().is_some_and(|t| t <= now) {
                a.handle_timeout(now);
            }
        }
        self.poll_events(events);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.assocs.values().filter_map(|a| a.poll_timeout()).min()
    }

    /// The SCTP packets to send, each to go in a DTLS record of its own.
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        for a in self.assocs.values_mut() {
            while let Some(t) = a.poll_transmit(now) {
                if let Payload::RawEncode(packets) = t.message {
                    out.extend(packets);
                }
            }
        }
    }

    fn poll_events(&mut self, events: &mut Vec<SctpEvent>) {
        let mut connected = None;
        let mut drained = Vec::new();
        for (&h, a) in self.assocs.iter_mut() {
            while let Some(e) = a.poll() {
                match e {
                    Event::Connected => connected = Some(h),
                    Event::HandshakeFailed { reason } => {
                        tracing::warn!(%reason, "SCTP handshake failed");
                    }
                    Event::AssociationLost { id, .. } => {
                        events.push(SctpEvent::StreamClosed { stream: id })
                    }
                    Event::Stream(StreamEvent::Opened { id }) => {
                        // Taken from the accept queue (it grows otherwise) and read below.
                        let _ = a.accept_stream();
                        self.unread.insert(id);
                    }
                    Event::Stream(StreamEvent::Readable { id }) => {
                        self.unread.insert(id);
                    }
                    Event::Stream(StreamEvent::BufferedAmountLow { id }) => {
                        events.push(SctpEvent::BufferedAmountLow { stream: id })
                    }
                    _ => {}
                }
            }
            while let Some(e) = a.poll_endpoint_event() {
                drained.push((h, e));
            }
        }
        for (h, e) in drained {
            self.endpoint.handle_event(h, e);
        }
        if let Some(h) = connected {
            if self.active.is_none() {
                self.active = Some(h);
                // The other associations were for retransmitted INITs: the endpoint
                // forgets them too.
                let others: Vec<AssociationHandle> =
                    self.assocs.keys().copied().filter(|&k| k != h).collect();
                for k in others {
                    self.assocs.remove(&k);
                    self.endpoint
                        .handle_event(k, rtc_sctp::EndpointEvent::drained());
                }
                // Everything that arrived before this moment (its Readable edges are spent).
                if let Some(a) = self.assocs.get(&h) {
                    self.unread.extend(a.stream_ids());
                }
                events.push(SctpEvent::Connected);
            }
        }
        if let Some(a) = self.active.and_then(|h| self.assocs.get_mut(&h)) {
            // Read only once established here: answering (a DCEP ACK) fails before.
            for id in std::mem::take(&mut self.unread) {
                let Ok(mut s) = a.stream(id) else { continue };
                while let Ok(Some(chunks)) = s.read_sctp() {
                    match chunks.to_payload(self.max_receive) {
                        Ok(p) => events.push(SctpEvent::Message {
                            stream: id,
                            ppi: chunks.ppi,
                            data: Vec::from(p),
                        }),
                        Err(e) => {
                            tracing::debug!(stream = id, error = %e, "SCTP message dropped")
                        }
                    }
                }
            }
            if a.is_closed() && !self.closed {
                self.closed = true;
                events.push(SctpEvent::Closed);
            }
        }
    }

    fn active(&mut self) -> Option<&mut Association> {
        let h = self.active?;
        self.assocs.get_mut(&h)
    }

    /// Opens a stream with the channel's reliability (RFC 8831 §6.6). A stream the peer
    /// made already (its data arrived first) is reused.
    pub(crate) fn open_stream(
        &mut self,
        id: u16,
        unordered: bool,
        reliability: ReliabilityType,
        value: u32,
    ) -> Result<(), SendError> {
        let a = self.active().ok_or(SendError::NotOpen)?;
        if a.stream(id).is_err() {
            a.open_stream(id, PayloadProtocolIdentifier::Binary)
                .map_err(|e| SendError::Sctp(e.to_string()))?;
        }
        let mut s = a.stream(id).map_err(|e| SendError::Sctp(e.to_string()))?;
        s.set_reliability_params(unordered, reliability, value)
            .map_err(|e| SendError::Sctp(e.to_string()))
    }

    /// Sends one message on a stream.
    pub(crate) fn write(
        &mut self,
        now: Instant,
        id: u16,
        data: &[u8],
        ppi: PayloadProtocolIdentifier,
    ) -> Result<(), SendError> {
        if data.len() > self.max_send {
            return Err(SendError::TooLarge {
                size: data.len(),
                max: self.max_send,
            });
        }
        let a = self.active().ok_or(SendError::NotOpen)?;
        let mut s = a.stream(id).map_err(|_| SendError::NotOpen)?;
        s.write_with_ppi(now, data, ppi)
            .map(|_| ())
            .map_err(|e| SendError::Sctp(e.to_string()))
    }

    pub(crate) fn buffered_amount(&mut self, id: u16) -> usize {
        self.active()
            .and_then(|a| a.stream(id).ok()?.buffered_amount().ok())
            .unwrap_or(0)
    }

    pub(crate) fn set_buffered_amount_low_threshold(&mut self, id: u16, threshold: usize) {
        if let Some(mut s) = self.active().and_then(|a| a.stream(id).ok()) {
            let _ = s.set_buffered_amount_low_threshold(threshold);
        }
    }

    /// Resets the stream (RFC 8831 §6.7): the peer answers with its own reset, reported as
    /// [`SctpEvent::StreamClosed`].
    pub(crate) fn close_stream(&mut self, now: Instant, id: u16) {
        if let Some(mut s) = self.active().and_then(|a| a.stream(id).ok()) {
            // Whatever is still readable is read first, or the peer's reset waits for it.
            while let Ok(Some(_)) = s.read_sctp() {}
            let _ = s.close(now);
        }
    }

    /// Ends the association with an ABORT (W3C `close()`), queued for
    /// [`poll_transmit`](Self::poll_transmit).
    pub(crate) fn abort(&mut self) {
        for a in self.assocs.values_mut() {
            let _ = a.abort();
        }
        self.closed = true;
    }
}
