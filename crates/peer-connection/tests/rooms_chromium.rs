//! The `rooms` demo page in real Chromium (tabs of tests/browser/harness.mjs, each a browser
//! context of its own, in a loopback-only network namespace), served by a `rooms` server with
//! its STUN/TURN server in-process, as `rooms` runs them by default:
//!
//! - two pages join a room by the form and get video both ways (`framesDecoded` > 0 on each
//!   side, Chromium's fake camera), directly; a chat message typed on one shows on the other;
//!   a 5 MiB file goes from one to the other with the same SHA-256 and the progress bar at
//!   100 %;
//! - the same relay-only through the in-process TURN server (`relay` on both sides);
//! - a page and `webrtc-peer` exchange a file both ways.
//!
//! Needs what tests/chromium.rs needs (root, `/usr/bin/chromium`, node, tests/browser's
//! node_modules); without them the tests say so and pass, except under `CI=true`.
//! `ROOMS_SCREENSHOT=docs/rooms-demo.png` saves the screenshot taken mid-transfer there (it
//! always goes to the target directory).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rooms::hub::HubConfig;
use rooms::server::turn::InProcessTurn;
use rooms::server::{Server, ServerConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[path = "../../../tests/browser/client.rs"]
mod client;
use client::{available, in_browser_namespace, Browser};

/// A rooms server and its TURN server, in the browser's namespace.
async fn rooms() -> (Server, InProcessTurn) {
    let turn =
        InProcessTurn::start("127.0.0.1".parse().unwrap(), 0, Duration::from_secs(3600)).unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        hub: HubConfig {
            turn: Some(turn.credentials.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    (Server::start(config).await.unwrap(), turn)
}

fn sha256(d: &[u8]) -> String {
    Sha256::digest(d)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rooms-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn file(name: &str, n: usize) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..n as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9) >> 11) as u8)
        .collect();
    let path = temp(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// Opens the page in a new tab and joins `room` through the form.
async fn join(b: &mut Browser, url: &str, room: &str, relay_only: bool) -> u64 {
    let tab = b.call(json!({"op": "open", "url": url})).await["tab"]
        .as_u64()
        .unwrap();
    b.call(json!({"op": "fill", "tab": tab, "selector": "#room", "value": room}))
        .await;
    b.call(json!({"op": "check", "tab": tab, "selector": "#relay-only", "on": relay_only}))
        .await;
    b.call(json!({"op": "click", "tab": tab, "selector": "#join"}))
        .await;
    b.call(json!({"op": "waitFor", "tab": tab, "js": "return demo.state().joined && demo.state().you"}))
        .await;
    tab
}

/// Waits until the tab has one peer with decoded video, and returns that peer's state.
async fn in_call(b: &mut Browser, tab: u64) -> Value {
    b.call(json!({
        "op": "waitFor", "tab": tab, "poll_ms": 250,
        "js": "await demo.refreshStats(); const p = demo.state().peers; \
               return p.length === 1 && p[0].framesDecoded > 0 && p[0].connType ? p[0] : false",
    }))
    .await
}

/// Sends `path` from `tab` to `peer` through the page's file input.
async fn send_file(b: &mut Browser, tab: u64, peer: &str, path: &std::path::Path) {
    b.call(json!({
        "op": "eval", "tab": tab,
        "js": format!("const s = document.querySelector('#file-peer'); s.value = {peer:?}; return s.value"),
    }))
    .await;
    b.call(json!({"op": "setInputFiles", "tab": tab, "selector": "#file-input", "path": path}))
        .await;
}

/// The tab's transfer of `direction` once it is `status`.
async fn transfer(b: &mut Browser, tab: u64, direction: &str, status: &str) -> Value {
    b.call(json!({
        "op": "waitFor", "tab": tab, "poll_ms": 100,
        "js": format!("return demo.state().transfers.find(t => t.direction === {direction:?} && t.status === {status:?}) || false"),
    }))
    .await
}

#[test]
fn two_pages_in_a_room_get_video_both_ways_and_a_file_goes_across() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        let (server, _turn) = rooms().await;
        let url = format!("http://{}/", server.addr());
        let one = join(&mut b, &url, "call", false).await;
        let two = join(&mut b, &url, "call", false).await;
        let p1 = in_call(&mut b, one).await;
        let p2 = in_call(&mut b, two).await;
        assert_eq!(p1["connType"], "direct", "{p1}");
        assert_eq!(p2["connType"], "direct", "{p2}");
        // Text chat over the "chat" channel, typed into the form on one page, on the other.
        b.call(json!({"op": "waitFor", "tab": two, "js": "return demo.state().peers[0].chatOpen"}))
            .await;
        b.call(json!({"op": "fill", "tab": two, "selector": "#chat-input", "value": "Hi! Sending you the file now."}))
            .await;
        b.call(json!({"op": "click", "tab": two, "selector": "#chat-send"}))
            .await;
        let said = b
            .call(json!({"op": "waitFor", "tab": one,
                "js": "return demo.state().chat.find(m => m.from) || false"}))
            .await;
        assert_eq!(said["text"], "Hi! Sending you the file now.", "{said}");
        assert_eq!(said["from"], p1["id"], "{said}");
        let (path, data) = file("five.bin", 5 * 1024 * 1024);
        let to = p1["id"].as_str().unwrap().to_owned();
        send_file(&mut b, one, &to, &path).await;
        // A screenshot of the call with the transfer under way.
        b.call(json!({"op": "waitFor", "tab": one, "poll_ms": 20,
            "js": "return demo.state().transfers.some(t => t.direction === 'out' && t.bytes > 0)"}))
            .await;
        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rooms-demo.png");
        b.call(json!({"op": "screenshot", "tab": one, "path": shot}))
            .await;
        if let Ok(to) = std::env::var("ROOMS_SCREENSHOT") {
            std::fs::copy(&shot, client::root().join(to)).unwrap();
        }
        let got = transfer(&mut b, two, "in", "verified").await;
        let sent = transfer(&mut b, one, "out", "verified").await;
        assert_eq!(got["sha256"], sha256(&data), "{got}");
        assert_eq!(sent["sha256"], sha256(&data), "{sent}");
        assert_eq!(got["bytes"], data.len());
        assert_eq!(got["percent"], 100);
        // The progress bar itself is at 100 % on both pages.
        for tab in [one, two] {
            let v = b
                .call(json!({"op": "eval", "tab": tab,
                    "js": "return [...document.querySelectorAll('#transfers .transfer progress')].map(p => p.value)"}))
                .await;
            assert_eq!(v, json!([100]), "tab {tab}");
        }
        b.quit().await;
    });
}

#[test]
fn relay_only_pages_meet_through_the_in_process_turn_server() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        let (server, _turn) = rooms().await;
        let url = format!("http://{}/?room=relayed", server.addr());
        let one = join(&mut b, &url, "relayed", true).await;
        let two = join(&mut b, &url, "relayed", true).await;
        for tab in [one, two] {
            let p = in_call(&mut b, tab).await;
            assert_eq!(p["connType"], "relay", "{p}");
            assert_eq!(p["localCandidateType"], "relay", "{p}");
        }
        b.quit().await;
    });
}

/// `webrtc-peer` in the browser's namespace, in the room.
fn webrtc_peer(b: &Browser, args: &[&str]) -> std::process::Child {
    Command::new("nsenter")
        .args(["-t", &b.child.id().to_string(), "-n", "--"])
        .arg(env!("CARGO_BIN_EXE_webrtc-peer"))
        .args(args)
        .args([
            "--loopback",
            "--bind",
            "127.0.0.1",
            "--no-progress",
            "--timeout",
            "30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("webrtc-peer runs")
}

fn printed_digest(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "webrtc-peer failed");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("sha256 "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in {text:?}"))
        .to_owned()
}

#[test]
fn a_page_and_webrtc_peer_exchange_files_both_ways() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        let (server, _turn) = rooms().await;
        let url = format!("http://{}/?room=files", server.addr());
        let tab = join(&mut b, &url, "files", false).await;

        // webrtc-peer joins second and offers; the page sends it a file.
        let dst = temp("from-page.bin");
        let receiver = webrtc_peer(
            &b,
            &["receive", "--room", &url, "--out", dst.to_str().unwrap()],
        );
        let peer = b
            .call(json!({"op": "waitFor", "tab": tab,
                "js": "const p = demo.state().peers; return p.length === 1 && p[0].connectionState === 'connected' && p[0].id"}))
            .await;
        let (path, data) = file("to-peer.bin", 1024 * 1024 + 5);
        send_file(&mut b, tab, peer.as_str().unwrap(), &path).await;
        let sent = transfer(&mut b, tab, "out", "verified").await;
        assert_eq!(printed_digest(receiver), sha256(&data));
        assert_eq!(sent["sha256"], sha256(&data));
        assert_eq!(std::fs::read(&dst).unwrap(), data);

        // webrtc-peer sends the page a file.
        b.call(
            json!({"op": "waitFor", "tab": tab, "js": "return demo.state().peers.length === 0"}),
        )
        .await;
        let (path, data) = file("to-page.bin", 2 * 1024 * 1024 + 3);
        let sender = webrtc_peer(&b, &["send", path.to_str().unwrap(), "--room", &url]);
        let got = transfer(&mut b, tab, "in", "verified").await;
        assert_eq!(printed_digest(sender), sha256(&data));
        assert_eq!(got["sha256"], sha256(&data));
        assert_eq!(got["bytes"], data.len());
        b.quit().await;
    });
}
