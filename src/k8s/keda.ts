/**
 * The worker's backlog signal for KEDA's `postgresql` scaler (K8S_AUTOSCALER=keda): the number of
 * outbox events a worker could claim right now. KEDA runs the query every polling interval with
 * the worker's own DATABASE_URL, so it must be cheap whatever the table holds and must need no
 * privilege the app role lacks (orders_app has SELECT on outbox_events).
 */

/**
 * Due pending events, counted over a LIMIT: the partial index outbox_events_pending_idx
 * (available_at) WHERE status = 'pending' holds only pending rows, so the processed history
 * (millions of rows) is never read, and the LIMIT bounds the work under a huge backlog. The cap
 * is target × maxReplicas: at that count the worker is already at its maximum, so a larger
 * number could not change the decision. `{cap}` is filled by dueBacklogQuery() (KEDA does not
 * bind parameters). Events retried later (available_at in the future) are not counted: no
 * replica could work on them yet. (`test/integration/keda-backlog-query.test.ts` checks the count,
 * the cap, the app role and the plan.)
 */
export const DUE_BACKLOG_QUERY =
  "SELECT count(*) FROM (SELECT FROM outbox_events WHERE status = 'pending' AND available_at <= now() LIMIT {cap}) AS due";

/** The query with its cap: `targetPerReplica × maxReplicas` (at least 1). */
export function dueBacklogQuery(targetPerReplica: number, maxReplicas: number): string {
  const cap = Math.max(1, targetPerReplica * maxReplicas);
  return DUE_BACKLOG_QUERY.replace('{cap}', String(cap));
}

/** The connections KEDA's postgresql scaler holds to the database (one per scaler; it polls serially). */
export const KEDA_SCALER_CONNECTIONS = 1;
