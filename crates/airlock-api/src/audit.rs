//! The audit log's JSON endpoints (`/api/v1/audit/*`); the tlog formats under `/log/` are not JSON.
