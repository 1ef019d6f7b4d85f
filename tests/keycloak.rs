//! The Keycloak example followed as its comments say, against a real Keycloak server (the
//! `keycloak-quarkus-dist` distribution installed by `tests/keycloak/setup`, in development
//! mode on 127.0.0.1 over HTTPS): a realm with a user in a group, the example IdentityProvider
//! pointed at the realm's SAML descriptor, the SAML client imported from our SP metadata through
//! the admin REST endpoint the console's "Import client" uses, the Group list mapper the
//! comments name, then a sign-in through Keycloak's own login form ending in a session with
//! the user's identity and group. The assertion arrives encrypted, as the import sets. Then
//! Single Logout, three ways: started here (Keycloak's session ends, so the next sign-in asks
//! for the password), started at Keycloak in the browser (Front channel logout On, as
//! imported), and started by Keycloak's admin API with Front channel logout Off (Keycloak's
//! LogoutRequest comes server to server, so the server's external URL is its own address).
//! The example before it signed AuthnRequests is refused by Keycloak with "Invalid requester".
//! Keycloak takes one to three minutes to start on a busy 2-core machine; the test about four.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use kube::api::{Api, Patch, PatchParams};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sso_operator::api::IdentityProvider;
use support::operator::Stack;
use support::operator::free_port;
use support::{repo_root, tls_files, wait_for};

const REALM: &str = "example";
const PASSWORD: &str = "correct-horse-battery";

/// A Keycloak server of its own on 127.0.0.1 (HTTPS, with a certificate from a test CA),
/// with an empty development database; its whole process group is killed when dropped.
struct Keycloak {
    child: Child,
    url: String,
    admin_password: String,
    ca_file: PathBuf,
    log: PathBuf,
    http: reqwest::Client,
}

impl Keycloak {
    /// Starts `kc.sh start-dev` (it has not answered yet: see [`Keycloak::wait_ready`]).
    fn start(name: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let out = Command::new(repo_root().join("tests/keycloak/setup"))
            .output()
            .expect("run tests/keycloak/setup");
        assert!(
            out.status.success(),
            "tests/keycloak/setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let setup: HashMap<String, String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let dir = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("keycloak-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_file, cert, key) = tls_files(&dir);
        let port = free_port();
        let log = dir.join("keycloak.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut admin_password = [0u8; 12];
        openssl::rand::rand_bytes(&mut admin_password).unwrap();
        let admin_password = hex::encode(admin_password);
        let db = dir.join("db").join("keycloak");
        let child = Command::new(PathBuf::from(&setup["KEYCLOAK_HOME"]).join("bin/kc.sh"))
            .arg("start-dev")
            .arg("--http-host=127.0.0.1")
            .arg(format!("--http-port={}", free_port()))
            .arg(format!("--https-port={port}"))
            .arg(format!("--http-management-port={}", free_port()))
            .arg(format!("--https-certificate-file={}", cert.display()))
            .arg(format!("--https-certificate-key-file={}", key.display()))
            .arg(format!(
                "--db-url=jdbc:h2:file:{};NON_KEYWORDS=VALUE",
                db.display()
            ))
            .env("JAVA_HOME", &setup["JAVA_HOME"])
            .env("JAVA_OPTS_KC_HEAP", "-Xms64m -Xmx512m")
            .env("KC_BOOTSTRAP_ADMIN_USERNAME", "admin")
            .env("KC_BOOTSTRAP_ADMIN_PASSWORD", &admin_password)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            // kc.sh runs java as its child: one process group, killed as a whole.
            .process_group(0)
            .spawn()
            .expect("start Keycloak (bin/kc.sh start-dev)");
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_file).unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            child,
            url: format!("https://127.0.0.1:{port}"),
            admin_password,
            ca_file,
            log,
            http,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (10 minutes at most: the first start builds the server, and a busy 2-core machine
    /// is slow) until the master realm answers; returns how long that took.
    async fn wait_ready(&mut self, started: Instant) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(600);
        let url = format!(
            "{}/realms/master/.well-known/openid-configuration",
            self.url
        );
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status() == StatusCode::OK
            {
                return started.elapsed();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Keycloak exited ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "Keycloak did not answer within 10 minutes:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A fresh admin access token (the master realm's tokens live one minute).
    async fn token(&self) -> String {
        let r = self
            .http
            .post(format!(
                "{}/realms/master/protocol/openid-connect/token",
                self.url
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", &self.admin_password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "admin token");
        serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Calls the admin REST API; returns the status, the Location header and the body.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, String) {
        let mut req = self
            .http
            .request(method, format!("{}/admin/realms{path}", self.url))
            .bearer_auth(self.token().await);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.unwrap();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status(), location, r.text().await.unwrap())
    }

    /// Creates an object with POST and returns its ID (the last segment of Location).
    async fn create(&self, path: &str, body: Value) -> String {
        let (status, location, text) = self.admin(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {text}");
        location
            .expect("Location of the created object")
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    }

    /// The realm's SAML 2.0 Identity Provider Metadata URL.
    fn descriptor_url(&self) -> String {
        format!("{}/realms/{REALM}/protocol/saml/descriptor", self.url)
    }

    /// Clients > Import client with the SP metadata document, then Save: the console sends
    /// the document to `client-description-converter` and creates the client it returns.
    /// Returns the client's internal ID.
    async fn import_client(&self, sp_metadata: &str) -> String {
        let r = self
            .http
            .post(format!(
                "{}/admin/realms/{REALM}/client-description-converter",
                self.url
            ))
            .bearer_auth(self.token().await)
            .header("content-type", "text/plain")
            .body(sp_metadata.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "client-description-converter");
        let client: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        self.create(&format!("/{REALM}/clients"), client).await
    }

    async fn client_attributes(&self, id: &str) -> Value {
        let (status, _, text) = self
            .admin(
                reqwest::Method::GET,
                &format!("/{REALM}/clients/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_str::<Value>(&text).unwrap()["attributes"].clone()
    }
}

impl Drop for Keycloak {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// A browser's cookies for one host, kept by hand (Keycloak's login needs its session
/// cookies back). A cookie set empty is removed.
#[derive(Default, Clone)]
struct Cookies(HashMap<String, String>);

impl Cookies {
    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(SET_COOKIE) {
            if let Some((k, rest)) = v.to_str().unwrap().split_once('=') {
                let value = rest.split(';').next().unwrap();
                if value.is_empty() {
                    self.0.remove(k);
                } else {
                    self.0.insert(k.to_owned(), value.to_owned());
                }
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The value of attribute `name` in the HTML start tag `tag`, unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let needle = format!(" {name}=\"");
    let start = lower.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find(';') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let entity = &rest[i + 1..i + j];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[i..=i + j]),
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

/// The start tags named `name` (case-insensitive) in `html`.
fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{name} ");
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find(&open) {
        let start = at + i;
        let Some(len) = html[start..].find('>') else {
            break;
        };
        found.push(&html[start..start + len + 1]);
        at = start + len + 1;
    }
    found
}

/// The first form in `page`: its action and its inputs with a value.
fn first_form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let action = tags(page, "form")
        .into_iter()
        .find_map(|t| attribute(t, "action"))?;
    let fields = tags(page, "input")
        .into_iter()
        .filter_map(|t| Some((attribute(t, "name")?, attribute(t, "value")?)))
        .collect();
    Some((action, fields))
}

/// A request the browser makes next.
enum Step {
    Get(String),
    Post(String, Vec<(String, String)>),
}

/// Where a walk through redirects and self-posting forms ended.
struct Landed {
    url: String,
    status: StatusCode,
    page: String,
}

/// A browser going back and forth between Keycloak and our server: it follows redirects and
/// submits the self-posting SAML forms (HTTP-POST binding) as a browser's script would, with
/// each server's cookies, and notes each SAML message it carries.
struct Browser<'a> {
    keycloak: &'a Keycloak,
    server: &'a str,
    at_keycloak: Cookies,
    at_server: Cookies,
    /// "METHOD URL-without-query MESSAGE-FIELD" for each request that carried a SAML message.
    messages: Vec<String>,
}

impl Browser<'_> {
    /// Follows `step` until a page that is neither a redirect nor a self-posting SAML form, or
    /// until the next request would go to `stop` (not made).
    async fn go(&mut self, mut step: Step, stop: Option<&str>) -> Landed {
        for _ in 0..12 {
            let url = match &step {
                Step::Get(u) | Step::Post(u, _) => u.clone(),
            };
            if stop == Some(url.as_str()) {
                return Landed {
                    url,
                    status: StatusCode::OK,
                    page: String::new(),
                };
            }
            let at_keycloak = url.starts_with(&self.keycloak.url);
            assert!(
                at_keycloak || url.starts_with(self.server),
                "the browser was sent to neither Keycloak nor our server: {url}"
            );
            let jar = if at_keycloak {
                &mut self.at_keycloak
            } else {
                &mut self.at_server
            };
            let parsed = reqwest::Url::parse(&url).unwrap();
            let base = format!("{}{}", parsed.origin().ascii_serialization(), parsed.path());
            let req = match &step {
                Step::Get(_) => {
                    if let Some((k, _)) = parsed
                        .query_pairs()
                        .find(|(k, _)| k == "SAMLRequest" || k == "SAMLResponse")
                    {
                        self.messages.push(format!("GET {base} {k}"));
                    }
                    self.keycloak.http.get(&url)
                }
                Step::Post(_, fields) => {
                    if let Some((k, _)) = fields
                        .iter()
                        .find(|(k, _)| k == "SAMLRequest" || k == "SAMLResponse")
                    {
                        self.messages.push(format!("POST {base} {k}"));
                    }
                    self.keycloak.http.post(&url).form(fields)
                }
            };
            let r = req.header(COOKIE, jar.header()).send().await.unwrap();
            jar.keep(&r);
            let status = r.status();
            if status.is_redirection() {
                let location = r.headers()[LOCATION].to_str().unwrap();
                step = Step::Get(parsed.join(location).unwrap().to_string());
                continue;
            }
            let page = r.text().await.unwrap();
            match first_form(&page) {
                Some((action, fields))
                    if status == StatusCode::OK
                        && fields
                            .iter()
                            .any(|(k, _)| k == "SAMLRequest" || k == "SAMLResponse") =>
                {
                    step = Step::Post(parsed.join(&action).unwrap().to_string(), fields);
                }
                _ => return Landed { url, status, page },
            }
        }
        panic!("more than 12 redirects and forms: {:?}", self.messages);
    }
}

/// One IdentityProvider of this test, its Keycloak client, and the way through both.
struct Connection<'a> {
    keycloak: &'a Keycloak,
    server: &'a str,
    namespace: &'a str,
    name: String,
    server_http: reqwest::Client,
}

/// What Keycloak showed after the browser followed our redirect to it.
enum AtKeycloak {
    /// Its login form: the form's action URL.
    LoginForm(String),
    /// Anything else: the status and the page.
    Other(StatusCode, String),
}

impl Connection<'_> {
    /// Starts SP-initiated sign-in and follows the redirect to Keycloak.
    async fn open_login(&self, cookies: &mut Cookies) -> ((String, String), AtKeycloak) {
        let r = self
            .server_http
            .get(format!(
                "{}/saml/{}/{}/login",
                self.server, self.namespace, self.name
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "our login URL redirects");
        let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&format!(
                "{}/realms/{REALM}/protocol/saml?",
                self.keycloak.url
            )),
            "our login redirects to the realm's SAML endpoint from its metadata: {location}"
        );
        let login_cookie = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .next()
            .expect("our login sets a cookie");
        let mut req = self.keycloak.http.get(&location);
        if !cookies.0.is_empty() {
            req = req.header(COOKIE, cookies.header());
        }
        let r = req.send().await.unwrap();
        cookies.keep(&r);
        let status = r.status();
        let page = r.text().await.unwrap();
        let action = tags(&page, "form")
            .into_iter()
            .find(|t| attribute(t, "id").as_deref() == Some("kc-form-login"))
            .and_then(|t| attribute(t, "action"));
        let at = match action {
            Some(action) if status == StatusCode::OK => AtKeycloak::LoginForm(action),
            _ => AtKeycloak::Other(status, page),
        };
        (login_cookie, at)
    }

    /// Posts the login form; returns Keycloak's auto-posting form: (action, fields).
    async fn submit_login(
        &self,
        cookies: &mut Cookies,
        action: &str,
        username: &str,
    ) -> (String, HashMap<String, String>) {
        let r = self
            .keycloak
            .http
            .post(action)
            .header(COOKIE, cookies.header())
            .form(&[("username", username), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        cookies.keep(&r);
        let status = r.status();
        let page = r.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "Keycloak's answer to the login: {page}"
        );
        let form = tags(&page, "form")
            .into_iter()
            .find_map(|t| attribute(t, "action"))
            .unwrap_or_else(|| panic!("no form in Keycloak's answer to the login: {page}"));
        let fields = tags(&page, "input")
            .into_iter()
            .filter_map(|t| Some((attribute(t, "name")?, attribute(t, "value")?)))
            .collect();
        (form, fields)
    }

    /// Posts the SAML response to our ACS with the login cookie; returns the session cookie
    /// value.
    async fn post_acs(
        &self,
        fields: &HashMap<String, String>,
        login_cookie: &(String, String),
    ) -> String {
        let r = self
            .server_http
            .post(format!(
                "{}/saml/{}/{}/acs",
                self.server, self.namespace, self.name
            ))
            .header(COOKIE, format!("{}={}", login_cookie.0, login_cookie.1))
            .form(&[
                ("SAMLResponse", fields["SAMLResponse"].as_str()),
                ("RelayState", fields["RelayState"].as_str()),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let cookie_name =
            sso_operator::session::cookie_name(&format!("{}/{}", self.namespace, self.name), true);
        let session = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == cookie_name)
            .map(|(_, v)| v.to_owned());
        let body = r.text().await.unwrap();
        assert!(
            status == StatusCode::OK || status.is_redirection(),
            "the ACS accepts Keycloak's response: {status} {body}"
        );
        session.expect("the ACS sets the session cookie")
    }
}

/// Applies `spec` as IdentityProvider `name` and waits until it is Ready and its SP metadata
/// is served; returns the metadata document and `status.serviceProvider`.
async fn apply_identity_provider(
    client: &kube::Client,
    namespace: &str,
    server: &str,
    name: &str,
    spec: &Value,
) -> (String, Value) {
    let api: Api<IdentityProvider> = Api::namespaced(client.clone(), namespace);
    let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": name }, "spec": spec });
    api.patch(
        name,
        &PatchParams::apply("tests").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
    let status = wait_for(Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            let status = serde_json::to_value(api.get(name).await.ok()?.status?).ok()?;
            let ready = status["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (ready && status["serviceProvider"].is_object()).then_some(status)
        }
    })
    .await
    .unwrap_or_else(|| {
        panic!("IdentityProvider {name} never became Ready with the realm's metadata")
    });
    let url = format!("{server}/saml/{namespace}/{name}/metadata");
    let metadata = wait_for(Duration::from_secs(60), || {
        let url = url.clone();
        async move {
            let r = reqwest::get(&url).await.ok()?;
            (r.status() == StatusCode::OK).then_some(())?;
            r.text().await.ok()
        }
    })
    .await
    .expect("the SP metadata is served");
    (metadata, status["serviceProvider"].clone())
}

/// The example's IdentityProvider spec, with only its metadata URL pointed at `metadata_url`.
fn example_spec(metadata_url: &str) -> (String, Value) {
    let text = std::fs::read_to_string(repo_root().join("examples/keycloak/identityprovider.yaml"))
        .expect("read examples/keycloak/identityprovider.yaml");
    let example: Value = serde_saphyr::from_str(&text).expect("parse the example");
    let mut spec = example["spec"].clone();
    spec["idp"]["metadataUrl"] = json!(metadata_url);
    (
        example["metadata"]["name"].as_str().unwrap().to_owned(),
        spec,
    )
}

/// What every story of the journey below works with: our stack and a Keycloak with the realm
/// set up and the example IdentityProvider applied, pointed at it.
struct Journey {
    /// The control plane, the controller and the server (whose external URL is its own
    /// address: Keycloak calls it directly for Single Logout). Dropped before Keycloak.
    stack: Stack,
    keycloak: Keycloak,
    /// Keycloak's ID of the user "ada".
    user: String,
    /// The example IdentityProvider's name and spec, as applied.
    name: String,
    spec: Value,
    /// Its SP metadata document, as served.
    metadata: String,
    /// Its `status.serviceProvider`.
    sp: Value,
    /// A client of our server that does not follow redirects.
    server_http: reqwest::Client,
    started: Instant,
}

impl Journey {
    /// Starts Keycloak and, while it starts, the control plane, the controller (trusting
    /// Keycloak's CA for the metadata fetch) and the server; then sets up the realm and applies
    /// the example.
    async fn start() -> Self {
        let started = Instant::now();
        let mut keycloak = Keycloak::start("example");
        let ca = keycloak.ca_file.to_string_lossy().into_owned();
        let stack = Stack::start_reachable(
            "keycloak",
            &support::sqlite_url("keycloak"),
            &[
                "--allow-private-metadata-addresses",
                "--metadata-ca-file",
                &ca,
            ],
            &[],
        )
        .await;
        let startup = keycloak.wait_ready(started).await;
        eprintln!("Keycloak answered {:.0?} after it was started", startup);

        let user = set_up_the_realm(&keycloak).await;
        // Step 3 of the example: spec.idp.metadataUrl is the realm's SAML descriptor.
        let (name, spec) = example_spec(&keycloak.descriptor_url());
        let (metadata, sp) =
            apply_identity_provider(&stack.client, &stack.ns.name, &stack.url, &name, &spec).await;
        Self {
            stack,
            keycloak,
            user,
            name,
            spec,
            metadata,
            sp,
            server_http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            started,
        }
    }

    /// The way through Keycloak and our server for IdentityProvider `name`.
    fn connection(&self, name: &str) -> Connection<'_> {
        Connection {
            keycloak: &self.keycloak,
            server: &self.stack.url,
            namespace: &self.stack.ns.name,
            name: name.to_owned(),
            server_http: self.server_http.clone(),
        }
    }

    /// The name of the example IdentityProvider's session cookie.
    fn cookie_name(&self) -> String {
        sso_operator::session::cookie_name(&format!("{}/{}", self.stack.ns.name, self.name), true)
    }

    /// What our `/auth/verify` answers for `session` of the example IdentityProvider.
    async fn verify(&self, session: &str) -> StatusCode {
        self.server_http
            .get(format!("{}/auth/verify", self.stack.url))
            .header(COOKIE, format!("{}={session}", self.cookie_name()))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Our Single Logout URL, from status.
    fn slo_url(&self) -> String {
        self.sp["singleLogoutUrl"]
            .as_str()
            .expect("status.serviceProvider.singleLogoutUrl")
            .to_owned()
    }

    /// The realm's SAML endpoint.
    fn keycloak_saml(&self) -> String {
        format!("{}/realms/{REALM}/protocol/saml", self.keycloak.url)
    }

    /// Signs in with the password once more in `browser`'s Keycloak session (which must have
    /// ended: Keycloak asks for the password, else the panic names what ended it, `after`);
    /// returns our session, checked valid.
    async fn sign_in_again(&self, browser: &mut Browser<'_>, after: &str) -> String {
        let connection = self.connection(&self.name);
        let (login_cookie, at) = connection.open_login(&mut browser.at_keycloak).await;
        let AtKeycloak::LoginForm(action) = at else {
            panic!("Keycloak did not ask for the password after {after}");
        };
        let (_, fields) = connection
            .submit_login(&mut browser.at_keycloak, &action, "ada")
            .await;
        let session = connection.post_acs(&fields, &login_cookie).await;
        assert_eq!(self.verify(&session).await, StatusCode::OK);
        session
    }
}

/// The realm: a user with a password, in a group. Returns the user's ID.
async fn set_up_the_realm(keycloak: &Keycloak) -> String {
    keycloak
        .create("", json!({ "realm": REALM, "enabled": true }))
        .await;
    let group = keycloak
        .create(
            &format!("/{REALM}/groups"),
            json!({ "name": "engineering" }),
        )
        .await;
    let user = keycloak
        .create(
            &format!("/{REALM}/users"),
            json!({
                "username": "ada", "email": "ada@example.com", "emailVerified": true,
                "firstName": "Ada", "lastName": "Lovelace", "enabled": true,
                "credentials": [{ "type": "password", "value": PASSWORD, "temporary": false }],
            }),
        )
        .await;
    let (status, _, text) = keycloak
        .admin(
            reqwest::Method::PUT,
            &format!("/{REALM}/users/{user}/groups/{group}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "join the group: {text}");
    user
}

/// Steps 1 and 2 of the example: Import client with our SP metadata, then Save, turns on the
/// switches the example names and fills in the Single Logout URLs; then the Group list mapper.
/// Returns the client's internal ID.
async fn import_the_client_and_check_the_switches(journey: &Journey) -> String {
    let keycloak = &journey.keycloak;
    // Step 1: Import client with our SP metadata, then Save.
    let id = keycloak.import_client(&journey.metadata).await;
    let attributes = keycloak.client_attributes(&id).await;
    for (switch, attribute) in [
        ("Client signature required", "saml.client.signature"),
        ("Encrypt assertions", "saml.encrypt"),
        ("Sign assertions", "saml.assertion.signature"),
    ] {
        assert_eq!(
            attributes[attribute], "true",
            "the import turns {switch} on, as the example says: {attributes}"
        );
    }
    // The import also fills in where Keycloak sends its Single Logout messages.
    for attribute in [
        "saml_single_logout_service_url_redirect",
        "saml_single_logout_service_url_post",
    ] {
        assert_eq!(
            attributes[attribute], journey.sp["singleLogoutUrl"],
            "the import sets {attribute} to our Single Logout URL: {attributes}"
        );
    }
    // Step 2: the Group list mapper, with the settings the example names.
    keycloak
        .create(
            &format!("/{REALM}/clients/{id}/protocol-mappers/models"),
            json!({
                "name": "groups", "protocol": "saml",
                "protocolMapper": "saml-group-membership-mapper",
                "config": {
                    "attribute.name": "groups", "single": "true", "full.path": "false",
                    "attribute.nameformat": "Basic", "friendly.name": "",
                },
            }),
        )
        .await;
    id
}

/// Sign-in through Keycloak's login form: the assertion arrives encrypted, and the session
/// carries the user's identity and group. Returns the browser's cookies at Keycloak (its
/// session is open) and our session.
async fn sign_in_with_groups_and_encrypted_assertions(journey: &Journey) -> (Cookies, String) {
    let connection = journey.connection(&journey.name);
    let mut cookies = Cookies::default();
    let (login_cookie, at) = connection.open_login(&mut cookies).await;
    let action = match at {
        AtKeycloak::LoginForm(action) => action,
        AtKeycloak::Other(status, page) => panic!(
            "Keycloak refused our AuthnRequest ({status}) instead of showing its login form: {page}\nKeycloak log:\n{}",
            journey.keycloak.log_text()
        ),
    };
    let (acs, fields) = connection.submit_login(&mut cookies, &action, "ada").await;
    assert_eq!(
        acs, journey.sp["acsUrl"],
        "Keycloak posts to the ACS URL from status"
    );
    let response = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&fields["SAMLResponse"])
            .unwrap(),
    )
    .unwrap();
    assert!(
        response.contains("EncryptedAssertion") && !response.contains("ada@example.com"),
        "Keycloak encrypts the assertion: {response}"
    );
    let session = connection.post_acs(&fields, &login_cookie).await;

    let r = journey
        .server_http
        .get(format!("{}/auth/verify", journey.stack.url))
        .header(COOKIE, format!("{}={session}", journey.cookie_name()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the session is valid");
    let header = |h: &str| {
        r.headers()
            .get(h)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("x-auth-request-user"), "ada@example.com");
    assert_eq!(header("x-auth-request-email"), "ada@example.com");
    assert_eq!(
        header("x-auth-request-groups"),
        "engineering",
        "the group from Keycloak's Group list mapper, by name"
    );
    (cookies, session)
}

/// Keycloak's session is open: signing in again skips its password form.
async fn the_session_skips_the_password_form(journey: &Journey, cookies: &Cookies) {
    let (_, at) = journey
        .connection(&journey.name)
        .open_login(&mut cookies.clone())
        .await;
    match at {
        AtKeycloak::Other(status, page) => assert!(
            status == StatusCode::OK && page.contains("SAMLResponse"),
            "Keycloak answers at once with a SAMLResponse ({status}): {page}"
        ),
        AtKeycloak::LoginForm(_) => panic!("Keycloak asked for the password with its session open"),
    }
}

/// Single Logout started here: /auth/logout sends the browser to Keycloak with our signed
/// LogoutRequest; Keycloak ends its session and answers at our Single Logout URL, from where
/// the browser returns to rd. Returns the browser, signed out at both ends.
async fn single_logout_started_here(
    journey: &Journey,
    cookies: Cookies,
    session: String,
) -> Browser<'_> {
    let server_url = &journey.stack.url;
    let keycloak_before = cookies.clone();
    let mut browser = Browser {
        keycloak: &journey.keycloak,
        server: server_url,
        at_keycloak: cookies,
        at_server: Cookies::default(),
        messages: Vec::new(),
    };
    browser
        .at_server
        .0
        .insert(journey.cookie_name(), session.clone());
    let bye = format!("{server_url}/bye");
    let landed = browser
        .go(
            Step::Get(format!(
                "{server_url}/auth/logout?identityProvider={}/{}&rd=%2Fbye",
                journey.stack.ns.name, journey.name
            )),
            Some(&bye),
        )
        .await;
    assert_eq!(
        landed.url,
        bye,
        "signing out returns to rd through Keycloak, not ({}): {}\nmessages: {:?}\nKeycloak log:\n{}",
        landed.status,
        landed.page,
        browser.messages,
        journey.keycloak.log_text()
    );
    let (keycloak_saml, slo_url) = (journey.keycloak_saml(), journey.slo_url());
    assert!(
        browser
            .messages
            .iter()
            .any(|m| m.ends_with(&format!("{keycloak_saml} SAMLRequest")))
            && browser
                .messages
                .iter()
                .any(|m| m.ends_with(&format!("{slo_url} SAMLResponse"))),
        "our LogoutRequest went to Keycloak and its LogoutResponse to our Single Logout URL: {:?}",
        browser.messages
    );
    assert_eq!(
        journey.verify(&session).await,
        StatusCode::UNAUTHORIZED,
        "our session ended"
    );
    eprintln!("signing out here: {:?}", browser.messages);
    // Keycloak's session ended on its side: even its cookies from before it ended lead to
    // the password form.
    let (_, at) = journey
        .connection(&journey.name)
        .open_login(&mut keycloak_before.clone())
        .await;
    if let AtKeycloak::Other(status, page) = at {
        panic!("Keycloak's session survived Single Logout ({status}): {page}");
    }
    browser
}

/// Single Logout started at Keycloak, in the browser (the imported client has Front channel
/// logout On): Keycloak sends the browser to our Single Logout URL with its LogoutRequest, the
/// user's sessions end here, and our LogoutResponse goes back to it.
async fn single_logout_started_at_keycloak_front_channel(
    journey: &Journey,
    browser: &mut Browser<'_>,
) {
    browser.messages.clear();
    let session = journey.sign_in_again(browser, "Single Logout").await;
    let landed = browser
        .go(
            Step::Get(format!(
                "{}/realms/{REALM}/protocol/openid-connect/logout",
                journey.keycloak.url
            )),
            None,
        )
        .await;
    // "Do you want to log out?"
    let (confirm, fields) = first_form(&landed.page).unwrap_or_else(|| {
        panic!(
            "Keycloak's logout page ({}): {}",
            landed.status, landed.page
        )
    });
    let confirm = reqwest::Url::parse(&landed.url).unwrap().join(&confirm);
    let landed = browser
        .go(Step::Post(confirm.unwrap().to_string(), fields), None)
        .await;
    let (keycloak_saml, slo_url) = (journey.keycloak_saml(), journey.slo_url());
    assert!(
        browser
            .messages
            .iter()
            .any(|m| m.ends_with(&format!("{slo_url} SAMLRequest")))
            && browser
                .messages
                .iter()
                .any(|m| m.ends_with(&format!("{keycloak_saml} SAMLResponse"))),
        "Keycloak's LogoutRequest came to our Single Logout URL and our LogoutResponse went back (then {} at {}: {}): {:?}\nKeycloak log:\n{}",
        landed.status,
        landed.url,
        landed.page,
        browser.messages,
        journey.keycloak.log_text()
    );
    assert_eq!(
        landed.status,
        StatusCode::OK,
        "Keycloak finishes signing out at {}: {}",
        landed.url,
        landed.page
    );
    assert_eq!(
        journey.verify(&session).await,
        StatusCode::UNAUTHORIZED,
        "signing out at Keycloak ended our session"
    );
    eprintln!("signing out at Keycloak: {:?}", browser.messages);
}

/// Front channel logout Off: Keycloak sends its LogoutRequest server to server, to the Logout
/// Service POST Binding URL, so signing the user out in Keycloak's admin console (Users > the
/// user > Sessions > Sign out) ends the session here too.
async fn back_channel_logout_from_the_admin_console(
    journey: &Journey,
    client_id: &str,
    browser: &mut Browser<'_>,
) {
    let keycloak = &journey.keycloak;
    let (status, _, text) = keycloak
        .admin(
            reqwest::Method::GET,
            &format!("/{REALM}/clients/{client_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut representation: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        representation["frontchannelLogout"], true,
        "the import turns Front channel logout on"
    );
    representation["frontchannelLogout"] = json!(false);
    let (status, _, text) = keycloak
        .admin(
            reqwest::Method::PUT,
            &format!("/{REALM}/clients/{client_id}"),
            Some(representation),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "Front channel logout Off: {text}"
    );
    let session = journey.sign_in_again(browser, "signing out there").await;
    let (status, _, text) = keycloak
        .admin(
            reqwest::Method::POST,
            &format!("/{REALM}/users/{}/logout", journey.user),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "sign the user out: {text}");
    wait_for(Duration::from_secs(60), || async {
        (journey.verify(&session).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "signing the user out in Keycloak's admin console did not end our session\nKeycloak log:\n{}",
            keycloak.log_text()
        )
    });
}

/// The example before it signed AuthnRequests: the imported client still requires a client
/// signature, and Keycloak refuses the unsigned request.
async fn an_unsigned_authn_request_is_refused(journey: &Journey) {
    let mut unsigned = journey.spec.clone();
    unsigned["saml"]["signAuthnRequests"] = json!(false);
    let (metadata, _) = apply_identity_provider(
        &journey.stack.client,
        &journey.stack.ns.name,
        &journey.stack.url,
        "keycloak-unsigned",
        &unsigned,
    )
    .await;
    journey.keycloak.import_client(&metadata).await;
    let (_, at) = journey
        .connection("keycloak-unsigned")
        .open_login(&mut Cookies::default())
        .await;
    match at {
        AtKeycloak::LoginForm(_) => {
            panic!("Keycloak accepted an unsigned AuthnRequest with Client signature required")
        }
        AtKeycloak::Other(status, page) => assert!(
            page.contains("Invalid requester"),
            "Keycloak answers Invalid requester ({status}): {page}"
        ),
    }
}

// One test, not one per story: the stories share one Keycloak, which takes from 20 seconds to
// minutes to start, and each story begins where the one before left off (the imported client,
// Keycloak's session and cookies, the Front channel logout switch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keycloak_example_signs_in_through_a_real_keycloak_with_groups_and_encrypted_assertions()
 {
    let journey = Journey::start().await;
    let client_id = import_the_client_and_check_the_switches(&journey).await;
    let (cookies, session) = sign_in_with_groups_and_encrypted_assertions(&journey).await;
    the_session_skips_the_password_form(&journey, &cookies).await;
    let mut browser = single_logout_started_here(&journey, cookies, session).await;
    single_logout_started_at_keycloak_front_channel(&journey, &mut browser).await;
    back_channel_logout_from_the_admin_console(&journey, &client_id, &mut browser).await;
    an_unsigned_authn_request_is_refused(&journey).await;
    eprintln!("the test took {:.0?}", journey.started.elapsed());
}
