-- Durable flow execution. A delivery fans out, in one transaction, into one execution row per
-- matching flow; rows are claimed under a lease, resume at `next_step` after a crash and are
-- retried with backoff until they succeed or fail for good.
-- Expand-only: nullable columns and new indexes the previous release neither reads nor needs.
ALTER TABLE flow_executions ADD COLUMN attempts BIGINT;
ALTER TABLE flow_executions ADD COLUMN next_step BIGINT;
ALTER TABLE flow_executions ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE flow_executions ADD COLUMN lease_owner TEXT;
ALTER TABLE flow_executions ADD COLUMN lease_until BIGINT;
-- The flow's updated_at when the execution was queued: a flow edited after some of its steps
-- ran is not resumed with different steps.
ALTER TABLE flow_executions ADD COLUMN flow_version BIGINT;
-- Executions that wait for their (next) attempt, soonest first.
CREATE INDEX flow_executions_due ON flow_executions (next_attempt_at) WHERE status IN ('PENDING', 'RETRY');
-- Running executions by lease expiry: a lease that runs out belongs to a dead worker.
CREATE INDEX flow_executions_leased ON flow_executions (lease_until) WHERE status = 'RUNNING';
