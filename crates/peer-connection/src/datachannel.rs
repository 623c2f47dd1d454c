//! DataChannels (RFC 8831) and their establishment protocol DCEP (RFC 8832), on the
//! session's SCTP association.
//!
//! rtc-datachannel provides the DCEP message formats; the channel state lives here. Its own
//! `DataChannel` queue is not used: it parses peer bytes with a decoder that panics on a
//! one-byte message of type 0.

use std::time::Instant;

use rtc_datachannel::data_channel::DataChannel as Rtc;
use rtc_datachannel::message::message_channel_open::{ChannelType, DataChannelOpen};
use rtc_datachannel::message::Message as Dcep;
use rtc_sctp::PayloadProtocolIdentifier as Ppi;
use rtc_shared::marshal::{Marshal, Unmarshal};

use crate::sctp::{Sctp, SctpEvent, SendError};

/// DCEP message types (RFC 8832 §8.2.1).
const DATA_CHANNEL_ACK: u8 = 0x02;
const DATA_CHANNEL_OPEN: u8 = 0x03;

/// A DataChannel of the session: the handle [`PeerConnection`](crate::PeerConnection) gives
/// out. (The SCTP stream id, the browser's `RTCDataChannel.id`, is known once the DTLS role
/// is: [`PeerConnection::data_channel`](crate::PeerConnection::data_channel).)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub(crate) u32);

/// How a channel delivers (the browser's `RTCDataChannelInit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChannelInit {
    /// In order (the default) or as they come.
    pub ordered: bool,
    /// Give up on a message after this many retransmissions (partial reliability, RFC 3758).
    pub max_retransmits: Option<u16>,
    /// Give up on a message this many milliseconds after it was sent.
    pub max_packet_life_time: Option<u16>,
    /// The sub-protocol name.
    pub protocol: String,
    /// Negotiated out of band on this stream id: no DCEP OPEN is sent, and the peer must
    /// create the same channel.
    pub negotiated: Option<u16>,
}

impl Default for DataChannelInit {
    fn default() -> Self {
        DataChannelInit {
            ordered: true,
            max_retransmits: None,
            max_packet_life_time: None,
            protocol: String::new(),
            negotiated: None,
        }
    }
}

/// The state of a channel (`RTCDataChannelState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataChannelState {
    /// Waiting for the association or for the peer's ACK.
    Connecting,
    /// Messages flow.
    Open,
    /// Being closed (its stream reset is under way).
    Closing,
    /// Closed.
    Closed,
}

/// What is known about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChannelInfo {
    /// The label.
    pub label: String,
    /// The sub-protocol.
    pub protocol: String,
    /// The SCTP stream id, once assigned.
    pub stream: Option<u16>,
    /// In order or not.
    pub ordered: bool,
    /// Partial reliability by retransmissions.
    pub max_retransmits: Option<u16>,
    /// Partial reliability by lifetime (ms).
    pub max_packet_life_time: Option<u16>,
    /// The state.
    pub state: DataChannelState,
}

/// Something that happened to a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChannelEvent {
    /// The peer opened a channel (the browser's `ondatachannel`); it is open.
    Incoming {
        /// The channel.
        channel: ChannelId,
        /// Its label.
        label: String,
        /// Its sub-protocol.
        protocol: String,
    },
    /// A channel we created is open.
    Open {
        /// The channel.
        channel: ChannelId,
    },
    /// A message.
    Message {
        /// The channel.
        channel: ChannelId,
        /// The bytes (UTF-8 when `binary` is false).
        data: Vec<u8>,
        /// Sent as binary (`ArrayBuffer`) rather than as a string.
        binary: bool,
    },
    /// The buffered amount fell to the low threshold
    /// ([`PeerConnection::set_buffered_amount_low_threshold`](crate::PeerConnection::set_buffered_amount_low_threshold)).
    BufferedAmountLow {
        /// The channel.
        channel: ChannelId,
    },
    /// The channel is closed.
    Closed {
        /// The channel.
        channel: ChannelId,
    },
}

/// A channel's reliability as DCEP and SCTP name it.
struct Reliability {
    channel_type: ChannelType,
    parameter: u32,
    unordered: bool,
    kind: rtc_sctp::ReliabilityType,
}

impl DataChannelInfo {
    fn reliability(&self) -> Reliability {
        let (channel_type, parameter) = Rtc::get_channel_type_and_reliability_parameter(
            self.ordered,
            self.max_retransmits,
            self.max_packet_life_time,
        );
        let (unordered, kind) = Rtc::get_reliability_params(channel_type);
        Reliability {
            channel_type,
            parameter,
            unordered,
            kind,
        }
    }
}

#[derive(Debug)]
struct Channel {
    info: DataChannelInfo,
    negotiated: bool,
    /// Ours (we send the OPEN) or the peer's.
    local: bool,
    low_threshold: usize,
}

/// The session's channels.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    channels: Vec<(ChannelId, Channel)>,
    next: u32,
    /// Whether we take even stream ids (the DTLS client, RFC 8832 §6), once known.
    even: Option<bool>,
}

impl Channels {
    pub(crate) fn create(&mut self, label: &str, init: &DataChannelInit) -> ChannelId {
        let info = DataChannelInfo {
            label: label.into(),
            protocol: init.protocol.clone(),
            stream: init.negotiated,
            ordered: init.ordered,
            max_retransmits: init.max_retransmits,
            max_packet_life_time: init.max_packet_life_time,
            state: DataChannelState::Connecting,
        };
        self.insert(info, init.negotiated.is_some(), true)
    }

    fn insert(&mut self, info: DataChannelInfo, negotiated: bool, local: bool) -> ChannelId {
        let id = ChannelId(self.next);
        self.next += 1;
        self.channels.push((
            id,
            Channel {
                info,
                negotiated,
                local,
                low_threshold: 0,
            },
        ));
        id
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    pub(crate) fn info(&self, id: ChannelId) -> Option<&DataChannelInfo> {
        self.get(id).map(|c| &c.info)
    }

    fn get(&self, id: ChannelId) -> Option<&Channel> {
        self.channels.iter().find(|c| c.0 == id).map(|c| &c.1)
    }

    fn get_mut(&mut self, id: ChannelId) -> Option<&mut Channel> {
        self.channels
            .iter_mut()
            .find(|c| c.0 == id)
            .map(|c| &mut c.1)
    }

    fn by_stream(&self, stream: u16) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|c| c.1.info.stream == Some(stream) && c.1.info.state != DataChannelState::Closed)
            .map(|c| c.0)
    }

    /// Sets the stream-id parity from the DTLS role.
    pub(crate) fn set_dtls_client(&mut self, client: bool) {
        self.even = Some(client);
    }

    /// A free stream id of our parity.
    fn free_stream(&self) -> Option<u16> {
        let start = if self.even? { 0 } else { 1 };
        (start..=u16::MAX - 1)
            .step_by(2)
            .find(|&s| self.by_stream(s).is_none())
    }

    /// The association is up: open every channel that waits (our own with an OPEN,
    /// negotiated ones directly).
    pub(crate) fn connected(
        &mut self,
        now: Instant,
        sctp: &mut Sctp,
        out: &mut Vec<DataChannelEvent>,
    ) {
        let waiting: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|c| c.1.local && c.1.info.state == DataChannelState::Connecting)
            .map(|c| c.0)
            .collect();
        for id in waiting {
            self.open(now, sctp, id, out);
        }
    }

    /// Opens one of our channels on the association (when it is up).
    pub(crate) fn open(
        &mut self,
        now: Instant,
        sctp: &mut Sctp,
        id: ChannelId,
        out: &mut Vec<DataChannelEvent>,
    ) {
        if !sctp.is_connected() {
            return;
        }
        let stream = match self.get(id).and_then(|c| c.info.stream) {
            Some(s) => s,
            None => match self.free_stream() {
                Some(s) => s,
                None => {
                    self.fail(id, out);
                    return;
                }
            },
        };
        let Some(c) = self.get_mut(id) else { return };
        c.info.stream = Some(stream);
        let r = c.info.reliability();
        let (channel_type, parameter, unordered, reliability) =
            (r.channel_type, r.parameter, r.unordered, r.kind);
        // Until the ACK, messages go ordered, so that none overtakes the OPEN (RFC 8832 §6);
        // a negotiated channel has no OPEN.
        let negotiated = c.negotiated;
        if sctp
            .open_stream(stream, unordered && negotiated, reliability, parameter)
            .is_err()
        {
            self.fail(id, out);
            return;
        }
        let Some(c) = self.get_mut(id) else { return };
        if c.low_threshold > 0 {
            sctp.set_buffered_amount_low_threshold(stream, c.low_threshold);
        }
        if c.negotiated {
            c.info.state = DataChannelState::Open;
            out.push(DataChannelEvent::Open { channel: id });
            return;
        }
        let open = Dcep::DataChannelOpen(DataChannelOpen {
            channel_type,
            priority: rtc_datachannel::message::message_channel_open::CHANNEL_PRIORITY_NORMAL,
            reliability_parameter: parameter,
            label: c.info.label.as_bytes().to_vec(),
            protocol: c.info.protocol.as_bytes().to_vec(),
        });
        let sent = open
            .marshal()
            .ok()
            .is_some_and(|bytes| sctp.write(now, stream, &bytes, Ppi::Dcep).is_ok());
        if !sent {
            self.fail(id, out);
            return;
        }
        // Open as soon as the OPEN is sent: "the initiating peer MAY start sending messages"
        // before the ACK (RFC 8832 §6), and the association delivers them after the OPEN
        // (DCEP goes ordered on the stream).
        if let Some(c) = self.get_mut(id) {
            c.info.state = DataChannelState::Open;
        }
        out.push(DataChannelEvent::Open { channel: id });
    }

    fn fail(&mut self, id: ChannelId, out: &mut Vec<DataChannelEvent>) {
        if let Some(c) = self.get_mut(id) {
            if c.info.state != DataChannelState::Closed {
                c.info.state = DataChannelState::Closed;
                out.push(DataChannelEvent::Closed { channel: id });
            }
        }
    }

    /// What the association reported.
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        sctp: &mut Sctp,
        event: SctpEvent,
        out: &mut Vec<DataChannelEvent>,
    ) {
        match event {
            SctpEvent::Connected => self.connected(now, sctp, out),
            SctpEvent::Message { stream, ppi, data } => {
                self.message(now, sctp, stream, ppi, data, out)
            }
            SctpEvent::StreamClosed { stream } => {
                if let Some(id) = self.by_stream(stream) {
                    self.fail(id, out);
                }
            }
            SctpEvent::BufferedAmountLow { stream } => {
                if let Some(id) = self.by_stream(stream) {
                    out.push(DataChannelEvent::BufferedAmountLow { channel: id });
                }
            }
            SctpEvent::Closed => {
                let ids: Vec<ChannelId> = self.channels.iter().map(|c| c.0).collect();
                for id in ids {
                    self.fail(id, out);
                }
            }
        }
    }

    fn message(
        &mut self,
        now: Instant,
        sctp: &mut Sctp,
        stream: u16,
        ppi: Ppi,
        data: Vec<u8>,
        out: &mut Vec<DataChannelEvent>,
    ) {
        let known = self.by_stream(stream);
        match (ppi, known) {
            (Ppi::Dcep, None) if data.first() == Some(&DATA_CHANNEL_OPEN) => {
                self.peer_open(now, sctp, stream, &data[1..], out)
            }
            // The channel is open since its OPEN went; now it may go unordered.
            (Ppi::Dcep, Some(id)) if data.first() == Some(&DATA_CHANNEL_ACK) => {
                if let Some(c) = self.get(id) {
                    let r = c.info.reliability();
                    if let (true, Some(s)) = (r.unordered, c.info.stream) {
                        let _ = sctp.open_stream(s, true, r.kind, r.parameter);
                    }
                }
            }
            (Ppi::String | Ppi::Binary, Some(id)) => out.push(DataChannelEvent::Message {
                channel: id,
                data,
                binary: ppi == Ppi::Binary,
            }),
            (Ppi::StringEmpty | Ppi::BinaryEmpty, Some(id)) => {
                out.push(DataChannelEvent::Message {
                    channel: id,
                    data: Vec::new(),
                    binary: ppi == Ppi::BinaryEmpty,
                })
            }
            _ => tracing::debug!(stream, ?ppi, "SCTP message on no channel dropped"),
        }
    }

    /// The peer's DATA_CHANNEL_OPEN (RFC 8832 §6): a new channel, answered with an ACK.
    fn peer_open(
        &mut self,
        now: Instant,
        sctp: &mut Sctp,
        stream: u16,
        body: &[u8],
        out: &mut Vec<DataChannelEvent>,
    ) {
        let mut buf = body;
        let Ok(open) = DataChannelOpen::unmarshal(&mut buf) else {
            // Not an OPEN we understand: the stream is reset, no channel made (§6).
            sctp.close_stream(now, stream);
            return;
        };
        // The peer's stream ids have the other parity.
        if self
            .even
            .is_some_and(|even| stream.is_multiple_of(2) == even)
        {
            sctp.close_stream(now, stream);
            return;
        }
        let (unordered, reliability) = Rtc::get_reliability_params(open.channel_type);
        if sctp
            .open_stream(stream, unordered, reliability, open.reliability_parameter)
            .is_err()
        {
            return;
        }
        if sctp
            .write(now, stream, &[DATA_CHANNEL_ACK], Ppi::Dcep)
            .is_err()
        {
            return;
        }
        let parameter = u16::try_from(open.reliability_parameter).unwrap_or(u16::MAX);
        let (max_retransmits, max_packet_life_time) = match open.channel_type {
            ChannelType::PartialReliableRexmit | ChannelType::PartialReliableRexmitUnordered => {
                (Some(parameter), None)
            }
            ChannelType::PartialReliableTimed | ChannelType::PartialReliableTimedUnordered => {
                (None, Some(parameter))
            }
            _ => (None, None),
        };
        let label = String::from_utf8_lossy(&open.label).into_owned();
        let protocol = String::from_utf8_lossy(&open.protocol).into_owned();
        let info = DataChannelInfo {
            label: label.clone(),
            protocol: protocol.clone(),
            stream: Some(stream),
            ordered: !unordered,
            max_retransmits,
            max_packet_life_time,
            state: DataChannelState::Open,
        };
        let id = self.insert(info, false, false);
        out.push(DataChannelEvent::Incoming {
            channel: id,
            label,
            protocol,
        });
    }

    /// Sends a message: text (PPI 51) or binary (53); an empty one as the one-byte empty
    /// form (PPI 56/57, RFC 8831 §6.6).
    pub(crate) fn send(
        &mut self,
        now: Instant,
        sctp: &mut Sctp,
        id: ChannelId,
        data: &[u8],
        binary: bool,
    ) -> Result<(), SendError> {
        let c = self.get(id).ok_or(SendError::UnknownChannel)?;
        if c.info.state != DataChannelState::Open {
            return Err(SendError::NotOpen);
        }
        let stream = c.info.stream.ok_or(SendError::NotOpen)?;
        let (payload, ppi): (&[u8], Ppi) = match (data.is_empty(), binary) {
            (true, true) => (&[0], Ppi::BinaryEmpty),
            (true, false) => (&[0], Ppi::StringEmpty),
            (false, true) => (data, Ppi::Binary),
            (false, false) => (data, Ppi::String),
        };
        sctp.write(now, stream, payload, ppi)
    }

    pub(crate) fn buffered_amount(&self, sctp: &mut Sctp, id: ChannelId) -> usize {
        self.get(id)
            .and_then(|c| c.info.stream)
            .map_or(0, |s| sctp.buffered_amount(s))
    }

    /// Sets a channel's threshold, on its stream if it has one already, else when it opens.
    pub(crate) fn set_low_threshold(
        &mut self,
        sctp: Option<&mut Sctp>,
        id: ChannelId,
        threshold: usize,
    ) {
        if let Some(c) = self.get_mut(id) {
            c.low_threshold = threshold;
            if let (Some(s), Some(sctp)) = (c.info.stream, sctp) {
                sctp.set_buffered_amount_low_threshold(s, threshold);
            }
        }
    }

    /// Closes a channel: its stream is reset (RFC 8831 §6.7); `Closed` comes when the
    /// peer's reset does.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        sctp: &mut Sctp,
        id: ChannelId,
        out: &mut Vec<DataChannelEvent>,
    ) {
        let Some(c) = self.get_mut(id) else { return };
        match (c.info.state, c.info.stream) {
            (DataChannelState::Open, Some(s)) if sctp.is_connected() => {
                c.info.state = DataChannelState::Closing;
                sctp.close_stream(now, s);
            }
            (DataChannelState::Closed, _) => {}
            _ => self.fail(id, out),
        }
    }
}
