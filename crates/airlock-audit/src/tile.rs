//! C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): tile paths, hash tiles and entry bundles.
//!
//! Tiles have height 8: a full tile holds 256 hashes (or entries). A hash tile at level `L`,
//! index `N` holds the hashes at tree level `8 * L` for leaves-of-that-level `256 * N ..`; an entry
//! bundle at index `N` holds entries `256 * N ..`. A partial tile of width `W < 256` holds the
//! first `W` of them. [`TilePath::parse`] faces the network and accepts only canonical paths.

use std::ops::Range;

use crate::storage::{TlogReader, check_tree_size};
use crate::{AuditError, HashReader};

/// The tile height of tlog-tiles: a full tile spans `2^8` hashes.
pub const TILE_HEIGHT: u8 = 8;

/// The width of a full tile (and the most entries an entry bundle holds).
pub const FULL_TILE_WIDTH: u16 = 256;

/// The highest tile level tlog-tiles allows in a path.
pub const MAX_TILE_LEVEL: u8 = 63;

/// Longer than any canonical tile path (`tile/entries/` + 7 index groups + `.p/255`).
const MAX_TILE_PATH_LEN: usize = 64;

/// A tile named by a C2SP tlog-tiles path.
///
/// `width` is `1..=255` for a partial tile and [`FULL_TILE_WIDTH`] (256) for a full one; values
/// from [`TilePath::parse`] always lie in that range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// A hash tile: `tile/<level>/<index>[.p/<width>]`.
    Hashes {
        /// The tile level (`0..=63`); level `L` holds tree level `8 * L`.
        level: u8,
        /// The tile index within its level.
        index: u64,
        /// The number of hashes, 256 for a full tile.
        width: u16,
    },
    /// An entry bundle: `tile/entries/<index>[.p/<width>]`.
    Entries {
        /// The bundle index: it holds entries from `256 * index`.
        index: u64,
        /// The number of entries, 256 for a full bundle.
        width: u16,
    },
}

impl TilePath {
    /// Parses a canonical tile path including its leading `tile/`, for example
    /// `tile/0/x001/x234/067`, `tile/2/005.p/17` or `tile/entries/000.p/3` (a server routing
    /// `/tile/{*rest}` passes `tile/` + rest).
    ///
    /// The index is written in groups of three decimal digits, each but the last prefixed with
    /// `x`, with no leading all-zero group; the level is decimal `0..=63` without leading zeros;
    /// the partial width `.p/<W>` is decimal `1..=255` without leading zeros. Anything else is
    /// rejected, without panicking, whatever the input.
    pub fn parse(path: &str) -> Result<TilePath, AuditError> {
        let malformed = || AuditError::MalformedTilePath {
            path: path.chars().take(MAX_TILE_PATH_LEN).collect(),
        };
        if path.len() > MAX_TILE_PATH_LEN {
            return Err(malformed());
        }
        let rest = path.strip_prefix("tile/").ok_or_else(malformed)?;
        let (kind, rest) = rest.split_once('/').ok_or_else(malformed)?;
        let (index_text, width) = match rest.split_once(".p/") {
            Some((index_text, width_text)) => (
                index_text,
                parse_partial_width(width_text).ok_or_else(malformed)?,
            ),
            None => (rest, FULL_TILE_WIDTH),
        };
        let index = parse_tile_index(index_text).ok_or_else(malformed)?;
        let tile = if kind == "entries" {
            TilePath::Entries { index, width }
        } else {
            let level = parse_level(kind).ok_or_else(malformed)?;
            TilePath::Hashes {
                level,
                index,
                width,
            }
        };
        // The parts were each checked; this also rules out any non-canonical combination.
        if tile.to_path() != path {
            return Err(malformed());
        }
        Ok(tile)
    }

    /// The leaves (log entries) this tile covers: for an entry bundle, the entries it holds; for
    /// a hash tile at level `L`, the leaves under its `width` hashes (each covering `256^L`
    /// leaves). The tile can be served for a tree of size `n` exactly when `end <= n`. `None` if
    /// the range does not fit in `u64`, so no tree can hold that tile.
    pub fn leaf_range(&self) -> Option<Range<u64>> {
        let (level, index, width) = match *self {
            TilePath::Hashes {
                level,
                index,
                width,
            } => (level, index, width),
            TilePath::Entries { index, width } => (0, index, width),
        };
        tile_leaf_range(level, index, width)
    }

    /// The canonical path of this tile, with its leading `tile/`. A width of 256 (full) has no
    /// `.p/` suffix.
    pub fn to_path(&self) -> String {
        let (kind, index, width) = match *self {
            TilePath::Hashes {
                level,
                index,
                width,
            } => (level.to_string(), index, width),
            TilePath::Entries { index, width } => ("entries".to_owned(), index, width),
        };
        let mut path = format!("tile/{kind}/{}", encode_tile_index(index));
        if width != FULL_TILE_WIDTH {
            path.push_str(&format!(".p/{width}"));
        }
        path
    }
}

/// Encodes `index` as 3-digit groups, all but the last prefixed with `x`: 1234067 is
/// `x001/x234/067`.
fn encode_tile_index(index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Parses 3-digit groups as written by [`encode_tile_index`].
fn parse_tile_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    let (last, leading) = groups.split_last()?;
    let mut index: u64 = 0;
    for group in leading {
        index = index
            .checked_mul(1000)?
            .checked_add(three_digits(group.strip_prefix('x')?)?)?;
    }
    index.checked_mul(1000)?.checked_add(three_digits(last)?)
}

/// Exactly three ASCII decimal digits.
fn three_digits(text: &str) -> Option<u64> {
    if text.len() != 3 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A canonical decimal number (digits only, no leading zero unless it is `0`) of up to 3 digits.
fn canonical_small_decimal(text: &str) -> Option<u16> {
    let canonical = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// The `<W>` of a `.p/<W>` suffix: `1..=255`.
fn parse_partial_width(text: &str) -> Option<u16> {
    canonical_small_decimal(text).filter(|width| (1..FULL_TILE_WIDTH).contains(width))
}

/// A hash tile level: `0..=63`.
fn parse_level(text: &str) -> Option<u8> {
    canonical_small_decimal(text)
        .and_then(|level| u8::try_from(level).ok())
        .filter(|level| *level <= MAX_TILE_LEVEL)
}

/// The leaves under hashes `256 * index .. 256 * index + width` of tree level `8 * level`, if
/// that range fits in `u64`.
fn tile_leaf_range(level: u8, index: u64, width: u16) -> Option<Range<u64>> {
    let shift = u32::from(TILE_HEIGHT).checked_mul(u32::from(level))?;
    let leaves_per_hash = 1u64.checked_shl(shift).filter(|_| shift < 64)?;
    let first_hash = index.checked_mul(u64::from(FULL_TILE_WIDTH))?;
    let end_hash = first_hash.checked_add(u64::from(width))?;
    Some(first_hash.checked_mul(leaves_per_hash)?..end_hash.checked_mul(leaves_per_hash)?)
}

/// The data of hash tile (`level`, `index`, `width`) for the tree of `tree_size` leaves: the
/// `width` 32-byte hashes it lists, concatenated.
///
/// Refuses tiles that the tree does not (yet) fully contain, so a partial tile is only served up
/// to the hashes that exist at `tree_size`.
pub fn hash_tile<R: HashReader + ?Sized>(
    level: u8,
    index: u64,
    width: u16,
    tree_size: u64,
    reader: &R,
) -> Result<Vec<u8>, AuditError> {
    check_tree_size(tree_size)?;
    if level > MAX_TILE_LEVEL || !(1..=FULL_TILE_WIDTH).contains(&width) {
        return Err(AuditError::InvalidTileCoordinates {
            level,
            index,
            width,
        });
    }
    match tile_leaf_range(level, index, width) {
        Some(leaves) if leaves.end <= tree_size => {}
        _ => {
            return Err(AuditError::TileBeyondTree {
                level,
                index,
                width,
                tree_size,
            });
        }
    }
    let tile = tlog_tiles::Tile::new(TILE_HEIGHT, level, index, u32::from(width), false);
    let adapter = TlogReader::new(reader);
    tile.read_data(&adapter)
        .map_err(|error| adapter.into_error(error))
}

/// Encodes entries as a tlog-tiles entry bundle: each entry as a big-endian 16-bit length
/// followed by its bytes. At most 256 entries of at most 65535 bytes each.
pub fn entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, AuditError> {
    if entries.len() > usize::from(FULL_TILE_WIDTH) {
        return Err(AuditError::TooManyBundleEntries {
            count: entries.len(),
        });
    }
    let total: usize = entries.iter().map(|entry| 2 + entry.as_ref().len()).sum();
    let mut bundle = Vec::with_capacity(total);
    for (position, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| AuditError::EntryTooLarge {
            position,
            len: entry.len(),
        })?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// Decodes an entry bundle written by [`entry_bundle`]; fails if it is truncated or holds more
/// than 256 entries.
pub fn parse_entry_bundle(bundle: &[u8]) -> Result<Vec<Vec<u8>>, AuditError> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let offset = bundle.len() - rest.len();
        let (len_bytes, after_len) = rest
            .split_first_chunk::<2>()
            .ok_or(AuditError::TruncatedEntryBundle { offset })?;
        let len = usize::from(u16::from_be_bytes(*len_bytes));
        if after_len.len() < len {
            return Err(AuditError::TruncatedEntryBundle { offset });
        }
        let (entry, after_entry) = after_len.split_at(len);
        if entries.len() == usize::from(FULL_TILE_WIDTH) {
            return Err(AuditError::TooManyBundleEntries {
                count: entries.len() + 1,
            });
        }
        entries.push(entry.to_vec());
        rest = after_entry;
    }
    Ok(entries)
}
