//! Why the Assertion Consumer Service refused a sign-in: the reasons written to
//! `status.signIn.lastFailureReason` and counted by the `reason` label of
//! `sso_operator_server_sign_ins_total`, each with what it means and what to change.
//! `docs/reference.md` lists them from here.

use std::fmt;
use std::str::FromStr;

documented_reasons! {
    /// Why a sign-in at the ACS was refused. The doc comment of each variant is the advice
    /// `docs/reference.md` shows for it.
    SignInRefusal;
    /// The posted form is larger than 2 MiB: the IdP sends an unusually large response (many
    /// attributes or group values). Send fewer attributes or filter the groups attribute at
    /// the IdP.
    RequestTooLarge = "RequestTooLarge";
    /// Not a SAML response this service provider accepts: the form lacks `SAMLResponse` (the
    /// ACS expects the HTTP-POST binding) or carries a field twice, the response is not base64
    /// XML without a DTD, carries several assertions or one outside the Response, signatures
    /// with unusual references or transforms, or a signed assertion lacks a required element
    /// such as `IssueInstant`.
    MalformedResponse = "MalformedResponse";
    /// The response came back in another browser than the one that started the sign-in, or
    /// the browser blocks the sign-in's cookie: start again from the application in one
    /// browser.
    BrowserMismatch = "BrowserMismatch";
    /// The browser sent the sign-in's cookie twice: another host of the domain (or an
    /// application on another path) set a cookie of the same name. The page asks the user to
    /// clear the site's cookies and start again (`/auth/verify` and `/auth/logout` answer 400
    /// "Duplicate Cookie" for a session cookie sent twice).
    DuplicateCookie = "DuplicateCookie";
    /// The sign-in this response answers took over 10 minutes, or was already finished (a
    /// reloaded or re-posted page), or belonged to a deleted IdentityProvider of the same
    /// name: start again from the application.
    LoginExpired = "LoginExpired";
    /// The sign-in started at the IdP (an Okta tile, Entra My Apps) and
    /// `spec.allowIdpInitiated` is false: set it to true (and `defaultRelayState`), or start
    /// from the application.
    IdpInitiatedNotAllowed = "IdpInitiatedNotAllowed";
    /// An IdP-initiated sign-in would return to a RelayState (or `spec.defaultRelayState`)
    /// that is not in both the installation's allowed redirects and `spec.allowedRedirects`;
    /// see [Invalid RelayState](troubleshooting.md#invalid-relaystate).
    InvalidRelayState = "InvalidRelayState";
    /// More sign-ins were being verified at once than the server verifies in parallel (twice
    /// its CPUs) for 5 seconds: retry; if it lasts, give the server more CPUs or replicas.
    Busy = "Busy";
    /// The identity store failed: check the server's log and its database (`/readyz` answers
    /// 503 while the database does not answer).
    StoreUnavailable = "StoreUnavailable";
    /// The session keys are not published yet or cannot be used: check that the controller is
    /// running.
    NoSessionKeys = "NoSessionKeys";
    /// No IdP signing certificate is configured: fill `spec.idp.certificates` or
    /// `spec.idp.metadataUrl`.
    NoCertificate = "NoCertificate";
    /// `saml.signatureAlgorithm` is rsa-sha1, which the ACS does not verify: have the IdP sign
    /// with RSA-SHA256 and set `saml.signatureAlgorithm` to match.
    Sha1Unsupported = "Sha1Unsupported";
    /// Neither the Response nor the assertion is signed: the IdP must sign one of them
    /// (preferably the assertion).
    ResponseNotSigned = "ResponseNotSigned";
    /// Only the Response is signed and `saml.wantAssertionsSigned` is true: sign the assertion
    /// at the IdP, or set `saml.wantAssertionsSigned: false`.
    AssertionNotSigned = "AssertionNotSigned";
    /// The assertion is encrypted and carries no signature of its own. A Response signature
    /// covers only the ciphertext, not the decrypted assertion, so an encrypted assertion must
    /// be signed itself whatever `saml.wantAssertionsSigned` says. Turn on the IdP's assertion
    /// signing (Okta: **Assertion Signature: Signed**; Entra: **Signing Option: Sign SAML
    /// assertion** or **Sign SAML response and assertion**; OneLogin: **SAML signature
    /// element: Assertion** or **Both**; Keycloak: **Sign assertions**).
    EncryptedAssertionNotSigned = "EncryptedAssertionNotSigned";
    /// The IdP signs with an algorithm or digest weaker than `saml.signatureAlgorithm` allows
    /// (for example SHA-1): set the IdP to RSA-SHA256 and SHA256 (Okta: **Signature
    /// Algorithm**, **Digest Algorithm**; Entra: **Signing Algorithm**), or change
    /// `saml.signatureAlgorithm`.
    SignatureAlgorithmRefused = "SignatureAlgorithmRefused";
    /// The response is signed with a certificate that is not in `spec.idp.certificates`. The
    /// message lists the configured certificates' SHA-256 fingerprints (as in
    /// `status.certificates`) and the fingerprint of the certificate the response names. Paste
    /// the IdP's current signing certificate (Okta: **Signing Certificate**; Entra:
    /// **Certificate (Base64)**), or, with `spec.idp.metadataUrl`, check that the URL is this
    /// application's metadata (it is fetched again every `metadataRefreshInterval`).
    WrongCertificate = "WrongCertificate";
    /// The signature was made with a configured certificate but the content no longer matches
    /// it: the response was changed after the IdP signed it, by tampering or by a proxy that
    /// rewrites the posted form.
    ResponseTampered = "ResponseTampered";
    /// The signature does not verify and neither a wrong certificate nor a change could be
    /// told apart (for example an ECDSA signature that names no certificate): check the
    /// certificate first.
    SignatureInvalid = "SignatureInvalid";
    /// Rare: a configured certificate cannot be read, or the SAML library refused the response
    /// for another reason; the message says which.
    VerificationFailed = "VerificationFailed";
    /// The assertion is plain and `saml.assertionEncryption` is `required`: enable assertion
    /// encryption at the IdP with the encryption certificate from the service-provider
    /// metadata.
    EncryptionRequired = "EncryptionRequired";
    /// The assertion is encrypted and `saml.assertionEncryption` is `disabled`: turn assertion
    /// encryption off at the IdP, or set `saml.assertionEncryption` to `optional`.
    EncryptionDisabled = "EncryptionDisabled";
    /// The IdP encrypted with an algorithm that is not accepted, for example RSA PKCS#1 v1.5
    /// for the key: use RSA-OAEP for the key and AES-GCM for the data.
    EncryptionAlgorithmRefused = "EncryptionAlgorithmRefused";
    /// The IdP encrypted the assertion with AES-CBC. Choose AES-GCM at the IdP (Okta: **Show
    /// Advanced Settings** > **Encryption Algorithm** AES256-GCM) or turn assertion encryption
    /// off there; only for an IdP that cannot do AES-GCM (Entra ID token encryption), set
    /// `saml.allowCbcEncryption: true`.
    CbcEncryptionRefused = "CbcEncryptionRefused";
    /// The EncryptedAssertion carries more than one EncryptedKey: have the IdP encrypt for one
    /// certificate, the encryption certificate from the service-provider metadata.
    SeveralEncryptedKeys = "SeveralEncryptedKeys";
    /// The encrypted assertion could not be opened: the IdP encrypted for an old or another
    /// certificate (use the encryption certificate from the service-provider metadata), or the
    /// encryption is incomplete or holds something other than one assertion.
    DecryptionFailed = "DecryptionFailed";
    /// The IdP answered with a failure status; the message names it,
    /// for example `InvalidNameIDPolicy` (set the Name ID format the IdentityProvider asks for)
    /// or `AuthnFailed`.
    IdpStatus = "IdpStatus";
    /// `spec.idp.entityId` is not the IdP's **Issuer** / **Microsoft Entra Identifier**.
    WrongIssuer = "WrongIssuer";
    /// The IdP's **Single sign-on URL** (Okta) / **Reply URL** (Entra) is not
    /// `status.serviceProvider.acsUrl` (check `--external-url`).
    WrongRecipient = "WrongRecipient";
    /// The IdP's **Audience URI (SP Entity ID)** / **Identifier** is not
    /// `status.serviceProvider.entityId`.
    WrongAudience = "WrongAudience";
    /// The clocks of the IdP and the server differ by more than `saml.clockSkew`, or the
    /// response is old.
    OutsideValidity = "OutsideValidity";
    /// The response does not answer the sign-in this browser started (its `InResponseTo`
    /// names another request, or an IdP-initiated response names one): start again from the
    /// application.
    InResponseToMismatch = "InResponseToMismatch";
    /// The assertion has no bearer SubjectConfirmation (with its data) or no NameID: the IdP
    /// does not send a Web Browser SSO assertion.
    NoBearerConfirmation = "NoBearerConfirmation";
    /// The same assertion was posted twice (a refresh or back button on the IdP's page).
    AssertionReplayed = "AssertionReplayed";
    /// The NameID is empty, or `attributeMapping.identity` names an attribute the IdP does not
    /// send.
    NoIdentity = "NoIdentity";
    /// `users.allowedEmailDomains` is set and the assertion carries no email address: add the
    /// email attribute statement (claim), or set the Name ID format to EmailAddress.
    NoEmail = "NoEmail";
    /// The email's domain is not in `users.allowedEmailDomains`.
    EmailDomainNotAllowed = "EmailDomainNotAllowed";
    /// The user is unknown and `users.provisioning` is `scim`: assign the user to the app in
    /// the IdP so SCIM pushes them, or allow just-in-time creation.
    UserNotProvisioned = "UserNotProvisioned";
    /// The user is deactivated (SCIM `active: false`): reactivate them in the IdP.
    UserDeactivated = "UserDeactivated";
}

impl SignInRefusal {
    /// The `reason` label of `sso_operator_server_sign_ins_total`: the status reason itself,
    /// so that a dashboard and `status.signIn` speak of a refusal by the same name.
    pub fn metric_label(self) -> &'static str {
        self.reason()
    }
}

impl fmt::Display for SignInRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A string that is no sign-in refusal reason.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sign-in refusal reason")]
pub struct UnknownRefusal(pub String);

impl FromStr for SignInRefusal {
    type Err = UnknownRefusal;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.reason() == s)
            .ok_or_else(|| UnknownRefusal(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_unique_camel_case_and_round_trips() {
        let mut seen = std::collections::BTreeSet::new();
        for &refusal in SignInRefusal::ALL {
            let reason = refusal.reason();
            assert!(seen.insert(reason), "{reason} is used twice");
            // CamelCase: a capital, then letters (and the digit of `Sha1Unsupported`).
            let mut chars = reason.chars();
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_uppercase())
                    && reason.len() > 1
                    && chars.all(|c| c.is_ascii_alphanumeric()),
                "{reason} is not CamelCase"
            );
            assert_eq!(reason.parse::<SignInRefusal>(), Ok(refusal));
            assert_eq!(refusal.to_string(), reason);
            assert_eq!(refusal.metric_label(), reason);
        }
        assert!("Ready".parse::<SignInRefusal>().is_err());
    }

    #[test]
    fn every_refusal_says_what_to_change() {
        for refusal in SignInRefusal::ALL {
            let description = refusal.description().trim();
            assert!(
                description.len() > 20 && description.ends_with('.'),
                "{refusal}: {description:?}"
            );
        }
    }
}
