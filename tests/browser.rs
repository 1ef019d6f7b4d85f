//! A real browser through a real reverse proxy: Debian's Chromium (headless, driven by
//! playwright-core) opens an application behind Debian's nginx, whose `auth_request` asks the
//! real `sso-operator server` (`/auth/verify`); sign-in goes through a test IdP web server that
//! signs with signxml. Covers SP-initiated sign-in back to the original URL, IdP-initiated
//! sign-in from a tile link, required groups, the two documented error pages, SAML Single Logout
//! both ways (signing out ends the IdP's session, so the next sign-in asks for the password; the
//! IdP's logout ends the session here), and lock-out after SCIM deactivation.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::operator::{Operator, controller_kubeconfig, free_port, server_kubeconfig};
use support::{TestNamespace, admin_client, install_crds, repo_root, wait_for};

const ISSUER: &str = "https://idp.example.test/exk1";
/// The test IdP's password: it asks for it whenever it has no session of its own.
const PASSWORD: &str = "correct horse battery staple";
/// What the test IdP's sign-in page shows.
const IDP_SIGN_IN: &str = "Test IdP";

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} never listened on {port}");
}

fn setup_output(script: &str) -> String {
    let out = Command::new(repo_root().join(script))
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Browser {
    _child: Running,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    fn start() -> Self {
        let playwright = setup_output("tests/browser/setup");
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/browser/driver.mjs"))
            .env("PLAYWRIGHT_DIR", playwright)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the browser driver (node)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            _child: Running(child),
            stdin,
            stdout,
        }
    }

    /// Opens `url` and waits until the page shows `text`; returns (final URL, page text).
    fn open(&mut self, url: &str, text: &str) -> (String, String) {
        self.run(
            json!({ "goto": url, "waitFor": text, "timeoutMs": 20000 }),
            text,
        )
    }

    /// Types the test IdP's password into its sign-in page, submits it and waits until the page
    /// shows `text`.
    fn enter_password(&mut self, text: &str) -> (String, String) {
        self.run(
            json!({ "fill": { "#password": PASSWORD }, "click": "#signin", "waitFor": text, "timeoutMs": 20000 }),
            text,
        )
    }

    fn run(&mut self, cmd: Value, text: &str) -> (String, String) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("driver answer");
        let answer: Value = serde_json::from_str(&line).expect("driver JSON");
        let (u, t) = (
            answer["url"].as_str().unwrap_or_default().to_owned(),
            answer["text"].as_str().unwrap_or_default().to_owned(),
        );
        assert!(
            answer["found"] == true,
            "{cmd}: {text:?} never appeared; at {u}: {t:?} ({})",
            answer["error"]
        );
        (u, t)
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn nginx_config(dir: &Path, port: u16, server: u16, app: u16, ns: &str) -> String {
    let d = dir.display();
    let headers = r#"
            auth_request_set $user $upstream_http_x_auth_request_user;
            auth_request_set $email $upstream_http_x_auth_request_email;
            auth_request_set $groups $upstream_http_x_auth_request_groups;
            proxy_set_header X-User $user;
            proxy_set_header X-Email $email;
            proxy_set_header X-Groups $groups;
            error_page 401 = @signin;"#;
    format!(
        r#"
master_process off;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 4m;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /saml/ {{ proxy_pass http://127.0.0.1:{server}; }}
        location /auth/ {{ proxy_pass http://127.0.0.1:{server}; }}
        location = /_verify {{
            internal;
            proxy_pass http://127.0.0.1:{server}/auth/verify?identityProvider={ns}/okta;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location = /_verify_admins {{
            internal;
            proxy_pass http://127.0.0.1:{server}/auth/verify?identityProvider={ns}/okta&groups=admins;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location /app/ {{
            auth_request /_verify;{headers}
            proxy_pass http://127.0.0.1:{app};
        }}
        location /admin/ {{
            auth_request /_verify_admins;{headers}
            proxy_pass http://127.0.0.1:{app};
        }}
        location @signin {{
            return 302 /auth/signin?identityProvider={ns}/okta&rd=$scheme://$http_host$request_uri;
        }}
    }}
}}
"#
    )
}

/// What every story of the journey below works with: our controller and server, the test IdP,
/// and the app with nginx in front of it (the first stories apply two IdentityProviders at that
/// IdP and provision Ada over SCIM). Fields drop in order: the processes first, then the
/// namespace.
struct Site {
    _nginx: Running,
    _app: Running,
    _idp: Running,
    server: Operator,
    _controller: Operator,
    ns: TestNamespace,
    client: kube::Client,
    /// nginx's base URL: where the browser goes.
    base: String,
    idp_port: u16,
    /// The server's own base URL (SCIM and metadata are called there directly).
    server_url: String,
    /// The test IdP's signing certificate, which the IdentityProviders trust.
    sign_cert: String,
    /// The SCIM token of IdentityProvider okta (empty until Ada is provisioned).
    token: String,
    http: reqwest::Client,
}

impl Site {
    /// Starts the controller, the server (allowed to return to the applications behind
    /// nginx), the test IdP (TLS with its own certificate, signing with another), the app and
    /// nginx, and waits until each listens. Applies nothing yet.
    async fn start() -> Self {
        let client = admin_client().await;
        install_crds(&client).await;
        let ns = TestNamespace::new(&client, "browser").await;
        let (nginx_port, idp_port, app_port) = (free_port(), free_port(), free_port());
        let base = format!("http://localhost:{nginx_port}");
        let controller = Operator::start_at(
            &controller_kubeconfig(&client, &ns.name).await,
            &ns.name,
            &base,
            &[],
        );
        // The installation allows returning to the applications behind nginx.
        let allowed = format!("--allowed-redirect={base}/");
        let (server, server_url) = Operator::start_server_with(
            &server_kubeconfig(&client, &ns.name).await,
            &ns.name,
            &support::sqlite_url("browser"),
            &[&allowed],
        );
        let server_port: u16 = server_url.rsplit(':').next().unwrap().parse().unwrap();

        let dir = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("browser-{}", ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        let (idp, sign_cert) = start_the_idp(&dir, idp_port, &base, &ns.name);
        let app = Running(
            Command::new("python3")
                .arg(repo_root().join("tests/browser/app.py"))
                .arg(app_port.to_string())
                .spawn()
                .expect("start the app"),
        );
        write(
            &dir,
            "nginx.conf",
            &nginx_config(&dir, nginx_port, server_port, app_port, &ns.name),
        );
        let nginx = Running(
            Command::new("nginx")
                .args(["-e", &format!("{}/error.log", dir.display())])
                .args(["-p", &dir.display().to_string()])
                .args(["-c", &dir.join("nginx.conf").display().to_string()])
                .spawn()
                .expect("start nginx"),
        );
        for (port, what) in [
            (idp_port, "the IdP"),
            (app_port, "the app"),
            (nginx_port, "nginx"),
        ] {
            wait_port(port, what);
        }
        Self {
            _nginx: nginx,
            _app: app,
            _idp: idp,
            server,
            _controller: controller,
            ns,
            client,
            base,
            idp_port,
            server_url,
            sign_cert,
            token: String::new(),
            http: reqwest::Client::new(),
        }
    }

    /// Calls okta's SCIM endpoint with its token.
    async fn scim(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .request(
                method,
                format!("{}/scim/v2/{}/okta{path}", self.server_url, self.ns.name),
            )
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
    }
}

/// Starts the test IdP for IdentityProviders okta and strict of namespace `ns`; returns it
/// and its signing certificate.
fn start_the_idp(dir: &Path, idp_port: u16, base: &str, ns: &str) -> (Running, String) {
    let (tls_key, tls_cert) = support::self_signed("localhost", -3600, 86_400);
    let (sign_key, sign_cert) = support::self_signed("idp", -3600, 86_400);
    let pem = |k: &openssl::pkey::PKey<openssl::pkey::Private>| {
        String::from_utf8(k.private_key_to_pem_pkcs8().unwrap()).unwrap()
    };
    let sp = |name: &str| json!({ "acs": format!("{base}/saml/{ns}/{name}/acs"), "audience": format!("{base}/saml/{ns}/{name}/metadata"), "slo": format!("{base}/saml/{ns}/{name}/slo") });
    let idp_config = json!({
        "port": idp_port,
        "tlsCert": write(dir, "idp-tls.crt", &tls_cert), "tlsKey": write(dir, "idp-tls.key", &pem(&tls_key)),
        "keyPem": pem(&sign_key), "certPem": sign_cert, "issuer": ISSUER,
        "user": { "nameId": "ada@example.com", "attributes": { "firstName": ["Ada"] } },
        "password": PASSWORD,
        "sps": { "okta": sp("okta"), "strict": sp("strict") },
    });
    let python = setup_output("tests/idp/setup");
    let idp = Running(
        Command::new(&python)
            .arg(repo_root().join("tests/idp/idp_server.py"))
            .arg(write(dir, "idp.json", &idp_config.to_string()))
            .stdout(Stdio::null())
            .spawn()
            .expect("start the test IdP"),
    );
    (idp, sign_cert)
}

/// Two IdentityProviders at the same IdP: one allows IdP-initiated sign-in, one does not.
async fn apply_two_identity_providers(site: &Site) {
    let (base, idp_port) = (&site.base, site.idp_port);
    let idps: Api<sso_operator::api::IdentityProvider> =
        Api::namespaced(site.client.clone(), &site.ns.name);
    for (name, idp_initiated) in [("okta", true), ("strict", false)] {
        let mut spec = json!({ "provider": "okta",
            "idp": { "ssoUrl": format!("https://localhost:{idp_port}/sso/{name}"), "entityId": ISSUER, "certificates": [{ "pem": site.sign_cert }],
                "singleLogoutUrl": format!("https://localhost:{idp_port}/slo/{name}") },
            "allowedRedirects": [format!("{base}/app/"), format!("{base}/admin/")],
            "allowIdpInitiated": idp_initiated });
        if idp_initiated {
            spec["defaultRelayState"] = json!(format!("{base}/app/home"));
        }
        let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": name }, "spec": spec });
        idps.patch(
            name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    }
}

/// Provisions Ada over SCIM, in group "eng", with a ScimToken for okta (kept in `site`).
/// Returns Ada's SCIM ID.
async fn provision_ada_over_scim(site: &mut Site) -> String {
    let tokens: Api<sso_operator::api::ScimToken> =
        Api::namespaced(site.client.clone(), &site.ns.name);
    let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "ScimToken", "metadata": { "name": "okta" }, "spec": { "identityProviderRef": { "name": "okta" } } });
    tokens
        .patch(
            "okta",
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    site.token = support::wait_for_token(&site.client, &site.ns.name, "okta-scim-token").await;
    let site = &*site;
    let created = wait_for(Duration::from_secs(30), || async {
        let r = site.scim(reqwest::Method::POST, "/Users", json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@example.com", "active": true,
            "emails": [{ "value": "ada@example.com", "type": "work", "primary": true }] }))
        .await
        .ok()?;
        (r.status() == StatusCode::CREATED).then_some(r.text().await.ok()?)
    })
    .await
    .unwrap_or_else(|| panic!("SCIM never accepted the user\nserver log:\n{}", site.server.log_text()));
    let user: Value = serde_json::from_str(&created).unwrap();
    let user_id = user["id"].as_str().unwrap().to_owned();
    let r = site.scim(reqwest::Method::POST, "/Groups", json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng", "members": [{ "value": user_id }] }))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    user_id
}

/// Both IdentityProviders served, and the session keys published.
async fn both_identity_providers_are_served(site: &Site) {
    for name in ["okta", "strict"] {
        let url = format!("{}/saml/{}/{name}/metadata", site.server_url, site.ns.name);
        let served = wait_for(Duration::from_secs(30), || async {
            (site.http.get(&url).send().await.ok()?.status() == StatusCode::OK).then_some(())
        })
        .await;
        assert!(served.is_some(), "{name} is never served");
    }
    let secrets: Api<Secret> = Api::namespaced(site.client.clone(), &site.ns.name);
    wait_for(Duration::from_secs(30), || async {
        secrets.get_opt("sso-operator-session-keys").await.ok()?
    })
    .await
    .expect("session keys");
}

/// [`Browser::open`], off the async runtime's worker.
fn open(b: &mut Browser, url: &str, text: &str) -> (String, String) {
    tokio::task::block_in_place(|| b.open(url, text))
}

/// [`Browser::enter_password`], off the async runtime's worker.
fn enter_password(b: &mut Browser, text: &str) -> (String, String) {
    tokio::task::block_in_place(|| b.enter_password(text))
}

/// SP-initiated: the app sends the browser to sign in (the IdP asks for the password) and
/// back to the original URL; another page of the app goes with the same session, and a
/// required group the user lacks gets 403 from nginx.
fn sign_in_from_the_app_returns_to_the_original_url(site: &Site, browser: &mut Browser) {
    let base = &site.base;
    open(browser, &format!("{base}/app/reports/q3"), IDP_SIGN_IN);
    let (url, text) = enter_password(browser, "ada@example.com");
    assert_eq!(url, format!("{base}/app/reports/q3"));
    assert!(
        text.contains("/app/reports/q3") && text.contains("eng"),
        "{text}"
    );
    // Another page of the app with the same session.
    let (url, _) = open(browser, &format!("{base}/app/other"), "ada@example.com");
    assert_eq!(url, format!("{base}/app/other"));
    // A required group the user lacks: 403 from nginx.
    let (_, text) = open(browser, &format!("{base}/admin/"), "403");
    assert!(!text.contains("ada@example.com"));
}

/// IdP-initiated from a tile: lands on the default relay state; a RelayState outside the
/// allow-list and a tile of the IdentityProvider that does not allow IdP-initiated sign-in get
/// the documented error pages.
fn idp_initiated_sign_in_from_a_tile(site: &Site, browser: &mut Browser) {
    let idp_port = site.idp_port;
    let (url, _) = open(
        browser,
        &format!("https://localhost:{idp_port}/tile/okta"),
        "ada@example.com",
    );
    assert_eq!(url, format!("{}/app/home", site.base));
    // A tile with a RelayState outside the allow-list: "Invalid RelayState", no redirect.
    let (url, _) = open(
        browser,
        &format!(
            "https://localhost:{idp_port}/tile/okta?RelayState=https%3A%2F%2Fevil.example.com%2F"
        ),
        "Invalid RelayState",
    );
    assert!(url.ends_with("/okta/acs"), "{url}");
    // A tile of the IdentityProvider that does not allow IdP-initiated sign-in.
    let (url, text) = open(
        browser,
        &format!("https://localhost:{idp_port}/tile/strict"),
        "Authentication Failed",
    );
    assert!(url.contains("/strict/acs"), "{url}");
    assert!(
        text.contains("Login failed. Please contact your account administrator for more details.")
    );
}

/// Signing out ends the IdP's session too (SAML Single Logout): the browser goes through the
/// IdP and back to the return URL, where signing in asks for the password again.
fn signing_out_ends_the_idp_session_too(site: &Site, browser: &mut Browser) {
    let base = &site.base;
    open(
        browser,
        &format!(
            "{base}/auth/logout?identityProvider={}/okta&rd={base}/app/bye",
            site.ns.name
        ),
        IDP_SIGN_IN,
    );
    let (url, _) = enter_password(browser, "ada@example.com");
    assert_eq!(url, format!("{base}/app/bye"));
}

/// Signing out at the IdP (IdP-initiated Single Logout) ends the session here: the app sends
/// the browser to sign in again, where the IdP asks for the password.
fn signing_out_at_the_idp_ends_the_session_here(site: &Site, browser: &mut Browser) {
    let idp_port = site.idp_port;
    open(
        browser,
        &format!("https://localhost:{idp_port}/logout/okta"),
        "Signed out at the IdP",
    );
    let (url, text) = open(
        browser,
        &format!("{}/app/reports/q3", site.base),
        IDP_SIGN_IN,
    );
    assert!(
        url.starts_with(&format!("https://localhost:{idp_port}/sso/okta")),
        "{url}"
    );
    assert!(!text.contains("ada@example.com"));
    enter_password(browser, "ada@example.com");
}

/// Deactivated through SCIM: the next request is refused and signing in again fails.
async fn deactivation_locks_the_user_out(site: &Site, browser: &mut Browser, user_id: &str) {
    let r = site
        .scim(
            reqwest::Method::PATCH,
            &format!("/Users/{user_id}"),
            json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "value": { "active": false } }] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (url, text) = open(
        browser,
        &format!("{}/app/reports/q3", site.base),
        "Authentication Failed",
    );
    assert!(url.contains("/okta/acs"), "{url}");
    assert!(!text.contains("ada@example.com"));
}

// One test, not one per story: the stories share one site (controller, server, test IdP, app,
// nginx and a Chromium) that takes seconds to start, and each story begins where the one
// before left off (the browser's cookies at nginx and at the IdP, the IdP's own session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_through_nginx_signs_out_at_the_idp_too_and_is_locked_out_after_deactivation()
 {
    let mut site = Site::start().await;
    apply_two_identity_providers(&site).await;
    let user_id = provision_ada_over_scim(&mut site).await;
    both_identity_providers_are_served(&site).await;
    let mut browser = tokio::task::block_in_place(Browser::start);
    sign_in_from_the_app_returns_to_the_original_url(&site, &mut browser);
    idp_initiated_sign_in_from_a_tile(&site, &mut browser);
    signing_out_ends_the_idp_session_too(&site, &mut browser);
    signing_out_at_the_idp_ends_the_session_here(&site, &mut browser);
    deactivation_locks_the_user_out(&site, &mut browser, &user_id).await;
    drop(browser);
    let log = site.server.log_text();
    assert!(log.contains("UserDeactivated"), "{log}");
}
