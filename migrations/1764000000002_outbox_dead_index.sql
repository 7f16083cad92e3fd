-- Up Migration

-- Dead-lettered events, found without scanning the processed history: `orders events retry
-- --dead`, `orders events list --status dead` and the orders_outbox_events{status="dead"} gauge.
-- The set is small (it waits for an operator), so the index costs next to nothing to maintain.
CREATE INDEX outbox_events_dead_idx ON outbox_events (created_at) WHERE status = 'dead';

-- Down Migration
DROP INDEX outbox_events_dead_idx;
