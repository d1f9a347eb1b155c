//! The binary form of a session record on disk: fixed-width integers and
//! length-prefixed strings, read back with every length checked (a corrupt
//! entry decodes to `None`, never to a panic).
//!
//! The byte after the client holds flags: bit 0 `revoked`, bit 1
//! `asserted` (issue 18). A record written before `asserted` existed has
//! 0 or 1 there and reads back as not asserted.

use std::sync::Arc;

use crate::table::{SessionId, SessionRecord};

/// Appends `record` to `out`.
pub fn encode_record(record: &SessionRecord, out: &mut Vec<u8>) {
    put_str16(out, &record.tenant);
    out.extend_from_slice(record.id.as_bytes());
    put_str16(out, &record.user);
    for time in [
        record.auth_time_ms,
        record.created_ms,
        record.last_seen_ms,
        record.expires_ms,
        record.idle_ms,
    ] {
        out.extend_from_slice(&time.to_le_bytes());
    }
    let amr: Vec<&String> = record.amr.iter().take(255).collect();
    out.push(amr.len() as u8);
    for method in amr {
        put_str16(out, method);
    }
    match &record.client {
        Some(client) => {
            out.push(1);
            put_str16(out, client);
        }
        None => out.push(0),
    }
    out.push(u8::from(record.revoked) | (u8::from(record.asserted) << 1));
    // The apps (issue 19) follow only when there are some: a record
    // written before them reads back with none.
    let apps: Vec<&Arc<str>> = record.apps.iter().take(255).collect();
    if !apps.is_empty() {
        out.push(apps.len() as u8);
        for app in apps {
            put_str16(out, app);
        }
    }
}

fn put_str16(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(usize::from(u16::MAX))];
    // A string cut inside a character would not decode: cut at a boundary.
    let mut end = bytes.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&bytes[..end]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(bytes))
    }
    fn str16(&mut self) -> Option<&'a str> {
        let mut length = [0u8; 2];
        length.copy_from_slice(self.take(2)?);
        std::str::from_utf8(self.take(usize::from(u16::from_le_bytes(length)))?).ok()
    }
}

/// Reads a record written by [`encode_record`]; `None` if it is not one.
pub fn decode_record(bytes: &[u8]) -> Option<SessionRecord> {
    let mut r = Reader(bytes);
    let tenant = Arc::from(r.str16()?);
    let mut id = [0u8; 32];
    id.copy_from_slice(r.take(32)?);
    let user = Arc::from(r.str16()?);
    let (auth_time_ms, created_ms, last_seen_ms, expires_ms, idle_ms) =
        (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let count = r.u8()?;
    let mut amr = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        amr.push(r.str16()?.to_owned());
    }
    let client = match r.u8()? {
        0 => None,
        1 => Some(r.str16()?.to_owned()),
        _ => return None,
    };
    let flags = r.u8()?;
    if flags > 0b11 {
        return None;
    }
    let (revoked, asserted) = (flags & 1 == 1, flags & 2 == 2);
    let mut apps = Vec::new();
    if !r.0.is_empty() {
        let count = r.u8()?;
        if count == 0 {
            return None;
        }
        for _ in 0..count {
            apps.push(Arc::from(r.str16()?));
        }
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(SessionRecord {
        tenant,
        id: SessionId::from_bytes(id),
        user,
        auth_time_ms,
        amr,
        client,
        created_ms,
        last_seen_ms,
        expires_ms,
        idle_ms,
        revoked,
        apps,
        asserted,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(
            tenant in "[a-z0-9-]{1,40}",
            user in "\\PC{0,60}",
            id in proptest::array::uniform32(any::<u8>()),
            times in proptest::array::uniform5(any::<u64>()),
            amr in proptest::collection::vec("[a-z]{1,8}", 0..4),
            client in proptest::option::of("\\PC{0,80}"),
            revoked in any::<bool>(),
            asserted in any::<bool>(),
            apps in proptest::collection::btree_set("[a-z0-9-]{1,20}", 0..4),
        ) {
            let record = SessionRecord {
                tenant: Arc::from(tenant.as_str()),
                id: SessionId::from_bytes(id),
                user: Arc::from(user.as_str()),
                auth_time_ms: times[0],
                amr,
                client,
                created_ms: times[1],
                last_seen_ms: times[2],
                expires_ms: times[3],
                idle_ms: times[4],
                revoked,
                apps: apps.iter().map(|a| Arc::from(a.as_str())).collect(),
                asserted,
            };
            let mut bytes = Vec::new();
            encode_record(&record, &mut bytes);
            prop_assert_eq!(decode_record(&bytes), Some(record));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_record(&bytes);
        }
    }

    #[test]
    fn a_cut_record_is_refused() {
        let record = SessionRecord {
            tenant: Arc::from("acme"),
            id: SessionId::from_bytes([7; 32]),
            user: Arc::from("alice"),
            auth_time_ms: 1,
            amr: vec!["pwd".into()],
            client: None,
            created_ms: 1,
            last_seen_ms: 2,
            expires_ms: 3,
            idle_ms: 4,
            revoked: false,
            apps: Vec::new(),
            asserted: true,
        };
        let mut bytes = Vec::new();
        encode_record(&record, &mut bytes);
        for cut in 0..bytes.len() {
            assert_eq!(decode_record(&bytes[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_record_from_before_asserted_reads_back_not_asserted() {
        let record = SessionRecord {
            tenant: Arc::from("acme"),
            id: SessionId::from_bytes([9; 32]),
            user: Arc::from("alice"),
            auth_time_ms: 1,
            amr: vec!["pwd".into()],
            client: None,
            created_ms: 1,
            last_seen_ms: 2,
            expires_ms: 3,
            idle_ms: 4,
            revoked: true,
            apps: Vec::new(),
            asserted: false,
        };
        let mut bytes = Vec::new();
        encode_record(&record, &mut bytes);
        // The flags byte is the last one: an old writer put 1 (revoked) there.
        assert_eq!(bytes.last(), Some(&1));
        assert_eq!(decode_record(&bytes), Some(record.clone()));
        // An unknown flag is a corrupt record, not a guess.
        let last = bytes.len() - 1;
        bytes[last] = 4;
        assert_eq!(decode_record(&bytes), None);
    }
}
