//! Anomalies (`/api/v1/anomalies`): what the detector caught and its resolution.
