//! Service-account tokens (VOL-8): the API server's signing key (ES256, kept next to the cluster
//! CA so tokens outlive a controller restart), tokens issued for pods (the TokenRequest that
//! kubelet makes for a pod's `kube-api-access` volume) and their check when a client presents
//! one to the HTTPS endpoint.

use emu_logic::serviceaccount::{self, TokenError, TokenSubject};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The signing key's file in the PKI directory (PKCS#8, 0600).
pub const KEY_FILE: &str = "sa.key";

pub struct TokenSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// Key id in the token header: a digest of the public key, as kube-apiserver derives it.
    kid: String,
}

impl TokenSigner {
    /// Loads the key kept in `dir`, or makes one there.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<TokenSigner> {
        let rng = SystemRandom::new();
        let path = dir.join(KEY_FILE);
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(dir)?;
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("generating the service-account key"))?;
                let tmp = dir.join(format!("{KEY_FILE}.tmp"));
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?.write_all(doc.as_ref())?;
                std::fs::rename(&tmp, &path)?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| anyhow::anyhow!("{}: not an ES256 key: {e}", path.display()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &digest.as_ref()[..20]);
        Ok(TokenSigner { key, rng, kid })
    }

    /// A token for `subject`, valid from `now` (seconds) for `ttl` seconds.
    pub fn issue(&self, subject: &TokenSubject, now: i64, ttl: i64) -> anyhow::Result<String> {
        self.issue_for(subject, &[serviceaccount::ISSUER.to_string()], now, ttl)
    }

    /// A token for `subject` with the given audiences (a TokenRequest's), valid from `now`
    /// (seconds) for `ttl` seconds.
    pub fn issue_for(&self, subject: &TokenSubject, audiences: &[String], now: i64, ttl: i64) -> anyhow::Result<String> {
        let input = serviceaccount::signing_input_for("ES256", &self.kid, subject, audiences, now, ttl);
        let signature = self.key.sign(&self.rng, input.as_bytes()).map_err(|_| anyhow::anyhow!("signing a token"))?;
        Ok(serviceaccount::token(&input, signature.as_ref()))
    }

    /// Who `token` speaks for, if this key signed it and it is valid at `now`.
    pub fn check(&self, token: &str, now: i64) -> Result<TokenSubject, TokenError> {
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref());
        serviceaccount::check(token, now, |input, signature| public.verify(input, signature).is_ok())
    }
}

/// The user a bearer token authenticates as, at `now`: one this cluster's key signed, still
/// valid, for the API server's audience, and, as kube-apiserver checks, while what it is bound
/// to exists: its service account when it names the account's uid (a TokenRequest's), the very
/// pod it was issued for when it names one (a pod's volume's). A deleted account's or pod's
/// tokens stop working; so do those of an older account or pod of the same name.
pub fn authenticate(shared: &crate::state::Shared, token: &str, now: i64) -> Option<String> {
    let subject = shared.tokens.get()?.check(token, now).ok()?;
    let bound_to = |kind: &str, name: &str, uid: &str| {
        let key = crate::store::ObjectKey { kind: kind.into(), namespace: subject.namespace.clone(), name: name.into() };
        shared.store.get_shared(&key).is_some_and(|o| emu_api::object::uid(&o) == uid)
    };
    if !subject.service_account_uid.is_empty() && !bound_to("ServiceAccount", &subject.service_account, &subject.service_account_uid) {
        return None;
    }
    if !subject.pod_uid.is_empty() && !bound_to("Pod", &subject.pod_name, &subject.pod_uid) {
        return None;
    }
    Some(subject.username())
}

/// Who a bearer token presented to the HTTPS endpoint speaks for at `now`, as kube-apiserver's
/// union of token authenticators decides: a token of the bootstrap shape (`[a-z0-9]{6}.[a-z0-9]{16}`,
/// which no service-account token has) by its Secret ([`crate::bootstrap::authenticate`]), any
/// other as a service-account token ([`authenticate`]). Every such user is in
/// `system:authenticated`.
pub fn authenticate_bearer(shared: &crate::state::Shared, token: &str, now: i64) -> Option<crate::rest::authz::User> {
    if emu_logic::bootstrap::Token::parse(token).is_ok() {
        let user = crate::bootstrap::authenticate(shared, token, now)?;
        let mut groups = user.groups;
        groups.push(crate::rest::authz::AUTHENTICATED.to_string());
        return Some(crate::rest::authz::User { name: user.user, groups });
    }
    authenticate(shared, token, now).map(|name| crate::rest::authz::User::from_token(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_the_key_that_signed_them() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(dir.path()).unwrap();
        let subject = TokenSubject {
            namespace: "default".into(),
            service_account: "default".into(),
            pod_name: "web".into(),
            pod_uid: "u".into(),
            ..Default::default()
        };
        let token = signer.issue(&subject, 1_000, 3607).unwrap();
        assert_eq!(signer.check(&token, 1_001), Ok(subject.clone()));
        assert_eq!(signer.check(&token, 4_607), Err(TokenError::Expired));
        // The same key after a restart; another cluster's key refuses it.
        assert_eq!(TokenSigner::load_or_create(dir.path()).unwrap().check(&token, 1_001), Ok(subject));
        let other = tempfile::tempdir().unwrap();
        assert_eq!(TokenSigner::load_or_create(other.path()).unwrap().check(&token, 1_001), Err(TokenError::Signature));
        let mut forged = token.clone();
        forged.insert(token.find('.').unwrap() + 3, 'x');
        assert!(signer.check(&forged, 1_001).is_err());
        assert_eq!(
            std::fs::metadata(dir.path().join(KEY_FILE))
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .unwrap(),
            0o600
        );
    }

    #[test]
    fn bearer_tokens_are_bootstrap_tokens_or_service_account_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        let signer = std::sync::Arc::new(TokenSigner::load_or_create(dir.path()).unwrap());
        let _ = shared.tokens.set(signer.clone());
        let now = emu_api::time::now();
        let token = emu_logic::bootstrap::Token::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(authenticate_bearer(&shared, &token.reveal(), now), None);
        shared.store.create(emu_logic::bootstrap::secret(&token, Some(now + 60), "")).unwrap();
        let user = authenticate_bearer(&shared, &token.reveal(), now).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(user.groups, ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:authenticated"]);
        assert_eq!(authenticate_bearer(&shared, "abcdef.0123456789abcdee", now), None);
        // A service account's token (one not bound to a pod) still authenticates.
        let subject = TokenSubject { namespace: "default".into(), service_account: "default".into(), ..Default::default() };
        let sa = signer.issue(&subject, now, 3600).unwrap();
        let user = authenticate_bearer(&shared, &sa, now).unwrap();
        assert_eq!(user, crate::rest::authz::User::from_token("system:serviceaccount:default:default"));
        assert_eq!(authenticate_bearer(&shared, "forged", now), None);
    }

    #[test]
    fn a_pods_token_works_while_that_pod_exists() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        let signer = std::sync::Arc::new(TokenSigner::load_or_create(dir.path()).unwrap());
        let _ = shared.tokens.set(signer.clone());
        let pod = || {
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
        };
        let stored = shared.store.create(pod()).unwrap();
        let uid = emu_api::object::uid(&stored).to_string();
        let subject = TokenSubject {
            namespace: "default".into(),
            service_account: "default".into(),
            pod_name: "web".into(),
            pod_uid: uid,
            ..Default::default()
        };
        let now = emu_api::time::now();
        let token = signer.issue(&subject, now, 3607).unwrap();
        assert_eq!(authenticate(&shared, &token, now).as_deref(), Some("system:serviceaccount:default:default"));
        let key = crate::store::ObjectKey { kind: "Pod".into(), namespace: "default".into(), name: "web".into() };
        shared.store.delete(&key).unwrap();
        assert_eq!(authenticate(&shared, &token, now), None, "the pod is gone");
        shared.store.create(pod()).unwrap();
        assert_eq!(authenticate(&shared, &token, now), None, "another pod of the same name");
    }
}
