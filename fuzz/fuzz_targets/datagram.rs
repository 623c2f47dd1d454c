//! A datagram on a shared socket: demultiplex by first byte (RFC 7983), then parse as STUN or
//! ChannelData. A valid ChannelData must rebuild to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stun_codec::{demux, ChannelData, Message, PacketKind};

fuzz_target!(|data: &[u8]| {
    let kind = demux(data);
    let parsed = Message::parse(data);
    // STUN itself only needs the top two bits zero (RFC 8489 §5); RFC 7983 narrows that to
    // 0..=3 for sockets shared with DTLS and RTP. Whatever parses as STUN must never be taken
    // for ChannelData or media on a shared socket.
    if parsed.is_ok() {
        assert!(!matches!(
            kind,
            PacketKind::ChannelData | PacketKind::RtpRtcp
        ));
    }
    match kind {
        PacketKind::Stun => {
            let _ = parsed.map(|m| m.attributes().count());
        }
        PacketKind::ChannelData => {
            if let Ok(cd) = ChannelData::parse(data) {
                assert!(ChannelData::valid_channel(cd.channel()));
                let mut out = vec![0u8; data.len() + 3];
                let padded = data.len() > 4 + cd.data().len();
                let n = ChannelData::build(cd.channel(), cd.data(), padded, &mut out).unwrap();
                assert_eq!(&out[..4 + cd.data().len()], &data[..4 + cd.data().len()]);
                assert!(n >= 4 + cd.data().len());
            }
        }
        _ => assert!(ChannelData::parse(data).is_err()),
    }
});
