//! Secrets (issue 5, first part): `emu gen cert` in place of the tutorial's `make keys`, and
//! `emu create secret tls` with kubectl's checks.

use emu_tests::Scratch;
use emu_tests::{emu, Cluster};
use std::path::Path;

/// The tutorial's steps: keys, then `create secret tls nginxsecret`; bad input creates nothing.
#[test]
fn gen_cert_and_create_secret_tls() {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-tsecret-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = |f: &str| dir.0.join(f).to_str().unwrap().to_string();
    let (key, cert) = (path("nginx.key"), path("nginx.crt"));
    let made = emu(&["gen", "cert", "--cn", "my-nginx", "--key", &key, "--cert", &cert]).ok();
    assert!(made.stdout.contains("written"), "{}", made.stdout);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the key is for root only");
    // What openssl would tell of it: a CA for my-nginx.
    let text = std::process::Command::new("openssl").args(["x509", "-in", &cert, "-noout", "-text"]).output();
    if let Some(out) = text.ok().filter(|o| o.status.success()) {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CN = my-nginx, O = my-nginx") && text.contains("DNS:my-nginx") && text.contains("CA:TRUE"), "{text}");
    }

    let c = Cluster::up("tsecret", &[]);
    let r = c.emu(&["create", "secret", "tls", "nginxsecret", "--key", &key, "--cert", &cert]).ok();
    assert_eq!(r.stdout, "secret/nginxsecret created\n");
    let secret: serde_json::Value = serde_json::from_str(&c.emu(&["get", "secret", "nginxsecret", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["tls.crt", "tls.key"]);
    let table = c.emu(&["get", "secrets"]).ok().stdout;
    assert!(table.lines().any(|l| l.split_whitespace().take(3).eq(["nginxsecret", "kubernetes.io/tls", "2"])), "{table}");
    let described = c.emu(&["describe", "secret", "nginxsecret"]).ok().stdout;
    let cert_len = std::fs::metadata(&cert).unwrap().len();
    assert!(described.contains(&format!("tls.crt:  {cert_len} bytes")), "{described}");
    assert!(!described.contains("BEGIN"), "values never shown: {described}");

    // Bad input: a clear message, exit 1, nothing created.
    let (other_key, other_cert) = (path("other.key"), path("other.crt"));
    emu(&["gen", "cert", "--cn", "other", "--key", &other_key, "--cert", &other_cert]).ok();
    std::fs::write(path("notes.txt"), "not PEM at all\n").unwrap();
    let (missing, notes) = (path("missing.crt"), path("notes.txt"));
    let cases = [
        (&other_key, &cert, "error: tls: private key does not match public key".to_string()),
        (&key, &missing, format!("error: open {missing}: no such file or directory")),
        (&notes, &cert, "error: tls: failed to find any PEM data in key input".to_string()),
        (&key, &notes, "error: tls: failed to find any PEM data in certificate input".to_string()),
    ];
    for (k, crt, want) in cases {
        let r = c.emu(&["create", "secret", "tls", "bad", "--key", k, "--cert", crt]);
        assert_eq!((r.code, r.stderr.trim_end()), (1, want.as_str()), "--key {k} --cert {crt}");
    }
    let names = c.emu(&["get", "secrets", "-o", "name"]).ok().stdout;
    assert_eq!(names, "secret/nginxsecret\n", "nothing else was created");
    // Again under the same name: the API server's answer.
    let again = c.emu(&["create", "secret", "tls", "nginxsecret", "--key", &key, "--cert", &cert]);
    assert_eq!((again.code, again.stderr.trim_end()), (1, "Error from server (AlreadyExists): secrets \"nginxsecret\" already exists"));
}

/// The seeds' `kubectl create configmap nginxconfigmap --from-file=default.conf`, a directory,
/// literals, and `create secret generic`; bad input creates nothing.
#[test]
fn create_configmap_and_generic_secret() {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-tcm-{}", std::process::id())));
    let conf = dir.0.join("conf");
    std::fs::create_dir_all(conf.join("sub")).unwrap();
    let default_conf = "server {\n    listen 80 default_server;\n}\n";
    std::fs::write(dir.0.join("default.conf"), default_conf).unwrap();
    std::fs::write(conf.join("a.txt"), "A").unwrap();
    std::fs::write(conf.join("b.bin"), [0xffu8, 0x00]).unwrap();
    std::fs::write(conf.join("sub").join("skipped.txt"), "in a subdirectory").unwrap();
    let p = |f: &Path| f.to_str().unwrap().to_string();
    let c = Cluster::up("tconfigmap", &[]);

    let r = c.emu(&["create", "configmap", "nginxconfigmap", &format!("--from-file={}", p(&dir.0.join("default.conf")))]).ok();
    assert_eq!(r.stdout, "configmap/nginxconfigmap created\n");
    let cm: serde_json::Value = serde_json::from_str(&c.emu(&["get", "cm", "nginxconfigmap", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(cm["data"], serde_json::json!({"default.conf": default_conf}));

    c.emu(&[
        "create",
        "cm",
        "mixed",
        &format!("--from-file={}", p(&conf)),
        &format!("--from-file=renamed={}", p(&dir.0.join("default.conf"))),
        "--from-literal=mode=debug",
    ])
    .ok();
    let cm: serde_json::Value = serde_json::from_str(&c.emu(&["get", "configmap", "mixed", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(cm["data"], serde_json::json!({"a.txt": "A", "renamed": default_conf, "mode": "debug"}));
    assert_eq!(cm["binaryData"], serde_json::json!({"b.bin": "/wA="}));
    let table = c.emu(&["get", "configmaps"]).ok().stdout;
    assert!(table.lines().any(|l| l.split_whitespace().take(2).eq(["mixed", "4"])), "{table}");

    c.emu(&["create", "secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=pass=s3cr=t"]).ok();
    let s: serde_json::Value = serde_json::from_str(&c.emu(&["get", "secret", "creds", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!((&s["type"], &s["data"]), (&serde_json::json!("Opaque"), &serde_json::json!({"user": "YWRtaW4=", "pass": "czNjcj10"})));

    let missing = p(&dir.0.join("missing.conf"));
    let dir_with_key = format!("--from-file=x={}", p(&conf));
    let cases = [
        (
            vec!["create", "configmap", "bad", "--from-literal=a b=x"],
            "error: \"a b\" is not a valid key name for a ConfigMap: a valid config key",
        ),
        (
            vec!["create", "configmap", "bad", "--from-literal=k=1", "--from-literal=k=2"],
            "error: cannot add key \"k\", another key by that name already exists in Data for ConfigMap \"bad\"",
        ),
        (vec!["create", "configmap", "bad", "--from-literal=novalue"], "error: invalid literal source novalue, expected key=value"),
        (vec!["create", "secret", "generic", "bad", dir_with_key.as_str()], "error: cannot give a key name for a directory path"),
    ];
    for (args, want) in &cases {
        let r = c.emu(args);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(r.stderr.starts_with(want), "{args:?}: {}", r.stderr);
    }
    let r = c.emu(&["create", "configmap", "bad", &format!("--from-file={missing}")]);
    assert_eq!((r.code, r.stderr.trim_end()), (1, format!("error: stat {missing}: no such file or directory").as_str()));
    let names = c.emu(&["get", "configmaps,secrets", "-o", "name"]).ok().stdout;
    assert!(!names.contains("/bad"), "nothing of the bad commands was created: {names}");
}

/// Every namespace has ConfigMap `kube-root-ca.crt` with the cluster CA, kept there as
/// Kubernetes' root-ca-cert-publisher keeps it.
#[test]
fn every_namespace_has_the_cluster_ca() {
    let c = Cluster::up("trootca", &[]);
    let ca = std::fs::read_to_string(format!("/run/emu/{}/pki/ca.crt", c.name)).unwrap();
    let published = |ns: &str| {
        let r = c.emu(&["get", "configmap", "kube-root-ca.crt", "-n", ns, "-o", "json"]);
        (r.code == 0)
            .then(|| serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["data"]["ca.crt"].as_str().unwrap_or("").to_string())
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(published(ns).as_deref(), Some(ca.as_str()), "{ns}");
    }
    c.apply("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n").ok();
    c.wait_for("the CA in a new namespace", std::time::Duration::from_secs(5), || (published("lab")? == ca).then_some(()));
    // `delete` waits for the object it deleted, not for the name: the controller puts a new one
    // back at once (waiting on the name took until the 2-minute deadline when it won the race).
    let started = std::time::Instant::now();
    c.emu(&["delete", "configmap", "kube-root-ca.crt"]).ok();
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "delete took {:?}", started.elapsed());
    c.wait_for("the CA put back", std::time::Duration::from_secs(5), || (published("default")? == ca).then_some(()));
}

/// Variables from Secrets and ConfigMaps (`valueFrom`, `envFrom`); a pod whose Secret does not
/// exist yet waits in CreateContainerConfigError and starts once it is created; an optional one
/// starts at once.
#[test]
fn container_variables_from_secrets_and_configmaps() {
    let c = Cluster::up("tsecenv", &[]);
    c.emu(&["create", "configmap", "settings", "--from-literal=MODE=debug", "--from-literal=LEVEL=3"]).ok();
    c.emu(&["create", "secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=note=$(MODE) stays"]).ok();
    let pod = |name: &str, secret: &str, optional: bool| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, \"3600\"]\n    envFrom: [{{configMapRef: {{name: settings}}, prefix: APP_}}]\n    env:\n    - {{name: USER, valueFrom: {{secretKeyRef: {{name: {secret}, key: user, optional: {optional}}}}}}}\n    - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: settings, key: MODE}}}}}}\n    - {{name: NOTE, valueFrom: {{secretKeyRef: {{name: {secret}, key: note, optional: true}}}}}}\n    - {{name: SAID, value: \"mode $(MODE)\"}}\n"
        )
    };
    c.apply("env.yaml", &pod("reader", "creds", false)).ok();
    c.ready_pod("reader");
    let env = c.emu(&["exec", "reader", "--", "env"]).ok().stdout;
    // Only literal values are expanded; a Secret's `$(MODE)` stays as written.
    for want in ["USER=admin", "MODE=debug", "APP_MODE=debug", "APP_LEVEL=3", "NOTE=$(MODE) stays", "SAID=mode debug"] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }

    c.apply("late.yaml", &pod("waiter", "late", false)).ok();
    c.apply("optional.yaml", &pod("relaxed", "absent", true)).ok();
    let relaxed = c.emu(&["exec", &emu_tests::name(&c.ready_pod("relaxed")), "--", "env"]).ok().stdout;
    assert!(!relaxed.contains("USER="), "an optional missing key sets nothing: {relaxed}");
    c.wait_for("the waiting pod's reason", std::time::Duration::from_secs(10), || {
        let p = c.pods("").into_iter().find(|p| emu_tests::name(p) == "waiter")?;
        let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (waiting["reason"] == "CreateContainerConfigError" && waiting["message"] == "secret \"late\" not found").then_some(())
    });
    let table = c.emu(&["get", "pod", "waiter"]).ok().stdout;
    assert!(table.contains("CreateContainerConfigError"), "{table}");
    c.emu(&["create", "secret", "generic", "late", "--from-literal=user=later"]).ok();
    c.ready_pod("waiter");
    let env = c.emu(&["exec", "waiter", "--", "env"]).ok().stdout;
    assert!(env.lines().any(|l| l == "USER=later"), "{env}");
}

/// A deleted namespace takes its Secrets, ConfigMaps and Events with it (they were left behind
/// and came back with a namespace of the same name), and Events expire an hour after they last
/// happened, as with kube-apiserver's default --event-ttl.
#[test]
fn namespaces_take_their_objects_and_old_events_expire() {
    let c = Cluster::up("tnsgc", &["--nodes", "1"]);
    c.emu(&["create", "namespace", "lab"]).ok();
    c.emu(&["create", "secret", "generic", "creds", "-n", "lab", "--from-literal=a=b"]).ok();
    c.emu(&["create", "configmap", "conf", "-n", "lab", "--from-literal=a=b"]).ok();
    c.emu(&["delete", "namespace", "lab"]).ok();
    c.emu(&["create", "namespace", "lab"]).ok();
    let names = c.wait_for("the new namespace's own ConfigMap", std::time::Duration::from_secs(10), || {
        let out = c.emu(&["get", "secrets,configmaps", "-n", "lab", "-o", "name"]).stdout;
        out.contains("kube-root-ca.crt").then_some(out)
    });
    assert_eq!(names, "configmap/kube-root-ca.crt\n", "nothing of the old namespace came back");

    let event = |name: &str, at: &str| {
        format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: {name}}}\ninvolvedObject: {{kind: Pod, name: web, namespace: default}}\n\
             reason: Test\nmessage: m\ntype: Normal\nfirstTimestamp: \"{at}\"\nlastTimestamp: \"{at}\"\ncount: 1\n"
        )
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let old = emu_api::time::rfc3339(now - 3601 - 60);
    let fresh = emu_api::time::rfc3339(now - 60);
    c.emu(&["create", "configmap", "tick"]).ok();
    c.apply("events.yaml", &format!("{}---\n{}", event("web.old", &old), event("web.fresh", &fresh))).ok();
    // A deletion has the garbage collector run at once (else within 10 s).
    c.emu(&["delete", "configmap", "tick"]).ok();
    let left = c.wait_for("the old event to expire", std::time::Duration::from_secs(15), || {
        let out = c.emu(&["get", "events", "-o", "name"]).stdout;
        (!out.contains("web.old")).then_some(out)
    });
    assert!(left.contains("event/web.fresh"), "{left}");
}
