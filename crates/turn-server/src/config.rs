//! The operator's configuration in coturn's `turnserver.conf` format, so an operator can switch
//! without relearning: `key=value` or `key value` lines, bare flags, `#` comments, repeatable
//! keys (`user`, `static-auth-secret`, `listening-ip`, `denied-peer-ip`, ...). An unknown key
//! is reported with its line number; an invalid value stops with a clear message.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::peer_policy::{IpRange, IpRangeError};

/// The server's configuration, with coturn's defaults where coturn has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `listening-port`: STUN/TURN over UDP and TCP (default 3478).
    pub listening_port: u16,
    /// `tls-listening-port`: TURN over TLS (default 5349).
    pub tls_listening_port: u16,
    /// `listening-ip`: addresses to listen on (default: all).
    pub listening_ips: Vec<IpAddr>,
    /// `relay-ip`: addresses to relay from (default: the listening addresses).
    pub relay_ips: Vec<IpAddr>,
    /// `external-ip`: public address, optionally `public/private` for a server behind NAT.
    pub external_ips: Vec<(IpAddr, Option<IpAddr>)>,
    /// `min-port`: lowest relay port (default 49152).
    pub min_port: u16,
    /// `max-port`: highest relay port (default 65535).
    pub max_port: u16,
    /// `realm` (default: "turn").
    pub realm: String,
    /// `user=name:password`: static users.
    pub users: Vec<(String, String)>,
    /// `use-auth-secret`: TURN REST API credentials.
    pub use_auth_secret: bool,
    /// `static-auth-secret`: the REST secrets (several allowed, for rotation).
    pub static_auth_secrets: Vec<String>,
    /// `denied-peer-ip`: ranges denied on top of the defaults.
    pub denied_peer_ips: Vec<IpRange>,
    /// `allowed-peer-ip`: ranges allowed whatever else says.
    pub allowed_peer_ips: Vec<IpRange>,
    /// `allow-loopback-peers`: allow 127.0.0.0/8 and ::1 as peers (testing only).
    pub allow_loopback_peers: bool,
    /// `no-udp`: no UDP listener.
    pub no_udp: bool,
    /// `no-tcp`: no TCP listener.
    pub no_tcp: bool,
    /// `no-tls`: no TLS listener.
    pub no_tls: bool,
    /// `total-quota`: allocations in all (0: unlimited).
    pub total_quota: usize,
    /// `user-quota`: allocations per user (0: unlimited).
    pub user_quota: usize,
    /// `max-bps`: bandwidth per allocation in bytes per second (0: unlimited), as in coturn.
    pub max_bps: u64,
    /// `cert`: TLS certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// `pkey`: TLS private key (PEM).
    pub pkey: Option<PathBuf>,
    /// `fingerprint`: add FINGERPRINT to every message (on when the request has one anyway).
    pub fingerprint: bool,
    /// `stale-nonce[=seconds]`: nonce lifetime (default 600 s).
    pub stale_nonce: u64,
    /// `log-file`: where to log (default: standard error).
    pub log_file: Option<PathBuf>,
    /// `prometheus`: serve metrics.
    pub prometheus: bool,
    /// `prometheus-port` (default 9641, as coturn).
    pub prometheus_port: u16,
    /// `prometheus-address` (default 127.0.0.1: metrics are not public unless asked).
    pub prometheus_address: IpAddr,
    /// `max-allocate-lifetime` in seconds (default 3600).
    pub max_allocate_lifetime: u64,
    /// `workers`: threads, each with its own core, listeners (SO_REUSEPORT) and share of the
    /// relay port range (default 1).
    pub workers: usize,
    /// `stream-idle-timeout` in seconds: a TCP or TLS connection without an allocation that
    /// sends nothing this long is closed (default 30).
    pub stream_idle_timeout: u64,
    /// `max-stream-connections`: TCP and TLS connections open at once, per worker; beyond,
    /// new ones are closed at once (default 16384).
    pub max_stream_connections: usize,
    /// `log-json`: log JSON lines instead of text.
    pub log_json: bool,
    /// `userdb`: an SQLite user database in coturn's layout (created on first use).
    pub userdb: Option<PathBuf>,
    /// `psql-userdb`: a PostgreSQL user database (a libpq connection string).
    pub psql_userdb: Option<String>,
    /// `userdb-cache-ttl` in seconds: how long a user's key from the database is used before
    /// it is read again (default 60).
    pub userdb_cache_ttl: u64,
    /// `log-level`: the log filter (`info`, `debug`, `turn_server=debug,info`; `RUST_LOG`
    /// overrides it). coturn's `verbose` sets `debug`, `Verbose` `trace`.
    pub log_level: String,
    /// `drain-timeout` in seconds: in drain mode (SIGUSR1) the server exits when its last
    /// allocation is gone or after this long, whichever comes first (0: no limit; default 0).
    pub drain_timeout: u64,
    /// `rfc5766-channels`: accept ChannelBind for 0x5000–0x7FFF too (RFC 5766's range), for
    /// coturn's `turnutils_uclient` and older SIP clients (default off).
    pub rfc5766_channels: bool,
    /// `alternate-server`: where to redirect Allocates over UDP and TCP (300 with
    /// ALTERNATE-SERVER), `IP[:PORT]` (port 3478 by default).
    pub alternate_servers: Vec<std::net::SocketAddr>,
    /// `tls-alternate-server`: the same for TLS clients (port 5349 by default).
    pub tls_alternate_servers: Vec<std::net::SocketAddr>,
    /// `alternate-server-when`: `always` (coturn's: every Allocate, in turn) or `draining`
    /// (only while draining, instead of 403).
    pub alternate_server_when_draining: bool,
    /// `tcp-proxy-port`: a TCP listener (on the listening addresses) whose connections start
    /// with a PROXY protocol header from a load balancer (coturn's key).
    pub tcp_proxy_port: Option<u16>,
    /// `tls-proxy-port`: the same for TLS (the header, then the handshake).
    pub tls_proxy_port: Option<u16>,
    /// `proxy-protocol-from`: the load balancers whose headers are believed (required with a
    /// proxy port).
    pub proxy_protocol_from: Vec<IpRange>,
    /// `fleet-quota`: `user-quota` and `total-quota` hold across every server on the user
    /// database (which needs one).
    pub fleet_quota: bool,
    /// `server-name`: this server's name in the fleet (default: host name and listening port).
    pub server_name: Option<String>,
    /// `fleet-dead-after` in seconds: a fleet member not heard from for this long is gone,
    /// and its quota comes back (default 10; members say they are alive five times as often).
    pub fleet_dead_after: u64,
    /// `no-tcp-relay`: refuse RFC 6062 TCP allocations (coturn's key).
    pub no_tcp_relay: bool,
    /// `sock-buf-size` in bytes: the receive and send buffers of every UDP socket (coturn's
    /// key; default 2 MiB, 0 for the kernel's default).
    pub sock_buf_size: usize,
    /// `udp-batch-delay` in microseconds: how long an idle worker lets datagrams gather
    /// before it waits for the next (default 0: it waits at once).
    pub udp_batch_delay_us: u64,
}

/// What a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue {
    /// A bare flag (`key`, or `key=0|1|yes|no|true|false|on|off` in a file).
    Flag,
    /// A value is required; the string names it in help.
    Required(&'static str),
    /// A value may follow.
    Optional(&'static str),
}

/// One configuration key, which is also the command-line flag `--key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The name, as coturn spells it.
    pub name: &'static str,
    /// coturn's one-letter flag, if it has one.
    pub short: Option<char>,
    /// What it takes.
    pub value: KeyValue,
    /// A valid example value (for tests and docs).
    pub example: &'static str,
    /// One line of help.
    pub help: &'static str,
}

const fn key(
    name: &'static str,
    short: Option<char>,
    value: KeyValue,
    example: &'static str,
    help: &'static str,
) -> Key {
    Key {
        name,
        short,
        value,
        example,
        help,
    }
}

use KeyValue::{Flag, Optional, Required};

/// Every key [`ServerConfig::apply`] understands, in the order `--help` lists them.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key("listening-port", Some('p'), Required("PORT"), "3478", "UDP and TCP port for STUN and TURN [3478]"),
    key("tls-listening-port", None, Required("PORT"), "5349", "TLS port for TURN [5349]"),
    key("listening-ip", Some('L'), Required("IP"), "127.0.0.1", "address to listen on (repeatable) [all]"),
    key("relay-ip", Some('E'), Required("IP"), "127.0.0.1", "address to relay from (repeatable: allocations of a family take its addresses in turn) [listening addresses, else the host's first]"),
    key("external-ip", Some('X'), Required("IP[/PRIVATE]"), "203.0.113.5/10.0.0.5", "public address advertised for relays; PUBLIC/PRIVATE maps one relay address"),
    key("min-port", None, Required("PORT"), "49152", "lowest relay port [49152]"),
    key("max-port", None, Required("PORT"), "65535", "highest relay port [65535]"),
    key("realm", Some('r'), Required("REALM"), "example.org", "authentication realm [turn]"),
    key("lt-cred-mech", Some('a'), Flag, "", "long-term credentials (always on)"),
    key("user", Some('u'), Required("NAME:PASSWORD"), "alice:secret", "a static user (repeatable)"),
    key("use-auth-secret", None, Flag, "", "accept TURN REST API credentials"),
    key("static-auth-secret", None, Required("SECRET"), "s3cret", "a REST API secret (repeatable, for rotation)"),
    key("denied-peer-ip", None, Required("RANGE"), "203.0.113.0-203.0.113.255", "deny peers in this range or CIDR (repeatable)"),
    key("allowed-peer-ip", None, Required("RANGE"), "10.0.0.0/8", "allow peers in this range or CIDR whatever else says (repeatable)"),
    key("allow-loopback-peers", None, Flag, "", "allow 127.0.0.0/8 and ::1 as peers (testing only)"),
    key("no-multicast-peers", None, Flag, "", "deny multicast peers (always on)"),
    key("no-udp", None, Flag, "", "no UDP listener"),
    key("no-tcp", None, Flag, "", "no TCP listener"),
    key("no-tls", None, Flag, "", "no TLS listener"),
    key("total-quota", None, Required("N"), "1000", "allocations in all, 0 for unlimited [0]"),
    key("user-quota", None, Required("N"), "10", "allocations per user, 0 for unlimited [0]"),
    key("max-bps", None, Required("BYTES"), "125000", "bytes per second per allocation, 0 for unlimited [0]"),
    key("cert", None, Required("FILE"), "/etc/turn/cert.pem", "TLS certificate chain (PEM)"),
    key("pkey", None, Required("FILE"), "/etc/turn/key.pem", "TLS private key (PEM)"),
    key("fingerprint", Some('f'), Flag, "", "FINGERPRINT in every TURN response (always when the request has one)"),
    key("stale-nonce", None, Optional("SECONDS"), "600", "nonce lifetime [600]"),
    key("log-file", Some('l'), Required("FILE"), "/var/log/turn.log", "log to this file [standard error]"),
    key("prometheus", None, Flag, "", "serve Prometheus metrics on /metrics"),
    key("prometheus-port", None, Required("PORT"), "9641", "metrics port [9641]"),
    key("prometheus-address", None, Required("IP"), "0.0.0.0", "metrics address [127.0.0.1]"),
    key("max-allocate-lifetime", None, Required("SECONDS"), "3600", "longest allocation lifetime, at least 600 [3600]"),
    key("workers", None, Required("N"), "2", "worker threads [1]"),
    key("stream-idle-timeout", None, Required("SECONDS"), "30", "close TCP/TLS connections without an allocation after this much silence [30]"),
    key("max-stream-connections", None, Required("N"), "16384", "TCP and TLS connections per worker [16384]"),
    key("log-json", None, Flag, "", "log JSON lines"),
    key("userdb", Some('b'), Required("FILE"), "/var/lib/turn/turndb", "SQLite user database in coturn's layout, created on first use"),
    key("psql-userdb", Some('e'), Required("CONNINFO"), "host=127.0.0.1 dbname=coturn user=turn connect_timeout=5", "PostgreSQL user database in coturn's layout (libpq connection string)"),
    key("log-level", None, Required("FILTER"), "info", "log filter: error, warn, info, debug, trace, or per module (RUST_LOG wins) [info]"),
    key("verbose", Some('v'), Flag, "", "log-level debug"),
    key("Verbose", None, Flag, "", "log-level trace"),
    key("drain-timeout", None, Required("SECONDS"), "600", "in drain mode (SIGUSR1), exit after this long even with allocations left, 0 for never [0]"),
    key("rfc5766-channels", None, Flag, "", "also accept RFC 5766's channel numbers 0x5000-0x7FFF (older clients)"),
    key("alternate-server", None, Required("IP[:PORT]"), "203.0.113.7:3478", "redirect Allocates over UDP/TCP here with 300 (repeatable, used in turn)"),
    key("tls-alternate-server", None, Required("IP[:PORT]"), "203.0.113.7:5349", "the same for TLS clients (repeatable)"),
    key("alternate-server-when", None, Required("always|draining"), "draining", "redirect every Allocate (coturn) or only while draining [always]"),
    key("tcp-proxy-port", None, Required("PORT"), "3479", "a TCP listener behind a load balancer: PROXY protocol v1/v2 header first"),
    key("tls-proxy-port", None, Required("PORT"), "5350", "a TLS listener behind a load balancer: PROXY header, then TLS"),
    key("proxy-protocol-from", None, Required("RANGE"), "10.0.0.0/8", "load balancers whose PROXY headers are believed (repeatable; required with a proxy port)"),
    key("fleet-quota", None, Flag, "", "user-quota and total-quota for all servers on the user database together"),
    key("server-name", None, Required("NAME"), "turn-1", "this server's name in the fleet [host name:listening port]"),
    key("fleet-dead-after", None, Required("SECONDS"), "10", "a fleet member silent this long is gone and its quota comes back [10]"),
    key("no-tcp-relay", None, Flag, "", "refuse RFC 6062 TCP allocations (442)"),
    key("sock-buf-size", None, Required("BYTES"), "2097152", "UDP socket buffers, both ways, 0 for the kernel's default [2097152]"),
    key("udp-batch-delay", None, Required("MICROSECONDS"), "0", "an idle worker lets datagrams gather this long before waiting for the next: fewer wake-ups under paced load, up to this much latency [0]"),
    key("userdb-cache-ttl", None, Required("SECONDS"), "60", "how long a database user's key is used before it is read again [60]"),
];

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listening_port: 3478,
            tls_listening_port: 5349,
            listening_ips: Vec::new(),
            relay_ips: Vec::new(),
            external_ips: Vec::new(),
            min_port: 49152,
            max_port: 65535,
            realm: "turn".into(),
            users: Vec::new(),
            use_auth_secret: false,
            static_auth_secrets: Vec::new(),
            denied_peer_ips: Vec::new(),
            allowed_peer_ips: Vec::new(),
            allow_loopback_peers: false,
            no_udp: false,
            no_tcp: false,
            no_tls: false,
            total_quota: 0,
            user_quota: 0,
            max_bps: 0,
            cert: None,
            pkey: None,
            fingerprint: false,
            stale_nonce: 600,
            log_file: None,
            prometheus: false,
            prometheus_port: 9641,
            prometheus_address: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            max_allocate_lifetime: 3600,
            workers: 1,
            stream_idle_timeout: 30,
            max_stream_connections: 16384,
            log_json: false,
            userdb: None,
            psql_userdb: None,
            userdb_cache_ttl: 60,
            log_level: "info".into(),
            drain_timeout: 0,
            rfc5766_channels: false,
            alternate_servers: Vec::new(),
            tls_alternate_servers: Vec::new(),
            alternate_server_when_draining: false,
            tcp_proxy_port: None,
            tls_proxy_port: None,
            proxy_protocol_from: Vec::new(),
            fleet_quota: false,
            server_name: None,
            fleet_dead_after: 10,
            no_tcp_relay: false,
            sock_buf_size: 2 << 20,
            udp_batch_delay_us: 0,
        }
    }
}

/// A configuration line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key this server does not know.
    #[error("line {line}: unknown key {key:?}")]
    UnknownKey {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },
    /// A key whose value is missing or invalid.
    #[error("line {line}: {key}: {reason}")]
    InvalidValue {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
        /// What is wrong, with the value.
        reason: String,
    },
    /// Values that contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

impl ServerConfig {
    /// Parses `turnserver.conf` text on top of the defaults.
    pub fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        let mut c = ServerConfig::default();
        c.apply_text(text)?;
        c.check()?;
        Ok(c)
    }

    /// Applies the lines of a `turnserver.conf` (without [`check`](Self::check)ing the
    /// result, so command-line flags can still follow).
    pub fn apply_text(&mut self, text: &str) -> Result<(), ConfigError> {
        for (i, raw) in text.lines().enumerate() {
            // `#` starts a comment at the start of a line or after a blank, so a password may
            // still contain one.
            let line = raw.trim();
            let line = match line.find(" #").or_else(|| line.find("\t#")) {
                Some(at) => line[..at].trim(),
                None => line,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once(['=', ' ', '\t']) {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (line, None),
            };
            let key = key.trim_start_matches("--");
            self.apply(i + 1, key, value)?;
        }
        Ok(())
    }

    /// Applies one `key[=value]` (from a file line or a command-line flag).
    pub fn apply(
        &mut self,
        line: usize,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            line,
            key: key.to_owned(),
            reason,
        };
        let need = || {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid("a value is required".into()))
        };
        let number = |v: &str| -> Result<u64, ConfigError> {
            v.parse()
                .map_err(|_| invalid(format!("{v:?} is not a non-negative integer")))
        };
        let port = |v: &str| -> Result<u16, ConfigError> {
            match v.parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(invalid(format!("{v:?} is not a port (1-65535)"))),
            }
        };
        let ip = |v: &str| -> Result<IpAddr, ConfigError> {
            v.parse()
                .map_err(|_| invalid(format!("{v:?} is not an IP address")))
        };
        let range = |v: &str| -> Result<IpRange, ConfigError> {
            v.parse().map_err(|e: IpRangeError| invalid(e.to_string()))
        };
        let flag = || -> Result<bool, ConfigError> {
            match value {
                None | Some("") | Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
                Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
                Some(v) => Err(invalid(format!("{v:?} is not a boolean"))),
            }
        };
        match key {
            "listening-port" => self.listening_port = port(need()?)?,
            "tls-listening-port" => self.tls_listening_port = port(need()?)?,
            "listening-ip" => self.listening_ips.push(ip(need()?)?),
            "relay-ip" => self.relay_ips.push(ip(need()?)?),
            "external-ip" => {
                let v = need()?;
                let (public, private) = match v.split_once('/') {
                    Some((p, q)) => (ip(p)?, Some(ip(q)?)),
                    None => (ip(v)?, None),
                };
                self.external_ips.push((public, private));
            }
            "min-port" => self.min_port = port(need()?)?,
            "max-port" => self.max_port = port(need()?)?,
            "realm" => self.realm = need()?.to_owned(),
            // Always on: long-term credentials, and multicast peers denied. Accepted (and
            // checked) for coturn compatibility.
            "lt-cred-mech" | "no-multicast-peers" => {
                flag()?;
            }
            "user" => {
                let v = need()?;
                let (name, password) = v
                    .split_once(':')
                    .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                    .ok_or_else(|| invalid("expected name:password".into()))?;
                self.users.push((name.to_owned(), password.to_owned()));
            }
            "use-auth-secret" => self.use_auth_secret = flag()?,
            "static-auth-secret" => self.static_auth_secrets.push(need()?.to_owned()),
            "denied-peer-ip" => self.denied_peer_ips.push(range(need()?)?),
            "allowed-peer-ip" => self.allowed_peer_ips.push(range(need()?)?),
            "allow-loopback-peers" => self.allow_loopback_peers = flag()?,
            "no-udp" => self.no_udp = flag()?,
            "no-tcp" => self.no_tcp = flag()?,
            "no-tls" => self.no_tls = flag()?,
            "total-quota" => self.total_quota = number(need()?)? as usize,
            "user-quota" => self.user_quota = number(need()?)? as usize,
            "max-bps" => self.max_bps = number(need()?)?,
            "cert" => self.cert = Some(PathBuf::from(need()?)),
            "pkey" => self.pkey = Some(PathBuf::from(need()?)),
            "fingerprint" => self.fingerprint = flag()?,
            "stale-nonce" => {
                self.stale_nonce = match value.filter(|v| !v.is_empty()) {
                    None => 600,
                    Some(v) => number(v)?,
                }
            }
            "log-file" => self.log_file = Some(PathBuf::from(need()?)),
            "prometheus" => self.prometheus = flag()?,
            "prometheus-port" => self.prometheus_port = port(need()?)?,
            "prometheus-address" => self.prometheus_address = ip(need()?)?,
            "max-allocate-lifetime" => self.max_allocate_lifetime = number(need()?)?,
            "workers" => self.workers = number(need()?)? as usize,
            "stream-idle-timeout" => self.stream_idle_timeout = number(need()?)?,
            "max-stream-connections" => self.max_stream_connections = number(need()?)? as usize,
            "log-json" => self.log_json = flag()?,
            "userdb" | "db" => self.userdb = Some(PathBuf::from(need()?)),
            "psql-userdb" | "sql-userdb" => self.psql_userdb = Some(need()?.to_owned()),
            "drain-timeout" => self.drain_timeout = number(need()?)?,
            "rfc5766-channels" => self.rfc5766_channels = flag()?,
            "alternate-server" | "tls-alternate-server" => {
                let v = need()?;
                let default_port = if key == "alternate-server" {
                    3478
                } else {
                    5349
                };
                let addr = v
                    .parse::<std::net::SocketAddr>()
                    .or_else(|_| ip(v).map(|ip| std::net::SocketAddr::new(ip, default_port)))
                    .map_err(|_| invalid(format!("{v:?} is not IP, IP:PORT or [IPv6]:PORT")))?;
                if key == "alternate-server" {
                    self.alternate_servers.push(addr);
                } else {
                    self.tls_alternate_servers.push(addr);
                }
            }
            "fleet-quota" => self.fleet_quota = flag()?,
            "no-tcp-relay" => self.no_tcp_relay = flag()?,
            "sock-buf-size" => self.sock_buf_size = number(need()?)? as usize,
            "udp-batch-delay" => {
                let us = number(need()?)?;
                if us > 10_000 {
                    return Err(invalid(format!("{us}: at most 10000 microseconds")));
                }
                self.udp_batch_delay_us = us;
            }
            "server-name" => self.server_name = Some(need()?.to_owned()),
            "fleet-dead-after" => match number(need()?)? {
                0 => return Err(invalid("must be at least 1 second".into())),
                n => self.fleet_dead_after = n,
            },
            "tcp-proxy-port" => self.tcp_proxy_port = Some(port(need()?)?),
            "tls-proxy-port" => self.tls_proxy_port = Some(port(need()?)?),
            "proxy-protocol-from" => self.proxy_protocol_from.push(range(need()?)?),
            "alternate-server-when" => {
                self.alternate_server_when_draining = match need()? {
                    "always" => false,
                    "draining" => true,
                    v => return Err(invalid(format!("{v:?} is not always or draining"))),
                }
            }
            "userdb-cache-ttl" => match number(need()?)? {
                // The held request is answered from the cache the lookup just filled.
                0 => return Err(invalid("must be at least 1 second".into())),
                n => self.userdb_cache_ttl = n,
            },
            "log-level" => {
                let v = need()?;
                #[cfg(feature = "driver")]
                crate::cli::check_log_filter(v).map_err(invalid)?;
                self.log_level = v.to_owned();
            }
            "verbose" if flag()? => self.log_level = "debug".into(),
            "Verbose" if flag()? => self.log_level = "trace".into(),
            "verbose" | "Verbose" => {}
            _ => {
                return Err(ConfigError::UnknownKey {
                    line,
                    key: key.to_owned(),
                })
            }
        }
        Ok(())
    }

    /// Whether a user database is configured.
    pub fn has_user_db(&self) -> bool {
        self.userdb.is_some() || self.psql_userdb.is_some()
    }

    /// Checks that the values agree with each other.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.min_port > self.max_port {
            return Err(ConfigError::Inconsistent(format!(
                "min-port {} is above max-port {}",
                self.min_port, self.max_port
            )));
        }
        if !self.use_auth_secret && !self.static_auth_secrets.is_empty() {
            return Err(ConfigError::Inconsistent(
                "static-auth-secret is given without use-auth-secret, which would leave REST \
                 credentials off: add use-auth-secret"
                    .into(),
            ));
        }
        if self.use_auth_secret && self.static_auth_secrets.is_empty() && !self.has_user_db() {
            return Err(ConfigError::Inconsistent(
                "use-auth-secret needs at least one static-auth-secret (or a user database \
                 with turn_secret rows)"
                    .into(),
            ));
        }
        if (self.tcp_proxy_port.is_some() || self.tls_proxy_port.is_some())
            && self.proxy_protocol_from.is_empty()
        {
            return Err(ConfigError::Inconsistent(
                "tcp-proxy-port and tls-proxy-port need proxy-protocol-from: the load \
                 balancers whose PROXY headers are believed (anyone else could claim any \
                 client address)"
                    .into(),
            ));
        }
        if self.tls_proxy_port.is_some() && self.cert.is_none() {
            return Err(ConfigError::Inconsistent(
                "tls-proxy-port needs cert and pkey".into(),
            ));
        }
        if self.fleet_quota && !self.has_user_db() {
            return Err(ConfigError::Inconsistent(
                "fleet-quota needs the database the fleet shares: psql-userdb (or userdb for \
                 servers on one host)"
                    .into(),
            ));
        }
        if self.userdb.is_some() && self.psql_userdb.is_some() {
            return Err(ConfigError::Inconsistent(
                "userdb and psql-userdb: choose one user database".into(),
            ));
        }
        if self.cert.is_some() != self.pkey.is_some() {
            return Err(ConfigError::Inconsistent(
                "cert and pkey go together".into(),
            ));
        }
        if self.stale_nonce == 0 {
            return Err(ConfigError::Inconsistent(
                "stale-nonce must be positive".into(),
            ));
        }
        if self.workers == 0 || self.workers > 256 {
            return Err(ConfigError::Inconsistent(format!(
                "workers must be 1 to 256, not {}",
                self.workers
            )));
        }
        let ports = usize::from(self.max_port - self.min_port) + 1;
        if ports < 2 * self.workers {
            return Err(ConfigError::Inconsistent(format!(
                "the relay port range {}-{} is too small for {} workers",
                self.min_port, self.max_port, self.workers
            )));
        }
        if self.stream_idle_timeout == 0 || self.stream_idle_timeout > 86_400 {
            return Err(ConfigError::Inconsistent(
                "stream-idle-timeout must be 1 to 86400 seconds".into(),
            ));
        }
        if self.no_udp && self.no_tcp && self.no_tls {
            return Err(ConfigError::Inconsistent(
                "no-udp, no-tcp and no-tls leave no listener".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coturn_style_file() {
        let c = ServerConfig::parse(
            "# a coturn-style file\n\
             listening-port=3479\n\
             listening-ip=127.0.0.1\n\
             external-ip=203.0.113.5/10.0.0.5\n\
             min-port 50000\n\
             max-port=50100\n\
             realm=example.org\n\
             lt-cred-mech\n\
             user=alice:secret\n\
             user=bob:pa:ss#1\n\
             use-auth-secret\n\
             static-auth-secret=old\n\
             static-auth-secret=\"new\"\n\
             denied-peer-ip=203.0.113.0-203.0.113.255\n\
             allowed-peer-ip=10.0.0.0/8   # a comment\n\
             allow-loopback-peers\n\
             no-tls\n\
             total-quota=100\n\
             user-quota=10\n\
             max-bps=125000\n\
             fingerprint\n\
             stale-nonce=300\n\
             prometheus\n",
        )
        .unwrap();
        assert_eq!(c.listening_port, 3479);
        assert_eq!(
            c.listening_ips,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            c.external_ips,
            vec![(
                "203.0.113.5".parse().unwrap(),
                Some("10.0.0.5".parse().unwrap())
            )]
        );
        assert_eq!((c.min_port, c.max_port), (50000, 50100));
        assert_eq!(
            c.users,
            vec![
                ("alice".into(), "secret".into()),
                ("bob".into(), "pa:ss#1".into())
            ]
        );
        assert_eq!(
            c.static_auth_secrets,
            vec!["old".to_owned(), "new".to_owned()]
        );
        assert_eq!(c.denied_peer_ips.len(), 1);
        assert!(c.allowed_peer_ips[0].contains("10.1.2.3".parse().unwrap()));
        assert!(
            c.allow_loopback_peers
                && c.no_tls
                && c.fingerprint
                && c.prometheus
                && c.use_auth_secret
        );
        assert_eq!(
            (c.total_quota, c.user_quota, c.max_bps, c.stale_nonce),
            (100, 10, 125000, 300)
        );
    }

    #[test]
    fn every_listed_key_is_understood() {
        for k in KEYS {
            let mut c = ServerConfig::default();
            let value = match k.value {
                KeyValue::Flag => None,
                _ => Some(k.example),
            };
            c.apply(1, k.name, value)
                .unwrap_or_else(|e| panic!("{}: {e}", k.name));
            if k.value == KeyValue::Flag {
                c.apply(1, k.name, Some("no")).unwrap();
            }
        }
        let mut names: Vec<_> = KEYS.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KEYS.len(), "a key listed twice");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            ServerConfig::parse("realm=x\n\nverbose-everything=1\n").unwrap_err(),
            ConfigError::UnknownKey {
                line: 3,
                key: "verbose-everything".into()
            }
        );
        let e = ServerConfig::parse("listening-port=99999").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: listening-port: \"99999\" is not a port (1-65535)"
        );
        let e = ServerConfig::parse("user=alice").unwrap_err();
        assert_eq!(e.to_string(), "line 1: user: expected name:password");
        let e = ServerConfig::parse("denied-peer-ip=10.0.0.9-10.0.0.1").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("line 1: denied-peer-ip: invalid address range"));
        assert!(matches!(
            ServerConfig::parse("min-port=60000\nmax-port=50000"),
            Err(ConfigError::Inconsistent(_))
        ));
        assert!(matches!(
            ServerConfig::parse("use-auth-secret"),
            Err(ConfigError::Inconsistent(_))
        ));
        assert!(matches!(
            ServerConfig::parse("cert=/x.pem"),
            Err(ConfigError::Inconsistent(_))
        ));
        assert!(matches!(
            ServerConfig::parse("fingerprint=maybe"),
            Err(ConfigError::InvalidValue { .. })
        ));
    }
}
