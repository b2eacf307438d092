//! `emu up`, `emu down`, `emu status`, `emu restart`: a cluster's life.
//!
//! `up` is a list of named steps, each printed with ✓ or ✗ (docs/architecture.md, "Conventions"). Everything it creates is
//! named after the cluster — network namespaces `emu-<cluster>-…`, the runtime directory
//! /run/emu/<cluster>, the cgroup emu-<cluster> — so `down` finds and removes all of it, also after
//! every emu process was killed. `up` holds the cluster's name while it creates it; a `down`
//! meanwhile stops it, and `up` says so (the provider's `Local::claim` says how).

use crate::context::{self, require_root, Ctx};
use crate::{verbs, Globals};
use anyhow::{bail, Context};
use emu_api::object;
use emu_logic::cluster::{ClusterConfig, NodeConfig, Paths};
use emu_logic::ipam;
use emu_provider::{Daemon as ProviderDaemon, Local, Provider};
use emu_scenario::scenario;
use emu_scenario::steps::{self, Daemon};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DEFAULT_CLUSTER: &str = "emu";
const FABRIC_CIDR: &str = "172.18.0.0/16";
const POD_CIDR: &str = "10.244.0.0/16";
const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The outside world (TEST-NET-2): the external client and the nodes' ExternalIPs.
const OUTSIDE_CIDR: &str = "198.51.100.0/24";
/// The cloud load balancer's addresses (TEST-NET-3), in the outside world.
const LOAD_BALANCER_CIDR: &str = "203.0.113.0/24";

/// One named step of `up`: prints `✓ name (time)` or `✗ name: error`; when `quiet` (`emu test`
/// reports the bring-up as one line), nothing, and an error names the step. A step that ends
/// after the cluster was deleted (`emu down` during `up`) fails with that, whatever it did.
fn step<T>(quiet: bool, provider: &Local, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    use std::io::IsTerminal;
    let f = || {
        let r = f();
        still_wanted(provider)?;
        r
    };
    if quiet {
        return f().map_err(|e| e.context(name.to_string()));
    }
    let start = Instant::now();
    // On a terminal the step shows while it runs and is then overwritten; in logs, one line.
    let tty = std::io::stdout().is_terminal();
    if tty {
        print!(" • {name} …");
        let _ = std::io::stdout().flush();
    }
    let r = f();
    let ms = start.elapsed().as_millis();
    let cr = if tty { "\r\x1b[2K" } else { "" };
    match &r {
        Ok(_) => println!("{cr} ✓ {name} ({ms} ms)"),
        Err(e) => println!("{cr} ✗ {name}: {}", context::render_error(e).trim_start_matches("error: ")),
    }
    r
}

/// (source label, parsed documents) of a manifest file or of inline YAML.
pub(crate) type Manifests = Vec<(String, Vec<Value>)>;

/// What `up` (and `emu test`) will do, fully read and checked before anything is created.
pub(crate) struct Plan {
    /// `name:` of the scenario.
    pub name: Option<String>,
    pub nodes: Vec<String>,
    node_failure: scenario::NodeFailure,
    manifests: Manifests,
    /// The scenario's steps, each with the documents an `apply` step applies.
    pub steps: Vec<(steps::Step, Manifests)>,
    pub seed: Option<u64>,
    /// Emulated hosts the nodes are spread over (1: every node on this machine as before).
    pub hosts: usize,
    /// This machine's underlay address, where other machines join (`emu up --advertise-address`).
    pub advertise: Option<std::net::Ipv4Addr>,
}

/// The documents of a `manifests:` entry or an `apply:` step (`field` names it in errors).
fn read_source(file: &Path, field: &str, source: &scenario::ManifestSource) -> anyhow::Result<Manifests> {
    match source {
        scenario::ManifestSource::Path(p) => {
            let path = file.parent().unwrap_or(Path::new(".")).join(p);
            if !path.exists() {
                bail!(
                    "scenario {}: {field}: file {} does not exist (paths are relative to the scenario file)",
                    file.display(),
                    path.display()
                );
            }
            verbs::read_manifests(&path)
        }
        scenario::ManifestSource::Inline(text) => {
            let label = format!("{} ({field})", file.display());
            Ok(vec![(label.clone(), verbs::parse_manifest_text(text, &label)?)])
        }
    }
}

/// The checks the API server makes that need no cluster, on every document.
fn check_manifests(manifests: &Manifests) -> anyhow::Result<()> {
    for (label, docs) in manifests {
        for d in docs {
            // Rendered here: an API error wrapped in context would print without the label.
            verbs::check_offline(d).map_err(|e| anyhow::anyhow!("{label}: {}", context::render_error(&e).trim_start_matches("error: ")))?;
        }
    }
    Ok(())
}

pub(crate) fn plan(file: Option<&Path>, nodes: Option<usize>) -> anyhow::Result<Plan> {
    let Some(file) = file else {
        let n = nodes.unwrap_or(scenario::DEFAULT_NODE_COUNT);
        if n == 0 || n > scenario::MAX_NODES {
            bail!("--nodes {n}: give between 1 and {}", scenario::MAX_NODES);
        }
        return Ok(Plan {
            name: None,
            nodes: scenario::default_node_names(n),
            node_failure: Default::default(),
            manifests: vec![],
            steps: vec![],
            seed: None,
            hosts: 1,
            advertise: None,
        });
    };
    let text = std::fs::read_to_string(file).with_context(|| format!("reading scenario {}", file.display()))?;
    let sc = scenario::parse(&text).with_context(|| format!("scenario {}", file.display()))?;
    let mut node_names = sc.nodes;
    if let Some(n) = nodes {
        if n != node_names.len() {
            node_names = scenario::default_node_names(n);
        }
    }
    // `addons:` first, as `emu addons enable` before `kubectl apply`: the controller runs when
    // the manifests' Ingresses come, and a certificate may go into an add-on's namespace.
    let mut manifests = Vec::new();
    for (i, a) in sc.addons.iter().enumerate() {
        manifests.push((format!("add-on {a} ({} addons[{i}])", file.display()), crate::addons::objects(a)?));
    }
    for (i, m) in sc.manifests.iter().enumerate() {
        manifests.extend(read_source(file, &format!("manifests[{i}]"), m)?);
    }
    let secrets = certificate_secrets(&sc.certificates, &manifests, &file.display().to_string())?;
    let at = certificates_position(&sc.certificates, &manifests);
    manifests.splice(at..at, secrets);
    check_manifests(&manifests)?;
    let mut planned = Vec::new();
    for (i, s) in sc.steps.into_iter().enumerate() {
        let docs = match &s.action {
            steps::Action::Apply(source) => read_source(file, &format!("steps[{i}].apply"), source)?,
            _ => vec![],
        };
        check_manifests(&docs)?;
        planned.push((s, docs));
    }
    let hosts = sc.hosts.min(node_names.len()).max(1);
    Ok(Plan {
        name: sc.name,
        nodes: node_names,
        node_failure: sc.node_failure,
        manifests,
        steps: planned,
        seed: sc.seed,
        // `hosts:` (checked against the nodes); `--nodes` may have changed their number since.
        hosts,
        advertise: None,
    })
}

/// The scenario's `certificates:` as Secrets, one `(label, [Secret])` each: a fresh self-signed
/// certificate and key per entry, as the tutorial's `make keys` and `kubectl create secret tls`
/// make them. A Secret of the same name in the manifests would silently replace it, so that is
/// refused.
fn certificate_secrets(
    certificates: &[scenario::Certificate],
    manifests: &[(String, Vec<Value>)],
    file: &str,
) -> anyhow::Result<Vec<(String, Vec<Value>)>> {
    let mut out = Vec::new();
    for (i, c) in certificates.iter().enumerate() {
        let clash = manifests.iter().find(|(_, docs)| {
            docs.iter().any(|d| object::kind(d) == "Secret" && object::name(d) == c.secret && namespace_or_default(d) == c.namespace)
        });
        if let Some((label, _)) = clash {
            bail!(
                "scenario {file}: scenario field `certificates[{i}].secret`: {label} also defines Secret {}/{}: keep one of them (rename the certificate's secret or drop the manifest's)",
                c.namespace,
                c.secret
            );
        }
        let made = |d: &Value| object::kind(d) == "Namespace" && object::name(d) == c.namespace;
        if !BUILTIN_NAMESPACES.contains(&c.namespace.as_str()) && !manifests.iter().any(|(_, docs)| docs.iter().any(made)) {
            bail!(
                "scenario {file}: scenario field `certificates[{i}].namespace`: namespace {:?} does not exist when the Secret is made: add a Namespace manifest for it, or leave namespace out (default)",
                c.namespace
            );
        }
        let (cert, key) = crate::tls::self_signed(&c.common_name, &c.sans)
            .map_err(|e| anyhow::anyhow!("scenario {file}: scenario field `certificates[{i}]`: making the certificate: {e}"))?;
        out.push((format!("{file} (certificates[{i}])"), vec![c.secret_object(cert.as_bytes(), key.as_bytes())]));
    }
    Ok(out)
}

/// The namespaces a new cluster has (the controller makes them).
const BUILTIN_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespace_or_default(doc: &Value) -> &str {
    match object::namespace(doc) {
        "" => "default",
        ns => ns,
    }
}

/// Where the certificates' Secrets go among the manifests: first, as in the tutorial (secret,
/// then the workloads that mount it) — unless a Secret's namespace is made by the manifests;
/// then right after the last source that makes one.
fn certificates_position(certificates: &[scenario::Certificate], manifests: &[(String, Vec<Value>)]) -> usize {
    manifests
        .iter()
        .rposition(|(_, docs)| {
            docs.iter().any(|d| object::kind(d) == "Namespace" && certificates.iter().any(|c| c.namespace == object::name(d)))
        })
        .map_or(0, |i| i + 1)
}

pub fn validate_cluster_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 16
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        // No '-' so that `emu-<cluster>-…` names can never belong to two clusters.
        bail!("invalid cluster name {name:?}: use 1-16 lower case letters and digits, starting with a letter (e.g. `demo`, `lab2`)");
    }
    Ok(())
}

pub fn up(
    file: Option<PathBuf>,
    nodes: Option<usize>,
    (hosts, advertise): (usize, Option<std::net::Ipv4Addr>),
    retain: bool,
    timeout: u64,
    globals: &Globals,
) -> anyhow::Result<i32> {
    require_root()?;
    let name = globals.cluster_name().unwrap_or_else(|| DEFAULT_CLUSTER.to_string());
    validate_cluster_name(&name)?;
    let mut plan = plan(file.as_deref(), nodes)?;
    // `--hosts` (above its default of 1) over the scenario's `hosts:`.
    let hosts = if hosts > 1 { hosts } else { plan.hosts };
    if hosts == 0 || hosts > 250 || hosts > plan.nodes.len() {
        bail!("--hosts {hosts}: give between 1 and the number of nodes ({}), at most 250", plan.nodes.len());
    }
    if hosts > 1 && advertise.is_some() {
        bail!("--advertise-address is this machine's own address, for real machines to join; emulated hosts (--hosts) have theirs on their LAN: give one or the other");
    }
    plan.hosts = hosts;
    plan.advertise = advertise;
    emu_provider::programs::require_companions()?;
    if cluster_exists(&name)? {
        return Err(already_exists(&name));
    }
    let mut provider = claim(&name)?;
    println!("Creating cluster {name:?} …");
    let started = Instant::now();
    // The context is written while the name is still claimed: a `down` that began meanwhile
    // removes it once `up` has stopped.
    let result = bring_up(&provider, &plan, timeout, false).and_then(|pods| {
        let exported = export_kubeconfig(&name);
        still_wanted(&provider)?;
        Ok((pods, exported))
    });
    match result {
        Ok((pods, exported)) => {
            // Made: a `down` from now on deletes it as any other.
            provider.release_claim();
            println!(
                "Cluster {name:?} is ready in {:.2} s: {} nodes, {pods} pods Running.",
                started.elapsed().as_secs_f64(),
                plan.nodes.len()
            );
            // As kind: a kubeconfig that cannot be written fails `up`, and the cluster stays.
            exported.with_context(|| {
                format!(
                    "cluster {name:?} is up, but kubectl's context for it was not written; `emu` works with it as it is. Once fixed, `sudo emu kubeconfig --merge{}` writes it",
                    cluster_flag(&name)
                )
            })?;
            let context = crate::kubeconfig::context_name(&name);
            println!("Set kubectl context to {context:?}");
            println!("You can now use your cluster with:\n\nkubectl cluster-info --context {context}\n");
            if !plan.steps.is_empty() {
                let file = file.as_deref().map(|f| f.display().to_string()).unwrap_or_default();
                println!(
                    "The scenario has {} steps: `emu up` does not run them; `sudo emu test {file}` does, on a cluster of its own.\n",
                    plan.steps.len()
                );
            }
            print_hints(&name);
            Ok(0)
        }
        Err(e) => {
            if retain && !provider.claim_lost() {
                eprintln!("Keeping what was created (--retain); remove it with `sudo emu down --cluster {name}`.");
            } else {
                // Still holding the name: a `down` that began meanwhile waits for this.
                let _ = provider.delete_cluster();
            }
            Err(e)
        }
    }
}

fn already_exists(name: &str) -> anyhow::Error {
    anyhow::anyhow!("cluster {name:?} already exists: use it, or remove it with `sudo emu down --cluster {name}`")
}

/// Whether anything of cluster `name` is on this machine (its directory or a namespace).
pub(crate) fn cluster_exists(name: &str) -> anyhow::Result<bool> {
    Local::new(name).exists()
}

/// The provider's handle on cluster `name` for creating it, holding the name until the cluster
/// is made ([`Local::claim`]): `emu down` meanwhile stops the creation rather than racing it.
pub(crate) fn claim(name: &str) -> anyhow::Result<Local> {
    Local::claim(name).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => already_exists(name),
        std::io::ErrorKind::NotFound => deleted(name),
        _ => anyhow::Error::new(e).context(format!("claiming the name of cluster {name:?}")),
    })
}

fn deleted(name: &str) -> anyhow::Error {
    anyhow::anyhow!("cluster {name:?} was deleted while it was being created")
}

/// Err once the cluster being created was deleted (`emu down` during `up`); always Ok for a
/// handle that is not creating one.
fn still_wanted(provider: &Local) -> anyhow::Result<()> {
    match provider.claim_lost() {
        true => Err(deleted(provider.cluster())),
        false => Ok(()),
    }
}

/// Creates the cluster `provider` claimed ([`claim`]) as `plan` says (through the local
/// provider, as kind creates a cluster through docker) and waits until every pod runs; returns
/// the number of pods. Each step, and each wait, stops once the cluster was deleted. The caller
/// tears down what is left on failure.
pub(crate) fn bring_up(provider: &Local, plan: &Plan, timeout: u64, quiet: bool) -> anyhow::Result<usize> {
    let name = provider.cluster();
    let paths = &Paths::new(name);
    let rt = context::runtime()?;
    let fabric: ipam::Ipv4Cidr = FABRIC_CIDR.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let outside: ipam::Ipv4Cidr = OUTSIDE_CIDR.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    // With emulated hosts the control plane's machine (the first) makes its own nodes; the
    // others join with `emu join`.
    let spread = emu_provider::hosts::spread(&plan.nodes, plan.hosts);
    let multi = plan.hosts > 1;
    let config = ClusterConfig {
        name: name.to_string(),
        nodes: spread[0]
            .iter()
            .enumerate()
            .map(|(i, n)| NodeConfig {
                name: n.clone(),
                index: i,
                internal_ip: ipam::fabric_ip(fabric, i).to_string(),
                external_ip: ipam::fabric_ip(outside, i).to_string(),
            })
            .collect(),
        fabric_cidr: FABRIC_CIDR.into(),
        pod_cidr: POD_CIDR.into(),
        node_prefix: 24,
        service_cidr: SERVICE_CIDR.into(),
        outside_cidr: OUTSIDE_CIDR.into(),
        load_balancer_cidr: LOAD_BALANCER_CIDR.into(),
        node_grace_seconds: plan.node_failure.not_ready_after.unwrap_or(emu_logic::cluster::DEFAULT_NODE_GRACE_SECONDS),
        eviction_seconds: plan.node_failure.evict_after,
        host: String::new(),
        advertise_address: String::new(),
        control_plane: String::new(),
        mtu: 0,
    };
    let mut config = config;
    if multi {
        config.host = emu_provider::hosts::host_name(0);
        config.advertise_address = emu_provider::hosts::host_ip(0).to_string();
        // The emulated LAN's links are 1500 bytes.
        config.mtu = emu_provider::hosts::lan_overlay_mtu();
    } else if let Some(addr) = plan.advertise {
        // A real machine others join: its host name, its own address and its interface's MTU.
        config.host = nix::unistd::gethostname()?.to_string_lossy().to_ascii_lowercase();
        config.advertise_address = addr.to_string();
        config.mtu = emu_provider::hosts::underlay_mtu(addr)?.saturating_sub(emu_provider::hosts::VXLAN_OVERHEAD);
    }
    if multi {
        step(quiet, provider, &format!("Creating {} emulated hosts on LAN 192.0.2.0/24", plan.hosts), || {
            emu_provider::hosts::create_lan(name, plan.hosts)
        })?;
    }
    step(
        quiet,
        provider,
        &format!("Creating {} nodes ({})", config.nodes.len(), config.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")),
        || {
            provider.create_cluster(&config)?;
            if multi {
                provider.pin_underlay(&emu_provider::hosts::host_netns(name, 0))?;
                let peers: Vec<std::net::Ipv4Addr> = (1..plan.hosts).map(emu_provider::hosts::host_ip).collect();
                provider.stretch(&config, &peers)?;
            } else if plan.advertise.is_some() {
                // The machine's own namespace is the underlay: the VXLAN sockets and the join
                // listener are the one thing emu adds there (docs/architecture.md, containment).
                provider.pin_underlay(std::path::Path::new("/proc/self/ns/net"))?;
                provider.stretch(&config, &[])?;
            }
            for n in &config.nodes {
                provider.create_node(&config, n)?;
            }
            Ok(())
        },
    )?;
    let mut client = step(quiet, provider, "Starting the control plane (emu-controller)", || {
        provider.start_daemon(&ProviderDaemon::Controller)?;
        wait_for_controller(&rt, provider, Duration::from_secs(10))?;
        Ok(rt.block_on(emu_proto::connect_unix(&paths.socket()))?)
    })?;
    step(quiet, provider, "Starting node agents", || {
        for n in &config.nodes {
            provider.start_daemon(&ProviderDaemon::Agent(n.name.clone()))?;
        }
        provider.start_daemon(&ProviderDaemon::Cloud)?;
        wait_until(provider, Duration::from_secs(20), "nodes to register and become Ready", || {
            let nodes = rt.block_on(verbs::list(&mut client, "Node", "", ""))?;
            Ok(nodes.len() == config.nodes.len() && nodes.iter().all(is_node_ready))
        })
    })?;
    if multi {
        step(
            quiet,
            provider,
            &format!("Joining hosts {}", (1..plan.hosts).map(emu_provider::hosts::host_name).collect::<Vec<_>>().join(", ")),
            || join_emulated_hosts(&rt, &mut client, name, &spread),
        )?;
    }
    for (label, docs) in &plan.manifests {
        if docs.is_empty() {
            continue;
        }
        let applied =
            step(quiet, provider, &format!("Applying {label}"), || rt.block_on(verbs::apply_docs(&mut client, docs.clone(), false)))?;
        verbs::Applied::print_warnings(&applied);
        for l in verbs::Applied::lines(applied).iter().filter(|_| !quiet) {
            println!("     {l}");
        }
    }
    let mut count = 0;
    step(quiet, provider, "Waiting for pods to be Running", || {
        wait_until(provider, Duration::from_secs(timeout), "pods to be Running", || {
            let pods = rt.block_on(verbs::list(&mut client, "Pod", "", ""))?;
            for p in &pods {
                if let Some(reason) = stuck_reason(p) {
                    bail!("pod {}/{} cannot start: {reason}", object::namespace(p), object::name(p));
                }
            }
            count = pods.len();
            // Workload controllers create their pods asynchronously: wait for them to count every
            // replica ready, then for every pod.
            let mut settled = true;
            for kind in ["Deployment", "ReplicaSet"] {
                for w in rt.block_on(verbs::list(&mut client, kind, "", ""))? {
                    let want = w["spec"]["replicas"].as_i64().unwrap_or(1);
                    let observed =
                        w["status"]["observedGeneration"].as_i64().unwrap_or(0) >= w["metadata"]["generation"].as_i64().unwrap_or(1);
                    settled &= observed && w["status"]["readyReplicas"].as_i64().unwrap_or(0) == want;
                }
            }
            Ok(settled && pods.iter().all(|p| p["status"]["phase"] == "Running" && pod_ready(p)))
        })
    })?;
    Ok(count)
}

/// Makes a bootstrap token (valid for an hour, deleted once used) and has every emulated host
/// but the first join with it, one after the other, each as a real machine would: `emu join` on
/// the host.
fn join_emulated_hosts(
    rt: &tokio::runtime::Runtime,
    client: &mut emu_proto::api_client::ApiClient<tonic::transport::Channel>,
    name: &str,
    spread: &[Vec<String>],
) -> anyhow::Result<()> {
    let info = rt.block_on(client.cluster_info(emu_proto::ClusterInfoRequest {}))?.into_inner();
    if info.join_endpoint.is_empty() {
        bail!("the controller has no join listener (see {})", Paths::new(name).controller_log().display());
    }
    let hash = emu_proto::cahash::ca_cert_hash_pem(&info.ca_certificate)?;
    let token = crate::token::random_token()?;
    let secret = emu_logic::bootstrap::secret(&token, Some(emu_api::time::now() + 3600), "emu up --hosts: the emulated hosts' joins");
    rt.block_on(verbs::apply_docs(client, vec![secret], false))?;
    for (index, nodes) in spread.iter().enumerate().skip(1) {
        emu_provider::hosts::join(
            &std::env::current_exe()?,
            name,
            index,
            &info.join_endpoint,
            (crate::join::TOKEN_ENV, &token.reveal()),
            &hash,
            nodes,
        )?;
    }
    // Its work is done: no one else may join with it.
    let secret =
        emu_proto::ObjectRef { kind: "Secret".into(), namespace: emu_logic::bootstrap::NAMESPACE.into(), name: token.secret_name() };
    rt.block_on(client.delete(emu_proto::DeleteRequest { r#ref: Some(secret), force: false, grace_period_seconds: -1 }))?;
    Ok(())
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

pub(crate) fn is_node_ready(n: &Value) -> bool {
    n["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A container state that will not get better by waiting.
fn stuck_reason(p: &Value) -> Option<String> {
    p["status"]["containerStatuses"].as_array()?.iter().find_map(|c| {
        let w = &c["state"]["waiting"];
        match w["reason"].as_str()? {
            r @ ("ErrImagePull" | "ImagePullBackOff" | "CrashLoopBackOff" | "CreateContainerError") => {
                Some(format!("container {:?}: {r}: {}", c["name"].as_str().unwrap_or(""), w["message"].as_str().unwrap_or("")))
            }
            _ => None,
        }
    })
}

/// Polls `f` until it says yes; stops at once if the cluster `provider` creates was deleted.
fn wait_until(provider: &Local, timeout: Duration, what: &str, mut f: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        still_wanted(provider)?;
        if f()? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_controller(rt: &tokio::runtime::Runtime, provider: &Local, timeout: Duration) -> anyhow::Result<()> {
    let paths = &Paths::new(provider.cluster());
    wait_until(provider, timeout, "the controller to answer", || {
        Ok(rt.block_on(async {
            match emu_proto::connect_unix(&paths.socket()).await {
                Ok(mut c) => c.cluster_info(emu_proto::ClusterInfoRequest {}).await.is_ok(),
                Err(_) => false,
            }
        }))
    })
}

/// ` --cluster NAME`, or nothing for the default cluster: for the commands hints print.
fn cluster_flag(cluster: &str) -> String {
    if cluster == DEFAULT_CLUSTER {
        String::new()
    } else {
        format!(" --cluster {cluster}")
    }
}

/// What the controller gives a kubeconfig of its cluster: the host's server address, the CA and
/// an admin client certificate.
pub(crate) fn kubeconfig_material(ctx: &Ctx) -> anyhow::Result<emu_proto::KubeconfigResponse> {
    node_kubeconfig_material(ctx, "")
}

/// The same with `node`'s identity instead of the admin's (none: the admin's).
fn node_kubeconfig_material(ctx: &Ctx, node: &str) -> anyhow::Result<emu_proto::KubeconfigResponse> {
    let mut client = ctx.client.clone();
    let request = emu_proto::KubeconfigRequest { node: node.to_string() };
    Ok(ctx.block_on(client.kubeconfig(request)).map_err(context::api_error)?.into_inner())
}

/// Merges the cluster's context into the user's kubeconfig and makes it current; returns the
/// file.
pub(crate) fn export_kubeconfig(cluster: &str) -> anyhow::Result<PathBuf> {
    let ctx = Ctx::open(&Globals::for_cluster(cluster))?;
    Ok(crate::kubeconfig::export(cluster, &kubeconfig_material(&ctx)?)?)
}

fn print_hints(cluster: &str) {
    let flag = cluster_flag(cluster);
    println!("Try:");
    println!("  emu get pods -o wide{flag}                 # pods, their IPs and nodes");
    println!("  emu exec{flag} POD -- curl -s http://POD_IP  # pod to pod, across nodes, no NAT");
    println!("  emu ssh{flag} NODE -- ip route              # a node's routes to the other nodes' pods");
    println!("  emu logs{flag} POD                          # nginx's access log");
    println!("  emu expose{flag} deployment/my-nginx        # a Service: one ClusterIP in front of the pods");
    println!("  emu get svc,ep{flag}                        # services, their ClusterIPs and endpoints");
    println!("  emu ssh{flag} NODE -- curl -s http://CLUSTER_IP  # through the node's service rules");
    println!("  sudo emu down{flag}                         # remove everything");
}

pub fn down(all: bool, globals: &Globals) -> anyhow::Result<i32> {
    require_root()?;
    let names: Vec<String> = if all {
        // Also clusters whose runtime directory is gone but whose namespaces are left.
        emu_provider::all_clusters()?
    } else {
        match globals.cluster_name() {
            Some(c) => {
                validate_cluster_name(&c)?;
                vec![c]
            }
            None => vec![context::resolve(globals)?],
        }
    };
    let mut kubeconfig_errors = vec![];
    for name in names {
        let start = Instant::now();
        let existed = cluster_exists(&name)?;
        // An `emu up` of it in progress (begun since, maybe) stops first and removes what it
        // made; then the context it may have written goes too.
        let existed = Local::new(&name).stop_creation()? || existed;
        // As kind: the kubeconfig first, and a failure there does not keep the cluster alive.
        if let Err(e) = crate::kubeconfig::forget(&name) {
            kubeconfig_errors.push(anyhow::Error::new(e).context(format!("removing the context of cluster {name:?} from the kubeconfig")));
        }
        teardown(&name)?;
        if existed {
            println!("Deleted cluster {name:?} ({} ms).", start.elapsed().as_millis());
        } else {
            println!("Cluster {name:?} does not exist: nothing to delete.");
        }
    }
    match kubeconfig_errors.pop() {
        Some(last) => {
            for e in kubeconfig_errors {
                eprintln!("{}", context::render_error(&e));
            }
            Err(last)
        }
        None => Ok(0),
    }
}

/// `emu kubeconfig`: the cluster's kubeconfig on stdout (as `kind get kubeconfig`), or with
/// `--merge` into the user's kubeconfig, made current (what `emu up` does).
pub fn kubeconfig(merge: bool, node: Option<&str>, globals: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(globals)?;
    if let Some(node) = node {
        // Named apart from the admin's context, so both can live in one kubeconfig.
        let material = node_kubeconfig_material(&ctx, node)?;
        print!("{}", emu_kubectl::to_yaml(&crate::kubeconfig::document(&format!("{}-{node}", ctx.cluster), &material)));
        return Ok(0);
    }
    let material = kubeconfig_material(&ctx)?;
    if merge {
        let path = crate::kubeconfig::export(&ctx.cluster, &material)?;
        println!("Set kubectl context to {:?} in {}", crate::kubeconfig::context_name(&ctx.cluster), path.display());
    } else {
        print!("{}", emu_kubectl::to_yaml(&crate::kubeconfig::document(&ctx.cluster, &material)));
    }
    Ok(0)
}

/// Removes every trace of a cluster: processes (through its cgroup, else its PID files), network
/// namespaces (links die with them), mounts under its runtime directory, the directory itself.
pub fn teardown(name: &str) -> anyhow::Result<()> {
    Local::new(name).delete_cluster()
}

pub fn status() -> anyhow::Result<i32> {
    require_root()?;
    let names = context::clusters();
    if names.is_empty() {
        eprintln!("No emu cluster is running. Start one with `sudo emu up scenarios/nginx.yaml`.");
        return Ok(0);
    }
    let mut rows = vec![vec!["CLUSTER".to_string(), "NODES".into(), "CONTROLLER".into(), "AGENTS".into(), "PODS".into()]];
    for name in names {
        let provider = Local::new(&name);
        let config = provider.config().ok();
        let nodes = config.as_ref().map(|c| c.nodes.len()).unwrap_or(0);
        let controller = provider.daemon_running(&ProviderDaemon::Controller);
        let agents = config
            .as_ref()
            .map(|c| c.nodes.iter().filter(|n| provider.daemon_running(&ProviderDaemon::Agent(n.name.clone()))).count())
            .unwrap_or(0);
        // With machines that joined, the cluster's nodes are more than this machine's (its
        // agents are counted against its own nodes).
        let (all_nodes, pods) = if controller {
            Ctx::open(&Globals::for_cluster(&name))
                .and_then(|mut ctx| {
                    let mut client = ctx.client.clone();
                    let pods = ctx.block_on(verbs::list(&mut client, "Pod", "", ""))?;
                    let all = ctx.block_on(verbs::list(&mut client, "Node", "", ""))?;
                    ctx.client = client;
                    Ok((all.len().max(nodes), pods.len().to_string()))
                })
                .unwrap_or_else(|_| (nodes, "?".into()))
        } else {
            (nodes, "?".into())
        };
        let control_plane = config.as_ref().map(|c| c.control_plane.clone()).unwrap_or_default();
        let controller = match (controller, control_plane.is_empty()) {
            (true, _) => "running".to_string(),
            // A machine that joined: the controller runs on the control plane's machine.
            (false, false) => format!("at {control_plane}"),
            (false, true) => "stopped".into(),
        };
        rows.push(vec![name, all_nodes.to_string(), controller, format!("{agents}/{nodes}"), pods]);
    }
    print!("{}", emu_kubectl::tabwrite(&rows, 6, 3));
    Ok(0)
}

pub fn restart(what: &str, node: Option<&str>, globals: &Globals) -> anyhow::Result<i32> {
    require_root()?;
    let name = context::resolve(globals)?;
    let daemon = match (what, node) {
        ("controller", _) => Daemon::Controller,
        ("agent", Some(node)) => Daemon::Agent(node.to_string()),
        _ => bail!("usage: emu restart controller | emu restart agent NODE"),
    };
    restart_daemon(&name, &daemon)?;
    match daemon {
        Daemon::Controller => println!("controller of cluster {name:?} restarted"),
        Daemon::Agent(node) => println!("agent of node {node:?} restarted"),
    }
    Ok(0)
}

/// The provider's name for a daemon a scenario names.
fn provider_daemon(daemon: &Daemon) -> ProviderDaemon {
    match daemon {
        Daemon::Controller => ProviderDaemon::Controller,
        Daemon::Agent(node) => ProviderDaemon::Agent(node.clone()),
    }
}

/// Stops a daemon (SIGTERM, SIGKILL after 5 s; nothing when it is not running) and starts it
/// again; the controller is waited for until it answers.
pub(crate) fn restart_daemon(name: &str, daemon: &Daemon) -> anyhow::Result<()> {
    let provider = Local::new(name);
    let d = provider_daemon(daemon);
    let port = || std::fs::read_to_string(Paths::new(name).api_port()).ok();
    let before = port();
    provider.stop_daemon(&d)?;
    provider.start_daemon(&d)?;
    if d == ProviderDaemon::Controller {
        wait_for_controller(&context::runtime()?, &provider, Duration::from_secs(10))?;
        // The provider keeps the port while nobody else took it.
        if let Some((old, new)) = before.zip(port()).filter(|(old, new)| old != new) {
            eprintln!(
                "warning: the API server's port 127.0.0.1:{} was taken meanwhile; it is now 127.0.0.1:{}: write the kubeconfig again with `sudo emu kubeconfig --merge{}`",
                old.trim(),
                new.trim(),
                cluster_flag(name)
            );
        }
    }
    Ok(())
}

/// SIGKILL of a running daemon, found by its pid file (a crash, as `kill -9` makes one); returns
/// its pid.
pub(crate) fn kill_daemon(name: &str, daemon: &Daemon) -> anyhow::Result<i32> {
    Local::new(name).kill_daemon(&provider_daemon(daemon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");

    fn decoded(secret: &Value, key: &str) -> String {
        let b64 = secret["data"][key].as_str().unwrap_or_else(|| panic!("no data[{key}] in {secret}"));
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
    }

    /// A scenario with its manifests in a fresh directory.
    fn scenario_dir(files: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("emu-lifecycle-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    /// `hosts:` of a scenario is the plan's (what `emu up --hosts` sets), within the nodes.
    #[test]
    fn a_scenarios_hosts_are_planned() {
        let file = PathBuf::from(SCENARIOS).join("hosts.yaml");
        assert_eq!(plan(Some(&file), None).unwrap().hosts, 3);
        assert_eq!(plan(Some(&file), Some(2)).unwrap().hosts, 2, "--nodes 2: one node per host");
        assert_eq!(plan(Some(&PathBuf::from(SCENARIOS).join("nginx.yaml")), None).unwrap().hosts, 1);
    }

    /// Every scenario in scenarios/ plans offline (files read, certificates made, every document
    /// checked), and every other file there is a manifest some scenario applies.
    #[test]
    fn every_shipped_scenario_plans() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(SCENARIOS)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        let mut applied = std::collections::BTreeSet::new();
        let mut manifests = vec![];
        let mut planned = 0;
        for f in &files {
            match scenario::parse(&std::fs::read_to_string(f).unwrap()) {
                Ok(sc) => {
                    plan(Some(f), None).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
                    // The scripted scenarios (`emu test`) say what they check, and check something.
                    if f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test-")) {
                        assert!(!sc.steps.is_empty(), "{} has no steps", f.display());
                        assert!(std::fs::read_to_string(f).unwrap().starts_with("# "), "{} has no header comment", f.display());
                    }
                    // Also what an `apply` step applies (kubia-ingress-tls.yaml, as the book applies it later).
                    let applied_by_steps = sc.steps.into_iter().filter_map(|s| match s.action {
                        steps::Action::Apply(m) => Some(m),
                        _ => None,
                    });
                    for m in sc.manifests.into_iter().chain(applied_by_steps) {
                        if let scenario::ManifestSource::Path(p) = m {
                            applied.insert(std::fs::canonicalize(f.parent().unwrap().join(p)).unwrap());
                        }
                    }
                    planned += 1;
                }
                Err(e) => manifests.push((f, e)),
            }
        }
        for (f, e) in manifests {
            assert!(applied.contains(&std::fs::canonicalize(f).unwrap()), "{} is neither a scenario ({e}) nor applied by one", f.display());
        }
        assert!(planned >= 4, "{planned} scenarios");
    }

    #[test]
    fn steps_are_planned_with_their_manifests_before_anything_is_created() {
        let dir = scenario_dir(&[
            ("sc.yaml", "nodes: 2\nseed: 42\nsteps:\n  - apply: web.yaml\n  - wait: {pods: {selector: app=web, ready: 1}}\n  - apply: |\n      apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: x}\n"),
            ("web.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n"),
            ("missing.yaml", "steps:\n  - sleep: 1s\n  - apply: nowhere.yaml\n"),
            ("invalid.yaml", "steps:\n  - apply: |\n      apiVersion: v1\n      kind: Service\n      metadata: {name: Web}\n"),
            ("badstep.yaml", "steps:\n  - wait: {pods: {selector: app=web, ready: two}}\n"),
        ]);
        let p = plan(Some(&dir.join("sc.yaml")), None).unwrap();
        assert_eq!(p.seed, Some(42));
        let applied: Vec<Vec<&str>> =
            p.steps.iter().map(|(_, m)| m.iter().flat_map(|(_, d)| d.iter().map(object::name)).collect()).collect();
        assert_eq!(applied, [vec!["web"], vec![], vec!["x"]]);
        let err = |f: &str| format!("{:#}", plan(Some(&dir.join(f)), None).err().unwrap_or_else(|| panic!("{f} planned")));
        let e = err("missing.yaml");
        assert!(
            e.contains("steps[1].apply: file ") && e.contains("nowhere.yaml does not exist (paths are relative to the scenario file)"),
            "{e}"
        );
        let e = err("invalid.yaml");
        assert!(e.contains("(steps[0].apply): The Service \"Web\" is invalid"), "{e}");
        let e = err("badstep.yaml");
        assert!(e.contains("scenario field `steps[0].wait.pods.ready`: expected a whole number"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_secure_scenario_makes_its_tls_secret_first() {
        let p = plan(Some(&Path::new(SCENARIOS).join("nginx-secure.yaml")), None).unwrap();
        let (label, docs) = &p.manifests[0];
        assert!(label.ends_with("nginx-secure.yaml (certificates[0])"), "{label}");
        let secret = &docs[0];
        assert_eq!((object::kind(secret), object::name(secret), object::namespace(secret)), ("Secret", "nginxsecret", "default"));
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert_eq!(secret["data"].as_object().unwrap().len(), 2);
        let (cert, key) = (decoded(secret, "tls.crt"), decoded(secret, "tls.key"));
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert_eq!(crate::tls::check_pair(cert.as_bytes(), key.as_bytes()), Ok(()));
        // Then the tutorial's objects, in its order.
        let kinds: Vec<(&str, &str)> =
            p.manifests[1..].iter().flat_map(|(_, d)| d.iter().map(|o| (object::kind(o), object::name(o)))).collect();
        assert_eq!(
            kinds,
            [("ConfigMap", "nginxconfigmap"), ("Service", "my-nginx"), ("Deployment", "my-nginx"), ("Deployment", "curl-deployment")]
        );
        // Every `emu up` makes a new certificate: none is checked in to expire.
        let again = plan(Some(&Path::new(SCENARIOS).join("nginx-secure.yaml")), None).unwrap();
        assert_ne!(decoded(&again.manifests[0].1[0], "tls.key"), key);
    }

    #[test]
    fn the_opaque_scenario_uses_the_older_key_names() {
        let p = plan(Some(&Path::new(SCENARIOS).join("nginx-secure-opaque.yaml")), None).unwrap();
        let secret = &p.manifests[0].1[0];
        assert_eq!(secret["type"], "Opaque");
        let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["nginx.crt", "nginx.key"]);
        assert_eq!(crate::tls::check_pair(decoded(secret, "nginx.crt").as_bytes(), decoded(secret, "nginx.key").as_bytes()), Ok(()));
        assert!(!p.manifests.iter().any(|(_, d)| d.iter().any(|o| object::kind(o) == "ConfigMap")));
    }

    #[test]
    fn a_secret_in_a_namespace_of_the_scenario_follows_that_namespace() {
        let dir = scenario_dir(&[
            (
                "sc.yaml",
                "certificates:\n  - {secret: s, commonName: web, namespace: demo}\nmanifests:\n  - a.yaml\n  - ns.yaml\n  - b.yaml\n",
            ),
            ("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
            ("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"),
            ("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: demo}\n"),
        ]);
        let p = plan(Some(&dir.join("sc.yaml")), None).unwrap();
        let order: Vec<&str> = p.manifests.iter().map(|(_, d)| object::name(&d[0])).collect();
        assert_eq!(order, ["a", "demo", "s", "b"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn certificate_secrets_that_cannot_be_made_are_refused_before_anything_is_created() {
        let dir = scenario_dir(&[
            ("missing-ns.yaml", "certificates:\n  - {secret: s, commonName: web, namespace: demo}\n"),
            ("clash.yaml", "certificates:\n  - {secret: nginxsecret, commonName: my-nginx}\nmanifests:\n  - secret.yaml\n"),
            ("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: nginxsecret}\nstringData: {a: b}\n"),
            ("bad.yaml", "certificates:\n  - {secret: s, commonName: web, certKey: nginx.crt}\n"),
        ]);
        let err = |f: &str| format!("{:#}", plan(Some(&dir.join(f)), None).err().unwrap_or_else(|| panic!("{f} planned")));
        let e = err("missing-ns.yaml");
        assert!(e.contains("scenario field `certificates[0].namespace`: namespace \"demo\" does not exist"), "{e}");
        let e = err("clash.yaml");
        assert!(
            e.contains("scenario field `certificates[0].secret`: ") && e.contains("secret.yaml also defines Secret default/nginxsecret"),
            "{e}"
        );
        let e = err("bad.yaml");
        assert!(e.contains("scenario field `certificates[0].certKey`: a kubernetes.io/tls Secret keeps this under \"tls.crt\""), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
