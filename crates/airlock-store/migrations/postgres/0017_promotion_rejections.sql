-- PostgreSQL form of migration 0017 (see ../0017_promotion_rejections.sql): a decision record
-- may also be an approver's rejection. PostgreSQL changes the CHECK constraint in place.
ALTER TABLE decisions DROP CONSTRAINT decisions_action_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_action_check
    CHECK (action IN ('promote', 'rollback', 'reject'));
