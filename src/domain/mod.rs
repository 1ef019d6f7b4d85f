//! The records and the query vocabulary that the SCIM protocol and the identity store share:
//! users, groups, and filters and orders over them. Pure data: no SQL, no HTTP.

pub mod groups;
pub mod query;
pub mod users;

pub use groups::{Group, GroupInput};
pub use query::{CmpOp, Column, Predicate, Sort, Value};
pub use users::{User, UserInput};
