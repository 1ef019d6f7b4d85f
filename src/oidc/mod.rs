//! The OpenID Provider's pure parts: signing keys and their rotation, JSON Web Signatures and
//! the JWKS document, the protocol's checks (redirect URIs, PKCE, scopes) and its claims. No
//! I/O: the controller keeps the keys, the server answers the endpoints.

pub mod claims;
pub mod discovery;
pub mod jws;
pub mod keys;
pub mod kubectl;
pub mod pkce;
pub mod redirect;
pub mod scope;
