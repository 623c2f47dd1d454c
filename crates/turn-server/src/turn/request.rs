//! Requests: authentication (RFC 8489 §9.2.4) and Allocate, Refresh, CreatePermission and
//! ChannelBind (RFC 8656 §7–§12), with their error codes where the RFCs put them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_codec::attr::{
    reason_phrase, AdditionalAddressFamily, AddressErrorCode, AddressFamily, AttributeType,
    ChannelNumber, ErrorCode, EvenPort, Lifetime, Nonce, PasswordAlgorithm, PasswordAlgorithms,
    Realm, RequestedAddressFamily, RequestedTransport, ReservationToken, UnknownAttributes,
    UserHash, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use stun_codec::{
    AttributeError, BuildError, Class, IntegrityKey, Message, MessageBuilder, Method, TransactionId,
};

use super::{
    quota_key, Allocation, ChannelBinding, FiveTuple, Output, Pending, Relay, RelayRequest,
    TurnServer,
};
use crate::auth::{NonceError, UserKeys, PASSWORD_ALGORITHMS};
use crate::response::{self, Finish};

/// How a request was authenticated, so its response is protected the same way.
#[derive(Debug, Clone)]
pub(super) struct Integrity {
    key: IntegrityKey,
    /// The request used MESSAGE-INTEGRITY-SHA256.
    sha256: bool,
}

/// An authenticated request's user and how to protect its answer; `None` when the request
/// has already been answered (401, 438 or 400).
type Auth = Option<(String, Integrity)>;

/// The comprehension-required attributes a TURN request may carry and this server processes.
/// Known to the codec but not processed here — RFC 5780's CHANGE-REQUEST, RESPONSE-PORT,
/// PADDING, ICE's PRIORITY and USE-CANDIDATE, RFC 6062's CONNECTION-ID, and DONT-FRAGMENT
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
            AttributeType::CONNECTION_ID,
            // RFC 8656 §7.2: a server that cannot set DF treats DONT-FRAGMENT as unknown
            // (420); the driver sends with the kernel's own path-MTU setting, so it does.
            AttributeType::DONT_FRAGMENT,
        ]
        .contains(&t)
}

impl TurnServer {
    pub(super) fn request(&mut self, now: Instant, ft: FiveTuple, msg: &Message<'_>) {
        let method = msg.message_type().method;
        let tid = msg.transaction_id();
        let fp = msg.has_fingerprint();
        if fp && msg.verify_fingerprint().is_err() {
            return; // RFC 8489 §7.3: discard
        }
        let Some((username, integrity)) = self.authenticate(now, ft, msg) else {
            return;
        };
        let unknown: Vec<AttributeType> = msg
            .unknown_comprehension_required(understood)
            .take(16)
            .collect();
        if !unknown.is_empty() {
            self.respond(
                ft,
                method,
                Class::ErrorResponse,
                tid,
                Some(&integrity),
                fp,
                |b| {
                    b.add(&ErrorCode::new(420))?
                        .add(&UnknownAttributes::new(&unknown))?;
                    Ok(())
                },
            );
            return;
        }
        let outcome = match method {
            Method::ALLOCATE => self.allocate(now, ft, msg, username, &integrity),
            Method::REFRESH | Method::CREATE_PERMISSION | Method::CHANNEL_BIND => {
                // The allocation must be live and the request from the user who made it
                // (RFC 8656 §5: else 441).
                match self.live(ft, now).map(|a| a.username == username) {
                    None => Err(437),
                    Some(false) => Err(441),
                    Some(true) => match method {
                        Method::REFRESH => self.refresh(now, ft, msg, &integrity),
                        Method::CREATE_PERMISSION => {
                            self.create_permission(now, ft, msg, &integrity)
                        }
                        _ => self.channel_bind(now, ft, msg, &integrity),
                    },
                }
            }
            _ => Err(400),
        };
        if let Err(code) = outcome {
            if code == 400 {
                self.stats.bad_requests += 1;
            }
            self.error(ft, method, tid, code, Some(&integrity), fp);
        }
    }

    /// RFC 8489 §9.2.4, in its order: no integrity → 401; missing USERNAME/USERHASH, REALM or
    /// NONCE → 400; PASSWORD-ALGORITHMS checks → 400; unknown user or bad integrity → 401;
    /// a nonce no longer valid → 438. Nothing is stored for the client here.
    fn authenticate(&mut self, now: Instant, ft: FiveTuple, msg: &Message<'_>) -> Auth {
        let method = msg.message_type().method;
        let tid = msg.transaction_id();
        let fp = msg.has_fingerprint();
        let sha256 = msg.has_integrity_sha256();
        if !msg.has_integrity() && !sha256 {
            self.stats.auth_unauthenticated += 1;
            self.challenge(now, ft, method, tid, 401, fp);
            return None;
        }
        let username = msg.get::<Username>().ok().flatten();
        let userhash = msg.get::<UserHash>().ok().flatten();
        let realm = msg.get::<Realm>().ok().flatten();
        let nonce = msg.get::<Nonce>().ok().flatten();
        let (Some(_), Some(nonce)) = (realm, nonce) else {
            return self.bad_request(now, ft, method, tid, fp);
        };
        if username.is_none() && userhash.is_none() {
            return self.bad_request(now, ft, method, tid, fp);
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
                    return self.bad_request(now, ft, method, tid, fp);
                }
                Some(choice.algorithm)
            }
            _ => return self.bad_request(now, ft, method, tid, fp),
        };
        // Candidate keys: a static user, or TURN REST credentials under each secret.
        let candidates: Vec<UserKeys> = match (username, userhash) {
            (_, Some(UserHash(h))) => self.users.by_hash(&h).cloned().into_iter().collect(),
            (Some(Username(u)), None) => match self.users.by_name(u) {
                Some(k) => vec![k.clone()],
                None => self.rest.keys(u, &self.config.realm, self.unix(now)),
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
        let Some(verified) = verified else {
            self.stats.auth_wrong_credentials += 1;
            self.challenge(now, ft, method, tid, 401, fp);
            return None;
        };
        if let Err(NonceError::Stale | NonceError::Invalid) =
            self.nonces.check(nonce.0, now, ft.client.ip())
        {
            self.stats.auth_stale_nonce += 1;
            self.challenge(now, ft, method, tid, 438, fp);
            return None;
        }
        Some(verified)
    }

    /// A 400 before authentication: rate-limited like the challenges, since the source is
    /// not known to be genuine.
    fn bad_request(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        method: Method,
        tid: TransactionId,
        fp: bool,
    ) -> Auth {
        self.stats.bad_requests += 1;
        if self.limiter.allow(ft.client.ip(), now) {
            self.error(ft, method, tid, 400, None, fp);
        } else {
            self.stats.challenges_rate_limited += 1;
        }
        None
    }

    /// 401 or 438 with REALM, a fresh NONCE and PASSWORD-ALGORITHMS (RFC 8489 §9.2.4), unless
    /// the source has had its share of answers (then the request is dropped).
    fn challenge(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        method: Method,
        tid: TransactionId,
        code: u16,
        fp: bool,
    ) {
        if !self.limiter.allow(ft.client.ip(), now) {
            self.stats.challenges_rate_limited += 1;
            return;
        }
        let nonce = self.nonces.issue(now, ft.client.ip());
        let realm = self.config.realm.clone();
        self.respond(ft, method, Class::ErrorResponse, tid, None, fp, |b| {
            b.add(&ErrorCode::new(code))?
                .add(&Realm(&realm))?
                .add(&Nonce(&nonce))?
                .add(&PasswordAlgorithms::new(&PASSWORD_ALGORITHMS))?;
            Ok(())
        });
    }

    pub(super) fn error(
        &mut self,
        ft: FiveTuple,
        method: Method,
        tid: TransactionId,
        code: u16,
        integrity: Option<&Integrity>,
        fp: bool,
    ) {
        self.respond(ft, method, Class::ErrorResponse, tid, integrity, fp, |b| {
            b.add(&ErrorCode::new(code))?;
            Ok(())
        });
    }

    /// Builds a response with `add`'s attributes, SOFTWARE, the request's kind of integrity
    /// and FINGERPRINT if the request had one; queues it and returns its length (the bytes
    /// stay in `self.buf` until the next response).
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        ft: FiveTuple,
        method: Method,
        class: Class,
        tid: TransactionId,
        integrity: Option<&Integrity>,
        fp: bool,
        add: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
    ) -> Option<usize> {
        let mut buf = std::mem::take(&mut self.buf);
        let finish = Finish {
            software: self.config.software.as_deref(),
            integrity: integrity.map(|i| (&i.key, i.sha256)),
            fingerprint: fp || self.config.fingerprint,
        };
        let built = response::build(&mut buf, method, class, tid, finish, add);
        if let Ok(n) = built {
            self.out.push_back(Output::ToClient {
                five_tuple: ft,
                data: buf[..n].to_vec(),
            });
        }
        self.buf = buf;
        built.ok()
    }

    /// RFC 8656 §7.2 / §8: min(requested, max), but never below the default; 0 stays 0.
    fn lifetime(&self, msg: &Message<'_>) -> Result<Duration, u16> {
        match msg.get::<Lifetime>() {
            Err(_) => Err(400),
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
        ft: FiveTuple,
        msg: &Message<'_>,
        username: String,
        integrity: &Integrity,
    ) -> Result<(), u16> {
        let tid = msg.transaction_id();
        if let Some(a) = self.live(ft, now) {
            if a.created_by == tid {
                // A retransmission: the same answer (RFC 8656 §7.2).
                let data = a.response.clone();
                self.out.push_back(Output::ToClient {
                    five_tuple: ft,
                    data,
                });
                return Ok(());
            }
            return Err(437);
        }
        if self.pending.values().any(|p| p.five_tuple == ft) {
            return Ok(()); // the answer is on its way
        }
        match msg.get::<RequestedTransport>() {
            Ok(Some(RequestedTransport::UDP)) => {}
            Ok(Some(_)) => return Err(442),
            _ => return Err(400),
        }
        let token = msg.get::<ReservationToken>().map_err(|_| 400u16)?;
        let even = msg.get::<EvenPort>().map_err(|_| 400u16)?;
        // An unknown family is 440; a malformed attribute is 400.
        let family = match msg.get::<RequestedAddressFamily>() {
            Ok(f) => f.map(|f| f.0),
            Err(AttributeError::UnknownFamily { .. }) => return Err(440),
            Err(_) => return Err(400),
        };
        let additional = match msg.get::<AdditionalAddressFamily>() {
            Ok(f) => f.map(|f| f.0),
            Err(AttributeError::UnknownFamily { .. }) => return Err(440),
            Err(_) => return Err(400),
        };
        if token.is_some() && (even.is_some() || family.is_some()) {
            return Err(400);
        }
        // RFC 8656 §7.2: ADDITIONAL-ADDRESS-FAMILY asks for IPv6 besides IPv4, and goes with
        // neither REQUESTED-ADDRESS-FAMILY, RESERVATION-TOKEN nor EVEN-PORT with R set.
        if let Some(extra) = additional {
            if extra != AddressFamily::V6
                || family.is_some()
                || token.is_some()
                || even.is_some_and(|e| e.reserve)
            {
                return Err(400);
            }
        }
        // With a reservation token the reserved socket decides the family.
        let family = family.unwrap_or(AddressFamily::V4);
        if token.is_none() && !self.config.relay_families.contains(&family) {
            return Err(440);
        }
        let lifetime = self.lifetime(msg)?;
        let user = quota_key(&username);
        let user_count = self.per_user.get(user).copied().unwrap_or(0)
            + self
                .pending
                .values()
                .filter(|p| quota_key(&p.username) == user)
                .count();
        if (self.config.total_quota > 0
            && self.allocations.len() + self.pending.len() >= self.config.total_quota)
            || (self.config.user_quota > 0 && user_count >= self.config.user_quota)
        {
            return Err(486);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                queued: now,
                dual_refused: additional.is_some(),
                five_tuple: ft,
                tid,
                username,
                lifetime: if lifetime.is_zero() {
                    self.config.default_lifetime
                } else {
                    lifetime
                },
                integrity: integrity.clone(),
                fingerprint: msg.has_fingerprint(),
            },
        );
        self.out.push_back(Output::AllocateRelay(RelayRequest {
            id,
            five_tuple: ft,
            family,
            even_port: even.is_some(),
            reserve_next: even.is_some_and(|e| e.reserve),
            reservation: token.map(|t| t.0),
        }));
        Ok(())
    }

    pub(super) fn allocation_made(&mut self, now: Instant, p: Pending, relay: Relay) {
        let ft = p.five_tuple;
        let lifetime = p.lifetime;
        let response = self.respond(
            ft,
            Method::ALLOCATE,
            Class::SuccessResponse,
            p.tid,
            Some(&p.integrity),
            p.fingerprint,
            |b| {
                b.add(&XorRelayedAddress(relay.addr))?
                    .add(&Lifetime(lifetime.as_secs() as u32))?
                    .add(&XorMappedAddress(ft.client))?;
                if let Some(t) = relay.reservation_token {
                    b.add(&ReservationToken(t))?;
                }
                if p.dual_refused {
                    b.add(&AddressErrorCode {
                        family: AddressFamily::V6,
                        code: 440,
                        reason: reason_phrase(440),
                    })?;
                }
                Ok(())
            },
        );
        let Some(n) = response else {
            self.out
                .push_back(Output::ReleaseRelay { relay: relay.addr });
            return;
        };
        // Kept for retransmissions of the request (RFC 8656 §7.2).
        let response = self.buf[..n].to_vec();
        *self
            .per_user
            .entry(quota_key(&p.username).to_owned())
            .or_insert(0) += 1;
        self.allocations.insert(Allocation {
            five_tuple: ft,
            relay: relay.addr,
            username: p.username,
            expires: now + lifetime,
            created_by: p.tid,
            response,
            permissions: Vec::new(),
            channels: Vec::new(),
            // One second's worth of burst.
            budget: (self.config.max_bps > 0)
                .then(|| super::TokenBucket::new(self.config.max_bps, self.config.max_bps)),
        });
        self.stats.allocations_created += 1;
    }

    fn refresh(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        msg: &Message<'_>,
        integrity: &Integrity,
    ) -> Result<(), u16> {
        let Some(a) = self.allocations.get(&ft) else {
            return Err(437);
        };
        match msg.get::<RequestedAddressFamily>() {
            Ok(Some(RequestedAddressFamily(f))) if f != Self::address_family(a.relay.ip()) => {
                return Err(443)
            }
            Ok(_) => {}
            Err(_) => return Err(400),
        }
        let lifetime = self.lifetime(msg)?;
        if lifetime.is_zero() {
            self.delete(&ft);
        } else if let Some(a) = self.allocations.get_mut(&ft) {
            a.expires = now + lifetime;
        }
        self.respond(
            ft,
            Method::REFRESH,
            Class::SuccessResponse,
            msg.transaction_id(),
            Some(integrity),
            msg.has_fingerprint(),
            |b| {
                b.add(&Lifetime(lifetime.as_secs() as u32))?;
                Ok(())
            },
        );
        Ok(())
    }

    /// The peer checks CreatePermission and ChannelBind share: family (443) and policy (403).
    fn check_peer(&self, relay: SocketAddr, peer: SocketAddr) -> Result<(), u16> {
        if peer.is_ipv4() != relay.is_ipv4() {
            return Err(443);
        }
        if self.config.peer_policy.check(peer.ip()).is_err() {
            return Err(403);
        }
        Ok(())
    }

    fn create_permission(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        msg: &Message<'_>,
        integrity: &Integrity,
    ) -> Result<(), u16> {
        let Some(relay) = self.allocations.get(&ft).map(|a| a.relay) else {
            return Err(437);
        };
        let peers = msg
            .get_all::<XorPeerAddress>()
            .map(|p| p.map(|p| p.0))
            .collect::<Result<Vec<SocketAddr>, _>>()
            .map_err(|_| 400u16)?;
        if peers.is_empty() {
            return Err(400);
        }
        for peer in &peers {
            self.check_peer(relay, *peer)?;
        }
        let until = now + self.config.permission_lifetime;
        let max = self.config.max_permissions;
        let a = self.allocations.get_mut(&ft).expect("checked above");
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
            return Err(508);
        }
        for peer in &peers {
            a.permit(peer.ip(), until, now, max);
        }
        self.respond(
            ft,
            Method::CREATE_PERMISSION,
            Class::SuccessResponse,
            msg.transaction_id(),
            Some(integrity),
            msg.has_fingerprint(),
            |_| Ok(()),
        );
        Ok(())
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        msg: &Message<'_>,
        integrity: &Integrity,
    ) -> Result<(), u16> {
        let Some(relay) = self.allocations.get(&ft).map(|a| a.relay) else {
            return Err(437);
        };
        let (Ok(Some(ChannelNumber(channel))), Ok(Some(XorPeerAddress(peer)))) =
            (msg.get::<ChannelNumber>(), msg.get::<XorPeerAddress>())
        else {
            return Err(400);
        };
        if !ChannelNumber(channel).is_valid() {
            return Err(400);
        }
        self.check_peer(relay, peer)?;
        let a = self.allocations.get_mut(&ft).expect("checked above");
        // RFC 8656 §12: a channel stays with its peer (even expired, for 5 minutes), and a peer
        // has at most one channel.
        if a.channels
            .iter()
            .any(|c| c.channel == channel && c.peer != peer)
        {
            return Err(400);
        }
        if a.channels
            .iter()
            .any(|c| c.peer == peer && c.channel != channel && c.expires > now)
        {
            return Err(400);
        }
        // The binding installs a permission too (§12.2): check there is room before changing
        // anything, so a 508 leaves no channel behind.
        if !a.can_permit(peer.ip(), now, self.config.max_permissions) {
            return Err(508);
        }
        let until = now + self.config.channel_lifetime;
        match a.channels.iter_mut().find(|c| c.channel == channel) {
            Some(c) => c.expires = until,
            None => {
                if a.channels.iter().filter(|c| c.expires > now).count() >= self.config.max_channels
                {
                    return Err(508);
                }
                super::allocation::push_exact(
                    &mut a.channels,
                    ChannelBinding {
                        channel,
                        peer,
                        expires: until,
                    },
                );
            }
        }
        let until = now + self.config.permission_lifetime;
        if !a.permit(peer.ip(), until, now, self.config.max_permissions) {
            return Err(508);
        }
        self.respond(
            ft,
            Method::CHANNEL_BIND,
            Class::SuccessResponse,
            msg.transaction_id(),
            Some(integrity),
            msg.has_fingerprint(),
            |_| Ok(()),
        );
        Ok(())
    }
}
