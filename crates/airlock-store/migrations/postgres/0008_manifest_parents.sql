-- PostgreSQL form of migration 0008 (see ../0008_manifest_parents.sql).
CREATE INDEX manifest_references_by_child ON manifest_references (child, kind);
