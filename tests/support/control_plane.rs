//! A private local control plane for tests that stop and start the API server under a
//! running operator. Every other test shares the default instance, so this one has its own
//! state directory and ports (`tests/kube/up` with SSO_KUBE_DIR, SSO_KUBE_PORT and
//! SSO_ETCD_PORT). Its etcd data and certificates stay across a stop, so resources and
//! ServiceAccount tokens survive; everything is removed when it is dropped.
//!
//! [`PrivateControlPlane::start_with_authentication`] gives its API server an
//! AuthenticationConfiguration (structured authentication: the JWT issuers it trusts), as a
//! cluster that signs users in with an OpenID Provider has.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::repo_root;

/// A control plane of one test.
pub struct PrivateControlPlane {
    dir: PathBuf,
    port: u16,
    etcd_port: u16,
    /// The AuthenticationConfiguration file given to kube-apiserver, if any.
    authentication: Option<PathBuf>,
}

impl PrivateControlPlane {
    /// Starts a fresh control plane named `name` on free ports of 127.0.0.1.
    pub fn start(name: &str) -> Self {
        let plane = Self::new(name);
        plane.up();
        plane
    }

    /// Like [`PrivateControlPlane::start`], with `yaml` (an AuthenticationConfiguration,
    /// apiserver.config.k8s.io/v1, such as [`super::oidc::authentication_config`] renders) as
    /// kube-apiserver's `--authentication-config`. The API server starts even when an issuer
    /// does not answer yet: it retries discovery every 10 s, and refuses that issuer's tokens
    /// until discovery succeeds.
    pub fn start_with_authentication(name: &str, yaml: &str) -> Self {
        let mut plane = Self::new(name);
        let file = plane.dir.join("authentication.yaml");
        std::fs::write(&file, yaml).expect("write the AuthenticationConfiguration");
        plane.authentication = Some(file);
        plane.up();
        plane
    }

    /// Replaces the AuthenticationConfiguration of a plane started with
    /// [`PrivateControlPlane::start_with_authentication`]. The API server checks the file once
    /// a minute and swaps a valid new configuration in once its issuers answer discovery (it
    /// keeps the old one otherwise); [`PrivateControlPlane::stop`] and
    /// [`PrivateControlPlane::up`] apply it at once.
    pub fn set_authentication(&self, yaml: &str) {
        let file = self
            .authentication
            .as_ref()
            .expect("a plane started with start_with_authentication");
        std::fs::write(file, yaml).expect("write the AuthenticationConfiguration");
    }

    /// Its API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Its API server's log (kube-apiserver, etcd, controllers in one file).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("kube-local.log")).unwrap_or_default()
    }

    /// A plane that is not running yet, with its directory and free ports.
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("kube-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the control plane's directory");
        let port = super::operator::free_port();
        // etcd uses its client port and the next one (peers).
        let etcd_port = loop {
            let p = super::operator::free_port();
            if p != port
                && p < u16::MAX
                && p + 1 != port
                && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            {
                break p;
            }
        };
        Self {
            dir,
            port,
            etcd_port,
            authentication: None,
        }
    }

    /// Its admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// A cluster-admin client.
    pub async fn admin_client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig()).expect("read admin kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("admin kubeconfig is valid");
        Client::try_from(config).expect("build admin client")
    }

    /// Starts it again (after [`PrivateControlPlane::stop`]) with the same data and ports;
    /// returns when the API server is ready, with that instant.
    pub fn up(&self) -> Instant {
        self.script("up");
        Instant::now()
    }

    /// Stops etcd and the API server; their data stays.
    pub fn stop(&self) {
        self.script("down");
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn script(&self, name: &str) {
        let mut command = Command::new(repo_root().join("tests/kube").join(name));
        match &self.authentication {
            Some(file) => command.env("SSO_KUBE_AUTHENTICATION_CONFIG", file),
            None => command.env_remove("SSO_KUBE_AUTHENTICATION_CONFIG"),
        };
        let out = command
            .env("SSO_KUBE_DIR", &self.dir)
            .env("SSO_KUBE_PORT", self.port.to_string())
            .env("SSO_ETCD_PORT", self.etcd_port.to_string())
            .output()
            .unwrap_or_else(|e| panic!("run tests/kube/{name}: {e}"));
        assert!(
            out.status.success(),
            "tests/kube/{name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("tests/kube/down"))
            .env("SSO_KUBE_DIR", &self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
