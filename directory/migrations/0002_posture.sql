-- Sigil directory, version 2: the run-time role sees the deployment-level
-- tables (tenants, front-end callers) only through narrow functions, and
-- signed audit chain heads get a table.
--
-- After this migration the run-time role `sigil_app` (which logs in as
-- itself and owns nothing) can:
--   * in a tenant scope: read and write that tenant's rows of the tenant
--     tables (row-level security, FORCE'd), read its own `tenants` row;
--   * anywhere: look a tenant up by slug, list tenants, look a caller up by
--     the exact fingerprint of its certificate (SECURITY DEFINER functions
--     below), read `schema_migrations`.
-- It can no longer read `frontends` or other tenants' rows, nor change
-- `tenants` at all.

REVOKE ALL ON tenants, frontends FROM sigil_app;
REVOKE UPDATE (status) ON tenants FROM sigil_app;

-- tenants: a tenant scope sees its own row. Not FORCE'd: the owner
-- onboards and changes tenants.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON tenants FOR SELECT
  USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint);
GRANT SELECT ON tenants TO sigil_app;

-- frontends: no policy, so no row for anyone but the owner (and no grant).
ALTER TABLE frontends ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION sigil_tenant_by_slug(p_slug text) RETURNS SETOF tenants
  LANGUAGE sql STABLE SECURITY DEFINER
  AS $$ SELECT * FROM tenants WHERE slug = p_slug $$;
CREATE FUNCTION sigil_tenants() RETURNS SETOF tenants
  LANGUAGE sql STABLE SECURITY DEFINER
  AS $$ SELECT * FROM tenants ORDER BY tenant_id $$;
CREATE FUNCTION sigil_frontend(p_fingerprint text) RETURNS SETOF frontends
  LANGUAGE sql STABLE SECURITY DEFINER
  AS $$ SELECT * FROM frontends WHERE fingerprint = p_fingerprint $$;

-- Definer functions resolve names in the schema they were made in, never
-- in a caller's temporary schema.
DO $$
DECLARE f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['sigil_tenant_by_slug(text)', 'sigil_tenants()', 'sigil_frontend(text)'] LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sigil_app', f);
  END LOOP;
END $$;

-- A node checks at start that the schema is the one it was built for.
GRANT SELECT ON schema_migrations TO sigil_app;

-- Signed chain heads: each node signs (tenant, node, seq, hash, time) of
-- what it has shipped, with its key from the deployment CA, and keeps the
-- newest per tenant here and in its checkpoint. `sigil audit verify`
-- fails when the chain in audit_events does not reach or does not match
-- a signed head.
CREATE TABLE audit_heads (
  tenant_id   bigint NOT NULL,
  node        text NOT NULL,
  seq         bigint NOT NULL,
  hash        text NOT NULL,
  at_ms       bigint NOT NULL,
  signature   text NOT NULL,   -- hex, ECDSA P-256 over the head's message
  certificate text NOT NULL,   -- hex DER of the node's certificate
  PRIMARY KEY (tenant_id, node)
);
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
  USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
  WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE ON audit_heads TO sigil_app;
