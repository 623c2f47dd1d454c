//! Signalling through a `rooms` server instead of copy and paste: join the room, take its ICE
//! servers, and make one session with one peer of it — offering if a peer is already there
//! (the protocol's newcomer offers), answering the next one to come otherwise. Candidates
//! from the peer keep arriving afterwards and go to the session.

use peer_connection::driver::{self, DriverConfig, IceServer, Session};
use peer_connection::{Event, IceCandidate, SessionDescription};
use rooms::client::{Joined, RoomClient};
use rooms::protocol::{ClientMessage, ServerMessage};

/// A joined room, before the session starts.
pub(crate) struct Room {
    client: RoomClient,
    joined: Joined,
}

/// Joins the room named in `url` (`http://host:port/?room=NAME` as the page shows it, or
/// `ws://host:port/ws#NAME`).
pub(crate) async fn join(url: &str, token: Option<&str>) -> Result<Room, String> {
    let name = rooms::client::room_in_url(url)
        .ok_or_else(|| format!("{url}: no room in it (add ?room=NAME)"))?;
    let mut client = RoomClient::connect(url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let joined = client.join(&name, token).await.map_err(|e| e.to_string())?;
    eprintln!(
        "webrtc-peer: in room {name} as {} with {} peer(s)",
        joined.you,
        joined.peers.len()
    );
    Ok(Room { client, joined })
}

impl Room {
    /// Adds the room's ICE servers (its TURN credential) to `config`.
    pub(crate) fn ice_servers(&self, config: &mut DriverConfig) {
        for s in &self.joined.ice_servers {
            for url in &s.urls {
                let server = if url.starts_with("stun:") {
                    IceServer::stun(url)
                } else {
                    IceServer::turn(
                        url,
                        s.username.as_deref().unwrap_or_default(),
                        s.credential.as_deref().unwrap_or_default(),
                    )
                };
                match server {
                    Ok(s) => config.servers.push(s),
                    Err(e) => eprintln!("webrtc-peer: the room's ICE server {url}: {e}"),
                }
            }
        }
    }

    /// Whether we offer (a peer is already in the room).
    pub(crate) fn offers(&self) -> bool {
        !self.joined.peers.is_empty()
    }

    /// Makes the session with one peer: `session` has its channels and (when we offer) its
    /// offer already; the description goes out once gathered. Returns when the peer's
    /// description is set; its candidates go on arriving in a task of their own.
    pub(crate) async fn connect(
        mut self,
        session: &Session,
        events: &mut driver::Events<Event>,
    ) -> Result<(), String> {
        let peer = if let Some(p) = self.joined.peers.first().cloned() {
            if self.joined.peers.len() > 1 {
                eprintln!("webrtc-peer: several peers in the room: connecting to {p} only");
            }
            let (offer, _) = crate::cli::gathered(session, events).await?;
            self.send(ClientMessage::Offer {
                to: p.clone(),
                sdp: offer.sdp,
            })
            .await?;
            p
        } else {
            eprintln!("webrtc-peer: waiting for a peer to join");
            loop {
                match self.next().await? {
                    ServerMessage::NewPeer { id } => break id,
                    other => tracing::debug!(?other, "before a peer came"),
                }
            }
        };
        let mut early = Vec::new();
        loop {
            match self.next().await? {
                ServerMessage::Answer { from, sdp } if from == peer && self.offers() => {
                    session
                        .set_remote_description(&SessionDescription::answer(sdp))
                        .map_err(|e| format!("the peer's answer: {e}"))?;
                    break;
                }
                ServerMessage::Offer { from, sdp } if from == peer && !self.offers() => {
                    session
                        .set_remote_description(&SessionDescription::offer(sdp))
                        .map_err(|e| format!("the peer's offer: {e}"))?;
                    session.create_answer().map_err(|e| e.to_string())?;
                    let (answer, _) = crate::cli::gathered(session, events).await?;
                    self.send(ClientMessage::Answer {
                        to: peer.clone(),
                        sdp: answer.sdp,
                    })
                    .await?;
                    break;
                }
                // Candidates may come before the description: kept until it is set.
                ServerMessage::Candidate { from, candidate } if from == peer => {
                    early.push(candidate)
                }
                ServerMessage::RemovePeer { id } if id == peer => {
                    return Err("the peer left the room".into())
                }
                other => tracing::debug!(?other, "ignored"),
            }
        }
        for c in early {
            add_candidate(session, c);
        }
        let session = session.clone();
        tokio::spawn(async move {
            while let Ok(m) = self.next().await {
                match m {
                    ServerMessage::Candidate { from, candidate } if from == peer => {
                        add_candidate(&session, candidate)
                    }
                    ServerMessage::RemovePeer { id } if id == peer => {
                        eprintln!("webrtc-peer: the peer left the room");
                    }
                    _ => {}
                }
            }
        });
        Ok(())
    }

    async fn send(&mut self, m: ClientMessage) -> Result<(), String> {
        self.client.send(&m).await.map_err(|e| e.to_string())
    }

    async fn next(&mut self) -> Result<ServerMessage, String> {
        match self.client.next().await {
            Ok(Some(ServerMessage::Error { code, message })) => {
                Err(format!("the signalling server: {code:?}: {message}"))
            }
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err("the signalling server closed the connection".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A candidate of the peer's (`None`: its end of candidates); one that does not parse is
/// logged and skipped, as a browser does.
fn add_candidate(session: &Session, candidate: Option<serde_json::Value>) {
    let c = match candidate {
        None => None,
        Some(v) => match serde_json::from_value::<IceCandidate>(v) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "a candidate that is not RTCIceCandidateInit");
                return;
            }
        },
    };
    if let Err(e) = session.add_ice_candidate(c.as_ref()) {
        tracing::debug!(error = %e, "candidate not added");
    }
}
