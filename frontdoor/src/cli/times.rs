//! Times in printed results: the node sends Unix seconds (`expires_at`,
//! `activates_at`, `auth_time`, ...); a person reads RFC 3339. Each such
//! number gets a `KEY_rfc3339` string beside it; the number stays, scripts
//! read it.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Adds `KEY_rfc3339` beside every `KEY` ending in `_at` (and `auth_time`)
/// whose value is a Unix time in seconds, in objects at any depth, and
/// returns the value.
pub fn with_rfc3339(mut value: serde_json::Value) -> serde_json::Value {
    add_rfc3339(&mut value);
    value
}

fn add_rfc3339(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(entries) => {
            let added: Vec<(String, String)> = entries
                .iter()
                .filter(|(key, _)| key.ends_with("_at") || *key == "auth_time")
                .filter_map(|(key, v)| Some((format!("{key}_rfc3339"), rfc3339(v.as_i64()?)?)))
                .collect();
            for entry in entries.values_mut() {
                add_rfc3339(entry);
            }
            for (key, text) in added {
                entries
                    .entry(key)
                    .or_insert(serde_json::Value::String(text));
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(add_rfc3339),
        _ => {}
    }
}

fn rfc3339(unix_seconds: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// Parses `30s`, `500ms`, `2m`, `12h`, `30d` (`sigil demo --duration`,
/// `sigil admin app add --refresh-absolute`).
///
/// # Errors
/// For text that is not such a duration, or zero.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s"))?;
    let duration = match unit {
        "ms" => std::time::Duration::from_millis(value),
        "s" => std::time::Duration::from_secs(value),
        "m" => std::time::Duration::from_secs(value.saturating_mul(60)),
        "h" => std::time::Duration::from_secs(value.saturating_mul(3600)),
        "d" => std::time::Duration::from_secs(value.saturating_mul(86_400)),
        _ => return Err(format!("{text:?}: unit must be ms, s, m, h or d")),
    };
    if duration.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_take_hours_and_days() {
        use std::time::Duration;
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn unix_times_get_rfc3339_beside_them_and_keep_their_number() {
        let printed = with_rfc3339(json!({
            "op": "keys_rotate",
            "result": {"kid": "k1", "activates_at": 1_795_000_000u64},
            "sessions": [{"expires_at": 0, "idle_expires_at": "soon", "auth_time": 60}],
        }));
        assert_eq!(
            printed,
            json!({
                "op": "keys_rotate",
                "result": {
                    "kid": "k1",
                    "activates_at": 1_795_000_000u64,
                    "activates_at_rfc3339": "2026-11-18T11:06:40Z",
                },
                "sessions": [{
                    "expires_at": 0,
                    "expires_at_rfc3339": "1970-01-01T00:00:00Z",
                    "idle_expires_at": "soon",
                    "auth_time": 60,
                    "auth_time_rfc3339": "1970-01-01T00:01:00Z",
                }],
            })
        );
    }
}
