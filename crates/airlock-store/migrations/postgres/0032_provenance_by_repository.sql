-- PostgreSQL form of migration 0032 (see ../0032_provenance_by_repository.sql).
CREATE INDEX evidence_provenance ON evidence (repository_path, id)
    WHERE kind = 'attestation'
      AND predicate_type IN ('https://slsa.dev/provenance/v1', 'https://slsa.dev/provenance/v0.2');
