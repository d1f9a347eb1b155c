-- Sigil directory, version 1. Every tenant table leads with tenant_id in its
-- primary key and indexes, has row-level security FORCE'd on the per-
-- transaction setting `sigil.tenant`, and is reached at run time by the
-- role sigil_app, which owns nothing.

-- Roles belong to the whole cluster: databases migrating at once may race
-- to create it, and the loser finds it made.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sigil_app') THEN
    CREATE ROLE sigil_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

CREATE TABLE tenants (
  tenant_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug               text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  issuer             text NOT NULL DEFAULT '',
  rate_per_second    integer NOT NULL DEFAULT 0 CHECK (rate_per_second >= 0),
  rate_burst         integer NOT NULL DEFAULT 0 CHECK (rate_burst >= 0),
  session_absolute_s integer NOT NULL DEFAULT 43200 CHECK (session_absolute_s > 0),
  session_idle_s     integer NOT NULL DEFAULT 7200 CHECK (session_idle_s > 0),
  key_algorithms     text[] NOT NULL DEFAULT ARRAY['RS256','ES256','EdDSA'],
  key_rotation_s     bigint NOT NULL DEFAULT 2592000 CHECK (key_rotation_s > 0),
  key_prepublish_s   bigint NOT NULL DEFAULT 86400 CHECK (key_prepublish_s >= 0),
  key_retire_grace_s bigint NOT NULL DEFAULT 86400 CHECK (key_retire_grace_s >= 3600),
  created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  tenant_id     bigint NOT NULL REFERENCES tenants,
  user_id       text NOT NULL,
  login         text NOT NULL,
  email         text NOT NULL DEFAULT '',
  display_name  text NOT NULL DEFAULT '',
  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deactivated')),
  profile       jsonb NOT NULL DEFAULT '{}'::jsonb,
  password_hash text,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id),
  UNIQUE (tenant_id, login)
);

CREATE TABLE groups (
  tenant_id bigint NOT NULL REFERENCES tenants,
  group_id  text NOT NULL,
  name      text NOT NULL,
  PRIMARY KEY (tenant_id, group_id),
  UNIQUE (tenant_id, name)
);

CREATE TABLE memberships (
  tenant_id bigint NOT NULL,
  group_id  text NOT NULL,
  user_id   text NOT NULL,
  PRIMARY KEY (tenant_id, group_id, user_id),
  FOREIGN KEY (tenant_id, group_id) REFERENCES groups ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, user_id) REFERENCES users ON DELETE CASCADE
);
CREATE INDEX memberships_by_user ON memberships (tenant_id, user_id);

CREATE TABLE oidc_apps (
  tenant_id          bigint NOT NULL REFERENCES tenants,
  name               text NOT NULL,
  redirect_uris      text[] NOT NULL DEFAULT '{}',
  algorithm          text NOT NULL CHECK (algorithm IN ('RS256','PS256','ES256','ES384','EdDSA')),
  claim_mapping      jsonb NOT NULL DEFAULT '{}'::jsonb,
  id_token_ttl_s     integer NOT NULL DEFAULT 300 CHECK (id_token_ttl_s BETWEEN 1 AND 3600),
  access_token_ttl_s integer NOT NULL DEFAULT 600 CHECK (access_token_ttl_s BETWEEN 1 AND 3600),
  PRIMARY KEY (tenant_id, name)
);

CREATE TABLE saml_sps (
  tenant_id         bigint NOT NULL REFERENCES tenants,
  name              text NOT NULL,
  entity_id         text NOT NULL,
  acs_urls          text[] NOT NULL CHECK (cardinality(acs_urls) > 0),
  name_id_format    text NOT NULL DEFAULT 'emailAddress' CHECK (name_id_format IN ('emailAddress','persistent','unspecified')),
  attribute_mapping jsonb NOT NULL DEFAULT '{}'::jsonb,
  algorithm         text NOT NULL CHECK (algorithm IN ('RS256','ES256','ES384','EdDSA')),
  sign_assertion    boolean NOT NULL DEFAULT true,
  sign_response     boolean NOT NULL DEFAULT true,
  PRIMARY KEY (tenant_id, name),
  UNIQUE (tenant_id, entity_id)
);

CREATE TABLE signing_keys (
  tenant_id    bigint NOT NULL REFERENCES tenants,
  kid          text NOT NULL,
  algorithm    text NOT NULL,
  key_spec     text NOT NULL,
  backend      text NOT NULL,
  key_blob     bytea NOT NULL,       -- wrapped under the master key, or an HSM reference
  certificate  bytea,                -- self-signed X.509 for SAML metadata
  activates_at timestamptz NOT NULL, -- published from creation, signs from here
  retires_at   timestamptz,          -- stops signing here (the next key took over)
  revoked_at   timestamptz,          -- emergency: out of JWKS at once
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, kid)
);

-- Callers of the QUIC API, identified by the SHA-256 of their certificate.
-- Not a tenant table: it says which tenants a caller may act for.
CREATE TABLE frontends (
  fingerprint text PRIMARY KEY CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  name        text NOT NULL UNIQUE,
  tenants     text[] NOT NULL,
  admin       boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_events (
  tenant_id bigint NOT NULL,
  node      text NOT NULL,
  seq       bigint NOT NULL,
  at_ms     bigint NOT NULL,
  kind      text NOT NULL,
  detail    jsonb NOT NULL,
  prev_hash bytea NOT NULL,
  hash      bytea NOT NULL,
  PRIMARY KEY (tenant_id, node, seq)
);

-- Row-level security: a transaction sees exactly the tenant it set.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['users','groups','memberships','oidc_apps','saml_sps','signing_keys','audit_events'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
                    USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
                    WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)$p$, t);
  END LOOP;
END $$;

GRANT SELECT ON tenants, frontends TO sigil_app;
GRANT UPDATE (status) ON tenants TO sigil_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, groups, memberships, oidc_apps, saml_sps, signing_keys TO sigil_app;
GRANT SELECT, INSERT ON audit_events TO sigil_app;

-- Change notifications: the claims cache and key rings listen.
CREATE FUNCTION sigil_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  PERFORM pg_notify('sigil_changes', json_build_object(
    'table', TG_TABLE_NAME,
    'tenant_id', r.tenant_id,
    'user_id', to_jsonb(r)->>'user_id',
    'status', to_jsonb(r)->>'status'
  )::text);
  RETURN NULL;
END $$;

CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON tenants FOR EACH ROW EXECUTE FUNCTION sigil_notify();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION sigil_notify();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON memberships FOR EACH ROW EXECUTE FUNCTION sigil_notify();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON groups FOR EACH ROW EXECUTE FUNCTION sigil_notify();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON oidc_apps FOR EACH ROW EXECUTE FUNCTION sigil_notify();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON saml_sps FOR EACH ROW EXECUTE FUNCTION sigil_notify();
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON signing_keys FOR EACH ROW EXECUTE FUNCTION sigil_notify();
