//! The keyring (`/api/v1/keys`) and an artifact's evidence (`/api/v1/artifacts/...`).
