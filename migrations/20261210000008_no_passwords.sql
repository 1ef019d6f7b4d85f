-- Passwords sent over SCIM (Okta's Sync Password) are no longer kept: nothing signs in with
-- them. Clear the hashes kept so far, then drop the column.
UPDATE scim_users SET password_hash = NULL;
ALTER TABLE scim_users DROP COLUMN password_hash;
