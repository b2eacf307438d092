//! The kubeconfig `emu up` writes (issue 17): kubectl, run by a user other than root, reaches the
//! cluster's API on the host's 127.0.0.1 with it; the context is current and the file 0600;
//! others' entries stay; `emu kubeconfig` prints the same cluster; the port survives a controller
//! restart; `emu down` takes the entries out again.

use emu_tests::Scratch;
use emu_tests::{emu, emu_path, require_root, Cluster, Run};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The unprivileged user kubectl runs as (nobody).
const NOBODY: u32 = 65534;

/// `emu ARGS` with `KUBECONFIG=kubeconfig`.
fn emu_with(kubeconfig: &Path, args: &[&str]) -> Run {
    Run::from(Command::new(emu_path()).args(args).env_remove("EMU_CLUSTER").env("KUBECONFIG", kubeconfig).output().expect("running emu"))
}

/// `kubectl --kubeconfig FILE ARGS` as root (for reading the file as kubectl does).
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Run {
    Run::from(Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).env_remove("KUBECONFIG").output().expect("kubectl"))
}

/// kubectl as nobody, with a copy of `kubeconfig` that nobody owns in a home of its own under
/// `dir`: what a user does after `sudo emu up`, without sudo.
fn kubectl_as_nobody(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    let home = dir.join("nobody");
    std::fs::create_dir_all(&home).unwrap();
    let copy = home.join("config");
    std::fs::copy(kubeconfig, &copy).unwrap();
    for p in [&home, &copy] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let ids = [format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()];
    Run::from(
        Command::new("setpriv")
            .args(ids)
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&copy)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .output()
            .expect("setpriv kubectl"),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn server_of(kubeconfig: &Path, context: &str) -> String {
    kubectl(kubeconfig, &["config", "view", "-o", &format!("jsonpath={{.clusters[?(@.name==\"{context}\")].cluster.server}}")]).ok().stdout
}

/// The version JSON kubectl prints for `get --raw /version`, checked for the cluster's version.
fn assert_version(r: &Run) {
    assert_eq!(r.code, 0, "kubectl get --raw /version failed\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(v["gitVersion"], emu_logic::cluster::KUBERNETES_VERSION, "{v}");
}

#[test]
fn kubectl_without_root_reaches_the_cluster_through_the_kubeconfig_emu_up_writes() {
    require_root();
    let name = "tkubecfg";
    let context = "emu-tkubecfg";
    let dir = Scratch(std::env::temp_dir().join(format!("emu-tkubecfg-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Someone's kubeconfig with another cluster in it, and a field emu does not know.
    let file = dir.0.join("config");
    let other = "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: other\n  cluster: {server: 'https://192.0.2.1:6443'}\n\
        users:\n- name: other\n  user: {token: secret}\ncontexts:\n- name: other\n  context: {cluster: other, user: other, namespace: dev}\n\
        extensions: [{name: mine, extension: {kept: true}}]\n";
    std::fs::write(&file, other).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    emu(&["down", "--cluster", name]);
    let c = Cluster { name: name.to_string() };
    let up = emu_with(&file, &["up", "--cluster", name, "--nodes", "1"]);
    assert_eq!(up.code, 0, "emu up failed\nstdout:\n{}\nstderr:\n{}\n{}", up.stdout, up.stderr, c.logs());
    assert!(up.stdout.contains(&format!("Set kubectl context to \"{context}\"\n")), "{}", up.stdout);
    assert!(up.stdout.contains(&format!("kubectl cluster-info --context {context}\n")), "{}", up.stdout);

    // The file: 0600 (it holds a key), the context current, the other cluster's entries kept.
    assert_eq!(mode(&file), 0o600);
    assert!(!dir.0.join("config.lock").exists());
    assert_eq!(kubectl(&file, &["config", "current-context"]).ok().stdout, format!("{context}\n"));
    // (kubectl lists contexts sorted by name.)
    assert_eq!(kubectl(&file, &["config", "get-contexts", "-o", "name"]).ok().stdout, format!("{context}\nother\n"));
    let kept = kubectl(
        &file,
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[?(@.name==\"other\")].user.token} {.contexts[?(@.name==\"other\")].context.namespace}",
        ],
    );
    assert_eq!(kept.ok().stdout, "secret dev");
    assert!(std::fs::read_to_string(&file).unwrap().contains("kept: true"));
    let port: u16 = std::fs::read_to_string(format!("/run/emu/{name}/api-port")).unwrap().trim().parse().unwrap();
    assert_eq!(server_of(&file, context), format!("https://127.0.0.1:{port}"));

    // kubectl as nobody, checking the server against the cluster CA: the version of the cluster.
    assert_version(&kubectl_as_nobody(&dir.0, &file, &["get", "--raw", "/version"]));

    // `emu kubeconfig` prints the same cluster (server and CA), with a client certificate.
    let printed = dir.0.join("printed");
    std::fs::write(&printed, emu_with(&file, &["kubeconfig", "--cluster", name]).ok().stdout).unwrap();
    assert_eq!(kubectl(&printed, &["config", "get-contexts", "-o", "name"]).ok().stdout, format!("{context}\n"));
    assert_eq!(server_of(&printed, context), format!("https://127.0.0.1:{port}"));
    let ca = |f: &Path| {
        kubectl(
            f,
            &[
                "config",
                "view",
                "--raw",
                "-o",
                &format!("jsonpath={{.clusters[?(@.name==\"{context}\")].cluster.certificate-authority-data}}"),
            ],
        )
        .ok()
        .stdout
    };
    assert_eq!(ca(&printed), ca(&file));
    let cert = kubectl(&printed, &["config", "view", "--raw", "-o", "jsonpath={.users[0].user.client-certificate-data}"]).ok().stdout;
    assert!(!cert.is_empty());
    assert_version(&kubectl(&printed, &["get", "--raw", "/version"]));

    // A restarted controller serves on the same port: the kubeconfig stays valid.
    let restart = emu_with(&file, &["restart", "controller", "--cluster", name]).ok();
    assert!(!restart.stderr.contains("warning"), "{}", restart.stderr);
    assert_eq!(std::fs::read_to_string(format!("/run/emu/{name}/api-port")).unwrap().trim(), port.to_string());
    assert_version(&kubectl_as_nobody(&dir.0, &file, &["get", "--raw", "/version"]));

    // `emu down` takes out the three entries, and only them; no context is current then.
    emu_with(&file, &["down", "--cluster", name]).ok();
    assert_eq!(kubectl(&file, &["config", "get-contexts", "-o", "name"]).ok().stdout, "other\n");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(context) && text.contains("current-context: \"\"\n"), "{text}");
    assert!(text.contains("kept: true"), "{text}");
    assert_eq!(mode(&file), 0o600);
    drop(c);
}

/// As kind: a kubeconfig emu cannot read fails `emu up`, saying which file and what to do, and
/// leaves the file as it was; the cluster stays up for `emu` (and `emu down`).
#[test]
fn a_broken_kubeconfig_fails_up_and_is_left_alone() {
    require_root();
    let name = "tkubebad";
    let dir = Scratch(std::env::temp_dir().join(format!("emu-tkubebad-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("config");
    std::fs::write(&file, "clusters: {oops\n").unwrap();
    emu(&["down", "--cluster", name]);
    let c = Cluster { name: name.to_string() };
    let up = emu_with(&file, &["up", "--cluster", name, "--nodes", "1"]);
    assert_eq!(up.code, 1, "stdout:\n{}\nstderr:\n{}", up.stdout, up.stderr);
    assert!(up.stderr.contains(&format!("kubeconfig {}: not valid YAML", file.display())), "{}", up.stderr);
    assert!(up.stderr.contains("sudo emu kubeconfig --merge --cluster tkubebad"), "{}", up.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "clusters: {oops\n");
    // The cluster itself is up.
    assert!(c.emu(&["get", "nodes"]).ok().stdout.contains("Ready"));
    // Fixed (here: another file), the context is written without a new cluster.
    let fixed = dir.0.join("fixed");
    let merged = emu_with(&fixed, &["kubeconfig", "--merge", "--cluster", name]).ok();
    assert!(merged.stdout.contains("Set kubectl context to \"emu-tkubebad\""), "{}", merged.stdout);
    assert_eq!(kubectl(&fixed, &["config", "current-context"]).ok().stdout, "emu-tkubebad\n");
    drop(c);
}
