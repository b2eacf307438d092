//! `kubectl describe` for Pod, Node, Deployment, Service, Secret, ConfigMap and RBAC's kinds
//! (CLI-16/17), following kubectl's
//! describers line by line. Lines are written with `\t` after each label and laid out by the
//! tabwriter with padding 2, so alignment falls out exactly as in kubectl: every run of lines
//! with tabs forms one aligned block, and a line without a tab (a section title) ends it.

use std::fmt::Write;

use serde_json::Value;

use super::tables::node_roles;
use super::tabwriter::tabwrite_text;
use super::time::{rfc1123z, since};
use super::{at, bool_at, format_labels, int_at, int_or_string, list_at, selector_string, str_at, string_pairs};
use emu_api::quantity::{canonical, Quantity};

/// `kubectl describe <kind> <name>`. `related` holds the other objects a describer needs, taken by
/// kind: Events (all kinds), Pods (Node), ReplicaSets (Deployment), EndpointSlices (Service), a
/// node Lease. `now` is unix seconds.
pub fn describe(kind: &str, obj: &Value, related: &[Value], now: i64) -> String {
    let mut w = String::new();
    let events = events_for(kind, obj, related);
    match kind {
        "Pod" => pod(&mut w, obj, now),
        "Node" => node(&mut w, obj, related, now),
        "Deployment" => deployment(&mut w, obj, related),
        "DaemonSet" => daemonset::daemon_set(&mut w, obj, related, now),
        "StatefulSet" => statefulset::stateful_set(&mut w, obj, related, now),
        "Job" => job::job(&mut w, obj, related, now),
        "CronJob" => job::cron_job(&mut w, obj, related, now),
        "Service" => service(&mut w, obj, related),
        "Ingress" => ingress::ingress(&mut w, obj, related),
        "IngressClass" => ingress::ingress_class(&mut w, obj),
        // Served from CRDs in Kubernetes: kubectl describes them generically.
        "GatewayClass" | "Gateway" | "HTTPRoute" => custom::custom_resource(&mut w, obj),
        // kubectl shows no events for a Secret.
        "Secret" => return tabwrite_text(&secret(obj), 0, 2),
        "ConfigMap" => config_map(&mut w, obj),
        "ServiceAccount" => service_account(&mut w, obj, related),
        // kubectl's RBAC describers show no events.
        "Role" | "ClusterRole" => return tabwrite_text(&role(obj), 0, 2),
        "RoleBinding" | "ClusterRoleBinding" => return tabwrite_text(&role_binding(obj), 0, 2),
        _ => generic(&mut w, obj),
    }
    describe_events(&mut w, &events, now);
    tabwrite_text(&w, 0, 2)
}

/// Appends one line at an indent level (two spaces per level), like kubectl's PrefixWriter.
macro_rules! line {
    ($w:expr, $level:expr, $($arg:tt)*) => {{
        $w.push_str(&"  ".repeat($level));
        // Writing into a String cannot fail.
        let _ = write!($w, $($arg)*);
    }};
}

/// `title: value` at `level`, left out when the value is empty (kubectl's `if x != ""`).
fn line_if_set(w: &mut String, level: usize, title: &str, value: &str) {
    if !value.is_empty() {
        line!(w, level, "{title}:\t{value}\n");
    }
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    str_at(obj, &["metadata", field])
}

fn generic(w: &mut String, obj: &Value) {
    line!(w, 0, "Name:\t{}\n", meta(obj, "name"));
    if !meta(obj, "namespace").is_empty() {
        line!(w, 0, "Namespace:\t{}\n", meta(obj, "namespace"));
    }
    labels_multiline(w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(obj, &["metadata", "annotations"]));
}

/// `describeSecret`: the type and the size of every value, never the values.
fn secret(obj: &Value) -> String {
    let mut w = String::new();
    generic(&mut w, obj);
    line!(w, 0, "\nType:\t{}\n", obj["type"].as_str().unwrap_or(""));
    line!(w, 0, "\nData\n====\n");
    let mut sizes: Vec<(&String, usize)> = at(obj, &["data"])
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, base64_decoded_len(v.as_str().unwrap_or(""))))
        .collect();
    sizes.sort();
    for (key, size) in sizes {
        line!(w, 0, "{key}:\t{size} bytes\n");
    }
    w
}

/// `describeConfigMap`: every value in full (they are not secret), binary ones by size.
fn config_map(w: &mut String, obj: &Value) {
    generic(w, obj);
    let sorted = |section: &str| -> Vec<(&String, &Value)> {
        let mut entries: Vec<(&String, &Value)> = at(obj, &[section]).and_then(Value::as_object).into_iter().flatten().collect();
        entries.sort_by_key(|(k, _)| *k);
        entries
    };
    line!(w, 0, "\nData\n====\n");
    for (key, value) in sorted("data") {
        line!(w, 0, "{key}:\n----\n{}\n\n", value.as_str().unwrap_or(""));
    }
    line!(w, 0, "\nBinaryData\n====\n");
    for (key, value) in sorted("binaryData") {
        line!(w, 0, "{key}: {} bytes\n", base64_decoded_len(value.as_str().unwrap_or("")));
    }
    line!(w, 0, "\n");
}

/// `describeServiceAccount`: its image pull secrets, the secrets it may mount (`(not found)`
/// when the namespace has no such Secret) and its legacy token Secrets (of type
/// `kubernetes.io/service-account-token`, annotated with its name and uid), each list one name
/// a line under a header padded to the longest, `<none>` when empty.
fn service_account(w: &mut String, obj: &Value, related: &[Value]) {
    generic(w, obj);
    let secrets: Vec<&Value> = related.iter().filter(|s| str_at(s, &["kind"]) == "Secret").collect();
    let annotation = |s: &Value, key: &str| str_at(s, &["metadata", "annotations", key]).to_string();
    let tokens: Vec<String> = secrets
        .iter()
        .filter(|s| {
            str_at(s, &["type"]) == "kubernetes.io/service-account-token"
                && annotation(s, "kubernetes.io/service-account.name") == meta(obj, "name")
                && annotation(s, "kubernetes.io/service-account.uid") == meta(obj, "uid")
        })
        .map(|s| meta(s, "name").to_string())
        .collect();
    let names = |field: &str| -> Vec<String> { list_at(obj, &[field]).iter().map(|r| str_at(r, &["name"]).to_string()).collect() };
    let mountable: Vec<String> = names("secrets")
        .into_iter()
        .map(|n| if secrets.iter().any(|s| meta(s, "name") == n) { n } else { format!("{n} (not found)") })
        .collect();
    for (header, names) in
        [("Image pull secrets:", names("imagePullSecrets")), ("Mountable secrets: ", mountable), ("Tokens:            ", tokens)]
    {
        if names.is_empty() {
            line!(w, 0, "{header}\t<none>\n");
        }
        for (i, name) in names.iter().enumerate() {
            let header = if i == 0 { header } else { "                   " };
            line!(w, 0, "{header}\t{name}\n");
        }
    }
}

/// `RoleDescriber` (and ClusterRole's): the rules broken down and compacted (the verbs of one
/// resource together), sorted as kubectl sorts them (by the generated `PolicyRule.String()`),
/// one a line.
fn role(obj: &Value) -> String {
    use emu_api::typed::PolicyRule;
    let mut w = String::new();
    line!(w, 0, "Name:\t{}\n", meta(obj, "name"));
    labels_multiline(&mut w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(&mut w, "Annotations", at(obj, &["metadata", "annotations"]));
    let rules: Vec<PolicyRule> = obj.get("rules").and_then(|r| emu_api::typed::decode(r).ok()).unwrap_or_default();
    let mut rules = emu_logic::rbac::compact(rules.iter().flat_map(emu_logic::rbac::breakdown).collect());
    let list = |l: &Option<Vec<String>>| format!("[{}]", l.as_deref().unwrap_or_default().join(" "));
    let key = |r: &PolicyRule| {
        format!(
            "&PolicyRule{{Verbs:[{}],APIGroups:{},Resources:{},ResourceNames:{},NonResourceURLs:{},}}",
            r.verbs.join(" "),
            list(&r.api_groups),
            list(&r.resources),
            list(&r.resource_names),
            list(&r.non_resource_urls)
        )
    };
    rules.sort_by_key(key);
    line!(w, 0, "PolicyRule:\n");
    line!(w, 1, "Resources\tNon-Resource URLs\tResource Names\tVerbs\n");
    line!(w, 1, "---------\t-----------------\t--------------\t-----\n");
    for r in &rules {
        let resource = combine_resource_group(r.resources.as_deref().unwrap_or_default(), r.api_groups.as_deref().unwrap_or_default());
        let verbs = format!("[{}]", r.verbs.join(" "));
        line!(w, 1, "{resource}\t{}\t{}\t{verbs}\n", list(&r.non_resource_urls), list(&r.resource_names));
    }
    w
}

/// `CombineResourceGroup`: the first resource with the first group, `deployments.apps/scale`.
fn combine_resource_group(resources: &[String], groups: &[String]) -> String {
    let Some(first) = resources.first() else { return String::new() };
    let (resource, subresource) = match first.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (first.as_str(), None),
    };
    let mut out = resource.to_string();
    if let Some(group) = groups.first().filter(|g| !g.is_empty()) {
        out = format!("{out}.{group}");
    }
    if let Some(subresource) = subresource {
        out = format!("{out}/{subresource}");
    }
    out
}

/// `RoleBindingDescriber` (and ClusterRoleBinding's): the role, then the subjects.
fn role_binding(obj: &Value) -> String {
    let mut w = String::new();
    line!(w, 0, "Name:\t{}\n", meta(obj, "name"));
    labels_multiline(&mut w, "Labels", at(obj, &["metadata", "labels"]));
    annotations_multiline(&mut w, "Annotations", at(obj, &["metadata", "annotations"]));
    line!(w, 0, "Role:\n");
    line!(w, 1, "Kind:\t{}\n", str_at(obj, &["roleRef", "kind"]));
    line!(w, 1, "Name:\t{}\n", str_at(obj, &["roleRef", "name"]));
    line!(w, 0, "Subjects:\n");
    line!(w, 1, "Kind\tName\tNamespace\n");
    line!(w, 1, "----\t----\t---------\n");
    for s in list_at(obj, &["subjects"]) {
        line!(w, 1, "{}\t{}\t{}\n", str_at(s, &["kind"]), str_at(s, &["name"]), str_at(s, &["namespace"]));
    }
    w
}

/// How many bytes a (padded, standard) base64 text decodes to.
fn base64_decoded_len(text: &str) -> usize {
    let text = text.trim_end();
    let padding = text.bytes().rev().take_while(|b| *b == b'=').count();
    (text.len() / 4 * 3).saturating_sub(padding)
}

// ---- shared blocks ----------------------------------------------------------------------------

/// `printLabelsMultiline`: first pair after the title, the rest on continuation lines.
fn labels_multiline(w: &mut String, title: &str, map: Option<&Value>) {
    line!(w, 0, "{title}:\t");
    let pairs = string_pairs(map);
    if pairs.is_empty() {
        w.push_str("<none>\n");
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            w.push('\t');
        }
        let _ = writeln!(w, "{k}={v}");
    }
}

/// `printAnnotationsMultiline`: hides last-applied-configuration; long or multi-line values go
/// on their own indented lines, each cut at 140 characters.
fn annotations_multiline(w: &mut String, title: &str, map: Option<&Value>) {
    const MAX: usize = 140;
    line!(w, 0, "{title}:\t");
    let pairs: Vec<_> = string_pairs(map).into_iter().filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration").collect();
    if pairs.is_empty() {
        w.push_str("<none>\n");
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            w.push('\t');
        }
        let value = v.strip_suffix('\n').unwrap_or(v);
        if value.len() + k.len() + 2 > MAX || value.contains('\n') {
            let _ = writeln!(w, "{k}:");
            for part in value.split('\n') {
                let _ = writeln!(w, "\t  {}", shorten(part, MAX - 2));
            }
        } else {
            let _ = writeln!(w, "{k}: {value}");
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `printTolerationsMultilineWithIndent`, tolerations sorted by key.
fn tolerations_multiline(w: &mut String, title: &str, tolerations: &[Value]) {
    line!(w, 0, "{title}:\t");
    if tolerations.is_empty() {
        w.push_str("<none>\n");
    }
    let mut sorted: Vec<&Value> = tolerations.iter().collect();
    sorted.sort_by_key(|t| str_at(t, &["key"]));
    for (i, t) in sorted.into_iter().enumerate() {
        if i > 0 {
            w.push('\t');
        }
        let (key, value, effect) = (str_at(t, &["key"]), str_at(t, &["value"]), str_at(t, &["effect"]));
        w.push_str(key);
        if !value.is_empty() {
            let _ = write!(w, "={value}");
        }
        if !effect.is_empty() {
            let _ = write!(w, ":{effect}");
        }
        if str_at(t, &["operator"]) == "Exists" && value.is_empty() {
            w.push_str(if key.is_empty() && effect.is_empty() { "op=Exists" } else { " op=Exists" });
        }
        if let Some(secs) = at(t, &["tolerationSeconds"]).and_then(Value::as_i64) {
            let _ = write!(w, " for {secs}s");
        }
        w.push('\n');
    }
}

/// The Events the describer shows: those whose involvedObject is `obj`.
fn events_for<'a>(kind: &str, obj: &Value, related: &'a [Value]) -> Vec<&'a Value> {
    let (name, ns, uid) = (meta(obj, "name"), meta(obj, "namespace"), meta(obj, "uid"));
    // An empty field on either side does not constrain the match.
    let agrees = |e: &Value, field: &str, want: &str| {
        let got = str_at(e, &["involvedObject", field]);
        want.is_empty() || got.is_empty() || got == want
    };
    // kubelet reports a Node's events with the node's name as uid (the controllers use the real
    // uid); kubectl's node describer searches for both.
    let uid_agrees = |e: &Value| agrees(e, "uid", uid) || (kind == "Node" && str_at(e, &["involvedObject", "uid"]) == name);
    related
        .iter()
        .filter(|e| str_at(e, &["kind"]) == "Event" && str_at(e, &["involvedObject", "name"]) == name)
        .filter(|e| agrees(e, "namespace", ns) && uid_agrees(e) && agrees(e, "kind", kind))
        .collect()
}

/// `DescribeEvents`: `Events:  <none>`, or a Type/Reason/Age/From/Message table sorted by
/// last timestamp.
fn describe_events(w: &mut String, events: &[&Value], now: i64) {
    if events.is_empty() {
        line!(w, 0, "Events:\t<none>\n");
        return;
    }
    let mut events = events.to_vec();
    let time_of = |e: &Value, field: &str| at(e, &[field]).and_then(Value::as_str).and_then(emu_api::time::parse_rfc3339_nanos);
    events.sort_by_key(|e| time_of(e, "lastTimestamp"));
    line!(w, 0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    line!(w, 1, "----\t------\t----\t----\t-------\n");
    for e in events {
        let ts = |path: &[&str]| since(at(e, path).and_then(Value::as_str), now);
        let first = if time_of(e, "eventTime").is_some() { ts(&["eventTime"]) } else { ts(&["firstTimestamp"]) };
        let interval = match e.get("series").filter(|s| s.is_object()) {
            Some(series) => {
                format!("{} (x{} over {first})", ts(&["series", "lastObservedTime"]), int_at(series, &["count"]))
            }
            None if int_at(e, &["count"]) > 1 => {
                format!("{} (x{} over {first})", ts(&["lastTimestamp"]), int_at(e, &["count"]))
            }
            None => first,
        };
        let source = match str_at(e, &["source", "component"]) {
            "" => str_at(e, &["reportingComponent"]),
            s => s,
        };
        line!(w, 1, "{}\t{}\t{interval}\t{source}\t{}\n", str_at(e, &["type"]), str_at(e, &["reason"]), str_at(e, &["message"]).trim());
    }
}

fn controller_of(obj: &Value) -> Option<&Value> {
    list_at(obj, &["metadata", "ownerReferences"]).iter().find(|r| bool_at(r, &["controller"]))
}

fn print_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

// ---- Pod --------------------------------------------------------------------------------------

fn pod(w: &mut String, pod: &Value, now: i64) {
    let spec = &pod["spec"];
    let status = &pod["status"];
    line!(w, 0, "Name:\t{}\n", meta(pod, "name"));
    line!(w, 0, "Namespace:\t{}\n", meta(pod, "namespace"));
    if let Some(p) = spec.get("priority").and_then(Value::as_i64) {
        line!(w, 0, "Priority:\t{p}\n");
    }
    for (field, title) in [
        ("priorityClassName", "Priority Class Name"),
        ("runtimeClassName", "Runtime Class Name"),
        ("serviceAccountName", "Service Account"),
    ] {
        line_if_set(w, 0, title, str_at(spec, &[field]));
    }
    match str_at(spec, &["nodeName"]) {
        "" => line!(w, 0, "Node:\t<none>\n"),
        node => line!(w, 0, "Node:\t{node}/{}\n", str_at(status, &["hostIP"])),
    }
    if let Some(start) = status.get("startTime").and_then(Value::as_str) {
        line!(w, 0, "Start Time:\t{}\n", rfc1123z(Some(start)));
    }
    labels_multiline(w, "Labels", at(pod, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(pod, &["metadata", "annotations"]));
    let phase = str_at(status, &["phase"]);
    let deletion = at(pod, &["metadata", "deletionTimestamp"]).and_then(Value::as_str);
    match deletion {
        Some(ts) if phase != "Failed" && phase != "Succeeded" => {
            line!(w, 0, "Status:\tTerminating (lasts {})\n", since(Some(ts), now));
            line!(w, 0, "Termination Grace Period:\t{}s\n", int_at(pod, &["metadata", "deletionGracePeriodSeconds"]));
        }
        _ => line!(w, 0, "Status:\t{phase}\n"),
    }
    for (field, title) in [("reason", "Reason"), ("message", "Message")] {
        line_if_set(w, 0, title, str_at(status, &[field]));
    }
    seccomp(w, 0, at(spec, &["securityContext", "seccompProfile"]));
    line!(w, 0, "IP:\t{}\n", str_at(status, &["podIP"]));
    let ips = list_at(status, &["podIPs"]);
    if ips.is_empty() {
        line!(w, 0, "IPs:\t<none>\n");
    } else {
        line!(w, 0, "IPs:\n");
        for ip in ips {
            line!(w, 1, "IP:\t{}\n", str_at(ip, &["ip"]));
        }
    }
    if let Some(owner) = controller_of(pod) {
        line!(w, 0, "Controlled By:\t{}/{}\n", str_at(owner, &["kind"]), str_at(owner, &["name"]));
    }
    line_if_set(w, 0, "NominatedNodeName", str_at(status, &["nominatedNodeName"]));
    if let Some(resources) = spec.get("resources").filter(|r| r.is_object()) {
        line!(w, 0, "Resources:\n");
        describe_resources(w, resources, 1);
    }
    if !list_at(spec, &["initContainers"]).is_empty() {
        containers(w, "Init Containers", list_at(spec, &["initContainers"]), list_at(status, &["initContainerStatuses"]), Some(pod), "");
    }
    containers(w, "Containers", list_at(spec, &["containers"]), list_at(status, &["containerStatuses"]), Some(pod), "");
    if !list_at(spec, &["ephemeralContainers"]).is_empty() {
        let (specs, statuses) = (list_at(spec, &["ephemeralContainers"]), list_at(status, &["ephemeralContainerStatuses"]));
        containers(w, "Ephemeral Containers", specs, statuses, Some(pod), "");
    }
    let conditions = list_at(status, &["conditions"]);
    let gates = list_at(spec, &["readinessGates"]);
    if !gates.is_empty() {
        line!(w, 0, "Readiness Gates:\n  Type\tStatus\n");
        for g in gates {
            let kind = str_at(g, &["conditionType"]);
            let value = conditions.iter().find(|c| str_at(c, &["type"]) == kind).map_or("<none>", |c| str_at(c, &["status"]));
            line!(w, 1, "{kind} \t{value} \n");
        }
    }
    if !conditions.is_empty() {
        line!(w, 0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            line!(w, 1, "{} \t{} \n", str_at(c, &["type"]), str_at(c, &["status"]));
        }
    }
    volumes(w, list_at(spec, &["volumes"]), "");
    line!(w, 0, "QoS Class:\t{}\n", qos_class(pod));
    labels_multiline(w, "Node-Selectors", spec.get("nodeSelector"));
    tolerations_multiline(w, "Tolerations", list_at(spec, &["tolerations"]));
    topology_spread(w, list_at(spec, &["topologySpreadConstraints"]), "");
}

fn seccomp(w: &mut String, level: usize, profile: Option<&Value>) {
    if let Some(profile) = profile.filter(|p| p.is_object()) {
        line!(w, level, "SeccompProfile:\t{}\n", str_at(profile, &["type"]));
        if str_at(profile, &["type"]) == "Localhost" {
            line!(w, level + 1, "LocalhostProfile:\t{}\n", str_at(profile, &["localhostProfile"]));
        }
    }
}

fn topology_spread(w: &mut String, constraints: &[Value], space: &str) {
    if constraints.is_empty() {
        return;
    }
    let mut sorted: Vec<&Value> = constraints.iter().collect();
    sorted.sort_by_key(|c| str_at(c, &["topologyKey"]));
    line!(w, 0, "{space}Topology Spread Constraints:\t");
    for (i, c) in sorted.into_iter().enumerate() {
        if i > 0 {
            let _ = write!(w, "{space}\t");
        }
        let _ = write!(
            w,
            "{}:{} when max skew {} is exceeded",
            str_at(c, &["topologyKey"]),
            str_at(c, &["whenUnsatisfiable"]),
            int_at(c, &["maxSkew"])
        );
        if let Some(sel) = c.get("labelSelector").filter(|s| s.is_object()) {
            let sel = match selector_string(Some(sel)) {
                s if s.is_empty() => "<none>".to_string(),
                s => s,
            };
            let _ = write!(w, " for selector {sel}");
        }
        w.push('\n');
    }
}

/// `describeContainers`: with statuses for a pod, without for a pod template.
fn containers(w: &mut String, label: &str, specs: &[Value], statuses: &[Value], pod: Option<&Value>, space: &str) {
    line!(w, 0, "{space}{label}:{}\n", if specs.is_empty() { " <none>" } else { "" });
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in specs {
        let name = str_at(c, &["name"]);
        let status = statuses.iter().find(|s| str_at(s, &["name"]) == name);
        line!(w, 1, "{name_indent}{name}:\n");
        if let Some(s) = status {
            line!(w, 2, "Container ID:\t{}\n", str_at(s, &["containerID"]));
        }
        line!(w, 2, "Image:\t{}\n", str_at(c, &["image"]));
        if let Some(s) = status {
            line!(w, 2, "Image ID:\t{}\n", str_at(s, &["imageID"]));
        }
        let ports = list_at(c, &["ports"]);
        let proto = |p: &Value| match str_at(p, &["protocol"]) {
            "" => "TCP".to_string(),
            s => s.to_string(),
        };
        let container_ports: Vec<String> = ports.iter().map(|p| format!("{}/{}", int_at(p, &["containerPort"]), proto(p))).collect();
        let host_ports: Vec<String> = ports.iter().map(|p| format!("{}/{}", int_at(p, &["hostPort"]), proto(p))).collect();
        let (port_title, host_title) = if ports.len() > 1 { ("Ports", "Host Ports") } else { ("Port", "Host Port") };
        let or_none = |v: Vec<String>| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.join(", ")
            }
        };
        line!(w, 2, "{port_title}:\t{}\n", or_none(container_ports));
        line!(w, 2, "{host_title}:\t{}\n", or_none(host_ports));
        seccomp(w, 2, at(c, &["securityContext", "seccompProfile"]));
        for (field, title) in [("command", "Command"), ("args", "Args")] {
            let items = list_at(c, &[field]);
            if !items.is_empty() {
                line!(w, 2, "{title}:\n");
                for item in items.iter().filter_map(Value::as_str) {
                    for part in item.split('\n') {
                        line!(w, 3, "{part}\n");
                    }
                }
            }
        }
        if let Some(s) = status {
            container_state(w, "State", &s["state"]);
            if at(s, &["lastState", "terminated"]).is_some() {
                container_state(w, "Last State", &s["lastState"]);
            }
            line!(w, 2, "Ready:\t{}\n", print_bool(bool_at(s, &["ready"])));
            line!(w, 2, "Restart Count:\t{}\n", int_at(s, &["restartCount"]));
        }
        if let Some(resources) = c.get("resources") {
            describe_resources(w, resources, 2);
        }
        for (field, title) in [("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"), ("startupProbe", "Startup")] {
            if let Some(probe) = c.get(field).filter(|p| p.is_object()) {
                line!(w, 2, "{title}:\t{}\n", describe_probe(probe));
            }
        }
        env_from(w, list_at(c, &["envFrom"]));
        env(w, c, pod);
        mounts(w, c);
    }
}

fn container_state(w: &mut String, title: &str, state: &Value) {
    let time = |v: &Value, f: &str| rfc1123z(at(v, &[f]).and_then(Value::as_str));
    if let Some(running) = state.get("running").filter(|v| v.is_object()) {
        line!(w, 2, "{title}:\tRunning\n");
        line!(w, 3, "Started:\t{}\n", time(running, "startedAt"));
    } else if let Some(waiting) = state.get("waiting").filter(|v| v.is_object()) {
        line!(w, 2, "{title}:\tWaiting\n");
        line_if_set(w, 3, "Reason", str_at(waiting, &["reason"]));
    } else if let Some(t) = state.get("terminated").filter(|v| v.is_object()) {
        line!(w, 2, "{title}:\tTerminated\n");
        for (field, label) in [("reason", "Reason"), ("message", "Message")] {
            line_if_set(w, 3, label, str_at(t, &[field]));
        }
        line!(w, 3, "Exit Code:\t{}\n", int_at(t, &["exitCode"]));
        if int_at(t, &["signal"]) > 0 {
            line!(w, 3, "Signal:\t{}\n", int_at(t, &["signal"]));
        }
        line!(w, 3, "Started:\t{}\n", time(t, "startedAt"));
        line!(w, 3, "Finished:\t{}\n", time(t, "finishedAt"));
    } else {
        line!(w, 2, "{title}:\tWaiting\n");
    }
}

fn describe_resources(w: &mut String, resources: &Value, level: usize) {
    for (field, title) in [("limits", "Limits"), ("requests", "Requests")] {
        let pairs = string_pairs(resources.get(field));
        if !pairs.is_empty() {
            line!(w, level, "{title}:\n");
        }
        for (name, q) in pairs {
            line!(w, level + 1, "{name}:\t{}\n", canonical(q));
        }
    }
}

/// `DescribeProbe`: `http-get http://:80/ delay=0s timeout=1s period=10s #success=1 #failure=3`.
fn describe_probe(probe: &Value) -> String {
    // Unset fields show their API defaults (what the server would have filled in).
    let num = |f: &str, default: i64| probe.get(f).and_then(Value::as_i64).unwrap_or(default);
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        num("initialDelaySeconds", 0),
        num("timeoutSeconds", 1),
        num("periodSeconds", 10),
        num("successThreshold", 1),
        num("failureThreshold", 3)
    );
    let join_host_port = |host: &str, port: &str| {
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    if let Some(exec) = probe.get("exec").filter(|v| v.is_object()) {
        let cmd: Vec<&str> = list_at(exec, &["command"]).iter().filter_map(Value::as_str).collect();
        return format!("exec [{}] {attrs}", cmd.join(" "));
    }
    if let Some(http) = probe.get("httpGet").filter(|v| v.is_object()) {
        let scheme = match str_at(http, &["scheme"]) {
            "" => "http".to_string(),
            s => s.to_lowercase(),
        };
        let host = str_at(http, &["host"]);
        let port = http.get("port").map(|p| int_or_string(Some(p))).unwrap_or_default();
        let host = if port.is_empty() { host.to_string() } else { join_host_port(host, &port) };
        let path = str_at(http, &["path"]);
        let slash = if !path.is_empty() && !path.starts_with('/') { "/" } else { "" };
        return format!("http-get {scheme}://{host}{slash}{path} {attrs}");
    }
    if let Some(tcp) = probe.get("tcpSocket").filter(|v| v.is_object()) {
        return format!("tcp-socket {}:{} {attrs}", str_at(tcp, &["host"]), int_or_string(tcp.get("port")));
    }
    if let Some(grpc) = probe.get("grpc").filter(|v| v.is_object()) {
        return format!("grpc <pod>:{} {} {attrs}", int_at(grpc, &["port"]), str_at(grpc, &["service"]));
    }
    format!("unknown {attrs}")
}

fn env_from(w: &mut String, sources: &[Value]) {
    if sources.is_empty() {
        return;
    }
    line!(w, 2, "Environment Variables from:\n");
    for s in sources {
        let (from, r) = match (s.get("configMapRef"), s.get("secretRef")) {
            (Some(r), _) if r.is_object() => ("ConfigMap", r),
            (_, Some(r)) if r.is_object() => ("Secret", r),
            _ => ("", &Value::Null),
        };
        let optional = bool_at(r, &["optional"]);
        match str_at(s, &["prefix"]) {
            "" => line!(w, 3, "{}\t{from}\tOptional: {optional}\n", str_at(r, &["name"])),
            prefix => line!(w, 3, "{}\t{from} with prefix '{prefix}'\tOptional: {optional}\n", str_at(r, &["name"])),
        }
    }
}

fn env(w: &mut String, container: &Value, pod: Option<&Value>) {
    let vars = list_at(container, &["env"]);
    line!(w, 2, "Environment:{}\n", if vars.is_empty() { "\t<none>" } else { "" });
    for e in vars {
        let name = str_at(e, &["name"]);
        let Some(from) = e.get("valueFrom").filter(|v| v.is_object()) else {
            for (i, part) in str_at(e, &["value"]).split('\n').enumerate() {
                if i == 0 {
                    line!(w, 3, "{name}:\t{part}\n");
                } else {
                    line!(w, 3, "\t{part}\n");
                }
            }
            continue;
        };
        if let Some(field) = from.get("fieldRef").filter(|v| v.is_object()) {
            let path = str_at(field, &["fieldPath"]);
            let value = pod.map(|p| field_path_value(p, path)).unwrap_or_default();
            let version = match str_at(field, &["apiVersion"]) {
                "" => "v1",
                v => v,
            };
            line!(w, 3, "{name}:\t{value} ({version}:{path})\n");
        } else if let Some(res) = from.get("resourceFieldRef").filter(|v| v.is_object()) {
            let resource = str_at(res, &["resource"]);
            let mut value = resource_field_value(container, res);
            if value == "0" && (resource == "limits.cpu" || resource == "limits.memory") {
                value = "node allocatable".into();
            }
            line!(w, 3, "{name}:\t{value} ({resource})\n");
        } else if let Some(r) = from.get("secretKeyRef").filter(|v| v.is_object()) {
            line!(
                w,
                3,
                "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                str_at(r, &["key"]),
                str_at(r, &["name"]),
                bool_at(r, &["optional"])
            );
        } else if let Some(r) = from.get("configMapKeyRef").filter(|v| v.is_object()) {
            line!(
                w,
                3,
                "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                str_at(r, &["key"]),
                str_at(r, &["name"]),
                bool_at(r, &["optional"])
            );
        }
    }
}

/// The downward-API value describe shows for a `fieldRef`. Like kubectl's resolver, only
/// metadata fields resolve; `status.podIP`, `spec.nodeName` and friends print empty.
fn field_path_value(pod: &Value, path: &str) -> String {
    let subscript = |prefix: &str| path.strip_prefix(prefix).and_then(|p| p.strip_suffix("']"));
    if let Some(key) = subscript("metadata.labels['") {
        return str_at(pod, &["metadata", "labels", key]).to_string();
    }
    if let Some(key) = subscript("metadata.annotations['") {
        return str_at(pod, &["metadata", "annotations", key]).to_string();
    }
    let format_map = |field: &str| {
        let pairs = string_pairs(at(pod, &["metadata", field]));
        pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join("\n")
    };
    match path {
        "metadata.name" | "metadata.namespace" | "metadata.uid" => meta(pod, &path["metadata.".len()..]).to_string(),
        "metadata.labels" => format_map("labels"),
        "metadata.annotations" => format_map("annotations"),
        _ => String::new(),
    }
}

/// `ExtractContainerResourceValue`: the container's own request/limit divided by the divisor,
/// rounded up.
fn resource_field_value(container: &Value, field: &Value) -> String {
    let resource = str_at(field, &["resource"]);
    let Some((kind, name)) = resource.split_once('.') else {
        return String::new();
    };
    let amount = Quantity::of(at(container, &["resources", kind, name]).and_then(Value::as_str));
    let divisor = Quantity::of(field.get("divisor").and_then(Value::as_str));
    let divisor = if divisor.is_zero() { Quantity::of(Some("1")) } else { divisor };
    let (n, d) = if name == "cpu" { (amount.milli(), divisor.milli()) } else { (amount.value(), divisor.value()) };
    if d == 0 {
        return String::new();
    }
    ((n + d - 1).div_euclid(d)).to_string()
}

fn mounts(w: &mut String, container: &Value) {
    let mut mounts: Vec<&Value> = list_at(container, &["volumeMounts"]).iter().collect();
    line!(w, 2, "Mounts:{}\n", if mounts.is_empty() { "\t<none>" } else { "" });
    mounts.sort_by_key(|m| str_at(m, &["mountPath"]));
    for m in mounts {
        let mut flags = vec![if bool_at(m, &["readOnly"]) { "ro".to_string() } else { "rw".to_string() }];
        if !str_at(m, &["subPath"]).is_empty() {
            flags.push(format!("path={:?}", str_at(m, &["subPath"])));
        }
        line!(w, 3, "{} from {} ({})\n", str_at(m, &["mountPath"]), str_at(m, &["name"]), flags.join(","));
    }
    let mut devices: Vec<&Value> = list_at(container, &["volumeDevices"]).iter().collect();
    if !devices.is_empty() {
        line!(w, 2, "Devices:\n");
        devices.sort_by_key(|d| str_at(d, &["devicePath"]));
        for d in devices {
            line!(w, 3, "{} from {}\n", str_at(d, &["devicePath"]), str_at(d, &["name"]));
        }
    }
}

fn volumes(w: &mut String, volumes: &[Value], space: &str) {
    if volumes.is_empty() {
        line!(w, 0, "{space}Volumes:\t<none>\n");
        return;
    }
    line!(w, 0, "{space}Volumes:\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in volumes {
        line!(w, 1, "{name_indent}{}:\n", str_at(v, &["name"]));
        let source = |f: &str| v.get(f).filter(|s| s.is_object());
        if let Some(s) = source("hostPath") {
            let kind = match str_at(s, &["type"]) {
                "" => "<none>",
                t => t,
            };
            line!(w, 2, "Type:\tHostPath (bare host directory volume)\n");
            line!(w, 2, "Path:\t{}\n", str_at(s, &["path"]));
            line!(w, 2, "HostPathType:\t{kind}\n");
        } else if let Some(s) = source("emptyDir") {
            let limit = match s.get("sizeLimit").and_then(Value::as_str).and_then(Quantity::parse) {
                Some(q) if q.milli() > 0 => q.to_string(),
                _ => "<unset>".to_string(),
            };
            line!(w, 2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n");
            line!(w, 2, "Medium:\t{}\n", str_at(s, &["medium"]));
            line!(w, 2, "SizeLimit:\t{limit}\n");
        } else if let Some(s) = source("secret") {
            line!(w, 2, "Type:\tSecret (a volume populated by a Secret)\n");
            line!(w, 2, "SecretName:\t{}\n", str_at(s, &["secretName"]));
            line!(w, 2, "Optional:\t{}\n", bool_at(s, &["optional"]));
        } else if let Some(s) = source("configMap") {
            line!(w, 2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n");
            line!(w, 2, "Name:\t{}\n", str_at(s, &["name"]));
            line!(w, 2, "Optional:\t{}\n", bool_at(s, &["optional"]));
        } else if let Some(s) = source("projected") {
            line!(w, 2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n");
            for src in list_at(s, &["sources"]) {
                if let Some(secret) = src.get("secret").filter(|x| x.is_object()) {
                    line!(w, 2, "SecretName:\t{}\n", str_at(secret, &["name"]));
                    line!(w, 2, "Optional:\t{}\n", bool_at(secret, &["optional"]));
                } else if src.get("downwardAPI").is_some_and(Value::is_object) {
                    line!(w, 2, "DownwardAPI:\ttrue\n");
                } else if let Some(cm) = src.get("configMap").filter(|x| x.is_object()) {
                    line!(w, 2, "ConfigMapName:\t{}\n", str_at(cm, &["name"]));
                    line!(w, 2, "Optional:\t{}\n", bool_at(cm, &["optional"]));
                } else if let Some(token) = src.get("serviceAccountToken").filter(|x| x.is_object()) {
                    let secs = at(token, &["expirationSeconds"]).and_then(Value::as_i64).unwrap_or(3600);
                    line!(w, 2, "TokenExpirationSeconds:\t{secs}\n");
                }
            }
        } else if let Some(s) = source("persistentVolumeClaim") {
            line!(w, 2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n");
            line!(w, 2, "ClaimName:\t{}\n", str_at(s, &["claimName"]));
            line!(w, 2, "ReadOnly:\t{}\n", bool_at(s, &["readOnly"]));
        } else if let Some(s) = source("downwardAPI") {
            line!(w, 2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n");
            line!(w, 2, "Items:\n");
            for item in list_at(s, &["items"]) {
                if let Some(f) = item.get("fieldRef").filter(|x| x.is_object()) {
                    line!(w, 3, "{} -> {}\n", str_at(f, &["fieldPath"]), str_at(item, &["path"]));
                }
                if let Some(r) = item.get("resourceFieldRef").filter(|x| x.is_object()) {
                    line!(w, 3, "{} -> {}\n", str_at(r, &["resource"]), str_at(item, &["path"]));
                }
            }
        } else if let Some(s) = source("nfs") {
            line!(w, 2, "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n");
            line!(w, 2, "Server:\t{}\n", str_at(s, &["server"]));
            line!(w, 2, "Path:\t{}\n", str_at(s, &["path"]));
            line!(w, 2, "ReadOnly:\t{}\n", bool_at(s, &["readOnly"]));
        } else {
            line!(w, 1, "<unknown>\n");
        }
    }
}

/// Sums of `cpu` and `memory` requests and limits over a pod's containers.
fn pod_resources(pod: &Value) -> [std::collections::BTreeMap<String, Quantity>; 2] {
    let sum = |field: &str| {
        let mut total: std::collections::BTreeMap<String, Quantity> = Default::default();
        let spec = &pod["spec"];
        let sidecars = list_at(spec, &["initContainers"]).iter().filter(|c| str_at(c, &["restartPolicy"]) == "Always");
        for c in list_at(spec, &["containers"]).iter().chain(sidecars) {
            for (name, q) in string_pairs(at(c, &["resources", field])) {
                let entry = total.entry(name.to_string()).or_default();
                *entry = *entry + Quantity::of(Some(q));
            }
        }
        // An init container runs alone, so it only raises the total if it asks for more.
        for c in list_at(spec, &["initContainers"]).iter().filter(|c| str_at(c, &["restartPolicy"]) != "Always") {
            for (name, q) in string_pairs(at(c, &["resources", field])) {
                let q = Quantity::of(Some(q));
                let entry = total.entry(name.to_string()).or_default();
                if q.milli() > entry.milli() {
                    *entry = q;
                }
            }
        }
        for (name, q) in string_pairs(at(spec, &["overhead"])) {
            let entry = total.entry(name.to_string()).or_default();
            *entry = *entry + Quantity::of(Some(q));
        }
        total
    };
    [sum("requests"), sum("limits")]
}

/// `qos.GetPodQOS`, unless the status already says.
fn qos_class(pod: &Value) -> String {
    if let Some(q) = at(pod, &["status", "qosClass"]).and_then(Value::as_str).filter(|q| !q.is_empty()) {
        return q.to_string();
    }
    let spec = &pod["spec"];
    let all: Vec<&Value> = list_at(spec, &["containers"]).iter().chain(list_at(spec, &["initContainers"])).collect();
    let compute = |c: &Value, field: &str| -> Vec<(String, Quantity)> {
        string_pairs(at(c, &["resources", field]))
            .into_iter()
            .filter(|(name, _)| *name == "cpu" || *name == "memory")
            .map(|(name, q)| (name.to_string(), Quantity::of(Some(q))))
            .filter(|(_, q)| !q.is_zero())
            .collect()
    };
    let mut requests: std::collections::BTreeMap<String, Quantity> = Default::default();
    let mut limits: std::collections::BTreeMap<String, Quantity> = Default::default();
    let mut guaranteed = true;
    for c in &all {
        for (name, q) in compute(c, "requests") {
            let e = requests.entry(name).or_default();
            *e = *e + q;
        }
        let container_limits = compute(c, "limits");
        if container_limits.len() < 2 {
            guaranteed = false;
        }
        for (name, q) in container_limits {
            let e = limits.entry(name).or_default();
            *e = *e + q;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort".into();
    }
    let same = requests.len() == limits.len() && requests.iter().all(|(k, v)| limits.get(k).is_some_and(|l| l.milli() == v.milli()));
    if guaranteed && same {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

// ---- Node -------------------------------------------------------------------------------------

fn node(w: &mut String, node: &Value, related: &[Value], now: i64) {
    let name = meta(node, "name");
    let status = &node["status"];
    line!(w, 0, "Name:\t{name}\n");
    let roles = node_roles(node);
    line!(w, 0, "Roles:\t{}\n", if roles.is_empty() { "<none>".to_string() } else { roles.join(",") });
    labels_multiline(w, "Labels", at(node, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(node, &["metadata", "annotations"]));
    line!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(at(node, &["metadata", "creationTimestamp"]).and_then(Value::as_str)));
    let mut taints: Vec<&Value> = list_at(node, &["spec", "taints"]).iter().collect();
    taints.sort_by_key(|t| format!("{},{}", str_at(t, &["effect"]), str_at(t, &["key"])));
    line!(w, 0, "Taints:\t");
    if taints.is_empty() {
        w.push_str("<none>\n");
    }
    for (i, t) in taints.iter().enumerate() {
        if i > 0 {
            w.push('\t');
        }
        let _ = match str_at(t, &["value"]) {
            "" => writeln!(w, "{}:{}", str_at(t, &["key"]), str_at(t, &["effect"])),
            v => writeln!(w, "{}={v}:{}", str_at(t, &["key"]), str_at(t, &["effect"])),
        };
    }
    line!(w, 0, "Unschedulable:\t{}\n", bool_at(node, &["spec", "unschedulable"]));
    if let Some(lease) = related.iter().find(|o| str_at(o, &["kind"]) == "Lease" && meta(o, "name") == name) {
        let spec_time = |f: &str| match at(lease, &["spec", f]).and_then(Value::as_str) {
            Some(t) => rfc1123z(Some(t)),
            None => "<unset>".to_string(),
        };
        line!(w, 0, "Lease:\n");
        line!(w, 1, "HolderIdentity:\t{}\n", at(lease, &["spec", "holderIdentity"]).and_then(Value::as_str).unwrap_or("<unset>"));
        line!(w, 1, "AcquireTime:\t{}\n", spec_time("acquireTime"));
        line!(w, 1, "RenewTime:\t{}\n", spec_time("renewTime"));
    }
    let conditions = list_at(status, &["conditions"]);
    if !conditions.is_empty() {
        line!(w, 0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n");
        line!(w, 1, "----\t------\t-----------------\t------------------\t------\t-------\n");
        for c in conditions {
            let time = |f: &str| rfc1123z(at(c, &[f]).and_then(Value::as_str));
            line!(
                w,
                1,
                "{} \t{} \t{} \t{} \t{} \t{}\n",
                str_at(c, &["type"]),
                str_at(c, &["status"]),
                time("lastHeartbeatTime"),
                time("lastTransitionTime"),
                str_at(c, &["reason"]),
                str_at(c, &["message"])
            );
        }
    }
    line!(w, 0, "Addresses:\n");
    for a in list_at(status, &["addresses"]) {
        line!(w, 1, "{}:\t{}\n", str_at(a, &["type"]), str_at(a, &["address"]));
    }
    for (field, title) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        let pairs = string_pairs(status.get(field));
        if !pairs.is_empty() {
            line!(w, 0, "{title}:\n");
            for (resource, q) in pairs {
                line!(w, 1, "{resource}:\t{}\n", canonical(q));
            }
        }
    }
    line!(w, 0, "System Info:\n");
    for (field, title) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        line!(w, 1, "{title}:\t{}\n", str_at(status, &["nodeInfo", field]));
    }
    line_if_set(w, 0, "PodCIDR", str_at(node, &["spec", "podCIDR"]));
    let cidrs: Vec<&str> = list_at(node, &["spec", "podCIDRs"]).iter().filter_map(Value::as_str).collect();
    if !cidrs.is_empty() {
        line!(w, 0, "PodCIDRs:\t{}\n", cidrs.join(","));
    }
    line_if_set(w, 0, "ProviderID", str_at(node, &["spec", "providerID"]));
    let pods: Vec<&Value> = related
        .iter()
        .filter(|p| str_at(p, &["kind"]) == "Pod" && str_at(p, &["spec", "nodeName"]) == name)
        .filter(|p| !matches!(str_at(p, &["status", "phase"]), "Succeeded" | "Failed"))
        .collect();
    node_resources(w, status, &pods, now);
}

/// The "Non-terminated Pods" and "Allocated resources" tables.
fn node_resources(w: &mut String, status: &Value, pods: &[&Value], now: i64) {
    let allocatable = match status.get("allocatable").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => &status["allocatable"],
        _ => &status["capacity"],
    };
    let alloc = |name: &str| Quantity::of(allocatable.get(name).and_then(Value::as_str));
    // Integer percent, truncated like Go's int64(float64).
    let percent = |part: i128, whole: i128| if whole == 0 { 0 } else { part * 100 / whole };
    let cpu_pct = |q: Quantity| percent(q.milli(), alloc("cpu").milli());
    let value_pct = |q: Quantity, name: &str| percent(q.value(), alloc(name).value());
    line!(w, 0, "Non-terminated Pods:\t({} in total)\n", pods.len());
    line!(w, 1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n");
    line!(w, 1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n");
    let mut total_req: std::collections::BTreeMap<String, Quantity> = Default::default();
    let mut total_lim: std::collections::BTreeMap<String, Quantity> = Default::default();
    for pod in pods {
        let [req, lim] = pod_resources(pod);
        let get = |m: &std::collections::BTreeMap<String, Quantity>, k: &str| m.get(k).copied().unwrap_or_default();
        let (cr, cl, mr, ml) = (get(&req, "cpu"), get(&lim, "cpu"), get(&req, "memory"), get(&lim, "memory"));
        line!(
            w,
            1,
            "{}\t{}\t\t{cr} ({}%)\t{cl} ({}%)\t{mr} ({}%)\t{ml} ({}%)\t{}\n",
            meta(pod, "namespace"),
            meta(pod, "name"),
            cpu_pct(cr),
            cpu_pct(cl),
            value_pct(mr, "memory"),
            value_pct(ml, "memory"),
            super::age(pod, now)
        );
        for (totals, amounts) in [(&mut total_req, req), (&mut total_lim, lim)] {
            for (k, q) in amounts {
                let e = totals.entry(k).or_default();
                *e = *e + q;
            }
        }
    }
    line!(w, 0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n");
    line!(w, 1, "Resource\tRequests\tLimits\n");
    line!(w, 1, "--------\t--------\t------\n");
    let get = |m: &std::collections::BTreeMap<String, Quantity>, k: &str| m.get(k).copied().unwrap_or_default();
    let (cr, cl) = (get(&total_req, "cpu"), get(&total_lim, "cpu"));
    line!(w, 1, "cpu\t{cr} ({}%)\t{cl} ({}%)\n", cpu_pct(cr), cpu_pct(cl));
    for name in ["memory", "ephemeral-storage"] {
        let (r, l) = (get(&total_req, name), get(&total_lim, name));
        line!(w, 1, "{name}\t{r} ({}%)\t{l} ({}%)\n", value_pct(r, name), value_pct(l, name));
    }
    let resources: Vec<&str> = string_pairs(Some(allocatable)).into_iter().map(|(k, _)| k).collect();
    for name in resources.iter().filter(|r| r.starts_with("hugepages-")) {
        let (r, l) = (get(&total_req, name), get(&total_lim, name));
        line!(w, 1, "{name}\t{r} ({}%)\t{l} ({}%)\n", value_pct(r, name), value_pct(l, name));
    }
    let standard = ["cpu", "memory", "ephemeral-storage", "pods"];
    for name in resources.iter().filter(|r| !r.starts_with("hugepages-") && !standard.contains(r)) {
        line!(w, 1, "{name}\t{}\t{}\n", get(&total_req, name), get(&total_lim, name));
    }
}

// ---- Deployment -------------------------------------------------------------------------------

fn deployment(w: &mut String, d: &Value, related: &[Value]) {
    let spec = &d["spec"];
    let status = &d["status"];
    line!(w, 0, "Name:\t{}\n", meta(d, "name"));
    line!(w, 0, "Namespace:\t{}\n", meta(d, "namespace"));
    line!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(at(d, &["metadata", "creationTimestamp"]).and_then(Value::as_str)));
    labels_multiline(w, "Labels", at(d, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(d, &["metadata", "annotations"]));
    line!(w, 0, "Selector:\t{}\n", selector_string(spec.get("selector")));
    let replicas = spec.get("replicas").and_then(Value::as_i64).unwrap_or(1);
    let count = |f: &str| int_at(status, &[f]);
    line!(
        w,
        0,
        "Replicas:\t{replicas} desired | {} updated | {} total | {} available | {} unavailable\n",
        count("updatedReplicas"),
        count("replicas"),
        count("availableReplicas"),
        count("unavailableReplicas")
    );
    line!(w, 0, "StrategyType:\t{}\n", str_at(spec, &["strategy", "type"]));
    line!(w, 0, "MinReadySeconds:\t{}\n", int_at(spec, &["minReadySeconds"]));
    if let Some(ru) = at(spec, &["strategy", "rollingUpdate"]).filter(|r| r.is_object()) {
        line!(
            w,
            0,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
            int_or_string(ru.get("maxUnavailable")),
            int_or_string(ru.get("maxSurge"))
        );
    }
    pod_template(w, &spec["template"]);
    let conditions = list_at(status, &["conditions"]);
    if !conditions.is_empty() {
        line!(w, 0, "Conditions:\n  Type\tStatus\tReason\n");
        line!(w, 1, "----\t------\t------\n");
        for c in conditions {
            line!(w, 1, "{} \t{}\t{}\n", str_at(c, &["type"]), str_at(c, &["status"]), str_at(c, &["reason"]));
        }
    }
    let (old, new) = replica_sets(d, related);
    let summary = |sets: &[&Value]| {
        if sets.is_empty() {
            return "<none>".to_string();
        }
        sets.iter()
            .map(|rs| {
                let desired = at(rs, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1);
                format!("{} ({}/{desired} replicas created)", meta(rs, "name"), int_at(rs, &["status", "replicas"]))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    line!(w, 0, "OldReplicaSets:\t{}\n", summary(&old));
    line!(w, 0, "NewReplicaSet:\t{}\n", summary(&new.into_iter().collect::<Vec<_>>()));
}

/// `rollout history --revision=N`'s body: the revision's pod template as `DescribePodTemplate`
/// writes it, its tabs left in (kubectl prints it without a tabwriter).
pub fn pod_template_text(template: &Value) -> String {
    let mut w = String::new();
    pod_template(&mut w, template);
    w
}

/// `DescribePodTemplate` (deployment describe's "Pod Template:" section).
fn pod_template(w: &mut String, template: &Value) {
    line!(w, 0, "Pod Template:\n");
    let spec = &template["spec"];
    labels_multiline(w, "  Labels", at(template, &["metadata", "labels"]));
    if at(template, &["metadata", "annotations"]).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
        annotations_multiline(w, "  Annotations", at(template, &["metadata", "annotations"]));
    }
    line_if_set(w, 1, "Service Account", str_at(spec, &["serviceAccountName"]));
    if !list_at(spec, &["initContainers"]).is_empty() {
        containers(w, "Init Containers", list_at(spec, &["initContainers"]), &[], None, "  ");
    }
    containers(w, "Containers", list_at(spec, &["containers"]), &[], None, "  ");
    volumes(w, list_at(spec, &["volumes"]), "  ");
    topology_spread(w, list_at(spec, &["topologySpreadConstraints"]), "  ");
    line_if_set(w, 1, "Priority Class Name", str_at(spec, &["priorityClassName"]));
    labels_multiline(w, "  Node-Selectors", spec.get("nodeSelector"));
    tolerations_multiline(w, "  Tolerations", list_at(spec, &["tolerations"]));
}

/// The deployment's ReplicaSets: old ones that still have replicas, and the one whose template
/// matches the deployment's (ignoring `pod-template-hash`), as `deploymentutil` finds them.
fn replica_sets<'a>(d: &Value, related: &'a [Value]) -> (Vec<&'a Value>, Option<&'a Value>) {
    let (name, ns, uid) = (meta(d, "name"), meta(d, "namespace"), meta(d, "uid"));
    let mut owned: Vec<&Value> = related
        .iter()
        .filter(|rs| str_at(rs, &["kind"]) == "ReplicaSet" && meta(rs, "namespace") == ns)
        .filter(|rs| {
            controller_of(rs).is_some_and(|o| {
                str_at(o, &["kind"]) == "Deployment"
                    && str_at(o, &["name"]) == name
                    && (uid.is_empty() || str_at(o, &["uid"]).is_empty() || str_at(o, &["uid"]) == uid)
            })
        })
        .collect();
    owned.sort_by_key(|rs| {
        let created = at(rs, &["metadata", "creationTimestamp"]).and_then(Value::as_str);
        (created.and_then(emu_api::time::parse_rfc3339_nanos), meta(rs, "name").to_string())
    });
    let without_hash = |template: &Value| {
        let mut t = template.clone();
        if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
            labels.remove("pod-template-hash");
            if labels.is_empty() {
                if let Some(m) = t.pointer_mut("/metadata").and_then(Value::as_object_mut) {
                    m.remove("labels");
                }
            }
        }
        t
    };
    let wanted = without_hash(&d["spec"]["template"]);
    let revision = |o: &Value| str_at(o, &["metadata", "annotations", "deployment.kubernetes.io/revision"]).to_string();
    let new = owned
        .iter()
        .copied()
        .find(|rs| without_hash(&rs["spec"]["template"]) == wanted)
        .or_else(|| owned.iter().copied().find(|rs| !revision(d).is_empty() && revision(rs) == revision(d)));
    let new_name = new.map(|rs| meta(rs, "name"));
    let old = owned
        .into_iter()
        .filter(|rs| Some(meta(rs, "name")) != new_name)
        .filter(|rs| at(rs, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1) != 0)
        .collect();
    (old, new)
}

// ---- Service (CLI-16, CLI-17) -----------------------------------------------------------------

fn service(w: &mut String, svc: &Value, related: &[Value]) {
    let spec = &svc["spec"];
    let (name, ns) = (meta(svc, "name"), meta(svc, "namespace"));
    line!(w, 0, "Name:\t{name}\n");
    line!(w, 0, "Namespace:\t{ns}\n");
    labels_multiline(w, "Labels", at(svc, &["metadata", "labels"]));
    annotations_multiline(w, "Annotations", at(svc, &["metadata", "annotations"]));
    line!(w, 0, "Selector:\t{}\n", format_labels(spec.get("selector")));
    line!(w, 0, "Type:\t{}\n", str_at(spec, &["type"]));
    if let Some(policy) = spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        line!(w, 0, "IP Family Policy:\t{policy}\n");
    }
    let strings = |field: &str| -> Vec<&str> { list_at(spec, &[field]).iter().filter_map(Value::as_str).collect() };
    let joined_or_none = |v: Vec<&str>| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.join(",")
        }
    };
    line!(w, 0, "IP Families:\t{}\n", joined_or_none(strings("ipFamilies")));
    line!(w, 0, "IP:\t{}\n", str_at(spec, &["clusterIP"]));
    line!(w, 0, "IPs:\t{}\n", joined_or_none(strings("clusterIPs")));
    if !strings("externalIPs").is_empty() {
        line!(w, 0, "External IPs:\t{}\n", strings("externalIPs").join(","));
    }
    line_if_set(w, 0, "Desired LoadBalancer IP", str_at(spec, &["loadBalancerIP"]));
    line_if_set(w, 0, "External Name", str_at(spec, &["externalName"]));
    let ingress = list_at(svc, &["status", "loadBalancer", "ingress"]);
    if !ingress.is_empty() {
        let entries: Vec<String> = ingress
            .iter()
            .map(|i| {
                let addr = match str_at(i, &["ip"]) {
                    "" => str_at(i, &["hostname"]),
                    ip => ip,
                };
                match str_at(i, &["ipMode"]) {
                    "VIP" => format!("{addr} (VIP)"),
                    "Proxy" => format!("{addr} (Proxy)"),
                    _ => addr.to_string(),
                }
            })
            .collect();
        line!(w, 0, "LoadBalancer Ingress:\t{}\n", entries.join(", "));
    }
    let slices: Vec<&Value> = related
        .iter()
        .filter(|s| str_at(s, &["kind"]) == "EndpointSlice" && meta(s, "namespace") == ns)
        .filter(|s| str_at(s, &["metadata", "labels", "kubernetes.io/service-name"]) == name)
        .collect();
    for p in list_at(spec, &["ports"]) {
        let port_name = match str_at(p, &["name"]) {
            "" => "<unset>",
            n => n,
        };
        let proto = str_at(p, &["protocol"]);
        line!(w, 0, "Port:\t{port_name}\t{}/{proto}\n", int_at(p, &["port"]));
        line!(w, 0, "TargetPort:\t{}/{proto}\n", int_or_string(p.get("targetPort")));
        if let Some(app) = p.get("appProtocol").and_then(Value::as_str) {
            line!(w, 0, "AppProtocol:\t{app}\n");
        }
        if int_at(p, &["nodePort"]) != 0 {
            line!(w, 0, "NodePort:\t{port_name}\t{}/{proto}\n", int_at(p, &["nodePort"]));
        }
        line!(w, 0, "Endpoints:\t{}\n", slice_endpoints(&slices, str_at(p, &["name"])));
    }
    line!(w, 0, "Session Affinity:\t{}\n", str_at(spec, &["sessionAffinity"]));
    line_if_set(w, 0, "External Traffic Policy", str_at(spec, &["externalTrafficPolicy"]));
    if let Some(policy) = spec.get("internalTrafficPolicy").and_then(Value::as_str) {
        line!(w, 0, "Internal Traffic Policy:\t{policy}\n");
    }
    if int_at(spec, &["healthCheckNodePort"]) != 0 {
        line!(w, 0, "HealthCheck NodePort:\t{}\n", int_at(spec, &["healthCheckNodePort"]));
    }
    if !strings("loadBalancerSourceRanges").is_empty() {
        line!(w, 0, "LoadBalancer Source Ranges:\t{}\n", strings("loadBalancerSourceRanges").join(","));
    }
    if let Some(td) = spec.get("trafficDistribution").and_then(Value::as_str) {
        line!(w, 0, "Traffic Distribution:\t{td}\n");
    }
}

/// The `Endpoints:` value of a service port: ready `ip:port` pairs from the EndpointSlices whose
/// port has the same name; `<none>` without any slice, empty when none is ready.
fn slice_endpoints(slices: &[&Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    for slice in slices {
        let ready: Vec<&str> = list_at(slice, &["endpoints"])
            .iter()
            .filter(|e| at(e, &["conditions", "ready"]).and_then(Value::as_bool).unwrap_or(true))
            .filter_map(|e| list_at(e, &["addresses"]).first().and_then(Value::as_str))
            .collect();
        let ports = list_at(slice, &["ports"]);
        if ports.is_empty() {
            list.extend(ready.iter().map(|ip| ip.to_string()));
            continue;
        }
        for port in ports.iter().filter(|p| str_at(p, &["name"]) == port_name) {
            let number = int_at(port, &["port"]);
            list.extend(ready.iter().map(|ip| if ip.contains(':') { format!("[{ip}]:{number}") } else { format!("{ip}:{number}") }));
        }
    }
    let shown = list.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if list.len() > 3 {
        format!("{shown} + {} more...", list.len() - 3)
    } else {
        shown
    }
}

/// `Pods Status:` of a DaemonSet's or StatefulSet's describe (`getPodStatusForController`): the
/// pods of `related` in its namespace that it controls, by phase.
fn controlled_pods_status(w: &mut String, obj: &Value, related: &[Value]) {
    let uid = meta(obj, "uid");
    let mut phases = [0; 4];
    for p in related.iter().filter(|p| {
        str_at(p, &["metadata", "namespace"]) == meta(obj, "namespace")
            && at(p, &["metadata", "ownerReferences"])
                .and_then(Value::as_array)
                .is_some_and(|o| o.iter().any(|r| r["uid"] == uid && r["controller"] == true))
    }) {
        match str_at(p, &["status", "phase"]) {
            "Running" => phases[0] += 1,
            "Pending" => phases[1] += 1,
            "Succeeded" => phases[2] += 1,
            "Failed" => phases[3] += 1,
            _ => {}
        }
    }
    line!(w, 0, "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed\n", phases[0], phases[1], phases[2], phases[3]);
}

mod custom;
mod daemonset;
mod ingress;
mod job;
mod statefulset;

#[cfg(test)]
mod tests;
