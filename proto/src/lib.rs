//! The gRPC API of emu: generated client and server code for `proto/emu.proto`, plus the Unix-socket
//! connector every client uses, and the reconnecting watch cache ([`reflector`]) the daemons share.

pub mod reflector;

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("emu.v1");
}

pub use v1::*;

use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint};

/// Connects to the controller's Unix socket. The URI is a placeholder that tonic requires; every
/// connection goes to `socket`.
pub async fn connect_unix(socket: &Path) -> Result<api_client::ApiClient<Channel>, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    let channel = Endpoint::from_static("http://emu-controller.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(api_client::ApiClient::new(channel).max_decoding_message_size(256 * 1024 * 1024))
}
