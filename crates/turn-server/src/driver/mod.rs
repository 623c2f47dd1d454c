//! The tokio driver: sockets, timers and threads around the sans-IO core, and nothing else.
//!
//! Each worker is one thread with a single-threaded runtime that owns one [`TurnServer`](crate::turn::TurnServer), its
//! own UDP and TCP listeners on the shared ports (`SO_REUSEPORT`: the kernel keeps each client
//! on one worker), its relay sockets from its own slice of the port range, and its streams.
//! Nothing is shared between workers on the packet path: no lock, no channel, no allocation
//! per relayed packet. The workers meet only once a second, to publish their counters for
//! the metrics.
//!
//! ```text
//! UDP listener ─┐                         ┌─> UDP listener (to clients)
//! TCP/TLS conn ─┼─> TurnServer (per worker)┼─> stream write queue (to clients)
//! relay socket ─┘   handle_client/peer    └─> relay socket (to peers)
//!                   poll_output: AllocateRelay → PortPool → relay_allocated
//! ```

mod batch;
mod buffers;
mod database;
mod metrics;
mod ports;
mod relays;
mod stream;
mod tcp_relay;
mod worker;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use metrics::{DriverStats, Metrics, Snapshot};
pub use ports::{RelayIp, RESERVATION_LIFETIME};

use crate::auth::{RestSecrets, Users};
use crate::config::ServerConfig;
use crate::peer_policy::PeerPolicy;
use crate::turn::{TurnConfig, UserLookup};
use crate::userdb::UserDbLocation;

/// Everything a running server needs, resolved from a [`ServerConfig`] (or built directly by
/// tests, with port 0 for ephemeral listeners).
#[derive(Clone)]
pub struct Settings {
    /// UDP listeners (STUN and TURN).
    pub udp: Vec<SocketAddr>,
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// TLS listeners (used only with `tls`).
    pub tls_listen: Vec<SocketAddr>,
    /// The TLS configuration (certificate and key).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Where relays bind, and what they advertise.
    pub relay_ips: Vec<RelayIp>,
    /// The relay port range, inclusive.
    pub ports: (u16, u16),
    /// Worker threads.
    pub workers: usize,
    /// A stream without an allocation is closed after this much silence.
    pub stream_idle_timeout: Duration,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Streams open at once, per worker.
    pub max_stream_connections: usize,
    /// The TURN core's configuration (its quotas are split between workers).
    pub turn: TurnConfig,
    /// Static users.
    pub users: Users,
    /// REST API secrets.
    pub rest: RestSecrets,
    /// The nonce key, from a CSPRNG; the same for every worker.
    pub nonce_key: [u8; 32],
    /// Where to serve metrics.
    pub metrics: Option<SocketAddr>,
    /// RFC 5780 NAT behaviour discovery: the alternate address (A2, P2), another IP and port
    /// than the first UDP listener (A1, P1). The server then also listens on (A1, P2),
    /// (A2, P1) and (A2, P2) and answers CHANGE-REQUEST from them.
    pub rfc5780_alternate: Option<SocketAddr>,
    /// The user database (coturn's `userdb` or `psql-userdb`), if any.
    pub user_db: Option<UserDbLocation>,
    /// `use-auth-secret`: REST credentials on (with the secrets of `rest` and, with a
    /// database, its `turn_secret` rows).
    pub use_auth_secret: bool,
    /// The configured REST secrets (what `rest` was made from).
    pub secrets: Vec<String>,
    /// With `turn.fleet_quota`: this server's name among the fleet sharing the database.
    pub fleet_name: String,
    /// A fleet member not heard from for this long is gone, and its quota comes back.
    pub fleet_dead_after: Duration,
    /// The buffers of every UDP socket, both ways (0: the kernel's default).
    pub sock_buf_size: usize,
    /// `udp-batch-delay`: how long an idle worker lets datagrams gather before it waits for
    /// the next one (zero: it waits at once). Under paced traffic — each datagram alone, as
    /// media is — a worker that waits at once wakes for every datagram; one that first
    /// sleeps this long reads what came meanwhile in one batch, as a NIC's interrupt
    /// moderation does, for up to this much latency.
    pub batch_delay: Duration,
    /// TCP listeners behind a load balancer: each connection starts with a PROXY protocol
    /// header (coturn's `tcp-proxy-port`).
    pub tcp_proxy: Vec<SocketAddr>,
    /// TLS listeners likewise (the header, then the TLS handshake).
    pub tls_proxy: Vec<SocketAddr>,
    /// The front-ends whose PROXY headers are believed; connections to a proxy listener from
    /// anywhere else are closed.
    pub proxy_from: Vec<crate::peer_policy::IpRange>,
}

/// What a running server can change (a reload, or new realm data from the database): the
/// rest of [`Settings`] needs a restart.
#[derive(Clone)]
pub struct Reloadable {
    /// The TURN core's configuration (credentials checks, peer policy, quotas for the
    /// whole server: each worker gets its share).
    pub turn: TurnConfig,
    /// Static users.
    pub users: Users,
    /// REST secrets (the configured ones and the database's).
    pub rest: RestSecrets,
    /// `use-auth-secret`.
    pub use_auth_secret: bool,
    /// The configured REST secrets.
    pub secrets: Vec<String>,
    /// The TLS certificate and key (new connections get the new one).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Streams open at once, per worker.
    pub max_stream_connections: usize,
    /// A stream without an allocation is closed after this much silence.
    pub stream_idle_timeout: Duration,
}

impl std::fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloadable")
            .field("realm", &self.turn.realm)
            .field("users", &self.users.len())
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Takes what a reload changes.
    fn apply(&mut self, r: Reloadable) {
        self.turn = r.turn;
        self.users = r.users;
        self.rest = r.rest;
        self.tls = r.tls;
        self.max_stream_connections = r.max_stream_connections;
        self.stream_idle_timeout = r.stream_idle_timeout;
    }

    /// The part a reload may change.
    pub fn reloadable(&self) -> Reloadable {
        Reloadable {
            turn: self.turn.clone(),
            users: self.users.clone(),
            rest: self.rest.clone(),
            use_auth_secret: self.use_auth_secret,
            secrets: self.secrets.clone(),
            tls: self.tls.clone(),
            max_stream_connections: self.max_stream_connections,
            stream_idle_timeout: self.stream_idle_timeout,
        }
    }
}

/// What a worker's control channel carries.
pub(crate) enum Control {
    /// The answer to a [`Request::LookupUser`](crate::turn::Request::LookupUser).
    LookedUp { id: u64, result: UserLookup },
    /// The answer to a [`Request::ReserveQuota`](crate::turn::Request::ReserveQuota).
    QuotaReserved {
        id: u64,
        answer: crate::turn::QuotaAnswer,
    },
    /// A new configuration, this worker's share of the quotas applied.
    Reconfigure(Box<Reloadable>),
    /// No new allocations.
    Drain,
}

/// The workers' control channels.
#[derive(Clone)]
pub(crate) struct Broadcast {
    workers: Vec<tokio::sync::mpsc::UnboundedSender<Control>>,
}

impl Broadcast {
    /// Each worker's share of the server-wide `total_quota` (rounded up); `user_quota` applies
    /// in each worker as it is (a user's allocations from several addresses may land on
    /// several workers).
    fn share(turn: &mut TurnConfig, workers: usize) {
        if turn.total_quota > 0 {
            turn.total_quota = turn.total_quota.div_ceil(workers);
        }
    }

    fn reconfigure(&self, r: &Reloadable) {
        let mut r = r.clone();
        Self::share(&mut r.turn, self.workers.len());
        for w in &self.workers {
            let _ = w.send(Control::Reconfigure(Box::new(r.clone())));
        }
    }

    fn send(&self, worker: usize, c: Control) {
        if let Some(w) = self.workers.get(worker) {
            let _ = w.send(c);
        }
    }

    fn drain(&self) {
        for w in &self.workers {
            let _ = w.send(Control::Drain);
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("tls_listen", &self.tls_listen)
            .field("relay_ips", &self.relay_ips)
            .field("ports", &self.ports)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The certificate or key file.
    #[error("TLS: {path}: {reason}")]
    Tls {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A static user's password cannot be used (SASLprep).
    #[error("user {user:?}: {reason}")]
    User {
        /// The user.
        user: String,
        /// What went wrong.
        reason: String,
    },
    /// No address to relay from in a family that is listened on.
    #[error("no relay address")]
    NoRelayAddress,
    /// The relay port range cannot serve the workers.
    #[error("relay ports {min}-{max} cannot give {workers} workers two ports each")]
    PortRange {
        /// Lowest port.
        min: u16,
        /// Highest port.
        max: u16,
        /// Workers.
        workers: usize,
    },
    /// Nothing to listen on (every transport off, or TLS without a certificate).
    #[error("no listener: UDP and TCP are off, and TLS needs cert and pkey")]
    NoListener,
    /// A socket could not be bound.
    #[error("{addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Something else of the OS.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The host's addresses (for the peer policy, and relay addresses by default).
fn host_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|l| l.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default()
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

impl Settings {
    /// Resolves `config`: listeners, relay and advertised addresses, the peer policy with the
    /// server's own addresses, the TLS certificate, the users.
    pub fn from_config(c: &ServerConfig) -> Result<Settings, SetupError> {
        let listen: Vec<IpAddr> = if c.listening_ips.is_empty() {
            vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            ]
        } else {
            c.listening_ips.clone()
        };
        let at = |port: u16| -> Vec<SocketAddr> {
            listen.iter().map(|ip| SocketAddr::new(*ip, port)).collect()
        };
        let host = host_addresses();
        // Relay addresses: configured, else the specific listening ones, else the host's
        // first usable address of each family (loopback when there is nothing else).
        let mut binds: Vec<IpAddr> = if !c.relay_ips.is_empty() {
            c.relay_ips.clone()
        } else {
            listen
                .iter()
                .copied()
                .filter(|ip| !ip.is_unspecified())
                .collect()
        };
        if binds.is_empty() {
            for v4 in [true, false] {
                let usable = |ip: &&IpAddr| ip.is_ipv4() == v4 && !is_link_local(**ip);
                let pick = host
                    .iter()
                    .filter(usable)
                    .find(|ip| !ip.is_loopback())
                    .or_else(|| host.iter().filter(usable).find(|ip| ip.is_loopback()));
                if let Some(ip) = pick {
                    binds.push(*ip);
                }
            }
        }
        if binds.is_empty() {
            return Err(SetupError::NoRelayAddress);
        }
        let relay_ips: Vec<RelayIp> = binds
            .iter()
            .map(|&bind| {
                // `external-ip=public/private` maps one address; a lone `external-ip=public`
                // applies to every relay address of its family.
                let advertise = c
                    .external_ips
                    .iter()
                    .find(|(_, private)| *private == Some(bind))
                    .or_else(|| {
                        c.external_ips.iter().find(|(public, private)| {
                            private.is_none() && public.is_ipv4() == bind.is_ipv4()
                        })
                    })
                    .map_or(bind, |(public, _)| *public);
                RelayIp { bind, advertise }
            })
            .collect();

        // This server's own transport addresses, for ALTERNATE-SERVER lists naming it.
        let own_addresses: Vec<SocketAddr> = host
            .iter()
            .copied()
            .chain(listen.iter().copied().filter(|ip| !ip.is_unspecified()))
            .chain(c.external_ips.iter().map(|(p, _)| *p))
            .flat_map(|ip| {
                [c.listening_port, c.tls_listening_port].map(|port| SocketAddr::new(ip, port))
            })
            .collect();
        let mut server_addresses: Vec<IpAddr> = host;
        server_addresses.extend(listen.iter().copied().filter(|ip| !ip.is_unspecified()));
        server_addresses.extend(relay_ips.iter().flat_map(|r| [r.bind, r.advertise]));
        server_addresses.extend(c.external_ips.iter().map(|(p, _)| *p));
        if c.allow_loopback_peers {
            // Local testing relays between loopback addresses, the server's own included.
            server_addresses.retain(|ip| !ip.is_loopback());
        }
        server_addresses.sort();
        server_addresses.dedup();
        let peer_policy = PeerPolicy {
            allowed: c.allowed_peer_ips.clone(),
            denied: c.denied_peer_ips.clone(),
            allow_loopback: c.allow_loopback_peers,
            server_addresses,
        };

        let mut users = Users::default();
        for (name, password) in &c.users {
            users
                .add(name, &c.realm, password)
                .map_err(|e| SetupError::User {
                    user: name.clone(),
                    reason: e.to_string(),
                })?;
        }
        let rest = if c.use_auth_secret {
            RestSecrets::new(&c.static_auth_secrets)
        } else {
            RestSecrets::default()
        };
        let user_db = match (&c.userdb, &c.psql_userdb) {
            (_, Some(conn)) => Some(UserDbLocation::Postgres(conn.clone())),
            (Some(path), None) => Some(UserDbLocation::Sqlite(path.clone())),
            (None, None) => None,
        };

        let tls = match (&c.cert, &c.pkey, c.no_tls) {
            (Some(cert), Some(key), false) => Some(tls_config(cert, key)?),
            _ => None,
        };

        let turn = TurnConfig {
            realm: c.realm.clone(),
            software: Some(concat!("nat-traversal turnserver ", env!("CARGO_PKG_VERSION")).into()),
            max_lifetime: Duration::from_secs(c.max_allocate_lifetime.max(600)),
            nonce_lifetime: Duration::from_secs(c.stale_nonce),
            user_quota: c.user_quota,
            total_quota: c.total_quota,
            peer_policy,
            relay_families: ports::PortPool::families(&relay_ips),
            max_bps: c.max_bps,
            fingerprint: c.fingerprint,
            user_db: user_db.is_some(),
            user_cache_ttl: Duration::from_secs(c.userdb_cache_ttl),
            fleet_quota: c.fleet_quota,
            // RFC 6062's data connection reaches whichever worker its new 5-tuple hashes to,
            // and only the allocation's worker knows its CONNECTION-ID: one worker only.
            tcp_relay: !c.no_tcp_relay && c.workers == 1,
            rfc5766_channels: c.rfc5766_channels,
            alternate_servers: c.alternate_servers.clone(),
            tls_alternate_servers: c.tls_alternate_servers.clone(),
            own_addresses,
            redirect: if c.alternate_server_when_draining {
                crate::turn::Redirect::WhenDraining
            } else {
                crate::turn::Redirect::Always
            },
            ..TurnConfig::default()
        };
        let mut nonce_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut nonce_key);
        Ok(Settings {
            udp: if c.no_udp {
                vec![]
            } else {
                at(c.listening_port)
            },
            tcp: if c.no_tcp {
                vec![]
            } else {
                at(c.listening_port)
            },
            tls_listen: if tls.is_some() {
                at(c.tls_listening_port)
            } else {
                vec![]
            },
            tls,
            relay_ips,
            ports: (c.min_port, c.max_port),
            workers: c.workers,
            stream_idle_timeout: Duration::from_secs(c.stream_idle_timeout),
            handshake_timeout: Duration::from_secs(10),
            max_stream_connections: c.max_stream_connections,
            turn,
            users,
            rest,
            nonce_key,
            metrics: c
                .prometheus
                .then(|| SocketAddr::new(c.prometheus_address, c.prometheus_port)),
            rfc5780_alternate: None,
            user_db,
            use_auth_secret: c.use_auth_secret,
            secrets: c.static_auth_secrets.clone(),
            tcp_proxy: match c.tcp_proxy_port {
                Some(p) if !c.no_tcp => at(p),
                _ => vec![],
            },
            tls_proxy: match c.tls_proxy_port {
                Some(p) if c.cert.is_some() && !c.no_tls => at(p),
                _ => vec![],
            },
            proxy_from: c.proxy_protocol_from.clone(),
            fleet_name: c
                .server_name
                .clone()
                .unwrap_or_else(|| default_server_name(c.listening_port)),
            fleet_dead_after: Duration::from_secs(c.fleet_dead_after),
            sock_buf_size: c.sock_buf_size,
            batch_delay: Duration::from_micros(c.udp_batch_delay_us),
        })
    }
}

impl Settings {
    /// A STUN server alone (the `stunserver` program): Binding over UDP on `primary` (and
    /// over TCP unless `tcp` is false), no relaying, no credentials; with an RFC 5780
    /// `alternate` it listens on the four combinations of the two IPs and ports.
    pub fn stun_only(primary: SocketAddr, alternate: Option<SocketAddr>, tcp: bool) -> Settings {
        let mut nonce_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut nonce_key);
        Settings {
            udp: vec![primary],
            tcp: if tcp { vec![primary] } else { vec![] },
            tls_listen: vec![],
            tls: None,
            relay_ips: vec![],
            ports: (0, 0),
            workers: 1,
            stream_idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_stream_connections: 10_000,
            turn: TurnConfig {
                software: Some(
                    concat!("nat-traversal stunserver ", env!("CARGO_PKG_VERSION")).into(),
                ),
                stun_only: true,
                ..TurnConfig::default()
            },
            users: Users::default(),
            rest: RestSecrets::default(),
            nonce_key,
            metrics: None,
            rfc5780_alternate: alternate,
            user_db: None,
            use_auth_secret: false,
            secrets: Vec::new(),
            tcp_proxy: Vec::new(),
            tls_proxy: Vec::new(),
            proxy_from: Vec::new(),
            fleet_name: String::new(),
            fleet_dead_after: Duration::from_secs(10),
            sock_buf_size: 2 << 20,
            batch_delay: Duration::ZERO,
        }
    }
}

/// A fleet member's name when `server-name` is not set: the host's name and the listening
/// port (unique on a host, since two servers cannot listen on one port).
fn default_server_name(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "turnserver".into());
    format!("{host}:{port}")
}

/// The next connection on `listener`. When accepting fails (out of descriptors, most
/// often) it waits 50 ms and tries again, instead of spinning on the error.
pub async fn accept(listener: &tokio::net::TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                tracing::debug!(error = %e, "accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A rustls server configuration (TLS 1.2 and 1.3, ring) from PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, SetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |path: &Path, reason: String| SetupError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err(key, e.to_string()))?;
    Ok(Arc::new(config))
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    /// The TCP and the TLS listeners behind a load balancer (PROXY protocol).
    proxied: (Vec<SocketAddr>, Vec<SocketAddr>),
    metrics_addr: Option<SocketAddr>,
    metrics: Metrics,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    broadcast: Broadcast,
    /// The database thread's queue, with a user database.
    db: Option<std::sync::mpsc::Sender<database::Job>>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Broadcast({} workers)", self.workers.len())
    }
}

impl Server {
    /// Binds every listener (so errors come out here, before anything runs) and starts the
    /// workers.
    pub fn start(mut settings: Settings) -> Result<Server, SetupError> {
        let workers = settings.workers.max(1);
        let (min, max) = settings.ports;
        let relays = !settings.turn.stun_only;
        if relays && (min == 0 || min > max || u32::from(max - min) + 1 < 2 * workers as u32) {
            return Err(SetupError::PortRange { min, max, workers });
        }
        // RFC 5780: the three other combinations of the primary's and the alternate's IP and
        // port, after the primary (the first UDP listener stays the primary).
        if let (Some(alternate), Some(&primary)) =
            (settings.rfc5780_alternate, settings.udp.first())
        {
            let stun = crate::stun::StunServerConfig::with_alternate(primary, alternate);
            for addr in crate::stun::StunServer::new(stun).local_addresses() {
                if !settings.udp.contains(&addr) {
                    settings.udp.push(addr);
                }
            }
        }
        let reuse = workers > 1;
        // Bind every listener once per worker; port 0 is resolved by the first bind and
        // reused by the others.
        let mut per_worker: Vec<worker::Sockets> =
            (0..workers).map(|_| worker::Sockets::default()).collect();
        let mut bound = (Vec::new(), Vec::new(), Vec::new());
        let mut proxied = (Vec::new(), Vec::new());
        for &addr in &settings.udp {
            let size = settings.sock_buf_size;
            let Some(first) = bind_optional(addr, |a| worker::bind_udp(a, reuse, size))? else {
                continue;
            };
            let local = first.local_addr()?;
            bound.0.push(local);
            per_worker[0].udp.push(first);
            for w in per_worker.iter_mut().skip(1) {
                w.udp
                    .push(worker::bind_udp(local, reuse, size).map_err(|source| {
                        SetupError::Bind {
                            addr: local,
                            source,
                        }
                    })?);
            }
        }
        for (list, kind, out) in [
            (&settings.tcp, worker::Listener::TCP, &mut bound.1),
            (&settings.tls_listen, worker::Listener::TLS, &mut bound.2),
            (
                &settings.tcp_proxy,
                worker::Listener::TCP.behind_proxy(),
                &mut proxied.0,
            ),
            (
                &settings.tls_proxy,
                worker::Listener::TLS.behind_proxy(),
                &mut proxied.1,
            ),
        ] {
            for &addr in list {
                let Some(first) = bind_optional(addr, |a| worker::bind_tcp(a, reuse))? else {
                    continue;
                };
                let local = first.local_addr()?;
                out.push(local);
                per_worker[0].tcp.push((first, kind));
                for w in per_worker.iter_mut().skip(1) {
                    w.tcp.push((
                        worker::bind_tcp(local, reuse).map_err(|source| SetupError::Bind {
                            addr: local,
                            source,
                        })?,
                        kind,
                    ));
                }
            }
        }
        if bound.0.is_empty()
            && bound.1.is_empty()
            && bound.2.is_empty()
            && proxied.0.is_empty()
            && proxied.1.is_empty()
        {
            return Err(SetupError::NoListener);
        }
        let metrics = Metrics::new(workers);
        metrics.set_udp_ports(bound.0.iter().map(|a| a.port()).collect(), (min, max));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        let metrics_addr = match settings.metrics {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .map_err(|source| SetupError::Bind { addr, source })?;
                l.set_nonblocking(true)?;
                let local = l.local_addr()?;
                let m = metrics.clone();
                let mut rx = stop_rx.clone();
                threads.push(std::thread::Builder::new().name("metrics".into()).spawn(
                    move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("runtime");
                        rt.block_on(async move {
                            let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                                return;
                            };
                            tokio::select! {
                                _ = metrics::serve(l, m) => {}
                                _ = rx.changed() => {}
                            }
                        });
                    },
                )?);
                Some(local)
            }
            None => None,
        };
        let (senders, mut receivers): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| tokio::sync::mpsc::unbounded_channel())
            .unzip();
        let broadcast = Broadcast { workers: senders };
        let db = match &settings.user_db {
            Some(at) => {
                let fleet = settings.turn.fleet_quota.then(|| {
                    (
                        settings.fleet_name.clone(),
                        settings.fleet_dead_after,
                        metrics.clone(),
                    )
                });
                let (first, tx, thread) =
                    database::start(at.clone(), settings.reloadable(), broadcast.clone(), fleet)?;
                threads.push(thread);
                settings.apply(first);
                Some(tx)
            }
            None => None,
        };
        // Each worker gets an even-aligned slice of the port range.
        let span = u32::from(max - min) + 1;
        let share = (span / workers as u32) & !1;
        for (i, sockets) in per_worker.into_iter().enumerate() {
            let lo = min as u32 + share * i as u32;
            let hi = if i + 1 == workers {
                max as u32
            } else {
                lo + share - 1
            };
            let mut s = settings.clone();
            s.ports = (lo as u16, hi as u16);
            Broadcast::share(&mut s.turn, workers);
            let m = metrics.clone();
            let rx = stop_rx.clone();
            let control = receivers.remove(0);
            let db = db.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker::run(i, s, sockets, m, rx, control, db))?,
            );
        }
        Ok(Server {
            udp: bound.0,
            tcp: bound.1,
            tls: bound.2,
            proxied,
            metrics_addr,
            metrics,
            stop,
            threads,
            broadcast,
            db,
        })
    }

    /// Applies what a reload may change (see [`Reloadable`]) without touching a live
    /// allocation or connection. With a user database, its realm data is merged in first.
    pub fn reload(&self, r: Reloadable) {
        match &self.db {
            Some(db) => {
                let _ = db.send(database::Job::Reload(Box::new(r)));
            }
            None => self.broadcast.reconfigure(&r),
        }
    }

    /// Drain mode (coturn's, on SIGUSR1): no new allocations (Allocate gets 403, as from coturn), everything else goes on; the
    /// health endpoint answers 503 and `turn_draining` is 1. Watch
    /// [`Metrics::total`]'s `allocations` to know when the last one has gone.
    pub fn drain(&self) {
        self.metrics.set_draining();
        self.broadcast.drain();
    }

    /// The bound UDP listeners.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// The bound TCP listeners.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The bound TLS listeners.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls
    }

    /// The TCP listeners that take a PROXY protocol header first (`tcp-proxy-port`).
    pub fn tcp_proxy_addrs(&self) -> &[SocketAddr] {
        &self.proxied.0
    }

    /// The TLS listeners that take a PROXY protocol header first (`tls-proxy-port`).
    pub fn tls_proxy_addrs(&self) -> &[SocketAddr] {
        &self.proxied.1
    }

    /// The metrics listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The workers' counters (published once a second, and when a worker stops).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops the workers, closing every socket, and waits for them.
    pub fn shutdown(self) {
        drop(self.db);
        let _ = self.stop.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Binds `addr`; an IPv6 wildcard on a host without IPv6 is skipped, not fatal.
fn bind_optional<T>(
    addr: SocketAddr,
    bind: impl Fn(SocketAddr) -> io::Result<T>,
) -> Result<Option<T>, SetupError> {
    match bind(addr) {
        Ok(s) => Ok(Some(s)),
        Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() => {
            tracing::warn!(%addr, error = %e, "no IPv6 listener");
            Ok(None)
        }
        Err(source) => Err(SetupError::Bind { addr, source }),
    }
}
