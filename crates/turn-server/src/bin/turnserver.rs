//! `turnserver`: TURN (RFC 8656) and STUN (RFC 8489) over UDP, TCP and TLS, configured with
//! coturn's keys and flags. With no configuration it starts on port 3478 with TURN REST API
//! credentials under a secret generated for this run, printed once.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use turn_server::auth::RestSecrets;
use turn_server::cli::{self, CliError};
use turn_server::driver::{Server, Settings};

fn main() -> ExitCode {
    // A worker that panics takes the process down, so a supervisor restarts it, rather than
    // leaving a server that answers on some sockets and not others.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(70);
    }));
    let inv = match cli::parse(std::env::args_os()) {
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
    if let Err(e) = cli::init_logging(config.log_json, config.log_file.as_deref(), inv.verbose) {
        eprintln!("turnserver: log-file: {e}");
        return ExitCode::from(2);
    }
    // No credentials configured: REST credentials under a fresh secret, shown once, so the
    // server is never open and the operator can use it at once.
    let generated = if config.users.is_empty() && config.static_auth_secrets.is_empty() {
        let mut raw = [0u8; 24];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut raw);
        let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        config.use_auth_secret = true;
        config.static_auth_secrets.push(secret.clone());
        Some(secret)
    } else {
        None
    };
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
        "turnserver running"
    );
    if let Some(secret) = generated {
        print_generated(&secret, host, &config);
    }
    // coturn's log rotation sends SIGHUP: keep running (the log file is appended to by path
    // on each open; use copytruncate rotation).
    let waited = cli::wait_for_termination(|| {
        tracing::info!("SIGHUP: nothing to reload; still running");
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

/// The generated secret, and what a WebRTC application would put in its configuration.
fn print_generated(
    secret: &str,
    relay: Option<std::net::IpAddr>,
    config: &turn_server::config::ServerConfig,
) {
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
