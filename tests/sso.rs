//! SAML sign-in through the real HTTP server, ending in sessions and forward-auth: the real
//! controller (session keys, compiled configuration, SCIM tokens) on the local control plane,
//! the real `sso-operator server`, responses signed at test time by signxml, users pushed over
//! SCIM. Runs on SQLite and on PostgreSQL.

mod support;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::{Value, json};
use sso_operator::api::IdentityProvider;
use sso_operator::store::Store;
use support::operator::{EXTERNAL_URL, Operator};
use support::sso::Sso;
use support::{random_id, set_cookie_headers, set_cookies, urlencode, wait_for};

const FAILED: &str = "Login failed. Please contact your account administrator for more details.";

/// The attributes of the `Set-Cookie` header of cookie `name` (`Path=/`, `Secure`, …).
fn attributes_of(headers: &[String], name: &str) -> Vec<String> {
    let header = headers
        .iter()
        .find(|h| h.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name} in {headers:?}"));
    header.split("; ").skip(1).map(str::to_owned).collect()
}

async fn a_provisioned_user_signs_in_sp_initiated_and_returns_to_the_original_url(
    database_url: &str,
) {
    let (sso, _, _) = Sso::with_ada_provisioned(database_url).await;
    // SP-initiated: back to the original URL with a session.
    let answer = sso
        .sign_in("ada@example.com", Some("https://app.example.test/dash?x=1"))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location.as_deref(),
        Some("https://app.example.test/dash?x=1")
    );
    let session = answer.cookies[&sso.cookie_name()].clone();
    assert!(
        answer.cookies.values().any(String::is_empty),
        "the login cookie is cleared"
    );
    let r = sso.verify(&session, "").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["x-auth-request-user"],
        "Ada@Example.com",
        "linked to the SCIM user, case-insensitively"
    );
    assert_eq!(r.headers()["x-auth-request-email"], "ada@example.com");
    assert_eq!(r.headers()["x-auth-request-groups"], "eng");
    assert_eq!(
        r.headers()["x-auth-request-identity-provider"],
        format!("{}/okta", sso.ns.name).as_str()
    );
    assert_eq!(
        sso.verify(&session, "?groups=admins,ops").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        sso.verify(&session, "?groups=ops,ENG").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        sso.verify(&session, "?identityProvider=other/idp")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    sso.assert_metrics_hold(&[
        "sso_operator_server_sign_ins_total{outcome=\"success\",reason=\"none\"}",
        "sso_operator_server_auth_verify_requests_total{result=\"forbidden\"}",
    ])
    .await;
    sso.assert_log_holds_none_of(&[&session]);
}

support::on_each_database!(
    a_provisioned_user_signs_in_sp_initiated_and_returns_to_the_original_url
);

async fn verify_refuses_appended_queries_and_tampered_or_absent_cookies(database_url: &str) {
    let (sso, _, _) = Sso::with_ada_provisioned(database_url).await;
    let session = sso.ada_session().await;
    // A proxy that appends the user's path and query to a configured query (Envoy with
    // `?identityProvider=` in its path_prefix) is refused rather than trusted.
    let ns = &sso.ns.name;
    for query in [
        format!("?identityProvider={ns}/okta/app?identityProvider=other/idp"),
        format!("?identityProvider={ns}/okta/app?x=1&identityProvider=other/idp"),
        format!("?identityProvider={ns}/okta&groups=eng/app?groups=x&groups=eng"),
    ] {
        let r = sso.verify(&session, &query).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    // Tampered or absent cookies.
    let mut tampered = session.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        sso.verify(&String::from_utf8(tampered).unwrap(), "")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let r = sso
        .http
        .get(format!("{}/auth/verify", sso.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    sso.assert_log_holds_none_of(&[&session]);
}

support::on_each_database!(verify_refuses_appended_queries_and_tampered_or_absent_cookies);

async fn envoy_ext_authz_and_traefik_forward_auth_pass_the_session_or_send_to_sign_in(
    database_url: &str,
) {
    let (sso, _, _) = Sso::with_ada_provisioned(database_url).await;
    let session = sso.ada_session().await;
    // Envoy ext_authz: the original path follows the prefix.
    let r = sso
        .http
        .post(format!("{}/auth/verify/app/page?x=1", sso.url))
        .header(COOKIE, format!("{}={session}", sso.cookie_name()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-auth-request-user"], "Ada@Example.com");
    // Traefik ForwardAuth: without a session, a redirect to sign-in that returns to the
    // original URL (only when it is allowed).
    for (host, back) in [("app.example.test", true), ("evil.example.com", false)] {
        let r = sso
            .http
            .get(format!("{}/auth/verify?signIn=redirect", sso.url))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", "/dash?y=2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
        let login = format!("{EXTERNAL_URL}/saml/{}/okta/login", sso.ns.name);
        if back {
            assert_eq!(
                location,
                format!("{login}?redirect=https%3A%2F%2Fapp.example.test%2Fdash%3Fy%3D2")
            );
        } else {
            assert_eq!(location, login);
        }
    }

    sso.assert_log_holds_none_of(&[&session]);
}

support::on_each_database!(
    envoy_ext_authz_and_traefik_forward_auth_pass_the_session_or_send_to_sign_in
);

async fn a_sign_in_is_finished_once_and_only_in_the_browser_that_started_it(database_url: &str) {
    let (sso, _, _) = Sso::with_ada_provisioned(database_url).await;
    // The same sign-in cannot be finished twice, nor in another browser.
    let (relay, cookie) = sso.login(None).await;
    let response = sso.response(Some(&relay), "ada@example.com", json!({}));
    let form = [
        ("SAMLResponse", response.as_str()),
        ("RelayState", relay.as_str()),
    ];
    let stolen = sso
        .post_acs(&form, Some(&(cookie.0.clone(), "forged".into())))
        .await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    assert!(stolen.body.contains(FAILED));
    // A forged cookie consumed nothing: the browser that started the sign-in finishes it.
    let genuine = sso.post_acs(&form, Some(&cookie)).await;
    assert_eq!(genuine.status, StatusCode::OK, "{}", genuine.body);
    // The request is consumed once: a fresh response to it (another assertion ID) is refused.
    let fresh = sso.response(Some(&relay), "ada@example.com", json!({}));
    let again = sso
        .post_acs(
            &[("SAMLResponse", &fresh), ("RelayState", &relay)],
            Some(&cookie),
        )
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    // Without a redirect, a plain page.
    let (relay, cookie) = sso.login(None).await;
    let response = sso.response(Some(&relay), "ada@example.com", json!({}));
    let ok = sso
        .post_acs(
            &[("SAMLResponse", &response), ("RelayState", &relay)],
            Some(&cookie),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.contains("You are signed in"));

    sso.assert_metrics_hold(&[
        "sso_operator_server_sign_ins_total{outcome=\"success\",reason=\"none\"}",
        "sso_operator_server_sign_ins_total{outcome=\"failure\",reason=\"BrowserMismatch\"}",
    ])
    .await;
    sso.assert_log_holds_none_of(&[&response[..64]]);
}

support::on_each_database!(a_sign_in_is_finished_once_and_only_in_the_browser_that_started_it);

async fn unsolicited_responses_foreign_redirects_and_unprovisioned_users_are_refused(
    database_url: &str,
) {
    let (sso, _, _) = Sso::with_ada_provisioned(database_url).await;
    // IdP-initiated is off here: "Authentication Failed", no session.
    let unsolicited = sso.response(None, "ada@example.com", json!({}));
    let answer = sso.post_acs(&[("SAMLResponse", &unsolicited)], None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.body.contains("Authentication Failed") && answer.body.contains(FAILED));
    assert!(!answer.cookies.contains_key(&sso.cookie_name()));

    // A redirect outside the allow-list never starts.
    let r = sso
        .http
        .get(format!(
            "{}/saml/{}/okta/login?redirect={}",
            sso.url,
            sso.ns.name,
            urlencode("https://evil.example.com/")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(LOCATION).is_none());
    assert!(r.text().await.unwrap().contains("Invalid RelayState"));

    // Unknown users are not created: provisioning is SCIM only.
    let stranger = sso.sign_in("grace@example.com", None).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);

    sso.assert_metrics_hold(&[
        "sso_operator_server_sign_ins_total{outcome=\"failure\",reason=\"UserNotProvisioned\"}",
        "sso_operator_server_sign_ins_total{outcome=\"failure\",reason=\"IdpInitiatedNotAllowed\"}",
    ])
    .await;
    sso.assert_log_holds_none_of(&[&unsolicited[..64]]);
}

support::on_each_database!(
    unsolicited_responses_foreign_redirects_and_unprovisioned_users_are_refused
);

async fn deactivation_sign_out_and_deletion_lock_the_user_out_and_status_shows_why(
    database_url: &str,
) {
    let (sso, token, user_id) = Sso::with_ada_provisioned(database_url).await;
    let session = sso.ada_session().await;
    // Deactivation through SCIM locks the user out on the next verify.
    sso.set_active(&token, &user_id, false).await;
    assert_eq!(
        sso.verify(&session, "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refused = sso.sign_in("ada@example.com", None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Reactivated: signs in again. Deleted: locked out again.
    sso.set_active(&token, &user_id, true).await;
    let back = sso.sign_in("ada@example.com", Some("/after")).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert_eq!(back.location.as_deref(), Some("/after"));
    let session = back.cookies[&sso.cookie_name()].clone();
    assert_eq!(sso.verify(&session, "").await.status(), StatusCode::OK);

    // Sign-out ends the session on the server, not only in the browser.
    let r = sso
        .http
        .get(format!("{}/auth/logout?rd=%2Fbye", sso.url))
        .header(COOKIE, format!("{}={session}", sso.cookie_name()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(set_cookies(&r)[&sso.cookie_name()], "");
    assert_eq!(
        sso.verify(&session, "").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let session = sso.sign_in("ada@example.com", None).await.cookies[&sso.cookie_name()].clone();
    assert_eq!(sso.verify(&session, "").await.status(), StatusCode::OK);
    let r = sso
        .http
        .delete(sso.scim(&format!("/Users/{user_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sso.verify(&session, "").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The admin sees the last success and the last failure's reason in status.
    let status = wait_for(Duration::from_secs(20), || async {
        let s = sso.status().await;
        (s["signIn"]["lastFailureReason"] == "UserNotProvisioned"
            || s["signIn"]["lastFailureReason"] == "UserDeactivated")
            .then_some(s)
    })
    .await;
    let status = status.expect("the sign-in figures reach the IdentityProvider's status");
    assert!(status["signIn"]["lastSuccessTime"].is_string(), "{status}");
    sso.assert_metrics_hold(&[
        "sso_operator_server_sign_ins_total{outcome=\"success\",reason=\"none\"}",
        "sso_operator_server_sign_ins_total{outcome=\"failure\",reason=\"UserDeactivated\"}",
    ])
    .await;
    sso.assert_log_holds_none_of(&[&session]);
}

support::on_each_database!(
    deactivation_sign_out_and_deletion_lock_the_user_out_and_status_shows_why
);

impl Sso {
    /// IdentityProvider `okta` allowing IdP-initiated sign-in (default relay state
    /// `/welcome`) with just-in-time users of example.com, default group `everyone` and
    /// groups synced from SAML, on SQLite.
    async fn with_just_in_time_tiles() -> Self {
        Sso::start(
            "sso-idp",
            &support::sqlite_url("sso-idp"),
            json!({
                "allowIdpInitiated": true,
                "defaultRelayState": "/welcome",
                "allowedRedirects": ["https://app.example.test/"],
                "users": { "provisioning": "justInTime", "allowedEmailDomains": ["example.com"], "defaultGroups": ["everyone"], "syncGroupsFromSaml": true },
            }),
        )
        .await
    }

    /// Grace's first tile click with SAML groups `eng` and `ops`; returns her session.
    async fn grace_tile_session(&self) -> String {
        let tile = self.response(
            None,
            "grace@example.com",
            json!({ "attributes": { "groups": ["eng", "ops"], "firstName": ["Grace"] } }),
        );
        let answer = self.post_acs(&[("SAMLResponse", &tile)], None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        answer.cookies[&self.cookie_name()].clone()
    }
}

#[tokio::test]
async fn a_tile_click_creates_the_user_just_in_time_with_default_and_saml_groups_once() {
    let sso = Sso::with_just_in_time_tiles().await;
    // A tile click: no InResponseTo, no RelayState → the default relay state; the user is
    // created just in time with the default group and the SAML groups.
    let tile = sso.response(
        None,
        "grace@example.com",
        json!({ "attributes": { "groups": ["eng", "ops"], "firstName": ["Grace"] } }),
    );
    let answer = sso.post_acs(&[("SAMLResponse", &tile)], None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some("/welcome"));
    let session = answer.cookies[&sso.cookie_name()].clone();
    let r = sso.verify(&session, "").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-auth-request-user"], "grace@example.com");
    assert_eq!(r.headers()["x-auth-request-groups"], "eng,everyone,ops");

    // The same response again: the replay cache refuses it.
    let replay = sso.post_acs(&[("SAMLResponse", &tile)], None).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert!(replay.body.contains(FAILED));
}

#[tokio::test]
async fn each_tile_click_replaces_the_synced_groups_and_follows_an_allowed_relay_state() {
    let sso = Sso::with_just_in_time_tiles().await;
    sso.grace_tile_session().await;
    // Group sync: the next sign-in's groups replace the previous ones.
    let tile = sso.response(
        None,
        "grace@example.com",
        json!({ "attributes": { "groups": ["eng"] } }),
    );
    let answer = sso
        .post_acs(
            &[
                ("SAMLResponse", &tile),
                ("RelayState", "https://app.example.test/x"),
            ],
            None,
        )
        .await;
    assert_eq!(
        answer.location.as_deref(),
        Some("https://app.example.test/x")
    );
    let r = sso.verify(&answer.cookies[&sso.cookie_name()], "").await;
    assert_eq!(r.headers()["x-auth-request-groups"], "eng,everyone");
}

#[tokio::test]
async fn relay_states_and_email_domains_outside_the_allow_lists_are_refused() {
    let sso = Sso::with_just_in_time_tiles().await;
    // A RelayState outside the allow-list: "Invalid RelayState", never a redirect.
    for target in [
        "https://evil.example.com/",
        "//evil.example.com/",
        "javascript:alert(1)",
    ] {
        let tile = sso.response(None, "grace@example.com", json!({}));
        let answer = sso
            .post_acs(&[("SAMLResponse", &tile), ("RelayState", target)], None)
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{target}");
        assert!(answer.location.is_none());
        assert!(answer.body.contains("Invalid RelayState"));
        assert!(!answer.cookies.contains_key(&sso.cookie_name()));
    }
    // Email domains outside the allow-list.
    let tile = sso.response(None, "mallory@evil.example", json!({}));
    let answer = sso.post_acs(&[("SAMLResponse", &tile)], None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_oversized_and_get_responses_at_the_acs_get_a_clear_4xx() {
    let sso = Sso::with_just_in_time_tiles().await;
    // Bad input: clear 4xx pages, never a 500.
    let dtd = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&b;</samlp:Response>"#,
    );
    for form in [
        vec![("SAMLResponse", "%%% not base64 %%%")],
        vec![("SAMLResponse", dtd.as_str())],
        vec![("RelayState", "x")],
        vec![("SAMLResponse", "PA=="), ("SAMLResponse", "PA==")],
    ] {
        let answer = sso.post_acs(&form, None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{form:?}: {}",
            answer.body
        );
        assert!(answer.body.contains("Authentication Failed"));
    }
    // A deflate bomb is not inflated: the ACS takes only base64 XML over HTTP-POST.
    let bomb = {
        use std::io::Write;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![b'<'; 20 * 1024 * 1024]).unwrap();
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            z.finish().unwrap(),
        )
    };
    let answer = sso.post_acs(&[("SAMLResponse", &bomb)], None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let huge = "A".repeat(3 * 1024 * 1024);
    let answer = sso.post_acs(&[("SAMLResponse", &huge)], None).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = sso
        .http
        .get(format!(
            "{}/saml/{}/okta/acs?SAMLResponse=x",
            sso.url, sso.ns.name
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn auth_signin_starts_sp_initiated_login_only_toward_allowed_redirects() {
    let sso = Sso::with_just_in_time_tiles().await;
    // The sign-in endpoint for ingress-nginx's auth-signin starts SP-initiated login.
    let r = sso
        .http
        .get(format!(
            "{}/auth/signin?rd={}",
            sso.url,
            urlencode("https://app.example.test/page")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION],
        format!(
            "/saml/{}/okta/login?redirect=https%3A%2F%2Fapp.example.test%2Fpage",
            sso.ns.name
        )
        .as_str()
    );
    let r = sso
        .http
        .get(format!(
            "{}/auth/signin?rd={}",
            sso.url,
            urlencode("https://evil.example.com/")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_session_passes_only_for_its_identity_provider_and_ends_when_that_is_disabled() {
    let sso = Sso::with_just_in_time_tiles().await;
    let session = sso.grace_tile_session().await;
    // A second IdentityProvider served by the same server: every check must name one, and a
    // session of one never passes for the other, even under the other's cookie name.
    let api: Api<IdentityProvider> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    let other = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": "other" },
        "spec": { "idp": { "ssoUrl": "https://other.example.test/sso", "entityId": "https://other.example.test", "certificates": [{ "pem": sso.idp_cert }] } } });
    api.patch(
        "other",
        &PatchParams::apply("tests").force(),
        &Patch::Apply(&other),
    )
    .await
    .unwrap();
    let metadata = format!("{}/saml/{}/other/metadata", sso.url, sso.ns.name);
    wait_for(Duration::from_secs(30), || async {
        (sso.http.get(&metadata).send().await.ok()?.status() == StatusCode::OK).then_some(())
    })
    .await
    .expect("the second IdentityProvider is served");
    assert_eq!(
        sso.verify(&session, "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let okta = format!("?identityProvider={}/okta", sso.ns.name);
    assert_eq!(sso.verify(&session, &okta).await.status(), StatusCode::OK);
    let other_name = sso_operator::session::cookie_name(&format!("{}/other", sso.ns.name), true);
    let r = sso
        .http
        .get(format!(
            "{}/auth/verify?identityProvider={}/other",
            sso.url, sso.ns.name
        ))
        .header(COOKIE, format!("{other_name}={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Disabling the IdentityProvider ends its sessions at once.
    let r = sso.verify(&session, &okta).await;
    assert_eq!(r.status(), StatusCode::OK);
    let api: Api<IdentityProvider> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    api.patch(
        "okta",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "disabled": true } })),
    )
    .await
    .unwrap();
    let ended = wait_for(Duration::from_secs(20), || async {
        (sso.verify(&session, &okta).await.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert!(
        ended.is_some(),
        "a disabled IdentityProvider's sessions end"
    );
}

/// Envoy's ext_authz HTTP service checks at `path_prefix` + the original path and query.
/// Only the IdentityProvider and required groups in the prefix (which only the proxy's
/// configuration sets) count: a query or path naming another IdentityProvider, with the
/// caller's own session there, never passes an application bound to the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_ext_authz_passes_only_sessions_of_the_identity_provider_in_its_path_prefix() {
    let jit = json!({ "allowIdpInitiated": true, "users": { "provisioning": "justInTime", "syncGroupsFromSaml": true } });
    let sso = Sso::start("sso-envoy", &support::sqlite_url("sso-envoy"), jit.clone()).await;
    sso.add_identity_provider("evil", "https://evil.example.test", jit)
        .await;
    let ns = sso.ns.name.clone();
    let okta = "http://www.okta.com/exk1";
    let ada = sso
        .tile_sign_in("okta", okta, "ada@example.com", &["eng"])
        .await;
    let root = sso
        .tile_sign_in("okta", okta, "root@example.com", &["admins"])
        .await;
    // Someone who administers the IdentityProvider `evil` signs in there with any groups.
    let mallory = sso
        .tile_sign_in(
            "evil",
            "https://evil.example.test",
            "mallory@example.com",
            &["admins", "eng"],
        )
        .await;

    let bound = format!("/auth/{ns}/okta/verify");
    let admins = format!("/auth/{ns}/okta/verify/groups/admins");
    let envoy = support::envoy::Envoy::start(&sso.url, &[&bound, &admins, "/auth/verify"]);
    let (app, admin_app, unbound) = (&envoy.urls[0], &envoy.urls[1], &envoy.urls[2]);
    let get = |url: String, cookie: Option<&str>| {
        let mut req = sso.http.get(url);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap_or_default())
        }
    };
    let evil_query = format!("identityProvider={ns}/evil");

    // Bound to team okta: its users pass, whatever the path and query.
    let (status, body) = get(format!("{app}/dash?x=1&{evil_query}"), Some(&ada)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{body}\nenvoy:\n{}",
        envoy.log_text()
    );
    assert_eq!(body, "app");
    assert_eq!(get(format!("{app}/"), Some(&ada)).await.0, StatusCode::OK);
    assert_eq!(
        get(format!("{app}/x"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Another IdentityProvider's session, named in the query or in the path: refused.
    for path in [
        format!("/x?{evil_query}"),
        format!("/?{evil_query}"),
        format!("/x?{evil_query}&groups=admins"),
        format!("/auth/{ns}/evil/verify"),
        format!("/{ns}/evil/verify/x"),
    ] {
        let (status, body) = get(format!("{app}{path}"), Some(&mallory)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    // Required groups are bound by the prefix too: the user's query or path cannot change them.
    for path in ["/x", "/x?groups=eng", "/groups/eng/x"] {
        let (status, body) = get(format!("{admin_app}{path}"), Some(&ada)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    assert_eq!(
        get(format!("{admin_app}/x"), Some(&root)).await.0,
        StatusCode::OK
    );
    let (status, _) = get(format!("{admin_app}/x?{evil_query}"), Some(&mallory)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The unbound prefix (`/auth/verify`) never reads the user's query: with two
    // IdentityProviders served it cannot tell which one the application trusts, and refuses.
    for path in [format!("/x?{evil_query}"), format!("/?{evil_query}")] {
        let (status, body) = get(format!("{unbound}{path}"), Some(&mallory)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    assert!(
        !sso.server
            .log_text()
            .contains(mallory.split_once('=').unwrap().1)
    );
}

/// One tenant's administrator cannot turn the shared host into an open redirect: sign-in and
/// sign-out return only where the installation's allow-list (`--allowed-redirect`) allows,
/// whatever the IdentityProvider's own `allowedRedirects` says, which can only narrow it; a
/// refusal is a 400 page that says which value to add where.
#[tokio::test]
async fn sign_in_and_sign_out_return_only_where_the_installation_allows() {
    let sso = Sso::start(
        "sso-redirects",
        &support::sqlite_url("sso-redirects"),
        json!({ "allowIdpInitiated": true, "allowedRedirects": ["https://evil.example.com/", "https://app.example.test/portal/"] }),
    )
    .await;
    let ns = sso.ns.name.clone();
    let get = |path: String| {
        let req = sso.http.get(format!("{}{path}", sso.url));
        async move {
            let r = req.send().await.unwrap();
            let location = r
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status(), location, r.text().await.unwrap_or_default())
        }
    };
    let evil = urlencode("https://evil.example.com/phish");
    for path in [
        format!("/auth/signin?identityProvider={ns}/okta&rd={evil}"),
        format!("/saml/{ns}/okta/login?redirect={evil}"),
        format!("/auth/logout?identityProvider={ns}/okta&rd={evil}"),
        format!("/auth/logout?rd={evil}"),
    ] {
        let (status, location, body) = get(path.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(location, None, "{path}");
        assert!(
            body.contains("https://evil.example.com") && body.contains("server.allowedRedirects"),
            "{path}: {body}"
        );
    }
    // IdP-initiated sign-in with the tenant's RelayState: refused as well.
    let tile = sso.response(None, "ada@example.com", json!({}));
    let answer = sso
        .post_acs(
            &[
                ("SAMLResponse", &tile),
                ("RelayState", "https://evil.example.com/phish"),
            ],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(answer.body.contains("Invalid RelayState") && answer.location.is_none());

    // Allowed by the installation, not by the IdentityProvider: the page names its field.
    let other = urlencode("https://app.example.test/other");
    let (status, _, body) = get(format!(
        "/auth/signin?identityProvider={ns}/okta&rd={other}"
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("spec.allowedRedirects") && body.contains(&format!("{ns}/okta")),
        "{body}"
    );
    // Allowed by both, or a path here: redirected.
    let portal = urlencode("https://app.example.test/portal/x");
    let (status, location, _) = get(format!(
        "/auth/signin?identityProvider={ns}/okta&rd={portal}"
    ))
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.unwrap(),
        format!("/saml/{ns}/okta/login?redirect={portal}")
    );
    let bye = urlencode("https://app.example.test/portal/bye");
    let (status, location, _) =
        get(format!("/auth/logout?identityProvider={ns}/okta&rd={bye}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("https://app.example.test/portal/bye")
    );
    let (status, location, _) = get("/auth/logout?rd=%2Fbye".to_owned()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/bye"));
}

#[tokio::test]
async fn session_keys_rotate_and_cookies_sealed_with_older_keys_keep_working() {
    let sso = Sso::start_with(
        "sso-keys",
        &support::sqlite_url("sso-keys"),
        json!({}),
        &["--session-key-rotation", "3s"],
    )
    .await;
    let key_ids = || async {
        let secrets: Api<Secret> = Api::namespaced(sso.client.clone(), &sso.ns.name);
        let secret = secrets.get("sso-operator-session-keys").await.ok()?;
        let keys: Value = serde_json::from_slice(&secret.data?.get("keys.json")?.0).ok()?;
        Some(
            keys["keys"]
                .as_array()?
                .iter()
                .filter_map(|k| k["id"].as_str().map(str::to_owned))
                .collect::<Vec<_>>(),
        )
    };
    // Users come just in time here, so no SCIM push is needed.
    let api: Api<IdentityProvider> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    api.patch(
        "okta",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "users": { "provisioning": "justInTime" } } })),
    )
    .await
    .unwrap();
    let first = wait_for(Duration::from_secs(20), || async {
        let a = sso.sign_in("ada@example.com", None).await;
        a.cookies.get(&sso.cookie_name()).cloned()
    })
    .await
    .expect("a first session");
    let first_key = first.split('.').nth(1).unwrap().to_owned();
    // A few rotations later the first key is no longer the newest, but still known.
    let rotated = wait_for(Duration::from_secs(30), || async {
        let ids = key_ids().await?;
        (ids.len() >= 3 && ids[0] != first_key && ids.contains(&first_key)).then_some(ids)
    })
    .await
    .expect("the controller adds keys");
    assert_eq!(sso.verify(&first, "").await.status(), StatusCode::OK);
    // New sessions are sealed with the newest key the server has seen.
    let second = wait_for(Duration::from_secs(20), || async {
        let s = sso
            .sign_in("ada@example.com", None)
            .await
            .cookies
            .get(&sso.cookie_name())?
            .clone();
        (s.split('.').nth(1)? != first_key).then_some(s)
    })
    .await
    .expect("a session sealed with a newer key");
    let second_key = second.split('.').nth(1).unwrap().to_owned();
    assert!(rotated.contains(&first_key));
    assert!(key_ids().await.unwrap().contains(&second_key));
    assert_eq!(sso.verify(&second, "").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_re_created_identity_provider_starts_empty_and_refuses_the_deleted_ones_cookies() {
    let database_url = support::sqlite_url("sso-recreate");
    let sso = Sso::start("sso-recreate", &database_url, json!({})).await;
    let token = sso.scim_token().await;
    let ada = sso.push_ada(&token).await;
    // A session, with the assertion ID it consumed.
    let (relay, cookie) = sso.login(None).await;
    let assertion_id = random_id("_a");
    let response = sso.response(
        Some(&relay),
        "ada@example.com",
        json!({ "assertionId": assertion_id }),
    );
    let answer = sso
        .post_acs(
            &[("SAMLResponse", &response), ("RelayState", &relay)],
            Some(&cookie),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let session = answer.cookies[&sso.cookie_name()].clone();
    assert_eq!(sso.verify(&session, "").await.status(), StatusCode::OK);
    // A sign-in started before the deletion, finished after it.
    let (pending_relay, pending_cookie) = sso.login(None).await;

    // The compiled configuration deleted by hand is re-created by the controller with the
    // same UID: a transient, nothing is purged.
    let secrets: Api<Secret> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    let compiled = format!("idp-{}.okta", sso.ns.name);
    let before = secrets.get(&compiled).await.unwrap().metadata.uid;
    secrets
        .delete(&compiled, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let recreated = wait_for(Duration::from_secs(60), || async {
        let s = secrets.get_opt(&compiled).await.ok()??;
        (s.metadata.uid != before).then_some(())
    })
    .await;
    assert!(recreated.is_some(), "the controller re-creates its Secret");
    let still = wait_for(Duration::from_secs(30), || async {
        (sso.verify(&session, "").await.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(still.is_some(), "the session outlives a re-created Secret");
    assert_eq!(sso.scim_total(&token, "/Users").await, 1);
    assert!(!sso.server.metrics().await.contains("tenant_purges_total{"));

    // Deleted: the server purges the tenant.
    sso.delete_idp_and_token().await;
    sso.wait_metric("sso_operator_server_tenant_purges_total{reason=\"deleted\"} 1")
        .await;
    let store = Store::connect(&database_url).await.unwrap();
    let tenant = sso.tenant();
    assert_eq!(store.count_users(&tenant).await.unwrap(), 0);
    assert_eq!(store.count_groups(&tenant).await.unwrap(), 0);
    assert!(
        store
            .remember_assertion(
                &tenant,
                &assertion_id,
                Timestamp::now() + SignedDuration::from_mins(5)
            )
            .await
            .unwrap(),
        "the replay cache no longer holds the deleted IdentityProvider's assertion IDs"
    );
    assert!(store.get_user(&tenant, &ada).await.unwrap().is_none());

    // Re-created under the same name (perhaps for another IdP): nothing of the old one.
    sso.create_idp(&json!({})).await;
    sso.wait_served().await;
    assert_eq!(
        sso.verify(&session, "").await.status(),
        StatusCode::UNAUTHORIZED,
        "the deleted IdentityProvider's session cookie is refused"
    );
    let late = sso.response(Some(&pending_relay), "ada@example.com", json!({}));
    let answer = sso
        .post_acs(
            &[("SAMLResponse", &late), ("RelayState", &pending_relay)],
            Some(&pending_cookie),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(!answer.cookies.contains_key(&sso.cookie_name()));
    let token = sso.scim_token().await;
    assert_eq!(sso.scim_total(&token, "/Users").await, 0);
    assert_eq!(sso.scim_total(&token, "/Groups").await, 0);
    // Its own users sign in as usual.
    sso.push_ada(&token).await;
    let fresh = sso.sign_in("ada@example.com", None).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let new_session = fresh.cookies[&sso.cookie_name()].clone();
    assert_eq!(sso.verify(&new_session, "").await.status(), StatusCode::OK);
    assert_eq!(
        sso.verify(&session, "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let log = sso.server.log_text();
    assert!(
        log.contains("purged the identity store's data"),
        "the purge is logged:\n{log}"
    );
}

#[tokio::test]
async fn a_server_that_was_down_while_an_identity_provider_was_re_created_purges_it_on_start() {
    let database_url = support::postgres_url();
    let mut sso = Sso::start("sso-down", &database_url, json!({})).await;
    let token = sso.scim_token().await;
    sso.push_ada(&token).await;
    let answer = sso.sign_in("ada@example.com", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let session = answer.cookies[&sso.cookie_name()].clone();
    assert_eq!(sso.verify(&session, "").await.status(), StatusCode::OK);

    // While the server is down, the IdentityProvider is deleted and re-created.
    sso.server.kill();
    let secrets: Api<Secret> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    let compiled = format!("idp-{}.okta", sso.ns.name);
    let before = secrets.get(&compiled).await.unwrap().metadata.uid;
    sso.delete_idp_and_token().await;
    sso.create_idp(&json!({})).await;
    let republished = wait_for(Duration::from_secs(60), || async {
        let secret = secrets.get_opt(&compiled).await.ok()??;
        (secret.metadata.uid != before).then_some(())
    })
    .await;
    assert!(
        republished.is_some(),
        "the controller compiles the new IdentityProvider"
    );

    let kubeconfig = support::operator::server_kubeconfig(&sso.client, &sso.ns.name).await;
    let (server, url) = Operator::start_server(&kubeconfig, &sso.ns.name, &database_url);
    sso.server = server;
    sso.url = url;
    sso.wait_served().await;
    assert_eq!(
        sso.verify(&session, "").await.status(),
        StatusCode::UNAUTHORIZED,
        "the deleted IdentityProvider's session cookie is refused"
    );
    sso.wait_metric("sso_operator_server_tenant_purges_total{reason=\"replaced\"} 1")
        .await;
    let token = sso.scim_token().await;
    assert_eq!(sso.scim_total(&token, "/Users").await, 0);
    assert_eq!(sso.scim_total(&token, "/Groups").await, 0);
}

#[tokio::test]
async fn session_cookies_are_host_only_under_the_host_prefix_unless_shared_with_a_cookie_domain() {
    let sso = Sso::start(
        "sso-cookie-names",
        &support::sqlite_url("sso-cookie-names"),
        json!({ "users": { "provisioning": "justInTime" } }),
    )
    .await;
    let tenant = format!("{}/okta", sso.ns.name);
    let host_only = sso_operator::session::cookie_name(&tenant, true);
    let shared = sso_operator::session::cookie_name(&tenant, false);
    assert!(host_only.starts_with("__Host-sso_session_"), "{host_only}");
    assert_eq!(host_only, format!("__Host-{shared}"));

    // Without session.cookieDomain: the __Host- name, Secure, Path=/ and no Domain, as browsers
    // require of it; the sign-in's own cookie too.
    let (relay, login_cookie) = sso.login(None).await;
    assert!(
        login_cookie.0.starts_with("__Host-sso_login_"),
        "{}",
        login_cookie.0
    );
    let response = sso.response(Some(&relay), "ada@example.com", json!({}));
    let answer = sso
        .post_acs(
            &[("SAMLResponse", &response), ("RelayState", &relay)],
            Some(&login_cookie),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for name in [&host_only, &login_cookie.0] {
        let attributes = attributes_of(&answer.set_cookie_headers, name);
        for part in ["Secure", "Path=/", "HttpOnly"] {
            assert!(
                attributes.iter().any(|a| a == part),
                "{name}: {attributes:?}"
            );
        }
        assert!(
            !attributes.iter().any(|a| a.starts_with("Domain=")),
            "{name}: {attributes:?}"
        );
    }
    let session = answer.cookies[&host_only].clone();
    let verify = |name: String, value: String| {
        let (http, url) = (sso.http.clone(), format!("{}/auth/verify", sso.url));
        async move {
            let r = http
                .get(url)
                .header(COOKIE, format!("{name}={value}"))
                .send()
                .await
                .unwrap();
            r.status()
        }
    };
    assert_eq!(
        verify(host_only.clone(), session.clone()).await,
        StatusCode::OK
    );
    // The name of earlier releases is not a session any more (users sign in again).
    assert_eq!(
        verify(shared.clone(), session.clone()).await,
        StatusCode::UNAUTHORIZED
    );

    // With session.cookieDomain: the cookie is shared with sibling hosts under the plain name.
    let api: Api<IdentityProvider> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    api.patch(
        "okta",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "session": { "cookieDomain": ".example.test" } } })),
    )
    .await
    .unwrap();
    let answer = wait_for(Duration::from_secs(40), || async {
        let answer = sso.sign_in("ada@example.com", None).await;
        answer.cookies.contains_key(&shared).then_some(answer)
    })
    .await
    .expect("sign-in sets the shared cookie once the server has the new configuration");
    let attributes = attributes_of(&answer.set_cookie_headers, &shared);
    for part in ["Secure", "Path=/", "HttpOnly", "Domain=example.test"] {
        assert!(attributes.iter().any(|a| a == part), "{attributes:?}");
    }
    assert!(!answer.cookies.contains_key(&host_only));
    let shared_session = answer.cookies[&shared].clone();
    assert_eq!(
        verify(shared.clone(), shared_session.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        verify(host_only.clone(), shared_session.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    // Signing out removes both: the host-only cookie and the shared one.
    let r = sso
        .http
        .get(format!("{}/auth/logout", sso.url))
        .header(COOKIE, format!("{shared}={shared_session}"))
        .send()
        .await
        .unwrap();
    let headers = set_cookie_headers(&r);
    assert!(
        attributes_of(&headers, &host_only)
            .iter()
            .any(|a| a == "Max-Age=0")
    );
    let attributes = attributes_of(&headers, &shared);
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );
    assert!(
        attributes.iter().any(|a| a == "Domain=example.test"),
        "{attributes:?}"
    );
    assert_eq!(
        verify(shared.clone(), shared_session).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_request_carrying_a_sign_in_cookie_twice_is_refused() {
    let sso = Sso::start(
        "sso-cookie-twice",
        &support::sqlite_url("sso-cookie-twice"),
        json!({ "users": { "provisioning": "justInTime" } }),
    )
    .await;
    let name = sso.cookie_name();
    let session = sso.sign_in("ada@example.com", None).await.cookies[&name].clone();
    let other = sso.sign_in("ada@example.com", None).await.cookies[&name].clone();
    let send = |path: &str, cookies: Vec<String>| {
        let mut req = sso.http.get(format!("{}{path}", sso.url));
        for c in cookies {
            req = req.header(COOKIE, c);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    // One copy (and an application's own cookie sent twice, which is not ours to judge).
    let (status, _) = send(
        "/auth/verify",
        vec![format!("app=1; {name}={session}; app=2")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Two copies, equal or not, in one header or two: neither is picked.
    for cookies in [
        vec![format!("{name}={session}; {name}={other}")],
        vec![format!("{name}={other}; {name}=planted")],
        vec![format!("{name}={session}"), format!("{name}={session}")],
    ] {
        let (status, body) = send("/auth/verify", cookies.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cookies:?}");
        assert!(body.contains("Clear this site's cookies"), "{body}");
        let (status, body) = send("/auth/logout", cookies.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cookies:?}");
        assert!(body.contains("Clear this site's cookies"), "{body}");
    }
    // The session was not ended by the refused sign-out.
    let (status, _) = send("/auth/verify", vec![format!("{name}={session}")]).await;
    assert_eq!(status, StatusCode::OK);

    // The sign-in's own cookie sent twice: the sign-in is refused, not finished.
    let (relay, cookie) = sso.login(None).await;
    let response = sso.response(Some(&relay), "ada@example.com", json!({}));
    let twice = (
        cookie.0.clone(),
        format!("{}; {}={}", cookie.1, cookie.0, cookie.1),
    );
    let answer = sso
        .post_acs(
            &[("SAMLResponse", &response), ("RelayState", &relay)],
            Some(&twice),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(!answer.cookies.contains_key(&name));
    assert!(
        answer.body.contains("Clear this site's cookies"),
        "{}",
        answer.body
    );
}
