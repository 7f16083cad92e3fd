/**
 * /metrics under `serve --processes N`: the child that got the scrape asks the primary, which
 * collects every child's registry as JSON and sums them with prom-client's
 * AggregatorRegistry.aggregate (each metric's `aggregator`: counters and histograms add up, see
 * metrics.ts for the gauges). Not prom-client's clusterMetrics(): it asks every connected child,
 * also one still starting that cannot answer yet (each scrape during a start or a restart would
 * hang 5 s, then fail), with a fixed 5 s timeout, and keeps waiting for a child that died. Here
 * only children that joined are asked, one that exits is left out, and a silent one fails the
 * scrape after 3 s (503).
 *
 * Both halves ride on the cluster's IPC channel: serve-cluster.ts (the primary) and
 * serve-cluster-child.ts (a child) hand them the `orders:metrics-*` messages, and tell them when a
 * child exits or the primary is gone.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';

/** The primary answers a scrape within this, or the scrape fails (503) rather than count partially. */
const METRICS_COLLECT_TIMEOUT_MS = 3_000;

export type MetricsToChild =
  | { type: 'orders:metrics-collect'; id: number }
  | { type: 'orders:metrics-scraped'; id: number; text?: string; error?: string };

export type MetricsToPrimary =
  | { type: 'orders:metrics-scrape'; id: number }
  | { type: 'orders:metrics-collected'; id: number; metrics?: object[]; error?: string };

// ---------------------------------------------------------------------------------------------
// The child side

/** A child's half: its registry for the primary's collections, its scrapes answered by the primary. */
export interface ChildMetrics {
  /** Once the process has its metrics: collections read them, scrapes answer for every process. */
  attach(metrics: Metrics): void;
  onMessage(message: MetricsToChild): void;
  /** The IPC channel closed: the scrapes waiting for the primary fail. */
  primaryGone(): void;
}

export function createChildMetrics(send: (message: MetricsToPrimary) => void): ChildMetrics {
  let metrics: Metrics | undefined;
  const scrapes = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  let nextScrape = 0;

  /** A scrape: the primary collects every process's registry and answers the aggregate. */
  const scrapeAll = () =>
    new Promise<string>((resolve, reject) => {
      if (!process.connected) return reject(new Error('the primary process is gone'));
      const id = nextScrape++;
      const timer = setTimeout(() => {
        scrapes.delete(id);
        reject(new Error('the primary process did not answer the metrics request in time'));
      }, METRICS_COLLECT_TIMEOUT_MS + 1_000);
      scrapes.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      send({ type: 'orders:metrics-scrape', id });
    });

  return {
    attach(deps) {
      metrics = deps;
      deps.aggregateAcrossProcesses(scrapeAll);
    },
    onMessage(message) {
      switch (message.type) {
        case 'orders:metrics-collect':
          (metrics ? metrics.registry.getMetricsAsJSON() : Promise.resolve([])).then(
            (json) => send({ type: 'orders:metrics-collected', id: message.id, metrics: json }),
            (error: Error) =>
              send({ type: 'orders:metrics-collected', id: message.id, error: error.message }),
          );
          return;
        case 'orders:metrics-scraped': {
          const scrape = scrapes.get(message.id);
          scrapes.delete(message.id);
          if (message.text !== undefined) scrape?.resolve(message.text);
          else scrape?.reject(new Error(message.error ?? 'no metrics'));
          return;
        }
      }
    },
    primaryGone() {
      for (const scrape of scrapes.values()) scrape.reject(new Error('the primary process is gone'));
      scrapes.clear();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The primary

/** What a collection reads of a serve process's slot (serve-cluster.ts owns the slots). */
export interface CollectedSlot {
  index: number;
  worker: Worker | undefined;
  /** It has sent `joined`: it answers metrics requests. */
  joined: boolean;
}

interface Collection {
  pending: Set<number>;
  results: object[];
  /** Why it cannot be summed, when a child answered with an error. */
  failed?: string;
  resolve: () => void;
}

/** The primary's half: collects the joined children's registries for a scrape and sums them. */
export interface PrimaryMetrics {
  onMessage(worker: Worker, slot: CollectedSlot | undefined, message: MetricsToPrimary): void;
  /** A child exited: the collections under way stop waiting for it. */
  settleCollections(worker: Worker): void;
}

export function createPrimaryMetrics(deps: {
  logger: Logger;
  /** The slots that have a child now. */
  live: () => CollectedSlot[];
  send: (worker: Worker, message: MetricsToChild) => void;
}): PrimaryMetrics {
  const { logger, live, send } = deps;
  const collections = new Map<number, Collection>();
  let nextCollection = 0;

  /** Every joined child's registry, aggregated; a child that exits meanwhile is left out. */
  async function collectMetrics(): Promise<string> {
    const asked = live().filter((s) => s.joined);
    const id = nextCollection++;
    const collection: Collection = {
      pending: new Set(asked.map((s) => s.worker!.id)),
      results: [],
      resolve: () => {},
    };
    const done = new Promise<void>((resolve) => {
      collection.resolve = resolve;
    });
    collections.set(id, collection);
    for (const slot of asked) send(slot.worker!, { type: 'orders:metrics-collect', id });
    if (collection.pending.size === 0) collection.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), METRICS_COLLECT_TIMEOUT_MS);
    });
    try {
      if (await Promise.race([done.then(() => false), timedOut])) {
        const silent = asked.filter((s) => collection.pending.has(s.worker?.id ?? -1)).map((s) => s.index);
        throw new Error(
          `serve process(es) ${silent.join(', ')} did not answer within ${METRICS_COLLECT_TIMEOUT_MS} ms`,
        );
      }
      if (collection.failed) throw new Error(collection.failed);
      return await AggregatorRegistry.aggregate(collection.results).metrics();
    } finally {
      clearTimeout(timer);
      collections.delete(id);
    }
  }

  function settleCollections(worker: Worker) {
    for (const collection of collections.values()) {
      if (collection.pending.delete(worker.id) && collection.pending.size === 0) collection.resolve();
    }
  }

  function onMessage(worker: Worker, slot: CollectedSlot | undefined, message: MetricsToPrimary) {
    switch (message.type) {
      case 'orders:metrics-scrape':
        collectMetrics().then(
          (text) => send(worker, { type: 'orders:metrics-scraped', id: message.id, text }),
          (error: Error) => {
            logger.warn({ err: error }, 'cannot aggregate the serve processes’ metrics');
            send(worker, { type: 'orders:metrics-scraped', id: message.id, error: error.message });
          },
        );
        return;
      case 'orders:metrics-collected': {
        const collection = collections.get(message.id);
        if (!collection?.pending.delete(worker.id)) return;
        if (message.metrics) collection.results.push(message.metrics);
        // Without one process's numbers the sum would be wrong: the scrape fails instead.
        else collection.failed = `serve process ${slot?.index} could not read its metrics: ${message.error}`;
        if (collection.pending.size === 0) collection.resolve();
        return;
      }
    }
  }

  return { onMessage, settleCollections };
}
