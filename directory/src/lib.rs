//! Sigil's directory in Postgres.
//!
//! This crate will own the schema and migrations, row-level security per
//! tenant, the tenant-scoped query API, the claims cache invalidated through
//! LISTEN/NOTIFY, key rotation scheduling and the hash-chained audit log. It
//! is not built yet; see issue 5.
#![forbid(unsafe_code)]
