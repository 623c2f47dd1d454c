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
}

/// Opens the database and reads the realm data now, so the workers start with it: the
/// configuration to start with, and the thread, which runs until every sender of its queue
/// is gone. A database that cannot be reached now is logged and tried again later.
pub(super) fn start(
    at: UserDbLocation,
    base: Reloadable,
    broadcast: Broadcast,
) -> std::io::Result<(Reloadable, Sender<Job>, JoinHandle<()>)> {
    let mut t = Thread {
        at,
        db: None,
        last_attempt: None,
        down: None,
        base,
        realm: None,
        broadcast,
    };
    t.read_realm();
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
    loop {
        let wait = next_refresh.saturating_duration_since(Instant::now());
        match jobs.recv_timeout(wait) {
            Ok(Job::Lookup {
                worker,
                id,
                username,
            }) => {
                let result = t.lookup(&username);
                t.broadcast.looked_up(worker, id, result);
            }
            Ok(Job::Reload(base)) => {
                t.base = *base;
                t.refresh(true);
            }
            Err(RecvTimeoutError::Timeout) => {
                t.refresh(false);
                next_refresh = Instant::now() + REFRESH;
            }
            Err(RecvTimeoutError::Disconnected) => return,
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
