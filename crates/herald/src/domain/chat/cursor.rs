//! History cursors: a position in a channel's history that a client can store.

#[allow(unused_imports)]
use super::*;

/// A history position a client can store: `<microseconds since 1970>.<message id>`.
pub fn encode_position(m: &Message) -> String {
    format!("{}.{}", m.created_at.timestamp_micros(), m.id)
}

pub fn decode_position(field: &str, s: &str) -> ChatResult<(DateTime<Utc>, i64)> {
    let bad = || {
        ChatError::InvalidQuery(
            field.to_owned(),
            "is not a cursor Herald gave out (see `before`/`after` in a history page)".into(),
        )
    };
    let (micros, id) = s.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    // 1970 to 9999: what both databases store.
    if !(0..=253_402_300_799_000_000).contains(&micros) {
        return Err(bad());
    }
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}
