//! What every recording fake of this crate shares: the calls it was asked to make, in order, and
//! failures on demand. The fakes live beside their real implementations (e.g.
//! [`crate::nft::FakeNft`] beside [`crate::nft::RealNft`]) and are always compiled, so that the
//! daemons' unit tests can pass them to the loops instead of the real ones.

use std::sync::{Mutex, MutexGuard};

/// The calls a fake made, and how many of the next ones are to fail.
#[derive(Debug)]
pub struct Recorder<C> {
    state: Mutex<State<C>>,
}

#[derive(Debug)]
struct State<C> {
    calls: Vec<C>,
    attempts: usize,
    fail_next: usize,
}

impl<C> Default for Recorder<C> {
    fn default() -> Self {
        Recorder { state: Mutex::new(State { calls: Vec::new(), attempts: 0, fail_next: 0 }) }
    }
}

impl<C: Clone> Recorder<C> {
    /// The next `n` attempts fail.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    /// Counts an attempt: `Err(its number)` (counted from 1) when it is to fail, else `Ok` with
    /// `call` recorded (when there is one: reads are attempts that record nothing).
    pub fn attempt(&self, call: Option<C>) -> Result<(), usize> {
        let mut state = self.lock();
        state.attempts += 1;
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(state.attempts);
        }
        state.calls.extend(call);
        Ok(())
    }

    /// The calls made successfully, oldest first.
    pub fn calls(&self) -> Vec<C> {
        self.lock().calls.clone()
    }

    /// The calls made successfully since the last `take`, oldest first.
    pub fn take(&self) -> Vec<C> {
        std::mem::take(&mut self.lock().calls)
    }

    /// How many calls were attempted, failed ones included.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A test that panicked while holding the lock left consistent data (plain pushes).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_successes_and_fails_on_demand() {
        let r = Recorder::default();
        assert_eq!(r.attempt(Some("a")), Ok(()));
        r.fail_next(2);
        assert_eq!(r.attempt(Some("b")), Err(2));
        assert_eq!(r.attempt(None), Err(3));
        assert_eq!(r.attempt(None), Ok(()));
        assert_eq!(r.attempt(Some("c")), Ok(()));
        assert_eq!(r.calls(), ["a", "c"]);
        assert_eq!(r.attempts(), 5);
        assert_eq!(r.take(), ["a", "c"]);
        assert!(r.calls().is_empty());
    }
}
