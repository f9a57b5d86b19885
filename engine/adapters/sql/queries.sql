-- Named queries of engine.store, loaded once at import. Each block starts with "-- name: <name>".

-- name: candidate_login
SELECT candidate_id, password_hash, must_change_password,
       province_code || '-' || school_code AS unit
FROM candidates WHERE national_id = $1;

-- name: candidate_profile
SELECT c.candidate_id, c.national_id, c.full_name, c.date_of_birth, c.sex, c.candidate_type,
       c.province_code, c.school_code, s.name AS school_name, c.must_change_password
FROM candidates c
JOIN schools s USING (province_code, school_code)
WHERE c.candidate_id = $1;

-- name: candidate_must_change_password
SELECT must_change_password FROM candidates WHERE candidate_id = $1;

-- name: candidate_password_hash
SELECT password_hash FROM candidates WHERE candidate_id = $1;

-- name: set_candidate_password
UPDATE candidates
SET password_hash = $2, must_change_password = false, password_changed_at = now()
WHERE candidate_id = $1;

-- name: registration
SELECT version, receipt_id, phase, form, accepted_at, persisted_at
FROM registrations WHERE candidate_id = $1;

-- name: receipt
-- The primary key's candidate_id prefix serves it: a candidate has a handful of versions.
SELECT version, phase, accepted_at, persisted_at
FROM registration_versions WHERE candidate_id = $1 AND receipt_id = $2;

-- name: persisted_versions
-- Which of these (candidate, version) pairs are committed, with their receipt (the
-- reconciliation sweep): one primary-key probe each, so no index on receipt_id is needed.
SELECT v.candidate_id, v.version, v.receipt_id
FROM unnest($1::bigint[], $2::integer[]) AS m (candidate_id, version)
JOIN registration_versions v USING (candidate_id, version);

-- name: registration_history
-- Every persisted version of one candidate, newest first (the primary key serves the order).
SELECT version, receipt_id, phase, accepted_at, persisted_at
FROM registration_versions WHERE candidate_id = $1
ORDER BY version DESC
LIMIT $2;

-- name: create_staging
CREATE TEMP TABLE IF NOT EXISTS staging_versions (
    candidate_id     bigint,
    version          integer,
    receipt_id       text,
    idempotency_key  text,
    request_hash     text,
    phase            text,
    form             text,  -- text: COPY is binary and the json codec is a text one
    full_name        text,
    shard            smallint,
    stream_id        text,
    accepted_at      timestamptz
) ON COMMIT DELETE ROWS;

-- name: create_staging_candidates
CREATE TEMP TABLE IF NOT EXISTS staging_candidates (
    national_id     text,
    full_name       text,
    date_of_birth   date,
    sex             text,
    candidate_type  char(1),
    province_code   char(2),
    school_code     char(3),
    phone                 text,
    password_hash         text,
    must_change_password  boolean
) ON COMMIT DELETE ROWS;

-- name: insert_history
-- Redelivered entries hit the primary key or the per-request unique keys and are skipped.
INSERT INTO registration_versions
    (candidate_id, version, receipt_id, idempotency_key, request_hash, phase, form, full_name,
     shard, stream_id, accepted_at)
SELECT candidate_id, version, receipt_id, idempotency_key, request_hash, phase, form::jsonb,
       full_name, shard, stream_id, accepted_at
FROM staging_versions
ORDER BY candidate_id, version
ON CONFLICT DO NOTHING;

-- name: upsert_current
-- DISTINCT ON keeps the newest version per candidate in the batch (one row may be touched once per
-- statement); ORDER BY candidate_id takes row locks in one global order so concurrent writers
-- cannot deadlock; the WHERE is the version guard of architecture §3.3.
INSERT INTO registrations AS r (candidate_id, version, receipt_id, phase, form, accepted_at)
SELECT DISTINCT ON (candidate_id) candidate_id, version, receipt_id, phase, form::jsonb, accepted_at
FROM staging_versions
ORDER BY candidate_id, version DESC
ON CONFLICT (candidate_id) DO UPDATE
SET version = EXCLUDED.version,
    receipt_id = EXCLUDED.receipt_id,
    phase = EXCLUDED.phase,
    form = EXCLUDED.form,
    accepted_at = EXCLUDED.accepted_at,
    persisted_at = now()
WHERE r.version < EXCLUDED.version;

-- name: reference_provinces
SELECT code, name, name_from_2025 FROM provinces ORDER BY code;

-- name: reference_schools
SELECT province_code, school_code, name, priority_area FROM schools
ORDER BY province_code, school_code;

-- name: reference_subjects
SELECT code, name, compulsory FROM subjects ORDER BY compulsory DESC, code;

-- name: reference_languages
SELECT code, name, name_en FROM languages ORDER BY code;

-- name: reference_certificates
SELECT code, language_code, name FROM certificates ORDER BY language_code, code;

-- name: reference_ethnicities
SELECT code, name FROM ethnicities ORDER BY code;

-- name: reference_priority_groups
SELECT code, description FROM priority_groups ORDER BY code;

-- name: record_trial_purge
-- What the purge voids, kept by identity (no form): reconciliation and the record of actions.
INSERT INTO trial_purged_versions (candidate_id, version, receipt_id, accepted_at, persisted_at)
SELECT candidate_id, version, receipt_id, accepted_at, persisted_at
FROM registration_versions WHERE phase = 'trial'
ON CONFLICT DO NOTHING;

-- name: purge_trial_history
DELETE FROM registration_versions WHERE phase = 'trial';

-- name: purge_trial_current
DELETE FROM registrations WHERE phase = 'trial';

-- name: staff_login
-- A disabled account is no account to log in to.
SELECT staff_id, password_hash, role, province_code, school_code, must_change_password
FROM staff WHERE username = $1 AND disabled_at IS NULL;

-- name: staff_member
SELECT staff_id, username, role, province_code, school_code, must_change_password,
       disabled_at IS NOT NULL AS disabled
FROM staff WHERE staff_id = $1;

-- name: staff_password_hash
SELECT password_hash FROM staff WHERE staff_id = $1;

-- name: set_staff_password
UPDATE staff SET password_hash = $2, must_change_password = false WHERE staff_id = $1;

-- name: create_staff
-- An existing account is never overwritten (no row comes back): its role, school and password
-- change through their own commands.
INSERT INTO staff (username, password_hash, role, province_code, school_code, must_change_password)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (username) DO NOTHING
RETURNING staff_id;

-- name: set_staff_disabled
-- $2: disable (keeping the first time it was disabled) or enable.
UPDATE staff
SET disabled_at = CASE WHEN $2::boolean THEN coalesce(disabled_at, now()) END
WHERE username = $1
RETURNING staff_id;

-- name: reset_staff_password
-- A new issued password: to be changed at the next login.
UPDATE staff SET password_hash = $2, must_change_password = true
WHERE username = $1
RETURNING staff_id;

-- name: set_staff_role
UPDATE staff SET role = $2, province_code = $3, school_code = $4
WHERE username = $1
RETURNING staff_id;

-- name: school_codes
SELECT province_code, school_code FROM schools;

-- name: first_school
SELECT province_code, school_code FROM schools ORDER BY 1, 2 LIMIT 1;

-- name: has_candidates
SELECT EXISTS (SELECT 1 FROM candidates);

-- name: has_staff
SELECT EXISTS (SELECT 1 FROM staff);
