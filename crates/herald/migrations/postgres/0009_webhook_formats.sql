-- The payload format of an endpoint: which service's receivers it is written for
-- (webhooks/format.rs). Existing endpoints keep Herald's own envelope.
ALTER TABLE webhooks ADD COLUMN format TEXT NOT NULL DEFAULT 'herald';
