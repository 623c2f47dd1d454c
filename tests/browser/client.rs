//! The Rust side of tests/browser/harness.mjs: starts Chromium in a loopback-only network
//! namespace of its own, joins that namespace, and speaks the harness's JSON lines. Shared by
//! crates/peer-connection/tests/chromium.rs and benches/src/bin/webrtc.rs (`#[path]`).

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use peer_connection::driver::{self, DriverConfig, Session};
use peer_connection::{AgentConfig, Config, Event, IceCandidate, SessionDescription};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How long one reply or event may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("tests/browser/harness.mjs").exists())
        .expect("inside the workspace")
        .to_path_buf()
}
/// Why the browser tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
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
pub fn available() -> bool {
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
pub struct Browser {
    pub child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
    pub events: VecDeque<Value>,
    /// Where the browser's trickled candidates go, once our side exists.
    pub peer: Option<Session>,
}

impl Browser {
    /// Starts the harness and waits for `ready`.
    pub async fn start() -> Browser {
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
    pub fn join_namespace(&self) {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.child.id()))
            .expect("the harness's namespace");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }

    pub async fn line(&mut self) -> Value {
        let v = tokio::time::timeout(LIMIT, self.lines.recv())
            .await
            .expect("the harness answers in time")
            .expect("the harness is running");
        if v["event"] == "icecandidate" {
            if let Some(peer) = &self.peer {
                let c: Option<IceCandidate> = serde_json::from_value(v["candidate"].clone()).ok();
                // Browsers signal the end of candidates as a null candidate.
                match peer.add_ice_candidate(c.as_ref()) {
                    // Our session has ended: a late candidate is of no use.
                    Ok(()) | Err(peer_connection::Error::Driver(_)) => {}
                    Err(e) => panic!("the browser's candidate {c:?}: {e}"),
                }
            }
        }
        v
    }

    /// Sends a command and waits for its reply; events that come meanwhile are kept.
    pub async fn call(&mut self, mut cmd: Value) -> Value {
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
    pub async fn event(&mut self, name: &str) -> Value {
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

    pub async fn quit(mut self) {
        let _ = self.call(json!({"op": "quit"})).await;
        let _ = self.child.wait();
    }
}

/// Runs `f` on a thread of its own that has joined the browser's namespace, with a runtime
/// of its own on that thread (so every socket is bound there, and threads it starts are in the
/// namespace too).
pub fn in_browser_namespace<F, Fut>(f: F)
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

/// Our session on the namespace's loopback.
pub async fn our_side(servers: Vec<driver::IceServer>) -> (Session, driver::Events<Event>) {
    let mut agent = AgentConfig::new(ice_agent::Role::Controlling);
    agent.allow_loopback = true;
    let mut d = DriverConfig::new(agent);
    d.ips = vec!["127.0.0.1".parse().unwrap()];
    d.servers = servers;
    driver::start(d, Config::default())
        .await
        .expect("our session starts")
}

/// Our description once gathering is over (candidates in it: no trickle from us), and the
/// other events that came meanwhile.
pub async fn gathered_with(
    session: &Session,
    events: &mut driver::Events<Event>,
) -> (SessionDescription, Vec<Event>) {
    let mut other = Vec::new();
    while let Some(e) = events.next().await {
        match e {
            Event::IceCandidate(c) if c.is_end_of_candidates() => break,
            Event::IceCandidate(_) => {}
            e => other.push(e),
        }
    }
    (
        session.local_description().expect("a local description"),
        other,
    )
}

pub async fn gathered(session: &Session, events: &mut driver::Events<Event>) -> SessionDescription {
    gathered_with(session, events).await.0
}
