-- An artifact's audit entries (its pushes, evidence and promotions), found by its digest without
-- reading the whole log: `subject_digest` copies the entry's `subject.digest` (a copy for
-- finding entries, like `kind`; not part of the hash). Entries written before this migration get
-- it from their own bytes.
ALTER TABLE audit_entries ADD COLUMN subject_digest TEXT;

UPDATE audit_entries
   SET subject_digest = json_extract(CAST(entry AS TEXT), '$.subject.digest')
 WHERE json_valid(CAST(entry AS TEXT))
   AND json_type(CAST(entry AS TEXT), '$.subject.digest') = 'text';

CREATE INDEX audit_entries_by_subject_digest ON audit_entries (subject_digest, idx)
    WHERE subject_digest IS NOT NULL;
