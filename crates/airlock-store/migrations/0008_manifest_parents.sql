-- Which indexes reference a manifest: a quarantine on an index also holds its children, so
-- pulls of a child by digest look up its parents.
CREATE INDEX manifest_references_by_child ON manifest_references (child, kind);
