//! The user database's thread: every database call of the server runs here, never on a
//! worker. Workers send it lookups ([`Request::LookupUser`](crate::turn::Request::LookupUser))
//! and get the answers back on their control channel. It also reads the realm's REST secrets,
//! options and peer lists at start, on each reload and every [`REFRESH`], and hands the
//! workers the configuration with them merged in.
//!
//! A database that is down is reconnected at most once a second; meanwhile lookups fail at
//! once (the core answers 500 to users it has never seen, and keeps the key of those it has),
//! and the realm data last read stays in force. The first failure is logged as a warning, and
//! again every 30 s while it lasts, and the recovery once.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Broadcast, Reloadable};
use crate::auth::{RestSecrets, UserKeys};
use crate::peer_policy::IpRange;
use crate::turn::UserLookup;
use crate::userdb::{RealmData, UserDb, UserDbLocation};

/// How often the realm's secrets, options and peer lists are read again.
pub(super) const REFRESH: Duration = Duration::from_secs(30);
/// The least time between two attempts to connect.
const RECONNECT: Duration = Duration::from_secs(1);
/// How often a lasting outage is logged again.
const LOG_EVERY: Duration = Duration::from_secs(30);
/// How often a fleet member says it is alive (and reads the others' counts), as a part of
/// `fleet-dead-after`: five heartbeats missed, and a member is gone.
const HEARTBEATS_PER_DEATH: u32 = 5;

/// Work for the database thread.
#[derive(Debug)]
pub(super) enum Job {
    /// Look a user up for a worker.
    Lookup {
        worker: usize,
        id: u64,
        username: String,
    },
    /// A new configuration (a reload): merge the realm data into it and hand it out.
    Reload(Box<Reloadable>),
    /// Take one allocation of the fleet's quota for `user`.
    Reserve {
        worker: usize,
        id: u64,
        user: String,
    },
    /// Give one back.
    Release { user: String },
}

/// This server as a member of a fleet sharing quotas through the database.
struct Fleet {
    name: String,
    /// A member not heard from for this long is gone: its quota comes back to the fleet.
    dead_after: Duration,
    /// The local allocation count, for the heartbeat.
    metrics: super::Metrics,
    /// Releases the database could not take (down): retried with the next heartbeat, so
    /// quota is never lost.
    unreleased: Vec<String>,
    /// Whether joining (clearing this name's rows of an earlier life) has been done.
    joined: bool,
    /// What this server holds per user, as granted and given back: written again if the
    /// others gave the server up as dead while it was cut off.
    held: std::collections::HashMap<String, u64>,
}

struct Thread {
    at: UserDbLocation,
    db: Option<UserDb>,
    last_attempt: Option<Instant>,
    /// Since when the database has been failing, and when that was last logged.
    down: Option<(Instant, Instant)>,
    base: Reloadable,
    realm: Option<RealmData>,
    broadcast: Broadcast,
    fleet: Option<Fleet>,
}

/// Opens the database and reads the realm data now, so the workers start with it: the
/// configuration to start with, and the thread, which runs until every sender of its queue
/// is gone. A database that cannot be reached now is logged and tried again later.
pub(super) fn start(
    at: UserDbLocation,
    base: Reloadable,
    broadcast: Broadcast,
    fleet: Option<(String, Duration, super::Metrics)>,
) -> std::io::Result<(Reloadable, Sender<Job>, JoinHandle<()>)> {
    let mut t = Thread {
        at,
        db: None,
        last_attempt: None,
        down: None,
        base,
        realm: None,
        broadcast,
        fleet: fleet.map(|(name, dead_after, metrics)| Fleet {
            name,
            dead_after,
            metrics,
            unreleased: Vec::new(),
            joined: false,
            held: Default::default(),
        }),
    };
    t.read_realm();
    t.heartbeat();
    let first = t.merged();
    if t.down.is_none() {
        info!(db = %t.at, "user database open");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("userdb".into())
        .spawn(move || run(t, rx))?;
    Ok((first, tx, thread))
}

fn run(mut t: Thread, jobs: Receiver<Job>) {
    let mut next_refresh = Instant::now() + REFRESH;
    let heartbeat = t.fleet.as_ref().map_or(REFRESH, |f| {
        (f.dead_after / HEARTBEATS_PER_DEATH).max(Duration::from_millis(200))
    });
    let mut next_heartbeat = Instant::now() + heartbeat;
    loop {
        let now = Instant::now();
        if t.fleet.is_some() && now >= next_heartbeat {
            t.heartbeat();
            next_heartbeat = now + heartbeat;
        }
        let mut next = next_refresh;
        if t.fleet.is_some() {
            next = next.min(next_heartbeat);
        }
        let wait = next.saturating_duration_since(Instant::now());
        match jobs.recv_timeout(wait) {
            Ok(Job::Reserve { worker, id, user }) => {
                let answer = t.reserve(&user);
                t.broadcast
                    .send(worker, super::Control::QuotaReserved { id, answer });
            }
            Ok(Job::Release { user }) => t.release(user),
            Ok(Job::Lookup {
                worker,
                id,
                username,
            }) => {
                let result = t.lookup(&username);
                t.broadcast
                    .send(worker, super::Control::LookedUp { id, result });
            }
            Ok(Job::Reload(base)) => {
                t.base = *base;
                t.refresh(true);
            }
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= next_refresh {
                    t.refresh(false);
                    next_refresh = Instant::now() + REFRESH;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                t.leave();
                return;
            }
        }
    }
}

impl Thread {
    /// The connection, (re)opened if it is not there and the last attempt is a second old.
    fn db(&mut self) -> Option<&mut UserDb> {
        if self.db.is_none() {
            let now = Instant::now();
            if self
                .last_attempt
                .is_some_and(|t| now.duration_since(t) < RECONNECT)
            {
                return None;
            }
            self.last_attempt = Some(now);
            match UserDb::open(&self.at) {
                Ok(db) => self.db = Some(db),
                Err(e) => {
                    self.failed(&e);
                    return None;
                }
            }
        }
        self.db.as_mut()
    }

    fn failed(&mut self, e: &dyn std::fmt::Display) {
        self.db = None;
        let now = Instant::now();
        match self.down {
            None => {
                warn!(
                    db = %self.at, error = %e,
                    "user database unavailable: users not seen before cannot authenticate (500) \
                     until it is back; allocations go on relaying"
                );
                self.down = Some((now, now));
            }
            Some((since, logged)) if now.duration_since(logged) >= LOG_EVERY => {
                warn!(db = %self.at, error = %e, down_for_s = now.duration_since(since).as_secs(), "user database still unavailable");
                self.down = Some((since, now));
            }
            Some(_) => {}
        }
    }

    fn succeeded(&mut self) {
        if let Some((since, _)) = self.down.take() {
            info!(db = %self.at, down_for_s = since.elapsed().as_secs(), "user database is back");
        }
    }

    fn lookup(&mut self, username: &str) -> UserLookup {
        let realm = self.base.turn.realm.clone();
        let Some(db) = self.db() else {
            return UserLookup::Unavailable;
        };
        match db.user_key(&realm, username) {
            Ok(Some(hex)) => {
                self.succeeded();
                match UserKeys::from_stored(username, &hex) {
                    Ok(keys) => UserLookup::Found(Box::new(keys)),
                    Err(e) => {
                        warn!(user = %username, error = %e, "turnusers_lt: unusable hmackey");
                        UserLookup::NotFound
                    }
                }
            }
            Ok(None) => {
                self.succeeded();
                debug!(user = %username, "no such user in the database");
                UserLookup::NotFound
            }
            Err(e) => {
                self.failed(&e);
                UserLookup::Unavailable
            }
        }
    }

    /// Reads the realm data (what was read last stays when the database cannot answer);
    /// whether it changed.
    fn read_realm(&mut self) -> bool {
        let realm = self.base.turn.realm.clone();
        let read = self.db().map(|db| db.realm_data(&realm));
        match read {
            Some(Ok(data)) => {
                self.succeeded();
                let changed = self.realm.as_ref() != Some(&data);
                self.realm = Some(data);
                changed
            }
            Some(Err(e)) => {
                self.failed(&e);
                false
            }
            None => false,
        }
    }

    /// Reads the realm data; hands out the merged configuration if it changed (or `always`).
    fn refresh(&mut self, always: bool) {
        if self.read_realm() || always {
            self.broadcast.reconfigure(&self.merged());
        }
    }

    /// Takes one of the fleet's allocations for `user` under the merged quotas (the whole
    /// fleet's, not split between workers).
    fn reserve(&mut self, user: &str) -> crate::turn::QuotaAnswer {
        use crate::turn::QuotaAnswer;
        let merged = self.merged();
        let (uq, tq) = (
            merged.turn.user_quota as u64,
            merged.turn.total_quota as u64,
        );
        let Some(name) = self.fleet.as_ref().map(|f| f.name.clone()) else {
            return QuotaAnswer::Unavailable;
        };
        let dead_after = self.fleet.as_ref().map_or(0, |f| f.dead_after.as_secs());
        let alive_since = unix_now().saturating_sub(dead_after);
        if !self.joined() {
            return QuotaAnswer::Unavailable;
        }
        let Some(db) = self.db() else {
            return QuotaAnswer::Unavailable;
        };
        match db.fleet_reserve(&name, user, uq, tq, alive_since) {
            Ok(true) => {
                if let Some(f) = &mut self.fleet {
                    *f.held.entry(user.to_owned()).or_default() += 1;
                }
                QuotaAnswer::Granted
            }
            Ok(false) => {
                debug!(user, "fleet quota reached");
                QuotaAnswer::Refused
            }
            Err(e) => {
                self.failed(&e);
                QuotaAnswer::Unavailable
            }
        }
    }

    fn release(&mut self, user: String) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let name = f.name.clone();
        if let Some(n) = f.held.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                f.held.remove(&user);
            }
        }
        self.write_release(name, user);
    }

    /// The release in the database (kept for the next heartbeat if it cannot be written).
    fn write_release(&mut self, name: String, user: String) {
        let done = match self.db() {
            Some(db) => db.fleet_release(&name, &user),
            None => {
                if let Some(f) = &mut self.fleet {
                    f.unreleased.push(user);
                }
                return;
            }
        };
        if let Err(e) = done {
            self.failed(&e);
            if let Some(f) = &mut self.fleet {
                f.unreleased.push(user);
            }
        }
    }

    /// Joins the fleet once the database answers (clearing what this name held before).
    fn joined(&mut self) -> bool {
        let Some(name) = self
            .fleet
            .as_ref()
            .filter(|f| !f.joined)
            .map(|f| f.name.clone())
        else {
            return true;
        };
        let Some(db) = self.db() else {
            return false;
        };
        match db.fleet_join(&name, unix_now()) {
            Ok(()) => {
                info!(server = %name, "joined the fleet's shared quotas");
                if let Some(f) = &mut self.fleet {
                    f.joined = true;
                }
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    /// Says this server is alive, with its allocation count; gives back what could not be
    /// given back before; publishes every member's count to the metrics.
    fn heartbeat(&mut self) {
        if self.fleet.is_none() || !self.joined() {
            return;
        }
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        let (name, count, dead_after) = (
            f.name.clone(),
            f.metrics.total().allocations,
            f.dead_after.as_secs(),
        );
        let unreleased = std::mem::take(&mut f.unreleased);
        for user in unreleased {
            self.write_release(name.clone(), user);
        }
        let now = unix_now();
        let Some(db) = self.db() else {
            return;
        };
        match db.fleet_heartbeat(&name, count, now, now.saturating_sub(dead_after)) {
            Ok((members, revived)) => {
                self.succeeded();
                if revived {
                    self.restore(&name);
                }
                if let Some(f) = &self.fleet {
                    f.metrics.set_fleet(members);
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    /// The others gave this server up as dead (cut off longer than `fleet-dead-after`) and
    /// removed what it held: written again from its own tally, which the releases not yet
    /// written are already counted in.
    fn restore(&mut self, name: &str) {
        let Some(held) = self.fleet.as_mut().map(|f| {
            f.unreleased.clear();
            f.held.clone()
        }) else {
            return;
        };
        let Some(db) = self.db() else {
            return;
        };
        match db.fleet_restore(name, &held) {
            Ok(()) => warn!(
                server = %name,
                users = held.len(),
                "this server was taken for dead by the fleet: its share of the quotas written again"
            ),
            Err(e) => self.failed(&e),
        }
    }

    /// A clean stop: this server's quota goes back to the fleet at once.
    fn leave(&mut self) {
        let Some(name) = self
            .fleet
            .as_ref()
            .filter(|f| f.joined)
            .map(|f| f.name.clone())
        else {
            return;
        };
        if let Some(db) = self.db() {
            match db.fleet_leave(&name) {
                Ok(()) => info!(server = %name, "left the fleet"),
                Err(e) => {
                    warn!(server = %name, error = %e, "could not leave the fleet: its quota comes back when it is seen dead")
                }
            }
        }
    }

    fn merged(&self) -> Reloadable {
        match &self.realm {
            Some(d) => merge(&self.base, d),
            None => self.base.clone(),
        }
    }
}

/// The configuration with the database's realm data in it: its secrets beside the file's
/// (with `use-auth-secret`), its options over the file's, its peer ranges added.
pub(super) fn merge(base: &Reloadable, d: &RealmData) -> Reloadable {
    let mut r = base.clone();
    if r.use_auth_secret {
        let mut all = r.secrets.clone();
        all.extend(d.secrets.iter().cloned());
        r.rest = RestSecrets::new(&all);
    }
    if let Some(v) = d.max_bps {
        r.turn.max_bps = v;
    }
    if let Some(v) = d.total_quota {
        r.turn.total_quota = v;
    }
    if let Some(v) = d.user_quota {
        r.turn.user_quota = v;
    }
    for (list, into) in [
        (&d.allowed_peer_ips, &mut r.turn.peer_policy.allowed),
        (&d.denied_peer_ips, &mut r.turn.peer_policy.denied),
    ] {
        for s in list {
            match s.trim().parse::<IpRange>() {
                Ok(range) => into.push(range),
                Err(e) => warn!(range = %s, error = %e, "peer range from the database ignored"),
            }
        }
    }
    r
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
