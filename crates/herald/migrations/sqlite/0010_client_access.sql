-- Client keys: a credential shipped inside game builds, accepted only on /api/v1/client/*.
-- Like api_keys, only the SHA-256 of the 256-bit secret is stored. `channels` (a JSON array,
-- empty: any) limits which client channels the key may ask about.
CREATE TABLE client_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    secret_hash     BLOB NOT NULL,
    channels        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT,
    revoked_at      TEXT
);
CREATE INDEX client_keys_project ON client_keys (project_id, created_at, id);

-- The language client answers fall back to when the client's own has no text.
ALTER TABLE projects ADD COLUMN default_language TEXT NOT NULL DEFAULT 'en';
