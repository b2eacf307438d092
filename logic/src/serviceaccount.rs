//! Service-account API access (VOL-8): the projected volume `kube-api-access-<5 chars>` that the
//! ServiceAccount admission plugin gives every pod (a bound token, the cluster CA, the
//! namespace) mounted read-only at `/var/run/secrets/kubernetes.io/serviceaccount`, and the bound
//! token itself: a JWT as kube-apiserver's TokenRequest issues it. Signing and checking the
//! signature are the API server's; this module builds and reads the token's parts.

use base64::Engine as _;
use serde_json::{json, Value};

/// Where every container finds the token, `ca.crt` and `namespace`.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume's name before its five random characters.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The token's lifetime kube-apiserver gives the admission's volume (an hour and 7 s).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The token's issuer and audience: kube-apiserver's defaults under kubeadm.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The pod's API-access volume, if it has one (its name).
pub fn api_access_volume(pod: &Value) -> Option<&str> {
    pod["spec"]["volumes"].as_array()?.iter().filter_map(|v| v["name"].as_str()).find(|n| n.starts_with(VOLUME_PREFIX))
}

/// Whether the ServiceAccount admission plugin gives `pod` API access: as its own
/// `automountServiceAccountToken` says, else as its account's (`account`, the ServiceAccount
/// object when there is one), else yes. The pod's setting wins over the account's.
pub fn automounts(pod: &Value, account: Option<&Value>) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account.and_then(|a| a["automountServiceAccountToken"].as_bool()))
        .unwrap_or(true)
}

/// What the ServiceAccount admission plugin adds to a new pod: the projected volume named
/// `kube-api-access-<suffix>` and a read-only mount of it in every container and init
/// container that has nothing mounted at [`MOUNT_PATH`]. Nothing when the pod opts out
/// (`automountServiceAccountToken: false`) or has such a volume already.
pub fn add_api_access(pod: &mut Value, suffix: &str) {
    if pod["spec"]["automountServiceAccountToken"] == json!(false) {
        return;
    }
    // The volume once; the mounts wherever missing (an update's containers come from the
    // user's manifest, the volumes may be the live ones).
    let name = match api_access_volume(pod) {
        Some(name) => name.to_string(),
        None => {
            let name = format!("{VOLUME_PREFIX}{suffix}");
            let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}});
            match pod["spec"]["volumes"].as_array_mut() {
                Some(list) => list.push(volume),
                None => pod["spec"]["volumes"] = json!([volume]),
            }
            name
        }
    };
    let spec = &mut pod["spec"];
    for field in ["initContainers", "containers"] {
        for c in spec[field].as_array_mut().into_iter().flatten() {
            let mounted = c["volumeMounts"].as_array().is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == MOUNT_PATH));
            if mounted {
                continue;
            }
            let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
            match c["volumeMounts"].as_array_mut() {
                Some(list) => list.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
        }
    }
}

/// An update of a pod keeps the volume admission gave it: the user's manifest does not list it,
/// and a pod's spec cannot change.
pub fn keep_api_access(live: &Value, desired: &mut Value) {
    if let Some(name) = api_access_volume(live) {
        let suffix = name[VOLUME_PREFIX.len()..].to_string();
        add_api_access(desired, &suffix);
    }
}

/// The service account every namespace has, which kube-controller-manager creates.
pub const DEFAULT_ACCOUNT: &str = "default";

/// The service account kube-apiserver's ServiceAccount admission looks up for a new pod
/// (`spec.serviceAccountName`, once defaulted), if it must exist: any but `default`. The
/// plugin checks `default` too, but kube-controller-manager makes it a moment after its
/// namespace, and a pod created in that moment (a namespace and its pods applied together)
/// would be refused for a race the user cannot see; emu lets it through.
pub fn account_to_look_up(pod: &Value) -> Option<&str> {
    let name = pod["spec"]["serviceAccountName"].as_str().filter(|n| !n.is_empty())?;
    (name != DEFAULT_ACCOUNT).then_some(name)
}

/// The admission's refusal of a pod whose account does not exist (a 403, `admission.NewForbidden`):
/// the pod is named as the request names it, by its generateName before a name is generated.
pub fn account_not_found(pod: &Value, account: &str) -> String {
    let meta = &pod["metadata"];
    let name = [&meta["name"], &meta["generateName"]].into_iter().filter_map(Value::as_str).find(|n| !n.is_empty()).unwrap_or("Unknown");
    let namespace = meta["namespace"].as_str().unwrap_or("default");
    format!("pods {name:?} is forbidden: error looking up service account {namespace}/{account}: serviceaccount {account:?} not found")
}

/// Who a bound token speaks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSubject {
    pub namespace: String,
    pub service_account: String,
    /// The ServiceAccount's uid: a token that names one is valid only while that very account
    /// exists, as kube-apiserver checks. Empty in the tokens of pods' volumes, which are
    /// bound to the pod instead.
    pub service_account_uid: String,
    /// The pod a token is bound to; empty for a token bound only to its service account
    /// (`kubectl create token`).
    pub pod_name: String,
    pub pod_uid: String,
}

impl TokenSubject {
    /// The user the API server authenticates the token as.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.service_account)
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The token's signing input (`header.claims`, base64url) for `alg` and key id `kid`, issued
/// at `now` (seconds) for `ttl` seconds, with kube-apiserver's claims for a pod-bound token.
pub fn signing_input(alg: &str, kid: &str, subject: &TokenSubject, now: i64, ttl: i64) -> String {
    signing_input_for(alg, kid, subject, &[ISSUER.to_string()], now, ttl)
}

/// [`signing_input`] for the given audiences (a TokenRequest's `spec.audiences`). The
/// `kubernetes.io` claim names the pod only when the token is bound to one.
pub fn signing_input_for(alg: &str, kid: &str, subject: &TokenSubject, audiences: &[String], now: i64, ttl: i64) -> String {
    let header = json!({"alg": alg, "kid": kid});
    let mut bound = json!({
        "namespace": subject.namespace,
        "serviceaccount": {"name": subject.service_account, "uid": subject.service_account_uid},
    });
    if !subject.pod_name.is_empty() {
        bound["pod"] = json!({"name": subject.pod_name, "uid": subject.pod_uid});
    }
    let seed = format!("{}/{}/{}/{now}", subject.pod_uid, subject.pod_name, subject.service_account_uid);
    let claims = json!({
        "aud": audiences, "exp": now + ttl, "iat": now, "iss": ISSUER, "nbf": now,
        "jti": format!("{:x}", emu_api::naming::fnv64a(seed.as_bytes())),
        "kubernetes.io": bound,
        "sub": format!("system:serviceaccount:{}:{}", subject.namespace, subject.service_account),
    });
    format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()))
}

/// The whole token: the signing input and its signature.
pub fn token(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", b64url(signature))
}

/// Why a token is refused (the API server answers 401 whatever the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    /// Issued for someone else (`kubectl create token --audience vault`): kube-apiserver
    /// accepts only tokens whose audiences include its own.
    #[error("token audiences {0:?} is invalid for the target audiences [\"{ISSUER}\"]")]
    Audience(Vec<String>),
}

/// Reads a token: checks the signature with `verify(signing_input, signature)` and the time
/// window against `now`; returns who it speaks for.
pub fn check(token: &str, now: i64, verify: impl FnOnce(&[u8], &[u8]) -> bool) -> Result<TokenSubject, TokenError> {
    let mut parts = token.rsplitn(2, '.');
    let (Some(sig), Some(input)) = (parts.next(), parts.next()) else { return Err(TokenError::Malformed) };
    let decode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed);
    let signature = decode(sig)?;
    let Some((_, claims)) = input.split_once('.') else { return Err(TokenError::Malformed) };
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| TokenError::Malformed)?;
    if !verify(input.as_bytes(), &signature) {
        return Err(TokenError::Signature);
    }
    let (nbf, exp) = (claims["nbf"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0));
    if now < nbf || now >= exp {
        return Err(TokenError::Expired);
    }
    let audiences: Vec<String> = match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        list => list.as_array().into_iter().flatten().filter_map(|a| a.as_str().map(String::from)).collect(),
    };
    if !audiences.iter().any(|a| a == ISSUER) {
        return Err(TokenError::Audience(audiences));
    }
    let k = &claims["kubernetes.io"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok(TokenSubject {
        namespace: text(&k["namespace"]),
        service_account: text(&k["serviceaccount"]["name"]),
        service_account_uid: text(&k["serviceaccount"]["uid"]),
        pod_name: text(&k["pod"]["name"]),
        pod_uid: text(&k["pod"]["uid"]),
    })
}

/// Whether a token issued at `issued` (seconds) for `ttl` seconds is due for renewal at `now`:
/// kubelet renews at 80% of its lifetime.
pub fn needs_renewal(issued: i64, ttl: i64, now: i64) -> bool {
    now - issued >= ttl * 8 / 10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"kind": "Pod", "metadata": {"name": "web", "namespace": "default"}, "spec": {
        "volumes": [{"name": "conf", "configMap": {"name": "c"}}],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [
            {"name": "web", "image": "nginx", "volumeMounts": [{"name": "conf", "mountPath": "/etc/nginx/conf.d"}]},
            {"name": "own", "image": "busybox", "volumeMounts": [{"name": "conf", "mountPath": MOUNT_PATH}]},
        ]}})
    }

    #[test]
    fn the_pods_setting_wins_over_its_accounts() {
        let pod = |automount: Option<bool>| match automount {
            Some(b) => json!({"spec": {"automountServiceAccountToken": b}}),
            None => json!({"spec": {}}),
        };
        let quiet = json!({"kind": "ServiceAccount", "automountServiceAccountToken": false});
        let plain = json!({"kind": "ServiceAccount"});
        assert!(automounts(&pod(None), None));
        assert!(automounts(&pod(None), Some(&plain)));
        assert!(!automounts(&pod(None), Some(&quiet)));
        assert!(automounts(&pod(Some(true)), Some(&quiet)));
        assert!(!automounts(&pod(Some(false)), Some(&plain)));
    }

    #[test]
    fn admission_adds_the_projected_volume_and_mounts_it_read_only() {
        let mut p = pod();
        add_api_access(&mut p, "x9zkq");
        assert_eq!(api_access_volume(&p), Some("kube-api-access-x9zkq"));
        let sources = &p["spec"]["volumes"][1]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"], json!({"expirationSeconds": 3607, "path": "token"}));
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
        let mount = json!({"name": "kube-api-access-x9zkq", "readOnly": true, "mountPath": MOUNT_PATH});
        assert_eq!(p["spec"]["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"][1], mount);
        // A container with its own volume at the path keeps it.
        assert_eq!(p["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1);
        // Twice changes nothing; an update keeps the name; opting out gets nothing.
        let once = p.clone();
        add_api_access(&mut p, "bbbbb");
        assert_eq!(p, once);
        let mut desired = pod();
        keep_api_access(&once, &mut desired);
        assert_eq!(desired, once);
        // An update's merge: the live volumes, the manifest's containers.
        let mut merged = pod();
        merged["spec"]["volumes"] = once["spec"]["volumes"].clone();
        keep_api_access(&once, &mut merged);
        assert_eq!(merged, once);
        let mut out = pod();
        out["spec"]["automountServiceAccountToken"] = json!(false);
        add_api_access(&mut out, "x9zkq");
        assert_eq!(api_access_volume(&out), None);
    }

    #[test]
    fn tokens_carry_the_pod_and_are_checked() {
        let subject = TokenSubject {
            namespace: "default".into(),
            service_account: "default".into(),
            pod_name: "web".into(),
            pod_uid: "u-1".into(),
            ..Default::default()
        };
        let input = signing_input("ES256", "k1", &subject, 1_000, 3607);
        let t = token(&input, b"sig");
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(input.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!((claims["sub"].as_str(), claims["exp"].as_i64()), (Some("system:serviceaccount:default:default"), Some(4_607)));
        assert_eq!(check(&t, 2_000, |i, s| i == input.as_bytes() && s == b"sig"), Ok(subject.clone()));
        assert_eq!(subject.username(), "system:serviceaccount:default:default");
        assert_eq!(check(&t, 2_000, |_, _| false), Err(TokenError::Signature));
        assert_eq!(check(&t, 4_607, |_, _| true), Err(TokenError::Expired));
        assert_eq!(check("nonsense", 2_000, |_, _| true), Err(TokenError::Malformed));
        assert!(!needs_renewal(1_000, 3607, 3_800) && needs_renewal(1_000, 3607, 3_900));
    }

    #[test]
    fn admission_looks_up_every_account_but_default() {
        let pod = |meta: Value, sa: Value| json!({"metadata": meta, "spec": {"serviceAccountName": sa}});
        assert_eq!(account_to_look_up(&pod(json!({}), json!("default"))), None);
        assert_eq!(account_to_look_up(&pod(json!({}), json!(null))), None);
        let robot = pod(json!({"name": "x", "namespace": "team"}), json!("robot"));
        assert_eq!(account_to_look_up(&robot), Some("robot"));
        assert_eq!(
            account_not_found(&robot, "robot"),
            "pods \"x\" is forbidden: error looking up service account team/robot: serviceaccount \"robot\" not found"
        );
        // A ReplicaSet's pod, before its name is generated.
        let generated = pod(json!({"generateName": "web-5d4f8-", "namespace": "default"}), json!("foo"));
        assert_eq!(
            account_not_found(&generated, "foo"),
            "pods \"web-5d4f8-\" is forbidden: error looking up service account default/foo: serviceaccount \"foo\" not found"
        );
    }

    fn claims_of(input: &str) -> Value {
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap()
    }

    /// `kubectl create token robot`: bound to the account alone (its uid, no pod); one for
    /// another audience is refused as kube-apiserver refuses it.
    #[test]
    fn tokens_of_an_account_and_their_audiences() {
        let subject = TokenSubject {
            namespace: "default".into(),
            service_account: "robot".into(),
            service_account_uid: "sa-1".into(),
            ..Default::default()
        };
        let input = signing_input_for("ES256", "k1", &subject, &[ISSUER.to_string()], 1_000, 600);
        let claims = claims_of(&input);
        assert_eq!(claims["kubernetes.io"], json!({"namespace": "default", "serviceaccount": {"name": "robot", "uid": "sa-1"}}));
        assert_eq!((claims["aud"].clone(), claims["exp"].as_i64()), (json!([ISSUER]), Some(1_600)));
        assert_eq!(check(&token(&input, b"s"), 1_001, |_, _| true), Ok(subject.clone()));
        let vault = signing_input_for("ES256", "k1", &subject, &["vault".to_string()], 1_000, 600);
        let refused = check(&token(&vault, b"s"), 1_001, |_, _| true).unwrap_err();
        assert_eq!(refused, TokenError::Audience(vec!["vault".into()]));
        assert_eq!(
            refused.to_string(),
            "token audiences [\"vault\"] is invalid for the target audiences [\"https://kubernetes.default.svc.cluster.local\"]"
        );
    }
}
