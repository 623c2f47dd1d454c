//! `ice-peer`: connects two processes with ICE and exchanges data over the selected pair.
//!
//! Signalling is a TCP rendezvous: the offerer (controlling) listens, the answerer
//! (controlled) connects, and both send lines over it: `ufrag U`, `pwd P`, each candidate as
//! `candidate:…` (RFC 8839) as soon as it is gathered (trickle ICE), then
//! `end-of-candidates`. Once a pair is selected, the offerer sends `ping 1` … `ping N` over
//! it, each after the echo of the one before, and the answerer echoes them as `pong i`. The
//! offerer then closes the signalling connection, which ends the answerer.
//!
//! ```text
//! ice-peer offer  --signal-listen 127.0.0.1:7000 --loopback --bind 127.0.0.1
//! ice-peer answer --signal-connect 127.0.0.1:7000 --loopback --bind 127.0.0.1
//! ```

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ice_agent::driver::{self, DriverConfig, Event, Events, Handle, IceServer};
use ice_agent::{AgentConfig, ConnectionState, Credentials, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "\
ice-peer: connect two processes with ICE and exchange data over the selected pair

usage:
  ice-peer offer  --signal-listen ADDR  [options]   controlling; waits for the answerer
  ice-peer answer --signal-connect ADDR [options]   controlled

options:
  --bind IP          bind this local address only (repeatable; default: every interface)
  --interface NAME   only addresses of this interface (repeatable)
  --loopback         use loopback addresses as host candidates
  --ports LO-HI      bind local ports from this range
  --stun URL         a STUN server, e.g. stun:stun.example.org (repeatable)
  --turn URL         a TURN server, e.g. turn:host?transport=tcp or turns:host (repeatable)
  --user NAME        TURN user name
  --pass PASSWORD    TURN password
  --ca FILE          trust this PEM certificate for turns: (default: the system's roots)
  --relay-only       use relayed candidates only
  --count N          pings to exchange (offerer; default 5)
  --timeout SECS     give up after this long (default 30)

The offerer prints `signalling on ADDR` once it listens (port 0 picks one), both print
`selected pair: LOCAL -> REMOTE`, and the offerer ends with `exchanged N messages`.
RUST_LOG sets the log filter (default: warn), logs go to stderr.
";

/// The longest signalling line accepted (a candidate line is well under 300 bytes).
const MAX_LINE: usize = 4096;

struct Args {
    offer: bool,
    signal: String,
    config: DriverConfig,
    turn: Vec<String>,
    user: String,
    pass: String,
    ca: Option<String>,
    count: u32,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("missing mode: offer or answer")?;
    let offer = match mode.as_str() {
        "offer" => true,
        "answer" => false,
        "-h" | "--help" => return Err(String::new()),
        m => return Err(format!("unknown mode {m:?}: offer or answer")),
    };
    let role = if offer {
        Role::Controlling
    } else {
        Role::Controlled
    };
    let mut a = Args {
        offer,
        signal: String::new(),
        config: DriverConfig::new(AgentConfig::new(role)),
        turn: Vec::new(),
        user: String::new(),
        pass: String::new(),
        ca: None,
        count: 5,
        timeout: Duration::from_secs(30),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--signal-listen" if offer => a.signal = value()?,
            "--signal-connect" if !offer => a.signal = value()?,
            "--bind" => {
                let v = value()?;
                let ip: IpAddr = v.parse().map_err(|_| format!("--bind {v}: not an IP"))?;
                a.config.ips.push(ip);
            }
            "--interface" => a.config.interfaces.push(value()?),
            "--loopback" => a.config.agent.allow_loopback = true,
            "--relay-only" => a.config.agent.relay_only = true,
            "--ports" => {
                let v = value()?;
                let range = v
                    .split_once('-')
                    .and_then(|(l, h)| Some((l.parse().ok()?, h.parse().ok()?)))
                    .ok_or(format!("--ports {v}: expected LO-HI"))?;
                a.config.port_range = Some(range);
            }
            "--stun" => {
                let v = value()?;
                let s = IceServer::stun(&v).map_err(|e| e.to_string())?;
                a.config.servers.push(s);
            }
            "--turn" => a.turn.push(value()?),
            "--user" => a.user = value()?,
            "--pass" => a.pass = value()?,
            "--ca" => a.ca = Some(value()?),
            "--count" => {
                let v = value()?;
                a.count = v
                    .parse()
                    .map_err(|_| format!("--count {v}: not a number"))?;
            }
            "--timeout" => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v}: not a number"))?;
                a.timeout = Duration::from_secs(secs);
            }
            "-h" | "--help" => return Err(String::new()),
            f => return Err(format!("unknown option {f:?}")),
        }
    }
    if a.signal.is_empty() {
        return Err(if offer {
            "offer needs --signal-listen ADDR".into()
        } else {
            "answer needs --signal-connect ADDR".into()
        });
    }
    for url in &a.turn {
        let s = IceServer::turn(url, &a.user, &a.pass).map_err(|e| e.to_string())?;
        a.config.servers.push(s);
    }
    Ok(a)
}

/// A TLS configuration that trusts the certificates of a PEM file.
fn trusting_file(path: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{path}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{path}: no certificate"));
    }
    Ok(driver::tls_trusting(roots))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ice-peer: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ice-peer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = args.timeout;
    match rt.block_on(async { tokio::time::timeout(timeout, run(args)).await }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("ice-peer: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("ice-peer: no connection within {}s", timeout.as_secs());
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<(), String> {
    if let Some(ca) = &args.ca {
        args.config.tls = Some(trusting_file(ca)?);
    }
    let stream = if args.offer {
        let listener = TcpListener::bind(&args.signal)
            .await
            .map_err(|e| format!("signalling on {}: {e}", args.signal))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("signalling on {addr}");
        let (s, peer) = listener.accept().await.map_err(|e| e.to_string())?;
        eprintln!("answerer connected from {peer}");
        s
    } else {
        TcpStream::connect(&args.signal)
            .await
            .map_err(|e| format!("signalling to {}: {e}", args.signal))?
    };
    let (rd, mut wr) = stream.into_split();
    let (handle, events) = driver::start(args.config)
        .await
        .map_err(|e| e.to_string())?;
    let creds = handle.local_credentials();
    let hello = format!(
        "ice-options {}\nufrag {}\npwd {}\n",
        handle.local_ice_options(),
        creds.ufrag,
        creds.pwd
    );
    wr.write_all(hello.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let peer = Peer {
        handle,
        offer: args.offer,
        count: args.count,
    };
    peer.run(events, rd, wr).await
}

struct Peer {
    handle: Handle,
    offer: bool,
    count: u32,
}

impl Peer {
    async fn run(
        &self,
        mut events: Events,
        mut rd: OwnedReadHalf,
        mut wr: OwnedWriteHalf,
    ) -> Result<(), String> {
        let stream = self.handle.streams()[0];
        let mut remote = (None::<String>, None::<String>);
        // Signalling bytes not yet ending in a newline. Read in chunks, which is cancel-safe
        // in `select!` (a partly read line survives another branch winning).
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        // The offerer's ping in flight, and when to send it again if its echo is lost.
        let mut sent = 0u32;
        let mut resend = tokio::time::interval(Duration::from_millis(200));
        // The pings echoed (a resent ping is counted once).
        let mut echoed = std::collections::BTreeSet::new();
        loop {
            tokio::select! {
                ev = events.next() => {
                    let Some(ev) = ev else { return Err("session ended".into()) };
                    match ev {
                        Event::Ice(ice_agent::Event::LocalCandidate { candidate, .. }) => {
                            wr.write_all(format!("{candidate}\n").as_bytes()).await.map_err(|e| e.to_string())?;
                        }
                        Event::Ice(ice_agent::Event::GatheringComplete { .. }) => {
                            wr.write_all(b"end-of-candidates\n").await.map_err(|e| e.to_string())?;
                        }
                        Event::Ice(ice_agent::Event::StateChanged(s)) => {
                            eprintln!("state: {s:?}");
                            if s == ConnectionState::Failed {
                                return Err("ICE failed".into());
                            }
                        }
                        Event::Ice(ice_agent::Event::SelectedPair { local, remote, .. }) => {
                            println!(
                                "selected pair: {} {} -> {} {}",
                                local.kind, local.addr, remote.kind, remote.addr
                            );
                            if self.offer && sent == 0 {
                                sent = 1;
                                self.ping(stream, sent);
                                resend.reset();
                            }
                        }
                        Event::Data { data, .. } => {
                            let text = String::from_utf8_lossy(&data);
                            if let Some(i) = text.strip_prefix("ping ") {
                                echoed.insert(i.to_string());
                                let _ = self.handle.send(stream, 1, format!("pong {i}").as_bytes());
                            } else if let Some(i) = text.strip_prefix("pong ") {
                                if self.offer && i.parse() == Ok(sent) {
                                    println!("pong {sent}");
                                    if sent == self.count {
                                        println!("exchanged {sent} messages");
                                        self.handle.shutdown().await;
                                        let _ = wr.shutdown().await;
                                        return Ok(());
                                    }
                                    sent += 1;
                                    self.ping(stream, sent);
                                    resend.reset();
                                }
                            }
                        }
                        _ => {}
                    }
                }
                n = rd.read(&mut chunk) => {
                    let n = n.map_err(|e| e.to_string())?;
                    if n == 0 {
                        if !self.offer && !echoed.is_empty() {
                            println!("echoed {} messages", echoed.len());
                            self.handle.shutdown().await;
                            return Ok(());
                        }
                        return Err("the peer closed signalling".into());
                    }
                    pending.extend_from_slice(&chunk[..n]);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line);
                        self.signal(stream, line.trim(), &mut remote)?;
                    }
                    if pending.len() > MAX_LINE {
                        return Err("a signalling line is too long".into());
                    }
                }
                _ = resend.tick(), if sent > 0 => {
                    self.ping(stream, sent);
                }
            }
        }
    }

    fn ping(&self, stream: ice_agent::StreamId, i: u32) {
        let _ = self.handle.send(stream, 1, format!("ping {i}").as_bytes());
    }

    fn signal(
        &self,
        stream: ice_agent::StreamId,
        line: &str,
        remote: &mut (Option<String>, Option<String>),
    ) -> Result<(), String> {
        if let Some(o) = line.strip_prefix("ice-options ") {
            self.handle
                .set_remote_ice_options(o)
                .map_err(|e| e.to_string())?;
            return Ok(());
        } else if let Some(u) = line.strip_prefix("ufrag ") {
            remote.0 = Some(u.into());
        } else if let Some(p) = line.strip_prefix("pwd ") {
            remote.1 = Some(p.into());
        } else if line == "end-of-candidates" {
            self.handle
                .end_of_remote_candidates(stream)
                .map_err(|e| e.to_string())?;
            return Ok(());
        } else if line.starts_with("candidate:") {
            if let Err(e) = self.handle.add_remote_candidate_line(stream, line) {
                eprintln!("ignoring remote candidate {line:?}: {e}");
            }
            return Ok(());
        } else if line.is_empty() {
            return Ok(());
        } else {
            return Err(format!("unexpected signalling line {line:?}"));
        }
        // Once both have come.
        if let (Some(ufrag), Some(pwd)) = (&remote.0, &remote.1) {
            let credentials = Credentials {
                ufrag: ufrag.clone(),
                pwd: pwd.clone(),
            };
            self.handle
                .set_remote_credentials(credentials, false)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
