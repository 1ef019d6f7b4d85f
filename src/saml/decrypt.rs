//! Decryption of an EncryptedAssertion (XML Encryption 1.0/1.1) with the service provider's
//! keys. The decrypted assertion replaces the EncryptedAssertion in the Response, and the
//! result goes through the whole validation again: the assertion's own signature is verified
//! after decryption, so the Response-level signature (which covered the ciphertext) is dropped.
//!
//! Key transport: RSA-OAEP (`xmlenc#rsa-oaep-mgf1p`, `xmlenc11#rsa-oaep` with SHA-1/SHA-2
//! digests and MGF1). RSA PKCS#1 v1.5 is refused (Bleichenbacher's attack). Content: AES-GCM,
//! 128/192/256 bits; AES-CBC only where `saml.allowCbcEncryption` allows it, because its
//! padding and the XML parse of a tampered plaintext answer differently (Jager and
//! Somorovsky's attack on XML Encryption).
//!
//! Anyone may post an EncryptedAssertion, so what an attacker could measure does not depend on
//! which service-provider key fails: there is exactly one EncryptedKey, every current, next and
//! previous key unwraps it, and each result (or a random key of the right length where
//! unwrapping fails) decrypts the content, whichever key succeeds. Every failure to open it
//! gives the same answer.

use base64::Engine;
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode, decrypt_aead};

use crate::api::identity_provider::Provider;

const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Why an encrypted assertion could not be decrypted. Never carries key material or plaintext.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The encryption structure is incomplete.
    #[error(
        "the EncryptedAssertion is incomplete (EncryptedData, EncryptedKey and CipherValue are required)"
    )]
    Malformed,
    /// An algorithm this service provider does not accept (its short name: the value comes
    /// from a response whose signature has not been checked yet).
    #[error(
        "the IdP encrypted with {0}, which is not accepted: use RSA-OAEP for the key and AES-GCM for the data"
    )]
    Algorithm(&'static str),
    /// AES-CBC content while `saml.allowCbcEncryption` is off.
    #[error(
        "the IdP encrypted the assertion with AES-CBC, which is refused because it is not authenticated: choose AES-GCM at the IdP ({}), or turn assertion encryption off there; only for an IdP that cannot encrypt with AES-GCM, set saml.allowCbcEncryption: true",
        gcm_setting(*.0)
    )]
    CbcRefused(Provider),
    /// More than one EncryptedKey: each would be one more try against the service-provider keys.
    #[error(
        "the EncryptedAssertion carries {0} EncryptedKey elements and exactly one is accepted: have the IdP encrypt the assertion for one certificate only, the encryption certificate from the service-provider metadata"
    )]
    SeveralKeys(usize),
    /// No service-provider key opens it.
    #[error(
        "no service-provider key decrypts the assertion: the IdP must encrypt with the encryption certificate from the service-provider metadata"
    )]
    NoKey,
    /// The plaintext is not one SAML Assertion.
    #[error("the decrypted content is not a SAML Assertion")]
    NotAnAssertion,
}

/// Where the IdP's data encryption algorithm is chosen, in its console's words.
fn gcm_setting(provider: Provider) -> &'static str {
    match provider {
        Provider::Okta => {
            "Okta: SAML Settings > Show Advanced Settings > Encryption Algorithm: AES256-GCM"
        }
        Provider::Entra => {
            "Entra ID offers no choice of algorithm for Token encryption and encrypts with AES-256-CBC: turn Token encryption off in Entra"
        }
        Provider::Keycloak => {
            "Keycloak: the client's encryption algorithm AES_256_GCM, the default of current Keycloak releases"
        }
        _ => {
            "the IdP's data encryption algorithm: http://www.w3.org/2009/xmlenc11#aes256-gcm or aes128-gcm; Shibboleth IdP 3: idp.encryption.config = shibboleth.EncryptionConfiguration.GCM"
        }
    }
}

fn child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name
    })
}

fn cipher_value(n: roxmltree::Node<'_, '_>) -> Result<Vec<u8>, DecryptError> {
    let text = child(n, XENC, "CipherData")
        .and_then(|d| child(d, XENC, "CipherValue"))
        .and_then(|v| v.text())
        .ok_or(DecryptError::Malformed)?;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| DecryptError::Malformed)
}

fn shown(uri: &str) -> &'static str {
    super::algorithm_names::algorithm_name(uri)
}

fn digest(uri: Option<&str>) -> Result<&'static MdRef, DecryptError> {
    Ok(match uri {
        None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => Md::sha1(),
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => Md::sha256(),
        Some("http://www.w3.org/2001/04/xmldsig-more#sha384") => Md::sha384(),
        Some("http://www.w3.org/2001/04/xmlenc#sha512") => Md::sha512(),
        Some(other) => return Err(DecryptError::Algorithm(shown(other))),
    })
}

fn mgf(uri: Option<&str>) -> Result<&'static MdRef, DecryptError> {
    Ok(match uri {
        None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => Md::sha1(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha224") => Md::sha224(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => Md::sha256(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha384") => Md::sha384(),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha512") => Md::sha512(),
        Some(other) => return Err(DecryptError::Algorithm(shown(other))),
    })
}

/// The OAEP parameters of an EncryptedKey.
fn key_transport(
    ek: roxmltree::Node<'_, '_>,
) -> Result<(&'static MdRef, &'static MdRef), DecryptError> {
    let method = child(ek, XENC, "EncryptionMethod").ok_or(DecryptError::Malformed)?;
    let algorithm = method.attribute("Algorithm").unwrap_or_default();
    let digest_uri = child(method, DS, "DigestMethod").and_then(|d| d.attribute("Algorithm"));
    match algorithm {
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" => Ok((digest(digest_uri)?, Md::sha1())),
        "http://www.w3.org/2009/xmlenc11#rsa-oaep" => {
            let mgf_uri = child(method, XENC11, "MGF").and_then(|m| m.attribute("Algorithm"));
            Ok((digest(digest_uri)?, mgf(mgf_uri)?))
        }
        other => Err(DecryptError::Algorithm(shown(other))),
    }
}

fn unwrap_key(
    wrapped: &[u8],
    key: &PKey<Private>,
    (md, mgf1): (&'static MdRef, &'static MdRef),
) -> Option<Vec<u8>> {
    let mut ctx = PkeyCtx::new(key).ok()?;
    ctx.decrypt_init().ok()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
    ctx.set_rsa_oaep_md(md).ok()?;
    ctx.set_rsa_mgf1_md(mgf1).ok()?;
    let mut out = Vec::new();
    ctx.decrypt_to_vec(wrapped, &mut out).ok()?;
    Some(out)
}

/// The content-encryption algorithm of an EncryptedData.
#[derive(Clone, Copy)]
struct Content {
    cipher: Cipher,
    gcm: bool,
}

fn content(algorithm: &str, allow_cbc: bool, provider: Provider) -> Result<Content, DecryptError> {
    let (cipher, gcm) = match algorithm {
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => (Cipher::aes_128_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => (Cipher::aes_192_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => (Cipher::aes_256_gcm(), true),
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => (Cipher::aes_128_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => (Cipher::aes_192_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => (Cipher::aes_256_cbc(), false),
        other => return Err(DecryptError::Algorithm(shown(other))),
    };
    if !gcm && !allow_cbc {
        return Err(DecryptError::CbcRefused(provider));
    }
    Ok(Content { cipher, gcm })
}

/// Decrypts `blob` (IV, ciphertext and, for GCM, the tag) with `key`, which has the cipher's
/// key length.
fn decrypt_data(content: Content, key: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
    let Content { cipher, gcm } = content;
    if gcm {
        if blob.len() < 12 + 16 {
            return None;
        }
        let (iv, rest) = blob.split_at(12);
        let (data, tag) = rest.split_at(rest.len() - 16);
        return decrypt_aead(cipher, key, Some(iv), &[], data, tag).ok();
    }
    if blob.len() < 32 || !blob.len().is_multiple_of(16) {
        return None;
    }
    let (iv, data) = blob.split_at(16);
    let mut crypter = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).ok()?;
    crypter.pad(false);
    let mut out = vec![0u8; data.len() + 16];
    let n = crypter.update(data, &mut out).ok()?;
    let m = crypter.finalize(&mut out[n..]).ok()?;
    out.truncate(n + m);
    // XML Encryption padding: the last byte is the pad length (the other pad bytes are
    // arbitrary, so PKCS#7 unpadding would be wrong).
    let pad = usize::from(*out.last().unwrap_or(&0));
    if pad == 0 || pad > 16 || pad > out.len() {
        return None;
    }
    out.truncate(out.len() - pad);
    Some(out)
}

/// Tries every key the same way: unwrap the content key, then decrypt the content with it or,
/// where unwrapping failed or gave a key of the wrong length, with a random key of the right
/// length. The result is the plaintext of the first key whose unwrapped key opened it.
fn open_with_every_key(
    keys: &[PKey<Private>],
    wrapped: &[u8],
    params: (&'static MdRef, &'static MdRef),
    content: Content,
    blob: &[u8],
) -> Option<Vec<u8>> {
    let key_len = content.cipher.key_len();
    let mut opened = None;
    for key in keys {
        let unwrapped = unwrap_key(wrapped, key, params).filter(|k| k.len() == key_len);
        let genuine = unwrapped.is_some();
        let sym = unwrapped.unwrap_or_else(|| {
            let mut random = vec![0u8; key_len];
            // Should the random source fail, zeros do the same work and open nothing.
            let _ = openssl::rand::rand_bytes(&mut random);
            random
        });
        let plaintext = decrypt_data(content, &sym, blob);
        if genuine && opened.is_none() {
            opened = plaintext;
        }
    }
    opened
}

/// Decrypts the Response's EncryptedAssertion with the first of `keys` that opens it (every
/// key is tried the same way; see the module documentation) and returns the Response with the
/// plain assertion in its place and without a Response-level signature. AES-CBC content is
/// refused unless `allow_cbc`; `provider` names the IdP's setting in that refusal.
pub fn decrypt_response(
    xml: &str,
    keys: &[PKey<Private>],
    allow_cbc: bool,
    provider: Provider,
) -> Result<String, DecryptError> {
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
    .map_err(|_| DecryptError::Malformed)?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(SAMLP) {
        return Err(DecryptError::Malformed);
    }
    let ea = child(root, SAML, "EncryptedAssertion").ok_or(DecryptError::Malformed)?;
    let data = child(ea, XENC, "EncryptedData").ok_or(DecryptError::Malformed)?;
    let algorithm = child(data, XENC, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or(DecryptError::Malformed)?;
    let content = content(algorithm, allow_cbc, provider)?;
    let blob = cipher_value(data)?;
    // The EncryptedKey is inside the EncryptedData's KeyInfo (Okta) or next to it (Entra).
    let encrypted_keys: Vec<roxmltree::Node> = ea
        .descendants()
        .filter(|n| {
            n.is_element()
                && n.tag_name().namespace() == Some(XENC)
                && n.tag_name().name() == "EncryptedKey"
        })
        .collect();
    let ek = match encrypted_keys.as_slice() {
        [] => return Err(DecryptError::Malformed),
        [one] => *one,
        several => return Err(DecryptError::SeveralKeys(several.len())),
    };
    let params = key_transport(ek)?;
    let wrapped = cipher_value(ek)?;
    let plaintext = open_with_every_key(keys, &wrapped, params, content, &blob);
    let plaintext = String::from_utf8(plaintext.ok_or(DecryptError::NoKey)?)
        .map_err(|_| DecryptError::NotAnAssertion)?;
    let plaintext = plaintext.trim();
    let plaintext = match plaintext.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map(|(_, r)| r.trim_start())
            .unwrap_or(""),
        None => plaintext,
    };
    if plaintext.contains("<!DOCTYPE") || plaintext.contains("<!ENTITY") {
        return Err(DecryptError::NotAnAssertion);
    }
    // Splice: the assertion replaces the EncryptedAssertion; the Response signature goes.
    let mut cuts: Vec<(std::ops::Range<usize>, &str)> = vec![(ea.range(), plaintext)];
    for sig in root.children().filter(|n| {
        n.is_element() && n.tag_name().namespace() == Some(DS) && n.tag_name().name() == "Signature"
    }) {
        cuts.push((sig.range(), ""));
    }
    cuts.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = xml.to_owned();
    for (range, text) in cuts {
        out.replace_range(range, text);
    }
    // The result must hold exactly one plain Assertion where the EncryptedAssertion was.
    let check = roxmltree::Document::parse_with_options(
        &out,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
    .map_err(|_| DecryptError::NotAnAssertion)?;
    if child(check.root_element(), SAML, "Assertion").is_none() {
        return Err(DecryptError::NotAnAssertion);
    }
    Ok(out)
}
