//! A TCP/TLS byte stream: the framer must hand out the same frames however the bytes are split
//! across reads, and each frame parses (or fails) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stun_codec::{ChannelData, FrameKind, Message, StreamFramer, MAX_FRAME_LEN};

/// Feeds `data` in chunks of the given sizes (all at once without sizes); returns the frames
/// and whether the stream failed.
fn frames(data: &[u8], chunks: &[u8]) -> (Vec<(FrameKind, Vec<u8>)>, bool) {
    let mut f = StreamFramer::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = sizes
            .next()
            .map_or(rest.len(), |s| usize::from(*s).max(1))
            .min(rest.len());
        f.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            match f.next_frame() {
                Ok(Some((kind, bytes))) => out.push((kind, bytes.to_vec())),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        // Bounded: once complete frames are taken, only an incomplete one is held.
        assert!(f.buffered() < MAX_FRAME_LEN);
    }
    (out, false)
}

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (chunks, data) = input;
    let whole = frames(&data, &[]); // one push of everything
    let split = frames(&data, &chunks);
    assert_eq!(whole, split);
    for (kind, bytes) in &whole.0 {
        match kind {
            FrameKind::Stun => {
                let _ = Message::parse(bytes);
            }
            FrameKind::ChannelData => {
                let _ = ChannelData::parse(bytes);
            }
        }
    }
});
