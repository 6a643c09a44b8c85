-- Real-time gateway (socket.io): player session tokens. (SQLite has one writer, so events are
-- committed in `seq` order and the event feed follows `seq` alone.)

-- A session token is a short-lived JWT naming one of these rows; revoking the row refuses the
-- token at connect and disconnects its sockets.
CREATE TABLE player_sessions (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    FOREIGN KEY (project_id, user_id) REFERENCES users(project_id, id) ON DELETE CASCADE
);
CREATE INDEX player_sessions_user ON player_sessions (project_id, user_id);
