//! Which SCIM tokens work is decided only from what the operator controls: a ScimToken cannot
//! turn a Secret into a credential unless the Secret opts in, never an operator-managed one,
//! and a forged or dropped ScimToken status neither opens nor closes the SCIM endpoint. Each
//! check goes through the real controller and the real `sso-operator server`.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sso_operator::api::ScimToken;
use support::operator::{Operator, Stack};
use support::{TestNamespace, wait_for};

const WAIT: Duration = Duration::from_secs(60);

struct Env {
    controller: Operator,
    server: Operator,
    url: String,
    client: Client,
    ns: TestNamespace,
    http: reqwest::Client,
}

impl Env {
    async fn start(prefix: &str) -> Self {
        let Stack {
            controller,
            server,
            url,
            client,
            ns,
        } = Stack::start(prefix, &support::sqlite_url(prefix), &[], &[]).await;
        let env = Self {
            controller,
            server,
            url,
            client,
            ns,
            http: reqwest::Client::new(),
        };
        let pem = support::cert_pem("idp", -3600, 365 * 86_400);
        let spec = json!({ "provider": "okta", "idp": { "ssoUrl": "https://idp.example.com/sso", "entityId": "https://idp.example.com", "certificates": [{ "pem": pem }] } });
        support::apply_identity_provider(&env.client, &env.ns.name, "okta", &spec).await;
        env
    }

    fn tokens(&self) -> Api<ScimToken> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    async fn apply_token(&self, name: &str, spec: Value) {
        support::apply_scim_token(&self.client, &self.ns.name, name, &spec).await;
    }

    /// The status code of one SCIM request with `token`.
    async fn status_with(&self, token: &str) -> StatusCode {
        self.http
            .get(format!(
                "{}/scim/v2/{}/okta/Users?startIndex=1&count=1",
                self.url, self.ns.name
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers")
            .status()
    }

    /// Waits until the server accepts `token`.
    async fn wait_works(&self, token: &str, what: &str) {
        let ok = wait_for(WAIT, || async {
            (self.status_with(token).await == StatusCode::OK).then_some(())
        })
        .await;
        assert!(
            ok.is_some(),
            "{what} never worked\ncontroller log:\n{}\nserver log:\n{}",
            self.controller.log_text(),
            self.server.log_text()
        );
    }

    /// Issues a generated token from a new ScimToken `name` and waits until the server accepts
    /// it: from then on, the server serves a configuration compiled after every change made
    /// before this call (the controller sees ScimToken events in order).
    async fn settle(&self, name: &str) -> String {
        self.apply_token(name, json!({ "identityProviderRef": { "name": "okta" } }))
            .await;
        let value =
            support::wait_for_token(&self.client, &self.ns.name, &format!("{name}-scim-token"))
                .await;
        self.wait_works(&value, &format!("ScimToken {name}'s token"))
            .await;
        value
    }

    /// Waits until ScimToken `name` is Ready=`status` with `reason`; returns the message.
    async fn ready(&self, name: &str, status: &str, reason: &str) -> String {
        let api = self.tokens();
        let found = wait_for(WAIT, || async {
            let t = api.get(name).await.ok()?;
            let st = t.status?;
            (st.observed_generation == t.metadata.generation).then_some(())?;
            st.conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == status && c.reason == reason)
                .map(|c| c.message)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "ScimToken {name} never was Ready={status} ({reason})\ncontroller log:\n{}",
                self.controller.log_text()
            )
        })
    }

    async fn create_secret(&self, name: &str, annotations: Value, data: Value) {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": annotations },
            "stringData": data
        }))
        .unwrap();
        self.secrets()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    async fn annotate_secret(&self, name: &str, key: &str, value: &str) {
        self.secrets()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { key: value } } })),
            )
            .await
            .unwrap();
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn a_token_secret_counts_only_when_it_names_the_scim_token() {
    let env = Env::start("trust-optin").await;
    // A Secret of the namespace that was never meant to be a token: a public URL of a length
    // a token may have.
    let url_value = "https://okta.example.com/app/sso-operator/exk1abcdefgh/sso/saml";
    env.create_secret(
        "okta-settings",
        json!({}),
        json!({ "scimBaseUrl": url_value }),
    )
    .await;
    env.apply_token(
        "byo",
        json!({ "identityProviderRef": { "name": "okta" }, "tokenSecretRef": { "name": "okta-settings", "key": "scimBaseUrl" } }),
    )
    .await;
    let message = env.ready("byo", "False", "TokenSecretRefused").await;
    assert!(
        message.contains("add the annotation sso-operator.dev/scim-token: byo"),
        "{message}"
    );
    env.settle("sentinel").await;
    assert_eq!(
        env.status_with(url_value).await,
        StatusCode::UNAUTHORIZED,
        "a Secret that did not opt in became a SCIM credential"
    );
    let status = env.tokens().get("byo").await.unwrap().status.unwrap();
    let json = serde_json::to_string(&status).unwrap();
    assert!(
        !json.contains(&sha256_hex(url_value)),
        "status publishes the Secret value's hash"
    );

    // With the annotation naming it, the Secret's value is the token.
    env.annotate_secret("okta-settings", "sso-operator.dev/scim-token", "byo")
        .await;
    env.ready("byo", "True", "Ready").await;
    env.wait_works(url_value, "the opted-in token").await;

    // An annotation naming another ScimToken does not count for this one.
    env.annotate_secret("okta-settings", "sso-operator.dev/scim-token", "other")
        .await;
    env.ready("byo", "False", "TokenSecretRefused").await;
    env.settle("sentinel2").await;
    assert_eq!(
        env.status_with(url_value).await,
        StatusCode::UNAUTHORIZED,
        "a Secret naming another ScimToken kept working"
    );
}

#[tokio::test]
async fn an_operator_managed_secret_is_refused_even_with_the_annotation() {
    let env = Env::start("trust-managed").await;
    env.settle("issued").await;
    // The generated token Secret also holds the SCIM base URL, public and long enough.
    let base_url = {
        let s = env.secrets().get("issued-scim-token").await.unwrap();
        String::from_utf8(s.data.unwrap()["scimBaseUrl"].0.clone()).unwrap()
    };
    assert!(base_url.len() >= 32, "{base_url}");
    env.annotate_secret("issued-scim-token", "sso-operator.dev/scim-token", "steal")
        .await;
    env.apply_token(
        "steal",
        json!({ "identityProviderRef": { "name": "okta" }, "tokenSecretRef": { "name": "issued-scim-token", "key": "scimBaseUrl" } }),
    )
    .await;
    let message = env.ready("steal", "False", "TokenSecretRefused").await;
    assert!(message.contains("managed by sso-operator"), "{message}");
    env.settle("sentinel").await;
    assert_eq!(
        env.status_with(&base_url).await,
        StatusCode::UNAUTHORIZED,
        "an operator-managed Secret became a SCIM credential"
    );
}

#[tokio::test]
async fn a_forged_status_never_makes_a_token_work() {
    let env = Env::start("trust-forged").await;
    let real = env.settle("okta").await;
    let forged = "ssoscim_forged-token-value-0123456789abcdef0123456";
    let forged_previous = "ssoscim_forged-previous-value-0123456789abcdef012";
    let hash = sha256_hex(forged);
    let previous = sha256_hex(forged_previous);
    // What a user allowed to patch scimtokens/status could write.
    env.tokens()
        .patch_status(
            "okta",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": {
                "tokenId": &hash[..12],
                "tokenHash": hash,
                "expiresAt": "2099-01-01T00:00:00Z",
                "previousTokenId": &previous[..12],
                "previousTokenHash": previous,
                "previousTokenExpiresAt": "2099-01-01T00:00:00Z",
            } })),
        )
        .await
        .unwrap();
    env.settle("sentinel").await;
    for (value, what) in [(forged, "current"), (forged_previous, "previous")] {
        assert_eq!(
            env.status_with(value).await,
            StatusCode::UNAUTHORIZED,
            "a token whose hash was forged into status.{what} works"
        );
    }
    assert_eq!(
        env.status_with(&real).await,
        StatusCode::OK,
        "the real token stopped working after a status patch"
    );
}

#[tokio::test]
async fn dropping_the_status_during_an_overlap_keeps_both_tokens_working() {
    let env = Env::start("trust-drop").await;
    env.apply_token(
        "okta",
        json!({ "identityProviderRef": { "name": "okta" }, "rotation": { "overlap": "1h" } }),
    )
    .await;
    let first = support::wait_for_token(&env.client, &env.ns.name, "okta-scim-token").await;
    env.wait_works(&first, "the first token").await;
    env.tokens()
        .patch(
            "okta",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "sso-operator.dev/rotate": "1" } } }),
            ),
        )
        .await
        .unwrap();
    let second = wait_for(WAIT, || async {
        let s = env.secrets().get("okta-scim-token").await.ok()?;
        let v = String::from_utf8(s.data?.get("token")?.0.clone()).ok()?;
        (v != first).then_some(v)
    })
    .await
    .expect("a new token is issued when the rotate annotation changes");
    env.wait_works(&second, "the new token").await;
    assert_eq!(env.status_with(&first).await, StatusCode::OK);

    // A restore without status, or someone clearing it.
    env.tokens()
        .patch_status(
            "okta",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": null })),
        )
        .await
        .unwrap();
    env.settle("sentinel").await;
    for (value, what) in [(&first, "previous"), (&second, "current")] {
        assert_eq!(
            env.status_with(value).await,
            StatusCode::OK,
            "the {what} token stopped working when the status was dropped"
        );
    }
}
