//! Requests: authentication (RFC 8489 §9.2.4) and Allocate, Refresh, CreatePermission and
//! ChannelBind (RFC 8656 §7–§12), with their error codes where the RFCs put them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_codec::attr::{
    reason_phrase, AdditionalAddressFamily, AddressErrorCode, AddressFamily, AlternateServer,
    AttributeType, ChannelNumber, ErrorCode, EvenPort, Lifetime, Nonce, PasswordAlgorithm,
    PasswordAlgorithms, Realm, RequestedAddressFamily, RequestedTransport, ReservationToken,
    UnknownAttributes, UserHash, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use stun_codec::{
    AttributeError, BuildError, Class, IntegrityKey, Message, MessageBuilder, Method, TransactionId,
};

use super::lookup::{Cached, Held};
use super::{
    quota_key, Allocation, Dual, FiveTuple, Pending, Quota, Reject, Relay, RelayRequest, Request,
    TokenBucket, TurnServer, UserLookup,
};
use crate::auth::{NonceError, UserKeys, PASSWORD_ALGORITHMS};
use crate::response::{self, Finish};

/// How a request was authenticated, so its response is protected the same way.
#[derive(Debug, Clone)]
struct Integrity {
    key: IntegrityKey,
    /// The request used MESSAGE-INTEGRITY-SHA256.
    sha256: bool,
}

/// The request being answered: where the answer goes and how it is protected. Every
/// response, error and challenge is built from it.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) ft: FiveTuple,
    method: Method,
    tid: TransactionId,
    /// The request carried FINGERPRINT (then so does the answer).
    fingerprint: bool,
    /// Set once the request authenticated: the answer is signed with the same key.
    integrity: Option<Integrity>,
}

/// The two answers that hand the client a fresh nonce (RFC 8489 §9.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    /// 401: no credentials, or wrong ones.
    Unauthenticated,
    /// 438: valid credentials with a stale or foreign nonce.
    StaleNonce,
}

/// The comprehension-required attributes a TURN request may carry and this server processes.
/// Known to the codec but not processed here — RFC 5780's CHANGE-REQUEST, RESPONSE-PORT,
/// PADDING, ICE's PRIORITY and USE-CANDIDATE, and DONT-FRAGMENT
/// (RFC 8656 §7.2, §11.2) — get 420 like unknown ones (a Send indication carrying one is
/// discarded).
pub(super) fn understood(t: AttributeType) -> bool {
    t.is_known()
        && ![
            AttributeType::CHANGE_REQUEST,
            AttributeType::RESPONSE_PORT,
            AttributeType::PADDING,
            AttributeType::PRIORITY,
            AttributeType::USE_CANDIDATE,
            // RFC 8656 §7.2: a server that cannot set DF treats DONT-FRAGMENT as unknown
            // (420); the driver sends with the kernel's own path-MTU setting, so it does.
            AttributeType::DONT_FRAGMENT,
        ]
        .contains(&t)
}

impl Context {
    /// The context of a request not yet authenticated.
    fn of(ft: FiveTuple, msg: &Message<'_>) -> Context {
        Context {
            ft,
            method: msg.message_type().method,
            tid: msg.transaction_id(),
            fingerprint: msg.has_fingerprint(),
            integrity: None,
        }
    }
}

impl TurnServer {
    pub(super) fn request(&mut self, now: Instant, ft: FiveTuple, msg: &Message<'_>) {
        let mut cx = Context::of(ft, msg);
        if cx.fingerprint && msg.verify_fingerprint().is_err() {
            return; // RFC 8489 §7.3: discard
        }
        let Some(username) = self.authenticate(now, &mut cx, msg) else {
            return;
        };
        if let Err(reject) = self.authenticated(now, &cx, msg, username) {
            if reject == Reject::BadRequest {
                self.stats.bad_requests += 1;
            }
            self.error(&cx, reject);
        }
    }

    fn authenticated(
        &mut self,
        now: Instant,
        cx: &Context,
        msg: &Message<'_>,
        username: String,
    ) -> Result<(), Reject> {
        let unknown: Vec<AttributeType> = msg
            .unknown_comprehension_required(understood)
            .take(16)
            .collect();
        if !unknown.is_empty() {
            return Err(Reject::UnknownAttributes(unknown));
        }
        match cx.method {
            Method::ALLOCATE => self.allocate(now, cx, msg, username),
            Method::CONNECTION_BIND => self.connection_bind(cx, msg, &username),
            Method::REFRESH
            | Method::CREATE_PERMISSION
            | Method::CHANNEL_BIND
            | Method::CONNECT => {
                // The allocation must be live and the request from the user who made it
                // (RFC 8656 §5: else 441).
                match self.live(cx.ft, now).map(|a| *a.username == *username) {
                    None => Err(Reject::AllocationMismatch),
                    Some(false) => Err(Reject::WrongCredentials),
                    Some(true) => match cx.method {
                        Method::REFRESH => self.refresh(now, cx, msg),
                        Method::CREATE_PERMISSION => self.create_permission(now, cx, msg),
                        Method::CONNECT => self.connect(now, cx, msg),
                        _ => self.channel_bind(now, cx, msg),
                    },
                }
            }
            _ => Err(Reject::BadRequest),
        }
    }

    /// RFC 8489 §9.2.4, in its order: no integrity → 401; missing USERNAME/USERHASH, REALM or
    /// NONCE → 400; PASSWORD-ALGORITHMS checks → 400; unknown user or bad integrity → 401;
    /// a nonce no longer valid → 438. Nothing is stored for the client here. Returns the
    /// user, with `cx` now holding the key to sign the answer; `None` when the request has
    /// been answered already (401, 438 or 400) or dropped by the rate limit.
    fn authenticate(
        &mut self,
        now: Instant,
        cx: &mut Context,
        msg: &Message<'_>,
    ) -> Option<String> {
        let sha256 = msg.has_integrity_sha256();
        if !msg.has_integrity() && !sha256 {
            self.stats.auth_unauthenticated += 1;
            self.challenge(now, cx, Challenge::Unauthenticated);
            return None;
        }
        let username = msg.get::<Username>().ok().flatten();
        let userhash = msg.get::<UserHash>().ok().flatten();
        let realm = msg.get::<Realm>().ok().flatten();
        let nonce = msg.get::<Nonce>().ok().flatten();
        let (Some(_), Some(nonce)) = (realm, nonce) else {
            return self.bad_request(now, cx);
        };
        if username.is_none() && userhash.is_none() {
            return self.bad_request(now, cx);
        }
        // PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM: both or neither; the list must be ours
        // (a downgrade check) and the choice must be in it.
        let algorithm = match (
            msg.get::<PasswordAlgorithms>(),
            msg.get::<PasswordAlgorithm>(),
        ) {
            (Ok(None), Ok(None)) => None,
            (Ok(Some(list)), Ok(Some(choice))) => {
                let ours = list
                    .iter()
                    .map(|a| a.algorithm)
                    .eq(PASSWORD_ALGORITHMS.iter().map(|a| a.algorithm));
                if !ours || !list.iter().any(|a| a.algorithm == choice.algorithm) {
                    return self.bad_request(now, cx);
                }
                Some(choice.algorithm)
            }
            _ => return self.bad_request(now, cx),
        };
        // Candidate keys: a static user, TURN REST credentials under each secret, or a user
        // of the database (USERHASH finds static users only: the database is keyed by name).
        let candidates: Vec<UserKeys> = match (username, userhash) {
            (_, Some(UserHash(h))) => self.users.by_hash(&h).cloned().into_iter().collect(),
            (Some(Username(u)), None) => match self.users.by_name(u) {
                Some(k) => vec![k.clone()],
                None => {
                    let rest = self.rest.keys(u, &self.config.realm, self.unix(now));
                    if !rest.is_empty() || !self.config.user_db {
                        rest
                    } else {
                        match self.cache.get(u, now) {
                            Cached::Fresh(k) => k.cloned().into_iter().collect(),
                            Cached::Ask => {
                                self.ask_database(now, cx, msg, u, nonce.0);
                                return None;
                            }
                        }
                    }
                }
            },
            (None, None) => Vec::new(),
        };
        let verified = candidates.iter().find_map(|user| {
            let key = user.key(algorithm)?;
            let ok = if sha256 {
                msg.verify_integrity_sha256(key).is_ok()
            } else {
                msg.verify_integrity(key).is_ok()
            };
            ok.then(|| {
                let integrity = Integrity {
                    key: key.clone(),
                    sha256,
                };
                (user.username.clone(), integrity)
            })
        });
        let Some((username, integrity)) = verified else {
            self.stats.auth_wrong_credentials += 1;
            self.challenge(now, cx, Challenge::Unauthenticated);
            return None;
        };
        if let Err(NonceError::Stale | NonceError::Invalid) =
            self.nonces.check(nonce.0, now, cx.ft.client.ip())
        {
            self.stats.auth_stale_nonce += 1;
            self.challenge(now, cx, Challenge::StaleNonce);
            return None;
        }
        cx.integrity = Some(integrity);
        Some(username)
    }

    /// Holds the request until the driver has looked its user up. Only a request with a
    /// nonce this server gave its address is worth a lookup (else 401 or 438 at once, as
    /// for a known user), and each lookup spends one of the source's challenge tokens.
    fn ask_database(
        &mut self,
        now: Instant,
        cx: &Context,
        msg: &Message<'_>,
        username: &str,
        nonce: &str,
    ) {
        match self.nonces.check(nonce, now, cx.ft.client.ip()) {
            Err(NonceError::Invalid) => {
                self.stats.auth_wrong_credentials += 1;
                return self.challenge(now, cx, Challenge::Unauthenticated);
            }
            Err(NonceError::Stale) => {
                self.stats.auth_stale_nonce += 1;
                return self.challenge(now, cx, Challenge::StaleNonce);
            }
            Ok(()) => {}
        }
        if !self.limiter.allow(cx.ft.client.ip(), now) {
            self.stats.challenges_rate_limited += 1;
            return;
        }
        match self
            .lookups
            .hold(now, username, cx.ft, msg.as_bytes(), &mut self.next_id)
        {
            Held::New(id) => {
                self.stats.user_lookups += 1;
                self.out.request(Request::LookupUser {
                    id,
                    username: username.to_owned(),
                });
            }
            Held::Joined => {}
            Held::Full => self.stats.user_lookups_dropped += 1,
        }
    }

    /// The driver's answer to [`Request::LookupUser`]: the held requests are answered as if
    /// they had just come, now that the cache knows the user (or, with the database down
    /// and nothing known of the user, with 500).
    pub fn user_looked_up(&mut self, now: Instant, id: u64, result: UserLookup) {
        self.out.timer_moved();
        let Some(lookup) = self.lookups.finish(id) else {
            return; // given up already
        };
        let user = &lookup.username;
        match result {
            UserLookup::Found(keys) => self.cache.insert(user, Some(*keys), now),
            UserLookup::NotFound => self.cache.insert(user, None, now),
            UserLookup::Unavailable => {
                self.stats.user_lookup_failures += 1;
                if !self.cache.keep_through_outage(user, now) {
                    for (ft, bytes) in &lookup.held {
                        if let Ok(msg) = Message::parse(bytes) {
                            self.error(&Context::of(*ft, &msg), Reject::ServerError);
                        }
                    }
                    return;
                }
            }
        }
        for (ft, bytes) in &lookup.held {
            if let Ok(msg) = Message::parse(bytes) {
                self.request(now, *ft, &msg);
            }
        }
    }

    /// A 400 before authentication: rate-limited like the challenges, since the source is
    /// not known to be genuine.
    fn bad_request(&mut self, now: Instant, cx: &Context) -> Option<String> {
        self.stats.bad_requests += 1;
        if self.limiter.allow(cx.ft.client.ip(), now) {
            self.error(cx, Reject::BadRequest);
        } else {
            self.stats.challenges_rate_limited += 1;
        }
        None
    }

    /// 401 or 438 with REALM, a fresh NONCE and PASSWORD-ALGORITHMS (RFC 8489 §9.2.4), unless
    /// the source has had its share of answers (then the request is dropped).
    fn challenge(&mut self, now: Instant, cx: &Context, challenge: Challenge) {
        if !self.limiter.allow(cx.ft.client.ip(), now) {
            self.stats.challenges_rate_limited += 1;
            return;
        }
        let nonce = self.nonces.issue(now, cx.ft.client.ip());
        let realm = self.config.realm.clone();
        let code = match challenge {
            Challenge::Unauthenticated => 401,
            Challenge::StaleNonce => 438,
        };
        self.respond(cx, Class::ErrorResponse, |b| {
            b.add(&ErrorCode::new(code))?
                .add(&Realm(&realm))?
                .add(&Nonce(&nonce))?
                .add(&PasswordAlgorithms::new(&PASSWORD_ALGORITHMS))?;
            Ok(())
        });
    }

    /// The error response for `reject`, signed if the request was.
    pub(super) fn error(&mut self, cx: &Context, reject: Reject) {
        self.respond(cx, Class::ErrorResponse, |b| {
            b.add(&ErrorCode::new(reject.code()))?;
            if let Reject::UnknownAttributes(list) = &reject {
                b.add(&UnknownAttributes::new(list))?;
            }
            if let Reject::TryAlternate(server) = reject {
                b.add(&AlternateServer(server))?;
            }
            Ok(())
        });
    }

    /// Builds a response with `add`'s attributes, SOFTWARE, the request's kind of integrity
    /// and FINGERPRINT if the request had one; queues it and returns its length (the bytes
    /// stay in `self.buf` until the next response).
    pub(super) fn respond(
        &mut self,
        cx: &Context,
        class: Class,
        add: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
    ) -> Option<usize> {
        let mut buf = std::mem::take(&mut self.buf);
        let finish = Finish {
            software: self.config.software.as_deref(),
            integrity: cx.integrity.as_ref().map(|i| (&i.key, i.sha256)),
            fingerprint: cx.fingerprint || self.config.fingerprint,
        };
        let built = response::build(&mut buf, cx.method, class, cx.tid, finish, add);
        if let Ok(n) = built {
            self.send_to_client(cx.ft, buf[..n].to_vec());
        }
        self.buf = buf;
        built.ok()
    }

    /// Where to send an Allocate instead, if anywhere, with ALTERNATE-SERVERs configured for
    /// the client's transport (TLS or not): the next of them of the client's family that is
    /// not the address the client reached. With [`Redirect::Always`](super::Redirect) a
    /// server that finds itself in the list redirects nothing, as coturn (members of a fleet
    /// that list each other would send clients round in circles); with
    /// [`Redirect::WhenDraining`](super::Redirect) it sends them to the others while it drains.
    fn alternate(&mut self, ft: FiveTuple) -> Option<SocketAddr> {
        let list = if ft.transport == sans_io::Transport::Tls {
            &self.config.tls_alternate_servers
        } else {
            &self.config.alternate_servers
        };
        let own = |a: &SocketAddr| *a == ft.server || self.config.own_addresses.contains(a);
        let redirect = match self.config.redirect {
            super::Redirect::Always => !list.iter().any(own),
            super::Redirect::WhenDraining => self.draining,
        };
        if !redirect {
            return None;
        }
        let usable: Vec<SocketAddr> = list
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == ft.server.is_ipv4() && !own(a))
            .collect();
        if usable.is_empty() {
            return None;
        }
        let pick = usable[self.next_alternate % usable.len()];
        self.next_alternate = self.next_alternate.wrapping_add(1);
        Some(pick)
    }

    /// RFC 8656 §7.2 / §8: min(requested, max), but never below the default; 0 stays 0.
    fn lifetime(&self, msg: &Message<'_>) -> Result<Duration, Reject> {
        match msg.get::<Lifetime>() {
            Err(_) => Err(Reject::BadRequest),
            Ok(None) => Ok(self.config.default_lifetime),
            Ok(Some(Lifetime(0))) => Ok(Duration::ZERO),
            Ok(Some(Lifetime(s))) => Ok(Duration::from_secs(u64::from(s))
                .min(self.config.max_lifetime)
                .max(self.config.default_lifetime)),
        }
    }

    fn allocate(
        &mut self,
        now: Instant,
        cx: &Context,
        msg: &Message<'_>,
        username: String,
    ) -> Result<(), Reject> {
        let ft = cx.ft;
        if let Some(a) = self.live(ft, now) {
            if a.created_by == cx.tid {
                // A retransmission: the same answer (RFC 8656 §7.2).
                let data = a.response.to_vec();
                self.send_to_client(ft, data);
                return Ok(());
            }
            return Err(Reject::AllocationMismatch);
        }
        if self.pending.values().any(|p| p.request.ft == ft) {
            return Ok(()); // the answer is on its way
        }
        if let Some(alternate) = self.alternate(ft) {
            self.stats.redirected += 1;
            return Err(Reject::TryAlternate(alternate));
        }
        if self.draining {
            // coturn's drain mode answers 403 too ("Server is draining ... please try another
            // server"): clients move on to their next TURN server.
            self.stats.refused_draining += 1;
            return Err(Reject::Forbidden);
        }
        let tcp = match msg.get::<RequestedTransport>() {
            Ok(Some(RequestedTransport::UDP)) => false,
            // RFC 6062 §5.1: TCP relaying over a TCP or TLS control connection only (else
            // 400), and without what only UDP has (EVEN-PORT, RESERVATION-TOKEN: 400).
            Ok(Some(RequestedTransport::TCP)) if self.config.tcp_relay => {
                if !ft.transport.is_stream()
                    || msg.get_raw(AttributeType::EVEN_PORT).is_some()
                    || msg.get_raw(AttributeType::RESERVATION_TOKEN).is_some()
                {
                    return Err(Reject::BadRequest);
                }
                true
            }
            Ok(Some(_)) => return Err(Reject::UnsupportedTransportProtocol),
            _ => return Err(Reject::BadRequest),
        };
        let token = msg
            .get::<ReservationToken>()
            .map_err(|_| Reject::BadRequest)?;
        let even = msg.get::<EvenPort>().map_err(|_| Reject::BadRequest)?;
        // An unknown family is 440; a malformed attribute is 400.
        let family = match msg.get::<RequestedAddressFamily>() {
            Ok(f) => f.map(|f| f.0),
            Err(AttributeError::UnknownFamily { .. }) => {
                return Err(Reject::AddressFamilyNotSupported)
            }
            Err(_) => return Err(Reject::BadRequest),
        };
        let additional = match msg.get::<AdditionalAddressFamily>() {
            Ok(f) => f.map(|f| f.0),
            Err(AttributeError::UnknownFamily { .. }) => {
                return Err(Reject::AddressFamilyNotSupported)
            }
            Err(_) => return Err(Reject::BadRequest),
        };
        if token.is_some() && (even.is_some() || family.is_some()) {
            return Err(Reject::BadRequest);
        }
        // RFC 8656 §7.2: ADDITIONAL-ADDRESS-FAMILY asks for IPv6 besides IPv4, and goes with
        // neither REQUESTED-ADDRESS-FAMILY, RESERVATION-TOKEN nor EVEN-PORT with R set.
        if let Some(extra) = additional {
            if extra != AddressFamily::V6
                || family.is_some()
                || token.is_some()
                || even.is_some_and(|e| e.reserve)
            {
                return Err(Reject::BadRequest);
            }
        }
        // With a reservation token the reserved socket decides the family.
        let family = family.unwrap_or(AddressFamily::V4);
        if token.is_none() && !self.config.relay_families.contains(&family) {
            return Err(Reject::AddressFamilyNotSupported);
        }
        let lifetime = self.lifetime(msg)?;
        let user = quota_key(&username).to_owned();
        // A fleet's quotas are asked of the driver; a lone server's are counted here.
        let fleet = self.config.fleet_quota;
        if !fleet && self.over_local_quota(&user, None) {
            return Err(Reject::AllocationQuotaReached);
        }
        let id = self.next_id;
        self.next_id += 1;
        let relay_request = RelayRequest {
            id,
            five_tuple: ft,
            family,
            even_port: even.is_some(),
            reserve_next: even.is_some_and(|e| e.reserve),
            reservation: token.map(|t| t.0),
            tcp,
        };
        self.pending.insert(
            id,
            Pending {
                quota: if fleet { Quota::Asked } else { Quota::Local },
                relay_request,
                // RFC 8656 §7.2 step 9: both families, or the IPv4 one with
                // ADDRESS-ERROR-CODE 440 when there is no IPv6 relay address.
                dual: match additional {
                    None => Dual::No,
                    Some(_) if self.config.relay_families.contains(&AddressFamily::V6) => {
                        Dual::Wanted
                    }
                    Some(_) => Dual::Refused(440),
                },
                first: None,
                request: cx.clone(),
                username,
                lifetime: if lifetime.is_zero() {
                    self.config.default_lifetime
                } else {
                    lifetime
                },
            },
        );
        self.pending_deadlines
            .push_back((now + super::PENDING_TIMEOUT, id));
        self.out.request(if fleet {
            Request::ReserveQuota { id, user }
        } else {
            Request::AllocateRelay(relay_request)
        });
        Ok(())
    }

    pub(super) fn allocation_made(
        &mut self,
        now: Instant,
        p: Pending,
        relay: Relay,
        relay6: Option<SocketAddr>,
    ) {
        let cx = &p.request;
        let ft = cx.ft;
        let lifetime = p.lifetime;
        let response = self.respond(cx, Class::SuccessResponse, |b| {
            b.add(&XorRelayedAddress(relay.addr))?;
            if let Some(r6) = relay6 {
                b.add(&XorRelayedAddress(r6))?;
            }
            b.add(&Lifetime(lifetime.as_secs() as u32))?
                .add(&XorMappedAddress(ft.client))?;
            if let Some(t) = relay.reservation_token {
                b.add(&ReservationToken(t))?;
            }
            if let Dual::Refused(code) = p.dual {
                b.add(&AddressErrorCode {
                    family: AddressFamily::V6,
                    code,
                    reason: reason_phrase(code),
                })?;
            }
            Ok(())
        });
        let Some(n) = response else {
            for relay in std::iter::once(relay.addr).chain(relay6) {
                self.out.request(Request::ReleaseRelay { relay });
            }
            if p.quota == Quota::Held {
                let user = quota_key(&p.username).to_owned();
                self.out.request(Request::ReleaseQuota { user });
            }
            return;
        };
        // Kept for retransmissions of the request (RFC 8656 §7.2).
        let response = self.buf[..n].to_vec();
        *self
            .per_user
            .entry(quota_key(&p.username).to_owned())
            .or_insert(0) += 1;
        // One second's worth of burst.
        let budget = (self.config.max_bps > 0)
            .then(|| TokenBucket::new(self.config.max_bps, self.config.max_bps));
        let mut a = Allocation::new(
            ft,
            (relay.addr, relay6),
            p.username,
            now + lifetime,
            cx.tid,
            response,
            budget,
        );
        a.fleet_quota = p.quota == Quota::Held;
        a.tcp = p.relay_request.tcp;
        self.allocations.insert(a, now);
        self.stats.allocations_created += 1;
    }

    fn refresh(&mut self, now: Instant, cx: &Context, msg: &Message<'_>) -> Result<(), Reject> {
        let ft = cx.ft;
        let Some(a) = self.allocations.get(&ft) else {
            return Err(Reject::AllocationMismatch);
        };
        match msg.get::<RequestedAddressFamily>() {
            // RFC 8656 §8.2: a family the allocation does not have is 443; without the
            // attribute a dual allocation's Refresh covers both relayed addresses.
            Ok(Some(RequestedAddressFamily(f)))
                if !a.relays().any(|r| Self::address_family(r.ip()) == f) =>
            {
                return Err(Reject::PeerAddressFamilyMismatch)
            }
            Ok(_) => {}
            Err(_) => return Err(Reject::BadRequest),
        }
        let lifetime = self.lifetime(msg)?;
        if lifetime.is_zero() {
            self.delete(&ft);
        } else {
            self.allocations
                .update(&ft, now, |a| a.expires = now + lifetime);
        }
        self.respond(cx, Class::SuccessResponse, |b| {
            b.add(&Lifetime(lifetime.as_secs() as u32))?;
            Ok(())
        });
        Ok(())
    }

    /// The relayed addresses of `ft`'s allocation (437 if there is none), which must relay
    /// over TCP (RFC 6062) or UDP if `tcp` says which (else 400).
    pub(super) fn relays_of(
        &self,
        ft: FiveTuple,
        tcp: Option<bool>,
    ) -> Result<(SocketAddr, Option<SocketAddr>), Reject> {
        let a = self
            .allocations
            .get(&ft)
            .ok_or(Reject::AllocationMismatch)?;
        if tcp.is_some_and(|tcp| tcp != a.tcp) {
            return Err(Reject::BadRequest);
        }
        Ok((a.relay, a.relay6))
    }

    /// The peer checks CreatePermission and ChannelBind share: family (443: no relayed
    /// address of the peer's family, RFC 8656 §10.2) and policy (403).
    pub(super) fn check_peer(
        &self,
        relays: (SocketAddr, Option<SocketAddr>),
        peer: SocketAddr,
    ) -> Result<(), Reject> {
        if super::allocation::relay_for(relays, peer).is_none() {
            return Err(Reject::PeerAddressFamilyMismatch);
        }
        if self.config.peer_policy.check(peer.ip()).is_err() {
            return Err(Reject::Forbidden);
        }
        Ok(())
    }

    fn create_permission(
        &mut self,
        now: Instant,
        cx: &Context,
        msg: &Message<'_>,
    ) -> Result<(), Reject> {
        let ft = cx.ft;
        let relay = self.relays_of(ft, None)?;
        let peers = msg
            .get_all::<XorPeerAddress>()
            .map(|p| p.map(|p| p.0))
            .collect::<Result<Vec<SocketAddr>, _>>()
            .map_err(|_| Reject::BadRequest)?;
        if peers.is_empty() {
            return Err(Reject::BadRequest);
        }
        for peer in &peers {
            self.check_peer(relay, *peer)?;
        }
        let until = now + self.config.permission_lifetime;
        let max = self.config.max_permissions;
        self.allocations
            .update(&ft, now, |a| {
                // All or nothing: check the room for the new peers before installing any.
                let mut new: Vec<std::net::IpAddr> = peers
                    .iter()
                    .map(|p| p.ip())
                    .filter(|ip| !a.permits(*ip, now))
                    .collect();
                new.sort();
                new.dedup();
                let live = a.permissions.iter().filter(|p| p.expires > now).count();
                if live + new.len() > max {
                    return Err(Reject::InsufficientCapacity);
                }
                for peer in &peers {
                    a.permit(peer.ip(), until, now, max);
                }
                Ok(())
            })
            .ok_or(Reject::AllocationMismatch)??;
        self.respond(cx, Class::SuccessResponse, |_| Ok(()));
        Ok(())
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        cx: &Context,
        msg: &Message<'_>,
    ) -> Result<(), Reject> {
        let ft = cx.ft;
        // Channels are UDP relaying's (RFC 6062 §5).
        let relay = self.relays_of(ft, Some(false))?;
        let (Ok(Some(ChannelNumber(channel))), Ok(Some(XorPeerAddress(peer)))) =
            (msg.get::<ChannelNumber>(), msg.get::<XorPeerAddress>())
        else {
            return Err(Reject::BadRequest);
        };
        if !(ChannelNumber::MIN..=self.config.max_channel()).contains(&channel) {
            return Err(Reject::BadRequest);
        }
        self.check_peer(relay, peer)?;
        let config = &self.config;
        let (max_permissions, max_channels) = (config.max_permissions, config.max_channels);
        let channel_until = now + config.channel_lifetime;
        let permission_until = now + config.permission_lifetime;
        self.allocations
            .update(&ft, now, |a| {
                // RFC 8656 §12: a channel stays with its peer (even expired, for 5 minutes),
                // and a peer has at most one channel.
                if a.channels
                    .iter()
                    .any(|c| c.channel == channel && c.peer != peer)
                {
                    return Err(Reject::BadRequest);
                }
                if a.channels
                    .iter()
                    .any(|c| c.peer == peer && c.channel != channel && c.expires > now)
                {
                    return Err(Reject::BadRequest);
                }
                // The binding installs a permission too (§12.2): check there is room before
                // changing anything, so a 508 leaves no channel behind.
                if !a.can_permit(peer.ip(), now, max_permissions) {
                    return Err(Reject::InsufficientCapacity);
                }
                let known = a.channels.iter().any(|c| c.channel == channel);
                if !known && a.channels.iter().filter(|c| c.expires > now).count() >= max_channels {
                    return Err(Reject::InsufficientCapacity);
                }
                a.bind(channel, peer, channel_until);
                if !a.permit(peer.ip(), permission_until, now, max_permissions) {
                    return Err(Reject::InsufficientCapacity);
                }
                Ok(())
            })
            .ok_or(Reject::AllocationMismatch)??;
        self.respond(cx, Class::SuccessResponse, |_| Ok(()));
        Ok(())
    }
}
