//! Against real Chromium (tests/browser/harness.mjs, driven over JSON lines), in a loopback-only
//! network namespace that this test joins to bind its own sockets: Chromium offers and we
//! answer, and the reverse; DataChannel echo of 1 MiB in 16 KiB messages and of one 256 KiB
//! message; relay-only through our turnserver.
//!
//! Needs root (unshare, setns), `/usr/bin/chromium`, `node` and `tests/browser/node_modules`
//! (`.ci/run` installs them). Without them the tests say so and pass, except under `CI=true`,
//! where they fail.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use peer_connection::driver::{self, Session};
use peer_connection::{ChannelId, DataChannelEvent, DataChannelInit, Event, SessionDescription};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The turn-server tests' own helpers: its server settings (loopback peers allowed).
#[path = "../../turn-server/tests/common/mod.rs"]
mod turn_common;

const MIB: usize = 1024 * 1024;

/// The Rust side of the harness (tests/browser/client.rs).
#[path = "../../../tests/browser/client.rs"]
mod client;
use client::{available, gathered, gathered_with, in_browser_namespace, our_side, Browser, LIMIT};

fn desc(v: &Value) -> SessionDescription {
    serde_json::from_value(v.clone()).expect("a description")
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

/// Our offer (once gathered, so with its candidates) to Chromium, and its answer back.
async fn offer_to_chromium(
    b: &mut Browser,
    session: &Session,
    events: &mut driver::Events<Event>,
) -> SessionDescription {
    session.create_offer().unwrap();
    let offer = gathered(session, events).await;
    b.call(json!({"op": "setRemoteDescription", "desc": offer}))
        .await;
    let answer = b.call(json!({"op": "createAnswer"})).await;
    session.set_remote_description(&desc(&answer)).unwrap();
    offer
}

/// We offer (a channel of ours), Chromium answers and echoes.
async fn we_offer(mut b: Browser, servers: Vec<driver::IceServer>, config: Value, bytes: usize) {
    b.call(json!({"op": "create", "config": config})).await;
    let (session, mut events) = our_side(servers).await;
    b.peer = Some(session.clone());
    let ch: ChannelId = session
        .create_data_channel("echo", DataChannelInit::default())
        .unwrap();
    offer_to_chromium(&mut b, &session, &mut events).await;
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

fn rtp_packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Chromium's inbound-rtp stats of one kind, once it has at least `packets`.
async fn inbound(b: &mut Browser, kind: &str, packets: u64) -> Value {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let stats = b.call(json!({"op": "getStats"})).await;
        let found = stats
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["type"] == "inbound-rtp" && s["kind"] == kind)
            .cloned();
        if let Some(s) = found {
            if s["packetsReceived"].as_u64().unwrap_or(0) >= packets {
                return s;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Chromium received no {kind}"
        );
        // Stats are sampled: ask again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `n` Opus packets (the three-byte silence frame) 20 ms apart, as a sender paces
/// audio.
async fn send_opus(session: &Session, track: peer_connection::TrackId, n: u16) {
    let pt = session
        .with(|pc, _| pc.track(track))
        .unwrap()
        .expect("the track")
        .codecs[0]
        .payload_type;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..n {
        tick.tick().await;
        let p = rtp_packet(pt, i, u32::from(i) * 960, &[0xf8, 0xff, 0xfe]);
        session
            .with(|pc, now| pc.write_rtp(now, track, &p))
            .unwrap()
            .expect("RTP sent");
    }
}

#[test]
fn chromium_sends_fake_audio_and_video_and_we_count_it() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        b.call(json!({"op": "create", "config": {}})).await;
        b.call(json!({"op": "addTrack", "kind": "audio"})).await;
        b.call(json!({"op": "addTrack", "kind": "video"})).await;
        let offer = b.call(json!({"op": "createOffer"})).await;
        let (session, mut events) = our_side(vec![]).await;
        b.peer = Some(session.clone());
        session.set_remote_description(&desc(&offer)).unwrap();
        session.create_answer().unwrap();
        let (answer, early) = gathered_with(&session, &mut events).await;
        b.call(json!({"op": "setRemoteDescription", "desc": answer}))
            .await;
        // ontrack comes with our answer.
        let mut tracks: Vec<_> = early
            .into_iter()
            .filter_map(|e| match e {
                Event::Track(t) => Some(t),
                _ => None,
            })
            .collect();
        let mut counts: std::collections::HashMap<String, (u64, u8, u32)> = Default::default();
        let run = async {
            while let Some(e) = events.next().await {
                match e {
                    Event::Track(t) => tracks.push(t),
                    Event::Rtp(p) => {
                        let c = counts
                            .entry(p.mid.clone())
                            .or_insert((0, p.payload_type, p.ssrc));
                        c.0 += 1;
                        assert_eq!((c.1, c.2), (p.payload_type, p.ssrc), "one stream a track");
                    }
                    _ => {}
                }
                // A second of audio (50 packets) and some video.
                if tracks.len() == 2 && counts.len() == 2 && counts.values().all(|c| c.0 >= 50) {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .is_err()
        {
            let stats = session.with(|pc, _| pc.stats()).unwrap();
            panic!("audio and video from Chromium: tracks {tracks:?}, packets {counts:?}, {stats:?}\nanswer: {}", answer.sdp);
        }
        for t in &tracks {
            let (n, pt, ssrc) = counts[&t.mid];
            let codec = t
                .codecs
                .iter()
                .find(|c| c.payload_type == pt)
                .expect("a negotiated PT");
            let want = if t.kind == peer_connection::MediaKind::Audio {
                "opus"
            } else {
                "VP8"
            };
            assert!(codec.name.eq_ignore_ascii_case(want), "{t:?} sent {pt}");
            assert!(t.ssrcs.contains(&ssrc), "{ssrc} not among {:?}", t.ssrcs);
            eprintln!(
                "{:?} {}: {n} packets, {} ({pt}), ssrc {ssrc}",
                t.kind, t.mid, codec.name
            );
        }
        session.shutdown().await;
        b.quit().await;
    });
}

#[test]
fn chromium_receives_our_audio_and_loses_none() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        b.call(json!({"op": "create", "config": {}})).await;
        let (session, mut events) = our_side(vec![]).await;
        b.peer = Some(session.clone());
        let track = session
            .with(|pc, now| pc.add_track(now, peer_connection::MediaKind::Audio, vec![]))
            .unwrap();
        offer_to_chromium(&mut b, &session, &mut events).await;
        // Connected (DTLS up, SRTP keys out) before sending.
        let up = async {
            while let Some(e) = events.next().await {
                if e == Event::ConnectionState(peer_connection::PeerConnectionState::Connected) {
                    return;
                }
            }
        };
        tokio::time::timeout(LIMIT, up).await.expect("connected");
        let drain = tokio::spawn(async move { while events.next().await.is_some() {} });
        send_opus(&session, track, 100).await;
        let s = inbound(&mut b, "audio", 100).await;
        assert_eq!(s["packetsReceived"], json!(100), "{s}");
        assert_eq!(s["packetsLost"], json!(0), "{s}");
        let ssrc = session.with(|pc, _| pc.track(track)).unwrap().unwrap().ssrc;
        assert_eq!(s["ssrc"], json!(ssrc));
        session.shutdown().await;
        drain.abort();
        b.quit().await;
    });
}

#[test]
fn chromium_takes_audio_added_to_a_data_session() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        b.call(json!({"op": "create", "config": {}})).await;
        let (session, mut events) = our_side(vec![]).await;
        b.peer = Some(session.clone());
        let ch = session
            .create_data_channel("chat", DataChannelInit::default())
            .unwrap();
        let offer = offer_to_chromium(&mut b, &session, &mut events).await;
        let open = async {
            while let Some(e) = events.next().await {
                if matches!(e, Event::DataChannel(DataChannelEvent::Open { channel }) if channel == ch)
                {
                    return;
                }
            }
        };
        tokio::time::timeout(LIMIT, open)
            .await
            .expect("the channel opens");
        // Now audio, by renegotiation: same ICE credentials, no new candidates.
        let track = session
            .with(|pc, now| pc.add_track(now, peer_connection::MediaKind::Audio, vec![]))
            .unwrap();
        let again = session.create_offer().unwrap();
        let ufrag = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("a=ice-ufrag:"))
                .map(str::to_owned)
        };
        assert_eq!(ufrag(&again.sdp), ufrag(&offer.sdp));
        assert!(again.sdp.contains("m=audio"));
        b.call(json!({"op": "setRemoteDescription", "desc": again}))
            .await;
        let answer = b.call(json!({"op": "createAnswer"})).await;
        session.set_remote_description(&desc(&answer)).unwrap();
        let drain = tokio::spawn(async move {
            let mut candidates = 0;
            while let Some(e) = events.next().await {
                if matches!(&e, Event::IceCandidate(c) if !c.is_end_of_candidates()) {
                    candidates += 1;
                }
            }
            candidates
        });
        send_opus(&session, track, 50).await;
        let s = inbound(&mut b, "audio", 50).await;
        assert_eq!(s["packetsLost"], json!(0), "{s}");
        session.shutdown().await;
        assert_eq!(
            drain.await.unwrap(),
            0,
            "no new candidates after the first offer"
        );
        b.quit().await;
    });
}

#[test]
fn webrtc_peer_sends_a_file_to_a_chromium_page() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        let dir = std::env::temp_dir().join(format!("webrtc-peer-chromium-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("photo.bin");
        let data = pattern(2 * MIB + 777);
        std::fs::write(&file, &data).unwrap();
        // The page takes the file as a browser demo would (tests/browser/page.js receiveFile).
        b.call(json!({"op": "create", "config": {}, "incoming": "file"}))
            .await;
        // webrtc-peer in the browser's namespace, its offer and answer by copy and paste.
        let mut peer = Command::new("nsenter")
            .args([
                "-t",
                &b.child.id().to_string(),
                "-n",
                env!("CARGO_BIN_EXE_webrtc-peer"),
            ])
            .args(["send", file.to_str().unwrap()])
            .args([
                "--loopback",
                "--bind",
                "127.0.0.1",
                "--no-progress",
                "--timeout",
                "30",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("webrtc-peer runs");
        let mut out = BufReader::new(peer.stdout.take().unwrap());
        let mut offer = String::new();
        out.read_line(&mut offer).unwrap();
        let offer: Value = serde_json::from_str(&offer).expect("an offer line");
        b.call(json!({"op": "setRemoteDescription", "desc": offer}))
            .await;
        b.call(json!({"op": "createAnswer"})).await;
        // No trickle into webrtc-peer: the answer with every candidate, as a user pastes it.
        let answer = b.call(json!({"op": "waitGathering"})).await;
        let mut stdin = peer.stdin.take().unwrap();
        writeln!(stdin, "{}", json!({"type": "answer", "sdp": answer["sdp"]})).unwrap();
        drop(stdin);
        let got = b.event("file").await;
        assert_eq!(got["size"], json!(data.len()));
        assert_eq!(got["name"], json!("photo.bin"));
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let printed = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        assert_eq!(json!(printed), got["sha256"], "webrtc-peer printed {line}");
        assert_eq!(printed, sha256(&data));
        assert!(
            peer.wait().unwrap().success(),
            "webrtc-peer checked the page's digest"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        b.quit().await;
    });
}

/// Runs a program of ours in the browser's namespace and gives it the browser's description
/// for the one it prints: (its stdout, once it has ended, and whether it succeeded).
async fn with_program(
    b: &mut Browser,
    pc: u32,
    exe: &str,
    args: &[&str],
    ours_offers: bool,
) -> (String, bool) {
    let mut child = Command::new("nsenter")
        .args(["-t", &b.child.id().to_string(), "-n", exe])
        .args(args)
        .args(["--loopback", "--bind", "127.0.0.1", "--timeout", "30"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the program runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    if ours_offers {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let offer: Value = serde_json::from_str(&line).expect("an offer line");
        b.call(json!({"op": "setRemoteDescription", "pc": pc, "desc": offer}))
            .await;
        b.call(json!({"op": "createAnswer", "pc": pc})).await;
        let answer = b.call(json!({"op": "waitGathering", "pc": pc})).await;
        writeln!(stdin, "{}", json!({"type": "answer", "sdp": answer["sdp"]})).unwrap();
    } else {
        b.call(json!({"op": "createOffer", "pc": pc})).await;
        let offer = b.call(json!({"op": "waitGathering", "pc": pc})).await;
        writeln!(stdin, "{}", json!({"type": "offer", "sdp": offer["sdp"]})).unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).expect("an answer line");
        b.call(json!({"op": "setRemoteDescription", "pc": pc, "desc": answer}))
            .await;
    }
    drop(stdin);
    let mut rest = String::new();
    for l in out.lines() {
        rest.push_str(&l.unwrap());
        rest.push('\n');
    }
    (rest, child.wait().unwrap().success())
}

#[test]
fn webrtc_media_records_chromium_and_plays_it_back() {
    if !available() {
        return;
    }
    in_browser_namespace(|mut b| async move {
        let dir = std::env::temp_dir().join(format!("webrtc-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ivf, ogg) = (dir.join("call.ivf"), dir.join("call.ogg"));
        let exe = env!("CARGO_BIN_EXE_webrtc-media");
        // Chromium's fake camera and microphone into IVF and Ogg.
        b.call(json!({"op": "create", "pc": 0, "config": {}})).await;
        b.call(json!({"op": "addTrack", "pc": 0, "kind": "audio"}))
            .await;
        b.call(json!({"op": "addTrack", "pc": 0, "kind": "video"}))
            .await;
        let args = [
            "record",
            "--video",
            ivf.to_str().unwrap(),
            "--audio",
            ogg.to_str().unwrap(),
            "--seconds",
            "3",
        ];
        let (out, ok) = with_program(&mut b, 0, exe, &args, false).await;
        assert!(ok, "{out}");
        eprintln!("{out}");
        let v = std::fs::read(&ivf).unwrap();
        assert_eq!(&v[..4], b"DKIF");
        assert_eq!(&v[8..12], b"VP80");
        let frames = u32::from_le_bytes(v[24..28].try_into().unwrap());
        assert!(frames >= 30, "{frames} frames in 3 s");
        let a = std::fs::read(&ogg).unwrap();
        assert_eq!(&a[..4], b"OggS");
        assert!(a.len() > 4000, "{} bytes of Opus in 3 s", a.len());
        b.call(json!({"op": "close", "pc": 0})).await;
        // And back: the files to Chromium, which decodes the video.
        b.call(json!({"op": "create", "pc": 1, "config": {}})).await;
        let args = [
            "play",
            "--video",
            ivf.to_str().unwrap(),
            "--audio",
            ogg.to_str().unwrap(),
        ];
        let (out, ok) = with_program(&mut b, 1, exe, &args, true).await;
        assert!(ok, "{out}");
        eprintln!("{out}");
        let stats = b.call(json!({"op": "getStats", "pc": 1})).await;
        let inbound = |kind: &str| {
            stats
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["type"] == "inbound-rtp" && s["kind"] == kind)
                .cloned()
                .unwrap_or_default()
        };
        let (video, audio) = (inbound("video"), inbound("audio"));
        eprintln!("chromium: video {video}\naudio {audio}");
        assert!(
            video["framesDecoded"].as_u64().unwrap_or(0) >= 30,
            "{video}"
        );
        assert!(
            audio["packetsReceived"].as_u64().unwrap_or(0) >= 100,
            "{audio}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        b.quit().await;
    });
}
