-- How long each flow run took, for the executions view. Expand-only: a nullable column the
-- previous release neither reads nor writes.
ALTER TABLE flow_executions ADD COLUMN duration_ms BIGINT;
