-- PostgreSQL form of migration 0029 (see ../0029_verify_version.sql): statement-level triggers,
-- one bump per statement that changed anything the answers read.
CREATE TABLE verify_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO verify_version (id, version) VALUES (1, 0);

CREATE FUNCTION verify_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE verify_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER verify_version_promotions AFTER INSERT OR UPDATE OR DELETE ON promotions
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
CREATE TRIGGER verify_version_channel_move AFTER INSERT ON channel_history
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
CREATE TRIGGER verify_version_quarantines AFTER INSERT OR DELETE ON artifact_quarantines
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
CREATE TRIGGER verify_version_flags AFTER INSERT OR DELETE ON artifact_flags
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
CREATE TRIGGER verify_version_evidence_status AFTER UPDATE OF status ON evidence
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
CREATE TRIGGER verify_version_keyring AFTER UPDATE ON keyring_version
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
CREATE TRIGGER verify_version_manifest_delete AFTER DELETE ON repository_manifests
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
CREATE TRIGGER verify_version_tag_delete AFTER DELETE ON tags
    FOR EACH STATEMENT EXECUTE FUNCTION verify_version_bump();
