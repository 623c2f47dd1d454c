//! The `turnserver` binary under an operator's signals: SIGHUP with a changed certificate and
//! a removed user (live allocations and connections kept, the removed user's next Refresh
//! refused), SIGHUP with a broken file (refused with its line, the running configuration
//! kept), and SIGUSR1's drain with a live allocation (new ones refused, the health endpoint
//! 503, exit when the last allocation is gone).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;

use common::{error_code, free_port, free_ports, spawn, Client, Conn, Running, LIMIT, REALM};
use stun_codec::attr::*;
use stun_codec::Method;

const TURNSERVER: &str = env!("CARGO_BIN_EXE_turnserver");

struct Setup {
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
    tls_port: u16,
    metrics_port: u16,
    ports: (u16, u16),
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("turn-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Setup {
            conf: dir.join("turnserver.conf"),
            dir,
            port: free_port(),
            tls_port: free_port(),
            metrics_port: free_port(),
            ports: free_ports(40),
        }
    }

    /// Writes the file: the fixed part, then `extra` lines.
    fn write(&self, extra: &str) {
        let text = format!(
            "listening-ip=127.0.0.1\nlistening-port={}\ntls-listening-port={}\n\
             min-port={}\nmax-port={}\nrealm={REALM}\nallow-loopback-peers\n\
             prometheus\nprometheus-port={}\n{extra}",
            self.port, self.tls_port, self.ports.0, self.ports.1, self.metrics_port
        );
        std::fs::write(&self.conf, text).unwrap();
    }

    fn start(&self) -> Running {
        spawn(
            TURNSERVER,
            &["-c", self.conf.to_str().unwrap()],
            "turnserver running",
        )
    }

    fn server(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Writes a certificate's PEM files; their `cert=`/`pkey=` lines.
    fn cert(&self, name: &str, tls: &common::Tls) -> String {
        let (c, k) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, &tls.cert_pem).unwrap();
        std::fs::write(&k, &tls.key_pem).unwrap();
        format!("cert={}\npkey={}\n", c.display(), k.display())
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn allocate(c: &mut Client) -> Option<u16> {
    let r = c.call(Method::ALLOCATE, &|b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    error_code(&r)
}

fn refresh(c: &mut Client) -> Option<u16> {
    let r = c.call(Method::REFRESH, &|b| {
        b.add(&Lifetime(600)).unwrap();
    });
    error_code(&r)
}

/// Whether a TLS handshake with `config` succeeds against `addr` (for "localhost").
fn handshake(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> bool {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            return false;
        }
    }
    true
}

/// `GET path` on the metrics listener: (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    t.set_read_timeout(Some(LIMIT)).unwrap();
    write!(t, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut all = String::new();
    t.read_to_string(&mut all).unwrap();
    let status = all.lines().next().unwrap_or_default().to_owned();
    let body = all.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn sighup_reloads_users_and_the_certificate_and_refuses_a_broken_file() {
    let s = Setup::new("hup");
    let (cert1, cert2) = (common::tls(), common::tls());
    s.write(&format!(
        "user=alice:secret\nuser=bob:hunter2\n{}",
        s.cert("one", &cert1)
    ));
    let server = s.start();
    let mut alice = Client::new(Conn::udp(s.server()), "alice", "secret");
    let mut bob = Client::new(Conn::udp(s.server()), "bob", "hunter2");
    assert_eq!(allocate(&mut alice), None);
    assert_eq!(allocate(&mut bob), None);
    // alice relays to a peer through a permission.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(alice.permit(peer.local_addr().unwrap()), None);
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], s.tls_port));
    assert!(handshake(tls_addr, &cert1.client));
    assert!(!handshake(tls_addr, &cert2.client));
    // A TLS client with an allocation, kept across the reload.
    let mut carol = Client::new(Conn::tls(tls_addr, &cert1.client), "alice", "secret");
    assert_eq!(allocate(&mut carol), None);

    // bob is removed, the certificate replaced.
    s.write(&format!("user=alice:secret\n{}", s.cert("two", &cert2)));
    let at = server.log_len();
    server.signal("HUP");
    let at = server.wait_for_log("configuration reloaded", at);
    assert_eq!(refresh(&mut bob), Some(401), "bob's next Refresh");
    assert_eq!(refresh(&mut alice), None);
    assert_eq!(refresh(&mut carol), None, "the TLS connection lived on");
    alice.send_indication(peer.local_addr().unwrap(), b"still relaying");
    let mut buf = [0u8; 64];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still relaying");
    assert!(
        handshake(tls_addr, &cert2.client),
        "new connections get the new certificate"
    );
    assert!(!handshake(tls_addr, &cert1.client));

    // A broken file: refused with its line; the running configuration stays.
    std::fs::write(&s.conf, "user=alice:secret\nno-such-key=1\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("configuration refused", at);
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("line 2: unknown key"), "{log}");
    assert_eq!(refresh(&mut alice), None);
    assert!(handshake(tls_addr, &cert2.client));
    let mut bob2 = Client::new(Conn::udp(s.server()), "bob", "hunter2");
    assert_eq!(allocate(&mut bob2), Some(401), "bob stays removed");
    // A change that needs a restart is named, and the rest applies.
    s.write(&format!(
        "user=alice:secret\nuser=dave:pw\nworkers=2\n{}",
        s.cert("two", &cert2)
    ));
    let at = server.log_len();
    server.signal("HUP");
    server.wait_for_log("need a restart", at);
    server.wait_for_log("configuration reloaded", at);
    let mut dave = Client::new(Conn::udp(s.server()), "dave", "pw");
    assert_eq!(allocate(&mut dave), None);
}

#[test]
fn sigusr1_drains_then_exits_when_the_last_allocation_is_gone() {
    let s = Setup::new("drain");
    s.write("user=alice:secret\nuser=bob:hunter2\n");
    let mut server = s.start();
    assert_eq!(get(s.metrics_port, "/healthz").0, "HTTP/1.1 200 OK");
    let mut alice = Client::new(Conn::udp(s.server()), "alice", "secret");
    assert_eq!(allocate(&mut alice), None);
    let at = server.log_len();
    server.signal("USR1");
    server.wait_for_log("draining", at);
    let (status, body) = get(s.metrics_port, "/healthz");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 503 Service Unavailable", "draining\n")
    );
    let (_, metrics) = get(s.metrics_port, "/metrics");
    assert!(metrics.contains("\nturn_draining 1\n"), "{metrics}");
    // The kernel's drop counters for the UDP sockets (none dropped at this load).
    for kind in ["listener", "relay"] {
        let line = format!("\nturn_udp_kernel_drops_total{{socket=\"{kind}\"}} 0\n");
        assert!(metrics.contains(&line), "{metrics}");
    }
    // New allocations are refused (coturn's 403); the live one goes on.
    let mut bob = Client::new(Conn::udp(s.server()), "bob", "hunter2");
    assert_eq!(allocate(&mut bob), Some(403));
    assert_eq!(refresh(&mut alice), None);
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    // The last allocation ends: the server exits on its own, cleanly.
    let r = alice.call(Method::REFRESH, &|b| {
        b.add(&Lifetime(0)).unwrap();
    });
    assert_eq!(error_code(&r), None);
    server.wait_for_log("drained: no allocation left", at);
    let status = wait_exit(&mut server);
    assert!(status.success(), "{status:?}");
}

/// Waits for the process to end (it was told to: drain complete); kills it and fails after
/// [`LIMIT`].
fn wait_exit(r: &mut Running) -> std::process::ExitStatus {
    let pid = r.child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let child = &mut r.child;
        scope.spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(LIMIT) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("turnserver did not exit after draining");
            }
        }
    })
}
