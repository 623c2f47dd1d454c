//! `webrtc-peer send` to `webrtc-peer receive` on loopback, offer and answer relayed between
//! the two processes as a user would paste them: both print the same SHA-256 and the copy is
//! the file.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn peer(args: &[&str]) -> std::process::Child {
    peer_with(args, Stdio::inherit())
}

fn peer_with(args: &[&str], stderr: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_webrtc-peer"))
        .args(args)
        .args([
            "--loopback",
            "--bind",
            "127.0.0.1",
            "--no-progress",
            "--timeout",
            "20",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("webrtc-peer runs")
}

fn line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("reads");
    s
}

#[test]
fn a_file_goes_from_one_peer_to_the_other_with_the_same_sha256() {
    let dir = std::env::temp_dir().join(format!("webrtc-peer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("source.bin");
    let dst = dir.join("copy.bin");
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 123u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();

    let mut sender = peer(&["send", src.to_str().unwrap()]);
    let mut receiver = peer(&["receive", "--out", dst.to_str().unwrap()]);
    let mut s_out = BufReader::new(sender.stdout.take().unwrap());
    let mut r_out = BufReader::new(receiver.stdout.take().unwrap());
    let offer = line(&mut s_out);
    assert!(offer.contains("\"type\":\"offer\""), "{offer}");
    receiver
        .stdin
        .take()
        .unwrap()
        .write_all(offer.as_bytes())
        .unwrap();
    let answer = line(&mut r_out);
    assert!(answer.contains("\"type\":\"answer\""), "{answer}");
    let mut s_in = sender.stdin.take().unwrap();
    s_in.write_all(answer.as_bytes()).unwrap();
    drop(s_in);

    let sent = line(&mut s_out);
    let received = line(&mut r_out);
    assert!(sender.wait().unwrap().success());
    assert!(receiver.wait().unwrap().success());
    let digest = |l: &str| l.split_whitespace().nth(1).map(str::to_owned);
    assert!(sent.starts_with("sha256 "), "{sent}");
    assert_eq!(digest(&sent), digest(&received), "{sent} / {received}");
    assert_eq!(std::fs::read(&dst).unwrap(), data);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Both orders through a `rooms` server: the receiver there first (the sender offers, with
/// its channel), and the sender there first (the receiver offers; the sender opens its
/// channel once connected). Readiness is the first peer's "waiting for a peer" line.
#[test]
fn a_file_goes_through_a_room_whoever_joins_first() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let config = rooms::server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        rooms::server::Server::start(config).await.unwrap()
    });
    let dir = std::env::temp_dir().join(format!("webrtc-peer-room-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("source.bin");
    let data: Vec<u8> = (0..1024 * 1024 + 7u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    for sender_first in [false, true] {
        // A room for each order: the last order's peers may still be leaving the other.
        let url = format!("http://{}/?room=files-{sender_first}", server.addr());
        let dst = dir.join(format!("copy-{sender_first}.bin"));
        let send = ["send", src.to_str().unwrap(), "--room", &url];
        let receive = ["receive", "--out", dst.to_str().unwrap(), "--room", &url];
        let (first, second) = if sender_first {
            (&send[..], &receive[..])
        } else {
            (&receive[..], &send[..])
        };
        let mut a = in_room(first);
        // The first is in the room once it says so on stderr.
        let mut a_err = BufReader::new(a.stderr.take().unwrap());
        loop {
            let l = line(&mut a_err);
            assert!(!l.is_empty(), "the first peer ended");
            if l.contains("waiting for a peer") {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut a_err, &mut std::io::stderr()));
        let mut b = in_room(second);
        let mut b_err = b.stderr.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut b_err, &mut std::io::stderr()));
        let (mut a_out, mut b_out) = (
            BufReader::new(a.stdout.take().unwrap()),
            BufReader::new(b.stdout.take().unwrap()),
        );
        let (la, lb) = (line(&mut a_out), line(&mut b_out));
        assert!(a.wait().unwrap().success(), "sender first: {sender_first}");
        assert!(b.wait().unwrap().success(), "sender first: {sender_first}");
        let digest = |l: &str| l.split_whitespace().nth(1).map(str::to_owned);
        assert!(
            la.starts_with("sha256 ") && lb.starts_with("sha256 "),
            "{la} / {lb}"
        );
        assert_eq!(digest(&la), digest(&lb));
        assert_eq!(std::fs::read(&dst).unwrap(), data);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    server.shutdown();
}

fn in_room(args: &[&str]) -> std::process::Child {
    peer_with(args, Stdio::piped())
}
