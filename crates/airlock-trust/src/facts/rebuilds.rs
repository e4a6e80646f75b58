//! Independent-rebuild agreement: how many independent builders produced this very artifact
//! from one source revision.
//!
//! Each verified SLSA provenance attached to an artifact names that artifact's digest as its
//! subject (verification checked it), a builder id, a source repository and commit, and was
//! signed by a keyring key. Builders are independent when they differ in *both* builder id and
//! signing key: one builder signing twice, or two builder ids sharing one key, count once. For
//! each source revision (repository and commit) the count is the largest set of provenance whose
//! builder ids and keys are pairwise distinct: a maximum matching between builder ids and keys,
//! so the answer does not depend on the order the provenance came in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Provenance;

/// One builder of an agreeing set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Builder {
    /// The builder id its provenance names.
    pub builder_id: String,
    /// The keyring key that signed its provenance.
    pub key: String,
}

/// The agreement among an artifact's verified provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rebuilds {
    /// How many independent builders built this digest from the best-agreeing source revision.
    pub independent: u64,
    /// That source revision's repository, when any provenance names one with a commit.
    pub source_repository: Option<String>,
    /// That source revision's commit.
    pub commit: Option<String>,
    /// The independent builders counted, ordered.
    pub builders: Vec<Builder>,
    /// How many distinct source revisions the provenance names (more than one: builders
    /// disagree on what was built).
    pub revisions: u64,
}

impl Rebuilds {
    /// The agreement among `provenance`: each item with the name of the key that signed it.
    /// Provenance without a source repository or commit names no revision and is not counted.
    pub fn of<'a>(provenance: impl IntoIterator<Item = (&'a Provenance, &'a str)>) -> Rebuilds {
        let mut by_revision: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        for (item, key) in provenance {
            let (Some(repository), Some(commit)) = (&item.source_repository, &item.commit) else {
                continue;
            };
            let edges = by_revision
                .entry((repository.clone(), commit.to_ascii_lowercase()))
                .or_default();
            let edge = (item.builder_id.clone(), key.to_owned());
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
        let revisions = by_revision.len() as u64;
        let best = by_revision
            .into_iter()
            .map(|(revision, edges)| (revision, maximum_matching(&edges)))
            // The most builders; on a tie the first revision in order, so the answer is stable.
            .fold(
                None::<((String, String), Vec<Builder>)>,
                |best, next| match best {
                    Some(best) if best.1.len() >= next.1.len() => Some(best),
                    _ => Some(next),
                },
            );
        match best {
            Some(((repository, commit), builders)) => Rebuilds {
                independent: builders.len() as u64,
                source_repository: Some(repository),
                commit: Some(commit),
                builders,
                revisions,
            },
            None => Rebuilds {
                independent: 0,
                source_repository: None,
                commit: None,
                builders: Vec::new(),
                revisions: 0,
            },
        }
    }
}

/// Another digest built from a source revision this artifact was built from, by a builder
/// independent of every builder of this artifact: a rebuild that did not reproduce it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Mismatch {
    /// The other artifact's digest.
    pub digest: String,
    /// The builder id its provenance names.
    pub builder_id: String,
    /// The key that signed its provenance.
    pub key: String,
    /// The shared source repository.
    pub source_repository: String,
    /// The shared commit.
    pub commit: String,
}

/// The provenance among `others` (subject digest, provenance, key) that names a source revision
/// `own` (provenance, key) names, for a digest other than `digest`, by a builder whose builder id
/// and key are both unlike every one of `own`'s: each once, ordered.
///
/// One builder's own builds of a revision into several digests (per platform, or a re-run) are
/// not counted: only an independent builder reaching other bytes is a rebuild that disagrees.
pub fn mismatches<'a>(
    digest: &str,
    own: impl IntoIterator<Item = (&'a Provenance, &'a str)>,
    others: impl IntoIterator<Item = (&'a str, &'a Provenance, &'a str)>,
) -> Vec<Mismatch> {
    let own: Vec<(&Provenance, &str)> = own.into_iter().collect();
    let revisions: Vec<(String, String)> = own
        .iter()
        .filter_map(|(p, _)| {
            Some((
                p.source_repository.clone()?,
                p.commit.as_ref()?.to_ascii_lowercase(),
            ))
        })
        .collect();
    let mut found: Vec<Mismatch> = others
        .into_iter()
        .filter(|(subject, _, _)| *subject != digest)
        .filter(|(_, p, key)| {
            own.iter()
                .all(|(mine, my_key)| mine.builder_id != p.builder_id && my_key != key)
        })
        .filter_map(|(subject, p, key)| {
            let revision = (
                p.source_repository.clone()?,
                p.commit.as_ref()?.to_ascii_lowercase(),
            );
            revisions.contains(&revision).then(|| Mismatch {
                digest: subject.to_owned(),
                builder_id: p.builder_id.clone(),
                key: key.to_owned(),
                source_repository: revision.0,
                commit: revision.1,
            })
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The largest set of `(builder id, key)` edges with no builder id and no key used twice
/// (augmenting paths; the sets here are a handful of items).
fn maximum_matching(edges: &[(String, String)]) -> Vec<Builder> {
    let builders: Vec<&String> = {
        let mut ids: Vec<&String> = edges.iter().map(|(builder, _)| builder).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    // key -> index of the builder it is matched to
    let mut matched: BTreeMap<&str, usize> = BTreeMap::new();
    for start in 0..builders.len() {
        let mut visited = vec![false; builders.len()];
        augment(start, &builders, edges, &mut matched, &mut visited);
    }
    let mut result: Vec<Builder> = matched
        .into_iter()
        .map(|(key, builder)| Builder {
            builder_id: builders[builder].clone(),
            key: key.to_owned(),
        })
        .collect();
    result.sort();
    result
}

/// Tries to match builder `index` to a key, moving earlier matches along an augmenting path.
fn augment<'a>(
    index: usize,
    builders: &[&String],
    edges: &'a [(String, String)],
    matched: &mut BTreeMap<&'a str, usize>,
    visited: &mut [bool],
) -> bool {
    if visited[index] {
        return false;
    }
    visited[index] = true;
    for (builder, key) in edges {
        if builder != builders[index] {
            continue;
        }
        let free = match matched.get(key.as_str()) {
            None => true,
            Some(&other) => augment(other, builders, edges, matched, visited),
        };
        if free {
            matched.insert(key.as_str(), index);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance(builder: &str, repository: &str, commit: &str) -> Provenance {
        Provenance {
            slsa_version: "v1".into(),
            builder_id: builder.into(),
            build_type: "https://example.com/build".into(),
            source_repository: Some(repository.into()),
            commit: Some(commit.into()),
            source_ref: None,
            inputs: 0,
            unpinned_inputs: Some(vec![]),
        }
    }

    const REPO: &str = "https://github.com/acme/app";
    const COMMIT: &str = "0d3c5e7a9b1f2d4c6e8a0b2d4f6a8c0e2b4d6f8a";

    #[test]
    fn two_builders_with_two_keys_agree() {
        let a = provenance("https://builder.one", REPO, COMMIT);
        let b = provenance("https://builder.two", REPO, COMMIT);
        let rebuilds = Rebuilds::of([(&a, "key-one"), (&b, "key-two")]);
        assert_eq!(rebuilds.independent, 2);
        assert_eq!(rebuilds.commit.as_deref(), Some(COMMIT));
        assert_eq!(rebuilds.revisions, 1);
        assert_eq!(rebuilds.builders[0].builder_id, "https://builder.one");
    }

    #[test]
    fn a_shared_key_or_a_shared_builder_id_counts_once() {
        let a = provenance("https://builder.one", REPO, COMMIT);
        let b = provenance("https://builder.two", REPO, COMMIT);
        // Two builder ids, one key: whoever holds the key could have written both.
        assert_eq!(Rebuilds::of([(&a, "key"), (&b, "key")]).independent, 1);
        // One builder id signing with two keys: still one builder.
        assert_eq!(
            Rebuilds::of([(&a, "key-one"), (&a, "key-two")]).independent,
            1
        );
        // The same provenance twice.
        assert_eq!(
            Rebuilds::of([(&a, "key-one"), (&a, "key-one")]).independent,
            1
        );
    }

    #[test]
    fn the_count_is_a_maximum_matching_whatever_the_order() {
        let one = provenance("https://builder.one", REPO, COMMIT);
        let two = provenance("https://builder.two", REPO, COMMIT);
        // builder.one signed with k1 and k2, builder.two only with k1: a greedy pick of
        // (one, k1) first would find 1; the matching finds (one, k2) and (two, k1).
        for order in [
            vec![(&one, "k1"), (&one, "k2"), (&two, "k1")],
            vec![(&two, "k1"), (&one, "k1"), (&one, "k2")],
        ] {
            let rebuilds = Rebuilds::of(order);
            assert_eq!(rebuilds.independent, 2, "{rebuilds:?}");
        }
    }

    #[test]
    fn builders_of_other_revisions_do_not_agree() {
        let a = provenance("https://builder.one", REPO, COMMIT);
        let b = provenance(
            "https://builder.two",
            REPO,
            "1111111111111111111111111111111111111111",
        );
        let c = provenance(
            "https://builder.two",
            "https://github.com/acme/fork",
            COMMIT,
        );
        let rebuilds = Rebuilds::of([(&a, "k1"), (&b, "k2"), (&c, "k3")]);
        assert_eq!(rebuilds.independent, 1);
        assert_eq!(rebuilds.revisions, 3);
        // Commits compare without case.
        let upper = provenance("https://builder.two", REPO, &COMMIT.to_uppercase());
        assert_eq!(Rebuilds::of([(&a, "k1"), (&upper, "k2")]).independent, 2);
    }

    #[test]
    fn another_digest_of_the_same_revision_is_a_mismatch() {
        let ours = provenance("https://builder.one", REPO, COMMIT);
        let theirs = provenance("https://builder.two", REPO, &COMMIT.to_uppercase());
        let unrelated = provenance(
            "https://builder.two",
            REPO,
            "2222222222222222222222222222222222222222",
        );
        let found = mismatches(
            "sha256:aa",
            [(&ours, "k1")],
            [
                ("sha256:aa", &ours, "k1"),
                ("sha256:bb", &theirs, "k2"),
                ("sha256:bb", &theirs, "k2"),
                ("sha256:cc", &unrelated, "k2"),
            ],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].digest, "sha256:bb");
        assert_eq!(found[0].builder_id, "https://builder.two");
        assert_eq!(found[0].commit, COMMIT);
        assert!(mismatches("sha256:aa", [], [("sha256:bb", &theirs, "k2")]).is_empty());
        // The same builder's other build of the revision (another platform, a re-run), or the
        // other builder signing with our key, is not an independent rebuild.
        let again = provenance("https://builder.one", REPO, COMMIT);
        assert!(mismatches("sha256:aa", [(&ours, "k1")], [("sha256:dd", &again, "k9")]).is_empty());
        assert!(
            mismatches("sha256:aa", [(&ours, "k1")], [("sha256:dd", &theirs, "k1")]).is_empty()
        );
    }

    #[test]
    fn provenance_without_a_revision_is_not_counted() {
        let mut a = provenance("https://builder.one", REPO, COMMIT);
        a.commit = None;
        let rebuilds = Rebuilds::of([(&a, "k1")]);
        assert_eq!(rebuilds.independent, 0);
        assert_eq!(rebuilds.source_repository, None);
        assert_eq!(rebuilds.revisions, 0);
    }
}
