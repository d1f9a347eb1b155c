//! Writing XML that is already in exclusive canonical form (xml-exc-c14n),
//! so the bytes Sigil emits are the bytes a verifier digests: no XML parser
//! on the hot path.
//!
//! What makes output canonical here: no XML declaration, no whitespace
//! between elements, every element written as a start-end pair, namespace
//! declarations only on the elements that first use the prefix (and before
//! other attributes), attributes in the order c14n sorts them (callers pass
//! them sorted; [`Element::open`] checks it in debug builds), and text and
//! attribute values escaped exactly as c14n escapes them.

use std::fmt::Write;

use crate::{Error, Timestamp};

/// Rejects characters XML 1.0 cannot carry at all (NUL and most C0
/// controls, lone surrogates cannot occur in `str`).
fn check_chars(value: &str) -> Result<(), Error> {
    if value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}'))
    {
        return Err(Error::InvalidClaims("a SAML value holds a character XML cannot carry"));
    }
    Ok(())
}

/// Appends `text` escaped as c14n escapes character data.
pub fn push_text(out: &mut String, text: &str) -> Result<(), Error> {
    check_chars(text)?;
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    Ok(())
}

/// Appends `value` escaped as c14n escapes attribute values.
pub fn push_attribute_value(out: &mut String, value: &str) -> Result<(), Error> {
    check_chars(value)?;
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    Ok(())
}

/// An element being written: `open` writes the start tag, `close` the end.
pub struct Element<'a> {
    name: &'a str,
}

impl<'a> Element<'a> {
    /// Writes `<name ns... attrs...>`. `namespaces` are `(prefix, uri)`
    /// sorted by prefix; `attributes` are unqualified and sorted by name.
    pub fn open(
        out: &mut String,
        name: &'a str,
        namespaces: &[(&str, &str)],
        attributes: &[(&str, &str)],
    ) -> Result<Element<'a>, Error> {
        debug_assert!(
            namespaces.windows(2).all(|w| w[0].0 < w[1].0),
            "namespaces out of c14n order"
        );
        debug_assert!(
            attributes.windows(2).all(|w| w[0].0 < w[1].0),
            "attributes out of c14n order"
        );
        out.push('<');
        out.push_str(name);
        for (prefix, uri) in namespaces {
            let _ = write!(out, " xmlns:{prefix}=\"");
            push_attribute_value(out, uri)?;
            out.push('"');
        }
        for (attribute, value) in attributes {
            let _ = write!(out, " {attribute}=\"");
            push_attribute_value(out, value)?;
            out.push('"');
        }
        out.push('>');
        Ok(Element { name })
    }

    /// Writes `</name>`.
    pub fn close(self, out: &mut String) {
        let _ = write!(out, "</{}>", self.name);
    }
}

/// Writes an element holding only text.
pub fn text_element(
    out: &mut String,
    name: &str,
    namespaces: &[(&str, &str)],
    attributes: &[(&str, &str)],
    text: &str,
) -> Result<(), Error> {
    let element = Element::open(out, name, namespaces, attributes)?;
    push_text(out, text)?;
    element.close(out);
    Ok(())
}

/// `xs:dateTime` in UTC with seconds, as SAML wants: `2026-11-22T16:17:28Z`.
pub fn date_time(at: Timestamp) -> Result<String, Error> {
    let seconds =
        i64::try_from(at.secs()).map_err(|_| Error::InvalidClaims("time out of range"))?;
    let moment = time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| Error::InvalidClaims("time out of range"))?;
    moment
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::InvalidClaims("time out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_c14n() {
        let mut out = String::new();
        push_text(&mut out, "<b>\"O'Brien\" & Co</b>\r\n\t").expect("text");
        assert_eq!(out, "&lt;b&gt;\"O'Brien\" &amp; Co&lt;/b&gt;&#xD;\n\t");
        let mut out = String::new();
        push_attribute_value(&mut out, "<b>\"O'Brien\" & Co</b>\r\n\t").expect("attr");
        assert_eq!(
            out,
            "&lt;b>&quot;O'Brien&quot; &amp; Co&lt;/b>&#xD;&#xA;&#x9;"
        );
        assert!(push_text(&mut String::new(), "nul\u{0}").is_err());
        assert!(push_attribute_value(&mut String::new(), "bell\u{7}").is_err());
    }

    #[test]
    fn date_times_are_utc_seconds() {
        assert_eq!(
            date_time(Timestamp::from_secs(0)).expect("epoch"),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            date_time(Timestamp::from_secs(1_795_450_648)).expect("t"),
            "2026-11-23T16:17:28Z"
        );
    }
}
