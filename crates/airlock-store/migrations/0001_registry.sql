-- The registry's metadata. Blob bytes live in the blob store; everything here is small.
-- Times are Unix milliseconds.

-- Every blob whose bytes were verified and committed, once per digest, shared by all repositories.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE repositories (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- Which repository may serve which blob (what a push or mount linked into it).
CREATE TABLE repository_blobs (
    repository  TEXT NOT NULL REFERENCES repositories(name),
    digest      TEXT NOT NULL REFERENCES blobs(digest),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

-- Manifest documents, once per digest. Bounded in size by configuration (4 MiB by default).
CREATE TABLE manifests (
    digest         TEXT PRIMARY KEY,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    subject        TEXT,
    annotations    TEXT NOT NULL,
    size           INTEGER NOT NULL,
    content        BLOB NOT NULL,
    created_at     INTEGER NOT NULL
);

-- What each manifest references (blobs and child manifests), for integrity checks and future GC.
CREATE TABLE manifest_references (
    digest  TEXT NOT NULL REFERENCES manifests(digest),
    child   TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (digest, child, kind)
) WITHOUT ROWID;

-- Which repository holds which manifest. Promotion adds a row here: no bytes are copied.
CREATE TABLE repository_manifests (
    repository  TEXT NOT NULL REFERENCES repositories(name),
    digest      TEXT NOT NULL REFERENCES manifests(digest),
    subject     TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

CREATE INDEX repository_manifests_by_subject
    ON repository_manifests (repository, subject) WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repository  TEXT NOT NULL REFERENCES repositories(name),
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, name),
    FOREIGN KEY (repository, digest) REFERENCES repository_manifests(repository, digest)
) WITHOUT ROWID;

CREATE INDEX tags_by_digest ON tags (repository, digest);

-- Upload sessions in progress. Their data is staged in the blob store under uploads/<id>/.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0,
    chunks      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
