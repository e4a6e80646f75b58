-- The policy bundle every replica must decide promotions with: the digest of the bundle the last
-- replica to load one (at start, or on a reload) loaded. A replica whose own bundle differs
-- re-reads its policy directory before a decision and refuses the decision if it still differs.
-- (The bundles themselves are in policy_bundles, by digest.)
CREATE TABLE active_policy (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    digest        TEXT NOT NULL,
    activated_at  INTEGER NOT NULL
);

-- Which replica holds a webhook delivery's lease (its data directory's replica id), so a replica
-- restarted over the same data directory releases the leases its previous run left at once,
-- and never another live replica's.
ALTER TABLE webhook_deliveries ADD COLUMN lease_owner TEXT;
