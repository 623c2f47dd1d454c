//! 10,000 TCP connections that send nothing, against the `turnserver` binary (a separate
//! process, so this test's descriptors and the server's are counted apart): the server holds at
//! most `max-stream-connections` of them, closes the rest at once and the held ones after
//! the idle timeout, and its memory stays bounded meanwhile.

mod common;

use std::net::{SocketAddr, TcpStream};

use common::*;

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

/// How many connections this process can open (its descriptor limit, with room to spare).
fn fd_budget() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        })
        .unwrap_or(1024)
        .saturating_sub(200)
}

#[test]
fn idle_connections_are_bounded_and_closed() {
    let (port, metrics_port) = (free_port(), free_port());
    let (port_s, metrics_s) = (port.to_string(), metrics_port.to_string());
    let server = spawn(
        env!("CARGO_BIN_EXE_turnserver"),
        &[
            "-L",
            "127.0.0.1",
            "-p",
            &port_s,
            "--no-udp",
            "-u",
            "alice:secret",
            "--max-stream-connections",
            "1000",
            "--stream-idle-timeout",
            "2",
            "--prometheus",
            "--prometheus-port",
            &metrics_s,
        ],
        "turnserver running",
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let metrics: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    let before = rss_kib(server.child.id());

    let wanted = 10_000;
    let n = fd_budget().min(wanted);
    if n < wanted {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must allow {wanted} descriptors (ulimit -n); this process may open {n}"
        );
        eprintln!("descriptor limit: testing {n} connections instead of {wanted}");
    }
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        conns.push(c);
    }
    let during = rss_kib(server.child.id());
    // Every connection ends: refused ones at once, held ones after the idle timeout.
    for c in &mut conns {
        assert_eq!(read_until_closed(c), 0, "closed without an answer");
    }
    // The counters are published once a second: wait until they show every connection.
    let start = std::time::Instant::now();
    let samples = loop {
        let s = scrape(metrics);
        let closed = metric(&s, "turn_stream_closed_total{reason=\"limit\"}")
            + metric(&s, "turn_stream_closed_total{reason=\"idle\"}");
        if closed >= n as u64 {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "closed {closed} of {n}");
        std::thread::yield_now();
    };
    assert_eq!(metric(&samples, "turn_stream_connections"), 0);
    assert!(metric(&samples, "turn_stream_connections_peak") <= 1000);
    assert!(metric(&samples, "turn_stream_closed_total{reason=\"idle\"}") >= 1);
    let grew = during.saturating_sub(before);
    eprintln!("server RSS {before} KiB before, {during} KiB with {n} idle connections");
    assert!(grew < 32 * 1024, "memory grew by {grew} KiB");
    drop(server);
}
