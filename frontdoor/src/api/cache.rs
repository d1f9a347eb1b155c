//! The per-tenant caches of what the directory says (users, apps, SPs):
//! filled on first use by one loader for all three, dropped when the
//! directory says something changed (`api/changes.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use sigil_proto::{ErrorCode, WireError};

use super::{refuse, unavailable};

/// Entries by name, shared read-mostly across workers. A poisoned lock
/// counts as a miss (the entry is read again).
#[derive(Debug)]
pub struct Cache<T> {
    entries: RwLock<HashMap<String, Arc<T>>>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            entries: RwLock::default(),
        }
    }
}

impl<T> Cache<T> {
    /// The entry under `key`, if cached.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.entries
            .read()
            .ok()
            .and_then(|entries| entries.get(key).cloned())
    }

    /// The entry under `key`: cached, or read with the future `fetch` makes
    /// (made only on a miss; `Ok(None)`: there is none, answered
    /// `not_found` naming `what` and `key` in `tenant`), made ready with
    /// `make`, and kept.
    ///
    /// # Errors
    /// `unavailable` when the directory fails, `not_found`, or what `make`
    /// refuses.
    pub async fn get_or_load<Row, Fetch>(
        &self,
        key: &str,
        what: &str,
        tenant: &str,
        fetch: impl FnOnce() -> Fetch,
        make: impl FnOnce(Row) -> Result<T, WireError>,
    ) -> Result<Arc<T>, WireError>
    where
        Fetch: Future<Output = Result<Option<Row>, directory::Error>>,
    {
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let row = fetch()
            .await
            .map_err(unavailable)?
            .ok_or_else(|| refuse(ErrorCode::NotFound, format!("no {what} {key} in {tenant}")))?;
        let value = Arc::new(make(row)?);
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(key.to_owned(), Arc::clone(&value));
        }
        Ok(value)
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&self, mut keep: impl FnMut(&str, &T) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|key, value| keep(key, value));
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.retain(|_, _| false);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn loads_once_then_hits_and_names_what_is_missing() {
        let cache: Cache<String> = Cache::default();
        let loaded = cache
            .get_or_load(
                "alice",
                "user",
                "acme",
                || async { Ok(Some(1)) },
                |n: i32| Ok(format!("row {n}")),
            )
            .await
            .unwrap();
        assert_eq!(*loaded, "row 1");
        // A hit does not fetch (a failing fetch would say so).
        let again = cache
            .get_or_load(
                "alice",
                "user",
                "acme",
                || async { Err(directory::Error::Journal("must not run".into())) },
                |n: i32| Ok(format!("row {n}")),
            )
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&loaded, &again));
        let missing = cache
            .get_or_load(
                "bob",
                "user",
                "acme",
                || async { Ok(None) },
                |n: i32| Ok(format!("row {n}")),
            )
            .await
            .unwrap_err();
        assert_eq!(missing.code, ErrorCode::NotFound);
        assert_eq!(missing.message, "no user bob in acme");
        let down = cache
            .get_or_load(
                "carol",
                "user",
                "acme",
                || async { Err(directory::Error::Journal("down".into())) },
                |n: i32| Ok(format!("row {n}")),
            )
            .await
            .unwrap_err();
        assert_eq!(down.code, ErrorCode::Unavailable);
        cache.retain(|key, _| key != "alice");
        assert!(cache.get("alice").is_none());
    }
}
