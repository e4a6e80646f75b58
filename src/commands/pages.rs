//! Lists the server answers a page at a time (`n`, `last`, `next`), read by following `next`
//! until the last page or until a limit the user gave is reached.

use airlock_api::evidence::Keyring;
use airlock_api::identity::{AccessRequestList, ApiKeyList, PrincipalList, RoleBindingList};
use airlock_api::webhooks::{DeliveryList, WebhookList};
use anyhow::{Result, bail};
use serde::de::DeserializeOwned;

use crate::client::ApiClient;

/// Most entries the server puts on one page.
const MAX_PAGE: usize = 1000;

/// How often a walk starts again when the list changed under it (a keyring change).
const RESTARTS: usize = 3;

/// A list answer that is one page of a longer list.
pub trait Paged: DeserializeOwned {
    /// Entries on this page (or gathered so far).
    fn len(&self) -> usize;
    /// The cursor of the next page, `None` on the last.
    fn next(&self) -> Option<&str>;
    /// Adds a later page's entries and takes its `next`.
    fn append(&mut self, page: Self);
    /// Whether a later page belongs to the same state of the list as this one (the keyring's
    /// version; other lists page over a stable order and always agree).
    fn agrees_with(&self, _page: &Self) -> bool {
        true
    }
}

/// Reads the list at `path` (which may carry a query) page by page, at most `limit` entries
/// when given, else every entry; the answer's `next` is set only when `limit` stopped it early.
pub async fn read_pages<T: Paged>(api: &ApiClient, path: &str, limit: Option<u32>) -> Result<T> {
    for _ in 0..RESTARTS {
        if let Some(list) = walk(api, path, limit).await? {
            return Ok(list);
        }
    }
    bail!("the list at {path} kept changing while it was read page by page; try again")
}

/// One walk over the pages; `None` when a page disagreed with the first.
async fn walk<T: Paged>(api: &ApiClient, path: &str, limit: Option<u32>) -> Result<Option<T>> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let page_path = |gathered: usize, last: Option<&str>| {
        let mut query = Vec::new();
        // Ask for no more than the limit still wants, so the last page ends at the limit and its
        // `next` is exactly where the listing stopped.
        if let Some(limit) = limit {
            let wanted = (limit as usize).saturating_sub(gathered).clamp(1, MAX_PAGE);
            query.push(format!("n={wanted}"));
        }
        if let Some(last) = last {
            query.push(format!("last={}", query_value(last)));
        }
        if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}{separator}{}", query.join("&"))
        }
    };
    let mut list: T = api.get_as(&page_path(0, None)).await?;
    loop {
        if limit.is_some_and(|limit| list.len() >= limit as usize) {
            return Ok(Some(list));
        }
        let Some(last) = list.next().map(String::from) else {
            return Ok(Some(list));
        };
        let page: T = api.get_as(&page_path(list.len(), Some(&last))).await?;
        if !list.agrees_with(&page) {
            return Ok(None);
        }
        if page.next() == Some(last.as_str()) {
            bail!("the server answered the same page of {path} twice; report this as a bug");
        }
        list.append(page);
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `value` percent-encoded for a query string.
pub fn query_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

macro_rules! paged {
    ($list:ty, $entries:ident) => {
        impl Paged for $list {
            fn len(&self) -> usize {
                self.$entries.len()
            }
            fn next(&self) -> Option<&str> {
                self.next.as_deref()
            }
            fn append(&mut self, page: Self) {
                self.$entries.extend(page.$entries);
                self.next = page.next;
            }
        }
    };
}

paged!(PrincipalList, principals);
paged!(RoleBindingList, bindings);
paged!(AccessRequestList, requests);
paged!(ApiKeyList, keys);
paged!(WebhookList, webhooks);
paged!(DeliveryList, deliveries);

impl Paged for Keyring {
    fn len(&self) -> usize {
        self.keys.len()
    }
    fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }
    fn append(&mut self, page: Self) {
        self.keys.extend(page.keys);
        self.next = page.next;
    }
    fn agrees_with(&self, page: &Self) -> bool {
        self.keyring_version == page.keyring_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_encoded_for_the_query_string() {
        assert_eq!(query_value("12:oidc/ci"), "12%3Aoidc%2Fci");
        assert_eq!(query_value("a+b c"), "a%2Bb%20c");
    }

    #[test]
    fn appending_a_page_takes_its_entries_and_its_cursor() {
        let mut list = WebhookList {
            webhooks: Vec::new(),
            next: Some("3".into()),
        };
        list.append(WebhookList {
            webhooks: Vec::new(),
            next: None,
        });
        assert_eq!(list.next(), None);
        let first = Keyring {
            keyring_version: 4,
            keys: Vec::new(),
            next: Some("1:a".into()),
        };
        let moved = Keyring {
            keyring_version: 5,
            keys: Vec::new(),
            next: None,
        };
        assert!(!first.agrees_with(&moved));
        assert!(first.agrees_with(&first.clone()));
    }
}
