//! The STUN/TURN server `rooms` runs in-process by default: our `turnserver` (the
//! turn-server library's driver, on threads of its own) with TURN REST credentials under a
//! secret generated at start and shared with the hub, so one command gives a newcomer
//! signalling, STUN and TURN.

use std::net::{IpAddr, SocketAddr};

use std::time::Duration;

use crate::hub::TurnCredentials;

/// A running in-process TURN server.
#[derive(Debug)]
pub struct InProcessTurn {
    server: turn_server::driver::Server,
    /// The credentials the hub hands out for it.
    pub credentials: TurnCredentials,
}

/// Why the in-process TURN server cannot start.
#[derive(Debug, thiserror::Error)]
#[error("the in-process TURN server: {0}")]
pub struct TurnStartError(String);

impl InProcessTurn {
    /// Starts STUN and TURN over UDP and TCP on `ip:port` (port 0: any), relaying from `ip`.
    /// On a loopback address loopback peers are allowed, so two browsers on this machine can
    /// relay to each other through it; elsewhere the default peer policy holds (no private,
    /// loopback or own addresses as peers).
    pub fn start(ip: IpAddr, port: u16, ttl: Duration) -> Result<InProcessTurn, TurnStartError> {
        let mut raw = [0u8; 24];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut raw);
        let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        let config = turn_server::config::ServerConfig {
            listening_port: port,
            listening_ips: vec![ip],
            relay_ips: vec![ip],
            realm: "rooms".into(),
            use_auth_secret: true,
            static_auth_secrets: vec![secret.clone()],
            allow_loopback_peers: ip.is_loopback(),
            ..Default::default()
        };
        let settings = turn_server::driver::Settings::from_config(&config)
            .map_err(|e| TurnStartError(e.to_string()))?;
        // With port 0, UDP and TCP get ports of their own: each URL names its own.
        let server = turn_server::driver::Server::start(settings)
            .map_err(|e| TurnStartError(e.to_string()))?;
        let (udp, tcp) = (server.udp_addrs()[0], server.tcp_addrs()[0]);
        let host = match udp.ip() {
            ip if ip.is_unspecified() => "{host}".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let (u, t) = (udp.port(), tcp.port());
        let credentials = TurnCredentials {
            secret: secret.into_bytes(),
            urls: vec![
                format!("stun:{host}:{u}"),
                format!("turn:{host}:{u}?transport=udp"),
                format!("turn:{host}:{t}?transport=tcp"),
            ],
            ttl,
        };
        Ok(InProcessTurn {
            server,
            credentials,
        })
    }

    /// The UDP listener.
    pub fn udp_addr(&self) -> SocketAddr {
        self.server.udp_addrs()[0]
    }

    /// Stops it.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}
