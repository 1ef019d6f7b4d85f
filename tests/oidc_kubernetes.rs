//! Real OpenID Connect clients against the OpenID Provider: kube-apiserver's structured JWT
//! authenticator (an AuthenticationConfiguration as `sso-operator kubeconfig --api-server`
//! prints it), kubelogin driving headless Chromium through the SAML sign-in at the test IdP
//! (tests/idp/idp_server.py) in both its browser and device-code modes, and oauth2-proxy as a
//! relying party. The server is behind a TLS front with the test's own CA, as the clients
//! require an https issuer.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::oidc::{
    BrowserSteps, Kubelogin, KubeloginGrant, OAuth2Proxy, OAuth2ProxyOptions, browser_command,
    exec_credential_token, https_client, https_stack, kubectl, open_in_browser, unverified_claims,
};
use support::{TEST_MANAGER, repo_root, wait_for};

const ISSUER: &str = "http://www.okta.com/exk-oidc";

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The test IdP on a free port, answering IdentityProvider `okta` of `ns` at `base` at once
/// (no password): Ada with her email as NameID.
fn start_the_idp(dir: &Path, base: &str, ns: &str) -> (Running, u16, String) {
    let port = support::operator::free_port();
    let (tls_key, tls_cert) = support::self_signed("localhost", -3600, 86_400);
    let (sign_key, sign_cert) = support::self_signed("idp", -3600, 86_400);
    let pem = |k: &openssl::pkey::PKey<openssl::pkey::Private>| {
        String::from_utf8(k.private_key_to_pem_pkcs8().unwrap()).unwrap()
    };
    let config = json!({
        "port": port,
        "tlsCert": write(dir, "idp-tls.crt", &tls_cert), "tlsKey": write(dir, "idp-tls.key", &pem(&tls_key)),
        "keyPem": pem(&sign_key), "certPem": sign_cert, "issuer": ISSUER,
        "user": { "nameId": "ada@example.com", "attributes": { "firstName": ["Ada"], "groups": ["developers"] } },
        "sps": { "okta": { "acs": format!("{base}/saml/{ns}/okta/acs"), "audience": format!("{base}/saml/{ns}/okta/metadata") } },
    });
    let out = Command::new(repo_root().join("tests/idp/setup"))
        .output()
        .expect("tests/idp/setup");
    let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let idp = Running(
        Command::new(python)
            .arg(repo_root().join("tests/idp/idp_server.py"))
            .arg(write(dir, "idp.json", &config.to_string()))
            .stdout(Stdio::null())
            .spawn()
            .expect("start the test IdP"),
    );
    (idp, port, sign_cert)
}

async fn apply(client: &kube::Client, ns: &str, kind: &str, name: &str, spec: Value) {
    let plural = match kind {
        "IdentityProvider" => "identityproviders",
        "ScimToken" => "scimtokens",
        _ => "oidcclients",
    };
    let resource = kube::discovery::ApiResource {
        group: "sso-operator.dev".into(),
        version: "v1alpha1".into(),
        api_version: "sso-operator.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": kind, "metadata": { "name": name }, "spec": spec });
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
}

/// A SCIM call through the plain-HTTP listener; the JSON answer.
async fn scim(url: &str, token: &str, method: reqwest::Method, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
}

/// The refresh token kubelogin keeps in its token cache.
fn cached_refresh_token(cache: &Path) -> String {
    for entry in std::fs::read_dir(cache).expect("kubelogin's cache") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text)
            && let Some(t) = v["refresh_token"].as_str()
        {
            return t.to_owned();
        }
    }
    panic!("no refresh token in kubelogin's cache {}", cache.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_signs_in_through_saml_with_scim_groups_for_rbac_until_okta_deactivates_the_user() {
    let (stack, front) =
        https_stack("oidc-kube", &support::sqlite_url("oidc-kube"), &[], &[]).await;
    let ns = stack.ns.name.clone();
    let dir = std::env::temp_dir()
        .join("sso-operator-tests")
        .join(format!("oidc-kube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_idp, idp_port, idp_cert) = start_the_idp(&dir, &front.url, &ns);

    // The IdentityProvider, a ScimToken, and Ada pushed with group platform-admins.
    apply(&stack.client, &ns, "IdentityProvider", "okta", json!({
        "provider": "okta",
        "idp": { "ssoUrl": format!("https://localhost:{idp_port}/sso/okta"), "entityId": ISSUER, "certificates": [{ "pem": idp_cert }] },
    })).await;
    apply(
        &stack.client,
        &ns,
        "ScimToken",
        "okta",
        json!({ "identityProviderRef": { "name": "okta" } }),
    )
    .await;
    let token = support::wait_for_token(&stack.client, &ns, "okta-scim-token").await;
    let users = format!("{}/scim/v2/{ns}/okta/Users", stack.url);
    let ada = wait_for(Duration::from_secs(40), || async {
        let r = reqwest::Client::new()
            .post(&users)
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@example.com", "active": true,
                "emails": [{ "value": "ada@example.com", "primary": true }] }).to_string())
            .send().await.ok()?;
        let v: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
        v["id"].as_str().map(str::to_owned)
    })
    .await
    .expect("SCIM accepts the token");
    scim(&format!("{}/scim/v2/{ns}/okta/Groups", stack.url), &token, reqwest::Method::POST,
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "platform-admins", "members": [{ "value": ada }] })).await;

    // The kubectl OidcClient: public, loopback redirects on any port, the device grant.
    apply(
        &stack.client,
        &ns,
        "OidcClient",
        "kubectl",
        json!({
            "identityProviderRef": { "name": "okta" }, "public": true,
            "redirectUris": ["http://localhost", "http://127.0.0.1"],
            "grantTypes": ["authorization_code", "refresh_token", "device_code"],
            "tokenLifetimes": { "idToken": "1m" },
        }),
    )
    .await;
    let issuer = format!("{}/oidc/{ns}/okta", front.url);
    let https = https_client(&front.ca_file);
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    wait_for(Duration::from_secs(40), || async {
        (https.get(&discovery).send().await.ok()?.status() == 200).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the issuer is never served\n{}", stack.server.log_text()));

    // A control plane that trusts the issuer, configured as `sso-operator kubeconfig
    // --api-server` prints it, with RBAC for the SCIM group.
    let config = sso_operator::oidc::kubectl::authentication_config(
        &issuer,
        "kubectl",
        "groups",
        Some(&front.ca_pem),
    );
    let plane = support::control_plane::PrivateControlPlane::start_with_authentication(
        "oidc-kube",
        &config,
    );
    let admin = plane.admin_client().await;
    let role: Api<ClusterRole> = Api::all(admin.clone());
    role.patch("pod-reader", &PatchParams::apply(TEST_MANAGER), &Patch::Apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": { "name": "pod-reader" },
        "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"] }] }))).await.unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bindings.patch("platform-admins", &PatchParams::apply(TEST_MANAGER), &Patch::Apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": { "name": "platform-admins" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "oidc:platform-admins" }] }))).await.unwrap();

    // kubelogin signs in through Chromium: our authorize endpoint, the SAML round trip at the
    // test IdP, back to kubelogin's loopback port.
    let browser = browser_command(&dir.join("browser"), &BrowserSteps::default());
    let login = Kubelogin {
        issuer_url: issuer.clone(),
        client_id: "kubectl".into(),
        client_secret: None,
        ca_file: front.ca_file.clone(),
        extra_scopes: vec!["email".into(), "groups".into(), "offline_access".into()],
        grant: KubeloginGrant::AuthorizationCode {
            browser: browser.clone(),
        },
        cache_dir: dir.join("cache"),
    };
    let credential = login
        .get_token(&[])
        .unwrap_or_else(|e| panic!("{e}\nserver:\n{}", stack.server.log_text()));
    let id_token = exec_credential_token(&credential).to_owned();
    let claims = unverified_claims(&id_token);
    assert_eq!(claims["sub"], ada.as_str());
    assert_eq!(claims["groups"], json!(["platform-admins"]));

    // kubectl with kubelogin as its credential plugin: whoami, and RBAC from the SCIM group.
    let kubeconfig = login.write_kubeconfig(&plane.kubeconfig(), &dir.join("kubeconfig"));
    let whoami = wait_for(Duration::from_secs(60), || async {
        let (ok, out, _) = kubectl(&kubeconfig, &["auth", "whoami", "-o", "json"]);
        ok.then_some(out)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "whoami never succeeds\n{}",
            kubectl(&kubeconfig, &["auth", "whoami"]).2
        )
    });
    let review: Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "oidc:ada@example.com"
    );
    assert!(
        review["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("oidc:platform-admins")),
        "{review}"
    );
    assert!(kubectl(&kubeconfig, &["get", "pods", "-n", "default"]).0);
    bindings
        .delete("platform-admins", &DeleteParams::default())
        .await
        .unwrap();
    let forbidden = wait_for(Duration::from_secs(30), || async {
        let (ok, _, err) = kubectl(&kubeconfig, &["get", "pods", "-n", "default"]);
        (!ok && err.contains("Forbidden")).then_some(())
    })
    .await;
    assert!(
        forbidden.is_some(),
        "get pods is still allowed without the RoleBinding"
    );

    // The device-code mode: the browser opens the verification page, signs in through SAML and
    // presses Approve.
    let device_browser = browser_command(
        &dir.join("device-browser"),
        &BrowserSteps {
            click: vec!["button[value=approve]".into()],
            done_text: Some("Approved".into()),
            ..Default::default()
        },
    );
    let device = Kubelogin {
        grant: KubeloginGrant::DeviceCode {
            browser: device_browser,
        },
        cache_dir: dir.join("device-cache"),
        ..login.clone()
    };
    let credential = device
        .get_token(&[])
        .unwrap_or_else(|e| panic!("{e}\nserver:\n{}", stack.server.log_text()));
    assert_eq!(
        unverified_claims(exec_credential_token(&credential))["email"],
        "ada@example.com"
    );

    // Okta deactivates Ada: refreshing fails at once, and the API server refuses her token as
    // soon as it expires (one minute here).
    scim(
        &format!("{users}/{ada}"),
        &token,
        reqwest::Method::PATCH,
        json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "value": { "active": false } }] }),
    )
    .await;
    let refresh = cached_refresh_token(&dir.join("cache"));
    let r = https
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", "kubectl"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_grant"));
    // A kubeconfig holding just that ID token, as a static bearer token.
    let admin_config = kube::config::Kubeconfig::read_from(plane.kubeconfig()).unwrap();
    let cluster = admin_config.clusters[0].cluster.clone().unwrap();
    let token_kubeconfig = dir.join("token-kubeconfig");
    std::fs::write(
        &token_kubeconfig,
        json!({ "apiVersion": "v1", "kind": "Config",
            "clusters": [{ "name": "c", "cluster": cluster }],
            "users": [{ "name": "ada", "user": { "token": id_token } }],
            "contexts": [{ "name": "c", "context": { "cluster": "c", "user": "ada" } }],
            "current-context": "c" })
        .to_string(),
    )
    .unwrap();
    let with_token = |args: &[&str]| kubectl(&token_kubeconfig, args);
    assert!(
        with_token(&["auth", "whoami"]).0
            || unverified_claims(&id_token)["exp"].as_i64().unwrap()
                <= jiff::Timestamp::now().as_second(),
        "the ID token works until it expires"
    );
    let expired = wait_for(Duration::from_secs(120), || async {
        let (ok, _, err) = with_token(&["auth", "whoami"]);
        (!ok && err.contains("Unauthorized")).then_some(())
    })
    .await;
    assert!(
        expired.is_some(),
        "the ID token still works after its expiry"
    );
    drop(plane);
    drop(front);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_proxy_signs_in_through_the_provider_and_sees_the_scim_groups() {
    let (stack, front) =
        https_stack("oidc-proxy", &support::sqlite_url("oidc-proxy"), &[], &[]).await;
    let ns = stack.ns.name.clone();
    let dir = std::env::temp_dir()
        .join("sso-operator-tests")
        .join(format!("oidc-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_idp, idp_port, idp_cert) = start_the_idp(&dir, &front.url, &ns);
    apply(&stack.client, &ns, "IdentityProvider", "okta", json!({
        "provider": "okta", "users": { "provisioning": "justInTime", "syncGroupsFromSaml": true },
        "idp": { "ssoUrl": format!("https://localhost:{idp_port}/sso/okta"), "entityId": ISSUER, "certificates": [{ "pem": idp_cert }] },
    })).await;
    // The proxy's port must be known for its redirect URI: start it once the issuer answers.
    let issuer = format!("{}/oidc/{ns}/okta", front.url);
    let port = support::operator::free_port();
    apply(
        &stack.client,
        &ns,
        "OidcClient",
        "proxy",
        json!({
            "identityProviderRef": { "name": "okta" },
            "redirectUris": [format!("http://127.0.0.1:{port}/oauth2/callback")],
        }),
    )
    .await;
    let secret = wait_for(Duration::from_secs(40), || async {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(stack.client.clone(), &ns);
        let s = secrets.get_opt("proxy-oidc-client").await.ok()??;
        String::from_utf8(s.data?.get("clientSecret")?.0.clone()).ok()
    })
    .await
    .expect("the client secret");
    let https = https_client(&front.ca_file);
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    wait_for(Duration::from_secs(40), || async {
        (https.get(&discovery).send().await.ok()?.status() == 200).then_some(())
    })
    .await
    .expect("the issuer is served");
    let proxy = OAuth2Proxy::start_on(
        port,
        &OAuth2ProxyOptions {
            issuer_url: issuer.clone(),
            ca_file: front.ca_file.clone(),
            client_id: "proxy".into(),
            client_secret: secret,
            extra: vec![],
        },
    );
    let plain = reqwest::Client::new();
    let auth = format!("{}/oauth2/auth", proxy.url);
    assert_eq!(plain.get(&auth).send().await.unwrap().status(), 401);
    // Chromium signs in at the proxy; its cookie then passes /oauth2/auth.
    let browser = browser_command(
        &dir.join("browser"),
        &BrowserSteps {
            done_url: Some(format!("^{}/$", regex_escape(&proxy.url))),
            ..Default::default()
        },
    );
    open_in_browser(&browser, &format!("{}/oauth2/start?rd=/", proxy.url)).unwrap_or_else(|e| {
        panic!(
            "{e}\nproxy:\n{}\nserver:\n{}",
            proxy.log_text(),
            stack.server.log_text()
        )
    });
    let cookie = support::oidc::browser_cookie_header(&dir.join("browser"), "127.0.0.1");
    let r = plain
        .get(&auth)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", proxy.log_text());
    assert_eq!(r.headers()["x-auth-request-email"], "ada@example.com");
    assert_eq!(r.headers()["x-auth-request-groups"], "developers");
    let r = plain
        .get(format!("{auth}?allowed_groups=developers"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = plain
        .get(format!("{auth}?allowed_groups=nobody"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' || c == '/' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
