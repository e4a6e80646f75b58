-- Evidence: the keyring of trusted signer keys, every signature and attestation seen for an
-- artifact with its verdict, and flags on artifacts whose evidence was voided.

-- Public keys trusted to sign evidence. Rotation adds a key and retires the old one; a
-- compromised key is revoked and every signature it ever made is void.
CREATE TABLE trusted_keys (
    key_id         TEXT PRIMARY KEY,        -- hex SHA-256 of the SubjectPublicKeyInfo DER
    name           TEXT NOT NULL UNIQUE,
    algorithm      TEXT NOT NULL,
    public_key     TEXT NOT NULL,           -- SPKI PEM
    purposes       TEXT NOT NULL,           -- JSON array: "sign", "attest:<predicate type>"
    scope          TEXT NOT NULL,           -- JSON array of repository path patterns
    not_before     INTEGER,
    not_after      INTEGER,
    status         TEXT NOT NULL CHECK (status IN ('active', 'retired', 'revoked')),
    status_at      INTEGER,
    status_reason  TEXT,
    compromised    INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL
);

-- A single counter bumped by every keyring change: a verdict names the keyring it was made under.
CREATE TABLE keyring_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO keyring_version (id, version) VALUES (1, 0);

-- One row per piece of evidence about an artifact (repository path without the stage + digest).
CREATE TABLE evidence (
    id               INTEGER PRIMARY KEY,
    repository_path  TEXT NOT NULL,
    subject          TEXT NOT NULL,
    -- Identity of the item: the envelope's digest, or for a cosign signature the digest of its
    -- payload blob and signature together, so re-pushed signature manifests do not duplicate it.
    item             TEXT NOT NULL,
    format           TEXT NOT NULL CHECK (format IN ('cosign', 'dsse', 'sigstore-bundle')),
    source           TEXT NOT NULL CHECK (source IN ('tag', 'referrer', 'api')),
    repository       TEXT NOT NULL,           -- where it arrived (with the stage)
    manifest         TEXT,                    -- the OCI manifest that carried it
    blob             TEXT NOT NULL,           -- payload / envelope / bundle blob
    signature        TEXT,                    -- cosign's base64 signature annotation
    status           TEXT NOT NULL CHECK (status IN ('verified', 'rejected', 'revoked')),
    kind             TEXT,                    -- signature | attestation, once known
    reason_code      TEXT,
    reason           TEXT,
    key_id           TEXT,
    key_name         TEXT,
    predicate_type   TEXT,
    facts            TEXT,                    -- JSON, derived once when verified
    keyring_version  INTEGER NOT NULL,
    first_seen_at    INTEGER NOT NULL,        -- airlock's clock: when the signature was first seen
    verified_at      INTEGER NOT NULL,
    pushed_by        TEXT NOT NULL,
    UNIQUE (repository_path, subject, item)
);

CREATE INDEX evidence_by_subject ON evidence (subject, repository_path);
CREATE INDEX evidence_by_key ON evidence (key_id) WHERE key_id IS NOT NULL;

-- Evidence manifests whose layers were ingested, so a restart finishes any a crash interrupted.
CREATE TABLE evidence_manifests (
    repository   TEXT NOT NULL,
    digest       TEXT NOT NULL,
    ingested_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

-- Artifacts in gated stages whose evidence a compromised key voided.
CREATE TABLE artifact_flags (
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    flag        TEXT NOT NULL CHECK (flag IN ('evidence_revoked')),
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, digest, flag)
) WITHOUT ROWID;
