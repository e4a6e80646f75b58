//! The Merkle tree against independent references: the RFC 6962 / Certificate Transparency test
//! vectors, a plain recursive RFC 6962 implementation, and the RFC 9162 proof verification
//! algorithms, all written here without the library.

use airlock_audit::{
    ConsistencyProof, Hash, InclusionProof, LogKey, MemoryHashes, TreeBuilder, check_consistency,
    check_inclusion, consistency_proof, hashes_to_store, inclusion_proof, leaf_hash, tree_root,
    verify_checkpoint,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// The leaves of the Certificate Transparency Merkle test vectors (hex).
const CT_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// The roots of the trees of the first 1..=8 of those leaves.
const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn plain_node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    sha256(&[&[1], left, right])
}

/// RFC 6962 section 2.1, MTH(D[n]), in its plainest recursive form.
fn plain_tree_hash(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(&[]),
        1 => sha256(&[&[0], &leaves[0]]),
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            plain_node(
                &plain_tree_hash(&leaves[..k]),
                &plain_tree_hash(&leaves[k..]),
            )
        }
    }
}

/// RFC 9162 section 2.1.3.2: verifying an inclusion proof.
fn plain_verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf: [u8; 32],
    path: &[[u8; 32]],
    root: [u8; 32],
) -> bool {
    if leaf_index >= tree_size {
        return false;
    }
    let (mut fnode, mut snode, mut r) = (leaf_index, tree_size - 1, leaf);
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = plain_node(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = plain_node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == root
}

/// RFC 9162 section 2.1.4.2: verifying a consistency proof (for `first < second`).
fn plain_verify_consistency(
    first: u64,
    second: u64,
    first_hash: [u8; 32],
    second_hash: [u8; 32],
    path: &[[u8; 32]],
) -> bool {
    if path.is_empty() || first == 0 || first >= second {
        return false;
    }
    let mut path = path.to_vec();
    if first.is_power_of_two() {
        path.insert(0, first_hash);
    }
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = plain_node(c, &fr);
            sr = plain_node(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = plain_node(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == first_hash && sr == second_hash && snode == 0
}

fn ct_leaves() -> Vec<Vec<u8>> {
    CT_LEAVES
        .iter()
        .map(|leaf| hex::decode(leaf).unwrap())
        .collect()
}

fn test_entries(count: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("entry {i}").into_bytes())
        .collect()
}

/// Appends `entries` to fresh storage in batches of the given sizes (cycled).
fn store_in_batches(entries: &[Vec<u8>], batch_sizes: &[usize]) -> MemoryHashes {
    let leaf_hashes: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry)).collect();
    let mut storage = MemoryHashes::new();
    let mut start = 0;
    for &batch_size in batch_sizes.iter().cycle() {
        if start == leaf_hashes.len() {
            break;
        }
        let end = (start + batch_size.max(1)).min(leaf_hashes.len());
        let new_hashes = hashes_to_store(start as u64, &leaf_hashes[start..end], &storage).unwrap();
        storage.extend(new_hashes);
        start = end;
    }
    storage
}

fn bytes(hashes: &[Hash]) -> Vec<[u8; 32]> {
    hashes.iter().map(|hash| hash.0).collect()
}

#[test]
fn plain_reference_reproduces_the_ct_vectors() {
    let leaves = ct_leaves();
    for (size, expected) in (1..=8).zip(CT_ROOTS) {
        assert_eq!(hex::encode(plain_tree_hash(&leaves[..size])), expected);
    }
}

#[test]
fn library_roots_match_the_ct_vectors() {
    let leaves = ct_leaves();
    let storage = store_in_batches(&leaves, &[1]);
    let mut builder = TreeBuilder::new();
    for (size, expected) in (1..=8u64).zip(CT_ROOTS) {
        builder.push(leaf_hash(&leaves[size as usize - 1]));
        let expected = Hash::from_hex(expected).unwrap();
        assert_eq!(tree_root(size, &storage).unwrap(), expected, "size {size}");
        assert_eq!(builder.root(), expected, "size {size}");
    }
}

#[test]
fn empty_tree_root_is_sha256_of_nothing() {
    let expected = sha256(&[]);
    assert_eq!(
        hex::encode(expected),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(Hash::EMPTY_TREE.0, expected);
    assert_eq!(tree_root(0, &MemoryHashes::new()).unwrap().0, expected);
    assert_eq!(TreeBuilder::new().root().0, expected);
    assert_eq!(plain_tree_hash(&[]), expected);
}

#[test]
fn library_matches_plain_reference_for_every_size_to_100() {
    let entries = test_entries(100);
    let storage = store_in_batches(&entries, &[3, 1, 7]);
    for size in 0..=100u64 {
        let expected = plain_tree_hash(&entries[..size as usize]);
        assert_eq!(
            tree_root(size, &storage).unwrap().0,
            expected,
            "size {size}"
        );
    }
}

#[test]
fn inclusion_proofs_verify_for_every_index_and_size_to_40() {
    let entries = test_entries(40);
    let storage = store_in_batches(&entries, &[5, 2]);
    for tree_size in 1..=40u64 {
        let root = tree_root(tree_size, &storage).unwrap();
        for index in 0..tree_size {
            let leaf = leaf_hash(&entries[index as usize]);
            let proof = inclusion_proof(tree_size, index, &storage).unwrap();
            check_inclusion(&proof, tree_size, &root, index, &leaf).unwrap();
            assert!(plain_verify_inclusion(
                index,
                tree_size,
                leaf.0,
                &bytes(&proof),
                root.0
            ));

            for flipped in 0..proof.len() {
                let mut bad = proof.clone();
                bad[flipped].0[0] ^= 1;
                assert!(check_inclusion(&bad, tree_size, &root, index, &leaf).is_err());
                assert!(!plain_verify_inclusion(
                    index,
                    tree_size,
                    leaf.0,
                    &bytes(&bad),
                    root.0
                ));
            }
            let mut longer = proof.clone();
            longer.push(root);
            assert!(check_inclusion(&longer, tree_size, &root, index, &leaf).is_err());
            if !proof.is_empty() {
                let shorter = &proof[..proof.len() - 1];
                assert!(check_inclusion(shorter, tree_size, &root, index, &leaf).is_err());
            }
            let other_index = (index + 1) % tree_size;
            if other_index != index {
                assert!(check_inclusion(&proof, tree_size, &root, other_index, &leaf).is_err());
            }
        }
    }
}

#[test]
fn consistency_proofs_verify_for_every_pair_of_sizes_to_40() {
    let entries = test_entries(40);
    let storage = store_in_batches(&entries, &[4, 9, 1]);
    let roots: Vec<Hash> = (0..=40)
        .map(|size| tree_root(size, &storage).unwrap())
        .collect();
    for new_size in 1..=40u64 {
        let new_root = roots[new_size as usize];
        for old_size in 1..=new_size {
            let old_root = roots[old_size as usize];
            let proof = consistency_proof(new_size, old_size, &storage).unwrap();
            check_consistency(&proof, new_size, &new_root, old_size, &old_root).unwrap();
            if old_size < new_size {
                assert!(plain_verify_consistency(
                    old_size,
                    new_size,
                    old_root.0,
                    new_root.0,
                    &bytes(&proof)
                ));
            } else {
                assert!(proof.is_empty());
            }

            for flipped in 0..proof.len() {
                let mut bad = proof.clone();
                bad[flipped].0[0] ^= 1;
                assert!(check_consistency(&bad, new_size, &new_root, old_size, &old_root).is_err());
                assert!(!plain_verify_consistency(
                    old_size,
                    new_size,
                    old_root.0,
                    new_root.0,
                    &bytes(&bad)
                ));
            }
            let wrong_old_root = roots[old_size as usize - 1];
            assert!(
                check_consistency(&proof, new_size, &new_root, old_size, &wrong_old_root).is_err()
            );
        }
    }
}

#[test]
fn consistency_from_the_empty_tree_is_an_empty_proof() {
    let entries = test_entries(5);
    let storage = store_in_batches(&entries, &[5]);
    let root = tree_root(5, &storage).unwrap();
    let proof = consistency_proof(5, 0, &storage).unwrap();
    assert!(proof.is_empty());
    check_consistency(&proof, 5, &root, 0, &Hash::EMPTY_TREE).unwrap();
    assert!(check_consistency(&proof, 5, &root, 0, &root).is_err());
    assert!(check_consistency(&[root], 5, &root, 0, &Hash::EMPTY_TREE).is_err());
}

#[test]
fn proof_requests_outside_the_tree_are_errors() {
    let entries = test_entries(8);
    let storage = store_in_batches(&entries, &[8]);
    let root = tree_root(8, &storage).unwrap();
    assert!(inclusion_proof(8, 8, &storage).is_err());
    assert!(inclusion_proof(0, 0, &storage).is_err());
    assert!(consistency_proof(4, 5, &storage).is_err());
    assert!(check_inclusion(&[], 8, &root, 8, &root).is_err());
    assert!(check_inclusion(&[], 0, &root, 0, &root).is_err());
    assert!(check_consistency(&[], 4, &root, 5, &root).is_err());
    assert!(check_inclusion(&[root; 65], u64::MAX, &root, 0, &root).is_err());
    // A proof for a tree the storage does not hold yet fails on the missing hashes.
    assert!(inclusion_proof(9, 0, &storage).is_err());
}

#[test]
fn served_proofs_round_trip_through_json_and_verify_against_checkpoints() {
    let key = LogKey::generate("airlock.test/audit").unwrap();
    let entries = test_entries(21);
    let storage = store_in_batches(&entries, &[21]);
    let checkpoint_at = |size: u64| {
        let note = key
            .sign_checkpoint(size, &tree_root(size, &storage).unwrap())
            .unwrap();
        verify_checkpoint(&note, key.verifier_key()).unwrap()
    };
    let (old, new) = (checkpoint_at(13), checkpoint_at(21));

    let inclusion = InclusionProof::prove(21, 17, &storage).unwrap();
    let json = serde_json::to_value(&inclusion).unwrap();
    assert_eq!(json["index"], 17);
    assert_eq!(json["tree_size"], 21);
    assert_eq!(json["leaf_hash"], leaf_hash(&entries[17]).to_hex());
    assert!(json["hashes"][0].as_str().unwrap().len() == 64);
    let inclusion: InclusionProof = serde_json::from_value(json).unwrap();
    inclusion.verify(&new).unwrap();
    inclusion.verify_entry(&entries[17], &new).unwrap();
    assert!(inclusion.verify_entry(&entries[16], &new).is_err());
    assert!(inclusion.verify(&old).is_err());

    let consistency = ConsistencyProof::prove(13, 21, &storage).unwrap();
    let json = serde_json::to_string(&consistency).unwrap();
    let consistency: ConsistencyProof = serde_json::from_str(&json).unwrap();
    consistency.verify(&old, &new).unwrap();
    assert!(consistency.verify(&new, &old).is_err());
    assert!(consistency.verify(&checkpoint_at(12), &new).is_err());

    let other_log = LogKey::generate("other.test/audit").unwrap();
    let foreign_note = other_log.sign_checkpoint(13, &old.root).unwrap();
    let foreign = verify_checkpoint(&foreign_note, other_log.verifier_key()).unwrap();
    assert!(consistency.verify(&foreign, &new).is_err());

    assert!(
        serde_json::from_str::<ConsistencyProof>(r#"{"old_size":1,"new_size":2,"hashes":["zz"]}"#)
            .is_err()
    );
}

#[test]
fn tree_builder_matches_stored_tree_root_for_every_size_to_600() {
    let entries = test_entries(600);
    for batch_sizes in [&[1][..], &[256], &[255, 2], &[3, 100, 17, 1], &[600]] {
        let storage = store_in_batches(&entries, batch_sizes);
        let mut builder = TreeBuilder::new();
        assert_eq!(builder.root(), tree_root(0, &storage).unwrap());
        for (size, entry) in (1..).zip(&entries) {
            builder.push(leaf_hash(entry));
            assert_eq!(builder.size(), size);
            assert_eq!(
                builder.root(),
                tree_root(size, &storage).unwrap(),
                "size {size}, batches {batch_sizes:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn tree_builder_matches_stored_roots_for_random_batches(
        batch_sizes in proptest::collection::vec(1usize..80, 1..12),
        total in 0u64..600,
    ) {
        let entries = test_entries(total);
        let storage = store_in_batches(&entries, &batch_sizes);
        let mut builder = TreeBuilder::new();
        for (size, entry) in (1..).zip(&entries) {
            builder.push(leaf_hash(entry));
            prop_assert_eq!(builder.root(), tree_root(size, &storage).unwrap());
        }
        prop_assert_eq!(builder.root().0, plain_tree_hash(&entries));
    }
}
