//! The vocabulary of queries over users and groups: which column, compared how, with what,
//! in which order. The SCIM layer translates SCIM filters and `sortBy` into it; the store
//! renders it as SQL.

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
