//! Name arithmetic of the cluster zone: splitting a query name into the labels below a zone,
//! the dashed-IP form of endpoint and pod names, and the IP behind a reverse (`in-addr.arpa`,
//! `ip6.arpa`) name. Pure functions, no I/O.

use hickory_proto::rr::Name;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The labels of `name` below `zone`, lower-cased, innermost first (`my-nginx.default.svc` gives
/// `["my-nginx", "default", "svc"]`), or `None` when `name` is not in `zone`. Comparison ignores
/// ASCII case (DNS-9); a label that is not UTF-8 is kept lossily and then matches nothing.
pub fn labels_below(name: &Name, zone: &Name) -> Option<Vec<String>> {
    if !zone.zone_of(name) {
        return None;
    }
    let below = name.num_labels_including_wildcard().checked_sub(zone.num_labels_including_wildcard())?;
    Some(name.iter().take(below).map(|label| String::from_utf8_lossy(label).to_ascii_lowercase()).collect())
}

/// Label counts that do not treat a leading `*` specially (`Name::num_labels` does, and a query
/// for `*.svc.cluster.local` must not be mistaken for the apex).
trait LabelCount {
    fn num_labels_including_wildcard(&self) -> usize;
}

impl LabelCount for Name {
    fn num_labels_including_wildcard(&self) -> usize {
        self.iter().count()
    }
}

/// An IP as a single DNS label: `10.244.1.5` → `10-244-1-5`; IPv6 colons become dashes and a
/// trailing dash gets a `0` (`fd00::` → `fd00--0`), as CoreDNS names endpoints without a hostname.
pub fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let mut dashed = v6.to_string().replace(':', "-");
            if dashed.ends_with('-') {
                dashed.push('0');
            }
            dashed
        }
    }
}

/// The IP written as a dashed label (the inverse of [`dashed_ip`]), for pod names
/// `a-b-c-d.<ns>.pod.<zone>`. `None` unless it is a well-formed address.
pub fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3 {
        if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
            return Some(IpAddr::V4(v4));
        }
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The reverse zones we answer PTR queries in.
pub fn reverse_zones() -> [Name; 2] {
    [Name::from_ascii("in-addr.arpa.").expect("valid name"), Name::from_ascii("ip6.arpa.").expect("valid name")]
}

/// The address a complete reverse name stands for: `5.1.244.10.in-addr.arpa.` → `10.244.1.5`,
/// 32 nibbles under `ip6.arpa.` → an IPv6 address. `None` for partial or malformed names (they
/// are not ours to answer).
pub fn parse_reverse_name(name: &Name) -> Option<IpAddr> {
    let [v4_zone, v6_zone] = reverse_zones();
    if let Some(labels) = labels_below(name, &v4_zone) {
        return parse_reverse_v4(&labels).map(IpAddr::V4);
    }
    labels_below(name, &v6_zone).and_then(|labels| parse_reverse_v6(&labels)).map(IpAddr::V6)
}

fn parse_reverse_v4(labels: &[String]) -> Option<Ipv4Addr> {
    let [d, c, b, a] = labels else { return None };
    let octet = |s: &String| -> Option<u8> {
        // "010" is not how an address is written in a reverse name.
        if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
            return None;
        }
        s.parse().ok()
    };
    Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
}

fn parse_reverse_v6(labels: &[String]) -> Option<Ipv6Addr> {
    if labels.len() != 32 {
        return None;
    }
    let mut value: u128 = 0;
    // Labels are nibbles, least significant first.
    for label in labels.iter().rev() {
        let [nibble] = label.as_bytes() else { return None };
        value = (value << 4) | u128::from(char::from(*nibble).to_digit(16)?);
    }
    Some(Ipv6Addr::from(value))
}

/// `prefix` (dot-separated labels, may be empty) followed by `zone`, as a fully qualified name.
/// `None` if a label is not valid in a name (too long, for example).
pub fn join(prefix: &str, zone: &Name) -> Option<Name> {
    if prefix.is_empty() {
        return Some(zone.clone());
    }
    Name::from_ascii(prefix).ok()?.append_domain(zone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn labels_below_the_zone_are_lower_cased_innermost_first() {
        let zone = name("cluster.local.");
        assert_eq!(labels_below(&name("My-Nginx.Default.SVC.Cluster.Local."), &zone).unwrap(), ["my-nginx", "default", "svc"]);
        assert_eq!(labels_below(&name("cluster.local."), &zone).unwrap(), Vec::<String>::new());
        assert_eq!(labels_below(&name("*.svc.cluster.local."), &zone).unwrap(), ["*", "svc"]);
        assert!(labels_below(&name("example.com."), &zone).is_none());
        assert!(labels_below(&name("local."), &zone).is_none());
        assert!(labels_below(&name("xcluster.local."), &zone).is_none());
    }

    #[test]
    fn dashed_ips_round_trip() {
        assert_eq!(dashed_ip("10.244.1.5".parse().unwrap()), "10-244-1-5");
        assert_eq!(dashed_ip("fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(dashed_ip("fd00::".parse().unwrap()), "fd00--0");
        for ip in ["10.244.1.5", "fd00::1", "fd00::"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(parse_dashed_ip(&dashed_ip(ip)), Some(ip));
        }
        assert_eq!(parse_dashed_ip("10-244-1"), None);
        assert_eq!(parse_dashed_ip("10-244-1-256"), None);
        assert_eq!(parse_dashed_ip("my-nginx"), None);
        assert_eq!(parse_dashed_ip("a-b-c-d"), None);
    }

    #[test]
    fn reverse_names_give_their_address() {
        assert_eq!(parse_reverse_name(&name("5.1.244.10.in-addr.arpa.")), Some("10.244.1.5".parse().unwrap()));
        assert_eq!(parse_reverse_name(&name("5.1.244.10.IN-ADDR.ARPA.")), Some("10.244.1.5".parse().unwrap()));
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(parse_reverse_name(&Name::from(v6)), Some(v6));
        let v4: IpAddr = "10.96.0.10".parse().unwrap();
        assert_eq!(parse_reverse_name(&Name::from(v4)), Some(v4));
        assert_eq!(parse_reverse_name(&name("1.244.10.in-addr.arpa.")), None);
        assert_eq!(parse_reverse_name(&name("05.1.244.10.in-addr.arpa.")), None);
        assert_eq!(parse_reverse_name(&name("x.1.244.10.in-addr.arpa.")), None);
        assert_eq!(parse_reverse_name(&name("1.2.3.4.5.in-addr.arpa.")), None);
        assert_eq!(parse_reverse_name(&name("example.com.")), None);
    }

    #[test]
    fn join_builds_fully_qualified_names() {
        let zone = name("cluster.local.");
        assert_eq!(join("my-nginx.default.svc", &zone).unwrap().to_ascii(), "my-nginx.default.svc.cluster.local.");
        assert_eq!(join("", &zone).unwrap(), zone);
        assert!(join(&"x".repeat(64), &zone).is_none());
    }
}
