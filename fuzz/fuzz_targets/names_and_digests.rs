//! Repository names, tags, references and digests come from request paths and query strings;
//! webhook event patterns from the webhooks API.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = text.parse::<airlock_core::RepoName>() {
        // A valid name can never smuggle a path trick into storage paths.
        let n = name.as_str();
        assert!(!n.contains("..") && !n.contains("//") && !n.starts_with('/') && !n.ends_with('/'));
        assert_eq!(format!("{}/{}", name.stage(), name.path()), n);
    }
    if let Ok(digest) = text.parse::<airlock_core::Digest>() {
        assert_eq!(digest.to_string(), text);
    }
    let _ = text.parse::<airlock_core::Tag>();
    let _ = text.parse::<airlock_core::Reference>();
    if let Ok(pattern) = text.parse::<airlock_core::webhook::EventPattern>() {
        // A pattern round-trips through its display form and matches consistently.
        let again: airlock_core::webhook::EventPattern = pattern.to_string().parse().unwrap();
        assert_eq!(again, pattern);
        assert_eq!(pattern.matches(text), again.matches(text));
    }
});
