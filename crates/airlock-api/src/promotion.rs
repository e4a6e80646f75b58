//! Promotions, approvals, rollbacks, freezes, decision records and the policy bundle.
