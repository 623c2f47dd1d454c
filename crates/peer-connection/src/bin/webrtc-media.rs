//! `webrtc-media`: records a browser's VP8 video into an IVF file and its Opus audio into an
//! Ogg file, or sends an IVF/Ogg pair to a browser, over a WebRTC session; offer and answer
//! by copy and paste, as `webrtc-peer`.
//!
//! ```text
//! webrtc-media record --video call.ivf --audio call.ogg --seconds 10   # answers the offer
//! webrtc-media play --video call.ivf --audio call.ogg                  # offers, then sends
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Arg, ArgMatches, Command};
use peer_connection::driver::{self, Session};
use peer_connection::{Codec, Config, Event, MediaKind, PeerConnectionState, TrackId};
use rtc_media::io::ivf_reader::{IVFFileHeader, IVFReader};
use rtc_media::io::ivf_writer::IVFWriter;
use rtc_media::io::ogg_reader::OggReader;
use rtc_media::io::ogg_writer::OggWriter;
use rtc_media::io::Writer;
use rtc_rtp::packetizer::Packetizer;
use rtc_shared::marshal::{Marshal, Unmarshal};

#[path = "cli/mod.rs"]
mod cli;

/// RTP packets stay under this (a typical path MTU less IP, UDP, SRTP and TURN overhead).
const MTU: usize = 1200;

fn command() -> Command {
    let files = [
        Arg::new("video")
            .long("video")
            .value_name("FILE.ivf")
            .help("VP8 video (IVF)"),
        Arg::new("audio")
            .long("audio")
            .value_name("FILE.ogg")
            .help("Opus audio (Ogg)"),
    ];
    Command::new("webrtc-media")
        .about("Record a browser's VP8 and Opus into IVF and Ogg files, or send such files to it")
        .subcommand_required(true)
        .subcommand(
            Command::new("record")
                .about("answer an offer with tracks, and write what arrives")
                .args(files.clone())
                .arg(
                    Arg::new("seconds")
                        .long("seconds")
                        .value_name("N")
                        .default_value("10")
                        .value_parser(clap::value_parser!(u64))
                        .help("stop after this long once media flows"),
                )
                .args(cli::ice_args()),
        )
        .subcommand(
            Command::new("play")
                .about(
                    "offer a VP8 and an Opus track and send the files, paced by their timestamps",
                )
                .args(files)
                .args(cli::ice_args()),
        )
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::init_logging();
    let m = command().get_matches();
    let (mode, sub) = m.subcommand().expect("a subcommand is required");
    let r = match mode {
        "record" => record(sub).await,
        _ => play(sub).await,
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webrtc-media: {e}");
            ExitCode::FAILURE
        }
    }
}

fn path(m: &ArgMatches, name: &str) -> Option<PathBuf> {
    m.get_one::<String>(name).map(PathBuf::from)
}

async fn record(m: &ArgMatches) -> Result<(), String> {
    let (video, audio) = (path(m, "video"), path(m, "audio"));
    if video.is_none() && audio.is_none() {
        return Err("nothing to record: give --video and/or --audio".into());
    }
    let seconds = Duration::from_secs(*m.get_one::<u64>("seconds").expect("default"));
    let (session, mut events) = driver::start(cli::driver_config(m)?, Config::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut stdin = cli::stdin();
    let offer = cli::read_description(&mut stdin).await?;
    session
        .set_remote_description(&offer)
        .map_err(|e| e.to_string())?;
    session.create_answer().map_err(|e| e.to_string())?;
    let mut early: std::collections::VecDeque<Event> =
        cli::print_description(&session, &mut events, "answer")
            .await?
            .into();
    let open = |p: &Option<PathBuf>| -> Result<Option<BufWriter<File>>, String> {
        p.as_ref()
            .map(|p| {
                File::create(p)
                    .map(BufWriter::new)
                    .map_err(|e| format!("{}: {e}", p.display()))
            })
            .transpose()
    };
    let mut ivf = match open(&video)? {
        Some(f) => Some(
            IVFWriter::new(
                f,
                &IVFFileHeader {
                    signature: *b"DKIF",
                    header_size: 32,
                    four_cc: *b"VP80",
                    width: 640,
                    height: 480,
                    timebase_denominator: 90_000,
                    timebase_numerator: 1,
                    ..IVFFileHeader::default()
                },
            )
            .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut ogg = match open(&audio)? {
        Some(f) => Some(OggWriter::new(f, 48_000, 2).map_err(|e| e.to_string())?),
        None => None,
    };
    // Which section carries which kind, and the payload types of VP8 and Opus there.
    let mut kinds: Vec<(String, MediaKind, Vec<u8>)> = Vec::new();
    let mut connected = false;
    let mut until: Option<Instant> = None;
    let (mut frames, mut pages) = (0u64, 0u64);
    loop {
        let wait = until.map(|u| u.saturating_duration_since(Instant::now()));
        let e = match (early.pop_front(), wait) {
            (Some(e), _) => e,
            (None, wait) => match wait {
                Some(w) => match tokio::time::timeout(
                    w,
                    cli::next_event(&mut events, &mut connected, cli::timeout(m)),
                )
                .await
                {
                    Ok(e) => e?,
                    Err(_) => break,
                },
                None => cli::next_event(&mut events, &mut connected, cli::timeout(m)).await?,
            },
        };
        match e {
            Event::Track(t) => {
                let want = if t.kind == MediaKind::Video {
                    "VP8"
                } else {
                    "opus"
                };
                let pts = t
                    .codecs
                    .iter()
                    .filter(|c| c.name.eq_ignore_ascii_case(want))
                    .map(|c| c.payload_type)
                    .collect();
                eprintln!(
                    "webrtc-media: the peer sends {:?} in section {}",
                    t.kind, t.mid
                );
                kinds.push((t.mid, t.kind, pts));
            }
            Event::Rtp(p) => {
                until.get_or_insert_with(|| Instant::now() + seconds);
                let Some((_, kind, pts)) = kinds.iter().find(|k| k.0 == p.mid) else {
                    continue;
                };
                if !pts.contains(&p.payload_type) {
                    continue;
                }
                let Ok(packet) = rtc_rtp::packet::Packet::unmarshal(&mut &p.data[..]) else {
                    continue;
                };
                let r = match (kind, &mut ivf, &mut ogg) {
                    (MediaKind::Video, Some(w), _) => {
                        frames += u64::from(packet.header.marker);
                        w.write_rtp(&packet)
                    }
                    (MediaKind::Audio, _, Some(w)) => {
                        pages += 1;
                        w.write_rtp(&packet)
                    }
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    tracing::debug!(error = %e, "packet not written");
                }
            }
            Event::ConnectionState(PeerConnectionState::Closed) => break,
            _ => {}
        }
    }
    if let Some(w) = &mut ivf {
        w.close().map_err(|e| e.to_string())?;
    }
    if let Some(w) = &mut ogg {
        w.close().map_err(|e| e.to_string())?;
    }
    println!("recorded {frames} video frames, {pages} audio packets");
    session.shutdown().await;
    Ok(())
}

/// One track being sent: its payload type, packetizer and clock rate.
struct Sender {
    track: TrackId,
    packetizer: Box<dyn Packetizer>,
}

fn sender(session: &Session, track: TrackId, vp8: bool) -> Result<Sender, String> {
    let info = session
        .with(|pc, _| pc.track(track))
        .map_err(|e| e.to_string())?
        .ok_or("no track")?;
    let codec = info.codecs.first().ok_or("no codec negotiated")?.clone();
    let payloader: Box<dyn rtc_rtp::packetizer::Payloader> = if vp8 {
        Box::<rtc_rtp::codec::vp8::Vp8Payloader>::default()
    } else {
        Box::new(rtc_rtp::codec::opus::OpusPayloader)
    };
    Ok(Sender {
        track,
        packetizer: Box::new(rtc_rtp::packetizer::new_packetizer(
            Instant::now(),
            MTU,
            codec.payload_type,
            info.ssrc,
            payloader,
            Box::new(rtc_rtp::sequence::new_random_sequencer()),
            codec.clock_rate,
        )),
    })
}

fn send(session: &Session, s: &mut Sender, frame: &Bytes, samples: u32) -> Result<(), String> {
    let packets = s
        .packetizer
        .packetize(Instant::now(), frame, samples)
        .map_err(|e| e.to_string())?;
    for p in packets {
        let data = p.marshal().map_err(|e| e.to_string())?;
        session
            .with(|pc, now| pc.write_rtp(now, s.track, &data))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn play(m: &ArgMatches) -> Result<(), String> {
    let (video, audio) = (path(m, "video"), path(m, "audio"));
    if video.is_none() && audio.is_none() {
        return Err("nothing to play: give --video and/or --audio".into());
    }
    let (session, mut events) = driver::start(cli::driver_config(m)?, Config::default())
        .await
        .map_err(|e| e.to_string())?;
    let vtrack = match &video {
        Some(_) => Some(
            session
                .with(|pc, now| pc.add_track(now, MediaKind::Video, vec![Codec::vp8()]))
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let atrack = match &audio {
        Some(_) => Some(
            session
                .with(|pc, now| pc.add_track(now, MediaKind::Audio, vec![Codec::opus()]))
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    session.create_offer().map_err(|e| e.to_string())?;
    let _ = cli::print_description(&session, &mut events, "offer").await?;
    let answer = cli::read_description(&mut cli::stdin()).await?;
    session
        .set_remote_description(&answer)
        .map_err(|e| e.to_string())?;
    let mut connected = false;
    while !connected {
        cli::next_event(&mut events, &mut connected, cli::timeout(m)).await?;
    }
    let drain = tokio::spawn(async move { while events.next().await.is_some() {} });
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    if let (Some(path), Some(track)) = (video, vtrack) {
        let mut s = sender(&session, track, true)?;
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (mut reader, header) = IVFReader::new(file).map_err(|e| e.to_string())?;
        let tick = move |ts: u64| {
            Duration::from_secs_f64(
                ts as f64 * f64::from(header.timebase_numerator.max(1))
                    / f64::from(header.timebase_denominator.max(1)),
            )
        };
        let session = session.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut last = Duration::ZERO;
            while let Ok((frame, h)) = reader.parse_next_frame() {
                let at = tick(h.timestamp);
                tokio::time::sleep_until(start + at).await;
                let samples = ((at.saturating_sub(last)).as_secs_f64() * 90_000.0) as u32;
                last = at;
                send(&session, &mut s, &frame.freeze(), samples.max(1))?;
                n += 1;
            }
            Ok::<_, String>(format!("{n} video frames"))
        }));
    }
    if let (Some(path), Some(track)) = (audio, atrack) {
        let mut s = sender(&session, track, false)?;
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (mut reader, _) = OggReader::new(file, true).map_err(|e| e.to_string())?;
        let session = session.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut last_granule = 0u64;
            let mut at = Duration::ZERO;
            while let Ok((page, h)) = reader.parse_next_page() {
                // The granule position counts 48 kHz samples (RFC 7845 §4).
                let samples = h.granule_position.saturating_sub(last_granule);
                last_granule = h.granule_position;
                at += Duration::from_secs_f64(samples as f64 / 48_000.0);
                tokio::time::sleep_until(start + at).await;
                send(&session, &mut s, &page.freeze(), samples as u32)?;
                n += 1;
            }
            Ok::<_, String>(format!("{n} audio packets"))
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.map_err(|e| e.to_string())??);
    }
    println!("sent {}", done.join(", "));
    drain.abort();
    session.shutdown().await;
    Ok(())
}
