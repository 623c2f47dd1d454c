//! A client of the protocol over WebSocket, for programs that join rooms (`webrtc-peer`,
//! tests).
//!
//! ```no_run
//! # async fn f() -> Result<(), rooms::client::ClientError> {
//! use rooms::client::RoomClient;
//! use rooms::protocol::{ClientMessage, ServerMessage};
//!
//! let mut c = RoomClient::connect("ws://127.0.0.1:8080/ws").await?;
//! let joined = c.join("r1", None).await?;
//! for peer in &joined.peers {
//!     c.send(&ClientMessage::Offer { to: peer.clone(), sdp: "v=0…".into() }).await?;
//! }
//! while let Some(m) = c.next().await? {
//!     if let ServerMessage::Answer { from, sdp } = m { /* … */ }
//! }
//! # Ok(()) }
//! ```

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{ClientMessage, ErrorCode, IceServer, ServerMessage};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The WebSocket failed.
    #[error("signalling: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server sent something that is not a server message.
    #[error("signalling: the server sent {0:?}, not a message of the protocol")]
    Unexpected(String),
    /// The server refused.
    #[error("signalling: {code:?}: {message}")]
    Refused {
        /// Its code.
        code: ErrorCode,
        /// Its words.
        message: String,
    },
    /// The connection closed before the answer.
    #[error("signalling: the server closed the connection")]
    Closed,
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// Our peer id.
    pub you: String,
    /// The peers already there (offer to each).
    pub peers: Vec<String>,
    /// The ICE servers to use.
    pub ice_servers: Vec<IceServer>,
}

/// A connection to a signalling server.
#[derive(Debug)]
pub struct RoomClient {
    socket: Socket,
}

impl RoomClient {
    /// Connects to `url` (`ws://host:port/ws`; an `http://` page URL of the server works too,
    /// and `?room=` or `#room` in it is ignored here).
    pub async fn connect(url: &str) -> Result<RoomClient, ClientError> {
        // Small buffers: signalling messages are few and small (the defaults are 128 KiB).
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(ws_url(url), Some(config), true).await?;
        Ok(RoomClient { socket })
    }

    /// Sends a message.
    pub async fn send(&mut self, m: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(m).expect("client messages always serialise");
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    /// Sends raw text (tests of bad input).
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    /// The next message from the server; `None` once it closed the connection.
    pub async fn next(&mut self) -> Result<Option<ServerMessage>, ClientError> {
        loop {
            match self.socket.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).map(Some).map_err(|_| {
                        ClientError::Unexpected(t.as_str().chars().take(200).collect())
                    })
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Joins `room` and waits for the answer.
    pub async fn join(&mut self, room: &str, token: Option<&str>) -> Result<Joined, ClientError> {
        self.send(&ClientMessage::Join {
            room: room.to_owned(),
            token: token.map(str::to_owned),
        })
        .await?;
        loop {
            match self.next().await? {
                Some(ServerMessage::Peers {
                    you,
                    peers,
                    ice_servers,
                }) => {
                    return Ok(Joined {
                        you,
                        peers,
                        ice_servers,
                    })
                }
                Some(ServerMessage::Error { code, message }) => {
                    return Err(ClientError::Refused { code, message })
                }
                Some(_) => continue,
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// `http(s)://host/anything` → `ws(s)://host/ws`; a `ws(s)://` URL is kept as it is.
pub fn ws_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", r)) => ("ws", r),
        Some(("https", r)) => ("wss", r),
        _ => return url.to_owned(),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{authority}/ws")
}

/// The room named in a page URL (`?room=r1` or `#r1`), if any.
pub fn room_in_url(url: &str) -> Option<String> {
    let (before_hash, hash) = url.split_once('#').unwrap_or((url, ""));
    let query = before_hash.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("room="))
        .or((!hash.is_empty()).then_some(hash))
        .filter(|r| crate::protocol::valid_room(r))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080/?room=r1"),
            "ws://127.0.0.1:8080/ws"
        );
        assert_eq!(ws_url("https://x.org"), "wss://x.org/ws");
        assert_eq!(ws_url("ws://h/ws"), "ws://h/ws");
        assert_eq!(room_in_url("http://h/?room=r1").as_deref(), Some("r1"));
        assert_eq!(
            room_in_url("http://h/?a=1&room=r2#x").as_deref(),
            Some("r2")
        );
        assert_eq!(room_in_url("http://h/#r3").as_deref(), Some("r3"));
        assert_eq!(room_in_url("http://h/"), None);
        assert_eq!(room_in_url("http://h/?room=../x"), None);
    }
}
