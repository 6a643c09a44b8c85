-- Chat (docs/CHAT.md): tags, channels, the players' chat profiles, subscriptions and messages.

CREATE TABLE chat_tags (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    reg_user    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    mod_user    TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX chat_tags_page ON chat_tags (project_id, id);

CREATE TABLE chat_channels (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    name            TEXT NOT NULL,
    nickname        TEXT,
    auto_delete     BOOLEAN NOT NULL,
    last_message_id BIGINT NOT NULL DEFAULT 0,
    reg_user        TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    mod_user        TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX chat_channels_page ON chat_channels (project_id, created_at, id);

CREATE TABLE chat_channel_tags (
    channel_id TEXT NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
    tag_id     BIGINT NOT NULL REFERENCES chat_tags(id) ON DELETE CASCADE,
    PRIMARY KEY (channel_id, tag_id)
);
CREATE INDEX chat_channel_tags_tag ON chat_channel_tags (tag_id);

-- A player's chat profile; absent until first set (the player's own names stand in).
CREATE TABLE chat_profiles (
    project_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    nickname      TEXT,
    language_code TEXT,
    valid         BOOLEAN NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, user_id),
    FOREIGN KEY (project_id, user_id) REFERENCES users(project_id, id) ON DELETE CASCADE
);

CREATE TABLE chat_subscriptions (
    channel_id TEXT NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, user_id),
    FOREIGN KEY (project_id, user_id) REFERENCES users(project_id, id) ON DELETE CASCADE
);
CREATE INDEX chat_subscriptions_user ON chat_subscriptions (project_id, user_id);
CREATE INDEX chat_subscriptions_page ON chat_subscriptions (channel_id, created_at, user_id);

-- Message ids count per project; the row is locked by each send until it commits, so ids are
-- handed out in commit order and a reader never sees a gap fill in later.
CREATE TABLE chat_counters (
    project_id      TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    last_message_id BIGINT NOT NULL
);

CREATE TABLE chat_messages (
    project_id TEXT NOT NULL,
    id         BIGINT NOT NULL,
    channel_id TEXT NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
    user_id    TEXT,
    text       TEXT NOT NULL,
    data       JSONB,
    deleted    BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX chat_messages_history ON chat_messages (channel_id, created_at, id);
