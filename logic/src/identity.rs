//! Who a container's processes run as: the user and groups kubelet and the container runtime
//! give it from the pod's and the container's `securityContext` and the image's `USER`, and the
//! `runAsNonRoot` check kubelet makes before it creates the container.
//!
//! The container's `securityContext` wins over the pod's, field by field. Without `runAsUser`
//! the image's user runs (root when the image names none); a user named rather than numbered is
//! looked up in the image's `/etc/passwd`, and so is the group of a `runAsUser` without
//! `runAsGroup` (containerd's rule; root's group when the passwd has no such user). The groups
//! are the pod's `supplementalGroups` and `fsGroup` (kubelet's, with containerd's default
//! `Merge` policy adding none here: an image's `/etc/group` lists no members).

use emu_api::typed::k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use emu_api::validation::DEFAULT_CAPABILITIES;

use crate::images::ImageUser;

/// The user and groups of a container's processes (and of `kubectl exec` into it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Besides `gid`, sorted and without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
}

impl Identity {
    pub const ROOT: Identity = Identity { uid: 0, gid: 0, groups: Vec::new() };

    pub fn is_root(&self) -> bool {
        *self == Self::ROOT
    }
}

/// Root, for a sandbox written before containers had an identity.
impl Default for Identity {
    fn default() -> Self {
        Self::ROOT
    }
}

/// Why kubelet will not create a container as asked: its `CreateContainerConfigError` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The identity `container` of `pod` runs as, or kubelet's `CreateContainerConfigError` message
/// when `runAsNonRoot` forbids it. `image_user` is the image's `USER` (`""` for none, a name, a
/// number, either with `:group`); `image_users` the users of the image's `/etc/passwd` besides
/// root.
pub fn container_identity(pod: &Pod, container: &Container, image_user: &str, image_users: &[ImageUser]) -> Result<Identity, ConfigError> {
    container_identity_inner(pod, container, image_user, image_users).map_err(ConfigError)
}

fn container_identity_inner(pod: &Pod, container: &Container, image_user: &str, image_users: &[ImageUser]) -> Result<Identity, String> {
    let spec = pod.spec.as_ref();
    let pod_sc = spec.and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let pick =
        |c: fn(&SecurityContext) -> Option<i64>, p: fn(&PodSecurityContext) -> Option<i64>| sc.and_then(c).or_else(|| pod_sc.and_then(p));
    let run_as_user = pick(|s| s.run_as_user, |p| p.run_as_user);
    let run_as_group = pick(|s| s.run_as_group, |p| p.run_as_group);
    let non_root = sc.and_then(|s| s.run_as_non_root).or_else(|| pod_sc.and_then(|p| p.run_as_non_root)).unwrap_or(false);

    let (image_name, image_group) = match image_user.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (image_user, None),
    };
    let by_name = |name: &str| image_users.iter().find(|u| u.name == name);
    let by_uid = |uid: u32| image_users.iter().find(|u| u.uid == uid);
    // The image's user as a number, when it is one (kubelet checks runAsNonRoot on that alone).
    let image_uid: Option<u32> = if image_name.is_empty() { Some(0) } else { image_name.parse().ok() };

    let why = || format!("(pod: \"{}\", container: {})", pod_label(pod), container.name);
    if non_root {
        match run_as_user {
            Some(0) => return Err(format!("container's runAsUser breaks non-root policy {}", why())),
            Some(_) => {}
            None if image_uid == Some(0) => return Err(format!("container has runAsNonRoot and image will run as root {}", why())),
            None if image_uid.is_none() => {
                return Err(format!(
                    "container has runAsNonRoot and image has non-numeric user ({image_name}), cannot verify user is non-root {}",
                    why()
                ))
            }
            None => {}
        }
    }

    let id = |v: i64, field: &str| u32::try_from(v).map_err(|_| format!("securityContext.{field} {v} is not a user or group id {}", why()));
    let uid = match run_as_user {
        Some(v) => id(v, "runAsUser")?,
        None => match image_uid {
            Some(uid) => uid,
            None => by_name(image_name)
                .map(|u| u.uid)
                .ok_or_else(|| format!("unable to find user {image_name}: no matching entries in passwd file {}", why()))?,
        },
    };
    let gid = match (run_as_group, image_group) {
        (Some(v), _) => id(v, "runAsGroup")?,
        // The image's own `USER user:group` (a group by name is its user's of the same name).
        (None, Some(group)) if run_as_user.is_none() => group.parse().ok().or_else(|| by_name(group).map(|u| u.gid)).unwrap_or(0),
        _ if uid == 0 => 0,
        _ => by_uid(uid).map(|u| u.gid).unwrap_or(0),
    };
    let mut groups: Vec<u32> = pod_sc
        .into_iter()
        .flat_map(|p| p.supplemental_groups.iter().flatten().copied().chain(p.fs_group))
        .filter_map(|g| u32::try_from(g).ok())
        .filter(|g| *g != gid)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(Identity { uid, gid, groups })
}

/// The capabilities a container keeps, as containerd computes them from `capabilities`: the
/// runtime's default set ([`DEFAULT_CAPABILITIES`]), none when `drop` names `ALL`; then `add`'s
/// (admission lets it name only defaults); then less `drop`'s. Names as Kubernetes writes them
/// (`NET_RAW`), in the default set's order.
pub fn kept_capabilities(container: &Container) -> Vec<&'static str> {
    let caps = container.security_context.as_ref().and_then(|s| s.capabilities.as_ref());
    let names = |list: Option<&Vec<String>>| list.into_iter().flatten().map(|c| c.to_ascii_uppercase()).collect::<Vec<_>>();
    let (add, drop) = (names(caps.and_then(|c| c.add.as_ref())), names(caps.and_then(|c| c.drop.as_ref())));
    let base = !drop.iter().any(|c| c == "ALL");
    DEFAULT_CAPABILITIES.into_iter().filter(|cap| (base || add.iter().any(|a| a == cap)) && !drop.iter().any(|d| d == cap)).collect()
}

/// kubelet's `format.Pod`: `name_namespace(uid)`.
fn pod_label(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!("{}_{}({})", m.name.as_deref().unwrap_or(""), m.namespace.as_deref().unwrap_or("default"), m.uid.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NGINX_USER: ImageUser = ImageUser { name: "nginx", uid: 101, gid: 101, home: "/nonexistent", shell: "/bin/false" };

    fn pod(pod_sc: serde_json::Value, container_sc: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "1234"},
            "spec": {"securityContext": pod_sc, "containers": [{"name": "c", "image": "nginx", "securityContext": container_sc}]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        (pod, c)
    }

    fn identity(pod_sc: serde_json::Value, container_sc: serde_json::Value, image_user: &str) -> Result<Identity, String> {
        let (pod, c) = pod(pod_sc, container_sc);
        container_identity(&pod, &c, image_user, &[NGINX_USER]).map_err(|e| e.0)
    }

    #[test]
    fn without_a_security_context_the_images_user_runs() {
        assert_eq!(identity(json!({}), json!({}), ""), Ok(Identity::ROOT));
        assert_eq!(identity(json!({}), json!({}), "nginx"), Ok(Identity { uid: 101, gid: 101, groups: vec![] }));
        assert_eq!(identity(json!({}), json!({}), "1000"), Ok(Identity { uid: 1000, gid: 0, groups: vec![] }));
        assert_eq!(identity(json!({}), json!({}), "1000:2000"), Ok(Identity { uid: 1000, gid: 2000, groups: vec![] }));
        assert_eq!(identity(json!({}), json!({}), "nginx:nginx"), Ok(Identity { uid: 101, gid: 101, groups: vec![] }));
    }

    #[test]
    fn the_containers_fields_win_over_the_pods_one_by_one() {
        let pod_sc = json!({"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000, 3000], "fsGroup": 2000});
        assert_eq!(identity(pod_sc.clone(), json!({}), ""), Ok(Identity { uid: 1000, gid: 3000, groups: vec![2000, 4000] }));
        assert_eq!(identity(pod_sc, json!({"runAsUser": 1001}), ""), Ok(Identity { uid: 1001, gid: 3000, groups: vec![2000, 4000] }));
        // runAsUser alone: the group of that user in the image's passwd, else root's.
        assert_eq!(identity(json!({}), json!({"runAsUser": 101}), ""), Ok(Identity { uid: 101, gid: 101, groups: vec![] }));
        assert_eq!(identity(json!({}), json!({"runAsUser": 5}), "nginx:nginx"), Ok(Identity { uid: 5, gid: 0, groups: vec![] }));
    }

    #[test]
    fn run_as_non_root_refuses_root_with_kubelets_messages() {
        let non_root = json!({"runAsNonRoot": true});
        assert_eq!(
            identity(non_root.clone(), json!({}), ""),
            Err("container has runAsNonRoot and image will run as root (pod: \"web_prod(1234)\", container: c)".into())
        );
        assert_eq!(
            identity(json!({}), json!({"runAsNonRoot": true, "runAsUser": 0}), "nginx"),
            Err("container's runAsUser breaks non-root policy (pod: \"web_prod(1234)\", container: c)".into())
        );
        assert_eq!(
            identity(non_root.clone(), json!({}), "nginx"),
            Err("container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: \"web_prod(1234)\", container: c)".into())
        );
        assert_eq!(identity(non_root.clone(), json!({"runAsUser": 1000}), ""), Ok(Identity { uid: 1000, gid: 0, groups: vec![] }));
        assert_eq!(identity(non_root, json!({}), "1000"), Ok(Identity { uid: 1000, gid: 0, groups: vec![] }));
        // The container's false lifts the pod's true.
        assert_eq!(identity(json!({"runAsNonRoot": true}), json!({"runAsNonRoot": false}), ""), Ok(Identity::ROOT));
    }

    #[test]
    fn capabilities_are_the_defaults_plus_add_less_drop() {
        let kept = |sc: serde_json::Value| kept_capabilities(&pod(json!({}), sc).1);
        assert_eq!(kept(json!({})), DEFAULT_CAPABILITIES);
        assert_eq!(kept(json!({"capabilities": {"drop": ["ALL"]}})), Vec::<&str>::new());
        assert_eq!(kept(json!({"capabilities": {"drop": ["ALL"], "add": ["net_bind_service"]}})), ["NET_BIND_SERVICE"]);
        let without_raw = kept(json!({"capabilities": {"drop": ["NET_RAW", "CHOWN"]}}));
        assert_eq!(without_raw.len(), DEFAULT_CAPABILITIES.len() - 2);
        assert!(!without_raw.contains(&"NET_RAW") && !without_raw.contains(&"CHOWN"));
    }

    #[test]
    fn an_image_user_missing_from_passwd_is_a_config_error() {
        assert_eq!(
            identity(json!({}), json!({}), "curl_user"),
            Err("unable to find user curl_user: no matching entries in passwd file (pod: \"web_prod(1234)\", container: c)".into())
        );
    }
}
