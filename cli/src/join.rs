//! `emu join`: this machine's nodes join a cluster whose control plane runs on another machine,
//! in kubeadm's steps. Discovery: fetch the cluster CA over TLS without trusting anything and
//! compare its public key's hash with `--discovery-token-ca-cert-hash` (nothing secret is sent
//! before that). TLS bootstrap: over a connection verified against that CA, present the
//! bootstrap token with each node's name and public key (the private keys are made here and
//! never leave the machine); the control plane places the nodes and signs their certificates.
//! Then the machine's fabric and outside world are made and stretched to the others by VXLAN,
//! its nodes created and their agents started; they reach the API with mutual TLS.

use crate::context::{require_root, runtime};
use anyhow::{bail, Context};
use emu_logic::cluster::ClusterConfig;
use emu_proto::join_client::JoinClient;
use emu_proto::transport::{self, TlsTarget, Upstream};
use emu_provider::{Daemon, Local, Provider};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// The environment variable `emu join` also takes its token from.
pub const TOKEN_ENV: &str = "EMU_JOIN_TOKEN";

#[derive(clap::Args)]
pub struct JoinArgs {
    /// The control plane's join endpoint, `ADDRESS:PORT` (as `emu token create --print-join-command` prints it).
    pub endpoint: String,
    /// A bootstrap token of the cluster (`emu token create` on the control plane's machine); or
    /// in the environment as EMU_JOIN_TOKEN, which keeps it out of the process list.
    #[arg(long)]
    pub token: Option<String>,
    /// `sha256:<hex>` of the cluster CA's public key: the control plane is trusted only if its CA matches.
    #[arg(long = "discovery-token-ca-cert-hash")]
    pub ca_cert_hash: String,
    /// Names of this machine's nodes (repeat the flag); default: `--nodes` of them named `<host>-node-<i>`.
    #[arg(long = "node")]
    pub node: Vec<String>,
    /// Number of nodes when no `--node` names them (default 1).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// This machine's name in the cluster (label `emu.dev/host` of its nodes); default: its host name.
    #[arg(long)]
    pub host: Option<String>,
    /// This machine's underlay address; default: the source address of its route to the control plane.
    #[arg(long = "advertise-address")]
    pub advertise_address: Option<Ipv4Addr>,
    /// Seconds to wait for the nodes to be Ready.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

pub fn join(a: JoinArgs) -> anyhow::Result<i32> {
    require_root()?;
    let started = Instant::now();
    let endpoint: SocketAddr = a.endpoint.parse().map_err(|_| {
        anyhow::anyhow!("endpoint {:?}: give the control plane's join endpoint as ADDRESS:PORT, e.g. 192.0.2.1:6444", a.endpoint)
    })?;
    let token = match a.token.or_else(|| std::env::var(TOKEN_ENV).ok()) {
        Some(t) => emu_logic::bootstrap::Token::parse(&t).map_err(|e| anyhow::anyhow!("--token: {e}"))?,
        None => bail!("no bootstrap token: give --token (or {TOKEN_ENV}); `emu token create` on the control plane's machine makes one"),
    };
    let expected = emu_proto::cahash::parse_hash(&a.ca_cert_hash).map_err(|e| anyhow::anyhow!("--discovery-token-ca-cert-hash: {e}"))?;
    let host = match a.host {
        Some(h) => h,
        None => nix::unistd::gethostname()?.to_string_lossy().to_ascii_lowercase(),
    };
    if let Some(e) = emu_api::syntax::dns1123_subdomain_errors(&host).first() {
        bail!("--host {host:?}: {e}");
    }
    let names: Vec<String> =
        if a.node.is_empty() { (1..=a.nodes.unwrap_or(1)).map(|i| format!("{host}-node-{i}")).collect() } else { a.node.clone() };
    let advertise = match a.advertise_address {
        Some(ip) => ip,
        None => route_source(endpoint)?,
    };
    let rt = runtime()?;

    // Discovery: nothing secret is sent on this connection.
    let discovered = rt
        .block_on(async {
            let target = TlsTarget { addr: endpoint, config: transport::discovery_config(), netns: None };
            JoinClient::new(transport::tls_channel(target).await?)
                .discover(emu_proto::DiscoverRequest {})
                .await
                .map_err(anyhow::Error::from)
        })
        .with_context(|| format!("reaching the control plane at {endpoint}"))?
        .into_inner();
    let actual = emu_proto::cahash::ca_cert_hash_pem(&discovered.ca_certificate)?;
    if actual != expected {
        bail!(
            "the control plane at {endpoint} presents a cluster CA whose public key hash is {actual}, not the {expected} given with --discovery-token-ca-cert-hash: refusing to join (nothing was sent). Check the address, and take the hash from `emu token create --print-join-command` on the control plane's machine"
        );
    }
    let cluster = discovered.cluster_name;
    if Local::new(&cluster).exists()? {
        bail!(
            "cluster {cluster:?} already has a runtime directory or namespaces on this machine: `sudo emu leave --cluster {cluster}` first"
        );
    }

    // TLS bootstrap, verified against the pinned CA.
    let keys: Vec<rcgen::KeyPair> = names.iter().map(|_| rcgen::KeyPair::generate()).collect::<Result<_, _>>()?;
    let request = emu_proto::JoinRequest {
        token: token.reveal(),
        host: host.clone(),
        advertise_address: advertise.to_string(),
        nodes: names
            .iter()
            .zip(&keys)
            .map(|(n, k)| emu_proto::JoinNode { name: n.clone(), public_key: k.public_key_raw().to_vec() })
            .collect(),
    };
    let ca = discovered.ca_certificate;
    let joined = rt
        .block_on(async {
            let target = TlsTarget { addr: endpoint, config: transport::client_config(&ca, None)?, netns: None };
            let mut client = JoinClient::new(transport::tls_channel(target).await?);
            client.join(request).await.map_err(|s| anyhow::anyhow!("{}", s.message()))
        })
        .with_context(|| format!("joining cluster {cluster:?} at {endpoint}"))?
        .into_inner();
    let config: ClusterConfig = serde_json::from_str(&joined.config_json).context("the control plane's answer")?;
    let peers: Vec<Ipv4Addr> = joined.hosts.iter().filter_map(|h| h.parse().ok()).collect();

    let provider = Local::new(&cluster);
    let made = (|| -> anyhow::Result<()> {
        provider.create_joined_machine(&config, &ca, Path::new("/proc/self/ns/net"), &peers)?;
        for (n, key) in config.nodes.iter().zip(&keys) {
            let cert = &joined.nodes.iter().find(|j| j.name == n.name).context("a node without its certificate")?.certificate;
            provider.write_node_identity(&n.name, cert, &key.serialize_pem())?;
            provider.create_node(&config, n)?;
            provider.start_daemon(&Daemon::Agent(n.name.clone()))?;
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = provider.delete_cluster();
        return Err(e.context(format!("making this machine's nodes of cluster {cluster:?}")));
    }

    // Ready, as the nodes themselves see their Nodes (the first node's identity may read nodes).
    let first = &config.nodes[0].name;
    let paths = emu_logic::cluster::Paths::new(&cluster);
    let identity = (std::fs::read_to_string(paths.agent_cert(first))?, std::fs::read_to_string(paths.agent_key(first))?);
    let upstream =
        Upstream::Tls(TlsTarget { addr: endpoint, config: transport::client_config(&ca, Some((&identity.0, &identity.1)))?, netns: None });
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let ready = rt.block_on(async {
        let mut client = upstream.api().await?;
        loop {
            let mut all = true;
            for n in &config.nodes {
                let r = emu_proto::ObjectRef { kind: "Node".into(), namespace: String::new(), name: n.name.clone() };
                all &= client
                    .get(r)
                    .await
                    .ok()
                    .and_then(|o| serde_json::from_str(&o.into_inner().json).ok())
                    .is_some_and(|v| crate::lifecycle::is_node_ready(&v));
            }
            if all {
                return Ok::<bool, anyhow::Error>(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })?;
    if !ready {
        bail!(
            "this machine's nodes ({}) did not turn Ready within {} s: see their agents' logs in {}",
            names.join(", "),
            a.timeout,
            paths.root.join("nodes").display()
        );
    }
    println!(
        "This machine ({host}, {advertise}) joined cluster {cluster:?} in {:.2} s: nodes {} Ready.\n\nRun `kubectl get nodes -o wide` on the control plane's machine to see them.",
        started.elapsed().as_secs_f64(),
        names.join(", ")
    );
    Ok(0)
}

/// `emu leave`: this machine's nodes leave the cluster it joined, as `kubectl drain` and `kubectl
/// delete node` would take them out (each node acting for itself, with its own identity: it
/// cordons its Node, deletes its pods, which their ReplicaSets replace on other nodes, and
/// deletes its Node), then everything `emu join` made here goes.
pub fn leave(cluster: Option<String>, timeout: u64) -> anyhow::Result<i32> {
    require_root()?;
    let joined: Vec<String> =
        emu_provider::clusters().into_iter().filter(|c| Local::new(c).config().is_ok_and(|cfg| !cfg.control_plane.is_empty())).collect();
    let name = match (cluster, joined.as_slice()) {
        (Some(c), _) => c,
        (None, [one]) => one.clone(),
        (None, []) => bail!("this machine has joined no cluster"),
        (None, many) => bail!("this machine has joined several clusters ({}): name one with --cluster", many.join(", ")),
    };
    let provider = Local::new(&name);
    let config = provider.config().with_context(|| format!("cluster {name:?} on this machine"))?;
    if config.control_plane.is_empty() {
        bail!("cluster {name:?} runs its control plane on this machine: `sudo emu down --cluster {name}` removes it");
    }
    let paths = emu_logic::cluster::Paths::new(&name);
    let ca = std::fs::read_to_string(paths.ca_cert())?;
    let addr: SocketAddr = config.control_plane.parse()?;
    let rt = runtime()?;
    let started = Instant::now();
    let drained = rt.block_on(async {
        for n in &config.nodes {
            let (cert, key) = (std::fs::read_to_string(paths.agent_cert(&n.name))?, std::fs::read_to_string(paths.agent_key(&n.name))?);
            let config = transport::client_config(&ca, Some((&cert, &key)))?;
            let mut client = Upstream::Tls(TlsTarget { addr, config, netns: None }).api().await?;
            drain(&mut client, &n.name, Duration::from_secs(timeout)).await.with_context(|| format!("draining node {}", n.name))?;
        }
        Ok::<(), anyhow::Error>(())
    });
    if let Err(e) = drained {
        eprintln!("warning: {e:#}; the nodes are removed all the same (the control plane marks them NotReady)");
    }
    provider.remove_joined_machine()?;
    let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
    println!(
        "This machine left cluster {name:?} in {:.2} s: nodes {} drained and removed.",
        started.elapsed().as_secs_f64(),
        names.join(", ")
    );
    Ok(0)
}

/// Cordons node `node`, deletes its pods (but a DaemonSet's) and waits until they are gone (its
/// agent stops them), then deletes its Node.
async fn drain(
    client: &mut emu_proto::api_client::ApiClient<tonic::transport::Channel>,
    node: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let node_ref = || emu_proto::ObjectRef { kind: "Node".into(), namespace: String::new(), name: node.into() };
    let mut me: serde_json::Value = serde_json::from_str(&client.get(node_ref()).await?.into_inner().json)?;
    me["spec"]["unschedulable"] = serde_json::json!(true);
    client.replace(emu_proto::ReplaceRequest { objects: vec![emu_proto::Object { json: me.to_string() }] }).await?;
    let pods = |client: &mut emu_proto::api_client::ApiClient<tonic::transport::Channel>| {
        let mut client = client.clone();
        let request = emu_proto::ListRequest { kind: "Pod".into(), field_selector: format!("spec.nodeName={node}"), ..Default::default() };
        // As `kubectl drain --ignore-daemonsets`: a DaemonSet's pods stay (its controller would
        // put them back on the cordoned node at once); they go with the Node.
        let of_daemon_set = |p: &emu_proto::Object| {
            serde_json::from_str::<serde_json::Value>(&p.json).is_ok_and(|v| {
                v["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| o["controller"] == true && o["kind"] == "DaemonSet")
            })
        };
        async move { anyhow::Ok(client.list(request).await?.into_inner().items.into_iter().filter(|p| !of_daemon_set(p)).collect::<Vec<_>>()) }
    };
    for p in pods(client).await? {
        let v: serde_json::Value = serde_json::from_str(&p.json)?;
        let r = emu_proto::ObjectRef {
            kind: "Pod".into(),
            namespace: v["metadata"]["namespace"].as_str().unwrap_or_default().into(),
            name: v["metadata"]["name"].as_str().unwrap_or_default().into(),
        };
        client.delete(emu_proto::DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: -1 }).await?;
    }
    let deadline = Instant::now() + timeout;
    while !pods(client).await?.is_empty() {
        if Instant::now() > deadline {
            bail!("its pods were not gone within {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.delete(emu_proto::DeleteRequest { r#ref: Some(node_ref()), force: false, grace_period_seconds: -1 }).await?;
    Ok(())
}

/// The address this machine would send from to reach `control_plane`: the kernel's choice by
/// its routes (a UDP socket connected, nothing sent). On a Vagrant VM that is the private
/// network's address, not the NAT interface's 10.0.2.15 that every VM shares.
fn route_source(control_plane: SocketAddr) -> anyhow::Result<Ipv4Addr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(control_plane).with_context(|| format!("this machine has no route to {control_plane}"))?;
    match socket.local_addr()?.ip() {
        std::net::IpAddr::V4(ip) => Ok(ip),
        other => bail!("the route to {control_plane} leaves from {other}, not an IPv4 address: give --advertise-address"),
    }
}
