-- The registration unit's side (issue 13): review and confirmation, and keyed paper forms.
SET lock_timeout = '5s';

-- Every review decision of a unit, append-only: who confirmed (or returned) which version, when,
-- and why. A candidate's review state is derived from the newest row against the current
-- version: a confirmed version below the current one is "changed since confirmed" (issue 13
-- item 5), so nothing here needs updating when a candidate edits again. Trial versions are void
-- (`examreg trial purge`), and their reviews with them.
CREATE TABLE unit_reviews (
    review_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    candidate_id  bigint NOT NULL,
    version       integer NOT NULL CHECK (version > 0),
    action        text NOT NULL CHECK (action IN ('confirm', 'return')),
    reason        text CHECK (char_length(reason) BETWEEN 3 AND 500),
    staff_id      bigint NOT NULL REFERENCES staff (staff_id),
    at            timestamptz NOT NULL DEFAULT now(),
    CHECK (action <> 'return' OR reason IS NOT NULL),
    FOREIGN KEY (candidate_id, version)
        REFERENCES registration_versions (candidate_id, version) ON DELETE CASCADE
);
CREATE INDEX unit_reviews_candidate_idx ON unit_reviews (candidate_id, review_id DESC);

-- A keyed file's progress, polled by the console (any API worker answers the poll) while the
-- worker that took the upload validates and enqueues it. `errors` holds each bad row's line and
-- field errors (codes and messages; never the row's personal data).
CREATE TABLE keying_jobs (
    job_id         text PRIMARY KEY CHECK (job_id ~ '^[0-9a-f]{32}$'),
    staff_id       bigint NOT NULL REFERENCES staff (staff_id),
    province_code  char(2) NOT NULL,
    school_code    char(3) NOT NULL,
    file_name      text NOT NULL CHECK (char_length(file_name) <= 200),
    good_only      boolean NOT NULL,
    state          text NOT NULL
        CHECK (state IN ('validating', 'enqueuing', 'done', 'refused', 'failed')),
    total          integer NOT NULL DEFAULT 0,
    processed      integer NOT NULL DEFAULT 0,
    enqueued       integer NOT NULL DEFAULT 0,
    replayed       integer NOT NULL DEFAULT 0,
    bad            integer NOT NULL DEFAULT 0,
    errors         jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX keying_jobs_staff_idx ON keying_jobs (staff_id, created_at DESC);

GRANT SELECT, INSERT ON unit_reviews TO examreg_app;
GRANT SELECT, INSERT, UPDATE ON keying_jobs TO examreg_app;
