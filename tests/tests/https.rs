//! The tutorial's "Securing the Service" end to end (issue 5), both variants: HTTPS nginx with the
//! Secret mounted at /etc/nginx/ssl, reached with `-k` from a node and with the certificate from
//! the curl pod, where the Service's name matters and its ClusterIP does not match.

use emu_tests::Scratch;
use emu_tests::{emu, Cluster};

/// The section's checks once nginx and the curl pod run; `cert` is the certificate's file name
/// in the Secret volume.
fn check_https(c: &Cluster, cert: &str) {
    c.ready_pods("run=my-nginx", 1);
    c.ready_pods("app=curlpod", 1);
    // The tutorial reads the pod IP this way: `[map[ip:10.244.3.5]]`.
    let column = c.emu(&["get", "pods", "-l", "run=my-nginx", "-o", "custom-columns=POD_IP:.status.podIPs"]).ok().stdout;
    let ip =
        column.lines().nth(1).and_then(|l| l.strip_prefix("[map[ip:")).and_then(|l| l.strip_suffix("]]")).expect("POD_IP row").to_string();

    // `node $ curl -k https://<pod IP>` from every node.
    for node in ["kubernetes-minion-905m", "kubernetes-minion-ljyd"] {
        let page = c.emu(&["ssh", node, "--", "curl", "-sSk", &format!("https://{ip}")]).ok().stdout;
        assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{node}: {page}");
    }
    // The image still serves HTTP on 80, behind the Service's port 8080.
    let http = c.emu(&["exec", "deploy/curl-deployment", "--", "curl", "-sS", "http://my-nginx:8080"]).ok().stdout;
    assert!(http.contains("Welcome to nginx!"), "{http}");

    // From the curl pod, by the Service's name, trusting the certificate: it verifies.
    let cacert = format!("/etc/nginx/ssl/{cert}");
    let page = c.emu(&["exec", "deploy/curl-deployment", "--", "curl", "-sS", "https://my-nginx", "--cacert", &cacert]).ok().stdout;
    assert!(page.contains("<title>Welcome to nginx!</title>"), "{page}");
    // Without it: a self-signed certificate nobody vouches for.
    let r = c.emu(&["exec", "deploy/curl-deployment", "--", "curl", "-sS", "https://my-nginx"]);
    assert_eq!(r.code, 60, "curl's 'peer certificate cannot be authenticated': {}", r.stderr);
    assert!(r.stderr.contains("self-signed certificate"), "{}", r.stderr);
    // By the ClusterIP: the certificate is for my-nginx, not for the address (what -k skips).
    let cluster_ip = c.cluster_ip("my-nginx");
    let r = c.emu(&["exec", "deploy/curl-deployment", "--", "curl", "-sS", &format!("https://{cluster_ip}"), "--cacert", &cacert]);
    assert_eq!(r.code, 60, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("no alternative certificate subject name matches target host name '{cluster_ip}'")), "{}", r.stderr);
    let r = c.emu(&["exec", "deploy/curl-deployment", "--", "curl", "-sSk", &format!("https://{cluster_ip}")]).ok();
    assert!(r.stdout.contains("Welcome to nginx!"));

    // "Exposing the Service": the https node port answers on every node's ExternalIP, also on
    // the node without the nginx pod.
    let node_port = c.emu(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.ports[?(@.name==\"https\")].nodePort}"]).ok().stdout;
    let node_port: u16 = node_port.trim().parse().unwrap_or_else(|_| panic!("https nodePort: {node_port:?}"));
    let nodes: serde_json::Value = serde_json::from_str(&c.emu(&["get", "nodes", "-o", "json"]).ok().stdout).unwrap();
    for n in nodes["items"].as_array().unwrap() {
        let external =
            n["status"]["addresses"].as_array().unwrap().iter().find(|a| a["type"] == "ExternalIP").unwrap()["address"].as_str().unwrap();
        let page = c.emu(&["outside", "--", "curl", "-sSk", "-m", "5", &format!("https://{external}:{node_port}")]).ok().stdout;
        assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{external}:{node_port}: {page}");
    }
}

/// The current tutorial typed command by command: keys, `create secret tls`, the ConfigMap
/// from default.conf, `create -f nginx-secure-app.yaml`, the curl pod.
#[test]
fn tutorial_steps_with_a_tls_secret_and_a_configmap() {
    let dir = Scratch(std::env::temp_dir().join(format!("emu-thttps-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = |f: &str| dir.0.join(f).to_str().unwrap().to_string();
    // Where the section starts: the tutorial's nodes, my-nginx and its Service.
    let c = Cluster::up("thttps", &[&emu_tests::scenario_path("nginx-with-service.yaml")]);
    c.emu(&["delete", "deployments,svc", "my-nginx"]).ok();
    emu(&["gen", "cert", "--cn", "my-nginx", "--key", &path("nginx.key"), "--cert", &path("nginx.crt")]).ok();
    let made = c.emu(&["create", "secret", "tls", "nginxsecret", "--key", &path("nginx.key"), "--cert", &path("nginx.crt")]).ok();
    assert_eq!(made.stdout, "secret/nginxsecret created\n");
    // The seed's `echo "server { … }" >> default.conf`.
    let default_conf = "server {\n        listen 80 default_server;\n        listen [::]:80 default_server ipv6only=on;\n\n        listen 443 ssl;\n\n        \
        root /usr/share/nginx/html;\n        index index.html;\n\n        server_name localhost;\n        ssl_certificate /etc/nginx/ssl/tls.crt;\n        \
        ssl_certificate_key /etc/nginx/ssl/tls.key;\n\n        location / {\n                try_files $uri $uri/ =404;\n        }\n}\n";
    std::fs::write(path("default.conf"), default_conf).unwrap();
    let made = c.emu(&["create", "configmap", "nginxconfigmap", &format!("--from-file={}", path("default.conf"))]).ok();
    assert_eq!(made.stdout, "configmap/nginxconfigmap created\n");
    let made = c.emu(&["create", "-f", &emu_tests::scenario_path("nginx-secure-app.yaml")]).ok();
    assert_eq!(made.stdout, "service/my-nginx created\ndeployment.apps/my-nginx created\n");
    c.emu(&["apply", "-f", &emu_tests::scenario_path("curlpod.yaml")]).ok();
    check_https(&c, "tls.crt");
    // The ConfigMap's default.conf is what nginx runs with, hiding the image's.
    let conf = c.emu(&["exec", "deploy/my-nginx", "--", "cat", "/etc/nginx/conf.d/default.conf"]).ok().stdout;
    assert_eq!(conf, default_conf);
}

#[test]
fn scenario_nginx_secure() {
    let c = Cluster::up("thttpss", &[&emu_tests::scenario_path("nginx-secure.yaml")]);
    check_https(&c, "tls.crt");
    let secrets = c.emu(&["get", "secrets"]).ok().stdout;
    assert!(secrets.lines().any(|l| l.split_whitespace().take(3).eq(["nginxsecret", "kubernetes.io/tls", "2"])), "{secrets}");
}

/// The older variant: an Opaque Secret with nginx.crt/nginx.key and the image's own
/// default.conf.
#[test]
fn scenario_nginx_secure_opaque() {
    let c = Cluster::up("thttpso", &[&emu_tests::scenario_path("nginx-secure-opaque.yaml")]);
    check_https(&c, "nginx.crt");
    let listing = c.emu(&["exec", "deploy/my-nginx", "--", "ls", "/etc/nginx/ssl"]).ok().stdout;
    assert_eq!(listing, "nginx.crt\nnginx.key\n");
    let conf = c.emu(&["exec", "deploy/my-nginx", "--", "cat", "/etc/nginx/conf.d/default.conf"]).ok().stdout;
    assert!(conf.contains("ssl_certificate /etc/nginx/ssl/nginx.crt;"), "{conf}");
}
