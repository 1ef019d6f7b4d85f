//! sso-operator: SAML single sign-on and SCIM 2.0 user provisioning for Kubernetes, declared
//! as `IdentityProvider` and `ScimToken` custom resources.
#![warn(missing_docs)]

pub mod api;
pub mod case;
pub mod cli;
pub mod config;
pub mod controller;
pub mod domain;
pub mod oidc;
pub mod ops;
pub mod probe;
pub mod saml;
pub mod scim;
pub mod server;
pub mod session;
pub mod store;
pub mod tenant;
pub mod text;
