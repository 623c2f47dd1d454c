//! `turnadmin`: coturn's administration tool for the user database, with its flags and its
//! output, on the same tables (see `turn_server::userdb`): a database made by either tool is
//! read and written by the other, and by both servers.
//!
//! ```text
//! turnadmin -a -b /var/lib/turn/turndb -u alice -r example.org -p secret   # add a user
//! turnadmin -l -b /var/lib/turn/turndb                                      # alice[example.org]
//! turnadmin -s s3cret -e "host=db dbname=coturn user=turn" -r example.org   # a REST secret
//! turnadmin -g -b /var/lib/turn/turndb -r example.org --user-quota 10      # a realm option
//! ```

use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};
use turn_server::auth::UserKeys;
use turn_server::userdb::{DbError, UserDb, UserDbLocation};

/// coturn's commands: (long, short, takes a value, help).
const COMMANDS: &[(&str, Option<char>, bool, &str)] = &[
    (
        "key",
        Some('k'),
        false,
        "print the long-term key of -u/-r/-p (hex, as stored)",
    ),
    (
        "add",
        Some('a'),
        false,
        "add or update a long-term user (-u, -r, -p)",
    ),
    (
        "add-admin",
        Some('A'),
        false,
        "add or update an admin user (-u, -r, -p); stored as given",
    ),
    (
        "delete",
        Some('d'),
        false,
        "delete a long-term user (-u, -r)",
    ),
    (
        "delete-admin",
        Some('D'),
        false,
        "delete an admin user (-u)",
    ),
    (
        "list",
        Some('l'),
        false,
        "list long-term users (of -r, or all)",
    ),
    ("list-admin", Some('L'), false, "list admin users"),
    (
        "set-secret",
        Some('s'),
        true,
        "add a TURN REST secret to -r",
    ),
    (
        "show-secret",
        Some('S'),
        false,
        "show the REST secrets of -r (or all realms)",
    ),
    (
        "delete-secret",
        Some('X'),
        true,
        "delete a REST secret of -r",
    ),
    (
        "delete-all-secrets",
        None,
        false,
        "delete every REST secret of -r",
    ),
    ("add-origin", Some('O'), false, "map origin -o to realm -r"),
    (
        "del-origin",
        Some('R'),
        false,
        "delete the mapping of origin -o",
    ),
    (
        "list-origins",
        Some('I'),
        false,
        "list origin-to-realm mappings",
    ),
    (
        "set-realm-option",
        Some('g'),
        false,
        "set -r's --max-bps, --total-quota, --user-quota (0 removes)",
    ),
    (
        "list-realm-options",
        Some('G'),
        false,
        "list realm options (of -r, or all)",
    ),
];

fn command() -> Command {
    let mut cmd = Command::new("turnadmin")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Manages the user database of turnserver (coturn's turnadmin flags and tables)");
    for &(long, short, value, help) in COMMANDS {
        let mut a = Arg::new(long).long(long).help(help);
        if let Some(s) = short {
            a = a.short(s);
        }
        a = if value {
            a.value_name("SECRET").num_args(1)
        } else {
            a.action(ArgAction::SetTrue)
        };
        cmd = cmd.arg(a);
    }
    let opt = |name: &'static str, short: Option<char>, value: &'static str, help: &'static str| {
        let a = Arg::new(name).long(name).value_name(value).help(help);
        match short {
            Some(s) => a.short(s),
            None => a,
        }
    };
    cmd.arg(
        opt(
            "userdb",
            Some('b'),
            "FILE",
            "SQLite database [/var/lib/turn/turndb]",
        )
        .visible_alias("db"),
    )
    .arg(
        opt(
            "psql-userdb",
            Some('e'),
            "CONNINFO",
            "PostgreSQL connection string",
        )
        .visible_alias("sql-userdb"),
    )
    .arg(opt("user", Some('u'), "NAME", "user name"))
    .arg(opt("realm", Some('r'), "REALM", "realm"))
    .arg(opt("password", Some('p'), "PASSWORD", "password"))
    .arg(opt("origin", Some('o'), "ORIGIN", "origin (with -O, -R)"))
    .arg(opt("max-bps", None, "N", "realm's max-bps (0 removes it)"))
    .arg(opt(
        "total-quota",
        None,
        "N",
        "realm's total-quota (0 removes it)",
    ))
    .arg(opt(
        "user-quota",
        None,
        "N",
        "realm's user-quota (0 removes it)",
    ))
    .arg(
        Arg::new("sha256")
            .long("sha256")
            .action(ArgAction::SetTrue)
            .help(
                "store SHA-256 keys (RFC 8489 PASSWORD-ALGORITHM; browsers need the MD5 default)",
            ),
    )
}

#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("{0}")]
    Usage(String),
    #[error("{db}: {source}")]
    Db { db: String, source: DbError },
}

fn main() -> ExitCode {
    let m = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(&m) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("turnadmin: {e}");
            ExitCode::from(match e {
                AdminError::Usage(_) => 2,
                AdminError::Db { .. } => 1,
            })
        }
    }
}

fn run(m: &ArgMatches) -> Result<Vec<String>, AdminError> {
    let given: Vec<&str> = COMMANDS
        .iter()
        .map(|c| c.0)
        .filter(|c| m.value_source(c) == Some(clap::parser::ValueSource::CommandLine))
        .collect();
    let [cmd] = given[..] else {
        return Err(AdminError::Usage(format!(
            "give exactly one command (-k, -a, -d, -l, -s, -S, -X, -g, -G, ...); got {}",
            if given.is_empty() {
                "none".to_owned()
            } else {
                given.join(", ")
            }
        )));
    };
    let get = |k: &str| m.get_one::<String>(k).map(String::as_str);
    let need = |k: &str, flag: &str| {
        get(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AdminError::Usage(format!("{cmd} needs {flag}")))
    };
    let sha256 = m.get_flag("sha256");
    if cmd == "key" {
        let (u, r, p) = (
            need("user", "-u")?,
            need("realm", "-r")?,
            need("password", "-p")?,
        );
        let key = UserKeys::stored_key(u, r, p, sha256)
            .map_err(|e| AdminError::Usage(format!("password: {e}")))?;
        return Ok(vec![format!("0x{key}")]);
    }
    let at = match (get("psql-userdb"), get("userdb")) {
        (Some(c), _) => UserDbLocation::Postgres(c.to_owned()),
        (None, Some(f)) => UserDbLocation::Sqlite(f.into()),
        (None, None) => UserDbLocation::Sqlite("/var/lib/turn/turndb".into()),
    };
    let db_err = |source| AdminError::Db {
        db: at.to_string(),
        source,
    };
    let mut db = UserDb::open(&at).map_err(db_err)?;
    let realm = get("realm").unwrap_or("");
    let tagged = |pairs: Vec<(String, String)>| -> Vec<String> {
        pairs
            .into_iter()
            .map(|(a, b)| format!("{a}[{b}]"))
            .collect()
    };
    let out = match cmd {
        "add" => {
            let (u, r, p) = (
                need("user", "-u")?,
                need("realm", "-r")?,
                need("password", "-p")?,
            );
            let key = UserKeys::stored_key(u, r, p, sha256)
                .map_err(|e| AdminError::Usage(format!("password: {e}")))?;
            db.set_user(r, u, &key).map_err(db_err)?;
            vec![]
        }
        "delete" => {
            db.delete_user(realm, need("user", "-u")?).map_err(db_err)?;
            vec![]
        }
        "list" => tagged(db.users(get("realm")).map_err(db_err)?),
        "add-admin" => {
            return Err(AdminError::Usage(
                "-A: admin users log in to coturn's web admin, which this server does not \
                 have (and coturn stores their passwords with its own crypt(3) hashing): add \
                 them with coturn's turnadmin"
                    .into(),
            ))
        }
        "delete-admin" => {
            db.delete_admin(need("user", "-u")?).map_err(db_err)?;
            vec![]
        }
        "list-admin" => tagged(db.admins().map_err(db_err)?),
        "set-secret" => {
            db.add_secret(realm, need("set-secret", "a secret")?)
                .map_err(db_err)?;
            vec![]
        }
        "show-secret" => tagged(db.secret_rows(get("realm")).map_err(db_err)?),
        "delete-secret" => {
            db.delete_secrets(realm, Some(need("delete-secret", "a secret")?))
                .map_err(db_err)?;
            vec![]
        }
        "delete-all-secrets" => {
            db.delete_secrets(realm, None).map_err(db_err)?;
            vec![]
        }
        "add-origin" => {
            let origin = normalise_origin(need("origin", "-o")?);
            db.add_origin(&origin, need("realm", "-r")?)
                .map_err(db_err)?;
            vec![]
        }
        "del-origin" => {
            db.delete_origin(&normalise_origin(need("origin", "-o")?))
                .map_err(db_err)?;
            vec![]
        }
        "list-origins" => db
            .origins()
            .map_err(db_err)?
            .into_iter()
            .map(|(o, r)| format!("{o} ==>> {r}"))
            .collect(),
        "set-realm-option" => {
            let r = need("realm", "-r")?;
            let mut any = false;
            for opt in ["max-bps", "total-quota", "user-quota"] {
                if let Some(v) = get(opt) {
                    let n: u64 = v.parse().map_err(|_| {
                        AdminError::Usage(format!("--{opt}: {v:?} is not a number"))
                    })?;
                    db.set_realm_option(r, opt, n).map_err(db_err)?;
                    any = true;
                }
            }
            if !any {
                return Err(AdminError::Usage(
                    "set-realm-option needs --max-bps, --total-quota or --user-quota".into(),
                ));
            }
            vec![]
        }
        "list-realm-options" => db
            .realm_options(get("realm"))
            .map_err(db_err)?
            .into_iter()
            .map(|(r, o, v)| format!("{o}[{r}]={v}"))
            .collect(),
        other => return Err(AdminError::Usage(format!("{other}: not a command"))),
    };
    Ok(out)
}

/// coturn keeps origins with their port: `http://x.org` is stored as `http://x.org:80`.
fn normalise_origin(origin: &str) -> String {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let default = if origin.starts_with("https://") {
        ":443"
    } else if origin.starts_with("http://") {
        ":80"
    } else {
        return origin;
    };
    let host = origin.split_once("://").map_or("", |(_, h)| h);
    let has_port = match host.rsplit_once(':') {
        Some((_, p)) => {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']')
        }
        None => false,
    };
    if has_port {
        origin
    } else {
        format!("{origin}{default}")
    }
}
