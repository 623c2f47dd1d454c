//! RFC 6062 in the driver: the TCP relay listener of each TCP allocation (peers that connect
//! are offered to the core, which tells the client with a ConnectionAttempt), connections to
//! peers for Connect (from the relayed address itself, SO_REUSEPORT), and the splice of a
//! bound pair. A peer connection is not read before it is bound: the kernel's buffers hold
//! what the peer sends meanwhile (RFC 6062 §5.2's "MUST buffer"), and a peer that sends much
//! is slowed by TCP's own flow control rather than by memory of ours.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use super::worker::{Shared, Worker};
use crate::turn::FiveTuple;

/// How long a Connect waits for the peer (RFC 6062 §5.2: at least 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer connection the core knows by CONNECTION-ID.
#[derive(Debug)]
pub(super) enum Peer {
    /// A Connect under way (aborted if the core gives it up).
    Connecting(tokio::task::AbortHandle),
    /// Connected or accepted, waiting for its ConnectionBind.
    Waiting(TcpStream),
    /// Handed to the client data connection it is spliced with.
    Spliced(FiveTuple),
}

/// The worker's peer connections.
pub(super) type Peers = HashMap<u32, Peer>;

/// Peers connecting to a TCP relayed address.
pub(super) async fn accept_task(shared: Shared, listener: TcpListener, relay: SocketAddr) {
    loop {
        let (stream, peer) = super::accept(&listener).await;
        let now = Instant::now();
        let mut guard = shared.borrow_mut();
        let w = &mut *guard;
        match w.core.peer_connection_incoming(now, relay, peer) {
            Some(id) => {
                debug!(%relay, %peer, id, "peer connection accepted");
                w.peers.insert(id, Peer::Waiting(stream));
            }
            None => debug!(%relay, %peer, "peer connection refused"),
        }
        w.drain(&shared, now);
    }
}

impl Worker {
    /// [`Request::ConnectPeer`](crate::turn::Request::ConnectPeer): a connection from the
    /// relayed address `local` (where the relay's listener is bound) to `peer`.
    pub(super) fn connect_peer(
        &mut self,
        shared: &Shared,
        now: Instant,
        id: u32,
        local: Option<SocketAddr>,
        peer: SocketAddr,
    ) {
        let Some(local) = local else {
            return self.core.peer_connected(now, id, false);
        };
        let shared = shared.clone();
        let task = tokio::task::spawn_local(async move {
            let connected = async {
                let socket = super::ports::tcp_relay_socket(local)?;
                let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
                tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
            }
            .await;
            let now = Instant::now();
            let mut guard = shared.borrow_mut();
            let w = &mut *guard;
            w.peers.remove(&id);
            match connected {
                Ok(stream) => {
                    debug!(%local, %peer, id, "connected to the peer");
                    let _ = stream.set_nodelay(true);
                    w.peers.insert(id, Peer::Waiting(stream));
                    w.core.peer_connected(now, id, true);
                }
                Err(e) => {
                    debug!(%local, %peer, id, error = %e, "connect to the peer failed");
                    w.core.peer_connected(now, id, false);
                }
            }
            w.drain(&shared, now);
        });
        self.peers.insert(id, Peer::Connecting(task.abort_handle()));
    }

    /// [`Request::BindPeer`](crate::turn::Request::BindPeer): the client data connection
    /// takes the peer's stream once its queued response is written.
    pub(super) fn bind_peer(&mut self, id: u32, client: FiveTuple) {
        let Some(Peer::Waiting(stream)) = self.peers.remove(&id) else {
            return;
        };
        match self.streams.get(&client) {
            Some(conn) => {
                conn.splice(id, stream);
                self.peers.insert(id, Peer::Spliced(client));
            }
            None => debug!(id, "the data connection went before its bind"),
        }
    }

    /// [`Request::ClosePeer`](crate::turn::Request::ClosePeer): the peer connection goes,
    /// and its client data connection with it.
    pub(super) fn close_peer(&mut self, id: u32) {
        match self.peers.remove(&id) {
            Some(Peer::Spliced(client)) => {
                if let Some(conn) = self.streams.get(&client) {
                    conn.close();
                }
            }
            // Given up while connecting (its allocation went): the socket goes with the task.
            Some(Peer::Connecting(task)) => task.abort(),
            Some(Peer::Waiting(_)) | None => {}
        }
    }
}
