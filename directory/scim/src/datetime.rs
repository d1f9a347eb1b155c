//! RFC 3339 `dateTime` values (RFC 7643 §2.3.5) to and from Unix
//! milliseconds, so that `meta.lastModified gt "..."` compares instants
//! and not strings. Pure arithmetic, no clock.

/// Parses an RFC 3339 date-time (`2011-05-13T04:42:34Z`, optional
/// fraction, `Z` or `±hh:mm` offset) into milliseconds since the Unix
/// epoch. Returns `None` for anything else, including out-of-range fields.
pub fn parse_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let mut scale = 100;
        for b in fraction.bytes().take(len.min(3)) {
            millis += i64::from(b - b'0') * scale;
            scale /= 10;
        }
        rest = &fraction[len..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let field = |range: std::ops::Range<usize>| -> Option<i64> {
                let part = rest.get(range)?;
                if !part.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                part.parse().ok()
            };
            let (hours, minutes) = (field(1..3)?, field(4..6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Formats milliseconds since the Unix epoch as RFC 3339 in UTC with
/// millisecond precision (`2011-05-13T04:42:34.000Z`), the form `meta`
/// timestamps take in responses.
pub fn format_millis(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        in_day / 3600,
        (in_day % 3600) / 60,
        in_day % 60
    )
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_millis("2011-05-13T04:42:34Z"),
            Some(1_305_261_754_000)
        );
        assert_eq!(
            parse_millis("2011-05-13T04:42:34.5Z"),
            Some(1_305_261_754_500)
        );
        assert_eq!(
            parse_millis("2011-05-13T06:42:34.123456+02:00"),
            Some(1_305_261_754_123)
        );
        assert_eq!(parse_millis("1969-12-31T23:59:59Z"), Some(-1000));
    }

    #[test]
    fn refuses_malformed_dates() {
        for bad in [
            "",
            "2011-05-13",
            "2011-13-13T04:42:34Z",
            "2011-02-30T04:42:34Z",
            "2011-05-13T24:00:00Z",
            "2011-05-13T04:42:34",
            "2011-05-13T04:42:34.Z",
            "2011-05-13T04:42:34+0200",
            "2011-05-13T04:42:34+2x:00",
            "20x1-05-13T04:42:34Z",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0, 1_305_261_754_123, -1000, 951_782_400_000] {
            assert_eq!(parse_millis(&format_millis(ms)), Some(ms));
        }
        assert_eq!(format_millis(1_305_261_754_000), "2011-05-13T04:42:34.000Z");
    }
}
