//! Input checks shared by the domain modules. Each collects [`FieldError`]s so a client
//! learns every problem of a request at once.

use serde::{Deserialize, Deserializer};

use super::{DomainError, DomainResult, FieldError};

#[derive(Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

/// Characters allowed in identifiers chosen by clients (ids, usernames, world ids, tags).
pub const IDENT_CHARS: &str = "letters, digits, `_`, `-`, `.`";

/// Characters allowed in usernames. A studio's players have names in their own script
/// (`용사123`, `dörte`), so letters and digits of any script count; controls, spaces, format
/// characters (zero-width joiners, direction marks) and symbols do not, so two names that look
/// the same are the same text. Usernames are stored NFC-normalized ([`normalize`]).
pub const USERNAME_CHARS: &str =
    "letters and digits of any script (with their combining marks, not first), `_`, `-`, `.`";

/// The NFC form of `s`: the one a username is checked, stored and compared in, so a name typed
/// with a decomposed `ö` (`o` + U+0308) is the same name as one with the precomposed `ö`.
pub fn normalize(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfc().collect()
}

fn is_username(s: &str) -> bool {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    let mut chars = s.chars();
    let first_is_mark = chars.clone().next().is_some_and(|c| c.general_category_group() == GeneralCategoryGroup::Mark);
    !first_is_mark
        && chars.all(|c| {
            matches!(c, '_' | '-' | '.')
                || matches!(
                    c.general_category_group(),
                    GeneralCategoryGroup::Letter | GeneralCategoryGroup::Mark | GeneralCategoryGroup::Number
                )
        })
}

fn is_ident(s: &str, extra: &[char]) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') || extra.contains(&c))
}

impl Checks {
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// A human text of `min..=max` characters without control characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if len < min || len > max {
            if min > 0 && value.trim().is_empty() {
                self.fail(field, "must not be empty");
            } else {
                self.fail(field, format!("must be {min} to {max} characters long"));
            }
        } else if min > 0 && value.trim().is_empty() {
            self.fail(field, "must not be blank");
        } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            self.fail(field, "must not contain control characters");
        }
    }

    pub fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.text(field, v, 0, max);
        }
    }

    /// An identifier of `1..=max` characters from [`IDENT_CHARS`] (plus `extra`).
    pub fn ident(&mut self, field: &str, value: &str, max: usize, extra: &[char]) {
        if value.is_empty() || value.len() > max {
            self.fail(field, format!("must be 1 to {max} characters long"));
        } else if !is_ident(value, extra) {
            let more: String = extra.iter().map(|c| format!(", `{c}`")).collect();
            self.fail(field, format!("may contain only {IDENT_CHARS}{more}"));
        }
    }

    /// A username of `1..=max` characters from [`USERNAME_CHARS`], already NFC-normalized.
    pub fn username(&mut self, field: &str, value: &str, max: usize) {
        let len = value.chars().count();
        if len == 0 || len > max {
            self.fail(field, format!("must be 1 to {max} characters long"));
        } else if !is_username(value) {
            self.fail(field, format!("may contain only {USERNAME_CHARS}"));
        }
    }

    pub fn one_of(&mut self, field: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.fail(field, format!("must be one of: {}", allowed.join(", ")));
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        if !is_email(value) {
            self.fail(field, "must be an email address like name@example.com");
        }
    }

    pub fn url(&mut self, field: &str, value: &str) {
        match url::Url::parse(value) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() && value.len() <= 2048 => {}
            _ => self.fail(field, "must be an http(s) URL of at most 2048 characters"),
        }
    }

    pub fn finish(self) -> DomainResult<()> {
        if self.errors.is_empty() { Ok(()) } else { Err(DomainError::validation(self.errors)) }
    }
}

/// A practical email check: one `@`, a non-empty local part, a dotted domain of letters,
/// digits and hyphens, no spaces; at most 254 characters.
pub fn is_email(s: &str) -> bool {
    fn domain_label(label: &str) -> bool {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '@' && c != ',')
        && domain.contains('.')
        && domain.split('.').all(domain_label)
}

/// Whether a JSON value holds a NUL character in any string or key. PostgreSQL's JSONB cannot
/// store one, so both backends refuse it the same way.
pub fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// Lower-case slug from a name: letters and digits kept, runs of anything else become `-`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').chars().take(64).collect()
}

/// For PATCH-style bodies: tells "absent" (`None`) from "explicitly null" (`Some(None)`).
/// Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "player@example.com", "first.last+tag@sub.example.org"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in ["", "a", "a@", "@b.co", "a@b", "a b@c.com", "a@b..com", "a@-b.com", "a@b.com@c.com"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn usernames() {
        for ok in ["player123", "용사123", "dörte", "Ørjan_2", "игрок.1", "プレイヤー", "น้ำ", "देव", "a-b.c_d"]
        {
            assert!(is_username(&normalize(ok)), "{ok}");
        }
        for bad in [
            "a b",        // space
            "a\u{200b}b", // zero-width space
            "a\u{200d}b", // zero-width joiner
            "a\u{202e}b", // right-to-left override
            "a\u{0007}",  // control
            "\u{0301}a",  // a combining mark first
            "a@b",
            "😀",
            "a/b",
        ] {
            assert!(!is_username(&normalize(bad)), "{bad:?}");
        }
        // Decomposed and precomposed forms are one name.
        assert_eq!(normalize("do\u{0308}rte"), "dörte");
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Game: Origins!"), "my-game-origins");
        assert_eq!(slugify("  --  "), "");
    }
}
