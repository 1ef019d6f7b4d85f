//! Filters evaluated in the database. The SCIM layer translates a SCIM filter into a
//! [`Predicate`] over indexed columns; this module renders it as SQL with bound parameters
//! (never by pasting values into SQL).

use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::domain::query::{CmpOp, Column, Predicate, Sort, Value};

/// The indexed SQL column of `column`.
fn column_sql(column: &Column) -> &'static str {
    match column {
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

/// Whether `column` holds case-folded text (compared values are folded too).
fn case_insensitive(column: &Column) -> bool {
    matches!(column, Column::UserName | Column::DisplayName)
}

/// The `ORDER BY` list (without the keywords) for an optional sort.
pub fn order_by(sort: Option<&Sort>) -> String {
    match sort {
        None => "created_us, id".to_owned(),
        Some(s) => {
            let col = column_sql(&s.column);
            let dir = if s.descending { " DESC" } else { "" };
            // `(col IS NULL)` puts unassigned values last on both backends (PostgreSQL
            // and SQLite disagree on where NULLs go by default).
            format!("({col} IS NULL){dir}, {col}{dir}, created_us, id")
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

/// Renders `predicate` as SQL whose parameters are numbered from `$(first + 1)`.
pub fn to_sql(predicate: &Predicate, first: usize) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let sql = render(predicate, first, &mut binds);
    (sql, binds)
}

fn render(predicate: &Predicate, first: usize, binds: &mut Vec<Bind>) -> String {
    let param = |v: Value, binds: &mut Vec<Bind>| {
        binds.push(Bind(v));
        format!("${}", first + binds.len())
    };
    match predicate {
        Predicate::True => "1 = 1".to_owned(),
        Predicate::False => "1 = 0".to_owned(),
        Predicate::And(a, b) => format!(
            "({}) AND ({})",
            render(a, first, binds),
            render(b, first, binds)
        ),
        Predicate::Or(a, b) => format!(
            "({}) OR ({})",
            render(a, first, binds),
            render(b, first, binds)
        ),
        Predicate::Not(a) => format!("NOT ({})", render(a, first, binds)),
        Predicate::Present(c) => format!("{} IS NOT NULL", column_sql(c)),
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
            let v = match (v, case_insensitive(c)) {
                (Value::Text(s), true) => Value::Text(crate::case::fold(s)),
                (v, _) => v.clone(),
            };
            let col = column_sql(c);
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
        let (sql, binds) = to_sql(&p, 2);
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
