//! The user database in coturn's layout, so a server can be pointed at a database coturn's
//! `turnadmin` made, unchanged, and our `turnadmin` writes one coturn reads: SQLite
//! (`userdb`, a file created with the schema on first use) or PostgreSQL (`psql-userdb`, a
//! libpq connection string such as `host=db dbname=coturn user=turn password=... connect_timeout=5`).
//!
//! The tables (coturn's `schema.sql`): `turnusers_lt (realm, name, hmackey)` with the
//! long-term key in hex (MD5, 32 digits; SHA-256, 64), never the password; `turn_secret
//! (realm, value)` for TURN REST secrets; `turn_realm_option (realm, opt, value)` with
//! `max-bps`, `total-quota` and `user-quota`; `allowed_peer_ip` / `denied_peer_ip (realm,
//! ip_range)` (a row with realm '' applies to every realm); `admin_user (name, realm,
//! password)`; `turn_origin_to_realm (origin, realm)`; `oauth_key` (created, not used).
//!
//! Every call here blocks: the server makes them on a thread of its own, never on a worker.

use std::path::PathBuf;

/// coturn's schema (`/usr/share/coturn/schema.sql`), with `IF NOT EXISTS` so that opening an
/// existing database changes nothing.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS turnusers_lt (realm varchar(127) default '', name varchar(512), hmackey char(128), PRIMARY KEY (realm,name))",
    "CREATE TABLE IF NOT EXISTS turn_secret (realm varchar(127) default '', value varchar(256), primary key (realm,value))",
    "CREATE TABLE IF NOT EXISTS allowed_peer_ip (realm varchar(127) default '', ip_range varchar(256), primary key (realm,ip_range))",
    "CREATE TABLE IF NOT EXISTS denied_peer_ip (realm varchar(127) default '', ip_range varchar(256), primary key (realm,ip_range))",
    "CREATE TABLE IF NOT EXISTS turn_origin_to_realm (origin varchar(127), realm varchar(127), primary key (origin))",
    "CREATE TABLE IF NOT EXISTS turn_realm_option (realm varchar(127) default '', opt varchar(32), value varchar(128), primary key (realm,opt))",
    "CREATE TABLE IF NOT EXISTS oauth_key (kid varchar(128), ikm_key varchar(256), timestamp bigint default 0, lifetime integer default 0, as_rs_alg varchar(64) default '', realm varchar(127), primary key (kid))",
    "CREATE TABLE IF NOT EXISTS admin_user (name varchar(32), realm varchar(127), password varchar(127), primary key (name))",
];

/// Where the user database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDbLocation {
    /// An SQLite file (coturn's `userdb`).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (coturn's `psql-userdb`).
    Postgres(String),
}

impl std::fmt::Display for UserDbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserDbLocation::Sqlite(p) => write!(f, "SQLite {}", p.display()),
            // The connection string may hold a password: name the host and database only.
            UserDbLocation::Postgres(s) => {
                let part = |key: &str| {
                    s.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                        .unwrap_or("?")
                        .to_owned()
                };
                write!(f, "PostgreSQL {}/{}", part("host"), part("dbname"))
            }
        }
    }
}

/// A database call that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
}

/// The realm's settings from `turn_realm_option`, `turn_secret` and the peer lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RealmData {
    /// REST secrets of the realm.
    pub secrets: Vec<String>,
    /// `max-bps`, if set.
    pub max_bps: Option<u64>,
    /// `total-quota`, if set.
    pub total_quota: Option<usize>,
    /// `user-quota`, if set.
    pub user_quota: Option<usize>,
    /// `allowed_peer_ip` rows of the realm and of every realm ('').
    pub allowed_peer_ips: Vec<String>,
    /// `denied_peer_ip` rows likewise.
    pub denied_peer_ips: Vec<String>,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// An open user database. Queries use `$1, $2, ...`: PostgreSQL's positional parameters,
/// which SQLite takes as names (bound here by name, since SQLite numbers parameters in the
/// order they first appear).
pub struct UserDb {
    backend: Backend,
}

impl std::fmt::Debug for UserDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.backend {
            Backend::Sqlite(_) => "UserDb(SQLite)",
            Backend::Postgres(_) => "UserDb(PostgreSQL)",
        })
    }
}

impl UserDb {
    /// Opens (an SQLite file: creates) the database and makes coturn's tables where missing.
    pub fn open(at: &UserDbLocation) -> Result<UserDb, DbError> {
        let backend = match at {
            UserDbLocation::Sqlite(path) => {
                let c = rusqlite::Connection::open(path)?;
                // Another process (turnadmin) may write while the server reads.
                c.busy_timeout(std::time::Duration::from_secs(2))?;
                Backend::Sqlite(c)
            }
            UserDbLocation::Postgres(s) => {
                let mut config: postgres::Config = s.parse()?;
                if config.get_connect_timeout().is_none() {
                    config.connect_timeout(std::time::Duration::from_secs(5));
                }
                Backend::Postgres(Box::new(config.connect(postgres::NoTls)?))
            }
        };
        let mut db = UserDb { backend };
        for sql in SCHEMA {
            db.execute(sql, &[])?;
        }
        Ok(db)
    }

    fn execute(&mut self, sql: &str, params: &[&str]) -> Result<u64, DbError> {
        match &mut self.backend {
            Backend::Sqlite(c) => {
                let mut stmt = c.prepare(sql)?;
                bind_named(&mut stmt, params)?;
                Ok(stmt.raw_execute()? as u64)
            }
            Backend::Postgres(c) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|s| s as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                Ok(c.execute(sql, &p)?)
            }
        }
    }

    /// Rows of text columns.
    fn rows(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Vec<String>>, DbError> {
        match &mut self.backend {
            Backend::Sqlite(c) => {
                let mut stmt = c.prepare(sql)?;
                let n = stmt.column_count();
                bind_named(&mut stmt, params)?;
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(
                        (0..n)
                            .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
                            .collect::<Result<Vec<String>, _>>()?,
                    );
                }
                Ok(out)
            }
            Backend::Postgres(c) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|s| s as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                let rows = c.query(sql, &p)?;
                // try_get: a column of another type in an operator's schema is an error to
                // report, not a panic.
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                r.try_get::<_, Option<String>>(i)
                                    .map(Option::unwrap_or_default)
                            })
                            .collect::<Result<Vec<String>, _>>()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(DbError::from)
            }
        }
    }

    fn column(&mut self, sql: &str, params: &[&str]) -> Result<Vec<String>, DbError> {
        Ok(self
            .rows(sql, params)?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .map(|v| v.trim_end().to_owned())
            .collect())
    }

    /// Deletes `table`'s rows whose `keys` columns hold these values; how many went.
    fn delete_where(&mut self, table: &str, keys: &[(&str, &str)]) -> Result<u64, DbError> {
        let cond: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{c} = ${}", i + 1))
            .collect();
        let params: Vec<&str> = keys.iter().map(|(_, v)| *v).collect();
        self.execute(
            &format!("DELETE FROM {table} WHERE {}", cond.join(" AND ")),
            &params,
        )
    }

    /// Puts the row `keys` + `values` in `table` in place of the one with these keys (as
    /// coturn's tools do: delete, then insert).
    fn replace(
        &mut self,
        table: &str,
        keys: &[(&str, &str)],
        values: &[(&str, &str)],
    ) -> Result<(), DbError> {
        self.delete_where(table, keys)?;
        let all: Vec<(&str, &str)> = keys.iter().chain(values).copied().collect();
        let columns: Vec<&str> = all.iter().map(|(c, _)| *c).collect();
        let marks: Vec<String> = (1..=all.len()).map(|i| format!("${i}")).collect();
        let params: Vec<&str> = all.iter().map(|(_, v)| *v).collect();
        self.execute(
            &format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                marks.join(", ")
            ),
            &params,
        )?;
        Ok(())
    }

    /// A user's stored key (`hmackey`, hex), if the user exists in `realm`.
    pub fn user_key(&mut self, realm: &str, name: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .column(
                "SELECT hmackey FROM turnusers_lt WHERE realm = $1 AND name = $2",
                &[realm, name],
            )?
            .into_iter()
            .next())
    }

    /// Adds a user, or replaces their key.
    pub fn set_user(&mut self, realm: &str, name: &str, hmackey: &str) -> Result<(), DbError> {
        self.replace(
            "turnusers_lt",
            &[("realm", realm), ("name", name)],
            &[("hmackey", hmackey)],
        )
    }

    /// Deletes a user; whether there was one.
    pub fn delete_user(&mut self, realm: &str, name: &str) -> Result<bool, DbError> {
        Ok(self.delete_where("turnusers_lt", &[("realm", realm), ("name", name)])? > 0)
    }

    /// `columns` of `table`'s rows of `realm` (or of every realm, by realm), by `order`.
    fn of_realm(
        &mut self,
        columns: &str,
        table: &str,
        order: &str,
        realm: Option<&str>,
    ) -> Result<Vec<Vec<String>>, DbError> {
        match realm {
            Some(r) => self.rows(
                &format!("SELECT {columns} FROM {table} WHERE realm = $1 ORDER BY {order}"),
                &[r],
            ),
            None => self.rows(
                &format!("SELECT {columns} FROM {table} ORDER BY realm, {order}"),
                &[],
            ),
        }
    }

    /// `(name, realm)` of the users of `realm`, or of every realm.
    pub fn users(&mut self, realm: Option<&str>) -> Result<Vec<(String, String)>, DbError> {
        Ok(pairs(self.of_realm(
            "name, realm",
            "turnusers_lt",
            "name",
            realm,
        )?))
    }

    /// Adds a REST secret to `realm` (nothing if it is there already).
    pub fn add_secret(&mut self, realm: &str, secret: &str) -> Result<(), DbError> {
        self.replace("turn_secret", &[("realm", realm), ("value", secret)], &[])
    }

    /// Deletes one secret of `realm`, or all of them with `None`; how many went.
    pub fn delete_secrets(&mut self, realm: &str, secret: Option<&str>) -> Result<u64, DbError> {
        match secret {
            Some(s) => self.delete_where("turn_secret", &[("realm", realm), ("value", s)]),
            None => self.delete_where("turn_secret", &[("realm", realm)]),
        }
    }

    /// The REST secrets of `realm`.
    pub fn secrets(&mut self, realm: &str) -> Result<Vec<String>, DbError> {
        self.column(
            "SELECT value FROM turn_secret WHERE realm = $1 ORDER BY value",
            &[realm],
        )
    }

    /// `(secret, realm)` for `realm`, or every realm.
    pub fn secret_rows(&mut self, realm: Option<&str>) -> Result<Vec<(String, String)>, DbError> {
        Ok(pairs(self.of_realm(
            "value, realm",
            "turn_secret",
            "value",
            realm,
        )?))
    }

    /// Sets a realm option (`max-bps`, `total-quota`, `user-quota`); 0 removes it, as in
    /// coturn.
    pub fn set_realm_option(&mut self, realm: &str, opt: &str, value: u64) -> Result<(), DbError> {
        let keys = [("realm", realm), ("opt", opt)];
        if value == 0 {
            self.delete_where("turn_realm_option", &keys)?;
            return Ok(());
        }
        self.replace("turn_realm_option", &keys, &[("value", &value.to_string())])
    }

    /// `(realm, option, value)` for `realm`, or every realm.
    pub fn realm_options(
        &mut self,
        realm: Option<&str>,
    ) -> Result<Vec<(String, String, String)>, DbError> {
        let rows = self.of_realm("realm, opt, value", "turn_realm_option", "opt", realm)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let mut i = r.into_iter();
                Some((i.next()?, i.next()?, i.next()?))
            })
            .collect())
    }

    /// Adds or replaces an admin user (`password` as given: coturn stores a crypt(3) hash).
    pub fn set_admin(&mut self, name: &str, realm: &str, password: &str) -> Result<(), DbError> {
        self.replace(
            "admin_user",
            &[("name", name)],
            &[("realm", realm), ("password", password)],
        )
    }

    /// Deletes an admin user; whether there was one.
    pub fn delete_admin(&mut self, name: &str) -> Result<bool, DbError> {
        Ok(self.delete_where("admin_user", &[("name", name)])? > 0)
    }

    /// `(name, realm)` of the admin users.
    pub fn admins(&mut self) -> Result<Vec<(String, String)>, DbError> {
        let rows = self.rows("SELECT name, realm FROM admin_user ORDER BY name", &[])?;
        Ok(pairs(rows))
    }

    /// Maps an origin to a realm.
    pub fn add_origin(&mut self, origin: &str, realm: &str) -> Result<(), DbError> {
        self.replace(
            "turn_origin_to_realm",
            &[("origin", origin)],
            &[("realm", realm)],
        )
    }

    /// Removes an origin's mapping; whether there was one.
    pub fn delete_origin(&mut self, origin: &str) -> Result<bool, DbError> {
        Ok(self.delete_where("turn_origin_to_realm", &[("origin", origin)])? > 0)
    }

    /// `(origin, realm)` pairs.
    pub fn origins(&mut self) -> Result<Vec<(String, String)>, DbError> {
        let rows = self.rows(
            "SELECT origin, realm FROM turn_origin_to_realm ORDER BY origin",
            &[],
        )?;
        Ok(pairs(rows))
    }

    /// Adds a peer range to `allowed_peer_ip` (`allowed`) or `denied_peer_ip`.
    pub fn add_peer_range(
        &mut self,
        realm: &str,
        range: &str,
        allowed: bool,
    ) -> Result<(), DbError> {
        let table = if allowed {
            "allowed_peer_ip"
        } else {
            "denied_peer_ip"
        };
        self.replace(table, &[("realm", realm), ("ip_range", range)], &[])
    }

    /// Everything of `realm` the server applies besides the users.
    pub fn realm_data(&mut self, realm: &str) -> Result<RealmData, DbError> {
        let mut d = RealmData {
            secrets: self.secrets(realm)?,
            ..RealmData::default()
        };
        for (_, opt, value) in self.realm_options(Some(realm))? {
            let n = value.trim().parse::<u64>().ok();
            match opt.as_str() {
                "max-bps" => d.max_bps = n,
                "total-quota" => d.total_quota = n.map(|n| n as usize),
                "user-quota" => d.user_quota = n.map(|n| n as usize),
                _ => {}
            }
        }
        d.allowed_peer_ips = self.column(
            "SELECT ip_range FROM allowed_peer_ip WHERE realm = $1 OR realm = '' OR realm IS NULL",
            &[realm],
        )?;
        d.denied_peer_ips = self.column(
            "SELECT ip_range FROM denied_peer_ip WHERE realm = $1 OR realm = '' OR realm IS NULL",
            &[realm],
        )?;
        Ok(d)
    }
}

/// The tables of a fleet's shared quotas (ours, beside coturn's): each server's heartbeat and
/// allocation count, and the allocations each holds per user.
const FLEET_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS turn_fleet_server (name varchar(255) PRIMARY KEY, seen bigint NOT NULL, allocations bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS turn_fleet_quota (server varchar(255), username varchar(512), n bigint NOT NULL, PRIMARY KEY (server, username))",
];

impl UserDb {
    /// Makes the fleet's tables and forgets what `server` held in an earlier life (no
    /// allocation outlives its process).
    pub fn fleet_join(&mut self, server: &str, unix_now: u64) -> Result<(), DbError> {
        for sql in FLEET_SCHEMA {
            self.execute(sql, &[])?;
        }
        self.execute("DELETE FROM turn_fleet_quota WHERE server = $1", &[server])?;
        self.fleet_heartbeat(server, 0, unix_now, 0)?;
        Ok(())
    }

    fn begin_exclusive(&mut self) -> Result<(), DbError> {
        match &mut self.backend {
            // One writer at a time across processes.
            Backend::Sqlite(c) => {
                c.execute_batch("BEGIN IMMEDIATE")?;
            }
            // Reservations of the whole fleet one after another (an Allocate's rate, not
            // a packet's): a transaction-scoped advisory lock.
            Backend::Postgres(c) => {
                c.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(3478)")?;
            }
        }
        Ok(())
    }

    fn end(&mut self, commit: bool) -> Result<(), DbError> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match &mut self.backend {
            Backend::Sqlite(c) => c.execute_batch(sql)?,
            Backend::Postgres(c) => c.batch_execute(sql)?,
        }
        Ok(())
    }

    /// Takes one allocation for `user` on `server` if the fleet's live servers (seen at or
    /// after `alive_since`, Unix seconds) hold fewer than `user_quota` for the user and
    /// `total_quota` in all (0: no limit); whether it was taken.
    pub fn fleet_reserve(
        &mut self,
        server: &str,
        user: &str,
        user_quota: u64,
        total_quota: u64,
        alive_since: u64,
    ) -> Result<bool, DbError> {
        self.begin_exclusive()?;
        let r = self.reserve_locked(server, user, user_quota, total_quota, alive_since);
        let commit = matches!(r, Ok(true));
        match (r, self.end(commit)) {
            (Ok(taken), Ok(())) => Ok(taken),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    fn reserve_locked(
        &mut self,
        server: &str,
        user: &str,
        user_quota: u64,
        total_quota: u64,
        alive_since: u64,
    ) -> Result<bool, DbError> {
        let since = alive_since.to_string();
        let count = |db: &mut UserDb, by_user: bool| -> Result<u64, DbError> {
            let sql = format!(
                "SELECT CAST(COALESCE(SUM(q.n), 0) AS text) FROM turn_fleet_quota q \
                 JOIN turn_fleet_server s ON s.name = q.server \
                 WHERE (s.seen >= CAST(CAST($1 AS varchar) AS bigint) OR s.name = $2){}",
                if by_user { " AND q.username = $3" } else { "" }
            );
            let params: &[&str] = if by_user {
                &[&since, server, user]
            } else {
                &[&since, server]
            };
            Ok(db
                .column(&sql, params)?
                .first()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        };
        if user_quota > 0 && count(self, true)? >= user_quota {
            return Ok(false);
        }
        if total_quota > 0 && count(self, false)? >= total_quota {
            return Ok(false);
        }
        let updated = self.execute(
            "UPDATE turn_fleet_quota SET n = n + 1 WHERE server = $1 AND username = $2",
            &[server, user],
        )?;
        if updated == 0 {
            self.execute(
                "INSERT INTO turn_fleet_quota (server, username, n) VALUES ($1, $2, 1)",
                &[server, user],
            )?;
        }
        Ok(true)
    }

    /// Removes `server` and what it held (a clean stop).
    pub fn fleet_leave(&mut self, server: &str) -> Result<(), DbError> {
        self.execute("DELETE FROM turn_fleet_quota WHERE server = $1", &[server])?;
        self.execute("DELETE FROM turn_fleet_server WHERE name = $1", &[server])?;
        Ok(())
    }

    /// Gives back one allocation `server` held for `user`.
    pub fn fleet_release(&mut self, server: &str, user: &str) -> Result<(), DbError> {
        self.execute(
            "UPDATE turn_fleet_quota SET n = n - 1 WHERE server = $1 AND username = $2",
            &[server, user],
        )?;
        self.execute(
            "DELETE FROM turn_fleet_quota WHERE server = $1 AND username = $2 AND n <= 0",
            &[server, user],
        )?;
        Ok(())
    }

    /// Says `server` is alive at `unix_now` with `allocations`, removes the servers not seen
    /// since `dead_before` and what they held (their quota comes back), and returns every live
    /// server's name and allocation count, and whether `server` had been given up as dead
    /// (its row was gone: what it holds must be written again, [`fleet_restore`](Self::fleet_restore)).
    pub fn fleet_heartbeat(
        &mut self,
        server: &str,
        allocations: u64,
        unix_now: u64,
        dead_before: u64,
    ) -> Result<(Vec<(String, u64)>, bool), DbError> {
        let (now, n, dead) = (
            unix_now.to_string(),
            allocations.to_string(),
            dead_before.to_string(),
        );
        let updated = self.execute(
            "UPDATE turn_fleet_server SET seen = CAST(CAST($2 AS varchar) AS bigint), allocations = CAST(CAST($3 AS varchar) AS bigint) WHERE name = $1",
            &[server, &now, &n],
        )?;
        let revived = updated == 0;
        if revived {
            self.execute(
                "INSERT INTO turn_fleet_server (name, seen, allocations) VALUES ($1, CAST(CAST($2 AS varchar) AS bigint), CAST(CAST($3 AS varchar) AS bigint))",
                &[server, &now, &n],
            )?;
        }
        self.execute(
            "DELETE FROM turn_fleet_quota WHERE server IN (SELECT name FROM turn_fleet_server WHERE seen < CAST(CAST($1 AS varchar) AS bigint))",
            &[&dead],
        )?;
        self.execute(
            "DELETE FROM turn_fleet_server WHERE seen < CAST(CAST($1 AS varchar) AS bigint)",
            &[&dead],
        )?;
        let members = self
            .rows(
                "SELECT name, CAST(allocations AS text) FROM turn_fleet_server ORDER BY name",
                &[],
            )?
            .into_iter()
            .filter_map(|r| {
                let mut i = r.into_iter();
                Some((i.next()?, i.next()?.parse().ok()?))
            })
            .collect();
        Ok((members, revived))
    }

    /// Writes what `server` holds per user anew (it was given up as dead while it still had
    /// allocations, and the others removed its rows).
    pub fn fleet_restore(
        &mut self,
        server: &str,
        held: &std::collections::HashMap<String, u64>,
    ) -> Result<(), DbError> {
        self.delete_where("turn_fleet_quota", &[("server", server)])?;
        for (user, n) in held {
            self.execute(
                "INSERT INTO turn_fleet_quota (server, username, n) VALUES ($1, $2, CAST(CAST($3 AS varchar) AS bigint))",
                &[server, user, &n.to_string()],
            )?;
        }
        Ok(())
    }
}

/// Binds `params[i]` to the statement's `$<i+1>`, wherever it appears.
fn bind_named(stmt: &mut rusqlite::Statement<'_>, params: &[&str]) -> Result<(), DbError> {
    for (i, value) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt
            .parameter_index(&name)?
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name))?;
        stmt.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

fn pairs(rows: Vec<Vec<String>>) -> Vec<(String, String)> {
    rows.into_iter()
        .filter_map(|r| {
            let mut i = r.into_iter();
            Some((i.next()?, i.next()?))
        })
        .collect()
}
