//! `stunserver`: the STUN Binding server alone (RFC 8489) over UDP and TCP, with RFC 5780 NAT
//! behaviour discovery when given an alternate address: it then answers on the four
//! combinations of the two IPs and two ports and honours CHANGE-REQUEST, RESPONSE-PORT and
//! PADDING.
//!
//! ```text
//! stunserver                                         # 0.0.0.0:3478, plain STUN
//! stunserver --primary 127.0.0.1:3478 --alternate 127.0.0.2:3479
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::{Arg, ArgAction, Command};
use stun_codec::StreamFramer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use turn_server::stun::{StunServer, StunServerConfig};

/// A TCP connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(30);

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
        if a.ip() == primary.ip() || a.port() == primary.port() || a.is_ipv4() != primary.is_ipv4()
        {
            eprintln!(
                "stunserver: the alternate address needs another IP and another port of the same \
                 family (RFC 5780 §4)"
            );
            return ExitCode::from(2);
        }
    }
    let _ = turn_server::cli::init_logging(m.get_flag("log-json"), None, m.get_flag("verbose"));
    let config = StunServerConfig {
        software: Some(concat!("nat-traversal stunserver ", env!("CARGO_PKG_VERSION")).into()),
        alternate,
        ..StunServerConfig::new(primary)
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stunserver: {e}");
            return ExitCode::from(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    let tcp = !m.get_flag("no-tcp");
    match local.block_on(&rt, serve(config, tcp)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stunserver: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: StunServerConfig, tcp: bool) -> std::io::Result<()> {
    let server = Rc::new(RefCell::new(StunServer::new(config.clone())));
    let mut sockets = HashMap::new();
    let locals = server.borrow().local_addresses();
    for addr in &locals {
        let s = UdpSocket::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("{addr}: {e}")))?;
        sockets.insert(*addr, Rc::new(s));
    }
    let sockets = Rc::new(sockets);
    for addr in &locals {
        tokio::task::spawn_local(udp(server.clone(), sockets.clone(), *addr));
    }
    if tcp {
        let l = TcpListener::bind(config.primary)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("tcp {}: {e}", config.primary)))?;
        tokio::task::spawn_local(tcp_accept(server.clone(), l));
    }
    tracing::info!(udp = ?locals, tcp, rfc5780 = config.alternate.is_some(), "stunserver running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let s = server.borrow().stats();
    tracing::info!(
        success = s.success,
        errors = s.errors,
        dropped = s.dropped,
        "stopped"
    );
    Ok(())
}

/// Datagrams on one of the server's addresses; the answer leaves from the address the core
/// picks (RFC 5780 CHANGE-REQUEST) to the port it picks (RESPONSE-PORT).
async fn udp(
    server: Rc<RefCell<StunServer>>,
    sockets: Rc<HashMap<SocketAddr, Rc<UdpSocket>>>,
    local: SocketAddr,
) {
    let socket = sockets[&local].clone();
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 2048];
    loop {
        let Ok((n, remote)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let reply = server
            .borrow_mut()
            .handle_datagram(local, remote, &buf[..n], &mut out);
        if let Some(r) = reply {
            if let Some(s) = sockets.get(&r.from) {
                let _ = s.try_send_to(&out[..r.len], r.to);
            }
        }
    }
}

async fn tcp_accept(server: Rc<RefCell<StunServer>>, listener: TcpListener) {
    loop {
        let (mut conn, remote) = turn_server::driver::accept(&listener).await;
        let server = server.clone();
        tokio::task::spawn_local(async move {
            let Ok(local) = conn.local_addr() else {
                return;
            };
            let mut framer = StreamFramer::new();
            let mut buf = vec![0u8; 2048];
            let mut out = vec![0u8; 2048];
            loop {
                let n = match tokio::time::timeout(IDLE, conn.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => return,
                };
                framer.push(&buf[..n]);
                loop {
                    let frame = match framer.next_frame() {
                        Ok(Some((_, frame))) => frame,
                        Ok(None) => break,
                        Err(_) => return, // not STUN: close
                    };
                    // Over TCP the answer can only go back on the connection.
                    let reply = server
                        .borrow_mut()
                        .handle_datagram(local, remote, frame, &mut out);
                    if let Some(r) = reply {
                        if conn.write_all(&out[..r.len]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
