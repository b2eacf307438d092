//! The service-account API access every pod gets (VOL-8): the projected volume
//! `kube-api-access-<5 chars>` at /var/run/secrets/kubernetes.io/serviceaccount with `ca.crt`,
//! `namespace` and a bound token that the API server's HTTPS endpoint authenticates.

use base64::Engine as _;
use emu_tests::{name, Cluster};

const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn curl_api(c: &Cluster, pod: &str, namespace: &str, auth: &str, path: &str) -> String {
    let script = format!("curl -s --cacert {DIR}/ca.crt {auth} https://kubernetes.default.svc{path}");
    c.emu(&["exec", "-n", namespace, pod, "--", "sh", "-c", &script]).ok().stdout
}

#[test]
fn every_pod_gets_a_token_the_ca_and_its_namespace() {
    let c = Cluster::up("tsatoken", &["--nodes", "1"]);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers: [{name: c, image: curlimages/curl, command: [sleep, '3600']}]\n";
    c.apply("client.yaml", pod).ok();
    c.emu(&["create", "namespace", "team"]).ok();
    c.apply("team.yaml", &pod.replace("metadata: {name: client}", "metadata: {name: client, namespace: team}")).ok();
    c.apply(
        "opted-out.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: quiet}\nspec:\n  automountServiceAccountToken: false\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n",
    )
    .ok();
    // An account can opt its pods out too; a pod's own setting wins over its account's. The
    // ReplicaSet controller's pods are admitted the same way.
    c.apply(
        "robot.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot}\nautomountServiceAccountToken: false\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: robot-quiet}\nspec:\n  serviceAccountName: robot\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: robot-opted-in}\nspec:\n  serviceAccountName: robot\n  automountServiceAccountToken: true\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: robots}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: robots}}\n  template:\n    metadata: {labels: {app: robots}}\n    spec:\n      serviceAccountName: robot\n      containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n",
    )
    .ok();
    let client = c.ready_pod("client");
    c.ready_pod("quiet");
    let volumes = |pod: &serde_json::Value| pod["spec"]["volumes"].as_array().map_or(0, Vec::len);
    assert_eq!(volumes(&c.ready_pod("robot-quiet")), 0, "the account's automountServiceAccountToken: false");
    assert_eq!(volumes(&c.ready_pod("robot-opted-in")), 1, "the pod's automountServiceAccountToken: true wins");
    let robots = c.ready_pods("app=robots", 1);
    assert_eq!(volumes(&robots[0]), 0, "a ReplicaSet's pod of the account");

    // The admission's volume and mount, as `-o yaml` and describe show them.
    let volume = client["spec"]["volumes"][0].clone();
    let volume_name = volume["name"].as_str().unwrap().to_string();
    assert!(volume_name.starts_with("kube-api-access-") && volume_name.len() == "kube-api-access-".len() + 5, "{volume}");
    assert_eq!(volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3607);
    assert_eq!(
        client["spec"]["containers"][0]["volumeMounts"][0],
        serde_json::json!({"name": volume_name, "readOnly": true, "mountPath": DIR})
    );
    let described = c.emu(&["describe", "pod", "client"]).ok().stdout;
    assert!(
        described.contains(&format!("{DIR} from {volume_name} (ro)")) && described.contains("Type:                    Projected"),
        "{described}"
    );

    // The files, in kubelet's layout, read-only.
    let listing = c.emu(&["exec", "client", "--", "ls", "-a", DIR]).ok().stdout;
    for entry in ["..data", "ca.crt", "namespace", "token"] {
        assert!(listing.lines().any(|l| l == entry), "{entry} in {listing}");
    }
    let ca = c.emu(&["exec", "client", "--", "cat", &format!("{DIR}/ca.crt")]).ok().stdout;
    let published = c.emu(&["get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"]).ok().stdout;
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----") && ca.trim() == published.trim());
    assert_eq!(c.emu(&["exec", "client", "--", "cat", &format!("{DIR}/namespace")]).ok().stdout, "default");
    assert_eq!(c.emu(&["exec", "-n", "team", "client", "--", "cat", &format!("{DIR}/namespace")]).ok().stdout, "team");
    assert_ne!(c.emu(&["exec", "client", "--", "touch", &format!("{DIR}/token")]).code, 0, "read-only");
    assert_ne!(c.emu(&["exec", "quiet", "--", "ls", DIR]).code, 0, "automountServiceAccountToken: false");

    // The token: a JWT bound to the pod, which the API server authenticates.
    let token = c.emu(&["exec", "client", "--", "cat", &format!("{DIR}/token")]).ok().stdout;
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        (claims["kubernetes.io"]["pod"]["name"].as_str(), claims["kubernetes.io"]["pod"]["uid"].as_str()),
        (Some("client"), client["metadata"]["uid"].as_str())
    );
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3607);
    let bearer = format!("-H \"Authorization: Bearer $(cat {DIR}/token)\"");
    let answer = curl_api(&c, "client", "default", &bearer, "/api/v1/namespaces/default/pods");
    assert!(
        answer.contains(
            r#"pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""#
        ),
        "{answer}"
    );
    // Authenticated, a service account may read discovery (system:discovery), not the anonymous.
    assert!(curl_api(&c, "client", "default", &bearer, "/api").contains("\"kind\": \"APIVersions\""));
    assert!(curl_api(&c, "client", "team", &bearer, "/api/v1/namespaces/team/pods").contains("system:serviceaccount:team:default"));
    assert!(curl_api(&c, "client", "default", "", "/api").contains(r#"User \"system:anonymous\""#));
    let forged = format!("-H \"Authorization: Bearer $(cat {DIR}/token)x\"");
    assert!(curl_api(&c, "client", "default", &forged, "/version").contains("\"code\": 401"));

    // Applying the same manifest again changes nothing (the volume is kept, not a new one).
    assert_eq!(c.apply("client.yaml", pod).ok().stdout, "pod/client unchanged\n");
    // A Deployment's pods each get their own.
    c.apply(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
    )
    .ok();
    let pods = c.ready_pods("app=web", 2);
    let names: std::collections::BTreeSet<String> =
        pods.iter().map(|p| p["spec"]["volumes"][0]["name"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(names.len(), 2, "{:?} for {:?}", names, pods.iter().map(name).collect::<Vec<_>>());
    let token = c.emu(&["exec", &name(&pods[0]), "--", "cat", &format!("{DIR}/token")]).ok().stdout;
    assert_eq!(token.split('.').count(), 3);
}
