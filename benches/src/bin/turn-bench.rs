//! `turn-bench`: our `turnserver` and coturn under the same loads, side by side, in one run.
//!
//! ```sh
//! cargo run --release --manifest-path benches/Cargo.toml --bin turn-bench
//! ```
//!
//! It builds our server (release), installs Debian's coturn if it is missing (as root), and
//! for each round and each load starts every server in turn on loopback, sets up the
//! allocations, offers the load for a few seconds, and reads what the kernel accounted to the
//! server's process: CPU time (the sum of `/proc/<pid>/task/*/schedstat`, in nanoseconds, so
//! the generator's own cost is not counted) and the drops of the server's UDP sockets
//! (`/proc/net/udp*`, matched by socket inode). It prints the medians over the rounds.
//!
//! Loads (`--loads`, comma-separated; all by default):
//! - `binding`: STUN Binding requests from 20 clients.
//! - `channel-shared`: 20 clients → one peer, ChannelData.
//! - `channel-own`: 20 clients, each to its own peer, ChannelData.
//! - `send-shared`: 20 clients → one peer, Send indications.
//! - `tcp-shared`: 20 TCP clients → one peer, ChannelData.
//! - `tls-shared`: 20 TLS clients → one peer, ChannelData (both servers get the same
//!   self-signed certificate, made for the run).
//! - `paced`: `--paced-allocations` (1,000) allocations, each sending 50 packets/s to its own
//!   peer, which echoes (50/s each way), spread evenly in time: media-like.
//! - `scale`: `--scale-allocations` (100,000) allocations, each with a permission and a channel
//!   to one peer, set up and held: the server's resident memory per allocation, and its CPU per
//!   allocation made. The servers get relay addresses enough for them (127.0.0.1 and on), and
//!   the bench raises its open-files limit for both sides' sockets (as far as it may: fewer
//!   allocations, said so, where the hard limit is lower and cannot be raised).
//! - `churn`: whole allocation lifetimes, 64 at a time: 401 → Allocate → CreatePermission and
//!   ChannelBind (sent together) → Refresh 0.
//!
//! The bursty loads (all but `paced` and `churn`) offer `--rate` packets/s in bursts of
//! `--burst` per client. Payloads are 160 bytes (an audio frame) with the send time inside:
//! latency is measured to the peer (or back to the client for `paced` and `binding`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use sans_io::{Output, Receive, Transport};
use stun_client::{TurnClient, TurnClientConfig, TurnEvent};
use stun_codec::{Class, MessageBuilder, MessageType, Method, StreamFramer, TransactionId};

const USER: &str = "bench";
const PASSWORD: &str = "bench";
const REALM: &str = "bench";
/// Relay ports: below Linux's ephemeral range, where the generator's own sockets live.
const RELAY_PORTS: (u16, u16) = (10_000, 29_999);
const PAYLOAD: usize = 160;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Load {
    Binding,
    ChannelShared,
    ChannelOwn,
    SendShared,
    TcpShared,
    TlsShared,
    Paced,
    Scale,
    Churn,
}

impl Load {
    const ALL: [Load; 9] = [
        Load::Binding,
        Load::ChannelShared,
        Load::ChannelOwn,
        Load::SendShared,
        Load::TcpShared,
        Load::TlsShared,
        Load::Paced,
        Load::Scale,
        Load::Churn,
    ];

    fn name(self) -> &'static str {
        match self {
            Load::Binding => "binding",
            Load::ChannelShared => "channel-shared",
            Load::ChannelOwn => "channel-own",
            Load::SendShared => "send-shared",
            Load::TcpShared => "tcp-shared",
            Load::TlsShared => "tls-shared",
            Load::Paced => "paced",
            Load::Scale => "scale",
            Load::Churn => "churn",
        }
    }
}

#[derive(Clone, Debug)]
enum Kind {
    /// Our server; `label` names the binary when `--ours` gives several (an A/B run).
    Ours {
        path: PathBuf,
        workers: usize,
        label: Option<String>,
    },
    /// coturn at `path` (`--coturn`), its version as it reports it; `mux`: with its
    /// non-standard `--multiplex-peer --udp-gso` (4.17 on; one shared relay port per thread).
    Coturn {
        path: PathBuf,
        version: String,
        mux: bool,
    },
    /// A bare UDP echo, one `recvfrom` and one `sendto` per datagram: the unbatched floor
    /// (Binding load only).
    Echo,
}

impl Kind {
    /// The echo answers Binding only; coturn's multiplex mode refuses a second allocation to
    /// one peer address, which the shared-peer loads and churn make.
    fn serves(&self, load: Load) -> bool {
        match self {
            Kind::Echo => load == Load::Binding,
            Kind::Coturn { mux: true, .. } => {
                matches!(load, Load::Binding | Load::ChannelOwn | Load::Paced)
            }
            _ => true,
        }
    }

    fn name(&self) -> String {
        match self {
            Kind::Ours { workers, label, .. } => format!(
                "ours{}, {workers} worker{}",
                label.as_ref().map_or(String::new(), |l| format!(" ({l})")),
                if *workers == 1 { "" } else { "s" }
            ),
            Kind::Coturn { version, mux, .. } => format!(
                "coturn {version}{}",
                if *mux {
                    " --multiplex-peer --udp-gso"
                } else {
                    " (default threads)"
                }
            ),
            Kind::Echo => "bare UDP echo (the floor)".into(),
        }
    }
}

struct Args {
    rounds: usize,
    seconds: f64,
    rate: u64,
    burst: usize,
    paced_allocations: usize,
    scale_allocations: usize,
    loads: Vec<Load>,
    servers: Vec<Kind>,
    /// Our binaries (`--ours`, comma-separated): each runs where `--servers` says `ours1`
    /// or `ours2`.
    ours: Vec<PathBuf>,
    /// coturn binaries (`--coturn`, comma-separated): each runs where `--servers` says
    /// `coturn`; ratios are against the first.
    coturn: Vec<PathBuf>,
    json: bool,
    /// Our `udp-batch-delay`, in microseconds.
    batch_delay: u64,
    tls: TlsFiles,
}

/// The run's self-signed certificate for `localhost`: the servers read its files, the TLS
/// clients trust it.
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl TlsFiles {
    fn new() -> TlsFiles {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let dir = std::env::temp_dir().join(format!("turn-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).expect("write cert");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsFiles {
            cert,
            key,
            client: Arc::new(client),
        }
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        if let Some(dir) = self.cert.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "turn-bench [--rounds N] [--seconds S] [--rate PPS] [--burst N] [--paced-allocations N]\n\
         \x20          [--scale-allocations N]\n\
         \x20          [--loads a,b,..] [--servers echo,ours1,ours2,coturn,coturn-mux]\n\
         \x20          [--ours PATH,PATH..] [--coturn PATH,PATH..]\n\
         \x20          [--batch-delay MICROSECONDS] [--smoke] [--json]\n\
         loads: {}",
        Load::ALL.map(Load::name).join(", ")
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut a = Args {
        rounds: 3,
        seconds: 3.0,
        rate: 100_000,
        burst: 16,
        paced_allocations: 1000,
        scale_allocations: 100_000,
        loads: Load::ALL.to_vec(),
        servers: vec![Kind::Echo, ours_slot(1), ours_slot(2), coturn_slot(false)],
        ours: Vec::new(),
        coturn: vec![PathBuf::from(DEBIAN_COTURN)],
        json: false,
        batch_delay: 0,
        tls: TlsFiles::new(),
    };
    let mut build = true;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--rounds" => a.rounds = val().parse().unwrap_or_else(|_| usage()),
            "--seconds" => a.seconds = val().parse().unwrap_or_else(|_| usage()),
            "--rate" => a.rate = val().parse().unwrap_or_else(|_| usage()),
            "--burst" => a.burst = val().parse().unwrap_or_else(|_| usage()),
            "--paced-allocations" => {
                a.paced_allocations = val().parse().unwrap_or_else(|_| usage())
            }
            "--scale-allocations" => {
                a.scale_allocations = val().parse().unwrap_or_else(|_| usage())
            }
            "--loads" => {
                a.loads = val()
                    .split(',')
                    .map(|n| {
                        Load::ALL
                            .into_iter()
                            .find(|l| l.name() == n)
                            .unwrap_or_else(|| usage())
                    })
                    .collect()
            }
            "--servers" => {
                a.servers = val()
                    .split(',')
                    .map(|n| match n {
                        "ours1" => ours_slot(1),
                        "ours2" => ours_slot(2),
                        "coturn" => coturn_slot(false),
                        "coturn-mux" => coturn_slot(true),
                        "echo" => Kind::Echo,
                        _ => usage(),
                    })
                    .collect()
            }
            "--ours" => {
                a.ours = val().split(',').map(PathBuf::from).collect();
                build = false;
            }
            "--coturn" => a.coturn = val().split(',').map(PathBuf::from).collect(),
            "--json" => a.json = true,
            "--batch-delay" => a.batch_delay = val().parse().unwrap_or_else(|_| usage()),
            "--echo-server" => echo_server(val().parse().unwrap_or_else(|_| usage())),
            // A short run that checks the harness itself works (CI): one round of everything.
            "--smoke" => {
                a.rounds = 1;
                a.seconds = 0.5;
                a.rate = 20_000;
                a.paced_allocations = 100;
                a.scale_allocations = 1_000;
            }
            _ => usage(),
        }
    }
    if build {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "turn-server",
                "--bin",
                "turnserver",
            ])
            .current_dir(&root)
            .status()
            .expect("cargo");
        assert!(status.success(), "building our turnserver failed");
        a.ours = vec![target_dir(&root).join("release/turnserver")];
    }
    let debian = Path::new(DEBIAN_COTURN);
    let wanted = a.servers.iter().any(|s| matches!(s, Kind::Coturn { .. }));
    if wanted && a.coturn.iter().any(|c| c == debian) && !debian.exists() {
        eprintln!("{DEBIAN_COTURN} missing: installing Debian's coturn");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "coturn"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && debian.exists(),
            "coturn could not be installed; pass --servers ours1,ours2"
        );
    }
    // Each `ours` and `coturn` slot becomes one server per binary, in their order;
    // `coturn-mux` the last.
    let servers = std::mem::take(&mut a.servers);
    for kind in servers {
        match kind {
            Kind::Ours { workers, .. } => {
                for path in &a.ours {
                    let label = (a.ours.len() > 1).then(|| path.display().to_string());
                    a.servers.push(Kind::Ours {
                        path: path.clone(),
                        workers,
                        label,
                    });
                }
            }
            Kind::Coturn { mux, .. } => {
                // The multiplex mode is 4.17's: the last binary only.
                let paths = if mux {
                    &a.coturn[a.coturn.len() - 1..]
                } else {
                    &a.coturn[..]
                };
                for path in paths {
                    let version = coturn_version(path);
                    a.servers.push(Kind::Coturn {
                        path: path.clone(),
                        version,
                        mux,
                    });
                }
            }
            other => a.servers.push(other),
        }
    }
    a
}

const DEBIAN_COTURN: &str = "/usr/bin/turnserver";

/// An `ours` slot of `--servers`, filled with the binaries once they are known.
fn ours_slot(workers: usize) -> Kind {
    Kind::Ours {
        path: PathBuf::new(),
        workers,
        label: None,
    }
}

/// A `coturn` slot of `--servers`, filled with the binaries once they are known.
fn coturn_slot(mux: bool) -> Kind {
    Kind::Coturn {
        path: PathBuf::new(),
        version: String::new(),
        mux,
    }
}

/// What `turnserver --version` prints (e.g. `4.6.1`).
fn coturn_version(path: &Path) -> String {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("?")
        .to_string()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

// ---------------------------------------------------------------- the server process

struct Server {
    child: Child,
    addr: SocketAddr,
    /// The TLS listener (ours and coturn), and the config its clients use.
    tls_addr: SocketAddr,
    tls_client: Arc<rustls::ClientConfig>,
    /// Our metrics listener (coturn's is not started).
    metrics: Option<SocketAddr>,
}

impl Server {
    /// Our server's system calls and datagrams so far, from its metrics:
    /// `[recv calls, received, send calls, sent]`.
    fn syscalls(&self) -> Option<[f64; 4]> {
        let mut s = TcpStream::connect(self.metrics?).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let get = |name: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(name))?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        };
        Some([
            get("turn_udp_syscalls_total{op=\"recv\"}")?,
            get("turn_udp_datagrams_total{op=\"recv\"}")?,
            get("turn_udp_syscalls_total{op=\"send\"}")?,
            get("turn_udp_datagrams_total{op=\"send\"}")?,
        ])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    // A UDP and a TCP socket on the same port, both free now.
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The first of `n` consecutive UDP ports on loopback that are free now (above the relay
/// range, below the ephemeral one).
fn free_block(n: u16) -> u16 {
    let free = |p: u16| UdpSocket::bind(("127.0.0.1", p)).is_ok();
    (RELAY_PORTS.1 + 1..32_768 - n)
        .step_by(usize::from(n))
        .find(|&b| (b..b + n).all(free))
        .expect("no free block of UDP ports")
}

/// Relay addresses for the scale load: 127.0.0.1 and on, half the relay ports of each used.
fn scale_relay_ips(allocations: usize) -> Vec<String> {
    let per_ip = usize::from(RELAY_PORTS.1 - RELAY_PORTS.0) / 2;
    (1..=(allocations / per_ip + 1).min(254))
        .map(|i| format!("127.0.0.{i}"))
        .collect()
}

/// The scale load's allocations, as many of `wanted` as the open-files limit lets each
/// process (ours, a server's) hold: the limit is raised as far as it goes (beyond the hard
/// limit only with CAP_SYS_RESOURCE), the servers inherit it, and a cut is said.
fn fit_open_files(wanted: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const SPARE: u64 = 2048;
    let needed = wanted as u64 + SPARE;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < needed && setrlimit(Resource::RLIMIT_NOFILE, needed, hard.max(needed)).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(needed), hard);
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let fits = usize::try_from(soft.saturating_sub(SPARE)).unwrap_or(usize::MAX);
    if fits < wanted {
        eprintln!(
            "the open-files limit is {soft} here (raising it needs CAP_SYS_RESOURCE): the scale \
             load holds {fits} allocations, not {wanted}"
        );
    }
    wanted.min(fits)
}

fn start(kind: &Kind, args: &Args, load: Load) -> Server {
    let port = free_port();
    let p = port.to_string();
    let (lo, hi) = (RELAY_PORTS.0.to_string(), RELAY_PORTS.1.to_string());
    let common = [
        "-n",
        "-L",
        "127.0.0.1",
        "--relay-ip",
        "127.0.0.1",
        "-p",
        &p,
        "--min-port",
        &lo,
        "--max-port",
        &hi,
        "-a",
        "-u",
        "bench:bench",
        "-r",
        REALM,
        "--allow-loopback-peers",
    ];
    let tls_port = free_port();
    let tp = tls_port.to_string();
    let (cert, key) = (
        args.tls.cert.to_str().expect("utf-8 path"),
        args.tls.key.to_str().expect("utf-8 path"),
    );
    let tls = ["--tls-listening-port", &tp, "--cert", cert, "--pkey", key];
    // The scale load's further relay addresses (127.0.0.1 is in `common`).
    let more_relays: Vec<String> = if load == Load::Scale {
        scale_relay_ips(args.scale_allocations)
            .into_iter()
            .skip(1)
            .flat_map(|ip| ["--relay-ip".to_string(), ip])
            .collect()
    } else {
        Vec::new()
    };
    let mut metrics = None;
    let mut cmd = match kind {
        Kind::Ours { path, workers, .. } => {
            let mut c = Command::new(path);
            let mp = free_port();
            metrics = Some(SocketAddr::from(([127, 0, 0, 1], mp)));
            c.args(common).args(tls).args(&more_relays).args([
                "--workers",
                &workers.to_string(),
                "--log-level",
                "warn",
            ]);
            c.args(["--prometheus", "--prometheus-port", &mp.to_string()]);
            c.args(["--udp-batch-delay", &args.batch_delay.to_string()]);
            c
        }
        Kind::Echo => {
            let mut c = Command::new(std::env::current_exe().expect("own path"));
            c.args(["--echo-server", &p]);
            c
        }
        Kind::Coturn { path, mux, .. } => {
            let mut c = Command::new(path);
            if *mux {
                // Two ports (IPv4, IPv6) per relay thread, from the base.
                let base = free_block(16).to_string();
                c.args([
                    "--multiplex-peer",
                    "--udp-gso",
                    "--multiplex-peer-port",
                    &base,
                ]);
            }
            c.args(common).args(tls).args(&more_relays).args([
                "--no-dtls",
                "--no-cli",
                "--simple-log",
                "--log-file",
                "/tmp/turn-bench-coturn.log",
            ]);
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", kind.name()));
    let server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tls_addr: SocketAddr::from(([127, 0, 0, 1], tls_port)),
        tls_client: args.tls.client.clone(),
        metrics,
    };
    wait_ready(server.addr, kind);
    server
}

/// The echo server's process: each datagram back to its sender, one system call each way.
fn echo_server(port: u16) -> ! {
    let s = UdpSocket::bind(("127.0.0.1", port)).expect("echo bind");
    big_buffers(&s);
    let mut buf = [0u8; 65_536];
    loop {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    }
}

/// Readiness: a Binding request answered (every 50 ms, for up to 10 s).
fn wait_ready(server: SocketAddr, kind: &Kind) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut req = [0u8; 20];
    let len = MessageBuilder::new(
        &mut req,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([7; 12]),
    )
    .expect("builder")
    .finish()
    .len();
    let until = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    while Instant::now() < until {
        let _ = s.send_to(&req[..len], server);
        if s.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("{} did not answer on {server}", kind.name());
}

/// CPU time of every thread of `pid` so far, in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Datagrams the kernel dropped on `pid`'s UDP sockets (full receive buffers), so far.
fn udp_drops(pid: u32) -> u64 {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let l = link.to_string_lossy();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(i.to_owned());
                }
            }
        }
    }
    let mut drops = 0;
    for file in ["net/udp", "net/udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 12 && inodes.contains(f[9]) {
                drops += f[f.len() - 1].parse::<u64>().unwrap_or(0);
            }
        }
    }
    drops
}

// ---------------------------------------------------------------- clients

/// One allocation: its socket (UDP, connected to the server, or TCP) and its client.
struct Alloc {
    sock: Sock,
    client: TurnClient,
    peer: SocketAddr,
    channel: bool,
    /// Answers still awaited before the allocation is ready (its permission, its channel).
    awaited: u8,
    done: bool,
    failed: bool,
    framer: StreamFramer,
}

enum Sock {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Alloc {
    fn new(server: &Server, transport: Transport, peer: SocketAddr, channel: bool) -> Alloc {
        let ip = client_ip();
        let to = match transport {
            Transport::Tls => server.tls_addr,
            _ => server.addr,
        };
        let (sock, local) = match transport {
            Transport::Udp => {
                let s = UdpSocket::bind((ip, 0)).expect("bind");
                s.connect(to).expect("connect");
                big_buffers(&s);
                let l = s.local_addr().expect("addr");
                (Sock::Udp(s), l)
            }
            _ => {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .expect("socket");
                s.bind(&SocketAddr::from((ip, 0)).into()).expect("bind");
                s.connect(&to.into()).expect("tcp connect");
                let mut s = TcpStream::from(s);
                s.set_nodelay(true).expect("nodelay");
                let l = s.local_addr().expect("addr");
                if transport == Transport::Tls {
                    // The handshake while the socket still blocks; then as TCP.
                    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                    let mut conn = rustls::ClientConnection::new(server.tls_client.clone(), name)
                        .expect("tls client");
                    while conn.is_handshaking() {
                        conn.complete_io(&mut s).expect("tls handshake");
                    }
                    (Sock::Tls(Box::new(rustls::StreamOwned::new(conn, s))), l)
                } else {
                    (Sock::Tcp(s), l)
                }
            }
        };
        match &sock {
            Sock::Udp(s) => s.set_nonblocking(true),
            Sock::Tcp(s) => s.set_nonblocking(true),
            Sock::Tls(s) => s.sock.set_nonblocking(true),
        }
        .expect("nonblocking");
        let config = TurnClientConfig::new(to, transport, USER, PASSWORD);
        let mut client = TurnClient::new(config, local, rand_seed(local));
        client.allocate(Instant::now());
        Alloc {
            sock,
            client,
            peer,
            channel,
            awaited: 0,
            done: false,
            failed: false,
            framer: StreamFramer::new(),
        }
    }

    fn send_raw(&mut self, data: &[u8]) -> bool {
        match &mut self.sock {
            Sock::Udp(s) => s.send(data).is_ok(),
            Sock::Tcp(s) => write_all_nonblocking(s, data),
            Sock::Tls(s) => write_all_nonblocking(s.as_mut(), data),
        }
    }

    /// Runs the client's outputs; true while it has work in flight.
    fn pump(&mut self, now: Instant) {
        while let Some(o) = self.client.poll_output() {
            match o {
                Output::Transmit(t) => {
                    self.send_raw(&t.data);
                }
                Output::Event(e) => match e {
                    TurnEvent::Allocated { .. } => {
                        // A permission (the client sends only with one), and a channel.
                        self.client.create_permission(now, self.peer.ip());
                        self.awaited = 1;
                        if self.channel {
                            self.client.bind_channel(now, self.peer);
                            self.awaited = 2;
                        }
                    }
                    TurnEvent::ChannelBound { .. } | TurnEvent::PermissionCreated(_) => {
                        self.awaited -= 1;
                        self.done = self.awaited == 0;
                    }
                    TurnEvent::AllocationFailed(e)
                    | TurnEvent::AllocationLost(e)
                    | TurnEvent::PermissionFailed(_, e) => {
                        eprintln!("allocation failed: {e}");
                        self.failed = true;
                    }
                    _ => {}
                },
                Output::Timeout(_) | Output::Request(_) => {}
            }
        }
    }

    /// Reads what the server sent and feeds it to the client.
    fn poll_recv(&mut self, now: Instant, buf: &mut [u8]) {
        let server = self.client.server();
        let local = self.client.local();
        let (stream, transport): (&mut dyn Read, _) = match &mut self.sock {
            Sock::Udp(s) => {
                while let Ok(n) = s.recv(buf) {
                    self.client
                        .handle_receive(now, Receive::udp(local, server, &buf[..n]));
                }
                return;
            }
            Sock::Tcp(s) => (s, Transport::Tcp),
            Sock::Tls(s) => (s.as_mut(), Transport::Tls),
        };
        while let Ok(n) = stream.read(buf) {
            if n == 0 {
                self.failed = true;
                break;
            }
            self.framer.push(&buf[..n]);
            while let Ok(Some((_, frame))) = self.framer.next_frame() {
                let r = Receive {
                    transport,
                    local,
                    remote: server,
                    data: frame,
                };
                self.client.handle_receive(now, r);
            }
        }
    }
}

/// A new loopback address for each client (127.1.0.1, 127.1.0.2, ...): servers limit the
/// 401 challenges they send one source address (ours to 10/s after a burst of 20, against
/// reflection), and real clients come from many addresses.
fn client_ip() -> std::net::Ipv4Addr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (200 * 250 * 250);
    std::net::Ipv4Addr::new(
        127,
        1 + (n / 62_500) as u8,
        (n / 250 % 250) as u8,
        (n % 250 + 1) as u8,
    )
}

/// Writes all of `data`, waiting out a full send buffer; for TLS, until its records are
/// with the kernel (`flush`; a no-op for TCP).
fn write_all_nonblocking<W: Write + ?Sized>(s: &mut W, mut data: &[u8]) -> bool {
    let would_block = |e: &std::io::Error| e.kind() == std::io::ErrorKind::WouldBlock;
    while !data.is_empty() {
        match s.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if would_block(&e) => std::thread::yield_now(),
            Err(_) => return false,
        }
    }
    loop {
        match s.flush() {
            Ok(()) => return true,
            Err(e) if would_block(&e) => std::thread::yield_now(),
            Err(_) => return false,
        }
    }
}

fn rand_seed(a: SocketAddr) -> u64 {
    let t = Instant::now().elapsed().as_nanos() as u64;
    (u64::from(a.port()) << 32) ^ t ^ 0x9e37_79b9_7f4a_7c15
}

/// Allocations set up at once.
const SETUP_IN_FLIGHT: usize = 200;

/// `n` allocations set up, `SETUP_IN_FLIGHT` at a time (each made only when its turn comes,
/// so that none waits with its Allocate unsent): each allocates, then binds a channel to its
/// peer (or installs a permission for it). Panics if any fails, or a group takes over 30 s.
fn setup(n: usize, mut make: impl FnMut(usize) -> Alloc) -> Vec<Alloc> {
    let mut buf = vec![0u8; 65_536];
    let mut allocs = Vec::with_capacity(n);
    for first in (0..n).step_by(SETUP_IN_FLIGHT) {
        let mut group: Vec<Alloc> = (first..n.min(first + SETUP_IN_FLIGHT))
            .map(&mut make)
            .collect();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let now = Instant::now();
            assert!(now < until, "setting up allocations took over 30 s");
            let mut pending = 0;
            for a in group.iter_mut() {
                a.poll_recv(now, &mut buf);
                a.client.handle_timeout(now);
                a.pump(now);
                assert!(!a.failed, "an allocation failed");
                pending += usize::from(!a.done);
            }
            if pending == 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        allocs.append(&mut group);
    }
    allocs
}

fn big_buffers(s: &impl AsFd) {
    use nix::sys::socket::{setsockopt, sockopt};
    let size = 8 << 20;
    if setsockopt(s, sockopt::RcvBufForce, &size).is_err() {
        let _ = setsockopt(s, sockopt::RcvBuf, &size);
    }
    if setsockopt(s, sockopt::SndBufForce, &size).is_err() {
        let _ = setsockopt(s, sockopt::SndBuf, &size);
    }
}

fn peer_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    big_buffers(&s);
    s
}

// ---------------------------------------------------------------- the load

/// Latencies in 10 µs buckets up to 100 ms.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: vec![0; 10_001],
            count: 0,
        }
    }
    fn add(&mut self, ns: u64) {
        let b = ((ns / 10_000) as usize).min(10_000);
        self.buckets[b] += 1;
        self.count += 1;
    }
    fn percentile(&self, p: f64) -> f64 {
        let want = ((self.count as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want && *n > 0 {
                return (i as f64 + 0.5) * 10.0;
            }
        }
        f64::NAN
    }
}

/// What one measured window gave.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    offered: u64,
    received: u64,
    seconds: f64,
    cpu_ns: u64,
    kernel_drops: u64,
    p50_us: f64,
    p99_us: f64,
    /// RSS growth per allocation during setup (paced, scale), bytes.
    rss_per_alloc: f64,
    /// Ours: mean datagrams per `recvmmsg` and per `sendmmsg` in the window.
    batch: Option<(f64, f64)>,
}

impl Figures {
    fn cpu_per_packet_us(&self) -> f64 {
        self.cpu_ns as f64 / 1000.0 / self.received.max(1) as f64
    }
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.offered.max(1) as f64
    }
    fn pps(&self) -> f64 {
        self.received as f64 / self.seconds
    }
}

fn stamp(buf: &mut [u8], epoch: Instant) {
    let ns = epoch.elapsed().as_nanos() as u64;
    buf[..8].copy_from_slice(&ns.to_be_bytes());
}

fn stamp_of(buf: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(buf.get(..8)?.try_into().ok()?))
}

/// What the generator reads: the peers (echoing when paced) and the clients (answers and
/// echoes). It never sleeps — `poll` asks epoll with a zero timeout — so that no datagram the
/// server sends on loopback costs it the wake-up of a sleeping generator thread, which a
/// server on a real network never pays.
struct Receiver {
    ep: Epoll,
    /// Each socket, where its datagrams' stamp is, and whether to echo them.
    socks: Vec<(UdpSocket, usize, bool)>,
    events: Vec<EpollEvent>,
    buf: Vec<u8>,
    received: u64,
    hist: Histogram,
    epoch: Instant,
}

impl Receiver {
    fn new(socks: Vec<(UdpSocket, usize, bool)>, epoch: Instant) -> Receiver {
        let ep = Epoll::new(EpollCreateFlags::empty()).expect("epoll");
        for (i, (s, _, _)) in socks.iter().enumerate() {
            ep.add(s, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                .expect("epoll add");
        }
        Receiver {
            ep,
            socks,
            events: vec![EpollEvent::empty(); 256],
            buf: vec![0; 2048],
            received: 0,
            hist: Histogram::new(),
            epoch,
        }
    }

    /// Reads whatever has arrived, without waiting.
    fn poll(&mut self) {
        let n = self
            .ep
            .wait(&mut self.events, EpollTimeout::ZERO)
            .unwrap_or(0);
        for e in &self.events[..n] {
            let (s, offset, echo) = &self.socks[e.data() as usize];
            while let Ok((len, from)) = s.recv_from(&mut self.buf) {
                self.received += 1;
                if let Some(t) = stamp_of(&self.buf[*offset..len]) {
                    self.hist
                        .add((self.epoch.elapsed().as_nanos() as u64).saturating_sub(t));
                }
                if *echo {
                    let _ = s.send_to(&self.buf[*offset..len], from);
                }
            }
        }
    }

    /// Polls until nothing has arrived for `quiet`, or `max` has passed.
    fn drain(&mut self, quiet: Duration, max: Duration) {
        let start = Instant::now();
        let mut last = (self.received, Instant::now());
        while last.1.elapsed() < quiet && start.elapsed() < max {
            self.poll();
            if self.received != last.0 {
                last = (self.received, Instant::now());
            }
        }
    }

    /// Polls until `t`.
    fn poll_until(&mut self, t: Instant) {
        while Instant::now() < t {
            self.poll();
        }
    }
}

/// Runs one load against one running server.
fn run(load: Load, server: &Server, args: &Args) -> Figures {
    let pid = server.child.id();
    let epoch = Instant::now();
    let seconds = args.seconds;
    if load == Load::Churn {
        return churn(server, seconds);
    }
    // Who sends what, and who listens.
    let clients = 20;
    let (transport, shared_peer, channel) = match load {
        Load::Binding => (Transport::Udp, true, false),
        Load::ChannelShared => (Transport::Udp, true, true),
        Load::ChannelOwn => (Transport::Udp, false, true),
        Load::SendShared => (Transport::Udp, true, false),
        Load::TcpShared => (Transport::Tcp, true, true),
        Load::TlsShared => (Transport::Tls, true, true),
        Load::Paced => (Transport::Udp, false, true),
        Load::Scale => (Transport::Udp, true, true),
        Load::Churn => unreachable!(),
    };
    let n = match load {
        Load::Paced => args.paced_allocations,
        Load::Scale => args.scale_allocations,
        _ => clients,
    };
    let peers: Vec<UdpSocket> = (0..if shared_peer { 1 } else { n })
        .map(|_| peer_socket())
        .collect();
    let peer_addrs: Vec<SocketAddr> = peers
        .iter()
        .map(|p| p.local_addr().expect("addr"))
        .collect();
    let rss_before = rss_kib(pid);
    let (setup_cpu0, setup_t0) = (cpu_ns(pid), Instant::now());
    let mut allocs: Vec<Alloc> = Vec::new();
    let mut binding_socks: Vec<UdpSocket> = Vec::new();
    if load == Load::Binding {
        for _ in 0..clients {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.connect(server.addr).expect("connect");
            big_buffers(&s);
            binding_socks.push(s);
        }
    } else {
        allocs = setup(n, |i| {
            Alloc::new(server, transport, peer_addrs[i % peer_addrs.len()], channel)
        });
    }
    let rss_after = rss_kib(pid);
    let rss_per_alloc = if allocs.is_empty() {
        0.0
    } else {
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / allocs.len() as f64
    };
    if load == Load::Scale {
        // Held, not loaded: the memory they take, and the CPU it took to make them.
        return Figures {
            offered: n as u64,
            received: allocs.len() as u64,
            seconds: setup_t0.elapsed().as_secs_f64(),
            cpu_ns: cpu_ns(pid) - setup_cpu0,
            rss_per_alloc,
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            ..Figures::default()
        };
    }

    // Each sender's message, built once; its first bytes of payload carry the send time.
    let mut msgs: Vec<(Vec<u8>, usize)> = Vec::new();
    if load == Load::Binding {
        for i in 0..clients {
            let mut m = vec![0u8; 20];
            MessageBuilder::new(
                &mut m,
                MessageType::new(Method::BINDING, Class::Request),
                TransactionId([i as u8; 12]),
            )
            .expect("builder")
            .finish();
            // The stamp goes in the transaction id (bytes 8..16), which the answer echoes.
            msgs.push((m, 8));
        }
    } else {
        for a in allocs.iter_mut() {
            let mut out = vec![0u8; PAYLOAD + stun_client::SEND_OVERHEAD];
            let t = a
                .client
                .send_to(a.peer, &[0u8; PAYLOAD], &mut out)
                .expect("send_to");
            let len = t.data.len();
            out.truncate(len);
            // The payload is the message's last PAYLOAD bytes (ChannelData over TCP pads
            // 160 bytes not at all: 160 is a multiple of 4).
            let at = len - PAYLOAD;
            msgs.push((out, at));
        }
    }

    // Receivers: the peers (echoing when paced), and the clients for answers and echoes.
    let mut listen: Vec<(UdpSocket, usize, bool)> = peers
        .into_iter()
        .map(|p| (p, 0, load == Load::Paced))
        .collect();
    if load == Load::Binding {
        for s in &binding_socks {
            s.set_nonblocking(true).expect("nonblocking");
            // An answer's transaction id starts at byte 8; the stamp is its first 8 bytes.
            listen.push((s.try_clone().expect("clone"), 8, false));
        }
    } else if load == Load::Paced {
        for a in &allocs {
            if let Sock::Udp(s) = &a.sock {
                // ChannelData back: a 4-byte header, then the payload.
                listen.push((s.try_clone().expect("clone"), 4, false));
            }
        }
    }
    let mut rx = Receiver::new(listen, epoch);

    let calls0 = server.syscalls();
    let cpu0 = cpu_ns(pid);
    let drops0 = udp_drops(pid);
    let t0 = Instant::now();
    let offered = if load == Load::Paced {
        send_paced(&mut allocs, &mut msgs, &mut rx, seconds)
    } else {
        let mut targets: Vec<Target> = if load == Load::Binding {
            binding_socks.iter().map(Target::Udp).collect()
        } else {
            allocs
                .iter_mut()
                .map(|a| match &mut a.sock {
                    Sock::Udp(s) => Target::Udp(s),
                    Sock::Tcp(s) => Target::Stream(s),
                    Sock::Tls(s) => Target::Stream(s.as_mut()),
                })
                .collect()
        };
        send_bursty(
            &mut targets,
            &mut msgs,
            &mut rx,
            seconds,
            args.rate,
            args.burst,
        )
    };
    let sent_for = t0.elapsed().as_secs_f64();
    // What is still in flight (a TCP backlog, a server behind its queue): until nothing has
    // come for 200 ms, for at most 5 s.
    rx.drain(Duration::from_millis(200), Duration::from_secs(5));
    let cpu = cpu_ns(pid) - cpu0;
    let drops = udp_drops(pid) - drops0;
    // Our metrics are published once a second: a window shorter than that may see no
    // change at all (the smoke run), and then there is no figure.
    let batch = calls0.zip(server.syscalls()).and_then(|(a, b)| {
        let d = |i: usize| b[i] - a[i];
        (d(0) > 0.0 && d(2) > 0.0).then(|| (d(1) / d(0), d(3) / d(2)))
    });
    let (received, hist) = (rx.received, rx.hist);
    Figures {
        offered: if load == Load::Paced {
            offered * 2
        } else {
            offered
        },
        received,
        seconds: sent_for,
        cpu_ns: cpu,
        kernel_drops: drops,
        p50_us: hist.percentile(0.5),
        p99_us: hist.percentile(0.99),
        rss_per_alloc,
        batch,
    }
}

enum Target<'a> {
    Udp(&'a UdpSocket),
    Stream(&'a mut dyn Write),
}

/// `rate` packets/s for `seconds`, in bursts of `burst` from one client after another, a
/// millisecond's worth at a time.
fn send_bursty(
    targets: &mut [Target<'_>],
    msgs: &mut [(Vec<u8>, usize)],
    rx: &mut Receiver,
    seconds: f64,
    rate: u64,
    burst: usize,
) -> u64 {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut next = 0usize;
    let mut tick = start;
    while tick < end {
        let due = (rate as f64 * (tick - start).as_secs_f64()) as u64;
        while sent < due {
            let i = next % targets.len();
            next += 1;
            let (m, at) = &mut msgs[i];
            for _ in 0..burst.min((due - sent) as usize).max(1) {
                stamp(&mut m[*at..], rx.epoch);
                let ok = match &mut targets[i] {
                    Target::Udp(s) => s.send(m).is_ok(),
                    Target::Stream(s) => write_all_nonblocking(*s, m),
                };
                sent += u64::from(ok);
            }
        }
        tick += Duration::from_millis(1);
        rx.poll_until(tick);
    }
    sent
}

/// 50 packets/s per allocation, each allocation's sends spread evenly over the 20 ms.
fn send_paced(
    allocs: &mut [Alloc],
    msgs: &mut [(Vec<u8>, usize)],
    rx: &mut Receiver,
    seconds: f64,
) -> u64 {
    let start = Instant::now();
    let period = Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(seconds);
    let n = allocs.len();
    let mut sent = 0u64;
    let mut k = 0u64; // sends so far, in schedule order
    loop {
        // Send k is allocation k % n, due at (k / n) periods plus its offset in the period.
        let due = start
            + period * (k / n as u64) as u32
            + period.mul_f64((k % n as u64) as f64 / n as f64);
        if due >= end {
            break;
        }
        rx.poll_until(due);
        let i = (k % n as u64) as usize;
        let (m, at) = &mut msgs[i];
        stamp(&mut m[*at..], rx.epoch);
        if allocs[i].send_raw(m) {
            sent += 1;
        }
        k += 1;
    }
    sent
}

/// Whole allocation lifetimes, 64 in flight, for `seconds`: how many completed, at what CPU.
fn churn(server: &Server, seconds: f64) -> Figures {
    let pid = server.child.id();
    let peer = peer_socket();
    let peer_addr = peer.local_addr().expect("addr");
    let mut buf = vec![0u8; 65_536];
    let cpu0 = cpu_ns(pid);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    // Each live allocation, and whether it is closed.
    let mut live: Vec<(Alloc, bool)> = Vec::new();
    let (mut started, mut completed) = (0u64, 0u64);
    let mut hist = Histogram::new();
    let mut begun: Vec<Instant> = Vec::new();
    loop {
        let now = Instant::now();
        while now < end && live.len() < 64 {
            live.push((Alloc::new(server, Transport::Udp, peer_addr, true), false));
            begun.push(now);
            started += 1;
        }
        if live.is_empty() {
            break;
        }
        let mut i = 0;
        while i < live.len() {
            let (a, closed) = &mut live[i];
            a.poll_recv(now, &mut buf);
            a.client.handle_timeout(now);
            a.pump(now);
            if a.done && !*closed {
                // Permission and channel answered: Refresh 0, sent once (its answer does
                // not matter).
                a.client.close(now);
                *closed = true;
                a.pump(now);
            }
            let finished = a.client.is_done() || a.failed;
            if finished {
                if !a.failed {
                    completed += 1;
                    hist.add(now.duration_since(begun[i]).as_nanos() as u64);
                }
                live.swap_remove(i);
                begun.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if Instant::now() > end + Duration::from_secs(5) {
            break;
        }
        std::thread::yield_now();
    }
    let elapsed = start.elapsed().as_secs_f64();
    Figures {
        offered: started,
        received: completed,
        seconds: elapsed,
        cpu_ns: cpu_ns(pid) - cpu0,
        kernel_drops: 0,
        p50_us: hist.percentile(0.5),
        p99_us: hist.percentile(0.99),
        rss_per_alloc: 0.0,
        batch: None,
    }
}

// ---------------------------------------------------------------- report

/// A latency for the table; none measured (the scale load) as a dash.
fn micros(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else {
        format!("{v:.0} µs")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn main() {
    let mut args = parse_args();
    if args.loads.contains(&Load::Scale) {
        args.scale_allocations = fit_open_files(args.scale_allocations);
    }
    let mut results: Vec<(Load, String, Vec<Figures>)> = Vec::new();
    for round in 0..args.rounds {
        for &load in &args.loads {
            for kind in &args.servers {
                if !kind.serves(load) {
                    continue;
                }
                let server = start(kind, &args, load);
                let f = run(load, &server, &args);
                drop(server);
                eprintln!(
                    "round {} {:<15} {:<26} {:>9.0}/s relayed, loss {:.3} %, {:.3} µs CPU each, drops {}{}",
                    round + 1,
                    load.name(),
                    kind.name(),
                    f.pps(),
                    f.loss() * 100.0,
                    f.cpu_per_packet_us(),
                    f.kernel_drops,
                    f.batch.map_or(String::new(), |(r, s)| format!(
                        ", {r:.1} datagrams per recvmmsg, {s:.1} per sendmmsg"
                    )) + &if matches!(load, Load::Paced | Load::Scale) {
                        format!(", {:.0} bytes of RSS per allocation", f.rss_per_alloc)
                    } else {
                        String::new()
                    }
                );
                match results
                    .iter_mut()
                    .find(|(l, k, _)| *l == load && *k == kind.name())
                {
                    Some((_, _, v)) => v.push(f),
                    None => results.push((load, kind.name(), vec![f])),
                }
            }
        }
    }
    println!(
        "\nMedians of {} rounds, {} s each; bursty loads offered {} packets/s in bursts of {}.\n",
        args.rounds, args.seconds, args.rate, args.burst
    );
    println!("| load | server | relayed/s | loss | kernel drops | CPU per packet | vs coturn | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut json = Vec::new();
    for (load, kind, figs) in &results {
        let m = |f: &dyn Fn(&Figures) -> f64| median(figs.iter().map(f).collect());
        let cpu = m(&|f| f.cpu_per_packet_us());
        let coturn = results
            .iter()
            .find(|(l, k, _)| l == load && k.starts_with("coturn"))
            .map(|(_, _, v)| median(v.iter().map(|f| f.cpu_per_packet_us()).collect()));
        let ratio = coturn.map_or(String::new(), |c| format!("{:.2}x", cpu / c));
        let unit = if matches!(load, Load::Churn | Load::Scale) {
            "allocation"
        } else {
            "packet"
        };
        println!(
            "| {} | {} | {:.0} | {:.3} % | {:.0} | {:.2} µs/{unit} | {} | {} | {} |",
            load.name(),
            kind,
            m(&|f| f.pps()),
            m(&|f| f.loss()) * 100.0,
            m(&|f| f.kernel_drops as f64),
            cpu,
            ratio,
            micros(m(&|f| f.p50_us)),
            micros(m(&|f| f.p99_us)),
        );
        if matches!(load, Load::Paced | Load::Scale) {
            println!(
                "|   | (setup: {:.0} bytes of RSS per allocation) | | | | | | | |",
                m(&|f| f.rss_per_alloc)
            );
        }
        json.push(serde_json::json!({
            "load": load.name(), "server": kind, "relayed_per_s": m(&|f| f.pps()),
            "loss": m(&|f| f.loss()), "kernel_drops": m(&|f| f.kernel_drops as f64),
            "cpu_us": cpu, "p50_us": m(&|f| f.p50_us), "p99_us": m(&|f| f.p99_us),
            "rss_per_alloc": m(&|f| f.rss_per_alloc),
        }));
    }
    if args.json {
        println!("{}", serde_json::Value::Array(json));
    }
    // The smoke run's check that the harness measured something real.
    for (load, kind, figs) in &results {
        assert!(
            figs.iter().all(|f| f.received > 0 && f.cpu_ns > 0),
            "{} against {kind}: nothing measured",
            load.name()
        );
    }
}
