//! [`Duration`]: a duration field of the CRDs (`8h`, `15m`, `1h30m`), parsed once.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The form every duration field takes, enforced by the CRD schema: one or more
/// `<digits><unit>` with unit `h`, `m` or `s`.
pub const PATTERN: &str = r"^([0-9]+(h|m|s))+$";
/// The longest duration text the CRD schema accepts.
pub const MAX_LENGTH: u32 = 32;

/// A duration as written in an IdentityProvider or ScimToken, such as `8h`, `15m` or
/// `1h30m`. It reads and writes as that same text, and is parsed once, when it is read.
///
/// A value too large to count in seconds (which the schema's pattern still admits) reads as
/// [`SignedDuration::MAX`], "longer than anything": refusing it would fail the whole watch of
/// its kind, every namespace's objects with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: SignedDuration,
}

/// A duration field whose text is not of the form `90s`, `15m` or `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a duration: write whole numbers of hours, minutes or seconds such as 90s, 15m or 1h30m"
)]
pub struct DurationError(pub String);

impl Duration {
    /// The duration.
    pub fn get(&self) -> SignedDuration {
        self.value
    }

    /// A duration written in the code, such as a field's default.
    ///
    /// # Panics
    /// When `text` is not of the form [`PATTERN`]: a mistake in the code, not in input.
    pub fn of(text: &'static str) -> Self {
        match text.parse() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// The text it was written as.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let well_formed = {
            // `PATTERN` by hand: digits then a unit, one or more times, nothing else.
            let mut digits = 0;
            let mut groups = 0;
            text.chars().all(|c| match c {
                '0'..='9' => {
                    digits += 1;
                    true
                }
                'h' | 'm' | 's' if digits > 0 => {
                    digits = 0;
                    groups += 1;
                    true
                }
                _ => false,
            }) && digits == 0
                && groups > 0
        };
        if !well_formed {
            return Err(DurationError(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            value: parse_duration(text).unwrap_or(SignedDuration::MAX),
        })
    }
}

/// Parses a duration such as `90s`, `15m` or `1h30m` (the format the CRD schema
/// enforces); `None` for any other text, and for a duration too large to count in seconds.
pub fn parse_duration(text: &str) -> Option<jiff::SignedDuration> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (digits.is_empty() && !text.is_empty()).then(|| jiff::SignedDuration::from_secs(total))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "maxLength": MAX_LENGTH,
        })
    }
}

/// (De)serializes a [`SignedDuration`] as duration text (`1h30m`), the form of the CRD fields:
/// for `#[serde(with = "crate::api::duration::text")]` on documents that releases reading CRD
/// text also read. A negative duration is written as `0s`.
pub mod text {
    use super::*;

    /// Writes `d` as hours, minutes and seconds, leaving out zero parts: `1h30m`, `90s`, `0s`.
    pub fn format(d: SignedDuration) -> String {
        let secs = d.as_secs().max(0);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let mut out = String::new();
        for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
        if out.is_empty() {
            out.push_str("0s");
        }
        out
    }

    /// Serializes `d` as [`format`] writes it.
    pub fn serialize<S: Serializer>(d: &SignedDuration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*d))
    }

    /// Deserializes duration text as a [`Duration`] reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SignedDuration, D::Error> {
        Duration::deserialize(deserializer).map(|d| d.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_as_the_text_they_were_written_as() {
        let d: Duration = serde_json::from_value(serde_json::json!("1h30m")).unwrap();
        assert_eq!(d.get(), SignedDuration::from_mins(90));
        assert_eq!(serde_json::to_value(&d).unwrap(), "1h30m");
        let d: Duration = "90m".parse().unwrap();
        assert_eq!(d.to_string(), "90m");
        assert_eq!(d.get(), SignedDuration::from_mins(90));
    }

    #[test]
    fn only_the_schema_pattern_reads_and_the_error_shows_the_form() {
        for good in ["90s", "15m", "1h30m", "720h", "0s", "1h2m3s"] {
            assert!(good.parse::<Duration>().is_ok(), "{good}");
        }
        for bad in [
            "", "5", "1d", "h", "1h-", "1.5h", " 1h", "1h ", "-1h", "PT1H",
        ] {
            let e = bad.parse::<Duration>().unwrap_err();
            assert!(e.to_string().contains("such as 90s, 15m or 1h30m"), "{e}");
            assert!(serde_json::from_value::<Duration>(serde_json::json!(bad)).is_err());
        }
    }

    #[test]
    fn durations_are_written_as_text_that_reads_back_the_same() {
        for (secs, written) in [
            (0, "0s"),
            (90, "1m30s"),
            (5400, "1h30m"),
            (28800, "8h"),
            (3661, "1h1m1s"),
        ] {
            let d = SignedDuration::from_secs(secs);
            assert_eq!(text::format(d), written);
            assert_eq!(written.parse::<Duration>().unwrap().get(), d);
        }
    }

    #[test]
    fn a_duration_too_large_to_count_is_longer_than_anything() {
        let d: Duration = "99999999999999999999h".parse().unwrap();
        assert_eq!(d.get(), SignedDuration::MAX);
    }

    #[test]
    fn the_schema_carries_the_pattern() {
        let schema = schemars::schema_for!(Duration);
        assert_eq!(
            schema.get("pattern").and_then(|p| p.as_str()),
            Some(PATTERN)
        );
        assert_eq!(schema.get("maxLength").and_then(|p| p.as_u64()), Some(32));
    }
}
