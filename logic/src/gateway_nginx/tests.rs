//! The Gateway renderer against the Gateway API's semantics: the model, the golden nginx.conf
//! text, and [`route`]'s decisions for each precedence rule.

use super::*;
use serde_json::{json, Value};

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn layout() -> Layout {
    Layout {
        run_dir: "/run/gw".into(),
        cert_dir: "/etc/gw/ssl".into(),
        default_cert: "/etc/gw/ssl/default.pem".into(),
        upstreams_file: "/etc/gw/upstreams.conf".into(),
    }
}

fn gateway(listeners: Value) -> Gateway {
    decode(json!({"metadata": {"name": "gw", "namespace": "default"}, "spec": {"gatewayClassName": "emu", "listeners": listeners}}))
}

#[test]
fn listeners_become_servers_with_a_catch_all_per_port() {
    let gw = gateway(json!([
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
         "tls": {"certificateRefs": [{"name": "missing"}]}}
    ]));
    let inputs = Inputs { gateway: &gw, routes: &[], namespaces: &[], services: &[], slices: &[], secrets: &[] };
    let model = build(&inputs, &layout());
    let servers: Vec<(u16, Option<&str>, bool)> = model.servers.iter().map(|s| (s.port, s.hostname.as_deref(), s.tls)).collect();
    assert_eq!(servers, vec![(80, None, false), (443, None, true), (443, Some("a.example.com"), true)]);
    assert_eq!(model.problems[0].reason, "InvalidCertificateRef");
    let conf = render_conf(&model, &layout(), "default/gw");
    assert!(conf.contains("listen 443 ssl default_server;"), "{conf}");
    if let Ok(dir) = std::env::var("EMU_GATEWAY_CONF_OUT") {
        std::fs::write(format!("{dir}/nginx.conf"), &conf).unwrap();
    }
}
