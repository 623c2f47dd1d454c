//! What the server logs about its connections, read from a subscriber that captures every
//! line: a failed TLS handshake is reported at the default level, and each line a connection
//! logs carries that connection's client, not another's (the worker runs many connection
//! tasks on one thread, so a span entered across an await would leak into the others).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use turn_server::driver::Server;

/// Every line logged in this test binary, and a signal when one arrives.
#[derive(Clone, Default)]
struct Captured(Arc<(Mutex<String>, Condvar)>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (text, arrived) = &*self.0;
        text.lock().unwrap().push_str(&String::from_utf8_lossy(buf));
        arrived.notify_all();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
}

/// Waits (at most [`common::LIMIT`]) for a logged line that holds every one of `parts`.
fn line_with(parts: &[&str]) -> String {
    let (text, arrived) = &*captured().0;
    let mut guard = text.lock().unwrap();
    let deadline = std::time::Instant::now() + common::LIMIT;
    loop {
        if let Some(line) = guard.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_owned();
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no line with {parts:?} in:\n{guard}");
        guard = arrived.wait_timeout(guard, left).unwrap().0;
    }
}

#[test]
fn a_failed_tls_handshake_is_logged_with_its_client_at_info() {
    captured();
    let tls = common::tls();
    let server = Server::start(common::settings(Some(&tls))).unwrap();
    let mut c = TcpStream::connect(server.tls_addrs()[0]).unwrap();
    // Not a TLS ClientHello.
    c.write_all(b"GET / HTTP/1.1\r\nHost: turn\r\n\r\n")
        .unwrap();
    let client = c.local_addr().unwrap().to_string();
    let line = line_with(&["TLS handshake failed", &client]);
    assert!(line.contains(" INFO "), "at the default level: {line}");
    server.shutdown();
}

#[test]
fn each_connection_logs_under_its_own_client() {
    captured();
    let server = Server::start(common::settings(None)).unwrap();
    let addr: SocketAddr = server.tcp_addrs()[0];
    // A waits in the middle of a frame: its task is parked in a read.
    let mut a = TcpStream::connect(addr).unwrap();
    a.write_all(&[0x00, 0x01]).unwrap();
    let a_addr = a.local_addr().unwrap().to_string();
    // B sends bytes that are no frame: its task logs why it closes.
    let mut b = TcpStream::connect(addr).unwrap();
    b.write_all(&[0x80, 0x60, 0x00, 0x01, 0, 0, 0, 0]).unwrap();
    let b_addr = b.local_addr().unwrap().to_string();
    let line = line_with(&["closing", &b_addr]);
    assert!(
        !line.contains(&a_addr),
        "B's line carries A's span too: {line}"
    );
    drop(a);
    server.shutdown();
}
