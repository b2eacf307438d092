//! Node ports in the API server (issue 6, second part): allocation, what
//! re-applying and changing the type do to them, and Kubernetes' errors, through the real `emu`.

use emu_tests::{name, Cluster};
use serde_json::Value;

/// The tutorial's Service (nginx-secure-app.yaml): http 8080 → 80 and https 443, as `ty`.
fn my_nginx(ty: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: my-nginx\n  labels: {{run: my-nginx}}\nspec:\n  type: {ty}\n  ports:\n  \
         - {{port: 8080, targetPort: 80, protocol: TCP, name: http}}\n  - {{port: 443, protocol: TCP, name: https}}\n  selector: {{run: my-nginx}}\n"
    )
}

/// A one-port Service, with `extra` lines under `spec` (indented two spaces).
fn svc(name: &str, extra: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n{extra}")
}

fn service_json(c: &Cluster, name: &str) -> Value {
    serde_json::from_str(&c.emu(&["get", "svc", name, "-o", "json"]).ok().stdout).unwrap()
}

fn service_names(c: &Cluster) -> Vec<String> {
    let v: Value = serde_json::from_str(&c.emu(&["get", "svc", "-o", "json"]).ok().stdout).unwrap();
    v["items"].as_array().unwrap().iter().map(name).collect()
}

fn node_ports(c: &Cluster, name: &str) -> Vec<u64> {
    service_json(c, name)["spec"]["ports"].as_array().unwrap().iter().map(|p| p["nodePort"].as_u64().unwrap_or(0)).collect()
}

/// The cells of `emu get svc NAME`'s row: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE.
fn row(c: &Cluster, name: &str) -> Vec<String> {
    let table = c.emu(&["get", "svc", name]).ok().stdout;
    table.lines().nth(1).unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

fn in_dynamic_band(p: u64) -> bool {
    (30086..=32767).contains(&p)
}

/// Runs `verb -f` on `yaml` and returns (exit code, stdout, stderr without the final newline).
fn run(c: &Cluster, verb: &str, file: &str, yaml: &str) -> (i32, String, String) {
    let dir = c.scratch_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, yaml).unwrap();
    let r = c.emu(&[verb, "-f", path.to_str().unwrap()]);
    (r.code, r.stdout, r.stderr.trim_end().to_string())
}

#[test]
fn tutorial_node_ports_kept_checked_and_released() {
    let c = Cluster::up("tnodeport1", &["--nodes", "1"]);
    assert_eq!(c.apply("svc.yaml", &my_nginx("NodePort")).ok().stdout, "service/my-nginx created\n");
    let ports = node_ports(&c, "my-nginx");
    assert!(ports.len() == 2 && ports[0] != ports[1] && ports.iter().all(|p| in_dynamic_band(*p)), "{ports:?}");
    let (http, https) = (ports[0], ports[1]);
    // `kubectl get svc my-nginx`: 8080:31704/TCP,443:32453/TCP.
    let cells = row(&c, "my-nginx");
    assert_eq!(&cells[..2], ["my-nginx", "NodePort"]);
    assert_eq!(cells[3..5], ["<none>".to_string(), format!("8080:{http}/TCP,443:{https}/TCP")]);
    // `kubectl get svc my-nginx -o yaml | grep nodePort -C 5`: keys in order within each port.
    let yaml = c.emu(&["get", "svc", "my-nginx", "-o", "yaml"]).ok().stdout;
    let http_port = format!("  - name: http\n    nodePort: {http}\n    port: 8080\n    protocol: TCP\n    targetPort: 80\n");
    let https_port = format!("  - name: https\n    nodePort: {https}\n    port: 443\n    protocol: TCP\n    targetPort: 443\n");
    assert!(yaml.contains(&(http_port + &https_port)), "{yaml}");
    assert!(yaml.contains("  externalTrafficPolicy: Cluster\n") && yaml.contains("  internalTrafficPolicy: Cluster\n"), "{yaml}");
    let first = c.emu(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.ports[0].nodePort}"]).ok().stdout;
    assert_eq!(first, http.to_string());

    // The same manifest again: the node ports stay.
    assert_eq!(c.apply("svc.yaml", &my_nginx("NodePort")).ok().stdout, "service/my-nginx unchanged\n");
    assert_eq!(node_ports(&c, "my-nginx"), [http, https]);

    // A port the user chooses is kept.
    c.apply("fixed.yaml", &svc("fixed", "  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n")).ok();
    assert_eq!(row(&c, "fixed")[4], "80:30080/TCP");

    // Taken, out of range, or on a ClusterIP Service: Kubernetes' messages, nothing changes.
    let names = service_names(&c);
    let before = service_json(&c, "my-nginx");
    let taken_by_update = my_nginx("NodePort").replace("name: http}", "name: http, nodePort: 30080}");
    let cases = [
        (
            svc("grab", "  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n"),
            "The Service \"grab\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
        (
            // Another protocol does not help: Kubernetes allocates node port numbers.
            svc("grab-udp", "  type: NodePort\n  ports: [{port: 53, protocol: UDP, nodePort: 30080}]\n"),
            "The Service \"grab-udp\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
        (
            svc("low", "  type: NodePort\n  ports: [{port: 80, nodePort: 80}]\n"),
            "The Service \"low\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. \
             The range of valid ports is 30000-32767",
        ),
        (
            svc("plain", "  ports: [{port: 80, nodePort: 30081}]\n"),
            "The Service \"plain\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            taken_by_update,
            "The Service \"my-nginx\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
    ];
    for (i, (yaml, want)) in cases.iter().enumerate() {
        for verb in ["apply", "create"] {
            if verb == "create" && yaml.contains("my-nginx") {
                continue;
            }
            let (code, stdout, stderr) = run(&c, verb, &format!("bad-{i}.yaml"), yaml);
            assert_eq!((code, stdout.as_str(), stderr.as_str()), (1, "", *want), "{verb} {yaml}");
        }
    }
    assert_eq!(service_names(&c), names, "no Service was created");
    assert_eq!(service_json(&c, "my-nginx"), before, "my-nginx is unchanged");
    assert_eq!(row(&c, "fixed")[4], "80:30080/TCP");

    // NodePort → LoadBalancer (the tutorial's `kubectl edit`): the ports stay.
    assert_eq!(c.apply("svc.yaml", &my_nginx("LoadBalancer")).ok().stdout, "service/my-nginx configured\n");
    let cells = row(&c, "my-nginx");
    assert_eq!(cells[1..3], ["LoadBalancer".to_string(), before["spec"]["clusterIP"].as_str().unwrap().into()]);
    // EXTERNAL-IP: `<pending>` until the cloud balancer assigns one (within milliseconds).
    assert!(cells[3] == "<pending>" || cells[3].starts_with("203.0.113."), "{cells:?}");
    assert_eq!(cells[4], format!("8080:{http}/TCP,443:{https}/TCP"));

    // → ClusterIP: the node ports (and externalTrafficPolicy) are gone, and free for others.
    assert_eq!(c.apply("svc.yaml", &my_nginx("ClusterIP")).ok().stdout, "service/my-nginx configured\n");
    assert_eq!(row(&c, "my-nginx")[4], "8080/TCP,443/TCP");
    let yaml = c.emu(&["get", "svc", "my-nginx", "-o", "yaml"]).ok().stdout;
    assert!(!yaml.contains("nodePort") && !yaml.contains("externalTrafficPolicy"), "{yaml}");
    c.apply("reuse.yaml", &svc("reuse", &format!("  type: NodePort\n  ports: [{{port: 80, nodePort: {http}}}]\n"))).ok();

    // Back to NodePort: new ones.
    c.apply("svc.yaml", &my_nginx("NodePort")).ok();
    let again = node_ports(&c, "my-nginx");
    assert!(again.iter().all(|p| (30000..=32767).contains(p) && *p != http && *p != 30080) && again[0] != again[1], "{again:?}");
}

#[test]
fn health_check_node_port_and_expose() {
    let c = Cluster::up("tnodeport2", &["--nodes", "1"]);
    // LoadBalancer + externalTrafficPolicy: Local gets a healthCheckNodePort (SVC-15).
    let local = svc("lb-local", "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports: [{port: 80}]\n");
    c.apply("local.yaml", &local).ok();
    let spec = service_json(&c, "lb-local")["spec"].clone();
    let hc = spec["healthCheckNodePort"].as_u64().unwrap_or_else(|| panic!("no healthCheckNodePort: {spec}"));
    let node_port = spec["ports"][0]["nodePort"].as_u64().unwrap();
    assert!(in_dynamic_band(hc) && in_dynamic_band(node_port) && hc != node_port, "{spec}");
    let described = c.emu(&["describe", "svc", "lb-local"]).ok().stdout;
    let line = described.lines().find(|l| l.starts_with("HealthCheck NodePort:")).unwrap_or_else(|| panic!("{described}"));
    assert_eq!(line.split_whitespace().last(), Some(hc.to_string().as_str()), "{described}");
    // Kept when the manifest is applied again.
    assert_eq!(c.apply("local.yaml", &local).ok().stdout, "service/lb-local unchanged\n");
    assert_eq!(service_json(&c, "lb-local")["spec"]["healthCheckNodePort"].as_u64(), Some(hc));
    // Released with the Cluster policy; a NodePort Service never has one.
    c.apply("local.yaml", &local.replace("Local", "Cluster")).ok();
    assert!(service_json(&c, "lb-local")["spec"].get("healthCheckNodePort").is_none());
    c.apply("np.yaml", &svc("np-local", "  type: NodePort\n  externalTrafficPolicy: Local\n  ports: [{port: 80}]\n")).ok();
    assert!(service_json(&c, "np-local")["spec"].get("healthCheckNodePort").is_none());

    // `kubectl expose deployment/my-nginx --type NodePort` allocates one.
    let deployment = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/run-my-nginx.yaml")).unwrap();
    c.apply("deployment.yaml", &deployment).ok();
    assert_eq!(c.emu(&["expose", "deployment/my-nginx", "--type", "NodePort"]).ok().stdout, "service/my-nginx exposed\n");
    let ports = node_ports(&c, "my-nginx");
    assert!(ports.len() == 1 && in_dynamic_band(ports[0]) && ports[0] != node_port, "{ports:?}");
    assert_eq!(&row(&c, "my-nginx")[1..2], ["NodePort"]);
    assert_eq!(row(&c, "my-nginx")[4], format!("80:{}/TCP", ports[0]));
}
