-- PostgreSQL form of migration 0016 (see ../0016_audit_kind_index.sql).
CREATE INDEX audit_entries_by_kind ON audit_entries (kind);
