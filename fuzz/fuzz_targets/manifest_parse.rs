//! Manifest bodies come straight from the network (`PUT /v2/<name>/manifests/<ref>`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the Content-Type the client claims.
    let (content_type, body) = match data.split_first() {
        Some((selector, rest)) => (
            match selector % 6 {
                0 => None,
                1 => Some(airlock_core::manifest::OCI_MANIFEST),
                2 => Some(airlock_core::manifest::OCI_INDEX),
                3 => Some(airlock_core::manifest::DOCKER_MANIFEST),
                4 => Some(airlock_core::manifest::DOCKER_MANIFEST_LIST),
                _ => Some("application/json; charset=utf-8"),
            },
            rest,
        ),
        None => (None, data),
    };
    if let Ok(manifest) = airlock_core::ParsedManifest::parse(content_type, body) {
        // Whatever parses must only reference well-formed digests.
        for digest in manifest.blobs.iter().chain(&manifest.manifests) {
            assert!(digest.to_string().parse::<airlock_core::Digest>().is_ok());
        }
    }
});
