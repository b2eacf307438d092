//! `emu port-forward`: the host's way into the cluster, as `kubectl port-forward`. It listens on
//! the host's loopback only and makes each connection a stream through the controller to the
//! agent of the pod's node, which connects to `localhost:PORT` inside the pod's network namespace
//! and copies bytes both ways.
//!
//! A forward stays on the pod it picked; when that pod goes away, the command exits with
//! kubectl's `error: lost connection to pod` (kubectl does not pick another pod either).

use crate::context::Ctx;
use crate::verbs::find_pod;
use anyhow::{bail, Context};
use clap::Args;
use emu_api::object;
use emu_proto::relay_client::RelayClient;
use emu_proto::{ObjectRef, PortForwardInput, PortForwardStart};
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

#[derive(Args, Debug)]
pub struct PortForwardArgs {
    /// `pod/NAME` (or `NAME`), `service/NAME`, `deployment/NAME`, `replicaset/NAME`.
    pub target: String,
    /// `[LOCAL:]REMOTE`: REMOTE is a port number or name (a Service's port for `service/…`);
    /// LOCAL defaults to REMOTE's number, `:REMOTE` picks a free one.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Where to listen: loopback only (emu never exposes a cluster beyond this machine).
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
}

/// One `[LOCAL:]REMOTE` argument as written: local port (None: same as remote, Some(0): any
/// free one) and remote port number or name.
fn parse_port_arg(arg: &str) -> anyhow::Result<(Option<u16>, String)> {
    let (local, remote) = match arg.split_once(':') {
        None => (None, arg),
        Some(("", remote)) => (Some(0), remote),
        Some((local, remote)) => {
            (Some(local.parse().map_err(|_| anyhow::anyhow!("error parsing local port '{local}': not a port number"))?), remote)
        }
    };
    if remote.is_empty() {
        bail!("invalid port format '{arg}'");
    }
    Ok((local, remote.to_string()))
}

/// A pod's container port named `name`.
fn named_container_port(pod: &Value, name: &str) -> Option<u16> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find_map(|p| (p["name"] == name).then(|| p["containerPort"].as_u64().and_then(|n| u16::try_from(n).ok())).flatten())
}

/// The pod port `remote` means: for a Service, its port's targetPort (a number, or a container
/// port name resolved in the pod); for a pod, a number or one of its container port names.
fn pod_port(service: Option<&Value>, pod: &Value, remote: &str) -> anyhow::Result<u16> {
    let by_name = |name: &str| {
        named_container_port(pod, name).ok_or_else(|| anyhow::anyhow!("Pod '{}' does not have a named port '{name}'", object::name(pod)))
    };
    let Some(svc) = service else {
        return match remote.parse::<u16>() {
            Ok(n) => Ok(n),
            Err(_) => by_name(remote),
        };
    };
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let port = ports
        .iter()
        .find(|p| match remote.parse::<u64>() {
            Ok(n) => p["port"].as_u64() == Some(n),
            Err(_) => p["name"] == remote,
        })
        .ok_or_else(|| match remote.parse::<u64>() {
            Ok(_) => anyhow::anyhow!("Service {} does not have a service port {remote}", object::name(svc)),
            Err(_) => anyhow::anyhow!("Service '{}' does not have a named port '{remote}'", object::name(svc)),
        })?;
    match &port["targetPort"] {
        Value::String(name) => by_name(name),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()).context("targetPort out of range"),
        _ => port["port"].as_u64().and_then(|n| u16::try_from(n).ok()).context("port out of range"),
    }
}

pub fn port_forward(a: PortForwardArgs, g: &crate::Globals) -> anyhow::Result<i32> {
    if !matches!(a.address.as_str(), "127.0.0.1" | "localhost") {
        bail!("--address {}: emu forwards on the host's loopback only (127.0.0.1, localhost)", a.address);
    }
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let ns = g.namespace_or_default();
    let wanted: Vec<(Option<u16>, String)> = a.ports.iter().map(|p| parse_port_arg(p)).collect::<anyhow::Result<_>>()?;
    let pod = find_pod(&ctx, &mut client, &a.target, &ns)?;
    if pod["status"]["phase"] != "Running" {
        bail!("unable to forward port because pod is not running. Current status={}", pod["status"]["phase"].as_str().unwrap_or("Pending"));
    }
    let (kind, name) = a.target.split_once('/').unwrap_or(("pod", &a.target));
    let service = match emu_api::kinds::lookup(kind).map(|k| k.kind) {
        Some("Service") => Some(ctx.block_on(crate::verbs::get_one(&mut client, "Service", &ns, name))?),
        _ => None,
    };
    let mut listeners = Vec::new();
    for (local, remote) in &wanted {
        let target = pod_port(service.as_ref(), &pod, remote)?;
        let local = local.unwrap_or_else(|| remote.parse().unwrap_or(target));
        let listener = TcpListener::bind(("127.0.0.1", local)).with_context(|| format!("unable to listen on port {local}"))?;
        let bound = listener.local_addr()?.port();
        println!("Forwarding from 127.0.0.1:{bound} -> {target}");
        listener.set_nonblocking(true)?;
        listeners.push((listener, bound, target));
    }
    std::io::stdout().flush()?;
    let (namespace, name, uid) = (object::namespace(&pod).to_string(), object::name(&pod).to_string(), object::uid(&pod).to_string());
    let relay = ctx.relay.clone();
    ctx.block_on(async move {
        for (listener, local, target) in listeners {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let at = PodPort { relay: relay.clone(), namespace: namespace.clone(), name: name.clone(), port: target };
            tokio::spawn(serve(listener, local, at));
        }
        // The forward stays on its pod: once the pod is gone it has nothing to reach.
        let r = ObjectRef { kind: "Pod".into(), namespace, name };
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            match client.get(r.clone()).await {
                Ok(p) if serde_json::from_str::<Value>(&p.get_ref().json).is_ok_and(|p| object::uid(&p) == uid) => {}
                Ok(_) => break,
                Err(e) if e.code() == tonic::Code::NotFound => break,
                // The controller restarting: ask again.
                Err(_) => {}
            }
        }
        anyhow::Ok(())
    })?;
    eprintln!("error: lost connection to pod");
    Ok(1)
}

/// Where forwarded connections go: a port of a pod, through the controller.
#[derive(Clone)]
struct PodPort {
    relay: RelayClient<Channel>,
    namespace: String,
    name: String,
    port: u16,
}

/// Accepts connections on `listener` and pipes each to the pod's port.
async fn serve(listener: tokio::net::TcpListener, local: u16, at: PodPort) {
    loop {
        let Ok((conn, _)) = listener.accept().await else { continue };
        println!("Handling connection for {local}");
        let _ = std::io::stdout().flush();
        let at = at.clone();
        tokio::spawn(async move {
            if let Err(e) = pipe(conn, &at).await {
                eprintln!("E0000 portforward: an error occurred forwarding {local} -> {}: {e:#}", at.port);
            }
        });
    }
}

/// One connection: a stream to `localhost:PORT` inside the pod, copied both ways until either
/// side closes.
async fn pipe(conn: tokio::net::TcpStream, at: &PodPort) -> anyhow::Result<()> {
    use emu_proto::port_forward_input::Input;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let start = PortForwardStart { namespace: at.namespace.clone(), pod: at.name.clone(), port: at.port.into(), ..Default::default() };
    tx.send(PortForwardInput { input: Some(Input::Start(start)) }).await?;
    let mut relay = at.relay.clone();
    let mut from_pod = relay.port_forward(ReceiverStream::new(rx)).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
    let (mut read, mut write) = conn.into_split();
    // Client → pod; its end (the stream's) ends the pod's side.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 || tx.send(PortForwardInput { input: Some(Input::Data(buf[..n].to_vec())) }).await.is_err() {
                return;
            }
        }
    });
    while let Some(m) = from_pod.message().await.map_err(|s| anyhow::anyhow!("{}", s.message()))? {
        write.write_all(&m.data).await?;
    }
    write.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_arguments_as_kubectl_reads_them() {
        assert_eq!(parse_port_arg("8080:80").unwrap(), (Some(8080), "80".to_string()));
        assert_eq!(parse_port_arg("80").unwrap(), (None, "80".to_string()));
        assert_eq!(parse_port_arg(":80").unwrap(), (Some(0), "80".to_string()));
        assert_eq!(parse_port_arg("6379:redis").unwrap(), (Some(6379), "redis".to_string()));
        assert!(parse_port_arg("x:80").is_err());
        assert!(parse_port_arg("80:").is_err());
    }

    #[test]
    fn service_ports_map_to_target_ports() {
        let pod = json!({"metadata": {"name": "redis-1"}, "spec": {"containers": [{"ports": [{"name": "redis", "containerPort": 6379}]}]}});
        let svc = json!({"metadata": {"name": "redis"}, "spec": {"ports": [
            {"name": "db", "port": 7000, "targetPort": "redis"}, {"name": "web", "port": 8080, "targetPort": 80}, {"port": 9000}]}});
        assert_eq!(pod_port(Some(&svc), &pod, "7000").unwrap(), 6379);
        assert_eq!(pod_port(Some(&svc), &pod, "db").unwrap(), 6379);
        assert_eq!(pod_port(Some(&svc), &pod, "8080").unwrap(), 80);
        assert_eq!(pod_port(Some(&svc), &pod, "9000").unwrap(), 9000);
        assert_eq!(pod_port(Some(&svc), &pod, "1").unwrap_err().to_string(), "Service redis does not have a service port 1");
        assert_eq!(pod_port(None, &pod, "redis").unwrap(), 6379);
        assert_eq!(pod_port(None, &pod, "6379").unwrap(), 6379);
        assert_eq!(pod_port(None, &pod, "http").unwrap_err().to_string(), "Pod 'redis-1' does not have a named port 'http'");
    }
}
