//! Changing Services in place (issue 6, item 4): `emu edit` in the user's editor and `emu patch`
//! with the three patch types, through the real `emu` against a real cluster. The tutorial's
//! `kubectl edit svc my-nginx` to `type: LoadBalancer` keeps the node ports and the ClusterIP.

use emu_tests::Cluster;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The tutorial's Service (nginx-secure-app.yaml): http 8080 → 80 and https 443, as `ty`.
fn my_nginx(ty: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: my-nginx\n  labels: {{run: my-nginx}}\nspec:\n  type: {ty}\n  ports:\n  \
         - {{port: 8080, targetPort: 80, protocol: TCP, name: http}}\n  - {{port: 443, protocol: TCP, name: https}}\n  selector: {{run: my-nginx}}\n"
    )
}

fn service(c: &Cluster) -> Value {
    serde_json::from_str(&c.emu(&["get", "svc", "my-nginx", "-o", "json"]).ok().stdout).unwrap()
}

fn node_ports(svc: &Value) -> Vec<u64> {
    svc["spec"]["ports"].as_array().unwrap().iter().map(|p| p["nodePort"].as_u64().unwrap_or(0)).collect()
}

/// The cells of `emu get svc my-nginx`'s row: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE.
fn row(c: &Cluster) -> Vec<String> {
    let table = c.emu(&["get", "svc", "my-nginx"]).ok().stdout;
    table.lines().nth(1).unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

/// Waits (2 s at most) for the cloud to give my-nginx its EXTERNAL-IP; returns the row.
fn external_ip(c: &Cluster) -> Vec<String> {
    c.wait_for("an EXTERNAL-IP", Duration::from_secs(2), || {
        let cells = row(c);
        cells[3].starts_with("203.0.113.").then_some(cells)
    })
}

/// `emu ARGS --cluster NAME` with `env` (and no editor from the test's own environment):
/// exit code, stdout, stderr.
fn emu_env(c: &Cluster, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let o = Command::new(emu_tests::emu_path())
        .args(args)
        .args(["--cluster", &c.name])
        .env_remove("EMU_CLUSTER")
        .env_remove("KUBE_EDITOR")
        .env_remove("EDITOR")
        .envs(env.iter().copied())
        .output()
        .expect("running emu");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

fn patch(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["patch", "svc", "my-nginx"];
    all.extend_from_slice(args);
    emu_env(c, &[], &all)
}

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
";

#[test]
fn the_tutorials_edit_to_load_balancer() {
    let c = Cluster::up("tedit1", &["--nodes", "1"]);
    c.apply("svc.yaml", &my_nginx("NodePort")).ok();
    let before = service(&c);
    let (ip, ports) = (before["spec"]["clusterIP"].as_str().unwrap().to_string(), node_ports(&before));

    // `kubectl edit svc my-nginx`, with the editor changing the type (quoted: run by the shell).
    let to_lb = [("EDITOR", "sed -i 's/type: NodePort/type: LoadBalancer/'")];
    let (code, stdout, stderr) = emu_env(&c, &to_lb, &["edit", "svc", "my-nginx"]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "service/my-nginx edited\n", ""));
    let cells = external_ip(&c);
    assert_eq!(cells[1..3], ["LoadBalancer".to_string(), ip.clone()]);
    assert_eq!(cells[4], format!("8080:{}/TCP,443:{}/TCP", ports[0], ports[1]), "the node ports are kept");
    let after = service(&c);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);

    // Saved without a change (comments aside): nothing is sent. KUBE_EDITOR wins over EDITOR.
    let rv = service(&c)["metadata"]["resourceVersion"].clone();
    for env in [[("EDITOR", "true"), ("KUBE_EDITOR", "")], [("EDITOR", "false"), ("KUBE_EDITOR", "sed -i s/Please/Kindly/")]] {
        let (code, stdout, stderr) = emu_env(&c, &env, &["edit", "svc/my-nginx"]);
        assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", "Edit cancelled, no changes made.\n"), "{env:?}");
    }
    let (code, _, stderr) = emu_env(&c, &[("EDITOR", "truncate -s 0")], &["edit", "svc", "my-nginx"]);
    assert_eq!((code, stderr.as_str()), (0, "Edit cancelled, saved file was empty.\n"));
    assert_eq!(service(&c)["metadata"]["resourceVersion"], rv, "nothing was written");

    // In JSON: back to ClusterIP, which releases the node
    // ports and the address and keeps the ClusterIP.
    let (code, stdout, stderr) =
        emu_env(&c, &[("EDITOR", "sed -i 's/\"LoadBalancer\"/\"ClusterIP\"/'")], &["edit", "svc", "my-nginx", "-o", "json"]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "service/my-nginx edited\n", ""));
    let cells = row(&c);
    assert_eq!(cells[1..5], ["ClusterIP".to_string(), ip, "<none>".into(), "8080/TCP,443/TCP".into()]);

    let (code, _, stderr) = emu_env(&c, &[("EDITOR", "true")], &["edit", "svc", "nope"]);
    assert_eq!((code, stderr.as_str()), (1, "Error from server (NotFound): services \"nope\" not found\n"));
}

#[test]
fn patch_changes_the_type_in_place() {
    let c = Cluster::up("tedit2", &["--nodes", "1"]);
    c.apply("svc.yaml", &my_nginx("ClusterIP")).ok();
    let ip = c.cluster_ip("my-nginx");

    // ClusterIP → NodePort (strategic, kubectl's default): node ports are allocated.
    let to_node_port = r#"{"spec":{"type":"NodePort"}}"#;
    assert_eq!(patch(&c, &["-p", to_node_port]), (0, "service/my-nginx patched\n".into(), String::new()));
    let ports = node_ports(&service(&c));
    assert!(ports.iter().all(|p| (30000..=32767).contains(p)) && ports[0] != ports[1], "{ports:?}");
    assert_eq!(c.cluster_ip("my-nginx"), ip);
    assert_eq!(patch(&c, &["-p", to_node_port]), (0, "service/my-nginx patched (no change)\n".into(), String::new()));

    // → LoadBalancer (a JSON merge patch, in YAML): same node ports, an external address.
    assert_eq!(patch(&c, &["--type", "merge", "-p", "spec: {type: LoadBalancer}"]).0, 0);
    let cells = external_ip(&c);
    assert_eq!(cells[1..3], ["LoadBalancer".to_string(), ip.clone()]);
    assert_eq!(node_ports(&service(&c)), ports);

    // → ClusterIP with a JSON patch: node ports and the address are released.
    let to_cluster_ip =
        r#"[{"op":"test","path":"/spec/type","value":"LoadBalancer"},{"op":"replace","path":"/spec/type","value":"ClusterIP"}]"#;
    assert_eq!(patch(&c, &["--type", "json", "-p", to_cluster_ip]).0, 0);
    let svc = service(&c);
    assert_eq!((svc["spec"]["type"].as_str(), node_ports(&svc), c.cluster_ip("my-nginx")), (Some("ClusterIP"), vec![0, 0], ip));
    assert_eq!(row(&c)[3], "<none>");
    // add and remove a label, a JSON patch pointer with an escaped `/`.
    let label = r#"[{"op":"add","path":"/metadata/labels/app.kubernetes.io~1name","value":"web"}]"#;
    assert_eq!(patch(&c, &["--type", "json", "-p", label]).0, 0);
    assert_eq!(service(&c)["metadata"]["labels"]["app.kubernetes.io/name"], "web");
    let unlabel = r#"[{"op":"remove","path":"/metadata/labels/app.kubernetes.io~1name"}]"#;
    assert_eq!(patch(&c, &["--type", "json", "-p", unlabel]).0, 0);
    assert_eq!(service(&c)["metadata"]["labels"], serde_json::json!({"run": "my-nginx"}));

    // Refused patches change nothing: a missing path, bad JSON, an unknown type, a node port
    // another Service holds.
    c.apply(
        "other.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: other}\nspec:\n  type: NodePort\n  selector: {app: other}\n  ports: [{port: 80, nodePort: 30080}]\n",
    )
    .ok();
    assert_eq!(patch(&c, &["-p", to_node_port]).0, 0);
    let before = service(&c);
    let cases: [(&[&str], &str); 4] = [
        (
            // (A `replace` of a missing key adds it, as in kubectl: removing one is what fails.)
            &["--type", "json", "-p", r#"[{"op":"remove","path":"/spec/foo"}]"#],
            "error: error in remove for path: '/spec/foo': Unable to remove nonexistent key: foo: missing value\n",
        ),
        (&["-p", r#"{"spec":"#], "error: unable to parse \"{\\\"spec\\\":\": EOF while parsing a value at line 1 column 8\n"),
        (&["--type", "jsonpatch", "-p", "{}"], "error: --type must be one of [json merge strategic], not \"jsonpatch\"\n"),
        (
            &["-p", r#"{"spec":{"ports":[{"port":8080,"nodePort":30080}]}}"#],
            "The Service \"my-nginx\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated\n",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(patch(&c, args), (1, String::new(), want.to_string()), "{args:?}");
    }
    assert_eq!(service(&c), before, "my-nginx is unchanged");
}

#[test]
fn an_invalid_edit_reopens_the_editor_with_the_error() {
    let c = Cluster::up("tedit3", &["--nodes", "1"]);
    c.apply("svc.yaml", &my_nginx("NodePort")).ok();
    let before = service(&c);

    // The editor writes the first node port out of range the first time, then saves unchanged.
    let dir = c.scratch_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("editor.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {d}/calls 2>/dev/null || echo 0); n=$((n+1)); echo $n > {d}/calls\ncp \"$1\" {d}/shown-$n.yaml\n\
             if [ $n = 1 ]; then sed -i '0,/nodePort: [0-9]*/s//nodePort: 80/' \"$1\"; fi\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, stdout, stderr) = emu_env(&c, &[("EDITOR", script.to_str().unwrap())], &["edit", "svc", "my-nginx"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("calls")).unwrap().trim(), "2", "the editor was opened twice");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert_eq!(lines[0], "error: services \"my-nginx\" is invalid");
    let copy = lines[1]
        .strip_prefix("A copy of your changes has been stored to \"")
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(lines[2], "error: Edit cancelled, no valid changes were saved.");

    // The second time the file starts with the API server's error, above the user's text.
    let second = std::fs::read_to_string(dir.join("shown-2.yaml")).unwrap();
    let reason = "# services \"my-nginx\" was not valid:\n\
                  # * spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767\n#\n";
    assert!(second.starts_with(&format!("{HEADER}{reason}apiVersion: v1\n")), "{second}");
    assert!(second.contains("nodePort: 80\n"), "{second}");
    // The copy kept (mode 0600) is that text.
    let copy = PathBuf::from(copy);
    assert!(copy.starts_with(std::env::temp_dir()) && copy.file_name().unwrap().to_str().unwrap().starts_with("emu-edit-"), "{copy:?}");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), second);
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copy).unwrap().permissions()) & 0o777, 0o600);
    std::fs::remove_file(&copy).unwrap();
    assert_eq!(service(&c), before, "nothing was written");

    // A concurrent change conflicts: the file shown carries the resourceVersion read first.
    let racing = dir.join("racing.sh");
    let emu = emu_tests::emu_path();
    std::fs::write(
        &racing,
        format!(
            "#!/bin/sh\nif [ ! -e {d}/raced ]; then touch {d}/raced; {emu} patch svc my-nginx -p '{{\"spec\":{{\"sessionAffinity\":\"ClientIP\"}}}}' --cluster {c} >/dev/null; \
             sed -i 's/type: NodePort/type: LoadBalancer/' \"$1\"; fi\n",
            d = dir.display(),
            emu = emu.display(),
            c = c.name
        ),
    )
    .unwrap();
    std::fs::set_permissions(&racing, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, _, stderr) = emu_env(&c, &[("EDITOR", racing.to_str().unwrap())], &["edit", "svc", "my-nginx"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: services \"my-nginx\" could not be updated: Operation cannot be fulfilled on services \"my-nginx\": the object has been modified; \
             please apply your changes to the latest version and try again\n"
        ),
        "{stderr}"
    );
    let copy = stderr
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("A copy of your changes has been stored to \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    let _ = std::fs::remove_file(copy);
    let svc = service(&c);
    assert_eq!((svc["spec"]["type"].as_str(), svc["spec"]["sessionAffinity"].as_str()), (Some("NodePort"), Some("ClientIP")));
    let _ = std::fs::remove_dir_all(&dir);
}
