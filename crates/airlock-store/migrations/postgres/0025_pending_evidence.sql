-- Evidence manifests pushed but not yet ingested: a row is added in the push's transaction and
-- removed in the ingestion's, so the start-up pass that finishes what a crash interrupted reads
-- only these rows instead of every manifest of every repository (its cost grew with the store).
CREATE TABLE evidence_pending (
    repository  TEXT COLLATE "binary" NOT NULL,
    digest      TEXT COLLATE "binary" NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

-- What the start-up pass found until now: manifests with a subject or a cosign signature or
-- attestation tag that were never ingested.
INSERT INTO evidence_pending (repository, digest, created_at)
SELECT rm.repository, rm.digest, rm.created_at FROM repository_manifests rm
WHERE (rm.subject IS NOT NULL OR EXISTS (
    SELECT 1 FROM tags t WHERE t.repository = rm.repository AND t.digest = rm.digest
      AND substr(t.name, 1, 7) = 'sha256-'
      AND substr(t.name, length(t.name) - 3) IN ('.sig', '.att')))
  AND NOT EXISTS (SELECT 1 FROM evidence_manifests em
      WHERE em.repository = rm.repository AND em.digest = rm.digest);
