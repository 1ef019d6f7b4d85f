//! The controller end to end: the real `sso-operator controller` binary, running as a
//! ServiceAccount with the chart's RBAC rules, against the real local control plane.

mod support;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use openssl::pkey::PKey;
use openssl::x509::X509;
use serde_json::{Value, json};
use sso_operator::api::{IdentityProvider, ScimToken};
use sso_operator::config::{self, CompiledIdentityProvider};
use support::operator::{EXTERNAL_URL, Operator, controller_kubeconfig};
use support::{TestNamespace, admin_client, cert_pem, install_crds, wait_for};

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
        self.idp_condition_within(WAIT, name, type_, status, reason)
            .await
    }

    /// [`Env::idp_condition`] with a bound of `timeout`.
    async fn idp_condition_within(
        &self,
        timeout: Duration,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> IdentityProvider {
        self.condition_within(self.idps(), timeout, name, type_, status, reason)
            .await
    }

    async fn token_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> ScimToken {
        self.token_condition_within(WAIT, name, type_, status, reason)
            .await
    }

    /// [`Env::token_condition`] with a bound of `timeout`.
    async fn token_condition_within(
        &self,
        timeout: Duration,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> ScimToken {
        self.condition_within(self.tokens(), timeout, name, type_, status, reason)
            .await
    }

    /// Waits up to `timeout` until resource `name` has condition `type_` with `status` and
    /// `reason`, for its current generation; panics with what was seen and the operator's log
    /// otherwise.
    async fn condition_within<K: WithConditions>(
        &self,
        api: Api<K>,
        timeout: Duration,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> K {
        let found = wait_for(timeout, || {
            let api = api.clone();
            async move {
                let resource = api.get(name).await.ok()?;
                let (observed_generation, conditions) = resource.observed()?;
                (observed_generation == resource.meta().generation
                    && conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == status && c.reason == reason))
                .then_some(resource)
            }
        })
        .await;
        match found {
            Some(resource) => resource,
            None => {
                let seen = api
                    .get(name)
                    .await
                    .ok()
                    .and_then(|r| r.observed().map(|(_, conditions)| conditions.to_vec()));
                panic!(
                    "{} {name} never had {type_}={status} ({reason}); conditions: {seen:#?}\noperator log:\n{}",
                    K::kind(&()),
                    tail(&self.op.log_text())
                )
            }
        }
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

/// A resource whose status reports conditions for an observed generation.
trait WithConditions:
    kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug
{
    /// The status's observed generation and conditions, once there is a status.
    fn observed(&self) -> Option<(Option<i64>, &[Condition])>;
}

impl WithConditions for IdentityProvider {
    fn observed(&self) -> Option<(Option<i64>, &[Condition])> {
        let st = self.status.as_ref()?;
        Some((st.observed_generation, &st.conditions))
    }
}

impl WithConditions for ScimToken {
    fn observed(&self) -> Option<(Option<i64>, &[Condition])> {
        let st = self.status.as_ref()?;
        Some((st.observed_generation, &st.conditions))
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
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
    assert_eq!(tstatus.token_id.as_deref(), Some(&sha256_hex(&value)[..12]));
    let token_json = serde_json::to_string(&tstatus).unwrap();
    assert!(
        !token_json.contains(&value),
        "status must never hold the token"
    );
    assert!(
        !token_json.contains(&sha256_hex(&value)),
        "status must never hold the token's hash"
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
async fn a_certificate_secret_holding_a_password_or_a_key_is_refused_without_quoting_it() {
    let env = Env::start("ctl-secret-bytes", &[]).await;
    let spec = json!({
        "idp": {
            "ssoUrl": "https://idp.example.com/sso",
            "entityId": "https://idp.example.com/entity",
            "certificates": [{ "secretKeyRef": { "name": "idp-cert", "key": "tls.crt" } }],
        }
    });
    env.apply("IdentityProvider", "generic", spec).await;
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let wrong_values = [
        "correct horse battery staple!".to_owned(),
        key_pem.clone(),
        format!("-----BEGIN CERTIFICATE-----\n{key_body}\n-----END CERTIFICATE-----\n"),
        "-----BEGIN hunter2-----\naHVudGVyMg==\n-----END hunter2-----\n".to_owned(),
    ];
    let mut messages = Vec::new();
    for (i, value) in wrong_values.iter().enumerate() {
        // A good certificate in between, so that each wrong value is seen on its own.
        let good = cert_pem(&format!("good-{i}"), -3600, YEAR);
        let secret = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "idp-cert" },
            "stringData": { "tls.crt": good } });
        env.secrets()
            .patch(
                "idp-cert",
                &PatchParams::apply("sso-operator-tests").force(),
                &Patch::Apply(&secret),
            )
            .await
            .unwrap();
        env.idp_condition("generic", "Ready", "True", "Ready").await;
        let secret = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "idp-cert" },
            "stringData": { "tls.crt": value } });
        env.secrets()
            .patch(
                "idp-cert",
                &PatchParams::apply("sso-operator-tests").force(),
                &Patch::Apply(&secret),
            )
            .await
            .unwrap();
        let idp = env
            .idp_condition(
                "generic",
                "CertificatesValid",
                "False",
                "CertificateInvalid",
            )
            .await;
        let message = condition_message(&idp, "CertificatesValid");
        for leak in [
            "hunter2",
            "Invalid symbol",
            "33",
            "PRIVATE KEY",
            &key_body[..16],
        ] {
            assert!(!message.contains(leak), "{leak:?} quoted in {message}");
        }
        assert!(
            !message.contains(&key_body[key_body.len() - 16..]),
            "{message}"
        );
        messages.push(message);
    }
    // One message whatever the Secret holds: nothing in it comes from the Secret's bytes. It
    // says which Secret and key, and what to paste there.
    assert!(
        messages.iter().all(|m| *m == messages[0]),
        "the message depends on the Secret's content: {messages:#?}"
    );
    let message = &messages[0];
    for expected in [
        "secret/idp-cert/tls.crt",
        "not a PEM certificate",
        "BEGIN/END CERTIFICATE",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} missing in {message}"
        );
    }
}

#[tokio::test]
async fn an_upgrade_moves_the_compiled_configuration_and_session_keys_to_the_configuration_namespace()
 {
    // An earlier release: everything in the operator namespace.
    let mut env = Env::start("ctl-move", &[]).await;
    let ns = env.ns.name.clone();
    let pem = cert_pem("c", -3600, YEAR);
    for name in ["okta", "gone", "fine"] {
        env.apply("IdentityProvider", name, explicit_spec(&pem))
            .await;
        env.idp_condition(name, "Ready", "True", "Ready").await;
    }
    let good = env.wait_compiled("okta", |_| true).await;
    env.wait_compiled("gone", |_| true).await;
    let keys_name = "sso-operator-session-keys";
    let keys = wait_for(WAIT, || async {
        env.secrets().get_opt(keys_name).await.ok()?
    })
    .await
    .expect("session keys");
    let keys_json = |s: &Secret| -> Value {
        serde_json::from_slice(&s.data.as_ref().unwrap()["keys.json"].0).unwrap()
    };
    let unrelated: Secret = serde_json::from_value(json!({
        "metadata": { "name": "database-credentials" },
        "stringData": { "url": "postgres://sso:s3cret@db/sso" },
    }))
    .unwrap();
    env.secrets()
        .create(&PostParams::default(), &unrelated)
        .await
        .unwrap();

    // While no controller runs: one IdentityProvider breaks (its last good configuration must
    // keep serving), one goes away without its finalizer running (an orphan to clean up).
    env.op.kill();
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec("not a certificate"),
    )
    .await;
    env.idps()
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    env.idps()
        .patch(
            "gone",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .unwrap();

    // The upgrade: a configuration namespace the controller may write and the server read.
    let config_ns = TestNamespace::new(&env.client, "ctl-move-config").await;
    support::operator::grant(
        &env.client,
        &config_ns.name,
        "sso-operator-controller",
        "controller-config-rules.yaml",
        &ns,
        "sso-operator",
    )
    .await;
    env.op = Operator::start(
        &env.kubeconfig,
        &ns,
        &["--config-namespace", &config_ns.name],
    );
    let moved: Api<Secret> = Api::namespaced(env.client.clone(), &config_ns.name);
    let compiled_in = |api: Api<Secret>| async move {
        let lp = ListParams::default().labels(&format!("{}=true", config::COMPILED_CONFIG_LABEL));
        let mut names: Vec<String> = api
            .list_metadata(&lp)
            .await
            .ok()?
            .items
            .iter()
            .map(|s| s.name_any())
            .collect();
        names.sort();
        Some(names)
    };
    let expected = {
        let mut names = vec![
            config::compiled_secret_name(&ns, "okta"),
            config::compiled_secret_name(&ns, "fine"),
            keys_name.to_owned(),
        ];
        names.sort();
        names
    };
    let done = wait_for(Duration::from_secs(60), || async {
        let old = compiled_in(env.secrets()).await?;
        let new = compiled_in(moved.clone()).await?;
        (old.is_empty() && new == expected).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "left in the operator namespace: {:?}, in the configuration namespace: {:?}\n{}",
        compiled_in(env.secrets()).await,
        compiled_in(moved.clone()).await,
        tail(&env.op.log_text())
    );
    // The session keys are the same (sessions survive), the broken IdentityProvider's last
    // good configuration serves on, and nothing else in the operator namespace was touched.
    let moved_keys = moved.get(keys_name).await.unwrap();
    assert_eq!(keys_json(&moved_keys), keys_json(&keys));
    let moved_okta = moved
        .get(&config::compiled_secret_name(&ns, "okta"))
        .await
        .unwrap();
    let moved_okta: CompiledIdentityProvider =
        serde_json::from_slice(&moved_okta.data.unwrap()[config::CONFIG_KEY].0).unwrap();
    assert_eq!(moved_okta, good);
    env.idp_condition("okta", "ConfigPublished", "False", "LastGoodConfigServing")
        .await;
    env.idp_condition("fine", "Ready", "True", "Ready").await;
    assert!(
        env.secrets()
            .get_opt("database-credentials")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        env.secrets()
            .get_opt("okta-saml-sp")
            .await
            .unwrap()
            .is_some()
    );

    // A server that may read Secrets only in the configuration namespace serves from there.
    let server_kubeconfig =
        support::operator::server_kubeconfig_reading(&env.client, &ns, &config_ns.name).await;
    let (server, url) = Operator::start_server_with(
        &server_kubeconfig,
        &ns,
        &support::sqlite_url("ctl-move"),
        &["--config-namespace", &config_ns.name],
    );
    let metadata = format!("{url}/saml/{ns}/fine/metadata");
    let served = wait_for(WAIT, || async {
        let r = reqwest::get(&metadata).await.ok()?;
        (r.status() == reqwest::StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        served.is_some(),
        "server log:\n{}",
        tail(&server.log_text())
    );
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
    assert_eq!(status.token_id.as_deref(), Some(&second_hash[..12]));
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
        json!({ "metadata": { "name": "sealed", "annotations": { "sso-operator.dev/scim-token": "byo" } }, "stringData": { "token": "too-short" } }),
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
        assert_eq!(status.token_id.as_deref(), Some(&sha256_hex(&value)[..12]));
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

/// The longest name Kubernetes allows (253 characters), starting with `prefix`.
fn longest_name(prefix: &str) -> String {
    format!("{prefix}{}", "x".repeat(253 - prefix.len()))
}

/// A self-signed certificate for an EC key on `curve`, valid from now-1h for a year, PEM.
fn ec_cert_pem(curve: openssl::nid::Nid) -> String {
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::x509::X509NameBuilder;
    let key =
        PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(curve).unwrap()).unwrap())
            .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "okta-ec-signing").unwrap();
    let name = name.build();
    let now = Timestamp::now().as_second();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now - 3600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + YEAR).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha384()).unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

/// The message of condition `type_`.
fn condition_message(idp: &IdentityProvider, type_: &str) -> String {
    idp.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn resources_named_with_253_characters_get_keys_a_token_and_events() {
    let env = Env::start("ctl-long", &[]).await;
    let name = longest_name("okta-");
    env.apply(
        "IdentityProvider",
        &name,
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.apply(
        "ScimToken",
        &name,
        json!({ "identityProviderRef": { "name": name } }),
    )
    .await;
    let idp = env.idp_condition(&name, "Ready", "True", "Ready").await;
    let token = env.token_condition(&name, "Ready", "True", "Ready").await;

    // The generated Secrets have names within the limit, and label values within theirs.
    let sp_name = sso_operator::controller::identity_provider::sp_secret_name(&name);
    assert!(
        sp_name.len() <= 253 && sp_name.ends_with("-saml-sp"),
        "{sp_name}"
    );
    let sp_secret = env.secrets().get(&sp_name).await.unwrap();
    assert_eq!(sp_secret.owner_references()[0].uid, idp.uid().unwrap());
    for (k, v) in sp_secret.labels() {
        assert!(v.len() <= 63, "label {k}={v} is too long");
    }
    let token_secret = token.status.unwrap().secret_name.unwrap();
    assert!(
        token_secret.len() <= 253 && token_secret.ends_with("-scim-token"),
        "{token_secret}"
    );
    let value = env.secret_value(&token_secret, "token").await;
    env.wait_compiled(&name, |c| {
        c.scim_tokens.iter().any(|t| t.sha256 == sha256_hex(&value))
    })
    .await;

    // Events about both reach the API server.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns.name);
    let seen = wait_for(WAIT, || {
        let events = events.clone();
        let name = name.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            let about = |kind: &str, reason: &str| {
                list.items.iter().any(|e| {
                    e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(&name)
                    }) && e.reason.as_deref() == Some(reason)
                })
            };
            (about("IdentityProvider", "Ready") && about("ScimToken", "Ready")).then_some(())
        }
    })
    .await;
    assert!(
        seen.is_some(),
        "no Ready events about the long-named resources\n{}",
        tail(&env.op.log_text())
    );
}

#[tokio::test]
async fn idp_values_pasted_with_surrounding_whitespace_are_compiled_trimmed() {
    let env = Env::start("ctl-trim", &[]).await;
    let mut spec = explicit_spec(&cert_pem("c", -3600, YEAR));
    spec["idp"]["entityId"] = json!("  http://www.okta.com/exk1\n");
    spec["idp"]["ssoUrl"] = json!("https://example.okta.com/app/x/sso/saml ");
    spec["serviceProviderEntityId"] = json!(" urn:example:sp\n");
    env.apply("IdentityProvider", "okta", spec).await;
    let idp = env.idp_condition("okta", "Ready", "True", "Ready").await;
    let compiled = env.wait_compiled("okta", |_| true).await;
    assert_eq!(compiled.idp.entity_id, "http://www.okta.com/exk1");
    assert_eq!(
        compiled.idp.sso_url,
        "https://example.okta.com/app/x/sso/saml"
    );
    assert_eq!(compiled.service_provider.entity_id, "urn:example:sp");
    // Status shows the values as they are used.
    let status = idp.status.clone().unwrap();
    assert_eq!(status.service_provider.unwrap().entity_id, "urn:example:sp");
    let resolved = condition_message(&idp, "IdpMetadataResolved");
    assert!(
        resolved.contains(
            "ssoUrl https://example.okta.com/app/x/sso/saml, entityId http://www.okta.com/exk1 ("
        ),
        "{resolved}"
    );
}

#[tokio::test]
async fn a_certificate_bundle_in_one_secret_key_trusts_every_certificate() {
    let env = Env::start("ctl-bundle", &[]).await;
    let old = cert_pem("okta-old", -YEAR, YEAR);
    let new = cert_pem("okta-new", -60, 2 * YEAR);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "idp-certs" },
        "stringData": { "tls.crt": format!("{old}\n{new}") },
    }))
    .unwrap();
    env.secrets()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let spec = json!({
        "provider": "okta",
        "idp": {
            "ssoUrl": "https://example.okta.com/app/x/sso/saml",
            "entityId": "http://www.okta.com/exk1",
            "certificates": [{ "secretKeyRef": { "name": "idp-certs", "key": "tls.crt" } }],
        }
    });
    env.apply("IdentityProvider", "okta", spec).await;
    let idp = env.idp_condition("okta", "Ready", "True", "Ready").await;
    let certificates = idp.status.unwrap().certificates;
    let reported: Vec<(&str, &str)> = certificates
        .iter()
        .map(|c| (c.source.as_str(), c.subject.as_str()))
        .collect();
    assert_eq!(
        reported,
        [
            ("secret/idp-certs/tls.crt#1", "CN=okta-old"),
            ("secret/idp-certs/tls.crt#2", "CN=okta-new"),
        ]
    );
    env.wait_compiled("okta", |c| {
        c.idp.certificates == [normalised(&old), normalised(&new)]
    })
    .await;

    // Text after the blocks is refused, not ignored; the last good configuration keeps serving.
    env.secrets()
        .patch(
            "idp-certs",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "stringData": { "tls.crt": format!("{old}{new}not a certificate\n") } }),
            ),
        )
        .await
        .unwrap();
    let idp = env
        .idp_condition("okta", "CertificatesValid", "False", "CertificateInvalid")
        .await;
    let message = condition_message(&idp, "Ready");
    assert!(
        message.contains("secret/idp-certs/tls.crt") && message.contains("after certificate 2"),
        "{message}"
    );
    env.idp_condition("okta", "Ready", "False", "CertificateInvalid")
        .await;
    env.idp_condition("okta", "ConfigPublished", "False", "LastGoodConfigServing")
        .await;
}

#[tokio::test]
async fn a_certificate_whose_key_cannot_verify_the_signature_algorithm_is_refused() {
    let env = Env::start("ctl-keytype", &[]).await;
    let ec = ec_cert_pem(openssl::nid::Nid::SECP384R1);
    env.apply("IdentityProvider", "okta", explicit_spec(&ec))
        .await;
    let idp = env
        .idp_condition("okta", "Ready", "False", "CertificateInvalid")
        .await;
    let message = condition_message(&idp, "Ready");
    assert!(
        message.contains("holds an EC P-384 key but spec.saml.signatureAlgorithm is rsa-sha256: set saml.signatureAlgorithm: ecdsa-sha384"),
        "{message}"
    );
    assert_eq!(
        idp.status.unwrap().certificates[0].key_type.as_deref(),
        Some("EC P-384")
    );
    assert!(
        env.compiled("okta").await.is_none(),
        "a certificate that cannot verify anything must not be served"
    );

    // Doing what the message says serves it.
    let mut spec = explicit_spec(&ec);
    spec["saml"] = json!({ "signatureAlgorithm": "ecdsa-sha384" });
    env.apply("IdentityProvider", "okta", spec).await;
    env.idp_condition("okta", "Ready", "True", "Ready").await;
    env.wait_compiled("okta", |c| c.idp.certificates == [normalised(&ec)])
        .await;
}

/// What `kubectl delete -f` then `kubectl apply -f` (or Argo CD's replace) do, with a bound of
/// 10 s from the moment the new resources can become Ready.
const REAPPLIED_READY: Duration = Duration::from_secs(10);

#[tokio::test]
async fn deleting_and_applying_the_same_manifests_again_gets_ready_with_new_keys_and_token() {
    let env = Env::start("ctl-reapply", &[]).await;
    let idp_spec = explicit_spec(&cert_pem("c", -3600, YEAR));
    let token_spec = json!({ "identityProviderRef": { "name": "okta" } });
    env.apply("IdentityProvider", "okta", idp_spec.clone())
        .await;
    env.apply("ScimToken", "okta", token_spec.clone()).await;
    env.idp_condition("okta", "Ready", "True", "Ready").await;
    env.token_condition("okta", "Ready", "True", "Ready").await;
    let mut keys_seen = vec![env.secret_value("okta-saml-sp", "tls.crt").await];
    let mut tokens_seen = vec![sha256_hex(
        &env.secret_value("okta-scim-token", "token").await,
    )];
    const HOLD: &str = "sso-operator.dev/test-hold";

    // Once as it usually goes, once with a garbage collector that is slow to remove the
    // previous Secrets (held here by a finalizer of the test).
    for slow_collector in [false, true] {
        if slow_collector {
            for s in ["okta-saml-sp", "okta-scim-token"] {
                env.secrets()
                    .patch(
                        s,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "metadata": { "finalizers": [HOLD] } })),
                    )
                    .await
                    .unwrap();
            }
        }
        env.idps()
            .delete("okta", &DeleteParams::default())
            .await
            .unwrap();
        env.tokens()
            .delete("okta", &DeleteParams::default())
            .await
            .unwrap();
        let gone = wait_for(WAIT, || async {
            let idp = env.idps().get_opt("okta").await.ok()?;
            let token = env.tokens().get_opt("okta").await.ok()?;
            (idp.is_none() && token.is_none()).then_some(())
        })
        .await;
        assert!(gone.is_some(), "{}", tail(&env.op.log_text()));
        env.apply("IdentityProvider", "okta", idp_spec.clone())
            .await;
        env.apply("ScimToken", "okta", token_spec.clone()).await;
        let mut start = std::time::Instant::now();

        if slow_collector {
            // Neither takes the deleted one's Secret over nor asks for a manual fix: both wait.
            let idp = env
                .idp_condition("okta", "Ready", "False", "WaitingForGarbageCollection")
                .await;
            let message = condition_message(&idp, "Ready");
            assert!(
                message.contains("Secret okta-saml-sp") && message.contains("deleted"),
                "{message}"
            );
            env.token_condition("okta", "Ready", "False", "WaitingForGarbageCollection")
                .await;
        }
        let release = |secret: &'static str| {
            let secrets = env.secrets();
            async move {
                // The garbage collector has deleted it; only the test's finalizer holds it.
                let terminating = wait_for(WAIT, || async {
                    let s = secrets.get_opt(secret).await.ok()??;
                    s.metadata.deletion_timestamp.map(|_| ())
                })
                .await;
                assert!(
                    terminating.is_some(),
                    "the garbage collector never deleted {secret}"
                );
                secrets
                    .patch(
                        secret,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
                    )
                    .await
                    .unwrap();
                std::time::Instant::now()
            }
        };

        // One at a time, so that nothing the other does (a token issued) reconciles it by chance.
        if slow_collector {
            start = release("okta-saml-sp").await;
        }
        let idp = env
            .idp_condition_within(REAPPLIED_READY, "okta", "Ready", "True", "Ready")
            .await;
        eprintln!(
            "re-applied (slow garbage collector: {slow_collector}): IdentityProvider Ready after {:?}",
            start.elapsed()
        );
        if slow_collector {
            start = release("okta-scim-token").await;
        }
        let token = env
            .token_condition_within(
                REAPPLIED_READY.saturating_sub(start.elapsed()),
                "okta",
                "Ready",
                "True",
                "Ready",
            )
            .await;
        eprintln!(
            "re-applied (slow garbage collector: {slow_collector}): ScimToken Ready after {:?}",
            start.elapsed()
        );

        // New keys and a new token, owned by the new resources; the old token is not accepted.
        let sp = env.secrets().get("okta-saml-sp").await.unwrap();
        assert_eq!(sp.owner_references()[0].uid, idp.uid().unwrap());
        let key = env.secret_value("okta-saml-sp", "tls.crt").await;
        assert!(
            !keys_seen.contains(&key),
            "a deleted IdentityProvider's keys were reused"
        );
        keys_seen.push(key);
        let hash = sha256_hex(&env.secret_value("okta-scim-token", "token").await);
        assert_eq!(token.status.unwrap().token_id.as_deref(), Some(&hash[..12]));
        assert!(
            !tokens_seen.contains(&hash),
            "a deleted ScimToken's token was reused"
        );
        let compiled = env
            .wait_compiled("okta", |c| c.scim_tokens.iter().any(|t| t.sha256 == hash))
            .await;
        assert!(
            compiled
                .scim_tokens
                .iter()
                .all(|t| !tokens_seen.contains(&t.sha256)),
            "a deleted ScimToken's token is still accepted"
        );
        tokens_seen.push(hash);
    }
}

#[tokio::test]
async fn a_foreign_secret_with_a_generated_name_conflicts_until_it_is_deleted() {
    let env = Env::start("ctl-foreign", &[]).await;
    // One carries the operator's label (copied from another cluster, say) but no owner.
    for (name, labels) in [
        (
            "okta-saml-sp",
            json!({ "app.kubernetes.io/managed-by": "sso-operator" }),
        ),
        ("okta-scim-token", json!({})),
    ] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": labels },
            "stringData": { "owner": "someone else" },
        }))
        .unwrap();
        env.secrets()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    env.apply(
        "IdentityProvider",
        "okta",
        explicit_spec(&cert_pem("c", -3600, YEAR)),
    )
    .await;
    env.apply(
        "ScimToken",
        "okta",
        json!({ "identityProviderRef": { "name": "okta" } }),
    )
    .await;
    env.idp_condition("okta", "Ready", "False", "SecretConflict")
        .await;
    env.token_condition("okta", "Ready", "False", "SecretConflict")
        .await;
    for s in ["okta-saml-sp", "okta-scim-token"] {
        assert_eq!(env.secret_value(s, "owner").await, "someone else");
    }

    // Doing what the message says is enough: each becomes Ready without another edit. One at
    // a time, so that nothing the other does (a token issued) reconciles it by chance.
    env.secrets()
        .delete("okta-saml-sp", &DeleteParams::default())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    env.idp_condition_within(REAPPLIED_READY, "okta", "Ready", "True", "Ready")
        .await;
    eprintln!(
        "conflicting key Secret deleted: IdentityProvider Ready after {:?}",
        start.elapsed()
    );
    env.token_condition("okta", "Ready", "False", "SecretConflict")
        .await;
    env.secrets()
        .delete("okta-scim-token", &DeleteParams::default())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    env.token_condition_within(REAPPLIED_READY, "okta", "Ready", "True", "Ready")
        .await;
    eprintln!(
        "conflicting token Secret deleted: ScimToken Ready after {:?}",
        start.elapsed()
    );
}
