//! The SCIM 2.0 protocol (RFC 7643, RFC 7644): resources, filters, PATCH, lists and errors.
//! Pure code: no HTTP framework and no SQL here.

pub mod error;
pub mod filter;
pub mod patch;

pub use error::ScimError;

use serde_json::{Map, Value, json};

use crate::store::{Group, GroupInput, User, UserInput};
use patch::{CORE_GROUP, CORE_USER, ENTERPRISE_USER, get_ci};

/// The ListResponse message URN.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Largest page the server returns (also the page size when `count` is absent).
pub const MAX_PAGE: i64 = 200;

/// Attributes the server owns; whatever a client sends for them is ignored.
const SERVER_OWNED: [&str; 4] = ["id", "meta", "schemas", "groups"];

/// A user body (POST or PUT) turned into what the store keeps. `password`, when present, is
/// returned separately so the caller can hash it; it never reaches the stored resource.
pub fn user_input(body: &Value) -> Result<(UserInput, Option<String>), ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    check_schemas(obj, &[CORE_USER, ENTERPRISE_USER])?;
    user_fields(Value::Object(obj.clone()))
}

/// Splits a user's full attribute set (as PATCH leaves it) into stored fields and password.
pub fn user_fields(mut resource: Value) -> Result<(UserInput, Option<String>), ScimError> {
    patch::coerce_booleans(&mut resource)?;
    let mut map = match resource {
        Value::Object(m) => m,
        _ => return Err(ScimError::invalid_syntax("the user must be a JSON object")),
    };
    let user_name = take(&mut map, "userName")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ScimError::invalid_value("userName is required and must be a non-empty string")
        })?;
    if user_name.len() > 512 {
        return Err(ScimError::invalid_value(
            "userName is longer than 512 characters",
        ));
    }
    let external_id = match take(&mut map, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ScimError::invalid_value("externalId must be a string")),
    };
    let active = match take(&mut map, "active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ScimError::invalid_value("active must be true or false")),
    };
    let password = match take(&mut map, "password") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ScimError::invalid_value("password must be a string")),
    };
    for k in SERVER_OWNED {
        take(&mut map, k);
    }
    Ok((
        UserInput {
            user_name,
            external_id,
            active,
            resource: Value::Object(map),
            password_hash: None,
            scim_managed: true,
        },
        password,
    ))
}

/// A user's full attribute set, as PATCH sees it.
pub fn user_patch_view(user: &User) -> Value {
    let mut m = user.resource.as_object().cloned().unwrap_or_default();
    m.insert("userName".into(), json!(user.user_name));
    m.insert("active".into(), json!(user.active));
    if let Some(e) = &user.external_id {
        m.insert("externalId".into(), json!(e));
    }
    Value::Object(m)
}

/// A group body (POST or PUT): the group's fields and its member IDs.
pub fn group_input(body: &Value) -> Result<(GroupInput, Vec<String>), ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    check_schemas(obj, &[CORE_GROUP])?;
    let mut map = obj.clone();
    let display_name = take(&mut map, "displayName")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ScimError::invalid_value("displayName is required and must be a non-empty string")
        })?;
    let external_id = match take(&mut map, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ScimError::invalid_value("externalId must be a string")),
    };
    let members = member_ids(take(&mut map, "members").as_ref())?;
    for k in SERVER_OWNED {
        take(&mut map, k);
    }
    Ok((
        GroupInput {
            display_name,
            external_id,
            resource: Value::Object(map),
            scim_managed: true,
        },
        members,
    ))
}

/// The `value`s of a members array.
pub fn member_ids(members: Option<&Value>) -> Result<Vec<String>, ScimError> {
    match members {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.as_object()
                    .and_then(|o| get_ci(o, "value"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ScimError::invalid_value(
                            "each member needs a string value (the member's id)",
                        )
                    })
            })
            .collect(),
        Some(_) => Err(ScimError::invalid_value("members must be an array")),
    }
}

fn take(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let k = map.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()?;
    map.remove(&k)
}

fn check_schemas(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), ScimError> {
    let Some(schemas) = get_ci(obj, "schemas") else {
        return Err(ScimError::invalid_syntax(format!(
            "the body must list its schemas, e.g. [\"{}\"]",
            allowed[0]
        )));
    };
    let list = schemas
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("schemas must be an array of URNs"))?;
    for s in list {
        let s = s
            .as_str()
            .ok_or_else(|| ScimError::invalid_syntax("schemas must be an array of URNs"))?;
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) {
            return Err(ScimError::invalid_syntax(format!(
                "unknown schema {s}: this endpoint supports {}",
                allowed.join(", ")
            )));
        }
    }
    if !list.iter().any(|s| {
        s.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(allowed[0]))
    }) {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must include {}",
            allowed[0]
        )));
    }
    Ok(())
}

/// The ETag of a resource version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Renders a stored user as a SCIM resource with the IDs of its groups.
pub fn render_user(user: &User, group_ids: &[String], base_url: &str) -> Value {
    let mut m = Map::new();
    let mut schemas = vec![json!(CORE_USER)];
    if user
        .resource
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case(ENTERPRISE_USER)))
    {
        schemas.push(json!(ENTERPRISE_USER));
    }
    m.insert("schemas".into(), Value::Array(schemas));
    m.insert("id".into(), json!(user.id));
    if let Some(e) = &user.external_id {
        m.insert("externalId".into(), json!(e));
    }
    m.insert("userName".into(), json!(user.user_name));
    m.insert("active".into(), json!(user.active));
    if let Some(o) = user.resource.as_object() {
        for (k, v) in o {
            m.insert(k.clone(), v.clone());
        }
    }
    m.insert(
        "groups".into(),
        Value::Array(
            group_ids
                .iter()
                .map(|id| json!({ "value": id, "$ref": format!("{base_url}/Groups/{id}") }))
                .collect(),
        ),
    );
    m.insert(
        "meta".into(),
        meta(
            "User",
            user.version,
            user.created,
            user.last_modified,
            &format!("{base_url}/Users/{}", user.id),
        ),
    );
    Value::Object(m)
}

/// Renders a stored group as a SCIM resource.
pub fn render_group(group: &Group, base_url: &str) -> Value {
    let mut m = Map::new();
    m.insert("schemas".into(), json!([CORE_GROUP]));
    m.insert("id".into(), json!(group.id));
    if let Some(e) = &group.external_id {
        m.insert("externalId".into(), json!(e));
    }
    m.insert("displayName".into(), json!(group.display_name));
    if let Some(o) = group.resource.as_object() {
        for (k, v) in o {
            m.insert(k.clone(), v.clone());
        }
    }
    m.insert(
        "members".into(),
        Value::Array(group.members.iter().map(|id| json!({ "value": id, "$ref": format!("{base_url}/Users/{id}"), "type": "User" })).collect()),
    );
    m.insert(
        "meta".into(),
        meta(
            "Group",
            group.version,
            group.created,
            group.last_modified,
            &format!("{base_url}/Groups/{}", group.id),
        ),
    );
    Value::Object(m)
}

/// A group's full attribute set, as PATCH sees it.
pub fn group_patch_view(group: &Group) -> Value {
    let mut m = group.resource.as_object().cloned().unwrap_or_default();
    m.insert("displayName".into(), json!(group.display_name));
    if let Some(e) = &group.external_id {
        m.insert("externalId".into(), json!(e));
    }
    m.insert(
        "members".into(),
        Value::Array(
            group
                .members
                .iter()
                .map(|id| json!({ "value": id }))
                .collect(),
        ),
    );
    Value::Object(m)
}

/// Splits a group's full attribute set (as PATCH leaves it) into stored fields and members.
pub fn group_fields(view: Value) -> Result<(GroupInput, Vec<String>), ScimError> {
    let mut body = view;
    if let Some(o) = body.as_object_mut() {
        o.insert("schemas".into(), json!([CORE_GROUP]));
    }
    group_input(&body)
}

fn meta(
    kind: &str,
    version: i64,
    created: jiff::Timestamp,
    modified: jiff::Timestamp,
    location: &str,
) -> Value {
    json!({
        "resourceType": kind,
        "created": created.to_string(),
        "lastModified": modified.to_string(),
        "location": location,
        "version": etag(version),
    })
}

/// Applies `attributes` / `excludedAttributes` (comma-separated, case-insensitive, top-level
/// or `parent.child`) to a rendered resource. `id` and `schemas` are always returned.
pub fn project(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(mut m) = resource else {
        return resource;
    };
    let list = |s: &str| {
        s.split(',')
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty())
            .map(strip_core_urn)
            .collect::<Vec<_>>()
    };
    if let Some(attrs) = attributes.map(list).filter(|l| !l.is_empty()) {
        let keep = |k: &str| {
            let k = k.to_ascii_lowercase();
            k == "id"
                || k == "schemas"
                || attrs
                    .iter()
                    .any(|a| a == &k || a.split('.').next() == Some(k.as_str()))
        };
        m.retain(|k, _| keep(k));
        // Sub-attribute selections (name.givenName) keep only those children, unless the
        // parent itself was asked for too.
        let parents: Vec<&str> = attrs
            .iter()
            .filter_map(|a| a.split_once('.').map(|(p, _)| p))
            .collect();
        for parent in parents {
            if attrs.iter().any(|x| x == parent) {
                continue;
            }
            let wanted: Vec<&str> = attrs
                .iter()
                .filter_map(|x| {
                    x.split_once('.')
                        .filter(|(p, _)| *p == parent)
                        .map(|(_, c)| c)
                })
                .collect();
            if let Some(Value::Object(inner)) = m
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(parent))
                .map(|(_, v)| v)
            {
                inner.retain(|ik, _| wanted.iter().any(|w| w.eq_ignore_ascii_case(ik)));
            }
        }
    } else if let Some(excl) = excluded.map(list) {
        m.retain(|k, _| {
            let k = k.to_ascii_lowercase();
            k == "id" || k == "schemas" || !excl.contains(&k)
        });
    }
    Value::Object(m)
}

fn strip_core_urn(a: String) -> String {
    for urn in [CORE_USER, CORE_GROUP] {
        let prefix = format!("{}:", urn.to_ascii_lowercase());
        if let Some(rest) = a.strip_prefix(&prefix) {
            return rest.to_owned();
        }
    }
    a
}

/// A ListResponse.
pub fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// Reads `startIndex` and `count` (RFC 7644 §3.4.2.4): 1-based start, count clamped to
/// `0..=MAX_PAGE`, absent count means [`MAX_PAGE`].
pub fn paging(start_index: Option<&str>, count: Option<&str>) -> Result<(i64, i64), ScimError> {
    let start = match start_index {
        None => 1,
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| {
                ScimError::invalid_value(format!("startIndex must be an integer, got {s:?}"))
            })?
            .max(1),
    };
    let count = match count {
        None => MAX_PAGE,
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ScimError::invalid_value(format!("count must be an integer, got {s:?}")))?
            .clamp(0, MAX_PAGE),
    };
    Ok((start, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_user_bodies_are_split_into_fields_and_the_rest_kept_exactly() {
        let body = json!({
            "schemas": [CORE_USER], "userName": "Ada@Example.com", "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [{ "primary": true, "value": "ada@example.com", "type": "work" }], "displayName": "Ada Lovelace",
            "locale": "en-US", "externalId": "00u1", "groups": [], "password": "correct horse", "active": true, "id": "client-sent"
        });
        let (input, password) = user_input(&body).unwrap();
        assert_eq!(input.user_name, "Ada@Example.com");
        assert_eq!(input.external_id.as_deref(), Some("00u1"));
        assert!(input.active);
        assert_eq!(password.as_deref(), Some("correct horse"));
        let r = input.resource.as_object().unwrap();
        assert!(r.get("password").is_none() && r.get("id").is_none() && r.get("groups").is_none());
        assert_eq!(r["locale"], "en-US");
    }

    #[test]
    fn entra_string_booleans_and_unknown_schemas() {
        let body = json!({ "schemas": [CORE_USER, ENTERPRISE_USER], "userName": "x", "active": "False", ENTERPRISE_USER: { "department": "R&D" } });
        let (input, _) = user_input(&body).unwrap();
        assert!(!input.active);
        let err =
            user_input(&json!({ "schemas": ["urn:example:custom"], "userName": "x" })).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidSyntax"));
        for bad in [
            json!([]),
            json!({ "schemas": [CORE_USER] }),
            json!({ "schemas": [CORE_USER], "userName": 5 }),
            json!({ "schemas": [CORE_USER], "userName": "x", "active": "maybe" }),
        ] {
            assert_eq!(user_input(&bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn projection_keeps_id_and_schemas_and_honours_excluded_members() {
        let g = json!({ "schemas": [CORE_GROUP], "id": "1", "displayName": "Eng", "members": [{ "value": "u" }], "meta": {} });
        let p = project(g.clone(), None, Some("members"));
        assert!(
            p.get("members").is_none() && p.get("displayName").is_some() && p.get("id").is_some()
        );
        let p = project(g, Some("displayName"), None);
        assert_eq!(p.as_object().unwrap().len(), 3);
        let u = json!({ "schemas": [CORE_USER], "id": "1", "name": { "givenName": "Ada", "familyName": "L" }, "userName": "a" });
        assert_eq!(
            project(u, Some("name.givenName"), None)["name"],
            json!({ "givenName": "Ada" })
        );
    }

    #[test]
    fn paging_clamps_huge_counts_and_rejects_garbage() {
        assert_eq!(paging(None, None).unwrap(), (1, MAX_PAGE));
        assert_eq!(
            paging(Some("0"), Some("1000000000")).unwrap(),
            (1, MAX_PAGE)
        );
        assert_eq!(paging(Some("3"), Some("-5")).unwrap(), (3, 0));
        assert_eq!(paging(Some("x"), None).unwrap_err().status, 400);
    }
}
