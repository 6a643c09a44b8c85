-- Herald foundation schema (SQLite). Keep in step with ../postgres/0001_foundation.sql:
-- same tables, same columns, same constraints; only the types differ.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE projects (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    slug            TEXT NOT NULL,
    app_key         TEXT NOT NULL UNIQUE,
    secret_key      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (organization_id, slug)
);
CREATE INDEX projects_org ON projects (organization_id, created_at, id);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT REFERENCES organizations(id) ON DELETE CASCADE,
    project_id      TEXT REFERENCES projects(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    secret_hash     BLOB NOT NULL,
    scopes          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT,
    revoked_at      TEXT
);
CREATE INDEX api_keys_org ON api_keys (organization_id, created_at, id);

CREATE TABLE admin_users (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email           TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    last_login_at   TEXT
);

CREATE TABLE refresh_tokens (
    id            TEXT PRIMARY KEY,
    admin_user_id TEXT NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    token_hash    BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    used_at       TEXT
);

CREATE TABLE users (
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    username      TEXT NOT NULL,
    email         TEXT,
    display_name  TEXT,
    avatar_url    TEXT,
    role          TEXT NOT NULL,
    status        TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    last_login_at TEXT,
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, username)
);
CREATE INDEX users_page ON users (project_id, created_at, id);

CREATE TABLE game_worlds (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    world_id             TEXT NOT NULL,
    name                 TEXT NOT NULL,
    description          TEXT,
    visible              BOOLEAN NOT NULL,
    display_order        INTEGER NOT NULL,
    tags                 TEXT NOT NULL,
    maintenance          BOOLEAN NOT NULL,
    maintenance_message  TEXT,
    maintenance_messages TEXT NOT NULL,
    maintenance_starts_at TEXT,
    maintenance_ends_at  TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (project_id, world_id)
);
CREATE INDEX game_worlds_page ON game_worlds (project_id, display_order, created_at, id);

CREATE TABLE client_versions (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    sub_channel TEXT NOT NULL,
    version     TEXT NOT NULL,
    status      TEXT NOT NULL,
    update_url  TEXT,
    notes       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (project_id, channel, sub_channel, version)
);
CREATE INDEX client_versions_page ON client_versions (project_id, created_at, id);

-- The transactional outbox: one row per change, written in the change's own transaction.
-- `seq` is the monotonic sequence receivers may order by.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    organization_id TEXT,
    project_id      TEXT,
    type            TEXT NOT NULL,
    resource_type   TEXT,
    resource_id     TEXT,
    data            TEXT NOT NULL,
    request_id      TEXT,
    actor           TEXT,
    idempotency_key TEXT,
    sandbox         BOOLEAN NOT NULL DEFAULT FALSE,
    occurred_at     TEXT NOT NULL
);
CREATE INDEX events_project ON events (project_id, seq);
