//! Link impairments in user space: delay, jitter (with correlation), loss (random, or in bursts
//! through correlation), duplication, corruption, reordering and a rate limit, for the packets
//! that `mangle` rules (the node's, or a pod's for a pod's link) send to an NFQUEUE (one queue per
//! link and direction, planned by `emu_dataplane::faults::fault_plan`).
//!
//! Why not `tc netem`: the kernels emu runs on here are built without `sch_netem` (and without
//! `fq`/`etf`, which could hold packets until a time), so a qdisc cannot delay a packet. A queued
//! packet is held here until its time, then accepted: the same effect, for the packets of an
//! emulated link.
//!
//! A duplicate is a copy of the packet sent again through a raw socket of the node, right after
//! the original is released, carrying [`COPY_MARK`] so that the queue rules let it pass. It
//! must leave the node as the original does, translated alike:
//! - A packet *arriving* on a link has not been translated yet (its hook runs before NAT): its
//!   copy goes through conntrack as the original does and gets the same translation.
//! - A packet *leaving* has had part of its translation: the destination of a request to a
//!   Service, the destination of a reply to a masqueraded client; the source of either may
//!   still be rewritten after the hook. The queue rules mark what conntrack knows of the packet
//!   ([`REPLY_BIT`], [`DNAT_BIT`], [`SNAT_BIT`]); a copy whose translation so far is none goes
//!   through conntrack (which translates it in full), one whose translation is complete is sent
//!   untracked ([`UNTRACKED_MARK`], the node's `raw` table), and the rare packet that is
//!   neither (a Service request the node also masquerades) is not duplicated.
//!
//! The fault reconciler sets the queues through the narrow [`QueueSetter`] trait: the
//! [`LinkEmulator`], or the recording [`FakeQueues`] in unit tests.

use emu_api::fault::Netem;
use emu_dataplane::faults::{Queue, COPY_MARK, DNAT_BIT, REPLY_BIT, SNAT_BIT, UNTRACKED_MARK};
// Emu's service rules mark the first packet of a connection the node will masquerade (it has no
// SNAT state yet when it leaves through the hook).
use emu_dataplane::proxy::MASQUERADE_MARK;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The link emulator as the fault reconciler uses it: what each queue does, and which queues
/// are bound (until a queue is bound, its rules let packets pass unimpaired: `--queue-bypass`).
pub trait QueueSetter: Send + Sync {
    /// The impairment of each queue now (by number; a queue's `netns` is the namespace whose
    /// rules queue its packets: None for the node's, a pod's name for a pod's link); queues not
    /// listed pass their packets at once. Returns the generation to ask [`QueueSetter::bound`]
    /// about.
    fn set(&self, queues: BTreeMap<u16, Queue>) -> u64;

    /// The queues bound once the emulator has taken up `generation` of the settings (None: not
    /// yet).
    fn bound(&self, generation: u64) -> Option<BTreeSet<u16>>;
}

/// The impairments per queue number, shared with the thread that applies them.
#[derive(Clone, Default)]
pub struct LinkEmulator {
    config: Arc<Mutex<BTreeMap<u16, Queue>>>,
    /// Bumped by every [`LinkEmulator::set`], so the thread re-reads the map only after a change.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// The generation the thread has bound its queues for, and the queues bound then: until a
    /// queue is bound, its rules let packets pass unimpaired (`--queue-bypass`).
    synced: Arc<Mutex<(u64, BTreeSet<u16>)>>,
    /// The thread, woken by a change.
    thread: Option<std::thread::Thread>,
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
        let mut emu = LinkEmulator::default();
        let (config, generation, synced) = (emu.config.clone(), emu.generation.clone(), emu.synced.clone());
        let handle = std::thread::Builder::new()
            .name("link-emulator".into())
            .spawn(move || {
                if let Err(e) = run(&config, &generation, &synced) {
                    tracing::error!(error = %e, "the link emulator stopped; impaired links pass packets unchanged");
                }
            })
            .expect("spawning the link emulator thread");
        emu.thread = Some(handle.thread().clone());
        emu
    }
}

impl QueueSetter for LinkEmulator {
    fn set(&self, queues: BTreeMap<u16, Queue>) -> u64 {
        let Ok(mut c) = self.config.lock() else { return 0 };
        if *c != queues {
            *c = queues;
            self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
            if let Some(t) = &self.thread {
                t.unpark();
            }
        }
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bound(&self, generation: u64) -> Option<BTreeSet<u16>> {
        let synced = self.synced.lock().ok()?;
        (synced.0 >= generation).then(|| synced.1.clone())
    }
}

/// Records the queue settings instead of binding queues: every setting is bound at once, except
/// the next `n` after [`FakeQueues::fail_next`], which bind nothing (as the emulator does when a
/// namespace's sockets cannot be opened).
#[derive(Debug, Default)]
pub struct FakeQueues {
    sets: crate::fake::Recorder<BTreeMap<u16, Queue>>,
    state: Mutex<FakeQueuesState>,
}

#[derive(Debug, Default)]
struct FakeQueuesState {
    generation: u64,
    bound: BTreeMap<u64, BTreeSet<u16>>,
}

impl FakeQueues {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` settings bind no queue (and are not recorded).
    pub fn fail_next(&self, n: usize) {
        self.sets.fail_next(n);
    }

    /// The settings made, oldest first.
    pub fn sets(&self) -> Vec<BTreeMap<u16, Queue>> {
        self.sets.calls()
    }

    /// The queues now (the last setting made, bound or not).
    pub fn current(&self) -> BTreeMap<u16, Queue> {
        self.sets.calls().pop().unwrap_or_default()
    }
}

impl QueueSetter for FakeQueues {
    fn set(&self, queues: BTreeMap<u16, Queue>) -> u64 {
        let keys: BTreeSet<u16> = queues.keys().copied().collect();
        let bound = self.sets.attempt(Some(queues)).map_or_else(|_| BTreeSet::new(), |()| keys);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.generation += 1;
        let generation = state.generation;
        state.bound.insert(generation, bound);
        generation
    }

    fn bound(&self, generation: u64) -> Option<BTreeSet<u16>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).bound.get(&generation).cloned()
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

/// The queues of one network namespace (the node's, or a pod's for a pod's link).
struct Link {
    queue: nfq::Queue,
    copies: Copies,
    bound: BTreeSet<u16>,
}

impl Link {
    /// Opens the queue socket and the raw sockets in the namespace named `netns` (None: the
    /// node's, this thread's).
    fn open(netns: Option<&String>) -> std::io::Result<Link> {
        let open = || -> std::io::Result<Link> {
            let mut queue = nfq::Queue::open()?;
            queue.set_nonblocking(true);
            Ok(Link { queue, copies: Copies::open()?, bound: BTreeSet::new() })
        };
        let Some(path) = netns else { return open() };
        // A socket belongs to the namespace it was opened in: open these on a thread of their
        // own that enters the pod's (this thread keeps the node's).
        let path = crate::net::netns_path(path);
        std::thread::spawn(move || {
            crate::net::enter_netns(&path)?;
            open()
        })
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    }
}

/// A packet held until its time, with the mark of its copy if it is to be duplicated.
struct Held {
    netns: Option<String>,
    msg: nfq::Message,
    copy: Option<u32>,
}

fn run(
    config: &Mutex<BTreeMap<u16, Queue>>,
    generation: &std::sync::atomic::AtomicU64,
    synced: &Mutex<(u64, BTreeSet<u16>)>,
) -> std::io::Result<()> {
    let mut links: BTreeMap<Option<String>, Link> = BTreeMap::new();
    links.insert(None, Link::open(None)?);
    let mut states: HashMap<u16, QueueState> = HashMap::new();
    let mut held: HashMap<u64, Held> = HashMap::new();
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let (mut wanted, mut seen): (BTreeMap<u16, Queue>, _) = (BTreeMap::new(), None);
    loop {
        let current = generation.load(std::sync::atomic::Ordering::Acquire);
        if seen != Some(current) {
            wanted = config.lock().map(|c| c.clone()).unwrap_or_default();
            seen = Some(current);
            sync_links(&mut links, &wanted, &mut held, &mut states);
            if let Ok(mut s) = synced.lock() {
                *s = (current, links.values().flat_map(|l| l.bound.iter().copied()).collect());
            }
        }
        // Everything queued now.
        for (netns, link) in links.iter_mut() {
            loop {
                let mut msg = match link.queue.recv() {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => break,
                    Err(e) => return Err(e),
                };
                let now = Instant::now();
                let Some(Queue { netem, leaving, .. }) = wanted.get(&msg.get_queue_num()) else {
                    msg.set_verdict(nfq::Verdict::Accept);
                    verdict(&mut link.queue, msg);
                    continue;
                };
                let state = states.entry(msg.get_queue_num()).or_default();
                let Some((at, copy)) = impair(netem, *leaving, state, &mut msg, now) else {
                    msg.set_verdict(nfq::Verdict::Drop);
                    verdict(&mut link.queue, msg);
                    continue;
                };
                if at <= now {
                    release(link, msg, copy);
                } else {
                    seq += 1;
                    held.insert(seq, Held { netns: netns.clone(), msg, copy });
                    due.push(Reverse((at, seq)));
                }
            }
        }
        // Release what is due.
        let now = Instant::now();
        while let Some(Reverse((at, id))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(h) = held.remove(&id) {
                if let Some(link) = links.get_mut(&h.netns) {
                    release(link, h.msg, h.copy);
                }
            }
        }
        let idle = if wanted.is_empty() { Duration::from_millis(50) } else { Duration::from_micros(500) };
        let sleep = due.peek().map_or(idle, |Reverse((at, _))| at.saturating_duration_since(Instant::now()).min(idle));
        // Woken early by a change of the settings (LinkEmulator::set).
        std::thread::park_timeout(sleep);
    }
}

/// Binds the queues wanted (opening the sockets of a pod's namespace when first needed) and
/// unbinds the others; the sockets of a namespace no longer impaired are closed, after letting
/// go what they held.
fn sync_links(
    links: &mut BTreeMap<Option<String>, Link>,
    wanted: &BTreeMap<u16, Queue>,
    held: &mut HashMap<u64, Held>,
    states: &mut HashMap<u16, QueueState>,
) {
    for (q, cfg) in wanted {
        if !links.contains_key(&cfg.netns) {
            match Link::open(cfg.netns.as_ref()) {
                Ok(link) => {
                    links.insert(cfg.netns.clone(), link);
                }
                Err(e) => {
                    tracing::warn!(queue = q, error = %e, "opening a link queue failed");
                    continue;
                }
            }
        }
        let link = links.get_mut(&cfg.netns).expect("opened above");
        if link.bound.contains(q) {
            continue;
        }
        let setup = (|| {
            link.queue.bind(*q)?;
            link.queue.set_copy_range(*q, 0xffff)?;
            link.queue.set_queue_max_len(*q, 16384)?;
            link.queue.set_fail_open(*q, true)
        })();
        match setup {
            Ok(()) => {
                link.bound.insert(*q);
            }
            Err(e) => tracing::warn!(queue = q, error = %e, "binding a link queue failed"),
        }
    }
    for (netns, link) in links.iter_mut() {
        for q in link.bound.iter().filter(|q| wanted.get(q).is_none_or(|c| c.netns != *netns)).copied().collect::<Vec<_>>() {
            let _ = link.queue.unbind(q);
            link.bound.remove(&q);
            states.remove(&q);
        }
    }
    let unused: Vec<Option<String>> = links.iter().filter(|(n, l)| n.is_some() && l.bound.is_empty()).map(|(n, _)| n.clone()).collect();
    for netns in unused {
        let mut link = links.remove(&netns).expect("listed above");
        for id in held.iter().filter(|(_, h)| h.netns == netns).map(|(id, _)| *id).collect::<Vec<_>>() {
            let h = held.remove(&id).expect("listed above");
            release(&mut link, h.msg, h.copy);
        }
    }
}

/// What the link does to a packet: None when it is lost, else when it leaves and the mark of its
/// copy if it is duplicated (corruption is done on `msg`).
fn impair(netem: &Netem, leaving: bool, state: &mut QueueState, msg: &mut nfq::Message, now: Instant) -> Option<(Instant, Option<u32>)> {
    if let Some(loss) = netem.loss {
        let lost = chance(loss, netem.loss_correlation, state.last_lost);
        state.last_lost = lost;
        if lost {
            return None;
        }
    }
    if netem.corrupt.is_some_and(|c| uniform() < c / 100.0) {
        corrupt(msg);
    }
    let copy = netem.duplicate.filter(|d| uniform() < d / 100.0).and_then(|_| copy_mark(leaving, msg.get_nfmark()));
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
    Some((at, copy))
}

/// The mark of the duplicate of a packet leaving (or arriving) with mark `packet_mark`, or None
/// when it cannot be copied faithfully (see the module's comment).
fn copy_mark(leaving: bool, packet_mark: u32) -> Option<u32> {
    if !leaving {
        return Some(COPY_MARK);
    }
    let reply = packet_mark & REPLY_BIT != 0;
    let dnat = packet_mark & DNAT_BIT != 0;
    let snat = packet_mark & (SNAT_BIT | MASQUERADE_MARK) != 0;
    // Translated so far: a request's destination when DNATed, a reply's when SNATed.
    let translated = if reply { snat } else { dnat };
    // Still to translate: a request's source when SNATed, a reply's when DNATed.
    let pending = if reply { dnat } else { snat };
    match (translated, pending) {
        (false, _) => Some(COPY_MARK),
        (true, false) => Some(COPY_MARK | UNTRACKED_MARK),
        (true, true) => None,
    }
}

/// Lets a packet go on, then sends its copy if it has one (after, so that the original's
/// connection is confirmed before the copy meets conntrack).
fn release(link: &mut Link, mut msg: nfq::Message, copy: Option<u32>) {
    let packet = copy.map(|_| msg.get_payload().to_vec());
    msg.set_verdict(nfq::Verdict::Accept);
    verdict(&mut link.queue, msg);
    if let (Some(mark), Some(packet)) = (copy, packet) {
        if let Err(e) = link.copies.send(&packet, mark) {
            tracing::debug!(error = %e, "sending a duplicate failed");
        }
    }
}

/// Raw IPv4 sockets of the node sending duplicates as they are (IP header included), one per
/// mark.
struct Copies {
    tracked: std::os::fd::OwnedFd,
    untracked: std::os::fd::OwnedFd,
}

impl Copies {
    fn open() -> std::io::Result<Copies> {
        use nix::sys::socket::{setsockopt, socket, sockopt, AddressFamily, SockFlag, SockProtocol, SockType};
        let open = |mark: u32| -> std::io::Result<std::os::fd::OwnedFd> {
            let fd = socket(AddressFamily::Inet, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::Raw)?;
            setsockopt(&fd, sockopt::Mark, &mark)?;
            Ok(fd)
        };
        Ok(Copies { tracked: open(COPY_MARK)?, untracked: open(COPY_MARK | UNTRACKED_MARK)? })
    }

    /// Sends `packet` (an IPv4 packet) to its destination.
    fn send(&self, packet: &[u8], mark: u32) -> std::io::Result<()> {
        use nix::sys::socket::{sendto, MsgFlags, SockaddrIn};
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return Ok(());
        }
        let dst = SockaddrIn::new(packet[16], packet[17], packet[18], packet[19], 0);
        let fd = if mark & UNTRACKED_MARK != 0 { &self.untracked } else { &self.tracked };
        sendto(std::os::fd::AsRawFd::as_raw_fd(fd), packet, &dst, MsgFlags::empty())?;
        Ok(())
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
    fn duplicates_are_translated_as_their_originals() {
        // Arriving: always through conntrack.
        assert_eq!(copy_mark(false, DNAT_BIT | SNAT_BIT), Some(COPY_MARK));
        // Leaving, nothing translated yet (pod to pod, or a reply to a Service client whose
        // source is still to be put back): through conntrack.
        assert_eq!(copy_mark(true, 0), Some(COPY_MARK));
        assert_eq!(copy_mark(true, REPLY_BIT | DNAT_BIT), Some(COPY_MARK));
        // A Service request (destination translated), a reply to a masqueraded client
        // (destination put back): as it is, untracked.
        assert_eq!(copy_mark(true, DNAT_BIT), Some(COPY_MARK | UNTRACKED_MARK));
        assert_eq!(copy_mark(true, REPLY_BIT | SNAT_BIT), Some(COPY_MARK | UNTRACKED_MARK));
        // A Service request the node masquerades (first packet or later): not copied.
        assert_eq!(copy_mark(true, DNAT_BIT | MASQUERADE_MARK), None);
        assert_eq!(copy_mark(true, DNAT_BIT | SNAT_BIT), None);
        assert_eq!(copy_mark(true, REPLY_BIT | SNAT_BIT | DNAT_BIT), None);
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
