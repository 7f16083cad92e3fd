/**
 * `orders partners simulate`: plays Catalog and Payments against NATS (NATS_URL, required) for
 * development and demos: every new order is answered SIMULATE_DELAY_MS after it was published,
 * rejected at SIMULATE_STOCK_REJECT_RATE / SIMULATE_PAYMENT_FAIL_RATE. SIGTERM or SIGINT stops it
 * cleanly (exit 0): orders not answered yet are answered by its next run.
 */
import { loadConfig, resolveSimulation } from '../config.js';
import { runNatsPartnerSimulator } from '../messaging/partner-simulator-nats.js';
import { UsageError } from './report.js';
import { createProcessRuntime, runToCompletion } from './runtime.js';

export async function run(): Promise<number> {
  const config = loadConfig();
  if (!config.NATS_URL) {
    throw new UsageError(
      'NATS_URL is not set: `orders partners simulate` answers orders over NATS JetStream ' +
        '(e.g. NATS_URL=nats://localhost:4222). Without NATS, `orders serve` on the embedded ' +
        'database plays the partners in-process (SIMULATE_PARTNERS).',
    );
  }
  const url = config.NATS_URL;
  const { delayMs, stockRejectRate, paymentFailRate } = resolveSimulation(config);
  const runtime = createProcessRuntime(config);
  return runToCompletion(runtime, async () => {
    const stop = new AbortController();
    void runtime.shutdownSignal.then(() => stop.abort());
    runtime.logger.warn(
      { delayMs, stockRejectRate, paymentFailRate },
      'orders partners simulate: a development tool answering every new order as Catalog and Payments would',
    );
    await runNatsPartnerSimulator({
      url,
      logger: runtime.logger,
      signal: stop.signal,
      delayMs,
      stockRejectRate,
      paymentFailRate,
    });
  });
}
