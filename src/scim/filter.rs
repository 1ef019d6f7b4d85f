//! SCIM filters (RFC 7644 §3.4.2.2): parsed with the `scim_v2` crate's grammar, translated
//! into a store [`Predicate`] evaluated in the database. Attribute names and operators are
//! case-insensitive; anything that cannot be evaluated exactly is a 400 `invalidFilter`,
//! never silently ignored.

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter};

use super::ScimError;
use crate::store::{CmpOp, Column, Predicate, Value};

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

/// Parses `text` into a predicate for `resource`.
pub fn parse(text: &str, resource: Resource) -> Result<Predicate, ScimError> {
    if text.len() > 4096 {
        return Err(ScimError::invalid_filter(
            "the filter is longer than 4096 characters",
        ));
    }
    // The grammar wants a space after `not`; RFC 7644 does not.
    let normalised = normalise_not(text);
    let filter: Filter = normalised
        .parse()
        .map_err(|e: scim_v2::filter::ParseError| {
            ScimError::invalid_filter(format!("the filter {text:?} is not valid: {e}"))
        })?;
    translate(&filter, resource)
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

fn translate(filter: &Filter, resource: Resource) -> Result<Predicate, ScimError> {
    Ok(match filter {
        Filter::Attr(exp) => attr_exp(exp, resource)?,
        Filter::Not(inner) => Predicate::Not(Box::new(translate(inner, resource)?)),
        Filter::And(ops) => fold(ops.as_slice(), resource, Predicate::And)?,
        Filter::Or(ops) => fold(ops.as_slice(), resource, Predicate::Or)?,
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
    resource: Resource,
    join: fn(Box<Predicate>, Box<Predicate>) -> Predicate,
) -> Result<Predicate, ScimError> {
    let mut iter = ops.iter();
    let first = iter
        .next()
        .ok_or_else(|| ScimError::invalid_filter("empty logical expression"))?;
    let mut acc = translate(first, resource)?;
    for next in iter {
        acc = join(Box::new(acc), Box::new(translate(next, resource)?));
    }
    Ok(acc)
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

fn attr_exp(exp: &AttrExp, resource: Resource) -> Result<Predicate, ScimError> {
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
    fn unsupported_or_malformed_filters_are_invalid_filter_errors() {
        for (f, r) in [
            ("userName eq", Resource::User),
            ("title eq \"x\"", Resource::User),
            ("displayName eq \"x\"", Resource::User),
            ("userName eq \"x\"", Resource::Group),
            ("active gt true", Resource::User),
            ("active eq \"yes\"", Resource::User),
            ("emails[type eq \"work\"]", Resource::User),
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
