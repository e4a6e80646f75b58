-- What runs where, as deployments report it (`POST /api/v1/deployments`): per environment and
-- workload, the image references it runs and the stage it deploys from. A report replaces the
-- workload's rows; `airlock drift` compares them with the promotions.
CREATE TABLE deployments (
    environment  TEXT NOT NULL,
    workload     TEXT NOT NULL,
    stage        TEXT NOT NULL,
    reference    TEXT NOT NULL,
    reported_by  TEXT NOT NULL,
    reported_at  INTEGER NOT NULL,
    PRIMARY KEY (environment, workload, reference)
) WITHOUT ROWID;
