-- Each entry commits to the hash of the one before it (docs/kms.md, "Audit log"). Rows from
-- before this column carry no link and cannot be committed; connection refusals are no longer
-- entries (only authenticated requests are).
ALTER TABLE audit_log ADD COLUMN prev_hash BYTEA;
