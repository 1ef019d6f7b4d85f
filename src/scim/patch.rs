//! SCIM PATCH (RFC 7644 §3.5.2) over a resource held as JSON, in the dialects real IdPs send:
//! Okta's path-less `replace` with an object value, Entra's capitalised ops, string booleans,
//! filtered paths that create the element when missing, URN-qualified extension paths and
//! path-less values with dotted keys (`aadOptscim062020`).

use scim_v2::filter::{
    AttrExp, AttrPath, CompValue, CompareOp, PatchPath, PatchValuePath, ValFilter,
};
use serde_json::{Map, Value};

use super::ScimError;

/// The enterprise user extension URN.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core user schema URN.
pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core group schema URN.
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The PatchOp message URN.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One operation of a PATCH request.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// add, replace or remove.
    pub op: Op,
    /// The target path; none means the value names its targets.
    pub path: Option<String>,
    /// The value.
    pub value: Option<Value>,
}

/// The PATCH operation kind (case-insensitive on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// add.
    Add,
    /// replace.
    Replace,
    /// remove.
    Remove,
}

/// Parses a PatchOp request body.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the PATCH body must be a JSON object"))?;
    let schemas = get_ci(obj, "schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| {
        s.iter()
            .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
    }) {
        return Err(ScimError::invalid_syntax(format!(
            "the PATCH body must list the schema {PATCH_OP}"
        )));
    }
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("the PATCH body needs an Operations array"))?;
    if ops.len() > 1000 {
        return Err(ScimError::invalid_syntax(
            "at most 1000 operations per PATCH",
        ));
    }
    ops.iter()
        .map(|op| {
            let o = op
                .as_object()
                .ok_or_else(|| ScimError::invalid_syntax("each operation must be an object"))?;
            let kind = get_ci(o, "op")
                .and_then(Value::as_str)
                .ok_or_else(|| ScimError::invalid_syntax("each operation needs an op"))?;
            let op = match kind.to_ascii_lowercase().as_str() {
                "add" => Op::Add,
                "replace" => Op::Replace,
                "remove" => Op::Remove,
                other => {
                    return Err(ScimError::invalid_syntax(format!(
                        "unknown op {other:?}: use add, replace or remove"
                    )));
                }
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(s.trim().to_owned()),
                Some(_) => return Err(ScimError::invalid_path("path must be a string")),
            };
            let value = get_ci(o, "value").cloned();
            if op != Op::Remove && value.is_none() {
                return Err(ScimError::invalid_value(format!("{kind} needs a value")));
            }
            if op == Op::Remove && path.is_none() {
                return Err(ScimError::no_target("remove needs a path"));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// Member IDs to add and to remove.
pub type MemberChanges = (Vec<String>, Vec<String>);

/// When every operation only adds or removes group members (`add` to `members`, `remove` of
/// `members[value eq "…"]`, `remove` of `members` with a value list), the member IDs to add and
/// to remove; `None` for anything else.
pub fn member_changes(ops: &[Operation]) -> Result<Option<MemberChanges>, ScimError> {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for op in ops {
        let Some(path) = op.path.as_deref() else {
            return Ok(None);
        };
        if path.eq_ignore_ascii_case("members") {
            match (op.op, &op.value) {
                (Op::Add, Some(v @ Value::Array(_))) => add.extend(super::member_ids(Some(v))?),
                (Op::Remove, Some(v @ Value::Array(_))) => {
                    remove.extend(super::member_ids(Some(v))?)
                }
                _ => return Ok(None),
            }
            continue;
        }
        if op.op != Op::Remove {
            return Ok(None);
        }
        let Ok(PatchPath::Value(vp)) = path.parse::<PatchPath>() else {
            return Ok(None);
        };
        match (&vp.filter, &vp.sub_attr) {
            (
                ValFilter::Attr(AttrExp::Comparison(attr, CompareOp::Eq, CompValue::Str(id))),
                None,
            ) if vp.attr.name.eq_ignore_ascii_case("members")
                && attr.name.eq_ignore_ascii_case("value") =>
            {
                remove.push(id.clone());
            }
            _ => return Ok(None),
        }
    }
    Ok(Some((add, remove)))
}

/// Finds a key case-insensitively.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The existing key matching `key` case-insensitively, or `key` itself.
fn existing_key(obj: &Map<String, Value>, key: &str) -> String {
    if obj.contains_key(key) {
        return key.to_owned();
    }
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

fn is_urn(s: &str) -> bool {
    s.len() > 4 && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// Applies `ops` in order to `resource`, a JSON object holding every attribute of the
/// resource (including `userName`, `active`, extension objects under their URN).
pub fn apply(resource: &mut Value, ops: &[Operation]) -> Result<(), ScimError> {
    let root = resource
        .as_object_mut()
        .ok_or_else(|| ScimError::invalid_syntax("the resource is not an object"))?;
    for op in ops {
        match &op.path {
            None => apply_pathless(root, op)?,
            Some(path) => apply_path(root, op.op, path, op.value.as_ref())?,
        }
    }
    Ok(())
}

fn apply_pathless(root: &mut Map<String, Value>, op: &Operation) -> Result<(), ScimError> {
    let Some(Value::Object(values)) = &op.value else {
        return Err(ScimError::invalid_value(
            "an operation without a path needs an object value",
        ));
    };
    for (key, value) in values {
        if is_extension_urn(key) && value.is_object() {
            // An extension object: merge its attributes.
            let ext_key = existing_key(root, key);
            let target = root
                .entry(ext_key)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(target) = target else {
                return Err(ScimError::invalid_value(format!("{key} is not an object")));
            };
            for (k, v) in value.as_object().expect("checked") {
                set_value(target, k, v.clone(), op.op)?;
            }
        } else if key.contains('.') || is_urn(key) {
            // Entra's dotted keys ("name.givenName") and URN-qualified attribute names.
            apply_path(root, op.op, key, Some(value))?;
        } else {
            set_value(root, key, value.clone(), op.op)?;
        }
    }
    Ok(())
}

fn is_extension_urn(key: &str) -> bool {
    key.eq_ignore_ascii_case(ENTERPRISE_USER)
}

/// Sets `key` on `obj`: add appends to arrays, replace overwrites; objects merge on add.
fn set_value(
    obj: &mut Map<String, Value>,
    key: &str,
    value: Value,
    op: Op,
) -> Result<(), ScimError> {
    let k = existing_key(obj, key);
    match (op, obj.get_mut(&k), value) {
        (Op::Add, Some(Value::Array(existing)), Value::Array(new)) => {
            for v in new {
                if !existing.contains(&v) {
                    existing.push(v);
                }
            }
        }
        (Op::Add, Some(Value::Array(existing)), v) => {
            if !existing.contains(&v) {
                existing.push(v);
            }
        }
        (Op::Add, Some(Value::Object(existing)), Value::Object(new)) => {
            for (nk, nv) in new {
                let ek = existing_key(existing, &nk);
                existing.insert(ek, nv);
            }
        }
        (_, _, v) => {
            obj.insert(k, v);
        }
    }
    Ok(())
}

/// Splits a path into (extension URN, rest) when it is URN-qualified.
fn split_urn(path: &str) -> (Option<String>, String) {
    if !is_urn(path) {
        return (None, path.to_owned());
    }
    for schema in [ENTERPRISE_USER, CORE_USER, CORE_GROUP] {
        if path
            .get(..schema.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(schema))
        {
            let rest = path[schema.len()..].trim_start_matches(':').to_owned();
            return (Some(schema.to_owned()), rest);
        }
    }
    (Some(path.to_owned()), String::new())
}

/// Applies one operation with a path (possibly URN-qualified) to the resource.
fn apply_path(
    root: &mut Map<String, Value>,
    op: Op,
    path: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let (urn, rest) = split_urn(path);
    let target: &mut Map<String, Value> = match urn.as_deref() {
        Some(u) if u == ENTERPRISE_USER => {
            if rest.is_empty() {
                return apply_to_extension(root, op, value);
            }
            enterprise_extension(root)?
        }
        Some(u) if u == CORE_USER || u == CORE_GROUP => root,
        // An extension the server does not model: accepted and ignored, as in POST and PUT.
        Some(_) => return Ok(()),
        None => root,
    };
    if rest.is_empty() {
        return Err(ScimError::invalid_path(format!(
            "the path {path:?} names no attribute"
        )));
    }
    let parsed: PatchPath = rest
        .parse()
        .map_err(|e| ScimError::invalid_path(format!("the path {path:?} is not valid: {e}")))?;
    match parsed {
        PatchPath::Attr(AttrPath {
            name,
            sub_attr: None,
            ..
        }) => apply_to_attribute(target, op, &name, value),
        PatchPath::Attr(AttrPath {
            name,
            sub_attr: Some(sub),
            ..
        }) => apply_to_sub_attribute(target, op, &name, &sub, value),
        PatchPath::Value(path) => apply_to_filtered(target, op, &path, value),
    }
}

/// An operation on the whole enterprise extension object.
fn apply_to_extension(
    root: &mut Map<String, Value>,
    op: Op,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match op {
        Op::Remove => {
            let key = existing_key(root, ENTERPRISE_USER);
            root.remove(&key);
            Ok(())
        }
        _ => set_value(
            root,
            ENTERPRISE_USER,
            value.cloned().unwrap_or(Value::Null),
            op,
        ),
    }
}

/// The enterprise extension object, created empty when missing.
fn enterprise_extension(
    root: &mut Map<String, Value>,
) -> Result<&mut Map<String, Value>, ScimError> {
    let key = existing_key(root, ENTERPRISE_USER);
    match root.entry(key).or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(m) => Ok(m),
        _ => Err(ScimError::invalid_value(
            "the enterprise extension is not an object",
        )),
    }
}

/// An operation on a whole attribute (`emails`, `displayName`).
fn apply_to_attribute(
    target: &mut Map<String, Value>,
    op: Op,
    name: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match op {
        Op::Remove => {
            let k = existing_key(target, name);
            match (target.get_mut(&k), value) {
                // Entra removes members by value: {"op":"Remove","path":"members","value":[{"value":"id"}]}.
                (Some(Value::Array(items)), Some(Value::Array(remove))) => {
                    items.retain(|item| !remove.iter().any(|r| same_value(item, r)));
                }
                _ => {
                    target.remove(&k);
                }
            }
            Ok(())
        }
        _ => set_value(target, name, value.cloned().unwrap_or(Value::Null), op),
    }
}

/// An operation on a sub-attribute (`name.givenName`).
fn apply_to_sub_attribute(
    target: &mut Map<String, Value>,
    op: Op,
    name: &str,
    sub: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let k = existing_key(target, name);
    if op == Op::Remove {
        if let Some(Value::Object(inner)) = target.get_mut(&k) {
            let sk = existing_key(inner, sub);
            inner.remove(&sk);
        }
        return Ok(());
    }
    let entry = target.entry(k).or_insert_with(|| Value::Object(Map::new()));
    match entry {
        Value::Object(inner) => set_value(
            inner,
            sub,
            value.cloned().unwrap_or(Value::Null),
            Op::Replace,
        ),
        // A multi-valued attribute addressed with a sub-attribute: set it on every element.
        Value::Array(items) => {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                set_value(
                    item,
                    sub,
                    value.cloned().unwrap_or(Value::Null),
                    Op::Replace,
                )?;
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_path(format!(
            "{name} has no sub-attributes"
        ))),
    }
}

/// An operation on the elements of a multi-valued attribute a filter selects
/// (`emails[type eq "work"].value`).
fn apply_to_filtered(
    target: &mut Map<String, Value>,
    op: Op,
    path: &PatchValuePath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let k = existing_key(target, &path.attr.name);
    let items = target.entry(k).or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(items) = items else {
        return Err(ScimError::invalid_path(format!(
            "{} is not multi-valued",
            path.attr.name
        )));
    };
    let matches: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| eval(&path.filter, item))
        .map(|(i, _)| i)
        .collect();
    if op == Op::Remove {
        remove_matched(items, &matches, path.sub_attr.as_deref());
        return Ok(());
    }
    let value = value.cloned().unwrap_or(Value::Null);
    if matches.is_empty() {
        // Entra expects `emails[type eq "work"].value` to create the element.
        items.push(Value::Object(created_element(path, value)?));
        return Ok(());
    }
    for &i in &matches {
        match (&path.sub_attr, items[i].as_object_mut()) {
            (Some(sub), Some(obj)) => set_value(obj, sub, value.clone(), Op::Replace)?,
            (None, Some(obj)) => {
                let Value::Object(o) = &value else {
                    return Err(ScimError::invalid_value(
                        "a filtered path without a sub-attribute needs an object value",
                    ));
                };
                for (nk, nv) in o {
                    set_value(obj, nk, nv.clone(), Op::Replace)?;
                }
            }
            _ => {
                return Err(ScimError::invalid_path(
                    "the matched element is not an object",
                ));
            }
        }
    }
    Ok(())
}

/// Removes the matched elements, or their sub-attribute `sub`.
fn remove_matched(items: &mut Vec<Value>, matches: &[usize], sub: Option<&str>) {
    match sub {
        None => {
            let mut i = 0;
            items.retain(|_| {
                let keep = !matches.contains(&i);
                i += 1;
                keep
            });
        }
        Some(sub) => {
            for &i in matches {
                if let Some(obj) = items[i].as_object_mut() {
                    let sk = existing_key(obj, sub);
                    obj.remove(&sk);
                }
            }
        }
    }
}

/// The element a filtered path creates when nothing matches: the filter's equality terms and
/// the value.
fn created_element(path: &PatchValuePath, value: Value) -> Result<Map<String, Value>, ScimError> {
    let mut created = Map::new();
    for (attr, v) in equality_constraints(&path.filter) {
        created.insert(attr, v);
    }
    match (&path.sub_attr, value) {
        (Some(sub), v) => {
            created.insert(sub.clone(), v);
        }
        (None, Value::Object(o)) => created.extend(o),
        (None, _) => {
            return Err(ScimError::invalid_value(
                "a filtered path without a sub-attribute needs an object value",
            ));
        }
    }
    Ok(created)
}

fn same_value(item: &Value, remove: &Value) -> bool {
    match (item.get("value"), remove.get("value")) {
        (Some(a), Some(b)) => a == b,
        _ => item == remove,
    }
}

/// `attr eq "x"` terms of an `and`-only filter: the attributes a created element gets.
fn equality_constraints(filter: &ValFilter) -> Vec<(String, Value)> {
    match filter {
        ValFilter::Attr(AttrExp::Comparison(path, CompareOp::Eq, v)) => {
            vec![(path.name.clone(), comp_to_json(v))]
        }
        ValFilter::And(ops) => ops
            .as_slice()
            .iter()
            .flat_map(equality_constraints)
            .collect(),
        _ => Vec::new(),
    }
}

fn comp_to_json(v: &CompValue) -> Value {
    match v {
        CompValue::False => Value::Bool(false),
        CompValue::True => Value::Bool(true),
        CompValue::Null => Value::Null,
        CompValue::Number(n) => Value::Number(n.clone()),
        CompValue::Str(s) => Value::String(s.clone()),
    }
}

/// Evaluates a value filter against one element of a multi-valued attribute.
pub fn eval(filter: &ValFilter, item: &Value) -> bool {
    match filter {
        ValFilter::Not(inner) => !eval(inner, item),
        ValFilter::And(ops) => ops.as_slice().iter().all(|f| eval(f, item)),
        ValFilter::Or(ops) => ops.as_slice().iter().any(|f| eval(f, item)),
        ValFilter::Attr(AttrExp::Present(path)) => field(item, &path.name)
            .is_some_and(|v| !v.is_null() && v != &Value::String(String::new())),
        ValFilter::Attr(AttrExp::Comparison(path, op, expected)) => {
            let actual = field(item, &path.name).cloned().unwrap_or(Value::Null);
            compare(&actual, op, expected)
        }
    }
}

fn field<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    item.as_object().and_then(|o| get_ci(o, name))
}

fn compare(actual: &Value, op: &CompareOp, expected: &CompValue) -> bool {
    match (actual, expected) {
        (Value::String(a), CompValue::Str(e)) => {
            // String comparisons are case-insensitive for the attributes IdPs filter on
            // (type, value, display).
            let (a, e) = (crate::case::fold(a), crate::case::fold(e));
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
            }
        }
        (Value::Bool(a), CompValue::True) => matches!(op, CompareOp::Eq) == *a,
        (Value::Bool(a), CompValue::False) => matches!(op, CompareOp::Eq) != *a,
        (Value::String(a), CompValue::True | CompValue::False) => {
            let want = matches!(expected, CompValue::True);
            let is = a.eq_ignore_ascii_case("true");
            matches!(op, CompareOp::Eq) == (is == want)
        }
        (Value::Null, CompValue::Null) => matches!(op, CompareOp::Eq),
        (_, CompValue::Null) => matches!(op, CompareOp::Ne),
        (Value::Number(a), CompValue::Number(e)) => {
            let (a, e) = (
                a.as_f64().unwrap_or(f64::NAN),
                e.as_f64().unwrap_or(f64::NAN),
            );
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
                _ => false,
            }
        }
        _ => matches!(op, CompareOp::Ne),
    }
}

/// Turns Entra's string booleans (`"True"`, `"False"`) into JSON booleans for the boolean
/// attributes of the user schema (`active`, and `primary` in multi-valued attributes).
pub fn coerce_booleans(resource: &mut Value) -> Result<(), ScimError> {
    let Some(obj) = resource.as_object_mut() else {
        return Ok(());
    };
    let key = existing_key(obj, "active");
    if let Some(v) = obj.get_mut(&key) {
        *v = coerce_bool(v, "active")?;
    }
    for (_, v) in obj.iter_mut() {
        if let Value::Array(items) = v {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                let key = existing_key(item, "primary");
                if let Some(p) = item.get_mut(&key) {
                    *p = coerce_bool(p, "primary")?;
                }
            }
        }
    }
    Ok(())
}

fn coerce_bool(v: &Value, name: &str) -> Result<Value, ScimError> {
    match v {
        Value::Bool(_) => Ok(v.clone()),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        _ => Err(ScimError::invalid_value(format!(
            "{name} must be true or false, got {v}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(resource: &mut Value, body: Value) -> Result<(), ScimError> {
        let ops = parse_request(&body)?;
        apply(resource, &ops)?;
        coerce_booleans(resource)
    }

    fn ops(list: Value) -> Value {
        json!({ "schemas": [PATCH_OP], "Operations": list })
    }

    fn ada() -> Value {
        json!({ "userName": "ada@example.com", "active": true, "name": { "givenName": "Ada", "familyName": "Lovelace" }, "emails": [{ "value": "ada@example.com", "type": "work", "primary": true }] })
    }

    #[test]
    fn okta_deactivates_with_a_pathless_replace() {
        let mut r = ada();
        patch(
            &mut r,
            ops(json!([{ "op": "replace", "value": { "active": false } }])),
        )
        .unwrap();
        assert_eq!(r["active"], false);
        assert_eq!(r["userName"], "ada@example.com");
    }

    #[test]
    fn entra_default_dialect_capitalised_ops_string_booleans_and_created_elements() {
        let mut r = ada();
        patch(
            &mut r,
            ops(json!([
                { "op": "Replace", "path": "active", "value": "False" },
                { "op": "Add", "path": "addresses[type eq \"work\"].formatted", "value": "1 Main St" },
                { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada@new.example.com" },
                { "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D" },
                { "op": "Replace", "path": "name.familyName", "value": "King" },
            ])),
        )
        .unwrap();
        assert_eq!(r["active"], false);
        assert_eq!(
            r["addresses"],
            json!([{ "type": "work", "formatted": "1 Main St" }])
        );
        assert_eq!(r["emails"][0]["value"], "ada@new.example.com");
        assert_eq!(r["emails"].as_array().unwrap().len(), 1);
        assert_eq!(r[ENTERPRISE_USER]["department"], "R&D");
        assert_eq!(r["name"]["familyName"], "King");
        assert_eq!(r["name"]["givenName"], "Ada");
    }

    #[test]
    fn entra_aadoptscim_dialect_pathless_dotted_keys() {
        let mut r = ada();
        patch(&mut r, ops(json!([{ "op": "replace", "value": { "name.givenName": "Augusta", "active": false, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42" } }]))).unwrap();
        assert_eq!(r["name"]["givenName"], "Augusta");
        assert_eq!(r["active"], false);
        assert_eq!(r[ENTERPRISE_USER]["employeeNumber"], "42");
    }

    #[test]
    fn member_add_and_remove_in_both_dialects() {
        let mut g =
            json!({ "displayName": "Eng", "members": [{ "value": "a" }, { "value": "b" }] });
        patch(&mut g, ops(json!([{ "op": "add", "path": "members", "value": [{ "value": "c", "display": "C" }] }]))).unwrap();
        patch(
            &mut g,
            ops(json!([{ "op": "remove", "path": "members[value eq \"a\"]" }])),
        )
        .unwrap();
        patch(
            &mut g,
            ops(json!([{ "op": "Remove", "path": "members", "value": [{ "value": "b" }] }])),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{ "value": "c", "display": "C" }]));
        patch(&mut g, ops(json!([{ "op": "replace", "value": { "id": "ignored-by-caller", "displayName": "Engineering" } }]))).unwrap();
        assert_eq!(g["displayName"], "Engineering");
    }

    #[test]
    fn pure_membership_patches_are_recognised() {
        let parse = |list: Value| parse_request(&ops(list)).unwrap();
        let (add, remove) = member_changes(&parse(json!([
            { "op": "add", "path": "members", "value": [{ "value": "a" }] },
            { "op": "Remove", "path": "members[value eq \"b\"]" },
            { "op": "remove", "path": "members", "value": [{ "value": "c" }] },
        ])))
        .unwrap()
        .unwrap();
        assert_eq!(
            (add, remove),
            (vec!["a".to_owned()], vec!["b".to_owned(), "c".to_owned()])
        );
        assert!(
            member_changes(&parse(
                json!([{ "op": "replace", "path": "members", "value": [] }])
            ))
            .unwrap()
            .is_none()
        );
        assert!(
            member_changes(&parse(json!([{ "op": "remove", "path": "members" }])))
                .unwrap()
                .is_none()
        );
        assert!(
            member_changes(&parse(
                json!([{ "op": "replace", "value": { "displayName": "x" } }])
            ))
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn bad_requests_are_scim_errors() {
        let mut r = ada();
        for (body, scim_type) in [
            (json!({ "Operations": [] }), "invalidSyntax"),
            (
                ops(json!([{ "op": "move", "path": "x", "value": 1 }])),
                "invalidSyntax",
            ),
            (ops(json!([{ "op": "remove" }])), "noTarget"),
            (
                ops(json!([{ "op": "replace", "path": "emails[type eq", "value": 1 }])),
                "invalidPath",
            ),
            (
                ops(json!([{ "op": "replace", "path": "active", "value": "maybe" }])),
                "invalidValue",
            ),
            (
                ops(json!([{ "op": "replace", "value": 5 }])),
                "invalidValue",
            ),
        ] {
            let err = patch(&mut r, body.clone()).unwrap_err();
            assert_eq!(err.scim_type, Some(scim_type), "{body}: {err:?}");
            assert_eq!(err.status, 400);
        }
    }
}
