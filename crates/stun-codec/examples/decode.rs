//! Decodes a hex STUN message (or ChannelData) and prints it.
//!
//! ```text
//! cargo run -p stun-codec --example decode -- 000100002112a442b7e7a701bc34d686fa87dfae
//! cargo run -p stun-codec --example decode -- --password VOkJxbRl1RmTxUk/WvJxBt <hex>
//! ```
//!
//! With no argument it decodes the RFC 5769 §2.1 sample request.

use stun_codec::{demux, ChannelData, IntegrityKey, Message, PacketKind};

const RFC5769_REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573\
7420636c69656e74002400046e0001ff80290008932ff9b151263b3600060009\
6576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249\
c1b571a280280004e57a3bcf";

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            u8::from_str_radix(s, 16).map_err(|_| format!("not hex: {s:?}"))
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut password = None;
    let mut hex = String::new();
    while let Some(a) = args.next() {
        if a == "--password" {
            password = args.next();
        } else {
            hex.push_str(&a);
        }
    }
    if hex.is_empty() {
        eprintln!("no message given; decoding the RFC 5769 §2.1 sample request");
        hex = RFC5769_REQUEST.into();
        password.get_or_insert_with(|| "VOkJxbRl1RmTxUk/WvJxBt".into());
    }
    let bytes = match parse_hex(&hex) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match demux(&bytes) {
        PacketKind::ChannelData => match ChannelData::parse(&bytes) {
            Ok(cd) => {
                println!(
                    "ChannelData channel {:#06x}, {} bytes of data",
                    cd.channel(),
                    cd.data().len()
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        _ => match Message::parse(&bytes) {
            Ok(msg) => {
                print!("{msg}");
                if msg.has_fingerprint() {
                    println!("FINGERPRINT: {:?}", msg.verify_fingerprint().map(|_| "ok"));
                }
                if let Some(p) = password {
                    match IntegrityKey::short_term(&p) {
                        Ok(key) => {
                            if msg.has_integrity() {
                                println!(
                                    "MESSAGE-INTEGRITY (short-term): {:?}",
                                    msg.verify_integrity(&key).map(|_| "ok")
                                );
                            }
                            if msg.has_integrity_sha256() {
                                println!(
                                    "MESSAGE-INTEGRITY-SHA256 (short-term): {:?}",
                                    msg.verify_integrity_sha256_truncated(&key, 16)
                                        .map(|_| "ok")
                                );
                            }
                        }
                        Err(e) => eprintln!("password: {e}"),
                    }
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
