//! What the audit log's clients read from a possibly hostile server: tile paths (also parsed by the
//! server from request paths), entry bundles and signed checkpoints.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A real verifier key, generated once, so notes get as far as signature checking.
fn verifier_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        airlock_audit::LogKey::generate("airlock/fuzz")
            .map(|key| key.verifier_key().to_string())
            .unwrap_or_default()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = airlock_audit::parse_entry_bundle(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(tile) = airlock_audit::TilePath::parse(text) {
            assert_eq!(tile.to_path(), text);
        }
        let _ = airlock_audit::parse_checkpoint_unverified(text);
        let _ = airlock_audit::verify_checkpoint(text, verifier_key());
    }
});
