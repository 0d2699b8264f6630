-- The flow engine at the database's speed: indexes shaped like the queue's and the consoles'
-- statements, so each stays an index scan however many deliveries and executions are stored.
-- Expand-only: new indexes, and rows an old release left mid-claim put back in the queue; the
-- previous release's statements (and its index on pending deliveries) keep working.

-- Deliveries an earlier release left PROCESSING are fanned out again (a flow still runs at most
-- once per delivery: (flow_id, webhook_id) is unique).
UPDATE webhook_log SET status = 'PENDING' WHERE status = 'PROCESSING';
-- The fan-out claims pending deliveries oldest first (`status = 'PENDING' ORDER BY received_at`).
CREATE INDEX webhook_log_fan_out ON webhook_log (received_at) WHERE status = 'PENDING';

-- The executions console: newest first, by flow, by status, or one delivery's runs; the
-- dashboard counts by id (UUIDv7, time-ordered) on the first. Every index costs each
-- execution's insert and its final update, so these replace the two by start time that the
-- current statements no longer read (retention keeps flow_executions_started).
CREATE INDEX flow_executions_workspace_id ON flow_executions (workspace_id, id);
CREATE INDEX flow_executions_workspace_flow ON flow_executions (workspace_id, flow_id, id);
CREATE INDEX flow_executions_workspace_status ON flow_executions (workspace_id, status, id);
CREATE INDEX flow_executions_workspace_flow_status ON flow_executions (workspace_id, flow_id, status, id);
CREATE INDEX flow_executions_webhook ON flow_executions (webhook_id);
DROP INDEX flow_executions_flow;
DROP INDEX flow_executions_workspace;
