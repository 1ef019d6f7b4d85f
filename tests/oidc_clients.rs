//! The real OpenID Connect clients and the browser the OpenID Provider's tests sign in with
//! (tests/support/oidc.rs): kubelogin and oauth2-proxy as pinned by tests/oidc/setup, and the
//! browser command given to kubelogin, which must follow a sign-in page that posts itself (a
//! SAML response) over HTTPS from a CA of the test's own to the loopback redirect.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::oidc::{BrowserSteps, TlsFront, browser_command, browser_cookie_header, tools};

#[test]
fn the_pinned_clients_run_and_say_their_versions() {
    let bin = tools();
    for (tool, version) in [("kubelogin", "v1.36.3"), ("oauth2-proxy", "v7.15.6")] {
        let out = Command::new(bin.join(tool))
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(version), "{tool} --version: {text}");
    }
    assert!(
        bin.join("kubectl-oidc_login").exists(),
        "kubelogin is also the kubectl plugin oidc-login"
    );
}

/// A sign-in page that posts itself (as an IdP's SAML response page does), whose answer
/// redirects to the loopback listener on the port given, as the OpenID Provider's authorization
/// response to kubelogin does.
const SIGN_IN: &str = r#"
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
loopback = sys.argv[1]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        page = b'<html><body><form method="post" action="/acs"><input type="hidden" name="SAMLResponse" value="x"></form><script>document.forms[0].submit()</script></body></html>'
        self.send_response(200); self.send_header("Content-Type", "text/html"); self.send_header("Content-Length", str(len(page))); self.end_headers(); self.wfile.write(page)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(302); self.send_header("Location", f"http://localhost:{loopback}/?code=c0de&state=s1"); self.send_header("Set-Cookie", "session=s3ss10n; Path=/; Secure; HttpOnly"); self.send_header("Content-Length", "0"); self.end_headers()
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

#[test]
fn the_browser_command_follows_a_self_posting_page_over_https_to_the_loopback_redirect() {
    // kubelogin's loopback listener: answers the first request and reports its request line.
    let loopback = TcpListener::bind("127.0.0.1:0").unwrap();
    let loopback_port = loopback.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = loopback.accept().unwrap();
        let mut line = String::new();
        BufReader::new(stream.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone",
        );
        tx.send(line).unwrap();
    });

    let mut sign_in = Command::new("python3")
        .args(["-c", SIGN_IN, &loopback_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3");
    let mut port = String::new();
    BufReader::new(sign_in.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let front = TlsFront::start("follow", &format!("127.0.0.1:{}", port.trim()));

    let dir = std::env::temp_dir()
        .join("sso-operator-tests")
        .join(format!("browser-command-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script = browser_command(&dir, &BrowserSteps::default());
    let mut browser = Command::new(&script)
        .arg(format!("{}/sign-in", front.url))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the browser command");
    let request = rx.recv_timeout(Duration::from_secs(60));
    let status = browser.wait().unwrap();
    let mut stderr = String::new();
    browser
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = sign_in.kill();
    let _ = sign_in.wait();
    let visited = std::fs::read_to_string(dir.join("browser.log")).unwrap_or_default();
    assert_eq!(
        request.as_deref().map(str::trim_end),
        Ok("GET /?code=c0de&state=s1 HTTP/1.1"),
        "the loopback listener got no authorization response; visited:\n{visited}\n{stderr}"
    );
    assert!(status.success(), "the browser command failed: {stderr}");
    assert!(
        visited.contains(&format!("{}/acs", front.url)),
        "the page posted itself: {visited}"
    );
    assert_eq!(
        browser_cookie_header(&dir, "127.0.0.1"),
        "session=s3ss10n",
        "the browser's cookies are kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
