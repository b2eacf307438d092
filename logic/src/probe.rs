//! Readiness probes (EP-3), the pure part: what a probe does ([`probe_action`]) and when it runs
//! and what its results mean for the container's readiness ([`ProbeTracker`]). The node agent
//! runs the action (`emu_nodeagent::probe::run_probe`) and feeds results back.
//!
//! Time is passed in as milliseconds on any monotonic clock, so the logic is testable without
//! sleeping.

use emu_api::typed::k8s_openapi::api::core::v1::{Container, Probe};
use emu_api::typed::IntOrString;

pub const DEFAULT_PERIOD_SECONDS: u64 = 10;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 1;
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// How soon after a probe of a container that is not ready the next one runs, the first time;
/// each further probe while it stays not ready waits twice as long, up to `periodSeconds`.
pub const NOT_READY_RETRY_MS: u64 = 20;
/// The `User-Agent` kubelet sends with HTTP probes (`kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";

/// What one probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// `GET <scheme>://<host or pod IP>:<port><path>`; success is a status in 200..=399.
    HttpGet { host: Option<String>, port: u16, path: String, scheme: String, headers: Vec<(String, String)> },
    /// A TCP connection to `<host or pod IP>:<port>`; success is being accepted.
    TcpSocket { host: Option<String>, port: u16 },
    /// A command run inside the container; success is exit status 0.
    Exec { command: Vec<String> },
}

/// The action of a probe (`readinessProbe`, or any other probe) of `container`. A named `port`
/// resolves to the container's `ports[]` entry of that name (any protocol, as kubelet does); a
/// name that is not found but is all digits is taken as a number.
pub fn probe_action(probe: &Probe, container: &Container) -> Result<ProbeAction, String> {
    let cname = &container.name;
    let host = |host: &Option<String>| host.as_deref().filter(|h| !h.is_empty()).map(str::to_string);
    if let Some(h) = &probe.http_get {
        let port = resolve_port(&h.port, container).map_err(|e| format!("container {cname:?}: httpGet.port: {e}"))?;
        let path = match h.path.as_deref().unwrap_or("") {
            "" => "/".to_string(),
            p if p.starts_with('/') => p.to_string(),
            p => format!("/{p}"),
        };
        let scheme = h.scheme.as_deref().filter(|s| !s.is_empty()).unwrap_or("HTTP").to_uppercase();
        if scheme != "HTTP" && scheme != "HTTPS" {
            return Err(format!(
                "container {cname:?}: httpGet.scheme: Unsupported value: {scheme:?}: supported values: \"HTTP\", \"HTTPS\""
            ));
        }
        let headers = h.http_headers.iter().flatten().map(|hd| (hd.name.clone(), hd.value.clone())).collect();
        return Ok(ProbeAction::HttpGet { host: host(&h.host), port, path, scheme, headers });
    }
    if let Some(t) = &probe.tcp_socket {
        let port = resolve_port(&t.port, container).map_err(|e| format!("container {cname:?}: tcpSocket.port: {e}"))?;
        return Ok(ProbeAction::TcpSocket { host: host(&t.host), port });
    }
    if let Some(e) = &probe.exec {
        let command = e.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err(format!("container {cname:?}: exec.command: Required value"));
        }
        return Ok(ProbeAction::Exec { command });
    }
    if probe.grpc.is_some() {
        return Err(format!("container {cname:?}: grpc probes are not supported by emu; use httpGet, tcpSocket or exec"));
    }
    Err(format!("container {cname:?}: the probe has no handler: one of httpGet, tcpSocket or exec is required"))
}

/// kubelet's `ResolveContainerPort`: a number, or the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name.as_str()));
            match named {
                Some(p) => i64::from(p.container_port),
                // "Last ditch effort - maybe it was an int stored as string?"
                None => name.parse::<i64>().map_err(|_| format!("port {name:?} not found in the container's ports"))?,
            }
        }
    };
    u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port number: {n}"))
}

/// Readiness state of one container for one run of it (make a new tracker when the container
/// restarts: kubelet starts over, not ready, for a new container).
///
/// The first probe runs `initialDelaySeconds` after the container started, the next ones every
/// `periodSeconds` after the previous one began. The container is not ready until
/// `successThreshold` consecutive successes, and once ready it turns not ready after
/// `failureThreshold` consecutive failures (kubelet's prober worker). A container without a
/// readiness probe is ready as soon as it runs ([`ProbeTracker::without_probe`]).
///
/// While the container is not ready, probes also run off the period, as Kubernetes allows ("While
/// a container is not Ready, the ReadinessProbe may be executed at times other than the
/// configured periodSeconds interval. This is to make the Pod ready faster", `Probe.periodSeconds`
/// in the API reference): [`NOT_READY_RETRY_MS`] after the previous probe, then twice as long
/// each time, until the gap is the period. Without them a server that answers its first probe a
/// few milliseconds too early, as every freshly started one may, waits a whole period: the
/// cluster DNS, probed every second, made `emu up` take 1.2 s instead of 0.2 s in half the runs.
/// kubelet triggers such a probe whenever it computes the status of a pod with a container not
/// ready yet (`prober_manager.go`, `UpdatePodStatus`); emu computes statuses every 100 ms, so a
/// probe per status would run ten probes a second for as long as a container is not ready, and
/// they back off instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTracker {
    has_probe: bool,
    initial_delay_ms: u64,
    period_ms: u64,
    timeout_ms: u64,
    success_threshold: u32,
    failure_threshold: u32,
    started_at_ms: u64,
    last_probe_ms: Option<u64>,
    /// The last result and how many times in a row it came.
    last_result: Option<bool>,
    run: u32,
    ready: bool,
    /// Probes since the container was last ready (or started): how far the off-period probes
    /// have backed off.
    not_ready_probes: u32,
}

impl ProbeTracker {
    /// A tracker for `probe` (a `readinessProbe`) of a container started at `started_at_ms`.
    /// Absent or non-positive fields take Kubernetes' defaults.
    pub fn new(probe: &Probe, started_at_ms: u64) -> ProbeTracker {
        let positive = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0);
        ProbeTracker {
            has_probe: true,
            initial_delay_ms: u64::from(probe.initial_delay_seconds.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)) * 1000,
            period_ms: positive(probe.period_seconds).map_or(DEFAULT_PERIOD_SECONDS, u64::from) * 1000,
            timeout_ms: positive(probe.timeout_seconds).map_or(DEFAULT_TIMEOUT_SECONDS, u64::from) * 1000,
            success_threshold: positive(probe.success_threshold).unwrap_or(DEFAULT_SUCCESS_THRESHOLD),
            failure_threshold: positive(probe.failure_threshold).unwrap_or(DEFAULT_FAILURE_THRESHOLD),
            started_at_ms,
            last_probe_ms: None,
            last_result: None,
            run: 0,
            ready: false,
            not_ready_probes: 0,
        }
    }

    /// A container without a readiness probe: ready from the start, never probed.
    pub fn without_probe(started_at_ms: u64) -> ProbeTracker {
        ProbeTracker { has_probe: false, ready: true, ..ProbeTracker::new(&Probe::default(), started_at_ms) }
    }

    /// The tracker for a container spec: its `readinessProbe` if it has one.
    pub fn for_container(container: &Container, started_at_ms: u64) -> ProbeTracker {
        match &container.readiness_probe {
            Some(probe) => ProbeTracker::new(probe, started_at_ms),
            None => ProbeTracker::without_probe(started_at_ms),
        }
    }

    pub fn has_probe(&self) -> bool {
        self.has_probe
    }

    /// When the next probe should start; `u64::MAX` (never) without a probe.
    pub fn next_due_ms(&self) -> u64 {
        if !self.has_probe {
            return u64::MAX;
        }
        match self.last_probe_ms {
            None => self.started_at_ms.saturating_add(self.initial_delay_ms),
            Some(last) if !self.ready => last.saturating_add(self.not_ready_gap_ms()),
            Some(last) => last.saturating_add(self.period_ms),
        }
    }

    /// The gap after a probe while the container is not ready: [`NOT_READY_RETRY_MS`], doubled
    /// for every earlier probe since it was last ready, at most the period.
    fn not_ready_gap_ms(&self) -> u64 {
        let doublings = self.not_ready_probes.saturating_sub(1).min(32);
        NOT_READY_RETRY_MS.saturating_mul(1 << doublings).min(self.period_ms)
    }

    /// Whether a probe is due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_due_ms()
    }

    /// How long one probe may take; a probe that takes longer failed.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// Records the result of the probe that started at `now_ms` (pass the start time so that
    /// probes keep a fixed period however long each one takes).
    pub fn record(&mut self, success: bool, now_ms: u64) {
        if !self.has_probe {
            return;
        }
        self.last_probe_ms = Some(now_ms);
        if self.last_result == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last_result = Some(success);
            self.run = 1;
        }
        let threshold = if success { self.success_threshold } else { self.failure_threshold };
        if self.run >= threshold {
            self.ready = success;
        }
        self.not_ready_probes = if self.ready { 0 } else { self.not_ready_probes.saturating_add(1) };
    }

    pub fn ready(&self) -> bool {
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emu_api::typed;
    use serde_json::{json, Value};

    fn container() -> Container {
        typed::decode(&json!({"name": "web",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}))
        .unwrap()
    }

    /// A probe written as JSON.
    fn probe(v: Value) -> Probe {
        typed::decode(&v).unwrap()
    }

    #[test]
    fn http_get_defaults_and_named_port() {
        let probe = self::probe(json!({"httpGet": {"port": "http"}}));
        assert_eq!(
            probe_action(&probe, &container()),
            Ok(ProbeAction::HttpGet { host: None, port: 8080, path: "/".into(), scheme: "HTTP".into(), headers: vec![] })
        );
        let probe = self::probe(json!({"httpGet": {"port": 80, "path": "healthz?x=1", "host": "10.0.0.1", "scheme": "HTTPS",
            "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}));
        assert_eq!(
            probe_action(&probe, &container()),
            Ok(ProbeAction::HttpGet {
                host: Some("10.0.0.1".into()),
                port: 80,
                path: "/healthz?x=1".into(),
                scheme: "HTTPS".into(),
                headers: vec![("X-Probe".into(), "1".into())]
            })
        );
    }

    #[test]
    fn tcp_exec_and_errors() {
        // Named ports resolve regardless of protocol; an all-digit name is a number.
        assert_eq!(
            probe_action(&probe(json!({"tcpSocket": {"port": "dns"}})), &container()),
            Ok(ProbeAction::TcpSocket { host: None, port: 53 })
        );
        assert_eq!(
            probe_action(&probe(json!({"tcpSocket": {"port": "9000"}})), &container()),
            Ok(ProbeAction::TcpSocket { host: None, port: 9000 })
        );
        assert_eq!(
            probe_action(&probe(json!({"exec": {"command": ["cat", "/tmp/ready"]}})), &container()),
            Ok(ProbeAction::Exec { command: vec!["cat".into(), "/tmp/ready".into()] })
        );
        let err = probe_action(&probe(json!({"httpGet": {"port": "metrics"}})), &container()).unwrap_err();
        assert_eq!(err, "container \"web\": httpGet.port: port \"metrics\" not found in the container's ports");
        let err = probe_action(&probe(json!({"tcpSocket": {"port": 70000}})), &container()).unwrap_err();
        assert!(err.contains("tcpSocket.port: invalid port number: 70000"), "{err}");
        assert!(probe_action(&probe(json!({"exec": {"command": []}})), &container()).unwrap_err().contains("exec.command: Required value"));
        assert!(probe_action(&probe(json!({"grpc": {"port": 9}})), &container()).unwrap_err().contains("grpc probes are not supported"));
        assert!(probe_action(&probe(json!({"periodSeconds": 1})), &container()).unwrap_err().contains("no handler"));
    }

    #[test]
    fn defaults_schedule() {
        let t = ProbeTracker::new(&probe(json!({"tcpSocket": {"port": 80}})), 5_000);
        assert!(t.has_probe() && !t.ready());
        assert_eq!((t.next_due_ms(), t.timeout_ms()), (5_000, 1_000), "no initial delay, 1 s timeout");
        let mut t = ProbeTracker::new(&probe(json!({"initialDelaySeconds": 3, "periodSeconds": 2, "timeoutSeconds": 5})), 5_000);
        assert_eq!((t.next_due_ms(), t.timeout_ms()), (8_000, 5_000));
        assert!(!t.due(7_999) && t.due(8_000));
        t.record(true, 8_000);
        assert_eq!(t.next_due_ms(), 10_000, "once ready, every period");
        let mut d = ProbeTracker::new(&probe(json!({})), 0);
        d.record(true, 0);
        assert_eq!(d.next_due_ms(), 10_000, "default period 10 s");
    }

    #[test]
    fn thresholds() {
        // Defaults: ready after 1 success; not ready after 3 failures in a row.
        let mut t = ProbeTracker::new(&probe(json!({})), 0);
        t.record(false, 0);
        assert!(!t.ready());
        t.record(true, 10_000);
        assert!(t.ready());
        t.record(false, 20_000);
        t.record(false, 30_000);
        assert!(t.ready(), "two failures are below the threshold");
        t.record(true, 40_000);
        t.record(false, 50_000);
        t.record(false, 60_000);
        assert!(t.ready(), "a success in between resets the count");
        t.record(false, 70_000);
        assert!(!t.ready());

        let mut t = ProbeTracker::new(&probe(json!({"successThreshold": 2, "failureThreshold": 1})), 0);
        t.record(true, 0);
        assert!(!t.ready());
        t.record(true, 1);
        assert!(t.ready());
        t.record(false, 2);
        assert!(!t.ready());
    }

    /// The probe times of a not-ready container, from its first probe at `start` on: failures
    /// until `ready_at_ms` (exclusive), successes from then on, `probes` probes in all.
    fn schedule(spec: Value, start: u64, ready_at_ms: u64, probes: usize) -> (Vec<u64>, ProbeTracker) {
        let mut t = ProbeTracker::new(&probe(spec), start);
        let mut times = vec![];
        for _ in 0..probes {
            let now = t.next_due_ms();
            t.record(now >= ready_at_ms, now);
            times.push(now);
        }
        (times, t)
    }

    #[test]
    fn a_container_not_ready_is_probed_again_before_the_period() {
        // Never ready: 20 ms after the first failure, then twice as long each time, up to the
        // period, and every period from then on.
        let (times, t) = schedule(json!({"periodSeconds": 1}), 0, u64::MAX, 10);
        assert_eq!(times, [0, 20, 60, 140, 300, 620, 1_260, 2_260, 3_260, 4_260]);
        assert!(!t.ready());
        let (times, _) = schedule(json!({}), 0, u64::MAX, 12);
        assert_eq!(&times[9..], [10_220, 20_220, 30_220], "the default period caps the gap at 10 s");

        // Ready: every period, and again quicker once it has turned not ready.
        let mut t = ProbeTracker::new(&probe(json!({"periodSeconds": 1})), 0);
        t.record(true, 0);
        assert_eq!(t.next_due_ms(), 1_000);
        t.record(false, 1_000);
        t.record(false, 2_000);
        assert_eq!(t.next_due_ms(), 3_000, "still ready: below the failure threshold");
        t.record(false, 3_000);
        assert!(!t.ready());
        assert_eq!(t.next_due_ms(), 3_020);
    }

    #[test]
    fn a_server_that_answers_just_after_its_first_probe_is_ready_at_once() {
        // The cluster DNS answers its /ready 503 until it has synced with the API, tens of
        // milliseconds after it started; a probe that came earlier must not cost a period.
        let (times, t) = schedule(json!({"httpGet": {"port": 8181, "path": "/ready"}, "periodSeconds": 1}), 0, 45, 4);
        assert_eq!(times, [0, 20, 60, 1_060]);
        assert!(t.ready(), "ready at the probe 15 ms after the server was, not a period later");
        // successThreshold counts the off-period probes too.
        let (times, t) = schedule(json!({"periodSeconds": 10, "successThreshold": 2}), 0, 1, 3);
        assert_eq!(times, [0, 20, 60]);
        assert!(t.ready());
    }

    #[test]
    fn no_probe_is_ready_at_once() {
        let mut t = ProbeTracker::without_probe(7);
        assert!(t.ready() && !t.has_probe());
        assert_eq!(t.next_due_ms(), u64::MAX);
        t.record(false, 8);
        assert!(t.ready());
        assert!(ProbeTracker::for_container(&container(), 0).ready());
        let mut with = container();
        with.readiness_probe = Some(probe(json!({"httpGet": {"port": "http"}})));
        assert!(!ProbeTracker::for_container(&with, 0).ready());
    }
}
