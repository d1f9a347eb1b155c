-- Sigil directory, version 9: credentials Sigil verifies itself (issue 18).
--
-- * auth_settings: a tenant's password hashing parameters (argon2id; the
--   default is OWASP's recommendation, m=19456 KiB, t=2, p=1) and its
--   lockout rule (N consecutive failures lock the user for a period). No
--   row: the defaults.
-- * credentials: one password hash per user (PHC string: argon2id, or an
--   imported bcrypt `$2b$` hash upgraded at the next sign-in), with the
--   consecutive-failure counter and the lockout, kept here so that they
--   hold across nodes (updated atomically by one UPDATE ... RETURNING).
-- * user_factors: TOTP secrets wrapped under the master key (like
--   software signing keys), pending until activated; `last_step` is the
--   newest time step accepted, so a code is accepted once per user per
--   step across nodes (UPDATE ... WHERE last_step < $step).
-- * auth_states: the opaque MFA_REQUIRED / MFA_ENROLL states, by SHA-256
--   (the state itself is never stored); single use (DELETE ... RETURNING),
--   5 minutes.
-- Tenant tables like the others: tenant first in the key, row-level
-- security FORCE'd on `sigil.tenant`.

CREATE TABLE auth_settings (
  tenant_id          bigint PRIMARY KEY REFERENCES tenants,
  argon2_m_kib       integer NOT NULL DEFAULT 19456 CHECK (argon2_m_kib BETWEEN 8 AND 4194304),
  argon2_t           integer NOT NULL DEFAULT 2 CHECK (argon2_t BETWEEN 1 AND 64),
  argon2_p           integer NOT NULL DEFAULT 1 CHECK (argon2_p BETWEEN 1 AND 64),
  lockout_threshold  integer NOT NULL DEFAULT 10 CHECK (lockout_threshold > 0),
  lockout_s          integer NOT NULL DEFAULT 900 CHECK (lockout_s > 0)
);

CREATE TABLE credentials (
  tenant_id     bigint NOT NULL,
  user_id       text NOT NULL,
  password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%' OR password_hash LIKE '$2b$%'),
  failures      integer NOT NULL DEFAULT 0,
  locked_until  timestamptz,
  changed_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users ON DELETE CASCADE
);

CREATE TABLE user_factors (
  tenant_id   bigint NOT NULL,
  user_id     text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('totp')),
  secret      bytea NOT NULL,          -- wrapped under the master key
  active      boolean NOT NULL DEFAULT false,
  last_step   bigint NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id, kind),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users ON DELETE CASCADE
);

CREATE TABLE auth_states (
  tenant_id   bigint NOT NULL REFERENCES tenants,
  state_hash  bytea NOT NULL CHECK (length(state_hash) = 32),
  user_id     text NOT NULL,
  purpose     text NOT NULL CHECK (purpose IN ('mfa', 'enroll')),
  amr         text[] NOT NULL,
  client      text,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, state_hash)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['auth_settings','credentials','user_factors','auth_states'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
                    USING (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)
                    WITH CHECK (tenant_id = nullif(current_setting('sigil.tenant', true), '')::bigint)$p$, t);
  END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE ON auth_settings TO sigil_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON credentials, user_factors, auth_states TO sigil_app;
