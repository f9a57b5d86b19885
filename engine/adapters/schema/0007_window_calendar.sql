-- The season's calendar (issue 14 items 1-3): trial and official windows per province and unit
-- over the national default, and targeted reopens past the national close (the lock).
SET lock_timeout = '5s';

-- One window of one kind per scope. No national row: the environment's EXAMREG_TRIAL_* and
-- EXAMREG_OPENS_AT/CLOSES_AT stand for it (they seed the national default). A NULL instant of an
-- official window means "no limit on that side"; a trial window has both ends.
CREATE TABLE window_calendar (
    scope          text NOT NULL CHECK (scope IN ('national', 'province', 'unit')),
    kind           text NOT NULL CHECK (kind IN ('trial', 'official')),
    -- '' for the nation, 'PP' for a province, 'PP-SSS' for a unit: one primary key for all three
    scope_key      text NOT NULL,
    province_code  char(2) REFERENCES provinces (code),
    school_code    char(3),
    opens_at       timestamptz,
    closes_at      timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL,
    PRIMARY KEY (scope_key, kind),
    FOREIGN KEY (province_code, school_code) REFERENCES schools (province_code, school_code),
    CHECK (
        (scope = 'national' AND scope_key = '' AND province_code IS NULL AND school_code IS NULL)
        OR (scope = 'province' AND scope_key = province_code AND school_code IS NULL)
        OR (scope = 'unit' AND scope_key = province_code || '-' || school_code)
    ),
    CHECK (kind = 'official' OR (opens_at IS NOT NULL AND closes_at IS NOT NULL)),
    CHECK (opens_at IS NULL OR closes_at IS NULL OR opens_at < closes_at)
);

-- A reopen names provinces, units ('PP-SSS') and candidates; closing it early stamps closed_*.
-- Rows are never deleted: the list of reopens is part of the season's record (and each change
-- has its audit_log row).
CREATE TABLE window_reopens (
    reopen_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provinces      text[] NOT NULL DEFAULT '{}',
    units          text[] NOT NULL DEFAULT '{}',
    candidate_ids  bigint[] NOT NULL DEFAULT '{}',
    until          timestamptz NOT NULL,
    reason         text NOT NULL CHECK (char_length(reason) BETWEEN 3 AND 500),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    closed_at      timestamptz,
    closed_by      text,
    close_reason   text,
    CHECK (cardinality(provinces) + cardinality(units) + cardinality(candidate_ids) > 0)
);
CREATE INDEX window_reopens_open_idx ON window_reopens (until) WHERE closed_at IS NULL;

-- The API's operator endpoints change the calendar as examreg_app (see 0005).
GRANT SELECT, INSERT, UPDATE, DELETE ON window_calendar TO examreg_app;
GRANT SELECT, INSERT ON window_reopens TO examreg_app;
GRANT UPDATE (closed_at, closed_by, close_reason) ON window_reopens TO examreg_app;
