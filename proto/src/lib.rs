//! The gRPC API of emu: generated client and server code for `proto/emu.proto`, plus the connector
//! every client uses (Unix sockets today), and what the daemons share: the reconnecting watch
//! cache ([`reflector`]) and how each starts ([`daemon`]: logging, the allocator). Also the
//! protobuf messages of OpenAPI v2 the API server writes ([`openapi_v2`]).

pub mod cahash;
pub mod daemon;
pub mod insecure_tls;
pub mod reflector;
pub mod transport;
pub mod x509;

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("emu.v1");
}

pub use v1::*;

/// gnostic's `openapi.v2` messages, as far as the API server writes them (`GET /openapi/v2` as
/// protobuf, which kubectl decodes with gnostic): see `proto/openapiv2.proto`.
#[allow(clippy::all)]
pub mod openapi_v2 {
    tonic::include_proto!("openapi.v2");
}

use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint};

/// Messages up to this size are accepted (a list of every object of a large cluster).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// The annotation of a Node that names where its agent serves service Node (the agent sets it
/// when it registers; the controller dials it).
pub const AGENT_ENDPOINT_ANNOTATION: &str = "emu.dev/agent-endpoint";

/// The endpoint of a server listening on the Unix socket `socket`, as daemons register and
/// clients name it: `unix:///run/emu/<cluster>/controller.sock`.
pub fn unix_endpoint(socket: &Path) -> String {
    format!("unix://{}", socket.display())
}

/// The socket an endpoint names: `unix:///path` or a plain path. None for any other scheme
/// (TCP with mutual TLS is for later, when agents run on other machines).
pub fn endpoint_socket(endpoint: &str) -> Option<PathBuf> {
    match endpoint.strip_prefix("unix://") {
        Some(path) => Some(PathBuf::from(path)),
        None if !endpoint.contains("://") => Some(PathBuf::from(endpoint)),
        None => None,
    }
}

/// A channel to the server at `endpoint` ([`endpoint_socket`]): the one place where emu chooses
/// a transport.
pub async fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    let socket = endpoint_socket(endpoint).ok_or_else(|| anyhow::anyhow!("endpoint {endpoint:?}: only unix:///PATH is supported"))?;
    Ok(unix_channel(&socket).await?)
}

/// A channel over the Unix socket `socket`. The URI is a placeholder that tonic requires; every
/// connection goes to `socket`.
pub async fn unix_channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    Endpoint::from_static("http://emu.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}

/// Connects to the controller's Unix socket.
pub async fn connect_unix(socket: &Path) -> Result<api_client::ApiClient<Channel>, tonic::transport::Error> {
    Ok(api_client::ApiClient::new(unix_channel(socket).await?).max_decoding_message_size(MAX_MESSAGE))
}
