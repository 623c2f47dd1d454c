//! A bounded rate limit on 401/438 answers per source address.
//!
//! An unauthenticated request costs the server one answer; a flood from many (spoofed) sources
//! must neither grow memory nor turn the server into a reflector. Sources hash into a fixed
//! table of token buckets (keyed with the server's secret, so an attacker cannot aim at one
//! bucket): memory is constant whatever the number of sources, and colliding sources share a
//! bucket, which only ever makes the limit stricter.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::Instant;

use super::bucket::TokenBucket;

const BUCKETS: usize = 4096;

/// Token buckets for challenge answers, one per hashed source IP.
#[derive(Debug)]
pub(super) struct ChallengeLimiter {
    key: [u8; 16],
    buckets: Box<[TokenBucket]>,
}

impl ChallengeLimiter {
    /// `rate` answers per second per source, bursts of `burst`; `key` from the server secret.
    pub(super) fn new(key: [u8; 16], rate: u32, burst: u32) -> ChallengeLimiter {
        let bucket = TokenBucket::new(u64::from(rate), u64::from(burst.max(1)));
        ChallengeLimiter {
            key,
            buckets: vec![bucket; BUCKETS].into_boxed_slice(),
        }
    }

    /// Whether `source` may get one more answer at `now`.
    pub(super) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let mut h = DefaultHasher::new();
        (self.key, source).hash(&mut h);
        self.buckets[(h.finish() % BUCKETS as u64) as usize].take(1, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_rate_per_source() {
        let mut l = ChallengeLimiter::new([3; 16], 10, 20);
        let t = Instant::now();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!((0..100).filter(|_| l.allow(a, t)).count(), 20);
        assert!(l.allow(b, t), "another source has its own bucket");
        let later = t + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| l.allow(a, later)).count(), 5);
        let much_later = t + Duration::from_secs(3600);
        assert_eq!(
            (0..100).filter(|_| l.allow(a, much_later)).count(),
            20,
            "capped at the burst"
        );
    }
}
