//! The tutorial "Connecting Applications with Services" typed as the seeds type it, every
//! command, with the real kubectl 1.32, the one on PATH (1.33 here) and 1.37
//! (scripts/test-tools), as an unprivileged user (nobody) in a shell, pipes and all (`kubectl get
//! … -o yaml | grep podIP`), with `kubectl run curl -i --tty` on a terminal of the test's own;
//! then the other commands issue 17's acceptance lists, with each kubectl too: create secret tls,
//! create configmap, patch, apply --server-side, auth can-i, logs -f, port-forward, cp, get pods
//! -w seeing a new pod, delete --wait.
//!
//! The seed makes its certificate with openssl and writes `nginxsecrets.yaml` by hand (an Opaque
//! Secret with `nginx.crt` and `nginx.key`); here rcgen makes the certificate and the file is
//! written the same way. Its `nginx-secure-app.yaml` is scenarios/nginx-secure-app-opaque.yaml
//! (the seed's text: no ConfigMap), and its curl client scenarios/curlpod.yaml.

mod test_tools;

use base64::Engine;
use emu_tests::terminal::Terminal;
use emu_tests::{Cluster, Run, Scratch};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NOBODY: u32 = 65534;
const LIMIT: Duration = Duration::from_secs(60);

/// nobody's home: the kubeconfig, the manifests, and `bin/kubectl`, the kubectl under test.
struct Home {
    dir: PathBuf,
    _root: Scratch,
}

impl Home {
    fn new(name: &str, kubeconfig: &str, kubectl: &Path) -> Home {
        let root = Scratch(std::env::temp_dir().join(format!("emu-{name}-{}", std::process::id())));
        let dir = root.0.join("home");
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::set_permissions(&root.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(kubectl, dir.join("bin/kubectl")).unwrap();
        let home = Home { dir, _root: root };
        home.write(".kube/config", kubeconfig);
        for (file, scenario) in [
            ("run-my-nginx.yaml", "run-my-nginx.yaml"),
            ("nginx-secure-app.yaml", "nginx-secure-app-opaque.yaml"),
            ("curlpod.yaml", "curlpod.yaml"),
        ] {
            home.write(file, &std::fs::read_to_string(emu_tests::scenario_path(scenario)).unwrap());
        }
        // "make keys secret": a key pair for CN my-nginx, base64 in an Opaque Secret's data.
        let mut params = rcgen::CertificateParams::new(vec!["my-nginx".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "my-nginx");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "my-nginx");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
        home.write(
            "nginxsecrets.yaml",
            &format!(
                "apiVersion: \"v1\"\nkind: \"Secret\"\nmetadata:\n  name: \"nginxsecret\"\n  namespace: \"default\"\ndata:\n  nginx.crt: \"{}\"\n  nginx.key: \"{}\"\n",
                b64(cert.pem()),
                b64(key.serialize_pem())
            ),
        );
        // The same pair as files, for `kubectl create secret tls`.
        home.write("tls.crt", &cert.pem());
        home.write("tls.key", &key.serialize_pem());
        home.write("ssa.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tut-ssa\ndata:\n  mode: server-side\n");
        home.write("edit-to-loadbalancer", "#!/bin/sh\nsed -i 's/type: NodePort/type: LoadBalancer/' \"$1\"\n");
        std::fs::set_permissions(home.dir.join("edit-to-loadbalancer"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown").args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(&home.dir).status().unwrap();
        assert!(chown.success());
        home
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `line` in nobody's shell, in their home, with their kubeconfig and the kubectl under test.
    fn command(&self, line: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()])
            .args(["sh", "-c", line])
            .current_dir(&self.dir)
            .env_clear()
            .env("HOME", &self.dir)
            .env("PATH", format!("{}:/usr/bin:/bin", self.dir.join("bin").display()))
            .env("KUBE_EDITOR", self.dir.join("edit-to-loadbalancer"));
        cmd
    }

    /// `line` to its end, which must succeed: its standard output.
    fn sh(&self, line: &str) -> String {
        let mut cmd = Command::new("timeout");
        let inner = self.command(line);
        cmd.args(["-s", "KILL", &LIMIT.as_secs().to_string()]).arg(inner.get_program()).args(inner.get_args());
        cmd.current_dir(&self.dir).env_clear().envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
        let r = Run::from(cmd.output().expect("running a shell as nobody"));
        assert_eq!(r.code, 0, "{line}\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
        r.stdout
    }
}

/// The seed's walkthrough against a cluster of its own, with the kubectl at `kubectl`, of
/// `version` (`v1.32.`); `deleted` is how this kubectl says it deleted an object (1.37 adds the
/// namespace).
fn walkthrough(cluster: &str, kubectl: &Path, version: &str, deleted: &str) {
    let c = Cluster::up(cluster, &[]);
    let home = Home::new(cluster, &c.emu(&["kubeconfig"]).ok().stdout, kubectl);
    let client = home.sh("kubectl version --client");
    assert!(client.starts_with(&format!("Client Version: {version}")), "{client}");

    // Exposing pods to the cluster.
    assert_eq!(home.sh("kubectl apply -f ./run-my-nginx.yaml"), "deployment.apps/my-nginx created\n");
    let pods = c.ready_pods("run=my-nginx", 2);
    let ips: Vec<String> = pods.iter().map(emu_tests::pod_ip).collect();
    let wide = home.sh("kubectl get pods -l run=my-nginx -o wide");
    assert!(ips.iter().all(|ip| wide.contains(&format!(" {ip} "))) && wide.matches(" Running ").count() == 2, "{wide}");
    let grep = home.sh("kubectl get pods -l run=my-nginx -o yaml | grep podIP");
    assert!(ips.iter().all(|ip| grep.contains(&format!("podIP: {ip}\n"))), "{grep}");
    // The tutorial's own way to show the pods' IPs.
    let columns = home.sh("kubectl get pods -l run=my-nginx -o custom-columns=POD_IP:.status.podIPs");
    assert!(columns.starts_with("POD_IP\n") && ips.iter().all(|ip| columns.contains(&format!("[map[ip:{ip}]]\n"))), "{columns}");

    // Creating a Service.
    assert_eq!(home.sh("kubectl expose deployment/my-nginx"), "service/my-nginx exposed\n");
    let vip = c.cluster_ip("my-nginx");
    let svc = home.sh("kubectl get svc my-nginx");
    assert!(svc.starts_with("NAME       TYPE        CLUSTER-IP") && svc.contains(&format!("my-nginx   ClusterIP   {vip} ")), "{svc}");
    c.wait_for("both endpoints", LIMIT, || {
        let ep = c.emu(&["get", "ep", "my-nginx"]).ok().stdout;
        ips.iter().all(|ip| ep.contains(&format!("{ip}:80"))).then_some(())
    });
    let described = home.sh("kubectl describe svc my-nginx");
    assert!(described.lines().any(|l| l.starts_with("Endpoints:") && ips.iter().all(|ip| l.contains(&format!("{ip}:80")))), "{described}");
    // Endpoints are deprecated since 1.33: kube-apiserver's warning, as kubectl prints it.
    let ep = home.sh("kubectl get ep my-nginx 2>&1");
    assert!(ep.starts_with("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\n"), "{ep}");
    assert!(ips.iter().all(|ip| ep.contains(&format!("{ip}:80"))), "{ep}");

    // Accessing the Service: environment variables, before and after the pods are replaced.
    let env = home.sh(&format!("kubectl exec {} -- printenv | grep SERVICE", emu_tests::name(&pods[0])));
    assert!(env.contains("KUBERNETES_SERVICE_HOST=10.96.0.1\n") && !env.contains("MY_NGINX"), "{env}");
    let scaled = home.sh("kubectl scale deployment my-nginx --replicas=0; kubectl scale deployment my-nginx --replicas=2;");
    assert_eq!(scaled, "deployment.apps/my-nginx scaled\ndeployment.apps/my-nginx scaled\n");
    c.wait_for("the old pods gone", LIMIT, || c.pods("run=my-nginx").iter().all(|p| !ips.contains(&emu_tests::pod_ip(p))).then_some(()));
    let pods = c.ready_pods("run=my-nginx", 2);
    home.sh("kubectl get pods -l run=my-nginx -o wide");
    let env = home.sh(&format!("kubectl exec {} -- printenv | grep SERVICE", emu_tests::name(&pods[0])));
    assert!(env.contains(&format!("MY_NGINX_SERVICE_HOST={vip}\n")) && env.contains("MY_NGINX_SERVICE_PORT=80\n"), "{env}");

    // DNS: the cluster's DNS Service, and a client pod's shell resolving the Service's name.
    let dns = home.sh("kubectl get services kube-dns --namespace=kube-system");
    assert!(
        dns.lines().nth(1).is_some_and(|l| l.starts_with("kube-dns   ClusterIP   10.96.0.10   <none>        53/UDP,53/TCP,9153/TCP")),
        "{dns}"
    );
    let mut term = Terminal::start(home.command("kubectl run curl --image=radial/busyboxplus:curl -i --tty"), 24, 80);
    term.expect("If you don't see a command prompt, try pressing enter.", LIMIT);
    term.type_keys("\r");
    term.expect("# ", LIMIT);
    term.type_keys("nslookup my-nginx\r");
    term.expect(&format!("Name:\tmy-nginx.default.svc.cluster.local\r\nAddress: {vip}\r\n"), LIMIT);
    term.type_keys("exit\r");
    term.expect("Session ended, resume using 'kubectl attach curl -c curl", LIMIT);
    assert_eq!(term.wait(LIMIT), 0, "{}", term.shown());

    // Securing the Service: the Secret, the HTTPS nginx, a client that trusts the certificate.
    assert_eq!(home.sh("kubectl apply -f nginxsecrets.yaml"), "secret/nginxsecret created\n");
    let secrets = home.sh("kubectl get secrets");
    assert!(secrets.lines().any(|l| l.starts_with("nginxsecret   Opaque   2 ")), "{secrets}");
    let replaced = home.sh("kubectl delete deployments,svc my-nginx; kubectl create -f ./nginx-secure-app.yaml");
    assert_eq!(
        replaced,
        format!("deployment.apps \"my-nginx\" {deleted}\nservice \"my-nginx\" {deleted}\nservice/my-nginx created\ndeployment.apps/my-nginx created\n")
    );
    let secure = c.ready_pods("run=my-nginx", 1);
    let grep = home.sh("kubectl get pods -o yaml | grep -i podip");
    assert!(grep.contains(&format!("podIP: {}\n", emu_tests::pod_ip(&secure[0]))), "{grep}");
    assert_eq!(home.sh("kubectl apply -f ./curlpod.yaml"), "deployment.apps/curl-deployment created\n");
    let curlpod = c.ready_pods("app=curlpod", 1);
    assert!(home.sh("kubectl get pods -l app=curlpod").contains(" Running "));
    let page =
        home.sh(&format!("kubectl exec {} -- curl -s https://my-nginx --cacert /etc/nginx/ssl/nginx.crt", emu_tests::name(&curlpod[0])));
    assert!(page.contains("Welcome to nginx!"), "{page}");
    // The same page through the API server's proxy, which speaks TLS to the pod (`https:`).
    let proxied = home.sh("kubectl get --raw /api/v1/namespaces/default/services/https:my-nginx:443/proxy/");
    assert!(proxied.contains("Welcome to nginx!"), "{proxied}");

    // Exposing the Service: its node port, the nodes' external addresses, then a load balancer.
    let node_port = home.sh("kubectl get svc my-nginx -o yaml | grep nodePort -C 5");
    assert!(node_port.matches("nodePort: 3").count() == 2 && node_port.contains("port: 443"), "{node_port}");
    let external = home.sh("kubectl get nodes -o yaml | grep ExternalIP -C 1");
    assert!(external.contains("address: 198.51.100.") && external.contains("type: ExternalIP"), "{external}");
    assert_eq!(home.sh("kubectl edit svc my-nginx"), "service/my-nginx edited\n");
    let balanced = c.wait_for("a load balancer's address", LIMIT, || {
        let svc = home.sh("kubectl get svc my-nginx");
        svc.lines().nth(1).filter(|l| l.contains(" LoadBalancer ") && !l.contains("<pending>")).map(str::to_string)
    });
    assert!(balanced.contains(" 8080:3") && balanced.contains(",443:3"), "{balanced}");
    let described = home.sh("kubectl describe service my-nginx");
    assert!(described.lines().any(|l| l.starts_with("LoadBalancer Ingress:")), "{described}");

    // The other commands a user of the tutorial types, with this kubectl too.
    assert_eq!(home.sh("kubectl create secret tls tut-tls --cert=tls.crt --key=tls.key"), "secret/tut-tls created\n");
    assert_eq!(home.sh("kubectl create configmap tut-cm --from-literal=a=b"), "configmap/tut-cm created\n");
    assert_eq!(home.sh("kubectl patch configmap tut-cm -p '{\"data\":{\"a\":\"c\"}}'"), "configmap/tut-cm patched\n");
    assert_eq!(home.sh("kubectl get configmap tut-cm -o jsonpath='{.data.a}'"), "c");
    assert_eq!(home.sh("kubectl apply --server-side -f ssa.yaml"), "configmap/tut-ssa serverside-applied\n");
    assert_eq!(home.sh("kubectl auth can-i list pods"), "yes\n");
    let secure_pod = emu_tests::name(&secure[0]);
    let logs = home.sh(&format!("timeout 3 kubectl logs -f {secure_pod}; true"));
    assert!(logs.contains("\"GET / HTTP/1.1\" 200"), "{logs}");
    let forwarded = home.sh(&format!(
        "kubectl port-forward pod/{secure_pod} :443 > forward.out & sleep 2; \
         port=$(sed -n 's/^Forwarding from 127.0.0.1:\\([0-9]*\\).*/\\1/p' forward.out); \
         curl -sk https://127.0.0.1:$port/; kill $!"
    ));
    assert!(forwarded.contains("Welcome to nginx!"), "{forwarded}");
    let curl_pod = emu_tests::name(&curlpod[0]);
    home.sh(&format!("echo hello > greeting.txt && kubectl cp greeting.txt {curl_pod}:/tmp/greeting.txt && kubectl cp {curl_pod}:/tmp/greeting.txt back.txt"));
    assert_eq!(home.sh("cat back.txt"), "hello\n");
    let watched = home.sh("(sleep 1; kubectl run tut-w --image=busybox -- sleep 3600 > /dev/null) & timeout 5 kubectl get pods -w; true");
    assert!(watched.lines().any(|l| l.starts_with("tut-w ")), "get pods -w sees the new pod\n{watched}");
    // (`sleep` as pid 1 ignores SIGTERM: the grace period would be waited out whole.)
    assert_eq!(home.sh("kubectl delete pod tut-w --wait --grace-period=1"), format!("pod \"tut-w\" {deleted}\n"));
}

/// kubectl 1.32: Google Cloud SDK's (this machine's kubectl is the SDK's newest, 1.33, which
/// also keeps 1.27 to 1.33 beside it).
const KUBECTL_132: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";

#[test]
fn the_tutorial_with_kubectl_132_as_nobody() {
    assert!(Path::new(KUBECTL_132).exists(), "kubectl 1.32 is missing: {KUBECTL_132} (google-cloud-sdk's kubectl packages)");
    walkthrough("ktut132", Path::new(KUBECTL_132), "v1.32.", "deleted");
}

#[test]
fn the_tutorial_with_the_kubectl_on_path_as_nobody() {
    let on_path = ["/usr/local/bin/kubectl", "/usr/bin/kubectl"].into_iter().find(|p| Path::new(p).exists()).expect("kubectl on PATH");
    walkthrough("ktut133", Path::new(on_path), "v1.3", "deleted");
}

#[test]
fn the_tutorial_with_kubectl_137_as_nobody() {
    walkthrough("ktut137", &test_tools::kubectl(), "v1.37.", "deleted from default namespace");
}
