//! SAML Single Logout through the real HTTP server: the real controller and `sso-operator
//! server` on the local control plane, LogoutRequests and LogoutResponses built and signed at
//! test time by an independent implementation (tests/idp/sign_response.py: signxml for the
//! HTTP-POST binding, the `cryptography` package for HTTP-Redirect query signing), and our
//! own messages checked by it. IdP-initiated logout ends every session of a NameID (or of one
//! SessionIndex) for all replicas; SP-initiated logout sends a signed LogoutRequest and
//! accepts only the signed LogoutResponse that answers it in the same browser; bad messages get
//! a 4xx and end nothing.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use openssl::pkey::{PKey, Private};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::{Value, json};
use sso_operator::api::IdentityProvider;
use support::operator::Stack;
use support::operator::{EXTERNAL_URL, Operator};
use support::{TestNamespace, random_id, rfc3339, set_cookies, wait_for};

const IDP_ENTITY: &str = "http://www.okta.com/exk1";
const IDP_SLO: &str = "https://idp.example.test/slo";

struct Slo {
    _controller: Operator,
    server: Operator,
    client: Client,
    ns: TestNamespace,
    url: String,
    http: reqwest::Client,
    idp_key: PKey<Private>,
    idp_cert: String,
    _metadata_server: Option<support::HttpsServer>,
}

/// An HTTP answer, read whole.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    cookies: HashMap<String, String>,
    body: String,
}

impl Answer {
    async fn of(r: reqwest::Response) -> Self {
        let cookies = set_cookies(&r);
        Self {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            cookies,
            body: r.text().await.unwrap_or_default(),
        }
    }
}

fn pem(key: &PKey<Private>) -> String {
    String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap()
}

/// The value of query parameter `name` of `url`.
fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Slo {
    /// The IdentityProvider "okta" with `spec` merged into an explicit IdP side that has a
    /// Single Logout URL; users are created at sign-in.
    async fn start(prefix: &str, database_url: &str, spec: Value) -> Self {
        Self::start_with(prefix, database_url, spec, &[], None).await
    }

    async fn start_with(
        prefix: &str,
        database_url: &str,
        spec: Value,
        controller_args: &[&str],
        metadata_server: Option<support::HttpsServer>,
    ) -> Self {
        let Stack {
            controller,
            server,
            url,
            client,
            ns,
        } = Stack::start(
            prefix,
            database_url,
            controller_args,
            &["--allowed-redirect=https://app.example.test/"],
        )
        .await;
        let (idp_key, idp_cert) = support::self_signed("idp", -3600, 365 * 86_400);
        let me = Self {
            _controller: controller,
            server,
            client,
            ns,
            url,
            http: support::http_without_redirects(),
            idp_key,
            idp_cert,
            _metadata_server: metadata_server,
        };
        let mut full = json!({ "provider": "okta",
            "idp": { "ssoUrl": "https://idp.example.test/sso", "entityId": IDP_ENTITY, "certificates": [{ "pem": me.idp_cert }], "singleLogoutUrl": IDP_SLO },
            "allowedRedirects": ["https://app.example.test/"],
            "users": { "provisioning": "justInTime" } });
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        me.apply(full).await;
        me
    }

    async fn apply(&self, spec: Value) {
        support::apply_identity_provider(&self.client, &self.ns.name, "okta", &spec).await;
    }

    /// Waits until the served SP metadata satisfies `check` and the session keys exist.
    async fn wait_metadata(&self, check: impl Fn(&str) -> bool) -> String {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns.name);
        let url = format!("{}/saml/{}/okta/metadata", self.url, self.ns.name);
        let found = wait_for(Duration::from_secs(45), || {
            let (http, url, secrets) = (self.http.clone(), url.clone(), secrets.clone());
            let check = &check;
            async move {
                secrets.get_opt("sso-operator-session-keys").await.ok()??;
                let r = http.get(&url).send().await.ok()?;
                let text = r.text().await.ok()?;
                check(&text).then_some(text)
            }
        })
        .await;
        found.unwrap_or_else(|| panic!("never served\nserver log:\n{}", self.server.log_text()))
    }

    /// The SP signing certificate (PEM) from the served metadata.
    async fn sp_certificate(&self) -> String {
        let xml = self.wait_metadata(|x| x.contains("SPSSODescriptor")).await;
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let body = doc
            .descendants()
            .find(|n| n.tag_name().name() == "X509Certificate")
            .and_then(|n| n.text())
            .unwrap()
            .to_owned();
        let lines: Vec<String> = body
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    fn tenant(&self) -> String {
        format!("{}/okta", self.ns.name)
    }

    fn cookie_name(&self) -> String {
        sso_operator::session::cookie_name(&self.tenant(), true)
    }

    fn acs(&self) -> String {
        format!("{EXTERNAL_URL}/saml/{}/okta/acs", self.ns.name)
    }

    fn slo(&self) -> String {
        format!("{EXTERNAL_URL}/saml/{}/okta/slo", self.ns.name)
    }

    /// A full SP-initiated sign-in of `name_id` whose AuthnStatement has `session_index`;
    /// returns the session cookie's value.
    async fn sign_in(&self, name_id: &str, session_index: &str) -> String {
        let r = self
            .http
            .get(format!("{}/saml/{}/okta/login", self.url, self.ns.name))
            .send()
            .await
            .unwrap();
        let login = Answer::of(r).await;
        assert_eq!(login.status, StatusCode::FOUND, "{}", login.body);
        let relay = query_param(login.location.as_deref().unwrap(), "RelayState").unwrap();
        let (cookie_name, cookie) = login.cookies.into_iter().next().unwrap();
        let now = Timestamp::now();
        let entity = format!("{EXTERNAL_URL}/saml/{}/okta/metadata", self.ns.name);
        let response = support::signed_response(&json!({
            "keyPem": pem(&self.idp_key), "certPem": self.idp_cert,
            "issuer": IDP_ENTITY, "destination": self.acs(), "audience": entity, "recipient": self.acs(),
            "inResponseTo": relay,
            "nameId": name_id, "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            "attributes": { "firstName": ["Ada"] },
            "sign": "assertion",
            "notBefore": rfc3339(now - SignedDuration::from_secs(30)),
            "notOnOrAfter": rfc3339(now + SignedDuration::from_mins(5)),
            // The test IdP uses the assertion ID as the SessionIndex.
            "assertionId": session_index, "responseId": random_id("_r"),
        }));
        let r = self
            .http
            .post(format!("{}/saml/{}/okta/acs", self.url, self.ns.name))
            .header(COOKIE, format!("{cookie_name}={cookie}"))
            .form(&[("SAMLResponse", response.as_str()), ("RelayState", &relay)])
            .send()
            .await
            .unwrap();
        let answer = Answer::of(r).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}\nserver log:\n{}",
            answer.body,
            self.server.log_text()
        );
        answer.cookies[&self.cookie_name()].clone()
    }

    async fn verify(&self, session: &str) -> StatusCode {
        self.http
            .get(format!("{}/auth/verify", self.url))
            .header(COOKIE, format!("{}={session}", self.cookie_name()))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A Single Logout message from the test IdP: `kind` with `overrides` on a valid spec.
    fn idp_message(&self, kind: &str, binding: &str, overrides: Value) -> String {
        let mut spec = json!({
            "kind": kind, "binding": binding,
            "keyPem": pem(&self.idp_key), "certPem": self.idp_cert,
            "issuer": IDP_ENTITY, "destination": self.slo(),
            "nameId": "ada@example.com", "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        });
        for (k, v) in overrides.as_object().unwrap() {
            spec[k] = v.clone();
        }
        support::signed_response(&spec)
    }

    async fn slo_get(&self, query: &str, cookies: &[(String, String)]) -> Answer {
        let mut req = self.http.get(format!(
            "{}/saml/{}/okta/slo?{query}",
            self.url, self.ns.name
        ));
        if !cookies.is_empty() {
            let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(COOKIE, header.join("; "));
        }
        Answer::of(req.send().await.unwrap()).await
    }

    async fn slo_post(&self, form: &[(&str, &str)], cookies: &[(String, String)]) -> Answer {
        let mut req = self
            .http
            .post(format!("{}/saml/{}/okta/slo", self.url, self.ns.name))
            .form(form);
        if !cookies.is_empty() {
            let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(COOKIE, header.join("; "));
        }
        Answer::of(req.send().await.unwrap()).await
    }
}

/// Checks with the test IdP (independent code) that `query` is a validly signed HTTP-Redirect
/// message from the SP and returns its XML.
fn idp_reads_redirect(query: &str, sp_certificate: &str) -> String {
    support::signed_response(
        &json!({ "kind": "verifyRedirect", "query": query, "certPem": sp_certificate }),
    )
}

/// As [`idp_reads_redirect`] for a base64 HTTP-POST message (signxml verifies it).
fn idp_reads_post(message: &str, sp_certificate: &str) -> String {
    support::signed_response(
        &json!({ "kind": "verifyPost", "message": message, "certPem": sp_certificate }),
    )
}

fn element_text(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .find(|n| n.tag_name().name() == name)
        .and_then(|n| n.text())
        .map(str::to_owned)
}

fn root_attribute(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.root_element().attribute(name).map(str::to_owned)
}

async fn idp_initiated_logout_ends_the_sessions_of_that_name_id(database_url: &str) {
    let slo = Slo::start("slo-idp", database_url, json!({})).await;
    let xml = slo
        .wait_metadata(|x| x.contains("SingleLogoutService"))
        .await;
    assert!(xml.contains(&slo.slo()), "{xml}");
    let sp_cert = slo.sp_certificate().await;
    let ada_one = slo.sign_in("ada@example.com", "_s1").await;
    let ada_two = slo.sign_in("ada@example.com", "_s2").await;
    let ada_three = slo.sign_in("ada@example.com", "_s3").await;
    let bob = slo.sign_in("bob@example.com", "_s4").await;
    for s in [&ada_one, &ada_two, &ada_three, &bob] {
        assert_eq!(slo.verify(s).await, StatusCode::OK);
    }

    // HTTP-POST, one SessionIndex: only that session ends; the answer is a signed
    // LogoutResponse posted back to the IdP's Single Logout URL.
    let request_id = random_id("_lr");
    let message = slo.idp_message(
        "logoutRequest",
        "post",
        json!({ "id": request_id, "sessionIndexes": ["_s1"] }),
    );
    let answer = slo
        .slo_post(
            &[("SAMLRequest", &message), ("RelayState", "idp-state")],
            &[(slo.cookie_name(), ada_one.clone())],
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::FOUND,
        "{}\n{}",
        answer.body,
        slo.server.log_text()
    );
    assert_eq!(slo.verify(&ada_one).await, StatusCode::UNAUTHORIZED);
    assert_eq!(slo.verify(&ada_two).await, StatusCode::OK);
    assert_eq!(
        answer.cookies.get(&slo.cookie_name()).map(String::as_str),
        Some(""),
        "the browser's own cookie is cleared"
    );
    // idp.singleLogoutUrl is an HTTP-Redirect endpoint: the answer follows the IdP's endpoint,
    // whatever binding the request came by.
    let location = answer.location.expect("a redirect to the IdP");
    assert!(
        location.starts_with(&format!("{IDP_SLO}?SAMLResponse=")),
        "{location}"
    );
    let query = location.split_once('?').unwrap().1;
    assert_eq!(
        query_param(&location, "RelayState").as_deref(),
        Some("idp-state")
    );
    let response = idp_reads_redirect(query, &sp_cert);
    assert_eq!(root_attribute(&response, "InResponseTo"), Some(request_id));
    assert_eq!(
        root_attribute(&response, "Destination").as_deref(),
        Some(IDP_SLO)
    );
    assert!(
        response.contains("urn:oasis:names:tc:SAML:2.0:status:Success"),
        "{response}"
    );
    assert_eq!(
        element_text(&response, "Issuer"),
        Some(format!("{EXTERNAL_URL}/saml/{}/okta/metadata", slo.ns.name))
    );

    // HTTP-Redirect, no SessionIndex: every remaining session of Ada ends, Bob's stays.
    let query = slo.idp_message("logoutRequest", "redirect", json!({}));
    let answer = slo.slo_get(&query, &[]).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert_eq!(slo.verify(&ada_two).await, StatusCode::UNAUTHORIZED);
    assert_eq!(slo.verify(&ada_three).await, StatusCode::UNAUTHORIZED);
    assert_eq!(slo.verify(&bob).await, StatusCode::OK);
    // Nothing of the messages reaches the log.
    let log = slo.server.log_text();
    assert!(
        !log.contains("ada@example.com") && !log.contains("SAMLRequest="),
        "{log}"
    );
}

support::on_each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    idp_initiated_logout_ends_the_sessions_of_that_name_id
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_initiated_logout_sends_a_signed_request_and_accepts_only_its_signed_answer() {
    let slo = Slo::start("slo-sp", &support::sqlite_url("slo-sp"), json!({})).await;
    slo.wait_metadata(|x| x.contains("SingleLogoutService"))
        .await;
    let sp_cert = slo.sp_certificate().await;
    let session = slo.sign_in("ada@example.com", "_idx1").await;

    // Signing out ends the session here and sends the browser to the IdP with a signed
    // LogoutRequest naming the NameID (as asserted) and the SessionIndex.
    let r = slo
        .http
        .get(format!(
            "{}/auth/logout?redirect={}",
            slo.url, "https%3A%2F%2Fapp.example.test%2Fbye"
        ))
        .header(COOKIE, format!("{}={session}", slo.cookie_name()))
        .send()
        .await
        .unwrap();
    let answer = Answer::of(r).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert_eq!(slo.verify(&session).await, StatusCode::UNAUTHORIZED);
    let location = answer.location.clone().unwrap();
    assert!(
        location.starts_with(&format!("{IDP_SLO}?SAMLRequest=")),
        "{location}"
    );
    let request = idp_reads_redirect(location.split_once('?').unwrap().1, &sp_cert);
    assert_eq!(
        element_text(&request, "NameID").as_deref(),
        Some("ada@example.com")
    );
    assert!(request.contains(r#"Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress""#));
    assert_eq!(
        element_text(&request, "SessionIndex").as_deref(),
        Some("_idx1")
    );
    assert_eq!(
        root_attribute(&request, "Destination").as_deref(),
        Some(IDP_SLO)
    );
    let request_id = root_attribute(&request, "ID").unwrap();
    let relay = query_param(&location, "RelayState").unwrap();
    assert_eq!(
        relay, request_id,
        "the RelayState is an opaque key, not the URL"
    );
    let logout_cookie: Vec<(String, String)> = answer
        .cookies
        .iter()
        .filter(|(k, v)| k.starts_with("__Host-sso_logout_") && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(logout_cookie.len(), 1, "{:?}", answer.cookies);

    let respond = |overrides: Value| {
        let mut spec = json!({ "inResponseTo": request_id, "relayState": relay });
        for (k, v) in overrides.as_object().unwrap() {
            spec[k] = v.clone();
        }
        slo.idp_message("logoutResponse", "redirect", spec)
    };
    // Refused: from another browser, answering another request, wrong issuer, unsigned.
    for (query, cookies, why) in [
        (respond(json!({})), vec![], "no logout cookie"),
        (
            respond(json!({ "inResponseTo": "_someone_else" })),
            logout_cookie.clone(),
            "another request",
        ),
        (
            respond(json!({ "issuer": "http://evil.example.com" })),
            logout_cookie.clone(),
            "wrong issuer",
        ),
        (
            respond(json!({ "sign": false })),
            logout_cookie.clone(),
            "unsigned",
        ),
    ] {
        let a = slo.slo_get(&query, &cookies).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{why}: {}", a.body);
        assert!(a.body.contains("Sign-Out Failed"), "{why}: {}", a.body);
    }
    // The matching, signed answer lands on the return URL; only once.
    let good = respond(json!({}));
    let a = slo.slo_get(&good, &logout_cookie).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("https://app.example.test/bye"));
    assert_eq!(
        a.cookies.get(&logout_cookie[0].0).map(String::as_str),
        Some("")
    );
    let again = slo.slo_get(&good, &logout_cookie).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);

    // A return URL outside the allow-list is never used: signed out, and the IdP's answer
    // lands on the signed-out page.
    let session = slo.sign_in("ada@example.com", "_idx2").await;
    let r = slo
        .http
        .get(format!(
            "{}/auth/logout?redirect={}",
            slo.url, "https%3A%2F%2Fevil.example.com%2F"
        ))
        .header(COOKIE, format!("{}={session}", slo.cookie_name()))
        .send()
        .await
        .unwrap();
    let answer = Answer::of(r).await;
    let location = answer.location.unwrap();
    let request = idp_reads_redirect(location.split_once('?').unwrap().1, &sp_cert);
    let id = root_attribute(&request, "ID").unwrap();
    let cookies: Vec<(String, String)> = answer
        .cookies
        .into_iter()
        .filter(|(k, v)| k.starts_with("__Host-sso_logout_") && !v.is_empty())
        .collect();
    let a = slo
        .slo_get(
            &slo.idp_message(
                "logoutResponse",
                "redirect",
                json!({ "inResponseTo": id, "relayState": id }),
            ),
            &cookies,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("You are signed out."), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_publishing_an_http_post_logout_service_gets_posted_signed_messages() {
    // IdP metadata served over HTTPS with only an HTTP-POST SingleLogoutService.
    let server = support::HttpsServer::start("slo-post");
    let (idp_key, idp_cert) = support::self_signed("idp", -3600, 365 * 86_400);
    let metadata = support::idp_metadata(IDP_ENTITY, "https://idp.example.test/sso", &[&idp_cert])
        .replace(
            "<md:NameIDFormat>",
            r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.test/slo/post"/><md:NameIDFormat>"#,
        );
    std::fs::write(server.dir.join("metadata.xml"), metadata).unwrap();
    let metadata_url = server.url("metadata.xml");
    let ca = server.ca_file.display().to_string();
    let mut slo = Slo::start_with(
        "slo-post",
        &support::sqlite_url("slo-post"),
        json!({ "idp": { "metadataUrl": metadata_url } }),
        &[
            "--allow-private-metadata-addresses",
            "--metadata-ca-file",
            &ca,
        ],
        Some(server),
    )
    .await;
    slo.idp_key = idp_key;
    slo.idp_cert = idp_cert;
    slo.wait_metadata(|x| x.contains("SingleLogoutService"))
        .await;
    let sp_cert = slo.sp_certificate().await;
    // Served only once compiled from the fetched metadata (with its certificate and endpoint).
    let session = slo.sign_in("ada@example.com", "_p1").await;

    let r = slo
        .http
        .post(format!("{}/auth/logout", slo.url))
        .header(COOKIE, format!("{}={session}", slo.cookie_name()))
        .send()
        .await
        .unwrap();
    let answer = Answer::of(r).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer
            .body
            .contains(r#"action="https://idp.example.test/slo/post""#),
        "{}",
        answer.body
    );
    let field = |name: &str| {
        let marker = format!(r#"name="{name}" value=""#);
        let start = answer.body.find(&marker)? + marker.len();
        Some(answer.body[start..].split('"').next()?.to_owned())
    };
    let message = field("SAMLRequest").expect("a posted LogoutRequest");
    let relay = field("RelayState").expect("a RelayState");
    let request = idp_reads_post(&message, &sp_cert);
    assert_eq!(
        element_text(&request, "NameID").as_deref(),
        Some("ada@example.com")
    );
    assert_eq!(
        element_text(&request, "SessionIndex").as_deref(),
        Some("_p1")
    );
    let id = root_attribute(&request, "ID").unwrap();
    assert_eq!(relay, id);
    let cookies: Vec<(String, String)> = answer
        .cookies
        .into_iter()
        .filter(|(k, v)| k.starts_with("__Host-sso_logout_") && !v.is_empty())
        .collect();
    // The IdP answers by POST too.
    let response = slo.idp_message("logoutResponse", "post", json!({ "inResponseTo": id }));
    let a = slo
        .slo_post(
            &[("SAMLResponse", &response), ("RelayState", &relay)],
            &cookies,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("You are signed out."), "{}", a.body);
}

impl Slo {
    /// IdentityProvider `okta` with Single Logout on SQLite, its metadata served, and Ada
    /// signed in; returns her session.
    async fn with_ada_signed_in(prefix: &str) -> (Self, String) {
        let slo = Slo::start(prefix, &support::sqlite_url(prefix), json!({})).await;
        slo.wait_metadata(|x| x.contains("SingleLogoutService"))
            .await;
        let session = slo.sign_in("ada@example.com", "_b1").await;
        (slo, session)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_redirect_logout_messages_get_a_clear_4xx_and_end_nothing() {
    let (slo, session) = Slo::with_ada_signed_in("slo-bad").await;
    let (other_key, other_cert) = support::self_signed("evil", -3600, 86_400);
    let foreign = support::signed_response(&json!({
        "kind": "logoutRequest", "binding": "redirect", "keyPem": pem(&other_key), "certPem": other_cert,
        "issuer": IDP_ENTITY, "destination": slo.slo(), "nameId": "ada@example.com" }));
    let old = rfc3339(Timestamp::now() - SignedDuration::from_hours(2));
    let redirect_cases = [
        (
            slo.idp_message("logoutRequest", "redirect", json!({ "sign": false })),
            StatusCode::FORBIDDEN,
            "unsigned",
        ),
        (foreign, StatusCode::FORBIDDEN, "signed by another key"),
        (
            slo.idp_message(
                "logoutRequest",
                "redirect",
                json!({ "issuer": "http://evil.example.com" }),
            ),
            StatusCode::FORBIDDEN,
            "wrong issuer",
        ),
        (
            slo.idp_message(
                "logoutRequest",
                "redirect",
                json!({ "destination": "https://other-sp.example.com/slo" }),
            ),
            StatusCode::FORBIDDEN,
            "addressed to another SP",
        ),
        (
            slo.idp_message("logoutRequest", "redirect", json!({ "issueInstant": old })),
            StatusCode::FORBIDDEN,
            "too old",
        ),
        (
            slo.idp_message(
                "logoutRequest",
                "redirect",
                json!({ "signatureAlgorithm": "rsa-sha1" }),
            ),
            StatusCode::FORBIDDEN,
            "SHA-1",
        ),
        (
            "SAMLRequest=%%%".to_owned(),
            StatusCode::FORBIDDEN,
            "bad encoding, unsigned",
        ),
        (String::new(), StatusCode::BAD_REQUEST, "no message"),
        (
            "SAMLRequest=a&SAMLRequest=b".to_owned(),
            StatusCode::BAD_REQUEST,
            "twice",
        ),
        (
            format!("SAMLRequest={}", "A".repeat(40_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "huge query",
        ),
    ];
    for (query, status, why) in redirect_cases {
        let a = slo.slo_get(&query, &[]).await;
        assert_eq!(a.status, status, "{why}: {}", a.body);
        assert!(a.body.contains("Sign-Out Failed"), "{why}: {}", a.body);
    }
    // A validly signed query whose message is not deflated XML.
    let valid = slo.idp_message("logoutRequest", "redirect", json!({}));
    let garbage =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"not deflate");
    let tampered = valid.replacen(
        &valid[..valid.find('&').unwrap()],
        &format!("SAMLRequest={garbage}"),
        1,
    );
    let a = slo.slo_get(&tampered, &[]).await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "a changed message breaks the signature"
    );

    // Nothing ended, and the server says why without the messages.
    assert_eq!(slo.verify(&session).await, StatusCode::OK);
    let log = slo.server.log_text();
    assert!(
        log.contains("VerificationFailed") && log.contains("Unsigned"),
        "{log}"
    );
    assert!(
        !log.contains("ada@example.com") && !log.contains("LogoutRequest xmlns"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_post_logout_messages_get_a_clear_4xx_and_end_nothing() {
    let (slo, session) = Slo::with_ada_signed_in("slo-bad").await;
    let post_cases = [
        (
            slo.idp_message("logoutRequest", "post", json!({ "sign": false })),
            StatusCode::FORBIDDEN,
            "unsigned",
        ),
        (
            slo.idp_message(
                "logoutRequest",
                "post",
                json!({ "issuer": "http://evil.example.com" }),
            ),
            StatusCode::FORBIDDEN,
            "wrong issuer",
        ),
        (
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                r#"<!DOCTYPE x [<!ENTITY a "b">]><samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&a;</samlp:LogoutRequest>"#,
            ),
            StatusCode::BAD_REQUEST,
            "a DTD",
        ),
        ("!!!".to_owned(), StatusCode::BAD_REQUEST, "not base64"),
    ];
    for (message, status, why) in post_cases {
        let a = slo.slo_post(&[("SAMLRequest", &message)], &[]).await;
        assert_eq!(a.status, status, "{why}: {}", a.body);
    }
    let a = slo.slo_post(&[("RelayState", "x")], &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Nothing ended, and the server says why without the messages (a bad signature,
    // VerificationFailed, is among the redirect cases).
    assert_eq!(slo.verify(&session).await, StatusCode::OK);
    let log = slo.server.log_text();
    assert!(log.contains("Unsigned"), "{log}");
    assert!(
        !log.contains("ada@example.com") && !log.contains("LogoutRequest xmlns"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_single_logout_off_the_url_is_not_served_and_sign_out_ends_only_the_session_here() {
    let (slo, session) = Slo::with_ada_signed_in("slo-bad").await;
    // Switched off: no Single Logout service in the metadata, the URL is not served, and
    // signing out ends only the session here.
    let api: Api<IdentityProvider> = Api::namespaced(slo.client.clone(), &slo.ns.name);
    let mut spec = serde_json::to_value(api.get("okta").await.unwrap().spec).unwrap();
    spec["session"]["singleLogout"] = json!(false);
    slo.apply(spec).await;
    slo.wait_metadata(|x| x.contains("SPSSODescriptor") && !x.contains("SingleLogoutService"))
        .await;
    let a = slo
        .slo_get(
            &slo.idp_message("logoutRequest", "redirect", json!({})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(slo.verify(&session).await, StatusCode::OK);
    let r = slo
        .http
        .get(format!("{}/auth/logout", slo.url))
        .header(COOKIE, format!("{}={session}", slo.cookie_name()))
        .send()
        .await
        .unwrap();
    let a = Answer::of(r).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("You are signed out."));
    assert_eq!(slo.verify(&session).await, StatusCode::UNAUTHORIZED);
}
