//! The command line of `turnserver`: coturn's flags, one per configuration key of
//! [`config::KEYS`](crate::config::KEYS) (`--listening-port 3478`, `-u name:password`, ...),
//! and `-c FILE` for a `turnserver.conf`. Flags apply after the file, so they override its
//! single values and add to its repeatable ones.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use crate::config::{ConfigError, KeyValue, ServerConfig, KEYS};

/// Why the command line cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Not valid flags (or `--help`/`--version`, which clap reports this way).
    #[error(transparent)]
    Args(#[from] clap::Error),
    /// The configuration file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration file has an error.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error, with its line.
        source: ConfigError,
    },
    /// A flag has an invalid value.
    #[error("--{flag}: {reason}")]
    Flag {
        /// The flag.
        flag: String,
        /// What is wrong.
        reason: String,
    },
    /// The values contradict each other.
    #[error("{0}")]
    Inconsistent(ConfigError),
}

/// The `turnserver` command: every configuration key as a flag, plus `-c`, `-n`, `-v`.
pub fn command() -> Command {
    let mut cmd = Command::new("turnserver")
        .version(env!("CARGO_PKG_VERSION"))
        .about("TURN (RFC 8656) and STUN (RFC 8489) server; reads coturn's turnserver.conf keys")
        .arg(
            Arg::new("config")
                .short('c')
                .long("config")
                .value_name("FILE")
                .help("read this turnserver.conf (no file is read by default)"),
        )
        .arg(
            Arg::new("no-config")
                .short('n')
                .action(ArgAction::SetTrue)
                .help("read no configuration file (the default; accepted for coturn scripts)"),
        );
    for k in KEYS {
        let mut a = Arg::new(k.name).long(k.name).help(k.help);
        if let Some(s) = k.short {
            a = a.short(s);
        }
        a = match k.value {
            KeyValue::Flag => a.action(ArgAction::SetTrue),
            KeyValue::Required(v) => a.value_name(v).num_args(1).action(ArgAction::Append),
            KeyValue::Optional(v) => a.value_name(v).num_args(0..=1).action(ArgAction::Append),
        };
        cmd = cmd.arg(a);
    }
    cmd
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The configuration: defaults, then the file, then the flags.
    pub config: ServerConfig,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

/// Parses `args` (the program name first).
pub fn parse<I, T>(args: I) -> Result<Invocation, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let m = command().try_get_matches_from(args)?;
    let mut config = ServerConfig::default();
    let file = m.get_one::<String>("config").map(PathBuf::from);
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
            path: path.clone(),
            source,
        })?;
        config.apply_text(&text).map_err(|source| CliError::File {
            path: path.clone(),
            source,
        })?;
    }
    for k in KEYS {
        let mut given: Vec<Option<&str>> = Vec::new();
        match k.value {
            KeyValue::Flag => {
                if m.get_flag(k.name) {
                    given.push(None);
                }
            }
            KeyValue::Required(_) | KeyValue::Optional(_) => {
                if let Some(occurrences) = m.get_occurrences::<String>(k.name) {
                    for mut o in occurrences {
                        given.push(o.next().map(String::as_str));
                    }
                }
            }
        }
        for value in given {
            config.apply(0, k.name, value).map_err(|e| match e {
                ConfigError::InvalidValue { key, reason, .. } => {
                    CliError::Flag { flag: key, reason }
                }
                other => CliError::Flag {
                    flag: k.name.into(),
                    reason: other.to_string(),
                },
            })?;
        }
    }
    config.check().map_err(CliError::Inconsistent)?;
    Ok(Invocation { config, file })
}

/// Applies a log filter, or says why it cannot.
type SetFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Changes the log filter of a running program (a reload).
pub struct LogLevel {
    set: SetFilter,
    /// `RUST_LOG` was set: it wins over the configuration, at start and on reload.
    from_env: bool,
}

impl std::fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLevel")
            .field("from_env", &self.from_env)
            .finish_non_exhaustive()
    }
}

impl LogLevel {
    /// Applies a filter (`info`, `debug`, `turn_server=debug,info`, ...), unless `RUST_LOG`
    /// decides; an invalid one is refused and the old one stays.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        if self.from_env {
            return Ok(());
        }
        (self.set)(filter)
    }
}

/// Checks a log filter (`log-level`) without applying it.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Sets up `tracing`: text or JSON lines, to standard error or `file`, with `filter`
/// (`log-level`; `RUST_LOG` overrides it). Credentials are never logged. The returned
/// handle changes the filter later.
pub fn init_logging(
    json: bool,
    file: Option<&std::path::Path>,
    filter: &str,
) -> Result<LogLevel, std::io::Error> {
    use tracing_subscriber::EnvFilter;
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let env_filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::builder().parse(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // The reload handle's type names the whole subscriber, so each form takes its own.
    macro_rules! install {
        ($b:expr) => {{
            let b = $b.with_filter_reloading();
            let handle = b.reload_handle();
            // A second initialisation (tests) keeps the first.
            let _ = b.try_init();
            Box::new(move |f: &str| {
                let new = EnvFilter::builder().parse(f).map_err(|e| e.to_string())?;
                handle.reload(new).map_err(|e| e.to_string())
            }) as SetFilter
        }};
    }
    let set = match (file, json) {
        (Some(path), json) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let b = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f));
            if json {
                install!(b.json())
            } else {
                install!(b)
            }
        }
        (None, true) => install!(builder.json().with_writer(std::io::stderr)),
        (None, false) => install!(builder.with_writer(std::io::stderr)),
    };
    Ok(LogLevel { set, from_env })
}

/// The process's open-files limit, raised to its hard limit: every allocation holds a relay
/// socket (and every stream client a connection), and the soft limit a service gets is often
/// 1,024 (systemd's default, with a hard limit of 524,288), which would cap the server at
/// about a thousand allocations. coturn raises it the same way at start. Returns the soft
/// limit now in force, and what it was.
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    // An unlimited hard limit still stops at the kernel's `fs.nr_open` (1,048,576 by default).
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Ok((hard, soft)),
        Err(_) if hard > NR_OPEN_DEFAULT => {
            setrlimit(Resource::RLIMIT_NOFILE, NR_OPEN_DEFAULT, hard)?;
            Ok((NR_OPEN_DEFAULT, soft))
        }
        Err(e) => Err(e.into()),
    }
}

/// Linux's default `fs.nr_open`: the most open files a process may have.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// A signal [`wait_for_signals`] passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload.
    Hangup,
    /// SIGUSR1: drain (coturn's drain mode).
    Drain,
    /// A second went by (to watch a drain).
    Tick,
}

/// Runs until SIGTERM or SIGINT (Ctrl-C), or until `on_signal` returns false, calling it for
/// each SIGHUP and SIGUSR1 and once a second.
pub fn wait_for_signals(mut on_signal: impl FnMut(Signal) -> bool) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            let go_on = tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); false }
                _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); false }
                Some(()) = hup.recv() => on_signal(Signal::Hangup),
                Some(()) = usr1.recv() => on_signal(Signal::Drain),
                _ = tick.tick() => on_signal(Signal::Tick),
            };
            if !go_on {
                break;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        // A soft limit below the hard one (by one: the other tests of this process keep
        // theirs).
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(NR_OPEN_DEFAULT) - 1, hard).unwrap();
        let (limit, was) = raise_open_files_limit().unwrap();
        assert!(was < limit, "raised from {was} to {limit}");
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, limit);
        assert!(soft == hard || soft == NR_OPEN_DEFAULT, "{soft} of {hard}");
    }

    #[test]
    fn flags_are_the_config_keys() {
        let i = parse([
            "turnserver",
            "-p",
            "3479",
            "--listening-ip",
            "127.0.0.1",
            "-L",
            "::1",
            "-u",
            "alice:pw",
            "--user=bob:pw2",
            "--use-auth-secret",
            "--static-auth-secret",
            "s1",
            "--allow-loopback-peers",
            "--stale-nonce",
            "--max-bps",
            "1000",
            "-f",
        ])
        .unwrap();
        let c = i.config;
        assert_eq!(c.listening_port, 3479);
        assert_eq!(c.listening_ips.len(), 2);
        assert_eq!(c.users.len(), 2);
        assert!(c.use_auth_secret && c.allow_loopback_peers && c.fingerprint);
        assert_eq!((c.stale_nonce, c.max_bps), (600, 1000));
        // Every key has its flag.
        let cmd = command();
        for k in KEYS {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(k.name)),
                "{}",
                k.name
            );
        }
    }

    #[test]
    fn bad_flags_and_files_are_named() {
        let e = parse(["turnserver", "--min-port", "0"]).unwrap_err();
        assert_eq!(e.to_string(), "--min-port: \"0\" is not a port (1-65535)");
        assert!(matches!(
            parse(["turnserver", "--bogus"]),
            Err(CliError::Args(_))
        ));
        assert!(matches!(
            parse(["turnserver", "--use-auth-secret"]),
            Err(CliError::Inconsistent(_))
        ));
        let dir = std::env::temp_dir().join(format!("turn-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.conf");
        std::fs::write(&f, "realm=x\nbogus-key=1\n").unwrap();
        let e = parse(["turnserver".into(), "-c".into(), f.clone().into_os_string()]).unwrap_err();
        assert!(
            e.to_string().ends_with("line 2: unknown key \"bogus-key\""),
            "{e}"
        );
        // Flags override the file.
        std::fs::write(&f, "realm=x\nlistening-port=4000\n").unwrap();
        let i = parse([
            OsString::from("turnserver"),
            "-c".into(),
            f.clone().into_os_string(),
            "-p".into(),
            "4001".into(),
        ])
        .unwrap();
        assert_eq!(
            (i.config.realm.as_str(), i.config.listening_port),
            ("x", 4001)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
