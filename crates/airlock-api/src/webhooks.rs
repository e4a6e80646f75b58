//! Webhook endpoints and their deliveries (`/api/v1/webhooks`).
