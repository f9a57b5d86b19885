-- The application's own role, and an audit log nobody can rewrite (issue 12, item 7).
SET lock_timeout = '5s';

-- API workers and writers run as examreg_app (EXAMREG_DATABASE_ROLE sets the role at connection
-- start). NOLOGIN: in production, grant it to the login role the services connect with, and run
-- migrations and the admin commands (seed, roster import, staff, trial purge) as the owner.
-- Roles belong to the whole server, so another database of it may have created this one already.
-- Creating it needs CREATEROLE; without it, create the role beforehand.
DO $$
BEGIN
    CREATE ROLE examreg_app NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;

-- Exactly what the API and the writers do, nothing more. A later migration that adds a table the
-- services read or write grants it here too (tests run the app as this role).
GRANT USAGE ON SCHEMA public TO examreg_app;
GRANT SELECT ON provinces, schools, subjects, languages, certificates, ethnicities, priority_groups
    TO examreg_app;
GRANT SELECT ON candidates, staff, registrations, registration_versions TO examreg_app;
GRANT UPDATE (password_hash, must_change_password, password_changed_at) ON candidates
    TO examreg_app;  -- password change and desk reset
GRANT UPDATE (password_hash, must_change_password) ON staff TO examreg_app;
GRANT INSERT, UPDATE ON registrations TO examreg_app;  -- the writer's version-guarded upsert
GRANT INSERT ON registration_versions TO examreg_app;
-- The audit log: append and read, nothing else (no UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER).
GRANT SELECT, INSERT ON audit_log TO examreg_app;

-- And nobody rewrites it: not the application (it has no privilege to), not the owner, not a
-- superuser by mistake. Statement-level, so even a statement that would touch no row is refused.
-- (A superuser can still drop the trigger or set session_replication_role; that is on purpose
-- and shows in the server's own log, not something an application bug can do.)
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
