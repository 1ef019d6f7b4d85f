//! Queries (RFC 7644 §3.4.2, §3.4.3): the parameters of a list, from a GET's query string or a
//! `POST /.search` SearchRequest body, and the columns `sortBy` may name.

use serde_json::Value;

use super::ScimError;
use super::filter::Resource;
use super::patch::{CORE_GROUP, CORE_USER, get_ci};
use crate::domain::{Column, Sort};

/// The SearchRequest message URN.
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// What a client asked a list for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// `attributes`, comma-separated.
    pub attributes: Option<String>,
    /// `excludedAttributes`, comma-separated.
    pub excluded_attributes: Option<String>,
    /// `filter`.
    pub filter: Option<String>,
    /// `sortBy`.
    pub sort_by: Option<String>,
    /// `sortOrder` is `descending`.
    pub descending: bool,
    /// 1-based `startIndex`.
    pub start_index: i64,
    /// `count`, clamped to the server's page size.
    pub count: i64,
}

impl Query {
    /// The query of a GET, from its parameters (`param` looks a name up case-insensitively).
    pub fn from_params<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ScimError> {
        let (start_index, count) = super::paging(param("startIndex"), param("count"))?;
        Ok(Self {
            attributes: param("attributes").map(str::to_owned),
            excluded_attributes: param("excludedAttributes").map(str::to_owned),
            filter: param("filter").map(str::to_owned),
            sort_by: param("sortBy")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            descending: descending(param("sortOrder"))?,
            start_index,
            count,
        })
    }

    /// The query of a `POST …/.search` body (a SearchRequest message).
    pub fn from_search_request(body: &Value) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("the SearchRequest must be a JSON object"))?;
        let listed = get_ci(obj, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter().any(|v| {
                    v.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST))
                })
            });
        if !listed {
            return Err(ScimError::invalid_syntax(format!(
                "the SearchRequest must list the schema {SEARCH_REQUEST}"
            )));
        }
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match get_ci(obj, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        // attributes and excludedAttributes are lists of strings (a comma-separated string
        // is accepted too, as in a GET).
        let list = |name: &str| -> Result<Option<String>, ScimError> {
            match get_ci(obj, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| {
                        ScimError::invalid_value(format!("{name} must be a list of strings"))
                    }),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be a list of strings"
                ))),
            }
        };
        // startIndex and count are integers; numeric strings are accepted.
        let number = |name: &str| -> Result<Option<String>, ScimError> {
            match get_ci(obj, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(ScimError::invalid_value(format!(
                    "{name} must be an integer, got {other}"
                ))),
            }
        };
        let (start_index, count) = super::paging(
            number("startIndex")?.as_deref(),
            number("count")?.as_deref(),
        )?;
        Ok(Self {
            attributes: list("attributes")?,
            excluded_attributes: list("excludedAttributes")?,
            filter: text("filter")?,
            sort_by: text("sortBy")?
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            descending: descending(text("sortOrder")?.as_deref())?,
            start_index,
            count,
        })
    }

    /// The store order for `resource`, or a 400 `invalidValue` naming the sortable attributes.
    pub fn sort(&self, resource: Resource) -> Result<Option<Sort>, ScimError> {
        let Some(by) = &self.sort_by else {
            return Ok(None);
        };
        match sort_column(by, resource) {
            Some(column) => Ok(Some(Sort {
                column,
                descending: self.descending,
            })),
            None => Err(unsortable(by, resource)),
        }
    }

    /// The store order for `resource` in a root search: an attribute only the other resource
    /// type has is unassigned here (`Ok(None)`, in creation order after the other type's).
    pub fn sort_at_root(&self, resource: Resource) -> Result<Option<Sort>, ScimError> {
        let Some(by) = &self.sort_by else {
            return Ok(None);
        };
        let other = match resource {
            Resource::User => Resource::Group,
            Resource::Group => Resource::User,
        };
        match (sort_column(by, resource), sort_column(by, other)) {
            (Some(column), _) => Ok(Some(Sort {
                column,
                descending: self.descending,
            })),
            (None, Some(_)) => Ok(None),
            (None, None) => Err(unsortable(by, resource)),
        }
    }
}

/// A value a root search sorts users and groups by together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    /// Numbers, booleans (0/1) and times (Unix microseconds).
    Int(i64),
    /// Text (lower-cased for the case-insensitive userName and displayName).
    Text(String),
}

/// A user's value of `column`, as the store sorts it.
pub fn user_sort_value(user: &crate::domain::User, column: &Column) -> Option<SortValue> {
    Some(match column {
        Column::Id => SortValue::Text(user.id.clone()),
        Column::UserName => SortValue::Text(crate::case::fold(&user.user_name)),
        Column::ExternalId => SortValue::Text(user.external_id.clone()?),
        Column::Active => SortValue::Int(i64::from(user.active)),
        Column::Created => SortValue::Int(user.created.as_microsecond()),
        Column::LastModified => SortValue::Int(user.last_modified.as_microsecond()),
        Column::DisplayName | Column::ScimManaged => return None,
    })
}

/// A group's value of `column`, as the store sorts it.
pub fn group_sort_value(group: &crate::domain::Group, column: &Column) -> Option<SortValue> {
    Some(match column {
        Column::Id => SortValue::Text(group.id.clone()),
        Column::DisplayName => SortValue::Text(crate::case::fold(&group.display_name)),
        Column::ExternalId => SortValue::Text(group.external_id.clone()?),
        Column::Created => SortValue::Int(group.created.as_microsecond()),
        Column::LastModified => SortValue::Int(group.last_modified.as_microsecond()),
        Column::UserName | Column::Active | Column::ScimManaged => return None,
    })
}

/// Orders two sort values as the store does: unassigned last when ascending, the whole order
/// reversed when descending.
pub fn compare_sort_values(
    a: &Option<SortValue>,
    b: &Option<SortValue>,
    descending: bool,
) -> std::cmp::Ordering {
    let order = (a.is_none(), a).cmp(&(b.is_none(), b));
    if descending { order.reverse() } else { order }
}

fn descending(order: Option<&str>) -> Result<bool, ScimError> {
    match order.map(str::trim) {
        None | Some("") => Ok(false),
        Some(o) if o.eq_ignore_ascii_case("ascending") => Ok(false),
        Some(o) if o.eq_ignore_ascii_case("descending") => Ok(true),
        Some(o) => Err(ScimError::invalid_value(format!(
            "sortOrder must be ascending or descending, got {o:?}"
        ))),
    }
}

fn unsortable(by: &str, resource: Resource) -> ScimError {
    let supported = match resource {
        Resource::User => "userName, externalId, id, active, meta.created or meta.lastModified",
        Resource::Group => "displayName, externalId, id, meta.created or meta.lastModified",
    };
    ScimError::invalid_value(format!(
        "sorting by {by} is not supported: sort by {supported}"
    ))
}

/// The column `sortBy` names for `resource` (case-insensitive, optionally URN-qualified).
pub fn sort_column(by: &str, resource: Resource) -> Option<Column> {
    let lower = by.trim().to_ascii_lowercase();
    let mut name = lower.as_str();
    for urn in [CORE_USER, CORE_GROUP] {
        if let Some(rest) = name.strip_prefix(&format!("{}:", urn.to_ascii_lowercase())) {
            if !urn.eq_ignore_ascii_case(match resource {
                Resource::User => CORE_USER,
                Resource::Group => CORE_GROUP,
            }) {
                return None;
            }
            name = rest;
        }
    }
    Some(match (resource, name) {
        (_, "id") => Column::Id,
        (_, "externalid") => Column::ExternalId,
        (_, "meta.created") => Column::Created,
        (_, "meta.lastmodified") => Column::LastModified,
        (Resource::User, "username") => Column::UserName,
        (Resource::User, "active") => Column::Active,
        (Resource::Group, "displayname") => Column::DisplayName,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_requests_are_read_like_query_strings() {
        let q = Query::from_search_request(&json!({
            "schemas": [SEARCH_REQUEST], "attributes": ["userName", "emails"], "filter": "userName sw \"a\"",
            "sortBy": "userName", "sortOrder": "Descending", "startIndex": 2, "count": 10
        }))
        .unwrap();
        assert_eq!(q.attributes.as_deref(), Some("userName,emails"));
        assert_eq!((q.start_index, q.count, q.descending), (2, 10, true));
        assert_eq!(
            q.sort(Resource::User).unwrap(),
            Some(Sort {
                column: Column::UserName,
                descending: true
            })
        );
        assert_eq!(
            q.sort(Resource::Group).unwrap_err().scim_type,
            Some("invalidValue")
        );
        assert_eq!(q.sort_at_root(Resource::Group).unwrap(), None);
        let q = Query::from_params(|name| {
            (name == "sortBy").then_some("urn:ietf:params:scim:schemas:core:2.0:Group:displayName")
        })
        .unwrap();
        assert_eq!(
            q.sort(Resource::Group).unwrap().unwrap().column,
            Column::DisplayName
        );
    }

    #[test]
    fn bad_search_requests_name_what_to_fix() {
        for (body, scim_type) in [
            (json!({ "filter": "x" }), "invalidSyntax"),
            (json!([]), "invalidSyntax"),
            (
                json!({ "schemas": [SEARCH_REQUEST], "sortOrder": "up" }),
                "invalidValue",
            ),
            (
                json!({ "schemas": [SEARCH_REQUEST], "count": true }),
                "invalidValue",
            ),
            (
                json!({ "schemas": [SEARCH_REQUEST], "startIndex": "one" }),
                "invalidValue",
            ),
            (
                json!({ "schemas": [SEARCH_REQUEST], "attributes": [1] }),
                "invalidValue",
            ),
            (
                json!({ "schemas": [SEARCH_REQUEST], "filter": 1 }),
                "invalidValue",
            ),
        ] {
            let err = Query::from_search_request(&body).unwrap_err();
            assert_eq!(
                (err.status, err.scim_type),
                (400, Some(scim_type)),
                "{body}"
            );
        }
    }
}
