//! Ready-made endpoints for tests: [`Scripted`] sends what it is told when it is told and
//! records everything it receives; [`Scripted::echoing`] also answers every datagram with its
//! own bytes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::endpoint::{Endpoint, Input, Output};
use sans_io::ConnectionId;

/// Something a [`Scripted`] endpoint received, with the virtual time since the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A datagram.
    Udp {
        /// When.
        at: Duration,
        /// To which local address.
        local: SocketAddr,
        /// From where.
        remote: SocketAddr,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A TCP event: accepted, connected, data or closed.
    Tcp {
        /// When.
        at: Duration,
        /// The connection.
        conn: ConnectionId,
        /// What happened, e.g. `"accepted from 203.0.113.1:5000"`, `"data 5 bytes"`,
        /// `"connected"`, `"closed"`, `"reset"`.
        what: String,
        /// Bytes, for data.
        data: Vec<u8>,
    },
}

/// An endpoint that performs [`Output`]s at given virtual times and records its inputs.
#[derive(Debug, Default)]
pub struct Scripted {
    script: VecDeque<(Duration, Output)>,
    start: Option<Instant>,
    due: VecDeque<Output>,
    /// Everything received, in order.
    pub received: Vec<Received>,
    /// Echo every datagram back to its sender.
    pub echo: bool,
}

impl Scripted {
    /// An endpoint with nothing to do.
    pub fn new() -> Scripted {
        Scripted::default()
    }

    /// An endpoint that answers every datagram with the same bytes, from the address it
    /// arrived on (and records it).
    pub fn echoing() -> Scripted {
        Scripted {
            echo: true,
            ..Scripted::default()
        }
    }

    /// Adds an action at virtual time `at` (actions must be added in time order).
    pub fn at(mut self, at: Duration, output: Output) -> Scripted {
        self.script.push_back((at, output));
        self
    }

    /// Sends a datagram at `at`.
    pub fn send_at(
        self,
        at: Duration,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Scripted {
        self.at(
            at,
            Output::Udp {
                local,
                remote,
                data: data.to_vec(),
            },
        )
    }

    /// The datagrams received, as (local, remote, data).
    pub fn datagrams(&self) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        self.received
            .iter()
            .filter_map(|r| match r {
                Received::Udp {
                    local,
                    remote,
                    data,
                    ..
                } => Some((*local, *remote, data.clone())),
                Received::Tcp { .. } => None,
            })
            .collect()
    }

    /// The TCP events received, as (connection, what).
    pub fn tcp_events(&self) -> Vec<(ConnectionId, String)> {
        self.received
            .iter()
            .filter_map(|r| match r {
                Received::Tcp { conn, what, .. } => Some((*conn, what.clone())),
                Received::Udp { .. } => None,
            })
            .collect()
    }

    fn since(&self, now: Instant) -> Duration {
        self.start
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    fn take_due(&mut self, now: Instant) {
        let t = self.since(now);
        while self.script.front().is_some_and(|(at, _)| *at <= t) {
            let (_, out) = self.script.pop_front().expect("front exists");
            self.due.push_back(out);
        }
    }
}

impl Endpoint for Scripted {
    fn start(&mut self, now: Instant) {
        self.start = Some(now);
        self.take_due(now);
    }

    fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        let at = self.since(now);
        let tcp = |conn, what: String, data: &[u8]| Received::Tcp {
            at,
            conn,
            what,
            data: data.to_vec(),
        };
        let r = match input {
            Input::Udp {
                local,
                remote,
                data,
            } => {
                if self.echo {
                    self.due.push_back(Output::Udp {
                        local,
                        remote,
                        data: data.to_vec(),
                    });
                }
                Received::Udp {
                    at,
                    local,
                    remote,
                    data: data.to_vec(),
                }
            }
            Input::TcpAccepted { conn, remote, .. } => {
                tcp(conn, format!("accepted from {remote}"), &[])
            }
            Input::TcpConnected { conn, .. } => tcp(conn, "connected".into(), &[]),
            Input::TcpData { conn, data } => {
                if self.echo {
                    self.due.push_back(Output::TcpSend {
                        conn,
                        data: data.to_vec(),
                    });
                }
                tcp(conn, format!("data {} bytes", data.len()), data)
            }
            Input::TcpClosed { conn, reset } => {
                tcp(conn, if reset { "reset" } else { "closed" }.into(), &[])
            }
        };
        self.received.push(r);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.take_due(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.due.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let (at, _) = self.script.front()?;
        Some(self.start? + *at)
    }
}
