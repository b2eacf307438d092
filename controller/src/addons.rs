//! The cluster add-ons every Kubernetes cluster starts with, created by the controller when
//! missing (as kubeadm installs them): cluster DNS, i.e. Deployment `kube-system/coredns` (two
//! replicas of the CoreDNS image, which runs emu's own DNS server) behind Service
//! `kube-system/kube-dns` at the tenth address of the service range (10.96.0.10), and the
//! pods' ServiceAccount `kube-system/coredns` (admission refuses pods naming one that is missing).
//!
//! Created once; a user who deletes or scales them keeps the result until the next start of
//! the controller (kubeadm's add-ons are not reconciled either).
//!
//! The ingress add-on is not among them: as in minikube, a cluster starts without it and
//! `emu addons enable ingress` applies `emu_logic::ingress::addon_objects` through the API. It
//! costs a pod, an nginx and a balancer address per cluster, which most clusters (and tests)
//! never use; kubeadm installs no ingress controller either.

use crate::state::Shared;
use crate::store::ObjectKey;
use emu_api::defaults;
use emu_logic::ipam;
use serde_json::{json, Value};

/// The image of the DNS pods: the CoreDNS release kubeadm installs with Kubernetes 1.33.
pub const COREDNS_IMAGE: &str = "registry.k8s.io/coredns/coredns:v1.12.0";

/// `kube-system/kube-dns` and `kube-system/coredns` (a ServiceAccount and a Deployment), as
/// kubeadm writes them, except: no Corefile ConfigMap (emu's server has its configuration built
/// in) and a readiness probe every second rather than every 10 s, so that a DNS pod takes
/// traffic as soon as it answers.
pub fn cluster_dns_objects(dns_ip: &str) -> Vec<Value> {
    let labels = json!({"k8s-app": "kube-dns"});
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {"clusterIP": dns_ip, "clusterIPs": [dns_ip], "selector": labels,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            "template": {"metadata": {"labels": labels},
                "spec": {"priorityClassName": "system-cluster-critical", "serviceAccountName": "coredns", "dnsPolicy": "Default",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "coredns", "image": COREDNS_IMAGE, "imagePullPolicy": "IfNotPresent",
                        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                        "ports": [
                            {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                            {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                            {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}, "periodSeconds": 1}}]}}}});
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}});
    vec![service, account, deployment]
}

/// Creates the cluster DNS objects that do not exist yet.
pub fn ensure_cluster_dns(shared: &Shared) {
    let Ok(cidr) = shared.cluster.service_cidr.parse::<ipam::Ipv4Cidr>() else { return };
    let Some(dns_ip) = cidr.nth(10) else { return };
    for mut v in cluster_dns_objects(&dns_ip.to_string()) {
        defaults::apply_defaults(&mut v);
        let Ok(key) = ObjectKey::of(&v) else { continue };
        if shared.store.get(&key).is_none() {
            if let Err(e) = shared.store.create(v) {
                tracing::warn!(error = %e, object = %key.name, kind = %key.kind, "creating cluster DNS");
            }
        }
    }
}
