//! The SAML service provider, on top of samael: SP metadata, SP-initiated login and its
//! redirect allow-list, the ACS's checks of a posted response (structural gate, decryption,
//! signature, every rule of docs/security.md), the mapping from a verified sign-in to a user,
//! and Single Logout. No HTTP framework types here.

pub mod acs;
pub mod algorithm_names;
pub mod decrypt;
pub mod login;
pub mod logout;
pub mod mapping;
pub mod metadata;
pub mod response_shape;
pub mod signature_failure;
