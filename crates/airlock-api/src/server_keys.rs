//! airlock's own rotatable keys (`/api/v1/server-keys`).
