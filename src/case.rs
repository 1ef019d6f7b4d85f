//! How names that are not case-exact (`userName`, email addresses, group `displayName`) are
//! compared: by folding ASCII letters only.
//!
//! Unicode lower-casing maps compatibility characters onto ASCII letters (KELVIN SIGN U+212A
//! becomes `k`, ANGSTROM SIGN U+212B becomes `å`), so `\u{212A}ate` and `kate` would be one
//! user. RFC 7643 says only that such attributes are not case-exact; the names IdPs push
//! (Okta logins, Entra user principal names, email addresses) are ASCII in practice. Folding
//! A–Z only keeps every distinct string of non-ASCII letters distinct, and is the same fold
//! SQLite's built-in `lower()` applies.

/// The form of `name` that case-insensitive matching compares: A–Z mapped to a–z, every
/// other character kept as it is.
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ascii_letters_fold() {
        assert_eq!(fold("Ada.Lovelace@Example.COM"), "ada.lovelace@example.com");
        // KELVIN SIGN and ANGSTROM SIGN stay themselves: they are other names than k and å.
        assert_eq!(fold("\u{212A}ate"), "\u{212A}ate");
        assert_ne!(fold("\u{212A}ate"), fold("Kate"));
        assert_ne!(fold("\u{212B}sa"), fold("\u{e5}sa"));
        // Non-ASCII letters keep their case.
        assert_eq!(fold("JOSÉ"), "josÉ");
        assert_ne!(fold("JOSÉ"), fold("josé"));
    }

    #[test]
    fn names_equal_after_folding_were_equal_under_unicode_lowercasing_too() {
        // The stored keys move from Unicode lower-casing to this fold: no two distinct keys may
        // become one, or existing users would collide.
        let names = [
            "kate",
            "Kate",
            "\u{212A}ate",
            "KATE",
            "ΣΑΣ",
            "σας",
            "ΌΣΟΣ",
            "İstanbul",
            "istanbul",
            "Straße",
            "STRASSE",
            "\u{212B}sa",
            "Åsa",
            "åsa",
            "ǅemal",
            "ǆemal",
        ];
        for a in names {
            for b in names {
                if fold(a) == fold(b) {
                    assert_eq!(a.to_lowercase(), b.to_lowercase(), "{a} and {b}");
                }
            }
        }
    }
}
