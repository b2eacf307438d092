//! RBAC with the real kubectl (issue 17): a user outside `system:masters` (alice, a client
//! certificate of the cluster CA) and a pod's service account (`system:serviceaccount:default:
//! default`, with the token emu gives the pod) get kube-apiserver's 403 until the admin binds
//! them to the default ClusterRole `view` (`kubectl create rolebinding`, sent as protobuf), then
//! read what `view` grants and nothing more; `kubectl auth can-i` agrees; the default roles and
//! the bindings print as kubectl prints them; a binding's role never changes; a ClusterRole
//! labelled for it extends `view`; who administers a namespace grants there only what they hold;
//! `--as` impersonates for whoever may (the admin), and is refused to alice; a node's identity
//! does what the Node authorizer and NodeRestriction let a node do.

mod kubectl_support;

use emu_tests::Run;
use kubectl_support::{client_cert, cluster, kubectl, kubectl_with_input};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A kubeconfig for the server of the admin's (the host's API port), trusting the cluster CA,
/// as user `name` with `credentials` (kubeconfig `user:` lines; none for a token given on the
/// command line).
fn kubeconfig(dir: &Path, name: &str, credentials: &str) -> PathBuf {
    let admin = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    let field =
        |key: &str| admin.lines().find_map(|l| l.trim().strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {admin}")).trim().to_string();
    let (server, ca) = (field("server:"), field("certificate-authority-data:"));
    let user = if credentials.is_empty() { "  user: {}\n".to_string() } else { format!("  user:\n{credentials}") };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emu\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {name}\n{user}contexts:\n- name: emu\n  context:\n    cluster: emu\n    user: {name}\n    namespace: default\n\
         current-context: emu\n"
    );
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `kubectl ARGS` with `config`, a discovery cache of the user's own, killed after [`LIMIT`].
fn kubectl_as(dir: &Path, config: &Path, args: &[&str]) -> Run {
    let cache = dir.join(format!("cache-{}", config.file_stem().unwrap().to_string_lossy()));
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &LIMIT.as_secs().to_string(), "kubectl", "--kubeconfig"])
        .arg(config)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("KUBECACHEDIR", &cache);
    Run::from(cmd.output().expect("running kubectl"))
}

/// kube-apiserver's 403 for listing `resource` in namespace default, as kubectl prints it.
fn forbidden(user: &str, resource: &str) -> String {
    format!(
        "Error from server (Forbidden): {resource} is forbidden: User \"{user}\" cannot list resource \"{resource}\" in API group \"\" in the namespace \"default\"\n"
    )
}

/// A table's cells line by line, the AGE column (index `age`) left out: two runs a moment
/// apart may differ there.
fn cells(table: &str, age: usize) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().enumerate().filter(|(i, _)| *i != age).map(|(_, c)| c.to_string()).collect()).collect()
}

#[test]
fn rbac_grants_what_the_bound_role_allows() {
    let (c, dir) = cluster("rbac");
    let admin = |args: &[&str]| kubectl(&dir.0, LIMIT, args);
    c.apply(
        "client.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n",
    )
    .ok();
    let client = c.ready_pod("client");

    // The default policy, as kube-apiserver creates it, listed as kubectl lists it.
    let roles = admin(&["get", "clusterroles"]).ok().stdout;
    assert_eq!(roles.lines().next().map(|h| h.split_whitespace().collect::<Vec<_>>()), Some(vec!["NAME", "CREATED", "AT"]), "{roles}");
    let names: Vec<&str> = roles.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    for role in ["admin", "cluster-admin", "edit", "view", "system:discovery", "system:basic-user", "system:public-info-viewer"] {
        assert!(names.contains(&role), "{role} in {roles}");
    }
    assert_eq!(roles, c.emu(&["get", "clusterroles"]).ok().stdout, "kubectl and emu print the same roles");
    let masters = admin(&["get", "clusterrolebinding", "cluster-admin", "-o", "wide"]).ok().stdout;
    let row: Vec<&str> = masters.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!((row[0], row[1], row.get(3).copied()), ("cluster-admin", "ClusterRole/cluster-admin", Some("system:masters")), "{masters}");
    let view = admin(&["get", "clusterrole", "view", "-o", "json"]).ok().stdout;
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
    assert_eq!(view["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["rbac.authorization.k8s.io/aggregate-to-view"], "true");

    // alice: authenticated, bound to nothing.
    let pki = PathBuf::from("/run/emu").join(&c.name).join("pki");
    let (crt, key) = client_cert(&pki, "alice", "dev");
    std::fs::write(dir.0.join("alice.crt"), crt).unwrap();
    std::fs::write(dir.0.join("alice.key"), key).unwrap();
    let credentials =
        format!("    client-certificate: {}\n    client-key: {}\n", dir.0.join("alice.crt").display(), dir.0.join("alice.key").display());
    let alice = kubeconfig(&dir.0, "alice", &credentials);
    let refused = kubectl_as(&dir.0, &alice, &["get", "pods"]);
    assert_eq!((refused.code, refused.stderr.as_str()), (1, forbidden("alice", "pods").as_str()));
    let can = kubectl_as(&dir.0, &alice, &["auth", "can-i", "list", "pods"]);
    assert_eq!((can.code, can.stdout.as_str()), (1, "no\n"), "{}", can.stderr);

    // The admin binds her to view in default (kubectl's typed client: protobuf).
    let created = admin(&["create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice"]);
    assert_eq!(created.ok().stdout, "rolebinding.rbac.authorization.k8s.io/alice-view created\n");
    let pods = kubectl_as(&dir.0, &alice, &["get", "pods"]).ok().stdout;
    assert!(pods.lines().any(|l| l.starts_with("client ")), "{pods}");
    let can = kubectl_as(&dir.0, &alice, &["auth", "can-i", "list", "pods"]);
    assert_eq!((can.code, can.stdout.as_str()), (0, "yes\n"), "{}", can.stderr);
    // What she may do here, rule by rule (a SelfSubjectRulesReview).
    let list = kubectl_as(&dir.0, &alice, &["auth", "can-i", "--list"]).ok().stdout;
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.first().map(Vec::as_slice), Some(&["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"][..]), "{list}");
    assert!(rows.contains(&vec!["pods", "[]", "[]", "[get", "list", "watch]"]), "{list}");
    assert!(rows.contains(&vec!["[/api/*]", "[]", "[get]"]), "{list}");
    assert!(!rows.iter().any(|r| r[0] == "secrets"), "{list}");
    // view reads no secrets, and grants nothing outside its binding's namespace.
    let secrets = kubectl_as(&dir.0, &alice, &["get", "secrets"]);
    assert_eq!((secrets.code, secrets.stderr.as_str()), (1, forbidden("alice", "secrets").as_str()));
    let can = kubectl_as(&dir.0, &alice, &["auth", "can-i", "get", "secrets"]);
    assert_eq!((can.code, can.stdout.as_str()), (1, "no\n"), "{}", can.stderr);
    let elsewhere = kubectl_as(&dir.0, &alice, &["get", "pods", "-n", "kube-system"]);
    assert_eq!(
        (elsewhere.code, elsewhere.stderr.as_str()),
        (1, "Error from server (Forbidden): pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\"\n")
    );
    assert_eq!(kubectl_as(&dir.0, &alice, &["auth", "can-i", "delete", "pods"]).stdout, "no\n");

    // Impersonation (`--as`, `--as-group`): the admin checks what others may do; alice, who may
    // not impersonate, gets kube-apiserver's 403.
    assert_eq!(admin(&["auth", "can-i", "list", "pods", "--as=alice"]).stdout, "yes\n");
    assert_eq!(admin(&["auth", "can-i", "list", "secrets", "--as=alice"]).stdout, "no\n");
    assert_eq!(admin(&["auth", "can-i", "list", "pods", "--as=system:serviceaccount:default:default"]).stdout, "no\n");
    let as_alice = admin(&["get", "secrets", "--as=alice"]);
    assert_eq!((as_alice.code, as_alice.stderr.as_str()), (1, forbidden("alice", "secrets").as_str()));
    let whoami = admin(&["auth", "whoami", "--as=bob", "--as-group=devs", "-o", "jsonpath={.status.userInfo}"]).ok().stdout;
    let whoami: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!((&whoami["username"], &whoami["groups"]), (&serde_json::json!("bob"), &serde_json::json!(["devs", "system:authenticated"])));
    let refused = kubectl_as(&dir.0, &alice, &["get", "pods", "--as=bob"]);
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (1, "Error from server (Forbidden): users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope\n")
    );

    // A node's identity (`emu kubeconfig --node`, kubelet's kubeconfig): the Node authorizer's
    // reads and own writes, NodeRestriction's refusals, RBAC's 403 for the rest.
    let node = client["spec"]["nodeName"].as_str().unwrap().to_string();
    let node_config = dir.0.join("node.kubeconfig");
    std::fs::write(&node_config, c.emu(&["kubeconfig", "--node", &node]).ok().stdout).unwrap();
    let as_node = |args: &[&str]| kubectl_as(&dir.0, &node_config, args);
    let whoami = as_node(&["auth", "whoami", "-o", "jsonpath={.status.userInfo}"]).ok().stdout;
    let whoami: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(whoami["username"], format!("system:node:{node}"));
    assert_eq!(whoami["groups"], serde_json::json!(["system:nodes", "system:authenticated"]));
    assert!(as_node(&["get", "pods", "-A"]).ok().stdout.contains("client"));
    assert_eq!(as_node(&["auth", "can-i", "list", "pods", "-A"]).stdout, "yes\n", "auth can-i asks the Node authorizer too");
    assert_eq!(as_node(&["auth", "can-i", "get", "secrets/some-secret"]).stdout, "no\n");
    assert_eq!(as_node(&["label", "node", &node, "lab=yes"]).ok().stdout, format!("node/{node} labeled\n"));
    let nodes = admin(&["get", "nodes", "-o", "name"]).ok().stdout;
    let other = nodes.lines().filter_map(|l| l.strip_prefix("node/")).find(|n| *n != node).expect("a cluster of two nodes");
    let refused = as_node(&["label", "node", other, "lab=yes"]);
    assert_eq!(
        refused.stderr,
        format!(
            "Error from server (Forbidden): nodes \"{other}\" is forbidden: node \"{node}\" is not allowed to modify node \"{other}\"\n"
        )
    );
    let secrets = as_node(&["get", "secrets", "some-secret"]);
    assert_eq!(
        secrets.stderr,
        format!("Error from server (Forbidden): secrets \"some-secret\" is forbidden: User \"system:node:{node}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node '{node}' and this object\n")
    );
    let deployments = as_node(&["get", "deployments"]);
    assert_eq!(
        deployments.stderr,
        format!("Error from server (Forbidden): deployments.apps is forbidden: User \"system:node:{node}\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"default\"\n")
    );
    let unknown = c.emu(&["kubeconfig", "--node", "nosuch"]);
    assert!(unknown.code != 0 && unknown.stderr.contains("node \"nosuch\" not found"), "{}", unknown.stderr);

    // A pod's service account, with the token emu gives the pod, against the host's API port.
    let token = c.emu(&["exec", "client", "--", "cat", TOKEN]).ok().stdout;
    let sa = kubeconfig(&dir.0, "sa", "");
    let as_sa = |args: &[&str]| {
        let mut all = vec!["--token", token.trim()];
        all.extend_from_slice(args);
        kubectl_as(&dir.0, &sa, &all)
    };
    let refused = as_sa(&["get", "pods"]);
    assert_eq!((refused.code, refused.stderr.as_str()), (1, forbidden("system:serviceaccount:default:default", "pods").as_str()));
    let created = admin(&["create", "rolebinding", "default-view", "--clusterrole=view", "--serviceaccount=default:default"]);
    assert_eq!(created.ok().stdout, "rolebinding.rbac.authorization.k8s.io/default-view created\n");
    let pods = as_sa(&["get", "pods"]).ok().stdout;
    assert!(pods.lines().any(|l| l.starts_with("client ")), "{pods}");
    let whoami = as_sa(&["auth", "whoami"]).ok().stdout;
    assert!(whoami.lines().any(|l| l.split_whitespace().eq(["Username", "system:serviceaccount:default:default"])), "{whoami}");

    // The bindings, as kubectl prints them (wide: the subjects by kind), as emu prints them.
    let wide = admin(&["get", "rolebinding", "-o", "wide"]).ok().stdout;
    assert_eq!(
        cells(&wide, 2),
        [
            vec!["NAME", "ROLE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
            vec!["alice-view", "ClusterRole/view", "alice"],
            vec!["default-view", "ClusterRole/view", "default/default"],
        ],
        "{wide}"
    );
    assert_eq!(cells(&wide, 2), cells(&c.emu(&["get", "rolebinding", "-o", "wide"]).ok().stdout, 2));
    let short = admin(&["get", "rolebindings"]).ok().stdout;
    assert_eq!(short.lines().next().map(|h| h.split_whitespace().collect::<Vec<_>>()), Some(vec!["NAME", "ROLE", "AGE"]), "{short}");

    // A ClusterRole labelled to aggregate into view extends view, and so what alice may do.
    let manifest = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: view-secrets\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}\nrules:\n- {apiGroups: [\"\"], resources: [secrets], verbs: [get, list]}\n";
    let applied = kubectl_with_input(&dir.0, LIMIT, &["apply", "-f", "-"], manifest.as_bytes()).ok().stdout;
    assert_eq!(applied, "clusterrole.rbac.authorization.k8s.io/view-secrets created\n");
    c.wait_for("view to aggregate view-secrets", Duration::from_secs(10), || {
        (kubectl_as(&dir.0, &alice, &["auth", "can-i", "list", "secrets"]).stdout == "yes\n").then_some(())
    });
    admin(&["delete", "clusterrole", "view-secrets"]).ok();
    c.wait_for("view to drop view-secrets", Duration::from_secs(10), || {
        (kubectl_as(&dir.0, &alice, &["auth", "can-i", "list", "secrets"]).stdout == "no\n").then_some(())
    });

    // A Role of the namespace, from kubectl's generator, grants through a RoleBinding; a
    // binding's role never changes.
    let role = admin(&["create", "role", "secret-reader", "--verb=get,list", "--resource=secrets"]).ok().stdout;
    assert_eq!(role, "role.rbac.authorization.k8s.io/secret-reader created\n");
    admin(&["create", "rolebinding", "alice-secrets", "--role=secret-reader", "--user=alice"]).ok();
    assert_eq!(kubectl_as(&dir.0, &alice, &["auth", "can-i", "list", "secrets"]).stdout, "yes\n");
    let changed = admin(&["patch", "rolebinding", "alice-view", "--type=merge", "-p", r#"{"roleRef":{"name":"edit"}}"#]);
    assert_eq!(
        (changed.code, changed.stderr.as_str()),
        (1, "The RoleBinding \"alice-view\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef\n")
    );
    // kubectl's describers (the rules broken down, compacted and sorted), as emu describes.
    for args in [
        &["describe", "clusterrole", "view"][..],
        &["describe", "clusterrole", "admin"],
        &["describe", "clusterrole", "system:discovery"],
        &["describe", "role", "secret-reader"],
        &["describe", "rolebinding", "alice-view"],
        &["describe", "clusterrolebinding", "system:public-info-viewer"],
    ] {
        let theirs = admin(args).ok().stdout;
        assert_eq!(theirs, c.emu(args).ok().stdout, "kubectl {args:?}:\n{theirs}");
    }

    // Who administers a namespace may grant there what they hold, and nothing more.
    admin(&["create", "namespace", "team"]).ok();
    admin(&["create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice", "-n", "team"]).ok();
    let granted = kubectl_as(&dir.0, &alice, &["create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", "-n", "team"]);
    assert_eq!(granted.ok().stdout, "rolebinding.rbac.authorization.k8s.io/bob-view created\n");
    let escalated =
        kubectl_as(&dir.0, &alice, &["create", "rolebinding", "bob-root", "--clusterrole=cluster-admin", "--user=bob", "-n", "team"]);
    let not_held = "is forbidden: user \"alice\" (groups=[\"dev\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:";
    assert_eq!(
        (escalated.code, escalated.stderr),
        (1, format!("error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"bob-root\" {not_held}\n{{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}}\n{{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}}\n"))
    );
    let role = kubectl_as(&dir.0, &alice, &["create", "role", "nodes", "--verb=get", "--resource=nodes", "-n", "team"]);
    assert_eq!(
        (role.code, role.stderr),
        (1, format!("Error from server (Forbidden): roles.rbac.authorization.k8s.io \"nodes\" {not_held}\n{{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}}\n"))
    );
    let role = kubectl_as(&dir.0, &alice, &["create", "role", "pods", "--verb=get,delete", "--resource=pods", "-n", "team"]);
    assert_eq!(role.ok().stdout, "role.rbac.authorization.k8s.io/pods created\n");
    // Nor by a patch: what the patch would make is what is checked.
    let add_nodes = r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["nodes"],"verbs":["get"]}}]"#;
    let patched = kubectl_as(&dir.0, &alice, &["patch", "role", "pods", "-n", "team", "--type=json", "-p", add_nodes]);
    assert_eq!(
        (patched.code, patched.stderr),
        (1, format!("Error from server (Forbidden): roles.rbac.authorization.k8s.io \"pods\" {not_held}\n{{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}}\n"))
    );
    let labelled = kubectl_as(&dir.0, &alice, &["label", "role", "pods", "-n", "team", "tier=web"]);
    assert_eq!(labelled.ok().stdout, "role.rbac.authorization.k8s.io/pods labeled\n");

    // emu's own apply admits RBAC's kinds as the API server does.
    let applied = c.apply(
        "binding.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: carol-edit, namespace: team}\nroleRef: {kind: ClusterRole, name: edit}\nsubjects: [{kind: User, name: carol}]\n",
    );
    assert_eq!(applied.ok().stdout, "rolebinding.rbac.authorization.k8s.io/carol-edit created\n");
    let stored = admin(&["get", "rolebinding", "carol-edit", "-n", "team", "-o", "jsonpath={.roleRef.apiGroup} {.subjects[0].apiGroup}"]);
    assert_eq!(stored.ok().stdout, "rbac.authorization.k8s.io rbac.authorization.k8s.io");

    let cluster_role = admin(&["create", "clusterrole", "node-reader", "--verb=get,list", "--resource=nodes"]).ok().stdout;
    assert_eq!(cluster_role, "clusterrole.rbac.authorization.k8s.io/node-reader created\n");
    let binding = admin(&["create", "clusterrolebinding", "dev-nodes", "--clusterrole=node-reader", "--group=dev"]).ok().stdout;
    assert_eq!(binding, "clusterrolebinding.rbac.authorization.k8s.io/dev-nodes created\n");
    let nodes = kubectl_as(&dir.0, &alice, &["get", "nodes"]).ok().stdout;
    assert!(nodes.starts_with("NAME "), "{nodes}");
}
