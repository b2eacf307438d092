//! The kubectl verbs emu gained for issue 20 (item 3): each compared with what the real kubectl
//! prints against the same cluster over the Kubernetes API (`emu kubeconfig`), where its output
//! is deterministic, else with kubectl's documented format. Each test has a cluster of its own,
//! removed when the test ends, passed or failed.

mod kubectl_support;

use kubectl_support::{cluster, kubectl};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// `emu version` and `emu api-resources` print what kubectl prints: the server's version from
/// the API, the resource types its discovery serves.
#[test]
fn version_and_api_resources() {
    let (c, dir) = cluster("tvkinfo");
    let theirs = kubectl(&dir.0, LIMIT, &["version"]).ok().stdout;
    let ours = c.emu(&["version"]).ok().stdout;
    let server = |t: &str| t.lines().find(|l| l.starts_with("Server Version: ")).map(str::to_string);
    assert_eq!(server(&ours), server(&theirs), "kubectl:\n{theirs}\nemu:\n{ours}");
    assert_eq!(ours, "Client Version: v1.33.0\nServer Version: v1.33.0\n");
    let theirs: serde_json::Value = serde_json::from_str(&kubectl(&dir.0, LIMIT, &["version", "-o", "json"]).ok().stdout).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&c.emu(&["version", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(ours["serverVersion"], theirs["serverVersion"]);
    assert_eq!(c.emu(&["version", "--client"]).ok().stdout, "Client Version: v1.33.0\n");
    let bad = c.emu(&["version", "-o", "wide"]);
    assert_eq!((bad.code, bad.stderr.as_str()), (1, "error: --output must be 'yaml' or 'json'\n"));

    for args in [
        &["api-resources"][..],
        &["api-resources", "-o", "wide"],
        &["api-resources", "-o", "name"],
        &["api-resources", "--namespaced=false"],
        &["api-resources", "--namespaced"],
        &["api-resources", "--api-group=apps"],
        &["api-resources", "--api-group="],
        &["api-resources", "--no-headers"],
    ] {
        let theirs = kubectl(&dir.0, LIMIT, args).ok().stdout;
        assert_eq!(c.emu(args).ok().stdout, theirs, "kubectl {args:?}");
    }
}
