//! Fetching and parsing IdP SAML metadata, with the SSRF and size protections of
//! docs/security.md: https only, no loopback/private/link-local targets after DNS resolution (the
//! connection is pinned to the checked addresses), no redirects, size and time limits.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;

use crate::config::{SingleLogoutService, SloBinding};

/// What a metadata document says about the IdP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpMetadata {
    /// `entityID` of the EntityDescriptor.
    pub entity_id: String,
    /// Location of the HTTP-Redirect SingleSignOnService.
    pub sso_url: String,
    /// Every signing certificate (KeyDescriptors with `use="signing"` or no `use`), base64 DER.
    pub certificates: Vec<String>,
    /// The https SingleLogoutService, HTTP-Redirect binding preferred over HTTP-POST; none
    /// when the IdP publishes neither.
    pub single_logout: Option<SingleLogoutService>,
}

/// Why metadata could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The URL is refused before any connection is made.
    #[error("{0}")]
    Refused(String),
    /// The fetch failed.
    #[error("{0}")]
    Fetch(String),
    /// The document is not usable SAML metadata.
    #[error("{0}")]
    Invalid(String),
}

/// Limits for metadata fetching.
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// Allows loopback and private addresses. Off by default; only for tests and labs.
    pub allow_private_addresses: bool,
    /// Extra trusted root certificates (PEM), besides the public web PKI roots.
    pub extra_root_certificates: Vec<reqwest::Certificate>,
    /// Whole-request time limit.
    pub timeout: Duration,
    /// Largest accepted document.
    pub max_bytes: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            extra_root_certificates: Vec::new(),
            timeout: Duration::from_secs(10),
            max_bytes: 1024 * 1024,
        }
    }
}

/// True for addresses a metadata URL must never reach: loopback, private, link-local,
/// carrier-grade NAT, unique-local, unspecified, multicast, broadcast and documentation ranges.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || (seg[0] == 0x64 && seg[1] == 0xff9b)
                || (seg[0] & 0xffc0) == 0xfec0
                || seg[0] == 0x2002
                || (seg[0] == 0x2001 && seg[1] == 0)
                || (seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
        }
    }
}

/// Fetches the metadata document at `url` under `policy`.
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<String, MetadataError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        MetadataError::Refused(format!("the metadata URL is not a valid URL ({e})"))
    })?;
    if parsed.scheme() != "https" {
        return Err(MetadataError::Refused(
            "the metadata URL must use https://".into(),
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| MetadataError::Refused("the metadata URL has no host".into()))?
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let lookup_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        policy.timeout,
        tokio::net::lookup_host((lookup_host.as_str(), port)),
    )
    .await
    .map_err(|_| MetadataError::Fetch(format!("resolving {host} timed out")))?
    .map_err(|e| MetadataError::Fetch(format!("could not resolve {host}: {e}")))?
    .collect();
    if addrs.is_empty() {
        return Err(MetadataError::Fetch(format!("{host} has no addresses")));
    }
    if !policy.allow_private_addresses
        && let Some(bad) = addrs.iter().find(|a| is_internal(a.ip()))
        && {
            // The address stays out of the status message (no DNS oracle for resource authors).
            tracing::debug!(host = %host, address = %bad.ip(), "metadata URL refused");
            true
        }
    {
        return Err(MetadataError::Refused(format!(
            "{host} resolves to a loopback, private or link-local address: metadata is only fetched from public addresses"
        )));
    }
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the host itself and defeat the address check.
        .no_proxy()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .user_agent(concat!("sso-operator/", env!("CARGO_PKG_VERSION")))
        // Connect only to the addresses checked above, so DNS cannot change between check and use.
        .resolve_to_addrs(&lookup_host, &addrs);
    for root in &policy.extra_root_certificates {
        builder = builder.add_root_certificate(root.clone());
    }
    let client = builder
        .build()
        .map_err(|e| MetadataError::Fetch(format!("could not build the HTTP client: {e}")))?;
    let response = client
        .get(parsed)
        .header(
            "accept",
            "application/samlmetadata+xml, application/xml, text/xml",
        )
        .send()
        .await
        .map_err(|e| MetadataError::Fetch(describe_reqwest_error(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(MetadataError::Fetch(format!(
            "the metadata URL answered HTTP {status}"
        )));
    }
    if response
        .content_length()
        .is_some_and(|n| n > policy.max_bytes as u64)
    {
        return Err(MetadataError::Fetch(format!(
            "the metadata is larger than {} bytes",
            policy.max_bytes
        )));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| MetadataError::Fetch(describe_reqwest_error(&e)))?;
        if body.len() + chunk.len() > policy.max_bytes {
            return Err(MetadataError::Fetch(format!(
                "the metadata is larger than {} bytes",
                policy.max_bytes
            )));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body)
        .map_err(|_| MetadataError::Invalid("the metadata is not UTF-8 text".into()))
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "the request timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

const MD_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// The SingleLogoutService of an IDPSSODescriptor we can use: https only (an endpoint we
/// cannot use leaves Single Logout off rather than failing the whole IdentityProvider).
fn single_logout(idp: roxmltree::Node<'_, '_>) -> Option<SingleLogoutService> {
    let services: Vec<_> = idp
        .children()
        .filter(|c| {
            c.is_element()
                && c.tag_name().namespace() == Some(MD_NS)
                && c.tag_name().name() == "SingleLogoutService"
        })
        .collect();
    let https = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| v.starts_with("https://"))
            .map(str::to_owned)
    };
    [
        (REDIRECT_BINDING, SloBinding::Redirect),
        (POST_BINDING, SloBinding::Post),
    ]
    .into_iter()
    .find_map(|(uri, binding)| {
        let service = services
            .iter()
            .find(|s| s.attribute("Binding") == Some(uri))?;
        Some(SingleLogoutService {
            binding,
            location: https(service.attribute("Location"))?,
            response_location: https(service.attribute("ResponseLocation")),
        })
    })
}

/// Parses SAML metadata. DTDs are refused (no entity expansion).
pub fn parse(xml: &str) -> Result<IdpMetadata, MetadataError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options).map_err(|e| {
        MetadataError::Invalid(format!("the metadata is not well-formed XML ({e})"))
    })?;
    let is = |n: &roxmltree::Node, ns: &str, name: &str| {
        n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
    };
    let entities: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| {
            is(n, MD_NS, "EntityDescriptor")
                && n.children().any(|c| is(&c, MD_NS, "IDPSSODescriptor"))
        })
        .collect();
    let entity = match entities.as_slice() {
        [one] => *one,
        [] => {
            return Err(MetadataError::Invalid(
                "the metadata has no EntityDescriptor with an IDPSSODescriptor".into(),
            ));
        }
        _ => {
            return Err(MetadataError::Invalid(
                "the metadata describes several identity providers; use the URL of one".into(),
            ));
        }
    };
    let entity_id = entity
        .attribute("entityID")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| MetadataError::Invalid("the EntityDescriptor has no entityID".into()))?
        .trim()
        .to_owned();
    let idp = entity
        .children()
        .find(|c| is(c, MD_NS, "IDPSSODescriptor"))
        .expect("filtered above");
    let sso_url = idp
        .children()
        .filter(|c| is(c, MD_NS, "SingleSignOnService"))
        .find(|c| c.attribute("Binding") == Some(REDIRECT_BINDING))
        .and_then(|c| c.attribute("Location"))
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| {
            MetadataError::Invalid(
                "the metadata has no SingleSignOnService with the HTTP-Redirect binding".into(),
            )
        })?;
    if !sso_url.starts_with("https://") {
        return Err(MetadataError::Invalid(format!(
            "the SingleSignOnService location {sso_url} is not https://"
        )));
    }
    let certificates: Vec<String> = idp
        .children()
        .filter(|c| {
            is(c, MD_NS, "KeyDescriptor") && matches!(c.attribute("use"), None | Some("signing"))
        })
        .flat_map(|kd| kd.descendants().filter(|n| is(n, DS_NS, "X509Certificate")))
        .filter_map(|n| n.text())
        .map(|t| t.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|t| !t.is_empty())
        .collect();
    if certificates.is_empty() {
        return Err(MetadataError::Invalid(
            "the metadata has no signing certificate (KeyDescriptor with X509Certificate)".into(),
        ));
    }
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        certificates,
        single_logout: single_logout(idp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(body: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="http://www.okta.com/exk1"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{body}</md:IDPSSODescriptor></md:EntityDescriptor>"#
        )
    }
    const SSO: &str = r#"<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.com/post"/><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/redirect"/>"#;

    #[test]
    fn reads_entity_id_redirect_sso_and_every_signing_certificate() {
        let xml = doc(&format!(
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>AAAA
BBBB</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>CCCC</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>EEEE</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>{SSO}"#
        ));
        let md = parse(&xml).unwrap();
        assert_eq!(md.entity_id, "http://www.okta.com/exk1");
        assert_eq!(md.sso_url, "https://idp.example.com/redirect");
        assert_eq!(md.certificates, ["AAAABBBB", "CCCC"]);
        assert_eq!(md.single_logout, None);
    }

    #[test]
    fn reads_the_single_logout_service_preferring_the_redirect_binding() {
        let key = r#"<md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>CCCC</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#;
        let post = r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.com/slo/post"/>"#;
        let redirect = r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location=" https://idp.example.com/slo " ResponseLocation="https://idp.example.com/slo/response"/>"#;
        let md = parse(&doc(&format!("{key}{post}{redirect}{SSO}"))).unwrap();
        assert_eq!(
            md.single_logout,
            Some(SingleLogoutService {
                binding: SloBinding::Redirect,
                location: "https://idp.example.com/slo".into(),
                response_location: Some("https://idp.example.com/slo/response".into()),
            })
        );
        let md = parse(&doc(&format!("{key}{post}{SSO}"))).unwrap();
        assert_eq!(
            md.single_logout.map(|s| (s.binding, s.location)),
            Some((SloBinding::Post, "https://idp.example.com/slo/post".into()))
        );
        // Plain http cannot carry a logout safely: Single Logout stays off.
        let http = post.replace("https://", "http://");
        assert_eq!(
            parse(&doc(&format!("{key}{http}{SSO}")))
                .unwrap()
                .single_logout,
            None
        );
    }

    #[test]
    fn refuses_dtds_missing_certificates_and_missing_redirect_binding() {
        let with_dtd = format!(
            "<!DOCTYPE x [<!ENTITY a \"b\">]>{}",
            doc(SSO).trim_start_matches(r#"<?xml version="1.0"?>"#)
        );
        assert!(
            matches!(parse(&with_dtd), Err(MetadataError::Invalid(m)) if m.contains("well-formed"))
        );
        assert!(
            matches!(parse(&doc(SSO)), Err(MetadataError::Invalid(m)) if m.contains("no signing certificate"))
        );
        let no_redirect = doc(
            r#"<md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>CCCC</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
        );
        assert!(
            matches!(parse(&no_redirect), Err(MetadataError::Invalid(m)) if m.contains("HTTP-Redirect"))
        );
        assert!(matches!(
            parse("<not-closed"),
            Err(MetadataError::Invalid(_))
        ));
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn refuses_plain_http_and_private_targets_before_connecting() {
        let policy = FetchPolicy::default();
        assert!(matches!(
            fetch("http://idp.example.com/md", &policy).await,
            Err(MetadataError::Refused(_))
        ));
        let err = fetch("https://127.0.0.1:9/md", &policy).await.unwrap_err();
        assert!(
            matches!(&err, MetadataError::Refused(m) if m.contains("127.0.0.1")),
            "{err}"
        );
        let err = fetch("https://localhost:9/md", &policy).await.unwrap_err();
        assert!(matches!(&err, MetadataError::Refused(_)), "{err}");
    }
}
