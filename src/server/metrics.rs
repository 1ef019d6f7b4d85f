//! Prometheus metrics of the server: sign-ins by outcome and reason, forward-auth decisions,
//! tenants purged, compiled configurations refused, OIDC token requests.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::api::SignInRefusal;

/// Labels of a sign-in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignInLabels {
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// Why it failed (`none` on success): a [`SignInRefusal`]'s metric label, such as
    /// `WrongAudience` or `UserDeactivated`.
    pub reason: &'static str,
}

/// Labels of a forward-auth decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerifyLabels {
    /// `allowed`, `unauthenticated` or `forbidden`.
    pub result: &'static str,
}

/// Labels of a tenant purge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurgeLabels {
    /// `deleted` (the IdentityProvider is gone) or `replaced` (re-created under the same name).
    pub reason: &'static str,
}

/// Labels of a refused compiled configuration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigRefusalLabels {
    /// `unknownFormatVersion` (written by a newer release) or `invalid`.
    pub reason: &'static str,
}

/// Labels of a token endpoint answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `authorization_code`, `refresh_token`, `device_code`, `other` or `none`.
    pub grant: &'static str,
    /// `issued`, or the RFC 6749 error code (`invalid_grant`, `invalid_client`, …).
    pub result: &'static str,
}

/// The server's metrics.
#[derive(Clone, Debug, Default)]
pub struct ServerMetrics {
    sign_ins: Family<SignInLabels, Counter>,
    verifies: Family<VerifyLabels, Counter>,
    tenant_purges: Family<PurgeLabels, Counter>,
    compiled_config_refusals: Family<ConfigRefusalLabels, Counter>,
    oidc_tokens: Family<TokenLabels, Counter>,
}

impl ServerMetrics {
    /// Creates the metrics and registers them under the `sso_operator_server` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let sub = registry.sub_registry_with_prefix("sso_operator_server");
        sub.register(
            "sign_ins",
            "SAML sign-ins at the ACS by outcome and failure reason",
            m.sign_ins.clone(),
        );
        sub.register(
            "auth_verify_requests",
            "Forward-auth decisions of /auth/verify",
            m.verifies.clone(),
        );
        sub.register(
            "tenant_purges",
            "Tenants whose users, groups, sessions and replay cache were purged because their IdentityProvider was deleted or re-created",
            m.tenant_purges.clone(),
        );
        sub.register(
            "compiled_config_refusals",
            "Compiled configurations not served because this server cannot read them, by reason; their IdentityProvider is not served until one it reads is published",
            m.compiled_config_refusals.clone(),
        );
        sub.register(
            "oidc_token_requests",
            "Answers of the OIDC token endpoint by grant type and result (issued, or the OAuth error code)",
            m.oidc_tokens.clone(),
        );
        m
    }

    /// Counts one compiled configuration (one version of its Secret) refused for `reason`.
    pub fn compiled_config_refused(&self, reason: &'static str) {
        self.compiled_config_refusals
            .get_or_create(&ConfigRefusalLabels { reason })
            .inc();
    }

    /// Counts one tenant purge.
    pub fn tenant_purged(&self, reason: &'static str) {
        self.tenant_purges
            .get_or_create(&PurgeLabels { reason })
            .inc();
    }

    /// Counts one sign-in: `refusal` is why a refused one was refused.
    pub fn sign_in(&self, refusal: Option<SignInRefusal>) {
        self.sign_ins
            .get_or_create(&SignInLabels {
                outcome: if refusal.is_some() {
                    "failure"
                } else {
                    "success"
                },
                reason: refusal.map_or("none", SignInRefusal::metric_label),
            })
            .inc();
    }

    /// Counts one forward-auth decision.
    pub fn verify(&self, result: &'static str) {
        self.verifies.get_or_create(&VerifyLabels { result }).inc();
    }

    /// Counts one answer of the OIDC token endpoint.
    pub fn oidc_token(&self, grant: &'static str, result: &'static str) {
        self.oidc_tokens
            .get_or_create(&TokenLabels { grant, result })
            .inc();
    }
}
