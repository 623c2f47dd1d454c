//! `rooms`: WebSocket signalling with rooms, the demo page, and (by default) our STUN/TURN
//! server in-process with TURN REST credentials handed to every peer. `docs/rooms.md` has the
//! protocol, every flag, fleet mode and the limits.
//!
//! ```text
//! rooms                                   # http://127.0.0.1:8080/, TURN on 127.0.0.1:3478
//! rooms --listen 0.0.0.0:8080 --turn-secret S --turn-url turn:turn.example.org:3478
//! rooms --redis redis://127.0.0.1:6379    # one of a fleet
//! rooms token --secret S --room standup --ttl 3600
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use rooms::hub::{HubConfig, TurnCredentials};
use rooms::server::turn::InProcessTurn;
use rooms::server::{Server, ServerConfig};

fn command() -> Command {
    let secs = || value_parser!(u64);
    Command::new("rooms")
        .about("WebSocket signalling with rooms for WebRTC, a demo page, and STUN/TURN in-process")
        .after_help(
            "With no flags: signalling and the demo page on http://127.0.0.1:8080/, and STUN/TURN \
             on 127.0.0.1:3478 (UDP and TCP) with credentials made for each peer. Open the URL in \
             two tabs and join one room. RUST_LOG sets the log filter (default: info).",
        )
        .subcommand(
            Command::new("token")
                .about("print a join token for --token-secret servers")
                .arg(Arg::new("secret").long("secret").required(true).value_name("SECRET"))
                .arg(
                    Arg::new("room")
                        .long("room")
                        .required(true)
                        .value_name("ROOM")
                        .help("the room, or * for any"),
                )
                .arg(
                    Arg::new("ttl")
                        .long("ttl")
                        .value_name("SECS")
                        .default_value("3600")
                        .value_parser(secs()),
                ),
        )
        .arg(
            Arg::new("listen")
                .long("listen")
                .value_name("ADDR")
                .default_value("127.0.0.1:8080")
                .value_parser(value_parser!(SocketAddr))
                .help("where HTTP and WebSocket are served"),
        )
        .arg(
            Arg::new("turn-port")
                .long("turn-port")
                .value_name("PORT")
                .default_value("3478")
                .value_parser(value_parser!(u16))
                .help("the in-process STUN/TURN server's port, on the --listen address (0: any)"),
        )
        .arg(
            Arg::new("turn-secret")
                .long("turn-secret")
                .value_name("SECRET")
                .help("use an external turnserver with this static-auth-secret (no in-process server)"),
        )
        .arg(
            Arg::new("turn-url")
                .long("turn-url")
                .value_name("URL")
                .action(ArgAction::Append)
                .help("a stun:/turn:/turns: URL of the external server (repeatable; {host} is the page's host)"),
        )
        .arg(
            Arg::new("no-turn")
                .long("no-turn")
                .action(ArgAction::SetTrue)
                .help("no STUN/TURN at all (iceServers is empty)"),
        )
        .arg(
            Arg::new("turn-ttl")
                .long("turn-ttl")
                .value_name("SECS")
                .default_value("86400")
                .value_parser(secs())
                .help("how long a TURN credential lasts"),
        )
        .arg(
            Arg::new("allowed-origin")
                .long("allowed-origin")
                .value_name("ORIGIN")
                .action(ArgAction::Append)
                .help("an Origin browsers may connect from, e.g. https://app.example.org (repeatable; * for any; default: this server's own)"),
        )
        .arg(
            Arg::new("token-secret")
                .long("token-secret")
                .value_name("SECRET")
                .help("joins need a token signed with this secret (see `rooms token`)"),
        )
        .arg(num("max-room-size", "6", "the most peers in a room"))
        .arg(num("max-connections", "10000", "the most connections at once"))
        .arg(num("max-message-size", "65536", "the largest message, in bytes"))
        .arg(num("rate", "50", "messages a connection may send per second"))
        .arg(num("burst", "200", "messages a connection may send at once"))
        .arg(num("idle-timeout", "30", "seconds a connection may stay in no room"))
        .arg(num("ping-interval", "15", "seconds between pings"))
        .arg(num("ping-timeout", "45", "seconds of silence (no pong) before a connection is closed"))
        .arg(
            Arg::new("redis")
                .long("redis")
                .value_name("URL")
                .help("fleet mode: share rooms with other instances through this Redis (redis://host:port, redis+unix:///path)"),
        )
        .arg(
            Arg::new("redis-prefix")
                .long("redis-prefix")
                .value_name("PREFIX")
                .default_value("rooms")
                .help("the prefix of the fleet's Redis channels"),
        )
        .arg(num("heartbeat", "1", "fleet mode: seconds between heartbeats"))
        .arg(num("dead-after", "5", "fleet mode: seconds of silence before an instance's peers are removed"))
        .arg(
            Arg::new("metrics")
                .long("metrics")
                .value_name("ADDR")
                .value_parser(value_parser!(SocketAddr))
                .help("serve Prometheus /metrics and /healthz here"),
        )
        .arg(
            Arg::new("no-demo")
                .long("no-demo")
                .action(ArgAction::SetTrue)
                .help("do not serve the demo page (signalling only)"),
        )
        .arg(
            Arg::new("log-json")
                .long("log-json")
                .action(ArgAction::SetTrue)
                .help("log JSON lines"),
        )
}

fn num(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("N")
        .default_value(default)
        .value_parser(value_parser!(u64))
        .help(help)
}

fn n(m: &ArgMatches, name: &str) -> u64 {
    *m.get_one::<u64>(name).expect("has a default")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn main() -> ExitCode {
    let m = command().get_matches();
    if let Some(("token", t)) = m.subcommand() {
        let secret = t.get_one::<String>("secret").expect("required");
        let room = t.get_one::<String>("room").expect("required");
        if room != "*" && !rooms::protocol::valid_room(room) {
            eprintln!("rooms: a room name is 1 to 64 of A-Z a-z 0-9 _ - (or *)");
            return ExitCode::from(2);
        }
        let ttl = *t.get_one::<u64>("ttl").expect("has a default");
        println!(
            "{}",
            rooms::token::mint(secret.as_bytes(), room, unix_now() + ttl)
        );
        return ExitCode::SUCCESS;
    }
    let json = m.get_flag("log-json");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs on stderr; stdout has the one line with the URL.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rooms: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&m)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rooms: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(m: &ArgMatches) -> Result<(), String> {
    let listen = *m.get_one::<SocketAddr>("listen").expect("has a default");
    let ttl = Duration::from_secs(n(m, "turn-ttl"));
    let urls: Vec<String> = m
        .get_many::<String>("turn-url")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let mut in_process = None;
    let turn = match m.get_one::<String>("turn-secret") {
        _ if m.get_flag("no-turn") => None,
        Some(secret) => {
            if urls.is_empty() {
                return Err("--turn-secret needs at least one --turn-url".into());
            }
            Some(TurnCredentials {
                secret: secret.clone().into_bytes(),
                urls,
                ttl,
            })
        }
        None => {
            if !urls.is_empty() {
                return Err("--turn-url needs --turn-secret (the external server's)".into());
            }
            let port = *m.get_one::<u16>("turn-port").expect("has a default");
            let t = InProcessTurn::start(listen.ip(), port, ttl).map_err(|e| e.to_string())?;
            let c = t.credentials.clone();
            in_process = Some(t);
            Some(c)
        }
    };
    let secs = |name| Duration::from_secs(n(m, name));
    let redis = m.get_one::<String>("redis").cloned();
    let hub = HubConfig {
        max_room_size: n(m, "max-room-size") as usize,
        max_message_size: n(m, "max-message-size") as usize,
        rate: n(m, "rate") as f64,
        burst: n(m, "burst") as f64,
        idle_timeout: secs("idle-timeout"),
        token_secret: m
            .get_one::<String>("token-secret")
            .map(|s| s.clone().into_bytes()),
        turn,
        fleet: redis.as_ref().map(|_| rooms::hub::FleetConfig {
            heartbeat: secs("heartbeat"),
            dead_after: secs("dead-after"),
        }),
        ..Default::default()
    };
    let config = ServerConfig {
        listen,
        metrics: m.get_one::<SocketAddr>("metrics").copied(),
        allowed_origins: m
            .get_many::<String>("allowed-origin")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        max_connections: n(m, "max-connections") as usize,
        ping_interval: secs("ping-interval"),
        ping_timeout: secs("ping-timeout"),
        redis,
        redis_prefix: m
            .get_one::<String>("redis-prefix")
            .expect("has a default")
            .clone(),
        demo: !m.get_flag("no-demo"),
        hub,
        ..Default::default()
    };
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    let addr = server.addr();
    if let Some(t) = &in_process {
        tracing::info!(udp = %t.udp_addr(), "STUN/TURN in-process");
    }
    tracing::info!(http = %addr, metrics = ?server.metrics_addr(), instance = server.instance(), "rooms running");
    // One line on stdout, for people and for the programs that start it.
    println!("rooms: open http://{addr}/ in two browser tabs and join the same room");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    server.shutdown();
    if let Some(t) = in_process {
        t.shutdown();
    }
    Ok(())
}
