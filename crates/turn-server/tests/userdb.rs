//! The user database on real databases: an SQLite file made by coturn's own `turnadmin`
//! (Debian's coturn), read by our server unchanged and written by our `turnadmin` for coturn's
//! to read; and a real PostgreSQL server (Debian's postgresql) with coturn's schema, stopped
//! mid-run: users never seen fail with 500, while live allocations go on relaying and
//! refreshing.
//!
//! Without coturn or PostgreSQL installed, the tests that need them say so and pass, except
//! under `CI=true`, where they fail: `.ci/run` installs both.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::postgres::Postgres;
use common::{error_code, Client, Conn, LIMIT, REALM};
use stun_codec::attr::*;
use stun_codec::{ChannelData, Message, Method};
use turn_server::auth::RestSecrets;
use turn_server::driver::{Server, Settings};
use turn_server::userdb::{UserDb, UserDbLocation};

const TURNADMIN: &str = env!("CARGO_BIN_EXE_turnadmin");

/// coturn's `turnadmin`, if installed (required under `CI=true`).
fn coturn_turnadmin() -> Option<&'static str> {
    let path = "/usr/bin/turnadmin";
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "coturn's turnadmin is not installed (apt-get install coturn); CI must have it"
    );
    eprintln!("SKIPPED: coturn is not installed (apt-get install coturn)");
    None
}

/// Runs a turnadmin (coturn's or ours); its standard output, minus coturn's log lines.
fn admin(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("0: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("turn-userdb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The test server's settings (static users alice and bob, REST secret "north") with a user
/// database.
fn settings_with(db: UserDbLocation) -> Settings {
    let mut s: Settings = common::settings(None);
    s.turn.user_db = true;
    s.user_db = Some(db);
    s
}

fn server_with(db: UserDbLocation) -> Server {
    Server::start(settings_with(db)).unwrap()
}

fn udp_client(server: &Server, user: &str, password: &str) -> Client {
    Client::new(Conn::udp(server.udp_addrs()[0]), user, password)
}

fn allocate_code(c: &mut Client) -> Option<u16> {
    let r = c.call(Method::ALLOCATE, &|b| {
        b.add(&RequestedTransport::UDP).unwrap();
    });
    error_code(&r)
}

#[test]
fn an_sqlite_database_made_by_coturns_turnadmin_is_read_unchanged() {
    let Some(coturn) = coturn_turnadmin() else {
        return;
    };
    let dir = temp_dir("sqlite");
    let db = dir.join("turndb");
    let file = db.to_str().unwrap();
    // coturn's tool makes the database: a user, a REST secret, a realm quota.
    admin(
        coturn,
        &[
            "-a",
            "-b",
            file,
            "-u",
            "dave",
            "-r",
            REALM,
            "-p",
            "pw-of-dave",
        ],
    );
    admin(coturn, &["-s", "from-the-db", "-b", file, "-r", REALM]);
    admin(
        coturn,
        &["-g", "-b", file, "-r", REALM, "--user-quota", "1"],
    );
    // Ours writes into it, and coturn's reads what ours wrote.
    admin(
        TURNADMIN,
        &[
            "-a",
            "-b",
            file,
            "-u",
            "erin",
            "-r",
            REALM,
            "-p",
            "pw-of-erin",
        ],
    );
    let listed = admin(coturn, &["-l", "-b", file]);
    assert!(
        listed.contains("dave[example.org]") && listed.contains("erin[example.org]"),
        "{listed}"
    );
    assert_eq!(
        admin(TURNADMIN, &["-l", "-b", file]),
        "dave[example.org]\nerin[example.org]\n"
    );
    assert_eq!(
        admin(TURNADMIN, &["-G", "-b", file]),
        "user-quota[example.org]=1\n"
    );

    let server = server_with(UserDbLocation::Sqlite(db.clone()));
    // The user coturn's tool added, with the key it stored.
    let mut dave = udp_client(&server, "dave", "pw-of-dave");
    assert_eq!(allocate_code(&mut dave), None);
    // The realm's user-quota from turn_realm_option holds: dave from another address.
    let mut dave2 = udp_client(&server, "dave", "pw-of-dave");
    assert_eq!(allocate_code(&mut dave2), Some(486));
    // The user ours added, a wrong password, and one nobody added.
    assert_eq!(
        allocate_code(&mut udp_client(&server, "erin", "pw-of-erin")),
        None
    );
    assert_eq!(
        allocate_code(&mut udp_client(&server, "erin", "guess")),
        Some(401)
    );
    assert_eq!(
        allocate_code(&mut udp_client(&server, "nobody", "x")),
        Some(401)
    );
    // A REST credential under the database's secret (beside the configured "north").
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let user = format!("{expiry}:frank");
    let password = RestSecrets::password(b"from-the-db", &user);
    assert_eq!(
        allocate_code(&mut udp_client(&server, &user, &password)),
        None
    );
    // Static users from the configuration still work beside the database.
    assert_eq!(
        allocate_code(&mut udp_client(&server, "alice", "secret")),
        None
    );
    // A user added while the server runs can log in at once (not cached as absent).
    admin(
        TURNADMIN,
        &[
            "-a",
            "-b",
            file,
            "-u",
            "gina",
            "-r",
            REALM,
            "-p",
            "pw-of-gina",
        ],
    );
    assert_eq!(
        allocate_code(&mut udp_client(&server, "gina", "pw-of-gina")),
        None
    );
    server.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_database_file_is_created_with_coturns_tables_on_first_use() {
    let dir = temp_dir("create");
    let db = dir.join("sub-turndb");
    admin(
        TURNADMIN,
        &[
            "-a",
            "-b",
            db.to_str().unwrap(),
            "-u",
            "hal",
            "-r",
            REALM,
            "-p",
            "pw",
        ],
    );
    assert!(db.exists());
    // A server on a file that does not exist yet creates it too, and starts.
    let fresh = dir.join("fresh-turndb");
    let server = server_with(UserDbLocation::Sqlite(fresh.clone()));
    assert!(fresh.exists());
    assert_eq!(
        allocate_code(&mut udp_client(&server, "hal", "pw")),
        Some(401)
    );
    server.shutdown();
    // coturn's tool reads a file ours created.
    if let Some(coturn) = coturn_turnadmin() {
        let listed = admin(coturn, &["-l", "-b", db.to_str().unwrap()]);
        assert_eq!(listed.trim(), "hal[example.org]");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn postgresql_users_and_an_outage_that_keeps_allocations_relaying() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    // coturn's own schema, loaded as coturn's documentation says, then users from both tools.
    pg.psql_file(Path::new("/usr/share/coturn/schema.sql"));
    let conn = pg.conninfo();
    if let Some(coturn) = coturn_turnadmin() {
        admin(
            coturn,
            &[
                "-a",
                "-e",
                &conn,
                "-u",
                "dave",
                "-r",
                REALM,
                "-p",
                "pw-of-dave",
            ],
        );
    } else {
        admin(
            TURNADMIN,
            &[
                "-a",
                "-e",
                &conn,
                "-u",
                "dave",
                "-r",
                REALM,
                "-p",
                "pw-of-dave",
            ],
        );
    }
    admin(
        TURNADMIN,
        &[
            "-a",
            "-e",
            &conn,
            "-u",
            "erin",
            "-r",
            REALM,
            "-p",
            "pw-of-erin",
        ],
    );
    assert_eq!(
        admin(TURNADMIN, &["-l", "-e", &conn]),
        "dave[example.org]\nerin[example.org]\n"
    );

    let server = server_with(UserDbLocation::Postgres(conn.clone()));
    let mut dave = udp_client(&server, "dave", "pw-of-dave");
    let relay = {
        let r = dave.call(Method::ALLOCATE, &|b| {
            b.add(&RequestedTransport::UDP).unwrap();
        });
        assert_eq!(error_code(&r), None);
        Message::parse(&r)
            .unwrap()
            .get::<XorRelayedAddress>()
            .unwrap()
            .unwrap()
            .0
    };
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    let peer_addr: SocketAddr = peer.local_addr().unwrap();
    assert_eq!(dave.bind(0x4000, peer_addr), None);
    let relays = |dave: &mut Client, round: u8| {
        dave.channel_data(0x4000, &[round; 100]);
        let mut buf = [0u8; 256];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[round; 100][..], relay));
        peer.send_to(&[round + 1; 50], relay).unwrap();
        let back = dave.conn.recv();
        let cd = ChannelData::parse(&back).unwrap();
        assert_eq!(cd.data(), &[round + 1; 50]);
    };
    relays(&mut dave, 1);

    // The database goes away.
    pg.stop();
    // erin was never looked up: 500, not 401 (her password may well be right).
    let mut erin = udp_client(&server, "erin", "pw-of-erin");
    assert_eq!(allocate_code(&mut erin), Some(500));
    // dave's allocation relays on, both ways, and his Refresh still authenticates.
    relays(&mut dave, 3);
    let r = dave.call(Method::REFRESH, &|b| {
        b.add(&Lifetime(600)).unwrap();
    });
    assert_eq!(error_code(&r), None);
    relays(&mut dave, 5);
    let failures = wait_for(&server, |t| t.turn.user_lookup_failures);
    assert!(failures >= 1);
    server.shutdown();
    drop(pg);
}

/// Waits (for the once-a-second metrics publication) until `f` of the totals is non-zero.
fn wait_for(server: &Server, f: impl Fn(&turn_server::driver::Snapshot) -> u64) -> u64 {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let v = f(&server.metrics().total());
        if v > 0 || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `turnserver` as a fleet member on `conn`: fleet quotas, user-quota 1, named `name`.
fn fleet_member(conn: &str, name: &str) -> (common::Running, SocketAddr, u16) {
    let port = common::free_port();
    let metrics = common::free_port();
    let (lo, hi) = common::free_ports(20);
    let args: Vec<String> = [
        "-L",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-r",
        REALM,
        "--allow-loopback-peers",
        "--min-port",
        &lo.to_string(),
        "--max-port",
        &hi.to_string(),
        "--psql-userdb",
        conn,
        "--fleet-quota",
        "--user-quota",
        "1",
        "--server-name",
        name,
        "--fleet-dead-after",
        "2",
        "--prometheus",
        "--prometheus-port",
        &metrics.to_string(),
        "--no-tls",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = common::spawn(
        env!("CARGO_BIN_EXE_turnserver"),
        &args,
        "turnserver running",
    );
    (r, SocketAddr::from(([127, 0, 0, 1], port)), metrics)
}

#[test]
fn a_fleet_on_one_database_holds_user_quota_across_servers_and_a_killed_one_gives_it_back() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let conn = pg.conninfo();
    admin(
        TURNADMIN,
        &["-a", "-e", &conn, "-u", "dave", "-r", REALM, "-p", "pw"],
    );
    let (mut a, a_addr, _) = fleet_member(&conn, "a");
    let (_b, b_addr, b_metrics) = fleet_member(&conn, "b");
    let allocate_on =
        |addr: SocketAddr| allocate_code(&mut Client::new(Conn::udp(addr), "dave", "pw"));
    // dave's one allocation on a; on b he is at quota.
    let mut on_a = Client::new(Conn::udp(a_addr), "dave", "pw");
    assert_eq!(allocate_code(&mut on_a), None, "{}", a.log.lock().unwrap());
    assert_eq!(allocate_on(b_addr), Some(486), "user-quota 1 for the fleet");
    // b sees a's count (the heartbeat of a, read by b's).
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let samples = common::scrape(SocketAddr::from(([127, 0, 0, 1], b_metrics)));
        if samples
            .iter()
            .any(|(k, v)| k == "turn_fleet_allocations{server=\"a\"}" && *v == 1)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "b never saw a's allocation: {samples:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // a dies without cleaning up: within fleet-dead-after (2 s) and a heartbeat, b takes
    // dave again.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = std::time::Instant::now();
    loop {
        match allocate_on(b_addr) {
            None => break,
            Some(486) => {}
            other => panic!("{other:?}"),
        }
        assert!(killed.elapsed() < LIMIT, "a's quota never came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(6), "quota back after {took:?}");
    eprintln!("a killed: its quota came back to the fleet after {took:?}");
}

#[test]
fn a_fleet_on_one_sqlite_file_and_a_clean_stop_gives_quota_back_at_once() {
    let dir = temp_dir("fleet");
    let db = dir.join("turndb");
    admin(
        TURNADMIN,
        &[
            "-a",
            "-b",
            db.to_str().unwrap(),
            "-u",
            "dave",
            "-r",
            REALM,
            "-p",
            "pw",
        ],
    );
    let member = |name: &str| {
        let mut s = settings_with(UserDbLocation::Sqlite(db.clone()));
        s.turn.fleet_quota = true;
        s.turn.user_quota = 1;
        s.fleet_name = name.into();
        // Heartbeats every 200 ms.
        s.fleet_dead_after = Duration::from_secs(1);
        Server::start(s).unwrap()
    };
    let (a, b) = (member("a"), member("b"));
    let mut on_a = udp_client(&a, "dave", "pw");
    assert_eq!(allocate_code(&mut on_a), None);
    assert_eq!(allocate_code(&mut udp_client(&b, "dave", "pw")), Some(486));
    // The fleet gives a up for dead (as a member's heartbeat does to one cut off longer
    // than fleet-dead-after) while a still holds dave's allocation: a's next heartbeat finds
    // its row gone and writes its share again, so b still refuses.
    let mut observer = UserDb::open(&UserDbLocation::Sqlite(db.clone())).unwrap();
    observer.fleet_leave("a").unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let (members, _) = observer
            .fleet_heartbeat("observer", 0, unix_now(), 0)
            .unwrap();
        if members.iter().any(|(name, _)| name == "a") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        allocate_code(&mut udp_client(&b, "dave", "pw")),
        Some(486),
        "a's share was written again"
    );
    // A clean stop leaves the fleet: the quota is back before any heartbeat.
    a.shutdown();
    let code = allocate_code(&mut udp_client(&b, "dave", "pw"));
    let stats = b.metrics().clone();
    b.shutdown();
    assert_eq!(code, None, "{:?}", stats.total().turn);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
