//! The audit log's vocabulary: every security-relevant event airlock records, as typed values.
//!
//! A capability records what happened by building an [`AuditRecord`] (who, when, which
//! [`AuditEvent`]) and handing it to the storage call that makes the change; storage appends the
//! record's [`AuditRecord::canonical_json`] in the same transaction. New capabilities add variants
//! here and nothing else.

use serde::Serialize;
use serde_json::{Value, json};

use crate::access::Action;
use crate::anomaly::{AnomalyAction, AnomalyRule, AnomalyTarget};
use crate::digest::Digest;
use crate::name::{RepoName, Tag};

/// Version of the entry format, written into every entry.
pub const ENTRY_FORMAT_VERSION: u32 = 1;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The principal's name (`anonymous` without credentials).
    pub principal: String,
    /// How the principal authenticated (`anonymous`, `password`, `token`, ...).
    pub auth_method: String,
    /// The client's network address, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Actor {
    /// airlock itself (start-up tasks, sweeps, expiries).
    pub fn system() -> Self {
        Self {
            principal: "airlock".into(),
            auth_method: "system".into(),
            source: None,
        }
    }

    /// An unauthenticated caller from `source`.
    pub fn anonymous(source: Option<String>) -> Self {
        Self {
            principal: "anonymous".into(),
            auth_method: "anonymous".into(),
            source,
        }
    }
}

/// How an attempted action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened.
    Success,
    /// A rule or policy refused it.
    Denied,
}

/// Every event airlock records. Each variant names what changed and carries what an auditor needs
/// to understand it later without the rest of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// A verified blob was committed into, or mounted into, a repository.
    BlobPushed {
        /// Where.
        repository: RepoName,
        /// Which blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// The repository it was mounted from, for a cross-repository mount.
        mounted_from: Option<RepoName>,
    },
    /// A manifest was stored in a repository (pushed by tag or by digest).
    ManifestPushed {
        /// Where.
        repository: RepoName,
        /// The manifest digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// Its artifact type, if any.
        artifact_type: Option<String>,
        /// The manifest it refers to, if any.
        subject: Option<Digest>,
    },
    /// A tag was pointed at a digest: created, or moved from `previous`.
    TagMoved {
        /// Where.
        repository: RepoName,
        /// The tag.
        tag: Tag,
        /// The digest it points to now.
        digest: Digest,
        /// The digest it pointed to before (`None` when the tag is new).
        previous: Option<Digest>,
    },
    /// A tag was deleted.
    TagDeleted {
        /// Where.
        repository: RepoName,
        /// The tag.
        tag: Tag,
        /// The digest it pointed to.
        digest: Digest,
    },
    /// A manifest (and the tags pointing to it) was deleted from a repository.
    ManifestDeleted {
        /// Where.
        repository: RepoName,
        /// The manifest digest.
        digest: Digest,
    },
    /// A blob was removed from a repository.
    BlobDeleted {
        /// Where.
        repository: RepoName,
        /// The blob.
        digest: Digest,
    },
    /// A principal (user or service account) was created.
    PrincipalCreated {
        /// Its name.
        principal: String,
        /// `user` or `service`.
        kind: String,
    },
    /// A principal was disabled; its tokens stop working at once.
    PrincipalDisabled {
        /// Its name.
        principal: String,
    },
    /// A disabled principal was enabled again (its old tokens and logins stay revoked).
    PrincipalEnabled {
        /// Its name.
        principal: String,
    },
    /// A user changed their own password (proving the current one); every login and token of
    /// theirs ended.
    PasswordChanged {
        /// Whose.
        principal: String,
    },
    /// An access-admin reset a user's password; the user must change it before using it for
    /// anything else, and every login and token of theirs ended.
    PasswordReset {
        /// Whose.
        principal: String,
        /// Whether airlock generated the temporary password (shown once to the access-admin).
        generated: bool,
    },
    /// A credential (password or API key) was set or created.
    CredentialCreated {
        /// Whose.
        principal: String,
        /// `password` or `api_key`.
        credential: String,
        /// The credential's id (never the secret).
        id: String,
        /// When it expires, if it does (ms).
        expires_at_millis: Option<i64>,
    },
    /// A credential was revoked.
    CredentialRevoked {
        /// Whose.
        principal: String,
        /// The credential's id.
        id: String,
    },
    /// A named API key was added to a service account (`credential.created`; never the secret).
    ApiKeyCreated {
        /// The service account.
        principal: String,
        /// The key's id (the `alk_<id>_...` part).
        id: String,
        /// The key's name, unique among the account's live keys.
        name: String,
        /// When it expires (ms); every API key does.
        expires_at_millis: i64,
    },
    /// A pull-only deploy token was issued (`deploy_token.issued`; never the token).
    DeployTokenIssued {
        /// Who asked for it, and whose access it narrows.
        principal: String,
        /// The token's id (its `jti`).
        id: String,
        /// The repositories it may pull from, with their stage.
        repositories: Vec<String>,
        /// When it expires (ms).
        expires_at_millis: i64,
    },
    /// A deployment reported what one of its workloads runs (`deployment.reported`).
    DeploymentReported {
        /// Where it runs.
        environment: String,
        /// What runs it.
        workload: String,
        /// The stage it deploys from.
        stage: String,
        /// The image references it runs now.
        images: Vec<String>,
        /// How many of them were never promoted into the stage (drift).
        unpromoted: usize,
    },
    /// A named API key was revoked (`credential.revoked`).
    ApiKeyRevoked {
        /// The service account.
        principal: String,
        /// The key's id.
        id: String,
        /// The key's name.
        name: String,
    },
    /// An API key comes within `days` of its expiry (`credential.expiring`): sent once per key
    /// and configured threshold.
    CredentialExpiring {
        /// The service account.
        principal: String,
        /// The key's id.
        id: String,
        /// The key's name.
        name: String,
        /// When it expires (ms).
        expires_at_millis: i64,
        /// The warning threshold reached, in days.
        days: u32,
    },
    /// An API key expired unrevoked (`credential.expired`): sent once per key.
    CredentialExpired {
        /// The service account.
        principal: String,
        /// The key's id.
        id: String,
        /// The key's name.
        name: String,
        /// When it expired (ms).
        expires_at_millis: i64,
    },
    /// A role was bound to a principal in a scope (standing, or just in time until it expires).
    RoleGranted {
        /// Who received it.
        principal: String,
        /// The role.
        role: String,
        /// Where it applies.
        scope: String,
        /// When it ends by itself (just-in-time grants), in ms.
        expires_at_millis: Option<i64>,
        /// The access request it fulfils, if any.
        access_request: Option<i64>,
    },
    /// A role binding was removed.
    RoleRevoked {
        /// From whom.
        principal: String,
        /// The role.
        role: String,
        /// Where it applied.
        scope: String,
    },
    /// Someone asked for a role for a while (just-in-time access).
    AccessRequested {
        /// The request id.
        request: i64,
        /// Who asked.
        principal: String,
        /// The role asked for.
        role: String,
        /// Where.
        scope: String,
        /// For how long, in seconds.
        duration_secs: u64,
        /// Why.
        reason: String,
    },
    /// An access request was granted, denied or revoked by someone else.
    AccessDecided {
        /// The request id.
        request: i64,
        /// Who asked.
        principal: String,
        /// `granted`, `denied` or `revoked`.
        decision: String,
    },
    /// Authentication failed for a principal (one entry per principal per minute; further
    /// failures in that minute are counted, not logged).
    AuthenticationFailed {
        /// The principal named by the attempt (`unknown` if none).
        principal: String,
        /// Why it failed.
        reason: String,
    },
    /// A person signed in to the web console: a session started.
    SessionStarted {
        /// Who signed in.
        principal: String,
    },
    /// A web console session was ended by its holder (sign-out).
    SessionEnded {
        /// Whose session it was.
        principal: String,
    },
    /// A write into a gated stage was refused.
    PushRefused {
        /// The repository the client tried to change.
        repository: RepoName,
        /// What it tried to do.
        action: Action,
        /// Why it was refused.
        reason: String,
    },
    /// A promotion was decided by its gate (allowed, pending approval, or denied), or decided
    /// again when its last approval arrived.
    PromotionDecided {
        /// The promotion id.
        promotion: String,
        /// The target repository.
        repository: RepoName,
        /// The artifact.
        digest: Digest,
        /// `pending_approval`, `denied` or `allowed`.
        state: String,
        /// The decision record id (for replay).
        decision: String,
        /// The policy bundle digest.
        policy: String,
        /// Violated rule ids (empty when allowed).
        rules: Vec<String>,
        /// Approvals required.
        approvals_required: u32,
    },
    /// An approver signed off a promotion.
    PromotionApproved {
        /// The promotion id.
        promotion: String,
        /// The target repository.
        repository: RepoName,
        /// The artifact.
        digest: Digest,
        /// The approver's comment.
        comment: Option<String>,
    },
    /// An artifact was promoted: it is now visible in the target repository (no bytes copied).
    Promoted {
        /// The promotion id.
        promotion: String,
        /// The target repository.
        repository: RepoName,
        /// The artifact.
        digest: Digest,
        /// The source repository.
        source: RepoName,
        /// Tags set in the target.
        tags: Vec<String>,
        /// The promotion attestation's manifest digest.
        attestation: Digest,
        /// The break-glass reason, if this was an emergency promotion (an alert).
        break_glass: Option<String>,
    },
    /// A pending promotion ended without promotion (expired or cancelled).
    PromotionClosed {
        /// The promotion id.
        promotion: String,
        /// The target repository.
        repository: RepoName,
        /// The artifact.
        digest: Digest,
        /// `expired` or `cancelled`.
        state: String,
    },
    /// An eligible approver rejected a promotion pending approval: it ends `denied`, with the
    /// rejection as its last decision record.
    PromotionRejected {
        /// The promotion id.
        promotion: String,
        /// The target repository.
        repository: RepoName,
        /// The artifact.
        digest: Digest,
        /// Why, as the approver wrote it.
        reason: String,
        /// The decision record holding the rejection.
        decision: String,
    },
    /// A promotion claimed by its last approval went back to `pending_approval` because its
    /// final decision could not be made (it can be approved again).
    PromotionReopened {
        /// The promotion id.
        promotion: String,
        /// The target repository.
        repository: RepoName,
        /// The artifact.
        digest: Digest,
        /// Why the final decision failed.
        reason: String,
    },
    /// A channel tag was moved back to an earlier promoted digest.
    RolledBack {
        /// The repository.
        repository: RepoName,
        /// The channel tag.
        channel: Tag,
        /// The digest it pointed to.
        from: Digest,
        /// The digest it points to now.
        to: Digest,
        /// The rollback decision record id.
        decision: String,
    },
    /// A rollback was refused by the rollback gate.
    RollbackDenied {
        /// The repository.
        repository: RepoName,
        /// The channel tag.
        channel: Tag,
        /// The digest it would have moved to.
        to: Digest,
        /// The decision record id.
        decision: String,
        /// Violated rule ids.
        rules: Vec<String>,
    },
    /// A gated stage was frozen or unfrozen.
    StageFreezeChanged {
        /// The stage.
        stage: String,
        /// Frozen (true) or unfrozen.
        frozen: bool,
        /// Why.
        reason: String,
    },
    /// A policy bundle was loaded (at start or on reload).
    PolicyLoaded {
        /// Its digest.
        digest: String,
        /// Number of files.
        files: usize,
    },
    /// A public key was added to the keyring.
    KeyAdded {
        /// Hex SHA-256 of the key's SPKI DER.
        key_id: String,
        /// Its name.
        name: String,
        /// Its signature algorithm.
        algorithm: String,
        /// What it may vouch for (`sign`, `attest:<predicate type>`).
        purposes: Vec<String>,
        /// Repository path patterns it covers.
        scope: Vec<String>,
        /// Start of validity.
        not_before_millis: Option<i64>,
        /// End of validity.
        not_after_millis: Option<i64>,
    },
    /// A key was retired (its earlier signatures stay valid) or revoked.
    KeyStatusChanged {
        /// Hex SHA-256 of the key's SPKI DER.
        key_id: String,
        /// Its name.
        name: String,
        /// `retired` or `revoked`.
        status: String,
        /// Why.
        reason: String,
        /// Revoked because the private key is compromised: every signature it made is void.
        compromised: bool,
    },
    /// A key's purposes, scope or end of validity changed (`airlock keys update`).
    KeyUpdated {
        /// Hex SHA-256 of the key's SPKI DER.
        key_id: String,
        /// Its name.
        name: String,
        /// Its purposes before the change.
        purposes_before: Vec<String>,
        /// Its purposes after the change.
        purposes_after: Vec<String>,
        /// Its scope before the change.
        scope_before: Vec<String>,
        /// Its scope after the change.
        scope_after: Vec<String>,
        /// Its end of validity before the change.
        not_after_before_millis: Option<i64>,
        /// Its end of validity after the change.
        not_after_after_millis: Option<i64>,
    },
    /// One of airlock's own keys (the token signing key or the promotion attestation key) was
    /// replaced by a new one (`airlock keys rotate-server`).
    ServerKeyRotated {
        /// `token` or `attestation`.
        key: String,
        /// The id of the key that signed until now.
        old_key_id: String,
        /// The id of the key that signs from now on.
        new_key_id: String,
        /// Until when what the old key signed is still accepted (token key); `None` when the
        /// old public key stays published for verification without end (attestation key).
        old_accepted_until_millis: Option<i64>,
    },
    /// One of airlock's own keys was imported from the data directory's key file into the shared
    /// database, on the first start on PostgreSQL (the key, and so what it signed, stays valid).
    ServerKeyImported {
        /// `log`, `token` or `attestation`.
        key: String,
        /// The imported key's id.
        key_id: String,
        /// The file it came from (its name in the data directory).
        file: String,
    },
    /// airlock's keys stored in the shared database by a release before row MACs were given
    /// their MACs, once, at the first start after the upgrade (they are trusted as found).
    ServerKeyAuthenticated {
        /// How many stored keys (current and retired) were given a MAC.
        count: u64,
    },
    /// A signature or attestation arrived and was verified or rejected.
    EvidenceRecorded {
        /// Where it arrived.
        repository: RepoName,
        /// The artifact it is about.
        subject: Digest,
        /// The evidence item's digest.
        item: String,
        /// `cosign`, `dsse` or `sigstore-bundle`.
        format: String,
        /// `verified` or `rejected`.
        status: String,
        /// The signer, if identified.
        key_name: Option<String>,
        /// The predicate type, for attestations.
        predicate_type: Option<String>,
        /// Why it was rejected.
        reason: Option<String>,
    },
    /// A keyring change changed the verdict on stored evidence.
    EvidenceReverified {
        /// The repository path (without stage) the evidence belongs to.
        repository_path: String,
        /// The artifact it is about.
        subject: Digest,
        /// The evidence item's digest.
        item: String,
        /// The previous status.
        from: String,
        /// The new status.
        to: String,
        /// Why, if no longer verified.
        reason: Option<String>,
    },
    /// An artifact in a gated stage lost evidence to a compromised key: an alert.
    EvidenceRevoked {
        /// The gated repository holding the artifact.
        repository: RepoName,
        /// The artifact.
        digest: Digest,
        /// The compromised key's name.
        key_name: String,
        /// Why the key was revoked.
        reason: String,
    },
    /// A webhook endpoint was added or removed. The URL is recorded without its path and query
    /// (they often carry a token), with a SHA-256 of the whole URL to tell endpoints apart.
    WebhookChanged {
        /// The endpoint id.
        endpoint: i64,
        /// `scheme://host[:port]` of the URL.
        origin: String,
        /// Hex SHA-256 of the whole URL.
        url_sha256: String,
        /// The event patterns it subscribes to.
        events: Vec<String>,
        /// Added (true) or removed.
        added: bool,
    },
    /// An anomaly rule tripped: what it saw and the action airlock took (an alert).
    AnomalyDetected {
        /// The anomaly id.
        anomaly: i64,
        /// The rule.
        rule: AnomalyRule,
        /// What the rule counted per (`principal:alice`, `stage:prod`, ...).
        key: String,
        /// The action taken.
        action: AnomalyAction,
        /// Whether the action changed anything (a lock needs a known principal).
        applied: bool,
        /// What was observed.
        summary: String,
        /// What the anomaly is about.
        target: AnomalyTarget,
        /// Signals in the window when it tripped.
        observed: u32,
        /// The rule's threshold.
        threshold: u32,
        /// The rule's window, in seconds.
        window_secs: u64,
    },
    /// An anomaly was resolved by an access-admin, undoing its action.
    AnomalyResolved {
        /// The anomaly id.
        anomaly: i64,
        /// The rule.
        rule: AnomalyRule,
        /// The action undone.
        action: AnomalyAction,
        /// Why it was resolved.
        reason: String,
    },
    /// A garbage-collection run (`airlock gc`) deleted what no manifest references: one entry per
    /// run, with counts, never one per blob.
    GarbageCollected {
        /// Blobs whose rows and files were deleted.
        blobs: u64,
        /// Their bytes.
        bytes: u64,
        /// Files in the blob store without a row (left by a crash or a failed write) deleted.
        orphan_files: u64,
        /// Their bytes.
        orphan_bytes: u64,
        /// Staged upload objects no session will use, deleted.
        staged_objects: u64,
        /// Their bytes.
        staged_bytes: u64,
        /// Untagged manifests removed from push-stage repositories by `keep_untagged_days`.
        manifests_pruned: u64,
        /// The grace period the run kept younger blobs for, in seconds.
        grace_secs: u64,
        /// Why the run stopped before its end (the counts are what it did until then); `None`
        /// for a run that finished.
        error: Option<String>,
    },
    /// `airlock migrate-store` moved an embedded installation's metadata into this PostgreSQL
    /// database (and its blobs into `blob_store`): the first entry the target adds after the
    /// copied log.
    StoreMigrated {
        /// Tables copied.
        tables: u64,
        /// Rows copied, over every table.
        rows: u64,
        /// Blobs copied into the blob store (or found there already).
        blobs: u64,
        /// Their bytes.
        bytes: u64,
        /// Where the blobs now are (`s3://...`), or `None` when they stayed in the data directory.
        blob_store: Option<String>,
    },
}

impl AuditEvent {
    /// The event type, `<noun>.<verb>`, used to filter the log (e.g. `manifest.pushed`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BlobPushed { .. } => "blob.pushed",
            Self::ManifestPushed { .. } => "manifest.pushed",
            Self::TagMoved { .. } => "tag.moved",
            Self::TagDeleted { .. } => "tag.deleted",
            Self::ManifestDeleted { .. } => "manifest.deleted",
            Self::BlobDeleted { .. } => "blob.deleted",
            Self::PushRefused { .. } => "push.refused",
            Self::PrincipalCreated { .. } => "principal.created",
            Self::PrincipalDisabled { .. } => "principal.disabled",
            Self::PrincipalEnabled { .. } => "principal.enabled",
            Self::PasswordChanged { .. } => "password.changed",
            Self::PasswordReset { .. } => "password.reset",
            Self::CredentialCreated { .. } => "credential.created",
            Self::CredentialRevoked { .. } => "credential.revoked",
            Self::ApiKeyCreated { .. } => "credential.created",
            Self::ApiKeyRevoked { .. } => "credential.revoked",
            Self::DeployTokenIssued { .. } => "deploy_token.issued",
            Self::DeploymentReported { .. } => "deployment.reported",
            Self::CredentialExpiring { .. } => "credential.expiring",
            Self::CredentialExpired { .. } => "credential.expired",
            Self::RoleGranted { .. } => "role.granted",
            Self::RoleRevoked { .. } => "role.revoked",
            Self::AccessRequested { .. } => "access.requested",
            Self::AccessDecided { .. } => "access.decided",
            Self::AuthenticationFailed { .. } => "auth.failed",
            Self::SessionStarted { .. } => "session.started",
            Self::SessionEnded { .. } => "session.ended",
            Self::KeyAdded { .. } => "key.added",
            Self::KeyStatusChanged { status, .. } if status == "retired" => "key.retired",
            Self::KeyStatusChanged { .. } => "key.revoked",
            Self::KeyUpdated { .. } => "key.updated",
            Self::ServerKeyRotated { .. } => "server_key.rotated",
            Self::ServerKeyImported { .. } => "server_key.imported",
            Self::ServerKeyAuthenticated { .. } => "server_key.authenticated",
            Self::EvidenceRecorded { status, .. } if status == "verified" => "evidence.verified",
            Self::EvidenceRecorded { .. } => "evidence.rejected",
            Self::EvidenceReverified { .. } => "evidence.reverified",
            Self::EvidenceRevoked { .. } => "artifact.evidence_revoked",
            Self::PromotionDecided { state, .. } if state == "denied" => "promotion.denied",
            Self::PromotionDecided { state, .. } if state == "pending_approval" => {
                "promotion.pending"
            }
            Self::PromotionDecided { .. } => "promotion.allowed",
            Self::PromotionApproved { .. } => "promotion.approved",
            Self::Promoted { .. } => "promotion.promoted",
            Self::PromotionClosed { state, .. } if state == "expired" => "promotion.expired",
            Self::PromotionClosed { .. } => "promotion.cancelled",
            Self::PromotionReopened { .. } => "promotion.reopened",
            Self::PromotionRejected { .. } => "promotion.rejected",
            Self::RolledBack { .. } => "channel.rolled_back",
            Self::RollbackDenied { .. } => "channel.rollback_denied",
            Self::StageFreezeChanged { frozen: true, .. } => "stage.frozen",
            Self::StageFreezeChanged { .. } => "stage.unfrozen",
            Self::PolicyLoaded { .. } => "policy.loaded",
            Self::WebhookChanged { added: true, .. } => "webhook.added",
            Self::WebhookChanged { .. } => "webhook.removed",
            Self::AnomalyDetected { .. } => "anomaly.detected",
            Self::AnomalyResolved { .. } => "anomaly.resolved",
            Self::GarbageCollected { .. } => "gc.collected",
            Self::StoreMigrated { .. } => "store.migrated",
        }
    }

    /// Whether the event records something that happened or something that was refused.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::PushRefused { .. } | Self::AuthenticationFailed { .. } => Outcome::Denied,
            Self::EvidenceRecorded { status, .. } if status != "verified" => Outcome::Denied,
            Self::PromotionDecided { state, .. } if state == "denied" => Outcome::Denied,
            Self::RollbackDenied { .. } => Outcome::Denied,
            _ => Outcome::Success,
        }
    }

    /// The thing the event is about, as the JSON object (with a `kind`) its entry records.
    pub fn subject_json(&self) -> Value {
        self.subject()
    }

    /// The digest the event's subject names (an artifact, a promotion's artifact, a blob), as
    /// its entry records it in `subject.digest`; `None` for subjects without one.
    pub fn subject_digest(&self) -> Option<String> {
        match self.subject() {
            Value::Object(mut subject) => match subject.remove("digest") {
                Some(Value::String(digest)) => Some(digest),
                _ => None,
            },
            _ => None,
        }
    }

    /// The thing the event is about, as a JSON object with a `kind`.
    fn subject(&self) -> Value {
        match self {
            Self::BlobPushed {
                repository, digest, ..
            }
            | Self::BlobDeleted { repository, digest } => {
                json!({"kind": "blob", "repository": repository.as_str(), "digest": digest})
            }
            Self::ManifestPushed {
                repository, digest, ..
            }
            | Self::ManifestDeleted { repository, digest } => {
                json!({"kind": "artifact", "repository": repository.as_str(), "digest": digest})
            }
            Self::TagMoved {
                repository, tag, ..
            }
            | Self::TagDeleted {
                repository, tag, ..
            } => json!({"kind": "tag", "repository": repository.as_str(), "tag": tag.as_str()}),
            Self::PushRefused { repository, .. } => {
                json!({"kind": "repository", "repository": repository.as_str()})
            }
            Self::PrincipalCreated { principal, .. }
            | Self::PrincipalDisabled { principal }
            | Self::PrincipalEnabled { principal }
            | Self::PasswordChanged { principal }
            | Self::PasswordReset { principal, .. }
            | Self::CredentialCreated { principal, .. }
            | Self::CredentialRevoked { principal, .. }
            | Self::ApiKeyCreated { principal, .. }
            | Self::ApiKeyRevoked { principal, .. }
            | Self::DeployTokenIssued { principal, .. }
            | Self::CredentialExpiring { principal, .. }
            | Self::CredentialExpired { principal, .. }
            | Self::RoleGranted { principal, .. }
            | Self::RoleRevoked { principal, .. }
            | Self::AuthenticationFailed { principal, .. }
            | Self::SessionStarted { principal }
            | Self::SessionEnded { principal } => {
                json!({"kind": "principal", "name": principal})
            }
            Self::AccessRequested { request, .. } | Self::AccessDecided { request, .. } => {
                json!({"kind": "access_request", "id": request})
            }
            Self::DeploymentReported {
                environment,
                workload,
                ..
            } => json!({"kind": "deployment", "environment": environment, "workload": workload}),
            Self::KeyAdded { key_id, name, .. }
            | Self::KeyStatusChanged { key_id, name, .. }
            | Self::KeyUpdated { key_id, name, .. } => {
                json!({"kind": "key", "id": key_id, "name": name})
            }
            Self::ServerKeyRotated {
                key, new_key_id, ..
            } => json!({"kind": "server_key", "id": new_key_id, "name": key}),
            Self::ServerKeyImported { key, key_id, .. } => {
                json!({"kind": "server_key", "id": key_id, "name": key})
            }
            Self::ServerKeyAuthenticated { .. } => json!({"kind": "server_key"}),
            Self::EvidenceRecorded {
                repository,
                subject,
                ..
            } => json!({"kind": "artifact", "repository": repository.as_str(), "digest": subject}),
            Self::EvidenceReverified {
                repository_path,
                subject,
                ..
            } => json!({"kind": "artifact", "repository_path": repository_path, "digest": subject}),
            Self::EvidenceRevoked {
                repository, digest, ..
            } => json!({"kind": "artifact", "repository": repository.as_str(), "digest": digest}),
            Self::PromotionDecided {
                promotion,
                repository,
                digest,
                ..
            }
            | Self::PromotionApproved {
                promotion,
                repository,
                digest,
                ..
            }
            | Self::Promoted {
                promotion,
                repository,
                digest,
                ..
            }
            | Self::PromotionClosed {
                promotion,
                repository,
                digest,
                ..
            }
            | Self::PromotionReopened {
                promotion,
                repository,
                digest,
                ..
            }
            | Self::PromotionRejected {
                promotion,
                repository,
                digest,
                ..
            } => {
                json!({"kind": "promotion", "id": promotion, "repository": repository.as_str(), "digest": digest})
            }
            Self::RolledBack {
                repository,
                channel,
                ..
            }
            | Self::RollbackDenied {
                repository,
                channel,
                ..
            } => json!({"kind": "tag", "repository": repository.as_str(), "tag": channel.as_str()}),
            Self::StageFreezeChanged { stage, .. } => json!({"kind": "stage", "name": stage}),
            Self::PolicyLoaded { digest, .. } => json!({"kind": "policy", "digest": digest}),
            Self::WebhookChanged { endpoint, .. } => json!({"kind": "webhook", "id": endpoint}),
            Self::AnomalyDetected { anomaly, rule, .. }
            | Self::AnomalyResolved { anomaly, rule, .. } => {
                json!({"kind": "anomaly", "id": anomaly, "rule": rule.as_str()})
            }
            Self::GarbageCollected { .. } | Self::StoreMigrated { .. } => {
                json!({"kind": "registry"})
            }
        }
    }

    /// Event-specific facts beyond the subject.
    fn details(&self) -> Value {
        match self {
            Self::BlobPushed {
                size, mounted_from, ..
            } => {
                let mut details = json!({"size": size});
                if let Some(from) = mounted_from {
                    details["mounted_from"] = json!(from.as_str());
                }
                details
            }
            Self::ManifestPushed {
                media_type,
                artifact_type,
                subject,
                ..
            } => {
                let mut details = json!({"media_type": media_type});
                if let Some(artifact_type) = artifact_type {
                    details["artifact_type"] = json!(artifact_type);
                }
                if let Some(subject) = subject {
                    details["subject"] = json!(subject);
                }
                details
            }
            Self::TagMoved {
                digest, previous, ..
            } => json!({"digest": digest, "previous": previous}),
            Self::TagDeleted { digest, .. } => json!({"digest": digest}),
            Self::ManifestDeleted { .. } | Self::BlobDeleted { .. } => json!({}),
            Self::PushRefused { action, reason, .. } => {
                json!({"action": action.as_str(), "reason": reason})
            }
            Self::PrincipalCreated { kind, .. } => json!({"kind": kind}),
            Self::PrincipalDisabled { .. }
            | Self::PrincipalEnabled { .. }
            | Self::PasswordChanged { .. } => json!({}),
            Self::PasswordReset { generated, .. } => {
                json!({"generated": generated, "must_change": true})
            }
            Self::CredentialCreated {
                credential,
                id,
                expires_at_millis,
                ..
            } => {
                json!({"credential": credential, "id": id, "expires": expires_at_millis.map(rfc3339_millis)})
            }
            Self::CredentialRevoked { id, .. } => json!({"id": id}),
            Self::ApiKeyCreated {
                id,
                name,
                expires_at_millis,
                ..
            } => json!({"credential": "api_key", "id": id, "name": name,
                        "expires": rfc3339_millis(*expires_at_millis)}),
            Self::DeploymentReported {
                stage,
                images,
                unpromoted,
                ..
            } => json!({"stage": stage, "images": images, "unpromoted": unpromoted}),
            Self::DeployTokenIssued {
                id,
                repositories,
                expires_at_millis,
                ..
            } => json!({"id": id, "repositories": repositories,
                        "expires": rfc3339_millis(*expires_at_millis)}),
            Self::ApiKeyRevoked { id, name, .. } => {
                json!({"credential": "api_key", "id": id, "name": name})
            }
            Self::CredentialExpiring {
                id,
                name,
                expires_at_millis,
                days,
                ..
            } => json!({"credential": "api_key", "id": id, "name": name,
                        "expires": rfc3339_millis(*expires_at_millis), "days": days}),
            Self::CredentialExpired {
                id,
                name,
                expires_at_millis,
                ..
            } => json!({"credential": "api_key", "id": id, "name": name,
                        "expires": rfc3339_millis(*expires_at_millis)}),
            Self::RoleGranted {
                role,
                scope,
                expires_at_millis,
                access_request,
                ..
            } => {
                json!({"role": role, "scope": scope, "expires": expires_at_millis.map(rfc3339_millis), "access_request": access_request})
            }
            Self::RoleRevoked { role, scope, .. } => json!({"role": role, "scope": scope}),
            Self::AccessRequested {
                principal,
                role,
                scope,
                duration_secs,
                reason,
                ..
            } => {
                json!({"principal": principal, "role": role, "scope": scope, "duration_secs": duration_secs, "reason": reason})
            }
            Self::AccessDecided {
                principal,
                decision,
                ..
            } => json!({"principal": principal, "decision": decision}),
            Self::AuthenticationFailed { reason, .. } => json!({"reason": reason}),
            Self::SessionStarted { .. } | Self::SessionEnded { .. } => json!({}),
            Self::KeyAdded {
                algorithm,
                purposes,
                scope,
                not_before_millis,
                not_after_millis,
                ..
            } => json!({"algorithm": algorithm, "purposes": purposes, "scope": scope,
                        "not_before": not_before_millis.map(rfc3339_millis),
                        "not_after": not_after_millis.map(rfc3339_millis)}),
            Self::KeyStatusChanged {
                reason,
                compromised,
                ..
            } => json!({"reason": reason, "compromised": compromised}),
            Self::KeyUpdated {
                purposes_before,
                purposes_after,
                scope_before,
                scope_after,
                not_after_before_millis,
                not_after_after_millis,
                ..
            } => json!({
                "before": {"purposes": purposes_before, "scope": scope_before,
                           "not_after": not_after_before_millis.map(rfc3339_millis)},
                "after": {"purposes": purposes_after, "scope": scope_after,
                          "not_after": not_after_after_millis.map(rfc3339_millis)},
            }),
            Self::ServerKeyRotated {
                old_key_id,
                new_key_id,
                old_accepted_until_millis,
                ..
            } => json!({"old_key_id": old_key_id, "new_key_id": new_key_id,
                        "old_accepted_until": old_accepted_until_millis.map(rfc3339_millis)}),
            Self::ServerKeyImported { file, .. } => json!({"file": file}),
            Self::ServerKeyAuthenticated { count } => json!({"count": count}),
            Self::EvidenceRecorded {
                item,
                format,
                key_name,
                predicate_type,
                reason,
                ..
            } => json!({"item": item, "format": format, "key": key_name,
                        "predicate_type": predicate_type, "reason": reason}),
            Self::EvidenceReverified {
                item,
                from,
                to,
                reason,
                ..
            } => json!({"item": item, "from": from, "to": to, "reason": reason}),
            Self::EvidenceRevoked {
                key_name, reason, ..
            } => json!({"alert": true, "key": key_name, "reason": reason}),
            Self::PromotionDecided {
                decision,
                policy,
                rules,
                approvals_required,
                ..
            } => json!({"decision": decision, "policy": policy, "rules": rules,
                        "approvals_required": approvals_required}),
            Self::PromotionApproved { comment, .. } => json!({"comment": comment}),
            Self::Promoted {
                source,
                tags,
                attestation,
                break_glass,
                ..
            } => {
                let mut details =
                    json!({"source": source.as_str(), "tags": tags, "attestation": attestation});
                if let Some(reason) = break_glass {
                    details["break_glass"] = json!(reason);
                    details["alert"] = json!(true);
                }
                details
            }
            Self::PromotionClosed { .. } => json!({}),
            Self::PromotionRejected {
                reason, decision, ..
            } => json!({"reason": reason, "decision": decision}),
            Self::PromotionReopened { reason, .. } => json!({"reason": reason}),
            Self::RolledBack {
                from, to, decision, ..
            } => {
                json!({"from": from, "to": to, "decision": decision})
            }
            Self::RollbackDenied {
                to,
                decision,
                rules,
                ..
            } => json!({"to": to, "decision": decision, "rules": rules}),
            Self::StageFreezeChanged { reason, .. } => json!({"reason": reason}),
            Self::PolicyLoaded { files, .. } => json!({"files": files}),
            Self::AnomalyDetected {
                key,
                action,
                applied,
                summary,
                target,
                observed,
                threshold,
                window_secs,
                ..
            } => json!({"alert": true, "key": key, "action": action.as_str(), "applied": applied,
                "summary": summary, "target": target, "observed": observed,
                "threshold": threshold, "window_secs": window_secs}),
            Self::AnomalyResolved { action, reason, .. } => {
                json!({"action": action.as_str(), "reason": reason})
            }
            Self::WebhookChanged {
                origin,
                url_sha256,
                events,
                ..
            } => json!({"origin": origin, "url_sha256": url_sha256, "events": events}),
            Self::GarbageCollected {
                blobs,
                bytes,
                orphan_files,
                orphan_bytes,
                staged_objects,
                staged_bytes,
                manifests_pruned,
                grace_secs,
                error,
            } => {
                let mut details = json!({"blobs": blobs, "bytes": bytes,
                    "orphan_files": orphan_files, "orphan_bytes": orphan_bytes,
                    "staged_objects": staged_objects, "staged_bytes": staged_bytes,
                    "manifests_pruned": manifests_pruned, "grace_secs": grace_secs});
                if let Some(error) = error {
                    details["error"] = json!(error);
                }
                details
            }
            Self::StoreMigrated {
                tables,
                rows,
                blobs,
                bytes,
                blob_store,
            } => json!({"tables": tables, "rows": rows, "blobs": blobs, "bytes": bytes,
                        "blob_store": blob_store}),
        }
    }
}

/// One audit log entry before it is written: when, who, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened, in milliseconds since the Unix epoch (UTC).
    pub time_millis: i64,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub event: AuditEvent,
}

impl AuditRecord {
    /// The entry as canonical JSON (RFC 8785): sorted keys, no insignificant whitespace, so the
    /// same record always yields the same bytes and the same Merkle leaf.
    pub fn canonical_json(&self) -> Vec<u8> {
        let value = json!({
            "v": ENTRY_FORMAT_VERSION,
            "type": self.event.kind(),
            "time": rfc3339_millis(self.time_millis),
            "actor": self.actor,
            "subject": self.event.subject(),
            "outcome": self.event.outcome(),
            "details": self.event.details(),
        });
        // Serialising a JSON value without floats cannot fail; fall back to serde_json's compact
        // (also key-sorted) form rather than panic if it ever did.
        serde_jcs::to_vec(&value).unwrap_or_else(|_| value.to_string().into_bytes())
    }
}

/// `2026-11-25T18:04:41.123Z`.
pub fn rfc3339_millis(time_millis: i64) -> String {
    let nanos = i128::from(time_millis) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => format!("@{time_millis}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            time_millis: 1_795_629_205_652,
            actor: Actor::anonymous(Some("127.0.0.1:5555".into())),
            event: AuditEvent::TagMoved {
                repository: "dev/team/app".parse().unwrap(),
                tag: "1.0".parse().unwrap(),
                digest: Digest::sha256_of(b"new"),
                previous: None,
            },
        }
    }

    #[test]
    fn canonical_json_is_sorted_compact_and_stable() {
        let bytes = record().canonical_json();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"actor":{"auth_method":"anonymous","principal":"anonymous","source":"127.0.0.1:5555"},"details":{"digest":"sha256:"#), "{text}");
        assert!(
            text.contains(r#""time":"2026-11-25T17:53:25.652Z","type":"tag.moved","v":1}"#),
            "{text}"
        );
        assert!(!text.contains(' ') && !text.contains('\n'));
        assert_eq!(record().canonical_json(), bytes);
    }

    #[test]
    fn refusals_are_denied_outcomes() {
        let event = AuditEvent::PushRefused {
            repository: "prod/team/app".parse().unwrap(),
            action: Action::Push,
            reason: "gated".into(),
        };
        assert_eq!(event.outcome(), Outcome::Denied);
        assert_eq!(event.kind(), "push.refused");
    }
}
