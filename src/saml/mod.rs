//! The SAML service provider, on top of samael: SP metadata now; SP-initiated login and the
//! ACS with every check of PROTOCOLS.md build on it. No HTTP framework types here.

pub mod acs;
pub mod algorithm_names;
pub mod decrypt;
pub mod login;
pub mod logout;
pub mod mapping;
pub mod metadata;
pub mod response_shape;
pub mod signature_failure;
