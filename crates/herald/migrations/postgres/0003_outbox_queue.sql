-- Events not yet fanned out, as a small queue table beside the outbox, instead of a flag on
-- each event. Setting the flag rewrote every event row and, as the flag is in an index
-- predicate, added new entries to every index of `events`; the partial index then held a
-- dead entry per event until the next vacuum, and each fan-out scan walked them (measured:
-- 3 ms per fan-out after 200,000 events). The queue stays a few pages long: fan-out deletes
-- what it takes, and the dispatcher vacuums it each second (`Store::vacuum_outbox`). No vacuum
-- may cut the file's empty tail: that takes an exclusive lock, which would stall every insert
-- into `events` meanwhile.
CREATE TABLE outbox_pending (seq BIGINT PRIMARY KEY);
ALTER TABLE outbox_pending SET (vacuum_truncate = false, autovacuum_vacuum_scale_factor = 0,
                                autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0);

-- Every event enters the queue in the transaction that writes it, whatever code writes it.
CREATE FUNCTION outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (seq) VALUES (NEW.seq);
    RETURN NULL;
END
$$;
CREATE TRIGGER events_enqueue AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION outbox_enqueue();

INSERT INTO outbox_pending (seq) SELECT seq FROM events WHERE fanned_out = FALSE;
DROP INDEX events_fanout_pending;
ALTER TABLE events DROP COLUMN fanned_out;
