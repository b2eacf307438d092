//! Every generated name: Kubernetes object names (NAME-1, NAME-3) and the kernel objects emu
//! creates. Namespace names carry the cluster name so `emu down` can find them; interface
//! names must fit IFNAMSIZ (15 bytes + NUL).

use crate::json::canonical_json;
use crate::syntax::dns1123_label_errors;
use serde_json::Value;

/// Longest interface name the kernel accepts.
pub const IFNAME_MAX: usize = 15;
/// Cluster names prefix namespace and directory names; keep them short.
pub const CLUSTER_NAME_MAX: usize = 20;
/// Kubernetes' alphabet for random suffixes: no vowels, no `0`, `1`, `3` (no words, no look-alikes).
pub const SUFFIX_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
/// `generateName` bases are cut so that base + 5 characters fit in 63.
pub const MAX_GENERATE_BASE: usize = 58;

fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for &b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(16_777_619);
    }
    h
}

pub fn fnv64a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The `pod-template-hash` of a Deployment's pod template: FNV-32a over a canonical dump (plus
/// the collision count, as 8 little-endian bytes, when set), printed in decimal with each digit
/// mapped into the safe alphabet, so only `456789bcdf` appear.
pub fn pod_template_hash(template: &Value, collision_count: Option<i32>) -> String {
    let mut h = fnv32a(canonical_json(template).as_bytes(), 2_166_136_261);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(&bytes, h);
    }
    h.to_string().bytes().map(|d| SUFFIX_ALPHABET[usize::from(d) % SUFFIX_ALPHABET.len()] as char).collect()
}

/// Five characters from `SUFFIX_ALPHABET`, one per entropy byte (the caller supplies randomness).
pub fn name_suffix(entropy: [u8; 5]) -> String {
    entropy.iter().map(|&b| SUFFIX_ALPHABET[usize::from(b) % SUFFIX_ALPHABET.len()] as char).collect()
}

/// What the API server makes of `generateName: <base>`: the base cut to 58 characters, plus a
/// random suffix (`my-nginx-5b56ccd65f-x9zkq`).
pub fn generate_name(base: &str, entropy: [u8; 5]) -> String {
    format!("{}{}", generated_prefix(base), name_suffix(entropy))
}

/// What every name generated from `generateName: <base>` starts with: the base cut to 58
/// characters.
pub fn generated_prefix(base: &str) -> &str {
    let mut cut = base.len().min(MAX_GENERATE_BASE);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    &base[..cut]
}

/// Name of the cgroup (v2) directory that holds every process of a cluster, relative to the cgroup2
/// mount. `emu down` kills the whole tree at once through `cgroup.kill`.
pub fn cgroup_name(cluster: &str) -> String {
    format!("emu-{cluster}")
}

/// The fabric (node network) namespace of a cluster.
pub fn netns_fabric(cluster: &str) -> String {
    format!("emu-{cluster}-fabric")
}

/// The outside world's network namespace: the "internet" where nodes have their ExternalIPs
/// and the external client of `emu outside` lives.
pub fn netns_outside(cluster: &str) -> String {
    format!("emu-{cluster}-ext")
}

/// The outside-world end of node `node_index`'s `eth1` veth.
pub fn outside_port(node_index: usize) -> String {
    format!("veth-x{node_index}")
}

/// The control plane's network namespace: the controller lives there, with the control-plane
/// address on the fabric (where the `kubernetes` Service's endpoint points).
pub fn netns_control(cluster: &str) -> String {
    format!("emu-{cluster}-control")
}

/// The fabric-side end of the control plane's veth.
pub const CONTROL_FABRIC_PORT: &str = "veth-cp";

/// A node's network namespace.
pub fn netns_node(cluster: &str, node: &str) -> String {
    format!("emu-{cluster}-node-{node}")
}

/// The LAN of a cluster's emulated hosts (`emu up --hosts`): a switch their `eth0`s plug into.
pub fn netns_lan(cluster: &str) -> String {
    format!("emu-{cluster}-lan")
}

/// An emulated host's network namespace: the underlay of the machine `host` emulates.
pub fn netns_host(cluster: &str, host: &str) -> String {
    format!("emu-{cluster}-{host}")
}

/// The LAN-side end of emulated host `host_index`'s `eth0`.
pub fn lan_port(host_index: usize) -> String {
    format!("veth-h{host_index}")
}

/// A pod's network namespace, by pod UID (names can be reused, UIDs cannot).
pub fn netns_pod(cluster: &str, pod_uid: &str) -> String {
    format!("emu-{cluster}-pod-{pod_uid}")
}

/// The fabric-side end of node `node_index`'s veth, inside the fabric namespace (so no cluster
/// tag is needed). Fits IFNAME_MAX for any index below 10^9.
pub fn fabric_port(node_index: usize) -> String {
    format!("veth-n{node_index}")
}

/// The node-side end of a pod's veth: `veth` + 11 hex digits of a hash of the pod UID, like
/// CNI's host veths. Deterministic, so an agent restart finds the link again.
pub fn pod_host_veth(pod_uid: &str) -> String {
    let hex = format!("{:016x}", fnv64a(pod_uid.as_bytes()));
    format!("veth{}", &hex[..IFNAME_MAX - 4])
}

/// A cluster name must be a DNS label of at most 20 characters: it prefixes namespace names,
/// nft tables and state directories.
pub fn validate_cluster_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("cluster name must not be empty".into());
    }
    if name.len() > CLUSTER_NAME_MAX {
        return Err(format!(
            "cluster name {name:?} is {} characters long; use at most {CLUSTER_NAME_MAX} (it prefixes namespace names)",
            name.len()
        ));
    }
    match dns1123_label_errors(name).into_iter().next() {
        Some(msg) => Err(format!("cluster name {name:?} is invalid: {msg}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_template_hash_shape() {
        let t = json!({"metadata": {"labels": {"run": "my-nginx"}}, "spec": {"containers": [{"name": "my-nginx", "image": "nginx"}]}});
        let h = pod_template_hash(&t, None);
        assert!((1..=10).contains(&h.len()), "{h}");
        assert!(h.chars().all(|c| "456789bcdf".contains(c)), "{h}");
        // Deterministic and independent of key order.
        let reordered =
            json!({"spec": {"containers": [{"image": "nginx", "name": "my-nginx"}]}, "metadata": {"labels": {"run": "my-nginx"}}});
        assert_eq!(h, pod_template_hash(&reordered, None));
        assert_ne!(h, pod_template_hash(&t, Some(1)));
        assert_ne!(h, pod_template_hash(&json!({"spec": {}}), None));
    }

    #[test]
    fn digit_mapping_is_kubernetes_safe_encoding() {
        let map: String = "0123456789".bytes().map(|d| SUFFIX_ALPHABET[usize::from(d) % 27] as char).collect();
        assert_eq!(map, "456789bcdf");
    }

    #[test]
    fn suffixes_and_generated_names() {
        for seed in 0..=255u8 {
            let s = name_suffix([seed, seed.wrapping_mul(7), seed ^ 0x5a, 255 - seed, seed / 3]);
            assert_eq!(s.len(), 5);
            assert!(s.bytes().all(|c| SUFFIX_ALPHABET.contains(&c)), "{s}");
        }
        assert_eq!(name_suffix([0, 1, 26, 27, 255]), "bc9bq");
        assert_eq!(generate_name("my-nginx-5b56ccd65f-", [0; 5]), "my-nginx-5b56ccd65f-bbbbb");
        let long = generate_name(&"a".repeat(80), [1; 5]);
        assert_eq!(long.len(), 63);
        assert!(long.starts_with(&"a".repeat(58)) && long.ends_with("ccccc"));
    }

    #[test]
    fn kernel_names_fit() {
        assert_eq!(netns_fabric("lab"), "emu-lab-fabric");
        assert_eq!(netns_node("lab", "worker-1"), "emu-lab-node-worker-1");
        assert_eq!(netns_pod("lab", "0b7e"), "emu-lab-pod-0b7e");
        assert!(fabric_port(999_999_999).len() <= IFNAME_MAX);
        assert_ne!(fabric_port(1), fabric_port(11));
        let v = pod_host_veth("6f1c2d3e-1111-4a2b-9c3d-0123456789ab");
        assert_eq!(v.len(), IFNAME_MAX);
        assert!(v.starts_with("veth") && v[4..].chars().all(|c| c.is_ascii_hexdigit()), "{v}");
        assert_eq!(v, pod_host_veth("6f1c2d3e-1111-4a2b-9c3d-0123456789ab"));
        assert_ne!(v, pod_host_veth("6f1c2d3e-1111-4a2b-9c3d-0123456789ac"));
    }

    #[test]
    fn cluster_names() {
        assert!(validate_cluster_name("lab").is_ok());
        assert!(validate_cluster_name(&"a".repeat(20)).is_ok());
        assert!(validate_cluster_name(&"a".repeat(21)).unwrap_err().contains("at most 20"));
        assert!(validate_cluster_name("Lab").is_err());
        assert!(validate_cluster_name("a.b").is_err());
        assert!(validate_cluster_name("").is_err());
    }
}
