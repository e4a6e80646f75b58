-- PostgreSQL form of migration 0020 (see ../0020_active_policy.sql): the policy bundle every
-- replica must decide promotions with.
CREATE TABLE active_policy (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    digest        TEXT COLLATE "binary" NOT NULL,
    activated_at  BIGINT NOT NULL
);

-- Which replica holds a webhook delivery's lease (its data directory's replica id), so a replica
-- restarted over the same data directory releases the leases its previous run left at once,
-- and never another live replica's.
ALTER TABLE webhook_deliveries ADD COLUMN lease_owner TEXT COLLATE "binary";
