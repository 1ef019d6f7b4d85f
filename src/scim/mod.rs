//! The SCIM 2.0 protocol (RFC 7643, RFC 7644): resources, filters, PATCH, lists and errors.
//! Pure code: no HTTP framework and no SQL here.

pub mod error;
pub mod filter;
pub mod patch;
pub mod schema;
pub mod search;

pub use error::ScimError;

use serde_json::{Map, Value, json};

use crate::domain::{Group, GroupInput, User, UserInput};
use patch::{CORE_GROUP, CORE_USER, ENTERPRISE_USER, get_ci};

/// The ListResponse message URN.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Largest page the server returns (also the page size when `count` is absent).
pub const MAX_PAGE: i64 = 200;

/// Attributes the server owns; whatever a client sends for them is ignored, in any spelling
/// (attribute names are case-insensitive, so `ID` and `Meta` are these too).
const SERVER_OWNED: [&str; 4] = ["id", "meta", "schemas", "groups"];

/// Attributes a rendered user gets from the server's own fields; a stored attribute of the
/// same name in any spelling is never rendered.
const USER_RENDERED: [&str; 8] = [
    "schemas",
    "id",
    "externalId",
    "userName",
    "active",
    "password",
    "groups",
    "meta",
];

/// Attributes a rendered group gets from the server's own fields.
const GROUP_RENDERED: [&str; 6] = [
    "schemas",
    "id",
    "externalId",
    "displayName",
    "members",
    "meta",
];

/// A user body (POST or PUT) turned into what the store keeps, and whether it carried a
/// `password`. Passwords are checked to be strings and then discarded: the server never signs
/// anyone in with a password, so it keeps none.
pub fn user_input(body: &Value) -> Result<(UserInput, bool), ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    check_schemas(obj, CORE_USER)?;
    user_fields(Value::Object(obj.clone()))
}

/// Turns a user's full attribute set (as PATCH leaves it) into stored fields, and whether it
/// carried a `password` (discarded, see [`user_input`]).
pub fn user_fields(mut resource: Value) -> Result<(UserInput, bool), ScimError> {
    patch::coerce_booleans(&mut resource)?;
    let mut map = match resource {
        Value::Object(m) => m,
        _ => return Err(ScimError::invalid_syntax("the user must be a JSON object")),
    };
    let user_name = take(&mut map, "userName")?
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
    let external_id = match take(&mut map, "externalId")? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ScimError::invalid_value("externalId must be a string")),
    };
    let active = match take(&mut map, "active")? {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ScimError::invalid_value("active must be true or false")),
    };
    let password = match take(&mut map, "password")? {
        None | Some(Value::Null) => false,
        Some(Value::String(_)) => true,
        Some(_) => return Err(ScimError::invalid_value("password must be a string")),
    };
    for k in SERVER_OWNED {
        map.retain(|key, _| !key.eq_ignore_ascii_case(k));
    }
    drop_unmodelled_extensions(&mut map, &[ENTERPRISE_USER]);
    Ok((
        UserInput {
            user_name,
            external_id,
            active,
            resource: Value::Object(map),
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
    check_schemas(obj, CORE_GROUP)?;
    let mut map = obj.clone();
    let display_name = take(&mut map, "displayName")?
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ScimError::invalid_value("displayName is required and must be a non-empty string")
        })?;
    let external_id = match take(&mut map, "externalId")? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ScimError::invalid_value("externalId must be a string")),
    };
    let members = member_ids(take(&mut map, "members")?.as_ref())?;
    for k in SERVER_OWNED {
        map.retain(|key, _| !key.eq_ignore_ascii_case(k));
    }
    drop_unmodelled_extensions(&mut map, &[]);
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

/// Removes attribute `key` in whatever spelling the body uses and returns its value. A body
/// that names it twice in different spellings (`password` and `Password`) is refused: which
/// one was meant cannot be told, and the other must not be stored as an ordinary attribute.
fn take(map: &mut Map<String, Value>, key: &str) -> Result<Option<Value>, ScimError> {
    let spellings: Vec<String> = map
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .collect();
    if spellings.len() > 1 {
        return Err(ScimError::invalid_syntax(format!(
            "the body names the attribute {key} more than once ({}): attribute names are case-insensitive, send it once",
            spellings.join(", ")
        )));
    }
    Ok(spellings.first().and_then(|k| map.remove(k)))
}

/// The stored attributes of `resource` except those named (in any spelling) in `rendered`.
fn stored_attributes<'a>(
    resource: &'a Value,
    rendered: &'a [&str],
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    resource
        .as_object()
        .into_iter()
        .flatten()
        .filter(move |(k, _)| !rendered.iter().any(|r| r.eq_ignore_ascii_case(k)))
}

/// Checks a body's `schemas`: an array of strings that includes `core`. Other URNs are
/// accepted (Entra adds `http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`
/// to every group, tenants add their own extensions); attributes of extensions the server does
/// not model are dropped by [`drop_unmodelled_extensions`].
fn check_schemas(obj: &Map<String, Value>, core: &str) -> Result<(), ScimError> {
    let Some(schemas) = get_ci(obj, "schemas") else {
        return Err(ScimError::invalid_syntax(format!(
            "the body must list its schemas, e.g. [\"{core}\"]"
        )));
    };
    let list = schemas
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("schemas must be an array of URNs"))?;
    let mut has_core = false;
    for s in list {
        let s = s
            .as_str()
            .ok_or_else(|| ScimError::invalid_syntax("schemas must be an array of URNs"))?;
        has_core |= s.eq_ignore_ascii_case(core);
    }
    if !has_core {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must include {core} (other schema URNs may be listed alongside it)"
        )));
    }
    Ok(())
}

/// Whether an attribute name is a schema URN (an extension's attribute container) rather
/// than an attribute of the core schema.
pub fn is_schema_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.starts_with("urn:") || lower.starts_with("http://") || lower.starts_with("https://")
}

/// Removes the attributes of extensions the server does not model (every schema-URN key
/// except those in `kept`): they are accepted and ignored, never stored or returned.
fn drop_unmodelled_extensions(map: &mut Map<String, Value>, kept: &[&str]) {
    map.retain(|k, _| !is_schema_key(k) || kept.iter().any(|u| u.eq_ignore_ascii_case(k)));
}

/// The ETag of a resource version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Renders a stored user as a SCIM resource with the IDs of its groups. The server's own
/// fields come last: nothing stored can stand in for them.
pub fn render_user(user: &User, group_ids: &[String], base_url: &str) -> Value {
    // `password` is never returned (it is not stored in the resource either).
    let mut m: Map<String, Value> = stored_attributes(&user.resource, &USER_RENDERED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
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

/// Renders a stored group as a SCIM resource, the server's own fields last.
pub fn render_group(group: &Group, base_url: &str) -> Value {
    let mut m: Map<String, Value> = stored_attributes(&group.resource, &GROUP_RENDERED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    m.insert("schemas".into(), json!([CORE_GROUP]));
    m.insert("id".into(), json!(group.id));
    if let Some(e) = &group.external_id {
        m.insert("externalId".into(), json!(e));
    }
    m.insert("displayName".into(), json!(group.display_name));
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

/// Applies `attributes` / `excludedAttributes` (RFC 7644 §3.9: comma-separated,
/// case-insensitive attribute paths — `name`, `name.givenName`, `emails.value`, URN-qualified
/// core paths and enterprise-extension paths such as
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`) to a rendered
/// resource. `id` and `schemas` are always returned; `attributes` wins when both are given.
pub fn project(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(mut m) = resource else {
        return resource;
    };
    let paths = |s: &str| s.split(',').filter_map(attribute_path).collect::<Vec<_>>();
    let always = |k: &str| k.eq_ignore_ascii_case("id") || k.eq_ignore_ascii_case("schemas");
    let subs_of = |paths: &[(String, Option<String>)], key: &str| -> Vec<String> {
        paths
            .iter()
            .filter(|(top, _)| top.eq_ignore_ascii_case(key))
            .filter_map(|(_, sub)| sub.clone())
            .collect()
    };
    if let Some(wanted) = attributes.map(paths).filter(|l| !l.is_empty()) {
        m.retain(|k, _| always(k) || wanted.iter().any(|(top, _)| top.eq_ignore_ascii_case(k)));
        for (k, v) in m.iter_mut() {
            let whole = wanted
                .iter()
                .any(|(top, sub)| sub.is_none() && top.eq_ignore_ascii_case(k));
            if !always(k) && !whole {
                let subs = subs_of(&wanted, k);
                retain_children(v, |child| {
                    subs.iter().any(|s| s.eq_ignore_ascii_case(child))
                });
            }
        }
    } else if let Some(unwanted) = excluded.map(paths) {
        m.retain(|k, _| {
            always(k)
                || !unwanted
                    .iter()
                    .any(|(top, sub)| sub.is_none() && top.eq_ignore_ascii_case(k))
        });
        for (k, v) in m.iter_mut() {
            let subs = subs_of(&unwanted, k);
            if !always(k) && !subs.is_empty() {
                retain_children(v, |child| {
                    !subs.iter().any(|s| s.eq_ignore_ascii_case(child))
                });
            }
        }
    }
    Value::Object(m)
}

/// An attribute path as (top-level key, sub-attribute): extension attributes are
/// sub-attributes of the extension's URN key.
fn attribute_path(text: &str) -> Option<(String, Option<String>)> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let strip = |prefix: &str| {
        text.get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| &text[prefix.len()..])
    };
    if text.eq_ignore_ascii_case(ENTERPRISE_USER) {
        return Some((ENTERPRISE_USER.to_owned(), None));
    }
    if let Some(rest) = strip(&format!("{ENTERPRISE_USER}:")) {
        let attr = rest.split('.').next().unwrap_or(rest);
        return Some((ENTERPRISE_USER.to_owned(), Some(attr.to_owned())));
    }
    let core = [CORE_USER, CORE_GROUP]
        .iter()
        .find_map(|urn| strip(&format!("{urn}:")))
        .unwrap_or(text);
    Some(match core.split_once('.') {
        Some((top, sub)) => (top.to_owned(), Some(sub.to_owned())),
        None => (core.to_owned(), None),
    })
}

/// Keeps the children of a complex value (or of every element of a multi-valued one) whose
/// names pass `keep`.
fn retain_children(value: &mut Value, keep: impl Fn(&str) -> bool) {
    match value {
        Value::Object(o) => o.retain(|k, _| keep(k)),
        Value::Array(items) => {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                item.retain(|k, _| keep(k));
            }
        }
        _ => {}
    }
}

/// A 400 `invalidValue` for member IDs that name no user of the IdentityProvider.
pub fn unknown_members(ids: &[String]) -> ScimError {
    let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
    let more = if ids.len() > shown.len() {
        format!(" and {} more", ids.len() - shown.len())
    } else {
        String::new()
    };
    ScimError::invalid_value(format!(
        "members: no User with id {}{more} in this IdentityProvider; provision the user (POST /Users) before adding it to a group",
        shown.join(", ")
    ))
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
        assert!(password, "the password is noticed");
        assert!(!input.resource.to_string().contains("correct horse"));
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
        let (input, _) = user_input(&json!({ "schemas": [CORE_USER, "urn:example:custom"], "userName": "x", "urn:example:custom": { "a": 1 }, "title": "Dr" })).unwrap();
        assert_eq!(input.resource, json!({ "title": "Dr" }));
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
    fn projection_handles_extension_paths_and_sub_attributes_of_lists() {
        let u = json!({ "schemas": [CORE_USER], "id": "1", "userName": "a",
            "name": { "givenName": "Ada", "familyName": "L" },
            "emails": [{ "value": "a@x", "type": "work" }, { "value": "b@x", "type": "home" }],
            ENTERPRISE_USER: { "department": "Maths", "costCenter": "42" } });
        let p = project(
            u.clone(),
            Some(&format!("{ENTERPRISE_USER}:department,emails.value")),
            None,
        );
        assert_eq!(
            p,
            json!({ "schemas": [CORE_USER], "id": "1", "emails": [{ "value": "a@x" }, { "value": "b@x" }], ENTERPRISE_USER: { "department": "Maths" } })
        );
        let p = project(
            u,
            None,
            Some(&format!(
                "name.givenName,{ENTERPRISE_USER}:costCenter,id,urn:ietf:params:scim:schemas:core:2.0:User:emails"
            )),
        );
        assert_eq!(p["name"], json!({ "familyName": "L" }));
        assert_eq!(p[ENTERPRISE_USER], json!({ "department": "Maths" }));
        assert!(p.get("emails").is_none() && p["id"] == "1");
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
