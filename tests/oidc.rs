//! The OpenID Provider through the real server: OidcClients applied to the real API server,
//! the controller compiling them with signing keys, sign-in through the IdentityProvider's SAML
//! flow (responses signed by signxml), users and groups pushed over SCIM, tokens verified
//! against the published JWKS with an independent JOSE implementation (jsonwebtoken).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::{Value, json};
use sha2::Digest;
use support::operator::EXTERNAL_URL;
use support::sso::Sso;
use support::{TEST_MANAGER, urlencode, wait_for};

const APP_CALLBACK: &str = "https://app.example.test/oauth2/callback";
const APP_SIGNED_OUT: &str = "https://app.example.test/signed-out";

/// A signed-in test bed: IdentityProvider `okta` with Ada pushed over SCIM (group `eng`), a
/// confidential client `argocd` and a public client `kubectl`.
struct Bed {
    sso: Sso,
    scim_token: String,
    ada: String,
    argocd_secret: String,
}

impl Bed {
    async fn start(prefix: &str, database_url: &str) -> Self {
        let sso = Sso::start(
            prefix,
            database_url,
            json!({ "allowedRedirects": ["https://app.example.test/"] }),
        )
        .await;
        let scim_token = sso.scim_token().await;
        let ada = sso.push_ada_as(&scim_token, "ada@example.com").await;
        apply_client(
            &sso,
            "argocd",
            json!({
                "identityProviderRef": { "name": "okta" },
                "redirectUris": [APP_CALLBACK],
                "postLogoutRedirectUris": [APP_SIGNED_OUT],
            }),
        )
        .await;
        apply_client(
            &sso,
            "kubectl",
            json!({
                "identityProviderRef": { "name": "okta" },
                "public": true,
                "redirectUris": ["http://localhost:8000", "http://127.0.0.1/"],
                "grantTypes": ["authorization_code", "refresh_token", "device_code"],
                "tokenLifetimes": { "idToken": "5m" },
            }),
        )
        .await;
        let argocd_secret = client_secret(&sso, "argocd-oidc-client").await;
        let bed = Self {
            sso,
            scim_token,
            ada,
            argocd_secret,
        };
        bed.wait_accepted("argocd", Some(&bed.argocd_secret)).await;
        bed.wait_accepted("kubectl", None).await;
        bed
    }

    fn base(&self) -> String {
        format!("{}/oidc/{}/okta", self.sso.url, self.sso.ns.name)
    }

    fn issuer(&self) -> String {
        format!("{EXTERNAL_URL}/oidc/{}/okta", self.sso.ns.name)
    }

    /// Waits until the server knows client `id` (with `secret`): its token endpoint answers
    /// `invalid_request` (a missing grant type), not `invalid_client`.
    async fn wait_accepted(&self, id: &str, secret: Option<&str>) {
        let url = format!("{}/token", self.base());
        let http = self.sso.http.clone();
        let ok = wait_for(Duration::from_secs(40), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let mut form = vec![("client_id", id.to_owned())];
                if let Some(s) = secret {
                    form.push(("client_secret", s.to_owned()));
                }
                let r = http.post(&url).form(&form).send().await.ok()?;
                let status = r.status();
                let body: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
                (status == StatusCode::BAD_REQUEST && body["error"] == "invalid_request")
                    .then_some(())
            }
        })
        .await;
        assert!(
            ok.is_some(),
            "client {id} is never accepted\n{}",
            self.sso.server.log_text()
        );
    }

    /// A whole authorization-code sign-in of Ada through SAML for `client_id`; returns the
    /// code and the session cookie (`name=value`).
    async fn sign_in(
        &self,
        client_id: &str,
        redirect_uri: &str,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid email profile groups offline_access"),
            ("state", "st-1"),
            ("nonce", "n-1"),
        ];
        query.extend_from_slice(extra);
        let r = self.authorize(&query, None).await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap()
        );
        let to_login = location(&r);
        assert!(
            to_login.starts_with(&format!("/saml/{}/okta/login?redirect=", self.sso.ns.name)),
            "{to_login}"
        );
        let back = reqwest::Url::parse(&format!("http://x{to_login}"))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "redirect")
            .unwrap()
            .1
            .into_owned();
        let (relay, login_cookie) = self.sso.login(Some(&back)).await;
        let response = self
            .sso
            .response(Some(&relay), "ada@example.com", json!({}));
        let answer = self
            .sso
            .post_acs(
                &[("SAMLResponse", &response), ("RelayState", &relay)],
                Some(&login_cookie),
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.location.as_deref(), Some(back.as_str()));
        let session = format!(
            "{}={}",
            self.sso.cookie_name(),
            answer.cookies[&self.sso.cookie_name()]
        );
        let code = self.code_with_session(&back, &session, redirect_uri).await;
        (code, session)
    }

    /// Follows an authorize URL with a session: the code in the redirect to `redirect_uri`.
    async fn code_with_session(&self, path: &str, session: &str, redirect_uri: &str) -> String {
        let r = self
            .sso
            .http
            .get(format!("{}{path}", self.sso.url))
            .header(COOKIE, session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to_app = reqwest::Url::parse(&location(&r)).unwrap();
        assert!(to_app.as_str().starts_with(redirect_uri), "{to_app}");
        let q: HashMap<String, String> = to_app.query_pairs().into_owned().collect();
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
        assert_eq!(q.get("iss"), Some(&self.issuer()));
        q.get("code")
            .unwrap_or_else(|| panic!("no code: {to_app}"))
            .clone()
    }

    async fn authorize(&self, query: &[(&str, &str)], session: Option<&str>) -> reqwest::Response {
        let mut req = self
            .sso
            .http
            .get(format!("{}/authorize", self.base()))
            .query(query);
        if let Some(s) = session {
            req = req.header(COOKIE, s);
        }
        req.send().await.unwrap()
    }

    /// `POST /token` as `argocd` (HTTP Basic).
    async fn argocd_token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self
            .sso
            .http
            .post(format!("{}/token", self.base()))
            .basic_auth("argocd", Some(&self.argocd_secret))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status(), json_of(r).await)
    }

    /// `POST /token` with `form` and no client authentication header.
    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self
            .sso
            .http
            .post(format!("{}/token", self.base()))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status(), json_of(r).await)
    }

    async fn redeem(&self, code: &str) -> (StatusCode, Value) {
        self.argocd_token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP_CALLBACK),
        ])
        .await
    }

    async fn refresh(&self, token: &str) -> (StatusCode, Value) {
        self.argocd_token(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .await
    }

    async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.sso
            .http
            .get(format!("{}/userinfo", self.base()))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    /// The claims of `token` after checking its signature against the published JWKS with
    /// jsonwebtoken: issuer, audience and expiry included.
    async fn verified(&self, token: &str, audience: &str) -> Value {
        let jwks: jsonwebtoken::jwk::JwkSet = self
            .sso
            .http
            .get(format!("{}/jwks", self.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        let kid = header.kid.clone().expect("a kid");
        let jwk = jwks.find(&kid).expect("the kid is published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[self.issuer()]);
        validation.set_audience(&[audience]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .unwrap_or_else(|e| panic!("{e}: {token}"))
            .claims
    }
}

/// The JSON body of `r` (null when there is none).
async fn json_of(r: reqwest::Response) -> Value {
    serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null)
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn apply_client(sso: &Sso, name: &str, spec: Value) {
    let api: Api<sso_operator::api::OidcClient> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    let object = json!({
        "apiVersion": "sso-operator.dev/v1alpha1", "kind": "OidcClient",
        "metadata": { "name": name }, "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("OidcClient {name}: {e}"));
}

/// The `clientSecret` of the operator's Secret `name`, once written.
async fn client_secret(sso: &Sso, name: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(sso.client.clone(), &sso.ns.name);
    wait_for(Duration::from_secs(40), || {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get_opt(name).await.ok()??;
            let v = s.data?.get("clientSecret")?.0.clone();
            String::from_utf8(v).ok()
        }
    })
    .await
    .unwrap_or_else(|| panic!("Secret {name} never gets a clientSecret"))
}

fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b
}

async fn a_confidential_client_signs_in_through_saml_and_refresh_tokens_rotate(database_url: &str) {
    let bed = Bed::start("oidc-code", database_url).await;
    let http = &bed.sso.http;

    // Discovery and JWKS: public, cached, with ETags.
    let r = http
        .get(format!("{}/.well-known/openid-configuration", bed.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let etag = r.headers()["etag"].clone();
    let discovery: Value = json_of(r).await;
    assert_eq!(discovery["issuer"], bed.issuer());
    assert_eq!(discovery["jwks_uri"], format!("{}/jwks", bed.issuer()));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        discovery["device_authorization_endpoint"],
        format!("{}/device/authorize", bed.issuer())
    );
    let r = http
        .get(format!("{}/.well-known/openid-configuration", bed.base()))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // The code flow, signing in through SAML.
    let (code, _session) = bed.sign_in("argocd", APP_CALLBACK, &[]).await;
    let (status, tokens) = bed.redeem(&code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let id = bed
        .verified(tokens["id_token"].as_str().unwrap(), "argocd")
        .await;
    assert_eq!(
        id["sub"],
        bed.ada.as_str(),
        "sub is the user's ID in this IdentityProvider"
    );
    assert_eq!(id["email"], "ada@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["groups"], json!(["eng"]));
    assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
    let access = tokens["access_token"].as_str().unwrap();
    let info: Value = json_of(bed.userinfo(access).await).await;
    assert_eq!(info["sub"], bed.ada.as_str());
    assert_eq!(info["groups"], json!(["eng"]));
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The code again: refused, and what it issued is revoked.
    let (status, again) = bed.redeem(&code).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        bed.refresh(&first_refresh).await.1["error"],
        "invalid_grant"
    );
    assert_eq!(
        bed.userinfo(access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Refresh tokens rotate; a used one ends the whole family.
    let (code, session) = bed.sign_in("argocd", APP_CALLBACK, &[]).await;
    let (_, tokens) = bed.redeem(&code).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = bed.refresh(&r1).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let r2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    bed.verified(refreshed["id_token"].as_str().unwrap(), "argocd")
        .await;
    assert_eq!(bed.refresh(&r1).await.1["error"], "invalid_grant");
    assert_eq!(
        bed.refresh(&r2).await.1["error"],
        "invalid_grant",
        "the family ended"
    );

    // With a session, a new sign-in needs no SAML round trip; SCIM deactivation ends refresh.
    let r = bed
        .authorize(
            &[
                ("response_type", "code"),
                ("client_id", "argocd"),
                ("redirect_uri", APP_CALLBACK),
                ("scope", "openid offline_access"),
                ("state", "st-1"),
            ],
            Some(&session),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let code = reqwest::Url::parse(&location(&r))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (_, tokens) = bed.redeem(&code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    bed.sso.set_active(&bed.scim_token, &bed.ada, false).await;
    assert_eq!(bed.refresh(&refresh).await.1["error"], "invalid_grant");
    assert_eq!(
        bed.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let metrics = bed.sso.server.metrics().await;
    for line in [
        "sso_operator_server_oidc_token_requests_total{grant=\"authorization_code\",result=\"issued\"}",
        "sso_operator_server_oidc_token_requests_total{grant=\"refresh_token\",result=\"invalid_grant\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    bed.sso
        .assert_log_holds_none_of(&[&bed.argocd_secret, &refresh, &code, access]);
}

support::on_each_database!(a_confidential_client_signs_in_through_saml_and_refresh_tokens_rotate);

#[tokio::test]
async fn bad_clients_redirects_verifiers_and_forged_tokens_are_refused_clearly() {
    let bed = Bed::start("oidc-bad", &support::sqlite_url("oidc-bad")).await;
    let query = |client: &'static str, redirect: &'static str| {
        vec![
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("state", "st-1"),
        ]
    };
    // An unknown client or redirect URI: a page, never a redirect.
    for (client, redirect) in [
        ("argocd", "https://evil.example/cb"),
        ("nobody", APP_CALLBACK),
        ("argocd", "https://app.example.test/oauth2/callback/x"),
    ] {
        let r = bed.authorize(&query(client, redirect), None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{client} {redirect}");
        assert!(r.headers().get(LOCATION).is_none());
    }
    // Errors the client can be told go back to it.
    let mut q = query("argocd", APP_CALLBACK);
    q[0] = ("response_type", "token");
    let r = bed.authorize(&q, None).await;
    assert!(
        location(&r).starts_with(&format!("{APP_CALLBACK}?error=unsupported_response_type")),
        "{}",
        location(&r)
    );
    let r = bed
        .authorize(&query("kubectl", "http://127.0.0.1:38123/"), None)
        .await;
    let loc = location(&r);
    assert!(
        loc.starts_with("http://127.0.0.1:38123/?error=invalid_request"),
        "a public client must use PKCE: {loc}"
    );

    // PKCE: loopback with any port; missing or wrong verifier refused, the right one accepted.
    let (verifier, challenge) = pkce_pair();
    let redirect = "http://127.0.0.1:38123/";
    for sent in [None, Some("x".repeat(43)), Some(verifier.clone())] {
        let (code, _) = bed
            .sign_in(
                "kubectl",
                redirect,
                &[
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", "kubectl"),
        ];
        if let Some(v) = &sent {
            form.push(("code_verifier", v));
        }
        let (status, body) = bed.token(&form).await;
        if sent.as_deref() == Some(verifier.as_str()) {
            assert_eq!(status, StatusCode::OK, "{body}");
            let id = bed
                .verified(body["id_token"].as_str().unwrap(), "kubectl")
                .await;
            assert_eq!(
                id["exp"].as_i64().unwrap() - id["iat"].as_i64().unwrap(),
                300
            );
        } else {
            assert_eq!(body["error"], "invalid_grant", "{sent:?}");
        }
    }

    // Another client's secret or refresh token.
    let (code, _) = bed.sign_in("argocd", APP_CALLBACK, &[]).await;
    let r = bed
        .sso
        .http
        .post(format!("{}/token", bed.base()))
        .basic_auth("kubectl", Some(&bed.argocd_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", APP_CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(r).await["error"], "invalid_client");
    let (_, tokens) = bed.redeem(&code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (_, body) = bed
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "kubectl"),
        ])
        .await;
    assert_eq!(body["error"], "invalid_grant");

    // Malformed, repeated and oversize requests: RFC 6749 JSON, never a 500.
    let token_url = format!("{}/token", bed.base());
    let r = bed
        .sso
        .http
        .post(&token_url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["error"], "invalid_request");
    let (status, body) = bed
        .argocd_token(&[("grant_type", "password"), ("grant_type", "password")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (_, body) = bed.argocd_token(&[("grant_type", "password")]).await;
    assert_eq!(body["error"], "unsupported_grant_type");
    let big = "a".repeat(64 * 1024);
    let r = bed
        .sso
        .http
        .post(&token_url)
        .basic_auth("argocd", Some(&bed.argocd_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", big.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(r).await["error"], "invalid_request");

    // Tokens made with `alg: none` or HS256 keyed with the public JWKS are never accepted.
    let access = tokens["access_token"].as_str().unwrap();
    let claims = access.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let jwks = bed
        .sso
        .http
        .get(format!("{}/jwks", bed.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(access).unwrap().kid.unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(bed.userinfo(access).await.status(), StatusCode::OK);
    for forged in [none, hs256] {
        assert_eq!(
            bed.userinfo(&forged).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // None of it produced a server error.
    let metrics = bed.sso.server.metrics().await;
    assert!(!bed.sso.server.log_text().contains("panicked"), "{metrics}");
}

#[tokio::test]
async fn logout_device_approval_and_disabling_the_identity_provider_end_tokens() {
    let bed = Bed::start("oidc-end", &support::sqlite_url("oidc-end")).await;
    let http = &bed.sso.http;

    // RP-initiated logout returns only to a registered URI and ends the refresh tokens.
    let (code, session) = bed.sign_in("argocd", APP_CALLBACK, &[]).await;
    let (_, tokens) = bed.redeem(&code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let r = http
        .get(format!(
            "{}/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
            bed.base(),
            tokens["id_token"].as_str().unwrap(),
            urlencode(APP_SIGNED_OUT)
        ))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("{APP_SIGNED_OUT}?state=bye"));
    assert_eq!(bed.refresh(refresh).await.1["error"], "invalid_grant");
    let r = http
        .get(format!(
            "{}/logout?client_id=argocd&post_logout_redirect_uri={}",
            bed.base(),
            urlencode("https://evil.example/")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(LOCATION).is_none());

    // The device grant: pending until the user approves on the verification page.
    let r = http
        .post(format!("{}/device/authorize", bed.base()))
        .form(&[
            ("client_id", "kubectl"),
            ("scope", "openid groups offline_access"),
        ])
        .send()
        .await
        .unwrap();
    let device: Value = json_of(r).await;
    let device_code = device["device_code"].as_str().unwrap().to_owned();
    let poll_form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
        ("client_id", "kubectl"),
    ];
    let poll = || bed.token(&poll_form);
    assert_eq!(poll().await.1["error"], "authorization_pending");
    let (_, session) = bed.sign_in("argocd", APP_CALLBACK, &[]).await;
    let page_url = device["verification_uri_complete"]
        .as_str()
        .unwrap()
        .replace(EXTERNAL_URL, &bed.sso.url);
    let page = http
        .get(&page_url)
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(device["user_code"].as_str().unwrap()),
        "{page}"
    );
    let form_token = page
        .split("name=\"form\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    // Without the form's token (another site posting), nothing is approved.
    let r = http
        .post(&page_url)
        .header(COOKIE, &session)
        .form(&[
            ("user_code", device["user_code"].as_str().unwrap()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = http
        .post(&page_url)
        .header(COOKIE, &session)
        .form(&[
            ("user_code", device["user_code"].as_str().unwrap()),
            ("form", &form_token),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let tokens = wait_for(Duration::from_secs(30), || async {
        let (status, body) = poll().await;
        match body["error"].as_str() {
            Some("slow_down" | "authorization_pending") => None,
            _ => Some((status, body)),
        }
    })
    .await
    .expect("the device gets its tokens");
    assert_eq!(tokens.0, StatusCode::OK, "{}", tokens.1);
    let id = bed
        .verified(tokens.1["id_token"].as_str().unwrap(), "kubectl")
        .await;
    assert_eq!(id["groups"], json!(["eng"]));
    assert_eq!(
        poll().await.1["error"],
        "invalid_grant",
        "a device code is used once"
    );

    // A disabled IdentityProvider answers nothing: refresh tokens stop at once.
    let refresh = tokens.1["refresh_token"].as_str().unwrap().to_owned();
    let api: Api<sso_operator::api::IdentityProvider> =
        Api::namespaced(bed.sso.client.clone(), &bed.sso.ns.name);
    api.patch(
        "okta",
        &PatchParams::apply(TEST_MANAGER),
        &Patch::Merge(json!({ "spec": { "disabled": true } })),
    )
    .await
    .unwrap();
    let ended = wait_for(Duration::from_secs(30), || async {
        let (status, _) = bed
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "kubectl"),
            ])
            .await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(ended.is_some(), "refresh still works after disabling");
    let r = http
        .get(format!("{}/.well-known/openid-configuration", bed.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sso_operator_kubeconfig_prints_the_user_and_the_api_server_configuration_from_status() {
    let bed = Bed::start("oidc-kubeconfig", &support::sqlite_url("oidc-kubeconfig")).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sso-operator"))
            .arg("kubeconfig")
            .args(args)
            .args(["-n", &bed.sso.ns.name])
            .env("KUBECONFIG", support::admin_kubeconfig())
            .output()
            .unwrap()
    };
    // kubectl's OidcClient: the user runs the oidc-login plugin with the issuer and client.
    let out = run(&["kubectl", "--device-code"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: Value = serde_saphyr::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let args = user["users"][0]["user"]["exec"]["args"].to_string();
    assert!(
        args.contains(&format!("--oidc-issuer-url={}", bed.issuer())),
        "{args}"
    );
    assert!(args.contains("--oidc-client-id=kubectl") && args.contains("--grant-type=device-code"));
    // The API server's configuration, with the CA given.
    let ca = std::env::temp_dir().join(format!("oidc-kubeconfig-ca-{}.pem", std::process::id()));
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = run(&[
        "kubectl",
        "--api-server",
        "--certificate-authority",
        ca.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_saphyr::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(config["jwt"][0]["issuer"]["url"], bed.issuer());
    assert_eq!(config["jwt"][0]["issuer"]["audiences"], json!(["kubectl"]));
    assert!(
        config["jwt"][0]["issuer"]["certificateAuthority"]
            .as_str()
            .unwrap()
            .contains("MIIB")
    );
    let _ = std::fs::remove_file(&ca);
    // A confidential client is refused for kubectl, and an unknown one named.
    let out = run(&["argocd"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.public: true"));
    let out = run(&["nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
}
