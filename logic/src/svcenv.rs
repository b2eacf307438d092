//! A container's environment as the kubelet builds it: the Service variables (ENV-1..ENV-10),
//! Kubernetes' `$(VAR)` expansion, and how declared `env` combines with both (ENV-9).
//!
//! The node agent calls [`service_env`] each time it starts a container (ENV-7: a snapshot of the
//! Services existing at that instant), then [`container_env`] (or [`container_env_declared`])
//! with the container's declared variables, then [`expand_command`] on `command` and `args`.

use emu_api::typed::{self, Service};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// ENV-3: `redis-primary` → `REDIS_PRIMARY`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The Service variables a pod in `pod_namespace` gets (ENV-1, ENV-2, ENV-8, ENV-10): every
/// Service of its namespace when `enable_service_links`, plus `default/kubernetes` always (a
/// `kubernetes` Service of the pod's own namespace replaces it when links are on). Services
/// without a cluster IP (headless, ExternalName) give nothing. `services` is every Service of the
/// cluster. Sorted by variable name: the process environment has no defined order (ENV-11).
pub fn service_env(pod_namespace: &str, enable_service_links: bool, services: &[Service]) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    // Services sorted by (namespace, name) so that a (theoretical) variable clash between two
    // Services resolves the same way every time; upstream iterates a hash map.
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| typed::key(&s.metadata));
    for svc in sorted {
        if matches!(cluster_ip(svc), "" | "None") {
            continue;
        }
        let (ns, name) = typed::key(&svc.metadata);
        if ns == "default" && name == "kubernetes" {
            // The master service goes to everyone, unless the pod's namespace has its own.
            chosen.entry(name).or_insert(svc);
        } else if ns == pod_namespace && enable_service_links {
            chosen.insert(name, svc);
        }
    }
    let mut vars = BTreeMap::new();
    for svc in chosen.values() {
        for (k, v) in variables_of(svc) {
            vars.insert(k, v);
        }
    }
    vars.into_iter().collect()
}

fn cluster_ip(svc: &Service) -> &str {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or("")
}

/// ENV-4: the variables of one Service, in kubelet's order.
fn variables_of(svc: &Service) -> Vec<(String, String)> {
    let prefix = env_name(typed::key(&svc.metadata).1);
    let ip = cluster_ip(svc);
    // IPv6 addresses are bracketed in URLs (Go's net.JoinHostPort).
    let host_port = |port: i32| match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{ip}]:{port}"),
        _ => format!("{ip}:{port}"),
    };
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let mut out = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_string())];
    // Validation requires ports on a Service with a cluster IP; without any there is nothing more.
    let Some(first) = ports.first() else { return out };
    out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((format!("{prefix}_SERVICE_PORT_{}", env_name(name)), p.port.to_string()));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().filter(|s| !s.is_empty()).unwrap_or("TCP");
        let (lower, upper) = (proto.to_lowercase(), proto.to_uppercase());
        let url = format!("{lower}://{}", host_port(p.port));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{upper}", p.port);
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
        out.push((port_prefix, url));
    }
    out
}

/// Kubernetes' `$(VAR)` expansion (as in `env[].value`, `command`, `args`): `$(VAR)` becomes the
/// value of VAR when `env` knows it and stays as written otherwise; `$$` is an escaped `$` (so
/// `$$(VAR)` gives `$(VAR)`); a `$(` without closing `)` and a `$` before anything else are kept.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match env(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// One declared variable of a container: `expand` for a literal `value:` (kubelet expands those),
/// false for values resolved from `valueFrom` or `envFrom` (a Secret's `$(X)` stays literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredVar {
    pub name: String,
    pub value: String,
    pub expand: bool,
}

/// [`container_env_declared`] for a container whose declared values are all literal `value:`s.
pub fn container_env(declared: &[(String, String)], service_vars: &[(String, String)]) -> Vec<(String, String)> {
    let declared: Vec<DeclaredVar> =
        declared.iter().map(|(name, value)| DeclaredVar { name: name.clone(), value: value.clone(), expand: true }).collect();
    container_env_declared(&declared, service_vars)
}

/// The container's environment (ENV-9): service variables first (those not declared), then the
/// declared ones in declaration order. A declared name wins over a service variable; declared
/// twice, the last value wins at the first position. Literal values are expanded against the
/// variables declared before them, then the service variables, as kubelet does.
pub fn container_env_declared(declared: &[DeclaredVar], service_vars: &[(String, String)]) -> Vec<(String, String)> {
    let services: BTreeMap<&str, &str> = service_vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut resolved: Vec<(String, String)> = Vec::new();
    for var in declared {
        let value = if var.expand && !var.value.is_empty() {
            let lookup = |name: &str| -> Option<String> {
                resolved.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| services.get(name).map(|v| v.to_string()))
            };
            expand(&var.value, &lookup)
        } else {
            var.value.clone()
        };
        match resolved.iter_mut().find(|(k, _)| *k == var.name) {
            Some(slot) => slot.1 = value,
            None => resolved.push((var.name.clone(), value)),
        }
    }
    let mut out: Vec<(String, String)> = service_vars.iter().filter(|(k, _)| !resolved.iter().any(|(d, _)| d == k)).cloned().collect();
    out.extend(resolved);
    out
}

/// A container's `command` or `args` with `$(VAR)` expanded against its final environment
/// (ENV-9: service variables are available there too).
pub fn expand_command(argv: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    argv.iter().map(|a| expand(a, &lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// [`super::service_env`] of Services written as JSON.
    fn service_env(ns: &str, links: bool, services: &[Value]) -> Vec<(String, String)> {
        super::service_env(ns, links, &typed::decode_all::<Service>(services))
    }

    fn service(ns: &str, name: &str, ip: &str, ports: Value) -> Value {
        json!({"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}})
    }

    fn kubernetes() -> Value {
        service("default", "kubernetes", "10.96.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]))
    }

    fn my_nginx() -> Value {
        let mut s = service(
            "default",
            "my-nginx",
            "10.0.162.149",
            json!([{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 80, "nodePort": 31000},
                {"name": "https", "port": 443, "protocol": "TCP", "nodePort": 32000}]),
        );
        s["spec"]["type"] = json!("NodePort");
        s
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.sort();
        v
    }

    fn env_map(vars: &[(String, String)]) -> BTreeMap<String, String> {
        vars.iter().cloned().collect()
    }

    #[test]
    fn env5_kubernetes_service() {
        let expected = pairs(&[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ]);
        assert_eq!(service_env("default", true, &[kubernetes()]), expected);
        // ENV-1/ENV-8: every namespace, even with service links off.
        assert_eq!(service_env("prod", false, &[kubernetes(), my_nginx()]), expected);
        let grep_service: Vec<String> = expected.iter().filter(|(k, _)| k.contains("SERVICE")).map(|(k, _)| k.clone()).collect();
        assert_eq!(grep_service.len(), 3);
    }

    #[test]
    fn env6_two_port_nodeport() {
        let env = service_env("default", true, &[my_nginx()]);
        let c = "10.0.162.149";
        let expected = pairs(&[
            ("MY_NGINX_SERVICE_HOST", c),
            ("MY_NGINX_SERVICE_PORT", "8080"),
            ("MY_NGINX_SERVICE_PORT_HTTP", "8080"),
            ("MY_NGINX_SERVICE_PORT_HTTPS", "443"),
            ("MY_NGINX_PORT", "tcp://10.0.162.149:8080"),
            ("MY_NGINX_PORT_8080_TCP", "tcp://10.0.162.149:8080"),
            ("MY_NGINX_PORT_8080_TCP_PROTO", "tcp"),
            ("MY_NGINX_PORT_8080_TCP_PORT", "8080"),
            ("MY_NGINX_PORT_8080_TCP_ADDR", c),
            ("MY_NGINX_PORT_443_TCP", "tcp://10.0.162.149:443"),
            ("MY_NGINX_PORT_443_TCP_PROTO", "tcp"),
            ("MY_NGINX_PORT_443_TCP_PORT", "443"),
            ("MY_NGINX_PORT_443_TCP_ADDR", c),
        ]);
        assert_eq!(env, expected, "no nodePort anywhere");
        // `kubectl expose` with one unnamed port: only HOST and PORT among *SERVICE*.
        let exposed = service("default", "my-nginx", c, json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]));
        let service_vars: Vec<String> =
            service_env("default", true, &[exposed]).into_iter().filter(|(k, _)| k.contains("SERVICE")).map(|(k, _)| k).collect();
        assert_eq!(service_vars, ["MY_NGINX_SERVICE_HOST", "MY_NGINX_SERVICE_PORT"]);
    }

    #[test]
    fn which_services() {
        let headless = service("default", "db", "None", json!([{"port": 5432}]));
        let mut external = service("default", "ext", "", json!([]));
        external["spec"] = json!({"type": "ExternalName", "externalName": "example.com"});
        let other_ns = service("prod", "cache", "10.96.5.5", json!([{"port": 6379}]));
        let all = [kubernetes(), my_nginx(), headless, external, other_ns];
        let names: BTreeMap<String, String> = env_map(&service_env("default", true, &all));
        assert!(names.keys().all(|k| k.starts_with("KUBERNETES_") || k.starts_with("MY_NGINX_")), "{names:?}");
        assert!(names.contains_key("MY_NGINX_SERVICE_HOST"));
        let prod = env_map(&service_env("prod", true, &all));
        assert_eq!(prod.get("CACHE_SERVICE_HOST").map(String::as_str), Some("10.96.5.5"));
        assert!(!prod.contains_key("MY_NGINX_SERVICE_HOST"));
        assert_eq!(service_env("prod", false, &all).len(), 8, "links off: only KUBERNETES_*");
    }

    #[test]
    fn env10_own_kubernetes_service_wins_when_links_on() {
        let own = service("team", "kubernetes", "10.96.9.9", json!([{"name": "https", "port": 443}]));
        for services in [vec![kubernetes(), own.clone()], vec![own.clone(), kubernetes()]] {
            let on = env_map(&service_env("team", true, &services));
            assert_eq!(on["KUBERNETES_SERVICE_HOST"], "10.96.9.9");
            let off = env_map(&service_env("team", false, &services));
            assert_eq!(off["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        }
    }

    #[test]
    fn names_protocols_and_ipv6() {
        let svc = service(
            "default",
            "redis-primary",
            "fd00::1",
            json!([{"name": "http-web", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
        );
        let env = env_map(&service_env("default", true, &[svc]));
        assert_eq!(env["REDIS_PRIMARY_SERVICE_HOST"], "fd00::1");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT"], "80");
        assert_eq!(env["REDIS_PRIMARY_SERVICE_PORT_HTTP_WEB"], "80");
        assert_eq!(env["REDIS_PRIMARY_PORT"], "tcp://[fd00::1]:80");
        assert_eq!(env["REDIS_PRIMARY_PORT_53_UDP"], "udp://[fd00::1]:53");
        assert_eq!(env["REDIS_PRIMARY_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["REDIS_PRIMARY_PORT_53_UDP_ADDR"], "fd00::1");
    }

    #[test]
    fn dollar_paren_expansion() {
        let env = |k: &str| match k {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        for (input, want) in [
            ("$(A)", "1"),
            ("x$(A)y$(A)", "x1y1"),
            ("$(MISSING)", "$(MISSING)"),
            ("$(EMPTY)!", "!"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$1"),
            ("$$", "$"),
            ("a$", "a$"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("$(", "$("),
            ("$()", "$()"),
            ("é$(A)ü", "é1ü"),
            ("no vars", "no vars"),
        ] {
            assert_eq!(expand(input, &env), want, "{input}");
        }
    }

    #[test]
    fn declared_env_precedence_and_expansion() {
        let services = service_env("default", true, &[kubernetes()]);
        let declared = [
            ("KUBERNETES_SERVICE_PORT".to_string(), "8443".to_string()),
            ("API".to_string(), "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)".to_string()),
            ("LATER".to_string(), "$(NEXT)".to_string()),
            ("NEXT".to_string(), "n".to_string()),
        ];
        let env = container_env(&declared, &services);
        // Service variables first, without the overridden one; declared ones after, in order.
        assert_eq!(env.len(), services.len() + 3);
        assert_eq!(env.iter().filter(|(k, _)| k == "KUBERNETES_SERVICE_PORT").count(), 1);
        let tail: Vec<(String, String)> = env[env.len() - 4..].to_vec();
        assert_eq!(
            tail,
            [
                ("KUBERNETES_SERVICE_PORT".into(), "8443".into()),
                ("API".into(), "https://10.96.0.1:8443".into()),
                ("LATER".into(), "$(NEXT)".into()),
                ("NEXT".into(), "n".into())
            ],
            "declared vars expand over earlier declared ones first, never later ones"
        );
        assert!(env[..env.len() - 4].iter().all(|(k, _)| k.starts_with("KUBERNETES_")));

        // Resolved (valueFrom) values are not expanded; a re-declared name keeps its first place.
        let declared = [
            DeclaredVar { name: "SECRET".into(), value: "p$(KUBERNETES_SERVICE_HOST)".into(), expand: false },
            DeclaredVar { name: "X".into(), value: "1".into(), expand: true },
            DeclaredVar { name: "SECRET".into(), value: "$(X)".into(), expand: true },
        ];
        let env = container_env_declared(&declared, &[]);
        assert_eq!(env, [("SECRET".to_string(), "1".to_string()), ("X".to_string(), "1".to_string())]);
        let env = container_env_declared(&declared[..1], &services);
        assert_eq!(env.last().unwrap().1, "p$(KUBERNETES_SERVICE_HOST)");
    }

    #[test]
    fn command_expansion() {
        let env = container_env(&[("GREETING".into(), "hi".into())], &service_env("default", true, &[kubernetes()]));
        let argv: Vec<String> = ["sh", "-c", "echo $(GREETING) $(KUBERNETES_SERVICE_HOST) $$(HOME) $(NOPE)"].map(String::from).to_vec();
        assert_eq!(expand_command(&argv, &env)[2], "echo hi 10.96.0.1 $(HOME) $(NOPE)");
    }
}
