//! What the driver does before the session runs: resolving servers, the TLS configuration
//! for `turns:`, the host's addresses, binding the UDP sockets.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{DriverError, IceServer, UrlScheme};
use crate::candidate::is_loopback_or_link_local;
use crate::{AgentConfig, TurnServerConfig};

pub(super) async fn resolve_server(
    server: &IceServer,
    agent: &mut AgentConfig,
) -> Result<(), DriverError> {
    let url = &server.url;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|source| DriverError::Resolve {
            host: url.host.clone(),
            source,
        })?
        .collect();
    // One address per family: the agent gathers from each socket to servers of its family.
    let mut picked: Vec<SocketAddr> = Vec::new();
    for a in addrs {
        if !picked.iter().any(|p| p.is_ipv4() == a.is_ipv4()) {
            picked.push(a);
        }
    }
    for addr in picked {
        match url.scheme {
            UrlScheme::Stun => agent.stun_servers.push(addr),
            UrlScheme::Turn | UrlScheme::Turns => agent.turn_servers.push(TurnServerConfig {
                addr,
                transport: url.transport,
                tls_name: (url.scheme == UrlScheme::Turns).then(|| url.host.clone()),
                username: server.username.clone(),
                password: server.password.clone(),
            }),
        }
    }
    Ok(())
}

/// A TLS client configuration for `turns:` that trusts `roots` (ring, the safe default
/// protocol versions), for [`DriverConfig::tls`](super::DriverConfig::tls).
pub fn tls_trusting(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub(super) fn platform_tls() -> Result<Arc<rustls::ClientConfig>, DriverError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(DriverError::Tls(match found.errors.first() {
            Some(e) => e.to_string(),
            None => "no root certificates found".into(),
        }));
    }
    Ok(tls_trusting(roots))
}

/// The host's addresses that can be candidates, in the named interfaces.
pub(super) fn host_ips(interfaces: &[String], agent: &AgentConfig) -> Vec<IpAddr> {
    let Ok(list) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut ips = Vec::new();
    for i in list {
        if !interfaces.is_empty() && !interfaces.contains(&i.name) {
            continue;
        }
        let ip = i.ip();
        // The agent's own rule, except that IPv6 link-local is never used: binding one would
        // need its scope (interface index) too.
        let allowed = !is_loopback_or_link_local(ip)
            || if ip.is_loopback() {
                agent.allow_loopback
            } else {
                ip.is_ipv4() && agent.allow_link_local
            };
        if !allowed || ip.is_unspecified() {
            continue;
        }
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// A non-blocking UDP socket on `ip`, with a port from `range` if given.
/// The receive buffer asked for on every UDP socket.
const RECV_BUFFER: usize = 4 * 1024 * 1024;

pub(super) fn bind_udp(
    ip: IpAddr,
    range: Option<(u16, u16)>,
) -> Result<std::net::UdpSocket, DriverError> {
    let try_bind = |port: u16| -> io::Result<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, port))?;
        s.set_nonblocking(true)?;
        // Media and DataChannel bursts overflow the default receive buffer (about 200 KiB)
        // before the reader task runs, on loopback above all: ask for more. The kernel caps
        // it at net.core.rmem_max; what we get is only logged.
        let s = socket2::Socket::from(s);
        let _ = s.set_recv_buffer_size(RECV_BUFFER);
        tracing::trace!(size = ?s.recv_buffer_size(), "receive buffer");
        Ok(s.into())
    };
    let Some((lo, hi)) = range else {
        return try_bind(0).map_err(|source| DriverError::Bind {
            addr: SocketAddr::new(ip, 0),
            source,
        });
    };
    // Port 0 would let the OS pick one outside the range.
    let (lo, hi) = (lo.min(hi).max(1), lo.max(hi).max(1));
    // Start at a random port of the range so two sessions rarely probe the same ports.
    let span = u32::from(hi - lo) + 1;
    let start = rand::random::<u32>() % span;
    let mut last = None;
    for k in 0..span {
        let port = lo + ((start + k) % span) as u16;
        match try_bind(port) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((port, e)),
        }
    }
    let (port, source) = last.expect("the range holds at least one port");
    Err(DriverError::Bind {
        addr: SocketAddr::new(ip, port),
        source,
    })
}
