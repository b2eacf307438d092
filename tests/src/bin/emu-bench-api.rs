//! emu's REST API benchmark (issue 17): prints figures, asserts nothing.
//!
//! One cluster of 5 nodes (a /24 of pod addresses each, so 1,000 pods need at least 4), a
//! Deployment of 1,000 pods on it (the time until all are Ready is printed too), then:
//!
//! 1. once the controller has settled, a list of the pods from a client on the host over HTTPS,
//!    with the kubeconfig's admin client certificate, on one kept-alive connection (no TLS
//!    handshake counted): as a Table, what `kubectl get` asks for (goal p99 ≤ 10 ms), as plain
//!    JSON, in the pages of 500 kubectl fetches, and as a Table on a fresh connection per request
//!    (TCP and a full TLS handshake); each also with the controller's CPU time per request, which
//!    other programs on the machine disturb less than the wall times;
//! 2. watch latency: a watch on ConfigMaps open, then 200 updates (PUT) of a ConfigMap, one at a
//!    time, each timed from sending the write until its event reaches the watcher (goal p99 ≤
//!    5 ms);
//! 3. `kubectl get pods` against `emu get pods`, 20 runs each, alternating, kubectl with a warm
//!    discovery cache of its own; kubectl once with a cold cache;
//! 4. `kubectl apply -f` of a file of 1,000 ConfigMaps, against `emu apply -f` of the same;
//! 5. the controller's memory (RSS and PSS): idle, with the pods, with the ConfigMaps too.
//!
//!   sudo target/release/emu-bench-api [--pods N] [--configmaps N]
//!
//! (1,000 of each unless told; fewer to try the benchmark out.)

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use emu_tests::bench::{apply, cluster_with_client};
use emu_tests::{daemon_pid, Cluster, Scratch};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The benchmark's own cluster name (others may run clusters on the same machine).
const CLUSTER: &str = "benchapi";
/// Each node has a /24 of pod addresses: 5 nodes leave room for 1,000 pods and the DNS.
const NODES: usize = 5;
/// Requests per list form: the p99 of 100 is their second largest.
const LISTS: usize = 100;
/// List requests on fresh connections.
const FRESH: usize = 20;
/// Writes timed until the watcher sees them.
const WRITES: usize = 200;
/// Runs of `kubectl get pods` and `emu get pods` each.
const GETS: usize = 20;
/// What `kubectl get` sends as Accept (kubectl 1.32, `get` without `-o`).
const ACCEPT_TABLE: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn main() -> anyhow::Result<()> {
    emu_tests::require_root();
    let (pods, configmaps) = sizes()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!(
        "== emu REST API benchmark ({} cores; {pods} pods on {NODES} nodes, {configmaps} ConfigMaps)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    // The API server logs each request with the time it took (at trace level): the server-side
    // figures of section 1 come from there.
    std::env::set_var("EMU_LOG", "info,emu_controller::https=trace");
    let t = Instant::now();
    let (cluster, mut grpc) = cluster_with_client(&rt, CLUSTER, NODES)?;
    println!("  emu up --nodes {NODES}: {:.1} s", t.elapsed().as_secs_f64());
    let controller = daemon_pid(CLUSTER, "controller.pid");
    let mut memory_at = vec![("idle, after emu up".to_string(), memory(controller))];
    let dir = Scratch(std::env::temp_dir().join(format!("emu-bench-api-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let kubeconfig = cluster.emu(&["kubeconfig"]);
    if kubeconfig.code != 0 {
        bail!("emu kubeconfig --cluster {CLUSTER}: {}", kubeconfig.stderr);
    }
    std::fs::write(dir.0.join("kubeconfig"), kubeconfig.stdout)?;
    let k = rt.block_on(grpc.kubeconfig(emu_proto::KubeconfigRequest::default())).context("the controller's Kubeconfig call")?.into_inner();
    let api = Api::new(&k)?;

    // The pods: a Deployment, as a user would make 1,000 of them.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "sleep", "image": "busybox", "command": ["sleep", "86400"]}]}}}});
    let t = Instant::now();
    rt.block_on(apply(&mut grpc, &[deployment]))?;
    let ready = rt.block_on(wait_ready(&api, pods, Duration::from_secs(120) + Duration::from_millis(500) * pods as u32))?;
    let took = t.elapsed().as_secs_f64();
    if ready < pods {
        println!("  Deployment of {pods} pods: only {ready} Ready after {took:.0} s; the figures below are with the pods the store holds");
    } else {
        println!("  Deployment of {pods} pods on {NODES} nodes: all Ready after {took:.1} s");
    }
    memory_at.push((format!("with {ready} Ready pods"), memory(controller)));
    // The agents report the new pods' status for a while after they are Ready: the requests are
    // timed once the controller has settled, not against that.
    let (waited, busy) = settle(controller, Duration::from_secs(60));
    println!("  the controller settled after {waited:.1} s ({:.0}% of a core in its last second)", busy * 100.0);

    rt.block_on(lists(&api, controller))?;
    rt.block_on(watch_latency(&api, controller))?;
    if Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success()) {
        gets(&dir.0, &cluster)?;
        let with_configmaps = applies(&rt, &api, &dir.0, &cluster, configmaps, controller)?;
        memory_at.push((format!("with the pods and {configmaps} ConfigMaps"), with_configmaps));
        memory_at.push((format!("with the pods and {} ConfigMaps (emu's too)", 2 * configmaps), memory(controller)));
    } else {
        println!("  3., 4. skipped: no kubectl on PATH (issue 17 measures kubectl 1.32)");
    }

    println!("  5. the controller's memory{:>35}{:>13}", "RSS", "PSS");
    for (what, (rss, pss)) in memory_at {
        row(&what, format!("{rss:7.1} MB   {pss:7.1} MB"));
    }
    drop(cluster);
    Ok(())
}

/// `--pods N` and `--configmaps N`, 1,000 each by default.
fn sizes() -> anyhow::Result<(usize, usize)> {
    let (mut pods, mut configmaps) = (1000, 1000);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--pods" => &mut pods,
            "--configmaps" => &mut configmaps,
            _ => bail!("unknown argument {a:?}; usage: emu-bench-api [--pods N] [--configmaps N]"),
        };
        *slot = args.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0).with_context(|| format!("{a} needs a positive count"))?;
    }
    Ok((pods, configmaps))
}

/// The cluster's API server as the kubeconfig reaches it: 127.0.0.1:<port>, the cluster CA, the
/// admin client certificate.
struct Api {
    addr: SocketAddr,
    /// Resumes TLS sessions (rustls' default): for the kept-alive connections.
    tls: TlsConnector,
    /// Never resumes: every handshake is a full one, as for a new kubectl process.
    tls_full: TlsConnector,
}

type Sender = SendRequest<Full<Bytes>>;

impl Api {
    fn new(k: &emu_proto::KubeconfigResponse) -> anyhow::Result<Api> {
        let port: u16 = k
            .server
            .strip_prefix("https://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("server {:?} is not https://127.0.0.1:<port>", k.server))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(k.certificate_authority.as_bytes()) {
            roots.add(ca.map_err(|e| anyhow!("cluster CA: {e:?}"))?)?;
        }
        let chain = CertificateDer::pem_slice_iter(k.client_certificate.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("client certificate: {e:?}"))?;
        let key = PrivateKeyDer::from_pem_slice(k.client_key.as_bytes()).map_err(|e| anyhow!("client key: {e:?}"))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let mut full = config.clone();
        full.resumption = rustls::client::Resumption::disabled();
        Ok(Api {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            tls: TlsConnector::from(Arc::new(config)),
            tls_full: TlsConnector::from(Arc::new(full)),
        })
    }

    /// A new HTTP/1.1 connection over TLS, as kubectl makes one (server name 127.0.0.1).
    async fn connect(&self, full_handshake: bool) -> anyhow::Result<Sender> {
        let tcp = TcpStream::connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let connector = if full_handshake { &self.tls_full } else { &self.tls };
        let tls = connector.connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp).await.context("TLS handshake")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

fn request(method: Method, path: &str, accept: &str, body: Option<&Value>) -> Request<Full<Bytes>> {
    let mut r = Request::builder().method(method).uri(path).header("host", "127.0.0.1").header("accept", accept);
    if body.is_some() {
        r = r.header("content-type", "application/json");
    }
    r.body(Full::new(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default())).expect("a valid request")
}

/// Sends `req` on `sender` and reads the whole answer; fails on a status other than 2xx.
async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> anyhow::Result<Bytes> {
    let what = format!("{} {}", req.method(), req.uri());
    sender.ready().await.with_context(|| format!("{what}: connection"))?;
    let answer = sender.send_request(req).await.with_context(|| format!("{what}: request"))?;
    let status = answer.status();
    let body = answer.into_body().collect().await.with_context(|| format!("{what}: body"))?.to_bytes();
    if !status.is_success() {
        bail!("{what}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

async fn send_json(sender: &mut Sender, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let answer = send(sender, request(method, path, "application/json", body)).await?;
    Ok(serde_json::from_slice(&answer)?)
}

/// Waits until the Deployment has `want` Ready pods or `limit` passes; returns how many are.
async fn wait_ready(api: &Api, want: usize, limit: Duration) -> anyhow::Result<usize> {
    let mut conn = api.connect(false).await?;
    let start = Instant::now();
    loop {
        let d = send_json(&mut conn, Method::GET, "/apis/apps/v1/namespaces/default/deployments/bench", None).await?;
        let ready = d["status"]["readyReplicas"].as_u64().unwrap_or(0) as usize;
        if ready >= want || start.elapsed() > limit {
            return Ok(ready);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Nearest rank: the smallest value with at least `p`% of `v` at or below it.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.saturating_sub(1).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One figure under a section's heading, its label padded so that the figures line up.
fn row(label: &str, figures: String) {
    println!("     {label:<48} {figures}");
}

fn spread(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "(none measured)".into();
    }
    format!("p50 {:6.2} ms   p99 {:6.2} ms", percentile(v, 50.0), percentile(v, 99.0))
}

/// Section 1: the pod list in its forms. Each form also shows the controller's CPU time per
/// request, which other programs running on the machine disturb less than the wall times.
async fn lists(api: &Api, controller: i32) -> anyhow::Result<()> {
    const PODS: &str = "/api/v1/namespaces/default/pods";
    let mut conn = api.connect(false).await?;
    // Once untimed each: the sizes, the row count, and warm caches on both sides.
    let table = send(&mut conn, request(Method::GET, PODS, ACCEPT_TABLE, None)).await?;
    let table_json: Value = serde_json::from_slice(&table)?;
    if table_json["kind"] != "Table" {
        bail!("GET {PODS} with Accept {ACCEPT_TABLE} answered kind {}, not Table", table_json["kind"]);
    }
    let rows = table_json["rows"].as_array().map_or(0, Vec::len);
    let list = send(&mut conn, request(Method::GET, PODS, "application/json", None)).await?;
    println!(
        "  1. GET {PODS}, {rows} pods, kept-alive HTTPS connection, {LISTS} requests each (Table {} kB, JSON {} kB)",
        table.len() / 1024,
        list.len() / 1024
    );

    let cpu = cpu_time(controller);
    let mut server = ServerTimes::new(PODS);
    let mut as_table = list_times(&mut conn, PODS, ACCEPT_TABLE).await?;
    row("as Table (what kubectl get asks for)", format!("{}   {}", spread(&mut as_table), cpu_each(controller, cpu, LISTS)));
    row("  the same, in the API server (request to answer)", format!("{}   (goal p99 ≤ 10 ms)", spread(&mut server.since_last())));
    let cpu = cpu_time(controller);
    let mut as_json = list_times(&mut conn, PODS, "application/json").await?;
    row("as JSON", format!("{}   {}", spread(&mut as_json), cpu_each(controller, cpu, LISTS)));

    // kubectl get's own requests: pages of 500 (`--chunk-size`), each after the previous one.
    let cpu = cpu_time(controller);
    let mut paged = Vec::with_capacity(LISTS);
    let mut pages = 0;
    for _ in 0..LISTS {
        let start = Instant::now();
        let mut path = format!("{PODS}?limit=500");
        let mut n = 0;
        loop {
            let page = send(&mut conn, request(Method::GET, &path, ACCEPT_TABLE, None)).await?;
            n += 1;
            match continue_token(&page) {
                Some(next) => path = format!("{PODS}?limit=500&continue={next}"),
                None => break,
            }
        }
        paged.push(ms(start.elapsed()));
        pages = n;
    }
    row(
        &format!("as Table, pages of 500 as kubectl ({pages} requests)"),
        format!("{}   {}", spread(&mut paged), cpu_each(controller, cpu, LISTS)),
    );

    let cpu = cpu_time(controller);
    let mut fresh = Vec::with_capacity(FRESH);
    for _ in 0..FRESH {
        let start = Instant::now();
        let mut c = api.connect(true).await?;
        send(&mut c, request(Method::GET, PODS, ACCEPT_TABLE, None)).await?;
        fresh.push(ms(start.elapsed()));
    }
    row(
        "as Table, new connection, full TLS handshake",
        format!("{}   {}   ({FRESH} requests)", spread(&mut fresh), cpu_each(controller, cpu, FRESH)),
    );
    Ok(())
}

/// The times the API server took for the GET requests of one path, from its request log
/// (`https request … elapsed_us=…`): from the request read to the answer made, before the body
/// is sent (what is left to the connection, TLS and the client's reading is not in them).
struct ServerTimes {
    path: String,
    seen: usize,
}

impl ServerTimes {
    fn new(path: &str) -> ServerTimes {
        let mut times = ServerTimes { path: format!("path={path:?} "), seen: 0 };
        times.since_last();
        times
    }

    /// The times (ms) of the requests logged since the last call.
    fn since_last(&mut self) -> Vec<f64> {
        let log = std::fs::read_to_string(Path::new("/run/emu").join(CLUSTER).join("controller.log")).unwrap_or_default();
        let all: Vec<f64> = without_colours(&log)
            .lines()
            .filter(|l| l.contains("https request") && l.contains("method=GET") && l.contains(&self.path))
            .filter_map(|l| {
                l.rsplit_once("elapsed_us=")?.1.split_whitespace().next()?.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok()
            })
            .map(|us: f64| us / 1000.0)
            .collect();
        let new = all[self.seen.min(all.len())..].to_vec();
        self.seen = all.len();
        new
    }
}

/// `text` without the terminal's colour sequences (`ESC [ … m`) the log is written with.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\x1b') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// A page's `metadata.continue`, percent-encoded for the next request's query, or None on the
/// last page. Found in the bytes rather than by parsing the page, which would add the client's
/// parsing to the times measured: the list's metadata comes before its rows, so the first
/// `"continue"` is the list's own.
fn continue_token(page: &[u8]) -> Option<String> {
    const KEY: &[u8] = br#""continue":""#;
    let start = page.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let token = &page[start..start + page[start..].iter().position(|b| *b == b'"')?];
    let encoded: String = token
        .iter()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(b) { char::from(*b).to_string() } else { format!("%{b:02X}") })
        .collect();
    (!encoded.is_empty()).then_some(encoded)
}

/// [`LISTS`] requests GET `path` one after another on `conn`: each one's time (ms).
async fn list_times(conn: &mut Sender, path: &str, accept: &str) -> anyhow::Result<Vec<f64>> {
    let mut t = Vec::with_capacity(LISTS);
    for _ in 0..LISTS {
        let start = Instant::now();
        send(conn, request(Method::GET, path, accept, None)).await?;
        t.push(ms(start.elapsed()));
    }
    Ok(t)
}

/// The controller's CPU time per request since it had used `before`, over `n` requests.
fn cpu_each(controller: i32, before: Duration, n: usize) -> String {
    format!("controller CPU {:5.2} ms each", ms(cpu_time(controller).saturating_sub(before)) / n as f64)
}

/// Section 2: from a write's request to its event at a watcher.
async fn watch_latency(api: &Api, controller: i32) -> anyhow::Result<()> {
    const CMS: &str = "/api/v1/namespaces/default/configmaps";
    let mut writer = api.connect(false).await?;
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bench-watch"}, "data": {"i": "start"}});
    let made = send_json(&mut writer, Method::POST, CMS, Some(&cm)).await?;
    let rv = made["metadata"]["resourceVersion"].as_str().context("resourceVersion of the new ConfigMap")?.to_string();

    // The watcher: one connection of its own, each event's `data.i` and arrival time sent on.
    let mut watcher = api.connect(false).await?;
    let path = format!("{CMS}?watch=1&resourceVersion={rv}");
    let answer = watcher.send_request(request(Method::GET, &path, "application/json", None)).await?;
    if answer.status() != StatusCode::OK {
        bail!("GET {path}: {}", answer.status());
    }
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let reader = tokio::spawn(async move {
        let mut body = answer.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            let at = Instant::now();
            buf.extend_from_slice(&data);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line)?;
                let i = event["object"]["data"]["i"].as_str().unwrap_or("").to_string();
                if tx.send((i, at)).is_err() {
                    return anyhow::Ok(());
                }
            }
        }
        anyhow::Ok(())
    });

    let cpu = cpu_time(controller);
    let agents_cpu = agents_cpu_time();
    let (mut seen, mut writes) = (Vec::with_capacity(WRITES), Vec::with_capacity(WRITES));
    let one = format!("{CMS}/bench-watch");
    for i in 0..WRITES {
        let want = i.to_string();
        cm["data"]["i"] = json!(want);
        let start = Instant::now();
        let answer = send_json(&mut writer, Method::PUT, &one, Some(&cm)).await?;
        writes.push(ms(start.elapsed()));
        cm["metadata"]["resourceVersion"] = answer["metadata"]["resourceVersion"].clone();
        let at = loop {
            let (i, at) = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .with_context(|| format!("no watch event for write {want} within 10 s"))?
                .context("the watch ended")?;
            if i == want {
                break at;
            }
        };
        seen.push(ms(at.duration_since(start)));
    }
    let cpu = cpu_each(controller, cpu, WRITES);
    let agents = (agents_cpu_time().saturating_sub(agents_cpu)).as_secs_f64() * 1000.0 / WRITES as f64;
    reader.abort();
    println!("  2. watch on {CMS}, {WRITES} updates (PUT) of one ConfigMap, one at a time");
    row("write sent → its event at the watcher", format!("{}   (goal p99 ≤ 5 ms)", spread(&mut seen)));
    row("write sent → its answer", format!("{}   {cpu} (write and event)", spread(&mut writes)));
    row("the node agents' CPU", format!("{agents:.2} ms per write, all {NODES} together"));
    Ok(())
}

/// kubectl with the benchmark's kubeconfig and the discovery cache `cache`.
fn kubectl(dir: &Path, cache: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(dir.join("kubeconfig")).arg("--cache-dir").arg(dir.join(cache)).args(args).env_remove("KUBECONFIG");
    cmd
}

/// Runs `cmd` to its end: its wall time (ms), its stdout and its stderr; fails with its stderr.
fn timed(mut cmd: Command) -> anyhow::Result<(f64, String, String)> {
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("running {:?}", cmd.get_program()))?;
    let took = ms(start.elapsed());
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

fn emu_cmd(cluster: &Cluster, args: &[&str]) -> Command {
    let mut cmd = Command::new(emu_tests::emu_path());
    cmd.args(args).arg("--cluster").arg(&cluster.name).env_remove("EMU_CLUSTER").env("KUBECONFIG", emu_tests::suite_kubeconfig());
    cmd
}

/// Section 3: `kubectl get pods` and `emu get pods`.
fn gets(dir: &Path, cluster: &Cluster) -> anyhow::Result<()> {
    let (cold, out, _) = timed(kubectl(dir, "cache", &["get", "pods"]))?;
    let lines = out.lines().count();
    let (mut k, mut e) = (Vec::with_capacity(GETS), Vec::with_capacity(GETS));
    for _ in 0..GETS {
        k.push(timed(kubectl(dir, "cache", &["get", "pods"]))?.0);
        e.push(timed(emu_cmd(cluster, &["get", "pods"]))?.0);
    }
    let (km, em) = (percentile(&mut k, 50.0), percentile(&mut e, 50.0));
    println!("  3. get pods ({lines} lines), {GETS} runs each, alternating");
    row("kubectl get pods, warm discovery cache", format!("p50 {km:6.1} ms   max {:6.1} ms", k[k.len() - 1]));
    row("emu get pods", format!("p50 {em:6.1} ms   max {:6.1} ms", e[e.len() - 1]));
    row("ratio of the medians, kubectl / emu", format!("{:6.2}×", km / em));
    row("kubectl get pods, cold cache (its first run)", format!("    {cold:6.1} ms"));
    Ok(())
}

/// `count` ConfigMaps in `namespace`, as one multi-document YAML file (JSON is YAML).
fn configmaps_file(path: &Path, namespace: &str, count: usize) -> anyhow::Result<()> {
    let docs: Vec<String> = (0..count)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": namespace},
                "data": {"index": i.to_string(), "greeting": "hello from the benchmark"}})
            .to_string()
        })
        .collect();
    std::fs::write(path, docs.join("\n---\n"))?;
    Ok(())
}

/// Section 4: `kubectl apply -f` and `emu apply -f` of `count` ConfigMaps, each into a new
/// namespace of its own. Returns the controller's memory between the two.
fn applies(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    dir: &Path,
    cluster: &Cluster,
    count: usize,
    controller: i32,
) -> anyhow::Result<(f64, f64)> {
    rt.block_on(async {
        let mut conn = api.connect(false).await?;
        for ns in ["bench-kubectl", "bench-emu"] {
            send_json(&mut conn, Method::POST, "/api/v1/namespaces", Some(&json!({"metadata": {"name": ns}}))).await?;
        }
        anyhow::Ok(())
    })?;
    let (kfile, efile) = (dir.join("kubectl.yaml"), dir.join("emu.yaml"));
    configmaps_file(&kfile, "bench-kubectl", count)?;
    configmaps_file(&efile, "bench-emu", count)?;
    let (kt, out, err) = timed(kubectl(dir, "cache", &["apply", "-f", kfile.to_str().context("path")?]))?;
    let created = out.lines().filter(|l| l.ends_with(" created")).count();
    // kubectl's own limit (client-go: 5 requests/s after a burst of 10) shows in its log lines.
    let throttled = err.lines().filter(|l| l.contains("client-side throttling")).count();
    let mem = memory(controller);
    let (et, _, _) = timed(emu_cmd(cluster, &["apply", "-f", efile.to_str().context("path")?]))?;
    let listed = timed(kubectl(dir, "cache", &["get", "configmaps", "-n", "bench-emu", "--no-headers"]))?.1;
    let ek = listed.lines().filter(|l| l.starts_with("cm-")).count();
    println!("  4. apply -f of a file of {count} ConfigMaps, each into an empty namespace");
    row(
        &format!("kubectl apply -f ({created} created)"),
        format!("{kt:8.0} ms   ({:.2} ms per object; {throttled} lines on client-side throttling)", kt / count as f64),
    );
    row(&format!("emu apply -f ({ek} there after)"), format!("{et:8.0} ms   ({:.2} ms per object)", et / count as f64));
    row("ratio kubectl / emu", format!("{:8.2}×", kt / et));
    Ok(mem)
}

/// CPU time a process has used (user and system), from /proc/PID/stat.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, in clock ticks.
    let ticks: u64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// CPU time the cluster's node agents have used together.
fn agents_cpu_time() -> Duration {
    let nodes = std::fs::read_dir(Path::new("/run/emu").join(CLUSTER).join("nodes")).into_iter().flatten().flatten();
    nodes
        .filter_map(|n| std::fs::read_to_string(n.path().join("agent.pid")).ok())
        .filter_map(|pid| pid.trim().parse().ok())
        .map(cpu_time)
        .sum()
}

/// Waits until `pid` uses under 5% of a core over a second, or `limit` passes: how long it
/// waited (s) and the share of a core used in the last second.
fn settle(pid: i32, limit: Duration) -> (f64, f64) {
    let start = Instant::now();
    loop {
        let before = cpu_time(pid);
        std::thread::sleep(Duration::from_secs(1));
        let busy = cpu_time(pid).saturating_sub(before).as_secs_f64();
        if busy < 0.05 || start.elapsed() >= limit {
            return (start.elapsed().as_secs_f64(), busy);
        }
    }
}

/// The controller's RSS and PSS (MB), from /proc/PID/status and /proc/PID/smaps_rollup.
fn memory(pid: i32) -> (f64, f64) {
    (emu_tests::bench::proc_mb(pid, "status", "VmRSS:"), emu_tests::bench::proc_mb(pid, "smaps_rollup", "Pss:"))
}
