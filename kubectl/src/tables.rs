//! `kubectl get` tables (CLI-1..CLI-15): the server-side table printers' columns and cell rules,
//! decorated the way kubectl's table printer does (NAMESPACE column, kind prefix, label columns).

use serde_json::Value;

use super::{age, at, bool_at, format_labels, int_at, list_at, resource_name, selector_string, str_at, string_pairs, tabwrite, time};

/// `kubectl get` flags that change the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`
    pub wide: bool,
    /// `-A`: prepend a NAMESPACE column (namespaced kinds only).
    pub all_namespaces: bool,
    /// `--no-headers`
    pub no_headers: bool,
    /// `--show-labels`: append a LABELS column.
    pub show_labels: bool,
    /// `-L k1,k2`: one column per label key.
    pub label_columns: Vec<String>,
    /// Several kinds in one `get` (CLI-4): NAME cells read `pod/x`, `deployment.apps/x`.
    pub kind_prefix: bool,
}

/// A `kubectl get` table for objects of one kind. `now` is unix seconds (for AGE). An empty
/// `objects` gives an empty string (kubectl then prints "No resources found" on stderr).
pub fn table(kind: &str, objects: &[Value], opts: &TableOptions, now: i64) -> String {
    if objects.is_empty() {
        return String::new();
    }
    let printer = printer(kind);
    let with_namespace = opts.all_namespaces && !CLUSTER_SCOPED.contains(&kind);
    let columns = printer.header(opts.wide);
    // kubectl prefixes the column of format "name" with the kind; an Event table shows that
    // column only with `-o wide` (as its last), so without it nothing is prefixed.
    let name_column = columns.iter().position(|c| *c == "NAME");
    let mut rows = Vec::with_capacity(objects.len() + 1);
    if !opts.no_headers {
        let mut header: Vec<String> = Vec::new();
        if with_namespace {
            header.push("NAMESPACE".into());
        }
        header.extend(columns.iter().map(|c| c.to_string()));
        header.extend(opts.label_columns.iter().map(|l| l.rsplit('/').next().unwrap_or(l).to_uppercase()));
        if opts.show_labels {
            header.push("LABELS".into());
        }
        rows.push(header);
    }
    for obj in objects {
        let mut row: Vec<String> = Vec::new();
        if with_namespace {
            row.push(str_at(obj, &["metadata", "namespace"]).to_string());
        }
        let mut cells = (printer.row)(obj, opts.wide, now);
        if let Some(i) = name_column.filter(|_| opts.kind_prefix) {
            cells[i] = resource_name(kind, &cells[i]);
        }
        row.extend(cells.into_iter().map(cut_at_newline));
        let labels = at(obj, &["metadata", "labels"]);
        for key in &opts.label_columns {
            row.push(labels.and_then(|l| l.get(key)).and_then(Value::as_str).unwrap_or("").to_string());
        }
        if opts.show_labels {
            row.push(format_labels(labels));
        }
        rows.push(row);
    }
    tabwrite(&rows, 6, 3)
}

const CLUSTER_SCOPED: [&str; 5] = ["Node", "Namespace", "IngressClass", "PersistentVolume", "StorageClass"];

/// A cell holding a newline is cut there and marked with `...` (CLI-1).
fn cut_at_newline(cell: String) -> String {
    match cell.find('\n') {
        Some(i) => format!("{}...", &cell[..i]),
        None => cell,
    }
}

struct Printer {
    /// Column titles in kubectl's order, each with whether only `-o wide` shows it (kubectl's
    /// column priority 1). Wide columns mostly come last, but not always: an Event's MESSAGE
    /// sits between them.
    columns: Vec<(&'static str, bool)>,
    /// All cells of one object, including the wide ones when asked for, in header order.
    row: RowFn,
}

impl Printer {
    /// The titles shown with or without `-o wide`.
    fn header(&self, wide: bool) -> Vec<&'static str> {
        self.columns.iter().filter(|(_, wide_only)| wide || !wide_only).map(|(title, _)| *title).collect()
    }
}

/// `(object, wide, now) -> cells`
type RowFn = fn(&Value, bool, i64) -> Vec<String>;

/// The Event table (`printEvent`), in kubectl's column order; `true` marks `-o wide` columns.
const EVENT_COLUMNS: [(&str, bool); 10] = [
    ("LAST SEEN", false),
    ("TYPE", false),
    ("REASON", false),
    ("OBJECT", false),
    ("SUBOBJECT", true),
    ("SOURCE", true),
    ("MESSAGE", false),
    ("FIRST SEEN", true),
    ("COUNT", true),
    ("NAME", true),
];

fn printer(kind: &str) -> Printer {
    if kind == "Event" {
        return Printer { columns: EVENT_COLUMNS.to_vec(), row: event_row };
    }
    // Every other kind: the plain columns, then the wide ones.
    let (columns, wide, row): (&[&str], &[&str], RowFn) = match kind {
        "Pod" => (&["NAME", "READY", "STATUS", "RESTARTS", "AGE"], &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"], pod_row),
        "Node" => (
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            &["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
            node_row,
        ),
        "Deployment" => (&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], &["CONTAINERS", "IMAGES", "SELECTOR"], deployment_row),
        "ReplicaSet" => (&["NAME", "DESIRED", "CURRENT", "READY", "AGE"], &["CONTAINERS", "IMAGES", "SELECTOR"], replicaset_row),
        "Namespace" => (&["NAME", "STATUS", "AGE"], &[], namespace_row),
        "Service" => (&["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], &["SELECTOR"], service_row),
        "Endpoints" => (&["NAME", "ENDPOINTS", "AGE"], &[], endpoints_row),
        "EndpointSlice" => (&["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], &[], endpointslice_row),
        "Secret" => (&["NAME", "TYPE", "DATA", "AGE"], &[], secret_row),
        "ConfigMap" => (&["NAME", "DATA", "AGE"], &[], configmap_row),
        "ServiceAccount" => (&["NAME", "SECRETS", "AGE"], &[], serviceaccount_row),
        "Ingress" => (&["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], &[], ingress_row),
        "IngressClass" => (&["NAME", "CONTROLLER", "PARAMETERS", "AGE"], &[], ingressclass_row),
        // What kubectl shows for kinds without a dedicated printer.
        _ => (&["NAME", "AGE"], &[], default_row),
    };
    let columns = columns.iter().map(|c| (*c, false));
    let wide = wide.iter().map(|c| (*c, true));
    Printer { columns: columns.chain(wide).collect(), row }
}

fn name(obj: &Value) -> String {
    str_at(obj, &["metadata", "name"]).to_string()
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

/// `first 3 joined by ",", then " + N more..."`, shared by several cells (EP-7, CLI-10, CLI-15).
fn list_with_more(list: &[String], count: usize, empty: &str) -> String {
    let shown = list.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if count > 3 {
        format!("{shown} + {} more...", count - 3)
    } else if shown.is_empty() {
        empty.to_string()
    } else {
        shown
    }
}

/// `net.JoinHostPort`: IPv6 addresses get brackets.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn default_row(obj: &Value, _wide: bool, now: i64) -> Vec<String> {
    vec![name(obj), age(obj, now)]
}

// ---- Pod (CLI-7) ------------------------------------------------------------------------------

fn has_condition(pod: &Value, kind: &str) -> bool {
    list_at(pod, &["status", "conditions"]).iter().any(|c| str_at(c, &["type"]) == kind && str_at(c, &["status"]) == "True")
}

/// `lastState.terminated.finishedAt` of a container status, as (seconds, nanos).
fn last_finished(status: &Value) -> Option<(i64, u32)> {
    at(status, &["lastState", "terminated", "finishedAt"]).and_then(Value::as_str).and_then(emu_api::time::parse_rfc3339_nanos)
}

/// The pod row, following `printPod`: READY, the STATUS reason precedence, RESTARTS with the age
/// of the last restart.
fn pod_row(pod: &Value, wide: bool, now: i64) -> Vec<String> {
    let init_specs = list_at(pod, &["spec", "initContainers"]);
    let is_sidecar = |name: &str| init_specs.iter().any(|c| str_at(c, &["name"]) == name && str_at(c, &["restartPolicy"]) == "Always");
    let total =
        list_at(pod, &["spec", "containers"]).len() + init_specs.iter().filter(|c| str_at(c, &["restartPolicy"]) == "Always").count();
    let mut ready = 0;
    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = match str_at(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    for c in list_at(pod, &["status", "conditions"]) {
        if str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }

    let init_statuses = list_at(pod, &["status", "initContainerStatuses"]);
    let (mut restarts, mut sidecar_restarts) = (0i64, 0i64);
    let (mut last_restart, mut last_sidecar_restart) = (None, None);
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        let count = int_at(cs, &["restartCount"]);
        restarts += count;
        last_restart = last_restart.max(last_finished(cs));
        let sidecar = is_sidecar(str_at(cs, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = last_sidecar_restart.max(last_finished(cs));
        }
        let terminated = at(cs, &["state", "terminated"]);
        let waiting_reason = str_at(cs, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_at(cs, &["started"]) {
            if bool_at(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match str_at(t, &["reason"]) {
                "" if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                "" => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    // While init containers run, their restarts are what RESTARTS shows; afterwards only
    // sidecars' and the app containers' restarts count.
    if !initializing || has_condition(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let statuses = list_at(pod, &["status", "containerStatuses"]);
        let mut has_running = false;
        // kubectl walks the statuses backwards, so the first container's reason wins.
        for cs in statuses.iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            last_restart = last_restart.max(last_finished(cs));
            let waiting = str_at(cs, &["state", "waiting", "reason"]);
            let terminated = at(cs, &["state", "terminated"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match str_at(t, &["reason"]) {
                    "" if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    "" => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                    r => r.to_string(),
                };
            } else if bool_at(cs, &["ready"]) && at(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }

    let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null());
    if deleting && str_at(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some((secs, _)) if restarts != 0 => {
            format!("{restarts} ({} ago)", time::human_duration(now - secs))
        }
        _ => restarts.to_string(),
    };
    let mut row = vec![name(pod), format!("{ready}/{total}"), reason, restarts, age(pod, now)];
    if wide {
        let ip = list_at(pod, &["status", "podIPs"]).first().map(|p| str_at(p, &["ip"])).unwrap_or("");
        let gates = list_at(pod, &["spec", "readinessGates"]);
        let gates = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let ready = gates
                .iter()
                .filter(|g| {
                    let kind = str_at(g, &["conditionType"]);
                    list_at(pod, &["status", "conditions"])
                        .iter()
                        .find(|c| str_at(c, &["type"]) == kind)
                        .is_some_and(|c| str_at(c, &["status"]) == "True")
                })
                .count();
            format!("{ready}/{}", gates.len())
        };
        row.extend([
            or_none(ip),
            or_none(str_at(pod, &["spec", "nodeName"])),
            or_none(str_at(pod, &["status", "nominatedNodeName"])),
            gates,
        ]);
    }
    row
}

// ---- Node (CLI-11) ----------------------------------------------------------------------------

/// Roles from `node-role.kubernetes.io/<role>` labels (and the legacy `kubernetes.io/role`).
pub(super) fn node_roles(node: &Value) -> Vec<String> {
    let mut roles: Vec<String> = string_pairs(at(node, &["metadata", "labels"]))
        .into_iter()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role.to_string()),
            Some(_) => None,
            None if k == "kubernetes.io/role" && !v.is_empty() => Some(v.to_string()),
            None => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

fn node_address(node: &Value, kind: &str) -> String {
    list_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map(|a| str_at(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".into())
}

fn node_row(node: &Value, wide: bool, now: i64) -> Vec<String> {
    let mut status = match list_at(node, &["status", "conditions"]).iter().find(|c| str_at(c, &["type"]) == "Ready") {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push_str(",SchedulingDisabled");
    }
    let roles = node_roles(node);
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
    let info = |field: &str| str_at(node, &["status", "nodeInfo", field]).to_string();
    let mut row = vec![name(node), status, roles, age(node, now), info("kubeletVersion")];
    if wide {
        let unknown = |s: String| {
            if s.is_empty() {
                "<unknown>".to_string()
            } else {
                s
            }
        };
        row.extend([
            node_address(node, "InternalIP"),
            node_address(node, "ExternalIP"),
            unknown(info("osImage")),
            unknown(info("kernelVersion")),
            unknown(info("containerRuntimeVersion")),
        ]);
    }
    row
}

// ---- Deployment, ReplicaSet (CLI-14) ------------------------------------------------------------

fn container_cells(obj: &Value) -> [String; 2] {
    let containers = list_at(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    [names.join(","), images.join(",")]
}

/// `spec.replicas`, which defaults to 1.
fn desired_replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1)
}

fn deployment_row(d: &Value, wide: bool, now: i64) -> Vec<String> {
    let status = |f: &str| int_at(d, &["status", f]);
    let mut row = vec![
        name(d),
        format!("{}/{}", status("readyReplicas"), desired_replicas(d)),
        status("updatedReplicas").to_string(),
        status("availableReplicas").to_string(),
        age(d, now),
    ];
    if wide {
        let [names, images] = container_cells(d);
        row.extend([names, images, selector_string(at(d, &["spec", "selector"]))]);
    }
    row
}

fn replicaset_row(rs: &Value, wide: bool, now: i64) -> Vec<String> {
    let mut row = vec![
        name(rs),
        desired_replicas(rs).to_string(),
        int_at(rs, &["status", "replicas"]).to_string(),
        int_at(rs, &["status", "readyReplicas"]).to_string(),
        age(rs, now),
    ];
    if wide {
        let [names, images] = container_cells(rs);
        row.extend([names, images, or_none(&selector_string(at(rs, &["spec", "selector"])))]);
    }
    row
}

fn namespace_row(ns: &Value, _wide: bool, now: i64) -> Vec<String> {
    vec![name(ns), str_at(ns, &["status", "phase"]).to_string(), age(ns, now)]
}

// ---- Service (CLI-8), Endpoints (CLI-9, EP-7), EndpointSlice (CLI-10) ---------------------------

/// Load-balancer ingress IPs/hostnames, sorted and de-duplicated; cut to 16 chars unless wide.
fn load_balancer_addresses(status: &Value, wide: bool) -> String {
    let mut list: Vec<&str> = list_at(status, &["loadBalancer", "ingress"])
        .iter()
        .map(|i| match str_at(i, &["ip"]) {
            "" => str_at(i, &["hostname"]),
            ip => ip,
        })
        .filter(|s| !s.is_empty())
        .collect();
    list.sort();
    list.dedup();
    let joined = list.join(",");
    if !wide && joined.len() > 16 {
        format!("{}...", &joined[..13])
    } else {
        joined
    }
}

fn service_row(svc: &Value, wide: bool, now: i64) -> Vec<String> {
    let svc_type = str_at(svc, &["spec", "type"]);
    let cluster_ip = list_at(svc, &["spec", "clusterIPs"]).first().and_then(Value::as_str).unwrap_or("<none>");
    let external_ips: Vec<&str> = list_at(svc, &["spec", "externalIPs"]).iter().filter_map(Value::as_str).collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" => or_none(&external_ips.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(&svc["status"], wide);
            let mut all: Vec<&str> = if lb.is_empty() { Vec::new() } else { lb.split(',').collect() };
            all.extend(&external_ips);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = list_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let (port, node_port, proto) = (int_at(p, &["port"]), int_at(p, &["nodePort"]), str_at(p, &["protocol"]));
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect();
    let mut row = vec![name(svc), svc_type.to_string(), cluster_ip.to_string(), external, or_none(&ports.join(",")), age(svc, now)];
    if wide {
        row.push(format_labels(at(svc, &["spec", "selector"])));
    }
    row
}

/// kubectl's `formatEndpoints` (EP-7): ready `ip:port` pairs, subsets → ports → addresses.
pub(super) fn format_endpoints(ep: &Value) -> String {
    let subsets = list_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses: Vec<&str> = list_at(ss, &["addresses"]).iter().map(|a| str_at(a, &["ip"])).collect();
        let ports = list_at(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            list.extend(addresses.iter().map(|ip| ip.to_string()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            let port = int_at(port, &["port"]).to_string();
            list.extend(addresses.iter().map(|ip| join_host_port(ip, &port)));
        }
    }
    list_with_more(&list, count, "")
}

fn endpoints_row(ep: &Value, _wide: bool, now: i64) -> Vec<String> {
    vec![name(ep), format_endpoints(ep), age(ep, now)]
}

fn endpointslice_row(slice: &Value, _wide: bool, now: i64) -> Vec<String> {
    let ports: Vec<String> = list_at(slice, &["ports"])
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => p.get("name").and_then(Value::as_str).unwrap_or("*").to_string(),
        })
        .collect();
    let addresses: Vec<String> = list_at(slice, &["endpoints"])
        .iter()
        .flat_map(|e| list_at(e, &["addresses"]).iter().filter_map(Value::as_str).map(str::to_string))
        .collect();
    vec![
        name(slice),
        str_at(slice, &["addressType"]).to_string(),
        list_with_more(&ports, ports.len(), "<unset>"),
        list_with_more(&addresses, addresses.len(), "<unset>"),
        age(slice, now),
    ]
}

// ---- Event ----------------------------------------------------------------------------------------

/// kubectl's `printEvent`. Events are listed in API order (by name, which groups them by
/// object): `kubectl get events` does not sort unless asked to with `--sort-by`.
fn event_row(e: &Value, wide: bool, now: i64) -> Vec<String> {
    let set = |path: &[&str]| !str_at(e, path).is_empty();
    let since = |path: &[&str]| time::since(at(e, path).and_then(Value::as_str), now);
    // Legacy events carry first/lastTimestamp; events.k8s.io ones carry eventTime and, once
    // repeated, a series.
    let first_seen = if set(&["firstTimestamp"]) { since(&["firstTimestamp"]) } else { since(&["eventTime"]) };
    let mut last_seen = if set(&["lastTimestamp"]) { since(&["lastTimestamp"]) } else { first_seen.clone() };
    let mut count = int_at(e, &["count"]);
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        last_seen = since(&["series", "lastObservedTime"]);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let kind = str_at(e, &["involvedObject", "kind"]).to_lowercase();
    let object = match str_at(e, &["involvedObject", "name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let message = str_at(e, &["message"]).trim().to_string();
    let mut row = vec![last_seen, str_at(e, &["type"]).to_string(), str_at(e, &["reason"]).to_string(), object];
    if wide {
        // `formatEventSource`: the legacy source, else the reporting fields; `component, host`.
        let first_non_empty = |a: &[&str], b: &[&str]| match str_at(e, a) {
            "" => str_at(e, b),
            s => s,
        };
        let component = first_non_empty(&["source", "component"], &["reportingComponent"]);
        let source = match first_non_empty(&["source", "host"], &["reportingInstance"]) {
            "" => component.to_string(),
            host => format!("{component}, {host}"),
        };
        row.extend([str_at(e, &["involvedObject", "fieldPath"]).to_string(), source, message, first_seen, count.to_string(), name(e)]);
    } else {
        row.push(message);
    }
    row
}

// ---- Secret, ConfigMap, ServiceAccount (CLI-12, CLI-13) ------------------------------------------

fn key_count(obj: &Value, field: &str) -> usize {
    obj.get(field).and_then(Value::as_object).map_or(0, |m| m.len())
}

fn secret_row(s: &Value, _wide: bool, now: i64) -> Vec<String> {
    vec![name(s), str_at(s, &["type"]).to_string(), key_count(s, "data").to_string(), age(s, now)]
}

fn configmap_row(cm: &Value, _wide: bool, now: i64) -> Vec<String> {
    vec![name(cm), (key_count(cm, "data") + key_count(cm, "binaryData")).to_string(), age(cm, now)]
}

fn serviceaccount_row(sa: &Value, _wide: bool, now: i64) -> Vec<String> {
    vec![name(sa), list_at(sa, &["secrets"]).len().to_string(), age(sa, now)]
}

// ---- Ingress, IngressClass (CLI-15) --------------------------------------------------------------

fn ingress_row(ing: &Value, wide: bool, now: i64) -> Vec<String> {
    let class = or_none(str_at(ing, &["spec", "ingressClassName"]));
    let rules = list_at(ing, &["spec", "rules"]);
    let hosts: Vec<String> = rules.iter().take(3).map(|r| str_at(r, &["host"])).filter(|h| !h.is_empty()).map(String::from).collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if rules.len() > 3 {
        format!("{} + {} more...", hosts.join(","), rules.len() - 3)
    } else {
        hosts.join(",")
    };
    let ports = if list_at(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    vec![name(ing), class, hosts, load_balancer_addresses(&ing["status"], wide), ports.to_string(), age(ing, now)]
}

fn ingressclass_row(ic: &Value, _wide: bool, now: i64) -> Vec<String> {
    let params = match at(ic, &["spec", "parameters"]) {
        Some(p) if p.is_object() => {
            let kind = match str_at(p, &["apiGroup"]) {
                "" => str_at(p, &["kind"]).to_string(),
                group => format!("{}.{group}", str_at(p, &["kind"])),
            };
            format!("{kind}/{}", str_at(p, &["name"]))
        }
        _ => "<none>".to_string(),
    };
    vec![name(ic), str_at(ic, &["spec", "controller"]).to_string(), params, age(ic, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_714_557_613; // 2024-05-01T10:00:13Z

    fn pod(name: &str, ip: &str, node: &str) -> Value {
        json!({
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z",
                         "labels": {"run": "my-nginx", "pod-template-hash": "5b56ccd65f"}},
            "spec": {"nodeName": node, "containers": [{"name": "nginx", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0,
                                              "state": {"running": {"startedAt": "2024-05-01T10:00:02Z"}}}]}
        })
    }

    #[test]
    fn pods_wide_cli7() {
        let pods = [pod("my-nginx-5b56ccd65f-4vbrb", "10.244.3.4", "node-1"), pod("my-nginx-5b56ccd65f-x9zkq", "10.244.2.5", "node-2")];
        let out = table("Pod", &pods, &TableOptions { wide: true, ..Default::default() }, NOW);
        assert_eq!(
            out,
            "NAME                        READY   STATUS    RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES\n\
             my-nginx-5b56ccd65f-4vbrb   1/1     Running   0          13s   10.244.3.4   node-1   <none>           <none>\n\
             my-nginx-5b56ccd65f-x9zkq   1/1     Running   0          13s   10.244.2.5   node-2   <none>           <none>\n"
        );
    }

    fn status_of(status: Value) -> (String, String, String) {
        let mut p = pod("p", "10.244.1.2", "node-1");
        p["status"] = status;
        let row = pod_row(&p, false, NOW);
        (row[1].clone(), row[2].clone(), row[3].clone())
    }

    #[test]
    fn pod_status_derivation() {
        let waiting = |reason: &str| {
            json!({"phase": "Pending", "containerStatuses": [{"name": "nginx", "ready": false, "restartCount": 0,
                   "state": {"waiting": {"reason": reason}}}]})
        };
        assert_eq!(status_of(waiting("ContainerCreating")).1, "ContainerCreating");
        assert_eq!(status_of(waiting("ErrImagePull")).1, "ErrImagePull");
        assert_eq!(status_of(json!({"phase": "Pending"})), ("0/1".into(), "Pending".into(), "0".into()));
        let crash = json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T09:59:32Z"}}}]});
        assert_eq!(status_of(crash), ("0/1".into(), "CrashLoopBackOff".into(), "3 (41s ago)".into()));
        let done = |code: i64, reason: &str| {
            json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{"name": "nginx",
                   "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason}}}]})
        };
        assert_eq!(status_of(done(0, "Completed")).1, "Completed");
        assert_eq!(status_of(done(1, "Error")).1, "Error");
        assert_eq!(status_of(done(137, "")).1, "ExitCode:137");

        let mut p = pod("p", "10.244.1.2", "node-1");
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T10:00:10Z");
        assert_eq!(pod_row(&p, false, NOW)[2], "Terminating");

        let mut p = pod("p", "", "");
        p["spec"]["initContainers"] = json!([{"name": "init"}]);
        p["status"] = json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "ready": false,
            "restartCount": 0, "state": {"running": {}}}]});
        assert_eq!(pod_row(&p, true, NOW)[2..], ["Init:0/1", "0", "13s", "<none>", "<none>", "<none>", "<none>"]);
    }

    #[test]
    fn services_cli8() {
        let svc = |name: &str, ty: &str, ip: &str, ports: Value| {
            json!({"metadata": {"name": name, "creationTimestamp": "2024-05-01T09:59:52Z"},
                   "spec": {"type": ty, "clusterIP": ip, "clusterIPs": [ip], "ports": ports, "selector": {"run": "my-nginx"}},
                   "status": {"loadBalancer": {}}})
        };
        let mut kubernetes =
            svc("kubernetes", "ClusterIP", "10.96.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]));
        kubernetes["metadata"]["creationTimestamp"] = json!("2024-04-26T10:00:00Z");
        let nginx = svc(
            "my-nginx",
            "NodePort",
            "10.96.162.149",
            json!([
            {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 80, "nodePort": 31704},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443, "nodePort": 32453}]),
        );
        let out = table("Service", &[kubernetes, nginx], &TableOptions::default(), NOW);
        assert_eq!(
            out,
            "NAME         TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)                        AGE\n\
             kubernetes   ClusterIP   10.96.0.1       <none>        443/TCP                        5d\n\
             my-nginx     NodePort    10.96.162.149   <none>        8080:31704/TCP,443:32453/TCP   21s\n"
        );
        let mut lb = svc("lb", "LoadBalancer", "10.96.0.20", json!([{"port": 80, "protocol": "TCP", "nodePort": 30080}]));
        assert_eq!(service_row(&lb, false, NOW)[3], "<pending>");
        lb["status"]["loadBalancer"]["ingress"] = json!([{"ip": "203.0.113.10"}, {"ip": "203.0.113.2"}]);
        assert_eq!(service_row(&lb, false, NOW)[3], "203.0.113.10,...");
        assert_eq!(service_row(&lb, true, NOW)[3], "203.0.113.10,203.0.113.2");
        let headless = svc("h", "ClusterIP", "None", json!([]));
        assert_eq!(service_row(&headless, true, NOW)[2..5], ["None", "<none>", "<none>"]);
    }

    #[test]
    fn endpoints_and_slices_cli9_cli10() {
        let ep = json!({"metadata": {"name": "my-nginx", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "subsets": [{"addresses": [{"ip": "10.244.2.5"}, {"ip": "10.244.3.4"}], "ports": [{"port": 80, "protocol": "TCP"}]}]});
        let none = json!({"metadata": {"name": "empty", "creationTimestamp": "2024-05-01T09:58:13Z"}});
        let not_ready = json!({"metadata": {"name": "nr", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.244.2.5"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            table("Endpoints", &[ep, none, not_ready], &TableOptions::default(), NOW),
            "NAME       ENDPOINTS                     AGE\nmy-nginx   10.244.2.5:80,10.244.3.4:80   2m\nempty      <none>                        2m\nnr                                       2m\n"
        );
        let many = json!({"subsets": [{"addresses": [{"ip": "a"}, {"ip": "b"}, {"ip": "c"}, {"ip": "d"}], "ports": [{"port": 1}]}]});
        assert_eq!(format_endpoints(&many), "a:1,b:1,c:1 + 1 more...");

        let slice = json!({"metadata": {"name": "my-nginx-7vzhx", "creationTimestamp": "2024-05-01T09:59:52Z"},
            "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.2.5"]}, {"addresses": ["10.244.3.4"], "conditions": {"ready": false}}]});
        assert_eq!(
            table("EndpointSlice", &[slice], &TableOptions::default(), NOW),
            "NAME             ADDRESSTYPE   PORTS   ENDPOINTS               AGE\nmy-nginx-7vzhx   IPv4          80      10.244.2.5,10.244.3.4   21s\n"
        );
        let placeholder = json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []});
        assert_eq!(endpointslice_row(&placeholder, false, NOW)[2..4], ["<unset>", "<unset>"]);
    }

    #[test]
    fn nodes_wide_cli11() {
        let node = json!({"metadata": {"name": "node-1", "creationTimestamp": "2024-04-26T10:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.8.0", "containerRuntimeVersion": "containerd://1.7.18"}}});
        assert_eq!(
            table("Node", std::slice::from_ref(&node), &TableOptions { wide: true, ..Default::default() }, NOW),
            "NAME     STATUS   ROLES           AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE                         KERNEL-VERSION   CONTAINER-RUNTIME\n\
             node-1   Ready    control-plane   5d    v1.31.0   172.18.0.2    <none>        Debian GNU/Linux 12 (bookworm)   6.8.0            containerd://1.7.18\n"
        );
        let mut cordoned = node;
        cordoned["spec"] = json!({"unschedulable": true});
        cordoned["status"]["conditions"][0]["status"] = json!("Unknown");
        assert_eq!(node_row(&cordoned, false, NOW)[1], "NotReady,SchedulingDisabled");
    }

    #[test]
    fn deployments_and_replicasets_cli14() {
        let d = json!({"metadata": {"name": "my-nginx", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"run": "my-nginx"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert_eq!(
            table("Deployment", std::slice::from_ref(&d), &TableOptions { wide: true, kind_prefix: true, ..Default::default() }, NOW),
            "NAME                       READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES   SELECTOR\n\
             deployment.apps/my-nginx   2/2     2            2           13s   nginx        nginx    run=my-nginx\n"
        );
        assert_eq!(replicaset_row(&d, false, NOW), ["my-nginx", "2", "2", "2", "13s"]);
    }

    #[test]
    fn decorations_namespace_labels_headers() {
        let p = pod("web", "10.244.1.2", "node-1");
        let opts = TableOptions {
            all_namespaces: true,
            show_labels: true,
            label_columns: vec!["run".into(), "app.kubernetes.io/name".into()],
            ..Default::default()
        };
        assert_eq!(
            table("Pod", std::slice::from_ref(&p), &opts, NOW),
            "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   RUN        NAME   LABELS\n\
             default     web    1/1     Running   0          13s   my-nginx          pod-template-hash=5b56ccd65f,run=my-nginx\n"
        );
        let opts = TableOptions { no_headers: true, all_namespaces: true, ..Default::default() };
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2024-05-01T10:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(table("Namespace", &[ns], &opts, NOW), "default   Active   13s\n");
        assert_eq!(table("Pod", &[], &TableOptions::default(), NOW), "");
    }

    fn event(name: &str, ty: &str, reason: &str, pod: &str, message: &str) -> Value {
        json!({"kind": "Event", "metadata": {"name": name, "namespace": "default"},
               "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": "default"},
               "type": ty, "reason": reason, "message": message, "count": 1,
               "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:00:00Z"})
    }

    /// The tutorial's pod stuck on a missing Secret: scheduled 13s ago, FailedMount twice since.
    fn mount_events() -> [Value; 2] {
        let scheduled = event(
            "my-nginx-5b56ccd65f-abcde.17cb6a4f00000000",
            "Normal",
            "Scheduled",
            "my-nginx-5b56ccd65f-abcde",
            "Successfully assigned default/my-nginx-5b56ccd65f-abcde to node-1",
        );
        let mut failed = event(
            "my-nginx-5b56ccd65f-abcde.17cb6a5000000000",
            "Warning",
            "FailedMount",
            "my-nginx-5b56ccd65f-abcde",
            "MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found\n",
        );
        failed["source"] = json!({"component": "kubelet", "host": "node-1"});
        failed["firstTimestamp"] = json!("2024-05-01T10:00:08Z");
        failed["lastTimestamp"] = json!("2024-05-01T10:00:10Z");
        failed["count"] = json!(2);
        let mut scheduled = scheduled;
        scheduled["reportingComponent"] = json!("default-scheduler");
        [scheduled, failed]
    }

    #[test]
    fn events_in_api_order() {
        assert_eq!(
            table("Event", &mount_events(), &TableOptions::default(), NOW),
            "LAST SEEN   TYPE      REASON        OBJECT                          MESSAGE\n\
             13s         Normal    Scheduled     pod/my-nginx-5b56ccd65f-abcde   Successfully assigned default/my-nginx-5b56ccd65f-abcde to node-1\n\
             3s          Warning   FailedMount   pod/my-nginx-5b56ccd65f-abcde   MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found\n"
        );
        let opts = TableOptions { all_namespaces: true, no_headers: true, ..Default::default() };
        assert_eq!(
            table("Event", &mount_events()[1..], &opts, NOW),
            "default   3s    Warning   FailedMount   pod/my-nginx-5b56ccd65f-abcde   MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found\n"
        );
    }

    #[test]
    fn events_wide_interleave_message_and_name_last() {
        let opts = TableOptions { wide: true, kind_prefix: true, ..Default::default() };
        assert_eq!(
            table("Event", &mount_events(), &opts, NOW),
            "LAST SEEN   TYPE      REASON        OBJECT                          SUBOBJECT   SOURCE              MESSAGE                                                                                FIRST SEEN   COUNT   NAME\n\
             13s         Normal    Scheduled     pod/my-nginx-5b56ccd65f-abcde               default-scheduler   Successfully assigned default/my-nginx-5b56ccd65f-abcde to node-1                      13s          1       event/my-nginx-5b56ccd65f-abcde.17cb6a4f00000000\n\
             3s          Warning   FailedMount   pod/my-nginx-5b56ccd65f-abcde               kubelet, node-1     MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found   5s           2       event/my-nginx-5b56ccd65f-abcde.17cb6a5000000000\n"
        );
        // Without -o wide there is no NAME column, so several kinds in one `get` leave the
        // Event rows as they are (kubectl decorates only the name column).
        let opts = TableOptions { kind_prefix: true, ..Default::default() };
        assert_eq!(event_row(&mount_events()[0], false, NOW)[0], "13s");
        assert!(table("Event", &mount_events(), &opts, NOW).starts_with("LAST SEEN   TYPE"));
        assert!(!table("Event", &mount_events(), &opts, NOW).contains("event/"));
    }

    #[test]
    fn events_k8s_io_series_and_unnamed_objects() {
        // An events.k8s.io-style event: eventTime and a series instead of timestamps and count.
        let e = json!({"kind": "Event", "metadata": {"name": "x.1", "namespace": "default"},
            "involvedObject": {"kind": "Node"}, "type": "Normal", "reason": "RegisteredNode",
            "message": "Node node-1 event: Registered Node node-1 in Controller",
            "eventTime": "2024-05-01T10:00:10.500000Z", "reportingComponent": "node-controller",
            "series": {"count": 3, "lastObservedTime": "2024-05-01T10:00:12.000000Z"}});
        assert_eq!(
            event_row(&e, true, NOW),
            [
                "1s",
                "Normal",
                "RegisteredNode",
                "node",
                "",
                "node-controller",
                "Node node-1 event: Registered Node node-1 in Controller",
                "2s",
                "3",
                "x.1"
            ]
        );
        let bare = json!({"kind": "Event", "metadata": {"name": "y"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        assert_eq!(event_row(&bare, true, NOW), ["<unknown>", "", "", "pod/p", "", "", "", "<unknown>", "1", "y"]);
    }

    #[test]
    fn secrets_and_configmaps() {
        let s = json!({"metadata": {"name": "nginxsecret", "creationTimestamp": "2024-05-01T09:59:13Z"},
                       "type": "kubernetes.io/tls", "data": {"tls.crt": "x", "tls.key": "y"}});
        assert_eq!(
            table("Secret", &[s], &TableOptions::default(), NOW),
            "NAME          TYPE                DATA   AGE\nnginxsecret   kubernetes.io/tls   2      60s\n"
        );
        let cm = json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "x"}});
        assert_eq!(configmap_row(&cm, false, NOW), ["kube-root-ca.crt", "1", "<unknown>"]);
    }
}
