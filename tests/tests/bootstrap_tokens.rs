//! Bootstrap tokens (issue 18) end to end: `emu token create`, `list` and `delete` as kubeadm's,
//! the Secret each makes, and the API server's HTTPS endpoint taking a valid token as
//! `system:bootstrap:<id>` while a deleted, malformed, expired or wrong token gets 401. No token's
//! secret part reaches the controller's log.

use emu_logic::bootstrap::Token;
use emu_tests::{require_root, Cluster, Run};
use std::process::Command;
use std::time::Duration;

/// `curl -k` to the cluster's API on the host's 127.0.0.1 with `Authorization: Bearer token`:
/// (HTTP status, body).
fn curl(port: u16, token: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-m", "10", "-X", method, "-w", "\n%{http_code}", "-H", &format!("Authorization: Bearer {token}")]);
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data", body]);
    }
    let r = Run::from(cmd.arg(format!("https://127.0.0.1:{port}{path}")).output().expect("curl"));
    assert_eq!(r.code, 0, "curl {method} {path}: {}", r.stderr);
    let (body, status) = r.stdout.rsplit_once('\n').expect("curl's status line");
    (status.parse().unwrap_or_else(|_| panic!("status {status:?}")), body.to_string())
}

/// Who the API server says `token` is (SelfSubjectReview, `kubectl auth whoami`), or the status
/// it refused with.
fn whoami(port: u16, token: &str) -> Result<serde_json::Value, u16> {
    let review = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    match curl(port, token, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", Some(review)) {
        (201, body) => Ok(serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"]["userInfo"].clone()),
        (status, _) => Err(status),
    }
}

/// The rows of `emu token list` (no header), split on runs of spaces.
fn token_rows(c: &Cluster) -> Vec<String> {
    let out = c.emu(&["token", "list"]).ok().stdout;
    let mut lines = out.lines();
    if let Some(header) = lines.next() {
        assert!(header.starts_with("TOKEN   ") && header.contains("TTL") && header.ends_with("EXTRA GROUPS"), "{out}");
    }
    lines.map(str::to_string).collect()
}

/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum` of `ca`.
fn openssl_ca_hash(ca: &str) -> String {
    let script = format!("openssl x509 -in {ca} -pubkey -noout | openssl pkey -pubin -outform der | sha256sum");
    let r = Run::from(Command::new("sh").args(["-c", &script]).output().unwrap()).ok();
    format!("sha256:{}", r.stdout.split_whitespace().next().unwrap())
}

#[test]
fn bootstrap_tokens_are_made_listed_deleted_and_authenticate_until_then() {
    require_root();
    let c = Cluster::up("tboottok", &["--nodes", "1"]);
    let port: u16 = std::fs::read_to_string(format!("/run/emu/{}/api-port", c.name)).unwrap().trim().parse().unwrap();

    // `emu token create`: only the token, a random one of kubeadm's form.
    let made = c.emu(&["token", "create"]).ok().stdout;
    let random = Token::parse(made.trim_end()).unwrap_or_else(|e| panic!("{made:?}: {e}"));
    assert_eq!(made, format!("{}\n", random.reveal()));
    // A given token, never expiring, with a description; the same again is refused.
    let given = "labtwo.0123456789abcdef";
    assert_eq!(c.emu(&["token", "create", "--ttl", "0", "--description", "the second machine", given]).ok().stdout, format!("{given}\n"));
    let again = c.emu(&["token", "create", given]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("a token with id \"labtwo\" already exists"), "{}", again.stderr);

    // Bad input names the argument and the fix, and makes nothing.
    let bad = c.emu(&["token", "create", "--ttl", "1d"]);
    assert!(bad.code != 0 && bad.stderr.contains("--ttl") && bad.stderr.contains("24h"), "{}", bad.stderr);
    let bad = c.emu(&["token", "create", "LABTWO.0123456789abcdef"]);
    assert!(bad.code != 0 && bad.stderr.contains("[a-z0-9]{6}.[a-z0-9]{16}"), "{}", bad.stderr);
    let bad = c.emu(&["token", "delete", "labtwo", "no-such"]);
    assert!(bad.code != 0 && bad.stderr.contains("invalid argument 2") && bad.stderr.contains("[a-z0-9]{6}"), "{}", bad.stderr);

    // `emu token list`: kubeadm's table, both tokens (the first row carries the header's widths).
    let rows = token_rows(&c);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |id: &str| rows.iter().find(|r| r.starts_with(id)).unwrap_or_else(|| panic!("{id} in {rows:?}")).clone();
    let labtwo: Vec<String> = row("labtwo").split("   ").map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
    assert_eq!(
        labtwo,
        [given, "<forever>", "<never>", "authentication,signing", "the second machine", "system:bootstrappers:kubeadm:default-node-token"]
    );
    let first = row(random.id());
    assert!(first.contains(&format!("{}   23h ", random.reveal())), "a 24h token shows 23h left: {first}");

    // The Secret, as kubeadm stores it.
    let yaml = c.emu(&["get", "secret", "-n", "kube-system", &random.secret_name(), "-o", "yaml"]).ok().stdout;
    for line in [
        "type: bootstrap.kubernetes.io/token",
        "usage-bootstrap-authentication: dHJ1ZQ==",
        "usage-bootstrap-signing: dHJ1ZQ==",
        "auth-extra-groups: c3lzdGVtOmJvb3RzdHJhcHBlcnM6a3ViZWFkbTpkZWZhdWx0LW5vZGUtdG9rZW4=",
        "namespace: kube-system",
    ] {
        assert!(yaml.contains(line), "{line} in\n{yaml}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&c.emu(&["get", "secret", "-n", "kube-system", &random.secret_name(), "-o", "json"]).ok().stdout).unwrap();
    let data = |key: &str| {
        use base64::Engine as _;
        let text = json["data"][key].as_str().unwrap_or_else(|| panic!("data.{key} in {json}"));
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
    };
    assert_eq!(format!("{}.{}", data("token-id"), data("token-secret")), random.reveal());
    let expires = emu_api::time::parse_rfc3339(&data("expiration")).expect("RFC 3339 expiration");
    assert!((expires - emu_api::time::now() - 24 * 3600).abs() < 120, "{}", data("expiration"));
    assert!(data("expiration").ends_with('Z'));

    // `--print-join-command`: the join command when the control plane has a join listener, else a
    // message saying how to get one, and no token made.
    let join = c.emu(&["token", "create", "--print-join-command"]);
    if join.code == 0 {
        let words: Vec<&str> = join.stdout.split_whitespace().collect();
        assert_eq!(
            (words.len(), words[0], words[1], words[3], words[5]),
            (7, "emu", "join", "--token", "--discovery-token-ca-cert-hash"),
            "{}",
            join.stdout
        );
        Token::parse(words[4]).unwrap();
        assert_eq!(words[6], openssl_ca_hash(&format!("/run/emu/{}/pki/ca.crt", c.name)));
        c.emu(&["token", "delete", words[4]]).ok();
    } else {
        assert!(join.stderr.contains("no join listener") && join.stderr.contains("--advertise-address"), "{}", join.stderr);
        assert_eq!(token_rows(&c).len(), 2);
    }

    // A valid token authenticates as its bootstrap user over HTTPS...
    let user = whoami(port, &random.reveal()).expect("the token authenticates");
    assert_eq!(user["username"], format!("system:bootstrap:{}", random.id()));
    assert_eq!(
        user["groups"],
        serde_json::json!(["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:authenticated"])
    );
    // ... who may not read pods (403, not 401: authenticated, not authorized).
    let (status, body) = curl(port, &random.reveal(), "GET", "/api/v1/namespaces/default/pods", None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(&format!("User \\\"system:bootstrap:{}\\\"", random.id())), "{body}");
    assert!(whoami(port, given).is_ok());

    // A wrong secret part, a malformed token: 401.
    assert_eq!(whoami(port, &format!("{}.zzzzzzzzzzzzzzzz", random.id())), Err(401));
    assert_eq!(whoami(port, "labtwo.0123456789abcde"), Err(401));
    assert_eq!(whoami(port, "nosuch.0123456789abcdef"), Err(401));

    // Tokens made by hand with `emu apply`: one expired (401, then the tokencleaner deletes its
    // Secret) and one still valid (so the 401 is the expiration's).
    let secret = |id: &str, expiration: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: bootstrap-token-{id}, namespace: kube-system}}\ntype: bootstrap.kubernetes.io/token\n\
             stringData: {{token-id: {id}, token-secret: 0123456789abcdef, expiration: \"{expiration}\", usage-bootstrap-authentication: \"true\"}}\n"
        )
    };
    let later = emu_api::time::rfc3339(emu_api::time::now() + 3600);
    c.apply("tokens.yaml", &format!("{}---\n{}", secret("expird", "2020-01-01T00:00:00Z"), secret("byhand", &later))).ok();
    assert_eq!(whoami(port, "expird.0123456789abcdef"), Err(401));
    assert_eq!(whoami(port, "byhand.0123456789abcdef").unwrap()["username"], "system:bootstrap:byhand");
    c.wait_for("the expired token's Secret deleted", Duration::from_secs(10), || {
        let r = c.emu(&["get", "secret", "-n", "kube-system", "bootstrap-token-expird"]);
        (r.code != 0 && r.stderr.contains("NotFound")).then_some(())
    });

    // Deleted, by whole token and by id: kubeadm's line each, then 401.
    assert_eq!(
        c.emu(&["token", "delete", &random.reveal(), "byhand"]).ok().stdout,
        format!("bootstrap token \"{}\" deleted\nbootstrap token \"byhand\" deleted\n", random.id())
    );
    assert_eq!(whoami(port, &random.reveal()), Err(401));
    let gone = c.emu(&["token", "delete", random.id()]);
    assert!(gone.code != 0 && gone.stderr.contains("no such token"), "{}", gone.stderr);
    assert_eq!(token_rows(&c).len(), 1);
    c.emu(&["token", "delete", "labtwo"]).ok();
    assert_eq!(c.emu(&["token", "list"]).ok().stdout, "", "no token: nothing printed, as kubeadm");

    // No secret part ever reached the controller's log.
    let log = std::fs::read_to_string(format!("/run/emu/{}/controller.log", c.name)).unwrap();
    for secret in [&random.reveal()[7..], "0123456789abcdef"] {
        assert!(!log.contains(secret), "a token's secret in controller.log");
    }
}
