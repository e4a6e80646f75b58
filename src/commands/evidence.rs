//! `airlock keys`, `sign`, `attest` and `evidence`: the keyring, cosign-compatible signing without
//! cosign, and what airlock knows about an artifact.
//!
//! Signing happens here, in the CLI, with the user's private key; the server never sees it. What
//! `sign` and `attest` push is what cosign pushes: a simple-signing payload with the signature in
//! the `dev.cosignproject.cosign/signature` layer annotation (tag `sha256-<hex>.sig`), or a DSSE
//! envelope around an in-toto statement (tag `sha256-<hex>.att`); `--referrer` pushes an OCI 1.1
//! referrer instead.

use std::path::{Path, PathBuf};

use airlock_api::evidence::{
    AddKeyRequest, Artifact, EvidenceItem, EvidenceList, Key, KeyStatusRequest, Keyring,
    UpdateKeyRequest,
};
use airlock_trust::cosign::{self, SimpleSigningPayload, TagSchemeKind};
use airlock_trust::dependencies::DependencyHealth;
use airlock_trust::facts::Facts;
use airlock_trust::intoto::{ResourceDescriptor, Statement};
use airlock_trust::keys::{self, SigningKey};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::ApiClient;
use crate::commands::common::{Common, print_as};
use crate::commands::pages::read_pages;
use crate::oci_client::{ArtifactRef, OciClient, sha256_digest};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// `airlock keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a cosign-compatible key pair (`<prefix>.key`, encrypted with $COSIGN_PASSWORD, and
    /// `<prefix>.pub`).
    Generate {
        /// File name prefix.
        #[arg(long, default_value = "cosign")]
        output_key_prefix: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Add a trusted public key to the keyring (key-admin).
    Add(AddKeyArgs),
    /// List the keyring.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Print airlock's promotion attestation public key (for `cosign verify-attestation --key`).
    ExportAttestationKey {
        #[command(flatten)]
        common: Common,
    },
    /// Change what a key may vouch for: purposes, scope, end of validity (key-admin whose scope
    /// covers the key). Evidence the change affects is verified again at once.
    Update(UpdateKeyArgs),
    /// Replace one of airlock's own keys: `token` (token signing key) or `attestation`
    /// (promotion attestation key); `log` is refused (see docs/operations.md) (key-admin).
    RotateServer(RotateServerArgs),
    /// Retire a key: signatures seen so far stay valid, new ones are refused.
    Retire {
        /// The key's name.
        name: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke a key; with --compromised every signature it ever made becomes void.
    Revoke {
        /// The key's name.
        name: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// The private key leaked: void everything it signed and flag affected artifacts.
        #[arg(long)]
        compromised: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock keys add`.
#[derive(Debug, Args)]
pub struct AddKeyArgs {
    /// A name for the key (letters, digits, '-', '_', '.').
    name: String,
    /// The public key (PEM), e.g. cosign.pub.
    #[arg(long, conflicts_with = "key")]
    public_key: Option<PathBuf>,
    /// Or a private key file (cosign.key, $COSIGN_PASSWORD) to take the public key from.
    #[arg(long)]
    key: Option<PathBuf>,
    /// What the key may vouch for: `sign`, or `attest:<predicate type>` (repeatable).
    #[arg(long = "purpose", required = true)]
    purposes: Vec<String>,
    /// Repository paths it covers, without the stage: `team/*`, `team/app`, `*` (repeatable).
    #[arg(long = "scope", required = true)]
    scope: Vec<String>,
    /// Start of validity (RFC 3339).
    #[arg(long)]
    not_before: Option<String>,
    /// End of validity (RFC 3339).
    #[arg(long)]
    not_after: Option<String>,
    /// Signature algorithm for RSA keys signed with PSS (`rsa-pss-sha256`).
    #[arg(long)]
    algorithm: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `airlock keys update`.
#[derive(Debug, Args)]
pub struct UpdateKeyArgs {
    /// The key's name.
    name: String,
    /// A purpose to add: `sign`, or `attest:<predicate type>` (repeatable).
    #[arg(long = "add-purpose")]
    add_purposes: Vec<String>,
    /// A purpose to remove (repeatable).
    #[arg(long = "remove-purpose")]
    remove_purposes: Vec<String>,
    /// The new scope, replacing the old one: `team/*`, `team/app`, `*` (repeatable).
    #[arg(long = "scope")]
    scope: Vec<String>,
    /// The new end of validity (RFC 3339, e.g. 2027-12-31T23:59:59Z).
    #[arg(long)]
    not_after: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `airlock keys rotate-server`.
#[derive(Debug, Args)]
pub struct RotateServerArgs {
    /// Which key: `token` or `attestation` (`log` is refused: a new log key is a new log).
    key: String,
    /// Token key: how long tokens signed by the old key stay valid, e.g. 10m, 7d (default: the
    /// refresh-token lifetime, so no login ends).
    #[arg(long)]
    overlap: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `airlock sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The artifact: HOST/stage/repo@sha256:... (or :tag).
    reference: String,
    /// The private key (cosign.key; passphrase from $COSIGN_PASSWORD).
    #[arg(long)]
    key: PathBuf,
    /// Push an OCI 1.1 referrer instead of the `sha256-<hex>.sig` tag.
    #[arg(long)]
    referrer: bool,
    #[command(flatten)]
    common: Common,
}

/// `airlock attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The artifact: HOST/stage/repo@sha256:... (or :tag).
    reference: String,
    /// The private key (cosign.key; passphrase from $COSIGN_PASSWORD).
    #[arg(long)]
    key: PathBuf,
    /// Predicate type URI, or a cosign shorthand (slsaprovenance1, cyclonedx, spdxjson, vuln, ...).
    #[arg(long = "type")]
    predicate_type: String,
    /// The predicate, a JSON file.
    #[arg(long)]
    predicate: PathBuf,
    /// Push an OCI 1.1 referrer instead of the `sha256-<hex>.att` tag.
    #[arg(long)]
    referrer: bool,
    #[command(flatten)]
    common: Common,
}

/// `airlock evidence`.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// The artifact: HOST/stage/repo@sha256:... (or :tag).
    reference: String,
    #[command(flatten)]
    common: Common,
}

/// Reads `COSIGN_PASSWORD` as cosign does (unset: refuse rather than prompt, since the CLI is
/// used from scripts).
fn cosign_password() -> Result<Vec<u8>> {
    match std::env::var("COSIGN_PASSWORD") {
        Ok(password) => Ok(password.into_bytes()),
        Err(_) => bail!(
            "set COSIGN_PASSWORD to the key's passphrase (an empty value for a key without one)"
        ),
    }
}

fn load_private_key(path: &Path) -> Result<SigningKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let password = cosign_password()?;
    keys::decrypt_cosign_private_key(&pem, &password)
        .map_err(|e| anyhow!("cannot load {}: {e}", path.display()))
}

fn write_new_file(path: &Path, content: &str, mode: u32, force: bool) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!("{} exists; pass --force to overwrite it", path.display())
        } else {
            anyhow!("cannot write {}: {e}", path.display())
        }
    })?;
    // The mode given to `open` applies only when it creates the file: an overwritten file
    // (--force) gets it here, before the content is written, so a private key never sits in a
    // file others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| anyhow!("cannot set the mode of {}: {e}", path.display()))?;
    }
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// `airlock keys ...`.
pub async fn keys(command: KeysCommand) -> Result<u8> {
    match command {
        KeysCommand::Generate {
            output_key_prefix,
            force,
        } => {
            let password = cosign_password()?;
            let key = SigningKey::generate_p256();
            let encrypted = keys::encrypt_cosign_private_key(&key, &password)
                .map_err(|e| anyhow!("cannot encrypt the key: {e}"))?;
            let private_path = PathBuf::from(format!("{output_key_prefix}.key"));
            let public_path = PathBuf::from(format!("{output_key_prefix}.pub"));
            write_new_file(&private_path, &encrypted, 0o600, force)?;
            write_new_file(&public_path, &key.public_key().to_pem(), 0o644, force)?;
            eprintln!(
                "private key written to {}\npublic key written to {}",
                private_path.display(),
                public_path.display()
            );
        }
        KeysCommand::Add(args) => {
            let public_key = match (&args.public_key, &args.key) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, Some(path)) => load_private_key(path)?.public_key().to_pem(),
                (None, None) => bail!("give the key with --public-key FILE (or --key cosign.key)"),
            };
            let client = args.common.connect().await?;
            let request = AddKeyRequest {
                name: args.name,
                public_key,
                algorithm: args.algorithm,
                purposes: args.purposes,
                scope: args.scope,
                not_before: args.not_before,
                not_after: args.not_after,
            };
            let key: Key = client.post_as("/api/v1/keys", &request).await?;
            print_as(&args.common, &key, |k| {
                format!("added key {} ({}, id {})", k.name, k.algorithm, k.key_id)
            });
        }
        KeysCommand::List { common } => {
            let client = common.connect().await?;
            let list: Keyring = read_pages(&client, "/api/v1/keys", None).await?;
            print_as(&common, &list, |v| {
                if v.keys.is_empty() {
                    return "the keyring is empty: add a key with `airlock keys add`".into();
                }
                v.keys
                    .iter()
                    .map(|k| {
                        let status = if k.status == "revoked" && k.compromised {
                            "revoked (compromised)".to_string()
                        } else {
                            k.status.clone()
                        };
                        format!(
                            "{:<20} {:<22} {:<18} purposes: {}  scope: {}  id: {}",
                            k.name,
                            status,
                            k.algorithm,
                            k.purposes.join(","),
                            k.scope.join(","),
                            k.key_id.get(..12).unwrap_or(&k.key_id)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::ExportAttestationKey { common } => {
            let client = common.connect().await?;
            print!("{}", client.get_text("/api/v1/attestation-key").await?);
        }
        KeysCommand::Update(args) => {
            if args.add_purposes.is_empty()
                && args.remove_purposes.is_empty()
                && args.scope.is_empty()
                && args.not_after.is_none()
            {
                bail!(
                    "nothing to change: give --add-purpose, --remove-purpose, --scope or --not-after"
                );
            }
            let request = UpdateKeyRequest {
                add_purposes: args.add_purposes,
                remove_purposes: args.remove_purposes,
                scope: (!args.scope.is_empty()).then_some(args.scope),
                not_after: args.not_after,
            };
            let client = args.common.connect().await?;
            let key: Key = client
                .patch_as(&format!("/api/v1/keys/{}", args.name), &request)
                .await?;
            print_as(&args.common, &key, |k| {
                format!(
                    "updated key {}: purposes: {}  scope: {}  not after: {}",
                    k.name,
                    k.purposes.join(","),
                    k.scope.join(","),
                    k.not_after.as_deref().unwrap_or("-"),
                )
            });
        }
        KeysCommand::RotateServer(args) => {
            let request = airlock_api::server_keys::RotateRequest {
                overlap_secs: match &args.overlap {
                    Some(overlap) => Some(crate::client::parse_duration(overlap)?),
                    None => None,
                },
            };
            let client = args.common.connect().await?;
            let rotated: airlock_api::server_keys::Rotation = client
                .post_as(
                    &format!("/api/v1/server-keys/{}/rotate", args.key),
                    &request,
                )
                .await?;
            print_as(&args.common, &rotated, |r| {
                let until = match &r.old_accepted_until {
                    Some(until) => format!("; what it signed is accepted until {until}"),
                    None => "; it stays published for verification".into(),
                };
                let notice = r
                    .notice
                    .as_ref()
                    .map(|n| format!("\nnotice: {n}"))
                    .unwrap_or_default();
                format!(
                    "rotated the {} key: {} -> {}{until}{notice}",
                    r.key, r.old_key_id, r.new_key_id,
                )
            });
        }
        KeysCommand::Retire {
            name,
            reason,
            common,
        } => {
            let client = common.connect().await?;
            let request = KeyStatusRequest {
                reason,
                compromised: false,
            };
            let key: Key = client
                .post_as(&format!("/api/v1/keys/{name}/retire"), &request)
                .await?;
            print_as(&common, &key, |_| {
                format!("retired {name}: signatures seen until now stay valid")
            });
        }
        KeysCommand::Revoke {
            name,
            reason,
            compromised,
            common,
        } => {
            let client = common.connect().await?;
            let request = KeyStatusRequest {
                reason,
                compromised,
            };
            let key: Key = client
                .post_as(&format!("/api/v1/keys/{name}/revoke"), &request)
                .await?;
            print_as(&common, &key, |_| {
                if compromised {
                    format!("revoked {name} as compromised: every signature it made is void")
                } else {
                    format!("revoked {name}: signatures seen from now on are refused")
                }
            });
        }
    }
    Ok(0)
}

/// Resolves the reference to the digest it names (reading the tag if it names one).
async fn resolve(client: &OciClient, target: &ArtifactRef) -> Result<(String, Value)> {
    let reference = target
        .digest
        .clone()
        .or_else(|| target.tag.clone())
        .unwrap_or_default();
    let manifest = client.manifest(&reference).await?.ok_or_else(|| {
        // Something that does not exist: exit 1 with the registry's code, as a 404 from the
        // API would.
        crate::client::ApiError {
            http_status: 404,
            exit: crate::client::exit_status_for(404),
            detail: airlock_api::ErrorDetail {
                code: "MANIFEST_UNKNOWN".into(),
                message: format!(
                    "{}/{}: no manifest {reference}",
                    target.host, target.repository
                ),
                remediation: "push the artifact first, or name a tag or digest it has".into(),
            },
        }
    })?;
    if let Some(digest) = &target.digest
        && digest != &manifest.digest
    {
        bail!("the registry served {} for {digest}", manifest.digest);
    }
    let descriptor = json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.content.len(),
    });
    Ok((manifest.digest, descriptor))
}

/// One signature or attestation layer to push.
struct EvidenceLayer<'a> {
    /// Signature or attestation (the `.sig` or `.att` tag).
    kind: TagSchemeKind,
    /// The payload or envelope.
    bytes: &'a [u8],
    /// Its media type.
    media_type: &'a str,
    /// Its layer annotations.
    annotations: Value,
}

/// Pushes one evidence layer the way cosign does: appended to the `sha256-<hex>.sig|.att` tag's
/// manifest (created if absent), or as an OCI 1.1 referrer. Returns (manifest digest, tag, layer
/// digest).
async fn push_evidence_layer(
    client: &OciClient,
    subject_digest: &str,
    subject_descriptor: &Value,
    evidence: EvidenceLayer<'_>,
    referrer: bool,
) -> Result<(String, Option<String>, String)> {
    let EvidenceLayer {
        kind,
        bytes: layer_bytes,
        media_type: layer_media_type,
        annotations,
    } = evidence;
    let layer_digest = client.upload_blob(layer_bytes).await?;
    let layer = json!({
        "mediaType": layer_media_type,
        "size": layer_bytes.len(),
        "digest": layer_digest,
        "annotations": annotations,
    });
    if referrer {
        let empty = client.upload_blob(b"{}").await?;
        let artifact_type = match kind {
            TagSchemeKind::Signature => cosign::SIGNATURE_ARTIFACT_TYPE,
            _ => cosign::ATTESTATION_ARTIFACT_TYPE,
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": empty},
            "layers": [layer],
            "subject": subject_descriptor,
        });
        let bytes = serde_json::to_vec(&manifest)?;
        let digest = sha256_digest(&bytes);
        client.put_manifest(&digest, OCI_MANIFEST, &bytes).await?;
        return Ok((digest, None, layer_digest));
    }
    let subject: airlock_core::Digest = subject_digest
        .parse()
        .map_err(|e| anyhow!("subject digest: {e}"))?;
    let tag = cosign::tag_scheme_tag(&subject, kind);
    let mut layers: Vec<Value> = match client.manifest(&tag).await? {
        Some(existing) => {
            let existing: Value = serde_json::from_slice(&existing.content)
                .context("the existing signature manifest is not JSON")?;
            existing["layers"].as_array().cloned().unwrap_or_default()
        }
        None => Vec::new(),
    };
    if layers
        .iter()
        .any(|l| l["digest"] == layer["digest"] && l["annotations"] == layer["annotations"])
    {
        let current = client
            .manifest(&tag)
            .await?
            .map(|m| m.digest)
            .unwrap_or_default();
        return Ok((current, Some(tag), layer_digest));
    }
    layers.push(layer);
    // The config lists the layers as an image config would, as cosign writes it.
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))?;
    let config_digest = client.upload_blob(&config).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": config_digest},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest)?;
    let digest = client.put_manifest(&tag, OCI_MANIFEST, &bytes).await?;
    Ok((digest, Some(tag), layer_digest))
}

/// `airlock sign`.
pub async fn sign(args: SignArgs) -> Result<u8> {
    let target = ArtifactRef::parse(&args.reference, &args.common.server)?;
    let key = load_private_key(&args.key)?;
    let client = OciClient::connect(&target).await?;
    let (digest, descriptor) = resolve(&client, &target).await?;
    let subject: airlock_core::Digest = digest.parse().map_err(|e| anyhow!("{e}"))?;
    let payload = SimpleSigningPayload::new(target.docker_reference(), subject);
    let (payload_bytes, signature) = airlock_trust::verify::sign_cosign_payload(&key, &payload);
    let (manifest, tag, layer) = push_evidence_layer(
        &client,
        &digest,
        &descriptor,
        EvidenceLayer {
            kind: TagSchemeKind::Signature,
            bytes: &payload_bytes,
            media_type: cosign::SIMPLE_SIGNING_MEDIA_TYPE,
            annotations: json!({ cosign::SIGNATURE_ANNOTATION: signature }),
        },
        args.referrer,
    )
    .await?;
    // The registry names a cosign signature by its payload blob and signature together.
    let item = sha256_digest(format!("{layer}\n{signature}").as_bytes());
    let pushed = Pushed {
        manifest,
        tag,
        item,
    };
    report(&args.common, &target, &digest, &pushed, "signature").await
}

/// `airlock attest`.
pub async fn attest(args: AttestArgs) -> Result<u8> {
    let target = ArtifactRef::parse(&args.reference, &args.common.server)?;
    let key = load_private_key(&args.key)?;
    let predicate_text = std::fs::read_to_string(&args.predicate)
        .with_context(|| format!("cannot read {}", args.predicate.display()))?;
    let predicate: Value = serde_json::from_str(&predicate_text)
        .with_context(|| format!("{} is not JSON", args.predicate.display()))?;
    let predicate_type = cosign::predicate_type_for(&args.predicate_type);
    let client = OciClient::connect(&target).await?;
    let (digest, descriptor) = resolve(&client, &target).await?;
    let hex = digest.trim_start_matches("sha256:").to_string();
    let statement = Statement::new_v1(
        vec![ResourceDescriptor {
            name: target.docker_reference(),
            digest: [("sha256".to_string(), hex)].into_iter().collect(),
        }],
        predicate_type.clone(),
        predicate,
    );
    let envelope = airlock_trust::verify::attest(&key, &statement);
    let (manifest, tag, item) = push_evidence_layer(
        &client,
        &digest,
        &descriptor,
        EvidenceLayer {
            kind: TagSchemeKind::Attestation,
            bytes: &envelope.to_json(),
            media_type: cosign::DSSE_MEDIA_TYPE,
            annotations: json!({
                cosign::SIGNATURE_ANNOTATION: "",
                cosign::PREDICATE_TYPE_ANNOTATION: predicate_type,
            }),
        },
        args.referrer,
    )
    .await?;
    let pushed = Pushed {
        manifest,
        tag,
        item,
    };
    report(&args.common, &target, &digest, &pushed, "attestation").await
}

/// What `sign` or `attest` pushed.
struct Pushed {
    /// The manifest carrying the evidence.
    manifest: String,
    /// Its tag (tag scheme) or `None` (referrer).
    tag: Option<String>,
    /// The evidence item's identity as the registry names it.
    item: String,
}

/// Prints what was pushed and the verdict the server recorded for it. The verdict is looked up by
/// item: signing the same content with the same key again (ECDSA here is deterministic) yields
/// the same item, which the registry recorded when it first arrived.
async fn report(
    common: &Common,
    target: &ArtifactRef,
    digest: &str,
    pushed: &Pushed,
    what: &str,
) -> Result<u8> {
    let (manifest, tag) = (&pushed.manifest, pushed.tag.as_deref());
    let api = ApiClient::connect(&target.server).await?;
    let evidence: EvidenceList = api
        .get_as(&format!(
            "/api/v1/artifacts/{}@{digest}/evidence",
            target.repository
        ))
        .await?;
    let mine: Vec<EvidenceItem> = evidence
        .evidence
        .into_iter()
        .filter(|e| e.item == pushed.item)
        .collect();
    let verified = mine.iter().any(|e| e.status == "verified");
    crate::commands::outcome::pending(if verified || mine.is_empty() {
        0
    } else {
        crate::client::DENIED
    });
    let result = PushReport {
        artifact: format!("{}@{digest}", target.docker_reference()),
        manifest,
        tag,
        evidence: &mine,
    };
    print_as(common, &result, |_| {
        let mut lines = vec![format!(
            "pushed {what} for {}@{digest} ({})",
            target.docker_reference(),
            tag.map(String::from)
                .unwrap_or_else(|| format!("referrer {manifest}"))
        )];
        for item in &mine {
            lines.push(evidence_line(item));
        }
        lines.join("\n")
    });
    if verified || mine.is_empty() {
        Ok(0)
    } else {
        // The server's reason names the fix: `airlock keys add` for an unknown signer,
        // `airlock keys update NAME ...` for a known key that lacks a purpose, scope or validity.
        let reason = mine
            .iter()
            .find_map(|e| e.reason.as_deref())
            .unwrap_or("no key in the keyring verifies it; add the signer's public key with `airlock keys add`");
        eprintln!("airlock: the registry did not verify it: {reason} (key-admin)");
        Ok(crate::client::DENIED)
    }
}

/// What `sign` and `attest` print with `--output json`.
#[derive(serde::Serialize)]
struct PushReport<'a> {
    /// `<host>/<repository>@<digest>`.
    artifact: String,
    /// The manifest carrying the evidence.
    manifest: &'a str,
    /// Its tag, for the tag scheme.
    tag: Option<&'a str>,
    /// The server's verdicts on the pushed item.
    evidence: &'a [EvidenceItem],
}

fn evidence_line(item: &EvidenceItem) -> String {
    let kind = item.kind.as_deref().unwrap_or(&item.format);
    let mut line = format!("  {:<9} {kind:<12}", item.status);
    if let Some(key) = &item.key_name {
        line.push_str(&format!(" key={key}"));
    }
    if let Some(predicate) = &item.predicate_type {
        line.push_str(&format!(" type={predicate}"));
    }
    if let Some(reason) = &item.reason {
        line.push_str(&format!("\n            reason: {reason}"));
    }
    if !item.facts.is_null() {
        line.push_str(&format!(
            "\n            facts: {}",
            facts_summary(&item.facts)
        ));
    }
    line
}

/// One line summarising derived facts (`airlock_trust::facts::Facts`, as the server stores them).
fn facts_summary(facts: &serde_json::Value) -> String {
    let count = |counts: &std::collections::BTreeMap<String, u64>, severity: &str| {
        counts
            .get(severity)
            .map_or_else(|| "null".to_string(), u64::to_string)
    };
    match serde_json::from_value::<Facts>(facts.clone()) {
        Ok(Facts::Provenance(p)) => format!(
            "builder {} source {} commit {}",
            p.builder_id,
            p.source_repository.as_deref().unwrap_or("-"),
            p.commit.as_deref().unwrap_or("-")
        ),
        Ok(Facts::Sbom(sbom)) => {
            let health = DependencyHealth::of(&sbom);
            format!(
                "{} components{}, licenses: {}{}",
                sbom.components.len(),
                match (health.direct, health.transitive) {
                    (Some(direct), Some(transitive)) =>
                        format!(" ({direct} direct, {transitive} transitive)"),
                    _ => String::new(),
                },
                sbom.licenses.join(","),
                match sbom.invalid_licenses.len() {
                    0 => String::new(),
                    n => format!(" ({n} invalid license expressions)"),
                }
            )
        }
        Ok(Facts::Vulnerabilities(v)) => format!(
            "critical {} high {} medium {} low {} unknown {}",
            count(&v.counts, "critical"),
            count(&v.counts, "high"),
            count(&v.counts, "medium"),
            count(&v.counts, "low"),
            count(&v.counts, "unknown")
        ),
        Ok(Facts::TestResult(t)) => format!(
            "{}: {} passed, {} warned, {} failed",
            t.result, t.passed, t.warned, t.failed
        ),
        Ok(Facts::Scorecard(s)) => format!(
            "scorecard {} for {}{}",
            s.score,
            s.repository.as_deref().unwrap_or("-"),
            s.checks
                .get("Maintained")
                .map_or_else(String::new, |score| format!(" (Maintained {score})"))
        ),
        Ok(Facts::None) | Err(_) => "-".into(),
    }
}

/// `airlock evidence`.
pub async fn evidence(args: EvidenceArgs) -> Result<u8> {
    let target = ArtifactRef::parse(&args.reference, &args.common.server)?;
    let api = ApiClient::connect(&target.server).await?;
    let digest = match &target.digest {
        Some(digest) => digest.clone(),
        None => {
            let client = OciClient::connect_read(&target).await?;
            resolve(&client, &target).await?.0
        }
    };
    let artifact: Artifact = api
        .get_as(&format!("/api/v1/artifacts/{}@{digest}", target.repository))
        .await?;
    print_as(&args.common, &artifact, |a| {
        let mut lines = vec![format!(
            "{}@{digest}\n  tags: {}",
            target.docker_reference(),
            match a.tags.join(",") {
                t if t.is_empty() => "-".into(),
                t => t,
            }
        )];
        for flag in &a.flags {
            lines.push(format!("  FLAG {}: {}", flag.flag, flag.reason));
        }
        if a.evidence.is_empty() {
            lines.push("  no signatures or attestations".into());
        }
        for item in &a.evidence {
            lines.push(evidence_line(item));
        }
        lines.join("\n")
    });
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_summary_names_the_scorecard_and_the_sbom_graph() {
        let scorecard = json!({
            "kind": "scorecard",
            "repository": "github.com/x/y",
            "commit": null,
            "date": "2026-08-01",
            "scorecard_version": "v5.2.1",
            "score": 7.4,
            "checks": {"Code-Review": 3, "Maintained": 10}
        });
        assert_eq!(
            facts_summary(&scorecard),
            "scorecard 7.4 for github.com/x/y (Maintained 10)"
        );

        let component = |name: &str, relationship: &str| {
            json!({"name": name, "version": "1.0.0", "purl": format!("pkg:npm/{name}@1.0.0"),
                   "license": "MIT", "relationship": relationship})
        };
        let mut sbom = json!({
            "kind": "sbom",
            "format": "spdx",
            "spec_version": "2.3",
            "components": [component("app", "root"), component("a", "direct"), component("b", "transitive")],
            "licenses": ["MIT"],
            "invalid_licenses": [],
            "dependency_graph": true
        });
        assert_eq!(
            facts_summary(&sbom),
            "3 components (1 direct, 1 transitive), licenses: MIT"
        );
        // Facts stored before the graph was read.
        if let Some(object) = sbom.as_object_mut() {
            object.remove("dependency_graph");
        }
        assert_eq!(facts_summary(&sbom), "3 components, licenses: MIT");
    }
}
