-- Test pings (`POST /webhooks/{id}/test`) are recorded as deliveries of their endpoint, marked
-- so (they are sent once, never retried, and their `test` event is not stored).
ALTER TABLE deliveries ADD COLUMN is_test BOOLEAN NOT NULL DEFAULT FALSE;
