//! What the stack's WebRTC programs (webrtc-peer, webrtc-media) share: the ICE options,
//! logging, and the copy-and-paste exchange of one JSON description line each way.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};
use peer_connection::driver::{self, DriverConfig, IceServer, Session};
use peer_connection::{AgentConfig, Event, PeerConnectionState, SessionDescription};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// The longest signalling line read (a description with many candidates stays far below).
pub(crate) const MAX_LINE: usize = 256 * 1024;

/// Standard input, bounded, for the peer's description.
pub(crate) type Stdin = tokio::io::Take<BufReader<tokio::io::Stdin>>;

/// Standard input for [`read_description`].
pub(crate) fn stdin() -> Stdin {
    BufReader::new(tokio::io::stdin()).take(MAX_LINE as u64)
}

/// The ICE options every program takes.
pub(crate) fn ice_args() -> Vec<Arg> {
    vec![
        Arg::new("bind")
            .long("bind")
            .value_name("IP")
            .action(ArgAction::Append)
            .help("bind this local address only (repeatable; default: every interface)"),
        Arg::new("loopback")
            .long("loopback")
            .action(ArgAction::SetTrue)
            .help("use loopback addresses as host candidates"),
        Arg::new("stun")
            .long("stun")
            .value_name("URL")
            .action(ArgAction::Append)
            .help("a STUN server, e.g. stun:stun.example.org (repeatable)"),
        Arg::new("turn")
            .long("turn")
            .value_name("URL")
            .action(ArgAction::Append)
            .help("a TURN server, e.g. turn:host:3478?transport=tcp (repeatable)"),
        Arg::new("user")
            .long("user")
            .value_name("NAME")
            .help("TURN user name"),
        Arg::new("pass")
            .long("pass")
            .value_name("PASSWORD")
            .help("TURN password"),
        Arg::new("relay-only")
            .long("relay-only")
            .action(ArgAction::SetTrue)
            .help("use relayed candidates only"),
        Arg::new("timeout")
            .long("timeout")
            .value_name("SECS")
            .default_value("30")
            .value_parser(clap::value_parser!(u64))
            .help("give up when not connected after this long"),
        Arg::new("no-progress")
            .long("no-progress")
            .action(ArgAction::SetTrue)
            .help("no progress bar"),
    ]
}

/// Logs to stderr; RUST_LOG sets the filter (default: warnings).
pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // rtc-dtls warns of every TLS 1.3 extension in a browser's ClientHello
            // (key_share, supported_versions, …), which DTLS 1.2 ignores by design.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "warn,rtc_dtls::handshake::handshake_message_client_hello=error".into()
            }),
        )
        .init();
}

/// The timeout the user asked for.
pub(crate) fn timeout(m: &ArgMatches) -> Duration {
    Duration::from_secs(*m.get_one::<u64>("timeout").expect("has a default"))
}

pub(crate) fn driver_config(m: &ArgMatches) -> Result<DriverConfig, String> {
    let mut agent = AgentConfig::new(ice_agent::Role::Controlling);
    agent.allow_loopback = m.get_flag("loopback");
    agent.relay_only = m.get_flag("relay-only");
    let mut config = DriverConfig::new(agent);
    for ip in m.get_many::<String>("bind").into_iter().flatten() {
        let ip: IpAddr = ip.parse().map_err(|_| format!("--bind {ip}: not an IP"))?;
        config.ips.push(ip);
    }
    for url in m.get_many::<String>("stun").into_iter().flatten() {
        config
            .servers
            .push(IceServer::stun(url).map_err(|e| format!("--stun {url}: {e}"))?);
    }
    let user = m.get_one::<String>("user").cloned().unwrap_or_default();
    let pass = m.get_one::<String>("pass").cloned().unwrap_or_default();
    for url in m.get_many::<String>("turn").into_iter().flatten() {
        config
            .servers
            .push(IceServer::turn(url, &user, &pass).map_err(|e| format!("--turn {url}: {e}"))?);
    }
    Ok(config)
}

/// Our description once gathering is over (or after 3 s), and the other events that came
/// meanwhile (a Track with our answer).
pub(crate) async fn gathered(
    session: &Session,
    events: &mut driver::Events<Event>,
) -> Result<(SessionDescription, Vec<Event>), String> {
    let mut other = Vec::new();
    let gathered = async {
        while let Some(e) = events.next().await {
            match e {
                Event::IceCandidate(c) if c.is_end_of_candidates() => return,
                Event::IceCandidate(_) => {}
                e => other.push(e),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), gathered).await;
    let d = session.local_description().ok_or("no local description")?;
    Ok((d, other))
}

/// Prints our description once gathering is over (or after 3 s): one JSON line.
pub(crate) async fn print_description(
    session: &Session,
    events: &mut driver::Events<Event>,
    what: &str,
) -> Result<Vec<Event>, String> {
    let (d, other) = gathered(session, events).await?;
    let program = std::env::args().next().unwrap_or_default();
    let program = std::path::Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    eprintln!("{program}: this is the {what}; paste it into the other peer:");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", d.to_json()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    Ok(other)
}

pub(crate) async fn read_description(stdin: &mut Stdin) -> Result<SessionDescription, String> {
    eprintln!("webrtc-peer: paste the peer's description (one JSON line):");
    loop {
        let mut line = String::new();
        let n = stdin
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading stdin: {e}"))?;
        if n == 0 {
            return Err("stdin ended before the peer's description".into());
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        return SessionDescription::from_json(line)
            .map_err(|e| format!("not a description (JSON with \"type\" and \"sdp\"): {e}"));
    }
}

/// Waits for the next event, failing when the session fails or `timeout` passes before it
/// is connected.
pub(crate) async fn next_event(
    events: &mut driver::Events<Event>,
    connected: &mut bool,
    timeout: Duration,
) -> Result<Event, String> {
    let e = if *connected {
        events.next().await
    } else {
        tokio::time::timeout(timeout, events.next())
            .await
            .map_err(|_| format!("not connected after {} s", timeout.as_secs()))?
    };
    let e = e.ok_or("the session ended")?;
    match &e {
        Event::ConnectionState(PeerConnectionState::Connected) => *connected = true,
        Event::ConnectionState(PeerConnectionState::Failed) => {
            return Err("the connection failed (ICE or DTLS; RUST_LOG=debug says more)".into())
        }
        _ => {}
    }
    Ok(e)
}
