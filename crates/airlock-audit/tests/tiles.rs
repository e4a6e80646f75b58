//! C2SP tlog-tiles paths, hash tiles and entry bundles, including every rejection path of the
//! network-facing parsers.

use airlock_audit::{
    AuditError, Hash, MemoryHashes, TilePath, TreeBuilder, entry_bundle, hash_tile,
    hashes_to_store, leaf_hash, parse_entry_bundle, tree_root,
};
use proptest::prelude::*;

#[test]
fn canonical_paths_parse_and_format_back() {
    let cases = [
        (
            "tile/0/x001/x234/067",
            TilePath::Hashes {
                level: 0,
                index: 1_234_067,
                width: 256,
            },
        ),
        (
            "tile/2/005.p/17",
            TilePath::Hashes {
                level: 2,
                index: 5,
                width: 17,
            },
        ),
        (
            "tile/63/000",
            TilePath::Hashes {
                level: 63,
                index: 0,
                width: 256,
            },
        ),
        (
            "tile/1/x001/000.p/255",
            TilePath::Hashes {
                level: 1,
                index: 1000,
                width: 255,
            },
        ),
        (
            "tile/entries/000.p/1",
            TilePath::Entries { index: 0, width: 1 },
        ),
        (
            "tile/entries/x001/x234/067",
            TilePath::Entries {
                index: 1_234_067,
                width: 256,
            },
        ),
        (
            "tile/entries/x018/x446/x744/x073/x709/x551/615",
            TilePath::Entries {
                index: u64::MAX,
                width: 256,
            },
        ),
    ];
    for (path, tile) in cases {
        assert_eq!(TilePath::parse(path).unwrap(), tile, "{path}");
        assert_eq!(tile.to_path(), path);
    }
}

#[test]
fn malformed_paths_are_rejected() {
    let malformed = [
        "",
        "tile",
        "tile/",
        "tile/0",
        "tile/0/",
        "/tile/0/000",
        "tile/0/000/",
        "tiles/0/000",
        "tile/0/x1/2",
        "tile/0/1",
        "tile/0/0001",
        "tile/0/00a",
        "tile/0/+01",
        "tile/0/-01",
        "tile/0/ 01",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/0/x001",
        "tile/0/x001/x002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/017",
        "tile/0/000.p/",
        "tile/0/000.p/1/2",
        "tile/0/000.p/x",
        "tile/0/000.p/1.p/1",
        "tile/0/../000",
        "../tile/0/000",
        "tile/../0/000",
        "tile/0/x001/../000",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/255/000",
        "tile/-1/000",
        "tile/data/000",
        "tile/entries/000.p/256",
        "tile/entries",
        "tile/entries/",
        "tile/entries/x018/x446/x744/x073/x709/x551/616",
        "tile/0/x001/x002/x003/x004/x005/x006/x007/x008/009",
        "tile/0/０00",
        "tile/0/000\n",
    ];
    for path in malformed {
        assert!(
            matches!(
                TilePath::parse(path),
                Err(AuditError::MalformedTilePath { .. })
            ),
            "{path:?} was accepted"
        );
    }
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(path in ".{0,80}") {
        let _ = TilePath::parse(&path);
    }

    #[test]
    fn parse_never_panics_on_path_like_text(path in "tile/[0-9a-z.x/p]{0,60}") {
        if let Ok(tile) = TilePath::parse(&path) {
            prop_assert_eq!(tile.to_path(), path);
        }
    }

    #[test]
    fn every_valid_tile_round_trips(
        level in 0u8..=63,
        index in any::<u64>(),
        width in 1u16..=256,
        entries in any::<bool>(),
    ) {
        let tile = if entries {
            TilePath::Entries { index, width }
        } else {
            TilePath::Hashes { level, index, width }
        };
        prop_assert_eq!(TilePath::parse(&tile.to_path()).unwrap(), tile);
    }
}

#[test]
fn leaf_ranges_say_which_entries_a_tile_needs() {
    let range = |path: &str| TilePath::parse(path).unwrap().leaf_range();
    assert_eq!(range("tile/entries/000"), Some(0..256));
    assert_eq!(range("tile/entries/002.p/88"), Some(512..600));
    assert_eq!(range("tile/0/001.p/5"), Some(256..261));
    assert_eq!(range("tile/1/000.p/2"), Some(0..512));
    assert_eq!(range("tile/2/001"), Some(65536 * 256..65536 * 512));
    assert_eq!(range("tile/8/000"), None);
    assert_eq!(range("tile/63/000.p/1"), None);
    assert_eq!(
        range("tile/entries/x018/x446/x744/x073/x709/x551/615"),
        None
    );
}

/// A stored tree of `size` leaves and its leaf hashes.
fn stored_tree(size: u64) -> (MemoryHashes, Vec<Hash>) {
    let leaf_hashes: Vec<Hash> = (0..size)
        .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
        .collect();
    let mut storage = MemoryHashes::new();
    storage.extend(hashes_to_store(0, &leaf_hashes, &storage).unwrap());
    (storage, leaf_hashes)
}

fn concat(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

fn root_of(leaves: &[Hash]) -> Hash {
    let mut builder = TreeBuilder::new();
    leaves.iter().for_each(|leaf| builder.push(*leaf));
    builder.root()
}

#[test]
fn level_zero_tiles_list_leaf_hashes() {
    let (storage, leaves) = stored_tree(600);
    assert_eq!(
        hash_tile(0, 0, 256, 600, &storage).unwrap(),
        concat(&leaves[..256])
    );
    assert_eq!(
        hash_tile(0, 1, 256, 600, &storage).unwrap(),
        concat(&leaves[256..512])
    );
    assert_eq!(
        hash_tile(0, 2, 88, 600, &storage).unwrap(),
        concat(&leaves[512..600])
    );
    // A narrower partial tile, as published for an older tree size, is still served.
    assert_eq!(
        hash_tile(0, 2, 10, 600, &storage).unwrap(),
        concat(&leaves[512..522])
    );
}

#[test]
fn level_one_tiles_list_roots_of_full_level_zero_tiles() {
    let (storage, leaves) = stored_tree(600);
    let expected = [
        tree_root(256, &storage).unwrap(),
        root_of(&leaves[256..512]),
    ];
    assert_eq!(
        hash_tile(1, 0, 2, 600, &storage).unwrap(),
        concat(&expected)
    );
}

#[test]
fn tiles_beyond_the_tree_are_refused() {
    let (storage, _) = stored_tree(600);
    for (level, index, width) in [
        (0, 2, 89),
        (0, 2, 256),
        (0, 3, 1),
        (1, 0, 3),
        (1, 1, 1),
        (2, 0, 1),
        (7, 0, 1),
        (63, u64::MAX, 256),
        (0, u64::MAX, 256),
    ] {
        assert!(
            matches!(
                hash_tile(level, index, width, 600, &storage),
                Err(AuditError::TileBeyondTree { .. })
            ),
            "level {level} index {index} width {width}"
        );
    }
    assert!(matches!(
        hash_tile(0, 0, 1, 0, &storage),
        Err(AuditError::TileBeyondTree { .. })
    ));
}

#[test]
fn invalid_tile_coordinates_are_refused() {
    let (storage, _) = stored_tree(600);
    for (level, width) in [(0, 0), (0, 257), (64, 1), (255, 256)] {
        assert!(matches!(
            hash_tile(level, 0, width, 600, &storage),
            Err(AuditError::InvalidTileCoordinates { .. })
        ));
    }
    assert!(matches!(
        hash_tile(0, 0, 1, u64::MAX, &storage),
        Err(AuditError::TreeTooLarge { .. })
    ));
}

#[test]
fn entry_bundles_round_trip() {
    let entries: Vec<Vec<u8>> = vec![
        b"first".to_vec(),
        Vec::new(),
        vec![0xff; 65535],
        b"last".to_vec(),
    ];
    let bundle = entry_bundle(&entries).unwrap();
    assert_eq!(&bundle[..7], b"\x00\x05first");
    assert_eq!(&bundle[7..9], b"\x00\x00");
    assert_eq!(&bundle[9..11], b"\xff\xff");
    assert_eq!(parse_entry_bundle(&bundle).unwrap(), entries);

    let borrowed: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    assert_eq!(entry_bundle(&borrowed).unwrap(), bundle);
    assert!(
        parse_entry_bundle(&entry_bundle::<&[u8]>(&[]).unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn oversize_entry_is_rejected() {
    let entries = [vec![1u8; 10], vec![0u8; 65536]];
    assert!(matches!(
        entry_bundle(&entries),
        Err(AuditError::EntryTooLarge {
            position: 1,
            len: 65536
        })
    ));
}

#[test]
fn more_than_256_entries_are_rejected() {
    let entries = vec![b"e".to_vec(); 257];
    assert!(matches!(
        entry_bundle(&entries),
        Err(AuditError::TooManyBundleEntries { count: 257 })
    ));
    let full = entry_bundle(&entries[..256]).unwrap();
    assert_eq!(parse_entry_bundle(&full).unwrap().len(), 256);
    let mut overfull = full.clone();
    overfull.extend_from_slice(b"\x00\x01e");
    assert!(matches!(
        parse_entry_bundle(&overfull),
        Err(AuditError::TooManyBundleEntries { .. })
    ));
}

#[test]
fn truncated_bundles_are_rejected() {
    let bundle = entry_bundle(&[b"abc".as_slice(), b"defg".as_slice()]).unwrap();
    for cut in 1..bundle.len() {
        let result = parse_entry_bundle(&bundle[..cut]);
        if cut == 5 {
            // Exactly the first entry: a valid bundle of one.
            assert_eq!(result.unwrap(), vec![b"abc".to_vec()]);
        } else {
            assert!(
                matches!(result, Err(AuditError::TruncatedEntryBundle { .. })),
                "cut at {cut}"
            );
        }
    }
    assert!(matches!(
        parse_entry_bundle(b"\x00"),
        Err(AuditError::TruncatedEntryBundle { offset: 0 })
    ));
    assert!(matches!(
        parse_entry_bundle(b"\x00\x02a"),
        Err(AuditError::TruncatedEntryBundle { offset: 0 })
    ));
}

proptest! {
    #[test]
    fn bundle_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_entry_bundle(&bytes);
    }

    #[test]
    fn bundles_of_arbitrary_entries_round_trip(
        entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40)
    ) {
        let bundle = entry_bundle(&entries).unwrap();
        prop_assert_eq!(parse_entry_bundle(&bundle).unwrap(), entries);
    }
}
