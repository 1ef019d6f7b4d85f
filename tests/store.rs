//! The identity store's contract, proven against both backends: a SQLite file and a real
//! PostgreSQL server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sso_operator::store::{
    Binding, CmpOp, Column, GroupInput, Predicate, Purged, Store, StoreError, StoredTenant,
    UserInput, Value,
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
        external_id: Some(format!("ext-{name}")),
        active: true,
        resource: json!({ "name": { "givenName": "Ada", "familyName": "Lovelace" }, "emails": [{ "value": name, "type": "work", "primary": true }] }),
        scim_managed: true,
    }
}

fn group(name: &str) -> GroupInput {
    GroupInput {
        display_name: name.to_owned(),
        external_id: None,
        resource: json!({}),
        scim_managed: true,
    }
}

fn eq(column: Column, v: &str) -> Predicate {
    Predicate::Compare(column, CmpOp::Eq, Value::Text(v.to_owned()))
}

async fn users_are_stored_exactly_and_looked_up_case_insensitively(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("users");
    let created = store
        .create_user(&t, user("Ada.Lovelace@Example.com"))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    let found = store
        .find_user_by_user_name(&t, "ada.lovelace@example.COM")
        .await
        .unwrap()
        .expect(backend);
    assert_eq!(
        found.user_name, "Ada.Lovelace@Example.com",
        "{backend}: stored exactly as sent"
    );
    assert_eq!(
        found.resource,
        user("x")
            .resource
            .clone()
            .tap_emails("Ada.Lovelace@Example.com")
    );
    assert_eq!(
        store.get_user(&t, &created.id).await.unwrap().unwrap(),
        found
    );
    match store
        .create_user(&t, user("ADA.LOVELACE@example.com"))
        .await
    {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{backend}: duplicate userName must conflict, got {other:?}"),
    }
    assert_eq!(store.count_users(&t).await.unwrap(), 1);
    assert!(store.delete_user(&t, &created.id).await.unwrap());
    assert!(!store.delete_user(&t, &created.id).await.unwrap());
    assert!(store.get_user(&t, &created.id).await.unwrap().is_none());
}

support::on_each_database!(users_are_stored_exactly_and_looked_up_case_insensitively);

trait TapEmails {
    fn tap_emails(self, email: &str) -> Self;
}
impl TapEmails for serde_json::Value {
    fn tap_emails(mut self, email: &str) -> Self {
        self["emails"][0]["value"] = json!(email);
        self
    }
}

async fn tenants_never_see_each_others_data(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let a = support::unique_tenant("a");
    let b = support::unique_tenant("b");
    let alice = store
        .create_user(&a, user("alice@example.com"))
        .await
        .unwrap();
    // The same userName may exist in another tenant.
    store
        .create_user(&b, user("alice@example.com"))
        .await
        .unwrap();
    assert!(
        store.get_user(&b, &alice.id).await.unwrap().is_none(),
        "{backend}"
    );
    assert!(
        !store.delete_user(&b, &alice.id).await.unwrap(),
        "{backend}"
    );
    let page = store
        .list_users(&b, &Predicate::True, 1, 100)
        .await
        .unwrap();
    assert_eq!(page.total, 1, "{backend}");
    assert_ne!(page.items[0].id, alice.id, "{backend}");
    // A group of tenant B cannot get tenant A's user as a member.
    let g = store
        .create_group(&b, group("admins"), std::slice::from_ref(&alice.id))
        .await
        .unwrap();
    assert!(
        g.members.is_empty(),
        "{backend}: cross-tenant membership must be ignored"
    );
}

support::on_each_database!(tenants_never_see_each_others_data);

async fn stale_versions_are_refused_and_concurrent_writers_lose_no_update(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("versions");
    let u = store
        .create_user(&t, user("counter@example.com"))
        .await
        .unwrap();
    let mut changed = user("counter@example.com");
    changed.active = false;
    let v2 = store
        .replace_user(&t, &u.id, Some(1), changed.clone())
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert!(!v2.active);
    match store
        .replace_user(&t, &u.id, Some(1), changed.clone())
        .await
    {
        Err(StoreError::VersionMismatch { current: 2 }) => {}
        other => panic!("{backend}: a stale version must be refused, got {other:?}"),
    }
    match store.replace_user(&t, "no-such-id", None, changed).await {
        Err(StoreError::NotFound) => {}
        other => panic!("{backend}: got {other:?}"),
    }

    // 16 writers each add one to a counter with read-modify-write and retry on conflict.
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, t, id) = (store.clone(), t.clone(), u.id.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let cur = store.get_user(&t, &id).await.unwrap().unwrap();
                let n = cur.resource["counter"].as_i64().unwrap_or(0);
                let mut next = UserInput {
                    user_name: cur.user_name,
                    external_id: cur.external_id,
                    active: cur.active,
                    resource: cur.resource,
                    scim_managed: true,
                };
                next.resource["counter"] = json!(n + 1);
                match store.replace_user(&t, &id, Some(cur.version), next).await {
                    Ok(_) => break,
                    Err(StoreError::VersionMismatch { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("writers finish")
            .unwrap();
    }
    let last = store.get_user(&t, &u.id).await.unwrap().unwrap();
    assert_eq!(
        last.resource["counter"], 16,
        "{backend}: an update was lost"
    );
    assert_eq!(last.version, 2 + 16, "{backend}");
}

support::on_each_database!(stale_versions_are_refused_and_concurrent_writers_lose_no_update);

/// A store on `database_url`, named by its backend for assertion messages, with a tenant of
/// its own holding 25 users `User00@Example.com`… in creation order (their ids returned),
/// every fifth one inactive.
async fn twenty_five_users(database_url: &str) -> (&'static str, Store, String, Vec<String>) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("lists");
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut u = user(&format!("User{i:02}@Example.com"));
        u.active = i % 5 != 0;
        ids.push(store.create_user(&t, u).await.unwrap().id);
    }
    (backend, store, t, ids)
}

async fn lists_page_in_creation_order_without_gaps_or_repeats(database_url: &str) {
    let (backend, store, t, ids) = twenty_five_users(database_url).await;
    let mut seen = Vec::new();
    for start in [1, 11, 21] {
        let page = store
            .list_users(&t, &Predicate::True, start, 10)
            .await
            .unwrap();
        assert_eq!(page.total, 25, "{backend}");
        seen.extend(page.items.into_iter().map(|u| u.id));
    }
    assert_eq!(
        seen, ids,
        "{backend}: pages must follow creation order without gaps or repeats"
    );
    let beyond = store
        .list_users(&t, &Predicate::True, 100, 10)
        .await
        .unwrap();
    assert_eq!((beyond.total, beyond.items.len()), (25, 0), "{backend}");
    let zero = store.list_users(&t, &Predicate::True, 1, 0).await.unwrap();
    assert_eq!((zero.total, zero.items.len()), (25, 0), "{backend}");
}

support::on_each_database!(lists_page_in_creation_order_without_gaps_or_repeats);

async fn user_filters_run_in_the_database_case_insensitively(database_url: &str) {
    let (backend, store, t, _) = twenty_five_users(database_url).await;
    let one = store
        .list_users(&t, &eq(Column::UserName, "user07@example.COM"), 1, 10)
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1, "{backend}");
    assert_eq!(one.items[0].user_name, "User07@Example.com");
    let by_ext = store
        .list_users(&t, &eq(Column::ExternalId, "ext-User07@Example.com"), 1, 10)
        .await
        .unwrap();
    assert_eq!(by_ext.total, 1, "{backend}");
    let sw = Predicate::Compare(Column::UserName, CmpOp::Sw, Value::Text("USER1".into()));
    assert_eq!(
        store.list_users(&t, &sw, 1, 100).await.unwrap().total,
        10,
        "{backend}"
    );
    let inactive = Predicate::Compare(Column::Active, CmpOp::Eq, Value::Int(0));
    assert_eq!(
        store.list_users(&t, &inactive, 1, 100).await.unwrap().total,
        5,
        "{backend}: inactive users are still listed"
    );
    let either = Predicate::Or(
        Box::new(eq(Column::UserName, "user01@example.com")),
        Box::new(eq(Column::UserName, "user02@example.com")),
    );
    assert_eq!(
        store.list_users(&t, &either, 1, 100).await.unwrap().total,
        2,
        "{backend}"
    );
    let not = Predicate::Not(Box::new(sw));
    assert_eq!(
        store.list_users(&t, &not, 1, 100).await.unwrap().total,
        15,
        "{backend}"
    );
}

support::on_each_database!(user_filters_run_in_the_database_case_insensitively);

async fn emails_are_matched_apart_case_insensitively_by_type_and_follow_a_replaced_user(
    database_url: &str,
) {
    let (backend, store, t, _) = twenty_five_users(database_url).await;
    // Email addresses are indexed apart and matched case-insensitively, by type too.
    let email = |type_: Option<&str>, op, v: &str| Predicate::Email {
        type_: type_.map(str::to_owned),
        op,
        value: v.to_owned(),
    };
    assert_eq!(
        store
            .list_users(
                &t,
                &email(Some("work"), CmpOp::Eq, "USER07@example.com"),
                1,
                10
            )
            .await
            .unwrap()
            .total,
        1,
        "{backend}"
    );
    assert_eq!(
        store
            .list_users(
                &t,
                &email(Some("home"), CmpOp::Eq, "user07@example.com"),
                1,
                10
            )
            .await
            .unwrap()
            .total,
        0,
        "{backend}"
    );
    assert_eq!(
        store
            .list_users(&t, &email(None, CmpOp::Ew, "@EXAMPLE.COM"), 1, 100)
            .await
            .unwrap()
            .total,
        25,
        "{backend}"
    );
    // A replaced user's old address no longer matches.
    let u7 = store
        .find_user_by_user_name(&t, "user07@example.com")
        .await
        .unwrap()
        .unwrap();
    let mut changed = user("User07@Example.com");
    changed.resource["emails"][0]["value"] = json!("seven@elsewhere.org");
    store.replace_user(&t, &u7.id, None, changed).await.unwrap();
    assert_eq!(
        store
            .list_users(&t, &email(None, CmpOp::Eq, "user07@example.com"), 1, 10)
            .await
            .unwrap()
            .total,
        0,
        "{backend}"
    );
    assert_eq!(
        store
            .list_users(
                &t,
                &email(Some("work"), CmpOp::Eq, "seven@elsewhere.org"),
                1,
                10
            )
            .await
            .unwrap()
            .total,
        1,
        "{backend}"
    );
}

support::on_each_database!(
    emails_are_matched_apart_case_insensitively_by_type_and_follow_a_replaced_user
);

async fn like_wildcards_in_filter_values_are_literal(database_url: &str) {
    let (backend, store, t, _) = twenty_five_users(database_url).await;
    // LIKE wildcards in values are literal.
    let wildcard = Predicate::Compare(Column::UserName, CmpOp::Co, Value::Text("%".into()));
    assert_eq!(
        store.list_users(&t, &wildcard, 1, 100).await.unwrap().total,
        0,
        "{backend}"
    );
}

support::on_each_database!(like_wildcards_in_filter_values_are_literal);

async fn groups_keep_their_members_in_step_with_users(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("groups");
    let a = store
        .create_user(&t, user("a@example.com"))
        .await
        .unwrap()
        .id;
    let b = store
        .create_user(&t, user("b@example.com"))
        .await
        .unwrap()
        .id;
    let c = store
        .create_user(&t, user("c@example.com"))
        .await
        .unwrap()
        .id;
    let g = store
        .create_group(
            &t,
            group("Engineering"),
            &[a.clone(), b.clone(), "unknown".into()],
        )
        .await
        .unwrap();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(g.members, expected, "{backend}");
    let g = store
        .change_members(
            &t,
            &g.id,
            std::slice::from_ref(&c),
            std::slice::from_ref(&a),
        )
        .await
        .unwrap();
    let mut expected = vec![b.clone(), c.clone()];
    expected.sort();
    assert_eq!(g.members, expected, "{backend}");
    assert_eq!(g.version, 2);
    let g = store
        .replace_group(
            &t,
            &g.id,
            Some(2),
            group("Engineering EU"),
            Some(std::slice::from_ref(&a)),
        )
        .await
        .unwrap();
    assert_eq!(
        (g.display_name.as_str(), g.members.clone()),
        ("Engineering EU", vec![a.clone()]),
        "{backend}"
    );
    assert_eq!(
        store.groups_of_user(&t, &a).await.unwrap(),
        vec![g.id.clone()]
    );
    let by_user = store
        .groups_of_users(&t, &[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!(by_user.get(&a), Some(&vec![g.id.clone()]), "{backend}");
    assert!(!by_user.contains_key(&b), "{backend}");
    store.delete_user(&t, &a).await.unwrap();
    assert!(
        store
            .get_group(&t, &g.id)
            .await
            .unwrap()
            .unwrap()
            .members
            .is_empty(),
        "{backend}: a deleted user leaves its groups"
    );
    let found = store
        .list_groups(&t, &eq(Column::DisplayName, "engineering eu"), 1, 10)
        .await
        .unwrap();
    assert_eq!(found.total, 1, "{backend}");
    assert!(store.delete_group(&t, &g.id).await.unwrap());
    assert_eq!(store.count_groups(&t).await.unwrap(), 0);
}

support::on_each_database!(groups_keep_their_members_in_step_with_users);

async fn a_page_of_groups_gives_each_group_its_own_members(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("group-pages");
    let mut users = Vec::new();
    for i in 0..4 {
        let u = store
            .create_user(&t, user(&format!("member{i}@example.com")))
            .await
            .unwrap();
        users.push(u.id);
    }
    // Group i has the first i users: the first has none.
    let mut expected = Vec::new();
    for i in 0..5 {
        let members = &users[..i.min(users.len())];
        let g = store
            .create_group(&t, group(&format!("Team {i}")), members)
            .await
            .unwrap();
        let mut sorted = members.to_vec();
        sorted.sort();
        expected.push((g.id, sorted));
    }
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let page = store
            .list_groups(&t, &Predicate::True, start, 2)
            .await
            .unwrap();
        assert_eq!(page.total, 5, "{backend}");
        seen.extend(page.items.into_iter().map(|g| (g.id, g.members)));
    }
    assert_eq!(
        seen, expected,
        "{backend}: every group on a page must carry its own members, in order"
    );
}

support::on_each_database!(a_page_of_groups_gives_each_group_its_own_members);

async fn assertion_ids_are_accepted_once_until_they_expire(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("replay");
    let later = Timestamp::now() + SignedDuration::from_mins(5);
    assert!(
        store.remember_assertion(&t, "_a1", later).await.unwrap(),
        "{backend}"
    );
    assert!(
        !store.remember_assertion(&t, "_a1", later).await.unwrap(),
        "{backend}: a replay must be detected"
    );
    assert!(
        store
            .remember_assertion(&support::unique_tenant("other"), "_a1", later)
            .await
            .unwrap(),
        "{backend}"
    );
    let soon = Timestamp::now() + SignedDuration::from_millis(300);
    assert!(store.remember_assertion(&t, "_a2", soon).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store.remember_assertion(&t, "_a2", later).await.unwrap(),
        "{backend}: expired entries are forgotten"
    );
    store.purge_expired().await.unwrap();
}

support::on_each_database!(assertion_ids_are_accepted_once_until_they_expire);

async fn sessions_end_with_their_user_expiry_or_sign_out_and_stay_in_their_tenant(
    database_url: &str,
) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("sessions");
    let other = support::unique_tenant("sessions-other");
    let ada = store
        .create_user(&t, user("ada@example.com"))
        .await
        .unwrap();
    // The store keeps microseconds.
    let later = Timestamp::from_microsecond(
        (Timestamp::now() + SignedDuration::from_hours(1)).as_microsecond(),
    )
    .unwrap();
    let sid = store.create_session(&t, &ada.id, later).await.unwrap();
    let (u, until, _) = store.session(&t, &sid).await.unwrap().expect(backend);
    assert_eq!((u.id.as_str(), until), (ada.id.as_str(), later));
    // With its groups, in one round trip.
    let (_, _, none) = store.session(&t, &sid).await.unwrap().unwrap();
    assert!(none.is_empty(), "{backend}");
    for name in ["ops", "eng"] {
        store
            .create_group(&t, group(name), std::slice::from_ref(&ada.id))
            .await
            .unwrap();
    }
    let (u, until, groups) = store.session(&t, &sid).await.unwrap().unwrap();
    assert_eq!((u.id.as_str(), until), (ada.id.as_str(), later));
    assert_eq!(groups, ["eng", "ops"], "{backend}");
    assert!(store.session(&other, &sid).await.unwrap().is_none());
    // Another tenant cannot use it; an unknown ID finds nothing.
    assert!(
        store.session(&other, &sid).await.unwrap().is_none(),
        "{backend}"
    );
    assert!(
        store.session(&t, "nope").await.unwrap().is_none(),
        "{backend}"
    );
    // Extended, then ended by sign-out.
    let further = later + SignedDuration::from_hours(1);
    store.extend_session(&t, &sid, further).await.unwrap();
    assert_eq!(store.session(&t, &sid).await.unwrap().unwrap().1, further);
    assert!(store.delete_session(&t, &sid).await.unwrap());
    assert!(
        store.session(&t, &sid).await.unwrap().is_none(),
        "{backend}"
    );
    // Expired sessions are not returned, and are purged.
    let past = Timestamp::now() - SignedDuration::from_secs(1);
    let old = store.create_session(&t, &ada.id, past).await.unwrap();
    assert!(
        store.session(&t, &old).await.unwrap().is_none(),
        "{backend}"
    );
    // Deleting the user ends their sessions.
    let sid = store.create_session(&t, &ada.id, later).await.unwrap();
    assert!(store.delete_user(&t, &ada.id).await.unwrap());
    assert!(
        store.session(&t, &sid).await.unwrap().is_none(),
        "{backend}"
    );
    store.purge_expired().await.unwrap();
}

support::on_each_database!(
    sessions_end_with_their_user_expiry_or_sign_out_and_stay_in_their_tenant
);

async fn sign_in_groups_are_created_once_and_never_touch_scim_groups(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("sign-in-groups");
    let ada = store
        .create_user(&t, user("ada@example.com"))
        .await
        .unwrap();
    let scim = store
        .create_group(&t, group("eng"), std::slice::from_ref(&ada.id))
        .await
        .unwrap();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Concurrent first sign-ins create each sign-in group once.
    let (first, second) = (names(&["ops", "Eng"]), names(&["OPS", "eng"]));
    let (a, b) = tokio::join!(
        store.set_sign_in_groups(&t, &ada.id, &first),
        store.set_sign_in_groups(&t, &ada.id, &second)
    );
    a.unwrap();
    b.unwrap();
    let all = store
        .list_groups(&t, &Predicate::True, 1, 100)
        .await
        .unwrap();
    assert_eq!(all.total, 3, "{backend}: SCIM eng, sign-in eng and ops");
    assert_eq!(
        store.groups_of_user(&t, &ada.id).await.unwrap().len(),
        3,
        "{backend}"
    );
    // Group names as forward-auth reads them, through a session.
    let sid = store
        .create_session(
            &t,
            &ada.id,
            Timestamp::now() + SignedDuration::from_hours(1),
        )
        .await
        .unwrap();
    let names = || async { store.session(&t, &sid).await.unwrap().unwrap().2 };
    let lower: std::collections::BTreeSet<String> =
        names().await.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(lower, ["eng", "ops"].map(String::from).into(), "{backend}");
    // Syncing to nothing removes sign-in memberships only.
    store.set_sign_in_groups(&t, &ada.id, &[]).await.unwrap();
    assert_eq!(names().await, vec!["eng".to_owned()], "{backend}");
    assert_eq!(
        store
            .get_group(&t, &scim.id)
            .await
            .unwrap()
            .unwrap()
            .members,
        vec![ada.id.clone()]
    );
    // Linking by email finds the user by any case.
    let found = store
        .find_users_by_email(&t, "ADA@example.com", 2)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{backend}");
}

support::on_each_database!(sign_in_groups_are_created_once_and_never_touch_scim_groups);

/// Fills `t` with a user in a group, a session and a consumed assertion ID; returns the
/// session ID.
async fn fill_tenant(store: &Store, t: &str) -> String {
    let ada = store.create_user(t, user("ada@example.com")).await.unwrap();
    store
        .create_group(t, group("eng"), std::slice::from_ref(&ada.id))
        .await
        .unwrap();
    let later = Timestamp::now() + SignedDuration::from_mins(5);
    assert!(store.remember_assertion(t, "_a1", later).await.unwrap());
    store.create_session(t, &ada.id, later).await.unwrap()
}

async fn a_tenant_belongs_to_one_identity_provider_uid_and_another_uid_starts_empty(
    database_url: &str,
) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("incarnation");
    let (uid1, uid2, uid3) = (
        support::random_id("uid-"),
        support::random_id("uid-"),
        support::random_id("uid-"),
    );
    let later = Timestamp::now() + SignedDuration::from_mins(5);
    // Rows stored before UIDs were recorded belong to the first UID seen: nothing of an
    // existing install is lost on upgrade.
    let sid = fill_tenant(&store, &t).await;
    assert_eq!(
        store.bind_tenant(&t, &uid1).await.unwrap(),
        Binding::Adopted,
        "{backend}"
    );
    assert_eq!(
        store.bind_tenant(&t, &uid1).await.unwrap(),
        Binding::Unchanged
    );
    assert_eq!(store.count_users(&t).await.unwrap(), 1, "{backend}");
    assert!(store.session(&t, &sid).await.unwrap().is_some());

    // Another UID under the same name (deleted and re-created): everything of the first
    // one is purged before the second is served.
    let Binding::Replaced {
        previous_uid,
        purged,
    } = store.bind_tenant(&t, &uid2).await.unwrap()
    else {
        panic!("{backend}: another UID must purge the tenant");
    };
    assert_eq!(previous_uid, uid1);
    assert_eq!(
        purged,
        Purged {
            users: 1,
            groups: 1,
            memberships: 1,
            sessions: 1,
            replay_cache: 1
        },
        "{backend}"
    );
    assert_eq!(store.count_users(&t).await.unwrap(), 0);
    assert_eq!(store.count_groups(&t).await.unwrap(), 0);
    assert!(store.session(&t, &sid).await.unwrap().is_none());
    assert!(
        store.remember_assertion(&t, "_a1", later).await.unwrap(),
        "{backend}: the replay cache no longer holds the old incarnation's IDs"
    );

    // A retired UID (a stale configuration) never takes the tenant back.
    store
        .create_user(&t, user("new@example.com"))
        .await
        .unwrap();
    assert_eq!(
        store.bind_tenant(&t, &uid1).await.unwrap(),
        Binding::Retired
    );
    assert_eq!(
        store.purge_tenant(&t, Some(&uid1)).await.unwrap(),
        None,
        "{backend}: purging a former incarnation leaves the current one alone"
    );
    assert_eq!(store.count_users(&t).await.unwrap(), 1);

    // Deleted for good: purged, and the next IdentityProvider of the name starts empty.
    let purged = store.purge_tenant(&t, Some(&uid2)).await.unwrap();
    assert_eq!(purged.map(|p| p.users), Some(1), "{backend}");
    assert_eq!(store.count_users(&t).await.unwrap(), 0);
    assert!(
        !store
            .stored_tenants()
            .await
            .unwrap()
            .iter()
            .any(|s| s.tenant == t)
    );
    assert_eq!(
        store.bind_tenant(&t, &uid3).await.unwrap(),
        Binding::Adopted
    );
    assert_eq!(
        store.bind_tenant(&t, &uid2).await.unwrap(),
        Binding::Retired
    );
}

support::on_each_database!(
    a_tenant_belongs_to_one_identity_provider_uid_and_another_uid_starts_empty
);

async fn concurrent_replicas_purge_a_replaced_tenant_once(database_url: &str) {
    let (backend, store) = store_on(database_url).await;
    let t = support::unique_tenant("race");
    let (old, new) = (support::random_id("uid-"), support::random_id("uid-"));
    fill_tenant(&store, &t).await;
    store.bind_tenant(&t, &old).await.unwrap();
    // Eight replicas see the new incarnation at once: exactly one purges.
    let binds: Vec<_> = (0..8)
        .map(|_| {
            let (store, t, new) = (store.clone(), t.clone(), new.clone());
            tokio::spawn(async move { store.bind_tenant(&t, &new).await })
        })
        .collect();
    let mut replaced = 0;
    for b in binds {
        match b.await.unwrap().unwrap() {
            Binding::Replaced { .. } => replaced += 1,
            Binding::Unchanged => {}
            other => panic!("{backend}: {other:?}"),
        }
    }
    assert_eq!(replaced, 1, "{backend}");
    assert_eq!(
        store
            .stored_tenants()
            .await
            .unwrap()
            .iter()
            .find(|s| s.tenant == t),
        Some(&StoredTenant {
            tenant: t.clone(),
            uid: Some(new.clone())
        })
    );
    // Rows of a tenant no IdentityProvider was ever bound to are not the server's to purge.
    let unbound = support::unique_tenant("unbound");
    fill_tenant(&store, &unbound).await;
    assert_eq!(store.purge_tenant(&unbound, None).await.unwrap(), None);
    assert_eq!(store.count_users(&unbound).await.unwrap(), 1, "{backend}");
}

support::on_each_database!(concurrent_replicas_purge_a_replaced_tenant_once);

#[tokio::test]
async fn tenants_stored_before_the_upgrade_are_adopted_by_their_identity_provider_or_purged() {
    // A database as the previous release left it: every migration up to Single Logout, with
    // the data of two IdentityProviders.
    let url = support::sqlite_url("upgrade");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    let migrator = sqlx::migrate::Migrator::new(support::repo_root().join("migrations"))
        .await
        .unwrap();
    migrator.run_to(20261210000005, &pool).await.unwrap();
    for tenant in ["team-a/okta", "team-b/gone"] {
        sqlx::query(
            "INSERT INTO scim_users (tenant, id, user_name, user_name_lower, external_id, active, resource, password_hash, scim_managed, version, created_us, modified_us) \
             VALUES ($1, 'u1', 'ada', 'ada', NULL, 1, '{}', NULL, 1, 1, 0, 0)",
        )
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = Store::connect(&url).await.unwrap();
    let stored = store.stored_tenants().await.unwrap();
    assert_eq!(
        stored,
        vec![
            StoredTenant {
                tenant: "team-a/okta".into(),
                uid: None
            },
            StoredTenant {
                tenant: "team-b/gone".into(),
                uid: None
            },
        ],
        "the UID of data stored before is not known"
    );
    // The IdentityProvider serving it adopts it: nothing is lost on upgrade.
    assert_eq!(
        store.bind_tenant("team-a/okta", "uid-a").await.unwrap(),
        Binding::Adopted
    );
    assert_eq!(store.count_users("team-a/okta").await.unwrap(), 1);
    // One deleted before the upgrade is purged, so a new one of that name starts empty.
    let purged = store.purge_tenant("team-b/gone", None).await.unwrap();
    assert_eq!(purged.map(|p| p.users), Some(1));
    assert_eq!(store.count_users("team-b/gone").await.unwrap(), 0);
    assert_eq!(
        store.bind_tenant("team-b/gone", "uid-b").await.unwrap(),
        Binding::Adopted
    );
}

/// A database of its own on the test PostgreSQL server, for a test that rewrites migration
/// history; dropped by the caller.
async fn own_postgres_database(name: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let shared = support::postgres_url();
    let database = format!("{name}_{}", std::process::id());
    let admin = sqlx::AnyPool::connect(&shared).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = format!("{}/{database}", shared.rsplit_once('/').unwrap().0);
    (url, database)
}

#[tokio::test]
async fn keys_lowercased_with_unicode_rules_are_folded_again_at_upgrade() {
    const FOLDING_MIGRATION: i64 = 20261210000007;
    let (pg_url, pg_database) = own_postgres_database("sso_refold").await;
    for url in [support::sqlite_url("refold"), pg_url] {
        let t = support::unique_tenant("refold");
        // A user spelled with the KELVIN SIGN, which Unicode lower-casing made "kim".
        let kelvin = "\u{212A}im@example.com";
        let (other, group) = {
            let store = Store::connect(&url).await.unwrap();
            let other = store.create_user(&t, user(kelvin)).await.unwrap();
            let group = store
                .create_group(&t, group("\u{212A}ernel"), &[])
                .await
                .unwrap();
            (other, group)
        };
        // The database as an earlier release left it: keys lower-cased with Unicode rules, and
        // the folding migration not applied yet.
        {
            let db = sqlx::AnyPool::connect(&url).await.unwrap();
            for sql in [
                "UPDATE scim_users SET user_name_lower = 'kim@example.com' WHERE tenant = $1",
                "UPDATE scim_user_emails SET value_lower = 'kim@example.com' WHERE tenant = $1",
                "UPDATE scim_groups SET display_name_lower = 'kernel' WHERE tenant = $1",
            ] {
                sqlx::query(sql).bind(&t).execute(&db).await.unwrap();
            }
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
                .bind(FOLDING_MIGRATION)
                .execute(&db)
                .await
                .unwrap();
            sqlx::query("DROP TABLE store_pending_tasks")
                .execute(&db)
                .await
                .unwrap();
            db.close().await;
        }
        let store = Store::connect(&url).await.unwrap();
        let by_name = async |name: &str| {
            let found = store.find_user_by_user_name(&t, name).await.unwrap();
            found.map(|u| u.id)
        };
        let by_email = async |name: &str| {
            let found = store.find_users_by_email(&t, name, 5).await.unwrap();
            found.into_iter().map(|u| u.id).collect::<Vec<_>>()
        };
        assert_eq!(by_name(kelvin).await, Some(other.id.clone()), "{url}");
        assert_eq!(by_name("kim@example.com").await, None, "{url}");
        assert_eq!(by_email(kelvin).await, vec![other.id.clone()], "{url}");
        assert_eq!(
            by_email("kim@example.com").await,
            Vec::<String>::new(),
            "{url}"
        );
        // kim can now be created: no collision with the other user.
        let kim = store
            .create_user(&t, user("Kim@example.com"))
            .await
            .unwrap();
        assert_eq!(
            by_name("kim@example.com").await,
            Some(kim.id.clone()),
            "{url}"
        );
        assert_eq!(
            by_email("KIM@example.com").await,
            vec![kim.id.clone()],
            "{url}"
        );
        let groups = store
            .list_groups(&t, &eq(Column::DisplayName, "kernel"), 1, 10)
            .await
            .unwrap();
        assert_eq!(groups.total, 0, "{url}");
        let groups = store
            .list_groups(&t, &eq(Column::DisplayName, "\u{212A}ERNEL"), 1, 10)
            .await
            .unwrap();
        assert_eq!(groups.total, 1, "{url}");
        assert_eq!(groups.items[0].id, group.id, "{url}");
    }
    let admin = sqlx::AnyPool::connect(&support::postgres_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {pg_database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}
