//! airlock's domain model, free of I/O.
//!
//! Everything a request names is parsed into a type here before any storage or policy code sees it:
//! [`Digest`], [`RepoName`], [`StageName`], [`Tag`], [`Reference`]. The stage rules (which stage accepts
//! pushes, which tags are immutable) live in [`stage`], and manifest parsing (which blobs and manifests
//! a manifest references, its subject and artifact type) in [`manifest`].
//! Deploy-time inputs are parsed here too: image references as deployments write them
//! ([`image_ref`]) and the images a Kubernetes workload would run ([`workload`]).
#![forbid(unsafe_code)]

pub mod access;
pub mod address;
pub mod anomaly;
pub mod api_key;
pub mod audit;
pub mod client_address;
pub mod digest;
pub mod error;
pub mod image_ref;
pub mod manifest;
pub mod name;
pub mod promotion;
#[cfg(feature = "sqlx")]
mod sql;
pub mod stage;
pub mod webhook;
pub mod workload;

pub use access::{
    AccessRuleViolation, Action, ExclusivePair, Grant, GrantedAccess, Permission, PermissionTarget,
    RequestedScope, RequestedScopeError, Role, Scope, ScopeError, UnknownRole,
};
pub use anomaly::{AllowedHours, AnomalyAction, AnomalyRule, AnomalyTarget, Signal};
pub use audit::{Actor, AuditEvent, AuditRecord, Outcome};
pub use client_address::{IpBlock, TrustedProxies};
pub use digest::{Digest, DigestAlgorithm, Digester};
pub use error::Error;
pub use image_ref::{ImageRef, ImageRefError};
pub use manifest::{DeclaredSize, DescriptorField, Layer, ManifestKind, ParsedManifest};
pub use name::{Reference, RepoName, StageName, Tag};
pub use promotion::{ApprovalRefusal, PromotionParties, PromotionState, Vouchers};
pub use stage::{StageConfig, StageMode, Stages};
pub use workload::{ContainerImage, WorkloadError};
