//! Runs the real `sso-operator controller` binary against the local control plane, as a
//! ServiceAccount bound to exactly the RBAC rules the Helm chart ships
//! (`charts/sso-operator/files/controller*-rules.yaml`).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::config::Kubeconfig;

use super::{TEST_MANAGER, admin_kubeconfig, repo_root};

/// External URL every test controller uses.
pub const EXTERNAL_URL: &str = "https://sso.example.test";

fn rules(file: &str) -> Vec<PolicyRule> {
    let text = std::fs::read_to_string(repo_root().join("charts/sso-operator/files").join(file))
        .expect("read RBAC rules");
    serde_saphyr::from_str(&text).expect("parse RBAC rules")
}

/// Grants the ServiceAccount `namespace/sso-operator` the chart's controller rules in
/// `namespace` and returns a kubeconfig file that authenticates as it.
pub async fn controller_kubeconfig(admin: &Client, namespace: &str) -> PathBuf {
    controller_kubeconfig_at(admin, &admin_kubeconfig(), namespace).await
}

/// Creates (or keeps) ServiceAccount `namespace/name`.
async fn apply_service_account(admin: &Client, namespace: &str, name: &str) {
    Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&ServiceAccount {
                metadata: meta(name),
                ..Default::default()
            }),
        )
        .await
        .expect("create ServiceAccount");
}

/// Like [`controller_kubeconfig`], on the control plane of `admin_kubeconfig` (for example a
/// private one).
pub async fn controller_kubeconfig_at(
    admin: &Client,
    admin_kubeconfig: &std::path::Path,
    namespace: &str,
) -> PathBuf {
    let pp = PatchParams::apply(TEST_MANAGER).force();
    let sa_name = "sso-operator";
    apply_service_account(admin, namespace, sa_name).await;
    let cluster_role = "sso-operator-controller-test";
    Api::<ClusterRole>::all(admin.clone())
        .patch(
            cluster_role,
            &pp,
            &Patch::Apply(&ClusterRole {
                metadata: meta(cluster_role),
                rules: Some(rules("controller-rules.yaml")),
                ..Default::default()
            }),
        )
        .await
        .expect("apply ClusterRole");
    // The operator namespace and the configuration namespace are one here.
    let mut namespace_rules = rules("controller-namespace-rules.yaml");
    namespace_rules.extend(rules("controller-config-rules.yaml"));
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    roles
        .patch(
            "sso-operator-controller",
            &pp,
            &Patch::Apply(&Role {
                metadata: meta("sso-operator-controller"),
                rules: Some(namespace_rules),
            }),
        )
        .await
        .expect("apply Role");
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: sa_name.into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    for (name, kind, role) in [
        (
            "sso-operator-controller-cluster-rules",
            "ClusterRole",
            cluster_role,
        ),
        ("sso-operator-controller", "Role", "sso-operator-controller"),
    ] {
        let binding = RoleBinding {
            metadata: meta(name),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: kind.into(),
                name: role.into(),
            },
            subjects: Some(vec![subject.clone()]),
        };
        bindings
            .patch(name, &pp, &Patch::Apply(&binding))
            .await
            .expect("apply RoleBinding");
    }

    let token = super::service_account_token(admin, namespace, sa_name).await;
    write_kubeconfig_at(admin_kubeconfig, namespace, sa_name, &token)
}

/// A free TCP port on 127.0.0.1, never one this process was given before: the kernel may
/// hand the same free port out twice (say, for a server's listener and its metrics) once
/// the probe that found it has closed.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Grants the ServiceAccount `namespace/sso-operator-server` the chart's server rules (read
/// the compiled configuration, here in the same namespace, nothing else) and returns a
/// kubeconfig for it.
pub async fn server_kubeconfig(admin: &Client, namespace: &str) -> PathBuf {
    server_kubeconfig_reading(admin, namespace, namespace).await
}

/// Grants the chart's `rules_file` in `in_namespace` to the ServiceAccount
/// `namespace/sa_name`, with a Role and RoleBinding named `role`.
pub async fn grant(
    admin: &Client,
    in_namespace: &str,
    role: &str,
    rules_file: &str,
    namespace: &str,
    sa_name: &str,
) {
    let pp = PatchParams::apply(TEST_MANAGER).force();
    Api::<Role>::namespaced(admin.clone(), in_namespace)
        .patch(
            role,
            &pp,
            &Patch::Apply(&Role {
                metadata: meta(role),
                rules: Some(rules(rules_file)),
            }),
        )
        .await
        .expect("apply Role");
    let binding = RoleBinding {
        metadata: meta(role),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa_name.into(),
            namespace: Some(namespace.into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), in_namespace)
        .patch(role, &pp, &Patch::Apply(&binding))
        .await
        .expect("apply RoleBinding");
}

/// Like [`server_kubeconfig`], reading the compiled configuration in `config_namespace`.
pub async fn server_kubeconfig_reading(
    admin: &Client,
    namespace: &str,
    config_namespace: &str,
) -> PathBuf {
    let pp = PatchParams::apply(TEST_MANAGER).force();
    let sa_name = "sso-operator-server";
    apply_service_account(admin, namespace, sa_name).await;
    grant(
        admin,
        config_namespace,
        sa_name,
        "server-config-rules.yaml",
        namespace,
        sa_name,
    )
    .await;
    // The cluster-wide rules (status.scim of IdentityProviders), bound in this namespace.
    let cluster_role = "sso-operator-server-test";
    Api::<ClusterRole>::all(admin.clone())
        .patch(
            cluster_role,
            &pp,
            &Patch::Apply(&ClusterRole {
                metadata: meta(cluster_role),
                rules: Some(rules("server-rules.yaml")),
                ..Default::default()
            }),
        )
        .await
        .expect("apply ClusterRole");
    let binding = RoleBinding {
        metadata: meta("sso-operator-server-cluster-rules"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa_name.into(),
            namespace: Some(namespace.into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .patch(
            "sso-operator-server-cluster-rules",
            &pp,
            &Patch::Apply(&binding),
        )
        .await
        .expect("apply RoleBinding");
    let token = super::service_account_token(admin, namespace, sa_name).await;
    write_kubeconfig(namespace, sa_name, &token)
}

/// Writes a kubeconfig that authenticates with `token` as `namespace/sa_name`.
pub fn write_kubeconfig(namespace: &str, user: &str, token: &str) -> PathBuf {
    write_kubeconfig_at(&admin_kubeconfig(), namespace, user, token)
}

/// Like [`write_kubeconfig`], for the control plane of `admin_kubeconfig`.
pub fn write_kubeconfig_at(
    admin_kubeconfig: &std::path::Path,
    namespace: &str,
    user: &str,
    token: &str,
) -> PathBuf {
    let admin_config = Kubeconfig::read_from(admin_kubeconfig).expect("read admin kubeconfig");
    let cluster = admin_config.clusters[0].cluster.clone().expect("cluster");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "local", "cluster": { "server": cluster.server, "certificate-authority-data": cluster.certificate_authority_data } }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": "local", "context": { "cluster": "local", "user": user, "namespace": namespace } }],
        "current-context": "local",
    });
    let dir = std::env::temp_dir().join("sso-operator-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{namespace}-{user}.kubeconfig"));
    std::fs::write(
        &path,
        serde_json::to_vec(&kubeconfig).expect("kubeconfig json"),
    )
    .expect("write kubeconfig");
    path
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A running controller process; killed when dropped.
pub struct Operator {
    child: Child,
    /// Address of its /healthz, /readyz and /metrics.
    pub metrics_address: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
}

impl Operator {
    /// Starts `sso-operator controller` for `namespace` (watched namespace and operator
    /// namespace alike) with the given extra arguments.
    pub fn start(kubeconfig: &std::path::Path, namespace: &str, extra: &[&str]) -> Self {
        Self::start_at(kubeconfig, namespace, EXTERNAL_URL, extra)
    }

    /// Like [`Operator::start`], with another external URL.
    pub fn start_at(
        kubeconfig: &std::path::Path,
        namespace: &str,
        external_url: &str,
        extra: &[&str],
    ) -> Self {
        let mut args = vec![
            "controller",
            "--external-url",
            external_url,
            "--operator-namespace",
            namespace,
            "--watch-namespace",
            namespace,
        ];
        args.extend_from_slice(extra);
        Self::spawn(kubeconfig, namespace, &args)
    }

    /// Starts `sso-operator server` reading the compiled configuration of `namespace`, on a
    /// free port of 127.0.0.1; returns it and its base URL.
    pub fn start_server(
        kubeconfig: &std::path::Path,
        namespace: &str,
        database_url: &str,
    ) -> (Self, String) {
        Self::start_server_with(kubeconfig, namespace, database_url, &[])
    }

    /// Like [`Operator::start_server`], with extra arguments.
    pub fn start_server_with(
        kubeconfig: &std::path::Path,
        namespace: &str,
        database_url: &str,
        extra: &[&str],
    ) -> (Self, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        Self::start_server_at(kubeconfig, namespace, database_url, &listen, extra)
    }

    /// Like [`Operator::start_server_with`], listening on `listen` (`127.0.0.1:PORT`).
    pub fn start_server_at(
        kubeconfig: &std::path::Path,
        namespace: &str,
        database_url: &str,
        listen: &str,
        extra: &[&str],
    ) -> (Self, String) {
        let mut args = vec![
            "server",
            "--operator-namespace",
            namespace,
            "--listen",
            listen,
            "--database-url",
            database_url,
        ];
        args.extend_from_slice(extra);
        let op = Self::spawn(kubeconfig, namespace, &args);
        (op, format!("http://{listen}"))
    }

    /// Starts `sso-operator` with `args` (the first names the role); `namespace` names its log.
    pub fn spawn(kubeconfig: &std::path::Path, namespace: &str, args: &[&str]) -> Self {
        let port = free_port();
        let metrics_address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let log = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("{namespace}-{}-{port}.log", args[0]));
        let file = std::fs::File::create(&log).expect("create log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sso-operator"))
            .args(args)
            .args(["--metrics-address", &metrics_address.to_string()])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start sso-operator");
        Self {
            child,
            metrics_address,
            log,
        }
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL (a crash) and waits for the process to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a graceful shutdown) and waits up to 20 s for the process to end.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fetches `/metrics`.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics_address);
        match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh namespace of its own with the real controller and `sso-operator server` started
/// for it, the way most end-to-end tests begin. Destructure it (`client, ns` first, so that
/// the processes stop before the namespace goes).
pub struct Stack {
    /// `sso-operator controller`, with the extra arguments given.
    pub controller: Operator,
    /// `sso-operator server` on a free port of 127.0.0.1.
    pub server: Operator,
    /// The server's base URL.
    pub url: String,
    /// An admin client of the control plane.
    pub client: Client,
    /// The test's namespace.
    pub ns: super::TestNamespace,
}

impl Stack {
    /// Installs the CRDs, creates a namespace named after `prefix`, and starts the controller
    /// (with `controller_args`) and the server (on `database_url`, with `server_args`) in it.
    pub async fn start(
        prefix: &str,
        database_url: &str,
        controller_args: &[&str],
        server_args: &[&str],
    ) -> Self {
        Self::start_with(prefix, database_url, controller_args, server_args, false).await
    }

    /// Like [`Stack::start`], with the server's own address (`http://127.0.0.1:PORT`) as the
    /// external URL, so that a server-to-server call from an IdP (to the URLs in the SP
    /// metadata) reaches it.
    pub async fn start_reachable(
        prefix: &str,
        database_url: &str,
        controller_args: &[&str],
        server_args: &[&str],
    ) -> Self {
        Self::start_with(prefix, database_url, controller_args, server_args, true).await
    }

    async fn start_with(
        prefix: &str,
        database_url: &str,
        controller_args: &[&str],
        server_args: &[&str],
        reachable: bool,
    ) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let external_url = if reachable {
            format!("http://{listen}")
        } else {
            EXTERNAL_URL.to_owned()
        };
        Self::start_at(
            prefix,
            database_url,
            controller_args,
            server_args,
            &listen,
            &external_url,
        )
        .await
    }

    /// Like [`Stack::start`], with the server listening on `listen` (`127.0.0.1:PORT`) and
    /// `external_url` as the controller's `--external-url` (a TLS front's URL, say).
    pub async fn start_at(
        prefix: &str,
        database_url: &str,
        controller_args: &[&str],
        server_args: &[&str],
        listen: &str,
        external_url: &str,
    ) -> Self {
        let client = super::admin_client().await;
        super::install_crds(&client).await;
        let ns = super::TestNamespace::new(&client, prefix).await;
        let controller = Operator::start_at(
            &controller_kubeconfig(&client, &ns.name).await,
            &ns.name,
            external_url,
            controller_args,
        );
        let (server, url) = Operator::start_server_at(
            &server_kubeconfig(&client, &ns.name).await,
            &ns.name,
            database_url,
            listen,
            server_args,
        );
        // The server listens once it has read the compiled configuration and bound its
        // tenants; tests start talking to it only then.
        let listening = super::wait_for(Duration::from_secs(90), || async {
            tokio::net::TcpStream::connect(listen).await.ok().map(drop)
        })
        .await;
        assert!(
            listening.is_some(),
            "the server never listened on {listen}\nserver log:\n{}",
            server.log_text()
        );
        Self {
            controller,
            server,
            url,
            client,
            ns,
        }
    }
}
