-- A manual retry restarts a delivery's retry schedule but no longer resets its attempt count,
-- so attempt numbers never repeat within a delivery: `schedule_from` is the count at which the
-- schedule (re)started. Existing deliveries start their schedule at 0, as before.
ALTER TABLE deliveries ADD COLUMN schedule_from INTEGER NOT NULL DEFAULT 0;
