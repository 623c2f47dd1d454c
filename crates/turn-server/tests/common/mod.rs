//! A small blocking TURN client over UDP, TCP or TLS for end-to-end tests against the driver,
//! and a server on loopback with ephemeral ports. Socket read timeouts only bound a failing
//! test; every wait is for a message or an end of stream, never for time to pass.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use stun_codec::attr::*;
use stun_codec::{
    ChannelData, Class, IntegrityKey, Message, MessageBuilder, MessageType, Method, StreamFramer,
    TransactionId,
};
use turn_server::auth::{RestSecrets, Users};
use turn_server::driver::{RelayIp, Settings};
use turn_server::peer_policy::PeerPolicy;
use turn_server::turn::TurnConfig;

pub mod postgres;

pub const REALM: &str = "example.org";
pub const LIMIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for "localhost", and a client configuration that trusts it.
pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
    /// A client that offers TLS 1.2 only.
    pub client_tls12: Arc<rustls::ClientConfig>,
    /// The certificate, PEM-encoded (for clients in other processes).
    pub cert_pem: String,
    /// Its private key, PEM-encoded (for servers in other processes).
    pub key_pem: String,
}

pub fn tls() -> Tls {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "turn-tls-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    let server = turn_server::driver::tls_config(&c, &k).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let c = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Arc::new(c)
    };
    Tls {
        server,
        client: client(rustls::DEFAULT_VERSIONS),
        client_tls12: client(&[&rustls::version::TLS12]),
        cert_pem: cert.cert.pem(),
        key_pem: cert.signing_key.serialize_pem(),
    }
}

/// A free range of `n` UDP ports on loopback, below Linux's ephemeral range (32768 up), so
/// other tests' client sockets cannot land in it.
pub fn free_ports(n: u16) -> (u16, u16) {
    let lo = std::net::Ipv4Addr::LOCALHOST;
    // Start somewhere different in each process and call, so parallel tests rarely collide
    // (a collision only costs binds: the pool skips ports it cannot bind).
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let offset = (std::process::id() as u16 % 32) * 300
        + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 100;
    'search: for base in (20_000 + offset % 12_000..32_700u16).step_by(97) {
        for p in base..base + n {
            if UdpSocket::bind((lo, p)).is_err() {
                continue 'search;
            }
        }
        return (base, base + n - 1);
    }
    panic!("no free port range")
}

/// Settings for a server on 127.0.0.1 with ephemeral listeners, users alice/secret and
/// bob/hunter2, REST secret "north", and loopback peers allowed.
pub fn settings(tls: Option<&Tls>) -> Settings {
    let lo = "127.0.0.1".parse().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut users = Users::default();
    users.add("alice", REALM, "secret").unwrap();
    users.add("bob", REALM, "hunter2").unwrap();
    Settings {
        udp: vec![any],
        tcp: vec![any],
        tls_listen: if tls.is_some() { vec![any] } else { vec![] },
        tls: tls.map(|t| t.server.clone()),
        relay_ips: vec![RelayIp {
            bind: lo,
            advertise: lo,
        }],
        ports: free_ports(64),
        workers: 1,
        stream_idle_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(1),
        max_stream_connections: 1000,
        turn: TurnConfig {
            realm: REALM.into(),
            peer_policy: PeerPolicy {
                allow_loopback: true,
                ..PeerPolicy::default()
            },
            relay_families: vec![AddressFamily::V4],
            ..TurnConfig::default()
        },
        users,
        rest: RestSecrets::new(["north"]),
        nonce_key: [7; 32],
        metrics: None,
        rfc5780_alternate: None,
        user_db: None,
        use_auth_secret: true,
        secrets: vec!["north".into()],
        tcp_proxy: vec![],
        tls_proxy: vec![],
        proxy_from: vec![],
        fleet_name: "test".into(),
        fleet_dead_after: Duration::from_secs(10),
        sock_buf_size: 1 << 20,
        batch_delay: std::time::Duration::ZERO,
    }
}

/// One connection to the server.
pub enum Conn {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream, StreamFramer),
    Tls(
        Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
        StreamFramer,
    ),
}

impl Conn {
    pub fn udp(server: SocketAddr) -> Conn {
        let s = UdpSocket::bind(if server.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        })
        .unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        Conn::Udp(s, server)
    }

    pub fn tcp(server: SocketAddr) -> Conn {
        let s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        Conn::Tcp(s, StreamFramer::new())
    }

    pub fn tls(server: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Conn {
        let s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let c =
            rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
        Conn::Tls(
            Box::new(rustls::StreamOwned::new(c, s)),
            StreamFramer::new(),
        )
    }

    pub fn send(&mut self, data: &[u8]) {
        match self {
            Conn::Udp(s, to) => {
                s.send_to(data, *to).unwrap();
            }
            Conn::Tcp(s, _) => s.write_all(data).unwrap(),
            Conn::Tls(s, _) => {
                s.write_all(data).unwrap();
                s.flush().unwrap();
            }
        }
    }

    /// The next message or ChannelData from the server.
    pub fn recv(&mut self) -> Vec<u8> {
        let mut buf = vec![0u8; 65_600];
        match self {
            Conn::Udp(s, _) => {
                let (n, _) = s.recv_from(&mut buf).expect("a datagram from the server");
                buf.truncate(n);
                buf
            }
            Conn::Tcp(s, f) => next_frame(s, f),
            Conn::Tls(s, f) => next_frame(&mut **s, f),
        }
    }
}

fn next_frame(s: &mut impl Read, f: &mut StreamFramer) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some((_, frame)) = f.next_frame().unwrap() {
            return frame.to_vec();
        }
        let n = s.read(&mut buf).expect("a frame from the server");
        assert!(n > 0, "the server closed the stream");
        f.push(&buf[..n]);
    }
}

/// A TURN client with long-term credentials.
pub struct Client {
    pub conn: Conn,
    pub user: String,
    pub key: IntegrityKey,
    pub nonce: Option<String>,
    tid: u32,
}

pub fn error_code(msg: &[u8]) -> Option<u16> {
    Message::parse(msg)
        .unwrap()
        .get::<ErrorCode>()
        .unwrap()
        .map(|e| e.code)
}

impl Client {
    pub fn new(conn: Conn, user: &str, password: &str) -> Client {
        Client {
            conn,
            user: user.into(),
            key: IntegrityKey::long_term(user, REALM, password, PasswordAlgorithm::MD5).unwrap(),
            nonce: None,
            tid: 0,
        }
    }

    fn build(&mut self, method: Method, add: &dyn Fn(&mut MessageBuilder<'_>)) -> Vec<u8> {
        self.tid += 1;
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&self.tid.to_be_bytes());
        let mut buf = [0u8; 1024];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(method, Class::Request),
            TransactionId(t),
        )
        .unwrap();
        add(&mut b);
        if let Some(n) = &self.nonce {
            b.add(&Username(&self.user)).unwrap();
            b.add(&Realm(REALM)).unwrap().add(&Nonce(n)).unwrap();
            b.add_message_integrity(&self.key).unwrap();
        }
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }

    /// A request, retried once with the nonce of a 401 or 438; the final response.
    pub fn call(&mut self, method: Method, add: &dyn Fn(&mut MessageBuilder<'_>)) -> Vec<u8> {
        for _ in 0..2 {
            let signed = self.nonce.is_some();
            let req = self.build(method, add);
            self.conn.send(&req);
            let resp = loop {
                let r = self.conn.recv();
                // Skip Data indications and ChannelData that may be in flight.
                if let Ok(m) = Message::parse(&r) {
                    if m.message_type().class != Class::Indication {
                        break r;
                    }
                }
            };
            match error_code(&resp) {
                Some(401) | Some(438) => {
                    let m = Message::parse(&resp).unwrap();
                    let nonce = m.get::<Nonce>().unwrap().expect("a NONCE").0.to_owned();
                    // A 401 to a request that carried credentials: they are wrong. (Comparing
                    // nonces would not do: a nonce renewed in between differs.)
                    if signed && error_code(&resp) == Some(401) {
                        return resp;
                    }
                    self.nonce = Some(nonce);
                }
                _ => return resp,
            }
        }
        panic!("no answer after a nonce retry")
    }

    /// Allocates a UDP relay; its address.
    pub fn allocate(&mut self) -> SocketAddr {
        let r = self.call(Method::ALLOCATE, &|b| {
            b.add(&RequestedTransport::UDP).unwrap();
        });
        let m = Message::parse(&r).unwrap();
        assert_eq!(error_code(&r), None, "Allocate failed");
        m.get::<XorRelayedAddress>().unwrap().unwrap().0
    }

    pub fn permit(&mut self, peer: SocketAddr) -> Option<u16> {
        let r = self.call(Method::CREATE_PERMISSION, &|b| {
            b.add(&XorPeerAddress(peer)).unwrap();
        });
        error_code(&r)
    }

    pub fn bind(&mut self, channel: u16, peer: SocketAddr) -> Option<u16> {
        let r = self.call(Method::CHANNEL_BIND, &|b| {
            b.add(&ChannelNumber(channel))
                .unwrap()
                .add(&XorPeerAddress(peer))
                .unwrap();
        });
        error_code(&r)
    }

    pub fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) {
        let mut buf = vec![0u8; data.len() + 64];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::SEND, Class::Indication),
            TransactionId([9; 12]),
        )
        .unwrap();
        b.add(&XorPeerAddress(peer))
            .unwrap()
            .add(&Data(data))
            .unwrap();
        let m = b.finish().to_vec();
        self.conn.send(&m);
    }

    pub fn channel_data(&mut self, channel: u16, data: &[u8]) {
        let pad = !matches!(self.conn, Conn::Udp(..));
        let mut buf = vec![0u8; data.len() + 8];
        let n = ChannelData::build(channel, data, pad, &mut buf).unwrap();
        self.conn.send(&buf[..n]);
    }
}

/// A free TCP or UDP port on loopback (free now; the caller binds it soon after).
pub fn free_port() -> u16 {
    let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = t.local_addr().unwrap().port();
    // Usable for UDP too?
    if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        port
    } else {
        free_port()
    }
}

/// A server binary running as a child process; killed when dropped.
pub struct Running {
    pub child: std::process::Child,
    /// Everything it has logged so far.
    pub log: Arc<std::sync::Mutex<String>>,
    /// Notified on every line logged.
    logged: Arc<std::sync::Condvar>,
}

impl Running {
    /// A child whose output is not read.
    pub fn from_child(child: std::process::Child) -> Running {
        Running {
            child,
            log: Default::default(),
            logged: Default::default(),
        }
    }

    /// Waits until the log holds `needle` after byte `from`; the offset just past it. Fails
    /// after [`LIMIT`].
    pub fn wait_for_log(&self, needle: &str, from: usize) -> usize {
        let deadline = std::time::Instant::now() + LIMIT;
        let mut log = self.log.lock().unwrap();
        loop {
            if let Some(at) = log.get(from..).and_then(|l| l.find(needle)) {
                return from + at + needle.len();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "no {needle:?} in the log:\n{log}");
            log = self.logged.wait_timeout(log, left).unwrap().0;
        }
    }

    /// How much has been logged so far (an offset for [`wait_for_log`](Self::wait_for_log)).
    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Sends a signal (`HUP`, `USR1`, ...).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` with `args` and waits until it logs `ready` (on standard error).
pub fn spawn(program: &str, args: &[&str], ready: &str) -> Running {
    use std::io::BufRead;
    let mut child = std::process::Command::new(program)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let logged = Arc::new(std::sync::Condvar::new());
    let (tx, rx) = std::sync::mpsc::channel();
    for out in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let log = log.clone();
        let logged = logged.clone();
        let tx = tx.clone();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
                logged.notify_all();
            }
        });
    }
    if rx.recv_timeout(LIMIT).is_err() {
        let _ = child.kill();
        panic!("{program} did not get ready:\n{}", log.lock().unwrap());
    }
    Running { child, log, logged }
}

/// `GET /metrics` from a metrics listener, as (name with labels, value) pairs.
pub fn scrape(addr: SocketAddr) -> Vec<(String, u64)> {
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(LIMIT)).unwrap();
    t.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    t.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("HTTP") && l.contains(' '))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// One value from [`scrape`].
pub fn metric(samples: &[(String, u64)], name: &str) -> u64 {
    samples
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
        .1
}

/// Reads until the peer closes the stream (end of stream or reset); the bytes it sent first.
/// Fails if the stream stays open for [`LIMIT`].
pub fn read_until_closed(t: &mut TcpStream) -> usize {
    let mut b = [0u8; 512];
    let mut total = 0;
    loop {
        match t.read(&mut b) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("the stream was not closed: {e}"),
        }
    }
}
