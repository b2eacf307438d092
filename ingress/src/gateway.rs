//! `--gateway NS/NAME`: one Gateway's data path. The same loop as the Ingress mode (render, write
//! the files that changed, start or SIGHUP nginx), fed by the Gateway API kinds and rendered with
//! `emu_logic::gateway_nginx`.

use crate::{decoded, with_health_server, Controller};
use emu_api::typed::{self, EndpointSlice, Gateway, HTTPRoute, Namespace, Secret, Service};
use emu_logic::gateway_nginx::{self, Inputs, Problem};
use emu_proto::reflector::Snapshot;
use std::collections::BTreeSet;

/// The source component of the Warning Events of the renderer's problems.
const EVENT_SOURCE: &str = "emu-gateway";

/// The kinds a Gateway's configuration is built from.
pub const KINDS: [&str; 6] = ["Gateway", "HTTPRoute", "Service", "EndpointSlice", "Secret", "Namespace"];

impl Controller {
    pub(crate) async fn sync_gateway(&mut self, snapshot: &Snapshot, gateway: &str) -> anyhow::Result<()> {
        let (ns, name) = gateway.split_once('/').unwrap_or(("default", gateway));
        let gateways: Vec<Gateway> = decoded(snapshot, "Gateway");
        let routes: Vec<HTTPRoute> = decoded(snapshot, "HTTPRoute");
        let namespaces: Vec<Namespace> = decoded(snapshot, "Namespace");
        let services: Vec<Service> = decoded(snapshot, "Service");
        let slices: Vec<EndpointSlice> = decoded(snapshot, "EndpointSlice");
        let secrets: Vec<Secret> = decoded(snapshot, "Secret");
        // A deleted (or not yet created) Gateway serves nothing but the health port: the pod
        // stays up until its Deployment goes with the Gateway.
        let empty = Gateway::default();
        let gw = gateways.iter().find(|g| typed::key(&g.metadata) == (ns, name)).unwrap_or(&empty);
        let inputs =
            Inputs { gateway: gw, routes: &routes, namespaces: &namespaces, services: &services, slices: &slices, secrets: &secrets };
        let layout = gateway_nginx::Layout {
            run_dir: self.layout.run_dir.clone(),
            cert_dir: self.layout.cert_dir.clone(),
            default_cert: self.layout.default_cert.clone(),
            upstreams_file: self.layout.upstreams_file.clone(),
        };
        let model = gateway_nginx::build(&inputs, &layout);
        tracing::debug!(
            servers = model.servers.len(),
            matches = model.matches.len(),
            upstreams = model.upstreams.len(),
            "gateway rendered"
        );
        let conf = with_health_server(gateway_nginx::render_conf(&model, &layout, gateway), self.args.healthz_port);
        let upstreams = emu_logic::ingress::render_upstreams_of(&model.upstreams);
        let now: BTreeSet<Problem> = model.problems.iter().cloned().collect();
        for p in now.difference(&self.gateway_reported) {
            tracing::warn!(object = %format!("{} {}/{}", p.kind, p.namespace, p.name), reason = p.reason, message = %p.message, "problem");
            if let Some(object) = snapshot.objects.get(&(p.kind.to_string(), p.namespace.clone(), p.name.clone())) {
                self.warning_event(object, p.reason, &p.message, EVENT_SOURCE).await;
            }
        }
        self.gateway_reported = now;
        self.apply(conf, upstreams, &model.certificates, model.servers.len()).await
    }
}
