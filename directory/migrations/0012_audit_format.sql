-- Issue 16: the audit journal writes binary records whose hash covers
-- canonical bytes (format 2, directory/src/audit/record.rs) instead of
-- the JSON text of before (format 1). `format` says which a row's hash
-- covers, so `sigil audit verify` recomputes either. Rows already here
-- are format 1; the shipper names the format of every row it inserts,
-- and a row inserted without one is format 2 (what nodes write now).
ALTER TABLE audit_events ADD COLUMN format smallint NOT NULL DEFAULT 1
  CHECK (format IN (1, 2));
ALTER TABLE audit_events ALTER COLUMN format SET DEFAULT 2;
