-- PostgreSQL form of migration 0031 (see ../0031_witness.sql).
CREATE TABLE audit_cosignatures (
    size        BIGINT NOT NULL,
    witness     TEXT COLLATE "binary" NOT NULL,
    line        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (size, witness)
);
CREATE TABLE audit_witness_status (
    witness        TEXT COLLATE "binary" PRIMARY KEY,
    cosigned_size  BIGINT NOT NULL,
    last_error     TEXT,
    updated_at     BIGINT NOT NULL
);
CREATE TABLE witnessed_logs (
    origin      TEXT COLLATE "binary" PRIMARY KEY,
    size        BIGINT NOT NULL,
    root        BYTEA NOT NULL,
    checkpoint  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
