//! Real OpenID Connect clients for tests of the OpenID Provider: kube-apiserver's structured
//! JWT authentication (the AuthenticationConfiguration of a [`super::control_plane`]),
//! kubelogin (`kubectl oidc-login get-token`, with a headless Chromium as its browser, or the
//! device grant) and oauth2-proxy, built by `tests/oidc/setup`; and the HTTPS front an issuer
//! needs (clients accept only an `https` issuer, here with a CA of the test's own).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::operator::free_port;
use super::repo_root;

/// The AuthenticationConfiguration (apiserver.config.k8s.io/v1) that makes kube-apiserver
/// accept the ID tokens of one OidcClient, as docs/kubernetes.md describes: the issuer
/// `issuer_url` (the OidcClient's `status.issuerUrl`, https), trusted with the CA `ca_pem`,
/// audience `client_id`; the username is the `email` claim and the groups are `groups_claim`,
/// both prefixed `oidc:`.
pub fn authentication_config(
    issuer_url: &str,
    ca_pem: &str,
    client_id: &str,
    groups_claim: &str,
) -> String {
    let ca: String = ca_pem
        .trim_end()
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    // Values are JSON strings: valid YAML scalars whatever they hold.
    let q = |s: &str| Value::from(s).to_string();
    format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: {issuer}
    certificateAuthority: |
{ca}    audiences:
    - {audience}
  claimMappings:
    username:
      claim: email
      prefix: \"oidc:\"
    groups:
      claim: {groups}
      prefix: \"oidc:\"
",
        issuer = q(issuer_url),
        audience = q(client_id),
        groups = q(groups_claim),
    )
}

/// The folder holding `kubelogin` (also as `kubectl-oidc_login`) and `oauth2-proxy`, built once
/// per version by `tests/oidc/setup`.
pub fn tools() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| PathBuf::from(setup_output("tests/oidc/setup")))
        .clone()
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
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// What the browser of a command-line client does on its way (see tests/browser/follow.mjs).
#[derive(Debug, Default, Clone)]
pub struct BrowserSteps {
    /// Typed into the test IdP's password field when it asks (`#password`, then `#signin`).
    pub password: Option<String>,
    /// Selectors clicked once each when they show (a device-approval button, say).
    pub click: Vec<String>,
    /// Done when the page shows this text; by default done at the loopback redirect with
    /// `code=` or `error=` (the authorization response to kubelogin's local listener).
    pub done_text: Option<String>,
    /// Done when the URL matches this regular expression instead of the default.
    pub done_url: Option<String>,
    /// Gives up after this long (30 s when `None`).
    pub timeout: Option<Duration>,
}

/// Writes, into `dir`, a script for kubelogin's `--browser-command`: it opens its one argument
/// (the URL) in a headless Chromium that follows every redirect and self-posting form (the
/// test IdP's SAML response) and takes `steps`, then exits. Each URL visited is appended to
/// `dir/browser.log`, and the browser's cookies at the end are written to `dir/cookies.json`
/// ([`browser_cookie_header`]). Returns the script's path; [`open_in_browser`] runs it
/// without kubelogin (an oauth2-proxy sign-in, say).
pub fn browser_command(dir: &Path, steps: &BrowserSteps) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;

    static PLAYWRIGHT: OnceLock<String> = OnceLock::new();
    let playwright = PLAYWRIGHT
        .get_or_init(|| setup_output("tests/browser/setup"))
        .clone();
    std::fs::create_dir_all(dir).expect("create the browser's folder");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut env = vec![
        ("PLAYWRIGHT_DIR", playwright),
        ("FOLLOW_LOG", dir.join("browser.log").display().to_string()),
        ("FOLLOW_CLICK", steps.click.join("\n")),
        (
            "FOLLOW_COOKIES",
            dir.join("cookies.json").display().to_string(),
        ),
    ];
    if let Some(chromium) = std::env::var_os("CHROMIUM") {
        env.push(("CHROMIUM", chromium.to_string_lossy().into_owned()));
    }
    if let Some(password) = &steps.password {
        env.push(("FOLLOW_PASSWORD", password.clone()));
    }
    if let Some(text) = &steps.done_text {
        env.push(("FOLLOW_DONE_TEXT", text.clone()));
    }
    if let Some(url) = &steps.done_url {
        env.push(("FOLLOW_DONE_URL", url.clone()));
    }
    if let Some(timeout) = steps.timeout {
        env.push(("FOLLOW_TIMEOUT_MS", timeout.as_millis().to_string()));
    }
    let exports: String = env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", quote(v)))
        .collect();
    let script = format!(
        "#!/bin/sh\n# kubelogin runs this with one argument, the URL to open.\n{exports}exec node {} \"$1\"\n",
        quote(
            &repo_root()
                .join("tests/browser/follow.mjs")
                .display()
                .to_string()
        )
    );
    let path = dir.join("open-browser");
    std::fs::write(&path, script).expect("write the browser command");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make the browser command executable");
    path
}

/// Runs a [`browser_command`] script on `url` and waits for it (90 s at most); its error output
/// when it does not arrive.
pub fn open_in_browser(script: &Path, url: &str) -> Result<(), String> {
    let mut child = Command::new(script)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the browser command");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait for the browser").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("the browser's output");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The cookies the browser of [`browser_command`] (`dir`) had at its end, for `host`, as a
/// `Cookie` header value (`name=value; …`). Cookies do not tell ports apart: on 127.0.0.1
/// this is every local server's.
pub fn browser_cookie_header(dir: &Path, host: &str) -> String {
    let text = std::fs::read_to_string(dir.join("cookies.json")).unwrap_or_default();
    let cookies: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
    cookies
        .iter()
        .filter(|c| c["domain"].as_str().map(|d| d.trim_start_matches('.')) == Some(host))
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap_or_default(),
                c["value"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// How kubelogin obtains the tokens.
#[derive(Debug, Clone)]
pub enum KubeloginGrant {
    /// `--grant-type=authcode`: the browser command opens the authorization URL, the
    /// authorization response comes back to a loopback listener on a free port (redirect URI
    /// `http://localhost:PORT`); PKCE S256 when discovery offers it.
    AuthorizationCode {
        /// A script from [`browser_command`].
        browser: PathBuf,
    },
    /// `--grant-type=device-code` (RFC 8628): the browser command opens
    /// `verification_uri_complete` and must approve there; kubelogin polls once it returned.
    /// No loopback redirect ends this flow: give the browser's [`BrowserSteps`] the approval
    /// button to `click` and the `done_text` of the page after it.
    DeviceCode {
        /// A script from [`browser_command`].
        browser: PathBuf,
    },
}

/// One `kubelogin get-token` run, as kubectl's exec credential plugin.
#[derive(Debug, Clone)]
pub struct Kubelogin {
    /// `--oidc-issuer-url`.
    pub issuer_url: String,
    /// `--oidc-client-id`.
    pub client_id: String,
    /// `--oidc-client-secret`; `None` for a public client.
    pub client_secret: Option<String>,
    /// `--certificate-authority`: the CA of the issuer's HTTPS certificate.
    pub ca_file: PathBuf,
    /// `--oidc-extra-scope` (`openid` is always asked for).
    pub extra_scopes: Vec<String>,
    /// How to obtain the first tokens.
    pub grant: KubeloginGrant,
    /// `--token-cache-dir`: runs with the same folder reuse (and refresh) cached tokens.
    pub cache_dir: PathBuf,
}

impl Kubelogin {
    /// The arguments after `kubelogin`, from `get-token` on: what a kubeconfig's exec plugin
    /// runs (`kubectl oidc-login` takes the same).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "get-token".to_owned(),
            format!("--oidc-issuer-url={}", self.issuer_url),
            format!("--oidc-client-id={}", self.client_id),
            format!("--certificate-authority={}", self.ca_file.display()),
            format!("--token-cache-dir={}", self.cache_dir.display()),
            "--authentication-timeout-sec=60".to_owned(),
        ];
        if let Some(secret) = &self.client_secret {
            args.push(format!("--oidc-client-secret={secret}"));
        }
        if !self.extra_scopes.is_empty() {
            args.push(format!(
                "--oidc-extra-scope={}",
                self.extra_scopes.join(",")
            ));
        }
        match &self.grant {
            KubeloginGrant::AuthorizationCode { browser } => args.extend([
                "--grant-type=authcode".to_owned(),
                format!("--browser-command={}", browser.display()),
                "--listen-address=127.0.0.1:0".to_owned(),
            ]),
            KubeloginGrant::DeviceCode { browser } => args.extend([
                "--grant-type=device-code".to_owned(),
                format!("--browser-command={}", browser.display()),
            ]),
        }
        args
    }

    /// Runs `kubelogin get-token` (with `extra` arguments such as `--force-refresh`) and returns
    /// the ExecCredential it prints, or its error output when it fails (or takes over 90 s).
    pub fn get_token(&self, extra: &[&str]) -> Result<Value, String> {
        let mut child = Command::new(tools().join("kubelogin"))
            .args(self.args())
            .args(extra)
            .env(
                "KUBERNETES_EXEC_INFO",
                r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kubelogin");
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().expect("wait for kubelogin").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().expect("kubelogin's output");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(format!("kubelogin {}: {stderr}", out.status));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("kubelogin printed no ExecCredential ({e}): {stderr}"))
    }

    /// A kubeconfig at `path` for the API server of `admin_kubeconfig` (same server and CA)
    /// whose user runs this kubelogin as its exec credential plugin, as docs/kubernetes.md
    /// shows (kubectl with it runs `kubelogin get-token …`).
    pub fn write_kubeconfig(&self, admin_kubeconfig: &Path, path: &Path) -> PathBuf {
        let admin = kube::config::Kubeconfig::read_from(admin_kubeconfig)
            .expect("read the admin kubeconfig");
        let cluster = admin
            .clusters
            .first()
            .and_then(|c| c.cluster.clone())
            .expect("a cluster in the admin kubeconfig");
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "cluster", "cluster": cluster }],
            "users": [{ "name": "oidc", "user": { "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": tools().join("kubelogin"),
                "args": self.args(),
                "interactiveMode": "Never",
            } } }],
            "contexts": [{ "name": "oidc", "context": { "cluster": "cluster", "user": "oidc" } }],
            "current-context": "oidc",
        });
        std::fs::write(path, config.to_string()).expect("write the kubeconfig");
        path.to_owned()
    }
}

/// The ID token of an ExecCredential printed by kubelogin (`status.token`).
pub fn exec_credential_token(credential: &Value) -> &str {
    credential["status"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no status.token in {credential}"))
}

/// The claims of a compact JWS, not verified (the API server and the clients do that).
pub fn unverified_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWS has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Runs `kubectl` (the one tests/tools/setup builds, else the host's) with `kubeconfig` and
/// `args`; returns (success, stdout, stderr).
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let built = std::env::var("SSO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/sso-operator")
        })
        .join("bin/kubectl");
    let program = if built.exists() {
        built
    } else {
        PathBuf::from("kubectl")
    };
    let out = Command::new(program)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What oauth2-proxy is started with.
#[derive(Debug, Clone)]
pub struct OAuth2ProxyOptions {
    /// `--oidc-issuer-url`.
    pub issuer_url: String,
    /// `--provider-ca-file`: the CA of the issuer's HTTPS certificate.
    pub ca_file: PathBuf,
    /// `--client-id`.
    pub client_id: String,
    /// `--client-secret`.
    pub client_secret: String,
    /// More flags (`--allowed-group=…`, `--cookie-refresh=…`).
    pub extra: Vec<String>,
}

/// oauth2-proxy v7 as a relying party of the issuer on a free port of 127.0.0.1, in front of a
/// static upstream (200), with PKCE S256, `X-Auth-Request-*` headers on `/oauth2/auth` and a
/// plain-HTTP cookie; killed when dropped.
pub struct OAuth2Proxy {
    child: Child,
    /// `http://127.0.0.1:PORT`; the redirect URI to register is [`OAuth2Proxy::redirect_uri`].
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
}

impl OAuth2Proxy {
    /// Starts it, and returns once it listens (it reads the issuer's discovery document first:
    /// start the issuer before).
    pub fn start(options: &OAuth2ProxyOptions) -> Self {
        Self::start_on(free_port(), options)
    }

    /// Like [`OAuth2Proxy::start`], on `port` (known before, for the OidcClient's redirect URI).
    pub fn start_on(port: u16, options: &OAuth2ProxyOptions) -> Self {
        let url = format!("http://127.0.0.1:{port}");
        let log = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("oauth2-proxy-{port}.log"));
        std::fs::create_dir_all(log.parent().unwrap()).expect("create the log folder");
        let mut secret = [0u8; 16];
        openssl::rand::rand_bytes(&mut secret).expect("random cookie secret");
        let file = std::fs::File::create(&log).expect("create the log file");
        let child = Command::new(tools().join("oauth2-proxy"))
            .args([
                "--provider=oidc".to_owned(),
                format!("--oidc-issuer-url={}", options.issuer_url),
                format!("--provider-ca-file={}", options.ca_file.display()),
                format!("--client-id={}", options.client_id),
                format!("--client-secret={}", options.client_secret),
                format!("--redirect-url={url}/oauth2/callback"),
                format!("--http-address=127.0.0.1:{port}"),
                format!("--cookie-secret={}", hex::encode(secret)),
                "--cookie-secure=false".to_owned(),
                "--email-domain=*".to_owned(),
                "--upstream=static://200".to_owned(),
                "--oidc-groups-claim=groups".to_owned(),
                "--scope=openid email profile groups offline_access".to_owned(),
                "--code-challenge-method=S256".to_owned(),
                "--skip-provider-button".to_owned(),
                "--set-xauthrequest".to_owned(),
            ])
            .args(&options.extra)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start oauth2-proxy");
        let mut proxy = Self { child, url, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("oauth2-proxy exited ({status}):\n{}", proxy.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "oauth2-proxy never listened on {port}:\n{}",
                proxy.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    /// The redirect URI it sends (`{url}/oauth2/callback`): register it on the OidcClient.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth2/callback", self.url)
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OAuth2Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS front (Python's asyncio with `ssl`) on a free port of 127.0.0.1 with a certificate for
/// 127.0.0.1 from a CA of its own ([`super::tls_files`]), passing each connection's bytes to a
/// plain-HTTP backend: `sso-operator server` reached as an `https` issuer. The port is known
/// before the backend runs, so the controller's `--external-url` can be [`TlsFront::url`].
/// Killed when dropped.
pub struct TlsFront {
    child: Child,
    /// Its certificates' folder, removed with it.
    dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA's PEM file.
    pub ca_file: PathBuf,
    /// The CA's PEM (an AuthenticationConfiguration's `certificateAuthority`).
    pub ca_pem: String,
}

const TLS_FRONT: &str = r#"
import asyncio, ssl, sys
port, cert, key, backend_host, backend_port = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass
async def handle(client_reader, client_writer):
    try:
        backend_reader, backend_writer = await asyncio.open_connection(backend_host, backend_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    print(port, flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

impl TlsFront {
    /// Starts it in front of `backend` (`127.0.0.1:PORT`, need not listen yet); `name` keeps
    /// parallel tests' files apart.
    pub fn start(name: &str, backend: &str) -> Self {
        let (host, port) = backend.rsplit_once(':').expect("backend as HOST:PORT");
        let dir = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("tls-front-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the TLS front's folder");
        let (ca_file, cert, key) = super::tls_files(&dir);
        let front_port = free_port();
        let mut child = Command::new("python3")
            .args(["-c", TLS_FRONT, &front_port.to_string()])
            .arg(cert)
            .arg(key)
            .args([host, port])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 (the TLS front)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the TLS front's port");
        assert_eq!(
            line.trim(),
            front_port.to_string(),
            "the TLS front did not start"
        );
        let ca_pem = std::fs::read_to_string(&ca_file).expect("read the CA");
        Self {
            child,
            dir,
            url: format!("https://127.0.0.1:{front_port}"),
            ca_file,
            ca_pem,
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Like [`super::operator::Stack::start`], with the server behind a [`TlsFront`] whose URL is
/// the controller's `--external-url`, so every issuer URL (`{url}/oidc/{ns}/{name}`) is https
/// with the front's CA, as kube-apiserver, kubelogin and oauth2-proxy require.
pub async fn https_stack(
    prefix: &str,
    database_url: &str,
    controller_args: &[&str],
    server_args: &[&str],
) -> (super::operator::Stack, TlsFront) {
    let listen = format!("127.0.0.1:{}", free_port());
    let front = TlsFront::start(prefix, &listen);
    let stack = super::operator::Stack::start_at(
        prefix,
        database_url,
        controller_args,
        server_args,
        &listen,
        &front.url,
    )
    .await;
    (stack, front)
}

/// An HTTP client that trusts `ca_file` (a [`TlsFront`]'s CA) and follows no redirects.
pub fn https_client(ca_file: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_file).expect("read the CA");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build an HTTPS client")
}
