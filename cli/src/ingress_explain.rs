//! `emu ingress explain URL`: what the ingress controller's nginx does with a request for URL,
//! in Kubernetes' terms (class, host rule, Ingress path, redirect, rewrite, Service, pods).
//! The objects are read from the cluster and the model is built exactly as emu-ingress builds
//! it (`emu_logic::ingress::build`, its default layout); the decision is
//! `emu_logic::ingress::explain`, pure and unit-tested.
//!
//! Gateways come first: when `--gateway NS/NAME` names one, or a Gateway of emu's class has
//! the URL's address or a listener on its port whose hostname takes the Host header, that
//! Gateway's data path is explained instead (`emu_logic::ingress::explain::gateway`, on the
//! model `emu-ingress --gateway` renders).

use crate::context::{api_error, Ctx};
use crate::Globals;
use anyhow::bail;
use clap::{Args, Subcommand};
use emu_api::gateway::{Gateway, GatewayClass, HTTPRoute};
use emu_api::typed::{decode_all, EndpointSlice, Ingress, IngressClass, Namespace, Secret, Service};
use emu_logic::gateway_nginx;
use emu_logic::ingress::{self, explain, Inputs, Layout};
use emu_proto::{ListRequest, ObjectRef};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct IngressArgs {
    #[command(subcommand)]
    command: IngressCommand,
}

#[derive(Subcommand, Debug)]
enum IngressCommand {
    /// Explain what the ingress controller does with a request: which host rule and Ingress
    /// path take it (and why the others do not), redirects, the rewritten path, the Service
    /// and the pods it may reach, or why it gets 404/503: `emu ingress explain
    /// http://kubia.example.com/foo`.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The URL as a client requests it, scheme included: `http://kubia.example.com/foo/bar`.
    url: String,
    /// A request header as curl's -H takes it, `Name: value` (repeatable); `Host` replaces the
    /// URL's host, `Cookie` is read for cookie affinity.
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// The client's address as nginx sees it, to decide `whitelist-source-range` (without it
    /// explain says which addresses are allowed).
    #[arg(long, value_name = "IP")]
    client_ip: Option<String>,
    /// The request's method, as curl's -X (HTTPRoute method matches; Ingresses route by host
    /// and path alone).
    #[arg(short = 'X', long = "request", value_name = "METHOD", default_value = "GET")]
    method: String,
    /// Explain the request through this Gateway's data path (`NAME` or `NAMESPACE/NAME`), even
    /// when its address and listener hostnames do not say so.
    #[arg(long, value_name = "[NAMESPACE/]NAME")]
    gateway: Option<String>,
    /// Output format: `json` for the decision as JSON (default: text).
    #[arg(short = 'o', long, value_name = "FORMAT")]
    output: Option<String>,
}

/// Where emu-ingress's defaults put its files (its `--conf-dir`, `--cert-dir` and `--run-dir`):
/// the model names the certificate files by them.
fn controller_layout(http_port: u16, https_port: u16) -> Layout {
    let cert_dir = "/etc/ingress-controller/ssl";
    Layout {
        run_dir: "/tmp/nginx".into(),
        cert_dir: cert_dir.into(),
        default_cert: format!("{cert_dir}/default-fake-certificate.pem"),
        upstreams_file: "/etc/nginx/upstreams.conf".into(),
        http_port,
        https_port,
    }
}

/// The controller's flags from its Deployment: (`--ingress-class`, `--http-port`, `--https-port`).
fn controller_flags(deployment: &Value) -> (String, u16, u16) {
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].as_array().cloned().unwrap_or_default();
    let flag = |name: &str| args.iter().filter_map(Value::as_str).find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string));
    let port = |name: &str, default: u16| flag(name).and_then(|p| p.parse().ok()).unwrap_or(default);
    (flag("ingress-class").unwrap_or_else(|| "nginx".into()), port("http-port", 80), port("https-port", 443))
}

pub fn ingress(a: IngressArgs, g: &Globals) -> anyhow::Result<i32> {
    match a.command {
        IngressCommand::Explain(e) => explain_url(e, g),
    }
}

fn explain_url(a: ExplainArgs, g: &Globals) -> anyhow::Result<i32> {
    let json = match a.output.as_deref() {
        None => false,
        Some("json") => true,
        Some(other) => bail!("--output {other:?} is not a format of emu ingress explain: use -o json, or leave it out for text"),
    };
    let request = explain::parse_request(&a.url, &a.headers, a.client_ip.as_deref()).map_err(anyhow::Error::msg)?;
    let ctx = Ctx::open(g)?;
    let list = |kind: &str| -> anyhow::Result<Vec<Value>> {
        let mut client = ctx.client.clone();
        let request = ListRequest { kind: kind.into(), ..Default::default() };
        let items = ctx.block_on(client.list(request)).map_err(api_error)?.into_inner().items;
        items.iter().map(|o| Ok(serde_json::from_str(&o.json)?)).collect()
    };
    let services: Vec<Service> = decode_all(&list("Service")?);
    let slices: Vec<EndpointSlice> = decode_all(&list("EndpointSlice")?);
    let secrets: Vec<Secret> = decode_all(&list("Secret")?);
    let gateways: Vec<Gateway> = decode_all(&list("Gateway")?);
    let named = a.gateway.as_ref().map(|n| if n.contains('/') { n.clone() } else { format!("{}/{n}", g.namespace_or_default()) });
    let gateway_classes: Vec<GatewayClass> = decode_all(&list("GatewayClass")?);
    if let Some((gw, why)) = explain::gateway::pick(&gateways, &gateway_classes, named.as_deref(), &request).map_err(anyhow::Error::msg)? {
        let routes: Vec<HTTPRoute> = decode_all(&list("HTTPRoute")?);
        let namespaces: Vec<Namespace> = decode_all(&list("Namespace")?);
        let inputs = gateway_nginx::Inputs {
            gateway: gw,
            routes: &routes,
            namespaces: &namespaces,
            services: &services,
            slices: &slices,
            secrets: &secrets,
        };
        let layout = controller_layout(80, 443);
        let layout = gateway_nginx::Layout {
            run_dir: layout.run_dir,
            cert_dir: layout.cert_dir,
            default_cert: layout.default_cert,
            upstreams_file: layout.upstreams_file,
        };
        let model = gateway_nginx::build(&inputs, &layout);
        let decision = explain::gateway::explain(gw, why, &model, &slices, &request, &a.method);
        return show(&decision, decision.text(), json);
    }
    let mut client = ctx.client.clone();
    let controller =
        ObjectRef { kind: "Deployment".into(), namespace: ingress::ADDON_NAMESPACE.into(), name: "ingress-nginx-controller".into() };
    let deployment: Value = match ctx.block_on(client.get(controller)) {
        Ok(o) => serde_json::from_str(&o.into_inner().json)?,
        Err(s) if s.code() == tonic::Code::NotFound => {
            bail!("the ingress add-on is not enabled: no controller serves Ingresses in this cluster. Enable it with `emu addons enable ingress`.")
        }
        Err(s) => return Err(api_error(s)),
    };
    let (class, http_port, https_port) = controller_flags(&deployment);
    let classes: Vec<IngressClass> = decode_all(&list("IngressClass")?);
    let ingresses: Vec<Ingress> = decode_all(&list("Ingress")?);
    let inputs =
        Inputs { class: &class, classes: &classes, ingresses: &ingresses, services: &services, slices: &slices, secrets: &secrets };
    let model = ingress::build(&inputs, &controller_layout(http_port, https_port));
    let decision = explain::explain(&inputs, &model, &request);
    show(&decision, decision.text(), json)
}

/// Prints a decision as text or, with `-o json`, as JSON.
fn show<T: serde::Serialize>(decision: &T, text: String, json: bool) -> anyhow::Result<i32> {
    if json {
        println!("{}", serde_json::to_string_pretty(decision)?);
    } else {
        print!("{text}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_controller_s_flags_are_read_from_its_deployment() {
        let objects = ingress::addon_objects();
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(controller_flags(deployment), ("nginx".to_string(), 80, 443));
        let custom = json!({"spec": {"template": {"spec": {"containers": [{"args": ["--ingress-class=internal", "--http-port=8080"]}]}}}});
        assert_eq!(controller_flags(&custom), ("internal".to_string(), 8080, 443));
    }
}
