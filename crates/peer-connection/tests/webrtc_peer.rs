//! `webrtc-peer send` to `webrtc-peer receive` on loopback, offer and answer relayed between
//! the two processes as a user would paste them: both print the same SHA-256 and the copy is
//! the file.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn peer(args: &[&str]) -> std::process::Child {
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
        .stderr(Stdio::inherit())
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
