-- PostgreSQL form of migration 0001 (the SQLite form is ../0001_registry.sql; both give the same
-- schema in each engine's types: integers are BIGINT, byte strings BYTEA).
-- The registry's metadata. Blob bytes live in the blob store; everything here is small.
-- Times are Unix milliseconds.

CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE repositories (
    name        TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE repository_blobs (
    repository  TEXT NOT NULL REFERENCES repositories(name),
    digest      TEXT NOT NULL REFERENCES blobs(digest),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE TABLE manifests (
    digest         TEXT PRIMARY KEY,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    subject        TEXT,
    annotations    TEXT NOT NULL,
    size           BIGINT NOT NULL,
    content        BYTEA NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE manifest_references (
    digest  TEXT NOT NULL REFERENCES manifests(digest),
    child   TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (digest, child, kind)
);

CREATE TABLE repository_manifests (
    repository  TEXT NOT NULL REFERENCES repositories(name),
    digest      TEXT NOT NULL REFERENCES manifests(digest),
    subject     TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE INDEX repository_manifests_by_subject
    ON repository_manifests (repository, subject) WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repository  TEXT NOT NULL REFERENCES repositories(name),
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, name),
    FOREIGN KEY (repository, digest) REFERENCES repository_manifests(repository, digest)
);

CREATE INDEX tags_by_digest ON tags (repository, digest);

CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    size        BIGINT NOT NULL DEFAULT 0,
    chunks      BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
