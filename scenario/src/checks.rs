//! What `emu test` makes of what its steps saw (issue 7), as pure functions: the client scripts
//! of `http` steps and background loads and the parsing of their output, the verdict of every
//! expectation (what was expected, what was got), the random choices of a seed, the cluster name
//! of a scenario file, the report lines and the JUnit XML.

use crate::steps::{AnsweredBy, ExitCode, Expect, Http, Load, LoadExpect, PodsCondition};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The outcome of one check: what was expected and what was got (on success, what to report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub expected: String,
    pub got: String,
}

impl Verdict {
    pub fn pass(got: impl Into<String>) -> Verdict {
        Verdict { ok: true, expected: String::new(), got: got.into() }
    }

    pub fn fail(expected: impl Into<String>, got: impl Into<String>) -> Verdict {
        Verdict { ok: false, expected: expected.into(), got: got.into() }
    }

    /// `expected …, got …`.
    pub fn message(&self) -> String {
        format!("expected {}, got {}", self.expected, self.got)
    }
}

/// At most `max` characters of `text` on one line, quoted.
pub fn excerpt(text: &str, max: usize) -> String {
    let one_line = text.trim().replace('\n', "⏎");
    if one_line.chars().count() > max {
        format!("{:?}…", one_line.chars().take(max).collect::<String>())
    } else {
        format!("{one_line:?}")
    }
}

/// A command's result against its `expect:`.
pub fn check_command(expect: &Expect, code: i32, stdout: &str, stderr: &str) -> Verdict {
    let code_ok = match expect.exit_code {
        ExitCode::Is(c) => code == c,
        ExitCode::NonZero => code != 0,
    };
    if !code_ok {
        let want = match expect.exit_code {
            ExitCode::Is(c) => format!("exit code {c}"),
            ExitCode::NonZero => "a non-zero exit code".into(),
        };
        let output =
            if stderr.trim().is_empty() { format!("stdout {}", excerpt(stdout, 200)) } else { format!("stderr {}", excerpt(stderr, 200)) };
        return Verdict::fail(want, format!("exit code {code} ({output})"));
    }
    if let Some(want) = &expect.stdout_contains {
        if !stdout.contains(want.as_str()) {
            return Verdict::fail(format!("stdout to contain {want:?}"), excerpt(stdout, 300));
        }
    }
    if let Some(re) = &expect.stdout_matches {
        // Checked to compile when the scenario was parsed.
        if !regex::Regex::new(re).is_ok_and(|r| r.is_match(stdout)) {
            return Verdict::fail(format!("stdout to match /{re}/"), excerpt(stdout, 300));
        }
    }
    // The exit code is worth showing only when a failure was expected.
    Verdict::pass(if code == 0 { String::new() } else { format!("exit code {code}") })
}

/// The marker that ends each request's output in the client scripts.
const MARK: &str = "@@emu";

/// A load's first line: when it started, in seconds of the client machine's uptime.
const START_MARK: &str = "@@emu-start";

/// The request, then its exit code on the marker line: `@@emu HTTP_CODE TIME_TOTAL EXIT_CODE`.
fn curl(url: &str, timeout_ms: u64, insecure: bool, extra: &str) -> String {
    format!("{}; echo \" $?\"", curl_request(url, timeout_ms, insecure, extra))
}

/// The request, printing `\n@@emu HTTP_CODE TIME_TOTAL` after the body.
fn curl_request(url: &str, timeout_ms: u64, insecure: bool, extra: &str) -> String {
    let secs = timeout_ms as f64 / 1000.0;
    let k = if insecure { " -k" } else { "" };
    // The URL in double quotes: the client's shell expands $VARIABLES (a pod's
    // MY_SERVICE_HOST); the steps parser refused quotes, backslashes and backquotes in it.
    format!("curl -s{k} -m {secs}{extra} -w '\\n{MARK} %{{http_code}} %{{time_total}}' \"{url}\"")
}

/// The shell script of an `http` step: `requests` curls one after the other, each followed by a
/// line `@@emu HTTP_CODE TIME_TOTAL EXIT_CODE`.
pub fn http_script(h: &Http) -> String {
    let mut extra = if h.retries > 0 { format!(" --retry {}", h.retries) } else { String::new() };
    if let Some(address) = &h.resolve {
        let (host, port) = url_host_port(&h.url);
        extra.push_str(&format!(" --resolve \"{host}:{port}:{address}\""));
    }
    format!("i=0; while [ $i -lt {} ]; do i=$((i+1)); {}; done", h.requests, curl(&h.url, h.request_timeout_ms, h.insecure, &extra))
}

/// The host and port of an http:// or https:// URL (80 or 443 when it names none), as curl's
/// `--resolve` wants them.
fn url_host_port(url: &str) -> (&str, u16) {
    let (https, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("http://").unwrap_or(url)),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = if https { 443 } else { 80 };
    // `[::1]:8080` has its port after the last ':'; `[::1]` has none.
    match authority.rsplit_once(':').and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?))) {
        Some((host, port)) => (host, port),
        None => (authority, default),
    }
}

/// The shell script of a background load: a line `@@emu-start UPTIME`, then a curl every
/// `interval` until killed, each printing one line `@@emu HTTP_CODE TIME_TOTAL EXIT_CODE UPTIME`
/// (the body goes to /dev/null), UPTIME being when the request started by the client machine's
/// clock (`/proc/uptime`). The client's own clock: the record is read later, in pieces (the
/// load runs on by itself, whatever happens to the control plane meanwhile).
pub fn load_script(l: &Load) -> String {
    let pause = l.interval_ms as f64 / 1000.0;
    let uptime = "$(cut -d' ' -f1 /proc/uptime)";
    format!(
        "echo \"{START_MARK} {uptime}\"; while :; do t={uptime}; {}; echo \" $? $t\"; sleep {pause}; done",
        curl_request(&l.url, l.request_timeout_ms, l.insecure, " -o /dev/null")
    )
}

/// One request as its client saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub exit: i32,
    pub http_code: u16,
    pub seconds: f64,
    /// The first non-empty line of the body: the answering pod when it serves its hostname.
    pub first_line: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.exit == 0 && (200..400).contains(&self.http_code)
    }

    /// Why it failed, for the report: `curl exit 28 (timed out)`, `HTTP 503`.
    pub fn failure(&self) -> String {
        if self.exit != 0 {
            let why = match self.exit {
                6 => " (could not resolve host)",
                7 => " (could not connect)",
                28 => " (timed out)",
                35 | 60 => " (TLS failed)",
                52 => " (empty reply)",
                56 => " (connection reset)",
                _ => "",
            };
            format!("curl exit {}{why}", self.exit)
        } else {
            format!("HTTP {}", self.http_code)
        }
    }
}

/// The marker line's fields, or None for a body line.
fn marker(line: &str) -> Option<(u16, f64, i32)> {
    let mut f = line.strip_prefix(MARK)?.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// The answers in the output of [`http_script`].
pub fn parse_answers(output: &str) -> Vec<Answer> {
    let mut out = Vec::new();
    let mut first = None;
    for line in output.lines() {
        match marker(line) {
            Some((http_code, seconds, exit)) => out.push(Answer { exit, http_code, seconds, first_line: first.take().unwrap_or_default() }),
            None if first.is_none() && !line.trim().is_empty() => first = Some(line.trim().to_string()),
            None => {}
        }
    }
    out
}

/// `5× curl exit 28 (timed out), 1× HTTP 503`.
fn failure_counts<'a>(failures: impl Iterator<Item = &'a Answer>) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for a in failures {
        *by.entry(a.failure()).or_default() += 1;
    }
    by.iter().map(|(k, n)| format!("{n}× {k}")).collect::<Vec<_>>().join(", ")
}

/// An `http` step's answers against its expectations.
pub fn check_http(h: &Http, answers: &[Answer]) -> Verdict {
    let total = h.requests as usize;
    let ok: Vec<&Answer> = answers.iter().filter(|a| a.ok()).collect();
    let rate = ok.len() as f64 / total as f64;
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &ok {
        *by.entry(a.first_line.as_str()).or_default() += 1;
    }
    let answered = by.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ");
    let mut got = format!("{} of {total} succeeded", ok.len());
    if ok.len() < total {
        let missing = total.saturating_sub(answers.len());
        let mut f = failure_counts(answers.iter().filter(|a| !a.ok()));
        if missing > 0 {
            f = [f, format!("{missing}× no answer (step timed out)")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ");
        }
        let _ = write!(got, "; failures: {f}");
    }
    if rate + 1e-9 < h.expect.success_rate {
        return Verdict::fail(format!("a success rate of at least {}", h.expect.success_rate), format!("{rate:.2} ({got})"));
    }
    match &h.expect.answered_by {
        Some(AnsweredBy::Count(n)) if by.len() < *n => {
            return Verdict::fail(format!("answers from at least {n} distinct pods"), format!("{} ({answered})", by.len()));
        }
        Some(AnsweredBy::Pods(pods)) => {
            let mut want: Vec<&str> = pods.iter().map(String::as_str).collect();
            want.sort();
            want.dedup();
            let seen: Vec<&str> = by.keys().copied().collect();
            if seen != want {
                return Verdict::fail(
                    format!("answers from exactly {}", want.join(", ")),
                    if answered.is_empty() { "none".into() } else { answered },
                );
            }
        }
        _ => {}
    }
    if h.expect.answered_by.is_some() {
        let _ = write!(got, "; answered by {answered}");
    }
    Verdict::pass(got)
}

/// One request of a background load: when it started (ms since the load started) and how it
/// ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub at_ms: u64,
    pub answer: Answer,
}

/// When a load started (its first line), by the client machine's uptime in seconds.
pub fn load_start(line: &str) -> Option<f64> {
    line.trim().strip_prefix(START_MARK)?.trim().parse().ok()
}

/// A request of [`load_script`]'s output, of a load that started at `start` ([`load_start`]).
pub fn parse_load_line(line: &str, start: f64) -> Option<Sample> {
    let line = line.trim();
    let (http_code, seconds, exit) = marker(line)?;
    let at: f64 = line.split_whitespace().nth(4)?.parse().ok()?;
    let at_ms = ((at - start).max(0.0) * 1000.0).round() as u64;
    Some(Sample { at_ms, answer: Answer { exit, http_code, seconds, first_line: String::new() } })
}

/// What a background load saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadStats {
    pub requests: u64,
    pub failed: u64,
    pub first_failure_ms: Option<u64>,
    pub last_failure_ms: Option<u64>,
    /// `3× curl exit 28 (timed out)`.
    pub failures: String,
}

impl LoadStats {
    pub fn of(samples: &[Sample]) -> LoadStats {
        let failed: Vec<&Sample> = samples.iter().filter(|s| !s.answer.ok()).collect();
        LoadStats {
            requests: samples.len() as u64,
            failed: failed.len() as u64,
            first_failure_ms: failed.iter().map(|s| s.at_ms).min(),
            last_failure_ms: failed.iter().map(|s| s.at_ms).max(),
            failures: failure_counts(failed.iter().map(|s| &s.answer)),
        }
    }

    /// `150 requests, 147 ok, 3 failed (3× curl exit 28 (timed out); first at 2.1 s, last at 3.0 s)`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} requests, {} ok, {} failed", self.requests, self.requests - self.failed, self.failed);
        if let (Some(first), Some(last)) = (self.first_failure_ms, self.last_failure_ms) {
            let _ = write!(s, " ({}; first at {}, last at {})", self.failures, seconds(first), seconds(last));
        }
        s
    }
}

/// `2.1 s`.
pub fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A load's record against its expectations, when it stops.
pub fn check_load(expect: &LoadExpect, stats: &LoadStats) -> Verdict {
    if stats.requests == 0 {
        return Verdict::fail("requests from the load", "none (did its client start? see the step's output)");
    }
    if let Some(max) = expect.max_failures {
        if stats.failed > max {
            return Verdict::fail(format!("at most {max} failed requests"), stats.summary());
        }
    }
    if let (Some(within), Some(first), Some(last)) = (expect.failures_stop_within_ms, stats.first_failure_ms, stats.last_failure_ms) {
        if last - first > within {
            return Verdict::fail(
                format!("failures to stop within {} of the first", crate::steps::format_duration_ms(within)),
                format!("failures for {} ({})", seconds(last - first), stats.summary()),
            );
        }
    }
    Verdict::pass(stats.summary())
}

fn is_ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `wait: {pods: …}` against the pods its selector lists (namespace and selector applied).
pub fn check_pods(c: &PodsCondition, pods: &[Value]) -> Verdict {
    let pods: Vec<&Value> = pods.iter().filter(|p| c.node.as_ref().is_none_or(|n| p["spec"]["nodeName"] == n.as_str())).collect();
    let ready: Vec<&&Value> = pods.iter().filter(|p| is_ready(p)).collect();
    let nodes: std::collections::BTreeSet<&str> = ready.iter().filter_map(|p| p["spec"]["nodeName"].as_str()).collect();
    let on = c.node.as_ref().map(|n| format!(" on {n}")).unwrap_or_default();
    let mut got = format!("{} Ready of {} pods{on}", ready.len(), pods.len());
    if c.node.is_none() {
        let plural = if nodes.len() == 1 { "" } else { "s" };
        let _ = write!(got, " on {} node{plural} ({})", nodes.len(), nodes.iter().copied().collect::<Vec<_>>().join(", "));
    }
    let mut want = Vec::new();
    let mut ok = true;
    if let Some(n) = c.ready {
        want.push(format!("at least {n} Ready"));
        ok &= ready.len() >= n;
    }
    if let Some(n) = c.total {
        want.push(format!("exactly {n} pods"));
        ok &= pods.len() == n;
    }
    if let Some(n) = c.nodes {
        want.push(format!("Ready pods on at least {n} nodes"));
        ok &= nodes.len() >= n;
    }
    let verdict = Verdict { ok, expected: format!("{} matching {}{on}", want.join(", "), c.selector), got };
    if ok {
        Verdict::pass(verdict.got)
    } else {
        verdict
    }
}

/// The ready addresses of an Endpoints object.
pub fn endpoint_addresses(ep: &Value) -> Vec<String> {
    let subsets = ep["subsets"].as_array().into_iter().flatten();
    subsets.flat_map(|s| s["addresses"].as_array().into_iter().flatten()).filter_map(|a| a["ip"].as_str().map(str::to_string)).collect()
}

/// `wait: {endpoints: …}`; `ep` is None while the Endpoints object does not exist.
pub fn check_endpoints(service: &str, count: usize, ep: Option<&Value>) -> Verdict {
    let addresses = ep.map(endpoint_addresses).unwrap_or_default();
    let got = match ep {
        None => "no Endpoints object".to_string(),
        Some(_) => format!("{} ({})", addresses.len(), addresses.join(", ")),
    };
    if addresses.len() == count {
        Verdict::pass(got)
    } else {
        Verdict::fail(format!("{count} ready endpoints of service {service}"), got)
    }
}

/// A random choice reproducible from `seed`: an index below `n` (> 0) for the `salt`-th choice.
pub fn pick(seed: u64, salt: u64, n: usize) -> usize {
    // splitmix64: small, well mixed, and the same on every machine and version.
    let mut z = seed.wrapping_add(salt.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % n.max(1) as u64) as usize
}

/// The cluster of a scenario file under `emu test`: its name's letters and digits (a leading
/// `test` dropped), at most 10, then 4 hex digits of a hash of `key` (the file's full path), so
/// that two files never share a cluster: `nodeloss3fa2` for test-node-loss.yaml. At most 15
/// characters, as cluster names must be (≤ 16, lower-case letters and digits, a letter first).
pub fn cluster_name(stem: &str, key: &str) -> String {
    let lower = stem.to_ascii_lowercase();
    let letters: String = lower
        .strip_prefix("test")
        .filter(|r| !r.is_empty())
        .unwrap_or(&lower)
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .take(10)
        .collect();
    let letters =
        if letters.starts_with(|c: char| c.is_ascii_lowercase()) { letters } else { format!("t{}", &letters[..letters.len().min(9)]) };
    // FNV-1a.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("{letters}{:04x}", hash & 0xffff)
}

/// One step as the report has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseReport {
    pub name: String,
    pub ms: u64,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// With what to show after the name (may be empty).
    Passed(String),
    Failed(String),
    /// Not run: an earlier step failed.
    Skipped,
}

/// One scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteReport {
    pub name: String,
    pub file: String,
    pub cases: Vec<CaseReport>,
}

impl SuiteReport {
    pub fn failed(&self) -> bool {
        self.cases.iter().any(|c| matches!(c.outcome, Outcome::Failed(_)))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }

    fn ms(&self) -> u64 {
        self.cases.iter().map(|c| c.ms).sum()
    }
}

/// `✓ NAME (1.2 s)`, `✓ NAME (1.2 s) — detail`, `✗ NAME (5.0 s): expected …, got …`.
pub fn case_line(c: &CaseReport) -> String {
    match &c.outcome {
        Outcome::Passed(d) if d.is_empty() => format!("✓ {} ({})", c.name, seconds(c.ms)),
        Outcome::Passed(d) => format!("✓ {} ({}) — {d}", c.name, seconds(c.ms)),
        Outcome::Failed(m) => format!("✗ {} ({}): {m}", c.name, seconds(c.ms)),
        Outcome::Skipped => format!("- {} (not run)", c.name),
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML, as CI systems read it: a testsuite per scenario file, a testcase per step (the
/// cluster's bring-up is the first), a failure with the message, skipped steps after it.
pub fn junit(suites: &[SuiteReport]) -> String {
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(|s| s.count(|o| matches!(o, Outcome::Failed(_)))).sum();
    let ms: u64 = suites.iter().map(SuiteReport::ms).sum();
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"emu test\" tests=\"{tests}\" failures=\"{failures}\" time=\"{}\">", secs(ms));
    for s in suites {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" file=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">",
            xml_escape(&s.name),
            xml_escape(&s.file),
            s.cases.len(),
            s.count(|o| matches!(o, Outcome::Failed(_))),
            s.count(|o| matches!(o, Outcome::Skipped)),
            secs(s.ms())
        );
        for c in &s.cases {
            let head =
                format!("    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"", xml_escape(&c.name), xml_escape(&s.name), secs(c.ms));
            match &c.outcome {
                Outcome::Passed(_) => {
                    let _ = writeln!(out, "{head}/>");
                }
                Outcome::Failed(m) => {
                    let _ = writeln!(out, "{head}>\n      <failure message=\"{0}\">{0}</failure>\n    </testcase>", xml_escape(m));
                }
                Outcome::Skipped => {
                    let _ = writeln!(out, "{head}>\n      <skipped message=\"not run: an earlier step failed\"/>\n    </testcase>");
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::{HttpExpect, Place};
    use serde_json::json;

    #[test]
    fn commands_show_what_was_expected_and_what_was_got() {
        let e = Expect::default();
        assert!(check_command(&e, 0, "", "").ok);
        let v = check_command(&e, 28, "", "curl: (28) Connection timed out\n");
        assert_eq!(v.message(), "expected exit code 0, got exit code 28 (stderr \"curl: (28) Connection timed out\")");
        let e = Expect { exit_code: ExitCode::NonZero, ..Default::default() };
        assert_eq!(check_command(&e, 1, "", ""), Verdict::pass("exit code 1"));
        assert_eq!(check_command(&e, 0, "ok\n", "").message(), "expected a non-zero exit code, got exit code 0 (stdout \"ok\")");
        let e = Expect {
            stdout_contains: Some("Welcome".into()),
            stdout_matches: Some(r"Address: 10\.96\.\d+\.\d+".into()),
            ..Default::default()
        };
        assert_eq!(check_command(&e, 0, "404 Not Found\n", "").message(), "expected stdout to contain \"Welcome\", got \"404 Not Found\"");
        assert_eq!(
            check_command(&e, 0, "Welcome\nAddress: 1.2.3.4", "").message(),
            "expected stdout to match /Address: 10\\.96\\.\\d+\\.\\d+/, got \"Welcome⏎Address: 1.2.3.4\""
        );
        assert!(check_command(&e, 0, "Welcome\nAddress: 10.96.0.12\n", "").ok);
    }

    fn http(requests: u32, rate: f64, answered_by: Option<AnsweredBy>) -> Http {
        Http {
            from: Place::Outside,
            url: "http://$WEB_SERVICE_HOST/".into(),
            requests,
            request_timeout_ms: 2000,
            retries: 2,
            insecure: true,
            resolve: None,
            expect: HttpExpect { success_rate: rate, answered_by },
        }
    }

    #[test]
    fn resolve_sends_the_urls_host_and_port_to_the_address() {
        let with = |url: &str| Http { url: url.into(), resolve: Some("203.0.113.1".into()), retries: 0, ..http(1, 1.0, None) };
        let script = http_script(&with("https://kubia.example.com/"));
        assert!(script.contains(" --resolve \"kubia.example.com:443:203.0.113.1\" "), "{script}");
        assert!(http_script(&with("http://kubia.example.com")).contains(" --resolve \"kubia.example.com:80:203.0.113.1\" "));
        assert!(http_script(&with("http://u@kubia.example.com:8080/a:b?c")).contains(" --resolve \"kubia.example.com:8080:203.0.113.1\" "));
        assert!(!http_script(&http(1, 1.0, None)).contains("--resolve"));
    }

    #[test]
    fn the_http_script_marks_every_request() {
        assert_eq!(
            http_script(&http(3, 1.0, None)),
            "i=0; while [ $i -lt 3 ]; do i=$((i+1)); curl -s -k -m 2 --retry 2 -w '\\n@@emu %{http_code} %{time_total}' \"http://$WEB_SERVICE_HOST/\"; echo \" $?\"; done"
        );
        // What that prints: a body, a failure, an error page.
        let out = "web-a\n\n@@emu 200 0.002 0\n\n@@emu 000 2.001 28\n<html>503</html>\n@@emu 503 0.001 0\nweb-b\n@@emu 200 0.003 0\n";
        let answers = parse_answers(out);
        assert_eq!(
            answers.iter().map(|a| (a.ok(), a.first_line.as_str())).collect::<Vec<_>>(),
            [(true, "web-a"), (false, ""), (false, "<html>503</html>"), (true, "web-b")]
        );
        let v = check_http(&http(4, 0.9, None), &answers);
        assert_eq!(
            v.message(),
            "expected a success rate of at least 0.9, got 0.50 (2 of 4 succeeded; failures: 1× HTTP 503, 1× curl exit 28 (timed out))"
        );
        assert!(check_http(&http(4, 0.5, Some(AnsweredBy::Count(2))), &answers).ok);
        let v = check_http(&http(4, 0.5, Some(AnsweredBy::Count(3))), &answers);
        assert_eq!(v.message(), "expected answers from at least 3 distinct pods, got 2 (web-a ×1, web-b ×1)");
        let v = check_http(&http(4, 0.5, Some(AnsweredBy::Pods(vec!["web-a".into()]))), &answers);
        assert_eq!(v.message(), "expected answers from exactly web-a, got web-a ×1, web-b ×1");
        assert_eq!(
            check_http(&http(4, 0.5, Some(AnsweredBy::Pods(vec!["web-b".into(), "web-a".into()]))), &answers).got,
            "2 of 4 succeeded; failures: 1× HTTP 503, 1× curl exit 28 (timed out); answered by web-a ×1, web-b ×1"
        );
        // Requests the step's timeout cut off count as failed.
        let v = check_http(&http(6, 1.0, None), &answers);
        assert!(v.got.ends_with("2× no answer (step timed out))"), "{}", v.got);
    }

    #[test]
    fn loads_count_failures_and_when_they_stopped() {
        let l = Load {
            name: "l".into(),
            from: Place::Outside,
            url: "http://198.51.100.2:30080".into(),
            interval_ms: 200,
            request_timeout_ms: 1000,
            insecure: false,
            expect: LoadExpect::default(),
        };
        assert_eq!(
            load_script(&l),
            "echo \"@@emu-start $(cut -d' ' -f1 /proc/uptime)\"; while :; do t=$(cut -d' ' -f1 /proc/uptime); \
             curl -s -m 1 -o /dev/null -w '\\n@@emu %{http_code} %{time_total}' \"http://198.51.100.2:30080\"; echo \" $? $t\"; sleep 0.2; done"
        );
        let start = load_start("@@emu-start 1000.10").unwrap();
        let lines =
            ["@@emu 200 0.001 0 1000.20", "", "@@emu 000 1.000 28 1001.40", "@@emu 000 1.000 28 1002.60", "@@emu 200 0.002 0 1003.90"];
        let samples: Vec<Sample> = lines.iter().filter_map(|l| parse_load_line(l, start)).collect();
        assert_eq!(samples.iter().map(|s| s.at_ms).collect::<Vec<_>>(), [100, 1300, 2500, 3800]);
        assert_eq!(parse_load_line("@@emu 200 0.001 0", start), None, "a line without its time");
        let stats = LoadStats::of(&samples);
        assert_eq!(stats.summary(), "4 requests, 2 ok, 2 failed (2× curl exit 28 (timed out); first at 1.3 s, last at 2.5 s)");
        assert!(check_load(&LoadExpect { max_failures: Some(2), failures_stop_within_ms: Some(1200) }, &stats).ok);
        let v = check_load(&LoadExpect { max_failures: Some(1), ..Default::default() }, &stats);
        assert_eq!(
            v.message(),
            "expected at most 1 failed requests, got 4 requests, 2 ok, 2 failed (2× curl exit 28 (timed out); first at 1.3 s, last at 2.5 s)"
        );
        let v = check_load(&LoadExpect { failures_stop_within_ms: Some(1000), ..Default::default() }, &stats);
        assert!(v.message().starts_with("expected failures to stop within 1s of the first, got failures for 1.2 s ("), "{}", v.message());
        assert!(!check_load(&LoadExpect::default(), &LoadStats::default()).ok);
    }

    fn pod(name: &str, node: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn pod_conditions() {
        let pods = [pod("a", "node-1", true), pod("b", "node-2", true), pod("c", "node-2", false)];
        let c = |ready, total, nodes, node: Option<&str>| PodsCondition {
            namespace: "default".into(),
            selector: "app=web".into(),
            ready,
            total,
            nodes,
            node: node.map(str::to_string),
        };
        assert!(check_pods(&c(Some(2), None, Some(2), None), &pods).ok);
        assert_eq!(
            check_pods(&c(Some(3), None, None, None), &pods).message(),
            "expected at least 3 Ready matching app=web, got 2 Ready of 3 pods on 2 nodes (node-1, node-2)"
        );
        assert_eq!(
            check_pods(&c(None, Some(2), None, None), &pods).message(),
            "expected exactly 2 pods matching app=web, got 2 Ready of 3 pods on 2 nodes (node-1, node-2)"
        );
        assert!(check_pods(&c(Some(1), Some(2), None, Some("node-2")), &pods).ok);
        assert_eq!(
            check_pods(&c(Some(2), None, None, Some("node-2")), &pods).message(),
            "expected at least 2 Ready matching app=web on node-2, got 1 Ready of 2 pods on node-2"
        );
        let mut leaving = pod("d", "node-1", true);
        leaving["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!check_pods(&c(Some(2), None, None, Some("node-1")), &[pods[0].clone(), leaving]).ok, "a pod being deleted is not Ready");
    }

    #[test]
    fn endpoints_count_ready_addresses() {
        let ep =
            json!({"subsets": [{"addresses": [{"ip": "10.244.0.3"}, {"ip": "10.244.1.3"}], "notReadyAddresses": [{"ip": "10.244.1.4"}]}]});
        assert!(check_endpoints("web", 2, Some(&ep)).ok);
        assert_eq!(
            check_endpoints("web", 1, Some(&ep)).message(),
            "expected 1 ready endpoints of service web, got 2 (10.244.0.3, 10.244.1.3)"
        );
        assert_eq!(check_endpoints("web", 1, None).message(), "expected 1 ready endpoints of service web, got no Endpoints object");
    }

    #[test]
    fn a_seed_repeats_its_choices() {
        let picks = |seed| (0..20).map(|salt| pick(seed, salt, 5)).collect::<Vec<_>>();
        assert_eq!(picks(42), picks(42));
        assert_ne!(picks(42), picks(43));
        assert!(picks(7).iter().all(|i| *i < 5));
        assert_eq!(pick(1, 2, 1), 0);
    }

    #[test]
    fn cluster_names_fit_and_differ_by_path() {
        let a = cluster_name("test-node-loss", "/a/scenarios/test-node-loss.yaml");
        assert!(a.starts_with("nodeloss") && a.len() == 12, "{a}");
        assert_ne!(a, cluster_name("test-node-loss", "/b/scenarios/test-node-loss.yaml"));
        assert_eq!(a, cluster_name("test-node-loss", "/a/scenarios/test-node-loss.yaml"));
        for stem in ["test", "2fast", "Very_Long-Scenario-Name-Indeed", "ü"] {
            let n = cluster_name(stem, stem);
            assert!(
                n.len() <= 16
                    && n.starts_with(|c: char| c.is_ascii_lowercase())
                    && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{stem} → {n}"
            );
        }
    }

    #[test]
    fn report_lines_and_junit() {
        let suite = SuiteReport {
            name: "node loss".into(),
            file: "scenarios/test-node-loss.yaml".into(),
            cases: vec![
                CaseReport { name: "cluster up".into(), ms: 1234, outcome: Outcome::Passed(String::new()) },
                CaseReport { name: "stop load".into(), ms: 50, outcome: Outcome::Passed("10 requests, 10 ok, 0 failed".into()) },
                CaseReport { name: "curl <web>".into(), ms: 5000, outcome: Outcome::Failed("expected \"a\", got \"b\"".into()) },
                CaseReport { name: "later".into(), ms: 0, outcome: Outcome::Skipped },
            ],
        };
        let lines: Vec<String> = suite.cases.iter().map(case_line).collect();
        assert_eq!(
            lines,
            [
                "✓ cluster up (1.2 s)",
                "✓ stop load (0.1 s) — 10 requests, 10 ok, 0 failed",
                "✗ curl <web> (5.0 s): expected \"a\", got \"b\"",
                "- later (not run)"
            ]
        );
        assert_eq!(
            junit(&[suite]),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="emu test" tests="4" failures="1" time="6.284">
  <testsuite name="node loss" file="scenarios/test-node-loss.yaml" tests="4" failures="1" skipped="1" time="6.284">
    <testcase name="cluster up" classname="node loss" time="1.234"/>
    <testcase name="stop load" classname="node loss" time="0.050"/>
    <testcase name="curl &lt;web&gt;" classname="node loss" time="5.000">
      <failure message="expected &quot;a&quot;, got &quot;b&quot;">expected &quot;a&quot;, got &quot;b&quot;</failure>
    </testcase>
    <testcase name="later" classname="node loss" time="0.000">
      <skipped message="not run: an earlier step failed"/>
    </testcase>
  </testsuite>
</testsuites>
"#
        );
    }
}
