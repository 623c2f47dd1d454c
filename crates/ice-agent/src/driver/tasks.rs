//! The driver's tasks: a reader per UDP socket, the timer, and one task per TURN
//! connection (connect, TLS, then frames both ways).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Instant;

use sans_io::{ConnectionId, Receive, Transport};
use stun_codec::StreamFramer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::{mpsc, Notify};

use super::{lock, Hosted, Shared, CONNECT_TIMEOUT, IO_TIMEOUT, MAX_DATAGRAM};

/// Moves data that could not be dropped into the application's queue, waiting for room:
/// the reader that calls this reads nothing more until the application has caught up.
async fn flush_backlog<C: Hosted>(shared: &Weak<Shared<C>>) {
    loop {
        let (ev, tx) = {
            let Some(s) = shared.upgrade() else { return };
            let mut inner = lock(&s.inner);
            let Some(tx) = inner.data.clone() else { return };
            match inner.backlog.pop_front() {
                Some(ev) => (ev, tx),
                None => return,
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

pub(super) async fn read_udp<C: Hosted>(
    shared: Weak<Shared<C>>,
    local: SocketAddr,
    socket: UdpSocket,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors (port unreachable) surface here on some platforms: not fatal.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::Interrupted
                ) =>
            {
                tracing::trace!(%local, error = %e, "recv");
                continue;
            }
            // Anything else may persist: back off rather than spin.
            Err(e) => {
                tracing::warn!(%local, error = %e, "recv");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let backlog = {
            let Some(s) = shared.upgrade() else {
                return;
            };
            let mut inner = lock(&s.inner);
            let now = Instant::now();
            let inner = &mut *inner;
            if let Some(ev) = inner
                .agent
                .handle_receive(now, Receive::udp(local, from, &buf[..n]))
            {
                inner.deliver(ev);
            }
            inner.drain(Some(&s));
            !inner.backlog.is_empty()
        };
        if backlog {
            flush_backlog(&shared).await;
        }
    }
}

pub(super) async fn run_timers<C: Hosted>(shared: Weak<Shared<C>>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        // Register before reading the deadline, so a wake between the two is not lost.
        notified.as_mut().enable();
        let deadline = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let inner = lock(&shared.inner);
            inner.deadline
        };
        match deadline {
            Some(t) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(t)) => {}
                    _ = &mut notified => continue,
                }
            }
            None => {
                notified.await;
                continue;
            }
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut inner = lock(&shared.inner);
        inner.agent.handle_timeout(Instant::now());
        inner.drain(Some(&shared));
    }
}

pub(super) async fn run_connection<C: Hosted>(
    shared: Weak<Shared<C>>,
    id: ConnectionId,
    server: SocketAddr,
    local: SocketAddr,
    tls_name: Option<String>,
    rx: mpsc::Receiver<Vec<u8>>,
) {
    let tls = match shared.upgrade() {
        Some(s) => s.tls.clone(),
        None => return,
    };
    let result = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let socket = if server.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local.ip(), 0))?;
        let tcp = socket.connect(server).await?;
        tcp.set_nodelay(true)?;
        io::Result::Ok(tcp)
    })
    .await
    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
    let tcp = match result {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(%server, error = %e, "TURN server unreachable over TCP: no relay through it");
            return closed(&shared, id);
        }
    };
    let Ok(local) = tcp.local_addr() else {
        return closed(&shared, id);
    };
    match tls_name {
        None => pump(&shared, id, Transport::Tcp, local, server, tcp, rx).await,
        Some(name) => {
            let Ok(sni) = rustls::pki_types::ServerName::try_from(name.clone()) else {
                tracing::warn!(%name, "not a TLS server name: no relay through it");
                return closed(&shared, id);
            };
            let connector = tokio_rustls::TlsConnector::from(tls);
            match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(sni, tcp)).await {
                Ok(Ok(stream)) => {
                    pump(&shared, id, Transport::Tls, local, server, stream, rx).await
                }
                // Say why at the default level: a certificate the platform does not trust
                // is the usual reason, and a user otherwise sees only "ICE failed".
                Ok(Err(e)) => {
                    tracing::warn!(%server, %name, error = %e, "TURN server refused: TLS handshake failed");
                    closed(&shared, id)
                }
                Err(_) => {
                    tracing::warn!(%server, %name, "TURN server refused: TLS handshake timed out");
                    closed(&shared, id)
                }
            }
        }
    }
}

fn closed<C: Hosted>(shared: &Weak<Shared<C>>, id: ConnectionId) {
    if let Some(shared) = shared.upgrade() {
        let mut inner = lock(&shared.inner);
        inner.forget_connection(id);
        inner.agent.connection_closed(Instant::now(), id);
        inner.drain(Some(&shared));
    }
}

/// Moves bytes between a connection and the agent until either side ends: the stream is cut
/// into frames, each handed to the agent as what arrived between `local` and `server`.
async fn pump<C: Hosted, S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Weak<Shared<C>>,
    id: ConnectionId,
    transport: Transport,
    local: SocketAddr,
    server: SocketAddr,
    stream: S,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    match shared.upgrade() {
        Some(s) => {
            let mut inner = lock(&s.inner);
            if !inner.connections.contains_key(&id) {
                return; // closed meanwhile
            }
            inner.streams.insert((local, server), id);
            inner
                .agent
                .connection_established(Instant::now(), id, local);
            inner.drain(Some(&s));
        }
        None => return,
    }
    let (mut r, mut w) = tokio::io::split(stream);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut framer = StreamFramer::new();
    loop {
        tokio::select! {
            read = r.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (fed, backlog) = {
                    let Some(s) = shared.upgrade() else { return };
                    let mut guard = lock(&s.inner);
                    let inner = &mut *guard;
                    let now = Instant::now();
                    let fed = framer.feed(&buf[..n], |frame| {
                        let r = Receive { transport, local, remote: server, data: frame };
                        if let Some(ev) = inner.agent.handle_receive(now, r) {
                            inner.deliver(ev);
                        }
                    });
                    inner.drain(Some(&s));
                    (fed, !inner.backlog.is_empty())
                };
                if let Err(e) = fed {
                    tracing::warn!(%server, error = %e, "TURN connection out of step: closed");
                    break;
                }
                if backlog {
                    flush_backlog(shared).await;
                }
            }
            frame = rx.recv() => match frame {
                Some(f) => {
                    // Flushed: TLS may hold a record back, and STUN over a stream is never
                    // retransmitted. A server that stops reading ends the connection.
                    let write = async {
                        w.write_all(&f).await?;
                        w.flush().await
                    };
                    if !matches!(tokio::time::timeout(IO_TIMEOUT, write).await, Ok(Ok(())))
                    {
                        break;
                    }
                }
                // The agent closed the connection.
                None => {
                    let _ = tokio::time::timeout(IO_TIMEOUT, w.shutdown()).await;
                    return;
                }
            },
        }
    }
    closed(shared, id);
}
