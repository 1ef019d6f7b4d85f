//! The SCIM 2.0 server end to end: the real controller issues tokens on the local control
//! plane, the real `sso-operator server` serves them over HTTP, on SQLite and on PostgreSQL,
//! and the requests are the ones Okta and Microsoft Entra ID really send.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sso_operator::store::Store;
use support::operator::Stack;
use support::operator::{Operator, server_kubeconfig};
use support::{TestNamespace, wait_for};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Scim {
    _controller: Operator,
    server: Operator,
    client: Client,
    ns: TestNamespace,
    base: String,
    http: reqwest::Client,
    token: String,
    database_url: String,
}

impl Scim {
    async fn start(prefix: &str, database_url: String) -> Self {
        let Stack {
            client,
            ns,
            controller,
            server,
            url,
        } = Stack::start(prefix, &database_url, &[], &[]).await;
        let me = Self {
            _controller: controller,
            server,
            client,
            base: String::new(),
            ns,
            http: reqwest::Client::new(),
            token: String::new(),
            database_url,
        };
        me.apply_idp("okta").await;
        me.apply_token("okta", "okta").await;
        let token = me.wait_token("okta-scim-token").await;
        let base = format!("{url}/scim/v2/{}/okta", me.ns.name);
        let mut me = Self { base, token, ..me };
        // The server picks the compiled configuration up within seconds.
        let http = me.http.clone();
        let (base, token) = (me.base.clone(), me.token.clone());
        let ready = wait_for(Duration::from_secs(30), || {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            async move {
                let r = http
                    .get(format!("{base}/Users?startIndex=1&count=2"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .ok()?;
                (r.status() == StatusCode::OK).then_some(())
            }
        })
        .await;
        assert!(
            ready.is_some(),
            "the server never accepted the token\nserver log:\n{}",
            me.server.log_text()
        );
        me.http = http;
        me
    }

    async fn apply_idp(&self, name: &str) {
        let spec = json!({ "provider": "okta", "idp": { "ssoUrl": "https://idp.example.com/sso", "entityId": "https://idp.example.com", "certificates": [{ "pem": support::cert_pem("idp", -3600, 365 * 86_400) }] } });
        support::apply_identity_provider(&self.client, &self.ns.name, name, &spec).await;
    }

    async fn apply_token(&self, name: &str, idp: &str) {
        let spec = json!({ "identityProviderRef": { "name": idp } });
        support::apply_scim_token(&self.client, &self.ns.name, name, &spec).await;
    }

    /// The URLs in the IdentityProvider's status, once the controller has written them (the
    /// server may serve the compiled configuration before that).
    async fn service_provider(&self) -> sso_operator::api::identity_provider::ServiceProviderUrls {
        let idps: Api<sso_operator::api::IdentityProvider> =
            Api::namespaced(self.client.clone(), &self.ns.name);
        wait_for(Duration::from_secs(30), || async {
            idps.get("okta").await.ok()?.status?.service_provider
        })
        .await
        .expect("the controller writes the service-provider URLs into status")
    }

    async fn wait_token(&self, secret: &str) -> String {
        support::wait_for_token(&self.client, &self.ns.name, secret).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, body, &self.token).await
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn patch(&self, path: &str, ops: Value) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::PATCH,
            path,
            Some(json!({ "schemas": [PATCH_OP], "Operations": ops })),
        )
        .await
    }
}

fn okta_user(user_name: &str) -> Value {
    json!({
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": { "givenName": "Ada", "familyName": "Lovelace" },
        "emails": [{ "primary": true, "value": user_name, "type": "work" }],
        "displayName": "Ada Lovelace",
        "locale": "en-US",
        "externalId": "00u1abcd",
        "groups": [],
        "password": "correct horse battery staple",
        "active": true
    })
}

/// The users table as the database holds it: its column names and every text value of every
/// row, read with plain SQL rather than through the store.
async fn stored_users(database_url: &str) -> (Vec<String>, Vec<String>) {
    use sqlx::{Column, Row};
    Store::connect(database_url).await.unwrap();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT * FROM scim_users")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!rows.is_empty(), "no stored users");
    let columns = rows[0]
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let values = rows
        .iter()
        .flat_map(|row| {
            (0..row.len()).filter_map(move |i| row.try_get::<Option<String>, _>(i).ok().flatten())
        })
        .collect();
    (columns, values)
}

impl Scim {
    /// Pushes Ada as Okta does (`okta_user`) and returns her id.
    async fn create_ada(&self) -> String {
        let (status, created) = self.post("/Users", okta_user("Ada@Example.com")).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// Asserts that the server never wrote the bearer token into its log.
    fn assert_token_not_logged(&self) {
        assert!(
            !self.server.log_text().contains(&self.token),
            "the token was logged"
        );
    }
}

async fn okta_tests_the_credentials_and_creates_a_user_unique_in_any_case(database_url: &str) {
    let scim = Scim::start("scim-okta-create", database_url.to_owned()).await;
    // "Test API Credentials".
    let (status, list) = scim.get("/Users?startIndex=1&count=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(
        (list["totalResults"].clone(), list["startIndex"].clone()),
        (json!(0), json!(1))
    );

    // Provisioning: look up, then create.
    let (status, found) = scim
        .get("/Users?filter=userName%20eq%20%22Ada%40Example.com%22&startIndex=1&count=100")
        .await;
    assert_eq!(
        (status, found["totalResults"].clone()),
        (StatusCode::OK, json!(0)),
        "no result is an empty list, never 404"
    );
    let (status, created) = scim.post("/Users", okta_user("Ada@Example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("the created user has an id");
    assert_eq!(created["userName"], "Ada@Example.com");
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created["meta"]["version"], "W/\"1\"");
    assert!(
        created.get("password").is_none(),
        "a password is never returned"
    );
    let (status, dup) = scim.post("/Users", okta_user("ada@example.COM")).await;
    assert_eq!(
        (status, dup["scimType"].clone(), dup["status"].clone()),
        (StatusCode::CONFLICT, json!("uniqueness"), json!("409"))
    );
    let (_, found) = scim
        .get("/Users?filter=userName%20eq%20%22ada%40example.com%22")
        .await;
    assert_eq!(
        found["totalResults"], 1,
        "userName lookup is case-insensitive"
    );
    assert_eq!(
        found["Resources"][0]["userName"], "Ada@Example.com",
        "userName is returned exactly as sent"
    );

    scim.assert_token_not_logged();
}

support::on_each_database!(okta_tests_the_credentials_and_creates_a_user_unique_in_any_case);

async fn okta_updates_the_profile_deactivates_and_reactivates_a_user(database_url: &str) {
    let scim = Scim::start("scim-okta-update", database_url.to_owned()).await;
    let id = scim.create_ada().await;
    // Profile update: PUT with the whole resource.
    let mut updated = okta_user("Ada@Example.com");
    updated["name"]["familyName"] = json!("King");
    updated.as_object_mut().unwrap().remove("password");
    let (status, put) = scim.put(&format!("/Users/{id}"), updated).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["name"]["familyName"], "King");
    assert_eq!(put["meta"]["version"], "W/\"2\"");

    // Deactivate and reactivate with path-less replace; inactive users are still returned.
    let (status, off) = scim
        .patch(
            &format!("/Users/{id}"),
            json!([{ "op": "replace", "value": { "active": false } }]),
        )
        .await;
    assert_eq!(
        (status, off["active"].clone()),
        (StatusCode::OK, json!(false)),
        "{off}"
    );
    let (_, listed) = scim
        .get("/Users?filter=userName%20eq%20%22Ada%40Example.com%22")
        .await;
    assert_eq!(listed["Resources"][0]["active"], false);
    let (_, on) = scim
        .patch(
            &format!("/Users/{id}"),
            json!([{ "op": "replace", "value": { "active": true } }]),
        )
        .await;
    assert_eq!(on["active"], true);

    scim.assert_token_not_logged();
}

support::on_each_database!(okta_updates_the_profile_deactivates_and_reactivates_a_user);

async fn okta_syncs_a_password_that_is_never_returned_nor_stored(database_url: &str) {
    let scim = Scim::start("scim-okta-password", database_url.to_owned()).await;
    let id = scim.create_ada().await;
    // Password change (Okta's Sync Password): accepted, never returned, and kept nowhere.
    let (status, pw) = scim
        .patch(
            &format!("/Users/{id}"),
            json!([{ "op": "replace", "value": { "password": "new secret" } }]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(pw.get("password").is_none());
    let (columns, values) = stored_users(&scim.database_url).await;
    assert!(
        !columns.iter().any(|c| c.contains("password")),
        "the users table keeps a password column: {columns:?}"
    );
    assert!(
        !values
            .iter()
            .any(|v| v.contains("new secret") || v.contains("$argon2")),
        "a password or its hash is stored"
    );
    let (_, config) = scim.get("/ServiceProviderConfig").await;
    assert_eq!(config["changePassword"]["supported"], false, "{config}");

    scim.assert_token_not_logged();
}

support::on_each_database!(okta_syncs_a_password_that_is_never_returned_nor_stored);

async fn okta_pushes_a_group_renames_it_and_sets_its_members_by_patch_and_put(database_url: &str) {
    let scim = Scim::start("scim-okta-groups", database_url.to_owned()).await;
    let id = scim.create_ada().await;
    // Groups: push, rename, membership by PATCH, then by PUT.
    let (_, bob) = scim.post("/Users", okta_user("bob@example.com")).await;
    let bob = bob["id"].as_str().unwrap().to_owned();
    let (status, group) = scim.post("/Groups", json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": [] })).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let gid = group["id"].as_str().unwrap().to_owned();
    let (_, g) = scim.patch(&format!("/Groups/{gid}"), json!([{ "op": "add", "path": "members", "value": [{ "value": id, "display": "Ada" }, { "value": bob, "display": "Bob" }] }])).await;
    assert_eq!(g["members"].as_array().unwrap().len(), 2, "{g}");
    let (_, g) = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!([{ "op": "remove", "path": format!("members[value eq \"{bob}\"]") }]),
        )
        .await;
    let members: Vec<Value> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].clone())
        .collect();
    assert_eq!(members, vec![json!(id)], "{g}");
    let (_, g) = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!([{ "op": "replace", "value": { "id": gid, "displayName": "Engineering EU" } }]),
        )
        .await;
    assert_eq!(g["displayName"], "Engineering EU");
    let (_, user) = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(user["groups"][0]["value"], gid, "a user lists its groups");
    let (status, g) = scim.put(&format!("/Groups/{gid}"), json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering EU", "members": [{ "value": bob }] })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(g["members"][0]["value"], bob);
    let (_, lean) = scim
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert!(lean.get("members").is_none() && lean["displayName"] == "Engineering EU");
    let (status, _) = scim
        .call(reqwest::Method::DELETE, &format!("/Groups/{gid}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(
        (status, gone["status"].clone()),
        (StatusCode::NOT_FOUND, json!("404"))
    );

    scim.assert_token_not_logged();
}

support::on_each_database!(okta_pushes_a_group_renames_it_and_sets_its_members_by_patch_and_put);

async fn okta_imports_every_user_in_stable_pages_and_the_status_counts_them(database_url: &str) {
    let scim = Scim::start("scim-okta-import", database_url.to_owned()).await;
    scim.create_ada().await;
    scim.post("/Users", okta_user("bob@example.com")).await;
    // Import: pagination through every user in a stable order.
    for i in 0..5 {
        scim.post("/Users", okta_user(&format!("user{i}@example.com")))
            .await;
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let (_, page) = scim
            .get(&format!("/Users?startIndex={start}&count=2"))
            .await;
        assert_eq!(page["totalResults"], 7);
        let items = page["Resources"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        start += 2;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7));

    // The IdentityProvider's status shows provisioning at work (kubectl get idp).
    let idps: Api<sso_operator::api::IdentityProvider> =
        Api::namespaced(scim.client.clone(), &scim.ns.name);
    let figures = wait_for(Duration::from_secs(30), || async {
        let scim_status = idps.get("okta").await.ok()?.status?.scim?;
        (scim_status.users == 7).then_some(scim_status)
    })
    .await
    .expect("status.scim shows the 7 users");
    assert_eq!(figures.groups, 0);
    assert!(figures.last_request_time.is_some());
    // The controller's own status is untouched by the server's writes. The server serves a
    // compiled configuration before the controller has written Ready, so wait for it.
    let ready = wait_for(Duration::from_secs(30), || async {
        let status = idps.get("okta").await.ok()?.status?;
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && status.scim.is_some_and(|s| s.users == 7)).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "Ready and the SCIM figures side by side in the IdentityProvider's status"
    );

    scim.assert_token_not_logged();
}

support::on_each_database!(okta_imports_every_user_in_stable_pages_and_the_status_counts_them);

async fn entra_provisions_users_and_groups_in_both_patch_dialects(database_url: &str) {
    let scim = Scim::start("scim-entra", database_url.to_owned()).await;
    // "Test Connection": a random userName → empty list.
    let (status, empty) = scim
        .get("/Users?filter=userName+eq+%22a1b2c3d4-e5f6%22")
        .await;
    assert_eq!(
        (status, empty["totalResults"].clone()),
        (StatusCode::OK, json!(0))
    );
    let body = json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": "e-123", "userName": "grace@contoso.com", "active": true,
        "displayName": "Grace Hopper", "emails": [{ "primary": true, "type": "work", "value": "grace@contoso.com" }],
        "name": { "formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace" },
        ENTERPRISE: { "department": "Navy", "employeeNumber": "1906" },
        "meta": { "resourceType": "User" },
        "roles": []
    });
    let (status, created) = scim.post("/Users", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );
    let (_, by_ext) = scim.get("/Users?filter=externalId+eq+%22e-123%22").await;
    assert_eq!(by_ext["totalResults"], 1);
    // Default dialect: capitalised ops, string booleans, filtered paths creating elements.
    let (status, patched) = scim
        .patch(
            &format!("/Users/{id}"),
            json!([
                { "op": "Replace", "path": "active", "value": "False" },
                { "op": "Add", "path": "addresses[type eq \"work\"].formatted", "value": "1 Navy Way" },
                { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "grace.hopper@contoso.com" },
                { "op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Computing" }
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["addresses"][0]["formatted"], "1 Navy Way");
    assert_eq!(patched["emails"][0]["value"], "grace.hopper@contoso.com");
    assert_eq!(patched[ENTERPRISE]["department"], "Computing");
    let (status, by_email) = scim.get("/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22Grace.Hopper%40contoso.com%22").await;
    assert_eq!(
        (status, by_email["totalResults"].clone()),
        (StatusCode::OK, json!(1)),
        "{by_email}"
    );
    // aadOptscim062020 dialect: lowercase ops, real booleans, path-less dotted keys.
    let (_, patched) = scim.patch(&format!("/Users/{id}"), json!([{ "op": "replace", "value": { "active": true, "name.givenName": "Amazing Grace" } }])).await;
    assert_eq!(
        (
            patched["active"].clone(),
            patched["name"]["givenName"].clone()
        ),
        (json!(true), json!("Amazing Grace"))
    );
    // Group push exactly as Entra sends it (with Microsoft's ADSCIM schema URN), lookup with
    // excludedAttributes=members, rename, membership add and remove by value.
    let (status, g) = scim
        .post(
            "/Groups",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "g-1",
                "displayName": "Admirals",
                "meta": { "resourceType": "Group" }
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let (_, found) = scim
        .get("/Groups?filter=displayName+eq+%22admirals%22&excludedAttributes=members")
        .await;
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none());
    let (_, g) = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": id }] }]),
        )
        .await;
    assert_eq!(g["members"].as_array().unwrap().len(), 1, "{g}");
    let (status, g) = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!([{ "op": "Replace", "path": "displayName", "value": "Admirals of the Fleet" }]),
        )
        .await;
    assert_eq!(
        (status, g["displayName"].clone()),
        (StatusCode::OK, json!("Admirals of the Fleet")),
        "{g}"
    );
    let (_, g) = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!([{ "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": id }] }]),
        )
        .await;
    assert_eq!(g["members"], json!([]));
    // DELETE of a user.
    let (status, _) = scim
        .call(reqwest::Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    scim.assert_token_not_logged();
}

support::on_each_database!(entra_provisions_users_and_groups_in_both_patch_dialects);

async fn malformed_unsupported_and_stale_requests_get_scim_errors(database_url: &str) {
    let scim = Scim::start("scim-bad-input", database_url.to_owned()).await;
    let url = format!("{}/Users", scim.base);
    let send = |body: Vec<u8>| {
        scim.http
            .post(&url)
            .bearer_auth(&scim.token)
            .header("content-type", "application/scim+json")
            .body(body)
            .send()
    };
    let r = send(b"{not json".to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["scimType"], "invalidSyntax");
    let r = send(vec![b' '; 2 * 1024 * 1024]).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = scim
        .post(
            "/Users",
            json!({ "schemas": ["urn:example:unknown"], "userName": "x" }),
        )
        .await;
    assert_eq!(
        (status, body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidSyntax"))
    );
    let (status, body) = scim
        .post(
            "/Users",
            json!({ "schemas": [CORE_USER], "userName": ["not", "a", "string"] }),
        )
        .await;
    assert_eq!(
        (status, body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidValue"))
    );
    let (status, body) = scim.get("/Users?filter=userName%20regex%20%22.*%22").await;
    assert_eq!(
        (status, body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidFilter"))
    );
    let (status, body) = scim.get("/Users?filter=title%20eq%20%22x%22").await;
    assert_eq!(
        (status, body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidFilter")),
        "unsupported attributes are refused, not ignored"
    );
    let (status, body) = scim.get("/Users?count=1000000000").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["itemsPerPage"].as_i64().unwrap() <= 200);
    let (status, _) = scim.get("/Users/does-not-exist").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = scim
        .patch(
            "/Users/does-not-exist",
            json!([{ "op": "replace", "value": { "active": false } }]),
        )
        .await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::NOT_FOUND, json!("404"))
    );
    // If-Match with a stale ETag is refused with 412.
    let (_, u) = scim.post("/Users", okta_user("etag@example.com")).await;
    let r = scim
        .http
        .put(format!("{}/Users/{}", scim.base, u["id"].as_str().unwrap()))
        .bearer_auth(&scim.token)
        .header("if-match", "W/\"99\"")
        .body(okta_user("etag@example.com").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // Discovery endpoints describe what is implemented.
    let (status, spc) = scim.get("/ServiceProviderConfig").await;
    assert_eq!(
        (
            status,
            spc["patch"]["supported"].clone(),
            spc["bulk"]["supported"].clone()
        ),
        (StatusCode::OK, json!(true), json!(false))
    );
    let (status, types) = scim.get("/ResourceTypes").await;
    assert_eq!(
        (status, types["totalResults"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (status, _) = scim.get("/Schemas").await;
    assert_eq!(status, StatusCode::OK);
    scim.assert_token_not_logged();
}

support::on_each_database!(malformed_unsupported_and_stale_requests_get_scim_errors);

async fn wrong_foreign_guessed_and_revoked_tokens_are_refused(database_url: &str) {
    let scim = Scim::start("scim-tokens", database_url.to_owned()).await;
    // Wrong token, no token, and a token of another IdentityProvider: 401 with a SCIM body.
    let (status, body) = scim
        .call_with(reqwest::Method::GET, "/Users", None, "ssoscim_wrong")
        .await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::UNAUTHORIZED, json!("401"))
    );
    let r = scim
        .http
        .get(format!("{}/Users", scim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    scim.apply_idp("entra").await;
    scim.apply_token("entra", "entra").await;
    let other = scim.wait_token("entra-scim-token").await;
    let (status, _) = scim
        .call_with(reqwest::Method::GET, "/Users", None, &other)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a token of another IdentityProvider must be refused"
    );
    // Guessing is limited (429 after 30 failures a minute), but the IdP's valid token keeps working.
    let mut limited = false;
    for _ in 0..40 {
        let (status, _) = scim
            .call_with(reqwest::Method::GET, "/Users", None, "ssoscim_guess")
            .await;
        limited |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "repeated failures must be limited");
    let (status, _) = scim.get("/Users").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a flood of bad tokens must not lock the IdP out"
    );
    // Revocation: deleting the ScimToken refuses it within seconds.
    let tokens: Api<sso_operator::api::ScimToken> =
        Api::namespaced(scim.client.clone(), &scim.ns.name);
    tokens
        .delete("okta", &DeleteParams::default())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let refused = wait_for(Duration::from_secs(20), || async {
        // 401, or 429 while the flood above is still being limited: refused either way.
        let (status, _) = scim.get("/Users").await;
        matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
        )
        .then_some(())
    })
    .await;
    assert!(refused.is_some(), "a revoked token kept working");
    eprintln!("revoked token refused after {:?}", started.elapsed());
    scim.assert_token_not_logged();
}

support::on_each_database!(wrong_foreign_guessed_and_revoked_tokens_are_refused);

#[tokio::test]
async fn two_server_replicas_on_postgresql_lose_no_concurrent_update() {
    let scim = Scim::start("scim-replicas", support::postgres_url()).await;
    let (second, second_url) = Operator::start_server(
        &server_kubeconfig(&scim.client, &scim.ns.name).await,
        &scim.ns.name,
        &scim.database_url,
    );
    let second_base = format!("{second_url}/scim/v2/{}/okta", scim.ns.name);
    let ready = wait_for(Duration::from_secs(30), || async {
        let r = scim
            .http
            .get(format!("{second_base}/Users?count=1"))
            .bearer_auth(&scim.token)
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "second replica never served:\n{}",
        second.log_text()
    );
    let (_, group) = scim.post("/Groups", json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone" })).await;
    let gid = group["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..20 {
        let (_, u) = scim
            .post("/Users", okta_user(&format!("member{i}@example.com")))
            .await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    // 20 membership PATCHes at once, alternating between the two replicas.
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let base = if i % 2 == 0 {
            scim.base.clone()
        } else {
            second_base.clone()
        };
        let (http, token, gid, id) = (
            scim.http.clone(),
            scim.token.clone(),
            gid.clone(),
            id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": id }] }] });
            http.patch(format!("{base}/Groups/{gid}")).bearer_auth(&token).body(body.to_string()).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (_, g) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(
        g["members"].as_array().unwrap().len(),
        20,
        "a concurrent membership change was lost: {g}"
    );

    // General PATCHes (read, apply, compare-and-swap) on one user from both replicas at once.
    let uid = ids[0].clone();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let base = if i % 2 == 0 {
            scim.base.clone()
        } else {
            second_base.clone()
        };
        let (http, token, uid) = (scim.http.clone(), scim.token.clone(), uid.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "emails", "value": [{ "value": format!("alias{i}@example.com"), "type": "other" }] }] });
            http.patch(format!("{base}/Users/{uid}")).bearer_auth(&token).body(body.to_string()).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (_, u) = scim.get(&format!("/Users/{uid}")).await;
    assert_eq!(
        u["emails"].as_array().unwrap().len(),
        11,
        "a concurrent PATCH was lost: {u}"
    );
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9_of_the_server_on_sqlite() {
    let mut scim = Scim::start("scim-kill", support::sqlite_url("kill")).await;
    let (status, created) = scim.post("/Users", okta_user("durable@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    scim.server.kill();
    let (server, url) = Operator::start_server(
        &server_kubeconfig(&scim.client, &scim.ns.name).await,
        &scim.ns.name,
        &scim.database_url,
    );
    scim.server = server;
    scim.base = format!("{url}/scim/v2/{}/okta", scim.ns.name);
    let id = created["id"].as_str().unwrap().to_owned();
    let found = wait_for(Duration::from_secs(30), || async {
        // The restarted server may not listen yet: connection errors mean "not yet".
        let r = scim
            .http
            .get(format!("{}/Users/{id}", scim.base))
            .bearer_auth(&scim.token)
            .send()
            .await
            .ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        serde_json::from_str::<Value>(&r.text().await.ok()?).ok()
    })
    .await
    .expect("the user acknowledged before kill -9 is there after the restart");
    assert_eq!(found["userName"], "durable@example.com");
}

#[tokio::test]
async fn rotated_out_and_expired_tokens_are_refused_within_seconds() {
    let scim = Scim::start("scim-token-life", support::sqlite_url("tokens")).await;
    let tokens: Api<sso_operator::api::ScimToken> =
        Api::namespaced(scim.client.clone(), &scim.ns.name);
    let apply = |name: &str, spec: Value| {
        let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "ScimToken", "metadata": { "name": name }, "spec": spec });
        let tokens = tokens.clone();
        let name = name.to_owned();
        async move {
            tokens
                .patch(
                    &name,
                    &PatchParams::apply("tests").force(),
                    &Patch::Apply(&obj),
                )
                .await
                .unwrap()
        }
    };
    let works = |token: String| {
        let scim = &scim;
        async move {
            scim.call_with(reqwest::Method::GET, "/Users?count=1", None, &token)
                .await
                .0
                == StatusCode::OK
        }
    };
    let until = |token: String, want: bool| {
        let scim = &scim;
        async move {
            wait_for(Duration::from_secs(30), || {
                let token = token.clone();
                async move {
                    (scim
                        .call_with(reqwest::Method::GET, "/Users?count=1", None, &token)
                        .await
                        .0
                        == StatusCode::OK)
                        .eq(&want)
                        .then_some(())
                }
            })
            .await
            .is_some()
        }
    };

    // Rotation: the old token works during the overlap, then stops; the new one works.
    apply(
        "rotating",
        json!({ "identityProviderRef": { "name": "okta" }, "rotation": { "overlap": "5s" } }),
    )
    .await;
    let old = scim.wait_token("rotating-scim-token").await;
    assert!(
        until(old.clone(), true).await,
        "the issued token never worked"
    );
    tokens
        .patch(
            "rotating",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "sso-operator.dev/rotate": "now" } } }),
            ),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(scim.client.clone(), &scim.ns.name);
    let new = wait_for(Duration::from_secs(20), || async {
        let v = String::from_utf8(
            secrets
                .get("rotating-scim-token")
                .await
                .ok()?
                .data?
                .get("token")?
                .0
                .clone(),
        )
        .ok()?;
        (v != old).then_some(v)
    })
    .await
    .expect("rotation issues a new token");
    assert!(until(new.clone(), true).await, "the new token never worked");
    assert!(
        works(old.clone()).await,
        "the old token must keep working during the overlap"
    );
    assert!(
        until(old, false).await,
        "the old token kept working after the overlap"
    );
    assert!(works(new).await);

    // Expiry.
    let at = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(8)).to_string();
    apply(
        "expiring",
        json!({ "identityProviderRef": { "name": "okta" }, "expiresAt": at }),
    )
    .await;
    let expiring = scim.wait_token("expiring-scim-token").await;
    assert!(
        until(expiring.clone(), true).await,
        "the token never worked before its expiry"
    );
    assert!(
        until(expiring, false).await,
        "the token kept working after expiresAt"
    );
}

#[tokio::test]
async fn sp_metadata_is_served_with_the_generated_certificate_and_disappears_when_disabled() {
    let scim = Scim::start("saml-metadata", support::sqlite_url("metadata")).await;
    let url = scim.base.replace("/scim/v2/", "/saml/") + "/metadata";
    let r = scim.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
    let xml = r.text().await.unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed metadata");
    let idps: Api<sso_operator::api::IdentityProvider> =
        Api::namespaced(scim.client.clone(), &scim.ns.name);
    let sp = scim.service_provider().await;
    assert_eq!(
        doc.root_element().attribute("entityID"),
        Some(sp.entity_id.as_str())
    );
    let acs = doc
        .descendants()
        .find(|n| n.tag_name().name() == "AssertionConsumerService")
        .unwrap();
    assert_eq!(acs.attribute("Location"), Some(sp.acs_url.as_str()));
    // The certificate is the one in the SP key Secret.
    let secrets: Api<Secret> = Api::namespaced(scim.client.clone(), &scim.ns.name);
    let pem = String::from_utf8(
        secrets.get("okta-saml-sp").await.unwrap().data.unwrap()["tls.crt"]
            .0
            .clone(),
    )
    .unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let certs: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "X509Certificate")
        .filter_map(|n| n.text())
        .collect();
    assert!(
        certs.contains(&body.as_str()),
        "metadata must carry the SP certificate"
    );
    assert!(!xml.contains("PRIVATE KEY"));

    // Disabled: not served any more, within seconds.
    let patch = json!({ "spec": { "disabled": true } });
    idps.patch("okta", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let gone = wait_for(Duration::from_secs(20), || async {
        (scim.http.get(&url).send().await.ok()?.status() == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "a disabled IdentityProvider's metadata is still served"
    );
    let (status, _) = scim.get("/Users").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled IdentityProvider refuses SCIM too"
    );
}

/// Follows nothing: returns the status, Location and Set-Cookie of a GET.
async fn get_no_redirect(url: &str) -> (StatusCode, Option<String>, Option<String>, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(url).send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, location, cookie) = (r.status(), header("location"), header("set-cookie"));
    (status, location, cookie, r.text().await.unwrap_or_default())
}

fn query_param(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn sp_initiated_login_redirects_with_a_bound_authn_request_and_refuses_foreign_redirects() {
    use std::io::Read;
    let scim = Scim::start("saml-login", support::sqlite_url("login")).await;
    let login = scim.base.replace("/scim/v2/", "/saml/") + "/login";
    let idps: Api<sso_operator::api::IdentityProvider> =
        Api::namespaced(scim.client.clone(), &scim.ns.name);
    let sp = scim.service_provider().await;

    let (status, location, cookie, _) =
        get_no_redirect(&format!("{login}?redirect=%2Fapp%2Fhome")).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = reqwest::Url::parse(&location.expect("a Location")).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        Some("https://idp.example.com/sso")
    );
    let request = query_param(&location, "SAMLRequest").expect("SAMLRequest");
    let relay = query_param(&location, "RelayState").expect("RelayState");
    let deflated =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, request).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "AuthnRequest");
    let id = root.attribute("ID").unwrap();
    assert!(
        id.starts_with('_') && id.len() >= 33,
        "request IDs start with _ and carry >= 128 bits: {id}"
    );
    assert_eq!(
        relay, id,
        "RelayState is an opaque key, not the redirect URL"
    );
    assert_eq!(
        root.attribute("Destination"),
        Some("https://idp.example.com/sso")
    );
    assert_eq!(
        root.attribute("AssertionConsumerServiceURL"),
        Some(sp.acs_url.as_str())
    );
    let issuer = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Issuer")
        .and_then(|n| n.text());
    assert_eq!(issuer, Some(sp.entity_id.as_str()));
    let policy = doc
        .descendants()
        .find(|n| n.tag_name().name() == "NameIDPolicy")
        .unwrap();
    assert_eq!(
        policy.attribute("Format"),
        Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
    );
    let cookie = cookie.expect("a browser-binding cookie");
    // Host-only: no sibling host can plant the cookie of a sign-in it started.
    assert!(cookie.starts_with("__Host-sso_login_"), "{cookie}");
    assert!(!cookie.contains("Domain="), "{cookie}");
    for part in ["HttpOnly", "Secure", "SameSite=None", "Path=/;"] {
        assert!(cookie.contains(part), "cookie lacks {part}: {cookie}");
    }
    // The sign-in's state travels sealed in the cookie: nothing readable, nothing stored.
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert!(value.starts_with("v1."), "{value}");
    assert!(!value.contains("app") && !value.contains(id), "{value}");

    // Redirects outside the allow-list: "Invalid RelayState", and no redirect.
    for target in [
        "https%3A%2F%2Fevil.example.com%2F",
        "%2F%2Fevil.example.com%2F",
        "javascript%3Aalert(1)",
    ] {
        let (status, location, _, body) =
            get_no_redirect(&format!("{login}?redirect={target}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}");
        assert!(location.is_none(), "{target} must not redirect");
        assert!(body.contains("Invalid RelayState"), "{body}");
    }

    // Signed AuthnRequests: verified here with OpenSSL against the SP certificate.
    let patch = json!({ "spec": { "saml": { "signAuthnRequests": true, "forceAuthn": true } } });
    idps.patch("okta", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let signed = wait_for(Duration::from_secs(20), || async {
        let (_, location, _, _) = get_no_redirect(&login).await;
        let url = reqwest::Url::parse(&location?).ok()?;
        query_param(&url, "Signature").map(|_| url)
    })
    .await
    .expect("requests are signed once signAuthnRequests is set");
    let raw = signed.query().unwrap();
    let signed_part: Vec<&str> = raw
        .split('&')
        .filter(|p| !p.starts_with("Signature="))
        .collect();
    let signature = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        query_param(&signed, "Signature").unwrap(),
    )
    .unwrap();
    assert_eq!(
        query_param(&signed, "SigAlg").as_deref(),
        Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    );
    let secrets: Api<Secret> = Api::namespaced(scim.client.clone(), &scim.ns.name);
    let cert = secrets.get("okta-saml-sp").await.unwrap().data.unwrap()["tls.crt"]
        .0
        .clone();
    let key = openssl::x509::X509::from_pem(&cert)
        .unwrap()
        .public_key()
        .unwrap();
    let mut verifier =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    verifier.update(signed_part.join("&").as_bytes()).unwrap();
    assert!(
        verifier.verify(&signature).unwrap(),
        "the AuthnRequest signature does not verify with the SP certificate"
    );
    let request = query_param(&signed, "SAMLRequest").unwrap();
    let deflated =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, request).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .unwrap();
    assert!(xml.contains("ForceAuthn=\"true\""), "{xml}");
}

const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

impl Scim {
    /// A request with exactly the given content type and body, for what the JSON helpers
    /// cannot send.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<String>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.expect("request")
    }

    /// The path of a `meta.location` under this endpoint's base URL (the configured external
    /// URL differs from the address the test talks to).
    fn relative(&self, location: &str) -> String {
        let marker = format!("/scim/v2/{}/okta", self.ns.name);
        let at = location
            .find(&marker)
            .unwrap_or_else(|| panic!("{location} is not under {marker}"));
        location[at + marker.len()..].to_owned()
    }
}

/// Asserts that `r` is a SCIM error with `status` and returns its body.
async fn scim_error(r: reqwest::Response, status: StatusCode, what: &str) -> Value {
    assert_eq!(r.status(), status, "{what}");
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.unwrap_or_default();
    assert!(
        content_type.starts_with("application/scim+json"),
        "{what}: content type {content_type:?}, body {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{what}: the body is not JSON: {text}"));
    assert_eq!(body["schemas"], json!([ERROR]), "{what}: {body}");
    assert_eq!(
        body["status"],
        json!(status.as_u16().to_string()),
        "{what}: {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: {body}"
    );
    body
}

fn user_names(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources in {list}"))
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn entra_group_push_and_unmodelled_extension_schemas_are_accepted() {
    let scim = Scim::start("scim-ext", support::postgres_url()).await;
    // Entra's group creation, exactly as its provisioning service sends it.
    let (status, group) = scim
        .post(
            "/Groups",
            json!({
                "schemas": [CORE_GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": { "resourceType": "Group" }
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    assert_eq!(group["schemas"], json!([CORE_GROUP]));
    assert_eq!(group["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    assert_eq!(group["members"], json!([]));
    assert_eq!(group["meta"]["resourceType"], "Group");
    // A user with the enterprise extension and one the server does not model: the request
    // succeeds, the enterprise attributes are stored, the others are ignored.
    let custom = "urn:ietf:params:scim:schemas:extension:contoso:2.0:User";
    let (status, user) = scim
        .post(
            "/Users",
            json!({
                "schemas": [CORE_USER, ENTERPRISE, custom],
                "userName": "lin@contoso.com", "active": true,
                ENTERPRISE: { "department": "Research" },
                custom: { "badge": "7" }
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user[ENTERPRISE]["department"], "Research");
    assert!(user.get(custom).is_none(), "{user}");
    assert_eq!(user["schemas"], json!([CORE_USER, ENTERPRISE]));
    let id = user["id"].as_str().unwrap().to_owned();
    let (status, patched) = scim
        .patch(
            &format!("/Users/{id}"),
            json!([{ "op": "Add", "path": format!("{custom}:badge"), "value": "8" },
                   { "op": "replace", "value": { format!("{custom}:badge"): "9", "displayName": "Lin" } }]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["displayName"], "Lin");
    assert!(!patched.to_string().contains("badge"), "{patched}");
    let (_, fetched) = scim.get(&format!("/Users/{id}")).await;
    assert!(!fetched.to_string().contains("badge"), "{fetched}");
    // The core schema must still be there.
    let (status, body) = scim
        .post(
            "/Groups",
            json!({ "schemas": ["http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"], "displayName": "x" }),
        )
        .await;
    assert_eq!(
        (status, body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidSyntax")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains(CORE_GROUP),
        "{body}"
    );
}

#[tokio::test]
async fn discovery_resources_are_served_by_id_with_full_schema_definitions() {
    let scim = Scim::start("scim-discovery", support::postgres_url()).await;
    let (status, types) = scim.get("/ResourceTypes").await;
    assert_eq!(status, StatusCode::OK);
    for t in types["Resources"].as_array().unwrap() {
        let location = t["meta"]["location"].as_str().unwrap();
        let (status, one) = scim.get(&scim.relative(location)).await;
        assert_eq!(status, StatusCode::OK, "{location}: {one}");
        assert_eq!(&one, t, "{location}");
        assert_eq!(one["meta"]["resourceType"], "ResourceType");
    }
    let (status, user_type) = scim.get("/ResourceTypes/User").await;
    assert_eq!(
        (status, user_type["schema"].clone()),
        (StatusCode::OK, json!(CORE_USER))
    );
    let (_, group_type) = scim.get("/ResourceTypes/Group").await;
    assert_eq!(group_type["endpoint"], "/Groups");
    scim_error(
        scim.raw(reqwest::Method::GET, "/ResourceTypes/Printer", None, None)
            .await,
        StatusCode::NOT_FOUND,
        "unknown resource type",
    )
    .await;

    let (status, schemas) = scim.get("/Schemas").await;
    assert_eq!(status, StatusCode::OK);
    let listed = schemas["Resources"].as_array().unwrap();
    assert_eq!(schemas["totalResults"], json!(listed.len()));
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in [CORE_USER, CORE_GROUP, ENTERPRISE] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    fn check_attribute(schema: &str, a: &Value) {
        for key in [
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
        ] {
            assert!(
                a.get(key).is_some(),
                "{schema}: {} has no {key}: {a}",
                a["name"]
            );
        }
        match a["type"].as_str().unwrap() {
            "complex" => {
                let subs = a["subAttributes"].as_array();
                assert!(subs.is_some_and(|s| !s.is_empty()), "{schema}: {a}");
                for s in subs.unwrap() {
                    check_attribute(schema, s);
                }
            }
            "reference" => assert!(
                a["referenceTypes"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()),
                "{schema}: {a}"
            ),
            _ => {}
        }
    }
    for s in listed {
        let id = s["id"].as_str().unwrap();
        assert_eq!(s["meta"]["resourceType"], "Schema");
        let location = s["meta"]["location"].as_str().unwrap();
        assert!(location.ends_with(&format!("/Schemas/{id}")), "{location}");
        let (status, one) = scim.get(&scim.relative(location)).await;
        assert_eq!((status, &one), (StatusCode::OK, s), "{location}");
        for a in s["attributes"].as_array().unwrap() {
            check_attribute(id, a);
        }
    }
    let (_, user) = scim.get(&format!("/Schemas/{CORE_USER}")).await;
    let attr = |name: &str| {
        user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in the User schema"))
            .clone()
    };
    assert_eq!(
        (
            attr("password")["returned"].clone(),
            attr("password")["mutability"].clone()
        ),
        (json!("never"), json!("writeOnly"))
    );
    assert_eq!(attr("groups")["mutability"], "readOnly");
    assert_eq!(
        (
            attr("id")["mutability"].clone(),
            attr("id")["returned"].clone()
        ),
        (json!("readOnly"), json!("always"))
    );
    assert_eq!(
        (
            attr("userName")["required"].clone(),
            attr("userName")["uniqueness"].clone()
        ),
        (json!(true), json!("server"))
    );
    assert_eq!(attr("emails")["multiValued"], true);
    scim_error(
        scim.raw(
            reqwest::Method::GET,
            "/Schemas/urn:example:nothing",
            None,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown schema",
    )
    .await;
}

#[tokio::test]
async fn every_error_under_the_scim_base_is_a_scim_error() {
    let scim = Scim::start("scim-errors", support::postgres_url()).await;
    use reqwest::Method;
    let user = |name: &str| Some(okta_user(name).to_string());
    for (method, path, what) in [
        (Method::GET, "/Printers", "unknown resource type"),
        (Method::GET, "/Users/a/b", "path below a resource"),
        (Method::GET, "/", "the base itself"),
    ] {
        scim_error(
            scim.raw(method, path, None, None).await,
            StatusCode::NOT_FOUND,
            what,
        )
        .await;
    }
    let body = scim_error(
        scim.raw(Method::GET, "/Users/%FF%FE", None, None).await,
        StatusCode::BAD_REQUEST,
        "an id that is not UTF-8",
    )
    .await;
    assert_eq!(body["scimType"], "invalidSyntax");
    let r = scim.raw(Method::DELETE, "/Users", None, None).await;
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    scim_error(r, StatusCode::METHOD_NOT_ALLOWED, "DELETE on /Users").await;
    assert!(
        allow
            .as_deref()
            .is_some_and(|a| a.contains("GET") && a.contains("POST")),
        "{allow:?}"
    );
    scim_error(
        scim.raw(
            Method::PUT,
            "/ServiceProviderConfig",
            Some("application/scim+json"),
            Some("{}".into()),
        )
        .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "PUT on ServiceProviderConfig",
    )
    .await;
    for t in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let body = scim_error(
            scim.raw(Method::POST, "/Users", Some(t), user("ct@example.com"))
                .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            t,
        )
        .await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("application/scim+json"),
            "{body}"
        );
    }
    // What Okta and Entra send.
    for (i, t) in [
        "application/scim+json",
        "application/scim+json; charset=utf-8",
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ]
    .iter()
    .enumerate()
    {
        let r = scim
            .raw(
                Method::POST,
                "/Users",
                Some(t),
                user(&format!("ct{i}@example.com")),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{t}");
    }
    let body = scim_error(
        scim.raw(
            Method::POST,
            "/Users",
            Some("application/scim+json"),
            Some("{not json".into()),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad JSON",
    )
    .await;
    assert_eq!(body["scimType"], "invalidSyntax");
    let r = scim
        .raw(
            Method::POST,
            "/Users",
            Some("application/scim+json"),
            Some(" ".repeat(2 * 1024 * 1024)),
        )
        .await;
    scim_error(r, StatusCode::PAYLOAD_TOO_LARGE, "body too large").await;
    let r = scim
        .http
        .get(format!("{}/Users", scim.base))
        .send()
        .await
        .unwrap();
    scim_error(r, StatusCode::UNAUTHORIZED, "no token").await;
    let r = scim
        .http
        .get(format!("{}/Users", scim.base.replace("/okta", "/nobody")))
        .bearer_auth(&scim.token)
        .send()
        .await
        .unwrap();
    scim_error(r, StatusCode::UNAUTHORIZED, "unknown IdentityProvider").await;
    let root = scim.base.split("/scim/v2/").next().unwrap().to_owned();
    for path in ["/scim/v2", "/scim/v2/", "/scim/v2/only-a-namespace"] {
        let r = scim.http.get(format!("{root}{path}")).send().await.unwrap();
        scim_error(r, StatusCode::NOT_FOUND, path).await;
    }
}

/// Users carol, alice and bob, then groups Zeta and Alpha, in that order, on PostgreSQL.
async fn searchable_users_and_groups() -> Scim {
    let scim = Scim::start("scim-search", support::postgres_url()).await;
    for name in ["carol", "alice", "bob"] {
        let (status, _) = scim.post("/Users", okta_user(name)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    for name in ["Zeta", "Alpha"] {
        let (status, _) = scim
            .post(
                "/Groups",
                json!({ "schemas": [CORE_GROUP], "displayName": name }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    scim
}

#[tokio::test]
async fn get_sorts_users_by_user_name_in_either_order_and_refuses_unknown_sort_keys() {
    let scim = searchable_users_and_groups().await;
    let (_, spc) = scim.get("/ServiceProviderConfig").await;
    assert_eq!(spc["sort"]["supported"], true);
    // Sorting on GET.
    let (_, asc) = scim.get("/Users?sortBy=userName").await;
    assert_eq!(user_names(&asc), ["alice", "bob", "carol"]);
    let (_, desc) = scim
        .get("/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=1")
        .await;
    assert_eq!(
        (user_names(&desc), desc["totalResults"].clone()),
        (vec!["bob".to_owned()], json!(3))
    );
    let (status, err) = scim.get("/Users?sortBy=nickName").await;
    assert_eq!(
        (status, err["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidValue")),
        "{err}"
    );
}

#[tokio::test]
async fn post_search_on_users_filters_sorts_pages_and_projects() {
    let scim = searchable_users_and_groups().await;
    // POST /Users/.search.
    let (status, found) = scim
        .post(
            "/Users/.search",
            json!({ "schemas": [SEARCH_REQUEST], "attributes": ["userName"], "filter": "userName sw \"a\" or userName sw \"b\"",
                    "sortBy": "userName", "sortOrder": "descending", "startIndex": 1, "count": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(
        (found["totalResults"].clone(), found["itemsPerPage"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(user_names(&found), ["bob"]);
    let keys: Vec<&String> = found["Resources"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "only id, schemas and userName: {keys:?}");
    let (_, lean) = scim
        .post(
            "/Users/.search",
            json!({ "schemas": [SEARCH_REQUEST], "excludedAttributes": ["emails", "name"] }),
        )
        .await;
    assert!(
        lean["Resources"][0].get("emails").is_none()
            && lean["Resources"][0].get("userName").is_some(),
        "{lean}"
    );
}

#[tokio::test]
async fn post_search_on_groups_sorts_and_leaves_members_out_on_request() {
    let scim = searchable_users_and_groups().await;
    // POST /Groups/.search.
    let (status, groups) = scim
        .post("/Groups/.search", json!({ "schemas": [SEARCH_REQUEST], "sortBy": "displayName", "excludedAttributes": ["members"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    let names: Vec<&str> = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha", "Zeta"]);
    assert!(groups["Resources"][0].get("members").is_none());
}

#[tokio::test]
async fn post_search_at_the_root_pages_and_sorts_across_users_and_groups_within_its_window() {
    let scim = searchable_users_and_groups().await;
    // POST /.search at the root: both resource types, paged across the boundary.
    let (status, all) = scim
        .post("/.search", json!({ "schemas": [SEARCH_REQUEST] }))
        .await;
    assert_eq!(
        (status, all["totalResults"].clone()),
        (StatusCode::OK, json!(5)),
        "{all}"
    );
    let (_, page) = scim
        .post(
            "/.search",
            json!({ "schemas": [SEARCH_REQUEST], "startIndex": 3, "count": 2 }),
        )
        .await;
    let kinds: Vec<&str> = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(
        (kinds, page["startIndex"].clone()),
        (vec!["User", "Group"], json!(3)),
        "{page}"
    );
    let (_, sorted) = scim.post("/.search", json!({ "schemas": [SEARCH_REQUEST], "sortBy": "meta.created", "sortOrder": "descending", "count": 1 })).await;
    assert_eq!(sorted["Resources"][0]["displayName"], "Alpha", "{sorted}");
    let (_, only_users) = scim
        .post(
            "/.search",
            json!({ "schemas": [SEARCH_REQUEST], "filter": "userName eq \"alice\"" }),
        )
        .await;
    assert_eq!(
        (only_users["totalResults"].clone(), user_names(&only_users)),
        (json!(1), vec!["alice".to_owned()]),
        "{only_users}"
    );
    // A sorted root search past its window is refused, however large the startIndex.
    for start in [json!(1000), json!(i64::MAX)] {
        let body = json!({ "schemas": [SEARCH_REQUEST], "sortBy": "meta.created", "startIndex": start, "count": 10 });
        let (status, err) = scim.post("/.search", body.clone()).await;
        assert_eq!(
            (status, err["scimType"].clone()),
            (StatusCode::BAD_REQUEST, json!("tooMany")),
            "{body}: {err}"
        );
    }
}

#[tokio::test]
async fn bad_search_requests_get_scim_errors_and_get_on_search_is_not_allowed() {
    let scim = searchable_users_and_groups().await;
    // Bad search requests.
    for (body, scim_type) in [
        (json!({ "filter": "userName eq \"a\"" }), "invalidSyntax"),
        (
            json!({ "schemas": [SEARCH_REQUEST], "filter": "userName eq" }),
            "invalidFilter",
        ),
        (
            json!({ "schemas": [SEARCH_REQUEST], "sortOrder": "sideways" }),
            "invalidValue",
        ),
        (
            json!({ "schemas": [SEARCH_REQUEST], "sortBy": "nickName" }),
            "invalidValue",
        ),
        (
            json!({ "schemas": [SEARCH_REQUEST], "startIndex": "first" }),
            "invalidValue",
        ),
        (
            json!({ "schemas": [SEARCH_REQUEST], "attributes": 5 }),
            "invalidValue",
        ),
    ] {
        let (status, err) = scim.post("/Users/.search", body.clone()).await;
        assert_eq!(
            (status, err["scimType"].clone()),
            (StatusCode::BAD_REQUEST, json!(scim_type)),
            "{body}: {err}"
        );
    }
    scim_error(
        scim.raw(reqwest::Method::GET, "/Users/.search", None, None)
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "GET .search",
    )
    .await;
}

/// Ada pushed as Okta does, on PostgreSQL; her id and her path under the SCIM base.
async fn patchable_ada() -> (Scim, String, String) {
    let scim = Scim::start("scim-patch", support::postgres_url()).await;
    let (status, ada) = scim.post("/Users", okta_user("ada@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(ada.get("password").is_none());
    let id = ada["id"].as_str().unwrap().to_owned();
    let user = format!("/Users/{id}");
    (scim, id, user)
}

#[tokio::test]
async fn patch_remove_resets_active_to_its_default_drops_optional_attributes_and_keeps_user_name() {
    let (scim, _, user) = patchable_ada().await;
    // remove of optional attributes: active falls back to its default (true), others go.
    scim.patch(
        &user,
        json!([{ "op": "replace", "path": "active", "value": false }]),
    )
    .await;
    let (status, u) = scim.patch(&user, json!([{ "op": "remove", "path": "active" }, { "op": "remove", "path": "externalId" }, { "op": "Remove", "path": "name.givenName" }])).await;
    assert_eq!(status, StatusCode::OK, "{u}");
    assert_eq!(u["active"], true, "{u}");
    assert!(
        u.get("externalId").is_none() && u["name"].get("givenName").is_none(),
        "{u}"
    );
    let (status, err) = scim
        .patch(&user, json!([{ "op": "remove", "path": "userName" }]))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "userName is required: {err}"
    );
}

#[tokio::test]
async fn patch_sets_group_members_with_display_and_ref_and_refuses_unknown_ids() {
    let (scim, id, _) = patchable_ada().await;
    // Members with display and $ref (Okta) or "$ref": null (Entra); unknown ids are refused.
    let (_, bob) = scim.post("/Users", okta_user("bob@example.com")).await;
    let bob = bob["id"].as_str().unwrap().to_owned();
    let (_, g) = scim
        .post(
            "/Groups",
            json!({ "schemas": [CORE_GROUP], "displayName": "Eng" }),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let group = format!("/Groups/{gid}");
    let (status, g) = scim
        .patch(&group, json!([{ "op": "add", "path": "members", "value": [{ "value": id, "display": "Ada", "$ref": format!("{}/Users/{id}", scim.base) }] }]))
        .await;
    assert_eq!(
        (status, g["members"][0]["value"].clone()),
        (StatusCode::OK, json!(id)),
        "{g}"
    );
    let (status, g) = scim
        .patch(
            &group,
            json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": bob }] }]),
        )
        .await;
    assert_eq!(
        (status, g["members"].as_array().unwrap().len()),
        (StatusCode::OK, 2),
        "{g}"
    );
    let (status, g) = scim.patch(&group, json!([{ "op": "replace", "path": "members", "value": [{ "value": bob, "display": "Bob" }] }])).await;
    assert_eq!(
        (status, g["members"].as_array().unwrap().len()),
        (StatusCode::OK, 1),
        "{g}"
    );
    let ghost = "00000000-0000-4000-8000-00000000dead";
    for ops in [
        json!([{ "op": "add", "path": "members", "value": [{ "value": ghost }] }]),
        json!([{ "op": "replace", "path": "members", "value": [{ "value": id }, { "value": ghost }] }]),
        json!([{ "op": "add", "value": { "members": [{ "value": ghost }] } }]),
    ] {
        let (status, err) = scim.patch(&group, ops.clone()).await;
        assert_eq!(
            (status, err["scimType"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalidValue")),
            "{ops}: {err}"
        );
        assert!(err["detail"].as_str().unwrap().contains(ghost), "{err}");
    }
    let (status, err) = scim.post("/Groups", json!({ "schemas": [CORE_GROUP], "displayName": "Ghosts", "members": [{ "value": ghost }] })).await;
    assert_eq!(
        (status, err["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidValue")),
        "{err}"
    );
    let (status, err) = scim.put(&group, json!({ "schemas": [CORE_GROUP], "displayName": "Eng", "members": [{ "value": ghost }] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (_, g) = scim.get(&group).await;
    assert_eq!(
        g["members"],
        json!([{ "value": bob, "$ref": format!("{}/Users/{bob}", g["meta"]["location"].as_str().unwrap().split("/Groups/").next().unwrap()), "type": "User" }]),
        "refused changes left the group alone"
    );
}

#[tokio::test]
async fn groups_on_a_user_are_read_only_ignored_by_patch_and_never_echoed() {
    let (scim, _, user) = patchable_ada().await;
    let (_, g) = scim
        .post(
            "/Groups",
            json!({ "schemas": [CORE_GROUP], "displayName": "Eng" }),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    // groups on User is read-only: ignored, never echoed.
    let (status, u) = scim
        .patch(
            &user,
            json!([{ "op": "add", "path": "groups", "value": [{ "value": gid }] }]),
        )
        .await;
    assert_eq!(
        (status, u["groups"].clone()),
        (StatusCode::OK, json!([])),
        "{u}"
    );
    let (_, u) = scim.patch(&user, json!([{ "op": "replace", "value": { "groups": [{ "value": gid }], "displayName": "Ada L" } }])).await;
    assert_eq!(
        (u["groups"].clone(), u["displayName"].clone()),
        (json!([]), json!("Ada L")),
        "{u}"
    );
}

#[tokio::test]
async fn a_password_set_by_patch_or_put_is_never_returned_whatever_asks_for_it() {
    let (scim, _, user) = patchable_ada().await;
    // password is never returned, whatever asks for it.
    let (_, u) = scim
        .patch(
            &user,
            json!([{ "op": "replace", "path": "password", "value": "s3cret-one" }]),
        )
        .await;
    assert!(u.get("password").is_none(), "{u}");
    let mut full = okta_user("ada@example.com");
    full["password"] = json!("s3cret-two");
    let (_, u) = scim.put(&user, full).await;
    assert!(u.get("password").is_none(), "{u}");
    for path in [
        format!("{user}?attributes=password"),
        format!("{user}?attributes=password,userName"),
        "/Users?attributes=password".into(),
    ] {
        let (status, body) = scim.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !body.to_string().contains("s3cret") && !body.to_string().contains("\"password\""),
            "{path}: {body}"
        );
    }
    let (_, found) = scim
        .post(
            "/Users/.search",
            json!({ "schemas": [SEARCH_REQUEST], "attributes": ["password", "userName"] }),
        )
        .await;
    assert!(!found.to_string().contains("password"), "{found}");
}

#[tokio::test]
async fn get_selects_extension_and_sub_attributes_with_attributes_and_excluded_attributes() {
    let (scim, id, user) = patchable_ada().await;
    // attributes / excludedAttributes on GET: extension paths and sub-attributes.
    scim.patch(&user, json!([{ "op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Maths" }, { "op": "add", "path": format!("{ENTERPRISE}:costCenter"), "value": "42" }])).await;
    let (_, u) = scim
        .get(&format!("{user}?attributes={ENTERPRISE}:department"))
        .await;
    assert_eq!(u[ENTERPRISE], json!({ "department": "Maths" }), "{u}");
    assert!(u.get("userName").is_none() && u.get("id").is_some(), "{u}");
    let (_, u) = scim
        .get(&format!(
            "{user}?excludedAttributes=name.familyName,{ENTERPRISE}:costCenter,id"
        ))
        .await;
    assert!(u["name"].get("familyName").is_none(), "{u}");
    assert_eq!(u[ENTERPRISE], json!({ "department": "Maths" }), "{u}");
    assert_eq!(u["id"], json!(id), "id is always returned");
    let (_, u) = scim.get(&format!("{user}?attributes=emails.value")).await;
    assert_eq!(u["emails"], json!([{ "value": "ada@example.com" }]), "{u}");
}

#[tokio::test]
async fn keys_differing_only_in_case_never_store_a_password_or_choose_an_id_and_sign_in_groups_stay_with_sign_in()
 {
    let scim = Scim::start("scim-case", support::sqlite_url("scim-case")).await;
    // A second spelling of a field the server takes is refused: which one was meant cannot be
    // told, and the other must not be kept as an ordinary attribute.
    let mut twice = okta_user("ada@example.com");
    twice["Password"] = json!("plaintext in the resource");
    let (status, err) = scim.post("/Users", twice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["scimType"], "invalidSyntax", "{err}");
    assert!(
        err["detail"].as_str().unwrap().contains("password"),
        "{err}"
    );
    // Server-owned attributes in any spelling are dropped.
    let mut owned = okta_user("ada@example.com");
    for (k, v) in [
        ("ID", json!("chosen-id")),
        ("Id", json!("chosen-id-2")),
        ("META", json!({ "version": "W/\"999\"" })),
        ("Groups", json!([{ "value": "chosen-group" }])),
        ("SCHEMAS", json!(["urn:chosen"])),
    ] {
        owned[k] = v;
    }
    let (status, ada) = scim.post("/Users", owned).await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    let id = ada["id"].as_str().unwrap().to_owned();
    let (status, got) = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let text = got.to_string();
    assert!(!text.contains("chosen"), "{got}");
    assert!(!text.contains("plaintext"), "{got}");
    for k in got.as_object().unwrap().keys() {
        assert!(
            ["id", "meta", "groups", "schemas"].contains(&k.as_str())
                || !["id", "meta", "groups", "schemas"]
                    .iter()
                    .any(|o| o.eq_ignore_ascii_case(k)),
            "{k} in {got}"
        );
    }
    // The same for a PUT, and for groups.
    let mut put = okta_user("ada@example.com");
    put["iD"] = json!("chosen-by-put");
    let (status, replaced) = scim.put(&format!("/Users/{id}"), put).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["id"], json!(id));
    assert!(!replaced.to_string().contains("chosen"), "{replaced}");
    let (status, g) = scim
        .post(
            "/Groups",
            json!({ "schemas": [CORE_GROUP], "displayName": "Eng", "ID": "chosen-group-id", "Members": [{ "value": id }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert!(!g.to_string().contains("chosen"), "{g}");
    assert_eq!(g["members"][0]["value"], json!(id), "{g}");
    let (status, err) = scim
        .post(
            "/Groups",
            json!({ "schemas": [CORE_GROUP], "displayName": "Ops", "DisplayName": "Other" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

    // A group that sign-in created from the IdP's group claims belongs to sign-in: SCIM
    // cannot replace or delete it, and is told why.
    let store = Store::connect(&scim.database_url).await.unwrap();
    let tenant = format!("{}/okta", scim.ns.name);
    store
        .set_sign_in_groups(&tenant, &id, &["from-saml".to_owned()])
        .await
        .unwrap();
    let mut sign_in_group = None;
    for gid in store.groups_of_user(&tenant, &id).await.unwrap() {
        let g = store.get_group(&tenant, &gid).await.unwrap().unwrap();
        if g.display_name == "from-saml" {
            sign_in_group = Some(g);
        }
    }
    let sign_in_group = sign_in_group.expect("the sign-in group");
    let path = format!("/Groups/{}", sign_in_group.id);
    let (status, err) = scim
        .put(
            &path,
            json!({ "schemas": [CORE_GROUP], "displayName": "taken over" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["scimType"], "mutability", "{err}");
    assert!(err["detail"].as_str().unwrap().contains("sign-in"), "{err}");
    let (status, err) = scim.call(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("sign-in"), "{err}");
    let kept = store
        .get_group(&tenant, &sign_in_group.id)
        .await
        .unwrap()
        .expect("the sign-in group is still there");
    assert_eq!(kept.display_name, "from-saml");
}

/// KELVIN SIGN (U+212A): Unicode lower-casing turns it into the ASCII `k`.
const KELVIN: char = '\u{212A}';

async fn compatibility_characters(scim: &Scim) {
    let filter = |attr: &str, value: &str| {
        let f = format!("{attr} eq \"{value}\"");
        format!(
            "?filter={}",
            form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>()
        )
    };
    let ascii = "kim@example.com";
    let kelvin = format!("{KELVIN}im@example.com");
    let (status, kim) = scim.post("/Users", okta_user(ascii)).await;
    assert_eq!(status, StatusCode::CREATED, "{kim}");

    // A userName spelled with the KELVIN SIGN names nobody yet...
    let (status, list) = scim
        .get(&format!("/Users{}", filter("userName", &kelvin)))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["totalResults"], json!(0), "{list}");
    let (_, list) = scim
        .get(&format!("/Users{}", filter("emails.value", &kelvin)))
        .await;
    assert_eq!(list["totalResults"], json!(0), "{list}");
    // ...so it is another user, not a uniqueness conflict with kim.
    let (status, other) = scim.post("/Users", okta_user(&kelvin)).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_ne!(other["id"], kim["id"]);
    assert_eq!(other["userName"], json!(kelvin));

    // Each spelling finds its own user; ASCII letters still match in any case.
    for (spelling, expected) in [
        (ascii.to_owned(), &kim),
        ("KIM@Example.COM".to_owned(), &kim),
        (kelvin.clone(), &other),
        (format!("{KELVIN}IM@EXAMPLE.com"), &other),
    ] {
        for attr in ["userName", "emails.value"] {
            let (status, list) = scim
                .get(&format!("/Users{}", filter(attr, &spelling)))
                .await;
            assert_eq!(status, StatusCode::OK, "{list}");
            assert_eq!(list["totalResults"], json!(1), "{attr} {spelling}: {list}");
            assert_eq!(
                list["Resources"][0]["id"], expected["id"],
                "{attr} {spelling}: {list}"
            );
        }
    }

    // Group names too.
    for name in ["kernel", &format!("{KELVIN}ernel")] {
        let (status, g) = scim
            .post(
                "/Groups",
                json!({ "schemas": [CORE_GROUP], "displayName": name, "members": [] }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{g}");
        let (_, list) = scim
            .get(&format!("/Groups{}", filter("displayName", name)))
            .await;
        assert_eq!(list["totalResults"], json!(1), "{name}: {list}");
        assert_eq!(list["Resources"][0]["id"], g["id"], "{name}: {list}");
    }
}

async fn a_user_name_with_the_kelvin_sign_is_another_user_than_k(database_url: &str) {
    let scim = Scim::start("scim-kelvin", database_url.to_owned()).await;
    compatibility_characters(&scim).await;
}

support::on_each_database!(a_user_name_with_the_kelvin_sign_is_another_user_than_k);
