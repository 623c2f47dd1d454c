//! Fleet mode for real: a `redis-server` of the test's own (on a Unix socket, so no port is
//! taken) and `rooms` processes on it. Peers on different instances of one room meet and
//! exchange offer and answer; an instance killed with SIGKILL has its peers removed for the
//! others within the dead-after time.
//!
//! Needs `redis-server` (Debian's `redis-server`; `.ci/run` installs it). Without it the
//! tests say so and pass, except under `CI=true`, where they fail.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rooms::client::RoomClient;
use rooms::protocol::{ClientMessage, ServerMessage};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

fn available() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the fleet tests need redis-server (apt-get install redis-server)");
        }
        eprintln!("skipped: no redis-server (apt-get install redis-server)");
    }
    ok
}

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Redis {
    _child: Killed,
    dir: PathBuf,
}

impl Redis {
    fn url(&self) -> String {
        format!("redis+unix://{}", self.dir.join("redis.sock").display())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server on a Unix socket in a directory of its own, once it answers PING.
async fn redis() -> Redis {
    let dir = std::env::temp_dir().join(format!(
        "rooms-fleet-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocket",
        ])
        .arg(dir.join("redis.sock"))
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let r = Redis {
        _child: Killed(child),
        dir,
    };
    // Readiness: the socket answers PING.
    let client = redis::Client::open(r.url()).unwrap();
    timeout(LIMIT, async {
        loop {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("redis-server answers");
    r
}

/// A `rooms` instance on the fleet's Redis, once its /healthz says it is ready.
struct Instance {
    _child: Killed,
    url: String,
}

async fn instance(redis: &Redis) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rooms"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-turn",
            "--heartbeat",
            "1",
            "--dead-after",
            "3",
            "--redis",
        ])
        .arg(redis.url())
        .stdout(Stdio::piped())
        .spawn()
        .expect("rooms starts");
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    let inst = Instance { _child: child, url };
    timeout(LIMIT, async {
        while !healthy(&inst.url).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the instance becomes ready");
    inst
}

async fn healthy(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let Ok(mut t) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if t.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut s = String::new();
    let _ = t.read_to_string(&mut s).await;
    s.starts_with("HTTP/1.1 200")
}

async fn next(c: &mut RoomClient) -> ServerMessage {
    timeout(LIMIT, c.next())
        .await
        .expect("a message in time")
        .unwrap()
        .expect("open")
}

#[tokio::test]
async fn peers_on_two_instances_meet_and_a_killed_instance_is_buried() {
    if !available() {
        return;
    }
    let redis = redis().await;
    let one = instance(&redis).await;
    let two = instance(&redis).await;
    let mut a = RoomClient::connect(&one.url).await.unwrap();
    let mut b = RoomClient::connect(&two.url).await.unwrap();
    let ja = a.join("r1", None).await.unwrap();
    assert!(ja.peers.is_empty());
    let jb = b.join("r1", None).await.unwrap();
    assert_eq!(
        jb.peers,
        std::slice::from_ref(&ja.you),
        "b, on the other instance, sees a"
    );
    assert_eq!(
        next(&mut a).await,
        ServerMessage::NewPeer { id: jb.you.clone() }
    );
    b.send(&ClientMessage::Offer {
        to: ja.you.clone(),
        sdp: "v=0 offer".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        next(&mut a).await,
        ServerMessage::Offer {
            from: jb.you.clone(),
            sdp: "v=0 offer".into()
        }
    );
    a.send(&ClientMessage::Answer {
        to: jb.you.clone(),
        sdp: "v=0 answer".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        next(&mut b).await,
        ServerMessage::Answer {
            from: ja.you.clone(),
            sdp: "v=0 answer".into()
        }
    );
    // A third instance, started now, knows the room.
    let three = instance(&redis).await;
    let mut c = RoomClient::connect(&three.url).await.unwrap();
    let mut jc = c.join("r1", None).await.unwrap();
    // It learnt them from each instance's snapshot, so not in the order they joined.
    jc.peers.sort();
    let mut both = vec![ja.you.clone(), jb.you.clone()];
    both.sort();
    assert_eq!(jc.peers, both);
    assert_eq!(
        next(&mut a).await,
        ServerMessage::NewPeer { id: jc.you.clone() }
    );
    assert_eq!(
        next(&mut b).await,
        ServerMessage::NewPeer { id: jc.you.clone() }
    );

    // Kill instance one without a word: a's departure reaches b and c within dead-after
    // (3 s) plus a heartbeat.
    let killed = Instant::now();
    drop(one);
    assert_eq!(
        next(&mut b).await,
        ServerMessage::RemovePeer { id: ja.you.clone() }
    );
    assert_eq!(
        next(&mut c).await,
        ServerMessage::RemovePeer { id: ja.you.clone() }
    );
    let took = killed.elapsed();
    eprintln!("the killed instance's peer was removed after {took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    // The rest of the room goes on.
    c.send(&ClientMessage::Offer {
        to: jb.you.clone(),
        sdp: "v=0 c".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        next(&mut b).await,
        ServerMessage::Offer {
            from: jc.you,
            sdp: "v=0 c".into()
        }
    );
    drop((two, three));
}
