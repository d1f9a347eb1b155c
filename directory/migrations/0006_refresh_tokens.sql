-- Sigil directory, version 6: rotating refresh tokens (issue 19).
--
-- * oidc_apps: whether the app may hold refresh tokens, and their
--   lifetimes: absolute (from the first token of a family, never
--   extended) and idle (from the last rotation).
-- * refresh_tokens: one row per refresh token ever handed out. Only the
--   SHA-256 of a token is kept. Tokens of one chain of rotations share a
--   family_id; a rotation sets the old row's retired_at and adds the new
--   row in the same transaction (`UPDATE ... WHERE retired_at IS NULL
--   RETURNING`: two nodes racing with one token cannot both rotate it).
--   A retired token presented again is theft: its whole family gets
--   revoked_at. A token is bound to its app, user and session (the
--   session id is kept so that the session can be checked on every
--   refresh and revoked on theft). A tenant table like the others: tenant
--   first in the key, row-level security FORCE'd on `sigil.tenant`; the
--   run-time role may read, add, and set retired_at / revoked_at, never
--   delete or rewrite a hash.

ALTER TABLE oidc_apps ADD COLUMN refresh_tokens boolean NOT NULL DEFAULT false;
ALTER TABLE oidc_apps ADD COLUMN refresh_absolute_s integer NOT NULL DEFAULT 2592000 CHECK (refresh_absolute_s > 0);
ALTER TABLE oidc_apps ADD COLUMN refresh_idle_s integer NOT NULL DEFAULT 604800 CHECK (refresh_idle_s > 0);

CREATE TABLE refresh_tokens (
  tenant_id           bigint NOT NULL REFERENCES tenants,
  token_hash          bytea NOT NULL CHECK (length(token_hash) = 32),
  family_id           bytea NOT NULL CHECK (length(family_id) = 16),
  app                 text NOT NULL,
  user_id             text NOT NULL,
  login               text NOT NULL,
  session_id          text NOT NULL,
  kind                text NOT NULL CHECK (kind IN ('id_token', 'access_token')),
  scope               text[] NOT NULL DEFAULT '{}',
  created_at          timestamptz NOT NULL DEFAULT now(),
  absolute_expires_at timestamptz NOT NULL,
  idle_expires_at     timestamptz NOT NULL,
  retired_at          timestamptz,
  revoked_at          timestamptz,
  PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (tenant_id, session_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_user ON refresh_tokens (tenant_id, user_id) WHERE revoked_at IS NULL;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
  USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
  WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint);
GRANT SELECT, INSERT ON refresh_tokens TO sigil_app;
GRANT UPDATE (retired_at, revoked_at) ON refresh_tokens TO sigil_app;
