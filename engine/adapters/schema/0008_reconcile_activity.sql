-- Reconciliation and the record of every action (issue 14 items 4 and 5).
SET lock_timeout = '5s';

-- What the trial purge voided (domain: trial data is discarded). The purge copies the versions'
-- identity here before deleting them, so reconciliation still accounts for every version Redis
-- acknowledged, and the record of actions still lists the trial submissions. No form, no name.
CREATE TABLE trial_purged_versions (
    candidate_id  bigint NOT NULL REFERENCES candidates (candidate_id),
    version       integer NOT NULL,
    receipt_id    text NOT NULL,
    accepted_at   timestamptz NOT NULL,
    persisted_at  timestamptz NOT NULL,
    purged_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (candidate_id, version)
);
CREATE INDEX trial_purged_versions_accepted_idx ON trial_purged_versions (accepted_at);

-- The record of submissions and edits is the writer's own history (no audit write on the
-- submission's path): paging it by time needs this index.
CREATE INDEX registration_versions_accepted_idx ON registration_versions (accepted_at);

GRANT SELECT ON trial_purged_versions TO examreg_app;

-- Nobody rewrites the purge's record either (the owner's purge only inserts).
CREATE TRIGGER trial_purged_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON trial_purged_versions
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The top-level fields of a form that an edit changed (names only: the values are personal data).
CREATE FUNCTION form_changes(old jsonb, new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(k ORDER BY k), '[]'::jsonb)
    FROM (SELECT jsonb_object_keys(old) UNION SELECT jsonb_object_keys(new)) AS keys (k)
    WHERE old -> k IS DISTINCT FROM new -> k
$$;

-- Every action, one shape: the audit log (candidates' logins and password changes, staff reads,
-- operators' and admins' commands) and the submissions derived from the versions the writer
-- persisted (version 1 a `submit`, later ones an `edit`; the trial's voided ones too). `actor`
-- is the staff username, the operator's `detail.actor`, or `candidate:<id>`; never a national ID.
CREATE VIEW activity AS
SELECT 'audit:' || a.audit_id AS entry_id, a.audit_id, a.at, st.username AS staff, a.role,
       coalesce(st.username, a.detail ->> 'actor',
                CASE WHEN a.candidate_id IS NOT NULL THEN 'candidate:' || a.candidate_id END,
                a.role) AS actor,
       a.action, a.candidate_id, a.reason, host(a.client_addr) AS client_addr, a.detail
FROM audit_log a LEFT JOIN staff st USING (staff_id)
UNION ALL
SELECT 'version:' || v.candidate_id || ':' || v.version, NULL, v.accepted_at, NULL, 'candidate',
       'candidate:' || v.candidate_id,
       CASE WHEN v.version = 1 THEN 'submit' ELSE 'edit' END, v.candidate_id, NULL, NULL,
       jsonb_build_object('version', v.version, 'receipt_id', v.receipt_id, 'phase', v.phase,
                          'persisted_at', v.persisted_at,
                          'changed', (SELECT form_changes(p.form, v.form)
                                      FROM registration_versions p
                                      WHERE p.candidate_id = v.candidate_id
                                        AND p.version = v.version - 1))
FROM registration_versions v
UNION ALL
SELECT 'purged:' || p.candidate_id || ':' || p.version, NULL, p.accepted_at, NULL, 'candidate',
       'candidate:' || p.candidate_id,
       CASE WHEN p.version = 1 THEN 'submit' ELSE 'edit' END, p.candidate_id, NULL, NULL,
       jsonb_build_object('version', p.version, 'receipt_id', p.receipt_id, 'phase', 'trial',
                          'persisted_at', p.persisted_at, 'voided_at', p.purged_at)
FROM trial_purged_versions p;

GRANT SELECT ON activity TO examreg_app;
