//! Splitting STUN and ChannelData frames out of a TCP or TLS byte stream (RFC 8656 §12.5,
//! RFC 6544 without the RFC 4571 length prefix, as TURN uses it).
//!
//! Over a stream the first two bits tell the frame kind: `00` STUN (20-byte header plus the
//! length field), `01` ChannelData (4-byte header plus the length, padded to 4). Anything else
//! means the stream is out of step and must be closed.

use crate::channel_data::CHANNEL_DATA_HEADER_LEN;
use crate::message::padded;
use crate::HEADER_LEN;

/// The largest frame a stream can carry: a STUN message with 65,532 bytes of attributes
/// (20 + 65,532), which is longer than the largest ChannelData (4 + 65,535 padded to 65,536).
pub const MAX_FRAME_LEN: usize = HEADER_LEN + 65_532;

const _: () = assert!(MAX_FRAME_LEN >= CHANNEL_DATA_HEADER_LEN + padded(u16::MAX as usize));

/// The kind of a frame on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A STUN message.
    Stun,
    /// A ChannelData message (with its padding).
    ChannelData,
}

/// The stream is not a sequence of STUN and ChannelData frames; close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A first byte that starts neither STUN (`00`) nor ChannelData (`01`).
    #[error("stream out of step: first byte {first_byte:#04x} is neither STUN nor ChannelData")]
    UnknownFrame {
        /// The byte found.
        first_byte: u8,
    },
    /// A STUN length that is not a multiple of 4.
    #[error("STUN frame with length {length} not a multiple of 4")]
    UnalignedLength {
        /// The length field.
        length: u16,
    },
}

/// Length of the frame at the start of `buf` once complete; `Ok(None)` if `buf` does not yet hold
/// the 4 bytes that tell it.
pub fn frame_len(buf: &[u8]) -> Result<Option<(FrameKind, usize)>, FramingError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let length = u16::from_be_bytes([head[2], head[3]]);
    match head[0] >> 6 {
        0b00 if length % 4 != 0 => Err(FramingError::UnalignedLength { length }),
        0b00 => Ok(Some((FrameKind::Stun, HEADER_LEN + usize::from(length)))),
        0b01 => Ok(Some((
            FrameKind::ChannelData,
            CHANNEL_DATA_HEADER_LEN + padded(usize::from(length)),
        ))),
        _ => Err(FramingError::UnknownFrame {
            first_byte: head[0],
        }),
    }
}

/// Buffers bytes read from a stream and hands out complete frames.
///
/// Every driver of the stack reads a stream the same way: [`feed`](Self::feed) what the
/// socket gave, and each complete frame goes to the core as one message. (Or push, then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`.) Used that way — drain after
/// every push — the buffer holds at most one incomplete frame ([`MAX_FRAME_LEN`]) plus one
/// push, so a peer cannot make it grow without bound.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    start: usize,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> StreamFramer {
        StreamFramer::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Pushes bytes read from the stream and hands every frame now complete to `each`, in
    /// order, borrowed from the framer. An error means the stream is out of step (frames
    /// before the bad one were handed on): close the connection.
    pub fn feed(&mut self, data: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), FramingError> {
        self.push(data);
        while let Some((_, frame)) = self.next_frame()? {
            each(frame);
        }
        Ok(())
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes the bytes buffered and not yet returned as frames, leaving the framer empty:
    /// for a stream that stops carrying frames (an RFC 6062 data connection after its
    /// ConnectionBind carries the peer's bytes as they are).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        rest
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or an error if the stream is
    /// out of step (close it; the framer stays in error).
    pub fn next_frame(&mut self) -> Result<Option<(FrameKind, &[u8])>, FramingError> {
        let pending = &self.buf[self.start..];
        match frame_len(pending)? {
            Some((kind, len)) if len <= pending.len() => {
                let at = self.start;
                self.start += len;
                Ok(Some((kind, &self.buf[at..at + len])))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelData, Class, Message, MessageBuilder, MessageType, Method, TransactionId};

    fn stun_frame() -> Vec<u8> {
        let mut buf = [0u8; 64];
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([7; 12]),
        )
        .unwrap();
        b.add_fingerprint().unwrap();
        b.finish().to_vec()
    }

    fn channel_frame(data: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 4 + data.len() + 3];
        let n = ChannelData::build(0x4000, data, true, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn what_follows_the_last_frame_can_be_taken() {
        let mut f = StreamFramer::new();
        let mut bytes = stun_frame();
        bytes.extend_from_slice(b"raw bytes");
        f.push(&bytes);
        assert!(matches!(f.next_frame(), Ok(Some((FrameKind::Stun, _)))));
        assert_eq!(f.take_buffered(), b"raw bytes");
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut stream = stun_frame();
        stream.extend(channel_frame(b"hello"));
        stream.extend(stun_frame());
        let mut f = StreamFramer::new();
        f.push(&stream);
        let (k, bytes) = f.next_frame().unwrap().unwrap();
        assert_eq!(k, FrameKind::Stun);
        Message::parse(bytes).unwrap().verify_fingerprint().unwrap();
        let (k, bytes) = f.next_frame().unwrap().unwrap();
        assert_eq!(k, FrameKind::ChannelData);
        assert_eq!(ChannelData::parse(bytes).unwrap().data(), b"hello");
        assert_eq!(f.next_frame().unwrap().unwrap().0, FrameKind::Stun);
        assert_eq!(f.next_frame().unwrap(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn frames_split_across_reads_byte_by_byte() {
        let mut stream = channel_frame(b"abcdefg");
        stream.extend(stun_frame());
        let mut f = StreamFramer::new();
        let mut got = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            while let Some((k, bytes)) = f.next_frame().unwrap() {
                got.push((k, bytes.len()));
            }
        }
        assert_eq!(
            got,
            vec![(FrameKind::ChannelData, 12), (FrameKind::Stun, 28)]
        );
    }

    #[test]
    fn feed_hands_on_the_frames_before_an_error() {
        let mut stream = stun_frame();
        stream.extend(channel_frame(b"xy"));
        stream.extend(b"\x80\x60\x00\x01"); // RTP: out of step
        let mut f = StreamFramer::new();
        let mut lens = Vec::new();
        assert_eq!(
            f.feed(&stream[..30], |frame| lens.push(frame.len())),
            Ok(())
        );
        assert_eq!(
            f.feed(&stream[30..], |frame| lens.push(frame.len())),
            Err(FramingError::UnknownFrame { first_byte: 0x80 })
        );
        assert_eq!(lens, [28, 8]);
    }

    #[test]
    fn out_of_step_stream() {
        let mut f = StreamFramer::new();
        // A TLS ClientHello record (0x16 has 00 in its top bits, so it reads as STUN) whose
        // bytes 2..4 (0x01, 0x05) make an unaligned STUN length.
        f.push(b"\x16\x03\x01\x05\x05hello");
        assert_eq!(
            f.next_frame(),
            Err(FramingError::UnalignedLength { length: 0x0105 })
        );
        let mut f = StreamFramer::new();
        f.push(b"\x80\x60\x00\x01rtp!"); // an RTP header: top bits 10
        assert_eq!(
            f.next_frame(),
            Err(FramingError::UnknownFrame { first_byte: 0x80 })
        );
        assert_eq!(frame_len(b"\x40\x00"), Ok(None));
    }
}
