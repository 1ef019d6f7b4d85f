//! The SAML sign-in harness: a controller and a server on a private namespace with
//! IdentityProvider `okta`, a test IdP whose responses signxml signs, SCIM helpers and
//! assertions on metrics and logs.

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

use super::operator::{EXTERNAL_URL, Operator, Stack};
use super::{
    TestNamespace, random_id, rfc3339, set_cookie_headers, set_cookies, urlencode, wait_for,
};

/// The installation's redirect allow-list of these tests' servers.
pub const INSTALLATION_REDIRECTS: &str = "--allowed-redirect=https://app.example.test/";

pub struct Sso {
    pub _controller: Operator,
    pub server: Operator,
    pub client: Client,
    pub ns: TestNamespace,
    pub url: String,
    pub http: reqwest::Client,
    pub idp_key: PKey<Private>,
    pub idp_cert: String,
}

/// What the ACS answered.
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub cookies: HashMap<String, String>,
    /// The `Set-Cookie` headers as sent, attributes included.
    pub set_cookie_headers: Vec<String>,
    pub body: String,
}

impl Sso {
    pub async fn start(prefix: &str, database_url: &str, spec: Value) -> Self {
        Self::start_with(prefix, database_url, spec, &[]).await
    }

    pub async fn start_with(
        prefix: &str,
        database_url: &str,
        spec: Value,
        controller_args: &[&str],
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
            &[INSTALLATION_REDIRECTS],
        )
        .await;
        let (idp_key, idp_cert) = super::self_signed("idp", -3600, 365 * 86_400);
        let me = Self {
            _controller: controller,
            server,
            client,
            ns,
            url,
            http: super::http_without_redirects(),
            idp_key,
            idp_cert,
        };
        me.create_idp(&spec).await;
        me.wait_served().await;
        me
    }

    /// Creates (or changes) IdentityProvider `okta` with the test IdP's settings and `spec`.
    pub async fn create_idp(&self, spec: &Value) {
        let mut full = json!({ "provider": "okta", "idp": { "ssoUrl": "https://idp.example.test/sso", "entityId": "http://www.okta.com/exk1", "certificates": [{ "pem": self.idp_cert }] } });
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        super::apply_identity_provider(&self.client, &self.ns.name, "okta", &full).await;
    }

    /// Waits until the server serves IdentityProvider `okta`: its metadata answers and the
    /// session keys exist.
    pub async fn wait_served(&self) {
        let (http, metadata) = (
            self.http.clone(),
            format!("{}/saml/{}/okta/metadata", self.url, self.ns.name),
        );
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns.name);
        let ready = wait_for(Duration::from_secs(40), || {
            let (http, metadata, secrets) = (http.clone(), metadata.clone(), secrets.clone());
            async move {
                secrets.get_opt("sso-operator-session-keys").await.ok()??;
                let r = http.get(&metadata).send().await.ok()?;
                (r.status() == StatusCode::OK).then_some(())
            }
        })
        .await;
        assert!(
            ready.is_some(),
            "never served\nserver log:\n{}",
            self.server.log_text()
        );
    }

    /// The session cookie's name for this IdentityProvider.
    pub fn cookie_name(&self) -> String {
        sso_operator::session::cookie_name(&format!("{}/okta", self.ns.name), true)
    }

    pub fn acs_url(&self) -> String {
        format!("{EXTERNAL_URL}/saml/{}/okta/acs", self.ns.name)
    }

    /// A response signed by the test IdP (Okta shape: assertion signed) for `name_id`.
    pub fn response(
        &self,
        in_response_to: Option<&str>,
        name_id: &str,
        overrides: Value,
    ) -> String {
        let now = Timestamp::now();
        let entity = format!("{EXTERNAL_URL}/saml/{}/okta/metadata", self.ns.name);
        let mut spec = json!({
            "keyPem": String::from_utf8(self.idp_key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
            "certPem": self.idp_cert,
            "issuer": "http://www.okta.com/exk1", "destination": self.acs_url(), "audience": entity, "recipient": self.acs_url(),
            "inResponseTo": in_response_to,
            "nameId": name_id, "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            "attributes": { "firstName": ["Ada"], "lastName": ["Lovelace"], "groups": ["saml-eng"] },
            "sign": "assertion",
            "notBefore": rfc3339(now - SignedDuration::from_secs(30)),
            "notOnOrAfter": rfc3339(now + SignedDuration::from_mins(5)),
            "assertionId": random_id("_a"), "responseId": random_id("_r"),
        });
        for (k, v) in overrides.as_object().unwrap() {
            spec[k] = v.clone();
        }
        super::signed_response(&spec)
    }

    /// Starts SP-initiated sign-in; returns the request ID and the login cookie.
    pub async fn login(&self, redirect: Option<&str>) -> (String, (String, String)) {
        let mut url = format!("{}/saml/{}/okta/login", self.url, self.ns.name);
        if let Some(r) = redirect {
            url = format!("{url}?redirect={}", urlencode(r));
        }
        let r = self.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let location = reqwest::Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert_eq!(location.host_str(), Some("idp.example.test"));
        let relay = location
            .query_pairs()
            .find(|(k, _)| k == "RelayState")
            .unwrap()
            .1
            .into_owned();
        let cookie = set_cookies(&r).into_iter().next().expect("a login cookie");
        (relay, cookie)
    }

    pub async fn post_acs(
        &self,
        form: &[(&str, &str)],
        cookie: Option<&(String, String)>,
    ) -> Answer {
        let mut req = self
            .http
            .post(format!("{}/saml/{}/okta/acs", self.url, self.ns.name))
            .form(form);
        if let Some((k, v)) = cookie {
            req = req.header(COOKIE, format!("{k}={v}"));
        }
        let r = req.send().await.unwrap();
        Answer {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            cookies: set_cookies(&r),
            set_cookie_headers: set_cookie_headers(&r),
            body: r.text().await.unwrap(),
        }
    }

    /// A full SP-initiated sign-in of `name_id`; returns the ACS answer.
    pub async fn sign_in(&self, name_id: &str, redirect: Option<&str>) -> Answer {
        let (relay, cookie) = self.login(redirect).await;
        let response = self.response(Some(&relay), name_id, json!({}));
        self.post_acs(
            &[("SAMLResponse", &response), ("RelayState", &relay)],
            Some(&cookie),
        )
        .await
    }

    pub async fn verify(&self, session: &str, query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/auth/verify{query}", self.url))
            .header(COOKIE, format!("{}={session}", self.cookie_name()))
            .send()
            .await
            .unwrap()
    }

    /// Creates IdentityProvider `name` in this namespace (issuer `entity_id`, the same test
    /// IdP key, `spec` merged in) and waits until the server serves it.
    pub async fn add_identity_provider(&self, name: &str, entity_id: &str, spec: Value) {
        let mut full = json!({ "idp": { "ssoUrl": format!("{entity_id}/sso"), "entityId": entity_id, "certificates": [{ "pem": self.idp_cert }] } });
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        super::apply_identity_provider(&self.client, &self.ns.name, name, &full).await;
        let metadata = format!("{}/saml/{}/{name}/metadata", self.url, self.ns.name);
        wait_for(Duration::from_secs(40), || async {
            (self.http.get(&metadata).send().await.ok()?.status() == StatusCode::OK).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{name} is never served\n{}", self.server.log_text()));
    }

    /// An IdP-initiated sign-in (a tile click) of `name_id` with SAML `groups` at
    /// IdentityProvider `idp` of this namespace, whose IdP is `issuer`; returns the
    /// `Cookie` header of the session.
    pub async fn tile_sign_in(
        &self,
        idp: &str,
        issuer: &str,
        name_id: &str,
        groups: &[&str],
    ) -> String {
        let acs = format!("{EXTERNAL_URL}/saml/{}/{idp}/acs", self.ns.name);
        let entity = format!("{EXTERNAL_URL}/saml/{}/{idp}/metadata", self.ns.name);
        let response = self.response(
            None,
            name_id,
            json!({ "issuer": issuer, "destination": acs, "recipient": acs, "audience": entity,
                "attributes": { "groups": groups, "firstName": ["Test"] } }),
        );
        let r = self
            .http
            .post(format!("{}/saml/{}/{idp}/acs", self.url, self.ns.name))
            .form(&[("SAMLResponse", response.as_str())])
            .send()
            .await
            .unwrap();
        let name = sso_operator::session::cookie_name(&format!("{}/{idp}", self.ns.name), true);
        let cookies = set_cookies(&r);
        let value = cookies
            .get(&name)
            .unwrap_or_else(|| panic!("{name_id} signed in at {idp}: {}", r.status()));
        format!("{name}={value}")
    }

    pub async fn scim_token(&self) -> String {
        super::apply_scim_token(
            &self.client,
            &self.ns.name,
            "okta",
            &json!({ "identityProviderRef": { "name": "okta" } }),
        )
        .await;
        let token = super::wait_for_token(&self.client, &self.ns.name, "okta-scim-token").await;
        // Accepted once the server has the recompiled configuration.
        let (http, url) = (self.http.clone(), self.scim("/Users"));
        let t = token.clone();
        wait_for(Duration::from_secs(30), || {
            let (http, url, t) = (http.clone(), url.clone(), t.clone());
            async move {
                let r = http.get(&url).bearer_auth(&t).send().await.ok()?;
                (r.status() == StatusCode::OK).then_some(())
            }
        })
        .await
        .expect("the token is accepted");
        token
    }

    pub fn scim(&self, path: &str) -> String {
        format!("{}/scim/v2/{}/okta{path}", self.url, self.ns.name)
    }

    pub async fn scim_call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Value {
        let r = self
            .http
            .request(method, self.scim(path))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null)
    }

    pub async fn status(&self) -> Value {
        let api: Api<IdentityProvider> = Api::namespaced(self.client.clone(), &self.ns.name);
        serde_json::to_value(api.get("okta").await.unwrap().status).unwrap()
    }
}

impl Sso {
    /// IdentityProvider `okta` (SP-initiated only, redirects allowed to
    /// https://app.example.test/) with a ScimToken, and Ada pushed over SCIM in group `eng`
    /// under a userName that differs in case from the email she signs in with. Returns the
    /// token and her SCIM id.
    pub async fn with_ada_provisioned(database_url: &str) -> (Self, String, String) {
        let sso = Sso::start(
            "sso-sp",
            database_url,
            json!({ "allowedRedirects": ["https://app.example.test/"] }),
        )
        .await;
        let token = sso.scim_token().await;
        let user_id = sso.push_ada_as(&token, "Ada@Example.com").await;
        (sso, token, user_id)
    }

    /// A session of Ada from a full SP-initiated sign-in.
    pub async fn ada_session(&self) -> String {
        let answer = self.sign_in("ada@example.com", None).await;
        answer
            .cookies
            .get(&self.cookie_name())
            .unwrap_or_else(|| panic!("Ada signed in: {} {}", answer.status, answer.body))
            .clone()
    }

    /// Asserts that the server's metrics hold each of `lines`.
    pub async fn assert_metrics_hold(&self, lines: &[&str]) {
        let metrics = self.server.metrics().await;
        for line in lines {
            assert!(metrics.contains(line), "{line} missing from\n{metrics}");
        }
    }

    /// Asserts that the server's log holds none of `secrets` (sessions, SAML responses).
    pub fn assert_log_holds_none_of(&self, secrets: &[&str]) {
        let log = self.server.log_text();
        for secret in secrets {
            assert!(!log.contains(secret), "a secret was logged: {secret}");
        }
    }
}

impl Sso {
    /// Deletes ScimToken and IdentityProvider `okta` (as `kubectl delete -f` of the example
    /// does) and waits until both and the token's Secret are gone.
    pub async fn delete_idp_and_token(&self) {
        let idps: Api<IdentityProvider> = Api::namespaced(self.client.clone(), &self.ns.name);
        let tokens: Api<sso_operator::api::ScimToken> =
            Api::namespaced(self.client.clone(), &self.ns.name);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns.name);
        let dp = kube::api::DeleteParams::background();
        tokens.delete("okta", &dp).await.unwrap();
        idps.delete("okta", &dp).await.unwrap();
        let gone = wait_for(Duration::from_secs(60), || async {
            let idp = idps.get_opt("okta").await.ok()?;
            let token = tokens.get_opt("okta").await.ok()?;
            let secret = secrets.get_opt("okta-scim-token").await.ok()?;
            (idp.is_none() && token.is_none() && secret.is_none()).then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "the IdentityProvider, the ScimToken and its Secret are deleted"
        );
    }

    /// Pushes `ada@example.com` over SCIM with a group `eng`; returns the user's ID.
    pub async fn push_ada(&self, token: &str) -> String {
        self.push_ada_as(token, "ada@example.com").await
    }

    /// [`Sso::push_ada`] with `user_name` as her SCIM userName (her email stays
    /// `ada@example.com`).
    pub async fn push_ada_as(&self, token: &str, user_name: &str) -> String {
        let user = self
            .scim_call(
                token,
                reqwest::Method::POST,
                "/Users",
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name, "active": true,
                    "emails": [{ "value": "ada@example.com", "type": "work", "primary": true }]
                }),
            )
            .await;
        let user_id = user["id"].as_str().unwrap().to_owned();
        self.scim_call(
            token,
            reqwest::Method::POST,
            "/Groups",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "eng", "members": [{ "value": user_id }]
            }),
        )
        .await;
        user_id
    }

    /// Sets user `user_id` active or inactive over SCIM (a PATCH replacing `active`).
    pub async fn set_active(&self, token: &str, user_id: &str, active: bool) {
        self.scim_call(
            token,
            reqwest::Method::PATCH,
            &format!("/Users/{user_id}"),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": active } }]
            }),
        )
        .await;
    }

    /// `totalResults` of `GET {path}` (`/Users`, `/Groups`).
    pub async fn scim_total(&self, token: &str, path: &str) -> i64 {
        let list = self
            .scim_call(token, reqwest::Method::GET, path, Value::Null)
            .await;
        list["totalResults"].as_i64().unwrap()
    }

    /// Waits until the server's metrics show `line` (a whole sample: name, labels, value).
    pub async fn wait_metric(&self, line: &str) {
        let seen = wait_for(Duration::from_secs(60), || async {
            self.server
                .metrics()
                .await
                .lines()
                .any(|l| l == line)
                .then_some(())
        })
        .await;
        assert!(
            seen.is_some(),
            "{line} never appeared in\n{}\nserver log:\n{}",
            self.server.metrics().await,
            self.server.log_text()
        );
    }

    pub fn tenant(&self) -> String {
        format!("{}/okta", self.ns.name)
    }
}
