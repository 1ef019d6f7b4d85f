//! Short names of the XML Signature and XML Encryption algorithms, for messages about a
//! response whose signature did not verify: its algorithm URIs may come from anyone, so a
//! message names a known algorithm and never quotes the URI.

const KNOWN: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmlenc#sha512",
    "http://www.w3.org/2001/04/xmlenc#ripemd160",
    "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#kw-aes128",
    "http://www.w3.org/2001/04/xmlenc#kw-aes192",
    "http://www.w3.org/2001/04/xmlenc#kw-aes256",
    "http://www.w3.org/2001/04/xmldsig-more#md5",
    "http://www.w3.org/2001/04/xmldsig-more#sha224",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha224",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha224",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512",
    "http://www.w3.org/2009/xmldsig11#dsa-sha256",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#mgf1sha1",
    "http://www.w3.org/2009/xmlenc11#mgf1sha224",
    "http://www.w3.org/2009/xmlenc11#mgf1sha256",
    "http://www.w3.org/2009/xmlenc11#mgf1sha384",
    "http://www.w3.org/2009/xmlenc11#mgf1sha512",
];

/// What a message calls the algorithm `uri`: its short name (`rsa-sha256`) when it is a
/// standard XML Security algorithm, otherwise a phrase that quotes nothing.
pub fn algorithm_name(uri: &str) -> &'static str {
    KNOWN
        .iter()
        .find(|k| **k == uri)
        .and_then(|k| k.rsplit('#').next())
        .unwrap_or("an algorithm that is not a standard XML Security algorithm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_algorithms_have_short_names_and_anything_else_is_not_quoted() {
        assert_eq!(
            algorithm_name("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
            "rsa-sha256"
        );
        assert_eq!(
            algorithm_name("http://www.w3.org/2009/xmlenc11#aes256-gcm"),
            "aes256-gcm"
        );
        let chosen = algorithm_name("http://evil.example/#please-call-555-0100");
        assert!(!chosen.contains("555"), "{chosen}");
    }
}
