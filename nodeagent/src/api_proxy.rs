//! The API as the programs of a joined machine's pods reach it (the cluster DNS server of the
//! CoreDNS pods reads Services, EndpointSlices and Pods through a socket bind-mounted into its
//! container): on the control plane's machine that socket is the controller's own; on a machine
//! that joined, there is none, so each agent serves one, `nodes/<node>/api.sock`, that forwards
//! reads to the controller with the node's identity (which may read those kinds, as kubelet may)
//! and refuses everything else.

use emu_proto::api_client::ApiClient;
use emu_proto::api_server::{Api, ApiServer};
use emu_proto::*;
use std::path::Path;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Service Api, reads only, forwarded upstream.
pub struct ReadOnlyApi {
    upstream: ApiClient<Channel>,
}

fn read_only(what: &str) -> Status {
    Status::permission_denied(format!("{what}: a pod's API socket on a joined machine serves reads only"))
}

#[tonic::async_trait]
impl Api for ReadOnlyApi {
    async fn apply(&self, _r: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        Err(read_only("apply"))
    }
    async fn replace(&self, _r: Request<ReplaceRequest>) -> Result<Response<ApplyResponse>, Status> {
        Err(read_only("replace"))
    }
    async fn get(&self, r: Request<ObjectRef>) -> Result<Response<Object>, Status> {
        self.upstream.clone().get(r.into_inner()).await
    }
    async fn list(&self, r: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.upstream.clone().list(r.into_inner()).await
    }
    async fn delete(&self, _r: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        Err(read_only("delete"))
    }
    async fn scale(&self, _r: Request<ScaleRequest>) -> Result<Response<Object>, Status> {
        Err(read_only("scale"))
    }
    async fn update_status(&self, _r: Request<UpdateStatusRequest>) -> Result<Response<UpdateStatusResponse>, Status> {
        Err(read_only("update status"))
    }

    type WatchStream = tonic::Streaming<WatchEvent>;

    async fn watch(&self, r: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        self.upstream.clone().watch(r.into_inner()).await
    }
    async fn register_node(&self, _r: Request<RegisterNodeRequest>) -> Result<Response<RegisterNodeResponse>, Status> {
        Err(read_only("register node"))
    }
    async fn heartbeat(&self, _r: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        Err(read_only("heartbeat"))
    }
    async fn cluster_info(&self, r: Request<ClusterInfoRequest>) -> Result<Response<ClusterInfoResponse>, Status> {
        self.upstream.clone().cluster_info(r.into_inner()).await
    }
    async fn create_token(&self, _r: Request<TokenRequest>) -> Result<Response<TokenResponse>, Status> {
        Err(read_only("create token"))
    }
    async fn kubeconfig(&self, _r: Request<KubeconfigRequest>) -> Result<Response<KubeconfigResponse>, Status> {
        Err(read_only("kubeconfig"))
    }
}

/// Serves [`ReadOnlyApi`] on the Unix socket `socket` (mode 0600: the shims bind-mount it),
/// forwarding to `upstream`.
pub async fn serve(upstream: ApiClient<Channel>, socket: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let service = ApiServer::new(ReadOnlyApi { upstream }).max_decoding_message_size(MAX_MESSAGE);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
        .await?;
    Ok(())
}
