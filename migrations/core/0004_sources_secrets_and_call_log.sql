-- Custom webhook sources (Universal Webhook), per-workspace outbound HTTP allowlists for
-- GENERIC_HTTP actions, and the log of API calls made on a user's behalf (reference add-on).
-- Expand-only.

-- NULL: a Clockify webhook; otherwise the name of the custom source it came from.
ALTER TABLE webhook_log ADD COLUMN source TEXT;
CREATE INDEX webhook_log_source ON webhook_log (workspace_id, source, id);

-- NULL or 'CLOCKIFY': triggered by Clockify webhooks; 'CUSTOM': by custom webhooks.
ALTER TABLE flows ADD COLUMN trigger_source TEXT;
-- JSON array of custom source names the flow listens to; NULL or empty: every source.
ALTER TABLE flows ADD COLUMN trigger_sources TEXT;

-- The HMAC secret custom webhooks of a workspace are signed with (XChaCha20-Poly1305
-- ciphertext). After a rotation the previous secret stays valid until previous_valid_until.
CREATE TABLE custom_webhook_secrets (
    workspace_id          TEXT PRIMARY KEY,
    secret_enc            TEXT NOT NULL,
    previous_secret_enc   TEXT,
    previous_valid_until  BIGINT,
    created_at            BIGINT NOT NULL,
    rotated_at            BIGINT
);

-- Hosts GENERIC_HTTP actions of a workspace may call (`host`, `*.suffix`, `http://host:port`).
CREATE TABLE http_allowlist (
    workspace_id    TEXT NOT NULL,
    rule            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, rule)
);

-- Calls made through POST /api-call: who, what, and how it went (never the token or body).
CREATE TABLE api_calls (
    id              TEXT PRIMARY KEY,       -- UUIDv7: sorts by time
    workspace_id    TEXT NOT NULL,
    user_id         TEXT,
    method          TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    status          BIGINT,                 -- Clockify's status; NULL when no answer came
    error           TEXT,
    duration_ms     BIGINT NOT NULL,
    called_at       BIGINT NOT NULL
);
CREATE INDEX api_calls_workspace ON api_calls (workspace_id, id);
CREATE INDEX api_calls_called ON api_calls (called_at);
