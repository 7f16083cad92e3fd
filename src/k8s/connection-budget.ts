/**
 * PostgreSQL connections at full scale-out, which render-k8s checks against K8S_DB_MAX_CONNECTIONS
 * so that a configuration that would exhaust the server's max_connections is refused before it is
 * applied, not discovered as "too many clients" during the next traffic peak.
 *
 * Who holds connections (read from the commands):
 *   API pods      `serve --no-worker`: one pool of DB_POOL_MAX (the in-process worker's extra
 *                 pool of 3 exists only with the worker on).
 *   worker pods   `worker`: one pool of DB_POOL_MAX, nothing else.
 *   migration Job `migrate up`: node-pg-migrate's runner holds one client.
 *   KEDA          its postgresql scaler, with K8S_AUTOSCALER=keda.
 * Pods at full scale-out are K8S_MAX_REPLICAS plus the rollout's surge: a release while the HPA is
 * at its maximum runs maxSurge more pods of each Deployment (and the migration Job) at once.
 */
import { KEDA_SCALER_CONNECTIONS } from './keda.js';

/** The Deployments' rollingUpdate.maxSurge (templates/k8s/deployment.yaml takes it from here). */
export const ROLLING_UPDATE_MAX_SURGE_PERCENT = 25;

/** node-pg-migrate's runner migrates on a single pg.Client. */
export const MIGRATION_CONNECTIONS = 1;

/**
 * DB_POOL_MAX written into the ConfigMap when it is unset (the app's own default, 10, is for one
 * process on a laptop or a VM). 3 keeps the defaults within PostgreSQL's default max_connections
 * (100) at full scale-out, with room for the superuser-reserved slots and an operator's psql:
 * 2 Deployments × (10 + 3 surging) pods × 3 + 1 migration (+ 1 KEDA) = 79 (80). Three is what the
 * in-process worker was measured to need (DESIGN.md: its own 3-connection pool kept delivery at
 * 26 ms p50 at 2,000 orders/s), and larger pools were measured not to help (the CPU is the limit).
 */
export const K8S_DEFAULT_DB_POOL_MAX = 3;

export interface ScaleOut {
  maxReplicas: number;
  poolMax: number;
  keda: boolean;
}

export interface ConnectionBudget {
  /** Pods of each Deployment at full scale-out, during a rollout. */
  pods: number;
  surge: number;
  api: number;
  worker: number;
  migration: number;
  keda: number;
  total: number;
}

/** The surge Kubernetes adds during a rollout: maxSurge as a percentage, rounded up. */
export function rollingUpdateSurge(replicas: number): number {
  return Math.ceil((replicas * ROLLING_UPDATE_MAX_SURGE_PERCENT) / 100);
}

export function connectionsAtScaleOut({ maxReplicas, poolMax, keda }: ScaleOut): ConnectionBudget {
  const surge = rollingUpdateSurge(maxReplicas);
  const pods = maxReplicas + surge;
  const api = pods * poolMax;
  const worker = pods * poolMax;
  const kedaConnections = keda ? KEDA_SCALER_CONNECTIONS : 0;
  return {
    pods,
    surge,
    api,
    worker,
    migration: MIGRATION_CONNECTIONS,
    keda: kedaConnections,
    total: api + worker + MIGRATION_CONNECTIONS + kedaConnections,
  };
}

/**
 * The refusal, with the arithmetic and the fixes (each with the largest value that would fit),
 * or undefined when the scale-out fits within `limit`.
 */
export function connectionBudgetProblem(scaleOut: ScaleOut, limit: number): string | undefined {
  const b = connectionsAtScaleOut(scaleOut);
  if (b.total <= limit) return undefined;
  const fits = (change: Partial<ScaleOut>) =>
    connectionsAtScaleOut({ ...scaleOut, ...change }).total <= limit;
  const largest = (from: number, change: (n: number) => Partial<ScaleOut>) => {
    for (let n = from - 1; n >= 1; n--) if (fits(change(n))) return n;
    return undefined;
  };
  const pool = largest(scaleOut.poolMax, (poolMax) => ({ poolMax }));
  const replicas = largest(scaleOut.maxReplicas, (maxReplicas) => ({ maxReplicas }));
  const arithmetic =
    `API ${b.pods} pods (K8S_MAX_REPLICAS ${scaleOut.maxReplicas} + ${b.surge} surging in a rollout) × ` +
    `DB_POOL_MAX ${scaleOut.poolMax} = ${b.api} + worker ${b.pods} × ${scaleOut.poolMax} = ${b.worker} + ` +
    `migration Job ${b.migration}${b.keda ? ` + KEDA postgresql scaler ${b.keda}` : ''} = ${b.total}`;
  const fixes = [
    'put PgBouncer (transaction pooling) in front of PostgreSQL and raise K8S_DB_MAX_CONNECTIONS to the client connections it accepts (max_client_conn)',
    pool === undefined
      ? 'lower DB_POOL_MAX (no pool size fits alone)'
      : `lower DB_POOL_MAX (at most ${pool} fits)`,
    replicas === undefined
      ? 'lower K8S_MAX_REPLICAS (no replica count fits alone)'
      : `lower K8S_MAX_REPLICAS (at most ${replicas} fits)`,
  ];
  return (
    `K8S_DB_MAX_CONNECTIONS: ${b.total} connections at full scale-out exceed ${limit}: ${arithmetic}. ` +
    `Fix one of: ${fixes.join('; ')}`
  );
}
