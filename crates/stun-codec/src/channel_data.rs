//! TURN ChannelData messages (RFC 8656 §12.4–12.5).
//!
//! ```text
//! 0x40 0x00       channel number 0x4000–0x4FFF (first two bits 01)
//! 0x00 0x05       length of the application data
//! h e l l o       application data
//! 0x00 0x00 0x00  padding to 4 bytes: required over TCP/TLS, optional over UDP
//! ```

use crate::message::padded;

/// Size of the ChannelData header.
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;

/// Why bytes are not a ChannelData message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelDataError {
    /// Fewer bytes than the header or than the length field announces.
    #[error("truncated ChannelData: need {expected} bytes, have {actual}")]
    Truncated {
        /// Bytes needed.
        expected: usize,
        /// Bytes available.
        actual: usize,
    },
    /// A channel number outside 0x4000–0x4FFF (0x5000–0x7FFF are reserved, RFC 8656 §12).
    #[error("channel number {channel:#06x} outside 0x4000-0x4FFF")]
    InvalidChannel {
        /// The channel number found.
        channel: u16,
    },
    /// More bytes follow than the data and its padding.
    #[error("trailing bytes: ChannelData is at most {expected} bytes, datagram has {actual}")]
    TrailingBytes {
        /// The longest the message could be with padding.
        expected: usize,
        /// Bytes in the datagram.
        actual: usize,
    },
    /// The output buffer cannot hold the message.
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The data is longer than the 16-bit length field allows.
    #[error("{length} bytes of data do not fit a ChannelData message")]
    DataTooLong {
        /// The data length.
        length: usize,
    },
}

/// A ChannelData message borrowed from a datagram or a stream frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    channel: u16,
    data: &'a [u8],
}

/// The highest channel number of RFC 5766, whose range was 0x4000–0x7FFF (RFC 8656 §12 keeps
/// 0x4000–0x4FFF and reserves the rest). Servers with a compatibility switch for older
/// clients accept up to it with [`ChannelData::parse_up_to`] and [`ChannelData::build_up_to`].
pub const RFC5766_MAX_CHANNEL: u16 = 0x7FFF;

impl<'a> ChannelData<'a> {
    /// Whether `channel` is a valid channel number (0x4000–0x4FFF).
    pub const fn valid_channel(channel: u16) -> bool {
        channel >= 0x4000 && channel <= 0x4FFF
    }

    /// Parses one ChannelData message that fills `bytes`, optionally followed by up to 3 bytes
    /// of padding (present over streams, optional over UDP).
    pub fn parse(bytes: &'a [u8]) -> Result<ChannelData<'a>, ChannelDataError> {
        Self::parse_up_to(bytes, 0x4FFF)
    }

    /// [`parse`](Self::parse) accepting channel numbers 0x4000 to `max` (at most
    /// [`RFC5766_MAX_CHANNEL`]).
    pub fn parse_up_to(bytes: &'a [u8], max: u16) -> Result<ChannelData<'a>, ChannelDataError> {
        if bytes.len() < CHANNEL_DATA_HEADER_LEN {
            return Err(ChannelDataError::Truncated {
                expected: CHANNEL_DATA_HEADER_LEN,
                actual: bytes.len(),
            });
        }
        let channel = u16::from_be_bytes([bytes[0], bytes[1]]);
        if !(0x4000..=max.min(RFC5766_MAX_CHANNEL)).contains(&channel) {
            return Err(ChannelDataError::InvalidChannel { channel });
        }
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let end = CHANNEL_DATA_HEADER_LEN + len;
        if end > bytes.len() {
            return Err(ChannelDataError::Truncated {
                expected: end,
                actual: bytes.len(),
            });
        }
        if bytes.len() > CHANNEL_DATA_HEADER_LEN + padded(len) {
            return Err(ChannelDataError::TrailingBytes {
                expected: CHANNEL_DATA_HEADER_LEN + padded(len),
                actual: bytes.len(),
            });
        }
        Ok(ChannelData {
            channel,
            data: &bytes[CHANNEL_DATA_HEADER_LEN..end],
        })
    }

    /// The channel number.
    pub fn channel(&self) -> u16 {
        self.channel
    }

    /// The application data.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Writes a ChannelData message into `out` and returns its length. With `pad` (required for
    /// TCP and TLS) the data is zero-padded to a multiple of 4 bytes.
    pub fn build(
        channel: u16,
        data: &[u8],
        pad: bool,
        out: &mut [u8],
    ) -> Result<usize, ChannelDataError> {
        Self::build_up_to(channel, data, pad, out, 0x4FFF)
    }

    /// [`build`](Self::build) accepting channel numbers 0x4000 to `max` (at most
    /// [`RFC5766_MAX_CHANNEL`]).
    pub fn build_up_to(
        channel: u16,
        data: &[u8],
        pad: bool,
        out: &mut [u8],
        max: u16,
    ) -> Result<usize, ChannelDataError> {
        if !(0x4000..=max.min(RFC5766_MAX_CHANNEL)).contains(&channel) {
            return Err(ChannelDataError::InvalidChannel { channel });
        }
        let len = u16::try_from(data.len())
            .map_err(|_| ChannelDataError::DataTooLong { length: data.len() })?;
        let end = CHANNEL_DATA_HEADER_LEN + data.len();
        let total = if pad {
            CHANNEL_DATA_HEADER_LEN + padded(data.len())
        } else {
            end
        };
        if total > out.len() {
            return Err(ChannelDataError::BufferTooSmall {
                needed: total,
                available: out.len(),
            });
        }
        out[..2].copy_from_slice(&channel.to_be_bytes());
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out[4..end].copy_from_slice(data);
        out[end..total].fill(0);
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5766_channel_numbers_only_when_asked() {
        let mut buf = [0u8; 16];
        assert!(ChannelData::build(0x5000, b"x", false, &mut buf).is_err());
        let n =
            ChannelData::build_up_to(0x7FFF, b"x", false, &mut buf, RFC5766_MAX_CHANNEL).unwrap();
        assert_eq!(
            ChannelData::parse(&buf[..n]),
            Err(ChannelDataError::InvalidChannel { channel: 0x7FFF })
        );
        let cd = ChannelData::parse_up_to(&buf[..n], RFC5766_MAX_CHANNEL).unwrap();
        assert_eq!((cd.channel(), cd.data()), (0x7FFF, &b"x"[..]));
        // Never beyond what the first two bits 01 can carry.
        assert!(ChannelData::build_up_to(0x8000, b"x", false, &mut buf, 0xFFFF).is_err());
    }

    #[test]
    fn round_trip_padded_and_not() {
        let mut buf = [0u8; 16];
        let n = ChannelData::build(0x4001, b"hello", true, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x40\x01\x00\x05hello\x00\x00\x00");
        let cd = ChannelData::parse(&buf[..n]).unwrap();
        assert_eq!((cd.channel(), cd.data()), (0x4001, &b"hello"[..]));
        let n = ChannelData::build(0x4FFF, b"hello", false, &mut buf).unwrap();
        assert_eq!(n, 9);
        assert_eq!(ChannelData::parse(&buf[..n]).unwrap().data(), b"hello");
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            ChannelData::parse(b"\x40\x00\x00"),
            Err(ChannelDataError::Truncated {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            ChannelData::parse(b"\x50\x00\x00\x00"),
            Err(ChannelDataError::InvalidChannel { channel: 0x5000 })
        );
        assert_eq!(
            ChannelData::parse(b"\x3F\xFF\x00\x00"),
            Err(ChannelDataError::InvalidChannel { channel: 0x3FFF })
        );
        assert_eq!(
            ChannelData::parse(b"\x40\x00\x00\x05abc"),
            Err(ChannelDataError::Truncated {
                expected: 9,
                actual: 7
            })
        );
        assert_eq!(
            ChannelData::parse(b"\x40\x00\x00\x01abcdefgh"),
            Err(ChannelDataError::TrailingBytes {
                expected: 8,
                actual: 12
            })
        );
        let mut small = [0u8; 6];
        assert_eq!(
            ChannelData::build(0x4000, b"hello", false, &mut small),
            Err(ChannelDataError::BufferTooSmall {
                needed: 9,
                available: 6
            })
        );
        assert_eq!(
            ChannelData::build(0x3000, b"", false, &mut small),
            Err(ChannelDataError::InvalidChannel { channel: 0x3000 })
        );
    }
}
