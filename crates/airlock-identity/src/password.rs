//! Password hashing for human users: argon2id in PHC string form.
//!
//! Hashes use the OWASP-recommended argon2id parameters (19 MiB, 2 passes, 1 lane) and a fresh
//! random salt each time. Verification accepts only argon2id hashes whose cost stays within
//! [`MAX_MEMORY_KIB`], [`MAX_PASSES`] and [`MAX_LANES`], so a tampered hash in the database cannot
//! make a login request allocate gigabytes.

use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordHasher, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};

use crate::IdentityError;

/// argon2id memory cost used for new hashes, in KiB (OWASP: 19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// argon2id passes used for new hashes (OWASP: 2).
pub const PASSES: u32 = 2;
/// argon2id lanes used for new hashes (OWASP: 1).
pub const LANES: u32 = 1;
/// Largest memory cost a stored hash may ask for at verification, in KiB (256 MiB).
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// Largest number of passes a stored hash may ask for at verification.
pub const MAX_PASSES: u32 = 10;
/// Largest number of lanes a stored hash may ask for at verification.
pub const MAX_LANES: u32 = 8;

/// Length of [`generate_password`]'s output, in characters.
pub const GENERATED_PASSWORD_LEN: usize = 24;

fn argon2id() -> Result<Argon2<'static>, IdentityError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .map_err(|e| IdentityError::PasswordHash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with argon2id and a random salt, returning the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) to store.
///
/// Two calls with the same password return different strings (different salts).
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    let hash = argon2id()?
        .hash_password(password.as_bytes())
        .map_err(|e| IdentityError::PasswordHash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string `phc`.
///
/// Returns `false`, never an error, when the hash is malformed, is not argon2id, or asks for more
/// than the `MAX_*` costs: a login either succeeds or it does not. The final comparison is
/// constant-time (argon2's output comparison). Allocates argon2's working memory for this one
/// check; a thread that checks passwords repeatedly should use [`verify_password_in`].
pub fn verify_password(password: &str, phc: &str) -> bool {
    verify_password_in(password, phc, &mut PasswordMemory::default())
}

/// argon2's working memory (19 MiB for airlock's own hashes), kept between checks.
///
/// Allocating and freeing it for every check lets the C allocator keep a copy per thread that ever
/// checked a password; a checker thread that owns one `PasswordMemory` holds exactly one.
#[derive(Default)]
pub struct PasswordMemory(Vec<argon2::Block>);

/// [`verify_password`] using `memory` instead of allocating (it grows to the cost of airlock's own
/// hashes at most; a costlier stored hash gets memory for that one check).
pub fn verify_password_in(password: &str, phc: &str, memory: &mut PasswordMemory) -> bool {
    use argon2::password_hash::phc::Output;
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != ARGON2ID_IDENT {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB
        || params.t_cost() > MAX_PASSES
        || params.p_cost() > MAX_LANES
    {
        return false;
    }
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(version) = hash.version.map(Version::try_from).transpose() else {
        return false;
    };
    let blocks = params.block_count();
    // Memory for a hash costlier than airlock's own (allowed up to MAX_MEMORY_KIB) is not kept.
    let mut costlier = Vec::new();
    let work = if blocks <= memory.0.len().max(MEMORY_KIB as usize) {
        if memory.0.len() < blocks {
            memory.0.resize(blocks, argon2::Block::default());
        }
        &mut memory.0[..blocks]
    } else {
        costlier.resize(blocks, argon2::Block::default());
        &mut costlier[..]
    };
    let mut computed = [0u8; Output::MAX_LENGTH];
    let Some(computed) = computed.get_mut(..expected.len()) else {
        return false;
    };
    let hashed = Argon2::new(Algorithm::Argon2id, version.unwrap_or_default(), params)
        .hash_password_into_with_memory(password.as_bytes(), salt, computed, work);
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(computed).is_ok_and(|computed| &computed == expected)
}

/// Generates a random password of [`GENERATED_PASSWORD_LEN`] URL-safe characters
/// (`A-Z a-z 0-9 - _`, 144 bits of entropy), e.g. for the initial admin account.
///
/// # Panics
/// Only if the operating system's random number generator fails.
pub fn generate_password() -> String {
    generate_password_of(GENERATED_PASSWORD_LEN)
}

/// Generates a random password of exactly `length` URL-safe characters (`A-Z a-z 0-9 - _`,
/// 6 bits of entropy each).
///
/// # Panics
/// Only if the operating system's random number generator fails.
pub fn generate_password_of(length: usize) -> String {
    let mut bytes = vec![0u8; length.div_ceil(4) * 3];
    OsRng.fill_bytes(&mut bytes);
    let mut password = URL_SAFE_NO_PAD.encode(bytes);
    password.truncate(length);
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correct_password_verifies_and_wrong_one_does_not() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapler", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn reused_memory_gives_the_same_verdicts() {
        let phc = hash_password("correct horse battery staple").unwrap();
        let mut memory = PasswordMemory::default();
        for _ in 0..2 {
            assert!(verify_password_in(
                "correct horse battery staple",
                &phc,
                &mut memory
            ));
            assert!(!verify_password_in("wrong", &phc, &mut memory));
        }
        assert_eq!(memory.0.len(), MEMORY_KIB as usize);
    }

    #[test]
    fn same_password_hashes_differently_each_time() {
        let a = hash_password("hunter2").unwrap();
        let b = hash_password("hunter2").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_hash_is_false_not_a_panic() {
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$!!!",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify_password("password", phc), "{phc:?}");
        }
    }

    #[test]
    fn non_argon2id_and_oversized_costs_are_refused() {
        // Valid argon2i hash of "password" (salt "somesalt"): right password, wrong variant.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"password", b"somesalt")
        .unwrap()
        .to_string();
        assert!(!verify_password("password", &argon2i));
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$\
                    Q2VydGFpbmx5IG5vdCB0aGUgcmlnaHQgaGFzaCBvdXRwdXQ";
        assert!(!verify_password("password", huge));
    }

    #[test]
    fn generated_passwords_are_url_safe_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), GENERATED_PASSWORD_LEN);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn generated_passwords_have_the_length_asked_for() {
        for length in [1, 8, 24, 25, 63, 64, 1024] {
            let password = generate_password_of(length);
            assert_eq!(password.chars().count(), length);
            assert!(
                password
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }
}
