-- API Studio, initial schema. Portable SQL: runs unchanged on PostgreSQL and SQLite.
-- Timestamps are BIGINT milliseconds since the Unix epoch; flags are BIGINT 0/1; JSON is TEXT.
-- Migrations are expand-only: never drop or rename what a previous release reads.

CREATE TABLE installations (
    workspace_id    TEXT PRIMARY KEY,
    addon_id        TEXT NOT NULL,
    api_url         TEXT NOT NULL,
    as_user         TEXT,
    addon_user_id   TEXT,
    -- XChaCha20-Poly1305 ciphertext of the installation token; NULL once DELETED.
    auth_token_enc  TEXT,
    status          TEXT NOT NULL,          -- ACTIVE | INACTIVE | DELETED
    settings        TEXT NOT NULL DEFAULT '[]',
    installed_at    BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- The webhook tokens Clockify sent at install, by SHA-256 (never stored in clear).
CREATE TABLE installation_webhooks (
    workspace_id    TEXT NOT NULL,
    token_hash      TEXT NOT NULL,
    path            TEXT NOT NULL,
    webhook_type    TEXT,
    PRIMARY KEY (workspace_id, token_hash)
);

CREATE TABLE webhook_log (
    id              TEXT PRIMARY KEY,       -- UUIDv7: sorts by arrival
    workspace_id    TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- SHA-256 of (token, event type, body): one delivery, never one entity.
    delivery_key    TEXT NOT NULL,
    entity_id       TEXT,
    body            TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    status          TEXT NOT NULL,          -- PENDING | PROCESSING | PROCESSED
    claimed_at      BIGINT,
    processed_at    BIGINT,
    UNIQUE (workspace_id, delivery_key)
);
-- The UI lists a workspace's log newest first by id (UUIDv7 sorts by arrival).
CREATE INDEX webhook_log_workspace ON webhook_log (workspace_id, id);
CREATE INDEX webhook_log_received ON webhook_log (received_at);
CREATE INDEX webhook_log_pending ON webhook_log (status, received_at) WHERE status <> 'PROCESSED';

CREATE TABLE flows (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    name            TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    trigger_events  TEXT NOT NULL,          -- JSON array of event types
    condition_mode  TEXT NOT NULL,          -- ALL | ANY
    conditions      TEXT NOT NULL,          -- JSON array
    actions         TEXT NOT NULL,          -- JSON array
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX flows_workspace ON flows (workspace_id, enabled);

CREATE TABLE flow_executions (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    flow_id         TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL,          -- RUNNING | SUCCEEDED | FAILED | SKIPPED
    steps           TEXT NOT NULL DEFAULT '[]',
    error           TEXT,
    started_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    UNIQUE (flow_id, webhook_id)
);
CREATE INDEX flow_executions_workspace ON flow_executions (workspace_id, started_at);
CREATE INDEX flow_executions_flow ON flow_executions (flow_id, started_at);
CREATE INDEX flow_executions_started ON flow_executions (started_at);

CREATE TABLE entity_cache (
    workspace_id    TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    body            TEXT NOT NULL,
    fetched_at      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, entity_type, entity_id)
);
CREATE INDEX entity_cache_fetched ON entity_cache (fetched_at);

CREATE TABLE bootstrap_runs (
    workspace_id    TEXT PRIMARY KEY,
    state           TEXT NOT NULL,          -- PENDING | IN_PROGRESS | COMPLETE | COMPLETE_WITH_ERRORS | FAILED
    owner           TEXT,
    requested_at    BIGINT NOT NULL,
    started_at      BIGINT,
    heartbeat_at    BIGINT,
    finished_at     BIGINT,
    endpoints_done  BIGINT NOT NULL DEFAULT 0,
    endpoints_total BIGINT NOT NULL DEFAULT 0,
    pages_fetched   BIGINT NOT NULL DEFAULT 0,
    entities_stored BIGINT NOT NULL DEFAULT 0,
    errors          TEXT NOT NULL DEFAULT '[]',
    attempts        BIGINT NOT NULL DEFAULT 0
);
