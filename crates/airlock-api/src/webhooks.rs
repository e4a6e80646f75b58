//! Webhooks (`/api/v1/webhooks`): endpoints that receive audit events as signed CloudEvents,
//! their deliveries, and the test event.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/webhooks`: an endpoint to add (needs access-admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddWebhookRequest {
    /// Where to send events: an `https://` (or `http://`) URL to a public address.
    #[schema(min_length = 8, max_length = 2048, pattern = "^https?://[^/@]+")]
    pub url: String,
    /// Event type patterns, e.g. `promotion.*`, `anomaly.*`, `*` (1 to 64).
    #[schema(min_items = 1, max_items = 64)]
    pub events: Vec<String>,
    /// The HMAC-SHA256 signing secret (16 to 1024 bytes); never shown again.
    #[schema(min_length = 16, max_length = 1024)]
    pub secret: String,
    /// PEM of the CA an `https://` receiver's certificate must chain to (instead of the system
    /// roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

/// An endpoint (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// The URL for access-admins; for others only its origin and a SHA-256 of the whole URL,
    /// since paths and queries often carry tokens.
    pub url: String,
    /// The event type patterns it receives.
    pub events: Vec<String>,
    /// Who added it.
    pub created_by: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// The CA its receiver's certificate must chain to, if any.
    pub ca_cert: Option<String>,
}

/// `GET /api/v1/webhooks`: the active endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// The endpoints on this page, by id.
    pub webhooks: Vec<Webhook>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `DELETE /api/v1/webhooks/{id}`: the endpoint is gone, its pending deliveries cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookRemoved {
    /// The endpoint.
    pub id: i64,
    /// Always `true`.
    pub removed: bool,
}

/// One delivery of an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub webhook: i64,
    /// The CloudEvent type, e.g. `dev.airlock.promotion.promoted`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The CloudEvent subject.
    pub subject: String,
    /// The CloudEvent id: the audit index, or `delivery-<id>` for the test event.
    pub event_id: String,
    /// `pending`, `delivered`, `dead` or `cancelled`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (RFC 3339), while pending.
    pub next_attempt_at: Option<String>,
    /// The HTTP status of the last attempt.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// When it was delivered (RFC 3339).
    pub delivered_at: Option<String>,
}

/// `GET /api/v1/webhooks/{id}/deliveries`: deliveries to an endpoint, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// The endpoint.
    pub webhook: i64,
    /// The deliveries on this page, newest first.
    pub deliveries: Vec<Delivery>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatusFilter {
    /// Waiting for an attempt.
    Pending,
    /// Delivered.
    Delivered,
    /// Given up after the last retry.
    Dead,
    /// Cancelled when the endpoint was removed.
    Cancelled,
    /// Every delivery.
    All,
}

/// Query of `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// Only deliveries in this state (default `all`).
    #[param(inline)]
    pub status: Option<DeliveryStatusFilter>,
    /// Entries per page (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The older name of `n` (give one of them).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub last: Option<String>,
}

/// `POST /api/v1/webhooks/{id}/test`: the test event is queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestQueued {
    /// The endpoint.
    pub webhook: i64,
    /// The delivery's id (`airlock webhooks deliveries` shows how it went).
    pub delivery: i64,
    /// The event type, `dev.airlock.webhook.test`.
    #[serde(rename = "type")]
    pub kind: String,
}
