-- PostgreSQL form of migration 0028 (see ../0028_audit_subject_digest.sql). Every entry is
-- canonical JSON written by airlock, so it parses.
ALTER TABLE audit_entries ADD COLUMN subject_digest TEXT COLLATE "binary";

UPDATE audit_entries
   SET subject_digest = convert_from(entry, 'UTF8')::jsonb -> 'subject' ->> 'digest'
 WHERE jsonb_typeof(convert_from(entry, 'UTF8')::jsonb -> 'subject' -> 'digest') = 'string';

CREATE INDEX audit_entries_by_subject_digest ON audit_entries (subject_digest, idx)
    WHERE subject_digest IS NOT NULL;
