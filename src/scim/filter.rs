//! SCIM filters (RFC 7644 §3.4.2.2): parsed with the `scim_v2` crate's grammar, translated
//! into a store [`Predicate`] evaluated in the database. Attribute names and operators are
//! case-insensitive; anything that cannot be evaluated exactly is a 400 `invalidFilter`,
//! never silently ignored.

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter, ValFilter};

use super::ScimError;
use crate::domain::{CmpOp, Column, Predicate, Value};

/// Which resource type a filter applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:user";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:group";

/// Where a filter is evaluated: one resource type's endpoint, or the root (`/.search`),
/// where attributes of the other resource type are unassigned and so match nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ctx {
    resource: Resource,
    root: bool,
}

/// Parses `text` into a predicate for `resource`.
pub fn parse(text: &str, resource: Resource) -> Result<Predicate, ScimError> {
    parse_in(
        text,
        Ctx {
            resource,
            root: false,
        },
    )
}

/// Parses `text` as a root search's filter (RFC 7644 §3.4.2.2) for the `resource` part of
/// the result: User attributes (`userName`, `active`, `emails`) are unassigned on groups,
/// so comparisons on them match no group rather than failing.
pub fn parse_at_root(text: &str, resource: Resource) -> Result<Predicate, ScimError> {
    parse_in(
        text,
        Ctx {
            resource,
            root: true,
        },
    )
}

fn parse_in(text: &str, cx: Ctx) -> Result<Predicate, ScimError> {
    if text.len() > 4096 {
        return Err(ScimError::invalid_filter(
            "the filter is longer than 4096 characters",
        ));
    }
    // The grammar wants a space after `not`; RFC 7644 does not. IdPs also send
    // `emails[type eq "work"].value eq "x"`, which means `emails[type eq "work" and value eq "x"]`.
    let normalised = fold_value_path_comparisons(&normalise_not(text));
    let filter: Filter = normalised
        .parse()
        .map_err(|e: scim_v2::filter::ParseError| {
            ScimError::invalid_filter(format!("the filter {text:?} is not valid: {e}"))
        })?;
    translate(&filter, cx)
}

fn normalise_not(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '('
            && i >= 3
            && text.is_char_boundary(i - 3)
            && text[i - 3..i].eq_ignore_ascii_case("not")
        {
            // "not" is a word of its own only when nothing alphanumeric precedes it.
            let boundary = text[..i - 3]
                .chars()
                .next_back()
                .is_none_or(|p| !p.is_alphanumeric());
            if boundary {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

/// Rewrites `attr[filter].sub op value` into `attr[filter and sub op value]`.
fn fold_value_path_comparisons(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..8 {
        match fold_once(&current) {
            Some(next) => current = next,
            None => break,
        }
    }
    current
}

fn fold_once(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let (mut in_string, mut escaped) = (false, false);
    let mut opens: Vec<usize> = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' => opens.push(i),
            b']' => {
                let open = opens.pop()?;
                if bytes.get(i + 1) != Some(&b'.') {
                    continue;
                }
                // `.sub op value` follows.
                let rest = &text[i + 2..];
                let sub_len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                    .unwrap_or(rest.len());
                if sub_len == 0 {
                    return None;
                }
                let sub = &rest[..sub_len];
                let after = rest[sub_len..].trim_start();
                let op_len = after.find(char::is_whitespace)?;
                let op = &after[..op_len];
                let value_text = after[op_len..].trim_start();
                let value_len = comparison_value_len(value_text)?;
                let value = &value_text[..value_len];
                let tail = &value_text[value_len..];
                let inner = &text[open + 1..i];
                return Some(format!(
                    "{}[({inner}) and {sub} {op} {value}]{tail}",
                    &text[..open]
                ));
            }
            _ => {}
        }
    }
    None
}

/// Length of a comparison value at the start of `text`: a quoted string or a bare word.
fn comparison_value_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut escaped = false;
        for (i, &b) in bytes.iter().enumerate().skip(1) {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => return Some(i + 1),
                _ => {}
            }
        }
        None
    } else {
        let n = text
            .find(|c: char| c.is_whitespace() || c == ')' || c == ']')
            .unwrap_or(text.len());
        (n > 0).then_some(n)
    }
}

fn translate(filter: &Filter, cx: Ctx) -> Result<Predicate, ScimError> {
    let resource = cx.resource;
    Ok(match filter {
        Filter::Attr(exp) => attr_exp(exp, cx)?,
        Filter::Not(inner) => Predicate::Not(Box::new(translate(inner, cx)?)),
        Filter::And(ops) => fold(ops.as_slice(), cx, Predicate::And)?,
        Filter::Or(ops) => fold(ops.as_slice(), cx, Predicate::Or)?,
        Filter::ValuePath(vp)
            if resource == Resource::User && vp.attr.name.eq_ignore_ascii_case("emails") =>
        {
            email_value_path(&vp.filter)?
        }
        Filter::ValuePath(vp) if cx.root && user_only(&vp.attr) => Predicate::False,
        Filter::ValuePath(vp) => {
            return Err(ScimError::invalid_filter(format!(
                "filtering on {}[...] is not supported: filter on userName, externalId, id, displayName or active",
                vp.attr.name
            )));
        }
    })
}

fn fold(
    ops: &[Filter],
    cx: Ctx,
    join: fn(Box<Predicate>, Box<Predicate>) -> Predicate,
) -> Result<Predicate, ScimError> {
    let mut iter = ops.iter();
    let first = iter
        .next()
        .ok_or_else(|| ScimError::invalid_filter("empty logical expression"))?;
    let mut acc = translate(first, cx)?;
    for next in iter {
        acc = join(Box::new(acc), Box::new(translate(next, cx)?));
    }
    Ok(acc)
}

/// Filterable attributes that only users have (unassigned on groups).
fn user_only(path: &AttrPath) -> bool {
    path.uri
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(USER_SCHEMA))
        && ["userName", "active", "emails"]
            .iter()
            .any(|n| path.name.eq_ignore_ascii_case(n))
}

fn column(path: &AttrPath, resource: Resource) -> Result<Column, ScimError> {
    if let Some(uri) = &path.uri {
        let expected = match resource {
            Resource::User => USER_SCHEMA,
            Resource::Group => GROUP_SCHEMA,
        };
        if !uri.eq_ignore_ascii_case(expected) {
            return Err(ScimError::invalid_filter(format!(
                "filtering on attributes of {uri} is not supported"
            )));
        }
    }
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub_attr.as_deref().map(str::to_ascii_lowercase);
    let col = match (resource, name.as_str(), sub.as_deref()) {
        (_, "id", None) => Column::Id,
        (_, "externalid", None) => Column::ExternalId,
        (Resource::User, "username", None) => Column::UserName,
        (Resource::User, "active", None) => Column::Active,
        (Resource::Group, "displayname", None) => Column::DisplayName,
        (_, "meta", Some("created")) => Column::Created,
        (_, "meta", Some("lastmodified")) => Column::LastModified,
        _ => {
            let full = match &path.sub_attr {
                Some(s) => format!("{}.{s}", path.name),
                None => path.name.clone(),
            };
            let supported = match resource {
                Resource::User => {
                    "userName, externalId, id, active, meta.created or meta.lastModified"
                }
                Resource::Group => "displayName, externalId, id, meta.created or meta.lastModified",
            };
            return Err(ScimError::invalid_filter(format!(
                "filtering on {full} is not supported: filter on {supported}"
            )));
        }
    };
    Ok(col)
}

/// `emails[...]`: an optional `type eq "…"` and a comparison on `value`, joined by `and`.
fn email_value_path(filter: &ValFilter) -> Result<Predicate, ScimError> {
    let terms: Vec<&ValFilter> = match filter {
        ValFilter::And(ops) => ops.as_slice().iter().collect(),
        other => vec![other],
    };
    let (mut type_, mut value) = (None, None);
    for term in terms {
        match term {
            ValFilter::Attr(AttrExp::Comparison(path, CompareOp::Eq, CompValue::Str(s)))
                if path.name.eq_ignore_ascii_case("type") && path.sub_attr.is_none() =>
            {
                type_ = Some(s.clone());
            }
            ValFilter::Attr(AttrExp::Comparison(path, op, CompValue::Str(s)))
                if path.name.eq_ignore_ascii_case("value") && path.sub_attr.is_none() =>
            {
                value = Some((email_op(op)?, s.clone()));
            }
            ValFilter::And(ops) if ops.as_slice().len() >= 2 => {
                // `(type eq "work") and value eq "x"` after folding nests one level.
                if let Predicate::Email {
                    type_: t,
                    op,
                    value: v,
                } = email_value_path(term)?
                {
                    if t.is_some() {
                        type_ = t;
                    }
                    if !(op == CmpOp::Co && v.is_empty()) {
                        value = Some((op, v));
                    }
                }
            }
            _ => {
                return Err(ScimError::invalid_filter(
                    "inside emails[...] only type eq \"…\" and a comparison on value are supported",
                ));
            }
        }
    }
    let (op, value) = value.unwrap_or((CmpOp::Co, String::new()));
    Ok(Predicate::Email { type_, op, value })
}

fn email_op(op: &CompareOp) -> Result<CmpOp, ScimError> {
    match op {
        CompareOp::Eq => Ok(CmpOp::Eq),
        CompareOp::Co => Ok(CmpOp::Co),
        CompareOp::Sw => Ok(CmpOp::Sw),
        CompareOp::Ew => Ok(CmpOp::Ew),
        _ => Err(ScimError::invalid_filter(
            "email addresses compare with eq, co, sw or ew",
        )),
    }
}

fn attr_exp(exp: &AttrExp, cx: Ctx) -> Result<Predicate, ScimError> {
    let resource = cx.resource;
    if cx.root && resource == Resource::Group {
        let (AttrExp::Present(path) | AttrExp::Comparison(path, _, _)) = exp;
        if user_only(path) {
            return Ok(Predicate::False);
        }
    }
    if let AttrExp::Comparison(path, op, CompValue::Str(s)) = exp
        && resource == Resource::User
        && path.uri.is_none()
        && path.name.eq_ignore_ascii_case("emails")
        && path
            .sub_attr
            .as_deref()
            .is_none_or(|sub| sub.eq_ignore_ascii_case("value"))
    {
        return Ok(Predicate::Email {
            type_: None,
            op: email_op(op)?,
            value: s.clone(),
        });
    }
    match exp {
        AttrExp::Present(path) => Ok(Predicate::Present(column(path, resource)?)),
        AttrExp::Comparison(path, op, value) => {
            let col = column(path, resource)?;
            let op = match op {
                CompareOp::Eq => CmpOp::Eq,
                CompareOp::Ne => CmpOp::Ne,
                CompareOp::Co => CmpOp::Co,
                CompareOp::Sw => CmpOp::Sw,
                CompareOp::Ew => CmpOp::Ew,
                CompareOp::Gt => CmpOp::Gt,
                CompareOp::Ge => CmpOp::Ge,
                CompareOp::Lt => CmpOp::Lt,
                CompareOp::Le => CmpOp::Le,
            };
            let value = match (&col, value) {
                (Column::Active, CompValue::True) => Value::Int(1),
                (Column::Active, CompValue::False) => Value::Int(0),
                (Column::Active, _) => {
                    return Err(ScimError::invalid_filter(
                        "active compares with true or false",
                    ));
                }
                (Column::Created | Column::LastModified, CompValue::Str(s)) => {
                    let t: jiff::Timestamp = s.parse().map_err(|_| {
                        ScimError::invalid_filter(format!("{s:?} is not an RFC 3339 date-time"))
                    })?;
                    Value::Int(t.as_microsecond())
                }
                (Column::Created | Column::LastModified, _) => {
                    return Err(ScimError::invalid_filter(
                        "meta dates compare with an RFC 3339 string",
                    ));
                }
                (_, CompValue::Str(s)) => Value::Text(s.clone()),
                (_, CompValue::Null) if op == CmpOp::Eq => {
                    return Ok(Predicate::Not(Box::new(Predicate::Present(col))));
                }
                (_, CompValue::Null) if op == CmpOp::Ne => return Ok(Predicate::Present(col)),
                _ => {
                    return Err(ScimError::invalid_filter(
                        "compare this attribute with a string",
                    ));
                }
            };
            if matches!(col, Column::Active) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(ScimError::invalid_filter("active supports only eq and ne"));
            }
            Ok(Predicate::Compare(col, op, value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn okta_and_entra_lookups_translate_to_indexed_columns() {
        assert_eq!(
            parse(r#"userName eq "ada@example.com""#, Resource::User).unwrap(),
            Predicate::Compare(Column::UserName, CmpOp::Eq, text("ada@example.com"))
        );
        assert_eq!(
            parse(r#"USERNAME EQ "x""#, Resource::User).unwrap(),
            Predicate::Compare(Column::UserName, CmpOp::Eq, text("x"))
        );
        assert_eq!(
            parse(r#"externalId eq "abc""#, Resource::User).unwrap(),
            Predicate::Compare(Column::ExternalId, CmpOp::Eq, text("abc"))
        );
        assert_eq!(
            parse(r#"displayName eq "Admins""#, Resource::Group).unwrap(),
            Predicate::Compare(Column::DisplayName, CmpOp::Eq, text("Admins"))
        );
        assert_eq!(
            parse(
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "a""#,
                Resource::User
            )
            .unwrap(),
            Predicate::Compare(Column::UserName, CmpOp::Sw, text("a"))
        );
        let p = parse(
            r#"not(active eq false) and (userName co "a" or externalId pr)"#,
            Resource::User,
        )
        .unwrap();
        assert_eq!(
            normalise_not(r#"userName eq "not(" and NOT(id pr)"#),
            r#"userName eq "not(" and NOT (id pr)"#
        );
        assert_eq!(normalise_not("é not(x pr)"), "é not (x pr)");
        assert_eq!(normalise_not("éé(("), "éé((");
        assert!(matches!(p, Predicate::And(_, _)), "{p:?}");
    }

    #[test]
    fn root_filters_treat_user_attributes_as_unassigned_on_groups() {
        assert_eq!(
            parse_at_root(r#"userName eq "a""#, Resource::Group).unwrap(),
            Predicate::False
        );
        assert_eq!(
            parse_at_root(r#"emails[type eq "work"].value eq "a""#, Resource::Group).unwrap(),
            Predicate::False
        );
        assert!(matches!(
            parse_at_root(
                r#"not (active eq true) or externalId eq "x""#,
                Resource::Group
            )
            .unwrap(),
            Predicate::Or(_, _)
        ));
        assert_eq!(
            parse_at_root(r#"displayName eq "a""#, Resource::User)
                .unwrap_err()
                .scim_type,
            Some("invalidFilter")
        );
    }

    #[test]
    fn unsupported_or_malformed_filters_are_invalid_filter_errors() {
        for (f, r) in [
            ("userName eq", Resource::User),
            ("title eq \"x\"", Resource::User),
            ("displayName eq \"x\"", Resource::User),
            ("userName eq \"x\"", Resource::Group),
            ("active gt true", Resource::User),
            ("active eq \"yes\"", Resource::User),
            ("emails[display eq \"x\"]", Resource::User),
            ("emails.value gt \"x\"", Resource::User),
            ("members[value eq \"x\"]", Resource::Group),
            ("meta.created gt \"yesterday\"", Resource::User),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"1\"",
                Resource::User,
            ),
            ("((((", Resource::User),
            ("", Resource::User),
        ] {
            let err = parse(f, r).unwrap_err();
            assert_eq!(
                (err.status, err.scim_type),
                (400, Some("invalidFilter")),
                "{f}"
            );
        }
    }
}
