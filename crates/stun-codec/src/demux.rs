//! Demultiplexing by first byte (RFC 7983 §7): which protocol a datagram on a shared
//! socket belongs to.
//!
//! ```text
//! 0..=3      STUN
//! 16..=19    ZRTP
//! 20..=63    DTLS
//! 64..=79    TURN ChannelData
//! 128..=191  RTP / RTCP
//! otherwise  drop
//! ```

/// The protocol of a packet, by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// STUN (first byte 0–3).
    Stun,
    /// ZRTP (16–19).
    Zrtp,
    /// DTLS (20–63).
    Dtls,
    /// TURN ChannelData (64–79).
    ChannelData,
    /// RTP or RTCP (128–191).
    RtpRtcp,
    /// Anything else, including an empty packet: RFC 7983 says to drop it.
    Other,
}

/// Classifies a packet by its first byte (RFC 7983 §7).
pub const fn demux(packet: &[u8]) -> PacketKind {
    match packet.first() {
        Some(&b) => classify(b),
        None => PacketKind::Other,
    }
}

/// Classifies a first byte (RFC 7983 §7).
pub const fn classify(first_byte: u8) -> PacketKind {
    match first_byte {
        0..=3 => PacketKind::Stun,
        16..=19 => PacketKind::Zrtp,
        20..=63 => PacketKind::Dtls,
        64..=79 => PacketKind::ChannelData,
        128..=191 => PacketKind::RtpRtcp,
        _ => PacketKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_boundaries() {
        use PacketKind::*;
        let table = [
            (0, Stun),
            (3, Stun),
            (4, Other),
            (15, Other),
            (16, Zrtp),
            (19, Zrtp),
            (20, Dtls),
            (22, Dtls),
            (63, Dtls),
            (64, ChannelData),
            (79, ChannelData),
            (80, Other),
            (127, Other),
            (128, RtpRtcp),
            (191, RtpRtcp),
            (192, Other),
            (255, Other),
        ];
        for (b, kind) in table {
            assert_eq!(demux(&[b, 0, 0]), kind, "first byte {b}");
        }
        assert_eq!(demux(&[]), Other);
    }
}
