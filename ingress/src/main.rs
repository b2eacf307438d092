//! emu-ingress: the ingress controller, run as the pod of Deployment
//! `ingress-nginx/ingress-nginx-controller` (the ingress-nginx controller image's profile runs it
//! as `/nginx-ingress-controller`). It watches Ingresses, IngressClasses, Services,
//! EndpointSlices and Secrets through the API socket (as emu-dns does), renders nginx's
//! configuration with `emu_logic::ingress`, writes the files, runs the real nginx as its child
//! and reloads it gracefully (SIGHUP to the master: new workers with the new configuration, the
//! old ones finish their connections) when the text changes. It publishes the controller
//! Service's balancer address in `status.loadBalancer.ingress` of the Ingresses it serves (as
//! ingress-nginx's `--publish-service`) and records the renderer's problems as Warning Events.
//!
//! With `--gateway NS/NAME` it is instead one Gateway's data path (the pod emu's Gateway
//! controller provisions for each Gateway of an emu GatewayClass): it watches that Gateway, the
//! HTTPRoutes, Services, EndpointSlices, Secrets and Namespaces, renders with
//! `emu_logic::gateway_nginx`, and nginx listens on the Gateway's listener ports; Ingresses are
//! not served in this mode.

mod gateway;

use anyhow::Context;
use clap::Parser;
use emu_api::typed::{self, EndpointSlice, Ingress, IngressClass, Secret, Service};
use emu_logic::ingress::{self, Inputs, Layout, Problem};
use emu_proto::reflector::{self, Snapshot};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "emu-ingress",
    about = "emu's ingress controller: serves the cluster's Ingresses with nginx, as ingress-nginx's controller does."
)]
struct Args {
    /// The controller's API socket (where emu mounts it into the pod).
    #[arg(long, default_value = emu_logic::images::API_SOCKET_IN_CONTAINER)]
    socket: PathBuf,
    /// The IngressClass this controller serves (ingress-nginx's `--ingress-class`).
    #[arg(long, default_value = "nginx")]
    ingress_class: String,
    /// The controller value of the classes it serves (ingress-nginx's `--controller-class`);
    /// accepted for the manifest's sake: the class is chosen by name.
    #[arg(long, default_value = "k8s.io/ingress-nginx")]
    controller_class: String,
    /// `namespace/name` of the Service whose balancer address is published in the Ingresses'
    /// status (ingress-nginx's `--publish-service`).
    #[arg(long, default_value = "ingress-nginx/ingress-nginx-controller")]
    publish_service: String,
    /// `namespace/name` of the one Gateway to serve instead of Ingresses (the data path emu's
    /// Gateway controller provisions per Gateway).
    #[arg(long)]
    gateway: Option<String>,
    /// ingress-nginx's other flags of its manifest, accepted and ignored.
    #[arg(long)]
    election_id: Option<String>,
    #[arg(long)]
    watch_ingress_without_class: Option<String>,
    #[arg(long)]
    validating_webhook: Option<String>,
    #[arg(long)]
    validating_webhook_certificate: Option<String>,
    #[arg(long)]
    validating_webhook_key: Option<String>,
    /// The nginx binary.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// Where nginx.conf, the upstreams file and the certificates are written (ingress-nginx's
    /// /etc/nginx and /etc/ingress-controller/ssl).
    #[arg(long, default_value = "/etc/nginx")]
    conf_dir: PathBuf,
    #[arg(long, default_value = "/etc/ingress-controller/ssl")]
    cert_dir: PathBuf,
    /// nginx's logs, pid file and temporary directories.
    #[arg(long, default_value = "/tmp/nginx")]
    run_dir: PathBuf,
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// `/healthz` for the pod's probes (ingress-nginx's `--healthz-port`), served by nginx.
    #[arg(long, default_value_t = 10254)]
    healthz_port: u16,
}

/// The kinds the configuration is built from.
const KINDS: [&str; 5] = ["Ingress", "IngressClass", "Service", "EndpointSlice", "Secret"];

/// How long a change waits for the ones that come with it (the objects of one apply, a
/// Service's slices) before rendering. Every change waits this long before nginx sees it, so it is
/// short: at 100 ms an endpoint took ~120 ms to be routed (emu-bench-ingress; the goal is 100 ms),
/// and a burst of reloads costs little (one new worker each, ~10 ms).
const RENDER_DELAY: Duration = Duration::from_millis(20);

fn main() -> anyhow::Result<()> {
    emu_proto::daemon::limit_malloc_arenas();
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(args))
}

struct Controller {
    args: Args,
    layout: Layout,
    conf_file: PathBuf,
    client: emu_proto::api_client::ApiClient<tonic::transport::Channel>,
    nginx: Option<tokio::process::Child>,
    conf: String,
    upstreams: String,
    certificates: Vec<ingress::CertFile>,
    reported: BTreeSet<Problem>,
    /// The Gateway renderer's problems already logged.
    gateway_reported: BTreeSet<emu_logic::gateway_nginx::Problem>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    emu_proto::daemon::init_logging("info");
    let s = |p: &PathBuf| p.display().to_string();
    for dir in [&args.conf_dir, &args.cert_dir, &args.run_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let default_cert = args.cert_dir.join("default-fake-certificate.pem");
    write_default_certificate(&default_cert)?;
    let layout = Layout {
        run_dir: s(&args.run_dir),
        cert_dir: s(&args.cert_dir),
        default_cert: s(&default_cert),
        upstreams_file: s(&args.conf_dir.join("upstreams.conf")),
        http_port: args.http_port,
        https_port: args.https_port,
    };
    let upstream: emu_proto::transport::Upstream = args.socket.clone().into();
    let client = loop {
        match upstream.api().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, socket = %args.socket.display(), "connecting to the controller; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let (tx, mut rx) = tokio::sync::watch::channel(Snapshot::default());
    let kinds: &[&str] = if args.gateway.is_some() { &gateway::KINDS } else { &KINDS };
    tokio::spawn(reflector::run(upstream, kinds.iter().map(|k| k.to_string()).collect(), String::new(), tx));
    match &args.gateway {
        Some(gw) => tracing::info!(gateway = %gw, "gateway data path watching"),
        None => {
            tracing::info!(class = %args.ingress_class, controller = %args.controller_class, publish = %args.publish_service, "ingress controller watching")
        }
    }
    let conf_file = args.conf_dir.join("nginx.conf");
    let mut c = Controller {
        args,
        layout,
        conf_file,
        client,
        nginx: None,
        conf: String::new(),
        upstreams: String::new(),
        certificates: Vec::new(),
        reported: BTreeSet::new(),
        gateway_reported: BTreeSet::new(),
    };

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() { break; }
                tokio::time::sleep(RENDER_DELAY).await;
                let snapshot = rx.borrow_and_update().clone();
                if snapshot.synced {
                    if let Err(e) = c.sync(&snapshot).await {
                        tracing::error!(error = format!("{e:#}"), "sync failed; retried at the next change or tick");
                    }
                }
            }
            // Level-triggered: a failed status write or a dead nginx is retried.
            _ = tick.tick() => {
                let snapshot = rx.borrow().clone();
                if snapshot.synced {
                    if let Err(e) = c.sync(&snapshot).await {
                        tracing::error!(error = format!("{e:#}"), "sync failed; retried at the next change or tick");
                    }
                }
            }
            _ = term.recv() => break,
        }
    }
    // ingress-nginx stops nginx with `nginx -s quit` (a graceful shutdown) on SIGTERM.
    if let Some(child) = &c.nginx {
        signal(child, libc::SIGQUIT);
    }
    if let Some(mut child) = c.nginx.take() {
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    Ok(())
}

fn signal(child: &tokio::process::Child, sig: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
}

/// The processes whose parent is `pid` (nginx's workers, of its master), from /proc: the pod's
/// own, as the container has its pid namespace.
fn children(pid: u32) -> BTreeSet<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether a worker has begun its graceful exit (nginx retitles it so) or has exited (a zombie
/// has no command line; gone, no file).
fn shutting_down(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c.is_empty() || c.windows(13).any(|w| w == b"shutting down"))
}

/// After a reload, nginx's master starts the new workers and then sleeps 100 ms before it tells
/// the old ones to stop accepting and quit (`ngx_msleep(100)`, "allow new processes to start");
/// meanwhile both accept connections, so an endpoint that left was still reached ~120 ms after its
/// EndpointSlice changed (emu-bench-ingress; the goal is 100 ms). Once a new worker exists, the old
/// ones are told to quit gracefully (SIGQUIT: stop accepting, finish their requests), as the master
/// would tell them 100 ms later. Safe by nginx's master loop: it keeps its signals blocked from the
/// reload to the moment it signals the old workers itself, so an old worker that exits early is
/// reaped only after the master has marked it as exiting, and is not respawned. Nothing is done
/// when no new worker appears (a refused configuration keeps the old workers).
async fn hasten_handover(master: u32, old_workers: BTreeSet<u32>) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = children(master);
        if now.is_empty() {
            return; // nginx has gone, or /proc has no children list: nothing to hasten
        }
        if now.is_subset(&old_workers) {
            continue; // no new worker yet
        }
        for worker in old_workers.iter().filter(|w| now.contains(w) && !shutting_down(**w)) {
            // SAFETY: kill(2) of a worker of our own nginx (a child of our child), which the
            // master has not reaped (it is in the master's children list).
            unsafe { libc::kill(*worker as libc::pid_t, libc::SIGQUIT) };
        }
        return;
    }
}

fn decoded<T: serde::de::DeserializeOwned>(snapshot: &Snapshot, kind: &str) -> Vec<T> {
    typed::decode_all(snapshot.objects.iter().filter(|((k, _, _), _)| k == kind).map(|(_, v)| v.as_ref()))
}

impl Controller {
    async fn sync(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        match self.args.gateway.clone() {
            Some(gw) => self.sync_gateway(snapshot, &gw).await,
            None => self.sync_ingresses(snapshot).await,
        }
    }

    async fn sync_ingresses(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let classes: Vec<IngressClass> = decoded(snapshot, "IngressClass");
        let ingresses: Vec<Ingress> = decoded(snapshot, "Ingress");
        let services: Vec<Service> = decoded(snapshot, "Service");
        let slices: Vec<EndpointSlice> = decoded(snapshot, "EndpointSlice");
        let secrets: Vec<Secret> = decoded(snapshot, "Secret");
        let inputs = Inputs {
            class: &self.args.ingress_class,
            classes: &classes,
            ingresses: &ingresses,
            services: &services,
            slices: &slices,
            secrets: &secrets,
        };
        let model = ingress::build(&inputs, &self.layout);
        let conf = with_health_server(ingress::render_conf(&model, &self.layout), self.args.healthz_port);
        let upstreams = ingress::render_upstreams(&model);
        self.apply(conf, upstreams, &model.certificates, model.servers.len()).await?;
        self.report(&model.problems, &ingresses).await;
        self.publish_status(snapshot, &classes, &ingresses).await;
        Ok(())
    }

    /// Writes the files that changed and starts or reloads nginx (`servers` for the log line).
    async fn apply(&mut self, conf: String, upstreams: String, certificates: &[ingress::CertFile], servers: usize) -> anyhow::Result<()> {
        let changed = conf != self.conf || upstreams != self.upstreams || certificates != self.certificates;
        if changed {
            for cert in certificates {
                std::fs::write(&cert.path, &cert.pem).with_context(|| format!("writing {}", cert.path))?;
            }
            std::fs::write(&self.layout.upstreams_file, &upstreams).with_context(|| format!("writing {}", self.layout.upstreams_file))?;
            std::fs::write(&self.conf_file, &conf).with_context(|| format!("writing {}", self.conf_file.display()))?;
        }
        self.ensure_nginx(changed).await?;
        if changed {
            tracing::info!(servers, conf_changed = conf != self.conf, "configuration applied");
            self.conf = conf;
            self.upstreams = upstreams;
            self.certificates = certificates.to_vec();
        }
        Ok(())
    }

    /// Starts nginx if it is not running, or reloads it when the files changed.
    async fn ensure_nginx(&mut self, changed: bool) -> anyhow::Result<()> {
        if let Some(child) = &mut self.nginx {
            match child.try_wait() {
                Ok(None) => {
                    if changed {
                        // A graceful reload: nginx checks the new configuration first and
                        // keeps the old one when it is refused (logged in its error log).
                        if let Some(master) = child.id() {
                            let old_workers = children(master);
                            signal(child, libc::SIGHUP);
                            tokio::spawn(hasten_handover(master, old_workers));
                        }
                    }
                    return Ok(());
                }
                Ok(Some(status)) => tracing::warn!(%status, "nginx exited; starting it again"),
                Err(e) => tracing::warn!(error = %e, "waiting for nginx"),
            }
        }
        let mut cmd = tokio::process::Command::new(&self.args.nginx);
        cmd.arg("-p")
            .arg(&self.layout.run_dir)
            .arg("-c")
            .arg(&self.conf_file)
            .arg("-e")
            .arg("/dev/stderr")
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting {}", self.args.nginx.display()))?;
        tracing::info!(pid = child.id(), "nginx started");
        self.nginx = Some(child);
        Ok(())
    }

    /// Each new problem once, as a Warning Event on its Ingress.
    async fn report(&mut self, problems: &[Problem], ingresses: &[Ingress]) {
        let now: BTreeSet<Problem> = problems.iter().cloned().collect();
        for p in now.difference(&self.reported) {
            tracing::warn!(ingress = %format!("{}/{}", p.namespace, p.ingress), reason = p.reason, message = %p.message, "problem");
            let Some(ing) = ingresses.iter().find(|i| typed::key(&i.metadata) == (p.namespace.as_str(), p.ingress.as_str())) else {
                continue;
            };
            self.warning_event(&typed::encode(ing), p.reason, &p.message, "nginx-ingress-controller").await;
        }
        self.reported = now;
    }

    /// Records a Warning Event on `object` from `component`.
    async fn warning_event(&self, object: &Value, reason: &str, message: &str, component: &str) {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let stamp = emu_api::time::rfc3339(wall.as_secs() as i64);
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let event = emu_logic::events::new_event(object, "Warning", reason, message, component, &host, &stamp, wall.as_nanos());
        let request =
            emu_proto::ApplyRequest { objects: vec![emu_proto::Object { json: event.to_string() }], create_only: false, dry_run: false };
        if let Err(e) = self.client.clone().apply(request).await {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }

    /// `status.loadBalancer.ingress` of the served Ingresses: the published Service's balancer
    /// addresses (empty until the balancer has one).
    async fn publish_status(&mut self, snapshot: &Snapshot, classes: &[IngressClass], ingresses: &[Ingress]) {
        let (ns, name) = self.args.publish_service.split_once('/').unwrap_or(("ingress-nginx", &self.args.publish_service));
        let addresses: Vec<Value> = snapshot
            .objects
            .get(&("Service".to_string(), ns.to_string(), name.to_string()))
            .and_then(|s| s.pointer("/status/loadBalancer/ingress").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| {
                let mut out = serde_json::Map::new();
                for field in ["ip", "hostname"] {
                    if let Some(v) = a.get(field) {
                        out.insert(field.to_string(), v.clone());
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            })
            .collect();
        for ing in ingresses.iter().filter(|i| ingress::serves(&self.args.ingress_class, classes, i)) {
            let (ins, iname) = typed::key(&ing.metadata);
            let current = snapshot
                .objects
                .get(&("Ingress".to_string(), ins.to_string(), iname.to_string()))
                .and_then(|v| v.pointer("/status/loadBalancer/ingress").cloned())
                .unwrap_or(Value::Null);
            let current = current.as_array().cloned().unwrap_or_default();
            if current == addresses {
                continue;
            }
            let status = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"namespace": ins, "name": iname, "uid": ing.metadata.uid},
                "status": {"loadBalancer": {"ingress": addresses}}});
            match self
                .client
                .clone()
                .update_status(emu_proto::UpdateStatusRequest { object: Some(emu_proto::Object { json: status.to_string() }) })
                .await
            {
                Ok(_) => tracing::info!(ingress = %format!("{ins}/{iname}"), addresses = addresses.len(), "status updated"),
                Err(e) => tracing::warn!(error = %e, ingress = %format!("{ins}/{iname}"), "updating an Ingress status failed"),
            }
        }
    }
}

/// The rendered configuration with a server answering `/healthz` (200) on `port`, as
/// ingress-nginx's controller does on 10254: served by nginx itself, so that the pod is ready
/// once nginx runs with a configuration (a probe of this program would be ready before nginx
/// listens). The server goes inside the http block, which the renderer's text closes last.
fn with_health_server(conf: String, port: u16) -> String {
    let Some(body) = conf.strip_suffix("}\n") else { return conf };
    format!(
        "{body}
    # The pod's probes (ingress-nginx's --healthz-port).
    server {{
        listen {port};
        access_log off;
        location = /healthz {{
            return 200 \"ok\\n\";
        }}
        location / {{
            return 404;
        }}
    }}
}}
"
    )
}

/// ingress-nginx's "Kubernetes Ingress Controller Fake Certificate": served for hosts without a
/// usable TLS Secret (and for HTTPS requests without SNI).
fn write_default_certificate(path: &std::path::Path) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate().context("generating the default certificate's key")?;
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()]).context("default certificate parameters")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme Co");
    params.distinguished_name.push(rcgen::DnType::CommonName, "Kubernetes Ingress Controller Fake Certificate");
    let cert = params.self_signed(&key).context("signing the default certificate")?;
    std::fs::write(path, cert.pem() + &key.serialize_pem()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The add-on's Deployment runs the program with ingress-nginx's own arguments.
    #[test]
    fn the_manifests_arguments_parse() {
        let deployment = emu_logic::ingress::addon_objects().into_iter().find(|o| o["kind"] == "Deployment").unwrap();
        let args: Vec<String> = serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap();
        let a = Args::try_parse_from(&args).unwrap();
        assert_eq!(a.ingress_class, "nginx");
        assert_eq!(a.publish_service, "ingress-nginx/ingress-nginx-controller");
        assert_eq!(a.nginx, PathBuf::from("/usr/sbin/nginx"));
        assert_eq!(a.healthz_port, 10254);
    }

    /// The Gateway data path's Deployment (emu's Gateway controller) runs it with `--gateway`.
    #[test]
    fn the_gateway_argument_parses() {
        let a = Args::try_parse_from(["/nginx-ingress-controller", "--gateway=default/web"]).unwrap();
        assert_eq!(a.gateway.as_deref(), Some("default/web"));
        assert_eq!(a.healthz_port, 10254);
    }

    #[test]
    fn the_health_server_goes_inside_the_http_block() {
        let conf = with_health_server("http {\n    server {\n    }\n}\n".to_string(), 10254);
        assert!(conf.starts_with("http {\n    server {\n    }\n\n    # The pod's probes"), "{conf}");
        assert!(conf.contains("        listen 10254;\n") && conf.ends_with("    }\n}\n"), "{conf}");
    }
}
