//! The service provider's own key pairs: generation, the Secret layout, and rotation that
//! publishes the next certificate in metadata before switching to it.
//!
//! Secret keys: `tls.crt`/`tls.key` (current), `next.crt`/`next.key` (published, not yet
//! used), `previous.crt`/`previous.key` (still accepted for decryption until it expires).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};

use crate::config::KeyPair;

/// When service-provider certificates are renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Lifetime of a generated certificate.
    pub validity: SignedDuration,
    /// How long before expiry the next certificate is generated and published. The switch to
    /// it happens after half of this time.
    pub renew_before: SignedDuration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            validity: SignedDuration::from_hours(24 * 365),
            renew_before: SignedDuration::from_hours(24 * 30),
        }
    }
}

/// One key pair with its certificate's validity.
#[derive(Clone, Debug, PartialEq)]
pub struct SpKey {
    /// PEM certificate and private key.
    pub pair: KeyPair,
    /// Start of validity (when it was generated).
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
}

/// The key pairs of one IdentityProvider's service provider.
#[derive(Clone, Debug, PartialEq)]
pub struct SpKeySet {
    /// In use.
    pub current: SpKey,
    /// Published ahead of the switch.
    pub next: Option<SpKey>,
    /// Replaced, kept for decryption until it expires.
    pub previous: Option<SpKey>,
}

/// Errors generating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyGenError {
    /// OpenSSL failed (certificate building).
    #[error("could not generate the service-provider key pair: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// AWS-LC failed (key generation).
    #[error("could not generate the service-provider key pair: {0}")]
    AwsLc(String),
}

/// A permit to run [`advance`]: as many at once as there are CPUs.
pub async fn generation_permit() -> tokio::sync::SemaphorePermit<'static> {
    static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    PERMITS
        .acquire()
        .await
        .expect("the key generation semaphore is never closed")
}

/// Generates an RSA 2048 key pair and a self-signed certificate valid from `now` (less five
/// minutes of clock skew) for `validity`.
pub fn generate(
    common_name: &str,
    now: Timestamp,
    validity: SignedDuration,
) -> Result<SpKey, KeyGenError> {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| KeyGenError::AwsLc(e.to_string()))?;
    let pkcs8 = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
        .map_err(|e| KeyGenError::AwsLc(e.to_string()))?;
    let key = PKey::private_key_from_pkcs8(pkcs8.as_ref())?;
    let mut name = X509NameBuilder::new()?;
    // X.509 limits the CN to 64 characters.
    let cn: String = common_name.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn)?;
    name.append_entry_by_text("O", "sso-operator")?;
    let name = name.build();
    let not_before = now - SignedDuration::from_mins(5);
    let not_after = now + validity;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (start, end) = (
        Asn1Time::from_unix(not_before.as_second())?,
        Asn1Time::from_unix(not_after.as_second())?,
    );
    b.set_not_before(&start)?;
    b.set_not_after(&end)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    b.sign(&key, MessageDigest::sha256())?;
    let cert = b.build();
    let pair = KeyPair {
        certificate_pem: String::from_utf8_lossy(&cert.to_pem()?).into_owned(),
        private_key_pem: String::from_utf8_lossy(&key.private_key_to_pem_pkcs8()?).into_owned(),
    };
    // Certificates hold whole seconds; keep the times exactly as a parser will read them back.
    let whole = |t: Timestamp| Timestamp::from_second(t.as_second()).unwrap_or(t);
    Ok(SpKey {
        not_before: whole(not_before),
        not_after: whole(not_after),
        pair,
    })
}

/// Reads one key pair from PEM, checking that the key belongs to the certificate.
fn load(cert_pem: &[u8], key_pem: &[u8]) -> Option<SpKey> {
    let cert = X509::from_pem(cert_pem).ok()?;
    let key = PKey::private_key_from_pem(key_pem).ok()?;
    if !cert.public_key().ok()?.public_eq(&key) {
        return None;
    }
    let facts = super::certs::facts(&cert).ok()?;
    Some(SpKey {
        pair: KeyPair {
            certificate_pem: String::from_utf8(cert_pem.to_vec()).ok()?,
            private_key_pem: String::from_utf8(key_pem.to_vec()).ok()?,
        },
        not_before: facts.not_before,
        not_after: facts.not_after,
    })
}

fn load_slot(data: &BTreeMap<String, ByteString>, cert_key: &str, key_key: &str) -> Option<SpKey> {
    load(&data.get(cert_key)?.0, &data.get(key_key)?.0)
}

/// Reads a key set from a Secret's data; `None` when the current pair is missing or broken.
pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Option<SpKeySet> {
    Some(SpKeySet {
        current: load_slot(data, "tls.crt", "tls.key")?,
        next: load_slot(data, "next.crt", "next.key"),
        previous: load_slot(data, "previous.crt", "previous.key"),
    })
}

/// The Secret data for a key set.
pub fn to_secret_data(set: &SpKeySet) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::new();
    let mut put = |c: &str, k: &str, key: &SpKey| {
        data.insert(
            c.to_owned(),
            ByteString(key.pair.certificate_pem.clone().into_bytes()),
        );
        data.insert(
            k.to_owned(),
            ByteString(key.pair.private_key_pem.clone().into_bytes()),
        );
    };
    put("tls.crt", "tls.key", &set.current);
    if let Some(next) = &set.next {
        put("next.crt", "next.key", next);
    }
    if let Some(previous) = &set.previous {
        put("previous.crt", "previous.key", previous);
    }
    data
}

/// The result of [`advance`].
#[derive(Debug)]
pub struct Advanced {
    /// The key set to store and serve.
    pub set: SpKeySet,
    /// What changed, for events; empty when nothing did.
    pub changes: Vec<&'static str>,
    /// When `advance` must run again.
    pub next_event: Timestamp,
}

/// Moves the key set forward in time: generates a missing current pair, publishes the next
/// pair `renew_before` ahead of expiry, switches to it once it has been published for half of
/// that time, and forgets the previous pair when it expires.
pub fn advance(
    existing: Option<SpKeySet>,
    now: Timestamp,
    policy: RotationPolicy,
    common_name: &str,
) -> Result<Advanced, KeyGenError> {
    let mut changes = Vec::new();
    let mut set = match existing {
        Some(set) => set,
        None => {
            changes.push("generated the service-provider key pair");
            SpKeySet {
                current: generate(common_name, now, policy.validity)?,
                next: None,
                previous: None,
            }
        }
    };
    let half = policy.renew_before / 2;
    if set.previous.as_ref().is_some_and(|p| p.not_after <= now) {
        set.previous = None;
        changes.push("removed the expired previous service-provider certificate");
    }
    if let Some(next) = &set.next {
        let published_long_enough = now >= next.not_before + half;
        let due = now >= set.current.not_after - half;
        if (due && published_long_enough) || set.current.not_after <= now {
            let next = set.next.take().expect("checked above");
            set.previous = Some(std::mem::replace(&mut set.current, next));
            changes.push("switched to the next service-provider certificate");
        }
    }
    if set.next.is_none() && now >= set.current.not_after - policy.renew_before {
        set.next = Some(generate(common_name, now, policy.validity)?);
        changes.push("published the next service-provider certificate in the SP metadata");
    }
    let mut next_event = set.current.not_after - policy.renew_before;
    if let Some(next) = &set.next {
        next_event = (set.current.not_after - half).max(next.not_before + half);
    }
    if let Some(previous) = &set.previous {
        next_event = next_event.min(previous.not_after);
    }
    Ok(Advanced {
        set,
        changes,
        next_event: next_event.max(now + SignedDuration::from_secs(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            validity: SignedDuration::from_hours(100),
            renew_before: SignedDuration::from_hours(20),
        }
    }

    #[test]
    fn rotation_publishes_then_switches_then_forgets() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let a = advance(None, t0, policy(), "sp").unwrap();
        assert_eq!(a.changes, ["generated the service-provider key pair"]);
        assert!(a.set.next.is_none());
        assert_eq!(
            a.next_event,
            a.set.current.not_after - SignedDuration::from_hours(20)
        );
        let first = a.set.current.clone();

        // Nothing happens before the renewal window.
        let b = advance(
            Some(a.set.clone()),
            t0 + SignedDuration::from_hours(50),
            policy(),
            "sp",
        )
        .unwrap();
        assert!(b.changes.is_empty());

        // 20h before expiry the next certificate is published, but not used.
        let t1 = first.not_after - SignedDuration::from_hours(19);
        let c = advance(Some(b.set), t1, policy(), "sp").unwrap();
        assert_eq!(
            c.changes,
            ["published the next service-provider certificate in the SP metadata"]
        );
        assert_eq!(c.set.current, first);
        let next = c.set.next.clone().unwrap();

        // 10h before expiry (and 10h after publication) it becomes current.
        let t2 = t1 + SignedDuration::from_hours(10);
        let d = advance(Some(c.set), t2, policy(), "sp").unwrap();
        assert_eq!(
            d.changes,
            ["switched to the next service-provider certificate"]
        );
        assert_eq!(d.set.current, next);
        assert_eq!(d.set.previous.as_ref(), Some(&first));

        // The previous pair is dropped once expired.
        let e = advance(
            Some(d.set),
            first.not_after + SignedDuration::from_secs(1),
            policy(),
            "sp",
        )
        .unwrap();
        assert_eq!(
            e.changes,
            ["removed the expired previous service-provider certificate"]
        );
        assert!(e.set.previous.is_none());
    }

    #[test]
    fn secret_round_trip_and_mismatched_keys_are_refused() {
        let now = Timestamp::now();
        let a = generate("sp", now, SignedDuration::from_hours(1)).unwrap();
        let b = generate("sp", now, SignedDuration::from_hours(1)).unwrap();
        let set = SpKeySet {
            current: a.clone(),
            next: Some(b.clone()),
            previous: None,
        };
        let data = to_secret_data(&set);
        let back = from_secret_data(&data).unwrap();
        assert_eq!(back.current.pair, a.pair);
        assert_eq!(back.next.unwrap().pair, b.pair);
        assert_eq!(back.current.not_after, a.not_after);

        let mut mixed = data.clone();
        mixed.insert(
            "tls.key".into(),
            ByteString(b.pair.private_key_pem.into_bytes()),
        );
        assert!(
            from_secret_data(&mixed).is_none(),
            "a key that does not match the certificate must be refused"
        );
    }
}
