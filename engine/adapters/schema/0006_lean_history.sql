-- The history keeps only the indexes and constraints a query or a promise needs (issue 11, item 4).
-- registration_versions takes one row per accepted version, so each of its indexes is written
-- at every row, and at millions of rows a btree on a random key outgrows shared_buffers: every
-- insert then reads a page from disk and writes a full-page image to the WAL after a checkpoint.
-- What stays, and why:
--   PRIMARY KEY (candidate_id, version)   every query of the history (a candidate's versions,
--                                        a receipt, the reconciliation sweep's probes) and the
--                                        redelivery guard (ON CONFLICT DO NOTHING): promise 3
--   UNIQUE (candidate_id, idempotency_key) one version per request, the last guard of promise 2
--   the CHECKs                           what the validator mirrors; a refusal dead-letters
-- What goes:
--   UNIQUE (receipt_id)                  no query looks a receipt up without its candidate since
--                                        the sweep probes (candidate_id, version); a receipt is 80
--                                        random bits minted per accepted version
--   FOREIGN KEY (candidate_id)           each row's check locked the candidate's roster row
--                                        (FOR KEY SHARE: a write to the roster's heap per row).
--                                        The same transaction upserts `registrations`, whose own
--                                        foreign key still refuses a candidate not on the roster
--                                        (23503), and nothing deletes roster rows
-- Every other index and key of the schema is read by a query or guards a promise (see the audit
-- in docs/capacity.md) and is written only by the roster import, the desk or the audit log.
SET lock_timeout = '5s';

ALTER TABLE registration_versions
    DROP CONSTRAINT IF EXISTS registration_versions_receipt_id_key,
    DROP CONSTRAINT IF EXISTS registration_versions_candidate_id_fkey;
