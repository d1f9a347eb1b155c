-- Sigil directory, version 7: client authentication of OAuth apps at the
-- introspection and revocation endpoints (issue 19).
--
-- * oidc_apps.jwks: the app's registered JSON Web Key Set (RFC 7517), the
--   public keys its `private_key_jwt` client assertions (RFC 7523) are
--   signed with. NULL: the app cannot authenticate at those endpoints.
-- * client_assertion_jtis: the `jti` of every client assertion accepted,
--   kept until the assertion expires, so that a replay is refused on any
--   node of the cluster (one unique insert per assertion: the first node
--   to insert wins). Only the SHA-256 of the jti is kept. A tenant table
--   like the others: tenant first in the key, row-level security FORCE'd on
--   `sigil.tenant`. A row whose assertion has expired may be overwritten
--   (its assertion is refused for its `exp` anyway) and is deleted by
--   whichever node inserts after it.

ALTER TABLE oidc_apps ADD COLUMN jwks jsonb
  CHECK (jwks IS NULL OR (jsonb_typeof(jwks) = 'object' AND jsonb_typeof(jwks -> 'keys') = 'array'));

CREATE TABLE client_assertion_jtis (
  tenant_id  bigint NOT NULL REFERENCES tenants,
  app        text NOT NULL,
  jti_hash   bytea NOT NULL CHECK (length(jti_hash) = 32),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, app, jti_hash)
);
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (tenant_id, expires_at);
ALTER TABLE client_assertion_jtis ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_assertion_jtis FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON client_assertion_jtis
  USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
  WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON client_assertion_jtis TO sigil_app;
