-- PostgreSQL form of migration 0030 (see ../0030_deployments.sql).
CREATE TABLE deployments (
    environment  TEXT COLLATE "binary" NOT NULL,
    workload     TEXT COLLATE "binary" NOT NULL,
    stage        TEXT NOT NULL,
    reference    TEXT COLLATE "binary" NOT NULL,
    reported_by  TEXT NOT NULL,
    reported_at  BIGINT NOT NULL,
    PRIMARY KEY (environment, workload, reference)
);
