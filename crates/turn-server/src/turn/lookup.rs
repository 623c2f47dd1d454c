//! Users from a database: the core asks its driver for a user's key
//! ([`Request::LookupUser`](super::Request::LookupUser)) and holds the request until the answer
//! comes ([`TurnServer::user_looked_up`](super::TurnServer::user_looked_up)), so no database
//! call ever runs on the packet path. Answers are cached per user; a user asked for by
//! several requests at once is looked up once.
//!
//! What the cache does when the database cannot answer: a user seen before keeps the key it
//! had (so the Refresh of a live allocation goes on working through an outage); a user never
//! seen gets 500 (Server Error, RFC 8489 §14.8: "a temporary error ... try again").
//!
//! Bounds, since these requests are not yet authenticated: a lookup is made only for a
//! request whose nonce this server issued to its address (so a source must first have had a
//! rate-limited 401), each lookup spends one of the source's challenge tokens, at most
//! [`MAX_HELD`] requests wait at once, and the cache holds at most [`CACHE_CAPACITY`] users.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::FiveTuple;
use crate::auth::UserKeys;

/// Requests waiting for a lookup, in all (beyond, new ones are dropped and counted).
pub(super) const MAX_HELD: usize = 1024;
/// Users the cache holds.
pub(super) const CACHE_CAPACITY: usize = 65_536;
/// A lookup that has not come back by then is answered as the database being down.
pub(super) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long "no such user" is believed.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// How long a key kept through an outage is used before the database is asked again.
const STALE_RETRY: Duration = Duration::from_secs(10);
/// The longest request held (a TURN request over TCP may be larger than a datagram, but not
/// by much: every attribute a request carries is small).
pub(super) const MAX_REQUEST: usize = 4096;

/// What the driver found for a [`Request::LookupUser`](super::Request::LookupUser).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UserLookup {
    /// The user and their stored key.
    Found(Box<UserKeys>),
    /// No such user in the realm.
    NotFound,
    /// The database did not answer (down, unreachable, an error): the driver logs why.
    Unavailable,
}

/// What the cache knows of a user.
pub(super) enum Cached<'a> {
    /// A fresh answer: the keys, or `None` for no such user.
    Fresh(Option<&'a UserKeys>),
    /// Nothing fresh: ask the database.
    Ask,
}

#[derive(Debug)]
struct Entry {
    keys: Option<UserKeys>,
    fresh_until: Instant,
}

/// Users' keys as the database last gave them.
#[derive(Debug)]
pub(super) struct UserCache {
    entries: HashMap<String, Entry>,
    ttl: Duration,
}

impl UserCache {
    pub(super) fn new(ttl: Duration) -> UserCache {
        UserCache {
            entries: HashMap::new(),
            ttl,
        }
    }

    pub(super) fn get(&self, username: &str, now: Instant) -> Cached<'_> {
        match self.entries.get(username) {
            Some(e) if e.fresh_until > now => Cached::Fresh(e.keys.as_ref()),
            _ => Cached::Ask,
        }
    }

    /// Stores an answer; room is always made, so the held requests replayed after it find it.
    pub(super) fn insert(&mut self, username: &str, keys: Option<UserKeys>, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY && !self.entries.contains_key(username) {
            self.entries.retain(|_, e| e.fresh_until > now);
            if self.entries.len() >= CACHE_CAPACITY {
                if let Some(k) = self.entries.keys().next().cloned() {
                    self.entries.remove(&k);
                }
            }
        }
        let ttl = if keys.is_some() {
            self.ttl
        } else {
            NEGATIVE_TTL.min(self.ttl)
        };
        self.entries.insert(
            username.to_owned(),
            Entry {
                keys,
                fresh_until: now + ttl,
            },
        );
    }

    /// The database is down: a user it gave a key before keeps it for a while. False if
    /// there is no such key to fall back on.
    pub(super) fn keep_through_outage(&mut self, username: &str, now: Instant) -> bool {
        match self.entries.get_mut(username) {
            Some(e) if e.keys.is_some() => {
                e.fresh_until = now + STALE_RETRY;
                true
            }
            _ => false,
        }
    }

    /// Forgets everything (a reload: users may have been removed).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(super) fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }
}

/// One lookup in flight and the requests waiting on it.
#[derive(Debug)]
pub(super) struct Lookup {
    pub(super) username: String,
    pub(super) held: Vec<(FiveTuple, Vec<u8>)>,
}

/// The lookups in flight.
#[derive(Debug, Default)]
pub(super) struct Lookups {
    by_id: HashMap<u64, Lookup>,
    by_name: HashMap<String, u64>,
    /// When each is given up, in the order they were made (one timeout for all).
    deadlines: VecDeque<(Instant, u64)>,
    held: usize,
}

/// What [`Lookups::hold`] did.
pub(super) enum Held {
    /// A new lookup: ask the driver with this id.
    New(u64),
    /// Joined a lookup already asked for.
    Joined,
    /// Too many requests wait already: dropped.
    Full,
}

impl Lookups {
    /// Holds a request until `username` is looked up; `next_id` names a new lookup.
    pub(super) fn hold(
        &mut self,
        now: Instant,
        username: &str,
        ft: FiveTuple,
        request: &[u8],
        next_id: &mut u64,
    ) -> Held {
        if self.held >= MAX_HELD || request.len() > MAX_REQUEST {
            return Held::Full;
        }
        self.held += 1;
        if let Some(id) = self.by_name.get(username) {
            if let Some(l) = self.by_id.get_mut(id) {
                l.held.push((ft, request.to_vec()));
                return Held::Joined;
            }
        }
        let id = *next_id;
        *next_id += 1;
        self.by_name.insert(username.to_owned(), id);
        self.by_id.insert(
            id,
            Lookup {
                username: username.to_owned(),
                held: vec![(ft, request.to_vec())],
            },
        );
        self.deadlines.push_back((now + LOOKUP_TIMEOUT, id));
        Held::New(id)
    }

    /// The lookup `id` is over: its user and held requests.
    pub(super) fn finish(&mut self, id: u64) -> Option<Lookup> {
        let l = self.by_id.remove(&id)?;
        self.by_name.remove(&l.username);
        self.held -= l.held.len();
        while let Some(&(_, front)) = self.deadlines.front() {
            if self.by_id.contains_key(&front) {
                break;
            }
            self.deadlines.pop_front();
        }
        Some(l)
    }

    /// A lookup whose time is up by `now`, if any.
    pub(super) fn expired(&mut self, now: Instant) -> Option<u64> {
        while let Some(&(t, id)) = self.deadlines.front() {
            if !self.by_id.contains_key(&id) {
                self.deadlines.pop_front();
                continue;
            }
            return (t <= now).then_some(id);
        }
        None
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.front().map(|&(t, _)| t)
    }

    /// A connection closed: its held requests go (nothing to answer them on).
    pub(super) fn forget(&mut self, ft: FiveTuple) {
        for l in self.by_id.values_mut() {
            let before = l.held.len();
            l.held.retain(|(f, _)| *f != ft);
            self.held -= before - l.held.len();
        }
    }
}
