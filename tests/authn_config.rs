//! kube-apiserver with structured authentication (`--authentication-config`, an
//! AuthenticationConfiguration trusting one OpenID Provider), as docs/kubernetes.md sets it up:
//! the YAML the tests render is the documented one, and an API server whose issuer does not
//! answer (not started yet, or down) still starts, serves its own credentials, keeps retrying
//! discovery, and refuses tokens of that issuer with 401.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::control_plane::PrivateControlPlane;
use support::oidc::{authentication_config, kubectl};
use support::operator::free_port;

#[test]
fn the_rendered_authentication_config_maps_email_and_groups_with_the_oidc_prefix() {
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let yaml = authentication_config(
        "https://127.0.0.1:8443/oidc/ns/idp",
        ca,
        "kubectl",
        "groups",
    );
    let config: Value = serde_saphyr::from_str(&yaml).expect("valid YAML");
    assert_eq!(config["apiVersion"], "apiserver.config.k8s.io/v1");
    assert_eq!(config["kind"], "AuthenticationConfiguration");
    let jwt = &config["jwt"][0];
    assert_eq!(jwt["issuer"]["url"], "https://127.0.0.1:8443/oidc/ns/idp");
    assert_eq!(jwt["issuer"]["certificateAuthority"], ca);
    assert_eq!(jwt["issuer"]["audiences"], json!(["kubectl"]));
    assert_eq!(
        jwt["claimMappings"],
        json!({
            "username": { "claim": "email", "prefix": "oidc:" },
            "groups": { "claim": "groups", "prefix": "oidc:" },
        })
    );
}

/// A compact JWS claiming `issuer`, with a signature nobody made.
fn forged_token(issuer: &str) -> String {
    use base64::Engine;
    let b64 = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let now = jiff::Timestamp::now().as_second();
    format!(
        "{}.{}.{}",
        b64(json!({ "alg": "RS256", "kid": "k1", "typ": "JWT" })),
        b64(
            json!({ "iss": issuer, "sub": "u1", "aud": "kubectl", "email": "ada@example.com",
                     "email_verified": true, "iat": now, "exp": now + 600 })
        ),
        b64(json!("not a signature")),
    )
}

#[tokio::test]
async fn api_server_with_an_unreachable_issuer_starts_and_serves_its_admin() {
    let dir = std::env::temp_dir()
        .join("sso-operator-tests")
        .join(format!("authn-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_file, _, _) = support::tls_files(&dir);
    let ca_pem = std::fs::read_to_string(&ca_file).unwrap();
    // Nothing listens there: discovery fails, as while the operator is not installed yet.
    let issuer = format!("https://127.0.0.1:{}/oidc/platform/corp", free_port());
    let plane = PrivateControlPlane::start_with_authentication(
        "authn",
        &authentication_config(&issuer, &ca_pem, "kubectl", "groups"),
    );

    let (ok, out, err) = kubectl(&plane.kubeconfig(), &["auth", "whoami", "-o", "json"]);
    assert!(
        ok,
        "kubectl auth whoami with the admin kubeconfig failed: {err}"
    );
    let review: Value = serde_json::from_str(&out).expect("a SelfSubjectReview");
    assert_eq!(
        review["status"]["userInfo"]["username"], "kube-local-admin",
        "{review}"
    );

    // The configuration is in effect: the API server tries the issuer's discovery document.
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let tried = support::wait_for(Duration::from_secs(30), || {
        let found = plane.log_text().lines().any(|l| {
            l.contains("oidc authenticator: initializing plugin") && l.contains(&discovery)
        });
        async move { found.then_some(()) }
    })
    .await;
    assert!(
        tried.is_some(),
        "the API server never tried {discovery}:\n{}",
        plane.log_text()
    );

    // A token of that issuer is refused (401), not an error of the server.
    let token_kubeconfig = dir.join("token.kubeconfig");
    let admin = kube::config::Kubeconfig::read_from(plane.kubeconfig()).unwrap();
    let cluster = admin.clusters[0].cluster.clone().unwrap();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "c", "cluster": cluster }],
        "users": [{ "name": "u", "user": { "token": forged_token(&issuer) } }],
        "contexts": [{ "name": "c", "context": { "cluster": "c", "user": "u" } }],
        "current-context": "c",
    });
    std::fs::write(&token_kubeconfig, config.to_string()).unwrap();
    let (ok, _, err) = kubectl(&token_kubeconfig, &["auth", "whoami"]);
    assert!(!ok, "a forged token of the issuer was accepted");
    assert!(err.contains("Unauthorized"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
