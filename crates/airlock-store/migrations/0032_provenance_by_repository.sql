-- The newest SLSA provenance of a repository path, for finding rebuilds of one source revision
-- that produced another digest (a build that does not reproduce): read newest first and bounded,
-- so the cost does not grow with the repository.
CREATE INDEX evidence_provenance ON evidence (repository_path, id)
    WHERE kind = 'attestation'
      AND predicate_type IN ('https://slsa.dev/provenance/v1', 'https://slsa.dev/provenance/v0.2');
