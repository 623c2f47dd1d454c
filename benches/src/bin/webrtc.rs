//! DataChannel open time and throughput on loopback, side by side in one run: ours↔ours,
//! ours↔Chromium and Chromium↔Chromium (docs/benchmarks.md).
//!
//! ```text
//! cd benches && cargo run --release --bin webrtc -- [--mib 64] [--runs 3]
//! ```
//!
//! Needs root, `/usr/bin/chromium` and `tests/browser/node_modules` (as the Chromium tests):
//! everything runs in the harness's loopback-only network namespace.
//!
//! - Open time: from the offerer applying the answer (both descriptions carry all their
//!   candidates) to its channel's `open`, and the ICE agent's connected state on our side.
//! - Throughput: one reliable ordered channel, 16 KiB messages, at most 1 MiB buffered, the
//!   offerer sends, the other side counts (and for Chromium hashes); the time is from the
//!   first send to the last byte in. CPU per MB: user+system time of our process (both ends,
//!   for ours↔ours) and of all Chromium processes, read before and after.

use std::time::{Duration, Instant};

use peer_connection::driver::{self, Session};
use peer_connection::{DataChannelEvent, DataChannelInit, Event};
use serde_json::json;

#[path = "../../../tests/browser/client.rs"]
mod client;
use client::{gathered, our_side, Browser};

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 16 * 1024;

/// CPU seconds of this process.
fn our_cpu() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

/// CPU seconds of every Chromium process (utime + stime in /proc/PID/stat, at USER_HZ 100).
fn chromium_cpu() -> f64 {
    let mut ticks = 0u64;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(cmd) = std::fs::read(p.join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains("chromium") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 12 {
            ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

struct Run {
    open: Duration,
    ice: Option<Duration>,
    mbps: f64,
    cpu_ours: Option<f64>,
    cpu_chromium: Option<f64>,
}

/// Sends `bytes` on our channel within a 1 MiB window until `done` says the peer has it all.
async fn send_all(
    s: &Session,
    events: &mut driver::Events<Event>,
    ch: peer_connection::ChannelId,
    bytes: usize,
    mut done: impl FnMut(&Event) -> bool,
) {
    let data = vec![0x5au8; CHUNK];
    s.set_buffered_amount_low_threshold(ch, MIB / 4);
    let mut sent = 0;
    loop {
        while sent < bytes && s.buffered_amount(ch) < MIB {
            let n = CHUNK.min(bytes - sent);
            s.send_binary(ch, &data[..n]).expect("sent");
            sent += n;
        }
        let e = events.next().await.expect("the session runs");
        if done(&e) {
            return;
        }
    }
}

async fn ours_ours(bytes: usize) -> Run {
    let (a, mut ea) = our_side(vec![]).await;
    let (b, mut eb) = our_side(vec![]).await;
    let ch = a
        .create_data_channel("bulk", DataChannelInit::default())
        .unwrap();
    a.create_offer().unwrap();
    let offer = gathered(&a, &mut ea).await;
    b.set_remote_description(&offer).unwrap();
    b.create_answer().unwrap();
    let answer = gathered(&b, &mut eb).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let counter = tokio::spawn(async move {
        let mut got = 0;
        while let Some(e) = eb.next().await {
            if let Event::DataChannel(DataChannelEvent::Message { data, .. }) = e {
                got += data.len();
                if got >= bytes {
                    let _ = tx.send(Instant::now());
                }
            }
        }
    });
    let t0 = Instant::now();
    a.set_remote_description(&answer).unwrap();
    let mut ice = None;
    loop {
        match ea.next().await.expect("runs") {
            Event::IceConnectionState(ice_agent::ConnectionState::Connected) => {
                ice.get_or_insert(t0.elapsed());
            }
            Event::DataChannel(DataChannelEvent::Open { channel }) if channel == ch => break,
            _ => {}
        }
    }
    let open = t0.elapsed();
    let cpu0 = our_cpu();
    let start = Instant::now();
    let mut end = None;
    let sending = send_all(&a, &mut ea, ch, bytes, |_| false);
    tokio::select! {
        _ = sending => {}
        t = rx.recv() => end = t,
    }
    let end = end.expect("all bytes in");
    let cpu = our_cpu() - cpu0;
    a.shutdown().await;
    b.shutdown().await;
    counter.abort();
    let secs = (end - start).as_secs_f64();
    Run {
        open,
        ice,
        mbps: bytes as f64 / 1e6 / secs,
        cpu_ours: Some(cpu / (bytes as f64 / 1e6)),
        cpu_chromium: None,
    }
}

async fn ours_chromium(b: &mut Browser, pc: u32, bytes: usize) -> Run {
    b.call(json!({"op": "create", "pc": pc, "config": {}}))
        .await;
    let (s, mut events) = our_side(vec![]).await;
    b.peer = Some(s.clone());
    let ch = s
        .create_data_channel("bulk", DataChannelInit::default())
        .unwrap();
    s.create_offer().unwrap();
    let offer = gathered(&s, &mut events).await;
    b.call(json!({"op": "setRemoteDescription", "pc": pc, "desc": offer}))
        .await;
    b.call(json!({"op": "createAnswer", "pc": pc})).await;
    let answer: peer_connection::SessionDescription =
        serde_json::from_value(b.call(json!({"op": "waitGathering", "pc": pc})).await).unwrap();
    let t0 = Instant::now();
    s.set_remote_description(&answer).unwrap();
    let mut ice = None;
    loop {
        match events.next().await.expect("runs") {
            Event::IceConnectionState(ice_agent::ConnectionState::Connected) => {
                ice.get_or_insert(t0.elapsed());
            }
            Event::DataChannel(DataChannelEvent::Open { channel }) if channel == ch => break,
            _ => {}
        }
    }
    let open = t0.elapsed();
    let theirs = b.event("datachannel").await["channel"].clone();
    b.call(json!({"op": "collect", "channel": theirs})).await;
    let (ours0, chromium0) = (our_cpu(), chromium_cpu());
    let start = Instant::now();
    // Our sending runs in a task; the digest call waits for the last byte.
    let sender = {
        let s = s.clone();
        tokio::spawn(async move {
            send_all(&s, &mut events, ch, bytes, |_| false).await;
        })
    };
    let d = b
        .call(json!({"op": "digest", "channel": theirs, "bytes": bytes, "timeout_ms": 600_000}))
        .await;
    let end = Instant::now();
    let (ours, chromium) = (our_cpu() - ours0, chromium_cpu() - chromium0);
    assert!(d["bytes"].as_u64().unwrap() as usize >= bytes);
    sender.abort();
    s.shutdown().await;
    b.call(json!({"op": "close", "pc": pc})).await;
    let mb = bytes as f64 / 1e6;
    Run {
        open,
        ice,
        mbps: mb / (end - start).as_secs_f64(),
        cpu_ours: Some(ours / mb),
        cpu_chromium: Some(chromium / mb),
    }
}

async fn chromium_chromium(b: &mut Browser, base: u32, bytes: usize) -> Run {
    let (p0, p1) = (base, base + 1);
    b.call(json!({"op": "create", "pc": p0, "config": {}}))
        .await;
    b.call(json!({"op": "create", "pc": p1, "config": {}}))
        .await;
    let ch = b
        .call(json!({"op": "createDataChannel", "pc": p0, "label": "bulk"}))
        .await["channel"]
        .clone();
    b.call(json!({"op": "createOffer", "pc": p0})).await;
    let offer = b.call(json!({"op": "waitGathering", "pc": p0})).await;
    b.call(json!({"op": "setRemoteDescription", "pc": p1, "desc": offer}))
        .await;
    b.call(json!({"op": "createAnswer", "pc": p1})).await;
    let answer = b.call(json!({"op": "waitGathering", "pc": p1})).await;
    let t0 = Instant::now();
    b.call(json!({"op": "setRemoteDescription", "pc": p0, "desc": answer}))
        .await;
    loop {
        let e = b.event("open").await;
        if e["channel"] == ch {
            break;
        }
    }
    let open = t0.elapsed();
    let theirs = b.event("datachannel").await["channel"].clone();
    b.call(json!({"op": "collect", "channel": theirs})).await;
    let chromium0 = chromium_cpu();
    let start = Instant::now();
    b.call(json!({"op": "sendBulk", "channel": ch, "bytes": bytes, "chunk": CHUNK, "timeout_ms": 600_000}))
        .await;
    b.call(json!({"op": "digest", "channel": theirs, "bytes": bytes, "timeout_ms": 600_000}))
        .await;
    let end = Instant::now();
    let chromium = chromium_cpu() - chromium0;
    b.call(json!({"op": "close", "pc": p0})).await;
    b.call(json!({"op": "close", "pc": p1})).await;
    let mb = bytes as f64 / 1e6;
    Run {
        open,
        ice: None,
        mbps: mb / (end - start).as_secs_f64(),
        cpu_ours: None,
        cpu_chromium: Some(chromium / mb),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn report(name: &str, runs: &[Run]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let open = median(runs.iter().map(|r| ms(r.open)).collect());
    let ice: Vec<f64> = runs.iter().filter_map(|r| r.ice.map(ms)).collect();
    let mbps: Vec<f64> = runs.iter().map(|r| r.mbps).collect();
    let cpu = |f: fn(&Run) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(f).collect();
        if v.is_empty() {
            "—".to_owned()
        } else {
            format!("{:.1} ms", median(v) * 1000.0)
        }
    };
    let (lo, hi) = mbps
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
    println!(
        "| {name} | {open:.1} ms | {} | {:.1} MB/s ({lo:.1}–{hi:.1}) | {} | {} |",
        if ice.is_empty() {
            "—".to_owned()
        } else {
            format!("{:.1} ms", median(ice))
        },
        median(mbps),
        cpu(|r| r.cpu_ours),
        cpu(|r| r.cpu_chromium),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut mib, mut runs) = (64usize, 3usize);
    while let Some(a) = args.next() {
        let v = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), v) {
            ("--mib", Some(v)) => mib = v,
            ("--runs", Some(v)) => runs = v,
            _ => {
                eprintln!("usage: webrtc [--mib N] [--runs N]");
                std::process::exit(2);
            }
        }
    }
    if let Some(why) = client::missing() {
        eprintln!("webrtc: cannot run: {why}");
        std::process::exit(1);
    }
    let bytes = mib * MIB;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut b = Browser::start().await;
        // Everything below binds on the browser's loopback.
        b.join_namespace();
        let (mut oo, mut oc, mut cc) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs as u32 {
            // Alternate the order, so no pair always runs first on a warm machine.
            oo.push(ours_ours(bytes).await);
            cc.push(chromium_chromium(&mut b, 100 + 2 * i, bytes).await);
            oc.push(ours_chromium(&mut b, 10 + i, bytes).await);
            eprintln!("run {} of {runs} done", i + 1);
        }
        println!("{mib} MiB per run, {runs} runs, medians (throughput range in brackets)");
        println!();
        println!("| pair | answer → channel open | answer → ICE connected (ours) | throughput | our CPU per MB | Chromium's CPU per MB |");
        println!("|---|---|---|---|---|---|");
        report("ours ↔ ours", &oo);
        report("ours → Chromium", &oc);
        report("Chromium ↔ Chromium", &cc);
        b.quit().await;
    });
}
