//! Which cluster a command acts on, how it reaches the controller, and how errors read.

use crate::Globals;
use anyhow::{bail, Context as _};
use emu_logic::cluster::{Paths, RUNTIME_ROOT};
use emu_proto::api_client::ApiClient;
use tonic::transport::Channel;

/// Every emu command changes or reads namespaces and runtime files only root may touch.
pub fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("emu must run as root: it creates network namespaces, links and processes. Try `sudo emu ...`.");
    }
    Ok(())
}

/// Clusters with a runtime directory on this machine.
pub fn clusters() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(RUNTIME_ROOT)
        .map(|d| {
            d.flatten().filter(|e| e.path().join("cluster.json").exists()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

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
    pub paths: Paths,
    pub client: ApiClient<Channel>,
    pub rt: tokio::runtime::Runtime,
}

impl Ctx {
    /// The cluster's name (its runtime directory is `/run/emu/<name>`).
    pub fn cluster(&self) -> String {
        self.paths.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// The cluster's configuration (`cluster.json`): its nodes, CIDRs, timings.
    pub fn config(&self) -> anyhow::Result<emu_logic::cluster::ClusterConfig> {
        Ok(serde_json::from_slice(&std::fs::read(self.paths.config())?)?)
    }

    pub fn open(globals: &Globals) -> anyhow::Result<Ctx> {
        require_root()?;
        let cluster = resolve(globals)?;
        let paths = Paths::new(&cluster);
        let rt = runtime()?;
        let socket = paths.socket();
        let client = rt.block_on(emu_proto::connect_unix(&socket)).with_context(|| {
            format!("cannot reach the controller of cluster {cluster:?} at {} (is it running? `emu status`)", socket.display())
        })?;
        Ok(Ctx { paths, client, rt })
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
