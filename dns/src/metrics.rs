//! Prometheus metrics with CoreDNS's names and labels, so that dashboards and queries written for
//! CoreDNS's `prometheus` plugin work: `coredns_dns_requests_total`, `coredns_dns_responses_total`
//! and the `coredns_dns_request_duration_seconds` histogram. Counters are atomics indexed by
//! label values (no locks on the query path); [`Metrics::render`] writes the text format.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Query types with their own label value; others count as `other` (CoreDNS does the same with
/// its list of monitored types).
const TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::HTTPS,
    RecordType::MX,
    RecordType::NS,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::SRV,
    RecordType::SVCB,
    RecordType::TXT,
    RecordType::ANY,
];
const TYPE_SLOTS: usize = TYPES.len() + 1;

const RCODES: [ResponseCode; 6] = [
    ResponseCode::NoError,
    ResponseCode::FormErr,
    ResponseCode::ServFail,
    ResponseCode::NXDomain,
    ResponseCode::NotImp,
    ResponseCode::Refused,
];
const RCODE_LABELS: [&str; 7] = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other"];
const RCODE_SLOTS: usize = RCODE_LABELS.len();

/// CoreDNS's duration buckets: 0.25 ms doubling 16 times (up to 8.192 s).
const BUCKET_COUNT: usize = 16;
const FIRST_BUCKET_SECONDS: f64 = 0.00025;

/// The transport a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Everything one answered request contributes to the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    pub transport: Transport,
    pub ipv6_client: bool,
    /// `None` when the request had no (single) question.
    pub qtype: Option<RecordType>,
    pub rcode: ResponseCode,
    /// Answered by the cluster zones (`plugin="kubernetes"`) rather than refused or failed
    /// before a zone was chosen.
    pub in_cluster_zone: bool,
    pub elapsed: Duration,
}

#[derive(Default)]
struct Histogram {
    /// Per bucket, not cumulative (rendered cumulatively).
    buckets: [AtomicU64; BUCKET_COUNT],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = bucket_bounds().position(|bound| seconds <= bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

fn bucket_bounds() -> impl Iterator<Item = f64> {
    (0..BUCKET_COUNT).map(|i| FIRST_BUCKET_SECONDS * f64::from(1u32 << i))
}

/// The server's counters. Shared by every request task.
pub struct Metrics {
    /// `server` label: `dns://<listen address>`, as CoreDNS names its server blocks.
    server: String,
    /// [transport][family][type]
    requests: [[[AtomicU64; TYPE_SLOTS]; 2]; 2],
    /// [in cluster zone][rcode]
    responses: [[AtomicU64; RCODE_SLOTS]; 2],
    durations: [Histogram; TYPE_SLOTS],
}

impl Metrics {
    pub fn new(server: String) -> Self {
        Self { server, requests: Default::default(), responses: Default::default(), durations: Default::default() }
    }

    pub fn record(&self, o: &Observation) {
        let type_slot = type_slot(o.qtype);
        let transport = usize::from(o.transport == Transport::Tcp);
        self.requests[transport][usize::from(o.ipv6_client)][type_slot].fetch_add(1, Ordering::Relaxed);
        self.responses[usize::from(o.in_cluster_zone)][rcode_slot(o.rcode)].fetch_add(1, Ordering::Relaxed);
        self.durations[type_slot].observe(o.elapsed);
    }

    /// The Prometheus text exposition format (version 0.0.4). Series that never counted are
    /// left out, as CoreDNS's client library does. `extra` is appended (gauges of the caller).
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::new();
        let base = format!("server=\"{}\",zone=\".\",view=\"\"", self.server);
        self.render_requests(&mut out, &base);
        self.render_responses(&mut out, &base);
        self.render_durations(&mut out, &base);
        out.push_str(extra);
        out
    }

    fn render_requests(&self, out: &mut String, base: &str) {
        out.push_str("# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.\n");
        out.push_str("# TYPE coredns_dns_requests_total counter\n");
        for (transport, by_family) in ["udp", "tcp"].iter().zip(&self.requests) {
            for (family, by_type) in ["1", "2"].iter().zip(by_family) {
                for (slot, counter) in by_type.iter().enumerate() {
                    let n = counter.load(Ordering::Relaxed);
                    if n > 0 {
                        let qtype = type_label(slot);
                        let _ = writeln!(
                            out,
                            "coredns_dns_requests_total{{{base},proto=\"{transport}\",family=\"{family}\",type=\"{qtype}\"}} {n}"
                        );
                    }
                }
            }
        }
    }

    fn render_responses(&self, out: &mut String, base: &str) {
        out.push_str("# HELP coredns_dns_responses_total Counter of response status codes.\n");
        out.push_str("# TYPE coredns_dns_responses_total counter\n");
        for (plugin, by_rcode) in ["", "kubernetes"].iter().zip(&self.responses) {
            for (rcode, counter) in RCODE_LABELS.iter().zip(by_rcode) {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "coredns_dns_responses_total{{{base},rcode=\"{rcode}\",plugin=\"{plugin}\"}} {n}");
                }
            }
        }
    }

    fn render_durations(&self, out: &mut String, base: &str) {
        out.push_str("# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request took per zone.\n");
        out.push_str("# TYPE coredns_dns_request_duration_seconds histogram\n");
        for (slot, histogram) in self.durations.iter().enumerate() {
            let count = histogram.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let labels = format!("{base},type=\"{}\"", type_label(slot));
            let mut cumulative = 0;
            for (bound, bucket) in bucket_bounds().zip(&histogram.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(out, "coredns_dns_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "coredns_dns_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "coredns_dns_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "coredns_dns_request_duration_seconds_count{{{labels}}} {count}");
        }
    }
}

fn type_slot(qtype: Option<RecordType>) -> usize {
    qtype.and_then(|t| TYPES.iter().position(|known| *known == t)).unwrap_or(TYPES.len())
}

fn type_label(slot: usize) -> String {
    TYPES.get(slot).map_or_else(|| "other".to_string(), |t| t.to_string())
}

fn rcode_slot(rcode: ResponseCode) -> usize {
    RCODES.iter().position(|known| *known == rcode).unwrap_or(RCODES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(qtype: RecordType, rcode: ResponseCode, micros: u64) -> Observation {
        Observation {
            transport: Transport::Udp,
            ipv6_client: false,
            qtype: Some(qtype),
            rcode,
            in_cluster_zone: true,
            elapsed: Duration::from_micros(micros),
        }
    }

    #[test]
    fn counts_by_type_and_rcode_with_coredns_names() {
        let metrics = Metrics::new("dns://:53".into());
        metrics.record(&observation(RecordType::A, ResponseCode::NoError, 100));
        metrics.record(&observation(RecordType::A, ResponseCode::NXDomain, 300));
        let outside = observation(RecordType::NULL, ResponseCode::NXDomain, 100);
        metrics.record(&Observation { transport: Transport::Tcp, in_cluster_zone: false, ..outside });
        let text = metrics.render("");
        let base = "server=\"dns://:53\",zone=\".\",view=\"\"";
        for line in [
            format!("coredns_dns_requests_total{{{base},proto=\"udp\",family=\"1\",type=\"A\"}} 2"),
            format!("coredns_dns_requests_total{{{base},proto=\"tcp\",family=\"1\",type=\"other\"}} 1"),
            format!("coredns_dns_responses_total{{{base},rcode=\"NOERROR\",plugin=\"kubernetes\"}} 1"),
            format!("coredns_dns_responses_total{{{base},rcode=\"NXDOMAIN\",plugin=\"kubernetes\"}} 1"),
            format!("coredns_dns_responses_total{{{base},rcode=\"NXDOMAIN\",plugin=\"\"}} 1"),
            format!("coredns_dns_request_duration_seconds_bucket{{{base},type=\"A\",le=\"0.00025\"}} 1"),
            format!("coredns_dns_request_duration_seconds_bucket{{{base},type=\"A\",le=\"0.0005\"}} 2"),
            format!("coredns_dns_request_duration_seconds_bucket{{{base},type=\"A\",le=\"+Inf\"}} 2"),
            format!("coredns_dns_request_duration_seconds_count{{{base},type=\"A\"}} 2"),
            "# TYPE coredns_dns_request_duration_seconds histogram".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("type=\"AAAA\""), "series that never counted are left out");
    }

    #[test]
    fn buckets_follow_coredns() {
        let bounds: Vec<f64> = bucket_bounds().collect();
        assert_eq!(bounds.len(), 16);
        assert_eq!(bounds[0], 0.00025);
        assert_eq!(bounds[15], 8.192);
    }
}
