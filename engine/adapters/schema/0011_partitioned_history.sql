-- The history and the audit log, partitioned (issue 15 item 3): the writer's drain and the
-- desk's reads stay flat as history grows. Converts the existing tables with their rows, in the
-- migration's one transaction (a failure changes nothing). docs/postgres-at-scale.md has the
-- measurements at 5 million versions and the plan past one primary.
--
-- registration_versions: HASH (candidate_id), 16 partitions. Why this key:
--   * every read of the history names its candidates: `receipt`, `registration_history`, the
--     sweep's `persisted_versions`, the desk's detail, the unit's `version_forms`, `forms_of`,
--     `recorded_requests`, reconciliation's `stored`, the activity view's previous-version
--     probe. Each prunes to one partition and reads that partition's index, 1/16 of the whole.
--   * the keys the promises need lead with candidate_id, and a unique index of a partitioned
--     table must contain the partition key: PRIMARY KEY (candidate_id, version) (promise 3,
--     the redelivery guard, and unit_reviews' foreign key) and UNIQUE (candidate_id,
--     idempotency_key) (promise 2's last guard) stay exactly what they were, enforced across
--     the whole table.
--   * RANGE on accepted_at would make the writer append to one small partition, but both keys
--     would then have to include accepted_at: a retried request whose Redis key had expired
--     gets a new accepted_at and could land in another partition beside its first version, so
--     promise 2's guard would be gone, unit_reviews could not reference a version, and every
--     per-candidate read would probe every partition. The queries by time (the activity page,
--     `versions_since`, the lock report) are the desk's occasional reads; (accepted_at) stays
--     indexed in each partition and the page is a merge of 16 index scans.
--   * 16: a season's 1.2 million candidates and ~5 million versions give ~300,000 rows and
--     ~30 MB of indexes per partition (measured: ~475 MB for the three over 5.4 M rows); a hash
--     partition cannot be split later, only the table rebuilt, and 16 leaves room for 10x the
--     season within a partition's comfortable size.
--   * Measured at 5 million versions (benchmarks/partitions.py): the drain is no slower (equal
--     to 43 % faster over three runs); per-candidate reads pay under a millisecond of planning;
--     what partitioning surely buys is bounded partitions (vacuum, reindex, archiving) and the
--     keys Citus will need.
--
-- audit_log: RANGE (at), one partition per calendar year (UTC) through two years ahead, and a
-- DEFAULT partition so an audit write never fails for want of one (a read that cannot be
-- audited does not happen: promise 6). Why this key: the log is append-only and read newest first or within
-- a time window (the admin's page), so a year's rows, a season's, are one partition: inserts
-- write only that partition's four indexes, old seasons stay untouched and can be detached and
-- archived whole (DELETE is refused). A unique index must include `at`: the primary key
-- becomes (audit_id, at); audit_id still comes from one identity sequence, continued here.
-- The append-only trigger is on the partitioned table (statements on audit_log) and on every
-- partition (statements naming a partition directly); examreg_app has no privilege on the
-- partitions themselves, only INSERT and SELECT on audit_log.
--
-- Locks: both tables are locked first (ACCESS EXCLUSIVE, within lock_timeout): writers and the
-- desk wait for the copy. Run it before the season opens (measured: docs/postgres-at-scale.md).
SET lock_timeout = '5s';

LOCK TABLE registration_versions, unit_reviews, audit_log IN ACCESS EXCLUSIVE MODE;

-- The view reads both tables; it is recreated at the end (the same rows; see there).
DROP VIEW activity;
ALTER TABLE unit_reviews DROP CONSTRAINT unit_reviews_candidate_id_version_fkey;

-- -- registration_versions -----------------------------------------------------------------------

ALTER TABLE registration_versions RENAME TO registration_versions_unpartitioned;
-- Its constraints (and the indexes behind them) give their names up to the new table.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'registration_versions_unpartitioned'::regclass LOOP
        EXECUTE format('ALTER TABLE registration_versions_unpartitioned RENAME CONSTRAINT %I TO %I',
                       c.conname, 'old_' || c.conname);
    END LOOP;
END
$$;

CREATE TABLE registration_versions (
    candidate_id     bigint NOT NULL,
    version          integer NOT NULL CHECK (version > 0),
    receipt_id       text NOT NULL,
    idempotency_key  text NOT NULL,
    request_hash     text NOT NULL,
    phase            text NOT NULL CHECK (phase IN ('trial', 'official')),
    form             jsonb NOT NULL,
    full_name        text NOT NULL CHECK (char_length(full_name) BETWEEN 2 AND 80),
    shard            smallint NOT NULL,
    stream_id        text NOT NULL,
    accepted_at      timestamptz NOT NULL,
    persisted_at     timestamptz NOT NULL DEFAULT now()
) PARTITION BY HASH (candidate_id);

DO $$
BEGIN
    FOR r IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE registration_versions_p%s PARTITION OF registration_versions'
            ' FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            lpad(r::text, 2, '0'), r);
    END LOOP;
END
$$;

-- Rows first, indexes after: one sorted build per index rather than millions of inserts.
INSERT INTO registration_versions
    (candidate_id, version, receipt_id, idempotency_key, request_hash, phase, form, full_name,
     shard, stream_id, accepted_at, persisted_at)
SELECT candidate_id, version, receipt_id, idempotency_key, request_hash, phase, form, full_name,
       shard, stream_id, accepted_at, persisted_at
FROM registration_versions_unpartitioned;

-- Its indexes' names too.
DROP TABLE registration_versions_unpartitioned;

ALTER TABLE registration_versions
    ADD CONSTRAINT registration_versions_pkey PRIMARY KEY (candidate_id, version),
    ADD CONSTRAINT registration_versions_candidate_id_idempotency_key_key
        UNIQUE (candidate_id, idempotency_key);
CREATE INDEX registration_versions_accepted_idx ON registration_versions (accepted_at);

ALTER TABLE unit_reviews ADD CONSTRAINT unit_reviews_candidate_id_version_fkey
    FOREIGN KEY (candidate_id, version)
    REFERENCES registration_versions (candidate_id, version) ON DELETE CASCADE;

GRANT SELECT, INSERT ON registration_versions TO examreg_app;

-- -- audit_log ------------------------------------------------------------------------------------

ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
-- Its constraints (and the indexes behind them) give their names up to the new table.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'audit_log_unpartitioned'::regclass LOOP
        EXECUTE format('ALTER TABLE audit_log_unpartitioned RENAME CONSTRAINT %I TO %I',
                       c.conname, 'old_' || c.conname);
    END LOOP;
END
$$;
ALTER SEQUENCE audit_log_audit_id_seq RENAME TO audit_log_unpartitioned_audit_id_seq;

CREATE TABLE audit_log (
    audit_id      bigint GENERATED ALWAYS AS IDENTITY,
    at            timestamptz NOT NULL DEFAULT now(),
    staff_id      bigint REFERENCES staff (staff_id),
    role          text NOT NULL,
    action        text NOT NULL,
    candidate_id  bigint REFERENCES candidates (candidate_id),
    reason        text,
    client_addr   inet,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb
) PARTITION BY RANGE (at);

-- A year's partition, with the append-only trigger of its own. For a year past the ones below:
-- SELECT audit_log_add_year(2037); (refused while the DEFAULT partition holds rows of that year:
-- move them first, as the owner, with the trigger of audit_log_default disabled).
CREATE FUNCTION audit_log_add_year(year integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'audit_log_y' || year;
BEGIN
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
        name, make_timestamptz(year, 1, 1, 0, 0, 0, 'UTC'),
        make_timestamptz(year + 1, 1, 1, 0, 0, 0, 'UTC'));
    EXECUTE format('DROP TRIGGER IF EXISTS audit_log_append_only ON %I', name);
    EXECUTE format(
        'CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %I'
        ' FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()', name);
END
$$;

-- From the oldest row's year (or this one) to two years ahead: few partitions, since a query by
-- candidate or staff member reads each one's index (add a year before each season; the runbook).
SELECT audit_log_add_year(y)
FROM generate_series(
    least(extract(year FROM now() AT TIME ZONE 'UTC')::integer,
          (SELECT extract(year FROM min(at) AT TIME ZONE 'UTC')::integer
           FROM audit_log_unpartitioned)),
    extract(year FROM now() AT TIME ZONE 'UTC')::integer + 2) AS y;

REVOKE EXECUTE ON FUNCTION audit_log_add_year(integer) FROM PUBLIC;

CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

INSERT INTO audit_log
    (audit_id, at, staff_id, role, action, candidate_id, reason, client_addr, detail)
OVERRIDING SYSTEM VALUE
SELECT audit_id, at, staff_id, role, action, candidate_id, reason, client_addr, detail
FROM audit_log_unpartitioned;

-- The numbering goes on where it stopped (not from max + 1: no number is ever given twice).
SELECT setval('audit_log_audit_id_seq', last_value, is_called)
FROM audit_log_unpartitioned_audit_id_seq;

DROP TABLE audit_log_unpartitioned;

ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (audit_id, at);
CREATE INDEX audit_log_candidate_idx ON audit_log (candidate_id, at);
CREATE INDEX audit_log_staff_idx ON audit_log (staff_id, at);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

GRANT SELECT, INSERT ON audit_log TO examreg_app;

-- -- the record of every action (0008), over the new tables -----------------------------------------
-- The same rows as 0008's view, with one change: the staff member's name is read per row (a
-- scalar subquery on staff's primary key, in the select list so the branch stays a plain scan of
-- audit_log) rather than by a hash join of the whole log, so the newest page reads the
-- partitions' indexes on `at` and stops after a page instead of sorting every audit row (3 s at
-- 2 million audit rows, docs/postgres-at-scale.md).

CREATE VIEW activity AS
SELECT 'audit:' || a.audit_id AS entry_id, a.audit_id, a.at,
       (SELECT st.username FROM staff st WHERE st.staff_id = a.staff_id) AS staff, a.role,
       coalesce((SELECT st.username FROM staff st WHERE st.staff_id = a.staff_id),
                a.detail ->> 'actor',
                CASE WHEN a.candidate_id IS NOT NULL THEN 'candidate:' || a.candidate_id END,
                a.role) AS actor,
       a.action, a.candidate_id, a.reason, host(a.client_addr) AS client_addr, a.detail
FROM audit_log a
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
