//! The OIDC token endpoint under load: authorization codes redeemed for tokens, and refresh
//! tokens rotated, each posted once (wrk, benches/forms.lua), with an IdentityProvider signing
//! RS256 and another signing ES256. Codes come from the authorization endpoint with a session
//! of an IdP-initiated sign-in; refresh tokens from redeeming more codes.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, Patch};
use serde_json::{Value, json};

use super::support::operator::{EXTERNAL_URL, Operator, server_kubeconfig};
use super::support::wait_for;
use super::{
    acs_specs, bench_apply, controlled_namespace, env_number, idp_object, remove_namespace,
    session_cookie, signed_bodies, wrk_forms,
};

const CALLBACK: &str = "https://app.example.test/callback";

/// Both algorithms' figures: `rs256` and `es256`, each with `authorize`, `code` and `refresh`.
pub async fn run(
    client: &kube::Client,
    idp_key: &openssl::pkey::PKey<openssl::pkey::Private>,
    idp_cert: &str,
) -> Value {
    let (ns, _controller, idps, _) = controlled_namespace(client, "bench-oidc").await;
    let (_server, url) = Operator::start_server(
        &server_kubeconfig(client, &ns.name).await,
        &ns.name,
        &super::support::sqlite_url("bench-oidc"),
    );
    let mut out = serde_json::Map::new();
    for (name, algorithm) in [("rs256", "RS256"), ("es256", "ES256")] {
        let extra = json!({ "allowIdpInitiated": true, "users": { "provisioning": "justInTime" },
            "oidc": { "signingAlgorithm": algorithm } });
        idps.patch(
            name,
            &bench_apply(),
            &Patch::Apply(&idp_object(name, idp_cert, extra)),
        )
        .await
        .unwrap();
        let figures = measure(client, &ns.name, &url, name, idp_key, idp_cert).await;
        out.insert(name.to_owned(), figures);
    }
    remove_namespace(client, ns).await;
    Value::Object(out)
}

async fn measure(
    client: &kube::Client,
    ns: &str,
    url: &str,
    idp: &str,
    idp_key: &openssl::pkey::PKey<openssl::pkey::Private>,
    idp_cert: &str,
) -> Value {
    let clients: Api<sso_operator::api::OidcClient> = Api::namespaced(client.clone(), ns);
    let client_name = format!("app-{idp}");
    let object = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "OidcClient",
        "metadata": { "name": client_name },
        "spec": { "identityProviderRef": { "name": idp }, "redirectUris": [CALLBACK] } });
    clients
        .patch(&client_name, &bench_apply(), &Patch::Apply(&object))
        .await
        .unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let secret_name = format!("{client_name}-oidc-client");
    let secret = wait_for(Duration::from_secs(60), || async {
        let s = secrets.get_opt(&secret_name).await.ok()??;
        String::from_utf8(s.data?.get("clientSecret")?.0.clone()).ok()
    })
    .await
    .expect("the client secret");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();
    let base = format!("{url}/oidc/{ns}/{idp}");
    let token_url = format!("{base}/token");
    // Served once the client's secret is accepted (a missing grant type, not a bad client).
    wait_for(Duration::from_secs(60), || async {
        let r = http
            .post(&token_url)
            .basic_auth(&client_name, Some(&secret))
            .form(&[("x", "y")])
            .send()
            .await
            .ok()?;
        (r.status() == 400).then_some(())
    })
    .await
    .expect("the OpenID Provider serves the client");

    // A session from an IdP-initiated sign-in.
    let acs = format!("{EXTERNAL_URL}/saml/{ns}/{idp}/acs");
    let entity = format!("{EXTERNAL_URL}/saml/{ns}/{idp}/metadata");
    let key_pem = String::from_utf8(idp_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let body = signed_bodies(acs_specs(1, &key_pem, idp_cert, &acs, &entity, idp)).remove(0);
    let r = http
        .post(format!("{url}/saml/{ns}/{idp}/acs"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let session = session_cookie(&r, &format!("{ns}/{idp}"));

    let count = env_number("SSO_BENCH_OIDC_CODES", 12_000);
    let (first, authorize) = codes(&http, &base, &client_name, &session, count).await;
    let form = |code: &str| {
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}",
            form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
        )
    };
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{client_name}:{secret}")
        )
    );
    let bodies: Vec<String> = first.iter().map(|c| form(c)).collect();
    let code_grant = wrk_forms(&token_url, &bodies, 8, None, Some(&basic));

    // Refresh tokens: redeem another batch of codes, then rotate each token once.
    let (second, _) = codes(&http, &base, &client_name, &session, count).await;
    let refresh_tokens: Vec<String> = futures::stream::iter(second)
        .map(|code| {
            let (http, token_url, client_name, secret) = (
                http.clone(),
                token_url.clone(),
                client_name.clone(),
                secret.clone(),
            );
            async move {
                let r = http
                    .post(&token_url)
                    .basic_auth(&client_name, Some(&secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", CALLBACK),
                    ])
                    .send()
                    .await
                    .ok()?;
                let v: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
                v["refresh_token"].as_str().map(str::to_owned)
            }
        })
        .buffer_unordered(16)
        .filter_map(|t| async move { t })
        .collect()
        .await;
    let bodies: Vec<String> = refresh_tokens
        .iter()
        .map(|t| format!("grant_type=refresh_token&refresh_token={t}"))
        .collect();
    let refresh = wrk_forms(&token_url, &bodies, 8, None, Some(&basic));
    json!({
        "codes_prepared": bodies.len(),
        "authorize_per_second": authorize,
        "code": code_grant,
        "refresh": refresh,
    })
}

/// `count` authorization codes of `client` (scope with offline_access) from the authorization
/// endpoint with `session`, 16 requests at a time; and the rate they were issued at.
async fn codes(
    http: &reqwest::Client,
    base: &str,
    client: &str,
    session: &str,
    count: usize,
) -> (Vec<String>, f64) {
    let url = format!(
        "{base}/authorize?response_type=code&client_id={client}&scope=openid%20email%20groups%20offline_access&state=s&redirect_uri={}",
        form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let started = Instant::now();
    let codes: Vec<String> = futures::stream::iter(0..count)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http.get(&url).header("cookie", session).send().await.ok()?;
                let location = r.headers().get("location")?.to_str().ok()?.to_owned();
                let parsed = reqwest::Url::parse(&location).ok()?;
                parsed
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            }
        })
        .buffer_unordered(16)
        .filter_map(|c| async move { c })
        .collect()
        .await;
    let rate = codes.len() as f64 / started.elapsed().as_secs_f64();
    (codes, rate)
}
