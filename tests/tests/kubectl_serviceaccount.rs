//! ServiceAccounts and their tokens with the real kubectl (issue 17): every namespace has
//! `default` (made with the namespace, back when deleted); `kubectl create sa` and `kubectl
//! create token` (protobuf) give an account and a token that authenticates as it, refused by
//! RBAC until a binding grants; a pod of that account gets a token that speaks for it; a pod
//! naming an account that does not exist is refused by admission, and a Deployment's pods the
//! same, which its ReplicaSet reports as kube-controller-manager does. The Python client lists,
//! creates and requests tokens as JSON (tests/python/serviceaccounts.py).

mod kubectl_support;
mod test_tools;

use base64::Engine as _;
use emu_tests::Run;
use kubectl_support::{cluster, kubectl, kubectl_with_input};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A kubeconfig for the admin's server, trusting the cluster CA, with no credentials of its
/// own: the token is given on the command line.
fn tokenless_kubeconfig(dir: &Path) -> PathBuf {
    let admin = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    let field =
        |key: &str| admin.lines().find_map(|l| l.trim().strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {admin}")).trim().to_string();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emu\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
         users:\n- name: sa\n  user: {{}}\ncontexts:\n- name: emu\n  context:\n    cluster: emu\n    user: sa\n    namespace: default\n\
         current-context: emu\n",
        field("server:"),
        field("certificate-authority-data:")
    );
    let path = dir.join("sa.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// `kubectl --token TOKEN ARGS` with no other credentials, a discovery cache of its own.
fn kubectl_with_token(dir: &Path, token: &str, args: &[&str]) -> Run {
    let cache = dir.join("cache-sa");
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &LIMIT.as_secs().to_string(), "kubectl", "--kubeconfig"])
        .arg(tokenless_kubeconfig(dir))
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--token", token])
        .args(args)
        .env_remove("KUBECONFIG")
        .env("KUBECACHEDIR", &cache);
    Run::from(cmd.output().expect("running kubectl"))
}

fn claims(token: &str) -> Value {
    let part = token.trim().split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A table's cells line by line, the AGE column (index `age`) left out.
fn cells(table: &str, age: usize) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().enumerate().filter(|(i, _)| *i != age).map(|(_, c)| c.to_string()).collect()).collect()
}

/// A pod of `account`, as a manifest.
fn pod(name: &str, account: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  serviceAccountName: {account}\n  containers: [{{name: c, image: busybox, command: [sleep, '3600']}}]\n"
    )
}

#[test]
fn service_accounts_and_their_tokens() {
    let (c, dir) = cluster("ksa");
    let admin = |args: &[&str]| kubectl(&dir.0, LIMIT, args);
    let uid_of = |ns: &str, name: &str| {
        let r = admin(&["get", "sa", name, "-n", ns, "-o", "jsonpath={.metadata.uid}"]);
        Some(r.stdout).filter(|u| r.code == 0 && !u.is_empty())
    };

    // Every namespace has its default account: those of the start, and a new one's.
    c.wait_for("default/default", Duration::from_secs(10), || uid_of("default", "default"));
    let listed = admin(&["get", "sa"]).ok().stdout;
    assert_eq!(cells(&listed, 2), [vec!["NAME", "SECRETS"], vec!["default", "0"]], "{listed}");
    assert_eq!(cells(&listed, 2), cells(&c.emu(&["get", "sa"]).ok().stdout, 2), "kubectl and emu print the same");
    admin(&["create", "namespace", "team"]).ok();
    c.wait_for("team/default", Duration::from_secs(10), || uid_of("team", "default"));
    let in_team = admin(&["get", "serviceaccounts", "-n", "team"]).ok().stdout;
    assert_eq!(cells(&in_team, 2), [vec!["NAME", "SECRETS"], vec!["default", "0"]], "{in_team}");
    assert!(uid_of("kube-system", "coredns").is_some(), "the DNS pods' account");
    let described = admin(&["describe", "sa", "default"]).ok().stdout;
    assert_eq!(
        described,
        "Name:                default\nNamespace:           default\nLabels:              <none>\nAnnotations:         <none>\n\
         Image pull secrets:  <none>\nMountable secrets:   <none>\nTokens:              <none>\nEvents:              <none>\n"
    );
    assert_eq!(c.emu(&["describe", "sa", "default"]).ok().stdout, described);

    // An account of our own (kubectl's typed client sends it as protobuf), and its token.
    assert_eq!(admin(&["create", "sa", "robot"]).ok().stdout, "serviceaccount/robot created\n");
    let robot_uid = uid_of("default", "robot").expect("robot's uid");
    let token = admin(&["create", "token", "robot"]).ok().stdout.trim().to_string();
    let t = claims(&token);
    assert_eq!((t["sub"].as_str(), t["aud"].clone()), (Some("system:serviceaccount:default:robot"), serde_json::json!([ISSUER])));
    assert_eq!(t["exp"].as_i64().unwrap() - t["iat"].as_i64().unwrap(), 3600);
    assert_eq!(
        t["kubernetes.io"],
        serde_json::json!({"namespace": "default", "serviceaccount": {"name": "robot", "uid": robot_uid}}),
        "bound to the account alone"
    );
    let short = admin(&["create", "token", "robot", "--duration", "1m"]);
    assert_eq!(
        (short.code, short.stderr.as_str()),
        (1, "error: failed to create token: TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes\n")
    );
    let missing = admin(&["create", "token", "nobody"]);
    assert_eq!((missing.code, missing.stderr.as_str()), (1, "error: failed to create token: serviceaccounts \"nobody\" not found\n"));
    let vault = admin(&["create", "token", "robot", "--duration", "10m", "--audience", "vault"]).ok().stdout;
    let v = claims(&vault);
    assert_eq!((v["aud"].clone(), v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap()), (serde_json::json!(["vault"]), 600));

    // The token authenticates as robot, whom RBAC refuses until a binding grants view.
    let refused = kubectl_with_token(&dir.0, &token, &["get", "pods"]);
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (1, "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:default:robot\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n")
    );
    let other_audience = kubectl_with_token(&dir.0, vault.trim(), &["get", "pods"]);
    assert_eq!((other_audience.code, other_audience.stderr.as_str()), (1, "error: You must be logged in to the server (Unauthorized)\n"));
    let bound = admin(&["create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount=default:robot"]);
    assert_eq!(bound.ok().stdout, "rolebinding.rbac.authorization.k8s.io/robot-view created\n");

    // A pod of robot runs; its own token speaks for robot.
    c.apply("robot.yaml", &pod("robot-client", "robot")).ok();
    c.ready_pod("robot-client");
    let pods = kubectl_with_token(&dir.0, &token, &["get", "pods"]).ok().stdout;
    assert!(pods.lines().any(|l| l.starts_with("robot-client ")), "{pods}");
    let mounted = c.emu(&["exec", "robot-client", "--", "cat", TOKEN]).ok().stdout;
    assert_eq!(claims(&mounted)["kubernetes.io"]["pod"]["name"], "robot-client");
    let whoami = kubectl_with_token(&dir.0, mounted.trim(), &["auth", "whoami"]).ok().stdout;
    assert!(whoami.lines().any(|l| l.split_whitespace().eq(["Username", "system:serviceaccount:default:robot"])), "{whoami}");
    assert!(kubectl_with_token(&dir.0, mounted.trim(), &["get", "pods"]).ok().stdout.contains("robot-client"));

    // A pod naming an account that does not exist: ServiceAccount admission's 403.
    let lost = kubectl_with_input(&dir.0, LIMIT, &["create", "-f", "-"], pod("lost", "foo").as_bytes());
    assert_eq!(
        (lost.code, lost.stderr.as_str()),
        (1, "Error from server (Forbidden): error when creating \"STDIN\": pods \"lost\" is forbidden: error looking up service account default/foo: serviceaccount \"foo\" not found\n")
    );
    // A Deployment's: its ReplicaSet cannot create them and says why, until the account exists.
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      serviceAccountName: foo\n      containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n";
    kubectl_with_input(&dir.0, LIMIT, &["apply", "-f", "-"], deployment.as_bytes()).ok();
    let failure = c.wait_for("the Deployment's ReplicaFailure", Duration::from_secs(10), || {
        let r = admin(&["get", "deploy", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"ReplicaFailure\")].message}"]);
        Some(r.stdout).filter(|m| r.code == 0 && !m.is_empty())
    });
    assert!(
        failure.starts_with("pods \"web-")
            && failure.ends_with("-\" is forbidden: error looking up service account default/foo: serviceaccount \"foo\" not found"),
        "{failure}"
    );
    let events = admin(&["get", "events", "--field-selector", "reason=FailedCreate", "-o", "jsonpath={.items[*].message}"]).ok().stdout;
    assert!(events.starts_with("Error creating: pods \"web-"), "{events}");
    admin(&["create", "sa", "foo"]).ok();
    c.ready_pods("app=web", 1);
    c.wait_for("the failure to clear", Duration::from_secs(10), || {
        let r = admin(&["get", "deploy", "web", "-o", "jsonpath={.status.conditions[*].type}"]).ok().stdout;
        (!r.contains("ReplicaFailure")).then_some(())
    });

    // default comes back when deleted, as another account (a new uid).
    let old = uid_of("default", "default").unwrap();
    admin(&["delete", "sa", "default"]).ok();
    let new = c.wait_for("default/default back", Duration::from_secs(10), || uid_of("default", "default").filter(|u| *u != old));
    assert_ne!(new, old);

    // The Python client: list and create (JSON), a token (a JSON TokenRequest) that
    // authenticates as its account, a missing account's 404.
    let script = test_tools::run_python("serviceaccounts.py", &[dir.0.join("kubeconfig").to_str().unwrap()], LIMIT);
    assert_eq!(script.code, 0, "serviceaccounts.py\n{}\n{}", script.stdout, script.stderr);
    let out: Vec<&str> = script.stdout.lines().collect();
    assert_eq!(
        out[..4],
        ["listed: default foo robot", "created: pyrobot uid: True", &format!("token: ['{ISSUER}'] 900 900"), "missing: 404 Not Found"]
    );
    let whoami = kubectl_with_token(&dir.0, out[4], &["auth", "whoami"]).ok().stdout;
    assert!(whoami.lines().any(|l| l.split_whitespace().eq(["Username", "system:serviceaccount:default:pyrobot"])), "{whoami}");

    // A token of an account that is gone no longer authenticates, even once the name is back.
    admin(&["delete", "sa", "robot"]).ok();
    let gone = kubectl_with_token(&dir.0, &token, &["get", "pods"]);
    assert_eq!((gone.code, gone.stderr.as_str()), (1, "error: You must be logged in to the server (Unauthorized)\n"));
    admin(&["create", "sa", "robot"]).ok();
    assert_eq!(kubectl_with_token(&dir.0, &token, &["get", "pods"]).code, 1);
}
