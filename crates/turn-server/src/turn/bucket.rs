//! One token bucket for every rate the server enforces: bytes per allocation (`max-bps`) and
//! challenge answers per source (the 401/438 limiter).

use std::time::Instant;

/// Fractions of a unit are kept in billionths, so refills are exact however finely time is
/// sliced: a packet every 100 µs at 1000 B/s earns 0.1 byte each, and those tenths add up.
const NANO: u128 = 1_000_000_000;

/// `rate` units a second, holding at most `burst` units; starts full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TokenBucket {
    rate: u64,
    /// The most it holds, in billionths of a unit.
    cap: u128,
    /// What it holds now, in billionths of a unit.
    held: u128,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `burst` units refilled at `rate` units a second.
    pub(super) fn new(rate: u64, burst: u64) -> TokenBucket {
        let cap = u128::from(burst) * NANO;
        TokenBucket {
            rate,
            cap,
            held: cap,
            last: None,
        }
    }

    /// Takes `amount` units at `now` if the bucket holds them.
    pub(super) fn take(&mut self, amount: u64, now: Instant) -> bool {
        if let Some(last) = self.last {
            // Nanoseconds × units a second = billionths of a unit.
            let earned = now
                .saturating_duration_since(last)
                .as_nanos()
                .saturating_mul(u128::from(self.rate));
            self.held = self.held.saturating_add(earned).min(self.cap);
        }
        self.last = Some(now);
        let need = u128::from(amount) * NANO;
        if self.held >= need {
            self.held -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate_with_fractions_kept() {
        let t = Instant::now();
        let mut b = TokenBucket::new(10, 20);
        assert_eq!((0..100).filter(|_| b.take(1, t)).count(), 20);
        // 0.5 s in steps of 1 ms: each step earns a hundredth of a unit.
        let mut got = 0;
        for i in 1..=500 {
            got += usize::from(b.take(1, t + Duration::from_millis(i)));
        }
        assert_eq!(got, 5);
        let later = t + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.take(1, later)).count(), 20, "capped");
    }
}
