//! Prometheus metrics: the workers' counters summed, in the text exposition format, served on
//! `GET /metrics`. Label sets are fixed (direction, reason): nothing per user or per client.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::stun::StunStats;
use crate::turn::TurnStats;

/// What the driver itself counts, per worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// TCP and TLS connections open now.
    pub stream_connections: u64,
    /// The most connections open at once so far (per worker; summed over workers it is an
    /// upper bound of the server's peak).
    pub stream_connections_peak: u64,
    /// Connections closed at once because `max-stream-connections` were open.
    pub stream_rejected: u64,
    /// Connections closed for sending nothing within `stream-idle-timeout`.
    pub stream_idle_closed: u64,
    /// Streams closed because they were not STUN/ChannelData framing.
    pub stream_framing_errors: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
    /// Datagrams the OS would not send (buffer full, unreachable).
    pub send_errors: u64,
    /// `recvmmsg` calls on UDP sockets (listeners and relays), and the datagrams they read:
    /// their ratio is the mean batch.
    pub udp_recv_calls: u64,
    /// Datagrams read by those calls.
    pub udp_received: u64,
    /// Send calls for datagrams sent in a batch (`sendmmsg`, or one GSO send of a run).
    pub udp_send_calls: u64,
    /// GSO sends among them.
    pub udp_gso_sends: u64,
    /// Datagrams those calls sent.
    pub udp_sent: u64,
    /// Messages dropped because a stream's write queue was full.
    pub stream_queue_full: u64,
    /// Relay sockets that could not be bound (answered 508).
    pub relay_bind_failures: u64,
    /// Connections to a PROXY protocol listener closed: from an address not in
    /// `proxy-protocol-from`, or with a bad or late header.
    pub proxy_refused: u64,
}

/// One worker's figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The TURN core's counters.
    pub turn: TurnStats,
    /// The Binding server's counters.
    pub stun: StunStats,
    /// The driver's counters.
    pub driver: DriverStats,
    /// Live allocations.
    pub allocations: u64,
    /// Live permissions.
    pub permissions: u64,
    /// Live channel bindings.
    pub channels: u64,
}

/// The workers' latest snapshots, one slot each.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    slots: Arc<Mutex<Vec<Snapshot>>>,
    draining: Arc<AtomicBool>,
    /// With fleet quotas: every live member's name and allocation count, as the last
    /// heartbeat read them.
    fleet: Arc<Mutex<Vec<(String, u64)>>>,
    /// The UDP listeners' ports and the relay port range, for the kernel's drop counters.
    udp_ports: Arc<Mutex<UdpPorts>>,
}

/// The UDP listeners' ports, and the relay port range.
type UdpPorts = (Vec<u16>, (u16, u16));

impl Metrics {
    pub(crate) fn new(workers: usize) -> Metrics {
        Metrics {
            slots: Arc::new(Mutex::new(vec![Snapshot::default(); workers])),
            draining: Arc::new(AtomicBool::new(false)),
            fleet: Arc::default(),
            udp_ports: Arc::default(),
        }
    }

    pub(crate) fn set_udp_ports(&self, listeners: Vec<u16>, relays: (u16, u16)) {
        if let Ok(mut p) = self.udp_ports.lock() {
            *p = (listeners, relays);
        }
    }

    /// The kernel's count of datagrams dropped for full receive buffers on the UDP
    /// listeners and on the relay sockets (every socket on a port of the relay range).
    pub fn kernel_drops(&self) -> (u64, u64) {
        let Ok(p) = self.udp_ports.lock().map(|p| p.clone()) else {
            return (0, 0);
        };
        let (listeners, (min, max)) = p;
        let [l, r] = super::buffers::udp_drops::<2>(|port| {
            if listeners.contains(&port) {
                Some(0)
            } else if min > 0 && (min..=max).contains(&port) {
                Some(1)
            } else {
                None
            }
        });
        (l, r)
    }

    pub(crate) fn set_fleet(&self, members: Vec<(String, u64)>) {
        if let Ok(mut f) = self.fleet.lock() {
            *f = members;
        }
    }

    /// The fleet's members and their allocation counts (empty without fleet quotas).
    pub fn fleet(&self) -> Vec<(String, u64)> {
        self.fleet.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the server drains (no new allocations).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn publish(&self, worker: usize, s: Snapshot) {
        if let Ok(mut slots) = self.slots.lock() {
            slots[worker] = s;
        }
    }

    /// The sum over workers.
    pub fn total(&self) -> Snapshot {
        let slots = self.slots.lock().map(|s| s.clone()).unwrap_or_default();
        let mut t = Snapshot::default();
        for s in &slots {
            let (a, b) = (&mut t.turn, &s.turn);
            a.allocations_created += b.allocations_created;
            a.allocations_deleted += b.allocations_deleted;
            a.auth_unauthenticated += b.auth_unauthenticated;
            a.auth_wrong_credentials += b.auth_wrong_credentials;
            a.auth_stale_nonce += b.auth_stale_nonce;
            a.challenges_rate_limited += b.challenges_rate_limited;
            a.bad_requests += b.bad_requests;
            a.packets_to_peers += b.packets_to_peers;
            a.bytes_to_peers += b.bytes_to_peers;
            a.packets_to_clients += b.packets_to_clients;
            a.bytes_to_clients += b.bytes_to_clients;
            a.dropped_peer_policy += b.dropped_peer_policy;
            a.dropped_no_permission += b.dropped_no_permission;
            a.dropped_bandwidth += b.dropped_bandwidth;
            a.dropped_too_big += b.dropped_too_big;
            a.user_lookups += b.user_lookups;
            a.user_lookup_failures += b.user_lookup_failures;
            a.user_lookups_dropped += b.user_lookups_dropped;
            a.refused_draining += b.refused_draining;
            a.redirected += b.redirected;
            t.stun.success += s.stun.success;
            t.stun.errors += s.stun.errors;
            t.stun.dropped += s.stun.dropped;
            let (a, b) = (&mut t.driver, &s.driver);
            a.stream_connections += b.stream_connections;
            a.stream_connections_peak += b.stream_connections_peak;
            a.stream_rejected += b.stream_rejected;
            a.stream_idle_closed += b.stream_idle_closed;
            a.stream_framing_errors += b.stream_framing_errors;
            a.tls_handshake_failures += b.tls_handshake_failures;
            a.send_errors += b.send_errors;
            a.udp_recv_calls += b.udp_recv_calls;
            a.udp_received += b.udp_received;
            a.udp_send_calls += b.udp_send_calls;
            a.udp_gso_sends += b.udp_gso_sends;
            a.udp_sent += b.udp_sent;
            a.stream_queue_full += b.stream_queue_full;
            a.relay_bind_failures += b.relay_bind_failures;
            a.proxy_refused += b.proxy_refused;
            t.allocations += s.allocations;
            t.permissions += s.permissions;
            t.channels += s.channels;
        }
        t
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let s = self.total();
        let mut o = String::new();
        let mut one = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        let t = &s.turn;
        let d = &s.driver;
        let fleet = self.fleet();
        if !fleet.is_empty() {
            // One sample per member: the fleet's size is the operator's, and names are
            // reduced to characters a label value may hold unescaped.
            let labels: Vec<(String, u64)> = fleet
                .iter()
                .map(|(name, n)| {
                    let clean: String = name
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || ".:_-".contains(c) {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    (format!("{{server=\"{clean}\"}}"), *n)
                })
                .collect();
            let samples: Vec<(&str, u64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
            one(
                "turn_fleet_allocations",
                "gauge",
                "Live allocations of each server of the fleet, as the last heartbeat read them.",
                &samples,
            );
        }
        one(
            "turn_draining",
            "gauge",
            "1 while the server drains (no new allocations), else 0.",
            &[("", u64::from(self.is_draining()))],
        );
        one(
            "turn_allocations",
            "gauge",
            "Live allocations.",
            &[("", s.allocations)],
        );
        one(
            "turn_permissions",
            "gauge",
            "Live permissions.",
            &[("", s.permissions)],
        );
        one(
            "turn_channels",
            "gauge",
            "Live channel bindings.",
            &[("", s.channels)],
        );
        one(
            "turn_stream_connections",
            "gauge",
            "Open TCP and TLS connections.",
            &[("", d.stream_connections)],
        );
        one(
            "turn_stream_connections_peak",
            "gauge",
            "Most TCP and TLS connections open at once (summed over workers).",
            &[("", d.stream_connections_peak)],
        );
        one(
            "turn_allocations_created_total",
            "counter",
            "Allocations made.",
            &[("", t.allocations_created)],
        );
        one(
            "turn_allocations_deleted_total",
            "counter",
            "Allocations ended (expired, deleted, or their connection closed).",
            &[("", t.allocations_deleted)],
        );
        one(
            "turn_relayed_packets_total",
            "counter",
            "Packets relayed.",
            &[
                ("{direction=\"to_peer\"}", t.packets_to_peers),
                ("{direction=\"to_client\"}", t.packets_to_clients),
            ],
        );
        one(
            "turn_relayed_bytes_total",
            "counter",
            "Application bytes relayed.",
            &[
                ("{direction=\"to_peer\"}", t.bytes_to_peers),
                ("{direction=\"to_client\"}", t.bytes_to_clients),
            ],
        );
        one(
            "turn_auth_failures_total",
            "counter",
            "Requests refused by authentication.",
            &[
                ("{reason=\"no_credentials\"}", t.auth_unauthenticated),
                ("{reason=\"wrong_credentials\"}", t.auth_wrong_credentials),
                ("{reason=\"stale_nonce\"}", t.auth_stale_nonce),
                ("{reason=\"rate_limited\"}", t.challenges_rate_limited),
            ],
        );
        one(
            "turn_bad_requests_total",
            "counter",
            "Requests answered 400.",
            &[("", t.bad_requests)],
        );
        one(
            "turn_dropped_packets_total",
            "counter",
            "Packets not relayed.",
            &[
                ("{reason=\"peer_policy\"}", t.dropped_peer_policy),
                ("{reason=\"no_permission\"}", t.dropped_no_permission),
                ("{reason=\"bandwidth\"}", t.dropped_bandwidth),
                ("{reason=\"too_big\"}", t.dropped_too_big),
                ("{reason=\"send_error\"}", d.send_errors),
                ("{reason=\"stream_queue_full\"}", d.stream_queue_full),
            ],
        );
        one(
            "turn_user_lookups_total",
            "counter",
            "Users looked up in the user database, by result.",
            &[
                (
                    "{result=\"answered\"}",
                    t.user_lookups.saturating_sub(t.user_lookup_failures),
                ),
                ("{result=\"unavailable\"}", t.user_lookup_failures),
                ("{result=\"dropped\"}", t.user_lookups_dropped),
            ],
        );
        one(
            "turn_allocate_refused_draining_total",
            "counter",
            "Allocate requests refused while draining.",
            &[("", t.refused_draining)],
        );
        one(
            "turn_allocate_redirected_total",
            "counter",
            "Allocate requests sent to an ALTERNATE-SERVER (300).",
            &[("", t.redirected)],
        );
        one(
            "turn_udp_syscalls_total",
            "counter",
            "Batched calls on UDP sockets: recvmmsg, and sends (sendmmsg, or GSO: one call for a run of datagrams to one destination, a subset of send); sends outside a batch are not counted.",
            &[
                ("{op=\"recv\"}", d.udp_recv_calls),
                ("{op=\"send\"}", d.udp_send_calls),
                ("{op=\"gso\"}", d.udp_gso_sends),
            ],
        );
        one(
            "turn_udp_datagrams_total",
            "counter",
            "Datagrams those calls moved: divided by turn_udp_syscalls_total, the mean batch.",
            &[
                ("{op=\"recv\"}", d.udp_received),
                ("{op=\"send\"}", d.udp_sent),
            ],
        );
        let (listener_drops, relay_drops) = self.kernel_drops();
        one(
            "turn_udp_kernel_drops_total",
            "counter",
            "Datagrams the kernel dropped for a full receive buffer (sock-buf-size), by socket kind.",
            &[
                ("{socket=\"listener\"}", listener_drops),
                ("{socket=\"relay\"}", relay_drops),
            ],
        );
        one(
            "turn_relay_bind_failures_total",
            "counter",
            "Relay sockets that could not be bound (508).",
            &[("", d.relay_bind_failures)],
        );
        one(
            "turn_proxy_protocol_refused_total",
            "counter",
            "Connections to a PROXY protocol listener closed (untrusted front-end, bad or late header).",
            &[("", d.proxy_refused)],
        );
        one(
            "turn_stream_closed_total",
            "counter",
            "TCP and TLS connections closed by the server.",
            &[
                ("{reason=\"limit\"}", d.stream_rejected),
                ("{reason=\"idle\"}", d.stream_idle_closed),
                ("{reason=\"framing\"}", d.stream_framing_errors),
                ("{reason=\"tls_handshake\"}", d.tls_handshake_failures),
            ],
        );
        one(
            "stun_binding_total",
            "counter",
            "Binding requests.",
            &[
                ("{result=\"success\"}", s.stun.success),
                ("{result=\"error\"}", s.stun.errors),
                ("{result=\"dropped\"}", s.stun.dropped),
            ],
        );
        o
    }
}

/// Serves `metrics` on `listener` until the task is dropped: `GET /metrics` (or `GET /`) gets
/// the text, anything else 404. One request per connection, 8 KB and 5 s at most to send it.
pub(crate) async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let (mut conn, _) = super::accept(&listener).await;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(512);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            if read != Ok(true) {
                return;
            }
            let response = if req.starts_with(b"GET /healthz ") || req.starts_with(b"GET /health ")
            {
                // For load balancers: 200 while taking allocations, 503 while draining.
                let (status, body) = if metrics.is_draining() {
                    ("503 Service Unavailable", "draining\n")
                } else {
                    ("200 OK", "ready\n")
                };
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET / ") {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = conn.write_all(response.as_bytes()).await;
        });
    }
}
