//! What `sso-operator kubeconfig` prints: a kubeconfig user that signs in with the kubectl
//! `oidc-login` plugin (kubelogin), and the API server's `AuthenticationConfiguration` entry
//! that trusts the issuer. Both are rendered from values here and checked by tests; nothing is
//! fetched.

use serde_json::{Value, json};

/// The prefix of usernames and groups from OIDC tokens in the API server, so that they can
/// never be taken for `system:` users or groups.
pub const CLAIM_PREFIX: &str = "oidc:";

/// How kubectl signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A browser on the same machine (the authorization code flow with PKCE to a loopback
    /// port).
    Browser,
    /// A code to enter on any other device (RFC 8628), for shells without a browser.
    DeviceCode,
}

/// One OidcClient, as kubectl needs it.
#[derive(Debug, Clone)]
pub struct KubectlClient<'a> {
    /// The issuer URL (the OidcClient's `status.issuerUrl`).
    pub issuer: &'a str,
    /// The client ID.
    pub client_id: &'a str,
    /// The client secret, for a confidential client (public clients are preferred for
    /// kubectl: the secret would be on every laptop).
    pub client_secret: Option<&'a str>,
    /// Extra CA file to trust the issuer with, when its certificate is not publicly trusted.
    pub certificate_authority: Option<&'a str>,
}

/// The `users:` entry of a kubeconfig, named `user`, as YAML.
pub fn user_entry(user: &str, client: &KubectlClient<'_>, grant: Grant) -> String {
    let mut args = vec![
        "oidc-login".to_owned(),
        "get-token".to_owned(),
        format!("--oidc-issuer-url={}", client.issuer),
        format!("--oidc-client-id={}", client.client_id),
        "--oidc-extra-scope=email".to_owned(),
        "--oidc-extra-scope=groups".to_owned(),
        "--oidc-extra-scope=offline_access".to_owned(),
    ];
    if let Some(secret) = client.client_secret {
        args.push(format!("--oidc-client-secret={secret}"));
    }
    if let Some(ca) = client.certificate_authority {
        args.push(format!("--certificate-authority={ca}"));
    }
    if grant == Grant::DeviceCode {
        args.push("--grant-type=device-code".to_owned());
    }
    let doc = json!({
        "users": [{
            "name": user,
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "kubectl",
                    "args": args,
                    "interactiveMode": "IfAvailable",
                    "provideClusterInfo": false,
                }
            }
        }]
    });
    yaml(&doc)
}

/// The API server's `AuthenticationConfiguration` (apiserver.config.k8s.io/v1) trusting the
/// issuer for tokens of `client_id`: usernames from `email`, groups from `groups_claim`, both
/// with [`CLAIM_PREFIX`]. `ca_pem` is the CA of the issuer's certificate when it is not
/// publicly trusted.
pub fn authentication_config(
    issuer: &str,
    client_id: &str,
    groups_claim: &str,
    ca_pem: Option<&str>,
) -> String {
    let mut issuer_doc = json!({ "url": issuer, "audiences": [client_id] });
    if let Some(ca) = ca_pem {
        issuer_doc["certificateAuthority"] = Value::String(ca.to_owned());
    }
    let doc = json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": issuer_doc,
            "claimMappings": {
                "username": { "claim": "email", "prefix": CLAIM_PREFIX },
                "groups": { "claim": groups_claim, "prefix": CLAIM_PREFIX },
                "uid": { "claim": "sub" },
            },
            "userValidationRules": [{
                "expression": "!user.username.startsWith('system:')",
                "message": "usernames starting with system: are reserved",
            }],
        }]
    });
    yaml(&doc)
}

fn yaml(doc: &Value) -> String {
    serde_saphyr::to_string(doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn the_user_entry_runs_the_oidc_login_plugin_with_the_issuer_and_client() {
        let client = KubectlClient {
            issuer: "https://sso.example.com/oidc/team-a/okta",
            client_id: "kubectl",
            client_secret: None,
            certificate_authority: Some("/etc/ssl/sso-ca.pem"),
        };
        let doc = parse(&user_entry("ada", &client, Grant::DeviceCode));
        let exec = &doc["users"][0]["user"]["exec"];
        assert_eq!(doc["users"][0]["name"], "ada");
        assert_eq!(exec["command"], "kubectl");
        let args: Vec<&str> = exec["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(&args[..2], ["oidc-login", "get-token"]);
        assert!(args.contains(&"--oidc-issuer-url=https://sso.example.com/oidc/team-a/okta"));
        assert!(args.contains(&"--oidc-client-id=kubectl"));
        assert!(args.contains(&"--grant-type=device-code"));
        assert!(args.contains(&"--certificate-authority=/etc/ssl/sso-ca.pem"));
        assert!(!args.iter().any(|a| a.starts_with("--oidc-client-secret")));
        let browser = parse(&user_entry("ada", &client, Grant::Browser));
        assert!(!browser.to_string().contains("device-code"));
    }

    #[test]
    fn the_authentication_config_prefixes_users_and_groups() {
        let doc = parse(&authentication_config(
            "https://sso.example.com/oidc/team-a/okta",
            "kubectl",
            "groups",
            Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ));
        assert_eq!(doc["kind"], "AuthenticationConfiguration");
        let jwt = &doc["jwt"][0];
        assert_eq!(
            jwt["issuer"]["url"],
            "https://sso.example.com/oidc/team-a/okta"
        );
        assert_eq!(jwt["issuer"]["audiences"], json!(["kubectl"]));
        assert!(
            jwt["issuer"]["certificateAuthority"]
                .as_str()
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert_eq!(jwt["claimMappings"]["username"]["prefix"], "oidc:");
        assert_eq!(jwt["claimMappings"]["groups"]["claim"], "groups");
    }
}
