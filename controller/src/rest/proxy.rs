//! `pods/NAME[:PORT]/proxy/PATH` and `services/NAME[:PORT]/proxy/PATH` (what `kubectl proxy` and
//! `kubectl get --raw` reach): an HTTP request passed to the pod, or to a ready endpoint of the
//! Service, and its answer passed back. kube-apiserver dials the pod's IP; emu goes through the
//! pod's node agent, as port-forward does ([`crate::relay::pod_port_forward`]), so the proxy needs
//! no route from the control plane to the pods. `https:` names speak TLS to the pod without
//! checking its certificate, as kube-apiserver does. HTML is passed as it is (kube-apiserver
//! rewrites its links to stay under the proxy path).

use super::status::ApiError;
use super::{Call, Proxied, Served};
use crate::relay;
use crate::store::ObjectKey;
use bytes::Bytes;
use emu_api::object;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The list at `path` (empty when there is none).
fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    object::at(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Where a proxied request goes: a pod and a port in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pod: String,
    pub port: u16,
}

/// `[scheme:]name[:port]`: (scheme, name, port); kube-apiserver's `SplitSchemeNamePort`.
pub fn split_name(id: &str) -> Result<(&str, &str, &str), ApiError> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return Err(ApiError::bad_request(format!("invalid request {id:?}"))),
    };
    if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
        return Err(ApiError::bad_request(format!("invalid request {id:?}")));
    }
    Ok((scheme, name, port))
}

/// The port of pod `pod` that `port` names: a number, a container port's name, or none (80).
pub fn pod_port(pod: &Value, port: &str) -> Result<u16, ApiError> {
    if port.is_empty() {
        return Ok(80);
    }
    if let Ok(n) = port.parse::<u16>() {
        return Ok(n);
    }
    list_at(pod, &["spec", "containers"])
        .iter()
        .flat_map(|c| list_at(c, &["ports"]).iter())
        .find(|p| object::str_at(p, &["name"]) == Some(port))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| ApiError::bad_request(format!("no port named {port:?} in pod {}", object::name(pod))))
}

/// A ready endpoint of Service `svc` for the port `port` names (its name, its number, or none for
/// the Service's unnamed port), from the Service's Endpoints `endpoints`: the first ready
/// address of a pod, as kube-apiserver picks one of them.
pub fn service_target(svc: &Value, endpoints: Option<&Value>, port: &str) -> Result<Target, ApiError> {
    let name = object::name(svc);
    let ports = list_at(svc, &["spec", "ports"]);
    let port_name = match port.parse::<i64>() {
        Ok(n) => ports
            .iter()
            .find(|p| p["port"].as_i64() == Some(n))
            .map(|p| object::str_at(p, &["name"]).unwrap_or(""))
            .ok_or_else(|| ApiError::service_unavailable(format!("no service port {n} found for service {name:?}")))?,
        Err(_) => port,
    };
    let unavailable = || ApiError::service_unavailable(format!("no endpoints available for service {name:?}"));
    for subset in endpoints.map_or(&[][..], |e| list_at(e, &["subsets"])) {
        let Some(p) = list_at(subset, &["ports"]).iter().find(|p| object::str_at(p, &["name"]).unwrap_or("") == port_name) else {
            continue;
        };
        let number = p["port"].as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(unavailable)?;
        let pod = list_at(subset, &["addresses"])
            .iter()
            .find(|a| object::str_at(a, &["targetRef", "kind"]) == Some("Pod"))
            .and_then(|a| object::str_at(a, &["targetRef", "name"]));
        if let Some(pod) = pod {
            return Ok(Target { pod: pod.to_string(), port: number });
        }
    }
    Err(unavailable())
}

/// The path the target is asked for: what follows `/proxy` in the request's path (at least `/`),
/// and the request's query.
pub fn target_path(path: &str, query: &str) -> String {
    let rest = path.split_once("/proxy").map_or("", |(_, rest)| rest);
    let rest = if rest.is_empty() { "/" } else { rest };
    if query.is_empty() {
        rest.to_string()
    } else {
        format!("{rest}?{query}")
    }
}

/// The proxy subresource of a pod or a Service: the request is checked and its target found
/// now; the exchange with the target comes later.
pub(super) fn serve(call: &Call, raw_query: &str, sent: super::Sent) -> Result<Served, ApiError> {
    let (scheme, name, port) = split_name(&call.info.name)?;
    // `https:NAME:PORT`: TLS to the pod, whatever its certificate (kube-apiserver's proxy does
    // not verify it either).
    let tls_name = (scheme == "https")
        .then(|| rustls::pki_types::ServerName::try_from(name.to_string()))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("{name:?} is not a name TLS can be asked for: {e}")))?;
    let namespace = call.info.namespace.clone();
    let get = |kind: &str, name: &str| {
        call.shared.store.get_shared(&ObjectKey { kind: kind.into(), namespace: namespace.clone(), name: name.into() })
    };
    let target = match call.info.resource.as_str() {
        "pods" => {
            let pod = get("Pod", name).ok_or_else(|| ApiError::not_found("", "pods", name))?;
            Target { pod: name.to_string(), port: pod_port(&pod, port)? }
        }
        _ => {
            let svc = get("Service", name).ok_or_else(|| ApiError::not_found("", "services", name))?;
            service_target(&svc, get("Endpoints", name).as_deref(), port)?
        }
    };
    let method = match call.info.verb.as_str() {
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        _ => "GET",
    };
    let request = hyper::Request::builder()
        .method(method)
        .uri(target_path(&call.info.path, raw_query))
        .header(hyper::header::HOST, format!("{name}:{}", target.port))
        .header(hyper::header::CONNECTION, "close");
    let request = match sent.content_type {
        "" => request,
        content_type => request.header(hyper::header::CONTENT_TYPE, content_type),
    };
    let request = request.body(Full::new(Bytes::copy_from_slice(sent.body))).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let shared = call.shared.clone();
    Ok(Served::Later(Box::pin(async move { exchange(&shared, &namespace, target, tls_name, request).await.map(Served::Proxied) })))
}

/// Sends `request` to the target through its node's agent and reads the whole answer.
async fn exchange(
    shared: &crate::state::Shared,
    namespace: &str,
    target: Target,
    tls_name: Option<rustls::pki_types::ServerName<'static>>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Proxied, ApiError> {
    let failed = |e: String| ApiError::service_unavailable(format!("error trying to reach service: {e}"));
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_hyper, mut to_hyper) = tokio::io::split(theirs);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
    let mut from_pod = relay::pod_port_forward(shared, namespace, &target.pod, u32::from(target.port), ReceiverStream::new(rx))
        .await
        .map_err(|e| failed(e.message().to_string()))?;
    // hyper's bytes to the pod, the pod's to hyper.
    let outbound = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from_hyper.read(&mut buf).await {
            if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                return;
            }
        }
    });
    let inbound = tokio::spawn(async move {
        while let Ok(Some(chunk)) = from_pod.message().await {
            if to_hyper.write_all(&chunk.data).await.is_err() {
                return;
            }
        }
        let _ = to_hyper.shutdown().await;
    });
    let answer = match tls_name {
        None => send(ours, request).await,
        Some(name) => match emu_proto::insecure_tls::connector().connect(name, ours).await {
            Ok(tls) => send(tls, request).await,
            Err(e) => Err(format!("TLS handshake with the pod: {e}")),
        },
    }
    .map_err(failed);
    let result = match answer {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| failed(e.to_string()))?.to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "connection" | "transfer-encoding" | "content-length" | "keep-alive"))
                .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
                .collect();
            Ok(Proxied { status: parts.status.as_u16(), headers, body })
        }
        Err(e) => Err(e),
    };
    outbound.abort();
    inbound.abort();
    result
}

/// `request` sent as HTTP/1.1 over `io`: its answer.
async fn send<IO>(io: IO, request: hyper::Request<Full<Bytes>>) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_ports_and_paths_as_kube_apiserver_reads_them() {
        assert_eq!(split_name("web").unwrap(), ("", "web", ""));
        assert_eq!(split_name("web:8080").unwrap(), ("", "web", "8080"));
        assert_eq!(split_name("http:web:http").unwrap(), ("http", "web", "http"));
        assert_eq!(split_name("a:b:c:d").unwrap_err().code, 400);
        assert_eq!(split_name("ftp:web:1").unwrap_err().code, 400);
        assert_eq!(target_path("/api/v1/namespaces/default/services/web/proxy", ""), "/");
        assert_eq!(target_path("/api/v1/namespaces/default/services/web/proxy/", "a=1"), "/?a=1");
        assert_eq!(target_path("/api/v1/namespaces/default/pods/web:80/proxy/x/y.html", ""), "/x/y.html");
    }

    #[test]
    fn a_pods_port_by_number_name_or_none() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}});
        assert_eq!(pod_port(&pod, "").unwrap(), 80);
        assert_eq!(pod_port(&pod, "81").unwrap(), 81);
        assert_eq!(pod_port(&pod, "http").unwrap(), 8080);
        assert_eq!(pod_port(&pod, "nope").unwrap_err().code, 400);
    }

    #[test]
    fn a_services_endpoint_by_port_name_or_number() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 8080}, {"name": "https", "port": 443}]}});
        let eps = json!({"subsets": [{
            "addresses": [{"ip": "10.244.0.3", "targetRef": {"kind": "Pod", "name": "web-1"}}],
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]});
        assert_eq!(service_target(&svc, Some(&eps), "http").unwrap(), Target { pod: "web-1".into(), port: 80 });
        assert_eq!(service_target(&svc, Some(&eps), "8080").unwrap(), Target { pod: "web-1".into(), port: 80 });
        assert_eq!(service_target(&svc, Some(&eps), "443").unwrap(), Target { pod: "web-1".into(), port: 443 });
        let none = service_target(&svc, None, "http").unwrap_err();
        assert_eq!((none.code, none.message.as_str()), (503, "no endpoints available for service \"web\""));
        let unnamed = json!({"metadata": {"name": "one"}, "spec": {"ports": [{"port": 80}]}});
        let eps = json!({"subsets": [{"addresses": [{"ip": "10.244.0.4", "targetRef": {"kind": "Pod", "name": "one-1"}}], "ports": [{"port": 80}]}]});
        assert_eq!(service_target(&unnamed, Some(&eps), "").unwrap(), Target { pod: "one-1".into(), port: 80 });
    }
}
