//! Test support: one real local Kubernetes control plane per test run (started by
//! `tests/kube/up`, or reused when already running), a namespace per test, and clients that
//! authenticate as a given ServiceAccount.
#![allow(dead_code)]

pub mod chart;
pub mod control_plane;
pub mod envoy;
pub mod oidc;
pub mod operator;
pub mod sso;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Field manager used by the tests themselves.
pub const TEST_MANAGER: &str = "sso-operator-tests";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory holding the local control plane's state and admin kubeconfig.
pub fn kube_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SSO_KUBE_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("SSO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/sso-operator")
        });
    cache.join("kube")
}

/// Path of the admin kubeconfig of the local control plane, starting it if needed.
pub fn admin_kubeconfig() -> PathBuf {
    static STARTED: OnceLock<PathBuf> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let status = Command::new(repo_root().join("tests/kube/up"))
                .status()
                .expect("run tests/kube/up");
            assert!(status.success(), "tests/kube/up failed: {status}");
            kube_dir().join("admin.kubeconfig")
        })
        .clone()
}

/// A client with cluster-admin rights on the local control plane.
pub async fn admin_client() -> Client {
    let kubeconfig = Kubeconfig::read_from(admin_kubeconfig()).expect("read admin kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("admin kubeconfig is valid");
    Client::try_from(config).expect("build admin client")
}

/// Installs (server-side apply) both CRDs from `crds/` and waits until they are Established.
pub async fn install_crds(client: &Client) {
    let yaml = std::fs::read_to_string(repo_root().join("crds/sso-operator.yaml"))
        .expect("read crds/sso-operator.yaml");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for doc in serde_saphyr::from_multiple::<CustomResourceDefinition>(&yaml)
        .expect("parse crds/sso-operator.yaml")
    {
        let name = doc.metadata.name.clone().expect("CRD has a name");
        crds.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        names.push(name);
    }
    for name in names {
        wait_for(Duration::from_secs(30), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .into_iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await
        .unwrap_or_else(|| panic!("CRD {name} did not become Established"));
    }
}

/// A namespace of its own for one test; deleted (best effort) when dropped.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// Creates a namespace whose name starts with `prefix`.
    pub async fn new(client: &Client, prefix: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!(
            "{prefix}-{}-{:x}{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("sso-operator.dev/test".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's client is driven by the test's (blocked) runtime:
        // delete with a client of its own on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let api = Api::<Namespace>::all(admin_client().await);
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                });
            }
        })
        .join();
    }
}

/// A client that authenticates as the ServiceAccount `namespace/name` (a bound token from the
/// TokenRequest API), so code can be run with exactly that account's RBAC permissions.
pub async fn service_account_client(admin: &Client, namespace: &str, name: &str) -> Client {
    let token = service_account_token(admin, namespace, name).await;
    let kubeconfig = Kubeconfig::read_from(admin_kubeconfig()).expect("read admin kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("admin kubeconfig is valid");
    config.auth_info =
        serde_json::from_value(serde_json::json!({ "token": token })).expect("token auth info");
    config.default_namespace = namespace.to_owned();
    Client::try_from(config).expect("build ServiceAccount client")
}

/// A bound token (TokenRequest API, one hour) for the ServiceAccount `namespace/name`.
pub async fn service_account_token(admin: &Client, namespace: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    sas.create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("create ServiceAccount token")
        .status
        .expect("token status")
        .token
        .expect("token")
}

/// Waits (30 s at most) for the controller to write the token into Secret `namespace/secret`
/// and returns it.
pub async fn wait_for_token(client: &Client, namespace: &str, secret: &str) -> String {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    wait_for(Duration::from_secs(30), || {
        let secrets = secrets.clone();
        async move {
            String::from_utf8(
                secrets
                    .get(secret)
                    .await
                    .ok()?
                    .data?
                    .get("token")?
                    .0
                    .clone(),
            )
            .ok()
        }
    })
    .await
    .unwrap_or_else(|| panic!("the controller never wrote a token into {namespace}/{secret}"))
}

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates or changes IdentityProvider `name` in `namespace` with `spec` (server-side apply
/// under the field manager `tests`, forced), as `kubectl apply --server-side` of a manifest does.
pub async fn apply_identity_provider(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: &serde_json::Value,
) {
    let obj = serde_json::json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": name }, "spec": spec });
    Api::<sso_operator::api::IdentityProvider>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply IdentityProvider {namespace}/{name}: {e}"));
}

/// Creates or changes ScimToken `name` in `namespace` with `spec`, like
/// [`apply_identity_provider`].
pub async fn apply_scim_token(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: &serde_json::Value,
) {
    let obj = serde_json::json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "ScimToken", "metadata": { "name": name }, "spec": spec });
    Api::<sso_operator::api::ScimToken>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply ScimToken {namespace}/{name}: {e}"));
}

/// An HTTP client that never follows redirects, so a test sees every `Location` it is sent.
pub fn http_without_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build an HTTP client")
}

/// A real HTTPS server on 127.0.0.1 (Python's http.server with TLS) serving the files of a
/// directory, with a certificate for 127.0.0.1 issued by a CA of its own.
pub struct HttpsServer {
    child: std::process::Child,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Directory served.
    pub dir: PathBuf,
    /// PEM file of the CA that issued the server's certificate.
    pub ca_file: PathBuf,
}

const HTTPS_SERVER: &str = r#"
import http.server, ssl, sys, functools
directory, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"#;

impl HttpsServer {
    /// Starts the server; `name` keeps parallel tests apart.
    pub fn start(name: &str) -> Self {
        use std::io::BufRead;

        let dir = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("https-{name}-{}", std::process::id()));
        let www = dir.join("www");
        std::fs::create_dir_all(&www).expect("create server dir");
        let (ca_file, server_pem, server_key) = tls_files(&dir);
        let mut child = Command::new("python3")
            .args(["-c", HTTPS_SERVER])
            .arg(&www)
            .arg(server_pem)
            .arg(server_key)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start python3 https server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read port");
        let port = line.trim().parse().expect("server printed its port");
        Self {
            child,
            port,
            dir: www,
            ca_file,
        }
    }

    /// `https://127.0.0.1:PORT/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA of its own and a certificate for 127.0.0.1 issued by it (valid for two days), written
/// as PEM files into `dir`: (ca.pem, server.pem, server.key).
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509, X509NameBuilder};
    let build = |cn: &str, ca: Option<(&X509, &PKey<Private>)>| {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        let n = n.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = openssl::bn::BigNum::new().unwrap();
        serial
            .rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)
            .unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        match ca {
            None => {
                b.set_issuer_name(&n).unwrap();
                b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
                b.sign(&key, MessageDigest::sha256()).unwrap();
            }
            Some((ca_cert, ca_key)) => {
                b.set_issuer_name(ca_cert.subject_name()).unwrap();
                let san = SubjectAlternativeName::new()
                    .ip("127.0.0.1")
                    .build(&b.x509v3_context(Some(ca_cert), None))
                    .unwrap();
                b.append_extension(san).unwrap();
                b.sign(ca_key, MessageDigest::sha256()).unwrap();
            }
        }
        (b.build(), key)
    };
    let (ca, ca_key) = build("sso-operator test CA", None);
    let (leaf, leaf_key) = build("127.0.0.1", Some((&ca, &ca_key)));
    let files = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&files.0, ca.to_pem().unwrap()).unwrap();
    std::fs::write(&files.1, leaf.to_pem().unwrap()).unwrap();
    std::fs::write(&files.2, leaf_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    files
}

/// An instant as SAML writes it (`xs:dateTime` in UTC, whole seconds).
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A fresh SAML ID: `prefix` and 128 random bits in hex.
pub fn random_id(prefix: &str) -> String {
    let mut v = [0u8; 16];
    openssl::rand::rand_bytes(&mut v).unwrap();
    format!("{prefix}{}", hex::encode(v))
}

/// Percent-encodes `s` for a URL query value: everything but RFC 3986's unreserved characters.
pub fn urlencode(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The `Set-Cookie` headers of an answer, whole (value and attributes).
pub fn set_cookie_headers(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The cookies an answer sets, by name (values only, attributes dropped).
pub fn set_cookies(r: &reqwest::Response) -> std::collections::HashMap<String, String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (k, rest) = v.split_once('=')?;
            Some((k.to_owned(), rest.split(';').next()?.to_owned()))
        })
        .collect()
}

/// SAML metadata of an IdP with the given entity ID, SSO URL and signing certificates (PEM).
pub fn idp_metadata(entity_id: &str, sso_url: &str, certificates: &[&str]) -> String {
    let keys: String = certificates
        .iter()
        .map(|pem| {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            format!(r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#)
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}"><md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{sso_url}"/><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso_url}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

/// URL of the test PostgreSQL server, starting it (tests/postgres/up) if needed. The database
/// is named after the migrations of this source tree, so trees with different migrations
/// (branches checked out side by side) never share one.
pub fn postgres_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| postgres_up(&[("SSO_PG_DB", migrations_database_name())]))
        .clone()
}

/// `sso_test_` and a digest of the migration files' names and contents.
fn migrations_database_name() -> String {
    let dir = repo_root().join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read migrations/")
        .map(|e| e.expect("migrations/ entry").path())
        .collect();
    files.sort();
    let mut digest = openssl::sha::Sha256::new();
    for f in files {
        digest.update(f.file_name().unwrap().as_encoded_bytes());
        digest.update(&std::fs::read(&f).expect("read a migration"));
    }
    format!("sso_test_{}", &hex::encode(digest.finish())[..12])
}

/// Runs tests/postgres/up with `env` (SSO_PG_DIR, SSO_PG_PORT for a server of one's own) and
/// returns the URL it prints.
pub fn postgres_up(env: &[(&str, String)]) -> String {
    let out = Command::new(repo_root().join("tests/postgres/up"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run tests/postgres/up");
    assert!(
        out.status.success(),
        "tests/postgres/up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A fresh SQLite database file URL.
pub fn sqlite_url(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir()
        .join("sso-operator-tests")
        .join("sqlite");
    std::fs::create_dir_all(&dir).expect("sqlite dir");
    let path = dir.join(format!(
        "{name}-{}-{}.db",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    format!("sqlite://{}", path.display())
}

/// A tenant name no other test uses, so tests can share one PostgreSQL database.
pub fn unique_tenant(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}/idp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the test identity provider (tests/idp/sign_response.py, signxml) on `spec` and returns
/// the base64 SAMLResponse it produced.
pub fn signed_response(spec: &serde_json::Value) -> String {
    use std::io::Write;
    static PYTHON: OnceLock<String> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        let out = Command::new(repo_root().join("tests/idp/setup"))
            .output()
            .expect("run tests/idp/setup");
        assert!(
            out.status.success(),
            "tests/idp/setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    });
    let mut child = Command::new(python)
        .arg(repo_root().join("tests/idp/sign_response.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the test IdP");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("write the spec");
    let out = child.wait_with_output().expect("test IdP output");
    assert!(
        out.status.success(),
        "the test IdP failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("base64 output")
}

/// A self-signed RSA certificate valid from now+`from` to now+`until` (seconds), PEM only.
pub fn cert_pem(cn: &str, from: i64, until: i64) -> String {
    self_signed(cn, from, until).1
}

/// A self-signed RSA certificate valid from now+`from` to now+`until` (seconds), with its key.
pub fn self_signed(
    cn: &str,
    from: i64,
    until: i64,
) -> (openssl::pkey::PKey<openssl::pkey::Private>, String) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("key");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", cn).expect("CN");
    let name = name.build();
    let now = jiff::Timestamp::now().as_second();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    let mut serial = openssl::bn::BigNum::new().expect("bignum");
    serial
        .rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .expect("random serial");
    serial.set_bit(0).expect("non-zero serial");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial number");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(now + from).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(now + until).expect("time"))
        .expect("not after");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let pem = String::from_utf8(b.build().to_pem().expect("pem")).expect("utf-8");
    (key, pem)
}

/// One test per database for a story written once as `async fn $story(database_url: &str)`:
/// `$story::sqlite` on a fresh SQLite file and `$story::postgresql` on the test PostgreSQL
/// server. The PostgreSQL case starts the server (tests/postgres/up) and fails when it cannot:
/// it is never skipped. An optional `#[tokio::test(..)]` attribute chooses the runtime.
#[allow(unused_macros)] // not every test file has stories on both databases
macro_rules! on_each_database {
    ($story:ident) => {
        $crate::support::on_each_database!(
            #[tokio::test]
            $story
        );
    };
    (#[$test:meta] $story:ident) => {
        mod $story {
            #[$test]
            async fn sqlite() {
                super::$story(&$crate::support::sqlite_url(stringify!($story))).await;
            }

            #[$test]
            async fn postgresql() {
                super::$story(&$crate::support::postgres_url()).await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_each_database;
