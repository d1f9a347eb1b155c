//! List responses and paging (RFC 7644 §3.4.2, §3.4.2.4).

use crate::ScimError;
use serde_json::{json, Value};

/// The ListResponse message URN.
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A ListResponse holding one page: `totalResults` (all matches),
/// `startIndex` (1-based index of the first resource here),
/// `itemsPerPage` (how many are here) and `Resources`.
pub fn list_response(
    resources: Vec<Value>,
    total_results: u64,
    start_index: u64,
    items_per_page: usize,
) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total_results,
        "startIndex": start_index,
        "itemsPerPage": items_per_page,
        "Resources": resources,
    })
}

/// Reads the `startIndex` and `count` query parameters: `startIndex`
/// defaults to 1 and a value below 1 means 1; `count` defaults to `max`, a
/// negative value means 0 and it is capped at `max` (§3.4.2.4). Returns
/// `(start_index, count)`. Fails with [`ScimError::InvalidValue`] when
/// either is not an integer.
pub fn paging(
    start_index: Option<&str>,
    count: Option<&str>,
    max: usize,
) -> Result<(u64, usize), ScimError> {
    let start = match start_index {
        None => 1,
        Some(text) => match integer(text, "startIndex")? {
            Integer::Negative => 1,
            Integer::Positive(n) => n.max(1),
        },
    };
    let count = match count {
        None => max,
        Some(text) => match integer(text, "count")? {
            Integer::Negative => 0,
            Integer::Positive(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max),
        },
    };
    Ok((start, count))
}

enum Integer {
    Negative,
    /// Saturated at `u64::MAX`.
    Positive(u64),
}

fn integer(text: &str, name: &str) -> Result<Integer, ScimError> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScimError::InvalidValue(format!(
            "{name} must be an integer"
        )));
    }
    let all_zero = digits.bytes().all(|b| b == b'0');
    if negative && !all_zero {
        return Ok(Integer::Negative);
    }
    Ok(Integer::Positive(digits.parse().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_response_shape() {
        assert_eq!(
            list_response(vec![json!({"id": "a"})], 10, 3, 1),
            json!({
                "schemas": [LIST_URN], "totalResults": 10, "startIndex": 3,
                "itemsPerPage": 1, "Resources": [{"id": "a"}]
            })
        );
    }

    #[test]
    fn paging_defaults_clamps_and_caps() {
        assert_eq!(paging(None, None, 100), Ok((1, 100)));
        assert_eq!(paging(Some("0"), Some("-5"), 100), Ok((1, 0)));
        assert_eq!(paging(Some("-3"), Some("0"), 100), Ok((1, 0)));
        assert_eq!(paging(Some("7"), Some("500"), 100), Ok((7, 100)));
        assert_eq!(paging(Some(" 2 "), Some("+10"), 100), Ok((2, 10)));
        assert_eq!(
            paging(
                Some("99999999999999999999999"),
                Some("99999999999999999999"),
                50
            ),
            Ok((u64::MAX, 50))
        );
        assert_eq!(paging(Some("-0"), Some("-0"), 5), Ok((1, 0)));
    }

    #[test]
    fn paging_refuses_non_integers() {
        for bad in ["", "1.5", "abc", "1e3", "--1", "0x10", "+"] {
            assert!(
                matches!(paging(Some(bad), None, 10), Err(ScimError::InvalidValue(_))),
                "{bad}"
            );
            assert!(
                matches!(paging(None, Some(bad), 10), Err(ScimError::InvalidValue(_))),
                "{bad}"
            );
        }
    }
}
