//! `emu explain RESOURCE[.FIELD…] [--recursive]`: kubectl's explanation of a kind's fields. As
//! kubectl does, it reads the group version's OpenAPI v3 document from the API server
//! (`GET /openapi/v3/apis/apps/v1`, over HTTPS with the cluster's admin certificate), so the text
//! comes from the schemas the server publishes; `emu_kubectl::explain` renders it.

use crate::context::{ApiError, Ctx};
use crate::Globals;
use anyhow::Context as _;
use clap::Args;
use emu_kubectl::explain::{ExplainError, Request};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// `RESOURCE` or `RESOURCE.FIELD.FIELD…`: `pods`, `deployment.spec.strategy`.
    pub target: String,
    /// The fields of fields, all the way down (names and types, without descriptions).
    #[arg(long)]
    pub recursive: bool,
}

pub fn explain(a: ExplainArgs, g: &Globals) -> anyhow::Result<i32> {
    let (rk, field_path) = resource_and_fields(&a.target)?;
    let ctx = Ctx::open(g)?;
    let material = crate::lifecycle::kubeconfig_material(&ctx)?;
    let path = if rk.group.is_empty() {
        format!("/openapi/v3/api/{}", rk.version)
    } else {
        format!("/openapi/v3/apis/{}/{}", rk.group, rk.version)
    };
    let document = ctx.block_on(get_json(&material, &path))?;
    let request = Request { group: rk.group, version: rk.version, resource: rk.plural, field_path: &field_path, recursive: a.recursive };
    match emu_kubectl::explain::explain(&document, &request) {
        Ok(text) => {
            print!("{text}");
            Ok(0)
        }
        // kubectl has printed the header when it finds the field missing.
        Err(ExplainError::NoField { printed, field }) => {
            print!("{printed}");
            anyhow::bail!("field {field:?} does not exist")
        }
        Err(e) => Err(e.into()),
    }
}

/// kubectl's `SplitAndParseResourceRequestWithMatchingPrefix`: the resource is the first part;
/// when the text begins with its `plural.group` (`deployments.apps.spec`), the fields are what
/// follows that, else what follows the first part.
fn resource_and_fields(target: &str) -> anyhow::Result<(&'static emu_api::kinds::ResourceKind, Vec<String>)> {
    let target = target.strip_suffix('.').unwrap_or(target);
    let mut parts = target.split('.');
    let resource = parts.next().unwrap_or_default();
    let Some(rk) = emu_api::kinds::lookup(resource) else {
        return Err(ApiError(format!("the server doesn't have a resource type {resource:?}")).into());
    };
    let group_resource = if rk.group.is_empty() { rk.plural.to_string() } else { format!("{}.{}", rk.plural, rk.group) };
    let fields = match target.strip_prefix(&group_resource) {
        Some("") => Vec::new(),
        Some(rest) => rest[1..].split('.').map(str::to_string).collect(),
        None => parts.map(str::to_string).collect(),
    };
    Ok((rk, fields))
}

/// `GET path` of the cluster's API server as the kubeconfig reaches it (`https://127.0.0.1:PORT`,
/// the cluster CA, the admin certificate), as JSON.
async fn get_json(k: &emu_proto::KubeconfigResponse, path: &str) -> anyhow::Result<Value> {
    use http_body_util::BodyExt as _;
    use rustls::pki_types::ServerName;
    use std::sync::Arc;
    let address = k.server.strip_prefix("https://").with_context(|| format!("the API server {:?} is not https://HOST:PORT", k.server))?;
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h).trim_matches(['[', ']']).to_string();
    // The cluster CA and the admin certificate, as every emu client of the API trusts and
    // presents them; HTTP/1.1 here, so without the shared configuration's h2 offer.
    let mut config =
        (*emu_proto::transport::client_config(&k.certificate_authority, Some((&k.client_certificate, &k.client_key)))?).clone();
    config.alpn_protocols.clear();
    let tcp = tokio::net::TcpStream::connect(address).await.with_context(|| format!("connecting to the API server at {address}"))?;
    let name = ServerName::try_from(host.clone()).with_context(|| format!("the API server's name {host:?}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.context("TLS handshake with the API server")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", address)
        .header("accept", "application/json")
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let answer = sender.send_request(request).await.with_context(|| format!("GET {path}"))?;
    let status = answer.status();
    let body = answer.into_body().collect().await.with_context(|| format!("GET {path}"))?.to_bytes();
    if !status.is_success() {
        anyhow::bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_and_its_fields_split_as_kubectl_splits_them() {
        let split = |t: &str| resource_and_fields(t).map(|(rk, f)| (rk.kind, f)).unwrap();
        assert_eq!(split("deployment.spec.strategy"), ("Deployment", vec!["spec".to_string(), "strategy".to_string()]));
        assert_eq!(split("deployments.apps"), ("Deployment", vec![]));
        assert_eq!(split("deployments.apps.spec"), ("Deployment", vec!["spec".to_string()]));
        assert_eq!(split("deployment.apps"), ("Deployment", vec!["apps".to_string()]));
        assert_eq!(split("pods."), ("Pod", vec![]));
        assert!(resource_and_fields("nope.spec").is_err());
    }
}
