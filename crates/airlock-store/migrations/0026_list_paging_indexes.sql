-- Indexes that let the remaining lists page by a cursor (keyset paging), so a page costs the
-- same whatever the table's size:
-- - a principal's own access requests, newest first;
-- - a service account's API keys, oldest first;
-- - the keyring, oldest key first;
-- - the active webhook endpoints, by id;
-- - an endpoint's deliveries of one status, newest first.
CREATE INDEX access_requests_by_principal ON access_requests (principal_id, id);
CREATE INDEX credentials_by_principal_time ON credentials (principal_id, kind, created_at, id);
CREATE INDEX trusted_keys_by_time ON trusted_keys (created_at, name);
CREATE INDEX webhook_endpoints_active ON webhook_endpoints (id) WHERE removed_at IS NULL;
CREATE INDEX webhook_deliveries_by_endpoint_status
    ON webhook_deliveries (endpoint_id, status, id);
