-- PostgreSQL form of migration 0001 (the SQLite form is ../0001_registry.sql; both give the same
-- schema in each engine's types: integers are BIGINT, byte strings BYTEA, and text compares
-- byte by byte as SQLite's does, whatever the database's default collation, so ranges and orders
-- (catalog pages, cursors) are the same on both engines: every text column has the collation
-- "binary", made here from "C" under the name of SQLite's own byte-wise collation, so a query
-- can write `COLLATE "binary"` for both engines).
-- The registry's metadata. Blob bytes live in the blob store; everything here is small.
-- Times are Unix milliseconds.

CREATE COLLATION "binary" FROM "C";

CREATE TABLE blobs (
    digest      TEXT COLLATE "binary" PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE repositories (
    name        TEXT COLLATE "binary" PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE repository_blobs (
    repository  TEXT COLLATE "binary" NOT NULL REFERENCES repositories(name),
    digest      TEXT COLLATE "binary" NOT NULL REFERENCES blobs(digest),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE TABLE manifests (
    digest         TEXT COLLATE "binary" PRIMARY KEY,
    media_type     TEXT COLLATE "binary" NOT NULL,
    artifact_type  TEXT COLLATE "binary",
    subject        TEXT COLLATE "binary",
    annotations    TEXT COLLATE "binary" NOT NULL,
    size           BIGINT NOT NULL,
    content        BYTEA NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE manifest_references (
    digest  TEXT COLLATE "binary" NOT NULL REFERENCES manifests(digest),
    child   TEXT COLLATE "binary" NOT NULL,
    kind    TEXT COLLATE "binary" NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (digest, child, kind)
);

CREATE TABLE repository_manifests (
    repository  TEXT COLLATE "binary" NOT NULL REFERENCES repositories(name),
    digest      TEXT COLLATE "binary" NOT NULL REFERENCES manifests(digest),
    subject     TEXT COLLATE "binary",
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE INDEX repository_manifests_by_subject
    ON repository_manifests (repository, subject) WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repository  TEXT COLLATE "binary" NOT NULL REFERENCES repositories(name),
    name        TEXT COLLATE "binary" NOT NULL,
    digest      TEXT COLLATE "binary" NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, name),
    FOREIGN KEY (repository, digest) REFERENCES repository_manifests(repository, digest)
);

CREATE INDEX tags_by_digest ON tags (repository, digest);

CREATE TABLE uploads (
    id          TEXT COLLATE "binary" PRIMARY KEY,
    repository  TEXT COLLATE "binary" NOT NULL,
    size        BIGINT NOT NULL DEFAULT 0,
    chunks      BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
