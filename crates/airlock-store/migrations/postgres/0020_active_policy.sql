-- PostgreSQL form of migration 0020 (see ../0020_active_policy.sql): the policy bundle every
-- replica must decide promotions with.
CREATE TABLE active_policy (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    digest        TEXT COLLATE "binary" NOT NULL,
    activated_at  BIGINT NOT NULL
);
