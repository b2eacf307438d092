//! What a node agent derives from a pod: its `/etc/hosts`, its `/etc/resolv.conf`, and its status
//! from what the containers are doing.

use emu_api::typed::k8s_openapi::api::core::v1::{Pod, PodSpec};
use emu_api::typed::{self, key};
use serde_json::{json, Value};

/// The pod's spec (Go's zero value when it has none).
pub fn spec(pod: &Pod) -> &PodSpec {
    static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
    pod.spec.as_ref().unwrap_or_else(|| EMPTY.get_or_init(PodSpec::default))
}

pub const CLUSTER_DOMAIN: &str = "cluster.local";
pub const CLUSTER_DNS: &str = "10.96.0.10";

/// The ConfigMaps and Secrets (kind, name) a pod names, in its namespace: in its volumes
/// (projected ones too), its containers' variables and its image pulls. What the node agent
/// watches for the pod, and what the Node authorizer lets the pod's node read.
pub fn referenced_objects(pod: &Pod) -> Vec<(&'static str, &str)> {
    let spec = spec(pod);
    let mut refs = Vec::new();
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            refs.push(("Secret", name));
        }
        if let Some(c) = &volume.config_map {
            refs.push(("ConfigMap", c.name.as_str()));
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &source.secret {
                refs.push(("Secret", s.name.as_str()));
            }
            if let Some(c) = &source.config_map {
                refs.push(("ConfigMap", c.name.as_str()));
            }
        }
    }
    for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        for var in container.env.iter().flatten() {
            let from = var.value_from.as_ref();
            if let Some(s) = from.and_then(|f| f.secret_key_ref.as_ref()) {
                refs.push(("Secret", s.name.as_str()));
            }
            if let Some(c) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
                refs.push(("ConfigMap", c.name.as_str()));
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(s) = &from.secret_ref {
                refs.push(("Secret", s.name.as_str()));
            }
            if let Some(c) = &from.config_map_ref {
                refs.push(("ConfigMap", c.name.as_str()));
            }
        }
    }
    for secret in spec.image_pull_secrets.iter().flatten() {
        refs.push(("Secret", secret.name.as_str()));
    }
    refs
}

/// The kubelet-managed `/etc/hosts` (DNS-25).
pub fn hosts_file(pod: &Pod, pod_ip: &str) -> String {
    let (namespace, name) = key(&pod.metadata);
    let spec = spec(pod);
    let hostname = spec.hostname.as_deref().unwrap_or(name);
    let mut s = String::from("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
    match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => s.push_str(&format!("{pod_ip}\t{hostname}.{sub}.{namespace}.svc.{CLUSTER_DOMAIN}\t{hostname}\n")),
        None => s.push_str(&format!("{pod_ip}\t{hostname}\n")),
    }
    if let Some(aliases) = spec.host_aliases.as_deref().filter(|a| !a.is_empty()) {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.as_deref().unwrap_or_default();
            s.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
        }
    }
    s
}

/// The resolver settings of a resolv.conf file: nameservers, search domains, options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Reads a resolv.conf (the last `search`/`domain` line wins, as in glibc).
pub fn parse_resolv_conf(text: &str) -> ResolverConfig {
    let mut cfg = ResolverConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => cfg.nameservers.extend(words.next().map(str::to_string)),
            Some("search" | "domain") => cfg.searches = words.map(str::to_string).collect(),
            Some("options") => cfg.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    cfg
}

/// `/etc/resolv.conf` for the pod's dnsPolicy (DNS-18..22): `ClusterFirst` (the default) points
/// at the cluster DNS, with the node's search domains after the cluster's; `Default` is the
/// node's own file (`node`: in emu the host's /etc/resolv.conf, whose servers no emu namespace
/// can reach); `None` takes everything from `dnsConfig`, which is merged in every case.
pub fn resolv_conf(pod: &Pod, node: &ResolverConfig) -> String {
    let ns = key(&pod.metadata).0;
    let spec = spec(pod);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) = match policy {
        "None" => (vec![], vec![], vec![]),
        "Default" => (node.nameservers.clone(), node.searches.clone(), node.options.clone()),
        _ => {
            let mut searches = vec![format!("{ns}.svc.{CLUSTER_DOMAIN}"), format!("svc.{CLUSTER_DOMAIN}"), CLUSTER_DOMAIN.into()];
            for s in &node.searches {
                if !searches.contains(s) {
                    searches.push(s.clone());
                }
            }
            (vec![CLUSTER_DNS.into()], searches, vec!["ndots:5".into()])
        }
    };
    let cfg = spec.dns_config.as_ref();
    for s in cfg.and_then(|c| c.nameservers.as_deref()).unwrap_or_default() {
        if !servers.contains(s) {
            servers.push(s.clone());
        }
    }
    servers.truncate(3);
    for s in cfg.and_then(|c| c.searches.as_deref()).unwrap_or_default() {
        if !searches.contains(s) {
            searches.push(s.clone());
        }
    }
    for o in cfg.and_then(|c| c.options.as_deref()).unwrap_or_default() {
        let Some(name) = o.name.as_deref() else { continue };
        options.retain(|x| x.split(':').next() != Some(name));
        options.push(match o.value.as_deref() {
            Some(v) => format!("{name}:{v}"),
            None => name.to_string(),
        });
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// What the node agent observed of one container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerObservation {
    pub name: String,
    pub image: String,
    pub restart_count: u32,
    pub container_id: Option<String>,
    pub state: Observed,
    pub last_terminated: Option<TerminatedObservation>,
    /// Whether its readiness probe passes (true for a container without one): a running
    /// container is ready only when this holds (EP-3).
    pub probe_ready: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    Waiting { reason: String, message: String },
    Running { started_at: String },
    Terminated(TerminatedObservation),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TerminatedObservation {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub started_at: String,
    pub finished_at: String,
}

pub struct StatusInput {
    pub host_ip: String,
    pub pod_ip: String,
    pub containers: Vec<ContainerObservation>,
}

fn terminated_json(t: &TerminatedObservation) -> Value {
    let mut v = json!({"exitCode": t.exit_code, "reason": t.reason, "startedAt": t.started_at, "finishedAt": t.finished_at});
    if let Some(s) = t.signal {
        v["signal"] = json!(s);
    }
    v
}

/// The pod's `status` as the kubelet would report it. Timestamps already in the pod's status
/// (startTime, condition transitions) are kept so that an unchanged pod yields an unchanged status.
///
/// The status is built as JSON, not as a typed `PodStatus`: kubelet's conditions carry
/// `lastProbeTime: null` (Go's nil `metav1.Time`, which `kubectl get pod -o yaml` prints), and
/// the typed encoding drops every `None`.
pub fn pod_status(pod: &Pod, input: &StatusInput) -> Value {
    let old = pod.status.as_ref();
    let restart_policy = spec(pod).restart_policy.as_deref().unwrap_or("Always");
    let cs: Vec<Value> = input
        .containers
        .iter()
        .map(|c| {
            let (state, ready, started) = match &c.state {
                Observed::Waiting { reason, message } => {
                    let mut w = json!({"reason": reason});
                    if !message.is_empty() {
                        w["message"] = json!(message);
                    }
                    (json!({"waiting": w}), false, false)
                }
                Observed::Running { started_at } => (json!({"running": {"startedAt": started_at}}), c.probe_ready, true),
                Observed::Terminated(t) => (json!({"terminated": terminated_json(t)}), false, false),
            };
            let mut v = json!({"name": c.name, "image": c.image, "imageID": format!("emu://image/{}", c.image),
                "ready": ready, "started": started, "restartCount": c.restart_count, "state": state,
                "lastState": c.last_terminated.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or(json!({}))});
            if let Some(id) = &c.container_id {
                v["containerID"] = json!(id);
            }
            v
        })
        .collect();
    let all_running = !input.containers.is_empty() && input.containers.iter().all(|c| matches!(c.state, Observed::Running { .. }));
    let container_ready = |c: &ContainerObservation| matches!(c.state, Observed::Running { .. }) && c.probe_ready;
    let all_terminated = !input.containers.is_empty() && input.containers.iter().all(|c| matches!(c.state, Observed::Terminated(_)));
    let ever_started =
        input.containers.iter().any(|c| !matches!(c.state, Observed::Waiting { .. }) || c.restart_count > 0 || c.last_terminated.is_some());
    let all_succeeded = input.containers.iter().all(|c| matches!(&c.state, Observed::Terminated(t) if t.exit_code == 0));
    let phase = if all_terminated && restart_policy != "Always" && (restart_policy == "Never" || all_succeeded) {
        if all_succeeded {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if ever_started {
        "Running"
    } else {
        "Pending"
    };
    let now_or_old = |t: &str, status: &str| -> Value {
        old.and_then(|o| o.conditions.as_deref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t && c.status == status))
            .map(|c| c.last_transition_time.as_ref().map(typed::encode).unwrap_or(Value::Null))
            .unwrap_or_else(|| json!(emu_api::object::rfc3339(now_hint(input))))
    };
    let cond = |t: &str, ok: bool| {
        let s = if ok { "True" } else { "False" };
        let mut c = json!({"type": t, "status": s, "lastProbeTime": null, "lastTransitionTime": now_or_old(t, s)});
        if !ok && (t == "Ready" || t == "ContainersReady") {
            let names: Vec<&str> = input.containers.iter().filter(|c| !container_ready(c)).map(|c| c.name.as_str()).collect();
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(format!("containers with unready status: [{}]", names.join(" ")));
        }
        c
    };
    let ready = all_running && input.containers.iter().all(container_ready);
    let mut status = json!({
        "phase": phase,
        "conditions": [cond("PodReadyToStartContainers", true), cond("Initialized", true), cond("Ready", ready),
            cond("ContainersReady", ready), cond("PodScheduled", true)],
        "hostIP": input.host_ip, "hostIPs": [{"ip": input.host_ip}],
        "podIP": input.pod_ip, "podIPs": [{"ip": input.pod_ip}],
        "qosClass": old.and_then(|o| o.qos_class.as_deref()).unwrap_or("BestEffort"),
        "containerStatuses": cs,
    });
    status["startTime"] =
        old.and_then(|o| o.start_time.as_ref()).map(typed::encode).unwrap_or_else(|| json!(emu_api::object::rfc3339(now_hint(input))));
    status
}

/// The newest timestamp the containers report, as "now" for new conditions: keeps this function
/// free of clocks (the caller's observations carry the time).
fn now_hint(input: &StatusInput) -> i64 {
    input
        .containers
        .iter()
        .flat_map(|c| {
            let mut ts = vec![];
            match &c.state {
                Observed::Running { started_at } => ts.push(started_at.clone()),
                Observed::Terminated(t) => ts.push(t.finished_at.clone()),
                Observed::Waiting { .. } => {}
            }
            if let Some(t) = &c.last_terminated {
                ts.push(t.finished_at.clone());
            }
            ts
        })
        .filter_map(|t| emu_api::object::parse_rfc3339(&t))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "default"}, "spec": {"containers": [{"name": "c"}]}, "status": {}})
    }

    fn typed(pod: &Value) -> Pod {
        typed::decode(pod).unwrap()
    }

    #[test]
    fn cluster_first_resolv_conf() {
        assert_eq!(
            resolv_conf(&typed(&pod()), &ResolverConfig::default()),
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        let node = parse_resolv_conf("# host\nnameserver 192.0.2.53\nsearch corp.example cluster.local\noptions timeout:1\n");
        assert_eq!(
            resolv_conf(&typed(&pod()), &node),
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n",
            "the node's search domains follow the cluster's; its servers and options are dropped"
        );
    }

    #[test]
    fn default_policy_is_the_nodes_resolver() {
        let mut p = pod();
        p["spec"]["dnsPolicy"] = json!("Default");
        let node = parse_resolv_conf("nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions timeout:1 attempts:2\n");
        assert_eq!(
            resolv_conf(&typed(&p), &node),
            "search corp.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:1 attempts:2\n"
        );
    }

    #[test]
    fn none_policy_takes_dns_config() {
        let mut p = pod();
        p["spec"]["dnsPolicy"] = json!("None");
        p["spec"]["dnsConfig"] = json!({"nameservers": ["192.0.2.1"], "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]});
        assert_eq!(
            resolv_conf(&typed(&p), &parse_resolv_conf("nameserver 192.0.2.53\n")),
            "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn hosts_file_ends_with_pod_ip() {
        assert!(hosts_file(&typed(&pod()), "10.244.1.5").ends_with("fe00::2\tip6-allrouters\n10.244.1.5\tweb-1\n"));
    }

    /// One container `name` of nginx running since 04:00, its readiness probe passing or not, in
    /// a pod at 10.244.1.5 on 172.18.0.2.
    fn running(name: &str, probe_ready: bool) -> StatusInput {
        StatusInput {
            host_ip: "172.18.0.2".into(),
            pod_ip: "10.244.1.5".into(),
            containers: vec![ContainerObservation {
                name: name.into(),
                image: "nginx".into(),
                restart_count: 0,
                container_id: None,
                state: Observed::Running { started_at: "2026-11-22T04:00:00Z".into() },
                last_terminated: None,
                probe_ready,
            }],
        }
    }

    #[test]
    fn running_pod_is_ready() {
        let input = running("c", true);
        let s = pod_status(&typed(&pod()), &input);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIPs"], json!([{"ip": "10.244.1.5"}]));
        assert!(s["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    }

    #[test]
    fn running_pod_waits_for_its_readiness_probe() {
        let input = running("web", false);
        let s = pod_status(&typed(&pod()), &input);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        assert_eq!(s["containerStatuses"][0]["started"], true);
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["message"], "containers with unready status: [web]");
    }

    #[test]
    fn a_reported_status_keeps_its_times_and_nulls() {
        let mut p = pod();
        p["status"] = json!({"startTime": "2026-11-22T03:59:58Z", "qosClass": "Burstable", "conditions": [
            {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T03:59:59Z"},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T03:59:57Z"}]});
        let input = running("c", true);
        let s = pod_status(&typed(&p), &input);
        assert_eq!((&s["startTime"], &s["qosClass"]), (&json!("2026-11-22T03:59:58Z"), &json!("Burstable")));
        let conditions = s["conditions"].as_array().unwrap();
        let time = |t: &str| conditions.iter().find(|c| c["type"] == t).map(|c| c["lastTransitionTime"].clone());
        assert_eq!(time("Ready"), Some(json!("2026-11-22T03:59:59Z")));
        assert_eq!(time("PodScheduled"), Some(json!("2026-11-22T03:59:57Z")));
        assert_eq!(time("Initialized"), Some(json!("2026-11-22T04:00:00Z")), "a new condition: the containers' latest time");
        assert!(conditions.iter().all(|c| c["lastProbeTime"].is_null() && c.get("lastProbeTime").is_some()));
    }

    #[test]
    fn crash_looping_pod_stays_running_phase() {
        let input = StatusInput {
            host_ip: "h".into(),
            pod_ip: "p".into(),
            containers: vec![ContainerObservation {
                name: "c".into(),
                image: "busybox".into(),
                restart_count: 2,
                container_id: None,
                state: Observed::Waiting { reason: "CrashLoopBackOff".into(), message: "back-off".into() },
                last_terminated: Some(TerminatedObservation {
                    exit_code: 1,
                    signal: None,
                    reason: "Error".into(),
                    started_at: "2026-11-22T04:00:00Z".into(),
                    finished_at: "2026-11-22T04:00:01Z".into(),
                }),
                probe_ready: true,
            }],
        };
        let s = pod_status(&typed(&pod()), &input);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "CrashLoopBackOff");
    }
}
