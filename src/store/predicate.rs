//! Filters evaluated in the database. The SCIM layer translates a SCIM filter into a
//! [`Predicate`] over indexed columns; this module renders it as SQL with bound parameters
//! (never by pasting values into SQL).

use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A column a filter can compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// `id`.
    Id,
    /// Users: `userName`, compared case-insensitively.
    UserName,
    /// Groups: `displayName`, compared case-insensitively.
    DisplayName,
    /// `externalId`, compared exactly.
    ExternalId,
    /// Users: `active`.
    Active,
    /// `meta.created`.
    Created,
    /// `meta.lastModified`.
    LastModified,
    /// Whether SCIM manages the resource (1) or it came from sign-in (0).
    ScimManaged,
}

impl Column {
    fn sql(&self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::UserName => "user_name_lower",
            Column::DisplayName => "display_name_lower",
            Column::ExternalId => "external_id",
            Column::Active => "active",
            Column::Created => "created_us",
            Column::LastModified => "modified_us",
            Column::ScimManaged => "scim_managed",
        }
    }

    fn case_insensitive(&self) -> bool {
        matches!(self, Column::UserName | Column::DisplayName)
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
}

/// A value to compare with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// Integer (booleans as 0/1, times as Unix microseconds).
    Int(i64),
}

/// A filter over one table.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    /// Everything.
    True,
    /// Nothing (e.g. a filter on an attribute that no stored resource can match).
    False,
    /// Both.
    And(Box<Predicate>, Box<Predicate>),
    /// Either.
    Or(Box<Predicate>, Box<Predicate>),
    /// Negation.
    Not(Box<Predicate>),
    /// `column op value`.
    Compare(Column, CmpOp, Value),
    /// The column has a value.
    Present(Column),
    /// Users: some email address matches `value` (compared case-insensitively with `op`),
    /// optionally only among addresses of `type_`.
    Email {
        /// Required `type` of the address (work, home, …), if any.
        type_: Option<String>,
        /// Comparison of the address.
        op: CmpOp,
        /// The address (or part of it, for co/sw/ew).
        value: String,
    },
}

/// The order of a list: by `column` (ascending or descending), unassigned values last when
/// ascending and first when descending (RFC 7644 §3.4.2.3), then by creation time and id so
/// that pages stay stable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The column sorted on.
    pub column: Column,
    /// Descending rather than ascending.
    pub descending: bool,
}

impl Sort {
    /// The `ORDER BY` list (without the keywords) for an optional sort.
    pub fn order_by(sort: Option<&Sort>) -> String {
        match sort {
            None => "created_us, id".to_owned(),
            Some(s) => {
                let col = s.column.sql();
                let dir = if s.descending { " DESC" } else { "" };
                // `(col IS NULL)` puts unassigned values last on both backends (PostgreSQL
                // and SQLite disagree on where NULLs go by default).
                format!("({col} IS NULL){dir}, {col}{dir}, created_us, id")
            }
        }
    }
}

/// A parameter to bind.
#[derive(Clone, Debug, PartialEq)]
pub struct Bind(Value);

impl Bind {
    /// Binds this parameter to `q`.
    pub fn bind<'q>(
        &self,
        q: Query<'q, sqlx::Any, AnyArguments>,
    ) -> Query<'q, sqlx::Any, AnyArguments> {
        match &self.0 {
            Value::Text(s) => q.bind(s.clone()),
            Value::Int(i) => q.bind(*i),
        }
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Predicate {
    /// Renders the predicate as SQL whose parameters are numbered from `$(first + 1)`.
    pub fn to_sql(&self, first: usize) -> (String, Vec<Bind>) {
        let mut binds = Vec::new();
        let sql = self.render(first, &mut binds);
        (sql, binds)
    }

    fn render(&self, first: usize, binds: &mut Vec<Bind>) -> String {
        let param = |v: Value, binds: &mut Vec<Bind>| {
            binds.push(Bind(v));
            format!("${}", first + binds.len())
        };
        match self {
            Predicate::True => "1 = 1".to_owned(),
            Predicate::False => "1 = 0".to_owned(),
            Predicate::And(a, b) => format!(
                "({}) AND ({})",
                a.render(first, binds),
                b.render(first, binds)
            ),
            Predicate::Or(a, b) => format!(
                "({}) OR ({})",
                a.render(first, binds),
                b.render(first, binds)
            ),
            Predicate::Not(a) => format!("NOT ({})", a.render(first, binds)),
            Predicate::Present(c) => format!("{} IS NOT NULL", c.sql()),
            Predicate::Email { type_, op, value } => {
                let value = crate::case::fold(value);
                let cond = match op {
                    CmpOp::Eq => format!("e.value_lower = {}", param(Value::Text(value), binds)),
                    CmpOp::Co => format!(
                        "e.value_lower LIKE {} ESCAPE '\\'",
                        param(Value::Text(format!("%{}%", like_escape(&value))), binds)
                    ),
                    CmpOp::Sw => format!(
                        "e.value_lower LIKE {} ESCAPE '\\'",
                        param(Value::Text(format!("{}%", like_escape(&value))), binds)
                    ),
                    CmpOp::Ew => format!(
                        "e.value_lower LIKE {} ESCAPE '\\'",
                        param(Value::Text(format!("%{}", like_escape(&value))), binds)
                    ),
                    // Other operators are refused by the SCIM layer.
                    _ => return "1 = 0".to_owned(),
                };
                let type_cond = match type_ {
                    Some(t) => format!(
                        " AND e.type_lower = {}",
                        param(Value::Text(crate::case::fold(t)), binds)
                    ),
                    None => String::new(),
                };
                format!(
                    "EXISTS (SELECT 1 FROM scim_user_emails e WHERE e.tenant = scim_users.tenant AND e.user_id = scim_users.id AND {cond}{type_cond})"
                )
            }
            Predicate::Compare(c, op, v) => {
                let v = match (v, c.case_insensitive()) {
                    (Value::Text(s), true) => Value::Text(crate::case::fold(s)),
                    (v, _) => v.clone(),
                };
                let col = c.sql();
                match op {
                    CmpOp::Eq => format!("{col} = {}", param(v, binds)),
                    CmpOp::Ne => format!("({col} IS NULL OR {col} <> {})", param(v, binds)),
                    CmpOp::Gt => format!("{col} > {}", param(v, binds)),
                    CmpOp::Ge => format!("{col} >= {}", param(v, binds)),
                    CmpOp::Lt => format!("{col} < {}", param(v, binds)),
                    CmpOp::Le => format!("{col} <= {}", param(v, binds)),
                    CmpOp::Co | CmpOp::Sw | CmpOp::Ew => {
                        let Value::Text(s) = v else {
                            return "1 = 0".to_owned();
                        };
                        let s = like_escape(&s);
                        let pattern = match op {
                            CmpOp::Co => format!("%{s}%"),
                            CmpOp::Sw => format!("{s}%"),
                            _ => format!("%{s}"),
                        };
                        format!(
                            "{col} LIKE {} ESCAPE '\\'",
                            param(Value::Text(pattern), binds)
                        )
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_numbered_parameters_and_lowercases_case_insensitive_columns() {
        let p = Predicate::And(
            Box::new(Predicate::Compare(
                Column::UserName,
                CmpOp::Eq,
                Value::Text("Alice@Example.com".into()),
            )),
            Box::new(Predicate::Not(Box::new(Predicate::Compare(
                Column::ExternalId,
                CmpOp::Sw,
                Value::Text("50%_x".into()),
            )))),
        );
        let (sql, binds) = p.to_sql(2);
        assert_eq!(
            sql,
            "(user_name_lower = $3) AND (NOT (external_id LIKE $4 ESCAPE '\\'))"
        );
        assert_eq!(
            binds,
            [
                Bind(Value::Text("alice@example.com".into())),
                Bind(Value::Text("50\\%\\_x%".into()))
            ]
        );
    }
}
