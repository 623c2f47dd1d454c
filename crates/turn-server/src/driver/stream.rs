//! TCP and TLS connections from clients: STUN and ChannelData frames split out of the byte
//! stream (RFC 8656 §12.5), a write queue per connection, and the timeouts that keep idle or
//! hostile connections from holding memory: a TLS handshake has `handshake_timeout`, a
//! connection without an allocation `stream_idle_timeout` of silence, and nothing is buffered
//! for a connection before it sends its first byte.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use stun_codec::StreamFramer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tracing::{debug, info, Instrument};

use super::worker::{Listener, Shared};
use crate::turn::{FiveTuple, Transport};

/// The server's side of one connection: what is waiting to be written.
#[derive(Debug, Default)]
pub(super) struct StreamConn {
    pending: RefCell<Vec<u8>>,
    wake: Notify,
    closing: Cell<bool>,
    /// RFC 6062: the peer connection this client connection is now bound to (its task takes
    /// it, stops framing, and splices the two).
    splice: RefCell<Option<(u32, TcpStream)>>,
}

impl StreamConn {
    /// Queues a frame; false (and dropped) if `limit` bytes are already waiting.
    pub(super) fn queue(&self, data: &[u8], limit: usize) -> bool {
        let mut p = self.pending.borrow_mut();
        if p.len() + data.len() > limit {
            return false;
        }
        p.extend_from_slice(data);
        drop(p);
        self.wake.notify_one();
        true
    }

    /// Asks the connection's task to close it.
    pub(super) fn close(&self) {
        self.closing.set(true);
        self.wake.notify_one();
    }

    /// Hands the connection peer connection `id`'s stream (a ConnectionBind succeeded).
    pub(super) fn splice(&self, id: u32, peer: TcpStream) {
        *self.splice.borrow_mut() = Some((id, peer));
        self.wake.notify_one();
    }

    fn splice_pending(&self) -> bool {
        self.splice.borrow().is_some()
    }
}

/// An RFC 6062 data connection from its ConnectionBind on: the response queued for it goes
/// out first, then whatever the client sent after it goes to the peer, then bytes flow both
/// ways as they are until either side ends or the core closes the pair (its allocation
/// ended).
async fn spliced<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &StreamConn,
    mut peer: TcpStream,
    rest: Vec<u8>,
    id: u32,
) {
    let queued = std::mem::take(&mut *conn.pending.borrow_mut());
    if stream.write_all(&queued).await.is_err() || peer.write_all(&rest).await.is_err() {
        return;
    }
    let closed = async {
        while !conn.closing.get() {
            conn.wake.notified().await;
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(stream, &mut peer) => {
            debug!(id, result = ?r, "data connection ended");
        }
        _ = closed => debug!(id, "data connection closed with its allocation"),
    }
    let _ = peer.shutdown().await;
}

/// Accepts connections on one listener; a TLS one with the certificate configured when
/// the connection comes (a reload changes it for new connections).
pub(super) async fn accept_task(shared: Shared, listener: TcpListener, kind: Listener) {
    loop {
        let (tcp, client) = super::accept(&listener).await;
        let acceptor = {
            let mut w = shared.borrow_mut();
            let acceptor = match (kind.tls, &w.settings.tls) {
                (false, _) => None,
                (true, Some(c)) => Some(tokio_rustls::TlsAcceptor::from(c.clone())),
                (true, None) => continue, // no certificate: closed at once
            };
            if w.stats.stream_connections as usize >= w.settings.max_stream_connections {
                w.stats.stream_rejected += 1;
                continue; // dropped: closed at once
            }
            w.stats.stream_connections += 1;
            w.stats.stream_connections_peak = w
                .stats
                .stream_connections_peak
                .max(w.stats.stream_connections);
            acceptor
        };
        tokio::task::spawn_local(serve(shared.clone(), tcp, client, acceptor, kind.proxy));
    }
}

/// The PROXY protocol header a load balancer puts first: the client's real address and the
/// one it connected to. Only from a configured front-end (else anyone could claim any
/// address), read exactly (never a byte of the client's stream), within the handshake time.
/// `None`: the connection is to be closed.
async fn proxy_header(
    shared: &Shared,
    tcp: &mut TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    timeout: std::time::Duration,
) -> Option<(SocketAddr, SocketAddr)> {
    use crate::proxy_protocol::{parse, Parsed};
    if !shared
        .borrow()
        .settings
        .proxy_from
        .iter()
        .any(|r| r.contains(peer.ip()))
    {
        debug!(%peer, "PROXY protocol from an address not in proxy-protocol-from: closed");
        shared.borrow_mut().stats.proxy_refused += 1;
        return None;
    }
    let read = async {
        let mut buf = Vec::with_capacity(64);
        loop {
            match parse(&buf) {
                Ok(Parsed::Header { addresses, .. }) => return Ok(addresses),
                Ok(Parsed::Incomplete { need }) => {
                    let have = buf.len();
                    buf.resize(need, 0);
                    if tcp.read_exact(&mut buf[have..]).await.is_err() {
                        return Err(None);
                    }
                }
                Err(e) => return Err(Some(e)),
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(Some(addresses))) => Some(addresses),
        // LOCAL or UNKNOWN: the front-end's own check; its own addresses stand.
        Ok(Ok(None)) => Some((peer, local)),
        Ok(Err(e)) => {
            debug!(%peer, error = ?e, "bad PROXY protocol header: closed");
            shared.borrow_mut().stats.proxy_refused += 1;
            None
        }
        Err(_) => {
            debug!(%peer, "no PROXY protocol header in time: closed");
            shared.borrow_mut().stats.proxy_refused += 1;
            None
        }
    }
}

async fn serve(
    shared: Shared,
    mut tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    proxy: bool,
) {
    let _ = tcp.set_nodelay(true);
    let (idle, handshake) = {
        let w = shared.borrow();
        (w.settings.stream_idle_timeout, w.settings.handshake_timeout)
    };
    let addresses = match tcp.local_addr() {
        Ok(local) if proxy => proxy_header(&shared, &mut tcp, peer, local, handshake).await,
        Ok(local) => Some((peer, local)),
        Err(_) => None,
    };
    if let Some((client, server)) = addresses {
        let transport = if tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let ft = FiveTuple {
            transport,
            client,
            server,
        };
        // Every line the connection logs carries its client. The span is attached to the
        // future, not entered across an await: other tasks of the worker run in between.
        let span = tracing::debug_span!("stream", client = %ft.client, transport = ?ft.transport);
        async {
            match tls {
                None => {
                    // Hold no buffer until the client sends something.
                    if tokio::time::timeout(idle, tcp.readable()).await.is_ok() {
                        run(&shared, tcp, ft).await;
                    } else {
                        shared.borrow_mut().stats.stream_idle_closed += 1;
                    }
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => run(&shared, stream, ft).await,
                        Ok(Err(e)) => {
                            info!(client = %ft.client, error = %e, "TLS handshake failed");
                            shared.borrow_mut().stats.tls_handshake_failures += 1;
                        }
                        Err(_) => {
                            info!(client = %ft.client, "TLS handshake timed out");
                            shared.borrow_mut().stats.tls_handshake_failures += 1;
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }
    shared.borrow_mut().stats.stream_connections -= 1;
}

/// Reads frames into the core and writes queued frames out until the connection ends.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(shared: &Shared, mut stream: S, ft: FiveTuple) {
    let conn = Rc::new(StreamConn::default());
    let idle = {
        let mut w = shared.borrow_mut();
        w.streams.insert(ft, conn.clone());
        w.settings.stream_idle_timeout
    };
    let mut framer = StreamFramer::new();
    let mut rbuf = vec![0u8; 4096];
    let mut wbuf = Vec::new();
    let mut last = Instant::now();
    // One timer for the connection, re-armed only when it fires: reads just note the time.
    let timer = tokio::time::sleep_until((last + idle).into());
    tokio::pin!(timer);
    'conn: loop {
        // A ConnectionBind answered (after a read, or later than it came when it waited for
        // a user lookup): the splice starts here.
        let bound = conn.splice.borrow_mut().take();
        if let Some((id, peer)) = bound {
            spliced(&mut stream, &conn, peer, framer.take_buffered(), id).await;
            break;
        }
        tokio::select! {
            r = stream.read(&mut rbuf) => {
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                last = Instant::now();
                framer.push(&rbuf[..n]);
                // Frame by frame: a ConnectionBind ends the framing, and what follows it is
                // the client's data for the peer.
                while !conn.splice_pending() {
                    match framer.next_frame() {
                        Ok(Some((_, frame))) => {
                            shared.borrow_mut().receive_from_client(shared, last, ft, frame)
                        }
                        Ok(None) => break,
                        Err(e) => {
                            debug!(error = %e, "closing");
                            shared.borrow_mut().stats.stream_framing_errors += 1;
                            break 'conn;
                        }
                    }
                }
            }
            _ = conn.wake.notified() => {
                // Write what is queued (a closing connection still gets its last answers, e.g.
                // the response to a Refresh with LIFETIME 0), but never wait on a client that
                // does not read for longer than the idle timeout.
                std::mem::swap(&mut wbuf, &mut *conn.pending.borrow_mut());
                match tokio::time::timeout(idle, stream.write_all(&wbuf)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
                wbuf.clear();
                if wbuf.capacity() > 64 * 1024 {
                    wbuf = Vec::new();
                }
                if conn.closing.get() {
                    break;
                }
            }
            _ = &mut timer => {
                let due = last + idle;
                if Instant::now() < due {
                    // Something was read since the timer was armed.
                    timer.as_mut().reset(due.into());
                    continue;
                }
                // Silence: fine while an allocation lives (it has its own lifetime), else
                // the connection goes.
                if shared.borrow().core.allocation(&ft).is_some() {
                    last = Instant::now();
                    timer.as_mut().reset((last + idle).into());
                } else {
                    shared.borrow_mut().stats.stream_idle_closed += 1;
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(idle, stream.shutdown()).await;
    let now = Instant::now();
    let mut w = shared.borrow_mut();
    w.streams.remove(&ft);
    w.core.connection_closed(now, ft);
    w.drain(shared, now);
}
