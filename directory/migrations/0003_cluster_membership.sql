-- The fence of session-replication membership changes: one row, the
-- newest epoch a change has taken and whether that change returned. A
-- node takes epoch e+1 with a compare-and-set on (epoch e, committed), so
-- two changes never claim the same epoch (docs/sessions.md, "Membership").
-- Deployment-level, not tenant data: every node reads and writes the one
-- row, through a policy that says so (every table the run-time role may
-- touch is covered by a policy).
CREATE TABLE cluster_membership (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch      bigint NOT NULL CHECK (epoch > 0),
  members    jsonb NOT NULL,
  committed  boolean NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE cluster_membership ENABLE ROW LEVEL SECURITY;
ALTER TABLE cluster_membership FORCE ROW LEVEL SECURITY;
CREATE POLICY cluster_wide ON cluster_membership TO sigil_app
  USING (true) WITH CHECK (singleton);

GRANT SELECT, INSERT, UPDATE ON cluster_membership TO sigil_app;
