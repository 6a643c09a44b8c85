-- Real-time gateway (socket.io): player session tokens, and what the event feed needs to read
-- the outbox in commit-safe order across nodes.

-- A session token is a short-lived JWT naming one of these rows; revoking the row refuses the
-- token at connect and disconnects its sockets.
CREATE TABLE player_sessions (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    FOREIGN KEY (project_id, user_id) REFERENCES users(project_id, id) ON DELETE CASCADE
);
CREATE INDEX player_sessions_user ON player_sessions (project_id, user_id);

-- The writing transaction of each event. `seq` is taken at insert, not at commit, so a feed
-- that followed `seq` alone could step past an event whose transaction commits late. The feed
-- instead reads whole windows of transactions that have all ended: those below the oldest
-- transaction still running (`pg_snapshot_xmin`). Existing rows get the migration's own id;
-- the feed starts at the present and never reads them.
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_xid ON events (xid);
