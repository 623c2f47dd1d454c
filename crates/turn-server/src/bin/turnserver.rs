//! `turnserver`: TURN (RFC 8656) and STUN (RFC 8489) over UDP, TCP and TLS, configured with
//! coturn's keys and flags. With no configuration it starts on port 3478 with TURN REST API
//! credentials under a secret generated for this run, printed once.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use turn_server::auth::RestSecrets;
use turn_server::cli::{self, CliError};
use turn_server::config::ServerConfig;
use turn_server::driver::{Server, Settings};

fn main() -> ExitCode {
    // A worker that panics takes the process down, so a supervisor restarts it, rather than
    // leaving a server that answers on some sockets and not others.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(70);
    }));
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let inv = match cli::parse(args.clone()) {
        Ok(i) => i,
        Err(CliError::Args(e)) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(e) => {
            eprintln!("turnserver: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = inv.config;
    let log = match cli::init_logging(
        config.log_json,
        config.log_file.as_deref(),
        &config.log_level,
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("turnserver: log-file: {e}");
            return ExitCode::from(2);
        }
    };
    // No credentials configured: REST credentials under a fresh secret, shown once, so the
    // server is never open and the operator can use it at once.
    let generated = generate_secret(&mut config, None);
    let settings = match Settings::from_config(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("turnserver: {e}");
            return ExitCode::from(1);
        }
    };
    // Where clients reach the server: a specific listening address, else the relay address.
    let host = config
        .listening_ips
        .first()
        .copied()
        .or_else(|| settings.relay_ips.first().map(|r| r.advertise));
    open_files_limit(&settings);
    let server = match Server::start(settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("turnserver: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        udp = ?server.udp_addrs(),
        tcp = ?server.tcp_addrs(),
        tls = ?server.tls_addrs(),
        metrics = ?server.metrics_addr(),
        realm = %config.realm,
        workers = config.workers,
        user_db = config.has_user_db(),
        "turnserver running"
    );
    if config.workers > 1 && !config.no_tcp_relay {
        tracing::warn!(
            workers = config.workers,
            "RFC 6062 TCP relaying needs workers=1 (a data connection may reach another \
             worker than its allocation's): TCP allocations are refused with 442"
        );
    }
    if let Some(secret) = &generated {
        print_generated(secret, host, &config);
    }
    let mut draining: Option<Instant> = None;
    let waited = cli::wait_for_signals(|signal| match signal {
        cli::Signal::Hangup => {
            if let Some(new) = reload(&args, &config, generated.as_deref(), &server, &log) {
                config = new;
            }
            true
        }
        cli::Signal::Drain => {
            if draining.is_none() {
                server.drain();
                draining = Some(Instant::now());
                tracing::warn!(
                    allocations = server.metrics().total().allocations,
                    deadline_s = config.drain_timeout,
                    "SIGUSR1: draining; new allocations are refused, and the server exits when \
                     the last one is gone"
                );
            }
            true
        }
        cli::Signal::Tick => match draining {
            None => true,
            Some(since) => {
                let left = server.metrics().total().allocations;
                let late = config.drain_timeout > 0
                    && since.elapsed() >= Duration::from_secs(config.drain_timeout);
                if left == 0 {
                    tracing::info!("drained: no allocation left");
                } else if late {
                    tracing::warn!(allocations = left, "drain-timeout reached: exiting");
                }
                left > 0 && !late
            }
        },
    });
    if let Err(e) = waited {
        eprintln!("turnserver: signals: {e}");
    }
    let metrics = server.metrics().clone();
    server.shutdown();
    let t = metrics.total();
    tracing::info!(
        allocations_created = t.turn.allocations_created,
        packets_relayed = t.turn.packets_to_peers + t.turn.packets_to_clients,
        "stopped"
    );
    ExitCode::SUCCESS
}

/// Raises the open-files limit to the hard limit, and says when it still cannot hold a
/// socket for every relay port.
fn open_files_limit(settings: &Settings) {
    match cli::raise_open_files_limit() {
        Ok((limit, was)) => {
            let ports = usize::from(settings.ports.1.saturating_sub(settings.ports.0)) + 1;
            let relay_sockets = ports * settings.relay_ips.len();
            if limit < relay_sockets as u64 {
                tracing::warn!(
                    limit,
                    relay_ports = relay_sockets,
                    "the open-files limit is below the relay ports: allocations beyond about \
                     this many fail (508); raise it (ulimit -n, or LimitNOFILE= under systemd)"
                );
            } else {
                tracing::debug!(limit, was, "open-files limit");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the open-files limit could not be raised"),
    }
}

/// With no credentials configured, turns REST credentials on under a secret: `kept` (the
/// one generated at start, on a reload) or a fresh one, which is returned.
fn generate_secret(config: &mut ServerConfig, kept: Option<&str>) -> Option<String> {
    if !config.users.is_empty() || !config.static_auth_secrets.is_empty() || config.has_user_db() {
        return None;
    }
    let secret = kept.map(str::to_owned).unwrap_or_else(|| {
        let mut raw = [0u8; 24];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut raw);
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
    });
    config.use_auth_secret = true;
    config.static_auth_secrets.push(secret.clone());
    Some(secret)
}

/// SIGHUP: the command line and file read again. What can change while running is applied
/// (credentials, peer lists, quotas, bandwidth, certificate, log level) without touching a
/// live allocation; what needs a restart is named and keeps its running value. A file that
/// does not parse is refused, with its line, and the running configuration stays.
fn reload(
    args: &[std::ffi::OsString],
    running: &ServerConfig,
    generated: Option<&str>,
    server: &Server,
    log: &cli::LogLevel,
) -> Option<ServerConfig> {
    let refused = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "SIGHUP: configuration refused; the running one stays");
        None
    };
    let mut new = match cli::parse(args.iter().cloned()) {
        Ok(i) => i.config,
        Err(e) => return refused(&e),
    };
    generate_secret(&mut new, generated);
    let settings = match Settings::from_config(&new) {
        Ok(s) => s,
        Err(e) => return refused(&e),
    };
    if let Err(e) = log.set(&new.log_level) {
        return refused(&format!("log-level: {e}"));
    }
    let restart_only = restart_only_changes(running, &new);
    if !restart_only.is_empty() {
        tracing::warn!(
            keys = %restart_only.join(", "),
            "SIGHUP: these changes need a restart; their running values stay"
        );
    }
    server.reload(settings.reloadable());
    tracing::info!(
        users = new.users.len(),
        secrets = new.static_auth_secrets.len(),
        "SIGHUP: configuration reloaded; allocations and connections kept"
    );
    // What is running: the new values where they apply, the old where a restart is needed.
    let mut kept = new;
    keep_restart_only(running, &mut kept);
    Some(kept)
}

/// The keys whose change needs a restart: listeners (the PROXY protocol ones and the
/// front-ends they believe included), relay addresses and ports, workers, the user database
/// and the fleet, metrics and log destinations.
macro_rules! restart_only {
    ($($field:ident => $key:literal),* $(,)?) => {
        fn restart_only_changes(old: &ServerConfig, new: &ServerConfig) -> Vec<&'static str> {
            let mut changed = Vec::new();
            $(if old.$field != new.$field { changed.push($key); })*
            changed
        }
        fn keep_restart_only(old: &ServerConfig, new: &mut ServerConfig) {
            $(new.$field = old.$field.clone();)*
        }
    };
}

restart_only! {
    listening_port => "listening-port",
    tls_listening_port => "tls-listening-port",
    listening_ips => "listening-ip",
    relay_ips => "relay-ip",
    external_ips => "external-ip",
    min_port => "min-port",
    max_port => "max-port",
    no_udp => "no-udp",
    no_tcp => "no-tcp",
    no_tls => "no-tls",
    workers => "workers",
    prometheus => "prometheus",
    prometheus_port => "prometheus-port",
    prometheus_address => "prometheus-address",
    userdb => "userdb",
    psql_userdb => "psql-userdb",
    log_file => "log-file",
    log_json => "log-json",
    tcp_proxy_port => "tcp-proxy-port",
    tls_proxy_port => "tls-proxy-port",
    proxy_protocol_from => "proxy-protocol-from",
    fleet_quota => "fleet-quota",
    server_name => "server-name",
    fleet_dead_after => "fleet-dead-after",
}

/// The generated secret, and what a WebRTC application would put in its configuration.
fn print_generated(secret: &str, relay: Option<std::net::IpAddr>, config: &ServerConfig) {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 24 * 3600;
    let username = format!("{expiry}:demo");
    let credential = RestSecrets::password(secret.as_bytes(), &username);
    let host = match relay {
        Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Some(ip) => ip.to_string(),
        None => "127.0.0.1".into(),
    };
    let port = config.listening_port;
    let mut urls = vec![format!("\"stun:{host}:{port}\"")];
    if !config.no_udp {
        urls.push(format!("\"turn:{host}:{port}?transport=udp\""));
    }
    if !config.no_tcp {
        urls.push(format!("\"turn:{host}:{port}?transport=tcp\""));
    }
    let urls = urls.join(", ");
    println!(
        "\nNo credentials were configured: TURN REST API credentials are on, with this secret \
         (shown once; pass --use-auth-secret --static-auth-secret=<it> to keep it):\n\n  {secret}\n\n\
         An application server gives each client a username `<expiry unix time>:<user>` and the \
         credential base64(HMAC-SHA1(secret, username)). One valid for 24 hours:\n\n\
         iceServers: [{{\n    \"urls\": [{urls}],\n    \
         \"username\": \"{username}\",\n    \"credential\": \"{credential}\"\n}}]\n"
    );
}
