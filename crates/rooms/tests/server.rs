//! The server over real WebSockets on loopback, with Rust clients: the protocol's order of
//! messages, relay within rooms only, every limit and bad input, tokens, origins, metrics,
//! the demo page's headers, and 1,000 peers in 100 rooms.

use std::time::Duration;

use rooms::client::{ClientError, RoomClient};
use rooms::hub::HubConfig;
use rooms::protocol::{ClientMessage, ErrorCode, ServerMessage};
use rooms::server::{Server, ServerConfig};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Bounds a failing test; every wait is for a message.
const LIMIT: Duration = Duration::from_secs(20);

async fn start(hub: HubConfig, f: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        hub,
        ..Default::default()
    };
    f(&mut config);
    Server::start(config).await.unwrap()
}

fn url(s: &Server) -> String {
    format!("ws://{}/ws", s.addr())
}

async fn client(s: &Server) -> RoomClient {
    RoomClient::connect(&url(s)).await.unwrap()
}

async fn next(c: &mut RoomClient) -> ServerMessage {
    timeout(LIMIT, c.next())
        .await
        .expect("a message in time")
        .unwrap()
        .expect("open")
}

async fn error(c: &mut RoomClient) -> ErrorCode {
    match next(c).await {
        ServerMessage::Error { code, .. } => code,
        m => panic!("expected an error, got {m:?}"),
    }
}

async fn join(c: &mut RoomClient, room: &str) -> (String, Vec<String>) {
    let j = timeout(LIMIT, c.join(room, None)).await.unwrap().unwrap();
    (j.you, j.peers)
}

#[tokio::test]
async fn join_order_relay_and_leave() {
    let s = start(HubConfig::default(), |_| {}).await;
    let (mut a, mut b, mut c) = (client(&s).await, client(&s).await, client(&s).await);
    let (pa, peers) = join(&mut a, "r1").await;
    assert!(peers.is_empty());
    let (pb, peers) = join(&mut b, "r1").await;
    assert_eq!(peers, std::slice::from_ref(&pa));
    assert_eq!(
        next(&mut a).await,
        ServerMessage::NewPeer { id: pb.clone() }
    );
    let (pc, peers) = join(&mut c, "r1").await;
    assert_eq!(peers, [pa.clone(), pb.clone()], "in the order they joined");
    assert_eq!(
        next(&mut a).await,
        ServerMessage::NewPeer { id: pc.clone() }
    );
    assert_eq!(
        next(&mut b).await,
        ServerMessage::NewPeer { id: pc.clone() }
    );

    // The newcomer offers; the server names the sender.
    c.send(&ClientMessage::Offer {
        to: pa.clone(),
        sdp: "v=0\r\no=c".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        next(&mut a).await,
        ServerMessage::Offer {
            from: pc.clone(),
            sdp: "v=0\r\no=c".into()
        }
    );
    a.send(&ClientMessage::Answer {
        to: pc.clone(),
        sdp: "v=0\r\no=a".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        next(&mut c).await,
        ServerMessage::Answer {
            from: pa.clone(),
            sdp: "v=0\r\no=a".into()
        }
    );
    let cand = serde_json::json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "u"});
    a.send_text(&format!(
        r#"{{"type":"candidate","to":"{pc}","candidate":{cand}}}"#
    ))
    .await
    .unwrap();
    a.send_text(&format!(
        r#"{{"type":"candidate","to":"{pc}","candidate":null}}"#
    ))
    .await
    .unwrap();
    assert_eq!(
        next(&mut c).await,
        ServerMessage::Candidate {
            from: pa.clone(),
            candidate: Some(cand)
        }
    );
    assert_eq!(
        next(&mut c).await,
        ServerMessage::Candidate {
            from: pa.clone(),
            candidate: None
        }
    );

    // Leave, then close: the others hear each.
    b.send(&ClientMessage::Leave).await.unwrap();
    assert_eq!(
        next(&mut a).await,
        ServerMessage::RemovePeer { id: pb.clone() }
    );
    assert_eq!(next(&mut c).await, ServerMessage::RemovePeer { id: pb });
    c.close().await;
    assert_eq!(next(&mut a).await, ServerMessage::RemovePeer { id: pc });
    // b may join again, as a new peer.
    let (pb2, peers) = join(&mut b, "r1").await;
    assert_eq!(peers, [pa]);
    assert_eq!(next(&mut a).await, ServerMessage::NewPeer { id: pb2 });
}

#[tokio::test]
async fn relay_stays_within_the_room_and_bad_input_changes_nothing() {
    let s = start(HubConfig::default(), |_| {}).await;
    let (mut a, mut b, mut x) = (client(&s).await, client(&s).await, client(&s).await);
    let (pa, _) = join(&mut a, "r1").await;
    let (pb, _) = join(&mut b, "r1").await;
    assert!(matches!(next(&mut a).await, ServerMessage::NewPeer { .. }));

    // Before joining.
    x.send(&ClientMessage::Offer {
        to: pa.clone(),
        sdp: "v=0".into(),
    })
    .await
    .unwrap();
    assert_eq!(error(&mut x).await, ErrorCode::NotJoined);
    // From another room: a is not there.
    let _ = join(&mut x, "r2").await;
    x.send(&ClientMessage::Offer {
        to: pa.clone(),
        sdp: "v=0".into(),
    })
    .await
    .unwrap();
    assert_eq!(error(&mut x).await, ErrorCode::UnknownPeer);
    // To itself, or to nobody.
    b.send(&ClientMessage::Offer {
        to: pb.clone(),
        sdp: "v=0".into(),
    })
    .await
    .unwrap();
    assert_eq!(error(&mut b).await, ErrorCode::UnknownPeer);
    for (text, code) in [
        ("{not json", ErrorCode::BadMessage),
        ("[1,2]", ErrorCode::BadMessage),
        (r#"{"room":"r1"}"#, ErrorCode::BadMessage),
        (r#"{"type":"dance"}"#, ErrorCode::UnknownType),
        (r#"{"type":"offer","to":5}"#, ErrorCode::BadMessage),
        (r#"{"type":"join","room":"r3"}"#, ErrorCode::AlreadyJoined),
    ] {
        b.send_text(text).await.unwrap();
        assert_eq!(error(&mut b).await, code, "{text}");
    }
    let mut y = client(&s).await;
    for room in ["", "a b", "../etc", &"x".repeat(65)] {
        y.send(&ClientMessage::Join {
            room: room.into(),
            token: None,
        })
        .await
        .unwrap();
        assert_eq!(error(&mut y).await, ErrorCode::BadRoom, "{room:?}");
    }
    // Too large for the hub: an error, and the connection stays.
    b.send(&ClientMessage::Offer {
        to: pa.clone(),
        sdp: "x".repeat(70_000),
    })
    .await
    .unwrap();
    assert_eq!(error(&mut b).await, ErrorCode::TooLarge);
    // After all that, b's session with a is whole: a heard none of it.
    b.send(&ClientMessage::Offer {
        to: pa.clone(),
        sdp: "v=0 ok".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        next(&mut a).await,
        ServerMessage::Offer {
            from: pb,
            sdp: "v=0 ok".into()
        }
    );
}

#[tokio::test]
async fn room_size_rate_and_connection_limits() {
    let hub = HubConfig {
        max_room_size: 2,
        rate: 5.0,
        burst: 10.0,
        ..Default::default()
    };
    let s = start(hub, |c| c.max_connections = 4).await;
    let (mut a, mut b, mut c) = (client(&s).await, client(&s).await, client(&s).await);
    join(&mut a, "r1").await;
    join(&mut b, "r1").await;
    match timeout(LIMIT, c.join("r1", None)).await.unwrap() {
        Err(ClientError::Refused {
            code: ErrorCode::RoomFull,
            ..
        }) => {}
        r => panic!("{r:?}"),
    }
    // Another room is fine.
    join(&mut c, "r2").await;
    // A burst past the bucket: the rest are dropped, and said so.
    for _ in 0..30 {
        c.send_text("{}").await.unwrap();
    }
    let mut got = Vec::new();
    loop {
        let code = error(&mut c).await;
        got.push(code);
        if code == ErrorCode::RateLimited {
            break;
        }
    }
    assert!(got.len() <= 10, "at most the burst was taken: {got:?}");
    // The fourth connection is taken; the fifth is refused at the handshake.
    let _d = client(&s).await;
    match RoomClient::connect(&url(&s)).await {
        Err(ClientError::WebSocket(tokio_tungstenite::tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 503)
        }
        r => panic!("the fifth connection: {r:?}"),
    }
}

#[tokio::test]
async fn tokens_decide_who_enters() {
    let secret = b"app-secret".to_vec();
    let hub = HubConfig {
        token_secret: Some(secret.clone()),
        ..Default::default()
    };
    let s = start(hub, |_| {}).await;
    let mut a = client(&s).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for token in [
        None,
        Some("v1.garbage".to_owned()),
        Some(rooms::token::mint(&secret, "r2", now + 60)),
        Some(rooms::token::mint(&secret, "r1", now - 10)),
        Some(rooms::token::mint(b"guess", "r1", now + 60)),
    ] {
        match timeout(LIMIT, a.join("r1", token.as_deref()))
            .await
            .unwrap()
        {
            Err(ClientError::Refused {
                code: ErrorCode::BadToken,
                ..
            }) => {}
            r => panic!("{token:?}: {r:?}"),
        }
    }
    let ok = rooms::token::mint(&secret, "r1", now + 60);
    timeout(LIMIT, a.join("r1", Some(&ok)))
        .await
        .unwrap()
        .unwrap();
}

async fn connect_with_origin(s: &Server, origin: &str) -> Result<(), u16> {
    let mut req = url(s).into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn origins_are_checked() {
    let s = start(HubConfig::default(), |_| {}).await;
    let own = format!("http://{}", s.addr());
    assert_eq!(connect_with_origin(&s, &own).await, Ok(()));
    assert_eq!(
        connect_with_origin(&s, "http://evil.example").await,
        Err(403)
    );
    let s = start(HubConfig::default(), |c| {
        c.allowed_origins = vec!["https://app.example.org".into()]
    })
    .await;
    assert_eq!(
        connect_with_origin(&s, "https://app.example.org").await,
        Ok(())
    );
    assert_eq!(
        connect_with_origin(&s, &format!("http://{}", s.addr())).await,
        Err(403)
    );
    // Programs that are not browsers send no Origin.
    client(&s).await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let hub = HubConfig {
        idle_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let s = start(hub, |_| {}).await;
    let mut idle = client(&s).await;
    let mut joined = client(&s).await;
    join(&mut joined, "r1").await;
    // The idle one is closed by the server; nothing else is said to it.
    assert_eq!(timeout(LIMIT, idle.next()).await.unwrap().unwrap(), None);
    // The joined one is still served.
    joined.send_text("{}").await.unwrap();
    assert_eq!(error(&mut joined).await, ErrorCode::BadMessage);
}

/// One HTTP/1.1 GET, the whole response (head and body) as text.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut t = tokio::net::TcpStream::connect(addr).await.unwrap();
    t.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    timeout(LIMIT, t.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    body
}

async fn metrics(s: &Server) -> String {
    get(s.metrics_addr().unwrap(), "/metrics").await
}

#[tokio::test]
async fn the_demo_page_is_served_with_a_strict_policy_or_not_at_all() {
    let s = start(HubConfig::default(), |_| {}).await;
    for (path, kind, has) in [
        ("/", "text/html", "<script src=\"/app.js\""),
        ("/app.js", "text/javascript", "window.demo"),
        ("/style.css", "text/css", ".tile"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = get(s.addr(), path).await.to_ascii_lowercase();
        assert!(r.starts_with("http/1.1 200"), "{path}: {r:.200}");
        assert!(r.contains(&format!("content-type: {kind}")), "{path}");
        // Only the page's own scripts and styles: no inline script, nothing from elsewhere.
        assert!(
            r.contains(
                "content-security-policy: default-src 'self'; script-src 'self'; style-src 'self'"
            ),
            "{path}"
        );
        assert!(r.contains("x-content-type-options: nosniff"), "{path}");
        assert!(r.contains(&has.to_ascii_lowercase()), "{path}");
    }
    let page = get(s.addr(), "/").await;
    assert!(
        !page.contains("<script>") && !page.contains("style=\""),
        "inline script or style"
    );
    assert!(get(s.addr(), "/nothing").await.starts_with("HTTP/1.1 404"));

    let bare = start(HubConfig::default(), |c| c.demo = false).await;
    assert!(get(bare.addr(), "/").await.starts_with("HTTP/1.1 404"));
    assert!(get(bare.addr(), "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_peers_in_a_hundred_rooms() {
    let hub = HubConfig {
        max_room_size: 10,
        ..Default::default()
    };
    let s = start(hub, |_| {}).await;
    let before = rss_kib();
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for i in 0..1000 {
        let mut c = client(&s).await;
        let room = format!("room-{}", i % 100);
        let (id, peers) = join(&mut c, &room).await;
        assert_eq!(peers.len(), i / 100, "{room}");
        clients.push(c);
        ids.push(id);
    }
    let m = metrics(&s).await;
    assert_eq!(metric(&m, "rooms_connections"), 1000);
    assert_eq!(metric(&m, "rooms_rooms"), 100);
    assert_eq!(metric(&m, "rooms_peers"), 1000);
    assert_eq!(metric(&m, "rooms_joins_total"), 1000);
    // The last of each room offers to the first, which hears it after its nine new_peers.
    for r in 0..100 {
        let to = ids[r].clone();
        clients[900 + r]
            .send(&ClientMessage::Offer {
                to,
                sdp: format!("v=0 {r}"),
            })
            .await
            .unwrap();
    }
    for r in 0..100 {
        for _ in 0..9 {
            assert!(matches!(
                next(&mut clients[r]).await,
                ServerMessage::NewPeer { .. }
            ));
        }
        assert_eq!(
            next(&mut clients[r]).await,
            ServerMessage::Offer {
                from: ids[900 + r].clone(),
                sdp: format!("v=0 {r}")
            }
        );
    }
    let grown = rss_kib().saturating_sub(before);
    eprintln!("RSS grew by {grown} KiB for 1,000 peers (clients and server in one process)");
    // Both ends of 1,000 WebSockets live in this process (about 16 MiB measured): the budget
    // is three times that.
    assert!(grown < 48 * 1024, "RSS grew by {grown} KiB");
    for c in clients {
        c.close().await;
    }
    // Wait until the server has seen every close.
    timeout(LIMIT, async {
        loop {
            let m = metrics(&s).await;
            if metric(&m, "rooms_connections") == 0 {
                assert_eq!(metric(&m, "rooms_rooms"), 0);
                assert_eq!(metric(&m, "rooms_peers"), 0);
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every connection closed");
}
