//! The journal's binary record (format 2) and the canonical bytes its
//! chain hash covers.
//!
//! Canonical bytes, version 2 (what `hash = SHA-256(prev_hash ‖ canonical)`
//! covers, `prev_hash` as its 32 raw bytes):
//!
//! ```text
//! 0x02 | tenant i64 | node str | seq i64 | at_ms i64 | kind str | detail value
//! str   = u32 length | UTF-8 bytes            (integers big-endian)
//! value = 'n' | 't' | 'f' | 'i' i64 | 'u' u64 | 'd' f64 bits
//!       | 's' str | 'l' u32 count value* | 'm' u32 count (str value)*
//! ```
//!
//! A map's entries are sorted by key bytes (jsonb reorders keys, so
//! `verify` recomputes the same bytes from a row of `audit_events`).
//!
//! A journal record: `MAGIC | u32 body length | u32 CRC-32 (of batch and
//! body) | u64 batch | body`, where `batch` is the byte offset at which
//! the record's group commit began and `body = canonical | prev_hash |
//! hash` (raw). `MAGIC` starts with 0xFF, a byte JSON text never holds,
//! so a journal of JSON lines (format 1, before issue 16) continues with
//! binary records in the same file.

use std::borrow::Cow;

use crate::Error;

/// `audit_events.format` of a record hashed over its JSON text (format 1).
pub const FORMAT_JSON: i16 = 1;
/// `audit_events.format` of a record hashed over canonical bytes (format 2).
pub const FORMAT_BINARY: i16 = 2;

const CANONICAL_V2: u8 = 2;
/// What starts every binary record.
pub(crate) const MAGIC: [u8; 4] = [0xFF, b'S', b'A', 0xFE];
/// Magic, body length, CRC, batch.
pub(crate) const HEADER: usize = 4 + 4 + 4 + 8;
/// No body is longer (a longer length is damage).
pub(crate) const MAX_BODY: usize = 16 << 20;
/// Nesting deeper than this in a detail is refused when decoding.
const MAX_DEPTH: usize = 32;

/// A record's detail in canonical bytes: a map of strings, integers,
/// nulls, lists and maps. Built by [`Detail::build`] on the hot path, or
/// from JSON (`From<serde_json::Value>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail(Vec<u8>);

impl Detail {
    /// A builder. Keys given in ascending byte order cost nothing more;
    /// others are sorted at [`DetailBuilder::finish`].
    pub fn build() -> DetailBuilder {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&[b'm', 0, 0, 0, 0]);
        DetailBuilder {
            out,
            count: 0,
            last_key: (0, 0),
            sorted: true,
        }
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The detail as JSON (what `audit_events.detail` holds).
    ///
    /// # Errors
    /// [`Error::Journal`] when the bytes are not a canonical map.
    pub fn to_json(&self) -> Result<serde_json::Value, Error> {
        let mut rest = self.0.as_slice();
        let value = decode_value(&mut rest, 0)
            .filter(|v| v.is_object() && rest.is_empty())
            .ok_or_else(|| Error::Journal("malformed detail".into()))?;
        Ok(value)
    }
}

impl From<&serde_json::Value> for Detail {
    /// Anything but an object is taken as an empty map under `value`.
    fn from(value: &serde_json::Value) -> Detail {
        let mut out = Vec::with_capacity(64);
        if value.is_object() {
            encode_value(&mut out, value);
        } else {
            encode_value(&mut out, &serde_json::json!({ "value": value }));
        }
        Detail(out)
    }
}

impl From<serde_json::Value> for Detail {
    fn from(value: serde_json::Value) -> Detail {
        Detail::from(&value)
    }
}

/// Builds a [`Detail`] field by field, without JSON.
#[derive(Debug)]
pub struct DetailBuilder {
    out: Vec<u8>,
    count: u32,
    /// Where the last key's bytes are in `out`.
    last_key: (usize, usize),
    sorted: bool,
}

impl DetailBuilder {
    fn key(&mut self, key: &str) {
        let start = self.out.len() + 4;
        if self.count > 0 {
            let last = &self.out[self.last_key.0..self.last_key.1];
            if last >= key.as_bytes() {
                self.sorted = false;
            }
        }
        put_str(&mut self.out, key);
        self.last_key = (start, start + key.len());
        self.count += 1;
    }

    /// A string field.
    #[must_use]
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        self.out.push(b's');
        put_str(&mut self.out, value);
        self
    }

    /// An integer field.
    #[must_use]
    pub fn int(mut self, key: &str, value: i64) -> Self {
        self.key(key);
        self.out.push(b'i');
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A string field, or null.
    #[must_use]
    pub fn opt_str(mut self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.str(key, value),
            None => {
                self.key(key);
                self.out.push(b'n');
                self
            }
        }
    }

    /// A list of strings.
    #[must_use]
    pub fn strs(mut self, key: &str, values: &[String]) -> Self {
        self.key(key);
        self.out.push(b'l');
        put_len(&mut self.out, values.len());
        for value in values {
            self.out.push(b's');
            put_str(&mut self.out, value);
        }
        self
    }

    /// A map of strings (sorted here).
    #[must_use]
    pub fn map(mut self, key: &str, entries: &[(&str, String)]) -> Self {
        self.key(key);
        let mut sorted: Vec<&(&str, String)> = entries.iter().collect();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        sorted.dedup_by(|a, b| a.0 == b.0);
        self.out.push(b'm');
        put_len(&mut self.out, sorted.len());
        for (k, v) in sorted {
            put_str(&mut self.out, k);
            self.out.push(b's');
            put_str(&mut self.out, v);
        }
        self
    }

    /// The detail. Keys out of order (or repeated) are sorted (the last
    /// of a repeated key kept, as JSON keeps it) on a slow path.
    pub fn finish(mut self) -> Detail {
        self.out[1..5].copy_from_slice(&self.count.to_be_bytes());
        if self.sorted {
            return Detail(self.out);
        }
        let mut rest = self.out.as_slice();
        match decode_value(&mut rest, 0) {
            Some(value) => Detail::from(&value),
            None => Detail(self.out),
        }
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn encode_value(out: &mut Vec<u8>, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(true) => out.push(b't'),
        Value::Bool(false) => out.push(b'f'),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push(b'i');
                out.extend_from_slice(&i.to_be_bytes());
            } else if let Some(u) = n.as_u64() {
                out.push(b'u');
                out.extend_from_slice(&u.to_be_bytes());
            } else {
                out.push(b'd');
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_bits().to_be_bytes());
            }
        }
        Value::String(s) => {
            out.push(b's');
            put_str(out, s);
        }
        Value::Array(items) => {
            out.push(b'l');
            put_len(out, items.len());
            for item in items {
                encode_value(out, item);
            }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'm');
            put_len(out, entries.len());
            for (k, v) in entries {
                put_str(out, k);
                encode_value(out, v);
            }
        }
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    take(rest, 4).and_then(|b| b.try_into().ok().map(u32::from_be_bytes))
}

fn take_i64(rest: &mut &[u8]) -> Option<i64> {
    take(rest, 8).and_then(|b| b.try_into().ok().map(i64::from_be_bytes))
}

fn take_str<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    let len = take_u32(rest)? as usize;
    std::str::from_utf8(take(rest, len)?).ok()
}

fn decode_value(rest: &mut &[u8], depth: usize) -> Option<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        return None;
    }
    let tag = *take(rest, 1)?.first()?;
    Some(match tag {
        b'n' => Value::Null,
        b't' => Value::Bool(true),
        b'f' => Value::Bool(false),
        b'i' => Value::from(take_i64(rest)?),
        b'u' => Value::from(take_i64(rest)? as u64),
        b'd' => Value::from(f64::from_bits(take_i64(rest)? as u64)),
        b's' => Value::from(take_str(rest)?),
        b'l' => {
            let count = take_u32(rest)? as usize;
            let mut items = Vec::with_capacity(count.min(rest.len()));
            for _ in 0..count {
                items.push(decode_value(rest, depth + 1)?);
            }
            Value::Array(items)
        }
        b'm' => {
            let count = take_u32(rest)? as usize;
            let mut map = serde_json::Map::new();
            for _ in 0..count {
                let key = take_str(rest)?.to_owned();
                map.insert(key, decode_value(rest, depth + 1)?);
            }
            Value::Object(map)
        }
        _ => return None,
    })
}

/// Writes the canonical bytes of a record before its detail.
pub(crate) fn put_canonical_head(
    out: &mut Vec<u8>,
    tenant_id: i64,
    node: &str,
    seq: i64,
    at_ms: i64,
    kind: &str,
) {
    out.push(CANONICAL_V2);
    out.extend_from_slice(&tenant_id.to_be_bytes());
    put_str(out, node);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_ms.to_be_bytes());
    put_str(out, kind);
}

/// `SHA-256(prev ‖ canonical)`.
pub(crate) fn chain_hash(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(prev);
    context.update(canonical);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// Appends one binary record (header and body) to `out`: the record of
/// `tenant_id` at `seq` after `prev`, in the batch that began at byte
/// `batch`. Returns its hash.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_record(
    out: &mut Vec<u8>,
    batch: u64,
    tenant_id: i64,
    node: &str,
    seq: i64,
    at_ms: i64,
    kind: &str,
    detail: &Detail,
    prev: &[u8; 32],
) -> [u8; 32] {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&batch.to_be_bytes());
    let body = out.len();
    put_canonical_head(out, tenant_id, node, seq, at_ms, kind);
    out.extend_from_slice(&detail.0);
    let hash = chain_hash(prev, &out[body..]);
    out.extend_from_slice(prev);
    out.extend_from_slice(&hash);
    let len = u32::try_from(out.len() - body).unwrap_or(u32::MAX);
    out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
    let crc = crc32fast::hash(&out[start + 12..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_be_bytes());
    hash
}

/// A binary record read back: its entry and its batch's first byte.
pub(crate) struct Parsed {
    pub entry: super::AuditEntry,
    pub batch: u64,
}

/// The length of the record whose header is `header` (`None` when the
/// header is not a record's).
pub(crate) fn body_len(header: &[u8]) -> Option<usize> {
    if header.len() < HEADER || header[..4] != MAGIC {
        return None;
    }
    let len = u32::from_be_bytes(header[4..8].try_into().ok()?) as usize;
    // At least a version byte and the two hashes.
    (65..=MAX_BODY).contains(&len).then_some(len)
}

/// Checks a whole record (`header` and `body`, of [`body_len`]) and reads
/// it. `None`: damaged (CRC, layout or hash).
pub(crate) fn parse(header: &[u8], body: &[u8]) -> Option<Parsed> {
    let crc = u32::from_be_bytes(header[8..12].try_into().ok()?);
    let mut check = crc32fast::Hasher::new();
    check.update(&header[12..HEADER]);
    check.update(body);
    if check.finalize() != crc {
        return None;
    }
    let batch = u64::from_be_bytes(header[12..HEADER].try_into().ok()?);
    let (canonical, hashes) = body.split_at(body.len() - 64);
    let prev: [u8; 32] = hashes[..32].try_into().ok()?;
    let hash: [u8; 32] = hashes[32..].try_into().ok()?;
    if chain_hash(&prev, canonical) != hash {
        return None;
    }
    let mut rest = canonical;
    if *take(&mut rest, 1)?.first()? != CANONICAL_V2 {
        return None;
    }
    let tenant_id = take_i64(&mut rest)?;
    let node = take_str(&mut rest)?.to_owned();
    let seq = take_i64(&mut rest)?;
    let at_ms = take_i64(&mut rest)?;
    let kind = take_str(&mut rest)?.to_owned();
    let detail = decode_value(&mut rest, 0).filter(|d| d.is_object() && rest.is_empty())?;
    Some(Parsed {
        entry: super::AuditEntry {
            tenant_id,
            node,
            seq,
            at_ms,
            kind,
            detail,
            prev_hash: hex(&prev),
            hash: hex(&hash),
            format: FORMAT_BINARY,
        },
        batch,
    })
}

/// The canonical bytes of `entry` (format 2), as [`put_record`] hashed them.
pub(crate) fn canonical(entry: &super::AuditEntry) -> Vec<u8> {
    let detail = Detail::from(&entry.detail);
    let mut out = Vec::with_capacity(64 + detail.0.len());
    put_canonical_head(
        &mut out,
        entry.tenant_id,
        &entry.node,
        entry.seq,
        entry.at_ms,
        &entry.kind,
    );
    out.extend_from_slice(&detail.0);
    out
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// 32 bytes from 64 hex digits.
pub(crate) fn unhex32(text: &str) -> Option<[u8; 32]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A kind as the journal takes it.
pub type Kind = Cow<'static, str>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_and_json_make_the_same_bytes_in_any_key_order() {
        let built = Detail::build()
            .str("caller", "web-1")
            .int("n", -4)
            .opt_str("ip", None)
            .strs("kids", &["a".into(), "b".into()])
            .map("changed", &[("z", "1".into()), ("a", "2".into())])
            .finish();
        let json = serde_json::json!({
            "n": -4, "kids": ["a", "b"], "caller": "web-1", "ip": null,
            "changed": {"a": "2", "z": "1"},
        });
        assert_eq!(built, Detail::from(&json));
        assert_eq!(built.to_json().unwrap(), json);
        let sorted = Detail::build().str("a", "1").str("b", "2").finish();
        let unsorted = Detail::build().str("b", "2").str("a", "1").finish();
        assert_eq!(sorted, unsorted);
    }

    #[test]
    fn canonical_bytes_are_unambiguous() {
        // Moving a byte from one field to the next changes the bytes.
        let a = Detail::from(serde_json::json!({"a": "bc", "d": ""}));
        let b = Detail::from(serde_json::json!({"a": "b", "d": "c"}));
        assert_ne!(a, b);
        let mut x = Vec::new();
        put_canonical_head(&mut x, 1, "ab", 2, 3, "c");
        let mut y = Vec::new();
        put_canonical_head(&mut y, 1, "a", 2, 3, "bc");
        assert_ne!(x, y);
        // Integers and their text differ.
        assert_ne!(
            Detail::from(serde_json::json!({"n": 1})),
            Detail::from(serde_json::json!({"n": "1"}))
        );
    }

    #[test]
    fn a_record_reads_back_and_any_flipped_bit_is_refused() {
        let detail = Detail::build().str("user", "alice").finish();
        let mut out = Vec::new();
        let hash = put_record(&mut out, 7, 3, "node-1", 9, 1_000, "k", &detail, &[1; 32]);
        let len = body_len(&out).unwrap();
        assert_eq!(out.len(), HEADER + len);
        let parsed = parse(&out[..HEADER], &out[HEADER..]).unwrap();
        assert_eq!(parsed.batch, 7);
        assert_eq!(parsed.entry.hash, hex(&hash));
        assert_eq!(parsed.entry.detail, serde_json::json!({"user": "alice"}));
        assert_eq!(parsed.entry.expected_hash(), parsed.entry.hash);
        for i in 4..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                let ok = body_len(&bad)
                    .filter(|l| HEADER + l == bad.len())
                    .and_then(|_| parse(&bad[..HEADER], &bad[HEADER..]));
                assert!(ok.is_none(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0xab; 32];
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32("zz"), None);
    }
}
