/**
 * The bench's floor for reads: a bare fastify + pg server running the same SQL as ours for
 * GET /orders/{id} (GET_ORDER_BODY_SQL, the same named prepared statement, the same int8 parser,
 * the body PostgreSQL built sent as it came), with the same pool size, no hooks, no logging, no
 * metrics, no deadline. The difference in CPU per GET between it and `orders serve` is what our
 * request path adds.
 *
 *   DATABASE_URL=… PORT=… [HOST=127.0.0.1] [DB_POOL_MAX=10] node bench/dist/bench/baseline/bare-get.js
 *
 * It serves only the reads (`npm run bench -- --baseline` seeds through ours, on the same database).
 */
import Fastify from 'fastify';
import pg from 'pg';
import { GET_ORDER_BODY_SQL, type OrderRepresentation } from '../../src/orders/repository.js';

const types = new pg.TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.DB_POOL_MAX ?? 10),
  types,
});
const query = { name: 'orders.get_body', text: GET_ORDER_BODY_SQL };

const app = Fastify({ logger: false });

app.get('/readyz', async () => ({ status: 'ready' }));

app.get<{ Params: { id: string } }>('/orders/:id', async (request, reply) => {
  const result = await pool.query<OrderRepresentation>({ ...query, values: [request.params.id, null] });
  const row = result.rows[0];
  if (!row) return reply.code(404).send({ code: 'not_found' });
  return reply.type('application/json; charset=utf-8').send(row.body);
});

const close = () => {
  void app.close().then(() => pool.end());
};
process.once('SIGTERM', close);
process.once('SIGINT', close);

await app.listen({ port: Number(process.env.PORT ?? 8091), host: process.env.HOST ?? '127.0.0.1' });
