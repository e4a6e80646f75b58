-- Reads of the audit log by one entry kind (who reset whose password, for independent approvals)
-- use an index instead of scanning every entry.
CREATE INDEX audit_entries_by_kind ON audit_entries (kind);
