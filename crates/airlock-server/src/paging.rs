//! Paging shared by the JSON API's lists beyond the catalog: `n` entries (a bounded default and
//! maximum) after the cursor `last`, and the cursors lists hand out as `next` — an id (lists by
//! id), a name (lists by name), `<millis>:<key>` (lists ordered by time) or `<id>:<name>` (role
//! bindings by principal) — parsed at the edge so a bad one is a clear 400. Every list reads one
//! row past its page ([`split_page`]) to know whether another page follows.

use airlock_store::TimeCursor;
use axum::http::StatusCode;

use crate::api::ApiError;

/// Entries a list page holds unless `n` asks for fewer.
pub const DEFAULT_PAGE: u32 = 100;
/// Most entries a list page holds.
pub const MAX_PAGE: u32 = 1000;

/// A page request that is not one the list can answer.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A page size out of range.
    #[error("n={n} is out of range: a page holds 1 to {max} entries")]
    Size {
        /// The size asked for.
        n: u32,
        /// The most allowed.
        max: u32,
    },
    /// A `last` cursor that is not one this list hands out.
    #[error("last={value:?} is not a cursor of this list")]
    Cursor {
        /// The cursor given.
        value: String,
    },
}

impl From<PageError> for ApiError {
    fn from(err: PageError) -> Self {
        let message = err.to_string();
        match err {
            PageError::Size { max, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                message,
                format!("ask for n between 1 and {max}"),
            ),
            PageError::Cursor { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_CURSOR_INVALID",
                message,
                "pass the `next` value of the previous page as `last`, or leave `last` out for the first page",
            ),
        }
    }
}

/// The page size: `n`, or `default` when unset, refused outside `1..=max`.
pub fn page_size(n: Option<u32>, default: u32, max: u32) -> Result<u32, PageError> {
    let limit = n.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(PageError::Size { n: limit, max });
    }
    Ok(limit)
}

/// Parses a time cursor `<millis>:<key>` as [`time_cursor`] writes it; an empty `last` is the
/// first page.
pub fn parse_time_cursor(last: Option<&str>) -> Result<Option<TimeCursor>, PageError> {
    let Some(last) = last.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let invalid = || PageError::Cursor {
        value: last.chars().take(128).collect(),
    };
    let (at, key) = last.split_once(':').ok_or_else(invalid)?;
    let at = at.parse::<i64>().map_err(|_| invalid())?;
    if key.is_empty() || at < 0 {
        return Err(invalid());
    }
    Ok(Some(TimeCursor {
        at,
        key: key.to_string(),
    }))
}

/// The cursor naming an entry of time `at` (ms) and key `key`.
pub fn time_cursor(at: i64, key: &str) -> String {
    format!("{at}:{key}")
}

/// Longest name cursor accepted: longer than any name airlock stores.
const MAX_NAME_CURSOR: usize = 256;

fn invalid_cursor(last: &str) -> PageError {
    PageError::Cursor {
        value: last.chars().take(128).collect(),
    }
}

/// Parses the cursor of a list ordered by a numeric id (the id of the page's last entry); an
/// empty `last` is the first page.
pub fn parse_id_cursor(last: Option<&str>) -> Result<Option<i64>, PageError> {
    let Some(last) = last.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    match last.parse::<i64>() {
        Ok(id) if id >= 0 => Ok(Some(id)),
        _ => Err(invalid_cursor(last)),
    }
}

/// Parses the cursor of a list ordered by name (the name of the page's last entry): at most 256
/// printable ASCII characters without spaces, as every name airlock stores is; an empty `last` is
/// the first page.
pub fn parse_name_cursor(last: Option<&str>) -> Result<Option<String>, PageError> {
    let Some(last) = last.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if last.len() > MAX_NAME_CURSOR || !last.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid_cursor(last));
    }
    Ok(Some(last.to_string()))
}

/// A cursor of a list ordered by a name, then a signed sequence number within the name:
/// `<seq>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSeqCursor {
    /// The name of the page's last entry.
    pub name: String,
    /// Its sequence number within the name.
    pub seq: i64,
}

/// Parses a `<seq>:<name>` cursor as [`name_seq_cursor`] writes it; an empty `last` is the first
/// page.
pub fn parse_name_seq_cursor(last: Option<&str>) -> Result<Option<NameSeqCursor>, PageError> {
    let Some(last) = last.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let (seq, name) = last.split_once(':').ok_or_else(|| invalid_cursor(last))?;
    let seq = seq.parse::<i64>().map_err(|_| invalid_cursor(last))?;
    let name = parse_name_cursor(Some(name))?.ok_or_else(|| invalid_cursor(last))?;
    Ok(Some(NameSeqCursor { name, seq }))
}

/// The cursor naming entry `seq` of `name`.
pub fn name_seq_cursor(seq: i64, name: &str) -> String {
    format!("{seq}:{name}")
}

/// Cuts `rows`, read with a limit of `limit + 1`, to the page of `limit` and returns it with the
/// cursor of its last entry when the extra row shows that another page follows.
pub fn split_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        let next = rows.last().map(cursor);
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_cursor_reads_back_as_written() {
        let written = time_cursor(1_700_000_000_123, "sha256:abc");
        assert_eq!(
            parse_time_cursor(Some(&written)).unwrap(),
            Some(TimeCursor {
                at: 1_700_000_000_123,
                key: "sha256:abc".to_string()
            })
        );
        assert_eq!(parse_time_cursor(Some("")).unwrap(), None);
        assert_eq!(parse_time_cursor(None).unwrap(), None);
    }

    #[test]
    fn a_cursor_not_handed_out_is_refused() {
        for bad in ["abc", "12", "x:id", "-5:id", "12:"] {
            assert!(
                matches!(parse_time_cursor(Some(bad)), Err(PageError::Cursor { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn id_name_and_name_seq_cursors_read_back_and_refuse_what_they_never_write() {
        assert_eq!(parse_id_cursor(Some("42")).unwrap(), Some(42));
        assert_eq!(parse_id_cursor(None).unwrap(), None);
        for bad in ["x", "-1", "1.5", "9999999999999999999999"] {
            assert!(parse_id_cursor(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            parse_name_cursor(Some("oidc/ci")).unwrap(),
            Some("oidc/ci".to_string())
        );
        for bad in ["a b".to_string(), "x".repeat(257), "caf\u{e9}".to_string()] {
            assert!(parse_name_cursor(Some(&bad)).is_err(), "{bad}");
        }
        let written = name_seq_cursor(-2, "oidc/ci");
        assert_eq!(
            parse_name_seq_cursor(Some(&written)).unwrap(),
            Some(NameSeqCursor {
                name: "oidc/ci".into(),
                seq: -2
            })
        );
        for bad in ["ci", "x:ci", "3:", "3:a b"] {
            assert!(parse_name_seq_cursor(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_read_one_row_long_names_the_next_page() {
        let (page, next) = split_page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], Some("2".to_string())));
        let (page, next) = split_page(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], None));
    }

    #[test]
    fn a_page_size_is_bounded() {
        assert_eq!(page_size(None, 100, 1000).unwrap(), 100);
        assert_eq!(page_size(Some(1000), 100, 1000).unwrap(), 1000);
        assert!(matches!(
            page_size(Some(1001), 100, 1000),
            Err(PageError::Size { n: 1001, max: 1000 })
        ));
        assert!(matches!(
            page_size(Some(0), 100, 1000),
            Err(PageError::Size { n: 0, .. })
        ));
    }
}
