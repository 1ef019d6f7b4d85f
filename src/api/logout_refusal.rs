//! Why the Single Logout service refused a LogoutRequest or LogoutResponse: the reasons the
//! server's log line `Single Logout message refused` names, each with what it means and what
//! to change. `docs/reference.md` lists them from here.

use std::fmt;

documented_reasons! {
    /// Why the Single Logout service (`/saml/{namespace}/{name}/slo`) refused a message. The
    /// doc comment of each variant is the advice `docs/reference.md` shows for it.
    LogoutRefusal;
    /// The posted form is larger than 512 KiB: the IdP sends an unusually large logout
    /// message.
    RequestTooLarge = "RequestTooLarge";
    /// The request carries neither or both of `SAMLRequest` and `SAMLResponse`, or a parameter
    /// twice: the IdP must use the HTTP-Redirect or HTTP-POST binding.
    NoMessage = "NoMessage";
    /// The message is not base64-encoded (and, for HTTP-Redirect, deflated) UTF-8, not
    /// well-formed XML without a DTD, or not a LogoutRequest or LogoutResponse (the one its
    /// parameter names).
    MalformedMessage = "MalformedMessage";
    /// The IdP does not sign its logout messages. Turn signing on at the IdP (Keycloak: the
    /// client's "Sign documents"; most IdPs sign them always).
    Unsigned = "Unsigned";
    /// Signed with SHA-1 or a weaker algorithm than `saml.signatureAlgorithm` allows: choose
    /// RSA-SHA256 at the IdP.
    SignatureAlgorithmRefused = "SignatureAlgorithmRefused";
    /// The signature is not a plain enveloped signature of the message (one reference to its
    /// ID, exclusive canonicalisation).
    SignatureShape = "SignatureShape";
    /// The signature does not match a certificate in `spec.idp.certificates` (or the
    /// metadata): paste the IdP's current signing certificate.
    VerificationFailed = "VerificationFailed";
    /// The message's Issuer is not `spec.idp.entityId`: copy the IdP's entity ID into it.
    WrongIssuer = "WrongIssuer";
    /// The IdP sends to another URL than `status.serviceProvider.singleLogoutUrl`: copy that
    /// URL into the IdP's Single Logout URL field (Okta: Single Logout URL; Entra: Logout
    /// URL).
    WrongDestination = "WrongDestination";
    /// The message is older than 10 minutes, from the future or past its NotOnOrAfter: check
    /// the clocks of the IdP and the server.
    OutsideValidity = "OutsideValidity";
    /// The LogoutRequest names no NameID (an encrypted NameID is not supported): configure the
    /// IdP to send it in clear.
    NoNameId = "NoNameId";
    /// Our LogoutResponse could not be built or signed: the server's log says why; check the
    /// service-provider keys.
    BuildFailed = "BuildFailed";
    /// More messages were being verified at once than the server verifies in parallel (twice
    /// its CPUs) for 5 seconds: retry; if it lasts, give the server more CPUs or replicas.
    Busy = "Busy";
    /// The identity store failed: check the server's log and its database.
    StoreUnavailable = "StoreUnavailable";
    /// The LogoutResponse does not answer a sign-out started in this browser, was used
    /// already, or came after 10 minutes (cookies blocked, or a reloaded page). The user is
    /// signed out here anyway.
    InResponseToMismatch = "InResponseToMismatch";
    /// The browser sent the sign-out's cookie twice (one set by another host or for another
    /// path): clear the site's cookies.
    DuplicateCookie = "DuplicateCookie";
}

impl fmt::Display for LogoutRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_unique_camel_case_and_says_what_it_means() {
        let mut seen = std::collections::BTreeSet::new();
        for &refusal in LogoutRefusal::ALL {
            let reason = refusal.reason();
            assert!(seen.insert(reason), "{reason} is used twice");
            let mut chars = reason.chars();
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_uppercase())
                    && chars.all(|c| c.is_ascii_alphanumeric()),
                "{reason} is not CamelCase"
            );
            assert_eq!(refusal.to_string(), reason);
            let description = refusal.description().trim();
            assert!(
                description.len() > 20 && description.ends_with('.'),
                "{refusal}: {description:?}"
            );
        }
    }
}
