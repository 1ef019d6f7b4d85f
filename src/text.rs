//! Text that came from outside (SAML messages, SCIM bodies, certificates, request headers)
//! made fit to show in status, events, logs and pages: `kubectl describe` prints status as
//! it is, so a bidi override or a zero-width character in a quoted value would make the
//! message read differently from what it says.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` is shown as it is: not a control character (`Cc`), a format character (`Cf`:
/// bidi overrides and isolates, zero-width joiners and spaces, the byte-order mark) or a line
/// or paragraph separator (`Zl`, `Zp`).
pub fn is_shown(c: char) -> bool {
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// `value` without the characters [`is_shown`] refuses, cut to at most `max` characters.
pub fn shown(value: &str, max: usize) -> String {
    value.chars().filter(|c| is_shown(*c)).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_format_and_separator_characters_are_dropped_and_text_is_cut() {
        let bidi =
            "ad\u{202E}moc.elpmaxe\u{202C}a\u{200B}\u{2066}x\u{2069}\u{FEFF}\r\n\u{2028}\u{0}";
        assert_eq!(shown(bidi, 100), "admoc.elpmaxeax");
        assert_eq!(shown("Zoë Ñandú 東京", 100), "Zoë Ñandú 東京");
        assert_eq!(shown("abcdef", 3), "abc");
    }
}
