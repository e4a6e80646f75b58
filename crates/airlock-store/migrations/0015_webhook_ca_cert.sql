-- Webhooks over TLS: an endpoint may name the CA (PEM) that issued its receiver's certificate.
-- NULL: the receiver is verified against the system's roots.

ALTER TABLE webhook_endpoints ADD COLUMN ca_cert TEXT;
