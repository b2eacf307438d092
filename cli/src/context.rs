//! Which cluster a command acts on, how it reaches the controller, and how errors read.

use crate::Globals;
use anyhow::{bail, Context as _};
use emu_logic::cluster::Paths;
use emu_proto::api_client::ApiClient;
use emu_proto::relay_client::RelayClient;
use tonic::transport::Channel;

/// Every emu command changes or reads namespaces and runtime files only root may touch.
pub fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("emu must run as root: it creates network namespaces, links and processes. Try `sudo emu ...`.");
    }
    Ok(())
}

pub use emu_provider::clusters;

/// `--cluster` (or `--context`), then `EMU_CLUSTER`, then the only running cluster.
pub fn resolve(globals: &Globals) -> anyhow::Result<String> {
    if let Some(name) = &globals.cluster_name() {
        if !Paths::new(name).config().exists() {
            bail!(
                "cluster {name:?} does not exist (running clusters: {}). Create it with `sudo emu up --cluster {name}`.",
                list_or_none(&clusters())
            );
        }
        return Ok(name.clone());
    }
    match clusters().as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no emu cluster is running. Start one with `sudo emu up scenarios/nginx.yaml`."),
        many => bail!("several clusters are running ({}): choose one with --cluster NAME or EMU_CLUSTER=NAME.", many.join(", ")),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub struct Ctx {
    /// The cluster's name.
    pub cluster: String,
    /// Objects (service Api).
    pub client: ApiClient<Channel>,
    /// What acts on a node's machine: exec, logs, port-forward, node power (service Relay).
    pub relay: RelayClient<Channel>,
    pub rt: tokio::runtime::Runtime,
}

impl Ctx {
    /// The cluster's shape (its nodes, CIDRs, timings), as the controller serves it (`ClusterInfo`).
    pub fn config(&self) -> anyhow::Result<emu_logic::cluster::ClusterConfig> {
        let mut client = self.client.clone();
        let info = self.block_on(client.cluster_info(emu_proto::ClusterInfoRequest {})).map_err(api_error)?.into_inner();
        serde_json::from_str(&info.config_json).context("the controller sent no cluster configuration (an older emu-controller?)")
    }

    /// The names of the cluster's nodes: those of the control plane's machine, then those of the
    /// machines that joined (their Nodes).
    pub fn node_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = self.config()?.nodes.into_iter().map(|n| n.name).collect();
        let mut client = self.client.clone();
        let request = emu_proto::ListRequest { kind: "Node".into(), ..Default::default() };
        for node in self.block_on(client.list(request)).map_err(api_error)?.into_inner().items {
            let v: serde_json::Value = serde_json::from_str(&node.json)?;
            if let Some(name) = v["metadata"]["name"].as_str().filter(|n| !names.iter().any(|x| x == n)) {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    /// Connects to the cluster's controller: at `--server` (or `$EMU_SERVER`) when given, else
    /// the socket of the cluster `--cluster` (or the only one) names on this machine.
    pub fn open(globals: &Globals) -> anyhow::Result<Ctx> {
        require_root()?;
        let rt = runtime()?;
        let (cluster, endpoint) = match globals.server() {
            Some(server) => (globals.cluster_name(), server),
            None => {
                let cluster = resolve(globals)?;
                let endpoint = emu_proto::unix_endpoint(&Paths::new(&cluster).socket());
                (Some(cluster), endpoint)
            }
        };
        let named = cluster.as_deref().map(|c| format!("cluster {c:?}")).unwrap_or_else(|| "the cluster".into());
        let channel = rt
            .block_on(emu_proto::channel(&endpoint))
            .with_context(|| format!("cannot reach the controller of {named} at {endpoint} (is it running? `emu status`)"))?;
        let mut client = ApiClient::new(channel.clone()).max_decoding_message_size(emu_proto::MAX_MESSAGE);
        let relay = RelayClient::new(channel).max_decoding_message_size(emu_proto::MAX_MESSAGE);
        let cluster = match cluster {
            Some(c) => c,
            None => rt.block_on(client.cluster_info(emu_proto::ClusterInfoRequest {})).map_err(api_error)?.into_inner().cluster_name,
        };
        Ok(Ctx { cluster, client, relay, rt })
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// A gRPC error as kubectl prints API errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub String);

pub fn api_error(status: tonic::Status) -> anyhow::Error {
    let msg = status.message().to_string();
    let text = match status.code() {
        tonic::Code::InvalidArgument if msg.starts_with("The ") => msg,
        tonic::Code::InvalidArgument if msg.starts_with("resource mapping not found") => format!("error: {msg}"),
        tonic::Code::NotFound => format!("Error from server (NotFound): {msg}"),
        tonic::Code::AlreadyExists => format!("Error from server (AlreadyExists): {msg}"),
        tonic::Code::Aborted => format!("Error from server (Conflict): {msg}"),
        tonic::Code::PermissionDenied => format!("Error from server (Forbidden): {msg}"),
        tonic::Code::ResourceExhausted => format!("Error from server (RequestEntityTooLarge): {msg}"),
        tonic::Code::InvalidArgument => format!("Error from server (BadRequest): {msg}"),
        tonic::Code::Unavailable => format!("error: the controller is not answering ({msg}); is the cluster running? (`emu status`)"),
        _ => format!("Error from server: {msg}"),
    };
    ApiError(text).into()
}

pub fn render_error(e: &anyhow::Error) -> String {
    if let Some(api) = e.downcast_ref::<ApiError>() {
        return api.0.clone();
    }
    let text = format!("{e:#}");
    if text.starts_with("error:") || text.starts_with("Error") {
        text
    } else {
        format!("error: {text}")
    }
}
