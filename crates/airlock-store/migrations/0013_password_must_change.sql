-- A password an access-admin reset (or airlock generated for `admin` at installation) must be
-- changed by its user before it can be used for anything else: while this is 1, the user can
-- authenticate only to change the password. Existing principals start at 0 (nothing changes for
-- them).
ALTER TABLE principals ADD COLUMN password_must_change INTEGER NOT NULL DEFAULT 0;
