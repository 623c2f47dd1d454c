//! The server: axum serves the demo page and the WebSocket endpoint, one task owns the
//! [`Hub`] and carries out what it asks, and in fleet mode a task links it to Redis.
//!
//! ```text
//! browser ──WebSocket /ws──> connection task ──Input──> hub task (Hub::handle_*)
//!                            <──Out (bounded)───────── Hub::poll_output: Send, Close
//!                                                      Publish ──> fleet task ──PUBLISH──> Redis
//!                                                      <──Bus───── (SUBSCRIBE) <─────────
//! ```
//!
//! The connection tasks hold the limits that are about the socket (the message cap above
//! which the socket is closed, pings and their timeout, a reader too slow for its queue); the
//! hub holds the others.

mod assets;
mod fleet;
pub mod turn;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use sans_io::Output;
use tokio::sync::{mpsc, oneshot, watch};

use crate::hub::{Action, ConnId, Hub, HubConfig};

/// The server's settings beyond the hub's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where HTTP and WebSocket are served.
    pub listen: SocketAddr,
    /// Where `/metrics` and `/healthz` are served (none: not at all; `/healthz` is also on
    /// `listen`).
    pub metrics: Option<SocketAddr>,
    /// Origins a browser may connect from (`*`: any). Empty: only the server's own (the
    /// `Origin` must name the host the request was sent to).
    pub allowed_origins: Vec<String>,
    /// The most connections open at once.
    pub max_connections: usize,
    /// A ping is sent this often.
    pub ping_interval: Duration,
    /// A connection silent this long (no message, no pong) is closed.
    pub ping_timeout: Duration,
    /// Messages queued for one connection; a reader that lets more pile up is closed.
    pub send_queue: usize,
    /// Fleet mode: the Redis URL (`redis://host:port`, `redis+unix:///path`).
    pub redis: Option<String>,
    /// The prefix of the fleet's Redis channels.
    pub redis_prefix: String,
    /// Serve the demo page at `/`.
    pub demo: bool,
    /// The hub's limits and settings.
    pub hub: HubConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics: None,
            allowed_origins: Vec::new(),
            max_connections: 10_000,
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(45),
            send_queue: 256,
            redis: None,
            redis_prefix: "rooms".into(),
            demo: true,
            hub: HubConfig::default(),
        }
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not be bound.
    #[error("{addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Redis URL does not parse.
    #[error("redis: {0}")]
    Redis(String),
}

/// What the connection tasks and the bus tell the hub task.
enum Input {
    Open {
        conn: ConnId,
        host: Option<String>,
        tx: mpsc::Sender<Out>,
    },
    Text {
        conn: ConnId,
        text: String,
    },
    Close {
        conn: ConnId,
    },
    Bus(String),
    BusUp,
    BusDown,
    Metrics(oneshot::Sender<String>),
}

/// What the hub task tells a connection task.
enum Out {
    Text(String),
    Close(u16, &'static str),
}

struct Shared {
    config: ServerConfig,
    hub: mpsc::Sender<Input>,
    ready: watch::Receiver<bool>,
    open: AtomicUsize,
    next_conn: AtomicU64,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    instance: String,
    stop: watch::Sender<bool>,
    ready: watch::Receiver<bool>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Server {
    /// Binds the listeners and starts serving on the current tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        let bind = |addr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let listener = bind(config.listen).await?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let mut hub_config = config.hub.clone();
        if config.redis.is_some() && hub_config.fleet.is_none() {
            hub_config.fleet = Some(Default::default());
        }
        let hub = Hub::new(hub_config, Instant::now(), unix_now());
        let instance = hub.instance().to_owned();
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready) = watch::channel(hub.is_ready());
        let (hub_tx, hub_rx) = mpsc::channel(4096);
        let (bus_tx, bus_rx) = mpsc::unbounded_channel();
        if let Some(url) = &config.redis {
            let client =
                redis::Client::open(url.as_str()).map_err(|e| StartError::Redis(e.to_string()))?;
            let channels = fleet::Channels::new(&config.redis_prefix, &instance);
            tokio::spawn(fleet::run(
                client,
                channels,
                bus_rx,
                hub_tx.clone(),
                stop_rx.clone(),
            ));
        }
        tokio::spawn(run_hub(
            hub,
            hub_rx,
            bus_tx,
            config.redis_prefix.clone(),
            ready_tx,
        ));
        let shared = Arc::new(Shared {
            config: config.clone(),
            hub: hub_tx,
            ready: ready.clone(),
            open: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
        });
        let mut app = Router::new()
            .route("/ws", get(upgrade))
            .route("/healthz", get(healthz));
        if config.demo {
            app = assets::routes(app);
        }
        let app = app.with_state(shared.clone());
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        if let Some(l) = metrics_listener {
            let app = Router::new()
                .route("/metrics", get(metrics))
                .route("/healthz", get(healthz))
                .with_state(shared);
            let mut rx = stop_rx;
            tokio::spawn(async move {
                let serve = axum::serve(l, app).with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "metrics server failed");
                }
            });
        }
        Ok(Server {
            addr,
            metrics_addr,
            instance,
            stop,
            ready,
        })
    }

    /// Where HTTP and WebSocket are served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// This instance's id in the fleet.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Waits until the server takes joins (at once alone; in a fleet, once it knows the
    /// fleet's peers).
    pub async fn ready(&self) {
        let mut r = self.ready.clone();
        let _ = r.wait_for(|r| *r).await;
    }

    /// Stops listening (open connections end with their tasks).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

/// The hub task: the only owner of the hub.
async fn run_hub(
    mut hub: Hub,
    mut rx: mpsc::Receiver<Input>,
    bus: mpsc::UnboundedSender<(String, String)>,
    prefix: String,
    ready: watch::Sender<bool>,
) {
    let mut conns: HashMap<ConnId, mpsc::Sender<Out>> = HashMap::new();
    let mut timer: Option<Instant> = None;
    loop {
        // The drain rule: everything the hub has to say, before waiting.
        let mut slow = Vec::new();
        while let Some(o) = hub.poll_output() {
            match o {
                Output::Request(Action::Send { conn, text }) => {
                    if let Some(tx) = conns.get(&conn) {
                        if tx.try_send(Out::Text(text)).is_err() {
                            // A reader too slow for its queue: dropping the sender closes it.
                            conns.remove(&conn);
                            slow.push(conn);
                        }
                    }
                }
                Output::Request(Action::Close { conn, reason }) => {
                    if let Some(tx) = conns.remove(&conn) {
                        let (code, why) = reason.code();
                        let _ = tx.try_send(Out::Close(code, why));
                    }
                }
                Output::Request(Action::Publish { topic, payload }) => {
                    let _ = bus.send((topic.channel(&prefix), payload));
                }
                Output::Timeout(t) => timer = t,
                Output::Event(never) => match never {},
                // The hub has no sockets of its own.
                Output::Transmit(_) => {}
            }
        }
        ready.send_if_modified(|r| std::mem::replace(r, hub.is_ready()) != hub.is_ready());
        if !slow.is_empty() {
            let now = Instant::now();
            for conn in slow {
                tracing::info!(conn = conn.0, "closed: the client reads too slowly");
                hub.handle_close(now, conn);
            }
            continue;
        }
        let sleep = async {
            match timer {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { return };
                let now = Instant::now();
                match input {
                    Input::Open { conn, host, tx } => {
                        conns.insert(conn, tx);
                        hub.handle_open(now, conn, host);
                    }
                    Input::Text { conn, text } => hub.handle_text(now, conn, &text),
                    Input::Close { conn } => {
                        conns.remove(&conn);
                        hub.handle_close(now, conn);
                    }
                    Input::Bus(payload) => hub.handle_bus(now, &payload),
                    Input::BusUp => hub.handle_bus_up(now),
                    Input::BusDown => hub.handle_bus_down(now),
                    Input::Metrics(reply) => {
                        let extra = format!(
                            "# HELP rooms_queued_connections Connections with a send queue.\n\
                             # TYPE rooms_queued_connections gauge\nrooms_queued_connections {}\n",
                            conns.len()
                        );
                        let _ = reply.send(hub.metrics().render(&extra));
                    }
                }
            }
            () = sleep => {
                timer = None;
                hub.handle_timeout(Instant::now());
            }
        }
    }
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    if *s.ready.borrow() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.hub.send(Input::Metrics(tx)).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The host part of the `Host` header, if it looks like a host name or an address (it is
/// put into TURN URLs for this client only, but it is still the client's text).
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        format!("[{}]", rest.split(']').next()?)
    } else {
        host.split(':').next()?.to_owned()
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then_some(name)
}

/// Whether a browser on `origin` may connect (RFC 6455 §10.2: the server decides by `Origin`;
/// clients that are not browsers send none).
fn origin_allowed(config: &ServerConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if config.allowed_origins.is_empty() {
        // Only the server's own pages: the origin's authority is the Host it was sent to.
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = origin.split_once("://").map(|(_, a)| a);
        return host.is_some() && authority == host;
    }
    config
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

async fn upgrade(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&s.config, &headers) {
        tracing::info!(origin = ?headers.get(header::ORIGIN), "refused: origin not allowed");
        return (
            StatusCode::FORBIDDEN,
            "this origin may not use this signalling server\n",
        )
            .into_response();
    }
    let max = s.config.max_connections;
    if s.open.fetch_add(1, Ordering::SeqCst) >= max {
        s.open.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(max, "refused a connection: at the connection limit");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
    }
    let guard = OpenGuard(s.clone());
    let host = request_host(&headers);
    // Above the hub's limit a message gets a `too_large` error; far above it (a client that
    // streams garbage) the socket is closed with 1009.
    let hard = (s.config.hub.max_message_size * 4).max(1 << 20);
    // Signalling is small and sparse: small buffers keep thousands of idle connections cheap
    // (tungstenite's defaults are 128 KiB each way); every message is written at once.
    ws.max_message_size(hard)
        .max_frame_size(hard)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            connection(socket, s.clone(), host).await;
            drop(guard);
        })
}

/// Counts an open connection until dropped.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One WebSocket connection: its messages to the hub, the hub's to it, and its pings.
async fn connection(socket: WebSocket, s: Arc<Shared>, host: Option<String>) {
    let conn = ConnId(s.next_conn.fetch_add(1, Ordering::Relaxed));
    let (tx, mut out) = mpsc::channel(s.config.send_queue.max(1));
    if s.hub.send(Input::Open { conn, host, tx }).await.is_err() {
        return;
    }
    let span = tracing::debug_span!("conn", id = conn.0);
    let _enter = span.enter();
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(s.config.ping_interval);
    ping.tick().await;
    let mut heard = Instant::now();
    let mut hub_closed = false;
    loop {
        tokio::select! {
            m = stream.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                    // Binary frames are not part of the protocol: the hub answers bad_message.
                    Some(Ok(Message::Binary(_))) => "binary".to_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        heard = Instant::now();
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "WebSocket error");
                        break;
                    }
                };
                heard = Instant::now();
                if s.hub.send(Input::Text { conn, text }).await.is_err() {
                    break;
                }
            }
            o = out.recv() => match o {
                Some(Out::Text(t)) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close(code, reason)) => {
                    hub_closed = true;
                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break;
                }
                None => {
                    hub_closed = true;
                    let frame = CloseFrame { code: 1008, reason: "reading too slowly".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if heard.elapsed() >= s.config.ping_timeout {
                    tracing::info!(conn = conn.0, "closed: no pong within the ping timeout");
                    let frame = CloseFrame { code: 1001, reason: "ping timeout".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    if !hub_closed {
        let _ = s.hub.send(Input::Close { conn }).await;
    }
}
