//! The OpenID Provider's state in the identity store, proven against both backends:
//! authorization codes, grant families and their refresh tokens, device authorizations.

mod support;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sso_operator::store::{
    Binding, CodeRedemption, DevicePoll, DeviceRequest, Grant, GroupInput, RefreshOutcome, Store,
    StoreError, User, UserInput,
};

/// The store on `database_url` and its backend's name for assertion messages.
async fn store_on(database_url: &str) -> (&'static str, Store) {
    let backend = if database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let store = Store::connect(database_url)
        .await
        .unwrap_or_else(|e| panic!("open the {backend} store: {e}"));
    (backend, store)
}

fn user(name: &str) -> UserInput {
    UserInput {
        user_name: name.to_owned(),
        external_id: None,
        active: true,
        resource: json!({ "emails": [{ "value": name, "primary": true }] }),
        scim_managed: true,
    }
}

fn in_mins(mins: i64) -> Timestamp {
    Timestamp::now() + SignedDuration::from_mins(mins)
}

/// A time the store keeps exactly (microseconds).
fn auth_time() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap()
}

/// A user of `t` in the SCIM group `eng` and the sign-in group `ops`, signed in: the user and
/// the SSO session ID.
async fn signed_in_user(store: &Store, t: &str, name: &str) -> (User, String) {
    let u = store.create_user(t, user(name)).await.unwrap();
    store
        .create_group(
            t,
            GroupInput {
                display_name: format!("eng-{name}"),
                external_id: None,
                resource: json!({}),
                scim_managed: true,
            },
            std::slice::from_ref(&u.id),
        )
        .await
        .unwrap();
    store
        .set_sign_in_groups(t, &u.id, &["ops".to_owned()])
        .await
        .unwrap();
    let sid = store.create_session(t, &u.id, in_mins(60)).await.unwrap();
    (u, sid)
}

fn grant(client_id: &str, user_id: &str, session: Option<&str>) -> Grant {
    Grant {
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        session: session.map(str::to_owned),
        scope: "openid email groups offline_access".to_owned(),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        auth_time: auth_time(),
    }
}

/// Issues a code for `grant` and redeems it: the family started.
async fn family_of(store: &Store, t: &str, grant: &Grant) -> String {
    let code = store
        .create_authorization_code(t, grant, "https://app.example/cb", None, in_mins(1))
        .await
        .unwrap();
    match store
        .redeem_authorization_code(t, &code, in_mins(60))
        .await
        .unwrap()
    {
        CodeRedemption::Redeemed { family, .. } => family,
        other => panic!("a fresh code must redeem, got {other:?}"),
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(openssl::sha::sha256(s.as_bytes()))
}

async fn an_authorization_code_is_redeemed_once_and_its_reuse_revokes_the_family(
    database_url: &str,
) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-code");
    let (ada, sid) = signed_in_user(&store, &t, "ada@example.com").await;
    let g = grant("argocd", &ada.id, Some(&sid));
    let code = store
        .create_authorization_code(
            &t,
            &g,
            "https://argocd.example/auth/callback",
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            in_mins(1),
        )
        .await
        .unwrap();
    assert_eq!(code.len(), 43, "{backend}: 256 bits, base64url, no padding");
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    // Another tenant does not know the code.
    let other = support::unique_tenant("oidc-code-other");
    assert_eq!(
        store
            .redeem_authorization_code(&other, &code, in_mins(60))
            .await
            .unwrap(),
        CodeRedemption::Unknown,
        "{backend}"
    );

    let CodeRedemption::Redeemed {
        grant: redeemed,
        redirect_uri,
        code_challenge,
        family,
    } = store
        .redeem_authorization_code(&t, &code, in_mins(60))
        .await
        .unwrap()
    else {
        panic!("{backend}: the first redemption wins");
    };
    assert_eq!(redirect_uri, "https://argocd.example/auth/callback");
    assert_eq!(
        code_challenge.as_deref(),
        Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    );
    assert_eq!(
        redeemed,
        Grant {
            session: Some(sha256_hex(&sid)),
            ..g.clone()
        },
        "{backend}: the grant comes back, with the session's SHA-256 only"
    );

    let (live, who, groups) = store
        .family(&t, &family)
        .await
        .unwrap()
        .expect("the family is live");
    assert_eq!(live, redeemed);
    assert_eq!(who.id, ada.id);
    assert_eq!(
        groups,
        vec!["eng-ada@example.com".to_owned(), "ops".to_owned()],
        "{backend}: SCIM and sign-in groups, as a session reads them"
    );
    let token = store.issue_refresh_token(&t, &family).await.unwrap();

    // A second redemption (a stolen code replayed) revokes everything the first one got.
    assert_eq!(
        store
            .redeem_authorization_code(&t, &code, in_mins(60))
            .await
            .unwrap(),
        CodeRedemption::Reused,
        "{backend}"
    );
    assert!(store.family(&t, &family).await.unwrap().is_none());
    assert_eq!(
        store.refresh(&t, "argocd", &token).await.unwrap(),
        RefreshOutcome::Ended
    );
    assert!(matches!(
        store.issue_refresh_token(&t, &family).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .redeem_authorization_code(&t, &code, in_mins(60))
            .await
            .unwrap(),
        CodeRedemption::Reused,
        "{backend}: still remembered"
    );
    assert_eq!(
        store
            .redeem_authorization_code(&t, "no-such-code", in_mins(60))
            .await
            .unwrap(),
        CodeRedemption::Unknown
    );
    // A code without session, nonce or PKCE.
    let bare = Grant {
        session: None,
        nonce: None,
        ..g
    };
    let code = store
        .create_authorization_code(&t, &bare, "https://argocd.example/cb", None, in_mins(1))
        .await
        .unwrap();
    match store
        .redeem_authorization_code(&t, &code, in_mins(60))
        .await
        .unwrap()
    {
        CodeRedemption::Redeemed {
            grant,
            code_challenge: None,
            ..
        } => assert_eq!(grant, bare, "{backend}"),
        other => panic!("{backend}: {other:?}"),
    }
}

support::on_each_database!(an_authorization_code_is_redeemed_once_and_its_reuse_revokes_the_family);

async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-refresh");
    let (ada, sid) = signed_in_user(&store, &t, "ada@example.com").await;
    let g = grant("grafana", &ada.id, Some(&sid));
    let family = family_of(&store, &t, &g).await;
    let first = store.issue_refresh_token(&t, &family).await.unwrap();
    assert_eq!(first.len(), 43);

    // Another client's token is refused and stays usable by its own client.
    assert_eq!(
        store.refresh(&t, "argocd", &first).await.unwrap(),
        RefreshOutcome::OtherClient,
        "{backend}"
    );
    let RefreshOutcome::Rotated {
        grant: rotated,
        family: same,
        token: second,
        user,
        groups,
    } = store.refresh(&t, "grafana", &first).await.unwrap()
    else {
        panic!("{backend}: a fresh token rotates");
    };
    assert_eq!(same, family);
    assert_eq!(rotated.client_id, "grafana");
    assert_eq!(rotated.user_id, ada.id);
    assert_eq!(rotated.nonce, g.nonce);
    assert_eq!(rotated.auth_time, g.auth_time);
    assert_eq!(user.id, ada.id);
    assert_eq!(
        groups,
        vec!["eng-ada@example.com".to_owned(), "ops".to_owned()]
    );
    assert_ne!(second, first);
    let RefreshOutcome::Rotated { token: third, .. } =
        store.refresh(&t, "grafana", &second).await.unwrap()
    else {
        panic!("{backend}: the new token rotates in turn");
    };

    // The first token again: someone holds a copy. The whole family ends.
    assert_eq!(
        store.refresh(&t, "grafana", &first).await.unwrap(),
        RefreshOutcome::Reused,
        "{backend}"
    );
    assert_eq!(
        store.refresh(&t, "grafana", &third).await.unwrap(),
        RefreshOutcome::Ended,
        "{backend}: the newest token of a revoked family ends too"
    );
    assert!(store.family(&t, &family).await.unwrap().is_none());
    assert_eq!(
        store.refresh(&t, "grafana", "no-such-token").await.unwrap(),
        RefreshOutcome::Unknown
    );
}

support::on_each_database!(refresh_tokens_rotate_and_a_reused_one_revokes_the_family);

async fn a_deactivated_or_deleted_user_ends_the_grant(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-user");
    let (ada, _) = signed_in_user(&store, &t, "ada@example.com").await;
    let family = family_of(&store, &t, &grant("kubectl", &ada.id, None)).await;
    let token = store.issue_refresh_token(&t, &family).await.unwrap();
    let mut inactive = user("ada@example.com");
    inactive.active = false;
    store
        .replace_user(&t, &ada.id, None, inactive)
        .await
        .unwrap();
    assert!(
        store.family(&t, &family).await.unwrap().is_none(),
        "{backend}"
    );
    assert_eq!(
        store.refresh(&t, "kubectl", &token).await.unwrap(),
        RefreshOutcome::Ended,
        "{backend}"
    );
    // Ended for good: active again, the user signs in anew.
    store
        .replace_user(&t, &ada.id, None, user("ada@example.com"))
        .await
        .unwrap();
    assert!(
        store.family(&t, &family).await.unwrap().is_none(),
        "{backend}"
    );
    assert_eq!(
        store.refresh(&t, "kubectl", &token).await.unwrap(),
        RefreshOutcome::Ended
    );

    let (bob, _) = signed_in_user(&store, &t, "bob@example.com").await;
    let family = family_of(&store, &t, &grant("kubectl", &bob.id, None)).await;
    let token = store.issue_refresh_token(&t, &family).await.unwrap();
    assert!(store.delete_user(&t, &bob.id).await.unwrap());
    assert!(
        store.family(&t, &family).await.unwrap().is_none(),
        "{backend}"
    );
    assert_eq!(
        store.refresh(&t, "kubectl", &token).await.unwrap(),
        RefreshOutcome::Ended,
        "{backend}"
    );
}

support::on_each_database!(a_deactivated_or_deleted_user_ends_the_grant);

async fn families_are_revoked_by_token_by_id_by_session_and_by_user(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-revoke");
    let (ada, ada_session) = signed_in_user(&store, &t, "ada@example.com").await;
    let (bob, bob_session) = signed_in_user(&store, &t, "bob@example.com").await;

    // RFC 7009: another client's token is ignored; the owner's ends its family.
    let family = family_of(&store, &t, &grant("argocd", &ada.id, None)).await;
    let token = store.issue_refresh_token(&t, &family).await.unwrap();
    assert!(
        !store
            .revoke_refresh_token(&t, "grafana", &token)
            .await
            .unwrap(),
        "{backend}"
    );
    assert!(store.family(&t, &family).await.unwrap().is_some());
    assert!(
        store
            .revoke_refresh_token(&t, "argocd", &token)
            .await
            .unwrap()
    );
    assert!(store.family(&t, &family).await.unwrap().is_none());
    assert!(
        !store
            .revoke_refresh_token(&t, "argocd", &token)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_refresh_token(&t, "argocd", "no-such-token")
            .await
            .unwrap()
    );

    let family = family_of(&store, &t, &grant("argocd", &ada.id, None)).await;
    assert!(store.revoke_family(&t, &family).await.unwrap(), "{backend}");
    assert!(!store.revoke_family(&t, &family).await.unwrap());
    assert!(store.family(&t, &family).await.unwrap().is_none());

    // Logout ends the families started in that SSO session only.
    let a1 = family_of(&store, &t, &grant("argocd", &ada.id, Some(&ada_session))).await;
    let a2 = family_of(&store, &t, &grant("grafana", &ada.id, Some(&ada_session))).await;
    let b1 = family_of(&store, &t, &grant("argocd", &bob.id, Some(&bob_session))).await;
    let a3 = family_of(&store, &t, &grant("kubectl", &ada.id, None)).await;
    assert_eq!(
        store
            .revoke_families_of_session(&t, &ada_session)
            .await
            .unwrap(),
        2,
        "{backend}"
    );
    assert!(store.family(&t, &a1).await.unwrap().is_none());
    assert!(store.family(&t, &a2).await.unwrap().is_none());
    assert!(store.family(&t, &b1).await.unwrap().is_some());
    assert!(store.family(&t, &a3).await.unwrap().is_some());
    // Another tenant's session of the same ID ends nothing here.
    let other = support::unique_tenant("oidc-revoke-other");
    assert_eq!(
        store
            .revoke_families_of_session(&other, &bob_session)
            .await
            .unwrap(),
        0
    );
    assert!(store.family(&t, &b1).await.unwrap().is_some());

    assert_eq!(
        store.revoke_families_of_user(&t, &ada.id).await.unwrap(),
        1,
        "{backend}: only the live one"
    );
    assert!(store.family(&t, &a3).await.unwrap().is_none());
    assert!(store.family(&t, &b1).await.unwrap().is_some());
}

support::on_each_database!(families_are_revoked_by_token_by_id_by_session_and_by_user);

async fn a_device_is_authorized_once_by_its_user_code(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-device");
    let (ada, sid) = signed_in_user(&store, &t, "ada@example.com").await;
    let expires = Timestamp::from_second(in_mins(10).as_second()).unwrap();
    let (device_code, user_code) = store
        .create_device_authorization(&t, "kubectl", "openid groups", expires, 1)
        .await
        .unwrap();
    assert_eq!(device_code.len(), 43, "{backend}");
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert_eq!(&user_code[4..5], "-", "{user_code}");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    let typed = user_code.replace('-', "").to_lowercase();
    assert_eq!(
        store.device_request(&t, &typed).await.unwrap(),
        Some(DeviceRequest {
            client_id: "kubectl".to_owned(),
            scope: "openid groups".to_owned(),
            expires,
        }),
        "{backend}: lower case and without the dash"
    );
    assert_eq!(store.device_request(&t, "BCDF-GHJ").await.unwrap(), None);

    // Polling: pending at the interval, slow_down sooner.
    assert_eq!(
        store
            .poll_device(&t, "kubectl", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Pending,
        "{backend}"
    );
    assert_eq!(
        store
            .poll_device(&t, "kubectl", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::SlowDown,
        "{backend}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store
            .poll_device(&t, "kubectl", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Pending,
        "{backend}"
    );
    assert_eq!(
        store
            .poll_device(&t, "argocd", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Unknown,
        "{backend}: another client's device code"
    );

    // Approved for the client that asked only.
    let g = Grant {
        scope: "openid".to_owned(),
        ..grant("kubectl", &ada.id, Some(&sid))
    };
    assert!(
        !store
            .approve_device(&t, &user_code, &grant("argocd", &ada.id, None))
            .await
            .unwrap(),
        "{backend}"
    );
    assert!(store.approve_device(&t, &user_code, &g).await.unwrap());
    assert_eq!(store.device_request(&t, &user_code).await.unwrap(), None);
    assert!(!store.approve_device(&t, &user_code, &g).await.unwrap());
    assert!(!store.deny_device(&t, &user_code).await.unwrap());
    let DevicePoll::Approved {
        grant: approved,
        family,
    } = store
        .poll_device(&t, "kubectl", &device_code, in_mins(60))
        .await
        .unwrap()
    else {
        panic!("{backend}: approved");
    };
    assert_eq!(
        approved,
        Grant {
            session: Some(sha256_hex(&sid)),
            ..g
        }
    );
    let (_, who, groups) = store.family(&t, &family).await.unwrap().expect("live");
    assert_eq!(who.id, ada.id);
    assert_eq!(groups.len(), 2);
    assert_eq!(
        store
            .poll_device(&t, "kubectl", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Unknown,
        "{backend}: a device code is exchanged once"
    );
    assert_eq!(
        store
            .poll_device(&t, "kubectl", "no-such-code", in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Unknown
    );

    // Denied.
    let (device_code, user_code) = store
        .create_device_authorization(&t, "kubectl", "openid", in_mins(10), 5)
        .await
        .unwrap();
    assert!(
        store
            .deny_device(&t, &user_code.to_lowercase())
            .await
            .unwrap()
    );
    assert!(
        !store
            .approve_device(&t, &user_code, &g_for(&ada))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .poll_device(&t, "kubectl", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Denied,
        "{backend}"
    );
}

fn g_for(u: &User) -> Grant {
    grant("kubectl", &u.id, None)
}

support::on_each_database!(a_device_is_authorized_once_by_its_user_code);

/// One story, so that its purge runs after the expiry checks that need expired rows.
async fn expired_codes_families_and_device_codes_are_refused_then_purged(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-expiry");
    let (ada, _) = signed_in_user(&store, &t, "ada@example.com").await;
    let g = grant("kubectl", &ada.id, None);
    let past = Timestamp::now() - SignedDuration::from_secs(1);

    let expired_code = store
        .create_authorization_code(&t, &g, "http://127.0.0.1/cb", None, past)
        .await
        .unwrap();
    assert_eq!(
        store
            .redeem_authorization_code(&t, &expired_code, in_mins(60))
            .await
            .unwrap(),
        CodeRedemption::Expired,
        "{backend}"
    );

    let (device_code, user_code) = store
        .create_device_authorization(&t, "kubectl", "openid", past, 5)
        .await
        .unwrap();
    assert_eq!(store.device_request(&t, &user_code).await.unwrap(), None);
    assert!(!store.approve_device(&t, &user_code, &g).await.unwrap());
    assert!(!store.deny_device(&t, &user_code).await.unwrap());
    assert_eq!(
        store
            .poll_device(&t, "kubectl", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Expired,
        "{backend}"
    );

    // A family lasts until its absolute refresh expiry, however often it rotates.
    let code = store
        .create_authorization_code(&t, &g, "http://127.0.0.1/cb", None, in_mins(1))
        .await
        .unwrap();
    let CodeRedemption::Redeemed { family, .. } = store
        .redeem_authorization_code(
            &t,
            &code,
            Timestamp::now() + SignedDuration::from_millis(600),
        )
        .await
        .unwrap()
    else {
        panic!("{backend}: redeemed");
    };
    let token = store.issue_refresh_token(&t, &family).await.unwrap();
    let RefreshOutcome::Rotated { token, .. } = store.refresh(&t, "kubectl", &token).await.unwrap()
    else {
        panic!("{backend}: rotated");
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        store.refresh(&t, "kubectl", &token).await.unwrap(),
        RefreshOutcome::Ended,
        "{backend}"
    );
    assert!(store.family(&t, &family).await.unwrap().is_none());
    assert!(matches!(
        store.issue_refresh_token(&t, &family).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.revoke_family(&t, &family).await.unwrap());

    // Expired rows go; live ones stay.
    let live = family_of(&store, &t, &g).await;
    let live_token = store.issue_refresh_token(&t, &live).await.unwrap();
    assert!(
        store.purge_expired().await.unwrap() >= 5,
        "{backend}: the code, the device code, the family and its two tokens"
    );
    assert_eq!(
        store
            .redeem_authorization_code(&t, &expired_code, in_mins(60))
            .await
            .unwrap(),
        CodeRedemption::Unknown,
        "{backend}"
    );
    assert_eq!(
        store.refresh(&t, "kubectl", &token).await.unwrap(),
        RefreshOutcome::Unknown
    );
    assert_eq!(
        store
            .poll_device(&t, "kubectl", &device_code, in_mins(60))
            .await
            .unwrap(),
        DevicePoll::Unknown
    );
    assert!(matches!(
        store.refresh(&t, "kubectl", &live_token).await.unwrap(),
        RefreshOutcome::Rotated { .. }
    ));
}

support::on_each_database!(expired_codes_families_and_device_codes_are_refused_then_purged);

async fn concurrent_redemptions_have_exactly_one_winner(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-race");
    let (ada, _) = signed_in_user(&store, &t, "ada@example.com").await;
    let g = grant("argocd", &ada.id, None);

    // Eight replicas redeem one code at once.
    let code = store
        .create_authorization_code(&t, &g, "https://argocd.example/cb", None, in_mins(1))
        .await
        .unwrap();
    let redemptions: Vec<_> = (0..8)
        .map(|_| {
            let (store, t, code) = (store.clone(), t.clone(), code.clone());
            tokio::spawn(async move {
                store
                    .redeem_authorization_code(&t, &code, in_mins(60))
                    .await
            })
        })
        .collect();
    let mut families = Vec::new();
    let mut reused = 0;
    for r in redemptions {
        match r.await.unwrap().unwrap() {
            CodeRedemption::Redeemed { family, .. } => families.push(family),
            CodeRedemption::Reused => reused += 1,
            other => panic!("{backend}: {other:?}"),
        }
    }
    assert_eq!((families.len(), reused), (1, 7), "{backend}");
    assert!(
        store.family(&t, &families[0]).await.unwrap().is_none(),
        "{backend}: the winner's family is revoked by the reuse"
    );

    // Two requests present one refresh token at once, several times over.
    for round in 0..5 {
        let family = family_of(&store, &t, &g).await;
        let token = store.issue_refresh_token(&t, &family).await.unwrap();
        let (a, b) = tokio::join!(
            tokio::spawn({
                let (store, t, token) = (store.clone(), t.clone(), token.clone());
                async move { store.refresh(&t, "argocd", &token).await }
            }),
            tokio::spawn({
                let (store, t, token) = (store.clone(), t.clone(), token.clone());
                async move { store.refresh(&t, "argocd", &token).await }
            }),
        );
        let outcomes = [a.unwrap().unwrap(), b.unwrap().unwrap()];
        let rotated: Vec<&String> = outcomes
            .iter()
            .filter_map(|o| match o {
                RefreshOutcome::Rotated { token, .. } => Some(token),
                _ => None,
            })
            .collect();
        assert_eq!(rotated.len(), 1, "{backend} round {round}: {outcomes:?}");
        assert!(
            outcomes.contains(&RefreshOutcome::Reused),
            "{backend} round {round}: {outcomes:?}"
        );
        assert!(store.family(&t, &family).await.unwrap().is_none());
        assert_eq!(
            store.refresh(&t, "argocd", rotated[0]).await.unwrap(),
            RefreshOutcome::Ended,
            "{backend} round {round}"
        );
    }

    // Two polls of an approved device code at once.
    let (device_code, user_code) = store
        .create_device_authorization(&t, "kubectl", "openid", in_mins(10), 5)
        .await
        .unwrap();
    assert!(
        store
            .approve_device(&t, &user_code, &grant("kubectl", &ada.id, None))
            .await
            .unwrap()
    );
    let polls: Vec<_> = (0..4)
        .map(|_| {
            let (store, t, device_code) = (store.clone(), t.clone(), device_code.clone());
            tokio::spawn(async move {
                store
                    .poll_device(&t, "kubectl", &device_code, in_mins(60))
                    .await
            })
        })
        .collect();
    let mut approved = 0;
    for p in polls {
        match p.await.unwrap().unwrap() {
            DevicePoll::Approved { .. } => approved += 1,
            DevicePoll::Unknown => {}
            other => panic!("{backend}: {other:?}"),
        }
    }
    assert_eq!(approved, 1, "{backend}");
}

support::on_each_database!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_redemptions_have_exactly_one_winner
);

async fn a_purged_tenant_keeps_no_openid_provider_state(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("oidc-purge");
    let (uid1, uid2) = (support::random_id("uid-"), support::random_id("uid-"));
    assert_eq!(
        store.bind_tenant(&t, &uid1).await.unwrap(),
        Binding::Adopted
    );

    /// A code, a family with a refresh token, and a pending device authorization.
    async fn fill(store: &Store, t: &str) -> (String, String, String, String, String) {
        let (ada, sid) = signed_in_user(store, t, "ada@example.com").await;
        let g = grant("argocd", &ada.id, Some(&sid));
        let code = store
            .create_authorization_code(t, &g, "https://argocd.example/cb", None, in_mins(1))
            .await
            .unwrap();
        let family = family_of(store, t, &g).await;
        let token = store.issue_refresh_token(t, &family).await.unwrap();
        let (device_code, user_code) = store
            .create_device_authorization(t, "kubectl", "openid", in_mins(10), 5)
            .await
            .unwrap();
        (code, family, token, device_code, user_code)
    }

    async fn assert_gone(
        store: &Store,
        t: &str,
        backend: &str,
        (code, family, token, device_code, user_code): (String, String, String, String, String),
    ) {
        assert_eq!(
            store
                .redeem_authorization_code(t, &code, in_mins(60))
                .await
                .unwrap(),
            CodeRedemption::Unknown,
            "{backend}"
        );
        assert!(
            store.family(t, &family).await.unwrap().is_none(),
            "{backend}"
        );
        assert_eq!(
            store.refresh(t, "argocd", &token).await.unwrap(),
            RefreshOutcome::Unknown,
            "{backend}"
        );
        assert_eq!(store.device_request(t, &user_code).await.unwrap(), None);
        assert_eq!(
            store
                .poll_device(t, "kubectl", &device_code, in_mins(60))
                .await
                .unwrap(),
            DevicePoll::Unknown,
            "{backend}"
        );
    }

    // Another incarnation under the same name starts without the old one's grants.
    let old = fill(&store, &t).await;
    assert!(matches!(
        store.bind_tenant(&t, &uid2).await.unwrap(),
        Binding::Replaced { .. }
    ));
    assert_gone(&store, &t, backend, old).await;

    // A deleted IdentityProvider leaves nothing behind.
    let current = fill(&store, &t).await;
    assert!(store.purge_tenant(&t, Some(&uid2)).await.unwrap().is_some());
    assert_gone(&store, &t, backend, current).await;

    let unbound = support::unique_tenant("oidc-delete");
    let rows = fill(&store, &unbound).await;
    store.delete_tenant(&unbound).await.unwrap();
    assert_gone(&store, &unbound, backend, rows).await;
}

support::on_each_database!(a_purged_tenant_keeps_no_openid_provider_state);
