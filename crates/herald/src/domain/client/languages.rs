//! The languages a client reads, and texts localized for it.

#[allow(unused_imports)]
use super::*;

/// Whether `tag` is a language code as clients send them: `en`, `pt-BR`, `zh-Hant-TW`
/// (letters and digits in parts of 1 to 8, joined by `-`, the first part letters only).
pub fn is_language_tag(tag: &str) -> bool {
    tag.len() <= 35
        && tag.split('-').enumerate().all(|(i, part)| {
            (1..=8).contains(&part.len())
                && if i == 0 {
                    part.bytes().all(|b| b.is_ascii_alphabetic())
                } else {
                    part.bytes().all(|b| b.is_ascii_alphanumeric())
                }
        })
}

/// Most languages of a client's preference list that are looked at.
const MAX_PREFERENCES: usize = 6;

/// The languages a client reads, best first: its `lang` parameter (400 if malformed), then
/// its `Accept-Language` list by weight (malformed entries and `*` are skipped, as browsers'
/// lists are trusted loosely). Lower-cased.
pub fn preferences(lang: Option<&str>, accept_language: Option<&str>) -> DomainResult<Vec<String>> {
    let mut out = Vec::new();
    if let Some(lang) = lang {
        if !is_language_tag(lang) {
            return Err(DomainError::invalid_query("lang must be a language code such as `en` or `pt-BR`"));
        }
        out.push(lang.to_ascii_lowercase());
    }
    if let Some(header) = accept_language {
        let mut weighted: Vec<(u16, String)> = header
            .split(',')
            .filter_map(|entry| {
                let mut parts = entry.split(';');
                let tag = parts.next()?.trim();
                let q = parts.find_map(|p| p.trim().strip_prefix("q=")).map_or(Some(1.0), |q| q.trim().parse().ok())?;
                let q: f32 = q;
                (is_language_tag(tag) && q > 0.0 && q <= 1.0).then(|| ((q * 1000.0) as u16, tag.to_ascii_lowercase()))
            })
            .collect();
        // Stable: equal weights keep the client's order.
        weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
        out.extend(weighted.into_iter().map(|(_, tag)| tag));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|tag| seen.insert(tag.clone()));
    out.truncate(MAX_PREFERENCES);
    Ok(out)
}

/// The text of `messages` (keyed by language code) for `language`: the exact language, else
/// its primary language (`pt-BR` finds `pt`), else a regional form of it (`pt` finds `pt-PT`).
fn for_language<'a>(messages: &'a BTreeMap<String, String>, language: &str) -> Option<&'a str> {
    let primary = language.split('-').next().unwrap_or(language);
    messages
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(language))
        .or_else(|| messages.iter().find(|(k, _)| k.eq_ignore_ascii_case(primary)))
        .or_else(|| {
            messages
                .iter()
                .find(|(k, _)| k.split('-').next().is_some_and(|p| p.eq_ignore_ascii_case(primary)) && k.contains('-'))
        })
        .map(|(_, v)| v.as_str())
}

/// Picks a localized text: the client's languages in order, then the project's default
/// language, then the text given without a language (`untagged`), then any of `messages`.
pub fn localize(
    messages: &BTreeMap<String, String>,
    untagged: Option<&str>,
    preferences: &[String],
    default_language: &str,
) -> Option<String> {
    preferences
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(default_language))
        .find_map(|lang| for_language(messages, lang))
        .or(untagged)
        .or_else(|| messages.values().next().map(String::as_str))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn language_tags() {
        for good in ["en", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in ["", "-", "en-", "e n", "en_US", "123", "toolongpart9", "en-*"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn preferences_follow_weights_then_order() {
        let p = preferences(Some("ko"), Some("fr;q=0.5, de-CH, en;q=0.8, *;q=0.1, bad_tag, it;q=0")).expect("ok");
        assert_eq!(p, ["ko", "de-ch", "en", "fr"]);
        assert!(preferences(Some("not a tag"), None).is_err());
        assert_eq!(preferences(None, None).expect("ok"), Vec::<String>::new());
    }

    #[test]
    fn localization_falls_back_in_order() {
        let m = messages(&[("en", "E"), ("ja", "J"), ("ko", "K"), ("pt-PT", "P")]);
        let prefs = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(localize(&m, None, &prefs(&["ja"]), "ko").as_deref(), Some("J"), "the client's language");
        assert_eq!(localize(&m, None, &prefs(&["ja-jp"]), "ko").as_deref(), Some("J"), "its primary language");
        assert_eq!(localize(&m, None, &prefs(&["pt-br"]), "ko").as_deref(), Some("P"), "a regional form");
        assert_eq!(localize(&m, None, &prefs(&["de", "fr"]), "ko").as_deref(), Some("K"), "the default");
        assert_eq!(localize(&m, Some("U"), &prefs(&["de"]), "zh").as_deref(), Some("U"), "the untagged text");
        assert_eq!(localize(&m, None, &prefs(&["de"]), "zh").as_deref(), Some("E"), "any message");
        assert_eq!(localize(&BTreeMap::new(), None, &prefs(&["de"]), "zh"), None);
    }
}
