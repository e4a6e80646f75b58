-- Webhooks: endpoints and the durable outbox of deliveries. A delivery row is written in the
-- transaction that appends its audit entry, so an event is either committed with its deliveries
-- or not at all, and a crash loses none.

CREATE TABLE webhook_endpoints (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,       -- JSON array of event patterns
    secret      BLOB NOT NULL,       -- the HMAC key (never returned by the API)
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id     INTEGER NOT NULL REFERENCES webhook_endpoints(id),
    event_type      TEXT NOT NULL,   -- the event kind, e.g. promotion.promoted
    subject         TEXT NOT NULL,   -- deliveries of one subject to one endpoint keep their order
    audit_index     INTEGER,         -- the audit entry the event is (NULL for a test event)
    data            BLOB,            -- the event data when there is no audit entry
    time_millis     INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,         -- a sender holds it until then (replicas never send twice at once)
    last_status     INTEGER,         -- HTTP status of the last attempt
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, subject, status, id);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
