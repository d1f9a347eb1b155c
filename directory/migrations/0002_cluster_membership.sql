-- The fence of session-replication membership changes: one row, the
-- newest epoch a change has taken and whether that change returned. A
-- node takes epoch e+1 with a compare-and-set on (epoch e, committed), so
-- two changes never claim the same epoch (docs/sessions.md, "Membership").
-- Deployment-level: not tenant data, no row-level security.
CREATE TABLE cluster_membership (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch      bigint NOT NULL CHECK (epoch > 0),
  members    jsonb NOT NULL,
  committed  boolean NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON cluster_membership TO sigil_app;
