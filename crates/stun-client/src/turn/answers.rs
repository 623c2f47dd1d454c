//! The client's transactions: building requests, and what each answer or timeout means
//! (RFC 8656 §7–§12, RFC 8489 §9.2 for 401 and 438).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use sans_io::Retransmit;
use stun_codec::attr::{
    AlternateServer, ChannelNumber, ConnectionId, Data, ErrorCode, Lifetime, Nonce,
    PasswordAlgorithm, Realm, RequestedTransport, Software, Username, XorMappedAddress,
    XorPeerAddress, XorRelayedAddress,
};
use stun_codec::{
    Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, TransactionId,
};

use super::{
    secs, PermissionState, Request, State, Transaction, TurnClient, TurnError, TurnEvent,
    CHANNEL_LIFETIME, MAX_REDIRECTS, PERMISSION_LIFETIME, REFRESH_MARGIN,
};

impl TurnClient {
    pub(super) fn handle_message<'a>(
        &mut self,
        now: Instant,
        msg: &Message<'a>,
    ) -> Option<(SocketAddr, &'a [u8])> {
        let mt = msg.message_type();
        if mt.method == Method::DATA && mt.class == Class::Indication {
            let peer = msg.get::<XorPeerAddress>().ok()??.0;
            let data = msg.get::<Data>().ok()??.0;
            return Some((peer, data));
        }
        if mt.method == Method::CONNECTION_ATTEMPT && mt.class == Class::Indication {
            if self.state == State::Allocated && self.config.relay_tcp {
                let peer = msg.get::<XorPeerAddress>().ok()??.0;
                let ConnectionId(connection_id) = msg.get::<ConnectionId>().ok()??;
                self.out.event(TurnEvent::ConnectionAttempt {
                    peer,
                    connection_id,
                });
            }
            return None;
        }
        if !matches!(mt.class, Class::SuccessResponse | Class::ErrorResponse) {
            return None;
        }
        let i = self
            .transactions
            .iter()
            .position(|t| t.id == msg.transaction_id())?;
        // An answer to a signed request must be signed with the same key (RFC 8489
        // §9.2.5); 401 and 438 answers carry no integrity and are taken as they are.
        let error = msg.get::<ErrorCode>().ok().flatten();
        let unsigned_ok = matches!(error.map(|e| e.code), Some(401) | Some(438));
        if self.transactions[i].signed && !unsigned_ok {
            let key = self.key.as_ref()?;
            msg.verify_integrity(key).ok()?;
        }
        let t = self.transactions.swap_remove(i);
        if mt.class == Class::SuccessResponse {
            self.request_succeeded(now, t.request, msg);
            return None;
        }
        let Some(err) = error else {
            self.request_failed(
                now,
                t.request,
                TurnError::Malformed("error without ERROR-CODE"),
            );
            return None;
        };
        match err.code {
            401 if t.auth_retries == 0 && t.request == Request::Allocate => {
                let (Some(realm), Some(nonce)) = (
                    msg.get::<Realm>().ok().flatten(),
                    msg.get::<Nonce>().ok().flatten(),
                ) else {
                    self.request_failed(now, t.request, TurnError::Malformed("401 without realm"));
                    return None;
                };
                match IntegrityKey::long_term(
                    &self.config.username,
                    realm.0,
                    &self.config.password,
                    PasswordAlgorithm::MD5,
                ) {
                    Ok(key) => self.key = Some(key),
                    Err(_) => {
                        self.request_failed(now, t.request, TurnError::BadPassword);
                        return None;
                    }
                }
                self.realm = Some(realm.0.to_owned());
                self.nonce = Some(nonce.0.to_owned());
                self.request(now, t.request, 1);
            }
            438 if t.auth_retries < 4 => {
                if let Some(nonce) = msg.get::<Nonce>().ok().flatten() {
                    self.nonce = Some(nonce.0.to_owned());
                    self.request(now, t.request, t.auth_retries + 1);
                } else {
                    self.request_failed(now, t.request, TurnError::Malformed("438 without nonce"));
                }
            }
            401 => self.request_failed(now, t.request, TurnError::Unauthorized),
            300 if t.request == Request::Allocate => self.try_alternate(now, msg),
            code => self.request_failed(
                now,
                t.request,
                TurnError::Server {
                    code,
                    reason: err.reason.to_owned(),
                },
            ),
        }
        None
    }

    /// RFC 8489 §10: a 300 to Allocate names another server in ALTERNATE-SERVER (the answer
    /// was authenticated if the request was: checked above). Over UDP the client moves there
    /// (new realm and nonce), at most [`MAX_REDIRECTS`] times; over a stream it cannot, and
    /// fails with [`TurnError::TryAlternate`] for its owner to connect there.
    fn try_alternate(&mut self, now: Instant, msg: &Message<'_>) {
        let Some(AlternateServer(alternate)) = msg.get::<AlternateServer>().ok().flatten() else {
            self.request_failed(
                now,
                Request::Allocate,
                TurnError::Malformed("300 without ALTERNATE-SERVER"),
            );
            return;
        };
        let usable = alternate.is_ipv4() == self.config.server.is_ipv4()
            && alternate != self.config.server
            && !alternate.ip().is_unspecified();
        if !usable || self.redirects >= MAX_REDIRECTS {
            self.request_failed(now, Request::Allocate, TurnError::TryAlternate(alternate));
            return;
        }
        if self.config.transport.is_stream() {
            self.request_failed(now, Request::Allocate, TurnError::TryAlternate(alternate));
            return;
        }
        tracing::info!(from = %self.config.server, to = %alternate, "TURN server redirects (300)");
        self.redirects += 1;
        self.config.server = alternate;
        self.realm = None;
        self.nonce = None;
        self.key = None;
        self.out.event(TurnEvent::Redirected { server: alternate });
        self.request(now, Request::Allocate, 0);
    }

    fn request_succeeded(&mut self, now: Instant, request: Request, msg: &Message<'_>) {
        match request {
            Request::Allocate => {
                let relayed = msg.get::<XorRelayedAddress>().ok().flatten();
                let mapped = msg.get::<XorMappedAddress>().ok().flatten();
                let (Some(relayed), Some(mapped)) = (relayed, mapped) else {
                    self.fail(TurnError::Malformed("Allocate success without addresses"));
                    return;
                };
                self.state = State::Allocated;
                self.relayed = Some(relayed.0);
                self.mapped = Some(mapped.0);
                self.schedule_refresh(now, msg);
                tracing::debug!(server = %self.config.server, relayed = %relayed.0, "allocated");
                self.out.event(TurnEvent::Allocated {
                    relayed: relayed.0,
                    mapped: mapped.0,
                });
                // Permissions and channels asked for while allocating.
                for i in 0..self.permissions.len() {
                    let ip = self.permissions[i].ip;
                    self.request(now, Request::CreatePermission(ip), 0);
                }
                for i in 0..self.channels.len() {
                    let (peer, channel) = (self.channels[i].peer, self.channels[i].number);
                    self.request(now, Request::ChannelBind { peer, channel }, 0);
                }
            }
            Request::Refresh { lifetime: 0 } => {}
            Request::Refresh { .. } => {
                self.schedule_refresh(now, msg);
                self.out.event(TurnEvent::Refreshed);
            }
            Request::CreatePermission(ip) => {
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
                    let new = p.state != PermissionState::Installed;
                    p.state = PermissionState::Installed;
                    p.refresh_at = Some(now + PERMISSION_LIFETIME - REFRESH_MARGIN);
                    if new {
                        self.out.event(TurnEvent::PermissionCreated(ip));
                    }
                }
            }
            Request::ChannelBind { peer, channel } => {
                // A channel binding installs or refreshes the permission too (§12).
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == peer.ip()) {
                    p.state = PermissionState::Installed;
                    p.refresh_at = Some(now + PERMISSION_LIFETIME - REFRESH_MARGIN);
                }
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) {
                    let new = !c.bound;
                    c.bound = true;
                    c.refresh_at = Some(now + CHANNEL_LIFETIME - REFRESH_MARGIN);
                    if new {
                        self.out.event(TurnEvent::ChannelBound { peer, channel });
                    }
                }
            }
            Request::Connect(peer) => match msg.get::<ConnectionId>().ok().flatten() {
                Some(ConnectionId(connection_id)) => self.out.event(TurnEvent::PeerConnected {
                    peer,
                    connection_id,
                }),
                None => self.out.event(TurnEvent::ConnectFailed(
                    peer,
                    TurnError::Malformed("Connect success without CONNECTION-ID"),
                )),
            },
        }
    }

    pub(super) fn request_failed(&mut self, _now: Instant, request: Request, error: TurnError) {
        tracing::debug!(server = %self.config.server, ?request, %error, "TURN request failed");
        match request {
            Request::Allocate => self.fail(error),
            Request::Refresh { lifetime: 0 } => {}
            Request::Refresh { .. } => {
                self.state = State::Failed;
                self.transactions.clear();
                self.out.event(TurnEvent::AllocationLost(error));
            }
            Request::CreatePermission(ip) => {
                if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
                    if p.state == PermissionState::Pending {
                        p.state = PermissionState::Failed;
                        self.out.event(TurnEvent::PermissionFailed(ip, error));
                    } else {
                        // A failed refresh: the permission lapses with its lifetime; try
                        // again shortly, as it may have been a lost answer.
                        p.refresh_at = Some(_now + Duration::from_secs(5));
                    }
                }
            }
            Request::Connect(peer) => self.out.event(TurnEvent::ConnectFailed(peer, error)),
            Request::ChannelBind { channel, .. } => {
                // Data keeps flowing as Send indications.
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == channel) {
                    c.bound = false;
                }
            }
        }
    }

    pub(super) fn fail(&mut self, error: TurnError) {
        self.state = State::Failed;
        self.transactions.clear();
        self.out.event(TurnEvent::AllocationFailed(error));
    }

    fn schedule_refresh(&mut self, now: Instant, msg: &Message<'_>) {
        let lifetime = msg
            .get::<Lifetime>()
            .ok()
            .flatten()
            .map(|l| Duration::from_secs(u64::from(l.0)))
            .unwrap_or(self.config.lifetime);
        let margin = if lifetime > 2 * REFRESH_MARGIN {
            REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        self.refresh_at = Some(now + lifetime - margin);
    }

    /// Builds and sends `request`; `auth_retries` counts credential retries so far.
    pub(super) fn request(&mut self, now: Instant, request: Request, auth_retries: u8) {
        let id = TransactionId(self.rng.gen());
        let method = match request {
            Request::Allocate => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission(_) => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
            Request::Connect(_) => Method::CONNECT,
        };
        let mut buf = [0u8; 512];
        let signed = self.key.is_some();
        let built = (|| {
            let mut b =
                MessageBuilder::new(&mut buf, MessageType::new(method, Class::Request), id)?;
            match request {
                Request::Allocate => {
                    b.add(&if self.config.relay_tcp {
                        RequestedTransport::TCP
                    } else {
                        RequestedTransport::UDP
                    })?;
                    b.add(&Lifetime(secs(self.config.lifetime)))?;
                }
                Request::Refresh { lifetime } => {
                    b.add(&Lifetime(lifetime))?;
                }
                Request::CreatePermission(ip) => {
                    b.add(&XorPeerAddress(SocketAddr::new(ip, 0)))?;
                }
                Request::ChannelBind { peer, channel } => {
                    b.add(&ChannelNumber(channel))?;
                    b.add(&XorPeerAddress(peer))?;
                }
                Request::Connect(peer) => {
                    b.add(&XorPeerAddress(peer))?;
                }
            }
            if let Some(s) = &self.config.software {
                b.add(&Software(s))?;
            }
            if let (Some(key), Some(realm), Some(nonce)) = (&self.key, &self.realm, &self.nonce) {
                b.add(&Username(&self.config.username))?;
                b.add(&Realm(realm))?;
                b.add(&Nonce(nonce))?;
                b.add_message_integrity(key)?;
            }
            b.add_fingerprint()?;
            Ok::<usize, stun_codec::BuildError>(b.finish().len())
        })();
        let Ok(len) = built else {
            // Only an absurdly long user name or nonce gets here.
            self.request_failed(now, request, TurnError::Malformed("request too large"));
            return;
        };
        let bytes = buf[..len].to_vec();
        let timer = if self.config.transport.is_stream() {
            Retransmit::reliable(now, Duration::from_millis(39_500))
        } else {
            Retransmit::udp(now, self.config.rto, self.config.max_sends, 16)
        };
        self.send(bytes.clone());
        self.out.timer_moved();
        self.transactions.push(Transaction {
            id,
            request,
            signed,
            auth_retries,
            bytes,
            timer,
        });
    }
}
