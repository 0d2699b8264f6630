-- Waits for rate limits, per workspace and hour, for the console's dashboard: calls that waited
-- for the add-on's own per-workspace limit before they were sent, or for Clockify's 429 answers
-- (Retry-After). Expand-only: a new table the previous release neither reads nor writes.
CREATE TABLE rate_limit_waits (
    workspace_id    TEXT NOT NULL,
    hour            BIGINT NOT NULL,        -- epoch millis of the hour's start
    waits           BIGINT NOT NULL,        -- calls that waited
    throttled       BIGINT NOT NULL,        -- of them, calls Clockify answered 429
    wait_ms         BIGINT NOT NULL,        -- time spent waiting
    PRIMARY KEY (workspace_id, hour)
);
