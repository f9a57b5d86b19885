-- Staff accounts can be disabled (issue 12): a disabled account cannot log in, and every staff
-- request reads the row, so its sessions are refused at once. NULL: the account is active.
SET lock_timeout = '5s';

ALTER TABLE staff ADD COLUMN disabled_at timestamptz;
