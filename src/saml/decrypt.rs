//! Decryption of an EncryptedAssertion (XML Encryption 1.0/1.1) with the service provider's
//! keys. The decrypted assertion replaces the EncryptedAssertion in the Response, and the
//! result goes through the whole validation again: the assertion's own signature is verified
//! after decryption, so the Response-level signature (which covered the ciphertext) is dropped.
//!
//! Key transport: RSA-OAEP (`xmlenc#rsa-oaep-mgf1p`, `xmlenc11#rsa-oaep` with SHA-1/SHA-2
//! digests and MGF1). RSA PKCS#1 v1.5 is refused (Bleichenbacher's attack). Content: AES-GCM
//! (preferred) and AES-CBC, 128/192/256 bits.

use base64::Engine;
use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode, decrypt_aead};

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
        "the IdP encrypted with {0}, which is not accepted: use RSA-OAEP for the key and AES-GCM (or AES-CBC) for the data"
    )]
    Algorithm(&'static str),
    /// No service-provider key opens it.
    #[error(
        "no service-provider key decrypts the assertion: the IdP must encrypt with the encryption certificate from the service-provider metadata"
    )]
    NoKey,
    /// The plaintext is not one SAML Assertion.
    #[error("the decrypted content is not a SAML Assertion")]
    NotAnAssertion,
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

fn decrypt_data(algorithm: &str, key: &[u8], blob: &[u8]) -> Result<Option<Vec<u8>>, DecryptError> {
    let (cipher, gcm) = match algorithm {
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => (Cipher::aes_128_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => (Cipher::aes_192_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => (Cipher::aes_256_gcm(), true),
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => (Cipher::aes_128_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => (Cipher::aes_192_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => (Cipher::aes_256_cbc(), false),
        other => return Err(DecryptError::Algorithm(shown(other))),
    };
    if key.len() != cipher.key_len() {
        return Ok(None);
    }
    if gcm {
        if blob.len() < 12 + 16 {
            return Ok(None);
        }
        let (iv, rest) = blob.split_at(12);
        let (data, tag) = rest.split_at(rest.len() - 16);
        return Ok(decrypt_aead(cipher, key, Some(iv), &[], data, tag).ok());
    }
    if blob.len() < 32 || !blob.len().is_multiple_of(16) {
        return Ok(None);
    }
    let (iv, data) = blob.split_at(16);
    let Ok(mut crypter) = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)) else {
        return Ok(None);
    };
    crypter.pad(false);
    let mut out = vec![0u8; data.len() + 16];
    let Ok(n) = crypter.update(data, &mut out) else {
        return Ok(None);
    };
    let Ok(m) = crypter.finalize(&mut out[n..]) else {
        return Ok(None);
    };
    out.truncate(n + m);
    // XML Encryption padding: the last byte is the pad length (the other pad bytes are
    // arbitrary, so PKCS#7 unpadding would be wrong).
    let pad = usize::from(*out.last().unwrap_or(&0));
    if pad == 0 || pad > 16 || pad > out.len() {
        return Ok(None);
    }
    out.truncate(out.len() - pad);
    Ok(Some(out))
}

/// Decrypts the Response's EncryptedAssertion with the first of `keys` that opens it and
/// returns the Response with the plain assertion in its place and without a Response-level
/// signature.
pub fn decrypt_response(xml: &str, keys: &[PKey<Private>]) -> Result<String, DecryptError> {
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
    let blob = cipher_value(data)?;
    // The EncryptedKey is inside the EncryptedData's KeyInfo (Okta) or next to it (Entra).
    let encrypted_keys: Vec<roxmltree::Node> = ea
        .descendants()
        .filter(|n| {
            n.is_element()
                && n.tag_name().namespace() == Some(XENC)
                && n.tag_name().name() == "EncryptedKey"
        })
        .take(4)
        .collect();
    if encrypted_keys.is_empty() {
        return Err(DecryptError::Malformed);
    }
    let mut plaintext = None;
    'found: for ek in &encrypted_keys {
        let params = key_transport(*ek)?;
        let wrapped = cipher_value(*ek)?;
        for key in keys {
            if let Some(sym) = unwrap_key(&wrapped, key, params)
                && let Some(p) = decrypt_data(algorithm, &sym, &blob)?
            {
                plaintext = Some(p);
                break 'found;
            }
        }
    }
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
