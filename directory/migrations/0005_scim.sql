-- Sigil directory, version 5: SCIM 2.0 provisioning (issue 17).
--
-- * scim_tokens: per-tenant bearer tokens of SCIM clients (an HR system,
--   Okta, Azure AD). Only the SHA-256 of a token is kept; the token is
--   shown once when made. A tenant table like the others: tenant first in
--   the key, row-level security FORCE'd on `sigil.tenant`; the run-time
--   role may read, add, and set `revoked_at`, never delete or rewrite a
--   hash.
-- * users, groups: what SCIM needs beside the existing columns: a version
--   counter per row (the ETag, bumped by every SCIM write), when it was
--   made, the client's externalId.
-- * login_lower, lower(login) kept by Postgres, indexed and unique: SCIM
--   compares userName case-insensitively (the most common provisioning
--   lookup, `login_lower = $1` with the value lower-cased) and userName
--   is unique without regard to case (RFC 7643 caseExact false): `Alice`
--   and `alice` cannot both exist. (A directory that holds such a pair
--   fails this migration, naming the index: rename one login first.) A
--   stored column, not an index on lower(login): under row-level security
--   Postgres uses no index for a condition calling a function that is not
--   leakproof, such as lower(), but does for equality on a column.

CREATE TABLE scim_tokens (
  tenant_id  bigint NOT NULL REFERENCES tenants,
  name       text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
  token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  PRIMARY KEY (tenant_id, name)
);
ALTER TABLE scim_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE scim_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON scim_tokens
  USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
  WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint);
GRANT SELECT, INSERT ON scim_tokens TO sigil_app;
GRANT UPDATE (revoked_at) ON scim_tokens TO sigil_app;
-- Every node drops its cached tokens of the tenant when one changes.
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON scim_tokens FOR EACH ROW EXECUTE FUNCTION sigil_notify();

ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE users ADD COLUMN external_id text;
ALTER TABLE users ADD COLUMN login_lower text GENERATED ALWAYS AS (lower(login)) STORED;
CREATE UNIQUE INDEX users_login_lower ON users (tenant_id, login_lower);
CREATE INDEX users_external_id ON users (tenant_id, external_id) WHERE external_id IS NOT NULL;

ALTER TABLE groups ADD COLUMN version bigint NOT NULL DEFAULT 1;
ALTER TABLE groups ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE groups ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE groups ADD COLUMN external_id text;
CREATE INDEX groups_name_lower ON groups (tenant_id, lower(name));
