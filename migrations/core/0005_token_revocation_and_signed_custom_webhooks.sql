-- Token revocation that replays cannot undo, and custom webhooks signed the Standard Webhooks
-- way. Expand-only: new tables and nullable columns the previous release neither reads nor
-- writes.

-- SHA-256 of every token DELETED revoked (the installation token, the webhook tokens and the
-- lifecycle token that carried DELETED): never accepted again, whatever is replayed.
CREATE TABLE revoked_tokens (
    token_hash      TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    revoked_at      BIGINT NOT NULL
);

-- SHA-256 of the installation token, so that it is recognised (and refused) when presented as
-- a lifecycle token.
ALTER TABLE installations ADD COLUMN auth_token_hash TEXT;
-- Epoch millis of the last DELETED: lifecycle and user tokens issued before it are refused,
-- even after a re-install. Never cleared.
ALTER TABLE installations ADD COLUMN tokens_revoked_before BIGINT;

-- Until when (epoch millis) the workspace still accepts custom webhooks signed the old way
-- (X-Signature-256 over the body alone). NULL: never; an admin opens a bounded window.
ALTER TABLE custom_webhook_secrets ADD COLUMN legacy_signatures_until BIGINT;
