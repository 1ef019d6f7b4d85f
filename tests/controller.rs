//! The controller end to end: the real `sso-operator controller` binary, running as a
//! ServiceAccount with the chart's RBAC rules, against the real local control plane.

mod support;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use openssl::pkey::PKey;
use openssl::x509::X509;
use serde_json::{Value, json};
use sso_operator::api::{IdentityProvider, ScimToken};
use sso_operator::config::{self, CompiledIdentityProvider};
use support::operator::{EXTERNAL_URL, Operator, controller_kubeconfig};
use support::{TestNamespace, admin_client, install_crds, wait_for};

const WAIT: Duration = Duration::from_secs(30);

struct Env {
    client: Client,
    ns: TestNamespace,
    kubeconfig: std::path::PathBuf,
    op: Operator,
}

impl Env {
    async fn start(prefix: &str, extra: &[&str]) -> Self {
        let client = admin_client().await;
        install_crds(&client).await;
        let ns = TestNamespace::new(&client, prefix).await;
        let kubeconfig = controller_kubeconfig(&client, &ns.name).await;
        let op = Operator::start(&kubeconfig, &ns.name, extra);
        Self {
            client,
            ns,
            kubeconfig,
            op,
        }
    }

    fn idps(&self) -> Api<IdentityProvider> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    fn tokens(&self) -> Api<ScimToken> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    async fn apply(&self, kind: &str, name: &str, spec: Value) {
        let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": kind, "metadata": { "name": name }, "spec": spec });
        let pp = PatchParams::apply("sso-operator-tests").force();
        let result = match kind {
            "IdentityProvider" => self
                .idps()
                .patch(name, &pp, &Patch::Apply(&obj))
                .await
                .map(|_| ()),
            _ => self
                .tokens()
                .patch(name, &pp, &Patch::Apply(&obj))
                .await
                .map(|_| ()),
        };
        result.unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }

    /// Waits until the IdentityProvider's condition has `status` and `reason`, for the current
    /// generation; panics with what was seen and the operator's log otherwise.
    async fn idp_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> IdentityProvider {
        let api = self.idps();
        let found = wait_for(WAIT, || {
            let api = api.clone();
            async move {
                let idp = api.get(name).await.ok()?;
                let st = idp.status.as_ref()?;
                (st.observed_generation == idp.metadata.generation
                    && st
                        .conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == status && c.reason == reason))
                .then_some(idp)
            }
        })
        .await;
        match found {
            Some(idp) => idp,
            None => {
                let seen = api
                    .get(name)
                    .await
                    .ok()
                    .and_then(|i| i.status)
                    .map(|s| s.conditions);
                panic!(
                    "IdentityProvider {name} never had {type_}={status} ({reason}); conditions: {seen:#?}\noperator log:\n{}",
                    tail(&self.op.log_text())
                )
            }
        }
    }

    async fn token_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> ScimToken {
        let api = self.tokens();
        let found = wait_for(WAIT, || {
            let api = api.clone();
            async move {
                let t = api.get(name).await.ok()?;
                let st = t.status.as_ref()?;
                (st.observed_generation == t.metadata.generation
                    && st
                        .conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == status && c.reason == reason))
                .then_some(t)
            }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "ScimToken {name} never had {type_}={status} ({reason})\noperator log:\n{}",
                tail(&self.op.log_text())
            )
        })
    }

    async fn compiled(&self, idp: &str) -> Option<CompiledIdentityProvider> {
        let secret = self
            .secrets()
            .get_opt(&config::compiled_secret_name(&self.ns.name, idp))
            .await
            .unwrap()?;
        Some(
            serde_json::from_slice(&secret.data.unwrap()[config::CONFIG_KEY].0)
                .expect("compiled config is valid JSON"),
        )
    }

    async fn wait_compiled(
        &self,
        idp: &str,
        check: impl Fn(&CompiledIdentityProvider) -> bool,
    ) -> CompiledIdentityProvider {
        for _ in 0..300 {
            if let Some(c) = self.compiled(idp).await
                && check(&c)
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the compiled configuration of {idp} never matched; it is {:?}\noperator log:\n{}",
            self.compiled(idp)
                .await
                .map(|c| (c.generation, c.scim_tokens)),
            tail(&self.op.log_text())
        );
    }

    async fn secret_value(&self, secret: &str, key: &str) -> String {
        let s = self.secrets().get(secret).await.unwrap();
        String::from_utf8(s.data.unwrap()[key].0.clone()).unwrap()
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A self-signed certificate valid from now+`from` to now+`until` (seconds), PEM.
fn cert_pem(cn: &str, from: i64, until: i64) -> String {
    support::self_signed(cn, from, until).1
}

fn explicit_spec(pem: &str) -> Value {
    json!({
        "provider": "okta",
        "idp": {
            "ssoUrl": "https://example.okta.com/app/x/sso/saml",
            "entityId": "http://www.okta.com/exk1",
            "certificates": [{ "pem": pem }],
        }
    })
}

fn sha256_hex(s: &str) -> String {
    hex::encode(openssl::sha::sha256(s.as_bytes()))
}

const YEAR: i64 = 365 * 86_400;

#[tokio::test]
async fn explicit_idp_and_token_become_ready_with_urls_keys_and_compiled_config() {
    let env = Env::start("ctl-ready", &[]).await;
    let ns = env.ns.name.clone();
    let pem = cert_pem("okta-signing", -3600, YEAR);
    env.apply("IdentityProvider", "okta", explicit_spec(&pem))
        .await;
    env.apply(
        "ScimToken",
        "okta",
        json!({ "identityProviderRef": { "name": "okta" } }),
    )
    .await;

    let idp = env.idp_condition("okta", "Ready", "True", "Ready").await;
    let status = idp.status.unwrap();
    let sp = status.service_provider.unwrap();
    assert_eq!(sp.acs_url, format!("{EXTERNAL_URL}/saml/{ns}/okta/acs"));
    assert_eq!(
        sp.metadata_url,
        format!("{EXTERNAL_URL}/saml/{ns}/okta/metadata")
    );
    assert_eq!(sp.entity_id, sp.metadata_url);
    assert_eq!(sp.login_url, format!("{EXTERNAL_URL}/saml/{ns}/okta/login"));
    assert_eq!(
        status.scim_base_url.as_deref(),
        Some(format!("{EXTERNAL_URL}/scim/v2/{ns}/okta").as_str())
    );
    assert_eq!(status.certificates.len(), 1);
    assert_eq!(status.certificates[0].subject, "CN=okta-signing");
    for t in [
        "ServiceProviderKeysReady",
        "IdpMetadataResolved",
        "CertificatesValid",
        "ConfigPublished",
    ] {
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True"),
            "{t} is not True: {:?}",
            status.conditions
        );
    }

    // The SP key pair: a kubernetes.io/tls Secret owned by the IdentityProvider.
    let sp_secret = env.secrets().get("okta-saml-sp").await.unwrap();
    assert_eq!(sp_secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(
        sp_secret.owner_references()[0].uid,
        idp.metadata.uid.clone().unwrap()
    );
    let data = sp_secret.data.unwrap();
    X509::from_pem(&data["tls.crt"].0).expect("tls.crt is a certificate");
    PKey::private_key_from_pem(&data["tls.key"].0).expect("tls.key is a private key");

    // The token Secret holds the two values Okta's Configure API Integration asks for.
    let token = env.token_condition("okta", "Ready", "True", "Ready").await;
    let tstatus = token.status.unwrap();
    let value = env.secret_value("okta-scim-token", "token").await;
    assert!(
        value.starts_with("ssoscim_") && value.len() == 51,
        "unexpected token shape"
    );
    assert_eq!(
        env.secret_value("okta-scim-token", "scimBaseUrl").await,
        format!("{EXTERNAL_URL}/scim/v2/{ns}/okta")
    );
    assert_eq!(
        tstatus.token_hash.as_deref(),
        Some(sha256_hex(&value).as_str())
    );
    let token_json = serde_json::to_string(&tstatus).unwrap();
    assert!(
        !token_json.contains(&value),
        "status must never hold the token"
    );

    // The compiled configuration carries the certificate, SP keys and only the token's hash.
    let hash = sha256_hex(&value);
    let compiled = env
        .wait_compiled("okta", |c| c.scim_tokens.iter().any(|t| t.sha256 == hash))
        .await;
    assert_eq!(compiled.idp.entity_id, "http://www.okta.com/exk1");
    assert_eq!(compiled.idp.certificates.len(), 1);
    assert_eq!(compiled.service_provider.acs_url, sp.acs_url);
    let raw = env
        .secrets()
        .get(&config::compiled_secret_name(&ns, "okta"))
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&raw.data.unwrap()[config::CONFIG_KEY].0).contains(&value),
        "the compiled config must hold no plaintext token"
    );

    // Nothing secret reaches the logs.
    let log = env.op.log_text();
    assert!(!log.contains(&value), "the token was logged");
    assert!(!log.contains("PRIVATE KEY"), "a private key was logged");

    // Metrics count the reconciliations and the Ready objects.
    let metrics = env.op.metrics().await;
    assert!(
        metrics.contains("sso_operator_controller_reconciles_total{kind=\"IdentityProvider\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ready=\"True\""), "{metrics}");
}

#[tokio::test]
async fn expired_certificate_is_refused_and_the_last_good_config_keeps_serving() {
    let env = Env::start("ctl-expired", &[]).await;
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("good", -3600, YEAR)),
    )
    .await;
    env.idp_condition("okta", "Ready", "True", "Ready").await;
    let good = env.wait_compiled("okta", |_| true).await;

    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("old", -2 * YEAR, -86_400)),
    )
    .await;
    let idp = env
        .idp_condition("okta", "Ready", "False", "CertificateExpired")
        .await;
    let status = idp.status.unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready.message.starts_with("Certificate is no longer valid"),
        "{}",
        ready.message
    );
    assert!(
        ready.message.contains("Signing Certificate from Okta"),
        "{}",
        ready.message
    );
    let published = status
        .conditions
        .iter()
        .find(|c| c.type_ == "ConfigPublished")
        .unwrap();
    assert_eq!(
        (published.status.as_str(), published.reason.as_str()),
        ("False", "LastGoodConfigServing")
    );
    assert_eq!(
        env.compiled("okta").await.unwrap(),
        good,
        "the last good configuration must stay untouched"
    );

    // A certificate that does not parse is refused the same way.
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----"),
    )
    .await;
    env.idp_condition("okta", "Ready", "False", "CertificateInvalid")
        .await;
    assert_eq!(env.compiled("okta").await.unwrap(), good);
}

#[tokio::test]
async fn certificate_expiring_within_30_days_warns_but_serves() {
    let env = Env::start("ctl-expiring", &[]).await;
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("short", -3600, 10 * 86_400)),
    )
    .await;
    let idp = env
        .idp_condition("okta", "CertificatesExpiringSoon", "True", "ExpiresSoon")
        .await;
    let ready = idp
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}

#[tokio::test]
async fn certificate_from_a_secret_is_watched_and_reloaded_within_seconds() {
    let env = Env::start("ctl-secretref", &[]).await;
    let spec = json!({
        "idp": {
            "ssoUrl": "https://idp.example.com/sso",
            "entityId": "https://idp.example.com/entity",
            "certificates": [{ "secretKeyRef": { "name": "idp-cert", "key": "tls.crt" } }],
        }
    });
    env.apply("IdentityProvider", "generic", spec).await;
    let idp = env
        .idp_condition("generic", "Ready", "False", "ReferenceNotFound")
        .await;
    let msg = &idp
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(msg.contains("Secret idp-cert"), "{msg}");
    assert!(env.compiled("generic").await.is_none());

    let first = cert_pem("first", -3600, YEAR);
    let secret: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "idp-cert" }, "stringData": { "tls.crt": first } }),
    )
    .unwrap();
    env.secrets()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    env.idp_condition("generic", "Ready", "True", "Ready").await;

    // Rotating the Secret's certificate recompiles without touching the IdentityProvider.
    let second = cert_pem("second", -3600, YEAR);
    env.secrets()
        .patch(
            "idp-cert",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "tls.crt": second } })),
        )
        .await
        .unwrap();
    let normalised = X509::from_pem(second.as_bytes()).unwrap().to_pem().unwrap();
    env.wait_compiled("generic", |c| {
        c.idp.certificates == [String::from_utf8(normalised.clone()).unwrap()]
    })
    .await;
}

#[tokio::test]
async fn disabled_and_deleted_identity_providers_stop_serving_and_cascade() {
    let env = Env::start("ctl-disable", &[]).await;
    let mut spec = explicit_spec(&cert_pem("c", -3600, YEAR));
    env.apply("IdentityProvider", "okta", spec.clone()).await;
    env.apply(
        "ScimToken",
        "okta",
        json!({ "identityProviderRef": { "name": "okta" } }),
    )
    .await;
    env.idp_condition("okta", "Ready", "True", "Ready").await;
    env.wait_compiled("okta", |_| true).await;

    spec["disabled"] = json!(true);
    env.apply("IdentityProvider", "okta", spec.clone()).await;
    env.idp_condition("okta", "Ready", "False", "Disabled")
        .await;
    assert!(
        env.compiled("okta").await.is_none(),
        "a disabled IdentityProvider must not be served"
    );
    env.token_condition("okta", "Ready", "False", "IdentityProviderDisabled")
        .await;

    spec["disabled"] = json!(false);
    env.apply("IdentityProvider", "okta", spec).await;
    env.idp_condition("okta", "Ready", "True", "Ready").await;
    env.wait_compiled("okta", |_| true).await;

    env.idps()
        .delete("okta", &DeleteParams::default())
        .await
        .unwrap();
    let gone = wait_for(WAIT, || async {
        let idp_gone = env.idps().get_opt("okta").await.ok()?.is_none();
        let compiled_gone = env.compiled("okta").await.is_none();
        let keys_gone = env.secrets().get_opt("okta-saml-sp").await.ok()?.is_none();
        (idp_gone && compiled_gone && keys_gone).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "deletion must remove the compiled config (finalizer) and the SP keys (garbage collector)\n{}",
        tail(&env.op.log_text())
    );
    env.token_condition("okta", "Ready", "False", "IdentityProviderNotFound")
        .await;
}

#[tokio::test]
async fn scim_token_waits_for_its_identity_provider_and_recovers_by_itself() {
    let env = Env::start("ctl-token-wait", &[]).await;
    env.apply(
        "ScimToken",
        "entra",
        json!({ "identityProviderRef": { "name": "entra" }, "secretName": "entra-provisioning" }),
    )
    .await;
    let token = env
        .token_condition("entra", "Ready", "False", "IdentityProviderNotFound")
        .await;
    let msg = token
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(
        msg.contains("IdentityProvider entra does not exist"),
        "{msg}"
    );
    // The Secret is there already, so the admin can configure the IdP in any order.
    let value = env.secret_value("entra-provisioning", "token").await;

    env.apply(
        "IdentityProvider",
        "entra",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.token_condition("entra", "Ready", "True", "Ready").await;
    let hash = sha256_hex(&value);
    env.wait_compiled("entra", |c| c.scim_tokens.iter().any(|t| t.sha256 == hash))
        .await;
}

#[tokio::test]
async fn rotation_on_request_keeps_the_previous_token_for_the_overlap_only() {
    let env = Env::start("ctl-rotate", &[]).await;
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.apply(
        "ScimToken",
        "okta",
        json!({ "identityProviderRef": { "name": "okta" }, "rotation": { "overlap": "6s" } }),
    )
    .await;
    env.token_condition("okta", "Ready", "True", "Ready").await;
    let first = env.secret_value("okta-scim-token", "token").await;
    let first_hash = sha256_hex(&first);
    env.wait_compiled("okta", |c| {
        c.scim_tokens.iter().any(|t| t.sha256 == first_hash)
    })
    .await;

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
        let v = env.secret_value("okta-scim-token", "token").await;
        (v != first).then_some(v)
    })
    .await
    .expect("a new token is issued when the rotate annotation changes");
    let second_hash = sha256_hex(&second);
    // During the overlap both tokens work.
    let both = env
        .wait_compiled("okta", |c| {
            c.scim_tokens.iter().any(|t| t.sha256 == second_hash)
                && c.scim_tokens.iter().any(|t| t.sha256 == first_hash)
        })
        .await;
    let old = both
        .scim_tokens
        .iter()
        .find(|t| t.sha256 == first_hash)
        .unwrap();
    assert!(
        old.not_after.is_some(),
        "the previous token must have an end"
    );
    // After it, only the new one.
    let after = env
        .wait_compiled("okta", |c| {
            !c.scim_tokens.iter().any(|t| t.sha256 == first_hash)
        })
        .await;
    assert!(after.scim_tokens.iter().any(|t| t.sha256 == second_hash));
    let status = env.tokens().get("okta").await.unwrap().status.unwrap();
    assert_eq!(status.token_hash.as_deref(), Some(second_hash.as_str()));
}

#[tokio::test]
async fn scim_token_stops_working_at_expires_at() {
    let env = Env::start("ctl-expiry", &[]).await;
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    let at = (Timestamp::now() + SignedDuration::from_secs(6)).to_string();
    env.apply(
        "ScimToken",
        "okta",
        json!({ "identityProviderRef": { "name": "okta" }, "expiresAt": at }),
    )
    .await;
    env.token_condition("okta", "Ready", "True", "Ready").await;
    let value = env.secret_value("okta-scim-token", "token").await;
    let hash = sha256_hex(&value);
    env.wait_compiled("okta", |c| c.scim_tokens.iter().any(|t| t.sha256 == hash))
        .await;
    let token = env
        .token_condition("okta", "Expired", "True", "Expired")
        .await;
    let ready = token
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Expired")
    );
    env.wait_compiled("okta", |c| !c.scim_tokens.iter().any(|t| t.sha256 == hash))
        .await;
}

#[tokio::test]
async fn bring_your_own_token_is_hashed_and_short_ones_are_refused() {
    let env = Env::start("ctl-byo", &[]).await;
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    let secret: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "sealed" }, "stringData": { "token": "too-short" } }),
    )
    .unwrap();
    env.secrets()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    env.apply("ScimToken", "byo", json!({ "identityProviderRef": { "name": "okta" }, "tokenSecretRef": { "name": "sealed", "key": "token" } })).await;
    env.token_condition("byo", "Ready", "False", "TokenInvalid")
        .await;
    let good = "a-token-from-sealed-secrets-0123456789abcdef";
    env.secrets()
        .patch(
            "sealed",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "token": good } })),
        )
        .await
        .unwrap();
    env.token_condition("byo", "Ready", "True", "Ready").await;
    env.wait_compiled("okta", |c| {
        c.scim_tokens.iter().any(|t| t.sha256 == sha256_hex(good))
    })
    .await;
}

#[tokio::test]
async fn service_provider_certificates_rotate_publishing_the_next_one_first() {
    let env = Env::start(
        "ctl-sp-rotate",
        &[
            "--sp-certificate-validity",
            "24s",
            "--sp-certificate-renew-before",
            "16s",
        ],
    )
    .await;
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.idp_condition("okta", "Ready", "True", "Ready").await;
    let first = env
        .wait_compiled("okta", |_| true)
        .await
        .service_provider
        .current;
    // 16 s before expiry the next certificate is published next to the current one...
    let publishing = env
        .wait_compiled("okta", |c| c.service_provider.next.is_some())
        .await;
    assert_eq!(
        publishing.service_provider.current, first,
        "the next certificate must be published before it is used"
    );
    let next = publishing.service_provider.next.unwrap();
    // ...and becomes current later, while the old one stays for decryption.
    let switched = env
        .wait_compiled("okta", |c| c.service_provider.current == next)
        .await;
    assert_eq!(switched.service_provider.previous.as_ref(), Some(&first));
    let idp = env.idp_condition("okta", "Ready", "True", "Ready").await;
    assert!(
        idp.status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "ServiceProviderKeysReady" && c.status == "True")
    );
}

#[tokio::test]
async fn a_controller_killed_mid_reconcile_creates_no_duplicates() {
    let mut env = Env::start("ctl-crash", &[]).await;
    let pem = cert_pem("c", -3600, YEAR);
    for i in 0..8 {
        env.apply("IdentityProvider", &format!("idp{i}"), explicit_spec(&pem))
            .await;
        env.apply(
            "ScimToken",
            &format!("tok{i}"),
            json!({ "identityProviderRef": { "name": format!("idp{i}") } }),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    env.op.kill();
    env.op = Operator::start(&env.kubeconfig, &env.ns.name, &[]);
    for i in 0..8 {
        env.idp_condition(&format!("idp{i}"), "Ready", "True", "Ready")
            .await;
        env.token_condition(&format!("tok{i}"), "Ready", "True", "Ready")
            .await;
    }
    let secrets = env
        .secrets()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let count = |suffix: &str| {
        secrets
            .iter()
            .filter(|s| s.name_any().ends_with(suffix))
            .count()
    };
    assert_eq!(count("-saml-sp"), 8);
    assert_eq!(count("-scim-token"), 8);
    assert_eq!(
        secrets
            .iter()
            .filter(|s| s.name_any().starts_with("idp-"))
            .count(),
        8
    );
    // Every token in its Secret is the one whose hash is in status (no token was replaced
    // behind the status's back by the restart).
    for i in 0..8 {
        let value = env
            .secret_value(&format!("tok{i}-scim-token"), "token")
            .await;
        let status = env
            .tokens()
            .get(&format!("tok{i}"))
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(
            status.token_hash.as_deref(),
            Some(sha256_hex(&value).as_str())
        );
    }
}

#[tokio::test]
async fn only_the_leader_writes_and_a_killed_leader_hands_over() {
    let mut env = Env::start("ctl-leader", &[]).await;
    env.apply(
        "IdentityProvider",
        "one",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.idp_condition("one", "Ready", "True", "Ready").await;
    let mut standby = Operator::start(&env.kubeconfig, &env.ns.name, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.apply(
        "IdentityProvider",
        "two",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.idp_condition("two", "Ready", "True", "Ready").await;
    assert!(
        !standby.log_text().contains("became the leader"),
        "two leaders at once:\n{}",
        standby.log_text()
    );
    assert!(
        !standby.metrics().await.contains("reconciles_total{"),
        "the standby reconciled"
    );

    env.op.kill();
    let took_over = wait_for(Duration::from_secs(40), || async {
        standby
            .log_text()
            .contains("became the leader")
            .then_some(())
    })
    .await;
    assert!(
        took_over.is_some(),
        "the standby never took over:\n{}",
        standby.log_text()
    );
    env.apply(
        "IdentityProvider",
        "three",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.idp_condition("three", "Ready", "True", "Ready").await;

    // A graceful stop releases the Lease so that the next replica starts at once.
    let status = standby
        .terminate()
        .expect("the controller stops on SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    assert!(standby.log_text().contains("released the Lease"));
}

fn metadata_spec(url: &str) -> Value {
    json!({ "provider": "entra", "idp": { "metadataUrl": url, "metadataRefreshInterval": "1m" } })
}

fn normalised(pem: &str) -> String {
    String::from_utf8(X509::from_pem(pem.as_bytes()).unwrap().to_pem().unwrap()).unwrap()
}

#[tokio::test]
async fn metadata_url_is_fetched_refreshed_and_the_last_good_copy_survives_failures() {
    let mut server = support::HttpsServer::start("refresh");
    let first = cert_pem("entra-2026", -3600, YEAR);
    let write = |certs: &[&str]| {
        std::fs::write(
            server.dir.join("metadata.xml"),
            support::idp_metadata(
                "https://sts.windows.net/tenant/",
                "https://login.microsoftonline.com/tenant/saml2",
                certs,
            ),
        )
        .unwrap()
    };
    write(&[&first]);
    let ca = server.ca_file.to_string_lossy().into_owned();
    let env = Env::start(
        "ctl-metadata",
        &[
            "--allow-private-metadata-addresses",
            "--metadata-ca-file",
            &ca,
        ],
    )
    .await;
    env.apply(
        "IdentityProvider",
        "entra",
        metadata_spec(&server.url("metadata.xml")),
    )
    .await;
    let idp = env
        .idp_condition("entra", "IdpMetadataResolved", "True", "MetadataFetched")
        .await;
    assert!(idp.status.as_ref().unwrap().metadata_fetch_time.is_some());
    env.idp_condition("entra", "Ready", "True", "Ready").await;
    let compiled = env.wait_compiled("entra", |_| true).await;
    assert_eq!(compiled.idp.entity_id, "https://sts.windows.net/tenant/");
    assert_eq!(
        compiled.idp.sso_url,
        "https://login.microsoftonline.com/tenant/saml2"
    );
    assert_eq!(compiled.idp.certificates, [normalised(&first)]);

    // The IdP rolls its certificate over: the periodic refresh (1m) trusts both.
    let second = cert_pem("entra-2027", -3600, 2 * YEAR);
    write(&[&first, &second]);
    let mut rolled = None;
    for _ in 0..120 {
        if let Some(c) = env.compiled("entra").await
            && c.idp.certificates.len() == 2
        {
            rolled = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rolled = rolled.expect("the refresh never picked up the new certificate");
    assert!(rolled.idp.certificates.contains(&normalised(&second)));

    // The server goes away: an edit forces a fetch, which fails; the last good copy serves on.
    server.stop();
    env.apply("IdentityProvider", "entra", json!({ "provider": "entra", "idp": { "metadataUrl": server.url("metadata.xml"), "metadataRefreshInterval": "2m" } })).await;
    let idp = env
        .idp_condition(
            "entra",
            "IdpMetadataResolved",
            "False",
            "MetadataFetchFailed",
        )
        .await;
    let status = idp.status.unwrap();
    let md = status
        .conditions
        .iter()
        .find(|c| c.type_ == "IdpMetadataResolved")
        .unwrap();
    assert!(md.message.contains("keeps serving"), "{}", md.message);
    assert_eq!(
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status,
        "True"
    );
    assert_eq!(
        env.compiled("entra").await.unwrap().idp.certificates,
        rolled.idp.certificates
    );
}

#[tokio::test]
async fn metadata_fetch_failures_give_clear_conditions() {
    let server = support::HttpsServer::start("failures");
    std::fs::write(server.dir.join("huge.xml"), vec![b' '; 2 * 1024 * 1024]).unwrap();
    std::fs::write(
        server.dir.join("not-metadata.xml"),
        "<html><body>Sign in</body></html>",
    )
    .unwrap();
    std::fs::write(
        server.dir.join("no-certs.xml"),
        support::idp_metadata(
            "https://idp.example.com",
            "https://idp.example.com/sso",
            &[],
        ),
    )
    .unwrap();
    let ca = server.ca_file.to_string_lossy().into_owned();
    let env = Env::start(
        "ctl-md-fail",
        &[
            "--allow-private-metadata-addresses",
            "--metadata-ca-file",
            &ca,
        ],
    )
    .await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            "huge",
            server.url("huge.xml"),
            "MetadataFetchFailed",
            "larger than",
        ),
        (
            "missing",
            server.url("missing.xml"),
            "MetadataFetchFailed",
            "404",
        ),
        (
            "unreachable",
            format!("https://127.0.0.1:{closed_port}/metadata"),
            "MetadataFetchFailed",
            "could not connect",
        ),
        (
            "html",
            server.url("not-metadata.xml"),
            "InvalidMetadata",
            "no EntityDescriptor",
        ),
        (
            "no-certs",
            server.url("no-certs.xml"),
            "InvalidMetadata",
            "no signing certificate",
        ),
    ];
    for (name, url, _, _) in &cases {
        env.apply("IdentityProvider", name, metadata_spec(url))
            .await;
    }
    for (name, _, reason, text) in &cases {
        let idp = env.idp_condition(name, "Ready", "False", reason).await;
        let ready = idp
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert!(ready.message.contains(text), "{name}: {}", ready.message);
        assert!(
            ready.message.contains("spec.idp.metadataUrl"),
            "{name}: {}",
            ready.message
        );
        assert!(
            env.compiled(name).await.is_none(),
            "{name} must not be served"
        );
    }
}

#[tokio::test]
async fn metadata_urls_resolving_to_private_addresses_are_refused_by_default() {
    let server = support::HttpsServer::start("private");
    std::fs::write(
        server.dir.join("metadata.xml"),
        support::idp_metadata(
            "https://idp.example.com",
            "https://idp.example.com/sso",
            &[&cert_pem("c", -3600, YEAR)],
        ),
    )
    .unwrap();
    let env = Env::start("ctl-md-private", &[]).await;
    env.apply(
        "IdentityProvider",
        "loopback",
        metadata_spec(&server.url("metadata.xml")),
    )
    .await;
    env.apply(
        "IdentityProvider",
        "metadata-service",
        metadata_spec("https://169.254.169.254/latest/meta-data"),
    )
    .await;
    for name in ["loopback", "metadata-service"] {
        let idp = env
            .idp_condition(name, "Ready", "False", "MetadataUrlRefused")
            .await;
        let ready = idp
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert!(
            ready.message.contains("loopback, private or link-local"),
            "{}",
            ready.message
        );
    }
}

#[tokio::test]
async fn deleting_a_scim_token_revokes_it_at_once() {
    let env = Env::start("ctl-revoke", &[]).await;
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.apply(
        "ScimToken",
        "keep",
        json!({ "identityProviderRef": { "name": "okta" } }),
    )
    .await;
    env.apply(
        "ScimToken",
        "revoke",
        json!({ "identityProviderRef": { "name": "okta" } }),
    )
    .await;
    env.token_condition("keep", "Ready", "True", "Ready").await;
    env.token_condition("revoke", "Ready", "True", "Ready")
        .await;
    let keep = sha256_hex(&env.secret_value("keep-scim-token", "token").await);
    let revoke = sha256_hex(&env.secret_value("revoke-scim-token", "token").await);
    env.wait_compiled("okta", |c| {
        c.scim_tokens.iter().any(|t| t.sha256 == revoke)
            && c.scim_tokens.iter().any(|t| t.sha256 == keep)
    })
    .await;
    let started = std::time::Instant::now();
    env.tokens()
        .delete("revoke", &DeleteParams::default())
        .await
        .unwrap();
    let after = env
        .wait_compiled("okta", |c| {
            !c.scim_tokens.iter().any(|t| t.sha256 == revoke)
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "revocation took {:?}",
        started.elapsed()
    );
    assert!(
        after.scim_tokens.iter().any(|t| t.sha256 == keep),
        "the other token must keep working"
    );
}
