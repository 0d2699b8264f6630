-- The flow engine at the database's speed: indexes shaped like the queue's and the consoles'
-- statements, so each stays an index scan however many deliveries and executions are stored.
-- Expand-only: new indexes, and rows an old release left mid-claim put back in the queue; the
-- previous release's statements (and its index on pending deliveries) keep working.

-- Deliveries an earlier release left PROCESSING are fanned out again (a flow still runs at most
-- once per delivery: (flow_id, webhook_id) is unique).
UPDATE webhook_log SET status = 'PENDING' WHERE status = 'PROCESSING';
-- The fan-out claims pending deliveries oldest first (`status = 'PENDING' ORDER BY received_at`).
CREATE INDEX webhook_log_fan_out ON webhook_log (received_at) WHERE status = 'PENDING';

-- The executions console: newest first (a status filter walks it), or one delivery's runs.
-- Every index costs each execution's insert and its final update, so there are no more.
CREATE INDEX flow_executions_workspace_id ON flow_executions (workspace_id, id);
CREATE INDEX flow_executions_webhook ON flow_executions (webhook_id);
