-- The normalized form of a client version (domain::versions::VersionKey): versions that are
-- equal in the lookup's order (`1.10` and `1.10.0`, `2.0.0+build.1` and `2.0.0`) share it, so
-- the unique index refuses registering one version twice under two spellings. The form is
-- computed in Rust, so rows from before this migration are filled in by the server at start
-- (domain::versions::backfill_version_keys); until then they are NULL, which a unique index
-- does not compare.
ALTER TABLE client_versions ADD COLUMN version_key TEXT;
CREATE UNIQUE INDEX client_versions_key ON client_versions (project_id, channel, sub_channel, version_key);
