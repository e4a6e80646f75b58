use super::*;
use crate::{ConsistencyProof, LogKey, MemoryHashes, hashes_to_store, leaf_hash, tree_root};

const ORIGIN: &str = "airlock.test/audit";
const WITNESS: &str = "witness.test/w1";
const TIME: u64 = 1_765_000_000;

/// A log of `size` leaves `entry-0`, `entry-1`, ...: its stored hashes and root.
fn log_of(size: u64, prefix: &str) -> (MemoryHashes, Hash) {
    let mut hashes = MemoryHashes::new();
    for index in 0..size {
        let leaf = leaf_hash(format!("{prefix}-{index}").as_bytes());
        let new = hashes_to_store(index, &[leaf], &hashes).unwrap();
        hashes.extend(new);
    }
    let root = tree_root(size, &hashes).unwrap();
    (hashes, root)
}

fn signed(key: &LogKey, size: u64, root: &Hash) -> VerifiedCheckpoint {
    let note = key.sign_checkpoint(size, root).unwrap();
    crate::verify_checkpoint(&note, key.verifier_key()).unwrap()
}

#[test]
fn a_cosignature_verifies_beside_the_log_signature() {
    let log = LogKey::generate(ORIGIN).unwrap();
    let witness = WitnessKey::generate(WITNESS).unwrap();
    let note = log.sign_checkpoint(3, &log_of(3, "e").1).unwrap();
    let line = witness.cosign(&note, TIME).unwrap();
    let cosigned = format!("{note}{line}");

    let result = verify_cosigned_checkpoint(
        &cosigned,
        log.verifier_key(),
        &[witness.verifier_key().into()],
    )
    .unwrap();
    assert_eq!(result.checkpoint.size, 3);
    assert_eq!(result.cosignatures.len(), 1);
    assert_eq!(result.cosignatures[0].witness, WITNESS);
    assert_eq!(result.cosignatures[0].timestamp, TIME);
    assert_eq!(result.cosignatures[0].line, line);

    // Without the witness key the line is ignored, and the log signature alone still verifies.
    let alone = verify_cosigned_checkpoint(&cosigned, log.verifier_key(), &[]).unwrap();
    assert!(alone.cosignatures.is_empty());
}

#[test]
fn the_signature_line_has_the_c2sp_layout() {
    let witness = WitnessKey::generate(WITNESS).unwrap();
    let log = LogKey::generate(ORIGIN).unwrap();
    let note = log.sign_checkpoint(0, &Hash::EMPTY_TREE).unwrap();
    let line = witness.cosign(&note, TIME).unwrap();
    let encoded = line
        .strip_prefix(&format!("— {WITNESS} "))
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap();
    let bytes = BASE64_STANDARD.decode(encoded).unwrap();
    // key ID (4) || timestamp (8, big-endian) || Ed25519 signature (64)
    assert_eq!(bytes.len(), 4 + 8 + 64);
    let vkey_id = witness.verifier_key().split('+').nth(1).unwrap();
    assert_eq!(hex::encode(&bytes[..4]), vkey_id);
    assert_eq!(u64::from_be_bytes(bytes[4..12].try_into().unwrap()), TIME);
    // The verifier key carries the cosignature/v1 type byte.
    let material = BASE64_STANDARD
        .decode(witness.verifier_key().splitn(3, '+').nth(2).unwrap())
        .unwrap();
    assert_eq!(material[0], COSIGNATURE_V1_TYPE);
    assert_eq!(material.len(), 33);
}

#[test]
fn the_signed_message_is_the_header_time_line_and_body() {
    let witness = WitnessKey::generate(WITNESS).unwrap();
    let log = LogKey::generate(ORIGIN).unwrap();
    let note = log.sign_checkpoint(0, &Hash::EMPTY_TREE).unwrap();
    let line = witness.cosign(&note, TIME).unwrap();
    let bytes = BASE64_STANDARD
        .decode(line.trim_end().rsplit(' ').next().unwrap())
        .unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(&bytes[12..].try_into().unwrap());
    let body = note.split("\n\n").next().unwrap();
    let message = format!("cosignature/v1\ntime {TIME}\n{body}\n");
    witness
        .signing_key
        .verifying_key()
        .verify_strict(message.as_bytes(), &signature)
        .unwrap();
}

#[test]
fn an_altered_cosignature_or_checkpoint_is_refused() {
    let log = LogKey::generate(ORIGIN).unwrap();
    let witness = WitnessKey::generate(WITNESS).unwrap();
    let keys = [witness.verifier_key().to_owned()];
    let note = log.sign_checkpoint(3, &log_of(3, "e").1).unwrap();
    let line = witness.cosign(&note, TIME).unwrap();

    // The same line under a later time claim: the signature covers the time.
    let mut bytes = BASE64_STANDARD
        .decode(line.trim_end().rsplit(' ').next().unwrap())
        .unwrap();
    bytes[11] ^= 1;
    let forged = format!("— {WITNESS} {}\n", BASE64_STANDARD.encode(&bytes));
    let err = verify_cosigned_checkpoint(&format!("{note}{forged}"), log.verifier_key(), &keys)
        .unwrap_err();
    assert!(matches!(err, AuditError::CosignatureInvalid { ref witness } if witness == WITNESS));

    // The cosignature moved onto another checkpoint of the same log.
    let other = log.sign_checkpoint(4, &log_of(4, "e").1).unwrap();
    let err = verify_cosigned_checkpoint(&format!("{other}{line}"), log.verifier_key(), &keys)
        .unwrap_err();
    assert!(matches!(err, AuditError::CosignatureInvalid { .. }));

    // A cosignature is no substitute for the log's own signature.
    let body_only = format!("{}\n{line}", note.split("\n\n").next().unwrap());
    assert!(verify_cosigned_checkpoint(&body_only, log.verifier_key(), &keys).is_err());
}

#[test]
fn keys_round_trip_and_log_keys_are_not_witness_keys() {
    let witness = WitnessKey::generate(WITNESS).unwrap();
    let reloaded =
        WitnessKey::from_private_text(&format!(" {}\n", witness.private_text())).unwrap();
    assert_eq!(reloaded.verifier_key(), witness.verifier_key());
    assert_eq!(witness_key_name(witness.verifier_key()).unwrap(), WITNESS);
    assert!(!format!("{witness:?}").contains("PRIVATE"));

    let log = LogKey::generate(ORIGIN).unwrap();
    assert!(matches!(
        witness_key_name(log.verifier_key()),
        Err(AuditError::MalformedWitnessKey { .. })
    ));
    assert!(WitnessKey::from_private_text(log.private_text()).is_err());
    // A key ID that does not match the key.
    let mut fields: Vec<&str> = witness.verifier_key().split('+').collect();
    fields[1] = "00000000";
    assert!(witness_key_name(&fields.join("+")).is_err());
}

#[test]
fn requests_round_trip_and_malformed_ones_are_named() {
    let log = LogKey::generate(ORIGIN).unwrap();
    let note = log.sign_checkpoint(3, &log_of(3, "e").1).unwrap();
    let request = AddCheckpoint {
        old_size: 2,
        proof: vec![leaf_hash(b"a"), leaf_hash(b"b")],
        checkpoint: note.clone(),
    };
    let body = request.to_body();
    assert!(body.starts_with("old 2\n"));
    assert_eq!(AddCheckpoint::parse(body.as_bytes()).unwrap(), request);

    let empty = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: note.clone(),
    };
    assert!(empty.to_body().starts_with("old 0\n\n"));
    assert_eq!(
        AddCheckpoint::parse(empty.to_body().as_bytes()).unwrap(),
        empty
    );

    let proof_line = format!("{}\n", BASE64_STANDARD.encode([7u8; 32]));
    let cases: Vec<(String, &str)> = vec![
        (format!("old 02\n\n{note}"), "leading zeroes"),
        (format!("old -1\n\n{note}"), "decimal size"),
        (format!("new 2\n\n{note}"), "first line must be `old`"),
        ("old 2".into(), "no old size line"),
        (
            format!("old 2\n{proof_line}"),
            "not followed by an empty line",
        ),
        (format!("old 2\n!!\n\n{note}"), "not base64"),
        (format!("old 2\nAAAA\n\n{note}"), "not a 32-byte hash"),
        (
            format!("old 2\n{}\n{note}", proof_line.repeat(64)),
            "more than 63",
        ),
        (
            "x".repeat(MAX_ADD_CHECKPOINT_BYTES + 1),
            "larger than 64 KiB",
        ),
    ];
    for (body, reason) in cases {
        match AddCheckpoint::parse(body.as_bytes()) {
            Err(AuditError::MalformedWitnessRequest { reason: got }) => {
                assert!(got.contains(reason), "{got:?} should name {reason:?}")
            }
            other => panic!("{body:.40?}: expected a malformed request, got {other:?}"),
        }
    }
    let sixty_three = format!("old 2\n{}\n{note}", proof_line.repeat(63));
    assert_eq!(
        AddCheckpoint::parse(sixty_three.as_bytes())
            .unwrap()
            .proof
            .len(),
        63
    );
}

#[test]
fn the_witness_decision_follows_the_spec() {
    let log = LogKey::generate(ORIGIN).unwrap();
    let (_, root5) = log_of(5, "e");
    let root8 = {
        let (_, root) = log_of(8, "e");
        root
    };
    let (long, _) = log_of(8, "e");
    let at5 = WitnessedTree {
        size: 5,
        root: root5,
    };
    let checkpoint8 = signed(&log, 8, &root8);
    let proof = ConsistencyProof::prove(5, 8, &long).unwrap().hashes;
    let request = |old_size: u64, proof: Vec<Hash>| AddCheckpoint {
        old_size,
        proof,
        checkpoint: checkpoint8.note.clone(),
    };

    // First contact: old size 0, no proof.
    assert_eq!(
        check_add_checkpoint(&request(0, vec![]), &checkpoint8, &WitnessedTree::EMPTY),
        Ok(())
    );
    assert_eq!(
        check_add_checkpoint(
            &request(0, proof.clone()),
            &checkpoint8,
            &WitnessedTree::EMPTY
        )
        .unwrap_err()
        .status(),
        422
    );
    // A consistent extension of what the witness cosigned.
    assert_eq!(
        check_add_checkpoint(&request(5, proof.clone()), &checkpoint8, &at5),
        Ok(())
    );
    // The wrong old size: 409 with the witness's size.
    let conflict = check_add_checkpoint(&request(0, vec![]), &checkpoint8, &at5).unwrap_err();
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict,
        WitnessRefusal::Conflict {
            old_size: 0,
            cosigned_size: 5
        }
    );
    // An old size past the checkpoint.
    assert_eq!(
        check_add_checkpoint(&request(9, vec![]), &checkpoint8, &at5)
            .unwrap_err()
            .status(),
        400
    );
    // A rewritten log: same sizes, other entries, so no proof can verify.
    let rewritten = signed(&log, 8, &log_of(8, "rewritten").1);
    let refusal = check_add_checkpoint(
        &AddCheckpoint {
            old_size: 5,
            proof: proof.clone(),
            checkpoint: rewritten.note.clone(),
        },
        &rewritten,
        &at5,
    )
    .unwrap_err();
    assert_eq!(refusal.status(), 422);
    assert!(refusal.to_string().contains("rewritten"), "{refusal}");
    // The same size again: only with the same root.
    let again = signed(&log, 5, &root5);
    let same = AddCheckpoint {
        old_size: 5,
        proof: vec![],
        checkpoint: again.note.clone(),
    };
    assert_eq!(check_add_checkpoint(&same, &again, &at5), Ok(()));
    let forked = signed(&log, 5, &log_of(5, "other").1);
    assert_eq!(
        check_add_checkpoint(&same, &forked, &at5)
            .unwrap_err()
            .status(),
        422
    );
    // A rollback to a smaller tree: its old size cannot match what the witness cosigned.
    let smaller = signed(&log, 3, &log_of(3, "e").1);
    let rollback = AddCheckpoint {
        old_size: 3,
        proof: vec![],
        checkpoint: smaller.note.clone(),
    };
    assert_eq!(
        check_add_checkpoint(&rollback, &smaller, &at5)
            .unwrap_err()
            .status(),
        409
    );
    // A size-0 checkpoint must carry the empty tree's root.
    let zero = signed(&log, 0, &root5);
    let zero_request = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: zero.note.clone(),
    };
    assert_eq!(
        check_add_checkpoint(&zero_request, &zero, &WitnessedTree::EMPTY)
            .unwrap_err()
            .status(),
        422
    );
}

#[test]
fn origin_hashes_are_lowercase_hex_sha256() {
    assert_eq!(
        origin_hash("example.com/behind-the-sofa"),
        hex::encode(Sha256::digest(b"example.com/behind-the-sofa"))
    );
    assert_eq!(origin_hash("a").len(), 64);
    let log = LogKey::generate(ORIGIN).unwrap();
    let note = log.sign_checkpoint(0, &Hash::EMPTY_TREE).unwrap();
    assert_eq!(checkpoint_origin_unverified(&note).unwrap(), ORIGIN);
}
