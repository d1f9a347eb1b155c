-- Sigil directory, version 10: per-tenant sign-on policies (issue 18).
--
-- * signon_policies: one row per tenant that has a policy: its
--   `policy.toml` as an admin set it (checked by the front door before it
--   is stored: TOML, CIDRs, durations, and the apps, SPs and groups it
--   names), and a version bumped by every `policy set`. No row: the
--   default policy (a factor whenever the user has an active one).
-- * auth_states gains the session lifetimes the matched rule set, so that
--   the session made after `factor_verify` or an `MFA_ENROLL` completion
--   has them (NULL: the tenant's).
-- A tenant table like the others: tenant first in the key, row-level
-- security FORCE'd on `sigil.tenant`; the run-time role may read, add and
-- replace a policy, never delete one (an empty policy file is the
-- default). Every change notifies `sigil_changes` (table
-- `signon_policies`): each node drops its cached copy of the tenant's
-- policy and reads it again at the next sign-in.

CREATE TABLE signon_policies (
  tenant_id   bigint PRIMARY KEY REFERENCES tenants,
  version     bigint NOT NULL DEFAULT 1 CHECK (version > 0),
  policy      text NOT NULL CHECK (length(policy) <= 65536),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE signon_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE signon_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON signon_policies
  USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
  WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE ON signon_policies TO sigil_app;
CREATE TRIGGER notify AFTER INSERT OR UPDATE OR DELETE ON signon_policies FOR EACH ROW EXECUTE FUNCTION sigil_notify();

ALTER TABLE auth_states ADD COLUMN session_absolute_s integer CHECK (session_absolute_s > 0);
ALTER TABLE auth_states ADD COLUMN session_idle_s integer CHECK (session_idle_s > 0);
