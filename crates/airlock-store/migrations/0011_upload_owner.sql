-- Upload sessions belong to the principal that opened them: only that principal may append to,
-- finish, inspect or cancel the session. Sessions opened before this migration have no owner and
-- are unknown to everyone (their clients start over; the expiry sweep removes their data).
ALTER TABLE uploads ADD COLUMN principal TEXT;
