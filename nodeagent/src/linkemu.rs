//! Link impairments in user space: delay, jitter (with correlation), loss (random, or in bursts
//! through correlation), corruption, reordering and a rate limit, for the packets that the
//! node's `mangle` rules send to an NFQUEUE (one queue per link and direction, see
//! [`crate::faults`]).
//!
//! Why not `tc netem`: the kernels emu runs on here are built without `sch_netem` (and without
//! `fq`/`etf`, which could hold packets until a time), so a qdisc cannot delay a packet. A queued
//! packet is held here until its time, then accepted: the same effect, for the packets of an
//! emulated link. Duplication would need re-injecting a copy, which NFQUEUE cannot do; it is
//! refused by `emu fault` with that reason.

use emu_core::faults::Netem;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The impairments per queue number, shared with the thread that applies them.
#[derive(Clone, Default)]
pub struct LinkEmulator {
    config: Arc<Mutex<BTreeMap<u16, Netem>>>,
    /// Bumped by every [`LinkEmulator::set`], so the thread re-reads the map only after a change.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

/// What one queue remembers between packets.
#[derive(Default)]
struct QueueState {
    /// The last delay's random part in [-1, 1], for correlated jitter.
    last_jitter: f64,
    /// Whether the last packet was lost, for correlated (burst) loss.
    last_lost: bool,
    /// When the link is free again under the rate limit.
    busy_until: Option<Instant>,
    /// When the last packet leaves, so that without jitter packets keep their order.
    last_due: Option<Instant>,
}

impl LinkEmulator {
    /// Starts the thread (in the calling process's network namespace: the node's).
    pub fn start() -> LinkEmulator {
        let emu = LinkEmulator::default();
        let (config, generation) = (emu.config.clone(), emu.generation.clone());
        std::thread::Builder::new()
            .name("link-emulator".into())
            .spawn(move || {
                if let Err(e) = run(&config, &generation) {
                    tracing::error!(error = %e, "the link emulator stopped; impaired links pass packets unchanged");
                }
            })
            .expect("spawning the link emulator thread");
        emu
    }

    /// The impairment of each queue now; queues not listed pass their packets at once.
    pub fn set(&self, queues: BTreeMap<u16, Netem>) {
        if let Ok(mut c) = self.config.lock() {
            if *c != queues {
                *c = queues;
                self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
            }
        }
    }
}

/// A uniform random number in [0, 1).
fn uniform() -> f64 {
    rand::random::<f64>()
}

/// `percent` happens, given whether it happened last time and the correlation.
fn chance(percent: f64, correlation: Option<f64>, last: bool) -> bool {
    let p = percent / 100.0;
    match correlation {
        // Stay in the last state with the correlation's probability, else draw afresh: the
        // average stays `percent`, losses come in bursts.
        Some(c) if uniform() < c / 100.0 => last,
        _ => uniform() < p,
    }
}

fn run(config: &Mutex<BTreeMap<u16, Netem>>, generation: &std::sync::atomic::AtomicU64) -> std::io::Result<()> {
    let mut queue = nfq::Queue::open()?;
    queue.set_nonblocking(true);
    let mut bound: BTreeSet<u16> = BTreeSet::new();
    let mut states: HashMap<u16, QueueState> = HashMap::new();
    let mut held: HashMap<u64, nfq::Message> = HashMap::new();
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let (mut wanted, mut seen) = (BTreeMap::new(), None);
    loop {
        let current = generation.load(std::sync::atomic::Ordering::Acquire);
        if seen != Some(current) {
            wanted = config.lock().map(|c| c.clone()).unwrap_or_default();
            seen = Some(current);
        }
        let new: Vec<u16> = wanted.keys().filter(|q| !bound.contains(q)).copied().collect();
        for q in &new {
            let setup = (|| {
                queue.bind(*q)?;
                queue.set_copy_range(*q, 0xffff)?;
                queue.set_queue_max_len(*q, 16384)?;
                queue.set_fail_open(*q, true)
            })();
            match setup {
                Ok(()) => {
                    bound.insert(*q);
                }
                Err(e) => tracing::warn!(queue = q, error = %e, "binding a link queue failed"),
            }
        }
        for q in bound.iter().filter(|q| !wanted.contains_key(q)).copied().collect::<Vec<_>>() {
            let _ = queue.unbind(q);
            bound.remove(&q);
            states.remove(&q);
        }
        // Everything queued now.
        loop {
            let mut msg = match queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => break,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            let Some(netem) = wanted.get(&msg.get_queue_num()) else {
                msg.set_verdict(nfq::Verdict::Accept);
                verdict(&mut queue, msg);
                continue;
            };
            let state = states.entry(msg.get_queue_num()).or_default();
            if let Some(loss) = netem.loss {
                let lost = chance(loss, netem.loss_correlation, state.last_lost);
                state.last_lost = lost;
                if lost {
                    msg.set_verdict(nfq::Verdict::Drop);
                    verdict(&mut queue, msg);
                    continue;
                }
            }
            if netem.corrupt.is_some_and(|c| uniform() < c / 100.0) {
                corrupt(&mut msg);
            }
            let mut at = now;
            if let Some(d) = netem.delay_ms {
                let reordered = netem.reorder.is_some_and(|r| uniform() < r / 100.0);
                if !reordered {
                    let mut jitter = 0.0;
                    if let Some(j) = netem.jitter_ms {
                        let fresh = 2.0 * uniform() - 1.0;
                        let c = netem.delay_correlation.unwrap_or(0.0) / 100.0;
                        state.last_jitter = c * state.last_jitter + (1.0 - c) * fresh;
                        jitter = j * state.last_jitter;
                    }
                    at = now + Duration::from_secs_f64(((d + jitter).max(0.0)) / 1000.0);
                    // Without jitter a link keeps its order, as netem's tfifo does.
                    if netem.jitter_ms.is_none() {
                        at = at.max(state.last_due.unwrap_or(at));
                    }
                }
            }
            if let Some(rate) = netem.rate.as_deref().and_then(rate_bits_per_second) {
                let bits = (msg.get_original_len() as f64) * 8.0;
                let start = state.busy_until.map_or(now, |b| b.max(now));
                let done = start + Duration::from_secs_f64(bits / rate);
                state.busy_until = Some(done);
                at = at.max(done);
            }
            state.last_due = Some(at);
            if at <= now {
                msg.set_verdict(nfq::Verdict::Accept);
                verdict(&mut queue, msg);
            } else {
                seq += 1;
                held.insert(seq, msg);
                due.push(Reverse((at, seq)));
            }
        }
        // Release what is due.
        let now = Instant::now();
        while let Some(Reverse((at, id))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(mut msg) = held.remove(&id) {
                msg.set_verdict(nfq::Verdict::Accept);
                verdict(&mut queue, msg);
            }
        }
        let idle = if bound.is_empty() { Duration::from_millis(50) } else { Duration::from_micros(500) };
        let sleep = due.peek().map_or(idle, |Reverse((at, _))| at.saturating_duration_since(Instant::now()).min(idle));
        std::thread::sleep(sleep);
    }
}

/// Sends a verdict; a queue unbound meanwhile (its fault cleared) refuses it, which is fine: the
/// kernel let its packets pass when it was unbound.
fn verdict(queue: &mut nfq::Queue, msg: nfq::Message) {
    if let Err(e) = queue.verdict(msg) {
        tracing::debug!(error = %e, "verdict refused");
    }
}

/// Flips one bit of the transport payload (not the IP header, so the packet is still routed and
/// its checksum at the receiver fails, as with netem's corrupt).
fn corrupt(msg: &mut nfq::Message) {
    let mut payload = msg.get_payload().to_vec();
    let header = payload.first().map_or(20, |b| usize::from(b & 0x0f) * 4);
    if payload.len() > header {
        let at = header + (uniform() * (payload.len() - header) as f64) as usize;
        let at = at.min(payload.len() - 1);
        payload[at] ^= 1 << (uniform() * 8.0) as u8;
        msg.set_payload(payload);
    }
}

/// A tc rate (`1mbit`, `500kbit`, `100kbps`) in bits per second.
fn rate_bits_per_second(rate: &str) -> Option<f64> {
    let units = [("gbps", 8e9), ("mbps", 8e6), ("kbps", 8e3), ("bps", 8.0), ("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)];
    let (unit, scale) = units.iter().find(|(u, _)| rate.ends_with(u))?;
    rate[..rate.len() - unit.len()].parse::<f64>().ok().filter(|v| *v > 0.0).map(|v| v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_tc_spells_them() {
        assert_eq!(rate_bits_per_second("1mbit"), Some(1e6));
        assert_eq!(rate_bits_per_second("500kbit"), Some(5e5));
        assert_eq!(rate_bits_per_second("100kbps"), Some(8e5));
        assert_eq!(rate_bits_per_second("fast"), None);
    }

    #[test]
    fn correlated_loss_keeps_its_average_and_comes_in_bursts() {
        let (mut last, mut lost, mut runs) = (false, 0, 0);
        for _ in 0..100_000 {
            let now = chance(20.0, Some(75.0), last);
            if now {
                lost += 1;
                if !last {
                    runs += 1;
                }
            }
            last = now;
        }
        let share = lost as f64 / 100_000.0;
        assert!((0.17..0.23).contains(&share), "{share}");
        // Independent losses at 20% give about 16,000 runs; correlated ones far fewer, longer.
        assert!(runs < 8_000, "{runs}");
    }
}
