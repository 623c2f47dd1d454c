//! Against real Chromium (tests/browser/harness.mjs, driven over JSON lines), in a loopback-only
//! network namespace that this test joins to bind its own sockets: Chromium offers and we
//! answer, and the reverse; DataChannel echo of 1 MiB in 16 KiB messages and of one 256 KiB
//! message; relay-only through our turnserver.
//!
//! Needs root (unshare, setns), `/usr/bin/chromium`, `node` and `tests/browser/node_modules`
//! (`.ci/run` installs them). Without them the tests say so and pass, except under `CI=true`,
//! where they fail.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use peer_connection::driver::{self, DriverConfig, Session};
use peer_connection::{
    AgentConfig, ChannelId, Config, DataChannelEvent, DataChannelInit, Event, IceCandidate,
    SessionDescription,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// The turn-server tests' own helpers: its server settings (loopback peers allowed).
#[path = "../../turn-server/tests/common/mod.rs"]
mod turn_common;

const LIMIT: Duration = Duration::from_secs(60);
const MIB: usize = 1024 * 1024;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("no /usr/bin/chromium (apt-get install chromium)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node".into());
    }
    if !root()
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        return Some("no tests/browser/node_modules (cd tests/browser && npm ci)".into());
    }
    if Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .map_or(true, |s| !s.success())
    {
        return Some("unshare -n failed (the browser tests run as root)".into());
    }
    None
}

/// Skips (or, under CI=true, fails) when the browser tests cannot run.
fn available() -> bool {
    match missing() {
        None => true,
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the Chromium tests cannot run: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// The harness: Chromium in a namespace of its own, spoken to over its stdin and stdout.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
    events: VecDeque<Value>,
    /// Where the browser's trickled candidates go, once our side exists.
    peer: Option<Session>,
}

impl Browser {
    /// Starts the harness and waits for `ready`.
    async fn start() -> Browser {
        let mut child = Command::new("unshare")
            .args([
                "-n",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec node tests/browser/harness.mjs",
            ])
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the harness starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            stdin,
            lines,
            next_id: 0,
            events: VecDeque::new(),
            peer: None,
        };
        let ready = b.event("ready").await;
        eprintln!("chromium {} ready", ready["version"]);
        b
    }

    /// Moves this thread into the browser's network namespace: sockets bound here from now
    /// on are on its loopback.
    fn join_namespace(&self) {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.child.id()))
            .expect("the harness's namespace");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }

    async fn line(&mut self) -> Value {
        let v = tokio::time::timeout(LIMIT, self.lines.recv())
            .await
            .expect("the harness answers in time")
            .expect("the harness is running");
        if v["event"] == "icecandidate" {
            if let Some(peer) = &self.peer {
                let c: Option<IceCandidate> = serde_json::from_value(v["candidate"].clone()).ok();
                // Browsers signal the end of candidates as a null candidate.
                peer.add_ice_candidate(c.as_ref())
                    .expect("the browser's candidate");
            }
        }
        v
    }

    /// Sends a command and waits for its reply; events that come meanwhile are kept.
    async fn call(&mut self, mut cmd: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        cmd["id"] = json!(id);
        writeln!(self.stdin, "{cmd}").expect("the harness reads");
        loop {
            let v = self.line().await;
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{}: {e}", cmd["op"]);
                }
                return v["ok"].clone();
            }
            if v.get("event").is_some() {
                self.events.push_back(v);
            }
        }
    }

    /// The next event named `name` (earlier ones of other names are kept).
    async fn event(&mut self, name: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(i).unwrap();
        }
        loop {
            let v = self.line().await;
            if v["event"] == name {
                return v;
            }
            if v.get("event").is_some() {
                self.events.push_back(v);
            }
        }
    }

    async fn quit(mut self) {
        let _ = self.call(json!({"op": "quit"})).await;
        let _ = self.child.wait();
    }
}

fn desc(v: &Value) -> SessionDescription {
    serde_json::from_value(v.clone()).expect("a description")
}

/// Our session on the namespace's loopback.
async fn our_side(servers: Vec<driver::IceServer>) -> (Session, driver::Events<Event>) {
    let mut agent = AgentConfig::new(ice_agent::Role::Controlling);
    agent.allow_loopback = true;
    let mut d = DriverConfig::new(agent);
    d.ips = vec!["127.0.0.1".parse().unwrap()];
    d.servers = servers;
    driver::start(d, Config::default())
        .await
        .expect("our session starts")
}

/// Our description once gathering is over (candidates in it: no trickle from us).
async fn gathered(session: &Session, events: &mut driver::Events<Event>) -> SessionDescription {
    while let Some(e) = events.next().await {
        if matches!(&e, Event::IceCandidate(c) if c.is_end_of_candidates()) {
            break;
        }
    }
    session.local_description().expect("a local description")
}

/// The harness's transfer pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| ((i * 31) ^ (i >> 9)) as u8).collect()
}

fn sha256(d: &[u8]) -> String {
    Sha256::digest(d)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Echoes every message on our side until the session ends.
fn echo(session: Session, mut events: driver::Events<Event>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut echoed = 0;
        while let Some(e) = events.next().await {
            if let Event::DataChannel(DataChannelEvent::Message {
                channel,
                data,
                binary,
            }) = e
            {
                echoed += data.len();
                let r = if binary {
                    session.send_binary(channel, &data)
                } else {
                    session.send_text(channel, &String::from_utf8_lossy(&data))
                };
                r.expect("echo sent");
            }
        }
        echoed
    })
}

/// Runs `f` on a thread of its own that has joined the browser's namespace, with a runtime
/// of its own on that thread (so every socket is bound there).
fn in_browser_namespace<F, Fut>(f: F)
where
    F: FnOnce(Browser) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let b = Browser::start().await;
            b.join_namespace();
            f(b).await;
        });
    })
    .join()
    .expect("the test thread");
}

#[test]
fn chromium_offers_and_we_echo() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        b.call(json!({"op": "create", "config": {}})).await;
        let ch = b
            .call(json!({"op": "createDataChannel", "label": "echo"}))
            .await["channel"]
            .clone();
        let offer = b.call(json!({"op": "createOffer"})).await;
        let (session, mut events) = our_side(vec![]).await;
        b.peer = Some(session.clone());
        session.set_remote_description(&desc(&offer)).unwrap();
        session.create_answer().unwrap();
        let answer = gathered(&session, &mut events).await;
        b.call(json!({"op": "setRemoteDescription", "desc": answer}))
            .await;
        let echoer = echo(session.clone(), events);
        b.event("open").await;
        // 1 MiB in 16 KiB messages, echoed back.
        b.call(json!({"op": "collect", "channel": ch})).await;
        b.call(json!({"op": "sendBulk", "channel": ch, "bytes": MIB, "chunk": 16384}))
            .await;
        let d = b
            .call(json!({"op": "digest", "channel": ch, "bytes": MIB, "reset": true}))
            .await;
        assert_eq!(d["bytes"], json!(MIB));
        assert_eq!(d["sha256"], json!(sha256(&pattern(MIB))));
        // One 256 KiB message: the most Chromium's a=max-message-size allows.
        let big = pattern(256 * 1024);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
        b.call(json!({"op": "send", "channel": ch, "binary": b64}))
            .await;
        let d = b
            .call(json!({"op": "digest", "channel": ch, "bytes": big.len()}))
            .await;
        assert_eq!(d["messages"], json!(1));
        assert_eq!(d["sha256"], json!(sha256(&big)));
        let stats = b.call(json!({"op": "getStats"})).await;
        let transport = stats
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["type"] == "transport")
            .cloned()
            .unwrap_or_default();
        eprintln!(
            "chromium's transport: DTLS {} {}, SRTP {}",
            transport["tlsVersion"], transport["dtlsCipher"], transport["srtpCipher"]
        );
        session.shutdown().await;
        assert!(echoer.await.unwrap() >= MIB + big.len());
        b.quit().await;
    });
}

/// We offer (a channel of ours), Chromium answers and echoes.
async fn we_offer(mut b: Browser, servers: Vec<driver::IceServer>, config: Value, bytes: usize) {
    b.call(json!({"op": "create", "config": config})).await;
    let (session, mut events) = our_side(servers).await;
    b.peer = Some(session.clone());
    let ch: ChannelId = session
        .create_data_channel("echo", DataChannelInit::default())
        .unwrap();
    session.create_offer().unwrap();
    let offer = gathered(&session, &mut events).await;
    b.call(json!({"op": "setRemoteDescription", "desc": offer}))
        .await;
    let answer = b.call(json!({"op": "createAnswer"})).await;
    session.set_remote_description(&desc(&answer)).unwrap();
    let theirs = b.event("datachannel").await["channel"].clone();
    b.call(json!({"op": "echo", "channel": theirs})).await;
    // Wait for our side to be open, then send, keeping at most 1 MiB buffered.
    let data = pattern(bytes);
    let mut received = Vec::with_capacity(bytes);
    let mut sent = 0;
    let mut open = false;
    let run = async {
        loop {
            if open {
                while sent < data.len() && session.buffered_amount(ch) < MIB {
                    let end = (sent + 16384).min(data.len());
                    session.send_binary(ch, &data[sent..end]).unwrap();
                    sent = end;
                }
            }
            match events.next().await.expect("our session runs") {
                Event::DataChannel(DataChannelEvent::Open { channel }) if channel == ch => {
                    open = true;
                    session.set_buffered_amount_low_threshold(ch, MIB / 4);
                }
                Event::DataChannel(DataChannelEvent::Message { data: d, .. }) => {
                    received.extend_from_slice(&d);
                    if received.len() >= data.len() {
                        return;
                    }
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("echoed in time");
    assert_eq!(received.len(), data.len());
    assert!(received == data, "the echo differs from what was sent");
    // One 256 KiB message.
    let big = pattern(256 * 1024);
    session.send_binary(ch, &big).unwrap();
    let one = async {
        loop {
            if let Event::DataChannel(DataChannelEvent::Message { data: d, .. }) =
                events.next().await.expect("our session runs")
            {
                return d;
            }
        }
    };
    let back = tokio::time::timeout(LIMIT, one)
        .await
        .expect("echoed in time");
    assert!(back == big, "the 256 KiB echo differs");
    let pair = session.selected_pair();
    eprintln!("selected pair: {pair:?}");
    session.shutdown().await;
    b.quit().await;
}

#[test]
fn we_offer_and_chromium_echoes() {
    if !available() {
        return;
    }
    in_browser_namespace(|b| async move {
        we_offer(b, vec![], json!({}), MIB).await;
    });
}

#[test]
fn chromium_relay_only_through_our_turnserver() {
    if !available() {
        return;
    }
    in_browser_namespace(|b| async move {
        // Our TURN server, in the namespace too (it binds on this thread's namespace).
        let server = turn_server::driver::Server::start(turn_common::settings(None)).unwrap();
        let udp = server.udp_addrs()[0];
        let config = json!({
            "iceTransportPolicy": "relay",
            "iceServers": [{"urls": [format!("turn:{udp}")], "username": "alice", "credential": "secret"}],
        });
        let ours =
            vec![driver::IceServer::turn(&format!("turn:{udp}"), "alice", "secret").unwrap()];
        we_offer(b, ours, config, 256 * 1024).await;
        drop(server);
    });
}
