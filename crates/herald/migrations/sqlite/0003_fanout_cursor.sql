-- SQLite has one writer, so events commit in `seq` order and a high-water mark is exact: the
-- dispatcher fans out the events after it, instead of flagging each event row as done (which
-- wrote every event and an index entry a second time). PostgreSQL keeps the per-event flag,
-- which lets several nodes split the work with FOR UPDATE SKIP LOCKED.
CREATE TABLE fanout_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
-- Fan-out went in `seq` order, so what is done is everything before the first event not done.
INSERT INTO fanout_cursor (id, seq)
SELECT 1, COALESCE((SELECT MIN(seq) - 1 FROM events WHERE fanned_out = FALSE), (SELECT MAX(seq) FROM events), 0);
DROP INDEX events_fanout_pending;
