-- Live operations: timed maintenance (per world and game-wide), the maintenance whitelist,
-- and notices.
--
-- Every timed thing has a `phase`: `idle` (nothing announced), `pending` (its start is
-- announced as scheduled and not yet fired) or `active` (its start fired, its end has not).
-- The scheduler on every node moves a row from one phase to the next with a compare-and-set
-- on `updated_at` in the transaction that writes the event, so each transition fires once
-- across all nodes (domain::schedule).

-- Worlds in maintenance before this migration announced their start when it was switched on.
ALTER TABLE game_worlds ADD COLUMN maintenance_phase TEXT NOT NULL DEFAULT 'idle';
UPDATE game_worlds SET maintenance_phase = 'active' WHERE maintenance = TRUE;
CREATE INDEX game_worlds_phase ON game_worlds (maintenance_phase) WHERE maintenance_phase <> 'idle';

-- Game-wide maintenance: one row per project, made on its first change.
CREATE TABLE project_maintenance (
    project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    enabled    BOOLEAN NOT NULL,
    messages   TEXT NOT NULL,
    starts_at  TEXT,
    ends_at    TEXT,
    phase      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX project_maintenance_phase ON project_maintenance (phase) WHERE phase <> 'idle';

-- Who may play during maintenance: a player (user id) or an address range (CIDR).
CREATE TABLE maintenance_whitelist (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    player_id  TEXT,
    ip_range   TEXT,
    note       TEXT,
    expires_at TEXT,
    created_at TEXT NOT NULL,
    CHECK ((player_id IS NULL) <> (ip_range IS NULL)),
    UNIQUE (project_id, player_id),
    UNIQUE (project_id, ip_range)
);
CREATE INDEX maintenance_whitelist_page ON maintenance_whitelist (project_id, created_at, id);

CREATE TABLE notices (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    title        TEXT NOT NULL,
    body         TEXT NOT NULL,
    channels     TEXT NOT NULL,
    sub_channels TEXT NOT NULL,
    min_version  TEXT,
    max_version  TEXT,
    enabled      BOOLEAN NOT NULL,
    starts_at    TEXT,
    ends_at      TEXT,
    phase        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX notices_page ON notices (project_id, created_at, id);
CREATE INDEX notices_phase ON notices (phase) WHERE phase <> 'idle';
