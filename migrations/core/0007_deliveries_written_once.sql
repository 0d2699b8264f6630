-- Deliveries written once: the fan-out queue moves out of webhook_log into a table of ids, so
-- the fan-out deletes a small row instead of rewriting each stored delivery (2 KB and more,
-- every index of webhook_log again: its status sat in a partial index, so no update was HOT).
-- A delivery that awaits flows is stored with status QUEUED and its id put in webhook_queue in
-- the same statement; the fan-out deletes the id in the transaction that queues the flows'
-- executions. Its status as shown (PENDING, then PROCESSED) is read from the queue.
--
-- Expand-first for the rolling upgrade: pods of the previous release still store PENDING
-- deliveries and claim them with webhook_log_fan_out; this release claims those too, after
-- the queue, so nothing is stranded while both run. Retention now selects by the time-ordered
-- id (UUIDv7), so the indexes on received_at and started_at go: each cost every insert and,
-- for executions, every status change. The previous release's retention still works without
-- them (its batches find the oldest rows first). webhook_log_pending served only the release
-- before that (status <> 'PROCESSED'), and would index every QUEUED row.
CREATE TABLE webhook_queue (
    webhook_id TEXT PRIMARY KEY   -- UUIDv7: sorts by arrival
);
INSERT INTO webhook_queue (webhook_id)
    SELECT id FROM webhook_log WHERE status = 'PENDING';
UPDATE webhook_log SET status = 'QUEUED' WHERE status = 'PENDING';

DROP INDEX webhook_log_pending;
DROP INDEX webhook_log_received;
DROP INDEX flow_executions_started;
