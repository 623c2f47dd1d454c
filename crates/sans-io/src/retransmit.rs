//! The STUN client retransmission schedule (RFC 8489 §6.2.1), the one every client
//! transaction of the stack uses: server-reflexive gathering, the TURN client, connectivity
//! and consent checks, RFC 5780 discovery.

use std::time::{Duration, Instant};

/// When a client transaction next needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    rto: Duration,
    sent: u32,
    max_sends: u32,
    last_wait: u32,
    next: Instant,
    deadline: Option<Instant>,
}

/// What to do when [`Retransmit::poll`] says the timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetransmitAction {
    /// Send the request again.
    Resend,
    /// The transaction failed: no answer in time.
    TimedOut,
}

impl Retransmit {
    /// A transaction over UDP sent first at `now`: resent after `rto`, `3 rto`, `7 rto`, …
    /// (the interval doubles) up to `max_sends` transmissions in total, then given up
    /// `last_wait × rto` after the last one (RFC 8489: Rc = 7, Rm = 16).
    pub fn udp(now: Instant, rto: Duration, max_sends: u32, last_wait: u32) -> Retransmit {
        Retransmit {
            rto,
            sent: 1,
            max_sends: max_sends.max(1),
            last_wait,
            next: now + rto,
            deadline: None,
        }
    }

    /// A transaction over a reliable transport: never resent, given up after `timeout`
    /// (RFC 8489 §6.2.2: Ti = 39.5 s).
    pub fn reliable(now: Instant, timeout: Duration) -> Retransmit {
        Retransmit {
            rto: timeout,
            sent: 1,
            max_sends: 1,
            last_wait: 1,
            next: now + timeout,
            deadline: None,
        }
    }

    /// Also give up at `deadline`, whatever the schedule says (a per-server gathering
    /// deadline).
    pub fn with_deadline(mut self, deadline: Instant) -> Retransmit {
        self.deadline = Some(deadline);
        self.next = self.next.min(deadline);
        self
    }

    /// When [`poll`](Self::poll) should next be called.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// How many times the request has been sent.
    pub fn sends(&self) -> u32 {
        self.sent
    }

    /// Advances the schedule if its time has come.
    pub fn poll(&mut self, now: Instant) -> Option<RetransmitAction> {
        if now < self.next {
            return None;
        }
        if self.deadline.is_some_and(|d| now >= d) || self.sent >= self.max_sends {
            return Some(RetransmitAction::TimedOut);
        }
        self.sent += 1;
        // The k-th wait is rto·2^(k-1); after the last send, last_wait·rto.
        let wait = if self.sent >= self.max_sends {
            self.rto * self.last_wait
        } else {
            self.rto * 2u32.saturating_pow(self.sent - 1)
        };
        self.next = now + wait;
        if let Some(d) = self.deadline {
            self.next = self.next.min(d);
        }
        Some(RetransmitAction::Resend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8489_schedule_with_default_values() {
        // RFC 8489 §6.2.1: with RTO 500 ms, sends at 0, 500, 1500, 3500, 7500, 15500,
        // 31500 ms, and failure at 39500 ms.
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = Retransmit::udp(t0, Duration::from_millis(500), 7, 16);
        let mut sends = vec![0];
        let now = loop {
            let now = r.next();
            match r.poll(now) {
                Some(RetransmitAction::Resend) => sends.push((now - t0).as_millis()),
                Some(RetransmitAction::TimedOut) => break now,
                None => unreachable!("polled at its own time"),
            }
        };
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(now, ms(39500));
        assert_eq!(r.sends(), 7);
    }

    #[test]
    fn deadline_cuts_the_schedule() {
        let t0 = Instant::now();
        let mut r = Retransmit::udp(t0, Duration::from_millis(500), 7, 16)
            .with_deadline(t0 + Duration::from_millis(1200));
        assert_eq!(r.poll(r.next()), Some(RetransmitAction::Resend));
        assert_eq!(r.next(), t0 + Duration::from_millis(1200));
        assert_eq!(r.poll(r.next()), Some(RetransmitAction::TimedOut));
    }

    #[test]
    fn reliable_is_never_resent() {
        let t0 = Instant::now();
        let mut r = Retransmit::reliable(t0, Duration::from_millis(39500));
        assert_eq!(r.poll(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.poll(r.next()), Some(RetransmitAction::TimedOut));
    }
}
