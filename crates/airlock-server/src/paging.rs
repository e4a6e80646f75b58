//! Paging shared by the JSON API's lists beyond the catalog: `n` entries (a bounded default and
//! maximum) after the cursor `last`, and the cursor of a list ordered by time
//! (`<millis>:<key>`), parsed at the edge so a bad one is a clear 400.

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
