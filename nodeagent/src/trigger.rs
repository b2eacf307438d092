//! When a level-triggered loop of the agent runs its next pass (docs/architecture.md,
//! "Conventions"): on every change of its watch, and on a timer; after a failed pass, again
//! after a back-off that doubles while passes keep failing. The loops' timers are tokio's, so
//! their unit tests drive them with a paused clock (`#[tokio::test(start_paused = true)]`).

use std::time::Duration;
use tokio::sync::watch;

/// A delay that doubles from `first` up to `max` with each failure in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, next: first }
    }

    /// The delay before the next retry; the one after it is twice as long (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        delay
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The pacing of one loop over the values of a watch channel.
pub struct Trigger<T> {
    rx: watch::Receiver<T>,
    period: Duration,
    backoff: Backoff,
}

impl<T: Clone> Trigger<T> {
    /// Passes on every change of `rx` and at least every `period`; after a failure, after
    /// `backoff`.
    pub fn new(rx: watch::Receiver<T>, period: Duration, backoff: Backoff) -> Trigger<T> {
        Trigger { rx, period, backoff }
    }

    /// The latest value, marked seen (changes arriving during the pass wake the next wait:
    /// they are coalesced into one pass).
    pub fn latest(&mut self) -> T {
        self.rx.borrow_and_update().clone()
    }

    /// Waits until the next pass is due: after a failed pass (`ok` false) the next back-off
    /// (changes meanwhile do not cut it short), else the next change or the period. False once
    /// the sender is gone.
    pub async fn wait(&mut self, ok: bool) -> bool {
        if !ok {
            tokio::time::sleep(self.backoff.next_delay()).await;
            return true;
        }
        self.backoff.reset();
        tokio::select! {
            r = self.rx.changed() => r.is_ok(),
            _ = tokio::time::sleep(self.period) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn backoff_doubles_up_to_its_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn passes_on_changes_on_the_period_and_after_a_backoff() {
        let (tx, rx) = watch::channel(0);
        let mut t = Trigger::new(rx, Duration::from_secs(10), Backoff::new(Duration::from_millis(500), Duration::from_secs(5)));
        assert_eq!(t.latest(), 0);
        let start = Instant::now();
        // A change wakes at once.
        tx.send(1).expect("receiver alive");
        assert!(t.wait(true).await);
        assert_eq!((start.elapsed(), t.latest()), (Duration::ZERO, 1));
        // Nothing changes: the period.
        assert!(t.wait(true).await);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // Failures: 0.5 s, then 1 s, even though a change arrives meanwhile; a success resets.
        tx.send(2).expect("receiver alive");
        assert!(t.wait(false).await);
        assert!(t.wait(false).await);
        assert_eq!(start.elapsed(), Duration::from_millis(11_500));
        assert!(t.wait(true).await, "the change is still unseen");
        assert_eq!((start.elapsed(), t.latest()), (Duration::from_millis(11_500), 2));
        assert!(t.wait(false).await);
        assert_eq!(start.elapsed(), Duration::from_secs(12));
        // The sender gone: the loop ends.
        drop(tx);
        assert!(!t.wait(true).await);
    }
}
