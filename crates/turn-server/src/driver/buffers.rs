//! UDP socket buffers (coturn's `sock-buf-size`) and the kernel's drop counters for the
//! server's UDP sockets. A receive buffer too small for a burst is where a relay loses
//! packets under load; the kernel counts each datagram it drops for a full buffer, per
//! socket, in `/proc/net/udp` and `/proc/net/udp6`.

use std::io;
use std::os::fd::AsFd;

/// Sets both buffers of `socket` to `size` bytes: past `net.core.rmem_max`/`wmem_max` where
/// the process may (SO_RCVBUFFORCE, CAP_NET_ADMIN), else as far as the kernel's limit allows.
/// The receive buffer's size the kernel then reports.
pub(crate) fn set_buffers(socket: &impl AsFd, size: usize) -> io::Result<usize> {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    if size == 0 {
        return Ok(getsockopt(socket, sockopt::RcvBuf)?);
    }
    if setsockopt(socket, sockopt::RcvBufForce, &size).is_err() {
        setsockopt(socket, sockopt::RcvBuf, &size)?;
    }
    if setsockopt(socket, sockopt::SndBufForce, &size).is_err() {
        setsockopt(socket, sockopt::SndBuf, &size)?;
    }
    Ok(getsockopt(socket, sockopt::RcvBuf)?)
}

/// The kernel's drop counts of UDP sockets, summed by what `kind` says a local port is
/// (`Some(0)`, `Some(1)`, ...; `None`: not ours), from `/proc/net/udp` and `/proc/net/udp6`.
/// Unreadable files count nothing.
pub(super) fn udp_drops<const N: usize>(kind: impl Fn(u16) -> Option<usize>) -> [u64; N] {
    let mut sums = [0u64; N];
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (port, drops) in text.lines().skip(1).filter_map(parse_line) {
            if let Some(k) = kind(port).filter(|k| *k < N) {
                sums[k] += drops;
            }
        }
    }
    sums
}

/// `sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops`:
/// the local port (hex after the colon) and the last field.
fn parse_line(line: &str) -> Option<(u16, u64)> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
    let drops = fields.last()?.parse().ok()?;
    Some((port, drops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_lines() {
        let line = "  855: 0100007F:0D96 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 123456 2 0000000000000000 42";
        assert_eq!(parse_line(line), Some((3478, 42)));
        assert_eq!(parse_line("garbage"), None);
    }

    #[test]
    fn a_full_receive_buffer_is_counted_by_the_kernel_and_read_here() {
        // A socket with the smallest buffer, flooded and never read: the kernel drops, and
        // the counter for its port says so.
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = set_buffers(&rx, 0).unwrap();
        assert!(got > 0);
        socket2::SockRef::from(&rx).set_recv_buffer_size(1).unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..2000 {
            let _ = tx.send_to(&[0u8; 1200], ("127.0.0.1", port));
        }
        let [drops] = udp_drops::<1>(|p| (p == port).then_some(0));
        assert!(drops > 0, "no drop counted for port {port}");
        // A larger buffer is set (forced as root, else up to the kernel's limit).
        let big = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = set_buffers(&big, 0).unwrap();
        let after = set_buffers(&big, 4 << 20).unwrap();
        assert!(after >= before, "{after} < {before}");
    }
}
