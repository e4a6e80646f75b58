//! About the server itself: its version (`/api/v1/version`).
