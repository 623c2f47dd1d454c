//! The signalling protocol: JSON objects, one per WebSocket text message, told apart by
//! `"type"` (`docs/rooms.md` has the whole protocol with examples).
//!
//! ```
//! use rooms::protocol::{ClientMessage, ServerMessage};
//!
//! let join: ClientMessage = serde_json::from_str(r#"{"type":"join","room":"r1"}"#)?;
//! assert_eq!(join, ClientMessage::Join { room: "r1".into(), token: None });
//!
//! let hello = ServerMessage::NewPeer { id: "8f2a".into() };
//! assert_eq!(serde_json::to_string(&hello)?, r#"{"type":"new_peer","id":"8f2a"}"#);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// Enter a room (one room per connection at a time).
    Join {
        /// The room's name: 1–64 of `A-Z a-z 0-9 _ -`.
        room: String,
        /// A join token (`rooms::token`), required when the server has a token secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Leave the room; the connection stays open and may join again.
    Leave,
    /// An SDP offer for one peer of the room.
    Offer {
        /// The peer it is for.
        to: String,
        /// The description's SDP.
        sdp: String,
    },
    /// An SDP answer for one peer of the room.
    Answer {
        /// The peer it is for.
        to: String,
        /// The description's SDP.
        sdp: String,
    },
    /// A trickled ICE candidate for one peer: the browser's `RTCIceCandidateInit`, or `null`
    /// for the end of candidates. Relayed as it came.
    Candidate {
        /// The peer it is for.
        to: String,
        /// `{"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"}` or `null`.
        candidate: Option<Value>,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The answer to `join`: this connection's peer id, the peers already in the room (the
    /// newcomer offers to each), and the ICE servers to use.
    Peers {
        /// This connection's peer id.
        you: String,
        /// The peers already in the room, in the order they joined.
        peers: Vec<String>,
        /// An `RTCIceServer` list, with a TURN credential made for this peer.
        #[serde(rename = "iceServers")]
        ice_servers: Vec<IceServer>,
    },
    /// A peer joined the room after this one: it will send an offer.
    NewPeer {
        /// Its id.
        id: String,
    },
    /// A peer left the room (or its connection or server went away).
    RemovePeer {
        /// Its id.
        id: String,
    },
    /// An offer from a peer of the room.
    Offer {
        /// Who sent it.
        from: String,
        /// The description's SDP.
        sdp: String,
    },
    /// An answer from a peer of the room.
    Answer {
        /// Who sent it.
        from: String,
        /// The description's SDP.
        sdp: String,
    },
    /// A candidate from a peer of the room (`null`: its end of candidates).
    Candidate {
        /// Who sent it.
        from: String,
        /// As the sender gave it.
        candidate: Option<Value>,
    },
    /// The last message could not be carried out; nothing else changed.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

/// An entry of `iceServers` (the browser's `RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` and `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// The TURN REST username, `<expiry>:<peer id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// base64(HMAC-SHA1(secret, username)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The `code` of an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not an object, or fields of the wrong type.
    BadMessage,
    /// A `type` the server does not know.
    UnknownType,
    /// Larger than the server's message limit.
    TooLarge,
    /// The room name is not 1–64 of `A-Z a-z 0-9 _ -`.
    BadRoom,
    /// The room has as many peers as the server allows.
    RoomFull,
    /// A token is required and this one is missing, malformed, expired, for another room or
    /// not signed with the server's secret.
    BadToken,
    /// Already in a room: leave first.
    AlreadyJoined,
    /// Offer, answer or candidate before joining.
    NotJoined,
    /// No such peer in the sender's room.
    UnknownPeer,
    /// More messages than the connection's rate allows: this one was dropped.
    RateLimited,
    /// The server cannot take joins now (starting, or cut off from its fleet).
    Unavailable,
}

impl ErrorCode {
    /// Every code, for metrics with a bounded label set.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadMessage,
        ErrorCode::UnknownType,
        ErrorCode::TooLarge,
        ErrorCode::BadRoom,
        ErrorCode::RoomFull,
        ErrorCode::BadToken,
        ErrorCode::AlreadyJoined,
        ErrorCode::NotJoined,
        ErrorCode::UnknownPeer,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
    ];

    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::BadRoom => "bad_room",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::UnknownPeer => "unknown_peer",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    pub(crate) fn index(self) -> usize {
        ErrorCode::ALL
            .iter()
            .position(|&c| c == self)
            .expect("every code is in ALL")
    }
}

/// The types a client may send, for error messages.
const CLIENT_TYPES: &str = "join, leave, offer, answer, candidate";

/// Why a client's text is not a [`ClientMessage`], as the error the client gets.
pub fn parse_client(text: &str) -> Result<ClientMessage, (ErrorCode, String)> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => Ok(m),
        Err(e) => {
            // Tell an unknown type apart from a malformed message of a known type.
            let value: Value = serde_json::from_str(text)
                .map_err(|e| (ErrorCode::BadMessage, format!("not JSON: {e}")))?;
            let Some(obj) = value.as_object() else {
                return Err((ErrorCode::BadMessage, "not a JSON object".into()));
            };
            match obj.get("type") {
                None => Err((ErrorCode::BadMessage, "no \"type\"".into())),
                Some(Value::String(t))
                    if !["join", "leave", "offer", "answer", "candidate"].contains(&t.as_str()) =>
                {
                    let mut t = t.clone();
                    t.truncate(64);
                    Err((
                        ErrorCode::UnknownType,
                        format!("unknown type {t:?}: expected one of {CLIENT_TYPES}"),
                    ))
                }
                Some(_) => Err((ErrorCode::BadMessage, e.to_string())),
            }
        }
    }
}

impl ServerMessage {
    /// The message as the JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialise")
    }
}

/// Whether `room` is a valid room name: 1–64 of `A-Z a-z 0-9 _ -`.
pub fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_bad_fields_are_told_apart() {
        assert_eq!(parse_client("{").unwrap_err().0, ErrorCode::BadMessage);
        assert_eq!(parse_client("[1]").unwrap_err().0, ErrorCode::BadMessage);
        assert_eq!(parse_client("{}").unwrap_err().0, ErrorCode::BadMessage);
        assert_eq!(
            parse_client(r#"{"type":"dance"}"#).unwrap_err().0,
            ErrorCode::UnknownType
        );
        assert_eq!(
            parse_client(r#"{"type":"join","room":5}"#).unwrap_err().0,
            ErrorCode::BadMessage
        );
        // Fields the server does not know are ignored (the relayed message is built anew,
        // so a client's own "from" goes nowhere).
        assert!(parse_client(r#"{"type":"offer","to":"a","sdp":"v=0","from":"me"}"#).is_ok());
        assert_eq!(
            parse_client(r#"{"type":"candidate","to":"a","candidate":null}"#).unwrap(),
            ClientMessage::Candidate {
                to: "a".into(),
                candidate: None
            }
        );
    }

    #[test]
    fn room_names() {
        assert!(valid_room("r1"));
        assert!(valid_room("Team_call-2"));
        assert!(valid_room(&"a".repeat(64)));
        for bad in ["", "a b", "ä", "../x", "a.b", &"a".repeat(65)] {
            assert!(!valid_room(bad), "{bad:?}");
        }
    }

    #[test]
    fn peers_message_uses_the_browser_field_name() {
        let m = ServerMessage::Peers {
            you: "a".into(),
            peers: vec![],
            ice_servers: vec![IceServer {
                urls: vec!["stun:127.0.0.1:3478".into()],
                username: None,
                credential: None,
            }],
        };
        assert_eq!(
            m.to_text(),
            r#"{"type":"peers","you":"a","peers":[],"iceServers":[{"urls":["stun:127.0.0.1:3478"]}]}"#
        );
    }
}
