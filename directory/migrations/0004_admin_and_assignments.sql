-- Sigil directory, version 4: onboarding over the QUIC API (issue 17) and
-- app assignments.
--
-- After this migration the run-time role `sigil_app` can, besides what
-- 0002 lists, and only through the SECURITY DEFINER functions below:
--   * create a tenant (slug and display name; nothing else of its row),
--   * set a tenant's status to `active` or `suspended`,
--   * list the registered callers (front ends) and remove one by name.
-- It gets no new right on `tenants` or `frontends` themselves. In a tenant
-- scope it reads and writes the tenant's app assignments (two new tenant
-- tables, row-level security FORCE'd like the others).

-- A tenant's display name ("Initech, Inc."); the slug stays its URL name.
ALTER TABLE tenants ADD COLUMN display_name text NOT NULL DEFAULT '';

-- Who may use an OIDC app (`kind` 'oidc') or SAML SP ('saml'): the members
-- of the assigned groups and the users assigned directly. An app or SP
-- with no assignment at all is usable by nobody (as in Okta).
CREATE TABLE app_group_assignments (
  tenant_id bigint NOT NULL REFERENCES tenants,
  kind      text NOT NULL CHECK (kind IN ('oidc', 'saml')),
  app       text NOT NULL,
  group_id  text NOT NULL,
  PRIMARY KEY (tenant_id, kind, app, group_id),
  FOREIGN KEY (tenant_id, group_id) REFERENCES groups ON DELETE CASCADE
);
CREATE TABLE app_user_assignments (
  tenant_id bigint NOT NULL REFERENCES tenants,
  kind      text NOT NULL CHECK (kind IN ('oidc', 'saml')),
  app       text NOT NULL,
  user_id   text NOT NULL,
  PRIMARY KEY (tenant_id, kind, app, user_id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users ON DELETE CASCADE
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['app_group_assignments','app_user_assignments'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
                    USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
                    WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)$p$, t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO sigil_app', t);
    EXECUTE format('CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION sigil_notify()', t);
  END LOOP;
END $$;

-- Every tenant has the group `everyone`, made with the tenant, and every
-- user joins it when created (whatever creates it: the node, SCIM, COPY).
CREATE FUNCTION sigil_everyone_group() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE previous text;
BEGIN
  -- The owner is subject to the FORCE'd policy too: act in the new
  -- tenant's scope for this one insert, then put the setting back.
  previous := current_setting('sigil.tenant', true);
  PERFORM set_config('sigil.tenant', NEW.tenant_id::text, true);
  INSERT INTO groups (tenant_id, group_id, name) VALUES (NEW.tenant_id, 'everyone', 'everyone')
    ON CONFLICT DO NOTHING;
  PERFORM set_config('sigil.tenant', coalesce(previous, ''), true);
  RETURN NULL;
END $$;
CREATE TRIGGER everyone AFTER INSERT ON tenants FOR EACH ROW EXECUTE FUNCTION sigil_everyone_group();

CREATE FUNCTION sigil_join_everyone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO memberships (tenant_id, group_id, user_id)
    SELECT NEW.tenant_id, g.group_id, NEW.user_id FROM groups g
     WHERE g.tenant_id = NEW.tenant_id AND g.name = 'everyone'
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
CREATE TRIGGER everyone AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION sigil_join_everyone();

-- Existing tenants get `everyone` with all their users, and their existing
-- apps and SPs are assigned to it: an upgrade keeps serving whom it served.
DO $$
DECLARE t bigint;
BEGIN
  FOR t IN SELECT tenant_id FROM tenants LOOP
    PERFORM set_config('sigil.tenant', t::text, true);
    INSERT INTO groups (tenant_id, group_id, name) VALUES (t, 'everyone', 'everyone') ON CONFLICT DO NOTHING;
    INSERT INTO memberships (tenant_id, group_id, user_id)
      SELECT t, g.group_id, u.user_id FROM users u, groups g
       WHERE u.tenant_id = t AND g.tenant_id = t AND g.name = 'everyone'
      ON CONFLICT DO NOTHING;
    INSERT INTO app_group_assignments (tenant_id, kind, app, group_id)
      SELECT t, 'oidc', a.name, g.group_id FROM oidc_apps a, groups g
       WHERE a.tenant_id = t AND g.tenant_id = t AND g.name = 'everyone'
      ON CONFLICT DO NOTHING;
    INSERT INTO app_group_assignments (tenant_id, kind, app, group_id)
      SELECT t, 'saml', s.name, g.group_id FROM saml_sps s, groups g
       WHERE s.tenant_id = t AND g.tenant_id = t AND g.name = 'everyone'
      ON CONFLICT DO NOTHING;
  END LOOP;
  PERFORM set_config('sigil.tenant', '', true);
END $$;

-- The narrow powers of the run-time role over deployment-level tables.
CREATE FUNCTION sigil_create_tenant(p_slug text, p_display_name text) RETURNS SETOF tenants
  LANGUAGE sql VOLATILE SECURITY DEFINER
  AS $$ INSERT INTO tenants (slug, display_name) VALUES (p_slug, p_display_name)
        ON CONFLICT (slug) DO NOTHING RETURNING * $$;
CREATE FUNCTION sigil_set_tenant_status(p_slug text, p_status text) RETURNS SETOF tenants
  LANGUAGE sql VOLATILE SECURITY DEFINER
  AS $$ UPDATE tenants SET status = p_status WHERE slug = p_slug RETURNING * $$;
CREATE FUNCTION sigil_frontends() RETURNS SETOF frontends
  LANGUAGE sql STABLE SECURITY DEFINER
  AS $$ SELECT * FROM frontends ORDER BY name $$;
CREATE FUNCTION sigil_remove_frontend(p_name text) RETURNS SETOF frontends
  LANGUAGE sql VOLATILE SECURITY DEFINER
  AS $$ DELETE FROM frontends WHERE name = p_name RETURNING * $$;

DO $$
DECLARE f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['sigil_create_tenant(text,text)', 'sigil_set_tenant_status(text,text)',
                           'sigil_frontends()', 'sigil_remove_frontend(text)'] LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sigil_app', f);
  END LOOP;
  FOREACH f IN ARRAY ARRAY['sigil_everyone_group()'] LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;

-- A caller removed (or changed) anywhere: every node forgets the callers
-- it resolved, so the certificate is refused at its next request.
CREATE FUNCTION sigil_notify_callers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('sigil_changes', json_build_object('table', 'frontends', 'tenant_id', 0)::text);
  RETURN NULL;
END $$;
CREATE TRIGGER notify AFTER UPDATE OR DELETE ON frontends FOR EACH ROW EXECUTE FUNCTION sigil_notify_callers();
