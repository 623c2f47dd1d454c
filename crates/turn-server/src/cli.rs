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
        )
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("debug logs (RUST_LOG overrides)"),
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
    /// `-v`.
    pub verbose: bool,
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
    Ok(Invocation {
        config,
        file,
        verbose: m.get_flag("verbose"),
    })
}

/// Sets up `tracing`: text or JSON lines, to standard error or `file`; `info` (or `debug`
/// with `verbose`) unless `RUST_LOG` says otherwise. Credentials are never logged.
pub fn init_logging(
    json: bool,
    file: Option<&std::path::Path>,
    verbose: bool,
) -> Result<(), std::io::Error> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(if verbose { "debug" } else { "info" }));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match (file, json) {
        (Some(path), json) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let b = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f));
            if json {
                b.json().try_init()
            } else {
                b.try_init()
            }
        }
        (None, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (None, false) => builder.with_writer(std::io::stderr).try_init(),
    };
    // A second initialisation (tests) keeps the first.
    let _ = result;
    Ok(())
}

/// Runs until SIGTERM or SIGINT (Ctrl-C), calling `on_hangup` for each SIGHUP in between.
pub fn wait_for_termination(mut on_hangup: impl FnMut()) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break }
                _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); break }
                Some(()) = hup.recv() => on_hangup(),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
