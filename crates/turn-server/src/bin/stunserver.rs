//! `stunserver`: the STUN Binding server alone (RFC 8489) over UDP and TCP, with RFC 5780 NAT
//! behaviour discovery when given an alternate address: it then answers on the four
//! combinations of the two IPs and two ports and honours CHANGE-REQUEST, RESPONSE-PORT and
//! PADDING. It is the `turnserver` driver in its STUN-only mode: the same sockets, timers and
//! back-off, no relaying.
//!
//! ```text
//! stunserver                                         # 0.0.0.0:3478, plain STUN
//! stunserver --primary 127.0.0.1:3478 --alternate 127.0.0.2:3479
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};
use turn_server::driver::{Server, Settings};

fn command() -> Command {
    Command::new("stunserver")
        .version(env!("CARGO_PKG_VERSION"))
        .about("STUN Binding server (RFC 8489) with RFC 5780 NAT behaviour discovery")
        .arg(
            Arg::new("primary")
                .long("primary")
                .value_name("IP:PORT")
                .default_value("0.0.0.0:3478")
                .help("primary transport address (A1, P1)"),
        )
        .arg(
            Arg::new("alternate")
                .long("alternate")
                .value_name("IP:PORT")
                .help("alternate address (A2, P2), another IP and port: turns on RFC 5780"),
        )
        .arg(
            Arg::new("no-tcp")
                .long("no-tcp")
                .action(ArgAction::SetTrue)
                .help("no TCP listener"),
        )
        .arg(
            Arg::new("log-json")
                .long("log-json")
                .action(ArgAction::SetTrue)
                .help("log JSON lines"),
        )
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("debug logs"),
        )
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
    let addr = |name: &str| -> Result<Option<SocketAddr>, String> {
        m.get_one::<String>(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{name}: {v:?} is not an IP:PORT"))
            })
            .transpose()
    };
    let (primary, alternate) = match (addr("primary"), addr("alternate")) {
        (Ok(Some(p)), Ok(a)) => (p, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("stunserver: {e}");
            return ExitCode::from(2);
        }
        _ => unreachable!("primary has a default"),
    };
    if let Some(a) = alternate {
        if a.ip() == primary.ip()
            || a.port() == primary.port()
            || a.is_ipv4() != primary.is_ipv4()
            || primary.port() == 0
            || a.port() == 0
        {
            eprintln!(
                "stunserver: the alternate address needs another IP and another port of the same \
                 family (RFC 5780 §4), and both ports must be given"
            );
            return ExitCode::from(2);
        }
    }
    let level = if m.get_flag("verbose") {
        "debug"
    } else {
        "info"
    };
    let _ = turn_server::cli::init_logging(m.get_flag("log-json"), None, level);
    let tcp = !m.get_flag("no-tcp");
    let server = match Server::start(Settings::stun_only(primary, alternate, tcp)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stunserver: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(udp = ?server.udp_addrs(), tcp = ?server.tcp_addrs(), rfc5780 = alternate.is_some(), "stunserver running");
    if let Err(e) = turn_server::cli::wait_for_signals(|_| true) {
        eprintln!("stunserver: signals: {e}");
    }
    let metrics = server.metrics().clone();
    server.shutdown();
    let s = metrics.total().stun;
    tracing::info!(
        success = s.success,
        errors = s.errors,
        dropped = s.dropped,
        "stopped"
    );
    ExitCode::SUCCESS
}
