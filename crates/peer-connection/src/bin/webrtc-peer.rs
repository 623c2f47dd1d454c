//! `webrtc-peer`: sends a file over a WebRTC DataChannel, receives one, or echoes, with the
//! offer and answer exchanged by copy and paste (one JSON line each, the browser's
//! `RTCSessionDescriptionInit`, so a browser console can take part too).
//!
//! ```text
//! webrtc-peer send movie.mkv        # prints an offer line; paste the answer line back
//! webrtc-peer receive --out copy.mkv  # paste the offer line; prints the answer line
//! webrtc-peer echo                  # answers, and echoes every message back
//! ```
//!
//! The file goes over a channel labelled `file`: a text header `{"name","size","sha256"}`, the
//! data in 16 KiB binary messages, and the receiver's `sha256:HEX` back. Both ends print
//! `sha256 HEX  NAME` when the transfer is done; the receiver checks the digest against the
//! header's (when the sender gave one) and the sender against the receiver's.
//!
//! With `--room http://host:8080/?room=NAME` the descriptions go through a `rooms` signalling
//! server instead, with a browser on its demo page (or another `webrtc-peer`) in that room:
//! the one that joins second offers, and the file goes over a `file` channel either way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgMatches, Command};

#[path = "cli/mod.rs"]
mod cli;
#[path = "cli/room.rs"]
mod room;
use indicatif::{ProgressBar, ProgressStyle};
use peer_connection::driver::{self, Session};
use peer_connection::{
    ChannelId, Config, DataChannelEvent, DataChannelInit, Event, PeerConnectionState,
};
use sha2::{Digest, Sha256};

/// The message size for file data (what browsers' file-transfer samples use).
const CHUNK: usize = 16 * 1024;
/// The most bytes kept buffered in the channel while sending.
const WINDOW: usize = 1024 * 1024;

fn command() -> Command {
    let mut common = cli::ice_args();
    common.push(Arg::new("room").long("room").value_name("URL").help(
        "signal through a rooms server instead of copy and paste: the page's URL with ?room=NAME",
    ));
    common.push(
        Arg::new("token")
            .long("token")
            .value_name("TOKEN")
            .help("the join token, for a rooms server that requires one"),
    );
    Command::new("webrtc-peer")
        .about("Send or receive a file over a WebRTC DataChannel, or echo; offer and answer by copy and paste")
        .after_help(
            "The offering side prints its offer as one JSON line on stdout and reads the answer \
             line from stdin; the answering side reads the offer and prints its answer. Progress \
             and messages go to stderr; RUST_LOG sets the log filter (default: warn).",
        )
        .subcommand_required(true)
        .subcommand(
            Command::new("send")
                .about("offer a DataChannel and send FILE over it")
                .arg(Arg::new("file").required(true).value_name("FILE"))
                .args(common.clone()),
        )
        .subcommand(
            Command::new("receive")
                .about("answer, and write the file the peer sends")
                .arg(
                    Arg::new("out")
                        .long("out")
                        .value_name("PATH")
                        .help("where to write it (default: the sender's file name here)"),
                )
                .args(common.clone()),
        )
        .subcommand(
            Command::new("echo")
                .about("answer, and send every message back")
                .args(common),
        )
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::init_logging();
    let m = command().get_matches();
    let (mode, sub) = m.subcommand().expect("a subcommand is required");
    match run(mode, sub).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webrtc-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mode: &str, m: &ArgMatches) -> Result<(), String> {
    let mut driver = cli::driver_config(m)?;
    let room = match m.get_one::<String>("room") {
        Some(url) => Some(room::join(url, m.get_one::<String>("token").map(String::as_str)).await?),
        None => None,
    };
    if let Some(r) = &room {
        r.ice_servers(&mut driver);
    }
    let config = Config::default();
    let timeout = cli::timeout(m);
    let (session, mut events) = driver::start(driver, config)
        .await
        .map_err(|e| e.to_string())?;
    let mut stdin = cli::stdin();
    let progress = !m.get_flag("no-progress");
    let file_channel = |s: &Session| {
        s.create_data_channel("file", DataChannelInit::default())
            .map_err(|e| e.to_string())
    };
    let result = match (mode, room) {
        ("send", room) => {
            let path = PathBuf::from(m.get_one::<String>("file").expect("required"));
            let file = tokio::fs::read(&path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let channel = match room {
                Some(room) => {
                    // The offerer's channel is in its offer; the answerer opens it once the
                    // association is up.
                    let offers = room.offers();
                    let early = if offers {
                        let c = file_channel(&session)?;
                        session.create_offer().map_err(|e| e.to_string())?;
                        Some(c)
                    } else {
                        None
                    };
                    room.connect(&session, &mut events).await?;
                    match early {
                        Some(c) => c,
                        None => file_channel(&session)?,
                    }
                }
                None => {
                    let channel = file_channel(&session)?;
                    session.create_offer().map_err(|e| e.to_string())?;
                    let _ = cli::print_description(&session, &mut events, "offer").await?;
                    let answer = cli::read_description(&mut stdin).await?;
                    session
                        .set_remote_description(&answer)
                        .map_err(|e| e.to_string())?;
                    channel
                }
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            send(
                &session,
                &mut events,
                channel,
                &name,
                &file,
                timeout,
                progress,
            )
            .await
        }
        (_, room) => {
            match room {
                Some(room) => {
                    if room.offers() {
                        // Something to negotiate SCTP with; the page's own chat channel.
                        session
                            .create_data_channel("chat", DataChannelInit::default())
                            .map_err(|e| e.to_string())?;
                        session.create_offer().map_err(|e| e.to_string())?;
                    }
                    room.connect(&session, &mut events).await?;
                }
                None => {
                    let offer = cli::read_description(&mut stdin).await?;
                    session
                        .set_remote_description(&offer)
                        .map_err(|e| e.to_string())?;
                    session.create_answer().map_err(|e| e.to_string())?;
                    let _ = cli::print_description(&session, &mut events, "answer").await?;
                }
            }
            if mode == "echo" {
                echo(&session, &mut events, timeout).await
            } else {
                let out = m.get_one::<String>("out").map(PathBuf::from);
                receive(&session, &mut events, out, timeout, progress).await
            }
        }
    };
    session.shutdown().await;
    result
}

fn bar(total: u64, on: bool) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:40}] {bytes_per_sec} {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

async fn send(
    session: &Session,
    events: &mut driver::Events<Event>,
    channel: ChannelId,
    name: &str,
    file: &[u8],
    timeout: Duration,
    progress: bool,
) -> Result<(), String> {
    let digest = hex(&Sha256::digest(file));
    let mut connected = false;
    let mut sent = None::<usize>;
    let pb = bar(file.len() as u64, progress);
    session.set_buffered_amount_low_threshold(channel, WINDOW / 2);
    loop {
        match cli::next_event(events, &mut connected, timeout).await? {
            Event::DataChannel(DataChannelEvent::Open { channel: c }) if c == channel => {
                if let Some(p) = session.selected_pair() {
                    eprintln!("webrtc-peer: connected: {p}");
                }
                let header = serde_json::json!({
                    "name": name, "size": file.len(), "sha256": digest,
                })
                .to_string();
                session
                    .send_text(channel, &header)
                    .map_err(|e| e.to_string())?;
                sent = Some(0);
            }
            Event::DataChannel(DataChannelEvent::Message {
                channel: c,
                data,
                binary: false,
            }) if c == channel => {
                let text = String::from_utf8_lossy(&data);
                let theirs = text.strip_prefix("sha256:").unwrap_or(&text).to_owned();
                pb.finish_and_clear();
                println!("sha256 {digest}  {name}");
                return if theirs == digest {
                    eprintln!("webrtc-peer: the receiver has the same SHA-256");
                    Ok(())
                } else {
                    Err(format!("the receiver computed sha256 {theirs}"))
                };
            }
            Event::DataChannel(DataChannelEvent::Closed { channel: c }) if c == channel => {
                return Err("the channel closed before the receiver confirmed".into())
            }
            _ => {}
        }
        // Fill the window.
        if let Some(offset) = sent.as_mut() {
            while *offset < file.len() && session.buffered_amount(channel) < WINDOW {
                let end = (*offset + CHUNK).min(file.len());
                session
                    .send_binary(channel, &file[*offset..end])
                    .map_err(|e| e.to_string())?;
                *offset = end;
                pb.set_position(*offset as u64);
            }
        }
    }
}

async fn receive(
    session: &Session,
    events: &mut driver::Events<Event>,
    out: Option<PathBuf>,
    timeout: Duration,
    progress: bool,
) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut connected = false;
    // The file as it is written: the data goes to disk as it comes, never whole in memory.
    let mut file: Option<(PathBuf, u64, u64, tokio::io::BufWriter<tokio::fs::File>)> = None;
    let mut pb = ProgressBar::hidden();
    let mut hasher = Sha256::new();
    // The sender's digest from the header, when it gave one.
    let mut expected = None::<String>;
    // The file comes on a channel labelled "file"; others (a page's chat) are not ours.
    let mut files = std::collections::HashSet::new();
    loop {
        let (channel, data, binary) = match cli::next_event(events, &mut connected, timeout).await?
        {
            Event::DataChannel(DataChannelEvent::Incoming { channel, label, .. }) => {
                if label == "file" {
                    files.insert(channel);
                }
                continue;
            }
            Event::DataChannel(DataChannelEvent::Message {
                channel,
                data,
                binary,
            }) if files.contains(&channel) => (channel, data, binary),
            _ => continue,
        };
        match (&mut file, binary) {
            (None, false) => {
                let header: serde_json::Value = serde_json::from_slice(&data)
                    .map_err(|e| format!("the sender's header is not JSON: {e}"))?;
                let size = header["size"].as_u64().ok_or("the header has no size")?;
                let name = header["name"].as_str().unwrap_or("received");
                expected = header["sha256"].as_str().map(str::to_ascii_lowercase);
                // Only the last path component of the sender's name, never a path of theirs.
                let safe = std::path::Path::new(name)
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("received"));
                let path = out.clone().unwrap_or(safe);
                eprintln!(
                    "webrtc-peer: receiving {size} bytes into {}",
                    path.display()
                );
                let f = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                pb = bar(size, progress);
                if size == 0 {
                    let digest = hex(&hasher.finalize_reset());
                    return confirm(
                        session,
                        events,
                        channel,
                        &digest,
                        &path,
                        expected.as_deref(),
                    )
                    .await;
                }
                file = Some((path, size, 0, tokio::io::BufWriter::new(f)));
            }
            (Some((path, size, got, w)), true) => {
                hasher.update(&data);
                *got += data.len() as u64;
                if *got > *size {
                    return Err(format!(
                        "the sender sent more than the {size} bytes it announced"
                    ));
                }
                w.write_all(&data)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                pb.set_position(*got);
                if *got == *size {
                    pb.finish_and_clear();
                    w.flush()
                        .await
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let digest = hex(&hasher.finalize_reset());
                    return confirm(session, events, channel, &digest, path, expected.as_deref())
                        .await;
                }
            }
            _ => return Err("unexpected message from the sender".into()),
        }
    }
}

/// Prints the digest and sends it to the sender, which ends the session once it has it; a
/// digest other than the one the sender announced is an error (after the sender has been told).
async fn confirm(
    session: &Session,
    events: &mut driver::Events<Event>,
    channel: ChannelId,
    digest: &str,
    path: &std::path::Path,
    expected: Option<&str>,
) -> Result<(), String> {
    println!("sha256 {digest}  {}", path.display());
    session
        .send_text(channel, &format!("sha256:{digest}"))
        .map_err(|e| e.to_string())?;
    wait_sent(session, events, channel).await;
    match expected {
        Some(theirs) if theirs != digest => Err(format!(
            "the sender announced sha256 {theirs}: the file arrived damaged"
        )),
        _ => Ok(()),
    }
}

/// Waits until the channel has nothing buffered, or the peer goes (at most 10 s).
async fn wait_sent(session: &Session, events: &mut driver::Events<Event>, channel: ChannelId) {
    let drained = async {
        while session.buffered_amount(channel) > 0 {
            match events.next().await {
                None | Some(Event::DataChannel(DataChannelEvent::Closed { .. })) => return,
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), drained).await;
}

async fn echo(
    session: &Session,
    events: &mut driver::Events<Event>,
    timeout: Duration,
) -> Result<(), String> {
    let mut connected = false;
    loop {
        match cli::next_event(events, &mut connected, timeout).await {
            Ok(Event::DataChannel(DataChannelEvent::Message {
                channel,
                data,
                binary,
            })) => {
                let sent = if binary {
                    session.send_binary(channel, &data)
                } else {
                    session.send_text(channel, &String::from_utf8_lossy(&data))
                };
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "echo not sent");
                }
            }
            Ok(Event::ConnectionState(PeerConnectionState::Closed)) => return Ok(()),
            Ok(_) => {}
            Err(e) if connected => {
                eprintln!("webrtc-peer: {e}");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}
