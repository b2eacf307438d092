//! Bootstrap tokens at the API server (issue 18): a token `[a-z0-9]{6}.[a-z0-9]{16}` is checked
//! against its Secret `kube-system/bootstrap-token-<id>` in the store, as kube-apiserver's
//! bootstrap token authenticator does (the decision is [`emu_logic::bootstrap::check`]), for
//! bearer tokens on the HTTPS endpoint and for machines that join; expired tokens' Secrets are
//! deleted, as kube-controller-manager's tokencleaner does.
//!
//! Only the token's id is ever logged, never its secret part.

use crate::state::Shared;
use crate::store::ObjectKey;
use emu_logic::bootstrap::{self, BootstrapUser, Refusal, Token};

/// The Secret of the token with id `id`.
fn key(id: &str) -> ObjectKey {
    ObjectKey { kind: "Secret".into(), namespace: bootstrap::NAMESPACE.into(), name: bootstrap::secret_name(id) }
}

/// Who `token` speaks for at `now`, or why it does not.
fn check(shared: &Shared, token: &str, now: i64) -> Result<BootstrapUser, Refusal> {
    let parsed = Token::parse(token).map_err(Refusal::Malformed)?;
    let secret = shared.store.get_shared(&key(parsed.id())).ok_or_else(|| Refusal::Unknown { id: parsed.id().to_string() })?;
    bootstrap::check(&secret, token, now)
}

/// The user and groups a bearer token of the bootstrap shape authenticates as at `now`: its
/// Secret exists, holds the same secret part, has not expired and is for authentication. None
/// otherwise (the HTTPS endpoint answers 401); the reason is logged at debug level, by id.
pub fn authenticate(shared: &Shared, token: &str, now: i64) -> Option<BootstrapUser> {
    check(shared, token, now).inspect_err(|refusal| tracing::debug!(reason = %refusal, "bearer token refused")).ok()
}

/// The check of a machine's join request: who its token speaks for, or a message for the joining
/// user (unknown or deleted token, wrong secret part, expired, not for authentication), which
/// names the token by its id only.
pub fn check_join_token(shared: &Shared, token: &str, now: i64) -> Result<BootstrapUser, String> {
    check(shared, token, now).map_err(|refusal| refusal.to_string())
}

/// kube-controller-manager's tokencleaner: deletes the Secrets of bootstrap tokens whose
/// expiration has come ([`bootstrap::cleaned_up`]). Returns how many it deleted.
pub fn delete_expired(shared: &Shared, now: i64) -> usize {
    let mut deleted = 0;
    for secret in shared.store.list_shared_prefixed("Secret", bootstrap::NAMESPACE, bootstrap::SECRET_PREFIX) {
        if !bootstrap::cleaned_up(&secret, now) {
            continue;
        }
        let name = emu_api::object::name(&secret).to_string();
        let key = ObjectKey { kind: "Secret".into(), namespace: bootstrap::NAMESPACE.into(), name: name.clone() };
        match shared.store.delete(&key) {
            Ok(_) => {
                tracing::info!(secret = %format!("{}/{name}", bootstrap::NAMESPACE), "bootstrap token expired: its Secret deleted");
                deleted += 1;
            }
            Err(e) => tracing::warn!(secret = %name, error = %e, "deleting an expired bootstrap token"),
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn store_token(shared: &Shared, token: &str, expires: Option<i64>) {
        shared.store.create(bootstrap::secret(&Token::parse(token).unwrap(), expires, "test")).unwrap();
    }

    #[test]
    fn bootstrap_tokens_authenticate_while_their_secret_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        let now = 1_800_000_000;
        assert_eq!(authenticate(&shared, TOKEN, now), None, "no Secret yet");
        let e = check_join_token(&shared, TOKEN, now).unwrap_err();
        assert!(e.contains("\"abcdef\" is not known") && e.contains("emu token create"), "{e}");
        store_token(&shared, TOKEN, Some(now + 3600));
        let user = authenticate(&shared, TOKEN, now).unwrap();
        assert_eq!(user.user, "system:bootstrap:abcdef");
        assert_eq!(user.groups, ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"]);
        assert_eq!(check_join_token(&shared, TOKEN, now), Ok(user));
        // Wrong secret part, malformed, expired: refused, and the message never has the secret.
        assert_eq!(authenticate(&shared, "abcdef.0123456789abcdee", now), None);
        let e = check_join_token(&shared, "abcdef.0123456789abcdee", now).unwrap_err();
        assert!(e.contains("secret part") && !e.contains("0123456789abcde"), "{e}");
        let e = check_join_token(&shared, "abcdef", now).unwrap_err();
        assert!(e.contains("[a-z0-9]{6}.[a-z0-9]{16}"), "{e}");
        let e = check_join_token(&shared, TOKEN, now + 3601).unwrap_err();
        assert!(e.contains("expired at"), "{e}");
        assert_eq!(authenticate(&shared, TOKEN, now + 3601), None);
        // Deleted: unknown again.
        shared.store.delete(&key("abcdef")).unwrap();
        assert_eq!(authenticate(&shared, TOKEN, now), None);
        assert!(check_join_token(&shared, TOKEN, now).unwrap_err().contains("not known"));
        // Not for authentication.
        let mut s = bootstrap::secret(&Token::parse(TOKEN).unwrap(), None, "");
        s["data"].as_object_mut().unwrap().remove(bootstrap::KEY_USAGE_AUTHENTICATION);
        shared.store.create(s).unwrap();
        assert!(check_join_token(&shared, TOKEN, now).unwrap_err().contains("not for authentication"));
        assert_eq!(authenticate(&shared, TOKEN, now), None);
    }

    #[test]
    fn the_tokencleaner_deletes_only_expired_bootstrap_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let shared = crate::api::test_shared(dir.path());
        let now = 1_800_000_000;
        store_token(&shared, "aaaaaa.0123456789abcdef", Some(now - 1));
        store_token(&shared, "bbbbbb.0123456789abcdef", Some(now + 60));
        store_token(&shared, "cccccc.0123456789abcdef", None);
        // A Secret of another type, named like one, is no bootstrap token.
        shared
            .store
            .create(serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "bootstrap-token-dddddd", "namespace": "kube-system"},
                "data": {"expiration": "MjAwMC0wMS0wMVQwMDowMDowMFo="}}))
            .unwrap();
        assert_eq!(delete_expired(&shared, now), 1);
        let left: Vec<String> = shared
            .store
            .list("Secret", Some("kube-system"))
            .0
            .iter()
            .map(|s| emu_api::object::name(s).to_string())
            .filter(|n| n.starts_with("bootstrap-token-"))
            .collect();
        assert_eq!(left, ["bootstrap-token-bbbbbb", "bootstrap-token-cccccc", "bootstrap-token-dddddd"]);
        assert_eq!(delete_expired(&shared, now + 60), 1);
        assert_eq!(delete_expired(&shared, now + 61), 0);
    }
}
